/*
 * plan suite: plan_out_rel (the source extension replaced by ".jpg", paths as bytes) and
 * plan_build on hand-made scan results: nested paths, output-name collisions (the first
 * source in byte order keeps the name, the others are reported and left out), and the
 * order of the jobs (biggest source first).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "thumbr/plan.h"
#include "thumbr/scan.h"
#include "suites.h"
#include "testutil.h"

struct src {
	const char *rel;
	uint64_t size;
	int kind;
};

/* A scan result as scan_tree makes it: malloc'ed entries, sorted by rel (bytewise). */
static void
mkscan(struct scan_result *s, const struct src *v, size_t n)
{
	memset(s, 0, sizeof(*s));
	s->v = calloc(n ? n : 1, sizeof(*s->v));
	ck_assert_ptr_nonnull(s->v);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			ck_assert_msg(strcmp(v[i - 1].rel, v[i].rel) < 0,
			    "test input not sorted: %s, %s", v[i - 1].rel, v[i].rel);
		s->v[i].rel = strdup(v[i].rel);
		ck_assert_ptr_nonnull(s->v[i].rel);
		s->v[i].size = v[i].size;
		s->v[i].kind = (enum scan_kind)v[i].kind;
	}
	s->n = s->cap = n;
}

#define MKSCAN(s, arr) mkscan((s), (arr), sizeof(arr) / sizeof((arr)[0]))

/* The job whose source is rel, or NULL. */
static const struct plan_job *
job_of(const struct plan *p, const char *rel)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->jobs[i].rel, rel) == 0)
			return &p->jobs[i];
	return NULL;
}

static void
check_out_rel(const char *rel, const char *want)
{
	char *got = plan_out_rel(rel, ".jpg");

	ck_assert_ptr_nonnull(got);
	ck_assert_msg(strcmp(got, want) == 0, "plan_out_rel(\"%s\") = \"%s\", want \"%s\"",
	    rel, got, want);
	free(got);
}

START_TEST(test_out_rel_extension)
{
	check_out_rel("a/b/IMG_1.JPG", "a/b/IMG_1.jpg");
	check_out_rel("x.png", "x.jpg");
	check_out_rel("x.jpg", "x.jpg");
	check_out_rel("deep/er/pic.jpeg", "deep/er/pic.jpg");
	check_out_rel("a.tar.gz", "a.tar.jpg");
}
END_TEST

START_TEST(test_out_rel_no_extension)
{
	check_out_rel("noext", "noext.jpg");
	/* a dot in a directory name is not the file's extension */
	check_out_rel("dir.d/noext", "dir.d/noext.jpg");
	check_out_rel("a.b/c.d/e", "a.b/c.d/e.jpg");
	/* nor is the dot that starts a name (scan skips those, but plan alone does not) */
	check_out_rel("d/.x", "d/.x.jpg");
}
END_TEST

START_TEST(test_out_rel_bytes)
{
	check_out_rel("my photos/summer day 1.png", "my photos/summer day 1.jpg");
	check_out_rel("\xc3\xa9t\xc3\xa9/\xc3\x9f.png", "\xc3\xa9t\xc3\xa9/\xc3\x9f.jpg");
	check_out_rel("\xff\xfe/\x80.jpg", "\xff\xfe/\x80.jpg");
	check_out_rel("\xff\xfe.d/\x80", "\xff\xfe.d/\x80.jpg");
	check_out_rel("-lead/new\nline.PNG", "-lead/new\nline.jpg");
}
END_TEST

START_TEST(test_build_nested)
{
	static const struct src in[] = {
		{ "a/b.jpg", 5, SCAN_JPEG },
		{ "a/b/c.png", 10, SCAN_PNG },
		{ "z.jpeg", 20, SCAN_JPEG },
	};
	struct scan_result s;
	struct tu_fails f = { 0 };
	struct plan p;

	MKSCAN(&s, in);
	plan_build(&p, &s, ".jpg", tu_fail_record, &f);
	ck_assert_uint_eq(f.n, 0);
	ck_assert_uint_eq(p.collisions, 0);
	ck_assert_uint_eq(p.n, 3);
	/* biggest first, out_rel derived, rel borrowed from the scan result */
	ck_assert_str_eq(p.jobs[0].rel, "z.jpeg");
	ck_assert_str_eq(p.jobs[0].out_rel, "z.jpg");
	ck_assert_uint_eq(p.jobs[0].size, 20);
	ck_assert_int_eq(p.jobs[0].kind, SCAN_JPEG);
	ck_assert_ptr_eq(p.jobs[0].rel, s.v[2].rel);
	ck_assert_str_eq(p.jobs[1].rel, "a/b/c.png");
	ck_assert_str_eq(p.jobs[1].out_rel, "a/b/c.jpg");
	ck_assert_uint_eq(p.jobs[1].size, 10);
	ck_assert_int_eq(p.jobs[1].kind, SCAN_PNG);
	ck_assert_ptr_eq(p.jobs[1].rel, s.v[1].rel);
	ck_assert_str_eq(p.jobs[2].rel, "a/b.jpg");
	ck_assert_str_eq(p.jobs[2].out_rel, "a/b.jpg");
	ck_assert_uint_eq(p.jobs[2].size, 5);
	ck_assert_ptr_eq(p.jobs[2].rel, s.v[0].rel);
	plan_free(&p);
	scan_free(&s);
}
END_TEST

