/*
 * test_store_history.c - store_history.c (and the queue family's calls
 * into it) against real LMDB in a temporary directory: every event kind
 * with its fields, in order; a key across queues and tenants; keys that
 * are prefixes of others; limit; the per-item cap; retention by the
 * sweep, stale entries; the listing of a queue's items; the consistency
 * walk after each.
 */
#include "store_fixture.h"
#include "http.h"	/* err_code, for readable diagnostics */

/* --- helpers --- */

static const char *const annotations = "\"x_campaign\":\"Welcome\"";

/* A queue op as a request would make it: with a request id and
 * annotations when given. The result is left in *out (may be NULL). */
static bool
qop(enum queue_op_kind kind, int64_t now, const char *q, const char *key,
    const char *claimant, int64_t lease_ms, const char *token,
    const char *request_id, struct queue_op *out)
{
	struct queue_op op = { .kind = kind, .now = now, .queue = q, .key = key,
	    .claimant = claimant ? claimant : "", .token = token,
	    .lease_ms = lease_ms, .request_id = request_id };
	enum casq_err err;

	if (request_id != NULL) {
		op.annotations = annotations;
		op.annotations_len = strlen(annotations);
	}
	err = store_run_queue_op(st, &op);
	if (err != E_OK)
		diag("queue op %d on %s/%s: %s", (int)kind, q, key ? key : "(pop)", err_code(err));
	if (out != NULL)
		*out = op;
	else
		queue_result_free(&op.res);
	return err == E_OK && op.res.ok;
}

/* Each event as one line: "<event> +<ms after T0>[ c=][ a=][ t=][ r=][ x=]"
 * and, across queues, "q=<queue>" first. */
struct lines {
	struct buf b;
	bool       queues;
};

static void
event_line(void *ctx, const struct history_event *ev)
{
	struct lines *l = ctx;
	struct buf *b = &l->b;

	if (b->len > 0)
		buf_puts(b, "\n");
	buf_printf(b, "%s +%lld", history_kind_name(ev->kind), (long long)(ev->at - T0));
	if (l->queues)
		buf_printf(b, " q=%s", ev->queue);
	if (ev->claimant_len > 0)
		buf_printf(b, " c=%.*s", (int)ev->claimant_len, ev->claimant);
	if (ev->attempt > 0)
		buf_printf(b, " a=%u", ev->attempt);
	if (ev->token != NULL)
		buf_printf(b, " t=%s", ev->token);
	if (ev->request_id != NULL)
		buf_printf(b, " r=%s", ev->request_id);
	if (ev->annotations_len > 0)
		buf_printf(b, " x=%.*s", (int)ev->annotations_len, ev->annotations);
}

/* The history as lines: of key in queue, or (queue NULL) of key in every
 * queue of tenant, where lines name their queue as "q=tenant:name". */
static char *
history_of(const char *queue, const char *tenant, const char *key, size_t limit)
{
	static char text[65536];
	struct lines l = { .queues = queue == NULL };
	MDB_txn *txn;
	enum casq_err err;

	if (store_begin(st, false, &txn) != E_OK)
		bail_out("store_begin");
	err = queue ? history_list(st, txn, queue, key, limit, event_line, &l) :
	    history_list_key(st, txn, tenant, key, limit, event_line, &l);
	mdb_txn_abort(txn);
	snprintf(text, sizeof text, "%s%.*s", err == E_OK ? "" : err_code(err),
	    (int)l.b.len, l.b.data ? l.b.data : "");
	buf_free(&l.b);
	return text;
}

static size_t
events_of(const char *queue, const char *key)
{
	const char *h = history_of(queue, NULL, key, HISTORY_PER_ITEM);
	size_t n = *h ? 1 : 0;

	for (; *h; h++)
		n += *h == '\n';
	return n;
}

/* The consistency walk finds nothing. */
static void
verify_clean(const char *what)
{
	size_t problems = 99;

	is_int(store_verify(st, NULL, NULL, &problems), E_OK, "%s: the walk reads everything", what);
	is_int(problems, 0, "%s: the walk finds no problem", what);
}

