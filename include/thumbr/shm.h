/*
 * shm: the shared segment and the records that cross it.
 *
 * One memfd segment (no name, so nothing can be left behind in /dev/shm), created by the main
 * process before any worker or thread exists and inherited by every worker through exec as
 * file descriptor SHM_WORKER_FD.  Layout, all by offset (the segment may be mapped at different
 * addresses):
 *
 *     struct shm_hdr             magic, version, geometry, job settings (written once by main
 *                                before the first worker starts, read-only afterwards)
 *     worker 0: struct shm_status | request ring | response ring
 *     worker 1: ...
 *
 * The status block of a worker is written only by that worker (and reset by the main process
 * while no worker owns the slot).  Request rings: the main process produces, the worker
 * consumes.  Response rings: the worker produces, the main process consumes.
 */
#ifndef THUMBR_SHM_H
#define THUMBR_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <semaphore.h>
#include <sys/types.h>

#include "thumbr/ring.h"

#define SHM_MAGIC 0x7468756du   /* "thum" */
#define SHM_VERSION 1u
#define SHM_WORKER_FD 3         /* where a worker finds the segment */
#define SHM_MAX_SIZES 16
#define SHM_MAX_WORKERS 256
#define SHM_SET_NO_ROTATE 1u    /* keep pixels as stored: ignore EXIF orientation */
#define SHM_SET_KEEP_METADATA 2u /* copy EXIF and XMP, tag sRGB */
#define SHM_SET_PROGRESSIVE 4u  /* progressive JPEG */

/* What one output size asks for, as sent to the workers. */
struct shm_size {
	uint32_t width, height;         /* the box */
	uint32_t crop;                  /* enum img_crop */
};

struct shm_hdr {
	uint32_t magic, version;
	uint64_t total;                 /* bytes of the whole segment */
	uint32_t nworkers;
	uint32_t req_size, resp_size;   /* ring data bytes */
	uint32_t pad_;
	uint64_t stride;                /* bytes per worker block */
	uint64_t first;                 /* offset of worker 0's block */
	uint64_t req_off, resp_off;     /* offsets of the rings inside a block */
	sem_t notify;                   /* posted by a worker after each response record, and by
	                                 * the main process to wake its own I/O threads */
	/* job settings */
	uint32_t nsizes;
	uint32_t quality;
	uint32_t settings;              /* SHM_SET_* */
	uint32_t format;                /* enum img_format */
	uint8_t background[4];          /* RGB that JPEG output is flattened onto */
	uint64_t max_pixels;            /* refuse larger images before decoding */
	uint64_t max_memory;            /* RLIMIT_AS of a worker, 0 for none */
	uint32_t allow;                 /* SCAN_ALLOW_*: untrusted loaders turned on */
	struct shm_size sizes[SHM_MAX_SIZES];
};

enum shm_wstate { SHM_W_IDLE = 0, SHM_W_BUSY = 1, SHM_W_EXITED = 2 };

struct shm_status {
	_Alignas(64) _Atomic int32_t pid;
	_Atomic uint32_t state;         /* enum shm_wstate */
	_Atomic uint64_t job;           /* job id being worked on, when BUSY */
	_Atomic int64_t since_ms;       /* CLOCK_MONOTONIC ms when the job started */
};

/* ---- records ---- */

enum shm_rec_type {
	SHM_REQ = 1,            /* main -> worker: one source */
	SHM_OUT = 2,            /* worker -> main: a piece of one encoded thumbnail */
	SHM_DONE = 3,           /* worker -> main: a job finished, every SHM_OUT of it sent */
	SHM_FAIL = 4            /* worker -> main: a job failed; payload is the reason text */
};

#define SHM_REQ_INLINE 1u       /* payload carries the source bytes after the header */
#define SHM_REQ_PATH 2u         /* payload carries a NUL-terminated path the worker reads */

struct shm_req {
	uint32_t flags;
	uint32_t pad_;
	uint64_t bytes;         /* source bytes (inline) or path length + 1 */
	unsigned char data[];
};

struct shm_out {
	uint32_t size_idx;      /* which entry of shm_hdr.sizes */
	uint32_t width, height;
	uint32_t pad_;
	uint64_t total;         /* bytes of the whole encoded thumbnail */
	uint64_t offset;        /* where this piece goes */
	unsigned char data[];
};

struct shm {
	void *base;
	size_t len;
	int fd;
	struct shm_hdr *hdr;
};

/* Main: create the segment for n workers (mapped, header and rings initialised). */
int shm_create(struct shm *s, uint32_t nworkers, uint32_t req_size, uint32_t resp_size,
    char *err, size_t errsz);
/* Worker: map the segment found at fd and check its header. */
int shm_attach(struct shm *s, int fd, char *err, size_t errsz);
void shm_close(struct shm *s);

struct shm_status *shm_status(const struct shm *s, uint32_t k);
struct ring *shm_req_ring(const struct shm *s, uint32_t k);
struct ring *shm_resp_ring(const struct shm *s, uint32_t k);

/* Smallest power of two >= n (n <= 2^31). */
uint32_t shm_pow2(uint32_t n);

#endif
