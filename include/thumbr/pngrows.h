/*
 * pngrows: the image data of a PNG whose header libpng has parsed, inflated and unfiltered
 * here rather than by libpng.
 *
 * libpng spends about half its time in zlib and the rest unfiltering, with no SIMD filters
 * in Debian's build (Paeth alone is 30%).  This reader hands zlib the IDAT data straight from
 * memory, inflates up to 256 KiB of rows per call and unfilters Sub, Average and Paeth at 3
 * and 4 bytes per pixel, and Up at any, with SSE2 (SSE4.1 for Paeth where the CPU has it).
 *
 * Only what needs no transformation: bit depth 8, not interlaced, grey, RGB, grey+alpha or
 * RGBA, and no tRNS chunk; the caller sends everything else through libpng.  It accepts and
 * refuses exactly what libpng (as decode_png sets it up: Adler-32 ignored, png_read_end with
 * no info struct) would: every IDAT's CRC is checked, zlib is given the IDATs in libpng's
 * 8192-byte pieces so that damage just after the last row is an error or not as with
 * libpng, and pr_finish checks the chunks up to IEND by png_read_end's rules.  The rows are
 * libpng's, byte for byte.
 *
 * Safe on hostile data: every read is bounds-checked.  Memory: the inflate batch (256 KiB
 * of rows, or one row when a row is longer) and one row more.  One struct pr belongs to one thread;
 * there is no global state (the SSE4.1 choice is read from the compiler's CPU model, which
 * is set before main runs).
 */
#ifndef THUMBR_PNGROWS_H
#define THUMBR_PNGROWS_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

/* The reader's state; a caller only passes it around. */
struct pr {
	const unsigned char *data;
	size_t len;
	size_t next;            /* offset of the chunk after the current IDAT */
	const unsigned char *in;        /* the current IDAT's data not yet given to zlib */
	uint32_t inleft;
	uint32_t h, y;          /* y: rows returned */
	int bpp;
	uint64_t idat_limit;    /* longest IDAT libpng accepts for this image */
	uint64_t left;          /* filtered bytes zlib has still to produce */
	z_stream z;
	int zinit, zend;
	size_t rowbytes, stride;        /* stride: a filter byte and a row */
	unsigned char *buf;     /* [previous row][batch of rows], see pr_row */
	size_t cap, filled, proc;
	int level;              /* unfilter with 0 plain C, 1 SSE2, 2 SSE2 and SSE4.1 */
};

/* Whether pngrows reads the image data of a PNG whose header says bit_depth, color_type
 * (PNG's numbers: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA), interlace (0: none), and whether it
 * has a tRNS chunk: 8 bits, not interlaced, no palette, no tRNS.  1 when it does. */
int pr_in_scope(int bit_depth, int color_type, int interlace, int has_trns);

/* Start reading: data[idat] is the length field of the first IDAT chunk of a PNG of w x h
 * pixels, bpp bytes each (1 to 4: grey, grey+alpha, RGB, RGBA at 8 bits).  0, or -1 with a
 * message in err (nothing to free then). */
int pr_start(struct pr *r, const unsigned char *data, size_t len, size_t idat, uint32_t w,
    uint32_t h, int bpp, char *err, size_t errsz);

/* For tests: unfilter with plain C (0), SSE2 (1) or SSE4.1 where the CPU has it (2) rather
 * than the best the CPU has.  After pr_start, before the first row. */
void pr_set_level(struct pr *r, int level);

/* The next row, unfiltered (w * bpp bytes, valid until the next call), or NULL with a message
 * in err.  At most h calls. */
const unsigned char *pr_row(struct pr *r, char *err, size_t errsz);

/* After the last row: the zlib stream's end and the chunks up to IEND, checked as libpng's
 * png_read_end does.  0 or -1 with a message in err. */
int pr_finish(struct pr *r, char *err, size_t errsz);

/* Free what pr_start took; safe on a zeroed struct and after a failed pr_start. */
void pr_free(struct pr *r);

#endif
