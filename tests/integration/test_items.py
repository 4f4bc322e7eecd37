#!/usr/bin/env python3
"""Listing a queue's items through nginx + TLS + FastCGI + casqd + LMDB:
state=ready and state=leased in key order with attempts and since; pages
with after and next; pages that cover every item exactly once while other
items change state concurrently; another tenant's items are invisible;
bad parameters."""

import os
import random
import sys
import threading

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main, run_threads  # noqa: E402


def items(s, queue, state, after=None, limit=None, call=None):
    params = {"state": state}
    if after is not None:
        params["after"] = after
    if limit is not None:
        params["limit"] = limit
    return (call or s.call)("GET", "/v1/queues/%s/items" % queue, params=params)


def all_pages(s, queue, state, limit, call=None, on_page=None):
    """Every page from the first; returns (keys in the order listed, pages)."""
    keys, after, pages = [], None, 0
    while True:
        r = items(s, queue, state, after=after, limit=limit, call=call)
        if r.status != 200:
            raise AssertionError("items page after %r: %r" % (after, r))
        keys += [i["key"] for i in r.json["items"]]
        pages += 1
        if on_page:
            on_page()
        if "next" not in r.json:
            return keys, pages
        after = r.json["next"]


def listing(s):
    for k in ("c", "a", "b", "d", "e"):
        s.call("POST", "/v1/queues/welcome/enqueue", body={"key": k})
    s.call("POST", "/v1/queues/welcome/claim", body={"key": "b", "claimant": "w", "lease": 600})
    s.call("POST", "/v1/queues/welcome/claim", body={"key": "e", "claimant": "w", "lease": 600})
    s.call("POST", "/v1/queues/welcome/release", body={"key": "e", "claimant": "w"})
    r = items(s, "welcome", "ready")
    eq(r.status, 200, "listing: 200")
    eq(r.keys(), ["queue", "state", "items"], "listing: queue, state, items; no next on the last page")
    eq([(i["key"], i["attempts"]) for i in r.get("items")],
       [("a", 0), ("c", 0), ("d", 0), ("e", 1)], "listing: ready items in key order with attempts")
    eq(list(r.get("items")[0].keys()), ["key", "attempts", "since"], "listing: key, attempts, since")
    st = s.call("GET", "/v1/queues/welcome/status", params={"key": "e"})
    eq(r.get("items")[3]["since"], st.get("ready_at"), "listing: a ready item's since is its ready_at")
    r = items(s, "welcome", "leased")
    eq([(i["key"], i["attempts"]) for i in r.get("items")], [("b", 1)], "listing: the leased one")
    h = s.call("GET", "/v1/queues/welcome/history", params={"key": "b"}).get("events")
    eq(r.get("items")[0]["since"], h[-1]["at"][:19] + "Z", "listing: since its claim, as history has it")
    r = items(s, "welcome", "ready", limit=2)
    eq(([i["key"] for i in r.get("items")], r.get("next")), (["a", "c"], "c"),
       "listing: limit=2, next names the last key")
    r = items(s, "welcome", "ready", after="c", limit=2)
    eq(([i["key"] for i in r.get("items")], r.get("next")), (["d", "e"], None),
       "listing: after=c continues; the last page has no next")
    r = items(s, "welcome", "ready", after="e")
    eq((r.get("items"), r.get("next")), ([], None), "listing: after the last key: empty, no next")


def concurrent_pages(s, n=240, churners=6):
    """Even items stay ready; odd ones are claimed and released by other
    connections all along. Paging ready items (7 a page) lists every even
    item exactly once, each key once, in order; once the churn stops,
    ready and leased pages together hold every item exactly once."""
    keys = ["k%03d" % i for i in range(n)]
    c = s.client()
    try:
        for k in keys:
            c.call("POST", "/v1/queues/churn/enqueue", body={"key": k})
    finally:
        c.close()
    odd = keys[1::2]
    stop = threading.Event()
    bad = []

    def churn(i):
        rnd = random.Random(i)
        cl = s.client()
        try:
            while not stop.is_set():
                k = rnd.choice(odd)
                r = cl.call("POST", "/v1/queues/churn/claim",
                            body={"key": k, "claimant": "c%d" % i, "lease": 600})
                if r.status != 200:
                    bad.append(repr(r))
                if r.get("claimed") is True and rnd.random() < 0.7:
                    cl.call("POST", "/v1/queues/churn/release", body={"key": k, "token": r.get("token")})
        finally:
            cl.close()
    threads = [threading.Thread(target=churn, args=(i,), daemon=True) for i in range(churners)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            listed, pages = all_pages(s, "churn", "ready", 7)
            eq(listed, sorted(set(listed)), "concurrent: each key listed once, in key order (%d pages)" % pages)
            eq(sorted(set(keys[0::2]) - set(listed)), [], "concurrent: every even (stable) item listed")
            ok(set(listed) <= set(keys), "concurrent: nothing but the queue's items")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    eq(bad, [], "concurrent: every churning claim answered 200")
    ready, _ = all_pages(s, "churn", "ready", 50)
    leased, _ = all_pages(s, "churn", "leased", 50)
    eq(sorted(ready + leased), keys, "concurrent: afterwards, ready and leased hold every item once")
    st = s.call("GET", "/v1/queues/churn").json
    eq((len(ready), len(leased)), (st["ready"], st["leased"]), "concurrent: ... as the queue counts them")


def tenants(s, other):
    call = lambda m, p, **kw: s.call(m, p, key=other, **kw)  # noqa: E731
    eq(items(s, "welcome", "ready", call=call).status, 404,
       "tenants: another tenant has no queue welcome")
    call("POST", "/v1/queues/welcome/enqueue", body={"key": "zz"})
    eq([i["key"] for i in items(s, "welcome", "ready", call=call).get("items")], ["zz"],
       "tenants: its own welcome lists its own item only")
    ok("zz" not in [i["key"] for i in items(s, "welcome", "ready").get("items")],
       "tenants: and the first tenant's does not list it")


def bad_params(s):
    cases = [({}, "Missing State"), ({"state": "claimed"}, "Bad State"), ({"state": "Ready"}, "Bad State"),
             ({"state": ""}, "Bad State"), ({"state": "ready", "limit": "0"}, "Bad Limit"),
             ({"state": "ready", "limit": "1001"}, "Bad Limit"), ({"state": "ready", "limit": "x"}, "Bad Limit"),
             ({"state": "ready", "after": ""}, "Bad After"), ({"state": "ready", "after": "a" * 257}, "Bad After")]
    for params, reason in cases:
        r = s.call("GET", "/v1/queues/welcome/items", params=params)
        eq((r.status, r.reason), (400, reason), "bad: %s is 400 %s" % (params, reason))
    eq(s.call("GET", "/v1/queues/welcome/items", params={"state": "ready", "limit": "1000"}).status, 200,
       "bad: limit=1000 is fine")
    r = s.call("GET", "/v1/queues/nope/items", params={"state": "ready"})
    eq((r.status, r.reason), (404, "No Such Queue"), "bad: an unknown queue is 404")


def main():
    with Stack(workers=2) as s:
        other = s.add_key("beta-marketo", "--tenant", "beta")
        reader = s.add_key("reporting", "--scope", "read")
        listing(s)
        r = items(s, "welcome", "leased", call=lambda m, p, **kw: s.call(m, p, key=reader, **kw))
        eq((r.status, [i["key"] for i in r.get("items")]), (200, ["b"]), "a read-only key lists items")
        concurrent_pages(s)
        tenants(s, other)
        bad_params(s)


run_main(main)
