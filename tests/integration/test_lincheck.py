#!/usr/bin/env python3
"""The linearizability checker itself (tests/crash/lincheck.py), on small
hand-written histories: the good ones pass, and each injected anomaly is
reported: a double claim, a double pop, a lost update (two incrs that
answer the same value), a cas that wins on a stale version, a stale read,
an ack of a lease that was never granted, an item lost after its enqueue
was acknowledged, a pop that finds a new queue empty and a claim that
finds a released item not ready (the shapes test_linear found when casqd
took an op's time from its request instead of its commit). Outcomes the
client never learned may or may not have happened, and the checker allows
both. A failure names the op the longest order could not take. No server
is needed."""

import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
from lincheck import KvModel, Op, QueueModel, check  # noqa: E402
from casqtest import eq, ok, run_main  # noqa: E402


def q(ops):
    return check(ops, QueueModel)[0]


def kv(ops):
    return check(ops, KvModel)[0]


def E(k):
    return {"enqueued": True, "key": k}


def C(k, tok):
    return {"claimed": True, "key": k, "token": tok}


def main():
    # --- queues
    enq = Op(0, 1, ("enqueue", "a"), E("a"), 1)
    eq(q([enq, Op(2, 3, ("claim", "a"), C("a", "t1"), 1),
          Op(4, 5, ("ack", "a", "t1"), {"acked": True}, 1)]), True,
       "queue: enqueue, claim, ack in sequence is linearizable")
    eq(q([enq, Op(2, 6, ("claim", "a"), C("a", "t1"), 1),
          Op(3, 7, ("claim", "a"), {"claimed": False, "reason": "claimed"}, 2)]), True,
       "queue: two overlapping claims, one wins, is linearizable")
    eq(q([enq, Op(2, 6, ("claim", "a"), C("a", "t1"), 1),
          Op(3, 7, ("claim", "a"), C("a", "t2"), 2)]), False,
       "queue: an injected double claim (both win) is an anomaly")
    eq(q([enq, Op(0, 1, ("enqueue", "b"), E("b"), 2),
          Op(2, 6, ("pop",), C("a", "t1"), 1),
          Op(3, 7, ("pop",), C("a", "t2"), 2)]), False,
       "queue: two pops taking the same item is an anomaly")
    eq(q([enq, Op(0, 1, ("enqueue", "b"), E("b"), 2),
          Op(2, 6, ("pop",), C("a", "t1"), 1),
          Op(3, 7, ("pop",), C("b", "t2"), 2),
          Op(8, 9, ("pop",), {"claimed": False, "reason": "empty"}, 1)]), True,
       "queue: two pops take the two items, a third finds it empty")
    eq(q([enq, Op(2, 3, ("pop",), {"claimed": False, "reason": "empty"}, 1)]), False,
       "queue: an acknowledged item that a later pop does not find (lost) is an anomaly")
    eq(q([enq, Op(2, 3, ("ack", "a", "t9"), {"acked": True}, 1)]), False,
       "queue: an ack of a lease never granted is an anomaly")
    eq(q([enq, Op(2, 3, ("claim", "a"), C("a", "t1"), 1),
          Op(4, 5, ("release", "a", "t1"), {"released": True}, 1),
          Op(6, 7, ("claim", "a"), C("a", "t2"), 2),
          Op(8, 9, ("ack", "a", "t1"), {"acked": False, "reason": "token_mismatch"}, 1)]), True,
       "queue: claim, release, claim again, an old token is refused")
    eq(q([enq, Op(2, None, ("claim", "a"), None, 1),
          Op(3, 4, ("claim", "a"), {"claimed": False, "reason": "claimed"}, 2)]), True,
       "queue: a claim with an unknown outcome may have won")
    eq(q([enq, Op(2, None, ("claim", "a"), None, 1),
          Op(3, 4, ("claim", "a"), C("a", "t2"), 2)]), True,
       "queue: ... or may never have happened")
    late = [Op(0, 1, ("enqueue", "z"), E("z"), 3),
            Op(2, 3, ("claim", "a"), {"claimed": False, "reason": "not_queued"}, 2),
            Op(4, 5, ("claim", "a"), C("a", "t1"), 2)]
    eq(q([Op(0, None, ("enqueue", "a"), None, 1)] + late), True,
       "queue: an unknown enqueue without an end may take effect late")
    eq(q([Op(0, 1, ("enqueue", "a"), None, 1)] + late), False,
       "queue: ... but one whose answer (nginx's 503) came at 1 cannot take "
       "effect after it")
    eq(q([enq, Op(2, 3, ("claim", "a"), {"_status": 500, "error": "internal"}, 1),
          Op(4, 5, ("claim", "a"), C("a", "t2"), 2)]), True,
       "queue: casqd's 500 means the claim did not happen")
    eq(q([enq, Op(2, 3, ("claim", "a"), {"_status": 500, "error": "internal"}, 1),
          Op(4, 5, ("claim", "a"), {"claimed": False, "reason": "claimed"}, 2)]), False,
       "queue: ... so an item claimed only by a failed claim is an anomaly")
    eq(q([Op(0, 1, ("claim", "a"), {"claimed": False, "reason": "no_such_queue"}, 1), enq,
          Op(2, 3, ("enqueue", "a"), {"enqueued": False, "state": "ready"}, 2)]), True,
       "queue: no_such_queue before the first enqueue, a second enqueue refused")

    # Shapes test_linear found (casqd took an op's time when it read the
    # request, not when it applied it: an op read before an enqueue or a
    # release but applied after it saw the item as not ready yet).
    eq(q([Op(40, 60, ("pop",), {"claimed": False, "reason": "empty"}, 0),
          Op(44, 56, ("enqueue", "i1"), E("i1"), 7)]), False,
       "queue: a pop overlapping a queue's first enqueue answers no_such_queue "
       "or takes the item, never empty")
    rel = [enq, Op(2, 3, ("claim", "a"), C("a", "t1"), 1),
           Op(10, 20, ("release", "a", "t1"), {"released": True, "state": "ready"}, 1)]
    eq(q(rel + [Op(11, 19, ("claim", "a"), {"claimed": False, "reason": "not_ready"}, 2)]),
       False, "queue: a claim overlapping a release without delay answers claimed "
       "or wins, never not_ready")
    eq(q(rel + [Op(11, 19, ("claim", "a"), {"claimed": False, "reason": "claimed"}, 2)]),
       True, "queue: ... claimed (before the release) is linearizable")
    eq(q(rel + [Op(11, 19, ("claim", "a"), C("a", "t2"), 2)]),
       True, "queue: ... and so is winning (after it)")
    # What the first report named: the detail must point at the op the
    # longest order could not take, not at the first op of the queue.
    bad = [Op(0, 1, ("pop",), {"claimed": False, "reason": "no_such_queue"}, 3),
           Op(2, 3, ("enqueue", "a"), None, 4),
           Op(4, 5, ("enqueue", "a"), {"enqueued": False, "state": "ready"}, 5),
           Op(6, 7, ("claim", "a"), C("a", "t1"), 1),
           Op(10, 20, ("release", "a", "t1"), {"released": True, "state": "ready"}, 1),
           Op(11, 19, ("claim", "a"), {"claimed": False, "reason": "not_ready"}, 2)]
    res, detail = check(bad, QueueModel)
    ok(res is False and "not_ready" in detail and "no_such_queue" not in detail,
       "queue: the report names the claim that no order can take, not the "
       "first op of the queue", detail)
    eq(q(bad[:5]), True, "queue: ... without that claim the same history is linearizable")
    eq(q([Op(0, 3, ("enqueue", "a"), None, 1),
          Op(1, 2, ("pop",), {"claimed": False, "reason": "no_such_queue"}, 2),
          Op(4, 5, ("enqueue", "a"), {"enqueued": False, "state": "ready"}, 2)]), True,
       "queue: no_such_queue while the queue's first enqueue, its outcome unknown "
       "(nginx's 503), was under way is linearizable: the enqueue came after")
    eq(q([Op(0, 1, ("enqueue", "a"), None, 1),
          Op(2, 3, ("pop",), {"claimed": False, "reason": "no_such_queue"}, 2),
          Op(4, 5, ("enqueue", "a"), {"enqueued": False, "state": "ready"}, 2)]), False,
       "queue: ... but not once its 503 had come: it happened before that, or never")
    # follow-up runs: an enqueue during a lease is enqueued once, the ack
    # makes the item ready for it
    F = {"enqueued": True, "state": "follow_up"}
    lease = [enq, Op(2, 3, ("claim", "a"), C("a", "t1"), 1)]
    eq(q(lease + [Op(4, 5, ("enqueue", "a"), F, 2),
                  Op(6, 7, ("enqueue", "a"), {"enqueued": False, "state": "follow_up"}, 3),
                  Op(8, 9, ("ack", "a", "t1"), {"acked": True, "follow_up": True}, 1),
                  Op(10, 11, ("pop",), C("a", "t2"), 2),
                  Op(12, 13, ("ack", "a", "t2"), {"acked": True}, 2),
                  Op(14, 15, ("pop",), {"claimed": False, "reason": "empty"}, 2)]), True,
       "queue: a follow-up during a lease runs once more after the ack")
    eq(q(lease + [Op(4, 6, ("enqueue", "a"), F, 2), Op(5, 7, ("enqueue", "a"), F, 3)]), False,
       "queue: two enqueues of one lease both enqueued is an anomaly")
    eq(q(lease + [Op(4, 5, ("enqueue", "a"), F, 2),
                  Op(6, 7, ("ack", "a", "t1"), {"acked": True}, 1)]), False,
       "queue: an ack that consumes an item with a follow-up waiting is an anomaly")
    eq(q(lease + [Op(4, 5, ("enqueue", "a"), F, 2),
                  Op(6, 7, ("ack", "a", "t1"), {"acked": True, "follow_up": True}, 1),
                  Op(8, 9, ("pop",), {"claimed": False, "reason": "empty"}, 2)]), False,
       "queue: a follow-up that never runs (lost) is an anomaly")

    # --- kv
    eq(kv([Op(0, 1, ("incr", 1), {"value": 1, "version": 1}, 1),
           Op(0, 2, ("incr", 1), {"value": 2, "version": 2}, 2)]), True,
       "kv: two concurrent incrs answer 1 and 2")
    eq(kv([Op(0, 1, ("incr", 1), {"value": 1, "version": 1}, 1),
           Op(0, 2, ("incr", 1), {"value": 1, "version": 1}, 2)]), False,
       "kv: an injected lost update (both incrs answer 1) is an anomaly")
    eq(kv([Op(0, 1, ("set", 5, None), {"ok": True, "version": 1}, 1),
           Op(2, 3, ("set", 6, 1), {"ok": True, "version": 2}, 1),
           Op(2, 3, ("set", 7, 1), {"ok": False, "version": 2}, 2),
           Op(4, 5, ("get",), {"found": True, "value": 6, "version": 2}, 2)]), True,
       "kv: of two cas writes on version 1 one wins, a read sees it")
    eq(kv([Op(0, 1, ("set", 5, None), {"ok": True, "version": 1}, 1),
           Op(2, 3, ("set", 6, 1), {"ok": True, "version": 2}, 1),
           Op(2, 3, ("set", 7, 1), {"ok": True, "version": 2}, 2)]), False,
       "kv: two cas writes both winning on version 1 is an anomaly")
    eq(kv([Op(0, 1, ("set", 5, None), {"ok": True, "version": 1}, 1),
           Op(2, 3, ("set", 6, None), {"ok": True, "version": 2}, 1),
           Op(4, 5, ("get",), {"found": True, "value": 5, "version": 1}, 2)]), False,
       "kv: a stale read after a completed write is an anomaly")
    eq(kv([Op(0, None, ("incr", 1), None, 1),
           Op(5, 6, ("incr", 1), {"value": 2, "version": 2}, 2)]), True,
       "kv: an incr with an unknown outcome may have happened")


run_main(main)
