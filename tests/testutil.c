/*
 * Test helpers (see testutil.h).  Everything here aborts the test through Check's
 * ck_abort_msg when the environment itself is broken, so a failure is never silent.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>

void
tu_mkdtemp_in(char *buf, size_t n, const char *parent, const char *pattern)
{
	const char *t = getenv("TMPDIR");
	int len;

	if (parent == NULL)
		parent = t != NULL && *t != '\0' ? t : "/tmp";
	len = snprintf(buf, n, "%s/%s", parent, pattern);
	ck_assert_msg(len > 0 && (size_t)len < n, "path too long: %s/%s", parent, pattern);
	ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
}

char *
tu_tmpdir(void)
{
	char buf[PATH_MAX];

	tu_mkdtemp_in(buf, sizeof(buf), NULL, "thumbr-test.XXXXXX");
	return strdup(buf);
}

/* Remove name below dfd, whatever it is; directories are made readable first, so a test
 * that took the permissions away (chmod 000) still cleans up. */
static void
rm_at(int dfd, const char *name)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlinkat(dfd, name, 0);
		return;
	}
	(void)fchmodat(dfd, name, 0700, 0);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && (d = fdopendir(fd)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				rm_at(dirfd(d), de->d_name);
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	unlinkat(dfd, name, AT_REMOVEDIR);
}

void
tu_rmrf(const char *path)
{
	rm_at(AT_FDCWD, path);
}

char *
tu_join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		ck_abort_msg("asprintf");
	return p;
}

char *
tu_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		size_t r;

		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static void
mkparents(const char *path)
{
	char *p = strdup(path);

	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	free(p);
}

int
tu_write(const char *path, const void *data, size_t n)
{
	FILE *f;

	mkparents(path);
	if ((f = fopen(path, "wb")) == NULL)
		return -1;
	if (n > 0 && fwrite(data, 1, n, f) != n) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

int
tu_copy(const char *from, const char *to)
{
	size_t n;
	char *p = tu_slurp(from, &n);
	int rc;

	if (p == NULL)
		return -1;
	rc = tu_write(to, p, n);
	free(p);
	return rc;
}

static int
status_of(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
tu_run(char *const argv[], char **out, char **err)
{
	char *dir = tu_tmpdir();
	char *o = tu_join(dir, "out"), *e = tu_join(dir, "err");
	pid_t pid;
	int st;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fo, 1);
		dup2(fe, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (out)
		*out = tu_slurp(o, NULL);
	if (err)
		*err = tu_slurp(e, NULL);
	tu_rmrf(dir);
	free(o);
	free(e);
	free(dir);
	return status_of(st);
}

pid_t
tu_spawn(char *const argv[])
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int
tu_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status_of(st);
}

/* The first n bytes of a file (fewer if it is shorter); their count, 0 on error. */
static size_t
head_of(const char *path, unsigned char *b, size_t n)
{
	FILE *f = fopen(path, "rb");
	size_t got;

	if (f == NULL)
		return 0;
	got = fread(b, 1, n, f);
	fclose(f);
	return got;
}

int
tu_is_image(const char *path)
{
	unsigned char b[8];
	size_t n = head_of(path, b, sizeof(b));

	return (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) ||
	    (n == 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0);
}

int
tu_image_size(const char *path, unsigned *w, unsigned *h)
{
	size_t n, i;
	unsigned char *p = (unsigned char *)tu_slurp(path, &n);
	int rc = -1;

	if (p == NULL)
		return -1;
	if (n >= 24 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(p + 12, "IHDR", 4) == 0) {
		*w = (unsigned)p[16] << 24 | (unsigned)p[17] << 16 | (unsigned)p[18] << 8 | p[19];
		*h = (unsigned)p[20] << 24 | (unsigned)p[21] << 16 | (unsigned)p[22] << 8 | p[23];
		rc = 0;
	} else if (n >= 4 && p[0] == 0xff && p[1] == 0xd8) {
		/* walk the markers to the first SOFn */
		for (i = 2; i + 9 < n;) {
			unsigned m, len;

			if (p[i] != 0xff) {
				break;
			}
			m = p[i + 1];
			if (m == 0xff) {
				i++;
				continue;
			}
			len = (unsigned)p[i + 2] << 8 | p[i + 3];
			if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
				*h = (unsigned)p[i + 5] << 8 | p[i + 6];
				*w = (unsigned)p[i + 7] << 8 | p[i + 8];
				rc = 0;
				break;
			}
			i += 2 + len;
		}
	}
	free(p);
	return rc;
}

