"""crashimg.py - the disks a power loss could leave, from a write recording.

tests/crash/wrec.so logs every write to data.mdb (offset, bytes) and every
flush, each with CLOCK_MONOTONIC times t0 (before the call) and t1 (after)
and a sequence number taken after it. This module replays that log through
a model of the page cache and the disk:

- a write puts a new version of each page it touches in the cache (the
  whole page as it then is, since writeback writes whole pages);
- a successful fdatasync/fsync makes durable, per page, the newest version
  whose write had finished (t1) before the flush began (t0);
- a write on an O_DSYNC descriptor (LMDB's meta page in full mode) is
  durable when it returns;
- a failed flush (EIO) makes nothing durable, and, as Linux after a failed
  writeback (fsyncgate), the versions it covered may be lost for good: a
  later successful flush does not make them durable either.

A crash "between record i-1 and record i" leaves, for each page, its
durable version or any newer version still pending (written back or not,
in any order; a page never written durably is a hole of zeros if not
written back). Images are drawn at every flush boundary (both sides) and
at random cuts, with random choices per page.

The acknowledgements a client received before that crash are those with
t_ack < T_i, the smallest t0 of records i.. (every one of those calls
began after the ack, so the calls the ack waited for are all before i):

- full mode: every one of them must be in the image;
- relaxed mode: every one acknowledged before the start of the last
  successful flush before the cut.
"""

import random
import struct

PAGE = 4096
HDR = struct.Struct("=IHHIiQQQQQ")
MAGIC = 0x43455257
WRITE, SYNC, OPEN, TRUNC = 1, 2, 3, 4
F_DSYNC = 1
F_FAULT = 2     # the call met the injected fault


class Rec:
    __slots__ = ("type", "flags", "pid", "err", "seq", "t0", "t1", "off", "data")

    def __init__(self, fields, data):
        (_m, self.type, self.flags, self.pid, self.err, self.seq, self.t0,
         self.t1, self.off, _len) = fields
        self.data = data


def read_log(path):
    """The records of a wrec log, in sequence order."""
    out = []
    with open(path, "rb") as f:
        raw = f.read()
    pos = 0
    while pos < len(raw):
        fields = HDR.unpack_from(raw, pos)
        if fields[0] != MAGIC:
            raise ValueError("wrec log %s: bad record at byte %d" % (path, pos))
        pos += HDR.size
        n = fields[9]
        out.append(Rec(fields, raw[pos:pos + n]))
        pos += n
    out.sort(key=lambda r: r.seq)
    return out


class Version:
    __slots__ = ("data", "t1", "lost")

    def __init__(self, data, t1):
        self.data = data
        self.t1 = t1
        self.lost = False   # covered by a failed flush: may never reach the disk


class Disk:
    """The model: the cache's pages, the durable ones, what is pending."""

    def __init__(self):
        self.cache = {}      # page -> bytes, as the cache holds it
        self.durable = {}    # page -> bytes on the platter
        self.pending = {}    # page -> [Version], oldest first
        self.last_flush_t0 = None     # t0 of the last successful flush
        self.flushes = 0
        self.failed_flushes = 0

    def write(self, r):
        if not r.data:
            return
        off, data = r.off, r.data
        end = off + len(data)
        page = off // PAGE
        while page * PAGE < end:
            base = page * PAGE
            cur = bytearray(self.cache.get(page, bytes(PAGE)))
            lo, hi = max(off, base), min(end, base + PAGE)
            cur[lo - base:hi - base] = data[lo - off:hi - off]
            cur = bytes(cur)
            self.cache[page] = cur
            if r.flags & F_DSYNC and r.err == 0:
                self.durable[page] = cur
                self.pending.pop(page, None)
            else:
                self.pending.setdefault(page, []).append(Version(cur, r.t1))
            page += 1

    def flush(self, r):
        if r.err != 0:
            self.failed_flushes += 1
            for vs in self.pending.values():
                for v in vs:
                    if v.t1 <= r.t0:
                        v.lost = True
            return
        self.flushes += 1
        self.last_flush_t0 = r.t0
        for page in list(self.pending):
            vs = self.pending[page]
            done = [i for i, v in enumerate(vs) if v.t1 <= r.t0]
            if not done:
                continue
            last = done[-1]
            if vs[last].lost:
                continue    # its data may be gone; only a rewrite saves it
            self.durable[page] = vs[last].data
            rest = vs[last + 1:]
            if rest:
                self.pending[page] = rest
            else:
                del self.pending[page]

    def apply(self, r):
        if r.type == WRITE:
            self.write(r)
        elif r.type == SYNC:
            self.flush(r)

    def image(self, rng, mode):
        """bytes of one possible disk. mode: "durable" (nothing pending
        reached the disk), "all" (the newest of everything did), "random"."""
        pages = dict(self.durable)
        for page, vs in self.pending.items():
            if mode == "durable":
                continue
            if mode == "all":
                pages[page] = vs[-1].data
                continue
            pick = rng.randrange(len(vs) + 1)
            if pick > 0:
                pages[page] = vs[pick - 1].data
        if not pages:
            return b""
        n = max(pages) + 1
        out = bytearray(n * PAGE)
        for page, data in pages.items():
            out[page * PAGE:(page + 1) * PAGE] = data
        return bytes(out)


