/*
 * ring suite: the shared-memory SPSC ring of variable-length records (thumbr/ring.h).
 * Every ring lives in a MAP_SHARED|MAP_ANONYMOUS mapping made by a checked fixture, so forked
 * children share it.  Covered: ring_init's size checks; an empty ring; records of several
 * sizes (0 bytes too) in FIFO order; short commits and abandoned reservations; padding at the
 * wrap, checked against a model of head and tail over thousands of records, also across the
 * uint32 overflow of the free-running counters; a full ring and deadlines; RING_TOOBIG and the
 * largest payload; producer and consumer in different processes and in different threads (no
 * lost wake-up: alive() is only consulted after an idle slice, and must never be); a blocked
 * producer or consumer woken by ring_detach alone; a detached ring drained first; a dead peer
 * noticed through alive() instead of a hang; ring_reset.
 *
 * Children never call ck_assert: they report through their exit status, which the parent
 * checks.  Every TCase that waits has a timeout, so a hang fails instead of blocking CI.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "thumbr/ring.h"
#include "thumbr/util.h"
#include "suites.h"

#define HDR ((uint32_t)sizeof(struct ring_rec))
#define FOOT(len) ((HDR + (len) + RING_ALIGN - 1) & ~(uint32_t)(RING_ALIGN - 1))
#define NSTRESS 20000u
#define BIG_SLICE 10000u        /* so long that only a post can end the sleep in a test */
#define STRESS_SLICE 3000u      /* a slice this long never passes idle unless a wake-up is lost */
#define PROMPT_MS 2000          /* "promptly": far below BIG_SLICE */

static struct ring *R;
static size_t R_len;

/* Waits: try once (a 1 ms slice, no deadline left), and for ever bar a post. */
static const struct ring_wait TRY = { 1, 0, NULL, NULL };
static const struct ring_wait FOREVER = { BIG_SLICE, -1, NULL, NULL };

/* ---- fixtures ---- */

static struct ring *
map_ring(uint32_t size, size_t *len)
{
	void *p;

	*len = ring_footprint(size);
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert_int_eq(ring_init(p, size), 0);
	return p;
}

static void
setup_256(void)
{
	R = map_ring(256, &R_len);
}

static void
setup_1k(void)
{
	R = map_ring(1024, &R_len);
}

static void
setup_64k(void)
{
	R = map_ring(64 * 1024, &R_len);
}

static void
teardown(void)
{
	ring_destroy(R);
	munmap(R, R_len);
	R = NULL;
}

/* ---- records: length, type and bytes are functions of the sequence number ---- */

static uint32_t
mix32(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (uint32_t)(x ^ (x >> 31));
}

/* Mostly small, some empty, some near the largest payload, some anything. */
static uint32_t
rec_len(uint64_t seq, uint32_t maxp)
{
	uint32_t h = mix32(seq), small = maxp < 100 ? maxp + 1 : 100;

	switch (h & 15) {
	case 0:
		return 0;
	case 1:
		return maxp - (h >> 4) % (maxp < 48 ? maxp + 1 : 48);
	case 2:
	case 3:
		return (h >> 4) % (maxp + 1);
	default:
		return (h >> 4) % small;
	}
}

static uint32_t
rec_type(uint64_t seq)
{
	return 1 + (uint32_t)(seq % 1000);
}

static unsigned char
rec_byte(uint64_t seq, uint32_t i)
{
	return (unsigned char)((mix32(seq) >> 8) + i * 167u + (i >> 8));
}

static void
fill(void *p, uint64_t seq, uint32_t len)
{
	unsigned char *b = p;

	for (uint32_t i = 0; i < len; i++)
		b[i] = rec_byte(seq, i);
}

/* 0 when m is record seq with a payload of len bytes; else what is wrong. */
static int
rec_bad(const struct ring_msg *m, uint64_t seq, uint32_t len)
{
	if (m->type != rec_type(seq))
		return 1;
	if (m->job != seq)
		return 2;
	if (m->len != len)
		return 3;
	for (uint32_t i = 0; i < len; i++)
		if (m->payload[i] != rec_byte(seq, i))
			return 4;
	if ((uintptr_t)m->payload % RING_ALIGN != 0)
		return 5;
	return 0;
}

/* Producer of records [0, n): alternately reserve (more than needed) + short commit, and
 * push.  0, or 10 + the ring_result that stopped it. */
static int
produce(struct ring *r, uint64_t n, const struct ring_wait *w)
{
	uint32_t maxp = ring_max_payload(r);
	unsigned char *buf = malloc(maxp);

	if (buf == NULL)
		return 9;
	for (uint64_t seq = 0; seq < n; seq++) {
		uint32_t len = rec_len(seq, maxp);
		enum ring_result rr;

		if (seq % 2 == 0) {
			uint32_t extra = seq % 4 == 0 ? 37 : 0;
			void *p;

			if (extra > maxp - len)
				extra = maxp - len;
			rr = ring_reserve(r, len + extra, &p, w);
			if (rr == RING_OK) {
				fill(p, seq, len);
				ring_commit(r, rec_type(seq), seq, len);
			}
		} else {
			fill(buf, seq, len);
			rr = ring_push(r, rec_type(seq), seq, buf, len, w);
		}
		if (rr != RING_OK) {
			free(buf);
			return 10 + (int)rr;
		}
	}
	free(buf);
	return 0;
}

