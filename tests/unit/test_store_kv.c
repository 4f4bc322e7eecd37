/*
 * test_store_kv.c - store_kv.c against real LMDB in a temporary
 * directory: set and get, versions and compare-and-swap, delete and the
 * version floor, counters and their refusals, ttl and the value sweep,
 * namespace counters and their list, a nearly full map.
 *
 * Time is the op's `now`, so nothing here sleeps.
 */
#include "store_fixture.h"
#include "http.h"	/* err_code, for readable diagnostics */

/* --- helpers --- */

static struct kv_op
kvop(enum kv_op_kind kind, int64_t now, const char *ns, const char *key)
{
	return (struct kv_op){ .kind = kind, .now = now, .ns = ns, .key = key };
}

/* Run op in its own transaction; the caller frees op->res. */
static enum casq_err
kvrun(struct kv_op *op)
{
	return store_run(st, kv_op_writes(op), op->now, kv_apply, op);
}

static enum casq_err
kv_set_at(int64_t now, const char *ns, const char *key, const char *json,
    int64_t ttl_ms, struct kv_op *out)
{
	struct kv_op op = kvop(KV_SET, now, ns, key);
	enum casq_err err;

	op.value = json;
	op.value_len = strlen(json);
	op.ttl_ms = ttl_ms;
	err = kvrun(&op);
	if (out != NULL)
		*out = op;
	else
		kv_result_free(&op.res);
	return err;
}

static const char *
refusal(const struct kv_op *op)
{
	return op->res.ok ? "(ok)" : store_refusal_name(op->res.reason);
}

/* The stored value as text ("" when absent), at now. */
static const char *
value_at(int64_t now, const char *ns, const char *key)
{
	static char text[256];
	struct kv_op op = kvop(KV_GET, now, ns, key);

	text[0] = '\0';
	if (kvrun(&op) == E_OK && op.res.ok)
		snprintf(text, sizeof text, "%.*s", (int)op.res.value.len,
		    op.res.value.data);
	kv_result_free(&op.res);
	return text;
}

static struct kv_stats
ns_stats(const char *ns)
{
	struct kv_op op = kvop(KV_STATS, T0, ns, NULL);

	if (kvrun(&op) != E_OK)
		diag("stats of %s failed", ns);
	return op.res.stats;
}

/* --- set, get, versions --- */

static void
test_set_get(void)
{
	struct kv_op op;

	section("setget", MAP_DEFAULT);
	op = kvop(KV_GET, T0, "n", "a");
	is_int(kvrun(&op), E_OK, "kv: get of an absent key runs");
	ok(!op.res.ok, "kv: get of an absent key says not found");
	is_int(kv_set_at(T0, "n", "a", "\"one\"", 0, &op), E_OK, "kv: set a new key");
	ok(op.res.ok, "kv: set says ok");
	is_int(op.res.version, 1, "kv: a new key starts at version 1");
	is_int(op.res.updated_at, T0, "kv: set records its time");
	kv_result_free(&op.res);
	is_str(value_at(T0, "n", "a"), "\"one\"", "kv: get returns the value set");
	kv_set_at(T0 + 1, "n", "a", "{\"x\":2}", 0, &op);
	is_int(op.res.version, 2, "kv: each set adds one to the version");
	kv_result_free(&op.res);
	is_str(value_at(T0 + 1, "n", "a"), "{\"x\":2}", "kv: get returns the newest value");
	is_str(value_at(T0 + 1, "other", "a"), "", "kv: namespaces do not share keys");
}

/* --- compare-and-swap --- */

