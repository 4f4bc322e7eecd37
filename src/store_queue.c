/*
 * store_queue.c - claimable queues.
 *
 * An item lives in "items" under queue/key while it is ready, leased or
 * dead.
 * A ready item also has an entry in "ready" ordered by (ready_at, seq), so
 * the next item to pop is the first key with the queue's prefix; a leased
 * item has an entry in "leases" ordered by expiry, so expired leases are
 * found without a scan. Per-queue counters live in "queues". When an item
 * is consumed, "claimed" remembers who took it for CLAIM_RECORD_TTL_MS.
 * An item leased max_attempts times whose lease ends without an ack is
 * dead: it stays in "items" with an entry in "dead" (key order) until a
 * redrive makes it ready again. An enqueue of a leased item stores a
 * follow-up run in the item, started when the lease ends. A bound pop's
 * binding is store_bind.c's. Every request is O(log n) in the number of
 * items; a redrive of all is bounded by REDRIVE_BATCH.
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
/* Dead items a redrive of all makes ready per request: each rewrites an
 * item of up to two 16 KiB payloads, so this bounds the transaction to a
 * few MB and well under a second, inside Marketo's 30 s; the answer says
 * how many remain for the next call. */
#define REDRIVE_BATCH		500
#define MINUTE_MS		60000

/* docs/storage.md gives these layouts, tail padding included. */
_Static_assert(sizeof(struct item_hdr) == 128, "item header layout");
_Static_assert(sizeof(struct claim_hdr) == 40, "claim header layout");
_Static_assert(sizeof(struct queue_stats) == 368, "queue stats layout");

/* An item: its header and the parts of its tail, pointing into the LMDB
 * value (or, for one being written, wherever the writer likes). */
struct item {
	struct item_hdr h;
	const char     *claimant;
	const char     *payload;
	const char     *follow;		/* the follow-up's payload */
	const char     *bind;
};

/* How a lease ends (lease_end). */
enum lease_ending { END_ACK, END_RELEASE, END_EXPIRY };

/* An item's key, "queue/key" (store.c's store_key). */
#define item_key	store_key

const char *
item_state_name(enum item_state s)
{
	static const char *const names[] = { "absent", "ready", "leased", "claimed", "dead" };

	return names[s];
}

