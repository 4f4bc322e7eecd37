/*
 * route_queue.c - the queue routes: parameters in, a queue_op through
 * storage, one line of JSON out with the outcome key first. claim takes
 * the named item only; taking the next one is pop, a route of its own, so
 * no slip in a template can turn one into the other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

#define LEASE_MAX_MS	(604800LL * 1000)	/* a week: longer is a lost item */
#define DELAY_MAX_MS	(31536000LL * 1000)	/* a year */

/* The op and the payload and annotations text it points into. */
struct queue_call {
	struct queue_op op;
	struct buf      payload;
	struct buf      annotations;
};

/* key=K, or all=true: exactly one of them. */
static enum casq_err
redrive_params(const struct request *req, struct queue_op *op)
{
	enum casq_err err;

	if ((err = param_bool(req, "all", E_BAD_ALL, &op->redrive_all)) != E_OK)
		return err;
	if (request_param(req, "key") == NULL)
		return op->redrive_all ? E_OK : E_KEY_OR_ALL;
	if ((err = param_key(req, "key", &op->key)) != E_OK)
		return err;
	return op->redrive_all ? E_KEY_OR_ALL : E_OK;
}

/* The settings sent; none is a read. */
static enum casq_err
config_params(const struct request *req, struct queue_op *op)
{
	enum casq_err err;
	int64_t v = 0;

	op->set_lease = request_param(req, "lease") != NULL;
	if ((err = param_seconds(req, "lease", false, LEASE_MAX_MS,
	    E_BAD_CONFIG_LEASE, &op->config.lease_ms)) != E_OK ||
	    (err = param_int(req, "max_attempts", 0, MAX_ATTEMPTS_MAX,
	    E_BAD_MAX_ATTEMPTS, &op->set_max_attempts, &v)) != E_OK)
		return err;
	op->config.max_attempts = (uint32_t)v;
	if ((err = param_int(req, "bind_days", 1, BIND_DAYS_MAX, E_BAD_BIND_DAYS,
	    &op->set_bind_days, &v)) != E_OK)
		return err;
	op->config.bind_days = (uint32_t)v;
	return E_OK;
}

static enum casq_err
queue_op_params(const struct request *req, struct queue_op *op,
    struct buf *payload)
{
	enum casq_err err = E_OK;
	const char *claimant = NULL;

	switch (op->kind) {
	case QOP_ENQUEUE:
		if ((err = param_key(req, "key", &op->key)) == E_OK &&
		    (err = param_json_value(req, "payload", E_BAD_PAYLOAD,
		    E_PAYLOAD_TOO_LARGE, payload)) == E_OK)
			err = param_seconds(req, "delay", false, DELAY_MAX_MS,
			    E_BAD_DELAY, &op->delay_ms);
		op->payload = payload->data;
		op->payload_len = payload->len;
		break;
	case QOP_CLAIM:
		if ((err = param_key(req, "key", &op->key)) != E_OK)
			break;
		/* FALLTHROUGH */
	case QOP_POP:
		if ((err = param_text(req, "claimant", CLAIMANT_MAX, E_BAD_CLAIMANT, &claimant)) == E_OK)
			err = param_seconds(req, "lease", true, LEASE_MAX_MS,
			    E_BAD_LEASE, &op->lease_ms);
		if (err == E_OK && op->kind == QOP_POP &&
		    (err = param_text(req, "bind", BIND_MAX, E_BAD_BIND, &op->bind)) == E_OK &&
		    op->bind != NULL && *op->bind == '\0')
			err = E_BAD_BIND;
		op->claimant = claimant ? claimant : "";
		break;
	case QOP_RELEASE:
		err = param_seconds(req, "delay", false, DELAY_MAX_MS,
		    E_BAD_DELAY, &op->delay_ms);
		/* FALLTHROUGH */
	case QOP_ACK:
		if (err == E_OK && (err = param_key(req, "key", &op->key)) == E_OK &&
		    (err = param_text(req, "token", 128, E_BAD_TOKEN, &op->token)) == E_OK &&
		    (err = param_text(req, "claimant", CLAIMANT_MAX, E_BAD_CLAIMANT, &claimant)) == E_OK &&
		    op->token == NULL && (claimant == NULL || *claimant == '\0'))
			err = E_MISSING_TOKEN;
		op->claimant = claimant ? claimant : "";
		break;
	case QOP_REMOVE:
	case QOP_STATUS:
		err = param_key(req, "key", &op->key);
		break;
	case QOP_STATS:
		break;
	case QOP_REDRIVE:
		return redrive_params(req, op);
	case QOP_CONFIG:
		return config_params(req, op);
	}
	return err;
}

static void
render_head(struct json *j, const char *outcome, const struct queue_op *op)
{
	json_obj_open(j, NULL);
	json_bool(j, outcome, op->res.ok);
	json_str(j, "queue", route_shown_name(op->queue));
	json_str(j, "key", op->res.key);
}

