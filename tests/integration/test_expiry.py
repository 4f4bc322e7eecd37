#!/usr/bin/env python3
"""Expiry of every kind through nginx + TLS + FastCGI + casqd + LMDB, with
casqd's test clock (configure --enable-test-clock; skipped otherwise):
kv ttl, once windows, leases, delayed items, claim records and stored
answers of request ids, each observed after the clock passes it, and the
idle sweep (about once a second, with no request) counting and logging it."""

import os
import re
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, ok, run_main, skip_all  # noqa: E402

IDEM_TTL = 60
SWEEP_WAIT = 3.0
SWEPT_RE = re.compile(r"swept: (\d+) lease\(s\), (\d+) value\(s\), (\d+) once id\(s\), "
                      r"(\d+) stored response\(s\), (\d+) claim record\(s\)")
KINDS = ("leases", "values", "onces", "responses", "claims")


class Log:
    """The casqd log from a position on: the swept lines' counts."""

    def __init__(self, s):
        self.s = s
        self.pos = self.size()

    def size(self):
        try:
            return os.path.getsize(self.s.casqd_log)
        except OSError:
            return 0

    def swept(self):
        with open(self.s.casqd_log, "rb") as f:
            f.seek(self.pos)
            text = f.read().decode("utf-8", "replace")
        total = dict.fromkeys(KINDS, 0)
        lines = 0
        for m in SWEPT_RE.finditer(text):
            lines += 1
            for k, v in zip(KINDS, m.groups()):
                total[k] += int(v)
        return lines, total


def poll(fn, cond, timeout=SWEEP_WAIT):
    """Call fn until cond(result) or timeout; return (result, seconds)."""
    t = time.monotonic()
    while True:
        r = fn()
        if cond(r) or time.monotonic() - t > timeout:
            return r, time.monotonic() - t
        time.sleep(0.05)


def poll_log(log, kind, timeout=SWEEP_WAIT):
    (lines, total), _ = poll(log.swept, lambda x: x[1][kind] > 0, timeout)
    return lines, total


def kv_ttl(s):
    ns = "exp-kv"
    r = s.call("GET", "/v1/kv/%s/set" % ns, params={"key": "t", "value": "v", "ttl": 30})
    eq((r.get("ok"), r.get("version")), (True, 1), "kv: set with ttl=30")
    s.call("GET", "/v1/kv/%s/set" % ns, params={"key": "keep", "value": "v"})
    s.advance(29)
    r = s.call("GET", "/v1/kv/%s/get" % ns, params={"key": "t"})
    eq(r.get("found"), True, "kv: 29 s later the value is still there")
    log = Log(s)
    s.advance(2)
    r = s.call("GET", "/v1/kv/%s/get" % ns, params={"key": "t"})
    eq(r.text, '{"found":false,"namespace":"exp-kv","key":"t"}\n',
       "kv: 31 s after the set, get answers found:false")
    st, dt = poll(lambda: s.call("GET", "/v1/kv/" + ns).json or {},
                  lambda st: st.get("expired") == 1)
    comment("kv: the idle sweep counted the expiry after %.2f s" % dt)
    eq((st.get("keys"), st.get("expired")), (1, 1),
       "kv: after the idle sweep (no write) stats say keys 1, expired 1")
    lines, total = poll_log(log, "values")
    ok(lines > 0 and total["values"] >= 1, "kv: the casqd log has a swept: line with the value",
       "swept lines %d, counts %r" % (lines, total))
    r = s.call("GET", "/v1/kv/%s/set" % ns, params={"key": "t", "value": "w", "cas": 0})
    eq((r.get("ok"), r.get("version")), (True, 2),
       "kv: set cas=0 succeeds, with a version above the expired one (2)")
    r = s.call("GET", "/v1/kv/%s/incr" % ns, params={"key": "c", "ttl": 10})
    s.advance(11)
    r = s.call("GET", "/v1/kv/%s/incr" % ns, params={"key": "c"})
    eq(r.get("value"), 1, "kv: incr after its ttl starts from 0 again")
    r = s.call("GET", "/v1/kv/%s/delete" % ns, params={"key": "keep"})
    eq(r.get("ok"), True, "kv: a value without ttl never expires")


