#!/usr/bin/env python3
"""Every error class: exact status code, the specific reason phrase on the
status line (Marketo's "Error Type"), a JSON body with "error" and
"message", and no change to stored data."""

import http.client
import json
import os
import sys

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main  # noqa: E402

FORM = "application/x-www-form-urlencoded"


def main():
    with Stack(workers=2) as s:
        # An item stored before any error; it must be untouched at the end.
        keep_payload = {"keep": [1, "two"], "n": 3}
        r = s.call("POST", "/v1/queues/err/enqueue", body={"key": "keeper", "payload": keep_payload})
        eq(r.get("enqueued"), True, "setup: keeper enqueued")
        before = s.call("GET", "/v1/queues/err").json

        def err(r, status, reason, code, what):
            eq((r.status, r.reason), (status, reason), "%s: %d %s" % (what, status, reason))
            body = r.json if isinstance(r.json, dict) else {}
            eq(body.get("error"), code, "%s: error %s" % (what, code))
            ok(isinstance(body.get("message"), str) and body.get("message") != ""
               and r.ctype() == "application/json",
               "%s: JSON body with a message" % what,
               "Content-Type %r, body %r" % (r.headers.get("Content-Type"), r.text))

        E = "/v1/queues/err/enqueue"
        # ------------------------------------------------------ 400
        err(s.call("GET", E), 400, "Missing Key", "missing_key", "enqueue without key")
        err(s.call("POST", E, body={"payload": 1}), 400, "Missing Key", "missing_key", "enqueue JSON without key")
        err(s.call("GET", "/v1/queues/err/status"), 400, "Missing Key", "missing_key", "status without key")
        err(s.call("GET", E, params={"key": ""}), 400, "Bad Key", "bad_key", "empty key")
        err(s.call("GET", E, params={"key": "k" * 257}), 400, "Bad Key", "bad_key", "257-byte key")

        for name, what in (("q" * 65, "65-character queue name"), ("a%20b", "queue name 'a b'"),
                           ("q%21", "queue name 'q%21'"), ("q!", "queue name 'q!'"),
                           ("%C3%BC", "non-ASCII queue name")):
            err(s.call("GET", "/v1/queues/%s/enqueue" % name, params={"key": "x"}),
                400, "Bad Queue Name", "bad_queue", what)
        r = s.call("GET", "/v1/queues/%s/enqueue" % ("q" * 64), params={"key": "x"})
        eq(r.get("enqueued"), True, "64-character queue name of [A-Za-z0-9._-] is fine")
        r = s.call("GET", "/v1/queues/A.b_c-9/enqueue", params={"key": "x"})
        eq(r.get("enqueued"), True, "queue name with . _ - and digits is fine")

        s.call("GET", E, params={"key": "lease-me"})
        for v in ("0", "-1", "abc", "604801", "1e3", ""):
            err(s.call("GET", "/v1/queues/err/claim", params={"key": "lease-me", "lease": v}),
                400, "Bad Lease", "bad_lease", "lease=%r" % v)
        err(s.call("POST", "/v1/queues/err/claim", body='{"key":"lease-me","lease":0}'),
            400, "Bad Lease", "bad_lease", "lease 0 as a JSON number")
        err(s.call("POST", "/v1/queues/err/claim", body='{"key":"lease-me","lease":true}'),
            400, "Bad Lease", "bad_lease", "lease true as JSON")
        r = s.call("GET", "/v1/queues/err/status", params={"key": "lease-me"})
        eq(r.get("state"), "ready", "the bad-lease claims left the item ready")
        r = s.call("GET", "/v1/queues/err/claim", params={"key": "lease-me", "lease": "604800"})
        eq(r.get("claimed"), True, "lease=604800 (the maximum) is fine")

        for v in ("-1", "abc", "31536001", "1x"):
            err(s.call("GET", E, params={"key": "delayed", "delay": v}),
                400, "Bad Delay", "bad_delay", "delay=%r" % v)
        eq(s.call("GET", "/v1/queues/err/status", params={"key": "delayed"}).get("state"), "absent",
           "the bad-delay enqueues stored nothing")
        r = s.call("GET", E, params={"key": "delay-max", "delay": "31536000"})
        eq(r.get("enqueued"), True, "delay=31536000 (the maximum) is fine")
        r = s.call("GET", E, params={"key": "delay-0", "delay": "0"})
        eq(r.get("enqueued"), True, "delay=0 is fine")

        err(s.call("POST", E, body="key=bp&payload=%FF", content_type=FORM),
            400, "Bad Payload", "bad_payload", "form payload that is not UTF-8")

        err(s.call("GET", "/v1/queues/err/ack", params={"key": "keeper"}),
            400, "Missing Token", "missing_token", "ack without token")
        err(s.call("GET", "/v1/queues/err/release", params={"key": "keeper"}),
            400, "Missing Token", "missing_token", "release without token")

        err(s.call("GET", "/v1/queues/err/claim", params={"key": "keeper", "claimant": "c" * 129}),
            400, "Bad Claimant", "bad_claimant", "129-byte claimant")
        err(s.call("GET", "/v1/queues/err/claim", params="key=keeper&claimant=%FF"),
            400, "Bad Claimant", "bad_claimant", "claimant that is not UTF-8")

        err(s.call("POST", E, params={"key": "a"}, body={"key": "b"}),
            400, "Conflicting Parameter", "conflicting_parameter", "key a in query, b in body")
        err(s.call("POST", E, body="key=a&key=b", content_type=FORM),
            400, "Conflicting Parameter", "conflicting_parameter", "key twice in a form body")

        err(s.call("POST", E, body="[1]", content_type="application/json"),
            400, "Malformed JSON", "malformed_json", "JSON body that is an array")
        err(s.call("POST", E, body='{"key":"a","payload":{"x":', content_type="application/json"),
            400, "Malformed JSON", "malformed_json", "truncated JSON body")
        err(s.call("POST", E, body='{"key":"a"b"}', content_type="application/json"),
            400, "Malformed JSON", "malformed_json", "Marketo None encoding: a quote inside the value")
        err(s.call("POST", E, body='{"key":"a"b"}'),
            400, "Malformed JSON", "malformed_json", "sniffed JSON with a stray quote")
        err(s.call("POST", E, body='{"key":"a"} trailing', content_type="application/json"),
            400, "Malformed JSON", "malformed_json", "JSON body with trailing garbage")

        err(s.call("POST", E, body="key=%zz", content_type=FORM),
            400, "Malformed Form", "malformed_form", "form with a bad percent escape %zz")
        err(s.call("POST", E, body="key=a%4", content_type=FORM),
            400, "Malformed Form", "malformed_form", "form with a truncated percent escape")
        err(s.call("GET", E, params="key=%zz"),
            400, "Malformed Form", "malformed_form", "query with a bad percent escape")

        # ------------------------------------------------------ 401
        err(s.call("GET", "/v1/ping", key=None), 401, "Missing API Key", "missing_api_key", "no API key")
        err(s.call("GET", E, params={"key": "unauth"}, key=None), 401, "Missing API Key", "missing_api_key",
            "enqueue with no API key")
        err(s.call("GET", "/v1/ping", key="casq_wrong"), 401, "Invalid API Key", "invalid_api_key",
            "wrong key (Bearer)")
        err(s.call("GET", "/v1/ping", key="casq_wrong", auth="x-api-key"), 401, "Invalid API Key",
            "invalid_api_key", "wrong key (X-Api-Key)")
        err(s.call("GET", "/v1/ping", key=s.key + "x"), 401, "Invalid API Key", "invalid_api_key",
            "right key plus one character")
        r = s.call("GET", "/v1/ping", auth="x-api-key")
        eq((r.status, r.text.strip()), (200, '{"pong":true}'), "X-Api-Key with the right key works")
        r = s.call("GET", "/v1/ping", key=None, headers={"Authorization": "bearer " + s.key})
        eq(r.status, 200, "Authorization scheme is case-insensitive (bearer)")
        r = s.call("GET", "/healthz", key=None)
        eq(r.status, 200, "/healthz needs no key")
        eq(s.call("GET", "/v1/queues/err/status", params={"key": "unauth"}).get("state"), "absent",
           "the unauthenticated enqueue stored nothing")

        # ------------------------------------------------------ 404
        for p in ("/v1/nope", "/v1/queues/err/nope", "/other", "/v1", "/v1/queues/err/enqueue/extra"):
            err(s.call("GET", p), 404, "No Such Route", "no_such_route", "GET " + p)
        err(s.call("GET", "/v1/queues/nosuchqueue"), 404, "No Such Queue", "no_such_queue", "stats of an unknown queue")

        # ------------------------------------------------------ 405
        for m, p in (("PUT", E), ("DELETE", E), ("PUT", "/v1/ping"), ("DELETE", "/v1/queues/err"),
                     ("PATCH", "/v1/queues")):
            r = s.call(m, p, params={"key": "viaput"})
            err(r, 405, "Method Not Allowed", "method_not_allowed", "%s %s" % (m, p))
            eq((r.headers.get("Allow") or "").replace(" ", ""), "GET,POST", "%s %s: Allow: GET, POST" % (m, p))
        eq(s.call("GET", "/v1/queues/err/status", params={"key": "viaput"}).get("state"), "absent",
           "the PUT enqueue stored nothing")

        # ------------------------------------------------------ 413
        big = "key=big&payload=" + "x" * (70 * 1024)
        r = s.call("POST", E, body=big, content_type=FORM)
        err(r, 413, "Body Too Large", "body_too_large", "70 KiB body")
        # A chunked body has no Content-Length: nginx marks the request
        # it refused, so casqd must not run it on the query string alone.
        conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=s.ssl_context(), timeout=30)
        try:
            conn.putrequest("POST", E + "?key=chunked-big")
            conn.putheader("Authorization", "Bearer " + s.key)
            conn.putheader("Content-Type", FORM)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            chunk = b"x" * 8192
            for _ in range(9):
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            eq((resp.status, resp.reason), (413, "Body Too Large"), "72 KiB chunked body: 413 Body Too Large")
            resp.read()
        finally:
            conn.close()
        eq(s.call("GET", "/v1/queues/err/status", params={"key": "chunked-big"}).get("state"), "absent",
           "the refused chunked request enqueued nothing")
        c = s.client()
        try:
            r = c.call("POST", E, body='{"key":"big2","payload":"' + "y" * (17 * 1024) + '","x_pad":"'
                       + "z" * (3 * 1024) + '"}', content_type="application/json")
            err(r, 413, "Payload Too Large", "payload_too_large", "17 KiB payload in a 20 KiB body")
            edge = "p" * 16382      # as JSON text: 16384 bytes with the quotes
            r = c.call("POST", E, body={"key": "edge-ok", "payload": edge})
            eq(r.get("enqueued"), True, "payload of exactly 16384 bytes (JSON text) is fine")
            r = c.call("POST", E, body={"key": "edge-big", "payload": edge + "p"})
            err(r, 413, "Payload Too Large", "payload_too_large", "payload of 16385 bytes")
        finally:
            c.close()
        eq(s.call("GET", "/v1/queues/err/status", params={"key": "big2"}).get("state"), "absent",
           "the too-large payload stored nothing")

        # ------------------------------------------------------ 415
        err(s.call("POST", E, body="--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nm\r\n--b--\r\n",
                   content_type="multipart/form-data; boundary=b"),
            415, "Unsupported Body", "unsupported_body", "multipart/form-data body")
        err(s.call("POST", E, body="<key>x</key>", content_type="application/xml"),
            415, "Unsupported Body", "unsupported_body", "application/xml body")

        # ------------------------------------------------------ 503
        s.stop_casqd()
        r = s.call("GET", "/v1/ping")
        eq(r.status, 503, "casqd stopped: nginx answers 503")
        body = r.json if isinstance(r.json, dict) else {}
        ok(body.get("error") == "unavailable" and body.get("message") and r.ctype() == "application/json",
           "casqd stopped: JSON error unavailable with a message", repr(r))
        eq(r.reason, "Unavailable", "casqd stopped: reason phrase Unavailable")
        s.start_casqd()
        s.wait_healthy()
        eq(s.call("GET", "/v1/ping").status, 200, "casqd started again: requests work at once")

        # ------------------------------------------------------ nothing changed
        r = s.call("GET", "/v1/queues/err/status", params={"key": "keeper"})
        eq((r.get("state"), r.get("attempts")), ("ready", 0), "after all errors: keeper still ready, attempts 0")
        after = s.call("GET", "/v1/queues/err").json or {}
        # Successful requests above enqueued lease-me, delay-max, delay-0, edge-ok and claimed lease-me.
        eq((after.get("enqueued"), after.get("claimed"), after.get("removed"), after.get("acked")),
           ((before or {}).get("enqueued", 0) + 4, (before or {}).get("claimed", 0) + 1,
            (before or {}).get("removed", 0), (before or {}).get("acked", 0)),
           "after all errors: queue counters moved only by the successful requests")
        r = s.call("GET", "/v1/queues/err/claim", params={"key": "keeper"})
        eq(r.get("payload"), keep_payload, "after all errors: keeper claimed with its exact payload")
        ok(json.dumps(keep_payload, separators=(",", ":")) in r.text,
           "after all errors: payload text unchanged", r.text)


run_main(main)
