/*
 * jpegprog suite: the progressive decoder (thumbr/jpegprog.h) against libjpeg, on files made
 * here from a testdata photograph.  At 1/8: libjpeg's own 1/8 decode, identical for grey and
 * 4:4:4 (libjpeg's 1x1 inverse DCT is the DC alone), close for 4:2:0 (libjpeg fills chroma
 * from a 2x2 inverse DCT with AC coefficients); restart markers; a file cut after the DC
 * scans decodes, one cut inside them does not; a baseline file and bad progressions are
 * refused.  At 2/8 and 4/8: every kept coefficient equals libjpeg's (jpeg_read_coefficients)
 * for every sampling, restart markers and two scan scripts; the pixels are the truncated
 * inverse DCT written out from its definition; colour is close to libjpeg's scaled decode; a
 * file cut anywhere or repeating a scan is refused.  And a few hundred corrupted files at
 * each scale end in 0 or -1, never a crash (watched by make SANITIZER=address check).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <stdio.h>             /* before jpeglib.h, which needs FILE */

#include <check.h>
#include <jpeglib.h>

#include "suites.h"
#include "testutil.h"
#include "thumbr/jpegprog.h"

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

/* jp's result for src at num / 8, whole, or NULL when it refuses (err set) */
static unsigned char *
jp_all(const unsigned char *src, size_t n, int grey, int num, struct jp *d, char *err)
{
	unsigned char *px;

	if (jp_decode(d, src, n, !grey, num, 0, err, 256) != 0)
		return NULL;
	px = malloc((size_t)d->w * d->h * (size_t)d->ncomp);
	for (uint32_t y = 0; y < d->h; y++)
		jp_row(d, y, px + (size_t)y * d->w * (size_t)d->ncomp);
	return px;
}

/* at 1/8, the scale all but the tests of 2/8 and 4/8 use */
static unsigned char *
at_eighth(const unsigned char *src, size_t n, int grey, struct jp *d, char *err)
{
	return jp_all(src, n, grey, 1, d, err);
}

/* PSNR of jp's decode at num / 8 against libjpeg's of the same file */
static double
compare_at(int num, int grey, int hs, int vs, unsigned restart)
{
	unsigned long n;
	unsigned char *src = tu_progressive_jpeg(Rgb, W, H, grey, hs, vs, restart, &n);
	unsigned w, h;
	unsigned char *ref = tu_jpeg_decode(src, n, 8 / (unsigned)num, grey, &w, &h), *got;
	struct jp d;
	char err[256];
	double psnr;

	ck_assert_ptr_nonnull(ref);
	got = jp_all(src, n, grey, num, &d, err);
	ck_assert_msg(got != NULL, "%s", err);
	ck_assert_uint_eq(d.w, w);
	ck_assert_uint_eq(d.h, h);
	ck_assert_int_eq(d.ncomp, grey ? 1 : 3);
	psnr = tu_psnr_samples(ref, got, (size_t)w * h * (grey ? 1 : 3));
	jp_free(&d);
	free(got);
	free(ref);
	free(src);
	return psnr;
}

static double
compare(int grey, int hs, int vs, unsigned restart)
{
	return compare_at(1, grey, hs, vs, restart);
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
	struct jp d;
	char err[256];

	ac = tu_jpeg_scan(src, n, 0, 0, NULL);          /* the first AC scan */
	ck_assert_uint_gt(ac, 0);
	got = at_eighth(src, ac + 100, 0, &d, err);
	ck_assert_msg(got != NULL, "%s", err);
	jp_free(&d);
	free(got);
	ck_assert_ptr_null(at_eighth(src, ac / 2, 0, &d, err));
	ck_assert_msg(strstr(err, "corrupt JPEG data") != NULL, "%s", err);
	free(src);
}
END_TEST

