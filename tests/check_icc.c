/*
 * icc suite: which embedded profiles count as sRGB (thumbr/icc.h).  Real profiles from
 * testdata (icc-profiles-free's sRGB.icc and Adobe RGB-compatible profile, the sRGB2014
 * profile in libjpeg-turbo's monkey12.jpg) and profiles built here: a v4-style one with
 * parametric curves, then the same with a gamma 2.2 curve, swapped colorants or a lookup
 * table, none of which may pass.  Truncated and damaged profiles are refused, never read
 * out of bounds (watched by make SANITIZER=address check).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "suites.h"
#include "testutil.h"
#include "thumbr/icc.h"

/* The ICC profile of a testdata JPEG */
static unsigned char *
jpeg_icc(const char *rel, size_t *n)
{
	size_t len;
	unsigned char *f = tu_testdata_slurp(rel, &len), *icc = tu_jpeg_icc(f, len, n);

	free(f);
	ck_assert_ptr_nonnull(icc);
	return icc;
}

static void
put_s15(unsigned char *p, double v)
{
	tu_put_be32(p, (uint32_t)(int32_t)(v * 65536.0 + (v < 0 ? -0.5 : 0.5)));
}

/*
 * A matrix/TRC profile: colorants col, one curve shared by the three channels (a para of
 * the given type and parameters), and a lookup table tag when lut names one (A2B0, D2B1...).
 */
static unsigned char *
built(const double col[3][3], int type, const double *params, int nparams, const char *lut,
    size_t *n)
{
	static const char *xyz[3] = { "rXYZ", "gXYZ", "bXYZ" }, *trc[3] = { "rTRC", "gTRC",
		"bTRC" };
	unsigned ntags = 6 + (lut ? 1 : 0);
	size_t off = 132 + 12 * ntags, curve = off + 3 * 20;
	unsigned char *p = calloc(1, 1024);

	memcpy(p + 16, "RGB XYZ ", 8);
	memcpy(p + 36, "acsp", 4);
	tu_put_be32(p + 128, ntags);
	for (int c = 0; c < 3; c++) {
		unsigned char *e = p + 132 + 12 * c, *t = p + off + 20 * c;

		memcpy(e, xyz[c], 4);
		tu_put_be32(e + 4, (uint32_t)(off + 20 * c));
		tu_put_be32(e + 8, 20);
		memcpy(t, "XYZ ", 4);
		for (int k = 0; k < 3; k++)
			put_s15(t + 8 + 4 * k, col[c][k]);
		e = p + 132 + 12 * (3 + c);
		memcpy(e, trc[c], 4);
		tu_put_be32(e + 4, (uint32_t)curve);
		tu_put_be32(e + 8, 12 + 4 * (uint32_t)nparams);
	}
	memcpy(p + curve, "para", 4);
	p[curve + 9] = (unsigned char)type;
	for (int i = 0; i < nparams; i++)
		put_s15(p + curve + 12 + 4 * i, params[i]);
	*n = curve + 12 + 4 * (size_t)nparams;
	if (lut) {
		unsigned char *e = p + 132 + 12 * 6;

		memcpy(e, lut, 4);
		tu_put_be32(e + 4, (uint32_t)*n);
		tu_put_be32(e + 8, 32);
		memcpy(p + *n, "mft2", 4);
		*n += 32;
	}
	tu_put_be32(p, (uint32_t)*n);
	return p;
}

static const double SRGB[3][3] = {
	{ 0.4361, 0.2225, 0.0139 }, { 0.3851, 0.7169, 0.0971 }, { 0.1431, 0.0606, 0.7141 }
};
static const double SRGB_TRC[5] = { 2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045 };

START_TEST(real_profiles)
{
	size_t n;
	unsigned char *p = tu_testdata_slurp("icc/sRGB.icc", &n);

	ck_assert_int_eq(icc_is_srgb(p, n), 1);
	free(p);
	p = jpeg_icc("libjpeg-turbo/monkey12.jpg", &n);         /* sRGB2014 */
	ck_assert_int_eq(icc_is_srgb(p, n), 1);
	free(p);
	p = tu_testdata_slurp("icc/compatibleWithAdobeRGB1998.icc", &n);
	ck_assert_int_eq(icc_is_srgb(p, n), 0);
	free(p);
	p = jpeg_icc("made/cmyk-tagged.jpg", &n);               /* CMYK */
	ck_assert_int_eq(icc_is_srgb(p, n), 0);
	free(p);
}
END_TEST

START_TEST(built_profiles)
{
	static const double swapped[3][3] = {
		{ 0.3851, 0.7169, 0.0971 }, { 0.4361, 0.2225, 0.0139 }, { 0.1431, 0.0606, 0.7141 }
	};
	const double gamma22 = 2.2;
	size_t n;
	unsigned char *p;

	p = built(SRGB, 3, SRGB_TRC, 5, NULL, &n);
	ck_assert_int_eq(icc_is_srgb(p, n), 1);
	free(p);
	p = built(SRGB, 0, &gamma22, 1, NULL, &n);
	ck_assert_int_eq(icc_is_srgb(p, n), 0);
	free(p);
	p = built(swapped, 3, SRGB_TRC, 5, NULL, &n);
	ck_assert_int_eq(icc_is_srgb(p, n), 0);
	free(p);
	p = built(SRGB, 3, SRGB_TRC, 5, "A2B0", &n);
	ck_assert_int_eq(icc_is_srgb(p, n), 0);
	free(p);
	p = built(SRGB, 3, SRGB_TRC, 5, "D2B0", &n);     /* lcms prefers it to all the rest */
	ck_assert_int_eq(icc_is_srgb(p, n), 0);
	free(p);
}
END_TEST

START_TEST(damaged_profiles_refused)
{
	size_t n;
	unsigned char *p = tu_testdata_slurp("icc/sRGB.icc", &n), *q;

	ck_assert_int_eq(icc_is_srgb(NULL, 0), 0);
	for (size_t cut = 0; cut < n; cut += 7) {        /* a copy of exactly cut bytes */
		q = malloc(cut ? cut : 1);
		memcpy(q, p, cut);
		if (cut < 132 + 12 * 6)                 /* no room for the six tags it needs */
			ck_assert_int_eq(icc_is_srgb(q, cut), 0);
		else
			(void)icc_is_srgb(q, cut);     /* tags may all lie before the cut */
		free(q);
	}
	q = malloc(n);
	memcpy(q, p, n);
	tu_put_be32(q + 128, 0xffffffffu);                    /* a tag count far past the end */
	(void)icc_is_srgb(q, n);                        /* the real tags may still be read */
	memcpy(q, p, n);
	for (uint32_t i = 0; 132 + 12 * (size_t)(i + 1) <= n && i < ((uint32_t)q[128] << 24 |
	    (uint32_t)q[129] << 16 | (uint32_t)q[130] << 8 | q[131]); i++)
		tu_put_be32(q + 132 + 12 * i + 4, 0xfffffff0u);       /* every tag out of bounds */
	ck_assert_int_eq(icc_is_srgb(q, n), 0);
	free(q);
	free(p);
}
END_TEST

Suite *
icc_suite(void)
{
	Suite *s = suite_create("icc");
	TCase *t = tcase_create("srgb");

	tcase_add_test(t, real_profiles);
	tcase_add_test(t, built_profiles);
	tcase_add_test(t, damaged_profiles_refused);
	suite_add_tcase(s, t);
	return s;
}
