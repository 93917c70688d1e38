"""A real SMTP server process for mail tests: aiosmtpd, storing what it accepts in a Maildir.

    python -m tests.support.smtp MAILDIR PORT [--tls CERT KEY] [--login USER PASSWORD]

With --tls the server offers STARTTLS and requires it before MAIL; with --login it requires AUTH (after
STARTTLS). It prints "ready" once it listens and stops on SIGTERM.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.support.server import free_port


@dataclass(frozen=True)
class SmtpProcess:
    url: str
    maildir: Path

    def messages(self) -> list[EmailMessage]:
        """Every message the server accepted, oldest first."""
        new = self.maildir / "new"
        found = [(p.stat().st_mtime_ns, p.name, p) for p in new.iterdir()] if new.is_dir() else []
        return [
            message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for _, _, path in sorted(found)
        ]


@contextmanager
def smtp_server(
    directory: Path, *, tls: tuple[Path, Path] | None = None, login: tuple[str, str] | None = None
) -> Iterator[SmtpProcess]:
    port = free_port()
    maildir = directory / "maildir"
    argv = [sys.executable, "-m", "tests.support.smtp", str(maildir), str(port)]
    if tls:
        argv += ["--tls", str(tls[0]), str(tls[1])]
    if login:
        argv += ["--login", *login]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2], text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", (
            "SMTP server did not start"
        )
        user = f"{login[0]}@" if login else ""
        yield SmtpProcess(f"smtp://{user}127.0.0.1:{port}" + ("?starttls=true" if tls else ""), maildir)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str]) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox
    from aiosmtpd.smtp import AuthResult, LoginPassword

    maildir, port, rest = Path(argv[0]), int(argv[1]), argv[2:]
    maildir.parent.mkdir(parents=True, exist_ok=True)  # Maildir makes cur, new and tmp in a new directory
    options: dict[str, Any] = {}
    if "--tls" in rest:
        i = rest.index("--tls")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(rest[i + 1], rest[i + 2])
        options |= {"tls_context": context, "require_starttls": True}
    if "--login" in rest:
        i = rest.index("--login")
        user, password = rest[i + 1].encode(), rest[i + 2].encode()

        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (user, password)
            return AuthResult(success=ok)

        options |= {"authenticator": check, "auth_required": True, "auth_require_tls": "--tls" in rest}
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port, **options)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
