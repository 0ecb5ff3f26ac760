/*
 * io: reader/writer threads and job bookkeeping in the main process (contract, locking and
 * claims in thumbr/io.h).
 */
#define _GNU_SOURCE
#include "thumbr/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "thumbr/report.h"
#include "thumbr/ring.h"
#include "thumbr/scan.h"

#define SLICE_MS 100
#define IO_REQ_RING_MIN (1u << 20)       /* bytes: a request ring is never smaller */

static char *
path2(const char *a, const char *b)
{
	size_t x = strlen(a), y = strlen(b);
	char *p = xmalloc(x + y + 2);

	memcpy(p, a, x);
	p[x] = '/';
	memcpy(p + x + 1, b, y + 1);
	return p;
}

static char *
src_path(const struct io *io, size_t j)
{
	return path2(io->o->input, io->plan->jobs[j].rel);
}

/* Wake every I/O thread that may sleep (the configured count: threads may still be starting). */
static void
wake_all(struct io *io)
{
	for (unsigned i = 0; i < io->o->io_threads + 1; i++)
		sem_post(&io->shm->hdr->notify);
}

/* Settle job j (mutex held).  reason NULL: done. */
static void
settle(struct io *io, size_t j, const char *reason)
{
	io->settled++;
	if (reason == NULL)
		io->done++;
	else {
		char *p = src_path(io, j);

		io->failed++;
		report_fail(p, reason);
		free(p);
	}
	if (io->settled == io->plan->n) {
		wake_all(io);
		pthread_kill(io->supervisor, IO_WAKE_SIG);
	}
}

static void
drop_inflight(struct io_worker *w, size_t j)
{
	for (unsigned i = 0; i < w->ninflight; i++)
		if (w->inflight[i] == j) {
			memmove(&w->inflight[i], &w->inflight[i + 1],
			    (w->ninflight - i - 1) * sizeof(w->inflight[0]));
			w->ninflight--;
			return;
		}
}

/* ---- the writer side: one response ring, claimed (draining) by the caller ---- */

static void
set_werr(struct io_worker *w, const char *msg)
{
	if (!w->job_werr) {
		w->job_werr = 1;
		snprintf(w->werr, sizeof(w->werr), "%s", msg);
	}
	out_abort(&w->cur);
}

static void
on_out(struct io *io, struct io_worker *w, const struct ring_msg *m)
{
	/* a copy: the worker could change the shared payload between the checks and the use */
	struct shm_out hdr;
	const struct shm_out *o = &hdr;
	const unsigned char *data = ((const struct shm_out *)m->payload)->data;
	uint32_t plen = m->len;
	char err[ERRSZ];
	uint64_t n;
	int expected;

	pthread_mutex_lock(&io->mu);
	expected = w->ninflight > 0 && m->job == w->inflight[0];
	pthread_mutex_unlock(&io->mu);
	if (plen >= sizeof(hdr))
		memcpy(&hdr, m->payload, sizeof(hdr));
	if (!expected || plen < sizeof(*o) ||
	    o->size_idx >= io->o->nsizes || o->offset > o->total ||
	    plen - sizeof(*o) > o->total - o->offset) {
		set_werr(w, "malformed thumbnail record from worker");
		return;
	}
	if (w->job_werr)
		return;
	n = plen - sizeof(*o);
	if (o->offset == 0) {
		const struct plan_job *pj = &io->plan->jobs[m->job];
		char *dir = path2(io->o->output, io->o->sizes[o->size_idx].name);
		char *final = path2(dir, pj->out_rel);

		out_abort(&w->cur);
		free(dir);
		if (out_begin(&w->cur, final, err, sizeof(err)) != 0) {
			free(final);
			set_werr(w, err);
			return;
		}
		free(final);
	} else if (w->cur.tmp == NULL) {
		set_werr(w, "thumbnail record out of order");
		return;
	}
	if (out_write(&w->cur, data, (size_t)n, o->offset, err, sizeof(err)) != 0) {
		set_werr(w, err);
		return;
	}
	if (o->offset + n == o->total) {
		const struct plan_job *pj = &io->plan->jobs[m->job];
		char *record = state_format(io->state, o->size_idx, pj->rel, pj->size, &pj->mtime);
		char *final = xstrdup(w->cur.final);

		/* the record goes on before the rename: both appear together or not at all */
		if (state_attach(w->cur.fd, record) != 0)
			atomic_store_explicit(&io->no_records, 1, memory_order_relaxed);
		free(record);
		if (out_commit(&w->cur, err, sizeof(err)) != 0) {
			free(final);
			set_werr(w, err);
			return;
		}
		w->job_thumbs++;
		if (io->o->verbose || io->o->report) {
			char *src = src_path(io, (size_t)m->job);

			report_thumb(src, final, o->width, o->height, o->total, io->o->verbose);
			free(src);
		}
		free(final);
	}
}

