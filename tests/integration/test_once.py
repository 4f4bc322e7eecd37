#!/usr/bin/env python3
"""Once-windows through nginx + TLS + FastCGI + casqd + LMDB: first:true
then first:false with first_seen and count; ids and scopes independent;
200 simultaneous first calls with one id (exactly one first:true, counts
1..200 each once); parameter errors; ttl; with a test-clock build, a new
window once the clock passes the old one's expiry; and /v1/once, the
tenant's scopes with their counters as windows open and are swept, paged
with after, for a read key, isolated between tenants, for an admin with
X-Casq-Tenant."""

import calendar
import collections
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (ISO_RE, Stack, comment, eq, ok, run_main,  # noqa: E402
                      run_threads, skip)

FIRST = ["first", "scope", "id", "expires_at"]
AGAIN = ["first", "scope", "id", "first_seen", "count", "expires_at"]
N_RACE = 200


def epoch(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def is_at(v, want, slack=3):
    return isinstance(v, str) and bool(ISO_RE.match(v)) and abs(epoch(v) - want) <= slack


def error(r, what, status, reason, code, message):
    eq((r.status, r.reason), (status, reason), what + ": %d %s" % (status, reason))
    eq(r.text, json.dumps({"error": code, "message": message}, separators=(",", ":")) + "\n",
       what + ": error body")


def basics(s, off):
    """off: seconds the test clock is ahead of real time."""
    once = lambda scope, **p: s.call("GET", "/v1/once/" + scope, params=p)  # noqa: E731
    t0 = time.time() + off
    r = once("signup", id="1234")
    eq((r.status, r.ctype()), (200, "application/json"), "first call: 200 application/json")
    eq(r.keys(), FIRST, "first call: key order")
    ok(r.text.startswith('{"first":true,"scope":"signup","id":"1234","expires_at":"'),
       "first call: starts with {\"first\":true", "got %r" % r.text)
    ok(is_at(r.get("expires_at"), t0 + 86400), "first call: expires_at = now + 86400 s (default ttl)",
       "got %r" % r.get("expires_at"))
    exp = r.get("expires_at")
    r = once("signup", id="1234")
    eq(r.keys(), AGAIN, "second call: key order")
    ok(r.text.startswith('{"first":false,"scope":"signup","id":"1234","first_seen":"'),
       "second call: starts with {\"first\":false", "got %r" % r.text)
    ok(is_at(r.get("first_seen"), t0), "second call: first_seen is the first call's time",
       "got %r" % r.get("first_seen"))
    eq((r.get("count"), r.get("expires_at")), (2, exp), "second call: count 2, expires_at unchanged")
    seen = r.get("first_seen")
    r = once("signup", id="1234", ttl=5)
    eq((r.get("first"), r.get("count"), r.get("first_seen"), r.get("expires_at")),
       (False, 3, seen, exp), "third call (with another ttl): count 3, window not moved")
    eq(r.text, '{"first":false,"scope":"signup","id":"1234","first_seen":"%s","count":3,"expires_at":"%s"}\n'
       % (seen, exp), "third call: exact body")

    r = once("signup", id="5678")
    eq(r.get("first"), True, "another id in the same scope: first:true")
    r = once("other-scope", id="1234")
    eq(r.get("first"), True, "the same id in another scope: first:true")
    r = once("other-scope", id="1234")
    eq((r.get("first"), r.get("count")), (False, 2), "... and its own count (2)")
    r = once("signup", id="1234")
    eq(r.get("count"), 4, "the first scope's count went on independently (4)")
    r = s.call("POST", "/v1/once/signup", body={"id": 1234})
    eq((r.get("first"), r.get("count")), (False, 5), "id 1234 as a JSON number is the same id (count 5)")
    r = s.call("POST", "/v1/once/signup", body="id=1234", content_type="application/x-www-form-urlencoded")
    eq(r.get("count"), 6, "id from a form body is the same id (count 6)")
    r = once("signup", id="ümlaut id/with slash")
    eq((r.get("first"), r.get("id")), (True, "ümlaut id/with slash"), "a UTF-8 id with a slash and a space")
    r = once("signup", id="x" * 256)
    eq(r.get("first"), True, "a 256-byte id is accepted")

    t0 = time.time() + off
    r = once("ttl", id="a", ttl=60)
    ok(r.get("first") is True and is_at(r.get("expires_at"), t0 + 60),
       "ttl=60: expires_at = now + 60 s", "got %r" % r)
    r = once("ttl", id="b", ttl="1.5")
    ok(r.get("first") is True and is_at(r.get("expires_at"), t0 + 1.5, 2),
       "ttl=1.5 accepted", "got %r" % r)
    r = once("ttl", id="c", ttl=31536000)
    ok(r.get("first") is True and is_at(r.get("expires_at"), t0 + 31536000),
       "ttl=31536000 (the maximum) accepted", "got %r" % r)


def errors(s):
    e = {
        "missing_id": (400, "Missing Id", "missing_id", "parameter 'id' is required"),
        "bad_id": (400, "Bad Id", "bad_id", "id must be 1-256 bytes of UTF-8 without NUL"),
        "bad_ttl": (400, "Bad TTL", "bad_ttl", "ttl must be seconds, more than 0 and at most 31536000"),
        "bad_scope": (400, "Bad Scope", "bad_scope", "scopes are 1-64 of A-Z a-z 0-9 . _ -"),
    }
    for params, which in (({}, "missing_id"), ({"ttl": "0"}, "missing_id"),
                          ({"id": ""}, "bad_id"), ({"id": "x" * 257}, "bad_id"),
                          ({"id": "a", "ttl": "0"}, "bad_ttl"), ({"id": "a", "ttl": "-1"}, "bad_ttl"),
                          ({"id": "a", "ttl": "31536001"}, "bad_ttl"),
                          ({"id": "a", "ttl": "x"}, "bad_ttl")):
        r = s.call("GET", "/v1/once/errs", params=params)
        error(r, "once %s" % (params if len(repr(params)) < 60 else "(long id)"), *e[which])
    r = s.call("POST", "/v1/once/errs", body={"id": {"a": 1}})
    error(r, "once with an object id", *e["bad_id"])
    r = s.call("GET", "/v1/once/errs", params={"id": "a\x00b"})
    error(r, "once with a NUL in the id", *e["bad_id"])
    r = s.call("GET", "/v1/once/bad!scope", params={"id": "a"})
    error(r, "once in scope bad!scope", *e["bad_scope"])
    r = s.call("GET", "/v1/once/" + "s" * 65, params={"id": "a"})
    error(r, "once in a 65-byte scope", *e["bad_scope"])
    r = s.call("GET", "/v1/once/errs", params={"id": "a"})
    eq(r.get("first"), True, "no refused call opened a window for id a")


def race(s):
    barrier = threading.Barrier(N_RACE, timeout=60)
    results = [None] * N_RACE

    def caller(i):
        c = s.client(timeout=60)
        try:
            c.connect()
            barrier.wait()
            results[i] = c.call("GET", "/v1/once/race", params={"id": "the-one", "ttl": 600})
        finally:
            c.close()
    t = time.monotonic()
    errs = run_threads(N_RACE, caller)
    comment("race: %d simultaneous calls in %.2f s" % (N_RACE, time.monotonic() - t))
    eq(errs, [], "race: every thread finished without an exception")
    got = [r for r in results if r is not None]
    eq(dict(collections.Counter(r.status for r in got)), {200: N_RACE}, "race: all %d answered 200" % N_RACE)
    firsts = [r for r in got if r.get("first") is True]
    eq(len(firsts), 1, "race: exactly one first:true")
    counts = [1 if r.get("first") is True else r.get("count") for r in got]
    eq(sorted(counts, key=lambda c: (c is None, c)), list(range(1, N_RACE + 1)),
       "race: counts are 1..%d, each exactly once" % N_RACE)
    exps = set(r.get("expires_at") for r in got)
    eq(len(exps), 1, "race: every call reports the same expires_at")
    seen = set(r.get("first_seen") for r in got if r.get("first") is False)
    eq(len(seen), 1, "race: every first:false reports the same first_seen")
    r = s.call("GET", "/v1/once/race", params={"id": "the-one"})
    eq((r.get("first"), r.get("count")), (False, N_RACE + 1), "race: the next call counts %d" % (N_RACE + 1))


def clock(s, works):
    name = "with the test clock: a new window opens after the ttl"
    if not works:
        skip(name, "casqd built without --enable-test-clock")
        return
    r = s.call("GET", "/v1/once/clock", params={"id": "w", "ttl": 30})
    eq(r.get("first"), True, "clock: the first call opens a 30 s window")
    exp1 = r.get("expires_at")
    s.advance(29)
    r = s.call("GET", "/v1/once/clock", params={"id": "w", "ttl": 30})
    eq((r.get("first"), r.get("count")), (False, 2), "clock: 29 s later the window is still open (count 2)")
    s.advance(2)
    r = s.call("GET", "/v1/once/clock", params={"id": "w", "ttl": 30})
    ok(r.get("first") is True and r.get("expires_at") != exp1 and "count" not in (r.json or {}),
       "clock: 31 s after the first call: first:true again, a new expires_at", "got %r" % r)
    exp2 = r.get("expires_at")
    r = s.call("GET", "/v1/once/clock", params={"id": "w"})
    eq((r.get("first"), r.get("count"), r.get("expires_at")), (False, 2, exp2),
       "clock: the new window counts from 1 again (count 2 on the next call)")


def scopes_of(s, key=Ellipsis, headers=None):
    r = s.call("GET", "/v1/once", key=key, headers=headers)
    return {x["scope"]: (x["windows"], x["opened"], x["expired"]) for x in (r.json or {}).get("scopes", [])}


def scope_list(s, works):
    """/v1/once: every scope of the tenant in name order with its counters."""
    once = lambda scope, key=Ellipsis, **p: s.call("GET", "/v1/once/" + scope, params=p, key=key)  # noqa: E731
    for sc, i in (("sl-b", "1"), ("sl-a", "1"), ("sl-a", "2"), ("sl-a", "1"), ("sl-c", "1")):
        once(sc, id=i, ttl=60)
    r = s.call("GET", "/v1/once")
    eq((r.status, r.text[:11]), (200, '{"scopes":['), "scope list: 200 {\"scopes\":[")
    rows = r.get("scopes") or []
    names = [x.get("scope") for x in rows]
    eq(names, sorted(names), "scope list: in name order")
    a = [x for x in rows if x.get("scope") == "sl-a"]
    eq([list(x) for x in a], [["scope", "windows", "opened", "expired", "created_at"]], "scope list: key order")
    eq([(x["windows"], x["opened"], x["expired"]) for x in a], [(2, 2, 0)],
       "scope list: sl-a holds two windows (a later call of id 1 opens none)")
    ok(a and ISO_RE.match(a[0].get("created_at") or ""), "scope list: created_at is a time", "got %r" % a)
    r = s.call("GET", "/v1/once", params={"after": "sl-a"})
    eq([x.get("scope") for x in r.get("scopes") or []][:2], ["sl-b", "sl-c"], "scope list after sl-a: sl-b, sl-c")
    r = s.call("GET", "/v1/once", params={"after": "sl-c"})
    ok("sl-c" not in [x.get("scope") for x in r.get("scopes") or []], "scope list after sl-c does not list sl-c")
    r = s.call("POST", "/v1/once", body={"after": 5})
    eq((r.status, r.reason), (400, "Bad Parameter"), "scope list: a numeric after is 400 Bad Parameter")
    r = s.call("GET", "/v1/once", params={"id": "1"})
    eq((r.status, r.reason), (400, "Unknown Parameter"), "scope list: id is 400 Unknown Parameter")

    other = s.add_key("once-other", "--tenant", "other")
    reader = s.add_key("once-reader", "--tenant", "other", "--scope", "read")
    adm = s.add_key("once-admin", "--tenant", "ops", "--scope", "admin")
    once("sl-x", key=other, id="1", ttl=60)
    eq(scopes_of(s, key=reader), {"sl-x": (1, 1, 0)}, "scope list: a read key lists its tenant's scope only")
    ok("sl-x" not in scopes_of(s), "scope list: the other tenant's scope is not listed")
    eq(scopes_of(s, key=adm, headers={"X-Casq-Tenant": "other"}), {"sl-x": (1, 1, 0)},
       "scope list: an admin with X-Casq-Tenant lists that tenant's scopes")

    if not works:
        skip("scope list: counts fall as windows are swept", "casqd built without --enable-test-clock")
        return
    s.advance(61)
    # the sweep removes ended windows about once a second: wait for it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(scopes_of(s).get(k, (0,))[0] for k in ("sl-a", "sl-b", "sl-c")):
        time.sleep(0.1)
    got = scopes_of(s)
    eq({k: got.get(k) for k in ("sl-a", "sl-b", "sl-c")}, {"sl-a": (0, 2, 2), "sl-b": (0, 1, 1), "sl-c": (0, 1, 1)},
       "scope list: the swept windows count as expired, the scopes stay")
    once("sl-a", id="1", ttl=60)
    eq(scopes_of(s).get("sl-a"), (1, 3, 2), "scope list: a window after the sweep counts again")


def main():
    t = time.monotonic()
    with Stack(workers=2, test_clock=True) as s:
        works = s.test_clock_works()
        comment("test clock %s" % ("works" if works else "has no effect (not a test build)"))
        off = s.clock_ms() / 1000.0 if works else 0.0
        for fn, args in ((basics, (s, off)), (errors, (s,)), (race, (s,)), (clock, (s, works)),
                         (scope_list, (s, works))):
            t1 = time.monotonic()
            fn(*args)
            comment("%s: %.2f s" % (fn.__name__, time.monotonic() - t1))
    comment("total %.1f s" % (time.monotonic() - t))


run_main(main)
