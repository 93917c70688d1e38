"""Reading and verifying the audit trail."""

from __future__ import annotations

from pki import audit
from pki.models import AuditRecord
from pki.services.context import Context


class AuditService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def verify(self) -> audit.VerifyResult:
        """Recompute the whole chain; the result lists what is wrong (``ok`` is false then)."""
        with self._ctx.read() as s:
            return audit.verify(s)

    def recent(
        self, *, limit: int = 50, subject_type: str | None = None, subject_id: str | None = None
    ) -> list[AuditRecord]:
        with self._ctx.read() as s:
            return audit.recent(s, limit=limit, subject_type=subject_type, subject_id=subject_id)