/* Consumer of records [0, n), then expects an empty ring.  0; 1-5 from rec_bad (with *where
 * the sequence number); 10 + the ring_result that stopped it; 20 when more is there. */
static int
consume(struct ring *r, uint64_t n, const struct ring_wait *w, uint64_t *where)
{
	uint32_t maxp = ring_max_payload(r);
	struct ring_msg rec;

	for (uint64_t seq = 0; seq < n; seq++) {
		enum ring_result rr = ring_peek(r, &rec, w);
		int bad;

		*where = seq;
		if (rr != RING_OK)
			return 10 + (int)rr;
		if ((bad = rec_bad(&rec, seq, rec_len(seq, maxp))) != 0)
			return bad;
		ring_release(r, &rec);
	}
	return ring_try_peek(r, &rec) == RING_EMPTY ? 0 : 20;
}

/* ---- peers: alive() callbacks that count the idle slices ---- */

struct peer {
	pid_t pid;
	int exited;             /* reaped by alive_child; status holds the wait status */
	int status;
	_Atomic unsigned slices;        /* idle slices seen, i.e. calls of alive() */
};

static int
alive_child(void *arg)
{
	struct peer *p = arg;

	atomic_fetch_add(&p->slices, 1);
	if (!p->exited && waitpid(p->pid, &p->status, WNOHANG) == p->pid)
		p->exited = 1;
	return !p->exited;
}

static int
alive_parent(void *arg)
{
	struct peer *p = arg;

	atomic_fetch_add(&p->slices, 1);
	return getppid() == p->pid;
}

static int
alive_count(void *arg)
{
	struct peer *p = arg;

	atomic_fetch_add(&p->slices, 1);
	return 1;
}

/* Reap p's child within ms (else kill it): 0 exited or killed by a signal on its own, -1 we
 * had to kill it. */
static int
reap(struct peer *p, int ms)
{
	int64_t end = now_ms() + ms;

	while (!p->exited) {
		pid_t got = waitpid(p->pid, &p->status, WNOHANG);

		if (got == p->pid) {
			p->exited = 1;
			break;
		}
		if (got < 0 && errno != EINTR) {
			p->status = -1;
			return -1;
		}
		if (now_ms() > end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &p->status, 0);
			p->exited = 1;
			return -1;
		}
		usleep(1000);
	}
	return 0;
}

static void
assert_exit0(struct peer *p, const char *what)
{
	ck_assert_msg(reap(p, 5000) == 0, "%s: child not reaped within 5 s; killed", what);
	ck_assert_msg(WIFEXITED(p->status), "%s: child killed by signal %d", what,
	    WIFSIGNALED(p->status) ? WTERMSIG(p->status) : -1);
	ck_assert_msg(WEXITSTATUS(p->status) == 0, "%s: child exit status %d", what,
	    WEXITSTATUS(p->status));
}

/* Wait until *flag is set (a side announced it sleeps); 0, or -1 after ms. */
static int
wait_flag(_Atomic uint32_t *flag, int ms)
{
	int64_t end = now_ms() + ms;

	while (atomic_load(flag) == 0) {
		if (now_ms() > end)
			return -1;
		usleep(1000);
	}
	usleep(20000);          /* and let it get into sem_timedwait */
	return 0;
}

static void
join_within(pthread_t t, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	ck_assert_msg(pthread_timedjoin_np(t, NULL, &ts) == 0, "thread still blocked after %d ms",
	    ms);
}

/* Push record seq with a len-byte payload; there must be room (TRY does not wait). */
static void
push_now(uint64_t seq, uint32_t len)
{
	unsigned char buf[4096];

	ck_assert_uint_le(len, sizeof(buf));
	fill(buf, seq, len);
	ck_assert_int_eq(ring_push(R, rec_type(seq), seq, buf, len, &TRY), RING_OK);
}

/* Pop the next record, which must be seq with a len-byte payload, without waiting. */
static void
pop_now(uint64_t seq, uint32_t len)
{
	struct ring_msg rec;
	int bad;

	ck_assert_int_eq(ring_try_peek(R, &rec), RING_OK);
	bad = rec_bad(&rec, seq, len);
	ck_assert_msg(bad == 0, "record %llu: mismatch %d (type %u job %llu len %u)",
	    (unsigned long long)seq, bad, rec.type, (unsigned long long)rec.job,
	    rec.len);
	ring_release(R, &rec);
}

/* ---- basics ---- */

