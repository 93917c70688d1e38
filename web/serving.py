"""Serving the app: waitress for plain HTTP (on loopback, or behind a TLS-terminating reverse proxy), and
cheroot when pkictl serves TLS itself (waitress has no TLS). Both are production WSGI servers with a thread
pool; the app is the same object."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any


def serve_plain(app: Any, *, host: str, port: int, threads: int, trusted_proxy: str | None) -> None:
    """waitress. With ``trusted_proxy`` (the proxy's address), X-Forwarded-For and X-Forwarded-Proto from it
    are believed (client addresses for log-in throttling; https for the API's transport rule) and the same
    headers from anyone else are dropped."""
    import waitress

    # Without a trusted proxy the forwarding headers reach the app (waitress would drop them), which then
    # refuses what a proxy relayed from plain HTTP (web/api: _secure_transport).
    options: dict[str, Any] = {"clear_untrusted_proxy_headers": False}
    if trusted_proxy:
        options = {
            "trusted_proxy": trusted_proxy,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
            "clear_untrusted_proxy_headers": True,
        }
    waitress.serve(app, host=host, port=port, threads=threads, ident="pkictl", **options)


def serve_tls(app: Any, *, host: str, port: int, threads: int, cert: Path, key: Path) -> None:
    """cheroot with TLS 1.2 or later from ``cert`` (the chain, PEM) and ``key`` (PEM); Ctrl-C stops it."""
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    adapter = BuiltinSSLAdapter(str(cert), str(key))
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    server = wsgi.Server((host, port), app, numthreads=threads, server_name="pkictl")
    server.ssl_adapter = adapter
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()
