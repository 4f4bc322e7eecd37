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

/*
 * The on-disk format's version, in "meta" under "schema_version"; casqd
 * refuses a database of another version. When the format changes (a
 * record's layout, a key's shape, an expiry letter, a named database),
 * as beanstalkd's Walver comment lists for its log:
 *   1. bump STORE_SCHEMA_VERSION;
 *   2. change the struct and its _Static_assert (store_queue.c's
 *      item_hdr has one; give a changed record one too);
 *   3. docs/storage.md: the database's section (offsets, sizes), the
 *      expiry kinds table for a new letter, the meta row's "currently";
 *   4. tests/unit/test_store.c test_open: the version a new environment
 *      gets, and that a database of the old version is refused (or, once
 *      casqd upgrades in place, a test that opens an old one and reads
 *      every record back);
 *   5. STORE_MAX_DBS in store.c, when a database is added.
 */
#define STORE_SCHEMA_VERSION	4
/* A queue, namespace or scope as the store keeps it: "tenant:name", the
 * tenant and the path's name each 1-64 of A-Z a-z 0-9 . _ - (route.c
 * checks both), so every key starts with its tenant (store_tenant.c). */
#define QUEUE_NAME_MAX		(TENANT_NAME_MAX + 1 + 64)
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
/* A bound pop's bind value (typically {{lead.Id}}), like a key. */
#define BIND_MAX		256
/* Queue settings' bounds (POST /v1/queues/{queue}/config). */
#define MAX_ATTEMPTS_MAX	1000
#define BIND_DAYS_DEFAULT	365	/* a year: a coupon outlives any campaign */
#define BIND_DAYS_MAX		3650	/* ten years: longer is forever */
#define DAY_MS			(24LL * 3600 * 1000)
/* claims_per_minute: one count per minute for the last hour. */
#define CLAIM_RATE_MINUTES	60

/* The kinds of the expiry index (store_expiry.c holds their table: the
 * letter on disk, the name in the log, the family's hook). In the order
 * of the "swept:" log line. */
enum expiry_kind {
	EXPIRY_LEASE, EXPIRY_VALUE, EXPIRY_ONCE, EXPIRY_RESPONSE, EXPIRY_CLAIM,
	EXPIRY_HISTORY, EXPIRY_BINDING,
	EXPIRY__COUNT
};

/* Sweep statistics, for the log: entries handled per kind. */
struct sweep_counts {
	unsigned swept[EXPIRY__COUNT];
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
	MDB_dbi  dead;		/* queue/key -> "": the dead items, in key order */
	MDB_dbi  bindings;	/* queue/bind -> binding record (bound pops) */
	MDB_dbi  expiry;	/* <when hex>/<kind>/<ref> -> "" */
	MDB_dbi  kv;		/* namespace/key -> kv record */
	MDB_dbi  kvns;		/* namespace -> struct kv_stats */
	MDB_dbi  once;		/* scope/id -> once record */
	MDB_dbi  oncens;	/* scope -> struct once_stats */
	MDB_dbi  idem;		/* tenant:api-key-name/request-id -> stored response */
	MDB_dbi  tenants;	/* tenant -> struct tenant_usage */
	MDB_dbi  events;	/* <id: 8 bytes big-endian> -> history event */
	MDB_dbi  heads;		/* queue/key -> struct history_head (store_history.c) */
	int64_t  history_ttl_ms;	/* how long an event is kept */
	/* What sweeps removed since the last "swept:" log line; written
	 * only by the thread that runs write transactions. */
	struct sweep_counts swept;
	int64_t  swept_logged_at;
	atomic_bool swept_pending;	/* counts wait for the next tick */
	atomic_bool map_resized;	/* this process must reopen the map */
	/* A write or flush of the data file failed (EIO, or LMDB's panic
	 * after a failed meta write): this process no longer knows what is
	 * on disk, so it writes nothing more and must be replaced
	 * (docs/storage.md, "When the disk fails"). */
	atomic_bool io_failed;
	/* Set by a worker: on io_failed, SIGTERM this process at once (its
	 * graceful stop) instead of waiting for the next tick to notice. */
	bool     stop_on_io_failure;
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
	int64_t     history_ttl_ms;	/* 0: HISTORY_TTL_DEFAULT_MS */
	/* For tools beside a running casqd (casqctl): open a database that
	 * is there, as it is. Nothing is created or upgraded, and one of
	 * another schema is refused: a tool must never write a layout it
	 * does not know, nor start an upgrade under a casqd of that schema. */
	bool        existing_only;
};

/* Open (creating if needed) the environment and every database; check the
 * schema version. Returns 0 and sets *out, or -1 with a one-line reason. */
int  store_open(const struct store_config *cfg, struct store **out,
	char *why, size_t whylen);
