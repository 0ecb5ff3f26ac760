/*
 * scan: walk INPUT_DIR and list the images in it.  Runs in the main thread only.
 *
 * Rules: entries whose name starts with '.' are skipped silently; symbolic links are never
 * followed and, like FIFOs, sockets and devices, are skipped and counted (never opened, so
 * nothing can block); the directory identified by (exclude_dev, exclude_ino), the output, is
 * not entered.  A regular file is an image when its first bytes are a JPEG or PNG signature;
 * other files are skipped and counted, except that one whose name says it is an image
 * (.jpg, .jpeg, .jpe, .png, .webp, .tif, .tiff, .gif, .heic, .heif, .avif) is reported as
 * a failure: a gallery must not silently lose it.
 * Paths are bytes: nothing here assumes UTF-8.
 */
#ifndef THUMBR_SCAN_H
#define THUMBR_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

enum scan_kind {
	SCAN_JPEG = 1,
	SCAN_PNG = 2,
	SCAN_VIPS = 3           /* WebP, TIFF, GIF, HEIF/AVIF: decoded through libvips */
};

struct scan_entry {
	char *rel;                      /* path relative to the root, no leading "./" */
	uint64_t size;
	struct timespec mtime;
	enum scan_kind kind;            /* 0 when up to date (then it was not opened) */
	int uptodate;                   /* every thumbnail of it is up to date */
};

/* Called for every path that is reported as failed (unreadable directory, non-image .jpg). */
typedef void scan_fail_fn(void *ctx, const char *rel, const char *reason);

struct scan_result {
	struct scan_entry *v;
	size_t n, cap;
	unsigned long skipped;          /* non-images, links, special files */
	unsigned long failed;           /* reported through fail() */
};

struct scan_opts {
	dev_t exclude_dev;
	ino_t exclude_ino;
	int exclude;                    /* whether exclude_* is set */
	scan_fail_fn *fail;
	uint64_t max_size;              /* larger images are reported, not read (0: no limit) */
	unsigned allow;                 /* SCAN_ALLOW_*: loaders the operator turned on */
	/* optional: 0 leaves a file out entirely (another shard's) */
	int (*want)(void *ctx, const char *rel);
	/* optional: 1 when a file's thumbnails are all up to date, so it need not be opened
	 * (it was an image when they were made from these very bytes) */
	int (*uptodate)(void *ctx, const char *rel, const struct stat *st);
	void *ctx;
};

#define SCAN_SNIFF_BYTES 16
/* Formats whose libvips loaders are marked unsafe for untrusted files: recognised only when
 * the operator allows their loader by name (--allow-loader). */
#define SCAN_ALLOW_SVG 1u
#define SCAN_ALLOW_PDF 2u
#define SCAN_ALLOW_JP2K 4u
#define SCAN_ALLOW_JXL 8u
/* Sniff a file's first bytes (SCAN_SNIFF_BYTES are enough): an enum scan_kind, or 0; the
 * formats in allow (SCAN_ALLOW_*) count as SCAN_VIPS too. */
int scan_sniff(const unsigned char *p, size_t n, unsigned allow);
/* 0 when an image of size bytes may be read under --max-file-size max (0: no limit), else -1
 * with why set: the one rule and message for the scan and for the I/O stage, which checks
 * again because the file may have grown since. */
int scan_size_ok(uint64_t size, uint64_t max, char *why, size_t whysz);

/* Walk root; entries come out sorted by rel (bytewise).  0, or -1 when root cannot be
 * opened at all (err says why). */
int scan_tree(const char *root, const struct scan_opts *so, struct scan_result *res,
    char *err, size_t errsz);
/* The same for the files listed in list (one per line, or NUL-separated with nul): paths
 * relative to root, or starting with root as written, or absolute under it.  A listed path
 * that does not exist or leaves root is reported through fail. */
int scan_list(const char *root, FILE *list, int nul, const struct scan_opts *so,
    struct scan_result *res, char *err, size_t errsz);
void scan_free(struct scan_result *res);

#endif
