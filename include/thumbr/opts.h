/*
 * opts: the command line: parsing, validation and --help.  Pure functions of argv, no
 * global state beyond getopt's (called once, from the main thread, before anything starts).
 */
#ifndef THUMBR_OPTS_H
#define THUMBR_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OPTS_MAX_SIZES 16
#define OPTS_SIZE_NAME 24

struct opt_size {
	uint32_t width, height;         /* the box */
	int crop;                       /* enum img_crop: fit, or fill the box and crop */
	char name[OPTS_SIZE_NAME];      /* as written: the output folder's name */
};

struct opts {
	const char *input, *output;
	struct opt_size sizes[OPTS_MAX_SIZES];
	unsigned nsizes;
	unsigned jobs;                  /* worker processes */
	unsigned io_threads;
	unsigned quality;               /* JPEG quality 1..100 */
	int no_rotate;                  /* keep pixels as stored, ignore EXIF orientation */
	int format;                     /* enum img_format */
	unsigned char background[3];    /* JPEG output is flattened onto this */
	int keep_metadata;
	int progressive;
	/* cron-grade runs */
	int force;                      /* rebuild even what is up to date */
	int prune;                      /* delete thumbnails whose source is gone */
	int dry_run;                    /* say what would be done, do nothing */
	int wait;                       /* wait for the lock instead of exiting 75 */
	int quiet, verbose;             /* -q errors only; -v each thumbnail */
	const char *report;             /* --report FILE: JSON */
	const char *files_from;         /* --files-from FILE ("-": stdin) */
	int null_sep;                   /* -0: that list is NUL-separated */
	unsigned shard_k, shard_n;      /* --shard K/N; 0/0 when not sharded */
	/* limits, so a hostile file fails fast in bounded memory */
	uint64_t max_pixels;            /* refused before decoding when the header says more */
	uint64_t max_file_size;         /* refused before reading */
	uint64_t max_memory;            /* address space of a worker (0: none) */
	unsigned timeout_ms;            /* per image; the worker is killed and replaced */
	unsigned allow;                 /* SCAN_ALLOW_*: untrusted libvips loaders turned on */
	uint64_t slot_size;             /* largest source sent through shared memory */
};

enum opts_result {
	OPTS_RUN = 0,   /* go on */
	OPTS_EXIT,      /* --help or --version printed: exit 0 */
	OPTS_USAGE      /* err says what is wrong: exit 2 */
};

enum opts_result opts_parse(struct opts *o, int argc, char **argv, char *err, size_t errsz);
/* "256", "640x480", "200x200-crop", "200-attention", "200x100-entropy" into s; 0, or -1
 * with a reason. */
int opts_parse_size(const char *text, struct opt_size *s, char *err, size_t errsz);
/* A --slot-size: "8M", "512k", "1048576" (k, M, G: powers of 1024) into bytes, 64k to
 * 512M; 0, or -1 with a reason. */
int opts_parse_bytes(const char *text, uint64_t *bytes, char *err, size_t errsz);
/* "2/5" into k = 2, n = 5 (1 <= k <= n <= 65536); 0, or -1 with a reason. */
int opts_parse_shard(const char *text, unsigned *k, unsigned *n, char *err, size_t errsz);
/* "#ff8000", "ff8000", "white", "black" into rgb; 0, or -1 with a reason. */
int opts_parse_colour(const char *text, unsigned char rgb[3], char *err, size_t errsz);
/* The output file extension for o's format: ".jpg", ".png" or ".webp". */
const char *opts_extension(const struct opts *o);
void opts_usage(FILE *fp);

#endif
