/*
 * report: failure lines, summary, progress, -v lines and the JSON report (contract in
 * thumbr/report.h).  One mutex guards the collected lists and the progress state; every
 * line is built in memory and written with one stdio call under it, so lines from different
 * threads never interleave.
 */
#define _GNU_SOURCE
#include "thumbr/report.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thumbr/util.h"

struct thumb {
	char *src, *out;
	unsigned w, h;
	unsigned long bytes;
};

struct failure {
	char *path, *reason;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int collecting, progress_shown;
static struct thumb *thumbs;
static size_t nthumbs, capthumbs;
static struct failure *failures;
static size_t nfailures, capfailures;
static char **pruned;
static size_t npruned, cappruned;

void
report_collect(void)
{
	collecting = 1;
}

/* Mutex held: wipe the progress line before a line of text. */
static void
clear_progress(void)
{
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		progress_shown = 0;
	}
}

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
	pthread_mutex_lock(&mu);
	clear_progress();
	fputs(buf, stderr);
	if (collecting) {
		if (nfailures == capfailures) {
			capfailures = capfailures ? capfailures * 2 : 64;
			failures = xrealloc(failures, capfailures * sizeof(*failures));
		}
		failures[nfailures].path = xstrdup(path);
		failures[nfailures].reason = xstrdup(reason);
		nfailures++;
	}
	pthread_mutex_unlock(&mu);
}

void
report_thumb(const char *src, const char *out, unsigned w, unsigned h, unsigned long bytes,
    int print)
{
	pthread_mutex_lock(&mu);
	if (print) {
		clear_progress();
		printf("build %s\n", out);
	}
	if (collecting) {
		if (nthumbs == capthumbs) {
			capthumbs = capthumbs ? capthumbs * 2 : 256;
			thumbs = xrealloc(thumbs, capthumbs * sizeof(*thumbs));
		}
		thumbs[nthumbs].src = xstrdup(src);
		thumbs[nthumbs].out = xstrdup(out);
		thumbs[nthumbs].w = w;
		thumbs[nthumbs].h = h;
		thumbs[nthumbs].bytes = bytes;
		nthumbs++;
	}
	pthread_mutex_unlock(&mu);
}

void
report_pruned(const char *out, int print)
{
	pthread_mutex_lock(&mu);
	if (print) {
		clear_progress();
		printf("prune %s\n", out);
	}
	if (collecting) {
		if (npruned == cappruned) {
			cappruned = cappruned ? cappruned * 2 : 64;
			pruned = xrealloc(pruned, cappruned * sizeof(*pruned));
		}
		pruned[npruned++] = xstrdup(out);
	}
	pthread_mutex_unlock(&mu);
}

void
report_progress(size_t done, size_t total, double secs)
{
	char bar[21];
	double rate = secs > 0 ? (double)done / secs : 0;
	size_t fill = total ? done * 20 / total : 20;
	long eta = rate > 0 ? (long)((double)(total - done) / rate + 0.5) : 0;

	memset(bar, '#', fill);
	memset(bar + fill, '.', 20 - fill);
	bar[20] = '\0';
	pthread_mutex_lock(&mu);
	fprintf(stderr, "\r\033[Kthumbr: [%s] %zu/%zu  %.1f images/s  ETA %ld:%02ld", bar, done,
	    total, rate, eta / 60, eta % 60);
	fflush(stderr);
	progress_shown = 1;
	pthread_mutex_unlock(&mu);
}

void
report_progress_end(void)
{
	pthread_mutex_lock(&mu);
	clear_progress();
	pthread_mutex_unlock(&mu);
}

void
report_summary_line(char *buf, size_t n, const struct report_counts *c, double secs)
{
	snprintf(buf, n, "thumbr: %lu images, %lu thumbnails, %lu failed, %lu skipped, "
	    "%lu unchanged, %lu pruned in %.2f s (%.1f images/s)", c->images, c->thumbnails,
	    c->failed, c->skipped, c->unchanged, c->pruned, secs,
	    secs > 0 ? (double)c->done / secs : 0.0);
}

