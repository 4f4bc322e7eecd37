/*
 * auth.c - API keys. The keys file holds "name:<sha256 hex>" lines, never
 * the keys themselves. Keys are 256 random bits, so an unsalted hash is
 * enough: there is nothing to guess from it. Names are 1-64 of
 * A-Z a-z 0-9 . _ -: they scope request ids ("name/id"), so a name must
 * never contain the '/' that separates the two, and no two keys may share
 * one. A key line may add attributes: scope=read|write (default
 * write) and rate=N (requests per second; casq-keys(5), docs/api.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "http.h"

#define KEY_PRESENTED_MAX 256	/* longer Authorization values are refused unhashed */
/* A key's rate limit: more than a million requests a second is no limit
 * casqd could enforce (or serve). */
#define KEY_RATE_MAX	1000000

struct keyring_entry {
	struct api_key key;
	unsigned char  hash[32];
};

struct keyring {
	struct keyring_entry *v;
	size_t                n;
};

static bool
hex_decode32(const char *hex, size_t n, unsigned char out[32])
{
	if (n != 64 || strspn(hex, "0123456789abcdefABCDEF") < 64)
		return false;
	for (int i = 0; i < 32; i++) {
		unsigned int byte;
		if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
			return false;
		out[i] = (unsigned char)byte;
	}
	return true;
}

bool
key_scope_parse(const char *v, enum key_scope *scope)
{
	static const char *const names[] = {
		[SCOPE_READ] = "read", [SCOPE_WRITE] = "write",
	};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i] != NULL && strcmp(v, names[i]) == 0) {
			*scope = (enum key_scope)i;
			return true;
		}
	return false;
}

const char *
key_scope_name(enum key_scope scope)
{
	return scope == SCOPE_READ ? "read" : "write";
}

static bool
parse_rate(const char *v, uint32_t *rate)
{
	char *end;
	unsigned long n;

	if (*v < '1' || *v > '9')
		return false;
	n = strtoul(v, &end, 10);
	if (*end != '\0' || n > KEY_RATE_MAX)
		return false;
	*rate = (uint32_t)n;
	return true;
}

/* One "attr=value" of a key line; why says what is wrong. */
static bool
parse_key_attr(char *attr, struct api_key *k, const char **why)
{
	char *eq = strchr(attr, '=');

	*why = "attributes are scope=read|write and rate=N";
	if (eq == NULL)
		return false;
	*eq = '\0';
	if (strcmp(attr, "scope") == 0) {
		*why = "scope must be read or write";
		return key_scope_parse(eq + 1, &k->scope);
	}
	if (strcmp(attr, "rate") == 0) {
		*why = "rate must be requests per second, 1 to 1000000";
		return parse_rate(eq + 1, &k->rate);
	}
	return false;
}

/* One "name:hash [attr=value ...]" line into e; false (and why) when
 * malformed. */
static bool
keyring_parse_line(char *line, struct keyring_entry *e, const char **why)
{
	char *colon = strchr(line, ':'), *hash, *attr, *save = NULL;
	size_t len;

	*why = "expected name:<64 hex digits>, the name 1-64 of A-Z a-z 0-9 . _ -";
	if (colon == NULL || !name_valid(line, (size_t)(colon - line), KEY_NAME_MAX))
		return false;
	hash = colon + 1;
	len = strcspn(hash, " \t\r\n");
	if (!hex_decode32(hash, len, e->hash))
		return false;
	memcpy(e->key.name, line, (size_t)(colon - line));
	e->key.name[colon - line] = '\0';
	e->key.scope = SCOPE_WRITE;
	e->key.rate = 0;
	for (attr = strtok_r(hash + len, " \t\r\n", &save); attr != NULL;
	    attr = strtok_r(NULL, " \t\r\n", &save))
		if (!parse_key_attr(attr, &e->key, why))
			return false;
	return true;
}

static const struct keyring_entry *
keyring_find(const struct keyring *kr, const char *name)
{
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->v[i].key.name, name) == 0)
			return &kr->v[i];
	return NULL;
}

/* A line into kr: a key (nothing else is defined yet); false and why. */
static bool
keyring_add_line(struct keyring *kr, char *line, const char **why)
{
	struct keyring_entry e;

	if (!keyring_parse_line(line, &e, why))
		return false;
	if (keyring_find(kr, e.key.name) != NULL) {
		*why = "a key of this name is already in the file";
		return false;
	}
	kr->v = xrealloc(kr->v, (kr->n + 1) * sizeof *kr->v);
	kr->v[kr->n++] = e;
	return true;
}

struct keyring *
keyring_load(const char *path, char *why, size_t whylen)
{
	struct keyring *kr;
	char line[1024];
	int lineno = 0;
	const char *bad;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(why, whylen, "cannot read keys file %s: %s", path, strerror(errno));
		return NULL;
	}
	kr = xcalloc(1, sizeof *kr);
	while (fgets(line, sizeof line, f) != NULL) {
		char *p = line + strspn(line, " \t");

		lineno++;
		if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
			continue;
		if (!keyring_add_line(kr, p, &bad)) {
			snprintf(why, whylen, "%s:%d: %s", path, lineno, bad);
			fclose(f);
			keyring_free(kr);
			return NULL;
		}
	}
	fclose(f);
	if (kr->n == 0) {
		snprintf(why, whylen, "keys file %s holds no key (mint one with casqd --mint-key NAME)", path);
		keyring_free(kr);
		return NULL;
	}
	return kr;
}

size_t
keyring_count(const struct keyring *kr)
{
	return kr->n;
}

const struct api_key *
keyring_key(const struct keyring *kr, size_t i)
{
	return &kr->v[i].key;
}

void
keyring_free(struct keyring *kr)
{
	if (kr == NULL)
		return;
	free(kr->v);
	free(kr);
}

const struct api_key *
keyring_match(const struct keyring *kr, const char *key)
{
	unsigned char h[32];
	const struct api_key *found = NULL;

	sha256(key, strlen(key), h);
	/* Compare against every entry, always: no early exit to time. */
	for (size_t i = 0; i < kr->n; i++)
		if (CRYPTO_memcmp(h, kr->v[i].hash, sizeof h) == 0)
			found = &kr->v[i].key;
	return found;
}

void
keyring_mint(const char *name, char key[static 80], char line[static 256])
{
	unsigned char raw[32], h[32];
	char hex[65];

	random_bytes(raw, sizeof raw);
	hex_encode(raw, sizeof raw, hex);
	snprintf(key, 80, "casq_%s", hex);
	sha256(key, strlen(key), h);
	hex_encode(h, sizeof h, hex);
	snprintf(line, 256, "%s:%s", name, hex);
}

/* The key from "Authorization: Bearer <key>" or "X-Api-Key: <key>". */
static const char *
presented_key(const struct request *req)
{
	const char *a = req->authorization;

	if (req->api_key != NULL && *req->api_key != '\0')
		return req->api_key;
	if (a != NULL && strncasecmp(a, "Bearer ", 7) == 0) {
		a += 7;
		while (*a == ' ')
			a++;
		return a;
	}
	return NULL;
}

enum casq_err
request_authenticate(struct request *req, const struct keyring *kr)
{
	const char *key = presented_key(req);

	if (key == NULL || *key == '\0')
		return E_MISSING_API_KEY;
	if (strlen(key) > KEY_PRESENTED_MAX ||
	    (req->key = keyring_match(kr, key)) == NULL)
		return E_INVALID_API_KEY;
	return E_OK;
}
