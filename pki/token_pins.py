"""PINs for USB keys: random SO PINs that nobody types (pkictl keeps them sealed), and the holder's PIN rules."""

from __future__ import annotations

import secrets

SO_PIN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
SO_PIN_LENGTH = 16  # about 93 bits


def new_so_pin() -> str:
    return "".join(secrets.choice(SO_PIN_ALPHABET) for _ in range(SO_PIN_LENGTH))