static void
report(void *ctx, const char *problem)
{
	diag("verify: %s", problem);
}

/* --- every event, in order, with its fields --- */

static void
test_events(void)
{
	struct queue_op op;
	char tok1[9], tok2[9], tok3[9], want[1024];

	section("events", MAP_DEFAULT);
	ok(qop(QOP_ENQUEUE, T0, "t:q", "k", NULL, 0, NULL, "r1", NULL), "events: enqueue");
	qop(QOP_CLAIM, T0 + 1, "t:q", "k", "flow", 1000, NULL, "r2", &op);
	snprintf(tok1, sizeof tok1, "%.8s", op.res.token);
	queue_result_free(&op.res);
	ok(qop(QOP_RELEASE, T0 + 2, "t:q", "k", NULL, 0, op.res.token, NULL, NULL), "events: release");
	qop(QOP_POP, T0 + 3, "t:q", NULL, "hourly", 1000, NULL, NULL, &op);
	snprintf(tok2, sizeof tok2, "%.8s", op.res.token);
	queue_result_free(&op.res);
	/* the lease runs out at T0 + 1003; the next claim turns it back */
	qop(QOP_CLAIM, T0 + 2000, "t:q", "k", "retry", 1000, NULL, NULL, &op);
	snprintf(tok3, sizeof tok3, "%.8s", op.res.token);
	ok(qop(QOP_ACK, T0 + 2001, "t:q", "k", NULL, 0, op.res.token, "r3", NULL), "events: ack");
	queue_result_free(&op.res);
	ok(qop(QOP_ENQUEUE, T0 + 2002, "t:q", "k", NULL, 0, NULL, NULL, NULL), "events: enqueue again");
	ok(qop(QOP_REMOVE, T0 + 2003, "t:q", "k", NULL, 0, NULL, NULL, NULL), "events: remove");
	ok(qop(QOP_ENQUEUE, T0 + 2004, "t:q", "k", NULL, 0, NULL, NULL, NULL), "events: and again");
	ok(qop(QOP_CLAIM, T0 + 2005, "t:q", "k", "", 0, NULL, NULL, NULL), "events: claim without a lease");
	snprintf(want, sizeof want,
	    "enqueued +0 r=r1 x=%s\n"
	    "claimed +1 c=flow a=1 t=%s r=r2 x=%s\n"
	    "released +2 c=flow a=1 t=%s\n"
	    "popped +3 c=hourly a=2 t=%s\n"
	    "expired +1003 c=hourly a=2 t=%s\n"
	    "claimed +2000 c=retry a=3 t=%s\n"
	    "acked +2001 c=retry a=3 t=%s r=r3 x=%s\n"
	    "enqueued +2002\n"
	    "removed +2003\n"
	    "enqueued +2004\n"
	    "claimed +2005 a=1",
	    annotations, tok1, annotations, tok1, tok2, tok2, tok3, tok3, annotations);
	/* the last claim's token is random: compare up to it */
	ok(strncmp(history_of("t:q", NULL, "k", 100), want, strlen(want)) == 0,
	    "events: every change in order, with what it knew:\n%s", history_of("t:q", NULL, "k", 100));
	ok(strncmp(history_of("t:q", NULL, "k", 2), "enqueued +2004\nclaimed +2005 a=1 t=", 35) == 0,
	    "events: limit keeps the newest, oldest first (%s)", history_of("t:q", NULL, "k", 2));
	is_str(history_of("t:q", NULL, "nothing", 100), "", "events: a key without history has none");
	is_str(history_of("t:none", NULL, "k", 100), "no_such_queue",
	    "events: an unknown queue is E_NO_QUEUE");
	/* a lease that runs out in the sweep is recorded there too */
	qop(QOP_ENQUEUE, T0 + 3000, "t:q", "s", NULL, 0, NULL, NULL, NULL);
	qop(QOP_CLAIM, T0 + 3001, "t:q", "s", "w", 10, NULL, NULL, NULL);
	is_int(sweep_at(T0 + 3011, NULL), E_OK, "events: sweep the lease");
	ok(strstr(history_of("t:q", NULL, "s", 100), "\nexpired +3011 c=w a=1 t=") != NULL,
	    "events: the sweep records the expiry at the lease's end");
	verify_clean("events");
}