static void
render_owner(struct json *j, const struct queue_result *r)
{
	if (r->has_owner)
		json_str(j, "owner", r->owner);
}

static void
render_enqueue(struct json *j, const struct queue_op *op)
{
	render_head(j, "enqueued", op);
	json_str(j, "state", op->res.follow_up ? "follow_up" :
	    item_state_name(op->res.state));
	if (op->res.state != ITEM_DEAD)
		json_time(j, "ready_at", op->res.ready_at);
}

static void
render_claim(struct json *j, const struct queue_op *op)
{
	const struct queue_result *r = &op->res;

	render_head(j, "claimed", op);
	if (!r->ok) {
		json_str(j, "reason", store_refusal_name(r->reason));
		render_owner(j, r);
		return;
	}
	if (op->bind != NULL)
		json_bool(j, "again", r->again);
	json_str(j, "owner", r->owner);
	json_str(j, "token", r->token);
	json_int(j, "attempt", r->attempts);
	if (r->payload.len > 0)
		json_raw(j, "payload", r->payload.data, r->payload.len);
	else
		json_raw(j, "payload", "null", 4);
	if (r->state == ITEM_LEASED)
		json_time(j, "lease_expires_at", r->lease_expires_at);
}

static void
render_simple(struct json *j, const char *outcome, const struct queue_op *op)
{
	render_head(j, outcome, op);
	if (!op->res.ok)
		json_str(j, "reason", store_refusal_name(op->res.reason));
	else if (op->kind == QOP_RELEASE || op->res.follow_up)
		json_str(j, "state", item_state_name(op->res.state));
	if (op->res.ok && op->res.follow_up)
		json_bool(j, "follow_up", true);
}

static void
render_status(struct json *j, const struct queue_op *op)
{
	const struct queue_result *r = &op->res;

	render_head(j, "queued", op);
	if (r->reason != REFUSAL_NONE) {	/* no such queue: there is no item to describe */
		json_str(j, "reason", store_refusal_name(r->reason));
		return;
	}
	json_str(j, "state", item_state_name(r->state));
	json_int(j, "attempts", r->attempts);
	render_owner(j, r);
	if (r->state == ITEM_READY || r->state == ITEM_LEASED || r->state == ITEM_DEAD)
		json_time(j, "enqueued_at", r->enqueued_at);
	if (r->state == ITEM_READY || r->state == ITEM_LEASED)
		json_time(j, "ready_at", r->ready_at);
	if (r->state == ITEM_LEASED)
		json_time(j, "lease_expires_at", r->lease_expires_at);
	if (r->follow_up)
		json_bool(j, "follow_up", true);
	if (r->state == ITEM_DEAD)
		json_time(j, "dead_at", r->dead_at);
	if (r->state == ITEM_CLAIMED)
		json_time(j, "claimed_at", r->claimed_at);
	if (*r->bound_to)
		json_str(j, "bound_to", r->bound_to);
}

/* The settings, in seconds as they are sent (a lease to the ms). */
static void
render_config_fields(struct json *j, const struct queue_config *c)
{
	char secs[32];
	int n = c->lease_ms % 1000 ?
	    snprintf(secs, sizeof secs, "%lld.%03lld", (long long)(c->lease_ms / 1000),
	    (long long)(c->lease_ms % 1000)) :
	    snprintf(secs, sizeof secs, "%lld", (long long)(c->lease_ms / 1000));

	json_raw(j, "lease", secs, (size_t)n);
	json_int(j, "max_attempts", c->max_attempts);
	json_int(j, "bind_days", c->bind_days);
}

static void
render_config(struct json *j, const struct queue_op *op)
{
	json_obj_open(j, NULL);
	json_str(j, "queue", route_shown_name(op->queue));
	render_config_fields(j, &op->res.stats.config);
}

static void
render_redrive(struct json *j, const struct queue_op *op)
{
	const struct queue_result *r = &op->res;

	json_obj_open(j, NULL);
	json_int(j, "redriven", (long long)r->redriven);
	json_str(j, "queue", route_shown_name(op->queue));
	if (op->key != NULL)
		json_str(j, "key", op->key);
	if (!r->ok)
		json_str(j, "reason", store_refusal_name(r->reason));
	else if (op->redrive_all)
		json_int(j, "remaining", (long long)r->remaining);
}

static void
render_stats(struct json *j, const struct queue_op *op)
{
	const struct queue_stats *s = &op->res.stats;
	int64_t age = op->res.oldest_ready_at ? (op->now - op->res.oldest_ready_at) / 1000 : 0;

	json_obj_open(j, NULL);
	json_str(j, "queue", route_shown_name(op->queue));
	json_int(j, "ready", (long long)s->ready);
	json_int(j, "leased", (long long)s->leased);
	json_int(j, "oldest_ready_age", age);
	json_int(j, "enqueued", (long long)s->enqueued);
	json_int(j, "claimed", (long long)s->claimed);
	json_int(j, "acked", (long long)s->acked);
	json_int(j, "released", (long long)s->released);
	json_int(j, "removed", (long long)s->removed);
	json_int(j, "expired", (long long)s->expired);
	json_int(j, "dead", (long long)s->dead);
	json_int(j, "redriven", (long long)s->redriven);
	render_config_fields(j, &s->config);
	json_arr_open(j, "claims_per_minute");
	for (int i = 0; i < CLAIM_RATE_MINUTES; i++)
		json_int(j, NULL, op->res.claims_per_minute[i]);
	json_arr_close(j);
}

