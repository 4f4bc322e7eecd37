#!/usr/bin/env python3
"""A mistyped webhook never acts on the wrong data. Each scenario is a slip
a Marketo template (or a hostile caller) can make, sent through nginx + TLS
+ FastCGI to casqd and LMDB: a misspelled or mis-cased parameter name, a
JSON null, a JSON template under a form Content-Type, a number with junk
after it, a misspelled queue name, request ids of two keys whose names
share a prefix, two calls whose parameters differ only in type. Each must
be refused (or answered as what it is) and leave every item, value and
window as it was."""

import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, casqd_path, eq, ok, run_main, tail  # noqa: E402

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def refused(r, status, reason, code, what):
    eq((r.status, r.reason, r.get("error")), (status, reason, code), what)


def ready_keys(s, queue, keys):
    """The state of each key of queue."""
    return [s.q(queue, "status", key=k).get("state") for k in keys]


def misspelled_key(s):
    """Key=lead3 (a capital K) once took lead1: the name was ignored and
    the claim became a pop."""
    q = "typo-key"
    for k in ("lead1", "lead2", "lead3"):
        s.q(q, "enqueue", key=k)
    r = s.call("POST", "/v1/queues/%s/claim" % q, body="Key=lead3&claimant=flow",
               content_type=FORM)
    refused(r, 400, "Unknown Parameter", "unknown_parameter", "claim with Key=lead3: 400 Unknown Parameter")
    ok("'Key'" in (r.get("message") or ""), "claim with Key=lead3: the message names 'Key'", r.text)
    r = s.call("POST", "/v1/queues/%s/claim" % q, body={"Key": "lead3", "claimant": "flow"})
    refused(r, 400, "Unknown Parameter", "unknown_parameter", "JSON {\"Key\":...}: 400 Unknown Parameter")
    r = s.call("GET", "/v1/queues/%s/claim" % q, params={"kye": "lead3"})
    refused(r, 400, "Unknown Parameter", "unknown_parameter", "query kye=lead3: 400 Unknown Parameter")
    r = s.call("POST", "/v1/queues/%s/claim" % q, body="claimant=flow", content_type=FORM)
    refused(r, 400, "Missing Key", "missing_key", "claim without key: 400 Missing Key (never a pop)")
    eq(ready_keys(s, q, ("lead1", "lead2", "lead3")), ["ready"] * 3,
       "misspelled claims consumed nothing")
    r = s.q(q, "claim", key="lead3", claimant="flow")
    eq((r.get("claimed"), r.get("key")), (True, "lead3"), "the right claim takes lead3 itself")
    r = s.q(q, "pop", claimant="flow")
    eq((r.get("claimed"), r.get("key")), (True, "lead1"), "pop takes the next item, lead1")
    r = s.q(q, "pop", key="lead2")
    refused(r, 400, "Unknown Parameter", "unknown_parameter", "pop with a key: 400 Unknown Parameter")
    eq(s.q(q, "status", key="lead2").get("state"), "ready", "... and lead2 is still ready")