START_TEST(init_sizes)
{
	static const uint32_t bad[] = { 0, 1, 16, 32, 63, 65, 100, 3000, 65535 };
	size_t len = ring_footprint(4096);
	struct ring *r = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(r, MAP_FAILED);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ring_init(r, bad[i]) == -1, "ring_init accepted size %u", bad[i]);
	ck_assert_int_eq(ring_init(r, 64), 0);
	ck_assert_uint_eq(ring_max_payload(r), 64 - HDR);
	ring_destroy(r);
	ck_assert_int_eq(ring_init(r, 4096), 0);
	ring_destroy(r);
	munmap(r, len);
	ck_assert_uint_ge(ring_footprint(256), offsetof(struct ring, data) + 256);
	ck_assert_uint_ge(ring_footprint(1u << 20), offsetof(struct ring, data) + (1u << 20));
}
END_TEST

START_TEST(empty)
{
	struct ring_msg rec;

	ck_assert_int_eq(ring_try_peek(R, &rec), RING_EMPTY);
	ck_assert_int_eq(ring_pending(R), 0);
	ck_assert_int_eq(ring_is_detached(R), 0);
	push_now(1, 3);
	ck_assert_int_eq(ring_pending(R), 1);
	pop_now(1, 3);
	ck_assert_int_eq(ring_pending(R), 0);
	ck_assert_int_eq(ring_try_peek(R, &rec), RING_EMPTY);
}
END_TEST

START_TEST(push_peek_fifo)
{
	static const struct {
		uint32_t type;
		uint64_t job;
		uint32_t len;
	} v[] = {
		{ 1, 7, 5 },
		{ 2, UINT64_MAX, 0 },
		{ UINT32_MAX, 0, 100 },
		{ 3, 42, 1 },
		{ 9, 1ull << 40, 16 },
	};
	unsigned char buf[128];
	struct ring_msg rec, again;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		fill(buf, 1000 + i, v[i].len);
		ck_assert_int_eq(ring_push(R, v[i].type, v[i].job, buf, v[i].len, &TRY), RING_OK);
	}
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		ck_assert_int_eq(ring_try_peek(R, &rec), RING_OK);
		ck_assert_uint_eq(rec.type, v[i].type);
		ck_assert_uint_eq(rec.job, v[i].job);
		ck_assert_uint_eq(rec.len, v[i].len);
		for (uint32_t k = 0; k < v[i].len; k++)
			ck_assert_uint_eq(rec.payload[k], rec_byte(1000 + i, k));
		/* peeking again without a release gives the same record */
		ck_assert_int_eq(ring_peek(R, &again, &TRY), RING_OK);
		ck_assert(again.payload == rec.payload && again.job == rec.job &&
		    again.len == rec.len);
		ring_release(R, &rec);
	}
	ck_assert_int_eq(ring_try_peek(R, &rec), RING_EMPTY);
	ck_assert_int_eq(ring_pending(R), 0);
}
END_TEST

/* A commit shorter than the reservation takes only what it needs; an abandoned reservation
 * publishes nothing and its space is handed out again. */
START_TEST(short_commit_and_abandon)
{
	void *p, *q;
	uint32_t head0;
	struct ring_msg rec;

	ck_assert_int_eq(ring_reserve(R, 100, &p, &TRY), RING_OK);
	ck_assert_int_eq(ring_try_peek(R, &rec), RING_EMPTY);      /* not yet committed */
	ck_assert_int_eq(ring_pending(R), 0);
	ck_assert_int_eq(ring_reserve(R, 50, &q, &TRY), RING_OK);
	ck_assert_ptr_eq(q, p);                                     /* abandoned: reused */
	fill(q, 5, 10);
	ring_commit(R, rec_type(5), 5, 10);
	ck_assert_uint_eq(atomic_load(&R->head), FOOT(10));
	head0 = atomic_load(&R->head);
	push_now(6, 0);
	ck_assert_uint_eq(atomic_load(&R->head), head0 + FOOT(0));
	pop_now(5, 10);
	pop_now(6, 0);
	ck_assert_uint_eq(atomic_load(&R->tail), atomic_load(&R->head));
}
END_TEST

START_TEST(peek_timeout)
{
	struct ring_wait w = { 10, 50, NULL, NULL };
	struct ring_msg rec;
	int64_t t0 = now_ms(), dt;

	ck_assert_int_eq(ring_peek(R, &rec, &w), RING_TIMEOUT);
	dt = now_ms() - t0;
	ck_assert_int_ge(dt, 45);
	ck_assert_int_lt(dt, PROMPT_MS);
}
END_TEST

START_TEST(full)
{
	struct ring_wait w = { 10, 50, NULL, NULL };
	uint32_t len = 256 / 4 - HDR;   /* four records fill the ring exactly */
	int64_t t0, dt;
	void *p;

	for (uint64_t seq = 0; seq < 4; seq++)
		push_now(seq, len);
	ck_assert_uint_eq(atomic_load(&R->head) - atomic_load(&R->tail), 256);
	t0 = now_ms();
	ck_assert_int_eq(ring_reserve(R, 0, &p, &w), RING_TIMEOUT);
	dt = now_ms() - t0;
	ck_assert_int_ge(dt, 45);
	ck_assert_int_lt(dt, PROMPT_MS);
	ck_assert_int_eq(ring_reserve(R, len, &p, &w), RING_TIMEOUT);
	pop_now(0, len);
	push_now(4, len);               /* room for exactly one again, no waiting */
	ck_assert_int_eq(ring_reserve(R, 0, &p, &TRY), RING_TIMEOUT);
	for (uint64_t seq = 1; seq < 5; seq++)
		pop_now(seq, len);
	ck_assert_int_eq(ring_pending(R), 0);
}
END_TEST