/* --- one key across queues and tenants; keys that start like others --- */

static void
test_across(void)
{
	const char *want;

	section("across", MAP_DEFAULT);
	qop(QOP_ENQUEUE, T0, "t:b", "1234", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 1, "t:a", "1234", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 1, "t:a.x", "1234", NULL, 0, NULL, NULL, NULL);
	qop(QOP_CLAIM, T0 + 2, "t:b", "1234", "x", 0, NULL, NULL, NULL);
	qop(QOP_REMOVE, T0 + 3, "t:a", "1234", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 4, "u:a", "1234", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 5, "t:a", "123", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 6, "t:a", "1234/a", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 7, "t:a", "12345", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 8, "t:ab", "1234", NULL, 0, NULL, NULL, NULL);
	/* equal times: in the order they were committed */
	want = "enqueued +0 q=t:b\nenqueued +1 q=t:a\nenqueued +1 q=t:a.x\nclaimed +2 q=t:b c=x a=1 t=";
	ok(strncmp(history_of(NULL, "t", "1234", 100), want, strlen(want)) == 0,
	    "across: in time order, each with its queue:\n%s", history_of(NULL, "t", "1234", 100));
	ok(strstr(history_of(NULL, "t", "1234", 100), "\nremoved +3 q=t:a\nenqueued +8 q=t:ab") != NULL,
	    "across: ... and nothing of other keys or tenants:\n%s", history_of(NULL, "t", "1234", 100));
	is_int(events_of("t:a", "1234"), 2, "across: one queue's history has its own events only");
	is_str(history_of(NULL, "u", "1234", 100), "enqueued +4 q=u:a",
	    "across: another tenant sees its own");
	is_str(history_of(NULL, "t", "1234/a", 100), "enqueued +6 q=t:a",
	    "across: a key with a '/' is a key of its own");
	is_str(history_of(NULL, "t", "1234", 2), "removed +3 q=t:a\nenqueued +8 q=t:ab",
	    "across: limit keeps the newest of all queues");
	/* limit 3: the collection is cut to the newest 3 once it holds 6 */
	want = history_of(NULL, "t", "1234", 3);
	ok(strncmp(want, "claimed +2 q=t:b c=x a=1 t=", 27) == 0 &&
	    strcmp(want + 27 + 8, "\nremoved +3 q=t:a\nenqueued +8 q=t:ab") == 0,
	    "across: a small limit cuts the collection as it goes, newest kept:\n%s", want);
	is_str(history_of(NULL, "v", "1234", 100), "", "across: a tenant without it has none");
	verify_clean("across");
}

/* --- the per-item cap --- */

/* Events held in the log, read straight from LMDB. */
static size_t
events_stored(void)
{
	MDB_txn *txn;
	MDB_stat ms;

	if (store_begin(st, false, &txn) != E_OK || mdb_stat(txn, st->events, &ms) != 0)
		bail_out("events_stored");
	mdb_txn_abort(txn);
	return ms.ms_entries;
}

