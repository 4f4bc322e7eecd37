"""lincheck.py - a linearizability checker for casq's histories.

A history is a list of operations, each with an invocation time, a
completion time, the call and its answer. The answer is None when the
client never learned the outcome; the completion time is None when it
does not even know by when the operation was over (a client timeout: the
server may still be working on it). The history is linearizable when
every operation can be given one instant between its invocation and its
completion such that, taken in that order, the answers are those of a
sequential model (Herlihy and Wing). An operation without a known outcome
may take effect at any such instant, or never.

An answer nginx gave because the worker died (502/503) bounds the
operation: a dead process commits nothing, so whatever it did, it did
before the answer. Only an operation whose client gave up waiting has no
completion time.

The search is Wing and Gong's, with Lowe's cache of (linearized set,
model state) as in Knossos and porcupine: walk the history in time order;
at each call, try to linearize it now (the model accepts its answer),
else move on; at a completion whose call is not linearized yet, undo the
last choice. Models may be nondeterministic (which item an unanswered pop
took): the state is the set of states the model may be in.

Histories are checked per partition (one kv key, one queue): a register
and a queue are local objects, so the whole is linearizable iff each part
is (Herlihy and Wing's locality), and a part stays small enough to search.

Models, written out:

kv key (a versioned register with compare-and-swap and a counter), state
(value, version), (None, 0) when absent; versions are per key, +1 per
write, the first write makes version 1 (the tests never delete):
  get               -> found iff value is not None; value and version equal
  set v             -> ok, version + 1, value v
  set v cas c       -> version == c: ok, version + 1, value v
                       else: not ok, answers the current version
  incr by b         -> value (0 when absent) + b, version + 1; answers both

queue (items by key; each absent, ready, leased under a token (with or
without a follow-up run waiting), or consumed), plus whether the queue
exists (its first enqueue creates it):
  enqueue k         -> absent/consumed: enqueued, k ready
                       ready: not enqueued, "ready"
                       leased: enqueued (the first during the lease) or not
                       (a follow-up waits already), "follow_up"; k has a
                       follow-up
  claim k (leased)  -> ready: claimed, k leased under the answer's token
                       leased/consumed: not claimed, "claimed"
                       absent: "not_queued"; no queue yet: "no_such_queue"
  pop (leased)      -> some ready k: claimed k, leased under the token
                       no ready item: "empty"; no queue yet: "no_such_queue"
  ack k token       -> leased under token: acked, k consumed (ready with
                       "follow_up" when a follow-up waited)
                       leased under another: "token_mismatch"
                       otherwise: "not_leased"
  release k token   -> leased under token: released, k ready
                       otherwise as ack
The pop model takes any ready item: pop order is by ready time in
milliseconds, then enqueue order, which a model without the server's clock
cannot reproduce exactly, so FIFO order is not checked here (test_races
checks it); what is checked is that no item is taken twice, lost, or taken
while not ready.
"""

import itertools

INF = float("inf")


class Op:
    __slots__ = ("id", "inv", "ret", "call", "answer", "client")

    def __init__(self, inv, ret, call, answer, client=0):
        self.inv = inv
        self.ret = ret          # None: no known end (it may still happen)
        self.call = call        # tuple: ("set", v, cas) etc.
        self.answer = answer    # dict, or None when the outcome is unknown
        self.client = client
        self.id = None

    def __repr__(self):
        return "Op(%r -> %r, [%s, %s], client %s)" % (
            self.call, self.answer, self.inv, self.ret, self.client)


# ---------------------------------------------------------------- models

def _num(x):
    """A value as the model holds it: a set sent as a form stores the
    string "5", which reads back as "5" and counts as 5 for incr."""
    if isinstance(x, str) and x.lstrip("-").isdigit():
        return int(x)
    return x


