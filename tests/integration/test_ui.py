#!/usr/bin/env python3
"""The console at /ui/ (docs/ui.md) in a real browser: headless Chromium
driven by Selenium, against nginx + TLS + casqd + LMDB.

- nginx serves web/ at /ui/ with a strict Content-Security-Policy, in the
  development template and in the production site configuration;
- the key is asked for, kept in sessionStorage and sent in a header: it
  never appears in a URL (nor in nginx's access log);
- every page renders with the numbers the API answers (overview, queue
  page, lead lookup), and an admin key switches tenants;
- for every builder action, the template the page generates, sent as
  Marketo would send it (token values encoded as the Request Token
  Encoding says, the custom header, POST), does what the action says, and
  the page's win / lose constraints match casqd's answer text; "Try it"
  sends the same call and names the branch;
- no console errors (CSP violations included); no page scrolls sideways
  at 375 px; every form control has a label.

Screenshots of each page, at 1280 and 375 px, go to var/test_ui/.
"""

import json
import os
import re
import shutil
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casqtest import (Stack, comment, eq, free_port, kill, ok, run_main,  # noqa: E402
                      skip_all, spawn, tail)

try:
    import selenium  # noqa: F401
except ImportError:
    # Debian's python3-selenium is in Debian's dist-packages, which a
    # python3 of its own (pyenv, a venv) does not look in.
    sys.path.append("/usr/lib/python3/dist-packages")
try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    webdriver = None

HERE = os.path.dirname(os.path.abspath(__file__))
SHOTS = os.path.join(os.environ.get("CASQ_BUILDDIR", os.path.join(HERE, "..", "..")),
                     "var", "test_ui")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# A page that does not settle in this long is broken, not slow: each wait
# is for a condition, this is only its bound.
WAIT_S = 60


def find_browser():
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    return chromium, driver


class Browser:
    """chromedriver in its own process group (casqtest kills it, and the
    Chromium it starts, whatever happens), one headless Chromium session."""

    def __init__(self, stack, tmp):
        self.stack = stack
        chromium, driver = find_browser()
        self.port = free_port()
        self.log = os.path.join(tmp, "chromedriver.log")
        out = open(self.log, "ab")
        try:
            self.proc = spawn([driver, "--port=%d" % self.port, "--log-path=" + self.log],
                              stdout=out, stderr=out)
        finally:
            out.close()
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--user-data-dir=" + os.path.join(tmp, "chromium"),
                  "--window-size=1280,900"):
            opts.add_argument(a)
        # The stack's certificate is its own, made for this run.
        opts.accept_insecure_certs = True
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                self.d = webdriver.Remote("http://127.0.0.1:%d" % self.port, options=opts)
                break
            except Exception:   # chromedriver not listening yet
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("chromedriver did not start:\n" + tail(self.log))
                time.sleep(0.1)
        self.base = "https://127.0.0.1:%d" % stack.port

    def close(self):
        try:
            self.d.quit()
        finally:
            kill(self.proc)

    def go(self, path):
        self.d.get(self.base + path)

    def wait(self, cond, what, poll=0.05):
        try:
            # The overview redraws itself: an element found a moment ago
            # may be gone, so look again.
            return WebDriverWait(self.d, WAIT_S, poll_frequency=poll,
                                 ignored_exceptions=(StaleElementReferenceException,)
                                 ).until(lambda d: cond())
        except Exception:
            raise RuntimeError("the page never showed " + what)

    def css(self, sel):
        return self.d.find_elements(By.CSS_SELECTOR, sel)

    def one(self, sel):
        return self.wait(lambda: (self.css(sel) or [None])[0], sel)

    def text(self, sel):
        return self.one(sel).text

    def rows(self, sel):
        """The cell texts of each body row of table sel, read in one go
        (a redraw cannot come in between)."""
        return self.d.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
            ".map(tr => [...tr.querySelectorAll('th, td')].map(c => c.innerText))", sel)

    def pairs(self, sel):
        """{dt: dd} of the definition list sel, read in one go."""
        return self.d.execute_script(
            "const o = {}; for (const d of document.querySelectorAll(arguments[0] + ' > div'))"
            " o[d.querySelector('dt').innerText] = d.querySelector('dd').innerText; return o;", sel)

    def drawn_el(self, sel, after=0):
        """Wait until the element sel (a part a view draws again) finished
        drawing more than after times; return the count."""
        def n():
            els = self.css(sel)
            v = els[0].get_attribute("data-drawn") if els else None
            return int(v) if v and int(v) > after else None
        return self.wait(n, "%s drawn" % sel)

    def drawn(self, view, after=0):
        """Wait until view (its root #view-NAME) finished drawing more than
        after times; return the count."""
        def n():
            els = self.css("#view-" + view)
            v = els[0].get_attribute("data-drawn") if els else None
            return int(v) if v and int(v) > after else None
        return self.wait(n, "view %s drawn" % view)

    def errors(self):
        """Console messages at SEVERE since the last call (CSP violations
        and failed loads are SEVERE)."""
        return [e for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]

    def shot(self, name):
        """Check the page at 1280 and 375 px wide, and save it whole at both."""
        os.makedirs(SHOTS, exist_ok=True)
        for w, h in ((1280, 900), (375, 812)):
            self.d.set_window_size(w, h)
            self.wait(lambda: self.d.execute_script("return window.innerWidth") <= w,
                      "the window at %d px" % w)
            over = self.d.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            ok(over <= 0, "%s at %d px: no sideways scrolling" % (name, w),
               "the page is %d px too wide" % over)
            # the whole page in one picture: a window as tall as the page
            full = self.d.execute_script("return document.documentElement.scrollHeight"
                                         " + window.outerHeight - window.innerHeight")
            self.d.set_window_size(w, max(h, min(full, 4000)))
            self.d.execute_script("window.scrollTo(0, 0)")
            self.d.save_screenshot(os.path.join(SHOTS, "%s-%d.png" % (name, w)))
        self.d.set_window_size(1280, 900)

    def labelled(self, name):
        """Every input and select of the view has a label."""
        bad = self.d.execute_script("""
            return [...document.querySelectorAll('#view input, #view select, #key-form input')]
              .filter(e => e.offsetParent !== null && e.labels.length === 0)
              .map(e => e.name || e.id || e.outerHTML.slice(0, 60));""")
        eq(bad, [], "%s: every visible form control has a label" % name)


