"""Revoking certificates (RFC 5280 reasons), one or a list, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import Session, col, select

from pki import audit
from pki.ca.validity import whole_seconds
from pki.enums import Action, CertificateStatus, Deal, RevocationReason
from pki.errors import ConflictError, FieldError, IssuanceError, NotFoundError, ValidationError
from pki.models import Certificate
from pki.services.authz import require_operation_or_deal
from pki.services.certificates import missing_certificate, normalize_serial
from pki.services.context import Actor, Context
from pki.services.deals import DealService, missing_deal
from pki.services.reasons import check_comment, parse_reason
from pki.services.scope import Scope, require_certificates_in_scope, scope_for


class RevocationService:
    def __init__(self, ctx: Context, deals: DealService) -> None:
        self._ctx = ctx
        self._deals = deals

    def revoke(
        self, serial: str, reason: RevocationReason | str | None, *, actor: Actor, comment: str = ""
    ) -> Certificate:
        """Revoke one certificate. Unknown, already revoked or expired certificates are refused."""
        return self.revoke_many([serial], reason, actor=actor, comment=comment)[0]

    def revoke_many(
        self,
        serials: Sequence[str],
        reason: RevocationReason | str | None,
        *,
        actor: Actor,
        comment: str = "",
    ) -> list[Certificate]:
        """Revoke every listed certificate in one transaction, or none when any of them is refused.

        A certificate with an approved revoke deal (注销) is revoked with the deal's reason (``reason``, if
        given, must agree) and its deal completes; the others only by the roles workflow.toml [operations]
        revoke names, with ``reason``."""
        why = parse_reason(reason if isinstance(reason, str) else reason.value) if reason else None
        comment = check_comment(comment)
        wanted = self._normalized(serials)
        with self._ctx.denials_recorded(actor, "revoke", "certificate"), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            require_operation_or_deal(
                self._ctx.policies.workflow, actor, "revoke", Action.COMPLETE, (Deal.REVOKE,)
            )
            certs = self._lock_all(s, wanted, scope_for(s, actor))
            deals = self._deals.approved_many(s, Deal.REVOKE, certs)
            undealt = [c for c in certs if c.id not in deals]
            if undealt and not self._ctx.policies.workflow.operation_allows(actor.roles, "revoke"):
                raise missing_deal(Deal.REVOKE, undealt[0].serial, actor)
            groups: dict[RevocationReason, list[Certificate]] = {}
            for cert in certs:
                groups.setdefault(self._reason_for(cert, why, deals.get(cert.id or 0)), []).append(cert)
            done: list[Certificate] = []
            for because, group in groups.items():
                if because is RevocationReason.KEY_COMPROMISE:
                    group += [c for c in self._sharing_a_key(s, group) if c not in done]
                self.revoke_locked(s, group, because, actor=actor, comment=comment)
                done += group
            for cert in certs:
                if cert.id in deals:
                    details = {"serial": cert.serial, "reason": deals[cert.id][1]}
                    self._deals.complete(s, deals[cert.id][0], actor, details)
            return done

    @staticmethod
    def _reason_for(
        cert: Certificate, given: RevocationReason | None, deal: tuple[int, str] | None
    ) -> RevocationReason:
        if deal is None:
            if given is None:
                raise ValidationError(
                    [FieldError("reason", "a revocation reason is required", "请选择吊销原因")]
                )
            return given
        agreed = RevocationReason(deal[1])
        if given is not None and given is not agreed:
            raise ValidationError(
                [
                    FieldError(
                        "reason",
                        f"certificate {cert.serial}'s revoke deal (request {deal[0]}) says {agreed.value}",
                        "吊销原因须与注销业务申请一致",
                    )
                ]
            )
        return agreed

    def revoke_locked(
        self, s: Session, certs: Sequence[Certificate], why: RevocationReason, *, actor: Actor, comment: str
    ) -> None:
        """Mark locked, checked certificates revoked and audit each, inside the caller's transaction."""
        now = self._ctx.now()
        for cert in certs:
            cert.status, cert.revoked_at = CertificateStatus.REVOKED, whole_seconds(now)
            cert.revocation_reason, cert.revocation_comment, cert.revoked_by = why, comment, actor.username
            s.add(cert)
        s.flush()
        audit.append_many(
            s,
            [
                audit.Entry(
                    now,
                    actor.username,
                    "certificate.revoke",
                    "certificate",
                    c.serial,
                    {"reason": why.value, "comment": comment, "request": c.request_id},
                )
                for c in certs
            ],
        )

    # -- hold and release (冻结/解冻) ------------------------------------------------------------------------

    def hold(self, serial: str, *, actor: Actor, comment: str = "") -> Certificate:
        """Suspend a valid certificate: certificateHold in the next CRL and the very next OCSP answer, until
        :meth:`release`, a revocation, or ca.toml [hold] max_days (then the next CRL publication revokes it)."""
        return self._hold_or_release(serial, actor=actor, comment=comment, hold=True)

    def release(self, serial: str, *, actor: Actor, comment: str = "") -> Certificate:
        """Lift a hold: the certificate is valid again, good in the very next OCSP answer and simply absent
        from the next CRL (RFC 5280 §5.3.1 keeps removeFromCRL for delta CRLs, which pkictl does not publish)."""
        return self._hold_or_release(serial, actor=actor, comment=comment, hold=False)

    def _hold_or_release(self, serial: str, *, actor: Actor, comment: str, hold: bool) -> Certificate:
        """One transaction: an approved hold (release) deal on the certificate completes with it; without one,
        only the roles workflow.toml [operations] hold names may act (an emergency hold at the center)."""
        comment = check_comment(comment)
        wanted = self._normalized([serial])
        action, deal = ("hold", Deal.HOLD) if hold else ("release", Deal.RELEASE)
        with self._ctx.denials_recorded(actor, action, "certificate", wanted[0]), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            require_operation_or_deal(self._ctx.policies.workflow, actor, "hold", Action.COMPLETE, (deal,))
            if hold:
                (cert,) = self._lock_all(s, wanted, scope_for(s, actor))
            else:
                cert = self._locked_hold(s, wanted[0], scope_for(s, actor))
            deal_id = self._deals.approved(s, deal, cert)
            if deal_id is None and not self._ctx.policies.workflow.operation_allows(actor.roles, "hold"):
                raise missing_deal(deal, cert.serial, actor)
            if hold:
                if cert.status is CertificateStatus.REVOKED:
                    raise ConflictError(f"certificate {cert.serial} is already held", message_zh="证书已冻结")
                cert.status, cert.revoked_at = CertificateStatus.REVOKED, whole_seconds(self._ctx.now())
                cert.revocation_reason, cert.revocation_comment = RevocationReason.CERTIFICATE_HOLD, comment
                cert.revoked_by = actor.username
            else:
                cert.status, cert.revoked_at, cert.revocation_reason = CertificateStatus.VALID, None, None
                cert.revocation_comment, cert.revoked_by = "", None
            s.add(cert)
            s.flush()
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor.username,
                action=f"certificate.{action}",
                subject_type="certificate",
                subject_id=cert.serial,
                details={"comment": comment, "request": cert.request_id, "deal": deal_id},
            )
            if deal_id is not None:
                self._deals.complete(s, deal_id, actor, {"serial": cert.serial})
            return cert

    def _locked_hold(self, s: Session, serial: str, scope: Scope) -> Certificate:
        cert = s.exec(select(Certificate).where(Certificate.serial == serial).with_for_update()).one_or_none()
        if cert is None:
            raise NotFoundError(f"no certificate with serial {serial}", message_zh="证书不存在")
        require_certificates_in_scope(s, scope, [cert], missing_certificate)
        if cert.revocation_reason is not RevocationReason.CERTIFICATE_HOLD:
            raise ConflictError(f"certificate {serial} is not held", message_zh="证书未冻结")
        return cert

    def expire_holds(self, s: Session, *, by: str) -> list[str]:
        """Inside the CRL publication's transaction: holds older than ca.toml [hold] max_days become
        revocations with its expiry_reason. The serials revoked."""
        policy = self._ctx.policies.ca
        since = self._ctx.now() - timedelta(days=policy.hold_max_days)
        stale = list(
            s.exec(
                select(Certificate)
                .where(
                    Certificate.revocation_reason == RevocationReason.CERTIFICATE_HOLD,
                    col(Certificate.revoked_at) <= since,
                )
                .with_for_update()
            ).all()
        )
        if stale:
            comment = f"held longer than {policy.hold_max_days} days"
            self.revoke_locked(
                s,
                stale,
                RevocationReason(policy.hold_expiry_reason),
                actor=Actor(by, frozenset()),
                comment=comment,
            )
        return [c.serial for c in stale]

    def _sharing_a_key(self, s: Session, certs: Sequence[Certificate]) -> list[Certificate]:
        """Other valid, unexpired certificates on the same keys (renewals without a new key): a compromised key
        compromises every certificate of it."""
        listed = {c.serial for c in certs}
        keys = sorted({c.spki_sha256 for c in certs})
        return list(
            s.exec(
                select(Certificate)
                .where(
                    col(Certificate.spki_sha256).in_(keys),
                    Certificate.status == CertificateStatus.VALID,
                    col(Certificate.not_valid_after) > self._ctx.now(),
                    col(Certificate.serial).not_in(listed),
                )
                .with_for_update()
            ).all()
        )

    @staticmethod
    def _normalized(serials: Sequence[str]) -> list[str]:
        if not serials:
            raise ValidationError([FieldError("serial", "no serial numbers given", "未提供证书序列号")])
        errors: list[FieldError] = []
        out: list[str] = []
        for raw in serials:
            try:
                serial = normalize_serial(raw)
            except ValidationError as e:
                errors.extend(e.errors)
                continue
            if serial in out:
                errors.append(FieldError("serial", f"{serial} is listed twice", "序列号重复"))
            out.append(serial)
        if errors:
            raise ValidationError(errors)
        return out

    def _lock_all(self, s: Session, serials: list[str], scope: Scope) -> list[Certificate]:
        """Lock every listed certificate (one query); refuse unknown ones (and those of requests outside
        ``scope``, alike), revoked and expired ones, naming them."""
        found: dict[str, Certificate] = {}
        for chunk in range(0, len(serials), 500):
            rows = s.exec(
                select(Certificate)
                .where(col(Certificate.serial).in_(serials[chunk : chunk + 500]))
                .with_for_update()
            ).all()
            found.update((c.serial, c) for c in rows)
        missing = [x for x in serials if x not in found]
        if missing:
            raise NotFoundError(
                f"no certificate with serial {', '.join(missing[:5])}"
                + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""),
                message_zh="证书不存在",
            )
        require_certificates_in_scope(s, scope, [found[x] for x in serials], missing_certificate)
        now = self._ctx.now()
        for serial in serials:
            cert = found[serial]
            if (
                cert.status is CertificateStatus.REVOKED
                and cert.revocation_reason is not RevocationReason.CERTIFICATE_HOLD
            ):
                assert cert.revoked_at is not None and cert.revocation_reason is not None
                raise ConflictError(
                    f"certificate {serial} was already revoked on {cert.revoked_at.isoformat()} "
                    f"({cert.revocation_reason.value})",
                    message_zh="证书已被吊销",
                )
            if cert.not_valid_after <= now:
                raise IssuanceError(
                    f"certificate {serial} expired on {cert.not_valid_after.isoformat()}: "
                    "an expired certificate is not revoked",
                    message_zh="证书已过期，无需吊销",
                )
        return [found[x] for x in serials]
