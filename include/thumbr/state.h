/*
 * state: what makes a thumbnail up to date, and where that is recorded.
 *
 * The record lives on the thumbnail itself, as the extended attribute "user.thumbr":
 *
 *     1 <source size> <source mtime s>.<ns> <options fingerprint> <source path>
 *
 * It is set on the temporary file before the rename, so a thumbnail and its record appear
 * together or not at all: a crash can cost a rebuild, never a stale thumbnail.  Reading it
 * is one getxattr per thumbnail, no file to parse; shards sharing an OUTPUT_DIR never touch
 * each other's records; and --prune deletes only files that carry one, so it never removes
 * anything thumbr did not make.  A thumbnail is up to date when its record names the same
 * source, the source's size and mtime are *equal* to the recorded ones (the freedesktop rule)
 * and the fingerprint of the options that shape its bytes is the same.
 *
 * Thread-safe: no shared state after state_init (main thread, before any thread starts).
 */
#ifndef THUMBR_STATE_H
#define THUMBR_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "thumbr/opts.h"

#define STATE_XATTR "user.thumbr"
/* Bump when a change of thumbr changes the bytes it writes for the same options. */
#define STATE_PIPELINE 1

struct state {
	const struct opts *o;
	uint64_t fp[OPTS_MAX_SIZES];    /* per size */
	int force;                      /* nothing is up to date */
};

struct state_rec {
	uint64_t size;
	int64_t sec;
	long nsec;
	uint64_t fp;
	char rel[4096];
};

void state_init(struct state *st, const struct opts *o);
/* The record text for a thumbnail of size index i of rel (NUL-terminated, malloc'ed). */
char *state_format(const struct state *st, unsigned i, const char *rel, uint64_t size,
    const struct timespec *mtime);
/* Parse a record; 0 or -1. */
int state_parse(const char *text, size_t n, struct state_rec *r);
/* Read the record of the file at path; 0, or -1 (none, or not ours). */
int state_read(const char *path, struct state_rec *r);
/* Whether every size's thumbnail of rel (source st) is up to date. */
int state_uptodate(const struct state *st, const char *rel, const struct stat *src);
/* Attach a record to an open file.  0, or -1 with errno (ENOTSUP: the file system keeps no
 * extended attributes). */
int state_attach(int fd, const char *record);
/* The output path of size i of rel: OUTPUT_DIR/SIZE/rel with the format's extension. */
char *state_output(const struct opts *o, unsigned i, const char *rel);
/* FNV-1a, 64 bits. */
uint64_t state_hash(const void *p, size_t n);

#endif
