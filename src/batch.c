/*
 * batch: one run (contract in thumbr/batch.h).  The main thread is the only one that forks
 * (posix_spawn), reaps, and sets up or tears down shared memory; the I/O threads only touch
 * rings they have claimed.
 */
#define _GNU_SOURCE
#include "thumbr/batch.h"

#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "thumbr/io.h"
#include "thumbr/out.h"
#include "thumbr/plan.h"
#include "thumbr/pool.h"
#include "thumbr/report.h"
#include "thumbr/scan.h"
#include "thumbr/shm.h"
#include "thumbr/util.h"

#define REQ_RING_MIN (1u << 20)
#define RESP_RING (1u << 20)
#define IDLE_DEATHS_MAX 3       /* a worker that keeps dying without a job is not respawned */

struct run {
	const struct opts *o;
	struct shm shm;
	struct io io;
	unsigned *idle_deaths;
	int fatal;
};

static void
scan_failed(void *ctx, const char *rel, const char *reason)
{
	const struct opts *o = ctx;
	size_t n = strlen(o->input) + strlen(rel) + 2;
	char *p = xmalloc(n);

	snprintf(p, n, "%s/%s", o->input, rel);
	report_fail(p, reason);
	free(p);
}

static int
start_worker(struct run *r, unsigned k)
{
	char err[ERRSZ];
	pid_t pid;

	if (pool_spawn(k, r->shm.fd, &pid, err, sizeof(err)) != 0) {
		warnx("%s", err);
		return -1;
	}
	io_worker_started(&r->io, k, pid);
	return 0;
}

static unsigned
alive_workers(struct run *r)
{
	unsigned n = 0;

	for (unsigned k = 0; k < r->io.nw; k++)
		n += r->io.w[k].alive != 0;
	return n;
}

/* Reap every child that has ended; replace the workers among them. */
static void
reap(struct run *r, int stopping)
{
	int status;
	pid_t pid;

	while ((pid = pool_reap(&status)) > 0) {
		char how[128];
		unsigned k;
		int had_job;

		for (k = 0; k < r->io.nw; k++)
			if (r->io.w[k].alive && r->io.w[k].pid == pid)
				break;
		if (k == r->io.nw)
			continue;
		pool_describe(status, how, sizeof(how));
		had_job = io_worker_died(&r->io, k, how) > 0;
		if (stopping)
			continue;
		r->idle_deaths[k] = had_job ? 0 : r->idle_deaths[k] + 1;
		if (WIFEXITED(status) && WEXITSTATUS(status) == POOL_EXIT_FATAL)
			warnx("worker %u cannot start (%s): not replaced", k, how);
		else if (r->idle_deaths[k] >= IDLE_DEATHS_MAX)
			warnx("worker %u keeps dying (%s): not replaced", k, how);
		else if (start_worker(r, k) == 0)
			continue;
		if (alive_workers(r) == 0) {
			warnx("no worker process is left");
			r->fatal = 1;
		}
	}
}

/* Wait up to ms for every worker to end, then kill what is left. */
static void
end_workers(struct run *r, int ms, int sig)
{
	int64_t until = now_ms() + ms;

	for (unsigned k = 0; k < r->io.nw; k++)
		if (r->io.w[k].alive && sig != 0)
			kill(r->io.w[k].pid, sig);
	for (;;) {
		reap(r, 1);
		if (alive_workers(r) == 0)
			return;
		if (now_ms() >= until)
			break;
		usleep(5000);
	}
	for (unsigned k = 0; k < r->io.nw; k++)
		if (r->io.w[k].alive)
			kill(r->io.w[k].pid, SIGKILL);
	while (alive_workers(r) > 0) {
		reap(r, 1);
		usleep(1000);
	}
}

/* Supervise until every job is settled or a signal asks us to stop; the signal or 0. */
static int
supervise(struct run *r, const sigset_t *set)
{
	for (;;) {
		struct timespec ts = { 0, 100 * 1000000L };
		int sig = sigtimedwait(set, NULL, &ts);

		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			return sig;
		reap(r, 0);
		if (r->fatal || io_finished(&r->io))
			return 0;
	}
}

static int
prepare_output(const struct opts *o, struct stat *st)
{
	char err[ERRSZ];

	if (out_mkdirs(o->output, err, sizeof(err)) != 0) {
		warnx("%s", err);
		return -1;
	}
	if (stat(o->output, st) != 0 || !S_ISDIR(st->st_mode)) {
		warnx("%s: %s", o->output, errno ? strerror(errno) : "not a directory");
		return -1;
	}
	if (access(o->output, W_OK | X_OK) != 0) {
		warn("%s", o->output);
		return -1;
	}
	return 0;
}

