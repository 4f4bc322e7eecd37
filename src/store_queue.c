/*
 * store_queue.c - claimable queues.
 *
 * An item lives in "items" under queue/key while it is ready or leased.
 * A ready item also has an entry in "ready" ordered by (ready_at, seq), so
 * the next item to pop is the first key with the queue's prefix; a leased
 * item has an entry in "leases" ordered by expiry, so expired leases are
 * found without a scan. Per-queue counters live in "queues". When an item
 * is consumed, "claimed" remembers who took it for CLAIM_RECORD_TTL_MS.
 * Every request is O(log n) in the number of items.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Expired leases turned back into ready items per claim: bounded so a
 * claim never does unbounded work; leftovers go on the next claim. */
#define LEASE_EXPIRY_BATCH	64
/* "queue/" + 16 hex + "/" + 16 hex */
#define INDEX_KEY_MAX		(QUEUE_NAME_MAX + 1 + 16 + 1 + 16)

/* The item record as stored: this header, then the claimant, then the
 * payload JSON. Host byte order; the schema version guards the layout. */
struct item_hdr {
	uint8_t  state;
	uint8_t  pad;
	uint16_t claimant_len;
	uint32_t attempts;
	uint64_t seq;
	int64_t  enqueued_at, ready_at, lease_until;
	uint32_t payload_len;
	char     token[TOKEN_HEX_LEN];
};
/* docs/storage.md gives this layout, tail padding included. */
_Static_assert(sizeof(struct item_hdr) == 80, "item header layout");

struct item {
	struct item_hdr h;
	const char     *claimant;	/* points into the LMDB value */
	const char     *payload;
};

/* A claim record: when, then the owner's name. */
struct claim_hdr {
	int64_t  claimed_at;
	uint32_t attempts;	/* claims the item had, this one included */
	uint16_t owner_len;
};

/* An item's key, "queue/key" (store.c's store_key). */
#define item_key	store_key

const char *
item_state_name(enum item_state s)
{
	static const char *const names[] = { "absent", "ready", "leased", "claimed" };

	return names[s];
}

bool
queue_op_writes(const struct queue_op *op)
{
	return op->kind != QOP_STATUS && op->kind != QOP_STATS;
}

void
queue_result_free(struct queue_result *res)
{
	buf_free(&res->payload);
}

static void
item_key_make(struct item_key *ik, const char *queue, const char *key)
{
	store_key_make(ik, queue, key, strlen(key));
}

/* v as 16 lowercase hex digits, as "%016llx" would write them. */
static void
hex16(char *out, uint64_t v)
{
	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = "0123456789abcdef"[v & 0xf];
}

/* "queue/<when>/<seq>" for the ready and leases indexes; by hand, not
 * snprintf: every enqueue, claim and ack makes one or two. */
static size_t
index_key_make(char out[static INDEX_KEY_MAX + 1], const char *queue,
    int64_t when, uint64_t seq)
{
	size_t q = strlen(queue);

	if (q > QUEUE_NAME_MAX)
		fatal("queue name too long (validated by caller)");
	memcpy(out, queue, q);
	out[q] = '/';
	hex16(out + q + 1, (uint64_t)when);
	out[q + 17] = '/';
	hex16(out + q + 18, seq);
	out[q + 34] = '\0';
	return q + 34;
}

static int64_t
index_key_when(const MDB_val *k, size_t queue_len)
{
	char hex[17];

	memcpy(hex, (char *)k->mv_data + queue_len + 1, 16);
	hex[16] = '\0';
	return (int64_t)strtoull(hex, NULL, 16);
}

static int
index_put(MDB_txn *txn, MDB_dbi dbi, const char *queue, int64_t when,
    uint64_t seq, const char *key)
{
	char kb[INDEX_KEY_MAX + 1];
	MDB_val k = { index_key_make(kb, queue, when, seq), kb };
	MDB_val v = { strlen(key), (void *)key };

	return mdb_put(txn, dbi, &k, &v, 0);
}

static int
index_del(MDB_txn *txn, MDB_dbi dbi, const char *queue, int64_t when,
    uint64_t seq)
{
	char kb[INDEX_KEY_MAX + 1];
	MDB_val k = { index_key_make(kb, queue, when, seq), kb };

	return mdb_del(txn, dbi, &k, NULL);
}

/*----------------------------------------------------------------------------
 * Records: an item, the queue's counters, a claim record; one read or
 * write each
 *--------------------------------------------------------------------------*/

/* An item record, read in place: header, claimant, payload. */
static int
item_decode(const MDB_val *v, struct item *it)
{
	if (v->mv_size < sizeof it->h)
		return MDB_CORRUPTED;
	memcpy(&it->h, v->mv_data, sizeof it->h);
	if (v->mv_size - sizeof it->h != (size_t)it->h.claimant_len + it->h.payload_len)
		return MDB_CORRUPTED;
	it->claimant = (const char *)v->mv_data + sizeof it->h;
	it->payload = it->claimant + it->h.claimant_len;
	return 0;
}

static int
item_get(struct store *st, MDB_txn *txn, const struct item_key *ik,
    struct item *it)
{
	MDB_val v;
	int rc = mdb_get(txn, st->items, (MDB_val *)&ik->val, &v);

