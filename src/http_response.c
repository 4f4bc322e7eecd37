/*
 * http_response.c - compact one-line JSON with keys in the order written
 * (Marketo's "Response contains" matches literal text), and the table
 * that gives every error its status, reason phrase and code.
 */
#include <stdio.h>
#include <string.h>

#include "http.h"

static const struct {
	int         status;
	const char *reason;	/* the status line's phrase: Marketo's "Error Type" */
	const char *code;
	const char *message;
} err_table[E__COUNT] = {
	[E_OK]                = { 200, "OK", "ok", "ok" },
	[E_MISSING_KEY]       = { 400, "Missing Key", "missing_key", "parameter 'key' is required" },
	[E_BAD_KEY]           = { 400, "Bad Key", "bad_key", "key must be 1-256 bytes of UTF-8 without NUL" },
	[E_BAD_QUEUE]         = { 400, "Bad Queue Name", "bad_queue", "queue names are 1-64 of A-Z a-z 0-9 . _ -" },
	[E_BAD_LEASE]         = { 400, "Bad Lease", "bad_lease", "lease must be seconds, more than 0 and at most 604800" },
	[E_BAD_DELAY]         = { 400, "Bad Delay", "bad_delay", "delay must be seconds, from 0 to 31536000" },
	[E_BAD_PAYLOAD]       = { 400, "Bad Payload", "bad_payload", "payload text must be UTF-8 without NUL" },
	[E_MISSING_TOKEN]     = { 400, "Missing Token", "missing_token", "parameter 'token' (or the lease's 'claimant') is required" },
	[E_BAD_TOKEN]         = { 400, "Bad Token", "bad_token", "token must be at most 128 bytes of UTF-8" },
	[E_BAD_CLAIMANT]      = { 400, "Bad Claimant", "bad_claimant", "claimant must be at most 128 bytes of UTF-8 without NUL" },
	[E_CONFLICTING_PARAM] = { 400, "Conflicting Parameter", "conflicting_parameter", "a parameter was given twice with different values" },
	[E_MALFORMED_JSON]    = { 400, "Malformed JSON", "malformed_json", "the body is not a valid JSON object" },
	[E_JSON_TOO_DEEP]     = { 400, "JSON Too Deep", "json_too_deep", "JSON values may nest at most 32 levels deep" },
	[E_MALFORMED_FORM]    = { 400, "Malformed Form", "malformed_form", "the form or query string has a bad %-escape" },
	[E_BAD_PARAM]         = { 400, "Bad Parameter", "bad_parameter", "a parameter has a value of the wrong form" },
	[E_BAD_NAMESPACE]     = { 400, "Bad Namespace", "bad_namespace", "namespaces are 1-64 of A-Z a-z 0-9 . _ -" },
	[E_BAD_SCOPE]         = { 400, "Bad Scope", "bad_scope", "scopes are 1-64 of A-Z a-z 0-9 . _ -" },
	[E_MISSING_VALUE]     = { 400, "Missing Value", "missing_value", "parameter 'value' is required" },
	[E_BAD_VALUE]         = { 400, "Bad Value", "bad_value", "value text must be UTF-8 without NUL" },
	[E_BAD_CAS]           = { 400, "Bad CAS", "bad_cas", "cas must be a version number, 0 or more" },
	[E_BAD_TTL]           = { 400, "Bad TTL", "bad_ttl", "ttl must be seconds, more than 0 and at most 31536000" },
	[E_BAD_BY]            = { 400, "Bad Increment", "bad_by", "by must be an integer" },
	[E_BAD_MOD]           = { 400, "Bad Mod", "bad_mod", "mod must be an integer from 1 to 1000000000" },
	[E_BAD_SIZE]          = { 400, "Bad Size", "bad_size", "size must be an integer from 1 to 1000000000" },
	[E_MISSING_ID]        = { 400, "Missing Id", "missing_id", "parameter 'id' is required" },
	[E_BAD_ID]            = { 400, "Bad Id", "bad_id", "id must be 1-256 bytes of UTF-8 without NUL" },
	[E_BAD_REQUEST_ID]    = { 400, "Bad Request Id", "bad_request_id", "request_id / Idempotency-Key must be 1-200 bytes of UTF-8, and the same if both are sent" },
	[E_UNKNOWN_PARAM]     = { 400, "Unknown Parameter", "unknown_parameter", "parameter '%s' is not one this route takes (names are case-sensitive; x_ names are free annotations)" },
	[E_NULL_PARAM]        = { 400, "Null Parameter", "null_parameter", "parameter '%s' is null: send a value or leave the parameter out" },
	[E_BAD_LIMIT]         = { 400, "Bad Limit", "bad_limit", "limit must be an integer from 1 to 1000" },
	[E_MISSING_STATE]     = { 400, "Missing State", "missing_state", "parameter 'state' is required" },
	[E_BAD_STATE]         = { 400, "Bad State", "bad_state", "state must be ready, leased or dead" },
	[E_BAD_AFTER]         = { 400, "Bad After", "bad_after", "after must be an item key: 1-256 bytes of UTF-8 without NUL" },
	[E_BAD_ANNOTATION]    = { 400, "Bad Annotation", "bad_annotation", "x_ annotations must be UTF-8 without NUL, at most 1024 bytes in all as JSON" },
	[E_BAD_BIND]          = { 400, "Bad Bind", "bad_bind", "bind must be 1-256 bytes of UTF-8 without NUL" },
	[E_BAD_CONFIG_LEASE]  = { 400, "Bad Lease", "bad_config_lease", "a queue's lease must be seconds, from 0 (none) to 604800" },
	[E_BAD_MAX_ATTEMPTS]  = { 400, "Bad Max Attempts", "bad_max_attempts", "max_attempts must be an integer from 0 (unlimited) to 1000" },
	[E_BAD_BIND_DAYS]     = { 400, "Bad Bind Days", "bad_bind_days", "bind_days must be an integer from 1 to 3650" },
	[E_BAD_ALL]           = { 400, "Bad All", "bad_all", "all must be true or false" },
	[E_KEY_OR_ALL]        = { 400, "Key Or All", "key_or_all", "send key to redrive one dead item, or all=true to redrive every one, not both" },
	[E_NO_NAMESPACE]      = { 404, "No Such Namespace", "no_such_namespace", "no value was ever written in this namespace" },
	[E_MISSING_API_KEY]   = { 401, "Missing API Key", "missing_api_key", "send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'" },
	[E_INVALID_API_KEY]   = { 401, "Invalid API Key", "invalid_api_key", "the API key is not valid" },
	[E_READ_ONLY_KEY]     = { 403, "Read Only Key", "read_only_key", "this API key may only read; this route writes" },
	[E_FORBIDDEN]         = { 403, "Forbidden", "forbidden", "only an admin key may act for another tenant (X-Casq-Tenant) or list tenants" },
	[E_BAD_TENANT]        = { 400, "Bad Tenant", "bad_tenant", "X-Casq-Tenant must be a tenant name: 1-64 of A-Z a-z 0-9 . _ -" },
	[E_QUOTA_EXCEEDED]    = { 507, "Quota Exceeded", "quota_exceeded", "the tenant holds its max_items; claims, acks, removes and deletes still work" },
	[E_RATE_LIMITED]      = { 429, "Rate Limited", "rate_limited", "this API key is over its rate; retry after Retry-After seconds" },
	[E_NO_ROUTE]          = { 404, "No Such Route", "no_such_route", "no such route; see docs/api.md" },
	[E_NO_QUEUE]          = { 404, "No Such Queue", "no_such_queue", "no item was ever enqueued in this queue" },
	[E_METHOD]            = { 405, "Method Not Allowed", "method_not_allowed", "use GET or POST" },
	[E_BODY_TOO_LARGE]    = { 413, "Body Too Large", "body_too_large", "request body exceeds 64 KiB" },
	[E_PAYLOAD_TOO_LARGE] = { 413, "Payload Too Large", "payload_too_large", "payload exceeds 16384 bytes" },
	[E_UNSUPPORTED_BODY]  = { 415, "Unsupported Body", "unsupported_body", "send JSON or application/x-www-form-urlencoded" },
	[E_INCOMPLETE_BODY]   = { 400, "Incomplete Body", "incomplete_body", "the request body ended before its Content-Length" },
	[E_VALUE_TOO_LARGE]   = { 413, "Value Too Large", "value_too_large", "value exceeds 16384 bytes" },
	[E_NOT_A_COUNTER]     = { 409, "Not A Counter", "not_a_counter", "the stored value is not an integer" },
	[E_COUNTER_OVERFLOW]  = { 409, "Counter Overflow", "counter_overflow", "the counter would leave the 64-bit range" },
	[E_REQUEST_ID_REUSED] = { 422, "Request Id Reused", "request_id_reused", "this request id was used with other parameters" },
	[E_INTERNAL]          = { 500, "Internal Error", "internal", "internal error; see the casqd log" },
	[E_UNAVAILABLE]       = { 503, "Unavailable", "unavailable", "the database cannot be read; see the casqd log" },
	[E_STORAGE_FULL]      = { 507, "Storage Full", "storage_full", "the database is full; nothing stored was changed" },
	[E_SPACE_REFUSED]     = { 507, "Storage Full", "storage_full", "the database is full; nothing stored was changed" },
};

