/*
 * pngrows: owns the reading of a PNG's image data after libpng has parsed the header: the
 * IDAT chunks (CRC-checked), one zlib stream over them, the unfiltered rows, and the chunks
 * after them up to IEND.  See thumbr/pngrows.h for what is in scope and why.
 *
 * Concurrency: a struct pr is used by one thread at a time; there is no global state.  The
 * choice of SSE4.1 for Paeth reads the CPU model that libgcc fills in before main runs, so
 * no two threads ever race to compute it.
 *
 * Faithfulness to libpng 1.6 (pngrutil.c, png_read_IDAT_data and png_read_finish_IDAT;
 * pngread.c, png_read_end with a NULL info struct, as decode_png calls it) is what lets
 * decode_png use this reader without refusing or accepting anything it did not before:
 *   - zlib gets each IDAT in pieces of at most 8192 bytes (PNG_IDAT_READ_SIZE), a new
 *     piece only when the last is used up, and inflateInit2 with window bits 0 and
 *     inflateValidate off, as libpng does.  Mid-image, any zlib error, a stream ending
 *     early or the IDATs running out is an error.  zlib, once it has written the last byte
 *     of the image, goes on decoding what is left of its current piece until it would
 *     write again; an error there is an error for libpng too (its last row's read fails),
 *     and the pieces being libpng's makes that the same bytes here;
 *   - after the last row libpng inflates on (into 1024 bytes at a time, for as long as the
 *     stream yields data) to find the stream's end: damage and extra data there are only
 *     warnings, but running out of IDATs first is an error;
 *   - every IDAT's CRC is checked (libpng checks each as it finishes it, here each as it is
 *     reached: only the message can differ);
 *   - the chunks after the image data: libpng reads each header (the length at most 2^31 -
 *     1, and 8000000 for all but IDAT, whose limit depends on the image size; the type four
 *     letters), an IHDR is an error, a CRC error is one in a critical chunk and a warning
 *     in an ancillary one, and IEND ends it; nothing else is looked at.  A file that ends
 *     before IEND is truncated; what follows IEND is ignored.
 */
#define _GNU_SOURCE
#include "thumbr/pngrows.h"

#include <stdlib.h>
#include <string.h>

#include "thumbr/util.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#include <smmintrin.h>
#endif

#define BATCH (256 * 1024)      /* of filtered rows per inflate call: fewer, longer calls */
#define PIECE 8192              /* libpng's PNG_IDAT_READ_SIZE */
#define CHECKBUF 1024           /* libpng's PNG_INFLATE_BUF_SIZE */
#define CHUNK_MAX 8000000u      /* libpng's PNG_USER_CHUNK_MALLOC_MAX, Debian's build */
#define SLACK 16                /* after the batch: the 4-byte loads of 3-byte pixels */

#define T_IDAT 0x49444154u
#define T_IEND 0x49454e44u
#define T_IHDR 0x49484452u

/* The chunk at off: its length and type, checked as png_read_chunk_header does, and whole
 * in the file with its CRC (libpng reads all of every chunk it meets). */
static int
chunk_at(const struct pr *r, size_t off, uint32_t *len, uint32_t *type, char *err,
    size_t errsz)
{
	const unsigned char *p;
	uint64_t limit;

	if (off > r->len || r->len - off < 8) {
		errf(err, errsz, "file is truncated");
		return -1;
	}
	p = r->data + off;
	*len = be32(p);
	if (*len > 0x7fffffffu) {
		errf(err, errsz, "chunk length out of range");
		return -1;
	}
	for (int i = 4; i < 8; i++)
		if (p[i] < 'A' || p[i] > 'z' || (p[i] > 'Z' && p[i] < 'a')) {
			errf(err, errsz, "invalid chunk type");
			return -1;
		}
	*type = be32(p + 4);
	limit = *type == T_IDAT ? r->idat_limit : CHUNK_MAX;
	if (*len > limit) {
		errf(err, errsz, "%.4s chunk data is too large", (const char *)p + 4);
		return -1;
	}
	if (r->len - off - 8 < (uint64_t)*len + 4) {
		errf(err, errsz, "file is truncated");
		return -1;
	}
	return 0;
}

