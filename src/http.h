/*
 * http.h - the HTTP layer: requests as FastCGI hands them over, parameter
 * parsing (query, JSON and form bodies), JSON responses, the error table,
 * API keys and the route table. Nothing here touches LMDB directly: routes
 * build store operations and render their results.
 */
#ifndef CASQ_HTTP_H
#define CASQ_HTTP_H

#include "common.h"
#include "store.h"

/* Larger bodies get 413: a Marketo payload template is a few hundred
 * bytes; 64 KiB leaves room for a 16 KiB payload JSON-escaped twice. */
#define BODY_MAX	65536

enum param_kind { PARAM_STRING, PARAM_NUMBER, PARAM_BOOL, PARAM_JSON };

struct param {
	char           *name;
	char           *value;	/* decoded text; PARAM_JSON: compact JSON */
	size_t          len;
	enum param_kind kind;
};

struct request {
	/* from the FastCGI environment */
	const char *method;
	const char *uri;		/* REQUEST_URI: raw path + query */
	const char *content_type;
	const char *authorization;
	const char *api_key;		/* X-Api-Key */
	char       *body;
	size_t      body_len;
	bool        body_incomplete;	/* ended before its Content-Length */
	int64_t     now;
	/* filled by routing and parsing */
	char        path[512];
	char        name[65];		/* the {queue}, {namespace} or {scope} segment */
	char       *request_id;		/* "key-name/id" from request_id or Idempotency-Key */
	const char *idempotency_key;	/* the Idempotency-Key header */
	unsigned char fingerprint[32];	/* route + parameters, for request_id reuse */
	struct param *params;
	size_t      nparams;
	const char *key_name;		/* which API key authenticated */
};

struct route_call;

struct response {
	int         status;
	const char *reason;
	const char *allow;		/* Allow header for 405 */
	struct buf  body;		/* one line of compact JSON */
	struct route_call *pending;	/* a write waiting for its commit */
};

/* --- http_request.c --- */
enum casq_err request_parse_params(struct request *req);
/* Add a parameter, or accept a repeat with the same value
 * (E_CONFLICTING_PARAM when it differs). */
enum casq_err request_param_add(struct request *req, const char *name,
	size_t nlen, const char *value, size_t vlen, enum param_kind kind);
/* http_json.c: the members of a JSON object body as parameters. */
enum casq_err json_body_parse(struct request *req);
const struct param *request_param(const struct request *req, const char *name);
void request_free(struct request *req);
/* Percent-decode s[0..n) ('+' is a space when plus_is_space). */
bool url_decode(const char *s, size_t n, bool plus_is_space, struct buf *out);

/* --- http_response.c: a tiny JSON writer with fixed key order --- */
struct json {
	struct buf *b;
	int         depth;
	bool        first[8];
};
void json_begin(struct json *j, struct buf *b);
void json_obj_open(struct json *j, const char *key);	/* key NULL: a value */
void json_obj_close(struct json *j);
void json_arr_open(struct json *j, const char *key);
void json_arr_close(struct json *j);
void json_str(struct json *j, const char *key, const char *s);
void json_strn(struct json *j, const char *key, const char *s, size_t n);
void json_int(struct json *j, const char *key, long long v);
void json_bool(struct json *j, const char *key, bool v);
void json_raw(struct json *j, const char *key, const char *raw, size_t n);
void json_time(struct json *j, const char *key, int64_t ms);

void response_ok(struct response *res);
void response_error(struct response *res, enum casq_err err);
void response_free(struct response *res);
/* HTTP status, reason phrase and JSON code of an error. */
int         err_status(enum casq_err err);
const char *err_reason(enum casq_err err);
const char *err_code(enum casq_err err);

/* --- auth.c: API keys, stored as SHA-256 hashes --- */
struct keyring;
struct keyring *keyring_load(const char *path, char *why, size_t whylen);
void keyring_free(struct keyring *kr);
/* Name of the matching key, or NULL; time does not depend on where (or
 * whether) the key matches. */
const char *keyring_match(const struct keyring *kr, const char *key);
/* A new random key and its keys-file line. */
void keyring_mint(const char *name, char key[static 80], char line[static 256]);
enum casq_err request_authenticate(struct request *req, const struct keyring *kr);

/* --- route.c --- */
struct app {
	struct store   *store;
	struct keyring *keys;
	int64_t         idem_ttl_ms;	/* how long responses are kept for retries */
	/* Writes are left in res->pending for the caller to hand to the
	 * committer (route_call_apply, then route_finish) instead of being
	 * waited for: the serving thread goes on to the next request. */
	bool            defer_writes;
};
void route_request(struct app *app, struct request *req, struct response *res);

/* What a route hands to storage: op (heap) is applied in a transaction,
 * its result rendered as the 200 answer, then released with free_op. */
typedef void (*route_render_fn)(void *op, struct json *j);
struct route_op {
	bool            write;
	store_apply_fn  apply;
	route_render_fn render;
	void          (*free_op)(void *op);
	void           *op;
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

/* Handlers (route_queue.c, route_kv.c, route_once.c, route_admin.c). */
typedef void route_fn(struct app *app, struct request *req, struct response *res);
route_fn route_enqueue, route_claim, route_ack, route_release, route_remove,
	route_status, route_queue_stats, route_queue_list,
	route_kv_get, route_kv_set, route_kv_delete, route_kv_incr, route_kv_stats,
	route_once, route_healthz, route_ping;

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
/* A decimal integer within [min, max]; *given says whether it was sent. */
enum casq_err param_int(const struct request *req, const char *name,
	int64_t min, int64_t max, enum casq_err bad, bool *given, int64_t *out);

#endif
