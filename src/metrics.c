/*
 * metrics.c - the counters behind GET /metrics, shared by every worker
 * process. As ratelimit.c's table, the master maps it (MAP_SHARED) before
 * it forks any worker, so every worker, and every replacement of one,
 * sees the same memory. Each worker counts into the slot of its worker
 * number: a replacement goes on counting where the dead one stopped, and
 * nothing counted is lost with a worker. Only the whole casqd's restart
 * starts the counts at zero again (Prometheus takes a counter that goes
 * down for a reset).
 *
 * Who writes what: a worker's serving threads and completer count the
 * requests they answer (worker.c's exchange_reply), its committer its
 * commits and its queue (store_batch.c), the master the workers it had to
 * replace (pool.c's reap). A scrape on any worker reads and sums every
 * slot (metrics_read). All of it is relaxed atomic adds and loads on
 * 64-bit cells: no lock is taken and no system call made on the request
 * path, and the slots are cache-line aligned, so two workers never write
 * the same line.
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common.h"

/* Every status casqd itself answers (http_response.c's table, and 200;
 * test_request.c checks that none is missing). The cell of the 0 that
 * ends the list counts any other. */
const int metrics_statuses[METRICS_STATUSES] = {
	200, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503, 507, 0,
};

/* From the 100 us of a read answered from the page cache to 10 s, the
 * default --peer-timeout (a request is timed from its last byte to its
 * answer, so a slow peer no longer counts; 10 s is room); a durable
 * write waits for its group's two fsyncs, a few milliseconds on an SSD. */
const uint64_t metrics_time_bounds_ns[METRICS_TIME_BUCKETS] = {
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
	25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
	2500000000, 5000000000, 10000000000,
};

/* Operations per group commit, up to worker.c's COMMIT_BATCH_MAX (256). */
const uint64_t metrics_ops_bounds[METRICS_OPS_BUCKETS] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256,
};

typedef _Atomic uint_least64_t cell;

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
    "the cells must be lock-free to be shared between processes");

struct hist_cells {
	cell bucket[METRICS_TIME_BUCKETS + 1];	/* the last: +Inf */
	cell sum;
};

/* One worker's counts; aligned so that no two workers share a line. */
struct worker_cells {
	_Alignas(64) cell requests[METRICS_ROUTES][METRICS_STATUSES];
	struct hist_cells duration[METRICS_ROUTES];
	struct hist_cells commit_time, commit_ops;
	_Atomic int_least64_t committer_queued;
};

struct metrics {
	_Alignas(64) cell worker_restarts;	/* the master's */
	int               workers;
	struct worker_cells w[];
};

/* This process's table and slot: set once, before its threads start. */
static struct metrics      *table;
static struct worker_cells *self;

struct metrics *
metrics_create(int workers)
{
	size_t size = sizeof(struct metrics) + (size_t)workers * sizeof(struct worker_cells);
	struct metrics *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	m->workers = workers;	/* the rest is zeroed */
	return m;
}

void
metrics_attach(struct metrics *m, int worker)
{
	if (m == NULL || worker < 0 || worker >= m->workers)
		return;
	table = m;
	self = &m->w[worker];
	/* The slot's last worker is dead (the master forks a slot's worker
	 * only after reaping the one before): what it had queued is gone. */
	atomic_store_explicit(&self->committer_queued, 0, memory_order_relaxed);
}

uint64_t
metrics_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
add(cell *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Count v in the first bucket whose bound is at least v. */
static void
hist_add(struct hist_cells *h, const uint64_t *bounds, size_t nbounds, uint64_t v)
{
	size_t i = 0;

	while (i < nbounds && v > bounds[i])
		i++;
	add(&h->bucket[i], 1);
	add(&h->sum, v);
}

static size_t
status_index(int status)
{
	size_t i = 0;

	while (metrics_statuses[i] != status && metrics_statuses[i] != 0)
		i++;
	return i;
}

void
metrics_request(unsigned route, int status, uint64_t started_ns)
{
	struct worker_cells *w = self;

	if (w == NULL)
		return;
	if (route >= METRICS_ROUTES)
		route = 0;	/* route.c asserts it cannot be */
	add(&w->requests[route][status_index(status)], 1);
	hist_add(&w->duration[route], metrics_time_bounds_ns, METRICS_TIME_BUCKETS,
	    metrics_clock_ns() - started_ns);
}

void
metrics_committer_queued(int64_t delta)
{
	if (self != NULL)
		atomic_fetch_add_explicit(&self->committer_queued, delta,
		    memory_order_relaxed);
}

void
metrics_commit(int ops, uint64_t started_ns)
{
	struct worker_cells *w = self;

	if (w == NULL)
		return;
	hist_add(&w->commit_ops, metrics_ops_bounds, METRICS_OPS_BUCKETS, (uint64_t)ops);
	hist_add(&w->commit_time, metrics_time_bounds_ns, METRICS_TIME_BUCKETS,
	    metrics_clock_ns() - started_ns);
}

void
metrics_worker_restart(struct metrics *m)
{
	if (m != NULL)
		add(&m->worker_restarts, 1);
}

/* --- reading: a scrape sums the slots --- */

static uint64_t
load(cell *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void
hist_read(struct metrics_hist *out, struct hist_cells *h)
{
	for (size_t i = 0; i <= METRICS_TIME_BUCKETS; i++)
		out->bucket[i] += load(&h->bucket[i]);
	out->sum += load(&h->sum);
}

void
metrics_read(struct metrics_view *v)
{
	memset(v, 0, sizeof *v);
	if (table == NULL)
		return;
	v->workers = table->workers;
	v->worker_restarts = load(&table->worker_restarts);
	for (int i = 0; i < table->workers; i++) {
		struct worker_cells *w = &table->w[i];

		v->committer_queued += atomic_load_explicit(&w->committer_queued,
		    memory_order_relaxed);
		for (size_t r = 0; r < METRICS_ROUTES; r++) {
			for (size_t s = 0; s < METRICS_STATUSES; s++)
				v->requests[r][s] += load(&w->requests[r][s]);
			hist_read(&v->duration[r], &w->duration[r]);
		}
		hist_read(&v->commit_time, &w->commit_time);
		hist_read(&v->commit_ops, &w->commit_ops);
	}
}
