/*
 * icc: is an ICC profile sRGB? (see thumbr/icc.h)
 *
 * Owns nothing; no state; reentrant.  Reads the header and tag table (ICC.1:2010, section 7)
 * and, of the tags, only rXYZ/gXYZ/bXYZ and rTRC/gTRC/bTRC, each bounds-checked.
 */
#include "thumbr/icc.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "thumbr/util.h"

#define SIG(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

static double
s15(const unsigned char *p)
{
	return (double)(int32_t)be32(p) / 65536.0;
}

/* A tag's data, or NULL when absent or out of bounds. */
static const unsigned char *
tag(const unsigned char *p, size_t n, uint32_t sig, size_t *len)
{
	uint32_t count = be32(p + 128);

	for (uint32_t i = 0; i < count && 132 + 12 * (size_t)(i + 1) <= n; i++) {
		const unsigned char *e = p + 132 + 12 * (size_t)i;
		uint32_t off = be32(e + 4), size = be32(e + 8);

		if (be32(e) != sig)
			continue;
		if (off > n || size > n - off)
			return NULL;
		*len = size;
		return p + off;
	}
	return NULL;
}

/* sRGB's encoding of a linear value */
static double
srgb_encoded(double l)
{
	return l <= 0.0031308 ? l * 12.92 : 1.055 * pow(l, 1 / 2.4) - 0.055;
}

/* The tone curve t (curv or para) at v in [0, 1]; -1 when it cannot be read. */
static double
curve(const unsigned char *t, size_t len, double v)
{
	if (len >= 12 && be32(t) == SIG('c', 'u', 'r', 'v')) {
		uint32_t cnt = be32(t + 8);
		double x, f;
		size_t i;

		if (cnt > (len - 12) / 2)
			return -1;
		if (cnt == 0)
			return v;
		if (cnt == 1)
			return pow(v, (double)(t[12] << 8 | t[13]) / 256.0);
		x = v * (cnt - 1);
		i = (size_t)x;
		if (i >= cnt - 1)
			i = cnt - 2;
		f = x - (double)i;
		return ((1 - f) * (t[12 + 2 * i] << 8 | t[13 + 2 * i]) +
		    f * (t[14 + 2 * i] << 8 | t[15 + 2 * i])) / 65535.0;
	}
	if (len >= 16 && be32(t) == SIG('p', 'a', 'r', 'a')) {
		static const int nparams[] = { 1, 3, 4, 5, 7 };
		unsigned type = (unsigned)(t[8] << 8 | t[9]);
		double g, a = 1, b = 0, c = 0, d = 0, e = 0, f = 0;

		if (type > 4 || len < 12 + 4 * (size_t)nparams[type])
			return -1;
		g = s15(t + 12);
		if (type >= 1) {
			a = s15(t + 16);
			b = s15(t + 20);
		}
		if (type >= 2)
			c = s15(t + 24);
		if (type >= 3)
			d = s15(t + 28);
		if (type == 4) {
			e = s15(t + 32);
			f = s15(t + 36);
		}
		switch (type) {
		case 0:
			return pow(v, g);
		case 1:
			return a * v + b >= 0 ? pow(a * v + b, g) : 0;
		case 2:
			return a * v + b >= 0 ? pow(a * v + b, g) + c : c;
		case 3:
			return v >= d ? pow(a * v + b >= 0 ? a * v + b : 0, g) : c * v;
		default:
			return v >= d ? pow(a * v + b >= 0 ? a * v + b : 0, g) + e : c * v + f;
		}
	}
	return -1;
}

int
icc_is_srgb(const unsigned char *p, size_t n)
{
	/* sRGB's colorants adapted to D50 (Bradford), as in every sRGB profile */
	static const double want[3][3] = {
		{ 0.4360747, 0.2225045, 0.0139322 },
		{ 0.3850649, 0.7168786, 0.0971045 },
		{ 0.1430804, 0.0606169, 0.7141733 },
	};
	static const uint32_t xyz[3] = {
		SIG('r', 'X', 'Y', 'Z'), SIG('g', 'X', 'Y', 'Z'), SIG('b', 'X', 'Y', 'Z')
	};
	static const uint32_t trc[3] = {
		SIG('r', 'T', 'R', 'C'), SIG('g', 'T', 'R', 'C'), SIG('b', 'T', 'R', 'C')
	};
	size_t len;

	if (p == NULL || n < 132 || be32(p + 16) != SIG('R', 'G', 'B', ' ') ||
	    be32(p + 20) != SIG('X', 'Y', 'Z', ' '))
		return 0;
	/* a lookup table, which a colour engine prefers to the matrix and curves (lcms reads
	 * D2Bx, then A2Bx): what it does is not checked here, so it is no sRGB */
	for (int i = 0; i < 3; i++)
		if (tag(p, n, SIG('A', '2', 'B', '0' + i), &len) != NULL ||
		    tag(p, n, SIG('D', '2', 'B', '0' + i), &len) != NULL)
			return 0;
	for (int c = 0; c < 3; c++) {
		const unsigned char *t = tag(p, n, xyz[c], &len);

		if (t == NULL || len < 20 || be32(t) != SIG('X', 'Y', 'Z', ' '))
			return 0;
		for (int k = 0; k < 3; k++)
			if (fabs(s15(t + 8 + 4 * k) - want[c][k]) > 0.002)
				return 0;
	}
	for (int c = 0; c < 3; c++) {
		const unsigned char *t = tag(p, n, trc[c], &len);

		if (t == NULL)
			return 0;
		for (int x = 0; x < 256; x++) {
			double l = curve(t, len, x / 255.0);

			if (l < 0 || fabs(srgb_encoded(l > 1 ? 1 : l) * 255 - x) > 0.6)
				return 0;
		}
	}
	return 1;
}
