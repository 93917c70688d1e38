"""Settings of a home kept in its database (table home_setting), so that every server on one database agrees.

The public base URL is the one setting today: where relying parties reach this home's CRLs, OCSP responder
and CA certificates. It is written into every certificate issued afterwards (CRL distribution point, AIA);
changing it never touches certificates already issued. Without it the ca.toml [urls] defaults apply.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlmodel import Session, select

from pki import audit
from pki.ca.certs import Publication
from pki.errors import FieldError, ValidationError
from pki.models.setting import HomeSetting
from pki.services.context import Context
from policies.ca import CaPolicy

PUBLIC_URL = "public_url"
# The longest path we append ("/crl/formal.crl.pem") must still fit the column (2048).
MAX_URL = 1900


def normalize_public_url(text: str) -> str:
    """An http(s) base URL without query, fragment or credentials, without its trailing slash.

    Raises ValidationError naming the field ``public_url``.
    """
    value = text.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port out of range
    except ValueError as e:
        raise _invalid(text, str(e)) from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(text, "must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password or port == 0:
        raise _invalid(text, "must have no query, fragment or user name")
    if len(value) > MAX_URL or any(c.isspace() or ord(c) < 0x21 for c in value):
        raise _invalid(text, f"must be at most {MAX_URL} characters, without spaces")
    return value


def _invalid(text: str, why: str) -> ValidationError:
    return ValidationError(
        [FieldError("public_url", f"{text[:80]!r} {why}", "公开访问地址应为 http(s) 地址")]
    )


def publication(policy: CaPolicy, public_url: str | None, slug: str) -> Publication:
    """Where a certificate issued by CA ``slug`` sends relying parties: under the home's public URL (the
    paths `pkictl serve` answers), else the ca.toml [urls] defaults."""
    if public_url:
        return Publication(
            f"{public_url}/crl/{slug}.crl", f"{public_url}/ocsp/{slug}", f"{public_url}/ca/{slug}.cer"
        )
    return Publication(policy.crl_url(slug), policy.ocsp_url(slug), policy.ca_issuers_url(slug))


class HomeSettingsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def public_url(self, s: Session | None = None) -> str | None:
        """The home's public base URL, or None when never set (``s``: read inside that transaction)."""
        if s is not None:
            return read_public_url(s)
        with self._ctx.read() as session:
            return read_public_url(session)

    def publication(self, slug: str, s: Session | None = None) -> Publication:
        return publication(self._ctx.policies.ca, self.public_url(s), slug)

    def set_public_url(self, url: str, *, actor: str = "system") -> str:
        """Set the public base URL (validated, trailing slash dropped); affects certificates issued from now
        on. Audited with the old and new value. Returns the stored value."""
        value = normalize_public_url(url)
        with self._ctx.write() as s:
            row = s.get(HomeSetting, PUBLIC_URL)
            old = row.value if row is not None else None
            if old == value:
                return value
            if row is None:
                row = HomeSetting(name=PUBLIC_URL, value=value, updated_at=self._ctx.now(), updated_by=actor)
            else:
                row.value, row.updated_at, row.updated_by = value, self._ctx.now(), actor
            s.add(row)
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor,
                action="home.public_url",
                subject_type="home",
                subject_id=PUBLIC_URL,
                details={"old": old, "new": value},
            )
        return value


def read_public_url(s: Session) -> str | None:
    """The public base URL as session ``s`` sees it (one primary-key read)."""
    return s.exec(select(HomeSetting.value).where(HomeSetting.name == PUBLIC_URL)).first()
