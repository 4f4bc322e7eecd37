#!/usr/bin/env python3
"""A worker out of file descriptors neither spins nor floods its log, and
recovers by itself: the worker's RLIMIT_NOFILE is lowered (prlimit) to a
few descriptors above what it holds, then 200 local connections are opened
to the FastCGI socket and kept open, so that accept fails with EMFILE while
connections wait in the backlog. Before, the accept loop retried at once:
100% of a core and a "Too many open files" line per try (millions of lines
a second). Now a failed accept pauses new connections for 100 ms and is
logged at most once a second with a count, so over 2 s the worker uses a
few milliseconds of CPU, not most of a core. Once the connections close,
requests through nginx are answered again, with the limit still low."""

import os
import re
import resource
import socket
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, ok, run_main, worker_pids  # noqa: E402

PEERS = 200
HEADROOM = 4            # descriptors the worker may still open
WATCH_S = 2.0
MAX_CPU_SHARE = 0.1     # of a core; a spinning accept loop takes 0.5 to 1
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
LOG_CAP = 1 << 20       # stop watching early if the log floods (the failure)


def cpu_s(pid):
    """utime + stime of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def accept_lines(text):
    return [ln for ln in text.splitlines() if re.search(r"\baccept\b", ln)]


def flooded(s, offset):
    return os.path.getsize(s.casqd_log) - offset > LOG_CAP


def read_log(s, offset):
    with open(s.casqd_log, "rb") as f:
        f.seek(offset)
        return f.read(LOG_CAP * 4).decode("utf-8", "replace")


def main():
    with Stack(workers=1, keep_conn="on") as s:
        wpid = worker_pids(s.casqd.pid)[0]
        nfd = len(os.listdir("/proc/%d/fd" % wpid))
        soft, hard = resource.prlimit(wpid, resource.RLIMIT_NOFILE)
        resource.prlimit(wpid, resource.RLIMIT_NOFILE, (nfd + HEADROOM, hard))
        comment("worker %d holds %d descriptors; RLIMIT_NOFILE %d -> %d"
                % (wpid, nfd, soft, nfd + HEADROOM))
        offset = os.path.getsize(s.casqd_log)
        peers = []
        t0 = time.monotonic()
        try:
            for _ in range(PEERS):
                p = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                p.connect(s.sock)
                peers.append(p)
            # the worker accepts until it is out of descriptors
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not flooded(s, offset) and \
                    len(os.listdir("/proc/%d/fd" % wpid)) < nfd + HEADROOM:
                time.sleep(0.01)
            c0, w0 = cpu_s(wpid), time.monotonic()
            while time.monotonic() < w0 + WATCH_S and not flooded(s, offset):
                time.sleep(0.01)
            cpu, wall = cpu_s(wpid) - c0, time.monotonic() - w0
            held = len(os.listdir("/proc/%d/fd" % wpid))
        finally:
            for p in peers:
                p.close()
        log_size = os.path.getsize(s.casqd_log) - offset
        comment("out of descriptors for %.2f s (holding %d): %.3f s of CPU, "
                "%d bytes of log" % (wall, held, cpu, log_size))
        eq(held, nfd + HEADROOM, "the worker ran out of descriptors")
        # /proc counts CPU in ticks: allow two on top of the share
        ok(cpu <= MAX_CPU_SHARE * wall + 2 * TICK_S,
           "the worker did not spin: under %.0f%% of a core" % (100 * MAX_CPU_SHARE),
           "%.3f s of CPU in %.2f s" % (cpu, wall))

        r = s.call("GET", "/healthz", key=None)
        eq(r.status, 200, "after the connections closed, /healthz answers through nginx")
        r = s.call("GET", "/v1/queues/fd/enqueue", params={"key": "k1"})
        eq((r.status, r.get("enqueued")), (200, True), "and an enqueue is answered")
        elapsed = time.monotonic() - t0
        lines = accept_lines(read_log(s, offset))
        comment("%d accept line(s) in %.1f s:\n%s" % (len(lines), elapsed, "\n".join(lines[:8])))
        ok(1 <= len(lines) <= int(elapsed) + 2,
           "accept failures logged at most once a second (plus the recovery)",
           "%d lines in %.1f s" % (len(lines), elapsed))
        ok(any(re.search(r"Too many open files", ln) for ln in lines),
           "the log names the error")
        ok(any(re.search(r"Too many open files: \d+ failure", ln) for ln in lines),
           "a line counts the failures since the one before")
        eq(resource.prlimit(wpid, resource.RLIMIT_NOFILE)[0], nfd + HEADROOM,
           "the same worker, its limit still low")


run_main(main)
