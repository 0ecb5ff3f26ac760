/*
 * pngrows suite: the PNG image data reader (thumbr/pngrows.h) against libpng set up as
 * decode_png sets it up, for the verdict (accepted or refused) and for every row byte, with
 * the unfilters in plain C, SSE2 and SSE4.1: every in-scope PngSuite file; PNGs libpng
 * writes here with each filter at 1 to 4 bytes per pixel and odd widths; random filtered
 * data with every filter type, IDATs split anywhere, rows wider than the inflate batch;
 * a cut stream, a flipped IDAT CRC, a bad filter byte and garbage where IEND should be,
 * each refused with a message; and a few hundred mutations of a PNG (bytes flipped, with
 * and without the CRCs made right, files cut, the zlib stream damaged near its end), which
 * must get libpng's verdict and never crash (watched by make SANITIZER=address check).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <png.h>
#include <zlib.h>

#include "suites.h"
#include "testutil.h"
#include "thumbr/pngrows.h"

#ifndef MUTATIONS
#define MUTATIONS 300          /* more, and a seed, for a long run: -DMUTATIONS=n -DSEED=s */
#endif
#ifndef SEED
#define SEED 12345
#endif

/* ---- libpng, and pngrows after libpng's header, as decode_png uses them ---- */

struct lpsrc {
	jmp_buf jb;
	char msg[256];
	const unsigned char *p;
	size_t len, off;
};

static void
lp_err(png_structp png, png_const_charp m)
{
	struct lpsrc *s = png_get_error_ptr(png);

	snprintf(s->msg, sizeof(s->msg), "%s", m);
	longjmp(s->jb, 1);
}

static void
lp_warn(png_structp png, png_const_charp m)
{
	(void)png;
	(void)m;
}

static void
lp_read(png_structp png, png_bytep out, size_t n)
{
	struct lpsrc *s = png_get_io_ptr(png);

	if (n > s->len - s->off)
		png_error(png, "file is truncated");
	memcpy(out, s->p + s->off, n);
	s->off += n;
}

struct dec {
	uint32_t w, h;
	int bands;
	int inscope;            /* pngrows could read it (libpng parsed the header) */
	char err[256];
};

/* The image, w * h * bands bytes (malloc'ed), as libpng decodes it (mine 0) or as pngrows
 * does after libpng's png_read_info (mine 1, unfiltering at level), or NULL when refused. */
static unsigned char *
decode(const unsigned char *d, size_t n, int mine, int level, struct dec *o)
{
	struct lpsrc s;
	png_structp png;
	png_infop info;
	unsigned char *volatile img = NULL;
	png_bytep *volatile v = NULL;
	struct pr pr;
	size_t rb;
	int ct, passes;

	memset(&s, 0, sizeof(s));
	memset(&pr, 0, sizeof(pr));
	memset(o, 0, sizeof(*o));
	s.p = d;
	s.len = n;
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, lp_err, lp_warn);
	info = png_create_info_struct(png);
	ck_assert_ptr_nonnull(info);
	if (setjmp(s.jb)) {
		pr_free(&pr);
		png_destroy_read_struct(&png, &info, NULL);
		free(img);
		free(v);
		snprintf(o->err, sizeof(o->err), "%s", s.msg[0] ? s.msg : "refused");
		return NULL;
	}
	png_set_read_fn(png, &s, lp_read);
	png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
	png_read_info(png, info);
	ct = png_get_color_type(png, info);
	o->inscope = pr_in_scope(png_get_bit_depth(png, info), ct,
	    png_get_interlace_type(png, info), png_get_valid(png, info, PNG_INFO_tRNS) != 0);
	png_set_expand(png);
	png_set_scale_16(png);
	passes = png_set_interlace_handling(png);
	png_read_update_info(png, info);
	o->w = png_get_image_width(png, info);
	o->h = png_get_image_height(png, info);
	o->bands = png_get_channels(png, info);
	rb = png_get_rowbytes(png, info);
	img = malloc(rb * o->h);
	ck_assert_ptr_nonnull(img);
	if (mine && o->inscope) {
		ck_assert(s.off >= 8 && memcmp(d + s.off - 4, "IDAT", 4) == 0);
		ck_assert_uint_eq(rb, (size_t)o->w * (size_t)o->bands);
		if (pr_start(&pr, d, n, s.off - 8, o->w, o->h, o->bands, s.msg,
		    sizeof(s.msg)) != 0)
			longjmp(s.jb, 1);
		pr_set_level(&pr, level);
		for (uint32_t y = 0; y < o->h; y++) {
			const unsigned char *row = pr_row(&pr, s.msg, sizeof(s.msg));

			if (row == NULL)
				longjmp(s.jb, 1);
			memcpy(img + rb * y, row, rb);
		}
		if (pr_finish(&pr, s.msg, sizeof(s.msg)) != 0)
			longjmp(s.jb, 1);
		pr_free(&pr);
	} else if (passes > 1) {
		v = malloc(sizeof(*v) * o->h);
		for (uint32_t y = 0; y < o->h; y++)
			v[y] = img + rb * y;
		png_read_image(png, v);
		free(v);
		v = NULL;
		png_read_end(png, NULL);
	} else {
		for (uint32_t y = 0; y < o->h; y++)
			png_read_row(png, img + rb * y, NULL);
		png_read_end(png, NULL);
	}
	png_destroy_read_struct(&png, &info, NULL);
	return img;
}

