/*
 * store_batch.c - group commit. A durable LMDB commit costs two flushes
 * whether it carries one operation or a hundred, so a worker process runs
 * one committer thread: request threads queue their write operations,
 * and while one commit is being flushed the next batch gathers. Every
 * reply waits until the commit that carries its operation is durable.
 *
 * A request thread does not wait for its commit: it hands over the
 * operation with a callback and goes on to the next request. The
 * committer hands each committed batch to whoever started it (in casqd
 * the worker's completer thread, worker_reply.c, which sends the
 * replies) and starts on the next one. Waiting would cost every request
 * two context switches, which on a small machine cost more than the
 * commit's share. The store knows nothing of the committer: store_run
 * is always a transaction on the calling thread.
 *
 * A batch first runs all its operations straight in one transaction.
 * Operations refuse cleanly (a counter that is not one, a reused request
 * id) without leaving anything half-done, but a storage error (a full
 * map) leaves the transaction unusable: then the batch is run again with
 * each operation in a nested transaction of its own, so that only the
 * failing one fails. Nesting every time would cost a copy of each page
 * an operation touches, which is most of a write's work.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>

#include "store.h"

struct batch_req {
	store_apply_fn    fn;
	void             *op;
	int64_t           now;
	enum casq_err     err;
	committer_done_fn done;		/* called once its commit is durable */
	void             *done_arg;
	struct batch_req *next;
};

struct committer {
	struct store     *st;
	pthread_t         thread;
	pthread_mutex_t   mu;
	pthread_cond_t    work;		/* the committer waits for requests */
	struct batch_req *head, **tail;
	bool              waiting;	/* the committer sleeps on work */
	bool              stop;
	int               max_batch;
	uint64_t          batches, ops;
	committer_hand_fn hand;		/* where committed batches go */
	void             *hand_arg;
};

enum casq_err (*committer_apply_seam)(store_apply_fn fn, struct store *st,
    MDB_txn *txn, void *op);

/* Every application of an op by the committer goes through here. */
static enum casq_err
batch_apply(struct store *st, MDB_txn *txn, struct batch_req *r)
{
	if (committer_apply_seam != NULL)
		return committer_apply_seam(r->fn, st, txn, r->op);
	return r->fn(st, txn, r->op);
}

/* Apply one request in a child transaction of the batch. */
static void
batch_apply_one(struct store *st, MDB_txn *txn, struct batch_req *r)
{
	MDB_txn *child;
	int rc = mdb_txn_begin(st->env, txn, 0, &child);

	if (rc != 0) {
		r->err = store_map_error(rc, "begin nested transaction");
		return;
	}
	r->err = batch_apply(st, child, r);
	if (r->err == E_OK)
		r->err = store_map_error(mdb_txn_commit(child), "commit nested transaction");
	else
		mdb_txn_abort(child);
}

/* A storage error: the transaction it happened in cannot go on. */
static bool
err_breaks_txn(enum casq_err err)
{
	return err == E_STORAGE_FULL || err == E_INTERNAL || err == E_UNAVAILABLE;
}

/* Run the batch straight in txn; false (and txn aborted) when an
 * operation broke it. */
static bool
batch_run_direct(struct store *st, MDB_txn *txn, struct batch_req *batch)
{
	for (struct batch_req *r = batch; r; r = r->next)
		if (err_breaks_txn(r->err = batch_apply(st, txn, r))) {
			mdb_txn_abort(txn);
			return false;
		}
	return true;
}

/* Begin a transaction and sweep a few due entries in it. */
static enum casq_err
batch_begin(struct store *st, struct batch_req *batch, MDB_txn **txn)
{
	enum casq_err err = store_begin(st, true, txn);

	if (err == E_OK)
		store_sweep_nested(st, *txn, batch->now);
	return err;
}

static void
batch_commit(struct store *st, struct batch_req *batch)
{
	enum casq_err err;
	MDB_txn *txn;

	if ((err = batch_begin(st, batch, &txn)) == E_OK) {
		if (batch_run_direct(st, txn, batch)) {
			err = store_commit(txn);
		} else if (batch->next == NULL) {
			return;		/* alone in the batch: its error is its answer */
		} else if ((err = batch_begin(st, batch, &txn)) == E_OK) {
			log_debug("group commit: a storage error; batch rerun op by op");
			for (struct batch_req *r = batch; r; r = r->next)
				batch_apply_one(st, txn, r);
			err = store_commit(txn);
		}
	}
	/* The commit failed: nothing in it happened, so nothing succeeded. */
	if (err != E_OK)
		for (struct batch_req *r = batch; r; r = r->next)
			if (r->err == E_OK)
				r->err = err;
}