START_TEST(toobig)
{
	uint32_t maxp = ring_max_payload(R);
	unsigned char buf[512];
	void *p;
	int64_t t0 = now_ms();

	ck_assert_uint_eq(maxp, 256 - HDR);
	ck_assert_int_eq(ring_reserve(R, maxp + 1, &p, &FOREVER), RING_TOOBIG);
	ck_assert_int_eq(ring_reserve(R, UINT32_MAX, &p, &FOREVER), RING_TOOBIG);
	ck_assert_int_eq(ring_reserve(R, UINT32_MAX - HDR + 1, &p, &FOREVER), RING_TOOBIG);
	ck_assert_int_eq(ring_push(R, 1, 1, buf, maxp + 1, &FOREVER), RING_TOOBIG);
	ck_assert_int_lt(now_ms() - t0, PROMPT_MS);
	ck_assert_int_eq(ring_pending(R), 0);
	/* the largest payload fills an empty ring */
	push_now(77, maxp);
	ck_assert_uint_eq(atomic_load(&R->head), 256);
	ck_assert_int_eq(ring_reserve(R, 0, &p, &TRY), RING_TIMEOUT);
	pop_now(77, maxp);
	push_now(78, maxp);             /* again, from position 0 of the next lap */
	pop_now(78, maxp);
}
END_TEST

/* A record that does not fit before the end: the producer publishes a padding record (the
 * ring is then pending but holds nothing to read) and waits for the consumer to skip it. */
START_TEST(padding_needs_consumer)
{
	struct ring_wait w = { 5, 20, NULL, NULL };
	struct ring_msg rec;
	void *p;

	push_now(1, 192 - HDR);         /* [0,192) */
	pop_now(1, 192 - HDR);          /* empty at position 192: 64 bytes before the end */
	ck_assert_int_eq(ring_reserve(R, 200, &p, &w), RING_TIMEOUT);
	ck_assert_uint_eq(atomic_load(&R->head), 256);      /* the pad [192,256) is out */
	ck_assert_int_eq(ring_pending(R), 1);
	ck_assert_int_eq(ring_try_peek(R, &rec), RING_EMPTY);      /* skips the pad */
	ck_assert_int_eq(ring_pending(R), 0);
	ck_assert_uint_eq(atomic_load(&R->tail), 256);
	push_now(2, 200);               /* now at position 0, without waiting */
	ck_assert_uint_eq(atomic_load(&R->head), 256 + FOOT(200));
	pop_now(2, 200);
}
END_TEST

START_TEST(detached_drained_first)
{
	struct ring_msg rec;
	void *p;
	int64_t t0;

	push_now(0, 10);
	push_now(1, 0);
	push_now(2, 100);
	ring_detach(R);
	ck_assert_int_eq(ring_is_detached(R), 1);
	for (uint64_t seq = 0; seq < 3; seq++) {
		uint32_t len = seq == 0 ? 10 : seq == 1 ? 0 : 100;

		ck_assert_int_eq(ring_peek(R, &rec, &FOREVER), RING_OK);
		ck_assert_int_eq(rec_bad(&rec, seq, len), 0);
		ring_release(R, &rec);
	}
	t0 = now_ms();
	ck_assert_int_eq(ring_peek(R, &rec, &FOREVER), RING_DETACHED);
	ck_assert_int_eq(ring_peek(R, &rec, &FOREVER), RING_DETACHED);
	/* a producer gets no room in a detached ring, even an empty one */
	ck_assert_int_eq(ring_reserve(R, 1, &p, &FOREVER), RING_DETACHED);
	ck_assert_int_lt(now_ms() - t0, PROMPT_MS);
	ck_assert_int_eq(ring_is_detached(R), 1);
}
END_TEST

START_TEST(reset)
{
	struct ring_wait w = { 10, 50, NULL, NULL };
	struct ring_msg rec;

	push_now(0, 20);
	push_now(1, 30);
	ring_detach(R);
	ring_reset(R);
	ck_assert_int_eq(ring_is_detached(R), 0);
	ck_assert_int_eq(ring_pending(R), 0);
	ck_assert_int_eq(ring_try_peek(R, &rec), RING_EMPTY);
	ck_assert_uint_eq(ring_max_payload(R), 256 - HDR);
	/* no longer detached: an empty ring waits out its deadline */
	ck_assert_int_eq(ring_peek(R, &rec, &w), RING_TIMEOUT);
	/* and works as new, full capacity included */
	push_now(2, ring_max_payload(R));
	pop_now(2, ring_max_payload(R));
	push_now(3, 5);
	pop_now(3, 5);
	/* a reset with a record in it, in the middle of a lap */
	push_now(4, 100);
	ring_reset(R);
	ck_assert_int_eq(ring_pending(R), 0);
	push_now(5, ring_max_payload(R));
	pop_now(5, ring_max_payload(R));
}
END_TEST

