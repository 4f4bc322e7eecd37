/*
 * store.h - the storage layer: one LMDB environment, named databases, and
 * operations as plain structs applied to a transaction the caller owns.
 * Nothing here knows about HTTP; docs/storage.md describes every layout.
 */
#ifndef CASQ_STORE_H
#define CASQ_STORE_H

#include <lmdb.h>
#include <stdatomic.h>

#include "common.h"

#define STORE_SCHEMA_VERSION	1
#define QUEUE_NAME_MAX		64
#define ITEM_KEY_MAX		256
#define CLAIMANT_MAX		128
#define PAYLOAD_MAX		16384	/* fits a Marketo lead record with room */
#define TOKEN_HEX_LEN		32	/* 128 random bits, hex */
/* How long "who claimed it" is remembered after an item is consumed, so
 * late losers and status learn the owner: one day covers Marketo's
 * hourly batch runs with a wide margin. */
#define CLAIM_RECORD_TTL_MS	(24LL * 3600 * 1000)
/* Expired entries handled per write transaction: small enough that no
 * request waits long, large enough to outpace any realistic expiry rate. */
#define SWEEP_BATCH		16

/* Sweep statistics, for the log. */
struct sweep_counts {
	unsigned claims, leases, values, onces, responses;
};

/* The environment and every named database, opened once per process. */
struct store {
	MDB_env *env;
	MDB_dbi  meta;		/* "schema_version" -> "1" */
	MDB_dbi  queues;	/* queue -> struct queue_stats */
	MDB_dbi  items;		/* queue/key -> item record */
	MDB_dbi  ready;		/* queue/<ready_at hex>/<seq hex> -> key */
	MDB_dbi  leases;	/* queue/<expires hex>/<seq hex> -> key */
	MDB_dbi  claimed;	/* queue/key -> claim record */
	MDB_dbi  expiry;	/* <when hex>/<kind>/<ref> -> "" */
	MDB_dbi  kv;		/* namespace/key -> kv record */
	MDB_dbi  kvns;		/* namespace -> struct kv_stats */
	MDB_dbi  once;		/* scope/id -> once record */
	MDB_dbi  idem;		/* api-key-name/request-id -> stored response */
	struct committer *committer;	/* group commit, when started */
	/* What sweeps removed since the last "swept:" log line; written
	 * only by the thread that runs write transactions. */
	struct sweep_counts swept;
	int64_t  swept_logged_at;
	atomic_bool swept_pending;	/* counts wait for the next tick */
	atomic_bool map_resized;	/* this process must reopen the map */
	/* Pages on the free list as of commit free_txnid: counted once per
	 * commit, not per write (only the writing thread uses these). */
	size_t   free_count;
	size_t   free_txnid;
	bool     space_low;	/* the last answer of store_space_low */
};

struct store_config {
	const char *dir;
	size_t      map_size;
	bool        relaxed;	/* MDB_NOMETASYNC: may lose the last commits on power loss */
	unsigned    max_readers;	/* 0: STORE_MAX_READERS */
};

/* Open (creating if needed) the environment and every database; check the
 * schema version. Returns 0 and sets *out, or -1 with a one-line reason. */
int  store_open(const struct store_config *cfg, struct store **out,
	char *why, size_t whylen);
void store_close(struct store *st);
/* Clear reader slots left by dead processes; returns how many. */
int  store_reader_check(struct store *st);
/* True when the map is so full that new data must be refused (507) to
 * keep room for the claims, acks and deletes that drain it. An operation
 * that refuses returns STORE_SPACE_REFUSED before writing anything, so
 * the transaction stays usable (unlike MDB_MAP_FULL). */
bool store_space_low(struct store *st);
#define STORE_SPACE_REFUSED	(MDB_LAST_ERRCODE + 1000)
/* Flush to disk what relaxed mode has not yet synced. */
int  store_sync(struct store *st);

/* An operation applied inside a transaction the caller owns. */
typedef enum casq_err (*store_apply_fn)(struct store *st, MDB_txn *txn, void *op);

/* Run fn in its own transaction (a write one when write), committed
 * durably before returning; a write first sweeps a few due entries. */
enum casq_err store_run(struct store *st, bool write, int64_t now,
	store_apply_fn fn, void *op);
enum casq_err store_begin(struct store *st, bool write, MDB_txn **txn);
/* Sweep a few due entries in a child of txn; a failure there (a full
 * map) leaves txn as it was, so the caller's own work still runs. */
void store_sweep_nested(struct store *st, MDB_txn *txn, int64_t now);

/* --- group commit (store_batch.c) --- */
/* Start a committer thread: from then on store_run's writes are queued
 * and committed in batches of up to max_batch operations. */
int  committer_start(struct store *st, int max_batch);
/* Commit what is queued and run its callbacks, then stop. */
void committer_stop(struct store *st);
/* Queue fn(op) for the next commit and return at once; done(done_arg,
 * err) runs on the completer thread once that commit is durable (or
 * failed). Needs a started committer. */
typedef void (*committer_done_fn)(void *done_arg, enum casq_err err);
void committer_submit(struct store *st, int64_t now, store_apply_fn fn,
	void *op, committer_done_fn done, void *done_arg);
/* Queue fn(op) and wait for its commit. */
enum casq_err committer_run(struct store *st, int64_t now, store_apply_fn fn,
	void *op);
enum casq_err store_commit(MDB_txn *txn);
enum casq_err store_map_error(int rc, const char *what);
/* Handle up to limit due entries of the expiry index; counts may be NULL. */
enum casq_err store_sweep(struct store *st, MDB_txn *txn, int64_t now,
	int limit, struct sweep_counts *counts);
