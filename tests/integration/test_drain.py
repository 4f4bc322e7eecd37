#!/usr/bin/env python3
"""Room to drain: once 507 Storage Full has begun, no write may add bytes
or entries, so that consumers can always empty the store. On a small map
(3 MiB: 768 pages, 256 of them kept back), 3,000 items and 1,000 values
are stored, big items fill the rest until enqueues are refused, then
10,000 writes of every kind are sent: new items, new values, sets and
incrs with a ttl (each would add an expiry entry), longer values, new and
expired once-windows, stored answers for request ids, and drains that find
nothing (claims, pops, removes and deletes of absent keys with fresh
request ids). Afterwards 1,000 claims, 1,000 leased claims and their acks,
1,000 removes and 1,000 deletes must all still succeed: the room kept
back also holds the history those drains record (docs/storage.md)."""

import os
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, ok, run_main  # noqa: E402

N = 1000            # items per kind of drain, and values to delete
THREADS = 4         # clients at once: their writes share commits
# Filler payload: small enough for a leaf page, so the refusal is the
# space check's (an 8 KiB payload needs contiguous overflow pages and can
# hit LMDB's real limit while the free list still has room).
BIG = 1000


def run_calls(s, calls, threads=THREADS):
    """Send calls ((method, path, params, body) tuples) over `threads`
    connections; return the responses in the order of calls."""
    out = [None] * len(calls)
    nxt = [0]
    lock = threading.Lock()
    errors = []

    def work():
        c = s.client(timeout=60)
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(calls):
                    return
                method, path, params, body = calls[i]
                out[i] = c.call(method, path, params=params, body=body)
        except Exception as e:  # noqa: B902 - reported below
            errors.append(repr(e))
        finally:
            c.close()
    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("client errors: %s" % errors[:3])
    return out


def statuses(rs):
    counts = {}
    for r in rs:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def fill(s):
    """The items and values to drain, then filler until 507."""
    calls = []
    for kind in ("c", "l", "r"):          # claim, lease+ack, remove
        calls += [("POST", "/v1/queues/drain/enqueue", None, {"key": "%s%04d" % (kind, i)})
                  for i in range(N)]
    calls += [("POST", "/v1/kv/drain/set", None, {"key": "v%04d" % i, "value": "x" * 20})
              for i in range(N)]
    calls += [("POST", "/v1/kv/drain/set", None, {"key": "cnt%d" % i, "value": 7}) for i in range(10)]
    calls += [("POST", "/v1/once/drain", None, {"id": "w%d" % i, "ttl": 1}) for i in range(10)]
    rs = run_calls(s, calls)
    eq(statuses(rs), {200: len(calls)}, "fill: %d items, values and windows stored" % len(calls))
    big, other = 0, None
    while big < 5000:
        r = s.call("POST", "/v1/queues/filler/enqueue",
                   body={"key": "b%04d" % big, "payload": "y" * BIG})
        if r.status == 507:
            break
        if r.status != 200:
            other = r
            break
        big += 1
    eq(other, None, "every filler until the first 507 was stored")
    comment("%d filler items of %d bytes before the first 507" % (big, BIG))
    ok(big < 5000, "the map fills up: an enqueue gets 507 Storage Full")


