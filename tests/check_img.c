/*
 * img: the fit rule, and thumbnailing real files from testdata/ in-process (decode with
 * shrink-on-load, resize, encode), including broken ones.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"
#include "thumbr/img.h"

#include <unistd.h>
#include <vips/vips.h>

START_TEST(fit_keeps_aspect_never_enlarges)
{
	struct img_box b256 = { 256, 256, IMG_FIT }, wide = { 640, 480, IMG_FIT };
	uint32_t w, h;

	img_fit(1024, 768, &b256, &w, &h);
	ck_assert_uint_eq(w, 256);
	ck_assert_uint_eq(h, 192);
	img_fit(768, 1024, &b256, &w, &h);
	ck_assert_uint_eq(w, 192);
	ck_assert_uint_eq(h, 256);
	img_fit(100, 50, &b256, &w, &h);        /* smaller than the box: as it is */
	ck_assert_uint_eq(w, 100);
	ck_assert_uint_eq(h, 50);
	img_fit(4000, 3000, &wide, &w, &h);     /* both sides limit equally */
	ck_assert_uint_eq(w, 640);
	ck_assert_uint_eq(h, 480);
	img_fit(4000, 1000, &wide, &w, &h);     /* width limits */
	ck_assert_uint_eq(w, 640);
	ck_assert_uint_eq(h, 160);
	img_fit(10000, 1, &b256, &w, &h);       /* never below 1 px */
	ck_assert_uint_eq(w, 256);
	ck_assert_uint_eq(h, 1);
}
END_TEST

START_TEST(exif_orientation_parsing)
{
	/* little-endian, one IFD entry: Orientation (0x0112) SHORT 1 = 6 */
	const unsigned char le[] = { 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
	    0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0 };
	/* big-endian, orientation 8 after another tag, no "Exif" prefix */
	const unsigned char be[] = { 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 2,
	    0x01, 0x0f, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0,
	    0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0 };
	unsigned char bad[sizeof(le)];

	ck_assert_int_eq(img_exif_orientation(le, sizeof(le)), 6);
	ck_assert_int_eq(img_exif_orientation(be, sizeof(be)), 8);
	memcpy(bad, le, sizeof(le));
	bad[24] = 9;                                    /* out of range */
	ck_assert_int_eq(img_exif_orientation(bad, sizeof(bad)), 1);
	memcpy(bad, le, sizeof(le));
	bad[10] = 200;                                  /* IFD offset past the end */
	ck_assert_int_eq(img_exif_orientation(bad, sizeof(bad)), 1);
	ck_assert_int_eq(img_exif_orientation(le, 20), 1);      /* truncated entry */
	ck_assert_int_eq(img_exif_orientation((const unsigned char *)"Exif", 4), 1);
}
END_TEST

struct got {
	unsigned n;
	unsigned w[4], h[4];
	int jpeg[4];
	int keep;               /* keep a copy of the first thumbnail */
	unsigned char *data;
	size_t len;
};

static int
collect(void *ctx, unsigned box, unsigned width, unsigned height, const void *data, size_t len,
    char *err, size_t errsz)
{
	struct got *g = ctx;
	const unsigned char *p = data;

	(void)err;
	(void)errsz;
	ck_assert_uint_lt(box, 4);
	g->w[box] = width;
	g->h[box] = height;
	g->jpeg[box] = len > 4 && p[0] == 0xff && p[1] == 0xd8 && p[len - 2] == 0xff &&
	    p[len - 1] == 0xd9;
	if (g->keep && g->data == NULL) {
		g->data = malloc(len);
		memcpy(g->data, data, len);
		g->len = len;
	}
	g->n++;
	return 0;
}

/* What the tests here ask for but for the boxes and the quality: JPEG, turned upright, on
 * white, metadata stripped, no limits */
static struct img_settings
settings(const struct img_box *boxes, unsigned n, unsigned quality)
{
	struct img_settings s = { .boxes = boxes, .nboxes = n, .quality = quality, .rotate = 1,
	    .format = IMG_JPEG, .background = { 255, 255, 255 } };

	return s;
}

static int
thumb(const char *rel, const struct img_box *boxes, unsigned n, struct got *g, char *err)
{
	size_t len;
	unsigned char *src = tu_testdata_slurp(rel, &len);
	struct img_settings s = settings(boxes, n, 80);
	int rc;

	memset(g, 0, sizeof(*g));
	rc = img_thumbnail(src, len, &s, collect, g, err, 256);
	free(src);
	return rc;
}

