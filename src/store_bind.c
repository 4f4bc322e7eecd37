/*
 * store_bind.c - the bindings of bound pops: "bindings" maps queue/bind
 * to what the first pop with that bind answered (the key, its payload,
 * owner, token and attempt), so that every retry answers the same item
 * even after it was acked or removed, for the queue's bind_days. The
 * queue family (store_queue.c) writes a binding when a bound pop takes an
 * item and drops it when that item's lease ends without an ack; the
 * expiry index ends it.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* The record as stored: this header, then the key, the owner and the
 * payload JSON. Host byte order; the schema version guards the layout. */
struct binding_hdr {
	int64_t  bound_at, expires_at;
	uint32_t attempts;
	uint32_t payload_len;
	uint16_t key_len, owner_len;
	char     token[TOKEN_HEX_LEN];
};
/* docs/storage.md gives this layout, tail padding included. */
_Static_assert(sizeof(struct binding_hdr) == 64, "binding header layout");

/*----------------------------------------------------------------------------
 * Records: a binding, under "queue/bind"
 *--------------------------------------------------------------------------*/

/* The binding under sk, whatever its time; 0, MDB_NOTFOUND or an error. */
static int
binding_read(struct store *st, MDB_txn *txn, const struct store_key *sk,
    struct binding *b)
{
	struct binding_hdr h;
	MDB_val tail;
	int rc = store_record_get(txn, st->bindings, &sk->val, &h, sizeof h, &tail);

	if (rc != 0)
		return rc;
	if (tail.mv_size != (size_t)h.key_len + h.owner_len + h.payload_len ||
	    h.key_len == 0 || h.key_len > ITEM_KEY_MAX || h.owner_len > CLAIMANT_MAX)
		return MDB_CORRUPTED;
	b->bound_at = h.bound_at;
	b->expires_at = h.expires_at;
	b->attempts = h.attempts;
	memcpy(b->token, h.token, TOKEN_HEX_LEN);
	b->key = tail.mv_data;
	b->key_len = h.key_len;
	b->owner = b->key + h.key_len;
	b->owner_len = h.owner_len;
	b->payload = b->owner + h.owner_len;
	b->payload_len = h.payload_len;
	return 0;
}

/*----------------------------------------------------------------------------
 * The API (store.h)
 *--------------------------------------------------------------------------*/

int
binding_get(struct store *st, MDB_txn *txn, const char *queue,
    const char *bind, size_t bind_len, int64_t now, struct binding *b)
{
	struct store_key sk;
	int rc;

	store_key_make(&sk, queue, bind, bind_len);
	if ((rc = binding_read(st, txn, &sk, b)) != 0)
		return rc;
	return b->expires_at > now ? 0 : MDB_NOTFOUND;	/* over, not yet swept */
}

int
binding_put(struct store *st, MDB_txn *txn, const char *queue,
    const char *bind, size_t bind_len, const struct binding *b)
{
	struct binding_hdr h = { .bound_at = b->bound_at,
	    .expires_at = b->expires_at, .attempts = b->attempts,
	    .payload_len = (uint32_t)b->payload_len,
	    .key_len = (uint16_t)b->key_len, .owner_len = (uint16_t)b->owner_len };
	size_t n = sizeof h + b->key_len + b->owner_len + b->payload_len;
	char *rec = xmalloc(n);
	MDB_val v = { n, rec };
	struct store_key sk;
	int rc;

	memcpy(h.token, b->token, TOKEN_HEX_LEN);
	memcpy(rec, &h, sizeof h);
	memcpy(rec + sizeof h, b->key, b->key_len);
	memcpy(rec + sizeof h + b->key_len, b->owner, b->owner_len);
	memcpy(rec + sizeof h + b->key_len + b->owner_len, b->payload, b->payload_len);
	store_key_make(&sk, queue, bind, bind_len);
	rc = mdb_put(txn, st->bindings, &sk.val, &v, 0);
	free(rec);
	if (rc != 0)
		return rc;
	return expiry_put(st, txn, b->expires_at, EXPIRY_BINDING, sk.data,
	    sk.val.mv_size);
}

int
binding_drop(struct store *st, MDB_txn *txn, const char *queue,
    const char *bind, size_t bind_len, const char *key, const char *token)
{
	struct store_key sk;
	struct binding b;
	int rc;

	store_key_make(&sk, queue, bind, bind_len);
	rc = binding_read(st, txn, &sk, &b);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (b.key_len != strlen(key) || memcmp(b.key, key, b.key_len) != 0 ||
	    memcmp(b.token, token, TOKEN_HEX_LEN) != 0)
		return 0;		/* bound since to another item or lease */
	return mdb_del(txn, st->bindings, &sk.val, NULL);
}

/*----------------------------------------------------------------------------
 * Expiry hook (store_expiry.c's table): a binding's days are over
 *--------------------------------------------------------------------------*/

int
binding_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
    size_t reflen)
{
	struct store_key sk;
	struct binding b;
	int rc;

	if (!store_key_from_ref(&sk, ref, reflen))
		return 0;
	rc = binding_read(st, txn, &sk, &b);
	if (rc == MDB_NOTFOUND || (rc == 0 && b.expires_at != due))
		return 0;		/* dropped, or bound again since */
	return rc ? rc : mdb_del(txn, st->bindings, &sk.val, NULL);
}
