#!/usr/bin/env python3
"""Follow-up runs through nginx + TLS + FastCGI + casqd + LMDB, on the
test clock: 50 concurrent enqueues of an item during one lease give
exactly one "enqueued":true (all say state follow_up) and exactly one more
run, with the payload stored last; the ack says so; a lease that runs out
or is released during a follow-up starts the follow-up too, which wins
over max_attempts; a request id replays its follow-up answer without a
second one; after an at-most-once claim an enqueue is a new item."""

import os
import sys
import threading

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main, run_threads, skip_all  # noqa: E402

Q = "welcome"
ENQUEUERS = 50


def enqueue(s, key, **body):
    return s.call("POST", "/v1/queues/%s/enqueue" % Q, body=dict(key=key, **body))


def concurrent(s):
    enqueue(s, "1234", payload={"run": 0})
    lease = s.q(Q, "claim", key="1234", claimant="flow", lease="60")
    eq(lease.get("claimed"), True, "the item is leased")
    start = threading.Barrier(ENQUEUERS)
    answers, lock = [], threading.Lock()

    def enqueuer(i):
        c = s.client()
        try:
            start.wait()
            r = c.call("POST", "/v1/queues/%s/enqueue" % Q, body={"key": "1234", "payload": {"run": i + 1}})
            with lock:
                answers.append((r.get("enqueued"), r.get("state")))
        finally:
            c.close()
    eq(run_threads(ENQUEUERS, enqueuer), [], "%d enqueuers ran without an exception" % ENQUEUERS)
    eq(sorted(answers, key=repr), [(False, "follow_up")] * (ENQUEUERS - 1) + [(True, "follow_up")],
       "exactly one of %d concurrent enqueues during the lease is enqueued; all say follow_up" % ENQUEUERS)
    r = enqueue(s, "1234", payload={"run": "last"})
    eq((r.get("enqueued"), r.get("state")), (False, "follow_up"), "one more enqueue replaces the payload")
    r = s.q(Q, "status", key="1234").json or {}
    eq((r.get("state"), r.get("follow_up")), ("leased", True), "status: leased, follow_up true")
    eq((s.stats(Q).json or {}).get("enqueued"), 2, "stats count the first follow-up as one enqueue, no more")
    r = s.q(Q, "ack", key="1234", token=lease.get("token"))
    eq(r.text, '{"acked":true,"queue":"welcome","key":"1234","state":"ready","follow_up":true}\n',
       "the ack says the item is ready for its follow-up")
    r = s.q(Q, "pop", claimant="flow", lease="60")
    eq((r.get("key"), r.get("attempt"), r.get("payload")), ("1234", 1, {"run": "last"}),
       "exactly one more run, attempt 1, with the payload stored last")
    r = s.q(Q, "ack", key="1234", token=r.get("token"))
    eq((r.get("acked"), r.get("follow_up")), (True, None), "its ack consumes the item")
    eq(s.q(Q, "pop", claimant="flow").get("reason"), "empty", "no third run")
    eq(s.q(Q, "status", key="1234").get("state"), "claimed", "the item is claimed")
    events = [e.get("event") for e in (s.q(Q, "history", key="1234").json or {}).get("events", [])]
    eq(events, ["enqueued", "claimed"] + ["follow_up"] * (ENQUEUERS + 1) + ["acked", "popped", "acked"],
       "the history: every enqueue during the lease is a follow_up event, then the one more run")


def expiry_and_release(s):
    s.call("POST", "/v1/queues/%s/config" % Q, body={"max_attempts": 1})
    enqueue(s, "exp", payload="first")
    s.q(Q, "claim", key="exp", claimant="flow", lease="10")
    eq(enqueue(s, "exp", payload="second").get("enqueued"), True, "a follow-up during a 10 s lease")
    s.advance(11)
    r = s.q(Q, "status", key="exp").json or {}
    eq((r.get("state"), r.get("attempts"), r.get("follow_up")), ("ready", 0, None),
       "the lease ran out: ready for the follow-up (not dead at max_attempts 1), attempts 0")
    r = s.q(Q, "claim", key="exp", claimant="flow", lease="10")
    eq((r.get("claimed"), r.get("payload")), (True, "second"), "the follow-up runs with its payload")
    s.advance(11)
    eq(s.q(Q, "status", key="exp").get("state"), "dead", "without a follow-up the limit applies again")

    enqueue(s, "rel", payload="first")
    tok = s.q(Q, "claim", key="rel", claimant="flow", lease="60").get("token")
    enqueue(s, "rel", payload="second", delay=30)
    r = s.q(Q, "release", key="rel", token=tok)
    eq((r.get("released"), r.get("state")), (True, "ready"), "a release during a follow-up: ready")
    eq(s.q(Q, "claim", key="rel", claimant="x").get("reason"), "not_ready",
       "... at the follow-up's delay")
    s.advance(31)
    eq(s.q(Q, "claim", key="rel", claimant="x").get("payload"), "second",
       "after the delay the follow-up runs with its payload")


def request_ids(s):
    q = "ids"
    s.q(q, "enqueue", key="k")
    s.q(q, "claim", key="k", claimant="flow", lease="60")
    r1 = s.call("POST", "/v1/queues/%s/enqueue" % q, body={"key": "k", "payload": 1, "request_id": "m-1"})
    r2 = s.call("POST", "/v1/queues/%s/enqueue" % q, body={"key": "k", "payload": 1, "request_id": "m-1"})
    eq((r1.get("enqueued"), r1.get("state")), (True, "follow_up"), "an enqueue with a request id: follow_up")
    eq(r2.text, r1.text, "its retry replays the same answer")
    eq((s.stats(q).json or {}).get("enqueued"), 2, "... and is not a second follow-up")


def consumed(s):
    q = "once"
    s.q(q, "enqueue", key="k")
    s.q(q, "claim", key="k", claimant="flow")
    r = s.q(q, "enqueue", key="k")
    eq((r.get("enqueued"), r.get("state")), (True, "ready"),
       "after an at-most-once claim an enqueue is a new item, not a follow-up")


def main():
    with Stack(workers=2, test_clock=True) as s:
        if not s.test_clock_works():
            skip_all("casqd built without --enable-test-clock")
        concurrent(s)
        expiry_and_release(s)
        request_ids(s)
        consumed(s)


run_main(main)
