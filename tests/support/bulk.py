"""Many approved requests quickly, for load tests and benchmarks: a bulk import through the service, then
one UPDATE to 'approved' with the three audit records per request that walking it would have written (so
the chain verifies and the separation-of-duties lookups see what they would). Walking thousands of
requests through accept, countersign and review one by one takes minutes and is not what is measured."""

from __future__ import annotations

import csv
import io

from sqlalchemy import update

from pki import audit
from pki.enums import Action, RequestState
from pki.models import CertificateRequest
from pki.services import Actor, Service
from tests.support.data import batch_defaults, make_uscc


def uscc(i: int) -> str:
    return make_uscc("110101", f"{70000000 + i:08d}")


def unit_name(i: int) -> str:
    return f"北京市某能源监测中心{i:06d}"


def approved_requests(
    svc: Service, people: dict[str, Actor], count: int, *, usbkey: str = "飞天诚信 ePass3003", first: int = 0
) -> list[int]:
    """``count`` units imported by ``people["clerk"]`` and approved as if by acceptor, head and reviewer."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["单位名称", "统一社会信用代码"])
    for i in range(first, first + count):
        w.writerow([unit_name(i), uscc(i)])
    result = svc.bulk.import_units(
        buf.getvalue().encode("utf-8"),
        actor=people["clerk"],
        defaults=batch_defaults(),
        label="bulk approval",
    )
    ids = result.request_ids
    assert len(ids) == count, (len(ids), result.rejected[:3])
    now = svc.ctx.now()
    acceptor, head, reviewer = people["acceptor"], people["head"], people["reviewer"]
    steps = [
        (
            acceptor,
            Action.ACCEPT,
            RequestState.ENTERED,
            RequestState.ACCEPTED,
            {"usbkey": usbkey, "comment": ""},
        ),
        (head, Action.COUNTERSIGN, RequestState.ACCEPTED, RequestState.COUNTERSIGNED, {}),
        (reviewer, Action.APPROVE, RequestState.COUNTERSIGNED, RequestState.APPROVED, {"reason": ""}),
    ]
    with svc.ctx.write() as s:
        for lo in range(0, count, 5000):
            chunk = ids[lo : lo + 5000]
            s.execute(
                update(CertificateRequest)
                .where(CertificateRequest.id.in_(chunk))  # type: ignore[union-attr]
                .values(
                    state=RequestState.APPROVED,
                    acceptance_opinion="agree",
                    usbkey_model=usbkey,
                    accepted_by=acceptor.username,
                    accepted_at=now,
                    countersigned_by=head.username,
                    countersigned_at=now,
                    reviewed_by=reviewer.username,
                    reviewed_at=now,
                    review_decision="approve",
                    version=CertificateRequest.version + 3,
                    updated_at=now,
                )
            )
        entries = [
            audit.Entry(now, who.username, f"request.{action.value}", "request", rid,
                        {"from": before.value, "to": after.value, **details})
            for rid in ids
            for who, action, before, after, details in steps
        ]  # fmt: skip
        audit.append_many(s, entries)
    return ids
