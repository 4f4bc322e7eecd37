#!/usr/bin/env python3
"""The manuals (man/casqd.8, man/casqctl.8, man/casq-keys.5):

- mandoc -Tlint finds nothing in them (at any level, style included; the
  one message allowed is that a page they refer to, which is one of
  these, is not installed yet), and does find a fault planted in a copy;
- casqd(8) documents exactly the flags of `casqd --help`, each short form
  beside its long one and with the default --help gives, lists each in
  the SYNOPSIS, and README.md's flag table has the same flags;
- casqctl(8) describes exactly the commands of `casqctl --help`, each
  in the SYNOPSIS, and README.md's Operating section shows each;
- casq-keys(5)'s example file is accepted by casqd, and the error it
  quotes for a malformed line is the one casqd prints.

Needs mandoc (Debian: mandoc, which script/test installs); skipped without."""

import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True     # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "integration"))
from casqtest import (casqd_path, done, eq, kill, mkdtemp, ok, run_main,  # noqa: E402
                      skip_all, spawn, srcdir, tail, wait_for_path)

PAGES = ("casqd.8", "casqctl.8", "casq-keys.5")


def lint(path, level=None):
    argv = ["mandoc", "-Tlint"] + (["-W", level] if level else []) + [path]
    r = subprocess.run(argv, capture_output=True, timeout=60)
    lines = (r.stdout + r.stderr).decode("utf-8", "replace").splitlines()
    # notes about the system's manual database, not about the page
    lines = [ln for ln in lines if "outdated mandoc.db" not in ln]
    return r.returncode, lines


def help_flags():
    """[(short or None, long, help line)] from casqd --help."""
    r = subprocess.run([casqd_path(), "--help"], capture_output=True, timeout=10)
    out = []
    for line in r.stdout.decode().splitlines():
        m = re.match(r"^  (?:-(\w), )?\s*--([a-z-]+)", line)
        if m:
            out.append((m.group(1), m.group(2), line))
    return out


def man_items(text):
    """{long flag: (the .It line, the entry's text)} of casqd(8)'s options."""
    items, cur = {}, None
    body = text.split(".Sh DESCRIPTION", 1)[1].split(".Sh SIGNALS", 1)[0]
    for line in body.splitlines():
        m = re.match(r"^\.It Fl .*Fl \\-([a-z-]+)", line) or \
            re.match(r"^\.It Fl \\-([a-z-]+)", line)
        if m:
            cur = m.group(1)
            items[cur] = [line, ""]
        elif line.startswith(".It ") or line.startswith(".El"):
            cur = None
        elif cur:
            items[cur][1] += line + "\n"
    return items


def check_casqctl(page, readme):
    """casqctl(8) and README.md against the commands casqctl --help lists."""
    ctl = os.path.join(os.path.dirname(casqd_path()), "casqctl")
    r = subprocess.run([ctl, "--help"], capture_output=True, timeout=10)
    cmds = re.findall(r"^  ([a-z]+) ", r.stdout.decode(), re.M)
    ok(r.returncode == 0 and len(cmds) >= 8, "casqctl --help lists its commands", cmds)
    described = re.findall(r"^\.It Cm ([a-z]+)", page, re.M)
    eq(sorted(set(described)), sorted(set(cmds)), "casqctl(8) describes exactly those commands")
    synopsis = page.split(".Sh SYNOPSIS", 1)[1].split(".Sh DESCRIPTION", 1)[0]
    operating = readme.split("## Operating", 1)[-1].split("\n## ", 1)[0]
    for c in sorted(set(cmds)):
        ok(re.search(r"\bCm (%s\b|\w+ \| %s\b)" % (c, c), synopsis), "casqctl(8) SYNOPSIS has " + c)
        ok(re.search(r"casqctl .*\b%s\b" % c, operating), "README's Operating section shows " + c)


