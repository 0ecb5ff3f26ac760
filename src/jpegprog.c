/*
 * jpegprog: a progressive JPEG at 1/8, 2/8 or 4/8 scale (see thumbr/jpegprog.h).
 *
 * Owns: the struct jp it fills; nothing global.  Single-threaded, reentrant.
 *
 * The file is walked marker by marker (ITU T.81, annex B): SOF2 gives the components, DQT
 * the quantisers, DHT the Huffman tables, DRI the restart interval.  Scans are decoded as
 * annex G.1.2 says: DC first scans add the Huffman-coded difference to the component's
 * predictor, DC refinements add one bit; AC first scans code runs of zeros, values and runs
 * of empty blocks (EOBRUN), AC refinements one correction bit per coefficient already
 * non-zero and the sign of each newly non-zero one.  The progression is checked as libjpeg
 * checks it (G.1.1.1.1 and jdinput.c): per coefficient, a first scan, then one bit at a time.
 *
 * Pixels: a block's kept coefficients, dequantised, through the separable N-point inverse
 * DCT (N = ow across, oh down), plus 128, rounded and clamped; then libjpeg's integer YCbCr
 * to RGB.  At 1/8 (N = 1) that is libjpeg's own 1 x 1 inverse DCT, ((DC * Q + 4) >> 3) + 128.
 */
#include "thumbr/jpegprog.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "thumbr/util.h"

/* natural (row-major) index -> zigzag index */
static const unsigned char zigzag[64] = {
	0, 1, 5, 6, 14, 15, 27, 28, 2, 4, 7, 13, 16, 26, 29, 42,
	3, 8, 12, 17, 25, 30, 41, 43, 9, 11, 18, 24, 31, 40, 44, 53,
	10, 19, 23, 32, 39, 45, 52, 54, 20, 22, 33, 38, 46, 51, 55, 60,
	21, 34, 37, 47, 50, 56, 59, 61, 35, 36, 48, 49, 57, 58, 62, 63,
};

/* the bit reader's steps, inlined into the scan loops that run them per coefficient */
#define INLINE static inline __attribute__((always_inline))

#define FAST 9                  /* bits of code a table lookup decodes */

/* A Huffman table, as annex F.2.2.3 decodes it, with a lookup for codes of FAST bits or
 * fewer: fast[next FAST bits] = length << 8 | value, 0 for a longer code. */
struct huff {
	int set;
	int32_t maxcode[17];    /* largest code of each length, -1: none */
	int32_t mincode[17];
	int valptr[17];
	unsigned char val[256];
	uint16_t fast[1 << FAST];
	int32_t fac[1 << FAST];         /* AC: value << 8 | run << 4 | bits, when code and
					 * value fit in FAST bits; else 0 */
	uint16_t rfa[1 << FAST];        /* AC refinement, a new coefficient: 1 << 9 |
					 * positive << 8 | run << 4 | bits, when code and sign
					 * bit fit in FAST bits; else 0 */
};

/* Entropy-coded bits, MSB first in acc; stops at a marker and supplies zeros past it, which a
 * scan that uses them is corrupt for. */
struct bits {
	const unsigned char *p, *end;
	uint64_t acc;
	int n;                  /* bits in acc */
	int pad;                /* of them, the last pad are zeros past the data */
	int stopped;            /* at a marker or the end */
};

struct parse {
	struct jp *d;
	struct huff dct[4], act[4];
	uint16_t quant[4][64];
	int qset[4];
	unsigned ri;            /* restart interval, in MCUs */
	int eoi;                /* the end-of-image marker was reached */
	uint64_t max_pixels;    /* the largest frame allocated for, 0: any */
	char *err;
	size_t errsz;
};

