/*
 * store_upgrade.c - the steps from an older schema, at open, in the
 * open's transaction (store.c runs them in order):
 *   1 to 2: every key of every family gets the tenant "default:" in front
 *     (the expiry index's references too), and tenant "default" is given
 *     the usage its data adds up to;
 *   2 to 3: every queue's stats record gains the dead count, the settings
 *     (defaults: no lease, unlimited attempts, 365 bind days) and the
 *     claims-per-minute ring; every item record the follow-up, dead and
 *     bind fields; every claim record its bind length (0). Item history
 *     and bindings are databases of their own that store.c creates at
 *     open: nothing stored before has either, so nothing else moves.
 * One transaction: a crash or a full map leaves the database as it was.
 * Needs room for a second copy of what it rewrites while it runs (LMDB
 * copies what it changes); if the map is too small, casqd says so and a
 * larger --map-size lets it finish.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_upgrade.h"

#define TENANT_PREFIX	DEFAULT_TENANT ":"
/* Entries moved per pass; bounds the copy held in memory, not the
 * transaction (which holds them all). */
#define UPGRADE_BATCH_BYTES	(8u << 20)

/* Schema 2's records, as they are converted. */
struct queue_stats_v2 {
	uint64_t ready, leased, next_seq;
	uint64_t enqueued, claimed, acked, released, removed, expired;
	int64_t  created_at;
};
struct item_hdr_v2 {
	uint8_t  state;
	uint8_t  pad;
	uint16_t claimant_len;
	uint32_t attempts;
	uint64_t seq;
	int64_t  enqueued_at, ready_at, lease_until;
	uint32_t payload_len;
	char     token[TOKEN_HEX_LEN];
};
/* Schema 3's, as the step to 3 writes them (the step to 4,
 * store_upgrade_history.c, gives them the history head). */
struct item_hdr_v3 {
	uint8_t  state;
	uint8_t  flags;
	uint16_t claimant_len;
	uint32_t attempts;
	uint64_t seq;
	int64_t  enqueued_at, ready_at, lease_until;
	int64_t  follow_ready_at;
	int64_t  dead_at;
	uint32_t payload_len;
	uint32_t follow_len;
	uint16_t bind_len;
	uint16_t pad;
	char     token[TOKEN_HEX_LEN];
};
struct claim_hdr_v3 {
	int64_t  claimed_at;
	uint32_t attempts;
	uint16_t owner_len;
	uint16_t bind_len;
};
_Static_assert(sizeof(struct item_hdr_v3) == ITEM_HDR_V3 &&
    offsetof(struct item_hdr, history) == ITEM_HDR_V3, "schema 3 item header");
_Static_assert(sizeof(struct claim_hdr_v3) == CLAIM_HDR_V3 &&
    offsetof(struct claim_hdr, history) == CLAIM_HDR_V3, "schema 3 claim header");
_Static_assert(sizeof(struct queue_stats_v2) == 80, "schema 2 queue stats");
_Static_assert(sizeof(struct item_hdr_v2) == 80, "schema 2 item header");
#define CLAIM_HDR_V2	14	/* claimed_at, attempts, owner_len; then padding */

/* Where in a key the tenant goes: after "<16 hex>/<kind>/" in the expiry
 * index, at the start everywhere else. */
static size_t
tenant_offset(bool expiry)
{
	return expiry ? 16 + 1 + 1 + 1 : 0;
}

static bool
already_moved(const MDB_val *k, bool expiry)
{
	size_t at = tenant_offset(expiry), n = sizeof TENANT_PREFIX - 1;

	return k->mv_size >= at + n && memcmp((char *)k->mv_data + at, TENANT_PREFIX, n) == 0;
}

struct moved {
	struct buf keys, values;	/* back to back, lengths in lens */
	struct buf lens;		/* size_t pairs */
	size_t     n;
};