int
batch_run(const struct opts *o)
{
	struct report_counts c;
	struct scan_result sr;
	struct scan_opts so;
	struct plan plan;
	struct stat ost, ist;
	struct run r;
	sigset_t set;
	char err[ERRSZ];
	double t0 = now_s();
	unsigned nw;
	int sig = 0, status;

	memset(&r, 0, sizeof(r));
	memset(&c, 0, sizeof(c));
	r.o = o;
	if (stat(o->input, &ist) != 0 || !S_ISDIR(ist.st_mode)) {
		warnx("%s: %s", o->input, errno && !S_ISDIR(ist.st_mode) ? strerror(errno) :
		    "not a directory");
		return BATCH_USAGE;
	}
	out_init();
	if (prepare_output(o, &ost) != 0)
		return BATCH_FATAL;

	memset(&so, 0, sizeof(so));
	so.exclude = 1;
	so.exclude_dev = ost.st_dev;
	so.exclude_ino = ost.st_ino;
	so.fail = scan_failed;
	so.ctx = (void *)o;
	if (scan_tree(o->input, &so, &sr, err, sizeof(err)) != 0) {
		warnx("%s", err);
		return BATCH_USAGE;
	}
	plan_build(&plan, &sr, opts_extension(o), scan_failed, (void *)o);
	c.images = sr.n + sr.failed;
	c.skipped = sr.skipped;
	c.failed = sr.failed + plan.collisions;

	if (plan.n > 0) {
		/* shared memory: bounded by the options, not by the number of files */
		nw = o->jobs < plan.n ? o->jobs : (unsigned)plan.n;
		if (shm_create(&r.shm, nw, (uint32_t)(2 * o->slot_size > REQ_RING_MIN ?
		    2 * o->slot_size : REQ_RING_MIN), RESP_RING, err, sizeof(err)) != 0) {
			warnx("%s", err);
			status = BATCH_FATAL;
			goto out_plan;
		}
		r.shm.hdr->nsizes = o->nsizes;
		r.shm.hdr->quality = o->quality;
		r.shm.hdr->settings = (o->no_rotate ? SHM_SET_NO_ROTATE : 0) |
		    (o->keep_metadata ? SHM_SET_KEEP_METADATA : 0) |
		    (o->progressive ? SHM_SET_PROGRESSIVE : 0);
		r.shm.hdr->format = (uint32_t)o->format;
		memcpy(r.shm.hdr->background, o->background, 3);
		for (unsigned i = 0; i < o->nsizes; i++) {
			r.shm.hdr->sizes[i].width = o->sizes[i].width;
			r.shm.hdr->sizes[i].height = o->sizes[i].height;
			r.shm.hdr->sizes[i].crop = (uint32_t)o->sizes[i].crop;
		}
		r.idle_deaths = xcalloc(nw, sizeof(*r.idle_deaths));

		/* signals are taken synchronously by this thread; block them before any
		 * thread exists so that every thread inherits the mask */
		sigemptyset(&set);
		sigaddset(&set, SIGCHLD);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGHUP);
		sigprocmask(SIG_BLOCK, &set, NULL);
		signal(SIGPIPE, SIG_IGN);

		io_init(&r.io, o, &r.shm, &plan);
		for (unsigned k = 0; k < nw; k++)
			if (start_worker(&r, k) != 0)
				r.fatal = 1;
		if (!r.fatal && io_start(&r.io, err, sizeof(err)) != 0) {
			warnx("%s", err);
			r.fatal = 1;
		}
		if (!r.fatal)
			sig = supervise(&r, &set);
		if (sig != 0 || r.fatal) {
			io_stop(&r.io);
			io_join(&r.io);
			end_workers(&r, 500, SIGTERM);
		} else {
			io_join(&r.io);
			/* every job is settled: let the workers see their rings close */
			for (unsigned k = 0; k < nw; k++)
				ring_detach(shm_req_ring(&r.shm, k));
			end_workers(&r, 2000, 0);
		}
		c.thumbnails = r.io.thumbnails;
		c.done = r.io.done;
		c.failed += r.io.failed;
		io_free(&r.io);
		shm_close(&r.shm);
		free(r.idle_deaths);
	}
	if (sig != 0)
		warnx("stopped by SIG%s: unfinished thumbnails were not kept", sigabbrev_np(sig));
	report_summary(&c, now_s() - t0);
	status = sig ? 128 + sig : r.fatal ? BATCH_FATAL : c.failed ? BATCH_FAILED : BATCH_OK;
out_plan:
	plan_free(&plan);
	scan_free(&sr);
	return status;
}
