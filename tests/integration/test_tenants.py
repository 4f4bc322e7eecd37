#!/usr/bin/env python3
"""Tenants, through nginx + TLS + FastCGI + LMDB: two tenants with the same
queue, namespace and scope names never see or touch each other's data on
any route (request-id replays included); an admin key acts for another
tenant with X-Casq-Tenant and lists every tenant; any other key sending
the header is refused; a tenant's max_items quota refuses new data with
507 Quota Exceeded while everything that removes data keeps working; a
SIGHUP that changes a quota takes effect without dropping requests."""

import os
import sys

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import Stack, eq, ok, run_main  # noqa: E402


def keys_file_add(s, text):
    with open(s.path("keys"), "a") as f:
        f.write(text)


def as_key(s, key):
    """A caller bound to one key: call(method, path, params/body...)."""
    def call(method, path, **kw):
        return s.call(method, path, key=key, **kw)
    return call


def isolation(s, acme, beta):
    a, b = as_key(s, acme), as_key(s, beta)
    for who in (a, b):
        r = who("POST", "/v1/queues/welcome/enqueue", body={"key": "1234", "payload": {"n": 1}})
        eq(r.get("enqueued"), True, "both tenants enqueue welcome/1234 (two different items)")
    r = a("POST", "/v1/queues/welcome/claim", body={"key": "1234", "claimant": "acme-flow", "lease": 60})
    eq(r.get("claimed"), True, "acme claims its 1234")
    tok = r.get("token")
    r = b("POST", "/v1/queues/welcome/claim", body={"key": "1234", "claimant": "beta-flow"})
    eq((r.get("claimed"), r.get("owner")), (True, "beta-flow"), "beta claims its own 1234, not acme's lease")
    r = b("GET", "/v1/queues/welcome/status", params={"key": "1234"})
    eq((r.get("state"), r.get("owner")), ("claimed", "beta-flow"), "beta's status shows beta's item")
    r = b("POST", "/v1/queues/welcome/ack", body={"key": "1234", "token": tok})
    eq(r.get("acked"), False, "beta cannot ack acme's lease with its token")
    r = a("POST", "/v1/queues/welcome/ack", body={"key": "1234", "token": tok})
    eq(r.get("acked"), True, "acme acks its lease")
    a("POST", "/v1/queues/only-acme/enqueue", body={"key": "x"})
    for path in ("/v1/queues/only-acme/pop", "/v1/queues/only-acme/status"):
        r = b("POST", path, body={"key": "x"} if path.endswith("status") else {})
        eq(r.get("reason"), "no_such_queue", "beta sees no queue only-acme (%s)" % path.rsplit("/", 1)[1])
    eq(b("GET", "/v1/queues/only-acme").status, 404, "beta: stats of acme's queue are 404")
    names = [q["queue"] for q in (b("GET", "/v1/queues").json or {}).get("queues", [])]
    eq(names, ["welcome"], "beta's queue list holds only its own queue")
    names = [q["queue"] for q in (a("GET", "/v1/queues").json or {}).get("queues", [])]
    eq(names, ["only-acme", "welcome"], "acme's queue list holds its two queues")
    # remove, release
    a("POST", "/v1/queues/welcome/enqueue", body={"key": "r"})
    r = b("POST", "/v1/queues/welcome/remove", body={"key": "r"})
    eq(r.get("removed"), False, "beta cannot remove acme's item")
    eq(a("GET", "/v1/queues/welcome/status", params={"key": "r"}).get("state"), "ready",
       "acme's item is still ready")
    # kv
    a("POST", "/v1/kv/leads/set", body={"key": "k", "value": "acme"})
    r = b("POST", "/v1/kv/leads/get", body={"key": "k"})
    eq(r.get("found"), False, "beta cannot read acme's value")
    r = b("POST", "/v1/kv/leads/set", body={"key": "k", "value": "beta", "cas": 0})
    eq(r.get("ok"), True, "beta's cas=0 set succeeds: its namespace is its own")
    eq(a("GET", "/v1/kv/leads/get", params={"key": "k"}).get("value"), "acme", "acme's value unchanged")
    eq(b("POST", "/v1/kv/leads/delete", body={"key": "k"}).get("ok"), True, "beta deletes its own value")
    eq(a("GET", "/v1/kv/leads/get", params={"key": "k"}).get("value"), "acme", "acme's value survives")
    eq((b("GET", "/v1/kv/leads").json or {}).get("keys"), 0, "beta's namespace stats count its own keys")
    eq((a("GET", "/v1/kv/leads").json or {}).get("keys"), 1, "acme's namespace stats count its own keys")
    eq(b("GET", "/v1/kv/only-acme-ns").status, 404, "beta: acme's namespace does not exist")
    a("POST", "/v1/kv/only-acme-ns/incr", body={"key": "c"})
    eq(b("GET", "/v1/kv/only-acme-ns").status, 404, "... still not after acme writes in it")
    names = [n["namespace"] for n in (b("GET", "/v1/kv").json or {}).get("namespaces", [])]
    eq(names, ["leads"], "beta's namespace list holds only its own namespace")
    names = [n["namespace"] for n in (a("GET", "/v1/kv").json or {}).get("namespaces", [])]
    eq(names, ["leads", "only-acme-ns"], "acme's namespace list holds its two namespaces")
    # once
    eq(a("POST", "/v1/once/form", body={"id": "1"}).get("first"), True, "acme: first")
    eq(b("POST", "/v1/once/form", body={"id": "1"}).get("first"), True, "beta: first as well")
    # request ids: the same id in two tenants are two calls
    r1 = a("POST", "/v1/queues/ids/enqueue", body={"key": "i", "request_id": "same"})
    r2 = b("POST", "/v1/queues/ids/enqueue", body={"key": "i", "request_id": "same"})
    eq((r1.get("enqueued"), r2.get("enqueued")), (True, True), "one request id in two tenants: two enqueues")


