/*
 * store_expiry.c - everything that ends at a known time: the expiry index,
 * the sweep that walks it, and the one table of kinds. Each kind names the
 * family hook that removes a record whose time has come; the index and
 * the sweep know nothing else about the families (as Redis's expire.c
 * knows nothing of t_*.c but their delete).
 *
 * An index key is "<due:16 hex>/<letter>/<ref>": text order is time
 * order, so the first key is always the next thing to expire, and a sweep
 * is a walk from the front that stops at the first entry not yet due.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* "<16 hex>/<letter>/": where the ref starts in an index key. */
#define EXPIRY_REF_OFFSET	19
/* The log gets one "swept:" line a second at most, so that heavy expiry
 * cannot flood it; the workers' tick forces out what is left. */
#define SWEPT_LOG_INTERVAL_MS	1000

/*
 * The kinds. Adding one: an enum value in store.h, a row here (a letter no
 * other row uses: it is on disk), the family's hook, a row in
 * docs/storage.md's expiry table. The rows are in the order of the
 * "swept:" log line, which the integration tests read.
 */
static const struct expiry_kind_row {
	char            letter;	/* in the index key: on disk, never change */
	const char     *logged;	/* in the "swept:" line */
	expiry_sweep_fn *sweep;	/* the family's hook */
} expiry_kinds[EXPIRY__COUNT] = {
	[EXPIRY_LEASE]    = { 'l', "lease(s)",           queue_sweep_lease },
	[EXPIRY_VALUE]    = { 'k', "value(s)",           kv_sweep },
	[EXPIRY_ONCE]     = { 'o', "once id(s)",         once_sweep },
	[EXPIRY_RESPONSE] = { 'i', "stored response(s)", idem_sweep },
	[EXPIRY_CLAIM]    = { 'c', "claim record(s)",    queue_sweep_claim },
	[EXPIRY_HISTORY]  = { 'h', "item history(s)",    history_sweep },
	[EXPIRY_BINDING]  = { 'b', "binding(s)",         binding_sweep },
};

/* --- the index --- */

/* The due time of an index key; INT64_MAX (never) for a key too short to
 * hold one. */
static int64_t
expiry_due(const MDB_val *k)
{
	char hex[17];

	if (k->mv_size < 17)
		return INT64_MAX;
	memcpy(hex, k->mv_data, 16);
	hex[16] = '\0';
	return (int64_t)strtoull(hex, NULL, 16);
}

size_t
expiry_key_make(char kb[static EXPIRY_KEY_MAX], int64_t due, enum expiry_kind kind,
    const char *ref, size_t reflen)
{
	int n = snprintf(kb, EXPIRY_KEY_MAX, "%016llx/%c/%.*s",
	    (unsigned long long)due, expiry_kinds[kind].letter, (int)reflen, ref);

	return n < 0 || n >= EXPIRY_KEY_MAX ? 0 : (size_t)n;
}

int
expiry_put(struct store *st, MDB_txn *txn, int64_t due, enum expiry_kind kind,
    const char *ref, size_t reflen)
{
	char kb[EXPIRY_KEY_MAX];
	MDB_val k = { expiry_key_make(kb, due, kind, ref, reflen), kb }, empty = { 0, "" };

	if (k.mv_size == 0)
		return MDB_BAD_VALSIZE;
	return mdb_put(txn, st->expiry, &k, &empty, 0);
}

enum expiry_kind
expiry_kind_of(const MDB_val *k)
{
	const char *p = (const char *)k->mv_data;

	if (k->mv_size <= EXPIRY_REF_OFFSET || p[16] != '/' || p[18] != '/')
		return EXPIRY__COUNT;
	for (int i = 0; i < EXPIRY__COUNT; i++)
		if (expiry_kinds[i].letter == p[17])
			return (enum expiry_kind)i;
	return EXPIRY__COUNT;
}

/* True when the first index entry is due: one cursor read. */
static bool
expiry_due_in(struct store *st, MDB_txn *txn, int64_t now)
{
	MDB_cursor *cur;
	MDB_val k, v;
	bool due = false;

	if (mdb_cursor_open(txn, st->expiry, &cur) == 0) {
		due = mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 &&
		    expiry_due(&k) <= now;
		mdb_cursor_close(cur);
	}
	return due || history_due(st, txn, now);
}

/* --- the sweep --- */

/*
 * A sweep in progress. ret is sticky, as in Knot's knot_lmdb: the first
 * error stops every later step, so the sweep reads as a straight line
 * (open, take each due entry, close) and returns the one error.
 * MDB_NOTFOUND in ret means the index ran out: not an error.
 */
struct sweep {
	struct store        *st;
	MDB_txn             *txn;
	MDB_cursor          *cur;
	int64_t              now;
	MDB_val              k;	/* the entry in hand */
	int                  ret;
	struct sweep_counts *counts;
};

static void
sweep_open(struct sweep *s)
{
	s->ret = mdb_cursor_open(s->txn, s->st->expiry, &s->cur);
}

