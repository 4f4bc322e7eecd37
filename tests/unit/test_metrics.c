/*
 * test_metrics.c - the counters of GET /metrics (metrics.c) and their
 * exposition (metrics_render.c): a table shared across fork whose slots
 * outlive the process counting into them, histogram buckets with
 * inclusive bounds, every status casqd answers counted apart, and the
 * queues' series of one tenant or all of them, capped, read from a real
 * LMDB in a read transaction, also while another thread holds the write
 * transaction. Also times a scrape of 10,000 queues.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "route.h"
#include "store_fixture.h"

/* The queues of the timed scrape: the figure. */
#define MANY_QUEUES	10000

static size_t
status_at(int status)
{
	size_t i = 0;

	while (metrics_statuses[i] != status && metrics_statuses[i] != 0)
		i++;
	return i;
}

/* In a child process attached to slot: n requests of route 3 answered
 * 200, one 404, one with a status casqd never sends; four operations
 * queued and a commit of three. */
static void
child_counts(struct metrics *m, int slot, int n)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		bail_out("fork");
	if (pid == 0) {
		metrics_attach(m, slot);
		for (int i = 0; i < n; i++)
			metrics_request(3, 200, metrics_clock_ns());
		metrics_request(3, 404, metrics_clock_ns());
		metrics_request(3, 299, metrics_clock_ns());
		metrics_committer_queued(4);
		metrics_commit(3, metrics_clock_ns());
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		bail_out("child did not exit");
}

/* A child whose attach is all it does: a worker replacing a dead one. */
static void
child_attaches(struct metrics *m, int slot)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		bail_out("fork");
	if (pid == 0) {
		metrics_attach(m, slot);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		bail_out("child did not exit");
}

static uint64_t
count(const struct metrics_hist *h)
{
	uint64_t n = 0;

	for (size_t i = 0; i <= METRICS_TIME_BUCKETS; i++)
		n += h->bucket[i];
	return n;
}

static void
test_shared_table(void)
{
	struct metrics *m = metrics_create(2);
	struct metrics_view v;

	diag("--- shared table");
	if (m == NULL)
		bail_out("metrics_create");
	metrics_read(&v);
	is_int((long long)v.workers, 0, "shared table: a process attached to no slot reads zeros");
	child_counts(m, 1, 5);
	metrics_attach(m, 0);		/* this process is worker 0 */
	metrics_request(3, 200, metrics_clock_ns());
	metrics_request(3, 200, metrics_clock_ns());
	metrics_worker_restart(m);
	metrics_read(&v);
	is_int((long long)v.workers, 2, "shared table: two workers");
	is_int((long long)v.requests[3][status_at(200)], 7,
	    "shared table: 200s of a dead child and of this process summed");
	is_int((long long)v.requests[3][status_at(404)], 1, "shared table: the 404 apart");
	is_int((long long)v.requests[3][status_at(0)], 1,
	    "shared table: a status casqd never sends counted as other");
	is_int((long long)count(&v.duration[3]), 9, "shared table: every request in the duration histogram");
	is_int((long long)v.committer_queued, 4, "shared table: the child's queued operations");
	is_int((long long)v.commit_ops.sum, 3, "shared table: the commit's operations");
	is_int((long long)v.worker_restarts, 1, "shared table: the master's restart count");

	child_attaches(m, 1);		/* slot 1's worker replaced */
	metrics_read(&v);
	is_int((long long)v.requests[3][status_at(200)], 7,
	    "shared table: a replacement keeps its slot's counts");
	is_int((long long)v.committer_queued, 0,
	    "shared table: ... but not the queue the dead worker held");
	child_counts(m, 1, 1);
	metrics_read(&v);
	is_int((long long)v.requests[3][status_at(200)], 8,
	    "shared table: and counts on from there");
}

/* A batch of n operations lands in the first bucket whose bound is at
 * least n: bounds are inclusive, as Prometheus's "le". */
static void
test_buckets(void)
{
	static const struct { int ops; size_t bucket; } cases[] = {
		{ 1, 0 }, { 2, 1 }, { 3, 2 }, { 4, 2 }, { 5, 3 }, { 255, 8 },
		{ 256, 8 }, { 257, 9 },
	};
	struct metrics_view before, after;

	diag("--- buckets");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		metrics_read(&before);
		metrics_commit(cases[i].ops, metrics_clock_ns());
		metrics_read(&after);
		is_int((long long)(after.commit_ops.bucket[cases[i].bucket] -
		    before.commit_ops.bucket[cases[i].bucket]), 1,
		    "buckets: a batch of %d in bucket %zu", cases[i].ops, cases[i].bucket);
	}
}

static void
test_statuses(void)
{
	int missing = 0;

	diag("--- statuses");
	for (int e = 0; e < E__COUNT; e++)
		if (metrics_statuses[status_at(err_status(e))] == 0) {
			diag("status %d (%s) is not in metrics_statuses", err_status(e), err_code(e));
			missing++;
		}
	is_int(missing, 0, "statuses: every status of the error table is counted apart");
}

static void
enqueue_in(MDB_txn *txn, const char *queue, const char *key)
{
	struct queue_op op = { .kind = QOP_ENQUEUE, .now = T0, .queue = queue,
	    .key = key, .claimant = "" };

	if (queue_apply(st, txn, &op) != E_OK || !op.res.ok)
		bail_out("enqueue %s %s", queue, key);
	queue_result_free(&op.res);
}