class KvModel:
    """A versioned register with cas and incr: state (value, version)."""

    init = (None, 0)

    @staticmethod
    def step(state, call, ans):
        """States after call, given its answer (None: unknown)."""
        value, version = state
        kind = call[0]
        if kind == "get":
            if ans is None:
                return [state]
            if value is None:
                return [state] if ans.get("found") is False else []
            ok = (ans.get("found") is True and _num(ans.get("value")) == value and
                  ans.get("version") == version)
            return [state] if ok else []
        if kind == "set":
            v, cas = _num(call[1]), call[2]
            applies = cas is None or cas == version
            if ans is None:
                return [(v, version + 1)] if applies else []
            if applies:
                return [(v, version + 1)] if (ans.get("ok") is True and
                                             ans.get("version") == version + 1) else []
            return [state] if (ans.get("ok") is False and
                               ans.get("version") == version) else []
        if kind == "incr":
            by = call[1]
            if value is not None and not isinstance(value, int):
                return [state] if ans is not None and ans.get("status") == 409 else []
            nv = (value or 0) + by
            if ans is None:
                return [(nv, version + 1)]
            return [(nv, version + 1)] if (ans.get("value") == nv and
                                          ans.get("version") == version + 1) else []
        raise ValueError("kv model: unknown call %r" % (call,))


class QueueModel:
    """Items of one queue: state (created, ((key, state), ...)) where an
    item's state is "r" (ready), ("l", token, follow_up) (leased), "c"
    (consumed); an absent key is not in the tuple."""

    init = (False, ())

    @staticmethod
    def _with(items, key, st):
        d = dict(items)
        if st is None:
            d.pop(key, None)
        else:
            d[key] = st
        return tuple(sorted(d.items(), key=lambda kv: kv[0]))

    @staticmethod
    def step(state, call, ans):
        created, items = state
        d = dict(items)
        kind = call[0]
        W = QueueModel._with
        if kind == "enqueue":
            k = call[1]
            cur = d.get(k)
            if cur is None or cur == "c":
                nxt = (True, W(items, k, "r"))
                if ans is None or ans.get("enqueued") is True:
                    return [nxt]
                return []
            if cur == "r":
                if ans is None:
                    return [(True, items)]
                return [(True, items)] if (ans.get("enqueued") is False and
                                           ans.get("state") == "ready") else []
            nxt = (True, W(items, k, ("l", cur[1], True)))
            if ans is None:
                return [nxt]
            return [nxt] if (ans.get("enqueued") is (not cur[2]) and
                             ans.get("state") == "follow_up") else []
        if kind in ("claim", "pop"):
            if not created:
                if ans is None:
                    return [state]
                return [state] if ans.get("reason") == "no_such_queue" else []
            ready = [k for k, s in items if s == "r"]
            if kind == "claim":
                k = call[1]
                cur = d.get(k)
                if cur == "r":
                    if ans is None:
                        return [(True, W(items, k, ("l", None, False)))]
                    if ans.get("claimed") is True and ans.get("key") == k and ans.get("token"):
                        return [(True, W(items, k, ("l", ans["token"], False)))]
                    return []
                if ans is None:
                    return [state]
                want = "not_queued" if cur is None else "claimed"
                return [state] if (ans.get("claimed") is False and
                                   ans.get("reason") == want) else []
            # pop
            if ans is None:
                return [state] + [(True, W(items, k, ("l", None, False))) for k in ready]
            if ans.get("claimed") is True:
                k = ans.get("key")
                if k in ready and ans.get("token"):
                    return [(True, W(items, k, ("l", ans["token"], False)))]
                return []
            return [state] if (not ready and ans.get("reason") == "empty") else []
        if kind in ("ack", "release"):
            k, token = call[1], call[2]
            cur = d.get(k)
            flag = "acked" if kind == "ack" else "released"
            if not created:
                if ans is None:
                    return [state]
                return [state] if ans.get("reason") == "no_such_queue" else []
            if isinstance(cur, tuple) and cur[1] == token:
                follow = cur[2]
                nxt = (True, W(items, k, "c" if kind == "ack" and not follow else "r"))
                if ans is None:
                    return [nxt]
                if ans.get(flag) is True and (kind != "ack" or
                                              ans.get("follow_up", False) == follow):
                    return [nxt]
                return []
            if ans is None:
                return [state]
            want = "token_mismatch" if isinstance(cur, tuple) else "not_leased"
            return [state] if (ans.get(flag) is False and
                               ans.get("reason") == want) else []
        raise ValueError("queue model: unknown call %r" % (call,))


