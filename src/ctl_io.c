/*
 * ctl_io.c - casqctl export and import. export writes NDJSON, one line
 * per queued item and per value, from one read transaction (a snapshot).
 * import reads that back, or a CSV list exported from Marketo, and
 * enqueues each item (sets each value) through the store's own
 * operations, queue_apply and kv_apply, after checking every field with
 * the routes' parameter readers: the same limits, quotas and refusals as
 * an enqueue through the API, and an item queued already stays as it is.
 * Refused lines are reported by number; the rest is imported.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/*
 * Operations per write transaction. import takes LMDB's writer lock for
 * each transaction, and while it holds it casqd's committer waits: 2,000
 * enqueues take about 5 ms here (the commit's flushes included), so a
 * webhook's answer waits at most that much once. A 1,000,000-row CSV
 * took 5.1 s with 500 a transaction, 3.7 s with 2,000 and 3.7 s with
 * 10,000: past 2,000 the flushes are no longer what costs.
 */
#define IMPORT_TXN_OPS		2000
/* Refused lines listed one by one (all are counted). */
#define IMPORT_LISTED_MAX	1000
/* The keys file casqd.service reads: import keeps to its quotas. */
#define CTL_DEFAULT_KEYS	"/etc/casq/keys"

/* "2026-11-26T21:58:01Z" (what export writes) into ms. */
static bool
parse_time(const char *s, int64_t *ms)
{
	struct tm tm = { 0 };
	char z = 0;
	int n = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c%n", &tm.tm_year, &tm.tm_mon,
	    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z, &n) != 7 ||
	    z != 'Z' || s[n] != '\0')
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ms = (int64_t)timegm(&tm) * 1000;
	return true;
}

/*----------------------------------------------------------------------------
 * export
 *--------------------------------------------------------------------------*/

struct exporter {
	struct ctl *c;
	MDB_txn    *txn;
	const char *prefix;		/* queue_list's, which names leave out */
	const char *tenant;		/* of the queue being written */
	size_t      tenant_len;
	const char *queue;		/* its name without the tenant */
	int64_t     now;
	struct buf  line;
	size_t      items, values;
	enum casq_err err;
};

static void
line_out(struct exporter *x)
{
	buf_append(&x->line, "\n", 1);
	fwrite(x->line.data, 1, x->line.len, stdout);
	x->line.len = 0;
}

static bool
export_item(void *arg, const struct queue_walk_item *it)
{
	struct exporter *x = arg;
	struct json j;

	json_begin(&j, &x->line);
	json_obj_open(&j, NULL);
	json_str(&j, "type", "item");
	json_strn(&j, "tenant", x->tenant, x->tenant_len);
	json_str(&j, "queue", x->queue);
	json_strn(&j, "key", it->key, it->key_len);
	json_str(&j, "state", item_state_name(it->state));
	json_int(&j, "attempts", it->attempts);
	json_time(&j, "enqueued_at", it->enqueued_at);
	json_time(&j, "ready_at", it->ready_at);
	if (it->state == ITEM_LEASED) {
		json_time(&j, "lease_expires_at", it->lease_until);
		json_strn(&j, "owner", it->claimant, it->claimant_len);
	}
	if (it->payload_len)
		json_raw(&j, "payload", it->payload, it->payload_len);
	json_obj_close(&j);
	line_out(x);
	x->items++;
	return true;
}

static void
export_queue(void *arg, const char *name, size_t len, const struct queue_stats *qs)
{
	struct exporter *x = arg;
	char scoped[QUEUE_NAME_MAX + 1];

	if (x->err != E_OK)
		return;
	snprintf(scoped, sizeof scoped, "%s%.*s", x->prefix, (int)len, name);
	x->tenant = scoped;
	x->tenant_len = tenant_len(scoped);
	x->queue = route_shown_name(scoped);
	x->err = queue_walk(x->c->st, x->txn, scoped, NULL, x->now, export_item, x);
}