/* pngrows, at every unfilter level, gives libpng's verdict and rows; 1 if accepted.  err
 * (may be NULL) gets pngrows' message. */
static int
same_as_libpng(const unsigned char *d, size_t n, const char *what, char *err)
{
	struct dec a, b;
	unsigned char *ref = decode(d, n, 0, 0, &a), *got;
	int ok = ref != NULL;

	for (int level = 0; level <= 2; level++) {
		got = decode(d, n, 1, level, &b);
		ck_assert_msg((ref == NULL) == (got == NULL), "%s (level %d): libpng %s, pngrows %s",
		    what, level, ref ? "accepts" : a.err, got ? "accepts" : b.err);
		if (ref != NULL) {
			ck_assert(a.w == b.w && a.h == b.h && a.bands == b.bands);
			ck_assert_msg(memcmp(ref, got, (size_t)a.w * a.h * (size_t)a.bands) == 0,
			    "%s (level %d): rows differ", what, level);
		}
		if (err != NULL)
			snprintf(err, 256, "%s", b.err);
		free(got);
	}
	free(ref);
	return ok;
}

/* ---- PNGs made here ---- */

struct out {
	unsigned char *p;
	size_t n, cap;
};

static void
put(struct out *o, const void *d, size_t n)
{
	if (o->cap - o->n < n) {        /* doubling: a file of many small IDATs is quick */
		o->cap = o->cap * 2 > o->n + n ? o->cap * 2 : o->n + n + 4096;
		o->p = realloc(o->p, o->cap);
		ck_assert_ptr_nonnull(o->p);
	}
	if (n > 0)                      /* an empty chunk's data may be NULL */
		memcpy(o->p + o->n, d, n);
	o->n += n;
}

static void
chunk(struct out *o, const char *type, const unsigned char *d, size_t n)
{
	unsigned char b[8];
	uint32_t crc = (uint32_t)crc32(0, (const unsigned char *)type, 4);

	if (n > 0)
		crc = (uint32_t)crc32(crc, d, (uInt)n);
	tu_put_be32(b, (uint32_t)n);
	memcpy(b + 4, type, 4);
	put(o, b, 8);
	put(o, d, n);
	tu_put_be32(b, crc);
	put(o, b, 4);
}

static const int ctype[5] = { 0, 0, 4, 2, 6 };  /* by bytes per pixel */

/* w x h at bpp bytes per pixel, zlib stream z cut into IDATs of split bytes (0: one), then
 * tail (raw bytes; NULL: an IEND chunk) */