/* Close the environment. \note Stop the committer first: no transaction
 * may be open. */
void store_close(struct store *st);
/* Write both meta pages back as this process sees them and flush them
 * (under the writer lock), before a worker's first write: after a failed
 * flush the disk may lack a meta page the page cache shows (store.c).
 * 0 or an errno / LMDB error. */
int  store_resync_meta(struct store *st);
/* Each reader slot in use (mdb_reader_list): the process holding it, and
 * the transaction it reads (0: none at the moment). */
typedef void (*store_reader_fn)(void *ctx, long pid, size_t txnid);
int  store_readers(struct store *st, store_reader_fn fn, void *ctx);
/* Clear reader slots left by dead processes; returns how many. */
int  store_reader_check(struct store *st);
/* What the environment holds, for GET /metrics and casqctl status. */
struct store_env_usage {
	size_t   map_size;	/* bytes (--map-size, or larger if grown) */
	size_t   page_size;	/* bytes */
	size_t   pages_used;	/* the data file's high-water mark */
	size_t   pages_free;	/* of those, on the free list as of txn */
	unsigned readers;	/* reader slots in use: read transactions open
				 * now, in any process (txn's own included) */
	unsigned max_readers;
	size_t   last_txnid;	/* the newest commit */
};
enum casq_err store_env_usage(struct store *st, MDB_txn *txn,
	struct store_env_usage *u);
/* True when the map is so full that new data must be refused (507) to
 * keep room for the claims, acks and deletes that drain it. An operation
 * that refuses returns E_SPACE_REFUSED before writing anything, so the
 * transaction stays usable (unlike MDB_MAP_FULL). */
bool store_space_low(struct store *st);
/* Flush to disk what relaxed mode has not yet synced; never again once
 * io_failed is set (a flush that failed is not retried as if it worked). */
int  store_sync(struct store *st);

/*
 * An operation: op is a plain struct (queue_op, kv_op, ...) holding its
 * parameters and its result, applied inside a transaction the caller owns,
 * so that one transaction can carry many operations (group commit).
 *
 * \note Refuse before the first write. A refusal (E_SPACE_REFUSED, a
 *       missing queue, a refusal in the result) must be decided before
 *       anything is written: in a batch, the transaction goes on with the
 *       next operation and is committed, so a write made before the
 *       refusal would be committed half-done. Only a storage error (a
 *       full map, E_STORAGE_FULL / E_INTERNAL) may come after writes; it
 *       makes the committer roll back the whole batch and rerun it.
 * \note May be applied twice: on such a rerun every operation of the
 *       batch is applied again, in a nested transaction of its own. Start
 *       by resetting the result (keeping buffers' memory), and keep
 *       nothing from a previous application.
 * \note Runs on the thread that owns txn: the committer for a worker's
 *       writes, a serving thread for reads (a read transaction) and for
 *       writes outside a worker (tests, tools).
 * \note Strings in op are borrowed from whoever built it (in casqd: the
 *       request); they stay valid until op's done callback has run.
 */
typedef enum casq_err (*store_apply_fn)(struct store *st, MDB_txn *txn, void *op);

/* Run fn in a transaction of its own on this thread (a write one when
 * write), committed durably before returning; a write first sweeps a
 * few due entries. Group commit is a different call: committer_run. */
enum casq_err store_run(struct store *st, bool write, int64_t now,
	store_apply_fn fn, void *op);
enum casq_err store_begin(struct store *st, bool write, MDB_txn **txn);
enum casq_err store_commit(MDB_txn *txn);
/* An LMDB (or errno) code as a casq error; anything but a full map is
 * logged with what. */
enum casq_err store_map_error(int rc, const char *what);

/* --- keys and records, for every family (store.c) --- */
/* "prefix/name": a queue, namespace or scope, then a key or id. Both
 * parts are validated by the caller (at most 64 and 256 bytes), so every
 * key fits LMDB's 511-byte limit. */
struct store_key {
	char    data[QUEUE_NAME_MAX + 1 + ITEM_KEY_MAX + 1];
	MDB_val val;
};
void store_key_make(struct store_key *sk, const char *prefix,
	const char *name, size_t namelen);
/* The key an expiry entry refers to; false when it cannot be one. */
bool store_key_from_ref(struct store_key *sk, const char *ref, size_t reflen);
/* Read the record under key: its fixed header into hdr (hdr_size bytes),
 * what follows into *tail (pointing into the LMDB value, valid until the
 * transaction writes). tail NULL: the record must be the header exactly.
 * MDB_CORRUPTED when it is shorter (or, without tail, longer); the caller
 * checks the tail's length against its header. */
int  store_record_get(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key,
	void *hdr, size_t hdr_size, MDB_val *tail);

