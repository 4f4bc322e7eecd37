/*
 * ctl_items.c - casqctl items QUEUE [--state S] and show QUEUE KEY: a
 * queue's items in key order, and one item with its claim record, read
 * in one read transaction as the API's status would answer.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* Payload text shown in a table row; `show` prints it whole. */
#define PAYLOAD_SHOWN	40

struct items {
	struct ctl      *c;
	int              state;		/* ITEM_READY, ITEM_LEASED, ITEM_DEAD, or -1: every one */
	struct json      j;
	struct ctl_table t;
};

static void
item_json(struct json *j, const struct queue_walk_item *it)
{
	json_obj_open(j, NULL);
	json_strn(j, "key", it->key, it->key_len);
	json_str(j, "state", item_state_name(it->state));
	json_int(j, "attempts", it->attempts);
	json_time(j, "enqueued_at", it->enqueued_at);
	json_time(j, "ready_at", it->ready_at);
	if (it->state == ITEM_LEASED) {
		json_time(j, "lease_expires_at", it->lease_until);
		json_strn(j, "owner", it->claimant, it->claimant_len);
	}
	if (it->payload_len)
		json_raw(j, "payload", it->payload, it->payload_len);
	else
		json_raw(j, "payload", "null", 4);
	json_obj_close(j);
}

static bool
one_item(void *arg, const struct queue_walk_item *it)
{
	struct items *s = arg;
	char at[32];

	if (s->state >= 0 && it->state != (enum item_state)s->state)
		return true;
	if (s->c->json) {
		item_json(&s->j, it);
		return true;
	}
	ctl_cell(&s->t, "%.*s", (int)it->key_len, it->key);
	ctl_cell(&s->t, "%s", item_state_name(it->state));
	ctl_cell(&s->t, "%u", it->attempts);
	ctl_cell(&s->t, "%s", ctl_time(it->enqueued_at, at));
	ctl_cell(&s->t, "%s", ctl_time(it->ready_at, at));
	if (it->state == ITEM_LEASED) {
		ctl_cell(&s->t, "%s", ctl_time(it->lease_until, at));
		ctl_cell(&s->t, "%.*s", (int)it->claimant_len, it->claimant);
	} else {
		ctl_cell(&s->t, "-");
		ctl_cell(&s->t, "-");
	}
	if (it->payload_len == 0)
		ctl_cell(&s->t, "-");
	else if (it->payload_len > PAYLOAD_SHOWN)
		ctl_cell(&s->t, "%.*s...", PAYLOAD_SHOWN, it->payload);
	else
		ctl_cell(&s->t, "%.*s", (int)it->payload_len, it->payload);
	return true;
}

/* The queue's counters (a read transaction's queue_op): E_NO_QUEUE
 * when it does not exist. */
static enum casq_err
queue_exists(struct store *st, MDB_txn *txn, const char *scoped)
{
	struct queue_op op = { .kind = QOP_STATS, .now = clock_now_ms(), .queue = scoped };
	enum casq_err err = queue_apply(st, txn, &op);

	queue_result_free(&op.res);
	return err;
}

