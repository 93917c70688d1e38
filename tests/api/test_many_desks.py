"""The center past one machine: two `pkictl serve` on one PostgreSQL, eight desk processes issuing 1,000
approved requests, each request tried by two desks at about the same moment. Each is issued exactly once,
serials are unique, and the audit chain verifies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from pki.services import Actor
from tests.support.bulk import approved_requests
from tests.support.desk_worker import result, spawn
from tests.support.server import PASSWORD, center_env, center_service, prepare_home, serving

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 1000
DESKS = 8


def people() -> dict[str, Actor]:
    return {
        "clerk": Actor("u-entry", frozenset({"entry"})),
        "acceptor": Actor("u-acceptor", frozenset({"acceptor"})),
        "head": Actor("u-head", frozenset({"head"})),
        "reviewer": Actor("u-reviewer", frozenset({"reviewer"})),
    }


@pytest.mark.postgres
def test_two_servers_eight_desks_each_request_issued_once(db_url: str, tmp_path: Path) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("servers share a PostgreSQL database; SQLite is one machine's")
    home = tmp_path / "home"
    prepare_home(home, db_url)
    env = center_env(home, db_url)
    svc = center_service(env)
    try:
        ids = approved_requests(svc, people(), REQUESTS)
    finally:
        svc.ctx.engine.dispose()
    with serving(env) as first, serving(env) as second:
        workers = []
        for desk in range(DESKS):
            mine = [rid for i, rid in enumerate(ids) if i % DESKS in (desk, (desk + 1) % DESKS)]
            server = first if desk % 2 == 0 else second
            workers.append(spawn(server, "u-distributor", PASSWORD, mine, tmp_path, f"desk-{desk}"))
        for w in workers:
            assert w.wait(timeout=600) == 0
    results = [result(tmp_path, f"desk-{d}") for d in range(DESKS)]
    issued = Counter(int(rid) for r in results for rid in r["issued"])
    assert sorted(issued) == sorted(ids) and set(issued.values()) == {1}  # each once, by one desk
    serials = [serial for r in results for serial in r["issued"].values()]
    assert len(set(serials)) == REQUESTS
    refusals = Counter(code for r in results for code in r["refused"].values())
    assert sum(refusals.values()) == REQUESTS  # the other desk's try
    assert set(refusals) <= {"invalid_transition", "conflict"}, refusals

    svc = center_service(env)
    try:
        with svc.ctx.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT request_id, count(*) FROM certificate GROUP BY request_id HAVING count(*) <> 1")
            ).all()
            states = conn.execute(
                text("SELECT state, count(*) FROM certificate_request GROUP BY state")
            ).all()
        assert rows == []
        assert dict(states) == {"issued": REQUESTS}
        assert svc.audit.verify().ok
    finally:
        svc.ctx.engine.dispose()
