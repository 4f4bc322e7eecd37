#!/usr/bin/env python3
"""Races through the whole stack with 4 casqd workers:
(a) 200 simultaneous claims of one key: exactly one wins;
(b) 10,000 items popped by two concurrent flushers: each exactly once;
(c) 2,000 items with leases, ~10% left to expire: each acked exactly once,
    the expired ones on a later attempt.

test_batching.py imports the scenario functions and runs them with more
items and connections; their keyword parameters default to this file's
numbers."""

import collections
import os
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, ok, run_main, run_threads, skip  # noqa: E402

N_CLAIMERS = 200
N_POP = 10000
FLUSHERS, FLUSH_THREADS = 2, 4      # flushers x connections each
N_LEASE = 2000
LEASE_THREADS = 8
ENQ_THREADS = 8
DEADLINE_S = 60     # for each phase; the whole file should take well under that
THREADS_TIMEOUT_S = 2 * DEADLINE_S  # for run_threads


def enqueue_all(s, queue, keys, nthreads=ENQ_THREADS, timeout=THREADS_TIMEOUT_S):
    """Enqueue keys (payload = key) with nthreads persistent connections;
    returns (the keys whose enqueue did not answer enqueued:true, the
    threads' exceptions)."""
    bad = []
    lock = threading.Lock()

    def work(i):
        c = s.client()
        try:
            for k in keys[i::nthreads]:
                r = c.call("POST", "/v1/queues/%s/enqueue" % queue,
                           body="key=%s&payload=%s" % (k, k),
                           content_type="application/x-www-form-urlencoded")
                if r.status != 200 or r.get("enqueued") is not True:
                    with lock:
                        bad.append((k, repr(r)))
        finally:
            c.close()
    errors = run_threads(nthreads, work, timeout)
    return bad, errors


def race_one_key(s, n=N_CLAIMERS, queue="race", name="race a", timeout=THREADS_TIMEOUT_S):
    """n connections claim the one item of queue at once: exactly one wins."""
    s.call("GET", "/v1/queues/%s/enqueue" % queue, params={"key": "hot", "payload": "the one"})
    barrier = threading.Barrier(n, timeout=60)
    results = [None] * n

    def claimer(i):
        c = s.client(timeout=60)
        try:
            c.connect()         # TLS handshake before the barrier
            barrier.wait()
            results[i] = c.call("GET", "/v1/queues/%s/claim" % queue,
                                params={"key": "hot", "claimant": "t%03d" % i})
        finally:
            c.close()
    t = time.monotonic()
    errors = run_threads(n, claimer, timeout)
    comment("%s: %d claims of one key in %.2f s" % (name, n, time.monotonic() - t))
    eq(errors, [], "%s: every claimer thread finished without an exception" % name)
    got = [r for r in results if r is not None]
    statuses = collections.Counter(r.status for r in got)
    eq(dict(statuses), {200: n}, "%s: all %d claims answered 200" % (name, n))
    winners = [(i, r) for i, r in enumerate(results) if r is not None and r.get("claimed") is True]
    eq(len(winners), 1, "%s: exactly one claim won" % name)
    losers = [r for r in got if r.get("claimed") is False]
    eq(len(losers), n - 1, "%s: %d claims lost" % (name, n - 1))
    if winners:
        wi, w = winners[0]
        eq((w.get("owner"), w.get("payload")), ("t%03d" % wi, "the one"),
           "%s: the winner's owner is its own claimant, payload intact" % name)
        bad = [r for r in losers if r.get("reason") != "claimed" or r.get("owner") != "t%03d" % wi]
        eq(len(bad), 0, "%s: every loser says reason claimed, owner = the winner (%s)"
           % (name, "t%03d" % wi))
        if bad:
            comment("first bad loser: %r" % bad[0])
    else:
        for what in ("the winner's owner is its own claimant", "every loser says reason claimed"):
            skip("%s: %s" % (name, what), "no claim won")
    st = s.stats(queue).json or {}
    eq((st.get("ready"), st.get("claimed")), (0, 1), "%s: stats ready 0, claimed 1" % name)


