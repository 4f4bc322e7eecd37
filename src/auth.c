/*
 * auth.c - API keys. The keys file holds "name:<sha256 hex>" lines, never
 * the keys themselves. Keys are 256 random bits, so an unsalted hash is
 * enough: there is nothing to guess from it. Names are 1-64 of
 * A-Z a-z 0-9 . _ -: they scope request ids ("name/id"), so a name must
 * never contain the '/' that separates the two, and no two keys may share
 * one. A key line may add attributes: tenant=T (default "default"),
 * scope=read|write|admin (default write) and rate=N (requests per
 * second); a line "tenant T max_items=N" sets T's quota (casq-keys(5),
 * docs/api.md).
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

/* A tenant the file names; max_items from its "tenant T max_items=N"
 * line, 0 when it has none. */
struct tenant_line {
	char     name[TENANT_NAME_MAX + 1];
	uint64_t max_items;
};

struct keyring {
	struct keyring_entry *v;
	size_t                n;
	struct tenant_line   *t;	/* every tenant named, lines or not */
	size_t                nt;
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
		[SCOPE_READ] = "read", [SCOPE_WRITE] = "write", [SCOPE_ADMIN] = "admin",
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
	return scope == SCOPE_READ ? "read" : scope == SCOPE_ADMIN ? "admin" : "write";
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

	*why = "attributes are tenant=T, scope=read|write|admin and rate=N";
	if (eq == NULL)
		return false;
	*eq = '\0';
	if (strcmp(attr, "tenant") == 0) {
		*why = "tenant must be 1-64 of A-Z a-z 0-9 . _ -";
		if (!name_valid(eq + 1, strlen(eq + 1), TENANT_NAME_MAX))
			return false;
		strcpy(k->tenant, eq + 1);
		return true;
	}
	if (strcmp(attr, "scope") == 0) {
		*why = "scope must be read, write or admin";
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
	strcpy(e->key.tenant, DEFAULT_TENANT);
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

static struct tenant_line *
tenant_find(const struct keyring *kr, const char *name)
{
	for (size_t i = 0; i < kr->nt; i++)
		if (strcmp(kr->t[i].name, name) == 0)
			return &kr->t[i];
	return NULL;
}

/* The tenant's entry, added (without a quota) when new. */
static struct tenant_line *
tenant_get(struct keyring *kr, const char *name)
{
	struct tenant_line *t = tenant_find(kr, name);

	if (t != NULL)
		return t;
	kr->t = xrealloc(kr->t, (kr->nt + 1) * sizeof *kr->t);
	t = &kr->t[kr->nt++];
	snprintf(t->name, sizeof t->name, "%s", name);
	t->max_items = 0;
	return t;
}

/* "tenant T max_items=N": false and why when malformed or a repeat. */
static bool
keyring_add_tenant(struct keyring *kr, char *line, const char **why)
{
	char *save = NULL, *name, *attr, *end;
	struct tenant_line *t;
	unsigned long long max;

	*why = "expected tenant T max_items=N, T 1-64 of A-Z a-z 0-9 . _ -, N 1 or more";
	strtok_r(line, " \t\r\n", &save);		/* "tenant" */
	name = strtok_r(NULL, " \t\r\n", &save);
	attr = strtok_r(NULL, " \t\r\n", &save);
	if (name == NULL || !name_valid(name, strlen(name), TENANT_NAME_MAX) ||
	    attr == NULL || strncmp(attr, "max_items=", 10) != 0 ||
	    attr[10] < '1' || attr[10] > '9' || strtok_r(NULL, " \t\r\n", &save) != NULL)
		return false;
	errno = 0;
	max = strtoull(attr + 10, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	t = tenant_get(kr, name);
	if (t->max_items != 0) {	/* a quota is at least 1: set by a line */
		*why = "this tenant already has a line";
		return false;
	}
	t->max_items = (uint64_t)max;
	return true;
}

/* A line into kr: a key, or a tenant's quota; false and why. */
static bool
keyring_add_line(struct keyring *kr, char *line, const char **why)
{
	struct keyring_entry e;

	if (strncmp(line, "tenant", 6) == 0 && (line[6] == ' ' || line[6] == '\t'))
		return keyring_add_tenant(kr, line, why);
	if (!keyring_parse_line(line, &e, why))
		return false;
	if (keyring_find(kr, e.key.name) != NULL) {
		*why = "a key of this name is already in the file";
		return false;
	}
	tenant_get(kr, e.key.tenant);
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

uint64_t
keyring_max_items(const struct keyring *kr, const char *tenant)
{
	const struct tenant_line *t = tenant_find(kr, tenant);

	return t ? t->max_items : 0;
}

size_t
keyring_tenant_count(const struct keyring *kr)
{
	return kr->nt;
}

const char *
keyring_tenant(const struct keyring *kr, size_t i)
{
	return kr->t[i].name;
}

void
keyring_free(struct keyring *kr)
{
	if (kr == NULL)
		return;
	free(kr->v);
	free(kr->t);
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
	req->tenant = req->key->tenant;
	if (req->tenant_header == NULL)
		return E_OK;
	/* Acting for another tenant is an admin's; any other key sending
	 * the header is refused rather than ignored. */
	if (req->key->scope != SCOPE_ADMIN)
		return E_FORBIDDEN;
	if (!name_valid(req->tenant_header, strlen(req->tenant_header), TENANT_NAME_MAX))
		return E_BAD_TENANT;
	req->tenant = req->tenant_header;
	return E_OK;
}
