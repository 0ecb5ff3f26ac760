/*
 * scan suite: scan_sniff on signatures, short and garbage input; scan_tree over trees made
 * in a fresh temporary directory per test: nested directories and bytewise order, dot-files,
 * non-images (skipped, or failed when named like an image), symbolic links, FIFOs and
 * sockets (never followed or opened), the excluded directory, names that are odd bytes,
 * recorded size and mtime, a missing root and an unreadable subdirectory.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "thumbr/scan.h"
#include "suites.h"
#include "testutil.h"

static char base[PATH_MAX / 8];         /* per test case, removed even after a failure */
static char root[PATH_MAX / 4];         /* per test, below base */

static const unsigned char jpeg_sig[] = { 0xff, 0xd8, 0xff };
static const unsigned char png_sig[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

/* Once per test case, in the runner: the parent of every test's tree. */
static void
setup_base(void)
{
	tu_mkdtemp_in(base, sizeof(base), NULL, "thumbr-check-scan-XXXXXX");
}

/* A failed test skips its checked teardown: whatever it left goes here. */
static void
teardown_base(void)
{
	tu_rmrf(base);
}

/* A fresh tree per test. */
static void
setup(void)
{
	tu_mkdtemp_in(root, sizeof(root), base, "t-XXXXXX");
}

static void
teardown(void)
{
	tu_rmrf(root);
}

/* root/rel in a static buffer (one at a time). */
static const char *
at(const char *rel)
{
	static char p[PATH_MAX];
	int n = snprintf(p, sizeof(p), "%s/%s", root, rel);

	ck_assert(n > 0 && (size_t)n < sizeof(p));
	return p;
}

static void
mkd(const char *rel)
{
	ck_assert_msg(mkdir(at(rel), 0755) == 0, "mkdir %s: %s", rel, strerror(errno));
}

static void
put(const char *rel, const void *data, size_t n)
{
	int fd = open(at(rel), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0, "create %s: %s", rel, strerror(errno));
	ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
	close(fd);
}

/* A file of n bytes (n >= the signature) starting with sig. */
static void
put_sig(const char *rel, const unsigned char *sig, size_t siglen, size_t n)
{
	unsigned char *b = calloc(1, n);

	ck_assert_ptr_nonnull(b);
	ck_assert_uint_ge(n, siglen);
	memcpy(b, sig, siglen);
	for (size_t i = siglen; i < n; i++)
		b[i] = (unsigned char)(i * 7);
	put(rel, b, n);
	free(b);
}

#define put_jpeg(rel, n) put_sig((rel), jpeg_sig, sizeof(jpeg_sig), (n))
#define put_png(rel, n) put_sig((rel), png_sig, sizeof(png_sig), (n))
#define put_text(rel, s) put((rel), (s), strlen(s))

static void
link_to(const char *target, const char *rel)
{
	ck_assert_msg(symlink(target, at(rel)) == 0, "symlink %s: %s", rel, strerror(errno));
}

/* The entry for rel, or NULL. */
static const struct scan_entry *
entry_of(const struct scan_result *r, const char *rel)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].rel, rel) == 0)
			return &r->v[i];
	return NULL;
}

/* scan_tree(root) reporting into f; so may be NULL for no exclusion. */
static void
scan(struct scan_result *r, struct scan_opts *so, struct tu_fails *f)
{
	struct scan_opts none;
	char err[256] = "";

	if (so == NULL) {
		memset(&none, 0, sizeof(none));
		so = &none;
	}
	so->fail = tu_fail_record;
	so->ctx = f;
	ck_assert_msg(scan_tree(root, so, r, err, sizeof(err)) == 0, "scan_tree: %s", err);
}

/* The result holds exactly want[0..n), in this order. */
static void
expect_rels(const struct scan_result *r, const char *const *want, size_t n)
{
	for (size_t i = 0; i < r->n && i < n; i++)
		ck_assert_msg(strcmp(r->v[i].rel, want[i]) == 0 &&
		    strlen(r->v[i].rel) == strlen(want[i]),
		    "entry %zu is \"%s\", want \"%s\"", i, r->v[i].rel, want[i]);
	ck_assert_uint_eq(r->n, n);
}

