/*
 * route.h - routing: the table of routes (each row declared in its
 * route_*.c next to its handler, as tmux's cmd_entry), the parameters a
 * route takes, typed parameter readers, and the path from a request to a
 * store operation and back to an answer. The one layer that sees both
 * http.h and store.h.
 */
#ifndef CASQ_ROUTE_H
#define CASQ_ROUTE_H

#include "http.h"
#include "store.h"

/* A {queue}, {namespace} or {scope} in a path: 1-64 of A-Z a-z 0-9 . _ -
 * (the store keeps it behind its tenant, QUEUE_NAME_MAX). */
#define PATH_NAME_MAX	64

/* The name an answer shows: a stored "tenant:name" without its tenant. */
const char *route_shown_name(const char *scoped);

struct app {
	struct store   *store;
	/* Swapped by a worker's main thread on SIGHUP (worker.c's
	 * keys_reload), read by the serving threads. */
	_Atomic(struct keyring *) keys;
	int64_t         idem_ttl_ms;	/* how long responses are kept for retries */
	/* Writes are left in res->pending for the caller to hand to the
	 * committer (route_call_apply, then route_finish) instead of being
	 * waited for: the serving thread goes on to the next request. */
	bool            defer_writes;
	struct ratelimit *rl;		/* shared by the pool; NULL: no limits */
	/* When set (casqd: clock_now_ms), an operation's time is read from
	 * it as the operation is applied, inside its transaction: for a
	 * write with LMDB's writer lock held, for a read after its snapshot
	 * was taken. The times of writes then follow their commit order,
	 * across the workers too, and no operation runs at a time earlier
	 * than that of a commit it sees: an item enqueued or released
	 * without a delay is ready for every claim and pop applied after
	 * it. The request's own time (req->now, read before its body) is
	 * not: another write read later may commit first, in this worker or
	 * another one. NULL (the unit tests): the request's time. */
	int64_t        (*clock)(void);
};
/* One history event as the history routes answer it (route_history.c;
 * casqctl show too): {"at":...,"event":...}, with its queue when asked. */
void route_history_event(struct json *j, const struct history_event *ev,
	bool with_queue);
/* The quota of the request's tenant (0: none). */
uint64_t route_max_items(const struct app *app, const struct request *req);
void route_request(struct app *app, struct request *req, struct response *res);

struct route_entry;
typedef void route_fn(struct app *app, struct request *req,
	struct response *res, const struct route_entry *route);

/*
 * One route. A parameter not in params (and not an x_ annotation) is
 * 400 Unknown Parameter before the handler runs, so a misspelled name
 * can never be ignored into a different operation.
 */
struct route_entry {
	const char   *pattern;	/* a "*" segment is the queue, namespace or scope */
	route_fn     *exec;
	int           kind;	/* the handler's op kind (enum queue_op_kind, ...) */
	bool          auth;	/* needs an API key; also takes request_id */
	enum casq_err bad_name;	/* the error for an invalid "*" segment */
	const char *const *params;	/* NULL-terminated */
};

/* The rows, declared in route_queue.c, route_kv.c, route_once.c,
 * route_admin.c, route_history.c and route_items.c; route.c's table
 * points at them. */
extern const struct route_entry route_enqueue_entry, route_claim_entry,
	route_pop_entry, route_ack_entry, route_release_entry,
	route_remove_entry, route_status_entry, route_queue_stats_entry,
	route_redrive_entry, route_queue_config_entry,
	route_queue_list_entry, route_kv_get_entry, route_kv_set_entry,
	route_kv_delete_entry, route_kv_incr_entry, route_kv_stats_entry,
	route_kv_list_entry, route_once_list_entry, route_once_entry, route_healthz_entry, route_ping_entry,
	route_tenant_entry, route_tenants_entry, route_history_entry,
	route_history_key_entry, route_items_entry, route_metrics_entry;
/* The rows by number, as req->route counts them: 1 to route_count(); 0
 * (and any other number) is no route, and has no pattern (NULL). */
unsigned    route_count(void);
const char *route_pattern(unsigned route);

/* What a route hands to storage: op (heap) is applied in a transaction,
 * its result rendered as the 200 answer, then released with free_op. */
