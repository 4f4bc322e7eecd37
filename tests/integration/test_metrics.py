#!/usr/bin/env python3
"""GET /metrics through nginx + TLS + FastCGI + LMDB (docs/api.md, "metrics").

(a) Auth: no key or a wrong one is 401, a read key scrapes; the answer is
    Prometheus's text format 0.0.4.
(b) Counters move exactly with the requests the test makes: by route and
    status, in the duration histograms, in the group-commit histograms.
(c) The queue series equal the queue's stats route after enqueues, claims,
    acks, a release, a remove and a lease that runs out (test clock).
(d) Tenants: a tenant's key sees its own queues only, an admin key every
    tenant's (or the one X-Casq-Tenant names), each series with its tenant.
(e) Counts live in the master's shared memory: they survive every worker
    being SIGKILLed and replaced (and the restarts are counted); a
    restart of casqd starts them at zero again, the queue series stay.
(f) `promtool check metrics` passes on a scrape, and a real Prometheus
    server scrapes casq through nginx with the key (and fails with a
    wrong one); the test reads the series back through its query API."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (Stack, comment, eq, free_port, kill, ok, run_main, skip,  # noqa: E402
                      spawn, tail, worker_pids)

WORKERS = 2
WAIT_S = 60.0       # a bound on every wait for a condition, never a sleep
ENQ = "/v1/queues/*/enqueue"
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


def parse(text):
    """The samples of an exposition: {(name, ((label, value), ...)): float}."""
    out = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if m is None:
            raise ValueError("not a sample line: %r" % line)
        labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def scrape(s, key=Ellipsis, headers=None):
    r = s.call("GET", "/metrics", key=key, headers=headers)
    if r.status != 200:
        raise RuntimeError("scrape answered %r" % r)
    return parse(r.text)


def scrape_while_restarting(s):
    """A scrape, or None: while a worker is replaced, nginx may answer 503
    for a request it wrote into a kept connection of the killed one."""
    try:
        r = s.call("GET", "/metrics")
    except OSError:
        return None
    return parse(r.text) if r.status == 200 else None


def wait_until(what, cond):
    """Poll cond() until it returns something true; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise RuntimeError("waited %d s for %s" % (WAIT_S, what))


def auth(s, ro):
    r = s.call("GET", "/metrics", key=None)
    eq((r.status, r.reason, r.get("error")), (401, "Missing API Key", "missing_api_key"),
       "auth: no key is 401 Missing API Key, as JSON")
    r = s.call("GET", "/metrics", key="casq_" + "0" * 64)
    eq((r.status, r.reason), (401, "Invalid API Key"), "auth: a wrong key is 401 Invalid API Key")
    r = s.call("GET", "/metrics", key=ro)
    eq((r.status, r.headers.get("Content-Type")),
       (200, "text/plain; version=0.0.4; charset=utf-8"),
       "auth: a read key scrapes, in the text format 0.0.4")
    ok(r.text.endswith("\n") and not r.text.endswith("\n\n"), "auth: the text ends with one newline")
    r = s.call("POST", "/metrics", key=ro)
    eq(r.status, 200, "auth: POST scrapes too")
    r = s.call("GET", "/metrics", key=ro, headers={"X-Casq-Tenant": "default"})
    eq((r.status, r.reason), (403, "Forbidden"), "auth: a tenant's key may not name another tenant")
    r = s.call("GET", "/metrics", params={"queue": "m1"}, key=ro)
    eq((r.status, r.get("error")), (400, "unknown_parameter"), "auth: no parameters")


def counts_exact(s):
    # test_clock_works left an expired value: once a tick's sweep has
    # removed it, no commit but the test's own comes in between.
    wait_until("the clock probe's value to be swept", lambda: s.call(
        "GET", "/v1/kv/casqtest-clock-probe").get("keys") == 0)
    before = scrape(s)
    for k in ("k1", "k2", "k3"):
        eq(s.q("m1", "enqueue", key=k).status, 200, "counts: enqueue " + k)
    eq(s.q("m1", "enqueue").status, 400, "counts: an enqueue without a key is 400")
    for _ in range(2):
        s.call("GET", "/v1/ping")
    eq(s.call("GET", "/v1/nope").status, 404, "counts: no such route is 404")
    after = scrape(s)

    def delta(name, **labels):
        return (val(after, name, **labels) or 0) - (val(before, name, **labels) or 0)
    eq(delta("casq_requests_total", route=ENQ, code="200"), 3, "counts: 3 enqueues answered 200")
    eq(delta("casq_requests_total", route=ENQ, code="400"), 1, "counts: 1 enqueue answered 400")
    eq(delta("casq_requests_total", route="/v1/ping", code="200"), 2, "counts: 2 pings")
    eq(delta("casq_requests_total", route="none", code="404"), 1, "counts: 1 path that is no route")
    eq(delta("casq_requests_total", route="/metrics", code="200"), 1, "counts: the first scrape")
    eq(delta("casq_request_duration_seconds_count", route=ENQ), 4,
       "counts: 4 enqueues in the duration histogram")
    eq(delta("casq_request_duration_seconds_bucket", route=ENQ, le="+Inf"), 4,
       "counts: ... all of them in its +Inf bucket")
    ok(delta("casq_request_duration_seconds_sum", route=ENQ) > 0, "counts: ... and their time summed")
    eq(delta("casq_commit_batch_operations_sum"), 3, "counts: 3 operations committed")
    eq(delta("casq_commit_batch_operations_count"), 3, "counts: in 3 group commits (one at a time)")
    eq(delta("casq_commit_duration_seconds_count"), 3, "counts: 3 commit durations")
    eq(val(after, "casq_committer_queued_operations"), 0, "counts: nothing left queued")
    eq(val(after, "casq_workers"), WORKERS, "counts: the workers")
    others = [k for k in after if k[0] == "casq_requests_total" and after[k] != before.get(k)
              and dict(k[1])["route"] not in (ENQ, "/v1/ping", "none", "/metrics")]
    eq(others, [], "counts: no other route moved")


