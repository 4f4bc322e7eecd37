"""casqtest - harness for casq's integration tests.

Every test drives the real stack: nginx over TLS -> FastCGI on a unix
socket -> casqd -> LMDB in a temp dir. Stack() starts both servers in
their own process groups and always kills them again (context manager,
atexit and SIGTERM/SIGINT/SIGHUP handlers), so a failing or interrupted
test never leaves anything running.

The test scripts print TAP through ok()/eq()/done(); the plan is printed
at the end, which automake's tap-driver.sh accepts.

Environment: CASQD (the casqd binary), CASQ_SRCDIR (the source tree, read
only), CASQ_BUILDDIR; CASQ_KEEP_TMP=1 keeps the temp dirs for a post
mortem; CASQ_NGINX_TEMPLATE overrides $CASQ_SRCDIR/nginx/casq-dev.conf.in.
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")

# ---------------------------------------------------------------- TAP

_tap_lock = threading.Lock()
_tap_n = 0
_tap_failed = 0


def _one_line(s):
    """One TAP line: newlines shown as \\n, '#' escaped so that text such as
    "#skip" in a key or a response is never read as a TAP directive."""
    return str(s).replace("\r", "\\r").replace("\n", "\\n").replace("#", "\\#")


def ok(cond, name, detail=""):
    """One TAP assertion; detail (got vs expected) is printed on failure."""
    global _tap_n, _tap_failed
    with _tap_lock:
        _tap_n += 1
        if cond:
            print("ok %d - %s" % (_tap_n, _one_line(name)), flush=True)
        else:
            _tap_failed += 1
            msg = "not ok %d - %s" % (_tap_n, _one_line(name))
            if detail:
                msg += " : " + _one_line(detail)
            print(msg, flush=True)
    return bool(cond)


def eq(got, want, name):
    return ok(got == want, name, "got %r, expected %r" % (got, want))


def comment(msg):
    with _tap_lock:
        for line in str(msg).splitlines() or [""]:
            print("# " + line, flush=True)


def skip(name, reason):
    """One TAP assertion that was not run: "ok N - name # SKIP reason"."""
    global _tap_n
    with _tap_lock:
        _tap_n += 1
        print("ok %d - %s # SKIP %s" % (_tap_n, _one_line(name), _one_line(reason)),
              flush=True)


def skip_all(reason):
    """Skip the whole file: print "1..0 # SKIP reason" and exit 0. Only
    before the first assertion."""
    with _tap_lock:
        if _tap_n:
            raise RuntimeError("skip_all after %d assertions" % _tap_n)
        print("1..0 # SKIP %s" % _one_line(reason), flush=True)
    _cleanup_all()
    sys.stdout.flush()
    os._exit(0)


def done():
    """Print the plan and exit 0 (the TAP driver counts the failures)."""
    with _tap_lock:
        if _tap_n == 0:
            print("not ok 1 - the test ran at least one assertion", flush=True)
            print("1..1", flush=True)
        else:
            print("1..%d" % _tap_n, flush=True)
        if _tap_failed:
            print("# %d of %d failed" % (_tap_failed, _tap_n), flush=True)
    sys.stdout.flush()
    sys.exit(0)


def run_main(fn):
    """Run a test's main(); an exception becomes a failed assertion with
    the traceback as TAP comments, then the plan is printed."""
    try:
        fn()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: B902 - report everything as TAP
        ok(False, "test body ran to the end without an exception",
           "%s: %s" % (type(e).__name__, e))
        comment(traceback.format_exc())
    finally:
        _cleanup_all()
    done()


# ---------------------------------------------------------------- process hygiene

_live_groups = set()     # pgids started by this process
_live_tmpdirs = set()
_cleanup_lock = threading.RLock()   # a signal may arrive during cleanup


def _kill_group(pgid, timeout=10.0, proc=None):
    """SIGTERM a process group, SIGKILL it after timeout s."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is None:
            time.sleep(0.02)
            continue
        if not _group_alive(pgid):
            break
        # The leader may be reaped while members linger.
        time.sleep(0.02)
    else:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    _live_groups.discard(pgid)


