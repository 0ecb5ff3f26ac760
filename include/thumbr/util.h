/*
 * util: small helpers shared by every module: error-buffer formatting, checked allocation,
 * monotonic time, big-endian reads, HOT (the vectorised loops' attribute), time slices.
 * Thread-safe (no state); xmalloc and friends exit on exhaustion, which only
 * the main process and workers at their top level may rely on.
 */
#ifndef THUMBR_UTIL_H
#define THUMBR_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define THUMBR_VERSION "0.1.0"
#define ERRSZ 256

/* Big-endian integers at p (file formats: JPEG markers, PNG chunks, ICC profiles). */
static inline unsigned
be16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static inline uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* For the hot loops of resample.c, chroma.c and jpegprog.c, plain C written to be
 * vectorised (the Makefile builds those files with -ftree-vectorize): cloned for AVX2 and
 * taken at run time where the CPU has it. */
#if defined(__SANITIZE_THREAD__)
/* No clones: TSan crashes in ifunc resolvers, which run before it is up.  And no TSan
 * instrumentation: these loops touch only their caller's rows, and instrumented they made
 * the end-to-end tests time out. */
#define HOT __attribute__((no_sanitize_thread))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

/* Format a message into a caller-owned buffer (never NULL-terminated short). */
void errf(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* CLOCK_MONOTONIC in milliseconds and in seconds. */
int64_t now_ms(void);
double now_s(void);

/* Ask for EEVDF time slices of ns nanoseconds for the calling thread and the threads and
 * processes it creates from now on (0: the default), keeping its nice value; nothing when
 * it runs under another policy than SCHED_OTHER (chrt) or where the kernel has no custom
 * slices (before Linux 6.12).  Best effort: no error. */
void set_time_slice(uint64_t ns);

#endif