def queue_series(s):
    eq(s.q("m1", "enqueue", key="k4").status, 200, "queue: enqueue k4")
    r = s.q("m1", "claim", key="k1", claimant="c", lease=60)
    eq(r.get("claimed"), True, "queue: claim k1 with a lease")
    eq(s.q("m1", "ack", key="k1", token=r.get("token")).get("acked"), True, "queue: ack k1")
    eq(s.q("m1", "claim", key="k2", claimant="c", lease=60).get("claimed"), True, "queue: claim k2")
    eq(s.q("m1", "release", key="k2", claimant="c").get("released"), True, "queue: release k2")
    eq(s.q("m1", "remove", key="k3").get("removed"), True, "queue: remove k3")
    eq(s.q("m1", "claim", key="k4", claimant="c", lease=5).get("claimed"), True,
       "queue: claim k4 with a 5 s lease")
    s.advance(10)
    m = wait_until("the lease of k4 to run out", lambda: (lambda m: m if val(
        m, "casq_queue_expired_total", tenant="default", queue="m1") == 1 else None)(scrape(s)))
    st = s.stats("m1").json
    got = {f: val(m, "casq_queue_%s_total" % f, tenant="default", queue="m1")
           for f in ("enqueued", "claimed", "acked", "released", "removed", "expired")}
    got["ready"] = val(m, "casq_queue_items", tenant="default", queue="m1", state="ready")
    got["leased"] = val(m, "casq_queue_items", tenant="default", queue="m1", state="leased")
    eq(got, {f: st[f] for f in got}, "queue: the series equal the queue's stats route")
    eq((got["enqueued"], got["claimed"], got["acked"], got["released"], got["removed"],
        got["expired"], got["ready"], got["leased"]), (4, 3, 1, 1, 1, 1, 2, 0),
       "queue: the counts the test made")


def queue_tenants(m):
    return sorted({(dict(k[1])["tenant"], dict(k[1])["queue"]) for k in m
                   if k[0] == "casq_queue_enqueued_total"})


def tenants(s, ro, admin):
    r = s.call("GET", "/v1/queues/aq/enqueue", params={"key": "a1"}, key=admin,
               headers={"X-Casq-Tenant": "acme"})
    eq(r.get("enqueued"), True, "tenants: the admin enqueues in acme's queue aq")
    m = scrape(s, key=ro)
    eq(queue_tenants(m), [("acme", "aq")], "tenants: acme's read key sees acme's queues only")
    eq(val(m, "casq_queues"), 1, "tenants: ... and counts only those")
    ok(val(m, "casq_requests_total", route=ENQ, code="200") is not None,
       "tenants: ... and the service's series")
    eq(queue_tenants(scrape(s)), [("default", "m1")], "tenants: the default key sees its own")
    m = scrape(s, key=admin)
    eq(queue_tenants(m), [("acme", "aq"), ("default", "m1")], "tenants: an admin sees every tenant")
    eq(val(m, "casq_queues"), 2, "tenants: ... and counts every queue")
    eq(queue_tenants(scrape(s, key=admin, headers={"X-Casq-Tenant": "acme"})), [("acme", "aq")],
       "tenants: an admin with X-Casq-Tenant sees that tenant")


def promtool(s, admin):
    if shutil.which("promtool") is None:
        skip("promtool check metrics passes", "promtool not found (Debian: prometheus)")
        return
    r = s.call("GET", "/metrics", key=admin)
    p = subprocess.run(["promtool", "check", "metrics"], input=r.raw, capture_output=True,
                       timeout=60)
    out = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
    eq((p.returncode, out), (0, ""), "promtool check metrics passes, with no lint")


