/*
 * End to end: the real binary ($THUMBR_BIN) over testdata/ and over trees built here.
 * Dimensions are read from the files' own headers by testutil.c, not by thumbr's code.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>
#include <zlib.h>

#include "suites.h"
#include "testutil.h"

static char *tmp;

static void
setup(void)
{
	tmp = tu_tmpdir();
}

static void
teardown(void)
{
	tu_rmrf(tmp);
	free(tmp);
}

/* Does a thumbnail of a sw x sh source fit box bw x bh with the aspect kept (+-1 px)? */
static int
fits(unsigned sw, unsigned sh, unsigned bw, unsigned bh, unsigned tw, unsigned th)
{
	double s = fmin(1.0, fmin((double)bw / sw, (double)bh / sh));

	return tw <= bw && th <= bh && fabs(tw - sw * s) <= 1.01 && fabs(th - sh * s) <= 1.01 &&
	    (s == 1.0 ? (tw == sw && th == sh) : (tw == bw || th == bh));
}

/* The output name: extension replaced by .jpg */
static char *
out_name(const char *out, const char *size, const char *rel)
{
	const char *base = strrchr(rel, '/'), *dot;
	char *p;
	int stem;

	base = base ? base + 1 : rel;
	dot = strrchr(base, '.');
	stem = dot && dot != base ? (int)(dot - rel) : (int)strlen(rel);
	if (asprintf(&p, "%s/%s/%.*s.jpg", out, size, stem, rel) < 0)
		ck_abort_msg("asprintf");
	return p;
}

static int
expected_to_fail(const char *rel)
{
	const char *base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	return (strncmp(rel, "pngsuite/", 9) == 0 && base[0] == 'x') ||
	    strcmp(base, "monkey12.jpg") == 0 || strcmp(base, "truncated.jpg") == 0;
}

/* ---- walking testdata ---- */

static struct {
	const char *root, *out, *err;
	unsigned checked, failed_seen, bad;
	char first_bad[512];
} walk;

static int
check_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	const char *rel = path + strlen(walk.root) + 1;
	unsigned sw, sh, tw, th;
	char *o;

	(void)st;
	(void)f;
	if (flag != FTW_F || strstr(rel, "/.") || rel[0] == '.')
		return 0;
	if (!expected_to_fail(rel) && !tu_is_image(path) && !tu_is_other_image(path))
		return 0;       /* LICENSE, README, make.sh: skipped */
	o = out_name(walk.out, "256", rel);
	if (expected_to_fail(rel)) {
		if (access(o, F_OK) == 0 || strstr(walk.err, rel) == NULL) {
			if (!walk.bad++)
				snprintf(walk.first_bad, sizeof(walk.first_bad),
				    "%s: broken source has a thumbnail or is not named on stderr", rel);
		} else {
			walk.failed_seen++;
		}
	} else if (tu_is_other_image(path)) {
		/* WebP, TIFF, GIF, HEIF, AVIF: every one in testdata/made is 227x149 but the
		 * 64x48 grey+alpha TIFF */
		unsigned ew = strstr(rel, "grey-alpha") ? 64 : 227, eh = ew == 64 ? 48 : 149;

		if (tu_image_size(o, &tw, &th) != 0 || tw != ew || th != eh) {
			if (!walk.bad++)
				snprintf(walk.first_bad, sizeof(walk.first_bad), "%s: missing or wrong", o);
		} else {
			walk.checked++;
		}
	} else if (tu_image_size(path, &sw, &sh) != 0 || tu_image_size(o, &tw, &th) != 0 ||
	    !(tu_jpeg_orientation(path) >= 5 ? fits(sh, sw, 256, 256, tw, th) :
	    fits(sw, sh, 256, 256, tw, th))) {
		if (!walk.bad++)
			snprintf(walk.first_bad, sizeof(walk.first_bad), "%s: missing or wrong size", o);
	} else {
		walk.checked++;
	}
	free(o);
	return 0;
}

static int
count_files(const char *dir, const char *needle)
{
	char *cmd, line[4096];
	FILE *p;
	int n = 0, c;
	size_t len = 0;

	/* NUL-separated: a file name may hold a newline */
	if (asprintf(&cmd, "find '%s' -type f -print0 2>/dev/null", dir) < 0)
		ck_abort_msg("asprintf");
	p = popen(cmd, "r");
	while ((c = fgetc(p)) != EOF) {
		if (c != 0) {
			if (len + 1 < sizeof(line))
				line[len++] = (char)c;
			continue;
		}
		line[len] = '\0';
		len = 0;
		if (needle ? strstr(line, needle) != NULL : strstr(line, "/.thumbr.lock") == NULL)
			n++;
	}
	pclose(p);
	free(cmd);
	return n;
}

/* The counts of the last summary line on a run's stderr. */
static void
summary(const char *err, unsigned long *images, unsigned long *thumbs, unsigned long *failed,
    unsigned long *skipped)
{
	const char *sum = strstr(err, "thumbr: ");

	while (sum && strstr(sum + 1, "thumbr: "))
		sum = strstr(sum + 1, "thumbr: ");
	ck_assert_ptr_nonnull(sum);
	ck_assert_int_eq(sscanf(sum, "thumbr: %lu images, %lu thumbnails, %lu failed, %lu skipped",
	    images, thumbs, failed, skipped), 4);
}

START_TEST(testdata_every_thumbnail)
{
	char *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), "-j2", (char *)tu_testdata(), out, NULL };
	int rc = tu_run(argv, NULL, &err);
	unsigned long images, thumbs, failed, skipped;

	ck_assert_msg(rc == 1, "exit %d (testdata holds broken files, want 1): %s", rc, err);
	memset(&walk, 0, sizeof(walk));
	walk.root = tu_testdata();
	walk.out = out;
	walk.err = err;
	nftw(walk.root, check_one, 16, FTW_PHYS);
	ck_assert_msg(walk.bad == 0, "%u bad, first: %s", walk.bad, walk.first_bad);
	ck_assert_uint_ge(walk.checked, 150);
	ck_assert_uint_ge(walk.failed_seen, 16);
	/* the summary agrees with what is on disk and on stderr */
	summary(err, &images, &thumbs, &failed, &skipped);
	ck_assert_uint_eq(thumbs, walk.checked);
	ck_assert_uint_eq(failed, walk.failed_seen);
	ck_assert_int_eq(count_files(out, NULL), (int)walk.checked);
	ck_assert_int_eq(count_files(out, ".thumbr-"), 0);
	free(out);
	free(err);
}
END_TEST

/* A tree of n copies of the orientation examples (about 350 KB each). */
static void
make_tree(const char *dir, int copies)
{
	char *src = tu_join(tu_testdata(), "exif-orientation");
	DIR *d = opendir(src);
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, ".jpg") == NULL)
			continue;
		for (int c = 0; c < copies; c++) {
			char *from = tu_join(src, de->d_name), *to;

			if (asprintf(&to, "%s/copy %d/%s", dir, c, de->d_name) < 0)
				ck_abort_msg("asprintf");
			ck_assert_int_eq(tu_copy(from, to), 0);
			free(from);
			free(to);
		}
	}
	closedir(d);
	free(src);
}

