/*
 * store_upgrade.h - what the upgrade steps share (store_upgrade.c: 1 to
 * 2 and 2 to 3; store_upgrade_history.c: 3 to 4). Not part of the store's
 * API: only the steps include it.
 */
#ifndef CASQ_STORE_UPGRADE_H
#define CASQ_STORE_UPGRADE_H

#include "store.h"

/* Schema 3's item and claim headers end where schema 4's history head
 * starts (store_upgrade.c asserts it). */
#define ITEM_HDR_V3	104
#define CLAIM_HDR_V3	16

/* Rewrite every value of dbi through convert (keys stay), counting them
 * in *count. 0 or an LMDB code (MDB_CORRUPTED from convert). */
int upgrade_convert_db(MDB_txn *txn, MDB_dbi dbi,
	int (*convert)(const MDB_val *, struct buf *), size_t *count);
/* A step that failed: why names the schema and the database it was on;
 * a full map is the one failure the operator can fix. Returns rc. */
int upgrade_failed(char *why, size_t whylen, int schema, const char *db, int rc);

#endif
