/*
 * test_store.c - the storage layer against real LMDB environments in a
 * temporary directory: open and schema check, every queue operation and
 * its refusals, leases and their expiry, the expiry sweep, queue listing,
 * operations batched in a caller's transaction, and a full map.
 *
 * Time is the op's `now` field, so nothing here sleeps. Each section gets
 * a store of its own so expiry entries of one never reach another.
 */
#include <ftw.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "http.h"	/* err_code, for readable diagnostics */
#include "tap.h"

#define T0	1764194281000LL	/* 2025-11-26T21:58:01Z: any fixed instant will do */
#define MAP_DEFAULT	(64UL << 20)

static char tmproot[] = "/tmp/casq-test-store.XXXXXX";
static struct store *st;

/* --- fixtures --- */

static struct store *
store_at(const char *name, size_t map_size, char *why, size_t whylen)
{
	char dir[256];
	struct store_config cfg = { .dir = dir, .map_size = map_size };
	struct store *s = NULL;

	snprintf(dir, sizeof dir, "%s/%s", tmproot, name);
	if (store_open(&cfg, &s, why, whylen) != 0)
		return NULL;
	return s;
}

/* Close the current section's store and open a fresh one. */
static void
section(const char *name, size_t map_size)
{
	char why[256];

	store_close(st);
	if ((st = store_at(name, map_size, why, sizeof why)) == NULL)
		bail_out("store_open %s: %s", name, why);
	diag("--- %s", name);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
cleanup(void)
{
	store_close(st);
	st = NULL;
	nftw(tmproot, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct queue_op
mkop(enum queue_op_kind kind, int64_t now, const char *queue, const char *key)
{
	struct queue_op op = { .kind = kind, .now = now, .queue = queue,
	    .key = key, .claimant = "", .token = "" };

	return op;
}

/* A storage error folded into a result: reason() says "error:<code>". */
#define REASON_ERROR	REFUSAL__COUNT
static char errtext[64];

/* Run op in its own transaction. A storage error is folded into the
 * result (REASON_ERROR, errtext) so string assertions show it. */
static struct queue_op
qrun(struct queue_op op)
{
	enum casq_err err = store_run_queue_op(st, &op);

	if (err != E_OK) {
		snprintf(errtext, sizeof errtext, "error:%s", err_code(err));
		op.res.ok = false;
		op.res.reason = REASON_ERROR;
	}
	return op;
}

/* The result's reason as the API spells it. */
static const char *
reason(const struct queue_op *op)
{
	if (op->res.ok)
		return "(ok)";
	if (op->res.reason == REASON_ERROR)
		return errtext;
	return op->res.reason ? store_refusal_name(op->res.reason) : "(no reason)";
}

static bool
enqueue(int64_t now, const char *q, const char *key, const char *payload,
    int64_t delay_ms)
{
	struct queue_op op = mkop(QOP_ENQUEUE, now, q, key);

	op.payload = payload;
	op.payload_len = payload ? strlen(payload) : 0;
	op.delay_ms = delay_ms;
	op = qrun(op);
	queue_result_free(&op.res);
	return op.res.ok;
}

static struct queue_op
claim(int64_t now, const char *q, const char *key, const char *claimant,
    int64_t lease_ms)
{
	struct queue_op op = mkop(key ? QOP_CLAIM : QOP_POP, now, q, key);

	op.claimant = claimant;
	op.lease_ms = lease_ms;
	return qrun(op);
}

static struct queue_op
with_token(enum queue_op_kind kind, int64_t now, const char *q,
    const char *key, const char *token, int64_t delay_ms)
{
	struct queue_op op = mkop(kind, now, q, key);

	op.token = token;
	op.delay_ms = delay_ms;
	return qrun(op);
}

static struct queue_op
status(int64_t now, const char *q, const char *key)
{
	return qrun(mkop(QOP_STATUS, now, q, key));
}

static struct queue_op
stats(int64_t now, const char *q)
{
	return qrun(mkop(QOP_STATS, now, q, NULL));
}

static bool
is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	return strspn(s, "0123456789abcdef") == n;
}

/* Sweep everything due at now in a transaction of the test's own. */
static enum casq_err
sweep(int64_t now, struct sweep_counts *c)
{
	MDB_txn *txn;
	enum casq_err err;

	if ((err = store_begin(st, true, &txn)) != E_OK)
		return err;
	if ((err = store_sweep(st, txn, now, 1000, c)) != E_OK) {
		mdb_txn_abort(txn);
		return err;
	}
	return store_commit(txn);
}

/* The schema record as text, or "(error)". */
static void
schema_of(struct store *s, char *out, size_t outlen)
{
	static const char vkey[] = "schema_version";
	MDB_val k = { sizeof vkey - 1, (void *)vkey }, v;
	MDB_txn *txn;
	int rc;

	snprintf(out, outlen, "(error)");
	if (store_begin(s, false, &txn) != E_OK)
		return;
	if ((rc = mdb_get(txn, s->meta, &k, &v)) == 0)
		snprintf(out, outlen, "%.*s", (int)v.mv_size, (char *)v.mv_data);
	else
		snprintf(out, outlen, "(%s)", mdb_strerror(rc));
	mdb_txn_abort(txn);
}

/* --- open, close, schema --- */

/* Schema 3's history as its casqd wrote it: an event of key 1234 in
 * acme's queue welcome (an empty queue: the item is gone), a record that
 * does not decode, and the item's expiry entry. */
static void
schema3_history_put(struct store *s, MDB_txn *txn)
{
	struct old_event {
		int64_t  at, expires_at;
		uint32_t attempt;
		uint8_t  token[4];
		uint16_t annotations_len;
		uint8_t  kind, claimant_len, request_id_len, flags, pad[2];
		char     claimant[3];
	} ev = { .at = 1000, .expires_at = 1000 + HISTORY_TTL_DEFAULT_MS,
	    .attempt = 1, .kind = HISTORY_CLAIMED, .claimant_len = 3,
	    .claimant = "bob" };
	static const char k1[] = "acme:4/1234/welcome/0000000000000001";
	static const char k2[] = "acme:4/1234/welcome/0000000000000002";
	struct queue_stats qs = { .created_at = 1000, .config.bind_days = BIND_DAYS_DEFAULT };
	MDB_dbi h;

	mdb_put(txn, s->queues, &(MDB_val){ 12, "acme:welcome" }, &(MDB_val){ sizeof qs, &qs }, 0);
	mdb_dbi_open(txn, "history", MDB_CREATE, &h);
	mdb_put(txn, h, &(MDB_val){ sizeof k1 - 1, (void *)k1 },
	    &(MDB_val){ offsetof(struct old_event, claimant) + 3, &ev }, 0);
	mdb_put(txn, h, &(MDB_val){ sizeof k2 - 1, (void *)k2 },
	    &(MDB_val){ 5, "short" }, 0);
	expiry_put(s, txn, ev.expires_at, EXPIRY_HISTORY, "acme:4/1234/welcome/", 20);
}

static void
report_problem(void *ctx, const char *problem)
{
	(void)ctx;
	diag("verify: %s", problem);
}

static void
test_open(void)
{
	char why[256] = "", got[64];
	struct store *s, *s2;
	MDB_txn *txn;
	MDB_val k = { 14, "schema_version" }, v = { 1, "5" }, v2 = { 1, "2" }, v3 = { 1, "3" };
	MDB_dbi history;
	struct store_key ik;
	struct history_head head = { 0 };
	size_t problems = 1;

	diag("--- open");
	s = store_at("open", MAP_DEFAULT, why, sizeof why);
	if (!ok(s != NULL, "store: open creates a new environment"))
		diag("%s", why);
	if (s == NULL)
		return;
	schema_of(s, got, sizeof got);
	is_str(got, "4", "store: new environment has schema_version 4");
	store_close(s);

	s = store_at("open", MAP_DEFAULT, why, sizeof why);
	ok(s != NULL, "store: reopen an existing environment");
	if (s == NULL)
		return;
	schema_of(s, got, sizeof got);
	is_str(got, "4", "store: schema_version still 4 after reopen");

	/* A database of schema 2: no history at all. */
	if (store_begin(s, true, &txn) == E_OK) {
		mdb_put(txn, s->meta, &k, &v2, 0);
		store_commit(txn);
	}
	store_close(s);
	s = store_at("open", MAP_DEFAULT, why, sizeof why);
	if (!ok(s != NULL, "store: open upgrades schema_version 2"))
		return;
	schema_of(s, got, sizeof got);
	is_str(got, "4", "store: ... to schema_version 4");
	ok(store_begin(s, false, &txn) == E_OK &&
	    mdb_dbi_open(txn, "history", 0, &history) == MDB_NOTFOUND,
	    "store: ... without schema 3's history database");
	mdb_txn_abort(txn);

	/* A database of schema 3, with an event in its history. */
	if (store_begin(s, true, &txn) == E_OK) {
		mdb_put(txn, s->meta, &k, &v3, 0);
		schema3_history_put(s, txn);
		store_commit(txn);
	}
	store_close(s);
	s = store_at("open", MAP_DEFAULT, why, sizeof why);
	if (!ok(s != NULL, "store: open upgrades schema_version 3 (%s)", why))
		return;
	schema_of(s, got, sizeof got);
	is_str(got, "4", "store: ... to schema_version 4");
	store_key_make(&ik, "acme:welcome", "1234", 4);
	ok(store_begin(s, false, &txn) == E_OK &&
	    mdb_dbi_open(txn, "history", 0, &history) == MDB_NOTFOUND &&
	    history_head_get(s, txn, &ik.val, &head) == 0,
	    "store: ... its history database dropped");
	mdb_txn_abort(txn);
	ok(head.last != 0 && head.count == 1 && head.last_at == 1000,
	    "store: ... the readable event in the log, its head parked (count %u)",
	    (unsigned)head.count);
	is_int(store_verify(s, report_problem, NULL, &problems), E_OK, "store: the upgraded database walks");
	is_int((long long)problems, 0,
	    "store: ... consistent (the old expiry entry replaced by the parked head's)");

	/* Pretend a future casqd wrote the database. */
	if (store_begin(s, true, &txn) == E_OK) {
		mdb_put(txn, s->meta, &k, &v, 0);
		store_commit(txn);
	}
	store_close(s);
	why[0] = '\0';
	s2 = store_at("open", MAP_DEFAULT, why, sizeof why);
	ok(s2 == NULL, "store: open refuses schema_version 5 (a newer casqd's)");
	ok(strstr(why, "schema version 5") != NULL,
	    "store: the refusal names the version found (%s)", why);
	store_close(s2);

	/* A data directory that cannot be created. */
	why[0] = '\0';
	s2 = store_at("open/data.mdb/sub", MAP_DEFAULT, why, sizeof why);
	ok(s2 == NULL && why[0] != '\0',
	    "store: open fails with a reason when the directory is impossible (%s)", why);
	store_close(s2);
}

/* --- existing_only: how casqctl opens casqd's database --- */

static void
test_open_existing(void)
{
	char dir[256], why[256] = "";
	struct store_config cfg = { .dir = dir, .map_size = MAP_DEFAULT,
	    .existing_only = true };
	struct store *s = NULL, *made;
	struct queue_op op = { .kind = QOP_ENQUEUE, .now = 1000, .queue = "default:q",
	    .key = "k", .claimant = "" };
	char newer[16], want[32];
	MDB_val k = { 14, "schema_version" }, v = { 0, newer };
	struct stat sb;
	MDB_txn *txn;

	diag("--- open existing");
	snprintf(dir, sizeof dir, "%s/existing", tmproot);
	ok(store_open(&cfg, &s, why, sizeof why) != 0 && strstr(why, "no database in"),
	    "existing_only: a directory without a database is refused (%s)", why);
	ok(stat(dir, &sb) != 0, "existing_only: ... and nothing is created");
	if ((made = store_at("existing", MAP_DEFAULT, why, sizeof why)) == NULL)
		bail_out("store_open: %s", why);
	is_int(store_run_queue_op(made, &op), E_OK, "existing_only: casqd's database has an item");
	store_close(made);
	if (!ok(store_open(&cfg, &s, why, sizeof why) == 0, "existing_only: opens it"))
		diag("%s", why);
	op.kind = QOP_STATUS;
	is_int(store_run_queue_op(s, &op) == E_OK && op.res.ok, 1,
	    "existing_only: every database is open: the item is read back");
	store_close(s);
	queue_result_free(&op.res);

	v.mv_size = (size_t)snprintf(newer, sizeof newer, "%d", STORE_SCHEMA_VERSION + 1);
	snprintf(want, sizeof want, "schema version %s", newer);
	made = store_at("existing", MAP_DEFAULT, why, sizeof why);
	if (made && store_begin(made, true, &txn) == E_OK) {
		mdb_put(txn, made->meta, &k, &v, 0);
		store_commit(txn);
	}
	store_close(made);
	s = NULL;
	ok(store_open(&cfg, &s, why, sizeof why) != 0 && strstr(why, want),
	    "existing_only: another schema is refused (%s)", why);
}

/* --- enqueue, pop order, claim without a lease --- */

static void
test_enqueue(void)
{
	struct queue_op op;

	section("enqueue", MAP_DEFAULT);
	op = mkop(QOP_ENQUEUE, T0, "q", "a");
	op.payload = "{\"n\":1}";
	op.payload_len = strlen(op.payload);
	is_int(store_run_queue_op(st, &op), E_OK, "store: enqueue new item (%s)", "a");
	ok(op.res.ok, "store: enqueue new item says enqueued");
	is_int(op.res.state, ITEM_READY, "store: new item is ready");
	is_int(op.res.ready_at, T0, "store: new item ready_at is now");
	is_int(op.res.enqueued_at, T0, "store: new item enqueued_at is now");
	queue_result_free(&op.res);

	op = stats(T0, "q");
	is_int(op.res.stats.ready, 1, "store: stats ready=1 after one enqueue");
	is_int(op.res.stats.enqueued, 1, "store: stats enqueued=1 after one enqueue");
	is_int(op.res.stats.leased, 0, "store: stats leased=0 after one enqueue");
	is_int(op.res.stats.created_at, T0, "store: stats created_at is the first enqueue");
	is_int(op.res.oldest_ready_at, T0, "store: stats oldest_ready_at is the item's ready_at");

	op = mkop(QOP_ENQUEUE, T0 + 5, "q", "a");
	is_int(store_run_queue_op(st, &op), E_OK, "store: enqueue twice runs (%s)", "a");
	ok(!op.res.ok, "store: enqueue twice is refused (at most once at a time)");
	is_int(op.res.state, ITEM_READY, "store: refused enqueue reports the queued item's state");
	is_int(op.res.ready_at, T0, "store: refused enqueue keeps the first ready_at");
	queue_result_free(&op.res);
	op = stats(T0 + 5, "q");
	is_int(op.res.stats.enqueued, 1, "store: refused enqueue does not count");

	op = status(T0 + 5, "q", "a");
	ok(op.res.ok, "store: status of a queued item says queued");
	is_int(op.res.state, ITEM_READY, "store: status says ready");
	is_int(op.res.attempts, 0, "store: status attempts 0 before any claim");
	ok(!op.res.has_owner, "store: a ready item has no owner");

	op = claim(T0 + 6, "q", NULL, "w", 0);
	is_str(op.res.key, "a", "store: pop learns the item's key");
	is_str(op.res.payload.data, "{\"n\":1}", "store: pop returns the payload as stored");
	queue_result_free(&op.res);
}

static void
test_fifo(void)
{
	static const char *const keys[] = { "k3", "k1", "k4", "k0", "k2" };
	struct queue_op op;
	char want[128] = "", got[128] = "";

	section("fifo", MAP_DEFAULT);
	/* All at one instant: order is the sequence number alone. */
	for (int i = 0; i < 5; i++) {
		char payload[32];
		snprintf(payload, sizeof payload, "%d", i);
		ok(enqueue(T0, "f", keys[i], payload, 0), "store: fifo enqueue %s", keys[i]);
		strcat(want, keys[i]);
		strcat(want, " ");
	}
	for (int i = 0; i < 5; i++) {
		char payload[32];

		op = claim(T0 + 1, "f", NULL, "popper", 0);
		snprintf(payload, sizeof payload, "%d", i);
		if (!op.res.ok)
			diag("pop %d: %s", i, reason(&op));
		strcat(got, op.res.key);
		strcat(got, " ");
		ok(op.res.payload.data && strcmp(op.res.payload.data, payload) == 0,
		    "store: pop %d returns payload %s", i, payload);
		queue_result_free(&op.res);
	}
	is_str(got, want, "store: 5 pops come out in enqueue order");
	op = claim(T0 + 1, "f", NULL, "popper", 0);
	is_str(reason(&op), "empty", "store: pop on an empty queue says empty");
	queue_result_free(&op.res);
	op = stats(T0 + 1, "f");
	is_int(op.res.stats.ready, 0, "store: stats ready=0 after popping all");
	is_int(op.res.stats.claimed, 5, "store: stats claimed=5 after popping all");
	is_int(op.res.oldest_ready_at, 0, "store: oldest_ready_at 0 when nothing is ready");

	/* Different instants beat sequence: an earlier ready_at pops first. */
	ok(enqueue(T0 + 20, "f2", "late", NULL, 0) && enqueue(T0 + 10, "f2", "early", NULL, 0),
	    "store: enqueue two items with out-of-order times");
	op = claim(T0 + 30, "f2", NULL, "", 0);
	is_str(op.res.key, "early", "store: the earliest ready_at pops first");
	queue_result_free(&op.res);
}

static void
test_claim_by_key(void)
{
	struct queue_op op;

	section("claim", MAP_DEFAULT);
	ok(enqueue(T0, "c", "x", "\"p\"", 0), "store: enqueue x");
	op = claim(T0 + 1, "c", "x", "w1", 0);
	ok(op.res.ok, "store: claim by key without lease wins (%s)", reason(&op));
	is_int(op.res.state, ITEM_CLAIMED, "store: claim without lease consumes the item");
	is_str(op.res.owner, "w1", "store: claim result names the claimant");
	is_int(op.res.attempts, 1, "store: first claim is attempt 1");
	is_int(op.res.claimed_at, T0 + 1, "store: claimed_at is now");
	is_str(op.res.payload.data, "\"p\"", "store: claim by key returns the payload");
	queue_result_free(&op.res);

	op = status(T0 + 2, "c", "x");
	ok(!op.res.ok, "store: consumed item is no longer queued");
	is_int(op.res.state, ITEM_CLAIMED, "store: status of consumed item says claimed");
	ok(op.res.has_owner, "store: status of consumed item has an owner");
	is_str(op.res.owner, "w1", "store: status names who claimed it");
	is_int(op.res.claimed_at, T0 + 1, "store: status gives claimed_at");

	op = claim(T0 + 3, "c", "x", "w2", 0);
	is_str(reason(&op), "claimed", "store: second claim loses with reason claimed");
	is_str(op.res.has_owner ? op.res.owner : "(none)", "w1", "store: the loser learns the owner");
	is_int(op.res.state, ITEM_CLAIMED, "store: the loser sees state claimed");
	queue_result_free(&op.res);

	op = claim(T0 + 3, "c", "never", "w2", 0);
	is_str(reason(&op), "not_queued", "store: claim of a never-enqueued key says not_queued");
	queue_result_free(&op.res);

	ok(enqueue(T0 + 4, "c", "x", NULL, 0), "store: re-enqueue after consumed is accepted");
	op = status(T0 + 4, "c", "x");
	is_int(op.res.state, ITEM_READY, "store: re-enqueued item is ready");
	ok(!op.res.has_owner, "store: re-enqueue drops the claim record");
	op = claim(T0 + 5, "c", "x", "w3", 0);
	is_int(op.res.attempts, 1, "store: a re-enqueued item starts again at attempt 1");
	queue_result_free(&op.res);
}

/* --- leases: ack, release, expiry --- */

static void
test_lease(void)
{
	struct queue_op op;
	char token[TOKEN_HEX_LEN + 1];

	section("lease", MAP_DEFAULT);
	ok(enqueue(T0, "l", "y", NULL, 0), "store: enqueue y");
	op = claim(T0 + 1, "l", "y", "w1", 30000);
	ok(op.res.ok, "store: claim with lease wins (%s)", reason(&op));
	ok(is_hex(op.res.token, TOKEN_HEX_LEN), "store: lease token is 32 hex digits (%s)", op.res.token);
	is_int(op.res.state, ITEM_LEASED, "store: claim with lease leaves the item leased");
	is_int(op.res.lease_expires_at, T0 + 1 + 30000, "store: lease expires at now + lease");
	snprintf(token, sizeof token, "%s", op.res.token);
	queue_result_free(&op.res);

	op = stats(T0 + 2, "l");
	is_int(op.res.stats.leased, 1, "store: stats leased=1");
	is_int(op.res.stats.ready, 0, "store: stats ready=0 while leased");

	op = status(T0 + 2, "l", "y");
	is_int(op.res.state, ITEM_LEASED, "store: status says leased");
	is_str(op.res.owner, "w1", "store: status of a leased item names the holder");
	is_int(op.res.lease_expires_at, T0 + 30001, "store: status gives lease_expires_at");

	op = claim(T0 + 3, "l", "y", "w2", 30000);
	is_str(reason(&op), "claimed", "store: claim of a leased item says claimed");
	is_str(op.res.owner, "w1", "store: ... and names the holder");
	queue_result_free(&op.res);
	op = claim(T0 + 3, "l", NULL, "w2", 30000);
	is_str(reason(&op), "empty", "store: a leased item is not poppable");
	queue_result_free(&op.res);
	/* (an enqueue of a leased key is a follow-up run: test_store_runs.c) */

	op = with_token(QOP_ACK, T0 + 4, "l", "y", "00000000000000000000000000000000", 0);
	is_str(reason(&op), "token_mismatch", "store: ack with wrong token says token_mismatch");
	op = with_token(QOP_ACK, T0 + 4, "l", "y", "abc", 0);
	is_str(reason(&op), "token_mismatch", "store: ack with a short token says token_mismatch");
	op = with_token(QOP_RELEASE, T0 + 4, "l", "y", "ffffffffffffffffffffffffffffffff", 0);
	is_str(reason(&op), "token_mismatch", "store: release with wrong token says token_mismatch");

	op = with_token(QOP_ACK, T0 + 5, "l", "y", token, 0);
	ok(op.res.ok, "store: ack with the right token (%s)", reason(&op));
	is_int(op.res.state, ITEM_CLAIMED, "store: acked item is claimed");
	op = stats(T0 + 5, "l");
	is_int(op.res.stats.leased, 0, "store: stats leased=0 after ack");
	is_int(op.res.stats.acked, 1, "store: stats acked=1 after ack");
	op = status(T0 + 5, "l", "y");
	is_int(op.res.state, ITEM_CLAIMED, "store: status after ack says claimed");
	is_str(op.res.owner, "w1", "store: status after ack names the lease holder");

	op = with_token(QOP_ACK, T0 + 6, "l", "y", token, 0);
	is_str(reason(&op), "not_leased", "store: ack again says not_leased");
	op = with_token(QOP_RELEASE, T0 + 6, "l", "y", token, 0);
	is_str(reason(&op), "not_leased", "store: release after ack says not_leased");
	op = with_token(QOP_ACK, T0 + 6, "l", "nope", token, 0);
	is_str(reason(&op), "not_leased", "store: ack of an absent key says not_leased");
	ok(enqueue(T0 + 7, "l", "r", NULL, 0), "store: enqueue r");
	op = with_token(QOP_ACK, T0 + 8, "l", "r", token, 0);
	is_str(reason(&op), "not_leased", "store: ack of a ready item says not_leased");
}

static void
test_release(void)
{
	struct queue_op op;
	char token[TOKEN_HEX_LEN + 1];

	section("release", MAP_DEFAULT);
	ok(enqueue(T0, "r", "z", "[1]", 0), "store: enqueue z");
	op = claim(T0, "r", "z", "w1", 30000);
	snprintf(token, sizeof token, "%s", op.res.token);
	queue_result_free(&op.res);

	op = with_token(QOP_RELEASE, T0 + 5, "r", "z", token, 0);
	ok(op.res.ok, "store: release with the right token (%s)", reason(&op));
	is_int(op.res.state, ITEM_READY, "store: released item is ready");
	is_int(op.res.ready_at, T0 + 5, "store: released item is ready now");
	is_int(op.res.attempts, 1, "store: release keeps attempts");
	op = status(T0 + 5, "r", "z");
	is_int(op.res.state, ITEM_READY, "store: status after release says ready");
	is_int(op.res.attempts, 1, "store: status after release keeps attempts 1");
	op = stats(T0 + 5, "r");
	is_int(op.res.stats.released, 1, "store: stats released=1");
	is_int(op.res.stats.ready * 10 + op.res.stats.leased, 10, "store: stats ready=1 leased=0 after release");

	op = claim(T0 + 6, "r", NULL, "w2", 30000);
	is_int(op.res.attempts, 2, "store: next claim after release is attempt 2");
	is_str(op.res.payload.data, "[1]", "store: payload survives a release");
	snprintf(token, sizeof token, "%s", op.res.token);
	queue_result_free(&op.res);

	op = with_token(QOP_RELEASE, T0 + 10, "r", "z", token, 5000);
	ok(op.res.ok, "store: release with delay (%s)", reason(&op));
	is_int(op.res.ready_at, T0 + 5010, "store: release with delay sets ready_at now + delay");
	op = claim(T0 + 20, "r", "z", "w3", 0);
	is_str(reason(&op), "not_ready", "store: claim by key of a delayed item says not_ready");
	queue_result_free(&op.res);
	op = claim(T0 + 20, "r", NULL, "w3", 0);
	is_str(reason(&op), "empty", "store: pop before the delay says empty");
	queue_result_free(&op.res);
	op = stats(T0 + 20, "r");
	is_int(op.res.oldest_ready_at, 0, "store: a delayed item is not the oldest ready");
	op = claim(T0 + 5010, "r", NULL, "w3", 0);
	ok(op.res.ok && strcmp(op.res.key, "z") == 0, "store: pop at the delay's end wins (%s)", reason(&op));
	is_int(op.res.attempts, 3, "store: ... as attempt 3");
	queue_result_free(&op.res);
}

static void
test_lease_expiry(void)
{
	struct queue_op op;
	char t1[TOKEN_HEX_LEN + 1], t2[TOKEN_HEX_LEN + 1];
	const int64_t T = T0;

	section("expiry", MAP_DEFAULT);
	ok(enqueue(T, "e", "e1", NULL, 0), "store: enqueue e1");
	op = claim(T, "e", "e1", "w1", 1000);
	snprintf(t1, sizeof t1, "%s", op.res.token);
	queue_result_free(&op.res);

	op = status(T + 999, "e", "e1");
	is_int(op.res.state, ITEM_LEASED, "store: leased 1 ms before expiry");
	op = status(T + 1001, "e", "e1");
	is_int(op.res.state, ITEM_READY, "store: status after lease expiry says ready");
	is_int(op.res.ready_at, T + 1000, "store: expired item is ready from the lease's end");
	is_int(op.res.attempts, 1, "store: expired item keeps attempts 1");
	ok(!op.res.has_owner, "store: expired item has no owner");
	op = stats(T + 1001, "e");
	is_int(op.res.stats.leased, 1, "store: an expired lease counts as leased until a write (docs)");

	op = claim(T + 1001, "e", "e1", "w2", 30000);
	ok(op.res.ok, "store: another claimant wins after expiry (%s)", reason(&op));
	is_int(op.res.attempts, 2, "store: claim after expiry is attempt 2");
	is_str(op.res.owner, "w2", "store: new lease belongs to w2");
	ok(strcmp(op.res.token, t1) != 0, "store: new lease has a new token");
	snprintf(t2, sizeof t2, "%s", op.res.token);
	queue_result_free(&op.res);

	/* The live lease is w2's: an old token simply does not match it. */
	op = with_token(QOP_ACK, T + 1002, "e", "e1", t1, 0);
	is_str(reason(&op), "token_mismatch", "store: ack with the expired token after a new claim says token_mismatch");
	op = stats(T + 1002, "e");
	is_int(op.res.stats.expired, 1, "store: stats expired=1");
	is_int(op.res.stats.leased, 1, "store: stats leased=1 (w2's lease)");
	is_int(op.res.stats.claimed, 2, "store: stats claimed=2");
	op = with_token(QOP_ACK, T + 1003, "e", "e1", t2, 0);
	ok(op.res.ok, "store: w2 acks with its token (%s)", reason(&op));

	/* The sweep alone turns an expired lease back to ready. */
	ok(enqueue(T, "e", "e3", NULL, 0), "store: enqueue e3");
	op = claim(T, "e", "e3", "w1", 5000);
	queue_result_free(&op.res);
	ok(!store_sweep_due(st, T + 4999), "store: nothing due before the lease ends");
	ok(store_sweep_due(st, T + 5000), "store: the lease's expiry is due at its end");
	struct sweep_counts c = { 0 };
	is_int(sweep(T + 5000, &c), E_OK, "store: sweep at the lease's end");
	is_int(c.swept[EXPIRY_LEASE], 1, "store: sweep handled one lease entry");
	op = stats(T + 5000, "e");
	is_int(op.res.stats.leased, 0, "store: swept lease no longer counts as leased");
	is_int(op.res.stats.expired, 2, "store: swept lease counts as expired");
	op = status(T + 5000, "e", "e3");
	is_int(op.res.state, ITEM_READY, "store: swept item is ready");
}

/* The first touch of an expired lease: ack with the (once right) token. */
static void
test_first_touch(void)
{
	struct queue_op op;
	char t1[TOKEN_HEX_LEN + 1], t2[TOKEN_HEX_LEN + 1];
	MDB_txn *txn;
	const int64_t T = T0;

	section("touch", MAP_DEFAULT);
	ok(enqueue(T, "x", "x1", NULL, 0) && enqueue(T, "x", "x2", NULL, 0),
	    "store: enqueue x1 and x2");
	op = claim(T, "x", "x1", "w", 1000);
	snprintf(t1, sizeof t1, "%s", op.res.token);
	queue_result_free(&op.res);
	op = claim(T, "x", "x2", "w", 1000);
	snprintf(t2, sizeof t2, "%s", op.res.token);
	queue_result_free(&op.res);

	/* queue_apply in the caller's transaction: no sweep runs first. */
	op = mkop(QOP_ACK, T + 1001, "x", "x1");
	op.token = t1;
	if (store_begin(st, true, &txn) != E_OK)
		bail_out("store_begin");
	is_int(queue_apply(st, txn, &op), E_OK, "store: queue_apply ack after expiry runs");
	is_str(reason(&op), "lease_expired", "store: queue_apply ack after expiry says lease_expired");
	is_int(store_commit(txn), E_OK, "store: commit the expiring ack");

	/* The same through store_run_queue_op, as every request does it. */
	op = with_token(QOP_ACK, T + 1001, "x", "x2", t2, 0);
	is_str(reason(&op), "lease_expired",
	    "store: ack after expiry, first touch, says lease_expired (store_run_queue_op)");
	op = with_token(QOP_ACK, T + 1002, "x", "x2", t2, 0);
	is_str(reason(&op), "lease_expired", "store: a second ack after expiry is still told lease_expired");
	op = status(T + 1002, "x", "x2");
	is_int(op.res.state, ITEM_READY, "store: expired item is ready");
	op = stats(T + 1002, "x");
	is_int(op.res.stats.expired, 2, "store: both leases counted as expired");
	is_int(op.res.stats.leased, 0, "store: no lease left");
	is_int(op.res.stats.ready, 2, "store: both items ready again");
}

/* --- remove, status, unknown queues --- */

static void
test_remove(void)
{
	struct queue_op op;

	section("remove", MAP_DEFAULT);
	ok(enqueue(T0, "rm", "a", NULL, 0) && enqueue(T0, "rm", "b", NULL, 0),
	    "store: enqueue a and b");
	op = claim(T0 + 1, "rm", "b", "w", 60000);
	queue_result_free(&op.res);
	op = stats(T0 + 1, "rm");
	is_int(op.res.stats.leased, 1, "store: b is leased before remove");

	op = qrun(mkop(QOP_REMOVE, T0 + 2, "rm", "a"));
	ok(op.res.ok, "store: remove a ready item (%s)", reason(&op));
	is_int(op.res.state, ITEM_ABSENT, "store: removed item is absent");
	op = qrun(mkop(QOP_REMOVE, T0 + 2, "rm", "b"));
	ok(op.res.ok, "store: remove a leased item (%s)", reason(&op));
	op = stats(T0 + 2, "rm");
	is_int(op.res.stats.leased, 0, "store: stats leased back to 0 after removing the leased item");
	is_int(op.res.stats.ready, 0, "store: stats ready 0 after removing the ready item");
	is_int(op.res.stats.removed, 2, "store: stats removed=2");
	op = qrun(mkop(QOP_REMOVE, T0 + 3, "rm", "a"));
	is_str(reason(&op), "not_queued", "store: remove of an absent item says not_queued");
	op = status(T0 + 3, "rm", "a");
	ok(!op.res.ok, "store: status of a removed item: not queued");
	is_int(op.res.state, ITEM_ABSENT, "store: status of a removed item says absent");
	op = claim(T0 + 3, "rm", NULL, "w", 0);
	is_str(reason(&op), "empty", "store: nothing left to pop after removes");
	queue_result_free(&op.res);
	ok(enqueue(T0 + 4, "rm", "b", NULL, 0), "store: a removed key can be enqueued again");

	op = status(T0, "nosuch", "k");
	is_str(reason(&op), "no_such_queue", "store: status on an unknown queue says no_such_queue");
	op = mkop(QOP_STATS, T0, "nosuch", NULL);
	is_int(store_run_queue_op(st, &op), E_NO_QUEUE, "store: stats of an unknown queue is E_NO_QUEUE");
	op = claim(T0, "nosuch", NULL, "w", 0);
	is_str(reason(&op), "no_such_queue", "store: pop on an unknown queue says no_such_queue");
	queue_result_free(&op.res);
	op = qrun(mkop(QOP_REMOVE, T0, "nosuch", "k"));
	is_str(reason(&op), "no_such_queue", "store: remove on an unknown queue says no_such_queue");
	op = mkop(QOP_STATS, T0, "nosuch", NULL);
	is_int(store_run_queue_op(st, &op), E_NO_QUEUE, "store: ops on an unknown queue create nothing");
}

/* --- listing --- */

static void
list_visit(void *ctx, const char *name, size_t len, const struct queue_stats *s)
{
	struct buf *b = ctx;

	buf_printf(b, "%s%.*s:%llu", b->len ? "," : "", (int)len, name,
	    (unsigned long long)s->ready);
}

static const char *
list(const char *after, size_t limit)
{
	static char out[256];
	struct buf b = { 0 };
	MDB_txn *txn;
	enum casq_err err;

	if (store_begin(st, false, &txn) != E_OK)
		return "(begin failed)";
	buf_puts(&b, "");
	err = queue_list(st, txn, "", after, limit, list_visit, &b);
	mdb_txn_abort(txn);
	if (err != E_OK)
		snprintf(out, sizeof out, "error:%s", err_code(err));
	else
		snprintf(out, sizeof out, "%s", b.data);
	buf_free(&b);
	return out;
}

static void
test_list(void)
{
	section("list", MAP_DEFAULT);
	ok(enqueue(T0, "b", "1", NULL, 0) && enqueue(T0, "b", "2", NULL, 0) &&
	    enqueue(T0, "c", "1", NULL, 0) && enqueue(T0, "a-1", "1", NULL, 0) &&
	    enqueue(T0, "a", "1", NULL, 0), "store: enqueue into a, a-1, b, c");
	is_str(list(NULL, 100), "a:1,a-1:1,b:2,c:1", "store: queue_list visits every queue in name order with counts");
	is_str(list("", 100), "a:1,a-1:1,b:2,c:1", "store: queue_list with after \"\" starts at the first");
	is_str(list("a", 100), "a-1:1,b:2,c:1", "store: queue_list after a skips a");
	is_str(list("a-1", 1), "b:2", "store: queue_list after a-1, limit 1");
	is_str(list(NULL, 2), "a:1,a-1:1", "store: queue_list honours limit 2");
	is_str(list("bb", 100), "c:1", "store: queue_list after a name that does not exist");
	is_str(list("c", 100), "", "store: queue_list after the last queue visits none");
	is_str(list(NULL, 0), "", "store: queue_list with limit 0 visits none");
}

/* queue_walk as text: "key:state:payload" each, from `from`, at now. */
static bool
walk_visit(void *arg, const struct queue_walk_item *it)
{
	struct buf *b = arg;

	buf_printf(b, "%s%.*s:%s:%.*s", b->len ? "," : "", (int)it->key_len, it->key,
	    item_state_name(it->state), (int)it->payload_len, it->payload);
	return b->len < 200;
}

static const char *
walk(const char *q, const char *from, int64_t now)
{
	static char out[256];
	struct buf b = { 0 };
	MDB_txn *txn;
	enum casq_err err;

	if (store_begin(st, false, &txn) != E_OK)
		return "(begin failed)";
	buf_puts(&b, "");
	err = queue_walk(st, txn, q, from, now, walk_visit, &b);
	mdb_txn_abort(txn);
	snprintf(out, sizeof out, "%s", err != E_OK ? err_code(err) : b.data);
	buf_free(&b);
	return out;
}

static void
test_walk(void)
{
	struct queue_op op;

	section("walk", MAP_DEFAULT);
	ok(enqueue(T0, "q", "b", "2", 0) && enqueue(T0, "q", "a", "1", 0) &&
	    enqueue(T0, "q", "c", NULL, 0) && enqueue(T0, "q-1", "x", NULL, 0) &&
	    enqueue(T0, "p", "z", NULL, 0), "walk: enqueue into p, q, q-1");
	op = claim(T0, "q", "b", "w", 5000);
	ok(op.res.ok, "walk: lease b for 5 s");
	queue_result_free(&op.res);
	is_str(walk("q", NULL, T0), "a:ready:1,b:leased:2,c:ready:",
	    "queue_walk: the queue's items in key order, not q-1's nor p's");
	is_str(walk("q", "b", T0), "b:leased:2,c:ready:", "queue_walk from b");
	is_str(walk("q", "bb", T0), "c:ready:", "queue_walk from a key between two");
	is_str(walk("q", NULL, T0 + 5000), "a:ready:1,b:ready:2,c:ready:",
	    "queue_walk: a lease that ran out shows ready, as status does");
	is_str(walk("nosuch", NULL, T0), "", "queue_walk of a queue without items visits none");
}

/* --- delays --- */

static void
test_delay(void)
{
	struct queue_op op;

	section("delay", MAP_DEFAULT);
	op = mkop(QOP_ENQUEUE, T0, "d", "d1");
	op.delay_ms = 5000;
	op = qrun(op);
	ok(op.res.ok, "store: delayed enqueue accepted");
	is_int(op.res.ready_at, T0 + 5000, "store: delayed enqueue ready_at now + delay");
	ok(enqueue(T0 + 1, "d", "d2", NULL, 0), "store: enqueue d2 after d1");

	op = claim(T0 + 2, "d", NULL, "w", 0);
	is_str(op.res.key, "d2", "store: pop skips the delayed item");
	queue_result_free(&op.res);
	op = claim(T0 + 3, "d", NULL, "w", 0);
	is_str(reason(&op), "empty", "store: a delayed item is not poppable before due");
	queue_result_free(&op.res);
	op = claim(T0 + 3, "d", "d1", "w", 0);
	is_str(reason(&op), "not_ready", "store: claim by key before due says not_ready");
	queue_result_free(&op.res);
	op = status(T0 + 3, "d", "d1");
	is_int(op.res.state, ITEM_READY, "store: a delayed item's status is ready");
	is_int(op.res.ready_at, T0 + 5000, "store: ... with its future ready_at");
	op = stats(T0 + 3, "d");
	is_int(op.res.stats.ready, 1, "store: a delayed item counts as ready");
	is_int(op.res.oldest_ready_at, 0, "store: oldest_ready_at ignores items not yet due");
	op = stats(T0 + 5000, "d");
	is_int(op.res.oldest_ready_at, T0 + 5000, "store: oldest_ready_at once the delay ends");
	op = claim(T0 + 4999, "d", NULL, "w", 0);
	is_str(reason(&op), "empty", "store: pop 1 ms before due says empty");
	queue_result_free(&op.res);
	op = claim(T0 + 5000, "d", NULL, "w", 0);
	ok(op.res.ok && strcmp(op.res.key, "d1") == 0, "store: pop at due time wins (%s)", reason(&op));
	queue_result_free(&op.res);

	ok(enqueue(T0 + 6000, "o", "o1", NULL, 0) && enqueue(T0 + 6100, "o", "o2", NULL, 0),
	    "store: enqueue o1 then o2");
	op = stats(T0 + 7000, "o");
	is_int(op.res.oldest_ready_at, T0 + 6000, "store: oldest_ready_at is the first ready item's");
}

/* --- limits of names and keys --- */

static void
test_long_names(void)
{
	char q[QUEUE_NAME_MAX + 1], key[ITEM_KEY_MAX + 1], token[TOKEN_HEX_LEN + 1];
	struct queue_op op;

	section("long", MAP_DEFAULT);
	memset(q, 'q', QUEUE_NAME_MAX);
	q[QUEUE_NAME_MAX] = '\0';
	for (int i = 0; i < ITEM_KEY_MAX; i++)
		key[i] = "abcdefghijklmnopqrstuvwxyz/0123456789"[i % 37];
	key[ITEM_KEY_MAX] = '\0';

	ok(enqueue(T0, q, key, "{}", 0), "store: enqueue with a 64-byte queue and a 256-byte key");
	op = status(T0, q, key);
	is_int(op.res.state, ITEM_READY, "store: status with the longest names");
	op = claim(T0 + 1, q, key, "w", 1000);
	ok(op.res.ok, "store: lease with the longest names (%s)", reason(&op));
	snprintf(token, sizeof token, "%s", op.res.token);
	queue_result_free(&op.res);
	op = with_token(QOP_ACK, T0 + 2, q, key, token, 0);
	ok(op.res.ok, "store: ack with the longest names (%s)", reason(&op));
	op = status(T0 + 2, q, key);
	is_int(op.res.state, ITEM_CLAIMED, "store: claim record with the longest names");
	op = claim(T0 + 3, q, NULL, "w", 0);
	is_str(reason(&op), "empty", "store: nothing to pop after the ack");
	queue_result_free(&op.res);
	is_int(sweep(T0 + 2 + CLAIM_RECORD_TTL_MS, NULL), E_OK,
	    "store: sweep the long claim record (and the stale lease entry)");
	op = status(T0 + 2 + CLAIM_RECORD_TTL_MS, q, key);
	is_int(op.res.state, ITEM_ABSENT, "store: long claim record expires");
}

/* --- claim records expire --- */

static void
test_claim_ttl(void)
{
	struct queue_op op;
	struct sweep_counts c = { 0 };
	const int64_t T = T0;

	section("ttl", MAP_DEFAULT);
	ok(enqueue(T, "t", "k", NULL, 0), "store: enqueue k");
	op = claim(T, "t", "k", "w1", 0);
	queue_result_free(&op.res);
	ok(!store_sweep_due(st, T + CLAIM_RECORD_TTL_MS - 1), "store: claim record not due before its TTL");
	is_int(sweep(T + CLAIM_RECORD_TTL_MS - 1, NULL), E_OK, "store: sweep 1 ms before the TTL");
	op = status(T + CLAIM_RECORD_TTL_MS - 1, "t", "k");
	is_int(op.res.state, ITEM_CLAIMED, "store: claim record kept until its TTL");
	is_int(sweep(T + CLAIM_RECORD_TTL_MS, &c), E_OK, "store: sweep at claimed_at + TTL");
	is_int(c.swept[EXPIRY_CLAIM], 1, "store: the sweep handled one claim record");
	op = status(T + CLAIM_RECORD_TTL_MS, "t", "k");
	is_int(op.res.state, ITEM_ABSENT, "store: claim record gone after its TTL");

	/* Claimed at T, queued again, claimed again at T+10: the old entry
	 * must not take the newer record with it. */
	ok(enqueue(T, "t", "k2", NULL, 0), "store: enqueue k2");
	op = claim(T, "t", "k2", "old", 0);
	queue_result_free(&op.res);
	ok(enqueue(T + 10, "t", "k2", NULL, 0), "store: enqueue k2 again after consumed");
	op = claim(T + 10, "t", "k2", "new", 0);
	queue_result_free(&op.res);
	is_int(sweep(T + CLAIM_RECORD_TTL_MS, NULL), E_OK, "store: sweep the first claim's entry");
	op = status(T + CLAIM_RECORD_TTL_MS, "t", "k2");
	is_int(op.res.state, ITEM_CLAIMED, "store: a newer claim record survives the old expiry entry");
	is_str(op.res.owner, "new", "store: ... and still names the newer owner");
	is_int(sweep(T + 10 + CLAIM_RECORD_TTL_MS, NULL), E_OK, "store: sweep the second claim's entry");
	op = status(T + 10 + CLAIM_RECORD_TTL_MS, "t", "k2");
	is_int(op.res.state, ITEM_ABSENT, "store: the newer record expires at its own TTL");

	/* Writes sweep on their own: a claim record goes with the next write. */
	ok(enqueue(T, "t", "k3", NULL, 0), "store: enqueue k3");
	op = claim(T, "t", "k3", "w", 0);
	queue_result_free(&op.res);
	ok(enqueue(T + CLAIM_RECORD_TTL_MS, "t", "other", NULL, 0), "store: an unrelated write at the TTL");
	op = status(T + CLAIM_RECORD_TTL_MS, "t", "k3");
	is_int(op.res.state, ITEM_ABSENT, "store: the write swept the due claim record");
}

/* --- operations in a transaction the caller owns --- */

static void
test_caller_txn(void)
{
	struct queue_op op, op2;
	MDB_txn *txn;

	section("txn", MAP_DEFAULT);
	op = mkop(QOP_ENQUEUE, T0, "t", "t1");
	if (store_begin(st, true, &txn) != E_OK)
		bail_out("store_begin");
	is_int(queue_apply(st, txn, &op), E_OK, "store: queue_apply enqueue in the caller's txn");
	ok(op.res.ok, "store: ... says enqueued");
	mdb_txn_abort(txn);
	op = status(T0, "t", "t1");
	is_int(op.res.state, ITEM_ABSENT, "store: aborted txn keeps nothing (item)");
	op = mkop(QOP_STATS, T0, "t", NULL);
	is_int(store_run_queue_op(st, &op), E_NO_QUEUE, "store: aborted txn keeps nothing (queue)");

	op = mkop(QOP_ENQUEUE, T0, "t", "t1");
	op2 = mkop(QOP_ENQUEUE, T0, "t", "t2");
	if (store_begin(st, true, &txn) != E_OK)
		bail_out("store_begin");
	is_int(queue_apply(st, txn, &op), E_OK, "store: first of two ops in one txn");
	is_int(queue_apply(st, txn, &op2), E_OK, "store: second of two ops in one txn");
	is_int(store_commit(txn), E_OK, "store: commit both");
	op = stats(T0, "t");
	is_int(op.res.stats.ready, 2, "store: both ops committed together (ready=2)");
	is_int(op.res.stats.enqueued, 2, "store: both ops committed together (enqueued=2)");

	/* One op sees the other's writes inside the transaction. */
	op = mkop(QOP_ENQUEUE, T0 + 1, "t", "t3");
	op2 = mkop(QOP_CLAIM, T0 + 1, "t", "t3");
	op2.claimant = "w";
	if (store_begin(st, true, &txn) != E_OK)
		bail_out("store_begin");
	queue_apply(st, txn, &op);
	is_int(queue_apply(st, txn, &op2), E_OK, "store: claim in the enqueue's txn runs");
	ok(op2.res.ok, "store: a claim sees an enqueue of the same txn");
	queue_result_free(&op2.res);
	is_int(store_commit(txn), E_OK, "store: commit enqueue + claim");
	op = status(T0 + 1, "t", "t3");
	is_int(op.res.state, ITEM_CLAIMED, "store: enqueue + claim committed as one");

	ok(!queue_op_writes(&(struct queue_op){ .kind = QOP_STATUS }) &&
	    !queue_op_writes(&(struct queue_op){ .kind = QOP_STATS }) &&
	    queue_op_writes(&(struct queue_op){ .kind = QOP_CLAIM }),
	    "store: status and stats are the read-only ops");
	is_str(item_state_name(ITEM_LEASED), "leased", "store: item_state_name(ITEM_LEASED)");
	is_str(item_state_name(ITEM_ABSENT), "absent", "store: item_state_name(ITEM_ABSENT)");
}

/* --- a full map --- */

#define FULL_PAYLOAD	8192

static void
full_payload(char *p, int i)
{
	int n = snprintf(p, FULL_PAYLOAD + 1, "\"%04d", i);

	memset(p + n, 'a' + i % 26, FULL_PAYLOAD - n - 1);
	p[FULL_PAYLOAD - 1] = '"';
	p[FULL_PAYLOAD] = '\0';
}

static void
test_map_full(void)
{
	static char payload[FULL_PAYLOAD + 1];
	struct queue_op op;
	enum casq_err err = E_OK;
	int n, intact = 0, claimed = 0;
	char key[16], token[TOKEN_HEX_LEN + 1];

	section("full", 256 * 1024);
	/* A worker holds a lease while producers fill the map. */
	ok(enqueue(T0, "held", "h", "1", 0), "store: enqueue an item to hold");
	op = claim(T0, "held", "h", "worker", 600000);
	snprintf(token, sizeof token, "%s", op.res.token);
	queue_result_free(&op.res);
	for (n = 0; n < 1000; n++) {
		full_payload(payload, n);
		snprintf(key, sizeof key, "k%03d", n);
		op = mkop(QOP_ENQUEUE, T0 + n, "full", key);
		op.payload = payload;
		op.payload_len = FULL_PAYLOAD;
		if ((err = store_run_queue_op(st, &op)) != E_OK)
			break;
	}
	diag("map full after %d items of %d bytes", n, FULL_PAYLOAD);
	is_int(err, E_SPACE_REFUSED, "store: enqueue into a 256 KiB map is refused before the map is full (%s)", err_code(err));
	ok(n > 3, "store: several 8 KiB items fit before the map is full (%d)", n);
	op = status(T0 + n, "full", key);
	is_int(op.res.state, ITEM_ABSENT, "store: the refused item was not stored");
	op = stats(T0 + n, "full");
	is_int(op.res.stats.ready, n, "store: stats ready equals the items that succeeded");
	is_int(op.res.stats.enqueued, n, "store: stats enqueued equals the items that succeeded");
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "k%03d", i);
		op = status(T0 + n, "full", key);
		intact += op.res.state == ITEM_READY;
	}
	is_int(intact, n, "store: every item enqueued before the failure is still queued");

	/* LMDB copies pages on write, so even a delete needs free pages: a
	 * store filled to the last page cannot be drained by consumers. */
	op = claim(T0 + n, "full", "k000", "drain", 0);
	is_str(reason(&op), "(ok)", "store: a full store still lets a consumer claim (k000)");
	queue_result_free(&op.res);
	op = with_token(QOP_ACK, T0 + n, "held", "h", token, 0);
	is_str(reason(&op), "(ok)", "store: a full store still lets a worker ack its lease");
	op = qrun(mkop(QOP_REMOVE, T0 + n, "full", "k001"));
	is_str(reason(&op), "(ok)", "store: a full store still lets a consumer remove (k001)");

	/* Reopened with a larger map, everything stored is there, exact. */
	store_close(st);
	st = NULL;
	section("full", 1024 * 1024);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "k%03d", i);
		full_payload(payload, i);
		op = claim(T0 + n, "full", key, "drain", 0);
		if (!op.res.ok && i < 2)
			claimed++;	/* taken by the claim or remove above */
		else if (!op.res.ok)
			diag("claim %s: %s", key, reason(&op));
		else if (op.res.ok && (op.res.payload.len != FULL_PAYLOAD ||
		    memcmp(op.res.payload.data, payload, FULL_PAYLOAD) != 0))
			diag("claim %s: payload differs (%zu bytes)", key, op.res.payload.len);
		else
			claimed++;
		queue_result_free(&op.res);
	}
	is_int(claimed, n, "store: after reopening with a larger map every item claims with its exact payload");
	op = stats(T0 + n, "full");
	is_int(op.res.stats.ready, 0, "store: drained store has nothing ready");
}