static struct out
make_png(uint32_t w, uint32_t h, int bpp, const unsigned char *z, size_t zn, size_t split,
    const unsigned char *tail, size_t tailn)
{
	static const unsigned char sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
	struct out o = { NULL, 0, 0 };
	unsigned char ihdr[13];
	size_t i = 0;

	put(&o, sig, 8);
	tu_put_be32(ihdr, w);
	tu_put_be32(ihdr + 4, h);
	ihdr[8] = 8;
	ihdr[9] = (unsigned char)ctype[bpp];
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	chunk(&o, "IHDR", ihdr, 13);
	do {
		size_t k = split == 0 || zn - i < split ? zn - i : split;

		chunk(&o, "IDAT", z + i, k);
		i += k;
	} while (i < zn);
	if (tail == NULL)
		chunk(&o, "IEND", NULL, 0);
	else
		put(&o, tail, tailn);
	return o;
}

static uint32_t rnd_state = SEED;

static uint32_t
rnd(void)
{
	rnd_state = rnd_state * 1664525u + 1013904223u;
	return rnd_state >> 8;
}

/* Filtered rows of random (smallish) bytes, each row's filter byte from filters[] in turn. */
static unsigned char *
filtered(uint32_t w, uint32_t h, int bpp, const int *filters, int nf, size_t *n)
{
	size_t stride = (size_t)w * (size_t)bpp + 1;
	unsigned char *raw = malloc(stride * h);

	ck_assert_ptr_nonnull(raw);
	for (uint32_t y = 0; y < h; y++) {
		raw[stride * y] = (unsigned char)filters[y % (uint32_t)nf];
		for (size_t i = 1; i < stride; i++)
			raw[stride * y + i] = (unsigned char)(rnd() % 7 == 0 ? rnd() : rnd() % 9);
	}
	*n = stride * h;
	return raw;
}

static unsigned char *
deflated(const unsigned char *raw, size_t n, int level, size_t *zn)
{
	uLongf len = compressBound(n);
	unsigned char *z = malloc(len);

	ck_assert_int_eq(compress2(z, &len, raw, n, level), Z_OK);
	*zn = len;
	return z;
}

/* A w x h image at bpp written by libpng with the given filters (PNG_FILTER_* mask). */
static struct out
libpng_png(uint32_t w, uint32_t h, int bpp, int filters)
{
	FILE *f;
	struct out o = { NULL, 0, 0 };
	char *buf = NULL;
	size_t len = 0;
	png_structp png;
	png_infop info;
	unsigned char *row = malloc((size_t)w * (size_t)bpp);

	f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	info = png_create_info_struct(png);
	ck_assert_ptr_nonnull(info);
	png_init_io(png, f);
	png_set_IHDR(png, info, w, h, 8, ctype[bpp], PNG_INTERLACE_NONE,
	    PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);
	png_write_info(png, info);
	for (uint32_t y = 0; y < h; y++) {
		/* gradients with some noise: every filter has something to predict */
		for (size_t i = 0; i < (size_t)w * (size_t)bpp; i++)
			row[i] = (unsigned char)(i * 3 + y * 5 + (i % (size_t)bpp) * 40 + rnd() % 4);
		png_write_row(png, row);
	}
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	fclose(f);
	put(&o, buf, len);
	free(buf);
	free(row);
	return o;
}

/* ---- tests ---- */

