/*
 * test_store_batch.c - group commit (store_batch.c) against real LMDB in
 * a temporary directory: callbacks in commit order, batches handed off
 * to another thread, and, through the committer's test seam, one op of a
 * batch failing as a full map would: the others commit, it alone gets
 * 507, and nothing of it is kept.
 *
 * A gate makes the batches deterministic: the first op blocks in the seam
 * until every other op is queued, so they all go into the next batch.
 */
#include <pthread.h>
#include <semaphore.h>

#include "store_fixture.h"
#include "http.h"	/* err_status, err_code */

#define OPS	8	/* in the batch under test; below max_batch */

/* --- helpers: the seam, the gate, the ops --- */

static struct {
	void *gate;		/* this op blocks until `open` */
	sem_t entered, open;
	void *victim;		/* this op writes, then fails as MAP_FULL */
	int   victim_applied;
} seam;

static enum casq_err
seam_apply(store_apply_fn fn, struct store *s, MDB_txn *txn, void *op)
{
	enum casq_err err;

	if (op == seam.gate) {
		seam.gate = NULL;	/* once */
		sem_post(&seam.entered);
		while (sem_wait(&seam.open) != 0)
			;
	}
	err = fn(s, txn, op);
	if (op != seam.victim || err != E_OK)
		return err;
	/* Its writes are in txn: a real MDB_MAP_FULL comes after some. */
	seam.victim_applied++;
	return store_map_error(MDB_MAP_FULL, "test seam");
}

struct done {
	enum casq_err err;
	bool          called;
	int           order;	/* nth callback */
};
static int callbacks;

static void
done_cb(void *arg, enum casq_err err)
{
	struct done *d = arg;

	d->err = err;
	d->called = true;
	d->order = callbacks++;
}

static struct queue_op
enq(const char *key)
{
	return (struct queue_op){ .kind = QOP_ENQUEUE, .now = T0, .queue = "q",
	    .key = key, .claimant = "", .token = "" };
}

static struct queue_op
item_status(const char *key)
{
	struct queue_op op = enq(key);

	op.kind = QOP_STATUS;
	store_run_queue_op(st, &op);
	return op;
}

static struct queue_stats
queue_stats(void)
{
	struct queue_op op = enq(NULL);

	op.kind = QOP_STATS;
	store_run_queue_op(st, &op);
	return op.res.stats;
}

/* Submit the gate op, wait until the committer holds it, submit ops[]
 * behind it, open the gate and stop the committer: everything is
 * committed and called back when this returns. */
static void
gated_batch(struct committer *c, struct queue_op *gate, struct done *gd,
    struct queue_op *ops, struct done *d, int n)
{
	seam.gate = gate;
	committer_submit(c, T0, queue_apply_fn, gate, done_cb, gd);
	while (sem_wait(&seam.entered) != 0)
		;
	for (int i = 0; i < n; i++)
		committer_submit(c, T0, queue_apply_fn, &ops[i], done_cb, &d[i]);
	sem_post(&seam.open);
	committer_stop(c);
}

/* --- callbacks in commit order, on the committer thread --- */

static void
test_order(void)
{
	struct queue_op gate = enq("gate"), ops[OPS];
	struct done gd = { 0 }, d[OPS] = { 0 };
	char keys[OPS][8];
	struct committer *c;
	bool in_order = true;

	section("order", MAP_DEFAULT);
	callbacks = 0;
	if ((c = committer_start(st, 64, NULL, NULL)) == NULL)
		bail_out("committer_start");
	for (int i = 0; i < OPS; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		ops[i] = enq(keys[i]);
	}
	gated_batch(c, &gate, &gd, ops, d, OPS);
	ok(gd.called && gd.err == E_OK, "batch: the gate op committed first");
	for (int i = 0; i < OPS; i++)
		in_order &= d[i].called && d[i].err == E_OK && d[i].order == i + 1;
	ok(in_order, "batch: every op was called back once, E_OK, in submission order");
	is_int(queue_stats().enqueued, OPS + 1, "batch: every op's enqueue is stored");
}

/* --- batches handed to another thread --- */

static struct {
	pthread_mutex_t      mu;
	struct commit_batch *held[64];
	int                  n;
} handed = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void
hand_keep(void *arg, struct commit_batch *b)
{
	pthread_mutex_lock(&handed.mu);
	handed.held[handed.n++] = b;
	pthread_mutex_unlock(&handed.mu);
}

