#!/usr/bin/env python3
"""Item history through nginx + TLS + FastCGI + casqd + LMDB: every event
kind with its fields (claimant, attempt, token, request id, x_
annotations), in order; racing claimants, where each item's history must
be a valid sequence that agrees with the answers the clients got; one key
across queues; another tenant's history is invisible; retention
(--history-days) and the per-item cap of 1000 on casqd's test clock; bad
parameters."""

import collections
import os
import random
import re
import sys
import threading

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main, run_threads, skip_all  # noqa: E402

DAY = 86400
AT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def history(s, queue, key, limit=None, call=None):
    params = {"key": key}
    if limit is not None:
        params["limit"] = limit
    path = "/v1/queues/%s/history" % queue if queue else "/v1/history"
    return (call or s.call)("GET", path, params=params)


def events(s, queue, key, **kw):
    r = history(s, queue, key, **kw)
    if r.status != 200:
        raise AssertionError("history of %s/%s: %r" % (queue, key, r))
    return r.json["events"]


def without_at(evs):
    return [{k: v for k, v in e.items() if k != "at"} for e in evs]


def every_kind(s):
    q = lambda op, **p: s.call("POST", "/v1/queues/welcome/" + op, body=p)  # noqa: E731
    eq(q("enqueue", key="1234", payload={"n": 1}, request_id="e1",
         x_campaign="Welcome", x_step=2).get("enqueued"), True, "every kind: enqueue")
    c1 = q("claim", key="1234", claimant="trigger", lease=60, x_campaign="Welcome")
    eq(q("release", key="1234", token=c1.get("token")).get("released"), True, "every kind: release")
    c2 = q("pop", claimant="hourly", lease=5)
    eq(c2.get("key"), "1234", "every kind: pop takes it")
    s.advance(6)                        # the pop's lease runs out
    c3 = q("claim", key="1234", claimant="retry", lease=60)
    eq(q("ack", key="1234", token=c3.get("token"), request_id="a1").get("acked"), True,
       "every kind: ack")
    eq(q("enqueue", key="1234").get("enqueued"), True, "every kind: enqueue again")
    eq(q("remove", key="1234").get("removed"), True, "every kind: remove")
    r = history(s, "welcome", "1234")
    eq(r.status, 200, "every kind: history answers 200")
    eq(r.keys(), ["queue", "key", "events"], "every kind: queue, key, events, in that order")
    eq((r.get("queue"), r.get("key")), ("welcome", "1234"), "every kind: names queue and key")
    evs = r.get("events") or []
    ok(all(AT_RE.match(e.get("at", "")) for e in evs),
       "every kind: each event has its time in ms (%s)" % [e.get("at") for e in evs])
    ok([e["at"] for e in evs] == sorted(e["at"] for e in evs), "every kind: oldest first")
    tok = lambda c: c.get("token")[:8]  # noqa: E731
    eq(without_at(evs), [
        {"event": "enqueued", "request_id": "e1", "x_campaign": "Welcome", "x_step": 2},
        {"event": "claimed", "claimant": "trigger", "attempt": 1, "token": tok(c1),
         "x_campaign": "Welcome"},
        {"event": "released", "claimant": "trigger", "attempt": 1, "token": tok(c1)},
        {"event": "popped", "claimant": "hourly", "attempt": 2, "token": tok(c2)},
        {"event": "expired", "claimant": "hourly", "attempt": 2, "token": tok(c2)},
        {"event": "claimed", "claimant": "retry", "attempt": 3, "token": tok(c3)},
        {"event": "acked", "claimant": "retry", "attempt": 3, "token": tok(c3), "request_id": "a1"},
        {"event": "enqueued"},
        {"event": "removed"},
    ], "every kind: each change, in order, with what it knew")
    ok(evs[4]["at"] > evs[3]["at"] and evs[4]["at"] < evs[5]["at"],
       "every kind: the expiry is at the lease's end, before the claim that saw it")
    eq(r.keys(), ["queue", "key", "events"], "every kind: key order")
    r = history(s, "welcome", "1234", limit=2)
    eq([e["event"] for e in r.get("events")], ["enqueued", "removed"],
       "every kind: limit=2 gives the last two, oldest first")
    eq(q("enqueue", key="retried", request_id="r9").get("enqueued"), True, "replay: enqueue")
    eq(q("enqueue", key="retried", request_id="r9").get("enqueued"), True,
       "replay: its retry answers the same")
    eq(without_at(events(s, "welcome", "retried")), [{"event": "enqueued", "request_id": "r9"}],
       "replay: a replayed answer records nothing more")
    r = history(s, "welcome", "never")
    eq((r.status, r.get("events")), (200, []), "a key without history: events []")


