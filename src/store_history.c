/*
 * store_history.c - item history: every state change of an item (enqueued,
 * claimed, popped, acked, released, expired, removed, dead, redriven,
 * follow_up), with its time and what the change knew: claimant, attempt,
 * the first 8 digits of the lease token, the request id, the x_
 * annotations. The queue family records each change with history_add in
 * the transaction that makes it, so an event and its change are durable
 * together.
 *
 * The layout is a log. "events" is keyed by an id that counts up (8
 * bytes, big-endian, so key order is id order), so every event is
 * appended to the rightmost page: a commit of 64 claims adds a page or
 * two of history, not 64 pages scattered over the database, which is
 * what a layout keyed by item costs (and what a durable commit pays for
 * in flush time). Ids are given in commit order, which is time order
 * (route.c times each write when it is applied), so retention is a walk
 * from the front of the log that stops at the first event not yet old.
 *
 * An item finds its events through a chain: each event names the item's
 * event before it (prev), and the item's head (struct history_head: the
 * newest event's id, the chain's length) is kept in the record the
 * change writes anyway: the item record while the item exists, then the
 * claim record once it is consumed, then, when both are gone, a record
 * of its own in "heads" (parked, with an expiry entry at the time its
 * newest event ends). The log's ids may start again from 1 once every
 * event has ended, so a chain is only followed while ids go down and each
 * event names the same item; anything else ends it. docs/storage.md has
 * the layout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define ID_BYTES	8
/* A lease token's digits an event keeps: enough to tell leases apart in
 * a history, too few to ack with. */
#define TOKEN_KEPT_HEX	8

/* The record as stored: this header, then the queue ("tenant:name"),
 * the key, the claimant, the request id and the annotations. Host byte
 * order; the schema version guards it. */
struct event_hdr {
	int64_t  at;
	uint64_t prev;		/* the item's event before this one; 0: none */
	uint32_t attempt;
	uint8_t  token[TOKEN_KEPT_HEX / 2];
	uint16_t annotations_len;
	uint16_t key_len;
	uint8_t  kind;
	uint8_t  claimant_len;
	uint8_t  request_id_len;
	uint8_t  queue_len;
	uint8_t  flags;
	uint8_t  pad[7];
};
/* docs/storage.md gives this layout. */
_Static_assert(sizeof(struct event_hdr) == 40, "history event header layout");
_Static_assert(sizeof(struct history_head) == 24, "history head layout");
#define EVENT_HAS_TOKEN	0x01
/* A head parked in "heads", with the time its expiry entry is for. */
struct parked_head {
	struct history_head head;
	int64_t  expires_at;
};
_Static_assert(sizeof(struct parked_head) == 32, "parked head layout");
_Static_assert(CLAIMANT_MAX <= UINT8_MAX && HISTORY_REQUEST_ID_MAX <= UINT8_MAX &&
    HISTORY_ANNOTATIONS_MAX <= UINT16_MAX && QUEUE_NAME_MAX <= UINT8_MAX &&
    ITEM_KEY_MAX <= UINT16_MAX, "history length fields");
#define EVENT_MAX	(sizeof(struct event_hdr) + QUEUE_NAME_MAX + ITEM_KEY_MAX + \
	CLAIMANT_MAX + HISTORY_REQUEST_ID_MAX + HISTORY_ANNOTATIONS_MAX)

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
 * Records: an event's id, header and strings
 *--------------------------------------------------------------------------*/

static MDB_val
id_key(unsigned char kb[static ID_BYTES], uint64_t id)
{
	for (int i = ID_BYTES - 1; i >= 0; i--, id >>= 8)
		kb[i] = (unsigned char)id;
	return (MDB_val){ ID_BYTES, kb };
}

/* The id of a key of the log; 0 for one that is not an id. */
static uint64_t
key_id(const MDB_val *k)
{
	const unsigned char *p = k->mv_data;
	uint64_t id = 0;

	if (k->mv_size != ID_BYTES)
		return 0;
	for (int i = 0; i < ID_BYTES; i++)
		id = id << 8 | p[i];
	return id;
}