static void
test_hand_off(void)
{
	struct queue_op ops[2] = { enq("a"), enq("b") };
	struct done d[2] = { 0 };
	struct committer *c;

	section("hand", MAP_DEFAULT);
	if ((c = committer_start(st, 64, hand_keep, NULL)) == NULL)
		bail_out("committer_start");
	for (int i = 0; i < 2; i++)
		committer_submit(c, T0, queue_apply_fn, &ops[i], done_cb, &d[i]);
	committer_stop(c);
	ok(handed.n >= 1 && handed.n <= 2, "batch: committed batches were handed over (%d)", handed.n);
	ok(!d[0].called && !d[1].called, "batch: no callback ran before the receiver finished a batch");
	is_int(queue_stats().enqueued, 2, "batch: ... although both ops are committed");
	for (int i = 0; i < handed.n; i++)
		commit_batch_finish(handed.held[i]);
	ok(d[0].called && d[1].called && d[0].err == E_OK && d[1].err == E_OK,
	    "batch: commit_batch_finish ran both callbacks, E_OK");
}

/* --- one op fails with MDB_MAP_FULL in a batch --- */

static void
test_map_full_in_batch(void)
{
	struct queue_op gate = enq("gate"), ops[OPS];
	struct done gd = { 0 }, d[OPS] = { 0 };
	char keys[OPS][8];
	struct committer *c;
	const int v = 3;	/* the victim, in the middle of the batch */
	int others = 0, present = 0;

	section("mapfull", MAP_DEFAULT);
	for (int i = 0; i < OPS; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		ops[i] = enq(keys[i]);
	}
	seam.victim = &ops[v];
	seam.victim_applied = 0;
	if ((c = committer_start(st, 64, NULL, NULL)) == NULL)
		bail_out("committer_start");
	gated_batch(c, &gate, &gd, ops, d, OPS);
	seam.victim = NULL;

	is_int(d[v].err, E_STORAGE_FULL, "batch: the op that hit MDB_MAP_FULL fails (%s)",
	    err_code(d[v].err));
	is_int(err_status(d[v].err), 507, "batch: ... and is answered 507");
	is_int(seam.victim_applied, 2, "batch: it was applied twice: in the batch, then alone in a nested transaction");
	for (int i = 0; i < OPS; i++) {
		if (i == v)
			continue;
		others += d[i].called && d[i].err == E_OK && ops[i].res.ok;
		present += item_status(keys[i]).res.state == ITEM_READY;
	}
	is_int(others, OPS - 1, "batch: every other op of the batch committed");
	is_int(present, OPS - 1, "batch: ... and its item is stored");
	is_int(item_status(keys[v]).res.state, ITEM_ABSENT, "batch: nothing of the failed op is kept (item)");
	is_int(queue_stats().enqueued, OPS, "batch: the queue counts the others and the gate, not the failed op");
	is_int(queue_stats().ready, OPS, "batch: ... and so does its ready count (no half-done op)");
}

/* --- a failing op alone in its batch --- */

static void
test_map_full_alone(void)
{
	struct queue_op op = enq("alone");
	struct done d = { 0 };
	struct committer *c;

	section("alone", MAP_DEFAULT);
	seam.victim = &op;
	seam.victim_applied = 0;
	if ((c = committer_start(st, 64, NULL, NULL)) == NULL)
		bail_out("committer_start");
	committer_submit(c, T0, queue_apply_fn, &op, done_cb, &d);
	committer_stop(c);
	seam.victim = NULL;
	is_int(d.err, E_STORAGE_FULL, "batch: an op alone in its batch gets its own error");
	is_int(seam.victim_applied, 1, "batch: ... applied once: no rerun for a batch of one");
	is_int(item_status("alone").res.state, ITEM_ABSENT, "batch: ... and nothing of it is kept");
}

int
main(void)
{
	fixture_start();
	sem_init(&seam.entered, 0, 0);
	sem_init(&seam.open, 0, 0);
	committer_apply_seam = seam_apply;	/* the gate and the victim */
	test_order();
	test_hand_off();
	test_map_full_in_batch();
	test_map_full_alone();
	fixture_end();
	return done_testing();
}