/* The CRC of the chunk at p (its length field) is right. */
static int
crc_ok(const unsigned char *p, uint32_t len)
{
	return crc32(0, p + 4, len + 4) == be32(p + 8 + len);
}

/* zlib's next piece of the IDATs, moving on to the next IDAT chunk when one is used up. */
static int
feed(struct pr *r, char *err, size_t errsz)
{
	uint32_t n, len, type;

	while (r->inleft == 0) {
		if (chunk_at(r, r->next, &len, &type, err, errsz) != 0)
			return -1;
		if (type != T_IDAT) {
			errf(err, errsz, "not enough image data");
			return -1;
		}
		if (!crc_ok(r->data + r->next, len)) {
			errf(err, errsz, "CRC error in an IDAT chunk");
			return -1;
		}
		r->in = r->data + r->next + 8;
		r->inleft = len;
		r->next += 12 + (size_t)len;
	}
	n = r->inleft < PIECE ? r->inleft : PIECE;
	r->z.next_in = (unsigned char *)r->in;
	r->z.avail_in = n;
	r->in += n;
	r->inleft -= n;
	return 0;
}

static void
zerr(const struct pr *r, int ret, char *err, size_t errsz)
{
	const char *m = r->z.msg;

	if (m == NULL)
		m = ret == Z_NEED_DICT ? "missing dictionary" : ret == Z_MEM_ERROR ?
		    "out of memory" : "damaged deflate stream";
	errf(err, errsz, "damaged image data: %s", m);
}

/* ---- unfiltering ---- */

static void
unfilter_c(int ft, unsigned char *row, const unsigned char *prev, size_t n, int bpp)
{
	size_t i, b = (size_t)bpp;

	switch (ft) {
	case 1:
		for (i = b; i < n; i++)
			row[i] = (unsigned char)(row[i] + row[i - b]);
		break;
	case 2:
		for (i = 0; i < n; i++)
			row[i] = (unsigned char)(row[i] + prev[i]);
		break;
	case 3:
		for (i = 0; i < b; i++)
			row[i] = (unsigned char)(row[i] + (prev[i] >> 1));
		for (; i < n; i++)
			row[i] = (unsigned char)(row[i] + ((row[i - b] + prev[i]) >> 1));
		break;
	case 4:
		for (i = 0; i < b; i++)
			row[i] = (unsigned char)(row[i] + prev[i]);
		for (; i < n; i++) {
			int a = row[i - b], c = prev[i - b], u = prev[i];
			int p = u - c, q = a - c;
			int pa = abs(p), pb = abs(q), pc = abs(p + q);

			/* ties go to a, then b, as the PNG specification orders them;
			 * written as libpng's C is, which is 5% quicker on a 2-byte-pixel
			 * Paeth image than the specification's order of tests */
			if (pb < pa) {
				pa = pb;
				a = u;
			}
			if (pc < pa)
				a = c;
			row[i] = (unsigned char)(row[i] + a);
		}
		break;
	}
}

#if defined(__x86_64__)
/*
 * Sub, Average and Paeth depend on the pixel to the left, so a pixel (3 or 4 bytes in the
 * low lanes) is done at a time, as libpng's own SSE2 filters do; Up is 16 bytes at a time.
 * A 3-byte pixel is loaded 4 bytes wide (the row's buffer has SLACK after it) and stored 3
 * wide; the extra lane never reaches another.
 */
static inline __m128i
load4(const unsigned char *p)
{
	int32_t t;

	memcpy(&t, p, 4);
	return _mm_cvtsi32_si128(t);
}

static inline __attribute__((always_inline)) void
store(unsigned char *p, __m128i v, int bpp)
{
	int32_t t = _mm_cvtsi128_si32(v);

	memcpy(p, &t, bpp == 4 ? 4 : 3);
}

static void
up_sse2(unsigned char *row, const unsigned char *prev, size_t n)
{
	size_t i;

	for (i = 0; i + 16 <= n; i += 16)
		_mm_storeu_si128((__m128i *)(row + i), _mm_add_epi8(
		    _mm_loadu_si128((const __m128i *)(row + i)),
		    _mm_loadu_si128((const __m128i *)(prev + i))));
	for (; i < n; i++)
		row[i] = (unsigned char)(row[i] + prev[i]);
}