START_TEST(two_sizes_one_run)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), "-s", "128", "-s", "1024", "-s", "100x40", in, out,
	    NULL };
	unsigned tw, th, sw, sh;
	char *src, *a, *b;

	make_tree(in, 1);
	ck_assert_int_eq(tu_run(argv, NULL, &err), 0);
	src = tu_join(in, "copy 0/Landscape_1.jpg");
	ck_assert_int_eq(tu_image_size(src, &sw, &sh), 0);
	for (int i = 0; i < 3; i++) {
		static const char *names[] = { "128", "1024", "100x40" };
		static const unsigned bw[] = { 128, 1024, 100 }, bh[] = { 128, 1024, 40 };

		if (asprintf(&a, "%s/%s/copy 0/Landscape_1.jpg", out, names[i]) < 0)
			ck_abort_msg("asprintf");
		ck_assert_int_eq(tu_image_size(a, &tw, &th), 0);
		ck_assert_msg(fits(sw, sh, bw[i], bh[i], tw, th), "%s: %ux%u from %ux%u", names[i],
		    tw, th, sw, sh);
		free(a);
	}
	ck_assert_int_eq(count_files(out, NULL), 3 * 18);
	(void)b;
	free(src), free(in), free(out), free(err);
}
END_TEST

/* Every Landscape_N / Portrait_N thumbnail looks like _1's: the EXIF examples were
 * re-encoded, so about 30 dB is a match and about 9 dB a wrong flip. */
START_TEST(exif_orientation_applied)
{
	char *out = tu_join(tmp, "out"), *in = tu_join(tu_testdata(), "exif-orientation");
	char *argv[] = { (char *)tu_bin(), in, out, NULL };
	const char *kinds[] = { "Landscape", "Portrait" };

	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	for (int k = 0; k < 2; k++) {
		char *ref;
		unsigned rw, rh;
		unsigned char *rp;

		if (asprintf(&ref, "%s/256/%s_1.jpg", out, kinds[k]) < 0)
			ck_abort_msg("asprintf");
		rp = tu_jpeg_rgb(ref, &rw, &rh);
		ck_assert_ptr_nonnull(rp);
		for (int n = 0; n <= 8; n++) {
			char *t;
			unsigned w, h;
			unsigned char *px;
			double db;

			if (asprintf(&t, "%s/256/%s_%d.jpg", out, kinds[k], n) < 0)
				ck_abort_msg("asprintf");
			px = tu_jpeg_rgb(t, &w, &h);
			ck_assert_msg(px != NULL && w == rw && h == rh, "%s: %ux%u, want %ux%u", t,
			    w, h, rw, rh);
			db = tu_psnr(rp, px, w, h);
			ck_assert_msg(db >= 24, "%s: %.1f dB against %s_1", t, db, kinds[k]);
			free(px);
			free(t);
		}
		free(rp);
		free(ref);
	}
	free(out);
	free(in);
}
END_TEST

START_TEST(no_rotate_keeps_stored_pixels)
{
	char *out = tu_join(tmp, "out"), *in = tu_join(tu_testdata(), "exif-orientation");
	char *argv[] = { (char *)tu_bin(), "--no-rotate", in, out, NULL };
	char *src = tu_join(in, "Landscape_6.jpg"), *t = tu_join(out, "256/Landscape_6.jpg");
	unsigned sw, sh, w, h;

	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	ck_assert_int_eq(tu_jpeg_orientation(src), 6);
	ck_assert_int_eq(tu_image_size(src, &sw, &sh), 0);
	ck_assert_int_eq(tu_image_size(t, &w, &h), 0);
	ck_assert_msg(fits(sw, sh, 256, 256, w, h), "%ux%u from stored %ux%u", w, h, sw, sh);
	ck_assert_int_eq(tu_jpeg_orientation(t), 1);    /* no tag in the output either */
	free(out), free(in), free(src), free(t);
}
END_TEST

START_TEST(big_sources_bypass_the_ring)
{
	/* every source is larger than a 64k slot: the worker reads it by path */
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), "-j2", "--slot-size", "64k", in, out, NULL };

	make_tree(in, 1);
	ck_assert_int_eq(tu_run(argv, NULL, &err), 0);
	ck_assert_int_eq(count_files(out, NULL), 18);
	free(in), free(out), free(err);
}
END_TEST

START_TEST(largest_slot_leaves_the_memory_ceiling_to_decoding)
{
	/* a 512M slot makes a 2 GiB ring, which the worker maps: the ceiling comes on top */
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), "-j1", "--slot-size", "512M", "--max-memory", "256M",
	    in, out, NULL };

	make_tree(in, 1);
	ck_assert_msg(tu_run(argv, NULL, &err) == 0, "%s", err);
	ck_assert_int_eq(count_files(out, NULL), 18);
	free(in), free(out), free(err);
}
END_TEST

START_TEST(libvips_images_stream_in_strips)
{
	/* 10000x10000 pixels (300 MB decoded, 0.3 MB of TIFF) under a 256M ceiling: the rows
	 * come from libvips a strip at a time, never the whole image at once */
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *src = tu_join(in, "big.tif");
	char *argv[] = { (char *)tu_bin(), "-j1", "--max-memory", "256M", in, out, NULL };
	VipsImage *im;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	fprintf(stderr, "SKIPPED libvips_images_stream_in_strips: no memory ceiling under a "
	    "sanitizer (its shadow memory needs terabytes of address space)\n");
	free(in), free(out), free(src);
	return;
#endif
	ck_assert_int_eq(mkdir(in, 0755), 0);
	ck_assert_int_eq(vips_black(&im, 10000, 10000, "bands", 3, NULL), 0);
	ck_assert_int_eq(vips_tiffsave(im, src, "compression",
	    VIPS_FOREIGN_TIFF_COMPRESSION_DEFLATE, NULL), 0);
	g_object_unref(im);
	ck_assert_msg(tu_run(argv, NULL, &err) == 0, "%s", err);
	ck_assert_int_eq(count_files(out, NULL), 1);
	free(in), free(out), free(err), free(src);
}
END_TEST

START_TEST(collision_reported_not_overwritten)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), in, out, NULL };
	char *png = tu_join(tu_testdata(), "pngsuite/basn2c08.png");
	char *jpg = tu_join(tu_testdata(), "libjpeg-turbo/testorig.jpg");
	char *a_png = tu_join(in, "a.png"), *a_jpg = tu_join(in, "a.jpg"), *t;
	unsigned w, h, sw, sh;

	ck_assert_int_eq(tu_copy(png, a_png), 0);
	ck_assert_int_eq(tu_copy(jpg, a_jpg), 0);
	ck_assert_int_eq(tu_run(argv, NULL, &err), 1);
	ck_assert_msg(strstr(err, "a.png: output name a.jpg is taken by a.jpg") != NULL, "%s", err);
	t = tu_join(out, "256/a.jpg");
	ck_assert_int_eq(tu_image_size(t, &w, &h), 0);
	ck_assert_int_eq(tu_image_size(a_jpg, &sw, &sh), 0);
	ck_assert_msg(fits(sw, sh, 256, 256, w, h), "a.jpg's thumbnail is %ux%u", w, h);
	free(in), free(out), free(err), free(png), free(jpg), free(a_png), free(a_jpg), free(t);
}
END_TEST