/* ---- wrap-around against a model of the counters ---- */

struct model {
	uint32_t size, head, tail;
	uint64_t next_push, next_pop;
	uint32_t end[256];      /* in flight: the head after each record, by seq % 256 */
	unsigned pads;
};

/* Drive random pushes and pops, single-threaded, only pushing what the model says fits
 * without waiting (so every push with TRY must succeed), checking the counters after each
 * step and every byte of every record. */
static void
churn(uint32_t start, unsigned steps, struct model *m)
{
	uint32_t maxp = ring_max_payload(R);
	uint64_t rnd = 12345;

	memset(m, 0, sizeof(*m));
	m->size = R->size;
	m->head = m->tail = start;
	atomic_store(&R->head, start);
	atomic_store(&R->tail, start);
	for (unsigned i = 0; i < steps; i++) {
		uint32_t len = rec_len(m->next_push, maxp), need = FOOT(len);
		uint32_t contig = m->size - (m->head & (m->size - 1)), used = m->head - m->tail;
		int pad = need > contig;
		int fits = m->size - used >= need + (pad ? contig : 0);

		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		if (!fits && used == 0) {
			struct ring_msg rec;
			void *p;

			/* even an empty ring lacks room for pad + record: the producer publishes
			 * the pad and waits for the consumer to skip it */
			ck_assert_int_eq(ring_reserve(R, len, &p, &TRY), RING_TIMEOUT);
			m->head += contig;
			m->pads++;
			ck_assert_uint_eq(atomic_load(&R->head), m->head);
			ck_assert_int_eq(ring_try_peek(R, &rec), RING_EMPTY);
			m->tail = m->head;
			ck_assert_uint_eq(atomic_load(&R->tail), m->tail);
		} else if (fits && (m->next_pop == m->next_push || (rnd >> 33) % 100 < 60)) {
			push_now(m->next_push, len);
			if (pad) {
				m->head += contig;
				m->pads++;
			}
			m->head += need;
			m->end[m->next_push % 256] = m->head;
			m->next_push++;
			ck_assert_uint_eq(atomic_load(&R->head), m->head);
		} else {
			ck_assert_uint_ne(m->next_pop, m->next_push);
			pop_now(m->next_pop, rec_len(m->next_pop, maxp));
			m->tail = m->end[m->next_pop % 256];
			m->next_pop++;
			ck_assert_uint_eq(atomic_load(&R->tail), m->tail);
		}
		ck_assert_int_eq(ring_pending(R), m->next_pop != m->next_push);
	}
	while (m->next_pop < m->next_push) {
		pop_now(m->next_pop, rec_len(m->next_pop, maxp));
		m->next_pop++;
	}
	ck_assert_int_eq(ring_pending(R), 0);
}

START_TEST(wrap_around)
{
	static struct model m;

	churn(0, 20000, &m);
	ck_assert_uint_gt(m.next_push, 5000);
	ck_assert_uint_gt(m.pads, 500);
	ck_assert_uint_gt(m.head, 200u * 256);          /* the buffer wrapped hundreds of times */
}
END_TEST

START_TEST(counter_overflow)
{
	static struct model m;
	uint32_t start = 0u - 4096 + 48;        /* aligned, 48 bytes into the buffer */

	churn(start, 20000, &m);
	ck_assert_uint_gt(m.pads, 500);
	ck_assert_uint_lt(m.head, start);       /* the head counter went past UINT32_MAX */
	ck_assert_uint_gt(m.head, 100u * 256);
}
END_TEST

/* ---- producer and consumer concurrently ---- */

struct prod_arg {
	struct ring *r;
	struct peer peer;
	int rc;
};

static void *
producer_thread(void *arg)
{
	struct prod_arg *a = arg;
	struct ring_wait w = { STRESS_SLICE, -1, alive_count, &a->peer };

	a->rc = produce(a->r, NSTRESS, &w);
	return NULL;
}

/* Threads over a 256-byte ring, counters starting just below UINT32_MAX: constant blocking
 * on both sides, and ThreadSanitizer sees the payload hand-over. */
