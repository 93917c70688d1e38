"""What an interrupted issuance left on a USB key: key pairs labelled by pkictl that no certificate record
places on that key, listed and, on request, removed.

An issuance killed between generating the key pair and recording the certificate (phase 1 → 2 of
services/token_issuance.py) leaves a key pair nobody can use: no certificate was issued for it, and the next
issuance for the request refuses to overwrite it. Never touched: objects whose CKA_ID a certificate record
places on the key (delivered, or waiting for --resume), any key pair with a certificate object beside it (a
crash before recording never leaves one: such a pair is in use, whatever this database says), objects
without a CKA_ID, and objects pkictl did not label. An issuance running in another process cannot be
mistaken for a leftover: one pkictl process at a time opens a key (tokens.usbkey.open_usb_key).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session

from pki import audit
from pki.errors import TokenError
from pki.models import TokenCertificate, UsbToken
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.services.scope import require_in_scope, scope_for
from pki.services.stock import missing_token
from pki.services.token_issuance import OBJECT_PREFIX, request_of_label

_PLACEMENTS = TokenCertificate.__table__  # type: ignore[attr-defined]
_TOKENS = UsbToken.__table__  # type: ignore[attr-defined]
_HELD_BY = (  # the key's row locked: an issuance recording onto it (not in the writers' order) waits, or is seen
    sa_select(UsbToken.__table__.c.point_id)  # type: ignore[attr-defined]
    .where(UsbToken.__table__.c.serial == bindparam("token"))  # type: ignore[attr-defined]
    .with_for_update()
)
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

    def remove_labelled(self, key_id: bytes, label: str) -> None: ...


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
        return self.leftovers_among(device.serial, device.objects_with_prefix(OBJECT_PREFIX))

    def leftovers_among(self, serial: str, objects: Iterable[tuple[bytes, str, str]]) -> list[Leftover]:
        """Of ``objects`` (key id, label, class) read from token ``serial`` (by a desk, or here), the
        leftovers."""
        with self._ctx.read() as s:
            return _unplaced(s.execute(_PLACED_IDS, {"token": serial}).scalars().all(), objects)

    def remove_leftovers(self, device: CleanableDevice, *, actor: Actor) -> list[Leftover]:
        """Remove what :meth:`leftovers` lists (:meth:`begin_removal`, the removal, :meth:`end_removal`)."""
        # Read before the transaction: no token work inside it.
        found = self.begin_removal(device.serial, device.objects_with_prefix(OBJECT_PREFIX), actor=actor)
        return remove_found(
            device,
            found,
            lambda removed, failed: self.end_removal(device.serial, removed, failed, actor=actor),
        )

    def begin_removal(
        self, serial: str, objects: Iterable[tuple[bytes, str, str]], *, actor: Actor
    ) -> list[Leftover]:
        """The leftovers among ``objects`` that may be removed now. The role is checked and what is about to
        be removed audited (``token.clean``) in one transaction, committed before the key is touched; the
        placements are read inside it, so a certificate recorded meanwhile keeps its key. A key recorded at
        an acceptance point outside the actor's is refused as one not recorded (services/scope.py)."""
        with self._ctx.denials_recorded(actor, "token_clean", "token", serial), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "token_clean")
            held = s.execute(_HELD_BY, {"token": serial}).first()
            if held is not None:
                require_in_scope(scope_for(s, actor), held[0], missing_token(serial), f"token {serial}")
            found = _unplaced(s.execute(_PLACED_IDS, {"token": serial}).scalars().all(), objects)
            if found:
                self._audit(s, actor, serial, "token.clean", {"removing": [_named(x) for x in found]})
            return found

    def end_removal(
        self, serial: str, removed: Iterable[Leftover], failed: str | None, *, actor: Actor
    ) -> None:
        """What was removed, and what failed, audited (``token.cleaned``)."""
        with self._ctx.denials_recorded(actor, "token_clean", "token", serial), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "token_clean")
            outcome = {"removed": [_named(x) for x in removed], "failed": failed}
            self._audit(s, actor, serial, "token.cleaned", outcome)

    def _audit(
        self, s: Session, actor: Actor, serial: str, action: str, details: Mapping[str, object]
    ) -> None:
        audit.append(
            s,
            at=self._ctx.now(),
            actor=actor.username,
            action=action,
            subject_type="token",
            subject_id=serial,
            details=details,
        )


def _unplaced(placed: Iterable[str], objects: Iterable[tuple[bytes, str, str]]) -> list[Leftover]:
    """Of pkictl's objects (key id, label, class), the key pairs that are leftovers (see the module)."""
    recorded = set(placed)
    grouped: dict[tuple[bytes, str], list[str]] = {}
    for key_id, label, cls in objects:
        grouped.setdefault((key_id, label), []).append(cls)
    return [
        Leftover(key_id.hex(), label, tuple(sorted(classes)), request_of_label(label))
        for (key_id, label), classes in sorted(grouped.items(), key=lambda item: item[0][1])
        if key_id and key_id.hex() not in recorded and "certificate" not in classes
    ]


def remove_found(
    device: CleanableDevice,
    found: list[Leftover],
    done: Callable[[list[Leftover], str | None], None],
) -> list[Leftover]:
    """Remove each of ``found`` from the key, then report what was removed and what failed to ``done``
    (which audits it), whatever happened."""
    removed: list[Leftover] = []
    failure: TokenError | None = None
    if not found:
        return removed
    try:
        for x in found:
            device.remove_labelled(bytes.fromhex(x.key_id), x.label)
            removed.append(x)
    except TokenError as e:
        failure = e
        raise
    finally:
        done(removed, failure.message if failure else None)
    return removed


def _named(x: Leftover) -> dict[str, str]:
    return {"key_id": x.key_id, "label": x.label}
