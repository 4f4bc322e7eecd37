#!/usr/bin/env python3
"""The upgrades: a database written by casqd of schema 1
(tests/fixtures/schema1.dump, made by tests/fixtures/make-schema1.py) is
loaded with mdb_load and opened by this casqd, which moves it to schema 2
in one transaction, its data becoming tenant default's, on to schema 3
(item history from then on, the queue, item and claim records converted,
the once scope counted from its window) and on to schema 4 (history in the
log). Every item, claim record, lease, delayed item, value, counter,
once-window and stored answer must survive and still behave: claims,
acks, replays, expiry; the log names the counts. A database of schema 2
(tests/fixtures/schema2.dump, by make-schema2.py) is upgraded to 3 and 4:
its queue, item and claim records converted, every item, lease and claim
record still there and behaving, the queues with the default settings,
dead letters, follow-ups and bound pops working on them, and casqctl verify
finding it consistent. A database of schema 3 (tests/fixtures/schema3.dump,
by make-schema3.py: two tenants, an item in every state, a removed one,
bound pops, follow-ups, request ids and annotations) is upgraded to 4, its
per-item history moved to the log: every status and history answer the old
casqd gave (schema3.json) is given again, exactly; new events follow the
old ones, on items, claim records and a removed key alike; the leases,
follow-ups, dead letters, bindings and stored answers still work."""

import json
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main, srcdir  # noqa: E402


def fixture(name):
    return os.path.join(srcdir(), "tests", "fixtures", name)


def load_fixture(s, name="schema1"):
    """Replace the stack's database by the fixture, on the fixture's clock."""
    with open(fixture(name + ".json")) as f:
        expect = json.load(f)
    s.stop_casqd()
    shutil.rmtree(s.data)
    os.makedirs(s.data)
    subprocess.run(["mdb_load", "-f", fixture(name + ".dump"), s.data], check=True,
                   capture_output=True, timeout=60)
    # casqd's clock a second after the fixture was made: its leases, delays
    # and ttls are as they were then.
    s._write_clock(expect["created_ms"] + 1000 - int(time.time() * 1000))
    s.start_casqd()
    s.wait_healthy()
    return expect


