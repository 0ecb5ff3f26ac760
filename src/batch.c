/*
 * batch: one run (contract in thumbr/batch.h).  The main thread is the only one that forks
 * (posix_spawn), reaps, and sets up or tears down shared memory; the I/O threads only touch
 * rings they have claimed.
 */
#define _GNU_SOURCE
#include "thumbr/batch.h"

#include <err.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "thumbr/lock.h"
#include "thumbr/out.h"
#include "thumbr/plan.h"
#include "thumbr/pool.h"
#include "thumbr/prune.h"
#include "thumbr/report.h"
#include "thumbr/scan.h"
#include "thumbr/shm.h"
#include "thumbr/state.h"
#include "thumbr/util.h"

#define RESP_RING (1u << 20)
#define IDLE_DEATHS_MAX 3       /* a worker that keeps dying without a job is not respawned */

struct run {
	const struct opts *o;
	struct shm shm;
	struct io io;
	unsigned *idle_deaths;
	struct kill {                   /* per worker: why we killed it, for the job it held */
		enum { KILL_NONE, KILL_TIMEOUT, KILL_FAULTY } why;
		int64_t job;
	} *killed;
	unsigned respawns;              /* replacements of workers that died idle, in all */
	int fatal;
	int progress;           /* draw the progress line (stderr is a terminal) */
	double t0;
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
		if (r->killed[k].why == KILL_TIMEOUT)
			snprintf(how, sizeof(how), "took longer than --timeout %.3g s",
			    r->o->timeout_ms / 1000.0);
		else if (r->killed[k].why == KILL_FAULTY)
			snprintf(how, sizeof(how), "made its worker send malformed records");
		else
			pool_describe(status, how, sizeof(how));
		/* only a death at work counts as the job's; one before any (a worker that cannot
		 * even start, say under too low a --max-memory) counts against the slot */
		had_job = io_worker_died(&r->io, k, how,
		    r->killed[k].why != KILL_NONE ? r->killed[k].job : -1);
		r->killed[k].why = KILL_NONE;
		if (stopping)
			continue;
		r->idle_deaths[k] = had_job ? 0 : r->idle_deaths[k] + 1;
		if (WIFEXITED(status) && WEXITSTATUS(status) == POOL_EXIT_FATAL)
			warnx("worker %u cannot start (%s): not replaced", k, how);
		else if (r->idle_deaths[k] >= IDLE_DEATHS_MAX ||
		    (!had_job && ++r->respawns > IDLE_DEATHS_MAX * r->io.nw + 16))
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
end_workers(struct run *r, int ms)
{
	int64_t until = now_ms() + ms;

	for (;;) {
		reap(r, 1);
		if (alive_workers(r) == 0)
			return;
		if (now_ms() >= until)
			break;
		usleep(1000);
	}
	for (unsigned k = 0; k < r->io.nw; k++)
		if (r->io.w[k].alive)
			kill(r->io.w[k].pid, SIGKILL);
	while (alive_workers(r) > 0) {
		reap(r, 1);
		usleep(1000);
	}
}

/* Kill the workers that have spent longer than --timeout on one image, or written what no
 * correct worker writes; reap() replaces them. */
static void
enforce_limits(struct run *r)
{
	int64_t now = now_ms();

	for (unsigned k = 0; k < r->io.nw; k++) {
		struct shm_status *st = shm_status(&r->shm, k);
		int why = KILL_NONE;

		if (!r->io.w[k].alive || r->killed[k].why != KILL_NONE)
			continue;
		if (io_faulty(&r->io, k))
			why = KILL_FAULTY;
		else if (atomic_load_explicit(&st->state, memory_order_acquire) == SHM_W_BUSY &&
		    now - atomic_load_explicit(&st->since_ms, memory_order_relaxed) >
		    (int64_t)r->o->timeout_ms)
			why = KILL_TIMEOUT;
		if (why != KILL_NONE) {
			r->killed[k].why = why;
			r->killed[k].job = (int64_t)atomic_load_explicit(&st->job,
			    memory_order_relaxed);
			kill(r->io.w[k].pid, SIGKILL);
		}
	}
}

/* Supervise until every job is settled or a signal asks us to stop; the signal or 0. */
static int
supervise(struct run *r, const sigset_t *set)
{
	for (;;) {
		struct timespec ts = { 0, (r->o->timeout_ms < 100 ? r->o->timeout_ms : 100) * 1000000L };
		int sig = sigtimedwait(set, NULL, &ts);

		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			return sig;
		enforce_limits(r);
		reap(r, 0);
		if (r->progress)
			report_progress(io_settled(&r->io), r->io.plan->n, now_s() - r->t0);
		if (r->fatal || io_finished(&r->io))
			return 0;
	}
}

/* The run's counts into c, and the progress line ended (I/O threads may still run). */
static void
end_counts(struct run *r, struct report_counts *c)
{
	if (r->progress)
		report_progress_end();
	pthread_mutex_lock(&r->io.mu);
	c->thumbnails = r->io.thumbnails;
	c->done = r->io.done;
	c->failed += r->io.failed;
	pthread_mutex_unlock(&r->io.mu);
}

static int
prepare_output(const struct opts *o, struct stat *st)
{
	char err[ERRSZ];

	if (o->dry_run) {
		/* change nothing: a missing OUTPUT_DIR just means everything would be built */
		if (stat(o->output, st) != 0) {
			memset(st, 0, sizeof(*st));
			return errno == ENOENT ? 1 : (warn("%s", o->output), -1);
		}
		return S_ISDIR(st->st_mode) ? 0 : (warnx("%s: not a directory", o->output), -1);
	}
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

/* ---- what the scan asks of the options ---- */

struct scanctx {
	const struct opts *o;
	const struct state *st;
};

/* --shard K/N: a source belongs to shard hash(rel) mod N + 1; the same on every machine */
static int
in_shard(const struct opts *o, const char *rel)
{
	return o->shard_n == 0 || state_hash(rel, strlen(rel)) % o->shard_n + 1 == o->shard_k;
}

static int
want(void *ctx, const char *rel)
{
	return in_shard(((struct scanctx *)ctx)->o, rel);
}

static int
uptodate(void *ctx, const char *rel, const struct stat *src)
{
	return state_uptodate(((struct scanctx *)ctx)->st, rel, src);
}

static void
scan_failed_sc(void *ctx, const char *rel, const char *reason)
{
	scan_failed((void *)((struct scanctx *)ctx)->o, rel, reason);
}

static int
scan_input(const struct opts *o, const struct state *st, const struct stat *ost, int have_out,
    struct scan_result *sr)
{
	struct scanctx sc = { o, st };
	struct scan_opts so;
	char err[ERRSZ];
	int rc;

	memset(&so, 0, sizeof(so));
	so.exclude = have_out;
	so.exclude_dev = ost->st_dev;
	so.exclude_ino = ost->st_ino;
	so.fail = scan_failed_sc;
	so.max_size = o->max_file_size;
	so.allow = o->allow;
	so.want = want;
	so.uptodate = have_out ? uptodate : NULL;
	so.ctx = &sc;
	if (o->files_from != NULL) {
		FILE *f = strcmp(o->files_from, "-") == 0 ? stdin : fopen(o->files_from, "re");

		if (f == NULL) {
			warn("%s", o->files_from);
			return -1;
		}
		rc = scan_list(o->input, f, o->null_sep, &so, sr, err, sizeof(err));
		if (f != stdin)
			fclose(f);
	} else {
		rc = scan_tree(o->input, &so, sr, err, sizeof(err));
	}
	if (rc != 0)
		warnx("%s", err);
	return rc;
}

/* ---- the run ---- */

/* Start the workers and the I/O threads and supervise them until every job is settled or a
 * signal stops the run; returns the signal or 0. */
static int
build(struct run *r, const struct opts *o, const struct plan *plan, const struct state *st,
    struct report_counts *c)
{
	char err[ERRSZ];
	sigset_t set;
	unsigned nw = o->jobs < plan->n ? o->jobs : (unsigned)plan->n;
	int sig = 0;

	/* shared memory: bounded by the options, not by the number of files (its size counts
	 * against ulimit -f, which must then fail the call, not kill the process).  A request
	 * ring holds three slots (io_req_ring_size says why); slots are kept small because every
	 * page of a ring that has been written must be freed when the run ends, and on SIGTERM
	 * that is time between the signal and the exit */
	signal(SIGXFSZ, SIG_IGN);
	if (shm_create(&r->shm, nw, io_req_ring_size(o->slot_size), RESP_RING, err,
	    sizeof(err)) != 0) {
		warnx("%s", err);
		r->fatal = 1;
		return 0;
	}
	r->shm.hdr->nsizes = o->nsizes;
	r->shm.hdr->quality = o->quality;
	r->shm.hdr->settings = (o->no_rotate ? SHM_SET_NO_ROTATE : 0) |
	    (o->keep_metadata ? SHM_SET_KEEP_METADATA : 0) |
	    (o->progressive ? SHM_SET_PROGRESSIVE : 0);
	r->shm.hdr->format = (uint32_t)o->format;
	memcpy(r->shm.hdr->background, o->background, 3);
	r->shm.hdr->max_pixels = o->max_pixels;
	r->shm.hdr->max_memory = o->max_memory;
	r->shm.hdr->allow = o->allow;
	for (unsigned i = 0; i < o->nsizes; i++) {
		r->shm.hdr->sizes[i].width = o->sizes[i].width;
		r->shm.hdr->sizes[i].height = o->sizes[i].height;
		r->shm.hdr->sizes[i].crop = (uint32_t)o->sizes[i].crop;
	}
	r->idle_deaths = xcalloc(nw, sizeof(*r->idle_deaths));
	r->killed = xcalloc(nw, sizeof(*r->killed));    /* KILL_NONE */

	/* signals are taken synchronously by this thread; block them before any thread
	 * exists so that every thread inherits the mask.  A file size limit (ulimit -f)
	 * makes a write fail with EFBIG, reported for its image, instead of killing the run */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, IO_WAKE_SIG);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pool_init(err, sizeof(err)) != 0) {
		warnx("%s", err);
		r->fatal = 1;
		return 0;
	}
	io_init(&r->io, o, &r->shm, plan, st);
	for (unsigned k = 0; k < nw; k++)
		if (start_worker(r, k) != 0)
			r->fatal = 1;
	/* The main process's threads (this one and the I/O threads it starts next, which
	 * inherit it) ask for time slices of 0.1 ms instead of the default 3 (EEVDF's custom
	 * slice, Linux 6.12 and later; older kernels ignore it): they mostly sleep and must run
	 * at once when woken, by a signal, a worker's death or a ring, while the workers keep
	 * every core busy.  Workers set theirs back (worker_main).  Measured (one size, SIGTERM
	 * 0.3 s into a corpus run, 2 cores): signal to main thread running 0.03 ms always, where
	 * it was up to 3.4 ms; stopping the I/O threads 0.05 ms, where it waited up to 0.9 ms
	 * for one holding the lock; SIGTERM to reaped 1.3 ms mean, 1.7 max (was 2.4 and 4.7).
	 * Throughput did not change beyond the VM's noise (three sizes 1.381 +- 0.043 s against
	 * 1.409 +- 0.025). */
	set_time_slice(100 * 1000);
	if (!r->fatal && io_start(&r->io, err, sizeof(err)) != 0) {
		warnx("%s", err);
		r->fatal = 1;
	}
	if (!r->fatal)
		sig = supervise(r, &set);
	if (sig != 0) {
		/* stop at once, in the order that ends soonest: kill the workers (what they
		 * hold is not kept) so that they die while the rest is done; stop the I/O
		 * threads taking turns, so that they no longer compete for the cores; remove
		 * every temporary file; reap the workers (an init that does not reap orphans
		 * would keep them as zombies) and leave.  The threads are not waited for, the
		 * process ends under them */
		for (unsigned k = 0; k < nw; k++)
			if (r->io.w[k].alive)
				kill(r->io.w[k].pid, SIGKILL);
		io_stop(&r->io);
		io_detach(&r->io);
		out_cleanup();
		for (unsigned k = 0; k < nw; k++)
			if (r->io.w[k].alive)
				while (waitpid(r->io.w[k].pid, NULL, 0) < 0 && errno == EINTR)
					;
		end_counts(r, c);
		return sig;
	}
	if (r->fatal) {
		io_stop(&r->io);
		io_join(&r->io);
		for (unsigned k = 0; k < nw; k++)
			if (r->io.w[k].alive)
				kill(r->io.w[k].pid, SIGKILL);
		end_workers(r, 2000);
	} else {
		io_join(&r->io);
		/* every job is settled: let the workers see their rings close */
		for (unsigned k = 0; k < nw; k++)
			ring_detach(shm_req_ring(&r->shm, k));
		end_workers(r, 2000);
	}
	end_counts(r, c);
	if (atomic_load(&r->io.no_records))
		warnx("%s keeps no extended attributes: thumbnails are rebuilt on every run",
		    o->output);
	io_free(&r->io);
	shm_close(&r->shm);
	free(r->idle_deaths);
	free(r->killed);
	return sig;
}

