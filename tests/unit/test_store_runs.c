/*
 * test_store_runs.c - what happens to an item across its runs (issue 12):
 * queue settings, dead letters and redrive, follow-up runs, bound pops'
 * bindings (store_bind.c) and the claims-per-minute ring, on real LMDB
 * (store_fixture.h). Time is the op's `now`; each section ends with the
 * consistency walk, so every state these reach is one casqctl verify accepts.
 */
#include "store_fixture.h"

#define LEASE	30000	/* ms */

static struct queue_op
mk(enum queue_op_kind kind, int64_t now, const char *key)
{
	return (struct queue_op){ .kind = kind, .now = now, .queue = "t:q",
	    .key = key, .claimant = "w" };
}

/* Run op; a storage error fails the test. The result's payload is the
 * caller's to free (or not: these are small and the test is short). */
static struct queue_op
run(struct queue_op op)
{
	enum casq_err err = store_run_queue_op(st, &op);

	if (err != E_OK)
		bail_out("queue op %d: error %d", (int)op.kind, (int)err);
	return op;
}

static struct queue_op
enqueue(int64_t now, const char *key, const char *payload)
{
	struct queue_op op = mk(QOP_ENQUEUE, now, key);

	op.payload = payload;
	op.payload_len = payload ? strlen(payload) : 0;
	return run(op);
}

static struct queue_op
lease(int64_t now, const char *key, int64_t lease_ms)
{
	struct queue_op op = mk(key ? QOP_CLAIM : QOP_POP, now, key);

	op.lease_ms = lease_ms;
	return run(op);
}

static struct queue_op
end(enum queue_op_kind kind, int64_t now, const char *key, const char *token)
{
	struct queue_op op = mk(kind, now, key);

	op.token = token;
	return run(op);
}

static struct queue_op
config(int64_t now, int64_t lease_ms, int max_attempts, int bind_days)
{
	struct queue_op op = mk(QOP_CONFIG, now, NULL);

	op.set_lease = lease_ms >= 0;
	op.config.lease_ms = lease_ms;
	op.set_max_attempts = max_attempts >= 0;
	op.config.max_attempts = (uint32_t)max_attempts;
	op.set_bind_days = bind_days > 0;
	op.config.bind_days = (uint32_t)bind_days;
	return run(op);
}

static struct queue_stats
stats(int64_t now)
{
	return run(mk(QOP_STATS, now, NULL)).res.stats;
}

static void
consistent(const char *what)
{
	size_t problems = 0;
	enum casq_err err = store_verify(st, NULL, NULL, &problems);

	ok(err == E_OK && problems == 0,
	    "%s: the consistency walk finds nothing (%zu problems)", what, problems);
}

static const char *
payload_of(const struct queue_op *op)
{
	static char text[64];

	snprintf(text, sizeof text, "%.*s", (int)op->res.payload.len,
	    op->res.payload.data ? op->res.payload.data : "");
	return text;
}

/* --- settings --- */

static void
test_config(void)
{
	struct queue_op op;
	struct store_config cfg = { .map_size = MAP_DEFAULT };
	char dir[256], why[256];

	section("config", MAP_DEFAULT);
	op = mk(QOP_CONFIG, T0, NULL);
	ok(!queue_op_writes(&op), "config: with nothing sent it is a read");
	is_int(store_run_queue_op(st, &op), E_NO_QUEUE,
	    "config: a read of a queue that does not exist is E_NO_QUEUE");
	op = config(T0, 600000, 5, -1);
	is_int(op.res.stats.config.lease_ms, 600000, "config: the lease is set");
	is_int(op.res.stats.config.max_attempts, 5, "config: max_attempts is set");
	is_int(op.res.stats.config.bind_days, BIND_DAYS_DEFAULT,
	    "config: bind_days not sent keeps its default");
	is_int(stats(T0).ready, 0, "config: it created the queue, empty");
	op = config(T0, -1, -1, 30);
	is_int(op.res.stats.config.lease_ms, 600000, "config: a later change keeps the lease");
	is_int(op.res.stats.config.bind_days, 30, "config: ... and sets bind_days");

	enqueue(T0, "a", NULL);
	op = lease(T0 + 1, "a", 0);
	is_int(op.res.state, ITEM_LEASED, "config: a claim without a lease gets the queue's");
	is_int(op.res.lease_expires_at, T0 + 1 + 600000, "config: ... of 600 s");
	enqueue(T0, "b", NULL);
	op = lease(T0 + 1, "b", 1000);
	is_int(op.res.lease_expires_at, T0 + 1 + 1000, "config: a claim's own lease wins");

	snprintf(dir, sizeof dir, "%s/config", fixture_root);
	cfg.dir = dir;
	store_close(st);
	if (store_open(&cfg, &st, why, sizeof why) != 0)
		bail_out("reopen: %s", why);
	op = run(mk(QOP_CONFIG, T0 + 2, NULL));
	ok(op.res.stats.config.lease_ms == 600000 && op.res.stats.config.max_attempts == 5 &&
	    op.res.stats.config.bind_days == 30, "config: the settings survive a reopen");
	consistent("config");
}

