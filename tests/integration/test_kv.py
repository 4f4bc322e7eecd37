#!/usr/bin/env python3
"""Values and counters through nginx + TLS + FastCGI + casqd + LMDB:
get/set/delete/incr with exact answers and key order, versions and
compare-and-swap (including after delete and re-create), value types,
limits, incr's by/mod/size, namespace stats, parameter errors; then two
races: 32 connections doing get -> set(cas) increments, and 32
connections doing incr."""

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
                      run_threads)

SET_OK = ["ok", "namespace", "key", "version", "updated_at"]
SET_OK_TTL = SET_OK + ["expires_at"]
SET_NO = ["ok", "namespace", "key", "version", "reason"]
DEL_OK = ["ok", "namespace", "key", "version"]
GET_OK = ["found", "namespace", "key", "value", "version", "updated_at"]
GET_OK_TTL = GET_OK + ["expires_at"]
GET_NO = ["found", "namespace", "key"]
INCR = ["value", "namespace", "key", "version"]
STATS = ["namespace", "keys", "sets", "deletes", "incrs", "cas_failures", "expired"]

CAS_THREADS, CAS_EACH = 32, 20
INCR_THREADS, INCR_EACH = 32, 50


def epoch(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def is_now(v, want, slack=3):
    return isinstance(v, str) and bool(ISO_RE.match(v)) and abs(epoch(v) - want) <= slack


def answer(r, what, keys, start=None, text=None):
    """200 application/json, key order, and the literal start or the whole
    text (without the final newline)."""
    ok(r.status == 200 and r.ctype() == "application/json", what + ": 200 application/json",
       "got %r" % r)
    eq(r.keys(), keys, what + ": key order")
    if text is not None:
        eq(r.text, text + "\n", what + ": exact body")
    elif start is not None:
        ok(r.text.startswith(start), what + ": starts with " + start, "got %r" % r.text)


def error(r, what, status, reason, code, message):
    eq((r.status, r.reason), (status, reason), what + ": %d %s" % (status, reason))
    eq(r.text, json.dumps({"error": code, "message": message}, separators=(",", ":")) + "\n",
       what + ": error body")


def basics(s):
    ns = "kvbasic"
    kv = lambda op, **p: s.call("GET", "/v1/kv/%s/%s" % (ns, op), params=p)  # noqa: E731

    r = kv("get", key="k")
    answer(r, "get before any write", GET_NO, text='{"found":false,"namespace":"kvbasic","key":"k"}')
    r = s.call("GET", "/v1/kv/" + ns)
    error(r, "stats of a namespace only read so far", 404, "No Such Namespace",
          "no_such_namespace", "no value was ever written in this namespace")

    # ---------------------------------------------------------- set / get
    t0 = time.time()
    r = kv("set", key="k", value="hello")
    answer(r, "set new", SET_OK, start='{"ok":true,"namespace":"kvbasic","key":"k","version":1,"updated_at":"')
    ok(is_now(r.get("updated_at"), t0), "set new: updated_at is now", "got %r" % r.get("updated_at"))
    upd = r.get("updated_at")
    r = kv("get", key="k")
    answer(r, "get after set", GET_OK,
           text='{"found":true,"namespace":"kvbasic","key":"k","value":"hello","version":1,"updated_at":"%s"}' % upd)

    versions = [1]
    for i in range(2, 6):
        r = kv("set", key="k", value="v%d" % i)
        versions.append(r.get("version"))
    eq(versions, [1, 2, 3, 4, 5], "set: versions 1..5 for five writes (one more per write)")
    r = kv("get", key="k")
    eq((r.get("value"), r.get("version")), ("v5", 5), "get: the last value at version 5")

    # ---------------------------------------------------------- ttl
    t0 = time.time()
    r = kv("set", key="t", value="x", ttl=120)
    answer(r, "set with ttl", SET_OK_TTL, start='{"ok":true,"namespace":"kvbasic","key":"t","version":1,"updated_at":"')
    ok(is_now(r.get("expires_at"), t0 + 120), "set with ttl=120: expires_at is now+120 s",
       "got %r" % r.get("expires_at"))
    exp = r.get("expires_at")
    r = kv("get", key="t")
    answer(r, "get with ttl", GET_OK_TTL)
    eq(r.get("expires_at"), exp, "get with ttl: expires_at as set")
    r = kv("set", key="t", value="y")
    eq((r.keys(), r.get("expires_at"), r.get("version")), (SET_OK_TTL, exp, 2),
       "set without ttl keeps the value's expiry")
    r = kv("set", key="t", value="z", ttl=3600)
    ok(is_now(r.get("expires_at"), t0 + 3600), "set with a new ttl replaces the expiry",
       "got %r" % r.get("expires_at"))

    # ---------------------------------------------------------- cas
    r = kv("set", key="k", value="nope", cas=0)
    answer(r, "set cas=0 on an existing key", SET_NO,
           text='{"ok":false,"namespace":"kvbasic","key":"k","version":5,"reason":"version_mismatch"}')
    r = kv("set", key="c0", value="first", cas=0)
    answer(r, "set cas=0 on an absent key", SET_OK,
           start='{"ok":true,"namespace":"kvbasic","key":"c0","version":1,')
    r = kv("set", key="c0", value="second", cas=0)
    eq((r.get("ok"), r.get("version"), r.get("reason")), (False, 1, "version_mismatch"),
       "set cas=0 a second time: version_mismatch, current version 1")
    eq(kv("get", key="c0").get("value"), "first", "a refused cas=0 set changed nothing")

    r = kv("set", key="k", value="v6", cas=5)
    eq((r.get("ok"), r.get("version")), (True, 6), "set cas=5 (current): written as version 6")
    r = kv("set", key="k", value="stale", cas=5)
    answer(r, "set with a stale cas", SET_NO,
           text='{"ok":false,"namespace":"kvbasic","key":"k","version":6,"reason":"version_mismatch"}')
    r = kv("set", key="k", value="future", cas=7)
    eq((r.get("ok"), r.get("version"), r.get("reason")), (False, 6, "version_mismatch"),
       "set with a cas above the current version: version_mismatch")
    r = kv("set", key="never", value="x", cas=3)
    answer(r, "set cas=3 on an absent key", SET_NO,
           text='{"ok":false,"namespace":"kvbasic","key":"never","version":0,"reason":"version_mismatch"}')
    eq(kv("get", key="never").get("found"), False, "the refused set created nothing")

    # ---------------------------------------------------------- delete
    r = kv("delete", key="k", cas=4)
    answer(r, "delete with a stale cas", SET_NO,
           text='{"ok":false,"namespace":"kvbasic","key":"k","version":6,"reason":"version_mismatch"}')
    r = kv("delete", key="k", cas=6)
    answer(r, "delete cas=6 (current)", DEL_OK, text='{"ok":true,"namespace":"kvbasic","key":"k","version":6}')
    r = kv("delete", key="k")
    answer(r, "delete again", SET_NO,
           text='{"ok":false,"namespace":"kvbasic","key":"k","version":0,"reason":"not_found"}')
    r = kv("get", key="k")
    answer(r, "get after delete", GET_NO, text='{"found":false,"namespace":"kvbasic","key":"k"}')
    r = kv("set", key="k", value="again", cas=6)
    eq((r.get("ok"), r.get("version"), r.get("reason")), (False, 0, "version_mismatch"),
       "set cas=6 on the deleted key: version_mismatch, version 0")

    # re-create: the version is above every version the key ever had
    r = kv("set", key="k", value="reborn", cas=0)
    v = r.get("version")
    ok(r.get("ok") is True and isinstance(v, int) and v > 6,
       "re-created key: version above 6 (every earlier version)", "got %r" % r)
    seen = set(range(1, 7))
    stale_ok = []
    for old in range(1, 7):
        r = kv("set", key="k", value="stale", cas=old)
        if r.get("ok") is not False:
            stale_ok.append((old, r.text.strip()))
    eq(stale_ok, [], "every cas read before the delete (1..6) fails after the re-create")
    later = []
    for i in range(8):
        r = kv("set", key="k", value="w%d" % i)
        later.append(r.get("version"))
    eq(later, list(range(v + 1, v + 9)), "after the re-create versions keep growing by 1")
    eq(sorted(seen & set(later)), [], "no version number is seen twice for the key")

    # delete with cas of an absent key
    r = kv("delete", key="absent", cas=0)
    eq((r.get("ok"), r.get("version"), r.get("reason")), (False, 0, "not_found"),
       "delete cas=0 of an absent key: not_found")

    # ---------------------------------------------------------- value types
    types = [("obj", {"plan": "team", "n": [1, 2, {"x": None}]}, '{"plan":"team","n":[1,2,{"x":null}]}'),
             ("arr", [1, "two", 3.5, False], '[1,"two",3.5,false]'),
             ("num", 1234, "1234"),
             ("neg", -7.25, "-7.25"),
             ("bool", True, "true"),
             ("str", "hi \"there\"", '"hi \\"there\\""'),
             ("numstr", "5", '"5"')]
    for k, val, raw in types:
        r = s.call("POST", "/v1/kv/%s/set" % ns, body={"key": k, "value": val})
        eq(r.get("ok"), True, "set %s from a JSON body" % k)
        r = kv("get", key=k)
        ok(r.json is not None and r.get("value") == val and type(r.get("value")) is type(val)
           and ('"value":%s,"version"' % raw) in r.text,
           "get %s: the JSON value %s handed back as stored" % (k, raw), "got %r" % r.text)
    r = s.call("POST", "/v1/kv/%s/set" % ns, body="key=form&value=42",
               content_type="application/x-www-form-urlencoded")
    eq(r.get("ok"), True, "set from a form body")
    r = kv("get", key="form")
    ok('"value":"42"' in r.text and r.get("value") == "42",
       "a form value is stored as the JSON string \"42\"", "got %r" % r.text)
    r = kv("get", key="str")
    eq(r.get("value"), 'hi "there"', "a JSON string value round-trips")
    r = s.call("POST", "/v1/kv/%s/set" % ns, body='{"key":"ws","value": { "a" : [ 1 , 2 ] } }',
               content_type="application/json")
    r = kv("get", key="ws")
    ok('"value":{"a":[1,2]},' in r.text, "a JSON value is stored compact (whitespace removed)",
       "got %r" % r.text)

    # ---------------------------------------------------------- limits
    r = s.call("POST", "/v1/kv/%s/set" % ns, body={"key": "big", "value": "x" * 16382})
    eq(r.get("ok"), True, "a value of 16384 bytes as JSON text (16382 + quotes) is accepted")
    eq(len(kv("get", key="big").get("value") or ""), 16382, "the 16384-byte value is stored whole")
    r = s.call("POST", "/v1/kv/%s/set" % ns, body={"key": "big2", "value": "x" * 16383})
    error(r, "a value of 16385 bytes", 413, "Value Too Large", "value_too_large",
          "value exceeds 16384 bytes")
    r = s.call("POST", "/v1/kv/%s/set" % ns, body={"key": "big2", "value": ["y" * 8000, "z" * 8400]})
    error(r, "an array value over 16384 bytes", 413, "Value Too Large", "value_too_large",
          "value exceeds 16384 bytes")
    eq(kv("get", key="big2").get("found"), False, "a refused value stored nothing")

    # ---------------------------------------------------------- namespace stats
    r = s.call("GET", "/v1/kv/" + ns)
    answer(r, "namespace stats", STATS, start='{"namespace":"kvbasic","keys":')
    st = r.json or {}
    comment("stats %s: %s" % (ns, r.text.strip()))
    # keys: t c0 k obj arr num neg bool str numstr form ws big = 13
    eq(st.get("keys"), 13, "stats: 13 keys stored")
    eq(st.get("deletes"), 1, "stats: 1 delete")
    eq(st.get("incrs"), 0, "stats: 0 incrs")
    eq(st.get("expired"), 0, "stats: 0 expired")
    # refusals: cas=0 k, cas=0 c0, stale 5, future 7, never 3, delete cas=4,
    # set cas=6 deleted, 6 stale cas after re-create = 13
    eq(st.get("cas_failures"), 13, "stats: 13 cas failures (sets and deletes)")
    # sets: k x5, t x3, c0, k cas=5, reborn, 8 more, 7 types, form, ws, big = 29
    eq(st.get("sets"), 29, "stats: 29 successful sets")
    r = s.call("GET", "/v1/kv/kvcasonly/set", params={"key": "a", "value": "x", "cas": 2})
    eq(r.get("reason"), "version_mismatch", "a cas failure in a new namespace")
    r = s.call("GET", "/v1/kv/kvcasonly")
    answer(r, "stats of a namespace with only a cas failure", STATS,
           text='{"namespace":"kvcasonly","keys":0,"sets":0,"deletes":0,"incrs":0,"cas_failures":1,"expired":0}')


def counters(s):
    ns = "ctr"
    kv = lambda op, **p: s.call("GET", "/v1/kv/%s/%s" % (ns, op), params=p)  # noqa: E731

    r = kv("incr", key="n")
    answer(r, "incr new", INCR, text='{"value":1,"namespace":"ctr","key":"n","version":1}')
    r = kv("incr", key="n", by=5)
    answer(r, "incr by=5", INCR, text='{"value":6,"namespace":"ctr","key":"n","version":2}')
    r = kv("incr", key="n", by=-10)
    answer(r, "incr by=-10", INCR, text='{"value":-4,"namespace":"ctr","key":"n","version":3}')
    r = s.call("POST", "/v1/kv/%s/incr" % ns, body={"key": "n", "by": 4})
    eq((r.get("value"), r.get("version")), (0, 4), "incr by=4 from a JSON body: 0, version 4")
    r = kv("get", key="n")
    ok('"value":0,"version":4,' in r.text, "get returns the counter as a JSON number", "got %r" % r.text)
    r = kv("incr", key="n", by=0)
    eq((r.get("value"), r.get("version")), (0, 5), "incr by=0: a write all the same (version 5)")

    slots, buckets = [], []
    for _ in range(7):
        r = kv("incr", key="rr", mod=3)
        slots.append((r.get("value"), r.get("slot")))
    eq(r.keys(), INCR + ["slot"], "incr with mod: key order")
    eq(slots, [(1, 1), (2, 2), (3, 0), (4, 1), (5, 2), (6, 0), (7, 1)],
       "incr mod=3 over 7 calls: slots 1,2,0,1,2,0,1 (round robin)")
    for _ in range(7):
        r = kv("incr", key="bk", size=3)
        buckets.append((r.get("value"), r.get("bucket")))
    eq(r.keys(), INCR + ["bucket"], "incr with size: key order")
    eq(buckets, [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 1), (7, 2)],
       "incr size=3 over 7 calls: buckets 0,0,0,1,1,1,2 (floor((v-1)/3))")
    r = kv("incr", key="both", by=6, mod=4, size=5)
    answer(r, "incr with mod and size", INCR + ["slot", "bucket"],
           text='{"value":6,"namespace":"ctr","key":"both","version":1,"slot":2,"bucket":1}')
    r = kv("incr", key="negs", by=-7, mod=3, size=2)
    eq((r.get("value"), r.get("slot"), r.get("bucket")), (-7, 2, -4),
       "incr to -7: slot 2 (mod 3, never negative), bucket floor(-8/2) = -4")
    low = -(2 ** 63)
    r = kv("incr", key="lowest", by=str(low), mod=1000000000, size=1000000000)
    eq((r.status, r.get("value"), r.get("slot"), r.get("bucket")),
       (200, low, low % 1000000000, (low - 1) // 1000000000),
       "incr to INT64_MIN: slot and bucket computed without overflow")
    r = kv("incr", key="lowest1", by=str(low), size=1)
    eq((r.status, r.get("value"), r.get("bucket")), (200, low, low - 1),
       "incr to INT64_MIN with size 1: bucket %d, below the int64 range" % (low - 1))

    # non-counters
    for k, body, what in (("s", {"key": "s", "value": "abc"}, "a JSON string"),
                          ("o", {"key": "o", "value": {"a": 1}}, "a JSON object"),
                          ("f", {"key": "f", "value": 1.5}, "a fractional number"),
                          ("b", {"key": "b", "value": True}, "a boolean")):
        s.call("POST", "/v1/kv/%s/set" % ns, body=body)
        r = kv("incr", key=k)
        error(r, "incr on %s" % what, 409, "Not A Counter", "not_a_counter",
              "the stored value is not an integer")
        g = kv("get", key=k)
        eq((g.get("value"), g.get("version")), (body["value"], 1),
           "incr on %s changed nothing" % what)
    r = s.call("POST", "/v1/kv/%s/set" % ns, body={"key": "big", "value": 9223372036854775806})
    r = kv("incr", key="big")
    eq(r.get("value"), 9223372036854775807, "incr up to 2^63-1")
    r = kv("incr", key="big")
    error(r, "incr past 2^63-1", 409, "Counter Overflow", "counter_overflow",
          "the counter would leave the 64-bit range")
    eq(kv("get", key="big").get("value"), 9223372036854775807, "the overflow changed nothing")

    # form-set "5" (stored as the JSON string "5") counts as a counter
    r = s.call("POST", "/v1/kv/%s/set" % ns, body="key=form5&value=5",
               content_type="application/x-www-form-urlencoded")
    ok('"value":"5"' in kv("get", key="form5").text, "a form value 5 is stored as the string \"5\"")
    r = kv("incr", key="form5")
    answer(r, "incr on a form-set \"5\"", INCR, text='{"value":6,"namespace":"ctr","key":"form5","version":2}')
    ok('"value":6,' in kv("get", key="form5").text, "after incr the value is the JSON number 6")
    r = s.call("POST", "/v1/kv/%s/set" % ns, body={"key": "num", "value": 41})
    r = kv("incr", key="num")
    eq(r.get("value"), 42, "incr on a JSON-set 41: 42")

    r = s.call("GET", "/v1/kv/" + ns)
    st = r.json or {}
    # n x5, rr x7, bk x7, both, negs, lowest, lowest1, big (not the overflow), form5, num = 26
    eq(st.get("incrs"), 26, "stats: 26 successful incrs (refused ones not counted)")


def errors(s):
    e = {
        "missing_key": (400, "Missing Key", "missing_key", "parameter 'key' is required"),
        "bad_key": (400, "Bad Key", "bad_key", "key must be 1-256 bytes of UTF-8 without NUL"),
        "missing_value": (400, "Missing Value", "missing_value", "parameter 'value' is required"),
        "bad_cas": (400, "Bad CAS", "bad_cas", "cas must be a version number, 0 or more"),
        "bad_ttl": (400, "Bad TTL", "bad_ttl", "ttl must be seconds, more than 0 and at most 31536000"),
        "bad_by": (400, "Bad Increment", "bad_by", "by must be an integer"),
        "bad_mod": (400, "Bad Mod", "bad_mod", "mod must be an integer from 1 to 1000000000"),
        "bad_size": (400, "Bad Size", "bad_size", "size must be an integer from 1 to 1000000000"),
        "bad_ns": (400, "Bad Namespace", "bad_namespace", "namespaces are 1-64 of A-Z a-z 0-9 . _ -"),
    }
    cases = [
        ("get", {}, "missing_key"), ("set", {"value": "x"}, "missing_key"),
        ("delete", {}, "missing_key"), ("incr", {}, "missing_key"),
        ("get", {"key": "x" * 257}, "bad_key"), ("set", {"key": "", "value": "x"}, "bad_key"),
        ("set", {"key": "a"}, "missing_value"),
        ("set", {"key": "a", "value": "x", "cas": "-1"}, "bad_cas"),
        ("set", {"key": "a", "value": "x", "cas": "x"}, "bad_cas"),
        ("set", {"key": "a", "value": "x", "cas": "1.0"}, "bad_cas"),
        ("delete", {"key": "a", "cas": "-1"}, "bad_cas"),
        ("set", {"key": "a", "value": "x", "ttl": "0"}, "bad_ttl"),
        ("set", {"key": "a", "value": "x", "ttl": "-5"}, "bad_ttl"),
        ("set", {"key": "a", "value": "x", "ttl": "abc"}, "bad_ttl"),
        ("set", {"key": "a", "value": "x", "ttl": "31536001"}, "bad_ttl"),
        ("set", {"key": "a", "value": "x", "ttl": "1.2345"}, "bad_ttl"),
        ("incr", {"key": "a", "ttl": "0"}, "bad_ttl"),
        ("incr", {"key": "a", "by": "x"}, "bad_by"),
        ("incr", {"key": "a", "by": "1.5"}, "bad_by"),
        ("incr", {"key": "a", "mod": "0"}, "bad_mod"),
        ("incr", {"key": "a", "mod": "-3"}, "bad_mod"),
        ("incr", {"key": "a", "mod": "1000000001"}, "bad_mod"),
        ("incr", {"key": "a", "size": "0"}, "bad_size"),
        ("incr", {"key": "a", "size": "x"}, "bad_size"),
    ]
    for op, params, which in cases:
        r = s.call("GET", "/v1/kv/kverr/%s" % op, params=params)
        error(r, "%s %s" % (op, params if len(repr(params)) < 80 else "(long key)"), *e[which])
    # order of checks: missing key before bad cas; bad cas before bad ttl
    r = s.call("GET", "/v1/kv/kverr/set", params={"cas": "x", "ttl": "0", "value": "v"})
    error(r, "set without key, bad cas and ttl: missing key first", *e["missing_key"])
    r = s.call("GET", "/v1/kv/kverr/set", params={"key": "a", "cas": "x", "ttl": "0"})
    error(r, "set with bad cas and bad ttl: bad cas first", *e["bad_cas"])
    r = s.call("GET", "/v1/kv/kverr/incr", params={"key": "a", "mod": "0", "size": "0"})
    error(r, "incr with bad mod and bad size: bad mod first", *e["bad_mod"])
    r = s.call("POST", "/v1/kv/kverr/set", body={"key": "a", "value": None})
    error(r, "set with \"value\":null", 400, "Null Parameter", "null_parameter",
          "parameter 'value' is null: send a value or leave the parameter out")
    r = s.call("POST", "/v1/kv/kverr/set", body={"key": "a"})
    error(r, "set without value", *e["missing_value"])
    for name in ("bad!ns", "x" * 65, "sp%20ace"):
        for op in ("get", "set", "incr", "delete"):
            r = s.call("GET", "/v1/kv/%s/%s" % (name, op), params={"key": "a", "value": "x"})
            error(r, "%s on namespace %r" % (op, name[:20]), *e["bad_ns"])
        r = s.call("GET", "/v1/kv/%s" % name)
        error(r, "stats of namespace %r" % name[:20], *e["bad_ns"])
    r = s.call("GET", "/v1/kv/kverr")
    error(r, "no error above created the namespace", 404, "No Such Namespace",
          "no_such_namespace", "no value was ever written in this namespace")


def race_cas(s):
    """32 connections each do 20 increments by get -> set(cas)."""
    ns, key = "kvrace", "c"
    r = s.call("POST", "/v1/kv/%s/set" % ns, body={"key": key, "value": 0, "cas": 0})
    eq((r.get("ok"), r.get("version")), (True, 1), "race cas: the first set creates version 1 (value 0)")
    lock = threading.Lock()
    wins = []              # (version written, value written)
    failures = collections.Counter()
    anomalies = []
    barrier = threading.Barrier(CAS_THREADS, timeout=60)

    def worker(i):
        c = s.client()
        try:
            c.connect()
            barrier.wait()
            done = 0
            while done < CAS_EACH:
                g = c.call("POST", "/v1/kv/%s/get" % ns, body={"key": key})
                if g.status != 200 or g.get("found") is not True:
                    anomalies.append("get: %r" % g)
                    return
                n, v = g.get("value"), g.get("version")
                r = c.call("POST", "/v1/kv/%s/set" % ns,
                           body={"key": key, "value": n + 1, "cas": v})
                if r.status != 200:
                    anomalies.append("set: %r" % r)
                    return
                if r.get("ok") is True:
                    with lock:
                        wins.append((r.get("version"), n + 1))
                    done += 1
                elif r.get("reason") == "version_mismatch" and isinstance(r.get("version"), int) \
                        and r.get("version") > v:
                    with lock:
                        failures[i] += 1
                else:
                    anomalies.append("set cas=%d: %r" % (v, r))
                    return
        finally:
            c.close()
    t = time.monotonic()
    errs = run_threads(CAS_THREADS, worker)
    dt = time.monotonic() - t
    nfail = sum(failures.values())
    comment("race cas: %d threads x %d increments in %.2f s; %d cas failures"
            % (CAS_THREADS, CAS_EACH, dt, nfail))
    total = CAS_THREADS * CAS_EACH
    eq(errs, [], "race cas: every thread finished without an exception")
    eq(anomalies[:3], [], "race cas: every answer was a get, a win or a version_mismatch with a newer version")
    g = s.call("GET", "/v1/kv/%s/get" % ns, params={"key": key})
    eq((g.get("value"), g.get("version")), (total, total + 1),
       "race cas: final value %d at version %d (no lost update)" % (total, total + 1))
    ok(nfail > 0, "race cas: contention was real (cas failures > 0)", "got %d" % nfail)
    vs = [1] + [v for v, _ in wins]
    dups = [v for v, n in collections.Counter(vs).items() if n > 1]
    eq(dups[:5], [], "race cas: no version was won twice (one winner per step)")
    eq(sorted(vs), list(range(1, total + 2)), "race cas: the winning versions are exactly 1..%d" % (total + 1))
    bad = [(v, n) for v, n in wins if n != v - 1]
    eq(bad[:5], [], "race cas: every winning set wrote value = version - 1 (read the value it replaced)")
    st = s.call("GET", "/v1/kv/" + ns).json or {}
    eq((st.get("sets"), st.get("cas_failures")), (total + 1, nfail),
       "race cas: stats sets %d, cas_failures = the %d failures seen" % (total + 1, nfail))


def race_incr(s):
    ns, key = "kvincr", "n"
    lock = threading.Lock()
    got = []
    anomalies = []
    barrier = threading.Barrier(INCR_THREADS, timeout=60)

    def worker(i):
        c = s.client()
        mine = []
        try:
            c.connect()
            barrier.wait()
            for _ in range(INCR_EACH):
                r = c.call("GET", "/v1/kv/%s/incr" % ns, params={"key": key})
                if r.status != 200 or not isinstance(r.get("value"), int):
                    anomalies.append(repr(r))
                    return
                mine.append((r.get("value"), r.get("version")))
        finally:
            c.close()
            with lock:
                got.extend(mine)
    t = time.monotonic()
    errs = run_threads(INCR_THREADS, worker)
    dt = time.monotonic() - t
    total = INCR_THREADS * INCR_EACH
    comment("race incr: %d threads x %d incr in %.2f s (%.0f/s)" % (INCR_THREADS, INCR_EACH, dt, total / dt))
    eq(errs, [], "race incr: every thread finished without an exception")
    eq(anomalies[:3], [], "race incr: every incr answered 200 with a value")
    g = s.call("GET", "/v1/kv/%s/get" % ns, params={"key": key})
    eq(g.get("value"), total, "race incr: final value %d" % total)
    values = [v for v, _ in got]
    eq(len(values), total, "race incr: %d answers" % total)
    eq(sorted(values), list(range(1, total + 1)), "race incr: the values returned are exactly 1..%d" % total)
    eq(sorted(v for _, v in got), list(range(1, total + 1)), "race incr: the versions returned are exactly 1..%d" % total)


def namespace_list(s):
    """/v1/kv: every namespace of the tenant in name order with its
    counters, paged with after like /v1/queues."""
    for ns in ("nl-b", "nl-a", "nl-c"):
        s.call("POST", "/v1/kv/%s/set" % ns, body={"key": "k", "value": 1})
    s.call("POST", "/v1/kv/nl-a/incr", body={"key": "n"})
    r = s.call("GET", "/v1/kv")
    answer(r, "namespace list", ["namespaces"], start='{"namespaces":[')
    names = [n.get("namespace") for n in r.get("namespaces") or []]
    eq(names, sorted(names), "namespace list: in name order")
    want = {k: v for k, v in (s.call("GET", "/v1/kv/nl-a").json or {}).items()
            if k != "version_floor"}
    got = [n for n in r.get("namespaces") or [] if n.get("namespace") == "nl-a"]
    eq(got, [want], "namespace list: nl-a's entry is its namespace stats")
    ok('{"namespace":"nl-a","keys":2,"sets":1,"deletes":0,"incrs":1,"cas_failures":0,"expired":0}'
       in r.text, "namespace list: key order as namespace stats", r.text)
    r = s.call("GET", "/v1/kv", params={"after": "nl-a"})
    eq([n.get("namespace") for n in r.get("namespaces") or []][:2], ["nl-b", "nl-c"],
       "namespace list after nl-a: nl-b, nl-c")
    r = s.call("GET", "/v1/kv", params={"after": "nl-c"})
    ok("nl-c" not in [n.get("namespace") for n in r.get("namespaces") or []],
       "namespace list after nl-c does not list nl-c")
    r = s.call("POST", "/v1/kv", body={"after": 5})
    eq((r.status, r.reason), (400, "Bad Parameter"), "namespace list: a numeric after is 400 Bad Parameter")
    r = s.call("GET", "/v1/kv", params={"key": "k"})
    eq((r.status, r.reason), (400, "Unknown Parameter"), "namespace list: key is 400 Unknown Parameter")


def main():
    t = time.monotonic()
    with Stack(workers=4) as s:
        for fn in (basics, counters, errors, race_cas, race_incr, namespace_list):
            t1 = time.monotonic()
            fn(s)
            comment("%s: %.2f s" % (fn.__name__, time.monotonic() - t1))
    comment("total %.1f s" % (time.monotonic() - t))


run_main(main)
