/*
 * plan: from the scanned sources to the list of jobs: output names, collisions, order.
 * Main thread only, before any I/O thread starts; afterwards the job array is owned by io.
 */
#ifndef THUMBR_PLAN_H
#define THUMBR_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "thumbr/scan.h"

struct plan_job {
	const char *rel;        /* source relative to INPUT_DIR (owned by the scan result) */
	char *out_rel;          /* output relative to OUTPUT_DIR/SIZE */
	uint64_t size;
	struct timespec mtime;  /* as scanned: what the thumbnails' records will say */
	int kind;               /* enum scan_kind */
};

struct plan {
	struct plan_job *jobs;  /* biggest source first */
	size_t n;
	unsigned long collisions;
	unsigned long unchanged;        /* up to date: no job */
};

typedef void plan_fail_fn(void *ctx, const char *rel, const char *reason);

/* The output name of a source: its extension (if any) replaced by ext (".jpg").  Malloc'ed. */
char *plan_out_rel(const char *rel, const char *ext);

/* Build the job list.  Sources whose output name is taken by an earlier source (bytewise
 * order of rel) are reported through fail and left out; sources that are up to date keep
 * their name but get no job. */
void plan_build(struct plan *p, const struct scan_result *s, const char *ext, plan_fail_fn *fail,
    void *ctx);
void plan_free(struct plan *p);

#endif
