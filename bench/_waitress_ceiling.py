"""The ceiling of the serving stack alone, for bench/ocsp.py --ceiling: waitress (same threads) and a WSGI
app that answers every request with a constant 1 KB body and answers /healthz. No OCSP work at all: what
any waitress-served responder could at most reach with this client on this machine.

    python bench/_waitress_ceiling.py --port P [--threads 8]
"""

from __future__ import annotations

import argparse

import waitress

BODY = b"\x30" * 1024


def app(environ, start_response):  # type: ignore[no-untyped-def]
    size = int(environ.get("CONTENT_LENGTH") or 0)
    if size:
        environ["wsgi.input"].read(size)
    start_response(
        "200 OK", [("Content-Type", "application/ocsp-response"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    waitress.serve(app, host="127.0.0.1", port=args.port, threads=args.threads)


if __name__ == "__main__":
    main()