/* Whether any byte of w is 0xFF. */
static int
has_ff(uint64_t w)
{
	uint64_t x = ~w;

	return ((x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL) != 0;
}

INLINE void
fill(struct bits *b)
{
	if (!b->stopped && b->end - b->p >= 8) {        /* the common case: eight plain bytes */
		uint64_t w;

		memcpy(&w, b->p, 8);
		if (!has_ff(w)) {
			int k = (63 - b->n) >> 3;

			w = __builtin_bswap64(w);
			b->acc |= w >> (64 - 8 * k) << (64 - 8 * k - b->n);
			b->p += k;
			b->n += 8 * k;
			return;
		}
	}
	while (b->n <= 56) {
		unsigned c = 0;

		if (!b->stopped && b->p < b->end) {
			c = *b->p;
			if (c != 0xFF)
				b->p++;
			else if (b->p + 1 < b->end && b->p[1] == 0x00)
				b->p += 2;
			else {
				b->stopped = 1;
				c = 0;
			}
		} else {
			b->stopped = 1;
		}
		if (b->stopped)
			b->pad += 8;
		b->acc |= (uint64_t)c << (56 - b->n);
		b->n += 8;
	}
}

/* Bits past the data were used: the scan is cut short. */
static int
short_read(const struct bits *b)
{
	return b->n < b->pad;
}

INLINE void
consume(struct bits *b, int k)
{
	b->acc <<= k;
	b->n -= k;
}

/* k (0 to 16) bits as an unsigned number */
INLINE unsigned
getbits(struct bits *b, int k)
{
	unsigned v;

	if (k == 0)
		return 0;
	if (b->n < k)
		fill(b);
	v = (unsigned)(b->acc >> (64 - k));
	consume(b, k);
	return v;
}

INLINE unsigned
getbit(struct bits *b)
{
	unsigned v;

	if (b->n < 1)
		fill(b);
	v = (unsigned)(b->acc >> 63);
	consume(b, 1);
	return v;
}

/* The value a magnitude category s (1 to 15) and its s bits code (F.2.2.1, EXTEND). */
INLINE int32_t
extend(unsigned v, int s)
{
	return v < 1u << (s - 1) ? (int32_t)v - (int32_t)((1u << s) - 1) : (int32_t)v;
}

/* The next Huffman symbol, or -1 for a code the table does not have. */
INLINE int
decode(struct bits *b, const struct huff *t)
{
	uint32_t peek;
	unsigned e;

	if (b->n < 16)
		fill(b);
	e = t->fast[b->acc >> (64 - FAST)];
	if (e != 0) {
		consume(b, (int)(e >> 8));
		return (int)(e & 0xFF);
	}
	peek = (uint32_t)(b->acc >> 48);
	for (int l = FAST + 1; l <= 16; l++) {
		int32_t code = (int32_t)(peek >> (16 - l));

		if (t->maxcode[l] >= 0 && code <= t->maxcode[l]) {
			consume(b, l);
			return t->val[t->valptr[l] + code - t->mincode[l]];
		}
	}
	return -1;
}

static int
fail(struct parse *ps, const char *what)
{
	errf(ps->err, ps->errsz, "%s", what);
	return -1;
}

int
jp_supported(int num, int ncomp, const int *h, const int *v)
{
	int maxh = 1, maxv = 1;

	if (num != 1 && num != 2 && num != 4)
		return 0;
	for (int i = 0; i < ncomp; i++) {
		if (h[i] < 1 || h[i] > 4 || v[i] < 1 || v[i] > 4)
			return 0;
		maxh = h[i] > maxh ? h[i] : maxh;
		maxv = v[i] > maxv ? v[i] : maxv;
	}
	for (int i = 0; i < ncomp; i++) {
		if (maxh % h[i] != 0 || maxv % v[i] != 0)
			return 0;       /* libjpeg has no fractional sampling either */
		if (num > 1 && (num * maxh / h[i] > 8 || num * maxv / v[i] > 8))
			return 0;       /* chroma would need upsampling */
	}
	return 1;
}

/* The N-point inverse DCT that takes coefficients 0 .. n - 1 of an 8-point one to n pixels:
 * m[x][u] = C(u) / 2 * cos((2x + 1) u pi / 2n), C(0) = 1 / sqrt 2.  The continuous signal
 * the 8-point transform describes, cut to its lowest n frequencies, sampled at the centres
 * of n pixels each 8 / n wide; for n = 8 the plain inverse DCT. */
static void
idct_matrix(float m[8][8], int n)
{
	for (int x = 0; x < n; x++)
		for (int u = 0; u < n; u++)
			m[x][u] = (float)((u == 0 ? M_SQRT1_2 : 1.0) / 2 *
			    cos((2 * x + 1) * u * M_PI / (2 * n)));
}

static int
parse_sof(struct parse *ps, const unsigned char *p, size_t n)
{
	struct jp *d = ps->d;
	int hs[3], vs[3];

	if (n < 6 || p[0] != 8)
		return fail(ps, "not an 8-bit JPEG");
	d->height = be16(p + 1);
	d->width = be16(p + 3);
	d->ncomp = p[5];
	if (d->width == 0 || d->height == 0)
		return fail(ps, "corrupt JPEG data: empty image");
	if (ps->max_pixels != 0 && (uint64_t)d->width * d->height > ps->max_pixels) {
		errf(ps->err, ps->errsz, "image is %ux%u, more than the %llu pixels allowed",
		    d->width, d->height, (unsigned long long)ps->max_pixels);
		return -1;
	}
	if ((d->ncomp != 1 && d->ncomp != 3) || n < 6 + 3 * (size_t)d->ncomp)
		return fail(ps, "not a grey or three-component JPEG");
	d->maxh = d->maxv = 1;
	for (int i = 0; i < d->ncomp; i++) {
		struct jp_comp *c = &d->c[i];

		c->id = p[6 + 3 * i];
		c->h = hs[i] = p[7 + 3 * i] >> 4;
		c->v = vs[i] = p[7 + 3 * i] & 15;
		c->tq = p[8 + 3 * i];
		if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4 || c->tq > 3)
			return fail(ps, "corrupt JPEG data: bad component");
		d->maxh = c->h > d->maxh ? c->h : d->maxh;
		d->maxv = c->v > d->maxv ? c->v : d->maxv;
	}
	if (!jp_supported(1, d->ncomp, hs, vs))
		return fail(ps, "fractional sampling not implemented");
	if (!jp_supported(d->num, d->ncomp, hs, vs))
		return fail(ps, "sampling not implemented at this scale");
	d->w = (uint32_t)(((uint64_t)d->width * (unsigned)d->num + 7) / 8);
	d->h = (uint32_t)(((uint64_t)d->height * (unsigned)d->num + 7) / 8);
	d->mcux = (d->width + 8u * (unsigned)d->maxh - 1) / (8u * (unsigned)d->maxh);
	d->mcuy = (d->height + 8u * (unsigned)d->maxv - 1) / (8u * (unsigned)d->maxv);
	for (int i = 0; i < d->ncomp; i++) {
		struct jp_comp *c = &d->c[i];
		uint32_t pw = (uint32_t)(((uint64_t)d->width * (unsigned)c->h + (unsigned)d->maxh - 1) /
		    (unsigned)d->maxh);
		uint32_t ph = (uint32_t)(((uint64_t)d->height * (unsigned)c->v + (unsigned)d->maxv - 1) /
		    (unsigned)d->maxv);
		size_t blocks;

		c->bw = (pw + 7) / 8;
		c->bh = (ph + 7) / 8;
		c->stride = d->mcux * (unsigned)c->h;
		blocks = (size_t)c->stride * d->mcuy * (unsigned)c->v;
		memset(c->bits, -1, sizeof(c->bits));
		c->ow = c->oh = 1;
		c->kn = 1;
		if (d->num > 1) {
			c->ow = d->num * d->maxh / c->h;
			c->oh = d->num * d->maxv / c->v;
			/* the bottom-right of the ow x oh the inverse DCT reads comes last in
			 * zigzag order */
			c->kn = zigzag[(c->oh - 1) * 8 + c->ow - 1] + 1;
			for (int v = 0; v < c->oh; v++)
				for (int u = 0; u < c->ow; u++)
					c->used |= (uint64_t)1 << zigzag[v * 8 + u];
			c->used &= ~(uint64_t)1;
			idct_matrix(c->mx, c->ow);
			idct_matrix(c->my, c->oh);
			c->nz = calloc(blocks, sizeof(*c->nz));
			c->strip = malloc((size_t)c->stride * (unsigned)c->ow * (unsigned)c->v *
			    (unsigned)c->oh);
			if (c->nz == NULL || c->strip == NULL)
				return fail(ps, "out of memory");
		}
		if (d->num == 1 && i == 0)      /* a row of levels of each component */
			c->strip = malloc((size_t)d->w * (unsigned)d->ncomp);
		c->coef = calloc(blocks, (size_t)c->kn * sizeof(*c->coef));
		if (c->coef == NULL || (d->num == 1 && i == 0 && c->strip == NULL))
			return fail(ps, "out of memory");
	}
	return 0;
}

