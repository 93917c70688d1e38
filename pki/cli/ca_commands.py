"""`pkictl ca|issue|cert|revoke|crl|renew|serve`: the certificate authority."""

from __future__ import annotations


# (filled below)
