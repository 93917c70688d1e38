"""RFC 9457 problem documents for the API: the one mapping of the PkiError hierarchy to HTTP for programs."""

from __future__ import annotations

from typing import Any

from pki.errors import (
    ConfigurationError,
    ImportRowsError,
    KeyAccessError,
    PkiError,
    SessionExpiredError,
    TokenError,
    ValidationError,
)

PROBLEM_TYPE = "application/problem+json"
# Faults of the server itself: their text (paths, CKR codes, setup hints) is for the log, not for clients.
INTERNAL = (KeyAccessError, TokenError, ConfigurationError)


class MissingSessionError(SessionExpiredError):
    code = "session_required"

    def __init__(self) -> None:
        super().__init__("missing: send 'Authorization: Bearer TOKEN'")


class InsecureTransportError(PkiError):
    code = "insecure_transport"

    def __init__(self) -> None:
        super().__init__(
            "session tokens and passwords are taken only over HTTPS (or from this host)",
            message_zh="仅接受HTTPS连接",
        )


def problem(error: PkiError, status: int) -> dict[str, Any]:
    """The problem document of ``error``: ``code`` is the hierarchy's, ``detail`` English, ``detail_zh``
    Chinese; a ValidationError names each field, an ImportRowsError each bad row."""
    if isinstance(error, INTERNAL):
        return unavailable()
    doc: dict[str, Any] = {
        "type": f"urn:pkictl:problem:{error.code}",
        "title": error.code.replace("_", " "),
        "status": status,
        "detail": error.message,
        "detail_zh": error.message_zh,
        "code": error.code,
    }
    if isinstance(error, ValidationError):
        doc["errors"] = [
            {"field": e.field, "message": e.message, "message_zh": e.message_zh} for e in error.errors
        ]
    if isinstance(error, ImportRowsError):
        doc["total"] = error.total
        doc["rows"] = [
            {
                "line": r.row,
                "errors": [
                    {"field": e.field, "message": e.message, "message_zh": e.message_zh} for e in r.errors
                ],
            }
            for r in error.rows
        ]
    return doc


def plain(status: int, title: str, detail: str, detail_zh: str) -> dict[str, Any]:
    """A problem that is no service error: unknown route, wrong method, body too large, server fault."""
    code = title.replace(" ", "_")
    return {
        "type": f"urn:pkictl:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "detail_zh": detail_zh,
        "code": code,
    }


def unavailable() -> dict[str, Any]:
    return plain(503, "unavailable", "service unavailable", "服务暂不可用")