static int
parse_dht(struct parse *ps, const unsigned char *p, size_t n)
{
	while (n > 0) {
		unsigned cls = p[0] >> 4, id = p[0] & 15, count = 0;
		struct huff *t;
		int32_t code = 0;
		int k = 0;

		if (n < 17 || cls > 1 || id > 3)
			return fail(ps, "corrupt JPEG data: bad Huffman table");
		for (int l = 1; l <= 16; l++)
			count += p[l];
		if (count > 256 || n < 17 + (size_t)count)
			return fail(ps, "corrupt JPEG data: bad Huffman table");
		t = cls == 0 ? &ps->dct[id] : &ps->act[id];
		memset(t, 0, sizeof(*t));
		for (int l = 1; l <= 16; l++) {
			t->valptr[l] = k;
			t->mincode[l] = code;
			code += p[l];
			k += p[l];
			t->maxcode[l] = p[l] ? code - 1 : -1;
			if (code >= (int32_t)1 << l && p[l] != 0)
				return fail(ps, "corrupt JPEG data: bad Huffman table");
			code <<= 1;
		}
		memcpy(t->val, p + 17, count);
		for (unsigned i = 0; i < count; i++)    /* a DC symbol is a bit count (dc_scan
							 * takes 11 at most) */
			if (cls == 0 && t->val[i] > 15)
				return fail(ps, "corrupt JPEG data: bad Huffman table");
		for (int l = 1; l <= FAST; l++)
			for (int32_t c = t->mincode[l]; c <= t->maxcode[l]; c++) {
				uint16_t e = (uint16_t)(l << 8 | t->val[t->valptr[l] + c - t->mincode[l]]);
				int shift = FAST - l;

				for (int32_t j = 0; j < (int32_t)1 << shift; j++)
					t->fast[(c << shift) + j] = e;
			}
		for (int j = 0; cls == 1 && j < 1 << FAST; j++) {
			int l = t->fast[j] >> 8, rs = t->fast[j] & 0xFF, sz = rs & 15;

			if (l != 0 && sz != 0 && l + sz <= FAST) {
				unsigned bitsv = (unsigned)j >> (FAST - l - sz) & ((1u << sz) - 1);

				t->fac[j] = (int32_t)((uint32_t)extend(bitsv, sz) << 8) |
				    (rs >> 4) << 4 | (l + sz);
			}
			if (l != 0 && sz == 1 && l + 1 <= FAST) {
				unsigned positive = (unsigned)j >> (FAST - l - 1) & 1;

				t->rfa[j] = (uint16_t)(1u << 9 | positive << 8 |
				    (unsigned)(rs >> 4) << 4 | (unsigned)(l + 1));
			}
		}
		t->set = 1;
		p += 17 + count;
		n -= 17 + count;
	}
	return 0;
}

static int
parse_dqt(struct parse *ps, const unsigned char *p, size_t n)
{
	while (n > 0) {
		unsigned prec = p[0] >> 4, id = p[0] & 15;
		size_t size = 1 + 64 * (prec ? 2 : 1);

		if (prec > 1 || id > 3 || n < size)
			return fail(ps, "corrupt JPEG data: bad quantisation table");
		for (int k = 0; k < 64; k++)    /* in zigzag order, as the file has them */
			ps->quant[id][k] = (uint16_t)(prec ? be16(p + 1 + 2 * k) : p[1 + k]);
		ps->qset[id] = 1;
		p += size;
		n -= size;
	}
	return 0;
}

