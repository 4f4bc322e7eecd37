#!/usr/bin/env python3
"""Failing disks (docs/storage.md, "When the disk fails").

casqd runs under the write recorder told to inject one fault, counted over
all its processes: the Nth fdatasync returns EIO (full and relaxed mode),
or the Nth write to data.mdb returns ENOSPC, or writes half and says so.
One client enqueues unique keys, one at a time, before, during and after
the fault. Then:

- no answer says a failed write succeeded: every write answered other than
  200 is casqd's JSON error with its own reason phrase (500 Internal Error;
  507 Storage Full for ENOSPC), and none of them is in the database;
- a failed flush or a short write is never retried as if it had worked:
  the process that saw it writes and flushes data.mdb no more (the
  recording shows it), logs why, and exits; the master starts a fresh
  worker, and the writes after it succeed;
- ENOSPC refuses the write (507) and the worker goes on;
- after the fault, the database passes the consistency walk and holds
  every acknowledged write, and so does every crash image of the
  recording, with the pages of the failed flush counted as lost (as Linux
  may drop them, fsyncgate)."""

import os
import re
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
from crashlib import TENANT, RecStack, Workload, check_images, crashcheck  # noqa: E402
import crashimg  # noqa: E402
from casqtest import comment, eq, ok, run_main, skip  # noqa: E402

AFTER = 15          # successful writes wanted after the fault
MAX_OPS = 20000     # gives up (and fails) after this many


def scenario(name, fault, mode, want_status, want_reason, restarts):
    with RecStack(fault=fault, extra_args=["--durability", mode],
                  tag="casqfault") as s:
        w = Workload(s, tag=name)
        c = s.client(timeout=60)
        answers = []        # (key, status, reason, error code)
        n_after = 0
        for n in range(MAX_OPS):
            k = "%s-%d" % (name, n)
            r = c.call("POST", "/v1/queues/fq/enqueue", params={"key": k})
            t = time.monotonic_ns()
            js = r.ctype() and r.ctype().startswith("application/json")
            answers.append((k, r.status, r.reason, r.get("error") if js else None,
                            r.get("message") if js else None))
            if r.status == 200 and r.get("enqueued") is True:
                w.facts.append((t, "Q %s:fq %s" % (TENANT, k)))
                if s.faults_fired():
                    n_after += 1
                    if n_after >= AFTER:
                        break
        c.close()
        eq(s.faults_fired(), 1, "%s: the fault was injected once" % name)
        bad = [a for a in answers if a[1] != 200]
        comment("%s: %d writes, not 200: %r" % (name, len(answers), bad[:6]))
        ok(any(a[1] == want_status and a[2] == want_reason for a in bad),
           "%s: the write that met the fault was answered %d %s"
           % (name, want_status, want_reason))
        # nginx's 503 (a kept connection the stopping worker closed) says
        # nothing happened or not: an unknown outcome, never a success.
        unknown = [a for a in bad if a[1] == 503 and a[4] == "no casq worker answered"]
        odd = [a for a in bad if a not in unknown and (
            a[1] not in (500, 507) or a[3] not in ("internal", "storage_full"))]
        eq(odd, [], "%s: every other answer is 200, casqd's JSON 500/507 or "
           "nginx's 503 (%d)" % (name, len(unknown)))
        ok(n_after >= AFTER, "%s: %d writes succeeded after the fault" % (name, n_after))
        rc = s.stop_casqd()
        eq(rc, 0, "%s: casqd stopped cleanly" % name)
        with open(s.casqd_log, errors="replace") as f:
            log = f.read()
        started = len(re.findall(r"worker \d+ started", log))
        if restarts:
            ok("the disk failed; this process writes nothing more" in log,
               "%s: the worker logged why it stopped writing" % name)
            ok(re.search(r"worker pid \d+ exited with status 1", log) is not None and
               started >= 2, "%s: the worker exited and a fresh one was started" % name)
        elif started != 1:
            # ENOSPC on the meta page's write: LMDB panics (MDB_PANIC on
            # every transaction after it), so the worker is replaced.
            ok("MDB_PANIC" in log and "the disk failed" in log,
               "%s: the worker was replaced only because LMDB panicked "
               "(the meta page's write failed)" % name)
        else:
            ok(True, "%s: the worker went on (no restart)" % name)
        # The process that saw EIO or a short write did nothing more to the file.
        recs = crashimg.read_log(s.wrec_log)
        failed = [r for r in recs if r.flags & crashimg.F_FAULT]
        eq(len(failed), 1, "%s: the recording shows the fault" % name)
        if restarts and failed:
            # (When the meta page's write failed, LMDB writes the old meta
            # back at once, to the same place, on purpose: mdb_env_write_meta.)
            f0 = failed[0]
            later = [r for r in recs if r.pid == f0.pid and r.seq > f0.seq and
                     (r.type == crashimg.SYNC or (r.type == crashimg.WRITE and r.off != f0.off))]
            eq(len(later), 0, "%s: after the failure its process wrote and flushed "
               "nothing more" % name)
        elif restarts:
            skip("%s: after the failure its process wrote and flushed nothing more" % name,
                 "the recording shows no fault")
        # Every write answered with an error did not happen; every 200 did.
        expect = s.path("expect")
        with open(expect, "w") as f:
            for t, line in w.facts:
                f.write(line + "\n")
            for a in bad:
                k = a[0]
                if a not in unknown:
                    f.write("A %s:fq %s\n" % (TENANT, k))
        rc, out = crashcheck(s.data, expect)
        eq(rc, 0, "%s: the database passes the walk, holds every acknowledged "
           "write and none that failed: %s" % (name, out.strip().splitlines()[-1]))
        fig, reports = check_images(s.wrec_log, w, mode == "relaxed", 20, 3,
                                    s.path("crash"), seed=5)
        comment("%s: %s" % (name, fig))
        for r in reports:
            comment("%s: %s" % (name, r))
        eq(fig["failed"], 0, "%s: every crash image of the recording (%d) holds what "
           "was acknowledged" % (name, fig["images"]))


# Faults are counted from casqd's start: the first commits create the
# database, so the 12th flush or the 30th write falls among the client's.
# CASQ_FAULT_AT="12,20,..." runs every scenario once per value (the write
# faults at 2.5 times it); script/crashtest sets it.
FAULT_AT = [int(x) for x in os.environ.get("CASQ_FAULT_AT", "12").split(",")]


def main():
    for n in FAULT_AT:
        w = n * 5 // 2
        scenario("sync-eio-%d" % n, "sync:%d:eio" % n, "full", 500, "Internal Error", True)
        scenario("sync-eio-relaxed-%d" % n, "sync:%d:eio" % n, "relaxed", 500,
                 "Internal Error", True)
        scenario("write-enospc-%d" % w, "write:%d:enospc" % w, "full", 507, "Storage Full", False)
        scenario("write-short-%d" % w, "write:%d:short" % w, "full", 500, "Internal Error", True)


run_main(main)
