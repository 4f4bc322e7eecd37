/*
 * store_once.c - once-windows: the first call with an id within its
 * window says first:true, every later one first:false with the count.
 * One write transaction per call makes "first" unique across workers.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

/* On disk in "oncens" (docs/storage.md): four 8-byte integers. */
_Static_assert(sizeof(struct once_stats) == 32, "once_stats layout");

struct once_rec {		/* on disk in "once" */
	int64_t  first_seen;
	int64_t  expires_at;
	uint64_t count;
};

/*----------------------------------------------------------------------------
 * Records: a window, under "scope/id"
 *--------------------------------------------------------------------------*/

static int
once_rec_get(struct store *st, MDB_txn *txn, const struct store_key *sk,
    struct once_rec *rec)
{
	return store_record_get(txn, st->once, &sk->val, rec, sizeof *rec, NULL);
}

static int
once_rec_put(struct store *st, MDB_txn *txn, const struct store_key *sk,
    const struct once_rec *rec)
{
	MDB_val v = { sizeof *rec, (void *)rec };

	return mdb_put(txn, st->once, (MDB_val *)&sk->val, &v, 0);
}

/*----------------------------------------------------------------------------
 * A scope's counters, under "tenant:scope" (a scope exists from its first
 * window)
 *--------------------------------------------------------------------------*/

static int
scope_get(struct store *st, MDB_txn *txn, const char *scope, size_t len,
    struct once_stats *s)
{
	MDB_val k = { len, (void *)scope };
	int rc = store_record_get(txn, st->oncens, &k, s, sizeof *s, NULL);

	if (rc == MDB_NOTFOUND) {
		memset(s, 0, sizeof *s);
		return 0;
	}
	return rc;
}

static int
scope_put(struct store *st, MDB_txn *txn, const char *scope, size_t len,
    const struct once_stats *s)
{
	MDB_val k = { len, (void *)scope }, v = { sizeof *s, (void *)s };

	return mdb_put(txn, st->oncens, &k, &v, 0);
}

/* A window started in scope; is_new: for an id without a record. */
static int
scope_opened(struct store *st, MDB_txn *txn, const char *scope, bool is_new,
    int64_t now)
{
	size_t len = strlen(scope);
	struct once_stats s;
	int rc;

	if ((rc = scope_get(st, txn, scope, len, &s)) != 0)
		return rc;
	if (s.created_at == 0)
		s.created_at = now;
	s.windows += is_new;
	s.opened++;
	return scope_put(st, txn, scope, len, &s);
}

/*----------------------------------------------------------------------------
 * State changes: a window starts (with its expiry entry), is counted
 *--------------------------------------------------------------------------*/

static int
window_start(struct store *st, MDB_txn *txn, const struct store_key *sk,
    struct once_rec *rec, const struct once_op *op)
{
	rec->first_seen = op->now;
	rec->expires_at = op->now + op->ttl_ms;
	rec->count = 0;
	return expiry_put(st, txn, rec->expires_at, EXPIRY_ONCE, sk->data,
	    sk->val.mv_size);
}

/*----------------------------------------------------------------------------
 * The operation (store.h)
 *--------------------------------------------------------------------------*/

enum casq_err
once_apply(struct store *st, MDB_txn *txn, void *arg)
{
	struct once_op *op = arg;
	struct store_key sk;
	struct once_rec rec;
	bool is_new;
	int rc;

	store_key_make(&sk, op->scope, op->id, strlen(op->id));
	rc = once_rec_get(st, txn, &sk, &rec);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_map_error(rc, "once: read window");
	is_new = rc == MDB_NOTFOUND;
	op->first = is_new || rec.expires_at <= op->now;
	/* refused before the first write: a new window in a nearly full
	 * map adds a record or an expiry entry */
	if (op->first && store_space_low(st))
		return E_SPACE_REFUSED;
	/* a window for a new id counts towards the tenant's quota (a closed
	 * one is counted until swept, so reopening it adds nothing) */
	if (is_new && tenant_quota_full(st, txn, op->scope, op->max_items))
		return E_QUOTA_EXCEEDED;
	if (is_new && (rc = tenant_adjust(st, txn, op->scope, 0, 0, 1)) != 0)
		return store_map_error(rc, "once: count window");
	if (op->first && ((rc = window_start(st, txn, &sk, &rec, op)) != 0 ||
	    (rc = scope_opened(st, txn, op->scope, is_new, op->now)) != 0))
		return store_map_error(rc, "once: start window");
	rec.count++;
	if ((rc = once_rec_put(st, txn, &sk, &rec)) != 0)
		return store_map_error(rc, "once: write window");
	op->first_seen = rec.first_seen;
	op->expires_at = rec.expires_at;
	op->count = rec.count;
	return E_OK;
}

/*----------------------------------------------------------------------------
 * Expiry hook (store_expiry.c's table): a window ended
 *--------------------------------------------------------------------------*/

int
once_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
    size_t reflen)
{
	const char *slash = memchr(ref, '/', reflen);
	struct store_key sk;
	struct once_stats s;
	struct once_rec rec;
	size_t slen;
	int rc;

	if (slash == NULL || !store_key_from_ref(&sk, ref, reflen))
		return 0;
	slen = (size_t)(slash - ref);
	rc = once_rec_get(st, txn, &sk, &rec);
	if (rc == MDB_NOTFOUND || rc == MDB_CORRUPTED)
		return 0;		/* gone, or not ours to judge */
	if (rc != 0)
		return rc;
	if (rec.expires_at != due)
		return 0;		/* a new window started since */
	if ((rc = mdb_del(txn, st->once, &sk.val, NULL)) != 0 ||
	    (rc = scope_get(st, txn, ref, slen, &s)) != 0)
		return rc;
	/* a scope without windows keeps its record, as a namespace does */
	s.windows--;
	s.expired++;
	if ((rc = scope_put(st, txn, ref, slen, &s)) != 0)
		return rc;
	return tenant_adjust(st, txn, sk.data, 0, 0, -1);
}

/*----------------------------------------------------------------------------
 * The scope list (store.h)
 *--------------------------------------------------------------------------*/

/* store_list's callback, turned into once_scope_list's. */
struct scope_list_call {
	struct once_stats   s;
	once_scope_visit_fn fn;
	void               *ctx;
};

static void
scope_list_one(void *ctx, const char *name, size_t len)
{
	struct scope_list_call *c = ctx;

	c->fn(c->ctx, name, len, &c->s);
}

enum casq_err
once_scope_list(struct store *st, MDB_txn *txn, const char *prefix,
    const char *after, size_t limit, once_scope_visit_fn fn, void *ctx)
{
	struct scope_list_call c = { .fn = fn, .ctx = ctx };

	return store_map_error(store_list(txn, st->oncens, prefix, after, limit,
	    &c.s, sizeof c.s, scope_list_one, &c), "list once scopes");
}
