/*
 * io: the main process's I/O stage and the state of every job.
 *
 * A pool of identical pthreads.  Each loops: drain a worker's response ring that has records
 * (write pieces of thumbnails to temporary files, rename finished ones, settle jobs), else
 * read the next source into the request ring of a worker that has room, else sleep on the
 * segment's notify semaphore (posted by workers after every response record) for a slice.
 *
 * Locking: one mutex (io.mu) guards the job table, the counters and each worker's
 * bookkeeping.  Rings stay single-producer single-consumer because a thread claims a
 * worker's request ring (producing) or response ring (draining) under the mutex before it
 * touches it, and only one claim of each kind can exist per worker.  No lock is held while
 * reading a file, waiting on a ring or writing a thumbnail.
 *
 * Each worker is sent at most IO_DEPTH jobs at a time (one in hand, one waiting), so the load
 * stays balanced and the jobs a dead worker held are exactly its in-flight list.
 *
 * The main thread (the supervisor) calls io_worker_died when it reaps a worker: the I/O
 * threads are kept off that worker's rings, what it finished is drained, the job it was
 * working on is retried once on a fresh worker and the others are requeued untouched.
 */
#ifndef THUMBR_IO_H
#define THUMBR_IO_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "thumbr/opts.h"
#include "thumbr/out.h"
#include "thumbr/plan.h"
#include "thumbr/shm.h"
#include "thumbr/state.h"
#include "thumbr/util.h"

#define IO_DEPTH 2
#define IO_TRIES 2              /* a job is tried on at most this many workers */

struct io_worker {
	pid_t pid;
	int alive;                      /* spawned and not yet reaped */
	int producing, draining;        /* claims, see above */
	int faulty;                     /* wrote what no correct worker writes: to be killed */
	size_t inflight[IO_DEPTH];      /* job indices, in the order sent */
	unsigned ninflight;
	/* writer state, owned by whoever holds draining */
	struct out_tmp cur;
	unsigned long job_thumbs;       /* thumbnails written for inflight[0] */
	int job_werr;                   /* a write for inflight[0] failed */
	char werr[ERRSZ];
};

struct io {
	pthread_mutex_t mu;
	pthread_cond_t idle;            /* a producing or draining claim was dropped */
	const struct opts *o;
	struct shm *shm;
	const struct plan *plan;
	const struct state *state;
	_Atomic int no_records;         /* OUTPUT_DIR keeps no extended attributes */
	unsigned char *tries;           /* per job */
	size_t next;                    /* next never-sent job */
	size_t *retry;                  /* jobs to send again, before any new one */
	size_t nretry;
	size_t settled;                 /* jobs done or failed */
	unsigned long thumbnails, done, failed;
	int stop;
	struct io_worker *w;
	unsigned nw;
	pthread_t *threads;
	unsigned nthreads;
	pthread_t supervisor;           /* the thread that called io_init, woken when all settle */
};

/* Sent to the supervisor thread (which must block it and wait for it, as for SIGCHLD) when
 * the last job settles, so that it need not poll for the end. */
#define IO_WAKE_SIG SIGUSR1

/* Bytes of request ring for sources of up to slot bytes inline (slot <= 512M), before
 * shm_create rounds it to a power of two. */
uint32_t io_req_ring_size(uint64_t slot);
/* Set up for plan p (workers may not run yet), from the supervisor thread.  0 or -1. */
int io_init(struct io *io, const struct opts *o, struct shm *shm, const struct plan *p,
    const struct state *st);
/* Jobs settled so far (for progress). */
size_t io_settled(struct io *io);
/* Worker k runs as pid. */
void io_worker_started(struct io *io, unsigned k, pid_t pid);
/* Start the I/O threads.  0 or -1. */
int io_start(struct io *io, char *err, size_t errsz);
/* Main thread: worker k has died (how: "killed by signal 9 (SIGKILL)").  The job it was
 * working on is retried once, or, when it is final_job (killed for its time limit; -1 for
 * none), reported with how as the reason; jobs it only held are requeued.  Returns whether
 * it was working on a job.  Only the main thread writes a worker's pid and alive fields. */
int io_worker_died(struct io *io, unsigned k, const char *how, int64_t final_job);
/* Worker k wrote records no correct worker writes: the supervisor kills it. */
int io_faulty(struct io *io, unsigned k);
/* Every job settled. */
int io_finished(struct io *io);
/* Stop early: threads leave after what they are doing; rings are detached. */
void io_stop(struct io *io);
/* Wait for the threads, remove any temporary file still open. */
void io_join(struct io *io);
/* Or leave the threads to end by themselves (after io_stop, when the process is about to
 * exit): nothing will join them. */
void io_detach(struct io *io);
void io_free(struct io *io);

#endif
