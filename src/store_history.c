/*
 * store_history.c - item history: every state change of an item (enqueued,
 * claimed, popped, acked, released, expired, removed, and part B's dead,
 * redriven, follow_up), with its time and what the change knew: claimant,
 * attempt, the first 8 digits of the lease token, the request id, the x_
 * annotations. The queue family records each change with history_add in
 * the transaction that makes it, so an event and its change are durable
 * together.
 *
 * A record's key is "tenant:<key length>/key/queue/<seq:16 hex>": the
 * length makes "tenant:4/1234/" the prefix of key 1234's events and of no
 * other key's (a key may contain '/'), so "everything casq did with lead
 * 1234" is one range, the queues' histories one after the other in it;
 * within an item, seq counts up from its first event, so its events are
 * contiguous in the order they were committed (which is their time order:
 * route.c times each write when it is applied). Events leave only from
 * the front of an item's range (the per-item cap, expiry), so an item's
 * seqs are always one unbroken run: the cap needs no counter, only the
 * item's last seq, one cursor step from where the event goes anyway.
 *
 * Expiry: one entry per item, at the time its oldest event ends; when it
 * is due the hook deletes the events that have ended and puts the entry
 * of the next oldest. docs/storage.md has the layout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define SEQ_HEX		16
/* "tenant:" "<len>/" key "/" name "/" <seq>: a queue's two parts are at
 * most QUEUE_NAME_MAX with their ':' (one more for a name without one) */
#define HISTORY_KEY_MAX	(QUEUE_NAME_MAX + 1 + 3 + 1 + ITEM_KEY_MAX + 1 + 1 + SEQ_HEX)
_Static_assert(HISTORY_KEY_MAX <= 511, "history keys fit LMDB's key limit");
/* A lease token's digits an event keeps: enough to tell leases apart in
 * a history, too few to ack with. */
#define TOKEN_KEPT_HEX	8

/* The record as stored: this header, then the claimant, the request id
 * and the annotations. Host byte order; the schema version guards it. */
struct history_hdr {
	int64_t  at;
	int64_t  expires_at;
	uint32_t attempt;
	uint8_t  token[TOKEN_KEPT_HEX / 2];
	uint16_t annotations_len;
	uint8_t  kind;
	uint8_t  claimant_len;
	uint8_t  request_id_len;
	uint8_t  flags;
	uint8_t  pad[2];
};
/* docs/storage.md gives this layout. */
_Static_assert(sizeof(struct history_hdr) == 32, "history header layout");
#define HISTORY_HAS_TOKEN	0x01
_Static_assert(CLAIMANT_MAX <= UINT8_MAX && HISTORY_REQUEST_ID_MAX <= UINT8_MAX &&
    HISTORY_ANNOTATIONS_MAX <= UINT16_MAX, "history length fields");

const char *
history_kind_name(enum history_kind kind)
{
	static const char *const names[HISTORY__END] = {
		[HISTORY_ENQUEUED] = "enqueued", [HISTORY_CLAIMED] = "claimed",
		[HISTORY_POPPED] = "popped", [HISTORY_ACKED] = "acked",
		[HISTORY_RELEASED] = "released", [HISTORY_EXPIRED] = "expired",
		[HISTORY_REMOVED] = "removed", [HISTORY_DEAD] = "dead",
		[HISTORY_REDRIVEN] = "redriven", [HISTORY_FOLLOW_UP] = "follow_up",
	};

	return (unsigned)kind < HISTORY__END ? names[kind] : NULL;
}

/*----------------------------------------------------------------------------
 * Keys: a key's range, an item's range, an event
 *--------------------------------------------------------------------------*/

/* "tenant:<len>/key/": every event of key in the tenant's queues. */
static size_t
key_prefix(char out[static HISTORY_KEY_MAX + 1], const char *tenant,
    size_t tenant_len, const char *key, size_t key_len)
{
	int n = snprintf(out, HISTORY_KEY_MAX + 1, "%.*s:%zu/%.*s/", (int)tenant_len,
	    tenant, key_len, (int)key_len, key);

	if (n < 0 || n > HISTORY_KEY_MAX - SEQ_HEX)
		fatal("history key too long (validated by caller)");
	return (size_t)n;
}

