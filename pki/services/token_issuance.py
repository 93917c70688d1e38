"""Issuing onto a USB key: the key pair is generated on the token, the CSR signed there, the certificate issued
by the one issuance function and written back beside the key.

Phases, each safe to die after:

1. checks (role, separation of duties, state, nothing pending), then the key pair and CSR on the token.
   A failure here removes what was generated; the database is untouched.
2. one transaction: the certificate row with ``delivered = False`` and where it goes (token serial, label,
   model, key id). A failure in the transaction removes the key pair too.
3. the certificate object is written and read back; its DER must equal the record.
4. one transaction: the certificate marked delivered, the token marked issued to the unit, and the request
   moved to 'issued'.

The request moves to 'issued' at delivery (phase 4), not at issuance: 'issued' means "the certificate is on
the key" (see RequestState). A crash after phase 2 leaves the request 'approved' with an undelivered
certificate: every other issuance (and cancelling) of it is refused until ``resume`` finishes writing that
certificate, or until ops revoke it (a key lost mid-issuance), after which the request can be issued anew.

The token works in a thread of its own (services/token_device.py) while the database does what it can
meanwhile: on SQLite, phase 2's transaction reads and checks while the key pair is generated, and phase 4's
while the certificate is written, each from a snapshot without holding a lock, writing only once the token
is done (and starting over if another writer got in first: Context.write_beside). What is recorded and
the error reported first are those of doing them in turn (a refusal that came while the token failed is
still recorded as a security event, and named in a note); on PostgreSQL they are done in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from pki.ca.keys import is_sm2, spki_sha256
from pki.enums import ISSUING_DEALS, Action, CaRole, CertificateStatus, Deal, RequestState, TokenState
from pki.errors import ConflictError, IssuanceError, NotFoundError, TokenError
from pki.ids import known_id
from pki.lifecycle import transition
from pki.models import (
    Certificate,
    CertificateAuthority,
    CertificateRequest,
    Point,
    TokenCertificate,
    UsbToken,
)
from pki.services.authz import require_role
from pki.services.context import Actor, Context, Transaction
from pki.services.issuance import APPLICANT_COLUMNS, IssuanceService
from pki.services.requests import SUBJECT as REQUEST
from pki.services.requests import RequestService, missing_request, wrong_finish
from pki.services.scope import require_in_scope, scope_for
from pki.services.stock import blank_key
from pki.services.token_device import (
    TOKEN_WORKER,
    KeyPairOnToken,
    NewKey,
    TokenDevice,
    TokenIdentity,
    put_on_token,
    refuse_labelled,
    reported,
)

_CERTIFICATES = Certificate.__table__  # type: ignore[attr-defined]
_PLACEMENTS = TokenCertificate.__table__  # type: ignore[attr-defined]
_REQUESTS = CertificateRequest.__table__  # type: ignore[attr-defined]
_TOKENS = UsbToken.__table__  # type: ignore[attr-defined]
_POINTS = Point.__table__  # type: ignore[attr-defined]
_CAS = CertificateAuthority.__table__  # type: ignore[attr-defined]
# What phase 2 reads from the locked request: what issuing needs, and the model for the placement record.
_LOCKED_COLUMNS = tuple(_REQUESTS.c[name] for name in (*APPLICANT_COLUMNS, "usbkey_model"))

# Built once (building a statement costs more than running it on SQLite).
_PRECHECK = (
    sa_select(
        _REQUESTS.c.state,
        _REQUESTS.c.credential_number,
        sa_select(_CERTIFICATES.c.serial)
        .where(
            _CERTIFICATES.c.request_id == bindparam("rid"),
            _CERTIFICATES.c.delivered.is_(False),
            _CERTIFICATES.c.status == CertificateStatus.VALID,
        )
        .limit(1)
        .scalar_subquery(),
        _TOKENS.c.state,
        _TOKENS.c.holder_credential,
        _REQUESTS.c.point_id,
        _TOKENS.c.id.label("token_id"),
        _TOKENS.c.point_id.label("token_point"),
        _TOKENS.c.transfer_to_id,
        _POINTS.c.stock_kept,
        # the key type of the CA issuing for the request's kind (a USB key makes EC or RSA key pairs)
        sa_select(_CAS.c.key_algorithm)
        .where(_CAS.c.kind == _REQUESTS.c.access_type, _CAS.c.role == CaRole.ISSUING.value)
        .limit(1)
        .scalar_subquery()
        .label("ca_algorithm"),
        _REQUESTS.c.deal,
        _REQUESTS.c.usbkey_model,
    )
    .select_from(_REQUESTS)
    .outerjoin(_TOKENS, _TOKENS.c.serial == bindparam("token"))
    .outerjoin(_POINTS, _POINTS.c.id == _REQUESTS.c.point_id)
    .where(_REQUESTS.c.id == bindparam("rid"))
)
_LOCK_TOKEN = (
    sa_select(
        _TOKENS.c.id,
        _TOKENS.c.state,
        _TOKENS.c.holder_credential,
        _TOKENS.c.point_id,
        _TOKENS.c.transfer_to_id,
    )
    .where(_TOKENS.c.serial == bindparam("token"))
    .with_for_update()
)
_STOCK_KEPT = sa_select(_POINTS.c.stock_kept).where(_POINTS.c.id == bindparam("point"))
_INSERT_PLACEMENT = insert(_PLACEMENTS)
_LOCK_FOR_DELIVERY = (
    sa_select(
        _REQUESTS.c.id,
        _REQUESTS.c.version,
        _REQUESTS.c.state,
        _REQUESTS.c.unit_name,
        _REQUESTS.c.credential_number,
        _REQUESTS.c.point_id,
        _TOKENS.c.state.label("token_state"),
        _TOKENS.c.point_id.label("token_point"),
        _TOKENS.c.transfer_to_id,
    )
    .select_from(_REQUESTS)
    .join(_TOKENS, _TOKENS.c.serial == bindparam("token"))
    .where(_REQUESTS.c.id == bindparam("rid"))
    .with_for_update()
)
_MARK_DELIVERED = (
    update(_CERTIFICATES)
    .where(
        _CERTIFICATES.c.id == bindparam("cid"),
        _CERTIFICATES.c.delivered.is_(False),
        _CERTIFICATES.c.status == CertificateStatus.VALID,
    )
    .values(delivered=True)
)
_TOKEN_ISSUED = (
    update(_TOKENS)
    .where(_TOKENS.c.serial == bindparam("token"))
    .values(
        state=TokenState.ISSUED,
        holder_unit=bindparam("unit"),
        holder_credential=bindparam("credential"),
        updated_at=bindparam("now"),
        updated_by=bindparam("by"),
    )
)

# The certificates of ours a key holds, for a key whose holder's PIN is locked: valid and unexpired, the
# delivered ones first, then the newest; with the point of each one's request (a certificate's point).
_ON_KEY = (
    sa_select(_CERTIFICATES.c.serial, _REQUESTS.c.point_id)
    .select_from(_PLACEMENTS)
    .join(_TOKENS, _TOKENS.c.id == _PLACEMENTS.c.token_id)
    .join(_CERTIFICATES, _CERTIFICATES.c.id == _PLACEMENTS.c.certificate_id)
    .outerjoin(_REQUESTS, _REQUESTS.c.id == _CERTIFICATES.c.request_id)
    .where(
        _TOKENS.c.serial == bindparam("token"),
        _CERTIFICATES.c.status == CertificateStatus.VALID,
        _CERTIFICATES.c.not_valid_after > bindparam("now"),
    )
    .order_by(_CERTIFICATES.c.delivered.desc(), _CERTIFICATES.c.issued_at.desc(), _CERTIFICATES.c.id.desc())
)

# Tokens in these states take no new certificate.
_UNUSABLE = frozenset({TokenState.LOST, TokenState.DESTROYED, TokenState.SUSPENDED, TokenState.DEFECTIVE})
# Tokens that --all-approved may fill: new to us, blank, or back at the acceptance point.
_FILLABLE = frozenset({TokenState.BLANK, TokenState.RETURNED})


@dataclass(frozen=True)
class TokenIssued:
    request_id: int
    serial: str  # certificate serial, upper-case hex
    token_serial: str
    label: str  # CKA_LABEL of key pair and certificate
    key_id: str  # CKA_ID in hex
    key_type: str
    not_valid_after: datetime
    resumed: bool


@dataclass(frozen=True)
class Checked:
    """What phase 1's checks read of the request."""

    credential: str  # the unit's credential number, part of the objects' label
    model: str  # the USBKEY model the acceptor recorded
    deal: Deal  # a request's type never changes: its issuance may choose its transaction by it


