/*
 * store_upgrade_history.c - the step from schema 3 to 4, at open, in the
 * open's transaction (store.c runs it after the steps to 3):
 *   - every item record's header grows from 104 to 128 bytes and every
 *     claim record's from 16 to 40: the history head, zero for now;
 *   - item history moves from "history", where each item had a range of
 *     its own ("tenant:<key length>/key/name/<seq: 16 hex>"), to the
 *     time-ordered log in "events": every old event is read and copied
 *     out, the copies are sorted by time, and history_add appends them in
 *     that order, each item's chain growing as it would have live;
 *   - each item's head then goes where schema 4 keeps it: its item
 *     record, else its claim record, else parked in "heads";
 *   - the per-item expiry entries of kind 'h' go (schema 4's 'h' entries
 *     are parked heads', written by the parking), and "history" is
 *     dropped.
 * An old event that does not decode is skipped and counted, not fatal:
 * history is a record of what happened, not what the items are, and one
 * bad record must not keep casqd from starting. The copies are held in
 * memory (a few dozen bytes and the strings per event) because the log
 * is written while "history" is read, and LMDB's pointers do not outlive
 * a write.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_upgrade.h"

#define SEQ_HEX		16

/* Schema 3's event record: this header, then the claimant, the request
 * id and the annotations. */
struct history_hdr_v3 {
	int64_t  at;
	int64_t  expires_at;
	uint32_t attempt;
	uint8_t  token[4];
	uint16_t annotations_len;
	uint8_t  kind;
	uint8_t  claimant_len;
	uint8_t  request_id_len;
	uint8_t  flags;
	uint8_t  pad[2];
};
_Static_assert(sizeof(struct history_hdr_v3) == 32, "schema 3 history header");
#define HISTORY_V3_HAS_TOKEN	0x01

/* An item of the old history: its queue ("tenant:name") and key, NUL
 * ended, at offsets in the strings, and the head its chain has so far. */
struct old_item {
	size_t   queue, key;
	uint16_t key_len;
	struct history_head head;
};

/* One old event, copied: when it sorts (its time, never before the
 * item's event before it, then the order it was read in) and what
 * history_add needs; its strings at offsets in the strings. */
struct old_event {
	int64_t  sort_at, at;
	size_t   order;
	uint32_t item, attempt;
	size_t   strings;	/* claimant, request id + NUL, annotations */
	uint16_t annotations_len;
	uint8_t  kind, claimant_len, request_id_len, has_token;
	uint8_t  token[4];
};

struct old_history {
	struct buf items;	/* struct old_item */
	struct buf events;	/* struct old_event */
	struct buf strings;
	size_t     nitems, nevents, skipped;
};

/* The item an old key names: *queue "tenant:name" (the tenant "" as
 * "name" alone), *key and its length. false when it is not one. */
static bool
old_key_decode(const MDB_val *k, char queue[static QUEUE_NAME_MAX + 1],
    const char **key, size_t *key_len)
{
	const char *p = k->mv_data, *end = p + k->mv_size - SEQ_HEX - 1;
	const char *colon, *q, *name;
	size_t n = 0, tlen;

	if (k->mv_size < SEQ_HEX + 7 || *end != '/' ||
	    (colon = memchr(p, ':', (size_t)(end - p))) == NULL)
		return false;
	for (q = colon + 1; q < end && *q >= '0' && *q <= '9' && q - colon <= 4; q++)
		n = n * 10 + (size_t)(*q - '0');
	if (q == colon + 1 || q >= end || *q != '/' || n == 0 || n > ITEM_KEY_MAX ||
	    (size_t)(end - (q + 1)) <= n + 1 || q[1 + n] != '/')
		return false;
	*key = q + 1;
	*key_len = n;
	name = q + 1 + n + 1;
	tlen = (size_t)(colon - p);
	if (tlen + (tlen > 0) + (size_t)(end - name) > QUEUE_NAME_MAX)
		return false;
	snprintf(queue, QUEUE_NAME_MAX + 1, "%.*s%s%.*s", (int)tlen, p,
	    tlen ? ":" : "", (int)(end - name), name);
	return true;
}