static void
test_cas(void)
{
	struct kv_op op;

	section("cas", MAP_DEFAULT);
	op = kvop(KV_SET, T0, "n", "c");
	op.value = "1";
	op.value_len = 1;
	op.has_cas = true;
	op.cas = 0;
	is_int(kvrun(&op), E_OK, "kv: set with cas 0 on an absent key runs");
	ok(op.res.ok, "kv: cas 0 creates an absent key (%s)", refusal(&op));
	kv_result_free(&op.res);

	op = kvop(KV_SET, T0, "n", "c");
	op.value = "2";
	op.value_len = 1;
	op.has_cas = true;
	op.cas = 7;
	is_int(kvrun(&op), E_OK, "kv: set with a stale cas runs");
	is_str(refusal(&op), "version_mismatch", "kv: a stale cas is refused as version_mismatch");
	is_int(op.res.version, 1, "kv: ... and the answer carries the current version");
	kv_result_free(&op.res);
	is_str(value_at(T0, "n", "c"), "1", "kv: a refused cas leaves the value");

	op.cas = 1;
	op.res = (struct kv_result){ 0 };
	is_int(kvrun(&op), E_OK, "kv: set with the current cas runs");
	ok(op.res.ok && op.res.version == 2, "kv: the current cas wins (version %llu)",
	    (unsigned long long)op.res.version);
	kv_result_free(&op.res);
	is_int(ns_stats("n").cas_failures, 1, "kv: the namespace counts one cas failure");
}

/* --- delete and the version floor --- */

static void
test_delete(void)
{
	struct kv_op op;

	section("delete", MAP_DEFAULT);
	op = kvop(KV_DELETE, T0, "n", "d");
	is_int(kvrun(&op), E_OK, "kv: delete of an absent key runs");
	is_str(refusal(&op), "not_found", "kv: delete of an absent key says not_found");
	kv_set_at(T0, "n", "d", "1", 0, NULL);
	kv_set_at(T0, "n", "d", "2", 0, NULL);
	kv_set_at(T0, "n", "d", "3", 0, NULL);
	op = kvop(KV_DELETE, T0, "n", "d");
	op.has_cas = true;
	op.cas = 1;
	kvrun(&op);
	is_str(refusal(&op), "version_mismatch", "kv: delete with a stale cas is refused");
	op = kvop(KV_DELETE, T0, "n", "d");
	is_int(kvrun(&op), E_OK, "kv: delete runs");
	ok(op.res.ok && op.res.version == 3, "kv: delete says ok with the deleted version (%llu)",
	    (unsigned long long)op.res.version);
	is_str(value_at(T0, "n", "d"), "", "kv: a deleted key reads as absent");
	kv_set_at(T0, "n", "d", "4", 0, &op);
	is_int(op.res.version, 4, "kv: a re-created key starts above every deleted version");
	kv_result_free(&op.res);
	is_int(ns_stats("n").version_floor, 3, "kv: the namespace remembers the highest deleted version");
	is_int(ns_stats("n").deletes, 1, "kv: the namespace counts one delete");
	is_int(ns_stats("n").keys, 1, "kv: the namespace counts one live key");
}

/* --- counters --- */

static struct kv_op
incr(int64_t by, const char *key)
{
	struct kv_op op = kvop(KV_INCR, T0, "n", key);

	op.by = by;
	if (kvrun(&op) != E_OK)
		diag("incr %s failed", key);
	kv_result_free(&op.res);
	return op;
}

static void
test_incr(void)
{
	struct kv_op op;

	section("incr", MAP_DEFAULT);
	op = incr(1, "i");
	ok(op.res.ok && op.res.counter == 1, "kv: incr of an absent key gives 1 (%lld)",
	    (long long)op.res.counter);
	op = incr(5, "i");
	is_int(op.res.counter, 6, "kv: incr by 5 gives 6");
	is_str(value_at(T0, "n", "i"), "6", "kv: the counter is stored as its digits");
	op = incr(-10, "i");
	is_int(op.res.counter, -4, "kv: a negative by counts down");

	kv_set_at(T0, "n", "s", "\"41\"", 0, NULL);
	op = incr(1, "s");
	is_int(op.res.counter, 42, "kv: a counter set from a form (a JSON string of digits) counts on");

	kv_set_at(T0, "n", "j", "{\"a\":1}", 0, NULL);
	op = incr(1, "j");
	ok(!op.res.ok && op.res.reason == REFUSAL_NOT_A_COUNTER,
	    "kv: incr of a JSON object is refused as not_a_counter (%s)", refusal(&op));
	is_str(value_at(T0, "n", "j"), "{\"a\":1}", "kv: ... and leaves the value");

	kv_set_at(T0, "n", "max", "9223372036854775807", 0, NULL);
	op = incr(1, "max");
	ok(!op.res.ok && op.res.reason == REFUSAL_OVERFLOW,
	    "kv: incr past INT64_MAX is refused as overflow (%s)", refusal(&op));
	is_str(value_at(T0, "n", "max"), "9223372036854775807", "kv: ... and leaves the counter");
	is_int(ns_stats("n").incrs, 4, "kv: the namespace counts the incrs that happened");
}

