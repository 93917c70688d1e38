"""The service layer: the only way web/ and the CLI change anything."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from pki.audit_seal import AuditSeal
from pki.ca.keystore import KeyStore
from pki.clock import Clock, SystemClock
from pki.services.access import AccessService
from pki.services.attachments import AttachmentService
from pki.services.audit_log import AuditService
from pki.services.authority import AuthorityService
from pki.services.bulk import BulkService
from pki.services.certificates import CertificateFilter, CertificateService
from pki.services.context import Actor, Context
from pki.services.crl_publisher import CrlService
from pki.services.cutover import CutoverService
from pki.services.deal_options import DealOptionsService
from pki.services.deals import DealService
from pki.services.distribution import DistributionService
from pki.services.home_settings import HomeSettingsService
from pki.services.idempotency import IdempotencyService
from pki.services.inventory import InventoryService
from pki.services.issuance import IssuanceService
from pki.services.ocsp_responder import OcspService
from pki.services.parties import PartyService
from pki.services.points import PointService
from pki.services.reminders import ReminderService
from pki.services.renewal import RenewalService
from pki.services.requests import RequestFilter, RequestService
from pki.services.revocation import RevocationService
from pki.services.sessions import SessionService
from pki.services.stats import StatsService
from pki.services.stock import StockService
from pki.services.token_cleanup import TokenCleanupService
from pki.services.token_handshake import TokenHandshakeService
from pki.services.token_issuance import TokenIssuanceService
from pki.services.token_renewal import TokenRenewalService
from pki.services.token_reset import TokenResetService
from pki.services.token_secrets import TokenSecretService
from pki.services.unlock import UnlockService
from pki.services.users import UserService
from policies import Policies, load_policies


class Service:
    """One object per process (or per test) holding every sub-service over one engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        policies: Policies | None = None,
        clock: Clock | None = None,
        keys: KeyStore | None = None,
        audit_seal: AuditSeal | None = None,
    ) -> None:
        self.ctx = Context(
            engine=engine,
            policies=policies or load_policies(),
            clock=clock or SystemClock(),
            keys=keys,
            audit_seal=audit_seal,
        )
        self.users = UserService(self.ctx)
        self.points = PointService(self.ctx)
        self.sessions = SessionService(self.ctx, self.users)
        self.idempotency = IdempotencyService(self.ctx)
        self.settings = HomeSettingsService(self.ctx)
        self.requests = RequestService(self.ctx)
        self.bulk = BulkService(self.ctx, self.requests)
        self.audit = AuditService(self.ctx)
        self.authority = AuthorityService(self.ctx)
        self.deals = DealService(self.ctx, self.requests)
        self.deal_options = DealOptionsService(self.ctx, self.deals, self.requests)
        self.revocation = RevocationService(self.ctx, self.deals)
        self.inventory = InventoryService(self.ctx, self.revocation)
        self.issuance = IssuanceService(
            self.ctx, self.requests, self.authority, self.deals, self.revocation, self.inventory
        )
        self.certificates = CertificateService(self.ctx, self.authority)
        self.crl = CrlService(self.ctx, self.authority, self.revocation)
        self.renewal = RenewalService(self.ctx, self.issuance, self.revocation, self.requests, self.deals)
        self.ocsp = OcspService(self.ctx, self.authority)
        self.token_issuance = TokenIssuanceService(self.ctx, self.requests, self.issuance)
        self.token_handshake = TokenHandshakeService(self.ctx, self.token_issuance)
        self.token_renewal = TokenRenewalService(
            self.ctx, self.renewal, self.requests, self.issuance, self.deals
        )
        self.distribution = DistributionService(self.ctx, self.requests, self.revocation)
        self.stock = StockService(self.ctx)
        self.token_cleanup = TokenCleanupService(self.ctx)
        self.parties = PartyService(self.ctx)
        self.cutover = CutoverService(self.ctx)
        self.access = AccessService(self.ctx, self.authority)
        self.attachments = AttachmentService(self.ctx)
        self.stats = StatsService(self.ctx)
        self.reminders = ReminderService(self.ctx)
        self.token_secrets = TokenSecretService(self.ctx)
        self.token_reset = TokenResetService(self.ctx, self.token_secrets)
        self.unlock = UnlockService(self.ctx, self.requests, self.deals, self.token_secrets)


__all__ = ["Actor", "CertificateFilter", "RequestFilter", "Service"]
