"""Revocation reasons as operators type them, and the length of a comment on a certificate or a key."""

from __future__ import annotations

import re

from pki.enums import REVOKE_REASONS, RevocationReason
from pki.errors import FieldError, ValidationError

COMMENT_MAX = 500


def parse_reason(text: str) -> RevocationReason:
    """keyCompromise, key-compromise, key_compromise, KEYCOMPROMISE … -> RevocationReason (a hold is not a
    reason to revoke: it has its own operation, :meth:`RevocationService.hold`)."""
    key = re.sub(r"[-_\s]", "", text).lower()
    for reason in REVOKE_REASONS:
        if reason.value.lower() == key:
            return reason
    allowed = ", ".join(r.value for r in REVOKE_REASONS)
    if key == RevocationReason.CERTIFICATE_HOLD.value.lower():
        raise ValidationError(
            [FieldError("reason", "a hold is not a revocation: use 'pkictl hold'", "冻结请使用冻结操作")]
        )
    raise ValidationError(
        [FieldError("reason", f"unknown reason {text!r}; use one of {allowed}", "吊销原因无效")]
    )


def check_comment(comment: str) -> str:
    """The comment, stripped; ValidationError naming ``comment`` when it is too long."""
    comment = comment.strip()
    if len(comment) > COMMENT_MAX:
        raise ValidationError([FieldError("comment", f"at most {COMMENT_MAX} characters", "备注过长")])
    return comment
