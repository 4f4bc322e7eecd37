/*
 * route_queue.c - the queue routes: parameters in, a queue_op through
 * storage, one line of JSON out with the outcome key first.
 */
#include <string.h>

#include "http.h"
#include "store.h"

#define LEASE_MAX_MS	(604800LL * 1000)	/* a week: longer is a lost item */
#define DELAY_MAX_MS	(31536000LL * 1000)	/* a year */

/* A text parameter: NULL when absent, else checked as UTF-8 without NUL
 * and within max bytes (min 1 when required). */
static enum casq_err
param_text(const struct request *req, const char *name, size_t max,
    enum casq_err bad, const char **out)
{
	const struct param *p = request_param(req, name);

	*out = NULL;
	if (p == NULL)
		return E_OK;
	if (p->kind == PARAM_JSON || p->len > max || strlen(p->value) != p->len ||
	    !utf8_valid(p->value, p->len))
		return bad;
	*out = p->value;
	return E_OK;
}

static enum casq_err
param_key(const struct request *req, const char **key)
{
	enum casq_err err = param_text(req, "key", ITEM_KEY_MAX, E_BAD_KEY, key);

	if (err == E_OK && *key == NULL)
		return E_MISSING_KEY;
	if (err == E_OK && **key == '\0')
		return E_BAD_KEY;
	return err;
}

/* Seconds as ms within (min, max]; min_exclusive for leases, which must
 * be more than zero. Absent leaves *ms untouched. */
static enum casq_err
param_seconds(const struct request *req, const char *name, bool positive,
    int64_t max_ms, enum casq_err bad, int64_t *ms)
{
	const struct param *p = request_param(req, name);
	int64_t v;

	if (p == NULL)
		return E_OK;
	if ((p->kind != PARAM_STRING && p->kind != PARAM_NUMBER) ||
	    !parse_seconds_ms(p->value, &v) || v > max_ms || (positive && v == 0))
		return bad;
	*ms = v;
	return E_OK;
}

/* The payload as compact JSON text: JSON-body values as given, anything
 * from a form or query as a JSON string. */
static enum casq_err
param_payload(const struct request *req, struct buf *out)
{
	const struct param *p = request_param(req, "payload");
	struct json j;

	if (p == NULL)
		return E_OK;
	if (p->kind == PARAM_STRING) {
		if (strlen(p->value) != p->len || !utf8_valid(p->value, p->len))
			return E_BAD_PAYLOAD;
		json_begin(&j, out);
		json_strn(&j, NULL, p->value, p->len);
	} else {
		buf_append(out, p->value, p->len);
	}
	return out->len > PAYLOAD_MAX ? E_PAYLOAD_TOO_LARGE : E_OK;
}

static enum casq_err
queue_op_params(const struct request *req, struct queue_op *op,
    struct buf *payload)
{
	enum casq_err err = E_OK;
	const char *claimant = NULL;

	switch (op->kind) {
	case QOP_ENQUEUE:
		if ((err = param_key(req, &op->key)) == E_OK &&
		    (err = param_payload(req, payload)) == E_OK)
			err = param_seconds(req, "delay", false, DELAY_MAX_MS,
			    E_BAD_DELAY, &op->delay_ms);
		op->payload = payload->data;
		op->payload_len = payload->len;
		break;
	case QOP_CLAIM:
		if ((err = param_text(req, "key", ITEM_KEY_MAX, E_BAD_KEY, &op->key)) == E_OK &&
		    (err = param_text(req, "claimant", CLAIMANT_MAX, E_BAD_CLAIMANT, &claimant)) == E_OK)
			err = param_seconds(req, "lease", true, LEASE_MAX_MS,
			    E_BAD_LEASE, &op->lease_ms);
		if (err == E_OK && op->key != NULL && *op->key == '\0')
			err = E_BAD_KEY;
		op->claimant = claimant ? claimant : "";
		break;
	case QOP_RELEASE:
		err = param_seconds(req, "delay", false, DELAY_MAX_MS,
		    E_BAD_DELAY, &op->delay_ms);
		/* FALLTHROUGH */
	case QOP_ACK:
		if (err == E_OK && (err = param_key(req, &op->key)) == E_OK &&
		    (err = param_text(req, "token", 128, E_BAD_PARAM, &op->token)) == E_OK &&
		    op->token == NULL)
			err = E_MISSING_TOKEN;
		break;
	case QOP_REMOVE:
	case QOP_STATUS:
		err = param_key(req, &op->key);
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
	json_str(j, "queue", op->queue);
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
		json_str(j, "reason", r->reason);
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
		json_str(j, "reason", op->res.reason);
	else if (op->kind == QOP_RELEASE)
		json_str(j, "state", item_state_name(op->res.state));
}

static void
render_status(struct json *j, const struct queue_op *op)
{
	const struct queue_result *r = &op->res;

	render_head(j, "queued", op);
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
	json_str(j, "queue", op->queue);
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
	case QOP_CLAIM:   render_claim(j, op); break;
	case QOP_ACK:     render_simple(j, "acked", op); break;
	case QOP_RELEASE: render_simple(j, "released", op); break;
	case QOP_REMOVE:  render_simple(j, "removed", op); break;
	case QOP_STATUS:  render_status(j, op); break;
	case QOP_STATS:   render_stats(j, op); break;
	}
	json_obj_close(j);
}

static void
queue_route(struct app *app, struct request *req, struct response *res,
    enum queue_op_kind kind)
{
	struct queue_op op = { .kind = kind, .now = req->now, .queue = req->queue,
	    .claimant = "" };
	struct buf payload = { 0 };
	enum casq_err err;
	struct json j;

	if ((err = queue_op_params(req, &op, &payload)) == E_OK)
		err = store_run_queue_op(app->store, &op);
	if (err != E_OK) {
		response_error(res, err);
	} else {
		response_ok(res);
		json_begin(&j, &res->body);
		render(&j, &op);
	}
	queue_result_free(&op.res);
	buf_free(&payload);
}

void route_enqueue(struct app *a, struct request *q, struct response *r)     { queue_route(a, q, r, QOP_ENQUEUE); }
void route_claim(struct app *a, struct request *q, struct response *r)       { queue_route(a, q, r, QOP_CLAIM); }
void route_ack(struct app *a, struct request *q, struct response *r)         { queue_route(a, q, r, QOP_ACK); }
void route_release(struct app *a, struct request *q, struct response *r)     { queue_route(a, q, r, QOP_RELEASE); }
void route_remove(struct app *a, struct request *q, struct response *r)      { queue_route(a, q, r, QOP_REMOVE); }
void route_status(struct app *a, struct request *q, struct response *r)      { queue_route(a, q, r, QOP_STATUS); }
void route_queue_stats(struct app *a, struct request *q, struct response *r) { queue_route(a, q, r, QOP_STATS); }