static void
test_cap(void)
{
	enum { PAIRS = HISTORY_PER_ITEM / 2 + HISTORY_TRIM_SLACK / 2 + 1 };	/* 1102 events */
	char want[64];
	const char *h;
	int swept;

	section("cap", MAP_DEFAULT);
	for (int i = 0; i < PAIRS; i++) {
		qop(QOP_ENQUEUE, T0 + 2 * i, "t:q", "k", NULL, 0, NULL, NULL, NULL);
		qop(QOP_REMOVE, T0 + 2 * i + 1, "t:q", "k", NULL, 0, NULL, NULL, NULL);
	}
	is_int(events_of("t:q", "k"), HISTORY_PER_ITEM, "cap: the history shows the last 1000 events");
	h = history_of("t:q", NULL, "k", HISTORY_PER_ITEM);
	snprintf(want, sizeof want, "enqueued +%d\nremoved +%d\n", 2 * PAIRS - 1000,
	    2 * PAIRS - 999);
	ok(strncmp(h, want, strlen(want)) == 0, "cap: the oldest went (starts: %.30s)", h);
	ok(strstr(h, "removed +1101") != NULL && strstr(h, "removed +1101\n") == NULL,
	    "cap: the newest is kept, last");
	/* the 1101st event trimmed the chain to its last 1000; one more since */
	is_int(events_stored(), HISTORY_PER_ITEM + 1, "cap: the log holds 1001 of the 1102");
	verify_clean("cap");
	for (swept = 0; swept < 3 && events_stored() > 0; swept++)
		is_int(sweep_at(T0 + 2 * PAIRS + st->history_ttl_ms, NULL), E_OK, "cap: sweep");
	is_int(events_stored(), 0, "cap: retention ends them all (in sweeps of 1000)");
	is_int(events_of("t:q", "k"), 0, "cap: ... and the history shows none");
	verify_clean("cap: after the sweep");
}

/* --- retention by the sweep --- */

static void
test_retention(void)
{
	struct sweep_counts c = { 0 };
	const char *h;
	int64_t ttl;

	section("retention", MAP_DEFAULT);
	ttl = st->history_ttl_ms = 60000;
	qop(QOP_ENQUEUE, T0, "t:q", "k", NULL, 0, NULL, NULL, NULL);
	qop(QOP_CLAIM, T0 + 10, "t:q", "k", "w", 5000, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 20, "t:q", "other", NULL, 0, NULL, NULL, NULL);
	is_int(sweep_at(T0 + ttl - 1, &c), E_OK, "retention: sweep before the first ends");
	/* the lease ran out at T0+5010 meanwhile: an event too */
	is_int(events_of("t:q", "k"), 3, "retention: nothing ended, nothing goes");
	is_int(sweep_at(T0 + ttl, &c), E_OK, "retention: sweep when the first ends");
	ok(strncmp(history_of("t:q", NULL, "k", 100), "claimed +10 c=w a=1 t=", 22) == 0,
	    "retention: the oldest went (%s)", history_of("t:q", NULL, "k", 100));
	is_int(c.swept[EXPIRY_HISTORY], 1, "retention: one history event removed");
	verify_clean("retention: after the first");
	/* a shorter retention since applies to the events kept already */
	st->history_ttl_ms = 1000;
	is_int(sweep_at(T0 + 1020, NULL), E_OK, "retention: sweep with a shorter retention");
	h = history_of("t:q", NULL, "k", 100);
	ok(strncmp(h, "expired +5010 c=w a=1 t=", 24) == 0 && strchr(h, '\n') == NULL,
	    "retention: only the lease's end, 5 s later, is left of k (%s)", h);
	is_int(events_of("t:q", "other"), 0, "retention: the other key's went too");
	qop(QOP_ENQUEUE, T0 + 6000, "t:q", "k3", NULL, 0, NULL, NULL, NULL);
	is_int(events_of("t:q", "k3"), 1, "retention: a new event after them all is kept");
	verify_clean("retention: after");
}

/* --- the listing of a queue's items --- */

static void
item_line(void *ctx, const char *key, size_t len, uint32_t attempts, int64_t since)
{
	struct buf *b = ctx;

	buf_printf(b, "%s%.*s/%u/+%lld", b->len ? " " : "", (int)len, key, attempts,
	    since ? (long long)(since - T0) : -1LL);
}

static char *
items_of(int64_t now, const char *q, enum item_state state, const char *after,
    size_t limit, char next[static ITEM_KEY_MAX + 1])
{
	static char text[4096];
	struct buf b = { 0 };
	MDB_txn *txn;
	enum casq_err err;

	if (store_begin(st, false, &txn) != E_OK)
		bail_out("store_begin");
	err = queue_items(st, txn, q, state, after, limit, now, item_line, &b, next);
	mdb_txn_abort(txn);
	snprintf(text, sizeof text, "%s%.*s", err == E_OK ? "" : err_code(err),
	    (int)b.len, b.data ? b.data : "");
	buf_free(&b);
	return text;
}

