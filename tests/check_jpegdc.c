/*
 * jpegdc suite: the DC-scan decoder (thumbr/jpegdc.h) against libjpeg's own 1/8 decode of
 * the same progressive files, made here from a testdata photograph: grey and 4:4:4 must be
 * identical (libjpeg's 1x1 inverse DCT is the DC alone), 4:2:0 close (libjpeg fills chroma
 * from a 2x2 inverse DCT with AC coefficients); restart markers; a file cut after the DC
 * scans decodes, one cut inside them does not; a baseline file and bad progressions are
 * refused; and a few hundred corrupted files end in 0 or -1, never a crash (watched by
 * make SANITIZER=address check).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "suites.h"
#include "testutil.h"
#include "thumbr/jpegdc.h"

static unsigned char *Rgb;
static unsigned W, H;

static void
setup(void)
{
	char *path = tu_join(tu_testdata(), "exif-orientation/Landscape_1.jpg");

	Rgb = tu_jpeg_rgb(path, &W, &H);
	ck_assert_ptr_nonnull(Rgb);
	free(path);
}

static void
teardown(void)
{
	free(Rgb);
}

/* jdc's result for src, whole, or NULL when it refuses (err set) */
static unsigned char *
jdc_all(const unsigned char *src, size_t n, int grey, struct jdc *d, char *err)
{
	unsigned char *px;

	if (jdc_decode(d, src, n, !grey, err, 256) != 0)
		return NULL;
	px = malloc((size_t)d->w * d->h * (size_t)d->ncomp);
	for (uint32_t y = 0; y < d->h; y++)
		jdc_row(d, y, px + (size_t)y * d->w * (size_t)d->ncomp);
	return px;
}

static double
compare(int grey, int hs, int vs, unsigned restart)
{
	unsigned long n;
	unsigned char *src = tu_progressive_jpeg(Rgb, W, H, grey, hs, vs, restart, &n);
	unsigned w, h;
	unsigned char *ref = tu_jpeg_decode(src, n, 8, grey, &w, &h), *got;
	struct jdc d;
	char err[256];
	double psnr;

	ck_assert_ptr_nonnull(ref);
	got = jdc_all(src, n, grey, &d, err);
	ck_assert_msg(got != NULL, "%s", err);
	ck_assert_uint_eq(d.w, w);
	ck_assert_uint_eq(d.h, h);
	ck_assert_int_eq(d.ncomp, grey ? 1 : 3);
	if (grey) {     /* as RGB for tu_psnr */
		unsigned char *a = malloc((size_t)w * h * 3), *b = malloc((size_t)w * h * 3);

		for (size_t i = 0; i < (size_t)w * h; i++)
			memset(a + 3 * i, ref[i], 3), memset(b + 3 * i, got[i], 3);
		psnr = tu_psnr(a, b, w, h);
		free(a);
		free(b);
	} else {
		psnr = tu_psnr(ref, got, w, h);
	}
	jdc_free(&d);
	free(got);
	free(ref);
	free(src);
	return psnr;
}

START_TEST(same_as_libjpeg_at_one_eighth)
{
	ck_assert_double_ge(compare(1, 1, 1, 0), 99);   /* identical (tu_psnr: 99 when equal) */
	ck_assert_double_ge(compare(0, 1, 1, 0), 99);
	ck_assert_double_ge(compare(0, 1, 1, 7), 99);   /* restart markers */
	ck_assert_double_ge(compare(0, 2, 2, 0), 30);   /* 4:2:0: chroma differs a little */
	ck_assert_double_ge(compare(0, 2, 1, 3), 30);
}
END_TEST

START_TEST(cut_after_dc_scans_decodes_cut_inside_fails)
{
	unsigned long n;
	unsigned char *src = tu_progressive_jpeg(Rgb, W, H, 0, 2, 2, 0, &n), *got;
	size_t ac;
	struct jdc d;
	char err[256];

	ac = tu_jpeg_scan(src, n, 0, 0, NULL);          /* the first AC scan */
	ck_assert_uint_gt(ac, 0);
	got = jdc_all(src, ac + 100, 0, &d, err);
	ck_assert_msg(got != NULL, "%s", err);
	jdc_free(&d);
	free(got);
	ck_assert_ptr_null(jdc_all(src, ac / 2, 0, &d, err));
	ck_assert_msg(strstr(err, "corrupt JPEG data") != NULL, "%s", err);
	free(src);
}
END_TEST

