"""When a certificate may be renewed (ca.toml [renewal]): the one check renewals and renew deals share."""

from __future__ import annotations

from datetime import datetime, timedelta

from pki.enums import CertificateStatus
from pki.errors import IssuanceError
from pki.models import Certificate
from policies.ca import CaPolicy


def check_renewable(policy: CaPolicy, old: Certificate, now: datetime) -> None:
    """IssuanceError unless ``old`` is renewable at ``now``: not revoked (nor held), and from ``window_days``
    before its end to ``after_expiry_days`` after."""
    if old.status is CertificateStatus.REVOKED:
        raise IssuanceError(
            f"certificate {old.serial} is revoked or held: a revoked certificate is not renewed, a held one "
            "is released first",
            message_zh="证书已吊销或冻结，不能更新",
        )
    after = policy.renewal_after_expiry_days
    if old.not_valid_after + timedelta(days=after) <= now:
        raise IssuanceError(
            f"certificate {old.serial} expired on {old.not_valid_after.date().isoformat()}, more than "
            f"{after} days ago (ca.toml [renewal] after_expiry_days): apply anew",
            message_zh="证书过期已超过可更新期限，请重新申请",
        )
    if old.request_id is None:
        raise IssuanceError(f"certificate {old.serial} has no request to renew from")
    opens = old.not_valid_after - timedelta(days=policy.renewal_window_days)
    if now < opens:
        raise IssuanceError(
            f"certificate {old.serial} can be renewed from {opens.date().isoformat()} "
            f"({policy.renewal_window_days} days before it ends)",
            message_zh=f"证书更新期自 {opens.date().isoformat()} 开始",
        )