/* queues "<tenant>:<prefix><i>" for i < n, one item each, in one commit */
static void
make_queues(const char *tenant, const char *prefix, int n)
{
	char name[QUEUE_NAME_MAX + 1];
	MDB_txn *txn;

	if (store_begin(st, true, &txn) != E_OK)
		bail_out("begin");
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "%s:%s%05d", tenant, prefix, i);
		enqueue_in(txn, name, "k");
	}
	if (store_commit(txn) != E_OK)
		bail_out("commit");
}

static char *
scrape(const char *tenant, struct buf *out)
{
	struct metrics_scrape sc = { .tenant = tenant, .out = out };

	if (store_run(st, false, T0, metrics_render, &sc) != E_OK)
		bail_out("metrics_render");
	buf_append(out, "", 1);
	out->len--;
	return out->data;
}

static int
occurrences(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
		n++;
	return n;
}

static void
test_render_tenants(void)
{
	struct buf b = { 0 };
	char *t;

	section("render", MAP_DEFAULT);
	make_queues("acme", "a", 2);
	make_queues("beta", "b", 1);
	t = scrape("acme", &b);
	ok(strstr(t, "\ncasq_queue_items{tenant=\"acme\",queue=\"a00001\",state=\"ready\"} 1\n") != NULL,
	    "render: a tenant's queue has its series");
	ok(strstr(t, "beta") == NULL, "render: no other tenant's name");
	ok(strstr(t, "\ncasq_queues 2\n") != NULL, "render: a tenant's queues counted");
	ok(strstr(t, "\ncasq_lmdb_readers 1\n") != NULL,
	    "render: the scrape's own read transaction is the one reader");
	t = scrape(NULL, &b);
	ok(strstr(t, "\ncasq_queue_enqueued_total{tenant=\"beta\",queue=\"b00000\"} 1\n") != NULL &&
	    strstr(t, "\ncasq_queue_enqueued_total{tenant=\"acme\",queue=\"a00000\"} 1\n") != NULL,
	    "render: every tenant, with its label");
	ok(strstr(t, "\ncasq_queues 3\n") != NULL && strstr(t, "\ncasq_queues_omitted 0\n") != NULL,
	    "render: every queue, none omitted");
	is_int(occurrences(t, "# TYPE "), occurrences(t, "# HELP "), "render: a TYPE for every HELP");
	buf_free(&b);
}

/* A scrape on another thread, posting done when it returns. */
struct bg_scrape {
	sem_t         done;
	enum casq_err err;
	struct buf    out;
};

static void *
bg_scrape(void *arg)
{
	struct bg_scrape *bg = arg;
	struct metrics_scrape sc = { .tenant = NULL, .out = &bg->out };

	bg->err = store_run(st, false, T0, metrics_render, &sc);
	buf_append(&bg->out, "", 1);
	sem_post(&bg->done);
	return NULL;
}

/* While this thread holds the writer lock (a committer in the middle of
 * a commit), a scrape must finish and see the last commit: it takes no
 * lock a write holds. A scrape that did would never return; the 60 s
 * bound only turns that hang into a failure. */
static void
test_no_writer_lock(void)
{
	struct bg_scrape bg = { .out = { 0 } };
	struct timespec deadline;
	pthread_t t;
	MDB_txn *w;
	int rc;

	section("writer_lock", MAP_DEFAULT);
	make_queues("acme", "c", 1);
	if (store_begin(st, true, &w) != E_OK)
		bail_out("begin");
	enqueue_in(w, "acme:uncommitted", "k");
	sem_init(&bg.done, 0, 0);
	if (pthread_create(&t, NULL, bg_scrape, &bg) != 0)
		bail_out("pthread_create");
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 60;
	while ((rc = sem_timedwait(&bg.done, &deadline)) != 0 && errno == EINTR)
		;
	ok(rc == 0 && bg.err == E_OK,
	    "writer lock: a scrape finishes while a write transaction is open");
	mdb_txn_abort(w);
	pthread_join(t, NULL);
	ok(rc == 0 && strstr(bg.out.data, "queue=\"c00000\"") != NULL &&
	    strstr(bg.out.data, "uncommitted") == NULL,
	    "writer lock: ... and shows what was committed, not the open write");
	sem_destroy(&bg.done);
	buf_free(&bg.out);
}

static void
test_render_many(void)
{
	struct buf b = { 0 };
	struct timespec t0, t1;
	char *t;
	double ms;

	section("render_many", 256UL << 20);
	make_queues("acme", "q", MANY_QUEUES);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	t = scrape(NULL, &b);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	diag("a scrape of %d queues (1000 with series): %.1f ms, %zu bytes", MANY_QUEUES, ms, b.len);
	ok(strstr(t, "\ncasq_queues 10000\n") != NULL, "cap: every queue counted");
	ok(strstr(t, "\ncasq_queues_omitted 9000\n") != NULL, "cap: 9000 without series");
	is_int(occurrences(t, "\ncasq_queue_expired_total{"), 1000, "cap: 1000 queues with series");
	ok(strstr(t, "queue=\"q00000\"") != NULL && strstr(t, "queue=\"q00999\"") != NULL &&
	    strstr(t, "queue=\"q01000\"") == NULL, "cap: the first 1000 by name");
	buf_free(&b);
}

int
main(void)
{
	fixture_start();
	test_shared_table();
	test_buckets();
	test_statuses();
	test_render_tenants();
	test_no_writer_lock();
	test_render_many();
	fixture_end();
	return done_testing();
}