bool
queue_op_writes(const struct queue_op *op)
{
	if (op->kind == QOP_CONFIG)
		return op->set_lease || op->set_max_attempts || op->set_bind_days;
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
	/* claimant and bind are copied into the result's owner and bound_to */
	if (v->mv_size - sizeof it->h != (size_t)it->h.claimant_len +
	    it->h.payload_len + it->h.follow_len + it->h.bind_len ||
	    it->h.claimant_len > CLAIMANT_MAX || it->h.bind_len > BIND_MAX)
		return MDB_CORRUPTED;
	it->claimant = (const char *)v->mv_data + sizeof it->h;
	it->payload = it->claimant + it->h.claimant_len;
	it->follow = it->payload + it->h.payload_len;
	it->bind = it->follow + it->h.follow_len;
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

/* Write the item; its tail parts may point into the very value being
 * replaced, so they are copied out first. */
static int
item_put(struct store *st, MDB_txn *txn, const struct item_key *ik,
    const struct item *it)
{
	const struct item_hdr *h = &it->h;
	size_t n = sizeof *h + h->claimant_len + h->payload_len + h->follow_len +
	    h->bind_len;
	MDB_val v = { n, NULL };
	char *tmp = xmalloc(n), *p = tmp;
	int rc;

	memcpy(p, h, sizeof *h);
	p += sizeof *h;
	memcpy(p, it->claimant, h->claimant_len);
	p += h->claimant_len;
	memcpy(p, it->payload, h->payload_len);
	p += h->payload_len;
	memcpy(p, it->follow, h->follow_len);
	p += h->follow_len;
	memcpy(p, it->bind, h->bind_len);
	v.mv_data = tmp;
	rc = mdb_put(txn, st->items, (MDB_val *)&ik->val, &v, 0);
	free(tmp);
	return rc;
}

/* The dead index: queue/key -> "", in key order. */
static int
dead_index_put(struct store *st, MDB_txn *txn, const struct item_key *ik)
{
	MDB_val v = { 0, "" };

	return mdb_put(txn, st->dead, (MDB_val *)&ik->val, &v, 0);
}

static int
dead_index_del(struct store *st, MDB_txn *txn, const struct item_key *ik)
{
	return mdb_del(txn, st->dead, (MDB_val *)&ik->val, NULL);
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
    int64_t now, uint32_t attempts, const char *owner, size_t owner_len,
    const char *bind, size_t bind_len, const struct history_head *history)
{
	struct claim_hdr h = { .claimed_at = now, .attempts = attempts,
	    .owner_len = (uint16_t)owner_len, .bind_len = (uint16_t)bind_len,
	    .history = *history };
	char rec[sizeof h + CLAIMANT_MAX + BIND_MAX];
	MDB_val v = { sizeof h + owner_len + bind_len, rec };
	int rc;

	memcpy(rec, &h, sizeof h);
	memcpy(rec + sizeof h, owner, owner_len);
	memcpy(rec + sizeof h + owner_len, bind, bind_len);
	if ((rc = mdb_put(txn, st->claimed, (MDB_val *)&ik->val, &v, 0)) != 0)
		return rc;
	return expiry_put(st, txn, now + CLAIM_RECORD_TTL_MS, EXPIRY_CLAIM,
	    ik->data, ik->val.mv_size);
}

/* Fill owner, claimed_at and bound_to from the claim record, if one
 * exists. */
static int
claim_record_get(struct store *st, MDB_txn *txn, const struct item_key *ik,
    struct queue_result *res)
{
	struct claim_hdr h;
	MDB_val tail;
	int rc = store_record_get(txn, st->claimed, &ik->val, &h, sizeof h, &tail);

	if (rc != 0)
		return rc;
	if (tail.mv_size != (size_t)h.owner_len + h.bind_len ||
	    h.owner_len > CLAIMANT_MAX || h.bind_len > BIND_MAX)
		return MDB_CORRUPTED;
	memcpy(res->owner, tail.mv_data, h.owner_len);
	res->owner[h.owner_len] = '\0';
	res->has_owner = true;
	memcpy(res->bound_to, (char *)tail.mv_data + h.owner_len, h.bind_len);
	res->bound_to[h.bind_len] = '\0';
	res->claimed_at = h.claimed_at;
	res->attempts = h.attempts;
	return 0;
}

/* --- claims_per_minute: a ring of 60 minute counts in the stats --- */

/* Whether the ring still holds the count of minute `minute`. */
static bool
claim_rate_fresh(const struct queue_stats *qs, int64_t minute)
{
	return minute >= 0 && minute <= qs->rate_minute &&
	    minute > qs->rate_minute - CLAIM_RATE_MINUTES;
}

/* Count a winning claim or pop at now: the slots of the minutes since
 * the last count are stale, so they are zeroed first (at most 60). */
static void
claim_rate_count(struct queue_stats *qs, int64_t now)
{
	int64_t minute = now / MINUTE_MS;

	if (minute > qs->rate_minute) {
		int64_t from = qs->rate_minute + 1;

		if (minute - from >= CLAIM_RATE_MINUTES)
			from = minute - CLAIM_RATE_MINUTES + 1;
		for (int64_t m = from; m <= minute; m++)
			qs->rate[m % CLAIM_RATE_MINUTES] = 0;
		qs->rate_minute = minute;
	}
	if (claim_rate_fresh(qs, minute))	/* not a clock that went back an hour */
		qs->rate[minute % CLAIM_RATE_MINUTES]++;
}

/* The last 60 minutes' counts at now, oldest first, stale slots as 0. */
static void
claim_rate_read(const struct queue_stats *qs, int64_t now,
    uint32_t out[static CLAIM_RATE_MINUTES])
{
	int64_t minute = now / MINUTE_MS;

	for (int i = 0; i < CLAIM_RATE_MINUTES; i++) {
		int64_t m = minute - (CLAIM_RATE_MINUTES - 1) + i;

		out[i] = claim_rate_fresh(qs, m) ? qs->rate[m % CLAIM_RATE_MINUTES] : 0;
	}
}

/*----------------------------------------------------------------------------
 * History: each state change below tells store_history.c, in its own
 * transaction, before it writes the record that keeps the item's history
 * head (the item's, or its claim record's once consumed): the event
 * moves the head, and the record takes it along. One that passes the
 * record's claimant and token does so before it writes the item (they
 * point into the record)
 *--------------------------------------------------------------------------*/

/* The change kind of item ik at `at`; attempt, claimant (clen bytes) and
 * token (hex, NULL: none) are the lease's; op is the request that made
 * the change, NULL for none (a lease that ran out). */
static int
item_history(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, enum history_kind kind, int64_t at,
    uint32_t attempt, const char *claimant, size_t clen, const char *token,
    const struct queue_op *op, struct history_head *head)
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
	return history_add(st, txn, &ev, head);
}

/* The holder's lease, as the history of a change to a leased item
 * records it. */
static int
lease_history(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, struct item *it, enum history_kind kind,
    int64_t at, const struct queue_op *op)
{
	return item_history(st, txn, queue, ik, kind, at, it->h.attempts,
	    it->claimant, it->h.claimant_len, it->h.token, op, &it->h.history);
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
	res->follow_up = (it->h.flags & ITEM_FOLLOW_UP) != 0;
	memcpy(res->bound_to, it->bind, it->h.bind_len);
	res->bound_to[it->h.bind_len] = '\0';
	if (it->h.state == ITEM_LEASED) {
		res->lease_expires_at = it->h.lease_until;
		memcpy(res->owner, it->claimant, it->h.claimant_len);
		res->owner[it->h.claimant_len] = '\0';
		res->has_owner = true;
	}
	if (it->h.state == ITEM_DEAD)
		res->dead_at = it->h.dead_at;
}

/* Make the (leased or dead) item n ready at ready_at, with its entry in
 * the ready index, and write it. */
static int
item_to_ready(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, struct item *n, int64_t ready_at)
{
	const char *key = ik->data + strlen(queue) + 1;
	int rc;

	n->h.state = ITEM_READY;
	n->h.ready_at = ready_at;
	n->h.lease_until = 0;
	n->h.dead_at = 0;
	if ((rc = index_put(txn, st->ready, queue, ready_at, n->h.seq, key)) != 0)
		return rc;
	return item_put(st, txn, ik, n);
}