int
history_record_decode(const MDB_val *k, const MDB_val *v, struct history_record *rec)
{
	struct event_hdr h;
	const char *p;

	memset(rec, 0, sizeof *rec);
	if ((rec->id = key_id(k)) == 0 || v->mv_size < sizeof h)
		return MDB_CORRUPTED;
	memcpy(&h, v->mv_data, sizeof h);
	/* the lengths are bounded as event_put writes them: queue, token and
	 * request id are copied into rec */
	if (v->mv_size != sizeof h + h.queue_len + h.key_len + h.claimant_len +
	    h.request_id_len + h.annotations_len || h.queue_len == 0 ||
	    h.queue_len > QUEUE_NAME_MAX || h.key_len == 0 || h.key_len > ITEM_KEY_MAX ||
	    h.claimant_len > CLAIMANT_MAX || h.request_id_len > HISTORY_REQUEST_ID_MAX ||
	    h.annotations_len > HISTORY_ANNOTATIONS_MAX || history_kind_name(h.kind) == NULL)
		return MDB_CORRUPTED;
	p = (const char *)v->mv_data + sizeof h;
	memcpy(rec->queue, p, h.queue_len);
	p += h.queue_len;
	rec->prev = h.prev;
	rec->ev = (struct history_event){ .queue = rec->queue, .key = p,
	    .key_len = h.key_len, .kind = h.kind, .at = h.at, .attempt = h.attempt,
	    .claimant = p + h.key_len, .claimant_len = h.claimant_len,
	    .annotations = p + h.key_len + h.claimant_len + h.request_id_len,
	    .annotations_len = h.annotations_len };
	if (h.request_id_len > 0) {
		memcpy(rec->request_id, p + h.key_len + h.claimant_len, h.request_id_len);
		rec->ev.request_id = rec->request_id;
	}
	if (h.flags & EVENT_HAS_TOKEN) {
		hex_encode(h.token, sizeof h.token, rec->token);
		rec->ev.token = rec->token;
	}
	return 0;
}

/* A token's hex digit (casq writes lower case) as its value. */
static unsigned
hex_digit(char c)
{
	return c >= 'a' ? (unsigned)(c - 'a' + 10) : (unsigned)(c - '0') & 0xf;
}

/* Append ev as event id, after prev, at the end of the log. */
static int
event_append(struct store *st, MDB_txn *txn, uint64_t id, uint64_t prev,
    const struct history_event *ev)
{
	size_t qlen = strlen(ev->queue), rlen = ev->request_id ? strlen(ev->request_id) : 0;
	struct part { const void *p; size_t n; } parts[] = {
		{ ev->queue, qlen }, { ev->key, ev->key_len },
		{ ev->claimant, ev->claimant_len }, { ev->request_id, rlen },
		{ ev->annotations, ev->annotations_len },
	};
	struct event_hdr h = { .at = ev->at, .prev = prev, .attempt = ev->attempt,
	    .annotations_len = (uint16_t)ev->annotations_len,
	    .key_len = (uint16_t)ev->key_len, .kind = (uint8_t)ev->kind,
	    .claimant_len = (uint8_t)ev->claimant_len,
	    .request_id_len = (uint8_t)rlen, .queue_len = (uint8_t)qlen };
	char rec[EVENT_MAX];
	unsigned char kb[ID_BYTES];
	MDB_val k = id_key(kb, id), v = { sizeof h, rec };

	if (qlen == 0 || qlen > QUEUE_NAME_MAX || ev->key_len == 0 ||
	    ev->key_len > ITEM_KEY_MAX || ev->claimant_len > CLAIMANT_MAX ||
	    rlen > HISTORY_REQUEST_ID_MAX || ev->annotations_len > HISTORY_ANNOTATIONS_MAX)
		fatal("history event too long (validated by caller)");
	if (ev->token != NULL) {
		for (size_t i = 0; i < sizeof h.token; i++)
			h.token[i] = (uint8_t)(hex_digit(ev->token[2 * i]) << 4 |
			    hex_digit(ev->token[2 * i + 1]));
		h.flags |= EVENT_HAS_TOKEN;
	}
	memcpy(rec, &h, sizeof h);
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		if (parts[i].n > 0)	/* memcpy may not be given NULL, even for 0 bytes */
			memcpy(rec + v.mv_size, parts[i].p, parts[i].n);
		v.mv_size += parts[i].n;
	}
	return mdb_put(txn, st->events, &k, &v, MDB_APPEND);
}

/* The id the next event gets: one past the log's last. */
static int
next_id(struct store *st, MDB_txn *txn, uint64_t *id)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->events, &cur)) != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND) {
		*id = 1;
		return 0;
	}
	if (rc == 0 && key_id(&k) == 0)
		rc = MDB_CORRUPTED;
	*id = rc == 0 ? key_id(&k) + 1 : 0;
	return rc;
}

/*----------------------------------------------------------------------------
 * Chains: an item's events, newest first
 *--------------------------------------------------------------------------*/

/* The item a chain is walked for. */
struct item_ref {
	const char *queue;
	const char *key;
	size_t      key_len;
};