# ------------------------------------------------------------ Marketo, simulated

TOKEN_RE = re.compile(r"\{\{[^{}]+\}\}")


def marketo_body(template, encoding, values):
    """What Marketo sends for template: each token replaced by its value as
    a JSON string (Request Token Encoding JSON) or form-encoded with + for
    a space (Form/Url). Written from Adobe's description, not from
    builder.js, so that the two check each other."""
    def one(m):
        v = values[m.group(0)]
        if encoding == "JSON":
            return json.dumps(v, ensure_ascii=False)
        return urllib.parse.quote_plus(v, safe="")
    return TOKEN_RE.sub(one, template)


def marketo_call(stack, hook, values, key):
    """POST the webhook as Marketo would: the URL, the header with the key
    in place of the placeholder, the body in the webhook's encoding."""
    url = urllib.parse.urlsplit(hook["url"])
    eq(url.netloc, "127.0.0.1:%d" % stack.port, "the webhook URL is this casq's address")
    ctype = {"JSON": "application/json",
             "Form/Url": "application/x-www-form-urlencoded"}[hook["encoding"]]
    header = hook["header_value"].replace("YOUR-CASQ-API-KEY", key)
    body = marketo_body(hook["template"], hook["encoding"], values)
    c = stack.client()
    try:
        r = c.call(hook["method"], url.path, body=body, content_type=ctype, key=None,
                   headers={hook["header_name"]: header})
    finally:
        c.close()
    return r


# ------------------------------------------------------------ the test

def api(stack, path, params=None, key=Ellipsis, tenant=None):
    c = stack.client()
    try:
        r = c.call("GET", path, params=params, key=key,
                   headers={"X-Casq-Tenant": tenant} if tenant else None)
    finally:
        c.close()
    if r.status != 200:
        raise RuntimeError("%s answered %d %s: %r" % (path, r.status, r.reason, r.raw))
    return r


