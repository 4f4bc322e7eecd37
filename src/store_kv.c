/*
 * store_kv.c - values with compare-and-swap, and atomic counters.
 *
 * Versions start at 1, grow by one per write, and are never reused: each
 * namespace remembers the highest version it ever deleted or expired
 * (version_floor), and a re-created key starts above it, so a cas value
 * read before a delete can never match by accident.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct kv_hdr {			/* on disk, then the value's JSON text */
	uint64_t version;
	int64_t  updated_at;
	int64_t  expires_at;	/* 0: never */
	uint32_t value_len;
	uint32_t pad;
};

struct kv_rec {
	struct kv_hdr h;
	const char   *value;	/* points into the LMDB value */
};

/* A value's key, "namespace/key" (store.c's store_key). */
#define kv_key	store_key

bool
kv_op_writes(const struct kv_op *op)
{
	return op->kind != KV_GET && op->kind != KV_STATS;
}

void
kv_result_free(struct kv_result *res)
{
	buf_free(&res->value);
}

/*----------------------------------------------------------------------------
 * Records: a value, a namespace's counters; one read or write each
 *--------------------------------------------------------------------------*/

static int
kv_rec_get(struct store *st, MDB_txn *txn, const struct kv_key *kk,
    struct kv_rec *r)
{
	MDB_val tail;
	int rc = store_record_get(txn, st->kv, &kk->val, &r->h, sizeof r->h, &tail);

	if (rc != 0)
		return rc;
	if (tail.mv_size != r->h.value_len)
		return MDB_CORRUPTED;
	r->value = tail.mv_data;
	return 0;
}

static int
kv_rec_put(struct store *st, MDB_txn *txn, const struct kv_key *kk,
    const struct kv_hdr *h, const char *value)
{
	MDB_val v = { sizeof *h + h->value_len, NULL };
	int rc;

	/* MDB_RESERVE: write the record in place, no temporary copy. */
	if ((rc = mdb_put(txn, st->kv, (MDB_val *)&kk->val, &v, MDB_RESERVE)) != 0)
		return rc;
	memcpy(v.mv_data, h, sizeof *h);
	memcpy((char *)v.mv_data + sizeof *h, value, h->value_len);
	if (h->expires_at > 0)
		return expiry_put(st, txn, h->expires_at, EXPIRY_VALUE, kk->data,
		    kk->val.mv_size);
	return 0;
}

static int
ns_get(struct store *st, MDB_txn *txn, const char *ns, size_t nslen,
    struct kv_stats *s)
{
	MDB_val k = { nslen, (void *)ns };
	int rc = store_record_get(txn, st->kvns, &k, s, sizeof *s, NULL);

	if (rc == MDB_NOTFOUND) {	/* a namespace exists from its first write */
		memset(s, 0, sizeof *s);
		return 0;
	}
	return rc;
}

static int
ns_put(struct store *st, MDB_txn *txn, const char *ns, size_t nslen,
    const struct kv_stats *s)
{
	MDB_val k = { nslen, (void *)ns }, v = { sizeof *s, (void *)s };

	return mdb_put(txn, st->kvns, &k, &v, 0);
}

/*----------------------------------------------------------------------------
 * State changes: a value written as its next version, dropped, expired
 *--------------------------------------------------------------------------*/

/* Delete a record, raising the namespace's version floor past it. */
static int
kv_drop(struct store *st, MDB_txn *txn, const struct kv_key *kk,
    const struct kv_rec *r, struct kv_stats *s)
{
	if (r->h.version > s->version_floor)
		s->version_floor = r->h.version;
	s->keys--;
	return mdb_del(txn, st->kv, (MDB_val *)&kk->val, NULL);
}

/* Load a live record: an expired one is dropped first (writes) or just
 * reported absent (reads). */
static int
kv_load(struct store *st, MDB_txn *txn, const struct kv_key *kk,
    struct kv_rec *r, struct kv_stats *s, int64_t now, bool write)
{
	int rc = kv_rec_get(st, txn, kk, r);

