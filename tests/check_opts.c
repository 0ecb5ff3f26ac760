/*
 * opts suite: the command line (thumbr/opts.h).  opts_parse_size on valid and invalid sizes
 * (bounds, signs, stray characters, names longer than 23 bytes); opts_parse_bytes
 * (k and M suffixes, the 64k..512M range); opts_parse on argv arrays: defaults, repeated -s
 * kept in order with their names, duplicate and too many sizes, bad -j / --quality /
 * --io-threads / --slot-size values, missing and extra operands, unknown options and missing
 * values, long forms, "--" and argument permutation, and repeated calls (getopt re-set).
 * --help and --version print to stdout, so they are run in a forked child with stdout on a
 * pipe.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "thumbr/opts.h"
#include "thumbr/util.h"
#include "suites.h"

#define MAXARGS 64

/* Writable copies of the arguments (getopt permutes argv); they stay valid until the next
 * call, since struct opts points into them. */
static char argbuf[MAXARGS][128];
static char *argvec[MAXARGS + 1];
static int argcnt;

static void
set_args(const char *const *v)
{
	argcnt = 0;
	for (; *v != NULL; v++) {
		ck_assert_int_lt(argcnt, MAXARGS);
		ck_assert_uint_lt(strlen(*v), sizeof(argbuf[0]));
		strcpy(argbuf[argcnt], *v);
		argvec[argcnt] = argbuf[argcnt];
		argcnt++;
	}
	argvec[argcnt] = NULL;
}

/* opts_parse on "thumbr" followed by the NULL-terminated arguments. */
static enum opts_result
parse(struct opts *o, char *err, const char *first, ...)
{
	const char *v[MAXARGS + 1];
	va_list ap;
	int n = 0;

	v[n++] = "thumbr";
	va_start(ap, first);
	for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
		ck_assert_int_lt(n, MAXARGS);
		v[n++] = a;
	}
	va_end(ap);
	v[n] = NULL;
	set_args(v);
	err[0] = '\0';
	return opts_parse(o, argcnt, argvec, err, ERRSZ);
}

/* A usage error whose message is not empty and, when want is given, contains it. */
#define USAGE(want, ...) do {                                                   \
	struct opts o_;                                                         \
	char e_[ERRSZ];                                                         \
	const char *w_ = (want);                                                \
	ck_assert_int_eq(parse(&o_, e_, __VA_ARGS__, (const char *)NULL), OPTS_USAGE); \
	ck_assert_msg(e_[0] != '\0', "no message for a usage error");           \
	ck_assert_msg(w_ == NULL || strstr(e_, w_) != NULL,                     \
	    "message '%s' does not mention '%s'", e_, w_ ? w_ : "");            \
} while (0)

static unsigned
default_jobs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
}

/* ---- opts_parse_size ---- */

START_TEST(size_valid)
{
	static const struct {
		const char *text;
		uint32_t w, h;
	} v[] = {
		{ "1", 1, 1 },
		{ "256", 256, 256 },
		{ "640x480", 640, 480 },
		{ "65535x1", 65535, 1 },
		{ "1x65535", 1, 65535 },
		{ "65535", 65535, 65535 },
	};
	char err[ERRSZ];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct opt_size s;

		memset(&s, 0xa5, sizeof(s));
		err[0] = '\0';
		ck_assert_msg(opts_parse_size(v[i].text, &s, err, sizeof(err)) == 0,
		    "'%s' rejected: %s", v[i].text, err);
		ck_assert_uint_eq(s.width, v[i].w);
		ck_assert_uint_eq(s.height, v[i].h);
		ck_assert_str_eq(s.name, v[i].text);
	}
}
END_TEST