static void
setup(void)
{
	img_init("check_thumbr", 0);
}

START_TEST(jpeg_two_sizes_one_decode)
{
	struct img_box b[2] = { { 32, 32, IMG_FIT }, { 100, 100, IMG_FIT } };
	struct got g;
	char err[256];
	unsigned sw, sh;
	char *p = tu_join(tu_testdata(), "libjpeg-turbo/testorig.jpg");

	ck_assert_int_eq(tu_image_size(p, &sw, &sh), 0);
	ck_assert_msg(thumb("libjpeg-turbo/testorig.jpg", b, 2, &g, err) == 0, "%s", err);
	ck_assert_uint_eq(g.n, 2);
	ck_assert(g.jpeg[0] && g.jpeg[1]);
	ck_assert_uint_eq(g.w[0] > g.h[0] ? g.w[0] : g.h[0], 32);
	ck_assert_uint_eq(g.w[1] > g.h[1] ? g.w[1] : g.h[1], 100);
	ck_assert_uint_le(abs((int)(g.h[1] * sw) - (int)(g.w[1] * sh)), (int)(sw > sh ? sw : sh));
	free(p);
}
END_TEST

START_TEST(png_variants)
{
	/* palette, grey 1-bit, 16-bit RGB, grey+alpha, RGBA, interlaced, tRNS */
	const char *files[] = { "basn3p08.png", "basn0g01.png", "basn2c16.png", "basn4a08.png",
	    "basn6a16.png", "basi2c08.png", "tbrn2c08.png", "s01i3p01.png" };
	struct img_box b = { 16, 16, IMG_FIT };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char rel[64], err[256];
		struct got g;

		snprintf(rel, sizeof(rel), "pngsuite/%s", files[i]);
		ck_assert_msg(thumb(rel, &b, 1, &g, err) == 0, "%s: %s", rel, err);
		ck_assert_uint_eq(g.n, 1);
		ck_assert(g.jpeg[0]);
		/* PngSuite images are 32x32 (s01 is 1x1): never enlarged */
		ck_assert_msg(g.w[0] <= 16 && g.h[0] <= 16, "%s: %ux%u", rel, g.w[0], g.h[0]);
	}
}
END_TEST

