"""Issuing certificates for approved requests: one issuance function for every path (CSR, USB key, renewal).

Each public method is one transaction: the certificate row, the request's move to 'issued' and both audit
records commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from asn1crypto import csr as a_csr
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import and_, bindparam, insert, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from pki import audit, locks
from pki.ca import certs, sm2
from pki.ca.keys import PublicKey, algorithm_of, is_sm2, spki_sha256
from pki.ca.validity import add_months, whole_seconds
from pki.enums import AccessType, Action, CertificateStatus, Deal, RevocationReason
from pki.errors import (
    ConflictError,
    FieldError,
    IssuanceError,
    NotFoundError,
    SeparationOfDutiesError,
    ValidationError,
)
from pki.lifecycle import transition
from pki.models import Certificate, CertificateRequest, UsbToken
from pki.services.authority import AuthorityService, LoadedCa
from pki.services.authz import require_role
from pki.services.context import Actor, Context
from pki.services.deals import DealService, DealTerms
from pki.services.home_settings import publication, read_public_url
from pki.services.inventory import InventoryService
from pki.services.requests import SUBJECT as REQUEST
from pki.services.requests import RequestService
from pki.services.revocation import RevocationService


def csr_public_key(data: bytes) -> PublicKey:
    """The public key of a PEM or DER CSR whose self-signature verifies (proof of possession), SM2 included
    (an SM3withSM2 signature checked with the standard signer ID). Raises ValidationError naming ``csr``."""
    try:
        csr = (
            x509.load_pem_x509_csr(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_csr(data)
        )
    except ValueError as e:
        raise ValidationError(
            [FieldError("csr", f"not a PKCS#10 request ({e})", "证书请求文件格式错误")]
        ) from e
    if csr.signature_algorithm_oid.dotted_string == sm2.SM3_WITH_SM2_OID:
        return _sm2_csr_key(csr)
    try:
        public_key = csr.public_key()
        valid = csr.is_signature_valid
    except UnsupportedAlgorithm as e:  # an SM2 key signed with anything but SM3withSM2, or another key type
        raise ValidationError(
            [
                FieldError(
                    "csr",
                    f"key or signature algorithm not supported ({e})",
                    "证书请求的密钥或签名算法不受支持",
                )
            ]
        ) from e
    if not valid:
        raise ValidationError([FieldError("csr", "its signature does not verify", "证书请求签名无效")])
    return public_key  # type: ignore[return-value]  # checked_key refuses the types we do not issue to


def _sm2_csr_key(csr: x509.CertificateSigningRequest) -> sm2.Sm2PublicKey:
    info = a_csr.CertificationRequest.load(csr.public_bytes(Encoding.DER))["certification_request_info"]
    try:
        public_key = sm2.Sm2PublicKey.from_spki(info["subject_pk_info"].dump())
    except ValueError as e:
        raise ValidationError(
            [
                FieldError(
                    "csr", f"signed SM3withSM2 but {e}", "证书请求签名算法为SM3withSM2，但公钥不是SM2公钥"
                )
            ]
        ) from e
    if not public_key.verifies(csr.signature, csr.tbs_certrequest_bytes):
        raise ValidationError(
            [
                FieldError(
                    "csr",
                    f"its SM3withSM2 signature does not verify with the SM2 signer ID {sm2.SIGNER_ID} (a bad"
                    f" signature, or another signer ID: OpenSSL 3.0 signs with an empty ID unless given"
                    f" -sigopt distid:{sm2.SIGNER_ID})",
                    f"证书请求的SM2签名验证失败（签名者ID须为{sm2.SIGNER_ID}）",
                )
            ]
        )
    return public_key


_CERTIFICATES = Certificate.__table__  # type: ignore[attr-defined]
_INSERT = insert(_CERTIFICATES).returning(_CERTIFICATES.c.id, sort_by_parameter_order=True)
_WAITING = and_(  # a certificate issued for its USB key, not yet on it
    _CERTIFICATES.c.delivered.is_(False), _CERTIFICATES.c.status == CertificateStatus.VALID
)
_PENDING = sa_select(_CERTIFICATES.c.request_id, _CERTIFICATES.c.serial).where(
    _CERTIFICATES.c.request_id.in_(bindparam("ids", expanding=True)), _WAITING
)
_BEARING = sa_select(
    _CERTIFICATES.c.serial,
    _CERTIFICATES.c.request_id,
    _CERTIFICATES.c.revocation_reason,
    and_(_CERTIFICATES.c.request_id == bindparam("rid"), _WAITING).label("pending"),
    (_CERTIFICATES.c.spki_sha256 == bindparam("fingerprint")).label("holds"),
).where(
    or_(
        _CERTIFICATES.c.spki_sha256 == bindparam("fingerprint"),
        and_(_CERTIFICATES.c.request_id == bindparam("rid"), _WAITING),
    )
)


class Applicant(Protocol):
    """What issuing reads from a request: a CertificateRequest, or a locked row with these columns."""

    @property
    def id(self) -> int | None: ...

    @property
    def access_type(self) -> AccessType: ...

    @property
    def validity_months(self) -> int: ...

    @property
    def unit_name(self) -> str: ...

    @property
    def province(self) -> str: ...

    @property
    def county(self) -> str: ...

    @property
    def credential_number(self) -> str: ...

    @property
    def deal(self) -> Deal: ...

    @property
    def subject_certificate_id(self) -> int | None: ...

    @property
    def deal_reason(self) -> str: ...


APPLICANT_COLUMNS = (
    "access_type",
    "validity_months",
    "unit_name",
    "province",
    "county",
    "credential_number",
    "deal_reason",
)
_APPLICANT = tuple(CertificateRequest.__table__.c[name] for name in APPLICANT_COLUMNS)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class IssuedRow:
    """What a batch issuance returns per certificate."""

    id: int
    serial: str
    request_id: int
    not_valid_after: datetime
    der: bytes


class IssuanceService:
    def __init__(
        self,
        ctx: Context,
        requests: RequestService,
        authority: AuthorityService,
        deals: DealService,
        revocation: RevocationService,
        inventory: InventoryService,
    ) -> None:
        self._ctx = ctx
        self._requests = requests
        self._authority = authority
        self._deals = deals
        self._revocation = revocation
        self._inventory = inventory

    def issue_from_csr(
        self, request_id: int, csr_data: bytes, *, actor: Actor, expected_version: int | None = None
    ) -> Certificate:
        """Issue for an approved request from a CSR; the subject comes from the approved record, never the CSR."""
        public_key = self.checked_key(csr_public_key(csr_data))
        # A new certificate's rules rest on the request's row and the public key's lock: a write left out of
        # the writers' order, so that desks do not wait for one another; a deal's issuance is ordered.
        ordered = self._requests.deal_of(request_id) not in (None, Deal.NEW)
        with (
            self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST, request_id),
            self._ctx.write(ordered=ordered) as s,
        ):
            req = self._requests.lock_row(
                s, request_id, actor, Action.ISSUE, *_APPLICANT, expected_version=expected_version
            )
            cert = self.issue_locked(s, req, public_key, actor=actor)
            self._requests.mark_issued_many(
                s, [req], actor=actor, at=self._ctx.now(), issued_at=cert.issued_at, serials=[cert.serial]
            )
            return cert

    def issue_many_from_csr(self, items: Sequence[tuple[int, bytes]], *, actor: Actor) -> list[IssuedRow]:
        """Issue for many approved requests in one transaction, all or nothing, with set-based statements.

        The same rules as one by one (role, separation of duties, state, key reuse, CA validity), checked for
        the whole batch with a handful of queries: the actor once, the requests locked in id order, their
        audit history, the keys; then one insert for the certificates, one update for the requests and one
        append for the audit records.
        """
        keys = [(rid, self.checked_key(csr_public_key(data))) for rid, data in items]
        ids = [rid for rid, _ in keys]
        if len(set(ids)) != len(ids):
            raise ValidationError([FieldError("request", "a request is listed twice", "申请重复")])
        wf = self._ctx.policies.workflow
        with self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST), self._ctx.write() as s:
            require_role(wf, self._ctx.resolve(s, actor), Action.ISSUE, Deal.NEW)
            reqs = self._requests.lock_many(s, ids, actor=actor)
            locks.issuing_batch(s)
            self.refuse_pending(s, ids)
            earlier = self._requests.actions_by_many(s, ids, actor.username)
            fingerprints = {rid: spki_sha256(key) for rid, key in keys}
            taken = self._holders(s, list(fingerprints.values()))
            now = whole_seconds(self._ctx.now())
            public_url = read_public_url(s)  # once for the batch: the same transaction
            rows: list[dict[str, Any]] = []
            for rid, key in keys:
                req = reqs.get(rid)
                if req is None:
                    raise NotFoundError(f"request {rid} not found", message_zh=f"申请 {rid} 不存在")
                if req.deal is not Deal.NEW:
                    raise IssuanceError(
                        f"request {rid} is a {req.deal.value} deal: issue it on its own ('pkictl issue {rid}')",
                        message_zh="业务申请须单独签发",
                    )
                rule = wf.conflict(earlier.get(rid, set()), Action.ISSUE)
                if rule is not None:
                    raise SeparationOfDutiesError(f"{rule.reason} (request {rid})", message_zh=rule.reason_zh)
                transition(req.state, Action.ISSUE)
                holder = taken.get(fingerprints[rid])
                if holder is not None:
                    raise _key_reused(holder)
                values = self._certify(req, key, now, months=None, public_url=public_url)
                taken[fingerprints[rid]] = values["serial"]  # the same key twice in one batch is refused too
                rows.append(_row(values, actor, now, renewed_from_id=None, delivered=True))
            ca_slugs = [r.pop("_ca") for r in rows]
            new_ids = _insert(s, rows)
            at = self._ctx.now()
            self._requests.mark_issued_many(
                s,
                [reqs[rid] for rid in ids],
                actor=actor,
                at=at,
                issued_at=now,
                serials=[r["serial"] for r in rows],
            )
            audit.append_many(
                s,
                [
                    audit.Entry(
                        at,
                        actor.username,
                        "certificate.issue",
                        "certificate",
                        r["serial"],
                        {
                            "request": r["request_id"],
                            "kind": r["kind"].value,
                            "ca": ca,
                            "not_after": r["not_valid_after"].isoformat(),
                            "renewed_from": None,
                        },
                    )
                    for r, ca in zip(rows, ca_slugs, strict=True)
                ],
            )
            # Plain values, not ORM objects: building 500 table models costs more than issuing them.
            return [
                IssuedRow(i, r["serial"], r["request_id"], r["not_valid_after"], r["der"])
                for i, r in zip(new_ids, rows, strict=True)
            ]

    def _certify(
        self,
        req: Applicant,
        public_key: PublicKey,
        now: datetime,
        *,
        months: int | None,
        public_url: str | None,
        months_from: datetime | None = None,
        not_after: datetime | None = None,
    ) -> dict[str, Any]:
        """Build and sign the certificate for ``req``; return the certificate row's values (and ``_ca``).

        ``public_url``: the home's public URL as the caller's transaction reads it (None: ca.toml's URLs).
        ``months_from``: where the months count from (a renewal's carry-over: the old not-after), else now;
        ``not_after``: the end kept as is instead (a damaged key replaced within its warranty).
        """
        ca = self._authority.issuing_for(req.access_type)
        _refuse_other_family(ca, req.access_type, public_key)
        if not_after is None:
            not_after = add_months(months_from or now, months or req.validity_months)
        self._refuse_past_ca(ca, not_after)
        profiles = self._ctx.policies.profiles
        subject = certs.end_entity_name(
            unit_name=req.unit_name,
            province=req.province,
            locality=req.county,
            organization_identifier=req.credential_number if profiles.organization_identifier else None,
        )
        cert = certs.build_end_entity(
            ca.certificate,
            self._authority.key_for(ca),
            public_key,
            subject,
            x509.random_serial_number(),
            certs.Validity(now, not_after),
            policy_oid=profiles.kinds[req.access_type.value].policy_oid,
            publication=publication(self._ctx.policies.ca, public_url, ca.slug),
            organization_code_oid=profiles.organization_code_oid,
            organization_code=req.credential_number,
        )
        return {
            "serial": f"{cert.serial_number:X}",
            "ca_id": ca.id,
            "request_id": req.id,
            "kind": req.access_type,
            "subject": subject.rfc4514_string(),
            "unit_name": req.unit_name,
            "credential_number": req.credential_number,
            "province": req.province,
            "not_valid_before": now,
            "not_valid_after": not_after,
            "status": CertificateStatus.VALID,
            "key_algorithm": algorithm_of(public_key) or "",
            "spki_sha256": spki_sha256(public_key),
            "der": cert.public_bytes(Encoding.DER),
            "_ca": ca.slug,
        }

    def issue_locked(
        self,
        s: Session,
        req: Applicant,
        public_key: PublicKey,
        *,
        actor: Actor,
        months: int | None = None,
        months_from: datetime | None = None,
        renewed_from: Certificate | None = None,
        delivered: bool = True,
        pending_refused: bool = False,
        onto_token: int | None = None,
    ) -> Certificate:
        """The one issuance function: the rules, the certificate built and signed, its row and audit record.

        ``req`` (the request, or a row with the columns of :class:`Applicant`) is locked and admitted by the
        caller, who owns the transaction and moves the request: a first issuance from a CSR moves it to
        'issued' at once, a renewal (``renewed_from``) leaves its state alone, and an issuance onto a USB key
        (``delivered=False``) moves it when the certificate is on the key (services/token_issuance.py).
        A deal (``req.deal``: renew, rekey, change, replacement) follows its certificate: services/deals.py
        says where the months count from, what becomes of the old certificate and key, and whether the old key
        may be certified again; ``onto_token``, the USB key the certificate goes onto (a replacement never
        goes onto the old one).
        Raises IssuanceError when policy refuses (key reuse, validity past the issuing CA) and ConflictError
        while the request has a certificate waiting for its token.
        A new certificate may be issued in a write left out of the writers' order (Context.write(ordered=
        False)): it locks the public key it certifies. A deal's issuance must be ordered (checked).
        """
        assert req.id is not None
        if req.deal is not Deal.NEW:  # it settles the old certificate and key too: with the ordered writes
            audit.require_ordered(s)
        fingerprint = spki_sha256(public_key)
        locks.issuing(s, fingerprint)  # no other issuance of this key between the read and the commit
        pending, holders = _bearing(s, req.id, fingerprint)
        if pending is not None and not pending_refused:  # or the caller did, after locking the request
            raise _pending(*pending)
        terms = (  # a direct renewal names its predecessor; a deal's request names it
            None
            if renewed_from is not None
            else self._deals.terms(s, req.deal, req.subject_certificate_id, req.deal_reason)
        )
        not_after = None
        if terms is not None:
            _refuse_terms(terms, req, public_key, onto_token)
            renewed_from, months_from, not_after = terms.predecessor, terms.months_from, terms.not_after
            if not terms.same_key:
                _refuse_key_reuse(holders, req, renewing=False)
        else:
            _refuse_key_reuse(holders, req, renewing=renewed_from is not None)
        now = whole_seconds(self._ctx.now())
        values = _row(
            self._certify(
                req,
                public_key,
                now,
                months=months,
                public_url=read_public_url(s),
                months_from=months_from,
                not_after=not_after,
            ),
            actor,
            now,
            renewed_from_id=renewed_from.id if renewed_from else None,
            delivered=delivered,
        )
        ca_slug = values.pop("_ca")
        (new_id,) = _insert(s, [values])
        row = Certificate(id=new_id, **values)  # not loaded back: the row holds exactly these values
        audit.append(
            s,
            at=self._ctx.now(),
            actor=actor.username,
            action="certificate.renew" if renewed_from and _is_renewal(req.deal) else "certificate.issue",
            subject_type="certificate",
            subject_id=row.serial,
            details={
                "request": req.id,
                "kind": req.access_type.value,
                "ca": ca_slug,
                "not_after": row.not_valid_after.isoformat(),
                "renewed_from": renewed_from.serial if renewed_from else None,
                **({} if req.deal is Deal.NEW else {"deal": req.deal.value}),
            },
        )
        if terms is not None:
            self._settle_predecessor(s, terms, row, actor)
        return row

    def _settle_predecessor(self, s: Session, terms: DealTerms, new: Certificate, actor: Actor) -> None:
        """What a deal's issuance does to the old certificate and its key, in the issuing transaction."""
        old = terms.predecessor
        if terms.revoke_at_issue is not None:  # valid, or held: DealService.check saw to it
            comment = f"replaced by {new.serial}" if terms.old_key_mark else f"superseded by {new.serial}"
            self._revocation.revoke_locked(s, [old], terms.revoke_at_issue, actor=actor, comment=comment)
        if terms.old_key_mark and terms.old_token_id is not None:
            token = s.exec(select(UsbToken).where(UsbToken.id == terms.old_token_id).with_for_update()).one()
            if token.state is not self._ctx.policies.tokens.marks[terms.old_key_mark].state:
                self._inventory.mark_locked(
                    s, token, terms.old_key_mark, actor=actor, comment=f"replaced by {new.serial}"
                )

    # -- rules --------------------------------------------------------------------------------------------

    def checked_key(self, public_key: object) -> PublicKey:
        name = algorithm_of(public_key)
        allowed = self._ctx.policies.profiles.allowed_keys
        if name is None or name not in allowed:
            raise ValidationError(
                [
                    FieldError(
                        "csr", f"key type not accepted; allowed: {', '.join(allowed)}", "密钥类型不符合要求"
                    )
                ]
            )
        return public_key  # type: ignore[return-value]

    @staticmethod
    def refuse_pending(s: Session, request_ids: list[int]) -> None:
        """A request whose certificate is issued but not yet written to its USB key is issued again only by
        resuming that write (``pkictl issue ID --resume``), or once that certificate is revoked."""
        for i in range(0, len(request_ids), 500):
            hit = s.execute(_PENDING, {"ids": request_ids[i : i + 500]}).first()
            if hit is not None:
                raise _pending(hit[0], hit[1])

    @staticmethod
    def _holders(s: Session, fingerprints: list[str]) -> dict[str, str]:
        """Public-key fingerprint -> the serial of a certificate already holding it."""
        found: dict[str, str] = {}
        for i in range(0, len(fingerprints), 500):
            for fingerprint, serial in s.exec(
                select(Certificate.spki_sha256, Certificate.serial).where(
                    col(Certificate.spki_sha256).in_(fingerprints[i : i + 500])
                )
            ).all():
                found.setdefault(fingerprint, serial)
        return found

    @staticmethod
    def _refuse_past_ca(ca: LoadedCa, not_after: datetime) -> None:
        if not_after > ca.record.not_valid_after:
            limit = ca.record.not_valid_after.date().isoformat()
            raise IssuanceError(
                f"the certificate would end {not_after.date().isoformat()}, after its issuing CA {ca.slug!r}"
                f" ({limit}): choose a shorter validity",
                message_zh=f"证书有效期不能超过签发CA的有效期（{limit}）",
            )