/* The records of dbi whose keys start with prefix (a tenant's "tenant:"),
 * in key order, from the first after prefix + after (or the first when
 * after is NULL), at most limit: each is copied into rec (exactly
 * rec_size bytes, else MDB_CORRUPTED), then fn gets its name without the
 * prefix. For the queue and namespace lists. */
typedef void (*store_list_fn)(void *ctx, const char *name, size_t len);
int  store_list(MDB_txn *txn, MDB_dbi dbi, const char *prefix, const char *after,
	size_t limit, void *rec, size_t rec_size, store_list_fn fn, void *ctx);

/* --- refusals: an answer's "reason" (store.c holds the names) --- */
/* Why an operation did not do what it was asked. A refusal is a result
 * (a 200 answer with "ok": false or the like), not an error. */
enum store_refusal {
	REFUSAL_NONE = 0,
	REFUSAL_NO_SUCH_QUEUE, REFUSAL_EMPTY, REFUSAL_CLAIMED, REFUSAL_NOT_QUEUED, REFUSAL_NOT_READY,
	REFUSAL_NOT_LEASED, REFUSAL_LEASE_EXPIRED, REFUSAL_TOKEN_MISMATCH,
	REFUSAL_CLAIMANT_MISMATCH, REFUSAL_DEAD, REFUSAL_NOT_DEAD,
	REFUSAL_NOT_FOUND, REFUSAL_VERSION_MISMATCH, REFUSAL_NOT_A_COUNTER,
	REFUSAL_OVERFLOW,
	REFUSAL__COUNT
};
/* "empty", "not_leased", ...: the reason as the API spells it. */
const char *store_refusal_name(enum store_refusal r);

/* --- expiry (store_expiry.c) --- */
/* A family's hook: the entry "<due>/<kind>/<ref>" is due. Remove the
 * record ref names if it still ends at exactly due (else a later write
 * renewed or replaced it: do nothing); 0 or an LMDB code. */
typedef int expiry_sweep_fn(struct store *st, MDB_txn *txn, int64_t due,
	const char *ref, size_t reflen);
/* The key of the expiry entry "<due>/<kind>/<ref>" into kb; its length,
 * or 0 when it does not fit (store_verify.c looks entries up with it). */
#define EXPIRY_KEY_MAX	512
size_t expiry_key_make(char kb[static EXPIRY_KEY_MAX], int64_t due,
	enum expiry_kind kind, const char *ref, size_t reflen);
/* The kind of an index key, or EXPIRY__COUNT for one that is not ours
 * (the sweep drops it without a hook). */
enum expiry_kind expiry_kind_of(const MDB_val *k);
/* Add an expiry entry "<due>/<kind>/<ref>". */
int  expiry_put(struct store *st, MDB_txn *txn, int64_t due,
	enum expiry_kind kind, const char *ref, size_t reflen);
/* Handle up to limit due entries of the expiry index; counts may be NULL. */
enum casq_err store_sweep(struct store *st, MDB_txn *txn, int64_t now,
	int limit, struct sweep_counts *counts);
/* Sweep a few due entries in a child of txn; a failure there (a full
 * map) leaves txn as it was, so the caller's own work still runs. */
void store_sweep_nested(struct store *st, MDB_txn *txn, int64_t now);
/* True when the expiry index holds something due at now, or when swept
 * entries still wait to be logged. */
bool store_sweep_due(struct store *st, int64_t now);
/* The workers' idle-time sweep as an operation (for committer_run): up
 * to limit due entries, and a "swept:" log line. */
struct sweep_op {
	int64_t             now;
	int                 limit;
	struct sweep_counts counts;	/* result */
};
enum casq_err store_sweep_apply(struct store *st, MDB_txn *txn, void *op);

/* --- group commit (store_batch.c) --- */
struct committer;
/*
 * An operation's end: its commit is durable, or failed with err (then
 * nothing of it happened).
 * \note Runs on the thread the committer hands batches to (the worker's
 *       completer), or on the committer thread itself when it was started
 *       without one; once per operation, in commit order. Never inside a
 *       transaction: it must not call the store.
 * \note It may read and free op and everything op borrowed: nothing
 *       touches them after it.
 */
typedef void (*committer_done_fn)(void *done_arg, enum casq_err err);
/* Committed operations whose done callbacks are yet to run, in order. */
struct commit_batch {
	struct commit_batch *next;	/* the receiver's to queue it by */
	struct batch_req    *reqs;	/* store_batch.c's */
};
/* Where a committed batch goes: pass it to commit_batch_finish, on the
 * thread that should run the callbacks. Called on the committer thread. */
typedef void (*committer_hand_fn)(void *hand_arg, struct commit_batch *batch);
/* Start a committer thread, committing up to max_batch operations
 * together. Committed batches go to hand(hand_arg, batch); hand NULL: the
 * committer runs their callbacks itself. NULL if no thread could start. */
