/*
 * chroma: the planes of a 4:2:0 JPEG, for libjpeg's raw-data input, from 8-bit RGB.  Y at
 * full size; Cb and Cr halved each way by the filter that makes what a decoder brings back
 * closest, in least squares, to the full-size chroma.  Decoders (libjpeg's "fancy"
 * upsampling, browsers) interpolate chroma with triangle weights 3/4, 1/4; the best halving
 * before that is the pseudo-inverse of that interpolation, whose taps fall at odd distances
 * from the pair's centre (+-0.5: 2/3, +-2.5: -2/9, +-4.5: 2/27, +-6.5: -2/81, then a third
 * of that again; cut after four and scaled to sum to 1).  On the benchmark corpus (256 px,
 * Q80) libjpeg's own 2x2 box gives 37.91 dB in 260,031 bytes, this 38.08 dB in 264,043.
 *
 * Past the image's edges the filter sees the last column and row repeated; the planes are
 * padded to whole MCUs (16 x 16 luma) the same way.  The RGB to YCbCr matrix is JFIF's, as
 * libjpeg's.
 *
 * A pure function of its input: no global state, no locks; threads may call it at once on
 * planes of their own.
 */
#ifndef THUMBR_CHROMA_H
#define THUMBR_CHROMA_H

#include <stdint.h>

struct chroma_planes {
	unsigned char *y, *cb, *cr;     /* malloc'ed, row after row, no gaps */
	uint32_t yw, yh;                /* Y: the image's size rounded up to 16 */
	uint32_t cw, ch;                /* Cb and Cr: half that */
};

/* The planes of the w x h (each at least 1) RGB image px, 3 bytes a pixel, into pl.  Exits
 * when out of memory (xmalloc). */
void chroma_420(const unsigned char *px, uint32_t w, uint32_t h, struct chroma_planes *pl);

/* Free pl's planes; a zeroed pl is fine. */
void chroma_free(struct chroma_planes *pl);

#endif
