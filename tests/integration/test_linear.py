#!/usr/bin/env python3
"""Linearizable histories through nginx while workers are killed
(docs/reliability.md).

Clients run concurrent operations on a few kv keys (get, set, cas, incr)
and a few queues (enqueue, claim by key, pop, ack, release; leases long
enough never to expire), recording each call's invocation and completion
time (time.monotonic_ns) and its answer, while casqd's workers are killed
with SIGKILL every few hundred operations. An answer the client never got
(nginx's 503 when the worker died) is an unknown outcome, bounded by the
time that answer came (unless it came after nginx's read timeout, when
casqd may still be at it); casqd's own 5xx means the operation did not
happen. No request is sent twice (see call). Each key's and each queue's
history is then checked with tests/crash/lincheck.py against its model:
zero anomalies. The same histories with an injected double claim and an
injected lost update must each be reported. A history that cannot be
ordered is written whole, with the run's logs, to var/test_linear/
(CASQ_LIN_FAIL_DIR) for reading by hand.

CASQ_LIN_OPS (total operations, at least 10,000 by default) makes it
longer; script/crashtest sets it."""

import json
import os
import random
import shutil
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
from lincheck import KvModel, Op, QueueModel, check, check_partitions  # noqa: E402
from casqtest import Stack, comment, eq, mkdtemp, ok, rmtemp, run_main, worker_pids  # noqa: E402

TOTAL = int(os.environ.get("CASQ_LIN_OPS", "10000"))
THREADS = 8
KV_KEYS = 12
QUEUES = 12
QKEYS = 3           # keys per queue: small, so items are fought over
KILL_EVERY = 600    # completed operations between two worker kills
LEASE = 3600        # seconds: no lease expires during the run
# nginx's fastcgi_read_timeout (nginx/casq-dev.conf.in): its 504 reaches
# the client as the same 503 (error_page), but casqd may still do the op.
NGINX_READ_TIMEOUT_NS = 30 * 10**9
# Where an unorderable history is written (one JSON file per history, with
# the kills and the logs of the run beside it), to be read by hand.
FAIL_DIR = os.environ.get("CASQ_LIN_FAIL_DIR",
                          os.path.join(HERE, "..", "..", "var", "test_linear"))


class RecOp(Op):
    """An Op with what the recorder saw beyond the answer: the HTTP status,
    the body of an error answer, the exception when no answer came. Only
    for the failure report; the checker ignores it."""
    __slots__ = ("info",)

    def __init__(self, inv, ret, call, answer, client, info):
        Op.__init__(self, inv, ret, call, answer, client)
        self.info = info


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.parts = {}
        self.done = 0
        self.unknown = 0
        self.statuses = {}

    def add(self, part, model, op):
        with self.lock:
            self.parts.setdefault(part, (model, []))[1].append(op)
            self.done += 1
            if op.answer is None:
                self.unknown += 1
            st = op.info.get("status") or "no answer"
            if op.answer is None and st != "no answer":
                st = "unknown (%s)" % st
            self.statuses[st] = self.statuses.get(st, 0) + 1
            return self.done


def call(c, path, params, info, inv):
    """(answer dict, or None when the outcome is unknown; completion time,
    or None when not even that is known). info: what else was seen, for
    the failure report.

    Never sent twice (retry=False): a request on a kept-alive connection
    that the server closed may have reached casqd and been done before
    the close, so a second send would be a second operation, and
    recording both as one (with the second's answer) would hide the
    first. Its outcome is unknown, with no end; the next call connects
    again."""
    try:
        r = c.call("POST", path, params=params, retry=False)
    except Exception as e:  # noqa: B902 - the outcome is unknown, and when
        info["exception"] = "%s: %s" % (type(e).__name__, e)
        return None, None   # it happened: the client gave up waiting
    t = time.monotonic_ns()
    info["status"] = r.status
    if r.status != 200:
        info["body"] = r.text[:200]
    if r.status == 504 or (r.status in (502, 503) and t - inv >= NGINX_READ_TIMEOUT_NS):
        return None, None   # nginx gave up waiting; casqd may still do it
    if r.status in (502, 503):
        # nginx: the worker died with the request, or none took it. It may
        # have happened, but before now: a dead process commits nothing.
        return None, t
    if r.status != 200:
        d = {"_status": r.status, "reason_phrase": r.reason}
        try:
            d.update(r.keys() and {k: r.get(k) for k in r.keys()})
        except Exception:   # noqa: B902 - a body that is not JSON
            pass
        return d, t
    return {k: r.get(k) for k in r.keys()}, t


