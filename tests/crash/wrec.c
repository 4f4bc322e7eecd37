/*
 * wrec.c - the write recorder: an LD_PRELOAD shim, for tests only, that
 * logs what casqd (through LMDB) writes to its data file and when it
 * flushes it, so that tests/crash/crashimg.py can build the disks a power
 * loss could leave behind; and, when told to, makes one write or one
 * flush fail the way a failing disk does.
 *
 * What LMDB 0.9 does to data.mdb without MDB_WRITEMAP (mdb.c): data pages
 * go out with pwrite (one run of pages) or lseek + writev (several
 * contiguous pages) in mdb_page_flush; mdb_env_sync calls fdatasync (fsync
 * on old ext3/4 kernels); the meta page is one pwrite, on a second
 * descriptor opened with O_DSYNC unless MDB_NOMETASYNC/MDB_NOSYNC is set,
 * in which case it goes on the plain one and becomes durable with the
 * next fdatasync. msync is used only with MDB_WRITEMAP, which casqd never
 * sets; it is logged as a flush of everything, to be safe.
 *
 * Environment:
 *   CASQ_WREC_LOG=FILE   append one record per event to FILE (all
 *                        processes share it: O_APPEND, one writev each);
 *                        FILE.ctl holds the shared counters (mmap)
 *   CASQ_WREC_FAULT=SPEC one fault, counted over all processes:
 *                        sync:N:eio     the Nth fdatasync/fsync fails, EIO
 *                        write:N:enospc the Nth write fails, ENOSPC, nothing written
 *                        write:N:short  the Nth write writes half and says so
 *
 * Only descriptors opened on a file named data.mdb are recorded or
 * faulted; everything else passes straight through.
 *
 * Record (native byte order): struct wrec_hdr, then len bytes for a write.
 * Times are CLOCK_MONOTONIC ns, the clock Python's time.monotonic_ns()
 * reads, so the clients' acknowledgements are on the same clock. t0 is
 * taken before the call, t1 after it; seq is taken after it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define WREC_MAGIC	0x43455257u	/* "WREC" */
#define WREC_MAX_FD	4096		/* descriptors tracked; casqd uses few */

enum wrec_type { WREC_WRITE = 1, WREC_SYNC = 2, WREC_OPEN = 3, WREC_TRUNC = 4 };
#define WREC_F_DSYNC	1		/* a write on an O_DSYNC/O_SYNC descriptor */
#define WREC_F_FAULT	2		/* this call met the injected fault */

struct wrec_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint32_t pid;
	int32_t  err;		/* errno of a failed call, else 0 */
	uint64_t seq;
	uint64_t t0, t1;
	uint64_t off;		/* write: file offset; trunc: new size */
	uint64_t len;		/* write: bytes that reached the file (follow) */
};

struct wrec_ctl {		/* shared by every process, in FILE.ctl */
	uint64_t seq, syncs, writes, faults;
};

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int     (*real_fdatasync)(int);
static int     (*real_fsync)(int);
static int     (*real_msync)(void *, size_t, int);
static int     (*real_open)(const char *, int, ...);
static int     (*real_open64)(const char *, int, ...);
static int     (*real_openat)(int, const char *, int, ...);
static int     (*real_close)(int);
static int     (*real_ftruncate)(int, off_t);

static unsigned char tracked[WREC_MAX_FD];	/* 0 no, 1 yes, 2 yes with O_DSYNC */
static int logfd = -1;
static struct wrec_ctl *ctl;
static enum { F_NONE, F_SYNC_EIO, F_WRITE_ENOSPC, F_WRITE_SHORT } fault;
static uint64_t fault_at;
static int inited;

