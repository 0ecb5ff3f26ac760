/*
 * out suite: the temporary-file-then-rename writer, in a fresh temporary directory per test:
 * out_begin (missing parents created, temporary ".NAME.thumbr-tmp" beside the final name,
 * no final name before out_commit), out_write at offsets, out_commit (exact bytes, mode
 * 0666 & ~umask, atomic replacement of an existing file), out_abort, out_mkdirs, failures
 * that must name the path, and out_is_tmp_name.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "thumbr/out.h"
#include "suites.h"
#include "testutil.h"

#define TEST_UMASK 027

static char base[PATH_MAX / 8];         /* per test case, removed even after a failure */
static char root[PATH_MAX / 4];         /* per test, below base */
static mode_t saved_umask;

/* Once per test case, in the runner: the parent of every test's tree. */
static void
setup_base(void)
{
	tu_mkdtemp_in(base, sizeof(base), NULL, "thumbr-check-out-XXXXXX");
}

/* A failed test skips its checked teardown: whatever it left goes here. */
static void
teardown_base(void)
{
	tu_rmrf(base);
}

/* A fresh tree per test, and a umask other than the usual 022 so that a hard-coded 0644
 * cannot pass. */
static void
setup(void)
{
	tu_mkdtemp_in(root, sizeof(root), base, "t-XXXXXX");
	saved_umask = umask(TEST_UMASK);
	out_init();
}

static void
teardown(void)
{
	umask(saved_umask);
	tu_rmrf(root);
}

/* root/rel, in one of a few rotating static buffers. */
static const char *
at(const char *rel)
{
	static char p[4][PATH_MAX];
	static int k;
	int n;

	k = (k + 1) % 4;
	n = snprintf(p[k], sizeof(p[k]), "%s/%s", root, rel);
	ck_assert(n > 0 && (size_t)n < sizeof(p[k]));
	return p[k];
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int
is_dir(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Number of entries in dir; the name of the first one in *first (malloc'ed) if asked. */
static size_t
entries(const char *dir, char **first)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
	if (first != NULL)
		*first = NULL;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first != NULL)
			*first = strdup(de->d_name);
	}
	closedir(d);
	return n;
}

static void
put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

