#!/usr/bin/env python3
"""Queue settings through nginx + TLS + FastCGI + casqd + LMDB:
POST /v1/queues/{queue}/config sets lease, max_attempts and bind_days
(creating the queue, as an admin setting one up expects), GET reads them,
queue stats show them; a claim or pop sending no lease gets the queue's;
bad values are refused with their own reason phrase and change nothing;
a read-only key reads but cannot set; a tenant at its quota cannot create
a queue this way; settings are per tenant and survive a casqd restart.
Queue stats' claims_per_minute counts winning claims and pops per minute
on the test clock."""

import os
import sys

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main, skip_all  # noqa: E402

CONFIG = "/v1/queues/welcome/config"


def settings(s):
    r = s.call("GET", CONFIG)
    eq((r.status, r.get("error")), (404, "no_such_queue"),
       "GET config of a queue that does not exist: 404 No Such Queue")
    r = s.call("POST", CONFIG, body={"lease": 600, "max_attempts": 5})
    eq(r.text, '{"queue":"welcome","lease":600,"max_attempts":5,"bind_days":365}\n',
       "POST config answers every setting (bind_days at its default)")
    eq(s.call("GET", CONFIG).text, r.text, "GET config reads them back")
    st = s.stats("welcome").json or {}
    eq((st.get("ready"), st.get("lease"), st.get("max_attempts"), st.get("bind_days"), st.get("dead")),
       (0, 600, 5, 365, 0), "queue stats show the settings of the queue config created")
    r = s.call("POST", CONFIG, params={"bind_days": "30"})
    eq(r.text, '{"queue":"welcome","lease":600,"max_attempts":5,"bind_days":30}\n',
       "a form/query setting changes only what it names")
    for params, status, reason in (
            ({"max_attempts": "1001"}, 400, "Bad Max Attempts"),
            ({"max_attempts": "-1"}, 400, "Bad Max Attempts"),
            ({"max_attempts": "2.5"}, 400, "Bad Max Attempts"),
            ({"bind_days": "0"}, 400, "Bad Bind Days"),
            ({"bind_days": "3651"}, 400, "Bad Bind Days"),
            ({"lease": "604801"}, 400, "Bad Lease"),
            ({"lease": "-1"}, 400, "Bad Lease"),
            ({"lease": "soon"}, 400, "Bad Lease"),
            ({"leases": "5"}, 400, "Unknown Parameter")):
        r = s.call("POST", CONFIG, params=params)
        eq((r.status, r.reason), (status, reason), "config %r: %d %s" % (params, status, reason))
    eq(s.call("GET", CONFIG).text, '{"queue":"welcome","lease":600,"max_attempts":5,"bind_days":30}\n',
       "the refused settings changed nothing")

    s.q("welcome", "enqueue", key="a")
    now = s.clock_ms()
    r = s.q("welcome", "claim", key="a", claimant="flow")
    ok(r.get("claimed") is True and "lease_expires_at" in r.json,
       "a claim sending no lease gets the queue's lease", r.text)
    st = s.q("welcome", "status", key="a").json or {}
    eq(st.get("state"), "leased", "... and the item is leased, not consumed")
    s.q("welcome", "enqueue", key="b")
    r = s.q("welcome", "pop", claimant="flow", lease="5")
    eq((r.get("key"), r.get("claimed")), ("b", True), "a pop with its own lease")
    ok(r.get("lease_expires_at", "") < s.q("welcome", "status", key="a").get("lease_expires_at", ""),
       "... gets its own, shorter one", "%r now=%d" % (r.text, now))
    r = s.call("POST", CONFIG, params={"lease": "2.5"})
    ok(r.get("lease") == 2.5 and '"lease":2.500,' in r.text, "a lease to the millisecond is kept so", r.text)
    r = s.call("POST", CONFIG, body={"lease": 0})
    eq(r.get("lease"), 0, "lease 0: no default lease")
    s.q("welcome", "enqueue", key="c")
    eq(s.q("welcome", "claim", key="c", claimant="flow").get("lease_expires_at"), None,
       "then a claim without a lease consumes the item")


def scopes_and_tenants(s):
    ro = s.add_key("reader", "--scope", "read")
    r = s.call("GET", CONFIG, key=ro)
    eq(r.get("max_attempts"), 5, "a read-only key reads the settings")
    r = s.call("POST", CONFIG, body={"max_attempts": 1}, key=ro)
    eq((r.status, r.reason), (403, "Read Only Key"), "a read-only key cannot set them")
    beta = s.add_key("beta", "--tenant", "beta")
    r = s.call("GET", CONFIG, key=beta)
    eq(r.status, 404, "another tenant has no queue welcome")
    r = s.call("POST", CONFIG, body={"max_attempts": 2}, key=beta)
    eq(r.text, '{"queue":"welcome","lease":0,"max_attempts":2,"bind_days":365}\n',
       "another tenant configures its own welcome")
    eq(s.call("GET", CONFIG).get("max_attempts"), 5, "... without touching the first tenant's")
    with open(s.path("keys"), "a") as f:
        f.write("tenant small max_items=1\n")
    small = s.add_key("small", "--tenant", "small")
    eq(s.call("POST", "/v1/queues/one/enqueue", body={"key": "x"}, key=small).get("enqueued"), True,
       "the small tenant holds its one item")
    r = s.call("POST", "/v1/queues/two/config", body={"lease": 60}, key=small)
    eq((r.status, r.reason), (507, "Quota Exceeded"),
       "a tenant at its quota cannot create a queue by config")
    r = s.call("POST", "/v1/queues/one/config", body={"lease": 60}, key=small)
    eq(r.get("lease"), 60, "... but configures the queue it has")


def restart(s):
    before = s.call("GET", CONFIG).text
    s.restart_casqd()
    eq(s.call("GET", CONFIG).text, before, "the settings survive a casqd restart")


def claims_per_minute(s):
    q = "rate"
    for k in ("a", "b", "c", "d", "e"):
        s.q(q, "enqueue", key=k)
    s.advance(60 - (s.clock_ms() // 1000) % 60 + 1)     # early in a minute
    s.q(q, "claim", key="a", claimant="x")
    s.q(q, "claim", key="a", claimant="y")              # loses: not counted
    s.q(q, "pop", claimant="x")
    s.q(q, "pop", claimant="x", lease="30")
    s.advance(60)
    s.q(q, "claim", key="d", claimant="x")
    cpm = (s.stats(q).json or {}).get("claims_per_minute")
    eq((len(cpm or []), (cpm or [0, 0])[-2:], sum(cpm or [])), (60, [3, 1], 4),
       "claims_per_minute: 60 counts, oldest first, winning claims and pops only")
    s.advance(59 * 60)
    cpm = (s.stats(q).json or {}).get("claims_per_minute") or []
    eq((cpm[:1], sum(cpm)), ([1], 1), "an hour later the first minute has left the window")


def main():
    with Stack(workers=2, test_clock=True) as s:
        if not s.test_clock_works():
            skip_all("casqd built without --enable-test-clock")
        settings(s)
        scopes_and_tenants(s)
        restart(s)
        claims_per_minute(s)


run_main(main)
