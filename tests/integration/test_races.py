#!/usr/bin/env python3
"""Races through the whole stack with 4 casqd workers:
(a) 200 simultaneous claims of one key: exactly one wins;
(b) 10,000 items popped by two concurrent flushers: each exactly once;
(c) 2,000 items with leases, ~10% left to expire: each acked exactly once,
    the expired ones on a later attempt."""

import collections
import os
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, ok, run_main  # noqa: E402

N_CLAIMERS = 200
N_POP = 10000
N_LEASE = 2000
ENQ_THREADS = 8
DEADLINE_S = 60     # for each phase; the whole file should take well under that


def run_threads(n, target):
    """Run target(i) in n threads; return the exceptions raised."""
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # noqa: B902 - reported as a failure
            errors.append("%s: %s" % (type(e).__name__, e))
    ts = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(DEADLINE_S * 2)
    return errors + ["thread still running" for t in ts if t.is_alive()]


def enqueue_all(s, queue, keys):
    """Enqueue keys with ENQ_THREADS persistent connections; returns the
    keys whose enqueue did not answer enqueued:true."""
    bad = []
    lock = threading.Lock()

    def work(i):
        c = s.client()
        try:
            for k in keys[i::ENQ_THREADS]:
                r = c.call("POST", "/v1/queues/%s/enqueue" % queue,
                           body="key=%s&payload=%s" % (k, k),
                           content_type="application/x-www-form-urlencoded")
                if r.status != 200 or r.get("enqueued") is not True:
                    with lock:
                        bad.append((k, repr(r)))
        finally:
            c.close()
    errors = run_threads(ENQ_THREADS, work)
    return bad, errors


def race_one_key(s):
    s.call("GET", "/v1/queues/race/enqueue", params={"key": "hot", "payload": "the one"})
    barrier = threading.Barrier(N_CLAIMERS, timeout=60)
    results = [None] * N_CLAIMERS

    def claimer(i):
        c = s.client(timeout=60)
        try:
            c.connect()         # TLS handshake before the barrier
            barrier.wait()
            results[i] = c.call("GET", "/v1/queues/race/claim",
                                params={"key": "hot", "claimant": "t%03d" % i})
        finally:
            c.close()
    t = time.monotonic()
    errors = run_threads(N_CLAIMERS, claimer)
    comment("race a: %d claims of one key in %.2f s" % (N_CLAIMERS, time.monotonic() - t))
    eq(errors, [], "race a: every claimer thread finished without an exception")
    got = [r for r in results if r is not None]
    statuses = collections.Counter(r.status for r in got)
    eq(dict(statuses), {200: N_CLAIMERS}, "race a: all %d claims answered 200" % N_CLAIMERS)
    winners = [(i, r) for i, r in enumerate(results) if r is not None and r.get("claimed") is True]
    eq(len(winners), 1, "race a: exactly one claim won")
    losers = [r for r in got if r.get("claimed") is False]
    eq(len(losers), N_CLAIMERS - 1, "race a: %d claims lost" % (N_CLAIMERS - 1))
    if winners:
        wi, w = winners[0]
        eq((w.get("owner"), w.get("payload")), ("t%03d" % wi, "the one"),
           "race a: the winner's owner is its own claimant, payload intact")
        bad = [r for r in losers if r.get("reason") != "claimed" or r.get("owner") != "t%03d" % wi]
        eq(len(bad), 0, "race a: every loser says reason claimed, owner = the winner (%s)" % ("t%03d" % wi))
        if bad:
            comment("first bad loser: %r" % bad[0])