/* Copy up to a batch of entries not yet moved, starting after *from. */
static int
collect(MDB_txn *txn, MDB_dbi dbi, bool expiry, struct buf *from, struct moved *m)
{
	MDB_cursor *cur;
	MDB_val k = { from->len, from->data }, v;
	MDB_cursor_op how = from->len ? MDB_SET_RANGE : MDB_FIRST;
	int rc;

	m->keys.len = m->values.len = m->lens.len = 0;
	m->n = 0;
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, how); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t lens[2] = { k.mv_size, v.mv_size };

		if (already_moved(&k, expiry))
			continue;
		buf_append(&m->keys, k.mv_data, k.mv_size);
		buf_append(&m->values, v.mv_data, v.mv_size);
		buf_append(&m->lens, lens, sizeof lens);
		m->n++;
		if (m->keys.len + m->values.len >= UPGRADE_BATCH_BYTES)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Delete each collected entry and put it back under its tenant's key. */
static int
move(MDB_txn *txn, MDB_dbi dbi, bool expiry, const struct moved *m, struct buf *last)
{
	const char *kp = m->keys.data, *vp = m->values.data;
	char nk[512];
	int rc;

	for (size_t i = 0; i < m->n; i++) {
		size_t lens[2], at = tenant_offset(expiry), plen = sizeof TENANT_PREFIX - 1;
		MDB_val k, v, n;

		memcpy(lens, m->lens.data + i * sizeof lens, sizeof lens);
		k = (MDB_val){ lens[0], (void *)kp };
		v = (MDB_val){ lens[1], (void *)vp };
		if (lens[0] < at || lens[0] + plen > sizeof nk)
			return MDB_CORRUPTED;	/* no schema-1 key is this long */
		memcpy(nk, kp, at);
		memcpy(nk + at, TENANT_PREFIX, plen);
		memcpy(nk + at + plen, kp + at, lens[0] - at);
		n = (MDB_val){ lens[0] + plen, nk };
		if ((rc = mdb_del(txn, dbi, &k, NULL)) != 0 ||
		    (rc = mdb_put(txn, dbi, &n, &v, 0)) != 0)
			return rc;
		last->len = 0;
		buf_append(last, kp, lens[0]);
		kp += lens[0];
		vp += lens[1];
	}
	return 0;
}

static int
move_db(MDB_txn *txn, MDB_dbi dbi, bool expiry, size_t *count)
{
	struct moved m = { 0 };
	struct buf last = { 0 };
	int rc;

	*count = 0;
	do {
		if ((rc = collect(txn, dbi, expiry, &last, &m)) != 0 ||
		    (rc = move(txn, dbi, expiry, &m, &last)) != 0)
			break;
		*count += m.n;
	} while (m.n > 0);
	buf_free(&m.keys);
	buf_free(&m.values);
	buf_free(&m.lens);
	buf_free(&last);
	return rc;
}

int
upgrade_failed(char *why, size_t whylen, int schema, const char *db, int rc)
{
	snprintf(why, whylen, "upgrading the database to schema %d (%s): %s%s",
	    schema, db, mdb_strerror(rc), rc == MDB_MAP_FULL ?
	    "; start once with a larger --map-size" : "");
	return rc;
}

/* What tenant default holds after the move: queued items from the queue
 * counters, values from the namespace counters, windows by count. */
