#!/usr/bin/env python3
"""casqctl beside a running casqd (nginx, TLS, FastCGI, LMDB on disk):

- usage and environment errors exit 2, a missing queue or item exits 1;
- status, queues, items and show agree with what the API answers, with
  tenant and name apart, --tenant choosing the tenant (default: default),
  and the reader list naming casqctl's own process;
- verify finds nothing on a live database, and exits 1 on one whose
  ready index lost an entry (made with mdb_dump and mdb_load);
- backup while clients enqueue, claim and ack through nginx: the copy
  verifies clean, and holds exactly the counters its items say;
- export and import round-trip items and values into another database,
  and a second import adds nothing;
- import --csv: BOM, CRLF, quoted commas, doubled quotes, newlines inside
  quotes, empty and over-long keys, duplicates, short rows, bad quoting,
  a missing key column, with each refusal's line; tenant quotas;
- import under load: every key is added exactly once (by the import or
  by a client), every client's answer agrees with the final state, and
  the database verifies clean;
- a database of schema 1 is refused and left as it was."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (Stack, casqd_path, eq, mkdtemp, ok, run_main,  # noqa: E402
                      srcdir)


def schema_version():
    """STORE_SCHEMA_VERSION, as src/store.h defines it."""
    with open(os.path.join(srcdir(), "src", "store.h")) as f:
        return int(re.search(r"^#define STORE_SCHEMA_VERSION\s+(\d+)", f.read(), re.M).group(1))


def casqctl_path():
    return os.path.join(os.path.dirname(casqd_path()), "casqctl")


def ctl(data, *args, stdin=None, timeout=300):
    """Run casqctl --data data ARGS: (exit status, stdout, stderr)."""
    r = subprocess.run([casqctl_path(), "--data", data] + list(args), input=stdin,
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), \
        r.stderr.decode("utf-8", "replace")


def ctl_json(data, *args, **kw):
    rc, out, err = ctl(data, "--json", *args, **kw)
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, err + out


def export(data, *args):
    rc, out, err = ctl(data, "export", *args)
    return rc, [json.loads(line) for line in out.splitlines()], err


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def check_usage(s):
    tmp = mkdtemp("casqctl-usage")
    eq(ctl(s.data)[0], 2, "no command: exit 2")
    rc, _, err = ctl(s.data, "frobnicate")
    eq((rc, "unknown command" in err), (2, True), "an unknown command: exit 2, said")
    eq(ctl(s.data, "items")[0], 2, "items without a queue: exit 2")
    eq(ctl(s.data, "items", "welcome", "--state", "gone")[0], 2,
       "items --state of no such state: exit 2")
    eq(ctl(s.data, "items", "bad/name")[0], 2, "a queue name the API refuses: exit 2")
    eq(ctl(s.data, "--tenant", "a:b", "queues")[0], 2, "a bad tenant name: exit 2")
    eq(ctl(s.data, "import", "x.csv", "--csv", "--queue", "q")[0], 2,
       "import --csv without --key-column: exit 2")
    rc, _, err = ctl(os.path.join(tmp, "nothing"), "status")
    eq((rc, "no database in" in err), (2, True), "a directory without a database: exit 2")
    ok(not os.path.exists(os.path.join(tmp, "nothing")), "... and none is created")
    rc, out, _ = ctl(s.data, "--help")
    ok(rc == 0 and all(c in out for c in ("status", "queues", "items", "show", "backup",
                                          "verify", "export", "import")),
       "--help lists every command")


def setup(s):
    """Items in every state, values, and a second tenant, through nginx."""
    q = lambda op, **p: s.call("POST", "/v1/queues/welcome/" + op, body=p)  # noqa: E731
    for k in ("a", "b", "c", "d"):
        eq(q("enqueue", key=k, payload={"email": k + "@example.com"}).get("enqueued"), True,
           "enqueue " + k)
    q("enqueue", key="later", delay=3600)
    eq(q("claim", key="b", claimant="flush", lease=600).get("claimed"), True, "lease b")
    eq(q("claim", key="c", claimant="hourly").get("claimed"), True, "consume c")
    s.call("POST", "/v1/kv/prefs/set", body={"key": "colour", "value": {"r": 1}})
    s.call("POST", "/v1/kv/prefs/set", body={"key": "temp", "value": "x", "ttl": 3600})
    for i in ("1", "2", "1"):
        s.call("POST", "/v1/once/forms", body={"id": i})
    acme = s.add_key("acme", "--tenant", "acme")
    r = s.call("POST", "/v1/queues/welcome/enqueue", body={"key": "z"}, key=acme)
    eq(r.get("enqueued"), True, "tenant acme enqueues z into its own welcome")
    return acme


def check_status(s):
    rc, st, err = ctl_json(s.data, "status")
    eq(rc, 0, "status --json: exit 0 " + err)
    eq(st.get("schema"), schema_version(), "status: the schema")
    ok(st.get("map_size", 0) >= 1 << 30 and st.get("page_size") == 4096 and
       0 < st.get("used_bytes", 0) <= st["pages"] * 4096, "status: map size, pages, use", st)
    ok(any(r.get("txnid", 0) > 0 for r in st.get("readers", [])),
       "status: the readers, casqctl's own among them (a transaction it reads)", st.get("readers"))
    queues = {(x["tenant"], x["name"]): x for x in st.get("queues", [])}
    eq(sorted(queues), [("acme", "welcome"), ("default", "welcome")],
       "status: each tenant's queue, tenant and name apart")
    api = s.stats("welcome")
    w = queues.get(("default", "welcome"), {})
    eq([w.get(k) for k in ("ready", "leased", "enqueued", "claimed")],
       [api.get(k) for k in ("ready", "leased", "enqueued", "claimed")],
       "status: the counters the API shows")
    eq([(n["tenant"], n["name"], n["keys"]) for n in st.get("namespaces", [])],
       [("default", "prefs", 2)], "status: the namespace and its keys")
    eq([(o["tenant"], o["name"], o["windows"], o["opened"], o["expired"]) for o in st.get("once_scopes", [])],
       [("default", "forms", 2, 2, 0)], "status: the once scope and its windows")
    eq(sorted((t["tenant"], t["items"], t["values"]) for t in st.get("tenants", [])),
       [("acme", 1, 0), ("default", 4, 2)], "status: the tenants and what they hold")
    rc, out, _ = ctl(s.data, "status")
    ok(rc == 0 and "schema %d" % schema_version() in out and "(this casqctl)" in out and "default  welcome" in out and
       "once scopes" in out and "default  forms" in out, "status: the human tables", out)


def check_queues_items_show(s):
    rc, out, _ = ctl(s.data, "queues")
    lines = out.splitlines()
    ok(rc == 0 and lines[0].split()[:4] == ["TENANT", "QUEUE", "READY", "LEASED"] and
       any(ln.split()[:4] == ["default", "welcome", "3", "1"] for ln in lines),
       "queues: a table, tenant and queue apart", out)
    rc, q, _ = ctl_json(s.data, "--tenant", "acme", "queues")
    eq([(x["tenant"], x["name"], x["ready"]) for x in q["queues"]], [("acme", "welcome", 1)],
       "queues --tenant acme: its queue only")
    rc, it, _ = ctl_json(s.data, "items", "welcome")
    eq([(x["key"], x["state"]) for x in it["items"]],
       [("a", "ready"), ("b", "leased"), ("d", "ready"), ("later", "ready")],
       "items: the default tenant's, in key order, the consumed one not among them")
    eq(it["items"][0].get("payload"), {"email": "a@example.com"}, "items: the payload")
    rc, it, _ = ctl_json(s.data, "items", "welcome", "--state", "leased")
    eq([(x["key"], x.get("owner")) for x in it["items"]], [("b", "flush")],
       "items --state leased: the leased one, with its holder")
    rc, it, _ = ctl_json(s.data, "--tenant", "acme", "items", "welcome")
    eq([x["key"] for x in it["items"]], ["z"], "items --tenant acme: acme's only")
    eq(ctl(s.data, "items", "nosuch")[0], 1, "items of a queue that does not exist: exit 1")

    rc, a, _ = ctl_json(s.data, "show", "welcome", "a")
    api = s.q("welcome", "status", key="a")
    eq((rc, a.get("state"), a.get("payload"), a.get("enqueued_at")),
       (0, "ready", {"email": "a@example.com"}, api.get("enqueued_at")),
       "show: a ready item with its payload, as status answers")
    rc, b, _ = ctl_json(s.data, "show", "welcome", "b")
    api = s.q("welcome", "status", key="b")
    eq((b.get("state"), b.get("owner"), b.get("lease_expires_at"), b.get("attempts")),
       ("leased", "flush", api.get("lease_expires_at"), 1), "show: a leased item, its holder")
    api = s.call("GET", "/v1/queues/welcome/history", params={"key": "b"})
    eq(b.get("history"), api.get("events"), "show: the item's history, as the history route has it")
    eq([(e["event"], e.get("claimant"), e.get("attempt")) for e in b.get("history", [])],
       [("enqueued", None, None), ("claimed", "flush", 1)], "show: ... enqueued, then claimed")
    rc, c, _ = ctl_json(s.data, "show", "welcome", "c")
    eq((rc, c.get("state"), c.get("owner"), "payload" in c), (0, "claimed", "hourly", False),
       "show: a consumed item's claim record")
    rc, out, _ = ctl(s.data, "show", "welcome", "c")
    ok(rc == 0 and "owner             hourly" in out and "history           2 event(s)" in out and
       "claimed claimant=hourly attempt=1" in out, "show: as a list for people", out)
    s.call("POST", "/v1/queues/welcome/enqueue", body={"key": "gone"})
    s.call("POST", "/v1/queues/welcome/remove", body={"key": "gone"})
    rc, g, _ = ctl_json(s.data, "show", "welcome", "gone")
    eq((rc, g.get("state"), [e["event"] for e in g.get("history", [])]),
       (0, "absent", ["enqueued", "removed"]), "show: a removed item is absent, with its history")
    eq(ctl(s.data, "show", "welcome", "nope")[0], 1, "show of a key with no item, record or history: exit 1")
    eq(ctl(s.data, "show", "nosuch", "a")[0], 1, "show in a queue that does not exist: exit 1")
    eq(ctl(s.data, "--tenant", "acme", "show", "welcome", "a")[0], 1,
       "show --tenant acme: the default tenant's item is not acme's")


def check_dead(s):
    """A dead letter (max_attempts 1, its lease released) in items and show."""
    q = lambda op, **p: s.call("POST", "/v1/queues/graveyard/" + op, body=p)  # noqa: E731
    eq(q("config", max_attempts=1).get("max_attempts"), 1, "graveyard: max_attempts 1")
    q("enqueue", key="x", payload={"n": 1})
    q("enqueue", key="y")
    t = q("claim", key="x", claimant="flush", lease=600).get("token")
    eq(q("release", key="x", token=t).get("state"), "dead", "x: released on its last attempt, dead")
    rc, it, _ = ctl_json(s.data, "items", "graveyard", "--state", "dead")
    eq((rc, [(x["key"], x["state"], x.get("payload")) for x in it["items"]]),
       (0, [("x", "dead", {"n": 1})]), "items --state dead: the dead one only, with its payload")
    rc, x, _ = ctl_json(s.data, "show", "graveyard", "x")
    eq((rc, x.get("state"), x.get("payload"), [e["event"] for e in x.get("history", [])][-1]),
       (0, "dead", {"n": 1}, "dead"), "show: a dead item, its payload, its history ending dead")


def check_verify(s):
    rc, out, _ = ctl(s.data, "verify")
    eq((rc, out.strip()), (0, "%s: 0 problem(s)" % s.data), "verify: a live database is clean")
    rc, v, _ = ctl_json(s.data, "verify")
    eq((rc, v.get("count"), v.get("problems")), (0, 0, []), "verify --json")
    # the same data with one entry of the ready index dropped
    tmp = mkdtemp("casqctl-broken")
    dump = subprocess.run(["mdb_dump", "-a", s.data], capture_output=True, check=True,
                          timeout=60).stdout.decode().splitlines(True)
    at = dump.index("database=ready\n")
    end = dump.index("HEADER=END\n", at) + 1
    del dump[end:end + 2]           # its first key and value
    broken = os.path.join(tmp, "data")
    os.makedirs(broken)
    subprocess.run(["mdb_load", broken], input="".join(dump).encode(), check=True,
                   capture_output=True, timeout=60)
    rc, out, _ = ctl(s.data, "verify", broken)
    ok(rc == 1 and "has no entry in the ready index" in out and "1 problem(s)" in out,
       "verify DIR: a lost index entry is one problem, exit 1", out)


def clients_run(s, n, stop, work):
    """n client threads calling work(client, thread, round) until stop is
    set; returns the threads' errors."""
    errors = []

    def run(t):
        c = s.client()
        try:
            i = 0
            while not stop.is_set():
                work(c, t, i)
                i += 1
        except BaseException as e:  # noqa: B902 - reported as a failure
            errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            c.close()
    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(n)]
    for t in threads:
        t.start()
    return threads, errors


