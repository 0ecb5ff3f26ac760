/*
 * jpegdc: the DC scans of a progressive JPEG, at 1/8 scale (see thumbr/jpegdc.h).
 *
 * Owns: the struct jdc it fills; nothing global.  Single-threaded, reentrant.
 *
 * The file is walked marker by marker (ITU T.81, annex B): SOF2 gives the components, DQT
 * the DC quantisers, DHT the DC Huffman tables, DRI the restart interval.  A scan with Ss = 0
 * is a DC scan, decoded here (G.1.2.1: first scans add the Huffman-coded difference to the
 * component's predictor, refinement scans add one bit); any other scan is skipped to its
 * end.  A pixel is then what libjpeg's 1x1 inverse DCT gives, ((DC * Q + 4) >> 3) + 128, with
 * chroma repeated over the luma pixels it covers and libjpeg's integer YCbCr to RGB.
 */
#include "thumbr/jpegdc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "thumbr/util.h"

/* A DC Huffman table, as annex F.2.2.3 decodes it. */
struct huff {
	int set;
	int32_t maxcode[17];    /* largest code of each length, -1: none */
	int32_t mincode[17];
	int valptr[17];
	unsigned char val[256];
};

/* Entropy-coded bits, MSB first; stops at a marker and supplies zeros past it, which a
 * scan that uses them is corrupt for. */
struct bits {
	const unsigned char *p, *end;
	uint32_t acc;
	int n;                  /* bits in acc */
	int real;               /* of them, read from the file */
	int stopped;            /* at a marker or the end */
	int short_read;         /* bits past it were used */
};

struct parse {
	struct jdc *d;
	struct huff dct[4];
	int quant[4], qset[4];
	unsigned ri;            /* restart interval, in MCUs */
	char *err;
	size_t errsz;
};

static void
fill(struct bits *b)
{
	while (b->n <= 24) {
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
		b->acc |= (uint32_t)c << (24 - b->n);
		if (!b->stopped)
			b->real += 8;
		b->n += 8;
	}
}

static void
consume(struct bits *b, int k)
{
	if (k > b->real)
		b->short_read = 1;
	b->real = b->real > k ? b->real - k : 0;
	b->acc <<= k;
	b->n -= k;
}

static unsigned
getbits(struct bits *b, int k)
{
	unsigned v;

	if (k == 0)
		return 0;
	fill(b);
	v = b->acc >> (32 - k);
	consume(b, k);
	return v;
}