def py_age(s):
    """dom.js's age(), for comparing the page with the API."""
    if s < 60:
        return "%d s" % s
    if s < 3600:
        return "%d min" % (s // 60)
    if s < 86400:
        return "%d h %d min" % (s // 3600, (s % 3600) // 60)
    return "%d d %d h" % (s // 86400, (s % 86400) // 3600)


def check_serving(stack, what):
    """/ui/ and its files, with the policy and the right types."""
    c = stack.client()
    try:
        for path, ctype in (("/ui/", "text/html"), ("/ui/js/app.js", "text/javascript"),
                            ("/ui/js/builder.js", "text/javascript"),
                            ("/ui/css/console.css", "text/css"),
                            ("/ui/favicon.svg", "image/svg+xml")):
            r = c.call("GET", path, key=None)
            eq(r.status, 200, "%s: GET %s" % (what, path))
            eq((r.headers.get("Content-Type") or "").split(";")[0], ctype,
               "%s: %s is %s" % (what, path, ctype))
            eq(r.headers.get("Content-Security-Policy"), CSP, "%s: %s has the CSP" % (what, path))
            eq(r.headers.get("X-Content-Type-Options"), "nosniff", "%s: %s nosniff" % (what, path))
            ok((r.headers.get("Strict-Transport-Security") or "").startswith("max-age="),
               "%s: %s keeps HSTS" % (what, path))
        r = c.call("GET", "/ui", key=None)
        eq((r.status, r.headers.get("Location", "").endswith("/ui/")), (301, True),
           "%s: /ui redirects to /ui/" % what)
        r = c.call("GET", "/ui/index.html", key=None)
        ok(b"<script>" not in r.raw and b" style=" not in r.raw and b"<style" not in r.raw,
           "%s: no inline script or style in index.html" % what)
    finally:
        c.close()


def seed(stack, admin):
    """Queues, values, windows, a lease; another tenant through the admin key."""
    c = stack.client()
    try:
        for q, k in (("welcome", "1234"), ("welcome", "5678"), ("welcome", "9"),
                     ("trial", "1234"), ("trial", "77")):
            eq(c.call("POST", "/v1/queues/%s/enqueue" % q,
                      body={"key": k, "x_campaign": "Seed: " + q}).get("enqueued"),
               True, "seed: enqueue %s in %s" % (k, q))
        # more than a page of the queue page's items (50)
        bulk = [c.call("POST", "/v1/queues/welcome/enqueue", body={"key": "p%03d" % i}).status
                for i in range(55)]
        eq(bulk, [200] * 55, "seed: 55 more items in welcome")
        eq(c.call("POST", "/v1/queues/welcome/claim",
                  body={"key": "5678", "claimant": "trigger", "lease": 600}).get("claimed"),
           True, "seed: lease 5678 in welcome")
        eq(c.call("POST", "/v1/queues/trial/claim",
                  body={"key": "1234", "claimant": "hourly"}).get("claimed"),
           True, "seed: claim 1234 in trial")
        for ns, k in (("leads", "a"), ("leads", "b"), ("plans", "x")):
            eq(c.call("POST", "/v1/kv/%s/set" % ns, body={"key": k, "value": 1}).get("ok"),
               True, "seed: set %s/%s" % (ns, k))
        eq(c.call("POST", "/v1/once/forms", body={"id": "1234"}).get("first"), True,
           "seed: once")
        eq(c.call("POST", "/v1/queues/acme-only/enqueue", body={"key": "1"}, key=admin,
                  headers={"X-Casq-Tenant": "acme"}).get("enqueued"), True,
           "seed: enqueue in tenant acme")
        # coupon codes for the bound pop
        for code in ("C1", "C2", "C3"):
            c.call("POST", "/v1/queues/coupons/enqueue", body={"key": code})
        # dead letters: one attempt allowed, each item claimed and released
        eq(c.call("POST", "/v1/queues/dl/config", body={"max_attempts": 1}).get("max_attempts"),
           1, "seed: dl allows one attempt")
        for k in ("d1", "d2", "d3"):
            c.call("POST", "/v1/queues/dl/enqueue", body={"key": k})
            c.call("POST", "/v1/queues/dl/claim", body={"key": k, "claimant": "w", "lease": 60})
            eq(c.call("POST", "/v1/queues/dl/release", body={"key": k, "claimant": "w"})
               .get("state"), "dead", "seed: %s is dead after its one attempt" % k)
    finally:
        c.close()


def seed_claims(stack):
    """Claims in the last hour (after the clock moved on), for the charts."""
    c = stack.client()
    try:
        for k in ("h1", "h2", "h3"):
            c.call("POST", "/v1/queues/hot/enqueue", body={"key": k})
        eq([c.call("POST", "/v1/queues/hot/pop", body={"claimant": "p"}).get("claimed")
            for _ in range(3)], [True] * 3, "seed: three pops in hot")
    finally:
        c.close()


def sign_in(b, key):
    b.go("/ui/")
    field = b.one("#key-input")
    b.wait(lambda: field.is_displayed(), "the key form")
    field.send_keys(key)
    b.one("#key-form button[type=submit]").click()
    b.wait(lambda: not b.one("#key-form").is_displayed(), "the key form going away")


def overview_rows(b):
    """The queue table, and each row's chart data, in one read."""
    return b.d.execute_script(
        "return [...document.querySelectorAll('#queues tbody tr')].map(tr =>"
        " [...tr.querySelectorAll('th, td')].map(c => c.innerText.trim())"
        ".concat([tr.querySelector('svg').dataset.counts]))")


def api_overview(stack):
    want = []
    for q in json.loads(api(stack, "/v1/queues").raw)["queues"]:
        s = api(stack, "/v1/queues/" + q["queue"])
        cpm = s.get("claims_per_minute")
        want.append([q["queue"], str(s.get("ready")), str(s.get("leased")), str(s.get("dead")),
                     py_age(s.get("oldest_ready_age")) if s.get("oldest_ready_age") else "-",
                     str(sum(cpm)), ",".join(map(str, cpm))])
    return want


def check_overview(b, stack):
    n = b.drawn("overview")
    # What the page shows must be what the API says. Ages and the minutes
    # of the charts move on while the test reads both, so wait (the page
    # redraws every 5 s) until one read of each agrees.
    last = []

    def same():
        last[:] = [overview_rows(b), api_overview(stack)]
        return last[0] == last[1]
    try:
        b.wait(same, "the queue table as the API has it", poll=0.5)
    except RuntimeError:
        pass
    eq(last[0], last[1], "overview: the queue table (ready, leased, dead, oldest ready, claims "
       "per minute) is /v1/queues with each queue's stats")
    ok(any(r[5] == "3" for r in last[0]), "overview: hot's three pops are in its chart")
    t = api(stack, "/v1/tenant")
    shown = b.pairs("#tenant-counts")
    eq(shown, {"queued items": str(t.get("items")), "values": str(t.get("values")),
               "once-windows": str(t.get("windows")), "queues": str(t.get("queues")),
               "namespaces": str(t.get("namespaces"))},
       "overview: the tenant's counts are /v1/tenant's")
    nrows = b.rows("#namespaces")
    want = [[n["namespace"], str(n["keys"]), str(n["sets"]), str(n["incrs"]), str(n["deletes"])]
            for n in json.loads(api(stack, "/v1/kv").raw)["namespaces"]]
    eq(nrows, want, "overview: the namespace table is /v1/kv's")
    srows = b.rows("#scopes")
    want = [[o["scope"], str(o["windows"]), str(o["opened"]), str(o["expired"])]
            for o in json.loads(api(stack, "/v1/once").raw)["scopes"]]
    ok(len(want) > 0, "overview: the seeded once scope is listed by /v1/once", repr(want))
    eq(srows, want, "overview: the once scope table is /v1/once's")
    # It refreshes by itself: a new enqueue shows up without a reload.
    c = stack.client()
    try:
        c.call("POST", "/v1/queues/welcome/enqueue", body={"key": "new-one"})
    finally:
        c.close()
    want_ready = str(api(stack, "/v1/queues/welcome").get("ready"))
    b.drawn("overview", n)
    b.wait(lambda: [r[1] for r in b.rows("#queues") if r[0] == "welcome"] == [want_ready],
           "the refreshed ready count of welcome")
    ok(True, "overview: refreshes by itself (welcome ready %s)" % want_ready)


def api_service(stack):
    """view_overview.js's service box, from /metrics as Python reads it."""
    c = stack.client()
    try:
        text = c.call("GET", "/metrics").raw.decode()
    finally:
        c.close()
    v = {}
    for line in text.splitlines():
        m = re.match(r'^([a-z_]+)(?:\{([^}]*)\})? (\S+)$', line)
        if m:
            v.setdefault(m.group(1), []).append((dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2) or "")),
                                                 float(m.group(3))))

    def one(n):
        return v.get(n, [({}, 0)])[0][1]

    def answered(first):
        return int(sum(x for lab, x in v.get("casq_requests_total", []) if lab["code"].startswith(first)))
    size = one("casq_lmdb_map_size_bytes")
    in_use = one("casq_lmdb_map_used_bytes") - one("casq_lmdb_map_free_bytes")
    return {"database in use": "%.1f MB of %.1f MB (%d%%)" % (in_use / 1048576, size / 1048576,
                                                            int(100 * in_use / size + 0.5)),
            "refused (4xx) since start": str(answered("4")),
            "failed (5xx) since start": str(answered("5")),
            "workers": str(int(one("casq_workers"))),
            "worker restarts": str(int(one("casq_worker_restarts_total")))}