/* --- ttl and the value sweep --- */

static void
test_ttl(void)
{
	struct sweep_counts c = { 0 };
	struct kv_op op;

	section("ttl", MAP_DEFAULT);
	kv_set_at(T0, "n", "t", "1", 1000, &op);
	is_int(op.res.expires_at, T0 + 1000, "kv: set with a ttl expires at now + ttl");
	kv_result_free(&op.res);
	is_str(value_at(T0 + 999, "n", "t"), "1", "kv: the value reads until its ttl");
	is_str(value_at(T0 + 1000, "n", "t"), "", "kv: the value reads as absent at its ttl, before any sweep");
	ok(!store_sweep_due(st, T0 + 999), "kv: nothing due before the ttl");
	ok(store_sweep_due(st, T0 + 1000), "kv: the value is due at its ttl");

	/* renewed before its end: the first expiry entry is stale */
	kv_set_at(T0, "n", "r", "1", 1000, NULL);
	kv_set_at(T0 + 500, "n", "r", "2", 5000, NULL);
	is_int(sweep_at(T0 + 1000, &c), E_OK, "kv: sweep at the first ttl");
	is_int(c.swept[EXPIRY_VALUE], 2, "kv: the sweep handled both value entries due");
	ok(!db_has(st->kv, "n/t"), "kv: the expired value is gone from the database");
	ok(db_has(st->kv, "n/r"), "kv: a value given a new ttl survives its old entry");
	is_int(ns_stats("n").expired, 1, "kv: the namespace counts one expired value");
	is_int(ns_stats("n").keys, 1, "kv: one key is left");
	kv_set_at(T0 + 2000, "n", "t", "9", 0, &op);
	is_int(op.res.version, 2, "kv: an expired key re-created starts above its old version");
	kv_result_free(&op.res);
}

/* --- namespace counters --- */

static void
test_stats(void)
{
	struct kv_op op;
	struct kv_stats s;

	section("stats", MAP_DEFAULT);
	op = kvop(KV_STATS, T0, "none", NULL);
	is_int(kvrun(&op), E_NO_NAMESPACE, "kv: stats of an unknown namespace is E_NO_NAMESPACE");
	op = kvop(KV_GET, T0, "none", "k");
	kvrun(&op);
	op = kvop(KV_STATS, T0, "none", NULL);
	is_int(kvrun(&op), E_NO_NAMESPACE, "kv: a get creates no namespace");
	kv_set_at(T0, "s", "a", "1", 0, NULL);
	kv_set_at(T0, "s", "b", "1", 0, NULL);
	incr(1, "x");
	s = ns_stats("s");
	ok(s.keys == 2 && s.sets == 2 && s.deletes == 0,
	    "kv: stats count keys 2, sets 2, deletes 0 (%llu, %llu, %llu)",
	    (unsigned long long)s.keys, (unsigned long long)s.sets,
	    (unsigned long long)s.deletes);
	ok(!kv_op_writes(&(struct kv_op){ .kind = KV_GET }) &&
	    !kv_op_writes(&(struct kv_op){ .kind = KV_STATS }) &&
	    kv_op_writes(&(struct kv_op){ .kind = KV_INCR }),
	    "kv: get and stats are the read-only ops");
}

/* --- a nearly full map: new data refused, the rest goes on --- */

