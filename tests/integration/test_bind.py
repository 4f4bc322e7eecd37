#!/usr/bin/env python3
"""Bound pops through nginx + TLS + FastCGI + casqd + LMDB: 200 concurrent
pops with 50 distinct binds hand out exactly 50 items, each bind always
the same one (its first answer "again":false, every other "again":true
with the same key, payload and token); a retry after the item was acked or
removed still gets it; status shows bound_to; while workers are SIGKILLed
mid-run, retried bound pops still get the same item and no item goes to
two binds; a lease that runs out ends its binding; bind_days ends every
binding (test clock); bad binds are refused."""

import collections
import http.client
import os
import random
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main, run_threads, skip_all, worker_pids  # noqa: E402

BINDS = 50
POPS = 200
CODES = 60
KILLS = 6


def fill(s, q, n):
    for i in range(n):
        r = s.call("POST", "/v1/queues/%s/enqueue" % q,
                   body={"key": "code%03d" % i, "payload": {"code": "C-%03d" % i}})
        if r.get("enqueued") is not True:
            raise RuntimeError("enqueue failed: %r" % r)


def concurrent(s):
    q = "coupons"
    fill(s, q, CODES)
    start = threading.Barrier(POPS)
    answers, lock, other = collections.defaultdict(list), threading.Lock(), []

    def popper(i):
        c = s.client()
        bind = "lead-%02d" % (i % BINDS)
        try:
            start.wait()
            r = c.call("POST", "/v1/queues/%s/pop" % q, body={"bind": bind, "claimant": "flow"})
            with lock:
                if r.get("claimed") is True:
                    answers[bind].append((r.get("key"), r.get("token"), r.get("again"),
                                          repr(r.get("payload"))))
                else:
                    other.append(r.text)
        finally:
            c.close()
    eq(run_threads(POPS, popper), [], "%d poppers ran without an exception" % POPS)
    eq(other, [], "every bound pop won")
    eq(len(answers), BINDS, "all %d binds were answered" % BINDS)
    same = all(len(set(a[:2] + a[3:] for a in v)) == 1 for v in answers.values())
    ok(same, "each bind always got the same item, token and payload")
    firsts = sorted(sum(1 for a in v if a[2] is False) for v in answers.values())
    eq(firsts, [1] * BINDS, "each bind's first pop said again:false, every other again:true")
    keys = [v[0][0] for v in answers.values()]
    eq(len(set(keys)), BINDS, "exactly %d distinct items were handed out" % BINDS)
    st = s.stats(q).json or {}
    eq((st.get("claimed"), st.get("ready")), (BINDS, CODES - BINDS), "stats: %d claimed, %d ready" % (BINDS, CODES - BINDS))
    bind, v = sorted(answers.items())[0]
    r = s.q(q, "status", key=v[0][0]).json or {}
    eq((r.get("state"), r.get("bound_to")), ("claimed", bind), "status of a popped item shows bound_to")
    r = s.q(q, "pop", bind=bind)
    eq((r.get("again"), r.get("key")), (True, v[0][0]), "a later retry gets it again")


def acked_and_removed(s):
    q = "seats"
    fill(s, q, 2)
    first = s.q(q, "pop", bind="lead-a", claimant="flow", lease="600")
    ok(first.get("claimed") is True and first.get("again") is False, "a leased bound pop", first.text)
    r = s.q(q, "status", key=first.get("key")).json or {}
    eq((r.get("state"), r.get("bound_to")), ("leased", "lead-a"), "status of the leased item shows bound_to")
    s.q(q, "ack", key=first.get("key"), token=first.get("token"))
    r = s.q(q, "pop", bind="lead-a", claimant="flow", lease="600")
    eq((r.get("again"), r.get("key"), r.get("payload"), r.get("token")),
       (True, first.get("key"), first.get("payload"), first.get("token")),
       "after the ack a retry gets the same item, payload and token")
    second = s.q(q, "pop", bind="lead-b", claimant="flow", lease="600")
    s.q(q, "remove", key=second.get("key"))
    r = s.q(q, "pop", bind="lead-b")
    eq((r.get("again"), r.get("key"), r.get("payload")), (True, second.get("key"), second.get("payload")),
       "after the item was removed a retry still gets it")


