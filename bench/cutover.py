"""Benchmark: `cutover plan` and `cutover run` over 100,000 parties, against a raw SQL baseline, with memory
measured at a tenth of the size and at the full size (it must not grow with the number of parties).

Goal: plan and run each ≤ 5 s at 100,000 parties; peak Python memory about the same at 10,000 and 100,000
(under 50 bytes per added party: holding the parties themselves would take hundreds of bytes each).

    .venv/bin/python bench/cutover.py [--n 100000] [--db sqlite|postgresql]

Set-up per size (not timed): fresh database and CA hierarchy; N parties on each of the two platforms
(production, test) and about N certificates by bulk SQL insert (placeholder der: plan and run read only
kind, dates and revocation): 60% formal and valid a year, 10% formal expiring within 30 days of the cutover,
10% test only, 5% formal revoked, 15% without a certificate.

Timed (production platform, at the cutover instant):
  plan       service.cutover.plan(days=30, sink=count)  every party through Python, totals per province
  baseline   the same GROUP BY join as one raw SQL statement, rows streamed and counted (no Python objects)
  run        service.cutover.run()  decisions written in chunks of 2,000 with the cursor, party states set
  baseline   INSERT INTO a scratch table SELECT the same join: one set-based statement
Memory (test platform, the same code paths): tracemalloc peak during plan and during run.
"""

from __future__ import annotations

import random
import sys
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import bindparam, insert, text

from pki.db import UTCDateTime
from pki.enums import AccessMode, AccessType, PartyKind
from pki.models import Certificate, Party

import _common as common
from tests.support.data import make_uscc

CUTOVER = datetime(2020, 11, 14, 16, 0, tzinfo=UTC)

JOIN = """
SELECT p.id, p.credential_number, p.name, p.province, p.party_kind,
  MAX(CASE WHEN c.kind = :accepted AND c.not_valid_before <= :t AND c.not_valid_after > :t
           AND (c.revoked_at IS NULL OR c.revoked_at > :t) THEN c.not_valid_after END) AS valid_until,
  MAX(CASE WHEN c.kind <> :accepted AND c.not_valid_before <= :t AND c.not_valid_after > :t
           AND (c.revoked_at IS NULL OR c.revoked_at > :t) THEN 1 ELSE 0 END) AS other_live,
  MAX(CASE WHEN c.kind = :accepted AND c.revoked_at <= :t THEN 1 ELSE 0 END) AS revoked
FROM party p LEFT JOIN certificate c ON c.credential_number = p.credential_number
WHERE p.platform = :platform
GROUP BY p.id, p.credential_number, p.name, p.province, p.party_kind
"""


def populate(env: common.Env, n: int) -> None:
    """N parties per platform and their certificates, by bulk insert."""
    rnd = random.Random(6)
    formal = env.service.authority.get("formal").id
    test = env.service.authority.get("test").id
    now = datetime.now(UTC)
    provinces = ["北京", "河北", "西藏", "上海", "新疆", "黑龙江"]
    parties: list[dict[str, Any]] = []
    certs: list[dict[str, Any]] = []
    for i in range(n):
        number = make_uscc("110101", f"{20000000 + i:08d}")
        province = provinces[i % len(provinces)]
        for platform in ("production", "test"):
            parties.append(
                {
                    "platform": platform,
                    "credential_number": number,
                    "name": f"单位{i}",
                    "province": province,
                    "party_kind": PartyKind.UNIT,
                    "access_mode": AccessMode.BATCH,
                    "industry": "",
                    "location": "",
                    "ownership_type": "",
                    "source_name": "bench",
                    "imported_by": "ops",
                    "imported_at": now,
                }
            )
        share = rnd.random()
        if share >= 0.85:
            continue  # no certificate
        kind, ca = (AccessType.TEST, test) if 0.60 <= share < 0.70 else (AccessType.FORMAL, formal)
        start = CUTOVER - timedelta(days=200)
        end = CUTOVER + (
            timedelta(days=rnd.randrange(1, 30)) if 0.70 <= share < 0.80 else timedelta(days=365)
        )
        revoked = share >= 0.80
        certs.append(
            {
                "serial": f"{rnd.getrandbits(150) | (1 << 140):X}",
                "ca_id": ca,
                "request_id": None,
                "kind": kind,
                "subject": f"CN=单位{i}",
                "unit_name": f"单位{i}",
                "credential_number": number,
                "province": province,
                "not_valid_before": start,
                "not_valid_after": end,
                "status": "revoked" if revoked else "valid",
                "revoked_at": CUTOVER - timedelta(days=10) if revoked else None,
                "revocation_reason": "keyCompromise" if revoked else None,
                "revocation_comment": "",
                "revoked_by": "ops" if revoked else None,
                "key_algorithm": "ec-p256",
                "spki_sha256": f"{rnd.getrandbits(256):064x}",
                "der": b"\x30\x03\x02\x01\x00",
                "issued_by": "distributor",
                "issued_at": start,
                "renewed_from_id": None,
                "delivered": True,
            }
        )
    with env.engine.begin() as conn:
        for lo in range(0, len(parties), 10_000):
            conn.execute(insert(Party), parties[lo : lo + 10_000])
        for lo in range(0, len(certs), 10_000):
            conn.execute(insert(Certificate), certs[lo : lo + 10_000])
        if env.engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE party"))
            conn.execute(text("ANALYZE certificate"))


