"""Expiry reminders through a real SMTP server process (aiosmtpd): the right units, once per window, the
nearest window only, nothing for renewed or revoked certificates, a summary per point, STARTTLS and login,
and a server that fails mid-run leaving the rest for the next run."""

from __future__ import annotations

import ssl
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from pki.clock import FixedClock
from pki.mail import Mailer, MailError, smtp_server
from pki.models import Certificate, Reminder
from pki.models.point import DEFAULT_POINT
from pki.services import Actor, Service
from tests.support.data import make_uscc
from tests.support.pki import approved, csr_for, key
from tests.support.points import CHANGSHA, WUHAN, add_points
from tests.support.smtp import SmtpProcess
from tests.support.smtp import smtp_server as smtp_process
from tests.support.tls import server_certificate

_keys = iter(range(3000, 4000))
_units = iter(range(93000000, 94000000))


def issue(
    service: Service,
    people: dict[str, Actor],
    unit: str,
    email: str,
    province: str = "北京",
    point: str | None = None,
) -> Certificate:
    division = "110101" if province == "北京" else "130100"
    number = make_uscc(division, str(next(_units)))
    rid = approved(
        service, people, unit_name=unit, email=email, province=province, credential_number=number, point=point
    )
    return service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
    )


def mailer(smtp: SmtpProcess, context: ssl.SSLContext | None = None, password: str = "") -> Mailer:
    return Mailer(smtp_server(smtp.url, password), context)


def by_recipient(smtp: SmtpProcess) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in smtp.messages():
        out.setdefault(str(m["To"]), []).append(str(m["Subject"]))
    return out


@pytest.fixture
def smtp(tmp_path: Path):  # type: ignore[no-untyped-def]
    with smtp_process(tmp_path / "smtp") as server:
        yield server


def test_each_unit_is_reminded_once_per_window(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, smtp: SmtpProcess
) -> None:
    add_points(ca_service, people["admin"])
    a = issue(ca_service, people, "甲单位", "a@example.gov.cn", point=WUHAN)
    clock.advance(timedelta(days=31))
    b = issue(ca_service, people, "乙单位", "b@example.gov.cn", province="河北", point=CHANGSHA)
    clock.advance(timedelta(days=23))
    c = issue(ca_service, people, "丙单位", "c@example.gov.cn")
    revoked = issue(ca_service, people, "丁单位", "d@example.gov.cn")
    ca_service.revocation.revoke(revoked.serial, "cessation-of-operation", actor=people["ops"])
    # Five days before a ends: a is inside 7 days, b (36 days) and c (59 days) inside 60.
    clock.set(a.not_valid_after - timedelta(days=5))
    preview = ca_service.reminders.due()
    assert [(d.serial, d.window_days, d.days_left) for d in preview] == [
        (a.serial, 7, 5),
        (b.serial, 60, 36),
        (c.serial, 60, 59),
    ]
    with Session(ca_service.ctx.engine) as s:  # a dry run writes nothing
        assert s.exec(select(Reminder)).all() == []

    first = ca_service.reminders.run(lambda: mailer(smtp))
    assert [d.serial for d in first.due] == [a.serial, b.serial, c.serial]
    assert (first.sent, first.summaries, first.resent) == (6, 3, 0)  # 3 units, a summary for each point
    mails = smtp.messages()
    units = {str(m["To"]): m for m in mails if "汇总" not in str(m["Subject"])}
    assert sorted(units) == ["a@example.gov.cn", "b@example.gov.cn", "c@example.gov.cn"]
    body = units["a@example.gov.cn"].get_body().get_content()  # type: ignore[union-attr]
    assert a.serial in body and "甲单位" in body and "李四" in body and "约 5 天" in body
    assert "甲单位" in str(units["a@example.gov.cn"]["Subject"])
    summaries = {str(m["Subject"]): m for m in mails if "汇总" in str(m["Subject"])}
    assert sorted(summaries) == sorted(
        f"【证书到期提醒汇总】{point}：1 张证书" for point in (WUHAN, CHANGSHA, DEFAULT_POINT)
    )
    assert c.serial in summaries[f"【证书到期提醒汇总】{DEFAULT_POINT}：1 张证书"].get_body().get_content()  # type: ignore[union-attr]
    assert all(str(m["To"]) == "ops@ca.example.gov.cn" for m in summaries.values())
    assert len({str(m["Message-ID"]) for m in mails}) == len(mails)

    # The same day again: nothing new.
    again = ca_service.reminders.run(lambda: mailer(smtp))
    assert (again.due, again.sent) == ([], 0) and len(smtp.messages()) == 6
    # Ten days on: a has expired (no mail), b enters 30 days (26 left), c stays in 60 (49 left).
    clock.advance(timedelta(days=10))
    later = ca_service.reminders.run(lambda: mailer(smtp))
    assert [(d.serial, d.window_days) for d in later.due] == [(b.serial, 30)]
    assert by_recipient(smtp)["b@example.gov.cn"][-1].startswith("【证书到期提醒】乙单位")
    assert len(smtp.messages()) == 8  # b's mail and its point's summary


