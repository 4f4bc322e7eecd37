#!/usr/bin/env python3
"""Idle kept-alive connections must not starve new requests: with only 2
casqd workers, 8 client connections each make one request and then sit
idle (with fastcgi_keep_conn on, nginx keeps its upstream connections to
casqd open too); 50 sequential and 20 concurrent new requests must then
all succeed within 10 s. Then 800 POSTs on 8 kept-alive client
connections must all succeed (pooled upstream connections reused back to
back). Run with fastcgi_keep_conn on and off."""

import collections
import os
import sys
import threading
import time

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, comment, eq, ok, run_main  # noqa: E402

IDLE = 8
SEQ = 50
CONC = 20
BUDGET_S = 10.0
LOAD_CONNS = 8
LOAD_PER_CONN = 100


def check(keep_conn):
    tag = "keep_conn %s" % keep_conn
    with Stack(workers=2, keep_conn=keep_conn) as s:
        # 8 connections, one request each at the same moment (so nginx
        # needs several upstream connections), then left idle and open.
        idle = [s.client(timeout=BUDGET_S) for _ in range(IDLE)]
        barrier = threading.Barrier(IDLE, timeout=BUDGET_S)
        first = [None] * IDLE

        def one(i):
            try:
                idle[i].connect()
                barrier.wait()
                first[i] = idle[i].call("GET", "/v1/ping").status
            except Exception as e:  # noqa: B902 - reported below
                first[i] = repr(e)
        ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(IDLE)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(BUDGET_S + 5)
        eq(first, [200] * IDLE, "%s: %d connections each got an answer" % (tag, IDLE))

        t0 = time.monotonic()
        deadline = t0 + BUDGET_S
        seq = []
        for i in range(SEQ):
            if time.monotonic() > deadline:
                seq.append("deadline")
                break
            c = s.client(timeout=max(0.5, deadline - time.monotonic()))
            try:
                r = c.call("POST", "/v1/queues/ka/enqueue", body="key=s%d" % i,
                           content_type="application/x-www-form-urlencoded")
                seq.append(r.status if r.get("enqueued") is True else repr(r))
            except Exception as e:  # noqa: B902
                seq.append(repr(e))
            finally:
                c.close()
        t_seq = time.monotonic() - t0
        eq(seq, [200] * SEQ, "%s: %d sequential new requests succeed while %d sit idle" % (tag, SEQ, IDLE))

        conc = [None] * CONC

        def req(i):
            c = s.client(timeout=max(0.5, deadline - time.monotonic()))
            try:
                r = c.call("GET", "/v1/queues/ka/claim", params={"key": "s%d" % i})
                conc[i] = r.status if r.get("claimed") is True else repr(r)
            except Exception as e:  # noqa: B902
                conc[i] = repr(e)
            finally:
                c.close()
        t1 = time.monotonic()
        ts = [threading.Thread(target=req, args=(i,), daemon=True) for i in range(CONC)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(max(0.1, deadline - time.monotonic()) + 1)
        t_conc = time.monotonic() - t1
        eq(conc, [200] * CONC, "%s: %d concurrent new requests succeed" % (tag, CONC))
        total = time.monotonic() - t0
        ok(total <= BUDGET_S, "%s: all within %.0f s" % (tag, BUDGET_S), "took %.2f s" % total)
        comment("%s: sequential %.2f s, concurrent %.2f s" % (tag, t_seq, t_conc))

        # Sustained load on kept-alive client connections: nginx reuses its
        # pooled upstream connections back to back (keep_conn on), so a
        # casqd that closes them under nginx's feet shows up here as 502/503.
        codes = collections.Counter()
        lock = threading.Lock()

        def load(j):
            c = s.client(timeout=BUDGET_S)
            try:
                for i in range(LOAD_PER_CONN):
                    r = c.call("POST", "/v1/queues/ka/enqueue", body="key=l%d-%d" % (j, i),
                               content_type="application/x-www-form-urlencoded")
                    with lock:
                        codes[r.status if r.get("enqueued") is True else repr(r)[:80]] += 1
            except Exception as e:  # noqa: B902
                with lock:
                    codes[repr(e)[:80]] += 1
            finally:
                c.close()
        t2 = time.monotonic()
        ts = [threading.Thread(target=load, args=(j,), daemon=True) for j in range(LOAD_CONNS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(BUDGET_S * 3)
        comment("%s: %d POSTs on %d connections in %.2f s: %s"
                % (tag, LOAD_CONNS * LOAD_PER_CONN, LOAD_CONNS, time.monotonic() - t2, dict(codes)))
        eq(dict(codes), {200: LOAD_CONNS * LOAD_PER_CONN},
           "%s: %d back-to-back POSTs on %d kept-alive connections all enqueued"
           % (tag, LOAD_CONNS * LOAD_PER_CONN, LOAD_CONNS))

        # The idle connections still work afterwards.
        again = []
        for c in idle:
            try:
                again.append(c.call("GET", "/v1/ping").status)
            except Exception as e:  # noqa: B902
                again.append(repr(e))
            c.close()
        eq(again, [200] * IDLE, "%s: the idle connections still answer afterwards" % tag)


def main():
    check("on")
    check("off")


run_main(main)
