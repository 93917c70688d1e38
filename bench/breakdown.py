"""Where the time goes in the production paths, by wall-clock timers wrapped around their steps (no
cProfile, whose per-call overhead distorts SQLAlchemy-heavy code). Inner steps are also counted in the step
that calls them; the tree below shows the nesting. Steps marked as running in another thread overlap the
step beside them, so shares can add up to more than 100 %.

    .venv/bin/python bench/breakdown.py [issuance|ocsp|crl|token|all] [--n 2000] [--db sqlite|postgresql]
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

Acc = collections.Counter


class Timers:
    def __init__(self) -> None:
        self.acc: Acc[str] = collections.Counter()
        self.calls: Acc[str] = collections.Counter()
        self._undo: list[tuple[object, str, Any]] = []
        self.paused = False  # while set, wrapped steps run without being counted

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        raw = owner.__dict__.get(name, original) if isinstance(owner, type) else original
        acc, calls = self.acc, self.calls

        def timed(*a: Any, **k: Any) -> Any:
            if self.paused:
                return original(*a, **k)
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                acc[label] += time.perf_counter() - t
                calls[label] += 1

        if isinstance(raw, staticmethod):
            setattr(owner, name, staticmethod(timed))
        else:
            setattr(owner, name, timed)
        self._undo.append((owner, name, raw))

    def undo(self) -> None:
        for owner, name, raw in reversed(self._undo):
            setattr(owner, name, raw)

    def report(self, total: float, per: int, unit: str, order: list[tuple[str, int]]) -> None:
        print(f"  total {1000 * total / per:8.3f} ms per {unit}")
        for label, depth in order:
            if label in self.acc:
                share = 100 * self.acc[label] / total
                print(f"  {'  ' * depth}{label:<{60 - 2 * depth}} {1000 * self.acc[label] / per:8.3f} ms"
                      f"  {share:5.1f}%  ({self.calls[label] / per:.3g} calls/{unit})")  # fmt: skip


def issuance(n: int, db: str) -> None:
    from sqlalchemy.orm.session import SessionTransaction

    from pki import audit
    from pki.ca import certs
    from pki.services import context, requests
    from pki.services import issuance as iss

    import issuance as bench

    with common.environment(db) as env:
        csrs = bench.make_csrs(n + 500)
        ids = bench.approved_requests(env, n + 500)
        svc, d = env.service, env.people["distributor"]
        raw = bench.RawLoop(env)
        items = list(zip(ids, csrs, strict=True))
        svc.issuance.issue_many_from_csr(items[:500], actor=d)  # warm caches, not counted
        tm = Timers()
        tm.wrap(iss.IssuanceService, "issue_many_from_csr", "issue_many_from_csr")
        tm.wrap(iss, "csr_public_key", "parse_csr (PEM load + signature check)")
        tm.wrap(context.Context, "resolve", "resolve actor (SELECT pki_user)")
        tm.wrap(requests.RequestService, "lock_many", "lock_many (SELECT … FOR UPDATE, id order)")
        tm.wrap(requests.RequestService, "actions_by_many", "actions_by_many (SELECT audit_record, SoD)")
        tm.wrap(iss.IssuanceService, "_holders", "_holders (SELECT by spki_sha256)")
        tm.wrap(iss.IssuanceService, "_certify", "_certify (build, sign, row values)")
        tm.wrap(certs, "build_end_entity", "build_end_entity (build + ECDSA sign)")
        tm.wrap(requests.RequestService, "mark_issued_many", "mark_issued_many (UPDATE + audit)")
        tm.wrap(audit, "append_many", "audit.append_many")
        tm.wrap(SessionTransaction, "commit", "commit (end of each batch)")
        try:
            t = time.perf_counter()
            for lo in range(500, n + 500, 500):
                svc.issuance.issue_many_from_csr(items[lo : lo + 500], actor=d)
            total = time.perf_counter() - t
        finally:
            tm.undo()
        t_raw = min(raw.run(csrs[500 : n + 500], 500) for _ in range(3))
        print(f"issuance: production issue_many_from_csr, {n} requests in batches of 500 ({db})")
        print(f"  raw cryptography loop for the same CSRs: {1000 * t_raw / n:.3f} ms per certificate")
        tm.report(total, n, "certificate", [
            ("issue_many_from_csr", 0),
            ("parse_csr (PEM load + signature check)", 1),
            ("lock_for", 1),
            ("resolve actor (SELECT pki_user)", 2),
            ("_actions_by (SELECT audit_record, SoD)", 2),
            ("issue_locked", 1),
            ("_refuse_key_reuse (SELECT by spki_sha256)", 2),
            ("build_end_entity (build + ECDSA sign)", 2),
            ("Certificate(...) SQLModel constructor", 2),
            ("audit.append (x2: certificate.issue, request.issue)", 2),
            ("advance (request UPDATE + its audit)", 2),
            ("Session.flush (all flushes: INSERT/UPDATE; inside the steps above)", 1),
            ("commit (end of each batch)", 1),
        ])  # fmt: skip


def ocsp(n: int, db: str) -> None:
    from cryptography.x509 import ocsp as x509_ocsp
    from werkzeug.test import Client

    from pki.services import ocsp_responder as mod
    from web import create_app

    import ocsp as bench

    with common.environment(db) as env:
        rows = common.insert_certificates(env, "test", 10_000, revoked_share=0.2)
        svc = env.service
        reqs, _ = bench.build_requests(svc.authority.get("test").certificate, rows, 1000)
        svc.ocsp.warm()
        client = Client(create_app(svc))
        work = [reqs[i % len(reqs)] for i in range(n)]
        for r in work[:200]:
            client.post("/ocsp/test", data=r, content_type="application/ocsp-request")
        tm = Timers()
        tm.wrap(mod.OcspService, "respond", "OcspService.respond")
        tm.wrap(x509_ocsp, "load_der_ocsp_request", "load_der_ocsp_request")
        tm.wrap(mod.OcspService, "_signed", "_signed")
        eng = svc.ctx.engine
        tm.wrap(type(eng), "connect", "engine.connect (pool checkout)")
        tm.wrap(x509_ocsp.OCSPResponseBuilder, "sign", "OCSPResponseBuilder.sign")
        from sqlalchemy.engine import Connection

        tm.wrap(Connection, "execute", "Connection.execute (BEGIN IMMEDIATE + SELECT)")
        tm.wrap(Connection, "close", "Connection.close (ROLLBACK + checkin)")
        try:
            t = time.perf_counter()
            for r in work:
                client.post("/ocsp/test", data=r, content_type="application/ocsp-request")
            total = time.perf_counter() - t
        finally:
            tm.undo()
        t = time.perf_counter()
        for _ in range(n):
            mod._STATUS.where(mod.col(mod.Certificate.ca_id) == 1, mod.col(mod.Certificate.serial) == "AB")
        t_expr = time.perf_counter() - t
        print(
            f"OCSP: POST /ocsp/test through the Flask app (werkzeug test client, no HTTP server), {n} requests ({db})"
        )
        tm.report(total, n, "request", [
            ("OcspService.respond", 0),
            ("load_der_ocsp_request", 1),
            ("_signed", 1),
            ("engine.connect (pool checkout)", 2),
            ("Connection.execute (BEGIN IMMEDIATE + SELECT)", 2),
            ("Connection.close (ROLLBACK + checkin)", 2),
            ("OCSPResponseBuilder.sign", 2),
        ])  # fmt: skip
        print(f"  (building _STATUS.where(...) alone, outside the request: {1000 * t_expr / n:.3f} ms)")
        print("  the rest of the total is Flask + werkzeug request handling; waitress adds its own (see"
              " bench/ocsp.py --ceiling)")  # fmt: skip
        # The lookup's connection begins like a writer (pki.db: BEGIN IMMEDIATE unless pki_readonly): on
        # SQLite an OCSP response waits for any open write transaction (CRL publish, an issuance batch).
        import threading

        from sqlalchemy import event

        seen: list[str] = []

        def log(conn: Any, cur: Any, stmt: str, *rest: Any) -> None:
            seen.append(" ".join(stmt.split()[:2]))

        event.listen(eng, "before_cursor_execute", log)
        svc.ocsp.respond(reqs[0])
        event.remove(eng, "before_cursor_execute", log)
        print(f"  statements of one OCSP lookup: {seen}")
        if eng.dialect.name == "sqlite":
            held = threading.Event()

            def writer() -> None:
                with svc.ctx.write():
                    held.set()
                    time.sleep(2.0)

            th = threading.Thread(target=writer)
            th.start()
            held.wait()
            t = time.perf_counter()
            svc.ocsp.respond(reqs[1])
            waited = time.perf_counter() - t
            th.join()
            print(f"  one OCSP response while another thread holds a 2.0 s write transaction: {waited:.2f}s")


def crl(n: int, db: str) -> None:
    from sqlalchemy.orm.session import SessionTransaction
    from sqlmodel import Session

    from pki.ca import crl as crl_mod
    from pki.db import UTCDateTime

    with common.environment(db) as env:
        common.insert_certificates(env, "test", n, revoked_share=1.0)
        svc = env.service
        svc.crl.publish()  # warm
        tm = Timers()
        tm.wrap(type(svc.crl), "publish", "CrlService.publish (both issuing CAs)")
        from sqlalchemy.engine.result import Result

        tm.wrap(Session, "exec", "Session.exec (SELECT executed)")
        tm.wrap(Result, "all", "Result.all (fetch 100k rows, per-row type processing)")
        tm.wrap(UTCDateTime, "process_result_value", "UTCDateTime.process_result_value (per row)")
        tm.wrap(crl_mod, "build_crl", "build_crl (consume entries generator, encode, sign)")
        tm.wrap(crl_mod, "encode_entries", "encode_entries (all revokedCertificates)")
        tm.wrap(crl_mod, "_sign", "_sign (ECDSA over the TBSCertList)")
        tm.wrap(Session, "flush", "Session.flush (CrlRecord INSERT)")
        tm.wrap(SessionTransaction, "commit", "commit")
        try:
            t = time.perf_counter()
            svc.crl.publish()
            total = time.perf_counter() - t
        finally:
            tm.undo()
        # timers add their own cost (~0.5 µs a call, 100k+ calls): the unwrapped figure for reference
        t = time.perf_counter()
        svc.crl.publish()
        bare = time.perf_counter() - t
        print(f"CRL: production service.crl.publish(), {n} revoked entries ({db});"
              f" without timers {bare:.2f}s")  # fmt: skip
        tm.report(total, 1, "publish", [
            ("CrlService.publish (both issuing CAs)", 0),
            ("Session.exec (SELECT executed)", 1),
            ("Result.all (fetch 100k rows, per-row type processing)", 1),
            ("UTCDateTime.process_result_value (per row)", 2),
            ("build_crl (consume entries generator, encode, sign)", 1),
            ("(generator: int(serial, 16), crl.Entry(...), str(reason) per row)", 2),
            ("_entry (one revokedCertificate)", 2),
            ("der.time (astimezone + strftime)", 3),
            ("_sign (ECDSA over the TBSCertList)", 2),
            ("Session.flush (CrlRecord INSERT)", 1),
            ("commit", 1),
        ])  # fmt: skip


def token(n: int, db: str) -> None:
    """The USB key cycle of `pkictl issue` (issue_prechecked) on a SoftHSM2 token, EC P-256."""
    import os

    from tests.support import softhsm

    common.temporary_softhsm()  # before SoftHSM is first loaded

    from sqlalchemy.orm.session import SessionTransaction
    from tokens import native, usbkey
    from tokens.session import Module

    from pki import audit
    from pki.ca import certs
    from pki.cli import token_commands
    from pki.services import context, requests, token_device
    from pki.services import issuance as iss
    from pki.services import token_issuance as ti

    import issuance as bench

    with common.environment(db) as env:
        ids = bench.approved_requests(env, n + 5)
        token = softhsm.new_token(Path(os.environ["SOFTHSM2_CONF"]))
        module = Module(token.module)
        info = module.find(label=token.label)
        svc, d, ops = env.service, env.people["distributor"], env.people["ops"]

        def cycle(rid: int) -> bytes:
            done = token_commands.issue_prechecked(svc, module, info, token.pin, rid, d, "ec-p256")
            return bytes.fromhex(done.key_id)

        def hand_back(key_id: bytes) -> None:  # not timed: the next cycle meets the same token
            with usbkey.open_usb_key(module, info, token.pin) as device:
                device.remove(key_id)
            svc.inventory.mark(info.serial, "returned", actor=ops)

        for rid in ids[:5]:
            hand_back(cycle(rid))
        tm = Timers()
        tm.wrap(token_commands, "issue_prechecked", "issue_prechecked")
        tm.wrap(native.NativeModule, "login", "C_Login (native)")
        tm.wrap(ti.TokenIssuanceService, "precheck", "precheck (worker thread, beside the log-in)")
        tm.wrap(ti.TokenIssuanceService, "issue", "issue")
        tm.wrap(usbkey.UsbKey, "objects_labelled", "objects already labelled (C_FindObjects)")
        tm.wrap(usbkey.UsbKey, "generate", "key pair generated (token thread, beside _record)")
        tm.wrap(token_device.NewKey, "public_key", "waiting for the key pair, then the CSR")
        tm.wrap(native.NativeModule, "sign", "C_Sign (native: the CSR)")
        tm.wrap(token_device, "csr_public_key", "parse_csr (signature check)")
        tm.wrap(ti.TokenIssuanceService, "_record", "_record (issuance transaction)")
        tm.wrap(requests.RequestService, "lock_row", "lock_row (role, request lock, duties)")
        tm.wrap(context.Context, "resolve", "resolve actor (SELECT pki_user)")
        tm.wrap(ti.TokenIssuanceService, "_token_row", "_token_row (token lock)")
        tm.wrap(iss.IssuanceService, "issue_locked", "issue_locked")
        tm.wrap(iss.IssuanceService, "refuse_pending", "refuse_pending (SELECT undelivered)")
        tm.wrap(iss.IssuanceService, "_refuse_key_reuse", "_refuse_key_reuse (SELECT by spki_sha256)")
        tm.wrap(iss.IssuanceService, "_certify", "_certify (build, sign, row values)")
        tm.wrap(certs, "build_end_entity", "build_end_entity (build + ECDSA sign)")
        tm.wrap(iss, "_insert", "_insert (INSERT certificate RETURNING id)")
        tm.wrap(audit, "append_many", "audit.append_many")
        tm.wrap(requests.RequestService, "mark_issued_many", "mark_issued_many (UPDATE request + audit)")
        tm.wrap(ti, "put_on_token", "certificate put on the token (token thread)")
        tm.wrap(usbkey.UsbKey, "write_certificate", "C_CreateObject (native)")
        tm.wrap(usbkey.UsbKey, "read_certificate", "read back")
        tm.wrap(ti.TokenIssuanceService, "_deliver", "_deliver (delivery transaction, waits for the token)")
        tm.wrap(SessionTransaction, "commit", "commit (all transactions)")
        total = 0.0
        try:
            for rid in ids[5:]:
                t = time.perf_counter()
                key_id = cycle(rid)
                total += time.perf_counter() - t
                tm.paused = True
                hand_back(key_id)
                tm.paused = False
        finally:
            tm.undo()
        print(f"token: production issue_prechecked, {n} EC P-256 cycles on SoftHSM2 ({db})")
        tm.report(total, n, "cycle", [
            ("issue_prechecked", 0),
            ("C_Login (native)", 1),
            ("precheck (worker thread, beside the log-in)", 1),
            ("resolve actor (SELECT pki_user)", 2),
            ("issue", 1),
            ("objects already labelled (C_FindObjects)", 2),
            ("key pair generated (token thread, beside _record)", 2),
            ("_record (issuance transaction)", 2),
            ("lock_row (role, request lock, duties)", 3),
            ("_token_row (token lock)", 3),
            ("refuse_pending (SELECT undelivered)", 3),
            ("waiting for the key pair, then the CSR", 3),
            ("C_Sign (native: the CSR)", 4),
            ("parse_csr (signature check)", 4),
            ("issue_locked", 3),
            ("_refuse_key_reuse (SELECT by spki_sha256)", 4),
            ("_certify (build, sign, row values)", 4),
            ("build_end_entity (build + ECDSA sign)", 5),
            ("_insert (INSERT certificate RETURNING id)", 4),
            ("audit.append_many", 3),
            ("certificate put on the token (token thread)", 2),
            ("C_CreateObject (native)", 3),
            ("read back", 3),
            ("_deliver (delivery transaction, waits for the token)", 2),
            ("mark_issued_many (UPDATE request + audit)", 3),
            ("commit (all transactions)", 1),
        ])  # fmt: skip


def main() -> None:
    p = common.base_parser(__doc__.splitlines()[0], 0)
    p.add_argument("which", nargs="?", default="all", choices=("issuance", "ocsp", "crl", "token", "all"))
    args = p.parse_args()
    print(common.machine())
    runs: dict[str, Callable[[int, str], None]] = {
        "issuance": issuance,
        "ocsp": ocsp,
        "crl": crl,
        "token": token,
    }
    defaults = {"issuance": 2000, "ocsp": 2000, "crl": 100_000, "token": 100}
    for name, fn in runs.items():
        if args.which in (name, "all"):
            common.line()
            fn(args.n or defaults[name], args.db)


if __name__ == "__main__":
    main()