/* Past a restart marker, which must be the expected one, with nothing but the padding of
 * the last byte before it. */
static int
restart(struct parse *ps, struct bits *b, unsigned *next)
{
	if (b->n - b->pad >= 8)
		return fail(ps, "corrupt JPEG data: extraneous bytes before a marker");
	b->acc = 0;
	b->n = b->pad = 0;
	b->stopped = 0;
	while (b->p + 1 < b->end && b->p[0] == 0xFF && b->p[1] == 0xFF)
		b->p++;
	if (b->p + 1 >= b->end || b->p[0] != 0xFF || b->p[1] != 0xD0 + (*next & 7))
		return fail(ps, "corrupt JPEG data: bad restart marker");
	b->p += 2;
	(*next)++;
	return 0;
}

/* The end of a scan: what is left of the last byte is padding, and a marker must follow. */
static int
scan_end(struct parse *ps, const struct bits *b, const unsigned char **pp,
    const unsigned char *end)
{
	if (b->n - b->pad >= 8 || (!b->stopped && b->p < end && *b->p != 0xFF))
		return fail(ps, "corrupt JPEG data: extraneous bytes after a scan");
	*pp = b->p;
	return 0;
}

/* The block at bx, by of component c: its kept coefficients. */
static int16_t *
coef_at(const struct jp_comp *c, uint32_t bx, uint32_t by)
{
	return c->coef + ((size_t)by * c->stride + bx) * (size_t)c->kn;
}

/* One DC scan of the components in sc (indices into d->c), from *pp; leaves *pp at the
 * marker that ends it. */
static int
dc_scan(struct parse *ps, const int *sc, const int *tbl, int ns, int ah, int al,
    const unsigned char **pp, const unsigned char *end)
{
	struct jp *d = ps->d;
	struct bits b = { *pp, end, 0, 0, 0, 0 };
	int32_t pred[3] = { 0, 0, 0 };
	uint32_t nx = ns > 1 ? d->mcux : d->c[sc[0]].bw;
	uint32_t ny = ns > 1 ? d->mcuy : d->c[sc[0]].bh;
	unsigned left = ps->ri, next_rst = 0;

	if (ns > 1) {           /* T.81 B.2.3: an MCU holds at most ten blocks */
		int blocks = 0;

		for (int i = 0; i < ns; i++)
			blocks += d->c[sc[i]].h * d->c[sc[i]].v;
		if (blocks > 10)
			return fail(ps, "corrupt JPEG data: too many blocks in an MCU");
	}
	for (int i = 0; i < ns; i++) {
		/* the progression, as libjpeg checks it: one first scan, then refinements of one
		 * bit each, in order */
		struct jp_comp *c = &d->c[sc[i]];

		if (ah == 0) {
			if (c->bits[0] >= 0)
				return fail(ps, "corrupt JPEG data: a second first DC scan");
			if (!ps->dct[tbl[i]].set)
				return fail(ps, "corrupt JPEG data: missing Huffman table");
		} else {
			if (c->bits[0] < 0)
				return fail(ps, "corrupt JPEG data: refinement before the first scan");
			if (ah != c->bits[0])
				return fail(ps, "corrupt JPEG data: bad progression");
		}
	}
	for (uint32_t my = 0; my < ny; my++)
		for (uint32_t mx = 0; mx < nx; mx++) {
			if (ps->ri != 0) {
				if (left == 0) {
					if (restart(ps, &b, &next_rst) != 0)
						return -1;
					memset(pred, 0, sizeof(pred));
					left = ps->ri;
				}
				left--;
			}
			for (int i = 0; i < ns; i++) {
				struct jp_comp *c = &d->c[sc[i]];
				int bh = ns > 1 ? c->h : 1, bv = ns > 1 ? c->v : 1;

				for (int v = 0; v < bv; v++)
					for (int h = 0; h < bh; h++) {
						int16_t *coef = coef_at(c, mx * (unsigned)bh + (unsigned)h,
						    my * (unsigned)bv + (unsigned)v);

						if (ah == 0) {
							int s = decode(&b, &ps->dct[tbl[i]]);
							int32_t diff;

							if (s < 0 || s > 11)
								return fail(ps, "corrupt JPEG data: bad Huffman code");
							diff = s ? extend(getbits(&b, s), s) : 0;
							pred[i] += diff;
							if (pred[i] > SHRT_MAX >> al || pred[i] < SHRT_MIN >> al)
								return fail(ps, "corrupt JPEG data: DC out of range");
							*coef = (int16_t)(pred[i] * ((int32_t)1 << al));
						} else if (getbit(&b)) {
							*coef = (int16_t)(*coef | (1 << al));
						}
					}
			}
			if (short_read(&b))
				return fail(ps, "corrupt JPEG data: premature end of data segment");
		}
	for (int i = 0; i < ns; i++)
		d->c[sc[i]].bits[0] = (signed char)al;
	return scan_end(ps, &b, pp, end);
}

