/*
 * store_tenant.c - tenants in storage. Every name the store keeps (queue,
 * namespace, scope, request id) is "tenant:name", so every key of every
 * family starts with its tenant and two tenants' data never meet; ':' is
 * in no name, so the split is unambiguous. Per tenant, "tenants" holds
 * what it holds (items, values, open windows): the families report their
 * changes here in the same transaction, and a quota is checked against
 * it before anything is written.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

/*----------------------------------------------------------------------------
 * Records
 *--------------------------------------------------------------------------*/

/* The tenant part of a scoped name: its length (the name up to ':'). */
size_t
tenant_len(const char *scoped)
{
	const char *colon = strchr(scoped, ':');

	return colon ? (size_t)(colon - scoped) : strlen(scoped);
}

int
tenant_usage_get(struct store *st, MDB_txn *txn, const char *tenant,
    size_t len, struct tenant_usage *u)
{
	MDB_val k = { len, (void *)tenant };
	int rc = store_record_get(txn, st->tenants, &k, u, sizeof *u, NULL);

	if (rc == MDB_NOTFOUND) {
		memset(u, 0, sizeof *u);
		return 0;
	}
	return rc;
}

static int
tenant_usage_put(struct store *st, MDB_txn *txn, const char *tenant,
    size_t len, const struct tenant_usage *u)
{
	MDB_val k = { len, (void *)tenant }, v = { sizeof *u, (void *)u };

	return mdb_put(txn, st->tenants, &k, &v, 0);
}

/* A count that never goes below zero: a family that removes more than
 * was counted (an upgrade's estimate) must not wrap the tenant around. */
static uint64_t
add_clamped(uint64_t v, int64_t d)
{
	return d < 0 && (uint64_t)-d > v ? 0 : v + (uint64_t)d;
}

/*----------------------------------------------------------------------------
 * State changes, for the families
 *--------------------------------------------------------------------------*/

int
tenant_adjust(struct store *st, MDB_txn *txn, const char *scoped,
    int64_t items, int64_t values, int64_t windows)
{
	struct tenant_usage u;
	size_t len = tenant_len(scoped);
	int rc;

	if (items == 0 && values == 0 && windows == 0)
		return 0;
	if ((rc = tenant_usage_get(st, txn, scoped, len, &u)) != 0)
		return rc;
	u.items = add_clamped(u.items, items);
	u.values = add_clamped(u.values, values);
	u.windows = add_clamped(u.windows, windows);
	return tenant_usage_put(st, txn, scoped, len, &u);
}

bool
tenant_quota_full(struct store *st, MDB_txn *txn, const char *scoped,
    uint64_t max_items)
{
	struct tenant_usage u;

	if (max_items == 0)
		return false;
	if (tenant_usage_get(st, txn, scoped, tenant_len(scoped), &u) != 0)
		return false;	/* unreadable: the op's own read reports it */
	return u.items + u.values + u.windows >= max_items;
}

/*----------------------------------------------------------------------------
 * Operations: what one tenant holds, for /v1/tenant and /v1/tenants
 *--------------------------------------------------------------------------*/

/* Names in dbi that start with "tenant:". */
static int
count_prefixed(MDB_txn *txn, MDB_dbi dbi, const char *tenant, uint64_t *n)
{
	char prefix[TENANT_NAME_MAX + 2];
	MDB_cursor *cur;
	MDB_val k, v;
	size_t plen;
	int rc;

	plen = (size_t)snprintf(prefix, sizeof prefix, "%s:", tenant);
	*n = 0;
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	k.mv_size = plen;
	k.mv_data = prefix;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		(*n)++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

enum casq_err
tenant_view(struct store *st, MDB_txn *txn, const char *tenant,
    struct tenant_view *out)
{
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = tenant_usage_get(st, txn, tenant, strlen(tenant), &out->usage)) != 0 ||
	    (rc = count_prefixed(txn, st->queues, tenant, &out->queues)) != 0 ||
	    (rc = count_prefixed(txn, st->kvns, tenant, &out->namespaces)) != 0)
		return store_map_error(rc, "tenant: read usage");
	return E_OK;
}

enum casq_err
tenant_list(struct store *st, MDB_txn *txn, tenant_visit_fn fn, void *ctx)
{
	char name[TENANT_NAME_MAX + 1];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->tenants, &cur)) != 0)
		return store_map_error(rc, "tenant: list");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size == 0 || k.mv_size > TENANT_NAME_MAX)
			continue;	/* not a tenant's record */
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		fn(ctx, name);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? E_OK : store_map_error(rc, "tenant: list");
}