/* "tenant:<len>/key/name/": one item's events; queue is "tenant:name"
 * (a name without a tenant, as tools and tests may use, is stored as
 * the tenant "" 's). */
static size_t
item_prefix(char out[static HISTORY_KEY_MAX + 1], const char *queue,
    const char *key, size_t key_len)
{
	const char *colon = strchr(queue, ':');
	const char *name = colon ? colon + 1 : queue;
	size_t n = key_prefix(out, queue, colon ? (size_t)(colon - queue) : 0, key, key_len);
	size_t name_len = strlen(name);

	if (n + name_len + 1 > HISTORY_KEY_MAX - SEQ_HEX)
		fatal("history key too long (validated by caller)");
	memcpy(out + n, name, name_len);
	out[n + name_len] = '/';
	return n + name_len + 1;
}

/* Append an event's seq to the item prefix in kb[0..plen). */
static MDB_val
event_key(char kb[static HISTORY_KEY_MAX + 1], size_t plen, uint64_t seq)
{
	snprintf(kb + plen, HISTORY_KEY_MAX + 1 - plen, "%016llx", (unsigned long long)seq);
	return (MDB_val){ plen + SEQ_HEX, kb };
}

/* True when k is an event of the item (or key) range prefix[0..plen). */
static bool
in_range(const MDB_val *k, const char *prefix, size_t plen)
{
	return k->mv_size > plen && memcmp(k->mv_data, prefix, plen) == 0;
}

static uint64_t
key_seq(const MDB_val *k)
{
	char hex[SEQ_HEX + 1];

	memcpy(hex, (const char *)k->mv_data + k->mv_size - SEQ_HEX, SEQ_HEX);
	hex[SEQ_HEX] = '\0';
	return strtoull(hex, NULL, 16);
}

/*----------------------------------------------------------------------------
 * Records: one event's header and strings
 *--------------------------------------------------------------------------*/

/* An event as read back: ev's strings point into the key and the value,
 * but for those that need a NUL, copied out. */
struct decoded {
	struct history_event ev;
	char queue[QUEUE_NAME_MAX + 1];
	char token[TOKEN_KEPT_HEX + 1];
	char request_id[HISTORY_REQUEST_ID_MAX + 1];
};

/* The key's length from "<digits>/" at p, before end; NULL past it or
 * when it is not one (then *len is untouched). */
static const char *
key_len_parse(const char *p, const char *end, size_t *len)
{
	size_t n = 0;
	const char *q;

	for (q = p; q < end && *q >= '0' && *q <= '9' && q - p < 4; q++)
		n = n * 10 + (size_t)(*q - '0');
	if (q == p || q >= end || *q != '/' || n == 0 || n > ITEM_KEY_MAX)
		return NULL;
	*len = n;
	return q + 1;
}

