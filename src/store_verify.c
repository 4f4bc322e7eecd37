/*
 * store_verify.c - the consistency walk: every record of every database
 * read once, in one read transaction, and checked against casq's own
 * invariants (docs/storage.md):
 *
 *   - every item decodes, its queue exists, and the index entry its state
 *     calls for ("ready" or "leases") exists and names it back;
 *   - every "ready" and "leases" entry names an item in that state with
 *     that time and sequence number;
 *   - each queue's ready, leased and dead counters equal the items
 *     counted, and its next_seq is above every item's seq;
 *   - a dead item has its entry in "dead" and every entry of "dead" names
 *     a dead item; only a leased item waits for a follow-up run;
 *   - every binding decodes and belongs to a queue;
 *   - a consumed item has a claim record or an item, never both;
 *   - every record that ends at a known time (a lease, a claim record, a
 *     binding, a value with a ttl, a once-window, a stored answer) has its entry in
 *     "expiry", so the sweep will find it;
 *   - every history event decodes and names a queue that exists; the
 *     event before it in its item's chain is older and the same item's;
 *     every history head (in an item record, a claim record, or parked
 *     in "heads") names an event of its own item, and a parked one has
 *     its entry in "expiry";
 *   - each namespace's key counter equals its values, each once scope's
 *     window counter its windows;
 *   - each tenant's usage (items, values, windows) equals what its part
 *     of "items", "kv" and "once" holds.
 *
 * It reads the layouts itself, from the documented format, rather than
 * through the families' decoders: a checker that shared their bugs would
 * prove little. It only reads, so an operator can run it on a live
 * database (readers never block casqd's writer); it costs one pass over
 * the data plus one lookup per index entry.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* On-disk headers, as docs/storage.md gives them. */
#define ITEM_HDR_SIZE	128
#define ITEM_HEAD_AT	104	/* the history head: last id, count, last_at */
#define CLAIM_HDR_SIZE	40
#define CLAIM_HEAD_AT	16
#define BINDING_HDR_SIZE	64
#define KV_HDR_SIZE	32
#define ONCE_REC_SIZE	24
#define IDEM_HDR_SIZE	56
#define KVNS_SIZE	(7 * 8)
#define ONCENS_SIZE	(4 * 8)
#define EVENT_HDR_SIZE	40
#define EVENT_ID_SIZE	8
#define PARKED_HEAD_SIZE	32	/* a head, then its expiry time */
/* "queue/<16 hex>/<16 hex>" and its NUL */
#define INDEX_KEY_BUF	(QUEUE_NAME_MAX + 1 + 16 + 1 + 16 + 1)
/* Problems reported one by one; past this only the count goes on, so a
 * badly broken database cannot flood the operator's terminal. */
#define VERIFY_REPORT_MAX	1000

struct qcount {
	char               name[QUEUE_NAME_MAX + 1];
	struct queue_stats stats;
	uint64_t           ready, leased, dead, max_seq;
};

struct nscount {
	char            name[QUEUE_NAME_MAX + 1];
	struct kv_stats stats;
	uint64_t        keys;
};

struct scount {
	char              name[QUEUE_NAME_MAX + 1];
	struct once_stats stats;
	uint64_t          windows;
};

struct tcount {
	char                name[TENANT_NAME_MAX + 1];
	uint64_t            items, values, windows;
	bool                has_record;
	struct tenant_usage usage;
};

struct verify {
	struct store  *st;
	MDB_txn       *txn;
	void         (*report)(void *ctx, const char *problem);
	void          *ctx;
	size_t         problems;
	struct qcount *q;
	size_t         nq;
	struct nscount *ns;
	size_t         nns;
	struct scount *sc;
	size_t         nsc;
	struct tcount *t;	/* few tenants: a linear search will do */
	size_t         nt;
};

/* The tenant counted under the "tenant:" part of key k, added when new;
 * NULL for a key without one (reported by the walks of the families). */