def check_backup_under_load(s):
    tmp = mkdtemp("casqctl-backup")
    started = threading.Semaphore(0)
    answers = []

    def work(c, t, i):
        k = "load-%d-%d" % (t, i)
        e = c.call("POST", "/v1/queues/busy/enqueue", body={"key": k, "payload": {"i": i}})
        r = c.call("POST", "/v1/queues/busy/claim", body={"key": k, "claimant": "w",
                                                           "lease": 600})
        a = c.call("POST", "/v1/queues/busy/ack", body={"key": k, "token": r.get("token")}) \
            if i % 2 else None
        answers.append((k, e.get("enqueued"), r.get("claimed"), a and a.get("acked")))
        if i == 20:
            started.release()
    stop = threading.Event()
    threads, errors = clients_run(s, 4, stop, work)
    for _ in threads:
        started.acquire()           # every client is going
    results = []
    for n in range(3):
        dest = os.path.join(tmp, "b%d" % n)
        results.append(ctl_json(s.data, "backup", dest) + (dest,))
    stop.set()
    for t in threads:
        t.join(60)
    eq(errors, [], "the clients' calls went through during the backups")
    for rc, b, err, dest in results:
        ok(rc == 0 and b and b.get("count") == 0 and
           b.get("bytes") == os.path.getsize(os.path.join(dest, "data.mdb")),
           "backup under load: copied and verified, its size reported", (rc, b, err))
        ok(not os.path.exists(os.path.join(dest, "lock.mdb")) and
           os.stat(os.path.join(dest, "data.mdb")).st_mode & 0o777 == 0o600,
           "backup: the data file alone, mode 0600")
        rc, q, _ = ctl_json(dest, "--tenant", "default", "queues")
        busy = [x for x in q["queues"] if x["name"] == "busy"]
        rc, it, _ = ctl_json(dest, "items", "busy")
        ok(busy and busy[0]["ready"] + busy[0]["leased"] == len(it["items"]) ==
           busy[0]["enqueued"] - busy[0]["acked"],
           "the backup's counters equal its items (a snapshot, not a blend)", busy)
    rc, lines, _ = export(s.data, "--queue", "busy")
    final = {x["key"]: x["state"] for x in lines}
    eq([a for a in answers if not (a[1] and a[2] and a[3] in (None, True))][:5], [],
       "every client's enqueue and claim won, every ack acked")
    eq([a[0] for a in answers if final.get(a[0]) != (None if a[3] else "leased")][:5], [],
       "the final state is what the clients were answered: acked gone, the rest leased")
    eq(ctl(s.data, "backup", results[0][3])[0], 2, "backup into a directory holding one: exit 2")
    eq(ctl(s.data, "verify")[0], 0, "the live database verifies clean after the backups")