START_TEST(test_sniff)
{
	static const unsigned char jpeg_long[] = { 0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F' };
	static const unsigned char png_crlf[] = { 0x89, 'P', 'N', 'G', '\n', 0x1a, '\n', 0 };
	static const unsigned char gif[] = "GIF89a\x01\x00";
	static const unsigned char almost[] = { 0xff, 0xd8, 0xfe, 0xe0 };

	ck_assert_int_eq(scan_sniff(jpeg_sig, 3, 0), SCAN_JPEG);
	ck_assert_int_eq(scan_sniff(jpeg_long, sizeof(jpeg_long), 0), SCAN_JPEG);
	ck_assert_int_eq(scan_sniff(png_sig, 8, 0), SCAN_PNG);
	/* short: the bytes are there, but n says they are not */
	ck_assert_int_eq(scan_sniff(jpeg_sig, 2, 0), 0);
	ck_assert_int_eq(scan_sniff(png_sig, 7, 0), 0);
	ck_assert_int_eq(scan_sniff(png_sig, 0, 0), 0);
	/* garbage and near misses */
	ck_assert_int_eq(scan_sniff(png_crlf, sizeof(png_crlf), 0), 0);
	ck_assert_int_eq(scan_sniff(gif, 8, 0), SCAN_VIPS);        /* decoded through libvips */
	ck_assert_int_eq(scan_sniff((const unsigned char *)"RIFF\1\0\0\0WEBPVP8 ", 16, 0), SCAN_VIPS);
	ck_assert_int_eq(scan_sniff((const unsigned char *)"RIFF\1\0\0\0WAVEfmt ", 16, 0), 0);
	ck_assert_int_eq(scan_sniff((const unsigned char *)"II*\0\10\0\0\0", 8, 0), SCAN_VIPS);
	ck_assert_int_eq(scan_sniff((const unsigned char *)"\0\0\0\30ftypheic\0\0\0\0", 16, 0),
	    SCAN_VIPS);
	ck_assert_int_eq(scan_sniff((const unsigned char *)"\0\0\0\30ftypisom\0\0\0\0", 16, 0), 0);
	/* formats of untrusted loaders: only when allowed, each by itself */
	ck_assert_int_eq(scan_sniff((const unsigned char *)"<svg xmlns=", 11, 0), 0);
	ck_assert_int_eq(scan_sniff((const unsigned char *)"<svg xmlns=", 11, SCAN_ALLOW_SVG),
	    SCAN_VIPS);
	ck_assert_int_eq(scan_sniff((const unsigned char *)"%PDF-1.7", 8, SCAN_ALLOW_SVG), 0);
	ck_assert_int_eq(scan_sniff((const unsigned char *)"%PDF-1.7", 8, SCAN_ALLOW_PDF),
	    SCAN_VIPS);
	ck_assert_int_eq(scan_sniff(almost, sizeof(almost), 0), 0);
	ck_assert_int_eq(scan_sniff((const unsigned char *)"\0\0\0\0\0\0\0\0", 8, 0), 0);
}
END_TEST

START_TEST(test_nested_sorted)
{
	/* bytewise over the whole path: 'B' (42) < 'a' (61); then ' ' (20) < '.' (2e) < '/' (2f) */
	static const char *const want[] = {
		"B.jpg", "a b.jpg", "a.jpg", "a/b.png", "a/c/d.jpg", "photo.dat",
		"pngnamed.jpg", "z/y/x/w.png",
	};
	struct scan_result r;
	struct tu_fails f = { 0 };

	mkd("a");
	mkd("a/c");
	mkd("z");
	mkd("z/y");
	mkd("z/y/x");
	mkd("emptydir");
	put_png("z/y/x/w.png", 20);
	put_jpeg("a.jpg", 10);
	put_jpeg("a/c/d.jpg", 10);
	put_png("a/b.png", 10);
	put_jpeg("B.jpg", 10);
	put_jpeg("a b.jpg", 10);
	put_jpeg("photo.dat", 10);      /* content decides, not the name */
	put_png("pngnamed.jpg", 10);
	scan(&r, NULL, &f);
	expect_rels(&r, want, sizeof(want) / sizeof(want[0]));
	for (size_t i = 1; i < r.n; i++)
		ck_assert_int_lt(strcmp(r.v[i - 1].rel, r.v[i].rel), 0);
	ck_assert_int_eq(entry_of(&r, "photo.dat")->kind, SCAN_JPEG);
	ck_assert_int_eq(entry_of(&r, "pngnamed.jpg")->kind, SCAN_PNG);
	ck_assert_int_eq(entry_of(&r, "a/b.png")->kind, SCAN_PNG);
	ck_assert_int_eq(entry_of(&r, "a/c/d.jpg")->kind, SCAN_JPEG);
	ck_assert_uint_eq(r.skipped, 0);
	ck_assert_uint_eq(r.failed, 0);
	ck_assert_uint_eq(f.n, 0);
	scan_free(&r);
}
END_TEST

START_TEST(test_empty_root)
{
	struct scan_result r;
	struct tu_fails f = { 0 };

	scan(&r, NULL, &f);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_uint_eq(r.skipped, 0);
	ck_assert_uint_eq(r.failed, 0);
	scan_free(&r);
}
END_TEST

START_TEST(test_dot_entries)
{
	static const char *const want[] = { "sub/visible.png", "visible.jpg" };
	struct scan_result r;
	struct tu_fails f = { 0 };

	mkd(".git");
	mkd(".git/objects");
	mkd(".dotdir");
	mkd("sub");
	put_jpeg(".hidden.jpg", 10);
	put_jpeg(".git/objects/x.jpg", 10);
	put_png(".dotdir/a.png", 10);
	put_text(".fake.jpg", "not an image");      /* would fail if looked at */
	put_text(".notes.txt", "would be skipped");
	put_text(".dotdir/bad.png", "not an image");
	put_png("sub/.x.png", 10);
	put_png("sub/visible.png", 10);
	put_jpeg("visible.jpg", 10);
	scan(&r, NULL, &f);
	expect_rels(&r, want, 2);
	ck_assert_uint_eq(r.skipped, 0);
	ck_assert_uint_eq(r.failed, 0);
	ck_assert_uint_eq(f.n, 0);
	scan_free(&r);
}
END_TEST

START_TEST(test_non_images)
{
	static const char *const failing[] = { "d/fake.png", "empty.png", "fake.jpg",
		"shout.JPEG", "x.jpe" };
	struct scan_result r;
	struct tu_fails f = { 0 };

	mkd("d");
	put_jpeg("ok.jpg", 10);
	put_text("notes.txt", "hello\n");
	put_text("README", "a text file without an extension\n");
	put_jpeg("almost.png.txt", 3);          /* an image after all: content decides */
	put_text("fake.jpg", "this is not a JPEG\n");
	put("empty.png", "", 0);
	put_text("shout.JPEG", "upper case extension\n");
	put_text("x.jpe", "jpe\n");
	put_text("d/fake.png", "nested\n");
	put("d/short.jpg", jpeg_sig, 2);        /* half a signature */
	scan(&r, NULL, &f);
	ck_assert_uint_eq(r.skipped, 2);
	ck_assert_uint_eq(r.failed, 6);
	ck_assert_uint_eq(f.n, 6);
	for (size_t i = 0; i < sizeof(failing) / sizeof(failing[0]); i++) {
		long k = tu_fail_index(&f, failing[i]);

		ck_assert_msg(k >= 0, "%s was not reported", failing[i]);
		ck_assert_msg(f.reason[k][0] != '\0', "%s: empty reason", failing[i]);
	}
	ck_assert_int_ge(tu_fail_index(&f, "d/short.jpg"), 0);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_ptr_nonnull(entry_of(&r, "ok.jpg"));
	ck_assert_ptr_nonnull(entry_of(&r, "almost.png.txt"));
	tu_fails_free(&f);
	scan_free(&r);
}
END_TEST

/* --max-file-size: an image above it is reported unread; a non-image is skipped whatever its
 * size, as it would be under the limit (a video in a photo tree is no failure). */
START_TEST(test_max_size)
{
	static const char movie[5000];
	struct scan_opts so;
	struct scan_result r;
	struct tu_fails f = { 0 };
	long k;

	put_jpeg("big.jpg", 5000);
	put_jpeg("small.jpg", 100);
	put("movie.mkv", movie, sizeof(movie));
	memset(&so, 0, sizeof(so));
	so.max_size = 4096;
	scan(&r, &so, &f);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_ptr_nonnull(entry_of(&r, "small.jpg"));
	ck_assert_uint_eq(r.failed, 1);
	ck_assert_uint_eq(r.skipped, 1);
	k = tu_fail_index(&f, "big.jpg");
	ck_assert_int_ge(k, 0);
	ck_assert_str_eq(f.reason[k], "file is 5000 bytes, more than --max-file-size 4096");
	tu_fails_free(&f);
	scan_free(&r);
}
END_TEST

START_TEST(test_symlinks)
{
	static const char *const want[] = { "img.jpg", "sub/in.png" };
	struct scan_result r;
	struct tu_fails f = { 0 };

	mkd("sub");
	put_jpeg("img.jpg", 10);
	put_png("sub/in.png", 10);
	link_to("img.jpg", "link.jpg");         /* to an image */
	link_to("sub", "linkdir");              /* to a directory */
	link_to("loop.jpg", "loop.jpg");        /* to itself */
	link_to("ping", "pong");                /* a loop of two */
	link_to("pong", "ping");
	link_to("..", "sub/up");                /* would walk in circles if followed */
	link_to("nowhere.png", "dangling.png");
	scan(&r, NULL, &f);
	expect_rels(&r, want, 2);
	ck_assert_uint_eq(r.skipped, 7);
	ck_assert_uint_eq(r.failed, 0);
	ck_assert_uint_eq(f.n, 0);
	scan_free(&r);
}
END_TEST

/* Run with a timeout: a scan that opened a FIFO for reading would block here. */
START_TEST(test_special_files)
{
	static const char *const want[] = { "img.png" };
	struct sockaddr_un sa;
	struct scan_result r;
	struct tu_fails f = { 0 };
	int s;

	put_png("img.png", 10);
	ck_assert_int_eq(mkfifo(at("pipe.jpg"), 0644), 0);
	ck_assert_int_eq(mkfifo(at("pipe"), 0644), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(at("sock.png")), sizeof(sa.sun_path));
	strcpy(sa.sun_path, at("sock.png"));
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	scan(&r, NULL, &f);
	close(s);
	expect_rels(&r, want, 1);
	ck_assert_uint_eq(r.skipped, 3);
	ck_assert_uint_eq(r.failed, 0);
	ck_assert_uint_eq(f.n, 0);
	scan_free(&r);
}
END_TEST

START_TEST(test_exclude)
{
	static const char *const all[] = { "deep/out/x.jpg", "in.jpg", "out/sub/u.png",
		"out/t.jpg" };
	static const char *const kept[] = { "deep/out/x.jpg", "in.jpg" };
	struct scan_opts so;
	struct scan_result r;
	struct tu_fails f = { 0 };
	struct stat st;

	mkd("out");
	mkd("out/sub");
	mkd("deep");
	mkd("deep/out");
	put_jpeg("in.jpg", 10);
	put_jpeg("out/t.jpg", 10);
	put_png("out/sub/u.png", 10);
	put_text("out/bad.jpg", "would be reported");
	put_text("out/notes.txt", "would be skipped");
	put_jpeg("deep/out/x.jpg", 10);         /* same name, other directory */
	ck_assert_int_eq(stat(at("out"), &st), 0);

	/* the identity is set but exclude is not: everything is seen */
	memset(&so, 0, sizeof(so));
	so.exclude_dev = st.st_dev;
	so.exclude_ino = st.st_ino;
	scan(&r, &so, &f);
	expect_rels(&r, all, 4);
	ck_assert_uint_eq(r.failed, 1);
	ck_assert_uint_eq(r.skipped, 1);
	scan_free(&r);
	tu_fails_free(&f);

	so.exclude = 1;
	scan(&r, &so, &f);
	expect_rels(&r, kept, 2);
	ck_assert_uint_eq(r.failed, 0);
	ck_assert_uint_eq(r.skipped, 0);
	ck_assert_uint_eq(f.n, 0);
	scan_free(&r);
}
END_TEST

START_TEST(test_odd_names)
{
	/* bytewise, unsigned: the UTF-8 and 0xff names come last */
	static const char *const want[] = {
		"-dash.jpg",
		"back\\slash.jpg",
		"new\nline.jpg",
		"tab\there.png",
		"with space.jpg",
		"\xc3\xa9t\xc3\xa9/\xc3\x9f.png",
		"\xff.jpg",
		"\xff\xfe dir/\x80\x81.png",
	};

	struct scan_result r;
	struct tu_fails f = { 0 };

	mkd("\xc3\xa9t\xc3\xa9");
	mkd("\xff\xfe dir");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (strstr(want[i], ".png"))
			put_png(want[i], 10 + i);
		else
			put_jpeg(want[i], 10 + i);
	}
	put_text("\xfe" "bad.jpg", "non-UTF-8 and not an image");
	scan(&r, NULL, &f);
	expect_rels(&r, want, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < r.n; i++)
		ck_assert_uint_eq(r.v[i].size, 10 + i);
	ck_assert_uint_eq(f.n, 1);
	ck_assert_str_eq(f.rel[0], "\xfe" "bad.jpg");
	tu_fails_free(&f);
	scan_free(&r);
}
END_TEST