@dataclass(frozen=True)
class PreChecked:
    """Phase 1 passed for this request, actor and token (see TokenIssuanceService.precheck)."""

    request_id: int
    username: str
    token_serial: str
    checked: Checked


@dataclass(frozen=True)
class QueuedRequest:
    id: int
    unit_name: str
    credential_number: str
    usbkey_model: str
    point_id: int | None = None


@dataclass(frozen=True)
class WaitingCertificate:
    """A certificate recorded for a request and not yet on its USB key, and where it goes."""

    certificate: Certificate
    placement: TokenCertificate
    token_serial: str


@dataclass(frozen=True)
class LockedKey:
    """What a USB key whose holder's PIN is locked holds of ours (TokenIssuanceService.locked_key)."""

    token_serial: str
    certificate: str | None  # the certificate its unlock deal names: of the actor's points, valid
    elsewhere: bool = False  # it holds a valid certificate of another acceptance point (not named)

    def refusal(self) -> TokenError:
        """The refusal that sends the distributor to the deal that fixes the key."""
        locked = (
            f"token {self.token_serial}'s user PIN is locked (CKF_USER_PIN_LOCKED): the key was left as it "
            "was and nothing was recorded"
        )
        zh = f"USB Key {self.token_serial} 的用户PIN已锁定，未做任何操作"
        if self.certificate is not None:
            return TokenError(
                f"{locked}. It holds certificate {self.certificate}: start an unlock deal with "
                f"'pkictl request new --type unlock --serial {self.certificate} --as USER', and once it is "
                "approved set the holder's new PIN with "
                f"'pkictl token unlock --token-serial {self.token_serial} --as USER'",
                message_zh=f"{zh}。该USB Key存有证书 {self.certificate}，请办理解锁业务",
                ckr="CKR_PIN_LOCKED",
            )
        if self.elsewhere:
            return TokenError(
                f"{locked}. It holds a certificate of another acceptance point: its unlock deal is made "
                "there",
                message_zh=f"{zh}。该USB Key存有其他受理点的证书，请到该受理点办理解锁",
                ckr="CKR_PIN_LOCKED",
            )
        return TokenError(
            f"{locked}. It holds no certificate of the center: initialise it again (this erases it) with "
            f"'pkictl token init --again --token-serial {self.token_serial} --token-label LABEL --as USER'",
            message_zh=f"{zh}。该USB Key未存有本中心的证书，请重新初始化",
            ckr="CKR_PIN_LOCKED",
        )


