"""The operations, one module per concept; importing this package registers them all."""

from pki.desk.ops import (  # noqa: F401
    certificates,
    cutover,
    points,
    requests,
    sessions,
    stock,
    token_admin,
    tokens,
)
