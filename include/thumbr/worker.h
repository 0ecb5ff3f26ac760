/*
 * worker: the worker process's loop.  A worker is single-threaded (libvips runs with a
 * concurrency of 1): it consumes its request ring, thumbnails one image at a time and produces
 * into its response ring.  It owns its status block in the segment.  It exits when its
 * request ring is detached and drained, and dies with the main process (PR_SET_PDEATHSIG,
 * plus a check of getppid() at start and on every idle wait slice).
 */
#ifndef THUMBR_WORKER_H
#define THUMBR_WORKER_H

/* argv: thumbr --internal-worker K PARENT_PID.  Returns the exit status. */
int worker_main(int argc, char **argv);

#endif