START_TEST(mirrors_odd_names_and_skips)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), in, out, NULL };
	char *jpg = tu_join(tu_testdata(), "libjpeg-turbo/testorig.jpg");
	const char *names[] = { "deep/er/still/x.JPG", "with space/été.jpeg", "bytes/\xff\xfe.jpg",
	    "-dash.jpg", "noext" };
	const char *outs[] = { "deep/er/still/x.jpg", "with space/été.jpg", "bytes/\xff\xfe.jpg",
	    "-dash.jpg", "noext.jpg" };

	for (size_t i = 0; i < 5; i++) {
		char *p = tu_join(in, names[i]);

		ck_assert_int_eq(tu_copy(jpg, p), 0);
		free(p);
	}
	{
		char *t = tu_join(in, "notes.txt"), *h = tu_join(in, ".hidden/h.jpg");
		char *d = tu_join(in, ".dot.jpg");

		ck_assert_int_eq(tu_write(t, "hello\n", 6), 0);
		ck_assert_int_eq(tu_copy(jpg, h), 0);
		ck_assert_int_eq(tu_copy(jpg, d), 0);
		free(t), free(h), free(d);
	}
	ck_assert_int_eq(tu_run(argv, NULL, &err), 0);
	for (size_t i = 0; i < 5; i++) {
		char *p;
		unsigned w, h;

		if (asprintf(&p, "%s/256/%s", out, outs[i]) < 0)
			ck_abort_msg("asprintf");
		ck_assert_msg(tu_image_size(p, &w, &h) == 0, "no %s", p);
		free(p);
	}
	ck_assert_int_eq(count_files(out, NULL), 5);
	ck_assert_msg(strstr(err, "5 images, 5 thumbnails, 0 failed, 1 skipped") != NULL, "%s", err);
	free(in), free(out), free(err), free(jpg);
}
END_TEST

START_TEST(output_inside_input_is_not_scanned)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(in, "thumbs"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), in, out, NULL };

	make_tree(in, 1);
	ck_assert_int_eq(tu_run(argv, NULL, &err), 0);
	free(err);
	ck_assert_int_eq(tu_run(argv, NULL, &err), 0);  /* a second run must not see thumbs/ */
	ck_assert_msg(strstr(err, "18 images, 0 thumbnails, 0 failed, 0 skipped, 18 unchanged") !=
	    NULL, "%s", err);
	ck_assert_int_eq(count_files(out, NULL), 18);
	free(in), free(out), free(err);
}
END_TEST


/* ---- fidelity: colour, alpha, formats, crop, metadata ---- */

/* Mean absolute error of a thumbnail against testorig.jpg, the sRGB source every colour case
 * in testdata/made was converted from (227x149, so the thumbnail is not resized). */
static double
colour_error(const char *thumb)
{
	char *ref = tu_join(tu_testdata(), "libjpeg-turbo/testorig.jpg");
	unsigned rw, rh, w, h;
	unsigned char *a = tu_jpeg_rgb(ref, &rw, &rh), *b = tu_jpeg_rgb(thumb, &w, &h);
	double e;

	ck_assert_msg(a && b && rw == w && rh == h, "%s: cannot compare with %s", thumb, ref);
	e = tu_mae(a, b, (size_t)w * h * 3);
	free(a), free(b), free(ref);
	return e;
}

/* Ignoring the profiles, these sources differ from testorig.jpg by 7.0 (Adobe RGB) and 24 to
 * 28 (CMYK, YCCK) on average (measured with Pillow, which ignores them); converted through
 * their profiles thumbr's thumbnails are within 2.7 to 3.6, JPEG's own error included. */
START_TEST(colour_profiles_honoured)
{
	char *out = tu_join(tmp, "out"), *in = tu_join(tu_testdata(), "made");
	char *argv[] = { (char *)tu_bin(), in, out, NULL };
	static const struct { const char *name; double max; } cases[] = {
		{ "adobergb.jpg", 4.0 }, { "cmyk-tagged.jpg", 5.0 }, { "cmyk-untagged.jpg", 5.0 },
		{ "ycck.jpg", 5.0 }, { "format-tif.jpg", 3.0 }, { "rgb16.jpg", 3.0 },
		{ "rgb16-tiff.jpg", 3.0 }, { "restart.jpg", 3.0 }, { "progressive.jpg", 3.0 },
		{ "arithmetic.jpg", 3.0 },
	};

	ck_assert_int_eq(tu_run(argv, NULL, NULL), 1);  /* truncated.jpg */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t;
		double e;

		if (asprintf(&t, "%s/256/%s", out, cases[i].name) < 0)
			ck_abort_msg("asprintf");
		e = colour_error(t);
		ck_assert_msg(e <= cases[i].max, "%s: mean error %.2f, want <= %.1f", cases[i].name,
		    e, cases[i].max);
		ck_assert_int_eq(tu_jpeg_components(t), 3);
		free(t);
	}
	{
		char *g = tu_join(out, "256/grey.jpg");

		ck_assert_int_eq(tu_jpeg_components(g), 1);     /* grey stays grey */
		free(g);
	}
	free(out), free(in);
}
END_TEST

/* alpha.png: testorig.jpg, opaque at the top and fading to transparent at the bottom */
START_TEST(alpha_flattened_onto_background)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *out2 = tu_join(tmp, "out2");
	char *src = tu_join(tu_testdata(), "made/alpha.png"), *dst = tu_join(in, "alpha.png");
	char *a1[] = { (char *)tu_bin(), in, out, NULL };
	char *a2[] = { (char *)tu_bin(), "--background", "#000000", in, out2, NULL };
	char *t1 = tu_join(out, "256/alpha.jpg"), *t2 = tu_join(out2, "256/alpha.jpg");
	unsigned w, h, w2, h2;
	unsigned char *p1, *p2;
	double top = 0, bot1 = 0, bot2 = 0;

	ck_assert_int_eq(tu_copy(src, dst), 0);
	ck_assert_int_eq(tu_run(a1, NULL, NULL), 0);
	ck_assert_int_eq(tu_run(a2, NULL, NULL), 0);
	p1 = tu_jpeg_rgb(t1, &w, &h);
	p2 = tu_jpeg_rgb(t2, &w2, &h2);
	ck_assert(p1 && p2 && w == w2 && h == h2);
	for (unsigned x = 0; x < w * 3; x++) {
		bot1 += p1[(size_t)(h - 1) * w * 3 + x];
		bot2 += p2[(size_t)(h - 1) * w * 3 + x];
		top += abs((int)p1[x] - (int)p2[x]);
	}
	bot1 /= w * 3, bot2 /= w * 3, top /= w * 3;
	ck_assert_msg(bot1 > 240, "transparent bottom on white: %.1f", bot1);
	ck_assert_msg(bot2 < 15, "transparent bottom on black: %.1f", bot2);
	ck_assert_msg(top < 8, "opaque top differs by %.1f between backgrounds", top);
	free(p1), free(p2), free(in), free(out), free(out2), free(src), free(dst), free(t1), free(t2);
}
END_TEST

/* Half opaque white, half transparent black: resampled without premultiplying, the seam
 * would turn grey; PNG output keeps the alpha. */
START_TEST(png_output_keeps_alpha_without_fringes)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out");
	char *src = tu_join(in, "half.png"), *t = tu_join(out, "16/half.png");
	char *argv[] = { (char *)tu_bin(), "--format", "png", "-s", "16", in, out, NULL };
	unsigned char *px = calloc(64 * 64, 4), *o;
	unsigned w, h, seen = 0;

	for (unsigned y = 0; y < 64; y++)
		for (unsigned x = 0; x < 32; x++)
			memset(px + (y * 64 + x) * 4, 255, 4);
	mkdir(in, 0755);
	ck_assert_int_eq(tu_write_png_rgba(src, px, 64, 64), 0);
	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	o = tu_png_rgba(t, &w, &h);
	ck_assert_msg(o != NULL, "no %s", t);
	ck_assert_uint_eq(w, 16);
	ck_assert_uint_eq(h, 16);
	for (unsigned i = 0; i < w * h; i++) {
		unsigned char *q = o + i * 4;

		if (q[3] == 0)
			continue;
		seen++;
		ck_assert_msg(q[0] >= 250 && q[1] >= 250 && q[2] >= 250,
		    "pixel %u: %u,%u,%u alpha %u: a dark fringe", i, q[0], q[1], q[2], q[3]);
	}
	ck_assert_uint_gt(seen, 16 * 8);
	free(px), free(o), free(in), free(out), free(src), free(t);
}
END_TEST

