/*
 * out: writing a thumbnail so that no run, however it ends, leaves a partial file under a
 * final name: a temporary file ".NAME.thumbr-tmp" in the destination directory, written,
 * closed, then renamed over the final name.  Missing directories are created on the way.
 * The temporary name is fixed, not random: one run owns OUTPUT_DIR (the lock) and one job
 * owns each final name (the plan), so the only other file that can bear it is one left by a
 * run that was killed, and that one is removed when its thumbnail is made again.
 *
 * Thread-safe: each struct out_tmp belongs to one thread at a time; out_init must be called
 * once before any thread starts (it reads the process umask).  Every temporary file that
 * exists is on a list under a mutex, so out_cleanup can remove them all at once when a signal
 * stops the run, without waiting for the threads that are writing them.
 */
#ifndef THUMBR_OUT_H
#define THUMBR_OUT_H

#include <stddef.h>
#include <stdint.h>

#define OUT_TMP_TAG ".thumbr-tmp"

struct out_tmp {
	int fd;                 /* -1 when nothing is open */
	char *tmp;              /* temporary path */
	char *final;            /* final path */
	struct out_tmp *prev, *next;    /* the list of live temporary files */
};

void out_init(void);
/* Create every missing directory of path (a directory path).  0 or -1. */
int out_mkdirs(const char *dir, char *err, size_t errsz);
/* Open a temporary file for final (creating its directory if needed).  0 or -1. */
int out_begin(struct out_tmp *t, const char *final, char *err, size_t errsz);
int out_write(struct out_tmp *t, const void *p, size_t n, uint64_t off, char *err,
    size_t errsz);
/* Close and rename into place.  0, or -1 (the temporary file is removed). */
int out_commit(struct out_tmp *t, char *err, size_t errsz);
/* Close and remove the temporary file, if one is open. */
void out_abort(struct out_tmp *t);
/* Remove every temporary file that exists, and let no new one be made: for a run that is
 * about to exit on a signal.  Does not return the list's mutex. */
void out_cleanup(void);
/* Whether a file name is one of our temporary names. */
int out_is_tmp_name(const char *name);

#endif