/* Bits a to z of a 64-bit mask (0 <= a, z <= 63), none when a > z. */
INLINE uint64_t
span(int a, int z)
{
	return a > z ? 0 : (~(uint64_t)0 >> (63 - z)) & (~(uint64_t)0 << a);
}

/* Set bits of x, without the libgcc call plain x86-64 makes of __builtin_popcountll. */
static int
popcount(uint64_t x)
{
	x = x - (x >> 1 & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + (x >> 2 & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
	return (int)(x * 0x0101010101010101ULL >> 56);
}

/* The correction bits of an AC refinement for the coefficients in m (all non-zero), in
 * order; applied to those kept (below kn), the others' only read. */
INLINE void
correct(struct bits *b, int16_t *coef, uint64_t m, int kn, int al)
{
	uint64_t kept, other;
	int rest;

	if (m == 0)
		return;
	kept = m & span(0, kn - 1);
	other = m & ~kept;
	rest = popcount(other);

	while (kept != 0) {
		int k = __builtin_ctzll(kept), v = coef[k];
		/* the bit raises the magnitude, unless an earlier one of this scan has */
		int up = -(int)(getbit(b) & ((v & 1 << al) == 0));

		kept &= kept - 1;
		coef[k] = (int16_t)(v + (up & (v >= 0 ? 1 << al : -(1 << al))));
	}
	for (; rest > 0; rest -= 16)
		(void)getbits(b, rest < 16 ? rest : 16);
}

/* Before each block of an AC scan: the restart marker due, if one is. */
INLINE int
ac_restart(struct parse *ps, struct bits *b, unsigned *left, unsigned *next, uint32_t *eobrun)
{
	if (ps->ri == 0)
		return 0;
	if (*left == 0) {
		if (restart(ps, b, next) != 0)
			return -1;
		*eobrun = 0;
		*left = ps->ri;
	}
	(*left)--;
	return 0;
}

/* An AC first scan (G.1.2.2) of component c, from *pp. */
static int
ac_first(struct parse *ps, struct jp_comp *c, const struct huff *t, int ss, int se, int al,
    const unsigned char **pp, const unsigned char *end)
{
	struct bits b = { *pp, end, 0, 0, 0, 0 };
	unsigned left = ps->ri, next_rst = 0;
	uint32_t eobrun = 0;
	int kn = c->kn;

	for (uint32_t by = 0; by < c->bh; by++)
		for (uint32_t bx = 0; bx < c->bw; bx++) {
			size_t at = (size_t)by * c->stride + bx;
			int16_t *coef = c->coef + at * (size_t)kn;
			uint64_t nz = c->nz[at];
			int k = ss;

			if (ac_restart(ps, &b, &left, &next_rst, &eobrun) != 0)
				return -1;
			if (eobrun > 0) {
				eobrun--;
				continue;
			}
			while (k <= se) {
				int32_t e, v;
				int rs, r, s;

				if (b.n < 32)
					fill(&b);
				e = t->fac[b.acc >> (64 - FAST)];
				if (e != 0) {           /* run, size and value in one lookup */
					k += e >> 4 & 15;
					v = e >> 8;
					consume(&b, e & 15);
				} else {
					if ((rs = decode(&b, t)) < 0)
						return fail(ps, "corrupt JPEG data: bad Huffman code");
					r = rs >> 4;
					s = rs & 15;
					if (s == 0) {
						if (r == 15) {
							k += 16;
							continue;
						}
						eobrun = ((uint32_t)1 << r) + getbits(&b, r) - 1;
						break;
					}
					k += r;
					v = extend(getbits(&b, s), s);
				}
				if (k > se)
					return fail(ps, "corrupt JPEG data: bad Huffman code");
				if (k < kn)     /* as libjpeg stores it: in 16 bits */
					coef[k] = (int16_t)(uint16_t)((uint32_t)v << al);
				nz |= (uint64_t)1 << k;
				k++;
			}
			c->nz[at] = nz;
			if (short_read(&b))
				return fail(ps, "corrupt JPEG data: premature end of data segment");
		}
	return scan_end(ps, &b, pp, end);
}

/* The position of set bit r (from 0, counting from the low end) of z, or 64 when z has r or
 * fewer; r is a run of zeros, at most 15. */
INLINE int
select_bit(uint64_t z, int r)
{
	for (; r > 0 && z != 0; r--)
		z &= z - 1;
	return z != 0 ? __builtin_ctzll(z) : 64;
}

/* An AC refinement scan (G.1.2.3) of component c, from *pp. */
static int
ac_refine(struct parse *ps, struct jp_comp *c, const struct huff *t, int ss, int se, int al,
    const unsigned char **pp, const unsigned char *end)
{
	struct bits b = { *pp, end, 0, 0, 0, 0 };
	unsigned left = ps->ri, next_rst = 0;
	uint32_t eobrun = 0;
	int kn = c->kn;

	for (uint32_t by = 0; by < c->bh; by++)
		for (uint32_t bx = 0; bx < c->bw; bx++) {
			size_t at = (size_t)by * c->stride + bx;
			int16_t *coef = c->coef + at * (size_t)kn;
			uint64_t nz = c->nz[at];
			int k = ss;

			if (ac_restart(ps, &b, &left, &next_rst, &eobrun) != 0)
				return -1;
			while (eobrun == 0 && k <= se) {
				unsigned e;
				int r, sign = 0, to;
				uint64_t z;

				if (b.n < 32)
					fill(&b);
				e = t->rfa[b.acc >> (64 - FAST)];
				if (e != 0) {   /* a new coefficient and its sign in one lookup */
					r = e >> 4 & 15;
					sign = e & 1 << 8 ? 1 : -1;
					consume(&b, (int)(e & 15));
				} else {
					int rs = decode(&b, t), s;

					if (rs < 0)
						return fail(ps, "corrupt JPEG data: bad Huffman code");
					r = rs >> 4;
					s = rs & 15;
					if (s != 0) {
						if (s != 1)
							return fail(ps, "corrupt JPEG data: bad Huffman code");
						sign = getbit(&b) ? 1 : -1;
					} else if (r != 15) {
						eobrun = ((uint32_t)1 << r) + getbits(&b, r);
						break;
					}
				}
				/* past r coefficients still zero, correcting the non-zero ones on the
				 * way, to the next zero one (past se when there is none) */
				z = ~nz & span(k, se);
				to = select_bit(z, r);
				to = to > se ? se + 1 : to;
				correct(&b, coef, nz & span(k, to - 1), kn, al);
				k = to;
				if (sign != 0) {
					if (k > se)
						return fail(ps, "corrupt JPEG data: bad Huffman code");
					if (k < kn)
						coef[k] = (int16_t)(sign * (1 << al));
					nz |= (uint64_t)1 << k;
				}
				k++;
			}
			if (eobrun > 0) {
				correct(&b, coef, nz & span(k, se), kn, al);
				eobrun--;
			}
			c->nz[at] = nz;
			if (short_read(&b))
				return fail(ps, "corrupt JPEG data: premature end of data segment");
		}
	return scan_end(ps, &b, pp, end);
}

/* Skip entropy-coded data: to the next marker that is not a restart. */
static const unsigned char *
skip_scan(const unsigned char *p, const unsigned char *end)
{
	while (p < end) {
		const unsigned char *f = memchr(p, 0xFF, (size_t)(end - p));

		if (f == NULL || f + 1 >= end)
			return end;
		if (f[1] == 0x00 || f[1] == 0xFF || (f[1] >= 0xD0 && f[1] <= 0xD7))
			p = f + 1;
		else
			return f;
	}
	return end;
}

static int
parse_sos(struct parse *ps, const unsigned char *p, size_t n, const unsigned char **pp,
    const unsigned char *end)
{
	struct jp *d = ps->d;
	int sc[3], tbl[3], ns, ss, se, ah, al;

	if (d->ncomp == 0)
		return fail(ps, "corrupt JPEG data: scan before frame header");
	if (n < 1 || (ns = p[0]) < 1 || ns > d->ncomp || n != 4 + 2 * (size_t)ns)
		return fail(ps, "corrupt JPEG data: bad scan header");
	ss = p[1 + 2 * ns];
	se = p[2 + 2 * ns];
	ah = p[3 + 2 * ns] >> 4;
	al = p[3 + 2 * ns] & 15;
	for (int i = 0; i < ns; i++) {
		int k;

		for (k = 0; k < d->ncomp && d->c[k].id != p[1 + 2 * i]; k++)
			;
		if (k == d->ncomp)
			return fail(ps, "corrupt JPEG data: scan of an unknown component");
		for (int j = 0; j < i; j++)
			if (sc[j] == k)
				return fail(ps, "corrupt JPEG data: component twice in a scan");
		sc[i] = k;
		tbl[i] = (ss == 0 ? p[2 + 2 * i] >> 4 : p[2 + 2 * i] & 15);
		if (tbl[i] > 3)
			return fail(ps, "corrupt JPEG data: bad scan header");
		/* the quantisers in force when the component first appears (libjpeg latches them
		 * then) */
		if (d->c[k].bits[0] < 0 && ss == 0 && ah == 0) {
			if (!ps->qset[d->c[k].tq])
				return fail(ps, "corrupt JPEG data: missing quantisation table");
			memcpy(d->c[k].q, ps->quant[d->c[k].tq], sizeof(d->c[k].q));
		}
	}
	if (al > 13 || (ah != 0 && ah != al + 1))
		return fail(ps, "corrupt JPEG data: bad progression");
	if (ss == 0) {
		if (se != 0)
			return fail(ps, "corrupt JPEG data: bad progression");
		return dc_scan(ps, sc, tbl, ns, ah, al, pp, end);
	}
	if (d->num == 1) {              /* AC: nothing here for 1/8 */
		*pp = skip_scan(*pp, end);
		return 0;
	}
	if (se < ss || se > 63 || ns != 1)
		return fail(ps, "corrupt JPEG data: bad progression");
	{
		struct jp_comp *c = &d->c[sc[0]];

		if (c->bits[0] < 0)     /* AC before the DC */
			return fail(ps, "corrupt JPEG data: bad progression");
		for (int k = ss; k <= se; k++) {
			if (ah != (c->bits[k] < 0 ? 0 : c->bits[k]))
				return fail(ps, "corrupt JPEG data: bad progression");
			c->bits[k] = (signed char)al;
		}
		if (!ps->act[tbl[0]].set)
			return fail(ps, "corrupt JPEG data: missing Huffman table");
		if (ah == 0)
			return ac_first(ps, c, &ps->act[tbl[0]], ss, se, al, pp, end);
		return ac_refine(ps, c, &ps->act[tbl[0]], ss, se, al, pp, end);
	}
}

void
jp_free(struct jp *d)
{
	for (int i = 0; i < 3; i++) {
		free(d->c[i].coef);
		free(d->c[i].nz);
		free(d->c[i].strip);
	}
	memset(d, 0, sizeof(*d));
}

int
jp_decode(struct jp *d, const unsigned char *src, size_t len, int ycc, int num,
    uint64_t max_pixels, char *err, size_t errsz)
{
	struct parse ps;
	const unsigned char *p = src + 2, *end = src + len;

	memset(d, 0, sizeof(*d));
	memset(&ps, 0, sizeof(ps));
	ps.d = d;
	ps.err = err;
	ps.errsz = errsz;
	ps.max_pixels = max_pixels;
	d->ycc = ycc;
	d->num = num;
	d->held = -1;
	if (num != 1 && num != 2 && num != 4) {
		errf(err, errsz, "scale %d/8 not implemented", num);
		return -1;
	}
	if (len < 4 || src[0] != 0xFF || src[1] != 0xD8) {
		errf(err, errsz, "not a JPEG file");
		return -1;
	}
	for (;;) {
		unsigned m;
		size_t n;
		int rc = 0;

		while (p < end && *p == 0xFF && p + 1 < end && p[1] == 0xFF)
			p++;            /* fill bytes */
		if (p + 1 >= end)
			break;          /* the file ends: fine at 1/8 if every DC scan is in */
		if (p[0] != 0xFF) {
			fail(&ps, "corrupt JPEG data: extraneous bytes before a marker");
			goto bad;
		}
		m = p[1];
		p += 2;
		if (m == 0x00) {        /* a stuffed byte: scan data where a marker must be */
			fail(&ps, "corrupt JPEG data: extraneous bytes before a marker");
			goto bad;
		}
		if (m == 0xD9) {
			ps.eoi = 1;
			break;
		}
		if ((m >= 0xD0 && m <= 0xD7) || m == 0x01)
			continue;       /* markers without a length */
		if (p + 2 > end || (n = be16(p)) < 2 || n > (size_t)(end - p))
			break;          /* cut short in a marker segment */
		switch (m) {
		case 0xC2:
			rc = d->ncomp ? fail(&ps, "corrupt JPEG data: two frame headers") :
			    parse_sof(&ps, p + 2, n - 2);
			break;
		case 0xC4:
			rc = parse_dht(&ps, p + 2, n - 2);
			break;
		case 0xDB:
			rc = parse_dqt(&ps, p + 2, n - 2);
			break;
		case 0xDD:
			rc = n < 4 ? fail(&ps, "corrupt JPEG data: bad restart interval") : 0;
			ps.ri = n < 4 ? 0 : be16(p + 2);
			break;
		case 0xDA: {
			const unsigned char *data = p + n;

			rc = parse_sos(&ps, p + 2, n - 2, &data, end);
			p = data;
			if (rc != 0)
				goto bad;
			continue;
		}
		default:
			if ((m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC))
				rc = fail(&ps, "not a progressive Huffman-coded JPEG");
			break;          /* APPn, COM and the like */
		}
		if (rc != 0)
			goto bad;
		p += n;
	}
	if (d->ncomp == 0) {
		fail(&ps, "corrupt JPEG data: no frame header");
		goto bad;
	}
	for (int i = 0; i < d->ncomp; i++)
		if (d->c[i].bits[0] < 0) {
			fail(&ps, "corrupt JPEG data: premature end of file");
			goto bad;
		}
	if (num > 1 && !ps.eoi) {       /* scans may be missing: libjpeg warns too */
		fail(&ps, "corrupt JPEG data: premature end of file");
		goto bad;
	}
	return 0;
bad:
	jp_free(d);
	return -1;
}

int
jp_coef(const struct jp *d, int i, uint32_t bx, uint32_t by, int k, int16_t *v)
{
	const struct jp_comp *c;

	if (i < 0 || i >= d->ncomp)
		return -1;
	c = &d->c[i];
	if (k < 0 || k >= c->kn || bx >= c->stride || by >= d->mcuy * (unsigned)c->v)
		return -1;
	*v = coef_at(c, bx, by)[k];
	return 0;
}

static unsigned char
clamp(int32_t v)
{
	return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static unsigned char
round8(float v)
{
	return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (unsigned char)(v + 0.5f);
}

/* The inverse DCT of one block into OW x OH pixels (rows `stride` apart), inlined for each
 * size that occurs so that its loops have constant bounds. */
INLINE void
idct_n(const struct jp_comp *c, const int16_t *coef, uint64_t nz, unsigned char *out,
    size_t stride, const int OW, const int OH)
{
	float f[8][8], t[8][8];

	if ((nz & c->used) == 0) {      /* flat: the DC alone */
		unsigned char px = round8((float)coef[0] * c->q[0] * c->mx[0][0] * c->my[0][0] +
		    128.0f);

		for (int y = 0; y < OH; y++)
			memset(out + (size_t)y * stride, px, (size_t)OW);
		return;
	}
	for (int v = 0; v < OH; v++)
		for (int u = 0; u < OW; u++) {
			int k = zigzag[v * 8 + u];

			f[v][u] = (float)coef[k] * c->q[k];
		}
	for (int v = 0; v < OH; v++)
		for (int x = 0; x < OW; x++) {
			float sum = 0;

			for (int u = 0; u < OW; u++)
				sum += f[v][u] * c->mx[x][u];
			t[v][x] = sum;
		}
	for (int y = 0; y < OH; y++)
		for (int x = 0; x < OW; x++) {
			float sum = 128.0f;

			for (int v = 0; v < OH; v++)
				sum += c->my[y][v] * t[v][x];
			out[(size_t)y * stride + (size_t)x] = round8(sum);
		}
}

/* Block bx, by of c through its inverse DCT into out; cloned for AVX2 (HOT, util.h): the
 * corpus's three progressive photographs at 4/8, 0.83 -> 0.77 s. */
HOT static void
idct(const struct jp_comp *c, uint32_t bx, uint32_t by, unsigned char *out, size_t stride)
{
	size_t at = (size_t)by * c->stride + bx;
	const int16_t *coef = c->coef + at * (size_t)c->kn;
	uint64_t nz = c->nz[at];

	switch (c->ow << 4 | c->oh) {   /* what 2/8 and 4/8 of 4:4:4, 4:2:2, 4:2:0 and 4:4:0 need */
	case 0x22:
		idct_n(c, coef, nz, out, stride, 2, 2);
		break;
	case 0x42:
		idct_n(c, coef, nz, out, stride, 4, 2);
		break;
	case 0x24:
		idct_n(c, coef, nz, out, stride, 2, 4);
		break;
	case 0x44:
		idct_n(c, coef, nz, out, stride, 4, 4);
		break;
	case 0x84:
		idct_n(c, coef, nz, out, stride, 8, 4);
		break;
	case 0x48:
		idct_n(c, coef, nz, out, stride, 4, 8);
		break;
	case 0x88:
		idct_n(c, coef, nz, out, stride, 8, 8);
		break;
	default:
		idct_n(c, coef, nz, out, stride, c->ow, c->oh);
		break;
	}
}

/* The strips of MCU row my: every component's blocks, inverse-transformed. */
static void
hold(struct jp *d, uint32_t my)
{
	for (int i = 0; i < d->ncomp; i++) {
		struct jp_comp *c = &d->c[i];
		size_t stride = (size_t)c->stride * (unsigned)c->ow;

		for (int v = 0; v < c->v; v++)
			for (uint32_t bx = 0; bx < c->stride; bx++)
				idct(c, bx, my * (unsigned)c->v + (unsigned)v,
				    c->strip + (size_t)v * (unsigned)c->oh * stride + bx * (unsigned)c->ow,
				    stride);
	}
	d->held = my;
}

static unsigned char
level(const struct jp_comp *c, uint32_t bx, uint32_t by)
{
	int32_t v = (int32_t)coef_at(c, bx, by)[0] * c->q[0];

	return clamp(((v + 4) >> 3) + 128);     /* libjpeg's jpeg_idct_1x1 */
}

#define SCALEBITS 16
#define ONE_HALF ((int32_t)1 << (SCALEBITS - 1))
#define FIX(x) ((int32_t)((x) * (1L << SCALEBITS) + 0.5))

/* n pixels from the samples of each component (sr[i][x], x < n) to out. */
static void
put(const struct jp *d, const unsigned char *const *sr, uint32_t n, unsigned char *out)
{
	if (d->ncomp == 1) {
		memcpy(out, sr[0], n);
	} else if (!d->ycc) {
		for (uint32_t x = 0; x < n; x++, out += 3) {
			out[0] = sr[0][x];
			out[1] = sr[1][x];
			out[2] = sr[2][x];
		}
	} else {                /* libjpeg's jdcolor.c, in integers */
		for (uint32_t x = 0; x < n; x++, out += 3) {
			int32_t y = sr[0][x], cb = sr[1][x] - 128, cr = sr[2][x] - 128;

			out[0] = clamp(y + ((FIX(1.40200) * cr + ONE_HALF) >> SCALEBITS));
			out[1] = clamp(y + ((-FIX(0.34414) * cb - FIX(0.71414) * cr + ONE_HALF) >>
			    SCALEBITS));
			out[2] = clamp(y + ((FIX(1.77200) * cb + ONE_HALF) >> SCALEBITS));
		}
	}
}

void
jp_row(struct jp *d, uint32_t y, unsigned char *row)
{
	const unsigned char *sr[3];

	if (d->num == 1) {
		/* each block a pixel; chroma repeated over the luma pixels it covers */
		unsigned char *s = d->c[0].strip;

		for (int i = 0; i < d->ncomp; i++) {
			const struct jp_comp *c = &d->c[i];
			uint32_t by = y * (unsigned)c->v / (unsigned)d->maxv;

			for (uint32_t x = 0; x < d->w; x++)
				s[(size_t)i * d->w + x] = level(c, x * (unsigned)c->h /
				    (unsigned)d->maxh, by);
			sr[i] = s + (size_t)i * d->w;
		}
	} else {
		/* every component's pixels line up with luma's: one strip row each */
		uint32_t rows = (uint32_t)d->num * (unsigned)d->maxv, my = y / rows;

		if (d->held != (int64_t)my)
			hold(d, my);
		for (int i = 0; i < d->ncomp; i++)
			sr[i] = d->c[i].strip + (size_t)(y % rows) * d->c[i].stride *
			    (unsigned)d->c[i].ow;
	}
	put(d, sr, d->w, row);
}