/* Event id of the chain, decoded into rec, when it is the item's and
 * below the id it was reached from (below: the one before in the chain,
 * UINT64_MAX for the head); MDB_NOTFOUND when the chain ends there. */
static int
chain_get(struct store *st, MDB_txn *txn, const struct item_ref *it,
    uint64_t id, uint64_t below, MDB_val *v, struct history_record *rec)
{
	unsigned char kb[ID_BYTES];
	MDB_val k = id_key(kb, id);
	int rc;

	if (id == 0 || id >= below)
		return MDB_NOTFOUND;
	if ((rc = mdb_get(txn, st->events, &k, v)) != 0)
		return rc;
	if ((rc = history_record_decode(&k, v, rec)) != 0)
		return rc;
	if (strcmp(rec->queue, it->queue) != 0 || rec->ev.key_len != it->key_len ||
	    memcmp(rec->ev.key, it->key, it->key_len) != 0)
		return MDB_NOTFOUND;	/* an id given again: the item's ended */
	return 0;
}

/* The ids of the item's newest events, up to max, newest first, from
 * head; their number in *n. */
static int
chain_ids(struct store *st, MDB_txn *txn, const struct item_ref *it,
    uint64_t head, size_t max, uint64_t *ids, size_t *n)
{
	struct history_record rec;
	uint64_t id = head, below = UINT64_MAX;
	MDB_val v;
	int rc = 0;

	for (*n = 0; *n < max; below = id, id = rec.prev) {
		if ((rc = chain_get(st, txn, it, id, below, &v, &rec)) != 0)
			break;
		ids[(*n)++] = id;
	}
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Keep the item's newest HISTORY_PER_ITEM events; every one before them
 * goes. Done once the chain is HISTORY_TRIM_SLACK past the cap, so its
 * walk costs a few reads per event added, not a thousand. */
static int
chain_trim(struct store *st, MDB_txn *txn, const struct item_ref *it,
    struct history_head *head)
{
	struct history_record rec;
	uint64_t id = head->last, below = UINT64_MAX;
	unsigned char kb[ID_BYTES];
	uint32_t kept = 0;
	MDB_val v, k;
	int rc;

	while ((rc = chain_get(st, txn, it, id, below, &v, &rec)) == 0) {
		uint64_t this = id;

		below = id;
		id = rec.prev;
		if (++kept <= HISTORY_PER_ITEM)
			continue;
		k = id_key(kb, this);
		if ((rc = mdb_del(txn, st->events, &k, NULL)) != 0)
			break;
	}
	head->count = kept < HISTORY_PER_ITEM ? kept : HISTORY_PER_ITEM;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*----------------------------------------------------------------------------
 * Heads: where an item's chain starts
 *--------------------------------------------------------------------------*/

int
history_head_get(struct store *st, MDB_txn *txn, const MDB_val *ik,
    struct history_head *out)
{
	MDB_val v;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = mdb_get(txn, st->items, (MDB_val *)ik, &v)) == 0) {
		if (v.mv_size < sizeof(struct item_hdr))
			return MDB_CORRUPTED;
		memcpy(out, (const char *)v.mv_data + offsetof(struct item_hdr, history),
		    sizeof *out);
		return 0;
	}
	if (rc == MDB_NOTFOUND && (rc = mdb_get(txn, st->claimed, (MDB_val *)ik, &v)) == 0) {
		if (v.mv_size < sizeof(struct claim_hdr))
			return MDB_CORRUPTED;
		memcpy(out, (const char *)v.mv_data + offsetof(struct claim_hdr, history),
		    sizeof *out);
		return 0;
	}
	if (rc == MDB_NOTFOUND) {
		struct parked_head p;

		if ((rc = store_record_get(txn, st->heads, ik, &p, sizeof p, NULL)) == 0)
			*out = p.head;
	}
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
park(struct store *st, MDB_txn *txn, const MDB_val *ik, const struct history_head *head)
{
	struct parked_head p = { *head, head->last_at + st->history_ttl_ms };
	MDB_val v = { sizeof p, &p };
	int rc;

	if ((rc = mdb_put(txn, st->heads, (MDB_val *)ik, &v, 0)) != 0)
		return rc;
	return expiry_put(st, txn, p.expires_at, EXPIRY_HISTORY, ik->mv_data, ik->mv_size);
}

int
history_head_park(struct store *st, MDB_txn *txn, const MDB_val *ik,
    const struct history_head *head)
{
	return head->last == 0 ? 0 : park(st, txn, ik, head);
}

/* ref is a parked head's key: it goes once its newest event has ended;
 * one parked again since has its own, later entry. */
int
history_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
    size_t reflen)
{
	struct store_key ik;
	struct parked_head p;
	int rc;

	if (!store_key_from_ref(&ik, ref, reflen))
		return 0;	/* not one of ours: dropped */
	rc = store_record_get(txn, st->heads, &ik.val, &p, sizeof p, NULL);
	if (rc != 0 || p.expires_at != due)
		return rc == MDB_NOTFOUND ? 0 : rc;	/* gone, or parked again */
	if (p.head.last_at + st->history_ttl_ms > due)	/* --history-days grew */
		return park(st, txn, &ik.val, &p.head);
	return mdb_del(txn, st->heads, &ik.val, NULL);
}