def _group_alive(pgid):
    """Any process of the group that is not a zombie (PID 1 in a container
    may never reap orphans, so kill(-pgid, 0) is not enough)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def spawn(argv, **kw):
    """Popen in a new session (own process group), remembered for cleanup."""
    kw.setdefault("start_new_session", True)
    p = subprocess.Popen(argv, **kw)
    _live_groups.add(p.pid)
    return p


def kill(proc, timeout=10.0):
    if proc is None:
        return
    _kill_group(proc.pid, timeout, proc)


def _cleanup_all():
    with _cleanup_lock:
        for pgid in list(_live_groups):
            _kill_group(pgid, 5.0)
        for d in list(_live_tmpdirs):
            if not os.environ.get("CASQ_KEEP_TMP"):
                shutil.rmtree(d, ignore_errors=True)
            _live_tmpdirs.discard(d)


def _on_signal(sig, frame):
    _cleanup_all()
    os._exit(128 + sig)


atexit.register(_cleanup_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def mkdtemp(tag="casqtest"):
    d = tempfile.mkdtemp(prefix=tag + "-", dir="/tmp")
    _live_tmpdirs.add(d)
    return d


def rmtemp(d):
    if not os.environ.get("CASQ_KEEP_TMP"):
        shutil.rmtree(d, ignore_errors=True)
    _live_tmpdirs.discard(d)


def tail(path, n=20):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return "(%s)" % e


def casqd_path():
    p = os.environ.get("CASQD")
    if not p:
        b = os.environ.get("CASQ_BUILDDIR") or os.getcwd()
        p = os.path.join(b, "src", "casqd")
    return p


def srcdir():
    return os.environ.get("CASQ_SRCDIR") or os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mint_key(name="test", *attrs):
    """Return (key, keys-file line) from casqd --mint-key NAME [ATTRS...]
    (e.g. "--scope", "read")."""
    r = subprocess.run([casqd_path(), "--mint-key", name] + list(attrs), capture_output=True,
                       timeout=10)
    if r.returncode != 0:
        raise RuntimeError("casqd --mint-key failed (%d): %s" % (
            r.returncode, r.stderr.decode("utf-8", "replace")))
    lines = r.stdout.decode().splitlines()
    if len(lines) != 2:
        raise RuntimeError("casqd --mint-key printed %r" % r.stdout)
    return lines[0], lines[1]


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_path(path, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def worker_pids(master_pid):
    """Child pids of a process, from /proc."""
    kids = []
    taskdir = "/proc/%d/task" % master_pid
    try:
        for t in os.listdir(taskdir):
            try:
                with open(os.path.join(taskdir, t, "children")) as f:
                    kids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    if not kids:  # kernels without the children file
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2:].split()[1])
                if ppid == master_pid:
                    kids.append(int(d))
            except (OSError, ValueError):
                pass
    return sorted(kids)


# ---------------------------------------------------------------- HTTP client

class Response:
    def __init__(self, status, reason, headers, raw):
        self.status = status
        self.reason = reason
        self.headers = headers          # http.client.HTTPMessage
        self.raw = raw
        self.text = raw.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text)
        except ValueError:
            self.json = None

    def get(self, k, default=None):
        return self.json.get(k, default) if isinstance(self.json, dict) else default

    def keys(self):
        """Top-level keys of the JSON object, in the order sent."""
        try:
            return [k for k, _ in json.loads(self.text, object_pairs_hook=lambda p: p)]
        except (ValueError, TypeError):
            return None

    def ctype(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def __repr__(self):
        return "%d %s %s" % (self.status, self.reason, self.text.strip()[:300])


def build_target(path, params=None):
    if params is None:
        return path
    if isinstance(params, (str, bytes)):
        q = params.decode() if isinstance(params, bytes) else params
    else:
        q = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    return path + ("&" if "?" in path else "?") + q


class Client:
    """One persistent HTTPS connection (not thread-safe: one per thread)."""

    def __init__(self, stack, timeout=30.0):
        self.stack = stack
        self.timeout = timeout
        self.conn = None
        self.retries = 0

    def connect(self):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(
                "127.0.0.1", self.stack.port, context=self.stack.ssl_context(),
                timeout=self.timeout)
            self.conn.connect()
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method, path, params=None, body=None, content_type=None,
             headers=None, key=Ellipsis, auth="bearer", retry=True):
        """Send one request; body: bytes/str sent as is, dict/list sent as
        compact JSON with Content-Type application/json unless given.
        key=None sends no credentials; Ellipsis means the stack's key."""
        if key is Ellipsis:
            key = self.stack.key
        h = {}
        if key is not None:
            if auth == "bearer":
                h["Authorization"] = "Bearer " + key
            else:
                h["X-Api-Key"] = key
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
            if content_type is None:
                content_type = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        if content_type is not None:
            h["Content-Type"] = content_type
        if body is not None:
            h["Content-Length"] = str(len(body))
        elif method in ("POST", "PUT"):
            h["Content-Length"] = "0"
        if headers:
            h.update(headers)
        target = build_target(path, params)
        reused = self.conn is not None
        try:
            conn = self.connect()
            conn.request(method, target, body=body, headers=h)
            r = conn.getresponse()
            raw = r.read()
        except (http.client.RemoteDisconnected, ConnectionResetError,
                BrokenPipeError, http.client.CannotSendRequest):
            # A kept-alive connection the server closed while idle: the
            # request never reached casqd, so sending it again is safe.
            self.close()
            if not (reused and retry):
                raise
            self.retries += 1
            return self.call(method, path, params, body, content_type, headers,
                             key, auth, retry=False)
        except Exception:
            self.close()
            raise
        if r.will_close:
            self.close()
        return Response(r.status, r.reason, r.headers, raw)