# ---------------------------------------------------------------- search

class _Entry:
    __slots__ = ("op", "is_call", "match", "prev", "next")

    def __init__(self, op, is_call):
        self.op = op
        self.is_call = is_call
        self.match = None
        self.prev = self.next = None


def _step_set(model, states, op):
    if op.answer is not None and op.answer.get("_status", 200) != 200:
        # casqd's own 5xx (or 4xx): the operation did not happen
        # (docs/storage.md, group commit); nginx's 503 is an unknown
        # outcome and is recorded with ret None instead.
        return frozenset(states)
    out = set()
    for s in states:
        out.update(model.step(s, op.call, op.answer))
    if op.answer is None:
        out.update(states)      # an unknown outcome may also be "it never happened"
    return frozenset(out)


def check(ops, model, max_steps=2000000):
    """(True, None) when ops is linearizable under model; (False, detail)
    when not; (None, detail) when the search gave up after max_steps."""
    ops = list(ops)
    for i, o in enumerate(ops):
        o.id = i
    events = []
    for o in ops:
        c = _Entry(o, True)
        r = _Entry(o, False)
        c.match = r
        events.append((o.inv, 0, o.id, c))
        events.append((o.ret if o.ret is not None else INF, 1, o.id, r))
    # At equal times calls come first: operations that touch overlap.
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(None, False)
    prev = head
    for _t, _k, _i, e in events:
        prev.next = e
        e.prev = prev
        prev = e

    def lift(e):
        e.prev.next = e.next
        if e.next:
            e.next.prev = e.prev
        m = e.match
        m.prev.next = m.next
        if m.next:
            m.next.prev = m.prev

    def unlift(e):
        m = e.match
        m.prev.next = m
        if m.next:
            m.next.prev = m
        e.prev.next = e
        if e.next:
            e.next.prev = e

    state = frozenset([model.init])
    linearized = 0
    cache = set()
    calls = []
    entry = head.next
    steps = 0
    deepest = 0
    stuck = None            # (depth, op it could not take, last op it took)
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return None, "search gave up after %d steps" % max_steps
        if entry.is_call:
            nxt = _step_set(model, state, entry.op)
            if nxt:
                lin = linearized | (1 << entry.op.id)
                key = (lin, nxt)
                if key not in cache:
                    cache.add(key)
                    calls.append((entry, state))
                    deepest = max(deepest, len(calls))
                    state = nxt
                    linearized = lin
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # entry.op completed and no order so far could take it
            if stuck is None or len(calls) > stuck[0]:
                stuck = (len(calls), entry.op, calls[-1][0].op if calls else None)
            if not calls:
                return False, _explain(ops, stuck)
            entry, state = calls.pop()
            linearized &= ~(1 << entry.op.id)
            unlift(entry)
            entry = entry.next
    return True, None


def _explain(ops, stuck):
    """Where the search got furthest: the op that its longest order could
    not take, not the one at which it gave up (that is always one of the
    first: the search backtracks to the start before it gives up)."""
    depth, op, last = stuck
    return ("no linearization: the longest linearizable order (%d of %d ops%s) "
            "cannot take %r, which completed before it could go on"
            % (depth, len(ops), ", its last %r" % (last,) if last is not None else "", op))


def check_partitions(parts, max_steps=2000000):
    """parts: {name: (model, [Op])}. Returns (ops checked, anomalies as
    [(name, detail)], partitions the search gave up on)."""
    n = 0
    anomalies = []
    gave_up = []
    for name in sorted(parts):
        model, ops = parts[name]
        n += len(ops)
        res, detail = check(ops, model, max_steps)
        if res is False:
            anomalies.append((name, detail))
        elif res is None:
            gave_up.append((name, detail))
    return n, anomalies, gave_up


__all__ = ["Op", "KvModel", "QueueModel", "check", "check_partitions", "itertools"]