/*
 * Render op's result as the 200 answer's JSON.
 * \note Runs on the completer for a worker's write (route_finish, after
 *       the commit), on the serving thread for a read, and on the
 *       committer inside the transaction for a write with a request id
 *       (its answer is stored with its effect): so it reads op and its
 *       result only, never the store, and has no side effect; it may run
 *       again after a rerun of the batch.
 * \note op's strings are borrowed from the request, which outlives
 *       free_op (worker.c's ownership table).
 */
typedef void (*route_render_fn)(void *op, struct json *j);
struct route_op {
	bool            write;
	store_apply_fn  apply;
	route_render_fn render;
	void          (*free_op)(void *op);
	void           *op;
	/* For writes that free data (claims, acks, removes, deletes): true
	 * when the applied op did remove or consume something. While space
	 * is low such an op may still store its answer for a request id,
	 * and only then; NULL for writes that add data. */
	bool          (*drained)(const void *op);
	/* The op's time (its "now" field, set from req->now), updated from
	 * app->clock when the op is applied; NULL: an op that reads no time. */
	int64_t        *now;
};
/* Run ro in a transaction and answer with its result; a deferred write
 * (app->defer_writes) is left in res->pending instead. A write with a
 * request id goes through the stored-response table: a retry gets the
 * first answer and the op does not run again. */
void route_exec(struct app *app, struct request *req, struct response *res,
	const struct route_op *ro);
/* The transaction body of res->pending, and its answer once committed
 * (or failed with err); route_finish releases the call. */
enum casq_err route_call_apply(struct store *st, MDB_txn *txn, void *call);
void route_finish(struct response *res, enum casq_err err);

/* --- metrics_render.c: the text GET /metrics answers --- */
/* Prometheus's text exposition format, version 0.0.4. */
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"
struct metrics_scrape {
	const char *tenant;	/* whose queues; NULL: every tenant's */
	struct buf *out;	/* the exposition, each line ending in '\n' */
};
/* A store_apply_fn for a read transaction: the workers' counters
 * (metrics_read), the environment's use and the queues' series of
 * scrape->tenant into scrape->out. Reads only stats records, so it costs
 * one cursor step per queue and never waits for the committer. */
enum casq_err metrics_render(struct store *st, MDB_txn *txn, void *scrape);

/* --- route_params.c: typed parameters, each with its own error --- */
/* Text: *out NULL when absent, else UTF-8 without NUL, at most max bytes. */
enum casq_err param_text(const struct request *req, const char *name,
	size_t max, enum casq_err bad, const char **out);
/* A required key: 1-256 bytes of UTF-8 (E_MISSING_KEY / E_BAD_KEY). */
enum casq_err param_key(const struct request *req, const char *name,
	const char **key);
/* Seconds (decimals to the ms) into *ms, at most max_ms, more than 0 when
 * positive; absent leaves *ms untouched. */
enum casq_err param_seconds(const struct request *req, const char *name,
	bool positive, int64_t max_ms, enum casq_err bad, int64_t *ms);
/* A JSON value as compact text: JSON-body values as given, form and
 * query values as JSON strings. Absent leaves out empty. */
enum casq_err param_json_value(const struct request *req, const char *name,
	enum casq_err bad, enum casq_err too_large, struct buf *out);
/* true or false: a JSON boolean, or the text "true" / "false"; absent
 * leaves *out untouched. */
enum casq_err param_bool(const struct request *req, const char *name,
	enum casq_err bad, bool *out);
/* A decimal integer within [min, max]: digits only, with a leading '-'
 * only when min is negative; *given says whether it was sent. */
enum casq_err param_int(const struct request *req, const char *name,
	int64_t min, int64_t max, enum casq_err bad, bool *given, int64_t *out);
/* limit: 1 to max, def when absent (E_BAD_LIMIT). */
enum casq_err param_limit(const struct request *req, size_t def, size_t max,
	size_t *limit);
/* The request's x_ annotations as compact JSON members,
 * "\"x_campaign\":\"Welcome\",\"x_step\":2", for an item's history: text
 * as JSON strings, JSON values as sent. E_BAD_ANNOTATION when a name or
 * text is not UTF-8 without NUL, or all of them take more than
 * HISTORY_ANNOTATIONS_MAX bytes. */
enum casq_err param_annotations(const struct request *req, struct buf *out);
/* The request id as the client sent it (req->request_id without its
 * "tenant:key-name/" scope), or NULL. */
const char *route_request_id(const struct request *req);

#endif