	if (rc != 0 || r->h.expires_at == 0 || r->h.expires_at > now)
		return rc;
	if (!write)
		return MDB_NOTFOUND;
	s->expired++;
	rc = kv_drop(st, txn, kk, r, s);
	return rc ? rc : MDB_NOTFOUND;
}

static void
result_from_rec(struct kv_result *res, const struct kv_rec *r)
{
	res->version = r->h.version;
	res->updated_at = r->h.updated_at;
	res->expires_at = r->h.expires_at;
	res->value.len = 0;
	buf_append(&res->value, r->value, r->h.value_len);
}

/* Write value as the next version of the record (or a new one). */
static int
kv_write(struct store *st, MDB_txn *txn, struct kv_op *op,
    const struct kv_key *kk, const struct kv_rec *old, bool exists,
    const char *value, size_t len, struct kv_stats *s)
{
	struct kv_hdr h = {
		.version = exists ? old->h.version + 1 : s->version_floor + 1,
		.updated_at = op->now,
		.expires_at = op->ttl_ms > 0 ? op->now + op->ttl_ms :
		    (exists ? old->h.expires_at : 0),
		.value_len = (uint32_t)len,
	};

	if (!exists)
		s->keys++;
	op->res.ok = true;
	op->res.version = h.version;
	op->res.updated_at = h.updated_at;
	op->res.expires_at = h.expires_at;
	return kv_rec_put(st, txn, kk, &h, value);
}

static bool
cas_matches(const struct kv_op *op, bool exists, const struct kv_rec *r)
{
	if (!op->has_cas)
		return true;
	return op->cas == (exists ? r->h.version : 0);
}

/*----------------------------------------------------------------------------
 * Operations: one per kv_op kind
 *--------------------------------------------------------------------------*/

static int
op_set(struct store *st, MDB_txn *txn, struct kv_op *op,
    const struct kv_key *kk, struct kv_stats *s)
{
	struct kv_rec r;
	int rc;
	bool exists;

	rc = kv_load(st, txn, kk, &r, s, op->now, true);
	exists = rc == 0;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (!cas_matches(op, exists, &r)) {
		s->cas_failures++;
		op->res.ok = false;
		op->res.reason = REFUSAL_VERSION_MISMATCH;
		op->res.version = exists ? r.h.version : 0;
		return 0;
	}
	s->sets++;
	return kv_write(st, txn, op, kk, &r, exists, op->value, op->value_len, s);
}

static int
op_delete(struct store *st, MDB_txn *txn, struct kv_op *op,
    const struct kv_key *kk, struct kv_stats *s)
{
	struct kv_rec r;
	int rc = kv_load(st, txn, kk, &r, s, op->now, true);

	op->res.ok = false;
	if (rc == MDB_NOTFOUND) {
		op->res.reason = REFUSAL_NOT_FOUND;
		return 0;
	}
	if (rc != 0)
		return rc;
	op->res.version = r.h.version;
	if (!cas_matches(op, true, &r)) {
		s->cas_failures++;
		op->res.reason = REFUSAL_VERSION_MISMATCH;
		return 0;
	}
	s->deletes++;
	op->res.ok = true;
	return kv_drop(st, txn, kk, &r, s);
}

/* The stored value as an integer counter: a JSON integer, or a string of
 * one (a value set from a form field is stored as a string); false if it
 * is anything else. */
static bool
counter_value(const struct kv_rec *r, int64_t *v)
{
	const char *p = r->value;
	size_t n = r->h.value_len;
	char text[32], *end;

	if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
		p++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof text)
		return false;
	memcpy(text, p, n);
	text[n] = '\0';
	errno = 0;
	*v = strtoll(text, &end, 10);
	return errno == 0 && *end == '\0' && (text[0] == '-' || (text[0] >= '0' && text[0] <= '9'));
}

static int
op_incr(struct store *st, MDB_txn *txn, struct kv_op *op,
    const struct kv_key *kk, struct kv_stats *s)
{
	struct kv_rec r;
	int64_t v = 0;
	char text[32];
	int rc, n;
	bool exists;

	rc = kv_load(st, txn, kk, &r, s, op->now, true);
	exists = rc == 0;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (exists && !counter_value(&r, &v)) {
		op->res.ok = false;
		op->res.reason = REFUSAL_NOT_A_COUNTER;
		return 0;
	}
	if (__builtin_add_overflow(v, op->by, &v)) {
		op->res.ok = false;
		op->res.reason = REFUSAL_OVERFLOW;
		return 0;
	}
	n = snprintf(text, sizeof text, "%lld", (long long)v);
	s->incrs++;
	op->res.counter = v;
	return kv_write(st, txn, op, kk, &r, exists, text, (size_t)n, s);
}

