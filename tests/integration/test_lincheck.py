#!/usr/bin/env python3
"""The linearizability checker itself (tests/crash/lincheck.py), on small
hand-written histories: the good ones pass, and each injected anomaly is
reported: a double claim, a double pop, a lost update (two incrs that
answer the same value), a cas that wins on a stale version, a stale read,
an ack of a lease that was never granted, an item lost after its enqueue
was acknowledged. Outcomes the client never learned may or may not have
happened, and the checker allows both. No server is needed."""

import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
from lincheck import KvModel, Op, QueueModel, check  # noqa: E402
from casqtest import eq, run_main  # noqa: E402


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