def unknown_everywhere(s):
    """Every route refuses a name it does not take, from the query and the
    body alike; x_ annotations pass everywhere."""
    calls = [
        ("/v1/queues/u/enqueue", {"key": "k"}),
        ("/v1/queues/u/claim", {"key": "k"}),
        ("/v1/queues/u/pop", {}),
        ("/v1/queues/u/ack", {"key": "k", "token": "0" * 32}),
        ("/v1/queues/u/release", {"key": "k", "token": "0" * 32}),
        ("/v1/queues/u/remove", {"key": "k"}),
        ("/v1/queues/u/status", {"key": "k"}),
        ("/v1/queues/u", {}),
        ("/v1/queues", {}),
        ("/v1/kv/u/get", {"key": "k"}),
        ("/v1/kv/u/set", {"key": "k", "value": "v"}),
        ("/v1/kv/u/delete", {"key": "k"}),
        ("/v1/kv/u/incr", {"key": "k"}),
        ("/v1/kv/u", {}),
        ("/v1/once/u", {"id": "i"}),
        ("/v1/ping", {}),
    ]
    bad = []
    for path, p in calls:
        for where in ("query", "body"):
            q = dict(p, Lease="30")
            if where == "query":
                r = s.call("GET", path, params=q)
            else:
                r = s.call("POST", path, body=q)
            if (r.status, r.get("error")) != (400, "unknown_parameter") or "'Lease'" not in r.text:
                bad.append((path, where, repr(r)))
    eq(bad, [], "every route: an unknown parameter (query or body) is 400 unknown_parameter naming it")
    r = s.call("GET", "/healthz", params={"verbose": "1"}, key=None)
    refused(r, 400, "Unknown Parameter", "unknown_parameter", "/healthz refuses unknown parameters too")
    # ack/release: other routes' parameters are unknown here (a lease on an
    # ack is a template mix-up, not something to ignore)
    r = s.q("u", "ack", key="k", token="0" * 32, lease="30")
    refused(r, 400, "Unknown Parameter", "unknown_parameter", "ack with lease: 400 Unknown Parameter")
    # incr with cas: not a conditional increment, so not silently ignored
    r = s.call("GET", "/v1/kv/u/incr", params={"key": "c", "cas": "0"})
    refused(r, 400, "Unknown Parameter", "unknown_parameter", "incr with cas: 400 Unknown Parameter")
    eq(s.call("GET", "/v1/kv/u/get", params={"key": "c"}).get("found"), False, "... the counter was not created")
    # annotations
    r = s.call("POST", "/v1/queues/ann/enqueue",
               body={"key": "a1", "x_campaign": "Welcome Flow", "x_meta": {"n": 1}, "x_none": None})
    eq((r.status, r.get("enqueued")), (200, True), "x_ annotations (string, object, null) are accepted")
    r = s.call("GET", "/healthz", params={"x_probe": "lb"}, key=None)
    eq(r.status, 200, "/healthz takes x_ annotations")


def nulls(s):
    """null never means "not given": it would drop exactly the parameters
    that make an operation safe."""
    q = "nulls"
    for k in ("n1", "n2"):
        s.q(q, "enqueue", key=k)
    r = s.call("POST", "/v1/queues/%s/claim" % q, body={"key": None, "claimant": "flow"})
    refused(r, 400, "Null Parameter", "null_parameter", "claim {\"key\":null}: 400 Null Parameter")
    ok("'key'" in (r.get("message") or ""), "... the message names 'key'", r.text)
    r = s.call("POST", "/v1/queues/%s/claim" % q, body={"key": "n1", "claimant": "flow", "lease": None})
    refused(r, 400, "Null Parameter", "null_parameter", "claim {\"lease\":null}: 400 Null Parameter")
    eq(ready_keys(s, q, ("n1", "n2")), ["ready", "ready"], "null claims consumed nothing")
    # a query value with a null in the body is refused too (no longer "the query stands")
    r = s.call("POST", "/v1/queues/%s/claim" % q, params={"key": "n1"}, body={"key": None})
    refused(r, 400, "Null Parameter", "null_parameter", "query key + body null: 400 Null Parameter")

    ns = "nullkv"
    s.call("GET", "/v1/kv/%s/set" % ns, params={"key": "v", "value": "one"})
    r = s.call("POST", "/v1/kv/%s/set" % ns, body={"key": "v", "value": "two", "cas": None})
    refused(r, 400, "Null Parameter", "null_parameter", "set {\"cas\":null}: 400 Null Parameter")
    r = s.call("GET", "/v1/kv/%s/get" % ns, params={"key": "v"})
    eq((r.get("value"), r.get("version")), ("one", 1), "the cas:null set overwrote nothing")
    r = s.call("POST", "/v1/kv/%s/delete" % ns, body={"key": "v", "cas": None})
    refused(r, 400, "Null Parameter", "null_parameter", "delete {\"cas\":null}: 400 Null Parameter")
    r = s.call("POST", "/v1/once/nullonce", body={"id": "x", "ttl": None})
    refused(r, 400, "Null Parameter", "null_parameter", "once {\"ttl\":null}: 400 Null Parameter")
    # an empty Marketo token arrives as "" and keeps its own error
    r = s.call("POST", "/v1/queues/%s/claim" % q, body={"key": "", "claimant": "flow"})
    refused(r, 400, "Bad Key", "bad_key", "claim {\"key\":\"\"}: 400 Bad Key, as before")
    eq(ready_keys(s, q, ("n1", "n2")), ["ready", "ready"], "still nothing consumed")


