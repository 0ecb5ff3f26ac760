/*
 * resample suite: the streaming Lanczos3 (thumbr/resample.h), checked against a direct
 * reference written here in double precision from the definition (Lanczos3 stretched by the
 * scale, Pillow's window and normalisation), on pseudo-random images of many shapes, for 1
 * to 4 bands.  Also: an unchanged size is an exact copy; a flat image stays flat; rows given
 * one by one equal rs_image; missing rows give no result; bad arguments are refused.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "thumbr/resample.h"
#include "suites.h"

static unsigned char *
noise(uint32_t w, uint32_t h, int bands, unsigned seed)
{
	size_t n = (size_t)w * h * (size_t)bands;
	unsigned char *p = malloc(n);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		/* smooth-ish content with noise on top, like a photograph */
		p[i] = (unsigned char)(((i / (size_t)bands) % w * 255 / w + (seed >> 24)) / 2);
	}
	return p;
}

static double
ref_lanczos(double x)
{
	if (x <= -3.0 || x >= 3.0)
		return 0.0;
	if (x == 0.0)
		return 1.0;
	return 3.0 * sin(M_PI * x) * sin(M_PI * x / 3.0) / (M_PI * M_PI * x * x);
}

/* weights of output o of an in -> out axis into w[in] (zero outside the window) */
static void
ref_weights(uint32_t in, uint32_t out, uint32_t o, double *w)
{
	double scale = (double)in / out, fs = scale < 1 ? 1 : scale, sup = 3 * fs;
	double c = (o + 0.5) * scale, sum = 0;
	long lo = (long)(c - sup + 0.5), hi = (long)(c + sup + 0.5);

	memset(w, 0, in * sizeof(*w));
	if (in == out) {
		w[o] = 1;
		return;
	}
	lo = lo < 0 ? 0 : lo;
	hi = hi > (long)in ? (long)in : hi;
	for (long j = lo; j < hi; j++)
		sum += w[j] = ref_lanczos((j - c + 0.5) / fs);
	for (long j = lo; j < hi; j++)
		w[j] /= sum;
}

/* the largest difference between rs_image and the reference */
static int
max_error(uint32_t iw, uint32_t ih, uint32_t ow, uint32_t oh, int bands, unsigned seed)
{
	unsigned char *src = noise(iw, ih, bands, seed), *got;
	double *wx = malloc((size_t)ow * iw * sizeof(double));
	double *wy = malloc((size_t)oh * ih * sizeof(double));
	double *tmp = malloc((size_t)iw * oh * (size_t)bands * sizeof(double));
	int worst = 0;

	ck_assert(wx != NULL && wy != NULL && tmp != NULL);
	for (uint32_t o = 0; o < ow; o++)
		ref_weights(iw, ow, o, wx + (size_t)o * iw);
	for (uint32_t o = 0; o < oh; o++)
		ref_weights(ih, oh, o, wy + (size_t)o * ih);
	for (uint32_t y = 0; y < oh; y++)               /* vertical */
		for (size_t x = 0; x < (size_t)iw * bands; x++) {
			double s = 0;

			for (uint32_t i = 0; i < ih; i++)
				s += wy[(size_t)y * ih + i] * src[(size_t)i * iw * bands + x];
			tmp[(size_t)y * iw * bands + x] = s;
		}
	got = rs_image(src, iw, ih, bands, ow, oh);
	ck_assert_ptr_nonnull(got);
	for (uint32_t y = 0; y < oh; y++)               /* horizontal, and compare */
		for (uint32_t x = 0; x < ow; x++)
			for (int b = 0; b < bands; b++) {
				double s = 0;
				long v;
				int d;

				for (uint32_t i = 0; i < iw; i++)
					s += wx[(size_t)x * iw + i] *
					    tmp[(size_t)y * iw * bands + (size_t)i * bands + b];
				v = lround(s);
				v = v < 0 ? 0 : v > 255 ? 255 : v;
				d = abs((int)v - got[((size_t)y * ow + x) * bands + b]);
				if (d > worst)
					worst = d;
			}
	free(src);
	free(got);
	free(wx);
	free(wy);
	free(tmp);
	return worst;
}

