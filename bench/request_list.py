"""The request-list page's server time with 100,000 requests (goal: p95 <= 50 ms).

Fills the database with --n requests in bulk (one multi-row INSERT per 5,000; states, provinces, access types
and entry dates spread out), then times GET requests through the real Flask app (routing, session, CSRF
plumbing, the service query, template rendering) across first pages, deep keyset pages and every filter.
Baseline, same run and same URLs: the bare service query (RequestFilter) that the page makes. The ratio is
page p95 / query p95 (what the web layer costs on top of the database).

    .venv/bin/python bench/request_list.py [--n 100000] [--db sqlite|postgresql] [--samples 600]
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from pki.enums import AccessType, RequestState
from pki.models import CertificateRequest
from pki.services import RequestFilter
from web import create_app

from _common import base_parser, environment, line, machine
from tests.support.data import application, make_uscc

PROVINCES = [
    ("北京", "110101"),
    ("上海", "310101"),
    ("浙江", "330102"),
    ("河南", "410102"),
    ("西藏", "540102"),
]
STATES = list(RequestState)


def fill(env: Any, n: int) -> list[int]:
    base = application()
    start = datetime(2020, 6, 1, tzinfo=UTC)
    rng = random.Random(7)
    rows = []
    for i in range(n):
        province, division = PROVINCES[i % len(PROVINCES)]
        at = start + timedelta(minutes=3 * i)
        rows.append(
            {
                **base,
                "unit_name": f"{province}某重点用能单位{i:06d}",
                "credential_number": make_uscc(division, f"{10000000 + i}"),
                "province": province,
                "access_type": AccessType.FORMAL if i % 3 == 0 else AccessType.TEST,
                "state": rng.choice(STATES),
                "application_date": at.date(),
                "agreement_accepted": True,
                "validity_months": 12,
                "handler_id_type": "resident_id",
                "credential_type": "uscc",
                "network": "extranet",
                "entered_by": "clerk",
                "entered_at": at,
                "updated_at": at,
            }
        )
    with env.engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(insert(CertificateRequest), rows[i : i + 5000])
    with env.engine.begin() as conn:
        # What autovacuum (PostgreSQL) or a routine ANALYZE would have done after a bulk load: the planner
        # needs statistics to pick the (province, id) and (state, id) indexes over a scan.
        conn.execute(text("ANALYZE"))
    return [r["credential_number"] for r in rows[:: max(1, n // 50)]]


def cases(n: int, codes: list[str], rng: random.Random) -> list[tuple[str, RequestFilter]]:
    """(URL, the RequestFilter the page builds for it) pairs: first pages, deep pages, each filter."""
    page = 51  # the page asks for one more row than it shows, to know whether a next page exists
    out: list[tuple[str, RequestFilter]] = [("/requests/", RequestFilter(limit=page, newest_first=True))]
    for _ in range(4):
        before = rng.randrange(2, n)
        out.append(
            (f"/requests/?before={before}", RequestFilter(limit=page, newest_first=True, before_id=before))
        )
    for province, _ in PROVINCES[:3]:
        out.append(
            (
                f"/requests/?province={province}",
                RequestFilter(limit=page, newest_first=True, province=province),
            )
        )
    for state in (RequestState.ENTERED, RequestState.APPROVED):
        out.append(
            (f"/requests/?state={state.value}", RequestFilter(limit=page, newest_first=True, state=state))
        )
    out.append(
        (
            "/requests/?access_type=formal&province=上海",
            RequestFilter(limit=page, newest_first=True, access_type=AccessType.FORMAL, province="上海"),
        )
    )
    out.append(
        (
            "/requests/?entered_from=2020-07-01&entered_to=2020-07-31",
            RequestFilter(
                limit=page, newest_first=True, entered_from=date(2020, 7, 1), entered_to=date(2020, 7, 31)
            ),
        )
    )
    code = rng.choice(codes)
    out.append((f"/requests/?q={code}", RequestFilter(limit=page, newest_first=True, search=code)))
    out.append(
        (
            "/requests/?q=某重点用能单位0999",
            RequestFilter(limit=page, newest_first=True, search="某重点用能单位0999"),
        )
    )
    out.append(
        ("/requests/queue", RequestFilter(limit=page, newest_first=True, states=(RequestState.ENTERED,)))
    )
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = base_parser(__doc__ or "", 100_000)
    parser.add_argument("--samples", type=int, default=600, help="timed page requests (default 600)")
    args = parser.parse_args()
    print(machine())
    with environment(args.db) as env:
        t0 = time.perf_counter()
        codes = fill(env, args.n)
        print(f"filled {args.n:,} requests in {time.perf_counter() - t0:.1f} s ({args.db})")
        app = create_app(env.service, {"TESTING": True, "SESSION_COOKIE_SECURE": False})
        client = app.test_client()
        with client.session_transaction() as sess:
            now = env.service.ctx.now().isoformat()
            sess.update({"_user_id": "acceptor", "_fresh": True, "login_at": now, "seen_at": now})
            sess.permanent = True
        rng = random.Random(11)
        work = cases(args.n, codes, rng)
        for url, flt in work:  # warm up: caches, compiled statements, templates
            assert client.get(url).status_code == 200, url
            env.service.requests.find(flt)
        page_ms: dict[str, list[float]] = {url: [] for url, _ in work}
        query_ms: dict[str, list[float]] = {url: [] for url, _ in work}
        for i in range(args.samples):
            url, flt = work[i % len(work)]
            t = time.perf_counter()
            response = client.get(url)
            page_ms[url].append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200
            t = time.perf_counter()
            env.service.requests.find(flt)
            query_ms[url].append((time.perf_counter() - t) * 1000)
        line()
        print(f"{'URL':<58} {'page p50':>9} {'page p95':>9} {'query p95':>9}")
        for url, _ in work:
            print(
                f"{url:<58} {statistics.median(page_ms[url]):>8.1f}  {pct(page_ms[url], 0.95):>8.1f}"
                f"  {pct(query_ms[url], 0.95):>8.1f}"
            )
        pages = [v for vs in page_ms.values() for v in vs]
        queries = [v for vs in query_ms.values() for v in vs]
        line()
        p95_page, p95_query = pct(pages, 0.95), pct(queries, 0.95)
        print(
            f"all pages:   p50 {statistics.median(pages):.1f} ms  p95 {p95_page:.1f} ms  (goal p95 <= 50 ms)"
        )
        print(f"bare query:  p50 {statistics.median(queries):.1f} ms  p95 {p95_query:.1f} ms")
        print(f"ratio page/query p95: {p95_page / p95_query:.2f}x")
        print("goal met" if p95_page <= 50 else "GOAL MISSED")


if __name__ == "__main__":
    main()