# ---------------------------------------------------------------- FastCGI client

FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, \
    FCGI_STDERR = 1, 3, 4, 5, 6, 7


def _fcgi_record(rtype, content, req_id=1):
    out = b""
    if not content:
        return struct.pack("!BBHHBx", 1, rtype, req_id, 0, 0)
    for i in range(0, len(content), 65535):
        chunk = content[i:i + 65535]
        pad = (-len(chunk)) % 8
        out += struct.pack("!BBHHBx", 1, rtype, req_id, len(chunk), pad) + chunk + b"\0" * pad
    return out


def _fcgi_nv(name, value):
    def ln(n):
        return struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)
    name, value = name.encode(), value.encode()
    return ln(len(name)) + ln(len(value)) + name + value


def fcgi_read_stdout(s):
    """Read FastCGI records from socket s until END_REQUEST (or the peer
    closes); returns the STDOUT content: the CGI response."""
    buf, out = b"", b""
    ended = False
    while not ended:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            _, rtype, _, clen, plen = struct.unpack("!BBHHBx", buf[:8])
            if len(buf) < 8 + clen + plen:
                break
            content = buf[8:8 + clen]
            buf = buf[8 + clen + plen:]
            if rtype == FCGI_STDOUT:
                out += content
            elif rtype == FCGI_END_REQUEST:
                ended = True
    return out


