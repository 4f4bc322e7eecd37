/*
 * fuzz.h - what the libFuzzer targets share: a failed invariant aborts
 * (libFuzzer saves the input that did it), the checks every parsed
 * request must pass, and a temporary directory removed at exit.
 *
 * A target is one .c file with LLVMFuzzerTestOneInput; build.sh links
 * each with casq's sources built by clang with -fsanitize=fuzzer,
 * address,undefined. ASan and UBSan catch memory and arithmetic faults;
 * these checks catch wrong answers that are not crashes.
 */
#ifndef CASQ_FUZZ_H
#define CASQ_FUZZ_H

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant: when it does not hold, say which and abort. */
#define fuzz_check(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s: ",	\
		    __FILE__, __LINE__, #cond);				\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

/* Is s[0..n) one complete JSON text? (yajl, as casq parses bodies) */
static inline bool
fuzz_json_valid(const char *s, size_t n)
{
	yajl_handle h = yajl_alloc(NULL, NULL, NULL);
	yajl_status st = yajl_parse(h, (const unsigned char *)s, n);

	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);
	return st == yajl_status_ok;
}

/* What request_parse_params promises of req->params, whatever it
 * returned: at most 64, each NUL-terminated at its length, names
 * unique, JSON values valid JSON. */
static inline void
fuzz_check_params(const struct request *req)
{
	fuzz_check(req->nparams <= 64, "%zu parameters", req->nparams);
	for (size_t i = 0; i < req->nparams; i++) {
		const struct param *p = &req->params[i];

		fuzz_check(p->name != NULL && p->value != NULL, "param %zu", i);
		fuzz_check(p->value[p->len] == '\0', "param '%s' not terminated", p->name);
		fuzz_check(p->kind >= PARAM_STRING && p->kind <= PARAM_JSON, "param kind %d", p->kind);
		if (p->kind == PARAM_JSON)
			fuzz_check(p->len > 0 && (p->value[0] == '{' || p->value[0] == '[') &&
			    fuzz_json_valid(p->value, p->len),
			    "param '%s' is not a JSON object or array: %s", p->name, p->value);
		for (size_t k = 0; k < i; k++)
			fuzz_check(strcmp(req->params[k].name, p->name) != 0,
			    "param '%s' twice", p->name);
	}
}

static char fuzz_tmp[] = "/tmp/casq-fuzz.XXXXXX";
static bool fuzz_tmp_made;

static int
fuzz_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
fuzz_tmp_remove(void)
{
	nftw(fuzz_tmp, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A private temporary directory, removed when the fuzzer exits normally
 * (a crash leaves it for the post-mortem). Made once: the name mkdtemp
 * gives can itself end in 'X', so the name cannot tell whether it was. */
static inline const char *
fuzz_tmpdir(void)
{
	if (!fuzz_tmp_made) {
		if (mkdtemp(fuzz_tmp) == NULL) {
			perror("mkdtemp");
			exit(1);
		}
		fuzz_tmp_made = true;
		atexit(fuzz_tmp_remove);
	}
	return fuzz_tmp;
}

#endif
