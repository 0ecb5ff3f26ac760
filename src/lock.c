/*
 * lock: flock(2) on OUTPUT_DIR/.thumbr.lock (contract in thumbr/lock.h).  Main thread only,
 * before any other thread starts; the descriptors are close-on-exec, so workers never hold
 * the lock.
 */
#define _GNU_SOURCE
#include "thumbr/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "thumbr/util.h"

static int
open_lock(const char *dir, const char *name, char *err, size_t errsz)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		errf(err, errsz, "cannot open %s: %s", path, strerror(errno));
	free(path);
	return fd;
}

static long
holder_of(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

static void
write_pid(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) != n)
		(void)0;        /* the pid is for messages only */
}

/* flock, retried on EINTR; 0, 1 busy, -1 error */
static int
take(int fd, int how, int wait)
{
	int rc;

	do
		rc = flock(fd, how | (wait ? 0 : LOCK_NB));
	while (rc != 0 && errno == EINTR);
	if (rc == 0)
		return 0;
	return errno == EWOULDBLOCK ? 1 : -1;
}

enum lock_result
lock_take(struct lock *l, const char *dir, unsigned shard_k, unsigned shard_n, int wait,
    long *holder, char *err, size_t errsz)
{
	int rc;

	l->fd = l->shard_fd = -1;
	*holder = 0;
	if ((l->fd = open_lock(dir, LOCK_NAME, err, errsz)) < 0)
		return LOCK_ERROR;
	rc = take(l->fd, shard_n ? LOCK_SH : LOCK_EX, wait);
	if (rc != 0) {
		if (rc > 0)
			*holder = holder_of(l->fd);
		else
			errf(err, errsz, "cannot lock %s/%s: %s", dir, LOCK_NAME, strerror(errno));
		lock_release(l);
		return rc > 0 ? LOCK_BUSY : LOCK_ERROR;
	}
	if (shard_n == 0) {
		write_pid(l->fd);
		return LOCK_OK;
	}
	{
		char name[64];

		snprintf(name, sizeof(name), "%s.%u-of-%u", LOCK_NAME, shard_k, shard_n);
		if ((l->shard_fd = open_lock(dir, name, err, errsz)) < 0) {
			lock_release(l);
			return LOCK_ERROR;
		}
		rc = take(l->shard_fd, LOCK_EX, wait);
		if (rc != 0) {
			if (rc > 0)
				*holder = holder_of(l->shard_fd);
			else
				errf(err, errsz, "cannot lock %s/%s: %s", dir, name, strerror(errno));
			lock_release(l);
			return rc > 0 ? LOCK_BUSY : LOCK_ERROR;
		}
		write_pid(l->shard_fd);
		write_pid(l->fd);       /* so a whole run kept waiting can name a shard */
	}
	return LOCK_OK;
}

void
lock_release(struct lock *l)
{
	if (l->shard_fd >= 0)
		close(l->shard_fd);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = l->shard_fd = -1;
}