def check_service(b, stack):
    last = []

    def same():
        last[:] = [b.pairs("#service"), api_service(stack)]
        return last[0] == last[1]
    try:
        b.wait(same, "the service box as /metrics has it", poll=0.5)
    except RuntimeError:
        pass
    eq(last[0], last[1], "overview: the service box (database, errors, workers) is /metrics'")


def check_queue_page(b, stack):
    # By keyboard: focus the link (a redraw keeps the focus on it), Enter.
    # The page reads the stats once, between these two reads of ours; only
    # oldest_ready_age moves meanwhile (whole seconds), so it lies between them.
    before = api(stack, "/v1/queues/welcome")
    b.d.execute_script("[...document.querySelectorAll('#queues a')]"
                       ".find(a => a.textContent === 'welcome').focus()")
    b.d.switch_to.active_element.send_keys(Keys.ENTER)
    b.drawn("queue")
    ok(b.d.current_url.endswith("/ui/#/queue/welcome"), "Enter on the focused link opens the queue")
    s = api(stack, "/v1/queues/welcome")
    shown = {dd.get_attribute("data-counter"): dd.text for dd in b.css("#queue-stats dd")}
    want = {k: str(s.get(k)) for k in shown}
    ok(len(shown) == 11, "queue page: eleven counters", repr(shown))
    age = "oldest_ready_age"
    ok(age in shown and before.get(age) <= int(shown.pop(age)) <= s.get(age),
       "queue page: the oldest ready age, read between two reads of the stats",
       (before.get(age), s.get(age)))
    want.pop(age, None)
    eq(shown, want, "queue page: the other counters are the queue's stats")
    b.one("#status-key").send_keys("5678")
    b.one("#status-key").submit()
    b.wait(lambda: b.css("#item-status"), "the item's status")
    st = api(stack, "/v1/queues/welcome/status", {"key": "5678"})
    shown = b.pairs("#item-status")
    eq(shown.get("state"), st.get("state"), "queue page: the item's state is status's (leased)")
    eq(shown.get("owner"), st.get("owner"), "queue page: the item's owner is status's")
    # Items, a page at a time: the pages together are /items' pages.
    seen, n, pages = [], 0, 0
    while True:
        n = b.drawn_el("#items-out", n)
        rows = b.rows("#items")
        seen += [r[0] for r in rows]
        pages += 1
        if not b.css("#items-next"):
            break
        b.one("#items-next").click()
    want, after = [], None
    while True:
        p = json.loads(api(stack, "/v1/queues/welcome/items",
                           dict({"state": "ready", "limit": 1000},
                                **({"after": after} if after else {}))).raw)
        want += [i["key"] for i in p["items"]]
        after = p.get("next")
        if not after:
            break
    eq(seen, want, "queue page: the ready items, page by page, are /items' (%d pages)" % pages)
    ok(pages >= 2, "queue page: more than 50 ready items take more than one page")
    Select(b.one("#items-state")).select_by_value("leased")
    b.drawn_el("#items-out", n)
    leased = json.loads(api(stack, "/v1/queues/welcome/items", {"state": "leased"}).raw)["items"]
    eq(b.rows("#items"), [[i["key"], str(i["attempts"]), i.get("since", "")] for i in leased],
       "queue page: the leased items are /items' (5678)")


