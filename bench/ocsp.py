"""Benchmark: OCSP requests per second over HTTP, our web app (`pkictl serve`: waitress, 8 threads) and the
dedicated responder (`pkictl ocsp serve`: uvicorn, 1 and 2 processes) against
`openssl ocsp -index` serving the same data, with the same client, requests and concurrency.

Goal: ours answers no fewer requests per second than openssl.

    .venv/bin/python bench/ocsp.py [--n 3000] [--c 8] [--runs 3] [--certs 10000] [--db sqlite|postgresql]
                                   [--openssl-multi K] [--time-limit 60] [--ceiling]

Set-up (not timed): fresh database and hierarchy; --certs certificate rows of the 'test' issuing CA by bulk
SQL insert, 20 % revoked; index.txt with the same rows; the 'ocsp-test' delegated signer's certificate and
key (exported unencrypted through the FileKeyStore) for openssl; 1,000 DER OCSPRequests built once (SHA-1
CertID as openssl and most clients send, a 16-byte nonce each; 750 good serials, 250 revoked).

Servers (each started fresh per run, warmed with 50 requests, then timed):
  ours         `pkictl serve --host 127.0.0.1 --port P` (PKI_HOME/PKI_DATABASE_URL/PKI_CA_PASSPHRASE),
               POST /ocsp/test
  ocsp-serve   `pkictl ocsp serve --host 127.0.0.1 --port P` (and with --workers 2 as ocsp-serve2)
  openssl  `openssl ocsp -index index.txt -port 0 -rsigner signer.pem -rkey signer.key -CA issuing.pem
           -ndays 1 -resp_key_id -nrequest N` (single process unless --openssl-multi). OpenSSL 3.0's -port
           listens on every interface, so it runs in a private network namespace (`unshare -n`, loopback
           only) and the client joins it with `nsenter`; --no-netns runs it in the host namespace instead.
Client: bench/_ocsp_client.py in its own process: C threads, http.client keep-alive (a new connection only
when the server says Connection: close), n requests or --time-limit seconds, whichever first. Every
response is checked afterwards: HTTP 200, successful, signed by the delegated signer, the expected serial,
status (good/revoked and revocation time) and the nonce echoed. Rounds are interleaved (ours, openssl, ...,
ours, openssl, ...) and each server's best round is reported, with its CPU time per request from /proc.
--ceiling adds waitress answering a constant body with no OCSP work (bench/_waitress_ceiling.py): the
most a waitress-served responder could reach here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

import _common as common

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
PKICTL = str(Path(sys.executable).with_name("pkictl"))
WARMUP = 50


def build_requests(issuer: x509.Certificate, rows: list[common.CertRow], count: int, seed: int = 7):
    """(DER requests, expectations): 3/4 good serials, 1/4 revoked, a fresh 16-byte nonce each."""
    rnd = random.Random(seed)
    good = [r for r in rows if r.revoked_at is None]
    revoked = [r for r in rows if r.revoked_at is not None]
    n_revoked = min(count // 4, len(revoked))
    picks = rnd.sample(revoked, n_revoked) + rnd.sample(good, min(count - n_revoked, len(good)))
    rnd.shuffle(picks)
    name_hash = hashlib.sha1(issuer.subject.public_bytes()).digest()  # noqa: S324 (RFC 6960 CertID)
    key_bits = issuer.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    key_hash = hashlib.sha1(key_bits).digest()  # noqa: S324
    reqs, expect = [], []
    for r in picks:
        nonce = rnd.randbytes(16)
        req = (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(name_hash, key_hash, r.serial, hashes.SHA1())
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        reqs.append(req.public_bytes(Encoding.DER))
        expect.append((r, nonce))
    return reqs, expect


def check_responses(label: str, done: list, expect: list, signer: x509.Certificate) -> None:
    pub = signer.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    counts = {"good": 0, "revoked": 0}
    for idx, http_status, data in done:
        row, nonce = expect[idx]
        assert http_status == 200, (label, idx, http_status)
        resp = ocsp.load_der_ocsp_response(data)
        assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL, (label, resp.response_status)
        pub.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
        assert resp.serial_number == row.serial, (label, idx)
        got_nonce = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        assert got_nonce == nonce, (label, idx, "nonce")
        if row.revoked_at is None:
            assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD, (label, idx, resp.certificate_status)
            counts["good"] += 1
        else:
            assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED, (label, idx)
            assert resp.revocation_time_utc == row.revoked_at, (label, idx, resp.revocation_time_utc)
            if row.reason != "unspecified":
                assert resp.revocation_reason is not None and resp.revocation_reason.value == row.reason
            counts["revoked"] += 1
        assert resp.next_update_utc is not None
    print(f"  checked {len(done)} {label} responses: signed by the delegated signer, serial, nonce and status"
          f" right ({counts['good']} good, {counts['revoked']} revoked)")  # fmt: skip


def proc_cpu(pid: int) -> float:
    """user+system CPU seconds of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (forked workers), as far as /proc lists them."""
    total = proc_cpu(pid)
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return total + sum(tree_cpu(int(k)) for k in kids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen) -> None:
    """End a server we started, and its forked workers: each server runs in its own process group
    (process_group=0; not a new session, which would make `openssl ocsp -multi`'s own setpgid fail), so the
    group id is the server's pid; nothing else is signalled."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):  # workers that outlived their parent (openssl -multi)
        os.killpg(proc.pid, signal.SIGKILL)


def run_client(tmp: Path, cfg: dict, prefix: list[str]) -> dict:
    cin, cout = tmp / "client-in.pickle", tmp / "client-out.pickle"
    with cin.open("wb") as f:
        pickle.dump(cfg, f)
    subprocess.run([*prefix, PYTHON, str(HERE / "_ocsp_client.py"), str(cin), str(cout)], check=True)
    with cout.open("rb") as f:
        return pickle.load(f)


class Netns:
    """A private network namespace (loopback only) held open by a sleeping `unshare -n` process."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(["unshare", "-n", "sleep", "3600"], process_group=0)
        time.sleep(0.2)
        self.prefix = ["nsenter", "-t", str(self.holder.pid), "-n"]
        subprocess.run([*self.prefix, "ip", "link", "set", "lo", "up"], check=True)

    def close(self) -> None:
        stop(self.holder)


def serve_python(env: common.Env, cfg: dict, cmd: list[str]) -> tuple[dict, float]:
    """Start ``cmd`` (+ --port P) with the home's environment, wait for /healthz, warm up, run the client."""
    port = free_port()
    proc_env = {
        **os.environ,
        "PKI_HOME": str(env.tmp),
        "PKI_DATABASE_URL": env.url,
        "PKI_CA_PASSPHRASE": common.PASSPHRASE,
    }
    log = (env.tmp / "serve.log").open("w")
    server = subprocess.Popen(
        [*cmd, "--port", str(port)],
        env=proc_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.05)
        else:
            raise SystemExit(f"{cmd[0]} did not start: {(env.tmp / 'serve.log').read_text()}")
        if server.poll() is not None:
            raise SystemExit(f"{cmd[0]} exited: {(env.tmp / 'serve.log').read_text()}")
        run_client(env.tmp, {**cfg, "port": port, "n": WARMUP}, [])
        cpu0 = tree_cpu(server.pid)
        out = run_client(env.tmp, {**cfg, "port": port}, [])
        return out, tree_cpu(server.pid) - cpu0
    finally:
        stop(server)
        log.close()


def serve_openssl(env: common.Env, cfg: dict, args, netns: Netns | None) -> tuple[dict, float]:
    tmp = env.tmp
    prefix = netns.prefix if netns else []
    errlog = tmp / "openssl-ocsp.log"
    cmd = [
        "openssl", "ocsp", "-index", str(tmp / "index.txt"), "-port", "0",
        "-rsigner", str(tmp / "signer.pem"), "-rkey", str(tmp / "signer.key"), "-CA", str(tmp / "issuing.pem"),
        "-ndays", "1", "-resp_key_id", "-nrequest", str(cfg["n"] + WARMUP + 10),
    ]  # fmt: skip
    if args.openssl_multi:
        cmd += ["-multi", str(args.openssl_multi)]
    with errlog.open("w") as log:
        server = subprocess.Popen([*prefix, *cmd], stdout=log, stderr=subprocess.STDOUT, process_group=0)
    try:
        port = None
        for _ in range(200):
            text = errlog.read_text()
            if "ACCEPT" in text and "\n" in text.split("ACCEPT", 1)[1]:  # listening (also with -multi)
                port = int(text.split("ACCEPT", 1)[1].split()[0].rsplit(":", 1)[1])
                break
            if server.poll() is not None:
                break
            time.sleep(0.05)
        if port is None:
            raise SystemExit(f"openssl ocsp did not start: {errlog.read_text()}")
        run_client(tmp, {**cfg, "port": port, "n": WARMUP}, prefix)
        cpu0 = tree_cpu(server.pid)
        out = run_client(tmp, {**cfg, "port": port}, prefix)
        return out, tree_cpu(server.pid) - cpu0
    finally:
        stop(server)


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0], 3000)
    parser.add_argument("--c", type=int, default=8, help="concurrent client connections (threads)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--certs", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads for pkictl serve")
    parser.add_argument("--openssl-multi", type=int, default=0, help="openssl ocsp -multi K (default: off)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="per timed loop, seconds")
    parser.add_argument("--no-netns", action="store_true")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also serve a constant body with waitress (bench/_waitress_ceiling.py): the serving stack's ceiling",
    )
    args = parser.parse_args()
    print(f"OCSP benchmark: n={args.n} c={args.c} runs={args.runs} certs={args.certs} db={args.db}"
          f" waitress threads={args.threads} openssl -multi={args.openssl_multi or 'off'}")  # fmt: skip
    print(common.machine(), f"load={os.getloadavg()[0]:.1f}")
    netns = None
    if not args.no_netns:
        try:
            netns = Netns()
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"note: no private network namespace ({e}); openssl ocsp listens on all interfaces")
    try:
        with common.environment(args.db, keep=args.keep) as env:
            svc, tmp = env.service, env.tmp
            t, rows = common.timed(
                lambda: common.insert_certificates(env, "test", args.certs, revoked_share=0.2)
            )
            print(f"setup: {args.certs} certificate rows (20% revoked) by bulk SQL insert in {t:.1f}s")
            issuer = svc.authority.get("test").certificate
            signer = svc.authority.get("ocsp-test").certificate
            common.export_cert(svc, "test", tmp / "issuing.pem")
            common.export_cert(svc, "ocsp-test", tmp / "signer.pem")
            common.export_key_unencrypted(svc, "ocsp-test", tmp / "signer.key")
            common.write_index(tmp / "index.txt", rows)
            reqs, expect = build_requests(issuer, rows, 1000)
            cfg = {"path": "/ocsp/test", "requests": reqs, "n": args.n, "concurrency": args.c,
                   "time_limit": args.time_limit}  # fmt: skip

            servers: dict[str, list[str] | None] = {
                "ours": [PKICTL, "serve", "--host", "127.0.0.1", "--threads", str(args.threads)],
                "openssl": None,
            }
            # The dedicated responder (`pkictl ocsp serve`: uvicorn, one process, then one per core).
            servers["ocsp-serve"] = [PKICTL, "ocsp", "serve", "--host", "127.0.0.1"]
            servers["ocsp-serve2"] = [PKICTL, "ocsp", "serve", "--host", "127.0.0.1", "--workers", "2"]
            if args.ceiling:
                servers["ceiling"] = [
                    PYTHON,
                    str(HERE / "_waitress_ceiling.py"),
                    "--threads",
                    str(args.threads),
                ]
            results: dict[str, list[tuple[float, dict, float]]] = {k: [] for k in servers}
            for run in range(1, args.runs + 1):
                for label, cmd in servers.items():
                    if cmd is not None:
                        out, server_cpu = serve_python(env, cfg, cmd)
                    else:
                        out, server_cpu = serve_openssl(env, cfg, args, netns)
                    if out["errors"]:
                        raise SystemExit(f"{label}: {len(out['errors'])} errors, first: {out['errors'][:3]}")
                    rate = len(out["done"]) / out["elapsed"]
                    results[label].append((rate, out, server_cpu))
                    print(
                        f"run {run} {label:10}: {rate:7.0f} req/s  ({len(out['done'])} in {out['elapsed']:.2f}s;"
                        f" {out['connections']} connections, {out['server_close']} closed by the server;"
                        f" server CPU {server_cpu:.1f}s, client CPU {out['client_cpu']:.1f}s)"
                        + ("  TIME LIMIT HIT" if out["timed_out"] else "")
                    )
            for label in servers:
                if label != "ceiling":
                    check_responses(label, results[label][-1][1]["done"], expect, signer)

            best = {k: max(v, key=lambda x: x[0]) for k, v in results.items()}
            common.line()
            for label in servers:
                rate, out, server_cpu = best[label]
                per_req = 1000 * server_cpu / max(1, len(out["done"]))
                print(
                    f"{label:10}: {rate:7.0f} req/s  (best of {args.runs}; server CPU {per_req:.2f} ms/request;"
                    f" keep-alive: {'yes' if out['server_close'] == 0 else 'no, one request per connection'})"
                )
            common.line()
            for label in ("ours", "ocsp-serve", "ocsp-serve2"):
                ratio = best[label][0] / best["openssl"][0]
                verdict = "MET" if ratio >= 1.0 else "MISSED"
                print(f"ratio {label}/openssl req/s = {ratio:.2f}  (goal >= 1.00): {verdict}")
            if "ceiling" in servers:
                print(
                    f"  ceiling (waitress + constant WSGI app, no OCSP work)/openssl ="
                    f" {best['ceiling'][0] / best['openssl'][0]:.2f}"
                )
    finally:
        if netns is not None:
            netns.close()


if __name__ == "__main__":
    main()