START_TEST(threads_spsc)
{
	static struct prod_arg a;
	struct peer me = { 0 };
	struct ring_wait w = { STRESS_SLICE, -1, alive_count, &me };
	uint64_t where = 0;
	pthread_t t;
	int rc;

	atomic_store(&R->head, 0u - 1024);
	atomic_store(&R->tail, 0u - 1024);
	memset(&a, 0, sizeof(a));
	a.r = R;
	ck_assert_int_eq(pthread_create(&t, NULL, producer_thread, &a), 0);
	rc = consume(R, NSTRESS, &w, &where);
	if (rc != 0)
		ring_detach(R);         /* free the producer */
	join_within(t, 5000);
	ck_assert_msg(rc == 0, "consumer: error %d at record %llu", rc,
	    (unsigned long long)where);
	ck_assert_msg(a.rc == 0, "producer: error %d", a.rc);
	ck_assert_msg(me.slices == 0 && a.peer.slices == 0,
	    "a wake-up was lost: consumer slept out %u slices, producer %u",
	    me.slices, a.peer.slices);
	ck_assert_uint_lt(atomic_load(&R->head), 0u - 1024);       /* wrapped */
}
END_TEST

/* A forked child produces, the parent consumes; the child detaches when done. */
static void
child_produces(void)
{
	struct peer parent = { .pid = getpid() };
	struct peer child = { 0 };
	struct ring_wait w = { STRESS_SLICE, -1, alive_child, &child };
	struct ring_msg rec;
	uint64_t where = 0;
	int rc;

	child.pid = fork();
	ck_assert_int_ge(child.pid, 0);
	if (child.pid == 0) {
		struct ring_wait cw = { STRESS_SLICE, -1, alive_parent, &parent };

		rc = produce(R, NSTRESS, &cw);
		if (rc == 0 && parent.slices != 0)
			rc = 40;        /* a wake-up was lost */
		ring_detach(R);
		_exit(rc);
	}
	rc = consume(R, NSTRESS, &w, &where);
	if (rc == 0)
		rc = ring_peek(R, &rec, &w) == RING_DETACHED ? 0 : 30;
	else
		ring_detach(R);
	ck_assert_msg(rc == 0, "consumer: error %d at record %llu", rc,
	    (unsigned long long)where);
	assert_exit0(&child, "producer");
	ck_assert_msg(child.slices == 0, "a wake-up was lost: consumer slept out %u slices",
	    child.slices);
}

/* A forked child consumes, the parent produces. */
static void
child_consumes(void)
{
	struct peer parent = { .pid = getpid() };
	struct peer child = { 0 };
	struct ring_wait w = { STRESS_SLICE, -1, alive_child, &child };
	int rc;

	child.pid = fork();
	ck_assert_int_ge(child.pid, 0);
	if (child.pid == 0) {
		struct ring_wait cw = { STRESS_SLICE, -1, alive_parent, &parent };
		uint64_t where;

		rc = consume(R, NSTRESS, &cw, &where);
		if (rc == 0 && parent.slices != 0)
			rc = 40;
		_exit(rc);
	}
	rc = produce(R, NSTRESS, &w);
	if (rc != 0)
		ring_detach(R);
	ck_assert_msg(rc == 0, "producer: error %d", rc);
	assert_exit0(&child, "consumer");
	ck_assert_msg(child.slices == 0, "a wake-up was lost: producer slept out %u slices",
	    child.slices);
	ck_assert_int_eq(ring_pending(R), 0);
}

START_TEST(fork_child_produces)
{
	child_produces();
}
END_TEST

START_TEST(fork_child_consumes)
{
	child_consumes();
}
END_TEST

/* ---- ring_detach wakes a sleeper that nothing else would wake ---- */

struct sleeper {
	struct ring *r;
	int consumer;
	enum ring_result rr;
	int64_t woke_ms;
};

static void *
sleeper_thread(void *arg)
{
	struct sleeper *s = arg;
	struct ring_msg rec;
	void *p;

	if (s->consumer)
		s->rr = ring_peek(s->r, &rec, &FOREVER);
	else
		s->rr = ring_reserve(s->r, 1, &p, &FOREVER);
	s->woke_ms = now_ms();
	return NULL;
}

static void
fill_ring(void)
{
	uint32_t len = R->size / 4 - HDR;

	for (uint64_t seq = 0; seq < 4; seq++)
		push_now(seq, len);
}

static void
detach_wakes_thread(int consumer)
{
	struct sleeper s = { .r = R, .consumer = consumer, .rr = RING_OK };
	pthread_t t;
	int64_t t0;

	if (!consumer)
		fill_ring();
	ck_assert_int_eq(pthread_create(&t, NULL, sleeper_thread, &s), 0);
	ck_assert_msg(wait_flag(consumer ? &R->cons_waiting : &R->prod_waiting, 5000) == 0,
	    "the %s never went to sleep", consumer ? "consumer" : "producer");
	t0 = now_ms();
	ring_detach(R);
	join_within(t, 3 * PROMPT_MS);
	ck_assert_int_eq(s.rr, RING_DETACHED);
	ck_assert_int_lt(s.woke_ms - t0, PROMPT_MS);
}

