"""Benchmark: publishing a CRL of 100,000 revoked certificates from the database (service.crl.publish(): read
the rows, encode, sign, store, audit) against `openssl ca -gencrl` over the same entries.

Goal: ours no slower than openssl.

    .venv/bin/python bench/crl.py [--n 100000] [--runs 3] [--db sqlite|postgresql] [--profile FILE]

Set-up (not timed): fresh database and hierarchy; N revoked certificate rows of the 'test' issuing CA by bulk
SQL insert (placeholder der; distinct revocation times over the past 180 days; reasons unspecified,
keyCompromise, affiliationChanged, superseded, cessationOfOperation — the ones openssl's index can express);
an index.txt with the same serials/times/reasons; an openssl ca config pointing at the issuing CA's
certificate and its key exported unencrypted (through the FileKeyStore) to a temporary file.

Timed, best of --runs, interleaved (ours, openssl, cryptography, ours, ...) so that background load hits all
  ours          service.crl.publish()            (only the 'test' CA has entries; 'formal' publishes empty)
  openssl       openssl ca -gencrl -config ... -out crl.pem   (whole process: start, read index, sign, write)
  cryptography  CertificateRevocationListBuilder(..., revoked_certificates=[...]).sign() from in-memory rows
                (reference only; no database)
Both CRLs are then parsed and checked: 100,000 entries, signature, same serials, same reasons.
"""

from __future__ import annotations

import cProfile
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pki.ca import crl as crl_der

import _common as common

_REASON_FLAGS = {
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
}

OPENSSL_CNF = """\
[ ca ]
default_ca = bench

[ bench ]
dir              = {dir}
database         = $dir/index.txt
certificate      = $dir/issuing.pem
private_key      = $dir/issuing.key
crlnumber        = $dir/crlnumber
new_certs_dir    = $dir
serial           = $dir/serial
default_md       = sha256
default_crl_hours = 24
crl_extensions   = crl_ext
unique_subject   = no
policy           = policy_any

[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ policy_any ]
commonName = supplied
"""


def cryptography_crl(issuer: x509.Certificate, key: object, rows: list[common.CertRow]) -> bytes:
    now = datetime.now(UTC).replace(microsecond=0)
    revoked = []
    for r in rows:
        b = x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.revoked_at)  # type: ignore[arg-type]
        if r.reason in _REASON_FLAGS:
            b = b.add_extension(x509.CRLReason(_REASON_FLAGS[r.reason]), critical=False)
        revoked.append(b.build())
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.subject,
        last_update=now,
        next_update=now + timedelta(hours=24),
        extensions=[
            x509.Extension(
                x509.AuthorityKeyIdentifier.oid,
                False,
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            ),
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(1)),
        ],
        revoked_certificates=revoked,
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)  # type: ignore[arg-type]


