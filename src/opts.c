/*
 * opts: parse and validate the command line (see thumbr(1)).  Called once from the main
 * thread before any thread or worker exists; getopt_long's globals are its only state.
 */
#define _GNU_SOURCE
#include "thumbr/opts.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thumbr/img.h"
#include "thumbr/util.h"

#define DEFAULT_SIZE "256"
#define DEFAULT_IO_THREADS 4
#define DEFAULT_QUALITY 80
#define DEFAULT_SLOT (512u << 10)
#define SLOT_MIN (64u << 10)
#define SLOT_MAX (512u << 20)      /* its ring, three slots rounded up, must stay below 4 GiB */

enum {
	OPT_IO_THREADS = 256, OPT_QUALITY, OPT_SLOT_SIZE, OPT_NO_ROTATE, OPT_FORMAT,
	OPT_BACKGROUND, OPT_KEEP_METADATA, OPT_PROGRESSIVE, OPT_FORCE, OPT_PRUNE, OPT_WAIT,
	OPT_REPORT, OPT_FILES_FROM, OPT_SHARD, OPT_MAX_PIXELS, OPT_MAX_FILE_SIZE, OPT_MAX_MEMORY,
	OPT_TIMEOUT, OPT_ALLOW_LOADER
};

/*
 * Defaults of the limits.  200 megapixels passes a 600 dpi A3 scan (70 MP) and real
 * panoramas (a 20000x10000 stitch) and stops decompression bombs, whose headers declare
 * gigapixels; 1 GiB of file is far beyond any photograph; 2 GiB of address space per worker
 * holds the largest image that passes (a progressive JPEG at the limit needs its coefficients,
 * 2 bytes a sample, about 600 MB); 60 s is a hundred times the slowest image of the benchmark.
 */
#define DEFAULT_MAX_PIXELS 200000000ull
#define DEFAULT_MAX_FILE_SIZE (1ull << 30)
#define DEFAULT_MAX_MEMORY (2ull << 30)
#define DEFAULT_TIMEOUT_MS 60000u

static const char *const crops[] = { "", "crop", "attention", "entropy" };
static const char *const formats[] = { "jpeg", "png", "webp" };
static const char *const extensions[] = { ".jpg", ".png", ".webp" };

static const struct option longopts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "jobs", required_argument, NULL, 'j' },
	{ "size", required_argument, NULL, 's' },
	{ "io-threads", required_argument, NULL, OPT_IO_THREADS },
	{ "quality", required_argument, NULL, OPT_QUALITY },
	{ "slot-size", required_argument, NULL, OPT_SLOT_SIZE },
	{ "no-rotate", no_argument, NULL, OPT_NO_ROTATE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "background", required_argument, NULL, OPT_BACKGROUND },
	{ "keep-metadata", no_argument, NULL, OPT_KEEP_METADATA },
	{ "progressive", no_argument, NULL, OPT_PROGRESSIVE },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "prune", no_argument, NULL, OPT_PRUNE },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "wait", no_argument, NULL, OPT_WAIT },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "report", required_argument, NULL, OPT_REPORT },
	{ "files-from", required_argument, NULL, OPT_FILES_FROM },
	{ "null", no_argument, NULL, '0' },
	{ "shard", required_argument, NULL, OPT_SHARD },
	{ "max-pixels", required_argument, NULL, OPT_MAX_PIXELS },
	{ "max-file-size", required_argument, NULL, OPT_MAX_FILE_SIZE },
	{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "allow-loader", required_argument, NULL, OPT_ALLOW_LOADER },
	{ NULL, 0, NULL, 0 }
};