def check_roundtrip(s):
    rc, lines, err = export(s.data)
    kinds = sorted((x["type"], x["tenant"], x.get("queue") or x.get("namespace"), x["key"])
                   for x in lines if x.get("queue") != "busy")
    eq(kinds, [("item", "acme", "welcome", "z"), ("item", "default", "welcome", "a"),
               ("item", "default", "welcome", "b"), ("item", "default", "welcome", "d"),
               ("item", "default", "welcome", "later"), ("value", "default", "prefs", "colour"),
               ("value", "default", "prefs", "temp")],
       "export: every queued item and value, with its tenant")
    rc, only, _ = export(s.data, "--tenant", "acme", "--queue", "welcome")
    eq([(x["tenant"], x["key"]) for x in only], [("acme", "z")], "export --queue: that queue only")
    eq(export(s.data, "--queue", "nosuch")[0], 1, "export of a queue that does not exist: exit 1")
    with Stack(workers=1, nginx=False, tag="casqctl-copy") as other:
        path = write(os.path.join(other.tmp, "all.ndjson"),
                     "".join(json.dumps(x) + "\n" for x in lines))
        rc, r, err = ctl_json(other.data, "import", "--keys", other.path("keys"), path)
        eq((rc, r and r.get("added"), r and r.get("refused")), (0, len(lines), 0),
           "import: the export into another database " + err)
        rc, again, _ = export(other.data)
        strip = lambda x: (x["type"], x["tenant"], x.get("queue"), x.get("namespace"),  # noqa
                           x["key"], json.dumps(x.get("payload")), json.dumps(x.get("value")))
        eq(sorted(map(strip, again)), sorted(map(strip, lines)),
           "the copy holds the same items, payloads and values")
        later = [x for x in again if x["key"] == "later"][0]
        orig = [x for x in lines if x["key"] == "later"][0]
        eq(later["ready_at"], orig["ready_at"], "a delayed item keeps its ready_at")
        with open(path, "rb") as f:
            rc, r, _ = ctl_json(other.data, "import", "--keys", other.path("keys"), "-",
                                stdin=f.read())
        eq((rc, r.get("added"), r.get("already")), (0, 0, len(lines)),
           "import again (from standard input): nothing added, everything already there")
        eq(ctl(other.data, "verify")[0], 0, "the copy verifies clean")
        bad = write(os.path.join(other.tmp, "bad.ndjson"),
                    '{"type":"item","queue":"q","key":"k","colour":1}\n'
                    '{"type":"item","queue":"q"}\n'
                    '{"type":"thing","key":"k"}\n'
                    'not json\n'
                    '{"type":"value","namespace":"n","key":"k"}\n'
                    '{"type":"item","queue":"q","key":"ok","payload":null}\n'
                    '{"type":"item","queue":"q","key":"t","ready_at":"yesterday"}\n'
                    '{"type":"item","tenant":"a b","queue":"q","key":"k"}\n'
                    '{"type":"item","queue":"q/r","key":"k"}\n')
        rc, r, _ = ctl_json(other.data, "import", "--keys", other.path("keys"), bad)
        eq((rc, r.get("added"), [(x["line"], x["reason"]) for x in r.get("refusals", [])]),
           (1, 0, [(1, "Unknown Parameter"), (2, "Missing Key"), (3, "bad type"),
                   (4, "Malformed JSON"), (5, "Missing Value"), (6, "Null Parameter"),
                   (7, "bad ready_at"), (8, "Bad Tenant"), (9, "Bad Queue Name")]),
           "import: each bad line refused with the API's reason, exit 1")