static int
event_decode(const MDB_val *k, const MDB_val *v, struct decoded *d)
{
	const char *p = k->mv_data, *end = p + k->mv_size - SEQ_HEX - 1;
	const char *colon, *key, *name, *tail;
	struct history_hdr h;
	size_t klen, tlen;

	memset(d, 0, sizeof *d);
	if (k->mv_size < SEQ_HEX + 7 || v->mv_size < sizeof h || *end != '/' ||
	    (colon = memchr(p, ':', (size_t)(end - p))) == NULL ||
	    (key = key_len_parse(colon + 1, end, &klen)) == NULL ||
	    (size_t)(end - key) <= klen + 1 || key[klen] != '/')
		return MDB_CORRUPTED;
	name = key + klen + 1;
	tlen = (size_t)(colon - p);
	if (tlen + (tlen > 0) + (size_t)(end - name) > QUEUE_NAME_MAX)
		return MDB_CORRUPTED;
	memcpy(&h, v->mv_data, sizeof h);
	/* the lengths are bounded as event_put writes them: the request id
	 * is copied into d->request_id */
	if (v->mv_size != sizeof h + h.claimant_len + h.request_id_len + h.annotations_len ||
	    h.claimant_len > CLAIMANT_MAX || h.request_id_len > HISTORY_REQUEST_ID_MAX ||
	    h.annotations_len > HISTORY_ANNOTATIONS_MAX || history_kind_name(h.kind) == NULL)
		return MDB_CORRUPTED;
	snprintf(d->queue, sizeof d->queue, "%.*s%s%.*s", (int)tlen, p,
	    tlen ? ":" : "", (int)(end - name), name);
	tail = (const char *)v->mv_data + sizeof h;
	d->ev = (struct history_event){ .queue = d->queue, .key = key,
	    .key_len = klen, .kind = h.kind, .at = h.at, .attempt = h.attempt,
	    .claimant = tail, .claimant_len = h.claimant_len,
	    .annotations = tail + h.claimant_len + h.request_id_len,
	    .annotations_len = h.annotations_len };
	if (h.request_id_len > 0) {
		memcpy(d->request_id, tail + h.claimant_len, h.request_id_len);
		d->ev.request_id = d->request_id;
	}
	if (h.flags & HISTORY_HAS_TOKEN) {
		hex_encode(h.token, sizeof h.token, d->token);
		d->ev.token = d->token;
	}
	return 0;
}

/* Decode and hand one event to fn. */
static int
event_visit(const MDB_val *k, const MDB_val *v, history_visit_fn fn, void *ctx)
{
	struct decoded d;
	int rc = event_decode(k, v, &d);

	if (rc == 0)
		fn(ctx, &d.ev);
	return rc;
}

static int64_t
record_expires_at(const MDB_val *v)
{
	struct history_hdr h;

	if (v->mv_size < sizeof h)
		return 0;
	memcpy(&h, v->mv_data, sizeof h);
	return h.expires_at;
}

/* A token's hex digit (casq writes lower case) as its value. */
static unsigned
hex_digit(char c)
{
	return c >= 'a' ? (unsigned)(c - 'a' + 10) : (unsigned)(c - '0') & 0xf;
}

static int
event_put(struct store *st, MDB_txn *txn, MDB_val *k,
    const struct history_event *ev, int64_t expires_at)
{
	size_t rlen = ev->request_id ? strlen(ev->request_id) : 0;
	struct history_hdr h = { .at = ev->at, .expires_at = expires_at,
	    .attempt = ev->attempt, .annotations_len = (uint16_t)ev->annotations_len,
	    .kind = (uint8_t)ev->kind, .claimant_len = (uint8_t)ev->claimant_len,
	    .request_id_len = (uint8_t)rlen };
	char rec[sizeof h + CLAIMANT_MAX + HISTORY_REQUEST_ID_MAX + HISTORY_ANNOTATIONS_MAX];
	MDB_val v = { sizeof h + ev->claimant_len + rlen + ev->annotations_len, rec };

	if (ev->claimant_len > CLAIMANT_MAX || rlen > HISTORY_REQUEST_ID_MAX ||
	    ev->annotations_len > HISTORY_ANNOTATIONS_MAX)
		fatal("history event too long (validated by caller)");
	if (ev->token != NULL) {
		for (size_t i = 0; i < sizeof h.token; i++)
			h.token[i] = (uint8_t)(hex_digit(ev->token[2 * i]) << 4 |
			    hex_digit(ev->token[2 * i + 1]));
		h.flags |= HISTORY_HAS_TOKEN;
	}
	memcpy(rec, &h, sizeof h);
	/* memcpy may not be given NULL, even for 0 bytes */
	if (ev->claimant_len > 0)
		memcpy(rec + sizeof h, ev->claimant, ev->claimant_len);
	if (rlen > 0)
		memcpy(rec + sizeof h + ev->claimant_len, ev->request_id, rlen);
	if (ev->annotations_len > 0)
		memcpy(rec + sizeof h + ev->claimant_len + rlen, ev->annotations, ev->annotations_len);
	return mdb_put(txn, st->history, k, &v, 0);
}

