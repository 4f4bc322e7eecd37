/*
 * store.c - the LMDB environment: open, schema check, transactions, the
 * mapping of LMDB errors to casq errors, the space check, and the helpers
 * every family reads its keys and records with. Like Knot's knot_lmdb.c it
 * is the floor the families stand on and never calls one of them: the
 * expiry sweep, which does, is store_expiry.c; group commit is
 * store_batch.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

/* Named databases; more than we use so later schemas need no flag change. */
#define STORE_MAX_DBS		24
/* New data is refused (507) while less than this much of the map is free:
 * consumers must always be able to drain a full store, and claims and acks
 * need free pages too (LMDB copies every page it changes). */
#define HEADROOM_PCT		10
/* ...and at least this many pages (a batch of claims dirties a few hundred
 * pages before any freed page can be reused), but never half the map. */
#define HEADROOM_MIN_PAGES	256
/* Reader slots when the config does not say: tools and tests. */
#define STORE_MAX_READERS	1024

static const struct {
	const char *name;
	size_t      offset;
} store_dbs[] = {
	{ "meta",    offsetof(struct store, meta) },
	{ "queues",  offsetof(struct store, queues) },
	{ "items",   offsetof(struct store, items) },
	{ "ready",   offsetof(struct store, ready) },
	{ "leases",  offsetof(struct store, leases) },
	{ "claimed", offsetof(struct store, claimed) },
	{ "dead",    offsetof(struct store, dead) },
	{ "bindings", offsetof(struct store, bindings) },
	{ "expiry",  offsetof(struct store, expiry) },
	{ "kv",      offsetof(struct store, kv) },
	{ "kvns",    offsetof(struct store, kvns) },
	{ "once",    offsetof(struct store, once) },
	{ "oncens",  offsetof(struct store, oncens) },
	{ "idem",    offsetof(struct store, idem) },
	{ "tenants", offsetof(struct store, tenants) },
	{ "events",  offsetof(struct store, events) },
	{ "heads",   offsetof(struct store, heads) },
};

/* Bring a database of schema from up to STORE_SCHEMA_VERSION, one step
 * at a time, in txn (the open's: a failure leaves it as it was). */
static int
store_upgrade(struct store *st, MDB_txn *txn, int from, char *why, size_t whylen)
{
	if (from == 1) {	/* the schema before tenants */
		if (store_upgrade_v1(st, txn, why, whylen) != 0)
			return -1;
		log_info("database upgraded to schema 2, its data now tenant %s's "
		    "(entries moved: %s)", DEFAULT_TENANT, why);
	}
	if (from <= 2) {
		if (store_upgrade_v2(st, txn, why, whylen) != 0)
			return -1;
		log_info("database upgraded to schema 3: %s", why);
	}
	if (store_upgrade_v3(st, txn, why, whylen) != 0)
		return -1;
	log_info("database upgraded to schema 4: %s", why);
	return 0;
}

static const char schema_key[] = "schema_version";

/* Create the named databases if missing and check the schema record. */
static int
store_init_dbs(struct store *st, char *why, size_t whylen)
{
	char want[16];
	MDB_txn *txn;
	MDB_val k = { sizeof schema_key - 1, (void *)schema_key }, v;
	int rc;

	if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
		goto fail;
	for (size_t i = 0; i < sizeof store_dbs / sizeof store_dbs[0]; i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)st + store_dbs[i].offset);
		if ((rc = mdb_dbi_open(txn, store_dbs[i].name, MDB_CREATE, dbi)) != 0)
			goto fail_txn;
	}
	snprintf(want, sizeof want, "%d", STORE_SCHEMA_VERSION);
	rc = mdb_get(txn, st->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		v.mv_data = want;
		v.mv_size = strlen(want);
		if ((rc = mdb_put(txn, st->meta, &k, &v, 0)) != 0)
			goto fail_txn;
	} else if (rc != 0) {
		goto fail_txn;
	} else if (v.mv_size == 1 && *(char *)v.mv_data >= '1' && *(char *)v.mv_data <= '3') {
		if (store_upgrade(st, txn, *(char *)v.mv_data - '0', why, whylen) != 0) {
			mdb_txn_abort(txn);
			return -1;
		}
		v.mv_data = want;
		v.mv_size = strlen(want);
		if ((rc = mdb_put(txn, st->meta, &k, &v, 0)) != 0)
			goto fail_txn;
	} else if (v.mv_size != strlen(want) || memcmp(v.mv_data, want, v.mv_size) != 0) {
		snprintf(why, whylen, "database schema version %.*s, this casqd needs %s",
		    (int)v.mv_size, (char *)v.mv_data, want);
		mdb_txn_abort(txn);
		return -1;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail_txn:
	mdb_txn_abort(txn);
fail:
	snprintf(why, whylen, "cannot initialise database: %s", mdb_strerror(rc));
	return -1;
}

