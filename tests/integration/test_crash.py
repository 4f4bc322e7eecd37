#!/usr/bin/env python3
"""Power loss, simulated from a recording (docs/reliability.md).

casqd runs under the write recorder (tests/crash/wrec.so) while clients
enqueue, claim, pop, set and incr through nginx; then crash images are
built from the recording (tests/crash/crashimg.py: at both sides of every
flush and at random cuts, each with only durable pages, with every
pending page, and with random subsets) and each is checked by
tests/crash/crashcheck: LMDB opens it, the consistency walk passes, and

  --durability full:    every write acknowledged before the cut is there;
  --durability relaxed: every write acknowledged before the last flush
                        that began before the cut is there.

The real database is checked the same way at the end. Then the same
scenario runs on tests/crash/casqd-answer-early, casqd with the one seam
of --enable-test-answer-early compiled in (store.c: commits are never
flushed, so answers go out before their writes are durable), and its
crash images must fail: the test is shown to be able to fail.
script/crashtest --broken does the same with a whole broken build.

CASQ_CRASH_OPS (ops per client thread) and CASQ_CRASH_RANDOM (random
cuts) make it longer; script/crashtest sets them."""

import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
from crashlib import RecStack, Workload, builddir, check_images, crashcheck  # noqa: E402
from casqtest import comment, eq, ok, run_main  # noqa: E402

THREADS = 6
OPS = int(os.environ.get("CASQ_CRASH_OPS", "60"))           # per thread
N_RANDOM = int(os.environ.get("CASQ_CRASH_RANDOM", "60"))   # random cuts
PER_CUT = int(os.environ.get("CASQ_CRASH_PER_CUT", "3"))    # images per cut


def broken():
    """The broken seam: its crash images must lose acknowledged writes."""
    path = os.path.join(builddir(), "tests", "crash", "casqd-answer-early")
    with RecStack(extra_args=["--durability", "full"], casqd=path) as s:
        w = Workload(s, tag="b")
        w.run(THREADS, OPS // 2, seed=4)
        eq(w.errors, [], "broken: the clients ran without errors")
        s.stop_casqd()
        fig, reports = check_images(s.wrec_log, w, False, N_RANDOM // 2, PER_CUT,
                                    s.path("crash"), seed=13)
        comment("broken: %s" % fig)
        for r in reports[:2]:
            comment("broken: %s" % r)
        ok(fig["failed"] > 0, "broken: on casqd-answer-early (answers before the "
           "commit is durable) crash images lose acknowledged writes (%d of %d): "
           "this test can fail" % (fig["failed"], fig["images"]))


def scenario(mode):
    relaxed = mode == "relaxed"
    t_start = time.monotonic()
    with RecStack(extra_args=["--durability", mode]) as s:
        w = Workload(s, tag=mode[0])
        w.run(THREADS, OPS, seed=3 if relaxed else 2)
        eq(w.errors, [], "%s: the clients ran without errors" % mode)
        eq(w.failed, [], "%s: every write was answered 200" % mode)
        ok(len(w.facts) > THREADS * OPS // 2,
           "%s: %d acknowledged facts recorded" % (mode, len(w.facts)))
        rc = s.stop_casqd()
        eq(rc, 0, "%s: casqd stopped cleanly" % mode)
        expect = s.path("expect-all")
        w.expect_file(expect)
        rc, out = crashcheck(s.data, expect)
        eq(rc, 0, "%s: the real database passes the walk and holds every "
           "acknowledged write: %s" % (mode, out.strip().splitlines()[-1]))
        fig, reports = check_images(s.wrec_log, w, relaxed, N_RANDOM, PER_CUT,
                                    s.path("crash"), seed=11)
        comment("%s: %s" % (mode, fig))
        for r in reports:
            comment("%s: %s" % (mode, r))
        ok(fig["flushes"] > 0, "%s: the recording has flushes (%d)" % (mode, fig["flushes"]))
        ok(fig["images"] >= 100, "%s: at least 100 crash images checked (%d)"
           % (mode, fig["images"]))
        eq(fig["failed"], 0, "%s: every crash image opens, passes the walk and "
           "holds what %s promises" % (mode, "full" if not relaxed else "relaxed"))
    comment("%s: %.1f s" % (mode, time.monotonic() - t_start))


def main():
    scenario("full")
    scenario("relaxed")
    broken()


run_main(main)
