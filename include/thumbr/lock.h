/*
 * lock: one run per OUTPUT_DIR at a time, with flock(2) on OUTPUT_DIR/.thumbr.lock, held for
 * the whole run and released by the kernel however the run ends.  A whole run takes it
 * exclusively; shard K of N takes it shared (shards of one tree run side by side) plus
 * .thumbr.lock.K-of-N exclusively (the same shard never twice).  The holder writes its pid
 * into the file it holds exclusively, so a refused run can name it.  Main thread only.
 */
#ifndef THUMBR_LOCK_H
#define THUMBR_LOCK_H

#include <stddef.h>

#define LOCK_NAME ".thumbr.lock"

enum lock_result { LOCK_OK = 0, LOCK_BUSY, LOCK_ERROR };

struct lock {
	int fd, shard_fd;
};

/* Take the lock for dir (shard_n 0: a whole run); wait when asked.  LOCK_BUSY sets *holder
 * to the holder's pid (0 if unknown); LOCK_ERROR sets err. */
enum lock_result lock_take(struct lock *l, const char *dir, unsigned shard_k, unsigned shard_n,
    int wait, long *holder, char *err, size_t errsz);
void lock_release(struct lock *l);

#endif