/* existing_only: open the named databases in a read transaction (no
 * writer lock, nothing created) once the schema record names this
 * version; a database of any other is refused as it is. */
static int
store_check_dbs(struct store *st, char *why, size_t whylen)
{
	MDB_val k = { sizeof schema_key - 1, (void *)schema_key }, v;
	char want[16];
	MDB_txn *txn;
	int rc;

	snprintf(want, sizeof want, "%d", STORE_SCHEMA_VERSION);
	if ((rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", 0, &st->meta)) != 0 ||
	    (rc = mdb_get(txn, st->meta, &k, &v)) != 0) {
		mdb_txn_abort(txn);
		snprintf(why, whylen, "not a casq database: %s", mdb_strerror(rc));
		return -1;
	}
	if (v.mv_size != strlen(want) || memcmp(v.mv_data, want, v.mv_size) != 0) {
		snprintf(why, whylen, "database schema version %.*s, this program "
		    "reads and writes only %s", (int)v.mv_size, (char *)v.mv_data, want);
		mdb_txn_abort(txn);
		return -1;
	}
	for (size_t i = 0; i < sizeof store_dbs / sizeof store_dbs[0]; i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)st + store_dbs[i].offset);

		if ((rc = mdb_dbi_open(txn, store_dbs[i].name, 0, dbi)) != 0) {
			mdb_txn_abort(txn);
			snprintf(why, whylen, "database %s: %s", store_dbs[i].name,
			    mdb_strerror(rc));
			return -1;
		}
	}
	if ((rc = mdb_txn_commit(txn)) == 0)	/* keeps the handles */
		return 0;
fail:
	snprintf(why, whylen, "cannot read database: %s", mdb_strerror(rc));
	return -1;
}

/*
 * Write both meta pages back as this process reads them, and flush them,
 * holding LMDB's writer lock (a write transaction, aborted) so that no
 * other process writes a meta page meanwhile. Called at every open.
 *
 * Why: after a failed fdatasync (or a failed meta write) Linux may have
 * dropped a meta page it could not write and marked it clean, so the page
 * cache shows a commit the disk does not have, and no later flush writes
 * it (docs/storage.md, "When the disk fails"). LMDB reuses the pages of
 * the commit before the last, trusting that the last one is durable; a
 * fresh process that went by the cache's meta page would overwrite the
 * tree the disk still points to, and a power loss then would leave a
 * broken database. Rewriting the pages dirties them again, and the flush
 * makes the disk agree with what this process is about to build on. Data
 * pages need no such care: each commit flushes them before its meta page
 * is written. Costs two page writes and one flush per worker start.
 */
int
store_resync_meta(struct store *st)
{
	MDB_env *env = st->env;
	MDB_txn *txn;
	MDB_stat stat;
	char *page;
	int fd, rc;

	if ((rc = mdb_env_stat(env, &stat)) != 0 || (rc = mdb_env_get_fd(env, &fd)) != 0)
		return rc;
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
		return rc;
	page = xmalloc(stat.ms_psize);
	for (off_t i = 0; i < 2 && rc == 0; i++) {
		off_t at = i * (off_t)stat.ms_psize;

		errno = 0;
		if (pread(fd, page, stat.ms_psize, at) != (ssize_t)stat.ms_psize ||
		    pwrite(fd, page, stat.ms_psize, at) != (ssize_t)stat.ms_psize)
			rc = errno ? errno : EIO;
	}
	if (rc == 0 && fdatasync(fd) != 0)
		rc = errno;
	free(page);
	mdb_txn_abort(txn);
	return rc;
}

