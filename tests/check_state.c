/*
 * state and lock: the up-to-date record (format, parse, the equality rule, the fingerprint)
 * and the OUTPUT_DIR lock, on files in a temporary directory.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suites.h"
#include "testutil.h"
#include "thumbr/lock.h"
#include "thumbr/opts.h"
#include "thumbr/state.h"

static char *tmp;

static void
setup(void)
{
	tmp = tu_tmpdir();
}

static void
teardown(void)
{
	tu_rmrf(tmp);
	free(tmp);
}

static void
parse_opts(struct opts *o, const char *extra)
{
	char *argv[] = { "thumbr", (char *)(extra ? extra : "-s256"), "in", tmp, NULL };
	char err[256];

	ck_assert_int_eq(opts_parse(o, 4, argv, err, sizeof(err)), OPTS_RUN);
}

START_TEST(record_round_trip)
{
	struct opts o;
	struct state st;
	struct state_rec r;
	struct timespec mt = { 1700000000, 123456789 };
	char *rec;

	parse_opts(&o, NULL);
	state_init(&st, &o);
	rec = state_format(&st, 0, "dir with space/\xff.jpg", 4242, &mt);
	ck_assert_int_eq(state_parse(rec, strlen(rec), &r), 0);
	ck_assert_uint_eq(r.size, 4242);
	ck_assert_int_eq(r.sec, 1700000000);
	ck_assert_int_eq(r.nsec, 123456789);
	ck_assert(r.fp == st.fp[0]);
	ck_assert_str_eq(r.rel, "dir with space/\xff.jpg");
	free(rec);
	ck_assert_int_eq(state_parse("2 1 2.3 ff x", 12, &r), -1);     /* another version */
	ck_assert_int_eq(state_parse("1 1 2.3 ff ", 11, &r), -1);      /* no source */
	ck_assert_int_eq(state_parse("garbage", 7, &r), -1);
}
END_TEST

START_TEST(fingerprint_follows_the_options)
{
	struct opts a, b;
	struct state sa, sb;

	parse_opts(&a, "--quality=80");
	parse_opts(&b, "--quality=60");
	state_init(&sa, &a);
	state_init(&sb, &b);
	ck_assert(sa.fp[0] != sb.fp[0]);
	parse_opts(&b, "--quality=80");
	state_init(&sb, &b);
	ck_assert(sa.fp[0] == sb.fp[0]);
	parse_opts(&b, "--background=#000000");
	state_init(&sb, &b);
	ck_assert(sa.fp[0] != sb.fp[0]);
	parse_opts(&b, "--no-rotate");
	state_init(&sb, &b);
	ck_assert(sa.fp[0] != sb.fp[0]);
	parse_opts(&b, "-j1");                  /* not an option that shapes bytes */
	state_init(&sb, &b);
	ck_assert(sa.fp[0] == sb.fp[0]);
}
END_TEST

START_TEST(uptodate_needs_equal_size_and_mtime)
{
	struct opts o;
	struct state st;
	struct stat src;
	char *thumb, *rec, *srcpath = tu_join(tmp, "src.jpg");
	int fd;

	parse_opts(&o, NULL);
	state_init(&st, &o);
	ck_assert_int_eq(tu_write(srcpath, "abc", 3), 0);
	ck_assert_int_eq(stat(srcpath, &src), 0);
	thumb = state_output(&o, 0, "src.jpg");
	ck_assert_int_eq(tu_write(thumb, "thumb", 5), 0);
	ck_assert(!state_uptodate(&st, "src.jpg", &src));       /* no record yet */
	fd = open(thumb, O_RDWR);
	rec = state_format(&st, 0, "src.jpg", (uint64_t)src.st_size, &src.st_mtim);
	if (state_attach(fd, rec) != 0) {
		fprintf(stderr, "SKIPPED uptodate_needs_equal_size_and_mtime: %s keeps no extended "
		    "attributes\n", tmp);
		close(fd);
		free(rec), free(thumb), free(srcpath);
		return;
	}
	close(fd);
	ck_assert(state_uptodate(&st, "src.jpg", &src));
	src.st_mtim.tv_nsec += 1;                               /* newer by 1 ns */
	ck_assert(!state_uptodate(&st, "src.jpg", &src));
	src.st_mtim.tv_nsec -= 2;                               /* older: not equal either */
	ck_assert(!state_uptodate(&st, "src.jpg", &src));
	src.st_mtim.tv_nsec += 1;
	src.st_size += 1;
	ck_assert(!state_uptodate(&st, "src.jpg", &src));
	src.st_size -= 1;
	ck_assert(!state_uptodate(&st, "other.jpg", &src));     /* another source's record */
	st.force = 1;
	ck_assert(!state_uptodate(&st, "src.jpg", &src));
	free(rec), free(thumb), free(srcpath);
}
END_TEST

START_TEST(lock_excludes_and_names_the_holder)
{
	struct lock a, b, s1, s2, s1b;
	char err[256];
	long holder;

	ck_assert_int_eq(lock_take(&a, tmp, 0, 0, 0, &holder, err, sizeof(err)), LOCK_OK);
	ck_assert_int_eq(lock_take(&b, tmp, 0, 0, 0, &holder, err, sizeof(err)), LOCK_BUSY);
	ck_assert_int_eq(holder, getpid());
	ck_assert_int_eq(lock_take(&s1, tmp, 1, 2, 0, &holder, err, sizeof(err)), LOCK_BUSY);
	lock_release(&a);
	/* shards of one tree run side by side, but never the same shard twice */
	ck_assert_int_eq(lock_take(&s1, tmp, 1, 2, 0, &holder, err, sizeof(err)), LOCK_OK);
	ck_assert_int_eq(lock_take(&s2, tmp, 2, 2, 0, &holder, err, sizeof(err)), LOCK_OK);
	ck_assert_int_eq(lock_take(&s1b, tmp, 1, 2, 0, &holder, err, sizeof(err)), LOCK_BUSY);
	ck_assert_int_eq(lock_take(&a, tmp, 0, 0, 0, &holder, err, sizeof(err)), LOCK_BUSY);
	lock_release(&s1);
	lock_release(&s2);
	ck_assert_int_eq(lock_take(&a, tmp, 0, 0, 0, &holder, err, sizeof(err)), LOCK_OK);
	lock_release(&a);
}
END_TEST

Suite *
state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *t = tcase_create("Core");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 10);
	tcase_add_test(t, record_round_trip);
	tcase_add_test(t, fingerprint_follows_the_options);
	tcase_add_test(t, uptodate_needs_equal_size_and_mtime);
	tcase_add_test(t, lock_excludes_and_names_the_holder);
	suite_add_tcase(s, t);
	return s;
}
