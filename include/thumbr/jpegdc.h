/*
 * jpegdc: a progressive JPEG at 1/8 scale from its DC coefficients alone.
 *
 * At 1/8 each 8x8 block becomes one pixel, its DC coefficient, and a progressive file sends
 * every DC coefficient in its first scans.  libjpeg can stop after them too, but it still
 * allocates and clears the coefficients of the whole image (64 per block: 100 MB for a
 * 4096 x 4096 photograph); this keeps one per block (1.5 MB) and skips the AC scans without
 * decoding them.  DC refinement scans later in the file are applied; the file may end after
 * the DC scans.
 *
 * Only what it needs: 8-bit, Huffman-coded progressive (SOF2), one component (grey) or three
 * (YCbCr, or RGB when the caller says so); the caller sends only such files here (others go
 * to libjpeg), so a refusal means a damaged file.  Any damage in a DC scan is an error.  Pure
 * function of its input, no global state; safe on hostile data (every read is
 * bounds-checked).
 */
#ifndef THUMBR_JPEGDC_H
#define THUMBR_JPEGDC_H

#include <stddef.h>
#include <stdint.h>

/* The decoder's own state: a caller reads only width, height, w, h and ncomp of struct jdc. */
struct jdc_comp {
	int id, h, v, tq;       /* from SOF2 */
	int quant;              /* DC quantiser, latched at the component's first scan */
	uint32_t bw, bh;        /* blocks holding image data */
	uint32_t stride;        /* blocks stored per row: whole MCUs (and mcuy * v rows) */
	int16_t *dc;
	int seen;               /* its first DC scan is complete */
	int al;                 /* the bit its DC is known down to (successive approximation) */
};

struct jdc {
	uint32_t width, height; /* of the source */
	uint32_t w, h;          /* of the result: width / 8 and height / 8, rounded up */
	int ncomp;
	/* the rest is the decoder's */
	int ycc;                /* convert YCbCr to RGB */
	int maxh, maxv;
	uint32_t mcux, mcuy;
	struct jdc_comp c[3];
};

/* Decode the DC scans of src.  ycc: the three components are YCbCr (not RGB).  0, or -1
 * with err set; on success jdc_free must be called. */
int jdc_decode(struct jdc *d, const unsigned char *src, size_t len, int ycc, char *err,
    size_t errsz);

/* Row y (0 <= y < d->h) of the result: d->w pixels of d->ncomp samples. */
void jdc_row(const struct jdc *d, uint32_t y, unsigned char *row);

void jdc_free(struct jdc *d);

#endif