START_TEST(broken_inputs_fail_with_a_reason)
{
	struct img_box b = { 64, 64, IMG_FIT };
	struct got g;
	char err[256];
	size_t len;
	unsigned char *src = tu_testdata_slurp("libjpeg-turbo/testorig.jpg", &len);
	struct img_settings s = settings(&b, 1, 80);

	/* truncated JPEG: refused, never a grey half-image */
	err[0] = '\0';
	ck_assert_int_eq(img_thumbnail(src, len / 2, &s, collect, &g, err, sizeof(err)), -1);
	ck_assert_msg(err[0] != '\0', "no reason given");
	/* header only */
	ck_assert_int_eq(img_thumbnail(src, 20, &s, collect, &g, err, sizeof(err)), -1);
	/* not an image */
	ck_assert_int_eq(img_thumbnail((const unsigned char *)"hello", 5, &s, collect, &g, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "not a supported image");
	free(src);
	ck_assert_int_eq(thumb("libjpeg-turbo/monkey12.jpg", &b, 1, &g, err), -1);
	ck_assert_msg(strstr(err, "precision") != NULL, "%s", err);
	ck_assert_int_eq(thumb("pngsuite/xcsn0g01.png", &b, 1, &g, err), -1);
	ck_assert_int_eq(thumb("pngsuite/xd0n2c08.png", &b, 1, &g, err), -1);
	ck_assert_uint_eq(g.n, 0);
}
END_TEST

/* A quality guard: the 256-px thumbnail (Q95) of a real photograph against the slow way (full
 * decode, one Lanczos3 resize, by libvips) must stay close: 36.86 dB measured, where a colour
 * slip, a wrong kernel or a misplaced pixel grid costs several dB.  The fine tuning (shrink-on-
 * load headroom: 36.67 dB with none) is measured on the benchmark corpus with quality.py. */
#ifndef QUALITY_GUARD_DB
#define QUALITY_GUARD_DB 36.0
#endif

/* The exact reference: w x h from the fw x fh RGB pixels fp by one Lanczos3 resize, by
 * libvips, in this thread (a libvips sink would start worker threads). */
static unsigned char *
reference(unsigned char *fp, unsigned fw, unsigned fh, unsigned w, unsigned h)
{
	VipsImage *full, *ref;
	VipsRegion *reg;
	VipsRect all = { 0, 0, (int)w, (int)h };
	unsigned char *rp;

	full = vips_image_new_from_memory(fp, (size_t)fw * fh * 3, (int)fw, (int)fh, 3,
	    VIPS_FORMAT_UCHAR);
	ck_assert_ptr_nonnull(full);
	ck_assert_int_eq(vips_resize(full, &ref, (double)w / fw, "vscale", (double)h / fh,
	    "kernel", VIPS_KERNEL_LANCZOS3, NULL), 0);
	ck_assert_int_eq(vips_image_get_width(ref), (int)w);
	ck_assert_int_eq(vips_image_get_height(ref), (int)h);
	reg = vips_region_new(ref);
	ck_assert_int_eq(vips_region_prepare(reg, &all), 0);
	rp = malloc((size_t)w * h * 3);
	for (unsigned y = 0; y < h; y++)
		memcpy(rp + (size_t)y * w * 3, VIPS_REGION_ADDR(reg, 0, (int)y), (size_t)w * 3);
	g_object_unref(reg);
	g_object_unref(ref);
	g_object_unref(full);
	return rp;
}

/* PSNR of the one thumbnail img makes of src for box b against the exact reference made
 * from the fw x fh RGB pixels fp. */
static double
psnr_from_reference(const unsigned char *src, size_t len, struct img_box b, unsigned char *fp,
    unsigned fw, unsigned fh)
{
	struct img_settings s = settings(&b, 1, 95);
	struct got g;
	char err[256], *dir = tu_tmpdir(), *t = tu_join(dir, "t.jpg");
	unsigned char *px, *rp;
	unsigned w, h;
	double db;

	memset(&g, 0, sizeof(g));
	g.keep = 1;
	ck_assert_msg(img_thumbnail(src, len, &s, collect, &g, err, sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_nonnull(g.data);
	rp = reference(fp, fw, fh, g.w[0], g.h[0]);
	ck_assert_int_eq(tu_write(t, g.data, g.len), 0);
	px = tu_jpeg_rgb(t, &w, &h);
	ck_assert(px != NULL && w == g.w[0] && h == g.h[0]);
	db = tu_psnr(px, rp, w, h);
	free(px);
	free(rp);
	free(g.data);
	tu_rmrf(dir);
	free(dir);
	free(t);
	return db;
}

START_TEST(close_to_an_exact_reference)
{
	struct img_box b = { 256, 256, IMG_FIT };
	char *path = tu_join(tu_testdata(), "exif-orientation/Landscape_1.jpg");
	size_t len;
	unsigned char *src = tu_testdata_slurp("exif-orientation/Landscape_1.jpg", &len), *fp;
	unsigned fw, fh;
	double db;

	/* decoded here, in this thread: libvips' own loader would start worker threads */
	fp = tu_jpeg_rgb(path, &fw, &fh);
	ck_assert_ptr_nonnull(fp);
	db = psnr_from_reference(src, len, b, fp, fw, fh);
	ck_assert_msg(db >= QUALITY_GUARD_DB, "%.2f dB from the exact reference", db);
	free(fp);
	free(src);
	free(path);
}
END_TEST

/* A PNG (no DCT scaling) is shrunk on load by a box of f x f pixels, with what is left over
 * at the right and bottom edges averaged on its own.  Here 599 x 449 to 64 px: 6 x 6 groups,
 * the last column and row of groups narrower.  39.2 dB measured; groups taken one off
 * measured 36.2 dB, the narrow edge groups weighted as whole ones 36.5. */
START_TEST(png_shrunk_on_load_close_to_an_exact_reference)
{
	char *path = tu_join(tu_testdata(), "exif-orientation/Landscape_1.jpg"), *dir = tu_tmpdir();
	char *png = tu_join(dir, "l.png");
	unsigned fw, fh, w = 599, h = 449;
	unsigned char *fp = tu_jpeg_rgb(path, &fw, &fh), *rgba, *rgb, *src;
	size_t len;
	double db;

	ck_assert(fp != NULL && fw >= w && fh >= h);
	rgba = malloc((size_t)w * h * 4);
	rgb = malloc((size_t)w * h * 3);
	for (unsigned y = 0; y < h; y++)
		for (unsigned x = 0; x < w; x++) {
			memcpy(rgba + ((size_t)y * w + x) * 4, fp + ((size_t)y * fw + x) * 3, 3);
			rgba[((size_t)y * w + x) * 4 + 3] = 255;
			memcpy(rgb + ((size_t)y * w + x) * 3, fp + ((size_t)y * fw + x) * 3, 3);
		}
	ck_assert_int_eq(tu_write_png_rgba(png, rgba, w, h), 0);
	src = (unsigned char *)tu_slurp(png, &len);
	db = psnr_from_reference(src, len, (struct img_box){ 64, 64, IMG_FIT }, rgb, w, h);
	ck_assert_msg(db >= 38.5, "%.2f dB from the exact reference", db);
	free(src);
	free(rgb);
	free(rgba);
	free(fp);
	tu_rmrf(dir);
	free(dir);
	free(png);
	free(path);
}
END_TEST

/* At 1/8 a progressive JPEG is decoded from its DC scans alone: one cut after them still
 * makes the thumbnail, nearly the same as from the whole file (which may refine the DC
 * coefficients later); one cut inside them fails. */
START_TEST(progressive_dc_scans_suffice)
{
	char *path = tu_join(tu_testdata(), "exif-orientation/Landscape_1.jpg");
	unsigned w, h, w1, h1, w2, h2;
	unsigned char *px = tu_jpeg_rgb(path, &w, &h), *prog, *t1, *t2;
	unsigned long plen;
	struct img_box b = { 64, 64, IMG_FIT };
	struct img_settings s = settings(&b, 1, 95);
	struct got g1, g2;
	char err[256];
	size_t ac;

	ck_assert_ptr_nonnull(px);
	ck_assert_uint_ge(w / 8, 64 * 3 / 2);   /* 1/8 covers 1.5 x 64: decoded at 1/8 */
	prog = tu_progressive_jpeg(px, w, h, 0, 2, 2, 0, &plen);
	memset(&g1, 0, sizeof(g1));
	g1.keep = 1;
	ck_assert_msg(img_thumbnail(prog, plen, &s, collect, &g1, err, sizeof(err)) == 0, "%s",
	    err);
	ac = tu_jpeg_scan(prog, plen, 0, 0, NULL);   /* the first AC scan */
	ck_assert_uint_gt(ac, 0);
	ck_assert_uint_lt(ac, plen / 2);        /* the DC scans are a small part of the file */
	memset(&g2, 0, sizeof(g2));
	g2.keep = 1;
	ck_assert_msg(img_thumbnail(prog, ac + 64, &s, collect, &g2, err, sizeof(err)) == 0,
	    "cut after the DC scans: %s", err);
	t1 = tu_jpeg_decode(g1.data, g1.len, 1, 0, &w1, &h1);
	t2 = tu_jpeg_decode(g2.data, g2.len, 1, 0, &w2, &h2);
	ck_assert(t1 != NULL && t2 != NULL && w1 == w2 && h1 == h2 && w1 == g1.w[0]);
	ck_assert_double_ge(tu_psnr(t1, t2, w1, h1), 40);
	ck_assert_int_eq(img_thumbnail(prog, ac / 2, &s, collect, &g2, err, sizeof(err)), -1);
	free(t1);
	free(t2);
	free(g1.data);
	free(g2.data);
	free(prog);
	free(px);
	free(path);
}
END_TEST

/* A grey+alpha image through libvips' loaders (a TIFF) is flattened like any other: black
 * and white stay so, grey 100 at alpha 200 onto white is 133. */
START_TEST(grey_alpha_through_libvips_flattened)
{
	size_t n;
	unsigned char *src = tu_testdata_slurp("made/grey-alpha.tif", &n), *t;
	struct img_box b = { 32, 32, IMG_FIT };
	struct img_settings s = settings(&b, 1, 95);
	struct got g;
	char err[256];
	unsigned w, h;

	memset(&g, 0, sizeof(g));
	g.keep = 1;
	ck_assert_msg(img_thumbnail(src, n, &s, collect, &g, err, sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_nonnull(g.data);
	t = tu_jpeg_decode(g.data, g.len, 1, 1, &w, &h);
	ck_assert(t != NULL && w == 32 && h == 24);
	ck_assert_msg(t[3 * 32 + 3] <= 3, "top left: %d, want 0", t[3 * 32 + 3]);
	ck_assert_msg(t[3 * 32 + 28] >= 252, "top right: %d, want 255", t[3 * 32 + 28]);
	ck_assert_msg(abs(t[20 * 32 + 16] - 133) <= 3, "bottom: %d, want 133", t[20 * 32 + 16]);
	free(t);
	free(g.data);
	free(src);
}
END_TEST

/* A damaged interlaced PNG fails, and leaks nothing (LeakSanitizer watches under ASan). */
START_TEST(damaged_interlaced_png_fails)
{
	size_t n;
	unsigned char *src = tu_testdata_slurp("pngsuite/basi2c08.png", &n);
	struct img_box b = { 16, 16, IMG_FIT };
	struct img_settings s = settings(&b, 1, 80);
	struct got g;
	char err[256];

	memset(&g, 0, sizeof(g));
	ck_assert_int_eq(img_thumbnail(src, n * 2 / 3, &s, collect, &g, err, sizeof(err)), -1);
	free(src);
}
END_TEST

/* testdata's rel with the ICC profile icc_rel spliced in after SOI */
static unsigned char *
with_icc(const char *rel, const char *icc_rel, size_t *n)
{
	size_t jn, in;
	unsigned char *j = tu_testdata_slurp(rel, &jn), *icc = tu_testdata_slurp(icc_rel, &in), *o;
	size_t seg = 2 + 14 + in;

	ck_assert_uint_lt(seg, 65536);
	o = malloc(jn + 2 + seg);
	memcpy(o, j, 2);
	o[2] = 0xff, o[3] = 0xe2, o[4] = (unsigned char)(seg >> 8), o[5] = (unsigned char)seg;
	memcpy(o + 6, "ICC_PROFILE", 12);
	o[18] = 1, o[19] = 1;
	memcpy(o + 20, icc, in);
	memcpy(o + 20 + in, j + 2, jn - 2);
	*n = jn + 2 + seg;
	free(j);
	free(icc);
	return o;
}

/* --keep-metadata tags the thumbnail of a tagged source sRGB: with the source's own profile
 * when that is sRGB in all but name (the pixels were not transformed), with libvips' sRGB
 * otherwise (an Adobe RGB source, whose pixels were) */
START_TEST(kept_profile_is_srgb)
{
	struct img_box b = { 64, 64, IMG_FIT };
	struct img_settings s = settings(&b, 1, 80);
	size_t n, srgbn, in, outn;
	unsigned char *srgb = tu_testdata_slurp("icc/sRGB.icc", &srgbn), *adobe, *src, *out;
	struct got g;
	char err[256];

	s.keep_metadata = 1;
	src = with_icc("libjpeg-turbo/testorig.jpg", "icc/sRGB.icc", &n);
	memset(&g, 0, sizeof(g));
	g.keep = 1;
	ck_assert_msg(img_thumbnail(src, n, &s, collect, &g, err, sizeof(err)) == 0, "%s", err);
	out = tu_jpeg_icc(g.data, g.len, &outn);
	ck_assert_ptr_nonnull(out);
	ck_assert(outn == srgbn && memcmp(out, srgb, srgbn) == 0);
	free(out);
	free(g.data);
	free(src);

	src = with_icc("libjpeg-turbo/testorig.jpg", "icc/compatibleWithAdobeRGB1998.icc", &n);
	adobe = tu_testdata_slurp("icc/compatibleWithAdobeRGB1998.icc", &in);
	memset(&g, 0, sizeof(g));
	g.keep = 1;
	ck_assert_msg(img_thumbnail(src, n, &s, collect, &g, err, sizeof(err)) == 0, "%s", err);
	out = tu_jpeg_icc(g.data, g.len, &outn);
	ck_assert_ptr_nonnull(out);
	ck_assert(!(outn == in && memcmp(out, adobe, in) == 0));
	ck_assert(outn >= 128 && memcmp(out + 16, "RGB ", 4) == 0);
	free(out);
	free(g.data);
	free(src);
	free(adobe);
	free(srgb);
}
END_TEST

Suite *
img_suite(void)
{
	Suite *s = suite_create("img");
	TCase *t = tcase_create("Core");

	tcase_add_checked_fixture(t, setup, NULL);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, fit_keeps_aspect_never_enlarges);
	tcase_add_test(t, exif_orientation_parsing);
	tcase_add_test(t, jpeg_two_sizes_one_decode);
	tcase_add_test(t, png_variants);
	tcase_add_test(t, broken_inputs_fail_with_a_reason);
	tcase_add_test(t, close_to_an_exact_reference);
	tcase_add_test(t, png_shrunk_on_load_close_to_an_exact_reference);
	tcase_add_test(t, progressive_dc_scans_suffice);
	tcase_add_test(t, grey_alpha_through_libvips_flattened);
	tcase_add_test(t, damaged_interlaced_png_fails);
	tcase_add_test(t, kept_profile_is_srgb);
	suite_add_tcase(s, t);
	return s;
}
