#!/usr/bin/env python3
"""Retries with request ids through nginx + TLS + FastCGI + casqd + LMDB:
for enqueue, claim, ack, set, incr and once, the same request id (as the
request_id parameter or the Idempotency-Key header) returns the first
answer byte for byte and the effect happens once; the same id with other
parameters is 422 Request Id Reused; a parameter and a header that differ
are 400 Bad Request Id; errors are not stored; ids belong to the API
key's name; 50 concurrent duplicates serialise; and, with a test-clock
build, an id is forgotten after --idempotency-ttl."""

import collections
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (Stack, comment, eq, ok, run_main,  # noqa: E402
                      run_threads, skip)

IDEM_TTL = 60
N_DUP = 50
REUSED = (422, "Request Id Reused", '{"error":"request_id_reused","message":"this request id was used with other parameters"}\n')
BAD_ID = (400, "Bad Request Id", '{"error":"bad_request_id","message":"request_id / Idempotency-Key must be 1-200 bytes of UTF-8, and the same if both are sent"}\n')


class Sender:
    """Sends a request with a request id in one of two ways."""

    def __init__(self, s, mode):
        self.s, self.mode = s, mode

    def __call__(self, path, rid, params, key=Ellipsis):
        params = dict(params)
        headers = None
        if self.mode == "param":
            params["request_id"] = rid
        else:
            headers = {"Idempotency-Key": rid}
        return self.s.call("GET", path, params=params, headers=headers, key=key)


def same(a, b, what):
    ok(a.status == 200 and b.status == 200 and a.raw == b.raw,
       what + ": the retry's answer is byte-identical", "first %r, retry %r" % (a, b))


def stats(s, queue):
    return s.call("GET", "/v1/queues/" + queue).json or {}