static int
items_exec(struct ctl *c, int argc, char **argv)
{
	static const struct option own[] = {
		{ "state", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const head[] = { "KEY", "STATE", "ATTEMPTS", "ENQUEUED",
	    "READY_AT", "LEASE_UNTIL", "OWNER", "PAYLOAD" };
	struct items s = { .c = c, .state = -1 };
	char scoped[QUEUE_NAME_MAX + 1];
	struct buf b = { 0 };
	enum casq_err err;
	MDB_txn *txn;
	int opt, rc;

	while ((opt = ctl_getopt(c, argc, argv, own)) != -1) {
		if (opt == 's' && strcmp(optarg, "ready") == 0)
			s.state = ITEM_READY;
		else if (opt == 's' && strcmp(optarg, "leased") == 0)
			s.state = ITEM_LEASED;
		else if (opt == 's' && strcmp(optarg, "dead") == 0)
			s.state = ITEM_DEAD;
		else
			return ctl_usage(&ctl_items_cmd);
	}
	if (optind != argc - 1)
		return ctl_usage(&ctl_items_cmd);
	if (!ctl_scoped(c, argv[optind], scoped))
		return CTL_USAGE;
	if ((rc = ctl_open(c, NULL)) != CTL_OK)
		return rc;
	json_begin(&s.j, &b);
	if (c->json) {
		json_obj_open(&s.j, NULL);
		json_str(&s.j, "tenant", c->tenant);
		json_str(&s.j, "queue", argv[optind]);
		json_arr_open(&s.j, "items");
	} else {
		ctl_table_init(&s.t, sizeof head / sizeof head[0], head);
	}
	if ((err = store_begin(c->st, false, &txn)) == E_OK) {
		if ((err = queue_exists(c->st, txn, scoped)) == E_OK)
			err = queue_walk(c->st, txn, scoped, NULL, clock_now_ms(), one_item, &s);
		mdb_txn_abort(txn);
	}
	ctl_close(c);
	if (!c->json) {
		ctl_table_print(&s.t);
	} else if (err == E_OK) {
		json_arr_close(&s.j);
		json_obj_close(&s.j);
		ctl_print_json(&b);
	}
	buf_free(&b);
	if (err == E_NO_QUEUE)
		return ctl_fail(CTL_FAILED, "no queue %s in tenant %s", argv[optind], c->tenant);
	if (err != E_OK)
		return ctl_fail(CTL_USAGE, "%s: cannot read the database", c->data);
	return CTL_OK;
}

const struct ctl_cmd ctl_items_cmd = {
	.name = "items", .args = "QUEUE [--state ready|leased|dead]", .exec = items_exec,
	.about = "a queue's items in key order (a lease that ran out shows ready)",
};

/* --- show --- */

struct shown {
	const struct ctl *c;
	const char *key;
	struct buf  payload;
	size_t      events;
	struct buf  history;		/* --json: events as the API writes them; else lines */
	struct json j;
};

static bool
payload_of(void *arg, const struct queue_walk_item *it)
{
	struct shown *s = arg;

	if (it->key_len == strlen(s->key) && memcmp(it->key, s->key, it->key_len) == 0)
		buf_append(&s->payload, it->payload, it->payload_len);
	return false;		/* the first key at or after s->key is the one */
}

/* One event: the history route's JSON, or a line for people. */
static void
event_of(void *arg, const struct history_event *ev)
{
	struct shown *s = arg;
	char at[32];

	s->events++;
	if (s->c->json) {
		route_history_event(&s->j, ev, false);
		return;
	}
	iso8601_ms(ev->at, at);
	buf_printf(&s->history, "  %s  %s", at, history_kind_name(ev->kind));
	if (ev->claimant_len > 0)
		buf_printf(&s->history, " claimant=%.*s", (int)ev->claimant_len, ev->claimant);
	if (ev->attempt > 0)
		buf_printf(&s->history, " attempt=%u", ev->attempt);
	if (ev->token != NULL)
		buf_printf(&s->history, " token=%s", ev->token);
	if (ev->request_id != NULL)
		buf_printf(&s->history, " request_id=%s", ev->request_id);
	if (ev->annotations_len > 0)
		buf_printf(&s->history, " {%.*s}", (int)ev->annotations_len, ev->annotations);
	buf_append(&s->history, "\n", 1);
}

static void
show_print(const struct ctl *c, const char *queue, const struct queue_op *op,
    const struct shown *s)
{
	const struct queue_result *r = &op->res;
	bool queued = r->state == ITEM_READY || r->state == ITEM_LEASED ||
	    r->state == ITEM_DEAD;
	const struct buf *payload = &s->payload;
	struct buf b = { 0 };
	struct json j;
	char at[32];

	if (!c->json) {
		printf("tenant            %s\nqueue             %s\nkey               %s\n"
		    "state             %s\nattempts          %u\nowner             %s\n",
		    c->tenant, queue, op->key, item_state_name(r->state), r->attempts,
		    r->has_owner ? r->owner : "-");
		printf("enqueued_at       %s\n", queued ? ctl_time(r->enqueued_at, at) : "-");
		printf("ready_at          %s\n", queued ? ctl_time(r->ready_at, at) : "-");
		printf("lease_expires_at  %s\n", r->state == ITEM_LEASED ?
		    ctl_time(r->lease_expires_at, at) : "-");
		printf("claimed_at        %s\n", r->state == ITEM_CLAIMED ?
		    ctl_time(r->claimed_at, at) : "-");
		printf("payload           %.*s\n", payload->len ? (int)payload->len : 4,
		    payload->len ? payload->data : (queued ? "null" : "-"));
		printf("history           %zu event(s)\n%.*s", s->events,
		    (int)s->history.len, s->history.data ? s->history.data : "");
		return;
	}
	json_begin(&j, &b);
	json_obj_open(&j, NULL);
	json_str(&j, "tenant", c->tenant);
	json_str(&j, "queue", queue);
	json_str(&j, "key", op->key);
	json_str(&j, "state", item_state_name(r->state));
	json_int(&j, "attempts", r->attempts);
	if (r->has_owner)
		json_str(&j, "owner", r->owner);
	if (queued) {
		json_time(&j, "enqueued_at", r->enqueued_at);
		json_time(&j, "ready_at", r->ready_at);
		json_raw(&j, "payload", payload->len ? payload->data : "null",
		    payload->len ? payload->len : 4);
	}
	if (r->state == ITEM_LEASED)
		json_time(&j, "lease_expires_at", r->lease_expires_at);
	if (r->state == ITEM_CLAIMED)
		json_time(&j, "claimed_at", r->claimed_at);
	json_raw(&j, "history", s->history.data, s->history.len);
	json_obj_close(&j);
	ctl_print_json(&b);
	buf_free(&b);
}

/* The item (with its payload) or its claim record, and its history, in
 * one read transaction. */
static enum casq_err
show_read(struct ctl *c, const char *scoped, struct queue_op *op, struct shown *s)
{
	enum casq_err err;
	MDB_txn *txn;

	if ((err = store_begin(c->st, false, &txn)) != E_OK)
		return err;
	if ((err = queue_apply(c->st, txn, op)) == E_OK && op->res.ok)
		err = queue_walk(c->st, txn, scoped, op->key, op->now, payload_of, s);
	if (err == E_OK && op->res.reason != REFUSAL_NO_SUCH_QUEUE) {
		json_begin(&s->j, &s->history);
		if (c->json)
			json_arr_open(&s->j, NULL);
		err = history_list(c->st, txn, scoped, op->key, HISTORY_PER_ITEM, event_of, s);
		if (c->json)
			json_arr_close(&s->j);
	}
	mdb_txn_abort(txn);
	return err;
}

static int
show_exec(struct ctl *c, int argc, char **argv)
{
	char scoped[QUEUE_NAME_MAX + 1];
	struct queue_op op = { .kind = QOP_STATUS, .now = clock_now_ms(), .queue = scoped };
	struct shown s = { .c = c };
	enum casq_err err;
	int rc;

	if (ctl_getopt(c, argc, argv, NULL) != -1 || optind != argc - 2)
		return ctl_usage(&ctl_show_cmd);
	s.key = op.key = argv[optind + 1];
	if (!ctl_scoped(c, argv[optind], scoped))
		return CTL_USAGE;
	if (*op.key == '\0' || strlen(op.key) > ITEM_KEY_MAX)
		return ctl_fail(CTL_USAGE, "bad key: 1-%d bytes", ITEM_KEY_MAX);
	if ((rc = ctl_open(c, NULL)) != CTL_OK)
		return rc;
	err = show_read(c, scoped, &op, &s);
	ctl_close(c);
	rc = CTL_OK;
	if (err != E_OK)
		rc = ctl_fail(CTL_USAGE, "%s: cannot read the database", c->data);
	else if (op.res.reason == REFUSAL_NO_SUCH_QUEUE)
		rc = ctl_fail(CTL_FAILED, "no queue %s in tenant %s", argv[optind], c->tenant);
	else if (op.res.state == ITEM_ABSENT && s.events == 0)
		rc = ctl_fail(CTL_FAILED, "%s: no item %s, no claim record, no history",
		    argv[optind], op.key);
	else
		show_print(c, argv[optind], &op, &s);
	queue_result_free(&op.res);
	buf_free(&s.payload);
	buf_free(&s.history);
	return rc;
}

const struct ctl_cmd ctl_show_cmd = {
	.name = "show", .args = "QUEUE KEY", .exec = show_exec,
	.about = "one item (state, times, owner, payload) or a consumed one's claim record, and its history",
};