START_TEST(webp_output_named_and_encoded)
{
	char *out = tu_join(tmp, "out"), *in = tu_join(tu_testdata(), "exif-orientation");
	char *argv[] = { (char *)tu_bin(), "--format", "webp", in, out, NULL };
	char *t = tu_join(out, "256/Landscape_1.webp");
	size_t n;
	char *p;

	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	p = tu_slurp(t, &n);
	ck_assert_msg(p && n > 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0,
	    "%s is not WebP", t);
	ck_assert_int_eq(count_files(out, ".webp"), 18);
	free(p), free(t), free(out), free(in);
}
END_TEST

START_TEST(crop_fills_the_box)
{
	char *out = tu_join(tmp, "out"), *in = tu_join(tu_testdata(), "exif-orientation");
	char *argv[] = { (char *)tu_bin(), "-s", "100x100-crop", "-s", "64x32-attention",
	    "-s", "50-entropy", in, out, NULL };
	static const char *names[] = { "100x100-crop", "64x32-attention", "50-entropy" };
	static const unsigned bw[] = { 100, 64, 50 }, bh[] = { 100, 32, 50 };

	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	for (int i = 0; i < 3; i++)
		for (int n = 1; n <= 8; n++) {
			char *t;
			unsigned w, h;

			if (asprintf(&t, "%s/%s/Portrait_%d.jpg", out, names[i], n) < 0)
				ck_abort_msg("asprintf");
			ck_assert_int_eq(tu_image_size(t, &w, &h), 0);
			ck_assert_msg(w == bw[i] && h == bh[i], "%s: %ux%u", t, w, h);
			free(t);
		}
	/* the centre crop is taken from the image as displayed */
	{
		char *a = tu_join(out, "100x100-crop/Portrait_1.jpg");
		char *b = tu_join(out, "100x100-crop/Portrait_6.jpg");
		unsigned w, h;
		unsigned char *pa = tu_jpeg_rgb(a, &w, &h), *pb = tu_jpeg_rgb(b, &w, &h);
		double db = tu_psnr(pa, pb, w, h);

		ck_assert_msg(db >= 24, "Portrait_6 crop is %.1f dB from Portrait_1's", db);
		free(a), free(b), free(pa), free(pb);
	}
	free(out), free(in);
}
END_TEST

START_TEST(metadata_stripped_unless_kept)
{
	char *out = tu_join(tmp, "out"), *out2 = tu_join(tmp, "out2");
	char *in = tu_join(tu_testdata(), "exif-orientation");
	char *a1[] = { (char *)tu_bin(), in, out, NULL };
	char *a2[] = { (char *)tu_bin(), "--keep-metadata", "--progressive", in, out2, NULL };
	char *src = tu_join(in, "Landscape_6.jpg");
	char *t1 = tu_join(out, "256/Landscape_6.jpg"), *t2 = tu_join(out2, "256/Landscape_6.jpg");
	char *c1 = tu_join(tu_testdata(), "made/adobergb.jpg");

	ck_assert(tu_jpeg_has_marker(src, 0xe1));       /* the source has EXIF */
	ck_assert_int_eq(tu_run(a1, NULL, NULL), 0);
	ck_assert_int_eq(tu_run(a2, NULL, NULL), 0);
	ck_assert(!tu_jpeg_has_marker(t1, 0xe1));       /* no EXIF, no XMP */
	ck_assert(!tu_jpeg_has_marker(t1, 0xe2));       /* no ICC */
	ck_assert(!tu_jpeg_has_marker(t1, 0xc2));       /* baseline */
	ck_assert(tu_jpeg_has_marker(t2, 0xe1));        /* EXIF kept ... */
	ck_assert_int_eq(tu_jpeg_orientation(t2), 1);   /* ... but the pixels are turned */
	ck_assert(tu_jpeg_has_marker(t2, 0xc2));        /* progressive */
	free(out), free(out2), free(in), free(src), free(t1), free(t2), free(c1);
}
END_TEST

START_TEST(broken_and_unsupported_refused)
{
	static const unsigned char bmp[16] = { 'B', 'M', 0x3e, 0, 0, 0, 0, 0, 0, 0, 0x3e };
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), in, out, NULL };
	char *t = tu_join(in, "t.jpg"), *m = tu_join(in, "m.jpg"), *b = tu_join(in, "bmp.jpg");
	char *ts = tu_join(tu_testdata(), "made/truncated.jpg");
	char *ms = tu_join(tu_testdata(), "libjpeg-turbo/monkey12.jpg");

	ck_assert_int_eq(tu_copy(ts, t), 0);
	ck_assert_int_eq(tu_copy(ms, m), 0);
	ck_assert_int_eq(tu_write(b, bmp, sizeof(bmp)), 0);
	ck_assert_int_eq(tu_run(argv, NULL, &err), 1);
	ck_assert_msg(strstr(err, "t.jpg: corrupt JPEG data") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "m.jpg: unsupported JPEG data precision 12") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "bmp.jpg: not a") != NULL, "%s", err);
	ck_assert_int_eq(count_files(out, NULL), 0);
	free(in), free(out), free(err), free(t), free(m), free(b), free(ts), free(ms);
}
END_TEST


/* ---- cron-grade runs ---- */

/* "name mtime" of every thumbnail below dir, sorted, as one string */
static char *
snapshot(const char *dir)
{
	char *cmd, *out = NULL;
	FILE *p;
	size_t n = 0, cap = 0;
	char line[4096];

	if (asprintf(&cmd, "cd '%s' && find . -type f ! -name '.*' -printf '%%p %%T@\\n' | sort",
	    dir) < 0)
		ck_abort_msg("asprintf");
	p = popen(cmd, "r");
	while (fgets(line, sizeof(line), p)) {
		size_t l = strlen(line);

		if (n + l + 1 > cap) {
			cap = (n + l + 1) * 2;
			out = realloc(out, cap);
		}
		memcpy(out + n, line, l + 1);
		n += l;
	}
	pclose(p);
	free(cmd);
	return out ? out : strdup("");
}

/* lines of b not in a */
static int
changed_lines(const char *a, const char *b)
{
	int n = 0;
	char *copy = strdup(b), *save = NULL;

	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *needle;

		if (asprintf(&needle, "%s\n", l) < 0)
			ck_abort_msg("asprintf");
		n += strstr(a, needle) == NULL;
		free(needle);
	}
	free(copy);
	return n;
}

START_TEST(rerun_rebuilds_exactly_what_changed)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), in, out, NULL };
	char *q60[] = { (char *)tu_bin(), "--quality", "60", in, out, NULL };
	char *force[] = { (char *)tu_bin(), "--quality", "60", "--force", in, out, NULL };
	char *a, *b, *one = tu_join(in, "copy 0/Landscape_3.jpg");
	struct timespec later[2] = { { 0, UTIME_OMIT }, { 0, UTIME_NOW } };

	make_tree(in, 1);
	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	a = snapshot(out);
	nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	ck_assert_int_eq(tu_run(argv, NULL, &err), 0);
	ck_assert_msg(strstr(err, "0 thumbnails, 0 failed, 0 skipped, 18 unchanged"), "%s", err);
	free(err);
	b = snapshot(out);
	ck_assert_str_eq(a, b);                         /* not even an mtime moved */
	free(b);
	ck_assert_int_eq(utimensat(AT_FDCWD, one, later, 0), 0);
	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	b = snapshot(out);
	ck_assert_int_eq(changed_lines(a, b), 1);
	free(a);
	a = b;
	ck_assert_int_eq(tu_run(q60, NULL, NULL), 0);   /* an option that shapes the bytes */
	b = snapshot(out);
	ck_assert_int_eq(changed_lines(a, b), 18);
	free(a);
	a = b;
	ck_assert_int_eq(tu_run(q60, NULL, NULL), 0);
	b = snapshot(out);
	ck_assert_int_eq(changed_lines(a, b), 0);
	free(b);
	ck_assert_int_eq(tu_run(force, NULL, NULL), 0);
	b = snapshot(out);
	ck_assert_int_eq(changed_lines(a, b), 18);
	free(a), free(b), free(in), free(out), free(one);
}
END_TEST

