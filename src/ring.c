/*
 * ring: single-producer single-consumer ring of variable-length records in shared memory.
 * The contract (who writes which field, how waits end) is in include/thumbr/ring.h.
 *
 * Memory ordering, by edge:
 *   R1  producer: store of head after writing a record (seq_cst, so at least release);
 *   A1  consumer: acquire-load of head before reading the record (pairs with R1);
 *   R2  consumer: store of tail once it has finished reading a record (seq_cst, release);
 *   A2  producer: acquire-load of tail before overwriting that space (pairs with R2);
 *   S1/S2  no lost wake-up: the sleeper stores its waiting flag and then re-reads the other
 *       side's counter (S1, in wait_space and ring_peek); the waker stores its counter (R1 or
 *       R2) and then reads the waiting flag (S2, in ring_wake).  All four are seq_cst, so they
 *       fall in one total order and at least one side sees the other's store (Dekker's
 *       argument) -- plain seq_cst operations rather than fences, which ThreadSanitizer can
 *       check.
 */
#define _GNU_SOURCE
#include "thumbr/ring.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define ALIGN_UP(n) (((n) + (RING_ALIGN - 1)) & ~(uint32_t)(RING_ALIGN - 1))
#define HDR ((uint32_t)sizeof(struct ring_rec))

_Static_assert(sizeof(struct ring_rec) == RING_ALIGN, "record header must equal RING_ALIGN");

size_t
ring_footprint(uint32_t size)
{
	return sizeof(struct ring) + size;
}

uint32_t
ring_max_payload(const struct ring *r)
{
	return r->size - HDR;
}

int
ring_init(struct ring *r, uint32_t size)
{
	if (size < 64 || (size & (size - 1)) != 0)
		return -1;
	memset(r, 0, sizeof(*r));
	r->size = size;
	if (sem_init(&r->items, 1, 0) != 0)
		return -1;
	if (sem_init(&r->spaces, 1, 0) != 0) {
		sem_destroy(&r->items);
		return -1;
	}
	return 0;
}

void
ring_destroy(struct ring *r)
{
	sem_destroy(&r->items);
	sem_destroy(&r->spaces);
}

void
ring_reset(struct ring *r)
{
	uint32_t size = r->size;

	ring_destroy(r);
	(void)ring_init(r, size);       /* cannot fail: size was valid */
}

void
ring_detach(struct ring *r)
{
	atomic_store_explicit(&r->detached, 1, memory_order_seq_cst);
	sem_post(&r->items);
	sem_post(&r->spaces);
}

int
ring_is_detached(const struct ring *r)
{
	return atomic_load_explicit(&((struct ring *)r)->detached, memory_order_acquire) != 0;
}

static void
deadline_from(struct timespec *dl, const struct ring_wait *w)
{
	clock_gettime(CLOCK_MONOTONIC, dl);
	if (w->deadline_ms >= 0) {
		dl->tv_sec += w->deadline_ms / 1000;
		dl->tv_nsec += (long)(w->deadline_ms % 1000) * 1000000L;
		if (dl->tv_nsec >= 1000000000L) {
			dl->tv_sec++;
			dl->tv_nsec -= 1000000000L;
		}
	}
}

static int
past(const struct timespec *dl)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > dl->tv_sec || (now.tv_sec == dl->tv_sec && now.tv_nsec >= dl->tv_nsec);
}

/*
 * Sleep on sem for at most one slice.  *waiting must already be 1 and the caller must have
 * re-checked its condition after setting it (S1).  Returns RING_OK to re-check.
 */
