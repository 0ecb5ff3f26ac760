/*
 * scan: walk the input tree with openat/fdopendir, one descriptor per directory level,
 * never following a symbolic link and never opening anything but directories and regular
 * files (O_NOFOLLOW | O_NONBLOCK, so a FIFO swapped in after the stat cannot block us).
 * Main thread only.  Rules are in thumbr/scan.h.
 */
#define _GNU_SOURCE
#include "thumbr/scan.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thumbr/util.h"


int
scan_sniff(const unsigned char *p, size_t n, unsigned allow)
{
	static const unsigned char png[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

	if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return SCAN_JPEG;
	if (n >= 8 && memcmp(p, png, 8) == 0)
		return SCAN_PNG;
	if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
		return SCAN_VIPS;
	if (n >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0))
		return SCAN_VIPS;
	if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
		return SCAN_VIPS;
	if (n >= 12 && memcmp(p + 4, "ftyp", 4) == 0 &&
	    (memcmp(p + 8, "heic", 4) == 0 || memcmp(p + 8, "heix", 4) == 0 ||
	    memcmp(p + 8, "mif1", 4) == 0 || memcmp(p + 8, "msf1", 4) == 0 ||
	    memcmp(p + 8, "avif", 4) == 0))
		return SCAN_VIPS;
	if ((allow & SCAN_ALLOW_SVG) && ((n >= 5 && memcmp(p, "<?xml", 5) == 0) ||
	    (n >= 4 && memcmp(p, "<svg", 4) == 0)))
		return SCAN_VIPS;
	if ((allow & SCAN_ALLOW_PDF) && n >= 5 && memcmp(p, "%PDF-", 5) == 0)
		return SCAN_VIPS;
	if ((allow & SCAN_ALLOW_JP2K) && ((n >= 12 && memcmp(p, "\0\0\0\x0cjP  \r\n\x87\n", 12) == 0) ||
	    (n >= 4 && memcmp(p, "\xff\x4f\xff\x51", 4) == 0)))
		return SCAN_VIPS;
	if ((allow & SCAN_ALLOW_JXL) && ((n >= 2 && memcmp(p, "\xff\x0a", 2) == 0) ||
	    (n >= 12 && memcmp(p, "\0\0\0\x0cJXL \r\n\x87\n", 12) == 0)))
		return SCAN_VIPS;
	return 0;
}

static int
named_like_image(const char *name)
{
	const char *dot = strrchr(name, '.');

	static const char *const ext[] = { ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif",
	    ".tiff", ".gif", ".heic", ".heif", ".avif" };

	for (size_t i = 0; dot != NULL && i < sizeof(ext) / sizeof(ext[0]); i++)
		if (strcasecmp(dot, ext[i]) == 0)
			return 1;
	return 0;
}

static char *
join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = xmalloc(a + b + 2);

	if (a == 0) {
		memcpy(p, name, b + 1);
	} else {
		memcpy(p, dir, a);
		p[a] = '/';
		memcpy(p + a + 1, name, b + 1);
	}
	return p;
}

static void
fail(const struct scan_opts *so, struct scan_result *res, const char *rel, const char *why)
{
	res->failed++;
	if (so->fail != NULL)
		so->fail(so->ctx, rel, why);
}

static void
add(struct scan_result *res, char *rel, const struct stat *st, int kind, int uptodate)
{
	struct scan_entry *e;

	if (res->n == res->cap) {
		res->cap = res->cap ? res->cap * 2 : 256;
		res->v = xrealloc(res->v, res->cap * sizeof(*res->v));
	}
	e = &res->v[res->n++];
	e->rel = rel;
	e->size = (uint64_t)st->st_size;
	e->mtime = st->st_mtim;
	e->kind = kind;
	e->uptodate = uptodate;
}

int
scan_size_ok(uint64_t size, uint64_t max, char *why, size_t whysz)
{
	if (max == 0 || size <= max)
		return 0;
	errf(why, whysz, "file is %llu bytes, more than --max-file-size %llu",
	    (unsigned long long)size, (unsigned long long)max);
	return -1;
}

/* Look at one regular file: an image, a non-image, or a failure. */
static void
file(int dfd, const char *name, char *rel, const struct stat *st, const struct scan_opts *so,
    struct scan_result *res)
{
	unsigned char head[SCAN_SNIFF_BYTES];
	ssize_t n;
	int fd, kind;

	if (so->want != NULL && !so->want(so->ctx, rel)) {
		free(rel);
		return;
	}
	if (so->uptodate != NULL && so->uptodate(so->ctx, rel, st)) {
		add(res, rel, st, 0, 1);
		return;
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fail(so, res, rel, strerror(errno));
		free(rel);
		return;
	}
	do
		n = pread(fd, head, sizeof(head), 0);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0) {
		fail(so, res, rel, strerror(errno));
		free(rel);
		return;
	}
	kind = scan_sniff(head, (size_t)n, so->allow);
	if (kind != 0) {
		char why[96];

		if (scan_size_ok((uint64_t)st->st_size, so->max_size, why, sizeof(why)) == 0) {
			add(res, rel, st, kind, 0);
			return;
		}
		fail(so, res, rel, why);        /* an image too big to read */
		free(rel);
		return;
	}
	if (named_like_image(name))
		fail(so, res, rel, n == 0 ? "empty file" : "not a supported image");
	else
		res->skipped++;
	free(rel);
}