OBJECT_PREFIX = "pkictl-"


def object_label(request_id: int, credential_number: str) -> str:
    """The CKA_LABEL of what we put on a token for a request: readable in any token manager."""
    return f"{OBJECT_PREFIX}{request_id}-{credential_number}"


def request_of_label(label: str) -> int | None:
    """The request id in a label made by :func:`object_label`, or None."""
    number = label.removeprefix(OBJECT_PREFIX).partition("-")[0]
    return int(number) if label.startswith(OBJECT_PREFIX) and number.isdigit() else None


class TokenIssuanceService:
    def __init__(self, ctx: Context, requests: RequestService, issuance: IssuanceService) -> None:
        self._ctx = ctx
        self._requests = requests
        self._issuance = issuance

    # -- reads for the distributor ----------------------------------------------------------------------

    def approved_queue(self, limit: int = 10_000, *, actor: Actor | None = None) -> list[QueuedRequest]:
        """Approved requests of ``actor``'s scope without an undelivered certificate, oldest first: those
        that take a new key pair on a key (a new application, rekey, change, replacement; not a renewal of
        the same key, nor a deal that issues nothing)."""
        pending = select(Certificate.request_id).where(
            col(Certificate.delivered).is_(False),
            col(Certificate.request_id).is_not(None),
            Certificate.status == CertificateStatus.VALID,
        )
        stmt = (
            sa_select(
                col(CertificateRequest.id),
                col(CertificateRequest.unit_name),
                col(CertificateRequest.credential_number),
                col(CertificateRequest.usbkey_model),
                col(CertificateRequest.point_id),
            )
            .where(
                col(CertificateRequest.state) == RequestState.APPROVED,
                # a renew deal takes no key pair (`pkictl renew` writes it onto the unit's own key), a deal
                # that issues nothing no key at all
                col(CertificateRequest.deal).in_(sorted(ISSUING_DEALS - {Deal.RENEW})),
                col(CertificateRequest.id).not_in(pending),
            )
            .order_by(col(CertificateRequest.id))
            .limit(limit)
        )
        with self._ctx.read() as s:
            rows = s.execute(stmt.where(scope_for(s, actor).where(col(CertificateRequest.point_id)))).all()
        return [QueuedRequest(rid or 0, unit, code, model, point) for rid, unit, code, model, point in rows]

    def usbkey_model(self, request_id: int) -> str:
        """The USBKEY 品牌及型号 the acceptor recorded for the request."""
        return self._requests.get(request_id).usbkey_model

    def fillable(self, serials: Sequence[str]) -> list[str]:
        """Of the token serials present, those that may take a new certificate in a batch: unknown to the
        inventory, blank, or returned, and not in transit (in the order given)."""
        return list(self._fillable(serials))

    def pairs(
        self, queue: Sequence[QueuedRequest], serials: Sequence[str]
    ) -> list[tuple[QueuedRequest, str]]:
        """Each queued request with the first fillable key present that its point may issue onto (one it
        holds; a key new to us where the point keeps no stock), in queue and slot order."""
        keys = self._fillable(serials)
        with self._ctx.read() as s:
            kept = set(s.exec(select(Point.id).where(col(Point.stock_kept).is_(True))).all())
        out: list[tuple[QueuedRequest, str]] = []
        free = list(keys)
        for q in queue:
            hit = next(
                (x for x in free if keys[x] == q.point_id or (keys[x] is None and q.point_id not in kept)),
                None,
            )
            if hit is not None:
                free.remove(hit)
                out.append((q, hit))
        return out

    def _fillable(self, serials: Sequence[str]) -> dict[str, int | None]:
        """Fillable serials (see :meth:`fillable`) -> the point holding each (None: new to us)."""
        with self._ctx.read() as s:
            known = {
                serial: (state, point, moving)
                for serial, state, point, moving in s.exec(
                    select(UsbToken.serial, UsbToken.state, UsbToken.point_id, UsbToken.transfer_to_id).where(
                        col(UsbToken.serial).in_(serials)
                    )
                ).all()
            }
        out: dict[str, int | None] = {}
        for x in serials:
            if x not in known:
                out[x] = None
            elif known[x][0] in _FILLABLE and known[x][2] is None:
                out[x] = known[x][1]
        return out

    # -- issuing ----------------------------------------------------------------------------------------

    def precheck(self, request_id: int, *, actor: Actor, token_serial: str) -> PreChecked:
        """Phase 1's checks alone (read-only, the token untouched), so that an adapter can run them while it
        logs in to the token; hand the result to :meth:`issue`. Raises what :meth:`issue` would."""
        return PreChecked(
            request_id, actor.username, token_serial, self._check(request_id, actor, token_serial)
        )

    def issue(
        self,
        request_id: int,
        device: TokenDevice,
        *,
        actor: Actor,
        key_type: str,
        prechecked: PreChecked | None = None,
    ) -> TokenIssued:
        """Generate the key pair on ``device``, issue, write the certificate back and deliver (see module).

        ``prechecked`` (from :meth:`precheck` for this request, actor and token) saves repeating phase 1's
        checks; phase 2 checks role, duties and state again inside its transaction either way.
        """
        wanted = (request_id, actor.username, device.serial)
        if (
            prechecked is not None
            and (prechecked.request_id, prechecked.username, prechecked.token_serial) == wanted
        ):
            checked = prechecked.checked
        else:
            checked = self._check(request_id, actor, device.serial)
        label = object_label(request_id, checked.credential)
        refuse_labelled(device, label, request_id)
        new_key = NewKey(TOKEN_WORKER.submit(device.generate, key_type, label), label, self._issuance)
        try:
            cert = self._record(
                request_id, device, new_key, key_type, actor, ordered=checked.deal is not Deal.NEW
            )
        except BaseException as failure:
            key_id, on_token = new_key.settled()
            if key_id is not None:
                try:
                    device.remove(key_id)  # nothing recorded: leave the token as we found it
                except TokenError as cleanup:  # the token went away too: say so, but report the first failure
                    failure.add_note(
                        f"the new key pair {key_id.hex()} is still on the token: {cleanup.message}"
                    )
            first = reported(failure, on_token, "the issuance was refused too")
            if first is failure:
                raise
            raise first from None
        return self._write_and_deliver(cert, device, new_key.key_id, label, key_type, actor, resumed=False)

    def resume(self, request_id: int, device: TokenDevice, *, actor: Actor) -> TokenIssued:
        """Finish an interrupted issuance: write the recorded certificate onto its token and deliver it."""
        with (
            self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST, request_id),
            self._ctx.read() as s,
        ):
            self._check_actor(s, request_id, actor)
            pending = self._pending(s, request_id)
        if pending is None:
            raise NotFoundError(
                f"request {request_id} has no certificate waiting to be written to a token",
                message_zh="该申请没有待写入USB Key的证书",
            )
        cert, placement = pending.certificate, pending.placement
        if device.serial != pending.token_serial:
            raise TokenError(
                f"certificate {cert.serial} belongs on token {pending.token_serial}, not on {device.serial}: "
                "insert that token",
                message_zh="请插入签发时使用的USB Key",
                ckr="CKR_TOKEN_NOT_PRESENT",
            )
        key_id = bytes.fromhex(placement.key_id)
        public = device.public_key(key_id)
        if public is None or spki_sha256(public) != cert.spki_sha256:
            raise TokenError(
                f"token {device.serial} no longer holds the key pair of certificate {cert.serial} "
                f"(id {placement.key_id}): revoke it and issue anew",
                message_zh="USB Key上已无该证书对应的密钥",
            )
        return self._write_and_deliver(
            cert, device, key_id, placement.label, placement.key_type, actor, resumed=True
        )

    def locked_key(self, token_serial: str, *, actor: Actor) -> LockedKey:
        """For a USB key that reports its holder's PIN locked: the certificate of ours it holds (its unlock
        deal names it), the newest delivered one first (else one waiting for --resume, whose key pair the
        unlock keeps too). Read-only; for the roles that issue onto keys."""
        with (
            self._ctx.denials_recorded(actor, Action.ISSUE.value, "token", token_serial),
            self._ctx.read() as s,
        ):
            require_role(self._ctx.policies.workflow, self._ctx.resolve(s, actor), Action.ISSUE)
            scope = scope_for(s, actor)
            held = s.execute(_ON_KEY, {"token": token_serial, "now": self._ctx.now()}).all()
        mine = next((serial for serial, point in held if scope.covers(point)), None)
        return LockedKey(token_serial, mine, elsewhere=mine is None and bool(held))

    # -- phases ----------------------------------------------------------------------------------------

    def _check(self, request_id: int, actor: Actor, token_serial: str) -> Checked:
        """Phase 1's checks, read-only, before the token is touched: role, duties, state, nothing pending, the
        token usable. Three statements: the actor, the request with what is pending and the token's state, the
        actor's earlier actions on the request."""
        with (
            self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST, request_id),
            self._ctx.read() as s,
        ):
            resolved = self._ctx.resolve(s, actor)
            require_role(self._ctx.policies.workflow, resolved, Action.ISSUE)
            row = s.execute(_PRECHECK, {"rid": known_id(request_id), "token": token_serial}).first()
            if row is None:
                raise missing_request(request_id)
            state, credential, pending_serial, token_state_value, holder = row[:5]
            require_in_scope(
                scope_for(s, actor), row.point_id, missing_request(request_id), f"request {request_id}"
            )
            deal = Deal(row.deal)
            require_role(self._ctx.policies.workflow, resolved, Action.ISSUE, deal)
            self._requests.refuse_conflicting(s, request_id, actor, Action.ISSUE)
            renews = _renewed_by(s, request_id) if deal is Deal.RENEW else None
        if deal not in ISSUING_DEALS:
            raise wrong_finish(request_id, deal)
        transition(RequestState(state), Action.ISSUE, self._ctx.policies.workflow.route(deal))
        if renews is not None:
            raise renew_on_its_key(request_id, renews)
        if row.ca_algorithm is not None and is_sm2(row.ca_algorithm):
            raise IssuanceError(
                f"request {request_id}'s kind is issued by an SM2 CA, and USB keys here make EC or RSA key pairs:"
                " issue it from an SM2 CSR ('pkictl issue ID --csr FILE')",
                message_zh="该类证书由SM2 CA签发，USB Key暂不支持生成SM2密钥，请使用SM2证书请求签发",
            )
        if pending_serial is not None:
            raise ConflictError(
                f"request {request_id} has certificate {pending_serial} issued but not yet written to its token: "
                "finish it with --resume",
                message_zh="该申请已签发证书但尚未写入USB Key，请使用 --resume 完成",
            )
        if token_state_value is not None:
            refuse_token(token_serial, TokenState(token_state_value), holder, str(credential))
        if token_serial:
            _refuse_elsewhere(
                token_serial,
                request_id,
                row.point_id,
                row.token_id is not None,
                row.token_point,
                row.transfer_to_id,
                row.stock_kept,
            )
        return Checked(str(credential), str(row.usbkey_model), deal)

    def _check_actor(self, s: Session, request_id: int, actor: Actor) -> CertificateRequest:
        resolved = self._ctx.resolve(s, actor)
        require_role(self._ctx.policies.workflow, resolved, Action.ISSUE)
        req = self._requests.get_in_scope(s, request_id, actor)
        require_role(self._ctx.policies.workflow, resolved, Action.ISSUE, req.deal)
        self._requests.refuse_conflicting(s, request_id, actor, Action.ISSUE)
        if req.deal is Deal.RENEW:  # written onto the unit's key, and resumed, by `pkictl renew`
            raise renew_on_its_key(request_id, _renewed_by(s, request_id), resume=True)
        return req

    @staticmethod
    def _pending(s: Session, request_id: int) -> WaitingCertificate | None:
        row = s.exec(
            select(Certificate, TokenCertificate, UsbToken.serial)
            .join(TokenCertificate, col(TokenCertificate.certificate_id) == col(Certificate.id))
            .join(UsbToken, col(UsbToken.id) == col(TokenCertificate.token_id))
            .where(
                Certificate.request_id == request_id,
                col(Certificate.delivered).is_(False),
                Certificate.status == CertificateStatus.VALID,
            )
        ).first()
        return None if row is None else WaitingCertificate(row[0], row[1], row[2])

    def _record(
        self,
        request_id: int,
        device: TokenDevice,
        new_key: NewKey,
        key_type: str,
        actor: Actor,
        *,
        ordered: bool,
    ) -> Certificate:
        """Phase 2: issue (not yet delivered) and record where the certificate goes, in one transaction,
        which reads and checks while the token generates the key pair where it can (Context.write_beside).
        Not ``ordered`` (a new certificate): its rules rest on the request's and the key's rows it locks and
        on the public key's lock (IssuanceService.issue_locked); a deal's issuance is ordered."""
        return self._ctx.write_beside(
            lambda transaction: self._record_in(transaction, request_id, device, new_key, key_type, actor),
            new_key.public_key,
            ordered=ordered,
        )

    def _record_in(
        self,
        transaction: Transaction,
        request_id: int,
        device: TokenIdentity,
        new_key: KeyPairOnToken,
        key_type: str,
        actor: Actor,
    ) -> Certificate:
        with (
            self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST, request_id),
            transaction() as s,
        ):
            req = self._requests.lock_row(s, request_id, actor, Action.ISSUE, *_LOCKED_COLUMNS)
            token_id = self._token_row(s, device, req.credential_number, request_id, req.point_id)
            self._issuance.refuse_pending(s, [request_id])
            public_key = new_key.public_key()  # waits for the token
            if token_id is None:
                token_id = self._new_token_row(s, device, actor, req.point_id)
            cert = self._issuance.issue_locked(
                s, req, public_key, actor=actor, delivered=False, pending_refused=True, onto_token=token_id
            )
            s.execute(
                _INSERT_PLACEMENT,
                {
                    "certificate_id": cert.id,
                    "token_id": token_id,
                    "key_id": new_key.key_id.hex(),
                    "label": new_key.label,
                    "model": req.usbkey_model or device.model,
                    "key_type": key_type,
                },
            )
            return cert

    @staticmethod
    def _token_row(
        s: Session, device: TokenIdentity, credential: str, request_id: int, point_id: int | None
    ) -> int | None:
        """The token's inventory id (its row locked), None when it is new to us; refused when it may take no
        new certificate, or not at the request's point (point_id)."""
        found = s.execute(_LOCK_TOKEN, {"token": device.serial}).first()
        if found is None:
            kept = s.execute(_STOCK_KEPT, {"point": point_id}).scalar() if point_id is not None else None
            _refuse_elsewhere(device.serial, request_id, point_id, False, None, None, kept)
            return None
        refuse_token(device.serial, TokenState(found.state), found.holder_credential, credential)
        _refuse_elsewhere(
            device.serial, request_id, point_id, True, found.point_id, found.transfer_to_id, None
        )
        return int(found.id)

    def _new_token_row(self, s: Session, device: TokenIdentity, actor: Actor, point_id: int | None) -> int:
        """Record a token seen for the first time, blank, at the request's point."""
        token = blank_key(
            device.serial, device.model, point_id, by=actor.username, at=self._ctx.now(), label=device.label
        )
        s.add(token)
        s.flush()
        assert token.id is not None
        return token.id

    def _write_and_deliver(
        self,
        cert: Certificate,
        device: TokenDevice,
        key_id: bytes,
        label: str,
        key_type: str,
        actor: Actor,
        *,
        resumed: bool,
    ) -> TokenIssued:
        """Phases 3 and 4. A token failure here leaves the certificate recorded, undelivered, for --resume.

        The delivery transaction reads and checks while the token writes where it can (Context.write_beside),
        and writes only once the certificate has been read back and matched.
        """
        assert cert.request_id is not None
        writing = TOKEN_WORKER.submit(put_on_token, cert, device, key_id, label, resumed=resumed)
        try:
            self._ctx.write_beside(
                lambda transaction: self._deliver(transaction, cert, device.serial, actor, writing),
                writing.result,
                ordered=False,  # see _deliver
            )
        except BaseException as failure:
            first = reported(failure, writing.exception(), "the delivery failed too")  # waits for the token
            if first is failure:
                raise
            raise first from None
        return TokenIssued(
            cert.request_id,
            cert.serial,
            device.serial,
            label,
            key_id.hex(),
            key_type,
            cert.not_valid_after,
            resumed,
        )

    def _deliver(
        self,
        transaction: Transaction,
        cert: Certificate,
        token_serial: str,
        actor: Actor,
        written: Future[None],
    ) -> None:
        """Phase 4, one transaction: delivered, token issued to the unit, request 'issued'.

        The actor's role is re-read and the request and token re-locked; separation of duties was checked for
        this actor and request in phase 2 (or by resume) and nothing the actor did since can change it. Plain
        statements: one read, three updates and the audit append. ``written``: phase 3, running beside; its
        outcome is awaited before the first write (its failure changes nothing).
        """
        assert cert.request_id is not None and cert.id is not None
        with (
            self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST, cert.request_id),
            transaction() as s,
        ):
            require_role(self._ctx.policies.workflow, self._ctx.resolve(s, actor), Action.ISSUE)
            req = s.execute(_LOCK_FOR_DELIVERY, {"rid": cert.request_id, "token": token_serial}).one()
            transition(req.state, Action.ISSUE)
            written.result()
            now = self._ctx.now()
            record_delivery(
                s,
                cert,
                token_serial,
                req.token_state,
                req.unit_name,
                req.credential_number,
                by=actor.username,
                at=now,
            )
            _refuse_elsewhere(  # (a refusal rolls the writes back)
                token_serial, cert.request_id, req.point_id, True, req.token_point, req.transfer_to_id, None
            )
            self._requests.mark_issued_many(
                s,
                [req],
                actor=actor,
                at=now,
                issued_at=cert.issued_at,
                serials=[cert.serial],
                details=[{"token": token_serial}],
            )

    # -- inventory helper for other services ------------------------------------------------------------

    @staticmethod
    def certificate_counts(s: Session) -> dict[int, int]:
        """token id -> number of certificates recorded on it."""
        return dict(
            s.exec(
                select(TokenCertificate.token_id, func.count()).group_by(col(TokenCertificate.token_id))
            ).all()
        )