/* The worker says job j is over (reason NULL: done). */
static void
on_end(struct io *io, struct io_worker *w, uint64_t j, const char *reason)
{
	out_abort(&w->cur);     /* a thumbnail left unfinished is not kept */
	pthread_mutex_lock(&io->mu);
	if (w->ninflight > 0 && w->inflight[0] == j) {
		drop_inflight(w, (size_t)j);
		io->thumbnails += w->job_thumbs;
		settle(io, (size_t)j, reason ? reason : w->job_werr ? w->werr : NULL);
	}
	pthread_mutex_unlock(&io->mu);
	w->job_thumbs = 0;
	w->job_werr = 0;
}

static void
drain(struct io *io, struct io_worker *w, struct ring *r)
{
	struct ring_msg m;
	enum ring_result rr;

	while ((rr = ring_try_peek(r, &m)) == RING_OK) {
		switch (m.type) {
		case SHM_OUT:
			on_out(io, w, &m);
			break;
		case SHM_DONE:
			on_end(io, w, m.job, NULL);
			break;
		case SHM_FAIL: {
			char why[ERRSZ];
			size_t n = m.len < sizeof(why) ? m.len : sizeof(why);

			snprintf(why, sizeof(why), "%.*s", (int)(n ? n - 1 : 0),
			    (const char *)m.payload);
			on_end(io, w, m.job, why[0] ? why : "failed in worker");
			break;
		}
		default:
			set_werr(w, "unknown record from worker");
			break;
		}
		ring_release(r, &m);
	}
	if (rr == RING_CORRUPT) {
		/* a broken response ring: nothing more is read from it; the worker goes */
		set_werr(w, "malformed records from worker");
		pthread_mutex_lock(&io->mu);
		w->faulty = 1;
		pthread_mutex_unlock(&io->mu);
	}
}

/* ---- the reader side: one request ring, claimed (producing) by the caller ---- */

static int
read_all(int fd, unsigned char *p, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = read(fd, p + *got, n - *got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return 0;
}

/* Send job j to the ring.  0 sent; 1 the ring is gone (requeue); -1 j failed (reason). */
static int
send_job(struct io *io, struct ring *r, size_t j, char *why, size_t whysz)
{
	struct ring_wait wait = { SLICE_MS, -1, NULL, NULL };
	char *path = src_path(io, j);
	struct shm_req *rq;
	struct stat st;
	enum ring_result rr;
	void *p;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) != 0) {
		errf(why, whysz, "%s", strerror(errno));
		rc = -1;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(why, whysz, "no longer a regular file");
		rc = -1;
		goto out;
	}
	if (scan_size_ok((uint64_t)st.st_size, io->o->max_file_size, why, whysz) != 0) {
		rc = -1;
		goto out;
	}
	if ((uint64_t)st.st_size <= io->o->slot_size) {
		size_t got;

		rr = ring_reserve(r, (uint32_t)(sizeof(*rq) + (size_t)st.st_size), &p, &wait);
		if (rr != RING_OK) {
			rc = 1;
			goto out;
		}
		rq = p;
		if (read_all(fd, rq->data, (size_t)st.st_size, &got) != 0) {
			errf(why, whysz, "%s", strerror(errno));
			rc = -1;        /* reserved, never committed: the space is reused */
			goto out;
		}
		rq->flags = SHM_REQ_INLINE;
		rq->pad_ = 0;
		rq->bytes = got;
		ring_commit(r, SHM_REQ, j, (uint32_t)(sizeof(*rq) + got));
	} else {
		size_t n = strlen(path) + 1;

		if (n > io->o->slot_size) {
			errf(why, whysz, "path too long");
			rc = -1;
			goto out;
		}
		rr = ring_reserve(r, (uint32_t)(sizeof(*rq) + n), &p, &wait);
		if (rr != RING_OK) {
			rc = 1;
			goto out;
		}
		rq = p;
		rq->flags = SHM_REQ_PATH;
		rq->pad_ = 0;
		rq->bytes = n;
		memcpy(rq->data, path, n);
		ring_commit(r, SHM_REQ, j, (uint32_t)(sizeof(*rq) + n));
		/* the worker reads this one itself: once it has the job, have the kernel start
		 * reading, so that on a cold cache the disk works while the worker finishes the
		 * job before */
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	}
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

