"""The OCSP prototype of bench/_proposals.py served like `pkictl serve` (same env vars, waitress, threads):

    python bench/_proposed_ocsp_server.py --port P [--threads 8] [--wsgi]

Without --wsgi only the responder's query is changed (FastOcsp) and Flask still routes; with --wsgi, POST
/ocsp also skips Flask (bench/_proposals.ocsp_wsgi). Not production code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import waitress  # noqa: E402

from _proposals import FastOcsp, ocsp_wsgi  # noqa: E402
from pki.bootstrap import open_service  # noqa: E402
from pki.config import Settings  # noqa: E402
from web import create_app  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--wsgi", action="store_true")
    args = p.parse_args()
    passphrase = os.environ["PKI_CA_PASSPHRASE"]
    svc = open_service(Settings.from_env(), passphrase=lambda: passphrase)
    svc.ocsp = FastOcsp(svc.ctx, svc.authority)
    svc.ocsp.warm()
    app = create_app(svc)
    waitress.serve(ocsp_wsgi(svc, app) if args.wsgi else app, host="127.0.0.1", port=args.port,
                   threads=args.threads, ident="pkictl")  # fmt: skip


if __name__ == "__main__":
    main()