def check_read_key(b, stack, ro):
    """A read key sees the dead letters and settings, and no button that
    would change them."""
    b.one("#sign-out").click()
    sign_in(b, ro)
    b.go("/ui/#/queue/dl")
    b.drawn("queue")
    b.wait(lambda: b.css("#config-form"), "the settings")
    eq(b.text("#dead-count").split(" ")[0], "3", "read key: the queue page shows dl's 3 dead items")
    eq((b.css("#redrive-all"), b.css("#redrive-one"), b.css("#config-save")), ([], [], []),
       "read key: no redrive and no save button")
    ok(all(not i.is_enabled() for i in b.css("#config-form input")),
       "read key: the settings cannot be edited")
    b.one("#sign-out").click()
    sign_in(b, stack.key)


def check_dead(b, stack):
    """Redrive one, then all, each after its confirmation; edit settings."""
    b.go("/ui/#/queue/dl")
    n = b.drawn("queue")
    st = api(stack, "/v1/queues/dl")
    eq(b.text("#dead-count").split(" ")[0], str(st.get("dead")), "queue page: dl's dead count")
    b.one("#redrive-key").send_keys("d1")
    b.one("#redrive-one").click()
    eq(api(stack, "/v1/queues/dl/status", {"key": "d1"}).get("state"), "dead",
       "redrive one: nothing happens before the confirmation")
    b.shot("queue-redrive-confirm")
    b.one("#confirm-yes").click()
    n = b.drawn("queue", n)
    b.wait(lambda: "d1 redriven" in b.text("#redrive-result"), "the redrive's result")
    r = api(stack, "/v1/queues/dl/status", {"key": "d1"})
    eq((r.get("state"), r.get("attempts")), ("ready", 0), "redrive one: d1 is ready, attempts reset")
    # The dead items' list: /items' dead page, each row with its redrive.
    m = b.drawn_el("#items-out")
    Select(b.one("#items-state")).select_by_value("dead")
    m = b.drawn_el("#items-out", m)
    dead = json.loads(api(stack, "/v1/queues/dl/items", {"state": "dead"}).raw)["items"]
    eq([r[:3] for r in b.rows("#items")], [[i["key"], str(i["attempts"]), i.get("since", "")]
                                          for i in dead],
       "queue page: the dead items are /items' dead page (d2, d3)")
    b.one("#items button[data-key=d2]").click()
    b.one("#confirm-yes").click()
    n = b.drawn("queue", n)
    b.wait(lambda: "d2 redriven" in b.text("#redrive-result"), "the row's redrive result")
    eq(api(stack, "/v1/queues/dl/status", {"key": "d2"}).get("state"), "ready",
       "redrive from the dead items' list: d2 is ready")
    b.drawn_el("#items-out", m)
    b.one("#redrive-all").click()
    b.one("#confirm-yes").click()
    n = b.drawn("queue", n)
    b.wait(lambda: "1 redriven" in b.text("#redrive-result"), "redrive all's result")
    eq(api(stack, "/v1/queues/dl").get("dead"), 0, "redrive all: no dead item left")
    eq(b.text("#dead-count").split(" ")[0], "0", "the page shows 0 dead")
    eq(b.css("#redrive-all"), [], "no redrive button without dead items")
    # settings
    for k, v in (("lease", "30"), ("max_attempts", "3"), ("bind_days", "7")):
        e = b.one("#config-" + k)
        e.send_keys(Keys.CONTROL, "a")
        e.send_keys(Keys.DELETE)
        e.send_keys(v)
    b.one("#config-save").click()
    b.wait(lambda: b.text("#config-result").startswith("Saved"), "the settings saved")
    c = json.loads(api(stack, "/v1/queues/dl/config").raw)
    eq((c.get("lease"), c.get("max_attempts"), c.get("bind_days")), (30, 3, 7),
       "settings: saved through /config")
    b.drawn("queue", n)
    eq(b.text("#dead-count").split(":")[1].strip(), "an item dies after 3 attempts.",
       "the page shows the new max_attempts")


def check_lead(b, stack):
    b.go("/ui/#/lead")
    b.one("#lead-key").send_keys("1234")
    b.one("#lead-key").submit()
    b.drawn("lead")
    rows = [r[:4] for r in b.rows("#lead-table")]
    want = []
    for q in ("trial", "welcome"):
        s = api(stack, "/v1/queues/%s/status" % q, {"key": "1234"})
        want.append([q, s.get("state"), str(s.get("attempts")), s.get("owner") or ""])
    eq(rows, want, "lead lookup: 1234's state in every queue, as status says")
    check_timeline(b, stack, "1234")
    text = b.text("#lead-timeline")
    ok("by hourly" in text and "x_campaign Seed: trial" in text,
       "lead lookup: the timeline says who claimed 1234 and which campaign queued it", text)


