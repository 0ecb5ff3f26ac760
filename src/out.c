/*
 * out: temporary file, write, close, rename (contract in thumbr/out.h).
 * The only process-wide state is the file mode, fixed by out_init before threads start.
 */
#define _GNU_SOURCE
#include "thumbr/out.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thumbr/util.h"

static mode_t file_mode = 0644;
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct out_tmp *live;    /* temporary files that exist, under live_mu */

/* live_mu held */
static void
unlist(struct out_tmp *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else if (live == t)
		live = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
}

void
out_init(void)
{
	mode_t m = umask(0);

	umask(m);
	file_mode = 0666 & ~m;
}

int
out_mkdirs(const char *dir, char *err, size_t errsz)
{
	char *p = xstrdup(dir);
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	for (char *s = p + (n > 0); ; s++) {
		int last = (*s == '\0');

		if (*s == '/' || last) {
			*s = '\0';
			if (mkdir(p, 0777) != 0 && errno != EEXIST) {
				errf(err, errsz, "cannot create directory %s: %s", p, strerror(errno));
				free(p);
				return -1;
			}
			if (last)
				break;
			*s = '/';
		}
	}
	free(p);
	return 0;
}

int
out_begin(struct out_tmp *t, const char *final, char *err, size_t errsz)
{
	const char *slash = strrchr(final, '/');
	size_t dirlen = slash ? (size_t)(slash - final) : 0;
	const char *base = slash ? slash + 1 : final;
	int tries;

	t->fd = -1;
	t->prev = t->next = NULL;
	t->final = xstrdup(final);
	t->tmp = xmalloc(strlen(final) + sizeof("/." OUT_TMP_TAG));
	if (slash)
		sprintf(t->tmp, "%.*s/.%s" OUT_TMP_TAG, (int)dirlen, final, base);
	else
		sprintf(t->tmp, ".%s" OUT_TMP_TAG, base);
	for (tries = 0; tries < 2; tries++) {
		/* whatever bears the name was left by a killed run (a file, or anything else:
		 * O_EXCL | O_NOFOLLOW never writes through it): out of the way, then ours.
		 * Created and listed in one step, so out_cleanup never misses one. */
		(void)unlink(t->tmp);
		pthread_mutex_lock(&live_mu);
		t->fd = open(t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
		    0600);
		if (t->fd >= 0) {
			t->prev = NULL;
			t->next = live;
			if (live)
				live->prev = t;
			live = t;
		}
		pthread_mutex_unlock(&live_mu);
		if (t->fd >= 0 || errno != ENOENT || !slash)
			break;
		{
			char *dir = xmalloc(dirlen + 1);
			int rc;

			memcpy(dir, final, dirlen);
			dir[dirlen] = '\0';
			rc = out_mkdirs(dir, err, errsz);
			free(dir);
			if (rc != 0)
				goto fail;
		}
	}
	if (t->fd < 0) {
		errf(err, errsz, "cannot create %s: %s", t->tmp, strerror(errno));
		goto fail;
	}
	if (fchmod(t->fd, file_mode) != 0) {
		errf(err, errsz, "%s: %s", t->tmp, strerror(errno));
		out_abort(t);
		return -1;
	}
	return 0;
fail:
	free(t->tmp);
	free(t->final);
	t->tmp = t->final = NULL;
	t->fd = -1;
	return -1;
}

int
out_write(struct out_tmp *t, const void *p, size_t n, uint64_t off, char *err, size_t errsz)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = pwrite(t->fd, c, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			errf(err, errsz, "cannot write %s: %s", t->final,
			    w < 0 ? strerror(errno) : "no space written");
			return -1;
		}
		c += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static void
release(struct out_tmp *t)
{
	pthread_mutex_lock(&live_mu);
	unlist(t);
	pthread_mutex_unlock(&live_mu);
	free(t->tmp);
	free(t->final);
	t->tmp = t->final = NULL;
	t->fd = -1;
}

int
out_commit(struct out_tmp *t, char *err, size_t errsz)
{
	int fd = t->fd;

	t->fd = -1;
	if (close(fd) != 0) {
		errf(err, errsz, "cannot write %s: %s", t->final, strerror(errno));
		goto fail;
	}
	if (rename(t->tmp, t->final) != 0) {
		errf(err, errsz, "cannot rename into %s: %s", t->final, strerror(errno));
		goto fail;
	}
	release(t);
	return 0;
fail:
	unlink(t->tmp);
	release(t);
	return -1;
}

void
out_abort(struct out_tmp *t)
{
	if (t->tmp == NULL)
		return;
	if (t->fd >= 0)
		close(t->fd);
	unlink(t->tmp);
	release(t);
}

void
out_cleanup(void)
{
	pthread_mutex_lock(&live_mu);   /* kept: no new temporary file from now on */
	for (struct out_tmp *t = live; t != NULL; t = t->next)
		unlink(t->tmp);
}

int
out_is_tmp_name(const char *name)
{
	size_t n = strlen(name), t = sizeof(OUT_TMP_TAG) - 1;

	return name[0] == '.' && n > t + 1 && memcmp(name + n - t, OUT_TMP_TAG, t) == 0;
}