const char *
tu_bin(void)
{
	const char *b = getenv("THUMBR_BIN");

	if (b == NULL)
		ck_abort_msg("THUMBR_BIN is not set: run the tests with make check");
	return b;
}

const char *
tu_testdata(void)
{
	const char *t = getenv("THUMBR_TESTDATA");

	if (t == NULL)
		ck_abort_msg("THUMBR_TESTDATA is not set: run the tests with make check");
	return t;
}

int
tu_jpeg_orientation(const char *path)
{
	size_t n, i;
	unsigned char *p = (unsigned char *)tu_slurp(path, &n);
	int o = 1;

	for (i = 2; p && i + 4 < n && p[i] == 0xff;) {
		unsigned m = p[i + 1], len = (unsigned)p[i + 2] << 8 | p[i + 3];

		if (m == 0xda)
			break;
		if (m == 0xe1 && len > 16 && i + 2 + len <= n && memcmp(p + i + 4, "Exif\0\0", 6) == 0) {
			unsigned char *t = p + i + 10;
			int le = t[0] == 'I';
			unsigned ifd = le ? t[4] | t[5] << 8 : t[6] << 8 | t[7];
			unsigned cnt = le ? t[ifd] | t[ifd + 1] << 8 : t[ifd] << 8 | t[ifd + 1];

			for (unsigned k = 0; k < cnt; k++) {
				unsigned char *e = t + ifd + 2 + 12 * k;
				unsigned tag = le ? e[0] | e[1] << 8 : e[0] << 8 | e[1];

				if (tag == 0x112)
					o = le ? e[8] | e[9] << 8 : e[8] << 8 | e[9];
			}
			break;
		}
		i += 2 + len;
	}
	free(p);
	return o >= 1 && o <= 8 ? o : 1;
}

struct tu_jerr {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
};

static void
tu_jerr_exit(j_common_ptr c)
{
	longjmp(((struct tu_jerr *)c->err)->jb, 1);
}

unsigned char *
tu_testdata_slurp(const char *rel, size_t *len)
{
	char *path = tu_join(tu_testdata(), rel);
	unsigned char *p = (unsigned char *)tu_slurp(path, len);

	ck_assert_msg(p != NULL, "cannot read %s", path);
	free(path);
	return p;
}

unsigned char *
tu_jpeg_decode(const unsigned char *src, size_t n, unsigned denom, int grey, unsigned *w,
    unsigned *h)
{
	struct jpeg_decompress_struct c;
	struct tu_jerr je;
	unsigned char *volatile px = NULL;
	int comps = grey ? 1 : 3;

	c.err = jpeg_std_error(&je.pub);
	je.pub.error_exit = tu_jerr_exit;
	if (setjmp(je.jb)) {
		jpeg_destroy_decompress(&c);
		free(px);
		return NULL;
	}
	jpeg_create_decompress(&c);
	jpeg_mem_src(&c, src, n);
	jpeg_read_header(&c, TRUE);
	c.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
	c.scale_num = 1;
	c.scale_denom = denom;
	jpeg_start_decompress(&c);
	*w = c.output_width;
	*h = c.output_height;
	px = malloc((size_t)*w * *h * (size_t)comps);
	while (c.output_scanline < c.output_height) {
		JSAMPROW r = px + (size_t)c.output_scanline * *w * (size_t)comps;

		jpeg_read_scanlines(&c, &r, 1);
	}
	jpeg_finish_decompress(&c);
	jpeg_destroy_decompress(&c);
	return px;
}

