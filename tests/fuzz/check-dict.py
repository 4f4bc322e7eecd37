#!/usr/bin/env python3
"""tests/fuzz/check-dict.py [SRCDIR]: does tests/fuzz/casq.dict name every
route path and every parameter the route rows of src/route_*.c declare?
Prints what is missing (as dictionary lines to add) and exits 1 if any.
"""
import glob
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
text = open(os.path.join(src, "tests", "fuzz", "casq.dict")).read()
have = set(re.findall(r'^"(.*)"$', text, re.M))
want = set()
for f in glob.glob(os.path.join(src, "src", "route_*.c")):
    c = open(f).read()
    # .pattern = "/v1/kv/*" and QUEUE_ROUTE("/claim", QOP_CLAIM, "key", ...)
    for p in re.findall(r'\.pattern\s*=\s*"([^"]+)"', c):
        want.add(p.replace("*", ""))
    for args in re.findall(r'\b[A-Z]+_ROUTE\(([^)]*)\)', c):
        lits = re.findall(r'"([^"]*)"', args)
        if lits and not args.lstrip().startswith("path"):
            want.add(lits[0])
            want.update(n + "=" for n in lits[1:])
    for block in re.findall(r'\.params\s*=\s*\(const char \*const\[\]\)\{([^}]*)\}', c):
        want.update(n + "=" for n in re.findall(r'"([^"]+)"', block))
missing = sorted(w for w in want if w not in have)
for m in missing:
    print('"%s"' % m)
sys.exit(1 if missing else 0)
