#!/usr/bin/env python3
"""Group commit under load, through nginx + TLS + FastCGI + casqd + LMDB.

(a) 4 workers x 32 threads, 128+ client connections so that each worker's
    committer carries many operations per commit: one hot key claimed by
    256 connections (exactly one winner); 5,000 items popped by two
    flushers of 64 connections each (each item exactly once, none lost);
    1,000 leased items with 10% left to expire (lease=1, real time), each
    acked exactly once.
(b) kill -9 of a worker in the middle of batches (2 workers x 32 threads,
    64 connections): every acknowledged enqueue and claim is durable, no
    item is handed out twice, none is lost; requests that failed (503 or
    a broken connection) were not acknowledged and are retried."""

import collections
import http.client
import os
import re
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (Stack, comment, eq, ok, run_main, run_threads, skip,  # noqa: E402
                      worker_pids)
from test_races import enqueue_all, race_flush, race_leases, race_one_key  # noqa: E402

N_HOT = 256
N_POP = 5000
FLUSHERS, FLUSH_THREADS = 2, 64
N_LEASE = 1000
LEASE_THREADS = 128
ENQ_THREADS = 128
N_KILL = 3000
KILL_THREADS = 64
KILL_AFTER_S = 0.5
DEADLINE_S = 60
GROUP_RE = re.compile(r"group commit: (\d+) operation\(s\) in (\d+) commit\(s\)")


# ------------------------------------------------------------------ (a)
# test_races.py's scenarios with more items and connections.

def hot_key(s):
    race_one_key(s, n=N_HOT, queue="hot", name="batching: hot key", timeout=DEADLINE_S)


def flush(s):
    race_flush(s, n=N_POP, flushers=FLUSHERS, flush_threads=FLUSH_THREADS,
               enq_threads=ENQ_THREADS, queue="flush", name="batching: flush",
               timeout=DEADLINE_S)


def leases(s):
    race_leases(s, n=N_LEASE, consumers=LEASE_THREADS, enq_threads=ENQ_THREADS,
                queue="lease", name="batching: lease", deadline_s=DEADLINE_S,
                timeout=DEADLINE_S + 10)