START_TEST(prune_deletes_only_orphans_it_made)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *sout = NULL;
	char *argv[] = { (char *)tu_bin(), in, out, NULL };
	char *dry[] = { (char *)tu_bin(), "-n", "--prune", in, out, NULL };
	char *prune[] = { (char *)tu_bin(), "--prune", in, out, NULL };
	char *gone = tu_join(in, "copy 0/Portrait_2.jpg");
	char *thumb = tu_join(out, "256/copy 0/Portrait_2.jpg");
	char *foreign = tu_join(out, "256/copy 0/mine.jpg");
	char *lonely_src = tu_join(in, "alone/x.jpg"), *lonely_dir = tu_join(out, "256/alone");
	char *from = tu_join(tu_testdata(), "libjpeg-turbo/testorig.jpg");

	make_tree(in, 1);
	ck_assert_int_eq(tu_copy(from, lonely_src), 0);
	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	ck_assert_int_eq(tu_write(foreign, "not thumbr's", 12), 0);     /* no record */
	ck_assert_int_eq(unlink(gone), 0);
	ck_assert_int_eq(unlink(lonely_src), 0);
	ck_assert_int_eq(tu_run(dry, &sout, NULL), 0);
	ck_assert_msg(strstr(sout, "prune ") && strstr(sout, "copy 0/Portrait_2.jpg"), "%s", sout);
	ck_assert_int_eq(access(thumb, F_OK), 0);       /* the dry run deleted nothing */
	free(sout);
	ck_assert_int_eq(tu_run(prune, NULL, NULL), 0);
	ck_assert_int_ne(access(thumb, F_OK), 0);
	ck_assert_int_eq(access(foreign, F_OK), 0);     /* never what thumbr did not make */
	ck_assert_int_ne(access(lonely_dir, F_OK), 0);  /* a folder left empty goes too */
	ck_assert_int_eq(count_files(out, NULL), 17 + 1);
	free(in), free(out), free(gone), free(thumb), free(foreign), free(lonely_src);
	free(lonely_dir), free(from);
}
END_TEST

START_TEST(second_run_on_one_output_exits_75)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), in, out, NULL };
	char *wait[] = { (char *)tu_bin(), "--wait", in, out, NULL };
	char *lockpath = tu_join(out, ".thumbr.lock"), pid[32];
	int fd;
	pid_t waiter;

	make_tree(in, 1);
	mkdir(out, 0755);
	fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);     /* not for the waiter */
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);        /* as a running thumbr would */
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	ck_assert_int_eq(write(fd, pid, strlen(pid)), (ssize_t)strlen(pid));
	ck_assert_int_eq(tu_run(argv, NULL, &err), 75);
	pid[strlen(pid) - 1] = '\0';
	ck_assert_msg(strstr(err, pid) != NULL, "the holder's pid %s is not named: %s", pid, err);
	ck_assert_int_eq(count_files(out, NULL), 0);
	waiter = tu_spawn(wait);                        /* --wait: waits, then runs */
	nanosleep(&(struct timespec){ 0, 300 * 1000 * 1000 }, NULL);
	ck_assert_int_eq(count_files(out, NULL), 0);
	close(fd);
	ck_assert_int_eq(tu_wait(waiter), 0);
	ck_assert_int_eq(count_files(out, NULL), 18);
	free(in), free(out), free(err), free(lockpath);
}
END_TEST

START_TEST(quiet_verbose_and_report)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *json = tu_join(tmp, "r.json");
	char *o2 = tu_join(tmp, "o2"), *o3 = tu_join(tmp, "o3");
	char *plain[] = { (char *)tu_bin(), in, out, NULL };
	char *quiet[] = { (char *)tu_bin(), "-q", in, o2, NULL };
	char *verbose[] = { (char *)tu_bin(), "-v", "--report", json, in, o3, NULL };
	char *sout = NULL, *serr = NULL, *j, *bad = tu_join(in, "bad.jpg");
	int lines = 0;

	make_tree(in, 1);
	ck_assert_int_eq(tu_run(plain, &sout, &serr), 0);       /* no terminal: one line */
	ck_assert_str_eq(sout, "");
	for (char *c = serr; *c; c++)
		lines += *c == '\n';
	ck_assert_msg(lines == 1, "%d lines: %s", lines, serr);
	free(sout), free(serr);
	ck_assert_int_eq(tu_write(bad, "not a jpeg", 10), 0);
	ck_assert_int_eq(tu_run(quiet, &sout, &serr), 1);       /* -q: the error only */
	ck_assert_str_eq(sout, "");
	ck_assert_msg(strstr(serr, "bad.jpg: not a supported image") && !strstr(serr, "images,"),
	    "%s", serr);
	free(sout), free(serr);
	ck_assert_int_eq(tu_run(verbose, &sout, &serr), 1);     /* -v: each thumbnail */
	lines = 0;
	for (char *c = sout; *c; c++)
		lines += *c == '\n';
	ck_assert_int_eq(lines, 18);
	ck_assert_ptr_nonnull(strstr(sout, "build "));
	j = tu_slurp(json, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_ptr_nonnull(strstr(j, "\"thumbnails\": 18"));
	ck_assert_ptr_nonnull(strstr(j, "copy 0/Landscape_5.jpg\", \"width\": "));
	ck_assert_ptr_nonnull(strstr(j, "bad.jpg\", \"reason\": \"not a supported image\""));
	if (access("/usr/bin/python3", X_OK) == 0) {
		char *cmd;

		if (asprintf(&cmd, "/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1]));"
		    " assert len(r[\"thumbnails\"]) == 18 and len(r[\"failures\"]) == 1' '%s'",
		    json) < 0)
			ck_abort_msg("asprintf");
		ck_assert_msg(system(cmd) == 0, "the report does not parse as JSON");
		free(cmd);
	} else {
		fprintf(stderr, "SKIPPED JSON parse check: no /usr/bin/python3\n");
	}
	free(j), free(sout), free(serr), free(in), free(out), free(json), free(o2), free(o3);
	free(bad);
}
END_TEST

START_TEST(files_from_a_list)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *list = tu_join(tmp, "list");
	char *argv[] = { (char *)tu_bin(), "--files-from", list, "-0", in, out, NULL };
	char *abs = realpath(tmp, NULL), *body;
	size_t n;
	int len;

	make_tree(in, 2);
	/* relative to INPUT_DIR, prefixed with INPUT_DIR as written, absolute, and outside */
	len = asprintf(&body, "copy 0/Landscape_1.jpg%c%s/copy 1/Portrait_2.jpg%c"
	    "%s/in/copy 0/Portrait_8.jpg%c/etc/passwd%c", 0, in, 0, abs, 0, 0);
	ck_assert_int_gt(len, 0);
	n = (size_t)len;
	ck_assert_int_eq(tu_write(list, body, n), 0);
	ck_assert_int_eq(tu_run(argv, NULL, NULL), 1);  /* /etc/passwd is not under INPUT_DIR */
	ck_assert_int_eq(count_files(out, NULL), 3);
	free(in), free(out), free(list), free(abs), free(body);
}
END_TEST