def check_csv(s):
    tmp = mkdtemp("casqctl-csv")
    long_key = "k" * 257
    big = "x" * 17000
    rows = ("\ufeffId,Email Address,First Name\r\n"
            "1,jo@example.com,Jo\r\n"
            "\"2\",\"a, b@example.com\",\"say \"\"hi\"\"\"\r\n"
            "3,multi@example.com,\"two\r\nlines\"\r\n"
            ",empty@example.com,Nobody\r\n"
            "1,again@example.com,Dup\r\n"
            "4,short\r\n"
            "5,x@example.com,bro\"ken\r\n"
            "j\u00f6,utf8@example.com,J\u00f6\r\n"
            + long_key + ",l@example.com,Long\r\n"
            "6,big@example.com," + big + "\r\n"
            "\r\n"
            "7,last@example.com,Last")
    path = write(os.path.join(tmp, "list.csv"), rows)
    args = ("import", "--keys", s.path("keys"), "--csv", path, "--queue", "marketo",
            "--key-column", "Id", "--payload-columns", "First Name,Email Address")
    rc, r, err = ctl_json(s.data, *args)
    eq((rc, r.get("added"), r.get("already"), r.get("refused")), (1, 5, 1, 5),
       "import --csv: 5 added, the duplicate already there, 5 refused: exit 1 " + err)
    eq([(x["line"], x["reason"]) for x in r.get("refusals", [])],
       [(6, "Bad Key"), (8, "bad CSV"), (9, "bad CSV"), (11, "Bad Key"),
        (12, "Payload Too Large")],
       "each refusal with the line its row starts on (after the quoted newline)")
    rc, two, _ = ctl_json(s.data, "show", "marketo", "2")
    eq(two.get("payload"), {"First Name": 'say "hi"', "Email Address": "a, b@example.com"},
       "a quoted comma and doubled quotes")
    rc, three, _ = ctl_json(s.data, "show", "marketo", "3")
    eq(three.get("payload", {}).get("First Name"), "two\r\nlines", "a newline inside quotes")
    rc, one, _ = ctl_json(s.data, "show", "marketo", "1")
    eq(one.get("payload", {}).get("First Name"), "Jo",
       "the BOM is not part of the first column's name; the duplicate left the first as it was")
    eq(ctl_json(s.data, "show", "marketo", "j\u00f6")[1].get("payload", {}).get("First Name"),
       "J\u00f6", "UTF-8 keys and fields")
    eq(ctl(s.data, "show", "marketo", "7")[0], 0, "the last row without a line break")
    lf = write(os.path.join(tmp, "lf.csv"), "Id,Email\n10,a@b\n11,c@d\n")
    rc, r, _ = ctl_json(s.data, "import", "--keys", s.path("keys"), "--csv", lf,
                        "--queue", "marketo", "--key-column", "Id")
    eq((rc, r.get("added")), (0, 2), "LF line ends, no BOM, no payload columns")
    eq(ctl_json(s.data, "show", "marketo", "10")[1].get("payload"), None, "... and no payload")
    before = s.stats("marketo").get("enqueued")
    rc, _, err = ctl(s.data, "import", "--keys", s.path("keys"), "--csv", lf,
                     "--queue", "marketo", "--key-column", "Lead Id")
    eq((rc, "no column 'Lead Id'" in err), (2, True), "a missing key column: exit 2, said")
    eq(s.stats("marketo").get("enqueued"), before, "... and nothing imported")
    open_quote = write(os.path.join(tmp, "open.csv"), 'Id\n20\n"21\n22\n')
    rc, r, _ = ctl_json(s.data, "import", "--keys", s.path("keys"), "--csv", open_quote,
                        "--queue", "marketo", "--key-column", "Id")
    eq((r.get("added"), [(x["line"], x.get("detail")) for x in r["refusals"]]),
       (1, [(3, "a quoted field is not closed before the end of the file")]),
       "a quote left open: that row refused")


