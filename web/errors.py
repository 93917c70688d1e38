"""The one mapping of service errors to HTTP for this adapter."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify

from pki.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    KeyAccessError,
    NotFoundError,
    PermissionDeniedError,
    PkiError,
    TokenError,
    ValidationError,
)

log = logging.getLogger(__name__)
# Faults of the server itself: their text (paths, CKR codes, setup hints) is for the log, not for clients.
_INTERNAL = (KeyAccessError, TokenError, ConfigurationError)

_STATUS: list[tuple[type[PkiError], int]] = [
    (NotFoundError, 404),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (ValidationError, 400),
    (ConflictError, 409),
]


def status_for(error: PkiError) -> int:
    return next((code for cls, code in _STATUS if isinstance(error, cls)), 422)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(PkiError)
    def pki_error(error: PkiError) -> tuple[Response, int]:
        if isinstance(error, _INTERNAL):
            log.error("service unavailable: %s", error.message)
            body = {"error": "unavailable", "message": "service unavailable", "message_zh": "服务暂不可用"}
            return jsonify(body), 503
        body = {"error": error.code, "message": error.message, "message_zh": error.message_zh}
        return jsonify(body), status_for(error)