def main():
    with Stack(workers=1, test_clock=True) as s:
        expect = load_fixture(s)
        with open(s.casqd_log) as f:
            log = f.read()
        ok("database upgraded to schema 2, its data now tenant default's" in log and
           "items 5" in log and "claimed 1" in log and "kv 3" in log and "once 1" in log and "idem 1" in log,
           "the upgrade is logged with its counts", log[-600:])
        ok("database upgraded to schema 3: item history recorded from now on; records "
           "converted: queues 1, items 5, claimed 1; once scopes counted 1" in log, "the step to schema 3 is logged",
           log[-600:])
        ok("database upgraded to schema 4: item history moved to the log: 0 events of 0 items "
           "(0 unreadable, skipped), heads in items 0, claim records 0, parked 0; records converted: "
           "items 5, claimed 1" in log, "the step to schema 4 is logged: no history yet, the records converted",
           log[-600:])
        q = lambda op, **p: s.call("POST", "/v1/queues/welcome/" + op, body=p)  # noqa: E731
        r = s.call("GET", "/v1/tenant")
        eq((r.get("tenant"), r.get("items"), r.get("values"), r.get("windows"), r.get("queues"),
            r.get("namespaces")), ("default", 5, 3, 1, 1, 1),
           "tenant default holds what schema 1 held: 5 queued items, 3 values, 1 window")
        r = q("status", key="c")
        eq((r.get("state"), r.get("owner")), ("claimed", "hourly"), "the claim record survived")
        eq(q("claim", key="c").get("reason"), "claimed", "a late claim of c still loses")
        eq(q("claim", key="d").get("reason"), "not_ready", "the delayed item is still delayed")
        r = q("claim", key="a", claimant="new")
        eq((r.get("claimed"), r.get("payload")), (True, {"email": "a@example.com"}),
           "the ready item is claimed with its payload")
        r = q("ack", key="b", token=expect["b_token"])
        eq(r.get("acked"), True, "the lease taken before the upgrade is acked with its token")
        r = s.call("GET", "/v1/queues/welcome/history", params={"key": "b"})
        eq([(e["event"], e.get("token")) for e in r.get("events", [])], [("acked", expect["b_token"][:8])],
           "history starts at the upgrade: b's ack, with its lease's token")
        r = q("enqueue", key="e", request_id="r1")
        eq(r.text, expect["r1_answer"], "a retry of a request id stored before the upgrade replays")
        kv = lambda op, **p: s.call("POST", "/v1/kv/leads/" + op, body=p)  # noqa: E731
        r = kv("get", key="x")
        eq((r.get("value"), r.get("version")), ({"plan": "team"}, 2), "a value keeps its text and version")
        eq(kv("incr", key="n").get("value"), 6, "a counter counts on")
        eq([(x["scope"], x["windows"], x["opened"], x["expired"]) for x in
            (s.call("GET", "/v1/once").json or {}).get("scopes", [])], [("form", 1, 1, 0)],
           "the upgrade counted the scope's window")
        r = s.call("POST", "/v1/once/form", body={"id": "1"})
        eq((r.get("first"), r.get("count")), (False, 2), "the once-window is still open")
        eq((s.call("GET", "/v1/once").json or {}).get("scopes", [{}])[0].get("created_at"), r.get("first_seen"),
           "the scope was created with its oldest window")
        names = [x["queue"] for x in (s.call("GET", "/v1/queues").json or {}).get("queues", [])]
        eq(names, ["welcome"], "the queue list shows the queue without its tenant")
        # expiry after the upgrade: the lease of f (60 s), the ttl of t (3600 s)
        s.advance(61)
        eq(q("status", key="f").get("state"), "ready", "the lease of f ran out after the upgrade")
        eq(q("claim", key="f", claimant="again").get("attempt"), 2, "... and f is claimed (consumed) again")
        s.advance(3600)
        eq(kv("get", key="t").get("found"), False, "the ttl of t ran out after the upgrade")
        eq(s.call("GET", "/v1/tenant").get("items"), 2,
           "usage follows: a, c and f consumed, b acked; d and e queued")
        # t counts until the sweep removes it (about once a second)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and s.call("GET", "/v1/tenant").get("values") != 2:
            time.sleep(0.1)
        eq(s.call("GET", "/v1/tenant").get("values"), 2, "once swept, t no longer counts: x and n")
        eq([e["event"] for e in s.call("GET", "/v1/queues/welcome/history",
                                       params={"key": "f"}).get("events", [])],
           ["expired", "claimed"], "the lease taken before the upgrade ran out in f's history")
        # a second start finds schema 4 and moves nothing
        s.restart_casqd()
        with open(s.casqd_log) as f:
            eq(f.read().count("database upgraded"), 3, "a restart does not upgrade again (1 to 2, 3, 4 once)")
        eq(q("status", key="d").get("state"), "ready", "the data is there after the restart")
        verify(s)
    schema2()
    schema3()


def verify(s):
    r = subprocess.run([os.path.join(os.path.dirname(s.casqd_argv()[0]), "casqctl"), "verify", s.data],
                       capture_output=True, text=True, timeout=60)
    eq((r.returncode, r.stdout[-300:]), (0, r.stdout[-300:]), "casqctl verify: the upgraded database is consistent")


def schema2():
    with Stack(workers=1, test_clock=True) as s:
        expect = load_fixture(s, "schema2")
        with open(s.casqd_log) as f:
            log = f.read()
        ok("database upgraded to schema 3: item history recorded from now on; records "
           "converted: queues 2, items 6, claimed 2; once scopes counted 0" in log and
           "upgraded to schema 2" not in log, "the upgrade from schema 2 is logged with its counts", log[-600:])
        ok("database upgraded to schema 4: item history moved to the log: 0 events of 0 items "
           "(0 unreadable, skipped), heads in items 0, claim records 0, parked 0; records converted: "
           "items 6, claimed 2" in log, "... and the step on to schema 4", log[-600:])
        acme = s.add_key("acme2", "--tenant", "acme")
        q = lambda op, **p: s.call("POST", "/v1/queues/welcome/" + op, body=p)  # noqa: E731
        a = lambda op, **p: s.call("POST", "/v1/queues/coupons/" + op, body=p, key=acme)  # noqa: E731
        st = s.stats("welcome").json or {}
        eq((st.get("ready"), st.get("leased"), st.get("claimed"), st.get("dead"), st.get("lease"),
            st.get("max_attempts"), st.get("bind_days"), sum(st.get("claims_per_minute") or [1])),
           (2, 2, 3, 0, 0, 0, 365, 0), "the queue's counters survive; settings at their defaults")
        eq(q("status", key="gone").get("state"), "claimed", "the claim record survived")
        eq(q("status", key="later").get("state"), "ready", "the delayed item is there")
        r = q("status", key="leased").json or {}
        eq((r.get("state"), r.get("owner"), r.get("follow_up"), r.get("bound_to")),
           ("leased", "flow", None, None), "the lease survived, with no follow-up and no binding")
        r = q("enqueue", key="leased", payload="next")
        eq((r.get("enqueued"), r.get("state")), (True, "follow_up"), "an upgraded lease takes a follow-up")
        eq(q("ack", key="leased", token=expect["leased_token"]).get("follow_up"), True,
           "the lease taken before the upgrade is acked with its token, and its follow-up waits")
        r = q("claim", key="leased", claimant="after")
        eq((r.get("claimed"), r.get("payload")), (True, "next"), "the follow-up runs")
        r = q("claim", key="ready", claimant="after")
        eq(r.get("payload"), {"email": "r@example.com"}, "the ready item is claimed with its payload")
        q("config", max_attempts=1)
        s.advance(61)
        eq(q("status", key="short").get("state"), "dead",
           "the short lease taken before the upgrade runs out, into dead letters at max_attempts 1")
        eq(q("redrive", all=True).get("redriven"), 1, "... and is redriven")
        r = a("pop", bind="lead-1")
        eq((r.get("again"), r.get("key")), (False, "code1"), "a bound pop on the other tenant's upgraded queue")
        eq(a("pop", bind="lead-1").get("again"), True, "... answers again")
        verify(s)