static inline __attribute__((always_inline)) void
sub_sse2(unsigned char *row, size_t n, int bpp)
{
	__m128i d = _mm_setzero_si128();

	for (size_t i = 0; i < n; i += (size_t)bpp) {
		d = _mm_add_epi8(load4(row + i), d);
		store(row + i, d, bpp);
	}
}

static inline __attribute__((always_inline)) void
avg_sse2(unsigned char *row, const unsigned char *prev, size_t n, int bpp)
{
	const __m128i one = _mm_set1_epi8(1);
	__m128i d = _mm_setzero_si128();

	for (size_t i = 0; i < n; i += (size_t)bpp) {
		__m128i b = load4(prev + i);
		/* _mm_avg_epu8 rounds up; PNG's average rounds down */
		__m128i avg = _mm_sub_epi8(_mm_avg_epu8(d, b),
		    _mm_and_si128(_mm_xor_si128(d, b), one));

		d = _mm_add_epi8(load4(row + i), avg);
		store(row + i, d, bpp);
	}
}

static inline __m128i
abs16(__m128i x)
{
	__m128i m = _mm_cmplt_epi16(x, _mm_setzero_si128());

	return _mm_sub_epi16(_mm_xor_si128(x, m), m);
}

static inline __m128i
pick(__m128i c, __m128i t, __m128i e)
{
	return _mm_or_si128(_mm_and_si128(c, t), _mm_andnot_si128(c, e));
}

/* in 16-bit lanes: a left, b above, c above-left */
static inline __attribute__((always_inline)) void
paeth_sse2(unsigned char *row, const unsigned char *prev, size_t n, int bpp)
{
	const __m128i zero = _mm_setzero_si128();
	__m128i a, b = zero, c, d = zero, pa, pb, pc, m;

	for (size_t i = 0; i < n; i += (size_t)bpp) {
		c = b;
		b = _mm_unpacklo_epi8(load4(prev + i), zero);
		a = d;
		d = _mm_unpacklo_epi8(load4(row + i), zero);
		pa = _mm_sub_epi16(b, c);
		pb = _mm_sub_epi16(a, c);
		pc = abs16(_mm_add_epi16(pa, pb));
		pa = abs16(pa);
		pb = abs16(pb);
		m = _mm_min_epi16(pc, _mm_min_epi16(pa, pb));
		d = _mm_add_epi8(d, pick(_mm_cmpeq_epi16(m, pa), a,
		    pick(_mm_cmpeq_epi16(m, pb), b, c)));
		store(row + i, _mm_packus_epi16(d, d), bpp);
	}
}

/* The same with SSE4.1's widening load, absolute value and blend: 10% fewer cycles. */
static inline __attribute__((always_inline, target("sse4.1"))) void
paeth_sse41(unsigned char *row, const unsigned char *prev, size_t n, int bpp)
{
	const __m128i one = _mm_set1_epi16(1);
	__m128i a, b = _mm_setzero_si128(), c, d = b, pa, pb, pc, p;

	for (size_t i = 0; i < n; i += (size_t)bpp) {
		c = b;
		b = _mm_cvtepu8_epi16(load4(prev + i));
		a = d;
		d = _mm_cvtepu8_epi16(load4(row + i));
		pa = _mm_sub_epi16(b, c);
		pb = _mm_sub_epi16(a, c);
		pc = _mm_abs_epi16(_mm_add_epi16(pa, pb));
		pa = _mm_abs_epi16(pa);
		pb = _mm_abs_epi16(pb);
		/* b if pb <= pc, else c; then a if pa <= both */
		p = _mm_blendv_epi8(c, b, _mm_cmpgt_epi16(_mm_add_epi16(pc, one), pb));
		p = _mm_blendv_epi8(p, a, _mm_cmpgt_epi16(
		    _mm_add_epi16(_mm_min_epi16(pb, pc), one), pa));
		d = _mm_add_epi8(d, p);
		store(row + i, _mm_packus_epi16(d, d), bpp);
	}
}

/* with bpp a constant in each call, so that the stores are fixed-width */
static __attribute__((target("sse4.1"))) void
paeth41(unsigned char *row, const unsigned char *prev, size_t n, int bpp)
{
	if (bpp == 3)
		paeth_sse41(row, prev, n, 3);
	else
		paeth_sse41(row, prev, n, 4);
}

