/*
 * test_verify.c - the consistency walk (store_verify.c) on real LMDB in a
 * temporary directory: a database built by the store's own operations
 * (queues with ready, delayed, leased and consumed items, values with and
 * without a ttl, counters, once-windows, stored answers) has no problem;
 * then each kind of damage, done with raw LMDB writes the store would
 * never make, is reported by name: an index entry without its item, an
 * item without its index entry, a wrong counter, a lease or ttl without
 * its expiry entry, an item and a claim record for the same key, a record
 * that does not decode, a tenant's usage that differs from its data, a
 * once-window without its scope's record.
 * Names are scoped with a tenant ("acme:welcome"), as the routes store them.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "tap.h"

#define T0	1764194281000LL	/* any fixed instant will do */

static char tmproot[] = "/tmp/casq-test-verify.XXXXXX";
static struct store *st;

/* --- helpers --- */

struct seen {
	size_t n;
	char   text[8][512];
};

static void
collect(void *ctx, const char *problem)
{
	struct seen *s = ctx;

	if (s->n < 8)
		snprintf(s->text[s->n], sizeof s->text[0], "%s", problem);
	s->n++;
}

/* Run the walk; true when it read everything. */
static bool
verify(struct seen *s)
{
	size_t problems = 0;
	enum casq_err err;

	memset(s, 0, sizeof *s);
	err = store_verify(st, collect, s, &problems);
	for (size_t i = 0; i < s->n && i < 8; i++)
		diag("reported: %s", s->text[i]);
	if (problems != s->n)
		diag("count %zu but %zu reports", problems, s->n);
	return err == E_OK;
}

/* True when one report contains both needles. */
static bool
reported(const struct seen *s, const char *a, const char *b)
{
	for (size_t i = 0; i < s->n && i < 8; i++)
		if (strstr(s->text[i], a) && (b == NULL || strstr(s->text[i], b)))
			return true;
	return false;
}

static void
q(enum queue_op_kind kind, const char *queue, const char *key, int64_t lease_ms,
    int64_t delay_ms)
{
	struct queue_op op = { .kind = kind, .now = T0, .queue = queue, .key = key,
	    .claimant = "w1", .token = "", .lease_ms = lease_ms, .delay_ms = delay_ms };

	if (store_run_queue_op(st, &op) != E_OK || !op.res.ok)
		bail_out("queue op %d on %s/%s failed", kind, queue, key ? key : "(pop)");
	queue_result_free(&op.res);
}

/* Queue "zed:q", at most one attempt: "d" dead after one released
 * lease, "c" popped by bind "lead" (a binding). */
static void
dead_and_bound(void)
{
	struct queue_op cfg = { .kind = QOP_CONFIG, .now = T0, .queue = "zed:q",
	    .set_max_attempts = true, .config.max_attempts = 1 };
	struct queue_op op = { .kind = QOP_CLAIM, .now = T0, .queue = "zed:q",
	    .key = "d", .claimant = "w1", .lease_ms = 60000 };
	char token[TOKEN_HEX_LEN + 1];

	if (store_run_queue_op(st, &cfg) != E_OK)
		bail_out("config zed:q failed");
	q(QOP_ENQUEUE, "zed:q", "d", 0, 0);
	if (store_run_queue_op(st, &op) != E_OK || !op.res.ok)
		bail_out("claim zed:q/d failed");
	memcpy(token, op.res.token, sizeof token);
	queue_result_free(&op.res);
	op = (struct queue_op){ .kind = QOP_RELEASE, .now = T0, .queue = "zed:q",
	    .key = "d", .claimant = "", .token = token };
	if (store_run_queue_op(st, &op) != E_OK || op.res.state != ITEM_DEAD)
		bail_out("release zed:q/d did not make it dead");
	q(QOP_ENQUEUE, "zed:q", "c", 0, 0);
	op = (struct queue_op){ .kind = QOP_POP, .now = T0, .queue = "zed:q",
	    .claimant = "w1", .bind = "lead" };
	if (store_run_queue_op(st, &op) != E_OK || !op.res.ok)
		bail_out("bound pop on zed:q failed");
	queue_result_free(&op.res);
}