/* The old record's header, when its lengths add up to the record. */
static bool
old_record_decode(const MDB_val *v, struct history_hdr_v3 *h)
{
	if (v->mv_size < sizeof *h)
		return false;
	memcpy(h, v->mv_data, sizeof *h);
	return v->mv_size == sizeof *h + h->claimant_len + h->request_id_len +
	    h->annotations_len && h->claimant_len <= CLAIMANT_MAX &&
	    h->request_id_len <= HISTORY_REQUEST_ID_MAX &&
	    h->annotations_len <= HISTORY_ANNOTATIONS_MAX &&
	    history_kind_name(h->kind) != NULL;
}

static struct old_item *
item_at(const struct old_history *oh, size_t i)
{
	return (struct old_item *)(void *)oh->items.data + i;
}

static struct old_event *
event_at(const struct old_history *oh, size_t i)
{
	return (struct old_event *)(void *)oh->events.data + i;
}

/* Start a new item when the key names another than the last one read
 * (an item's events are one range, so a change of item is a new one). */
static void
item_note(struct old_history *oh, const char *queue, const char *key, size_t key_len)
{
	const struct old_item *last = oh->nitems ? item_at(oh, oh->nitems - 1) : NULL;
	struct old_item it = { .key_len = (uint16_t)key_len };

	if (last != NULL && strcmp(oh->strings.data + last->queue, queue) == 0 &&
	    last->key_len == key_len && memcmp(oh->strings.data + last->key, key, key_len) == 0)
		return;
	it.queue = oh->strings.len;
	buf_append(&oh->strings, queue, strlen(queue) + 1);
	it.key = oh->strings.len;
	buf_append(&oh->strings, key, key_len);
	buf_append(&oh->strings, "", 1);
	buf_append(&oh->items, &it, sizeof it);
	oh->nitems++;
}

/* Copy one old event, after item_note named its item. */
static void
event_note(struct old_history *oh, const struct history_hdr_v3 *h, const char *tail)
{
	struct old_event e = { .at = h->at, .sort_at = h->at, .order = oh->nevents,
	    .item = (uint32_t)(oh->nitems - 1), .attempt = h->attempt,
	    .strings = oh->strings.len, .annotations_len = h->annotations_len,
	    .kind = h->kind, .claimant_len = h->claimant_len,
	    .request_id_len = h->request_id_len,
	    .has_token = (h->flags & HISTORY_V3_HAS_TOKEN) != 0 };
	const struct old_event *prev = oh->nevents ? event_at(oh, oh->nevents - 1) : NULL;

	/* An item's events stay in their order even if a clock stepped back. */
	if (prev != NULL && prev->item == e.item && prev->sort_at > e.sort_at)
		e.sort_at = prev->sort_at;
	memcpy(e.token, h->token, sizeof e.token);
	/* "claimant request-id NUL annotations": history_add reads the
	 * request id with strlen, the others by length. */
	buf_append(&oh->strings, tail, h->claimant_len + h->request_id_len);
	buf_append(&oh->strings, "", 1);
	buf_append(&oh->strings, tail + h->claimant_len + h->request_id_len, h->annotations_len);
	buf_append(&oh->events, &e, sizeof e);
	oh->nevents++;
}

/* Copy every event of "history" (dbi) into oh. */
static int
history_read(MDB_txn *txn, MDB_dbi dbi, struct old_history *oh)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char queue[QUEUE_NAME_MAX + 1];
		struct history_hdr_v3 h;
		const char *key;
		size_t key_len;

		if (!old_key_decode(&k, queue, &key, &key_len) || !old_record_decode(&v, &h)) {
			oh->skipped++;
			continue;
		}
		item_note(oh, queue, key, key_len);
		event_note(oh, &h, (const char *)v.mv_data + sizeof h);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
