#!/usr/bin/env python3
"""Dead letters through nginx + TLS + FastCGI + casqd + LMDB, on the test
clock: with max_attempts 3, items whose leases keep running out under 16
concurrent claimants are handed out exactly 3 times and then are dead
(status, stats, claim and enqueue say so; pop never hands one out); a
release at the limit makes an item dead too; redrive of one key and of
all (paged, with "remaining") makes them ready again with attempts reset;
bad redrive requests are refused; another tenant's dead items are its
own; casqctl verify finds the database consistent."""

import os
import subprocess
import sys
import threading

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main, run_threads, skip_all  # noqa: E402

Q = "welcome"
LEASE = 10
MAX = 3
ITEMS = 8
CLAIMANTS = 16


def racing_claims(s, keys):
    """Every claimant tries every key once, all at the same moment; the
    winners per key."""
    start = threading.Barrier(CLAIMANTS)
    wins, lock, other = {}, threading.Lock(), []

    def claimant(i):
        c = s.client()
        try:
            start.wait()
            for k in keys:
                r = c.call("POST", "/v1/queues/%s/claim" % Q,
                           body={"key": k, "claimant": "c%d" % i, "lease": LEASE})
                with lock:
                    if r.get("claimed") is True:
                        wins.setdefault(k, []).append(r.get("attempt"))
                    elif r.get("reason") not in ("claimed", "dead"):
                        other.append(r.text)
        finally:
            c.close()
    errors = run_threads(CLAIMANTS, claimant)
    eq(errors, [], "every claimant ran without an exception")
    eq(other, [], "every losing claim said claimed or dead")
    return wins


def to_the_limit(s):
    r = s.call("POST", "/v1/queues/%s/config" % Q, body={"max_attempts": MAX})
    eq(r.get("max_attempts"), MAX, "max_attempts set to %d" % MAX)
    keys = ["lead%d" % i for i in range(ITEMS)]
    for k in keys:
        s.call("POST", "/v1/queues/%s/enqueue" % Q, body={"key": k, "payload": {"lead": k}})
    for attempt in range(1, MAX + 1):
        wins = racing_claims(s, keys)
        eq(sorted(wins), keys, "round %d: every item was won" % attempt)
        eq(sorted(set(len(w) for w in wins.values())), [1], "round %d: by exactly one claimant" % attempt)
        eq(sorted(set(a for w in wins.values() for a in w)), [attempt],
           "round %d: as attempt %d" % (attempt, attempt))
        s.advance(LEASE + 1)        # every lease runs out
    wins = racing_claims(s, keys)
    eq(wins, {}, "after %d expired leases no claim wins: the items are dead" % MAX)
    r = s.q(Q, "status", key="lead0").json or {}
    eq((r.get("state"), r.get("attempts"), "dead_at" in r), ("dead", MAX, True),
       "status says dead, with its attempts and since when")
    eq(s.q(Q, "claim", key="lead0", claimant="x").get("reason"), "dead",
       "a claim by key answers reason dead")
    eq(s.q(Q, "pop", claimant="x").get("reason"), "empty", "a pop never hands out a dead item")
    r = s.q(Q, "enqueue", key="lead0", payload="again")
    eq((r.get("enqueued"), r.get("state")), (False, "dead"), "an enqueue of a dead key: enqueued false, state dead")
    st = s.stats(Q).json or {}
    eq((st.get("dead"), st.get("ready"), st.get("leased")), (ITEMS, 0, 0), "queue stats count the dead")
    m = s.call("GET", "/metrics").text
    ok('casq_queue_items{tenant="default",queue="welcome",state="dead"} %d\n' % ITEMS in m,
       "/metrics shows the dead items", m[:300])
    r = s.q(Q, "items", state="dead").json or {}
    eq([(i.get("key"), i.get("attempts"), "since" in i) for i in r.get("items", [])],
       [(k, MAX, True) for k in keys], "items?state=dead lists every dead item in key order")
    events = [e.get("event") for e in (s.q(Q, "history", key="lead0").json or {}).get("events", [])]
    eq(events, ["enqueued"] + ["claimed", "expired"] * MAX + ["dead"],
       "the history: each lease claimed and expired, then dead")
    return keys