/* The next Huffman symbol, or -1 for a code no table has. */
static int
decode(struct bits *b, const struct huff *t)
{
	uint32_t peek;

	fill(b);
	peek = b->acc >> 16;
	for (int l = 1; l <= 16; l++) {
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

static unsigned
be16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static int
parse_sof(struct parse *ps, const unsigned char *p, size_t n)
{
	struct jdc *d = ps->d;

	if (n < 6 || p[0] != 8)
		return fail(ps, "not an 8-bit JPEG");
	d->height = be16(p + 1);
	d->width = be16(p + 3);
	d->ncomp = p[5];
	if (d->width == 0 || d->height == 0)
		return fail(ps, "corrupt JPEG data: empty image");
	if ((d->ncomp != 1 && d->ncomp != 3) || n < 6 + 3 * (size_t)d->ncomp)
		return fail(ps, "not a grey or three-component JPEG");
	d->maxh = d->maxv = 1;
	for (int i = 0; i < d->ncomp; i++) {
		struct jdc_comp *c = &d->c[i];

		c->id = p[6 + 3 * i];
		c->h = p[7 + 3 * i] >> 4;
		c->v = p[7 + 3 * i] & 15;
		c->tq = p[8 + 3 * i];
		if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4 || c->tq > 3)
			return fail(ps, "corrupt JPEG data: bad component");
		d->maxh = c->h > d->maxh ? c->h : d->maxh;
		d->maxv = c->v > d->maxv ? c->v : d->maxv;
	}
	for (int i = 0; i < d->ncomp; i++)     /* libjpeg has no fractional sampling either */
		if (d->maxh % d->c[i].h != 0 || d->maxv % d->c[i].v != 0)
			return fail(ps, "fractional sampling not implemented");
	d->w = (d->width + 7) / 8;
	d->h = (d->height + 7) / 8;
	d->mcux = (d->width + 8u * (unsigned)d->maxh - 1) / (8u * (unsigned)d->maxh);
	d->mcuy = (d->height + 8u * (unsigned)d->maxv - 1) / (8u * (unsigned)d->maxv);
	for (int i = 0; i < d->ncomp; i++) {
		struct jdc_comp *c = &d->c[i];
		uint32_t pw = (uint32_t)(((uint64_t)d->width * (unsigned)c->h + (unsigned)d->maxh - 1) /
		    (unsigned)d->maxh);
		uint32_t ph = (uint32_t)(((uint64_t)d->height * (unsigned)c->v + (unsigned)d->maxv - 1) /
		    (unsigned)d->maxv);

		c->bw = (pw + 7) / 8;
		c->bh = (ph + 7) / 8;
		c->stride = d->mcux * (unsigned)c->h;
		c->dc = calloc((size_t)c->stride * d->mcuy * (unsigned)c->v, sizeof(*c->dc));
		if (c->dc == NULL)
			return fail(ps, "out of memory");
	}
	return 0;
}

static int
parse_dht(struct parse *ps, const unsigned char *p, size_t n)
{
	while (n > 0) {
		unsigned cls = p[0] >> 4, id = p[0] & 15, count = 0;
		struct huff t;
		int32_t code = 0;
		int k = 0;

		if (n < 17 || cls > 1 || id > 3)
			return fail(ps, "corrupt JPEG data: bad Huffman table");
		for (int l = 1; l <= 16; l++)
			count += p[l];
		if (count > 256 || n < 17 + (size_t)count)
			return fail(ps, "corrupt JPEG data: bad Huffman table");
		if (cls == 0) {         /* DC; AC tables are of no use here */
			memset(&t, 0, sizeof(t));
			for (int l = 1; l <= 16; l++) {
				t.valptr[l] = k;
				t.mincode[l] = code;
				code += p[l];
				k += p[l];
				t.maxcode[l] = p[l] ? code - 1 : -1;
				if (code >= (int32_t)1 << l && p[l] != 0)
					return fail(ps, "corrupt JPEG data: bad Huffman table");
				code <<= 1;
			}
			memcpy(t.val, p + 17, count);
			for (unsigned i = 0; i < count; i++)
				if (t.val[i] > 15)
					return fail(ps, "corrupt JPEG data: bad Huffman table");
			t.set = 1;
			ps->dct[id] = t;
		}
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
		ps->quant[id] = prec ? (int)be16(p + 1) : p[1];   /* the DC entry comes first */
		ps->qset[id] = 1;
		p += size;
		n -= size;
	}
	return 0;
}

/* Past a restart marker, which must be the expected one. */
static int
restart(struct parse *ps, struct bits *b, unsigned *next)
{
	b->acc = 0;
	b->n = b->real = 0;
	b->stopped = 0;
	while (b->p + 1 < b->end && b->p[0] == 0xFF && b->p[1] == 0xFF)
		b->p++;
	if (b->p + 1 >= b->end || b->p[0] != 0xFF || b->p[1] != 0xD0 + (*next & 7))
		return fail(ps, "corrupt JPEG data: bad restart marker");
	b->p += 2;
	(*next)++;
	return 0;
}

/* One DC scan of the components in sc (indices into d->c), from *pp; leaves *pp at the
 * marker that ends it. */
static int
dc_scan(struct parse *ps, const int *sc, const int *tbl, int ns, int ah, int al,
    const unsigned char **pp, const unsigned char *end)
{
	struct jdc *d = ps->d;
	struct bits b = { *pp, end, 0, 0, 0, 0, 0 };
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
		struct jdc_comp *c = &d->c[sc[i]];

		if (ah == 0) {
			if (c->seen)
				return fail(ps, "corrupt JPEG data: a second first DC scan");
			if (!ps->dct[tbl[i]].set)
				return fail(ps, "corrupt JPEG data: missing Huffman table");
			if (!ps->qset[c->tq])
				return fail(ps, "corrupt JPEG data: missing quantisation table");
			c->quant = ps->quant[c->tq];
		} else {
			if (!c->seen)
				return fail(ps, "corrupt JPEG data: refinement before the first scan");
			if (ah != c->al)
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
				struct jdc_comp *c = &d->c[sc[i]];
				int bh = ns > 1 ? c->h : 1, bv = ns > 1 ? c->v : 1;

				for (int v = 0; v < bv; v++)
					for (int h = 0; h < bh; h++) {
						int16_t *coef = &c->dc[(size_t)(my * (unsigned)bv +
						    (unsigned)v) * c->stride + mx * (unsigned)bh + (unsigned)h];

						if (ah == 0) {
							int s = decode(&b, &ps->dct[tbl[i]]);
							int32_t diff;

							if (s < 0 || s > 11)
								return fail(ps, "corrupt JPEG data: bad Huffman code");
							diff = (int32_t)getbits(&b, s);
							if (s > 0 && diff < (int32_t)1 << (s - 1))
								diff -= ((int32_t)1 << s) - 1;
							pred[i] += diff;
							if (pred[i] > SHRT_MAX >> al || pred[i] < SHRT_MIN >> al)
								return fail(ps, "corrupt JPEG data: DC out of range");
							*coef = (int16_t)(pred[i] * ((int32_t)1 << al));
						} else if (getbits(&b, 1)) {
							*coef = (int16_t)(*coef | (1 << al));
						}
					}
			}
			if (b.short_read)
				return fail(ps, "corrupt JPEG data: premature end of data segment");
		}
	/* what is left of the last byte is padding; a marker must follow */
	if (!b.stopped && b.p < end && *b.p != 0xFF)
		return fail(ps, "corrupt JPEG data: extraneous bytes after a scan");
	for (int i = 0; i < ns; i++) {
		d->c[sc[i]].seen = 1;
		d->c[sc[i]].al = al;
	}
	*pp = b.p;
	return 0;
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
	struct jdc *d = ps->d;
	int sc[3], tbl[3], ns, ss, se, ah, al;

	if (d->ncomp == 0)
		return fail(ps, "corrupt JPEG data: scan before frame header");
	if (n < 1 || (ns = p[0]) < 1 || ns > d->ncomp || n != 4 + 2 * (size_t)ns)
		return fail(ps, "corrupt JPEG data: bad scan header");
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
		tbl[i] = p[2 + 2 * i] >> 4;
		if (tbl[i] > 3)
			return fail(ps, "corrupt JPEG data: bad scan header");
	}
	ss = p[1 + 2 * ns];
	se = p[2 + 2 * ns];
	ah = p[3 + 2 * ns] >> 4;
	al = p[3 + 2 * ns] & 15;
	if (ss != 0) {                  /* AC: nothing here for 1/8 */
		*pp = skip_scan(*pp, end);
		return 0;
	}
	if (se != 0 || al > 13 || (ah != 0 && ah != al + 1))
		return fail(ps, "corrupt JPEG data: bad progression");
	return dc_scan(ps, sc, tbl, ns, ah, al, pp, end);
}