int         err_status(enum casq_err err) { return err_table[err].status; }
const char *err_reason(enum casq_err err) { return err_table[err].reason; }
const char *err_code(enum casq_err err)   { return err_table[err].code; }
const char *err_message(enum casq_err err) { return err_table[err].message; }

/* --- JSON writer --- */

void
json_begin(struct json *j, struct buf *b)
{
	j->b = b;
	j->depth = 0;
	j->first[0] = true;
}

/* A JSON string: the runs between escapes are appended whole (casqctl
 * import writes a payload per row, every answer writes a few). */
static void
json_escape(struct buf *b, const char *s, size_t n)
{
	size_t run = 0;		/* where the bytes not yet appended start */

	buf_reserve(b, n + 2);
	buf_append(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c != '"' && c != '\\' && c >= 0x20)
			continue;
		buf_append(b, s + run, i - run);
		run = i + 1;
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			buf_append(b, esc, 2);
		} else {
			buf_printf(b, "\\u%04x", c);
		}
	}
	buf_append(b, s + run, n - run);
	buf_append(b, "\"", 1);
}

/* Comma and "key": before a member or element. */
static void
json_prefix(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		buf_append(j->b, ",", 1);
	j->first[j->depth] = false;
	if (key != NULL) {
		json_escape(j->b, key, strlen(key));
		buf_append(j->b, ":", 1);
	}
}