def growth_writes(s):
    """10,000 writes that must neither fail with anything but 507 nor add
    anything: every kind that could grow the store."""
    kinds = [
        # sets with a ttl on existing values: each would add an expiry entry
        lambda i: ("POST", "/v1/kv/drain/set", None, {"key": "v%04d" % (i % N), "value": "x" * 20, "ttl": 3600}),
        lambda i: ("POST", "/v1/kv/drain/set", None, {"key": "v%04d" % (i % N), "value": "x" * 20, "ttl": 3600}),
        lambda i: ("POST", "/v1/kv/drain/incr", None, {"key": "cnt%d" % (i % 10), "ttl": 60}),
        # drains that find nothing, each with a new request id
        lambda i: ("POST", "/v1/queues/drain/claim", None, {"key": "absent%d" % i, "request_id": "rc%d" % i}),
        lambda i: ("POST", "/v1/queues/nothing/pop", None, {"request_id": "rp%d" % i}),
        lambda i: ("POST", "/v1/queues/drain/remove", None, {"key": "absent%d" % i, "request_id": "rr%d" % i}),
        lambda i: ("POST", "/v1/kv/drain/delete", None, {"key": "absent%d" % i, "request_id": "rd%d" % i}),
        lambda i: ("POST", "/v1/kv/new%d/delete" % i, None, {"key": "k"}),
        # new data, plain or with a request id
        lambda i: ("POST", "/v1/queues/drain/enqueue", None, {"key": "new%d" % i}),
        lambda i: ("POST", "/v1/queues/new%d/enqueue" % i, None, {"key": "k", "request_id": "re%d" % i}),
        lambda i: ("POST", "/v1/kv/drain/set", None, {"key": "newv%d" % i, "value": "v"}),
        lambda i: ("POST", "/v1/kv/drain/set", None, {"key": "v%04d" % (i % N), "value": "x" * 40}),
        lambda i: ("POST", "/v1/kv/drain/set", None, {"key": "v%04d" % (i % N), "value": "x" * 20,
                                                      "request_id": "rs%d" % i}),
        lambda i: ("POST", "/v1/kv/drain/incr", None, {"key": "newc%d" % i}),
        lambda i: ("POST", "/v1/once/drain", None, {"id": "new%d" % i}),
        lambda i: ("POST", "/v1/once/drain", None, {"id": "w%d" % (i % 10)}),   # expired: would reopen
    ]
    calls = [kinds[i % len(kinds)](i) for i in range(10000)]
    s.advance(5)            # the once-windows w0..w9 (ttl 1) have closed
    rs = run_calls(s, calls)
    bad = [(c[1], c[3], repr(r)) for c, r in zip(calls, rs)
           if r.status not in (200, 507) or (r.status == 200 and r.text.startswith(
               ('{"ok":true', '{"enqueued":true', '{"first":true', '{"value"')))]
    eq(bad[:5], [], "10,000 writes after the refusal began: each refused (507) or a drain that found nothing")
    comment("answers: %r" % statuses(rs))


def drains(s):
    calls = [("POST", "/v1/queues/drain/claim", None, {"key": "c%04d" % i, "claimant": "d"}) for i in range(N)]
    calls += [("POST", "/v1/queues/drain/claim", None, {"key": "l%04d" % i, "claimant": "L", "lease": 600})
              for i in range(N)]
    rs = run_calls(s, calls)
    won = [r for r in rs if r.status == 200 and r.get("claimed") is True]
    ok(len(won) == 2 * N, "%d claims and %d leased claims all win" % (N, N),
       "%d won; %r" % (len(won), [repr(r) for r in rs if r.get("claimed") is not True][:3]))
    tokens = {r.get("key"): r.get("token") for r in rs[N:]}
    calls = [("POST", "/v1/queues/drain/ack", None, {"key": k, "token": t}) for k, t in sorted(tokens.items())]
    calls += [("POST", "/v1/queues/drain/remove", None, {"key": "r%04d" % i}) for i in range(N)]
    calls += [("POST", "/v1/kv/drain/delete", None, {"key": "v%04d" % i}) for i in range(N)]
    rs = run_calls(s, calls)
    eq(sum(1 for r in rs[:N] if r.get("acked") is True), N, "%d acks all succeed" % N)
    eq(sum(1 for r in rs[N:2 * N] if r.get("removed") is True), N, "%d removes all succeed" % N)
    eq(sum(1 for r in rs[2 * N:] if r.get("ok") is True), N, "%d deletes all succeed" % N)
    st = s.stats("drain").json or {}
    eq((st.get("ready"), st.get("leased")), (0, 0), "the drained queue is empty")


def main():
    t0 = time.monotonic()
    with Stack(workers=1, test_clock=True, extra_args=["--map-size", "3M"]) as s:
        fill(s)
        growth_writes(s)
        drains(s)
        r = s.call("POST", "/v1/queues/filler/claim", body={"key": "b0000"})
        eq((r.get("claimed"), len(r.get("payload") or "")), (True, BIG), "a filler item is intact")
    comment("total %.1f s" % (time.monotonic() - t0))


run_main(main)
