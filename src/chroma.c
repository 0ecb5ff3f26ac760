/*
 * chroma: 4:2:0 planes for libjpeg's raw-data input (see thumbr/chroma.h).
 *
 * Owns: nothing past a call (the planes it fills are the caller's); no global state.
 * Single-threaded within a call; reentrant.
 *
 * One pass down the image, a source row at a time.  The row is converted to Y (rounded at
 * once, into the plane) and to float Cb and Cr, whose even and odd columns go to separate
 * rows: the taps of halved column c, at 2c-6, -4, -2, 0 and 2c+1, 3, 5, 7, are then four
 * consecutive evens and four consecutive odds, so the horizontal pass is eight products of
 * contiguous runs, which the compiler vectorises.  The even row starts with three copies of
 * column 0 and the odd row ends with copies of the last column, so the edges take no clamps
 * either.  The halved rows go into a ring of RING, more than the 14 that the vertical taps
 * of one output row span, and output row r is made as soon as source row 2r + 7 (or the
 * last) is in; its rows are clamped once per row, not per sample.  Neither full-size float
 * plane is ever held, so the working set is a few rows, in cache.
 *
 * Each sum adds its eight products in the order of the taps, across first and then down,
 * as the plain definition does, so the planes are the definition's to the bit
 * (tests/check_chroma.c holds it and compares).
 */
#define _GNU_SOURCE
#include "thumbr/chroma.h"

#include <stdlib.h>
#include <string.h>

#include "thumbr/util.h"

#define CTAPS 8
#define RING 16                 /* a power of two: row j is in slot j % RING */

static const int ctap_off[CTAPS] = { -6, -4, -2, 0, 1, 3, 5, 7 };      /* from 2c */
static const float ctap_w[CTAPS] = {     /* 2/81, 2/27, 2/9, 2/3 times 81/80 */
	-0.025f, 0.075f, -0.225f, 0.675f, 0.675f, -0.225f, 0.075f, -0.025f,
};

/* One chroma plane's rows in the making. */
struct cplane {
	float *row;             /* the converted source row, w */
	float *even, *odd;      /* its columns 2i at even[i + 3], 2i + 1 at odd[i]; hw + 3 each */
	float *ring;            /* RING rows halved across, hw each */
	unsigned char *out;     /* the caller's plane */
};

/* The plain loops below are written to be vectorised and cloned for AVX2 (HOT, util.h). */

/* Round and clamp to a sample: the same as v <= 0 ? 0 : v >= 255 ? 255 : (unsigned char)
 * (v + 0.5f) for every v these filters can give (well inside an int), but rounded first and
 * clamped as an int.  GCC 12 left loops with that float clamp scalar ("control flow in
 * loop"); an int clamp is a min and a max, and they vectorise. */
static inline unsigned char
round8(float v)
{
	int i = (int)(v + 0.5f);

	return (unsigned char)(i < 0 ? 0 : i > 255 ? 255 : i);
}

/* A source row of w pixels: Y into y, Cb and Cr into cb and cr.  JFIF's matrix. */
HOT static void
convert(const unsigned char *restrict px, size_t w, unsigned char *restrict y,
    float *restrict cb, float *restrict cr)
{
	for (size_t x = 0; x < w; x++) {
		float r = px[3 * x], g = px[3 * x + 1], bl = px[3 * x + 2];

		y[x] = round8(0.299f * r + 0.587f * g + 0.114f * bl);
		cb[x] = -0.168736f * r - 0.331264f * g + 0.5f * bl + 128;
		cr[x] = 0.5f * r - 0.418688f * g - 0.081312f * bl + 128;
	}
}

/* Halve p's converted row across into t (hw samples). */
HOT static void
across(struct cplane *p, size_t w, float *restrict t)
{
	const float *restrict s = p->row;
	float *restrict e = p->even, *restrict o = p->odd;
	size_t hw = (w + 1) / 2, n = w / 2;

	for (size_t i = 0; i < n; i++) {
		e[i + 3] = s[2 * i];
		o[i] = s[2 * i + 1];
	}
	if (w % 2)
		e[hw + 2] = s[w - 1];
	e[0] = e[1] = e[2] = s[0];
	for (size_t i = n; i < hw + 3; i++)
		o[i] = s[w - 1];
	for (size_t c = 0; c < hw; c++)
		t[c] = ctap_w[0] * e[c] + ctap_w[1] * e[c + 1] + ctap_w[2] * e[c + 2] +
		    ctap_w[3] * e[c + 3] + ctap_w[4] * o[c] + ctap_w[5] * o[c + 1] +
		    ctap_w[6] * o[c + 2] + ctap_w[7] * o[c + 3];
}

