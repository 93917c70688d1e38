"""Benchmark: what the keyed audit trail adds to a write.

    .venv/bin/python bench/audit_write.py [--n 3000] [--runs 3] [--db sqlite|postgresql]

Timed, interleaved (keyed, unkeyed, keyed, ...) so that background load hits both; best of --runs:
  keyed       Context.write + one audit record: the HMAC of its hash and the checkpoint-interval check after
              the commit (audit.toml's packaged interval: a checkpoint every 100 records)
  unkeyed     the same with the MAC and the checkpoints switched off: the plain hash chain as it was
  request     the same pair for a real service write, service.requests.create (validation, the request row,
              its audit record), n/10 of them
Then, once: one checkpoint (a locked, fsync'd JSON line) and one unlock of the key file (scrypt, once per
process). The cost is what it is, reported per write: an HMAC (about 2 us), the interval check with the
checkpoints amortized, and storing 64 more characters per record.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pki import audit
from pki.audit_key import AuditKey, PassphraseProtection, create_key_file, open_key_file
from pki.audit_seal import AuditSeal

import _common as common
from tests.support.data import application, make_uscc

_units = iter(range(10**7))


def _creates(env: common.Env, n: int) -> float:
    apps = [application(credential_number=make_uscc("110101", f"{next(_units):08d}")) for _ in range(n)]
    clerk = env.people["clerk"]
    start = time.perf_counter()
    for app in apps:
        env.service.requests.create(app, actor=clerk)
    return (time.perf_counter() - start) / n


def _writes(env: common.Env, n: int) -> float:
    ctx = env.service.ctx
    now = ctx.now()
    start = time.perf_counter()
    for _ in range(n):
        with ctx.write() as s:
            audit.append(s, at=now, actor="bench", action="bench.write")
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = common.base_parser(__doc__ or "", 3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(common.machine())
    with common.environment(args.db, keep=args.keep) as env:
        seal = env.service.ctx.seal()
        times: dict[tuple[str, bool], list[float]] = {}
        real_mac, real_after = AuditKey.record_mac, AuditSeal.after_commit
        for run in range(args.runs):
            for keyed in (True, False) if run % 2 == 0 else (False, True):  # the table grows: alternate
                if not keyed:
                    AuditKey.record_mac = lambda self, h: ""  # type: ignore[method-assign]
                    AuditSeal.after_commit = lambda self, **kw: None  # type: ignore[method-assign]
                try:
                    times.setdefault(("bare write", keyed), []).append(_writes(env, args.n))
                    times.setdefault(("request", keyed), []).append(_creates(env, max(1, args.n // 10)))
                finally:
                    AuditKey.record_mac, AuditSeal.after_commit = real_mac, real_after  # type: ignore[method-assign]
        print(f"{args.db}: {args.n} bare writes and {args.n // 10} requests x {args.runs} runs (best)")
        for what in ("bare write", "request"):
            k, u = min(times[(what, True)]), min(times[(what, False)])
            print(
                f"  {what:<10}  keyed {k * 1e6:7.1f} us  unkeyed {u * 1e6:7.1f} us  +{(k - u) * 1e6:5.1f} us ({k / u:.3f} x)"
            )
        start = time.perf_counter()
        for i in range(200):
            seal.checkpoint(seq=i + 1, hash="0" * 64, at=env.service.ctx.now(), reason="manual")
        print(f"  one checkpoint (locked, fsync'd line)  {(time.perf_counter() - start) / 200 * 1e3:.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.key"
        create_key_file(path, PassphraseProtection(lambda: "bench-audit-passphrase"), keyed_from=1)
        start = time.perf_counter()
        open_key_file(path, PassphraseProtection(lambda: "bench-audit-passphrase"))
        print(
            f"  one unlock of the key file (scrypt, once per process)  {(time.perf_counter() - start) * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    main()
