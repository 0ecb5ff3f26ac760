/*
 * plan: output names, collision detection and the order of work.  Main thread only.
 */
#include "thumbr/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thumbr/util.h"

char *
plan_out_rel(const char *rel, const char *ext)
{
	const char *base = strrchr(rel, '/');
	const char *dot;
	size_t stem;
	char *out;

	base = base ? base + 1 : rel;
	dot = strrchr(base, '.');
	stem = (dot != NULL && dot != base) ? (size_t)(dot - rel) : strlen(rel);
	out = xmalloc(stem + strlen(ext) + 1);
	memcpy(out, rel, stem);
	strcpy(out + stem, ext);
	return out;
}

struct named {
	char *out;
	size_t idx;             /* into the scan result, which is sorted by rel */
	int job;                /* out now belongs to a job */
};

static int
by_out(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->out, y->out);

	return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int
biggest_first(const void *a, const void *b)
{
	const struct plan_job *x = a, *y = b;

	if (x->size != y->size)
		return x->size < y->size ? 1 : -1;
	return strcmp(x->rel, y->rel);
}

void
plan_build(struct plan *p, const struct scan_result *s, const char *ext, plan_fail_fn *fail,
    void *ctx)
{
	struct named *nm = xcalloc(s->n ? s->n : 1, sizeof(*nm));
	size_t i, k = 0;

	memset(p, 0, sizeof(*p));
	p->jobs = xcalloc(s->n ? s->n : 1, sizeof(*p->jobs));
	for (i = 0; i < s->n; i++) {
		nm[i].out = plan_out_rel(s->v[i].rel, ext);
		nm[i].idx = i;
	}
	qsort(nm, s->n, sizeof(*nm), by_out);
	for (i = 0; i < s->n; i++) {
		const struct scan_entry *e = &s->v[nm[i].idx];

		/* nm is sorted by output name, then by rel: the first source of a name (k)
		 * keeps it and every later one is reported */
		if (i > 0 && strcmp(nm[i].out, nm[k].out) == 0) {
			const char *keeper = s->v[nm[k].idx].rel;
			size_t n = strlen(nm[i].out) + strlen(keeper) + 32;
			char *why = xmalloc(n);

			snprintf(why, n, "output name %s is taken by %s", nm[i].out, keeper);
			if (fail != NULL)
				fail(ctx, e->rel, why);
			free(why);
			p->collisions++;
			continue;
		}
		k = i;
		if (e->uptodate) {
			p->unchanged++;
			continue;
		}
		nm[i].job = 1;
		p->jobs[p->n].rel = e->rel;
		p->jobs[p->n].mtime = e->mtime;
		p->jobs[p->n].out_rel = nm[i].out;
		p->jobs[p->n].size = e->size;
		p->jobs[p->n].kind = e->kind;
		p->n++;
	}
	for (i = 0; i < s->n; i++)      /* names nobody took, kept until now for comparing */
		if (!nm[i].job)
			free(nm[i].out);
	free(nm);
	qsort(p->jobs, p->n, sizeof(*p->jobs), biggest_first);
}

void
plan_free(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->jobs[i].out_rel);
	free(p->jobs);
	memset(p, 0, sizeof(*p));
}