static void
kv(enum kv_op_kind kind, const char *ns, const char *key, const char *value,
    int64_t ttl_ms)
{
	struct kv_op op = { .kind = kind, .now = T0, .ns = ns, .key = key,
	    .value = value, .value_len = value ? strlen(value) : 0, .ttl_ms = ttl_ms, .by = 1 };

	if (store_run(st, true, T0, kv_apply, &op) != E_OK)
		bail_out("kv op %d on %s/%s failed", kind, ns, key);
	kv_result_free(&op.res);
}

static void
once(const char *scope, const char *id)
{
	struct once_op op = { .now = T0, .scope = scope, .id = id, .ttl_ms = 60000 };

	if (store_run(st, true, T0, once_apply, &op) != E_OK)
		bail_out("once %s/%s failed", scope, id);
}

static enum casq_err
idem_cb(struct store *s, MDB_txn *txn, void *arg)
{
	return idem_save(s, txn, arg, 200, "{\"ok\":true}\n", 12);
}

/* Raw damage: put (val != NULL) or delete a record, behind the store's back. */
static void
raw(MDB_dbi dbi, const char *key, const void *val, size_t len)
{
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };
	int rc;

	if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0 ||
	    (rc = val ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0)
		bail_out("raw write %s: %s", key, mdb_strerror(rc));
}

/* Copy a record's value out (it must exist). */
static size_t
raw_get(MDB_dbi dbi, const char *key, void *out, size_t cap)
{
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v;
	size_t n;

	if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0 ||
	    mdb_get(txn, dbi, &k, &v) != 0)
		bail_out("raw read %s", key);
	n = v.mv_size < cap ? v.mv_size : cap;
	memcpy(out, v.mv_data, n);
	mdb_txn_abort(txn);
	return n;
}

/* The first key of dbi that starts with prefix, into out. */
static void
raw_first(MDB_dbi dbi, const char *prefix, char *out, size_t cap)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { strlen(prefix), (void *)prefix }, v;

	if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0 ||
	    mdb_cursor_open(txn, dbi, &cur) != 0 ||
	    mdb_cursor_get(cur, &k, &v, *prefix ? MDB_SET_RANGE : MDB_FIRST) != 0 ||
	    k.mv_size >= cap || memcmp(k.mv_data, prefix, strlen(prefix)) != 0)
		bail_out("no key starting with %s", prefix);
	memcpy(out, k.mv_data, k.mv_size);
	out[k.mv_size] = '\0';
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* A database with one of everything. */
static void
populate(void)
{
	char dir[300], why[256];
	struct store_config cfg = { .dir = dir, .map_size = 16 << 20 };
	struct idem_op io = { .id = "acme:k1/req-1", .now = T0, .ttl_ms = 86400000 };

	snprintf(dir, sizeof dir, "%s/db", tmproot);
	if (store_open(&cfg, &st, why, sizeof why) != 0)
		bail_out("store_open: %s", why);
	q(QOP_ENQUEUE, "acme:welcome", "a", 0, 0);
	q(QOP_ENQUEUE, "acme:welcome", "b", 0, 0);
	q(QOP_ENQUEUE, "acme:welcome", "c", 0, 0);
	q(QOP_ENQUEUE, "acme:welcome", "later", 0, 3600000);
	q(QOP_ENQUEUE, "acme:welcome.2", "x", 0, 0);
	q(QOP_CLAIM, "acme:welcome", "a", 0, 0);		/* consumed: a claim record */
	q(QOP_CLAIM, "acme:welcome", "b", 600000, 0);	/* leased */
	kv(KV_SET, "acme:ns", "plain", "\"v\"", 0);
	kv(KV_SET, "acme:ns", "ttl", "1", 60000);
	kv(KV_INCR, "acme:ns", "n", NULL, 0);
	kv(KV_SET, "acme:ns", "gone", "2", 0);
	kv(KV_DELETE, "acme:ns", "gone", NULL, 0);
	once("acme:s", "id1");
	if (store_run(st, true, T0, idem_cb, &io) != E_OK)
		bail_out("idem_save failed");
	dead_and_bound();
}

/* --- tests --- */