void
jdc_free(struct jdc *d)
{
	for (int i = 0; i < 3; i++)
		free(d->c[i].dc);
	memset(d, 0, sizeof(*d));
}

int
jdc_decode(struct jdc *d, const unsigned char *src, size_t len, int ycc, char *err,
    size_t errsz)
{
	struct parse ps;
	const unsigned char *p = src + 2, *end = src + len;

	memset(d, 0, sizeof(*d));
	memset(&ps, 0, sizeof(ps));
	ps.d = d;
	ps.err = err;
	ps.errsz = errsz;
	d->ycc = ycc;
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
			break;          /* the file ends: fine if every DC scan is in */
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
		if (m == 0xD9)
			break;
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
		if (!d->c[i].seen) {
			fail(&ps, "corrupt JPEG data: premature end of file");
			goto bad;
		}
	return 0;
bad:
	jdc_free(d);
	return -1;
}

static unsigned char
clamp(int32_t v)
{
	return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static unsigned char
level(const struct jdc_comp *c, uint32_t bx, uint32_t by)
{
	int32_t v = (int32_t)c->dc[(size_t)by * c->stride + bx] * c->quant;

	return clamp(((v + 4) >> 3) + 128);     /* libjpeg's jpeg_idct_1x1 */
}

#define SCALEBITS 16
#define ONE_HALF ((int32_t)1 << (SCALEBITS - 1))
#define FIX(x) ((int32_t)((x) * (1L << SCALEBITS) + 0.5))

void
jdc_row(const struct jdc *d, uint32_t y, unsigned char *row)
{
	uint32_t by[3];

	for (int i = 0; i < d->ncomp; i++)
		by[i] = y * (unsigned)d->c[i].v / (unsigned)d->maxv;
	for (uint32_t x = 0; x < d->w; x++) {
		unsigned char s[3];

		for (int i = 0; i < d->ncomp; i++)
			s[i] = level(&d->c[i], x * (unsigned)d->c[i].h / (unsigned)d->maxh, by[i]);
		if (d->ncomp == 1) {
			*row++ = s[0];
		} else if (!d->ycc) {
			*row++ = s[0];
			*row++ = s[1];
			*row++ = s[2];
		} else {                /* libjpeg's jdcolor.c, in integers */
			int32_t cb = s[1] - 128, cr = s[2] - 128;

			*row++ = clamp(s[0] + ((FIX(1.40200) * cr + ONE_HALF) >> SCALEBITS));
			*row++ = clamp(s[0] + ((-FIX(0.34414) * cb - FIX(0.71414) * cr + ONE_HALF) >>
			    SCALEBITS));
			*row++ = clamp(s[0] + ((FIX(1.77200) * cb + ONE_HALF) >> SCALEBITS));
		}
	}
}
