"""The operations, one module per concept; importing this package registers them all."""

from pki.desk.ops import certificates, cutover, points, requests, sessions, stock, tokens  # noqa: F401