def record_delivery(
    s: Session,
    cert: Certificate,
    token_serial: str,
    token_state: TokenState,
    unit: str,
    credential: str,
    *,
    by: str,
    at: datetime,
) -> None:
    """Phase 4's writes, in the caller's transaction (an issuance's, or a renewal's onto its key,
    services/token_renewal.py): the certificate delivered (refused if it was delivered or revoked
    meanwhile), then, unless the token (locked, ``token_state``) may take no certificate now, the token
    issued to the unit."""
    marked = s.execute(_MARK_DELIVERED, {"cid": cert.id})
    if marked.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            f"certificate {cert.serial} was delivered or revoked meanwhile: nothing changed",
            message_zh="该证书已交付或已被吊销",
        )
    refuse_token(token_serial, token_state, None, credential)
    s.execute(
        _TOKEN_ISSUED, {"token": token_serial, "unit": unit, "credential": credential, "now": at, "by": by}
    )


def _renewed_by(s: Session, request_id: int) -> str:
    """The serial of the certificate a renew deal renews."""
    return s.exec(
        select(Certificate.serial)
        .join(CertificateRequest, col(CertificateRequest.subject_certificate_id) == col(Certificate.id))
        .where(CertificateRequest.id == request_id)
    ).one()


def renew_on_its_key(request_id: int, serial: str, *, resume: bool = False) -> IssuanceError:
    """A renew deal certifies the key pair already on the unit's USB key again: no new key pair is made, and
    the certificate is written onto that key by `pkictl renew` (services/token_renewal.py)."""
    tail = " --resume" if resume else ""
    return IssuanceError(
        f"request {request_id} is a renew deal: the key pair of certificate {serial} is certified again and "
        f"its renewal written onto the USB key holding it, with 'pkictl renew {serial} "
        f"(--token-label L | --token-serial S){tail} --as USER'",
        message_zh="续期业务沿用原USB Key中的密钥，请使用 pkictl renew 办理",
    )


