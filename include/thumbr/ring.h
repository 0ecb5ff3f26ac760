/*
 * ring: a single-producer single-consumer ring of variable-length records in shared memory.
 *
 * Ownership (the whole concurrency contract):
 *   - head and prod_waiting are written only by the producer; tail and cons_waiting only by
 *     the consumer (each also clears the other's waiting flag when it wakes it);
 *   - detached goes from 0 to 1 only, and may be set by either side or by a supervisor that
 *     has seen one side die; whoever sets it posts both semaphores;
 *   - size never changes after ring_init; ring_reset may be called only while neither side
 *     is using the ring (the supervisor does so between a worker's death and its replacement).
 * head and tail are free-running uint32_t byte counters (kfifo style): used = head - tail,
 * position = counter & (size - 1).  A record never wraps: when one does not fit before the end
 * of the buffer the producer first publishes a padding record that fills the rest.
 *
 * The semaphores carry no state; they only wake a sleeper.  A side that is about to sleep sets
 * its waiting flag, re-checks the counters and then sleeps; the other side, after moving its
 * counter, clears the flag and posts.  Every sleep is a sem_timedwait of at most a slice, after
 * which the sleeper looks at the detached flag and asks its caller whether the peer is alive,
 * so no wait can hang on a dead peer.
 *
 * Slices are sem_timedwait on CLOCK_REALTIME, each computed afresh, so a step of the wall
 * clock can stretch at most the slice it falls in.
 *
 * The structure holds no pointers, so it can be mapped at different addresses.
 */
#ifndef THUMBR_RING_H
#define THUMBR_RING_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RING_ALIGN 16u          /* record alignment; equals the header size so a pad always fits */
#define RING_TYPE_PAD 0u        /* reserved: a padding record, skipped by ring_peek */

enum ring_result {
	RING_OK = 0,
	RING_DETACHED,          /* the peer is gone (flag set, or the alive check said so) */
	RING_TIMEOUT,           /* the caller's overall deadline passed */
	RING_TOOBIG,            /* the record can never fit this ring */
	RING_EMPTY,             /* ring_try_peek: nothing there yet */
	RING_CORRUPT            /* a peek found what no correct producer writes (the ring is
	                         * detached too) */
};

struct ring_rec {
	uint32_t len;           /* header + payload bytes; the record occupies len rounded up to
	                         * RING_ALIGN */
	uint32_t type;          /* RING_TYPE_PAD or a caller's type (non-zero) */
	uint64_t job;           /* caller's tag */
	unsigned char payload[];
};

/* A record as its consumer sees it: the header read once and checked, so that a producer that
 * rewrites it afterwards changes nothing the consumer acts on.  The payload stays in the ring,
 * still the producer's to scribble on, until ring_release; read it as untrusted bytes. */
struct ring_msg {
	uint32_t type;          /* a caller's type (never RING_TYPE_PAD) */
	uint32_t len;           /* payload bytes: payload[0 .. len) lies inside the ring */
	uint64_t job;
	unsigned char *payload;
};

struct ring {
	/* consumer's cache line */
	_Alignas(64) _Atomic uint32_t tail;
	_Atomic uint32_t cons_waiting;
	/* producer's cache line */
	_Alignas(64) _Atomic uint32_t head;
	_Atomic uint32_t prod_waiting;
	/* shared, rarely written */
	_Alignas(64) _Atomic uint32_t detached;
	uint32_t size;          /* bytes of data[], a power of two */
	sem_t items;            /* wakes the consumer */
	sem_t spaces;           /* wakes the producer */
	_Alignas(64) unsigned char data[];
};

/* How to wait: slices of slice_ms; after each, alive(arg) == 0 means the peer is dead.
 * deadline_ms < 0 waits for ever (still bounded by alive() and the detached flag); 0 does
 * not wait at all (RING_TIMEOUT at once). */
struct ring_wait {
	unsigned slice_ms;
	int deadline_ms;
	int (*alive)(void *arg);
	void *arg;
};

/* Bytes a ring with `size` bytes of data occupies in the segment. */
size_t ring_footprint(uint32_t size);
/* Largest payload a ring of `size` bytes accepts. */
uint32_t ring_max_payload(const struct ring *r);

/* Initialise in place (size must be a power of two >= 64); semaphores are process-shared. */
int ring_init(struct ring *r, uint32_t size);
void ring_destroy(struct ring *r);
/* Empty the ring and clear detached; only while neither side uses it. */
void ring_reset(struct ring *r);
/* Mark the ring detached and wake both sides. */
void ring_detach(struct ring *r);
int ring_is_detached(const struct ring *r);

/* Producer: wait for room for a payload of `len` bytes and return where to write it.
 * The record is invisible to the consumer until ring_commit. */
enum ring_result ring_reserve(struct ring *r, uint32_t len, void **payload,
    const struct ring_wait *w);
/* Producer: publish the reserved record with its final payload length (<= reserved). */
void ring_commit(struct ring *r, uint32_t type, uint64_t job, uint32_t len);
/* Producer: reserve, copy, commit. */
enum ring_result ring_push(struct ring *r, uint32_t type, uint64_t job, const void *p,
    uint32_t len, const struct ring_wait *w);

/* Consumer: wait for the next record; it stays valid until ring_release.  A detached ring is
 * drained first: RING_DETACHED only once it is empty.  RING_CORRUPT as ring_try_peek. */
enum ring_result ring_peek(struct ring *r, struct ring_msg *m, const struct ring_wait *w);
/* Consumer: the next record without waiting: RING_OK, RING_EMPTY, or RING_CORRUPT when the
 * ring holds what no correct producer writes (a length that leaves the buffer, say): the
 * producer is another process and is not trusted, so such a ring is detached for good. */
enum ring_result ring_try_peek(struct ring *r, struct ring_msg *m);
/* Anybody: 1 when the producer has published bytes the consumer has not released (they may
 * be padding only), else 0.  Reads only; a hint for choosing which ring to serve. */
int ring_pending(const struct ring *r);
/* Consumer: free m, the record the last peek returned, by the length that peek checked. */
void ring_release(struct ring *r, const struct ring_msg *m);

#endif
