"""Benchmark: issuing certificates for approved requests from P-256 CSRs, persisted and audited, against the
raw cryptography loop (parse CSR + verify its signature + build + sign the same certificate, no database).

Goal (from the issue): our issuance rate is at least half the raw loop's.

    .venv/bin/python bench/issuance.py [--n 10000] [--n-single N] [--batch 500] [--db sqlite|postgresql]
                                       [--profile FILE]

Set-up (not timed): fresh database, CA hierarchy (ca.toml: ec-p256), N + N_SINGLE requests entered through
the service's bulk path (service.bulk.import_units with a CSV), then moved to 'approved' by one direct SQL
UPDATE that fills the acceptance/countersignature/review columns, plus the three matching audit records per
request appended through pki.audit.append_many (so the chain stays valid and the separation-of-duties
lookups see a realistic audit table). Walking 10,000 requests through accept/countersign/approve one by one
would take minutes and is not what is measured here. N + N_SINGLE P-256 keys and PEM CSRs are
generated up front.

Timed:
  raw     for each CSR: x509.load_pem_x509_csr, is_signature_valid, pki.ca.certs.build_end_entity
  batch   service.issuance.issue_many_from_csr(batch of 500, actor=distributor) over N requests
  single  service.issuance.issue_from_csr(request_id, csr, actor=distributor) over N_SINGLE requests
Interleaved chunk by chunk (500 CSRs): the raw loop on the chunk (best of 3), then ours on the same chunk, so
background load falls on both alike; rates are count / summed time. Checked afterwards: one certificate row
and two audit records (certificate.issue, request.issue) per request, none left approved, the audit chain
verifies.
"""

from __future__ import annotations

import cProfile
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from pki.ca import certs
from pki.enums import AccessType, RequestState
from pki.models import AuditRecord, Certificate, CertificateRequest

import _common as common
from tests.support import bulk

GOAL = 0.5  # ours / raw


def make_csrs(count: int) -> list[bytes]:
    out = []
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored by the CA")])
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        out.append(csr.public_bytes(Encoding.PEM))
    return out


def approved_requests(env: common.Env, count: int, **options: Any) -> list[int]:
    """Bulk-import ``count`` units, then move them to 'approved' with one UPDATE plus their audit records
    (``options``: tests/support/bulk.approved_requests's, such as the USBKEY model)."""
    return bulk.approved_requests(env.service, env.people, count, **options)


class RawLoop:
    """The cryptography-only baseline: for each CSR parse, verify, build + sign the same certificate."""

    def __init__(self, env: common.Env) -> None:
        svc = env.service
        ca = svc.authority.issuing_for(AccessType.TEST)
        self.ca_cert, self.ca_key = ca.certificate, svc.authority.key_for(ca)
        profiles = svc.ctx.policies.profiles
        p = svc.ctx.policies.ca
        self.publication = certs.Publication(
            p.crl_url(ca.slug), p.ocsp_url(ca.slug), p.ca_issuers_url(ca.slug)
        )
        self.policy_oid = profiles.kinds["test"].policy_oid
        self.code_oid = profiles.organization_code_oid

    def run(self, csrs: list[bytes], first: int) -> float:
        """Seconds for ``csrs`` (unit numbers from ``first``)."""
        now = datetime.now(UTC).replace(microsecond=0)
        validity = certs.Validity(now, now + timedelta(days=365))
        start = time.perf_counter()
        for i, data in enumerate(csrs, start=first):
            csr = x509.load_pem_x509_csr(data)
            if not csr.is_signature_valid:
                raise AssertionError("bad CSR")
            certs.build_end_entity(
                self.ca_cert,
                self.ca_key,
                csr.public_key(),  # type: ignore[arg-type]
                certs.end_entity_name(
                    unit_name=bulk.unit_name(i),
                    province="北京",
                    locality="西城区",
                    organization_identifier=bulk.uscc(i),
                ),
                x509.random_serial_number(),
                validity,
                policy_oid=self.policy_oid,
                publication=self.publication,
                organization_code_oid=self.code_oid,
                organization_code=bulk.uscc(i),
            )
        return time.perf_counter() - start