event_cmp(const void *a, const void *b)
{
	const struct old_event *x = a, *y = b;

	if (x->sort_at != y->sort_at)
		return x->sort_at < y->sort_at ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Append the sorted copies to the log, each to its item's chain. */
static int
history_replay(struct store *st, MDB_txn *txn, struct old_history *oh)
{
	qsort(oh->events.data, oh->nevents, sizeof(struct old_event), event_cmp);
	for (size_t i = 0; i < oh->nevents; i++) {
		const struct old_event *e = event_at(oh, i);
		struct old_item *it = item_at(oh, e->item);
		const char *s = oh->strings.data + e->strings;
		char token[9];
		struct history_event ev = { .queue = oh->strings.data + it->queue,
		    .key = oh->strings.data + it->key, .key_len = it->key_len,
		    .kind = e->kind, .at = e->at, .attempt = e->attempt,
		    .claimant = s, .claimant_len = e->claimant_len,
		    .request_id = e->request_id_len ? s + e->claimant_len : NULL,
		    .annotations = s + e->claimant_len + e->request_id_len + 1,
		    .annotations_len = e->annotations_len };
		int rc;

		if (e->has_token) {
			hex_encode(e->token, sizeof e->token, token);
			ev.token = token;
		}
		if ((rc = history_add(st, txn, &ev, &it->head)) != 0)
			return rc;
	}
	return 0;
}

/* Put head into the record under ik in dbi at offset, if there is one
 * (*found tells). */
static int
head_write(MDB_txn *txn, MDB_dbi dbi, const MDB_val *ik, size_t offset,
    const struct history_head *head, struct buf *copy, bool *found)
{
	MDB_val v;
	int rc = mdb_get(txn, dbi, (MDB_val *)ik, &v);

	*found = rc == 0;
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if (v.mv_size < offset + sizeof *head)
		return MDB_CORRUPTED;
	copy->len = 0;
	buf_append(copy, v.mv_data, v.mv_size);	/* v points into the page the put rewrites */
	memcpy(copy->data + offset, head, sizeof *head);
	return mdb_put(txn, dbi, (MDB_val *)ik, &(MDB_val){ copy->len, copy->data }, 0);
}

struct placed {
	size_t items, claims, parked;
};

/* Each item's head where schema 4 looks for it first. */
static int
heads_place(struct store *st, MDB_txn *txn, const struct old_history *oh,
    struct placed *n)
{
	struct buf copy = { 0 };
	int rc = 0;

	for (size_t i = 0; i < oh->nitems && rc == 0; i++) {
		const struct old_item *it = item_at(oh, i);
		struct store_key ik;
		bool found;

		if (it->head.last == 0)
			continue;	/* every event of it skipped */
		store_key_make(&ik, oh->strings.data + it->queue,
		    oh->strings.data + it->key, it->key_len);
		if ((rc = head_write(txn, st->items, &ik.val, offsetof(struct item_hdr, history),
		    &it->head, &copy, &found)) != 0 || found) {
			n->items += found;
			continue;
		}
		if ((rc = head_write(txn, st->claimed, &ik.val, offsetof(struct claim_hdr, history),
		    &it->head, &copy, &found)) != 0 || found) {
			n->claims += found;
			continue;
		}
		if ((rc = history_head_park(st, txn, &ik.val, &it->head)) == 0)
			n->parked++;
	}
	buf_free(&copy);
	return rc;
}

/* Delete the expiry entries of kind 'h': schema 3's, one per item range
 * ("<16 hex>/h/<range>"). Their keys are copied first and deleted after
 * the walk, which then never steps a cursor past a deleted entry. */
static int
old_expiry_drop(struct store *st, MDB_txn *txn)
{
	struct buf keys = { 0 };
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->expiry, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const char *p = k.mv_data;
		uint16_t len = (uint16_t)k.mv_size;	/* at most 511 */

		if (k.mv_size > 19 && p[16] == '/' && p[17] == 'h' && p[18] == '/') {
			buf_append(&keys, &len, sizeof len);
			buf_append(&keys, p, len);
		}
	}
	mdb_cursor_close(cur);
	rc = rc == MDB_NOTFOUND ? 0 : rc;
	for (size_t at = 0; rc == 0 && at < keys.len;) {
		uint16_t len;

		memcpy(&len, keys.data + at, sizeof len);
		rc = mdb_del(txn, st->expiry, &(MDB_val){ len, keys.data + at + sizeof len }, NULL);
		at += sizeof len + len;
	}
	buf_free(&keys);
	return rc;
}