def racing(s, n_threads=8, rounds=30, keys=("r0", "r1", "r2", "r3", "r4")):
    """Claimants race over a few items: claim or pop, then ack (and
    enqueue again) or release. Each item's history must be a valid
    sequence, and agree with the answers the clients got."""
    for k in keys:
        s.call("POST", "/v1/queues/race/enqueue", body={"key": k})
    answers = collections.defaultdict(list)     # key -> [(event, token8, attempt)]
    lock = threading.Lock()

    def worker(i):
        rnd = random.Random(i)
        c = s.client()
        try:
            for _ in range(rounds):
                if rnd.random() < 0.3:
                    r = c.call("POST", "/v1/queues/race/pop",
                               body={"claimant": "p%d" % i, "lease": 60})
                    kind = "popped"
                else:
                    r = c.call("POST", "/v1/queues/race/claim",
                               body={"key": rnd.choice(keys), "claimant": "c%d" % i, "lease": 60})
                    kind = "claimed"
                if r.get("claimed") is not True:
                    continue
                key, tok = r.get("key"), r.get("token")
                with lock:
                    answers[key].append((kind, tok[:8], r.get("attempt")))
                if rnd.random() < 0.5:
                    a = c.call("POST", "/v1/queues/race/ack", body={"key": key, "token": tok})
                    if a.get("acked") is True:
                        with lock:
                            answers[key].append(("acked", tok[:8], r.get("attempt")))
                    e = c.call("POST", "/v1/queues/race/enqueue", body={"key": key})
                    if e.get("enqueued") is True:
                        with lock:
                            answers[key].append(("enqueued", None, None))
                else:
                    a = c.call("POST", "/v1/queues/race/release", body={"key": key, "token": tok})
                    if a.get("released") is True:
                        with lock:
                            answers[key].append(("released", tok[:8], r.get("attempt")))
        finally:
            c.close()
    eq(run_threads(n_threads, worker, 300), [], "racing: every thread finished")
    for k in keys:
        evs = events(s, "race", k, limit=1000)
        state, attempts, lease, bad = "absent", 0, None, []
        for e in evs:
            ev = e["event"]
            if ev == "enqueued" and state == "absent":
                state, attempts = "ready", 0
            elif ev in ("claimed", "popped") and state == "ready" and e.get("attempt") == attempts + 1:
                state, attempts, lease = "leased", attempts + 1, e.get("token")
            elif ev == "acked" and state == "leased" and e.get("token") == lease:
                state = "absent"
            elif ev == "released" and state == "leased" and e.get("token") == lease:
                state = "ready"
            else:
                bad.append((ev, state, e))
        eq(bad, [], "racing: %s's history (%d events) is a valid sequence" % (k, len(evs)))
        got = collections.Counter((e["event"], e.get("token"), e.get("attempt"))
                                  for e in evs if e["event"] != "enqueued")
        told = collections.Counter(a for a in answers[k] if a[0] != "enqueued")
        eq(got, told, "racing: %s's claims, pops, acks and releases are those the clients were told" % k)
        eq(sum(1 for e in evs if e["event"] == "enqueued"),
           1 + sum(1 for a in answers[k] if a[0] == "enqueued"),
           "racing: %s's enqueues are those answered enqueued:true" % k)


def across(s, other_key):
    for q in ("welcome", "reminder", "a.x"):
        s.call("POST", "/v1/queues/%s/enqueue" % q, body={"key": "lead-7"})
    s.call("POST", "/v1/queues/reminder/claim", body={"key": "lead-7", "claimant": "flow"})
    s.call("POST", "/v1/queues/welcome/enqueue", body={"key": "lead-77"})
    s.call("POST", "/v1/queues/welcome/enqueue", body={"key": "lead-7/x"})
    r = history(s, None, "lead-7")
    eq((r.status, r.keys()), (200, ["key", "events"]), "across: /v1/history answers key and events")
    evs = r.get("events") or []
    eq(sorted((e["queue"], e["event"]) for e in evs),
       [("a.x", "enqueued"), ("reminder", "claimed"), ("reminder", "enqueued"),
        ("welcome", "enqueued")], "across: every queue's events of the key, and no other key's")
    ok([e["at"] for e in evs] == sorted(e["at"] for e in evs), "across: in time order")
    eq(list(evs[-1].keys())[:3], ["at", "event", "queue"], "across: each event names its queue")
    eq(len(history(s, None, "lead-7", limit=1).get("events")), 1, "across: limit=1")
    # another tenant sees nothing of it
    r = history(s, None, "lead-7", call=lambda m, p, **kw: s.call(m, p, key=other_key, **kw))
    eq((r.status, r.get("events")), (200, []), "tenants: another tenant's /v1/history has none of it")
    r = history(s, "reminder", "lead-7", call=lambda m, p, **kw: s.call(m, p, key=other_key, **kw))
    eq(r.status, 404, "tenants: ... and no queue reminder (404)")
    s.call("POST", "/v1/queues/reminder/enqueue", body={"key": "lead-7"}, key=other_key)
    r = history(s, None, "lead-7", call=lambda m, p, **kw: s.call(m, p, key=other_key, **kw))
    eq([(e["queue"], e["event"]) for e in r.get("events")], [("reminder", "enqueued")],
       "tenants: its own lead-7 has its own history")
    eq(len(events(s, None, "lead-7")), 4, "tenants: ... and the first tenant's is unchanged")