def group_commit_stats(s, what):
    """Stop casqd gracefully and read the committers' totals (debug log)."""
    s.stop_casqd()
    with open(s.casqd_log, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    ops = commits = 0
    for m in GROUP_RE.finditer(text):
        ops += int(m.group(1))
        commits += int(m.group(2))
    comment("%s: group commit carried %d operations in %d commits (%.1f per commit)"
            % (what, ops, commits, ops / commits if commits else 0))
    ok(commits > 0 and ops > commits,
       "%s: commits carried more than one operation on average (batching happened)" % what,
       "%d operations in %d commits" % (ops, commits))


# ------------------------------------------------------------------ (b)

class Retrier:
    """One connection; a request that fails (503 from nginx, a broken
    connection) is counted and sent again: it was not acknowledged."""

    def __init__(self, s):
        self.c = s.client(timeout=30)
        self.failed = 0
        self.failures = []

    def call(self, path, params):
        for _ in range(200):
            try:
                r = self.c.call("GET", path, params=params, retry=False)
            except (OSError, http.client.HTTPException) as e:
                self.c.close()
                self.failed += 1
                self.failures.append("%s: %s" % (type(e).__name__, e))
                time.sleep(0.02)
                continue
            if r.status in (502, 503, 504):
                self.failed += 1
                self.failures.append("%d %s" % (r.status, r.reason))
                time.sleep(0.02)
                continue
            return r
        raise RuntimeError("%s: 200 failures in a row" % path)

    def close(self):
        self.c.close()


MID_COMMIT = {"18", "20", "74", "75", "296"}   # pwrite64 writev fsync fdatasync pwritev


def mid_commit(pid):
    """True when a thread of pid is in a write or sync system call: its
    committer is flushing a batch whose answers are not sent yet."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return False
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                if f.read().split(" ", 1)[0] in MID_COMMIT:
                    return True
        except OSError:
            pass
    return False


class Killer(threading.Thread):
    """kill -9 one worker of casqd in the middle of a run: KILL_AFTER_S
    after go() or once a quarter of the work is done, whichever comes
    first, at a moment the worker is flushing a commit if that is seen
    before 60% of the work is done. progress() says how much is done
    (0 to 1)."""

    def __init__(self, s, progress):
        super().__init__(daemon=True)
        self.s = s
        self.progress = progress
        self.victim = None
        self.at = None
        self.caught = False
        self.before = worker_pids(s.casqd.pid)
        self.started = threading.Event()
        self.t0 = None

    def go(self):
        if not self.started.is_set():
            self.t0 = time.monotonic()
            self.started.set()

    def run(self):
        self.started.wait(DEADLINE_S)
        if self.t0 is None:
            return
        victim = self.before[0]
        while time.monotonic() < self.t0 + KILL_AFTER_S and self.progress() < 0.25:
            time.sleep(0.005)
        until = time.monotonic() + 5
        while time.monotonic() < until and self.progress() < 0.6:
            if mid_commit(victim):
                self.caught = True
                break
        os.kill(victim, signal.SIGKILL)
        self.at = time.monotonic()
        self.victim = victim

    def check(self, what):
        self.join(DEADLINE_S)
        comment("%s: worker %s killed %.2f s after the start, %s" % (
            what, self.victim, (self.at or 0) - (self.t0 or 0),
            "while it flushed a commit" if self.caught else "(no commit in progress seen)"))
        ok(self.victim is not None, "%s: a worker was killed with SIGKILL (pid %s)" % (what, self.victim))
        deadline = time.monotonic() + 10
        now = []
        while time.monotonic() < deadline:
            now = worker_pids(self.s.casqd.pid)
            if len(now) == self.s.workers and self.victim not in now:
                break
            time.sleep(0.05)
        ok(len(now) == self.s.workers and self.victim not in now,
           "%s: casqd replaced the killed worker" % what, "workers before %r, now %r" % (self.before, now))


def in_flight(killer, failed, what):
    """A kill that caught the worker flushing a commit hit the requests of
    that batch, whose answers were not sent: some must have failed (and
    been retried). A kill that found no commit in progress may have hit a
    worker holding no request at all (with several workers, nginx may have
    had every request on the others' connections), so then this is only
    said, not required: the run's other checks hold either way."""
    if killer.caught:
        ok(failed > 0, "%s: the kill, mid-commit, hit requests in flight (some failed and "
           "were retried)" % what, "no request failed")
    else:
        # A skip, not nothing: the file's count of assertions stays the
        # same, so a total that moves means an assertion was lost.
        skip("%s: the kill, mid-commit, hit requests in flight" % what,
             "no commit in progress was seen at the kill; %d request(s) failed" % failed)


def kill_enqueue(s):
    q = "kill-enq"
    keys = ["e%04d" % i for i in range(N_KILL)]
    lock = threading.Lock()
    acked, answered_false, anomalies = set(), set(), []
    failed = [0]
    killer = Killer(s, lambda: len(acked) / N_KILL)
    killer.start()
    barrier = threading.Barrier(KILL_THREADS, timeout=60)
    times = []
    start = [0.0]

    def work(i):
        c = Retrier(s)
        try:
            c.c.connect()
            barrier.wait()
            if i == 0:
                start[0] = time.monotonic()
                killer.go()
            for k in keys[i::KILL_THREADS]:
                n0 = c.failed
                r = c.call("/v1/queues/%s/enqueue" % q, {"key": k, "payload": k})
                with lock:
                    if r.status == 200 and r.get("enqueued") is True:
                        acked.add(k)
                        times.append(time.monotonic())
                    elif r.status == 200 and r.get("enqueued") is False and c.failed > n0:
                        answered_false.add(k)   # an earlier, unacknowledged try committed
                    else:
                        anomalies.append("%s: %r" % (k, r))
        finally:
            c.close()
            with lock:
                failed[0] += c.failed
    errors = run_threads(KILL_THREADS, work, DEADLINE_S)
    dt = time.monotonic() - start[0]
    killer.check("kill enqueue")
    comment("kill enqueue: %d enqueues in %.2f s; %d requests failed and were "
            "retried; %d retries found the item already queued"
            % (N_KILL, dt, failed[0], len(answered_false)))
    at = killer.at or 0
    ok(any(t < at for t in times) and any(t > at for t in times),
       "kill enqueue: the kill came in the middle of the enqueues",
       "%d acknowledged before, %d after" % (sum(t < at for t in times), sum(t > at for t in times)))
    eq(errors, [], "kill enqueue: every thread finished without an exception")
    eq(anomalies[:3], [], "kill enqueue: every enqueue was acknowledged (or found its own earlier try)")
    in_flight(killer, failed[0], "kill enqueue")
    eq(len(acked) + len(answered_false), N_KILL, "kill enqueue: %d keys accounted for" % N_KILL)
    missing = status_all(s, q, keys, lambda k, r: r.get("state") != "ready")
    eq(missing[:5], [], "kill enqueue: every acknowledged enqueue is present after the kill (state ready)")
    st = s.stats(q).json or {}
    eq((st.get("ready"), st.get("enqueued")), (N_KILL, N_KILL),
       "kill enqueue: stats ready %d, enqueued %d" % (N_KILL, N_KILL))


def status_all(s, q, keys, bad_if, nthreads=16):
    """Status of every key; return (key, text) where bad_if(key, r)."""
    bad = []
    lock = threading.Lock()

    def work(i):
        c = s.client()
        try:
            for k in keys[i::nthreads]:
                r = c.call("GET", "/v1/queues/%s/status" % q, params={"key": k})
                if r.status != 200 or bad_if(k, r):
                    with lock:
                        bad.append((k, r.text.strip()))
        finally:
            c.close()
    errors = run_threads(nthreads, work, DEADLINE_S)
    return bad + errors


def kill_pop(s):
    q = "kill-pop"
    keys = ["k%04d" % i for i in range(N_KILL)]
    bad, errors = enqueue_all(s, q, keys, KILL_THREADS, DEADLINE_S)
    eq((bad[:3], errors), ([], []), "kill pop: %d items enqueued" % N_KILL)

    lock = threading.Lock()
    wins = collections.defaultdict(list)    # key -> [(claimant, token)]
    anomalies = []
    failed_by = collections.Counter()
    killer = Killer(s, lambda: len(times) / N_KILL)
    killer.start()
    barrier = threading.Barrier(KILL_THREADS, timeout=60)
    start = [0.0]
    times = []

    def popper(i):
        who = "p%02d" % i
        c = Retrier(s)
        try:
            c.c.connect()
            barrier.wait()
            if i == 0:
                start[0] = time.monotonic()
                killer.go()
            while True:
                r = c.call("/v1/queues/%s/pop" % q, {"claimant": who})
                if r.status == 200 and r.get("claimed") is True:
                    with lock:
                        wins[r.get("key")].append((who, r.get("token")))
                        times.append(time.monotonic())
                        if r.get("owner") != who or r.get("payload") != r.get("key"):
                            anomalies.append(r.text.strip())
                elif r.status == 200 and r.get("reason") == "empty":
                    break
                else:
                    anomalies.append(repr(r))
                    break
        finally:
            c.close()
            with lock:
                failed_by[who] += c.failed
    errors = run_threads(KILL_THREADS, popper, DEADLINE_S)
    dt = time.monotonic() - start[0]
    nwins = sum(len(v) for v in wins.values())
    killer.check("kill pop")
    comment("kill pop: %d threads popped %d items in %.2f s; %d requests failed and were retried"
            % (KILL_THREADS, nwins, dt, sum(failed_by.values())))
    eq(errors, [], "kill pop: every thread finished without an exception")
    eq(anomalies[:3], [], "kill pop: every claim answered a win (own owner, own payload) or empty")
    in_flight(killer, sum(failed_by.values()), "kill pop")
    at = killer.at or 0
    ok(any(t < at for t in times) and any(t > at for t in times),
       "kill pop: the kill came in the middle of the pops",
       "%d acknowledged before, %d after" % (sum(t < at for t in times), sum(t > at for t in times)))
    eq([(k, v) for k, v in wins.items() if len(v) > 1][:5], [],
       "kill pop: no key was handed out twice")

    owner_of = {k: v[0][0] for k, v in wins.items()}
    states = {}
    slock = threading.Lock()

    def look(k, r):
        with slock:
            states[k] = (r.get("state"), r.get("owner"))
        return False
    errs = status_all(s, q, keys, look)
    eq(errs, [], "kill pop: status answered for every key")
    lost_acks = [(k, owner_of[k], states.get(k)) for k in owner_of
                 if states.get(k) != ("claimed", owner_of[k])]
    eq(lost_acks[:5], [], "kill pop: every acknowledged claim is durable (state claimed, same owner)")

    # Claims committed whose answer was lost in the kill: consumed (at most
    # once), owned by a thread that saw a failure.
    orphans = {k: st for k, st in states.items() if k not in owner_of and st[0] == "claimed"}
    bad_orphans = [(k, st) for k, st in orphans.items() if failed_by.get(st[1], 0) == 0]
    eq(bad_orphans[:5], [], "kill pop: an unacknowledged consumed item belongs to a thread whose request failed")
    ready = [k for k, st in states.items() if st[0] == "ready"]
    absent = [(k, st) for k, st in states.items() if st[0] not in ("claimed", "ready")]
    eq(absent[:5], [], "kill pop: no key is absent or in another state (none lost)")
    rest = []
    c = s.client()
    try:
        while True:
            r = c.call("GET", "/v1/queues/%s/pop" % q, params={"claimant": "rest"})
            if r.get("claimed") is not True:
                break
            rest.append(r.get("key"))
    finally:
        c.close()
    comment("kill pop: %d acknowledged claims, %d consumed without an answer, %d still ready (%d claimed now)"
            % (len(owner_of), len(orphans), len(ready), len(rest)))
    eq(sorted(rest), sorted(ready), "kill pop: the items still ready are exactly the ones claimed now")
    eq(len(owner_of) + len(orphans) + len(rest), N_KILL,
       "kill pop: acknowledged + unanswered + claimed now == %d (none lost)" % N_KILL)
    st = s.stats(q).json or {}
    eq((st.get("ready"), st.get("leased"), st.get("claimed")), (0, 0, N_KILL),
       "kill pop: stats ready 0, leased 0, claimed %d" % N_KILL)


def main():
    t0 = time.monotonic()
    with Stack(workers=4, extra_args=["--threads", "32", "--log-level", "debug"]) as s:
        for fn in (hot_key, flush, leases):
            t = time.monotonic()
            fn(s)
            comment("%s: %.2f s" % (fn.__name__, time.monotonic() - t))
        group_commit_stats(s, "part a")
    with Stack(workers=2, extra_args=["--threads", "32"]) as s:
        for fn in (kill_enqueue, kill_pop):
            t = time.monotonic()
            fn(s)
            comment("%s: %.2f s" % (fn.__name__, time.monotonic() - t))
        with open(s.casqd_log, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        n = log.count("killed by signal 9")
        eq(n, 2, "the casqd log reports both workers killed by signal 9")
    comment("total %.1f s" % (time.monotonic() - t0))


run_main(main)
