/*
 * test_store_idem.c - store_idem.c against real LMDB in a temporary
 * directory: a stored answer found again, a request id reused with other
 * parameters, the end of retention, the response sweep, and an answer
 * saved in a transaction that was rolled back.
 */
#include "store_fixture.h"

#define TTL	60000

/* --- helpers --- */

static struct idem_op
idem(int64_t now, const char *id, char fp)
{
	struct idem_op op = { .id = id, .now = now, .ttl_ms = TTL };

	memset(op.fingerprint, fp, sizeof op.fingerprint);
	return op;
}

/* Save body as id's answer, committed (or rolled back: commit false). */
static enum casq_err
save(int64_t now, const char *id, char fp, const char *body, bool commit)
{
	struct idem_op op = idem(now, id, fp);
	enum casq_err err;
	MDB_txn *txn;

	if ((err = store_begin(st, true, &txn)) != E_OK)
		return err;
	if ((err = idem_save(st, txn, &op, 200, body, strlen(body))) != E_OK ||
	    !commit) {
		mdb_txn_abort(txn);
		return err;
	}
	return store_commit(txn);
}

/* Look id up at now; the caller frees op.body. */
static struct idem_op
lookup(int64_t now, const char *id, char fp)
{
	struct idem_op op = idem(now, id, fp);
	MDB_txn *txn;

	if (store_begin(st, false, &txn) != E_OK)
		bail_out("store_begin");
	if (idem_lookup(st, txn, &op) != E_OK)
		diag("idem_lookup %s failed", id);
	mdb_txn_abort(txn);
	return op;
}

/* --- stored, found, refused --- */

static void
test_found(void)
{
	struct idem_op op;

	section("found", MAP_DEFAULT);
	op = lookup(T0, "key/r1", 'a');
	ok(!op.found && !op.mismatch, "idem: an unknown request id is not found");
	is_int(save(T0, "key/r1", 'a', "{\"enqueued\":true}", true), E_OK,
	    "idem: save an answer");
	op = lookup(T0 + 1, "key/r1", 'a');
	ok(op.found && !op.mismatch, "idem: the same request finds its answer");
	is_int(op.status, 200, "idem: ... with its status");
	ok(op.body.len == 17 && memcmp(op.body.data, "{\"enqueued\":true}", 17) == 0,
	    "idem: ... and its body exactly (%zu bytes)", op.body.len);
	buf_free(&op.body);
	op = lookup(T0 + 1, "key/r1", 'b');
	ok(op.found && op.mismatch, "idem: the id with other parameters is a mismatch");
	buf_free(&op.body);
	op = lookup(T0 + 1, "other/r1", 'a');
	ok(!op.found, "idem: ids of another API key do not collide");
}

/* --- retention and the response sweep --- */

static void
test_retention(void)
{
	struct sweep_counts c = { 0 };
	struct idem_op op;

	section("retention", MAP_DEFAULT);
	save(T0, "key/r", 'a', "{}", true);
	op = lookup(T0 + TTL - 1, "key/r", 'a');
	ok(op.found, "idem: the answer is kept until its retention ends");
	buf_free(&op.body);
	op = lookup(T0 + TTL, "key/r", 'a');
	ok(!op.found, "idem: at its end the request runs as new, before any sweep");
	ok(store_sweep_due(st, T0 + TTL), "idem: the answer is due at its end");
	is_int(sweep_at(T0 + TTL, &c), E_OK, "idem: sweep at the end");
	is_int(c.swept[EXPIRY_RESPONSE], 1, "idem: the sweep handled one stored response");
	ok(!db_has(st->idem, "key/r"), "idem: the answer is gone from the database");

	/* saved again later: the first entry is stale */
	save(T0, "key/s", 'a', "{}", true);
	save(T0 + 10, "key/s", 'a', "{}", true);
	sweep_at(T0 + TTL, NULL);
	ok(db_has(st->idem, "key/s"), "idem: an answer saved again survives the older entry");
	sweep_at(T0 + 10 + TTL, NULL);
	ok(!db_has(st->idem, "key/s"), "idem: ... and goes at its own end");
}

/* --- in the request's transaction --- */

static void
test_rolled_back(void)
{
	struct idem_op op;

	section("rollback", MAP_DEFAULT);
	is_int(save(T0, "key/x", 'a', "{}", false), E_OK, "idem: save in a transaction then roll back");
	op = lookup(T0, "key/x", 'a');
	ok(!op.found, "idem: an answer rolled back with its effect is not found");
	ok(!store_sweep_due(st, T0 + TTL), "idem: ... and left no expiry entry");
}

int
main(void)
{
	fixture_start();
	test_found();
	test_retention();
	test_rolled_back();
	fixture_end();
	return done_testing();
}