/* The record old with its header of old_hdr bytes now hdr (hdr_size,
 * its first old_hdr bytes read from old), when old holds exactly the
 * header and the tail_len bytes its lengths say. */
static int
header_grow(const MDB_val *old, size_t old_hdr, const void *hdr, size_t hdr_size,
    size_t tail_len, struct buf *out)
{
	if (old->mv_size != old_hdr + tail_len)
		return MDB_CORRUPTED;
	buf_append(out, hdr, hdr_size);
	buf_append(out, (const char *)old->mv_data + old_hdr, tail_len);
	return 0;
}

static int
convert_item(const MDB_val *old, struct buf *out)
{
	struct item_hdr n = { 0 };

	if (old->mv_size < ITEM_HDR_V3)
		return MDB_CORRUPTED;
	memcpy(&n, old->mv_data, ITEM_HDR_V3);
	return header_grow(old, ITEM_HDR_V3, &n, sizeof n, n.claimant_len +
	    (size_t)n.payload_len + n.follow_len + n.bind_len, out);
}

static int
convert_claim(const MDB_val *old, struct buf *out)
{
	struct claim_hdr n = { 0 };

	if (old->mv_size < CLAIM_HDR_V3)
		return MDB_CORRUPTED;
	memcpy(&n, old->mv_data, CLAIM_HDR_V3);
	return header_grow(old, CLAIM_HDR_V3, &n, sizeof n,
	    (size_t)n.owner_len + n.bind_len, out);
}

/* Move "history" to the log and drop it; a database without one (made
 * before schema 3, and upgraded to it in this transaction) has none. */
static int
history_move(struct store *st, MDB_txn *txn, struct old_history *oh,
    struct placed *placed)
{
	MDB_dbi dbi;
	int rc = mdb_dbi_open(txn, "history", 0, &dbi);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0 ||
	    (rc = history_read(txn, dbi, oh)) != 0 ||
	    (rc = old_expiry_drop(st, txn)) != 0 ||
	    (rc = history_replay(st, txn, oh)) != 0 ||
	    (rc = heads_place(st, txn, oh, placed)) != 0)
		return rc;
	return mdb_drop(txn, dbi, 1);
}

int
store_upgrade_v3(struct store *st, MDB_txn *txn, char *why, size_t whylen)
{
	struct old_history oh = { 0 };
	struct placed placed = { 0 };
	size_t items, claims;
	int rc;

	if ((rc = upgrade_convert_db(txn, st->items, convert_item, &items)) != 0)
		return upgrade_failed(why, whylen, 4, "items", rc);
	if ((rc = upgrade_convert_db(txn, st->claimed, convert_claim, &claims)) != 0)
		return upgrade_failed(why, whylen, 4, "claimed", rc);
	rc = history_move(st, txn, &oh, &placed);
	buf_free(&oh.items);
	buf_free(&oh.events);
	buf_free(&oh.strings);
	if (rc != 0)
		return upgrade_failed(why, whylen, 4, "history", rc);
	snprintf(why, whylen, "item history moved to the log: %zu events of %zu items "
	    "(%zu unreadable, skipped), heads in items %zu, claim records %zu, "
	    "parked %zu; records converted: items %zu, claimed %zu",
	    oh.nevents, oh.nitems, oh.skipped, placed.items, placed.claims,
	    placed.parked, items, claims);
	return 0;
}