static void
walk(int dfd, const char *reldir, const struct scan_opts *so, struct scan_result *res)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (d == NULL) {
		fail(so, res, reldir, strerror(errno));
		close(dfd);
		return;
	}
	for (;;) {
		struct stat st;
		char *rel;

		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				fail(so, res, reldir[0] ? reldir : ".", strerror(errno));
			break;
		}
		if (de->d_name[0] == '.')
			continue;       /* ".", "..", dot-files and dot-directories */
		rel = join(reldir, de->d_name);
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno != ENOENT)    /* vanished meanwhile: nothing to do */
				fail(so, res, rel, strerror(errno));
			free(rel);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			int cfd;

			if (so->exclude && st.st_dev == so->exclude_dev && st.st_ino == so->exclude_ino) {
				free(rel);
				continue;
			}
			cfd = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0)
				fail(so, res, rel, strerror(errno));
			else
				walk(cfd, rel, so, res);
			free(rel);
		} else if (S_ISREG(st.st_mode)) {
			file(dirfd(d), de->d_name, rel, &st, so, res);
		} else {
			res->skipped++;         /* link, FIFO, socket, device */
			free(rel);
		}
	}
	closedir(d);
}

static int
by_rel(const void *a, const void *b)
{
	return strcmp(((const struct scan_entry *)a)->rel, ((const struct scan_entry *)b)->rel);
}

int
scan_tree(const char *root, const struct scan_opts *so, struct scan_result *res,
    char *err, size_t errsz)
{
	int fd;

	memset(res, 0, sizeof(*res));
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		errf(err, errsz, "%s: %s", root, strerror(errno));
		return -1;
	}
	walk(fd, "", so, res);
	if (res->n > 1)
		qsort(res->v, res->n, sizeof(*res->v), by_rel);
	return 0;
}

/* Strip "./" and root from a listed path; NULL when it is not under root. */
static const char *
relative(const char *path, const char *root, const char *realroot)
{
	size_t n;

	while (path[0] == '.' && path[1] == '/')
		path += 2;
	while (root[0] == '.' && root[1] == '/' && root[2] != '\0')
		root += 2;
	if (path[0] == '/') {
		n = strlen(realroot);
		if (strncmp(path, realroot, n) != 0 || path[n] != '/')
			return NULL;
		return path + n + 1;
	}
	n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	if (strcmp(root, ".") != 0 && strncmp(path, root, n) == 0 && path[n] == '/')
		path += n + 1;
	return path;
}

/* One listed path: walk its directories without following links, then look at the file. */
static void
listed(int rootfd, const char *rel, const struct scan_opts *so, struct scan_result *res)
{
	char *copy = xstrdup(rel), *part, *next, *save = NULL;
	int dfd = dup(rootfd);
	struct stat st;

	for (part = strtok_r(copy, "/", &save); part != NULL && dfd >= 0; part = next) {
		next = strtok_r(NULL, "/", &save);
		if (strcmp(part, "..") == 0 || part[0] == '.') {
			/* ".." would leave the tree; dot-files and dot-directories are skipped */
			if (strcmp(part, "..") == 0)
				fail(so, res, rel, "path leaves INPUT_DIR");
			else
				res->skipped++;
			break;
		}
		if (fstatat(dfd, part, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			fail(so, res, rel, strerror(errno));
			break;
		}
		if (next == NULL) {
			if (S_ISREG(st.st_mode))
				file(dfd, part, xstrdup(rel), &st, so, res);
			else if (!S_ISDIR(st.st_mode))
				res->skipped++;         /* link, FIFO, socket, device */
			break;
		}
		if (!S_ISDIR(st.st_mode) ||
		    (so->exclude && st.st_dev == so->exclude_dev && st.st_ino == so->exclude_ino)) {
			if (!S_ISDIR(st.st_mode))
				res->skipped++;
			break;
		}
		{
			int cfd = openat(dfd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			close(dfd);
			dfd = cfd;
			if (dfd < 0)
				fail(so, res, rel, strerror(errno));
		}
	}
	if (dfd >= 0)
		close(dfd);
	free(copy);
}

int
scan_list(const char *root, FILE *list, int nul, const struct scan_opts *so,
    struct scan_result *res, char *err, size_t errsz)
{
	char *line = NULL, *realroot;
	size_t cap = 0;
	ssize_t n;
	int fd;

	memset(res, 0, sizeof(*res));
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (realroot = realpath(root, NULL)) == NULL) {
		errf(err, errsz, "%s: %s", root, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((n = getdelim(&line, &cap, nul ? '\0' : '\n', list)) > 0) {
		const char *rel;

		if (line[n - 1] == (nul ? '\0' : '\n'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if ((rel = relative(line, root, realroot)) == NULL || rel[0] == '\0') {
			fail(so, res, line, "not under INPUT_DIR");
			continue;
		}
		listed(fd, rel, so, res);
	}
	free(line);
	free(realroot);
	close(fd);
	if (res->n > 1) {
		size_t k = 0;

		qsort(res->v, res->n, sizeof(*res->v), by_rel);
		for (size_t i = 0; i < res->n; i++) {     /* a path listed twice counts once */
			if (k > 0 && strcmp(res->v[k - 1].rel, res->v[i].rel) == 0) {
				free(res->v[i].rel);
				continue;
			}
			res->v[k++] = res->v[i];
		}
		res->n = k;
	}
	return 0;
}

void
scan_free(struct scan_result *res)
{
	for (size_t i = 0; i < res->n; i++)
		free(res->v[i].rel);
	free(res->v);
	memset(res, 0, sizeof(*res));
}
