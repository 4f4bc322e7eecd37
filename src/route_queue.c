/*
 * route_queue.c - the queue routes: parameters in, a queue_op through
 * storage, one line of JSON out with the outcome key first. claim takes
 * the named item only; taking the next one is pop, a route of its own, so
 * no slip in a template can turn one into the other.
 */
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
	json_str(j, "state", item_state_name(op->res.state));
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
	else if (op->kind == QOP_RELEASE)
		json_str(j, "state", item_state_name(op->res.state));
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
	if (r->state == ITEM_READY || r->state == ITEM_LEASED) {
		json_time(j, "enqueued_at", r->enqueued_at);
		json_time(j, "ready_at", r->ready_at);
	}
	if (r->state == ITEM_LEASED)
		json_time(j, "lease_expires_at", r->lease_expires_at);
	if (r->state == ITEM_CLAIMED)
		json_time(j, "claimed_at", r->claimed_at);
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
	    .drained = kind == QOP_ENQUEUE ? NULL : queue_drained,
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
	QUEUE_ROUTE("/pop", QOP_POP, "claimant", "lease");
const struct route_entry route_ack_entry =
	QUEUE_ROUTE("/ack", QOP_ACK, "key", "token", "claimant");
const struct route_entry route_release_entry =
	QUEUE_ROUTE("/release", QOP_RELEASE, "key", "token", "claimant", "delay");
const struct route_entry route_remove_entry =
	QUEUE_ROUTE("/remove", QOP_REMOVE, "key");
const struct route_entry route_status_entry =
	QUEUE_ROUTE("/status", QOP_STATUS, "key");
const struct route_entry route_queue_stats_entry = {
	.pattern = "/v1/queues/*", .exec = queue_route, .kind = QOP_STATS,
	.auth = true, .bad_name = E_BAD_QUEUE,
	.params = (const char *const[]){ NULL },
};