def check_quota(s):
    with open(s.path("keys"), "a") as f:
        f.write("tenant small max_items=5\n")
    tmp = mkdtemp("casqctl-quota")
    path = write(os.path.join(tmp, "q.csv"), "Id\n" + "".join("%d\n" % i for i in range(8)))
    rc, r, _ = ctl_json(s.data, "--tenant", "small", "import", "--keys", s.path("keys"),
                        "--csv", path, "--queue", "list", "--key-column", "Id")
    eq((rc, r.get("added"), [(x["line"], x["reason"]) for x in r["refusals"]]),
       (1, 5, [(7, "Quota Exceeded"), (8, "Quota Exceeded"), (9, "Quota Exceeded")]),
       "import keeps to the tenant's max_items: the rows past it refused")
    rc, _, err = ctl(s.data, "import", "--keys", os.path.join(tmp, "none"), path)
    eq(rc, 2, "import without a readable keys file: exit 2")


def check_import_under_load(s):
    """The CSV holds k0..k(N-1). Client threads enqueue keys spread over
    k0..k(N+3999) (a stride coprime with that range: some before the
    import reaches them, some after, some it never has), and claim each
    right after with a lease. Each key is added exactly once, by whichever
    came first, and every claim wins and keeps its lease."""
    n_csv, n_threads, span = 200000, 4, 204000
    tmp = mkdtemp("casqctl-load")
    path = write(os.path.join(tmp, "load.csv"), "Id,Src\n" + "".join(
        "k%d,import\n" % i for i in range(n_csv)))
    started = threading.Semaphore(0)
    answers = [[] for _ in range(n_threads)]
    stop = threading.Event()

    def work(c, t, i):
        if i * n_threads >= span:
            stop.wait()
            return
        k = "k%d" % ((i * n_threads + t) * 997 % span)
        e = c.call("POST", "/v1/queues/load/enqueue", body={"key": k, "payload": {"Src": "client"}})
        r = c.call("POST", "/v1/queues/load/claim", body={"key": k, "claimant": "t%d" % t,
                                                           "lease": 3600})
        answers[t].append((k, "t%d" % t, e.status, e.get("enqueued"), r.status,
                           r.get("claimed")))
        if i == 20:
            started.release()
    threads, errors = clients_run(s, n_threads, stop, work)
    for _ in threads:
        started.acquire()           # every client is going
    rc, r, err = ctl_json(s.data, "import", "--keys", s.path("keys"), "--csv", path,
                          "--queue", "load", "--key-column", "Id", "--payload-columns", "Src")
    stop.set()
    for t in threads:
        t.join(120)
    eq(errors, [], "the clients' calls went through during the import")
    eq((rc, r and r.get("refused")), (0, 0), "import under load: exit 0, nothing refused " + err)
    seen = {a[0]: a for t in answers for a in t}
    eq(len(seen), sum(len(t) for t in answers), "no client key was used twice")
    ok(all(a[2] == 200 and a[4] == 200 and a[5] for a in seen.values()),
       "every client call answered 200, and every claim won")
    by_client = {k for k, a in seen.items() if a[3]}
    union = set("k%d" % i for i in range(n_csv)) | set(seen)
    eq(r.get("added") + len(by_client), len(union),
       "every key added exactly once: by the import (%d) or a client (%d of %d)"
       % (r.get("added"), len(by_client), len(seen)))
    eq(r.get("added") + r.get("already"), n_csv, "the import counted each row once")
    rc, lines, _ = export(s.data, "--queue", "load")
    final = {x["key"]: x for x in lines}
    eq(len(final) == len(lines) and set(final) == union, True,
       "the queue holds every key, none twice")
    wrong = [k for k in final if (k in by_client) != (final[k].get("payload") == {"Src": "client"})]
    eq(wrong[:5], [], "each item's payload is that of whoever added it")
    bad = [k for k, a in seen.items() if final[k]["state"] != "leased" or
           final[k].get("owner") != a[1]]
    eq(bad[:5], [], "every winning claim holds its lease in the final state")
    q = s.stats("load")
    eq((q.get("ready"), q.get("leased"), q.get("enqueued")),
       (len(union) - len(seen), len(seen), len(union)), "the counters agree")
    rc, out, _ = ctl(s.data, "verify")
    eq(rc, 0, "the database verifies clean after the import under load: " + out[-300:])


