#!/usr/bin/env python3
"""The built casqd is hardened (configure's default; --disable-hardening
turns it off, and then this test fails): readelf shows a position-
independent executable, full RELRO (a GNU_RELRO segment, and BIND_NOW so
that the whole GOT is read-only once started), the stack protector
(__stack_chk_fail) and FORTIFY (checked calls such as __memcpy_chk). A
sanitizer build has no FORTIFY by design (configure.ac says why): there
that check is skipped."""

import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import casqd_path, comment, ok, run_main, skip  # noqa: E402


def readelf(*args):
    r = subprocess.run(["readelf", "-W"] + list(args) + [casqd_path()],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("readelf %s failed: %s" % (" ".join(args),
                           r.stderr.decode("utf-8", "replace")))
    return r.stdout.decode("utf-8", "replace")


def main():
    comment("checking %s" % casqd_path())
    header, dynamic = readelf("-h"), readelf("-d")
    segments, syms = readelf("-l"), readelf("--dyn-syms")
    ok(re.search(r"Type:\s+DYN\b", header) and re.search(r"FLAGS_1\).*\bPIE\b", dynamic),
       "casqd is a position-independent executable (type DYN, flag PIE)")
    ok(re.search(r"^\s*GNU_RELRO\b", segments, re.M), "casqd has a RELRO segment")
    ok(re.search(r"\(FLAGS\).*\bBIND_NOW\b", dynamic) or
       re.search(r"\(FLAGS_1\).*\bNOW\b", dynamic),
       "casqd binds every symbol at start (BIND_NOW: full RELRO)")
    ok(re.search(r"\b__stack_chk_fail\b", syms), "casqd uses the stack protector (__stack_chk_fail)")
    checked = sorted(set(re.findall(r"\b(__\w+_chk)\b", syms)) - {"__stack_chk_fail"})
    if re.search(r"\b__asan_init\b", syms):
        skip("casqd uses FORTIFY (checked calls)", "sanitizer build: FORTIFY is off by design")
    else:
        ok(checked, "casqd uses FORTIFY (checked calls)", "no __*_chk symbol")
    comment("checked calls: %s" % " ".join(checked))


run_main(main)