void
opts_usage(FILE *fp)
{
	fputs("usage: thumbr [-0hnqVv] [-j N] [-s SIZE]... [--allow-loader NAME]...\n"
	    "              [--background COLOUR] [--force]\n"
	    "              [--files-from FILE] [--format jpeg|png|webp] [--io-threads N]\n"
	    "              [--keep-metadata] [--max-file-size BYTES] [--max-memory BYTES]\n"
	    "              [--max-pixels N] [--no-rotate] [--progressive] [--prune]\n"
	    "              [--quality N] [--report FILE] [--shard K/N] [--slot-size BYTES]\n"
	    "              [--timeout SECONDS] [--wait] INPUT_DIR OUTPUT_DIR\n", fp);
}

static void
help(void)
{
	opts_usage(stdout);
	fputs("\nThumbnail every image under INPUT_DIR into OUTPUT_DIR/SIZE/.\n\n"
	    "  -s, --size SIZE       N (fit in NxN) or WxH, then optionally -crop, -attention\n"
	    "                        or -entropy to fill the box and crop; repeatable;\n"
	    "                        default " DEFAULT_SIZE "\n"
	    "  -j, --jobs N          worker processes; default: online CPUs\n"
	    "      --background COLOUR  what JPEG output is flattened onto (#rrggbb, white,\n"
	    "                        black); default white\n"
	    "      --format FORMAT   jpeg, png or webp; default jpeg\n"
	    "      --io-threads N    reader and writer threads; default 4\n"
	    "      --keep-metadata   keep EXIF and XMP and tag sRGB (default: strip all)\n"
	    "      --no-rotate       keep pixels as stored: ignore EXIF orientation\n"
	    "      --progressive     progressive JPEG\n"
	    "      --quality N       JPEG and WebP quality 1-100; default 80\n"
	    "      --slot-size BYTES largest source passed through shared memory (k, M);\n"
	    "                        default 512k\n"
	    "      --force           rebuild thumbnails that are up to date\n"
	    "      --prune           delete thumbnails whose source is gone\n"
	    "  -n, --dry-run         print what would be built and pruned; change nothing\n"
	    "      --wait            wait for another run on OUTPUT_DIR instead of exiting 75\n"
	    "  -q, --quiet           print errors only\n"
	    "  -v, --verbose         print each thumbnail written\n"
	    "      --report FILE     write a JSON report of the run to FILE\n"
	    "      --files-from FILE thumbnail only the sources listed in FILE (- for stdin)\n"
	    "  -0, --null            the list is NUL-separated\n"
	    "      --shard K/N       process only shard K of N (1 <= K <= N)\n"
	    "      --max-pixels N    refuse images larger (k, M, G); default 200M\n"
	    "      --max-file-size BYTES  refuse larger files (k, M, G); default 1G\n"
	    "      --max-memory BYTES  address space of a worker (k, M, G; 0: none);\n"
	    "                        default 2G\n"
	    "      --timeout SECONDS per image, then the worker is killed; default 60\n"
	    "      --allow-loader NAME  turn on a loader libvips marks unsafe for untrusted\n"
	    "                        files: svgload, pdfload, jp2kload or jxlload\n"
	    "  -h, --help            show this help\n"
	    "  -V, --version         show the version\n"
	    "\nExit status: 0 all done, 1 some images failed, 2 usage error,\n"
	    "3 fatal runtime error, 75 OUTPUT_DIR in use by another run,\n"
	    "128+N killed by signal N.  See thumbr(1).\n", stdout);
}

/* A decimal number in [lo, hi]; 0 or -1. */
static int
parse_uint(const char *text, unsigned long lo, unsigned long hi, unsigned long *v)
{
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	*v = strtoul(text, &end, 10);
	if (errno != 0 || *end != '\0' || *v < lo || *v > hi)
		return -1;
	return 0;
}

