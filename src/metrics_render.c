/*
 * metrics_render.c - the text of GET /metrics: Prometheus's text
 * exposition format 0.0.4, every family with its HELP and TYPE lines and
 * its samples together. Three sources, all read without waiting for
 * anything: the workers' shared counters (metrics.c), the LMDB
 * environment, and the queues' stats records (one per queue, O(1) each)
 * in the caller's read transaction, a read like /v1/queues: it never
 * waits for the committer.
 *
 * Names follow Prometheus's conventions: the casq_ prefix, base units
 * (seconds, bytes) in the name, _total on counters. Label values need no
 * escaping: route patterns, tenant and queue names are all of
 * A-Z a-z 0-9 . _ - / * (route.c and name_valid check them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

/* Queues with series of their own, at most: the first ones by name (by
 * "tenant:queue" when every tenant is shown). Eight series each, so a
 * scrape stays under ten thousand series however many queues there are;
 * casq_queues_omitted says how many were left out. */
#define METRICS_QUEUES_MAX	1000
#define STR(x)	STR_(x)
#define STR_(x)	#x

static void
family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A duration in ns as decimal seconds, exactly: "0.00025", "2.5", "10". */
static void
seconds(struct buf *b, uint64_t ns)
{
	char frac[16];
	int n = snprintf(frac, sizeof frac, "%09llu", (unsigned long long)(ns % 1000000000u));

	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	buf_printf(b, "%llu%s%s", (unsigned long long)(ns / 1000000000u), n ? "." : "", frac);
}

/* The lines of one histogram: cumulative buckets, sum and count. label
 * is "" or one 'route="..."'. */
static void
histogram(struct buf *b, const char *name, const char *label,
    const struct metrics_hist *h, const uint64_t *bounds, size_t nbounds,
    bool in_seconds)
{
	const char *comma = *label ? "," : "";
	uint64_t count = 0;

	for (size_t i = 0; i <= nbounds; i++) {
		count += h->bucket[i];
		buf_printf(b, "%s_bucket{%s%sle=\"", name, label, comma);
		if (i == nbounds)
			buf_puts(b, "+Inf");
		else if (in_seconds)
			seconds(b, bounds[i]);
		else
			buf_printf(b, "%llu", (unsigned long long)bounds[i]);
		buf_printf(b, "\"} %llu\n", (unsigned long long)count);
	}
	buf_printf(b, *label ? "%s_sum{%s} " : "%s_sum%s ", name, label);
	if (in_seconds)
		seconds(b, h->sum);
	else
		buf_printf(b, "%llu", (unsigned long long)h->sum);
	buf_printf(b, *label ? "\n%s_count{%s} %llu\n" : "\n%s_count%s %llu\n", name, label,
	    (unsigned long long)count);
}

static uint64_t
hist_count(const struct metrics_hist *h)
{
	uint64_t n = 0;

	for (size_t i = 0; i <= METRICS_TIME_BUCKETS; i++)
		n += h->bucket[i];
	return n;
}

/* Routes by route.c's number; 0 is a path that is no route (404). */
static const char *
route_label(unsigned r)
{
	return r == 0 ? "none" : route_pattern(r);
}

/* Requests by route and status, durations by route: only the routes and
 * statuses that were answered (a route's first request adds its series). */
static void
render_requests(struct buf *b, const struct metrics_view *v)
{
	char label[160];

	family(b, "casq_requests_total", "counter",
	    "Requests answered, by route (its pattern; none: no such route) and HTTP status.");
	for (unsigned r = 0; r <= route_count(); r++)
		for (size_t s = 0; s < METRICS_STATUSES; s++) {
			if (v->requests[r][s] == 0)
				continue;
			buf_printf(b, "casq_requests_total{route=\"%s\",code=\"", route_label(r));
			if (metrics_statuses[s] != 0)
				buf_printf(b, "%d", metrics_statuses[s]);
			else
				buf_puts(b, "other");
			buf_printf(b, "\"} %llu\n", (unsigned long long)v->requests[r][s]);
		}
	family(b, "casq_request_duration_seconds", "histogram",
	    "Time from reading a request to writing its answer (a write's includes its commit), by route.");
	for (unsigned r = 0; r <= route_count(); r++) {
		if (hist_count(&v->duration[r]) == 0)
			continue;
		snprintf(label, sizeof label, "route=\"%s\"", route_label(r));
		histogram(b, "casq_request_duration_seconds", label, &v->duration[r],
		    metrics_time_bounds_ns, METRICS_TIME_BUCKETS, true);
	}
}