/* --- dead letters --- */

static void
test_dead(void)
{
	struct queue_op op;
	struct sweep_counts sc = { 0 };
	char token[TOKEN_HEX_LEN + 1];
	struct queue_stats qs;

	section("dead", MAP_DEFAULT);
	config(T0, -1, 2, -1);
	enqueue(T0, "a", "\"pa\"");
	op = lease(T0, "a", LEASE);
	is_int(op.res.attempts, 1, "dead: first lease is attempt 1");
	op = lease(T0 + LEASE, "a", LEASE);	/* the first lease ran out */
	ok(op.res.ok && op.res.attempts == 2, "dead: attempt 2 after the first lease expired");
	snprintf(token, sizeof token, "%s", op.res.token);
	op = run(mk(QOP_STATUS, T0 + 2 * LEASE, "a"));
	is_int(op.res.state, ITEM_DEAD, "dead: status of an expired last lease says dead (unswept)");
	ok(sweep_at(T0 + 2 * LEASE, &sc) == E_OK && sc.swept[EXPIRY_LEASE] == 1,
	    "dead: the sweep ends the second lease");
	op = run(mk(QOP_STATUS, T0 + 2 * LEASE, "a"));
	is_int(op.res.state, ITEM_DEAD, "dead: after max_attempts leases the item is dead");
	is_int(op.res.dead_at, T0 + 2 * LEASE, "dead: dead since the lease's end");
	is_int(op.res.attempts, 2, "dead: it keeps its attempts");
	qs = stats(T0 + 2 * LEASE);
	ok(qs.dead == 1 && qs.ready == 0 && qs.leased == 0 && qs.died == 1,
	    "dead: stats count 1 dead, nothing ready or leased");
	op = lease(T0 + 2 * LEASE, "a", LEASE);
	is_str(store_refusal_name(op.res.reason), "dead", "dead: a claim by key says dead");
	op = lease(T0 + 2 * LEASE, NULL, LEASE);
	is_str(store_refusal_name(op.res.reason), "empty", "dead: a pop never gets a dead item");
	op = enqueue(T0 + 2 * LEASE, "a", "\"new\"");
	ok(!op.res.ok && op.res.state == ITEM_DEAD, "dead: an enqueue of a dead key says dead");
	op = end(QOP_ACK, T0 + 2 * LEASE, "a", token);
	is_str(store_refusal_name(op.res.reason), "lease_expired",
	    "dead: the late ack of the last holder says lease_expired");
	consistent("dead");

	op = run(mk(QOP_REDRIVE, T0 + 2 * LEASE + 1, "a"));
	ok(op.res.ok && op.res.redriven == 1, "dead: redrive of the key redrives it");
	op = run(mk(QOP_STATUS, T0 + 2 * LEASE + 1, "a"));
	ok(op.res.state == ITEM_READY && op.res.attempts == 0 &&
	    op.res.ready_at == T0 + 2 * LEASE + 1, "dead: redriven: ready now, attempts 0");
	op = lease(T0 + 2 * LEASE + 2, NULL, LEASE);
	ok(op.res.ok && op.res.attempts == 1, "dead: the redriven item is popped as attempt 1");
	is_str(payload_of(&op), "\"pa\"", "dead: ... with its payload");
	op = end(QOP_RELEASE, T0 + 2 * LEASE + 3, "a", op.res.token);
	is_int(op.res.state, ITEM_READY, "dead: a release below the limit makes it ready");
	op = lease(T0 + 2 * LEASE + 4, "a", LEASE);
	snprintf(token, sizeof token, "%s", op.res.token);
	op = mk(QOP_RELEASE, T0 + 2 * LEASE + 5, "a");
	op.token = token;
	op.delay_ms = 60000;
	op = run(op);
	is_int(op.res.state, ITEM_DEAD, "dead: a release at the limit makes it dead");
	is_int(run(mk(QOP_STATUS, T0 + 2 * LEASE + 5, "a")).res.dead_at, T0 + 2 * LEASE + 5,
	    "dead: dead since the release, whatever its delay");
	op = run(mk(QOP_REDRIVE, T0 + 2 * LEASE + 5, "b"));
	is_str(store_refusal_name(op.res.reason), "not_queued", "dead: redrive of an absent key");
	enqueue(T0, "r", NULL);
	op = run(mk(QOP_REDRIVE, T0 + 2 * LEASE + 5, "r"));
	is_str(store_refusal_name(op.res.reason), "not_dead", "dead: redrive of a ready key");
	op = run(mk(QOP_REMOVE, T0 + 2 * LEASE + 6, "a"));
	ok(op.res.ok && stats(T0 + 2 * LEASE + 6).dead == 0, "dead: a dead item can be removed");
	consistent("dead, redriven and removed");
}