/* One output row: the eight halved rows r0..r7 (tap order) filtered down into out (n). */
HOT static void
down(const float *restrict r0, const float *restrict r1, const float *restrict r2,
    const float *restrict r3, const float *restrict r4, const float *restrict r5,
    const float *restrict r6, const float *restrict r7, size_t n, unsigned char *restrict out)
{
	for (size_t c = 0; c < n; c++)
		out[c] = round8(ctap_w[0] * r0[c] + ctap_w[1] * r1[c] + ctap_w[2] * r2[c] +
		    ctap_w[3] * r3[c] + ctap_w[4] * r4[c] + ctap_w[5] * r5[c] +
		    ctap_w[6] * r6[c] + ctap_w[7] * r7[c]);
}

/* Output row r of p, cw wide, from the ring; source rows past the edges are the edge rows. */
static void
down_row(struct cplane *p, uint32_t r, uint32_t h, uint32_t hw, uint32_t cw)
{
	const float *t[CTAPS];
	unsigned char *out = p->out + (size_t)r * cw;

	for (int k = 0; k < CTAPS; k++) {
		int64_t j = 2 * (int64_t)r + ctap_off[k];

		j = j < 0 ? 0 : j >= h ? h - 1 : j;
		t[k] = p->ring + (size_t)(j % RING) * hw;
	}
	down(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], hw, out);
	memset(out + hw, out[hw - 1], cw - hw);
}

void
chroma_420(const unsigned char *px, uint32_t w, uint32_t h, struct chroma_planes *pl)
{
	uint32_t hw = (w + 1) / 2, hh = (h + 1) / 2, done = 0;
	size_t per = w + 2 * ((size_t)hw + 3) + RING * (size_t)hw;
	float *scratch = xmalloc(2 * per * sizeof(float));
	struct cplane cp[2];

	pl->yw = (w + 15) / 16 * 16;
	pl->yh = (h + 15) / 16 * 16;
	pl->cw = pl->yw / 2;
	pl->ch = pl->yh / 2;
	pl->y = xmalloc((size_t)pl->yw * pl->yh);
	pl->cb = xmalloc((size_t)pl->cw * pl->ch);
	pl->cr = xmalloc((size_t)pl->cw * pl->ch);
	for (int i = 0; i < 2; i++) {
		cp[i].row = scratch + i * per;
		cp[i].even = cp[i].row + w;
		cp[i].odd = cp[i].even + hw + 3;
		cp[i].ring = cp[i].odd + hw + 3;
		cp[i].out = i == 0 ? pl->cb : pl->cr;
	}
	for (uint32_t j = 0; j < h; j++) {
		unsigned char *y = pl->y + (size_t)j * pl->yw;

		convert(px + (size_t)j * w * 3, w, y, cp[0].row, cp[1].row);
		memset(y + w, y[w - 1], pl->yw - w);
		for (int i = 0; i < 2; i++)
			across(&cp[i], w, cp[i].ring + (size_t)(j % RING) * hw);
		/* the output rows whose last tap is now in: each takes rows from 2r - 6, so the
		 * ring still holds them */
		for (; done < hh && (2 * (uint64_t)done + 7 <= j || j == h - 1); done++)
			for (int i = 0; i < 2; i++)
				down_row(&cp[i], done, h, hw, pl->cw);
	}
	for (uint32_t j = h; j < pl->yh; j++)
		memcpy(pl->y + (size_t)j * pl->yw, pl->y + (size_t)(h - 1) * pl->yw, pl->yw);
	for (uint32_t r = hh; r < pl->ch; r++) {
		memcpy(pl->cb + (size_t)r * pl->cw, pl->cb + (size_t)(hh - 1) * pl->cw, pl->cw);
		memcpy(pl->cr + (size_t)r * pl->cw, pl->cr + (size_t)(hh - 1) * pl->cw, pl->cw);
	}
	free(scratch);
}

void
chroma_free(struct chroma_planes *pl)
{
	free(pl->y);
	free(pl->cb);
	free(pl->cr);
}