/*----------------------------------------------------------------------------
 * Ranges: an item's last event, its oldest leaving
 *--------------------------------------------------------------------------*/

/* Put cur on the last event of the item range kb[0..plen); MDB_NOTFOUND
 * when it has none. kb is left as it was. */
static int
range_last(MDB_cursor *cur, char kb[static HISTORY_KEY_MAX + 1], size_t plen,
    MDB_val *k, MDB_val *v)
{
	int rc;

	kb[plen] = 'g';		/* after every hex digit: past the range */
	*k = (MDB_val){ plen + 1, kb };
	rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	if (rc == 0)
		rc = mdb_cursor_get(cur, k, v, MDB_PREV);
	else if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(cur, k, v, MDB_LAST);
	if (rc == 0 && !in_range(k, kb, plen))
		rc = MDB_NOTFOUND;
	return rc;
}

/* The item's oldest event is now seq: give it the range's expiry entry. */
static int
oldest_entry_put(struct store *st, MDB_txn *txn, char kb[static HISTORY_KEY_MAX + 1],
    size_t plen, uint64_t seq)
{
	MDB_val k = event_key(kb, plen, seq), v;
	int rc = mdb_get(txn, st->history, &k, &v);

	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	return expiry_put(st, txn, record_expires_at(&v), EXPIRY_HISTORY, kb, plen);
}

/* Keep at most HISTORY_PER_ITEM events: the item's seqs are one run up
 * to seq (the event just added), so it is over the cap exactly when the
 * event seq - HISTORY_PER_ITEM is still there. */
static int
trim(struct store *st, MDB_txn *txn, char kb[static HISTORY_KEY_MAX + 1],
    size_t plen, uint64_t seq)
{
	MDB_val k;
	int rc;

	if (seq <= HISTORY_PER_ITEM)
		return 0;
	k = event_key(kb, plen, seq - HISTORY_PER_ITEM);
	rc = mdb_del(txn, st->history, &k, NULL);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	return oldest_entry_put(st, txn, kb, plen, seq - HISTORY_PER_ITEM + 1);
}

/*----------------------------------------------------------------------------
 * The API (store.h)
 *--------------------------------------------------------------------------*/

int
history_add(struct store *st, MDB_txn *txn, const struct history_event *ev)
{
	char kb[HISTORY_KEY_MAX + 1];
	size_t plen = item_prefix(kb, ev->queue, ev->key, ev->key_len);
	int64_t expires_at = ev->at + st->history_ttl_ms;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t seq = 1;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->history, &cur)) != 0)
		return rc;
	rc = range_last(cur, kb, plen, &k, &v);
	if (rc == 0)
		seq = key_seq(&k) + 1;
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	k = event_key(kb, plen, seq);
	if ((rc = event_put(st, txn, &k, ev, expires_at)) != 0)
		return rc;
	if (seq == 1)		/* the item's first event: the range's entry */
		return expiry_put(st, txn, expires_at, EXPIRY_HISTORY, kb, plen);
	return trim(st, txn, kb, plen, seq);
}

/* The first seq of the last limit events of the range whose last is
 * last (seqs are one run). */
static uint64_t
window_start(uint64_t last, size_t limit)
{
	return last >= limit ? last - limit + 1 : 1;
}

