/*
 * ctl_status.c - casqctl status and queues: the environment (map, pages,
 * readers and their processes, schema), then the queues, namespaces and
 * tenants, all read in one read transaction beside casqd's writer. A
 * stored name is "tenant:name"; both are shown, as separate columns.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* What one read transaction gathers: a JSON document or tables. */
struct status {
	struct ctl      *c;
	MDB_txn         *txn;
	const char      *prefix;	/* the tenant's "T:", or "" for all */
	struct json      j;
	struct ctl_table t;
};

/* A row's members or cells: one call each, whatever the output. */
static void
row_open(struct status *s)
{
	if (s->c->json)
		json_obj_open(&s->j, NULL);
}

static void
row_close(struct status *s)
{
	if (s->c->json)
		json_obj_close(&s->j);
}

static void
field_text(struct status *s, const char *key, const char *text, size_t len)
{
	if (s->c->json)
		json_strn(&s->j, key, text, len);
	else
		ctl_cell(&s->t, "%.*s", (int)len, text);
}

static void
field_count(struct status *s, const char *key, uint64_t v)
{
	if (s->c->json)
		json_int(&s->j, key, (long long)v);
	else
		ctl_cell(&s->t, "%llu", (unsigned long long)v);
}

/* "tenant:name" as its two fields. */
static void
field_names(struct status *s, const char *scoped, size_t len)
{
	size_t tl = 0;

	while (tl < len && scoped[tl] != ':')
		tl++;
	field_text(s, "tenant", scoped, tl);
	field_text(s, "name", scoped + tl + (tl < len), len - tl - (tl < len));
}

static void
one_queue(void *arg, const char *name, size_t len, const struct queue_stats *q)
{
	struct status *s = arg;
	char at[32], scoped[QUEUE_NAME_MAX + 1];

	len = (size_t)snprintf(scoped, sizeof scoped, "%s%.*s", s->prefix, (int)len, name);
	row_open(s);
	field_names(s, scoped, len);
	field_count(s, "ready", q->ready);
	field_count(s, "leased", q->leased);
	field_count(s, "enqueued", q->enqueued);
	field_count(s, "claimed", q->claimed);
	field_count(s, "acked", q->acked);
	field_count(s, "released", q->released);
	field_count(s, "removed", q->removed);
	field_count(s, "expired", q->expired);
	ctl_time(q->created_at, at);
	field_text(s, "created_at", at, strlen(at));
	row_close(s);
}

static void
one_namespace(void *arg, const char *name, size_t len, const struct kv_stats *k)
{
	struct status *s = arg;
	char scoped[QUEUE_NAME_MAX + 1];

	len = (size_t)snprintf(scoped, sizeof scoped, "%s%.*s", s->prefix, (int)len, name);
	row_open(s);
	field_names(s, scoped, len);
	field_count(s, "keys", k->keys);
	field_count(s, "sets", k->sets);
	field_count(s, "deletes", k->deletes);
	field_count(s, "incrs", k->incrs);
	field_count(s, "cas_failures", k->cas_failures);
	field_count(s, "expired", k->expired);
	row_close(s);
}

static void
one_scope(void *arg, const char *name, size_t len, const struct once_stats *o)
{
	struct status *s = arg;
	char at[32], scoped[QUEUE_NAME_MAX + 1];

	len = (size_t)snprintf(scoped, sizeof scoped, "%s%.*s", s->prefix, (int)len, name);
	row_open(s);
	field_names(s, scoped, len);
	field_count(s, "windows", o->windows);
	field_count(s, "opened", o->opened);
	field_count(s, "expired", o->expired);
	ctl_time(o->created_at, at);
	field_text(s, "created_at", at, strlen(at));
	row_close(s);
}