static int
default_usage(struct store *st, MDB_txn *txn, struct tenant_usage *u,
    size_t windows)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	memset(u, 0, sizeof *u);
	u->windows = windows;
	if ((rc = mdb_cursor_open(txn, st->queues, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct queue_stats_v2 qs;	/* upgraded to 3 after this */

		if (v.mv_size != sizeof qs)
			continue;
		memcpy(&qs, v.mv_data, sizeof qs);
		u->items += qs.ready + qs.leased;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(txn, st->kvns, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct kv_stats s;

		if (v.mv_size != sizeof s)
			continue;
		memcpy(&s, v.mv_data, sizeof s);
		u->values += s.keys;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_upgrade_v1(struct store *st, MDB_txn *txn, char *why, size_t whylen)
{
	const struct {
		const char *name;
		MDB_dbi     dbi;
		bool        expiry;
	} dbs[] = {
		{ "queues", st->queues, false }, { "items", st->items, false },
		{ "ready", st->ready, false }, { "leases", st->leases, false },
		{ "claimed", st->claimed, false }, { "kv", st->kv, false },
		{ "kvns", st->kvns, false }, { "once", st->once, false },
		{ "idem", st->idem, false }, { "expiry", st->expiry, true },
	};
	size_t count[sizeof dbs / sizeof dbs[0]], len = 0, windows = 0;
	struct tenant_usage u;
	MDB_val k = { sizeof DEFAULT_TENANT - 1, (void *)DEFAULT_TENANT };
	MDB_val v = { sizeof u, &u };
	int rc;

	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
		if ((rc = move_db(txn, dbs[i].dbi, dbs[i].expiry, &count[i])) != 0) {
			return upgrade_failed(why, whylen, 2, dbs[i].name, rc);
		} else if (dbs[i].dbi == st->once) {
			windows = count[i];
		}
	if ((rc = default_usage(st, txn, &u, windows)) != 0 ||
	    (rc = mdb_put(txn, st->tenants, &k, &v, 0)) != 0) {
		return upgrade_failed(why, whylen, 2, "tenants", rc);
	}
	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0] && len < whylen; i++)
		len += (size_t)snprintf(why + len, whylen - len, "%s%s %zu",
		    i ? ", " : "", dbs[i].name, count[i]);
	return 0;
}

/* --- schema 2 to 3 --- */

static int
convert_stats(const MDB_val *old, struct buf *out)
{
	struct queue_stats_v2 o;
	struct queue_stats n = { 0 };

	if (old->mv_size != sizeof o)
		return MDB_CORRUPTED;
	memcpy(&o, old->mv_data, sizeof o);
	n.ready = o.ready;
	n.leased = o.leased;
	n.next_seq = o.next_seq;
	n.enqueued = o.enqueued;
	n.claimed = o.claimed;
	n.acked = o.acked;
	n.released = o.released;
	n.removed = o.removed;
	n.expired = o.expired;
	n.created_at = o.created_at;
	n.config.bind_days = BIND_DAYS_DEFAULT;
	buf_append(out, &n, sizeof n);
	return 0;
}

static int
convert_item(const MDB_val *old, struct buf *out)
{
	struct item_hdr_v2 o;
	struct item_hdr_v3 n = { 0 };

	if (old->mv_size < sizeof o)
		return MDB_CORRUPTED;
	memcpy(&o, old->mv_data, sizeof o);
	if (old->mv_size != sizeof o + o.claimant_len + o.payload_len)
		return MDB_CORRUPTED;
	n.state = o.state;
	n.claimant_len = o.claimant_len;
	n.attempts = o.attempts;
	n.seq = o.seq;
	n.enqueued_at = o.enqueued_at;
	n.ready_at = o.ready_at;
	n.lease_until = o.lease_until;
	n.payload_len = o.payload_len;
	memcpy(n.token, o.token, sizeof n.token);
	buf_append(out, &n, sizeof n);
	buf_append(out, (const char *)old->mv_data + sizeof o, old->mv_size - sizeof o);
	return 0;
}

/* Schema 2's claim record has 2 bytes of padding where the bind's
 * length now is: written as 0. */
static int
convert_claim(const MDB_val *old, struct buf *out)
{
	struct claim_hdr_v3 n = { 0 };
	const char *p = old->mv_data;

	if (old->mv_size < sizeof n)
		return MDB_CORRUPTED;
	memcpy(&n, p, CLAIM_HDR_V2);
	n.bind_len = 0;
	if (old->mv_size != sizeof n + n.owner_len)
		return MDB_CORRUPTED;
	buf_append(out, &n, sizeof n);
	buf_append(out, p + sizeof n, old->mv_size - sizeof n);
	return 0;
}

/* Keys stay: replacing a value under a cursor keeps it in place. */
int
upgrade_convert_db(MDB_txn *txn, MDB_dbi dbi, int (*convert)(const MDB_val *, struct buf *),
    size_t *count)
{
	struct buf nv = { 0 };
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*count = 0;
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char kb[512];	/* LMDB keys are at most 511 bytes */
		MDB_val kc = { k.mv_size, kb };

		/* The key and value point into the page the put rewrites. */
		memcpy(kb, k.mv_data, k.mv_size);
		nv.len = 0;
		if ((rc = convert(&v, &nv)) != 0 ||
		    (rc = mdb_cursor_put(cur, &kc, &(MDB_val){ nv.len, nv.data }, MDB_CURRENT)) != 0)
			break;
		(*count)++;
	}
	mdb_cursor_close(cur);
	buf_free(&nv);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Schema 3 counts each once scope's windows in "oncens": the counters
 * from the windows held. What schema 2 never recorded (windows opened
 * and swept before) starts there: opened is the windows held, expired 0,
 * created_at the oldest window's first_seen. */
static int
put_scope(MDB_txn *txn, MDB_dbi dbi, const char *scope, size_t len,
    const struct once_stats *s)
{
	return mdb_put(txn, dbi, &(MDB_val){ len, (void *)scope },
	    &(MDB_val){ sizeof *s, (void *)s }, 0);
}

static int
count_scopes(struct store *st, MDB_txn *txn, size_t *count)
{
	char scope[QUEUE_NAME_MAX + 1];
	size_t slen = 0;
	struct once_stats s = { 0 };
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*count = 0;
	if ((rc = mdb_cursor_open(txn, st->once, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const char *slash = memchr(k.mv_data, '/', k.mv_size);
		size_t len = slash ? (size_t)(slash - (const char *)k.mv_data) : 0;
		int64_t first_seen;

		if (len == 0 || len > QUEUE_NAME_MAX || v.mv_size < sizeof first_seen)
			continue;	/* not a window: casq-verify reports it */
		memcpy(&first_seen, v.mv_data, sizeof first_seen);
		if (len != slen || memcmp(scope, k.mv_data, len) != 0) {
			if (slen && (rc = put_scope(txn, st->oncens, scope, slen, &s)) != 0)
				break;
			memcpy(scope, k.mv_data, len);
			slen = len;
			s = (struct once_stats){ .created_at = first_seen };
			(*count)++;
		}
		s.windows++;
		s.opened++;
		if (first_seen < s.created_at)
			s.created_at = first_seen;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		rc = slen ? put_scope(txn, st->oncens, scope, slen, &s) : 0;
	return rc;
}

int
store_upgrade_v2(struct store *st, MDB_txn *txn, char *why, size_t whylen)
{
	const struct {
		const char *name;
		MDB_dbi     dbi;
		int       (*convert)(const MDB_val *, struct buf *);
	} dbs[] = {
		{ "queues", st->queues, convert_stats },
		{ "items", st->items, convert_item },
		{ "claimed", st->claimed, convert_claim },
	};
	size_t count[sizeof dbs / sizeof dbs[0]], scopes;
	int rc;

	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
		if ((rc = upgrade_convert_db(txn, dbs[i].dbi, dbs[i].convert, &count[i])) != 0) {
			return upgrade_failed(why, whylen, 3, dbs[i].name, rc);
		}
	if ((rc = count_scopes(st, txn, &scopes)) != 0) {
		return upgrade_failed(why, whylen, 3, "oncens", rc);
	}
	snprintf(why, whylen, "item history recorded from now on; records "
	    "converted: queues %zu, items %zu, claimed %zu; once scopes counted %zu",
	    count[0], count[1], count[2], scopes);
	return 0;
}