static void
wrec_init(void)
{
	const char *log, *spec;
	char path[4096];
	int fd;

	if (inited)
		return;
	inited = 1;
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_write = dlsym(RTLD_NEXT, "write");
	real_writev = dlsym(RTLD_NEXT, "writev");
	real_pwritev = dlsym(RTLD_NEXT, "pwritev");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_msync = dlsym(RTLD_NEXT, "msync");
	real_open = dlsym(RTLD_NEXT, "open");
	real_open64 = dlsym(RTLD_NEXT, "open64");
	real_openat = dlsym(RTLD_NEXT, "openat");
	real_close = dlsym(RTLD_NEXT, "close");
	real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
	if ((log = getenv("CASQ_WREC_LOG")) == NULL || *log == '\0')
		return;
	logfd = real_open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	snprintf(path, sizeof path, "%s.ctl", log);
	if ((fd = real_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) >= 0) {
		if (real_ftruncate(fd, 4096) == 0)
			ctl = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (ctl == MAP_FAILED)
			ctl = NULL;
		real_close(fd);
	}
	if (logfd < 0 || ctl == NULL) {
		fprintf(stderr, "wrec: cannot open %s or its .ctl: %s\n", log, strerror(errno));
		abort();	/* a recording that silently records nothing proves nothing */
	}
	if ((spec = getenv("CASQ_WREC_FAULT")) != NULL && *spec) {
		char what[16], kind[16];
		unsigned long long n;

		if (sscanf(spec, "%15[a-z]:%llu:%15[a-z]", what, &n, kind) != 3) {
			fprintf(stderr, "wrec: bad CASQ_WREC_FAULT %s\n", spec);
			abort();
		}
		fault_at = n;
		if (!strcmp(what, "sync") && !strcmp(kind, "eio"))
			fault = F_SYNC_EIO;
		else if (!strcmp(what, "write") && !strcmp(kind, "enospc"))
			fault = F_WRITE_ENOSPC;
		else if (!strcmp(what, "write") && !strcmp(kind, "short"))
			fault = F_WRITE_SHORT;
		else {
			fprintf(stderr, "wrec: bad CASQ_WREC_FAULT %s\n", spec);
			abort();
		}
	}
}

__attribute__((constructor)) static void wrec_ctor(void) { wrec_init(); }

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
is_tracked(int fd)
{
	return logfd >= 0 && fd >= 0 && fd < WREC_MAX_FD && tracked[fd];
}

static void
note(uint16_t type, uint16_t flags, int err, uint64_t t0, uint64_t off,
    const struct iovec *iov, int iovcnt, uint64_t len)
{
	struct wrec_hdr h = { .magic = WREC_MAGIC, .type = type, .flags = flags,
	    .pid = (uint32_t)getpid(), .err = err, .t0 = t0, .off = off, .len = len };
	struct iovec out[1 + 64];
	int n = 1;
	uint64_t left = len;

	h.t1 = now_ns();
	h.seq = __atomic_fetch_add(&ctl->seq, 1, __ATOMIC_SEQ_CST);
	out[0].iov_base = &h;
	out[0].iov_len = sizeof h;
	for (int i = 0; i < iovcnt && left > 0 && n < 65; i++) {
		size_t take = iov[i].iov_len < left ? iov[i].iov_len : (size_t)left;

		out[n].iov_base = iov[i].iov_base;
		out[n++].iov_len = take;
		left -= take;
	}
	if (left > 0)
		abort();	/* LMDB writes at most 64 iovecs at a time */
	if (real_writev(logfd, out, n) < 0)
		abort();
}

static void
track(int fd, const char *path, int flags)
{
	const char *base;

	if (fd < 0 || fd >= WREC_MAX_FD || logfd < 0)
		return;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	tracked[fd] = 0;
	if (strcmp(base, "data.mdb") == 0) {
		tracked[fd] = (flags & (O_DSYNC | O_SYNC)) ? 2 : 1;
		note(WREC_OPEN, tracked[fd] == 2 ? WREC_F_DSYNC : 0, 0, now_ns(), 0, NULL, 0, 0);
	}
}

/* The fault, if this call (the nth of its kind) is the one. */
static int
fault_now(int is_sync)
{
	uint64_t n;

	if (fault == F_NONE || (fault == F_SYNC_EIO) != is_sync)
		return 0;
	n = __atomic_add_fetch(is_sync ? &ctl->syncs : &ctl->writes, 1, __ATOMIC_SEQ_CST);
	if (n != fault_at)
		return 0;
	__atomic_add_fetch(&ctl->faults, 1, __ATOMIC_SEQ_CST);
	return 1;
}