def per_op(s, mode):
    send = Sender(s, mode)
    m = mode
    q = "idem-" + m

    # enqueue: a plain duplicate would answer enqueued:false
    a = send("/v1/queues/%s/enqueue" % q, m + "-enq", {"key": "e1", "payload": "p"})
    b = send("/v1/queues/%s/enqueue" % q, m + "-enq", {"key": "e1", "payload": "p"})
    ok(a.get("enqueued") is True, "%s enqueue: the first answer is enqueued:true" % m, "got %r" % a)
    same(a, b, "%s enqueue" % m)
    c = s.call("GET", "/v1/queues/%s/enqueue" % q, params={"key": "e1", "payload": "p"})
    eq(c.get("enqueued"), False, "%s enqueue: the same enqueue without an id answers enqueued:false" % m)
    eq(stats(s, q).get("enqueued"), 1, "%s enqueue: one enqueue happened" % m)

    # claim: the retry gets the original win and token; a fresh claim loses
    a = send("/v1/queues/%s/claim" % q, m + "-claim", {"key": "e1", "claimant": "alice"})
    b = send("/v1/queues/%s/claim" % q, m + "-claim", {"key": "e1", "claimant": "alice"})
    ok(a.get("claimed") is True and len(a.get("token") or "") == 32,
       "%s claim: the first claim wins" % m, "got %r" % a)
    same(a, b, "%s claim (same token)" % m)
    c = send("/v1/queues/%s/claim" % q, m + "-claim-2", {"key": "e1", "claimant": "alice"})
    eq((c.get("claimed"), c.get("reason"), c.get("owner")), (False, "claimed", "alice"),
       "%s claim: the same claim with another id loses" % m)
    eq(stats(s, q).get("claimed"), 1, "%s claim: one winning claim in the stats" % m)

    # ack: a second real ack would answer not_leased
    send("/v1/queues/%s/enqueue" % q, m + "-enq2", {"key": "e2"})
    w = s.call("GET", "/v1/queues/%s/claim" % q, params={"key": "e2", "lease": 60})
    tok = w.get("token")
    a = send("/v1/queues/%s/ack" % q, m + "-ack", {"key": "e2", "token": tok})
    b = send("/v1/queues/%s/ack" % q, m + "-ack", {"key": "e2", "token": tok})
    eq(a.get("acked"), True, "%s ack: the first ack succeeds" % m)
    same(a, b, "%s ack" % m)
    c = s.call("GET", "/v1/queues/%s/ack" % q, params={"key": "e2", "token": tok})
    eq((c.get("acked"), c.get("reason")), (False, "not_leased"),
       "%s ack: the same ack without an id answers not_leased" % m)
    eq(stats(s, q).get("acked"), 1, "%s ack: one ack in the stats" % m)

    # set with cas=0: a plain retry would be a version_mismatch
    ns = "idem-" + m
    a = send("/v1/kv/%s/set" % ns, m + "-set", {"key": "s", "value": "v", "cas": 0})
    b = send("/v1/kv/%s/set" % ns, m + "-set", {"key": "s", "value": "v", "cas": 0})
    eq((a.get("ok"), a.get("version")), (True, 1), "%s set: the first set writes version 1" % m)
    same(a, b, "%s set" % m)
    g = s.call("GET", "/v1/kv/%s/get" % ns, params={"key": "s"})
    eq(g.get("version"), 1, "%s set: still version 1 (written once)" % m)

    # incr
    a = send("/v1/kv/%s/incr" % ns, m + "-incr", {"key": "n"})
    b = send("/v1/kv/%s/incr" % ns, m + "-incr", {"key": "n"})
    eq(a.get("value"), 1, "%s incr: the first incr answers 1" % m)
    same(a, b, "%s incr (value 1 both times)" % m)
    c = s.call("GET", "/v1/kv/%s/incr" % ns, params={"key": "n"})
    eq(c.get("value"), 2, "%s incr: the next incr without an id answers 2" % m)

    # once
    a = send("/v1/once/" + ns, m + "-once", {"id": "x"})
    b = send("/v1/once/" + ns, m + "-once", {"id": "x"})
    eq(a.get("first"), True, "%s once: the first call is first:true" % m)
    same(a, b, "%s once (first:true both times)" % m)
    c = s.call("GET", "/v1/once/" + ns, params={"id": "x"})
    eq((c.get("first"), c.get("count")), (False, 2), "%s once: the next call without an id counts 2" % m)
    st = s.call("GET", "/v1/kv/" + ns).json or {}
    eq((st.get("sets"), st.get("incrs")), (1, 2), "%s: namespace stats sets 1, incrs 2" % m)