/* Sweep up to limit due entries in a transaction of its own and log what
 * went: the workers' idle-time sweep. */
enum casq_err store_sweep_batch(struct store *st, int64_t now, int limit);
/* True when the expiry index holds something due at now, or when swept
 * entries still wait to be logged. */
bool store_sweep_due(struct store *st, int64_t now);
/* Add an expiry entry "<due>/<kind>/<ref>". */
int  expiry_put(struct store *st, MDB_txn *txn, int64_t due, char kind,
	const char *ref, size_t reflen);

/* --- queues (store_queue.c) --- */
enum item_state { ITEM_ABSENT = 0, ITEM_READY = 1, ITEM_LEASED = 2, ITEM_CLAIMED = 3 };
const char *item_state_name(enum item_state s);

enum queue_op_kind {
	QOP_ENQUEUE, QOP_CLAIM, QOP_POP, QOP_ACK, QOP_RELEASE, QOP_REMOVE,
	QOP_STATUS, QOP_STATS
};

struct queue_stats {		/* on disk in "queues", host byte order */
	uint64_t ready, leased, next_seq;
	uint64_t enqueued, claimed, acked, released, removed, expired;
	int64_t  created_at;
};

struct queue_result {
	bool            ok;		/* enqueued / claimed / acked / released / removed / queued */
	const char     *reason;		/* static, when !ok */
	enum item_state state;
	char            key[ITEM_KEY_MAX + 1];	/* the item's key (a pop learns it) */
	char            owner[CLAIMANT_MAX + 1];
	bool            has_owner;
	char            token[TOKEN_HEX_LEN + 1];
	uint32_t        attempts;
	int64_t         enqueued_at, ready_at, lease_expires_at, claimed_at;
	struct buf      payload;	/* JSON text; len 0 = none */
	struct queue_stats stats;
	int64_t         oldest_ready_at;	/* 0 = nothing ready */
};

struct queue_op {
	enum queue_op_kind kind;
	int64_t     now;
	const char *queue;
	const char *key;	/* NULL for QOP_POP (and QOP_STATS) */
	const char *payload;	/* compact JSON text or NULL */
	size_t      payload_len;
	const char *claimant;	/* "" when not given */
	const char *token;
	int64_t     delay_ms, lease_ms;	/* lease_ms 0: consume on claim */
	struct queue_result res;
};

bool queue_op_writes(const struct queue_op *op);
enum casq_err queue_apply(struct store *st, MDB_txn *txn, struct queue_op *op);
void queue_result_free(struct queue_result *res);

/* Call fn for each queue in name order, starting after `after` (or from
 * the first when NULL), at most limit times. */
typedef void (*queue_visit_fn)(void *ctx, const char *name, size_t len,
	const struct queue_stats *stats);
enum casq_err queue_list(struct store *st, MDB_txn *txn, const char *after,
	size_t limit, queue_visit_fn fn, void *ctx);

enum casq_err store_run_queue_op(struct store *st, struct queue_op *op);
/* Sweep hook: a lease ran out (stale entries are ignored). */
int queue_sweep_lease(struct store *st, MDB_txn *txn, int64_t due,
	const char *ref, size_t reflen);
int queue_sweep_claim(struct store *st, MDB_txn *txn, int64_t due,
	const char *ref, size_t reflen);

/* --- values with compare-and-swap, counters (store_kv.c) --- */
#define KV_VALUE_MAX	PAYLOAD_MAX

enum kv_op_kind { KV_GET, KV_SET, KV_DELETE, KV_INCR, KV_STATS };

struct kv_stats {		/* on disk in "kvns", host byte order */
	uint64_t version_floor;	/* highest version ever deleted or expired */
	uint64_t keys, sets, deletes, incrs, cas_failures, expired;
};

struct kv_result {
	bool        ok;		/* set/delete: done; get: found */
	const char *reason;
	uint64_t    version;
	int64_t     updated_at, expires_at;
	struct buf  value;	/* JSON text */
	int64_t     counter;
	struct kv_stats stats;
};

struct kv_op {
	enum kv_op_kind kind;
	int64_t     now;
	const char *ns, *key;
	const char *value;	/* compact JSON */
	size_t      value_len;
	bool        has_cas;
	uint64_t    cas;
	int64_t     ttl_ms;	/* 0: no expiry */
	int64_t     by;
	struct kv_result res;
};

bool kv_op_writes(const struct kv_op *op);
enum casq_err kv_apply(struct store *st, MDB_txn *txn, void *op);
void kv_result_free(struct kv_result *res);
int kv_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
	size_t reflen);

/* --- once-windows (store_once.c) --- */
struct once_op {
	int64_t     now;
	const char *scope, *id;
	int64_t     ttl_ms;
	/* result */
	bool        first;
	int64_t     first_seen, expires_at;
	uint64_t    count;
};
enum casq_err once_apply(struct store *st, MDB_txn *txn, void *op);
int once_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
	size_t reflen);

/* --- stored responses for idempotent retries (store_idem.c) --- */
struct idem_op {
	const char   *id;	/* "key-name/request-id" */
	unsigned char fingerprint[32];
	int64_t       now, ttl_ms;
	/* lookup result */
	bool          found, mismatch;
	int           status;
	struct buf    body;
};
/* Find a stored response for op->id; sets found / mismatch. */
enum casq_err idem_lookup(struct store *st, MDB_txn *txn, struct idem_op *op);
enum casq_err idem_save(struct store *st, MDB_txn *txn, struct idem_op *op,
	int status, const char *body, size_t len);
int idem_sweep(struct store *st, MDB_txn *txn, int64_t due, const char *ref,
	size_t reflen);

#endif