def release_at_limit(s):
    q = "rel"
    s.call("POST", "/v1/queues/%s/config" % q, body={"max_attempts": 1})
    s.q(q, "enqueue", key="r")
    tok = s.q(q, "claim", key="r", claimant="x", lease="60").get("token")
    r = s.q(q, "release", key="r", token=tok)
    eq((r.get("released"), r.get("state")), (True, "dead"), "a release of the last attempt answers state dead")


def redrive(s, keys):
    r = s.q(Q, "redrive", key="lead0")
    eq(r.text, '{"redriven":1,"queue":"welcome","key":"lead0"}\n', "redrive of one key")
    r = s.q(Q, "status", key="lead0").json or {}
    eq((r.get("state"), r.get("attempts")), ("ready", 0), "the redriven item is ready, attempts reset")
    last = ((s.q(Q, "history", key="lead0").json or {}).get("events") or [{}])[-1]
    eq((last.get("event"), last.get("attempt")), ("redriven", MAX), "the history records the redrive")
    r = s.q(Q, "claim", key="lead0", claimant="x")
    eq((r.get("claimed"), r.get("attempt"), r.get("payload")), (True, 1, {"lead": "lead0"}),
       "... and is claimed again as attempt 1 with its payload")
    r = s.q(Q, "redrive", key="lead0")
    eq((r.get("redriven"), r.get("reason")), (0, "not_queued"), "redrive of a consumed key: not_queued")
    s.q(Q, "enqueue", key="fresh")
    eq(s.q(Q, "redrive", key="fresh").get("reason"), "not_dead", "redrive of a ready key: not_dead")
    r = s.call("POST", "/v1/queues/%s/redrive" % Q, body={"all": True})
    eq(r.text, '{"redriven":%d,"queue":"welcome","remaining":0}\n' % (ITEMS - 1),
       "redrive all redrives the other %d" % (ITEMS - 1))
    st = s.stats(Q).json or {}
    eq((st.get("dead"), st.get("ready"), st.get("redriven")), (0, ITEMS, ITEMS),
       "stats: none dead, all ready again, %d redriven" % ITEMS)
    for params, reason in (({}, "Key Or All"), ({"key": "a", "all": "true"}, "Key Or All"),
                           ({"all": "false"}, "Key Or All"), ({"all": "yes"}, "Bad All"),
                           ({"key": ""}, "Bad Key")):
        r = s.call("POST", "/v1/queues/%s/redrive" % Q, params=params)
        eq((r.status, r.reason), (400, reason), "redrive %r: 400 %s" % (params, reason))
    eq(s.q("nosuch", "redrive", all="true").get("reason"), "no_such_queue",
       "redrive on a queue that does not exist: no_such_queue")


def tenants(s):
    beta = s.add_key("beta", "--tenant", "beta")
    call = lambda op, **b: s.call("POST", "/v1/queues/%s/%s" % (Q, op), body=b, key=beta)  # noqa: E731
    call("config", max_attempts=1)
    call("enqueue", key="lead1")
    tok = call("claim", key="lead1", claimant="b", lease=60).get("token")
    call("release", key="lead1", token=tok)
    eq(call("status", key="lead1").get("state"), "dead", "beta's lead1 is dead")
    eq(s.q(Q, "status", key="lead1").get("state"), "ready", "the first tenant's lead1 is not")
    eq(s.q(Q, "redrive", all="true").get("redriven"), 0, "a redrive of all redrives only the tenant's own")
    eq(call("status", key="lead1").get("state"), "dead", "beta's lead1 is still dead")


def verify(s):
    r = subprocess.run([os.path.join(os.path.dirname(s.casqd_argv()[0]), "casqctl"), "verify", s.data],
                       capture_output=True, text=True, timeout=60)
    eq((r.returncode, r.stdout.strip()[-200:]), (0, r.stdout.strip()[-200:]),
       "casqctl verify finds the database consistent")


def main():
    with Stack(workers=2, test_clock=True) as s:
        if not s.test_clock_works():
            skip_all("casqd built without --enable-test-clock")
        keys = to_the_limit(s)
        release_at_limit(s)
        redrive(s, keys)
        tenants(s)
        verify(s)


run_main(main)
