/*
 * fuzz_fcgi.c - a FastCGI connection as a peer sends it: records and
 * params read by libfcgi (FCGX_Accept_r, FCGX_GetParam, FCGX_GetStr) and
 * turned into a request by worker.c (worker_read_request: the params it
 * uses, read_body, drain_stdin), then its parameters parsed.
 *
 * Input: the bytes the peer sends on one connection, then it closes its
 * sending side. As in worker.c's accept_next, the connection is handed to
 * FCGX_Accept_r with keepConnection set; requests are read from it while
 * the peer asks to keep it (FCGI_KEEP_CONN), at most 8.
 *
 * libfcgi is the system's (not instrumented: no coverage inside it, but
 * ASan's interceptors check what it copies, and crashes are crashes);
 * the peer is a thread on the other end of a socketpair that sends the
 * input and reads what libfcgi answers, so neither side can block.
 *
 * Checks: the parameter invariants of fuzz.h; a body is NUL-terminated
 * at body_len, at most BODY_MAX bytes unless refused unread (then
 * empty); body_incomplete only when less than declared came.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "fuzz.h"

/* Requests per connection at most: enough for keep-alive sequences. */
#define REQUESTS_MAX	8

static int listen_fd = -1;

/*
 * A known bug of libfcgi 2.4.2 (Debian 12's, with the CVE-2025-23016
 * fix): ReadParams allocates nameLen + valueLen + 2 bytes in int
 * arithmetic for each name-value pair as soon as it has read the two
 * lengths, before any of the name. Two 4-byte lengths whose sum passes
 * INT_MAX make that size negative: malloc fails, and libfcgi's Malloc
 * asserts, aborting the worker (tests/fuzz/known/fuzz_fcgi/). The same
 * parser reads the pairs of an FCGI_GET_VALUES management record, which
 * a peer may send at any point, so it also happens inside FCGX_GetStr
 * while worker.c reads a body. So that
 * the fuzzer looks for other bugs, malloc returns NULL here instead of
 * ASan reporting the size, and for anything above 64 MiB (lengths that
 * fit in int would otherwise have libfcgi allocate up to 2 GiB per pair,
 * slowing the fuzzer a hundredfold: __asan_default_options), and that one
 * assertion of libfcgi's jumps back to LLVMFuzzerTestOneInput, which
 * drops the connection (libfcgi resolves __assert_fail to this
 * program's). With FUZZ_KNOWN set in the environment it aborts, as in
 * casqd.
 */
static bool known_bugs;
static sigjmp_buf *in_libfcgi;	/* set while libfcgi reads a request */

const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=64";
}

_Noreturn void __assert_fail(const char *expr, const char *file,
	unsigned int line, const char *func);
_Noreturn void
__assert_fail(const char *expr, const char *file, unsigned int line,
    const char *func)
{
	if (in_libfcgi != NULL && !known_bugs && strcmp(file, "fcgiapp.c") == 0 &&
	    strstr(expr, "result != ") != NULL)
		siglongjmp(*in_libfcgi, 1);
	fprintf(stderr, "%s:%u: %s: Assertion `%s' failed.\n", file, line, func, expr);
	abort();
}

struct peer {
	int                  fd;
	const unsigned char *data;
	size_t               size;
};

/* Send the input, close the sending side, read until libfcgi closes. */
static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	char sink[4096];
	size_t off = 0;

	while (off < p->size) {
		ssize_t n = send(p->fd, p->data + off, p->size - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;		/* libfcgi closed: it read enough */
		off += (size_t)n;
	}
	shutdown(p->fd, SHUT_WR);
	while (recv(p->fd, sink, sizeof sink, 0) > 0)
		;
	close(p->fd);
	return NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	signal(SIGPIPE, SIG_IGN);
	known_bugs = getenv("FUZZ_KNOWN") != NULL;
	if (FCGX_Init() != 0)
		abort();
	/* FCGX_Accept_r falls back to accepting on the listener when a
	 * connection fails; non-blocking and never connected to, it returns
	 * at once, as worker.c's listener does when another took the peer. */
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/fcgi.sock", fuzz_tmpdir());
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(listen_fd, 1) != 0) {
		perror("fuzz_fcgi: listener");
		abort();
	}
	return 0;
}

static void
check_request(const struct request *req, FCGX_Request *fr)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
	long declared = cl ? strtol(cl, NULL, 10) : 0;

	fuzz_check(req->body != NULL, "no body buffer");
	fuzz_check(req->method != NULL, "no method");
	if (req->body_len > BODY_MAX || FCGX_GetParam("CASQ_BODY_REFUSED", fr->envp)) {
		fuzz_check(req->body[0] == '\0', "a refused body was read");
		fuzz_check(!req->body_incomplete, "a refused body is incomplete");
		return;
	}
	fuzz_check(req->body[req->body_len] == '\0', "body not terminated");
	fuzz_check(declared <= 0 || req->body_len <= (size_t)declared,
	    "read %zu bytes of a %ld-byte body", req->body_len, declared);
	fuzz_check(req->body_incomplete == (declared > 0 && req->body_len < (size_t)declared),
	    "incomplete %d with %zu of %ld bytes", req->body_incomplete, req->body_len, declared);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct peer peer = { .data = data, .size = size };
	FCGX_Request fr;
	pthread_t thread;
	int sv[2];


	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	peer.fd = sv[1];
	if (pthread_create(&thread, NULL, peer_main, &peer) != 0)
		abort();

	FCGX_InitRequest(&fr, listen_fd, 0);
	fr.ipcFd = sv[0];
	for (int i = 0; i < REQUESTS_MAX; i++) {
		/* static: it is still read after a jump out of libfcgi */
		static struct request req;
		sigjmp_buf jump;

		memset(&req, 0, sizeof req);
		fr.keepConnection = 1;	/* as accept_next: keep fd through the finish */
		if (sigsetjmp(jump, 0) != 0) {
			in_libfcgi = NULL;	/* the known bug: drop the connection */
			free(req.body);
			break;
		}
		/* Params are read by FCGX_Accept_r, and so is an FCGI_GET_VALUES
		 * record met while worker_read_request reads stdin. */
		in_libfcgi = &jump;
		if (FCGX_Accept_r(&fr) < 0) {
			in_libfcgi = NULL;
			break;		/* libfcgi closed the connection */
		}
		(void)worker_read_request(&fr, &req);
		in_libfcgi = NULL;
		check_request(&req, &fr);
		if (req.body_len <= BODY_MAX && !req.body_incomplete) {
			(void)request_parse_params(&req);
			fuzz_check_params(&req);
		}
		FCGX_PutStr("Status: 200 OK\r\n\r\n", 18, fr.out);
		request_free(&req);
		free(req.body);
		FCGX_Finish_r(&fr);	/* closes fd unless the peer keeps it */
		if (fr.ipcFd < 0)
			break;
	}
	FCGX_Free(&fr, 1);		/* closes fd if still open */
	pthread_join(thread, NULL);
	return 0;
}