def check(label: str, crl: x509.CertificateRevocationList, issuer: x509.Certificate,
          rows: list[common.CertRow]) -> None:  # fmt: skip
    """Entry count, signature, serials and reasons equal to the rows'."""
    assert crl.is_signature_valid(issuer.public_key()), f"{label}: bad signature"  # type: ignore[arg-type]
    assert len(crl) == len(rows), f"{label}: {len(crl)} entries, expected {len(rows)}"
    want = {r.serial: (r.revoked_at, r.reason) for r in rows}
    for entry in crl:
        at, reason = want[entry.serial_number]
        assert entry.revocation_date_utc == at, (label, entry.serial_number)
        try:
            got = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
        except x509.ExtensionNotFound:
            got = "unspecified"
        assert got == reason, (label, entry.serial_number, got, reason)
    print(f"checked {label}: parses, signature valid, {len(crl)} entries, serials/times/reasons match")


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0], 100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of one service.crl.publish() to this file")
    args = parser.parse_args()
    n = args.n
    print(f"CRL benchmark: n={n} runs={args.runs} db={args.db}")
    print(common.machine(), f"load={os.getloadavg()[0]:.1f}")
    with common.environment(args.db, keep=args.keep) as env:
        svc, tmp = env.service, env.tmp
        t, rows = common.timed(lambda: common.insert_certificates(env, "test", n, revoked_share=1.0))
        print(f"setup: {n} revoked certificate rows by bulk SQL insert in {t:.1f}s")
        ca = svc.authority.get("test")
        key = svc.authority.key_for(ca)  # unlock (PBES2) once, not timed
        common.export_cert(svc, "test", tmp / "issuing.pem")
        common.export_key_unencrypted(svc, "test", tmp / "issuing.key")
        common.write_index(tmp / "index.txt", rows)
        (tmp / "crlnumber").write_text("01\n")
        (tmp / "serial").write_text("01\n")
        cnf = tmp / "openssl.cnf"
        cnf.write_text(OPENSSL_CNF.format(dir=tmp))
        openssl_cmd = [
            "openssl",
            "ca",
            "-batch",
            "-config",
            str(cnf),
            "-gencrl",
            "-out",
            str(tmp / "crl.pem"),
        ]

        ours_t, openssl_t, crypto_t = [], [], []
        ours_der = crypto_der = b""
        for _ in range(args.runs):
            t, published = common.timed(svc.crl.publish)
            ours_t.append(t)
            ours_der = next(p.record.der for p in published if p.ca == "test")
            t, proc = common.timed(
                lambda: subprocess.run(openssl_cmd, capture_output=True, text=True, check=False)
            )
            if proc.returncode != 0:
                raise SystemExit(f"openssl ca -gencrl failed:\n{proc.stderr}")
            openssl_t.append(t)
            t, crypto_der = common.timed(lambda: cryptography_crl(ca.certificate, key, rows))
            crypto_t.append(t)

        # Where our time goes: the same query alone, and the DER encoder + signature alone.
        from sqlmodel import col, select

        from pki.enums import CertificateStatus
        from pki.models import Certificate

        def query() -> list[tuple[str, datetime, str]]:
            with svc.ctx.read() as s:
                return list(
                    s.exec(
                        select(Certificate.serial, Certificate.revoked_at, Certificate.revocation_reason)
                        .where(
                            Certificate.ca_id == ca.id,
                            Certificate.status == CertificateStatus.REVOKED,
                            col(Certificate.not_valid_after) > datetime.now(UTC),
                        )
                        .order_by(col(Certificate.revoked_at), col(Certificate.id))
                    ).all()
                )

        t_query, fetched = min((common.timed(query) for _ in range(args.runs)), key=lambda x: x[0])
        entries = [(serial, at, str(reason)) for serial, at, reason in fetched]
        now = datetime.now(UTC).replace(microsecond=0)
        t_encode = min(
            common.timed(
                lambda: crl_der.build_crl(
                    ca.certificate, key, number=999, this_update=now, next_update=now + timedelta(hours=24),
                    entries=entries,
                )
            )[0]
            for _ in range(args.runs)
        )  # fmt: skip
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            svc.crl.publish()
            prof.disable()
            prof.dump_stats(args.profile)

        check("ours", x509.load_der_x509_crl(ours_der), ca.certificate, rows)
        check("openssl", x509.load_pem_x509_crl((tmp / "crl.pem").read_bytes()), ca.certificate, rows)
        check("cryptography", x509.load_der_x509_crl(crypto_der), ca.certificate, rows)
        # An independent parser agrees on ours too.
        (tmp / "ours.der").write_bytes(ours_der)
        out = subprocess.run(
            ["openssl", "crl", "-inform", "DER", "-in", str(tmp / "ours.der"), "-noout", "-text",
             "-CAfile", str(tmp / "issuing.pem")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert "verify OK" in out.stderr + out.stdout, out.stderr
        assert out.stdout.count("Serial Number:") == n
        print(f"checked ours with openssl crl: verify OK, {n} serial numbers")

        def fmt(ts: list[float]) -> str:
            return " ".join(f"{x:.2f}" for x in ts)

        ours, ossl, crypto = min(ours_t), min(openssl_t), min(crypto_t)
        common.line()
        print(f"ours  service.crl.publish()   : {ours:6.2f}s  (runs: {fmt(ours_t)})")
        print(f"        its parts, timed alone (best of {args.runs}): query + fetch {t_query:.2f}s,"
              f" pki.ca.crl.build_crl over the rows {t_encode:.2f}s")  # fmt: skip
        print(f"openssl ca -gencrl            : {ossl:6.2f}s  (runs: {fmt(openssl_t)})")
        print(f"cryptography builder (list)   : {crypto:6.2f}s  (runs: {fmt(crypto_t)}; reference, no DB)")
        print(f"CRL sizes: ours {len(ours_der)} B, cryptography {len(crypto_der)} B")
        common.line()
        ratio = ours / ossl
        verdict = "MET" if ratio <= 1.0 else "MISSED"
        print(f"ratio ours/openssl time = {ratio:.2f}  (goal <= 1.00): {verdict}")
        print(f"ratio ours/cryptography time = {ours / crypto:.2f}  (reference)")


if __name__ == "__main__":
    main()
