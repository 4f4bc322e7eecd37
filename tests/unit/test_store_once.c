/*
 * test_store_once.c - store_once.c against real LMDB in a temporary
 * directory: the first call of a window, the later ones, a new window
 * after the end, the once sweep and its stale entries, a nearly full map.
 */
#include "store_fixture.h"
#include "http.h"	/* err_code, for readable diagnostics */

/* --- helpers --- */

static struct once_op
once_at(int64_t now, const char *scope, const char *id, int64_t ttl_ms,
    enum casq_err *err)
{
	struct once_op op = { .now = now, .scope = scope, .id = id,
	    .ttl_ms = ttl_ms };
	enum casq_err e = store_run(st, true, now, once_apply, &op);

	if (err != NULL)
		*err = e;
	else if (e != E_OK)
		diag("once %s/%s at %lld: %s", scope, id, (long long)now, err_code(e));
	return op;
}

/* once_apply in a transaction of the test's own, committed: no sweep. */
static struct once_op
once_in_txn(int64_t now, const char *scope, const char *id, int64_t ttl_ms)
{
	struct once_op op = { .now = now, .scope = scope, .id = id,
	    .ttl_ms = ttl_ms };
	MDB_txn *txn;

	if (store_begin(st, true, &txn) != E_OK)
		bail_out("store_begin");
	if (once_apply(st, txn, &op) != E_OK) {
		mdb_txn_abort(txn);
		diag("once_apply %s/%s failed", scope, id);
	} else if (store_commit(txn) != E_OK) {
		diag("commit of once %s/%s failed", scope, id);
	}
	return op;
}

/* --- first, then counted --- */

static void
test_first(void)
{
	struct once_op op;
	enum casq_err err;

	section("first", MAP_DEFAULT);
	op = once_at(T0, "s", "a", 1000, &err);
	is_int(err, E_OK, "once: a first call runs");
	ok(op.first, "once: the first call says first");
	is_int(op.count, 1, "once: ... with count 1");
	is_int(op.expires_at, T0 + 1000, "once: ... and the window ends at now + ttl");
	op = once_at(T0 + 10, "s", "a", 1000, NULL);
	ok(!op.first, "once: a second call within the window is not first");
	is_int(op.count, 2, "once: ... and is counted");
	is_int(op.first_seen, T0, "once: ... and names the first call's time");
	is_int(op.expires_at, T0 + 1000, "once: a later call does not move the window");
	op = once_at(T0 + 10, "s", "b", 1000, NULL);
	ok(op.first, "once: another id has a window of its own");
	op = once_at(T0 + 10, "t", "a", 1000, NULL);
	ok(op.first, "once: another scope has windows of its own");
}

/* --- the window's end --- */

static void
test_window_end(void)
{
	struct sweep_counts c = { 0 };
	struct once_op op;

	section("end", MAP_DEFAULT);
	once_at(T0, "s", "a", 1000, NULL);
	op = once_at(T0 + 999, "s", "a", 1000, NULL);
	ok(!op.first, "once: 1 ms before the end the window holds");
	/* in a transaction of the test's own: a store_run write would
	 * sweep the ended window first */
	op = once_in_txn(T0 + 1000, "s", "a", 1000);
	ok(op.first, "once: at its end a new window starts, before any sweep");
	is_int(op.count, 1, "once: ... with the count reset");
	is_int(op.first_seen, T0 + 1000, "once: ... and a new first_seen");

	is_int(sweep_at(T0 + 1000, &c), E_OK, "once: sweep at the first window's end");
	is_int(c.swept[EXPIRY_ONCE], 1, "once: the sweep handled the first window's entry");
	ok(db_has(st->once, "s/a"), "once: the stale entry left the new window alone");
	is_int(sweep_at(T0 + 2000, &c), E_OK, "once: sweep at the second window's end");
	ok(!db_has(st->once, "s/a"), "once: the window's record is gone after its end");
	op = once_at(T0 + 2000, "s", "a", 1000, NULL);
	ok(op.first && op.count == 1, "once: after the sweep the id starts over");
}

/* --- a nearly full map --- */

static void
test_space(void)
{
	char *big = json_text_of(8192, 'p');
	char id[300];
	enum casq_err err = E_OK;
	struct queue_op fill;
	struct once_op op;
	int n;

	section("space", MAP_TINY);
	once_at(T0, "s", "known", 60000, NULL);
	/* fill the map with queue items: once records are too small to */
	for (n = 0; n < 1000; n++) {
		snprintf(id, sizeof id, "k%03d", n);
		fill = (struct queue_op){ .kind = QOP_ENQUEUE, .now = T0, .queue = "q",
		    .key = id, .payload = big, .payload_len = strlen(big),
		    .claimant = "", .token = "" };
		if ((err = store_run_queue_op(st, &fill)) != E_OK)
			break;
	}
	is_int(err, E_SPACE_REFUSED, "once: the map fills up (%d items)", n);
	op = once_at(T0, "s", "new", 60000, &err);
	is_int(err, E_SPACE_REFUSED, "once: a new id in a nearly full map is refused (%s)",
	    err_code(err));
	ok(!db_has(st->once, "s/new"), "once: the refused id was not stored");
	op = once_at(T0 + 1, "s", "known", 60000, &err);
	is_int(err, E_OK, "once: an id within its window is still counted");
	ok(!op.first && op.count == 2, "once: ... as a later call (count %llu)",
	    (unsigned long long)op.count);
	free(big);
}

int
main(void)
{
	fixture_start();
	test_first();
	test_window_end();
	test_space();
	fixture_end();
	return done_testing();
}
