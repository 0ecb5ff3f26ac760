/*
 * report: what the user sees on stderr: one line per failure ("thumbr: PATH: reason") and
 * the closing summary.  Thread-safe: each message is one locked write.
 */
#ifndef THUMBR_REPORT_H
#define THUMBR_REPORT_H

#include <stddef.h>

struct report_counts {
	unsigned long images;           /* image sources found */
	unsigned long done;             /* sources all of whose thumbnails were made */
	unsigned long thumbnails;       /* files written */
	unsigned long failed;           /* sources that failed */
	unsigned long skipped;          /* non-images, links, special files */
};

/* "thumbr: PATH: reason", control characters in PATH shown as \ooo so one failure stays one
 * line. */
void report_fail(const char *path, const char *reason);
/* Format the summary line (no newline) into buf. */
void report_summary_line(char *buf, size_t n, const struct report_counts *c, double secs);
void report_summary(const struct report_counts *c, double secs);

#endif