static int
op_get(struct store *st, MDB_txn *txn, struct kv_op *op,
    const struct kv_key *kk, struct kv_stats *s)
{
	struct kv_rec r;
	int rc = kv_load(st, txn, kk, &r, s, op->now, false);

	op->res.ok = rc == 0;
	if (rc == 0)
		result_from_rec(&op->res, &r);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*----------------------------------------------------------------------------
 * The API (store.h)
 *--------------------------------------------------------------------------*/

/* Refuse a write that would add data to a nearly full map (507), before
 * anything is written: a new (or expired) key, a value longer than the
 * stored one (an incr's few digits are not counted), or a ttl, which adds
 * an entry to the expiry index. */
static bool
kv_space_refused(struct store *st, MDB_txn *txn, const struct kv_op *op,
    const struct kv_key *kk)
{
	size_t len = op->kind == KV_SET ? op->value_len : 0;
	struct kv_rec r;
	int rc;

	if ((op->kind != KV_SET && op->kind != KV_INCR) || !store_space_low(st))
		return false;
	if (op->ttl_ms > 0)
		return true;
	if ((rc = kv_rec_get(st, txn, kk, &r)) != 0)
		return rc == MDB_NOTFOUND;	/* an error: the op reports it */
	return (r.h.expires_at != 0 && r.h.expires_at <= op->now) ||
	    len > r.h.value_len;
}

/* A set or incr that creates a key, past its tenant's quota, is refused
 * before anything is written (an expired key is still counted). */
static bool
kv_quota_refused(struct store *st, MDB_txn *txn, const struct kv_op *op,
    const struct kv_key *kk)
{
	struct kv_rec r;

	if ((op->kind != KV_SET && op->kind != KV_INCR) || op->max_items == 0)
		return false;
	return kv_rec_get(st, txn, kk, &r) == MDB_NOTFOUND &&
	    tenant_quota_full(st, txn, op->ns, op->max_items);
}

enum casq_err
kv_apply(struct store *st, MDB_txn *txn, void *arg)
{
	struct kv_op *op = arg;
	size_t nslen = strlen(op->ns);
	struct kv_stats s, before;
	struct buf value = op->res.value;
	struct kv_key kk;
	int rc;

	/* A clean result: group commit may apply an op twice. */
	value.len = 0;
	memset(&op->res, 0, sizeof op->res);
	op->res.value = value;
	if (op->kind == KV_STATS) {
		MDB_val k = { nslen, (void *)op->ns };

		rc = store_record_get(txn, st->kvns, &k, &s, sizeof s, NULL);
		if (rc == MDB_NOTFOUND)
			return E_NO_NAMESPACE;
		if (rc == 0) {
			op->res.ok = true;
			op->res.stats = s;
		}
		return store_map_error(rc, "read namespace");
	}
	if ((rc = ns_get(st, txn, op->ns, nslen, &s)) != 0)
		return store_map_error(rc, "read namespace");
	before = s;
	store_key_make(&kk, op->ns, op->key, strlen(op->key));
	if (kv_space_refused(st, txn, op, &kk))
		return E_SPACE_REFUSED;
	if (kv_quota_refused(st, txn, op, &kk))
		return E_QUOTA_EXCEEDED;
	switch (op->kind) {
	case KV_GET:    rc = op_get(st, txn, op, &kk, &s); break;
	case KV_SET:    rc = op_set(st, txn, op, &kk, &s); break;
	case KV_DELETE: rc = op_delete(st, txn, op, &kk, &s); break;
	case KV_INCR:   rc = op_incr(st, txn, op, &kk, &s); break;
	case KV_STATS:  break;
	}
	if (rc == 0 && memcmp(&s, &before, sizeof s) != 0 &&
	    (rc = ns_put(st, txn, op->ns, nslen, &s)) == 0)
		rc = tenant_adjust(st, txn, op->ns, 0,
		    (int64_t)s.keys - (int64_t)before.keys, 0);
	return store_map_error(rc, "kv operation");
}

/* store_list's callback, turned into kv_ns_list's. */
struct kv_ns_list_call {
	struct kv_stats s;
	kv_ns_visit_fn  fn;
	void           *ctx;
};

static void
kv_ns_list_one(void *ctx, const char *name, size_t len)
{
	struct kv_ns_list_call *c = ctx;

	c->fn(c->ctx, name, len, &c->s);
}

enum casq_err
kv_ns_list(struct store *st, MDB_txn *txn, const char *prefix,
    const char *after, size_t limit, kv_ns_visit_fn fn, void *ctx)
{
	struct kv_ns_list_call c = { .fn = fn, .ctx = ctx };

	return store_map_error(store_list(txn, st->kvns, prefix, after, limit,
	    &c.s, sizeof c.s, kv_ns_list_one, &c), "list namespaces");
}

/*----------------------------------------------------------------------------
 * For tools (casqctl): namespaces and values in name order
 *--------------------------------------------------------------------------*/

/* Position cur on the first key starting with prefix; false past them. */
static int
prefix_first(MDB_cursor *cur, const char *prefix, MDB_val *k, MDB_val *v)
{
	*k = (MDB_val){ strlen(prefix), (void *)prefix };
	return k->mv_size ? mdb_cursor_get(cur, k, v, MDB_SET_RANGE) :
	    mdb_cursor_get(cur, k, v, MDB_FIRST);
}

static bool
has_prefix(const MDB_val *k, const char *prefix)
{
	size_t n = strlen(prefix);

	return k->mv_size >= n && memcmp(k->mv_data, prefix, n) == 0;
}

enum casq_err
kv_values(struct store *st, MDB_txn *txn, const char *prefix, kv_value_fn fn,
    void *ctx)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->kv, &cur)) != 0)
		return store_map_error(rc, "list values");
	for (rc = prefix_first(cur, prefix, &k, &v); rc == 0 && has_prefix(&k, prefix);
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const char *slash = memchr(k.mv_data, '/', k.mv_size);
		struct kv_hdr h;
		size_t nslen;

		if (slash == NULL || v.mv_size < sizeof h) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(&h, v.mv_data, sizeof h);
		if (v.mv_size != sizeof h + h.value_len) {
			rc = MDB_CORRUPTED;
			break;
		}
		nslen = (size_t)(slash - (const char *)k.mv_data);
		fn(ctx, &(struct kv_value){ .ns = k.mv_data, .ns_len = nslen,
		    .key = slash + 1, .key_len = k.mv_size - nslen - 1,
		    .value = (const char *)v.mv_data + sizeof h, .value_len = h.value_len,
		    .version = h.version, .updated_at = h.updated_at,
		    .expires_at = h.expires_at });
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? E_OK : store_map_error(rc, "list values");
}

/*----------------------------------------------------------------------------
 * Expiry hook (store_expiry.c's table): a value's ttl ran out
 *--------------------------------------------------------------------------*/

int
kv_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
    size_t reflen)
{
	const char *slash = memchr(ref, '/', reflen);
	struct kv_key kk;
	struct kv_stats s;
	struct kv_rec r;
	size_t nslen;
	int rc;

	if (slash == NULL || !store_key_from_ref(&kk, ref, reflen))
		return 0;
	nslen = (size_t)(slash - ref);
	rc = kv_rec_get(st, txn, &kk, &r);
	if (rc == MDB_NOTFOUND || (rc == 0 && r.h.expires_at != due))
		return 0;		/* deleted, or given a new ttl since */
	if (rc != 0 || (rc = ns_get(st, txn, ref, nslen, &s)) != 0)
		return rc;
	s.expired++;
	if ((rc = kv_drop(st, txn, &kk, &r, &s)) != 0 ||
	    (rc = tenant_adjust(st, txn, kk.data, 0, -1, 0)) != 0)
		return rc;
	return ns_put(st, txn, ref, nslen, &s);
}