struct committer *committer_start(struct store *st, int max_batch,
	committer_hand_fn hand, void *hand_arg);
/* Commit what is queued and hand it on, then stop; NULL is ignored. */
void committer_stop(struct committer *c);
/* Queue fn(op) for the next commit and return at once; done(done_arg,
 * err) runs once that commit is durable (or failed). */
void committer_submit(struct committer *c, int64_t now, store_apply_fn fn,
	void *op, committer_done_fn done, void *done_arg);
/* Queue fn(op) and wait for its commit. \note Not on the thread that runs
 * the callbacks: it would wait for itself. */
enum casq_err committer_run(struct committer *c, int64_t now,
	store_apply_fn fn, void *op);
/* Run the done callbacks of batch in commit order, and free it. */
void commit_batch_finish(struct commit_batch *batch);
/*
 * Test seam, as beanstalkd's falloc: when set, the committer applies each
 * operation through it instead of calling fn itself. A test points it at
 * a wrapper that lets one chosen op write and then answer as a full map
 * would (store_map_error(MDB_MAP_FULL, ...)): the batch must roll back,
 * the others commit, and that op alone gets 507 with nothing of it kept
 * (tests/unit/test_store_batch.c). Never set outside tests.
 */
extern enum casq_err (*committer_apply_seam)(store_apply_fn fn,
	struct store *st, MDB_txn *txn, void *op);

/* --- queues (store_queue.c) --- */
enum item_state {
	ITEM_ABSENT = 0, ITEM_READY = 1, ITEM_LEASED = 2, ITEM_CLAIMED = 3,
	ITEM_DEAD = 4	/* leased max_attempts times: kept, never handed out */
};
const char *item_state_name(enum item_state s);

enum queue_op_kind {
	QOP_ENQUEUE, QOP_CLAIM, QOP_POP, QOP_ACK, QOP_RELEASE, QOP_REMOVE,
	QOP_STATUS, QOP_STATS, QOP_REDRIVE, QOP_CONFIG
};

/* The item record in "items": this header, then the claimant, the
 * payload JSON, the follow-up's payload JSON and the bind of the bound pop
 * that leased it (docs/storage.md). Host byte order; the schema version
 * guards the layout. */
/* Where an item's history chain starts (store_history.c): its newest
 * event, how many it links, and that event's time. Kept in the record
 * that is written anyway by the change it records: the item's, then its
 * claim record's, then, once both are gone, its own record in "heads". */
struct history_head {
	uint64_t last;		/* 0: no event */
	uint32_t count;
	uint32_t pad;
	int64_t  last_at;
};

struct item_hdr {
	uint8_t  state;
	uint8_t  flags;		/* ITEM_FOLLOW_UP */
	uint16_t claimant_len;
	uint32_t attempts;
	uint64_t seq;
	int64_t  enqueued_at, ready_at, lease_until;
	/* With ITEM_FOLLOW_UP: the follow-up is ready when the lease ends,
	 * or at this time (its enqueue's delay) if later. */
	int64_t  follow_ready_at;
	int64_t  dead_at;	/* ITEM_DEAD: since when */
	uint32_t payload_len;
	uint32_t follow_len;	/* the follow-up's payload */
	uint16_t bind_len;
	uint16_t pad;
	char     token[TOKEN_HEX_LEN];
	struct history_head history;
};
#define ITEM_FOLLOW_UP	0x01	/* enqueued again while leased: one more run */

/* A claim record in "claimed": this header, then the owner's name and
 * the bind of the bound pop that took it. */
struct claim_hdr {
	int64_t  claimed_at;
	uint32_t attempts;	/* claims the item had, this one included */
	uint16_t owner_len;
	uint16_t bind_len;
	struct history_head history;	/* the consumed item's */
};

/* A queue's settings, kept in its stats record. */
struct queue_config {
	int64_t  lease_ms;	/* a claim's or pop's lease when it sends none; 0: none (consume) */
	uint32_t max_attempts;	/* leases before an item is dead; 0: unlimited */
	uint32_t bind_days;	/* how long a bound pop's binding lasts */
};

struct queue_stats {		/* on disk in "queues", host byte order */
	uint64_t ready, leased, next_seq;
	uint64_t enqueued, claimed, acked, released, removed, expired;
	int64_t  created_at;
	uint64_t dead;		/* items dead now */
	uint64_t died, redriven;	/* totals, as enqueued and the rest */
	struct queue_config config;
	/* Winning claims and pops per minute: the count of minute m (ms /
	 * 60000) is rate[m % 60] while m is one of the 60 minutes up to
	 * rate_minute, the last minute counted in; older slots are stale and
	 * read as 0 (store_queue.c, claim_rate_*). */
	int64_t  rate_minute;
	uint32_t rate[CLAIM_RATE_MINUTES];
};

