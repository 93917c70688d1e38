"""Benchmark: 国密 SM2. The SM2 library choice (sign/verify per second of each candidate, against ECDSA P-256
in cryptography in the same run), then SM2 issuance from CSRs, persisted and audited, against the chosen
library's raw loop and against `openssl x509 -req -sm3` per certificate.

Goals (issue 17): issuance ≥ 0.5 × the raw loop; ≥ 15 × `openssl x509 -req -sm3`.

    .venv/bin/python bench/sm2.py [--n 2000] [--n-single 200] [--n-openssl 100] [--batch 500]
                                  [--lib-n 2000] [--db sqlite|postgresql]

Library (a 400-octet message, about a TBSCertificate): tongsuopy 1.0.1 through pki/ca/sm2.py (what pkictl
signs with), gmssl-fast (if installed), the pure-Python gmssl (few rounds: it is slow), cryptography's
ECDSA P-256 with SHA-256 (the baseline; ratios are against it).

Issuance set-up (not timed): an SM2 home (ca.toml key_algorithm = "sm2"), N + N_SINGLE approved requests
as bench/issuance.py makes them, N + N_SINGLE SM2 keys and PEM CSRs (SM3withSM2, signer ID
1234567812345678) made with tongsuopy and asn1crypto.
Timed, chunk by chunk (the raw loop best of 3 on a chunk, then ours on the same chunk):
  raw     per CSR, the library's own work: load the PEM, verify its SM3withSM2 signature (tongsuopy), sign
          a TBSCertificate of an issued certificate's size (tongsuopy); no DER building, no database
  batch   service.issuance.issue_many_from_csr(batch, actor=distributor)
  single  service.issuance.issue_from_csr(request_id, csr, actor=distributor)
  openssl `openssl x509 -req -sm3 -sigopt distid:… -vfyopt distid:…` with the same CA key and an extension
          file of the same profile, one process per certificate (N_OPENSSL of them)
Checked afterwards: a row and two audit records per request, none left approved, the audit chain verifies,
and one issued certificate verifies under the formal CA with `openssl verify -vfyopt distid:…`.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asn1crypto import csr as a_csr
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from pki.ca import certs, signing
from pki.ca.sm2 import SIGNER_ID, Sm2PrivateKey, Sm2PublicKey
from pki.enums import AccessType, RequestState
from pki.models import AuditRecord, Certificate, CertificateRequest
from policies._load import PACKAGED

import _common as common
from tests.support import bulk

GOAL_RAW = 0.5
GOAL_OPENSSL = 15.0
DISTID = f"distid:{SIGNER_ID}"
MESSAGE = os.urandom(400)


# -- the library ------------------------------------------------------------------------------------------


def rate(n: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def libraries(n: int) -> list[tuple[str, float, float]]:
    """(name, sign/s, verify/s) per candidate; the P-256 baseline first."""
    out = []
    p256 = ec.generate_private_key(ec.SECP256R1())
    sig = p256.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    out.append(
        (
            "cryptography ECDSA P-256/SHA-256 (baseline)",
            rate(n, lambda: p256.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))),
            rate(n, lambda: p256.public_key().verify(sig, MESSAGE, ec.ECDSA(hashes.SHA256()))),
        )
    )
    sm2 = Sm2PrivateKey.generate()
    public = sm2.public_key()
    sm2_sig = sm2.sign(MESSAGE)
    assert public.verifies(sm2_sig, MESSAGE)
    out.append(
        ("tongsuopy 1.0.1 SM2 (chosen)", rate(n, lambda: sm2.sign(MESSAGE)), rate(n, lambda: public.verifies(sm2_sig, MESSAGE)))
    )  # fmt: skip
    try:
        import gmssl_fast  # type: ignore[import-not-found, unused-ignore]

        fast = gmssl_fast.SM2.generate()
        fast_sig = fast.sign(MESSAGE)
        out.append(
            ("gmssl-fast SM2", rate(n, lambda: fast.sign(MESSAGE)), rate(n, lambda: fast.verify(MESSAGE, fast_sig)))
        )  # fmt: skip
    except ImportError:
        print("gmssl-fast not installed: skipped")
    try:
        from gmssl import sm2 as pure  # type: ignore[import-untyped, unused-ignore]

        point = public.point[1:].hex()
        judge = pure.CryptSM2(private_key=None, public_key=point, asn1=True)
        few = max(5, n // 100)
        out.append(
            ("gmssl 3.2.2 (pure Python) SM2 verify", float("nan"), rate(few, lambda: judge.verify_with_sm3(sm2_sig.hex(), MESSAGE)))
        )  # fmt: skip
    except ImportError:
        print("gmssl not installed: skipped")
    return out


# -- issuance ---------------------------------------------------------------------------------------------


def sm2_csr(key: Sm2PrivateKey) -> bytes:
    """A PEM PKCS#10 request for ``key``, signed SM3withSM2 with the standard signer ID."""
    info = a_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": a_x509.Name.build({"common_name": "ignored by the CA"}),
            "subject_pk_info": a_x509.PublicKeyInfo.load(key.public_key().spki_der),
            "attributes": [],
        }
    )
    request = a_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": a_x509.SignedDigestAlgorithm.load(signing.algorithm_identifier(key)),
            "signature": key.sign(info.dump()),
        }
    )
    return x509.load_der_x509_csr(request.dump()).public_bytes(common.serialization.Encoding.PEM)