def race_flush(s, n=N_POP, flushers=FLUSHERS, flush_threads=FLUSH_THREADS,
               enq_threads=ENQ_THREADS, queue="flush", name="race b",
               timeout=THREADS_TIMEOUT_S):
    """n items popped by flushers x flush_threads connections started
    together: each item exactly once, none lost."""
    keys = ["item%05d" % i for i in range(n)]
    t = time.monotonic()
    bad, errors = enqueue_all(s, queue, keys, enq_threads, timeout)
    dt = time.monotonic() - t
    comment("%s: enqueued %d items with %d connections in %.2f s (%.0f/s)"
            % (name, n, enq_threads, dt, n / dt))
    eq((bad[:3], errors), ([], []), "%s: all %d enqueues answered enqueued:true" % (name, n))
    eq(s.stats(queue).get("ready"), n, "%s: stats ready == %d before the flush" % (name, n))

    claimed = collections.defaultdict(list)   # key -> [(flusher, thread)]
    lock = threading.Lock()
    anomalies = []
    nthreads = flushers * flush_threads
    barrier = threading.Barrier(nthreads, timeout=60)

    def flusher(i):
        who = "flusher%d-t%02d" % (i % flushers, i // flushers)
        c = s.client()
        mine = []
        try:
            c.connect()         # TLS handshake before the barrier
            barrier.wait()
            while True:
                r = c.call("GET", "/v1/queues/%s/pop" % queue, params={"claimant": who})
                if r.status != 200:
                    anomalies.append(repr(r))
                    break
                if r.get("claimed") is True:
                    mine.append((r.get("key"), r.get("payload"), r.get("owner")))
                elif r.get("reason") == "empty":
                    break
                else:
                    anomalies.append(repr(r))
                    break
        finally:
            c.close()
            with lock:
                for k, p, o in mine:
                    claimed[k].append(who)
                    if p != k or o != who:
                        anomalies.append("key %s payload %r owner %r" % (k, p, o))
    t = time.monotonic()
    errors = run_threads(nthreads, flusher, timeout)
    dt = time.monotonic() - t
    total = sum(len(v) for v in claimed.values())
    comment("%s: %d flushers x %d connections popped %d items in %.2f s (%.0f/s)"
            % (name, flushers, flush_threads, total, dt, total / dt if dt else 0))
    per = collections.Counter(w.split("-")[0] for v in claimed.values() for w in v)
    comment("%s: per flusher: %s" % (name, dict(per)))
    eq(errors, [], "%s: every flusher thread finished without an exception" % name)
    eq(anomalies[:3], [], "%s: every pop answered a win or empty, with the item's payload and owner" % name)
    dups = [k for k, v in claimed.items() if len(v) > 1]
    eq(dups[:5], [], "%s: no item claimed twice" % name)
    eq(set(claimed), set(keys), "%s: every item claimed (none lost, none invented)" % name)
    eq(total, n, "%s: %d successful pops in all" % (name, n))
    st = s.stats(queue).json or {}
    eq((st.get("ready"), st.get("leased"), st.get("claimed")), (0, 0, n),
       "%s: stats ready 0, leased 0, claimed %d" % (name, n))


def race_leases(s, n=N_LEASE, consumers=LEASE_THREADS, enq_threads=ENQ_THREADS,
                queue="lease", name="race c", deadline_s=DEADLINE_S,
                timeout=THREADS_TIMEOUT_S):
    """n items claimed with lease=1 by consumers connections, ~10% of first
    leases left to expire: each acked exactly once, the expired ones on a
    later attempt."""
    keys = ["job%04d" % i for i in range(n)]
    t = time.monotonic()
    bad, errors = enqueue_all(s, queue, keys, enq_threads, timeout)
    comment("%s: enqueued %d items in %.2f s" % (name, n, time.monotonic() - t))
    eq((bad[:3], errors), ([], []), "%s: all %d enqueues answered enqueued:true" % (name, n))

    lock = threading.Lock()
    acks = collections.Counter()          # key -> acked:true count
    ack_attempt = {}                      # key -> attempt of the acked claim
    dropped = set()                       # keys whose first lease was left to expire
    failed_acks = []
    anomalies = []
    deadline = time.monotonic() + deadline_s

    def consumer(i):
        who = "c%d" % i
        c = s.client()
        try:
            while time.monotonic() < deadline:
                r = c.call("GET", "/v1/queues/%s/pop" % queue, params={"claimant": who, "lease": 1})
                if r.status != 200:
                    anomalies.append(repr(r))
                    return
                if r.get("claimed") is not True:
                    if r.get("reason") != "empty":
                        anomalies.append(repr(r))
                        return
                    st = c.call("GET", "/v1/queues/%s" % queue).json or {}
                    if st.get("ready") == 0 and st.get("leased") == 0:
                        return
                    time.sleep(0.1)      # leases outstanding: wait for them
                    continue
                k, attempt = r.get("key"), r.get("attempt")
                # Leave ~10% of first attempts unacknowledged.
                if attempt == 1 and int(k[3:]) % 10 == 7:
                    with lock:
                        dropped.add(k)
                    continue
                a = c.call("GET", "/v1/queues/%s/ack" % queue, params={"key": k, "token": r.get("token")})
                with lock:
                    if a.get("acked") is True:
                        acks[k] += 1
                        ack_attempt[k] = attempt
                    else:
                        failed_acks.append((k, a.text.strip()))
        finally:
            c.close()
    t = time.monotonic()
    errors = run_threads(consumers, consumer, timeout)
    dt = time.monotonic() - t
    comment("%s: %d consumers acked %d items in %.2f s; %d left to expire; %d acks refused"
            % (name, consumers, sum(acks.values()), dt, len(dropped), len(failed_acks)))
    if failed_acks:
        comment("%s: refused acks (lease ran out under load?): %r" % (name, failed_acks[:5]))
    eq(errors, [], "%s: every consumer finished without an exception" % name)
    eq(anomalies[:3], [], "%s: every claim answered a win or empty" % name)
    ok(time.monotonic() < deadline, "%s: drained before the %d s deadline" % (name, deadline_s))
    eq(len(dropped), n // 10, "%s: %d first leases left to expire" % (name, n // 10))
    eq(set(acks), set(keys), "%s: every item acked" % name)
    eq([k for k, c in acks.items() if c != 1][:5], [], "%s: no item acked twice" % name)
    low = [(k, ack_attempt.get(k)) for k in dropped if (ack_attempt.get(k) or 0) < 2]
    eq(low[:5], [], "%s: every expired item was acked on attempt >= 2" % name)
    st = s.stats(queue).json or {}
    eq((st.get("ready"), st.get("leased"), st.get("acked")), (0, 0, n),
       "%s: stats ready 0, leased 0, acked %d" % (name, n))
    ok((st.get("expired") or 0) >= len(dropped), "%s: stats expired >= %d" % (name, len(dropped)),
       "got %r" % st.get("expired"))


def main():
    t = time.monotonic()
    with Stack(workers=4) as s:
        race_one_key(s)
        race_flush(s)
        race_leases(s)
    comment("total %.1f s" % (time.monotonic() - t))


if __name__ == "__main__":
    run_main(main)