struct queue_result {
	bool            ok;		/* enqueued / claimed / acked / released / removed / queued */
	enum store_refusal reason;	/* when !ok */
	enum item_state state;
	char            key[ITEM_KEY_MAX + 1];	/* the item's key (a pop learns it) */
	char            owner[CLAIMANT_MAX + 1];
	bool            has_owner;
	char            token[TOKEN_HEX_LEN + 1];
	uint32_t        attempts;
	int64_t         enqueued_at, ready_at, lease_expires_at, claimed_at, dead_at;
	bool            follow_up;	/* a follow-up run waits for the lease's end */
	bool            again;		/* a bound pop answered from its binding */
	char            bound_to[BIND_MAX + 1];	/* "": not bound */
	struct buf      payload;	/* JSON text; len 0 = none */
	struct queue_stats stats;
	int64_t         oldest_ready_at;	/* 0 = nothing ready */
	uint32_t        claims_per_minute[CLAIM_RATE_MINUTES];	/* oldest first */
	uint64_t        redriven, remaining;	/* QOP_REDRIVE */
};

struct queue_op {
	enum queue_op_kind kind;
	int64_t     now;
	const char *queue;	/* "tenant:name" */
	uint64_t    max_items;	/* the tenant's quota, 0: none */
	const char *key;	/* NULL for QOP_POP, QOP_STATS, QOP_CONFIG, a redrive of all */
	const char *payload;	/* compact JSON text or NULL */
	size_t      payload_len;
	const char *claimant;	/* "" when not given */
	const char *token;
	const char *bind;	/* QOP_POP: NULL, or 1-BIND_MAX bytes */
	/* lease_ms 0: the queue's configured lease (none: consume on claim) */
	int64_t     delay_ms, lease_ms;
	bool        redrive_all;	/* QOP_REDRIVE of every dead item (key NULL) */
	/* QOP_ENQUEUE: a leased item stays as it is, no follow-up (casqctl
	 * import: "an item queued already stays as it is") */
	bool        no_follow_up;
	/* QOP_CONFIG: the settings sent; none set: a read */
	bool        set_lease, set_max_attempts, set_bind_days;
	struct queue_config config;
	/* What the item's history records of the request (store_history.c):
	 * its request id as the client sent it (NULL: none) and its x_
	 * annotations as compact JSON members, "\"x_a\":1,..." (len 0:
	 * none). Borrowed, as every string here. */
	const char *request_id;
	const char *annotations;
	size_t      annotations_len;
	struct queue_result res;
};

bool queue_op_writes(const struct queue_op *op);
enum casq_err queue_apply(struct store *st, MDB_txn *txn, struct queue_op *op);
void queue_result_free(struct queue_result *res);

/* Call fn for each queue whose name starts with prefix (a tenant's
 * "tenant:"; "" for all), in name order, starting after prefix + after
 * (or from the first when after is NULL), at most limit times; fn gets
 * the name without the prefix. */
typedef void (*queue_visit_fn)(void *ctx, const char *name, size_t len,
	const struct queue_stats *stats);
enum casq_err queue_list(struct store *st, MDB_txn *txn, const char *prefix,
	const char *after, size_t limit, queue_visit_fn fn, void *ctx);

/* Call fn for each item of queue ("tenant:name") in state (ITEM_READY,
 * ITEM_LEASED or ITEM_DEAD, as status reports it: a lease that ran out is
 * ready, or dead at the queue's max_attempts), in
 * key order after after (NULL: from the first), at most limit times.
 * A page reads at most QUEUE_ITEMS_SCAN_MAX items, so a rare state in a
 * long queue costs each page a bounded walk: *next gets the key to
 * continue after ("" when the walk reached the queue's end), which may
 * come with fewer than limit items. since: when the item entered the
 * state (store_queue.c says from what). E_NO_QUEUE for an unknown queue. */
#define QUEUE_ITEMS_SCAN_MAX	10000
typedef void (*queue_item_visit_fn)(void *ctx, const char *key, size_t len,
	uint32_t attempts, int64_t since);
enum casq_err queue_items(struct store *st, MDB_txn *txn, const char *queue,
	enum item_state state, const char *after, size_t limit, int64_t now,
	queue_item_visit_fn fn, void *ctx, char next[static ITEM_KEY_MAX + 1]);
/* An item whole, for tools that walk a queue (casqctl's items, show and
 * export): its strings point into the transaction's pages and are valid
 * until it ends or writes. */
