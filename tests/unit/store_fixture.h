/*
 * store_fixture.h - what every storage unit test starts from: real LMDB
 * environments in one temporary directory, removed at the end, and
 * the helpers every section uses. Included by one test program each
 * (static and inline: a program that does not use one is not warned).
 */
#ifndef CASQ_STORE_FIXTURE_H
#define CASQ_STORE_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "tap.h"

#define T0		1764194281000LL	/* 2025-11-26T21:58:01Z: any fixed instant */
#define MAP_DEFAULT	(64UL << 20)
#define MAP_TINY	(256UL * 1024)	/* fills after a few dozen 8 KiB values */

static char fixture_root[] = "/tmp/casq-test-unit.XXXXXX";
static struct store *st;

static inline void
fixture_start(void)
{
	if (mkdtemp(fixture_root) == NULL)
		bail_out("mkdtemp %s", fixture_root);
}

/* Close the section's store and open a fresh one, in a directory of its
 * own so that nothing of one section (expiry entries) reaches another. */
static inline void
section(const char *name, size_t map_size)
{
	char dir[256], why[256];
	struct store_config cfg = { .dir = dir, .map_size = map_size };

	store_close(st);
	st = NULL;
	snprintf(dir, sizeof dir, "%s/%s", fixture_root, name);
	if (store_open(&cfg, &st, why, sizeof why) != 0)
		bail_out("store_open %s: %s", name, why);
	diag("--- %s", name);
}

static inline int
fixture_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static inline void
fixture_end(void)
{
	store_close(st);
	st = NULL;
	nftw(fixture_root, fixture_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Sweep everything due at now in a transaction of the test's own. */
static inline enum casq_err
sweep_at(int64_t now, struct sweep_counts *c)
{
	MDB_txn *txn;
	enum casq_err err;

	if ((err = store_begin(st, true, &txn)) != E_OK)
		return err;
	if ((err = store_sweep(st, txn, now, 1000, c)) != E_OK) {
		mdb_txn_abort(txn);
		return err;
	}
	return store_commit(txn);
}

/* Whether dbi holds key, read straight from LMDB. */
static inline bool
db_has(MDB_dbi dbi, const char *key)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	MDB_txn *txn;
	int rc;

	if (store_begin(st, false, &txn) != E_OK)
		return false;
	rc = mdb_get(txn, dbi, &k, &v);
	mdb_txn_abort(txn);
	return rc == 0;
}

/* A JSON string value of exactly n bytes ("aaa...", quotes included). */
static inline char *
json_text_of(size_t n, char fill)
{
	char *p = xmalloc(n + 1);

	memset(p, fill, n);
	p[0] = p[n - 1] = '"';
	p[n] = '\0';
	return p;
}

#endif