	return rc != 0 ? rc : item_decode(&v, it);
}

/* Write the item with a new header; claimant and payload given apart
 * because they may point into the very value being replaced. */
static int
item_put(struct store *st, MDB_txn *txn, const struct item_key *ik,
    struct item_hdr *h, const char *claimant, const char *payload)
{
	size_t n = sizeof *h + h->claimant_len + h->payload_len;
	MDB_val v = { n, NULL };
	char *tmp = xmalloc(n);
	int rc;

	memcpy(tmp, h, sizeof *h);
	memcpy(tmp + sizeof *h, claimant, h->claimant_len);
	memcpy(tmp + sizeof *h + h->claimant_len, payload, h->payload_len);
	v.mv_data = tmp;
	rc = mdb_put(txn, st->items, (MDB_val *)&ik->val, &v, 0);
	free(tmp);
	return rc;
}

static int
stats_get(struct store *st, MDB_txn *txn, const char *queue,
    struct queue_stats *qs)
{
	MDB_val k = { strlen(queue), (void *)queue };

	return store_record_get(txn, st->queues, &k, qs, sizeof *qs, NULL);
}

static int
stats_put(struct store *st, MDB_txn *txn, const char *queue,
    const struct queue_stats *qs)
{
	MDB_val k = { strlen(queue), (void *)queue };
	MDB_val v = { sizeof *qs, (void *)qs };

	return mdb_put(txn, st->queues, &k, &v, 0);
}

static int
claim_record_put(struct store *st, MDB_txn *txn, const struct item_key *ik,
    int64_t now, uint32_t attempts, const char *owner, size_t owner_len)
{
	struct claim_hdr h = { .claimed_at = now, .attempts = attempts,
	    .owner_len = (uint16_t)owner_len };
	char rec[sizeof h + CLAIMANT_MAX];
	MDB_val v = { sizeof h + owner_len, rec };
	int rc;

	memcpy(rec, &h, sizeof h);
	memcpy(rec + sizeof h, owner, owner_len);
	if ((rc = mdb_put(txn, st->claimed, (MDB_val *)&ik->val, &v, 0)) != 0)
		return rc;
	return expiry_put(st, txn, now + CLAIM_RECORD_TTL_MS, EXPIRY_CLAIM,
	    ik->data, ik->val.mv_size);
}

/* Fill owner and claimed_at from the claim record, if one exists. */
static int
claim_record_get(struct store *st, MDB_txn *txn, const struct item_key *ik,
    struct queue_result *res)
{
	struct claim_hdr h;
	MDB_val tail;
	int rc = store_record_get(txn, st->claimed, &ik->val, &h, sizeof h, &tail);

	if (rc != 0)
		return rc;
	if (tail.mv_size != h.owner_len || h.owner_len > CLAIMANT_MAX)
		return MDB_CORRUPTED;
	memcpy(res->owner, tail.mv_data, h.owner_len);
	res->owner[h.owner_len] = '\0';
	res->has_owner = true;
	res->claimed_at = h.claimed_at;
	res->attempts = h.attempts;
	return 0;
}

/*----------------------------------------------------------------------------
 * History: each state change below tells store_history.c, in its own
 * transaction; one that passes the record's claimant and token does so
 * before it writes the item (they point into the record)
 *--------------------------------------------------------------------------*/

/* The change kind of item ik at `at`; attempt, claimant (clen bytes) and
 * token (hex, NULL: none) are the lease's; op is the request that made
 * the change, NULL for none (a lease that ran out). */
static int
item_history(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, enum history_kind kind, int64_t at,
    uint32_t attempt, const char *claimant, size_t clen, const char *token,
    const struct queue_op *op)
{
	size_t qlen = strlen(queue);
	struct history_event ev = { .queue = queue, .key = ik->data + qlen + 1,
	    .key_len = ik->val.mv_size - qlen - 1, .kind = kind, .at = at,
	    .attempt = attempt, .claimant = claimant, .claimant_len = clen,
	    .token = token };

	if (op != NULL) {
		ev.request_id = op->request_id;
		ev.annotations = op->annotations;
		ev.annotations_len = op->annotations_len;
	}
	return history_add(st, txn, &ev);
}

/* The holder's lease, as the history of a change to a leased item
 * records it. */
static int
lease_history(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, const struct item *it, enum history_kind kind,
    int64_t at, const struct queue_op *op)
{
	return item_history(st, txn, queue, ik, kind, at, it->h.attempts,
	    it->claimant, it->h.claimant_len, it->h.token, op);
}

/*----------------------------------------------------------------------------
 * State changes: an item moves between ready, leased and consumed, with
 * its index entries and the queue's counters
 *--------------------------------------------------------------------------*/

static void
result_from_item(struct queue_result *res, const struct item *it)
{
	res->state = (enum item_state)it->h.state;
	res->attempts = it->h.attempts;
	res->enqueued_at = it->h.enqueued_at;
	res->ready_at = it->h.ready_at;
	if (it->h.state == ITEM_LEASED) {
		res->lease_expires_at = it->h.lease_until;
		memcpy(res->owner, it->claimant, it->h.claimant_len);
		res->owner[it->h.claimant_len] = '\0';
		res->has_owner = true;
	}
}