START_TEST(matches_the_reference)
{
	static const uint32_t shapes[][4] = {
		{ 97, 61, 13, 9 },      /* strong shrink, odd sizes */
		{ 640, 480, 256, 192 }, /* 2.5x */
		{ 300, 200, 299, 199 }, /* barely smaller */
		{ 50, 300, 7, 41 },     /* tall */
		{ 33, 17, 33, 5 },      /* one axis unchanged */
		{ 5, 5, 1, 1 },         /* to a single pixel */
		{ 1, 40, 1, 3 },        /* one column */
	};

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		for (int bands = 1; bands <= 4; bands++) {
			int e = max_error(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3],
			    bands, (unsigned)(i * 7 + bands));

			ck_assert_msg(e <= 1, "%ux%u -> %ux%u, %d bands: off by %d",
			    shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], bands, e);
		}
}
END_TEST

START_TEST(same_size_is_a_copy)
{
	unsigned char *src = noise(123, 45, 3, 1), *got = rs_image(src, 123, 45, 3, 123, 45);

	ck_assert_ptr_nonnull(got);
	ck_assert(memcmp(src, got, 123 * 45 * 3) == 0);
	free(src);
	free(got);
}
END_TEST

START_TEST(flat_stays_flat)
{
	unsigned char src[200 * 150 * 4], *got;

	memset(src, 200, sizeof(src));
	got = rs_image(src, 200, 150, 4, 37, 29);
	ck_assert_ptr_nonnull(got);
	for (size_t i = 0; i < 37 * 29 * 4; i++)
		ck_assert_int_eq(got[i], 200);
	free(got);
}
END_TEST

START_TEST(rows_or_whole_the_same_and_missing_rows_refused)
{
	unsigned char *src = noise(301, 203, 3, 9), *whole = rs_image(src, 301, 203, 3, 64, 43);
	unsigned char *rows;
	struct rs *r = rs_new(301, 203, 64, 43, 3);

	ck_assert(whole != NULL && r != NULL);
	for (uint32_t y = 0; y < 203; y++)
		rs_row(r, src + (size_t)y * 301 * 3);
	rs_row(r, src);                 /* one too many: ignored */
	rows = rs_finish(r);
	ck_assert_ptr_nonnull(rows);
	ck_assert(memcmp(whole, rows, 64 * 43 * 3) == 0);
	free(rows);

	r = rs_new(301, 203, 64, 43, 3);
	for (uint32_t y = 0; y < 150; y++)
		rs_row(r, src + (size_t)y * 301 * 3);
	ck_assert_ptr_null(rs_finish(r));
	free(src);
	free(whole);
}
END_TEST

/* A reduction larger than any window: the weights are capped at the input's size. */
START_TEST(huge_reduction)
{
	uint32_t n = 3000000;
	unsigned char *row = malloc(n), *got;

	memset(row, 77, n);
	got = rs_image(row, n, 1, 1, 1, 1);
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(got[0], 77);
	free(got);
	free(row);
}
END_TEST

START_TEST(bad_arguments_refused)
{
	ck_assert_ptr_null(rs_new(0, 10, 1, 1, 3));
	ck_assert_ptr_null(rs_new(10, 10, 0, 1, 3));
	ck_assert_ptr_null(rs_new(10, 10, 1, 1, 5));
	ck_assert_ptr_null(rs_new(10, 10, 1, 1, 0));
	ck_assert_ptr_null(rs_finish(NULL));
	rs_free(NULL);
}
END_TEST

Suite *
resample_suite(void)
{
	Suite *s = suite_create("resample");
	TCase *t = tcase_create("lanczos3");

	tcase_set_timeout(t, 60);
	tcase_add_test(t, matches_the_reference);
	tcase_add_test(t, same_size_is_a_copy);
	tcase_add_test(t, flat_stays_flat);
	tcase_add_test(t, rows_or_whole_the_same_and_missing_rows_refused);
	tcase_add_test(t, huge_reduction);
	tcase_add_test(t, bad_arguments_refused);
	suite_add_tcase(s, t);
	return s;
}
