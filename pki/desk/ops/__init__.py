"""The operations, one module per concept; importing this package registers them all."""

from pki.desk.ops import certificates, cutover, requests, sessions, token_admin, tokens  # noqa: F401
