/*
 * img: decode, resize, colour-manage, orient, crop, encode.  The only module that knows
 * libvips, libjpeg and libpng.  Used only inside worker processes, one image at a time per
 * process (libvips runs there with a concurrency of 1 and no operation cache: the worker pool
 * is the parallelism).
 */
#ifndef THUMBR_IMG_H
#define THUMBR_IMG_H

#include <stddef.h>
#include <stdint.h>

enum img_crop {
	IMG_FIT = 0,            /* fit inside the box */
	IMG_CROP_CENTRE,        /* fill the box, crop the middle */
	IMG_CROP_ATTENTION,     /* fill the box, crop where libvips' attention measure points */
	IMG_CROP_ENTROPY        /* fill the box, crop the busiest part */
};

enum img_format { IMG_JPEG = 0, IMG_PNG, IMG_WEBP };

#define IMG_MAX_BOXES 16        /* img_settings.nboxes is at most this */

struct img_box {
	uint32_t width, height;
	int crop;               /* enum img_crop */
};

struct img_settings {
	const struct img_box *boxes;
	unsigned nboxes;
	unsigned quality;       /* JPEG and WebP */
	int rotate;             /* apply EXIF orientation */
	int format;             /* enum img_format */
	unsigned char background[3];    /* what JPEG output is flattened onto */
	int keep_metadata;      /* copy EXIF and XMP, tag sRGB */
	int progressive;        /* progressive JPEG */
	uint64_t max_pixels;    /* refuse larger images before decoding (0: no limit) */
};

/* Called once per box with the encoded thumbnail; data is valid during the call only.
 * Returns 0 to go on, -1 to stop (err set). */
typedef int img_emit_fn(void *ctx, unsigned box, unsigned width, unsigned height,
    const void *data, size_t len, char *err, size_t errsz);

/* Once per process (workers only), before any img_thumbnail: libvips, when an image first
 * needs it, starts with the loaders it marks untrusted blocked but for those in allow
 * (SCAN_ALLOW_*), and only those formats are sniffed as images. */
void img_init(const char *argv0, unsigned allow);

/* The size of a w x h image fitted into box: aspect kept, never enlarged, at least 1x1. */
void img_fit(uint32_t w, uint32_t h, const struct img_box *box, uint32_t *tw, uint32_t *th);
/* The size a w x h image is resized to for box: img_fit, or for a crop box the smallest
 * size that covers the box (never enlarged); the crop then cuts it to the box. */
void img_scale(uint32_t w, uint32_t h, const struct img_box *box, uint32_t *tw, uint32_t *th);

/* The orientation (1 to 8) in an EXIF block ("Exif\0\0" optional, then TIFF); 1 when it
 * has none or it is invalid. */
int img_exif_orientation(const unsigned char *exif, size_t len);

/* Thumbnail one encoded image into every box with one decode.  0, or -1 with err set to a
 * reason (lowercase, no full stop). */
int img_thumbnail(const unsigned char *src, size_t len, const struct img_settings *s,
    img_emit_fn *emit, void *ctx, char *err, size_t errsz);

#endif
