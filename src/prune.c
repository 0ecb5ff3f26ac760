/*
 * prune: walk OUTPUT_DIR/SIZE/ for each size given and delete the thumbnails whose recorded
 * source no longer exists as a regular file under INPUT_DIR (contract in thumbr/prune.h).
 */
#define _GNU_SOURCE
#include "thumbr/prune.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thumbr/out.h"
#include "thumbr/report.h"
#include "thumbr/state.h"
#include "thumbr/util.h"

struct pctx {
	const struct opts *o;
	int (*mine)(const struct opts *, const char *);
	unsigned long pruned, failed;
};

static int
source_gone(const struct opts *o, const char *rel)
{
	char *p;
	struct stat st;
	int gone;

	if (asprintf(&p, "%s/%s", o->input, rel) < 0)
		return 0;
	gone = lstat(p, &st) != 0 ? errno == ENOENT || errno == ENOTDIR : !S_ISREG(st.st_mode);
	free(p);
	return gone;
}

/* Prune below dir; returns how many entries are left in it. */
static unsigned long
walk(struct pctx *c, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned long left = 0;

	if (d == NULL) {
		if (errno != ENOENT) {
			report_fail(dir, strerror(errno));
			c->failed++;
		}
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		struct state_rec r;
		struct stat st;
		char *p;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
			continue;
		if (lstat(p, &st) != 0) {
			free(p);
			continue;
		}
		if (S_ISREG(st.st_mode) && out_is_tmp_name(de->d_name) && c->o->shard_n == 0) {
			/* left by a killed run: this run holds OUTPUT_DIR alone */
			if (c->o->dry_run || unlink(p) != 0)
				left++;
		} else if (S_ISDIR(st.st_mode)) {
			if (walk(c, p) == 0 && !c->o->dry_run && rmdir(p) == 0)
				;       /* emptied by us: gone */
			else
				left++;
		} else if (S_ISREG(st.st_mode) && state_read(p, &r) == 0 &&
		    (c->mine == NULL || c->mine(c->o, r.rel)) && source_gone(c->o, r.rel)) {
			if (c->o->dry_run || unlink(p) == 0) {
				c->pruned++;
				report_pruned(p, c->o->dry_run || c->o->verbose);
				left += c->o->dry_run;
			} else {
				report_fail(p, strerror(errno));
				c->failed++;
				left++;
			}
		} else {
			left++;
		}
		free(p);
	}
	closedir(d);
	return left;
}

unsigned long
prune_run(const struct opts *o, int (*mine)(const struct opts *, const char *rel),
    unsigned long *failed)
{
	struct pctx c = { o, mine, 0, 0 };

	for (unsigned i = 0; i < o->nsizes; i++) {
		char *dir;

		if (asprintf(&dir, "%s/%s", o->output, o->sizes[i].name) < 0)
			continue;
		walk(&c, dir);
		free(dir);
	}
	*failed += c.failed;
	return c.pruned;
}