/* Visit the item range kb[0..plen) from seq on, to its end. */
static int
range_visit_from(MDB_cursor *cur, char kb[static HISTORY_KEY_MAX + 1],
    size_t plen, uint64_t seq, history_visit_fn fn, void *ctx)
{
	MDB_val k = event_key(kb, plen, seq), v;
	int rc;

	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	    rc == 0 && in_range(&k, kb, plen);
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if ((rc = event_visit(&k, &v, fn, ctx)) != 0)
			return rc;
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

enum casq_err
history_list(struct store *st, MDB_txn *txn, const char *queue,
    const char *key, size_t limit, history_visit_fn fn, void *ctx)
{
	char kb[HISTORY_KEY_MAX + 1];
	size_t plen = item_prefix(kb, queue, key, strlen(key));
	MDB_val qk = { strlen(queue), (void *)queue }, k, v;
	MDB_cursor *cur;
	int rc;

	rc = mdb_get(txn, st->queues, &qk, &v);
	if (rc == MDB_NOTFOUND)
		return E_NO_QUEUE;
	if (rc != 0 || (rc = mdb_cursor_open(txn, st->history, &cur)) != 0)
		return store_map_error(rc, "history: read queue");
	rc = range_last(cur, kb, plen, &k, &v);
	if (rc == 0)
		rc = range_visit_from(cur, kb, plen, window_start(key_seq(&k), limit), fn, ctx);
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? E_OK : store_map_error(rc, "history: list");
}

/* The events of every queue's range, collected to be put in time order:
 * copies of each key and value, back to back in bytes. */
struct collected_event {
	size_t  off, klen, vlen;
	int64_t at;
};
struct collected {
	struct buf bytes;
	struct collected_event *ev;
	size_t n;
};

static int
collect_range(MDB_cursor *cur, char kb[static HISTORY_KEY_MAX + 1], size_t plen,
    size_t limit, struct collected *c)
{
	MDB_val k, v;
	int rc = range_last(cur, kb, plen, &k, &v);

	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	k = event_key(kb, plen, window_start(key_seq(&k), limit));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	    rc == 0 && in_range(&k, kb, plen);
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct history_hdr h;

		if (v.mv_size < sizeof h)
			return MDB_CORRUPTED;
		memcpy(&h, v.mv_data, sizeof h);
		c->ev = xrealloc(c->ev, (c->n + 1) * sizeof *c->ev);
		c->ev[c->n].off = c->bytes.len;
		c->ev[c->n].klen = k.mv_size;
		c->ev[c->n].vlen = v.mv_size;
		c->ev[c->n].at = h.at;
		c->n++;
		buf_append(&c->bytes, k.mv_data, k.mv_size);
		buf_append(&c->bytes, v.mv_data, v.mv_size);
	}
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Time order; equal times keep the order collected (queue, then seq). */
static int
collected_cmp(const void *a, const void *b)
{
	const struct collected_event *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Keep only the newest limit events collected, in time order (ties in
 * collection order: the kept ones are copied in that order), so that a
 * key in many queues holds at most about twice limit events, not limit
 * per queue. */
static void
collected_keep_newest(struct collected *c, size_t limit)
{
	size_t from = c->n > limit ? c->n - limit : 0;
	struct buf kept = { 0 };

	qsort(c->ev, c->n, sizeof *c->ev, collected_cmp);
	for (size_t i = from; i < c->n; i++) {
		struct collected_event e = c->ev[i];

		c->ev[i - from] = (struct collected_event){ .off = kept.len,
		    .klen = e.klen, .vlen = e.vlen, .at = e.at };
		buf_append(&kept, c->bytes.data + e.off, e.klen + e.vlen);
	}
	c->n -= from;
	buf_free(&c->bytes);
	c->bytes = kept;
}

/* Each queue's range in key, one after the other: its name runs to the
 * next '/'. The next queue's range starts at or after "name0" ('0' is
 * the byte after '/'). */
static int
collect_key(MDB_cursor *cur, char kb[static HISTORY_KEY_MAX + 1], size_t kplen,
    size_t limit, struct collected *c)
{
	MDB_val k = { kplen, kb }, v;
	int rc;

	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	    rc == 0 && in_range(&k, kb, kplen);
	    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) {
		const char *name = (const char *)k.mv_data + kplen;
		const char *slash = memchr(name, '/', k.mv_size - kplen);
		size_t nlen = slash ? (size_t)(slash - name) : 0;

		if (nlen == 0 || nlen > 64)
			return MDB_CORRUPTED;
		memmove(kb + kplen, name, nlen);
		kb[kplen + nlen] = '/';
		if ((rc = collect_range(cur, kb, kplen + nlen + 1, limit, c)) != 0)
			return rc;
		if (c->n >= 2 * limit)
			collected_keep_newest(c, limit);
		kb[kplen + nlen] = '0';
		k = (MDB_val){ kplen + nlen + 1, kb };
	}
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

enum casq_err
history_list_key(struct store *st, MDB_txn *txn, const char *tenant,
    const char *key, size_t limit, history_visit_fn fn, void *ctx)
{
	char kb[HISTORY_KEY_MAX + 1];
	size_t kplen = key_prefix(kb, tenant, strlen(tenant), key, strlen(key));
	struct collected c = { 0 };
	MDB_cursor *cur;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->history, &cur)) != 0)
		return store_map_error(rc, "history: list key");
	rc = collect_key(cur, kb, kplen, limit, &c);
	mdb_cursor_close(cur);
	if (rc == 0 && c.n > 0) {
		collected_keep_newest(&c, limit);
		for (size_t i = 0; i < c.n && rc == 0; i++) {
			MDB_val k = { c.ev[i].klen, c.bytes.data + c.ev[i].off };
			MDB_val v = { c.ev[i].vlen, c.bytes.data + c.ev[i].off + c.ev[i].klen };

			rc = event_visit(&k, &v, fn, ctx);
		}
	}
	buf_free(&c.bytes);
	free(c.ev);
	return rc == 0 ? E_OK : store_map_error(rc, "history: list key");
}

