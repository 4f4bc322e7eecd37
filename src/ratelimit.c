/*
 * ratelimit.c - per-key rate limits that hold across all worker processes
 * together. The master maps one table of slots (MAP_SHARED) before it
 * forks any worker, and writes a key's name into a slot before any worker
 * that knows the key exists; a worker only reads names and updates the
 * slot's one 64-bit word, with a compare-and-swap.
 *
 * The word is GCRA's "theoretical arrival time" (Generic Cell Rate
 * Algorithm, as in ATM and many HTTP limiters): a request is allowed when
 * it is no earlier than TAT minus the burst tolerance, and moves TAT one
 * interval on. A key of rate N gets N requests a second and bursts of N.
 * No lock is shared by all requests: requests of different keys touch
 * different words, and one key's requests contend on its word only.
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "http.h"

/* Rate-limited key names the table can hold, across reloads: slots are
 * never given back (a worker of the last keys file may still use one). */
#define RATE_SLOTS	4096
#define NS		1000000000ULL

struct rate_slot {
	char                  name[KEY_NAME_MAX + 1];	/* "" = free */
	_Atomic uint_least64_t tat_ns;	/* CLOCK_MONOTONIC, shared by all processes */
};

struct ratelimit {
	struct rate_slot slot[RATE_SLOTS];
};

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
    "the limiter's word must be lock-free to be shared between processes");

struct ratelimit *
ratelimit_create(void)
{
	void *p = mmap(NULL, sizeof(struct ratelimit), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;	/* zeroed: every slot free */
}

/* FNV-1a: the table is probed from the name's hash. */
static size_t
slot_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h % RATE_SLOTS;
}

static struct rate_slot *
slot_find(struct ratelimit *rl, const char *name, bool add)
{
	size_t i = slot_hash(name);

	for (size_t n = 0; n < RATE_SLOTS; n++, i = (i + 1) % RATE_SLOTS) {
		struct rate_slot *s = &rl->slot[i];

		if (strcmp(s->name, name) == 0 && s->name[0] != '\0')
			return s;
		if (s->name[0] == '\0') {
			if (!add)
				return NULL;
			strcpy(s->name, name);	/* name_valid: at most KEY_NAME_MAX */
			return s;
		}
	}
	return NULL;
}

bool
ratelimit_register(struct ratelimit *rl, const struct keyring *kr)
{
	bool ok = true;

	for (size_t i = 0; i < keyring_count(kr); i++) {
		const struct api_key *k = keyring_key(kr, i);

		if (k->rate > 0 && slot_find(rl, k->name, true) == NULL)
			ok = false;
	}
	return ok;
}

static uint64_t
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

bool
ratelimit_take(struct ratelimit *rl, const struct api_key *key,
    int *retry_after_s)
{
	struct rate_slot *s;
	uint64_t now, interval, tolerance, tat, base;

	*retry_after_s = 0;
	if (rl == NULL || key->rate == 0 || (s = slot_find(rl, key->name, false)) == NULL)
		return true;	/* unlimited, or a key the master never saw */
	interval = NS / key->rate;
	tolerance = interval * (key->rate - 1);	/* a burst of rate at once */
	now = monotonic_ns();
	tat = atomic_load_explicit(&s->tat_ns, memory_order_relaxed);
	do {
		base = tat > now ? tat : now;
		if (base - now > tolerance) {
			uint64_t wait = base - now - tolerance;

			*retry_after_s = (int)((wait + NS - 1) / NS);
			return false;
		}
	} while (!atomic_compare_exchange_weak_explicit(&s->tat_ns, &tat,
	    base + interval, memory_order_relaxed, memory_order_relaxed));
	return true;
}