START_TEST(test_build_empty)
{
	struct scan_result s;
	struct tu_fails f = { 0 };
	struct plan p;

	memset(&s, 0, sizeof(s));
	plan_build(&p, &s, ".jpg", tu_fail_record, &f);
	ck_assert_uint_eq(p.n, 0);
	ck_assert_uint_eq(p.collisions, 0);
	ck_assert_uint_eq(f.n, 0);
	plan_free(&p);
}
END_TEST

START_TEST(test_build_collision)
{
	/* a.png is bigger, so neither "biggest wins" nor "last wins" would pass */
	static const struct src in[] = {
		{ "a.jpg", 100, SCAN_JPEG },
		{ "a.png", 900, SCAN_PNG },
		{ "b.png", 50, SCAN_PNG },
	};
	struct scan_result s;
	struct tu_fails f = { 0 };
	struct plan p;
	const struct plan_job *j;

	MKSCAN(&s, in);
	plan_build(&p, &s, ".jpg", tu_fail_record, &f);
	ck_assert_uint_eq(p.collisions, 1);
	ck_assert_uint_eq(f.n, 1);
	ck_assert_str_eq(f.rel[0], "a.png");
	ck_assert_msg(strstr(f.reason[0], "a.jpg") != NULL,
	    "reason does not name the source that keeps the name: %s", f.reason[0]);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_ptr_null(job_of(&p, "a.png"));
	j = job_of(&p, "a.jpg");
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(j->out_rel, "a.jpg");
	ck_assert_uint_eq(j->size, 100);
	ck_assert_ptr_nonnull(job_of(&p, "b.png"));
	plan_free(&p);
	scan_free(&s);
	tu_fails_free(&f);
}
END_TEST

START_TEST(test_build_collision_nested_case)
{
	/* the keeper d/a.JPG ('J' < 'p') differs from the output name d/a.jpg they share,
	 * so a reason that names both can be told apart from one naming either */
	static const struct src in[] = {
		{ "d/a.JPG", 1, SCAN_JPEG },
		{ "d/a.png", 2, SCAN_PNG },
		{ "e/a.png", 3, SCAN_PNG },
	};
	struct scan_result s;
	struct tu_fails f = { 0 };
	struct plan p;

	MKSCAN(&s, in);
	plan_build(&p, &s, ".jpg", tu_fail_record, &f);
	ck_assert_uint_eq(p.collisions, 1);
	ck_assert_uint_eq(f.n, 1);
	ck_assert_str_eq(f.rel[0], "d/a.png");
	ck_assert_msg(strstr(f.reason[0], "d/a.JPG") != NULL,
	    "reason does not name the keeper d/a.JPG: %s", f.reason[0]);
	ck_assert_msg(strstr(f.reason[0], "d/a.jpg") != NULL,
	    "reason does not name the output d/a.jpg: %s", f.reason[0]);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_str_eq(job_of(&p, "d/a.JPG")->out_rel, "d/a.jpg");
	ck_assert_str_eq(job_of(&p, "e/a.png")->out_rel, "e/a.jpg");
	ck_assert_ptr_null(job_of(&p, "d/a.png"));
	plan_free(&p);
	scan_free(&s);
	tu_fails_free(&f);
}
END_TEST

START_TEST(test_build_collision_three)
{
	static const struct src in[] = {
		{ "a.jpeg", 1, SCAN_JPEG },
		{ "a.jpg", 2, SCAN_JPEG },
		{ "a.png", 3, SCAN_PNG },
		{ "b.png", 4, SCAN_PNG },
	};
	struct scan_result s;
	struct tu_fails f = { 0 };
	struct plan p;
	long i;

	MKSCAN(&s, in);
	plan_build(&p, &s, ".jpg", tu_fail_record, &f);
	ck_assert_uint_eq(p.collisions, 2);
	ck_assert_uint_eq(f.n, 2);
	/* "a.jpeg" < "a.jpg" < "a.png": a.jpeg keeps a.jpg, even over a.jpg itself */
	i = tu_fail_index(&f, "a.jpg");
	ck_assert_int_ge(i, 0);
	ck_assert_msg(strstr(f.reason[i], "a.jpeg") != NULL, "reason for a.jpg: %s",
	    f.reason[i]);
	i = tu_fail_index(&f, "a.png");
	ck_assert_int_ge(i, 0);
	ck_assert_msg(strstr(f.reason[i], "a.jpeg") != NULL, "reason for a.png: %s",
	    f.reason[i]);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_ptr_nonnull(job_of(&p, "a.jpeg"));
	ck_assert_str_eq(job_of(&p, "a.jpeg")->out_rel, "a.jpg");
	ck_assert_ptr_nonnull(job_of(&p, "b.png"));
	ck_assert_ptr_null(job_of(&p, "a.jpg"));
	ck_assert_ptr_null(job_of(&p, "a.png"));
	plan_free(&p);
	scan_free(&s);
	tu_fails_free(&f);
}
END_TEST

