/* plan: pyramid levels and tile grids (see plan.h).
 *
 * Invariants: level[nlevels - 1] is w x h; level[0] fits in one tile; on every axis of
 * every level the tiles start at 0, end at the axis length, are increasing and overlap
 * their neighbours by at least the configured overlap.  Tile positions use exact
 * integer arithmetic so every machine computes the same grid. */
#include "tessera/plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"

/* Grid along one axis of length n: count and starts (pos [count], allocated). */
static int
axis_grid(int n, int t, int o, int *count, int *len, int **pos)
{
	int k;

	if (n <= t) {
		k = 1;
		*len = n;
	} else {
		/* ceil((n - o) / (t - o)) */
		k = (int)(((long long)n - o + (t - o) - 1) / (t - o));
		*len = t;
	}
	if (!(*pos = malloc((size_t)k * sizeof **pos))) {
		ts_error("plan", "out of memory for a grid of %d tiles", k);
		return -1;
	}
	*count = k;
	if (k == 1) {
		(*pos)[0] = 0;
		return 0;
	}
	/* floor(i (n - t) / (k - 1) + 1/2) = floor((2 i (n - t) + k - 1) / (2 (k - 1))) */
	for (int i = 0; i < k; i++)
		(*pos)[i] = (int)((2LL * i * (n - t) + (k - 1)) / (2LL * (k - 1)));
	return 0;
}

static int
round_div(int n, double f)
{
	double v = floor((double)n / f + 0.5);

	return v < 1.0 ? 1 : (int)v;
}

ts_plan *
ts_plan_create(int w, int h, int tile, int overlap, double factor)
{
	ts_plan *p = NULL;
	int sizes[TS_MAX_LEVELS][2];
	int n = 0, bad = 0;

	ts_error_clear();
	if (w < 1 || h < 1)
		ts_error_add(&bad, "plan", "output size %dx%d: both sides must be at least 1", w, h);
	if (tile < 1)
		ts_error_add(&bad, "plan", "tile side %d must be at least 1", tile);
	else if (overlap < 0 || overlap >= tile)
		ts_error_add(&bad, "plan", "overlap %d must be in [0, tile side %d)", overlap, tile);
	if (!isfinite(factor) || factor <= 1.0)
		ts_error_add(&bad, "plan", "level factor %g must be greater than 1", factor);
	if (bad)
		return NULL;

	/* sizes from the output down to the first level that fits in one tile */
	sizes[0][0] = w;
	sizes[0][1] = h;
	n = 1;
	while (sizes[n - 1][0] > tile || sizes[n - 1][1] > tile) {
		int nw = round_div(sizes[n - 1][0], factor), nh = round_div(sizes[n - 1][1], factor);

		if ((sizes[n - 1][0] > tile && nw >= sizes[n - 1][0]) ||
		    (sizes[n - 1][1] > tile && nh >= sizes[n - 1][1])) {
			ts_error("plan", "level factor %g is too close to 1: level %dx%d does not shrink",
			         factor, sizes[n - 1][0], sizes[n - 1][1]);
			return NULL;
		}
		if (n == TS_MAX_LEVELS) {
			ts_error("plan", "%dx%d with tile %d and level factor %g needs more than %d "
			         "levels; use a larger level factor or tile", w, h, tile, factor,
			         TS_MAX_LEVELS);
			return NULL;
		}
		sizes[n][0] = nw;
		sizes[n][1] = nh;
		n++;
	}

	if (!(p = calloc(1, sizeof *p))) {
		ts_error("plan", "out of memory");
		return NULL;
	}
	p->w = w;
	p->h = h;
	p->tile = tile;
	p->overlap = overlap;
	p->factor = factor;
	p->nlevels = n;
	for (int k = 0; k < n; k++) {
		ts_level *lv = &p->level[k];

		lv->w = sizes[n - 1 - k][0];
		lv->h = sizes[n - 1 - k][1];
		if (axis_grid(lv->w, tile, overlap, &lv->ncols, &lv->tw, &lv->xs) ||
		    axis_grid(lv->h, tile, overlap, &lv->nrows, &lv->th, &lv->ys))
			goto fail;
	}
	/* level 0 is one tile by construction */
	TS_ASSERT(p->level[0].ncols == 1 && p->level[0].nrows == 1);
	return p;
fail:
	ts_plan_destroy(p);
	return NULL;
}