START_TEST(size_invalid)
{
	static const char *const v[] = {
		"", "0", "-5", "+5", "256x", "x256", "x", "12a", "65536", "256x0", "0x256",
		"1x2x3", " 256", "256 ", "256X480", "256x-1", "256x+1", "65536x1", "1x65536",
		"99999999999999999999", "4294967552",
		"000000000000000000000256",                     /* 24 bytes */
		"0123456789012345678901234567890123456789",     /* 40 bytes */
		"1234567890123456789x1234567890123456789",
	};
	char err[ERRSZ];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct opt_size s;

		err[0] = '\0';
		ck_assert_msg(opts_parse_size(v[i], &s, err, sizeof(err)) == -1,
		    "'%s' accepted as %ux%u", v[i], s.width, s.height);
		ck_assert_msg(err[0] != '\0', "no reason given for '%s'", v[i]);
	}
	/* the reason names the text; a NULL err is allowed */
	ck_assert_int_eq(opts_parse_size("12a", &(struct opt_size){ 0 }, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "12a"));
	ck_assert_int_eq(opts_parse_size("12a", &(struct opt_size){ 0 }, NULL, 0), -1);
}
END_TEST

/* ---- opts_parse_bytes ---- */

START_TEST(bytes_valid)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} v[] = {
		{ "64k", 64 << 10 },
		{ "64K", 64 << 10 },
		{ "8M", 8 << 20 },
		{ "8m", 8 << 20 },
		{ "1048576", 1 << 20 },
		{ "65536", 65536 },
		{ "512M", 512u << 20 },
		{ "524288k", 512u << 20 },
		{ "536870912", 512u << 20 },
	};
	char err[ERRSZ];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint64_t b = 0;

		err[0] = '\0';
		ck_assert_msg(opts_parse_bytes(v[i].text, &b, err, sizeof(err)) == 0,
		    "'%s' rejected: %s", v[i].text, err);
		ck_assert_uint_eq(b, v[i].bytes);
	}
}
END_TEST

START_TEST(bytes_invalid)
{
	static const char *const v[] = {
		"1k", "63k", "65535", "0", "2048M", "1025M", "1073741825", "1048577k", "abc",
		"513M", "1G", "536870913", "524289k",
		"8G", "", "k", "M", "-64k", "+64k", " 64k", "64k ", "64kb", "64kk", "8MB",
		"18446744073709551616", "18446744073709551615k", "17592186044416M",
	};
	char err[ERRSZ];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint64_t b = 0;

		err[0] = '\0';
		ck_assert_msg(opts_parse_bytes(v[i], &b, err, sizeof(err)) == -1,
		    "'%s' accepted as %llu", v[i], (unsigned long long)b);
		ck_assert_msg(err[0] != '\0', "no reason given for '%s'", v[i]);
	}
}
END_TEST

/* ---- opts_parse ---- */

START_TEST(parse_defaults)
{
	struct opts o;
	char err[ERRSZ];

	ck_assert_int_eq(parse(&o, err, "in", "out", (const char *)NULL), OPTS_RUN);
	ck_assert_str_eq(o.input, "in");
	ck_assert_str_eq(o.output, "out");
	ck_assert_uint_eq(o.nsizes, 1);
	ck_assert_str_eq(o.sizes[0].name, "256");
	ck_assert_uint_eq(o.sizes[0].width, 256);
	ck_assert_uint_eq(o.sizes[0].height, 256);
	ck_assert_uint_eq(o.quality, 80);
	ck_assert_uint_eq(o.io_threads, 4);
	ck_assert_uint_ge(o.jobs, 1);
	ck_assert_uint_le(o.jobs, 256);
	ck_assert_uint_eq(o.jobs, default_jobs());
	ck_assert_uint_eq(o.slot_size, 512u << 10);
}
END_TEST