START_TEST(pngsuite_rows_are_libpngs)
{
	char *dir = tu_join(tu_testdata(), "pngsuite");
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned inscope = 0, corrupt = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		char *path;
		unsigned char *src, *img;
		size_t n;
		struct dec o;

		if (strstr(e->d_name, ".png") == NULL)
			continue;
		path = tu_join(dir, e->d_name);
		src = (unsigned char *)tu_slurp(path, &n);
		ck_assert_ptr_nonnull(src);
		img = decode(src, n, 1, 2, &o);
		if (e->d_name[0] == 'x') {
			/* corrupt: refused, by libpng's header parsing or by pngrows */
			ck_assert_msg(img == NULL, "%s accepted", e->d_name);
			corrupt++;
		} else {
			ck_assert_msg(img != NULL, "%s: %s", e->d_name, o.err);
			if (o.inscope) {
				ck_assert(same_as_libpng(src, n, e->d_name, NULL));
				inscope++;
			}
		}
		free(img);
		free(src);
		free(path);
	}
	closedir(d);
	free(dir);
	ck_assert_uint_ge(inscope, 20);
	ck_assert_uint_ge(corrupt, 10);
}
END_TEST

START_TEST(libpng_written_filters_and_widths)
{
	static const int filters[] = { PNG_FILTER_NONE, PNG_FILTER_SUB, PNG_FILTER_UP,
	    PNG_FILTER_AVG, PNG_FILTER_PAETH, PNG_ALL_FILTERS };
	static const uint32_t widths[] = { 1, 2, 3, 5, 7, 16, 17, 33, 101 };
	char what[64];

	for (int bpp = 1; bpp <= 4; bpp++)
		for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++)
			for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
				struct out o = libpng_png(widths[i], 9, bpp, filters[f]);

				snprintf(what, sizeof(what), "bpp %d filters %#x width %u", bpp,
				    filters[f], widths[i]);
				ck_assert_msg(same_as_libpng(o.p, o.n, what, NULL), "%s", what);
				free(o.p);
			}
}
END_TEST

/* Random filtered data, every filter type in turn, one row or many batches, IDATs split
 * anywhere (1 byte, odd sizes, across libpng's 8192-byte pieces). */
START_TEST(random_rows_every_filter_and_split)
{
	static const int all[] = { 0, 1, 2, 3, 4, 4, 3, 1 };
	static const struct { uint32_t w, h; } sizes[] = { { 1, 1 }, { 3, 5 }, { 13, 11 },
	    { 301, 40 }, { 700, 200 }, { 70000, 3 } };
	static const size_t splits[] = { 0, 1, 7, 8191, 8193, 30000 };
	char what[96];

	for (int bpp = 1; bpp <= 4; bpp++)
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			size_t n, zn;
			unsigned char *raw = filtered(sizes[s].w, sizes[s].h, bpp, all, 8, &n);
			unsigned char *z = deflated(raw, n, (int)(s % 10), &zn);

			for (size_t k = 0; k < sizeof(splits) / sizeof(splits[0]); k++) {
				struct out o;

				if (splits[k] == 1 && zn > 5000)
					continue;       /* enough of that on the small ones */
				o = make_png(sizes[s].w, sizes[s].h, bpp, z, zn, splits[k], NULL, 0);
				snprintf(what, sizeof(what), "bpp %d %ux%u split %zu", bpp,
				    sizes[s].w, sizes[s].h, splits[k]);
				ck_assert_msg(same_as_libpng(o.p, o.n, what, NULL), "%s", what);
				free(o.p);
			}
			free(z);
			free(raw);
		}
}
END_TEST

static const int paeth_sub[] = { 4, 1 };

START_TEST(cut_stream_refused)
{
	size_t n, zn;
	unsigned char *raw = filtered(40, 30, 3, paeth_sub, 2, &n);
	unsigned char *z = deflated(raw, n, 6, &zn);
	char err[256];
	struct out o;

	/* the zlib stream cut in the middle of the image */
	o = make_png(40, 30, 3, z, zn / 2, 0, NULL, 0);
	ck_assert(!same_as_libpng(o.p, o.n, "stream cut in half", err));
	ck_assert_str_eq(err, "not enough image data");
	free(o.p);
	/* the file cut inside the IDAT */
	o = make_png(40, 30, 3, z, zn, 0, NULL, 0);
	ck_assert(!same_as_libpng(o.p, 8 + 25 + 8 + zn / 2, "file cut", err));
	ck_assert_str_eq(err, "file is truncated");
	free(o.p);
	/* a whole stream, but of half the image */
	free(z);
	z = deflated(raw, n / 2, 6, &zn);
	o = make_png(40, 30, 3, z, zn, 0, NULL, 0);
	ck_assert(!same_as_libpng(o.p, o.n, "stream of half the image", err));
	ck_assert_str_eq(err, "not enough image data");
	free(o.p);
	free(z);
	z = deflated(raw, n, 6, &zn);
	/* all the image, but not the stream's end: libpng refuses it too */
	o = make_png(40, 30, 3, z, zn - 6, 0, NULL, 0);
	ck_assert(!same_as_libpng(o.p, o.n, "no stream end", err));
	ck_assert_str_eq(err, "not enough image data");
	free(o.p);
	free(z);
	free(raw);
}
END_TEST