START_TEST(test_build_collision_noext)
{
	/* "a" (an image without an extension) becomes a.jpg too */
	static const struct src in[] = {
		{ "a", 7, SCAN_JPEG },
		{ "a.png", 8, SCAN_PNG },
	};
	struct scan_result s;
	struct tu_fails f = { 0 };
	struct plan p;

	MKSCAN(&s, in);
	plan_build(&p, &s, ".jpg", tu_fail_record, &f);
	ck_assert_uint_eq(p.collisions, 1);
	ck_assert_uint_eq(f.n, 1);
	ck_assert_str_eq(f.rel[0], "a.png");
	ck_assert_uint_eq(p.n, 1);
	ck_assert_str_eq(p.jobs[0].rel, "a");
	ck_assert_str_eq(p.jobs[0].out_rel, "a.jpg");
	plan_free(&p);
	scan_free(&s);
	tu_fails_free(&f);
}
END_TEST

START_TEST(test_build_no_collision)
{
	/* same stem in different directories, and names that only look alike */
	static const struct src in[] = {
		{ "a.jpg", 1, SCAN_JPEG },
		{ "a.jpg.png", 2, SCAN_PNG },
		{ "a.png.d/a.png", 3, SCAN_PNG },
		{ "x/a.jpg", 4, SCAN_JPEG },
		{ "y/a.png", 5, SCAN_PNG },
		{ "y/z/a.jpeg", 6, SCAN_JPEG },
	};
	static const char *out[] = { "a.jpg", "a.jpg.jpg", "a.png.d/a.jpg", "x/a.jpg",
		"y/a.jpg", "y/z/a.jpg" };
	struct scan_result s;
	struct tu_fails f = { 0 };
	struct plan p;

	MKSCAN(&s, in);
	plan_build(&p, &s, ".jpg", tu_fail_record, &f);
	ck_assert_uint_eq(f.n, 0);
	ck_assert_uint_eq(p.collisions, 0);
	ck_assert_uint_eq(p.n, 6);
	for (size_t i = 0; i < 6; i++) {
		const struct plan_job *j = job_of(&p, in[i].rel);

		ck_assert_msg(j != NULL, "no job for %s", in[i].rel);
		ck_assert_str_eq(j->out_rel, out[i]);
		ck_assert_uint_eq(j->size, in[i].size);
	}
	plan_free(&p);
	scan_free(&s);
	tu_fails_free(&f);
}
END_TEST

START_TEST(test_build_biggest_first)
{
	static const struct src in[] = {
		{ "a.jpg", 3, SCAN_JPEG },
		{ "b.jpg", 100, SCAN_JPEG },
		{ "c.png", 7, SCAN_PNG },
		{ "d.png", (uint64_t)5 << 30, SCAN_PNG },     /* beyond 32 bits */
		{ "e.jpg", 50, SCAN_JPEG },
		{ "f.jpg", 1, SCAN_JPEG },
		{ "g.jpg", ((uint64_t)1 << 32) + 1, SCAN_JPEG },
	};
	static const char *want[] = { "d.png", "g.jpg", "b.jpg", "e.jpg", "c.png", "a.jpg",
		"f.jpg" };
	struct scan_result s;
	struct tu_fails f = { 0 };
	struct plan p;

	MKSCAN(&s, in);
	plan_build(&p, &s, ".jpg", tu_fail_record, &f);
	ck_assert_uint_eq(p.n, 7);
	for (size_t i = 0; i < p.n; i++) {
		ck_assert_str_eq(p.jobs[i].rel, want[i]);
		if (i > 0)
			ck_assert_uint_ge(p.jobs[i - 1].size, p.jobs[i].size);
	}
	plan_free(&p);
	scan_free(&s);
}
END_TEST

Suite *
plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc;

	tc = tcase_create("out_rel");
	tcase_add_test(tc, test_out_rel_extension);
	tcase_add_test(tc, test_out_rel_no_extension);
	tcase_add_test(tc, test_out_rel_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, test_build_nested);
	tcase_add_test(tc, test_build_empty);
	tcase_add_test(tc, test_build_collision);
	tcase_add_test(tc, test_build_collision_nested_case);
	tcase_add_test(tc, test_build_collision_three);
	tcase_add_test(tc, test_build_collision_noext);
	tcase_add_test(tc, test_build_no_collision);
	tcase_add_test(tc, test_build_biggest_first);
	suite_add_tcase(s, tc);
	return s;
}