START_TEST(parse_values)
{
	struct opts o;
	char err[ERRSZ];

	ck_assert_int_eq(parse(&o, err, "-j", "3", "--quality", "95", "--io-threads", "7",
	    "--slot-size", "64k", "a", "b", (const char *)NULL), OPTS_RUN);
	ck_assert_uint_eq(o.jobs, 3);
	ck_assert_uint_eq(o.quality, 95);
	ck_assert_uint_eq(o.io_threads, 7);
	ck_assert_uint_eq(o.slot_size, 64 << 10);
	/* long forms, "=" and attached short values; the bounds themselves */
	ck_assert_int_eq(parse(&o, err, "--jobs", "256", "--quality=1", "--io-threads=64",
	    "--size", "32x64", "a", "b", (const char *)NULL), OPTS_RUN);
	ck_assert_uint_eq(o.jobs, 256);
	ck_assert_uint_eq(o.quality, 1);
	ck_assert_uint_eq(o.io_threads, 64);
	ck_assert_uint_eq(o.nsizes, 1);
	ck_assert_str_eq(o.sizes[0].name, "32x64");
	ck_assert_int_eq(parse(&o, err, "-j1", "--jobs=5", "--quality", "100", "--size=48",
	    "--io-threads", "1", "a", "b", (const char *)NULL), OPTS_RUN);
	ck_assert_uint_eq(o.jobs, 5);
	ck_assert_uint_eq(o.quality, 100);
	ck_assert_uint_eq(o.io_threads, 1);
	ck_assert_str_eq(o.sizes[0].name, "48");
	ck_assert_int_eq(parse(&o, err, "-j1", "a", "b", (const char *)NULL), OPTS_RUN);
	ck_assert_uint_eq(o.jobs, 1);
}
END_TEST

START_TEST(parse_sizes)
{
	static const char *const names[] = { "640x480", "128", "32x64", "1", "65535x1" };
	struct opts o;
	char err[ERRSZ];

	ck_assert_int_eq(parse(&o, err, "-s", "640x480", "-s128", "--size", "32x64",
	    "--size=1", "-s", "65535x1", "in", "out", (const char *)NULL), OPTS_RUN);
	ck_assert_uint_eq(o.nsizes, 5);
	for (unsigned i = 0; i < 5; i++)
		ck_assert_str_eq(o.sizes[i].name, names[i]);
	ck_assert_uint_eq(o.sizes[0].width, 640);
	ck_assert_uint_eq(o.sizes[0].height, 480);
	ck_assert_uint_eq(o.sizes[1].width, 128);
	ck_assert_uint_eq(o.sizes[1].height, 128);
	ck_assert_uint_eq(o.sizes[2].width, 32);
	ck_assert_uint_eq(o.sizes[2].height, 64);
	ck_assert_uint_eq(o.sizes[4].width, 65535);
	ck_assert_uint_eq(o.sizes[4].height, 1);
	/* a given size replaces the default */
	ck_assert_int_eq(parse(&o, err, "-s", "64", "in", "out", (const char *)NULL), OPTS_RUN);
	ck_assert_uint_eq(o.nsizes, 1);
	ck_assert_str_eq(o.sizes[0].name, "64");
}
END_TEST

START_TEST(parse_sizes_bad)
{
	const char *v[MAXARGS + 1];
	char sz[OPTS_MAX_SIZES + 1][8];
	struct opts o;
	char err[ERRSZ];
	int n;

	USAGE("128", "-s", "128", "-s", "64", "-s", "128", "in", "out");
	USAGE("640x480", "-s", "640x480", "--size=640x480", "in", "out");
	USAGE("0", "-s", "0", "in", "out");
	USAGE("256x", "-s", "256x", "in", "out");
	USAGE(NULL, "-s", "", "in", "out");
	/* at most OPTS_MAX_SIZES sizes */
	for (int k = OPTS_MAX_SIZES; k <= OPTS_MAX_SIZES + 1; k++) {
		n = 0;
		v[n++] = "thumbr";
		for (int i = 0; i < k; i++) {
			snprintf(sz[i], sizeof(sz[i]), "%d", 10 + i);
			v[n++] = "-s";
			v[n++] = sz[i];
		}
		v[n++] = "in";
		v[n++] = "out";
		v[n] = NULL;
		set_args(v);
		err[0] = '\0';
		if (k == OPTS_MAX_SIZES) {
			ck_assert_int_eq(opts_parse(&o, argcnt, argvec, err, sizeof(err)), OPTS_RUN);
			ck_assert_uint_eq(o.nsizes, OPTS_MAX_SIZES);
			ck_assert_str_eq(o.sizes[OPTS_MAX_SIZES - 1].name, sz[OPTS_MAX_SIZES - 1]);
		} else {
			ck_assert_int_eq(opts_parse(&o, argcnt, argvec, err, sizeof(err)),
			    OPTS_USAGE);
			ck_assert(err[0] != '\0');
		}
	}
}
END_TEST