static void
detach_wakes_process(int consumer)
{
	struct peer child = { 0 };
	int64_t t0;

	if (!consumer)
		fill_ring();
	child.pid = fork();
	ck_assert_int_ge(child.pid, 0);
	if (child.pid == 0) {
		struct sleeper s = { .r = R, .consumer = consumer, .rr = RING_OK };

		sleeper_thread(&s);
		_exit(s.rr == RING_DETACHED ? 0 : 10 + (int)s.rr);
	}
	ck_assert_msg(wait_flag(consumer ? &R->cons_waiting : &R->prod_waiting, 5000) == 0,
	    "the %s never went to sleep", consumer ? "consumer" : "producer");
	t0 = now_ms();
	ring_detach(R);
	ck_assert_msg(reap(&child, 3 * PROMPT_MS) == 0, "the sleeper did not wake; killed");
	ck_assert_int_lt(now_ms() - t0, PROMPT_MS);
	ck_assert_msg(WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0,
	    "sleeper: wait status %#x (exit 10 + ring_result)", child.status);
}

START_TEST(detach_wakes_consumer_thread)
{
	detach_wakes_thread(1);
}
END_TEST

START_TEST(detach_wakes_producer_thread)
{
	detach_wakes_thread(0);
}
END_TEST

START_TEST(detach_wakes_consumer_process)
{
	detach_wakes_process(1);
}
END_TEST

START_TEST(detach_wakes_producer_process)
{
	detach_wakes_process(0);
}
END_TEST

/* ---- a peer that dies without detaching: alive() ends the wait ---- */

/* The child produces 3 records and dies (_exit, or SIGKILL when _i is 1); the parent drains
 * them and then learns through alive() that nobody is left. */
START_TEST(producer_dies)
{
	struct peer child = { 0 };
	struct ring_wait w = { 50, -1, alive_child, &child };
	struct ring_msg rec;
	int64_t t0;

	child.pid = fork();
	ck_assert_int_ge(child.pid, 0);
	if (child.pid == 0) {
		struct ring_wait cw = { 50, 5000, NULL, NULL };

		for (uint64_t seq = 0; seq < 3; seq++) {
			unsigned char buf[64];

			fill(buf, seq, (uint32_t)seq * 20);
			if (ring_push(R, rec_type(seq), seq, buf, (uint32_t)seq * 20, &cw) != RING_OK)
				_exit(1);
		}
		if (_i == 1)
			raise(SIGKILL);
		_exit(0);
	}
	for (uint64_t seq = 0; seq < 3; seq++) {
		ck_assert_int_eq(ring_peek(R, &rec, &w), RING_OK);
		ck_assert_int_eq(rec_bad(&rec, seq, (uint32_t)seq * 20), 0);
		ring_release(R, &rec);
	}
	t0 = now_ms();
	ck_assert_int_eq(ring_peek(R, &rec, &w), RING_DETACHED);
	ck_assert_int_lt(now_ms() - t0, PROMPT_MS);
	ck_assert_int_eq(ring_is_detached(R), 0);   /* it was alive() that said so */
	ck_assert_int_eq(reap(&child, 1000), 0);
	if (_i == 1)
		ck_assert(WIFSIGNALED(child.status) && WTERMSIG(child.status) == SIGKILL);
	else
		ck_assert(WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0);
}
END_TEST

/* The child consumes one record and is killed; the parent fills the ring and, blocked for
 * room, learns through alive() that nobody is left. */
START_TEST(consumer_dies)
{
	struct peer child = { 0 };
	struct ring_wait w = { 50, -1, alive_child, &child };
	enum ring_result rr;
	uint64_t seq;
	int64_t t0;

	child.pid = fork();
	ck_assert_int_ge(child.pid, 0);
	if (child.pid == 0) {
		struct ring_msg rec;

		if (ring_peek(R, &rec, &FOREVER) != RING_OK)
			_exit(1);
		ring_release(R, &rec);
		raise(SIGKILL);
		_exit(2);
	}
	t0 = now_ms();
	for (seq = 0; seq < 1000; seq++) {
		unsigned char buf[40];

		fill(buf, seq, sizeof(buf));
		if ((rr = ring_push(R, rec_type(seq), seq, buf, sizeof(buf), &w)) != RING_OK)
			break;
	}
	ck_assert_int_eq(rr, RING_DETACHED);
	ck_assert_uint_ge(seq, 256 / FOOT(40));     /* it did fill the ring first */
	ck_assert_int_lt(now_ms() - t0, PROMPT_MS);
	ck_assert_int_eq(reap(&child, 1000), 0);
	ck_assert(WIFSIGNALED(child.status) && WTERMSIG(child.status) == SIGKILL);
}
END_TEST


/* A producer in another process is not trusted: lengths that leave the buffer, padding that
 * does not end at its end, an empty header: the ring is detached, never read past. */