START_TEST(baseline_refused)
{
	size_t n;
	unsigned char *src = tu_testdata_slurp("exif-orientation/Landscape_1.jpg", &n);
	struct jdc d;
	char err[256];

	ck_assert_ptr_null(jdc_all(src, n, 0, &d, err));
	ck_assert_str_eq(err, "not a progressive Huffman-coded JPEG");
	ck_assert_ptr_null(jdc_all((const unsigned char *)"\xff\xd8", 2, 0, &d, err));
	free(src);
}
END_TEST

static int
find_sof2(unsigned m, const unsigned char *seg, size_t len, void *arg)
{
	if (m == 0xc2 && len >= 15) {
		*(const unsigned char **)arg = seg;
		return 1;
	}
	return 0;
}

/* Sampling factors that are not whole ratios of the largest (Y 3x3, Cb 2x2) are refused, as
 * libjpeg refuses them: the same file must not make a thumbnail at 1/8 and fail at 1/4. */
START_TEST(fractional_sampling_refused)
{
	unsigned long n;
	unsigned char *src = tu_progressive_jpeg(Rgb, W, H, 0, 2, 2, 0, &n);
	const unsigned char *sof = NULL;
	struct jdc d;
	char err[256];

	ck_assert_int_eq(tu_jpeg_each_marker(src, n, find_sof2, &sof), 1);
	src[sof - src + 7] = 0x33;
	src[sof - src + 10] = 0x22;
	ck_assert_ptr_null(jdc_all(src, n, 0, &d, err));
	ck_assert_str_eq(err, "fractional sampling not implemented");
	free(src);
}
END_TEST

/* A progression libjpeg would refuse is refused: a second first DC scan, a refinement that
 * skips a bit. */
START_TEST(bad_progressions_refused)
{
	unsigned long n;
	unsigned char *src = tu_progressive_jpeg(Rgb, W, H, 0, 2, 2, 0, &n), *m;
	size_t at, end, len;
	struct jdc d;
	char err[256];

	at = tu_jpeg_scan(src, n, 1, 0, &end);               /* the first DC scan, twice */
	ck_assert_uint_gt(at, 0);
	len = end - at;
	m = malloc(n + len);
	memcpy(m, src, end);
	memcpy(m + end, src + at, len);
	memcpy(m + end + len, src + end, n - end);
	ck_assert_ptr_null(jdc_all(m, n + len, 0, &d, err));
	ck_assert_str_eq(err, "corrupt JPEG data: a second first DC scan");
	free(m);

	at = tu_jpeg_scan(src, n, 1, 1, &end);               /* the refinement: Ah 1 Al 0 -> 2, 1 */
	ck_assert_uint_gt(at, 0);
	m = malloc(n);
	memcpy(m, src, n);
	ck_assert_int_eq(m[at + 7 + 2 * m[at + 4]], 0x10);
	m[at + 7 + 2 * m[at + 4]] = 0x21;
	ck_assert_ptr_null(jdc_all(m, n, 0, &d, err));
	ck_assert_str_eq(err, "corrupt JPEG data: bad progression");
	free(m);
	free(src);
}
END_TEST

START_TEST(corrupted_files_fail_cleanly)
{
	unsigned long n;
	unsigned char *src = tu_progressive_jpeg(Rgb, W, H, 0, 2, 2, 5, &n);
	unsigned char *m = malloc(n);
	unsigned seed = 12345, ok = 0, refused = 0;

	for (int k = 0; k < 400; k++) {
		struct jdc d;
		char err[256];
		unsigned char *got;
		size_t len = n;

		memcpy(m, src, n);
		for (int f = 0; f < 1 + k % 8; f++) {   /* flip bytes, mostly near the front */
			seed = seed * 1103515245u + 12345u;
			m[(seed >> 8) % (k % 2 ? n : n / 8 + 1)] ^= (unsigned char)(1 + (seed >> 24) % 255);
		}
		if (k % 5 == 0)
			len = (seed >> 4) % n;
		got = jdc_all(m, len, 0, &d, err);
		if (got != NULL) {
			ok++;
			jdc_free(&d);
			free(got);
		} else {
			refused++;
		}
	}
	ck_assert_uint_gt(ok, 0);       /* damage past the DC scans does not matter */
	ck_assert_uint_gt(refused, 0);
	free(m);
	free(src);
}
END_TEST

Suite *
jpegdc_suite(void)
{
	Suite *s = suite_create("jpegdc");
	TCase *t = tcase_create("dc");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, same_as_libjpeg_at_one_eighth);
	tcase_add_test(t, cut_after_dc_scans_decodes_cut_inside_fails);
	tcase_add_test(t, baseline_refused);
	tcase_add_test(t, bad_progressions_refused);
	tcase_add_test(t, fractional_sampling_refused);
	tcase_add_test(t, corrupted_files_fail_cleanly);
	suite_add_tcase(s, t);
	return s;
}