void
report_summary(const struct report_counts *c, double secs)
{
	char buf[320];

	report_summary_line(buf, sizeof(buf), c, secs);
	pthread_mutex_lock(&mu);
	clear_progress();
	fprintf(stderr, "%s\n", buf);
	pthread_mutex_unlock(&mu);
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* A JSON string.  Bytes that are not UTF-8 (file names are bytes) come out as the code point
 * of the same number (\u00XX), so the report always parses. */
static void
jstr(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		size_t n = utf8_len(p);

		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p), n = 1;
		else if (*p < 0x20 || *p == 0x7f || n == 0)
			fprintf(f, "\\u%04x", *p), n = 1;
		else
			fwrite(p, 1, n, f);
		p += n;
	}
	fputc('"', f);
}

int
report_json(const char *path, const struct opts *o, const struct report_counts *c,
    double scan_secs, double secs, char *err, size_t errsz)
{
	char *tmp;
	FILE *f;
	int fd;

	if (asprintf(&tmp, "%s.thumbr-XXXXXX", path) < 0 || (fd = mkstemp(tmp)) < 0 ||
	    (f = fdopen(fd, "w")) == NULL) {
		errf(err, errsz, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&mu);
	fprintf(f, "{\n  \"thumbr\": \"%s\",\n  \"input\": ", THUMBR_VERSION);
	jstr(f, o->input);
	fputs(",\n  \"output\": ", f);
	jstr(f, o->output);
	fputs(",\n  \"options\": {\"sizes\": [", f);
	for (unsigned i = 0; i < o->nsizes; i++) {
		fputs(i ? ", " : "", f);
		jstr(f, o->sizes[i].name);
	}
	fprintf(f, "], \"format\": \"%s\", \"quality\": %u, \"background\": "
	    "\"#%02x%02x%02x\", \"rotate\": %s, \"keep_metadata\": %s, \"progressive\": %s, "
	    "\"jobs\": %u, \"force\": %s, \"prune\": %s, \"dry_run\": %s",
	    opts_extension(o) + 1, o->quality, o->background[0], o->background[1],
	    o->background[2], o->no_rotate ? "false" : "true", o->keep_metadata ? "true" : "false",
	    o->progressive ? "true" : "false", o->jobs, o->force ? "true" : "false",
	    o->prune ? "true" : "false", o->dry_run ? "true" : "false");
	if (o->shard_n)
		fprintf(f, ", \"shard\": \"%u/%u\"", o->shard_k, o->shard_n);
	fprintf(f, "},\n  \"counts\": {\"images\": %lu, \"thumbnails\": %lu, \"failed\": %lu, "
	    "\"skipped\": %lu, \"unchanged\": %lu, \"pruned\": %lu},\n"
	    "  \"seconds\": {\"scan\": %.3f, \"total\": %.3f},\n  \"thumbnails\": [",
	    c->images, c->thumbnails, c->failed, c->skipped, c->unchanged, c->pruned, scan_secs,
	    secs);
	for (size_t i = 0; i < nthumbs; i++) {
		fputs(i ? ",\n    {\"source\": " : "\n    {\"source\": ", f);
		jstr(f, thumbs[i].src);
		fputs(", \"output\": ", f);
		jstr(f, thumbs[i].out);
		fprintf(f, ", \"width\": %u, \"height\": %u, \"bytes\": %lu}", thumbs[i].w,
		    thumbs[i].h, thumbs[i].bytes);
	}
	fputs(nthumbs ? "\n  ],\n  \"failures\": [" : "],\n  \"failures\": [", f);
	for (size_t i = 0; i < nfailures; i++) {
		fputs(i ? ",\n    {\"path\": " : "\n    {\"path\": ", f);
		jstr(f, failures[i].path);
		fputs(", \"reason\": ", f);
		jstr(f, failures[i].reason);
		fputc('}', f);
	}
	fputs(nfailures ? "\n  ],\n  \"pruned\": [" : "],\n  \"pruned\": [", f);
	for (size_t i = 0; i < npruned; i++) {
		fputs(i ? ",\n    " : "\n    ", f);
		jstr(f, pruned[i]);
	}
	fputs(npruned ? "\n  ]\n}\n" : "]\n}\n", f);
	pthread_mutex_unlock(&mu);
	if (fchmod(fileno(f), 0644) != 0 || fflush(f) != 0 || ferror(f) ||
	    fclose(f) != 0 || rename(tmp, path) != 0) {
		errf(err, errsz, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}