START_TEST(shards_add_up_to_one_run)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *one = tu_join(tmp, "one");
	char *argv[] = { (char *)tu_bin(), in, one, NULL };
	char *a, *b;
	int total = 0;

	make_tree(in, 3);
	ck_assert_int_eq(tu_run(argv, NULL, NULL), 0);
	for (int k = 1; k <= 3; k++) {
		char shard[16], *s;
		char *sh[] = { (char *)tu_bin(), "--shard", shard, in, out, NULL };
		int before = count_files(out, NULL);

		snprintf(shard, sizeof(shard), "%d/3", k);
		ck_assert_int_eq(tu_run(sh, NULL, &s), 0);
		ck_assert_msg(strstr(s, " 0 unchanged"), "shard %d redid work: %s", k, s);
		total += count_files(out, NULL) - before;
		free(s);
	}
	ck_assert_int_eq(total, 54);
	a = snapshot(one);
	b = snapshot(out);
	/* same names (the mtimes differ) */
	for (char *p = a, *q = b; *p && *q; p = strchr(p, '\n') + 1, q = strchr(q, '\n') + 1)
		ck_assert_int_eq(strncmp(p, q, (size_t)(strchr(p, ' ') - p)), 0);
	free(a), free(b), free(in), free(out), free(one);
}
END_TEST

/* ---- exit statuses ---- */

START_TEST(usage_errors_exit_2)
{
	char *err = NULL, *out = NULL;
	char *o = tu_join(tmp, "o"), *missing = tu_join(tmp, "missing");
	char *a1[] = { (char *)tu_bin(), NULL };
	char *a2[] = { (char *)tu_bin(), missing, o, NULL };
	char *a3[] = { (char *)tu_bin(), "--bogus", tmp, o, NULL };
	char *a4[] = { (char *)tu_bin(), "-s", "0", tmp, o, NULL };
	char *a5[] = { (char *)tu_bin(), "--quality", "101", tmp, o, NULL };
	char *h[] = { (char *)tu_bin(), "--help", NULL };
	char *v[] = { (char *)tu_bin(), "-V", NULL };

	ck_assert_int_eq(tu_run(a1, NULL, &err), 2);
	ck_assert_ptr_nonnull(strstr(err, "usage: thumbr"));
	free(err);
	ck_assert_int_eq(tu_run(a2, NULL, &err), 2);
	ck_assert_msg(strstr(err, missing) != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(tu_run(a3, NULL, NULL), 2);
	ck_assert_int_eq(tu_run(a4, NULL, NULL), 2);
	ck_assert_int_eq(tu_run(a5, NULL, NULL), 2);
	ck_assert_int_eq(tu_run(h, &out, NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: thumbr"));
	free(out);
	ck_assert_int_eq(tu_run(v, &out, NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "thumbr "));
	free(out), free(o), free(missing);
}
END_TEST

START_TEST(uncreatable_output_is_fatal)
{
	char *in = tu_join(tmp, "in"), *file = tu_join(tmp, "file");
	char *out = tu_join(file, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), in, out, NULL };

	make_tree(in, 1);
	ck_assert_int_eq(tu_write(file, "x", 1), 0);
	ck_assert_int_eq(tu_run(argv, NULL, &err), 3);
	ck_assert_msg(strstr(err, file) != NULL, "%s", err);
	free(in), free(file), free(out), free(err);
}
END_TEST

/* ---- a worker dies mid-run ---- */

/* A child of parent, or 0. */
static pid_t
child_of(pid_t parent)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	while (d && (de = readdir(d)) != NULL && found == 0) {
		char path[300], buf[512], *rp;
		FILE *f;
		int ppid;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
		    sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == parent)
			found = (pid_t)atoi(de->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/* Start a -j2 run over six copies of the orientation examples into in and out (108 images:
 * long enough to catch a worker busy); its pid, and in *worker a worker seen running. */
static pid_t
spawn_busy(const char *in, const char *out, pid_t *worker)
{
	char *argv[] = { (char *)tu_bin(), "-j2", "-s", "1024", (char *)in, (char *)out, NULL };
	pid_t pid;

	make_tree(in, 6);
	pid = tu_spawn(argv);
	*worker = 0;
	for (int i = 0; i < 2000 && *worker == 0; i++) {
		nanosleep(&(struct timespec){ 0, 2 * 1000 * 1000 }, NULL);
		*worker = child_of(pid);
	}
	ck_assert_msg(*worker > 0, "no worker process seen");
	return pid;
}

START_TEST(killed_worker_is_replaced_and_image_retried)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out");
	pid_t pid, w = 0;
	int rc;

	pid = spawn_busy(in, out, &w);
	nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	ck_assert_int_eq(kill(w, SIGKILL), 0);
	rc = tu_wait(pid);
	ck_assert_msg(rc == 0, "exit %d after one worker was killed", rc);
	ck_assert_int_eq(count_files(out, NULL), 108);
	ck_assert_int_eq(count_files(out, ".thumbr-"), 0);
	free(in), free(out);
}
END_TEST


START_TEST(sigterm_stops_at_once_and_cleanly)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out");
	struct timespec t0, t1;
	pid_t pid, w = 0;
	int rc;
	double secs;

	pid = spawn_busy(in, out, &w);
	nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	rc = tu_wait(pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_int_eq(rc, 128 + SIGTERM);
	ck_assert_msg(secs < 1.0, "took %.3f s to stop", secs);
	ck_assert_msg(kill(w, 0) != 0, "worker %d outlived the run", (int)w);
	ck_assert_int_eq(count_files(out, ".thumbr-"), 0);
	{
		char *again[] = { (char *)tu_bin(), "-s", "1024", in, out, NULL };

		ck_assert_int_eq(tu_run(again, NULL, NULL), 0);
		ck_assert_int_eq(count_files(out, NULL), 108);
	}
	free(in), free(out);
}
END_TEST

START_TEST(workers_die_with_a_killed_main_process)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out");
	pid_t pid, w = 0;

	pid = spawn_busy(in, out, &w);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(tu_wait(pid), 128 + SIGKILL);
	for (int i = 0; i < 200 && kill(w, 0) == 0; i++) {
		char path[64], st = 0;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)w);
		if ((f = fopen(path, "r")) != NULL) {
			if (fscanf(f, "%*d %*s %c", &st) != 1)
				st = 0;
			fclose(f);
		}
		if (st == 'Z')
			break;          /* dead, waiting for a reaper that is not ours to be */
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	{
		char path[64], st = 'Z';
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)w);
		if ((f = fopen(path, "r")) != NULL) {
			if (fscanf(f, "%*d %*s %c", &st) != 1)
				st = 'Z';
			fclose(f);
		}
		ck_assert_msg(st == 'Z', "worker %d still runs 2 s after its main process died",
		    (int)w);
	}
	free(in), free(out);
}
END_TEST


/* ---- hostile input ---- */

