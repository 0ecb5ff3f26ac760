/*
 * A libFuzzer harness for what thumbr itself parses: the command line (opts_parse and its
 * size, byte, shard and colour parsers), the up-to-date record (state_parse), the EXIF
 * orientation (img_exif_orientation), ring records and their framing (a model queue
 * checks every record comes out as it went in, across wrap-arounds and padding), the
 * markers and scans of progressive JPEGs (jp_decode at 1/8, 2/8 and 4/8, every row of a
 * result made),
 * embedded ICC profiles (icc_is_srgb), and PNG image data through pngrows: after libpng's
 * header parsing, where the rows and the verdict must be libpng's own (abort otherwise), or
 * after a made-up header, as bare chunks.
 * Build and run: make fuzz [FUZZ_SECONDS=60]; it needs clang and libclang-rt-14-dev.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thumbr/icc.h"
#include "thumbr/img.h"
#include "thumbr/jpegprog.h"
#include "thumbr/opts.h"
#include "thumbr/pngrows.h"
#include "thumbr/ring.h"
#include "thumbr/state.h"

#include <png.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_strings(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[256];
	struct opt_size sz;
	uint64_t bytes;
	unsigned k, n;
	unsigned char rgb[3];
	struct state_rec rec;

	memcpy(s, data, size);
	s[size] = '\0';
	(void)opts_parse_size(s, &sz, err, sizeof(err));
	(void)opts_parse_bytes(s, &bytes, err, sizeof(err));
	(void)opts_parse_shard(s, &k, &n, err, sizeof(err));
	(void)opts_parse_colour(s, rgb, err, sizeof(err));
	(void)state_parse(s, size, &rec);
	(void)img_exif_orientation(data, size);
	free(s);
}

/* NUL-separated words make an argv */
static void
fuzz_argv(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[34], err[256];
	int argc = 1;
	struct opts o;
	static FILE *devnull;
	FILE *saved = stdout;

	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[0] = "thumbr";
	for (size_t i = 0; i <= size && argc < 33;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;
	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		abort();
	stdout = devnull;                       /* --help and --version print */
	(void)opts_parse(&o, argc, argv, err, sizeof(err));
	stdout = saved;
	free(buf);
}

/* Records of fuzzed lengths through a small ring, checked against a model queue. */
static void
fuzz_ring(const uint8_t *data, size_t size)
{
	static _Alignas(64) unsigned char mem[sizeof(struct ring) + 512];
	struct ring *r = (struct ring *)mem;
	struct ring_wait w = { 1, 0, NULL, NULL };    /* deadline 0: never sleeps */
	uint32_t lens[64];
	uint64_t jobs[64];
	unsigned head = 0, tail = 0;
	uint64_t seq = 0;

	if (ring_init(r, 512) != 0)
		abort();
	for (size_t i = 0; i < size; i++) {
		uint8_t b = data[i];

		if ((b & 1) && head - tail < 64) {      /* push */
			uint32_t len = b >> 1;
			void *p;
			enum ring_result rr = ring_reserve(r, len, &p, &w);

			if (rr == RING_OK) {
				memset(p, (int)(seq & 0xff), len);
				ring_commit(r, 1, seq, len);
				lens[head % 64] = len;
				jobs[head % 64] = seq++;
				head++;
			} else if (rr != RING_TIMEOUT && rr != RING_TOOBIG) {
				abort();
			}
		} else if (head != tail) {              /* pop */
			struct ring_msg rec;

			if (ring_try_peek(r, &rec) != RING_OK || rec.type != 1 ||
			    rec.job != jobs[tail % 64] ||
			    rec.len != lens[tail % 64])
				abort();
			for (uint32_t j = 0; j < lens[tail % 64]; j++)
				if (rec.payload[j] != (unsigned char)(rec.job & 0xff))
					abort();
			ring_release(r, &rec);
			tail++;
		} else {
			struct ring_msg rec;

			if (ring_try_peek(r, &rec) != RING_EMPTY)
				abort();
		}
	}
	ring_destroy(r);
}

static void
fuzz_jpegprog(const uint8_t *data, size_t size)
{
	struct jp d;
	char err[256];

	if (size < 1)
		return;
	if (jp_decode(&d, data + 1, size - 1, 1, 1 << data[0] % 3, 1u << 24, err,
	    sizeof(err)) == 0) {
		unsigned char *row;

		if ((uint64_t)d.w * d.h > 1u << 22) {   /* bounded work per input */
			jp_free(&d);
			return;
		}
		row = malloc((size_t)d.w * (size_t)d.ncomp);
		for (uint32_t y = 0; y < d.h; y++)
			jp_row(&d, y, row);
		free(row);
		jp_free(&d);
	}
}

struct fpng {
	jmp_buf jb;
	const uint8_t *p;
	size_t len, off;
};

static void
fpng_err(png_structp png, png_const_charp msg)
{
	(void)msg;
	longjmp(((struct fpng *)png_get_error_ptr(png))->jb, 1);
}

static void
fpng_warn(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void
fpng_read(png_structp png, png_bytep out, size_t n)
{
	struct fpng *f = png_get_io_ptr(png);

	if (n > f->len - f->off)
		png_error(png, "file is truncated");
	memcpy(out, f->p + f->off, n);
	f->off += n;
}

/* The image as decode_png reads it, with pngrows (mine) or libpng alone: a hash of its rows,
 * or 0 when refused; -1 when out of pngrows' scope or too big to fuzz quickly. */
static uint64_t
fpng_decode(const uint8_t *data, size_t size, int mine)
{
	struct fpng f = { .p = data, .len = size };
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &f, fpng_err, fpng_warn);
	png_infop info = png_create_info_struct(png);
	unsigned char *volatile row = NULL;
	struct pr pr;
	uint64_t h = 14695981039346656037u;
	uint32_t w, ht;
	int ct, bands;
	char err[256];

	memset(&pr, 0, sizeof(pr));
	if (setjmp(f.jb)) {
		pr_free(&pr);
		png_destroy_read_struct(&png, &info, NULL);
		free(row);
		return 0;
	}
	png_set_read_fn(png, &f, fpng_read);
	png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
	png_read_info(png, info);
	w = png_get_image_width(png, info);
	ht = png_get_image_height(png, info);
	ct = png_get_color_type(png, info);
	if (!pr_in_scope(png_get_bit_depth(png, info), ct, png_get_interlace_type(png, info),
	    png_get_valid(png, info, PNG_INFO_tRNS) != 0) || (uint64_t)w * ht > 1u << 20) {
		png_destroy_read_struct(&png, &info, NULL);
		return (uint64_t)-1;
	}
	png_read_update_info(png, info);
	bands = png_get_channels(png, info);
	row = malloc((size_t)w * (size_t)bands);
	if (mine && pr_start(&pr, data, size, f.off - 8, w, ht, bands, err, sizeof(err)) != 0)
		longjmp(f.jb, 1);
	for (uint32_t y = 0; y < ht; y++) {
		const unsigned char *r = row;

		if (mine && (r = pr_row(&pr, err, sizeof(err))) == NULL)
			longjmp(f.jb, 1);
		if (!mine)
			png_read_row(png, row, NULL);
		for (size_t i = 0; i < (size_t)w * (size_t)bands; i++)
			h = (h ^ r[i]) * 1099511628211u;
	}
	if (mine && pr_finish(&pr, err, sizeof(err)) != 0)
		longjmp(f.jb, 1);
	if (!mine)
		png_read_end(png, NULL);
	pr_free(&pr);
	png_destroy_read_struct(&png, &info, NULL);
	free(row);
	return h | 1;
}

/* data[0] odd: a PNG file, decoded with and without pngrows (same rows or same refusal);
 * even: bare chunks from the first IDAT on, of a made-up size and pixel format. */
static void
fuzz_pngrows(const uint8_t *data, size_t size)
{
	struct pr pr;
	char err[256];
	uint32_t w, h;

	if (size < 4)
		return;
	if (data[0] & 1) {
		uint64_t a = fpng_decode(data + 1, size - 1, 1);

		if (a != (uint64_t)-1 && a != fpng_decode(data + 1, size - 1, 0))
			abort();
		return;
	}
	w = (uint32_t)data[1] % 200 + 1;
	h = (uint32_t)data[2] % 200 + 1;
	if (pr_start(&pr, data + 4, size - 4, 0, w, h, data[3] % 4 + 1, err, sizeof(err)) != 0)
		return;
	for (uint32_t y = 0; y < h; y++)
		if (pr_row(&pr, err, sizeof(err)) == NULL)
			break;
	(void)pr_finish(&pr, err, sizeof(err));
	pr_free(&pr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 6) {
	case 0:
		fuzz_strings(data + 1, size - 1);
		break;
	case 1:
		fuzz_argv(data + 1, size - 1);
		break;
	case 2:
		fuzz_ring(data + 1, size - 1);
		break;
	case 3:
		fuzz_jpegprog(data + 1, size - 1);
		break;
	case 4:
		(void)icc_is_srgb(data + 1, size - 1);
		break;
	default:
		fuzz_pngrows(data + 1, size - 1);
		break;
	}
	return 0;
}