def sm2_policies(directory: Path) -> Path:
    text = (PACKAGED / "ca.toml").read_text(encoding="utf-8")
    (directory / "ca.toml").write_text(text.replace('key_algorithm = "ec-p256"', 'key_algorithm = "sm2"'))
    return directory


class RawLoop:
    """tongsuopy's work per certificate: verify the CSR, sign a TBSCertificate of the issued size."""

    def __init__(self, env: common.Env, tbs: bytes) -> None:
        ca = env.service.authority.issuing_for(AccessType.TEST)
        key = env.service.authority.key_for(ca)
        assert isinstance(key, Sm2PrivateKey)
        self.key, self.tbs = key, tbs

    def run(self, csrs: list[bytes]) -> float:
        start = time.perf_counter()
        for data in csrs:
            csr = x509.load_pem_x509_csr(data)
            spki = a_csr.CertificationRequest.load(csr.public_bytes(common.serialization.Encoding.DER))
            public = Sm2PublicKey.from_spki(spki["certification_request_info"]["subject_pk_info"].dump())
            if not public.verifies(csr.signature, csr.tbs_certrequest_bytes):
                raise AssertionError("bad CSR")
            self.key.sign(self.tbs)
        return time.perf_counter() - start


EXTENSIONS = """[ee]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:http://127.0.0.1:8000/crl/test.crl
authorityInfoAccess = OCSP;URI:http://127.0.0.1:8000/ocsp/test, caIssuers;URI:http://127.0.0.1:8000/ca/test.cer
certificatePolicies = 1.3.6.1.4.1.32473.1.1
1.2.156.10260.4.1.4 = ASN1:PRINTABLESTRING:91350100MA2Y123446
"""