static void
test_space(void)
{
	char *big = json_text_of(8192, 'v'), *bigger = json_text_of(8200, 'w');
	enum casq_err err = E_OK;
	struct kv_op op;
	char key[16];
	int n;

	section("space", MAP_TINY);
	for (n = 0; n < 1000; n++) {
		snprintf(key, sizeof key, "k%03d", n);
		if ((err = kv_set_at(T0, "n", key, big, 0, NULL)) != E_OK)
			break;
	}
	is_int(err, E_SPACE_REFUSED, "kv: a new key in a nearly full map is refused first (%s)",
	    err_code(err));
	ok(n > 3, "kv: several 8 KiB values fit first (%d)", n);
	ok(!db_has(st->kv, key), "kv: the refused key was not stored");
	is_int(ns_stats("n").keys, n, "kv: the namespace counts only the stored keys");
	is_int(kv_set_at(T0, "n", "k000", big, 0, NULL), E_OK,
	    "kv: a value no longer than the stored one is still accepted");
	is_int(kv_set_at(T0, "n", "k000", bigger, 0, NULL), E_SPACE_REFUSED,
	    "kv: a longer value is refused");
	op = kvop(KV_INCR, T0, "n", "fresh");
	op.by = 1;
	is_int(kvrun(&op), E_SPACE_REFUSED, "kv: an incr that adds a key is refused");
	op = kvop(KV_DELETE, T0, "n", "k001");
	is_int(kvrun(&op), E_OK, "kv: a delete still runs in a full map");
	ok(op.res.ok, "kv: ... and deletes (%s)", refusal(&op));
	free(big);
	free(bigger);
}

/* --- the namespace list --- */

static void
ns_visit(void *ctx, const char *name, size_t len, const struct kv_stats *s)
{
	struct buf *b = ctx;

	buf_printf(b, "%s%.*s:%llu", b->len ? "," : "", (int)len, name,
	    (unsigned long long)s->keys);
}

/* "name:keys,..." of the namespaces under prefix after after. */
static const char *
ns_list(const char *prefix, const char *after, size_t limit)
{
	static char out[256];
	struct buf b = { 0 };
	MDB_txn *txn;
	enum casq_err err;

	if (store_begin(st, false, &txn) != E_OK)
		return "(begin failed)";
	buf_puts(&b, "");
	err = kv_ns_list(st, txn, prefix, after, limit, ns_visit, &b);
	mdb_txn_abort(txn);
	if (err != E_OK)
		snprintf(out, sizeof out, "error:%s", err_code(err));
	else
		snprintf(out, sizeof out, "%s", b.data);
	buf_free(&b);
	return out;
}

static void
test_ns_list(void)
{
	section("namespace list", MAP_DEFAULT);
	ok(kv_set_at(T0, "t:b", "1", "1", 0, NULL) == E_OK &&
	    kv_set_at(T0, "t:b", "2", "1", 0, NULL) == E_OK &&
	    kv_set_at(T0, "t:a", "1", "1", 0, NULL) == E_OK &&
	    kv_set_at(T0, "u:a", "1", "1", 0, NULL) == E_OK,
	    "kv: values in t:a, t:b (two) and u:a");
	is_str(ns_list("t:", NULL, 100), "a:1,b:2",
	    "kv: kv_ns_list shows tenant t's namespaces in name order, with their keys");
	is_str(ns_list("t:", "a", 100), "b:2", "kv: kv_ns_list after a");
	is_str(ns_list("t:", NULL, 1), "a:1", "kv: kv_ns_list honours its limit");
	is_str(ns_list("u:", NULL, 100), "a:1", "kv: kv_ns_list of tenant u shows only u's");
	is_str(ns_list("v:", NULL, 100), "", "kv: kv_ns_list of a tenant without namespaces");
}

int
main(void)
{
	fixture_start();
	test_set_get();
	test_cas();
	test_delete();
	test_incr();
	test_ttl();
	test_stats();
	test_ns_list();
	test_space();
	fixture_end();
	return done_testing();
}
