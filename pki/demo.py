"""A demo home: one user per role with random passwords (printed once) and applications in several states.

Never part of `pkictl init`: only `pkictl demo` calls this, and it marks the home with a DEMO file.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from pki.bootstrap import initialize
from pki.config import Settings
from pki.enums import AccessType, Action, Role
from pki.errors import ConflictError
from pki.services import Actor, Service

MARKER = "DEMO"
DEMO_USBKEY = "SoftHSM2"  # tokens.toml model of the demo USB key that `pkictl demo` creates

DEMO_USERS: tuple[tuple[str, str, Role], ...] = (
    ("demo-admin", "演示管理员", Role.ADMIN),
    ("demo-entry", "演示录入员", Role.ENTRY),
    ("demo-acceptor", "演示受理人", Role.ACCEPTOR),
    ("demo-head", "演示负责人", Role.HEAD),
    ("demo-reviewer", "演示审核员", Role.REVIEWER),
    ("demo-distributor", "演示分发员", Role.DISTRIBUTOR),
    ("demo-ops", "演示运维", Role.OPS),
    ("demo-desk", "演示受理点分发员", Role.DISTRIBUTOR),  # works through the API, as a remote desk does
)
DESK_USER = "demo-desk"

# (unit, credit code, province, access type, how far it gets)
DEMO_UNITS: tuple[tuple[str, str, str, str, str], ...] = (
    ("【演示】北京市节能监测中心", "11110000000012343B", "北京", "formal", "approved"),
    ("【演示】上海某化工厂", "91310115MA1FL00079", "上海", "test", "issued"),
    ("【演示】福州某能源公司", "91350100MA2Y123446", "福建", "test", "countersigned"),
    ("【演示】北京某热电厂", "911101011234567889", "北京", "test", "accepted"),
    ("【演示】拉萨某水泥厂", "91540100MA6T00012D", "西藏", "test", "entered"),
    ("【演示】北京某钢铁厂", "911101011234567889", "北京", "formal", "returned"),
)


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    password: str


def is_demo_home(home: Path) -> bool:
    return (home / MARKER).exists()


PASSPHRASE_FILE = "DEMO-CA-PASSPHRASE"  # noqa: S105 (a file name)
AUDIT_PASSPHRASE_FILE = "DEMO-AUDIT-PASSPHRASE"  # noqa: S105 (a file name)
# The demo desk's password, kept so that scripts/demo can log a desk in to the demo server.
DESK_PASSWORD_FILE = "DEMO-DESK-PASSWORD"  # noqa: S105 (a file name)


DEMO_URL = "http://127.0.0.1:8000"  # where `scripts/demo` serves by default


def open_demo_home(settings: Settings, public_url: str = DEMO_URL) -> Service:
    """Initialize the home for a demo, CA included. A demo lives in the home's own SQLite file: it refuses a
    configured PKI_DATABASE_URL, so that demo users can never land in a shared or production database.

    The demo CA's and audit key's passphrases are random and kept beside them in DEMO-CA-PASSPHRASE and
    DEMO-AUDIT-PASSPHRASE (owner-only), which is what makes a demo a demo: never keep a real passphrase next
    to its key. ``public_url`` is where the demo will be served: its certificates point there.
    """
    if settings.database_url != settings.default_database_url():
        raise ConflictError("pkictl demo uses the home's own SQLite database: unset PKI_DATABASE_URL")
    return initialize(
        settings,
        lambda: demo_passphrase(settings.home),
        audit_passphrase=lambda: demo_passphrase(settings.home, AUDIT_PASSPHRASE_FILE),
        public_url=public_url,
    )


def demo_passphrase(home: Path, name: str = PASSPHRASE_FILE) -> str:
    path = home / name
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(24))
    return path.read_text(encoding="ascii").strip()


def seed(service: Service, home: Path) -> list[DemoUser]:
    """Create the demo users and applications. Raises ConflictError on a home that already has users."""
    if service.users.count() and not is_demo_home(home):
        raise ConflictError(f"{home} is not an empty or demo home: refusing to add demo users to it")
    if service.users.count():
        raise ConflictError(f"{home} is already seeded: remove it to start the demo afresh")
    (home / MARKER).write_text(
        "This home was created by `pkictl demo`. Do not use it for real certificates.\n", encoding="utf-8"
    )
    users = [DemoUser(name, role, secrets.token_urlsafe(12)) for name, _, role in DEMO_USERS]
    admin: Actor | None = None
    for (_, display, _), u in zip(DEMO_USERS, users, strict=True):
        service.users.add(u.username, u.password, [u.role.value], actor=admin, display_name=display)
        if admin is None:
            admin = service.users.authenticate(u.username, u.password, source="demo")
    actors = {
        u.role: service.users.authenticate(u.username, u.password, source="demo")
        for u in users
        if u.username != DESK_USER
    }
    desk = next(u for u in users if u.username == DESK_USER)
    fd = os.open(home / DESK_PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(desk.password)
    for unit, code, province, access, stage in DEMO_UNITS:
        _walk(service, actors, _application(unit, code, province, access), stage)
    service.crl.publish(actor=actors[Role.OPS])
    return users


def _application(unit: str, code: str, province: str, access: str) -> dict[str, Any]:
    return {
        "unit_name": unit,
        "legal_representative": "张三",
        "unit_phone": "010-12345678",
        "unit_fax": "010-12345679",
        "handler_name": "李四",
        "handler_contact": "13800138000",
        "address": f"{province}演示地址1号",
        "county": "",
        "township": "",
        "email": "demo@example.gov.cn",
        "handler_id_type": "resident_id",
        "handler_id_number": "110105199003071239",
        "postal_address": f"{province}演示地址1号",
        "postal_code": "100032",
        "credential_type": "uscc",
        "credential_number": code,
        "province": province,
        "network": "extranet",
        "access_type": access,
        "target_system": "国家重点用能单位能耗在线监测系统",
        "validity_months": 12,
        "agreement_accepted": True,
        "application_date": "2020-10-20",
    }


def _walk(service: Service, a: dict[Role, Actor], app: dict[str, Any], stage: str) -> None:
    req = service.requests.create(app, actor=a[Role.ENTRY])
    assert req.id is not None
    if stage == "entered":
        return
    # The request left approved waits for the demo USB key (SoftHSM2, tokens.toml); the others name a real model.
    usbkey = DEMO_USBKEY if stage == "approved" else "飞天诚信 ePass3003"
    for kind in service.ctx.policies.workflow.acceptance.attachments_for(AccessType(app["access_type"])):
        service.attachments.add(
            req.id, kind=kind, filename="演示扫描件.pdf", data=blank_pdf(), actor=a[Role.ENTRY]
        )
    # 北京某钢铁厂 shares 北京某热电厂's credit code: the acceptor is warned, and confirms here.
    service.requests.accept(
        req.id, actor=a[Role.ACCEPTOR], agree=True, usbkey_model=usbkey, confirm_uscc=True
    )
    if stage == "accepted":
        return
    service.requests.countersign(req.id, actor=a[Role.HEAD])
    if stage == "countersigned":
        return
    if stage == "returned":
        service.requests.review(
            req.id, actor=a[Role.REVIEWER], decision=Action.RETURN, reason="演示：请补充传真号码"
        )
        return
    service.requests.review(req.id, actor=a[Role.REVIEWER], decision=Action.APPROVE)
    if stage == "issued":
        # The demo's key is made in software; on a real acceptance point it is generated on the USB key.
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
        service.issuance.issue_from_csr(req.id, csr.public_bytes(Encoding.PEM), actor=a[Role.DISTRIBUTOR])


def blank_pdf() -> bytes:
    """A one-page blank A4 PDF: the demo's stand-in for a scanned, stamped application form."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