static int
store_adopt_mapsize(MDB_env *env, size_t want)
{
	MDB_envinfo info;
	int rc = mdb_env_set_mapsize(env, 0);

	if (rc != 0)
		return rc;
	mdb_env_info(env, &info);
	return info.me_mapsize < want ? mdb_env_set_mapsize(env, want) : 0;
}

int
store_open(const struct store_config *cfg, struct store **out, char *why,
    size_t whylen)
{
	struct store *st = xcalloc(1, sizeof *st);
	unsigned flags = MDB_NOTLS;	/* read txns may hop threads (group commit) */
	int rc;

	if (cfg->existing_only) {
		char path[4096];
		struct stat sb;

		/* mdb_env_open would create an empty one */
		snprintf(path, sizeof path, "%s/data.mdb", cfg->dir);
		if (stat(path, &sb) != 0) {
			snprintf(why, whylen, "no database in %s: %s", cfg->dir,
			    strerror(errno));
			goto fail;
		}
	} else if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create data directory %s: %s",
		    cfg->dir, strerror(errno));
		goto fail;
	}
	if (cfg->relaxed)
		flags |= MDB_NOMETASYNC;
#ifdef CASQ_TEST_ANSWER_EARLY
	/* BROKEN ON PURPOSE (./configure --enable-test-answer-early, for
	 * docs/reliability.md): commits are never flushed, so every answer
	 * goes out before its write is durable. The crash image test must
	 * fail on this build; this is the only line the switch changes. */
	flags |= MDB_NOSYNC;
#endif
	if ((rc = mdb_env_create(&st->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st->env, STORE_MAX_DBS)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->env, cfg->max_readers ?
	    cfg->max_readers : STORE_MAX_READERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(st->env, cfg->map_size)) != 0 ||
	    (rc = mdb_env_open(st->env, cfg->dir, flags, 0600)) != 0) {
		snprintf(why, whylen, "cannot open database in %s: %s",
		    cfg->dir, mdb_strerror(rc));
		goto fail;
	}
	/* A map grown by another process (MDB_MAP_RESIZED) is adopted here,
	 * before any transaction; the configured size is the floor. */
	if ((rc = store_adopt_mapsize(st->env, cfg->map_size)) != 0) {
		snprintf(why, whylen, "cannot size the map of %s: %s",
		    cfg->dir, mdb_strerror(rc));
		goto fail;
	}
	mdb_env_set_userctx(st->env, st);	/* store_commit finds st */
	st->history_ttl_ms = cfg->history_ttl_ms ? cfg->history_ttl_ms : HISTORY_TTL_DEFAULT_MS;
	if ((cfg->existing_only ? store_check_dbs(st, why, whylen) :
	    store_init_dbs(st, why, whylen)) != 0)
		goto fail;

	store_reader_check(st);
	*out = st;
	return 0;
fail:
	if (st->env)
		mdb_env_close(st->env);
	free(st);
	return -1;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	mdb_env_close(st->env);
	free(st);
}

int
store_reader_check(struct store *st)
{
	int dead = 0;

	mdb_reader_check(st->env, &dead);
	if (dead > 0)
		log_info("cleared %d stale reader slot(s)", dead);
	return dead;
}

/*
 * The disk failed under a write or a flush. After fdatasync reports EIO,
 * Linux may already have dropped the dirty pages it could not write, and
 * marked them clean: a second fdatasync would succeed without writing
 * them (PostgreSQL's "fsyncgate"). LMDB itself only gives up after a
 * failed meta write (MDB_PANIC from then on); after a failed data flush
 * it aborts the commit and would happily run the next one. So casq stops
 * here: no more write transactions or flushes in this process, every
 * write answered 500, and the worker's loop exits so that the master
 * starts a fresh process, which opens the environment again from what the
 * file holds. Errors that leave nothing half-written (ENOSPC, EDQUOT or
 * MDB_MAP_FULL from a write) are not this: they answer 507 and go on.
 */