def json_under_form(s):
    """A JSON template sent with a form Content-Type whose shape went wrong
    must not lose its key on the way and claim something else."""
    q = "jform"
    for k in ("j1", "j2"):
        s.q(q, "enqueue", key=k)
    bodies = [
        '"key":"j2","claimant":"flow"}',            # the opening brace lost
        '\ufeff{"key":"j2","claimant":"flow"}',     # a byte-order mark first
        '[{"key":"j2","claimant":"flow"}]',          # wrapped in an array
        'key:j2',                                     # "None" encoding gone wrong
    ]
    for b in bodies:
        r = s.call("POST", "/v1/queues/%s/claim" % q, body=b, content_type=FORM)
        ok(r.status == 400, "claim with form body %r: refused (400)" % b[:24], repr(r))
    r = s.call("POST", "/v1/queues/%s/claim" % q, body='{"key":"j2","claimant":"flow"}', content_type=FORM)
    eq((r.get("claimed"), r.get("key")), (True, "j2"), "a well-formed JSON template under a form type still works")
    eq(s.q(q, "status", key="j1").get("state"), "ready", "j1 was never taken by a broken template")


def strict_numbers(s):
    """Each numeric parameter, each form, both ways. Accepted forms must do
    what they say; refused ones must change nothing."""
    # (parameter, route, fixed params, value, accepted)
    seconds = ["5", "0.5", "1.250", "600"]
    seconds_bad = ["+5", " 5", "5 ", "5\x00junk", "5junk", "0x5", "5e0", "", "-5", "1.2345",
                   ".5", "5.", "1,5", "\t5"]
    ints = ["0", "5", "1234567"]
    ints_bad = ["+5", " 5", "5 ", "5\x00junk", "5junk", "0x5", "5e0", "", "5.0", "1,000", "--5", "-"]
    table = []
    for v in seconds:
        table.append(("lease", v, True))
        table.append(("delay", v, True))
        table.append(("ttl", v, True))
    for v in seconds_bad:
        table.append(("lease", v, False))
        table.append(("delay", v, False))
        table.append(("ttl", v, False))
    for v in ints:
        table.append(("cas", v, True))
        table.append(("by", v, True))
        table.append(("mod", v, v != "0"))
        table.append(("size", v, v != "0"))
    for v in ints_bad:
        for p in ("cas", "by", "mod", "size"):
            table.append((p, v, False))
    table += [("by", "-5", True), ("by", "-0", True), ("cas", "-1", False), ("cas", "-0", False),
              ("mod", "-1", False), ("size", "-0", False)]
    wrong = []
    n = 0
    for param, v, accepted in table:
        n += 1
        key = "n%d" % n
        if param == "lease":
            s.q("nums", "enqueue", key=key)
            r = s.call("GET", "/v1/queues/nums/claim", params={"key": key, "lease": v})
            good = r.status == 200 and r.get("claimed") is True and "lease_expires_at" in r.json
            state = s.q("nums", "status", key=key).get("state")
            unchanged = state == "ready"
        elif param == "delay":
            r = s.call("GET", "/v1/queues/nums/enqueue", params={"key": key, "delay": v})
            good = r.status == 200 and r.get("enqueued") is True
            unchanged = s.q("nums", "status", key=key).get("state") == "absent"
        elif param in ("ttl", "cas"):
            r = s.call("GET", "/v1/kv/nums/set", params={"key": key, "value": "x", param: v})
            good = r.status == 200 and "ok" in (r.json or {})
            unchanged = s.call("GET", "/v1/kv/nums/get", params={"key": key}).get("found") is False
        else:
            r = s.call("GET", "/v1/kv/nums/incr", params={"key": key, param: v})
            good = r.status == 200 and "value" in (r.json or {})
            unchanged = s.call("GET", "/v1/kv/nums/get", params={"key": key}).get("found") is False
        if accepted and not good:
            wrong.append("%s=%r refused: %r" % (param, v, r))
        if not accepted and (r.status != 400 or not unchanged):
            wrong.append("%s=%r not refused cleanly: %r" % (param, v, r))
    eq(wrong, [], "%d numeric forms: each accepted or refused as documented" % len(table))
    # the same from a JSON body: numbers as written, strings as text
    s.q("nums", "enqueue", key="jl")
    r = s.call("POST", "/v1/queues/nums/claim", body='{"key":"jl","lease":1.5}', content_type=JSON)
    eq(r.get("claimed"), True, "JSON lease 1.5 (a number) is accepted")
    s.q("nums", "enqueue", key="jl2")
    for body in ('{"key":"jl2","lease":1e1}', '{"key":"jl2","lease":true}', '{"key":"jl2","lease":"+5"}',
                 '{"key":"jl2","lease":-5}', '{"key":"jl2","lease":[5]}'):
        r = s.call("POST", "/v1/queues/nums/claim", body=body, content_type=JSON)
        eq((r.status, r.reason), (400, "Bad Lease"), "JSON %s: 400 Bad Lease" % body[13:])
    eq(s.q("nums", "status", key="jl2").get("state"), "ready", "no refused lease claimed jl2")
    r = s.call("GET", "/v1/queues/nums/claim", params="key=jl2&lease=5%00junk")
    eq((r.status, r.reason), (400, "Bad Lease"), "lease=5%00junk: 400 Bad Lease (not a 5 s lease)")
    eq(s.q("nums", "status", key="jl2").get("state"), "ready", "... and jl2 is still ready")