unsigned char *
tu_jpeg_rgb(const char *path, unsigned *w, unsigned *h)
{
	size_t n;
	unsigned char *src = (unsigned char *)tu_slurp(path, &n), *px;

	if (src == NULL)
		return NULL;
	px = tu_jpeg_decode(src, n, 1, 0, w, h);
	free(src);
	return px;
}

size_t
tu_jpeg_scan(const unsigned char *p, size_t n, int dc, int nth, size_t *end)
{
	for (size_t i = 2; i + 4 < n; i++) {
		size_t ss = i + 5 + 2 * (size_t)p[i + 4], j;

		if (p[i] != 0xff || p[i + 1] != 0xda || ss >= n || (p[ss] == 0) != (dc != 0) ||
		    nth-- > 0)
			continue;
		j = i + 2 + ((size_t)p[i + 2] << 8 | p[i + 3]);
		while (j + 1 < n && !(p[j] == 0xff && p[j + 1] != 0 &&
		    (p[j + 1] < 0xd0 || p[j + 1] > 0xd7)))
			j++;
		if (end != NULL)
			*end = j;
		return i;
	}
	return 0;
}

unsigned char *
tu_progressive_jpeg_script(const unsigned char *rgb, unsigned w, unsigned h, int grey, int hs,
    int vs, unsigned restart, const void *script, int nscans, unsigned long *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	unsigned char *out = NULL, *row = malloc((size_t)w * 3);

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &out, len);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	if (grey)
		jpeg_set_colorspace(&c, JCS_GRAYSCALE);
	jpeg_set_quality(&c, 90, TRUE);
	c.comp_info[0].h_samp_factor = hs;
	c.comp_info[0].v_samp_factor = vs;
	c.restart_interval = restart;
	jpeg_simple_progression(&c);
	if (script != NULL) {
		c.scan_info = script;
		c.num_scans = nscans;
	}
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < h) {
		JSAMPROW r = row;

		memcpy(row, rgb + (size_t)c.next_scanline * w * 3, (size_t)w * 3);
		jpeg_write_scanlines(&c, &r, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	return out;
}

unsigned char *
tu_progressive_jpeg(const unsigned char *rgb, unsigned w, unsigned h, int grey, int hs,
    int vs, unsigned restart, unsigned long *len)
{
	return tu_progressive_jpeg_script(rgb, w, h, grey, hs, vs, restart, NULL, 0, len);
}

double
tu_psnr(const unsigned char *a, const unsigned char *b, unsigned w, unsigned h)
{
	return tu_psnr_samples(a, b, (size_t)w * h * 3);
}

double
tu_psnr_samples(const unsigned char *a, const unsigned char *b, size_t n)
{
	double se = 0;

	for (size_t i = 0; i < n; i++)
		se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	return se == 0 ? 99 : 10 * log10(255.0 * 255.0 / (se / (double)n));
}

double
tu_mae(const unsigned char *a, const unsigned char *b, size_t samples)
{
	double sum = 0;

	for (size_t i = 0; i < samples; i++)
		sum += a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
	return samples ? sum / (double)samples : 0;
}

unsigned char *
tu_png_rgba(const char *path, unsigned *w, unsigned *h)
{
	png_image im;
	unsigned char *px;

	memset(&im, 0, sizeof(im));
	im.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_file(&im, path))
		return NULL;
	im.format = PNG_FORMAT_RGBA;
	px = malloc(PNG_IMAGE_SIZE(im));
	if (!png_image_finish_read(&im, NULL, px, 0, NULL)) {
		free(px);
		return NULL;
	}
	*w = im.width;
	*h = im.height;
	return px;
}

int
tu_write_png_rgba(const char *path, const unsigned char *px, unsigned w, unsigned h)
{
	png_image im;

	memset(&im, 0, sizeof(im));
	im.version = PNG_IMAGE_VERSION;
	im.width = w;
	im.height = h;
	im.format = PNG_FORMAT_RGBA;
	return png_image_write_to_file(&im, path, 0, px, 0, NULL) ? 0 : -1;
}

