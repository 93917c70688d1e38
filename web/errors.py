"""The one mapping of service errors to HTTP for this adapter."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from pki.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PkiError,
    ValidationError,
)

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
        return jsonify(
            {"error": error.code, "message": error.message, "message_zh": error.message_zh}
        ), status_for(error)
