/*
 * state: up-to-date records kept as an extended attribute on each thumbnail (contract in
 * thumbr/state.h).
 */
#define _GNU_SOURCE
#include "thumbr/state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "thumbr/plan.h"
#include "thumbr/util.h"

uint64_t
state_hash(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

void
state_init(struct state *st, const struct opts *o)
{
	memset(st, 0, sizeof(*st));
	st->o = o;
	st->force = o->force;
	for (unsigned i = 0; i < o->nsizes; i++) {
		char buf[256];
		int n = snprintf(buf, sizeof(buf),
		    "pipeline=%d size=%s format=%d quality=%u background=%02x%02x%02x rotate=%d "
		    "metadata=%d progressive=%d", STATE_PIPELINE, o->sizes[i].name, o->format,
		    o->quality, o->background[0], o->background[1], o->background[2], !o->no_rotate,
		    o->keep_metadata, o->progressive);

		st->fp[i] = state_hash(buf, (size_t)n);
	}
}

char *
state_format(const struct state *st, unsigned i, const char *rel, uint64_t size,
    const struct timespec *mtime)
{
	char *s;

	if (asprintf(&s, "1 %" PRIu64 " %lld.%09ld %016" PRIx64 " %s", size,
	    (long long)mtime->tv_sec, mtime->tv_nsec, st->fp[i], rel) < 0)
		return xstrdup("");
	return s;
}

int
state_parse(const char *text, size_t n, struct state_rec *r)
{
	char buf[sizeof(r->rel) + 128];
	long long sec;
	int off = 0;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, text, n);
	buf[n] = '\0';
	if (sscanf(buf, "1 %" SCNu64 " %lld.%ld %" SCNx64 " %n", &r->size, &sec, &r->nsec, &r->fp,
	    &off) != 4 || off == 0 || buf[off] == '\0' || strlen(buf + off) >= sizeof(r->rel))
		return -1;
	r->sec = sec;
	strcpy(r->rel, buf + off);
	return 0;
}

int
state_read(const char *path, struct state_rec *r)
{
	char buf[sizeof(r->rel) + 128];
	ssize_t n = lgetxattr(path, STATE_XATTR, buf, sizeof(buf));

	return n > 0 ? state_parse(buf, (size_t)n, r) : -1;
}

char *
state_output(const struct opts *o, unsigned i, const char *rel)
{
	char *out = plan_out_rel(rel, opts_extension(o)), *p;

	if (asprintf(&p, "%s/%s/%s", o->output, o->sizes[i].name, out) < 0)
		p = NULL;
	free(out);
	return p;
}

int
state_uptodate(const struct state *st, const char *rel, const struct stat *src)
{
	if (st->force)
		return 0;
	for (unsigned i = 0; i < st->o->nsizes; i++) {
		struct state_rec r;
		char *path = state_output(st->o, i, rel);
		int ok = path != NULL && state_read(path, &r) == 0 && r.fp == st->fp[i] &&
		    r.size == (uint64_t)src->st_size && r.sec == (int64_t)src->st_mtim.tv_sec &&
		    r.nsec == src->st_mtim.tv_nsec && strcmp(r.rel, rel) == 0;

		free(path);
		if (!ok)
			return 0;
	}
	return 1;
}

int
state_attach(int fd, const char *record)
{
	return fsetxattr(fd, STATE_XATTR, record, strlen(record), 0);
}