def join_params() -> dict[str, Any]:
    return {"accepted": "formal", "t": CUTOVER, "platform": "production"}


def baseline_plan(env: common.Env) -> int:
    stmt = text(JOIN + " ORDER BY p.id").bindparams(bindparam("t", type_=UTCDateTime()))
    count = 0
    with env.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(stmt, join_params())
        for _ in result:
            count += 1
    return count


def baseline_run(env: common.Env) -> int:
    with env.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_decision"))
        conn.execute(text("CREATE TABLE bench_decision (party_id INTEGER PRIMARY KEY, allowed INTEGER)"))
        stmt = text(
            "INSERT INTO bench_decision (party_id, allowed) "
            "SELECT id, CASE WHEN valid_until IS NULL THEN 0 ELSE 1 END FROM (" + JOIN + ") j"
        ).bindparams(bindparam("t", type_=UTCDateTime()))
        return int(conn.execute(stmt, join_params()).rowcount)


def peak(fn: Callable[[], Any]) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def measure(db: str, n: int, keep: bool) -> dict[str, Any]:
    with common.environment(db, keep=keep, prefix="pkibench-cutover-") as env:
        _, _ = common.timed(lambda: populate(env, n))
        svc, ops = env.service, env.people["ops"]
        counted = [0]

        def sink(_row: object) -> None:
            counted[0] += 1

        baseline_plan(env)  # warm the caches of both paths alike
        plan_s, summary = common.timed(lambda: svc.cutover.plan(at=CUTOVER, days=30, sink=sink))
        base_plan_s, base_rows = common.timed(lambda: baseline_plan(env))
        assert counted[0] == base_rows == summary.parties == n, (counted, base_rows, summary.parties)
        run_s, run = common.timed(lambda: svc.cutover.run(actor=ops, at=CUTOVER))
        base_run_s, base_written = common.timed(lambda: baseline_run(env))
        assert run.allowed + run.refused == n and base_written == n
        plan_peak, _ = peak(lambda: svc.cutover.plan(platform="test", at=CUTOVER, days=30, sink=sink))
        run_peak, test_run = peak(lambda: svc.cutover.run(actor=ops, platform="test", at=CUTOVER))
        assert test_run.allowed + test_run.refused == n
        return {
            "n": n,
            "plan": plan_s,
            "plan_base": base_plan_s,
            "run": run_s,
            "run_base": base_run_s,
            "plan_peak": plan_peak,
            "run_peak": run_peak,
            "totals": {r.value: c for r, c in summary.totals.items()},
            "allowed": run.allowed,
            "refused": run.refused,
        }


def main() -> None:
    args = common.base_parser("cutover plan and run over many parties", 100_000).parse_args()
    print(f"cutover bench: db={args.db} {common.machine()}")
    small = measure(args.db, max(1, args.n // 10), args.keep)
    big = measure(args.db, args.n, args.keep)
    common.line()
    for m in (small, big):
        print(
            f"n={m['n']:>7}  plan {m['plan']:6.2f} s (raw SQL {m['plan_base']:5.2f} s, x{m['plan'] / m['plan_base']:.2f})"
            f"  run {m['run']:6.2f} s (set-based SQL {m['run_base']:5.2f} s, x{m['run'] / m['run_base']:.2f})"
            f"  peak plan {m['plan_peak'] / 1e6:5.1f} MB  run {m['run_peak'] / 1e6:5.1f} MB"
        )
    print(
        f"readiness at n={big['n']}: {big['totals']}; run: {big['allowed']} allowed, {big['refused']} refused"
    )
    added = big["n"] - small["n"]
    per_plan = (big["plan_peak"] - small["plan_peak"]) / added
    per_run = (big["run_peak"] - small["run_peak"]) / added
    print(
        f"peak memory per added party: plan {per_plan:.1f} B, run {per_run:.1f} B"
        " (holding the parties would take hundreds of bytes each)"
    )
    ok = big["plan"] <= 5 and big["run"] <= 5 and per_plan < 50 and per_run < 50
    print(f"goal (each <= 5 s, memory flat): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