/*----------------------------------------------------------------------------
 * The API (store.h)
 *--------------------------------------------------------------------------*/

int
history_add(struct store *st, MDB_txn *txn, const struct history_event *ev,
    struct history_head *head)
{
	struct item_ref it = { ev->queue, ev->key, ev->key_len };
	uint64_t id;
	int rc;

	if ((rc = next_id(st, txn, &id)) != 0)
		return rc;
	if (head->last >= id)	/* the log started again: the chain has ended */
		*head = (struct history_head){ 0 };
	if ((rc = event_append(st, txn, id, head->last, ev)) != 0)
		return rc;
	head->last = id;
	head->last_at = ev->at;
	if (++head->count <= HISTORY_PER_ITEM + HISTORY_TRIM_SLACK)
		return 0;
	return chain_trim(st, txn, &it, head);
}

/* The queue's head of key, after checking the queue exists. */
static enum casq_err
item_head(struct store *st, MDB_txn *txn, const char *queue, const char *key,
    struct history_head *head)
{
	struct store_key ik;
	MDB_val qk = { strlen(queue), (void *)queue }, v;
	int rc = mdb_get(txn, st->queues, &qk, &v);

	if (rc == MDB_NOTFOUND)
		return E_NO_QUEUE;
	store_key_make(&ik, queue, key, strlen(key));
	if (rc == 0)
		rc = history_head_get(st, txn, &ik.val, head);
	return rc == 0 ? E_OK : store_map_error(rc, "history: read head");
}

/* Visit the events ids[n-1] .. ids[0] (oldest first). */
static int
ids_visit(struct store *st, MDB_txn *txn, const uint64_t *ids, size_t n,
    history_visit_fn fn, void *ctx)
{
	struct history_record rec;
	unsigned char kb[ID_BYTES];
	MDB_val k, v;
	int rc = 0;

	while (n-- > 0 && rc == 0) {
		k = id_key(kb, ids[n]);
		if ((rc = mdb_get(txn, st->events, &k, &v)) == 0 &&
		    (rc = history_record_decode(&k, &v, &rec)) == 0)
			fn(ctx, &rec.ev);
	}
	return rc;
}

enum casq_err
history_list(struct store *st, MDB_txn *txn, const char *queue,
    const char *key, size_t limit, history_visit_fn fn, void *ctx)
{
	struct item_ref it = { queue, key, strlen(key) };
	struct history_head head;
	uint64_t *ids;
	size_t n;
	enum casq_err err = item_head(st, txn, queue, key, &head);
	int rc;

	if (err != E_OK || head.last == 0 || limit == 0)
		return err;
	ids = xmalloc(limit * sizeof *ids);
	rc = chain_ids(st, txn, &it, head.last, limit, ids, &n);
	if (rc == 0)
		rc = ids_visit(st, txn, ids, n, fn, ctx);
	free(ids);
	return rc == 0 ? E_OK : store_map_error(rc, "history: list");
}

/* Events of several queues, collected to be put in time order. */
struct collected_event {
	int64_t  at;
	uint64_t id;
};
struct collected {
	struct collected_event *ev;
	size_t n;
	uint64_t *ids;		/* one chain's, newest first */
};