def check_keys_examples(keys_page):
    """The two-key example file starts casqd; a bad line fails as quoted."""
    tmp = mkdtemp("casq-man")
    blocks = re.findall(r"^\.Bd -literal -offset indent\n(.*?)^\.Ed$", keys_page,
                        re.M | re.S)
    example = [b for b in blocks if b.startswith("# casq API keys")]
    ok(len(example) == 1, "casq-keys(5) has an example keys file")
    if not example:
        return
    keys = os.path.join(tmp, "keys")
    with open(keys, "w") as f:
        f.write(example[0])
    sock = os.path.join(tmp, "casqd.sock")
    log = os.path.join(tmp, "casqd.log")
    with open(log, "wb") as logf:
        p = spawn([casqd_path(), "--listen", "unix:" + sock, "--data",
                   os.path.join(tmp, "data"), "--keys", keys],
                  stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    ok(wait_for_path(sock, 15, p), "casqd starts with casq-keys(5)'s example file",
       tail(log))
    kill(p)

    quoted = re.search(r"^(/etc/casq/keys:3: .*)$", keys_page, re.M)
    ok(quoted is not None, "casq-keys(5) quotes the error for a malformed line")
    with open(keys, "w") as f:
        f.write("# comment\nok:%s\nbad/name:%s\n" % ("a" * 64, "b" * 64))
    r = subprocess.run([casqd_path(), "--listen", "unix:" + sock, "--data",
                        os.path.join(tmp, "data"), "--keys", keys],
                       capture_output=True, timeout=15, stdin=subprocess.DEVNULL)
    err = r.stderr.decode("utf-8", "replace").strip()
    eq(r.returncode, 2, "a name with / in line 3: exit status 2")
    if quoted:
        eq(err, "casqd: " + quoted.group(1).replace("/etc/casq/keys", keys),
           "casqd's message is the one casq-keys(5) quotes")


def main():
    if shutil.which("mandoc") is None:
        skip_all("mandoc not found (Debian: apt-get install mandoc; script/test installs it)")
    src = srcdir()
    mandir = os.path.join(src, "man")
    ours = {p.replace(".", " ", 1).rsplit(" ", 1)[0] + " " + p.rsplit(".", 1)[1]
            for p in PAGES}            # "casqd 8", "casq-keys 5"
    texts = {}
    for page in PAGES:
        path = os.path.join(mandir, page)
        with open(path) as f:
            texts[page] = f.read()
        rc, lines = lint(path, "warning")
        ok(rc == 0 and not lines, "mandoc -Tlint -W warning: %s clean" % page,
           "rc %d: %s" % (rc, lines))
        rc, lines = lint(path)
        rest = [ln for ln in lines
                if not any(ln.endswith("referenced manual not found: Xr %s" % o) or
                           ("referenced manual not found: Xr %s (" % o) in ln
                           for o in ours)]
        ok(not rest, "mandoc -Tlint (style too): %s clean but for our own "
           "not yet installed pages" % page, rest)

    # A planted fault must be found, or "clean" above proves nothing.
    tmp = mkdtemp("casq-man")
    broken = os.path.join(tmp, "casqd.8")
    with open(broken, "w") as f:
        f.write(texts["casqd.8"].replace(".Sh SIGNALS", ".Bl -tag\n.Sh SIGNALS", 1))
    rc, lines = lint(broken, "warning")
    ok(rc != 0 and lines, "mandoc -Tlint reports an unclosed list", lines)

    # casqd(8) and README.md document exactly casqd's flags.
    flags = help_flags()
    ok(len(flags) >= 14, "casqd --help lists its flags", flags)
    page = texts["casqd.8"]
    items = man_items(page)
    eq(sorted(items), sorted(f[1] for f in flags), "casqd(8) documents exactly casqd's flags")
    synopsis = page.split(".Sh SYNOPSIS", 1)[1].split(".Sh DESCRIPTION", 1)[0]
    for short, long_, line in flags:
        entry = items.get(long_, ["", ""])
        if short:
            ok(re.match(r"^\.It Fl %s( |$)" % short, entry[0]),
               "casqd(8): -%s beside --%s" % (short, long_), entry[0])
            ok(re.search(r"\bFl (\w \| )?%s\b" % short, synopsis), "SYNOPSIS has -%s" % short)
        else:
            ok(("Fl \\-%s" % long_) in synopsis, "SYNOPSIS has --%s" % long_)
        for d in re.findall(r"default ([^\s)]+)\)", line) + \
                re.findall(r"(\w+) \(default\)", line):
            d = d.strip('"')
            ok(d in entry[1], "casqd(8) --%s: default %s" % (long_, d), entry[1])
    with open(os.path.join(src, "README.md")) as f:
        readme = f.read()
    table = re.findall(r"^\| `--([a-z-]+)", readme, re.M)
    table += re.findall(r"^\| `--[a-z-]+`, `--([a-z-]+)`", readme, re.M)
    eq(sorted(set(table)), sorted(f[1] for f in flags), "README's flag table: the same flags")

    check_casqctl(texts["casqctl.8"], readme)
    check_keys_examples(texts["casq-keys.5"])
    done()


run_main(main)
