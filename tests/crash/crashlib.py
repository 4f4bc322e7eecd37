"""crashlib.py - what test_crash.py, test_faults.py and script/crashtest
share: a Stack whose casqd runs under the write recorder (wrec.so), a
workload whose acknowledgements become facts the database must hold, and
the loop that checks crash images with crashcheck."""

import os
import random
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from casqtest import Stack  # noqa: E402
import crashimg  # noqa: E402


def builddir():
    return os.environ.get("CASQ_BUILDDIR") or os.getcwd()


def wrec_so():
    return os.path.join(builddir(), "tests", "crash", "wrec.so")


def crashcheck_bin():
    return os.path.join(builddir(), "tests", "crash", "crashcheck")


class RecStack(Stack):
    """A Stack whose casqd (master and workers) runs with LD_PRELOAD=wrec.so,
    logging to <tmp>/wrec.log; fault: a CASQ_WREC_FAULT spec or None."""

    def __init__(self, fault=None, casqd=None, **kw):
        kw.setdefault("workers", 1)
        kw.setdefault("tag", "casqcrash")
        super().__init__(**kw)
        self.fault = fault
        self.casqd_bin = casqd

    def casqd_argv(self):
        argv = super().casqd_argv()
        if self.casqd_bin:
            argv[0] = self.casqd_bin
        return argv

    @property
    def wrec_log(self):
        return self.path("wrec.log")

    def start_casqd(self):
        env = {"LD_PRELOAD": wrec_so(), "CASQ_WREC_LOG": self.wrec_log}
        if self.fault:
            env["CASQ_WREC_FAULT"] = self.fault
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)      # spawn() passes os.environ on
        try:
            super().start_casqd()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def faults_fired(self):
        """How many faults the shim injected (from wrec.log.ctl)."""
        import struct
        with open(self.wrec_log + ".ctl", "rb") as f:
            return struct.unpack("=QQQQ", f.read(32))[3]


# The tenant of the harness's API key: stored names are "tenant:name"
# (docs/storage.md), so the facts name what is stored.
TENANT = "default"


class Workload:
    """Clients doing writes whose answers are facts (crashcheck's format),
    each stamped with time.monotonic_ns() when the answer arrived:
    enqueue (Q), claim by key and pop (C), set (K), incr (N)."""

    def __init__(self, stack, tag="w"):
        self.s = stack
        self.tag = tag
        self.lock = threading.Lock()
        self.facts = []         # (t_ack, line)
        self.answers = {}       # status -> count
        self.failed = []        # (what, status, reason, body) of non-200 answers
        self.errors = []

    def _note(self, t, line):
        with self.lock:
            self.facts.append((t, line))

    def _count(self, r, what):
        with self.lock:
            self.answers[r.status] = self.answers.get(r.status, 0) + 1
            if r.status != 200:
                self.failed.append((what, r.status, r.reason, r.raw[:200]))

    def one(self, c, i, n, rng, mine):
        """The n-th op of thread i."""
        k = "%s%d-%d" % (self.tag, i, n)
        roll = rng.random()
        if roll < 0.35 or not mine:
            r = c.call("POST", "/v1/queues/cq/enqueue", params={"key": k})
            t = time.monotonic_ns()
            self._count(r, "enqueue cq/" + k)
            if r.status == 200 and r.get("enqueued") is True:
                self._note(t, "Q %s:cq %s" % (TENANT, k))
                mine.append(k)
        elif roll < 0.5:
            key = mine.pop(rng.randrange(len(mine)))
            r = c.call("POST", "/v1/queues/cq/claim", params={"key": key, "claimant": "t%d" % i})
            t = time.monotonic_ns()
            self._count(r, "claim cq/" + key)
            if r.status == 200 and r.get("claimed") is True:
                self._note(t, "C %s:cq %s" % (TENANT, key))
        elif roll < 0.6:
            r = c.call("POST", "/v1/queues/cp/enqueue", params={"key": k})
            t = time.monotonic_ns()
            self._count(r, "enqueue cp/" + k)
            if r.status == 200 and r.get("enqueued") is True:
                self._note(t, "Q %s:cp %s" % (TENANT, k))
        elif roll < 0.7:
            r = c.call("POST", "/v1/queues/cp/pop", params={"claimant": "t%d" % i})
            t = time.monotonic_ns()
            self._count(r, "pop cp")
            if r.status == 200 and r.get("claimed") is True:
                self._note(t, "C %s:cp %s" % (TENANT, r.get("key")))
        elif roll < 0.85:
            r = c.call("POST", "/v1/kv/cn/set", params={"key": k, "value": n})
            t = time.monotonic_ns()
            self._count(r, "set cn/" + k)
            if r.status == 200 and r.get("ok") is True:
                self._note(t, "K %s:cn %s" % (TENANT, k))
        else:
            r = c.call("POST", "/v1/kv/cn/incr", params={"key": "ctr"})
            t = time.monotonic_ns()
            self._count(r, "incr cn/ctr")
            if r.status == 200 and isinstance(r.get("value"), int):
                self._note(t, "N %s:cn ctr %d" % (TENANT, r.get("value")))

    def run(self, threads, ops_per_thread, seed=1, between=None):
        """threads clients, ops_per_thread each; between(i, n), when given,
        runs in thread 0 after each of its ops (to kill workers, etc.)."""
        def work(i):
            rng = random.Random(seed * 1000 + i)
            c = self.s.client(timeout=60)
            mine = []
            try:
                for n in range(ops_per_thread):
                    self.one(c, i, n, rng, mine)
                    if between and i == 0:
                        between(i, n)
            except BaseException as e:  # noqa: B902 - reported by the test
                with self.lock:
                    self.errors.append("%s: %s" % (type(e).__name__, e))
            finally:
                c.close()
        ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def expect_file(self, path, before=None, at_risk=()):
        """Write the facts acknowledged before t (ns), all when None, and
        outside the at_risk windows [(lo, hi)]; returns how many."""
        n = 0
        with open(path, "w") as f:
            for t, line in self.facts:
                if any(lo <= t < hi for lo, hi in at_risk):
                    continue
                if before is None or t < before:
                    f.write(line + "\n")
                    n += 1
        return n


