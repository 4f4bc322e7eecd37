/*
 * worker_reply.c - a worker's answers: a response written onto its
 * FastCGI stream, and the completer, the thread that answers writes once
 * the commit that carries them is durable.
 *
 * The committer (store_batch.c) hands each committed batch here and goes
 * on to the next commit; the completer runs the batch's done callbacks,
 * which render and send each reply (worker.c's exchange_committed), in
 * commit order. Sending a reply never blocks: what a peer does not take
 * at once waits in its connection (conn.c) and is sent on EPOLLOUT by a
 * serving thread, so one slow peer holds up neither the commits nor the
 * other replies.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "http.h"

struct worker_reply {
	pthread_t            thread;
	pthread_mutex_t      mu;
	pthread_cond_t       committed;	/* a batch was handed over */
	struct commit_batch *head, **tail;
	bool                 waiting;	/* the completer sleeps on committed */
	bool                 stop;
};

#define FCGI_STDOUT		6
#define FCGI_END_REQUEST	3
/* FCGI_STDOUT content per record: the most a record holds, rounded down
 * to 8 so that only the last one needs padding. */
#define STDOUT_CHUNK		65528

static void
record_header(struct buf *out, int type, int id, size_t clen, size_t plen)
{
	unsigned char h[FCGI_HEADER_LEN] = {
		1, (unsigned char)type, (unsigned char)(id >> 8), (unsigned char)id,
		(unsigned char)(clen >> 8), (unsigned char)clen, (unsigned char)plen, 0
	};

	buf_append(out, h, sizeof h);
}

/* The reply is written here, not by libfcgi, whose writer blocks on the
 * socket: conn.c sends it without waiting. One buffer, one send. */
void
worker_reply_render(const struct response *res, int id, struct buf *out)
{
	static const unsigned char zeros[8];
	static const unsigned char end_body[8] = { 0, 0, 0, 0, 0 };	/* status 0, complete */
	char head[512], retry[32] = "";
	size_t total, seg_off = 0;
	int n, i = 0;

	if (res->retry_after > 0)
		snprintf(retry, sizeof retry, "Retry-After: %d\r\n", res->retry_after);
	n = snprintf(head, sizeof head,
	    "Status: %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Cache-Control: no-store\r\n"
	    "Content-Length: %zu\r\n"
	    "%s%s%s%s"
	    "\r\n", res->status, res->reason,
	    res->content_type ? res->content_type : "application/json", res->body.len + 1,
	    res->allow ? "Allow: " : "", res->allow ? res->allow : "",
	    res->allow ? "\r\n" : "", retry);
	/* the CGI answer, cut into records */
	const struct { const void *p; size_t n; } seg[] = {
		{ head, (size_t)n }, { res->body.data, res->body.len }, { "\n", 1 },
	};

	total = (size_t)n + res->body.len + 1;
	buf_reserve(out, total + total / STDOUT_CHUNK * 16 + 48);
	for (size_t done = 0, clen, plen; done < total; done += clen) {
		clen = total - done < STDOUT_CHUNK ? total - done : STDOUT_CHUNK;
		plen = (8 - clen % 8) % 8;
		record_header(out, FCGI_STDOUT, id, clen, plen);
		for (size_t left = clen, k; left > 0; left -= k) {
			k = seg[i].n - seg_off < left ? seg[i].n - seg_off : left;
			if (k > 0)	/* an empty body may have no data */
				buf_append(out, (const char *)seg[i].p + seg_off, k);
			if ((seg_off += k) == seg[i].n) {
				i++;
				seg_off = 0;
			}
		}
		buf_append(out, zeros, plen);
	}
	record_header(out, FCGI_STDOUT, id, 0, 0);
	record_header(out, FCGI_END_REQUEST, id, sizeof end_body, 0);
	buf_append(out, end_body, sizeof end_body);
}

/* The committer's hand-off (committer_hand_fn): on the committer thread. */
void
worker_reply_committed(void *arg, struct commit_batch *batch)
{
	struct worker_reply *wr = arg;
	bool wake;

	pthread_mutex_lock(&wr->mu);
	*wr->tail = batch;
	wr->tail = &batch->next;
	wake = wr->waiting;	/* a busy completer looks at the queue anyway */
	pthread_mutex_unlock(&wr->mu);
	if (wake)
		pthread_cond_signal(&wr->committed);
}

/*
 * The completer thread.
 * Owns: the queue of committed batches (under mu), and each batch it
 *   took, until its last callback has run.
 * Frees: each batch and, through the done callbacks, each write's
 *   exchange: its request, its response, its op and everything the op
 *   borrowed (worker.c's header has the table).
 * Blocks on: mu and the committed condition while nothing is committed;
 *   never on a peer (conn_reply does not wait).
 * Exits: once stop is set and the queue is empty. worker_reply_stop
 *   sets stop only after the committer stopped, so every write handed
 *   over is answered first.
 */
static void *
completer_main(void *arg)
{
	struct worker_reply *wr = arg;
	struct commit_batch *batch, *next;

	pthread_mutex_lock(&wr->mu);
	for (;;) {
		wr->waiting = true;
		while (wr->head == NULL && !wr->stop)
			pthread_cond_wait(&wr->committed, &wr->mu);
		wr->waiting = false;
		if ((batch = wr->head) == NULL)
			break;
		wr->head = NULL;
		wr->tail = &wr->head;
		pthread_mutex_unlock(&wr->mu);
		for (; batch; batch = next) {
			next = batch->next;
			commit_batch_finish(batch);
		}
		pthread_mutex_lock(&wr->mu);
	}
	pthread_mutex_unlock(&wr->mu);
	return NULL;
}

struct worker_reply *
worker_reply_start(void)
{
	struct worker_reply *wr = xcalloc(1, sizeof *wr);

	wr->tail = &wr->head;
	pthread_mutex_init(&wr->mu, NULL);
	pthread_cond_init(&wr->committed, NULL);
	if (pthread_create(&wr->thread, NULL, completer_main, wr) != 0) {
		pthread_mutex_destroy(&wr->mu);
		pthread_cond_destroy(&wr->committed);
		free(wr);
		return NULL;
	}
	return wr;
}

void
worker_reply_stop(struct worker_reply *wr)
{
	if (wr == NULL)
		return;
	pthread_mutex_lock(&wr->mu);
	wr->stop = true;
	pthread_cond_signal(&wr->committed);
	pthread_mutex_unlock(&wr->mu);
	pthread_join(wr->thread, NULL);
	pthread_mutex_destroy(&wr->mu);
	pthread_cond_destroy(&wr->committed);
	free(wr);
}
