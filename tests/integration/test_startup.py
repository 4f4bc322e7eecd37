#!/usr/bin/env python3
"""casqd's start-up and supervision, without nginx: flags, failures with
exit status 2 and one "casqd: ..." line, stale and busy sockets, one
instance per data dir, inherited listeners (fd 0, LISTEN_FDS), SIGTERM,
SIGHUP (also while casqd starts), in-flight requests, and a worker killed
with SIGKILL."""

import errno
import hashlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (_fcgi_nv, _fcgi_record, FCGI_BEGIN_REQUEST,  # noqa: E402
                      FCGI_PARAMS, FCGI_STDIN, casqd_path, comment, eq,
                      fcgi_request, free_port, kill, mint_key, mkdtemp, ok,
                      rmtemp, run_main, spawn, tail,
                      worker_pids)


class Env:
    def __init__(self):
        self.tmp = mkdtemp("casqtest-startup")
        self.key, line = mint_key("test")
        self.keys = self.p("keys")
        with open(self.keys, "w") as f:
            f.write(line + "\n")

    def p(self, *a):
        return os.path.join(self.tmp, *a)

    def auth(self, key=None):
        return {"Authorization": "Bearer " + (key or self.key)}


def run_fail(argv, timeout=10, **kw):
    """Run casqd expecting it to exit; (rc, stdout, stderr). A casqd that
    keeps running is killed and reported as rc None."""
    p = spawn(argv, stdin=kw.pop("stdin", subprocess.DEVNULL), stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        kill(p)
        out, err = p.communicate()
        rc = None
    kill(p)
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def one_line_error(rc, err, what, must_mention=None):
    eq(rc, 2, what + ": exit status 2")
    lines = err.strip("\n").split("\n") if err.strip() else []
    ok(len(lines) == 1 and lines[0].startswith("casqd: ") and len(lines[0]) > 12,
       what + ': one line "casqd: <reason>" on stderr', "stderr %r" % err)
    if must_mention:
        ok(must_mention in err, "%s: the message names %s" % (what, must_mention), "stderr %r" % err)


def start(env, name, *extra, sock=None, data=None, keys=None, listen=True, workers=2, **kw):
    """Start a casqd that should keep running; returns (proc, sock)."""
    sock = sock or env.p(name + ".sock")
    data = data or env.p(name + ".data")
    argv = [casqd_path()]
    if listen:
        argv += ["--listen", "unix:" + sock, "--socket-mode", "0666"]
    argv += ["--data", data, "--keys", keys or env.keys, "--workers", str(workers)] + list(extra)
    log = open(env.p(name + ".log"), "ab")
    try:
        p = spawn(argv, stdout=log, stderr=log, stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
    finally:
        log.close()
    return p, sock


def healthy(addr, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return "exited %r" % proc.returncode
        try:
            r = fcgi_request(addr, "GET", "/healthz", timeout=2)
            if r.status == 200 and r.text.strip() == '{"ok":true}':
                return True
            last = repr(r)
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    return last


def term(proc, timeout=15.0):
    """SIGTERM the master alone, as a service manager would; exit status."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        return "still running after %ds" % timeout


def test_flags(env):
    rc, out, err = run_fail([casqd_path(), "--help"])
    ok(rc == 0 and "usage" in out.lower(), "--help: exit 0 with usage on stdout", "rc %r out %r" % (rc, out[:80]))
    rc, out, err = run_fail([casqd_path(), "--version"])
    ok(rc == 0 and re.match(r"^casqd \d+\.\d+", out), "--version: exit 0, 'casqd <version>'", "rc %r out %r" % (rc, out))

    rc, out, err = run_fail([casqd_path(), "--mint-key", "alice"])
    lines = out.split("\n")
    ok(rc == 0 and len(lines) == 3 and lines[2] == "", "--mint-key: exit 0, exactly two lines", "rc %r out %r" % (rc, out))
    key = lines[0] if lines else ""
    ok(re.match(r"^[A-Za-z0-9_]{43,}$", key), "--mint-key: key is 43+ chars of [A-Za-z0-9_]", repr(key))
    want = "alice:" + hashlib.sha256(key.encode()).hexdigest()
    eq(lines[1] if len(lines) > 1 else None, want, "--mint-key: second line is NAME:sha256(key)")
    rc2, out2, _ = run_fail([casqd_path(), "--mint-key", "alice"])
    ok(out2.split("\n")[0] != key, "--mint-key: two mints give different keys")

    d = env.p("flags.data")
    base = [casqd_path(), "--listen", "unix:" + env.p("flags.sock"), "--data", d, "--keys", env.keys]
    for args, what in ((["--bogus"], "unknown flag --bogus"),
                       (["--workers", "abc"], "--workers abc"),
                       (["--workers", "0"], "--workers 0"),
                       (["--map-size", "12X"], "--map-size 12X"),
                       (["--map-size", "16777217T"], "--map-size 16777217T (wraps 64 bits)"),
                       (["--map-size", "-1G"], "--map-size -1G"),
                       (["--map-size", " 1G"], "--map-size ' 1G'"),
                       (["--durability", "maybe"], "--durability maybe"),
                       (["--log-level", "loud"], "--log-level loud"),
                       (["--socket-mode", "999"], "--socket-mode 999"),
                       (["stray"], "a stray argument")):
        rc, out, err = run_fail(base + args)
        one_line_error(rc, err, what)
    rc, out, err = run_fail([casqd_path(), "--listen", "unix:" + env.p("flags.sock"), "--data", d, "--keys"])
    one_line_error(rc, err, "--keys without a value")
    rc, out, err = run_fail([casqd_path(), "--listen", "unix:" + env.p("flags.sock"), "--data", d])
    one_line_error(rc, err, "no --keys")
    rc, out, err = run_fail(base[:-1] + [env.p("no-such-keys")])
    one_line_error(rc, err, "missing keys file", "no-such-keys")
    ok(not os.path.exists(env.p("flags.sock")), "failed start-ups left no socket file")

    with open(env.p("file"), "w") as f:
        f.write("a regular file\n")
    rc, out, err = run_fail([casqd_path(), "--listen", "unix:" + env.p("flags.sock"),
                             "--data", env.p("file", "data"), "--keys", env.keys])
    one_line_error(rc, err, "data dir under a regular file", env.p("file", "data"))
    rc, out, err = run_fail([casqd_path(), "--listen", "unix:" + env.p("flags.sock"),
                             "--data", "/proc/casq-data", "--keys", env.keys])
    one_line_error(rc, err, "data dir on /proc")
    rc, out, err = run_fail([casqd_path(), "--data", d, "--keys", env.keys])
    one_line_error(rc, err, "no --listen and no socket on fd 0")
    rc, out, err = run_fail([casqd_path(), "--listen", "unix:" + env.p("file"), "--data", d,
                             "--keys", env.keys])
    one_line_error(rc, err, "--listen on a path that is a regular file")
    ok(os.path.isfile(env.p("file")), "a regular file in the socket's place was not removed")


def test_stale_and_busy(env):
    stale = env.p("stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    ok(os.path.exists(stale), "setup: a stale socket file exists")
    a, sock = start(env, "a", sock=stale)
    eq(healthy(sock, proc=a), True, "stale socket file: casqd starts and serves /healthz")
    ok(oct(os.stat(sock).st_mode & 0o777) == "0o666", "--socket-mode 0666 applied",
       oct(os.stat(sock).st_mode & 0o777))

    r = fcgi_request(sock, "POST", "/v1/queues/s/enqueue", body='{"key":"before","payload":{"v":1}}',
                     headers=dict(env.auth(), **{"Content-Type": "application/json"}))
    eq(r.get("enqueued"), True, "first casqd: enqueue before the second instances")

    rc, out, err = run_fail([casqd_path(), "--listen", "unix:" + sock, "--data", env.p("b.data"),
                             "--keys", env.keys])
    one_line_error(rc, err, "socket in use by a running casqd")
    rc, out, err = run_fail([casqd_path(), "--listen", "unix:" + env.p("b.sock"), "--data", env.p("a.data"),
                             "--keys", env.keys])
    one_line_error(rc, err, "second instance on the same data dir", env.p("a.data"))
    ok(not os.path.exists(env.p("b.sock")), "second instance on the same data dir: left no socket")
    eq(healthy(sock, 3, proc=a), True, "first casqd keeps serving after both refused starts")
    ok(os.path.exists(sock), "first casqd's socket file is still there")
    r = fcgi_request(sock, "GET", "/v1/queues/s/status?key=before", headers=env.auth())
    eq((r.get("state"), r.get("attempts")), ("ready", 0), "first casqd: item enqueued before is intact")
    r = fcgi_request(sock, "GET", "/v1/queues/s/claim?key=before", headers=env.auth())
    eq(r.get("payload"), {"v": 1}, "first casqd: item claimed with its payload")

    # --pid-file and SIGTERM
    rc = term(a)
    eq(rc, 0, "SIGTERM: exit status 0")
    ok(not os.path.exists(sock), "SIGTERM: socket file removed")
    ok(a.poll() is not None and not worker_pids(a.pid), "SIGTERM: no worker left")
    kill(a)


def test_pidfile_tcp(env):
    port = free_port()
    pidf = env.p("t.pid")
    argv = [casqd_path(), "--listen", "127.0.0.1:%d" % port, "--data", env.p("t.data"),
            "--keys", env.keys, "--workers", "1", "--pid-file", pidf]
    log = open(env.p("t.log"), "ab")
    p = spawn(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    try:
        eq(healthy(("127.0.0.1", port), proc=p), True, "--listen 127.0.0.1:PORT: serves FastCGI over TCP")
        try:
            with open(pidf) as f:
                pid = f.read().strip()
        except OSError as e:
            pid = repr(e)
        eq(pid, str(p.pid), "--pid-file holds the master's pid")
        eq(term(p), 0, "TCP listener: SIGTERM exit 0")
    finally:
        kill(p)


def test_inherited(env):
    # fd 0, spawn-fcgi style
    path = env.p("fd0.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(64)
    p, _ = start(env, "fd0", listen=False, stdin=ls.fileno())
    ls.close()
    try:
        eq(healthy(path, proc=p), True, "listening socket on fd 0 (no --listen): serves /healthz")
        r = fcgi_request(path, "GET", "/v1/ping", headers=env.auth())
        eq(r.text.strip(), '{"pong":true}', "fd 0 listener: authenticated /v1/ping")
        eq(term(p), 0, "fd 0 listener: SIGTERM exit 0")
    finally:
        kill(p)

    # systemd style: LISTEN_FDS=1, LISTEN_PID=the casqd pid, socket on fd 3
    path = env.p("sd.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(64)
    argv = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@" 3<&0 0</dev/null', casqd_path(),
            "--data", env.p("sd.data"), "--keys", env.keys, "--workers", "1"]
    log = open(env.p("sd.log"), "ab")
    p = spawn(argv, stdin=ls.fileno(), stdout=log, stderr=log)
    log.close()
    ls.close()
    try:
        eq(healthy(path, proc=p), True, "LISTEN_FDS=1 with the socket on fd 3: serves /healthz")
        eq(term(p), 0, "LISTEN_FDS listener: SIGTERM exit 0")
    finally:
        kill(p)
    if p.returncode not in (0, None):
        comment("sd.log:\n" + tail(env.p("sd.log")))


def test_supervision(env):
    m, sock = start(env, "m", workers=2)
    try:
        eq(healthy(sock, proc=m), True, "supervision: casqd with 2 workers is up")
        deadline = time.monotonic() + 5
        kids = []
        while time.monotonic() < deadline and len(kids) != 2:
            kids = worker_pids(m.pid)
            time.sleep(0.05)
        eq(len(kids), 2, "supervision: the master has 2 worker processes")

        # A worker killed with SIGKILL is replaced; requests keep working.
        victim = kids[0] if kids else None
        if victim:
            os.kill(victim, signal.SIGKILL)
        codes = []
        for i in range(20):
            try:
                codes.append(fcgi_request(sock, "GET", "/v1/ping", headers=env.auth(), timeout=5).status)
            except OSError as e:
                codes.append(repr(e))
        eq(codes, [200] * 20, "SIGKILL of a worker: the next 20 requests all succeed")
        deadline = time.monotonic() + 5
        now = []
        while time.monotonic() < deadline:
            now = worker_pids(m.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.05)
        ok(len(now) == 2 and victim not in now, "SIGKILL of a worker: the master starts a new one",
           "workers before %r, after %r" % (kids, now))
        ok(m.poll() is None, "SIGKILL of a worker: the master keeps running")
        r = fcgi_request(sock, "POST", "/v1/queues/sv/enqueue", body="key=after-kill",
                         headers=dict(env.auth(), **{"Content-Type": "application/x-www-form-urlencoded"}))
        eq(r.get("enqueued"), True, "SIGKILL of a worker: enqueue works afterwards")

        # SIGHUP: keys file re-read by the same workers, in place.
        new_key, line = mint_key("later")
        r = fcgi_request(sock, "GET", "/v1/ping", headers=env.auth(new_key))
        eq(r.status, 401, "SIGHUP: a key not yet in the keys file is refused")
        with open(env.keys, "a") as f:
            f.write(line + "\n")
        before = worker_pids(m.pid)
        m.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        st = None
        while time.monotonic() < deadline:
            st = fcgi_request(sock, "GET", "/v1/ping", headers=env.auth(new_key)).status
            if st == 200:
                break
            time.sleep(0.1)
        eq(st, 200, "SIGHUP: the new key is accepted (keys file re-read)")
        after = worker_pids(m.pid)
        eq(after, before, "SIGHUP: the same workers serve on (keys reloaded in place)")
        eq(fcgi_request(sock, "GET", "/v1/ping", headers=env.auth()).status, 200,
           "SIGHUP: the old key still works")
        ok(m.poll() is None, "SIGHUP: the master keeps running")

        # An in-flight request finishes across SIGTERM.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(15)
        c.connect(sock)
        body = b"key=inflight"
        params = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/v1/queues/sv/enqueue",
                  "DOCUMENT_URI": "/v1/queues/sv/enqueue", "QUERY_STRING": "",
                  "CONTENT_TYPE": "application/x-www-form-urlencoded",
                  "CONTENT_LENGTH": str(len(body)), "HTTP_AUTHORIZATION": "Bearer " + env.key}
        c.sendall(_fcgi_record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0))
                  + _fcgi_record(FCGI_PARAMS, b"".join(_fcgi_nv(k, v) for k, v in params.items()))
                  + _fcgi_record(FCGI_PARAMS, b"") + _fcgi_record(FCGI_STDIN, body[:4]))
        time.sleep(0.5)             # a worker has accepted it and waits for the body
        m.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        c.sendall(_fcgi_record(FCGI_STDIN, body[4:]) + _fcgi_record(FCGI_STDIN, b""))
        resp = b""
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                resp += chunk
        except OSError as e:
            comment("in-flight: %r" % e)
        c.close()
        ok(b'"enqueued":true' in resp, "SIGTERM: the in-flight request finished with its answer",
           "got %r" % resp[:200])
        try:
            rc = m.wait(15)
        except subprocess.TimeoutExpired:
            rc = "still running"
        eq(rc, 0, "SIGTERM with a request in flight: exit status 0")
        ok(not os.path.exists(sock), "SIGTERM with a request in flight: socket removed")
    finally:
        kill(m)
    # The in-flight enqueue was committed.
    n, sock2 = start(env, "n", data=env.p("m.data"), workers=1)
    try:
        eq(healthy(sock2, proc=n), True, "restart on the same data dir after SIGTERM")
        r = fcgi_request(sock2, "GET", "/v1/queues/sv/status?key=inflight", headers=env.auth())
        eq(r.get("state"), "ready", "the in-flight enqueue was committed")
    finally:
        term(n)
        kill(n)


def test_hup_while_starting(env):
    """A SIGHUP while casqd is still starting (opening or upgrading the
    database can take minutes) is held and honoured once the pool runs,
    never casqd's end. The keys file is a FIFO, so casqd waits in the
    middle of its start for as long as the test likes."""
    fifo = env.p("hup.keys")
    os.mkfifo(fifo)
    with open(env.keys) as f:
        keys = f.read()
    m, sock = start(env, "hup", keys=fifo)

    def reloads():
        return tail(env.p("hup.log"), 50).count("keys reloaded:")
    try:
        # The FIFO opens for writing once casqd has it open to read its
        # keys: casqd is inside its start, before its workers and its
        # handlers. (ENXIO until then; a casqd that ended never opens it.)
        deadline = time.monotonic() + 30
        while True:
            try:
                w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO or m.poll() is not None or \
                        time.monotonic() > deadline:
                    raise RuntimeError("casqd never opened its keys FIFO (%s): %s"
                                       % (e, tail(env.p("hup.log"))))
                time.sleep(0.01)
        m.send_signal(signal.SIGHUP)
        # What the reload will read: a plain file in the FIFO's place.
        with open(fifo + ".tmp", "w") as f:
            f.write(keys)
        os.rename(fifo + ".tmp", fifo)
        try:
            os.write(w, keys.encode())
        except BrokenPipeError:
            comment("casqd was gone before it read its keys: " + tail(env.p("hup.log")))
        os.close(w)
        eq(healthy(sock, proc=m), True,
           "SIGHUP during start-up: casqd goes on and serves /healthz")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and reloads() < 2:
            time.sleep(0.05)
        eq(reloads(), 2,
           "SIGHUP during start-up: honoured once the pool runs (both workers reload)")
        eq(term(m), 0, "SIGHUP during start-up: SIGTERM later, exit status 0")
    finally:
        kill(m)


def main():
    env = Env()
    try:
        t = time.monotonic()
        test_flags(env)
        test_stale_and_busy(env)
        test_pidfile_tcp(env)
        test_inherited(env)
        test_supervision(env)
        test_hup_while_starting(env)
        comment("total %.1f s" % (time.monotonic() - t))
    finally:
        rmtemp(env.tmp)


run_main(main)
