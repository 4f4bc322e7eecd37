#!/usr/bin/env python3
"""FastCGI peers that stop half-way, talked to directly on casqd's socket
(nginx never does this: it buffers bodies and sends a request whole).

- A body that ends before its Content-Length (the peer closes its side)
  is answered 400 Incomplete Body, and the enqueue it carried is not done:
  a cut payload is never stored.
- A peer that stops in the middle of its parameters holds no serving
  thread: with one worker of one thread, a second request is answered
  while the first peer is still connected, stuck (test_hostile.py has the
  deadline and the other hostile peers)."""

import os
import socket
import struct
import sys

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (_fcgi_nv, _fcgi_record, FCGI_BEGIN_REQUEST,  # noqa: E402
                      FCGI_PARAMS, FCGI_STDIN, Stack, eq, ok, fcgi_read_stdout,
                      fcgi_request, run_main)



def params_record(s, uri, body_len):
    path = uri.partition("?")[0]
    p = {"REQUEST_METHOD": "POST", "REQUEST_URI": uri, "DOCUMENT_URI": path,
         "QUERY_STRING": "", "CONTENT_TYPE": "application/x-www-form-urlencoded",
         "CONTENT_LENGTH": str(body_len), "HTTP_AUTHORIZATION": "Bearer " + s.key}
    return _fcgi_record(FCGI_PARAMS, b"".join(_fcgi_nv(k, v) for k, v in p.items()))


def main():
    with Stack(workers=1, nginx=False, extra_args=("--threads", "1")) as s:
        body = b"key=cut&payload=%22abcdefgh%22"
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(15)
        c.connect(s.sock)
        c.sendall(_fcgi_record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0))
                  + params_record(s, "/v1/queues/peers/enqueue", len(body))
                  + _fcgi_record(FCGI_PARAMS, b"") + _fcgi_record(FCGI_STDIN, body[:12]))
        c.shutdown(socket.SHUT_WR)          # and nothing more
        out = fcgi_read_stdout(c)
        c.close()
        ok(out.startswith(b"Status: 400 Incomplete Body"), "a body cut short: 400 Incomplete Body",
           "got %r" % out[:120])
        ok(b'"error":"incomplete_body"' in out, "a body cut short: error incomplete_body",
           "got %r" % out[:200])
        r = fcgi_request(s.sock, "GET", "/v1/queues/peers/status?key=cut",
                         headers={"Authorization": "Bearer " + s.key})
        eq((r.status, r.get("reason")), (200, "no_such_queue"),
           "the cut enqueue was not done (the queue never held an item)")

        # A peer that stops in the middle of its parameters.
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.connect(s.sock)
        rec = params_record(s, "/v1/ping", 0)
        stuck.sendall(_fcgi_record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0)) + rec[:20])
        r = fcgi_request(s.sock, "GET", "/v1/ping", timeout=60,
                         headers={"Authorization": "Bearer " + s.key})
        stuck.setblocking(False)
        try:
            still = stuck.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            still = True            # open, nothing sent to it
        stuck.close()
        eq(r.status, 200, "a peer stuck in its parameters: the next request is answered")
        ok(still, "... while the stuck peer is still connected (the --peer-timeout "
           "of 10 s has not closed it)")


run_main(main)