def cut_times(recs):
    """T[i]: the smallest t0 of records i.. (T[len] is +infinity)."""
    inf = float("inf")
    t = [inf] * (len(recs) + 1)
    for i in range(len(recs) - 1, -1, -1):
        t[i] = min(recs[i].t0, t[i + 1])
    return t


def choose_cuts(recs, n_random, rng):
    """Cut indices: both sides of every flush, plus n_random random ones."""
    cuts = set()
    for i, r in enumerate(recs):
        if r.type == SYNC:
            cuts.add(i)
            cuts.add(i + 1)
    first_write = next((i for i, r in enumerate(recs) if r.type == WRITE), 0)
    for _ in range(n_random):
        cuts.add(rng.randrange(first_write, len(recs) + 1))
    return sorted(cuts)


def images(recs, cuts, per_cut, rng):
    """Yield (cut index, T, last flush t0 or None, image bytes, mode) for
    each cut: one image with only durable pages, one with everything
    pending applied, and per_cut - 2 random ones."""
    T = cut_times(recs)
    disk = Disk()
    ci = 0
    for i in range(len(recs) + 1):
        while ci < len(cuts) and cuts[ci] == i:
            modes = ["durable", "all"] + ["random"] * max(0, per_cut - 2)
            for mode in modes[:max(per_cut, 1)]:
                yield i, T[i], disk.last_flush_t0, disk.image(rng, mode), mode
            ci += 1
        if i < len(recs):
            disk.apply(recs[i])


def relaxed_at_risk(recs):
    """Relaxed mode's windows (lo, hi, until): acknowledgements between lo
    and hi (ns) that a failed flush may have lost, for cuts at or before
    record index until. In relaxed mode the meta page of the last commit
    waits for the next flush; when that flush fails, Linux may drop the
    page and mark it clean, so no later flush writes it. The window runs
    from the start of the last successful flush before the failure to the
    failure's end, and lasts until the replacement process has rewritten
    the meta pages and flushed them (store_resync_meta): its first
    successful flush."""
    out = []
    last_ok = 0
    for i, r in enumerate(recs):
        if r.type != SYNC:
            continue
        if r.err == 0:
            last_ok = r.t0
            continue
        until = next((j for j in range(i + 1, len(recs)) if recs[j].type == SYNC and
                      recs[j].err == 0 and recs[j].pid != r.pid), len(recs))
        out.append((last_ok, r.t1, until))
    return out


def summary(recs):
    w = sum(1 for r in recs if r.type == WRITE)
    s = sum(1 for r in recs if r.type == SYNC and r.err == 0)
    d = sum(1 for r in recs if r.type == WRITE and r.flags & F_DSYNC)
    return {"records": len(recs), "writes": w, "flushes": s, "dsync_writes": d,
            "bytes": sum(len(r.data) for r in recs)}


__all__ = ["read_log", "choose_cuts", "images", "summary", "cut_times", "Disk",
           "PAGE", "random"]
