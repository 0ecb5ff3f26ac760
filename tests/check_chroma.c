/*
 * chroma suite: the 4:2:0 planes (thumbr/chroma.h) against the definition written here
 * plainly, as src/img.c had it: full-size float Cb and Cr, each halved across and then down
 * with every tap's index clamped into the image, sums in tap order, then padded by
 * repetition.  chroma.c reorganises the work (rows streamed through a ring, even and odd
 * columns split) but not one sum, so the planes must be equal to the bit, on every shape
 * from 1 x 1 up, odd and even.  Also: a flat image gives flat planes.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "thumbr/chroma.h"
#include "suites.h"

#define CTAPS 8
static const int ctap_off[CTAPS] = { -6, -4, -2, 0, 1, 3, 5, 7 };
static const float ctap_w[CTAPS] = {
	-0.025f, 0.075f, -0.225f, 0.675f, 0.675f, -0.225f, 0.075f, -0.025f,
};

static unsigned char
ref_round8(float v)
{
	return v <= 0 ? 0 : v >= 255 ? 255 : (unsigned char)(v + 0.5f);
}

static long
clampl(long v, long n)
{
	return v < 0 ? 0 : v >= n ? n - 1 : v;
}

/* src (w x h floats) halved into dst (cw x ch bytes) */
static void
ref_halve(const float *src, uint32_t w, uint32_t h, unsigned char *dst, uint32_t cw,
    uint32_t ch)
{
	uint32_t hw = (w + 1) / 2, hh = (h + 1) / 2;
	float *t = malloc((size_t)hw * h * sizeof(float));

	ck_assert_ptr_nonnull(t);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t c = 0; c < hw; c++) {
			float sum = 0;

			for (int k = 0; k < CTAPS; k++)
				sum += ctap_w[k] *
				    src[(size_t)y * w + (size_t)clampl(2 * (long)c + ctap_off[k], w)];
			t[(size_t)y * hw + c] = sum;
		}
	for (uint32_t cy = 0; cy < ch; cy++)
		for (uint32_t cx = 0; cx < cw; cx++) {
			uint32_t oy = cy < hh ? cy : hh - 1, ox = cx < hw ? cx : hw - 1;
			float sum = 0;

			for (int k = 0; k < CTAPS; k++)
				sum += ctap_w[k] *
				    t[(size_t)clampl(2 * (long)oy + ctap_off[k], h) * hw + ox];
			dst[(size_t)cy * cw + cx] = ref_round8(sum);
		}
	free(t);
}

static void
ref_planes(const unsigned char *px, uint32_t w, uint32_t h, struct chroma_planes *pl)
{
	float *fcb = malloc((size_t)w * h * sizeof(float)), *fcr = malloc((size_t)w * h * sizeof(float));

	ck_assert(fcb != NULL && fcr != NULL);
	pl->yw = (w + 15) / 16 * 16;
	pl->yh = (h + 15) / 16 * 16;
	pl->cw = pl->yw / 2;
	pl->ch = pl->yh / 2;
	pl->y = malloc((size_t)pl->yw * pl->yh);
	pl->cb = malloc((size_t)pl->cw * pl->ch);
	pl->cr = malloc((size_t)pl->cw * pl->ch);
	ck_assert(pl->y != NULL && pl->cb != NULL && pl->cr != NULL);
	for (uint32_t yy = 0; yy < pl->yh; yy++)
		for (uint32_t x = 0; x < pl->yw; x++) {
			uint32_t sy = yy < h ? yy : h - 1, sx = x < w ? x : w - 1;
			const unsigned char *p = px + ((size_t)sy * w + sx) * 3;
			float r = p[0], g = p[1], bl = p[2];

			pl->y[(size_t)yy * pl->yw + x] = ref_round8(0.299f * r + 0.587f * g + 0.114f * bl);
			if (yy < h && x < w) {
				fcb[(size_t)yy * w + x] = -0.168736f * r - 0.331264f * g + 0.5f * bl + 128;
				fcr[(size_t)yy * w + x] = 0.5f * r - 0.418688f * g - 0.081312f * bl + 128;
			}
		}
	ref_halve(fcb, w, h, pl->cb, pl->cw, pl->ch);
	ref_halve(fcr, w, h, pl->cr, pl->cw, pl->ch);
	free(fcb);
	free(fcr);
}

