/*
 * Helpers shared by the suites that touch files: temporary trees, running the real binary,
 * reading image dimensions straight from file headers (independently of the code under
 * test).
 */
#ifndef THUMBR_TESTUTIL_H
#define THUMBR_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mkdtemp under $TMPDIR or /tmp; returns a malloc'ed path. */
char *tu_tmpdir(void);
/* mkdtemp of parent/pattern (parent NULL: $TMPDIR or /tmp) into buf; aborts the test on
 * failure. */
void tu_mkdtemp_in(char *buf, size_t n, const char *parent, const char *pattern);
/* rm -rf */
void tu_rmrf(const char *path);
/* Copy a file; 0 or -1. */
int tu_copy(const char *from, const char *to);
/* Read a whole file (malloc'ed, NUL-terminated); NULL on error. */
char *tu_slurp(const char *path, size_t *len);
/* A file of testdata/ (rel to it), whole; fails the test when it cannot be read. */
unsigned char *tu_testdata_slurp(const char *rel, size_t *len);
/* Write bytes to a file, creating parent directories. */
int tu_write(const char *path, const void *p, size_t n);
/* Join two path pieces (malloc'ed). */
char *tu_join(const char *a, const char *b);

/* Run argv (argv[0] a path) with stdout and stderr captured into *out and *err (malloc'ed,
 * may be NULL to discard); returns the exit status, or 128 + signal. */
int tu_run(char *const argv[], char **out, char **err);
/* Start argv in the background with output discarded; returns its pid. */
pid_t tu_spawn(char *const argv[]);
/* Wait for pid; exit status or 128 + signal. */
int tu_wait(pid_t pid);

/* Width and height from a JPEG's SOF or a PNG's IHDR; 0 or -1. */
int tu_image_size(const char *path, unsigned *w, unsigned *h);
/* EXIF orientation of a JPEG file (1 to 8; 1 when it has none). */
int tu_jpeg_orientation(const char *path);
/* Decode a JPEG file to 8-bit RGB (malloc'ed); NULL on error. */
unsigned char *tu_jpeg_rgb(const char *path, unsigned *w, unsigned *h);
/* A JPEG in memory decoded by libjpeg at 1/denom, to RGB or grey.  NULL if it cannot be. */
unsigned char *tu_jpeg_decode(const unsigned char *src, size_t n, unsigned denom, int grey,
    unsigned *w, unsigned *h);
/* Where the nth (from 0) scan header (SOS) of JPEG p starts whose Ss is 0 (dc) or not (!dc),
 * 0 if there is none; end, if not NULL, gets where that scan's data ends (the next marker
 * that is not a restart). */
size_t tu_jpeg_scan(const unsigned char *p, size_t n, int dc, int nth, size_t *end);
/* w x h RGB as a progressive JPEG (libjpeg's simple progression, quality 90): grey, or
 * colour with luma sampled hs x vs; a restart marker every `restart` MCUs (0: none). */
unsigned char *tu_progressive_jpeg(const unsigned char *rgb, unsigned w, unsigned h, int grey,
    int hs, int vs, unsigned restart, unsigned long *len);
/* The same with the scans of script (a jpeg_scan_info array of nscans; NULL: the simple
 * progression). */
unsigned char *tu_progressive_jpeg_script(const unsigned char *rgb, unsigned w, unsigned h,
    int grey, int hs, int vs, unsigned restart, const void *script, int nscans,
    unsigned long *len);
/* PSNR in dB of two RGB images of one size (99 when identical). */
double tu_psnr(const unsigned char *a, const unsigned char *b, unsigned w, unsigned h);
/* The same over n samples of any number of bands. */
double tu_psnr_samples(const unsigned char *a, const unsigned char *b, size_t n);
/* Mean absolute difference of two 8-bit images of one size and band count. */
double tu_mae(const unsigned char *a, const unsigned char *b, size_t samples);
/* Decode a PNG file to 8-bit RGBA (malloc'ed); NULL on error. */
unsigned char *tu_png_rgba(const char *path, unsigned *w, unsigned *h);
/* Write a w x h RGBA image as PNG; 0 or -1. */
int tu_write_png_rgba(const char *path, const unsigned char *px, unsigned w, unsigned h);
/* Whether a JPEG file has a marker (0xe1 APP1, 0xe2 APP2, 0xc2 SOF2, ...) before its scan. */
int tu_jpeg_has_marker(const char *path, unsigned marker);
/* Calls f on every marker segment of the JPEG in p (seg, len: its bytes after the length
 * field) before the first scan, stopping at a non-zero return, which it returns; -1 when p is
 * no JPEG. */
int tu_jpeg_each_marker(const unsigned char *p, size_t n, int (*f)(unsigned m,
    const unsigned char *seg, size_t len, void *arg), void *arg);
/* The ICC profile a JPEG carries (its APP2 ICC_PROFILE chunks in file order), malloc'd, or
 * NULL when it has none. */
unsigned char *tu_jpeg_icc(const unsigned char *p, size_t n, size_t *len);
/* Big-endian 32 bits, as PNG and ICC write them. */
void tu_put_be32(unsigned char *p, uint32_t v);
/* Number of components a JPEG file's frame declares (1 grey, 3 colour, 4 CMYK); -1. */
int tu_jpeg_components(const char *path);
/* 1 when the file starts with a WebP, TIFF, GIF or HEIF/AVIF signature. */
int tu_is_other_image(const char *path);
/* 1 when the file starts with a JPEG or PNG signature. */
int tu_is_image(const char *path);

/* Failures reported through a scan or plan callback: the first TU_FAILS kept, all counted. */
#define TU_FAILS 32
struct tu_fails {
	size_t n;
	char *rel[TU_FAILS];
	char *reason[TU_FAILS];
};
/* The callback (ctx: a struct tu_fails). */
void tu_fail_record(void *ctx, const char *rel, const char *reason);
void tu_fails_free(struct tu_fails *f);
/* Index of the report about rel, or -1. */
long tu_fail_index(const struct tu_fails *f, const char *rel);

/* $THUMBR_BIN and $THUMBR_TESTDATA (set by make check). */
const char *tu_bin(void);
const char *tu_testdata(void);

#endif
