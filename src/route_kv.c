/*
 * route_kv.c - values with compare-and-swap, and counters:
 * /v1/kv/{namespace}/get|set|delete|incr and /v1/kv/{namespace} (stats).
 */
#include <stdlib.h>
#include <string.h>

#include "route.h"

#define TTL_MAX_MS	(31536000LL * 1000)	/* a year */
#define MOD_MAX		1000000000LL		/* bounds slot and bucket math */

/* mod and size travel beside the op: they shape the answer, not the
 * store; value holds the text op->value points into. */
struct kv_call {
	struct kv_op op;
	bool         has_mod, has_size;
	int64_t      mod, size;
	struct buf   value;
};

static enum casq_err
kv_params(const struct request *req, struct kv_call *c)
{
	struct kv_op *op = &c->op;
	enum casq_err err = E_OK;
	int64_t cas = 0;

	if (op->kind == KV_STATS)
		return E_OK;
	if ((err = param_key(req, "key", &op->key)) != E_OK ||
	    (err = param_int(req, "cas", 0, INT64_MAX, E_BAD_CAS, &op->has_cas, &cas)) != E_OK ||
	    (err = param_seconds(req, "ttl", true, TTL_MAX_MS, E_BAD_TTL, &op->ttl_ms)) != E_OK)
		return err;
	op->cas = (uint64_t)cas;
	if (op->kind == KV_SET) {
		if ((err = param_json_value(req, "value", E_BAD_VALUE,
		    E_VALUE_TOO_LARGE, &c->value)) != E_OK)
			return err;
		if (request_param(req, "value") == NULL)
			return E_MISSING_VALUE;
		op->value = c->value.data;
		op->value_len = c->value.len;
	}
	if (op->kind == KV_INCR) {
		bool given;

		op->by = 1;
		if ((err = param_int(req, "by", INT64_MIN, INT64_MAX, E_BAD_BY, &given, &op->by)) != E_OK ||
		    (err = param_int(req, "mod", 1, MOD_MAX, E_BAD_MOD, &c->has_mod, &c->mod)) != E_OK ||
		    (err = param_int(req, "size", 1, MOD_MAX, E_BAD_SIZE, &c->has_size, &c->size)) != E_OK)
			return err;
	}
	return E_OK;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Counter values 1..size are bucket 0, size+1..2*size bucket 1, and so
 * on: floor((v - 1) / size), without overflowing at INT64_MIN. With size
 * 1 there the answer itself is below the int64 range: written as text. */
static void
json_bucket(struct json *j, int64_t v, int64_t size)
{
	if (v == INT64_MIN && size == 1)
		json_raw(j, "bucket", "-9223372036854775809", 20);
	else
		json_int(j, "bucket", v > 0 ? (v - 1) / size :
		    floor_div(v + (size - 1), size) - 1);
}

static void
render_head(struct json *j, const char *outcome, const struct kv_op *op)
{
	json_obj_open(j, NULL);
	json_bool(j, outcome, op->res.ok);
	json_str(j, "namespace", route_shown_name(op->ns));
	json_str(j, "key", op->key);
}

static void
render_times(struct json *j, const struct kv_result *r)
{
	json_time(j, "updated_at", r->updated_at);
	if (r->expires_at > 0)
		json_time(j, "expires_at", r->expires_at);
}

static void
render_kv(void *arg, struct json *j)
{
	struct kv_call *c = arg;
	const struct kv_op *op = &c->op;
	const struct kv_result *r = &op->res;

	switch (op->kind) {
	case KV_GET:
		render_head(j, "found", op);
		if (r->ok) {
			json_raw(j, "value", r->value.data, r->value.len);
			json_int(j, "version", (long long)r->version);
			render_times(j, r);
		}
		break;
	case KV_SET:
	case KV_DELETE:
		render_head(j, "ok", op);
		json_int(j, "version", (long long)r->version);
		if (!r->ok)
			json_str(j, "reason", store_refusal_name(r->reason));
		else if (op->kind == KV_SET)
			render_times(j, r);
		break;
	case KV_INCR:
		json_obj_open(j, NULL);
		json_int(j, "value", r->counter);
		json_str(j, "namespace", route_shown_name(op->ns));
		json_str(j, "key", op->key);
		json_int(j, "version", (long long)r->version);
		if (c->has_mod)
			json_int(j, "slot", ((r->counter % c->mod) + c->mod) % c->mod);
		if (c->has_size)
			json_bucket(j, r->counter, c->size);
		break;
	case KV_STATS:
		json_obj_open(j, NULL);
		json_str(j, "namespace", route_shown_name(op->ns));
		json_int(j, "keys", (long long)r->stats.keys);
		json_int(j, "sets", (long long)r->stats.sets);
		json_int(j, "deletes", (long long)r->stats.deletes);
		json_int(j, "incrs", (long long)r->stats.incrs);
		json_int(j, "cas_failures", (long long)r->stats.cas_failures);
		json_int(j, "expired", (long long)r->stats.expired);
		break;
	}
	json_obj_close(j);
}

/* incr's refusals are errors (the answer has no "ok" to carry them). */
static enum casq_err
apply_kv(struct store *st, MDB_txn *txn, void *arg)
{
	struct kv_call *c = arg;
	enum casq_err err = kv_apply(st, txn, &c->op);

	if (err != E_OK || c->op.kind != KV_INCR || c->op.res.ok)
		return err;
	return c->op.res.reason == REFUSAL_OVERFLOW ?
	    E_COUNTER_OVERFLOW : E_NOT_A_COUNTER;
}

static void
kv_call_free(void *arg)
{
	struct kv_call *c = arg;

	kv_result_free(&c->op.res);
	buf_free(&c->value);
	free(c);
}

/* A delete that deleted frees data; see route_op.drained. */
static bool
kv_drained(const void *arg)
{
	const struct kv_call *c = arg;

	return c->op.kind == KV_DELETE && c->op.res.ok;
}

static void
kv_route(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct kv_call *c = xcalloc(1, sizeof *c);
	enum kv_op_kind kind = (enum kv_op_kind)route->kind;
	enum casq_err err;

	c->op = (struct kv_op){ .kind = kind, .now = req->now, .ns = req->scoped,
	    .max_items = route_max_items(app, req) };
	if ((err = kv_params(req, c)) != E_OK) {
		response_error(res, err);
		kv_call_free(c);
		return;
	}
	route_exec(app, req, res, &(struct route_op){
	    .write = kv_op_writes(&c->op), .apply = apply_kv,
	    .render = render_kv, .free_op = kv_call_free, .op = c,
	    .drained = kind == KV_DELETE ? kv_drained : NULL,
	    .now = &c->op.now });
}

/* --- the rows (route.c's table points at them) --- */

#define KV_ROUTE(path, op, ...) { .pattern = "/v1/kv/*" path, \
	.exec = kv_route, .kind = op, .auth = true, .bad_name = E_BAD_NAMESPACE, \
	.params = (const char *const[]){ __VA_ARGS__, NULL } }

const struct route_entry route_kv_get_entry =
	KV_ROUTE("/get", KV_GET, "key");
const struct route_entry route_kv_set_entry =
	KV_ROUTE("/set", KV_SET, "key", "value", "cas", "ttl");
const struct route_entry route_kv_delete_entry =
	KV_ROUTE("/delete", KV_DELETE, "key", "cas");
const struct route_entry route_kv_incr_entry =
	KV_ROUTE("/incr", KV_INCR, "key", "by", "mod", "size", "ttl");
const struct route_entry route_kv_stats_entry = {
	.pattern = "/v1/kv/*", .exec = kv_route, .kind = KV_STATS,
	.auth = true, .bad_name = E_BAD_NAMESPACE,
	.params = (const char *const[]){ NULL },
};