void
ts_plan_destroy(ts_plan *p)
{
	if (!p)
		return;
	for (int k = 0; k < TS_MAX_LEVELS; k++) {
		free(p->level[k].xs);
		free(p->level[k].ys);
	}
	free(p);
}

int
ts_plan_ntiles(const ts_plan *p, int level)
{
	TS_ASSERT(level >= 0 && level < p->nlevels);
	return p->level[level].ncols * p->level[level].nrows;
}

int
ts_plan_total_tiles(const ts_plan *p)
{
	int n = 0;

	for (int k = 0; k < p->nlevels; k++)
		n += ts_plan_ntiles(p, k);
	return n;
}

void
ts_plan_tile_rect(const ts_plan *p, int level, int row, int col, int *x, int *y, int *w,
                  int *h)
{
	const ts_level *lv;

	TS_ASSERT(level >= 0 && level < p->nlevels);
	lv = &p->level[level];
	TS_ASSERT(row >= 0 && row < lv->nrows && col >= 0 && col < lv->ncols);
	if (x)
		*x = lv->xs[col];
	if (y)
		*y = lv->ys[row];
	if (w)
		*w = lv->tw;
	if (h)
		*h = lv->th;
}

static int
axis_min_overlap(const int *pos, int n, int t)
{
	int m = t;

	for (int i = 1; i < n; i++)
		if (pos[i - 1] + t - pos[i] < m)
			m = pos[i - 1] + t - pos[i];
	return m;
}

void
ts_plan_min_overlap(const ts_plan *p, int level, int *ox, int *oy)
{
	const ts_level *lv;

	TS_ASSERT(level >= 0 && level < p->nlevels);
	lv = &p->level[level];
	if (ox)
		*ox = axis_min_overlap(lv->xs, lv->ncols, lv->tw);
	if (oy)
		*oy = axis_min_overlap(lv->ys, lv->nrows, lv->th);
}

uint64_t
ts_plan_hash(const char *text)
{
	uint64_t hash = 14695981039346656037ULL; /* FNV-1a 64 offset basis */

	for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
		hash ^= *s;
		hash *= 1099511628211ULL; /* FNV-1a 64 prime */
	}
	return hash;
}

int
ts_plan_text_add(char *buf, size_t size, size_t *len, const char *key, const char *fmt, ...)
{
	va_list ap;
	size_t n = *len;
	int k;

	TS_ASSERT(n < size);
	k = snprintf(buf + n, size - n, "%s = ", key);
	if (k < 0 || (size_t)k >= size - n)
		goto overflow;
	n += (size_t)k;
	va_start(ap, fmt);
	k = vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k + 1 >= size - n)
		goto overflow;
	n += (size_t)k;
	buf[n++] = '\n';
	buf[n] = '\0';
	*len = n;
	return 0;
overflow:
	buf[*len] = '\0';
	ts_error("plan", "plan text longer than %zu bytes (at key \"%s\")", size, key);
	return -1;
}

void
ts_plan_print(const ts_plan *p, FILE *f)
{
	fprintf(f, "plan: %dx%d, tile %d, overlap %d, level factor %g, %d level%s\n", p->w,
	        p->h, p->tile, p->overlap, p->factor, p->nlevels, p->nlevels == 1 ? "" : "s");
	for (int k = 0; k < p->nlevels; k++) {
		const ts_level *lv = &p->level[k];
		int ox, oy;

		ts_plan_min_overlap(p, k, &ox, &oy);
		fprintf(f, "  level %d: %6dx%-6d grid %3dx%-3d tiles %dx%d", k, lv->w, lv->h,
		        lv->ncols, lv->nrows, lv->tw, lv->th);
		if (lv->ncols > 1 || lv->nrows > 1)
			fprintf(f, ", min overlap %dx%d", lv->ncols > 1 ? ox : 0,
			        lv->nrows > 1 ? oy : 0);
		fprintf(f, ", %d tile%s\n", ts_plan_ntiles(p, k),
		        ts_plan_ntiles(p, k) == 1 ? "" : "s");
	}
	fprintf(f, "  total: %d tiles\n", ts_plan_total_tiles(p));
}