/* ---- the thread loop ---- */

/* Mutex held: a worker whose responses wait, or -1. */
static int
pick_drain(struct io *io)
{
	for (unsigned k = 0; k < io->nw; k++)
		if (io->w[k].alive && !io->w[k].draining && !io->w[k].faulty &&
		    ring_pending(shm_resp_ring(io->shm, k)))
			return (int)k;
	return -1;
}

/* Mutex held: the least loaded live worker with room, or -1. */
static int
pick_send(struct io *io)
{
	int best = -1;

	if (io->nretry == 0 && io->next == io->plan->n)
		return -1;
	for (unsigned k = 0; k < io->nw; k++) {
		struct io_worker *w = &io->w[k];

		if (w->alive && !w->producing && w->ninflight < IO_DEPTH &&
		    (best < 0 || w->ninflight < io->w[best].ninflight))
			best = (int)k;
	}
	return best;
}

static void
sleep_slice(struct io *io)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += SLICE_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (sem_timedwait(&io->shm->hdr->notify, &ts) != 0 && errno == EINTR)
		;
}

static void *
io_thread(void *arg)
{
	struct io *io = arg;

	pthread_mutex_lock(&io->mu);
	while (!io->stop && io->settled < io->plan->n) {
		int k;

		if ((k = pick_drain(io)) >= 0) {
			struct io_worker *w = &io->w[k];

			w->draining = 1;
			pthread_mutex_unlock(&io->mu);
			drain(io, w, shm_resp_ring(io->shm, (unsigned)k));
			pthread_mutex_lock(&io->mu);
			w->draining = 0;
			pthread_cond_broadcast(&io->idle);
		} else if ((k = pick_send(io)) >= 0) {
			struct io_worker *w = &io->w[k];
			size_t j = io->nretry > 0 ? io->retry[--io->nretry] : io->next++;
			char why[ERRSZ];
			int rc;

			w->producing = 1;
			w->inflight[w->ninflight++] = j;
			pthread_mutex_unlock(&io->mu);
			rc = send_job(io, shm_req_ring(io->shm, (unsigned)k), j, why, sizeof(why));
			pthread_mutex_lock(&io->mu);
			w->producing = 0;
			pthread_cond_broadcast(&io->idle);
			if (rc != 0) {
				drop_inflight(w, j);
				if (rc > 0)
					io->retry[io->nretry++] = j;    /* the worker died: not j's fault */
				else
					settle(io, j, why);
			}
		} else {
			pthread_mutex_unlock(&io->mu);
			sleep_slice(io);
			pthread_mutex_lock(&io->mu);
		}
	}
	pthread_mutex_unlock(&io->mu);
	return NULL;
}

/* ---- set-up and supervision ---- */

int
io_init(struct io *io, const struct opts *o, struct shm *shm, const struct plan *p,
    const struct state *st)
{
	memset(io, 0, sizeof(*io));
	pthread_mutex_init(&io->mu, NULL);
	pthread_cond_init(&io->idle, NULL);
	io->o = o;
	io->shm = shm;
	io->plan = p;
	io->state = st;
	io->supervisor = pthread_self();
	io->tries = xcalloc(p->n ? p->n : 1, 1);
	io->retry = xcalloc(p->n ? p->n : 1, sizeof(*io->retry));
	io->nw = shm->hdr->nworkers;
	io->w = xcalloc(io->nw, sizeof(*io->w));
	for (unsigned k = 0; k < io->nw; k++)
		io->w[k].cur.fd = -1;
	return 0;
}

/* A record, plus the padding a wrap may need before it, fits beside one held record of the
 * largest size: with each at most a third of the ring, a sender never waits on the very worker
 * it feeds (which may be waiting for its own responses to be drained).  So a third of the
 * ring, less two record headers, holds a slot. */
uint32_t
io_req_ring_size(uint64_t slot)
{
	uint64_t need = 3 * (slot + 2 * (sizeof(struct ring_rec) + sizeof(struct shm_req)));

	return need < IO_REQ_RING_MIN ? IO_REQ_RING_MIN : (uint32_t)need;
}

void
io_worker_started(struct io *io, unsigned k, pid_t pid)
{
	pthread_mutex_lock(&io->mu);
	io->w[k].pid = pid;
	io->w[k].alive = 1;
	pthread_mutex_unlock(&io->mu);
	sem_post(&io->shm->hdr->notify);
}