def pairs(v):
    """v with every object as a list of (name, value): compared, key order
    counts too (the history's keys come "in this order", docs/api.md)."""
    if isinstance(v, dict):
        return [(k, pairs(x)) for k, x in v.items()]
    if isinstance(v, list):
        return [pairs(x) for x in v]
    return v


def history(s, queue, k, key=Ellipsis):
    path = "/v1/queues/%s/history" % queue if queue else "/v1/history"
    return s.call("GET", path, params={"key": k}, key=key).json or {}


def schema3():
    with Stack(workers=1, test_clock=True) as s:
        expect = load_fixture(s, "schema3")
        with open(s.casqd_log) as f:
            log = f.read()
        items = expect["items"]
        states = [i["status"]["state"] for i in items]
        line = ("database upgraded to schema 4: item history moved to the log: %d events of %d items "
                "(0 unreadable, skipped), heads in items %d, claim records %d, parked %d; records "
                "converted: items %d, claimed %d" % (
                    sum(len(i["history"]["events"]) for i in items), len(items),
                    len(items) - states.count("claimed") - states.count("absent"), states.count("claimed"),
                    states.count("absent"), len(items) - states.count("claimed") - states.count("absent"),
                    states.count("claimed")))
        ok(line in log and "upgraded to schema 3" not in log,
           "the upgrade from schema 3 is logged, with the fixture's counts: " + line, log[-600:])
        keys = {"default": s.key, "acme": s.add_key("acme3", "--tenant", "acme")}
        schema3_answers(s, expect, keys)
        schema3_new_events(s, expect, keys)
        verify(s)
        s.restart_casqd()
        with open(s.casqd_log) as f:
            eq(f.read().count("database upgraded"), 1, "a restart does not upgrade again")
        r = history(s, None, "flaky")
        eq([e["event"] for e in r.get("events", [])], ["enqueued"] + ["claimed", "released"] * 3 +
           ["claimed", "acked"], "the history is there after the restart")


def schema3_answers(s, expect, keys):
    """Every answer the old casqd gave is given again, whole. No field
    differs: times are the events' own (with ms), tokens their first 8
    digits, ties in the old order."""
    for i in expect["items"]:
        name = "%s %s/%s" % (i["tenant"], i["queue"], i["key"])
        r = s.call("POST", "/v1/queues/%s/status" % i["queue"], body={"key": i["key"]}, key=keys[i["tenant"]])
        eq(pairs(r.json), pairs(i["status"]), "status of %s (%s) as before the upgrade" % (name, i["status"]["state"]))
        eq(pairs(history(s, i["queue"], i["key"], keys[i["tenant"]])), pairs(i["history"]),
           "history of %s (%d events) as before the upgrade" % (name, len(i["history"]["events"])))
    for k in expect["keys"]:
        eq(pairs(history(s, None, k["key"], keys[k["tenant"]])), pairs(k["history"]),
           "history across queues of %s's %s as before the upgrade" % (k["tenant"], k["key"]))
    r = s.call("POST", "/v1/queues/welcome/enqueue", body={"key": "ready", "payload": {"email": "r@example.com"},
                                                           "request_id": "rq-ready", "x_campaign": "Welcome"})
    eq(r.text, expect["rq_ready_answer"], "a retry of a request id stored before the upgrade replays")
    eq(len(history(s, "welcome", "ready").get("events", [])), 1, "... and records nothing")


