#!/usr/bin/env python3
"""Load on a `search --listen` or `classify --listen` server: CONCURRENCY clients, each posting
one request after another for SECONDS; prints one JSON line (answers per second, latency
percentiles, failed requests) and exits 1 when any request failed. With --keep-alive each
client keeps one connection for all its requests (http.client) instead of one per request
(urllib). Used by benches/serve.sh; standard library only."""
import argparse, http.client, json, statistics, sys, threading, time, urllib.parse, urllib.request

p = argparse.ArgumentParser()
p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080/search/text?top_k=10")
p.add_argument("--body", help="a file whose bytes each request sends (POST; without it, GET)")
p.add_argument("--keep-alive", action="store_true", help="one connection per client, kept open")
p.add_argument("--concurrency", type=int, default=8)
p.add_argument("--seconds", type=float, default=20)
p.add_argument("--label", default="")
a = p.parse_args()
body = open(a.body, "rb").read() if a.body else None
method = "POST" if a.body else "GET"
url = urllib.parse.urlsplit(a.url)
target = url.path + ("?" + url.query if url.query else "")
local = threading.local()


def call():
    if not a.keep_alive:
        req = urllib.request.Request(a.url, data=body, method=method)
        with urllib.request.urlopen(req, timeout=300) as r:  # raises on a status other than 2xx
            r.read()
        return
    for attempt in (1, 2):  # a kept connection the server closed meanwhile: once more on a new one
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
        try:
            local.conn.request(method, target, body=body)
            r = local.conn.getresponse()
            r.read()
            break
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            local.conn.close()
            local.conn = None
            if attempt == 2:
                raise
    if r.status >= 300:
        raise RuntimeError(f"status {r.status}")


call()  # warm-up
latencies, failures, lock, stop = [], [], threading.Lock(), time.monotonic() + a.seconds


def client():
    while time.monotonic() < stop:
        t = time.monotonic()
        try:
            call()
        except Exception as e:  # counted and reported, never a silently dead client
            with lock:
                failures.append(repr(e))
            continue
        with lock:
            latencies.append(time.monotonic() - t)


start = time.monotonic()
threads = [threading.Thread(target=client) for _ in range(a.concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
answers = len(latencies)
latencies = latencies or [float("nan")]  # every request failed: reported below
q = statistics.quantiles(latencies, n=10) if len(latencies) > 1 else latencies * 9
print(json.dumps({"label": a.label, "url": a.url, "keep_alive": a.keep_alive, "concurrency": a.concurrency, "answers": answers, "seconds": round(elapsed, 2),
                  "answers_per_s": round(answers / elapsed, 3), "latency_median_ms": round(1e3 * statistics.median(latencies), 1),
                  "latency_p90_ms": round(1e3 * q[8], 1), "failed": len(failures), "first_failure": failures[0] if failures else None}))
sys.exit(1 if failures else 0)
