#!/usr/bin/env python3
"""The upgrades: a database written by casqd of schema 1
(tests/fixtures/schema1.dump, made by tests/fixtures/make-schema1.py) is
loaded with mdb_load and opened by this casqd, which moves it to schema 2
in one transaction, its data becoming tenant default's, and on to schema
3 (item history from then on, the queue, item and claim records
converted, the once scope counted from its window). Every item, claim record, lease, delayed item, value, counter,
once-window and stored answer must survive and still behave: claims,
acks, replays, expiry; the log names the counts. A database of schema 2
(tests/fixtures/schema2.dump, by make-schema2.py) is upgraded to 3: its
queue, item and claim records converted, every item, lease and claim
record still there and behaving, the queues with the default settings,
dead letters, follow-ups and bound pops working on them, and casqctl verify
finding it consistent."""

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
        # a second start finds schema 3 and moves nothing
        s.restart_casqd()
        with open(s.casqd_log) as f:
            eq(f.read().count("database upgraded"), 2, "a restart does not upgrade again")
        eq(q("status", key="d").get("state"), "ready", "the data is there after the restart")
        verify(s)
    schema2()


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


run_main(main)
