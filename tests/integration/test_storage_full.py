#!/usr/bin/env python3
"""A full database: with --map-size 1M, enqueues of 8 KiB payloads run
until 507 Storage Full; everything stored before stays claimable with its
exact payload; restarted with --map-size 64M on the same data, enqueues
work again and the old items are intact."""

import os
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, ok, run_main  # noqa: E402

MAX_ITEMS = 1000
KEEP = 10           # items left unclaimed across the restart


def payload(i):
    # 8 KiB of JSON-safe text that differs per item
    head = "item-%04d:" % i
    return head + ("abcdefghijklmnopqrstuvwxyz0123456789"[i % 36] * (8192 - len(head)))


def main():
    t0 = time.monotonic()
    with Stack(workers=2, extra_args=["--map-size", "1M"]) as s:
        stored = []
        full = None
        for i in range(MAX_ITEMS):
            r = s.call("POST", "/v1/queues/full/enqueue",
                       body={"key": "k%04d" % i, "payload": payload(i)})
            if r.status == 200 and r.get("enqueued") is True:
                stored.append(i)
                continue
            full = (i, r)
            break
        comment("stored %d items of 8 KiB before the first refusal" % len(stored))
        ok(full is not None, "1M map: an enqueue is refused within %d items" % MAX_ITEMS)
        ok(len(stored) >= 20, "1M map: at least 20 items of 8 KiB fit", "stored %d" % len(stored))
        if full is None:
            return
        i_full, r = full
        eq((r.status, r.reason), (507, "Storage Full"), "full map: 507 Storage Full")
        eq(r.get("error"), "storage_full", "full map: error storage_full")
        ok(isinstance(r.get("message"), str) and r.get("message"), "full map: a message", r.text)
        st = s.call("GET", "/v1/queues/full/status", params={"key": "k%04d" % i_full})
        eq(st.get("state"), "absent", "full map: the refused item was not half-stored")
        r2 = s.call("POST", "/v1/queues/full/enqueue", body={"key": "again", "payload": payload(1)})
        eq(r2.status, 507, "full map: the next enqueue is refused too")
        eq(s.call("GET", "/healthz", key=None).status, 200, "full map: /healthz still 200")

        st = s.call("GET", "/v1/queues/full").json or {}
        eq((st.get("ready"), st.get("enqueued")), (len(stored), len(stored)),
           "full map: stats count every stored item")

        # Reads and claims still work on a full map; claim all but KEEP.
        n = len(stored) - KEEP
        bad = []
        for i in stored[:n]:
            r = s.call("GET", "/v1/queues/full/claim", params={"key": "k%04d" % i})
            if r.status != 200 or r.get("claimed") is not True or r.get("payload") != payload(i):
                bad.append((i, repr(r)[:120]))
        eq(bad[:3], [], "full map: %d stored items claimed by key with their exact payloads" % n)
        eq(len(bad), 0, "full map: no claim failed")
        st = s.call("GET", "/v1/queues/full").json or {}
        done_n = n - len(bad)
        eq((st.get("ready"), st.get("claimed")), (len(stored) - done_n, done_n),
           "full map: stats agree with the claims that succeeded")

        # A bigger map on the same data.
        s.restart_casqd(["--map-size", "64M"])
        st = s.call("GET", "/v1/queues/full").json or {}
        eq((st.get("ready"), st.get("enqueued")), (len(stored) - done_n, len(stored)),
           "restart with 64M: stats survive the restart")
        left = [i for i in stored[:n] if any(b[0] == i for b in bad)] + stored[n:]
        bad = []
        for i in left:
            r = s.call("GET", "/v1/queues/full/claim", params={"key": "k%04d" % i})
            if r.get("claimed") is not True or r.get("payload") != payload(i):
                bad.append((i, repr(r)[:120]))
        eq(bad[:3], [], "restart with 64M: the %d remaining items claimed with exact payloads" % len(left))
        codes = []
        for i in range(100):
            r = s.call("POST", "/v1/queues/full/enqueue", body={"key": "big%03d" % i, "payload": payload(i)})
            codes.append(r.status)
        eq(codes, [200] * 100, "restart with 64M: 100 more 8 KiB enqueues succeed")
        r = s.call("GET", "/v1/queues/full/claim", params={"key": "big050"})
        eq(r.get("payload"), payload(50), "restart with 64M: a new item claimed with its payload")
    comment("total %.1f s" % (time.monotonic() - t0))


run_main(main)