static void
test_items(void)
{
	char next[ITEM_KEY_MAX + 1], after[ITEM_KEY_MAX + 1];

	section("items", MAP_DEFAULT);
	qop(QOP_ENQUEUE, T0, "t:q", "c", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 1, "t:q", "a", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 2, "t:q", "b", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 3, "t:q", "d", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 4, "t:q2", "a0", NULL, 0, NULL, NULL, NULL);
	qop(QOP_CLAIM, T0 + 10, "t:q", "b", "w", 1000, NULL, NULL, NULL);
	qop(QOP_CLAIM, T0 + 11, "t:q", "d", "w", 100000, NULL, NULL, NULL);
	is_str(items_of(T0 + 20, "t:q", ITEM_READY, NULL, 100, next), "a/0/+1 c/0/+0",
	    "items: ready ones in key order, since they became ready");
	is_str(next, "", "items: ... and no next on the last page");
	is_str(items_of(T0 + 20, "t:q", ITEM_LEASED, NULL, 100, next), "b/1/+10 d/1/+11",
	    "items: leased ones since their claim");
	is_str(items_of(T0 + 2000, "t:q", ITEM_READY, NULL, 100, next), "a/0/+1 b/1/+1010 c/0/+0",
	    "items: a lease that ran out is ready from its end");
	is_str(items_of(T0 + 20, "t:q", ITEM_READY, NULL, 1, next), "a/0/+1",
	    "items: limit 1");
	is_str(next, "b", "items: ... next is the last key read (b is not ready)");
	snprintf(after, sizeof after, "%s", next);
	is_str(items_of(T0 + 20, "t:q", ITEM_READY, after, 1, next), "c/0/+0",
	    "items: after it, the next one");
	is_str(next, "", "items: ... the last: no next (d is leased)");
	is_str(items_of(T0 + 20, "t:q", ITEM_READY, "b", 5, next), "c/0/+0",
	    "items: after a key that is not ready");
	is_str(items_of(T0 + 20, "t:q", ITEM_LEASED, "zzz", 5, next), "",
	    "items: after the last key: nothing");
	is_str(items_of(T0 + 20, "t:none", ITEM_READY, NULL, 5, next), "no_such_queue",
	    "items: an unknown queue is E_NO_QUEUE");
	verify_clean("items");
}

/* --- the walk finds what is wrong --- */

/* Rewrite the record under key (klen bytes) in dbi: fn changes a copy,
 * which may be longer (to size bytes, zero-filled). */
static void
rewrite(MDB_dbi dbi, const void *key, size_t klen, size_t size, void (*fn)(char *rec))
{
	MDB_val k = { klen, (void *)key }, v;
	MDB_txn *txn;
	char *rec;

	if (store_begin(st, true, &txn) != E_OK || mdb_get(txn, dbi, &k, &v) != 0)
		bail_out("rewrite %.*s", (int)klen, (const char *)key);
	rec = calloc(1, size > v.mv_size ? size : v.mv_size);
	memcpy(rec, v.mv_data, v.mv_size);
	fn(rec);
	v = (MDB_val){ size > v.mv_size ? size : v.mv_size, rec };
	if (mdb_put(txn, dbi, &k, &v, 0) != 0 || store_commit(txn) != E_OK)
		bail_out("rewrite: put");
	free(rec);
}

/* An item header's history head naming event 1. */
static void
head_1(char *rec)
{
	struct item_hdr h;

	memcpy(&h, rec, sizeof h);
	h.history.last = 1;
	memcpy(rec, &h, sizeof h);
}

/* --- the walk finds what is wrong --- */