static ssize_t
do_write(int fd, const struct iovec *iov, int iovcnt, off_t off, int positioned)
{
	struct iovec half;
	uint64_t t0 = now_ns();
	uint16_t flags = tracked[fd] == 2 ? WREC_F_DSYNC : 0;
	ssize_t r;
	int err = 0;

	if (!positioned)
		off = lseek(fd, 0, SEEK_CUR);
	if (fault_now(0)) {
		if (fault == F_WRITE_ENOSPC) {
			note(WREC_WRITE, flags | WREC_F_FAULT, ENOSPC, t0, (uint64_t)off, NULL, 0, 0);
			errno = ENOSPC;
			return -1;
		}
		/* short: half of the first buffer reaches the file */
		half.iov_base = iov[0].iov_base;
		half.iov_len = iov[0].iov_len / 2;
		iov = &half;
		iovcnt = 1;
		flags |= WREC_F_FAULT;
	}
	if (positioned)
		r = iovcnt == 1 ? real_pwrite(fd, iov[0].iov_base, iov[0].iov_len, off) :
		    real_pwritev(fd, iov, iovcnt, off);
	else
		r = real_writev(fd, iov, iovcnt);
	err = r < 0 ? errno : 0;
	note(WREC_WRITE, flags, err, t0, (uint64_t)off,
	    iov, iovcnt, r > 0 ? (uint64_t)r : 0);
	errno = err;
	return r;
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	struct iovec iov = { (void *)buf, n };

	wrec_init();
	return is_tracked(fd) ? do_write(fd, &iov, 1, off, 1) : real_pwrite(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	struct iovec iov = { (void *)buf, n };

	wrec_init();
	return is_tracked(fd) ? do_write(fd, &iov, 1, off, 1) : real_pwrite64(fd, buf, n, off);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };

	wrec_init();
	return is_tracked(fd) ? do_write(fd, &iov, 1, 0, 0) : real_write(fd, buf, n);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	wrec_init();
	return is_tracked(fd) ? do_write(fd, iov, n, 0, 0) : real_writev(fd, iov, n);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	wrec_init();
	return is_tracked(fd) ? do_write(fd, iov, n, off, 1) : real_pwritev(fd, iov, n, off);
}

static int
do_sync(int fd, int (*real)(int))
{
	uint64_t t0 = now_ns();
	int r, err;

	if (fault_now(1)) {
		/* As Linux after a failed writeback: the error is reported
		 * once, the dirty pages may be gone. Nothing is flushed. */
		note(WREC_SYNC, WREC_F_FAULT, EIO, t0, 0, NULL, 0, 0);
		errno = EIO;
		return -1;
	}
	r = real(fd);
	err = r < 0 ? errno : 0;
	note(WREC_SYNC, 0, err, t0, 0, NULL, 0, 0);
	errno = err;
	return r;
}

int
fdatasync(int fd)
{
	wrec_init();
	return is_tracked(fd) ? do_sync(fd, real_fdatasync) : real_fdatasync(fd);
}

int
fsync(int fd)
{
	wrec_init();
	return is_tracked(fd) ? do_sync(fd, real_fsync) : real_fsync(fd);
}

int
msync(void *addr, size_t len, int flags)
{
	uint64_t t0;
	int r, err;

	wrec_init();
	if (logfd < 0 || !(flags & MS_SYNC))
		return real_msync(addr, len, flags);
	t0 = now_ns();
	r = real_msync(addr, len, flags);
	err = r < 0 ? errno : 0;
	note(WREC_SYNC, 0, err, t0, 0, NULL, 0, 0);
	errno = err;
	return r;
}

int
ftruncate(int fd, off_t size)
{
	uint64_t t0;
	int r, err;

	wrec_init();
	if (!is_tracked(fd))
		return real_ftruncate(fd, size);
	t0 = now_ns();
	r = real_ftruncate(fd, size);
	err = r < 0 ? errno : 0;
	note(WREC_TRUNC, 0, err, t0, (uint64_t)size, NULL, 0, 0);
	errno = err;
	return r;
}

static mode_t
mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int
open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	int fd;

	wrec_init();
	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	fd = real_open(path, flags, mode);
	track(fd, path, flags);
	return fd;
}

int
open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	int fd;

	wrec_init();
	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	fd = real_open64(path, flags, mode);
	track(fd, path, flags);
	return fd;
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	int fd;

	wrec_init();
	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	fd = real_openat(dirfd, path, flags, mode);
	track(fd, path, flags);
	return fd;
}

int
close(int fd)
{
	wrec_init();
	if (fd >= 0 && fd < WREC_MAX_FD)
		tracked[fd] = 0;
	return real_close(fd);
}
