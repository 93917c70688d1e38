"""Scans kept with a request (access.toml [attachments]): type from the content's magic bytes, size limited.

Uploading and reading are workflow operations (workflow.toml [operations] attach, read_attachments); both
are audited.
"""

from __future__ import annotations

import hashlib
import unicodedata

from sqlalchemy.orm import defer
from sqlmodel import col, select

from pki import audit
from pki.errors import FieldError, NotFoundError, ValidationError
from pki.ids import known_id
from pki.models import RequestAttachment
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.services.requests import request_in_scope

# Magic bytes -> media type. Only these are kept: PDF, JPEG, PNG.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def sniff(data: bytes) -> str | None:
    return next((media for magic, media in _MAGIC if data.startswith(magic)), None)


def _safe_filename(name: str) -> str:
    cleaned = "".join(
        ch for ch in name.replace("\\", "/").rsplit("/", 1)[-1] if unicodedata.category(ch)[0] != "C"
    )
    return cleaned.strip()[:255] or "attachment"


class AttachmentService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def add(
        self, request_id: int, *, kind: str, filename: str, data: bytes, actor: Actor
    ) -> RequestAttachment:
        """Keep one scan with the request. Raises ValidationError (kind, type, size), NotFoundError,
        PermissionDeniedError."""
        known_id(request_id)
        policy = self._ctx.policies.access
        errors: list[FieldError] = []
        if kind not in policy.attachment_kinds:
            errors.append(FieldError("kind", f"unknown attachment kind {kind!r}", "附件类别无效"))
        media = sniff(data)
        if not data:
            errors.append(FieldError("file", "the file is empty", "文件：不能为空"))
        elif media is None:
            errors.append(FieldError("file", "only PDF, JPEG or PNG files", "文件：只接受 PDF、JPEG 或 PNG"))
        if len(data) > policy.attachment_max_bytes:
            limit_mb = policy.attachment_max_bytes / 1_048_576
            errors.append(
                FieldError(
                    "file",
                    f"larger than {policy.attachment_max_bytes} bytes",
                    f"文件：不能超过 {limit_mb:g} MB",
                )
            )
        with self._ctx.denials_recorded(actor, "attach", "request", request_id), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "attach")
            request_in_scope(s, request_id, actor)
            if errors:
                raise ValidationError(errors)
            assert media is not None
            row = RequestAttachment(
                request_id=request_id,
                kind=kind,
                filename=_safe_filename(filename),
                media_type=media,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content=data,
                uploaded_by=actor.username,
                uploaded_at=self._ctx.now(),
            )
            s.add(row)
            s.flush()
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor.username,
                action="request.attach",
                subject_type="request",
                subject_id=request_id,
                details={
                    "attachment": row.id,
                    "kind": kind,
                    "filename": row.filename,
                    "media_type": media,
                    "size": row.size,
                    "sha256": row.sha256,
                },
            )
            return row

    def list_for(self, request_id: int, *, actor: Actor) -> list[RequestAttachment]:
        """The request's attachments without their content (PermissionDeniedError for other roles;
        NotFoundError for a request outside the actor's scope, recorded)."""
        known_id(request_id)
        with self._ctx.read() as s:
            require_operation(
                self._ctx.policies.workflow, self._ctx.resolve(s, actor, quiet=True), "read_attachments"
            )
        with (
            self._ctx.denials_recorded(actor, "read_attachments", "request", request_id),
            self._ctx.read() as s,
        ):
            request_in_scope(s, request_id, actor)
            stmt = (
                select(RequestAttachment)
                .options(defer(RequestAttachment.content))  # type: ignore[arg-type]
                .where(RequestAttachment.request_id == request_id)
                .order_by(col(RequestAttachment.id))
            )
            rows = list(s.exec(stmt).all())
            for row in rows:
                s.expunge(row)
            return rows

    def may_read(self, actor: Actor) -> bool:
        return self._ctx.policies.workflow.operation_allows(actor.roles, "read_attachments")

    def may_attach(self, actor: Actor) -> bool:
        return self._ctx.policies.workflow.operation_allows(actor.roles, "attach")

    def read(self, request_id: int, attachment_id: int, *, actor: Actor) -> RequestAttachment:
        """One attachment with its content; the read is audited."""
        known_id(request_id)
        known_id(attachment_id, "attachment")
        with (
            self._ctx.denials_recorded(actor, "read_attachments", "request", request_id),
            self._ctx.write() as s,
        ):
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "read_attachments")
            request_in_scope(s, request_id, actor)
            row = s.get(RequestAttachment, attachment_id)
            if row is None or row.request_id != request_id:
                raise NotFoundError(f"attachment {attachment_id} not found", message_zh="附件不存在")
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor.username,
                action="request.read_attachment",
                subject_type="request",
                subject_id=request_id,
                details={"attachment": attachment_id},
            )
            return row