def fcgi_request(addr, method, uri, body=b"", headers=None, timeout=10.0):
    """Talk FastCGI to casqd directly, as nginx would; addr is a unix
    socket path or a (host, port) tuple. Returns a Response."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    path, _, query = uri.partition("?")
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "casqtest",
        "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "https", "HTTPS": "on",
        "REQUEST_METHOD": method, "REQUEST_URI": uri, "DOCUMENT_URI": path,
        "SCRIPT_NAME": path, "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "CONTENT_TYPE": "", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "4711",
        "SERVER_ADDR": "127.0.0.1", "SERVER_PORT": "443", "SERVER_NAME": "localhost",
    }
    for k, v in (headers or {}).items():
        if k.lower() == "content-type":
            params["CONTENT_TYPE"] = v
        else:
            params["HTTP_" + k.upper().replace("-", "_")] = v
    s = socket.socket(socket.AF_INET if isinstance(addr, tuple) else socket.AF_UNIX,
                      socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(addr)
        msg = _fcgi_record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0))
        msg += _fcgi_record(FCGI_PARAMS, b"".join(_fcgi_nv(k, v) for k, v in params.items()))
        msg += _fcgi_record(FCGI_PARAMS, b"")
        if body:
            msg += _fcgi_record(FCGI_STDIN, body)
        msg += _fcgi_record(FCGI_STDIN, b"")
        s.sendall(msg)
        out = fcgi_read_stdout(s)
    finally:
        s.close()
    head, _, raw = out.partition(b"\r\n\r\n")
    msg = http.client.HTTPMessage()
    status, reason = 200, "OK"
    for line in head.decode("latin-1").split("\r\n"):
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        v = v.strip()
        if k.lower() == "status":
            code, _, reason = v.partition(" ")
            status = int(code)
        else:
            msg[k] = v
    return Response(status, reason, msg, raw)


# ---------------------------------------------------------------- the stack

def nginx_template_path():
    return os.environ.get("CASQ_NGINX_TEMPLATE") or os.path.join(
        srcdir(), "nginx", "casq-dev.conf.in")


def site_paths():
    d = os.path.join(srcdir(), "nginx")
    return os.path.join(d, "casq-site.conf"), os.path.join(d, "casq-stream.conf")


def _sub_once(text, old, new, what):
    """Replace old (which must appear exactly once) in text: a production
    file that changed shape fails the test instead of being half-rendered."""
    n = text.count(old)
    if n != 1:
        raise RuntimeError("%s: expected %r once, found it %d times" % (what, old, n))
    return text.replace(old, new)


def render_site(prefix, port, http_port, sock, cert, certkey, fallback, stream):
    """The production nginx/casq-site.conf (and casq-stream.conf when
    stream) as Debian would load them, with only addresses and paths
    changed: loopback ports, the test's certificate, casqd's socket and a
    503 responder socket inside prefix. Returns the main nginx.conf text."""
    site_path, stream_path = site_paths()
    with open(site_path) as f:
        site = f.read()
    for old, new in (
            ("listen 80;", "listen 127.0.0.1:%d;" % http_port),
            ("listen [::]:80;", ""),
            ("listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % port),
            ("listen [::]:443 ssl;", ""),
            ("/etc/ssl/casq/fullchain.pem", cert),
            ("/etc/ssl/casq/privkey.pem", certkey),
            ("server unix:/run/casq/casqd.sock", "server unix:" + sock),
            ("/run/nginx-casq-503.sock", fallback),
            ("include fastcgi_params;", "include /etc/nginx/fastcgi_params;"),
            ("alias /usr/share/casq/web/;", "alias %s/;" % os.path.join(srcdir(), "web"))):
        site = _sub_once(site, old, new, site_path)
    with open(os.path.join(prefix, "site.conf"), "w") as f:
        f.write(site)
    stream_conf = ""
    if stream:
        with open(stream_path) as f:
            stream_conf = _sub_once(f.read(), "/run/nginx-casq-503.sock", fallback, stream_path)
    temp = "".join("    %s_temp_path %s/%s_temp;\n" % (t, prefix, t)
                   for t in ("client_body", "fastcgi", "proxy", "uwsgi", "scgi"))
    return ("%s\nload_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
            "daemon off;\nmaster_process on;\nworker_processes 1;\n"
            "pid %s/nginx.pid;\nerror_log %s/error.log;\n"
            "events {\n    worker_connections 1024;\n}\n%s\n"
            "http {\n    access_log %s/access.log;\n%s    include %s/site.conf;\n}\n"
            % ("user root;" if os.geteuid() == 0 else "", prefix, prefix,
               stream_conf, prefix, temp, prefix))


class Stack:
    """nginx (TLS) -> casqd (FastCGI, unix socket) -> LMDB, in a temp dir."""

    def __init__(self, workers=4, keep_conn="on", extra_args=(), nginx=True,
                 tag="casqtest", test_clock=False, site=False, stream=True):
        """test_clock: casqd gets CASQ_TEST_CLOCK_FILE=<tmp>/clock (starting
        at "0"), moved forward by advance(); it only has an effect on a
        casqd configured with --enable-test-clock (see test_clock_works).
        site: run the production nginx/casq-site.conf (plain http on
        self.http_port) instead of the development template; stream: with
        its 503 responder (casq-stream.conf) on self.fallback_sock."""
        self.site = site
        self.stream = stream
        self.http_port = None
        self.workers = workers
        self.test_clock = test_clock
        self.keep_conn = keep_conn
        self.extra_args = list(extra_args)
        self.with_nginx = nginx
        self.tag = tag
        self.tmp = None
        self.casqd = None
        self.nginx = None
        self.port = None
        self._ctx = None
        self._client = None
        self.key = None

    # paths
    def path(self, *p):
        return os.path.join(self.tmp, *p)

    @property
    def sock(self):
        return self.path("casqd.sock")

    @property
    def data(self):
        return self.path("data")

    @property
    def clock_file(self):
        return self.path("clock")

    @property
    def casqd_log(self):
        return self.path("casqd.log")

    @property
    def nginx_log(self):
        return self.path("nginx", "error.log")

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.tmp = mkdtemp(self.tag)
        self.key, line = mint_key("test")
        with open(self.path("keys"), "w") as f:
            f.write("# casqtest\n%s\n" % line)
        if self.test_clock:
            self._write_clock(0)
        self.start_casqd()
        if self.with_nginx:
            self._make_cert()
            self._start_nginx()
            self.wait_healthy()

    def casqd_argv(self):
        return [casqd_path(), "--listen", "unix:" + self.sock,
                "--socket-mode", "0660", "--data", self.data,
                "--keys", self.path("keys"), "--workers", str(self.workers)] + \
            self.extra_args

    def start_casqd(self):
        log = open(self.casqd_log, "ab")
        try:
            env = None
            if self.test_clock:
                env = dict(os.environ, CASQ_TEST_CLOCK_FILE=self.clock_file)
            self.casqd = spawn(self.casqd_argv(), stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, env=env)
        finally:
            log.close()
        if not wait_for_path(self.sock, 10, self.casqd):
            raise RuntimeError("casqd did not create its socket (exit %r); log:\n%s"
                               % (self.casqd.poll(), tail(self.casqd_log)))

    def stop_casqd(self, timeout=10.0):
        """SIGTERM casqd's group; return its exit status."""
        if self.casqd is None:
            return None
        kill(self.casqd, timeout)
        rc = self.casqd.returncode
        self.casqd = None
        return rc

    def restart_casqd(self, extra_args=None):
        """Stop and start casqd alone on the same data; extra_args, when
        given, replaces the extra arguments of the first start."""
        self.stop_casqd()
        if extra_args is not None:
            self.extra_args = list(extra_args)
        self.start_casqd()
        if self.with_nginx:
            self.wait_healthy()

    # ------------------------------------------------------------ test clock

    def _write_clock(self, ms):
        tmp = self.clock_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % ms)
        os.rename(tmp, self.clock_file)     # casqd never reads half a file

    def clock_ms(self):
        """The test clock's offset in milliseconds."""
        with open(self.clock_file) as f:
            return int(f.read().strip() or 0)

    def advance(self, seconds):
        """Move casqd's clock forward by seconds (needs test_clock=True)."""
        if not self.test_clock:
            raise RuntimeError("Stack(test_clock=True) is needed for advance()")
        self._write_clock(self.clock_ms() + int(round(seconds * 1000)))

    def test_clock_works(self, ns="casqtest-clock-probe"):
        """True when casqd follows the clock file: a value set with ttl=5
        is gone after advance(10). Advances the clock by 10 s; leaves the
        namespace ns behind."""
        r = self.call("GET", "/v1/kv/%s/set" % ns, params={"key": "probe",
                                                          "value": "x", "ttl": 5})
        if r.status != 200 or r.get("ok") is not True:
            raise RuntimeError("test clock probe: set answered %r" % r)
        self.advance(10)
        r = self.call("GET", "/v1/kv/%s/get" % ns, params={"key": "probe"})
        if r.status != 200 or r.get("found") not in (True, False):
            raise RuntimeError("test clock probe: get answered %r" % r)
        return r.get("found") is False

    # ------------------------------------------------------------ keys

    def reload_keys(self, timeout=30.0):
        """SIGHUP casqd and wait until every worker has reloaded the keys
        file in place (one "keys reloaded" line each in the log)."""
        def reloads():
            with open(self.casqd_log, errors="replace") as f:
                return f.read().count("keys reloaded:")
        before = reloads()
        os.kill(self.casqd.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reloads() >= before + self.workers:
                return
            time.sleep(0.05)
        raise RuntimeError("the workers did not reload their keys after SIGHUP "
                           "(%d of %d); log:\n%s" % (reloads() - before, self.workers,
                                                     tail(self.casqd_log)))

    def add_key(self, name, *attrs, timeout=30.0):
        """Mint a key named name (with --mint-key's attrs), append it to the
        keys file, SIGHUP casqd and wait until every worker reloaded its
        keys and the key works; returns the key."""
        key, line = mint_key(name, *attrs)
        with open(self.path("keys"), "a") as f:
            f.write("%s\n" % line)
        deadline = time.monotonic() + timeout
        self.reload_keys(timeout)
        c = self.client(timeout=5)
        good = 0
        try:
            while time.monotonic() < deadline and good < 10:
                r = c.call("GET", "/v1/ping", key=key)
                good = good + 1 if r.status == 200 else 0
                if r.status != 200:
                    time.sleep(0.05)
        finally:
            c.close()
        if good < 10:
            raise RuntimeError("the new key %s does not work after SIGHUP" % name)
        return key

    def _make_cert(self):
        cert, key = self.path("cert.pem"), self.path("cert.key")
        r = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            capture_output=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("openssl failed: %s" % r.stderr.decode("utf-8", "replace"))
        self.cert, self.certkey = cert, key

    @property
    def fallback_sock(self):
        """Where the site's 503 responder listens (site=True)."""
        return self.path("nginx", "casq-503.sock")

    def _render_nginx(self, port):
        tpl_path = nginx_template_path()
        with open(tpl_path) as f:
            tpl = f.read()
        prefix = self.path("nginx")
        for d in ("", "logs", "tmp", "client_body_temp", "fastcgi_temp",
                  "proxy_temp", "uwsgi_temp", "scgi_temp"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        if self.site:
            self.http_port = free_port()
            conf = render_site(prefix, port, self.http_port, self.sock, self.cert,
                               self.certkey, self.fallback_sock, self.stream)
            path = os.path.join(prefix, "nginx.conf")
            with open(path, "w") as f:
                f.write(conf)
            return prefix, path, conf
        values = {
            "PREFIX": prefix,
            "PORT": str(port),
            "SOCKET": self.sock,
            "CERT": self.cert,
            "CERTKEY": self.certkey,
            "CERT_KEY": self.certkey,
            "KEEP_CONN": self.keep_conn,
            "WORKER_PROCESSES": "1",
            "USER_LINE": "user root;" if os.geteuid() == 0 else "",
            "ERROR_LOG": self.nginx_log,
            "PID_FILE": os.path.join(prefix, "nginx.pid"),
            "WEBROOT": os.path.join(srcdir(), "web"),
        }
        unknown = set()

        def sub(m):
            name = m.group(1)
            if name in values:
                return values[name]
            unknown.add(name)
            return m.group(0)
        conf = re.sub(r"@([A-Z_]+)@", sub, tpl)
        if unknown:
            raise RuntimeError("%s has placeholders the harness does not know: %s"
                               % (tpl_path, ", ".join(sorted(unknown))))
        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return prefix, path, conf

    def _start_nginx(self):
        last = ""
        for attempt in range(3):
            port = free_port()
            prefix, conf_path, conf = self._render_nginx(port)
            argv = ["nginx", "-p", prefix + "/", "-c", conf_path, "-e", self.nginx_log]
            if not re.search(r"^\s*daemon\s", conf, re.M):
                argv += ["-g", "daemon off;"]
            out = open(self.path("nginx.out"), "ab")
            try:
                self.nginx = spawn(argv, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=out)
            finally:
                out.close()
            self.port = port
            # Bound to the port, or dead (e.g. the port was taken).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.nginx.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    return
                except OSError:
                    time.sleep(0.02)
            last = "nginx exit %r; output:\n%s\nerror.log:\n%s" % (
                self.nginx.poll(), tail(self.path("nginx.out")), tail(self.nginx_log))
            kill(self.nginx)
            self.nginx = None
        raise RuntimeError("nginx did not start: " + last)

    def ssl_context(self):
        if self._ctx is None:
            ctx = ssl.create_default_context(cafile=self.cert)
            ctx.check_hostname = True
            self._ctx = ctx
        return self._ctx

    def client(self, timeout=30.0):
        return Client(self, timeout)

    def wait_healthy(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.casqd is not None and self.casqd.poll() is not None:
                break
            if self.nginx is not None and self.nginx.poll() is not None:
                break
            c = self.client(timeout=2)
            try:
                r = c.call("GET", "/healthz", key=None)
                if r.status == 200:
                    return
                last = r
            except (OSError, http.client.HTTPException) as e:
                last = e
            finally:
                c.close()
            time.sleep(0.05)
        raise RuntimeError(
            "stack not healthy (last: %r; casqd exit %r, nginx exit %r)\n"
            "casqd.log:\n%s\nnginx error.log:\n%s" % (
                last, self.casqd and self.casqd.poll(),
                self.nginx and self.nginx.poll(),
                tail(self.casqd_log), tail(self.nginx_log)))

    def call(self, method, path, params=None, body=None, content_type=None,
             headers=None, key=Ellipsis, auth="bearer"):
        """One request on the stack's shared connection (main thread only)."""
        if self._client is None:
            self._client = self.client()
        return self._client.call(method, path, params, body, content_type,
                                 headers, key, auth)

    # shorthands for the queue routes, GET with query parameters
    def q(self, queue, op, **params):
        path = "/v1/queues/%s/%s" % (queue, op)
        return self.call("GET", path, params={k: v for k, v in params.items()
                                              if v is not None})

    def stats(self, queue):
        return self.call("GET", "/v1/queues/" + queue)

    def stop(self):
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.nginx is not None:
            kill(self.nginx)
            self.nginx = None
        self.stop_casqd()
        if self.tmp is not None:
            if os.environ.get("CASQ_KEEP_TMP"):
                comment("kept " + self.tmp)
            rmtemp(self.tmp)
            self.tmp = None


def run_threads(n, target, timeout=120.0):
    """Run target(i) in n threads; return the exceptions raised (as text),
    plus one entry per thread still running after timeout s."""
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # noqa: B902 - reported as a failure
            errors.append("%s: %s" % (type(e).__name__, e))
    ts = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + timeout
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
    return errors + ["thread still running" for t in ts if t.is_alive()]


def timed(fn, *a, **kw):
    t = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t