struct queue_walk_item {
	const char     *key;
	size_t          key_len;
	enum item_state state;	/* a lease that ran out shows ready or dead, as status does */
	uint32_t        attempts;
	int64_t         enqueued_at, ready_at, lease_until;
	const char     *claimant;	/* the lease's holder */
	size_t          claimant_len;
	const char     *payload;	/* JSON text (a ran-out lease's follow-up's); payload_len 0: none */
	size_t          payload_len;
};
/* Call fn for each item of queue ("tenant:name") in key order, from the
 * first key at or after from (NULL: the first), while fn returns true;
 * now decides which leases ran out. MDB_CORRUPTED for a record that
 * does not decode. */
typedef bool (*queue_walk_fn)(void *ctx, const struct queue_walk_item *it);
enum casq_err queue_walk(struct store *st, MDB_txn *txn, const char *queue,
	const char *from, int64_t now, queue_walk_fn fn, void *ctx);

/* queue_apply as a store_apply_fn. */
enum casq_err queue_apply_fn(struct store *st, MDB_txn *txn, void *op);
/* queue_apply in a transaction of its own (store_run). */
enum casq_err store_run_queue_op(struct store *st, struct queue_op *op);
/* Expiry hooks: a lease ran out; a claim record's day is over. */
expiry_sweep_fn queue_sweep_lease, queue_sweep_claim;

/* --- item history (store_history.c) --- */
/* Events are kept this long (casqd --history-days) and at most the last
 * HISTORY_PER_ITEM per item: a month answers "what happened to this lead
 * in the last campaign run"; a thousand events is a lead retried every
 * hour for six weeks. */
#define HISTORY_TTL_DEFAULT_MS	(30LL * 86400 * 1000)
#define HISTORY_PER_ITEM	1000
/* On disk: never renumber. */
enum history_kind {
	HISTORY_ENQUEUED = 1, HISTORY_CLAIMED, HISTORY_POPPED, HISTORY_ACKED,
	HISTORY_RELEASED, HISTORY_EXPIRED, HISTORY_REMOVED, HISTORY_DEAD,
	HISTORY_REDRIVEN, HISTORY_FOLLOW_UP,
	HISTORY__END
};
/* "enqueued", "claimed", ...: the event as the API spells it; NULL for a
 * value that is not one. */
const char *history_kind_name(enum history_kind kind);

/* One state change of one item. Each field is what the change knows:
 * claimant (len 0: none), attempt (0: none), the lease token (hex
 * digits, at least 8, no NUL needed; NULL: none; the first 8 are kept),
 * the request's id (NUL-terminated; NULL: none) and x_ annotations
 * (compact JSON members, len 0: none). In a visit, key, claimant and
 * annotations point into the database (valid during the call), the
 * others are NUL-terminated copies; token holds the 8 digits kept. */
struct history_event {
	const char *queue;	/* "tenant:name" */
	const char *key;
	size_t      key_len;
	enum history_kind kind;
	int64_t     at;
	uint32_t    attempt;
	const char *claimant;
	size_t      claimant_len;
	const char *token;
	const char *request_id;
	const char *annotations;
	size_t      annotations_len;
};
/* Longest request id and annotations an event keeps; route.c and
 * route_params.c refuse longer ones. */
#define HISTORY_REQUEST_ID_MAX	200
#define HISTORY_ANNOTATIONS_MAX	1024

/* Append ev to its item's history in txn, the transaction of the state
 * change it records (so both commit or neither does): the event goes at
 * the end of the log, linked to head->last, and *head becomes the
 * item's new head, for the caller to write in the record the change
 * writes anyway. An item past HISTORY_PER_ITEM + HISTORY_TRIM_SLACK
 * events loses all but its last HISTORY_PER_ITEM. 0 or an LMDB code, as
 * the families' record writes: call it after the op's refusals. */
#define HISTORY_TRIM_SLACK	100
int  history_add(struct store *st, MDB_txn *txn, const struct history_event *ev,
	struct history_head *head);
/* The head of the item queue/key (ik, store_key's value) where it is
 * kept: its item record's while the item exists, else its claim
 * record's, else its own in "heads" (a head moves only that way, so the
 * first found is the newest); all zero when it has none. 0 or an LMDB
 * code. */
int  history_head_get(struct store *st, MDB_txn *txn, const MDB_val *ik,
	struct history_head *out);
/* The item and its claim record are gone (removed, or the claim record's
 * day is over): keep its head in "heads" until its newest event ends. */
int  history_head_park(struct store *st, MDB_txn *txn, const MDB_val *ik,
	const struct history_head *head);
/* fn(ctx, ev) for the last limit events of key in queue ("tenant:name"),
 * oldest first. E_NO_QUEUE when the queue does not exist; a key without
 * history calls fn never. */