def crashcheck(d, expect=None):
    """(exit status, output) of crashcheck on directory d."""
    argv = [crashcheck_bin(), d] + ([expect] if expect else [])
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def check_images(log, work, relaxed, n_random, per_cut, workdir, seed=7,
                 max_reports=5):
    """Build crash images from the recording at log and check each.
    Returns a dict of figures and the first failures' descriptions."""
    rng = random.Random(seed)
    os.makedirs(workdir, exist_ok=True)
    recs = crashimg.read_log(log)
    cuts = crashimg.choose_cuts(recs, n_random, rng)
    img_dir = os.path.join(workdir, "image")
    expect = os.path.join(workdir, "expect")
    fig = {"images": 0, "failed": 0, "facts_checked": 0, "cuts": len(cuts),
           "before_first_flush": 0}
    fig.update(crashimg.summary(recs))
    reports = []
    at_risk = crashimg.relaxed_at_risk(recs) if relaxed else []
    for i, T, flush_t0, data, mode in crashimg.images(recs, cuts, per_cut, rng):
        before = T
        if relaxed:
            before = min(T, flush_t0) if flush_t0 is not None else 0
        nfacts = work.expect_file(expect, before,
                                  [(lo, hi) for lo, hi, until in at_risk if i <= until])
        if flush_t0 is None and nfacts == 0:
            # Before the file's first successful flush LMDB's two meta
            # pages may be on the disk in part: such a file is no
            # database yet (LMDB says MDB_INVALID), and nothing had been
            # acknowledged. docs/reliability.md.
            fig["before_first_flush"] += 1
            continue
        shutil.rmtree(img_dir, ignore_errors=True)
        os.makedirs(img_dir)
        with open(os.path.join(img_dir, "data.mdb"), "wb") as f:
            f.write(data)
        rc, out = crashcheck(img_dir, expect)
        fig["images"] += 1
        fig["facts_checked"] += nfacts
        if rc != 0:
            fig["failed"] += 1
            if len(reports) < max_reports:
                reports.append("cut %d/%d (%s image, %d facts): exit %d: %s"
                               % (i, len(recs), mode, nfacts, rc,
                                  " | ".join(out.strip().splitlines()[:4])))
    shutil.rmtree(img_dir, ignore_errors=True)
    return fig, reports
