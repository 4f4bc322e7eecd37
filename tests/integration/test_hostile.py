#!/usr/bin/env python3
"""Hostile or broken local peers on casqd's FastCGI socket (issue 10).
Every worker reads and writes its connections without waiting (conn.c)
and checks every record before libfcgi sees it (fcgi_guard.c):

- trickling and idle peers hold no thread: /healthz and claims through
  nginx are answered while 150 of each are connected and trickling;
- params over 48 KiB in all, or one param over 16 KiB, are refused at
  once and closed, with the reason in the log, and the worker's peak RSS
  does not grow by the 200 MiB a peer offers; the 24-byte pair that used
  to abort libfcgi and a management record are refused, the worker lives;
- a request must arrive whole within --peer-timeout of its first byte,
  however steadily it trickles;
- a peer that sends many requests and never reads its answers holds no
  thread: with one serving thread, other clients are answered while it
  is stuck, and it gets every answer once it reads;
- over the cap of kept-alive connections (512 per worker) the one idle
  longest is closed first; over the cap of connections being read (64)
  the oldest; an idle connection is closed after --idle-timeout."""

import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (_fcgi_nv, _fcgi_record, FCGI_BEGIN_REQUEST,  # noqa: E402
                      FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, Stack,
                      comment, eq, fcgi_request, ok, run_main, worker_pids)

IDLE_MAX = 512          # CONN_IDLE_MAX, src/daemon.h
READING_MAX = 64        # CONN_READING_MAX
WAIT_S = 60             # how long a condition may take on a loaded machine


def wait_until(cond, timeout=WAIT_S, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()


def request(s, uri="/v1/ping", keep=True, extra=None, body=b""):
    """The records of one request as nginx sends them (keep: FCGI_KEEP_CONN)."""
    path, _, query = uri.partition("?")
    p = {"REQUEST_METHOD": "POST" if body else "GET", "REQUEST_URI": uri,
         "DOCUMENT_URI": path, "QUERY_STRING": query,
         "CONTENT_TYPE": "application/x-www-form-urlencoded" if body else "",
         "CONTENT_LENGTH": str(len(body)) if body else "",
         "HTTP_AUTHORIZATION": "Bearer " + s.key}
    p.update(extra or {})
    params = b"".join(_fcgi_nv(k, v) for k, v in p.items())
    return (_fcgi_record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 1 if keep else 0))
            + b"".join(_fcgi_record(FCGI_PARAMS, params[i:i + 32768])
                       for i in range(0, len(params), 32768))
            + _fcgi_record(FCGI_PARAMS, b"")
            + (_fcgi_record(FCGI_STDIN, body) if body else b"")
            + _fcgi_record(FCGI_STDIN, b""))


def connect(s):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(WAIT_S)
    c.connect(s.sock)
    return c


def closed(c):
    """Has casqd closed c? (EOF or reset; False while it is open.)"""
    timeout = c.gettimeout()
    c.setblocking(False)        # with a timeout, Python would wait for data
    try:
        return c.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        c.settimeout(timeout)


class Answers:
    """The answers on one kept connection, in order: their status lines."""

    def __init__(self, c):
        self.c, self.buf = c, b""

    def record(self):
        while True:
            if len(self.buf) >= 8:
                _, rtype, _, clen, plen = struct.unpack("!BBHHBx", self.buf[:8])
                if len(self.buf) >= 8 + clen + plen:
                    content = self.buf[8:8 + clen]
                    self.buf = self.buf[8 + clen + plen:]
                    return rtype, content
            chunk = self.c.recv(65536)
            if not chunk:
                raise EOFError("casqd closed the connection")
            self.buf += chunk

    def next(self):
        out = b""
        while True:
            rtype, content = self.record()
            if rtype == FCGI_STDOUT:
                out += content
            elif rtype == FCGI_END_REQUEST:
                return out.partition(b"\r\n")[0].decode("latin-1")


def read_answer(c):
    """The one answer casqd sends on c (no other is pending)."""
    return Answers(c).next()


def log_count(s, text):
    with open(s.casqd_log, errors="replace") as f:
        return f.read().count(text)


def log_has(s, text):
    return log_count(s, text) > 0


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def through_nginx(s, n, tag):
    """n calls of /healthz and n enqueue+claim pairs through nginx, each
    on a new connection: how many were answered 200."""
    good = 0
    for i in range(n):
        c = s.client(timeout=WAIT_S)
        try:
            good += c.call("GET", "/healthz", key=None).status == 200
            k = "%s%d" % (tag, i)
            good += c.call("GET", "/v1/queues/hostile/enqueue", params={"key": k}).status == 200
            r = c.call("GET", "/v1/queues/hostile/claim", params={"key": k, "claimant": "x"})
            good += r.status == 200 and r.get("claimed") is True
        finally:
            c.close()
    return good