START_TEST(parse_numbers_bad)
{
	static const char *const jobs[] = { "0", "257", "abc", "-1", "", "4x", " 4", "1.5",
		"99999999999999999999" };
	static const char *const quality[] = { "0", "101", "x", "-80", "", "80%" };
	static const char *const threads[] = { "0", "65", "two", "", "1e3" };

	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
		USAGE(jobs[i], "-j", jobs[i], "in", "out");
		USAGE(jobs[i], "--jobs", jobs[i], "in", "out");
	}
	for (size_t i = 0; i < sizeof(quality) / sizeof(quality[0]); i++)
		USAGE(quality[i], "--quality", quality[i], "in", "out");
	for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++)
		USAGE(threads[i], "--io-threads", threads[i], "in", "out");
	USAGE("1k", "--slot-size", "1k", "in", "out");
	USAGE("8G", "--slot-size=8G", "in", "out");
	USAGE("513M", "--slot-size=513M", "in", "out");	/* its ring would pass 2 GiB */
}
END_TEST

START_TEST(parse_operands)
{
	struct opts o;
	char err[ERRSZ];

	USAGE(NULL, "in");
	USAGE(NULL, (const char *)NULL);
	USAGE(NULL, "-s", "64", "in");
	USAGE(NULL, "a", "b", "c");
	USAGE(NULL, "a", "b", "-j", "2", "c");
	/* options after and between the operands (getopt permutes) */
	unsetenv("POSIXLY_CORRECT");
	ck_assert_int_eq(parse(&o, err, "in", "-s", "64", "out", "-j", "2",
	    (const char *)NULL), OPTS_RUN);
	ck_assert_str_eq(o.input, "in");
	ck_assert_str_eq(o.output, "out");
	ck_assert_uint_eq(o.jobs, 2);
	ck_assert_str_eq(o.sizes[0].name, "64");
	/* "--" ends the options: what follows are operands, even with a dash */
	ck_assert_int_eq(parse(&o, err, "-s", "128", "--", "-in", "--out",
	    (const char *)NULL), OPTS_RUN);
	ck_assert_str_eq(o.input, "-in");
	ck_assert_str_eq(o.output, "--out");
	ck_assert_uint_eq(o.nsizes, 1);
	ck_assert_str_eq(o.sizes[0].name, "128");
	ck_assert_int_eq(parse(&o, err, "--", "-s", "out", (const char *)NULL), OPTS_RUN);
	ck_assert_str_eq(o.input, "-s");
	ck_assert_str_eq(o.output, "out");
	ck_assert_str_eq(o.sizes[0].name, "256");
	USAGE(NULL, "--", "-s", "64", "out");
	/* empty operands */
	USAGE(NULL, "", "out");
	USAGE(NULL, "in", "");
	/* a lone "-" is an operand */
	ck_assert_int_eq(parse(&o, err, "-", "out", (const char *)NULL), OPTS_RUN);
	ck_assert_str_eq(o.input, "-");
}
END_TEST

START_TEST(parse_unknown)
{
	USAGE("-x", "-x", "in", "out");
	USAGE("-x", "in", "out", "-x");
	USAGE("--bogus", "--bogus", "in", "out");
	USAGE("-x", "--jobs=3", "-xk", "in", "out");     /* a letter in a cluster, after a long */
	USAGE("-k", "-j", "3", "-kx", "in", "out");
	USAGE("--s", "--s", "64", "in", "out");   /* ambiguous: --size or --slot-size */
	/* a missing value */
	USAGE("-j", "in", "out", "-j");
	USAGE("-s", "in", "out", "-s");
	USAGE("--quality", "in", "out", "--quality");
	USAGE("--slot-size", "in", "out", "--slot-size");
}
END_TEST

