/*
 * worker_reply.c - a worker's answers: a response written onto its
 * FastCGI stream, and the completer, the thread that answers writes once
 * the commit that carries them is durable.
 *
 * The committer (store_batch.c) hands each committed batch here and goes
 * on to the next commit; the completer runs the batch's done callbacks,
 * which render and send each reply (worker.c's exchange_committed), in
 * commit order. Sending a reply can block on a slow peer (for
 * PEER_TIMEOUT_S at most), and that must never hold up a commit.
 */
#include <fcgiapp.h>
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

/* Headers are formatted here, not with FCGX_FPrintF: libfcgi has its own
 * printf that does not know %zu. */
void
worker_reply_send(struct FCGX_Request *fr, const struct response *res)
{
	char head[512], retry[32] = "";
	int n;

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

	FCGX_PutStr(head, n, fr->out);
	FCGX_PutStr(res->body.data, (int)res->body.len, fr->out);
	FCGX_PutStr("\n", 1, fr->out);
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
 *   a peer that does not read its reply (the socket's send timeout,
 *   PEER_TIMEOUT_S).
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
