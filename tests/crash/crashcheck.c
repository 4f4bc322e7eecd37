/*
 * crashcheck.c - crashcheck DIR [EXPECT]: is the database in DIR one that
 * casq may be left with? It must open (LMDB picks its newest intact meta
 * page), pass the consistency walk (store_verify), and hold everything
 * EXPECT lists, one fact a line, each from an answer a client received:
 *
 *   Q queue key      enqueued: queued now, or consumed (a claim record)
 *   C queue key      consumed: a claim record and no item
 *   K ns key         a value exists
 *   N ns key n       a counter holds at least n
 *   A queue key      never happened: neither queued nor consumed
 *
 * Prints "problem: ..." for what the walk found, "missing: ..." for each
 * fact that does not hold, then one summary line. Exit status: 0 all
 * good, 1 problems or missing facts, 2 the database did not open or the
 * walk could not read it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static void
print_problem(void *ctx, const char *problem)
{
	printf("problem: %s\n", problem);
}

static bool
has(MDB_txn *txn, MDB_dbi dbi, const char *a, const char *b, MDB_val *v)
{
	char key[600];
	MDB_val k, tmp;
	int n = snprintf(key, sizeof key, "%s/%s", a, b);

	k.mv_size = (size_t)n;
	k.mv_data = key;
	return mdb_get(txn, dbi, &k, v ? v : &tmp) == 0;
}

/* One fact; true when it holds. */
static bool
fact(struct store *st, MDB_txn *txn, const char *line)
{
	char kind, a[128], b[300];
	long long n = 0;
	MDB_val v;

	if (sscanf(line, "%c %127s %299s %lld", &kind, a, b, &n) < 3)
		return false;
	switch (kind) {
	case 'Q':
		return has(txn, st->items, a, b, NULL) || has(txn, st->claimed, a, b, NULL);
	case 'A':
		return !has(txn, st->items, a, b, NULL) && !has(txn, st->claimed, a, b, NULL);
	case 'C':
		return has(txn, st->claimed, a, b, NULL) && !has(txn, st->items, a, b, NULL);
	case 'K':
		return has(txn, st->kv, a, b, NULL);
	case 'N': {
		char text[32];
		size_t len;

		if (!has(txn, st->kv, a, b, &v) || v.mv_size < 32)
			return false;
		len = v.mv_size - 32 < sizeof text - 1 ? v.mv_size - 32 : sizeof text - 1;
		memcpy(text, (char *)v.mv_data + 32, len);
		text[len] = '\0';
		return strtoll(text, NULL, 10) >= n;
	}
	}
	return false;
}

int
main(int argc, char **argv)
{
	struct store_config cfg = { .map_size = 256 << 10 };
	struct store *st;
	size_t problems = 0, missing = 0, facts = 0;
	char why[512], line[1024];
	MDB_txn *txn;
	FILE *f;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: crashcheck DIR [EXPECT]\n");
		return 2;
	}
	cfg.dir = argv[1];
	log_threshold = LOG_ERROR;
	if (store_open(&cfg, &st, why, sizeof why) != 0) {
		printf("open failed: %s\n", why);
		return 2;
	}
	if (store_verify(st, print_problem, NULL, &problems) != E_OK) {
		printf("walk failed after %zu problem(s)\n", problems);
		store_close(st);
		return 2;
	}
	if (argc == 3) {
		if ((f = fopen(argv[2], "r")) == NULL || store_begin(st, false, &txn) != E_OK) {
			printf("cannot read %s\n", argv[2]);
			store_close(st);
			return 2;
		}
		while (fgets(line, sizeof line, f)) {
			line[strcspn(line, "\n")] = '\0';
			if (*line == '\0')
				continue;
			facts++;
			if (!fact(st, txn, line)) {
				missing++;
				if (missing <= 20)
					printf("missing: %s\n", line);
			}
		}
		fclose(f);
		mdb_txn_abort(txn);
	}
	store_close(st);
	printf("%zu problem(s), %zu of %zu fact(s) missing\n", problems, missing, facts);
	return problems || missing ? 1 : 0;
}