int
opts_parse_size(const char *text, struct opt_size *s, char *err, size_t errsz)
{
	const char *dash = strchr(text, '-'), *x;
	unsigned long w, h;
	char buf[OPTS_SIZE_NAME];
	size_t n;

	if (strlen(text) >= sizeof(buf))
		goto bad;
	s->crop = IMG_FIT;
	if (dash != NULL) {
		for (int c = IMG_CROP_CENTRE; c <= IMG_CROP_ENTROPY; c++)
			if (strcmp(dash + 1, crops[c]) == 0)
				s->crop = c;
		if (s->crop == IMG_FIT)
			goto bad;
	}
	n = dash ? (size_t)(dash - text) : strlen(text);
	memcpy(buf, text, n);
	buf[n] = '\0';
	if ((x = strchr(buf, 'x')) == NULL) {
		if (parse_uint(buf, 1, 65535, &w) != 0)
			goto bad;
		h = w;
	} else {
		if (parse_uint(x + 1, 1, 65535, &h) != 0)
			goto bad;
		buf[x - buf] = '\0';
		if (parse_uint(buf, 1, 65535, &w) != 0)
			goto bad;
	}
	s->width = (uint32_t)w;
	s->height = (uint32_t)h;
	strcpy(s->name, text);
	return 0;
bad:
	errf(err, errsz, "bad size '%s': want N or WxH, each 1 to 65535, optionally followed by "
	    "-crop, -attention or -entropy", text);
	return -1;
}

int
opts_parse_colour(const char *text, unsigned char rgb[3], char *err, size_t errsz)
{
	const char *h = text[0] == '#' ? text + 1 : text;
	unsigned v = 0;

	if (strcmp(text, "white") == 0)
		v = 0xffffff;
	else if (strcmp(text, "black") == 0)
		v = 0;
	else if (strlen(h) == 6 && strspn(h, "0123456789abcdefABCDEF") == 6)
		v = (unsigned)strtoul(h, NULL, 16);
	else {
		errf(err, errsz, "bad colour '%s': want #rrggbb, white or black", text);
		return -1;
	}
	rgb[0] = (unsigned char)(v >> 16);
	rgb[1] = (unsigned char)(v >> 8);
	rgb[2] = (unsigned char)v;
	return 0;
}

/* "200M", "1G", "4096": a count with an optional k, M or G suffix (powers of 1024 when
 * binary, else of 1000) */
static int
parse_count(const char *text, int binary, uint64_t *v)
{
	char *end;
	unsigned long long n;
	uint64_t mul = 1, unit = binary ? 1024 : 1000;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	n = strtoull(text, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == 'k' || *end == 'K')
		mul = unit, end++;
	else if (*end == 'm' || *end == 'M')
		mul = unit * unit, end++;
	else if (*end == 'g' || *end == 'G')
		mul = unit * unit * unit, end++;
	if (*end != '\0' || n > UINT64_MAX / mul)
		return -1;
	*v = n * mul;
	return 0;
}

int
opts_parse_shard(const char *text, unsigned *k, unsigned *n, char *err, size_t errsz)
{
	const char *slash = strchr(text, '/');
	unsigned long a, b;
	char buf[16];

	if (slash == NULL || (size_t)(slash - text) >= sizeof(buf))
		goto bad;
	memcpy(buf, text, (size_t)(slash - text));
	buf[slash - text] = '\0';
	if (parse_uint(buf, 1, 65536, &a) != 0 || parse_uint(slash + 1, 1, 65536, &b) != 0 ||
	    a > b)
		goto bad;
	*k = (unsigned)a;
	*n = (unsigned)b;
	return 0;
bad:
	errf(err, errsz, "bad shard '%s': want K/N with 1 <= K <= N <= 65536", text);
	return -1;
}

const char *
opts_extension(const struct opts *o)
{
	return extensions[o->format];
}

int
opts_parse_bytes(const char *text, uint64_t *bytes, char *err, size_t errsz)
{
	uint64_t v;

	if (parse_count(text, 1, &v) != 0 || v < SLOT_MIN || v > SLOT_MAX) {
		errf(err, errsz, "bad slot size '%s': want 64k to 512M", text);
		return -1;
	}
	*bytes = v;
	return 0;
}