int
tu_jpeg_each_marker(const unsigned char *p, size_t n, int (*f)(unsigned m,
    const unsigned char *seg, size_t len, void *arg), void *arg)
{
	size_t i;
	int r = 0;

	if (n < 4 || p[0] != 0xff || p[1] != 0xd8)
		return -1;
	for (i = 2; i + 4 <= n && p[i] == 0xff && r == 0;) {
		unsigned m = p[i + 1];
		size_t len = (size_t)p[i + 2] << 8 | p[i + 3];

		if (m == 0xda || len < 2 || i + 2 + len > n)
			break;
		r = f(m, p + i + 4, len - 2, arg);
		i += 2 + len;
	}
	return r;
}

/* tu_jpeg_each_marker over a file */
static int
jpeg_markers(const char *path, int (*f)(unsigned m, const unsigned char *seg, size_t len,
    void *arg), void *arg)
{
	size_t n;
	unsigned char *p = (unsigned char *)tu_slurp(path, &n);
	int r = p != NULL ? tu_jpeg_each_marker(p, n, f, arg) : -1;

	free(p);
	return r;
}

struct icc {
	unsigned char *p;
	size_t n;
};

static int
icc_part(unsigned m, const unsigned char *seg, size_t len, void *arg)
{
	struct icc *c = arg;

	if (m == 0xe2 && len > 14 && memcmp(seg, "ICC_PROFILE", 12) == 0) {
		c->p = realloc(c->p, c->n + len - 14);
		memcpy(c->p + c->n, seg + 14, len - 14);
		c->n += len - 14;
	}
	return 0;
}

unsigned char *
tu_jpeg_icc(const unsigned char *p, size_t n, size_t *len)
{
	struct icc c = { NULL, 0 };

	(void)tu_jpeg_each_marker(p, n, icc_part, &c);
	*len = c.n;
	return c.p;
}

void
tu_put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static int
is_marker(unsigned m, const unsigned char *seg, size_t len, void *arg)
{
	(void)seg;
	(void)len;
	return m == *(unsigned *)arg;
}

int
tu_jpeg_has_marker(const char *path, unsigned marker)
{
	return jpeg_markers(path, is_marker, &marker) == 1;
}

static int
sof_components(unsigned m, const unsigned char *seg, size_t len, void *arg)
{
	if (len >= 6 && m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
		*(int *)arg = seg[5];
		return 1;
	}
	return 0;
}

int
tu_jpeg_components(const char *path)
{
	int c = -1;

	jpeg_markers(path, sof_components, &c);
	return c;
}

int
tu_is_other_image(const char *path)
{
	unsigned char b[12];

	if (head_of(path, b, sizeof(b)) < 12)
		return 0;
	return (memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) ||
	    memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0 ||
	    memcmp(b, "GIF8", 4) == 0 || memcmp(b + 4, "ftyp", 4) == 0;
}

void
tu_fail_record(void *ctx, const char *rel, const char *reason)
{
	struct tu_fails *f = ctx;

	ck_assert_ptr_nonnull(rel);
	ck_assert_ptr_nonnull(reason);
	if (f->n < TU_FAILS) {
		f->rel[f->n] = strdup(rel);
		f->reason[f->n] = strdup(reason);
	}
	f->n++;
}

void
tu_fails_free(struct tu_fails *f)
{
	for (size_t i = 0; i < f->n && i < TU_FAILS; i++) {
		free(f->rel[i]);
		free(f->reason[i]);
	}
	memset(f, 0, sizeof(*f));
}

long
tu_fail_index(const struct tu_fails *f, const char *rel)
{
	for (size_t i = 0; i < f->n && i < TU_FAILS; i++)
		if (strcmp(f->rel[i], rel) == 0)
			return (long)i;
	return -1;
}