def survives_kills(s):
    before = scrape(s)
    restarts = val(before, "casq_worker_restarts_total")
    for i, pid in enumerate(worker_pids(s.casqd.pid)):
        os.kill(pid, signal.SIGKILL)
        wait_until("worker %d to be replaced" % pid, lambda: len([
            p for p in worker_pids(s.casqd.pid) if p != pid]) == WORKERS)
        wait_until("the restart to be counted", lambda: (lambda m: m is not None and val(
            m, "casq_worker_restarts_total") == restarts + i + 1)(scrape_while_restarting(s)))
    after = wait_until("a scrape", lambda: scrape_while_restarting(s))
    eq(val(after, "casq_worker_restarts_total"), restarts + WORKERS,
       "kills: every worker's replacement counted")
    # Nothing wrote meanwhile: every count of the enqueues, the commits
    # and the queues is what it was before the workers that made it died.
    watched = [k for k in before if k[0].startswith(("casq_commit_batch", "casq_queue_")) or
               (k[0] == "casq_requests_total" and dict(k[1])["route"] == ENQ)]
    moved = {k: (before[k], after.get(k)) for k in watched if after.get(k) != before[k]}
    eq(moved, {}, "kills: the counts of the killed workers are all still there")
    ok(len(watched) > 10, "kills: ... %d series of them" % len(watched))


def resets_on_restart(s):
    s.restart_casqd()
    m = scrape(s)
    eq(val(m, "casq_requests_total", route=ENQ, code="200"), None,
       "restart: casqd's restart starts the request counts again")
    eq(val(m, "casq_worker_restarts_total"), 0, "restart: ... and the restarts")
    eq(val(m, "casq_queue_enqueued_total", tenant="default", queue="m1"), 4,
       "restart: the queue series come from the database and stay")


def prometheus_query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
    except OSError:
        return None     # not listening yet
    res = body.get("data", {}).get("result", [])
    return float(res[0]["value"][1]) if len(res) == 1 else None


def prometheus(s, ro):
    if shutil.which("prometheus") is None:
        skip("a Prometheus server scrapes casq", "prometheus not found (Debian: prometheus)")
        return
    want = scrape(s)
    port = free_port()
    conf = s.path("prometheus.yml")
    job = ("  - job_name: %s\n    scheme: https\n    metrics_path: /metrics\n"
           "    authorization:\n      type: Bearer\n      credentials: %s\n"
           "    tls_config:\n      ca_file: %s\n"
           "    static_configs:\n      - targets: ['127.0.0.1:%d']\n")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n")
        f.write(job % ("casq", ro, s.cert, s.port))
        f.write(job % ("casq-wrong-key", "casq_" + "0" * 64, s.cert, s.port))
    log = open(s.path("prometheus.log"), "ab")
    try:
        proc = spawn(["prometheus", "--config.file=" + conf,
                      "--storage.tsdb.path=" + s.path("prometheus-data"),
                      "--web.listen-address=127.0.0.1:%d" % port],
                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    finally:
        log.close()
    try:
        q = 'casq_queue_enqueued_total{tenant="acme",queue="aq"}'
        got = wait_until("Prometheus to scrape casq", lambda: proc.poll() is None and
                         prometheus_query(port, q))
        eq(got, 1, "prometheus: acme's queue series, read back through the query API")
        eq(prometheus_query(port, 'up{job="casq"}'), 1, "prometheus: the scrape with the key is up")
        eq(prometheus_query(port, 'casq_requests_total{route="%s",code="200"}' % ENQ),
           val(want, "casq_requests_total", route=ENQ, code="200"),
           "prometheus: the request count is casq's")
        eq(prometheus_query(port, 'casq_queue_items{tenant="default"}'), None,
           "prometheus: no other tenant's queue through acme's key")
        down = wait_until("the wrong key's scrape", lambda: [
            v for v in [prometheus_query(port, 'up{job="casq-wrong-key"}')] if v is not None])
        eq(down, [0], "prometheus: a scrape with a wrong key is down (401)")
    except RuntimeError:
        comment("prometheus.log:\n" + tail(s.path("prometheus.log")))
        raise
    finally:
        kill(proc)


def main():
    with Stack(workers=WORKERS, test_clock=True) as s:
        if not s.test_clock_works():
            ok(False, "casqd follows the test clock (configure --enable-test-clock)")
            return
        ro = s.add_key("acme-reader", "--tenant", "acme", "--scope", "read")
        admin = s.add_key("ops", "--tenant", "ops", "--scope", "admin")
        auth(s, ro)
        counts_exact(s)
        queue_series(s)
        tenants(s, ro, admin)
        promtool(s, admin)
        prometheus(s, ro)
        survives_kills(s)
        resets_on_restart(s)


run_main(main)
