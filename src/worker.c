/*
 * worker: one worker process (contract in thumbr/worker.h).  Everything here runs in a
 * single thread of a process started fresh by exec, so libvips is initialised here and only
 * here.  The source bytes are decoded straight out of the request ring (no copy) and the
 * record is released only when the image is finished with.
 */
#define _GNU_SOURCE
#include "thumbr/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thumbr/img.h"
#include "thumbr/pool.h"
#include "thumbr/shm.h"
#include "thumbr/util.h"

struct wctx {
	struct shm shm;
	unsigned k;
	pid_t parent;
	struct ring *req, *resp;
	struct ring_wait wait;
	uint64_t job;
};

static int
parent_alive(void *arg)
{
	const struct wctx *w = arg;

	return getppid() == w->parent;
}

/* Send one finished thumbnail in pieces that fit the response ring. */
static int
emit(void *arg, unsigned box, unsigned width, unsigned height, const void *data, size_t len,
    char *err, size_t errsz)
{
	struct wctx *w = arg;
	uint32_t piece = ring_max_payload(w->resp) / 2 - (uint32_t)sizeof(struct shm_out);
	size_t off = 0;

	do {
		uint32_t n = len - off < piece ? (uint32_t)(len - off) : piece;
		struct shm_out *o;
		void *p;

		if (ring_reserve(w->resp, (uint32_t)sizeof(*o) + n, &p, &w->wait) != RING_OK) {
			errf(err, errsz, "main process went away");
			return -1;
		}
		o = p;
		o->size_idx = box;
		o->width = width;
		o->height = height;
		o->pad_ = 0;
		o->total = len;
		o->offset = off;
		memcpy(o->data, (const char *)data + off, n);
		ring_commit(w->resp, SHM_OUT, w->job, (uint32_t)sizeof(*o) + n);
		sem_post(&w->shm.hdr->notify);
		off += n;
	} while (off < len);
	return 0;
}

static int
answer(struct wctx *w, uint32_t type, const char *text)
{
	uint32_t n = text ? (uint32_t)strlen(text) + 1 : 0;

	if (ring_push(w->resp, type, w->job, text, n, &w->wait) != RING_OK)
		return -1;
	sem_post(&w->shm.hdr->notify);
	return 0;
}

/* A source too big for a ring slot: read it ourselves. */
static unsigned char *
slurp(const char *path, size_t *len, char *err, size_t errsz)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	unsigned char *buf;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		errf(err, errsz, "%s", fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
	if (buf == NULL) {
		errf(err, errsz, "out of memory for %lld bytes", (long long)st.st_size);
		close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errf(err, errsz, "%s", strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
}

static int
serve(struct wctx *w, const struct ring_msg *m, const struct img_settings *set)
{
	struct shm_req *rq = (struct shm_req *)m->payload;
	struct shm_status *st = shm_status(&w->shm, w->k);
	uint32_t plen = m->len;
	unsigned char *owned = NULL;
	const unsigned char *src;
	size_t len;
	char err[ERRSZ];
	int rc;

	w->job = m->job;
	atomic_store_explicit(&st->job, m->job, memory_order_relaxed);
	atomic_store_explicit(&st->since_ms, now_ms(), memory_order_relaxed);
	atomic_store_explicit(&st->state, SHM_W_BUSY, memory_order_release);
	err[0] = '\0';
	if (m->type != SHM_REQ || plen < sizeof(*rq) || rq->bytes > plen - sizeof(*rq) ||
	    ((rq->flags & SHM_REQ_PATH) && rq->bytes == 0)) {
		ring_release(w->req, m);
		rc = answer(w, SHM_FAIL, "malformed request record");
		goto out;
	}
	if (rq->flags & SHM_REQ_PATH) {
		rq->data[rq->bytes - 1] = '\0';
		owned = slurp((const char *)rq->data, &len, err, sizeof(err));
		ring_release(w->req, m);           /* the path is no longer needed */
		if (owned == NULL) {
			rc = answer(w, SHM_FAIL, err);
			goto out;
		}
		src = owned;
	} else {
		src = rq->data;
		len = rq->bytes;
	}
	rc = img_thumbnail(src, len, set, emit, w, err, sizeof(err));
	if (owned == NULL)
		ring_release(w->req, m);
	free(owned);
	rc = rc == 0 ? answer(w, SHM_DONE, NULL) : answer(w, SHM_FAIL, err);
out:
	atomic_store_explicit(&st->state, SHM_W_IDLE, memory_order_release);
	return rc;
}

/*
 * The memory ceiling: a hostile file makes malloc fail (and the image fail) instead of the
 * machine swap.  bytes is what decoding may use; the shared segment, which the worker maps
 * whole and whose size the options set, comes on top.  Not under a sanitizer, whose shadow
 * memory takes terabytes of address space.
 */
static void
limit_memory(uint64_t bytes)
{
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	struct rlimit rl;

	if (bytes == 0 || getrlimit(RLIMIT_AS, &rl) != 0)
		return;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > bytes)
		rl.rlim_cur = (rlim_t)bytes;
	else
		rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_AS, &rl);
#else
	(void)bytes;
#endif
}

