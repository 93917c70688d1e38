"""The CA hierarchy: created once by `pkictl init`, read by issuance, CRL and OCSP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, partial

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlmodel import Session, col, select

from pki import audit
from pki.ca import certs
from pki.ca.keys import SigningKey
from pki.ca.keystore import KeyStore
from pki.ca.validity import add_months, whole_seconds
from pki.enums import AccessType, CaRole
from pki.errors import ConfigurationError, NotFoundError
from pki.models import CertificateAuthority
from pki.services.context import Context
from pki.services.home_settings import HomeSettingsService

# Replace a delegated OCSP signer this long before it ends (CRL publication and the responder check).
ROTATE_WITHIN = timedelta(days=30)
# The root's delegated OCSP signer: it answers for the issuing CA certificates, so that a relying party that
# checks every certificate of the chain by OCSP (nginx `ssl_ocsp on`) finds a responder for each, while the
# root key itself stays offline.
ROOT_SIGNER = "ocsp-root"


@dataclass
class LoadedCa:
    """A CA record with its parsed certificate (parsed once per process)."""

    record: CertificateAuthority

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.record.certificate_der)

    @property
    def slug(self) -> str:
        return self.record.slug

    @property
    def id(self) -> int:
        assert self.record.id is not None
        return self.record.id


class AuthorityService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._loaded: dict[str, LoadedCa] | None = None
        self._settings = HomeSettingsService(ctx)

    def ensure_hierarchy(self, *, actor: str = "system") -> list[CertificateAuthority]:
        """Create root, one issuing CA per kind and the OCSP signers of all three, unless a hierarchy exists.

        A hierarchy made before the root had an OCSP signer gets one (needs the root key).
        """
        existing = self.all()
        if existing:
            if not any(r.slug == ROOT_SIGNER for r in existing):
                self._add_root_signer(actor)
                return self.all()
            return existing
        policy = self._ctx.policies.ca
        keys = self._ctx.key_store()
        now = whole_seconds(self._ctx.now())
        root_publication = self._settings.publication("root")
        with self._ctx.write() as s:
            root_key, root = self._make(
                s,
                keys,
                "root",
                CaRole.ROOT,
                None,
                None,
                policy.root.common_name,
                certs.Validity(now, add_months(now, 12 * policy.root.lifetime_years)),
            )
            for kind in (AccessType.TEST, AccessType.FORMAL):
                name = policy.issuing[kind.value]
                validity = certs.Validity(
                    now, min(add_months(now, 12 * name.lifetime_years), root.not_valid_after)
                )
                issuing_key, issuing = self._make(
                    s,
                    keys,
                    kind.value,
                    CaRole.ISSUING,
                    kind,
                    (root, root_key),
                    name.common_name,
                    validity,
                    partial(
                        certs.build_issuing,
                        policy_oids=self.policy_oids_for(kind.value),
                        publication=root_publication,
                    ),
                )
                ocsp_validity = certs.Validity(
                    now, min(now + timedelta(days=policy.ocsp_lifetime_days), issuing.not_valid_after)
                )
                self._make(
                    s,
                    keys,
                    f"ocsp-{kind.value}",
                    CaRole.OCSP,
                    kind,
                    (issuing, issuing_key),
                    self._signer_name(kind.value),
                    ocsp_validity,
                    certs.build_ocsp_signer,
                )
            self._make_root_signer(s, keys, root, root_key, now)
            records = list(s.exec(select(CertificateAuthority).order_by(col(CertificateAuthority.id))).all())
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor,
                action="ca.create",
                subject_type="ca",
                subject_id="hierarchy",
                details={r.slug: {"serial": r.serial, "subject": r.subject} for r in records},
            )
        self._loaded = None
        return records

    def _signer_name(self, slug: str) -> str:
        """The common name of CA ``slug``'s OCSP signer: the CA's own name plus " OCSP"."""
        policy = self._ctx.policies.ca
        ca_name = policy.root.common_name if slug == "root" else policy.issuing[slug].common_name
        return f"{ca_name} OCSP"

    def _make_root_signer(
        self, s: Session, keys: KeyStore, root: CertificateAuthority, root_key: SigningKey, now: datetime
    ) -> CertificateAuthority:
        end = min(now + timedelta(days=self._ctx.policies.ca.ocsp_lifetime_days), root.not_valid_after)
        _, signer = self._make(
            s,
            keys,
            ROOT_SIGNER,
            CaRole.OCSP,
            None,
            (root, root_key),
            self._signer_name("root"),
            certs.Validity(now, end),
            certs.build_ocsp_signer,
        )
        return signer

    def _add_root_signer(self, actor: str) -> None:
        self.refresh()
        root = self.get("root")
        root_key = self.key_for(root)
        keys = self._ctx.key_store()
        with self._ctx.write() as s:
            record = s.exec(select(CertificateAuthority).where(CertificateAuthority.id == root.id)).one()
            signer = self._make_root_signer(s, keys, record, root_key, whole_seconds(self._ctx.now()))
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor,
                action="ca.create",
                subject_type="ca",
                subject_id=ROOT_SIGNER,
                details={ROOT_SIGNER: {"serial": signer.serial, "subject": signer.subject}},
            )
        self._loaded = None

    def _make(
        self,
        s: Session,
        keys: KeyStore,
        slug: str,
        role: CaRole,
        kind: AccessType | None,
        issuer: tuple[CertificateAuthority, SigningKey] | None,
        common_name: str,
        validity: certs.Validity,
        build: Callable[..., x509.Certificate] | None = None,
    ) -> tuple[SigningKey, CertificateAuthority]:
        """Generate a key, certify it (self-signed when ``issuer`` is None), store key and record."""
        policy = self._ctx.policies.ca
        serial = x509.random_serial_number()
        algorithm = policy.algorithm_for(slug)
        key, ref = keys.create(f"{slug}-{serial:X}"[:48], algorithm)
        name = certs.ca_name(policy.country, policy.organization, common_name)
        if issuer is None:
            cert = certs.build_root(key, name, serial, validity)
        else:
            assert build is not None
            issuer_cert = x509.load_der_x509_certificate(issuer[0].certificate_der)
            cert = build(issuer_cert, issuer[1], key.public_key(), name, serial, validity)
        record = CertificateAuthority(
            slug=slug,
            role=role,
            kind=kind,
            parent_id=issuer[0].id if issuer else None,
            subject=cert.subject.rfc4514_string(),
            serial=f"{serial:X}",
            not_valid_before=cert.not_valid_before_utc,
            not_valid_after=cert.not_valid_after_utc,
            certificate_der=cert.public_bytes(Encoding.DER),
            key_ref=ref,
            key_algorithm=algorithm,
            created_at=self._ctx.now(),
        )
        s.add(record)
        s.flush()
        return key, record

    def policy_oids_for(self, slug: str) -> list[str]:
        """The certificate policies of the kinds issuing CA ``slug`` issues (profiles.toml), in kind order."""
        kinds = self._ctx.policies.profiles.kinds.values()
        return [k.policy_oid for k in kinds if k.issuing_ca == slug]

    def recertify_issuing(self, *, actor: str = "system") -> list[str]:
        """Re-certify, under their own keys, the issuing CAs whose certificate lacks the policies of the kinds
        they issue, the CRL distribution point of the root's CRL or the root's OCSP responder (homes made
        before these existed).

        The new certificate keeps the subject, the key (so the subject key identifier every issued
        certificate and CRL points at) and the validity; only the serial, the policies, the CDP and AIA
        change. Certificates issued before stay valid under either CA certificate; relying parties should
        take the new one (`/ca/SLUG.cer`) to check policies. Needs the root key. Returns the slugs changed;
        the audit record keeps the old serial.
        """
        self.refresh()
        due = []
        for ca in self.loaded().values():
            if ca.record.role is not CaRole.ISSUING:
                continue
            if (
                certs.policy_oids_of(ca.certificate) != frozenset(self.policy_oids_for(ca.slug))
                or not certs.crl_urls_of(ca.certificate)
                or not certs.ocsp_urls_of(ca.certificate)
            ):
                due.append(ca)
        if not due:
            return []
        root = self.get("root")
        root_key = self.key_for(root)
        publication = self._settings.publication("root")
        with self._ctx.write() as s:
            for ca in due:
                old = ca.certificate
                serial = x509.random_serial_number()
                cert = certs.build_issuing(
                    root.certificate,
                    root_key,
                    certs.public_key_of(old),
                    old.subject,
                    serial,
                    certs.Validity(old.not_valid_before_utc, old.not_valid_after_utc),
                    policy_oids=self.policy_oids_for(ca.slug),
                    publication=publication,
                )
                record = s.exec(select(CertificateAuthority).where(CertificateAuthority.id == ca.id)).one()
                old_serial = record.serial
                record.serial = f"{serial:X}"
                record.certificate_der = cert.public_bytes(Encoding.DER)
                s.add(record)
                audit.append(
                    s,
                    at=self._ctx.now(),
                    actor=actor,
                    action="ca.recertify",
                    subject_type="ca",
                    subject_id=ca.slug,
                    details={
                        "old_serial": old_serial,
                        "serial": record.serial,
                        "policies": self.policy_oids_for(ca.slug),
                        "crl": publication.crl_url,
                    },
                )
        self._loaded = None
        return [ca.slug for ca in due]

    def rotate_ocsp_signers(self, *, actor: str = "system", within: timedelta = ROTATE_WITHIN) -> list[str]:
        """Give every issuing CA a fresh delegated OCSP signer when its current one ends within ``within``.

        The signer record is replaced in place (the audit trail keeps the old serial). Returns the slugs of
        the signers replaced. Needs the issuing CA keys.
        """
        policy = self._ctx.policies.ca
        now = whole_seconds(self._ctx.now())
        self.refresh()  # another process may have rotated already
        due = [
            c
            for c in self.loaded().values()
            if c.record.role is CaRole.OCSP and c.record.not_valid_after - now <= within
        ]
        if not due:
            return []
        keys = self._ctx.key_store()
        rotated: list[str] = []
        with self._ctx.write() as s:  # an ordered write: no double rotation
            for signer in due:
                issuing = self.get(signer.slug.removeprefix("ocsp-"))
                record = s.exec(
                    select(CertificateAuthority).where(CertificateAuthority.id == signer.id)
                ).one()
                end = min(now + timedelta(days=policy.ocsp_lifetime_days), issuing.record.not_valid_after)
                if end <= record.not_valid_after or record.not_valid_after - now > within:
                    # Near the issuing CA's own end a new signer would end no later than the current one;
                    # or the record changed since our read. Either way there is nothing to gain.
                    continue
                rotated.append(signer.slug)
                serial = x509.random_serial_number()
                # The signer signs as its CA does: a CA's algorithm is its record's, whatever policy says now.
                key, ref = keys.create(f"{signer.slug}-{serial:X}"[:48], issuing.record.key_algorithm)
                name = certs.ca_name(policy.country, policy.organization, self._signer_name(issuing.slug))
                cert = certs.build_ocsp_signer(
                    issuing.certificate,
                    self.key_for(issuing),
                    key.public_key(),
                    name,
                    serial,
                    certs.Validity(now, end),
                )
                old_serial = record.serial
                record.serial, record.key_ref = f"{serial:X}", ref
                record.not_valid_before, record.not_valid_after = (
                    cert.not_valid_before_utc,
                    cert.not_valid_after_utc,
                )
                record.certificate_der = cert.public_bytes(Encoding.DER)
                s.add(record)
                audit.append(
                    s,
                    at=self._ctx.now(),
                    actor=actor,
                    action="ca.ocsp_rotate",
                    subject_type="ca",
                    subject_id=signer.slug,
                    details={"old_serial": old_serial, "serial": record.serial, "not_after": end.isoformat()},
                )
        self._loaded = None
        return rotated

    # -- reads ------------------------------------------------------------------------------------------

    def all(self) -> list[CertificateAuthority]:
        with self._ctx.read() as s:
            return list(s.exec(select(CertificateAuthority).order_by(col(CertificateAuthority.id))).all())

    def refresh(self) -> None:
        """Forget the cached CA records (another process may have rotated a signer)."""
        self._loaded = None

    def loaded(self) -> dict[str, LoadedCa]:
        """Every CA by slug, certificates parsed; cached for the life of the service."""
        if self._loaded is None:
            self._loaded = {r.slug: LoadedCa(r) for r in self.all()}
        return self._loaded

    def get(self, slug: str) -> LoadedCa:
        found = self.loaded().get(slug)
        if found is None:
            if not self.loaded():
                raise ConfigurationError("no CA hierarchy yet: run 'pkictl init' with PKI_CA_PASSPHRASE set")
            raise NotFoundError(f"no CA named {slug!r}")
        return found

    def issuing_for(self, kind: AccessType) -> LoadedCa:
        return self.get(self._ctx.policies.profiles.kinds[kind.value].issuing_ca)

    def ocsp_signer_for(self, issuing: LoadedCa) -> LoadedCa:
        return self.get(f"ocsp-{issuing.slug}")

    def key_for(self, ca: LoadedCa) -> SigningKey:
        return self._ctx.key_store().load(ca.record.key_ref)

    def chain(self, ca: LoadedCa) -> list[x509.Certificate]:
        """``ca`` and its issuers up to the root, in that order."""
        by_id = {c.id: c for c in self.loaded().values()}
        out, current = [], ca
        while True:
            out.append(current.certificate)
            if current.record.parent_id is None:
                return out
            current = by_id[current.record.parent_id]