static void
test_clean(void)
{
	struct seen s;

	ok(verify(&s), "clean: the walk reads everything");
	is_int((long long)s.n, 0, "clean: a database built by the store has no problem");
}

static void
test_index_without_item(void)
{
	char ready[200];
	struct seen s;

	raw_first(st->ready, "acme:welcome/", ready, sizeof ready);
	raw(st->ready, "acme:welcome/0000000000000001/00000000000000ff", "ghost", 5);
	verify(&s);
	ok(reported(&s, "ready: entry 'acme:welcome/0000000000000001/00000000000000ff'", "does not exist"),
	    "index entry without an item: reported");
	raw(st->ready, "acme:welcome/0000000000000001/00000000000000ff", NULL, 0);

	raw(st->ready, ready, NULL, 0);
	verify(&s);
	ok(reported(&s, "items: ready 'acme:welcome/", "no entry in the ready index"),
	    "ready item without its index entry: reported");
	ok(reported(&s, "queues: 'acme:welcome' counts", NULL) == false,
	    "  (the counters still match: not blamed)");
}

static void
test_wrong_counter(void)
{
	struct queue_stats qs;
	unsigned char kvs[56], ons[32];
	struct tenant_usage tu;
	struct seen s;

	raw_get(st->queues, "acme:welcome.2", &qs, sizeof qs);
	qs.ready++;
	raw(st->queues, "acme:welcome.2", &qs, sizeof qs);
	verify(&s);
	ok(reported(&s, "queues: 'acme:welcome.2' counts 2 ready, the items say 1", NULL),
	    "a wrong ready counter: reported");
	qs.ready--;
	qs.leased = 3;
	raw(st->queues, "acme:welcome.2", &qs, sizeof qs);
	verify(&s);
	ok(reported(&s, "queues: 'acme:welcome.2' counts 3 leased, the items say 0", NULL),
	    "a wrong leased counter: reported");
	qs.leased = 0;
	qs.next_seq = 0;
	raw(st->queues, "acme:welcome.2", &qs, sizeof qs);
	verify(&s);
	ok(reported(&s, "items: 'acme:welcome.2/x' has seq", "next_seq 0"),
	    "a next_seq below an item's seq: reported");

	raw_get(st->tenants, "acme", &tu, sizeof tu);
	tu.items += 2;
	raw(st->tenants, "acme", &tu, sizeof tu);
	verify(&s);
	ok(reported(&s, "tenants: 'acme' counts 6 items, 3 values, 1 windows; the data says 4, 3, 1", NULL),
	    "a wrong tenant usage counter: reported");
	tu.items -= 2;
	raw(st->tenants, "acme", &tu, sizeof tu);

	raw_get(st->kvns, "acme:ns", kvs, sizeof kvs);
	kvs[8]++;	/* keys */
	raw(st->kvns, "acme:ns", kvs, sizeof kvs);
	verify(&s);
	ok(reported(&s, "kvns: 'acme:ns' counts 4 keys, the values say 3", NULL),
	    "a wrong key counter: reported");

	raw_get(st->oncens, "acme:s", ons, sizeof ons);
	ons[0] += 2;	/* windows */
	raw(st->oncens, "acme:s", ons, sizeof ons);
	verify(&s);
	ok(reported(&s, "oncens: 'acme:s' counts 3 windows, the windows say 1", NULL),
	    "a wrong once scope counter: reported");
	ons[0] -= 2;
	raw(st->oncens, "acme:s", NULL, 0);
	verify(&s);
	ok(reported(&s, "once: 'acme:s/id1' belongs to a scope without a record", NULL),
	    "a window without its scope record: reported");
	raw(st->oncens, "acme:s", ons, sizeof ons);
}