/* A redrive of all is paged by REDRIVE_BATCH (500). */
static void
test_redrive_all(void)
{
	struct queue_op op;
	struct sweep_counts sc = { 0 };
	char key[16];
	int n = 1100;
	uint64_t total = 0;

	section("redrive-all", MAP_DEFAULT);
	config(T0, -1, 1, -1);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "k%04d", i);
		enqueue(T0, key, NULL);
		lease(T0, key, LEASE);
	}
	is_int(stats(T0 + LEASE).dead, 0, "redrive all: dead are counted once their leases end");
	while (sweep_at(T0 + LEASE, &sc) == E_OK && sc.swept[EXPIRY_LEASE] > 0)
		sc.swept[EXPIRY_LEASE] = 0;
	is_int(stats(T0 + LEASE).dead, n, "redrive all: ... by the sweep");
	for (int page = 0; page < 3; page++) {
		op = mk(QOP_REDRIVE, T0 + LEASE + 1, NULL);
		op.redrive_all = true;
		op = run(op);
		total += op.res.redriven;
		ok(op.res.ok && op.res.redriven == (page < 2 ? 500 : 100) &&
		    op.res.remaining == (uint64_t)(page == 0 ? 600 : page == 1 ? 100 : 0),
		    "redrive all: call %d redrives %llu, %llu remain", page + 1,
		    (unsigned long long)op.res.redriven, (unsigned long long)op.res.remaining);
	}
	is_int((long long)total, n, "redrive all: the pages add up to every dead item");
	ok(stats(T0 + LEASE + 1).ready == (uint64_t)n && stats(T0 + LEASE + 1).dead == 0,
	    "redrive all: every item is ready, none dead");
	consistent("redrive all");
}

/* --- follow-up runs --- */