def interleaved(raw: RawLoop, csrs: list[bytes], ids: list[int], batch: int, raw_runs: int,
                ours: Callable[[list[tuple[int, bytes]]], None],
                prof: cProfile.Profile | None = None) -> tuple[float, float]:  # fmt: skip
    """(raw seconds, ours seconds) over all items, chunk by chunk: the raw loop (best of ``raw_runs``) on a
    chunk's CSRs, then ours on the same chunk, so background load falls on both alike."""
    t_raw = t_ours = 0.0
    for lo in range(0, len(ids), batch):
        chunk_csrs = csrs[lo : lo + batch]
        t_raw += min(raw.run(chunk_csrs, lo) for _ in range(raw_runs))
        items = list(zip(ids[lo : lo + batch], chunk_csrs, strict=True))
        start = time.perf_counter()
        if prof:
            prof.enable()
        ours(items)
        if prof:
            prof.disable()
        t_ours += time.perf_counter() - start
    return t_raw, t_ours


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0], 10_000)
    parser.add_argument(
        "--n-single", type=int, default=1000, help="requests issued one per call (default 1000)"
    )
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--raw-runs", type=int, default=3, help="raw loop: best of this many per chunk")
    parser.add_argument("--profile", help="write a cProfile of the batch path to this file")
    parser.add_argument("--profile-single", help="write a cProfile of the single path to this file")
    args = parser.parse_args()
    n, n_single = args.n, args.n_single
    total = n + n_single

    print(f"issuance benchmark: n={n} n_single={n_single} batch={args.batch} db={args.db}")
    print(common.machine(), f"load={os.getloadavg()[0]:.1f}")
    with common.environment(args.db, keep=args.keep) as env:
        t, csrs = common.timed(lambda: make_csrs(total))
        print(f"setup: {total} P-256 keys + PEM CSRs in {t:.1f}s")
        t, ids = common.timed(lambda: approved_requests(env, total))
        print(
            f"setup: {len(ids)} requests entered with bulk.import_units (CSV), then set to 'approved' by one"
            f" direct SQL UPDATE + audit.append_many of their accept/countersign/approve records (not the"
            f" per-request workflow), {t:.1f}s"
        )
        distributor = env.people["distributor"]
        svc = env.service
        raw = RawLoop(env)  # unlocks the CA key (PBES2) here, not timed

        prof = cProfile.Profile() if args.profile else None
        raw_b, ours_b = interleaved(
            raw, csrs[:n], ids[:n], args.batch, args.raw_runs,
            lambda items: svc.issuance.issue_many_from_csr(items, actor=distributor), prof,
        )  # fmt: skip
        if prof:
            prof.dump_stats(args.profile)

        def one_by_one(items: list[tuple[int, bytes]]) -> None:
            for rid, data in items:
                svc.issuance.issue_from_csr(rid, data, actor=distributor)

        raw_s = ours_s = float("nan")
        if n_single:
            prof = cProfile.Profile() if args.profile_single else None
            raw_s, ours_s = interleaved(
                raw,
                csrs[n : n + n_single],
                ids[n : n + n_single],
                args.batch,
                args.raw_runs,
                one_by_one,
                prof,
            )
            if prof:
                prof.dump_stats(args.profile_single)

        with svc.ctx.read() as s:
            issued = s.execute(select(func.count()).select_from(Certificate)).scalar_one()
            left = s.execute(
                select(func.count())
                .select_from(CertificateRequest)
                .where(CertificateRequest.state == RequestState.APPROVED)
            ).scalar_one()
            issue_records = s.execute(
                select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "certificate.issue")
            ).scalar_one()
            request_records = s.execute(
                select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "request.issue")
            ).scalar_one()
        chain = svc.audit.verify()
        assert issued == total and left == 0 and issue_records == total == request_records, (
            issued, left, issue_records, request_records,
        )  # fmt: skip
        assert chain.ok, chain.problems

        common.line()
        rows = [("batch", n, raw_b, ours_b, f"issue_many_from_csr, batches of {args.batch}")]
        if n_single:
            rows.append(("single", n_single, raw_s, ours_s, "issue_from_csr, one call per request"))
        for label, count, t_raw, t_ours, what in rows:
            print(f"{label:6} raw {count / t_raw:6.0f}/s ({t_raw:6.2f}s)   ours {count / t_ours:6.0f}/s"
                  f" ({t_ours:6.2f}s)   ratio {t_raw / t_ours:.2f}   [{what}]")  # fmt: skip
        print(f"checked: {issued} certificate rows, {issue_records} certificate.issue + {request_records}"
              f" request.issue audit records, no request left approved, audit chain verifies"
              f" ({chain.records} records)")  # fmt: skip
        common.line()
        for label, _, t_raw, t_ours, _ in rows[:2]:
            ratio = t_raw / t_ours
            verdict = "MET" if ratio >= GOAL else "MISSED"
            print(f"ratio {label:6} ours/raw = {ratio:.2f}  (goal >= {GOAL:.2f}): {verdict}")


if __name__ == "__main__":
    main()
