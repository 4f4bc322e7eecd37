/*
 * store_once.c - once-windows: the first call with an id within its
 * window says first:true, every later one first:false with the count.
 * One write transaction per call makes "first" unique across workers.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

struct once_rec {		/* on disk in "once" */
	int64_t  first_seen;
	int64_t  expires_at;
	uint64_t count;
};

enum casq_err
once_apply(struct store *st, MDB_txn *txn, void *arg)
{
	struct once_op *op = arg;
	char kb[QUEUE_NAME_MAX + 1 + ITEM_KEY_MAX + 1];
	MDB_val k = { 0, kb }, v;
	struct once_rec rec;
	int rc;

	k.mv_size = (size_t)snprintf(kb, sizeof kb, "%s/%s", op->scope, op->id);
	rc = mdb_get(txn, st->once, &k, &v);
	if (rc == 0 && v.mv_size != sizeof rec)
		return store_map_error(MDB_CORRUPTED, "once");
	if (rc == 0)
		memcpy(&rec, v.mv_data, sizeof rec);
	else if (rc != MDB_NOTFOUND)
		return store_map_error(rc, "once");
	op->first = rc == MDB_NOTFOUND || rec.expires_at <= op->now;
	if (op->first) {
		/* a new window adds a record or an expiry entry */
		if (store_space_low(st))
			return E_SPACE_REFUSED;
		rec.first_seen = op->now;
		rec.expires_at = op->now + op->ttl_ms;
		rec.count = 0;
		if ((rc = expiry_put(st, txn, rec.expires_at, 'o', kb, k.mv_size)) != 0)
			return store_map_error(rc, "once");
	}
	rec.count++;
	v.mv_size = sizeof rec;
	v.mv_data = &rec;
	if ((rc = mdb_put(txn, st->once, &k, &v, 0)) != 0)
		return store_map_error(rc, "once");
	op->first_seen = rec.first_seen;
	op->expires_at = rec.expires_at;
	op->count = rec.count;
	return E_OK;
}

int
once_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
    size_t reflen)
{
	MDB_val k = { reflen, (void *)ref }, v;
	struct once_rec rec;
	int rc = mdb_get(txn, st->once, &k, &v);

	if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size != sizeof rec))
		return 0;
	if (rc != 0)
		return rc;
	memcpy(&rec, v.mv_data, sizeof rec);
	if (rec.expires_at != due)
		return 0;		/* a new window started since */
	return mdb_del(txn, st->once, &k, NULL);
}