def kills(s):
    """Bound pops retried until answered while workers are SIGKILLed."""
    q = "kill"
    binds = ["k%03d" % i for i in range(100)]
    fill(s, q, len(binds))
    answers, lock, stop = collections.defaultdict(set), threading.Lock(), threading.Event()
    failed, killed = [0], [0]

    def popper(i):
        c = s.client(timeout=10)
        try:
            while not stop.is_set():    # rounds until the kills are over
                for b in binds[i::8]:
                    while True:
                        try:
                            r = c.call("POST", "/v1/queues/%s/pop" % q,
                                       body={"bind": b, "claimant": "p%d" % i}, retry=False)
                        except (OSError, http.client.HTTPException):
                            c.close()
                            r = None
                        if r is not None and r.get("claimed") is True:
                            with lock:
                                answers[b].add(r.get("key"))
                            break
                        with lock:
                            failed[0] += 1
                        time.sleep(0.02)
        finally:
            c.close()

    def killer():
        rnd = random.Random(12)
        while killed[0] < KILLS:
            time.sleep(0.3)
            pids = worker_pids(s.casqd.pid)
            if pids:
                try:
                    os.kill(rnd.choice(pids), signal.SIGKILL)
                    killed[0] += 1
                except ProcessLookupError:
                    pass
        stop.set()
    k = threading.Thread(target=killer, daemon=True)
    k.start()
    errors = run_threads(8, popper, timeout=300)
    k.join()
    eq(errors, [], "the poppers ran without an exception")
    eq(killed[0], KILLS, "%d workers were SIGKILLed while bound pops ran (%d failed calls retried)"
       % (KILLS, failed[0]))
    eq(sorted(answers), binds, "every bind was answered")
    eq([b for b, keys in answers.items() if len(keys) != 1], [],
       "every bind got one and the same item in every answer, across worker kills")
    keys = [next(iter(v)) for v in answers.values()]
    eq(len(set(keys)), len(binds), "no item went to two binds")
    s.wait_healthy()
    eq((s.stats(q).json or {}).get("claimed"), len(binds), "exactly one item taken per bind")


def lease_and_days(s):
    q = "days"
    s.call("POST", "/v1/queues/%s/config" % q, body={"bind_days": 1})
    fill(s, q, 1)
    key = s.q(q, "pop", bind="L", claimant="flow", lease="10").get("key")
    s.advance(11)
    r = s.q(q, "pop", bind="M", claimant="flow")
    eq((r.get("key"), r.get("again")), (key, False),
       "a bound lease that ran out puts the item back in the pool (another bind takes it)")
    eq(s.q(q, "pop", bind="L", claimant="flow").get("reason"), "empty",
       "... and ended its binding: L pops anew, and the pool is empty")
    s.q(q, "enqueue", key="other")
    eq(s.q(q, "pop", bind="L", claimant="flow").get("key"), "other", "L takes the next item")
    s.advance(86400 + 1)
    s.q(q, "enqueue", key="late")
    r = s.q(q, "pop", bind="L", claimant="flow")
    eq((r.get("again"), r.get("key")), (False, "late"), "after bind_days the same bind takes a new item")


def bad(s):
    for params, status, reason in (({"bind": ""}, 400, "Bad Bind"), ({"bind": "x" * 257}, 400, "Bad Bind"),
                                   ({"bind": "x" * 256}, 200, "OK")):
        r = s.call("POST", "/v1/queues/coupons/pop", body=params)
        eq((r.status, r.reason), (status, reason), "pop with a bind of %d bytes: %d" % (len(params["bind"]), status))
    r = s.call("POST", "/v1/queues/coupons/claim", body={"key": "code001", "bind": "x"})
    eq((r.status, r.reason), (400, "Unknown Parameter"), "claim takes no bind")


def main():
    with Stack(workers=2, test_clock=True) as s:
        if not s.test_clock_works():
            skip_all("casqd built without --enable-test-clock")
        concurrent(s)
        acked_and_removed(s)
        bad(s)
        lease_and_days(s)
        kills(s)


run_main(main)
