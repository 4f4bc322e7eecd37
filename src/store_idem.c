/*
 * store_idem.c - responses kept for idempotent retries. A mutating request
 * that carries a request id stores its answer in the same transaction as
 * its effect, so a retry either finds that answer or runs as the first:
 * never both, and two concurrent duplicates serialise on the writer lock.
 */
#include <string.h>

#include "store.h"

struct idem_hdr {		/* on disk in "idem", then the body */
	unsigned char fingerprint[32];
	int64_t       created_at;
	int64_t       expires_at;
	uint32_t      status;
	uint32_t      body_len;
};

/*----------------------------------------------------------------------------
 * Records: a stored answer, under "key-name/request-id"
 *--------------------------------------------------------------------------*/

/* The header, and the body after it into *body (NULL: not needed). */
static int
idem_rec_get(struct store *st, MDB_txn *txn, const MDB_val *k,
    struct idem_hdr *h, MDB_val *body)
{
	MDB_val tail;
	int rc = store_record_get(txn, st->idem, k, h, sizeof *h, &tail);

	if (rc == 0 && body != NULL && tail.mv_size != h->body_len)
		rc = MDB_CORRUPTED;
	if (rc == 0 && body != NULL)
		*body = tail;
	return rc;
}

/*----------------------------------------------------------------------------
 * Operations (store.h): look an answer up, save one; both inside the
 * request's own transaction
 *--------------------------------------------------------------------------*/

enum casq_err
idem_lookup(struct store *st, MDB_txn *txn, struct idem_op *op)
{
	MDB_val k = { strlen(op->id), (void *)op->id }, body;
	struct idem_hdr h;
	int rc = idem_rec_get(st, txn, &k, &h, &body);

	op->found = op->mismatch = false;
	if (rc == MDB_NOTFOUND)
		return E_OK;
	if (rc != 0)
		return store_map_error(rc, "idempotency lookup");
	if (h.expires_at <= op->now)
		return E_OK;		/* retention over: runs as new */
	op->found = true;
	if (memcmp(h.fingerprint, op->fingerprint, sizeof h.fingerprint) != 0) {
		op->mismatch = true;
		return E_OK;
	}
	op->status = (int)h.status;
	op->body.len = 0;
	buf_append(&op->body, body.mv_data, body.mv_size);
	return E_OK;
}

enum casq_err
idem_save(struct store *st, MDB_txn *txn, struct idem_op *op, int status,
    const char *body, size_t len)
{
	MDB_val k = { strlen(op->id), (void *)op->id };
	MDB_val v = { sizeof(struct idem_hdr) + len, NULL };
	struct idem_hdr h = {
		.created_at = op->now,
		.expires_at = op->now + op->ttl_ms,
		.status = (uint32_t)status,
		.body_len = (uint32_t)len,
	};
	int rc;

	memcpy(h.fingerprint, op->fingerprint, sizeof h.fingerprint);
	if ((rc = mdb_put(txn, st->idem, &k, &v, MDB_RESERVE)) == 0) {
		memcpy(v.mv_data, &h, sizeof h);
		memcpy((char *)v.mv_data + sizeof h, body, len);
		rc = expiry_put(st, txn, h.expires_at, EXPIRY_RESPONSE, op->id,
		    strlen(op->id));
	}
	return store_map_error(rc, "idempotency save");
}

/*----------------------------------------------------------------------------
 * Expiry hook (store_expiry.c's table): an answer's retention ended
 *--------------------------------------------------------------------------*/

int
idem_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
    size_t reflen)
{
	MDB_val k = { reflen, (void *)ref };
	struct idem_hdr h;
	int rc = idem_rec_get(st, txn, &k, &h, NULL);

	if (rc == MDB_NOTFOUND || rc == MDB_CORRUPTED)
		return 0;		/* gone, or not ours to judge */
	if (rc != 0)
		return rc;
	return h.expires_at == due ? mdb_del(txn, st->idem, &k, NULL) : 0;
}
