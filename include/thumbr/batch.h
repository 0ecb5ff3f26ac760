/*
 * batch: one whole run, from options to exit status: scan, plan, shared memory, workers,
 * I/O threads, supervision, summary.  Runs in the main thread, which becomes the supervisor:
 * it blocks SIGCHLD, SIGINT, SIGTERM and SIGHUP before any thread exists (so every thread
 * inherits the mask) and takes them synchronously with sigtimedwait, reaping with
 * waitpid(-1, WNOHANG) -- no signal handler runs anywhere.
 */
#ifndef THUMBR_BATCH_H
#define THUMBR_BATCH_H

#include "thumbr/opts.h"

enum batch_exit {
	BATCH_OK = 0,           /* every image thumbnailed */
	BATCH_FAILED = 1,       /* some images failed */
	BATCH_USAGE = 2,        /* INPUT_DIR missing, or a bad option */
	BATCH_FATAL = 3,        /* the run could not go on: OUTPUT_DIR, shared memory, workers */
	BATCH_BUSY = 75         /* another run holds OUTPUT_DIR (EX_TEMPFAIL: try again later) */
};

/* Run a batch; returns the process exit status (128 + signal when stopped by one). */
int batch_run(const struct opts *o);

#endif