/* Time order; equal times in id order (which is commit order). */
static int
collected_cmp(const void *a, const void *b)
{
	const struct collected_event *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Keep only the newest limit events collected, in time order. */
static void
collected_keep_newest(struct collected *c, size_t limit)
{
	size_t from = c->n > limit ? c->n - limit : 0;

	qsort(c->ev, c->n, sizeof *c->ev, collected_cmp);
	memmove(c->ev, c->ev + from, (c->n - from) * sizeof *c->ev);
	c->n -= from;
}

/* Add the newest limit events of key in queue to c. */
static int
collect_queue(struct store *st, MDB_txn *txn, const char *queue, const char *key,
    size_t limit, struct collected *c)
{
	struct item_ref it = { queue, key, strlen(key) };
	struct store_key ik;
	struct history_head head;
	size_t n;
	int rc;

	store_key_make(&ik, queue, key, strlen(key));
	if ((rc = history_head_get(st, txn, &ik.val, &head)) != 0 || head.last == 0 ||
	    (rc = chain_ids(st, txn, &it, head.last, limit, c->ids, &n)) != 0)
		return rc;
	c->ev = xrealloc(c->ev, (c->n + n) * sizeof *c->ev);
	for (size_t i = 0; i < n; i++) {
		unsigned char kb[ID_BYTES];
		MDB_val k = id_key(kb, c->ids[i]), v;
		struct event_hdr h;

		if ((rc = mdb_get(txn, st->events, &k, &v)) != 0)
			return rc;
		memcpy(&h, v.mv_data, sizeof h);	/* chain_ids decoded it */
		c->ev[c->n++] = (struct collected_event){ h.at, c->ids[i] };
	}
	return 0;
}

/* Each of the tenant's queues: "tenant:" is the prefix of their names. */
static int
collect_key(struct store *st, MDB_txn *txn, const char *tenant, const char *key,
    size_t limit, struct collected *c)
{
	char prefix[TENANT_NAME_MAX + 2], queue[QUEUE_NAME_MAX + 1];
	size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%s:", tenant);
	MDB_cursor *cur;
	MDB_val k = { plen, prefix }, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->queues, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	    rc == 0 && k.mv_size > plen && memcmp(k.mv_data, prefix, plen) == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size > QUEUE_NAME_MAX) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(queue, k.mv_data, k.mv_size);
		queue[k.mv_size] = '\0';
		if ((rc = collect_queue(st, txn, queue, key, limit, c)) != 0)
			break;
		if (c->n >= 2 * limit)	/* a key in many queues: bounded memory */
			collected_keep_newest(c, limit);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

enum casq_err
history_list_key(struct store *st, MDB_txn *txn, const char *tenant,
    const char *key, size_t limit, history_visit_fn fn, void *ctx)
{
	struct collected c = { 0 };
	int rc = 0;

	if (limit == 0)
		return E_OK;
	c.ids = xmalloc(limit * sizeof *c.ids);
	rc = collect_key(st, txn, tenant, key, limit, &c);
	if (rc == 0 && c.n > 0) {
		collected_keep_newest(&c, limit);
		for (size_t i = 0; i < c.n; i++)	/* ids_visit goes backwards */
			c.ids[c.n - 1 - i] = c.ev[i].id;
		rc = ids_visit(st, txn, c.ids, c.n, fn, ctx);
	}
	free(c.ids);
	free(c.ev);
	return rc == 0 ? E_OK : store_map_error(rc, "history: list key");
}

bool
history_last_of(struct store *st, MDB_txn *txn, const char *queue,
    const char *key, const enum history_kind *kinds, size_t nkinds,
    int64_t *at)
{
	struct item_ref it = { queue, key, strlen(key) };
	struct history_record rec;
	struct history_head head;
	struct store_key ik;
	uint64_t id, below = UINT64_MAX;
	MDB_val v;

	store_key_make(&ik, queue, key, strlen(key));
	if (history_head_get(st, txn, &ik.val, &head) != 0)
		return false;
	for (id = head.last; chain_get(st, txn, &it, id, below, &v, &rec) == 0;
	    below = id, id = rec.prev)
		for (size_t i = 0; i < nkinds; i++)
			if (rec.ev.kind == kinds[i]) {
				*at = rec.ev.at;
				return true;
			}
	return false;
}

/*----------------------------------------------------------------------------
 * Retention: the front of the log
 *--------------------------------------------------------------------------*/

/* Whether the event at the cursor has been kept --history-days. */
static bool
event_ended(struct store *st, const MDB_val *v, int64_t now)
{
	int64_t at;

	if (v->mv_size < sizeof at)
		return true;	/* not an event: casq-verify reports it; it goes */
	memcpy(&at, v->mv_data, sizeof at);
	return at + st->history_ttl_ms <= now;
}

bool
history_due(struct store *st, MDB_txn *txn, int64_t now)
{
	MDB_cursor *cur;
	MDB_val k, v;
	bool due = false;

	if (mdb_cursor_open(txn, st->events, &cur) == 0) {
		due = mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 &&
		    event_ended(st, &v, now);
		mdb_cursor_close(cur);
	}
	return due;
}

int
history_expire(struct store *st, MDB_txn *txn, int64_t now, int limit,
    unsigned *removed)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->events, &cur)) != 0)
		return rc;
	while (limit-- > 0 && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 &&
	    event_ended(st, &v, now)) {
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		(*removed)++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}
