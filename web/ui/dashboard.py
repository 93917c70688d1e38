"""The dashboard: counts by status and kind, certificates expiring soon, issuance and expiry by month."""

from __future__ import annotations

from flask import Blueprint, render_template
from markupsafe import Markup

from web.ui import actor, service
from web.ui.chart import monthly_bars

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index() -> str:
    svc = service()
    figures = svc.stats.dashboard(actor=actor())
    return render_template(
        "dashboard.html",
        figures=figures,
        chart=Markup(monthly_bars(figures.by_month)),  # noqa: S704 (built from numbers, text escaped)
        queue_states=svc.requests.queue_states(actor()),
    )