def timeline(b):
    return b.d.execute_script(
        "return [...document.querySelectorAll('#lead-timeline li')]"
        ".map(li => [li.dataset.at, li.dataset.queue, li.dataset.event])")


def check_timeline(b, stack, key):
    """The page's timeline is /v1/history's events, in order."""
    events = json.loads(api(stack, "/v1/history", {"key": key, "limit": 1000}).raw)["events"]
    eq(timeline(b), [[e["at"], e["queue"], e["event"]] for e in events],
       "lead lookup: %s's timeline is /v1/history's %d events" % (key, len(events)))
    return events


def check_tenants(b, stack, admin):
    b.one("#sign-out").click()
    sign_in(b, admin)
    b.drawn("overview")
    inp = b.one("#tenant-input")
    inp.clear()
    inp.send_keys("acme")
    inp.submit()
    b.wait(lambda: [r[0] for r in b.rows("#queues")] == ["acme-only"],
           "tenant acme's queues")
    ok(True, "admin key: switching to tenant acme shows only acme's queue")
    eq(b.d.execute_script("return sessionStorage.getItem('casq.tenant')"), "acme",
       "the tenant is kept in sessionStorage")
    b.shot("overview-admin")
    inp = b.one("#tenant-input")
    inp.clear()
    inp.send_keys("default")
    inp.submit()
    b.wait(lambda: "welcome" in [r[0] for r in b.rows("#queues")],
           "tenant default's queues again")
    b.one("#sign-out").click()
    sign_in(b, stack.key)
    b.drawn("overview")
    eq(b.css("#tenant-input"), [], "a write key gets no tenant switcher")
    eq(b.text("#tenant-name"), "default", "a write key sees its tenant's name")


# Each case: the form's fields, the sample value of each token, what to
# check after the first call (the operation happened: a read route's
# field, or a function of the answer), and what the same call again
# answers: "lose", "same" (a win again: bound pop) or None (not checked).
# Run in this order: they build on each other.
def status_of(queue, key, field):
    return lambda stack, answer: api(stack, "/v1/queues/%s/status" % queue, {"key": key}).get(field)


def value_of(ns, key):
    return lambda stack, answer: api(stack, "/v1/kv/%s/get" % ns, {"key": key}).get("value")


def bound_to(stack, answer):
    return api(stack, "/v1/queues/coupons/status", {"key": answer.get("key")}).get("bound_to")


CASES = [
    ("enqueue", "json", {"name": "builder", "key": "{{lead.Id}}"},
     {"{{lead.Id}}": "4242", "{{campaign.name}}": "Welcome: add"},
     (status_of("builder", "4242", "state"), "ready"), "lose"),
    ("claim", "json", {"name": "builder", "key": "{{lead.Id}}", "lease": "600"},
     {"{{lead.Id}}": "4242", "{{campaign.name}}": "Welcome: claim"},
     (status_of("builder", "4242", "owner"), "Welcome: claim"), "lose"),
    ("ack", "json", {"name": "builder", "key": "{{lead.Id}}"},
     {"{{lead.Id}}": "4242", "{{campaign.name}}": "Welcome: send"},
     (status_of("builder", "4242", "state"), "claimed"), "lose"),
    ("enqueue", "form", {"name": "builder", "key": "{{lead.Email Address}}"},
     {"{{lead.Email Address}}": "jo+x&y@example.com", "{{campaign.name}}": "Welcome: add"},
     (status_of("builder", "jo+x&y@example.com", "state"), "ready"), "lose"),
    ("pop", "json", {"name": "builder", "lease": "300"},
     {"{{campaign.name}}": "Welcome: claim"},
     (status_of("builder", "jo+x&y@example.com", "state"), "leased"), "lose"),
    ("release", "form", {"name": "builder", "key": "{{lead.Email Address}}"},
     {"{{lead.Email Address}}": "jo+x&y@example.com", "{{campaign.name}}": "Welcome: send"},
     (status_of("builder", "jo+x&y@example.com", "state"), "ready"), "lose"),
    ("bound_pop", "json", {"name": "coupons", "bind": "{{lead.Id}}", "lease": ""},
     {"{{lead.Id}}": "4242", "{{campaign.name}}": "Coupon: give"},
     (bound_to, "4242"), "same"),
    ("kv_set", "json", {"name": "emails", "key": "{{lead.Id}}", "value": "{{lead.Email Address}}"},
     {"{{lead.Id}}": "4242", "{{lead.Email Address}}": "jo@example.com",
      "{{campaign.name}}": "c"},
     (value_of("emails", "4242"), "jo@example.com"), None),
    ("kv_incr", "json", {"name": "assign", "key": "owners", "mod": "3"},
     {"{{campaign.name}}": "c"},
     (value_of("assign", "owners"), 1), None),
    ("once", "form", {"name": "forms", "id": "{{lead.Id}}-webinar"},
     {"{{lead.Id}}": "4242", "{{campaign.name}}": "c"},
     (lambda stack, answer: answer.get("id"), "4242-webinar"), "lose"),
]