/* The whole content of an open file from offset 0, NUL-terminated; its length in *n. */
static char *
slurp_fd(int fd, size_t *n)
{
	struct stat st;
	char *b;

	ck_assert_int_eq(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	b[st.st_size] = '\0';
	*n = (size_t)st.st_size;
	return b;
}

static char *
slurp(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *b;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	b = slurp_fd(fd, n);
	close(fd);
	return b;
}

static void
expect_content(const char *path, const char *want)
{
	size_t n;
	char *b = slurp(path, &n);

	ck_assert_uint_eq(n, strlen(want));
	ck_assert_str_eq(b, want);
	free(b);
}

static void
begin_ok(struct out_tmp *t, const char *final)
{
	char err[256] = "";

	ck_assert_msg(out_begin(t, final, err, sizeof(err)) == 0, "out_begin %s: %s", final,
	    err);
	ck_assert_int_ge(t->fd, 0);
	ck_assert_ptr_nonnull(t->tmp);
}

static void
write_ok(struct out_tmp *t, const void *p, size_t n, uint64_t off)
{
	char err[256] = "";

	ck_assert_msg(out_write(t, p, n, off, err, sizeof(err)) == 0, "out_write: %s", err);
}

static void
commit_ok(struct out_tmp *t)
{
	char err[256] = "";

	ck_assert_msg(out_commit(t, err, sizeof(err)) == 0, "out_commit: %s", err);
}

/* The temporary of final is "DIR/.BASE.thumbr-tmp" with DIR/BASE == final. */
static void
expect_tmp_of(const char *tmp, const char *final)
{
	const char *slash = strrchr(final, '/');
	size_t dirlen = slash ? (size_t)(slash - final) + 1 : 0;
	const char *fbase = final + dirlen;
	const char *tbase = tmp + dirlen;

	ck_assert_msg(strncmp(tmp, final, dirlen) == 0 && strchr(tbase, '/') == NULL,
	    "temporary %s is not in the directory of %s", tmp, final);
	ck_assert_msg(tbase[0] == '.' && strncmp(tbase + 1, fbase, strlen(fbase)) == 0 &&
	    strcmp(tbase + 1 + strlen(fbase), OUT_TMP_TAG) == 0,
	    "temporary %s is not .%s" OUT_TMP_TAG, tbase, fbase);
	ck_assert_msg(out_is_tmp_name(tbase), "out_is_tmp_name(\"%s\") is false", tbase);
}

START_TEST(test_begin_makes_dirs)
{
	const char *final = at("a/b/c/x.jpg");
	struct out_tmp t;
	struct stat st;
	char *name;

	ck_assert(!exists(at("a")));
	begin_ok(&t, final);
	ck_assert(is_dir(at("a/b/c")));
	expect_tmp_of(t.tmp, final);
	ck_assert_int_eq(lstat(t.tmp, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert(!exists(final));
	ck_assert_uint_eq(entries(at("a/b/c"), NULL), 1);
	write_ok(&t, "data", 4, 0);
	ck_assert(!exists(final));
	commit_ok(&t);
	expect_content(final, "data");
	ck_assert_uint_eq(entries(at("a/b/c"), &name), 1);
	ck_assert_str_eq(name, "x.jpg");
	free(name);
}
END_TEST

START_TEST(test_begin_existing_dir)
{
	const char *final = at("y.jpg");
	struct out_tmp t;

	begin_ok(&t, final);
	expect_tmp_of(t.tmp, final);
	ck_assert(!exists(final));
	commit_ok(&t);
	ck_assert(exists(final));
	ck_assert_uint_eq(entries(root, NULL), 1);
}
END_TEST

START_TEST(test_begin_bare_name)
{
	struct out_tmp t;
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	ck_assert_int_ge(cwd, 0);
	ck_assert_int_eq(chdir(root), 0);
	begin_ok(&t, "bare.jpg");
	expect_tmp_of(t.tmp, "bare.jpg");
	commit_ok(&t);
	ck_assert_int_eq(fchdir(cwd), 0);
	close(cwd);
	expect_content(at("bare.jpg"), "");
	ck_assert_uint_eq(entries(root, NULL), 1);
}
END_TEST

START_TEST(test_write_offsets)
{
	const char *final = at("d/w.jpg");
	size_t n = 10007, h = n / 2, got;
	unsigned char *want = malloc(n);
	char *b;
	struct out_tmp t;
	struct stat st;

	ck_assert_ptr_nonnull(want);
	for (size_t i = 0; i < n; i++)
		want[i] = (unsigned char)(i * 31 + (i >> 8));
	begin_ok(&t, final);
	write_ok(&t, want + h, n - h, h);       /* the second half first */
	write_ok(&t, want, h, 0);
	ck_assert(!exists(final));
	commit_ok(&t);
	b = slurp(final, &got);
	ck_assert_uint_eq(got, n);
	ck_assert_mem_eq(b, want, n);
	ck_assert_int_eq(stat(final, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0666 & ~TEST_UMASK);
	free(b);
	free(want);
}
END_TEST

START_TEST(test_mode_follows_umask)
{
	struct out_tmp t;
	struct stat st;

	umask(002);
	out_init();
	begin_ok(&t, at("m.jpg"));
	commit_ok(&t);
	ck_assert_int_eq(stat(at("m.jpg"), &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0664);
}
END_TEST

START_TEST(test_abort)
{
	const char *final = at("d/gone.jpg");
	struct out_tmp t;
	char *tmp;

	begin_ok(&t, final);
	write_ok(&t, "partial", 7, 0);
	tmp = strdup(t.tmp);
	ck_assert(exists(tmp));
	out_abort(&t);
	ck_assert(!exists(tmp));
	ck_assert(!exists(final));
	ck_assert_uint_eq(entries(at("d"), NULL), 0);
	out_abort(&t);                          /* nothing open any more: harmless */
	ck_assert_uint_eq(entries(at("d"), NULL), 0);
	free(tmp);
}
END_TEST

START_TEST(test_replace)
{
	const char *final = at("r.jpg");
	struct out_tmp t;
	struct stat before, after;
	size_t n;
	char *b;
	int old;

	put(final, "old content");
	ck_assert_int_eq(stat(final, &before), 0);
	old = open(final, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(old, 0);
	begin_ok(&t, final);
	write_ok(&t, "new", 3, 0);
	expect_content(final, "old content");   /* untouched until the commit */
	commit_ok(&t);
	expect_content(final, "new");
	ck_assert_int_eq(stat(final, &after), 0);
	ck_assert_uint_ne(before.st_ino, after.st_ino);
	/* replaced, not rewritten in place: the old file is intact */
	b = slurp_fd(old, &n);
	ck_assert_str_eq(b, "old content");
	free(b);
	close(old);
	ck_assert_uint_eq(entries(root, NULL), 1);
}
END_TEST

/* One job owns a final name; what else bears its temporary name was left by a killed run
 * and is replaced, without writing through a link. */
START_TEST(test_stale_temporary_replaced)
{
	char *final = strdup(at("s/two.jpg"));
	char *tmp = strdup(at("s/.two.jpg" OUT_TMP_TAG)), *victim = strdup(at("victim"));
	struct out_tmp t;

	ck_assert_int_eq(mkdir(at("s"), 0755), 0);
	ck_assert_int_eq(tu_write(tmp, "stale", 5), 0);
	begin_ok(&t, final);
	ck_assert_str_eq(t.tmp, tmp);
	write_ok(&t, "fresh", 5, 0);
	commit_ok(&t);
	expect_content(final, "fresh");
	ck_assert_uint_eq(entries(at("s"), NULL), 1);
	/* a link bearing the name is removed, its target untouched */
	ck_assert_int_eq(tu_write(victim, "keep me", 7), 0);
	ck_assert_int_eq(symlink(victim, tmp), 0);
	begin_ok(&t, final);
	write_ok(&t, "newer", 5, 0);
	commit_ok(&t);
	expect_content(final, "newer");
	expect_content(victim, "keep me");
	free(tmp);
	free(victim);
	free(final);
}
END_TEST

START_TEST(test_commit_fails)
{
	const char *final = at("isdir.jpg");
	char err[256] = "";
	struct out_tmp t;
	char *tmp;

	/* a non-empty directory under the final name: rename cannot replace it */
	ck_assert_int_eq(mkdir(final, 0755), 0);
	put(at("isdir.jpg/keep"), "x");
	begin_ok(&t, final);
	tmp = strdup(t.tmp);
	write_ok(&t, "data", 4, 0);
	ck_assert_int_eq(out_commit(&t, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, final) != NULL, "err does not name %s: \"%s\"", final, err);
	ck_assert(!exists(tmp));                /* the temporary is removed */
	ck_assert(is_dir(final));
	ck_assert_uint_eq(entries(root, NULL), 1);
	free(tmp);
}
END_TEST

START_TEST(test_mkdirs)
{
	char err[256] = "";

	ck_assert_int_eq(out_mkdirs(at("p/q/r"), err, sizeof(err)), 0);
	ck_assert(is_dir(at("p")));
	ck_assert(is_dir(at("p/q")));
	ck_assert(is_dir(at("p/q/r")));
	put(at("p/q/r/f"), "kept");
	ck_assert_int_eq(out_mkdirs(at("p/q/r"), err, sizeof(err)), 0);     /* exists */
	expect_content(at("p/q/r/f"), "kept");
	ck_assert_int_eq(out_mkdirs(at("p/q/s"), err, sizeof(err)), 0);     /* partly */
	ck_assert(is_dir(at("p/q/s")));
	ck_assert_int_eq(out_mkdirs(at("t/u//"), err, sizeof(err)), 0);     /* slashes */
	ck_assert(is_dir(at("t/u")));
	ck_assert_int_eq(out_mkdirs(root, err, sizeof(err)), 0);
	ck_assert_int_eq(out_mkdirs("/", err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_mkdirs_relative)
{
	char err[256] = "";
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	ck_assert_int_ge(cwd, 0);
	ck_assert_int_eq(chdir(root), 0);
	rc = out_mkdirs("rel/a/b", err, sizeof(err));
	ck_assert_int_eq(fchdir(cwd), 0);
	close(cwd);
	ck_assert_msg(rc == 0, "out_mkdirs rel/a/b: %s", err);
	ck_assert(is_dir(at("rel/a/b")));
}
END_TEST

START_TEST(test_mkdirs_file_in_way)
{
	char err[256] = "";

	put(at("f"), "a regular file");
	ck_assert_int_eq(out_mkdirs(at("f/g/h"), err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, at("f")) != NULL, "err does not name %s: \"%s\"", at("f"),
	    err);
	expect_content(at("f"), "a regular file");
}
END_TEST

/*
 * out_mkdirs("") must fail cleanly.  It is reachable: `thumbr IN ""` passes an empty
 * OUTPUT_DIR straight to it.  Built with -fsanitize=address this shows whether the path
 * buffer is read past its end.
 */
START_TEST(test_mkdirs_empty)
{
	char err[256] = "";

	ck_assert_int_eq(out_mkdirs("", err, sizeof(err)), -1);
	ck_assert_msg(err[0] != '\0', "no error message");
}
END_TEST

START_TEST(test_begin_file_in_way)
{
	const char *paths[] = { "f/x.jpg", "f/sub/x.jpg", "d/f/deeper/x.jpg" };
	struct out_tmp t;

	put(at("f"), "a regular file");
	ck_assert_int_eq(mkdir(at("d"), 0755), 0);
	put(at("d/f"), "another");
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *in_way = i < 2 ? at("f") : at("d/f");
		char err[256] = "";

		memset(&t, 0x5a, sizeof(t));
		ck_assert_int_eq(out_begin(&t, at(paths[i]), err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, in_way) != NULL, "out_begin %s: err does not name %s: "
		    "\"%s\"", paths[i], in_way, err);
		ck_assert_int_eq(t.fd, -1);
	}
	expect_content(at("f"), "a regular file");
	ck_assert_uint_eq(entries(root, NULL), 2);
	ck_assert_uint_eq(entries(at("d"), NULL), 1);
}
END_TEST

START_TEST(test_tmp_names)
{
	static const char *const yes[] = {
		".a.jpg.thumbr-tmp",
		".x.thumbr-tmp",
		".IMG 1.jpg.thumbr-tmp",
	};
	static const char *const no[] = {
		"a.jpg",
		".a.jpg",
		".a.jpg.thumbr-",
		".a.jpg.thumbr-abc",
		".a.jpg.thumbr-tmpx",
		"a.jpg.thumbr-tmp",
		".a.jpg.thumbr_tmp",
		".a.jpg.thumbr-tmp.jpg",
		".thumbr-tmp",
		"",
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(out_is_tmp_name(yes[i]), "out_is_tmp_name(\"%s\") is false", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(!out_is_tmp_name(no[i]), "out_is_tmp_name(\"%s\") is true", no[i]);
}
END_TEST

/* Every temporary name out_begin makes is recognised, whatever the final name holds. */
START_TEST(test_tmp_names_of_begin)
{
	static const char *const finals[] = {
		"plain.jpg",
		"a.thumbr-b.jpg",
		"x.thumbr-tmp.jpg",
		".thumbr-.jpg",
	};

	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		struct out_tmp t;

		begin_ok(&t, at(finals[i]));
		expect_tmp_of(t.tmp, at(finals[i]));
		out_abort(&t);
	}
	ck_assert_uint_eq(entries(root, NULL), 0);
}
END_TEST

Suite *
out_suite(void)
{
	Suite *s = suite_create("out");
	TCase *tc;

	tc = tcase_create("names");
	tcase_add_test(tc, test_tmp_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_begin_makes_dirs);
	tcase_add_test(tc, test_begin_existing_dir);
	tcase_add_test(tc, test_begin_bare_name);
	tcase_add_test(tc, test_write_offsets);
	tcase_add_test(tc, test_mode_follows_umask);
	tcase_add_test(tc, test_abort);
	tcase_add_test(tc, test_replace);
	tcase_add_test(tc, test_stale_temporary_replaced);
	tcase_add_test(tc, test_commit_fails);
	tcase_add_test(tc, test_begin_file_in_way);
	tcase_add_test(tc, test_tmp_names_of_begin);
	suite_add_tcase(s, tc);

	tc = tcase_create("mkdirs");
	tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_mkdirs);
	tcase_add_test(tc, test_mkdirs_relative);
	tcase_add_test(tc, test_mkdirs_file_in_way);
	tcase_add_test(tc, test_mkdirs_empty);
	suite_add_tcase(s, tc);
	return s;
}