static void
test_follow_up(void)
{
	struct queue_op op;
	char token[TOKEN_HEX_LEN + 1];

	section("follow-up", MAP_DEFAULT);
	enqueue(T0, "a", "\"p1\"");
	op = lease(T0, "a", LEASE);
	snprintf(token, sizeof token, "%s", op.res.token);
	op = enqueue(T0 + 1, "a", "\"p2\"");
	ok(op.res.ok && op.res.follow_up, "follow-up: an enqueue of a leased item is enqueued as a follow-up");
	op = enqueue(T0 + 2, "a", "\"p3\"");
	ok(!op.res.ok && op.res.follow_up, "follow-up: a second one is not enqueued, still follow_up");
	op = run(mk(QOP_STATUS, T0 + 3, "a"));
	ok(op.res.state == ITEM_LEASED && op.res.follow_up, "follow-up: status: leased, follow_up");
	is_int(stats(T0 + 3).enqueued, 2, "follow-up: the first follow-up counts as an enqueue, the second not");
	op = end(QOP_ACK, T0 + 4, "a", token);
	ok(op.res.ok && op.res.follow_up && op.res.state == ITEM_READY,
	    "follow-up: the ack makes it ready for the follow-up");
	op = lease(T0 + 5, NULL, LEASE);
	ok(op.res.ok && op.res.attempts == 1, "follow-up: popped again, attempt 1");
	is_str(payload_of(&op), "\"p3\"", "follow-up: with the last follow-up's payload");
	op = end(QOP_ACK, T0 + 6, "a", op.res.token);
	ok(op.res.ok && op.res.state == ITEM_CLAIMED && !op.res.follow_up,
	    "follow-up: exactly one more run: the next ack consumes it");
	consistent("follow-up and ack");

	/* expiry during a follow-up, which wins over max_attempts */
	config(T0, -1, 1, -1);
	enqueue(T0 + 10, "b", "\"b1\"");
	lease(T0 + 10, "b", LEASE);
	enqueue(T0 + 11, "b", "\"b2\"");
	op = run(mk(QOP_STATUS, T0 + 10 + LEASE, "b"));
	ok(op.res.state == ITEM_READY && op.res.attempts == 0,
	    "follow-up: status after the lease ran out: ready (not dead), attempts 0");
	op = lease(T0 + 10 + LEASE, "b", LEASE);
	ok(op.res.ok && op.res.attempts == 1, "follow-up: after expiry the follow-up runs, not dead");
	is_str(payload_of(&op), "\"b2\"", "follow-up: ... with its payload");
	op = end(QOP_RELEASE, T0 + 11 + LEASE, "b", op.res.token);
	is_int(op.res.state, ITEM_DEAD, "follow-up: without another follow-up the limit applies");
	consistent("follow-up and expiry");

	/* at-most-once claims consume: a later enqueue is a new item */
	enqueue(T0 + 20, "c", NULL);
	lease(T0 + 20, "c", 0);
	op = enqueue(T0 + 21, "c", NULL);
	ok(op.res.ok && !op.res.follow_up && op.res.state == ITEM_READY,
	    "follow-up: after a consuming claim an enqueue is a new item");
}

/* --- bound pops --- */

static struct queue_op
bound_pop(int64_t now, const char *bind, int64_t lease_ms)
{
	struct queue_op op = mk(QOP_POP, now, NULL);

	op.bind = bind;
	op.lease_ms = lease_ms;
	return run(op);
}

