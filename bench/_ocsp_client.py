"""OCSP load generator for bench/ocsp.py, run as its own process (so its GIL is not the servers').

    python bench/_ocsp_client.py IN.pickle OUT.pickle

IN holds {"port", "path", "requests": [DER, ...], "n", "concurrency", "time_limit"}. C threads each keep one
http.client connection to 127.0.0.1:port and POST requests[i % len(requests)] for i in 0..n-1 (a shared
counter); when the server answers with "Connection: close" (or closes), the next request opens a new
connection. The loop stops after n requests or time_limit seconds, whichever first. Responses are kept and
checked by the caller after the timed loop, so checking costs the client nothing while it is timed.
"""

from __future__ import annotations

import http.client
import pickle
import resource
import sys
import threading
import time


class _Counted(http.client.HTTPConnection):
    def __init__(self, *args: object, stats: dict[str, int], **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._stats = stats

    def connect(self) -> None:
        super().connect()
        self._stats["connections"] += 1


def run(cfg: dict) -> dict:
    port, path, reqs = cfg["port"], cfg["path"], cfg["requests"]
    n, conc, limit = cfg["n"], cfg["concurrency"], cfg["time_limit"]
    lock = threading.Lock()
    state = {"next": 0}
    results: list[tuple[int, int, bytes] | None] = [None] * n
    errors: list[str] = []
    closes = {"server_close": 0}
    deadline = 0.0

    def take() -> int | None:
        with lock:
            i = state["next"]
            if i >= n or time.perf_counter() > deadline:
                return None
            state["next"] = i + 1
            return i

    def worker(stats: dict[str, int]) -> None:
        conn = _Counted("127.0.0.1", port, timeout=30, stats=stats)
        headers = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
        try:
            while (i := take()) is not None:
                body = reqs[i % len(reqs)]
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    results[i] = (i % len(reqs), resp.status, data)
                    if resp.will_close:
                        stats["server_close"] += 1
                        conn.close()
                except (OSError, http.client.HTTPException) as e:
                    errors.append(f"{i}: {type(e).__name__}: {e}")
                    conn.close()
        finally:
            conn.close()

    stats_list = [{"connections": 0, "server_close": 0} for _ in range(conc)]
    threads = [threading.Thread(target=worker, args=(st,)) for st in stats_list]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    deadline = start + limit
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    done = [r for r in results if r is not None]
    closes["server_close"] = sum(s["server_close"] for s in stats_list)
    return {
        "elapsed": elapsed,
        "done": done,
        "errors": errors,
        "connections": sum(s["connections"] for s in stats_list),
        "server_close": closes["server_close"],
        "client_cpu": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "timed_out": len(done) < n and not errors,
    }


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        cfg = pickle.load(f)
    out = run(cfg)
    with open(sys.argv[2], "wb") as f:
        pickle.dump(out, f)


if __name__ == "__main__":
    main()