START_TEST(bad_idat_crc_refused)
{
	size_t n, zn;
	unsigned char *raw = filtered(40, 30, 4, paeth_sub, 2, &n);
	unsigned char *z = deflated(raw, n, 6, &zn);
	char err[256];
	struct out o = make_png(40, 30, 4, z, zn, 100, NULL, 0);
	size_t last = o.n - 12 - 4 - 1;         /* the last IDAT's CRC, before IEND */

	ck_assert(same_as_libpng(o.p, o.n, "good", NULL));
	o.p[33 + 8 + 100] ^= 1;                 /* the first IDAT's */
	ck_assert(!same_as_libpng(o.p, o.n, "first IDAT CRC", err));
	ck_assert_str_eq(err, "CRC error in an IDAT chunk");
	o.p[33 + 8 + 100] ^= 1;
	o.p[last] ^= 0x80;
	ck_assert(!same_as_libpng(o.p, o.n, "last IDAT CRC", err));
	ck_assert_str_eq(err, "CRC error in an IDAT chunk");
	free(o.p);
	free(z);
	free(raw);
}
END_TEST

START_TEST(bad_filter_byte_refused)
{
	static const int f[] = { 1, 2, 3, 4, 5 };
	size_t n, zn;
	unsigned char *raw = filtered(9, 5, 2, f, 5, &n);
	unsigned char *z = deflated(raw, n, 6, &zn);
	char err[256];
	struct out o = make_png(9, 5, 2, z, zn, 0, NULL, 0);

	ck_assert(!same_as_libpng(o.p, o.n, "filter 5", err));
	ck_assert_str_eq(err, "bad filter type 5 in row 4");
	free(o.p);
	free(z);
	free(raw);
}
END_TEST