static void
export_value(void *arg, const struct kv_value *v)
{
	struct exporter *x = arg;
	size_t tl = 0;
	struct json j;

	if (v->expires_at != 0 && v->expires_at <= x->now)
		return;		/* gone, though not swept yet */
	while (tl < v->ns_len && v->ns[tl] != ':')
		tl++;
	json_begin(&j, &x->line);
	json_obj_open(&j, NULL);
	json_str(&j, "type", "value");
	json_strn(&j, "tenant", v->ns, tl);
	json_strn(&j, "namespace", v->ns + tl + 1, v->ns_len - tl - 1);
	json_strn(&j, "key", v->key, v->key_len);
	json_int(&j, "version", (long long)v->version);
	json_time(&j, "updated_at", v->updated_at);
	if (v->expires_at)
		json_time(&j, "expires_at", v->expires_at);
	json_raw(&j, "value", v->value, v->value_len);
	json_obj_close(&j);
	line_out(x);
	x->values++;
}

static int
export_exec(struct ctl *c, int argc, char **argv)
{
	static const struct option own[] = {
		{ "queue", required_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct exporter x = { .c = c, .now = clock_now_ms(), .prefix = "" };
	char scoped[QUEUE_NAME_MAX + 1], prefix[TENANT_NAME_MAX + 2];
	const char *queue = NULL;
	int opt, rc;

	while ((opt = ctl_getopt(c, argc, argv, own)) != -1) {
		if (opt != 'q')
			return ctl_usage(&ctl_export_cmd);
		queue = optarg;
	}
	if (optind != argc || (queue && !ctl_scoped(c, queue, scoped)))
		return ctl_usage(&ctl_export_cmd);
	if ((rc = ctl_open(c, NULL)) != CTL_OK)
		return rc;
	if ((x.err = store_begin(c->st, false, &x.txn)) == E_OK) {
		if (queue) {
			/* the queue alone: its stats record says it exists */
			struct queue_op op = { .kind = QOP_STATS, .now = x.now, .queue = scoped };

			if ((x.err = queue_apply(c->st, x.txn, &op)) == E_OK)
				export_queue(&x, scoped, strlen(scoped), NULL);
		} else {
			x.prefix = ctl_prefix(c, prefix);
			x.err = queue_list(c->st, x.txn, x.prefix, NULL, SIZE_MAX, export_queue, &x);
			if (x.err == E_OK)
				x.err = kv_values(c->st, x.txn, x.prefix, export_value, &x);
		}
		mdb_txn_abort(x.txn);
	}
	ctl_close(c);
	buf_free(&x.line);
	if (fflush(stdout) != 0)
		return ctl_fail(CTL_USAGE, "export: %s", strerror(errno));
	if (x.err == E_NO_QUEUE)
		return ctl_fail(CTL_FAILED, "no queue %s in tenant %s", queue, c->tenant);
	if (x.err != E_OK)
		return ctl_fail(CTL_USAGE, "%s: cannot read the database", c->data);
	fprintf(stderr, "casqctl: exported %zu item(s), %zu value(s)\n", x.items, x.values);
	return CTL_OK;
}

const struct ctl_cmd ctl_export_cmd = {
	.name = "export", .args = "[--queue QUEUE]", .exec = export_exec,
	.about = "NDJSON on stdout: every queued item (and, without --queue, every value)",
};

/*----------------------------------------------------------------------------
 * import: the transactions, the counts, the refusals
 *--------------------------------------------------------------------------*/

struct counts {
	size_t added, present;
};

struct importer {
	struct ctl     *c;
	struct keyring *keys;		/* the tenants' quotas */
	MDB_txn        *txn;		/* the open write transaction, or NULL */
	size_t          ops;		/* applied in it */
	int64_t         now;		/* read once it began, the writer lock held */
	struct counts   done, pending;	/* committed; in the open transaction */
	size_t          refused;
	struct buf      refusals;	/* --json: the listed ones, a JSON array */
	struct json     j;
	enum casq_err   err;		/* a storage error: the import stops */
};

/* A refused line: err's reason phrase (as the API would answer), or
 * what (for what only casqctl checks), and one detail. */
static void
refuse(struct importer *im, unsigned long line, enum casq_err err,
    const char *what, const char *detail)
{
	const char *reason = err != E_OK ? err_reason(err) : what;

	if (im->refused++ >= IMPORT_LISTED_MAX)
		return;
	if (!im->c->json) {
		printf("line %lu: refused: %s%s%s\n", line, reason, detail ? ": " : "",
		    detail ? detail : "");
		return;
	}
	json_obj_open(&im->j, NULL);
	json_int(&im->j, "line", (long long)line);
	json_str(&im->j, "reason", reason);
	if (err != E_OK)
		json_str(&im->j, "code", err_code(err));
	if (detail)
		json_str(&im->j, "detail", detail);
	json_obj_close(&im->j);
}

/* The open write transaction, begun if there is none; false once a
 * storage error stopped the import. */
static bool
txn_ready(struct importer *im)
{
	if (im->err != E_OK)
		return false;
	if (im->txn != NULL)
		return true;
	if ((im->err = store_begin(im->c->st, true, &im->txn)) != E_OK)
		return false;
	im->now = clock_now_ms();	/* as casqd's ops: read inside the transaction */
	return true;
}

/* Commit the open transaction; its counts become the committed ones. */
static void
txn_end(struct importer *im)
{
	if (im->txn == NULL)
		return;
	if ((im->err = store_commit(im->txn)) == E_OK) {
		im->done.added += im->pending.added;
		im->done.present += im->pending.present;
	}
	im->txn = NULL;
	im->ops = 0;
	im->pending = (struct counts){ 0 };
}

/* An operation's outcome: counted, refused (the refusals an enqueue
 * through the API gets, decided before any write), or a storage error
 * that drops the open transaction and stops the import. */
static void
op_result(struct importer *im, unsigned long line, enum casq_err err, bool added)
{
	if (err == E_OK) {
		if (added)
			im->pending.added++;
		else
			im->pending.present++;
		if (++im->ops == IMPORT_TXN_OPS)
			txn_end(im);
	} else if (err == E_QUOTA_EXCEEDED || err == E_SPACE_REFUSED) {
		refuse(im, line, err, NULL, NULL);
	} else {
		mdb_txn_abort(im->txn);
		im->txn = NULL;
		im->pending = (struct counts){ 0 };
		im->err = err;
	}
}

/*----------------------------------------------------------------------------
 * import: one item, one value, as the API's enqueue and set take them
 *--------------------------------------------------------------------------*/

/* Enqueue req's key and payload into tenant's queue; ready_at 0: now. */
static void
import_item(struct importer *im, unsigned long line, const char *tenant,
    const char *queue, const struct request *req, int64_t ready_at)
{
	char scoped[QUEUE_NAME_MAX + 1];
	struct queue_op op = { .kind = QOP_ENQUEUE, .queue = scoped, .claimant = "",
	    .max_items = keyring_max_items(im->keys, tenant), .no_follow_up = true };
	struct buf payload = { 0 };
	enum casq_err err;

	snprintf(scoped, sizeof scoped, "%s:%s", tenant, queue);
	if ((err = param_key(req, "key", &op.key)) != E_OK ||
	    (err = param_json_value(req, "payload", E_BAD_PAYLOAD,
	    E_PAYLOAD_TOO_LARGE, &payload)) != E_OK) {
		refuse(im, line, err, NULL, NULL);
	} else if (txn_ready(im)) {
		op.now = im->now;
		op.delay_ms = ready_at > im->now ? ready_at - im->now : 0;
		op.payload = payload.data;
		op.payload_len = payload.len;
		err = queue_apply(im->c->st, im->txn, &op);
		op_result(im, line, err, op.res.ok);
	}
	queue_result_free(&op.res);
	buf_free(&payload);
}

/* Set req's key to its value in tenant's namespace, unless it has one. */
static void
import_value(struct importer *im, unsigned long line, const char *tenant,
    const char *ns, const struct request *req, int64_t expires_at)
{
	char scoped[QUEUE_NAME_MAX + 1];
	struct kv_op get = { .kind = KV_GET, .ns = scoped };
	struct kv_op set = { .kind = KV_SET, .ns = scoped, .has_cas = true, .cas = 0,
	    .max_items = keyring_max_items(im->keys, tenant) };
	struct buf value = { 0 };
	enum casq_err err;

	snprintf(scoped, sizeof scoped, "%s:%s", tenant, ns);
	if ((err = param_key(req, "key", &set.key)) != E_OK ||
	    (err = param_json_value(req, "value", E_BAD_VALUE, E_VALUE_TOO_LARGE,
	    &value)) != E_OK ||
	    (request_param(req, "value") == NULL && (err = E_MISSING_VALUE))) {
		refuse(im, line, err, NULL, NULL);
	} else if (txn_ready(im) && expires_at != 0 && expires_at <= im->now) {
		refuse(im, line, E_OK, "expired", NULL);
	} else if (im->txn != NULL) {
		get.key = set.key;
		get.now = set.now = im->now;
		set.value = value.data;
		set.value_len = value.len;
		set.ttl_ms = expires_at ? expires_at - im->now : 0;
		if ((err = kv_apply(im->c->st, im->txn, &get)) == E_OK && !get.res.ok)
			err = kv_apply(im->c->st, im->txn, &set);
		op_result(im, line, err, !get.res.ok && set.res.ok);
	}
	kv_result_free(&get.res);
	kv_result_free(&set.res);
	buf_free(&value);
}

/*----------------------------------------------------------------------------
 * import: NDJSON (export's lines) and CSV (a Marketo list)
 *--------------------------------------------------------------------------*/

/* The members export writes; any other is refused, as the API refuses a
 * parameter it does not take. */
static const char *const item_members[] = { "type", "tenant", "queue", "key",
	"state", "attempts", "enqueued_at", "ready_at", "lease_expires_at", "owner",
	"payload", NULL };
static const char *const value_members[] = { "type", "tenant", "namespace", "key",
	"version", "updated_at", "expires_at", "value", NULL };

static const char *
unknown_member(const struct request *req, const char *const *known)
{
	for (size_t i = 0; i < req->nparams; i++) {
		const char *const *k = known;

		while (*k && strcmp(*k, req->params[i].name) != 0)
			k++;
		if (*k == NULL)
			return req->params[i].name;
	}
	return NULL;
}

/* tenant (else --tenant's), the queue or namespace, and the time that
 * matters (ready_at, expires_at) of a line; false when it was refused. */
static bool
line_names(struct importer *im, unsigned long line, const struct request *req,
    bool item, const char **tenant, const char **name, int64_t *at)
{
	enum casq_err bad = item ? E_BAD_QUEUE : E_BAD_NAMESPACE;
	const char *time_name = item ? "ready_at" : "expires_at", *when;
	enum casq_err err;

	if ((err = param_text(req, "tenant", TENANT_NAME_MAX, E_BAD_TENANT, tenant)) == E_OK &&
	    *tenant && !name_valid(*tenant, strlen(*tenant), TENANT_NAME_MAX))
		err = E_BAD_TENANT;
	if (err == E_OK && (err = param_text(req, item ? "queue" : "namespace",
	    PATH_NAME_MAX, bad, name)) == E_OK &&
	    (*name == NULL || !name_valid(*name, strlen(*name), PATH_NAME_MAX)))
		err = bad;
	if (err != E_OK) {
		refuse(im, line, err, NULL, NULL);
		return false;
	}
	if (*tenant == NULL)
		*tenant = im->c->tenant;
	*at = 0;
	if (param_text(req, time_name, 31, E_BAD_PARAM, &when) != E_OK ||
	    (when != NULL && !parse_time(when, at))) {
		refuse(im, line, E_OK, item ? "bad ready_at" : "bad expires_at",
		    "a time as export writes it, 2026-11-26T21:58:01Z");
		return false;
	}
	return true;
}

static void
import_json_line(struct importer *im, unsigned long line, char *text, size_t len)
{
	struct request req = { .body = text, .body_len = len };
	const char *type = NULL, *tenant, *name, *unknown;
	enum casq_err err;
	int64_t at;
	bool item;

	if ((err = json_body_parse(&req)) != E_OK ||
	    (err = param_text(&req, "type", 8, E_BAD_PARAM, &type)) != E_OK) {
		refuse(im, line, err, NULL, req.err_param);
	} else if (type == NULL || (strcmp(type, "item") != 0 && strcmp(type, "value") != 0)) {
		refuse(im, line, E_OK, "bad type", "\"type\" must be \"item\" or \"value\"");
	} else if ((unknown = unknown_member(&req, (item = strcmp(type, "item") == 0) ?
	    item_members : value_members)) != NULL) {
		refuse(im, line, E_UNKNOWN_PARAM, NULL, unknown);
	} else if (line_names(im, line, &req, item, &tenant, &name, &at)) {
		if (item)
			import_item(im, line, tenant, name, &req, at);
		else
			import_value(im, line, tenant, name, &req, at);
	}
	request_free(&req);
}

static void
import_ndjson(struct importer *im, FILE *f)
{
	unsigned long line = 0;
	char *text = NULL;
	size_t cap = 0;
	ssize_t n;

	while (im->err == E_OK && (n = getline(&text, &cap, f)) >= 0) {
		line++;
		while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
			n--;
		if (n > 0)
			import_json_line(im, line, text, (size_t)n);
	}
	free(text);
}

/* The columns of a CSV import: the key's, and the payload's with their
 * names (the payload is {"Name":"field",...}, each a string). */
struct columns {
	size_t  n, key;
	size_t  npay, *pay;
	char  **names;
};

static int
columns_find(struct columns *cols, const struct csv_record *head,
    const char *key, const char *payload)
{
	char *list = xstrndup(payload ? payload : "", payload ? strlen(payload) : 0);
	int rc = CTL_OK;

	cols->n = head->nfields;
	cols->names = xcalloc(cols->n, sizeof *cols->names);
	for (size_t i = 0; i < cols->n; i++)
		cols->names[i] = xstrndup(head->fields[i], head->lens[i]);
	cols->pay = xcalloc(cols->n + 1, sizeof *cols->pay);
	for (char *save = NULL, *name = strtok_r(list, ",", &save); rc == CTL_OK;
	    name = strtok_r(NULL, ",", &save)) {
		const char *want = name ? name : key;
		size_t i = 0;

		while (i < cols->n && strcmp(cols->names[i], want) != 0)
			i++;
		if (i == cols->n)
			rc = ctl_fail(CTL_USAGE, "the header has no column '%s'", want);
		else if (name == NULL)
			cols->key = i;
		else if (cols->npay == cols->n)
			rc = ctl_fail(CTL_USAGE, "--payload-columns names a column twice");
		else
			cols->pay[cols->npay++] = i;
		if (name == NULL)
			break;
	}
	free(list);
	return rc;
}

static void
columns_free(struct columns *cols)
{
	for (size_t i = 0; i < cols->n; i++)
		free(cols->names[i]);
	free(cols->names);
	free(cols->pay);
}

/* A CSV record as the parameters of an enqueue, key and a payload of
 * the payload columns as strings, into req: they point into rec and
 * payload (no copies: this runs once a row). False when it was refused. */
static bool
csv_params(struct importer *im, const struct columns *cols,
    const struct csv_record *rec, struct request *req, struct buf *payload)
{
	struct json j;
	char detail[64];

	if (rec->error) {
		refuse(im, rec->line, E_OK, "bad CSV", rec->error);
		return false;
	}
	if (rec->nfields != cols->n) {
		snprintf(detail, sizeof detail, "%zu field(s), the header has %zu",
		    rec->nfields, cols->n);
		refuse(im, rec->line, E_OK, "bad CSV", detail);
		return false;
	}
	req->nparams = 0;
	req->params[req->nparams++] = (struct param){ .name = (char *)"key",
	    .value = rec->fields[cols->key], .len = rec->lens[cols->key],
	    .kind = PARAM_STRING };
	if (cols->npay == 0)
		return true;
	payload->len = 0;
	json_begin(&j, payload);
	json_obj_open(&j, NULL);
	for (size_t i = 0; i < cols->npay; i++) {
		size_t f = cols->pay[i];

		if (!utf8_valid(rec->fields[f], rec->lens[f])) {
			refuse(im, rec->line, E_BAD_PAYLOAD, NULL, cols->names[f]);
			return false;
		}
		json_strn(&j, cols->names[f], rec->fields[f], rec->lens[f]);
	}
	json_obj_close(&j);
	req->params[req->nparams++] = (struct param){ .name = (char *)"payload",
	    .value = payload->data, .len = payload->len, .kind = PARAM_JSON };
	return true;
}

static int
import_csv(struct importer *im, FILE *f, const char *queue, const char *key,
    const char *payload_columns)
{
	struct csv *r = csv_open(f);
	struct csv_record rec;
	struct columns cols = { 0 };
	struct param params[2];
	struct request req = { .params = params };
	struct buf payload = { 0 };
	int rc = CTL_OK;

	if (!csv_next(r, &rec))
		rc = ctl_fail(CTL_USAGE, "no header row");
	else if (rec.error)
		rc = ctl_fail(CTL_USAGE, "the header row: %s", rec.error);
	else
		rc = columns_find(&cols, &rec, key, payload_columns);
	while (rc == CTL_OK && im->err == E_OK && csv_next(r, &rec))
		if (csv_params(im, &cols, &rec, &req, &payload))
			import_item(im, rec.line, im->c->tenant, queue, &req, 0);
	buf_free(&payload);
	columns_free(&cols);
	csv_close(r);
	return rc;
}

/*----------------------------------------------------------------------------
 * import: the command
 *--------------------------------------------------------------------------*/

static void
import_report(struct importer *im, const char *file)
{
	struct buf b = { 0 };
	struct json j;

	if (!im->c->json) {
		printf("%s: %zu added, %zu already there, %zu refused%s\n", file,
		    im->done.added, im->done.present, im->refused,
		    im->refused > IMPORT_LISTED_MAX ? " (the first 1000 listed)" : "");
		return;
	}
	json_arr_close(&im->j);
	json_begin(&j, &b);
	json_obj_open(&j, NULL);
	json_str(&j, "file", file);
	json_int(&j, "added", (long long)im->done.added);
	json_int(&j, "already", (long long)im->done.present);
	json_int(&j, "refused", (long long)im->refused);
	json_raw(&j, "refusals", im->refusals.data, im->refusals.len);
	json_obj_close(&j);
	ctl_print_json(&b);
	buf_free(&b);
}

static int
import_exec(struct ctl *c, int argc, char **argv)
{
	static const struct option own[] = {
		{ "csv",             no_argument,       NULL, 'c' },
		{ "queue",           required_argument, NULL, 'q' },
		{ "key-column",      required_argument, NULL, 'k' },
		{ "payload-columns", required_argument, NULL, 'p' },
		{ "keys",            required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	const char *queue = NULL, *key = NULL, *payload = NULL, *keys = CTL_DEFAULT_KEYS;
	struct importer im = { .c = c };
	char scoped[QUEUE_NAME_MAX + 1], why[512];
	bool csv = false;
	const char *file;
	FILE *f;
	int opt, rc, mrc;

	while ((opt = ctl_getopt(c, argc, argv, own)) != -1) {
		switch (opt) {
		case 'c': csv = true; break;
		case 'q': queue = optarg; break;
		case 'k': key = optarg; break;
		case 'p': payload = optarg; break;
		case 'K': keys = optarg; break;
		default:  return ctl_usage(&ctl_import_cmd);
		}
	}
	if (optind != argc - 1 || csv != (queue != NULL) || csv != (key != NULL) ||
	    (payload && !csv))
		return ctl_usage(&ctl_import_cmd);
	if (queue && !ctl_scoped(c, queue, scoped))
		return CTL_USAGE;
	file = argv[optind];
	if ((im.keys = keyring_load(keys, why, sizeof why)) == NULL)
		return ctl_fail(CTL_USAGE, "%s (import keeps to the quotas of casqd's keys "
		    "file: --keys FILE)", why);
	if ((f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r")) == NULL) {
		keyring_free(im.keys);
		return ctl_fail(CTL_USAGE, "%s: %s", file, strerror(errno));
	}
	if ((rc = ctl_open(c, NULL)) == CTL_OK && (mrc = store_resync_meta(c->st)) != 0) {
		/* before a first write, as a casqd worker (store.c says why) */
		rc = ctl_fail(CTL_USAGE, "cannot rewrite the meta pages: %s", mdb_strerror(mrc));
		ctl_close(c);
	} else if (rc == CTL_OK) {
		json_begin(&im.j, &im.refusals);
		json_arr_open(&im.j, NULL);
		if (csv)
			rc = import_csv(&im, f, queue, key, payload);
		else
			import_ndjson(&im, f);
		txn_end(&im);
		if (rc == CTL_OK && im.err != E_OK)
			rc = ctl_fail(CTL_USAGE, "%s: import stopped by a storage error (%s); "
			    "what is counted below was committed, and importing again is safe",
			    file, err_reason(im.err));
		if (rc == CTL_OK || im.err != E_OK)
			import_report(&im, file);
		ctl_close(c);
	}
	if (f != stdin)
		fclose(f);
	keyring_free(im.keys);
	buf_free(&im.refusals);
	return rc != CTL_OK ? rc : im.refused ? CTL_FAILED : CTL_OK;
}

const struct ctl_cmd ctl_import_cmd = {
	.name = "import",
	.args = "[--keys FILE] FILE | --csv FILE --queue QUEUE --key-column COLUMN "
	    "[--payload-columns A,B,...]",
	.exec = import_exec,
	.about = "NDJSON as export writes it, or a CSV list: idempotent, with the API's checks and quotas",
};
