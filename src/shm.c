/*
 * shm: create, lay out, attach and check the shared segment (layout in thumbr/shm.h).
 * Single-threaded use only: the main process calls shm_create before it starts any thread or
 * worker; a worker calls shm_attach once at start.
 */
#define _GNU_SOURCE
#include "thumbr/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thumbr/util.h"

#define ROUND64(n) (((n) + 63u) & ~(uint64_t)63u)

uint32_t
shm_pow2(uint32_t n)
{
	uint32_t p = 64;

	while (p < n)
		p <<= 1;
	return p;
}

struct shm_status *
shm_status(const struct shm *s, uint32_t k)
{
	return (struct shm_status *)((char *)s->base + s->hdr->first + k * s->hdr->stride);
}

struct ring *
shm_req_ring(const struct shm *s, uint32_t k)
{
	return (struct ring *)((char *)shm_status(s, k) + s->hdr->req_off);
}

struct ring *
shm_resp_ring(const struct shm *s, uint32_t k)
{
	return (struct ring *)((char *)shm_status(s, k) + s->hdr->resp_off);
}

int
shm_create(struct shm *s, uint32_t nworkers, uint32_t req_size, uint32_t resp_size,
    char *err, size_t errsz)
{
	struct shm_hdr h;
	uint32_t k;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (nworkers == 0 || nworkers > SHM_MAX_WORKERS) {
		errf(err, errsz, "bad worker count %u", nworkers);
		return -1;
	}
	memset(&h, 0, sizeof(h));
	h.magic = SHM_MAGIC;
	h.version = SHM_VERSION;
	h.nworkers = nworkers;
	h.req_size = shm_pow2(req_size);
	h.resp_size = shm_pow2(resp_size);
	h.first = ROUND64(sizeof(struct shm_hdr));
	h.req_off = ROUND64(sizeof(struct shm_status));
	h.resp_off = h.req_off + ROUND64(ring_footprint(h.req_size));
	h.stride = ROUND64(h.resp_off + ring_footprint(h.resp_size));
	h.total = h.first + (uint64_t)nworkers * h.stride;

	s->fd = memfd_create("thumbr", MFD_CLOEXEC);
	if (s->fd >= 0 && s->fd <= SHM_WORKER_FD) {
		/* keep it clear of the number workers find it at, so that the dup2 at spawn
		 * time always makes a fresh descriptor without close-on-exec */
		int high = fcntl(s->fd, F_DUPFD_CLOEXEC, 10);

		close(s->fd);
		s->fd = high;
	}
	if (s->fd < 0) {
		errf(err, errsz, "memfd_create: %s", strerror(errno));
		return -1;
	}
	if (ftruncate(s->fd, (off_t)h.total) != 0) {
		/* the segment is a file: a file size limit below it stops the run here */
		errf(err, errsz, "cannot size shared memory to %llu bytes: %s%s",
		    (unsigned long long)h.total, strerror(errno), errno == EFBIG ?
		    " (the file size limit, ulimit -f, is below it; fewer workers or a smaller "
		    "--slot-size need less)" : "");
		goto fail;
	}
	s->len = h.total;
	s->base = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (s->base == MAP_FAILED) {
		s->base = NULL;
		errf(err, errsz, "cannot map shared memory: %s", strerror(errno));
		goto fail;
	}
	s->hdr = s->base;
	*s->hdr = h;
	if (sem_init(&s->hdr->notify, 1, 0) != 0) {
		errf(err, errsz, "cannot initialise semaphores: %s", strerror(errno));
		goto fail;
	}
	for (k = 0; k < nworkers; k++) {
		if (ring_init(shm_req_ring(s, k), h.req_size) != 0 ||
		    ring_init(shm_resp_ring(s, k), h.resp_size) != 0) {
			errf(err, errsz, "cannot initialise semaphores: %s", strerror(errno));
			goto fail;
		}
	}
	return 0;
fail:
	shm_close(s);
	return -1;
}

int
shm_attach(struct shm *s, int fd, char *err, size_t errsz)
{
	struct stat st;
	struct shm_hdr *h;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(struct shm_hdr)) {
		errf(err, errsz, "no shared segment on descriptor %d", fd);
		return -1;
	}
	s->len = (size_t)st.st_size;
	s->base = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s->base == MAP_FAILED) {
		s->base = NULL;
		errf(err, errsz, "cannot map shared memory: %s", strerror(errno));
		return -1;
	}
	h = s->hdr = s->base;
	if (h->magic != SHM_MAGIC || h->version != SHM_VERSION || h->total != s->len ||
	    h->nworkers == 0 || h->nworkers > SHM_MAX_WORKERS ||
	    h->first + (uint64_t)h->nworkers * h->stride > s->len ||
	    h->nsizes == 0 || h->nsizes > SHM_MAX_SIZES) {
		errf(err, errsz, "shared segment header does not match this thumbr");
		shm_close(s);
		return -1;
	}
	return 0;
}

void
shm_close(struct shm *s)
{
	if (s->base != NULL)
		munmap(s->base, s->len);
	if (s->fd >= 0)
		close(s->fd);
	s->base = NULL;
	s->hdr = NULL;
	s->fd = -1;
}
