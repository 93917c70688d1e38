"""Sending mail through the SMTP server the environment names (PKI_SMTP_URL), with STARTTLS and login when
asked. The messages are made by the service (services/reminders.py); this module only delivers bytes."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from pki.errors import ConfigurationError, PkiError

TIMEOUT_S = 30.0


class MailError(PkiError):
    """The mail server refused or could not be reached; what was not sent stays for the next run."""

    code = "mail"


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: str  # "none", "starttls" or "implicit" (smtps://)
    username: str = ""
    password: str = ""

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


def smtp_server(url: str, password: str = "") -> SmtpServer:
    """``smtp://[user[:password]@]host[:port][?starttls=true]`` or ``smtps://…``; a password in the URL
    gives way to ``password`` (PKI_SMTP_PASSWORD) when that is set."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError(f"PKI_SMTP_URL {url!r}: expected smtp://host[:port] or smtps://host[:port]")
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["false"])[-1].lower() in ("1", "true", "yes")
    tls = "implicit" if parts.scheme == "smtps" else "starttls" if starttls else "none"
    try:
        port = parts.port or (465 if tls == "implicit" else 587 if starttls else 25)
    except ValueError:
        raise ConfigurationError(f"PKI_SMTP_URL {url!r}: the port is not a number") from None
    return SmtpServer(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username or ""),
        password=password or unquote(parts.password or ""),
    )


class Mailer:
    """One connection to the server for a run's mails, opened on first use."""

    def __init__(self, server: SmtpServer, context: ssl.SSLContext | None = None) -> None:
        self.server = server
        self._context = context or ssl.create_default_context()
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def send(self, sender: str, recipients: list[str], message: bytes) -> None:
        """Hand ``message`` to the server; returns once the server accepted it for every recipient."""
        try:
            refused = self._connection().sendmail(sender, recipients, message)
        except (smtplib.SMTPException, OSError) as e:
            raise self._failed(e) from None
        if refused:
            raise MailError(
                f"mail server {self.server.name} refused {', '.join(sorted(refused))}",
                message_zh=f"邮件服务器 {self.server.name} 拒收 {', '.join(sorted(refused))}",
            )

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            s = self.server
            smtp: smtplib.SMTP
            if s.tls == "implicit":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=TIMEOUT_S, context=self._context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=TIMEOUT_S)
            try:
                if s.tls == "starttls":
                    smtp.starttls(context=self._context)
                if s.username:
                    smtp.login(s.username, s.password)
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def _failed(self, e: Exception) -> MailError:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None
        why = str(e) or type(e).__name__
        return MailError(
            f"mail server {self.server.name}: {why}", message_zh=f"邮件服务器 {self.server.name} 发送失败"
        )
