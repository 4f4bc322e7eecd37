/*
 * store_batch.c - group commit. A durable LMDB commit costs two flushes
 * whether it carries one operation or a hundred, so a worker process runs
 * one committer thread: request threads queue their write operations,
 * and while one commit is being flushed the next batch gathers. Every
 * reply waits until the commit that carries its operation is durable.
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
	sem_t             done;		/* posted once its commit is durable */
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
		/* Wake each request without the queue's lock, so that the
		 * woken threads do not pile up on it. r->next is read before
		 * the post: once posted, the request thread may return and r
		 * (on its stack) is gone. */
		for (struct batch_req *r = batch, *next; r; r = next) {
			next = r->next;
			sem_post(&r->done);
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
	c->max_batch = max_batch;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
		free(c);
		return -1;
	}
	st->committer = c;
	return 0;
}

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
	if (c->batches > 0)
		log_debug("group commit: %llu operation(s) in %llu commit(s)",
		    (unsigned long long)c->ops, (unsigned long long)c->batches);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->work);
	free(c);
	st->committer = NULL;
}

enum casq_err
committer_run(struct store *st, int64_t now, store_apply_fn fn, void *op)
{
	struct committer *c = st->committer;
	struct batch_req r = { .fn = fn, .op = op, .now = now };
	bool wake;

	sem_init(&r.done, 0, 0);
	pthread_mutex_lock(&c->mu);
	*c->tail = &r;
	c->tail = &r.next;
	wake = c->waiting;	/* a busy committer looks at the queue anyway */
	pthread_mutex_unlock(&c->mu);
	if (wake)
		pthread_cond_signal(&c->work);
	while (sem_wait(&r.done) != 0)
		;	/* EINTR */
	sem_destroy(&r.done);
	return r.err;
}