START_TEST(corrupt_records_detach)
{
	static const uint32_t bad[] = { 0, 5, 15, 300, 0xffffffffu };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ring_msg rec;
		void *p;

		ring_reset(R);
		ck_assert_int_eq(ring_reserve(R, 8, &p, &TRY), RING_OK);
		ring_commit(R, 7, 1, 8);
		((struct ring_rec *)R->data)->len = bad[i];     /* the producer lies */
		ck_assert_int_eq(ring_try_peek(R, &rec), RING_CORRUPT);
		ck_assert(ring_is_detached(R));
	}
	{
		struct ring_msg rec;
		struct ring_rec *pad;

		ring_reset(R);
		pad = (struct ring_rec *)R->data;
		pad->len = 64;                  /* padding must reach the end of the buffer */
		pad->type = RING_TYPE_PAD;
		atomic_store(&R->head, 64);
		ck_assert_int_eq(ring_try_peek(R, &rec), RING_CORRUPT);
		ring_reset(R);
		atomic_store(&R->head, R->size + 16);   /* more published than the ring holds */
		ck_assert_int_eq(ring_try_peek(R, &rec), RING_CORRUPT);
	}
	{
		/* changed between the peek and the release: nothing the consumer holds changes,
		 * and the release goes by the length the peek checked */
		struct ring_msg m;
		void *p;

		ring_reset(R);
		ck_assert_int_eq(ring_reserve(R, 8, &p, &TRY), RING_OK);
		ring_commit(R, 7, 1, 8);
		ck_assert_int_eq(ring_try_peek(R, &m), RING_OK);
		((struct ring_rec *)R->data)->len = 100000;
		((struct ring_rec *)R->data)->job = 1u << 30;
		ck_assert_uint_eq(m.len, 8);
		ck_assert_uint_eq(m.job, 1);
		ring_release(R, &m);
		ck_assert_uint_eq(atomic_load(&R->tail), FOOT(8));
		ck_assert_int_eq(ring_try_peek(R, &m), RING_EMPTY);
	}
}
END_TEST

/* The sizing io relies on: a record of up to a third of the ring (less two headers) always
 * fits beside one held record of the same bound, wherever the held one sits, so a sender
 * never waits on the worker it feeds. */
START_TEST(third_of_the_ring_always_fits)
{
	uint32_t max = R->size / 3 - 2 * (uint32_t)sizeof(struct ring_rec) - 16;

	for (uint32_t start = 0; start < R->size; start += 16)
		for (uint32_t held = 0; held <= max; held += max / 7 + 1) {
			struct ring_msg rec;
			void *p;

			ring_reset(R);
			atomic_store(&R->head, start);
			atomic_store(&R->tail, start);
			ck_assert_int_eq(ring_reserve(R, held, &p, &TRY), RING_OK);
			ring_commit(R, 1, 1, held);
			ck_assert_int_eq(ring_reserve(R, max, &p, &TRY), RING_OK);
			ring_commit(R, 1, 2, max);
			ck_assert_int_eq(ring_try_peek(R, &rec), RING_OK);
			ring_release(R, &rec);                        /* the held one goes ... */
			ck_assert_int_eq(ring_try_peek(R, &rec), RING_OK);
			ck_assert_uint_eq(rec.job, 2);
			/* ... and with the second one held, a third of the largest size fits */
			ck_assert_int_eq(ring_reserve(R, max, &p, &TRY), RING_OK);
			ring_commit(R, 1, 3, max);
		}
}
END_TEST

Suite *
ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tc;

	tc = tcase_create("basic");
	tcase_add_checked_fixture(tc, setup_256, teardown);
	tcase_add_test(tc, corrupt_records_detach);
	tcase_add_test(tc, third_of_the_ring_always_fits);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, init_sizes);
	tcase_add_test(tc, empty);
	tcase_add_test(tc, push_peek_fifo);
	tcase_add_test(tc, short_commit_and_abandon);
	tcase_add_test(tc, peek_timeout);
	tcase_add_test(tc, full);
	tcase_add_test(tc, toobig);
	tcase_add_test(tc, padding_needs_consumer);
	tcase_add_test(tc, detached_drained_first);
	tcase_add_test(tc, reset);
	suite_add_tcase(s, tc);

	tc = tcase_create("wrap");
	tcase_add_checked_fixture(tc, setup_256, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, wrap_around);
	tcase_add_test(tc, counter_overflow);
	tcase_add_test(tc, threads_spsc);
	suite_add_tcase(s, tc);

	tc = tcase_create("fork_64k");
	tcase_add_checked_fixture(tc, setup_64k, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, fork_child_produces);
	tcase_add_test(tc, fork_child_consumes);
	suite_add_tcase(s, tc);

	tc = tcase_create("fork_1k");
	tcase_add_checked_fixture(tc, setup_1k, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, fork_child_produces);
	tcase_add_test(tc, fork_child_consumes);
	suite_add_tcase(s, tc);

	tc = tcase_create("detach");
	tcase_add_checked_fixture(tc, setup_256, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, detach_wakes_consumer_thread);
	tcase_add_test(tc, detach_wakes_producer_thread);
	tcase_add_test(tc, detach_wakes_consumer_process);
	tcase_add_test(tc, detach_wakes_producer_process);
	suite_add_tcase(s, tc);

	tc = tcase_create("dead_peer");
	tcase_add_checked_fixture(tc, setup_256, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_loop_test(tc, producer_dies, 0, 2);
	tcase_add_test(tc, consumer_dies);
	suite_add_tcase(s, tc);
	return s;
}