int
io_start(struct io *io, char *err, size_t errsz)
{
	io->threads = xcalloc(io->o->io_threads, sizeof(*io->threads));
	for (unsigned i = 0; i < io->o->io_threads; i++) {
		int rc = pthread_create(&io->threads[i], NULL, io_thread, io);

		if (rc != 0) {
			errf(err, errsz, "cannot start I/O thread: %s", strerror(rc));
			io_stop(io);
			return -1;
		}
		io->nthreads++;
	}
	return 0;
}

int
io_worker_died(struct io *io, unsigned k, const char *how, int64_t final_job)
{
	int worked, final;
	struct io_worker *w = &io->w[k];
	struct shm_status *st = shm_status(io->shm, k);
	struct ring *req = shm_req_ring(io->shm, k), *resp = shm_resp_ring(io->shm, k);
	int busy = atomic_load_explicit(&st->state, memory_order_acquire) == SHM_W_BUSY;
	uint64_t busy_job = atomic_load_explicit(&st->job, memory_order_relaxed);

	pthread_mutex_lock(&io->mu);
	w->alive = 0;
	ring_detach(req);               /* a reader waiting for room gives up and requeues */
	while (w->producing || w->draining)
		pthread_cond_wait(&io->idle, &io->mu);
	w->draining = 1;                /* keep the threads off while we clean up */
	pthread_mutex_unlock(&io->mu);

	drain(io, w, resp);             /* what it finished before dying still counts */
	out_abort(&w->cur);

	/* the time limit blames only the job it was enforced on */
	final = final_job >= 0 && (uint64_t)final_job == busy_job;
	pthread_mutex_lock(&io->mu);
	worked = 0;
	for (unsigned i = 0; i < w->ninflight; i++) {
		size_t j = w->inflight[i];
		int held = busy && busy_job == j;       /* the job it died on */

		worked |= held;
		if (held && (final || ++io->tries[j] >= IO_TRIES)) {
			char why[ERRSZ];

			if (final)
				snprintf(why, sizeof(why), "%s", how);
			else
				snprintf(why, sizeof(why), "worker %s on it, twice", how);
			io->thumbnails += i == 0 ? w->job_thumbs : 0;
			settle(io, j, why);
		} else {
			io->retry[io->nretry++] = j;
		}
	}
	w->ninflight = 0;
	w->job_thumbs = 0;
	w->job_werr = 0;
	w->faulty = 0;
	ring_reset(req);
	ring_reset(resp);
	atomic_store_explicit(&st->pid, 0, memory_order_relaxed);
	atomic_store_explicit(&st->state, SHM_W_IDLE, memory_order_relaxed);
	w->draining = 0;
	pthread_mutex_unlock(&io->mu);
	sem_post(&io->shm->hdr->notify);
	return worked;
}

int
io_faulty(struct io *io, unsigned k)
{
	int f;

	pthread_mutex_lock(&io->mu);
	f = io->w[k].faulty && io->w[k].alive;
	pthread_mutex_unlock(&io->mu);
	return f;
}

size_t
io_settled(struct io *io)
{
	size_t n;

	pthread_mutex_lock(&io->mu);
	n = io->settled;
	pthread_mutex_unlock(&io->mu);
	return n;
}

int
io_finished(struct io *io)
{
	int done;

	pthread_mutex_lock(&io->mu);
	done = io->settled == io->plan->n;
	pthread_mutex_unlock(&io->mu);
	return done;
}

void
io_stop(struct io *io)
{
	pthread_mutex_lock(&io->mu);
	io->stop = 1;
	for (unsigned k = 0; k < io->nw; k++) {
		ring_detach(shm_req_ring(io->shm, k));
		ring_detach(shm_resp_ring(io->shm, k));
	}
	wake_all(io);
	pthread_mutex_unlock(&io->mu);
}

void
io_join(struct io *io)
{
	for (unsigned i = 0; i < io->nthreads; i++)
		pthread_join(io->threads[i], NULL);
	io->nthreads = 0;
	for (unsigned k = 0; k < io->nw; k++)
		out_abort(&io->w[k].cur);
}

void
io_detach(struct io *io)
{
	for (unsigned i = 0; i < io->nthreads; i++)
		pthread_detach(io->threads[i]);
	io->nthreads = 0;
}

void
io_free(struct io *io)
{
	free(io->tries);
	free(io->retry);
	free(io->w);
	free(io->threads);
	pthread_mutex_destroy(&io->mu);
	pthread_cond_destroy(&io->idle);
}