/* A long option given a value it does not take ("--help=x") is a usage error whose message
 * names that option, in printable text. */
START_TEST(parse_long_option_with_value)
{
	static const char *const v[][2] = {
		{ "--help=x", "--help" },
		{ "--version=1", "--version" },
		{ "--no-rotate=1", "--no-rotate" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct opts o;
		char err[ERRSZ];

		ck_assert_int_eq(parse(&o, err, v[i][0], "in", "out", (const char *)NULL),
		    OPTS_USAGE);
		for (const char *c = err; *c != '\0'; c++)
			ck_assert_msg(*c >= 0x20 && *c < 0x7f,
			    "%s: control byte %#x in the message", v[i][0], (unsigned char)*c);
		ck_assert_msg(strstr(err, v[i][1]) != NULL, "%s: message '%s' does not name %s",
		    v[i][0], err, v[i][1]);
	}
}
END_TEST

/* Successive calls start afresh: nothing of an earlier call (getopt state, sizes) leaks. */
START_TEST(parse_repeated)
{
	struct opts o;
	char err[ERRSZ];

	USAGE("-x", "-j", "2", "-x", "-s", "64", "in", "out");
	ck_assert_int_eq(parse(&o, err, "-s", "64", "-j", "2", "in", "out",
	    (const char *)NULL), OPTS_RUN);
	ck_assert_uint_eq(o.nsizes, 1);
	ck_assert_uint_eq(o.jobs, 2);
	ck_assert_int_eq(parse(&o, err, "-s", "64", "x", "y", (const char *)NULL), OPTS_RUN);
	ck_assert_uint_eq(o.nsizes, 1);
	ck_assert_uint_eq(o.jobs, default_jobs());
	ck_assert_str_eq(o.input, "x");
	ck_assert_int_eq(parse(&o, err, "x", "y", (const char *)NULL), OPTS_RUN);
	ck_assert_str_eq(o.sizes[0].name, "256");
}
END_TEST

/* --help and --version: OPTS_EXIT, text on stdout; run in a child with stdout on a pipe. */
static void
exit_option(const char *opt, const char *want)
{
	char out[8192];
	size_t got = 0;
	ssize_t n;
	int fd[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(fd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct opts o;
		char err[ERRSZ];
		const char *v[] = { "thumbr", "-j", "2", opt, "in", "out", NULL };
		enum opts_result r;

		close(fd[0]);
		if (dup2(fd[1], STDOUT_FILENO) < 0)
			_exit(100);
		set_args(v);
		r = opts_parse(&o, argcnt, argvec, err, sizeof(err));
		fflush(stdout);
		_exit((int)r);
	}
	close(fd[1]);
	while (got < sizeof(out) - 1 && (n = read(fd[0], out + got, sizeof(out) - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), OPTS_EXIT);
	ck_assert_msg(strstr(out, want) != NULL, "%s printed '%s'", opt, out);
}

START_TEST(parse_help_version)
{
	exit_option("-h", "usage: thumbr");
	exit_option("--help", "--quality");
	exit_option("-V", "thumbr " THUMBR_VERSION);
	exit_option("--version", "thumbr " THUMBR_VERSION);
}
END_TEST

Suite *
opts_suite(void)
{
	Suite *s = suite_create("opts");
	TCase *tc;

	tc = tcase_create("parse_size");
	tcase_add_test(tc, size_valid);
	tcase_add_test(tc, size_invalid);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse_bytes");
	tcase_add_test(tc, bytes_valid);
	tcase_add_test(tc, bytes_invalid);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, parse_defaults);
	tcase_add_test(tc, parse_values);
	tcase_add_test(tc, parse_sizes);
	tcase_add_test(tc, parse_sizes_bad);
	tcase_add_test(tc, parse_numbers_bad);
	tcase_add_test(tc, parse_operands);
	tcase_add_test(tc, parse_unknown);
	tcase_add_test(tc, parse_long_option_with_value);
	tcase_add_test(tc, parse_repeated);
	tcase_add_test(tc, parse_help_version);
	suite_add_tcase(s, tc);
	return s;
}