/* A valid PNG signature and IHDR declaring w x h, then a broken IDAT. */
static void
write_png_bomb(const char *path, uint32_t w, uint32_t h)
{
	unsigned char f[8 + 25 + 12 + 12];
	unsigned char *ihdr = f + 8;

	memcpy(f, "\x89PNG\r\n\x1a\n", 8);
	tu_put_be32(ihdr, 13);
	memcpy(ihdr + 4, "IHDR", 4);
	tu_put_be32(ihdr + 8, w);
	tu_put_be32(ihdr + 12, h);
	ihdr[16] = 8, ihdr[17] = 2, ihdr[18] = 0, ihdr[19] = 0, ihdr[20] = 0;
	tu_put_be32(ihdr + 21, (uint32_t)crc32(0, ihdr + 4, 17));
	tu_put_be32(f + 33, 0);
	memcpy(f + 37, "IDAT", 4);
	tu_put_be32(f + 41, (uint32_t)crc32(0, f + 37, 4));
	tu_put_be32(f + 45, 0);
	memcpy(f + 49, "IEND", 4);
	tu_put_be32(f + 53, (uint32_t)crc32(0, f + 49, 4));
	ck_assert_int_eq(tu_write(path, f, sizeof(f)), 0);
}

static int
find_sof(unsigned m, const unsigned char *seg, size_t len, void *arg)
{
	if ((m == 0xc0 || m == 0xc1 || m == 0xc2) && len >= 5) {
		*(const unsigned char **)arg = seg;
		return 1;
	}
	return 0;
}

/* testorig.jpg with its frame header saying w x h */
static void
write_jpeg_bomb(const char *path, unsigned w, unsigned h)
{
	size_t n;
	unsigned char *p = tu_testdata_slurp("libjpeg-turbo/testorig.jpg", &n), *sof;
	const unsigned char *seg = NULL;

	ck_assert_int_eq(tu_jpeg_each_marker(p, n, find_sof, &seg), 1);
	sof = p + (seg - p);
	sof[1] = (unsigned char)(h >> 8), sof[2] = (unsigned char)h;
	sof[3] = (unsigned char)(w >> 8), sof[4] = (unsigned char)w;
	ck_assert_int_eq(tu_write(path, p, n), 0);
	free(p);
}

START_TEST(hostile_tree_fails_fast_and_alone)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), "-j2", in, out, NULL };
	char *jpg = tu_join(tu_testdata(), "libjpeg-turbo/testorig.jpg");
	char *outside = tu_join(tmp, "outside.jpg");
	static const char *good[] = { "good.jpg", "sub dir/good 2.jpg", "new\nline.jpg", "-dash.jpg",
	    "\xff\xfe.jpg" };
	struct timespec t0, t1;
	size_t n;
	unsigned char *p;
	char *path;
	int rc;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		path = tu_join(in, good[i]);
		ck_assert_int_eq(tu_copy(jpg, path), 0);
		free(path);
	}
	path = tu_join(in, "empty.jpg");
	ck_assert_int_eq(tu_write(path, "", 0), 0);
	free(path);
	path = tu_join(in, "text.png");
	ck_assert_int_eq(tu_write(path, "just text\n", 10), 0);
	free(path);
	p = tu_testdata_slurp("libjpeg-turbo/testorig.jpg", &n);
	path = tu_join(in, "truncated.jpg");
	ck_assert_int_eq(tu_write(path, p, n / 3), 0);
	free(path);
	for (size_t i = n / 2; i < n / 2 + 64; i++)
		p[i] ^= 0x5a;
	path = tu_join(in, "bitflip.jpg");
	ck_assert_int_eq(tu_write(path, p, n), 0);
	free(path);
	free(p);
	path = tu_join(in, "pngbomb.png");
	write_png_bomb(path, 100000, 100000);
	free(path);
	path = tu_join(in, "bomb.jpg");
	write_jpeg_bomb(path, 65000, 65000);
	free(path);
	path = tu_join(in, "pipe.jpg");
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	free(path);
	ck_assert_int_eq(tu_copy(jpg, outside), 0);
	path = tu_join(in, "link.jpg");
	ck_assert_int_eq(symlink(outside, path), 0);    /* out of INPUT_DIR: not followed */
	free(path);
	path = tu_join(in, "loop");
	ck_assert_int_eq(symlink(".", path), 0);
	free(path);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = tu_run(argv, NULL, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, err);
	ck_assert_msg(t1.tv_sec - t0.tv_sec < 10, "took %ld s", (long)(t1.tv_sec - t0.tv_sec));
	ck_assert_int_eq(count_files(out, NULL), 5);    /* every good file, nothing else */
	ck_assert_msg(strstr(err, "empty.jpg: empty file"), "%s", err);
	ck_assert_msg(strstr(err, "text.png: not a supported image"), "%s", err);
	ck_assert_msg(strstr(err, "truncated.jpg: "), "%s", err);
	ck_assert_msg(strstr(err, "bitflip.jpg: "), "%s", err);
	ck_assert_msg(strstr(err, "pngbomb.png: image is 100000x100000, more than --max-pixels"),
	    "%s", err);
	ck_assert_msg(strstr(err, "bomb.jpg: image is 65000x65000, more than --max-pixels"),
	    "%s", err);
	ck_assert_msg(strstr(err, "new\\012line.jpg") == NULL, "%s", err);   /* it was good */
	ck_assert_msg(strstr(err, "6 failed, 3 skipped"), "%s", err);   /* pipe, link, loop */
	free(in), free(out), free(err), free(jpg), free(outside);
}
END_TEST

START_TEST(limits_refuse_fast)
{
	char *in = tu_join(tu_testdata(), "exif-orientation"), *out = tu_join(tmp, "out");
	char *o2 = tu_join(tmp, "o2"), *err = NULL;
	char *slow[] = { (char *)tu_bin(), "-j2", "-s", "1024", "--timeout", "0.001", in, out,
	    NULL };
	char *big[] = { (char *)tu_bin(), "--max-file-size", "100k", in, o2, NULL };

	/* every image outlasts its millisecond: each worker is killed, replaced, and the image
	 * reported, not retried */
	ck_assert_int_eq(tu_run(slow, NULL, &err), 1);
	ck_assert_msg(strstr(err, "took longer than --timeout 0.001 s") &&
	    strstr(err, "18 failed"), "%s", err);
	free(err);
	ck_assert_int_eq(tu_run(big, NULL, &err), 1);
	ck_assert_msg(strstr(err, "more than --max-file-size 102400") && strstr(err, "18 failed"),
	    "%s", err);
	free(in), free(out), free(o2), free(err);
}
END_TEST


/* A few hundred mutants of real images (bytes flipped, cut, spliced, with a fixed seed):
 * the batch ends, the main process survives, and every mutant is thumbnailed or named. */