/* Detach up to max_batch requests from the queue (lock held). */
static struct batch_req *
batch_take(struct committer *c, int *n)
{
	struct batch_req *batch = c->head, *last = c->head;

	for (*n = 1; *n < c->max_batch && last->next; (*n)++)
		last = last->next;
	c->head = last->next;
	if (c->head == NULL)
		c->tail = &c->head;
	last->next = NULL;
	return batch;
}

void
commit_batch_finish(struct commit_batch *batch)
{
	struct batch_req *r, *next;

	for (r = batch->reqs; r; r = next) {
		next = r->next;
		r->done(r->done_arg, r->err);
		free(r);
	}
	free(batch);
}

/* A committed batch goes to whoever runs the callbacks. */
static void
batch_hand(struct committer *c, struct batch_req *reqs)
{
	struct commit_batch *batch = xmalloc(sizeof *batch);

	batch->next = NULL;
	batch->reqs = reqs;
	if (c->hand != NULL)
		c->hand(c->hand_arg, batch);
	else
		commit_batch_finish(batch);
}

/*
 * The committer thread.
 * Owns: the queue of submitted requests (under mu) and, while it commits
 *   one, the batch it took; the only write transaction of the process
 *   (so it alone touches the store's sweep counts and free-page cache).
 * Frees: nothing it hands on; a batch belongs to hand() once handed.
 * Blocks on: mu and the work condition while the queue is empty; LMDB's
 *   writer lock (shared with other workers) and the commit's fsyncs.
 * Exits: once stop is set and the queue is empty, so every request
 *   submitted before committer_stop is committed and handed on.
 */
static void *
committer_main(void *arg)
{
	struct committer *c = arg;
	struct batch_req *batch;
	uint64_t started;
	int n;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		c->waiting = true;
		while (c->head == NULL && !c->stop)
			pthread_cond_wait(&c->work, &c->mu);
		c->waiting = false;
		if (c->head == NULL)
			break;
		batch = batch_take(c, &n);
		c->batches++;
		c->ops += (uint64_t)n;
		metrics_committer_queued(-n);
		pthread_mutex_unlock(&c->mu);
		started = metrics_clock_ns();
		batch_commit(c->st, batch);
		metrics_commit(n, started);
		batch_hand(c, batch);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

struct committer *
committer_start(struct store *st, int max_batch, committer_hand_fn hand,
    void *hand_arg)
{
	struct committer *c = xcalloc(1, sizeof *c);

	c->st = st;
	c->tail = &c->head;
	c->max_batch = max_batch;
	c->hand = hand;
	c->hand_arg = hand_arg;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->work);
		free(c);
		return NULL;
	}
	return c;
}

void
committer_stop(struct committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	if (c->batches > 0)
		log_debug("group commit: %llu operation(s) in %llu commit(s)",
		    (unsigned long long)c->ops, (unsigned long long)c->batches);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->work);
	free(c);
}

void
committer_submit(struct committer *c, int64_t now, store_apply_fn fn, void *op,
    committer_done_fn done, void *done_arg)
{
	struct batch_req *r = xcalloc(1, sizeof *r);
	bool wake;

	*r = (struct batch_req){ .fn = fn, .op = op, .now = now,
	    .done = done, .done_arg = done_arg };
	pthread_mutex_lock(&c->mu);
	*c->tail = r;
	c->tail = &r->next;
	metrics_committer_queued(1);
	wake = c->waiting;	/* a busy committer looks at the queue anyway */
	pthread_mutex_unlock(&c->mu);
	if (wake)
		pthread_cond_signal(&c->work);
}

/* committer_run waits on this: the thread that runs callbacks posts it. */
struct waiter {
	sem_t         done;
	enum casq_err err;
};

static void
waiter_post(void *arg, enum casq_err err)
{
	struct waiter *w = arg;

	w->err = err;
	sem_post(&w->done);
}

enum casq_err
committer_run(struct committer *c, int64_t now, store_apply_fn fn, void *op)
{
	struct waiter w;

	sem_init(&w.done, 0, 0);
	committer_submit(c, now, fn, op, waiter_post, &w);
	while (sem_wait(&w.done) != 0)
		;	/* EINTR */
	sem_destroy(&w.done);
	return w.err;
}