static enum ring_result
ring_sleep(struct ring *r, sem_t *sem, _Atomic uint32_t *waiting, const struct ring_wait *w,
    const struct timespec *dl)
{
	struct timespec ts;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += w->slice_ms / 1000;
	ts.tv_nsec += (long)(w->slice_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	do
		rc = sem_timedwait(sem, &ts);
	while (rc != 0 && errno == EINTR);
	atomic_store_explicit(waiting, 0, memory_order_relaxed);
	if (atomic_load_explicit(&r->detached, memory_order_acquire))
		return RING_DETACHED;
	if (rc != 0) {
		/* a slice passed with no wake-up: is anybody still there? */
		if (w->alive != NULL && !w->alive(w->arg))
			return RING_DETACHED;
		if (w->deadline_ms >= 0 && past(dl))
			return RING_TIMEOUT;
	}
	return RING_OK;
}

/* After R1 or R2: wake the other side if it said it sleeps (S2, pairs with S1). */
static void
ring_wake(sem_t *sem, _Atomic uint32_t *waiting)
{
	if (atomic_load_explicit(waiting, memory_order_seq_cst) &&              /* S2 */
	    atomic_exchange_explicit(waiting, 0, memory_order_relaxed))
		sem_post(sem);
}

/* Producer: wait until `need` bytes are free. */
static enum ring_result
wait_space(struct ring *r, uint32_t head, uint32_t need, const struct ring_wait *w,
    const struct timespec *dl)
{
	for (;;) {
		uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);  /* A2 */
		enum ring_result rr;

		if (atomic_load_explicit(&r->detached, memory_order_acquire))
			return RING_DETACHED;
		if (r->size - (head - tail) >= need)
			return RING_OK;
		atomic_store_explicit(&r->prod_waiting, 1, memory_order_seq_cst);
		tail = atomic_load_explicit(&r->tail, memory_order_seq_cst);    /* S1, A2 */
		if (r->size - (head - tail) >= need || w->deadline_ms == 0) {
			atomic_store_explicit(&r->prod_waiting, 0, memory_order_relaxed);
			return r->size - (head - tail) >= need ? RING_OK : RING_TIMEOUT;
		}
		rr = ring_sleep(r, &r->spaces, &r->prod_waiting, w, dl);
		if (rr != RING_OK)
			return rr;
	}
}

static void
publish_head(struct ring *r, uint32_t head)
{
	atomic_store_explicit(&r->head, head, memory_order_seq_cst);   /* R1 */
	ring_wake(&r->items, &r->cons_waiting);
}

enum ring_result
ring_reserve(struct ring *r, uint32_t len, void **payload, const struct ring_wait *w)
{
	uint32_t head, pos, contig, need;
	struct timespec dl;
	enum ring_result rr;

	if (len > r->size - HDR)
		return RING_TOOBIG;
	need = ALIGN_UP(HDR + len);
	deadline_from(&dl, w);
	head = atomic_load_explicit(&r->head, memory_order_relaxed);    /* ours */
	pos = head & (r->size - 1);
	contig = r->size - pos;
	if (need > contig) {
		/* fill the end of the buffer with padding and start again at 0 */
		struct ring_rec *pad = (struct ring_rec *)(r->data + pos);

		if ((rr = wait_space(r, head, contig, w, &dl)) != RING_OK)
			return rr;
		pad->len = contig;
		pad->type = RING_TYPE_PAD;
		pad->job = 0;
		head += contig;
		publish_head(r, head);
		pos = 0;
	}
	if ((rr = wait_space(r, head, need, w, &dl)) != RING_OK)
		return rr;
	*payload = ((struct ring_rec *)(r->data + pos))->payload;
	return RING_OK;
}

void
ring_commit(struct ring *r, uint32_t type, uint64_t job, uint32_t len)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	struct ring_rec *rec = (struct ring_rec *)(r->data + (head & (r->size - 1)));

	rec->len = HDR + len;
	rec->type = type;
	rec->job = job;
	publish_head(r, head + ALIGN_UP(HDR + len));
}

enum ring_result
ring_push(struct ring *r, uint32_t type, uint64_t job, const void *p, uint32_t len,
    const struct ring_wait *w)
{
	void *dst;
	enum ring_result rr = ring_reserve(r, len, &dst, w);

	if (rr != RING_OK)
		return rr;
	if (len > 0)
		memcpy(dst, p, len);
	ring_commit(r, type, job, len);
	return RING_OK;
}