START_TEST(what_follows_the_image_data)
{
	size_t n, zn;
	unsigned char *raw = filtered(50, 20, 3, paeth_sub, 2, &n);
	unsigned char *z = deflated(raw, n, 6, &zn), *more;
	char err[256];
	struct out o, t = { NULL, 0, 0 };
	const unsigned char junk[] = "garbage after the image data";
	unsigned char text[] = "Comment\0hello";

	/* garbage where IEND should be: refused */
	o = make_png(50, 20, 3, z, zn, 0, junk, sizeof(junk));
	ck_assert(!same_as_libpng(o.p, o.n, "garbage for IEND", err));
	ck_assert_str_eq(err, "invalid chunk type");
	free(o.p);
	/* no IEND at all: refused */
	o = make_png(50, 20, 3, z, zn, 0, junk, 0);
	ck_assert(!same_as_libpng(o.p, o.n, "no IEND", err));
	ck_assert_str_eq(err, "file is truncated");
	free(o.p);
	/* an IHDR, or a chunk longer than libpng allows, after the image data */
	t.n = 0;
	chunk(&t, "IHDR", text, 13);
	chunk(&t, "IEND", NULL, 0);
	o = make_png(50, 20, 3, z, zn, 0, t.p, t.n);
	ck_assert(!same_as_libpng(o.p, o.n, "IHDR after IDAT", err));
	ck_assert_str_eq(err, "IHDR chunk after the image data");
	free(o.p);
	tu_put_be32(t.p, 8000001);
	memcpy(t.p + 4, "tEXt", 4);
	o = make_png(50, 20, 3, z, zn, 0, t.p, t.n);
	ck_assert(!same_as_libpng(o.p, o.n, "long chunk", err));
	ck_assert_str_eq(err, "tEXt chunk data is too large");
	free(o.p);
	free(t.p);
	t = (struct out){ NULL, 0, 0 };
	/* garbage after IEND: ignored, as libpng does */
	o = make_png(50, 20, 3, z, zn, 0, NULL, 0);
	put(&o, junk, sizeof(junk));
	ck_assert(same_as_libpng(o.p, o.n, "garbage after IEND", NULL));
	free(o.p);
	/* a bad CRC in a tEXt after the image: a warning to libpng; in IEND an error */
	chunk(&t, "tEXt", text, sizeof(text) - 1);
	t.p[t.n - 1] ^= 1;
	chunk(&t, "IEND", NULL, 0);
	o = make_png(50, 20, 3, z, zn, 0, t.p, t.n);
	ck_assert(same_as_libpng(o.p, o.n, "tEXt CRC", NULL));
	free(o.p);
	t.p[t.n - 1] ^= 1;
	t.p[t.n - 13] ^= 1;
	o = make_png(50, 20, 3, z, zn, 0, t.p, t.n);
	ck_assert(!same_as_libpng(o.p, o.n, "IEND CRC", err));
	ck_assert_str_eq(err, "CRC error in the IEND chunk");
	free(o.p);
	free(t.p);
	/* deflate data after the image's, and an IDAT after a tEXt: warnings only */
	more = malloc(n + 100);
	memcpy(more, raw, n);
	memset(more + n, 7, 100);
	free(z);
	z = deflated(more, n + 100, 6, &zn);
	t = (struct out){ NULL, 0, 0 };
	chunk(&t, "tEXt", text, sizeof(text) - 1);
	chunk(&t, "IDAT", text, 5);
	chunk(&t, "IEND", NULL, 0);
	o = make_png(50, 20, 3, z, zn, 0, t.p, t.n);
	ck_assert(same_as_libpng(o.p, o.n, "too much data, late IDAT", NULL));
	free(o.p);
	free(t.p);
	free(more);
	free(z);
	free(raw);
}
END_TEST

/* Damage right after the image's last byte is an error to libpng when it is in the 8192-byte
 * piece of IDAT that zlib had when writing that byte, a warning when it is in a later one:
 * the same here, wherever the IDAT boundaries put the pieces' ends. */
START_TEST(damage_after_the_last_row_as_libpng)
{
	size_t n, zn;
	unsigned char *raw = filtered(300, 40, 3, paeth_sub, 2, &n);
	unsigned char *z = malloc(n + 1000);
	unsigned accepted = 0, refused = 0;
	char what[64];
	z_stream s;

	/* the image, flushed but not ended, then a block of the invalid type 3 */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(deflateInit(&s, 6), Z_OK);
	s.next_in = raw;
	s.avail_in = (uInt)n;
	s.next_out = z;
	s.avail_out = (uInt)n + 1000;
	ck_assert_int_eq(deflate(&s, Z_SYNC_FLUSH), Z_OK);
	zn = n + 1000 - s.avail_out;
	deflateEnd(&s);
	z[zn++] = 0x07;
	z[zn++] = 0x00;
	ck_assert_uint_gt(zn, 8192 + 12);
	for (size_t cut = zn - 12; cut <= zn; cut++) {
		/* the second IDAT starts 8192 bytes before cut (a piece ends at cut) or 4096
		 * (none does: all refused) */
		for (size_t back = 4096; back <= 8192; back += 4096) {
			struct out o, tail = { NULL, 0, 0 };
			int ok;

			chunk(&tail, "IDAT", z + cut - back, zn - (cut - back));
			chunk(&tail, "IEND", NULL, 0);
			o = make_png(300, 40, 3, z, cut - back, 0, tail.p, tail.n);
			snprintf(what, sizeof(what), "a piece ending %zu bytes before the end",
			    back == 8192 ? zn - cut : 0);
			ok = same_as_libpng(o.p, o.n, what, NULL);
			ck_assert(back == 8192 || !ok);
			if (ok)
				accepted++;
			else
				refused++;
			free(o.p);
			free(tail.p);
		}
	}
	ck_assert_uint_gt(accepted, 0);
	ck_assert_uint_gt(refused, 13);
	free(z);
	free(raw);
}
END_TEST