/* A leased item becomes ready at ready_at. A released item forgets its
 * holder; an expired one keeps token and claimant until the next claim
 * replaces them, so a late ack or release is told "lease_expired". The
 * item is re-read so *it describes the new record. */
static int
lease_to_ready(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, struct item *it, int64_t ready_at,
    bool keep_holder, struct queue_stats *qs)
{
	const char *key = ik->data + strlen(queue) + 1;
	struct item_hdr h = it->h;
	int rc;

	if ((rc = index_del(txn, st->leases, queue, h.lease_until, h.seq)) != 0)
		return rc;
	h.state = ITEM_READY;
	h.ready_at = ready_at;
	h.lease_until = 0;
	if (!keep_holder) {
		h.claimant_len = 0;
		memset(h.token, 0, sizeof h.token);
	}
	if ((rc = index_put(txn, st->ready, queue, h.ready_at, h.seq, key)) != 0 ||
	    (rc = item_put(st, txn, ik, &h, it->claimant, it->payload)) != 0 ||
	    (rc = item_get(st, txn, ik, it)) != 0)
		return rc;
	qs->leased--;
	qs->ready++;
	return 0;
}

/* A lease ran out: the item is ready again from the moment it expired. */
static int
lease_expire(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, struct item *it, struct queue_stats *qs)
{
	int rc = lease_history(st, txn, queue, ik, it, HISTORY_EXPIRED,
	    it->h.lease_until, NULL);

	if (rc == 0)
		rc = lease_to_ready(st, txn, queue, ik, it, it->h.lease_until, true, qs);
	if (rc == 0)
		qs->expired++;
	return rc;
}

/* Load an item, turning an expired lease back into a ready item first so
 * that every operation sees the state a caller would expect now. */
static int
item_load(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, struct item *it, struct queue_stats *qs,
    int64_t now)
{
	int rc = item_get(st, txn, ik, it);

	if (rc == 0 && it->h.state == ITEM_LEASED && it->h.lease_until <= now)
		rc = lease_expire(st, txn, queue, ik, it, qs);
	return rc;
}

/* Turn up to `limit` of the queue's expired leases back into ready items.
 * Queue names never contain '/', so "queue/" sorts right before all of
 * this queue's index entries. */
static int
leases_expire_due(struct store *st, MDB_txn *txn, const char *queue,
    struct queue_stats *qs, int64_t now, int limit)
{
	size_t qlen = strlen(queue);
	char prefix[QUEUE_NAME_MAX + 2];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = 0;

