/*
 * report: failure lines and the summary on stderr.  Each line is built in memory and written
 * with one locked stdio call, so lines from different threads never interleave.
 */
#include "thumbr/report.h"

#include <stdio.h>
#include <string.h>

void
report_fail(const char *path, const char *reason)
{
	char buf[4096];
	size_t n = 0;

	n += (size_t)snprintf(buf, sizeof(buf), "thumbr: ");
	for (const unsigned char *p = (const unsigned char *)path; *p && n + 8 < sizeof(buf); p++) {
		if (*p < 0x20 || *p == 0x7f)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\\%03o", *p);
		else
			buf[n++] = (char)*p;
	}
	snprintf(buf + n, sizeof(buf) - n, ": %s\n", reason);
	flockfile(stderr);
	fputs(buf, stderr);
	funlockfile(stderr);
}

void
report_summary_line(char *buf, size_t n, const struct report_counts *c, double secs)
{
	snprintf(buf, n, "thumbr: %lu images, %lu thumbnails, %lu failed, %lu skipped in %.2f s "
	    "(%.1f images/s)", c->images, c->thumbnails, c->failed, c->skipped, secs,
	    secs > 0 ? (double)c->done / secs : 0.0);
}

void
report_summary(const struct report_counts *c, double secs)
{
	char buf[256];

	report_summary_line(buf, sizeof(buf), c, secs);
	flockfile(stderr);
	fprintf(stderr, "%s\n", buf);
	funlockfile(stderr);
}