def fill_builder(b, action, encoding, fields, works=True):
    """Fill the builder's form by keyboard and read what it generated."""
    Select(b.one("#b-action")).select_by_value(action)
    b.wait(lambda: b.css("#b-name"), "the builder's fields")
    for name, value in fields.items():
        e = b.one("#b-" + name)
        # Select all and delete, as a user would: clear() sends no input event.
        e.send_keys(Keys.CONTROL, "a")
        e.send_keys(Keys.DELETE)
        if value:
            e.send_keys(value)
    b.one("input[name=encoding][value=%s]" % encoding).click()
    if not works:
        return b.wait(lambda: b.css("#builder-errors"), "the builder's errors")[0].text
    b.wait(lambda: b.css("#b-template"), "a template")
    return {
        "url": b.text("#b-url"), "method": b.text("#b-method"),
        "encoding": b.text("#b-encoding"), "template": b.text("#b-template"),
        "response_type": b.text("#b-response-type"),
        "header_name": b.text("#b-header-name"), "header_value": b.text("#b-header-value"),
        "win": b.text("#b-win"), "lose": b.css("#b-lose")[0].text if b.css("#b-lose") else None,
    }


SAMPLES = {"{{lead.Id}}": "1234", "{{lead.Email Address}}": "jo+x&y \"z\"@example.com",
           "{{campaign.name}}": "Welcome: claim"}


def check_builder_module(b):
    """builder.js on its own (no DOM), as the page imports it: every action
    in both encodings gives a template whose body, once Marketo has put
    the samples in, is well-formed and carries the action's parameters."""
    got = b.d.execute_async_script("""
        const [samples, done] = arguments;
        import("/ui/js/builder.js").then((m) => {
            const out = {};
            for (const action of Object.keys(m.ACTIONS))
                for (const encoding of ["json", "form"]) {
                    const built = m.build({ action, encoding, base: "https://casq.example.com",
                        name: "q", key: "{{lead.Id}}", id: "{{lead.Id}}", bind: "{{lead.Id}}",
                        claimant: "Welcome: claim", value: "{{lead.Email Address}}",
                        payload: "{{lead.Email Address}}", lease: "600", label: true });
                    out[action + " " + encoding] = { built, params: m.ACTIONS[action].params,
                        body: built.errors.length ? null : m.render(built.template, built.encoding, samples) };
                }
            done(out);
        }, (e) => done(String(e)));""", SAMPLES)
    ok(isinstance(got, dict), "builder.js imports and runs on its own", repr(got)[:200])
    eq(sorted({k.split()[0] for k in got}),
       sorted(["enqueue", "claim", "pop", "bound_pop", "ack", "release", "kv_set", "kv_incr",
               "once"]),
       "builder.js: the nine actions")
    bad = []
    for name, r in sorted(got.items()):
        hook, enc = r["built"], name.split()[1]
        if hook["errors"]:
            bad.append((name, hook["errors"]))
            continue
        if r["body"] != marketo_body(hook["template"], hook["encoding"], SAMPLES):
            bad.append((name, "render() is not what Marketo sends", r["body"]))
            continue
        if enc == "json":
            sent = json.loads(r["body"])
        else:
            sent = {k: v[0] for k, v in urllib.parse.parse_qs(r["body"], strict_parsing=True).items()}
        want = [p for p in r["params"] if p not in ("delay", "ttl", "by", "mod")
                and not (p == "lease" and name.startswith(("ack", "release")))] + ["x_campaign"]
        if sorted(sent) != sorted(want):
            bad.append((name, sorted(sent), sorted(want)))
        elif any(str(v) not in SAMPLES.values() and str(v) != "600"
                 and str(v) != "Welcome: claim" for v in sent.values()):
            bad.append((name, "a value is not a sample", sent))
    eq(bad, [], "builder.js: every action and encoding makes a body Marketo can send "
       "(JSON parses, forms decode) with exactly the action's parameters")


