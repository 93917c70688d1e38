"""Certificates: the CA hierarchy, issuance from a CSR, revocation, renewal, hand-over, lists and exports."""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from pki.desk.contract import Input, NoInput, acting, later, operation
from pki.desk.types import FileData, FileOut, RecordId, Serial, Text
from pki.enums import AccessType

if TYPE_CHECKING:
    from pki.services import Actor, Service

TAG = "certificates"


class IssueFromCsr(Input):
    request_id: RecordId
    csr: FileData


class ListCertificates(Input):
    status: Literal["valid", "revoked", "expired"] | None = None
    expiring_within: int | None = Field(default=None, ge=0, le=3650)
    kind: AccessType | None = None
    request_id: int | None = None  # a filter bound: the service checks and names it
    after_id: int | None = None  # the service checks the bound and names it (pki/ids.py)
    limit: int = Field(default=100, ge=1, le=10_000)


class CertificateRef(Input):
    serial: Serial


class Export(CertificateRef):
    format: Literal["pem", "der", "chain"] = "pem"


class Exported(BaseModel):
    format: str
    data: FileOut


class Revoke(Input):
    serials: list[Serial] = Field(max_length=10_000)  # none at all: the service says so
    # none: an approved revoke deal's (注销), for each certificate that has one
    reason: str | None = Field(default=None, max_length=64)
    comment: Text = ""


class Renew(CertificateRef):
    months: int | None = Field(default=None, ge=1, le=120)
    csr: FileData | None = None


class Hold(CertificateRef):
    comment: Text = ""


class Distribute(Input):
    request_id: RecordId
    recipient: str = Field(max_length=128)


def _schemas() -> Any:
    from pki.desk import schemas

    return schemas


@cache
def _detail() -> Any:
    from pydantic import create_model

    from pki.services.certificates import TokenPlacement

    return create_model(
        "CertificateDetail", __base__=_schemas().CertificateDoc, token=(TokenPlacement | None, ...)
    )


def _distributed() -> Any:
    from pki.services.distribution import Distributed

    return Distributed


CERTIFICATE = later(lambda: _schemas().CertificateDoc)
CERTIFICATES = later(lambda: list[_schemas().CertificateDoc])  # type: ignore[misc]


def _doc(svc: Service, cert: Any, status: str | None = None) -> dict[str, Any]:
    from pki.serialize import certificate_to_dict

    return certificate_to_dict(cert, status or svc.certificates.status_of(cert))


@operation(
    "ca.show",
    "GET",
    "/cas",
    NoInput,
    later(lambda: list[_schemas().CaDoc]),  # type: ignore[misc]
    summary="The CA hierarchy: root, issuing CAs, OCSP signers",
    tag=TAG,
    needs_actor=False,
)
def cas(svc: Service, actor: Actor | None, data: NoInput) -> Any:
    return svc.authority.all()


@operation(
    "issue.csr",
    "POST",
    "/requests/{request_id}/certificate",
    IssueFromCsr,
    CERTIFICATE,
    summary="Issue an approved request's certificate from a PKCS#10 CSR (the subject comes from the request)",
    tag=TAG,
    status=201,
)
def issue_from_csr(svc: Service, actor: Actor | None, data: IssueFromCsr) -> Any:
    return _doc(svc, svc.issuance.issue_from_csr(data.request_id, data.csr, actor=acting(actor)), "valid")


@operation(
    "cert.list",
    "GET",
    "/certificates",
    ListCertificates,
    CERTIFICATES,
    summary="List certificates",
    tag=TAG,
    needs_actor=False,
)
def find(svc: Service, actor: Actor | None, data: ListCertificates) -> Any:
    from pki.services import CertificateFilter

    rows = svc.certificates.find(
        CertificateFilter(
            status=data.status,
            kind=data.kind,
            expiring_within_days=data.expiring_within,
            request_id=data.request_id,
            after_id=data.after_id,
            limit=data.limit,
        ),
        actor=actor,
    )
    return [_doc(svc, c) for c in rows]


@operation(
    "cert.show",
    "GET",
    "/certificates/{serial}",
    CertificateRef,
    later(_detail),
    summary="One certificate and the USB key holding it",
    tag=TAG,
    needs_actor=False,
)
def show(svc: Service, actor: Actor | None, data: CertificateRef) -> Any:
    cert = svc.certificates.get(data.serial, actor=actor)
    placement = svc.certificates.placement(cert.id) if cert.id is not None else None
    return _doc(svc, cert) | {"token": asdict(placement) if placement else None}


@operation(
    "cert.export",
    "GET",
    "/certificates/{serial}/export",
    Export,
    Exported,
    summary="A certificate as PEM, DER, or PEM with its chain",
    tag=TAG,
    needs_actor=False,
)
def export(svc: Service, actor: Actor | None, data: Export) -> Any:
    return {"format": data.format, "data": svc.certificates.export(data.serial, data.format, actor=actor)}


@operation(
    "revoke",
    "POST",
    "/revocations",
    Revoke,
    CERTIFICATES,
    summary="Revoke certificates, all or none",
    tag=TAG,
)
def revoke(svc: Service, actor: Actor | None, data: Revoke) -> Any:
    done = svc.revocation.revoke_many(data.serials, data.reason, actor=acting(actor), comment=data.comment)
    return [_doc(svc, c, "revoked") for c in done]


@operation(
    "renew",
    "POST",
    "/certificates/{serial}/renewal",
    Renew,
    CERTIFICATE,
    summary="Renew a certificate inside its renewal window (rekey with a CSR)",
    tag=TAG,
    status=201,
)
def renew(svc: Service, actor: Actor | None, data: Renew) -> Any:
    new = svc.renewal.renew(data.serial, actor=acting(actor), months=data.months, csr=data.csr)
    return _doc(svc, new, "valid")


@operation(
    "hold",
    "POST",
    "/certificates/{serial}/hold",
    Hold,
    CERTIFICATE,
    summary="Hold a certificate (冻结, certificateHold) until it is released, revoked or held too long",
    tag=TAG,
)
def hold(svc: Service, actor: Actor | None, data: Hold) -> Any:
    return _doc(svc, svc.revocation.hold(data.serial, actor=acting(actor), comment=data.comment), "held")


@operation(
    "release",
    "POST",
    "/certificates/{serial}/release",
    Hold,
    CERTIFICATE,
    summary="Release a held certificate (解冻): valid again, gone from the next CRL",
    tag=TAG,
)
def release(svc: Service, actor: Actor | None, data: Hold) -> Any:
    return _doc(svc, svc.revocation.release(data.serial, actor=acting(actor), comment=data.comment), "valid")


@operation(
    "distribute",
    "POST",
    "/requests/{request_id}/distribution",
    Distribute,
    later(_distributed),
    summary="Record the hand-over of the USB key to the unit (分发)",
    tag=TAG,
)
def distribute(svc: Service, actor: Actor | None, data: Distribute) -> Any:
    return svc.distribution.distribute(data.request_id, recipient=data.recipient, actor=acting(actor))