static struct tcount *
tenant_of(struct verify *v, const MDB_val *k)
{
	const char *colon = memchr(k->mv_data, ':', k->mv_size);
	size_t len = colon ? (size_t)(colon - (const char *)k->mv_data) : 0;
	struct tcount *t;

	if (len == 0 || len > TENANT_NAME_MAX)
		return NULL;
	for (size_t i = 0; i < v->nt; i++)
		if (strlen(v->t[i].name) == len && memcmp(v->t[i].name, k->mv_data, len) == 0)
			return &v->t[i];
	v->t = xrealloc(v->t, (v->nt + 1) * sizeof *v->t);
	t = &v->t[v->nt++];
	memset(t, 0, sizeof *t);
	memcpy(t->name, k->mv_data, len);
	return t;
}

static void __attribute__((format(printf, 2, 3)))
problem(struct verify *v, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (v->problems++ >= (size_t)VERIFY_REPORT_MAX || v->report == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	v->report(v->ctx, msg);
}

/* A key as printable text for a report: at most 200 bytes, bytes outside
 * printable ASCII as '?'. */
static const char *
shown(const void *p, size_t n, char out[static 201])
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n && i < 200; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	out[i] = '\0';
	return out;
}

static uint64_t
rd64(const void *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof x);
	return x;
}

static uint32_t
rd32(const void *p)
{
	uint32_t x;

	memcpy(&x, p, sizeof x);
	return x;
}

static uint16_t
rd16(const void *p)
{
	uint16_t x;

	memcpy(&x, p, sizeof x);
	return x;
}

/* Length of the part before the first '/', or 0 when there is none. */
static size_t
prefix_len(const MDB_val *k)
{
	const char *slash = memchr(k->mv_data, '/', k->mv_size);

	return slash ? (size_t)(slash - (const char *)k->mv_data) : 0;
}