def no_such_queue(s):
    """A misspelled or mis-cased queue name must look different from an
    empty queue and from an absent item."""
    s.q("welcome", "enqueue", key="w1")
    r = s.q("Welcome", "claim", key="w1", claimant="flow")
    eq(r.text, '{"claimed":false,"queue":"Welcome","key":"w1","reason":"no_such_queue"}\n',
       "claim on Welcome (a queue never used): reason no_such_queue")
    r = s.q("Welcome", "pop", claimant="flow")
    eq(r.text, '{"claimed":false,"queue":"Welcome","key":"","reason":"no_such_queue"}\n',
       "pop on Welcome: reason no_such_queue, not empty")
    r = s.q("Welcome", "status", key="w1")
    eq(r.text, '{"queued":false,"queue":"Welcome","key":"w1","reason":"no_such_queue"}\n',
       "status on Welcome: reason no_such_queue, no state")
    for op, extra in (("ack", {"token": "0" * 32}), ("release", {"token": "0" * 32}), ("remove", {})):
        r = s.q("Welcome", op, key="w1", **extra)
        eq(r.get("reason"), "no_such_queue", "%s on Welcome: reason no_such_queue" % op)
    eq(s.stats("Welcome").status, 404, "and none of them created the queue")
    eq(s.q("welcome", "status", key="w1").get("state"), "ready", "the real queue's item is untouched")
    r = s.q("welcome", "claim", key="nope")
    eq(r.get("reason"), "not_queued", "a real queue without the item still says not_queued")
    s.q("welcome", "claim", key="w1")
    eq(s.q("welcome", "pop").get("reason"), "empty", "a real queue drained says empty")