static void
one_tenant(void *arg, const char *tenant)
{
	struct status *s = arg;
	struct tenant_view v;

	if (s->c->tenant_given && strcmp(tenant, s->c->tenant) != 0)
		return;
	if (tenant_view(s->c->st, s->txn, tenant, &v) != E_OK)
		return;		/* store_map_error logged it */
	row_open(s);
	field_text(s, "tenant", tenant, strlen(tenant));
	field_count(s, "items", v.usage.items);
	field_count(s, "values", v.usage.values);
	field_count(s, "windows", v.usage.windows);
	field_count(s, "queues", v.queues);
	field_count(s, "namespaces", v.namespaces);
	row_close(s);
}

static enum casq_err
list_queues(struct status *s)
{
	return queue_list(s->c->st, s->txn, s->prefix, NULL, SIZE_MAX, one_queue, s);
}

static enum casq_err
list_namespaces(struct status *s)
{
	return kv_ns_list(s->c->st, s->txn, s->prefix, NULL, SIZE_MAX, one_namespace, s);
}

static enum casq_err
list_scopes(struct status *s)
{
	return once_scope_list(s->c->st, s->txn, s->prefix, NULL, SIZE_MAX, one_scope, s);
}

static enum casq_err
list_tenants(struct status *s)
{
	return tenant_list(s->c->st, s->txn, one_tenant, s);
}

static const char *const queue_head[] = { "TENANT", "QUEUE", "READY", "LEASED",
	"ENQUEUED", "CLAIMED", "ACKED", "RELEASED", "REMOVED", "EXPIRED", "CREATED", NULL };
static const char *const namespace_head[] = { "TENANT", "NAMESPACE", "KEYS", "SETS",
	"DELETES", "INCRS", "CAS_FAILURES", "EXPIRED", NULL };
static const char *const scope_head[] = { "TENANT", "SCOPE", "WINDOWS", "OPENED",
	"EXPIRED", "CREATED", NULL };
static const char *const tenant_head[] = { "TENANT", "ITEMS", "VALUES", "WINDOWS",
	"QUEUES", "NAMESPACES", NULL };

/* A list as the JSON array key, or as a table with the title and head. */
static enum casq_err
section(struct status *s, const char *key, const char *title,
    const char *const *head, enum casq_err (*list)(struct status *))
{
	enum casq_err err;
	size_t n = 0;

	while (head[n])
		n++;
	if (s->c->json) {
		json_arr_open(&s->j, key);
	} else {
		if (title)
			printf("\n%s\n", title);
		ctl_table_init(&s->t, n, head);
	}
	err = list(s);
	if (s->c->json)
		json_arr_close(&s->j);
	else
		ctl_table_print(&s->t);
	return err;
}

/* --- the environment --- */

struct readers {
	struct status *s;
	size_t         n;
	struct buf     text;		/* " pid (txn N)" each, for people */
};

static void
one_reader(void *arg, long pid, size_t txnid)
{
	struct readers *r = arg;

	r->n++;
	if (r->s->c->json) {
		json_obj_open(&r->s->j, NULL);
		json_int(&r->s->j, "pid", pid);
		json_int(&r->s->j, "txnid", (long long)txnid);
		json_obj_close(&r->s->j);
	} else {
		buf_printf(&r->text, " %ld%s", pid, pid == (long)getpid() ? " (this casqctl)" : "");
		if (txnid)
			buf_printf(&r->text, " reading transaction %zu", txnid);
	}
}