def once_ttl(s):
    r = s.call("GET", "/v1/once/exp-once", params={"id": "a", "ttl": 30})
    eq(r.get("first"), True, "once: the first call opens a 30 s window")
    s.advance(29.5)
    r = s.call("GET", "/v1/once/exp-once", params={"id": "a"})
    eq((r.get("first"), r.get("count")), (False, 2), "once: 29.5 s later still the same window")
    s.advance(1)
    r = s.call("GET", "/v1/once/exp-once", params={"id": "a"})
    ok(r.get("first") is True, "once: 30.5 s after the first call: first:true again", "got %r" % r)


def leases(s):
    q = "exp-lease"
    s.call("GET", "/v1/queues/%s/enqueue" % q, params={"key": "j"})
    w = s.call("GET", "/v1/queues/%s/claim" % q, params={"key": "j", "claimant": "a", "lease": 30})
    eq((w.get("claimed"), w.get("attempt")), (True, 1), "lease: claimed with lease=30")
    tok = w.get("token")
    s.advance(29)
    r = s.call("GET", "/v1/queues/%s/status" % q, params={"key": "j"})
    eq(r.get("state"), "leased", "lease: 29 s later the item is still leased")
    log = Log(s)
    s.advance(2)
    r = s.call("GET", "/v1/queues/%s/status" % q, params={"key": "j"})
    eq((r.get("queued"), r.get("state")), (True, "ready"), "lease: 31 s after the claim, status says ready")
    st, dt = poll(lambda: s.call("GET", "/v1/queues/" + q).json or {},
                  lambda st: st.get("expired") == 1)
    comment("lease: the idle sweep turned the lease back after %.2f s" % dt)
    eq((st.get("ready"), st.get("leased"), st.get("expired")), (1, 0, 1),
       "lease: after the idle sweep (no claim) stats say ready 1, leased 0, expired 1")
    lines, total = poll_log(log, "leases")
    ok(lines > 0 and total["leases"] >= 1, "lease: the casqd log has a swept: line with the lease",
       "swept lines %d, counts %r" % (lines, total))
    r = s.call("GET", "/v1/queues/%s/ack" % q, params={"key": "j", "token": tok})
    eq(r.text, '{"acked":false,"queue":"exp-lease","key":"j","reason":"lease_expired"}\n',
       "lease: ack with the old token answers lease_expired")
    r = s.call("GET", "/v1/queues/%s/release" % q, params={"key": "j", "token": tok})
    eq((r.get("released"), r.get("reason")), (False, "lease_expired"),
       "lease: release with the old token answers lease_expired")
    w2 = s.call("GET", "/v1/queues/%s/claim" % q, params={"key": "j", "claimant": "b", "lease": 30})
    ok(w2.get("claimed") is True and w2.get("attempt") == 2 and w2.get("token") != tok,
       "lease: the reclaim wins with attempt 2 and a new token", "got %r" % w2)
    r = s.call("GET", "/v1/queues/%s/ack" % q, params={"key": "j", "token": tok})
    eq(r.get("reason"), "token_mismatch", "lease: the old token now answers token_mismatch")
    r = s.call("GET", "/v1/queues/%s/ack" % q, params={"key": "j", "token": w2.get("token")})
    eq(r.get("acked"), True, "lease: the new holder acks")