/* --- group commit: batches that mix failing and succeeding ops --- */

#define BATCH_THREADS	16
#define BATCH_ITEMS	32	/* per claiming thread */

static struct committer *committer;

struct batch_worker {
	pthread_t tid;
	int       n;
	bool      producer;	/* enqueue into a full map (all must fail) */
	int       ok, full, other;
};

static void *
batch_worker_main(void *arg)
{
	struct batch_worker *w = arg;
	static char big[FULL_PAYLOAD + 1];
	char key[32];

	full_payload(big, w->n);
	for (int i = 0; i < BATCH_ITEMS; i++) {
		struct queue_op op;
		enum casq_err err;

		snprintf(key, sizeof key, "t%02d-%03d", w->n, i);
		op = mkop(w->producer ? QOP_ENQUEUE : QOP_CLAIM, T0,
		    w->producer ? "mixnew" : "mix", key);
		if (w->producer) {
			snprintf(key, sizeof key, "new%02d-%03d", w->n, i);
			op.payload = big;
			op.payload_len = FULL_PAYLOAD;
		}
		err = committer_run(committer, T0, queue_apply_fn, &op);
		if (err == E_OK && op.res.ok)
			w->ok++;
		else if (err == E_SPACE_REFUSED || err == E_STORAGE_FULL)
			w->full++;
		else
			w->other++;
		queue_result_free(&op.res);
	}
	return NULL;
}