def mixed(s):
    """The parameter and the header name the same id; what is reused."""
    path = "/v1/kv/idem-mix/incr"
    a = s.call("GET", path, params={"key": "n", "request_id": "mix-1"})
    b = s.call("GET", path, params={"key": "n"}, headers={"Idempotency-Key": "mix-1"})
    same(a, b, "id sent as a parameter, retried as a header")
    c = s.call("GET", path, params={"key": "n", "request_id": "mix-1"}, headers={"Idempotency-Key": "mix-1"})
    same(a, c, "id sent as both, equal")
    d = s.call("POST", path, body={"key": "n", "request_id": "mix-1"})
    same(a, d, "the same id and parameters from a JSON body")
    r = s.call("GET", path, params={"key": "n", "request_id": "mix-2"}, headers={"Idempotency-Key": "mix-3"})
    eq((r.status, r.reason, r.text), BAD_ID, "parameter and header differ: 400 Bad Request Id")
    for bad, what in (("", "an empty request_id"), ("x" * 201, "a 201-byte request_id")):
        r = s.call("GET", path, params={"key": "n", "request_id": bad})
        eq((r.status, r.reason, r.text), BAD_ID, "%s: 400 Bad Request Id" % what)
    r = s.call("GET", path, params={"key": "n"}, headers={"Idempotency-Key": "y" * 201})
    eq((r.status, r.reason, r.text), BAD_ID, "a 201-byte Idempotency-Key: 400 Bad Request Id")
    r = s.call("GET", path, params={"key": "n", "request_id": "z" * 200})
    eq(r.status, 200, "a 200-byte request_id is accepted")
    eq(s.call("GET", "/v1/kv/idem-mix/get", params={"key": "n"}).get("value"), 2,
       "only the two incrs with valid new ids ran (value 2)")

    # same id, other parameters or another route: 422, nothing runs
    r = s.call("GET", path, params={"key": "n", "by": 5, "request_id": "mix-1"})
    eq((r.status, r.reason, r.text), REUSED, "same id with by=5 added: 422 Request Id Reused")
    r = s.call("GET", path, params={"key": "m", "request_id": "mix-1"})
    eq((r.status, r.reason, r.text), REUSED, "same id with another key: 422")
    r = s.call("GET", "/v1/once/idem-mix", params={"id": "n", "request_id": "mix-1"})
    eq((r.status, r.reason, r.text), REUSED, "same id on another route: 422")
    r = s.call("GET", "/v1/kv/idem-mix/delete", params={"key": "n", "request_id": "mix-1"})
    eq((r.status, r.reason, r.text), REUSED, "same id on delete of the same key: 422")
    g = s.call("GET", "/v1/kv/idem-mix/get", params={"key": "n"})
    eq((g.get("value"), g.get("version")), (2, 2), "no refused request ran (value 2, version 2)")
    eq(s.call("GET", "/v1/kv/idem-mix/get", params={"key": "m"}).get("found"), False,
       "the refused incr of key m created nothing")
    r = s.call("GET", "/v1/once/idem-mix", params={"id": "q"})
    eq(r.get("first"), True, "the refused once call opened no window")
    # parameter order and source do not matter
    a = s.call("GET", path, params="key=p&by=2&request_id=ord-1")
    b = s.call("POST", path + "?by=2", body={"request_id": "ord-1", "key": "p"})
    same(a, b, "parameters in another order, split over query and body")

    # errors are not stored: after the cause is fixed, the same id runs
    s.call("POST", "/v1/kv/idem-mix/set", body={"key": "nc", "value": "abc"})
    r = s.call("GET", "/v1/kv/idem-mix/incr", params={"key": "nc", "request_id": "err-1"})
    eq((r.status, r.reason), (409, "Not A Counter"), "incr of a non-counter with an id: 409")
    s.call("POST", "/v1/kv/idem-mix/set", body={"key": "nc", "value": 10})
    r = s.call("GET", "/v1/kv/idem-mix/incr", params={"key": "nc", "request_id": "err-1"})
    eq((r.status, r.get("value")), (200, 11), "the same id after the error runs (value 11)")
    r = s.call("GET", "/v1/kv/idem-mix/incr", params={"key": "nc", "request_id": "err-1"})
    eq(r.get("value"), 11, "... and is then stored (retry answers 11 again)")

    # read routes check the id and otherwise ignore it
    a = s.call("GET", "/v1/kv/idem-mix/get", params={"key": "nc", "request_id": "read-1"})
    s.call("GET", "/v1/kv/idem-mix/incr", params={"key": "nc"})
    b = s.call("GET", "/v1/kv/idem-mix/get", params={"key": "nc", "request_id": "read-1"})
    eq((a.get("value"), b.get("value")), (11, 12), "get with the same id twice is not replayed")
    r = s.call("GET", "/v1/kv/idem-mix/get", params={"key": "nc", "request_id": ""})
    eq((r.status, r.reason), (400, "Bad Request Id"), "a read checks the id (empty: 400)")
    r = s.call("GET", "/v1/kv/idem-mix/incr", params={"key": "nc", "request_id": "read-1"})
    eq(r.get("value"), 13, "an id used only by reads is still free for a write")