def kv_op(c, h, rng, client, seen):
    key = "k%d" % rng.randrange(KV_KEYS)
    roll = rng.random()
    if roll < 0.25:
        callt, path, params = ("get",), "get", {"key": key}
    elif roll < 0.45:
        v = rng.randrange(1000)
        callt, path, params = ("set", v, None), "set", {"key": key, "value": v}
    elif roll < 0.7:
        v = rng.randrange(1000)
        cas = seen.get(key, 0)
        callt, path, params = ("set", v, cas), "set", {"key": key, "value": v, "cas": cas}
    else:
        callt, path, params = ("incr", 1), "incr", {"key": key}
    info = {}
    inv = time.monotonic_ns()
    ans, ret = call(c, "/v1/kv/lin/" + path, params, info, inv)
    if ans and isinstance(ans.get("version"), int):
        seen[key] = ans["version"]
    return h.add("kv " + key, KvModel, RecOp(inv, ret, callt, ans, client, info))


def queue_op(c, h, rng, client, held):
    qn = "q%d" % rng.randrange(QUEUES)
    key = "i%d" % rng.randrange(QKEYS)
    mine = [k for (q, k) in held if q == qn]
    roll = rng.random()
    if roll < 0.3:
        callt, path, params = ("enqueue", key), "enqueue", {"key": key}
    elif roll < 0.45:
        callt, path, params = ("claim", key), "claim", {"key": key, "claimant": "c%d" % client,
                                                       "lease": LEASE}
    elif roll < 0.6:
        callt, path, params = ("pop",), "pop", {"claimant": "c%d" % client, "lease": LEASE}
    elif mine and roll < 0.85:
        k = rng.choice(mine)
        callt, path, params = ("ack", k, held[(qn, k)]), "ack", {"key": k, "token": held[(qn, k)]}
    elif mine:
        k = rng.choice(mine)
        callt, path, params = (("release", k, held[(qn, k)]), "release",
                               {"key": k, "token": held[(qn, k)]})
    else:
        callt, path, params = ("enqueue", key), "enqueue", {"key": key}
    info = {}
    inv = time.monotonic_ns()
    ans, ret = call(c, "/v1/queues/%s/%s" % (qn, path), params, info, inv)
    if callt[0] in ("claim", "pop") and ans and ans.get("claimed") is True:
        held[(qn, ans["key"])] = ans["token"]
    elif callt[0] in ("ack", "release"):
        held.pop((qn, callt[1]), None)   # done with it, whatever the answer
    return h.add("queue " + qn, QueueModel, RecOp(inv, ret, callt, ans, client, info))