	if (qs->leased == 0)
		return 0;
	snprintf(prefix, sizeof prefix, "%s/", queue);
	if ((rc = mdb_cursor_open(txn, st->leases, &cur)) != 0)
		return rc;
	while (limit-- > 0) {
		struct item_key ik;
		struct item it;
		char key[ITEM_KEY_MAX + 1];

		k.mv_size = qlen + 1;
		k.mv_data = prefix;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc != 0 || k.mv_size < qlen + 1 + 33 ||
		    memcmp(k.mv_data, prefix, qlen + 1) != 0 ||
		    index_key_when(&k, qlen) > now)
			break;
		if (v.mv_size > ITEM_KEY_MAX) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(key, v.mv_data, v.mv_size);
		key[v.mv_size] = '\0';
		item_key_make(&ik, queue, key);
		if ((rc = item_get(st, txn, &ik, &it)) != 0 ||
		    (rc = lease_expire(st, txn, queue, &ik, &it, qs)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The first entry of the queue's ready index: the next item to pop. */
static int
ready_first(struct store *st, MDB_txn *txn, const char *queue,
    int64_t *ready_at, char key[static ITEM_KEY_MAX + 1])
{
	size_t qlen = strlen(queue);
	char prefix[QUEUE_NAME_MAX + 2];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	snprintf(prefix, sizeof prefix, "%s/", queue);
	k.mv_size = qlen + 1;
	k.mv_data = prefix;
	if ((rc = mdb_cursor_open(txn, st->ready, &cur)) != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && (k.mv_size < qlen + 1 + 33 ||
	    memcmp(k.mv_data, prefix, qlen + 1) != 0))
		rc = MDB_NOTFOUND;
	if (rc == 0 && v.mv_size > ITEM_KEY_MAX)
		rc = MDB_CORRUPTED;
	if (rc == 0) {
		*ready_at = index_key_when(&k, qlen);
		memcpy(key, v.mv_data, v.mv_size);
		key[v.mv_size] = '\0';
	}
	mdb_cursor_close(cur);
	return rc;
}

/*----------------------------------------------------------------------------
 * Operations: one per queue_op kind. Each decides its refusals before its
 * first write (store.h, store_apply_fn).
 *--------------------------------------------------------------------------*/

static int
op_enqueue(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	struct queue_result *res = &op->res;
	struct item_key ik;
	struct item it;
	struct item_hdr h = { 0 };
	int rc;

	item_key_make(&ik, op->queue, op->key);
	rc = item_load(st, txn, op->queue, &ik, &it, qs, op->now);
	if (rc == 0) {			/* queued already: at most once at a time */
		res->ok = false;
		result_from_item(res, &it);
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return rc;
	h.state = ITEM_READY;
	h.seq = qs->next_seq++;
	h.enqueued_at = op->now;
	h.ready_at = op->now + op->delay_ms;
	h.payload_len = (uint32_t)op->payload_len;
	if ((rc = item_put(st, txn, &ik, &h, "", op->payload ? op->payload : "")) != 0 ||
	    (rc = index_put(txn, st->ready, op->queue, h.ready_at, h.seq, op->key)) != 0 ||
	    (rc = item_history(st, txn, op->queue, &ik, HISTORY_ENQUEUED, op->now,
	    0, "", 0, NULL, op)) != 0)
		return rc;
	/* Queued again: the old "who claimed it" no longer describes it. */
	rc = mdb_del(txn, st->claimed, &ik.val, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	qs->ready++;
	qs->enqueued++;
	res->ok = true;
	res->state = ITEM_READY;
	res->enqueued_at = h.enqueued_at;
	res->ready_at = h.ready_at;
	return 0;
}

/* Why a claim by key cannot win: leased by someone, consumed, delayed. */
static int
claim_refusal(struct store *st, MDB_txn *txn, const struct item_key *ik,
    int rc, const struct item *it, struct queue_op *op)
{
	struct queue_result *res = &op->res;

	res->ok = false;
	if (rc == MDB_NOTFOUND) {
		rc = claim_record_get(st, txn, ik, res);
		if (rc == MDB_NOTFOUND) {
			res->reason = REFUSAL_NOT_QUEUED;
			return 0;
		}
		res->reason = REFUSAL_CLAIMED;
		res->state = ITEM_CLAIMED;
		return rc;
	}
	result_from_item(res, it);
	res->reason = it->h.state == ITEM_LEASED ? REFUSAL_CLAIMED : REFUSAL_NOT_READY;
	return 0;
}

static int
take_item(struct store *st, MDB_txn *txn, struct queue_op *op,
    const struct item_key *ik, struct item *it, struct queue_stats *qs)
{
	struct queue_result *res = &op->res;
	const char *key = ik->data + strlen(op->queue) + 1;
	size_t clen = strlen(op->claimant);
	struct item_hdr h = it->h;
	unsigned char raw[TOKEN_HEX_LEN / 2];
	int rc;

	if ((rc = index_del(txn, st->ready, op->queue, h.ready_at, h.seq)) != 0)
		return rc;
	random_bytes(raw, sizeof raw);
	hex_encode(raw, sizeof raw, res->token);
	h.attempts++;
	buf_append(&res->payload, it->payload, h.payload_len);
	if (op->lease_ms > 0) {
		h.state = ITEM_LEASED;
		h.lease_until = op->now + op->lease_ms;
		h.claimant_len = (uint16_t)clen;
		memcpy(h.token, res->token, TOKEN_HEX_LEN);
		if ((rc = index_put(txn, st->leases, op->queue, h.lease_until, h.seq, key)) != 0 ||
		    (rc = expiry_put(st, txn, h.lease_until, EXPIRY_LEASE, ik->data, ik->val.mv_size)) != 0 ||
		    (rc = item_put(st, txn, ik, &h, op->claimant, it->payload)) != 0)
			return rc;
		qs->leased++;
		res->lease_expires_at = h.lease_until;
		res->state = ITEM_LEASED;
	} else {
		if ((rc = mdb_del(txn, st->items, (MDB_val *)&ik->val, NULL)) != 0 ||
		    (rc = claim_record_put(st, txn, ik, op->now, h.attempts, op->claimant, clen)) != 0)
			return rc;
		res->state = ITEM_CLAIMED;
		res->claimed_at = op->now;
	}
	if ((rc = item_history(st, txn, op->queue, ik, op->kind == QOP_POP ?
	    HISTORY_POPPED : HISTORY_CLAIMED, op->now, h.attempts, op->claimant,
	    clen, res->token, op)) != 0)
		return rc;
	qs->ready--;
	qs->claimed++;
	res->ok = true;
	res->attempts = h.attempts;
	res->enqueued_at = h.enqueued_at;
	snprintf(res->owner, sizeof res->owner, "%s", op->claimant);
	res->has_owner = true;
	snprintf(res->key, sizeof res->key, "%s", key);
	return 0;
}

static int
op_claim(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	struct item_key ik;
	struct item it;
	char key[ITEM_KEY_MAX + 1];
	int rc;

	if ((rc = leases_expire_due(st, txn, op->queue, qs, op->now,
	    LEASE_EXPIRY_BATCH)) != 0)
		return rc;
	if (op->kind == QOP_POP) {
		int64_t ready_at;

		rc = ready_first(st, txn, op->queue, &ready_at, key);
		if (rc == MDB_NOTFOUND || (rc == 0 && ready_at > op->now)) {
			op->res.ok = false;
			op->res.reason = REFUSAL_EMPTY;
			return 0;
		}
		if (rc != 0)
			return rc;
	} else {
		snprintf(key, sizeof key, "%s", op->key);
	}
	item_key_make(&ik, op->queue, key);
	rc = item_load(st, txn, op->queue, &ik, &it, qs, op->now);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (rc == MDB_NOTFOUND || it.h.state != ITEM_READY || it.h.ready_at > op->now)
		return claim_refusal(st, txn, &ik, rc, &it, op);
	return take_item(st, txn, op, &ik, &it, qs);
}

/* Whether the caller is the lease's holder: by token, or, when no token
 * is given, by the claimant name the lease was taken with (a Marketo flow
 * may not see its mapped token field in time; its claimant it knows). */
static bool
lease_holder(const struct queue_op *op, const struct item *it)
{
	if (op->token != NULL)
		return strlen(op->token) == TOKEN_HEX_LEN &&
		    memcmp(op->token, it->h.token, TOKEN_HEX_LEN) == 0;
	return *op->claimant != '\0' && strlen(op->claimant) == it->h.claimant_len &&
	    memcmp(op->claimant, it->claimant, it->h.claimant_len) == 0;
}

/* Shared check of ack and release: the caller must hold the live lease.
 * *held says whether it does; when not, res->reason says why. Returns 0
 * or an LMDB error. */
static int
lease_check(struct store *st, MDB_txn *txn, struct queue_op *op,
    const struct item_key *ik, struct item *it, struct queue_stats *qs,
    bool *held)
{
	struct queue_result *res = &op->res;
	int rc = item_load(st, txn, op->queue, ik, it, qs, op->now);

	res->ok = false;
	*held = false;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (rc == MDB_NOTFOUND) {
		res->reason = REFUSAL_NOT_LEASED;
	} else if (it->h.state != ITEM_LEASED) {
		/* an expired lease keeps its holder until the next claim */
		res->reason = lease_holder(op, it) ? REFUSAL_LEASE_EXPIRED :
		    REFUSAL_NOT_LEASED;
	} else if (!lease_holder(op, it)) {
		res->reason = op->token ? REFUSAL_TOKEN_MISMATCH :
		    REFUSAL_CLAIMANT_MISMATCH;
	} else {
		*held = true;
	}
	return 0;
}

static int
op_ack(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	struct item_key ik;
	struct item it;
	bool held;
	int rc;

	item_key_make(&ik, op->queue, op->key);
	if ((rc = lease_check(st, txn, op, &ik, &it, qs, &held)) != 0 || !held)
		return rc;
	if ((rc = lease_history(st, txn, op->queue, &ik, &it, HISTORY_ACKED, op->now, op)) != 0 ||
	    (rc = index_del(txn, st->leases, op->queue, it.h.lease_until, it.h.seq)) != 0 ||
	    (rc = claim_record_put(st, txn, &ik, op->now, it.h.attempts, it.claimant, it.h.claimant_len)) != 0 ||
	    (rc = mdb_del(txn, st->items, &ik.val, NULL)) != 0)
		return rc;
	qs->leased--;
	qs->acked++;
	op->res.ok = true;
	op->res.state = ITEM_CLAIMED;
	return 0;
}

static int
op_release(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	struct item_key ik;
	struct item it;
	bool held;
	int rc;

	item_key_make(&ik, op->queue, op->key);
	if ((rc = lease_check(st, txn, op, &ik, &it, qs, &held)) != 0 || !held)
		return rc;
	if ((rc = lease_history(st, txn, op->queue, &ik, &it, HISTORY_RELEASED, op->now, op)) != 0 ||
	    (rc = lease_to_ready(st, txn, op->queue, &ik, &it,
	    op->now + op->delay_ms, false, qs)) != 0)
		return rc;
	qs->released++;
	op->res.ok = true;
	op->res.state = ITEM_READY;
	op->res.ready_at = it.h.ready_at;
	op->res.attempts = it.h.attempts;
	return 0;
}

static int
op_remove(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	struct item_key ik;
	struct item it;
	int rc;

	item_key_make(&ik, op->queue, op->key);
	rc = item_load(st, txn, op->queue, &ik, &it, qs, op->now);
	if (rc == MDB_NOTFOUND) {
		op->res.ok = false;
		op->res.reason = REFUSAL_NOT_QUEUED;
		return 0;
	}
	if (rc != 0)
		return rc;
	if (it.h.state == ITEM_LEASED)
		rc = lease_history(st, txn, op->queue, &ik, &it, HISTORY_REMOVED, op->now, op);
	else
		rc = item_history(st, txn, op->queue, &ik, HISTORY_REMOVED, op->now,
		    it.h.attempts, "", 0, NULL, op);
	if (rc != 0)
		return rc;
	if (it.h.state == ITEM_LEASED) {
		rc = index_del(txn, st->leases, op->queue, it.h.lease_until, it.h.seq);
		qs->leased--;
	} else {
		rc = index_del(txn, st->ready, op->queue, it.h.ready_at, it.h.seq);
		qs->ready--;
	}
	if (rc != 0 || (rc = mdb_del(txn, st->items, &ik.val, NULL)) != 0)
		return rc;
	qs->removed++;
	op->res.ok = true;
	op->res.state = ITEM_ABSENT;
	return 0;
}

/* Read-only: an expired lease is reported as ready, as it will be. */
static int
op_status(struct store *st, MDB_txn *txn, struct queue_op *op)
{
	struct queue_result *res = &op->res;
	struct item_key ik;
	struct item it;
	int rc;

	item_key_make(&ik, op->queue, op->key);
	rc = item_get(st, txn, &ik, &it);
	if (rc == 0) {
		res->ok = true;
		if (it.h.state == ITEM_LEASED && it.h.lease_until <= op->now) {
			it.h.state = ITEM_READY;
			it.h.ready_at = it.h.lease_until;
		}
		result_from_item(res, &it);
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return rc;
	res->ok = false;
	rc = claim_record_get(st, txn, &ik, res);
	res->state = rc == 0 ? ITEM_CLAIMED : ITEM_ABSENT;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
op_stats(struct store *st, MDB_txn *txn, struct queue_op *op,
    const struct queue_stats *qs)
{
	char key[ITEM_KEY_MAX + 1];
	int64_t ready_at;
	int rc;

	op->res.ok = true;
	op->res.stats = *qs;
	rc = ready_first(st, txn, op->queue, &ready_at, key);
	if (rc == 0 && ready_at <= op->now)
		op->res.oldest_ready_at = ready_at;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
queue_dispatch(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	switch (op->kind) {
	case QOP_ENQUEUE: return op_enqueue(st, txn, op, qs);
	case QOP_CLAIM:
	case QOP_POP:     return op_claim(st, txn, op, qs);
	case QOP_ACK:     return op_ack(st, txn, op, qs);
	case QOP_RELEASE: return op_release(st, txn, op, qs);
	case QOP_REMOVE:  return op_remove(st, txn, op, qs);
	case QOP_STATUS:  return op_status(st, txn, op);
	case QOP_STATS:   return op_stats(st, txn, op, qs);
	}
	fatal("unknown queue op %d", (int)op->kind);
}

/*----------------------------------------------------------------------------
 * The API (store.h): apply an op, list the queues
 *--------------------------------------------------------------------------*/

/* An enqueue of a new item into a nearly full map (507 Storage Full),
 * or past its tenant's quota (507 Quota Exceeded), is refused before
 * anything is written; an item queued already is answered as usual, so
 * a full store still says "queued already". */
static enum casq_err
enqueue_refused(struct store *st, MDB_txn *txn, const struct queue_op *op)
{
	struct item_key ik;
	struct item it;
	bool low;

	if (op->kind != QOP_ENQUEUE)
		return E_OK;
	low = store_space_low(st);
	if (!low && op->max_items == 0)
		return E_OK;
	item_key_make(&ik, op->queue, op->key);
	if (item_get(st, txn, &ik, &it) != MDB_NOTFOUND)
		return E_OK;
	if (low)
		return E_SPACE_REFUSED;
	return tenant_quota_full(st, txn, op->queue, op->max_items) ?
	    E_QUOTA_EXCEEDED : E_OK;
}

enum casq_err
queue_apply(struct store *st, MDB_txn *txn, struct queue_op *op)
{
	struct queue_stats qs, before;
	struct buf payload = op->res.payload;
	enum casq_err err;
	int rc;

	/* Start from a clean result: group commit may apply an op twice
	 * (see store_batch.c). */
	payload.len = 0;
	memset(&op->res, 0, sizeof op->res);
	op->res.payload = payload;
	if (op->key)
		snprintf(op->res.key, sizeof op->res.key, "%s", op->key);
	rc = stats_get(st, txn, op->queue, &qs);
	if (rc == MDB_NOTFOUND) {
		if (op->kind == QOP_STATS)
			return E_NO_QUEUE;
		/* A queue exists from its first enqueue. Other ops on an
		 * unknown queue create nothing and say so: a misspelled queue
		 * name must not look like an empty queue or an absent item. */
		if (op->kind != QOP_ENQUEUE) {
			op->res.ok = false;
			op->res.reason = REFUSAL_NO_SUCH_QUEUE;
			return E_OK;
		}
		memset(&qs, 0, sizeof qs);
		qs.next_seq = 1;
		qs.created_at = op->now;
	} else if (rc != 0) {
		return store_map_error(rc, "read queue stats");
	}
	if ((err = enqueue_refused(st, txn, op)) != E_OK)
		return err;
	before = qs;
	if ((rc = queue_dispatch(st, txn, op, &qs)) != 0)
		return store_map_error(rc, "queue operation");
	if (memcmp(&qs, &before, sizeof qs) == 0)
		return E_OK;
	if ((rc = stats_put(st, txn, op->queue, &qs)) != 0 ||
	    (rc = tenant_adjust(st, txn, op->queue, (int64_t)(qs.ready + qs.leased) -
	    (int64_t)(before.ready + before.leased), 0, 0)) != 0)
		return store_map_error(rc, "write queue stats");
	return E_OK;
}

enum casq_err
queue_list(struct store *st, MDB_txn *txn, const char *prefix,
    const char *after, size_t limit, queue_visit_fn fn, void *ctx)
{
	char start[QUEUE_NAME_MAX + 1];
	size_t plen = strlen(prefix), slen;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	slen = (size_t)snprintf(start, sizeof start, "%s%s", prefix, after ? after : "");
	if (slen >= sizeof start)
		return E_OK;		/* after a name no queue can have */
	if ((rc = mdb_cursor_open(txn, st->queues, &cur)) != 0)
		return store_map_error(rc, "list queues");
	k = (MDB_val){ slen, start };
	rc = slen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) :
	    mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (size_t n = 0; n < limit && rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct queue_stats qs;

		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;		/* past the prefix's names */
		if (after && *after && k.mv_size == slen && memcmp(k.mv_data, start, slen) == 0)
			continue;	/* after itself */
		if (v.mv_size != sizeof qs) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(&qs, v.mv_data, sizeof qs);
		fn(ctx, (const char *)k.mv_data + plen, k.mv_size - plen, &qs);
		n++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? E_OK : store_map_error(rc, "list queues");
}

/* What a tool is shown of an item: as op_status, a lease that ran out
 * is ready from the moment it ended. */
static struct queue_walk_item
walk_item(const MDB_val *k, size_t plen, const struct item *it, int64_t now)
{
	bool ran_out = it->h.state == ITEM_LEASED && it->h.lease_until <= now;

	return (struct queue_walk_item){
	    .key = (const char *)k->mv_data + plen, .key_len = k->mv_size - plen,
	    .state = ran_out ? ITEM_READY : (enum item_state)it->h.state,
	    .attempts = it->h.attempts, .enqueued_at = it->h.enqueued_at,
	    .ready_at = ran_out ? it->h.lease_until : it->h.ready_at,
	    .lease_until = it->h.lease_until,
	    .claimant = it->claimant, .claimant_len = it->h.claimant_len,
	    .payload = it->payload, .payload_len = it->h.payload_len };
}

enum casq_err
queue_walk(struct store *st, MDB_txn *txn, const char *queue,
    const char *from, int64_t now, queue_walk_fn fn, void *ctx)
{
	size_t plen = strlen(queue) + 1;
	struct item_key start;
	MDB_cursor *cur;
	MDB_val k, v;
	bool more = true;
	int rc;

	item_key_make(&start, queue, from ? from : "");
	if ((rc = mdb_cursor_open(txn, st->items, &cur)) != 0)
		return store_map_error(rc, "list items");
	k = start.val;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && more;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct queue_walk_item view;
		struct item it;

		if (k.mv_size <= plen || memcmp(k.mv_data, start.data, plen) != 0)
			break;		/* past the queue's items */
		if ((rc = item_decode(&v, &it)) != 0)
			break;
		view = walk_item(&k, plen, &it, now);
		more = fn(ctx, &view);
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? E_OK : store_map_error(rc, "list items");
}

/*----------------------------------------------------------------------------
 * Listing: a queue's items of one state, in key order
 *--------------------------------------------------------------------------*/

/* The state an item is listed in, as status reports it: a lease that ran
 * out is ready from its end. */
static enum item_state
listed_state(const struct item_hdr *h, int64_t now, int64_t *ready_at)
{
	*ready_at = h->ready_at;
	if (h->state == ITEM_LEASED && h->lease_until <= now) {
		*ready_at = h->lease_until;
		return ITEM_READY;
	}
	return (enum item_state)h->state;
}

/* When a listed item entered its state. Ready: ready_at, when it became
 * (or, delayed, becomes) claimable: its enqueue, release or lease's end.
 * Leased: its claim, which the record does not keep (only the lease's
 * end) but its history does; 0 when that event has left the history
 * (--history-days shorter than the lease). */
static int64_t
item_since(struct store *st, MDB_txn *txn, const char *queue, const char *key,
    enum item_state state, int64_t ready_at)
{
	static const enum history_kind claims[] = { HISTORY_CLAIMED, HISTORY_POPPED };
	int64_t at = 0;

	if (state == ITEM_READY)
		return ready_at;
	history_last_of(st, txn, queue, key, claims, 2, &at);
	return at;
}

/* One item of the walk: fn when it is in state. */
static int
items_visit(struct store *st, MDB_txn *txn, const char *queue, const MDB_val *k,
    const MDB_val *v, enum item_state state, int64_t now, queue_item_visit_fn fn,
    void *ctx, bool *listed)
{
	size_t qlen = strlen(queue);
	char key[ITEM_KEY_MAX + 1];
	struct item_hdr h;
	enum item_state s;
	int64_t ready_at;

	if (v->mv_size < sizeof h || k->mv_size - qlen - 1 > ITEM_KEY_MAX)
		return MDB_CORRUPTED;
	memcpy(&h, v->mv_data, sizeof h);
	s = listed_state(&h, now, &ready_at);
	*listed = s == state;
	if (!*listed || fn == NULL)
		return 0;
	memcpy(key, (const char *)k->mv_data + qlen + 1, k->mv_size - qlen - 1);
	key[k->mv_size - qlen - 1] = '\0';
	fn(ctx, key, k->mv_size - qlen - 1, h.attempts,
	    item_since(st, txn, queue, key, s, ready_at));
	return 0;
}

/* The walk after "queue/after": items in key order. It stops at limit
 * items, at the queue's end, or after QUEUE_ITEMS_SCAN_MAX items read;
 * *next is then the last key read when more may follow. */
static int
items_walk(struct store *st, MDB_txn *txn, MDB_cursor *cur, const char *queue,
    enum item_state state, const char *after, size_t limit, int64_t now,
    queue_item_visit_fn fn, void *ctx, char next[static ITEM_KEY_MAX + 1])
{
	size_t qlen = strlen(queue), n = 0, scanned = 0;
	struct item_key start;
	MDB_val k, v;
	int rc;

	item_key_make(&start, queue, after ? after : "");
	k = start.val;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		bool listed;

		if (k.mv_size <= qlen + 1 || memcmp(k.mv_data, start.data, qlen + 1) != 0)
			break;		/* past the queue's items */
		if (k.mv_size == start.val.mv_size &&
		    memcmp(k.mv_data, start.data, k.mv_size) == 0)
			continue;	/* after itself */
		if (scanned++ == QUEUE_ITEMS_SCAN_MAX)
			return 0;	/* next: the last one read */
		if (n == limit) {
			/* one more might be listed: the next page shows */
			if ((rc = items_visit(st, txn, queue, &k, &v, state, now,
			    NULL, NULL, &listed)) != 0 || listed)
				return rc;
		} else if ((rc = items_visit(st, txn, queue, &k, &v, state, now,
		    fn, ctx, &listed)) != 0) {
			return rc;
		} else if (listed) {
			n++;
		}
		memcpy(next, (const char *)k.mv_data + qlen + 1, k.mv_size - qlen - 1);
		next[k.mv_size - qlen - 1] = '\0';
	}
	next[0] = '\0';		/* the queue's end */
	return rc == MDB_NOTFOUND ? 0 : rc;
}

enum casq_err
queue_items(struct store *st, MDB_txn *txn, const char *queue,
    enum item_state state, const char *after, size_t limit, int64_t now,
    queue_item_visit_fn fn, void *ctx, char next[static ITEM_KEY_MAX + 1])
{
	struct queue_stats qs;
	MDB_cursor *cur;
	int rc = stats_get(st, txn, queue, &qs);

	next[0] = '\0';
	if (rc == MDB_NOTFOUND)
		return E_NO_QUEUE;
	if (rc != 0 || (rc = mdb_cursor_open(txn, st->items, &cur)) != 0)
		return store_map_error(rc, "list items: open");
	rc = items_walk(st, txn, cur, queue, state, after, limit, now, fn, ctx, next);
	mdb_cursor_close(cur);
	return store_map_error(rc, "list items");
}

/*----------------------------------------------------------------------------
 * Expiry hooks (store_expiry.c's table): a lease ran out, a claim record's
 * day is over
 *--------------------------------------------------------------------------*/

/* Split an expiry ref "queue/key" into its item key and queue name. */
static bool
ref_split(const char *ref, size_t reflen, struct item_key *ik,
    char queue[static QUEUE_NAME_MAX + 1])
{
	const char *slash = memchr(ref, '/', reflen);
	size_t qlen = slash ? (size_t)(slash - ref) : 0;

	if (slash == NULL || qlen == 0 || qlen > QUEUE_NAME_MAX ||
	    !store_key_from_ref(ik, ref, reflen))
		return false;
	memcpy(queue, ref, qlen);
	queue[qlen] = '\0';
	return true;
}

int
queue_sweep_lease(struct store *st, MDB_txn *txn, int64_t due,
    const char *ref, size_t reflen)
{
	char queue[QUEUE_NAME_MAX + 1];
	struct item_key ik;
	struct item it;
	struct queue_stats qs;
	int rc;

	if (!ref_split(ref, reflen, &ik, queue))
		return 0;
	rc = item_get(st, txn, &ik, &it);
	if (rc == MDB_NOTFOUND || (rc == 0 && (it.h.state != ITEM_LEASED ||
	    it.h.lease_until != due)))
		return 0;		/* acked, released or re-leased since */
	if (rc != 0 || (rc = stats_get(st, txn, queue, &qs)) != 0 ||
	    (rc = lease_expire(st, txn, queue, &ik, &it, &qs)) != 0)
		return rc;
	return stats_put(st, txn, queue, &qs);
}

int
queue_sweep_claim(struct store *st, MDB_txn *txn, int64_t due,
    const char *ref, size_t reflen)
{
	char queue[QUEUE_NAME_MAX + 1];
	struct item_key ik;
	struct queue_result res = { 0 };
	int rc;

	if (!ref_split(ref, reflen, &ik, queue))
		return 0;
	rc = claim_record_get(st, txn, &ik, &res);
	if (rc == MDB_NOTFOUND || (rc == 0 && res.claimed_at + CLAIM_RECORD_TTL_MS != due))
		return 0;		/* gone, or replaced by a newer claim */
	return rc ? rc : mdb_del(txn, st->claimed, &ik.val, NULL);
}

/*----------------------------------------------------------------------------
 * Outside group commit: an op in a transaction of its own
 *--------------------------------------------------------------------------*/

enum casq_err
queue_apply_fn(struct store *st, MDB_txn *txn, void *op)
{
	return queue_apply(st, txn, op);
}

enum casq_err
store_run_queue_op(struct store *st, struct queue_op *op)
{
	return store_run(st, queue_op_writes(op), op->now, queue_apply_fn, op);
}
