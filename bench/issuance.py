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
would take minutes and is not what is measured here. N + N_SINGLE P-256 keys and PEM CSRs are generated up
front.

Timed:
  raw     for each CSR: x509.load_pem_x509_csr, is_signature_valid, pki.ca.certs.build_end_entity (best of 3)
  batch   service.issuance.issue_many_from_csr(batch of 500, actor=distributor) over N requests
  single  service.issuance.issue_from_csr(request_id, csr, actor=distributor) over N_SINGLE requests
"""

from __future__ import annotations

import cProfile
import csv
import io
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from pki import audit  # noqa: E402
from pki.ca import certs  # noqa: E402
from pki.enums import AccessType, Action, RequestState  # noqa: E402
from pki.models import AuditRecord, Certificate, CertificateRequest  # noqa: E402
from pki.validators import org_code_check_character, uscc_check_character  # noqa: E402

GOAL = 0.5  # ours / raw

# What every unit of the list shares (tests/support/data.py's sample application, minus the unit columns).
DEFAULTS = {
    "legal_representative": "张三",
    "unit_phone": "010-12345678",
    "unit_fax": "010-12345679",
    "handler_name": "李四",
    "handler_contact": "13800138000",
    "address": "北京市西城区某街1号",
    "county": "西城区",
    "township": "",
    "email": "lisi@example.gov.cn",
    "handler_id_type": "resident_id",
    "handler_id_number": "110105199003071239",
    "postal_address": "北京市西城区某街1号",
    "postal_code": "100032",
    "credential_type": "uscc",
    "province": "北京",
    "network": "extranet",
    "access_type": "test",
    "target_system": "国家重点用能单位能耗在线监测系统",
    "validity_months": 12,
    "agreement_accepted": True,
    "application_date": "2020-10-19",
}


def uscc(i: int) -> str:
    body = f"{70000000 + i:08d}"
    first17 = "91" + "110101" + body + org_code_check_character(body)
    return first17 + uscc_check_character(first17)


def unit_name(i: int) -> str:
    return f"北京市某能源监测中心{i:06d}"


def make_csrs(count: int) -> list[bytes]:
    out = []
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored by the CA")])
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        out.append(csr.public_bytes(Encoding.PEM))
    return out


def approved_requests(env: common.Env, count: int) -> list[int]:
    """Bulk-import ``count`` units, then move them to 'approved' with one UPDATE plus their audit records."""
    svc, people = env.service, env.people
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["单位名称", "统一社会信用代码"])
    for i in range(count):
        w.writerow([unit_name(i), uscc(i)])
    result = svc.bulk.import_units(
        buf.getvalue().encode("utf-8"), actor=people["clerk"], defaults=DEFAULTS, label="bench issuance"
    )
    ids = result.request_ids
    assert len(ids) == count, (len(ids), result.rejected[:3])
    now = svc.ctx.now()
    steps = [
        (people["acceptor"], Action.ACCEPT, RequestState.ENTERED, RequestState.ACCEPTED,
         {"usbkey": "飞天诚信 ePass3003", "comment": ""}),
        (people["head"], Action.COUNTERSIGN, RequestState.ACCEPTED, RequestState.COUNTERSIGNED, {}),
        (people["reviewer"], Action.APPROVE, RequestState.COUNTERSIGNED, RequestState.APPROVED,
         {"reason": ""}),
    ]  # fmt: skip
    with svc.ctx.write() as s:
        for lo in range(0, count, 5000):
            chunk = ids[lo : lo + 5000]
            s.execute(
                update(CertificateRequest)
                .where(CertificateRequest.id.in_(chunk))  # type: ignore[union-attr]
                .values(
                    state=RequestState.APPROVED,
                    acceptance_opinion="agree",
                    usbkey_model="飞天诚信 ePass3003",
                    accepted_by="acceptor",
                    accepted_at=now,
                    countersigned_by="head",
                    countersigned_at=now,
                    reviewed_by="reviewer",
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


def raw_loop(env: common.Env, csrs: list[bytes]) -> float:
    """Seconds for the cryptography-only loop over ``csrs``."""
    svc = env.service
    ca = svc.authority.issuing_for(AccessType.TEST)
    ca_cert, ca_key = ca.certificate, svc.authority.key_for(ca)
    profiles = svc.ctx.policies.profiles
    p = svc.ctx.policies.ca
    publication = certs.Publication(p.crl_url(ca.slug), p.ocsp_url(ca.slug), p.ca_issuers_url(ca.slug))
    policy_oid = profiles.kinds["test"].policy_oid
    now = datetime.now(UTC).replace(microsecond=0)
    validity = certs.Validity(now, now + timedelta(days=365))
    start = time.perf_counter()
    for i, data in enumerate(csrs):
        csr = x509.load_pem_x509_csr(data)
        if not csr.is_signature_valid:
            raise AssertionError("bad CSR")
        certs.build_end_entity(
            ca_cert,
            ca_key,
            csr.public_key(),  # type: ignore[arg-type]
            certs.end_entity_name(
                unit_name=unit_name(i), province="北京", locality="西城区", organization_identifier=uscc(i)
            ),
            x509.random_serial_number(),
            validity,
            policy_oid=policy_oid,
            publication=publication,
            organization_code_oid=profiles.organization_code_oid,
            organization_code=uscc(i),
        )
    return time.perf_counter() - start


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0], 10_000)
    parser.add_argument("--n-single", type=int, default=None, help="requests issued one by one (default: n)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--raw-runs", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the batch path to this file")
    parser.add_argument("--profile-single", help="write a cProfile of the single path to this file")
    args = parser.parse_args()
    n, n_single = args.n, args.n if args.n_single is None else args.n_single

    print(f"issuance benchmark: n={n} n_single={n_single} batch={args.batch} db={args.db}")
    print(common.machine())
    with common.environment(args.db, keep=args.keep) as env:
        t, csrs = common.timed(lambda: make_csrs(n + n_single))
        print(f"setup: {n + n_single} P-256 keys + CSRs in {t:.1f}s")
        t, ids = common.timed(lambda: approved_requests(env, n + n_single))
        print(
            f"setup: {len(ids)} requests via bulk.import_units, then approved by direct SQL UPDATE"
            f" + audit.append_many (not the per-request workflow) in {t:.1f}s"
        )
        distributor = env.people["distributor"]
        svc = env.service
        svc.authority.key_for(svc.authority.issuing_for(AccessType.TEST))  # unlock the CA key (not timed)

        raw_times = [raw_loop(env, csrs[:n]) for _ in range(args.raw_runs)]
        raw = n / min(raw_times)

        batch_items = list(zip(ids[:n], csrs[:n], strict=True))
        prof = cProfile.Profile() if args.profile else None
        start = time.perf_counter()
        if prof:
            prof.enable()
        for lo in range(0, n, args.batch):
            svc.issuance.issue_many_from_csr(batch_items[lo : lo + args.batch], actor=distributor)
        if prof:
            prof.disable()
            prof.dump_stats(args.profile)
        t_batch = time.perf_counter() - start
        ours_batch = n / t_batch

        single_items = list(zip(ids[n:], csrs[n:], strict=True))
        prof = cProfile.Profile() if args.profile_single else None
        start = time.perf_counter()
        if prof:
            prof.enable()
        for rid, data in single_items:
            svc.issuance.issue_from_csr(rid, data, actor=distributor)
        if prof:
            prof.disable()
            prof.dump_stats(args.profile_single)
        t_single = time.perf_counter() - start
        ours_single = n_single / t_single if n_single else float("nan")

        with svc.ctx.read() as s:
            issued = s.execute(select(func.count()).select_from(Certificate)).scalar_one()
            left = s.execute(
                select(func.count())
                .select_from(CertificateRequest)
                .where(CertificateRequest.state == RequestState.APPROVED)
            ).scalar_one()
            issue_records = s.execute(
                select(func.count())
                .select_from(AuditRecord)
                .where(AuditRecord.action == "certificate.issue")
            ).scalar_one()
        assert issued == n + n_single and left == 0 and issue_records == n + n_single, (
            issued,
            left,
            issue_records,
        )

        common.line()
        print(
            f"raw cryptography loop : {raw:8.0f} certs/s  (best of {args.raw_runs}:"
            f" {' '.join(f'{x:.2f}s' for x in raw_times)} for {n})"
        )
        print(f"ours, batches of {args.batch:<4} : {ours_batch:8.0f} certs/s  ({t_batch:.2f}s for {n})")
        if n_single:
            print(f"ours, one per call     : {ours_single:8.0f} certs/s  ({t_single:.2f}s for {n_single})")
        print(f"checked: {issued} certificate rows, {issue_records} certificate.issue audit records, 0 left")
        common.line()
        for label, rate in (("batch", ours_batch), ("single", ours_single)):
            ratio = rate / raw
            verdict = "MET" if ratio >= GOAL else "MISSED"
            print(f"ratio {label:6} ours/raw = {ratio:.2f}  (goal >= {GOAL:.2f}): {verdict}")


if __name__ == "__main__":
    main()