def check_builder(b, stack):
    check_builder_module(b)
    b.go("/ui/#/builder")
    b.wait(lambda: b.css("#b-template"), "the builder")
    b.labelled("builder")
    b.shot("builder")
    for action, encoding, fields, values, (check, want), again in CASES:
        hook = fill_builder(b, action, encoding, fields)
        what = "builder %s (%s)" % (action, hook["encoding"])
        comment("%s: %s %s" % (what, hook["url"], hook["template"]))
        eq((hook["method"], hook["response_type"], hook["header_name"]),
           ("POST", "JSON", "Authorization"), what + ": POST, JSON answers, the key's header")
        eq(hook["encoding"], {"json": "JSON", "form": "Form/Url"}[encoding], what + ": encoding")
        ok("{{campaign.name}}" in hook["template"] and "x_campaign" in hook["template"],
           what + ": the template labels the call with its campaign")
        r = marketo_call(stack, hook, values, stack.key)
        comment("answer: %s %s %s" % (r.status, r.reason, r.raw.decode().strip()))
        eq(r.status, 200, what + ": answered 200")
        text = r.raw.decode()
        ok(text.startswith(hook["win"]), what + ": the win constraint matches the answer",
           "%r does not start with %r" % (text, hook["win"]))
        eq(check(stack, json.loads(text)), want, what + ": it did what it says")
        if again is None:
            continue
        text2 = marketo_call(stack, hook, values, stack.key).raw.decode()
        if again == "lose":
            ok(hook["lose"] is not None and text2.startswith(hook["lose"])
               and hook["win"] not in text2,
               what + ": the same call again takes the lose branch", text2)
        else:
            first, second = json.loads(text), json.loads(text2)
            ok(text2.startswith(hook["win"]) and second.get("again") is True
               and second.get("key") == first.get("key"),
               what + ": the same call again wins again, with the same item and \"again\":true",
               text2)
        if action == "once":
            eq(json.loads(text2).get("count"), 2, what + ": the window counts the repeat")
    # "Try it" sends the very call and names the branch: a claim of 77 in
    # trial (queued by seed) wins, the second loses.
    hook = fill_builder(b, "claim", "json", {"name": "trial", "key": "{{lead.Id}}", "lease": ""})
    sample = b.one("#try-form input[data-token='{{lead.Id}}']")
    sample.clear()
    sample.send_keys("77")
    for n, want in ((1, "win"), (2, "lose")):
        b.one("#try-form button[type=submit]").click()
        b.wait(lambda: b.css("#try-branch"), "the answer of Try it")
        eq(b.text("#try-branch"), want, "Try it %d: the claim takes the %s branch" % (n, want))
        answer = b.text("#try-answer")
        ok(answer.startswith(hook["win"] if want == "win" else hook["lose"]),
           "Try it %d: the answer shown is casq's" % n, answer)
        eq(b.text("#try-sent"), marketo_body(hook["template"], "JSON",
                                             {"{{lead.Id}}": "77",
                                              "{{campaign.name}}": "Welcome: claim"}),
           "Try it %d: it sent what Marketo would" % n)
        if n == 1:
            b.shot("builder-try")
            b.d.execute_script("document.getElementById('try-out').replaceChildren()")
    eq(api(stack, "/v1/queues/trial/status", {"key": "77"}).get("state"), "claimed",
       "Try it really claimed 77")
    # A choice that cannot work says why instead of giving a template.
    # The lead lookup shows what the builder's calls did with 4242, each
    # labelled with its campaign (the x_campaign the templates send).
    b.go("/ui/#/lead/4242")
    b.drawn("lead")
    events = check_timeline(b, stack, "4242")
    eq([(e["event"], e.get("claimant"), e.get("x_campaign")) for e in events],
       [("enqueued", None, "Welcome: add"), ("claimed", "Welcome: claim", "Welcome: claim"),
        ("acked", "Welcome: claim", "Welcome: send")],
       "lead lookup: the builder's enqueue, claim and ack of 4242, by their campaigns")
    b.shot("lead-timeline")
    b.go("/ui/#/builder")
    errors = fill_builder(b, "once", "json", {"name": "forms", "id": "{{lead.Id}}-webinar"},
                          works=False)
    ok("Form/Url" in errors,
       "builder: JSON with a token joined to text is refused, pointing to Form/Url")


def main():
    chromium, driver = find_browser()
    if webdriver is None or not chromium or not driver:
        skip_all("chromium, chromedriver or python3-selenium missing "
                 "(Debian: apt-get install chromium chromium-driver python3-selenium; "
                 "script/test installs them)")
    with Stack(workers=1, test_clock=True) as stack:
        admin = stack.add_key("ops", "--tenant", "ops", "--scope", "admin")
        ro = stack.add_key("reports", "--scope", "read")
        check_serving(stack, "development nginx")
        seed(stack, admin)
        # Far enough after the enqueues that the minute of "oldest ready"
        # cannot change between the API's answer and the page's.
        stack.advance(3600)
        seed_claims(stack)
        b = Browser(stack, stack.tmp)
        try:
            b.go("/ui/")
            b.wait(lambda: b.one("#key-form").is_displayed(), "the key form")
            b.labelled("key form")
            b.shot("sign-in")
            sign_in(b, stack.key)
            eq(b.d.execute_script("return sessionStorage.getItem('casq.key')"), stack.key,
               "the key is kept in sessionStorage")
            check_overview(b, stack)
            check_service(b, stack)
            b.shot("overview")
            check_queue_page(b, stack)
            b.labelled("queue page")
            b.shot("queue")
            check_read_key(b, stack, ro)
            check_dead(b, stack)
            b.labelled("queue page with dead letters")
            b.shot("queue-dead")
            check_lead(b, stack)
            b.labelled("lead lookup")
            b.shot("lead")
            check_tenants(b, stack, admin)
            check_builder(b, stack)
            errs = b.errors()
            eq(errs, [], "no console errors or CSP violations in the whole session")
            ok(stack.key not in b.d.current_url, "the key is not in the page's URL")
        finally:
            b.close()
        with open(os.path.join(stack.tmp, "nginx", "access.log"), errors="replace") as f:
            log = f.read()
        ok("/ui/" in log and stack.key not in log and admin not in log,
           "no key in any URL nginx logged")
    with Stack(workers=1, site=True) as stack:
        check_serving(stack, "production site")


if __name__ == "__main__":
    run_main(main)
