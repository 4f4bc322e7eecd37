#!/usr/bin/env python3
"""An API key never leaves the pair nginx-casqd, and callers get HTTP/1.1
with its reason phrase over a TLS that refuses weak suites. Runs the
production site (nginx/casq-site.conf + casq-stream.conf, only addresses
and paths changed) and the development template used by script/server:

- an h2 client is answered in HTTP/1.1 (Marketo's "Error Type" is the
  reason phrase, which HTTP/2 does not carry);
- TLS 1.1 and CBC-SHA1 suites are refused (openssl s_client), AEAD suites
  on TLS 1.2 and TLS 1.3 work, no session ticket, no nginx version, HSTS;
- plain http answers a JSON 403 and never redirects;
- when casqd does not answer, the 503 responder receives none of the
  caller's headers, query or body: a listener standing in for it gets a
  fixed request without credentials."""

import os
import socket
import ssl
import subprocess
import sys
import threading

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, ok, run_main  # noqa: E402

SECRET_KEY = "casq_" + "5ec7e7" * 10     # sent as X-Api-Key
SECRET_LEAD = "jo.secret@example.com"
SECRET_ID = "idem-secret-42"


def s_client(s, *args):
    """openssl s_client against the stack; (handshake done, output)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port,
            "-servername", "127.0.0.1", "-CAfile", s.cert] + list(args)
    r = subprocess.run(argv, input=b"Q\n", capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    done = r.returncode == 0 and "Cipher is (NONE)" not in out and "New, " in out
    return done, out


def tls(s, what):
    # @SECLEVEL=0: the client itself would offer TLS 1.1 and SHA-1 suites,
    # so a refusal can only come from nginx.
    done, out = s_client(s, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    ok(not done, "%s: TLS 1.1 is refused" % what, out[-300:])
    for cipher in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "AES128-SHA"):
        done, out = s_client(s, "-tls1_2", "-cipher", cipher + ":@SECLEVEL=0")
        ok(not done, "%s: TLS 1.2 with the CBC-SHA1 suite %s is refused" % (what, cipher), out[-300:])
    done, out = s_client(s, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    ok(done, "%s: TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 works" % what, out[-300:])
    ok("TLS session ticket:" not in out, "%s: no TLS session ticket is issued" % what, out[-600:])
    done, out = s_client(s, "-tls1_3")
    ok(done, "%s: TLS 1.3 works" % what, out[-300:])


def read_all(sock):
    """Everything the peer sends until it closes (Connection: close)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def http11_only(s, what):
    ctx = ssl.create_default_context(cafile=s.cert)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as t:
            proto = t.selected_alpn_protocol()
            t.sendall(b"GET /v1/queues/x/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = read_all(t)
    ok(proto in (None, "http/1.1"), "%s: a client offering h2 gets http/1.1 (ALPN %r)" % (what, proto))
    line = data.split(b"\r\n", 1)[0]
    eq(line, b"HTTP/1.1 401 Missing API Key", "%s: ... and its status line with the reason phrase" % what)


def headers(s, what):
    r = s.call("GET", "/v1/ping")
    eq(r.headers.get("Server"), "nginx", "%s: Server shows no version" % what)
    ok((r.headers.get("Strict-Transport-Security") or "").startswith("max-age="),
       "%s: HSTS on a 200" % what, str(r.headers))
    r = s.call("GET", "/v1/ping", key=None)
    ok((r.headers.get("Strict-Transport-Security") or "").startswith("max-age="),
       "%s: HSTS on an error" % what, str(r.headers))


def plain_http(s):
    for method, body in (("GET", None), ("POST", b"key=lead1")):
        c = socket.create_connection(("127.0.0.1", s.http_port), timeout=30)
        req = ("%s /v1/queues/welcome/claim?key=lead1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Authorization: Bearer %s\r\nConnection: close\r\n" % (method, SECRET_KEY)).encode()
        if body:
            req += b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n" % len(body)
        c.sendall(req + b"\r\n" + (body or b""))
        data = read_all(c)
        c.close()
        head, _, payload = data.partition(b"\r\n\r\n")
        eq(head.split(b"\r\n", 1)[0], b"HTTP/1.1 403 Forbidden", "http %s: 403, not a redirect" % method)
        ok(b"\r\nLocation:" not in head, "http %s: no Location header" % method, head.decode())
        ok(b'"error":"https_required"' in payload and b"exposed" in payload,
           "http %s: a JSON body that says to use https and that the key was exposed" % method,
           payload.decode("utf-8", "replace"))
        ok(b"application/json" in head, "http %s: Content-Type application/json" % method, head.decode())


class Listener:
    """A stand-in for whatever might sit where the 503 responder should:
    records every byte it receives and answers a forged win."""

    FORGED = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
              b"Connection: close\r\n\r\n{\"claimed\":true}")

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(16)
        self.received = b""
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            c.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            # Recorded before the answer: the caller's response is what
            # tells the test it may read what came in.
            self.received += data
            try:
                c.sendall(self.FORGED)
            except OSError:
                pass
            c.close()

    def close(self):
        self.sock.close()


def fallback_gets_nothing(s):
    """casqd stopped: nginx turns to the responder's socket. What reaches
    it must hold none of the caller's request."""
    s.stop_casqd()
    lst = Listener(s.fallback_sock)
    try:
        c = s.client()
        r = c.call("POST", "/v1/queues/welcome/claim", params={"key": SECRET_LEAD},
                   body={"claimant": SECRET_LEAD, "request_id": SECRET_ID}, key=SECRET_KEY,
                   auth="x-api-key",
                   headers={"Authorization": "Bearer " + SECRET_KEY, "Idempotency-Key": SECRET_ID,
                            "Cookie": "session=" + SECRET_ID})
        c.close()
    finally:
        lst.close()
    comment("the stand-in received: %r" % lst.received[:400])
    ok(lst.connections >= 1, "the stand-in at the responder's socket was reached", repr(r))
    got = lst.received
    for secret in (SECRET_KEY, SECRET_LEAD, SECRET_ID, "jo.secret%40example.com"):
        ok(secret.encode() not in got, "no %r in what the responder's socket received" % secret[:12])
    for h in (b"authorization:", b"x-api-key:", b"idempotency-key:", b"cookie:"):
        ok(h not in got.lower(), "no %s header reaches the responder's socket" % h.decode()[:-1])
    ok(got.startswith(b"GET /casq-unavailable HTTP/1.0\r\n") or got.startswith(b"POST /casq-unavailable "),
       "the responder gets a fixed path without the query", got[:80])


def unavailable(s, what):
    s.stop_casqd()
    r = s.call("POST", "/v1/queues/welcome/claim", body={"key": "k"})
    eq((r.status, r.reason), (503, "Unavailable"), "%s: casqd down: 503 Unavailable" % what)
    eq(r.get("error"), "unavailable", "%s: ... with the JSON body" % what)


def main():
    with Stack(workers=1, site=True) as s:
        comment("production site: nginx/casq-site.conf + casq-stream.conf")
        http11_only(s, "site")
        tls(s, "site")
        headers(s, "site")
        plain_http(s)
        eq(s.call("POST", "/v1/queues/site/enqueue", body={"key": "a"}).get("enqueued"), True,
           "site: the API works through it")
        unavailable(s, "site")
    with Stack(workers=1, site=True, stream=False) as s:
        fallback_gets_nothing(s)
    with Stack(workers=1) as s:
        comment("development template: nginx/casq-dev.conf.in")
        http11_only(s, "dev")
        tls(s, "dev")
        headers(s, "dev")
        unavailable(s, "dev")


run_main(main)
