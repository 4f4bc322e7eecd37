/*
 * bench/load.c - fill a queue straight into a casq data directory, far
 * faster than over HTTP: the benchmark pre-fills millions of items.
 *
 *   casq-load DIR MAP_SIZE_MB QUEUE COUNT [FIRST]
 *
 * Enqueues keys "k<FIRST>" .. "k<FIRST+COUNT-1>" (no payload, ready now)
 * into QUEUE, a stored name ("default:welcome": tenant, colon, queue),
 * through the same queue_apply that casqd runs, 100,000 per durable
 * transaction. casqd must not be running on DIR (it would hold
 * casqd.lock; LMDB itself would allow it, but the benchmark loads first).
 * Prints one line: items, seconds, items/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

#define OPS_PER_TXN	100000

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct store *st;
	struct store_config cfg = { 0 };
	char why[256], key[32];
	long long count, first = 0, i, added = 0;
	double t0;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: %s DIR MAP_SIZE_MB QUEUE COUNT [FIRST]\n",
		    argv[0]);
		return 2;
	}
	cfg.dir = argv[1];
	cfg.map_size = (size_t)strtoull(argv[2], NULL, 10) << 20;
	count = strtoll(argv[4], NULL, 10);
	if (argc == 6)
		first = strtoll(argv[5], NULL, 10);
	if (store_open(&cfg, &st, why, sizeof why) != 0) {
		fprintf(stderr, "casq-load: %s\n", why);
		return 1;
	}

	t0 = now_s();
	for (i = 0; i < count; ) {
		MDB_txn *txn;
		long long end = i + OPS_PER_TXN < count ? i + OPS_PER_TXN : count;

		if (store_begin(st, true, &txn) != E_OK) {
			fprintf(stderr, "casq-load: cannot begin a transaction\n");
			return 1;
		}
		for (; i < end; i++) {
			struct queue_op op = {
				.kind = QOP_ENQUEUE,
				.now = clock_now_ms(),
				.queue = argv[3],
				.key = key,
				.claimant = "",
			};
			enum casq_err err;

			snprintf(key, sizeof key, "k%lld", first + i);
			err = queue_apply(st, txn, &op);
			added += op.res.ok;
			queue_result_free(&op.res);
			if (err != E_OK) {
				fprintf(stderr, "casq-load: enqueue %s failed (error %d;"
				    " 507-style errors mean the map is too small)\n",
				    key, (int)err);
				mdb_txn_abort(txn);
				return 1;
			}
		}
		if (store_commit(txn) != E_OK) {
			fprintf(stderr, "casq-load: commit failed\n");
			return 1;
		}
	}
	double secs = now_s() - t0;
	printf("loaded %lld new items into %s in %.2f s (%.0f items/s)\n",
	    added, argv[3], secs, secs > 0 ? added / secs : 0.0);
	store_close(st);
	return 0;
}
