/*
 * listener.c - the FastCGI listening socket, opened by the master itself
 * (libfcgi's FCGX_OpenSocket calls exit() on failure) or inherited on
 * fd 0 (spawn-fcgi, php-fpm style) or from systemd (LISTEN_FDS).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"

/* nginx opens a connection per request; a deep backlog absorbs bursts
 * while every worker is busy (the kernel caps it at somaxconn). */
#define LISTEN_BACKLOG	1024
#define SD_LISTEN_FDS_START 3

static bool
is_listening_socket(int fd)
{
	int yes = 0;
	socklen_t len = sizeof yes;

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &yes, &len) == 0 && yes;
}

/* A socket file left by a dead casqd is removed; one that still answers
 * belongs to a live server and is an error. */
static int
unix_path_clear(const char *path, char *why, size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, rc;

	if (lstat(path, &sb) != 0)
		return errno == ENOENT ? 0 : (snprintf(why, whylen,
		    "cannot inspect %s: %s", path, strerror(errno)), -1);
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(why, whylen, "%s exists and is not a socket", path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	if (rc == 0) {
		snprintf(why, whylen, "socket %s is in use by another server", path);
		return -1;
	}
	log_info("removing stale socket %s", path);
	return unlink(path) == 0 || errno == ENOENT ? 0 :
	    (snprintf(why, whylen, "cannot remove %s: %s", path, strerror(errno)), -1);
}

static int
listen_unix(const char *path, mode_t mode, struct listener *l, char *why,
    size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(why, whylen, "socket path too long: %s", path);
		return -1;
	}
	if (unix_path_clear(path, why, whylen) != 0)
		return -1;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    chmod(path, mode) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(why, whylen, "cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	l->fd = fd;
	l->unix_path = xstrndup(path, strlen(path));
	return 0;
}

static int
listen_tcp(const char *spec, struct listener *l, char *why, size_t whylen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	const char *colon = strrchr(spec, ':');
	char host[256];
	int fd = -1, one = 1, rc;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof host) {
		snprintf(why, whylen, "bad listen address %s (unix:/path or host:port)", spec);
		return -1;
	}
	snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	if ((rc = getaddrinfo(*host ? host : "127.0.0.1", colon + 1, &hints, &ai)) != 0) {
		snprintf(why, whylen, "bad listen address %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(why, whylen, "cannot listen on %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	l->fd = fd;
	return fd < 0 ? -1 : 0;
}

/* systemd socket activation, else whatever listening socket is on fd 0. */
static int
listen_inherited(struct listener *l, char *why, size_t whylen)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");

	if (fds && pid && atoi(fds) == 1 && (pid_t)atol(pid) == getpid() &&
	    is_listening_socket(SD_LISTEN_FDS_START)) {
		l->fd = SD_LISTEN_FDS_START;
		return 0;
	}
	if (is_listening_socket(STDIN_FILENO)) {
		l->fd = STDIN_FILENO;
		return 0;
	}
	snprintf(why, whylen, "no --listen given and no listening socket on fd 0");
	return -1;
}

int
listener_open(const struct config *cfg, struct listener *l, char *why,
    size_t whylen)
{
	const char *spec = cfg->listen;
	int rc;

	l->fd = -1;
	l->unix_path = NULL;
	if (spec == NULL)
		rc = listen_inherited(l, why, whylen);
	else if (strncmp(spec, "unix:", 5) == 0)
		rc = listen_unix(spec + 5, cfg->socket_mode, l, why, whylen);
	else if (spec[0] == '/')
		rc = listen_unix(spec, cfg->socket_mode, l, why, whylen);
	else
		rc = listen_tcp(spec, l, why, whylen);
	if (rc != 0)
		return -1;
	/* A worker's serving threads wait in epoll_wait (the listener is
	 * in each worker's epoll set, one-shot) and accept without
	 * blocking: a connection another worker took is EAGAIN, and no
	 * thread sleeps in accept(), where the stop pipe could not reach
	 * it. */
	fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

void
listener_close(struct listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	if (l->unix_path != NULL) {
		unlink(l->unix_path);
		free(l->unix_path);
	}
	l->fd = -1;
	l->unix_path = NULL;
}
