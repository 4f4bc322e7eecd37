/*
 * store_batch.c - group commit. A durable LMDB commit costs two flushes
 * whether it carries one operation or a hundred, so a worker process runs
 * one committer thread: request threads queue their write operations,
 * and while one commit is being flushed the next batch gathers. Every
 * reply waits until the commit that carries its operation is durable.
 *
 * A request thread does not wait for its commit: it hands over the
 * operation with a callback and goes on to the next request. A second
 * thread, the completer, runs the callbacks of each committed batch (the
 * replies) while the committer already works on the next one. Waiting
 * would cost every request two context switches, which on a small
 * machine cost more than the commit's share.
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
	/* Committed batches whose callbacks have yet to run. */
	pthread_t         completer;
	pthread_cond_t    committed;
	struct batch_req *done_head, **done_tail;
	bool              completer_waiting, completer_stop;
};

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
	r->err = r->fn(st, child, r->op);
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
		if (err_breaks_txn(r->err = r->fn(st, txn, r->op))) {
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

/* Queue a committed batch for the completer (lock held). */
static void
batch_committed(struct committer *c, struct batch_req *batch)
{
	*c->done_tail = batch;
	while (batch->next)
		batch = batch->next;
	c->done_tail = &batch->next;
	if (c->completer_waiting)
		pthread_cond_signal(&c->committed);
}

static void *
committer_main(void *arg)
{
	struct committer *c = arg;
	struct batch_req *batch;
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
		pthread_mutex_unlock(&c->mu);
		batch_commit(c->st, batch);
		pthread_mutex_lock(&c->mu);
		batch_committed(c, batch);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Run the callbacks of committed batches, in commit order. */
static void *
completer_main(void *arg)
{
	struct committer *c = arg;
	struct batch_req *r, *next;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		c->completer_waiting = true;
		while (c->done_head == NULL && !c->completer_stop)
			pthread_cond_wait(&c->committed, &c->mu);
		c->completer_waiting = false;
		if ((r = c->done_head) == NULL)
			break;
		c->done_head = NULL;
		c->done_tail = &c->done_head;
		pthread_mutex_unlock(&c->mu);
		for (; r; r = next) {
			next = r->next;
			r->done(r->done_arg, r->err);
			free(r);
		}
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int
committer_start(struct store *st, int max_batch)
{
	struct committer *c = xcalloc(1, sizeof *c);

	c->st = st;
	c->tail = &c->head;
	c->done_tail = &c->done_head;
	c->max_batch = max_batch;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->committed, NULL);
	if (pthread_create(&c->completer, NULL, completer_main, c) != 0) {
		free(c);
		return -1;
	}
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
		pthread_mutex_lock(&c->mu);
		c->completer_stop = true;
		pthread_cond_signal(&c->committed);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->completer, NULL);
		free(c);
		return -1;
	}
	st->committer = c;
	return 0;
}

/* Commit what is queued, run every callback, then stop both threads. */
void
committer_stop(struct store *st)
{
	struct committer *c = st->committer;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_mutex_lock(&c->mu);
	c->completer_stop = true;
	pthread_cond_signal(&c->committed);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->completer, NULL);
	if (c->batches > 0)
		log_debug("group commit: %llu operation(s) in %llu commit(s)",
		    (unsigned long long)c->ops, (unsigned long long)c->batches);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->committed);
	free(c);
	st->committer = NULL;
}

void
committer_submit(struct store *st, int64_t now, store_apply_fn fn, void *op,
    committer_done_fn done, void *done_arg)
{
	struct committer *c = st->committer;
	struct batch_req *r = xcalloc(1, sizeof *r);
	bool wake;

	*r = (struct batch_req){ .fn = fn, .op = op, .now = now,
	    .done = done, .done_arg = done_arg };
	pthread_mutex_lock(&c->mu);
	*c->tail = r;
	c->tail = &r->next;
	wake = c->waiting;	/* a busy committer looks at the queue anyway */
	pthread_mutex_unlock(&c->mu);
	if (wake)
		pthread_cond_signal(&c->work);
}

/* committer_run waits on this: the completer posts it. */
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
committer_run(struct store *st, int64_t now, store_apply_fn fn, void *op)
{
	struct waiter w;

	sem_init(&w.done, 0, 0);
	committer_submit(st, now, fn, op, waiter_post, &w);
	while (sem_wait(&w.done) != 0)
		;	/* EINTR */
	sem_destroy(&w.done);
	return w.err;
}