def openssl_loop(env: common.Env, csrs: list[bytes], work: Path) -> float:
    """Seconds for `openssl x509 -req -sm3` over ``csrs``, one process per certificate."""
    ca = env.service.authority.issuing_for(AccessType.TEST)
    ca_pem = work / "ca.pem"
    common.export_cert(env.service, ca.slug, ca_pem)
    key_pem = work / "ca.key"
    encrypted = env.tmp / "ca" / ca.record.key_ref.removeprefix("file:")
    subprocess.run(
        ["openssl", "pkey", "-in", encrypted, "-passin", f"pass:{common.PASSPHRASE}", "-out", key_pem], check=True
    )  # fmt: skip
    ext = work / "ee.cnf"
    ext.write_text(EXTENSIONS)
    paths = []
    for i, data in enumerate(csrs):
        path = work / f"req-{i}.pem"
        path.write_bytes(data)
        paths.append(path)
    start = time.perf_counter()
    for i, path in enumerate(paths):
        subprocess.run(
            ["openssl", "x509", "-req", "-sm3", "-sigopt", DISTID, "-vfyopt", DISTID, "-in", path, "-CA", ca_pem,
             "-CAkey", key_pem, "-set_serial", str(1000 + i), "-days", "365", "-extfile", ext, "-extensions", "ee",
             "-subj", f"/C=CN/ST=北京/O=单位{i}/CN=单位{i}", "-out", work / f"cert-{i}.pem"],
            check=True, capture_output=True,
        )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0], 2000)
    parser.add_argument("--n-single", type=int, default=200)
    parser.add_argument("--n-openssl", type=int, default=100)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--lib-n", type=int, default=2000, help="sign/verify rounds per library")
    args = parser.parse_args()
    print(f"SM2 benchmark: n={args.n} n_single={args.n_single} n_openssl={args.n_openssl} db={args.db}")
    print(common.machine(), f"load={os.getloadavg()[0]:.1f}")

    common.line()
    print(f"library: sign/verify of a {len(MESSAGE)}-octet message, {args.lib_n} rounds")
    libs = libraries(args.lib_n)
    base_sign, base_verify = libs[0][1], libs[0][2]
    for name, sign, verify in libs:
        signs = f"{sign:7.0f}/s ({sign / base_sign:4.2f}x)" if not math.isnan(sign) else f"{'-':>17}"
        print(f"  {name:44} sign {signs}   verify {verify:7.0f}/s ({verify / base_verify:4.2f}x P-256)")

    total = args.n + args.n_single
    with tempfile.TemporaryDirectory(prefix="pkibench-sm2-") as work_dir:
        work = Path(work_dir)
        with common.environment(args.db, keep=args.keep, policy_dir=sm2_policies(work)) as env:
            svc, distributor = env.service, env.people["distributor"]
            assert {r.key_algorithm for r in svc.authority.all()} == {"sm2"}
            t, csrs = common.timed(
                lambda: [sm2_csr(Sm2PrivateKey.generate()) for _ in range(total + args.n_openssl)]
            )
            print(f"setup: {len(csrs)} SM2 keys + PEM CSRs in {t:.1f}s")
            t, ids = common.timed(lambda: bulk.approved_requests(svc, env.people, total))
            print(f"setup: {len(ids)} approved requests in {t:.1f}s")

            first = svc.issuance.issue_many_from_csr([(ids[0], csrs[0])], actor=distributor)[0]
            raw = RawLoop(env, x509.load_der_x509_certificate(first.der).tbs_certificate_bytes)
            t_raw = t_batch = 0.0
            for lo in range(1, args.n, args.batch):
                hi = min(lo + args.batch, args.n)
                t_raw += min(raw.run(csrs[lo:hi]) for _ in range(3))
                items = list(zip(ids[lo:hi], csrs[lo:hi], strict=True))
                t_batch += common.timed(
                    lambda items=items: svc.issuance.issue_many_from_csr(items, actor=distributor)
                )[0]  # type: ignore[misc]
            n_batch = args.n - 1
            t_raw_single = min(raw.run(csrs[args.n : total]) for _ in range(3))
            start = time.perf_counter()
            for rid, data in zip(ids[args.n : total], csrs[args.n : total], strict=True):
                svc.issuance.issue_from_csr(rid, data, actor=distributor)
            t_single = time.perf_counter() - start
            t_openssl = openssl_loop(env, csrs[total:], work)

            with svc.ctx.read() as s:
                issued = s.execute(select(func.count()).select_from(Certificate)).scalar_one()
                left = s.execute(
                    select(func.count()).select_from(CertificateRequest).where(CertificateRequest.state == RequestState.APPROVED)
                ).scalar_one()  # fmt: skip
                records = s.execute(
                    select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "certificate.issue")
                ).scalar_one()  # fmt: skip
            chain = svc.audit.verify()
            assert issued == total == records and left == 0, (issued, records, left)
            assert chain.ok, chain.problems
            sample = work / "sample.pem"
            sample.write_bytes(
                x509.load_der_x509_certificate(first.der).public_bytes(common.serialization.Encoding.PEM)
            )
            ca_pem = work / "issuing.pem"
            common.export_cert(svc, svc.authority.issuing_for(AccessType.TEST).slug, ca_pem)
            verified = subprocess.run(
                ["openssl", "verify", "-vfyopt", DISTID, "-partial_chain", "-CAfile", ca_pem, sample],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert certs.public_key_of(x509.load_der_x509_certificate(first.der)) is not None

    common.line()
    r_batch, r_single = n_batch / t_batch, args.n_single / t_single
    r_raw, r_raw_single = n_batch / t_raw, args.n_single / t_raw_single
    r_openssl = args.n_openssl / t_openssl
    print(f"raw     {r_raw:7.0f}/s   (tongsuopy: CSR verify + TBSCertificate sign)")
    print(
        f"sign    {libs[1][1]:7.0f}/s   (tongsuopy: the sign loop alone; batch is {r_batch / libs[1][1]:.2f} of it)"
    )
    print(
        f"batch   {r_batch:7.0f}/s   issue_many_from_csr, batches of {args.batch}: ratio to raw {r_batch / r_raw:.2f}"
    )
    print(f"single  {r_single:7.0f}/s   issue_from_csr: ratio to raw {r_single / r_raw_single:.2f}")
    print(
        f"openssl {r_openssl:7.1f}/s   openssl x509 -req -sm3, one process per certificate ({t_openssl / args.n_openssl * 1000:.1f} ms each)"
    )
    print(f"checked: {issued} certificate rows and certificate.issue records, none left approved, audit chain"
          f" verifies ({chain.records} records), a sample verifies with openssl -vfyopt {DISTID}")  # fmt: skip
    common.line()
    for label, ratio, goal in (
        ("batch / raw", r_batch / r_raw, GOAL_RAW),
        ("single / raw", r_single / r_raw_single, GOAL_RAW),
        ("batch / openssl", r_batch / r_openssl, GOAL_OPENSSL),
        ("single / openssl", r_single / r_openssl, GOAL_OPENSSL),
    ):
        print(
            f"ratio {label:17} = {ratio:6.2f}  (goal >= {goal:.1f}): {'MET' if ratio >= goal else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