/* smooth-ish colour with noise on top, and some saturated runs that push the filter's
 * overshoot past 0 and 255 */
static unsigned char *
picture(uint32_t w, uint32_t h, unsigned seed)
{
	size_t n = (size_t)w * h * 3;
	unsigned char *p = malloc(n);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++) {
		size_t x = i / 3 % w;

		seed = seed * 1103515245u + 12345u;
		if (x / 5 % 4 == 0)
			p[i] = (seed >> 30) & 1 ? 255 : 0;
		else
			p[i] = (unsigned char)((x * 255 / w * (i % 3 + 1) / 3 + (seed >> 24)) / 2);
	}
	return p;
}

static void
same(uint32_t w, uint32_t h, unsigned seed)
{
	unsigned char *px = picture(w, h, seed);
	struct chroma_planes a, b;

	chroma_420(px, w, h, &a);
	ref_planes(px, w, h, &b);
	ck_assert_uint_eq(a.yw, b.yw);
	ck_assert_uint_eq(a.yh, b.yh);
	ck_assert_uint_eq(a.cw, b.cw);
	ck_assert_uint_eq(a.ch, b.ch);
	ck_assert_msg(memcmp(a.y, b.y, (size_t)a.yw * a.yh) == 0, "Y differs at %ux%u", w, h);
	ck_assert_msg(memcmp(a.cb, b.cb, (size_t)a.cw * a.ch) == 0, "Cb differs at %ux%u", w, h);
	ck_assert_msg(memcmp(a.cr, b.cr, (size_t)a.cw * a.ch) == 0, "Cr differs at %ux%u", w, h);
	chroma_free(&a);
	chroma_free(&b);
	free(px);
}

START_TEST(small_shapes)
{
	for (uint32_t w = 1; w <= 35; w++)
		for (uint32_t h = 1; h <= 35; h++)
			same(w, h, w * 131 + h);
}
END_TEST

START_TEST(large_shapes)
{
	static const uint32_t sz[][2] = {
		{ 256, 171 }, { 171, 256 }, { 512, 341 }, { 1024, 683 }, { 1023, 1 }, { 1, 1023 },
		{ 333, 47 },
	};

	for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++)
		same(sz[i][0], sz[i][1], (unsigned)i);
}
END_TEST

START_TEST(flat)
{
	uint32_t w = 37, h = 21;
	unsigned char *px = malloc((size_t)w * h * 3);
	struct chroma_planes a;

	ck_assert_ptr_nonnull(px);
	for (size_t i = 0; i < (size_t)w * h; i++) {
		px[3 * i] = 200;
		px[3 * i + 1] = 40;
		px[3 * i + 2] = 90;
	}
	chroma_420(px, w, h, &a);
	for (size_t i = 1; i < (size_t)a.yw * a.yh; i++)
		ck_assert_uint_eq(a.y[i], a.y[0]);
	for (size_t i = 1; i < (size_t)a.cw * a.ch; i++) {
		ck_assert_uint_eq(a.cb[i], a.cb[0]);
		ck_assert_uint_eq(a.cr[i], a.cr[0]);
	}
	chroma_free(&a);
	free(px);
}
END_TEST

Suite *
chroma_suite(void)
{
	Suite *s = suite_create("chroma");
	TCase *c = tcase_create("Core");

	tcase_add_test(c, small_shapes);
	tcase_add_test(c, large_shapes);
	tcase_add_test(c, flat);
	tcase_set_timeout(c, 60);
	suite_add_tcase(s, c);
	return s;
}