def _refuse_elsewhere(
    serial: str,
    request_id: int,
    point_id: int | None,
    known: bool,
    token_point: int | None,
    transfer_to: int | None,
    stock_kept: bool | None,
) -> None:
    """A key is issued onto only at the point that holds it (the request's point, ``point_id``), not while in
    transit; a key new to us only where the point keeps no stock (else it is taken in first)."""
    if not known:
        if stock_kept:
            raise ConflictError(
                f"token {serial} is not in the stock of request {request_id}'s acceptance point: "
                "take it in first ('pkictl token intake')",
                message_zh="该USB Key不在本受理点库存中，请先入库",
            )
        return
    if transfer_to is not None:
        raise ConflictError(
            f"token {serial} is in transit to another acceptance point: it is issued onto once received there",
            message_zh="该USB Key正在调拨中，不能签发",
        )
    if token_point is not None and token_point != point_id:
        raise ConflictError(
            f"token {serial} is held by another acceptance point than request {request_id}'s: a key is issued "
            "onto only at the point holding it (transfer it first)",
            message_zh="该USB Key属于其他受理点，只能由持有它的受理点签发",
        )


def refuse_token(serial: str, state: TokenState, holder: str | None, credential: str) -> None:
    """A token takes a new certificate unless it is lost, destroyed, suspended or defective, or holds another
    unit's."""
    if state in _UNUSABLE:
        raise ConflictError(
            f"token {serial} is recorded as {state.value}: it takes no new certificate",
            message_zh="该USB Key已挂失、销毁、暂停或故障退回，不能签发",
        )
    if state == TokenState.ISSUED and holder is not None and holder != credential:
        raise ConflictError(
            f"token {serial} holds unit {holder}'s certificate: one key serves one unit "
            "(mark it returned first if it was handed back)",
            message_zh="该USB Key已发放给其他单位，一个USB Key只能用于一个单位",
        )
