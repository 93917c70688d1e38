"""Expiry reminders: each unit's handler told, once per window (notify.toml), that a certificate ends soon,
and each point's summary of what a run sent.

A run first sends again whatever an earlier run claimed and did not finish (the same bytes, the same
Message-ID), then claims what is newly due (one transaction: every mail made and stored, one audit record),
then sends the claimed mails one by one, marking each as sent as soon as the server has accepted it. A run
killed at any point sends nothing twice that it had marked; a mail accepted by the server in the instant
before its mark is sent once more with its own Message-ID, which mail readers show once. Runs are meant to
follow one another (cron, a timer): two at the same moment could both send an earlier run's leftovers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import aliased
from sqlmodel import col

from pki import audit
from pki.clock import CHINA_TZ
from pki.enums import CertificateStatus
from pki.mail import Mailer
from pki.models import Certificate, CertificateRequest, Point, Reminder
from pki.services.authz import require_operation
from pki.services.context import Actor, Context

UNIT = "unit"
SUMMARY = "summary"


@dataclass(frozen=True)
class Due:
    """A certificate a run would remind its unit of now, and in which window."""

    certificate_id: int
    serial: str
    unit_name: str
    credential_number: str
    kind: str
    point: str  # the acceptance point of its request (services/scope.py)
    not_valid_after: datetime
    window_days: int
    days_left: int
    email: str
    handler_name: str


@dataclass(frozen=True)
class RunResult:
    due: list[Due]  # newly claimed by this run (what a dry run would claim)
    resent: int  # mails an earlier run had claimed and not finished, sent by this one
    sent: int  # every mail this run handed to the server, resent ones included
    summaries: int


class ReminderService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def due(self, *, at: datetime | None = None) -> list[Due]:
        """What a run at ``at`` would newly claim (a dry run: nothing written, nothing sent)."""
        with self._ctx.read() as s:
            return self._due(s, at or self._ctx.now())

    def run(
        self, mailer: Callable[[], Mailer], *, at: datetime | None = None, actor: Actor | None = None
    ) -> RunResult:
        """Send what an earlier run left, claim what is due at ``at`` and send it. ``mailer`` opens the SMTP
        connection (only when there is something to send). MailError leaves the unsent mails for next time."""
        now = at or self._ctx.now()
        by = actor.username if actor else "system"
        # A scheduled run (cron) names nobody: whoever can unlock the audit key may run it.
        if actor is not None:
            with self._ctx.denials_recorded(actor, "notify", "reminder"), self._ctx.read() as s:
                require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "notify")
        with self._ctx.read() as s:
            leftovers = s.execute(select(func.count()).where(col(Reminder.sent_at).is_(None))).scalar_one()
        due, summaries = self._claim(now, by)
        sent = 0
        if leftovers or due:
            with mailer() as m:
                sent = self._send_unsent(m)
        return RunResult(due=due, resent=leftovers, sent=sent, summaries=summaries)

    # -- claiming -----------------------------------------------------------------------------------------

    def _claim(self, now: datetime, by: str) -> tuple[list[Due], int]:
        policy = self._ctx.policies.notify
        with self._ctx.write() as s:
            due = self._due(s, now)
            if not due:
                return [], 0
            rows = [self._unit_row(d, now) for d in due]
            by_point: dict[str, list[Due]] = defaultdict(list)
            for d in due:
                by_point[d.point].append(d)
            if policy.summary_to:
                rows += [self._summary_row(point, items, now) for point, items in sorted(by_point.items())]
            s.add_all(rows)
            s.flush()
            audit.append(
                s,
                at=self._ctx.now(),
                actor=by,
                action="reminder.claim",
                subject_type="reminder",
                subject_id=str(rows[0].id),
                details={
                    "at": now.isoformat(),
                    "units": len(due),
                    "summaries": len(rows) - len(due),
                    "ids": [rows[0].id, rows[-1].id],
                },
            )
            return due, len(rows) - len(due)

    def _due(self, s: Any, now: datetime) -> list[Due]:
        """Valid, delivered certificates inside a window, not yet reminded of in it or a nearer one, and not
        outlived by a later certificate of the same unit and kind (a renewal, a replacement)."""
        policy = self._ctx.policies.notify
        later = aliased(Certificate)
        outlived = exists().where(
            and_(
                col(later.credential_number) == col(Certificate.credential_number),
                col(later.kind) == col(Certificate.kind),
                col(later.status) == CertificateStatus.VALID,
                col(later.delivered).is_(True),
                col(later.not_valid_after) > col(Certificate.not_valid_after),
            )
        )
        nearest = (
            select(col(Reminder.certificate_id), func.min(col(Reminder.window_days)).label("window"))
            .where(col(Reminder.certificate_id).is_not(None))
            .group_by(col(Reminder.certificate_id))
            .subquery()
        )
        horizon = now + timedelta(days=max(policy.windows_days))
        query = (
            select(
                col(Certificate.id),
                col(Certificate.serial),
                col(Certificate.unit_name),
                col(Certificate.credential_number),
                col(Certificate.kind),
                col(Certificate.not_valid_after),
                col(CertificateRequest.email),
                col(CertificateRequest.handler_name),
                col(Point.name).label("point"),
                nearest.c.window,
            )
            .join(CertificateRequest, col(CertificateRequest.id) == col(Certificate.request_id))
            .outerjoin(Point, col(Point.id) == col(CertificateRequest.point_id))
            .outerjoin(nearest, nearest.c.certificate_id == Certificate.id)
            .where(
                col(Certificate.status) == CertificateStatus.VALID,
                col(Certificate.delivered).is_(True),
                col(Certificate.not_valid_after) > now,
                col(Certificate.not_valid_after) <= horizon,
                ~outlived,
            )
            .order_by(col(Certificate.not_valid_after), col(Certificate.id))
        )
        out: list[Due] = []
        for row in s.execute(query):
            left = row.not_valid_after - now
            window = policy.window_for(left.total_seconds() / 86400)
            if window is None or (row.window is not None and row.window <= window):
                continue
            out.append(
                Due(
                    certificate_id=row.id,
                    serial=row.serial,
                    unit_name=row.unit_name,
                    credential_number=row.credential_number,
                    kind=row.kind.value,
                    point=row.point or "",
                    not_valid_after=row.not_valid_after,
                    window_days=window,
                    days_left=max(1, -(-left // timedelta(days=1))),  # started days count as days
                    email=row.email,
                    handler_name=row.handler_name,
                )
            )
        return out

    # -- the mails ----------------------------------------------------------------------------------------

    def _message(self, to: Iterable[str], subject: str, body: str, tag: str, now: datetime) -> EmailMessage:
        policy = self._ctx.policies.notify
        m = EmailMessage()
        m["From"] = policy.sender
        m["To"] = ", ".join(to)
        m["Subject"] = subject
        m["Date"] = format_datetime(now.astimezone(CHINA_TZ))
        m["Message-ID"] = make_msgid(idstring=tag, domain=policy.message_id_domain)
        m.set_content(body, charset="utf-8")
        return m

    def _unit_row(self, d: Due, now: datetime) -> Reminder:
        kind = self._ctx.policies.profiles.kinds[d.kind].label_zh
        ends = d.not_valid_after.astimezone(CHINA_TZ).strftime("%Y年%m月%d日 %H:%M")
        body = (
            f"{d.handler_name}：您好！\n\n"
            f"贵单位（{d.unit_name}，统一社会信用代码 {d.credential_number}）的{kind}"
            f"（序列号 {d.serial}）将于北京时间 {ends} 到期，距今约 {d.days_left} 天。\n\n"
            "证书到期后，使用该证书接入平台的系统将无法通过身份认证。"
            "请在到期前携带 USB Key 到受理点办理证书更新。\n\n"
            "此邮件由系统自动发送，请勿回复。\n"
            "国家电子政务外网数字证书中心\n"
        )
        subject = f"【证书到期提醒】{d.unit_name}的{kind}将于{ends[:11]}到期"
        m = self._message([d.email], subject, body, "expiry", now)
        return Reminder(
            kind=UNIT,
            certificate_id=d.certificate_id,
            window_days=d.window_days,
            point=d.point,
            recipient=d.email,
            message_id=str(m["Message-ID"]),
            message=m.as_bytes(policy=SMTP),
            claimed_at=now,
        )

    def _summary_row(self, point: str, items: list[Due], now: datetime) -> Reminder:
        to = self._ctx.policies.notify.summary_to
        lines = [
            f"{d.unit_name}\t{d.credential_number}\t{d.serial}\t"
            f"{d.not_valid_after.astimezone(CHINA_TZ):%Y-%m-%d}\t{d.window_days}天"
            for d in items
        ]
        body = (
            f"{point}：本次向 {len(items)} 家单位发送了证书到期提醒。\n\n"
            "单位名称\t统一社会信用代码\t证书序列号\t到期日期\t提醒窗口\n" + "\n".join(lines) + "\n"
        )
        subject = f"【证书到期提醒汇总】{point}：{len(items)} 张证书"
        m = self._message(to, subject, body, "expiry-summary", now)
        return Reminder(
            kind=SUMMARY,
            point=point,
            recipient=", ".join(to),
            message_id=str(m["Message-ID"]),
            message=m.as_bytes(policy=SMTP),
            claimed_at=now,
        )

    # -- sending ------------------------------------------------------------------------------------------

    def _send_unsent(self, mailer: Mailer) -> int:
        """Every claimed, unsent mail in claim order; each marked sent right after the server accepted it."""
        sender = parseaddr(self._ctx.policies.notify.sender)[1]
        with self._ctx.read() as s:
            unsent = s.execute(
                select(col(Reminder.id), col(Reminder.recipient), col(Reminder.message))
                .where(col(Reminder.sent_at).is_(None))
                .order_by(col(Reminder.id))
            ).all()
        for rid, recipient, message in unsent:
            mailer.send(sender, [a.strip() for a in recipient.split(",")], message)
            with self._ctx.write_plain() as s:
                s.execute(update(Reminder).where(col(Reminder.id) == rid).values(sent_at=self._ctx.now()))
        return len(unsent)
