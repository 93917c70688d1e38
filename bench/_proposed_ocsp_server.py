"""The OCSP prototype of bench/_proposals.py served like `pkictl serve` (same env vars, waitress, threads):

    python bench/_proposed_ocsp_server.py --port P [--threads 8] [--wsgi] [--lean] [--workers K]

FastOcsp by default (read-only connection, prebuilt bound statement); --lean: LeanOcsp (DB-API lookup on a
per-thread connection); --wsgi: POST /ocsp skips Flask (bench/_proposals.ocsp_wsgi); --workers K: K forked
processes accepting on one listening socket, each with its own service and engine (made after the fork).
Not production code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def serve(sock: socket.socket, args: argparse.Namespace) -> None:
    import waitress

    from pki.bootstrap import open_service
    from pki.config import Settings
    from web import create_app

    from _proposals import FastOcsp, LeanOcsp, ocsp_wsgi

    passphrase = os.environ["PKI_CA_PASSPHRASE"]
    svc = open_service(Settings.from_env(), passphrase=lambda: passphrase)
    svc.ocsp = (LeanOcsp if args.lean else FastOcsp)(svc.ctx, svc.authority)  # type: ignore[misc]
    svc.ocsp.warm()
    app = create_app(svc)
    waitress.serve(ocsp_wsgi(svc, app) if args.wsgi else app, sockets=[sock], threads=args.threads,
                   ident="pkictl")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--wsgi", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--lean", action="store_true", help="DB-API status lookup (LeanOcsp)")
    args = p.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    if args.workers <= 1:
        serve(sock, args)
        return
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            serve(sock, args)
            os._exit(0)
        children.append(pid)

    def _stop(*_: object) -> None:
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(c, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    for c in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(c, 0)


if __name__ == "__main__":
    main()
