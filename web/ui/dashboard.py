"""The dashboard: the signed-in person's own work first (their queues with waiting times; their points' USB key
stock for whoever keeps it; certificates about to expire for whoever renews them; users for admins), then the
centre's figures and the monthly chart."""

from __future__ import annotations

from flask import Blueprint, render_template
from markupsafe import Markup

from pki.enums import TOKEN_STATE_LABELS_ZH, Role, TokenState
from pki.services import CertificateFilter
from pki.services.stock import StockLine
from web.ui import actor, service
from web.ui.chart import monthly_bars

bp = Blueprint("dashboard", __name__)
EXPIRING_SHOWN = 10
EXPIRING_DAYS = 30
# The stock table's columns after 可用库存, in this order, each shown when some line has a key in it.
STOCK_COLUMNS_ZH: dict[str, str] = {
    TokenState.BLANK.value: TOKEN_STATE_LABELS_ZH[TokenState.BLANK],
    TokenState.RETURNED.value: TOKEN_STATE_LABELS_ZH[TokenState.RETURNED],
    "outgoing": "调出中",
    "incoming": "待接收",
    **{st.value: label for st, label in TOKEN_STATE_LABELS_ZH.items()},
}


@bp.get("/")
def index() -> str:
    svc = service()
    me = actor()
    workflow = svc.ctx.policies.workflow
    queue_states = svc.requests.queue_states(me)
    renews = workflow.operation_allows(me.roles, "renew")
    figures = svc.stats.dashboard(actor=me)
    stock = svc.stock.summary(actor=me) if workflow.operation_allows(me.roles, "token_stock") else None
    return render_template(
        "dashboard.html",
        figures=figures,
        chart=Markup(monthly_bars(figures.by_month)),  # noqa: S704 (built from numbers, text escaped)
        queue_states=queue_states,
        queues=svc.stats.work_queues(queue_states, actor=me),
        queue_labels=svc.deal_options.queue_labels(me),
        expiring=(
            svc.certificates.find(
                CertificateFilter(expiring_within_days=EXPIRING_DAYS, limit=EXPIRING_SHOWN), actor=me
            )
            if renews
            else None
        ),
        expiring_days=EXPIRING_DAYS,
        users=svc.users.directory(actor=me) if Role.ADMIN.value in me.roles else None,
        stock=stock,
        stock_columns=_stock_columns(stock or []),
    )


def _stock_columns(lines: list[StockLine]) -> dict[str, str]:
    return {key: label for key, label in STOCK_COLUMNS_ZH.items() if any(x.counts.get(key) for x in lines)}
