/*
 * report: what the user and the gallery generator see: one line per failure on stderr
 * ("thumbr: PATH: reason"), the closing summary, a progress line on a terminal, each
 * thumbnail with -v, and the JSON report of --report.  Thread-safe: one mutex guards the
 * collected lists and every write.
 */
#ifndef THUMBR_REPORT_H
#define THUMBR_REPORT_H

#include <stddef.h>

#include "thumbr/opts.h"

struct report_counts {
	unsigned long images;           /* image sources found */
	unsigned long done;             /* sources all of whose thumbnails were made */
	unsigned long thumbnails;       /* files written */
	unsigned long failed;           /* sources that failed */
	unsigned long skipped;          /* non-images, links, special files */
	unsigned long unchanged;        /* up to date, not touched */
	unsigned long pruned;           /* thumbnails deleted by --prune */
};

/* Keep every thumbnail, failure and pruned file for report_json (--report). */
void report_collect(void);
/* A thumbnail was written; "build PATH" on stdout when print (-v, or -n for one that would be). */
void report_thumb(const char *src, const char *out, unsigned w, unsigned h, unsigned long bytes,
    int print);
/* A thumbnail was (or, dry, would be) pruned; "prune PATH" on stdout when print. */
void report_pruned(const char *out, int print);
/* Draw the progress line on stderr (a terminal). */
void report_progress(size_t done, size_t total, double secs);
/* Clear it. */
void report_progress_end(void);
/* Write the JSON report to path (temporary file, then rename).  0 or -1. */
int report_json(const char *path, const struct opts *o, const struct report_counts *c,
    double scan_secs, double secs, char *err, size_t errsz);

/* "thumbr: PATH: reason", control characters in PATH shown as \ooo so one failure stays one
 * line. */
void report_fail(const char *path, const char *reason);
/* Format the summary line (no newline) into buf. */
void report_summary_line(char *buf, size_t n, const struct report_counts *c, double secs);
void report_summary(const struct report_counts *c, double secs);

#endif
