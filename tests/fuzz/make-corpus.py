#!/usr/bin/env python3
"""tests/fuzz/make-corpus.py [SRCDIR]: derive the fuzzers' seed corpus
from the requests the test suite really sends, into
SRCDIR/tests/fuzz/corpus/<target>/ (files named by their SHA-1; existing
files are kept, so handcrafted seeds stay).

Requests come from tests/integration/*.py (every Stack/Client .call(),
.q() and fcgi_request() whose arguments evaluate from literals and
module constants) and tests/unit/test_request.c (call(), call_full() and
parse() with literal arguments). Each test function's requests, in
order, make one fuzz_route seed (up to 16 requests: enqueue, then claim,
then ack...), and each request one seed for fuzz_params (Content-Type,
URI, body), fuzz_json (JSON bodies) and fuzz_fcgi (the FastCGI records
nginx would send, two requests on a kept connection).
"""
import ast
import hashlib
import json
import os
import re
import struct
import sys
import urllib.parse

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(SRC, "tests", "fuzz", "corpus")
FORM = "application/x-www-form-urlencoded"
BAD = object()


class Req:
    def __init__(self, method, target, ctype=None, body=b"", headers=None, key="a"):
        self.method, self.target, self.ctype = method, target, ctype
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = headers or {}
        self.key = key          # "a", "b", "-" (none) or a literal


# ------------------------------------------------------------ integration tests

