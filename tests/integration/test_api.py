#!/usr/bin/env python3
"""Every route and every response field of the v1 contract, through
nginx + TLS + FastCGI + casqd + LMDB: exact key order, compact one-line
JSON with the outcome key first, states, counters and times."""

import calendar
import os
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (ISO_RE, TOKEN_RE, Stack, eq, ok,  # noqa: E402
                      run_main)

ENQ = ["enqueued", "queue", "key", "state", "ready_at"]
WIN = ["claimed", "queue", "key", "owner", "token", "attempt", "payload"]
WIN_LEASE = WIN + ["lease_expires_at"]
LOSE = ["claimed", "queue", "key", "reason"]
LOSE_OWNER = LOSE + ["owner"]
ACK_OK = ["acked", "queue", "key"]
ACK_NO = ["acked", "queue", "key", "reason"]
REL_OK = ["released", "queue", "key", "state"]
REL_NO = ["released", "queue", "key", "reason"]
RM_OK = ["removed", "queue", "key"]
RM_NO = ["removed", "queue", "key", "reason"]
ST_HEAD = ["queued", "queue", "key", "state", "attempts"]
ST_READY = ST_HEAD + ["enqueued_at", "ready_at"]
ST_LEASED = ST_HEAD + ["owner", "enqueued_at", "ready_at", "lease_expires_at"]
ST_CLAIMED = ST_HEAD + ["owner", "claimed_at"]
STATS = ["queue", "ready", "leased", "oldest_ready_age", "enqueued", "claimed",
         "acked", "released", "removed", "expired", "dead", "redriven", "lease",
         "max_attempts", "bind_days", "claims_per_minute"]


def compact(text):
    """True when the text is one line of JSON with no whitespace outside
    strings (an optional final newline allowed)."""
    t = text[:-1] if text.endswith("\n") else text
    if "\n" in t:
        return False
    in_str = esc = False
    for ch in t:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in " \t\r":
            return False
    return True


def epoch(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def shape(r, what, prefix, keys):
    """Status 200, application/json, compact, starts with prefix, keys in
    exactly this order."""
    ok(r.status == 200 and r.ctype() == "application/json",
       what + ": 200 application/json",
       "got %d %s, Content-Type %r" % (r.status, r.reason, r.headers.get("Content-Type")))
    ok(r.text.startswith(prefix) and compact(r.text),
       what + ": compact one-line text starting with " + prefix, "got %r" % r.text)
    eq(r.keys(), keys, what + ": key order")


def times(r, what, fields):
    for f in fields:
        v = r.get(f)
        ok(isinstance(v, str) and ISO_RE.match(v), "%s: %s is ISO-8601 UTC" % (what, f),
           "got %r" % (v,))


def near(r, field, want, what, slack=3):
    v = r.get(field)
    ok(isinstance(v, str) and ISO_RE.match(v) and abs(epoch(v) - want) <= slack,
       "%s: %s is about now%+ds" % (what, field, round(want - time.time())),
       "got %r, expected about %s" % (v, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                        time.gmtime(want))))