static void
gauge(struct buf *b, const char *name, const char *help, unsigned long long v)
{
	family(b, name, "gauge", help);
	buf_printf(b, "%s %llu\n", name, v);
}

static void
render_process(struct buf *b, const struct metrics_view *v)
{
	family(b, "casq_commit_batch_operations", "histogram",
	    "Operations applied in one group commit (one write transaction).");
	histogram(b, "casq_commit_batch_operations", "", &v->commit_ops,
	    metrics_ops_bounds, METRICS_OPS_BUCKETS, false);
	family(b, "casq_commit_duration_seconds", "histogram",
	    "Time of one group commit: begin, apply its operations, commit and sync.");
	histogram(b, "casq_commit_duration_seconds", "", &v->commit_time,
	    metrics_time_bounds_ns, METRICS_TIME_BUCKETS, true);
	gauge(b, "casq_committer_queued_operations",
	    "Write operations waiting for a committer, all workers together.",
	    v->committer_queued > 0 ? (unsigned long long)v->committer_queued : 0);
	gauge(b, "casq_workers", "Worker processes casqd runs (--workers).",
	    (unsigned long long)v->workers);
	family(b, "casq_worker_restarts_total", "counter",
	    "Workers that died or exited unasked, each started again by the master.");
	buf_printf(b, "casq_worker_restarts_total %llu\n",
	    (unsigned long long)v->worker_restarts);
}

static void
render_env(struct buf *b, const struct store_env_usage *u)
{
	gauge(b, "casq_lmdb_map_size_bytes", "Size of the LMDB map: the database's limit.",
	    (unsigned long long)u->map_size);
	gauge(b, "casq_lmdb_map_used_bytes",
	    "Bytes of the map the data file has used (its high-water mark).",
	    (unsigned long long)(u->pages_used * u->page_size));
	gauge(b, "casq_lmdb_map_free_bytes",
	    "Of the used bytes, those on LMDB's free list, to be reused before the file grows.",
	    (unsigned long long)(u->pages_free * u->page_size));
	gauge(b, "casq_lmdb_readers",
	    "LMDB reader slots in use: read transactions open now, in any process.",
	    u->readers);
	gauge(b, "casq_lmdb_readers_max", "LMDB reader slots there are.", u->max_readers);
}

/* The queues a scrape shows, collected in one pass of the stats records
 * (a family's samples must come together, so each family is written
 * from this list in turn). */
struct queue_row {
	char               tenant[TENANT_NAME_MAX + 1];
	char               queue[PATH_NAME_MAX + 1];
	struct queue_stats s;
};

struct queue_rows {
	const char       *tenant;	/* of every row; NULL: in each name */
	struct queue_row *row;		/* n of them, room for cap */
	size_t            n, cap, total;
};

static void
queue_collect(void *ctx, const char *name, size_t len, const struct queue_stats *s)
{
	struct queue_rows *q = ctx;
	struct queue_row *r;
	const char *colon;
	size_t tlen;

	if (q->total++ >= METRICS_QUEUES_MAX)
		return;		/* counted, not shown */
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->row = xrealloc(q->row, q->cap * sizeof *q->row);
	}
	r = &q->row[q->n];
	if (q->tenant != NULL) {
		snprintf(r->tenant, sizeof r->tenant, "%s", q->tenant);
	} else {		/* "tenant:queue" */
		colon = memchr(name, ':', len);
		tlen = colon ? (size_t)(colon - name) : 0;
		snprintf(r->tenant, sizeof r->tenant, "%.*s", (int)tlen, name);
		if (colon) {
			len -= tlen + 1;
			name = colon + 1;
		}
	}
	snprintf(r->queue, sizeof r->queue, "%.*s", (int)len, name);
	r->s = *s;
	q->n++;
}