def race_flush(s):
    keys = ["item%05d" % i for i in range(N_POP)]
    t = time.monotonic()
    bad, errors = enqueue_all(s, "flush", keys)
    dt = time.monotonic() - t
    comment("race b: enqueued %d items with %d connections in %.2f s (%.0f/s)"
            % (N_POP, ENQ_THREADS, dt, N_POP / dt))
    eq((bad[:3], errors), ([], []), "race b: all %d enqueues answered enqueued:true" % N_POP)
    eq(s.stats("flush").get("ready"), N_POP, "race b: stats ready == %d before the flush" % N_POP)

    claimed = collections.defaultdict(list)   # key -> [(flusher, thread)]
    lock = threading.Lock()
    anomalies = []

    def flusher(i):
        who = "flusher%d-t%d" % (i // 4, i % 4)
        c = s.client()
        mine = []
        try:
            while True:
                r = c.call("GET", "/v1/queues/flush/claim", params={"claimant": who})
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
    errors = run_threads(8, flusher)
    dt = time.monotonic() - t
    total = sum(len(v) for v in claimed.values())
    comment("race b: two flushers x 4 connections popped %d items in %.2f s (%.0f/s)"
            % (total, dt, total / dt if dt else 0))
    per = collections.Counter(w.split("-")[0] for v in claimed.values() for w in v)
    comment("race b: per flusher: %s" % dict(per))
    eq(errors, [], "race b: every flusher thread finished without an exception")
    eq(anomalies[:3], [], "race b: every pop answered a win or empty, with the item's payload and owner")
    dups = [k for k, v in claimed.items() if len(v) > 1]
    eq(dups[:5], [], "race b: no item claimed twice")
    eq(set(claimed), set(keys), "race b: every item claimed (none lost, none invented)")
    eq(total, N_POP, "race b: %d successful pops in all" % N_POP)
    st = s.stats("flush").json or {}
    eq((st.get("ready"), st.get("leased"), st.get("claimed")), (0, 0, N_POP),
       "race b: stats ready 0, leased 0, claimed %d" % N_POP)


def race_leases(s):
    keys = ["job%04d" % i for i in range(N_LEASE)]
    t = time.monotonic()
    bad, errors = enqueue_all(s, "lease", keys)
    comment("race c: enqueued %d items in %.2f s" % (N_LEASE, time.monotonic() - t))
    eq((bad[:3], errors), ([], []), "race c: all %d enqueues answered enqueued:true" % N_LEASE)

    lock = threading.Lock()
    acks = collections.Counter()          # key -> acked:true count
    ack_attempt = {}                      # key -> attempt of the acked claim
    dropped = set()                       # keys whose first lease was left to expire
    failed_acks = []
    anomalies = []
    deadline = time.monotonic() + DEADLINE_S

    def consumer(i):
        who = "c%d" % i
        c = s.client()
        try:
            while time.monotonic() < deadline:
                r = c.call("GET", "/v1/queues/lease/claim", params={"claimant": who, "lease": 1})
                if r.status != 200:
                    anomalies.append(repr(r))
                    return
                if r.get("claimed") is not True:
                    if r.get("reason") != "empty":
                        anomalies.append(repr(r))
                        return
                    st = c.call("GET", "/v1/queues/lease").json or {}
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
                a = c.call("GET", "/v1/queues/lease/ack", params={"key": k, "token": r.get("token")})
                with lock:
                    if a.get("acked") is True:
                        acks[k] += 1
                        ack_attempt[k] = attempt
                    else:
                        failed_acks.append((k, a.text.strip()))
        finally:
            c.close()
    t = time.monotonic()
    errors = run_threads(8, consumer)
    dt = time.monotonic() - t
    comment("race c: %d consumers acked %d items in %.2f s; %d left to expire; %d acks refused"
            % (8, sum(acks.values()), dt, len(dropped), len(failed_acks)))
    if failed_acks:
        comment("race c: refused acks (lease ran out under load?): %r" % failed_acks[:5])
    eq(errors, [], "race c: every consumer finished without an exception")
    eq(anomalies[:3], [], "race c: every claim answered a win or empty")
    ok(time.monotonic() < deadline, "race c: drained before the %d s deadline" % DEADLINE_S)
    eq(len(dropped), N_LEASE // 10, "race c: %d first leases left to expire" % (N_LEASE // 10))
    eq(set(acks), set(keys), "race c: every item acked")
    eq([k for k, n in acks.items() if n != 1][:5], [], "race c: no item acked twice")
    low = [(k, ack_attempt.get(k)) for k in dropped if (ack_attempt.get(k) or 0) < 2]
    eq(low[:5], [], "race c: every expired item was acked on attempt >= 2")
    st = s.stats("lease").json or {}
    eq((st.get("ready"), st.get("leased"), st.get("acked")), (0, 0, N_LEASE),
       "race c: stats ready 0, leased 0, acked %d" % N_LEASE)
    ok((st.get("expired") or 0) >= len(dropped), "race c: stats expired >= %d" % len(dropped),
       "got %r" % st.get("expired"))


def main():
    t = time.monotonic()
    with Stack(workers=4) as s:
        race_one_key(s)
        race_flush(s)
        race_leases(s)
    comment("total %.1f s" % (time.monotonic() - t))


run_main(main)
