/*
 * http.h - the HTTP layer: requests as FastCGI hands them over, parameter
 * parsing (query, JSON and form bodies), JSON responses, the error table
 * and API keys. Nothing here knows about storage; route.h joins the two.
 */
#ifndef CASQ_HTTP_H
#define CASQ_HTTP_H

#include "common.h"

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
	uint64_t    started_ns;		/* metrics_clock_ns() as it was read */
	/* filled by routing and parsing */
	char        path[512];
	unsigned    route;		/* route.c's row + 1; 0: no route (for metrics) */
	char        name[65];		/* the {queue}, {namespace} or {scope} segment */
	char        scoped[TENANT_NAME_MAX + 1 + 65];	/* "tenant:name", as stored */
	char       *request_id;		/* "key-name/id" from request_id or Idempotency-Key */
	const char *idempotency_key;	/* the Idempotency-Key header */
	unsigned char fingerprint[32];	/* route + parameters, for request_id reuse */
	struct param *params;
	size_t      nparams;
	const struct api_key *key;	/* which API key authenticated */
	const char *tenant_header;	/* X-Casq-Tenant (admin keys only) */
	const char *tenant;		/* whose data: the key's, or the header's */
	char       *err_param;		/* the parameter an error names, if any */
};

struct route_call;

struct response {
	int         status;
	const char *reason;
	const char *allow;		/* Allow header for 405 */
	int         retry_after;	/* Retry-After header for 429 (seconds), 0: none */
	const char *content_type;	/* NULL: application/json */
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
/* With milliseconds: for events that may be apart by less than a second. */
void json_time_ms(struct json *j, const char *key, int64_t ms);

void response_ok(struct response *res);
void response_error(struct response *res, enum casq_err err);
/* An error about one parameter (E_UNKNOWN_PARAM, E_NULL_PARAM): the
 * message names it. */
void response_error_param(struct response *res, enum casq_err err,
	const char *name);
void response_free(struct response *res);
/* HTTP status, reason phrase and JSON code of an error. */
int         err_status(enum casq_err err);
const char *err_reason(enum casq_err err);
const char *err_code(enum casq_err err);
/* The message; errors about one parameter hold a "%s" for its name. */
const char *err_message(enum casq_err err);

/* --- auth.c: API keys, stored as SHA-256 hashes --- */
struct keyring;
#define KEY_NAME_MAX	64	/* a key name: name_valid() */

/* What a key may do: read routes only, every route of its tenant, or
 * also act for other tenants (X-Casq-Tenant) and list them. */
enum key_scope { SCOPE_READ, SCOPE_WRITE, SCOPE_ADMIN };
const char *key_scope_name(enum key_scope scope);
bool key_scope_parse(const char *text, enum key_scope *scope);

struct api_key {
	char           name[KEY_NAME_MAX + 1];
	char           tenant[TENANT_NAME_MAX + 1];	/* "default" unless set */
	enum key_scope scope;
	uint32_t       rate;	/* requests per second, bursts as many; 0: none */
};
struct keyring *keyring_load(const char *path, char *why, size_t whylen);
void keyring_free(struct keyring *kr);
/* The matching key, or NULL; time does not depend on where (or whether)
 * the key matches. */
const struct api_key *keyring_match(const struct keyring *kr, const char *key);
size_t keyring_count(const struct keyring *kr);
const struct api_key *keyring_key(const struct keyring *kr, size_t i);
/* A "tenant T max_items=N" line's quota: 0 when T has none. */
uint64_t keyring_max_items(const struct keyring *kr, const char *tenant);
/* The tenants the file names (by keys or tenant lines), each once. */
size_t keyring_tenant_count(const struct keyring *kr);
const char *keyring_tenant(const struct keyring *kr, size_t i);
/* A new random key and its keys-file line. */
void keyring_mint(const char *name, char key[static 80], char line[static 256]);
enum casq_err request_authenticate(struct request *req, const struct keyring *kr);

/* --- ratelimit.c: per-key limits shared by all worker processes --- */
struct ratelimit;
/* The shared table; call before forking the workers. NULL on failure. */
struct ratelimit *ratelimit_create(void);
/* Give every rate-limited key of kr a slot (the master, at start and
 * before each reload); false when the table is full. */
bool ratelimit_register(struct ratelimit *rl, const struct keyring *kr);
/* Count one request of key: false when over its rate, with the whole
 * seconds to wait in *retry_after_s. */
bool ratelimit_take(struct ratelimit *rl, const struct api_key *key,
	int *retry_after_s);

#endif