static void
render(struct json *j, const struct queue_op *op)
{
	switch (op->kind) {
	case QOP_ENQUEUE: render_enqueue(j, op); break;
	case QOP_CLAIM:
	case QOP_POP:     render_claim(j, op); break;
	case QOP_ACK:     render_simple(j, "acked", op); break;
	case QOP_RELEASE: render_simple(j, "released", op); break;
	case QOP_REMOVE:  render_simple(j, "removed", op); break;
	case QOP_STATUS:  render_status(j, op); break;
	case QOP_STATS:   render_stats(j, op); break;
	case QOP_REDRIVE: render_redrive(j, op); break;
	case QOP_CONFIG:  render_config(j, op); break;
	}
	json_obj_close(j);
}

static void
render_cb(void *arg, struct json *j)
{
	render(j, &((struct queue_call *)arg)->op);
}

static enum casq_err
apply_cb(struct store *st, MDB_txn *txn, void *arg)
{
	return queue_apply(st, txn, &((struct queue_call *)arg)->op);
}

static void
queue_call_free(void *arg)
{
	struct queue_call *c = arg;

	queue_result_free(&c->op.res);
	buf_free(&c->payload);
	buf_free(&c->annotations);
	free(c);
}

/* Claims, pops, acks, releases and removes free data when they succeed;
 * see route_op.drained. */
static bool
queue_drained(const void *arg)
{
	return ((const struct queue_call *)arg)->op.res.ok;
}

static void
queue_route(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct queue_call *c = xcalloc(1, sizeof *c);
	enum queue_op_kind kind = (enum queue_op_kind)route->kind;
	enum casq_err err;

	c->op = (struct queue_op){ .kind = kind, .now = req->now,
	    .queue = req->scoped, .max_items = route_max_items(app, req),
	    .claimant = "", .request_id = route_request_id(req) };
	if ((err = queue_op_params(req, &c->op, &c->payload)) == E_OK &&
	    queue_op_writes(&c->op))	/* what its history records */
		err = param_annotations(req, &c->annotations);
	c->op.annotations = c->annotations.data;
	c->op.annotations_len = c->annotations.len;
	if (err != E_OK) {
		response_error(res, err);
		queue_call_free(c);
		return;
	}
	route_exec(app, req, res, &(struct route_op){
	    .write = queue_op_writes(&c->op), .apply = apply_cb,
	    .render = render_cb, .free_op = queue_call_free, .op = c,
	    .drained = kind == QOP_ENQUEUE || kind == QOP_REDRIVE ||
	    kind == QOP_CONFIG ? NULL : queue_drained,
	    .now = &c->op.now });
}

/* --- the rows (route.c's table points at them) --- */

#define QUEUE_ROUTE(path, op, ...) { .pattern = "/v1/queues/*" path, \
	.exec = queue_route, .kind = op, .auth = true, .bad_name = E_BAD_QUEUE, \
	.params = (const char *const[]){ __VA_ARGS__, NULL } }

const struct route_entry route_enqueue_entry =
	QUEUE_ROUTE("/enqueue", QOP_ENQUEUE, "key", "payload", "delay");
const struct route_entry route_claim_entry =
	QUEUE_ROUTE("/claim", QOP_CLAIM, "key", "claimant", "lease");
const struct route_entry route_pop_entry =
	QUEUE_ROUTE("/pop", QOP_POP, "claimant", "lease", "bind");
const struct route_entry route_ack_entry =
	QUEUE_ROUTE("/ack", QOP_ACK, "key", "token", "claimant");
const struct route_entry route_release_entry =
	QUEUE_ROUTE("/release", QOP_RELEASE, "key", "token", "claimant", "delay");
const struct route_entry route_remove_entry =
	QUEUE_ROUTE("/remove", QOP_REMOVE, "key");
const struct route_entry route_status_entry =
	QUEUE_ROUTE("/status", QOP_STATUS, "key");
const struct route_entry route_redrive_entry =
	QUEUE_ROUTE("/redrive", QOP_REDRIVE, "key", "all");
const struct route_entry route_queue_config_entry =
	QUEUE_ROUTE("/config", QOP_CONFIG, "lease", "max_attempts", "bind_days");
const struct route_entry route_queue_stats_entry = {
	.pattern = "/v1/queues/*", .exec = queue_route, .kind = QOP_STATS,
	.auth = true, .bad_name = E_BAD_QUEUE,
	.params = (const char *const[]){ NULL },
};
