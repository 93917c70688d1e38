"""PINs for USB keys: random SO PINs that nobody types (pkictl keeps them sealed), and the holder's PIN rules."""

from __future__ import annotations

import secrets

SO_PIN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
SO_PIN_LENGTH = 16  # about 93 bits
# The holder's PIN, set when a key is initialised or unblocked: what every key model in tokens.toml accepts.
USER_PIN_LENGTHS = range(6, 17)


def new_so_pin() -> str:
    return "".join(secrets.choice(SO_PIN_ALPHABET) for _ in range(SO_PIN_LENGTH))
