/*
 * conn.c - a worker's connections from its FastCGI peers (nginx), read
 * and written without blocking: the bytes read and not yet handed to
 * libfcgi, the reply not yet sent, and where each connection waits.
 *
 * A connection is always in one of four places, and only its owner
 * touches it:
 *   idle     kept alive between requests, in the epoll set (EPOLLIN)
 *   reading  part of a request read (a peer that trickles), in epoll
 *   sending  part of its reply sent (a peer that stops reading), in epoll
 *            for EPOLLOUT
 *   busy     with a serving thread, the committer or the completer
 * The first three are lists in the order connections entered them, so
 * the oldest is at the head: caps close the oldest first, and the tick
 * (conns_reap) closes those past their deadline from the head on. The
 * lists are under one mutex; a serving thread takes its connection off
 * them when it hands a request over, and a connection is closed (its
 * descriptor freed) only after it is off them. Closing for a cap or a
 * deadline is therefore a shutdown(2) of a descriptor that is still
 * open: epoll then reports the connection to one serving thread (or its
 * owner's next read or write fails), which closes it. No thread ever
 * waits on a peer: reads and writes are MSG_DONTWAIT.
 *
 * The limits (daemon.h and main.c say why these numbers):
 *   CONN_READING_MAX  connections with part of a request read, per worker
 *   CONN_IDLE_MAX     kept-alive connections waiting, per worker
 *   --peer-timeout    a request must arrive whole within it of its first
 *                     byte (10 s), and a reply be taken within as long
 *   --idle-timeout    a kept connection idle this long is closed (75 s)
 * Times are the monotonic clock's, never the test clock (conn_clock_ms).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

struct conn_list {
	struct conn *head, *tail;
	size_t       n;
};

/* What was closed or refused since the tick's last line. */
enum conn_closed_why {
	CLOSED_REFUSED, CLOSED_IDLE_CAP, CLOSED_IDLE_TIMEOUT, CLOSED_READING_CAP,
	CLOSED_REQUEST_TIMEOUT, CLOSED_SEND_TIMEOUT, CLOSED_WHY_N
};

static const char *const closed_names[CLOSED_WHY_N] = {
	[CLOSED_REFUSED] = "refused",
	[CLOSED_IDLE_CAP] = "idle over the cap",
	[CLOSED_IDLE_TIMEOUT] = "idle too long",
	[CLOSED_READING_CAP] = "reading over the cap",
	[CLOSED_REQUEST_TIMEOUT] = "request not whole in time",
	[CLOSED_SEND_TIMEOUT] = "reply not taken in time",
};

struct conns {
	int              epfd;
	int64_t          peer_timeout_ms, idle_timeout_ms;
	pthread_mutex_t  mu;
	struct conn_list idle, reading, sending;
	unsigned long    closed[CLOSED_WHY_N];	/* since the last line */
	const char      *last_refusal;
};

