"""RFC 6960 Appendix A.1 (OCSP over HTTP) rules shared by every adapter that answers OCSP: the Flask app's GET
route, its POST fast path (WSGI) and the dedicated responder (ASGI). No framework here."""

from __future__ import annotations

import base64
import binascii

MAX_REQUEST = 64 * 1024  # bytes; an OCSP request is a few hundred
REQUEST_TYPE = "application/ocsp-request"
RESPONSE_TYPE = "application/ocsp-response"


def is_ocsp_path(path: str) -> bool:
    return path == "/ocsp" or path.startswith("/ocsp/")


def post_refusal(content_type: str, size: int) -> int | None:
    """The HTTP status refusing a POST (415 wrong type, 400 empty, 413 too large), or None to answer it."""
    if content_type.split(";", maxsplit=1)[0].strip().lower() != REQUEST_TYPE:
        return 415
    if size <= 0:
        return 400
    if size > MAX_REQUEST:
        return 413
    return None


def decode_get(tail: str) -> bytes | None:
    """The DER request of GET /ocsp/{base64}, also /ocsp/{CA}/{base64}; None when it is not base64.

    A DER OCSPRequest (SEQUENCE, 0x30) always encodes to base64 starting with "M": anything before is the CA's
    path segment. The base64 itself may contain "/".
    """
    if not tail.startswith("M") and "/" in tail:
        tail = tail.split("/", 1)[1]
    try:
        return base64.b64decode(tail + "=" * (-len(tail) % 4))
    except (binascii.Error, ValueError):
        return None
