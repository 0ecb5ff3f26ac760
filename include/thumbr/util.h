/*
 * util: small helpers shared by every module: error-buffer formatting, checked allocation,
 * monotonic time.  Thread-safe (no state); xmalloc and friends exit on exhaustion, which only
 * the main process and workers at their top level may rely on.
 */
#ifndef THUMBR_UTIL_H
#define THUMBR_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define THUMBR_VERSION "0.1.0"
#define ERRSZ 256

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

#endif