static void
store_io_failed(struct store *st, int rc, const char *what)
{
	if (atomic_exchange(&st->io_failed, true))
		return;
	log_error("%s: %s: the disk failed; this process writes nothing more "
	    "and is replaced", what, mdb_strerror(rc));
	if (st->stop_on_io_failure)
		kill(getpid(), SIGTERM);
}

static bool
rc_is_io_failure(int rc)
{
	return rc == EIO || rc == MDB_PANIC;
}

int
store_sync(struct store *st)
{
	int rc;

	if (atomic_load(&st->io_failed))
		return EIO;
	if (rc_is_io_failure(rc = mdb_env_sync(st->env, 1)))
		store_io_failed(st, rc, "sync");
	return rc;
}

enum casq_err
store_map_error(int rc, const char *what)
{
	switch (rc) {
	case 0:
		return E_OK;
	case MDB_MAP_FULL:
	case ENOSPC:
	case EDQUOT:
		log_warn("%s: storage full (%s)", what, mdb_strerror(rc));
		return E_STORAGE_FULL;
	default:
		log_error("%s: %s", what, mdb_strerror(rc));
		return E_INTERNAL;
	}
}

/*
 * A read that starts behind the newest meta page. A writer killed after
 * its meta page was written but before it published the transaction's id
 * in the lock file (a SIGKILL during the O_DSYNC meta write: the write
 * completes, the thread dies on its way back) leaves a commit that is on
 * disk but that new read transactions do not see, since they start from
 * the lock file's id. LMDB repairs that id when the next writer takes
 * the writer lock (EOWNERDEAD), but until some process writes, a read
 * would answer from before a commit whose request nginx has already
 * answered 503: a stale read (test_linear found one: a get after a set's
 * 503 saw the old value, a get after the next write the new one). A live
 * writer is briefly in the same state between its meta write and the end
 * of its commit.
 */
static bool
snapshot_behind(struct store *st, MDB_txn *txn)
{
	MDB_envinfo info;

	return mdb_env_info(st->env, &info) == 0 &&
	    info.me_last_txnid > mdb_txn_id(txn);
}

/* Take the writer lock once, with an empty write transaction: LMDB
 * repairs a dead writer's transaction id when it gets the lock, and a
 * live writer is waited for. */
static void
writer_lock_cycle(struct store *st)
{
	MDB_txn *w;

	if (mdb_txn_begin(st->env, NULL, 0, &w) == 0)
		mdb_txn_abort(w);
}

enum casq_err
store_begin(struct store *st, bool write, MDB_txn **txn)
{
	unsigned flags = write ? 0 : MDB_RDONLY;
	int rc;

	if (write && atomic_load(&st->io_failed))
		return E_INTERNAL;	/* see store_io_failed */
	rc = mdb_txn_begin(st->env, NULL, flags, txn);
	if (rc == 0 && !write && snapshot_behind(st, *txn)) {
		mdb_txn_abort(*txn);
		writer_lock_cycle(st);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	if (rc_is_io_failure(rc))
		store_io_failed(st, rc, "begin transaction");
	if (rc == MDB_READERS_FULL && store_reader_check(st) > 0)
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map. Adopting its size here
		 * (mdb_env_set_mapsize) is allowed only while no thread of
		 * this process has a transaction open, so the process must
		 * start over: a worker exits and its master starts a new one. */
		if (!atomic_exchange(&st->map_resized, true))
			log_error("another process grew the database map; "
			    "restarting to adopt its size");
		return E_UNAVAILABLE;
	}
	return store_map_error(rc, "begin transaction");
}

enum casq_err
store_commit(MDB_txn *txn)
{
	MDB_env *env = mdb_txn_env(txn);
	int rc = mdb_txn_commit(txn);

	if (rc_is_io_failure(rc))
		store_io_failed(mdb_env_get_userctx(env), rc, "commit");
	return store_map_error(rc, "commit");
}