START_TEST(baseline_refused)
{
	size_t n;
	unsigned char *src = tu_testdata_slurp("exif-orientation/Landscape_1.jpg", &n);
	struct jp d;
	char err[256];

	ck_assert_ptr_null(at_eighth(src, n, 0, &d, err));
	ck_assert_str_eq(err, "not a progressive Huffman-coded JPEG");
	ck_assert_ptr_null(at_eighth((const unsigned char *)"\xff\xd8", 2, 0, &d, err));
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
	struct jp d;
	char err[256];

	ck_assert_int_eq(tu_jpeg_each_marker(src, n, find_sof2, &sof), 1);
	src[sof - src + 7] = 0x33;
	src[sof - src + 10] = 0x22;
	ck_assert_ptr_null(at_eighth(src, n, 0, &d, err));
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
	struct jp d;
	char err[256];

	at = tu_jpeg_scan(src, n, 1, 0, &end);               /* the first DC scan, twice */
	ck_assert_uint_gt(at, 0);
	len = end - at;
	m = malloc(n + len);
	memcpy(m, src, end);
	memcpy(m + end, src + at, len);
	memcpy(m + end + len, src + end, n - end);
	ck_assert_ptr_null(at_eighth(m, n + len, 0, &d, err));
	ck_assert_str_eq(err, "corrupt JPEG data: a second first DC scan");
	free(m);

	at = tu_jpeg_scan(src, n, 1, 1, &end);               /* the refinement: Ah 1 Al 0 -> 2, 1 */
	ck_assert_uint_gt(at, 0);
	m = malloc(n);
	memcpy(m, src, n);
	ck_assert_int_eq(m[at + 7 + 2 * m[at + 4]], 0x10);
	m[at + 7 + 2 * m[at + 4]] = 0x21;
	ck_assert_ptr_null(at_eighth(m, n, 0, &d, err));
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
		struct jp d;
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
		got = at_eighth(m, len, 0, &d, err);
		if (got != NULL) {
			ok++;
			jp_free(&d);
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

/* ---- 2/8 and 4/8 ---- */

/* zigzag index -> natural index (T.81 figure A.6) */
static const int zz[64] = {
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

/* libjpeg's quantised coefficients of component ci: bw x bh blocks of 64 in natural order,
 * and the component's quantisers (natural order) in q */
static JCOEF *
lj_coefs(const unsigned char *src, size_t n, int ci, unsigned *bw, unsigned *bh, int q[64])
{
	struct jpeg_decompress_struct c;
	struct jpeg_error_mgr e;
	jvirt_barray_ptr *v;
	JCOEF *out;

	c.err = jpeg_std_error(&e);
	jpeg_create_decompress(&c);
	jpeg_mem_src(&c, src, n);
	jpeg_read_header(&c, TRUE);
	v = jpeg_read_coefficients(&c);
	*bw = c.comp_info[ci].width_in_blocks;
	*bh = c.comp_info[ci].height_in_blocks;
	for (int k = 0; k < 64; k++)
		q[k] = c.comp_info[ci].quant_table->quantval[k];
	out = malloc((size_t)*bw * *bh * 64 * sizeof(JCOEF));
	for (unsigned by = 0; by < *bh; by++) {
		JBLOCKARRAY row = c.mem->access_virt_barray((j_common_ptr)&c, v[ci], by, 1, FALSE);

		memcpy(out + (size_t)by * *bw * 64, row[0], (size_t)*bw * 64 * sizeof(JCOEF));
	}
	jpeg_finish_decompress(&c);
	jpeg_destroy_decompress(&c);
	return out;
}

/* Every coefficient jp keeps is libjpeg's, in every block of every component; returns how
 * many were compared. */
static size_t
same_coefficients(const unsigned char *src, size_t n, int grey, int num)
{
	struct jp d;
	char err[256];
	size_t compared = 0;

	ck_assert_msg(jp_decode(&d, src, n, !grey, num, 0, err, sizeof(err)) == 0, "%s", err);
	for (int ci = 0; ci < d.ncomp; ci++) {
		unsigned bw, bh;
		int q[64];
		JCOEF *ref = lj_coefs(src, n, ci, &bw, &bh, q);

		for (unsigned by = 0; by < bh; by++)
			for (unsigned bx = 0; bx < bw; bx++) {
				const JCOEF *b = ref + ((size_t)by * bw + bx) * 64;
				int16_t v;

				for (int k = 0; jp_coef(&d, ci, bx, by, k, &v) == 0; k++, compared++)
					ck_assert_msg(v == b[zz[k]],
					    "component %d block %u,%u coefficient %d: %d, libjpeg %d",
					    ci, bx, by, k, v, b[zz[k]]);
			}
		free(ref);
	}
	jp_free(&d);
	return compared;
}

/* A progressive file of the testdata photograph with the scans of script (NULL: libjpeg's
 * standard progression). */
static unsigned char *
progressive(int grey, int hs, int vs, unsigned restart, const jpeg_scan_info *script,
    int nscans, unsigned long *len)
{
	return tu_progressive_jpeg_script(Rgb, W, H, grey, hs, vs, restart, script, nscans, len);
}

/* The entropy decoder against libjpeg's: every kept coefficient, for the standard
 * progression (successive approximation on DC and AC, EOB runs, refinements) in every
 * sampling the thumbnailer meets, with restart markers, and for a script of spectral
 * selection alone with other band edges. */
START_TEST(coefficients_are_libjpegs)
{
	static const struct { int grey, hs, vs; unsigned restart; } f[] = {
		{ 1, 1, 1, 0 }, { 0, 1, 1, 0 }, { 0, 2, 2, 0 }, { 0, 2, 1, 0 }, { 0, 1, 2, 0 },
		{ 0, 2, 2, 3 }, { 1, 1, 1, 7 },
	};
	static const jpeg_scan_info spectral[] = {
		{ 3, { 0, 1, 2, 0 }, 0, 0, 0, 0 },
		{ 1, { 0, 0, 0, 0 }, 1, 2, 0, 0 },
		{ 1, { 0, 0, 0, 0 }, 3, 9, 0, 0 },
		{ 1, { 2, 0, 0, 0 }, 1, 63, 0, 0 },
		{ 1, { 1, 0, 0, 0 }, 1, 63, 0, 0 },
		{ 1, { 0, 0, 0, 0 }, 10, 63, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		unsigned long n;
		unsigned char *src = progressive(f[i].grey, f[i].hs, f[i].vs, f[i].restart, NULL, 0,
		    &n);

		ck_assert_uint_gt(same_coefficients(src, n, f[i].grey, 2), 0);
		ck_assert_uint_gt(same_coefficients(src, n, f[i].grey, 4), 0);
		free(src);
	}
	{
		unsigned long n;
		unsigned char *src = progressive(0, 2, 2, 0, spectral, 6, &n);

		ck_assert_uint_gt(same_coefficients(src, n, 0, 4), 0);
		free(src);
	}
}
END_TEST

/* The pixels are the N-point inverse DCT of the top-left N x N coefficients, as written
 * here from the definition in double precision (T.81 A.3.3 with N in place of 8): within
 * one level, grey at 2/8 and 4/8. */
START_TEST(pixels_are_the_truncated_inverse_dct)
{
	unsigned long n;
	unsigned char *src = progressive(1, 1, 1, 0, NULL, 0, &n);

	for (int num = 2; num <= 4; num *= 2) {
		struct jp d;
		char err[256];
		unsigned char *got = jp_all(src, n, 1, num, &d, err);
		unsigned bw, bh;
		int q[64];
		long worst = 0;
		JCOEF *ref = lj_coefs(src, n, 0, &bw, &bh, q);

		ck_assert_msg(got != NULL, "%s", err);
		for (uint32_t y = 0; y < d.h; y++)
			for (uint32_t x = 0; x < d.w; x++) {
				const JCOEF *b = ref + ((size_t)(y / (unsigned)num) * bw +
				    x / (unsigned)num) * 64;
				int px = (int)(x % (unsigned)num), py = (int)(y % (unsigned)num);
				double s = 0;
				long want;

				for (int v = 0; v < num; v++)
					for (int u = 0; u < num; u++)
						s += (u ? 1 : M_SQRT1_2) * (v ? 1 : M_SQRT1_2) / 4 *
						    b[v * 8 + u] * q[v * 8 + u] *
						    cos((2 * px + 1) * u * M_PI / (2 * num)) *
						    cos((2 * py + 1) * v * M_PI / (2 * num));
				want = lround(s + 128);
				want = want < 0 ? 0 : want > 255 ? 255 : want;
				if (labs(want - got[(size_t)y * d.w + x]) > worst)
					worst = labs(want - got[(size_t)y * d.w + x]);
			}
		ck_assert_int_le(worst, 1);
		free(ref);
		free(got);
		jp_free(&d);
	}
	free(src);
}
END_TEST

/* In colour, each sampling lines chroma up with luma as libjpeg does (its reduced inverse
 * DCTs average where this one band-limits, so close, not equal). */
START_TEST(close_to_libjpeg_at_two_and_four_eighths)
{
	for (int num = 2; num <= 4; num *= 2) {
		ck_assert_double_ge(compare_at(num, 1, 1, 1, 0), 30);
		ck_assert_double_ge(compare_at(num, 0, 1, 1, 0), 30);
		ck_assert_double_ge(compare_at(num, 0, 2, 2, 5), 30);
		ck_assert_double_ge(compare_at(num, 0, 2, 1, 0), 30);
		ck_assert_double_ge(compare_at(num, 0, 1, 2, 0), 30);
	}
}
END_TEST

/* At 2/8 every scan is needed: a file cut anywhere, even after its last scan's data, is
 * refused as libjpeg refuses it; an AC scan that repeats a band is a bad progression. */
START_TEST(cut_or_repeated_scans_refused_at_two_eighths)
{
	unsigned long n;
	unsigned char *src = progressive(0, 2, 2, 0, NULL, 0, &n), *m;
	size_t at, end, len;
	struct jp d;
	char err[256];

	ck_assert_ptr_null(jp_all(src, n - 2, 0, 2, &d, err));          /* no EOI */
	ck_assert_str_eq(err, "corrupt JPEG data: premature end of file");
	at = tu_jpeg_scan(src, n, 0, 3, &end);                          /* inside an AC scan */
	ck_assert_uint_gt(at, 0);
	ck_assert_ptr_null(jp_all(src, (at + end) / 2, 0, 2, &d, err));
	ck_assert_msg(strstr(err, "corrupt JPEG data") != NULL, "%s", err);

	len = end - at;                                                 /* AC scan 3, twice */
	m = malloc(n + len);
	memcpy(m, src, end);
	memcpy(m + end, src + at, len);
	memcpy(m + end + len, src + end, n - end);
	ck_assert_ptr_null(jp_all(m, n + len, 0, 2, &d, err));
	ck_assert_str_eq(err, "corrupt JPEG data: bad progression");
	free(m);
	free(src);
}
END_TEST

/* Damage anywhere, at 2/8 and 4/8: 0 or -1, never a crash or a read out of bounds (watched
 * by make SANITIZER=address check), and some of it noticed. */
START_TEST(corrupted_files_fail_cleanly_at_two_and_four_eighths)
{
	unsigned long n;
	unsigned char *src = progressive(0, 2, 1, 4, NULL, 0, &n);
	unsigned char *m = malloc(n);
	unsigned seed = 777, refused = 0;

	for (int k = 0; k < 300; k++) {
		struct jp d;
		char err[256];
		unsigned char *got;
		size_t len = n;

		memcpy(m, src, n);
		for (int f = 0; f < 1 + k % 4; f++) {
			seed = seed * 1103515245u + 12345u;
			m[(seed >> 8) % n] ^= (unsigned char)(1 + (seed >> 24) % 255);
		}
		if (k % 7 == 0)
			len = (seed >> 4) % n;
		got = jp_all(m, len, 0, k % 2 ? 2 : 4, &d, err);
		if (got != NULL) {
			jp_free(&d);
			free(got);
		} else {
			refused++;
		}
	}
	ck_assert_uint_gt(refused, 0);
	free(m);
	free(src);
}
END_TEST

Suite *
jpegprog_suite(void)
{
	Suite *s = suite_create("jpegprog");
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
	t = tcase_create("ac");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, coefficients_are_libjpegs);
	tcase_add_test(t, pixels_are_the_truncated_inverse_dct);
	tcase_add_test(t, close_to_libjpeg_at_two_and_four_eighths);
	tcase_add_test(t, cut_or_repeated_scans_refused_at_two_eighths);
	tcase_add_test(t, corrupted_files_fail_cleanly_at_two_and_four_eighths);
	suite_add_tcase(s, t);
	return s;
}