def admin(s, acme, beta, adm):
    r = s.call("GET", "/v1/queues/welcome/status", params={"key": "1234"}, key=adm,
               headers={"X-Casq-Tenant": "acme"})
    eq((r.status, r.get("owner")), (200, "acme-flow"), "admin with X-Casq-Tenant: acme sees acme's item")
    r = s.call("POST", "/v1/queues/admin-made/enqueue", body={"key": "z"}, key=adm,
               headers={"X-Casq-Tenant": "beta"})
    eq(r.get("enqueued"), True, "admin enqueues for beta")
    eq(s.call("GET", "/v1/queues/admin-made/status", params={"key": "z"}, key=beta).get("state"),
       "ready", "beta sees what the admin enqueued for it")
    r = s.call("GET", "/v1/queues", key=beta, headers={"X-Casq-Tenant": "acme"})
    eq((r.status, r.reason, r.get("error")), (403, "Forbidden", "forbidden"),
       "a write key sending X-Casq-Tenant: 403 Forbidden")
    r = s.call("GET", "/v1/queues", key=adm, headers={"X-Casq-Tenant": "no/such"})
    eq((r.status, r.reason), (400, "Bad Tenant"), "admin with a malformed tenant name: 400 Bad Tenant")
    r = s.call("GET", "/v1/tenants", key=beta)
    eq((r.status, r.reason), (403, "Forbidden"), "/v1/tenants needs an admin key")
    r = s.call("GET", "/v1/tenants", key=adm)
    eq(r.status, 200, "/v1/tenants for the admin")
    ts = {t["tenant"]: t for t in (r.json or {}).get("tenants", [])}
    ok({"acme", "beta", "default", "ops"} <= set(ts), "/v1/tenants lists every tenant", r.text)
    ok("hash" not in r.text and all(len(k.get("name", "")) <= 64 for t in ts.values() for k in t["keys"]),
       "/v1/tenants shows key names and scopes, never hashes", r.text)
    eq(sorted((k["name"], k["scope"]) for k in ts.get("acme", {}).get("keys", [])),
       [("acme-marketo", "write")], "acme's keys")
    r = s.call("GET", "/v1/tenant", key=acme)
    eq((r.get("tenant"), r.get("key"), r.get("scope")), ("acme", "acme-marketo", "write"),
       "/v1/tenant: the key's own view")
    ok(isinstance(r.get("items"), int) and r.get("items") >= 3, "/v1/tenant counts the tenant's items", r.text)
    ok("beta" not in r.text and "ops" not in r.text, "/v1/tenant names no other tenant", r.text)


def quota(s, small):
    c = as_key(s, small)
    for i in range(5):
        r = c("POST", "/v1/queues/q/enqueue", body={"key": "k%d" % i})
        eq(r.get("enqueued"), True, "quota 5: item %d accepted" % i)
    r = c("POST", "/v1/queues/q/enqueue", body={"key": "k5"})
    eq((r.status, r.reason, r.get("error")), (507, "Quota Exceeded", "quota_exceeded"),
       "quota 5: the 6th item is 507 Quota Exceeded")
    r = c("POST", "/v1/kv/ns/set", body={"key": "v", "value": 1})
    eq(r.status, 507, "quota: a new value counts too")
    r = c("POST", "/v1/once/sc", body={"id": "1"})
    eq(r.status, 507, "quota: a new once-window counts too")
    eq(c("POST", "/v1/queues/q/claim", body={"key": "k0"}).get("claimed"), True, "quota: claims still work")
    eq(c("POST", "/v1/queues/q/remove", body={"key": "k1"}).get("removed"), True, "quota: removes still work")
    r = c("POST", "/v1/queues/q/enqueue", body={"key": "k5"})
    eq(r.get("enqueued"), True, "quota: after draining two, new items fit again")
    r = s.call("GET", "/v1/tenant", key=small)
    eq((r.get("items"), r.get("max_items")), (4, 5), "/v1/tenant: items and max_items")


def quota_reload(s, small):
    with open(s.path("keys")) as f:
        text = f.read()
    with open(s.path("keys"), "w") as f:
        f.write(text.replace("tenant small max_items=5", "tenant small max_items=6"))
    s.reload_keys()
    for k in ("k6", "k7"):
        r = s.call("POST", "/v1/queues/q/enqueue", body={"key": k}, key=small)
        eq(r.get("enqueued"), True, "after SIGHUP with max_items=6: %s fits (4 held before)" % k)
    r = s.call("POST", "/v1/queues/q/enqueue", body={"key": "k8"}, key=small)
    eq(r.status, 507, "... and then the quota of 6 holds again")


def main():
    with Stack(workers=2) as s:
        acme = s.add_key("acme-marketo", "--tenant", "acme")
        beta = s.add_key("beta-marketo", "--tenant", "beta")
        adm = s.add_key("ops-admin", "--tenant", "ops", "--scope", "admin")
        keys_file_add(s, "tenant small max_items=5\n")
        small = s.add_key("small-key", "--tenant", "small")
        isolation(s, acme, beta)
        admin(s, acme, beta, adm)
        quota(s, small)
        quota_reload(s, small)


run_main(main)
