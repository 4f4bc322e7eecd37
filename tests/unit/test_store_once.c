/*
 * test_store_once.c - store_once.c against real LMDB in a temporary
 * directory: the first call of a window, the later ones, a new window
 * after the end, the once sweep and its stale entries, each scope's
 * counters through all of these, a nearly full map.
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

/* --- a scope's counters --- */

/* The counters of scope from its "oncens" record; false without one. */
static bool
scope_stats(const char *scope, struct once_stats *s)
{
	MDB_val k = { strlen(scope), (void *)scope }, v;
	MDB_txn *txn;
	bool found;

	if (store_begin(st, false, &txn) != E_OK)
		bail_out("store_begin");
	found = mdb_get(txn, st->oncens, &k, &v) == 0 && v.mv_size == sizeof *s;
	if (found)
		memcpy(s, v.mv_data, sizeof *s);
	mdb_txn_abort(txn);
	return found;
}

struct listed {
	char     names[4][16];
	uint64_t windows[4];
	size_t   n;
};

static void
listed_one(void *ctx, const char *name, size_t len, const struct once_stats *s)
{
	struct listed *l = ctx;

	if (l->n < 4 && len < sizeof l->names[0]) {
		memcpy(l->names[l->n], name, len);
		l->names[l->n][len] = '\0';
		l->windows[l->n++] = s->windows;
	}
}

static struct listed
list_scopes(const char *prefix, const char *after)
{
	struct listed l = { 0 };
	MDB_txn *txn;

	if (store_begin(st, false, &txn) != E_OK)
		bail_out("store_begin");
	if (once_scope_list(st, txn, prefix, after, 10, listed_one, &l) != E_OK)
		diag("once_scope_list failed");
	mdb_txn_abort(txn);
	return l;
}

static void
test_scope_counts(void)
{
	struct sweep_counts c = { 0 };
	struct once_stats s;
	struct listed l;

	section("scopes", MAP_DEFAULT);
	ok(!scope_stats("t:s", &s), "once: a scope has no record before its first window");
	once_at(T0, "t:s", "a", 1000, NULL);
	once_at(T0 + 5, "t:s", "a", 1000, NULL);
	once_at(T0 + 10, "t:s", "b", 2000, NULL);
	once_at(T0 + 10, "t:u", "a", 1000, NULL);
	ok(scope_stats("t:s", &s), "once: the first window makes the scope's record");
	is_int(s.windows, 2, "once: two ids, two windows (a later call adds none)");
	is_int(s.opened, 2, "once: ... two opened");
	is_int(s.created_at, T0, "once: created_at is the first window's time");
	/* the window of a ended, not yet swept: reopening it adds no window */
	once_in_txn(T0 + 1000, "t:s", "a", 1000);
	scope_stats("t:s", &s);
	is_int(s.windows, 2, "once: a reopened window is the same window");
	is_int(s.opened, 3, "once: ... and counts as opened");
	is_int(sweep_at(T0 + 1000, &c), E_OK, "once: sweep the stale entry");
	scope_stats("t:s", &s);
	is_int(s.windows, 2, "once: a stale entry removes no window");
	is_int(s.expired, 0, "once: ... and expires none");
	is_int(sweep_at(T0 + 2010, &c), E_OK, "once: sweep both windows of t:s");
	scope_stats("t:s", &s);
	is_int(s.windows, 0, "once: the sweep counts the windows down");
	is_int(s.expired, 2, "once: ... as expired");
	is_int(s.created_at, T0, "once: ... and the empty scope keeps its record");
	scope_stats("t:u", &s);
	is_int(s.windows, 0, "once: t:u's window was swept too");
	once_at(T0 + 3000, "t:u", "x", 1000, NULL);
	once_at(T0 + 3000, "v:s", "x", 1000, NULL);

	l = list_scopes("t:", NULL);
	is_int(l.n, 2, "once: tenant t lists its two scopes");
	is_str(l.names[0], "s", "once: ... s first, without the tenant");
	is_str(l.names[1], "u", "once: ... then u");
	is_int(l.windows[1], 1, "once: ... u with its window");
	l = list_scopes("t:", "s");
	ok(l.n == 1 && strcmp(l.names[0], "u") == 0, "once: after s: u only");
	l = list_scopes("v:", NULL);
	ok(l.n == 1 && strcmp(l.names[0], "s") == 0, "once: tenant v lists only its own");
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
	test_scope_counts();
	test_space();
	fixture_end();
	return done_testing();
}