bool
history_last_of(struct store *st, MDB_txn *txn, const char *queue,
    const char *key, const enum history_kind *kinds, size_t nkinds,
    int64_t *at)
{
	char kb[HISTORY_KEY_MAX + 1];
	size_t plen = item_prefix(kb, queue, key, strlen(key));
	MDB_cursor *cur;
	MDB_val k, v;
	bool found = false;
	int rc;

	if (mdb_cursor_open(txn, st->history, &cur) != 0)
		return false;
	for (rc = range_last(cur, kb, plen, &k, &v); rc == 0 && !found &&
	    in_range(&k, kb, plen); rc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
		struct history_hdr h;

		if (v.mv_size < sizeof h)
			break;
		memcpy(&h, v.mv_data, sizeof h);
		for (size_t i = 0; i < nkinds && !found; i++)
			if (h.kind == kinds[i]) {
				*at = h.at;
				found = true;
			}
	}
	mdb_cursor_close(cur);
	return found;
}

/*----------------------------------------------------------------------------
 * Expiry hook (store_expiry.c's table): an item's oldest events ended
 *--------------------------------------------------------------------------*/

/* ref is the item's range. Every event that has ended by due goes (a
 * shorter --history-days since may have ended several at once); the
 * oldest one left gets the range's entry. An entry made stale by the
 * cap (its event trimmed, the next oldest given an entry of its own)
 * finds nothing ended and does nothing. */
int
history_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
    size_t reflen)
{
	char kb[HISTORY_KEY_MAX + 1];
	MDB_cursor *cur;
	MDB_val k, v;
	bool removed = false;
	int rc;

	if (reflen == 0 || reflen > HISTORY_KEY_MAX - SEQ_HEX || ref[reflen - 1] != '/')
		return 0;	/* not one of ours: dropped */
	memcpy(kb, ref, reflen);
	if ((rc = mdb_cursor_open(txn, st->history, &cur)) != 0)
		return rc;
	for (;;) {
		k = (MDB_val){ reflen, kb };
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc != 0 || !in_range(&k, kb, reflen))
			break;
		if (record_expires_at(&v) > due) {
			if (removed)
				rc = expiry_put(st, txn, record_expires_at(&v),
				    EXPIRY_HISTORY, kb, reflen);
			break;
		}
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		removed = true;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}