def old_events(expect, tenant, queue, k):
    if queue is None:
        return next(x for x in expect["keys"] if (x["tenant"], x["key"]) == (tenant, k))["history"]["events"]
    return next(i for i in expect["items"] if (i["tenant"], i["queue"], i["key"]) == (tenant, queue, k)
                )["history"]["events"]


def appended(s, expect, keys, tenant, queue, k, want, name):
    """The history of k: the old events, whole, then those of want (tuples
    of event, claimant, attempt, token, x_campaign), no earlier."""
    old = old_events(expect, tenant, queue, k)
    got = history(s, queue, k, keys[tenant]).get("events", [])
    eq(pairs(got[:len(old)]), pairs(old), "%s: the events from before the upgrade first" % name)
    new = got[len(old):]
    eq([(e["event"], e.get("claimant"), e.get("attempt"), e.get("token"), e.get("x_campaign")) for e in new],
       want, "%s: then the new ones" % name)
    ok(all(e["at"] >= old[-1]["at"] for e in new), "%s: the new events are the later ones" % name,
       "%r after %r" % (new, old[-1]))


def schema3_new_events(s, expect, keys):
    """Changes after the upgrade add to the old history: on an item, on a
    claim record, on a removed key (its head parked), across queues."""
    q = lambda qn, op, tenant="default", **p: s.call("POST", "/v1/queues/%s/%s" % (qn, op), body=p,  # noqa: E731
                                                     key=keys[tenant])
    r = q("welcome", "claim", key="flaky", claimant="after", lease=60)
    t = r.get("token", "")
    eq((r.get("claimed"), r.get("attempt"), r.get("payload")), (True, 4, "again"), "flaky is claimed a 4th time")
    eq(q("welcome", "ack", key="flaky", token=t, x_campaign="After").get("acked"), True, "... and acked")
    want = [("claimed", "after", 4, t[:8], None), ("acked", "after", 4, t[:8], "After")]
    appended(s, expect, keys, "default", "welcome", "flaky", want, "flaky (7 events, a head in its item)")
    appended(s, expect, keys, "default", None, "flaky", want, "flaky across queues")
    tok = expect["leased_token"]
    eq(q("welcome", "ack", key="leased", token=tok).get("acked"), True,
       "the lease taken before the upgrade is acked with its token")
    appended(s, expect, keys, "default", "welcome", "leased", [("acked", "flow", 1, tok[:8], None)], "leased")
    eq(q("welcome", "enqueue", key="once", x_campaign="Again").get("enqueued"), True,
       "a key consumed before the upgrade is queued again")
    appended(s, expect, keys, "default", "welcome", "once", [("enqueued", None, None, None, "Again")],
             "once (a head in its claim record)")
    eq(q("welcome", "enqueue", key="gone").get("enqueued"), True, "the removed key is queued again")
    appended(s, expect, keys, "default", "welcome", "gone", [("enqueued", None, None, None, None)],
             "gone (its head parked)")
    r = q("welcome", "claim", key="lead-42", claimant="after")
    eq(r.get("claimed"), True, "lead-42 is claimed in welcome")
    appended(s, expect, keys, "default", None, "lead-42", [("claimed", "after", 1, r.get("token", "")[:8], None)],
             "lead-42 across queues")
    tok = expect["code1_token"]
    eq(q("coupons", "release", "acme", key="code1", token=tok).get("released"), True,
       "acme's lease taken before the upgrade is released with its token")
    appended(s, expect, keys, "acme", "coupons", "code1", [("released", "coupon", 1, tok[:8], None)], "acme's code1")
    tok = expect["followed_token"]
    r = q("welcome", "ack", key="followed", token=tok)
    eq((r.get("acked"), r.get("follow_up")), (True, True), "the follow-up stored before the upgrade waits after the ack")
    eq(q("welcome", "claim", key="followed", claimant="after").get("payload"), {"run": 2}, "... and runs")
    eq(q("dunning", "redrive", key="dead").get("redriven"), 1, "the dead letter is redriven")
    appended(s, expect, keys, "default", "dunning", "dead", [("redriven", None, 1, None, None)], "dead")
    r = q("gifts", "pop", claimant="gift", lease=3600, bind="lead-1")
    eq((r.get("again"), r.get("key"), r.get("token")), (True, "g1", expect["gift_token"]),
       "a bound pop answers the leased item it took before the upgrade")
    r = q("coupons", "pop", "acme", claimant="coupon", bind="lead-1")
    eq((r.get("again"), r.get("key")), (True, "code0"), "... and acme's the consumed one")


run_main(main)