static void
simd(int level, int ft, unsigned char *row, const unsigned char *prev, size_t n, int bpp)
{
	if (ft == 3 && bpp == 3)
		avg_sse2(row, prev, n, 3);
	else if (ft == 3)
		avg_sse2(row, prev, n, 4);
	else if (ft == 4 && level >= 2)
		paeth41(row, prev, n, bpp);
	else if (ft == 4 && bpp == 3)
		paeth_sse2(row, prev, n, 3);
	else if (ft == 4)
		paeth_sse2(row, prev, n, 4);
	else if (bpp == 3)
		sub_sse2(row, n, 3);
	else
		sub_sse2(row, n, 4);
}
#endif

static void
unfilter(const struct pr *r, int ft, unsigned char *row, const unsigned char *prev)
{
	if (ft == 0)
		return;
#if defined(__x86_64__)
	if (r->level > 0 && ft == 2) {
		up_sse2(row, prev, r->rowbytes);
		return;
	}
	if (r->level > 0 && (r->bpp == 3 || r->bpp == 4)) {
		simd(r->level, ft, row, prev, r->rowbytes, r->bpp);
		return;
	}
#endif
	unfilter_c(ft, row, prev, r->rowbytes, r->bpp);
}

/* ---- the interface ---- */

int
pr_start(struct pr *r, const unsigned char *data, size_t len, size_t idat, uint32_t w,
    uint32_t h, int bpp, char *err, size_t errsz)
{
	uint64_t factor, lim;
	uint32_t clen, type;
	size_t rows;

	memset(r, 0, sizeof(*r));
	if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu || bpp < 1 || bpp > 4) {
		errf(err, errsz, "invalid image size or pixel format");
		return -1;
	}
	r->data = data;
	r->len = len;
	r->h = h;
	r->bpp = bpp;
	r->rowbytes = (size_t)w * (size_t)bpp;
	r->stride = r->rowbytes + 1;
	r->left = (uint64_t)r->stride * h;
	/* png_check_chunk_length's limit for an IDAT: the image's filtered size and zlib's
	 * overhead, never below that of other chunks */
	factor = (uint64_t)w * (uint64_t)bpp + 1;
	lim = h > 0xffffffffu / factor ? 0x7fffffffu : h * factor;
	lim += 6 + 5 * (lim / (factor > 32566 ? 32566 : factor) + 1);
	lim = lim < 0x7fffffffu ? lim : 0x7fffffffu;
	r->idat_limit = lim > CHUNK_MAX ? lim : CHUNK_MAX;

	if (chunk_at(r, idat, &clen, &type, err, errsz) != 0)
		return -1;
	if (type != T_IDAT) {
		errf(err, errsz, "no IDAT chunk where the image data should start");
		return -1;
	}
	if (!crc_ok(data + idat, clen)) {
		errf(err, errsz, "CRC error in an IDAT chunk");
		return -1;
	}
	r->in = data + idat + 8;
	r->inleft = clen;
	r->next = idat + 12 + (size_t)clen;

	rows = BATCH / r->stride;
	rows = rows < 1 ? 1 : rows > h ? h : rows;
	r->cap = rows * r->stride;
	/* the previous row (zero above the first), the batch, and slack for the SIMD loads */
	if ((r->buf = calloc(1, r->stride + r->cap + SLACK)) == NULL) {
		errf(err, errsz, "out of memory");
		return -1;
	}
	/* window bits 0: the stream's own window, as libpng asks; its Adler-32 is not
	 * checked, as decode_png asks of libpng (the IDAT CRCs cover the same bytes) */
	if (inflateInit2(&r->z, 0) != Z_OK) {
		free(r->buf);
		r->buf = NULL;
		errf(err, errsz, "out of memory");
		return -1;
	}
	r->zinit = 1;
	inflateValidate(&r->z, 0);
#if defined(__x86_64__)
	r->level = __builtin_cpu_supports("sse4.1") ? 2 : 1;
#endif
	return 0;
}

void
pr_set_level(struct pr *r, int level)
{
#if defined(__x86_64__)
	if (level >= 2 && !__builtin_cpu_supports("sse4.1"))
		level = 1;
	r->level = level < 0 ? 0 : level > 2 ? 2 : level;
#else
	(void)level;
	r->level = 0;
#endif
}