def test_trickle_and_idle():
    n = 150
    with Stack(workers=1, extra_args=("--threads", "4")) as s:
        msg = request(s)
        trickle = [connect(s) for _ in range(n)]
        idle = [connect(s) for _ in range(n)]
        sent = [0]
        stop = threading.Event()

        def trickler():
            while sent[0] < len(msg) - 1 and not stop.is_set():
                for c in trickle:
                    try:
                        c.send(msg[sent[0]:sent[0] + 1])
                    except OSError:
                        pass
                sent[0] += 1
                stop.wait(0.2)
        t = threading.Thread(target=trickler, daemon=True)
        t.start()
        wait_until(lambda: sent[0] >= 3)
        good = through_nginx(s, 10, "t")
        still = sent[0] < len(msg) - 1
        stop.set()
        t.join()
        eq(good, 30, "%d trickling and %d idle peers: 10 healthz and 10 enqueue+claim "
           "through nginx all answered" % (n, n))
        ok(still, "... while the trickling peers were still sending their requests")
        open_idle = sum(not closed(c) for c in idle)
        eq(open_idle, n, "... and the idle peers are still connected (below the cap)")
        for c in trickle + idle:
            c.close()


def test_oversize_params():
    with Stack(workers=1, nginx=False) as s:
        pid = worker_pids(s.casqd.pid)[0]
        peak = peak_rss_kb(pid)
        # 200 MiB of params in one pair: refused by its first record
        c = connect(s)
        value = 200 << 20
        pair = struct.pack("!BI", 11, value | 0x80000000) + b"HTTP_COOKIE"
        head = _fcgi_record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0))
        chunk = b"x" * 65528
        sent, err = 0, None
        try:
            c.sendall(head + _fcgi_record(FCGI_PARAMS, pair + chunk[len(pair):]))
            sent = 65528
            while sent < value:
                c.sendall(_fcgi_record(FCGI_PARAMS, chunk))
                sent += len(chunk)
        except OSError as e:
            err = e
        got = b""
        try:
            got = c.recv(100)
        except OSError:
            pass
        c.close()
        ok(err is not None and sent < value,
           "200 MiB of params: casqd closes the connection before they are sent",
           "sent %d bytes, %r" % (sent, err))
        eq(got, b"", "... and answers nothing")
        ok(wait_until(lambda: log_has(s, "params over 49152 bytes")),
           "... with the reason in the log")
        eq(worker_pids(s.casqd.pid), [pid], "... the worker lives")
        grew = peak_rss_kb(pid) - peak
        ok(grew < 4096, "... and its peak RSS did not grow by the params",
           "grew by %d kB" % grew)
        comment("worker peak RSS %d kB before, %d kB after" % (peak, peak + grew))

        # one param over 16 KiB (all of them under 48 KiB)
        c = connect(s)
        c.sendall(request(s, extra={"HTTP_X_BIG": "y" * 17000}))
        eq(c.recv(100), b"", "one 17000-byte param: refused, nothing answered")
        c.close()
        ok(wait_until(lambda: log_has(s, "a param over 16384 bytes")),
           "... with the reason in the log")
        # as large as nginx lets a header be, and more: still served
        r = fcgi_request(s.sock, "GET", "/v1/ping", headers={
            "Authorization": "Bearer " + s.key, "X-Big": "y" * 16000,
            "X-Big2": "z" * 16000})
        eq(r.status, 200, "two 16000-byte params (32 KiB in all): answered")

        # what used to abort libfcgi, and a management record
        for name, why, data in (
                ("the 24-byte params overflow", "a param over 16384 bytes",
                 _fcgi_record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0))
                 + _fcgi_record(FCGI_PARAMS, struct.pack("!II", 0xc0000000, 0xc0000000))),
                ("an FCGI_GET_VALUES record", "a management record",
                 _fcgi_record(9, _fcgi_nv("FCGI_MAX_CONNS", ""), req_id=0))):
            before = log_count(s, "last refusal: " + why)
            c = connect(s)
            c.sendall(data)
            eq(c.recv(100), b"", "%s: refused, nothing answered" % name)
            c.close()
            # a line a second at most, naming the last refusal: one at a time
            ok(wait_until(lambda: log_count(s, "last refusal: " + why) > before),
               "... the log says why (%s)" % why)
        eq(worker_pids(s.casqd.pid), [pid], "... and the worker lives")
        r = fcgi_request(s.sock, "GET", "/v1/ping", headers={"Authorization": "Bearer " + s.key})
        eq(r.status, 200, "... and answers")


