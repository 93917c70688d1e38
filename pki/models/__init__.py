"""Tables, one module per concept; importing this package registers them all on SQLModel.metadata."""

from pki.models.access import LoginFailure
from pki.models.api import ApiSession, IdempotencyRecord
from pki.models.attachment import RequestAttachment
from pki.models.audit import AuditHead, AuditRecord
from pki.models.ca import Certificate, CertificateAuthority, CrlRecord
from pki.models.cutover import CutoverDecision, CutoverRun, Evidence, Party
from pki.models.point import Point
from pki.models.reminder import Reminder
from pki.models.setting import HomeSetting
from pki.models.token import HandOver, TokenCertificate, UsbToken
from pki.models.token_secret import TokenSoPin
from pki.models.workflow import CertificateRequest, ImportBatch, User

__all__ = [
    "ApiSession",
    "AuditHead",
    "AuditRecord",
    "Certificate",
    "CertificateAuthority",
    "CertificateRequest",
    "CrlRecord",
    "CutoverDecision",
    "CutoverRun",
    "Evidence",
    "HandOver",
    "HomeSetting",
    "IdempotencyRecord",
    "ImportBatch",
    "LoginFailure",
    "Party",
    "Point",
    "Reminder",
    "RequestAttachment",
    "TokenCertificate",
    "TokenSoPin",
    "UsbToken",
    "User",
]
