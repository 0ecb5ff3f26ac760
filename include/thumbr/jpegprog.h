/*
 * jpegprog: a progressive JPEG at 1/8, 2/8 or 4/8 scale, decoding only what that scale uses.
 *
 * libjpeg-turbo decodes progressive files with a slow entropy decoder (the 16 MB photograph
 * of the benchmark corpus: 514 ms for its coefficients, 173 ms once transcoded to
 * baseline) and keeps all 64 coefficients of every block of the image (72 MB there).  This
 * decoder keeps, per block, only the coefficients the scaled inverse DCT reads (at 4/8 the
 * top-left 4 x 4, in zigzag order up to the last of them) and one bit per coefficient saying
 * whether it is non-zero yet, which is all that refinement scans need of the others.
 *
 *   1/8    each block is its DC coefficient; AC scans are skipped without being decoded, and
 *          the file may end after the DC scans.  Chroma is repeated over the luma pixels it
 *          covers.
 *   2/8, 4/8   every scan is decoded; each component is inverse-transformed to the size that
 *          lines it up with luma (4:2:x chroma at twice luma's scale, so never upsampled), by
 *          the N-point inverse DCT of the top-left N x N coefficients (the block band-limited
 *          and sampled at the N pixel centres).  The file must be whole.
 *
 * Only what it needs: 8-bit, Huffman-coded progressive (SOF2), one component (grey) or three
 * (YCbCr, or RGB when the caller says so), sampling that jp_supported accepts; the caller
 * sends only such files here (others go to libjpeg), so a refusal means a damaged file.
 * Damage is an error wherever libjpeg would warn.  Pure function of its input, no global
 * state; safe on hostile data (every read is bounds-checked).
 */
#ifndef THUMBR_JPEGPROG_H
#define THUMBR_JPEGPROG_H

#include <stddef.h>
#include <stdint.h>

/* The decoder's own state: a caller reads only width, height, w, h and ncomp of struct jp. */
struct jp_comp {
	int id, h, v, tq;       /* from SOF2 */
	uint16_t q[64];         /* quantisers (zigzag), latched at the component's first scan */
	int ow, oh;             /* pixels a block becomes, across and down */
	int kn;                 /* coefficients kept per block: zigzag 0 .. kn - 1 */
	uint64_t used;          /* zigzag bits of the AC coefficients the inverse DCT reads */
	uint32_t bw, bh;        /* blocks holding image data */
	uint32_t stride;        /* blocks stored per row: whole MCUs (and mcuy * v rows) */
	int16_t *coef;          /* kn per block */
	uint64_t *nz;           /* per block, bit k: coefficient k is non-zero (AC decoded) */
	signed char bits[64];   /* the bit each coefficient is known down to, -1: none yet */
	unsigned char *strip;   /* one MCU row of pixels, stride * ow wide, v * oh high (at 1/8,
				 * component 0 only: a row of every component) */
	float mx[8][8], my[8][8];       /* [pixel][frequency] of the inverse DCT, across, down */
};

struct jp {
	uint32_t width, height; /* of the source */
	uint32_t w, h;          /* of the result: width * num / 8 and height * num / 8, rounded up */
	int ncomp;
	/* the rest is the decoder's */
	int num;                /* scale: num / 8 */
	int ycc;                /* convert YCbCr to RGB */
	int maxh, maxv;
	uint32_t mcux, mcuy;
	int64_t held;           /* the MCU row the strips hold, -1: none */
	struct jp_comp c[3];
};

/* Whether a file of ncomp components sampled h[i] x v[i] can be decoded at num / 8 (1, 2 or
 * 4) without upsampling: 1 when it can. */
int jp_supported(int num, int ncomp, const int *h, const int *v);

/* Decode src at num / 8 (1, 2 or 4).  ycc: the three components are YCbCr (not RGB).  A
 * frame of more than max_pixels (0: no limit) is refused before anything is allocated for
 * it.  0, or -1 with err set; on success jp_free must be called. */
int jp_decode(struct jp *d, const unsigned char *src, size_t len, int ycc, int num,
    uint64_t max_pixels, char *err, size_t errsz);

/* Row y (0 <= y < d->h) of the result: d->w pixels of d->ncomp samples.  Fastest in order. */
void jp_row(struct jp *d, uint32_t y, unsigned char *row);

/* Coefficient k (zigzag, k < the component's kn) of block bx, by of component i, quantised,
 * as the file gives it: for tests.  -1 when out of range. */
int jp_coef(const struct jp *d, int i, uint32_t bx, uint32_t by, int k, int16_t *v);

void jp_free(struct jp *d);

#endif
