/*
 * icc: recognise an embedded ICC profile that is sRGB in all but name, so that its pixels
 * need no colour transform (most tagged photographs and artworks carry one; converting
 * through it costs time and libvips, and changes nothing but rounding).
 *
 * A pure function of its input; safe on hostile data.
 */
#ifndef THUMBR_ICC_H
#define THUMBR_ICC_H

#include <stddef.h>

/*
 * 1 when the profile is an RGB matrix/TRC profile whose colorants are sRGB's (D50-adapted,
 * within 0.002) and whose three tone curves follow sRGB's (within half a level of 8 bits
 * after encoding, at 256 points); 0 otherwise, including for any profile with lookup
 * tables (A2B0..2), whose transform may differ from its matrix.
 */
int icc_is_srgb(const unsigned char *p, size_t n);

#endif
