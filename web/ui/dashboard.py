"""The dashboard: the signed-in person's own work first (their queues with waiting times; certificates
about to expire for whoever renews them; users for admins), then the centre's figures and the monthly chart."""

from __future__ import annotations

from flask import Blueprint, render_template
from markupsafe import Markup

from pki.enums import QUEUE_LABELS_ZH, Role
from pki.services import CertificateFilter
from web.ui import actor, service
from web.ui.chart import monthly_bars

bp = Blueprint("dashboard", __name__)
EXPIRING_SHOWN = 10
EXPIRING_DAYS = 30


@bp.get("/")
def index() -> str:
    svc = service()
    me = actor()
    workflow = svc.ctx.policies.workflow
    queue_states = svc.requests.queue_states(me)
    renews = workflow.operation_allows(me.roles, "renew")
    figures = svc.stats.dashboard(actor=me)
    return render_template(
        "dashboard.html",
        figures=figures,
        chart=Markup(monthly_bars(figures.by_month)),  # noqa: S704 (built from numbers, text escaped)
        queue_states=queue_states,
        queues=svc.stats.work_queues(queue_states, actor=me),
        queue_labels=QUEUE_LABELS_ZH,
        expiring=(
            svc.certificates.find(
                CertificateFilter(expiring_within_days=EXPIRING_DAYS, limit=EXPIRING_SHOWN), actor=me
            )
            if renews
            else None
        ),
        expiring_days=EXPIRING_DAYS,
        users=svc.users.directory(actor=me) if Role.ADMIN.value in me.roles else None,
    )
