/*
 * pool: the worker processes' lives: spawn, signal, reap, and describe how one ended.
 * Main thread only.  Workers are started with posix_spawn of our own executable (held open
 * since pool_init, run as /proc/self/fd/N) in worker mode,
 * so every worker, first or replacement, is a fresh single-threaded process image even
 * though the main process runs threads; the child side of posix_spawn does only
 * async-signal-safe work.  The shared segment reaches the worker as SHM_WORKER_FD.
 */
#ifndef THUMBR_POOL_H
#define THUMBR_POOL_H

#include <stddef.h>
#include <sys/types.h>

#define POOL_WORKER_ARG "--internal-worker"
#define POOL_EXIT_FATAL 3       /* a worker that cannot start at all: do not respawn */

/* Open our own executable for spawning (main thread, once, before any thread).  0 or -1. */
int pool_init(char *err, size_t errsz);
/* Spawn worker k; the main process's pid is passed so the worker can tell if it is orphaned. */
int pool_spawn(unsigned k, int shmfd, pid_t *pid, char *err, size_t errsz);
/* One exited child, without waiting: its pid (and *status), 0 when none, -1 when no child. */
pid_t pool_reap(int *status);
/* "killed by signal 9 (Killed)", "exited with status 2". */
void pool_describe(int status, char *buf, size_t n);

#endif