def ev(node, env):
    """Value of an expression made of literals and known names, or BAD."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id, BAD)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod, ast.Mult)):
        a, b = ev(node.left, env), ev(node.right, env)
        if a is BAD or b is BAD:
            return BAD
        try:
            return a + b if isinstance(node.op, ast.Add) else \
                a % b if isinstance(node.op, ast.Mod) else a * b
        except Exception:
            return BAD
    if isinstance(node, (ast.List, ast.Tuple)):
        v = [ev(e, env) for e in node.elts]
        return BAD if BAD in v else (v if isinstance(node, ast.List) else tuple(v))
    if isinstance(node, ast.Dict):
        if None in node.keys:
            return BAD
        ks = [ev(k, env) for k in node.keys]
        vs = [ev(v, env) for v in node.values]
        return BAD if BAD in ks or BAD in vs else dict(zip(ks, vs))
    if isinstance(node, ast.JoinedStr):
        out = ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                out += part.value
            elif isinstance(part, ast.FormattedValue):
                v = ev(part.value, env)
                if v is BAD:
                    return BAD
                out += str(v)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = ev(node.operand, env)
        return BAD if v is BAD else -v
    return BAD


def assigns(body, env):
    for st in body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            v = ev(st.value, env)
            if v is not BAD:
                env[st.targets[0].id] = v


def from_call(call, env):
    f = call.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    args = [ev(a, env) for a in call.args]
    kw = {k.arg: ev(k.value, env) for k in call.keywords if k.arg}
    if name == "call" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        names = ["method", "path", "params", "body", "content_type", "headers", "key"]
        a = dict(zip(names, args))
        a.update(kw)
        if any(v is BAD for v in a.values()):
            return None
        body, ctype = a.get("body"), a.get("content_type")
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
            ctype = ctype or "application/json"
        params = a.get("params")
        target = a["path"]
        if params is not None:
            q = params if isinstance(params, str) else \
                urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
            target += ("&" if "?" in target else "?") + q
        key = "a" if "key" not in a else "-" if a["key"] is None else "a"
        return Req(a["method"], target, ctype, body or b"", a.get("headers"), key)
    if name == "q" and len(args) >= 2 and all(isinstance(x, str) for x in args[:2]):
        if any(v is BAD for v in kw.values()):
            return None
        q = urllib.parse.urlencode({k: v for k, v in kw.items() if v is not None},
                                   quote_via=urllib.parse.quote)
        return Req("GET", "/v1/queues/%s/%s" % tuple(args[:2]) + ("?" + q if q else ""))
    if name == "fcgi_request" and len(args) >= 3 and isinstance(args[1], str) and isinstance(args[2], str):
        body, headers = kw.get("body", b""), kw.get("headers") or {}
        if body is BAD or headers is BAD:
            return None
        h = dict(headers)
        ctype = h.pop("Content-Type", None)
        return Req(args[1], args[2], ctype, body or b"", h, "-")
    return None


def integration_requests():
    groups = []
    d = os.path.join(SRC, "tests", "integration")
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(d, fn)).read())
        env = {}
        assigns(tree.body, env)
        for fnode in ast.walk(tree):
            if not isinstance(fnode, ast.FunctionDef):
                continue
            fenv = dict(env)
            assigns(fnode.body, fenv)
            reqs = [r for r in (from_call(c, fenv) for c in ast.walk(fnode)
                                if isinstance(c, ast.Call)) if r]
            if reqs:
                groups.append(reqs)
    return groups


# ------------------------------------------------------------ test_request.c

def c_args(text, start):
    """Split the C argument list starting after '(' at start."""
    args, depth, cur, i = [], 0, "", start
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur += text[i:j + 1]
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                args.append(cur.strip())
                return args
            depth -= 1
        elif c == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            i += 1
            continue
        cur += c
        i += 1
    return None


def c_value(arg):
    consts = {"NULL": None, "form": FORM, "json": "application/json",
              "key_a": "a", "key_b": "b"}
    if arg in consts:
        return consts[arg]
    lits = re.findall(r'"((?:[^"\\]|\\.)*)"', arg)
    if not lits or re.sub(r'"((?:[^"\\]|\\.)*)"|\s|T0_ISO', "", arg):
        return BAD
    s = "".join(lits)
    return s.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1")


def unit_requests():
    text = open(os.path.join(SRC, "tests", "unit", "test_request.c")).read()
    calls, parses = [], []
    for m in re.finditer(r'\b(call|call_full|parse)\(', text):
        args = c_args(text, m.end())
        if not args:
            continue
        if m.group(1) == "parse" and len(args) == 4 and args[0] == "&req":
            uri, ct, body = (c_value(a) for a in args[1:])
            if BAD not in (uri, ct, body) and uri is not None:
                parses.append(Req("POST", uri.decode("latin-1"),
                                  ct.decode() if isinstance(ct, bytes) else ct, body or b""))
        elif m.group(1) in ("call", "call_full") and len(args) >= 5:
            v = [c_value(a) for a in args[:4]] + [c_value(args[-2 if m.group(1) == "call_full" else 4])]
            if BAD in v or v[0] is None or v[1] is None:
                continue
            method, uri, ct, body, key = v
            ct = ct.decode() if isinstance(ct, bytes) else ct
            calls.append(Req(method.decode(), uri.decode("latin-1"), ct, body or b"",
                             key="-" if key is None else key.decode() if isinstance(key, bytes) else key))
    return calls, parses


# ------------------------------------------------------------ seeds

def route_text(r):
    lines = ["%s %s" % (r.method, r.target)]
    if r.ctype:
        lines.append("c " + r.ctype)
    if r.key != "a":
        lines.append("k " + r.key)
    for k, v in r.headers.items():
        if k.lower() == "idempotency-key":
            lines.append("i " + str(v))
        elif k.lower() == "x-api-key":
            lines.append("k " + str(v))
    return ("\n".join(lines) + "\n\n").encode() + r.body


def fcgi_record(rtype, content, rid=1):
    if not content:
        return struct.pack("!BBHHBx", 1, rtype, rid, 0, 0)
    out = b""
    for i in range(0, len(content), 65535):
        chunk = content[i:i + 65535]
        pad = (-len(chunk)) % 8
        out += struct.pack("!BBHHBx", 1, rtype, rid, len(chunk), pad) + chunk + b"\0" * pad
    return out


def fcgi_nv(name, value):
    def ln(n):
        return struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)
    name, value = name.encode(), value.encode("latin-1", "replace")
    return ln(len(name)) + ln(len(value)) + name + value


def fcgi_stream(r, keep):
    path, _, query = r.target.partition("?")
    params = {"REQUEST_METHOD": r.method, "REQUEST_URI": r.target, "DOCUMENT_URI": path,
              "QUERY_STRING": query, "CONTENT_LENGTH": str(len(r.body)) if r.body else "",
              "CONTENT_TYPE": r.ctype or "", "HTTP_AUTHORIZATION": "Bearer casq_x",
              "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    for k, v in r.headers.items():
        params["HTTP_" + k.upper().replace("-", "_")] = str(v)
    msg = fcgi_record(1, struct.pack("!HB5x", 1, 1 if keep else 0))
    msg += fcgi_record(4, b"".join(fcgi_nv(k, v) for k, v in params.items()))
    msg += fcgi_record(4, b"")
    if r.body:
        msg += fcgi_record(5, r.body)
    return msg + fcgi_record(5, b"")


def main():
    seeds = {t: set() for t in ("fuzz_route", "fuzz_params", "fuzz_json", "fuzz_fcgi")}
    groups = integration_requests()
    calls, parses = unit_requests()
    groups.append(calls)
    every = [r for g in groups for r in g] + parses
    for g in groups:
        for i in range(0, len(g), 16):
            seeds["fuzz_route"].add(b"\n=\n".join(route_text(r) for r in g[i:i + 16]))
    for r in every:
        seeds["fuzz_route"].add(route_text(r))
        seeds["fuzz_params"].add(("%s\n%s\n" % (r.ctype or "", r.target)).encode() + r.body)
        if r.body.lstrip()[:1] in (b"{", b"["):
            seeds["fuzz_json"].add(r.body)
    for a, b in zip(every, every[1:] + every[:1]):
        seeds["fuzz_fcgi"].add(fcgi_stream(a, True) + fcgi_stream(b, False))
    for t, s in seeds.items():
        d = os.path.join(OUT, t)
        os.makedirs(d, exist_ok=True)
        for data in s:
            if len(data) <= 16384:
                with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
                    f.write(data)
        print("%s: %d seeds" % (t, len(os.listdir(d))))


main()