/* Mutations of a PNG of several IDATs: libpng's verdict and rows, and no crash. */
START_TEST(mutations_get_libpngs_verdict)
{
	size_t n, zn, tn;
	unsigned char *raw = filtered(120, 60, 4, (const int[]){ 0, 1, 2, 3, 4 }, 5, &n);
	unsigned char *z = deflated(raw, n, 6, &zn), *m;
	unsigned char *mz = malloc(zn + 64);
	struct out base = make_png(120, 60, 4, z, zn, 3000, NULL, 0), o;
	unsigned accepted = 0, refused = 0;
	char what[64];

	(void)tn;
	for (int i = 0; i < MUTATIONS; i++) {
		int kind = i % 4;

		snprintf(what, sizeof(what), "mutation %d (kind %d)", i, kind);
		if (kind == 0) {                /* bytes flipped anywhere */
			m = malloc(base.n);
			memcpy(m, base.p, base.n);
			for (uint32_t k = 1 + rnd() % 3; k > 0; k--)
				m[33 + rnd() % (base.n - 33)] ^= (unsigned char)(1 + rnd() % 255);
			if (same_as_libpng(m, base.n, what, NULL))
				accepted++;
			else
				refused++;
			free(m);
			continue;
		}
		if (kind == 1) {                /* cut anywhere */
			if (same_as_libpng(base.p, 33 + rnd() % (base.n - 33), what, NULL))
				accepted++;
			else
				refused++;
			continue;
		}
		/* the zlib stream changed, CRCs right: near its end (kind 2) or anywhere */
		memcpy(mz, z, zn);
		tn = zn;
		for (uint32_t k = 1 + rnd() % 2; k > 0; k--) {
			size_t at = kind == 2 ? zn - 1 - rnd() % 16 : rnd() % zn;

			mz[at] ^= (unsigned char)(1 + rnd() % 255);
		}
		if (rnd() % 3 == 0)             /* or cut, or longer */
			tn = zn - rnd() % 8;
		else if (rnd() % 3 == 0)
			for (uint32_t k = rnd() % 40; k > 0; k--)
				mz[tn++] = (unsigned char)rnd();
		o = make_png(120, 60, 4, mz, tn, 1 + rnd() % 9000, NULL, 0);
		if (same_as_libpng(o.p, o.n, what, NULL))
			accepted++;
		else
			refused++;
		free(o.p);
	}
	ck_assert_uint_gt(accepted, 10);
	ck_assert_uint_gt(refused, 100);
	free(base.p);
	free(mz);
	free(z);
	free(raw);
}
END_TEST

Suite *
pngrows_suite(void)
{
	Suite *s = suite_create("pngrows");
	TCase *t = tcase_create("Core");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, pngsuite_rows_are_libpngs);
	tcase_add_test(t, libpng_written_filters_and_widths);
	tcase_add_test(t, random_rows_every_filter_and_split);
	suite_add_tcase(s, t);
	t = tcase_create("Limits");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, cut_stream_refused);
	tcase_add_test(t, bad_idat_crc_refused);
	tcase_add_test(t, bad_filter_byte_refused);
	tcase_add_test(t, what_follows_the_image_data);
	tcase_add_test(t, damage_after_the_last_row_as_libpng);
	tcase_add_test(t, mutations_get_libpngs_verdict);
	suite_add_tcase(s, t);
	return s;
}