START_TEST(test_size_mtime)
{
	const struct timespec t1[2] = { { 1000000000, 0 }, { 1234567890, 123456789 } };
	const struct timespec t2[2] = { { 1100000000, 5 }, { 1500000000, 987654321 } };
	const struct scan_entry *e;
	struct scan_result r;
	struct tu_fails f = { 0 };
	struct stat st;

	mkd("d");
	put_jpeg("small.jpg", 3);
	put_png("d/big.png", 100003);
	ck_assert_int_eq(utimensat(AT_FDCWD, at("small.jpg"), t1, 0), 0);
	ck_assert_int_eq(utimensat(AT_FDCWD, at("d/big.png"), t2, 0), 0);
	scan(&r, NULL, &f);
	ck_assert_uint_eq(r.n, 2);

	e = entry_of(&r, "small.jpg");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(stat(at("small.jpg"), &st), 0);
	ck_assert_uint_eq(e->size, 3);
	ck_assert_uint_eq(e->size, (uint64_t)st.st_size);
	ck_assert_int_eq(e->mtime.tv_sec, st.st_mtim.tv_sec);
	ck_assert_int_eq(e->mtime.tv_nsec, st.st_mtim.tv_nsec);
	ck_assert_int_eq(e->mtime.tv_sec, 1234567890);

	e = entry_of(&r, "d/big.png");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(stat(at("d/big.png"), &st), 0);
	ck_assert_uint_eq(e->size, 100003);
	ck_assert_uint_eq(e->size, (uint64_t)st.st_size);
	ck_assert_int_eq(e->mtime.tv_sec, st.st_mtim.tv_sec);
	ck_assert_int_eq(e->mtime.tv_nsec, st.st_mtim.tv_nsec);
	ck_assert_int_eq(e->mtime.tv_sec, 1500000000);
	scan_free(&r);
}
END_TEST