static void
test_bind(void)
{
	struct queue_op op, first;
	struct sweep_counts sc = { 0 };

	section("bind", MAP_DEFAULT);
	config(T0, -1, -1, 2);
	enqueue(T0, "code1", "\"C1\"");
	enqueue(T0, "code2", "\"C2\"");
	enqueue(T0, "code3", "\"C3\"");
	first = bound_pop(T0 + 1, "lead-1", 0);
	ok(first.res.ok && !first.res.again, "bind: the first pop takes an item");
	is_str(first.res.key, "code1", "bind: ... the next one");
	op = bound_pop(T0 + 2, "lead-1", 0);
	ok(op.res.ok && op.res.again, "bind: the same bind again answers again:true");
	ok(strcmp(op.res.key, "code1") == 0 && strcmp(payload_of(&op), "\"C1\"") == 0 &&
	    strcmp(op.res.token, first.res.token) == 0 && op.res.attempts == 1,
	    "bind: ... with the same key, payload, token and attempt");
	is_int(stats(T0 + 2).claimed, 1, "bind: ... and takes nothing");
	op = bound_pop(T0 + 3, "lead-2", 0);
	is_str(op.res.key, "code2", "bind: another bind takes the next item");
	op = run(mk(QOP_STATUS, T0 + 3, "code1"));
	ok(op.res.state == ITEM_CLAIMED && strcmp(op.res.bound_to, "lead-1") == 0,
	    "bind: status of the consumed item shows bound_to");

	/* a lease: acked or removed, the binding still answers */
	op = bound_pop(T0 + 4, "lead-3", LEASE);
	is_str(op.res.key, "code3", "bind: a leased bound pop");
	op = run(mk(QOP_STATUS, T0 + 4, "code3"));
	is_str(op.res.bound_to, "lead-3", "bind: status of the leased item shows bound_to");
	op = bound_pop(T0 + 5, "lead-3", LEASE);
	ok(op.res.again && op.res.state == ITEM_LEASED && op.res.lease_expires_at == T0 + 4 + LEASE,
	    "bind: again while the lease lasts, with its end");
	op = run(mk(QOP_REMOVE, T0 + 6, "code3"));
	op = bound_pop(T0 + 7, "lead-3", LEASE);
	ok(op.res.again && strcmp(op.res.key, "code3") == 0 && strcmp(payload_of(&op), "\"C3\"") == 0,
	    "bind: after the item was removed, the retry still gets it");
	consistent("bind");

	/* a lease that ends without an ack ends the binding */
	enqueue(T0 + 10, "code4", "\"C4\"");
	op = bound_pop(T0 + 10, "lead-4", LEASE);
	is_str(op.res.key, "code4", "bind: lead-4 leases code4");
	op = bound_pop(T0 + 10 + LEASE, "lead-5", LEASE);
	ok(op.res.ok && !op.res.again && strcmp(op.res.key, "code4") == 0,
	    "bind: its lease ran out: code4 is back in the pool for lead-5");
	op = bound_pop(T0 + 11 + LEASE, "lead-4", LEASE);
	is_str(store_refusal_name(op.res.reason), "empty",
	    "bind: lead-4's binding ended with its lease: a new pop, and the pool is empty");
	op = bound_pop(T0 + 11 + LEASE, "lead-5", LEASE);
	ok(op.res.again && strcmp(op.res.key, "code4") == 0, "bind: lead-5 has code4 now");
	consistent("bind, lease ended");

	/* bind_days: 2 */
	ok(db_has(st->bindings, "t:q/lead-1"), "bind: the binding is stored");
	ok(sweep_at(T0 + 1 + 2 * DAY_MS, &sc) == E_OK && sc.swept[EXPIRY_BINDING] >= 1,
	    "bind: the sweep ends bindings after bind_days");
	ok(!db_has(st->bindings, "t:q/lead-1"), "bind: lead-1's binding is gone");
	enqueue(T0 + 2 * DAY_MS, "code5", NULL);
	op = bound_pop(T0 + 2 * DAY_MS, "lead-1", 0);
	ok(op.res.ok && !op.res.again && strcmp(op.res.key, "code1") != 0,
	    "bind: after bind_days the bind takes a new item (%s)", op.res.key);
	consistent("bind, swept");
}

/* --- claims per minute --- */

static void
test_rate(void)
{
	struct queue_op op;
	int64_t m0 = (T0 / 60000 + 1) * 60000;	/* the start of a minute */

	section("rate", MAP_DEFAULT);
	for (int i = 0; i < 5; i++) {
		char key[8];

		snprintf(key, sizeof key, "k%d", i);
		enqueue(m0, key, NULL);
	}
	lease(m0, "k0", 0);
	lease(m0 + 59999, "k1", 0);
	lease(m0 + 60000, NULL, LEASE);
	lease(m0 + 3 * 60000, "k1", 0);	/* lost: not counted */
	op = run(mk(QOP_STATS, m0 + 3 * 60000, NULL));
	is_int(op.res.claims_per_minute[59], 0, "rate: this minute: none");
	is_int(op.res.claims_per_minute[56], 2, "rate: 3 minutes ago: 2 winning claims");
	is_int(op.res.claims_per_minute[57], 1, "rate: 2 minutes ago: 1 pop");
	op = run(mk(QOP_STATS, m0 + 59 * 60000, NULL));
	is_int(op.res.claims_per_minute[0], 2, "rate: 59 minutes later the first minute is the oldest");
	op = run(mk(QOP_STATS, m0 + 60 * 60000, NULL));
	is_int(op.res.claims_per_minute[0], 1, "rate: an hour later the first minute is gone: the oldest is the pop's (read)");
	lease(m0 + 61 * 60000, "k3", 0);
	op = run(mk(QOP_STATS, m0 + 61 * 60000, NULL));
	long long sum = 0;

	for (int i = 0; i < CLAIM_RATE_MINUTES; i++)
		sum += op.res.claims_per_minute[i];
	ok(sum == 1 && op.res.claims_per_minute[59] == 1,
	    "rate: a claim an hour later counts alone (stale slots zeroed on write)");
}

int
main(void)
{
	fixture_start();
	test_config();
	test_dead();
	test_redrive_all();
	test_follow_up();
	test_bind();
	test_rate();
	fixture_end();
	return done_testing();
}