enum casq_err
store_run(struct store *st, bool write, int64_t now, store_apply_fn fn,
    void *op)
{
	MDB_txn *txn;
	enum casq_err err;

	if ((err = store_begin(st, write, &txn)) != E_OK)
		return err;
	if (write)
		store_sweep_nested(st, txn, now);
	err = fn(st, txn, op);
	if (err != E_OK || !write) {
		mdb_txn_abort(txn);
		return err;
	}
	return store_commit(txn);
}

/* Pages on LMDB's free list as txn sees it into *n: each record of the
 * free database holds a count followed by that many page numbers.
 * 0 or an LMDB code. */
static int
free_pages_in(MDB_txn *txn, size_t *n)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*n = 0;
	if ((rc = mdb_cursor_open(txn, 0, &cur)) != 0)
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
		if (v.mv_size >= sizeof(size_t))
			*n += *(size_t *)v.mv_data;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The same in a read transaction of its own; false when it could not be
 * read. */
static bool
free_pages(struct store *st, size_t *n)
{
	MDB_txn *txn;
	bool ok;

	*n = 0;
	if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
		return false;
	ok = free_pages_in(txn, n) == 0;
	mdb_txn_abort(txn);
	return ok;
}

struct reader_list {
	store_reader_fn fn;
	void           *ctx;
};

/* store_readers' callback: "pid thread txnid", txnid "-" when the slot
 * reads nothing now; the header line does not parse. */
static int
reader_slot(const char *msg, void *arg)
{
	struct reader_list *rl = arg;
	char txn[32];
	size_t thread;
	long pid;

	if (sscanf(msg, "%ld %zx %31s", &pid, &thread, txn) == 3)
		rl->fn(rl->ctx, pid, strcmp(txn, "-") == 0 ? 0 :
		    (size_t)strtoull(txn, NULL, 10));
	return 0;
}

int
store_readers(struct store *st, store_reader_fn fn, void *ctx)
{
	struct reader_list rl = { fn, ctx };

	return mdb_reader_list(st->env, reader_slot, &rl) < 0 ? EIO : 0;
}

/* store_env_usage's count of the slots store_readers lists. */
static void
reader_count(void *ctx, long pid, size_t txnid)
{
	(*(unsigned *)ctx)++;
}

enum casq_err
store_env_usage(struct store *st, MDB_txn *txn, struct store_env_usage *u)
{
	MDB_envinfo info;
	MDB_stat stat;
	int rc;

	memset(u, 0, sizeof *u);
	if ((rc = mdb_env_info(st->env, &info)) != 0 ||
	    (rc = mdb_env_stat(st->env, &stat)) != 0 ||
	    (rc = free_pages_in(txn, &u->pages_free)) != 0)
		return store_map_error(rc, "read the environment's use");
	u->map_size = info.me_mapsize;
	u->page_size = stat.ms_psize;
	u->pages_used = info.me_last_pgno + 1;
	u->max_readers = info.me_maxreaders;
	u->last_txnid = info.me_last_txnid;
	if (store_readers(st, reader_count, &u->readers) != 0)
		return store_map_error(EIO, "list the readers");
	return E_OK;
}

bool
store_space_low(struct store *st)
{
	MDB_envinfo info;
	MDB_stat stat;
	size_t pages, used, reserve;

	mdb_env_info(st->env, &info);
	mdb_env_stat(st->env, &stat);
	pages = info.me_mapsize / stat.ms_psize;
	used = info.me_last_pgno + 1;
	reserve = pages * HEADROOM_PCT / 100;
	if (reserve < HEADROOM_MIN_PAGES)
		reserve = HEADROOM_MIN_PAGES < pages / 2 ? HEADROOM_MIN_PAGES : pages / 2;
	/* Once low, stay low until a quarter of the reserve more is free:
	 * else every commit that frees a few pages would let a producer's
	 * write through, into the room the drains need. */
	if (st->space_low)
		reserve += reserve / 4;
	if (used + reserve <= pages)
		return st->space_low = false;	/* far below the high-water mark */
	/* Near it (and forever after: the file never shrinks), the free
	 * list says how much was given back; it changes only on commit. */
	if (st->free_txnid != info.me_last_txnid) {
		if (!free_pages(st, &st->free_count))
			return false;	/* uncounted: let a real MAP_FULL decide */
		st->free_txnid = info.me_last_txnid;
	}
	return st->space_low = used - st->free_count + reserve > pages;
}

