#!/usr/bin/env python3
"""Scoped and rate-limited keys, through nginx + TLS + FastCGI + LMDB:
a read key (scope=read) may use every route that changes nothing and gets
403 Read Only Key on every other one, changing nothing; a key with rate=N
gets at most N requests a second (bursts of N) across all worker
processes together, then 429 Rate Limited with Retry-After; a SIGHUP that
changes a key's scope takes effect without dropping requests."""

import os
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, mint_key, ok, run_main  # noqa: E402

WRITES = [
    ("/v1/queues/sc/enqueue", {"key": "new"}),
    ("/v1/queues/sc/claim", {"key": "k1"}),
    ("/v1/queues/sc/pop", {}),
    ("/v1/queues/sc/ack", {"key": "k1", "claimant": "c"}),
    ("/v1/queues/sc/release", {"key": "k1", "claimant": "c"}),
    ("/v1/queues/sc/remove", {"key": "k1"}),
    ("/v1/queues/sc/redrive", {"all": True}),
    ("/v1/queues/sc/config", {"max_attempts": 1}),
    ("/v1/kv/sc/set", {"key": "v", "value": "changed"}),
    ("/v1/kv/sc/delete", {"key": "v"}),
    ("/v1/kv/sc/incr", {"key": "n"}),
    ("/v1/once/sc", {"id": "i"}),
]
READS = [
    ("/v1/queues/sc/status", {"key": "k1"}),
    ("/v1/queues/sc", {}),
    ("/v1/queues/sc/config", {}),
    ("/v1/queues", {}),
    ("/v1/kv/sc/get", {"key": "v"}),
    ("/v1/kv/sc", {}),
    ("/v1/kv", {}),
    ("/v1/ping", {}),
]


def snapshot(s):
    """What the writes above could change."""
    return (s.q("sc", "status", key="k1").text, s.q("sc", "status", key="new").text,
            s.stats("sc").text, s.call("GET", "/v1/queues/sc/config").text, s.call("GET", "/v1/kv/sc/get", params={"key": "v"}).text,
            s.call("GET", "/v1/kv/sc/get", params={"key": "n"}).text)


def read_key(s):
    s.q("sc", "enqueue", key="k1")
    s.call("GET", "/v1/kv/sc/set", params={"key": "v", "value": "orig"})
    ro = s.add_key("reporting", "--scope", "read")
    before = snapshot(s)
    refused = []
    for path, p in WRITES:
        for extra in ({}, {"request_id": "ro-" + path}):
            r = s.call("POST", path, body=dict(p, **extra), key=ro)
            if (r.status, r.reason, r.get("error")) != (403, "Read Only Key", "read_only_key"):
                refused.append((path, repr(r)))
    eq(refused, [], "read key: every write route (with and without a request id) is 403 Read Only Key")
    eq(snapshot(s), before, "read key: nothing changed")
    allowed = []
    for path, p in READS:
        r = s.call("GET", path, params=p, key=ro)
        if r.status != 200:
            allowed.append((path, repr(r)))
    eq(allowed, [], "read key: every read route answers 200")
    r = s.call("GET", "/v1/kv/sc/get", params={"key": "v"}, key=ro)
    eq(r.get("value"), "orig", "read key: reads the data")
    r = s.call("POST", "/v1/kv/sc/set", body={"key": "v", "value": "w"})
    eq(r.get("ok"), True, "the write key still writes")
    return ro


def scope_change(s, ro):
    """Rewrite the read key's line as scope=write, SIGHUP under load: the
    key starts writing, and no request of the load fails meanwhile."""
    keys = s.path("keys")
    with open(keys) as f:
        lines = f.read().splitlines()
    lines = [ln.replace(" scope=read", " scope=write") if ln.startswith("reporting:") else ln
             for ln in lines]
    with open(keys, "w") as f:
        f.write("\n".join(lines) + "\n")
    failures = []
    stop = threading.Event()

    def load():
        c = s.client()
        try:
            while not stop.is_set():
                r = c.call("GET", "/v1/queues/sc/status", params={"key": "k1"}, key=ro)
                if r.status != 200:
                    failures.append(repr(r))
        finally:
            c.close()
    t = threading.Thread(target=load)
    t.start()
    try:
        s.reload_keys()
    finally:
        stop.set()
        t.join()
    eq(failures[:3], [], "SIGHUP under load: no read failed (keys reload in place)")
    r = s.call("POST", "/v1/queues/sc/enqueue", body={"key": "by-reporting"}, key=ro)
    eq(r.get("enqueued"), True, "after SIGHUP with scope=write the key writes")


def rate_limit(s):
    """rate=N: a burst of N, then N a second, over 4 workers together."""
    n = 40
    key = s.add_key("limited", "--rate", str(n))
    time.sleep(1.1)             # the pings of add_key: let the bucket refill (at most n)
    results = []
    lock = threading.Lock()
    first_send, last_recv = [None], [None]
    duration = 3.0
    t0 = time.monotonic()

    def blast(i):
        c = s.client()
        try:
            c.connect()
            while time.monotonic() - t0 < duration:
                sent = time.monotonic()
                r = c.call("GET", "/v1/ping", key=key)
                got = time.monotonic()
                with lock:
                    if first_send[0] is None or sent < first_send[0]:
                        first_send[0] = sent
                    last_recv[0] = got if last_recv[0] is None else max(last_recv[0], got)
                    results.append((r.status, r.reason, r.headers.get("Retry-After"), r.text))
        finally:
            c.close()
    ts = [threading.Thread(target=blast, args=(i,)) for i in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    passed = sum(1 for st, *_ in results if st == 200)
    limited = [x for x in results if x[0] == 429]
    span = last_recv[0] - first_send[0]
    most = n + n * span
    comment("rate=%d: %d requests in %.2f s, %d answered 200, %d 429" % (
        n, len(results), span, passed, len(limited)))
    ok(len(limited) > 0, "over the rate: some requests are 429")
    ok(passed <= 1.1 * most, "at most the burst plus the rate over the run, across all workers (+10%%)",
       "%d passed, at most %.0f allowed" % (passed, most))
    ok(passed >= 0.9 * n * (1 + span * 0.5), "the limit lets the rate through (no lock-up)",
       "%d passed in %.2f s" % (passed, span))
    bad = [x for x in limited if x[1] != "Rate Limited" or not (x[2] or "").isdigit() or int(x[2]) < 1
           or '"error":"rate_limited"' not in x[3]]
    eq(bad[:2], [], "429 Rate Limited, a Retry-After of whole seconds, error rate_limited")
    r = s.call("GET", "/v1/ping")
    eq(r.status, 200, "another key is not limited by it")


def main():
    with Stack(workers=4) as s:
        ro = read_key(s)
        scope_change(s, ro)
        rate_limit(s)
    # a bad scope is refused at --mint-key
    try:
        mint_key("x", "--scope", "root")
        ok(False, "--mint-key --scope root is refused")
    except RuntimeError:
        ok(True, "--mint-key --scope root is refused")


run_main(main)