def test_request_deadline():
    with Stack(workers=1, nginx=False, extra_args=("--peer-timeout", "2")) as s:
        msg = request(s)
        c = connect(s)
        t0 = time.monotonic()
        sent = 0
        while sent < len(msg) and not closed(c):
            try:
                c.send(msg[sent:sent + 1])
            except OSError:
                break
            sent += 1
            time.sleep(0.2)
        took = time.monotonic() - t0
        c.close()
        ok(sent < len(msg), "a request trickled one byte per 0.2 s: closed before it is whole",
           "sent all %d bytes" % len(msg))
        ok(took >= 2, "... not before --peer-timeout 2 s from its first byte",
           "closed after %.1f s" % took)
        ok(wait_until(lambda: log_has(s, "1 request not whole in time")),
           "... the log says why")


def test_stuck_reader():
    # One serving thread: had it waited on the stuck peer, nothing else
    # would be answered. --peer-timeout 3600: the peer stays stuck for
    # as long as the test needs.
    with Stack(workers=1, extra_args=("--threads", "1", "--peer-timeout", "3600")) as s:
        value = "v" * 16000
        r = s.call("POST", "/v1/kv/stuck/set", body={"key": "big", "value": value})
        eq(r.status, 200, "a 16000-byte value to read back")
        n = 60          # 60 answers of 16 KB: far more than a socket buffer holds
        get = request(s, "/v1/kv/stuck/get?key=big")
        stuck = connect(s)
        stuck.sendall(get * n)
        good = through_nginx(s, 10, "s")
        eq(good, 30, "a peer that sent %d requests and reads nothing: 10 healthz and 10 "
           "enqueue+claim through nginx answered" % n)
        ok(not closed(stuck), "... while its connection is still open with answers unsent")
        reader = Answers(stuck)
        answers = [reader.next() for _ in range(n)]
        stuck.close()
        eq(answers, ["Status: 200 OK"] * n, "... and once it reads, it gets all %d answers" % n)


def test_idle_cap_and_timeout():
    # One serving thread: it parks each connection after its answer
    # before it accepts the next, so they are parked in this order.
    with Stack(workers=1, nginx=False, extra_args=("--threads", "1")) as s:
        ping = request(s)
        conns = []
        for _ in range(IDLE_MAX + 10):
            c = connect(s)
            c.sendall(ping)
            read_answer(c)      # then casqd parks it: idle, in this order
            conns.append(c)
        ok(wait_until(lambda: sum(closed(c) for c in conns) >= 10),
           "%d kept connections: 10 over the cap are closed" % len(conns))
        gone = [i for i, c in enumerate(conns) if closed(c)]
        eq(gone, list(range(10)), "... the 10 idle longest")
        ok(wait_until(lambda: log_has(s, "10 idle over the cap")), "... the log says so")
        c = conns[-1]
        c.sendall(ping)
        eq(read_answer(c), "Status: 200 OK", "the newest kept connection still answers")
        for c in conns:
            c.close()

    with Stack(workers=1, nginx=False, extra_args=("--idle-timeout", "2")) as s:
        c = connect(s)
        t0 = time.monotonic()
        c.sendall(request(s))
        read_answer(c)
        ok(wait_until(lambda: closed(c)), "--idle-timeout 2: an idle kept connection is closed")
        took = time.monotonic() - t0
        ok(took >= 2, "... not before 2 s", "after %.1f s" % took)
        c.close()


def test_reading_cap():
    with Stack(workers=1, nginx=False, extra_args=("--threads", "1")) as s:
        part = request(s)[:30]          # BEGIN and part of the params
        conns = []
        for _ in range(READING_MAX + 5):
            c = connect(s)
            c.sendall(part)
            # With one serving thread, epoll reports connections in the
            # order their bytes came: once the ping is answered, c's
            # part was read, and c waits in the reading list.
            eq_ping = fcgi_request(s.sock, "GET", "/v1/ping",
                                   headers={"Authorization": "Bearer " + s.key})
            if eq_ping.status != 200:
                break
            conns.append(c)
        eq(len(conns), READING_MAX + 5, "%d peers with part of a request: pings between "
           "them answered" % (READING_MAX + 5))
        ok(wait_until(lambda: sum(closed(c) for c in conns) >= 5),
           "... 5 over the cap of %d are closed" % READING_MAX)
        gone = [i for i, c in enumerate(conns) if closed(c)]
        eq(gone, list(range(5)), "... the 5 oldest")
        ok(wait_until(lambda: log_has(s, "5 reading over the cap")), "... the log says so")
        for c in conns:
            c.close()


def main():
    test_trickle_and_idle()
    test_oversize_params()
    test_request_deadline()
    test_stuck_reader()
    test_idle_cap_and_timeout()
    test_reading_cap()


run_main(main)