typedef void (*history_visit_fn)(void *ctx, const struct history_event *ev);
enum casq_err history_list(struct store *st, MDB_txn *txn, const char *queue,
	const char *key, size_t limit, history_visit_fn fn, void *ctx);
/* The same for key in every queue of tenant, the last limit events of
 * them all in time order (ties in commit order); ev->queue names each. */
enum casq_err history_list_key(struct store *st, MDB_txn *txn,
	const char *tenant, const char *key, size_t limit,
	history_visit_fn fn, void *ctx);
/* When the item's newest event of one of kinds happened, into *at; false
 * when its history holds none. Walks back from its newest event. */
bool history_last_of(struct store *st, MDB_txn *txn, const char *queue,
	const char *key, const enum history_kind *kinds, size_t nkinds,
	int64_t *at);
/* Retention: events leave the front of the log when they are
 * --history-days old. history_due: the first one has; history_expire:
 * remove up to limit of them, adding to *removed. */
bool history_due(struct store *st, MDB_txn *txn, int64_t now);
int  history_expire(struct store *st, MDB_txn *txn, int64_t now, int limit,
	unsigned *removed);
/* Expiry hook: a parked head's newest event ended. */
expiry_sweep_fn history_sweep;
/* One event of the log as stored, for the consistency walk: ev's strings
 * point into k and v or into rec (queue, token and request id). */
struct history_record {
	struct history_event ev;
	uint64_t id, prev;
	char queue[QUEUE_NAME_MAX + 1];
	char token[9];
	char request_id[HISTORY_REQUEST_ID_MAX + 1];
};
int  history_record_decode(const MDB_val *k, const MDB_val *v,
	struct history_record *rec);

/* --- bound pops' bindings (store_bind.c) --- */
/* What a bound pop answered, kept so that a retry with the same bind
 * answers the same: the key, its payload, owner, token and attempt. */
struct binding {
	int64_t     bound_at, expires_at;
	uint32_t    attempts;
	char        token[TOKEN_HEX_LEN];
	const char *key, *owner, *payload;	/* point into the LMDB value */
	size_t      key_len, owner_len, payload_len;
};
/* The live binding of bind in queue ("tenant:name") at now into *b:
 * 0, MDB_NOTFOUND (none, or its time is over), or an LMDB error. */
int  binding_get(struct store *st, MDB_txn *txn, const char *queue,
	const char *bind, size_t bind_len, int64_t now, struct binding *b);
/* Store b under bind (replacing any old one) with its expiry entry. */
int  binding_put(struct store *st, MDB_txn *txn, const char *queue,
	const char *bind, size_t bind_len, const struct binding *b);
/* Delete the binding of bind if it is the one that handed out key with
 * token (the lease that ended without an ack); 0 or an LMDB error. */
int  binding_drop(struct store *st, MDB_txn *txn, const char *queue,
	const char *bind, size_t bind_len, const char *key, const char *token);
/* Expiry hook: a binding's bind_days are over. */
expiry_sweep_fn binding_sweep;

/* --- values with compare-and-swap, counters (store_kv.c) --- */
#define KV_VALUE_MAX	PAYLOAD_MAX

enum kv_op_kind { KV_GET, KV_SET, KV_DELETE, KV_INCR, KV_STATS };

struct kv_stats {		/* on disk in "kvns", host byte order */
	uint64_t version_floor;	/* highest version ever deleted or expired */
	uint64_t keys, sets, deletes, incrs, cas_failures, expired;
};

struct kv_result {
	bool        ok;		/* set/delete: done; get: found */
	enum store_refusal reason;	/* when !ok */
	uint64_t    version;
	int64_t     updated_at, expires_at;
	struct buf  value;	/* JSON text */
	int64_t     counter;
	struct kv_stats stats;
};