/* Inflate into the batch, up to its end or the image's, whichever is first. */
static int
inflate_more(struct pr *r, char *err, size_t errsz)
{
	size_t room = r->cap - r->filled;
	int ret;

	if (room > r->left)
		room = (size_t)r->left;
	if (room == 0) {
		errf(err, errsz, "no more image data to read");
		return -1;
	}
	if (r->z.avail_in == 0 && feed(r, err, errsz) != 0)
		return -1;
	r->z.next_out = r->buf + r->stride + r->filled;
	r->z.avail_out = (uInt)room;
	ret = inflate(&r->z, Z_NO_FLUSH);
	room -= r->z.avail_out;
	r->filled += room;
	r->left -= room;
	if (ret == Z_STREAM_END) {
		r->zend = 1;
		if (r->left > 0) {
			errf(err, errsz, "not enough image data");
			return -1;
		}
		return 0;
	}
	if (ret != Z_OK) {
		zerr(r, ret, err, errsz);
		return -1;
	}
	return 0;
}

/*
 * The batch holds rows as zlib wrote them, each unfiltered in place when asked for; the
 * row before the batch's first is kept in front of it.  The row returned stays valid until
 * the next call, which is when a used-up batch is refilled.
 */
const unsigned char *
pr_row(struct pr *r, char *err, size_t errsz)
{
	unsigned char *row;
	const unsigned char *prev;

	if (r->buf == NULL || r->y >= r->h) {
		errf(err, errsz, "no more rows");
		return NULL;
	}
	while (r->filled - r->proc < r->stride) {
		if (r->proc == r->cap) {
			memcpy(r->buf, r->buf + r->cap, r->stride);
			r->filled = r->proc = 0;
		}
		if (inflate_more(r, err, errsz) != 0)
			return NULL;
	}
	row = r->buf + r->stride + r->proc;
	prev = r->proc > 0 ? row - r->stride : r->buf;
	if (row[0] > 4) {
		errf(err, errsz, "bad filter type %u in row %u", row[0], r->y);
		return NULL;
	}
	unfilter(r, row[0], row + 1, prev + 1);
	r->proc += r->stride;
	r->y++;
	return row + 1;
}

int
pr_finish(struct pr *r, char *err, size_t errsz)
{
	unsigned char tmp[CHECKBUF];
	uint32_t len, type;
	size_t off;

	if (r->buf == NULL || r->y != r->h) {
		errf(err, errsz, "rows left unread");
		return -1;
	}
	if (!r->zend) {
		uint64_t extra = 0;
		int ret;

		/* as libpng: inflate on while the stream yields data; its end, or damage, stop
		 * it (libpng only warns of either); running out of IDATs is an error */
		do {
			if (r->z.avail_in == 0 && feed(r, err, errsz) != 0)
				return -1;
			r->z.next_out = tmp;
			r->z.avail_out = sizeof(tmp);
			ret = inflate(&r->z, Z_NO_FLUSH);
			extra += sizeof(tmp) - r->z.avail_out;
		} while (ret == Z_OK && extra > 0);
		r->zend = 1;
	}
	for (off = r->next;; off += 12 + (size_t)len) {
		const unsigned char *p = r->data + off;

		if (chunk_at(r, off, &len, &type, err, errsz) != 0)
			return -1;
		if (type == T_IHDR) {
			errf(err, errsz, "IHDR chunk after the image data");
			return -1;
		}
		/* bit 5 of the first letter: ancillary, whose CRC errors libpng ignores */
		if (!(p[4] & 0x20) && !crc_ok(p, len)) {
			errf(err, errsz, "CRC error in the %.4s chunk", (const char *)p + 4);
			return -1;
		}
		if (type == T_IEND)
			return 0;
	}
}

void
pr_free(struct pr *r)
{
	if (r->zinit)
		inflateEnd(&r->z);
	r->zinit = 0;
	free(r->buf);
	r->buf = NULL;
}

int
pr_in_scope(int bit_depth, int color_type, int interlace, int has_trns)
{
	return bit_depth == 8 && interlace == 0 && !has_trns &&
	    (color_type == 0 || color_type == 2 || color_type == 4 || color_type == 6);
}