static void
json_open(struct json *j, const char *key, const char *bracket)
{
	if (j->depth > 0 || !j->first[0] || key != NULL)
		json_prefix(j, key);
	buf_puts(j->b, bracket);
	if (++j->depth >= (int)(sizeof j->first / sizeof j->first[0]))
		fatal("JSON nesting too deep");
	j->first[j->depth] = true;
}

void json_obj_open(struct json *j, const char *key) { json_open(j, key, "{"); }
void json_arr_open(struct json *j, const char *key) { json_open(j, key, "["); }
void json_obj_close(struct json *j) { j->depth--; buf_puts(j->b, "}"); }
void json_arr_close(struct json *j) { j->depth--; buf_puts(j->b, "]"); }

void
json_strn(struct json *j, const char *key, const char *s, size_t n)
{
	json_prefix(j, key);
	json_escape(j->b, s, n);
}

void
json_str(struct json *j, const char *key, const char *s)
{
	json_strn(j, key, s, strlen(s));
}

void
json_int(struct json *j, const char *key, long long v)
{
	json_prefix(j, key);
	buf_printf(j->b, "%lld", v);
}

void
json_bool(struct json *j, const char *key, bool v)
{
	json_prefix(j, key);
	buf_puts(j->b, v ? "true" : "false");
}

void
json_raw(struct json *j, const char *key, const char *raw, size_t n)
{
	json_prefix(j, key);
	buf_append(j->b, raw, n);
}

void
json_time(struct json *j, const char *key, int64_t ms)
{
	char stamp[32];

	iso8601(ms, stamp);
	json_str(j, key, stamp);
}

void
json_time_ms(struct json *j, const char *key, int64_t ms)
{
	char stamp[32];

	iso8601_ms(ms, stamp);
	json_str(j, key, stamp);
}

/* --- responses --- */

void
response_ok(struct response *res)
{
	res->status = 200;
	res->reason = "OK";
}

void
response_error(struct response *res, enum casq_err err)
{
	struct json j;

	res->status = err_table[err].status;
	res->reason = err_table[err].reason;
	res->body.len = 0;
	json_begin(&j, &res->body);
	json_obj_open(&j, NULL);
	json_str(&j, "error", err_table[err].code);
	json_str(&j, "message", err_table[err].message);
	json_obj_close(&j);
	if (err == E_METHOD)
		res->allow = "GET, POST";
}

/* Longer names are cut in a message (a form name can be 64 KiB). */
#define ERR_NAME_MAX	64

/* The name as a message shows it: cut at a character boundary, and never
 * bytes that are not UTF-8 (they could not be written as JSON). */
static void
err_param_name(const char *name, struct buf *out)
{
	size_t n = strlen(name);

	if (!utf8_valid(name, n)) {
		buf_puts(out, "(a name that is not UTF-8)");
		return;
	}
	if (n <= ERR_NAME_MAX) {
		buf_append(out, name, n);
		return;
	}
	n = ERR_NAME_MAX;
	while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
		n--;		/* name[n] continues a character: cut before it */
	buf_append(out, name, n);
	buf_puts(out, "...");
}

void
response_error_param(struct response *res, enum casq_err err,
    const char *name)
{
	struct buf shown = { 0 }, msg = { 0 };
	struct json j;

	response_error(res, err);
	err_param_name(name ? name : "", &shown);
	buf_append(&shown, "", 1);
	buf_printf(&msg, err_table[err].message, shown.data);
	res->body.len = 0;
	json_begin(&j, &res->body);
	json_obj_open(&j, NULL);
	json_str(&j, "error", err_table[err].code);
	json_strn(&j, "message", msg.data, msg.len);
	json_obj_close(&j);
	buf_free(&shown);
	buf_free(&msg);
}

void
response_free(struct response *res)
{
	buf_free(&res->body);
}