static void
test_verify(void)
{
	size_t problems = 0;

	section("verify", MAP_DEFAULT);
	qop(QOP_ENQUEUE, T0, "t:q", "k", NULL, 0, NULL, NULL, NULL);
	qop(QOP_ENQUEUE, T0 + 1, "t:q", "j", NULL, 0, NULL, NULL, NULL);
	verify_clean("verify: two items");
	/* j's head names k's event behind the family's back */
	rewrite(st->items, "t:q/j", 5, 0, head_1);
	store_verify(st, report, NULL, &problems);
	is_int(problems, 1, "verify: a head naming another item's event is found");
	is_str(history_of("t:q", NULL, "j", 10), "",
	    "verify: ... and the history of j does not show k's event");
}

/* --- records whose lengths are past their limits are corrupt --- */

/* The event header's request_id_len (byte 30), claimant_len (29) and
 * annotations_len (24) as docs/storage.md lays them out. */
static void
request_id_250(char *rec)
{
	rec[24] = rec[25] = 0;
	rec[29] = 0;
	rec[30] = (char)250;
}

static void
bind_300(char *rec)
{
	struct item_hdr h;

	memcpy(&h, rec, sizeof h);
	h.bind_len = 300;
	h.claimant_len = 0;
	h.payload_len = 0;
	h.follow_len = 0;
	memcpy(rec, &h, sizeof h);
}

static void
test_corrupt_lengths(void)
{
	static const unsigned char event1[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	struct queue_op op;

	section("corrupt", MAP_DEFAULT);
	qop(QOP_ENQUEUE, T0, "t:q", "k", NULL, 0, NULL, "r1", NULL);
	/* a request id longer than any kept (200) overran the decoder's copy */
	rewrite(st->events, event1, sizeof event1, 40 + 3 + 1 + 250, request_id_250);
	ok(strncmp(history_of("t:q", NULL, "k", 10), "enqueued", 8) != 0,
	    "corrupt: an event with a 250-byte request id is not decoded");
	/* an item's bind longer than BIND_MAX overran the result's bound_to */
	rewrite(st->items, "t:q/k", 5, sizeof(struct item_hdr) + 300, bind_300);
	ok(!qop(QOP_STATUS, T0 + 1, "t:q", "k", NULL, 0, NULL, NULL, &op),
	    "corrupt: an item with a 300-byte bind is not read");
	queue_result_free(&op.res);
}

/* --- queue_walk (casqctl items, show, export) sees a lease that ran out
 * as status and the item listing do --- */

static bool
walk_one(void *ctx, const struct queue_walk_item *it)
{
	*(struct queue_walk_item *)ctx = *it;
	return false;
}

static void
test_walk_ran_out(void)
{
	struct queue_op cfg = { .kind = QOP_CONFIG, .now = T0, .queue = "t:q",
	    .claimant = "", .set_max_attempts = true, .config.max_attempts = 1 };
	struct queue_walk_item it = { 0 };
	char next[ITEM_KEY_MAX + 1];
	MDB_txn *txn;

	section("walk", MAP_DEFAULT);
	qop(QOP_ENQUEUE, T0, "t:q", "k", NULL, 0, NULL, NULL, NULL);
	if (store_run_queue_op(st, &cfg) != E_OK)
		bail_out("config");
	queue_result_free(&cfg.res);
	qop(QOP_CLAIM, T0 + 1, "t:q", "k", "w", 1000, NULL, NULL, NULL);
	if (store_begin(st, false, &txn) != E_OK)
		bail_out("begin");
	is_int(queue_walk(st, txn, "t:q", NULL, T0 + 5000, walk_one, &it), E_OK,
	    "walk: reads the queue");
	mdb_txn_abort(txn);
	is_str(item_state_name(it.state), "dead",
	    "walk: the last lease (max_attempts 1) ran out: dead, as status says");
	is_str(items_of(T0 + 5000, "t:q", ITEM_DEAD, NULL, 5, next), "k/1/+1001",
	    "walk: the item listing says dead too");
}

int
main(void)
{
	fixture_start();
	test_events();
	test_across();
	test_cap();
	test_retention();
	test_items();
	test_verify();
	test_corrupt_lengths();
	test_walk_ran_out();
	fixture_end();
	return done_testing();
}
