"""What an interrupted issuance left on a USB key: key pairs (and certificate objects) labelled by pkictl that
no certificate record places on that key, listed and, on request, removed.

An issuance killed between generating the key pair and recording the certificate (phase 1 → 2 of
services/token_issuance.py) leaves a key pair nobody can use: no certificate was issued for it, and the next
issuance for the request refuses to overwrite it. Objects whose CKA_ID a certificate record places on the key
(delivered, or waiting for --resume) are never touched, nor are objects pkictl did not label.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select

from pki import audit
from pki.models import TokenCertificate, UsbToken
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.services.token_issuance import OBJECT_PREFIX, request_of_label

_PLACEMENTS = TokenCertificate.__table__  # type: ignore[attr-defined]
_TOKENS = UsbToken.__table__  # type: ignore[attr-defined]
_PLACED_IDS = (
    sa_select(_PLACEMENTS.c.key_id)
    .join(_TOKENS, _TOKENS.c.id == _PLACEMENTS.c.token_id)
    .where(_TOKENS.c.serial == bindparam("token"))
)


class CleanableDevice(Protocol):
    """A logged-in USB key (tokens.usbkey.UsbKey)."""

    @property
    def serial(self) -> str: ...

    def objects_with_prefix(self, prefix: str) -> list[tuple[bytes, str, str]]: ...

    def remove(self, key_id: bytes) -> None: ...


@dataclass(frozen=True)
class Leftover:
    key_id: str  # CKA_ID in hex
    label: str
    classes: tuple[str, ...]  # private key, public key, certificate …
    request_id: int | None  # from the label


class TokenCleanupService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def leftovers(self, device: CleanableDevice) -> list[Leftover]:
        """pkictl's objects on the key that no certificate record places there, by key id."""
        with self._ctx.read() as s:
            return self._unplaced(s.execute(_PLACED_IDS, {"token": device.serial}).scalars().all(), device)

    def remove_leftovers(self, device: CleanableDevice, *, actor: Actor) -> list[Leftover]:
        """Remove what :meth:`leftovers` lists. The role is checked and the removal audited (with what is
        removed) in one transaction, committed before the key is touched; the placements are read inside it,
        so a certificate recorded meanwhile keeps its key."""
        with self._ctx.denials_recorded(actor, "token_clean", "token", device.serial), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "token_clean")
            found = self._unplaced(s.execute(_PLACED_IDS, {"token": device.serial}).scalars().all(), device)
            if found:
                audit.append(
                    s,
                    at=self._ctx.now(),
                    actor=actor.username,
                    action="token.clean",
                    subject_type="token",
                    subject_id=device.serial,
                    details={"removed": [{"key_id": x.key_id, "label": x.label} for x in found]},
                )
        for x in found:
            device.remove(bytes.fromhex(x.key_id))
        return found

    @staticmethod
    def _unplaced(placed: Iterable[str], device: CleanableDevice) -> list[Leftover]:
        recorded = set(placed)
        grouped: dict[bytes, tuple[str, list[str]]] = {}
        for key_id, label, cls in device.objects_with_prefix(OBJECT_PREFIX):
            grouped.setdefault(key_id, (label, []))[1].append(cls)
        return [
            Leftover(key_id.hex(), label, tuple(sorted(classes)), request_of_label(label))
            for key_id, (label, classes) in sorted(grouped.items(), key=lambda item: item[1][0])
            if key_id.hex() not in recorded
        ]