def started_at(pid):
    """A process's start time in clock ticks since boot (/proc/PID/stat)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return int(st[st.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def inject_double_claim(parts):
    """A copy of the histories where a second client also 'wins' the
    first won claim of some queue, after the first completed."""
    for name in sorted(parts):
        model, ops = parts[name]
        if model is not QueueModel:
            continue
        for o in ops:
            if o.call[0] in ("claim", "pop") and o.answer is not None and \
                    o.answer.get("claimed") is True:
                fake = Op(o.ret + 1, o.ret + 2, ("claim", o.answer["key"]),
                          dict(o.answer, token="f" * 32), 999)
                return name, model, ops + [fake]
    return None, None, None


def inject_lost_update(parts):
    """A copy where a second incr answers the value an earlier one did."""
    for name in sorted(parts):
        model, ops = parts[name]
        if model is not KvModel:
            continue
        for o in ops:
            if o.call[0] == "incr" and o.answer is not None and "value" in o.answer:
                fake = Op(o.ret + 1, o.ret + 2, ("incr", 1), dict(o.answer), 999)
                return name, model, ops + [fake]
    return None, None, None


def keep_logs(s):
    """Copies of the run's casqd and nginx logs (the stack's directory goes
    with it), in a directory the caller removes."""
    d = mkdtemp("casqlin-logs")
    for src, name in ((s.casqd_log, "casqd.log"), (s.nginx_log, "nginx-error.log")):
        try:
            shutil.copy(src, os.path.join(d, name))
        except OSError:
            pass
    return d


def save_failures(parts, failed, kills, logs):
    """Write each history the checker could not order, whole and in time
    order, with the kills and the logs of the run; returns the paths."""
    stamp = time.strftime("%Y%m%dT%H%M%S") + "-%d" % os.getpid()
    out = os.path.join(FAIL_DIR, stamp)
    os.makedirs(out, exist_ok=True)
    paths = []
    t0 = min((o.inv for _m, ops in parts.values() for o in ops), default=0)
    for name, detail in failed:
        _model, ops = parts[name]
        path = os.path.join(out, name.replace(" ", "-") + ".json")
        with open(path, "w") as f:
            json.dump({
                "partition": name, "detail": detail, "t0_ns": t0,
                "kills": [{"t": t - t0, "pid": pid} for t, pid in kills],
                "ops": [{"inv": o.inv - t0,
                         "ret": None if o.ret is None else o.ret - t0,
                         "client": o.client, "call": list(o.call),
                         "answer": o.answer,
                         "info": getattr(o, "info", None)}
                        for o in sorted(ops, key=lambda o: o.inv)],
            }, f, indent=1, default=repr)
        paths.append(path)
    for name in os.listdir(logs):
        shutil.copy(os.path.join(logs, name), os.path.join(out, name))
    return paths


def main():
    h = History()
    kills = []
    with Stack(workers=2, tag="casqlin") as s:
        next_kill = [KILL_EVERY]
        kill_lock = threading.Lock()

        def maybe_kill(done):
            """Every KILL_EVERY operations, SIGKILL the older of the two
            workers, but only while both are up: a worker killed young
            would make the master back off (up to 30 s) and stall the run."""
            with kill_lock:
                if done < next_kill[0]:
                    return
                pids = sorted(worker_pids(s.casqd.pid), key=started_at)
                if len(pids) < 2:
                    return      # one is restarting: try again after the next op
                try:
                    t = time.monotonic_ns()
                    os.kill(pids[0], signal.SIGKILL)
                    kills.append((t, pids[0]))
                except ProcessLookupError:
                    return
                next_kill[0] = done + KILL_EVERY

        per_thread = (TOTAL + THREADS - 1) // THREADS
        errors = []

        def work(i):
            rng = random.Random(100 + i)
            c = s.client(timeout=60)
            seen, held = {}, {}
            try:
                for _ in range(per_thread):
                    if rng.random() < 0.5:
                        done = kv_op(c, h, rng, i, seen)
                    else:
                        done = queue_op(c, h, rng, i, held)
                    maybe_kill(done)
            except BaseException as e:  # noqa: B902 - reported below
                errors.append("%s: %s" % (type(e).__name__, e))
            finally:
                c.close()

        t0 = time.monotonic()
        ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(THREADS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        comment("%d operations in %.1f s, %d workers killed; answers: %r"
                % (h.done, time.monotonic() - t0, len(kills), h.statuses))
        eq(errors, [], "the clients ran without errors")
        logs = keep_logs(s)
    ok(len(kills) >= 1, "workers were killed during the run (%d)" % len(kills))
    t0 = time.monotonic()
    n, anomalies, gave_up = check_partitions(h.parts)
    comment("checked %d operations in %d histories in %.1f s; %d with unknown outcomes"
            % (n, len(h.parts), time.monotonic() - t0, h.unknown))
    ok(n >= TOTAL, "at least %d operations checked (%d)" % (TOTAL, n))
    for name, detail in anomalies[:5]:
        comment("anomaly in %s: %s" % (name, detail))
    if anomalies or gave_up:
        for f in save_failures(h.parts, anomalies + gave_up, kills, logs):
            comment("history written to " + f)
    rmtemp(logs)
    eq(len(anomalies), 0, "zero anomalies: every key's and queue's history is linearizable")
    eq(gave_up, [], "the search finished on every history")

    name, model, ops = inject_double_claim(h.parts)
    ok(name is not None and check(ops, model)[0] is False,
       "the recorded history of %s with an injected double claim is an anomaly" % name)
    name, model, ops = inject_lost_update(h.parts)
    ok(name is not None and check(ops, model)[0] is False,
       "the recorded history of %s with an injected lost update is an anomaly" % name)


run_main(main)