static enum casq_err
environment_out(struct status *s)
{
	struct readers r = { .s = s };
	struct store_env_usage u;
	enum casq_err err;
	size_t used;
	int rc;

	if ((err = store_env_usage(s->c->st, s->txn, &u)) != E_OK)
		return err;
	used = (u.pages_used - u.pages_free) * u.page_size;
	if (s->c->json) {
		json_str(&s->j, "data", s->c->data);
		json_int(&s->j, "schema", STORE_SCHEMA_VERSION);
		json_int(&s->j, "map_size", (long long)u.map_size);
		json_int(&s->j, "page_size", (long long)u.page_size);
		json_int(&s->j, "pages", (long long)u.pages_used);
		json_int(&s->j, "free_pages", (long long)u.pages_free);
		json_int(&s->j, "used_bytes", (long long)used);
		json_int(&s->j, "last_txnid", (long long)u.last_txnid);
		json_int(&s->j, "max_readers", u.max_readers);
		json_arr_open(&s->j, "readers");
		rc = store_readers(s->c->st, one_reader, &r);
		json_arr_close(&s->j);
		return rc == 0 ? E_OK : E_INTERNAL;
	}
	printf("database  %s (schema %d, last transaction %zu)\n", s->c->data,
	    STORE_SCHEMA_VERSION, u.last_txnid);
	printf("map       %zu bytes; %zu pages of %zu bytes written, %zu of them free; "
	    "%zu bytes used (%.1f%%)\n", u.map_size, u.pages_used, u.page_size,
	    u.pages_free, used, 100.0 * (double)used / (double)u.map_size);
	rc = store_readers(s->c->st, one_reader, &r);
	printf("readers   %zu of %u slots in use%s%.*s\n", r.n, u.max_readers,
	    r.n ? ", by pid" : "", (int)r.text.len, r.text.data ? r.text.data : "");
	buf_free(&r.text);
	return rc == 0 ? E_OK : E_INTERNAL;
}

/* Run out over one read transaction; the JSON document is one object. */
static int
status_run(struct ctl *c, int argc, char **argv, const struct ctl_cmd *cmd,
    bool env, bool all)
{
	struct status s = { .c = c };
	char prefix[TENANT_NAME_MAX + 2];
	struct buf b = { 0 };
	enum casq_err err;
	int rc;

	if (ctl_getopt(c, argc, argv, NULL) != -1 || optind != argc)
		return ctl_usage(cmd);
	if ((rc = ctl_open(c, NULL)) != CTL_OK)
		return rc;
	json_begin(&s.j, &b);
	if (c->json)
		json_obj_open(&s.j, NULL);
	/* the environment inside the transaction: its reader is listed, so
	 * the list is never empty, and the counts are of the same snapshot */
	s.prefix = ctl_prefix(c, prefix);
	if ((err = store_begin(c->st, false, &s.txn)) == E_OK) {
		if (env)
			err = environment_out(&s);
		if (err == E_OK)
			err = section(&s, "queues", all ? "queues" : NULL, queue_head, list_queues);
		if (err == E_OK && all)
			err = section(&s, "namespaces", "namespaces", namespace_head,
			    list_namespaces);
		if (err == E_OK && all)
			err = section(&s, "once_scopes", "once scopes", scope_head, list_scopes);
		if (err == E_OK && all)
			err = section(&s, "tenants", "tenants", tenant_head, list_tenants);
		mdb_txn_abort(s.txn);
	}
	ctl_close(c);
	if (err != E_OK) {
		buf_free(&b);
		return ctl_fail(CTL_USAGE, "%s: cannot read the database", c->data);
	}
	if (c->json) {
		json_obj_close(&s.j);
		ctl_print_json(&b);
	}
	buf_free(&b);
	return CTL_OK;
}

static int
status_exec(struct ctl *c, int argc, char **argv)
{
	return status_run(c, argc, argv, &ctl_status_cmd, true, true);
}

const struct ctl_cmd ctl_status_cmd = {
	.name = "status", .args = "", .exec = status_exec,
	.about = "the environment (map, pages, readers, schema), queues, namespaces, "
	    "once scopes, tenants",
};

static int
queues_exec(struct ctl *c, int argc, char **argv)
{
	return status_run(c, argc, argv, &ctl_queues_cmd, false, false);
}

const struct ctl_cmd ctl_queues_cmd = {
	.name = "queues", .args = "", .exec = queues_exec,
	.about = "every queue with its counters",
};