_Static_assert(SHM_MAX_SIZES <= IMG_MAX_BOXES, "every size the segment carries is made");

int
worker_main(int argc, char **argv)
{
	struct wctx w;
	struct img_box boxes[SHM_MAX_SIZES];
	struct img_settings set;
	struct shm_status *st;
	char err[ERRSZ];

	memset(&w, 0, sizeof(w));
	memset(&set, 0, sizeof(set));
	if (argc != 4) {
		fprintf(stderr, "thumbr: worker mode is internal\n");
		return POOL_EXIT_FATAL;
	}
	w.k = (unsigned)strtoul(argv[2], NULL, 10);
	w.parent = (pid_t)strtol(argv[3], NULL, 10);
	/* a worker is throughput: the default time slice, not the main process's short one
	 * (batch.c), which a replacement worker inherits */
	set_time_slice(0);
	/* die with the main process; check once more in case it is gone already */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != w.parent)
		return POOL_EXIT_FATAL;
	signal(SIGINT, SIG_IGN);        /* ^C is for the main process, which stops us */
	/* the workers keep every core busy: a little less priority than the main process lets
	 * its I/O threads keep them fed and its supervisor answer a signal at once */
	errno = 0;
	{
		int prio = getpriority(PRIO_PROCESS, 0);

		if (errno == 0 && prio < 19)
			(void)setpriority(PRIO_PROCESS, 0, prio + 2);
	}
	if (shm_attach(&w.shm, SHM_WORKER_FD, err, sizeof(err)) != 0 || w.k >= w.shm.hdr->nworkers) {
		fprintf(stderr, "thumbr: worker %u: %s\n", w.k, err);
		return POOL_EXIT_FATAL;
	}
	limit_memory(w.shm.hdr->max_memory ? w.shm.hdr->max_memory + w.shm.len : 0);
	img_init(argv[0], w.shm.hdr->allow);
	w.req = shm_req_ring(&w.shm, w.k);
	w.resp = shm_resp_ring(&w.shm, w.k);
	w.wait.slice_ms = 250;
	w.wait.deadline_ms = -1;
	w.wait.alive = parent_alive;
	w.wait.arg = &w;
	for (unsigned i = 0; i < w.shm.hdr->nsizes; i++) {
		boxes[i].width = w.shm.hdr->sizes[i].width;
		boxes[i].height = w.shm.hdr->sizes[i].height;
		boxes[i].crop = (int)w.shm.hdr->sizes[i].crop;
	}
	set.boxes = boxes;
	set.nboxes = w.shm.hdr->nsizes;
	set.quality = w.shm.hdr->quality;
	set.rotate = !(w.shm.hdr->settings & SHM_SET_NO_ROTATE);
	set.keep_metadata = (w.shm.hdr->settings & SHM_SET_KEEP_METADATA) != 0;
	set.progressive = (w.shm.hdr->settings & SHM_SET_PROGRESSIVE) != 0;
	set.format = (int)w.shm.hdr->format;
	set.max_pixels = w.shm.hdr->max_pixels;
	memcpy(set.background, w.shm.hdr->background, 3);
	st = shm_status(&w.shm, w.k);
	atomic_store_explicit(&st->pid, (int32_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&st->state, SHM_W_IDLE, memory_order_release);
	for (;;) {
		struct ring_msg m;

		if (ring_peek(w.req, &m, &w.wait) != RING_OK)
			break;          /* detached and drained, or the main process is gone */
		if (serve(&w, &m, &set) != 0)
			break;
	}
	atomic_store_explicit(&st->state, SHM_W_EXITED, memory_order_release);
	return 0;
}