START_TEST(test_missing_root)
{
	struct scan_opts so;
	struct scan_result r;
	char err[256] = "";
	char path[PATH_MAX];

	memset(&so, 0, sizeof(so));
	strcpy(path, at("does-not-exist"));
	ck_assert_int_eq(scan_tree(path, &so, &r, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, path) != NULL, "err does not name %s: \"%s\"", path, err);
	ck_assert_uint_eq(r.n, 0);
	scan_free(&r);

	/* a regular file is no root either */
	put_jpeg("file.jpg", 10);
	err[0] = '\0';
	ck_assert_int_eq(scan_tree(at("file.jpg"), &so, &r, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "file.jpg") != NULL, "err does not name the root: \"%s\"",
	    err);
	scan_free(&r);
}
END_TEST

/* The unreadable-directory check, in a form that can cross a pipe. */
struct locked_outcome {
	int rc, skip;
	size_t n, nfails;
	unsigned long failed;
	char rel0[64], fail0[64], reason0[128], why[128];
};

static void
scan_locked(struct locked_outcome *o)
{
	struct scan_opts so;
	struct scan_result r;
	struct tu_fails f = { 0 };
	char err[256] = "";

	memset(&so, 0, sizeof(so));
	so.fail = tu_fail_record;
	so.ctx = &f;
	o->rc = scan_tree(root, &so, &r, err, sizeof(err));
	o->n = r.n;
	o->failed = r.failed;
	o->nfails = f.n;
	if (r.n > 0)
		snprintf(o->rel0, sizeof(o->rel0), "%s", r.v[0].rel);
	if (f.n > 0) {
		snprintf(o->fail0, sizeof(o->fail0), "%s", f.rel[0]);
		snprintf(o->reason0, sizeof(o->reason0), "%s", f.reason[0]);
	}
	tu_fails_free(&f);
	scan_free(&r);
}