def per_key(s):
    key2 = s.add_key("other")
    path = "/v1/kv/idem-keys/incr"
    a = s.call("GET", path, params={"key": "n", "request_id": "shared"})
    b = s.call("GET", path, params={"key": "n", "request_id": "shared"}, key=key2)
    eq((a.get("value"), b.get("value")), (1, 2),
       "the same id under another key's name runs again (1, then 2)")
    c = s.call("GET", path, params={"key": "n", "request_id": "shared"}, key=key2)
    same(b, c, "the second key's retry replays its own answer")
    d = s.call("GET", path, params={"key": "n", "request_id": "shared"})
    same(a, d, "the first key's retry replays its own answer")
    r = s.call("GET", path, params={"key": "n", "by": 3, "request_id": "shared"}, key=key2)
    eq(r.status, 422, "reuse with other parameters is refused per key too")
    r = s.call("GET", path, params={"key": "n", "request_id": "only-other"}, key=key2)
    r2 = s.call("GET", path, params={"key": "n", "by": 7, "request_id": "only-other"})
    eq((r.get("value"), r2.get("value")), (3, 10),
       "an id used by one key, with other parameters by another key: both run")


def concurrent(s):
    barrier = threading.Barrier(N_DUP, timeout=60)
    results = [None] * N_DUP

    def dup(i):
        c = s.client(timeout=60)
        try:
            c.connect()
            barrier.wait()
            results[i] = c.call("GET", "/v1/kv/idem-dup/incr",
                                params={"key": "n", "request_id": "dup-1"})
        finally:
            c.close()
    t = time.monotonic()
    errs = run_threads(N_DUP, dup)
    comment("concurrent: %d duplicates in %.2f s" % (N_DUP, time.monotonic() - t))
    eq(errs, [], "concurrent: every thread finished without an exception")
    got = [r for r in results if r is not None]
    eq(collections.Counter(r.status for r in got), collections.Counter({200: N_DUP}),
       "concurrent: all %d answered 200" % N_DUP)
    bodies = collections.Counter(r.raw for r in got)
    eq(len(bodies), 1, "concurrent: all %d bodies identical" % N_DUP)
    ok(got and got[0].get("value") == 1, "concurrent: the body is value 1", "got %r" % bodies)
    g = s.call("GET", "/v1/kv/idem-dup/get", params={"key": "n"})
    eq((g.get("value"), g.get("version")), (1, 1), "concurrent: the counter was incremented once")


def retention(s, works):
    name = "with the test clock: an id is forgotten after --idempotency-ttl"
    if not works:
        skip(name, "casqd built without --enable-test-clock")
        return
    path = "/v1/kv/idem-ret/incr"
    a = s.call("GET", path, params={"key": "n", "request_id": "ret-1"})
    s.advance(IDEM_TTL - 1)
    b = s.call("GET", path, params={"key": "n", "request_id": "ret-1"})
    same(a, b, "retention: %d s later the id is still known" % (IDEM_TTL - 1))
    r = s.call("GET", path, params={"key": "n", "by": 2, "request_id": "ret-1"})
    eq(r.status, 422, "retention: and still refuses other parameters")
    s.advance(2)
    c = s.call("GET", path, params={"key": "n", "request_id": "ret-1"})
    eq((a.get("value"), c.get("value")), (1, 2),
       "retention: %d s after the first use the same id runs again (1, then 2)" % (IDEM_TTL + 1))
    d = s.call("GET", path, params={"key": "n", "request_id": "ret-1"})
    same(c, d, "retention: the new run is stored in turn")
    s.advance(IDEM_TTL + 1)
    e = s.call("GET", path, params={"key": "n", "by": 5, "request_id": "ret-1"})
    eq((e.status, e.get("value")), (200, 7), "retention: past it, the id can carry other parameters")


def main():
    t = time.monotonic()
    with Stack(workers=2, test_clock=True,
               extra_args=["--idempotency-ttl", str(IDEM_TTL)]) as s:
        works = s.test_clock_works()
        comment("test clock %s" % ("works" if works else "has no effect (not a test build)"))
        steps = [(per_op, (s, "param")), (per_op, (s, "header")), (mixed, (s,)),
                 (concurrent, (s,)), (per_key, (s,)), (retention, (s, works))]
        for fn, args in steps:
            t1 = time.monotonic()
            fn(*args)
            comment("%s%s: %.2f s" % (fn.__name__, "" if len(args) < 2 else " " + str(args[1]),
                                      time.monotonic() - t1))
    comment("total %.1f s" % (time.monotonic() - t))


run_main(main)
