#!/usr/bin/env python3
"""Parameters the way Marketo may send them: query string, JSON body
(with or without a meaningful Content-Type), form body (with or without
Content-Type), query and body combined; payloads and awkward keys must
round-trip exactly."""

import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main  # noqa: E402

FORM = "application/x-www-form-urlencoded"


def form(d):
    """Form encoding as Marketo's Form/Url token encoding: space as '+'."""
    return urllib.parse.urlencode(d, quote_via=urllib.parse.quote_plus)


def jbody(d):
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def main():
    with Stack(workers=2) as s:
        Q = "/v1/queues/par/"

        def enq_ok(r, key, what):
            ok(r.status == 200 and r.get("enqueued") is True and r.get("key") == key,
               what + ": enqueued with key %r" % key, repr(r))

        def claim_payload(key):
            return s.call("GET", Q + "claim", params={"key": key})

        # ------------------------------------------------------ the same operation, every body variant
        r = s.call("GET", Q + "enqueue", params={"key": "g1", "payload": "hello"})
        enq_ok(r, "g1", "GET with query")
        r = s.call("POST", Q + "enqueue", body='{"key":"j1","payload":{"a":1}}',
                   content_type="application/json")
        enq_ok(r, "j1", "POST JSON application/json")
        r = s.call("POST", Q + "enqueue", body='{"key":"j2","payload":[1]}',
                   content_type="application/json; charset=utf-8")
        enq_ok(r, "j2", "POST JSON application/json; charset=utf-8")
        r = s.call("POST", Q + "enqueue", body='{"key":"j3","payload":2}',
                   content_type="text/plain")
        enq_ok(r, "j3", "POST JSON with Content-Type text/plain (sniffed)")
        r = s.call("POST", Q + "enqueue", body='{"key":"j4","payload":3}')
        enq_ok(r, "j4", "POST JSON without Content-Type (sniffed)")
        r = s.call("POST", Q + "enqueue", body=' \n {"key":"j5"}')
        enq_ok(r, "j5", "POST JSON with leading whitespace, no Content-Type (sniffed)")
        r = s.call("POST", Q + "enqueue", body="key=sp+ace&payload=a+b%26c%2Bd",
                   content_type=FORM)
        enq_ok(r, "sp ace", "POST form, '+' is a space")
        eq(claim_payload("sp ace").get("payload"), "a b&c+d", "POST form: %26 and %2B decode to & and +")
        r = s.call("POST", Q + "enqueue", body="key=jo%2Bx%40example.com&payload=e",
                   content_type=FORM + "; charset=UTF-8")
        enq_ok(r, "jo+x@example.com", "POST form with charset, %2B and %40")
        r = s.call("POST", Q + "enqueue", body="key=f2&payload=x")
        enq_ok(r, "f2", "POST form without Content-Type (sniffed)")
        eq(claim_payload("f2").get("payload"), "x", "POST form without Content-Type: payload stored")
        r = s.call("GET", Q + "enqueue", params="key=q+plus&payload=1")
        enq_ok(r, "q plus", "query string: '+' is a space")
        r = s.call("POST", Q + "enqueue", params={"key": "viaquery"}, body="",
                   content_type=FORM)
        enq_ok(r, "viaquery", "POST with empty body and the key in the query")

        # ------------------------------------------------------ query + body
        r = s.call("POST", Q + "enqueue", params={"key": "c1"}, body='{"payload":"fromjson"}',
                   content_type="application/json")
        enq_ok(r, "c1", "query key + JSON body payload")
        eq(claim_payload("c1").get("payload"), "fromjson", "query key + JSON body payload: payload from the body")
        r = s.call("POST", Q + "enqueue", params={"key": "c2"}, body="payload=p+q", content_type=FORM)
        enq_ok(r, "c2", "query key + form body payload")
        eq(claim_payload("c2").get("payload"), "p q", "query key + form body payload: payload from the body")
        r = s.call("POST", Q + "enqueue", params={"key": "c3"}, body='{"key":"c3"}')
        enq_ok(r, "c3", "same key in query and JSON body (same value)")
        r = s.call("POST", Q + "enqueue", params={"key": "c3b"}, body="key=c3b", content_type=FORM)
        enq_ok(r, "c3b", "same key in query and form body (same value)")
        r = s.call("POST", Q + "enqueue", params={"key": "c4"}, body='{"key":"c5"}')
        eq((r.status, r.reason, r.get("error")), (400, "Conflicting Parameter", "conflicting_parameter"),
           "different key in query and JSON body: 400 Conflicting Parameter")
        r = s.call("POST", Q + "enqueue", params={"key": "c4"}, body="key=c5", content_type=FORM)
        eq((r.status, r.reason, r.get("error")), (400, "Conflicting Parameter", "conflicting_parameter"),
           "different key in query and form body: 400 Conflicting Parameter")
        r = s.call("GET", Q + "enqueue", params="key=c4&key=c5")
        eq((r.status, r.reason), (400, "Conflicting Parameter"), "key twice in the query, different: 400 Conflicting Parameter")
        r = s.call("GET", Q + "enqueue", params="key=c6&key=c6")
        enq_ok(r, "c6", "key twice in the query, same value")
        for k in ("c4", "c5"):
            eq(s.call("GET", Q + "status", params={"key": k}).get("state"), "absent",
               "a conflicting request stored nothing (%s absent)" % k)
        r = s.call("GET", Q + "enqueue", params={"key": "u1", "x_campaign": "Welcome Flow", "x_n": ""})
        enq_ok(r, "u1", "x_ annotations are accepted and ignored")
        r = s.call("GET", Q + "enqueue", params={"key": "u2", "foo": "bar"})
        eq((r.status, r.reason, r.get("error")), (400, "Unknown Parameter", "unknown_parameter"),
           "an unknown parameter: 400 Unknown Parameter")
        ok("'foo'" in (r.get("message") or ""), "... the message names it", r.text)
        eq(s.call("GET", Q + "status", params={"key": "u2"}).get("state"), "absent",
           "... and nothing was enqueued")

        # ------------------------------------------------------ payloads round-trip exactly
        cases = [
            ("pl-obj", '{"b":[1,2,{"c":null}],"a":"x","t":true,"f":false}', '{"b":[1,2,{"c":null}],"a":"x","t":true,"f":false}'),
            ("pl-int", "42", "42"),
            ("pl-neg", "-7", "-7"),
            ("pl-dec", "12.5", "12.5"),
            ("pl-str", '"plain text"', '"plain text"'),
            ("pl-esc", '"q\\"uote\\\\back"', '"q\\"uote\\\\back"'),
            ("pl-arr", '[1,"two",[3]]', '[1,"two",[3]]'),
            ("pl-true", "true", "true"),
            ("pl-ws", ' { "a" : [ 1 , 2 ] ,  "b" : { } } ', '{"a":[1,2],"b":{}}'),
        ]
        for key, sent, want in cases:
            r = s.call("POST", Q + "enqueue", body='{"key":"%s","payload":%s}' % (key, sent),
                       content_type="application/json")
            enq_ok(r, key, "JSON payload %s" % sent.strip())
            r = claim_payload(key)
            ok(('"payload":%s' % want) in r.text, "JSON payload %s comes back from claim as %s" % (sent.strip(), want),
               "got %r" % r.text)
        r = s.call("POST", Q + "enqueue", body=jbody({"key": "pl-uni", "payload": {"name": "Zoë ✓ 😀"}}))
        enq_ok(r, "pl-uni", "JSON payload with non-ASCII text")
        eq(claim_payload("pl-uni").get("payload"), {"name": "Zoë ✓ 😀"}, "JSON payload with non-ASCII text round-trips")
        r = s.call("POST", Q + "enqueue", body='{"key":"pl-u","payload":"\\u00fc\\ud83d\\ude00"}')
        eq(claim_payload("pl-u").get("payload"), "ü😀", "JSON payload with \\u escapes (and a surrogate pair) decodes")

        r = s.call("POST", Q + "enqueue", body=form({"key": "fp", "payload": '{"a":1}'}), content_type=FORM)
        enq_ok(r, "fp", "form payload")
        r = claim_payload("fp")
        eq(r.get("payload"), '{"a":1}', "form payload is stored as a JSON string, not parsed")
        ok('"payload":"{\\"a\\":1}"' in r.text, "form payload: claim text holds the escaped JSON string", r.text)
        s.call("GET", Q + "enqueue", params={"key": "qp", "payload": "42"})
        eq(claim_payload("qp").get("payload"), "42", "query payload 42 is the string \"42\"")

        # ------------------------------------------------------ awkward keys round-trip
        keys = ["jo+x@example.com", "a&b=c", "path/with/slash", "100%", "ünïcødé ✓", "sp ace",
                "quote\"back\\slash", "semi;colon,comma", "#hash?q=1", "a" * 256, "é" * 128]
        for i, k in enumerate(keys):
            label = k if len(k) < 40 else "%d-byte key" % len(k.encode())
            # round 1: enqueue JSON, status query, claim form
            r = s.call("POST", "/v1/queues/keys1/enqueue", body=jbody({"key": k, "payload": i}))
            enq_ok(r, k, "key %r: enqueue via JSON body" % label)
            r = s.call("GET", "/v1/queues/keys1/status", params={"key": k})
            eq((r.get("key"), r.get("state")), (k, "ready"), "key %r: status via query" % label)
            r = s.call("POST", "/v1/queues/keys1/claim", body=form({"key": k, "claimant": k[:40]}),
                       content_type=FORM)
            eq((r.get("claimed"), r.get("key"), r.get("owner"), r.get("payload")), (True, k, k[:40], i),
               "key %r: claim via form body (key, owner, payload)" % label)
            # round 2: enqueue form, status JSON, claim query
            r = s.call("POST", "/v1/queues/keys2/enqueue", body=form({"key": k}), content_type=FORM)
            enq_ok(r, k, "key %r: enqueue via form body" % label)
            r = s.call("POST", "/v1/queues/keys2/status", body=jbody({"key": k}))
            eq((r.get("key"), r.get("state")), (k, "ready"), "key %r: status via JSON body" % label)
            r = s.call("GET", "/v1/queues/keys2/claim", params={"key": k})
            eq((r.get("claimed"), r.get("key")), (True, k), "key %r: claim via query" % label)

        # Marketo's "None" token encoding: {"key": {{lead.Id}}} arrives as a number.
        r = s.call("POST", Q + "enqueue", body='{"key":1234,"payload":"n"}')
        enq_ok(r, "1234", "JSON number key (Marketo None encoding) is taken as its text")

        # ------------------------------------------------------ bad keys
        def bad_key(r, what):
            eq((r.status, r.reason, r.get("error")), (400, "Bad Key", "bad_key"), what + ": 400 Bad Key")

        bad_key(s.call("POST", Q + "enqueue", body=jbody({"key": "a" * 257})), "257-byte key (JSON)")
        bad_key(s.call("GET", Q + "enqueue", params={"key": "a" * 257}), "257-byte key (query)")
        bad_key(s.call("GET", Q + "enqueue", params={"key": "a" * 255 + "é"}), "257-byte key of 256 characters")
        bad_key(s.call("POST", Q + "enqueue", body="key=%FF", content_type=FORM), "invalid UTF-8 via form (%FF)")
        bad_key(s.call("GET", Q + "enqueue", params="key=a%C3"), "truncated UTF-8 via query (a%C3)")
        bad_key(s.call("POST", Q + "enqueue", body="key=a%00b", content_type=FORM), "NUL via form (%00)")
        bad_key(s.call("GET", Q + "status", params="key=%00"), "NUL via query on status")
        bad_key(s.call("POST", Q + "enqueue", body='{"key":"a\\u0000b"}'), "NUL via JSON \\u0000")
        bad_key(s.call("GET", Q + "enqueue", params="key="), "empty key")
        bad_key(s.call("GET", Q + "claim", params="key=%FF"), "invalid UTF-8 key on claim")

        # ------------------------------------------------------ numbers as JSON numbers or strings
        s.call("GET", Q + "enqueue", params={"key": "n1"})
        s.call("GET", Q + "enqueue", params={"key": "n2"})
        r = s.call("POST", Q + "claim", body='{"key":"n1","lease":30}')
        ok(r.get("claimed") is True and "lease_expires_at" in (r.json or {}), "lease as a JSON number", repr(r))
        r = s.call("POST", Q + "claim", body='{"key":"n2","lease":"1.5"}')
        ok(r.get("claimed") is True and "lease_expires_at" in (r.json or {}), "lease as a JSON string with decimals", repr(r))
        r = s.call("POST", Q + "enqueue", body='{"key":"n3","delay":60}')
        eq(s.call("GET", Q + "claim", params={"key": "n3"}).get("reason"), "not_ready", "delay as a JSON number")
        s.call("GET", Q + "enqueue", params={"key": "n4"})
        r = s.call("POST", Q + "claim", body=form({"key": "n4", "claimant": "Camp 1 & 2+ ✓"}), content_type=FORM)
        eq(r.get("owner"), "Camp 1 & 2+ ✓", "claimant with space, &, + and non-ASCII via form: owner exact")


run_main(main)