/*
 * A lease ends at ended_at: acked (only when a follow-up waits: an ack
 * without one consumes the item, op_ack), released to be ready at
 * ready_at, or run out (both times are then its end). In that order of
 * precedence:
 *   - a follow-up waits: the item is ready again with the follow-up's
 *     payload, at ready_at or the follow-up's own time if later, its
 *     attempts starting again from 0 (a new run of new data: the
 *     follow-up wins over max_attempts);
 *   - a release or expiry of the item's max_attempts-th lease: dead;
 *   - else ready at ready_at.
 * A lease that ends without an ack also ends its bound pop's binding: the
 * item goes back to the pool for anyone. An expired lease keeps token and
 * claimant until the next claim replaces them, so a late ack or release
 * is told "lease_expired"; an ack or release forgets them. The item is
 * re-read so *it describes the new record.
 */
static int
lease_end(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, struct item *it, enum lease_ending how,
    int64_t ended_at, int64_t ready_at, struct queue_stats *qs,
    const struct queue_op *op)
{
	const char *key = ik->data + strlen(queue) + 1;
	uint32_t max = qs->config.max_attempts;
	struct item n = *it;
	int rc;

	if ((rc = index_del(txn, st->leases, queue, it->h.lease_until, it->h.seq)) != 0)
		return rc;
	if (how != END_ACK && it->h.bind_len > 0 &&
	    (rc = binding_drop(st, txn, queue, it->bind, it->h.bind_len, key,
	    it->h.token)) != 0)
		return rc;
	n.h.bind_len = 0;
	if (how != END_EXPIRY) {
		n.h.claimant_len = 0;
		memset(n.h.token, 0, sizeof n.h.token);
	}
	qs->leased--;
	if (it->h.flags & ITEM_FOLLOW_UP) {
		n.h.flags &= (uint8_t)~ITEM_FOLLOW_UP;
		n.h.attempts = 0;
		n.payload = it->follow;
		n.h.payload_len = it->h.follow_len;
		n.h.follow_len = 0;
		if (it->h.follow_ready_at > ready_at)
			ready_at = it->h.follow_ready_at;
		n.h.follow_ready_at = 0;
		rc = item_to_ready(st, txn, queue, ik, &n, ready_at);
		qs->ready++;
	} else if (max > 0 && it->h.attempts >= max) {
		n.h.state = ITEM_DEAD;
		n.h.dead_at = ended_at;
		n.h.lease_until = 0;
		if ((rc = item_history(st, txn, queue, ik, HISTORY_DEAD, ended_at,
		    it->h.attempts, "", 0, NULL, op, &n.h.history)) == 0 &&
		    (rc = dead_index_put(st, txn, ik)) == 0)
			rc = item_put(st, txn, ik, &n);
		qs->dead++;
		qs->died++;
	} else {
		rc = item_to_ready(st, txn, queue, ik, &n, ready_at);
		qs->ready++;
	}
	return rc ? rc : item_get(st, txn, ik, it);
}

/* A lease ran out: the item is ready (or dead) from the moment it expired. */
static int
lease_expire(struct store *st, MDB_txn *txn, const char *queue,
    const struct item_key *ik, struct item *it, struct queue_stats *qs)
{
	int rc = lease_history(st, txn, queue, ik, it, HISTORY_EXPIRED,
	    it->h.lease_until, NULL);

	if (rc == 0)
		rc = lease_end(st, txn, queue, ik, it, END_EXPIRY, it->h.lease_until,
		    it->h.lease_until, qs, NULL);
	if (rc == 0)
		qs->expired++;
	return rc;
}

/* What lease_end makes of an item whose lease ran out, as the read-only
 * views (status, the item listing) show it before it is turned back:
 * ready from the lease's end (for a follow-up, attempts 0 and its own
 * time if later), or dead at max attempts; no holder, no binding. */
