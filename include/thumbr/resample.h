/*
 * resample: a streaming, separable Lanczos3 resize of 8-bit interleaved pixels.  Rows go in
 * one at a time as a decoder produces them; only the last few are kept, as many as one
 * output row's filter window covers (about six times the scale factor), and an output row is
 * made and filtered across as soon as its window is complete.  So an image of any height is
 * resized in memory for one window of its rows plus the result, and the decoder never holds
 * it whole.
 *
 * The filter is the one Pillow's and the benchmark's reference use: Lanczos3 stretched by
 * the scale factor (every source pixel counts), weights normalised per output pixel.  The
 * sums are kept in float between the two passes; the result is rounded once.
 *
 * Single-threaded: one struct rs belongs to one caller.  No libraries, no global state.
 */
#ifndef THUMBR_RESAMPLE_H
#define THUMBR_RESAMPLE_H

#include <stdint.h>

struct rs;

/* A resize of iw x ih to ow x oh (each at least 1; enlarging works but is not what it is
 * for) of `bands` (1 to 4) interleaved samples per pixel.  NULL when out of memory. */
struct rs *rs_new(uint32_t iw, uint32_t ih, uint32_t ow, uint32_t oh, int bands);

/* The next input row: iw * bands samples.  Rows past ih are ignored. */
void rs_row(struct rs *r, const unsigned char *row);

/* The result, ow * oh * bands, malloc'ed, for the caller to free; r is freed.  Every input
 * row must have been given.  NULL if r is NULL. */
unsigned char *rs_finish(struct rs *r);

/* Free r without a result (an error part way). */
void rs_free(struct rs *r);

/* Resize a whole image in memory: rs_new, every row, rs_finish.  NULL when out of memory. */
unsigned char *rs_image(const unsigned char *px, uint32_t iw, uint32_t ih, int bands,
    uint32_t ow, uint32_t oh);

#endif
