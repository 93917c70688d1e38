"""Reading and verifying the audit trail."""

from __future__ import annotations

from pki import audit
from pki.models import AuditRecord
from pki.services.context import Context


class AuditService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def verify(self, *, expect: tuple[int, str] | None = None) -> audit.VerifyResult:
        """Recompute the whole chain in one snapshot; the result lists what is wrong (``ok`` is false then)."""
        with self._ctx.read(snapshot=True) as s:
            return audit.verify(s, expect=expect)

    def for_request(self, request_id: int, *, limit: int = 1000) -> list[AuditRecord]:
        return self.recent(limit=limit, subject_type="request", subject_id=str(request_id))

    def recent(
        self, *, limit: int = 50, subject_type: str | None = None, subject_id: str | None = None
    ) -> list[AuditRecord]:
        with self._ctx.read() as s:
            return audit.recent(s, limit=limit, subject_type=subject_type, subject_id=subject_id)