def main():
    with Stack(workers=2) as s:
        # ---------------------------------------------------------- health
        r = s.call("GET", "/healthz", key=None)
        shape(r, "healthz", '{"ok":true}', ["ok"])
        eq(r.text.strip(), '{"ok":true}', "healthz: exact body")
        for m in ("GET", "POST"):
            r = s.call(m, "/v1/ping")
            shape(r, "ping (%s)" % m, '{"pong":true}', ["pong"])
            eq(r.text.strip(), '{"pong":true}', "ping (%s): exact body" % m)

        # ---------------------------------------------------------- enqueue
        t0 = time.time()
        r = s.call("POST", "/v1/queues/api/enqueue",
                   body={"key": "k1", "payload": {"n": 1}})
        shape(r, "enqueue new", '{"enqueued":true,"queue":"api","key":"k1","state":"ready","ready_at":"', ENQ)
        near(r, "ready_at", t0, "enqueue new")
        first_ready_at = r.get("ready_at")

        r = s.call("POST", "/v1/queues/api/enqueue",
                   body={"key": "k1", "payload": {"n": 2}})
        shape(r, "enqueue duplicate while ready",
              '{"enqueued":false,"queue":"api","key":"k1","state":"ready","ready_at":"', ENQ)
        eq(r.get("ready_at"), first_ready_at, "enqueue duplicate: ready_at of the first enqueue")

        r = s.q("api", "status", key="k1")
        shape(r, "status ready", '{"queued":true,"queue":"api","key":"k1","state":"ready","attempts":0,', ST_READY)
        times(r, "status ready", ["enqueued_at", "ready_at"])
        eq(r.get("ready_at"), first_ready_at, "status ready: ready_at as enqueued")

        # ---------------------------------------------------------- lease + ack
        t0 = time.time()
        r = s.q("api", "claim", key="k1", claimant="c1", lease=30)
        shape(r, "claim with lease", '{"claimed":true,"queue":"api","key":"k1","owner":"c1","token":"', WIN_LEASE)
        tok = r.get("token")
        ok(isinstance(tok, str) and TOKEN_RE.match(tok), "claim with lease: token is 32 hex", "got %r" % (tok,))
        eq(r.get("attempt"), 1, "claim with lease: attempt 1")
        eq(r.get("payload"), {"n": 1}, "claim with lease: payload of the first enqueue (duplicate did not replace it)")
        near(r, "lease_expires_at", t0 + 30, "claim with lease")

        s.call("POST", "/v1/queues/api/enqueue", body={"key": "k9"})
        s.q("api", "claim", key="k9", claimant="c1", lease=30)
        r = s.call("POST", "/v1/queues/api/enqueue", body={"key": "k9"})
        shape(r, "enqueue while leased (a follow-up)",
              '{"enqueued":true,"queue":"api","key":"k9","state":"follow_up","ready_at":"', ENQ)
        r = s.call("POST", "/v1/queues/api/enqueue", body={"key": "k9"})
        shape(r, "enqueue again while leased",
              '{"enqueued":false,"queue":"api","key":"k9","state":"follow_up","ready_at":"', ENQ)

        r = s.q("api", "status", key="k1")
        shape(r, "status leased", '{"queued":true,"queue":"api","key":"k1","state":"leased","attempts":1,"owner":"c1",', ST_LEASED)
        times(r, "status leased", ["enqueued_at", "ready_at", "lease_expires_at"])

        r = s.q("api", "claim", key="k1", claimant="c2")
        shape(r, "claim of a leased key", '{"claimed":false,"queue":"api","key":"k1","reason":"claimed","owner":"c1"}', LOSE_OWNER)

        r = s.q("api", "ack", key="k1", token="0" * 32)
        shape(r, "ack with wrong token", '{"acked":false,"queue":"api","key":"k1","reason":"token_mismatch"}', ACK_NO)
        r = s.q("api", "status", key="k1")
        eq(r.get("state"), "leased", "ack with wrong token: item stays leased")

        r = s.q("api", "ack", key="k1", token=tok)
        shape(r, "ack with good token", '{"acked":true,"queue":"api","key":"k1"}', ACK_OK)
        eq(r.text.strip(), '{"acked":true,"queue":"api","key":"k1"}', "ack with good token: exact body")

        r = s.q("api", "ack", key="k1", token=tok)
        ok(r.get("acked") is False and r.get("reason") in ("not_leased", "token_mismatch", "lease_expired"),
           "second ack of an acked item: acked false with a contract reason", repr(r))

        r = s.q("api", "status", key="k1")
        shape(r, "status after ack", '{"queued":false,"queue":"api","key":"k1","state":"claimed","attempts":', ST_CLAIMED)
        eq((r.get("attempts"), r.get("owner")), (1, "c1"), "status after ack: attempts 1 (as claimed), owner c1")
        times(r, "status after ack", ["claimed_at"])

        r = s.q("api", "claim", key="k1", claimant="c3")
        shape(r, "claim of an acked key", '{"claimed":false,"queue":"api","key":"k1","reason":"claimed","owner":"c1"}', LOSE_OWNER)

        r = s.call("POST", "/v1/queues/api/enqueue", body={"key": "k1", "payload": "again"})
        shape(r, "re-enqueue after ack (gone)", '{"enqueued":true,"queue":"api","key":"k1","state":"ready","ready_at":"', ENQ)
        r = s.q("api", "claim", key="k1", claimant="c4")
        shape(r, "claim of the re-enqueued item", '{"claimed":true,"queue":"api","key":"k1","owner":"c4","token":"', WIN)
        eq(r.get("payload"), "again", "claim of the re-enqueued item: new payload")
        eq(r.get("attempt"), 1, "claim of the re-enqueued item: attempt starts again at 1")

        # ---------------------------------------------------------- claim without lease
        s.q("api", "enqueue", key="k2", payload="p2")
        r = s.q("api", "claim", key="k2", claimant="alice")
        shape(r, "claim without lease", '{"claimed":true,"queue":"api","key":"k2","owner":"alice","token":"', WIN)
        eq(r.get("payload"), "p2", "claim without lease: payload (form string)")
        ok(TOKEN_RE.match(r.get("token") or ""), "claim without lease: token is 32 hex", repr(r))
        r = s.q("api", "claim", key="k2", claimant="bob")
        shape(r, "second claim of a consumed key", '{"claimed":false,"queue":"api","key":"k2","reason":"claimed","owner":"alice"}', LOSE_OWNER)
        r = s.q("api", "status", key="k2")
        shape(r, "status claimed", '{"queued":false,"queue":"api","key":"k2","state":"claimed","attempts":', ST_CLAIMED)
        eq((r.get("attempts"), r.get("owner")), (1, "alice"), "status claimed: attempts 1 (as claimed), owner alice")
        r = s.q("api", "enqueue", key="k2", payload="p2b")
        shape(r, "re-enqueue after claim (gone)", '{"enqueued":true,"queue":"api","key":"k2","state":"ready","ready_at":"', ENQ)

        r = s.q("api", "claim", key="nothere")
        shape(r, "claim of a key never enqueued", '{"claimed":false,"queue":"api","key":"nothere","reason":"not_queued"}', LOSE)
        r = s.q("api", "enqueue", key="noload")
        r = s.q("api", "claim", key="noload")
        eq(r.get("payload", "missing"), None, "claim of an item enqueued without payload: payload null")
        ok('"payload":null' in r.text, "claim without payload: payload:null is in the text", r.text)

        # ---------------------------------------------------------- FIFO pop
        for k in ("zeta", "alpha", "mid"):
            s.q("fifo", "enqueue", key=k)
        got = []
        for i in range(3):
            r = s.q("fifo", "pop", claimant="popper")
            if i == 0:
                shape(r, "pop", '{"claimed":true,"queue":"fifo","key":"zeta","owner":"popper","token":"', WIN)
            got.append(r.get("key"))
        eq(got, ["zeta", "alpha", "mid"], "pop: FIFO order (not key order)")
        r = s.q("fifo", "pop")
        shape(r, "pop of an empty queue", '{"claimed":false,"queue":"fifo","key":"","reason":"empty"}', LOSE)
        eq(r.text.strip(), '{"claimed":false,"queue":"fifo","key":"","reason":"empty"}', "pop of an empty queue: exact body")
        r = s.q("neverused", "pop")
        eq(r.text.strip(), '{"claimed":false,"queue":"neverused","key":"","reason":"no_such_queue"}',
           "pop of a queue never used: no_such_queue, not empty")

        # ---------------------------------------------------------- ack not leased
        s.q("api", "enqueue", key="k3")
        r = s.q("api", "ack", key="k3", token="0" * 32)
        shape(r, "ack of a ready item", '{"acked":false,"queue":"api","key":"k3","reason":"not_leased"}', ACK_NO)
        r = s.q("api", "ack", key="never", token="0" * 32)
        ok(r.get("acked") is False and r.get("reason") == "not_leased", "ack of an absent item: not_leased", repr(r))

        # ---------------------------------------------------------- release
        s.q("rel", "enqueue", key="r1", payload="rp")
        tok = s.q("rel", "claim", key="r1", claimant="w1", lease=30).get("token")
        r = s.q("rel", "release", key="r1", token="f" * 32)
        shape(r, "release with wrong token", '{"released":false,"queue":"rel","key":"r1","reason":"token_mismatch"}', REL_NO)
        r = s.q("rel", "release", key="r1", token=tok)
        shape(r, "release", '{"released":true,"queue":"rel","key":"r1","state":"ready"}', REL_OK)
        eq(r.text.strip(), '{"released":true,"queue":"rel","key":"r1","state":"ready"}', "release: exact body")
        r = s.q("rel", "status", key="r1")
        eq((r.get("state"), r.get("attempts")), ("ready", 1), "status after release: ready, attempts 1")
        r = s.q("rel", "release", key="r1", token=tok)
        ok(r.get("released") is False and r.get("reason") == "not_leased", "release of a ready item: not_leased", repr(r))
        r = s.q("rel", "claim", key="r1", claimant="w2", lease=30)
        eq((r.get("claimed"), r.get("attempt"), r.get("payload")), (True, 2, "rp"),
           "claim after release: attempt 2, same payload")

        # release with delay
        s.q("reldelay", "enqueue", key="d1")
        tok = s.q("reldelay", "claim", key="d1", lease=30).get("token")
        t0 = time.time()
        r = s.q("reldelay", "release", key="d1", token=tok, delay=60)
        shape(r, "release with delay", '{"released":true,"queue":"reldelay","key":"d1","state":"ready"}', REL_OK)
        r = s.q("reldelay", "status", key="d1")
        near(r, "ready_at", t0 + 60, "status after release with delay")
        r = s.q("reldelay", "claim", key="d1")
        ok(r.text.startswith('{"claimed":false,"queue":"reldelay","key":"d1","reason":"not_ready"')
           and r.keys() in (LOSE, LOSE_OWNER),
           "claim by key of a delayed release: not_ready", repr(r))
        r = s.q("reldelay", "pop")
        eq(r.get("reason"), "empty", "pop with only a delayed release: empty")

        # ---------------------------------------------------------- enqueue with delay
        t0 = time.time()
        r = s.q("delayq", "enqueue", key="e1", delay=60)
        shape(r, "enqueue with delay", '{"enqueued":true,"queue":"delayq","key":"e1","state":"ready","ready_at":"', ENQ)
        near(r, "ready_at", t0 + 60, "enqueue with delay 60")
        r = s.q("delayq", "claim", key="e1")
        shape(r, "claim by key of a delayed item", '{"claimed":false,"queue":"delayq","key":"e1","reason":"not_ready"}', LOSE)
        r = s.q("delayq", "pop")
        eq(r.text.strip(), '{"claimed":false,"queue":"delayq","key":"","reason":"empty"}', "pop with only a delayed item: empty")
        r = s.q("delayq", "enqueue", key="e2", delay="0.8")
        eq(r.get("enqueued"), True, "enqueue with decimal delay 0.8")
        r = s.q("delayq", "claim", key="e2")
        eq(r.get("reason"), "not_ready", "decimal delay 0.8: not ready at once")

        # ---------------------------------------------------------- stats sequence, part 1
        for k in "abcdef":
            s.q("st", "enqueue", key=k)
        s.q("st", "claim", key="a")                                   # claimed (no lease)
        tb = s.q("st", "claim", key="b", lease=60).get("token")
        s.q("st", "ack", key="b", token=tb)                           # acked
        tc = s.q("st", "claim", key="c", lease=60).get("token")
        s.q("st", "release", key="c", token=tc)                       # released
        s.q("st", "remove", key="d")                                  # removed
        s.q("st", "claim", key="e", lease=1)                          # will expire
        r = s.stats("st")
        eq((r.get("ready"), r.get("leased")), (2, 1), "stats before expiry: ready 2 (c,f), leased 1 (e)")

        # ---------------------------------------------------------- lease expiry
        s.q("exp", "enqueue", key="x1")
        s.q("exp", "enqueue", key="x2")
        t1 = s.q("exp", "claim", key="x1", lease=1).get("token")
        t2 = s.q("exp", "claim", key="x2", lease=1).get("token")
        r = s.q("exp", "status", key="x1")
        eq(r.get("state"), "leased", "lease 1 s: leased before expiry")
        time.sleep(1.3)
        # First request after the expiry: nothing else has touched queue exp.
        r = s.q("exp", "ack", key="x2", token=t2)
        shape(r, "ack after lease expiry (first touch)", '{"acked":false,"queue":"exp","key":"x2","reason":"lease_expired"}', ACK_NO)
        r = s.q("exp", "ack", key="x2", token=t2)
        ok(r.get("acked") is False and r.get("reason") in ("lease_expired", "not_leased"),
           "second ack after lease expiry: acked false", repr(r))
        r = s.q("delayq", "claim", key="e2")
        eq(r.get("claimed"), True, "decimal delay 0.8: claimable after 1.3 s")
        r = s.q("exp", "status", key="x1")
        eq(r.get("state"), "ready", "lease expired: status says ready")
        eq(r.get("attempts"), 1, "lease expired: attempts still 1")
        r = s.q("exp", "claim", key="x1", lease=30)
        eq((r.get("claimed"), r.get("attempt")), (True, 2), "claim after lease expiry: attempt 2")
        r = s.q("exp", "ack", key="x1", token=t1)
        ok(r.get("acked") is False and r.get("reason") in ("token_mismatch", "lease_expired"),
           "ack with the expired token after a new claim: acked false", repr(r))

        # ---------------------------------------------------------- stats sequence, part 2
        r = s.q("st", "claim", key="e", lease=60)
        eq((r.get("claimed"), r.get("attempt")), (True, 2), "stats queue: expired e claimed again, attempt 2")
        r = s.stats("st")
        shape(r, "queue stats", '{"queue":"st","ready":2,"leased":1,"oldest_ready_age":', STATS)
        want = {"queue": "st", "ready": 2, "leased": 1, "enqueued": 6, "claimed": 5,
                "acked": 1, "released": 1, "removed": 1, "expired": 1, "dead": 0,
                "redriven": 0, "lease": 0, "max_attempts": 0, "bind_days": 365}
        got = {k: r.get(k) for k in want}
        eq(got, want, "queue stats: counts and totals after a known sequence")
        cpm = r.get("claims_per_minute")
        ok(isinstance(cpm, list) and len(cpm) == 60 and sum(cpm) == 5 and all(isinstance(n, int) for n in cpm),
           "queue stats: claims_per_minute, 60 minutes adding up to the 5 claims", repr(cpm))
        age = r.get("oldest_ready_age")
        ok(isinstance(age, int) and 0 <= age <= 60, "queue stats: oldest_ready_age is whole seconds, small",
           "got %r" % (age,))

        r = s.call("GET", "/v1/queues")
        shape(r, "list queues", '{"queues":[', ["queues"])
        lst = r.get("queues") or []
        names = [e.get("queue") for e in lst if isinstance(e, dict)]
        for qn in ("api", "fifo", "rel", "reldelay", "delayq", "st", "exp"):
            ok(qn in names, "list queues: %s is listed" % qn, "got %r" % names)
        entry = [e for e in lst if isinstance(e, dict) and e.get("queue") == "st"]
        eq(entry[:1], [{"queue": "st", "ready": 2, "leased": 1}], "list queues: entry for st")
        ok('{"queue":"st","ready":2,"leased":1}' in r.text, "list queues: entry key order queue,ready,leased", r.text)

        r = s.stats("nosuchq")
        eq((r.status, r.reason), (404, "No Such Queue"), "stats of an unknown queue: 404 No Such Queue")
        eq(r.get("error"), "no_such_queue", "stats of an unknown queue: error no_such_queue")

        # ---------------------------------------------------------- remove
        s.q("rm", "enqueue", key="m1", payload="x")
        s.q("rm", "enqueue", key="m2")
        tm2 = s.q("rm", "claim", key="m2", lease=30).get("token")
        r = s.q("rm", "remove", key="m1")
        shape(r, "remove a ready item", '{"removed":true,"queue":"rm","key":"m1"}', RM_OK)
        r = s.q("rm", "remove", key="m2")
        shape(r, "remove a leased item", '{"removed":true,"queue":"rm","key":"m2"}', RM_OK)
        r = s.q("rm", "remove", key="m3")
        shape(r, "remove an absent item", '{"removed":false,"queue":"rm","key":"m3","reason":"not_queued"}', RM_NO)
        r = s.q("rm", "remove", key="m1")
        eq(r.get("reason"), "not_queued", "remove twice: second says not_queued")
        r = s.q("rm", "status", key="m1")
        shape(r, "status of a removed item", '{"queued":false,"queue":"rm","key":"m1","state":"absent","attempts":0}', ST_HEAD)
        r = s.q("rm", "ack", key="m2", token=tm2)
        ok(r.get("acked") is False, "ack of a removed leased item: acked false", repr(r))
        r = s.q("rm", "claim", key="m1")
        eq(r.get("reason"), "not_queued", "claim of a removed item: not_queued")
        r = s.q("rm", "status", key="never")
        eq(r.text.strip(), '{"queued":false,"queue":"rm","key":"never","state":"absent","attempts":0}',
           "status absent: exact body")

        # ---------------------------------------------------------- both methods, auth styles
        r = s.call("POST", "/v1/queues/api/status", body="key=k3",
                   content_type="application/x-www-form-urlencoded", auth="x-api-key")
        eq((r.status, r.get("state")), (200, "ready"), "POST form + X-Api-Key: status works")


run_main(main)