int64_t
conn_clock_ms(void)
{
	struct timespec ts;

	/* real time, never the test clock: a test that moves the clock an
	 * hour forward must not close nginx's kept connections */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the lists (under mu) ---------------------------------------------- */

static void
list_del(struct conn *c)
{
	struct conn_list *l = c->list;

	if (l == NULL)
		return;
	*(c->prev ? &c->prev->next : &l->head) = c->next;
	*(c->next ? &c->next->prev : &l->tail) = c->prev;
	c->prev = c->next = NULL;
	c->list = NULL;
	l->n--;
}

static void
list_add(struct conn_list *l, struct conn *c)
{
	c->prev = l->tail;
	c->next = NULL;
	*(l->tail ? &l->tail->next : &l->head) = c;
	l->tail = c;
	c->list = l;
	l->n++;
}

/* Close c for why: its owner (epoll's next event, or the thread in the
 * middle of its read or write) sees the shutdown and frees it. */
static void
doom(struct conns *cs, struct conn *c, enum conn_closed_why why)
{
	list_del(c);
	shutdown(c->fd, SHUT_RDWR);
	cs->closed[why]++;
}

/* Into list l (unless there already) with the cap: the oldest go first. */
static void
list_enter(struct conns *cs, struct conn_list *l, struct conn *c, size_t cap,
    enum conn_closed_why why)
{
	if (c->list == l)
		return;
	list_del(c);
	c->since = conn_clock_ms();
	list_add(l, c);
	while (l->n > cap)
		doom(cs, l->head, why);
}

/* --- connections ------------------------------------------------------- */

struct conns *
conns_new(int epfd, int peer_timeout_s, int idle_timeout_s)
{
	struct conns *cs = xcalloc(1, sizeof *cs);

	cs->epfd = epfd;
	cs->peer_timeout_ms = (int64_t)peer_timeout_s * 1000;
	cs->idle_timeout_ms = (int64_t)idle_timeout_s * 1000;
	pthread_mutex_init(&cs->mu, NULL);
	return cs;
}

static void
conn_free(struct conn *c)
{
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* The worker stopped: every thread is gone, so what is left waits in a
 * list. */
void
conns_free(struct conns *cs)
{
	struct conn_list *lists[] = { &cs->idle, &cs->reading, &cs->sending };

	if (cs == NULL)
		return;
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
		while (lists[i]->head != NULL) {
			struct conn *c = lists[i]->head;

			list_del(c);
			conn_free(c);
		}
	pthread_mutex_destroy(&cs->mu);
	free(cs);
}

struct conn *
conn_new(int fd)
{
	struct conn *c = xcalloc(1, sizeof *c);

	c->fd = fd;
	return c;
}

void
conn_close(struct conns *cs, struct conn *c)
{
	pthread_mutex_lock(&cs->mu);
	list_del(c);
	pthread_mutex_unlock(&cs->mu);
	conn_free(c);	/* out of epoll with its descriptor */
}

/* Watch c for events (one, one-shot) after putting it in list l. */
static void
conn_wait(struct conns *cs, struct conn *c, struct conn_list *l, size_t cap,
    enum conn_closed_why why, uint32_t events)
{
	struct epoll_event ev = { .events = events | EPOLLONESHOT, .data.ptr = c };

	pthread_mutex_lock(&cs->mu);
	list_enter(cs, l, c, cap, why);
	pthread_mutex_unlock(&cs->mu);
	if (epoll_ctl(cs->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0 &&
	    (errno != ENOENT || epoll_ctl(cs->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)) {
		log_warn("epoll_ctl: %s", strerror(errno));
		conn_close(cs, c);
	}
}

/* Between requests: idle, or, with the next request's first bytes already
 * read (a peer that sends before it has its answer), reading; EPOLLOUT
 * then reports it at once, and a serving thread takes that request. */
void
conn_wait_request(struct conns *cs, struct conn *c)
{
	if (c->in_len > 0)
		conn_wait(cs, c, &cs->reading, CONN_READING_MAX, CLOSED_READING_CAP,
		    EPOLLIN | EPOLLOUT);
	else
		conn_wait(cs, c, &cs->idle, CONN_IDLE_MAX, CLOSED_IDLE_CAP, EPOLLIN);
}

/* Refused: why goes into the tick's line (a hostile peer must not be
 * able to fill the disk with log lines). */
static void
conn_refuse(struct conns *cs, struct conn *c, const char *why)
{
	pthread_mutex_lock(&cs->mu);
	cs->closed[CLOSED_REFUSED]++;
	cs->last_refusal = why;
	pthread_mutex_unlock(&cs->mu);
	log_debug("peer refused: %s", why);
	conn_close(cs, c);
}

/* --- reading ----------------------------------------------------------- */

/* Read what the peer sent after the bytes c holds, into buf (which holds
 * FCGI_REQUEST_BYTES_MAX): *len = how much buf then holds. False: the
 * connection failed. */
static bool
conn_recv(struct conn *c, unsigned char *buf, size_t *len)
{
	if (c->in_len > 0)	/* c->in is NULL when nothing is kept */
		memcpy(buf, c->in, c->in_len);
	*len = c->in_len;
	while (*len < FCGI_REQUEST_BYTES_MAX && !c->eof) {
		size_t room = FCGI_REQUEST_BYTES_MAX - *len;
		ssize_t n = recv(c->fd, buf + *len, room, MSG_DONTWAIT);

		if (n > 0 && (size_t)n < room) {
			/* all there was: asking again would only say EAGAIN
			 * (a syscall per request); epoll reports what comes */
			*len += (size_t)n;
			break;
		} else if (n > 0)
			*len += (size_t)n;
		else if (n == 0)
			c->eof = true;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		else if (errno != EINTR)
			return false;
	}
	return true;
}

/* Keep buf[from, len) in c for the next read. */
static void
conn_keep(struct conn *c, const unsigned char *buf, size_t from, size_t len)
{
	size_t n = len - from;

	if (n == 0) {
		free(c->in);
		c->in = NULL;
	} else {
		c->in = xrealloc(c->in, n);
		memmove(c->in, buf + from, n);
	}
	c->in_len = n;
}

bool
conn_read(struct conns *cs, struct conn *c, unsigned char *buf,
    struct conn_request *r)
{
	const char *why = NULL;
	size_t len;
	bool was_empty = c->in_len == 0;

	if (!conn_recv(c, buf, &len)) {
		conn_close(cs, c);
		return false;
	}
	r->bytes = buf;
	r->cut = false;
	switch (fcgi_guard_check(&c->guard, buf, len, &r->gr, &why)) {
	case GUARD_REQUEST:
		conn_keep(c, buf, r->gr.used, len);
		memset(&c->guard, 0, sizeof c->guard);
		pthread_mutex_lock(&cs->mu);
		list_del(c);		/* busy: no cap or deadline applies */
		pthread_mutex_unlock(&cs->mu);
		return true;
	case GUARD_REFUSE:
		conn_refuse(cs, c, why);
		return false;
	case GUARD_MORE:
		break;
	}
	if (c->eof) {
		/* The peer closed its side: a request whose params came whole
		 * is answered (400 Incomplete Body), anything else dropped. */
		r->cut = fcgi_guard_cut(&c->guard, &r->gr, r->end_stdin);
		if (r->cut) {
			conn_keep(c, buf, len, len);
			pthread_mutex_lock(&cs->mu);
			list_del(c);
			pthread_mutex_unlock(&cs->mu);
			return true;
		}
		conn_close(cs, c);
		return false;
	}
	conn_keep(c, buf, 0, len);
	if (len == 0 && was_empty)
		conn_wait(cs, c, &cs->idle, CONN_IDLE_MAX, CLOSED_IDLE_CAP, EPOLLIN);
	else
		conn_wait(cs, c, &cs->reading, CONN_READING_MAX, CLOSED_READING_CAP,
		    EPOLLIN);
	return false;
}

/* --- sending ----------------------------------------------------------- */

/* Send what is left of c's reply; true when all of it is gone. */
static bool
conn_send(struct conn *c, bool *failed)
{
	*failed = false;
	while (c->out_sent < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
		    MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0)
			c->out_sent += (size_t)n;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return false;
		else if (errno != EINTR) {
			*failed = true;
			return false;
		}
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_sent = 0;
	return true;
}

/* The reply is sent (or could not be): what comes next for c. */
static void
conn_after_send(struct conns *cs, struct conn *c, bool failed)
{
	if (failed || c->close_after)
		conn_close(cs, c);
	else
		conn_wait_request(cs, c);
}

void
conn_reply(struct conns *cs, struct conn *c, struct buf *reply, bool close_after)
{
	bool failed;

	c->out = reply->data;
	c->out_len = reply->len;
	c->out_sent = 0;
	c->close_after = close_after;
	reply->data = NULL;
	reply->len = reply->cap = 0;
	if (conn_send(c, &failed) || failed)
		conn_after_send(cs, c, failed);
	else
		conn_wait(cs, c, &cs->sending, SIZE_MAX, CLOSED_SEND_TIMEOUT, EPOLLOUT);
}

bool
conn_flush(struct conns *cs, struct conn *c)
{
	bool failed;

	if (c->out == NULL)
		return true;
	if (conn_send(c, &failed) || failed)
		conn_after_send(cs, c, failed);
	else
		conn_wait(cs, c, &cs->sending, SIZE_MAX, CLOSED_SEND_TIMEOUT, EPOLLOUT);
	return false;
}

bool
conns_in_flight(struct conns *cs)
{
	bool any;

	pthread_mutex_lock(&cs->mu);
	any = cs->reading.n > 0 || cs->sending.n > 0;
	pthread_mutex_unlock(&cs->mu);
	return any;
}

/* --- the tick ---------------------------------------------------------- */

static void
reap_list(struct conns *cs, struct conn_list *l, int64_t now, int64_t timeout,
    enum conn_closed_why why)
{
	while (l->head != NULL && now - l->head->since >= timeout)
		doom(cs, l->head, why);
}

void
conns_reap(struct conns *cs)
{
	int64_t now = conn_clock_ms();
	unsigned long closed[CLOSED_WHY_N], any = 0;
	const char *refusal;
	char line[512];
	size_t off = 0;

	pthread_mutex_lock(&cs->mu);
	reap_list(cs, &cs->idle, now, cs->idle_timeout_ms, CLOSED_IDLE_TIMEOUT);
	reap_list(cs, &cs->reading, now, cs->peer_timeout_ms, CLOSED_REQUEST_TIMEOUT);
	reap_list(cs, &cs->sending, now, cs->peer_timeout_ms, CLOSED_SEND_TIMEOUT);
	memcpy(closed, cs->closed, sizeof closed);
	memset(cs->closed, 0, sizeof cs->closed);
	refusal = cs->last_refusal;
	pthread_mutex_unlock(&cs->mu);
	for (int i = 0; i < CLOSED_WHY_N; i++) {
		any += closed[i];
		if (closed[i] > 0 && off < sizeof line)
			off += (size_t)snprintf(line + off, sizeof line - off, "%s%lu %s",
			    off ? ", " : "", closed[i], closed_names[i]);
	}
	if (any == 0)
		return;
	/* Only the idle timeout is routine: nginx keeps connections it may
	 * not use for a while. */
	log_msg(any == closed[CLOSED_IDLE_TIMEOUT] ? LOG_DEBUG : LOG_WARN,
	    "peers: connections closed in the last second: %s%s%s%s", line,
	    closed[CLOSED_REFUSED] ? " (last refusal: " : "",
	    closed[CLOSED_REFUSED] ? refusal : "", closed[CLOSED_REFUSED] ? ")" : "");
}