def retention(s):
    """First, while the expiry index holds little: a write sweeps up to
    16 due entries in its own transaction before it runs, so the write
    after each advance has swept what these checks look for."""
    s.call("POST", "/v1/queues/old/enqueue", body={"key": "k"})
    s.advance(DAY - 1)
    s.call("POST", "/v1/queues/old/remove", body={"key": "k"})
    eq(len(events(s, "old", "k")), 2, "retention: within --history-days both events are kept")
    s.advance(2)
    s.call("POST", "/v1/queues/other/enqueue", body={"key": "trigger"})
    eq([e["event"] for e in events(s, "old", "k")], ["removed"],
       "retention: a day later the enqueue is gone, the remove kept")
    s.advance(DAY)
    s.call("POST", "/v1/queues/other/enqueue", body={"key": "trigger2"})
    eq(events(s, "old", "k"), [], "retention: and then the remove")


def cap(s):
    c = s.client()
    try:
        for i in range(501):            # 1002 events
            c.call("POST", "/v1/queues/cap/enqueue", body={"key": "k", "x_i": i})
            c.call("POST", "/v1/queues/cap/remove", body={"key": "k", "x_i": i})
    finally:
        c.close()
    evs = events(s, "cap", "k", limit=1000)
    eq(len(evs), 1000, "cap: an item keeps its last 1000 events")
    eq((evs[0].get("event"), evs[0].get("x_i"), evs[-1].get("event"), evs[-1].get("x_i")),
       ("enqueued", 1, "removed", 500), "cap: the oldest two went")


def bad_params(s):
    s.call("POST", "/v1/queues/welcome/enqueue", body={"key": "b"})
    for path in ("/v1/queues/welcome/history", "/v1/history"):
        for limit in ("0", "1001", "abc", "-1", "1.5"):
            r = s.call("GET", path, params={"key": "b", "limit": limit})
            eq((r.status, r.reason, r.get("error")), (400, "Bad Limit", "bad_limit"),
               "%s limit=%s: 400 Bad Limit" % (path, limit))
        r = s.call("GET", path)
        eq((r.status, r.reason), (400, "Missing Key"), "%s without key: 400 Missing Key" % path)
        eq(s.call("GET", path, params={"key": "b", "limit": "1000"}).status, 200,
           "%s limit=1000 is fine" % path)
    r = s.call("GET", "/v1/queues/nope/history", params={"key": "b"})
    eq((r.status, r.reason), (404, "No Such Queue"), "history of an unknown queue: 404")
    r = s.call("POST", "/v1/queues/welcome/enqueue", body={"key": "big", "x_note": "n" * 1100})
    eq((r.status, r.reason), (400, "Bad Annotation"), "annotations over 1024 bytes: 400 Bad Annotation")
    eq(s.call("GET", "/v1/queues/welcome/status", params={"key": "big"}).get("state"), "absent",
       "... and nothing was enqueued")
    r = s.call("GET", "/v1/queues/welcome/status", params={"key": "b", "x_note": "n" * 1100})
    eq(r.status, 200, "a read route takes any annotation (it records nothing)")


def main():
    with Stack(workers=2, test_clock=True, extra_args=["--history-days", "1"]) as s:
        if not s.test_clock_works():
            skip_all("casqd built without --enable-test-clock")
        other = s.add_key("beta-marketo", "--tenant", "beta")
        reader = s.add_key("reporting", "--scope", "read")
        retention(s)
        every_kind(s)
        for path in ("/v1/queues/welcome/history", "/v1/history"):
            r = s.call("GET", path, params={"key": "1234"}, key=reader)
            eq((r.status, len(r.get("events") or [])), (200, 9), "a read-only key reads %s" % path)
        racing(s)
        across(s, other)
        bad_params(s)
        cap(s)


run_main(main)