/* Claims and refused enqueues share batches: every claim must win; an
 * enqueue into the full map fails, unless the claims already freed room
 * for it; nothing else happens. */
static void
test_batch_mixed(void)
{
	struct batch_worker w[BATCH_THREADS] = { 0 };
	static char payload[FULL_PAYLOAD + 1];
	int claims = 0, refused = 0, accepted = 0, other = 0, n;
	char key[32];
	struct queue_op op;

	section("batch", 1024 * 1024);
	/* small items to claim, then fill the map with big ones */
	for (int t = 0; t < BATCH_THREADS / 2; t++)
		for (int i = 0; i < BATCH_ITEMS; i++) {
			snprintf(key, sizeof key, "t%02d-%03d", t, i);
			enqueue(T0, "mix", key, "1", 0);
		}
	for (n = 0; n < 1000; n++) {
		full_payload(payload, n);
		snprintf(key, sizeof key, "fill%04d", n);
		op = mkop(QOP_ENQUEUE, T0, "fill", key);
		op.payload = payload;
		op.payload_len = FULL_PAYLOAD;
		if (store_run_queue_op(st, &op) != E_OK)
			break;
	}
	ok(n < 1000, "batch: the map filled up after %d big items", n);
	committer = committer_start(st, 64, NULL, NULL);
	ok(committer != NULL, "batch: committer started");
	for (int t = 0; t < BATCH_THREADS; t++) {
		w[t].n = t % (BATCH_THREADS / 2);
		w[t].producer = t >= BATCH_THREADS / 2;
		pthread_create(&w[t].tid, NULL, batch_worker_main, &w[t]);
	}
	for (int t = 0; t < BATCH_THREADS; t++) {
		pthread_join(w[t].tid, NULL);
		if (w[t].producer) {
			refused += w[t].full;
			accepted += w[t].ok;
		} else {
			claims += w[t].ok;
			other += w[t].full;
		}
		other += w[t].other;
	}
	committer_stop(committer);
	committer = NULL;
	is_int(claims, BATCH_THREADS / 2 * BATCH_ITEMS, "batch: every claim won although batches held refused enqueues");
	ok(refused > BATCH_THREADS * BATCH_ITEMS / 4, "batch: enqueues into the full map were refused (%d, %d accepted later)", refused, accepted);
	is_int(refused + accepted, BATCH_THREADS / 2 * BATCH_ITEMS, "batch: every enqueue was refused or stored");
	is_int(other, 0, "batch: no other outcome");
	op = stats(T0, "mixnew");
	is_int(op.res.stats.ready, accepted, "batch: the accepted enqueues are all there");
	op = stats(T0, "mix");
	is_int(op.res.stats.ready, 0, "batch: the claimed queue is empty");
	is_int(op.res.stats.claimed, BATCH_THREADS / 2 * BATCH_ITEMS, "batch: stats count every claim once");
}

int
main(void)
{
	if (mkdtemp(tmproot) == NULL)
		bail_out("mkdtemp %s", tmproot);
	test_open();
	test_open_existing();
	test_enqueue();
	test_fifo();
	test_claim_by_key();
	test_lease();
	test_release();
	test_lease_expiry();
	test_first_touch();
	test_remove();
	test_list();
	test_walk();
	test_delay();
	test_long_names();
	test_claim_ttl();
	test_caller_txn();
	test_map_full();
	test_batch_mixed();
	cleanup();
	return done_testing();
}