static int
chown_tree(const char *p, uid_t u, gid_t g)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int rc = lchown(p, u, g);

	if (rc == 0 && lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && (d = opendir(p)) != NULL) {
		while (rc == 0 && (de = readdir(d)) != NULL) {
			char sub[PATH_MAX];

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", p, de->d_name) >= sizeof(sub))
				rc = -1;
			else
				rc = chown_tree(sub, u, g);
		}
		closedir(d);
	}
	return rc;
}

/* As root, permissions are not enforced: scan as an unprivileged user in a child. */
static void
scan_locked_unprivileged(struct locked_outcome *o)
{
	const uid_t nobody = 65534;
	int pfd[2], status;
	pid_t pid;

	/* base is root's, mode 0700: let the child through to root */
	ck_assert_int_eq(chmod(base, 0711), 0);
	if (chown_tree(root, nobody, nobody) != 0) {
		o->skip = 1;
		snprintf(o->why, sizeof(o->why), "chown to %u: %s", (unsigned)nobody,
		    strerror(errno));
		return;
	}
	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct locked_outcome c;
		int fd;

		memset(&c, 0, sizeof(c));
		close(pfd[0]);
		if (setgroups(0, NULL) != 0 || setgid(nobody) != 0 || setuid(nobody) != 0) {
			c.skip = 1;
			snprintf(c.why, sizeof(c.why), "cannot drop root: %s", strerror(errno));
		} else if ((fd = open(at("locked"), O_RDONLY | O_DIRECTORY)) >= 0) {
			close(fd);
			c.skip = 1;
			snprintf(c.why, sizeof(c.why), "mode 000 is not enforced even for uid %u",
			    (unsigned)nobody);
		} else {
			scan_locked(&c);
		}
		if (write(pfd[1], &c, sizeof(c)) != (ssize_t)sizeof(c))
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], o, sizeof(*o)), (ssize_t)sizeof(*o));
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