/*
 * Whether the record at tail, of header len and type, is one a correct producer could have
 * published: the producer is another process, which a hostile image may have subverted, so
 * nothing it wrote is trusted to stay inside the buffer.
 */
static int
valid(const struct ring *r, uint32_t head, uint32_t tail, uint32_t len, uint32_t type)
{
	uint32_t pos = tail & (r->size - 1), avail = head - tail;

	if (avail > r->size || len < HDR || len > r->size || ALIGN_UP(len) > avail ||
	    pos + ALIGN_UP(len) > r->size)
		return 0;
	return type != RING_TYPE_PAD || len == r->size - pos;
}

/* Consumer: the record at tail into m, padding consumed, its header read once and checked;
 * RING_OK, RING_EMPTY, or RING_CORRUPT when the ring holds something no correct producer
 * writes (then it is detached for good). */
enum ring_result
ring_try_peek(struct ring *r, struct ring_msg *m)
{
	for (;;) {
		uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);  /* ours */
		uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);  /* A1 */
		struct ring_rec *rec;
		uint32_t len, type;

		if (head == tail)
			return RING_EMPTY;
		rec = (struct ring_rec *)(r->data + (tail & (r->size - 1)));
		len = *(volatile uint32_t *)&rec->len;
		type = *(volatile uint32_t *)&rec->type;
		if (!valid(r, head, tail, len, type)) {
			ring_detach(r);
			return RING_CORRUPT;
		}
		if (type != RING_TYPE_PAD) {
			m->type = type;
			m->len = len - HDR;
			m->job = *(volatile uint64_t *)&rec->job;
			m->payload = rec->payload;
			return RING_OK;
		}
		atomic_store_explicit(&r->tail, tail + len, memory_order_seq_cst);  /* R2 */
		ring_wake(&r->spaces, &r->prod_waiting);
	}
}

int
ring_pending(const struct ring *r)
{
	struct ring *m = (struct ring *)r;

	return atomic_load_explicit(&m->head, memory_order_acquire) !=     /* A1 */
	    atomic_load_explicit(&m->tail, memory_order_acquire);
}

enum ring_result
ring_peek(struct ring *r, struct ring_msg *m, const struct ring_wait *w)
{
	struct timespec dl;

	deadline_from(&dl, w);
	for (;;) {
		enum ring_result rr = ring_try_peek(r, m);

		if (rr != RING_EMPTY)
			return rr;
		if (atomic_load_explicit(&r->detached, memory_order_acquire))
			return RING_DETACHED;
		atomic_store_explicit(&r->cons_waiting, 1, memory_order_seq_cst);
		if (atomic_load_explicit(&r->head, memory_order_seq_cst) !=     /* S1, A1 */
		    atomic_load_explicit(&r->tail, memory_order_relaxed)) {
			atomic_store_explicit(&r->cons_waiting, 0, memory_order_relaxed);
			continue;
		}
		if (w->deadline_ms == 0) {
			atomic_store_explicit(&r->cons_waiting, 0, memory_order_relaxed);
			return RING_TIMEOUT;
		}
		rr = ring_sleep(r, &r->items, &r->cons_waiting, w, &dl);
		if (rr == RING_DETACHED) {
			rr = ring_try_peek(r, m);       /* drain what a detached producer left */
			return rr == RING_EMPTY ? RING_DETACHED : rr;
		}
		if (rr != RING_OK)
			return rr;
	}
}

void
ring_release(struct ring *r, const struct ring_msg *m)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

	/* by the length ring_try_peek checked, whatever the record's header says now */
	atomic_store_explicit(&r->tail, tail + ALIGN_UP(HDR + m->len), memory_order_seq_cst); /* R2 */
	ring_wake(&r->spaces, &r->prod_waiting);
}