static struct item_hdr
lease_ended_view(struct item_hdr h, uint32_t max)
{
	bool follow = h.flags & ITEM_FOLLOW_UP;
	int64_t end = h.lease_until;

	h.flags = 0;
	h.bind_len = 0;
	h.lease_until = 0;
	if (!follow && max > 0 && h.attempts >= max) {
		h.state = ITEM_DEAD;
		h.dead_at = end;
		return h;
	}
	h.state = ITEM_READY;
	h.ready_at = follow && h.follow_ready_at > end ? h.follow_ready_at : end;
	if (follow)
		h.attempts = 0;
	return h;
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

/* An enqueue of an item leased right now: a follow-up run. The first one
 * of the lease is "enqueued"; later ones only replace its payload (and
 * time), so however many arrive, exactly one more run follows. */
static int
enqueue_follow_up(struct store *st, MDB_txn *txn, struct queue_op *op,
    const struct item_key *ik, struct item *it, struct queue_stats *qs)
{
	struct queue_result *res = &op->res;
	struct item n = *it;
	int rc;

	result_from_item(res, it);	/* before the write moves what it points to */
	res->ok = !(it->h.flags & ITEM_FOLLOW_UP);
	res->follow_up = true;
	n.h.flags |= ITEM_FOLLOW_UP;
	n.h.follow_ready_at = op->now + op->delay_ms;
	n.follow = op->payload ? op->payload : "";
	n.h.follow_len = (uint32_t)op->payload_len;
	res->ready_at = n.h.follow_ready_at;
	if ((rc = item_history(st, txn, op->queue, ik, HISTORY_FOLLOW_UP, op->now,
	    it->h.attempts, it->claimant, it->h.claimant_len, it->h.token, op,
	    &n.h.history)) != 0 || (rc = item_put(st, txn, ik, &n)) != 0)
		return rc;
	if (res->ok)
		qs->enqueued++;
	return 0;
}

static int
op_enqueue(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	struct queue_result *res = &op->res;
	struct item_key ik;
	struct item it;
	struct item n = { .claimant = "", .follow = "", .bind = "" };
	int rc;

	item_key_make(&ik, op->queue, op->key);
	rc = item_load(st, txn, op->queue, &ik, &it, qs, op->now);
	if (rc == 0 && it.h.state == ITEM_LEASED && !op->no_follow_up)
		return enqueue_follow_up(st, txn, op, &ik, &it, qs);
	if (rc == 0) {			/* ready, dead, or leased for an import */
		res->ok = false;
		result_from_item(res, &it);
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return rc;
	n.h.state = ITEM_READY;
	n.h.seq = qs->next_seq++;
	n.h.enqueued_at = op->now;
	n.h.ready_at = op->now + op->delay_ms;
	n.h.payload_len = (uint32_t)op->payload_len;
	n.payload = op->payload ? op->payload : "";
	/* the history of its earlier runs, from its claim record or parked */
	if ((rc = history_head_get(st, txn, &ik.val, &n.h.history)) != 0 ||
	    (rc = item_history(st, txn, op->queue, &ik, HISTORY_ENQUEUED, op->now,
	    0, "", 0, NULL, op, &n.h.history)) != 0 ||
	    (rc = item_put(st, txn, &ik, &n)) != 0 ||
	    (rc = index_put(txn, st->ready, op->queue, n.h.ready_at, n.h.seq, op->key)) != 0)
		return rc;
	/* Queued again: the old "who claimed it" no longer describes it. */
	rc = mdb_del(txn, st->claimed, &ik.val, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	qs->ready++;
	qs->enqueued++;
	res->ok = true;
	res->state = ITEM_READY;
	res->enqueued_at = n.h.enqueued_at;
	res->ready_at = n.h.ready_at;
	return 0;
}

/* Why a claim by key cannot win: leased by someone, consumed, delayed,
 * dead. */
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
	res->reason = it->h.state == ITEM_LEASED ? REFUSAL_CLAIMED :
	    it->h.state == ITEM_DEAD ? REFUSAL_DEAD : REFUSAL_NOT_READY;
	return 0;
}

/* A bound pop's answer as its binding keeps it. */
static void
binding_to_result(const struct binding *b, struct queue_result *res)
{
	res->ok = true;
	res->again = true;
	memcpy(res->key, b->key, b->key_len);
	res->key[b->key_len] = '\0';
	memcpy(res->owner, b->owner, b->owner_len);
	res->owner[b->owner_len] = '\0';
	res->has_owner = true;
	memcpy(res->token, b->token, TOKEN_HEX_LEN);
	res->token[TOKEN_HEX_LEN] = '\0';
	res->attempts = b->attempts;
	res->payload.len = 0;
	buf_append(&res->payload, b->payload, b->payload_len);
	res->state = ITEM_CLAIMED;
}

/* Take the ready item: leased for op's lease (or the queue's), else
 * consumed; a bound pop's bind goes with it. */
static int
take_item(struct store *st, MDB_txn *txn, struct queue_op *op,
    const struct item_key *ik, struct item *it, struct queue_stats *qs)
{
	struct queue_result *res = &op->res;
	const char *key = ik->data + strlen(op->queue) + 1;
	size_t clen = strlen(op->claimant), blen = op->bind ? strlen(op->bind) : 0;
	int64_t lease_ms = op->lease_ms ? op->lease_ms : qs->config.lease_ms;
	struct item n = *it;
	struct binding b;
	unsigned char raw[TOKEN_HEX_LEN / 2];
	int rc;

	if ((rc = index_del(txn, st->ready, op->queue, it->h.ready_at, it->h.seq)) != 0)
		return rc;
	random_bytes(raw, sizeof raw);
	hex_encode(raw, sizeof raw, res->token);
	n.h.attempts++;
	buf_append(&res->payload, it->payload, it->h.payload_len);
	if ((rc = item_history(st, txn, op->queue, ik, op->kind == QOP_POP ?
	    HISTORY_POPPED : HISTORY_CLAIMED, op->now, n.h.attempts, op->claimant,
	    clen, res->token, op, &n.h.history)) != 0)
		return rc;
	if (lease_ms > 0) {
		n.h.state = ITEM_LEASED;
		n.h.lease_until = op->now + lease_ms;
		n.h.claimant_len = (uint16_t)clen;
		n.claimant = op->claimant;
		n.h.bind_len = (uint16_t)blen;
		n.bind = op->bind ? op->bind : "";
		memcpy(n.h.token, res->token, TOKEN_HEX_LEN);
		if ((rc = index_put(txn, st->leases, op->queue, n.h.lease_until, n.h.seq, key)) != 0 ||
		    (rc = expiry_put(st, txn, n.h.lease_until, EXPIRY_LEASE, ik->data, ik->val.mv_size)) != 0 ||
		    (rc = item_put(st, txn, ik, &n)) != 0)
			return rc;
		qs->leased++;
		res->lease_expires_at = n.h.lease_until;
		res->state = ITEM_LEASED;
	} else {
		if ((rc = mdb_del(txn, st->items, (MDB_val *)&ik->val, NULL)) != 0 ||
		    (rc = claim_record_put(st, txn, ik, op->now, n.h.attempts,
		    op->claimant, clen, op->bind ? op->bind : "", blen,
		    &n.h.history)) != 0)
			return rc;
		res->state = ITEM_CLAIMED;
		res->claimed_at = op->now;
	}
	qs->ready--;
	qs->claimed++;
	claim_rate_count(qs, op->now);
	res->ok = true;
	res->attempts = n.h.attempts;
	res->enqueued_at = n.h.enqueued_at;
	snprintf(res->owner, sizeof res->owner, "%s", op->claimant);
	res->has_owner = true;
	snprintf(res->key, sizeof res->key, "%s", key);
	if (op->bind == NULL)
		return 0;
	snprintf(res->bound_to, sizeof res->bound_to, "%s", op->bind);
	b = (struct binding){ .bound_at = op->now,
	    .expires_at = op->now + (int64_t)qs->config.bind_days * DAY_MS,
	    .attempts = n.h.attempts, .key = key, .key_len = strlen(key),
	    .owner = op->claimant, .owner_len = clen,
	    .payload = res->payload.data ? res->payload.data : "",
	    .payload_len = res->payload.len };
	memcpy(b.token, res->token, TOKEN_HEX_LEN);
	return binding_put(st, txn, op->queue, op->bind, blen, &b);
}

/* A bound pop whose bind has a live binding answers from it, with the
 * lease's end while that lease lasts; a lease that ran out unswept ends
 * its binding first (item_load). *found says whether it answered. */
static int
bound_pop_again(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs, bool *found)
{
	size_t blen = strlen(op->bind);
	struct binding b;
	struct item_key ik;
	struct item it;
	char key[ITEM_KEY_MAX + 1];
	bool have_item;
	int rc;

	*found = false;
	if ((rc = binding_get(st, txn, op->queue, op->bind, blen, op->now, &b)) != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	memcpy(key, b.key, b.key_len);
	key[b.key_len] = '\0';
	item_key_make(&ik, op->queue, key);
	rc = item_load(st, txn, op->queue, &ik, &it, qs, op->now);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	have_item = rc == 0;
	if (have_item && (rc = binding_get(st, txn, op->queue, op->bind, blen,
	    op->now, &b)) != 0)	/* re-read: item_load may have written */
		return rc == MDB_NOTFOUND ? 0 : rc;
	*found = true;
	binding_to_result(&b, &op->res);
	snprintf(op->res.bound_to, sizeof op->res.bound_to, "%s", op->bind);
	if (have_item && it.h.state == ITEM_LEASED &&
	    memcmp(it.h.token, b.token, TOKEN_HEX_LEN) == 0) {
		op->res.state = ITEM_LEASED;
		op->res.lease_expires_at = it.h.lease_until;
	}
	return 0;
}

static int
op_claim(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	struct item_key ik;
	struct item it;
	char key[ITEM_KEY_MAX + 1];
	bool again;
	int rc;

	if ((rc = leases_expire_due(st, txn, op->queue, qs, op->now,
	    LEASE_EXPIRY_BATCH)) != 0)
		return rc;
	if (op->bind != NULL &&
	    ((rc = bound_pop_again(st, txn, op, qs, &again)) != 0 || again))
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

/* An ack consumes the item, unless a follow-up waits: then it is ready
 * again for that run, and the answer says "follow_up". */
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
	if ((rc = lease_history(st, txn, op->queue, &ik, &it, HISTORY_ACKED, op->now, op)) != 0)
		return rc;
	qs->acked++;
	op->res.ok = true;
	if (it.h.flags & ITEM_FOLLOW_UP) {
		op->res.follow_up = true;
		op->res.state = ITEM_READY;
		return lease_end(st, txn, op->queue, &ik, &it, END_ACK, op->now,
		    op->now, qs, op);
	}
	if ((rc = index_del(txn, st->leases, op->queue, it.h.lease_until, it.h.seq)) != 0 ||
	    (rc = claim_record_put(st, txn, &ik, op->now, it.h.attempts, it.claimant,
	    it.h.claimant_len, it.bind, it.h.bind_len, &it.h.history)) != 0 ||
	    (rc = mdb_del(txn, st->items, &ik.val, NULL)) != 0)
		return rc;
	qs->leased--;
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
	    (rc = lease_end(st, txn, op->queue, &ik, &it, END_RELEASE, op->now,
	    op->now + op->delay_ms, qs, op)) != 0)
		return rc;
	qs->released++;
	op->res.ok = true;
	op->res.state = (enum item_state)it.h.state;
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
		    it.h.attempts, "", 0, NULL, op, &it.h.history);
	if (rc != 0)
		return rc;
	if (it.h.state == ITEM_LEASED) {
		rc = index_del(txn, st->leases, op->queue, it.h.lease_until, it.h.seq);
		qs->leased--;
	} else if (it.h.state == ITEM_DEAD) {
		rc = dead_index_del(st, txn, &ik);
		qs->dead--;
	} else {
		rc = index_del(txn, st->ready, op->queue, it.h.ready_at, it.h.seq);
		qs->ready--;
	}
	/* no claim record: its history's head is parked */
	if (rc != 0 || (rc = mdb_del(txn, st->items, &ik.val, NULL)) != 0 ||
	    (rc = history_head_park(st, txn, &ik.val, &it.h.history)) != 0)
		return rc;
	qs->removed++;
	op->res.ok = true;
	op->res.state = ITEM_ABSENT;
	return 0;
}

/* Read-only: an expired lease is reported as what its end will make of
 * it (lease_end): ready, or dead at the limit. */
static int
op_status(struct store *st, MDB_txn *txn, struct queue_op *op,
    const struct queue_stats *qs)
{
	struct queue_result *res = &op->res;
	struct item_key ik;
	struct item it;
	int rc;

	item_key_make(&ik, op->queue, op->key);
	rc = item_get(st, txn, &ik, &it);
	if (rc == 0) {
		res->ok = true;
		if (it.h.state == ITEM_LEASED && it.h.lease_until <= op->now)
			it.h = lease_ended_view(it.h, qs->config.max_attempts);
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
	claim_rate_read(qs, op->now, op->res.claims_per_minute);
	rc = ready_first(st, txn, op->queue, &ready_at, key);
	if (rc == 0 && ready_at <= op->now)
		op->res.oldest_ready_at = ready_at;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A dead item is ready again now, with its attempts starting from 0. */
static int
redrive_item(struct store *st, MDB_txn *txn, const struct queue_op *op,
    const struct item_key *ik, struct item *it, struct queue_stats *qs)
{
	struct item n = *it;
	int rc;

	n.h.attempts = 0;
	n.h.claimant_len = 0;
	memset(n.h.token, 0, sizeof n.h.token);
	if ((rc = item_history(st, txn, op->queue, ik, HISTORY_REDRIVEN, op->now,
	    it->h.attempts, "", 0, NULL, op, &n.h.history)) != 0 ||
	    (rc = dead_index_del(st, txn, ik)) != 0 ||
	    (rc = item_to_ready(st, txn, op->queue, ik, &n, op->now)) != 0)
		return rc;
	qs->dead--;
	qs->ready++;
	qs->redriven++;
	return 0;
}

/* The first dead item of the queue (key order), or MDB_NOTFOUND. */
static int
dead_first(struct store *st, MDB_txn *txn, const char *queue,
    struct item_key *ik)
{
	size_t qlen = strlen(queue);
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	store_key_make(ik, queue, "", 0);	/* "queue/": before its entries */
	k = ik->val;
	if ((rc = mdb_cursor_open(txn, st->dead, &cur)) != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && (k.mv_size <= qlen + 1 || k.mv_size > sizeof ik->data - 1 ||
	    memcmp(k.mv_data, ik->data, qlen + 1) != 0))
		rc = MDB_NOTFOUND;
	if (rc == 0) {
		memcpy(ik->data, k.mv_data, k.mv_size);
		ik->data[k.mv_size] = '\0';
		ik->val.mv_size = k.mv_size;
	}
	mdb_cursor_close(cur);
	return rc;
}

/* Redrive the item key, or (redrive_all) up to REDRIVE_BATCH dead items
 * in key order, saying how many remain. */
static int
op_redrive(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	struct queue_result *res = &op->res;
	struct item_key ik;
	struct item it;
	int rc;

	res->ok = true;
	if (!op->redrive_all) {
		item_key_make(&ik, op->queue, op->key);
		rc = item_load(st, txn, op->queue, &ik, &it, qs, op->now);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if (rc == MDB_NOTFOUND || it.h.state != ITEM_DEAD) {
			res->ok = false;
			res->reason = rc == MDB_NOTFOUND ? REFUSAL_NOT_QUEUED : REFUSAL_NOT_DEAD;
			return 0;
		}
		res->redriven = 1;
		return redrive_item(st, txn, op, &ik, &it, qs);
	}
	/* Leases that ran out (some dying now) first, as a claim does. */
	if ((rc = leases_expire_due(st, txn, op->queue, qs, op->now,
	    LEASE_EXPIRY_BATCH)) != 0)
		return rc;
	while (res->redriven < REDRIVE_BATCH &&
	    (rc = dead_first(st, txn, op->queue, &ik)) == 0) {
		if ((rc = item_get(st, txn, &ik, &it)) != 0 ||
		    (rc = redrive_item(st, txn, op, &ik, &it, qs)) != 0)
			return rc;
		res->redriven++;
	}
	res->remaining = qs->dead;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* What counts towards the tenant's quota: every item kept. */
static int64_t
items_counted(const struct queue_stats *qs)
{
	return (int64_t)(qs->ready + qs->leased + qs->dead);
}

/* Read the settings, or change those sent. */
static int
op_config(struct queue_op *op, struct queue_stats *qs)
{
	if (op->set_lease)
		qs->config.lease_ms = op->config.lease_ms;
	if (op->set_max_attempts)
		qs->config.max_attempts = op->config.max_attempts;
	if (op->set_bind_days)
		qs->config.bind_days = op->config.bind_days;
	op->res.ok = true;
	op->res.stats = *qs;
	return 0;
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
	case QOP_STATUS:  return op_status(st, txn, op, qs);
	case QOP_STATS:   return op_stats(st, txn, op, qs);
	case QOP_REDRIVE: return op_redrive(st, txn, op, qs);
	case QOP_CONFIG:  return op_config(op, qs);
	}
	fatal("unknown queue op %d", (int)op->kind);
}

/*----------------------------------------------------------------------------
 * The API (store.h): apply an op, list the queues
 *--------------------------------------------------------------------------*/

/* An enqueue of a new item into a nearly full map (507 Storage Full),
 * or past its tenant's quota (507 Quota Exceeded), is refused before
 * anything is written, as is a follow-up's payload while the map is
 * nearly full; an item queued already is answered as usual, so a full
 * store still says "queued already". */
static enum casq_err
enqueue_refused(struct store *st, MDB_txn *txn, const struct queue_op *op)
{
	struct item_key ik;
	struct item it;
	bool low;
	int rc;

	if (op->kind != QOP_ENQUEUE)
		return E_OK;
	low = store_space_low(st);
	if (!low && op->max_items == 0)
		return E_OK;
	item_key_make(&ik, op->queue, op->key);
	if ((rc = item_get(st, txn, &ik, &it)) != MDB_NOTFOUND)
		return low && rc == 0 && it.h.state == ITEM_LEASED &&
		    it.h.lease_until > op->now ? E_SPACE_REFUSED : E_OK;
	if (low)
		return E_SPACE_REFUSED;
	return tenant_quota_full(st, txn, op->queue, op->max_items) ?
	    E_QUOTA_EXCEEDED : E_OK;
}

/* A queue that does not exist: created by an enqueue, or by settings
 * (an admin configures a queue before its first lead arrives), which is
 * refused as a new item would be; any other op says "no_such_queue" (or
 * 404) and creates nothing: a misspelled queue name must not look like an
 * empty queue or an absent item. E_OK with qs ready to create, or with
 * the refusal in the result; or the error to answer. */
static enum casq_err
queue_new(struct store *st, MDB_txn *txn, struct queue_op *op,
    struct queue_stats *qs)
{
	if (op->kind == QOP_STATS || (op->kind == QOP_CONFIG && !queue_op_writes(op)))
		return E_NO_QUEUE;
	if (op->kind == QOP_CONFIG) {
		if (store_space_low(st))
			return E_SPACE_REFUSED;
		if (tenant_quota_full(st, txn, op->queue, op->max_items))
			return E_QUOTA_EXCEEDED;
	} else if (op->kind != QOP_ENQUEUE) {
		op->res.ok = false;
		op->res.reason = REFUSAL_NO_SUCH_QUEUE;
		return E_OK;
	}
	memset(qs, 0, sizeof *qs);
	qs->next_seq = 1;
	qs->created_at = op->now;
	qs->config.bind_days = BIND_DAYS_DEFAULT;
	return E_OK;
}

enum casq_err
queue_apply(struct store *st, MDB_txn *txn, struct queue_op *op)
{
	struct queue_stats qs, before;
	struct buf payload = op->res.payload;
	enum casq_err err;
	bool created = false;
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
		if ((err = queue_new(st, txn, op, &qs)) != E_OK ||
		    op->res.reason != REFUSAL_NONE)
			return err;
		created = true;
	} else if (rc != 0) {
		return store_map_error(rc, "read queue stats");
	}
	if ((err = enqueue_refused(st, txn, op)) != E_OK)
		return err;
	before = qs;
	if ((rc = queue_dispatch(st, txn, op, &qs)) != 0)
		return store_map_error(rc, "queue operation");
	if (!created && memcmp(&qs, &before, sizeof qs) == 0)
		return E_OK;
	if ((rc = stats_put(st, txn, op->queue, &qs)) != 0 ||
	    (rc = tenant_adjust(st, txn, op->queue, items_counted(&qs) -
	    items_counted(&before), 0, 0)) != 0)
		return store_map_error(rc, "write queue stats");
	return E_OK;
}

/* store_list's callback, turned into queue_list's. */
struct queue_list_call {
	struct queue_stats qs;
	queue_visit_fn     fn;
	void              *ctx;
};

static void
queue_list_one(void *ctx, const char *name, size_t len)
{
	struct queue_list_call *c = ctx;

	c->fn(c->ctx, name, len, &c->qs);
}

enum casq_err
queue_list(struct store *st, MDB_txn *txn, const char *prefix,
    const char *after, size_t limit, queue_visit_fn fn, void *ctx)
{
	struct queue_list_call c = { .fn = fn, .ctx = ctx };

	return store_map_error(store_list(txn, st->queues, prefix, after, limit,
	    &c.qs, sizeof c.qs, queue_list_one, &c), "list queues");
}

/* What a tool is shown of an item: as op_status and the item listing
 * show it, a lease that ran out is what its end will make of it
 * (lease_ended_view: ready, with a follow-up's payload, or dead at max
 * attempts). */
static struct queue_walk_item
walk_item(const MDB_val *k, size_t plen, const struct item *it, int64_t now,
    uint32_t max)
{
	bool ran_out = it->h.state == ITEM_LEASED && it->h.lease_until <= now;
	bool follow = ran_out && (it->h.flags & ITEM_FOLLOW_UP);
	struct item_hdr h = ran_out ? lease_ended_view(it->h, max) : it->h;

	return (struct queue_walk_item){
	    .key = (const char *)k->mv_data + plen, .key_len = k->mv_size - plen,
	    .state = (enum item_state)h.state, .attempts = h.attempts,
	    .enqueued_at = h.enqueued_at, .ready_at = h.ready_at,
	    .lease_until = it->h.lease_until,
	    .claimant = it->claimant, .claimant_len = it->h.claimant_len,
	    .payload = follow ? it->follow : it->payload,
	    .payload_len = follow ? it->h.follow_len : it->h.payload_len };
}

enum casq_err
queue_walk(struct store *st, MDB_txn *txn, const char *queue,
    const char *from, int64_t now, queue_walk_fn fn, void *ctx)
{
	size_t plen = strlen(queue) + 1;
	struct item_key start;
	MDB_cursor *cur;
	MDB_val k, v;
	struct queue_stats qs;
	bool more = true;
	int rc;

	item_key_make(&start, queue, from ? from : "");
	if ((rc = stats_get(st, txn, queue, &qs)) == MDB_NOTFOUND)
		return E_OK;		/* no queue: no items */
	if (rc != 0 || (rc = mdb_cursor_open(txn, st->items, &cur)) != 0)
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
		view = walk_item(&k, plen, &it, now, qs.config.max_attempts);
		more = fn(ctx, &view);
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? E_OK : store_map_error(rc, "list items");
}

/*----------------------------------------------------------------------------
 * Listing: a queue's items of one state, in key order
 *--------------------------------------------------------------------------*/

/* When a listed item entered its state (h as status shows it). Ready:
 * ready_at, when it became (or, delayed, becomes) claimable: its enqueue,
 * release, redrive or lease's end. Dead: dead_at, its last lease's end.
 * Leased: its claim, which the record does not keep (only the lease's
 * end) but its history does; 0 when that event has left the history
 * (--history-days shorter than the lease). */
static int64_t
item_since(struct store *st, MDB_txn *txn, const char *queue, const char *key,
    const struct item_hdr *h)
{
	static const enum history_kind claims[] = { HISTORY_CLAIMED, HISTORY_POPPED };
	int64_t at = 0;

	if (h->state == ITEM_READY)
		return h->ready_at;
	if (h->state == ITEM_DEAD)
		return h->dead_at;
	history_last_of(st, txn, queue, key, claims, 2, &at);
	return at;
}

/* One item of the walk: fn when it is in state. */
static int
items_visit(struct store *st, MDB_txn *txn, const char *queue, const MDB_val *k,
    const MDB_val *v, enum item_state state, int64_t now, uint32_t max,
    queue_item_visit_fn fn, void *ctx, bool *listed)
{
	size_t qlen = strlen(queue);
	char key[ITEM_KEY_MAX + 1];
	struct item_hdr h;

	if (v->mv_size < sizeof h || k->mv_size - qlen - 1 > ITEM_KEY_MAX)
		return MDB_CORRUPTED;
	memcpy(&h, v->mv_data, sizeof h);
	if (h.state == ITEM_LEASED && h.lease_until <= now)
		h = lease_ended_view(h, max);	/* as status shows it */
	*listed = h.state == state;
	if (!*listed || fn == NULL)
		return 0;
	memcpy(key, (const char *)k->mv_data + qlen + 1, k->mv_size - qlen - 1);
	key[k->mv_size - qlen - 1] = '\0';
	fn(ctx, key, k->mv_size - qlen - 1, h.attempts,
	    item_since(st, txn, queue, key, &h));
	return 0;
}

/* The walk after "queue/after": items in key order. It stops at limit
 * items, at the queue's end, or after QUEUE_ITEMS_SCAN_MAX items read;
 * *next is then the last key read when more may follow. */
static int
items_walk(struct store *st, MDB_txn *txn, MDB_cursor *cur, const char *queue,
    enum item_state state, const char *after, size_t limit, int64_t now,
    uint32_t max, queue_item_visit_fn fn, void *ctx,
    char next[static ITEM_KEY_MAX + 1])
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
			    max, NULL, NULL, &listed)) != 0 || listed)
				return rc;
		} else if ((rc = items_visit(st, txn, queue, &k, &v, state, now,
		    max, fn, ctx, &listed)) != 0) {
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
	rc = items_walk(st, txn, cur, queue, state, after, limit, now,
	    qs.config.max_attempts, fn, ctx, next);
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
	struct claim_hdr h;
	MDB_val tail;
	int rc;

	if (!ref_split(ref, reflen, &ik, queue))
		return 0;
	rc = store_record_get(txn, st->claimed, &ik.val, &h, sizeof h, &tail);
	if (rc == MDB_NOTFOUND || (rc == 0 && h.claimed_at + CLAIM_RECORD_TTL_MS != due))
		return 0;		/* gone, or replaced by a newer claim */
	/* the item's history outlives the record: its head is parked */
	if (rc == 0)
		rc = history_head_park(st, txn, &ik.val, &h.history);
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