def check_schema1():
    tmp = mkdtemp("casqctl-schema1")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    subprocess.run(["mdb_load", "-f", os.path.join(srcdir(), "tests", "fixtures", "schema1.dump"),
                    data], check=True, capture_output=True, timeout=60)
    digest = lambda: hashlib.sha256(open(os.path.join(data, "data.mdb"), "rb").read()).hexdigest()  # noqa
    before = digest()
    keys = write(os.path.join(tmp, "keys"), subprocess.run(
        [casqd_path(), "--mint-key", "k"], capture_output=True, check=True).stdout.decode()
        .splitlines()[1] + "\n")
    csv = write(os.path.join(tmp, "x.csv"), "Id\nnew\n")
    rc, _, err = ctl(data, "import", "--keys", keys, "--csv", csv, "--queue", "welcome",
                     "--key-column", "Id")
    eq((rc, "schema version 1" in err), (2, True), "import into a schema-1 database: exit 2, said")
    for cmd in (("status",), ("verify",), ("backup", os.path.join(tmp, "b"))):
        eq(ctl(data, *cmd)[0], 2, "%s of a schema-1 database: exit 2" % cmd[0])
    eq(digest(), before, "the schema-1 database is left as it was (no upgrade, no write)")
    shutil.rmtree(tmp)


def main():
    check_schema1()
    with Stack(workers=2) as s:
        check_usage(s)
        setup(s)
        check_status(s)
        check_queues_items_show(s)
        check_verify(s)
        check_backup_under_load(s)
        check_roundtrip(s)
        check_csv(s)
        check_quota(s)
        check_import_under_load(s)
        check_dead(s)


run_main(main)