START_TEST(mutants_thumbnailed_or_reported)
{
	static const char *seeds[] = { "libjpeg-turbo/testorig.jpg", "libjpeg-turbo/testimgari.jpg",
	    "made/progressive.jpg", "made/ycck.jpg", "pngsuite/basn6a16.png",
	    "pngsuite/basi3p08.png", "made/format-webp.webp", "made/format-gif.gif" };
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { (char *)tu_bin(), "-j2", "--timeout", "10", in, out, NULL };
	unsigned long images, thumbs, failed, skipped, seed = 20261122;
	const int per = 40;
	int rc;

	for (size_t f = 0; f < sizeof(seeds) / sizeof(seeds[0]); f++) {
		size_t n;
		unsigned char *orig = tu_testdata_slurp(seeds[f], &n);

		for (int m = 0; m < per; m++) {
			unsigned char *p = malloc(n + 64);
			size_t len = n, cuts;
			char *path;

			memcpy(p, orig, n);
			seed = seed * 6364136223846793005ul + 1442695040888963407ul;
			switch ((seed >> 33) % 4) {
			case 0:         /* flip a few bytes past the signature */
				for (int k = 0; k < 1 + (int)((seed >> 20) % 8); k++) {
					seed = seed * 6364136223846793005ul + 1;
					p[8 + (seed >> 33) % (n - 8)] ^= (unsigned char)(1 + (seed >> 13) % 255);
				}
				break;
			case 1:         /* cut short */
				len = 8 + (seed >> 35) % (n - 8);
				break;
			case 2:         /* a chunk of the file repeated further on */
				cuts = 8 + (seed >> 35) % (n / 2);
				memcpy(p + cuts, orig + n / 2, n - n / 2 < n - cuts ? n - n / 2 : n - cuts);
				break;
			default:        /* header bytes scrambled (sizes, counts, tables) */
				for (size_t k = 8; k < 64 && k < n; k += 3)
					p[k] = (unsigned char)(seed >> (k % 48));
				break;
			}
			if (asprintf(&path, "%s/m%02zu_%03d%s", in, f, m, strrchr(seeds[f], '.')) < 0)
				ck_abort_msg("asprintf");
			ck_assert_int_eq(tu_write(path, p, len), 0);
			free(path);
			free(p);
		}
		free(orig);
	}
	rc = tu_run(argv, NULL, &err);
	ck_assert_msg(rc == 0 || rc == 1, "exit %d: %s", rc, err);
	summary(err, &images, &thumbs, &failed, &skipped);
	/* a mutant whose signature survived is an image: thumbnailed or failed; one whose
	 * signature did not is skipped (or failed, for its image name) */
	ck_assert_uint_eq(images + skipped, 8 * per);
	ck_assert_uint_eq(thumbs + failed, images);
	ck_assert_int_eq(count_files(out, NULL), (int)thumbs);
	ck_assert_int_eq(count_files(out, ".thumbr-"), 0);
	fprintf(stderr, "mutants: %lu thumbnailed, %lu refused, %lu not images\n", thumbs, failed,
	    skipped);
	free(in), free(out), free(err);
}
END_TEST


/* A write that fails halfway (ulimit -f): that thumbnail is reported, no partial file is
 * left, the others go on. */
START_TEST(failed_write_reported_not_left)
{
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *err = NULL;
	char *argv[] = { "/usr/bin/prlimit", "--fsize=3000000", NULL, "-j1", "--slot-size", "64k",
	    "--format", "png", "-s", "4000", NULL, NULL, NULL };
	char *big = tu_join(tu_testdata(), "exif-orientation/Landscape_1.jpg");
	char *small = tu_join(tu_testdata(), "pngsuite/basn0g01.png");
	char *b = tu_join(in, "big.jpg"), *s = tu_join(in, "small.png");
	int rc;

	if (access(argv[0], X_OK) != 0) {
		fprintf(stderr, "SKIPPED failed_write_reported_not_left: no %s (util-linux)\n",
		    argv[0]);
		free(in), free(out), free(big), free(small), free(b), free(s);
		return;
	}
	ck_assert_int_eq(tu_copy(big, b), 0);
	ck_assert_int_eq(tu_copy(small, s), 0);
	/* 3 MB (ulimit -f): room for the shared memory of one worker with small slots (about
	 * 2 MiB, a file too) and the small thumbnail, not for the 1800x1200 PNG (3.3 MB) */
	argv[2] = (char *)tu_bin();
	argv[10] = in;
	argv[11] = out;
	rc = tu_run(argv, NULL, &err);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, err);
	ck_assert_msg(strstr(err, "big.jpg: cannot write") != NULL, "%s", err);
	ck_assert_int_eq(count_files(out, ".thumbr-"), 0);
	ck_assert_int_eq(count_files(out, NULL), 1);    /* small.png only */
	free(in), free(out), free(err), free(big), free(small), free(b), free(s);
}
END_TEST


/* SVG's loader is one libvips marks unsafe for untrusted files: off unless asked for. */
START_TEST(untrusted_loaders_only_by_name)
{
	static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" "
	    "height=\"200\"><rect width=\"400\" height=\"200\" fill=\"#c00\"/></svg>\n";
	char *in = tu_join(tmp, "in"), *out = tu_join(tmp, "out"), *o2 = tu_join(tmp, "o2");
	char *src = tu_join(in, "drawing.svg"), *t = tu_join(o2, "256/drawing.jpg"), *err = NULL;
	char *off[] = { (char *)tu_bin(), in, out, NULL };
	char *on[] = { (char *)tu_bin(), "--allow-loader", "svgload", in, o2, NULL };
	char *bad[] = { (char *)tu_bin(), "--allow-loader", "magickload", in, o2, NULL };
	unsigned w, h;

	ck_assert_int_eq(tu_write(src, svg, sizeof(svg) - 1), 0);
	ck_assert_int_eq(tu_run(off, NULL, &err), 0);
	ck_assert_msg(strstr(err, "0 images, 0 thumbnails, 0 failed, 1 skipped"), "%s", err);
	free(err);
	ck_assert_int_eq(tu_run(on, NULL, &err), 0);
	ck_assert_msg(tu_image_size(t, &w, &h) == 0 && w == 256 && h == 128, "%s", err);
	free(err);
	ck_assert_int_eq(tu_run(bad, NULL, NULL), 2);   /* nothing to recognise its files by */
	free(in), free(out), free(o2), free(src), free(t);
}
END_TEST

Suite *
e2e_suite(void)
{
	Suite *s = suite_create("e2e");
	TCase *t = tcase_create("Core");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, testdata_every_thumbnail);
	tcase_add_test(t, two_sizes_one_run);
	tcase_add_test(t, big_sources_bypass_the_ring);
	tcase_add_test(t, largest_slot_leaves_the_memory_ceiling_to_decoding);
	tcase_add_test(t, libvips_images_stream_in_strips);
	tcase_add_test(t, exif_orientation_applied);
	tcase_add_test(t, no_rotate_keeps_stored_pixels);
	tcase_add_test(t, colour_profiles_honoured);
	tcase_add_test(t, alpha_flattened_onto_background);
	tcase_add_test(t, png_output_keeps_alpha_without_fringes);
	tcase_add_test(t, webp_output_named_and_encoded);
	tcase_add_test(t, crop_fills_the_box);
	tcase_add_test(t, metadata_stripped_unless_kept);
	tcase_add_test(t, broken_and_unsupported_refused);
	tcase_add_test(t, rerun_rebuilds_exactly_what_changed);
	tcase_add_test(t, prune_deletes_only_orphans_it_made);
	tcase_add_test(t, second_run_on_one_output_exits_75);
	tcase_add_test(t, quiet_verbose_and_report);
	tcase_add_test(t, files_from_a_list);
	tcase_add_test(t, shards_add_up_to_one_run);
	tcase_add_test(t, collision_reported_not_overwritten);
	tcase_add_test(t, mirrors_odd_names_and_skips);
	tcase_add_test(t, output_inside_input_is_not_scanned);
	tcase_add_test(t, usage_errors_exit_2);
	tcase_add_test(t, uncreatable_output_is_fatal);
	tcase_add_test(t, killed_worker_is_replaced_and_image_retried);
	tcase_add_test(t, sigterm_stops_at_once_and_cleanly);
	tcase_add_test(t, workers_die_with_a_killed_main_process);
	tcase_add_test(t, hostile_tree_fails_fast_and_alone);
	tcase_add_test(t, limits_refuse_fast);
	tcase_add_test(t, mutants_thumbnailed_or_reported);
	tcase_add_test(t, failed_write_reported_not_left);
	tcase_add_test(t, untrusted_loaders_only_by_name);
	suite_add_tcase(s, t);
	return s;
}