def test_a_renewed_certificate_is_not_reminded_of(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, smtp: SmtpProcess
) -> None:
    old = issue(ca_service, people, "戊单位", "e@example.gov.cn")
    clock.set(old.not_valid_after - timedelta(days=40))
    renewed = ca_service.renewal.renew(old.serial, actor=people["ops"])
    assert renewed.not_valid_after > old.not_valid_after
    assert ca_service.reminders.due() == []
    assert ca_service.reminders.run(lambda: mailer(smtp)).sent == 0 and smtp.messages() == []


def test_a_failing_server_leaves_the_rest_for_the_next_run(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, tmp_path: Path
) -> None:
    certs = [issue(ca_service, people, f"单位{i}", f"u{i}@example.gov.cn") for i in range(3)]
    clock.set(certs[0].not_valid_after - timedelta(days=20))
    with smtp_process(tmp_path / "a") as smtp:
        url = smtp.url
    # The server is gone: the run claims, names the server, and sends nothing.
    with pytest.raises(MailError, match=r"mail server 127\.0\.0\.1:\d+"):
        ca_service.reminders.run(lambda: Mailer(smtp_server(url)))
    with Session(ca_service.ctx.engine) as s:
        claimed = s.exec(select(Reminder)).all()
    assert len(claimed) == 4 and all(r.sent_at is None for r in claimed)
    with smtp_process(tmp_path / "b") as smtp:
        done = ca_service.reminders.run(lambda: mailer(smtp))
        assert (done.due, done.resent, done.sent) == ([], 4, 4)
        mails = smtp.messages()
    assert sorted(str(m["Message-ID"]).strip() for m in mails) == sorted(r.message_id for r in claimed)


def test_starttls_and_login(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, tmp_path: Path
) -> None:
    cert = issue(ca_service, people, "己单位", "f@example.gov.cn")
    clock.set(cert.not_valid_after - timedelta(days=3))
    pem, private = server_certificate(tmp_path)
    trusted = ssl.create_default_context(cafile=str(pem))
    with smtp_process(tmp_path / "smtp", tls=(pem, private), login=("pkictl", "s3cret")) as smtp:
        assert smtp.url.startswith("smtp://pkictl@127.0.0.1:") and smtp.url.endswith("?starttls=true")
        with pytest.raises(MailError, match="mail server"):
            ca_service.reminders.run(lambda: mailer(smtp, trusted, password="wrong"))
        done = ca_service.reminders.run(lambda: mailer(smtp, trusted, password="s3cret"))
        assert done.sent == 2 and str(smtp.messages()[0]["To"]) == "f@example.gov.cn"


def test_smtp_urls() -> None:
    assert smtp_server("smtp://mail.example:2525").port == 2525
    s = smtp_server("smtp://ops%40ca:pw@mail.example?starttls=true", "from-env")
    assert (s.host, s.port, s.tls, s.username, s.password) == (
        "mail.example",
        587,
        "starttls",
        "ops@ca",
        "from-env",
    )
    assert smtp_server("smtps://mail.example").port == 465
    from pki.errors import ConfigurationError

    for bad in ("http://mail.example", "smtp://", "smtp://mail.example:port"):
        with pytest.raises(ConfigurationError, match="PKI_SMTP_URL"):
            smtp_server(bad)
