/*
 * common.h - what every layer of casq shares: logging, allocation that
 * never returns NULL, the clock, and the one error enum that the HTTP layer
 * maps to status lines (http_response.c holds that table).
 */
#ifndef CASQ_COMMON_H
#define CASQ_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* --- logging (log.c) --- */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
extern enum log_level log_threshold;
int  log_parse_level(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
/* Impossible states: log with file:line and abort. */
#define fatal(...) fatal_at(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void fatal_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* --- allocation (util.c): abort on exhaustion, never NULL --- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);

/* --- growable byte buffer (util.c) --- */
struct buf {
	char  *data;
	size_t len, cap;
};
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);

/* --- clock and times (util.c) --- */
/* Milliseconds since the epoch; test builds may add an offset read from
 * CASQ_TEST_CLOCK_FILE so expiry tests never sleep. */
int64_t clock_now_ms(void);
/* "2026-11-26T21:58:01Z" into out (at least 21 bytes). */
void iso8601(int64_t ms, char out[static 32]);
/* The same with milliseconds: "2026-11-26T21:58:01.123Z". */
void iso8601_ms(int64_t ms, char out[static 32]);

/* --- text checks (util.c) --- */
bool utf8_valid(const char *s, size_t n);
/* 1 to max bytes of A-Z a-z 0-9 . _ - : queue, namespace, scope and key
 * names, safe in URLs, logs and "name/..." storage keys. */
bool name_valid(const char *s, size_t n, size_t max);
/* A tenant name: name_valid(), at most this long. */
#define TENANT_NAME_MAX	64
/* The tenant of keys without tenant=, and of data from before tenants. */
#define DEFAULT_TENANT	"default"
/* Parse "12", "1.5", "0.001" seconds into ms; false on junk or overflow. */
bool parse_seconds_ms(const char *s, int64_t *ms);
void hex_encode(const unsigned char *in, size_t n, char *out);
void sha256(const void *data, size_t n, unsigned char out[32]);
/* Fill out with n random bytes from the OS CSPRNG (libcrypto). */
void random_bytes(unsigned char *out, size_t n);

/* --- metrics (metrics.c): counters shared by every worker process --- */
/* The master maps one table before its first fork; each worker counts
 * into its own slot of it (its worker number), which outlives the
 * worker, so counts survive a worker's replacement; any worker reads
 * the sum of all slots for GET /metrics. Counting is relaxed atomic adds
 * in shared memory: no lock, no system call. */
#define METRICS_ROUTES		40	/* route.c's rows + 1 ("none"); route.c checks */
#define METRICS_STATUSES	16	/* the statuses casqd answers, and "other" */
#define METRICS_TIME_BUCKETS	16	/* histogram bounds of a duration */
#define METRICS_OPS_BUCKETS	9	/* histogram bounds of a batch's size */
/* The statuses counted apart, in the table's order; 0 ends the list,
 * and its cell counts any other. */
extern const int      metrics_statuses[METRICS_STATUSES];
/* Upper bounds (inclusive, Prometheus's "le") of the histograms' buckets;
 * a last bucket, +Inf, takes the rest. */
extern const uint64_t metrics_time_bounds_ns[METRICS_TIME_BUCKETS];
extern const uint64_t metrics_ops_bounds[METRICS_OPS_BUCKETS];

struct metrics;
/* The table for workers worker processes (MAP_SHARED, zeroed); NULL on
 * failure. */
struct metrics *metrics_create(int workers);
/* In a worker process, right after the fork and before any thread:
 * count into slot worker from now on. Without it (the master, tests,
 * tools) counting does nothing and a read sees zeros. */
void     metrics_attach(struct metrics *m, int worker);
/* CLOCK_MONOTONIC in ns (the vDSO: no system call). */
uint64_t metrics_clock_ns(void);
/* A request answered: route is req->route, started_ns its
 * metrics_clock_ns() when it was read. */
void     metrics_request(unsigned route, int status, uint64_t started_ns);
/* Operations queued for the committer: +1 on submit, -n when a batch of
 * n is taken (both under the committer's lock, so the sum never dips). */
void     metrics_committer_queued(int64_t delta);
/* A group commit of ops operations, begun at started_ns, is done. */
void     metrics_commit(int ops, uint64_t started_ns);
/* The master: a worker died without being asked to stop (it is started
 * again, at once or after a back-off). */
void     metrics_worker_restart(struct metrics *m);

/* A histogram summed over the workers: bucket[i] counts the values up to
 * bound i (not cumulative), bucket[nbounds] the larger ones. */
struct metrics_hist {
	uint64_t bucket[METRICS_TIME_BUCKETS + 1];
	uint64_t sum;		/* ns for durations, operations for batches */
};
struct metrics_view {
	int      workers;
	uint64_t worker_restarts;
	int64_t  committer_queued;
	uint64_t requests[METRICS_ROUTES][METRICS_STATUSES];
	struct metrics_hist duration[METRICS_ROUTES];
	struct metrics_hist commit_time, commit_ops;
};
/* Every slot of the table this worker counts into, summed (zeros when it
 * counts into none). Each cell is read once, atomically; a request being
 * counted meanwhile may show in its bucket and not yet in the sum. */
void     metrics_read(struct metrics_view *v);

/*
 * Every failure a request can meet. The HTTP layer maps each to a status,
 * a reason phrase and a JSON code (http_response.c, err_table); storage
 * returns only the storage ones.
 */
enum casq_err {
	E_OK = 0,
	E_MISSING_KEY, E_BAD_KEY, E_BAD_QUEUE, E_BAD_LEASE, E_BAD_DELAY,
	E_BAD_PAYLOAD, E_MISSING_TOKEN, E_BAD_TOKEN, E_BAD_CLAIMANT, E_CONFLICTING_PARAM,
	E_MALFORMED_JSON, E_JSON_TOO_DEEP, E_MALFORMED_FORM, E_BAD_PARAM,
	E_BAD_NAMESPACE, E_BAD_SCOPE, E_MISSING_VALUE, E_BAD_VALUE, E_BAD_CAS,
	E_BAD_TTL, E_BAD_BY, E_BAD_MOD, E_BAD_SIZE, E_MISSING_ID, E_BAD_ID,
	E_BAD_REQUEST_ID, E_UNKNOWN_PARAM, E_NULL_PARAM, E_NO_NAMESPACE,
	E_BAD_LIMIT, E_MISSING_STATE, E_BAD_STATE, E_BAD_AFTER, E_BAD_ANNOTATION,
	E_BAD_BIND, E_BAD_CONFIG_LEASE, E_BAD_MAX_ATTEMPTS, E_BAD_BIND_DAYS,
	E_BAD_ALL, E_KEY_OR_ALL,
	E_MISSING_API_KEY, E_INVALID_API_KEY, E_READ_ONLY_KEY, E_FORBIDDEN,
	E_BAD_TENANT, E_RATE_LIMITED, E_QUOTA_EXCEEDED,
	E_NO_ROUTE, E_NO_QUEUE, E_METHOD, E_BODY_TOO_LARGE, E_PAYLOAD_TOO_LARGE,
	E_UNSUPPORTED_BODY, E_INCOMPLETE_BODY, E_VALUE_TOO_LARGE, E_NOT_A_COUNTER, E_COUNTER_OVERFLOW,
	E_REQUEST_ID_REUSED,
	E_INTERNAL, E_UNAVAILABLE, E_STORAGE_FULL,
	E_SPACE_REFUSED,	/* as E_STORAGE_FULL, but refused before any write */
	E__COUNT
};

#endif