static void
test_missing_expiry(void)
{
	char key[200];
	struct seen s;

	/* delete every expiry entry: the lease, the ttl, the claim record,
	 * the once-window and the stored answer all lose theirs (and zed:q's
	 * claim record and stale lease entry, due as early) */
	for (int i = 0; i < 7; i++) {
		raw_first(st->expiry, "", key, sizeof key);
		raw(st->expiry, key, NULL, 0);
	}
	verify(&s);
	ok(reported(&s, "items: the lease of 'acme:welcome/b' has no expiry entry", NULL),
	    "a lease without its expiry entry: reported");
	ok(reported(&s, "kv: the ttl of 'acme:ns/ttl' has no expiry entry", NULL),
	    "a ttl without its expiry entry: reported");
	ok(reported(&s, "claimed: the record of 'acme:welcome/a' has no expiry entry", NULL),
	    "a claim record without its expiry entry: reported");
	ok(reported(&s, "once: the window of 'acme:s/id1' has no expiry entry", NULL),
	    "a once-window without its expiry entry: reported");
	ok(reported(&s, "idem: the answer kept for 'acme:k1/req-1' has no expiry entry", NULL),
	    "a stored answer without its expiry entry: reported");
}

static void
test_bad_records(void)
{
	unsigned char rec[16] = { 0 };
	struct seen s;

	raw(st->items, "acme:welcome/a", rec, 10);	/* consumed, and now queued? */
	raw(st->kv, "acme:nowhere/k", rec, 3);
	raw(st->claimed, "acme:welcome.2/x", rec, 16);
	verify(&s);
	ok(reported(&s, "items: 'acme:welcome/a' has a record of 10 bytes", NULL),
	    "an item that does not decode: reported");
	ok(reported(&s, "kv: 'acme:nowhere/k' has a record of 3 bytes", NULL),
	    "a value that does not decode: reported");
	ok(reported(&s, "items: 'acme:welcome.2/x' is queued and has a claim record too", NULL),
	    "an item that is both queued and consumed: reported");
}

static void
test_dead_and_bindings(void)
{
	char kb[EXPIRY_KEY_MAX];
	struct queue_stats qs;
	struct seen s;
	size_t n;

	raw(st->dead, "zed:q/d", NULL, 0);
	verify(&s);
	ok(reported(&s, "items: dead 'zed:q/d' has no entry in the dead index", NULL),
	    "a dead item without its dead index entry: reported");
	raw(st->dead, "zed:q/d", "", 0);
	raw(st->dead, "zed:q/c", "", 0);
	verify(&s);
	ok(reported(&s, "dead: entry 'zed:q/c' names an item that does not exist", NULL),
	    "a dead index entry without an item: reported");
	raw(st->dead, "zed:q/c", NULL, 0);

	raw_get(st->queues, "zed:q", &qs, sizeof qs);
	qs.dead = 2;
	raw(st->queues, "zed:q", &qs, sizeof qs);
	verify(&s);
	ok(reported(&s, "queues: 'zed:q' counts 2 dead, the items say 1", NULL),
	    "a wrong dead counter: reported");
	qs.dead = 1;
	raw(st->queues, "zed:q", &qs, sizeof qs);

	n = expiry_key_make(kb, T0 + BIND_DAYS_DEFAULT * DAY_MS, EXPIRY_BINDING, "zed:q/lead", 10);
	kb[n] = '\0';
	raw(st->expiry, kb, NULL, 0);
	verify(&s);
	ok(reported(&s, "bindings: 'zed:q/lead' has no expiry entry", NULL),
	    "a binding without its expiry entry: reported");
	raw(st->bindings, "zed:q/lead", "short", 5);
	verify(&s);
	ok(reported(&s, "bindings: 'zed:q/lead' has a record of 5 bytes that does not decode", NULL),
	    "a binding that does not decode: reported");
}

static void
reset(void)
{
	store_close(st);
	st = NULL;
	nftw(tmproot, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir(tmproot, 0700) != 0)
		bail_out("mkdir %s", tmproot);
	populate();
}

int
main(void)
{
	struct seen s;
	int rc;

	if (mkdtemp(tmproot) == NULL)
		bail_out("mkdtemp %s", tmproot);
	populate();
	test_clean();
	test_index_without_item();
	reset();
	test_wrong_counter();
	reset();
	test_missing_expiry();
	reset();
	test_bad_records();
	reset();
	test_dead_and_bindings();
	reset();
	ok(verify(&s) && s.n == 0, "after the damage is undone (a fresh database): clean again");
	store_close(st);
	nftw(tmproot, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	rc = done_testing();
	return rc;
}