static enum opts_result
number(const char *opt, const char *text, unsigned long lo, unsigned long hi, unsigned *out,
    char *err, size_t errsz)
{
	unsigned long v;

	if (parse_uint(text, lo, hi, &v) != 0) {
		errf(err, errsz, "bad %s '%s': want %lu to %lu", opt, text, lo, hi);
		return OPTS_USAGE;
	}
	*out = (unsigned)v;
	return OPTS_RUN;
}

enum opts_result
opts_parse(struct opts *o, int argc, char **argv, char *err, size_t errsz)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int c;

	memset(o, 0, sizeof(*o));
	o->jobs = cpus < 1 ? 1 : cpus > 256 ? 256 : (unsigned)cpus;
	o->io_threads = DEFAULT_IO_THREADS;
	o->quality = DEFAULT_QUALITY;
	o->slot_size = DEFAULT_SLOT;
	o->format = IMG_JPEG;
	o->max_pixels = DEFAULT_MAX_PIXELS;
	o->max_file_size = DEFAULT_MAX_FILE_SIZE;
	o->max_memory = DEFAULT_MAX_MEMORY;
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	memset(o->background, 0xff, sizeof(o->background));
	optind = 0;     /* full re-initialisation, so tests can call us more than once */
	opterr = 0;
	for (;;) {
		enum opts_result r = OPTS_RUN;
		int before = optind;

		if ((c = getopt_long(argc, argv, ":0hnqVvj:s:", longopts, NULL)) == -1)
			break;
		switch (c) {
		case 'h':
			help();
			return OPTS_EXIT;
		case 'V':
			printf("thumbr %s\n", THUMBR_VERSION);
			return OPTS_EXIT;
		case 'j':
			r = number("job count", optarg, 1, 256, &o->jobs, err, errsz);
			break;
		case 's':
			if (o->nsizes == OPTS_MAX_SIZES) {
				errf(err, errsz, "at most %d sizes", OPTS_MAX_SIZES);
				return OPTS_USAGE;
			}
			if (opts_parse_size(optarg, &o->sizes[o->nsizes], err, errsz) != 0)
				return OPTS_USAGE;
			for (unsigned i = 0; i < o->nsizes; i++)
				if (strcmp(o->sizes[i].name, optarg) == 0) {
					errf(err, errsz, "size '%s' given twice", optarg);
					return OPTS_USAGE;
				}
			o->nsizes++;
			break;
		case OPT_IO_THREADS:
			r = number("I/O thread count", optarg, 1, 64, &o->io_threads, err, errsz);
			break;
		case OPT_QUALITY:
			r = number("quality", optarg, 1, 100, &o->quality, err, errsz);
			break;
		case OPT_NO_ROTATE:
			o->no_rotate = 1;
			break;
		case OPT_FORCE:
			o->force = 1;
			break;
		case OPT_PRUNE:
			o->prune = 1;
			break;
		case 'n':
			o->dry_run = 1;
			break;
		case OPT_WAIT:
			o->wait = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case '0':
			o->null_sep = 1;
			break;
		case OPT_REPORT:
			o->report = optarg;
			break;
		case OPT_FILES_FROM:
			o->files_from = optarg;
			break;
		case OPT_SHARD:
			if (opts_parse_shard(optarg, &o->shard_k, &o->shard_n, err, errsz) != 0)
				return OPTS_USAGE;
			break;
		case OPT_MAX_PIXELS:
		case OPT_MAX_FILE_SIZE:
		case OPT_MAX_MEMORY: {
			uint64_t v;

			if (parse_count(optarg, c != OPT_MAX_PIXELS, &v) != 0 ||
			    (v == 0 && c != OPT_MAX_MEMORY)) {
				errf(err, errsz, "bad %s '%s': want a number, optionally with k, M or G",
				    c == OPT_MAX_PIXELS ? "pixel count" : "byte count", optarg);
				return OPTS_USAGE;
			}
			*(c == OPT_MAX_PIXELS ? &o->max_pixels : c == OPT_MAX_FILE_SIZE ?
			    &o->max_file_size : &o->max_memory) = v;
			break;
		}
		case OPT_ALLOW_LOADER: {
			static const char *const names[] = { "svgload", "pdfload", "jp2kload",
			    "jxlload" };
			unsigned bit = 0;

			for (unsigned i = 0; i < 4; i++)
				if (strcmp(optarg, names[i]) == 0)
					bit = 1u << i;
			if (bit == 0) {
				errf(err, errsz, "bad loader '%s': want svgload, pdfload, jp2kload or "
				    "jxlload (thumbr must recognise its files)", optarg);
				return OPTS_USAGE;
			}
			o->allow |= bit;
			break;
		}
		case OPT_TIMEOUT: {
			char *end;
			double secs;

			errno = 0;
			secs = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || end == optarg || !(secs > 0) ||
			    secs > 86400) {
				errf(err, errsz, "bad timeout '%s': want seconds, more than 0", optarg);
				return OPTS_USAGE;
			}
			o->timeout_ms = (unsigned)(secs * 1000 + 0.5);
			if (o->timeout_ms == 0)
				o->timeout_ms = 1;
			break;
		}
		case OPT_KEEP_METADATA:
			o->keep_metadata = 1;
			break;
		case OPT_PROGRESSIVE:
			o->progressive = 1;
			break;
		case OPT_BACKGROUND:
			if (opts_parse_colour(optarg, o->background, err, errsz) != 0)
				return OPTS_USAGE;
			break;
		case OPT_FORMAT: {
			int f = -1;

			for (int i = 0; i < 3; i++)
				if (strcmp(optarg, formats[i]) == 0 ||
				    (i == IMG_JPEG && strcmp(optarg, "jpg") == 0))
					f = i;
			if (f < 0) {
				errf(err, errsz, "bad format '%s': want jpeg, png or webp", optarg);
				return OPTS_USAGE;
			}
			o->format = f;
			break;
		}
		case OPT_SLOT_SIZE:
			if (opts_parse_bytes(optarg, &o->slot_size, err, errsz) != 0)
				return OPTS_USAGE;
			break;
		case ':':
			errf(err, errsz, "option '%s' needs a value", argv[optind - 1]);
			return OPTS_USAGE;
		default:
			/* a long option says itself best ("--help=x"): getopt has stepped past it;
			 * a letter in a cluster is named alone */
			if (optind > before && strncmp(argv[optind - 1], "--", 2) == 0)
				errf(err, errsz, "bad option '%s'", argv[optind - 1]);
			else
				errf(err, errsz, "unknown option '-%c'", optopt);
			return OPTS_USAGE;
		}
		if (r != OPTS_RUN)
			return r;
	}
	if (argc - optind != 2) {
		errf(err, errsz, argc - optind < 2 ? "need INPUT_DIR and OUTPUT_DIR" :
		    "too many arguments");
		return OPTS_USAGE;
	}
	o->input = argv[optind];
	o->output = argv[optind + 1];
	if (o->input[0] == '\0' || o->output[0] == '\0') {
		errf(err, errsz, "INPUT_DIR and OUTPUT_DIR must not be empty");
		return OPTS_USAGE;
	}
	if (o->quiet && o->verbose) {
		errf(err, errsz, "-q and -v do not go together");
		return OPTS_USAGE;
	}
	if (o->null_sep && o->files_from == NULL) {
		errf(err, errsz, "-0 goes with --files-from");
		return OPTS_USAGE;
	}
	if (o->nsizes == 0)
		(void)opts_parse_size(DEFAULT_SIZE, &o->sizes[o->nsizes++], NULL, 0);
	return OPTS_RUN;
}