struct kv_op {
	enum kv_op_kind kind;
	int64_t     now;
	const char *ns, *key;	/* ns: "tenant:name" */
	uint64_t    max_items;	/* the tenant's quota, 0: none */
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
/* As queue_list, for the namespaces and their counters (the namespace
 * list route, casqctl status). */
typedef void (*kv_ns_visit_fn)(void *ctx, const char *name, size_t len,
	const struct kv_stats *stats);
enum casq_err kv_ns_list(struct store *st, MDB_txn *txn, const char *prefix,
	const char *after, size_t limit, kv_ns_visit_fn fn, void *ctx);
/* Expiry hook: a value's ttl ran out. */
expiry_sweep_fn kv_sweep;
/* For tools (casqctl): every value of the namespaces whose name starts
 * with prefix ("tenant:", or "" for all), ns being its "tenant:name".
 * Strings point into the transaction's pages. */
struct kv_value {
	const char *ns, *key, *value;	/* value: JSON text */
	size_t      ns_len, key_len, value_len;
	uint64_t    version;
	int64_t     updated_at, expires_at;	/* expires_at 0: never */
};
typedef void (*kv_value_fn)(void *ctx, const struct kv_value *v);
enum casq_err kv_values(struct store *st, MDB_txn *txn, const char *prefix,
	kv_value_fn fn, void *ctx);

/* --- once-windows (store_once.c) --- */
struct once_op {
	int64_t     now;
	const char *scope, *id;	/* scope: "tenant:name" */
	uint64_t    max_items;	/* the tenant's quota, 0: none */
	int64_t     ttl_ms;
	/* result */
	bool        first;
	int64_t     first_seen, expires_at;
	uint64_t    count;
};
enum casq_err once_apply(struct store *st, MDB_txn *txn, void *op);
/* Expiry hook: a once-window ended. */
expiry_sweep_fn once_sweep;
/* A scope's counters, written with its windows. On disk in "oncens",
 * host byte order. */
struct once_stats {
	uint64_t windows;	/* records held: closed windows until swept */
	uint64_t opened;	/* windows started, a reopened id included */
	uint64_t expired;	/* windows the sweep removed */
	int64_t  created_at;	/* the scope's first window */
};
/* As kv_ns_list, for the once scopes (the scope list route, casqctl
 * status). */
typedef void (*once_scope_visit_fn)(void *ctx, const char *name, size_t len,
	const struct once_stats *stats);
enum casq_err once_scope_list(struct store *st, MDB_txn *txn, const char *prefix,
	const char *after, size_t limit, once_scope_visit_fn fn, void *ctx);

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
/* Expiry hook: a stored response's retention ended. */
expiry_sweep_fn idem_sweep;

/* --- tenants (store_tenant.c) --- */
/* What a tenant holds, counted by the families as they change it; a
 * quota (max_items) bounds the sum. On disk in "tenants". */
struct tenant_usage {
	uint64_t items;		/* queued: ready, leased or dead */
	uint64_t values;	/* kv keys, expired ones until swept */
	uint64_t windows;	/* once-windows, closed ones until swept */
};
size_t tenant_len(const char *scoped);
int  tenant_usage_get(struct store *st, MDB_txn *txn, const char *tenant,
	size_t len, struct tenant_usage *u);
/* Add the changes a family made under scoped ("tenant:name"). */
int  tenant_adjust(struct store *st, MDB_txn *txn, const char *scoped,
	int64_t items, int64_t values, int64_t windows);
/* True when the tenant of scoped holds max_items (0: no quota) already:
 * a new item, value or window is refused (E_QUOTA_EXCEEDED) before the
 * first write. */
bool tenant_quota_full(struct store *st, MDB_txn *txn, const char *scoped,
	uint64_t max_items);
struct tenant_view {
	struct tenant_usage usage;
	uint64_t queues, namespaces;
};
enum casq_err tenant_view(struct store *st, MDB_txn *txn, const char *tenant,
	struct tenant_view *out);
/* Every tenant that ever held data, in name order. */
typedef void (*tenant_visit_fn)(void *ctx, const char *tenant);
enum casq_err tenant_list(struct store *st, MDB_txn *txn, tenant_visit_fn fn,
	void *ctx);
/* Schema 1 to 2: every key gets the tenant "default:", in one transaction
 * (store_upgrade.c). why gets the counts, or the reason it failed. */
int  store_upgrade_v1(struct store *st, MDB_txn *txn, char *why, size_t whylen);
/* Schema 2 to 3: the queue, item and claim records converted to their
 * schema-3 layouts (dead letters, follow-ups, bound pops, settings); item
 * history and bindings are new databases, created empty at open. why
 * gets the counts, or the reason it failed. */
int  store_upgrade_v2(struct store *st, MDB_txn *txn, char *why, size_t whylen);
/* Schema 3 to 4: item history from its per-item ranges in "history" to
 * the time-ordered log in "events", each item's head in its item record,
 * claim record or "heads"; item and claim records gain the head field.
 * "history" is dropped. why gets the counts, or the reason it failed. */
int  store_upgrade_v3(struct store *st, MDB_txn *txn, char *why, size_t whylen);

/* --- the consistency walk (store_verify.c) --- */
/* Called once per problem found, with one line of text (no newline). */
typedef void (*store_verify_report_fn)(void *ctx, const char *problem);
/* Walk every record in one read transaction (safe beside a running
 * casqd) and check the invariants docs/storage.md states: indexes against
 * items, counters against what they count, the expiry index against every
 * record that ends. Each problem goes to report (which may be NULL) and is
 * counted in *problems. E_OK when the walk read everything, whatever it
 * found; an error when LMDB could not read the database. */
enum casq_err store_verify(struct store *st, store_verify_report_fn report,
	void *ctx, size_t *problems);

#endif