def wait_log(s, text, timeout=30.0):
    """Wait until casqd's log contains text (a wait for an event, with a
    deadline only so that a broken casqd fails the test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(s.casqd_log) as f:
            if text in f.read():
                return True
        time.sleep(0.05)
    return False


def key_names(s):
    """Keys named "a" and "a/b" once shared stored answers: request ids are
    stored as "<key name>/<id>", so "a/b" with id "c" was handed "a"'s
    answer for id "b/c". Key names are now 1-64 of A-Z a-z 0-9 . _ -,
    checked at start and at SIGHUP, with the line number."""
    bad = s.path("badkeys")
    with open(bad, "w") as f:
        f.write("# two keys\na:%s\na/b:%s\n" % ("1" * 64, "0" * 64))
    r = subprocess.run([casqd_path(), "--listen", "unix:" + s.path("other.sock"),
                        "--data", s.path("otherdata"), "--keys", bad],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    err = r.stderr.decode("utf-8", "replace")
    eq(r.returncode, 2, "a key named a/b: casqd refuses to start (status 2)")
    ok(bad + ":3:" in err and "A-Z a-z 0-9 . _ -" in err, "... naming the line and the rule", err)

    keys = s.path("keys")
    with open(keys) as f:
        good = f.read()
    with open(keys, "a") as f:
        f.write("a/b:%s\n" % ("0" * 64))
    os.kill(s.casqd.pid, signal.SIGHUP)
    ok(wait_log(s, "SIGHUP ignored"), "a key named a/b at SIGHUP: the file is ignored", tail(s.casqd_log))
    line = "%s:%d:" % (keys, good.count("\n") + 1)
    with open(s.casqd_log) as f:
        ok(line in f.read(), "... the log names its line (%s)" % line)
    with open(keys, "w") as f:
        f.write(good)
    eq(s.call("GET", "/v1/ping").status, 200, "the workers kept their keys")
    r = subprocess.run([casqd_path(), "--mint-key", "a/b"], capture_output=True, timeout=60)
    eq(r.returncode, 2, "--mint-key a/b is refused")

    a = s.add_key("a")
    ab = s.add_key("a.b")
    s.q("ids", "enqueue", key="i1")
    s.q("ids", "enqueue", key="i2")
    r1 = s.call("GET", "/v1/queues/ids/pop", params={"claimant": "A", "request_id": "b.c"}, key=a)
    r2 = s.call("GET", "/v1/queues/ids/pop", params={"claimant": "A", "request_id": "c"}, key=ab)
    ok(r1.get("claimed") is True and r2.get("claimed") is True and r1.get("token") != r2.get("token"),
       "keys a and a.b, ids b.c and c: two claims, two tokens", "%r / %r" % (r1, r2))


def fingerprints(s):
    """Two calls that would do different things never replay each other."""
    q = "fp"
    r = s.call("POST", "/v1/queues/%s/enqueue" % q, body={"key": "p", "payload": '{"a":1}', "request_id": "fp1"})
    eq(r.get("enqueued"), True, "enqueue with a string payload")
    r = s.call("POST", "/v1/queues/%s/enqueue" % q, body={"key": "p", "payload": {"a": 1}, "request_id": "fp1"})
    eq((r.status, r.reason), (422, "Request Id Reused"),
       "same id, object payload of the same text: 422, not a replay")
    r = s.call("POST", "/v1/queues/%s/enqueue" % q, body='{"key":"n","payload":5,"request_id":"fp2"}',
               content_type=JSON)
    eq(r.get("enqueued"), True, "enqueue with a number payload")
    r = s.call("POST", "/v1/queues/%s/enqueue" % q, body='{"key":"n","payload":"5","request_id":"fp2"}',
               content_type=JSON)
    eq((r.status, r.reason), (422, "Request Id Reused"), "same id, string payload \"5\": 422")
    r = s.call("POST", "/v1/kv/fp/set", body='{"key":"k","value":true,"request_id":"fp3"}', content_type=JSON)
    r2 = s.call("POST", "/v1/kv/fp/set", body='{"key":"k","value":"true","request_id":"fp3"}', content_type=JSON)
    eq((r.get("ok"), r2.status), (True, 422), "value true vs value \"true\": not a replay")
    # annotations do not change what a call does: a retry with another
    # x_ value replays
    r = s.call("POST", "/v1/queues/%s/enqueue" % q, body={"key": "x", "request_id": "fp4", "x_try": "1"})
    r2 = s.call("POST", "/v1/queues/%s/enqueue" % q, body={"key": "x", "request_id": "fp4", "x_try": "2"})
    eq((r2.status, r2.text), (200, r.text), "x_ annotations are not part of the fingerprint")


def main():
    with Stack(workers=1) as s:
        misspelled_key(s)
        unknown_everywhere(s)
        nulls(s)
        json_under_form(s)
        strict_numbers(s)
        no_such_queue(s)
        fingerprints(s)
        key_names(s)


run_main(main)
