/*
 * auth.c - API keys. The keys file holds "name:<sha256 hex>" lines, never
 * the keys themselves. Keys are 256 random bits, so an unsalted hash is
 * enough: there is nothing to guess from it. Names are 1-64 of
 * A-Z a-z 0-9 . _ -: they scope request ids ("name/id"), so a name must
 * never contain the '/' that separates the two.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "http.h"

#define KEY_PRESENTED_MAX 256	/* longer Authorization values are refused unhashed */

struct keyring_entry {
	char          name[KEY_NAME_MAX + 1];
	unsigned char hash[32];
};

struct keyring {
	struct keyring_entry *v;
	size_t                n;
};

static bool
hex_decode32(const char *hex, unsigned char out[32])
{
	if (strspn(hex, "0123456789abcdefABCDEF") != 64 || hex[64] != '\0')
		return false;
	for (int i = 0; i < 32; i++) {
		unsigned int byte;
		if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
			return false;
		out[i] = (unsigned char)byte;
	}
	return true;
}

/* One "name:hash" line into e; false when malformed. */
static bool
keyring_parse_line(char *line, struct keyring_entry *e)
{
	char *colon = strchr(line, ':');
	char *hash;
	size_t len;

	if (colon == NULL || !name_valid(line, (size_t)(colon - line), KEY_NAME_MAX))
		return false;
	hash = colon + 1;
	len = strcspn(hash, " \t\r\n");
	if (len != 64 || hash[len + strspn(hash + len, " \t\r\n")] != '\0')
		return false;
	hash[len] = '\0';
	memcpy(e->name, line, (size_t)(colon - line));
	e->name[colon - line] = '\0';
	return hex_decode32(hash, e->hash);
}

struct keyring *
keyring_load(const char *path, char *why, size_t whylen)
{
	struct keyring *kr;
	char line[512];
	int lineno = 0;
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
		kr->v = xrealloc(kr->v, (kr->n + 1) * sizeof *kr->v);
		if (!keyring_parse_line(p, &kr->v[kr->n])) {
			snprintf(why, whylen, "%s:%d: expected name:<64 hex digits>, "
			    "the name 1-64 of A-Z a-z 0-9 . _ -", path, lineno);
			fclose(f);
			keyring_free(kr);
			return NULL;
		}
		kr->n++;
	}
	fclose(f);
	if (kr->n == 0) {
		snprintf(why, whylen, "keys file %s holds no key (mint one with casqd --mint-key NAME)", path);
		keyring_free(kr);
		return NULL;
	}
	return kr;
}

void
keyring_free(struct keyring *kr)
{
	if (kr == NULL)
		return;
	free(kr->v);
	free(kr);
}

const char *
keyring_match(const struct keyring *kr, const char *key)
{
	unsigned char h[32];
	const char *found = NULL;

	sha256(key, strlen(key), h);
	/* Compare against every entry, always: no early exit to time. */
	for (size_t i = 0; i < kr->n; i++)
		if (CRYPTO_memcmp(h, kr->v[i].hash, sizeof h) == 0)
			found = kr->v[i].name;
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
	    (req->key_name = keyring_match(kr, key)) == NULL)
		return E_INVALID_API_KEY;
	return E_OK;
}