START_TEST(test_unreadable_dir)
{
	struct locked_outcome o;

	memset(&o, 0, sizeof(o));
	mkd("locked");
	mkd("open");
	put_jpeg("locked/a.jpg", 10);
	put_jpeg("open/b.jpg", 10);
	ck_assert_int_eq(chmod(at("locked"), 0), 0);
	if (geteuid() == 0)
		scan_locked_unprivileged(&o);
	else
		scan_locked(&o);
	if (o.skip) {
		fprintf(stderr, "%s:%d: test_unreadable_dir: SKIPPED: running as root and %s\n",
		    __FILE__, __LINE__, o.why);
		return;
	}
	ck_assert_int_eq(o.rc, 0);
	ck_assert_uint_eq(o.n, 1);
	ck_assert_str_eq(o.rel0, "open/b.jpg");
	ck_assert_uint_eq(o.failed, 1);
	ck_assert_uint_eq(o.nfails, 1);
	ck_assert_str_eq(o.fail0, "locked");
	ck_assert_msg(o.reason0[0] != '\0', "empty reason");
}
END_TEST

Suite *
scan_suite(void)
{
	Suite *s = suite_create("scan");
	TCase *tc;

	tc = tcase_create("sniff");
	tcase_add_test(tc, test_sniff);
	suite_add_tcase(s, tc);

	tc = tcase_create("tree");
	tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_nested_sorted);
	tcase_add_test(tc, test_empty_root);
	tcase_add_test(tc, test_dot_entries);
	tcase_add_test(tc, test_non_images);
	tcase_add_test(tc, test_max_size);
	tcase_add_test(tc, test_symlinks);
	tcase_add_test(tc, test_exclude);
	tcase_add_test(tc, test_odd_names);
	tcase_add_test(tc, test_size_mtime);
	tcase_add_test(tc, test_missing_root);
	tcase_add_test(tc, test_unreadable_dir);
	suite_add_tcase(s, tc);

	/* a blocked open of a FIFO must fail the test, not hang the run */
	tc = tcase_create("special");
	tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 5);
	tcase_add_test(tc, test_special_files);
	suite_add_tcase(s, tc);
	return s;
}