/* Move to the first entry (the one before was deleted); false when
 * there is none that is due, or after an error. */
static bool
sweep_next_due(struct sweep *s)
{
	MDB_val v;

	if (s->ret != 0)
		return false;
	s->ret = mdb_cursor_get(s->cur, &s->k, &v, MDB_FIRST);
	return s->ret == 0 && expiry_due(&s->k) <= s->now;
}

/* Hand the entry to its kind's hook, then delete it. Each hook checks
 * that its record still ends at exactly `due`: a record renewed, acked or
 * replaced since has a newer entry of its own, and this stale one is just
 * dropped. */
static void
sweep_take(struct sweep *s)
{
	enum expiry_kind kind = expiry_kind_of(&s->k);
	const char *ref = (const char *)s->k.mv_data + EXPIRY_REF_OFFSET;

	if (kind != EXPIRY__COUNT) {
		s->counts->swept[kind]++;
		s->ret = expiry_kinds[kind].sweep(s->st, s->txn,
		    expiry_due(&s->k), ref, s->k.mv_size - EXPIRY_REF_OFFSET);
	}
	if (s->ret == 0)
		s->ret = mdb_cursor_del(s->cur, 0);
}

static void
sweep_close(struct sweep *s)
{
	if (s->cur != NULL)
		mdb_cursor_close(s->cur);
}

enum casq_err
store_sweep(struct store *st, MDB_txn *txn, int64_t now, int limit,
    struct sweep_counts *counts)
{
	struct sweep_counts local = { 0 };
	struct sweep s = { .st = st, .txn = txn, .now = now,
	    .counts = counts ? counts : &local };
	int n = 0;

	sweep_open(&s);
	for (; n < limit && sweep_next_due(&s); n++)
		sweep_take(&s);
	sweep_close(&s);
	/* History leaves from the front of its log, in time order of its
	 * own: no index entries (store_history.c) */
	if (s.ret == 0 || s.ret == MDB_NOTFOUND)
		s.ret = history_expire(st, txn, now, limit - n,
		    &s.counts->swept[EXPIRY_HISTORY]);
	return s.ret == 0 ? E_OK : store_map_error(s.ret, "expiry sweep");
}

/* --- what went, for the log --- */

static unsigned
sweep_total(const struct sweep_counts *c)
{
	unsigned n = 0;

	for (int i = 0; i < EXPIRY__COUNT; i++)
		n += c->swept[i];
	return n;
}

static void
sweep_log(const struct sweep_counts *c)
{
	char line[256];
	size_t len = 0;

	for (int i = 0; i < EXPIRY__COUNT && len < sizeof line; i++)
		len += (size_t)snprintf(line + len, sizeof line - len, "%s%u %s",
		    i ? ", " : "", c->swept[i], expiry_kinds[i].logged);
	log_info("swept: %s", line);
}

/* Note what a committed sweep removed; on the thread that runs write
 * transactions, which alone touches st->swept. force: log now. */
static void
sweep_note(struct store *st, const struct sweep_counts *c, bool force)
{
	struct sweep_counts *t = &st->swept;
	int64_t now = clock_now_ms();

	for (int i = 0; i < EXPIRY__COUNT; i++)
		t->swept[i] += c->swept[i];
	if (sweep_total(t) == 0)
		return;
	if (!force && now - st->swept_logged_at < SWEPT_LOG_INTERVAL_MS) {
		atomic_store(&st->swept_pending, true);
		return;
	}
	sweep_log(t);
	memset(t, 0, sizeof *t);
	st->swept_logged_at = now;
	atomic_store(&st->swept_pending, false);
}

/* --- the two callers: every write, and the workers' tick --- */

bool
store_sweep_due(struct store *st, int64_t now)
{
	MDB_txn *txn;
	bool due;

	if (atomic_load(&st->swept_pending))
		return true;
	if (store_begin(st, false, &txn) != E_OK)
		return false;
	due = expiry_due_in(st, txn, now);
	mdb_txn_abort(txn);
	return due;
}

void
store_sweep_nested(struct store *st, MDB_txn *txn, int64_t now)
{
	struct sweep_counts c = { 0 };
	MDB_txn *child;

	if (!expiry_due_in(st, txn, now) || mdb_txn_begin(st->env, txn, 0, &child) != 0)
		return;
	if (store_sweep(st, child, now, SWEEP_BATCH, &c) != E_OK)
		mdb_txn_abort(child);
	else if (mdb_txn_commit(child) == 0)	/* frees child either way */
		sweep_note(st, &c, false);
}

enum casq_err
store_sweep_apply(struct store *st, MDB_txn *txn, void *arg)
{
	struct sweep_op *op = arg;
	enum casq_err err;

	memset(&op->counts, 0, sizeof op->counts);	/* may be applied twice */
	err = store_sweep(st, txn, op->now, op->limit, &op->counts);
	if (err == E_OK)
		sweep_note(st, &op->counts, true);
	return err;
}