static int
cmp_name(const char *a, const char *b, size_t blen)
{
	size_t alen = strlen(a);
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

/* The queue (or namespace) record counted under this name; both arrays
 * are in LMDB's key order, which for these names is strcmp order. */
static struct qcount *
queue_find(struct verify *v, const char *name, size_t len)
{
	size_t lo = 0, hi = v->nq;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = cmp_name(v->q[mid].name, name, len);

		if (c == 0)
			return &v->q[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The record named name in the n records of size bytes at base, in name
 * order as their walk added them (the name is each one's first member). */
static void *
named_find(void *base, size_t n, size_t size, const char *name, size_t len)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		char *rec = (char *)base + mid * size;
		int c = cmp_name(rec, name, len);

		if (c == 0)
			return rec;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct nscount *
ns_find(struct verify *v, const char *name, size_t len)
{
	return named_find(v->ns, v->nns, sizeof *v->ns, name, len);
}

static struct scount *
scope_find(struct verify *v, const char *name, size_t len)
{
	return named_find(v->sc, v->nsc, sizeof *v->sc, name, len);
}

/* True when key exists in dbi; *val gets its value. */
static bool
lookup(struct verify *v, MDB_dbi dbi, const void *key, size_t len, MDB_val *val)
{
	MDB_val k = { len, (void *)key }, tmp;
	int rc = mdb_get(v->txn, dbi, &k, val ? val : &tmp);

	if (rc != 0 && rc != MDB_NOTFOUND)
		problem(v, "lookup: %s", mdb_strerror(rc));
	return rc == 0;
}

static bool
expiry_has(struct verify *v, int64_t due, enum expiry_kind kind, const void *ref,
    size_t reflen)
{
	char kb[EXPIRY_KEY_MAX];
	size_t n = expiry_key_make(kb, due, kind, ref, reflen);

	return n > 0 && lookup(v, v->st->expiry, kb, n, NULL);
}

/* Run fn on every record of dbi; false when the walk itself failed. */
static bool
walk(struct verify *v, MDB_dbi dbi, const char *what,
    void (*fn)(struct verify *, const MDB_val *, const MDB_val *))
{
	MDB_cursor *cur;
	MDB_val k, d;
	int rc;

	if ((rc = mdb_cursor_open(v->txn, dbi, &cur)) != 0) {
		problem(v, "%s: cannot open a cursor: %s", what, mdb_strerror(rc));
		return false;
	}
	while ((rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) == 0)
		fn(v, &k, &d);
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		problem(v, "%s: walk stopped: %s", what, mdb_strerror(rc));
		return false;
	}
	return true;
}

/* --- queues --- */

static void
visit_queue(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	char s[201];
	struct qcount *q;

	if (k->mv_size == 0 || k->mv_size > QUEUE_NAME_MAX ||
	    memchr(k->mv_data, '/', k->mv_size) || d->mv_size != sizeof q->stats) {
		problem(v, "queues: bad record for '%s' (%zu bytes)",
		    shown(k->mv_data, k->mv_size, s), d->mv_size);
		return;
	}
	v->q = xrealloc(v->q, (v->nq + 1) * sizeof *v->q);
	q = &v->q[v->nq++];
	memset(q, 0, sizeof *q);
	memcpy(q->name, k->mv_data, k->mv_size);
	memcpy(&q->stats, d->mv_data, sizeof q->stats);
}

static void check_head(struct verify *v, const char *family, const MDB_val *k,
    const char *p);

static void
visit_item(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	const char *p = d->mv_data;
	size_t ql = prefix_len(k);
	char s[201], ik[INDEX_KEY_BUF];
	struct qcount *q;
	struct tcount *t;
	uint8_t state;
	uint64_t seq;
	int64_t ready_at, lease_until;
	MDB_val idx;
	int n;

	shown(k->mv_data, k->mv_size, s);
	if (ql == 0 || ql + 1 >= k->mv_size) {
		problem(v, "items: key '%s' is not queue/key", s);
		return;
	}
	if ((t = tenant_of(v, k)) != NULL)
		t->items++;
	if (d->mv_size < ITEM_HDR_SIZE ||
	    d->mv_size != ITEM_HDR_SIZE + rd16(p + 2) + rd32(p + 56) + rd32(p + 60) +
	    rd16(p + 64)) {
		problem(v, "items: '%s' has a record of %zu bytes that does not decode", s, d->mv_size);
		return;
	}
	state = (uint8_t)p[0];
	seq = rd64(p + 8);
	ready_at = (int64_t)rd64(p + 24);
	lease_until = (int64_t)rd64(p + 32);
	if ((p[1] & ITEM_FOLLOW_UP) && state != ITEM_LEASED)
		problem(v, "items: '%s' waits for a follow-up run but is not leased", s);
	if ((q = queue_find(v, k->mv_data, ql)) == NULL)
		problem(v, "items: '%s' belongs to a queue without a record", s);
	else if (seq >= q->stats.next_seq)
		problem(v, "items: '%s' has seq %" PRIu64 ", not below its queue's next_seq %" PRIu64,
		    s, seq, q->stats.next_seq);
	if (q && seq > q->max_seq)
		q->max_seq = seq;
	if (lookup(v, v->st->claimed, k->mv_data, k->mv_size, NULL))
		problem(v, "items: '%s' is queued and has a claim record too", s);
	check_head(v, "items", k, p + ITEM_HEAD_AT);
	if (state == ITEM_READY) {
		if (q)
			q->ready++;
		n = snprintf(ik, sizeof ik, "%.*s/%016llx/%016llx", (int)ql,
		    (const char *)k->mv_data, (unsigned long long)ready_at,
		    (unsigned long long)seq);
		if (!lookup(v, v->st->ready, ik, (size_t)n, &idx))
			problem(v, "items: ready '%s' has no entry in the ready index", s);
		else if (idx.mv_size != k->mv_size - ql - 1 ||
		    memcmp(idx.mv_data, (const char *)k->mv_data + ql + 1, idx.mv_size) != 0)
			problem(v, "ready: entry %s names another key than '%s'", ik, s);
	} else if (state == ITEM_LEASED) {
		if (q)
			q->leased++;
		n = snprintf(ik, sizeof ik, "%.*s/%016llx/%016llx", (int)ql,
		    (const char *)k->mv_data, (unsigned long long)lease_until,
		    (unsigned long long)seq);
		if (!lookup(v, v->st->leases, ik, (size_t)n, &idx))
			problem(v, "items: leased '%s' has no entry in the leases index", s);
		else if (idx.mv_size != k->mv_size - ql - 1 ||
		    memcmp(idx.mv_data, (const char *)k->mv_data + ql + 1, idx.mv_size) != 0)
			problem(v, "leases: entry %s names another key than '%s'", ik, s);
		if (!expiry_has(v, lease_until, EXPIRY_LEASE, k->mv_data, k->mv_size))
			problem(v, "items: the lease of '%s' has no expiry entry", s);
	} else if (state == ITEM_DEAD) {
		if (q)
			q->dead++;
		if (!lookup(v, v->st->dead, k->mv_data, k->mv_size, NULL))
			problem(v, "items: dead '%s' has no entry in the dead index", s);
	} else {
		problem(v, "items: '%s' has state %u (1 ready, 2 leased, 4 dead)", s, state);
	}
}

/* An entry of "dead": queue/key -> "", naming a dead item. */
static void
visit_dead(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	char s[201];
	MDB_val item;

	shown(k->mv_data, k->mv_size, s);
	if (!lookup(v, v->st->items, k->mv_data, k->mv_size, &item))
		problem(v, "dead: entry '%s' names an item that does not exist", s);
	else if (item.mv_size >= ITEM_HDR_SIZE && ((uint8_t *)item.mv_data)[0] != ITEM_DEAD)
		problem(v, "dead: entry '%s' names an item in state %u", s,
		    ((uint8_t *)item.mv_data)[0]);
}

/* A binding: queue/bind -> header, key, owner, payload. */
static void
visit_binding(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	const char *p = d->mv_data;
	char s[201];

	shown(k->mv_data, k->mv_size, s);
	if (d->mv_size < BINDING_HDR_SIZE ||
	    d->mv_size != BINDING_HDR_SIZE + rd32(p + 20) + rd16(p + 24) + rd16(p + 26) ||
	    rd16(p + 24) == 0) {
		problem(v, "bindings: '%s' has a record of %zu bytes that does not decode", s, d->mv_size);
		return;
	}
	if (prefix_len(k) == 0 || queue_find(v, k->mv_data, prefix_len(k)) == NULL)
		problem(v, "bindings: '%s' belongs to a queue without a record", s);
	if (!expiry_has(v, (int64_t)rd64(p + 8), EXPIRY_BINDING, k->mv_data, k->mv_size))
		problem(v, "bindings: '%s' has no expiry entry", s);
}

/* An entry of "ready" or "leases": queue/<when>/<seq> -> key. */
static void
visit_index(struct verify *v, const MDB_val *k, const MDB_val *d, bool leases)
{
	const char *name = leases ? "leases" : "ready";
	size_t ql = prefix_len(k);
	char s[201], hex[17], ik[QUEUE_NAME_MAX + 1 + ITEM_KEY_MAX + 1];
	uint64_t when, seq;
	MDB_val item;
	const char *p;

	shown(k->mv_data, k->mv_size, s);
	if (ql == 0 || k->mv_size != ql + 34 || ((char *)k->mv_data)[ql + 17] != '/' ||
	    d->mv_size == 0 || d->mv_size > ITEM_KEY_MAX) {
		problem(v, "%s: malformed entry '%s'", name, s);
		return;
	}
	memcpy(hex, (char *)k->mv_data + ql + 1, 16);
	hex[16] = '\0';
	when = strtoull(hex, NULL, 16);
	memcpy(hex, (char *)k->mv_data + ql + 18, 16);
	seq = strtoull(hex, NULL, 16);
	memcpy(ik, k->mv_data, ql + 1);
	memcpy(ik + ql + 1, d->mv_data, d->mv_size);
	if (!lookup(v, v->st->items, ik, ql + 1 + d->mv_size, &item)) {
		problem(v, "%s: entry '%s' names item '%s', which does not exist", name, s,
		    shown(ik, ql + 1 + d->mv_size, (char[201]){ 0 }));
		return;
	}
	if (item.mv_size < ITEM_HDR_SIZE)
		return;		/* reported by the items walk */
	p = item.mv_data;
	if ((uint8_t)p[0] != (leases ? ITEM_LEASED : ITEM_READY) ||
	    rd64(p + 8) != seq || rd64(p + (leases ? 32 : 24)) != when)
		problem(v, "%s: entry '%s' does not match its item (state %u, seq %" PRIu64 ")",
		    name, s, (uint8_t)p[0], rd64(p + 8));
}

static void visit_ready(struct verify *v, const MDB_val *k, const MDB_val *d) { visit_index(v, k, d, false); }
static void visit_lease(struct verify *v, const MDB_val *k, const MDB_val *d) { visit_index(v, k, d, true); }

static void
visit_claimed(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	char s[201];

	shown(k->mv_data, k->mv_size, s);
	if (d->mv_size < CLAIM_HDR_SIZE ||
	    d->mv_size != CLAIM_HDR_SIZE + (size_t)rd16((const char *)d->mv_data + 12) +
	    rd16((const char *)d->mv_data + 14)) {
		problem(v, "claimed: '%s' has a record of %zu bytes that does not decode", s, d->mv_size);
		return;
	}
	if (prefix_len(k) == 0 || queue_find(v, k->mv_data, prefix_len(k)) == NULL)
		problem(v, "claimed: '%s' belongs to a queue without a record", s);
	check_head(v, "claimed", k, (const char *)d->mv_data + CLAIM_HEAD_AT);
	if (!expiry_has(v, (int64_t)rd64(d->mv_data) + CLAIM_RECORD_TTL_MS, EXPIRY_CLAIM,
	    k->mv_data, k->mv_size))
		problem(v, "claimed: the record of '%s' has no expiry entry", s);
}

static void
check_queue_counts(struct verify *v)
{
	for (size_t i = 0; i < v->nq; i++) {
		struct qcount *q = &v->q[i];

		if (q->ready != q->stats.ready)
			problem(v, "queues: '%s' counts %" PRIu64 " ready, the items say %" PRIu64,
			    q->name, q->stats.ready, q->ready);
		if (q->leased != q->stats.leased)
			problem(v, "queues: '%s' counts %" PRIu64 " leased, the items say %" PRIu64,
			    q->name, q->stats.leased, q->leased);
		if (q->dead != q->stats.dead)
			problem(v, "queues: '%s' counts %" PRIu64 " dead, the items say %" PRIu64,
			    q->name, q->stats.dead, q->dead);
	}
}

/* --- values, once-windows, stored answers --- */

static void
visit_kvns(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	char s[201];
	struct nscount *n;

	if (k->mv_size == 0 || k->mv_size > QUEUE_NAME_MAX || d->mv_size != KVNS_SIZE) {
		problem(v, "kvns: bad record for '%s' (%zu bytes)",
		    shown(k->mv_data, k->mv_size, s), d->mv_size);
		return;
	}
	v->ns = xrealloc(v->ns, (v->nns + 1) * sizeof *v->ns);
	n = &v->ns[v->nns++];
	memset(n, 0, sizeof *n);
	memcpy(n->name, k->mv_data, k->mv_size);
	memcpy(&n->stats, d->mv_data, sizeof n->stats);
}

static void
visit_kv(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	const char *p = d->mv_data;
	size_t nl = prefix_len(k);
	struct nscount *n;
	struct tcount *t;
	uint64_t version;
	int64_t expires_at;
	char s[201];

	shown(k->mv_data, k->mv_size, s);
	if (d->mv_size < KV_HDR_SIZE || d->mv_size != KV_HDR_SIZE + rd32(p + 24)) {
		problem(v, "kv: '%s' has a record of %zu bytes that does not decode", s, d->mv_size);
		return;
	}
	version = rd64(p);
	expires_at = (int64_t)rd64(p + 16);
	if ((t = tenant_of(v, k)) != NULL)
		t->values++;
	if (nl == 0 || (n = ns_find(v, k->mv_data, nl)) == NULL)
		problem(v, "kv: '%s' belongs to a namespace without a record", s);
	else
		n->keys++;
	if (version == 0)
		problem(v, "kv: '%s' has version 0 (versions start at 1)", s);
	if (expires_at != 0 && !expiry_has(v, expires_at, EXPIRY_VALUE, k->mv_data, k->mv_size))
		problem(v, "kv: the ttl of '%s' has no expiry entry", s);
}

static void
check_ns_counts(struct verify *v)
{
	for (size_t i = 0; i < v->nns; i++)
		if (v->ns[i].keys != v->ns[i].stats.keys)
			problem(v, "kvns: '%s' counts %" PRIu64 " keys, the values say %" PRIu64,
			    v->ns[i].name, v->ns[i].stats.keys, v->ns[i].keys);
}

static void
visit_oncens(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	char s[201];
	struct scount *n;

	if (k->mv_size == 0 || k->mv_size > QUEUE_NAME_MAX || d->mv_size != ONCENS_SIZE) {
		problem(v, "oncens: bad record for '%s' (%zu bytes)",
		    shown(k->mv_data, k->mv_size, s), d->mv_size);
		return;
	}
	v->sc = xrealloc(v->sc, (v->nsc + 1) * sizeof *v->sc);
	n = &v->sc[v->nsc++];
	memset(n, 0, sizeof *n);
	memcpy(n->name, k->mv_data, k->mv_size);
	memcpy(&n->stats, d->mv_data, sizeof n->stats);
}

static void
check_scope_counts(struct verify *v)
{
	for (size_t i = 0; i < v->nsc; i++)
		if (v->sc[i].windows != v->sc[i].stats.windows)
			problem(v, "oncens: '%s' counts %" PRIu64 " windows, the windows say %" PRIu64,
			    v->sc[i].name, v->sc[i].stats.windows, v->sc[i].windows);
}

static void
visit_once(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	size_t sl = prefix_len(k);
	struct scount *n;
	struct tcount *t;
	char s[201];

	shown(k->mv_data, k->mv_size, s);
	if ((t = tenant_of(v, k)) != NULL)
		t->windows++;
	if (sl == 0 || (n = scope_find(v, k->mv_data, sl)) == NULL)
		problem(v, "once: '%s' belongs to a scope without a record", s);
	else
		n->windows++;
	if (d->mv_size != ONCE_REC_SIZE)
		problem(v, "once: '%s' has a record of %zu bytes", s, d->mv_size);
	else if (!expiry_has(v, (int64_t)rd64((const char *)d->mv_data + 8), EXPIRY_ONCE,
	    k->mv_data, k->mv_size))
		problem(v, "once: the window of '%s' has no expiry entry", s);
}

static void
visit_idem(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	const char *p = d->mv_data;
	char s[201];

	shown(k->mv_data, k->mv_size, s);
	if (d->mv_size < IDEM_HDR_SIZE || d->mv_size != IDEM_HDR_SIZE + rd32(p + 52))
		problem(v, "idem: '%s' has a record of %zu bytes that does not decode", s, d->mv_size);
	else if (!expiry_has(v, (int64_t)rd64(p + 40), EXPIRY_RESPONSE, k->mv_data, k->mv_size))
		problem(v, "idem: the answer kept for '%s' has no expiry entry", s);
}

/* --- item history --- */

/* An event's item, "queue/key", into out (QUEUE_NAME_MAX + 1 +
 * ITEM_KEY_MAX + 1 bytes); 0 when the record does not decode. */
static size_t
event_item(const MDB_val *d, char *out)
{
	const char *p = d->mv_data;
	size_t qlen, klen;

	if (d->mv_size < EVENT_HDR_SIZE)
		return 0;
	qlen = (uint8_t)p[31];
	klen = rd16(p + 26);
	if (d->mv_size != EVENT_HDR_SIZE + qlen + klen + (uint8_t)p[29] + (uint8_t)p[30] +
	    rd16(p + 24) || qlen == 0 || qlen > QUEUE_NAME_MAX || klen == 0 ||
	    klen > ITEM_KEY_MAX || history_kind_name((enum history_kind)(uint8_t)p[28]) == NULL)
		return 0;
	memcpy(out, p + EVENT_HDR_SIZE, qlen);
	out[qlen] = '/';
	memcpy(out + qlen + 1, p + EVENT_HDR_SIZE + qlen, klen);
	return qlen + 1 + klen;
}

/* Whether the log holds event id, into *d. */
static bool
event_lookup(struct verify *v, uint64_t id, MDB_val *d)
{
	unsigned char kb[EVENT_ID_SIZE];

	for (int i = EVENT_ID_SIZE - 1; i >= 0; i--, id >>= 8)
		kb[i] = (unsigned char)id;
	return lookup(v, v->st->events, kb, sizeof kb, d);
}

/* The head at p of item k ("queue/key"): its newest event, if the log
 * still holds it (retention may have ended it), must be k's. */
static void
check_head(struct verify *v, const char *family, const MDB_val *k, const char *p)
{
	char item[QUEUE_NAME_MAX + 1 + ITEM_KEY_MAX + 1], s[201];
	uint64_t last = rd64(p);
	MDB_val d;
	size_t n;

	if (last == 0 || !event_lookup(v, last, &d))
		return;
	n = event_item(&d, item);
	if (n != k->mv_size || memcmp(item, k->mv_data, n) != 0)
		problem(v, "%s: the history head of '%s' is event %" PRIu64 ", not one of its own",
		    family, shown(k->mv_data, k->mv_size, s), last);
}

static void
visit_event(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	char item[QUEUE_NAME_MAX + 1 + ITEM_KEY_MAX + 1], prev_item[sizeof item];
	const unsigned char *kp = k->mv_data;
	uint64_t id = 0, prev;
	size_t n;
	MDB_val pd;

	for (size_t i = 0; i < k->mv_size && i < EVENT_ID_SIZE; i++)
		id = id << 8 | kp[i];
	if (k->mv_size != EVENT_ID_SIZE || id == 0) {
		problem(v, "events: a key of %zu bytes is not an event id", k->mv_size);
		return;
	}
	if ((n = event_item(d, item)) == 0) {
		problem(v, "events: event %" PRIu64 " has a record of %zu bytes that does not decode",
		    id, d->mv_size);
		return;
	}
	if (queue_find(v, item, strcspn(item, "/")) == NULL)
		problem(v, "events: event %" PRIu64 " belongs to a queue without a record", id);
	prev = rd64((const char *)d->mv_data + 8);
	if (prev >= id && prev != 0)
		problem(v, "events: event %" PRIu64 " follows a newer event %" PRIu64, id, prev);
	else if (prev != 0 && event_lookup(v, prev, &pd) &&
	    (event_item(&pd, prev_item) != n || memcmp(prev_item, item, n) != 0))
		problem(v, "events: event %" PRIu64 " follows event %" PRIu64 " of another item",
		    id, prev);
}

static void
visit_parked(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	char s[201];

	shown(k->mv_data, k->mv_size, s);
	if (d->mv_size != PARKED_HEAD_SIZE) {
		problem(v, "heads: '%s' has a record of %zu bytes that does not decode", s, d->mv_size);
		return;
	}
	if (prefix_len(k) == 0 || queue_find(v, k->mv_data, prefix_len(k)) == NULL)
		problem(v, "heads: '%s' belongs to a queue without a record", s);
	check_head(v, "heads", k, d->mv_data);
	if (!expiry_has(v, (int64_t)rd64((const char *)d->mv_data + 24), EXPIRY_HISTORY,
	    k->mv_data, k->mv_size))
		problem(v, "heads: the parked head of '%s' has no expiry entry", s);
}

/* Entries may be stale (the sweep drops those), but each must parse. */
static void
visit_expiry(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	const char *p = k->mv_data;
	char s[201];

	if (k->mv_size < 20 || expiry_kind_of(k) == EXPIRY__COUNT ||
	    strspn(p, "0123456789abcdef") < 16)
		problem(v, "expiry: malformed entry '%s'", shown(p, k->mv_size, s));
}

static void
visit_tenant(struct verify *v, const MDB_val *k, const MDB_val *d)
{
	MDB_val scoped = { k->mv_size + 1, NULL };
	char s[201], buf[TENANT_NAME_MAX + 2];
	struct tcount *t;

	shown(k->mv_data, k->mv_size, s);
	if (k->mv_size == 0 || k->mv_size > TENANT_NAME_MAX ||
	    d->mv_size != sizeof t->usage) {
		problem(v, "tenants: bad record for '%s' (%zu bytes)", s, d->mv_size);
		return;
	}
	memcpy(buf, k->mv_data, k->mv_size);
	buf[k->mv_size] = ':';
	scoped.mv_data = buf;
	t = tenant_of(v, &scoped);
	t->has_record = true;
	memcpy(&t->usage, d->mv_data, sizeof t->usage);
}

static void
check_tenant_counts(struct verify *v)
{
	for (size_t i = 0; i < v->nt; i++) {
		const struct tcount *t = &v->t[i];

		if (t->usage.items != t->items || t->usage.values != t->values ||
		    t->usage.windows != t->windows)
			problem(v, "tenants: '%s' counts %" PRIu64 " items, %" PRIu64
			    " values, %" PRIu64 " windows; the data says %" PRIu64 ", %"
			    PRIu64 ", %" PRIu64, t->name, t->usage.items, t->usage.values,
			    t->usage.windows, t->items, t->values, t->windows);
	}
}

static void
check_schema(struct verify *v)
{
	static const char vkey[] = "schema_version";
	char want[16];
	MDB_val val;

	snprintf(want, sizeof want, "%d", STORE_SCHEMA_VERSION);
	if (!lookup(v, v->st->meta, vkey, sizeof vkey - 1, &val))
		problem(v, "meta: no schema_version record");
	else if (val.mv_size != strlen(want) || memcmp(val.mv_data, want, val.mv_size) != 0)
		problem(v, "meta: schema_version is not %s", want);
}

enum casq_err
store_verify(struct store *st, store_verify_report_fn report, void *ctx,
    size_t *problems)
{
	struct verify v = { .st = st, .report = report, .ctx = ctx };
	enum casq_err err;
	bool walked;

	if ((err = store_begin(st, false, &v.txn)) != E_OK)
		return err;
	check_schema(&v);
	walked = walk(&v, st->queues, "queues", visit_queue) &&
	    walk(&v, st->kvns, "kvns", visit_kvns) &&
	    walk(&v, st->oncens, "oncens", visit_oncens) &&
	    walk(&v, st->items, "items", visit_item) &&
	    walk(&v, st->ready, "ready", visit_ready) &&
	    walk(&v, st->leases, "leases", visit_lease) &&
	    walk(&v, st->claimed, "claimed", visit_claimed) &&
	    walk(&v, st->dead, "dead", visit_dead) &&
	    walk(&v, st->bindings, "bindings", visit_binding) &&
	    walk(&v, st->kv, "kv", visit_kv) &&
	    walk(&v, st->once, "once", visit_once) &&
	    walk(&v, st->idem, "idem", visit_idem) &&
	    walk(&v, st->events, "events", visit_event) &&
	    walk(&v, st->heads, "heads", visit_parked) &&
	    walk(&v, st->expiry, "expiry", visit_expiry) &&
	    walk(&v, st->tenants, "tenants", visit_tenant);
	if (walked) {
		check_queue_counts(&v);
		check_ns_counts(&v);
		check_scope_counts(&v);
		check_tenant_counts(&v);
	}
	mdb_txn_abort(v.txn);
	free(v.q);
	free(v.ns);
	free(v.sc);
	free(v.t);
	if (problems)
		*problems = v.problems;
	return walked ? E_OK : E_INTERNAL;
}