def delayed(s):
    q = "exp-delay"
    r = s.call("GET", "/v1/queues/%s/enqueue" % q, params={"key": "d", "delay": 60})
    eq((r.get("enqueued"), r.get("state")), (True, "ready"), "delay: enqueued with delay=60")
    r = s.call("GET", "/v1/queues/%s/pop" % q)
    eq((r.get("claimed"), r.get("reason")), (False, "empty"), "delay: a pop says empty")
    r = s.call("GET", "/v1/queues/%s/claim" % q, params={"key": "d"})
    eq(r.text, '{"claimed":false,"queue":"exp-delay","key":"d","reason":"not_ready"}\n',
       "delay: a claim by key says not_ready")
    s.advance(59)
    r = s.call("GET", "/v1/queues/%s/pop" % q)
    eq(r.get("reason"), "empty", "delay: 59 s later a pop still says empty")
    s.advance(2)
    r = s.call("GET", "/v1/queues/%s/pop" % q, params={"claimant": "late"})
    eq((r.get("claimed"), r.get("key"), r.get("attempt")), (True, "d", 1),
       "delay: 61 s after the enqueue a pop wins the item")


def claim_records(s):
    q = "exp-claim"
    s.call("GET", "/v1/queues/%s/enqueue" % q, params={"key": "c"})
    r = s.call("GET", "/v1/queues/%s/claim" % q, params={"key": "c", "claimant": "taker"})
    eq(r.get("claimed"), True, "claim record: consumed by a claim without lease")
    r = s.call("GET", "/v1/queues/%s/status" % q, params={"key": "c"})
    eq((r.get("state"), r.get("owner")), ("claimed", "taker"), "claim record: status claimed, owner taker")
    s.advance(24 * 3600 - 10)
    r = s.call("GET", "/v1/queues/%s/claim" % q, params={"key": "c"})
    eq((r.get("reason"), r.get("owner")), ("claimed", "taker"),
       "claim record: 10 s short of 24 h a late claim still learns the owner")
    log = Log(s)
    s.advance(11)
    r, dt = poll(lambda: s.call("GET", "/v1/queues/%s/status" % q, params={"key": "c"}),
                 lambda r: r.get("state") == "absent")
    eq(r.text, '{"queued":false,"queue":"exp-claim","key":"c","state":"absent","attempts":0}\n',
       "claim record: 24 h + 1 s after the claim, status says absent")
    lines, total = poll_log(log, "claims")
    ok(lines > 0 and total["claims"] >= 1, "claim record: the casqd log has a swept: line with the claim record",
       "swept lines %d, counts %r" % (lines, total))
    r = s.call("GET", "/v1/queues/%s/claim" % q, params={"key": "c"})
    eq(r.get("reason"), "not_queued", "claim record: a late claim now says not_queued")


def request_ids(s):
    path = "/v1/kv/exp-idem/incr"
    a = s.call("GET", path, params={"key": "n", "request_id": "r1"})
    s.advance(IDEM_TTL - 1)
    b = s.call("GET", path, params={"key": "n", "request_id": "r1"})
    ok(a.raw == b.raw and a.get("value") == 1, "request id: %d s later the retry replays value 1" % (IDEM_TTL - 1),
       "first %r, retry %r" % (a, b))
    log = Log(s)
    s.advance(2)
    lines, total = poll_log(log, "responses")
    ok(lines > 0 and total["responses"] >= 1,
       "request id: the idle sweep dropped the stored answer (swept: line)",
       "swept lines %d, counts %r" % (lines, total))
    c = s.call("GET", path, params={"key": "n", "request_id": "r1"})
    eq(c.get("value"), 2, "request id: %d s after the first use the same id runs again (2)" % (IDEM_TTL + 1))


def main():
    t = time.monotonic()
    with Stack(workers=2, test_clock=True,
               extra_args=["--idempotency-ttl", str(IDEM_TTL)]) as s:
        if not s.test_clock_works():
            skip_all("casqd built without --enable-test-clock")
        for fn in (kv_ttl, once_ttl, leases, delayed, claim_records, request_ids):
            t1 = time.monotonic()
            fn(s)
            comment("%s: %.2f s" % (fn.__name__, time.monotonic() - t1))
        with open(s.casqd_log, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        n = len(SWEPT_RE.findall(text))
        ok(n > 0, "the casqd log has swept: lines (%d)" % n)
    comment("total %.1f s" % (time.monotonic() - t))


run_main(main)