/* The per-queue families; offset is that of the field in queue_stats. */
static const struct {
	const char *name, *help;
	size_t      offset;
} queue_counters[] = {
	{ "casq_queue_enqueued_total", "Successful enqueues since the queue was created.",
	  offsetof(struct queue_stats, enqueued) },
	{ "casq_queue_claimed_total", "Winning claims and pops, with or without a lease.",
	  offsetof(struct queue_stats, claimed) },
	{ "casq_queue_acked_total", "Successful acks.", offsetof(struct queue_stats, acked) },
	{ "casq_queue_released_total", "Successful releases.",
	  offsetof(struct queue_stats, released) },
	{ "casq_queue_removed_total", "Successful removes.",
	  offsetof(struct queue_stats, removed) },
	{ "casq_queue_expired_total", "Leases that ran out.",
	  offsetof(struct queue_stats, expired) },
};

static void
render_queues(struct buf *b, const struct queue_rows *q)
{
	gauge(b, "casq_queues", "Queues of the tenants this scrape shows.",
	    (unsigned long long)q->total);
	gauge(b, "casq_queues_omitted",
	    "Of those, queues without series of their own: only the first "
	    STR(METRICS_QUEUES_MAX) " by name have them.",
	    (unsigned long long)(q->total - q->n));
	family(b, "casq_queue_items", "gauge",
	    "Items in the queue by state: ready (delayed ones included), leased or dead.");
	for (size_t i = 0; i < q->n; i++) {
		const struct queue_row *r = &q->row[i];

		buf_printf(b, "casq_queue_items{tenant=\"%s\",queue=\"%s\",state=\"ready\"} %llu\n",
		    r->tenant, r->queue, (unsigned long long)r->s.ready);
		buf_printf(b, "casq_queue_items{tenant=\"%s\",queue=\"%s\",state=\"leased\"} %llu\n",
		    r->tenant, r->queue, (unsigned long long)r->s.leased);
		buf_printf(b, "casq_queue_items{tenant=\"%s\",queue=\"%s\",state=\"dead\"} %llu\n",
		    r->tenant, r->queue, (unsigned long long)r->s.dead);
	}
	for (size_t c = 0; c < sizeof queue_counters / sizeof queue_counters[0]; c++) {
		family(b, queue_counters[c].name, "counter", queue_counters[c].help);
		for (size_t i = 0; i < q->n; i++) {
			const struct queue_row *r = &q->row[i];
			uint64_t v;

			memcpy(&v, (const char *)&r->s + queue_counters[c].offset, sizeof v);
			buf_printf(b, "%s{tenant=\"%s\",queue=\"%s\"} %llu\n",
			    queue_counters[c].name, r->tenant, r->queue, (unsigned long long)v);
		}
	}
}

enum casq_err
metrics_render(struct store *st, MDB_txn *txn, void *arg)
{
	struct metrics_scrape *sc = arg;
	struct metrics_view *v = xmalloc(sizeof *v);
	struct queue_rows q = { .tenant = sc->tenant };
	struct store_env_usage u;
	char prefix[TENANT_NAME_MAX + 2] = "";
	enum casq_err err;

	sc->out->len = 0;
	if (sc->tenant != NULL)
		snprintf(prefix, sizeof prefix, "%s:", sc->tenant);
	if ((err = store_env_usage(st, txn, &u)) != E_OK ||
	    (err = queue_list(st, txn, prefix, NULL, SIZE_MAX, queue_collect, &q)) != E_OK)
		goto out;
	metrics_read(v);
	render_requests(sc->out, v);
	render_process(sc->out, v);
	render_env(sc->out, &u);
	render_queues(sc->out, &q);
out:
	free(q.row);
	free(v);
	return err;
}