def _row(
    values: dict[str, Any], actor: Actor, now: datetime, *, renewed_from_id: int | None, delivered: bool
) -> dict[str, Any]:
    """A certificate row: what _certify built plus who issued it, when, and whether it is delivered."""
    return {
        **values,
        "issued_by": actor.username,
        "issued_at": now,
        "renewed_from_id": renewed_from_id,
        "delivered": delivered,
        "revocation_comment": "",
    }


def _insert(s: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert certificate rows (without their ``_ca``) and return their ids, in order.

    Core, not the ORM: no unit-of-work bookkeeping for rows that are never loaded back.
    """
    values = [{**r, "kind": r["kind"].value, "status": r["status"].value} for r in rows]
    return list(s.execute(_INSERT, values[0] if len(values) == 1 else values).scalars().all())


def _refuse_other_family(ca: LoadedCa, kind: AccessType, public_key: PublicKey) -> None:
    """An SM2 CA certifies SM2 keys only (GM/T 0015), an RSA or ECDSA CA never SM2 keys: a CSR's algorithm
    must match its kind's."""
    ca_sm2 = is_sm2(ca.record.key_algorithm)
    if ca_sm2 == isinstance(public_key, sm2.Sm2PublicKey):
        return
    wanted, wanted_zh = ("SM2", "SM2") if ca_sm2 else ("RSA or ECDSA", "RSA或ECDSA")
    raise ValidationError(
        [
            FieldError(
                "csr",
                f"a {algorithm_of(public_key)} key cannot be certified for kind {kind.value!r}: its CA"
                f" {ca.slug!r} signs with {ca.record.key_algorithm} and takes {wanted} keys",
                f"密钥算法与证书类型不符：该类型只接受{wanted_zh}密钥",
            )
        ]
    )


def _is_renewal(deal: Deal) -> bool:
    return deal in (Deal.NEW, Deal.RENEW, Deal.REKEY)


def _refuse_terms(terms: DealTerms, req: Applicant, public_key: PublicKey, onto_token: int | None) -> None:
    """A renew deal certifies the old key and nothing else; a replacement never goes onto the old key."""
    same = spki_sha256(public_key) == terms.predecessor.spki_sha256
    if terms.same_key and not same:
        raise IssuanceError(
            f"request {req.id} is a renew deal: it certifies the key of certificate {terms.predecessor.serial} "
            f"again ('pkictl renew {terms.predecessor.serial}'); a new key pair is a rekey deal",
            message_zh="续期业务沿用原密钥；更换密钥请办理更新业务",
        )
    if onto_token is not None and onto_token == terms.old_token_id:
        raise IssuanceError(
            f"request {req.id} replaces the USB key of certificate {terms.predecessor.serial}: issue onto "
            "another key",
            message_zh="补办须使用新的USB Key",
        )


def _bearing(s: Session, request_id: int, fingerprint: str) -> tuple[tuple[int, str] | None, list[Any]]:
    """One read of the certificates that bear on an issuance: the request's certificate still waiting for its
    USB key, if any ((request id, serial)), and every certificate of the public key (serial, request id,
    revocation reason)."""
    rows = s.execute(_BEARING, {"rid": request_id, "fingerprint": fingerprint}).all()
    pending = next(((r.request_id, r.serial) for r in rows if r.pending), None)
    return pending, [(r.serial, r.request_id, r.revocation_reason) for r in rows if r.holds]


def _refuse_key_reuse(holders: Sequence[Any], req: Applicant, renewing: bool) -> None:
    """One key, one unit: a certified key may be certified again only when renewing the same request.
    ``holders``: the certificates of the key (serial, request id, revocation reason)."""
    others = [serial for serial, request_id, _ in holders if not renewing or request_id != req.id]
    if others:
        raise _key_reused(others[0])
    compromised = next(
        (serial for serial, _, reason in holders if reason is RevocationReason.KEY_COMPROMISE), None
    )
    if compromised is not None:
        raise IssuanceError(
            f"this public key was revoked for key compromise (certificate {compromised}): generate a new key",
            message_zh="该公钥已因密钥泄露被吊销，请重新生成密钥",
        )


def _pending(request_id: int, serial: str) -> ConflictError:
    return ConflictError(
        f"request {request_id} has certificate {serial} issued but not yet written to its USB key: "
        "finish it with 'pkictl issue --resume'",
        message_zh="该申请已签发证书但尚未写入USB Key，请使用 --resume 完成",
    )


def _key_reused(serial: str) -> IssuanceError:
    return IssuanceError(
        f"this public key is already certified (certificate {serial}): generate a new key",
        message_zh="该公钥已签发过证书，请重新生成密钥",
    )