/* --- keys and records, for every family --- */

void
store_key_make(struct store_key *sk, const char *prefix, const char *name,
    size_t namelen)
{
	size_t plen = strlen(prefix), n = plen + 1 + namelen;

	/* by hand, not snprintf: every operation makes a few of these */
	if (n >= sizeof sk->data)
		fatal("store key too long (validated by caller)");
	memcpy(sk->data, prefix, plen);
	sk->data[plen] = '/';
	memcpy(sk->data + plen + 1, name, namelen);
	sk->data[n] = '\0';
	sk->val.mv_data = sk->data;
	sk->val.mv_size = n;
}

bool
store_key_from_ref(struct store_key *sk, const char *ref, size_t reflen)
{
	if (reflen >= sizeof sk->data)
		return false;
	memcpy(sk->data, ref, reflen);
	sk->data[reflen] = '\0';
	sk->val.mv_data = sk->data;
	sk->val.mv_size = reflen;
	return true;
}

int
store_record_get(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key, void *hdr,
    size_t hdr_size, MDB_val *tail)
{
	MDB_val v;
	int rc = mdb_get(txn, dbi, (MDB_val *)key, &v);

	if (rc != 0)
		return rc;
	if (v.mv_size < hdr_size || (tail == NULL && v.mv_size != hdr_size))
		return MDB_CORRUPTED;
	memcpy(hdr, v.mv_data, hdr_size);
	if (tail != NULL) {
		tail->mv_data = (char *)v.mv_data + hdr_size;
		tail->mv_size = v.mv_size - hdr_size;
	}
	return 0;
}

int
store_list(MDB_txn *txn, MDB_dbi dbi, const char *prefix, const char *after,
    size_t limit, void *rec, size_t rec_size, store_list_fn fn, void *ctx)
{
	char start[QUEUE_NAME_MAX + 1];
	size_t plen = strlen(prefix), slen;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	slen = (size_t)snprintf(start, sizeof start, "%s%s", prefix, after ? after : "");
	if (slen >= sizeof start)
		return 0;		/* after a name no record can have */
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	k = (MDB_val){ slen, start };
	rc = slen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) :
	    mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (size_t n = 0; n < limit && rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;		/* past the prefix's names */
		if (after && *after && k.mv_size == slen && memcmp(k.mv_data, start, slen) == 0)
			continue;	/* after itself */
		if (v.mv_size != rec_size) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(rec, v.mv_data, rec_size);
		fn(ctx, (const char *)k.mv_data + plen, k.mv_size - plen);
		n++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* --- refusals --- */

const char *
store_refusal_name(enum store_refusal r)
{
	static const char *const names[REFUSAL__COUNT] = {
		[REFUSAL_NONE]              = "",
		[REFUSAL_NO_SUCH_QUEUE]     = "no_such_queue",
		[REFUSAL_EMPTY]             = "empty",
		[REFUSAL_CLAIMED]           = "claimed",
		[REFUSAL_NOT_QUEUED]        = "not_queued",
		[REFUSAL_NOT_READY]         = "not_ready",
		[REFUSAL_NOT_LEASED]        = "not_leased",
		[REFUSAL_LEASE_EXPIRED]     = "lease_expired",
		[REFUSAL_TOKEN_MISMATCH]    = "token_mismatch",
		[REFUSAL_CLAIMANT_MISMATCH] = "claimant_mismatch",
		[REFUSAL_DEAD]              = "dead",
		[REFUSAL_NOT_DEAD]          = "not_dead",
		[REFUSAL_NOT_FOUND]         = "not_found",
		[REFUSAL_VERSION_MISMATCH]  = "version_mismatch",
		[REFUSAL_NOT_A_COUNTER]     = "not_a_counter",
		[REFUSAL_OVERFLOW]          = "overflow",
	};

	return (unsigned)r < REFUSAL__COUNT ? names[r] : "";
}