/* -n: what would be built */
static void
dry_build(const struct opts *o, const struct plan *plan)
{
	for (size_t j = 0; j < plan->n; j++)
		for (unsigned i = 0; i < o->nsizes; i++) {
			char *out = state_output(o, i, plan->jobs[j].rel);

			printf("build %s\n", out);
			free(out);
		}
}

int
batch_run(const struct opts *o)
{
	struct report_counts c;
	struct scan_result sr;
	struct plan plan;
	struct stat ost, ist;
	struct state st;
	struct lock lk = { -1, -1 };
	struct run r;
	char err[ERRSZ];
	double t0 = now_s(), scan_secs;
	int sig = 0, status, have_out;
	long holder;

	memset(&r, 0, sizeof(r));
	memset(&c, 0, sizeof(c));
	r.o = o;
	if (stat(o->input, &ist) != 0 || !S_ISDIR(ist.st_mode)) {
		warnx("%s: %s", o->input, errno && !S_ISDIR(ist.st_mode) ? strerror(errno) :
		    "not a directory");
		return BATCH_USAGE;
	}
	out_init();
	if (o->report)
		report_collect();
	if ((have_out = prepare_output(o, &ost)) < 0)
		return BATCH_FATAL;
	have_out = have_out == 0;
	if (!o->dry_run) {
		switch (lock_take(&lk, o->output, o->shard_k, o->shard_n, o->wait, &holder, err,
		    sizeof(err))) {
		case LOCK_OK:
			break;
		case LOCK_BUSY:
			if (holder > 0)
				warnx("%s is in use by another thumbr (pid %ld)", o->output, holder);
			else
				warnx("%s is in use by another thumbr", o->output);
			return BATCH_BUSY;
		default:
			warnx("%s", err);
			return BATCH_FATAL;
		}
	}

	state_init(&st, o);
	if (scan_input(o, &st, &ost, have_out, &sr) != 0) {
		lock_release(&lk);
		return BATCH_USAGE;
	}
	plan_build(&plan, &sr, opts_extension(o), scan_failed, (void *)o);
	scan_secs = now_s() - t0;
	c.images = sr.n + sr.failed;
	c.skipped = sr.skipped;
	c.failed = sr.failed + plan.collisions;
	c.unchanged = plan.unchanged;
	if (o->prune && have_out)
		c.pruned = prune_run(o, o->shard_n ? in_shard : NULL, &c.failed);

	if (o->dry_run)
		dry_build(o, &plan);
	else if (plan.n > 0) {
		r.progress = !o->quiet && !o->verbose && isatty(STDERR_FILENO);
		r.t0 = t0;
		sig = build(&r, o, &plan, &st, &c);
	}
	if (sig != 0) {
		/* threads may still run: report and leave without freeing what they use */
		warnx("stopped by SIG%s: unfinished thumbnails were not kept", sigabbrev_np(sig));
		if (o->report)
			(void)report_json(o->report, o, &c, scan_secs, now_s() - t0, err, sizeof(err));
		if (!o->quiet)
			report_summary(&c, now_s() - t0);
		fflush(stdout);
		fflush(stderr);
		_exit(128 + sig);
	}
	if (o->report && report_json(o->report, o, &c, scan_secs, now_s() - t0, err,
	    sizeof(err)) != 0) {
		warnx("%s", err);
		c.failed++;
	}
	if (!o->quiet)
		report_summary(&c, now_s() - t0);
	fflush(stdout);
	status = sig ? 128 + sig : r.fatal ? BATCH_FATAL : c.failed ? BATCH_FAILED : BATCH_OK;
	plan_free(&plan);
	scan_free(&sr);
	lock_release(&lk);
	return status;
}
