/* seams: how visible the tile borders of a tiled render are.
 *
 *   seams IMAGE TILE OVERLAP [FACTOR [JOB]]
 *
 * Rebuilds the tile grid tessera used for an IMAGE of that size (the last pyramid
 * level) and compares the mean absolute difference between neighbouring pixels
 * across every tile edge (the columns x-1|x at each tile's left and right edge, the
 * same for rows) and across the middle of every overlap (where the blend weights
 * cross) with the same measure over every other line of the picture (more than 12
 * pixels from those).  A ratio near 1 means the borders do not stand out; run it on
 * a single-pass render of the same picture for the baseline of the same positions.
 *
 * With JOB (the render's job directory) it also reads the last level's tile files and
 * measures how much neighbouring tiles disagree where they overlap: the mean
 * |a - b| over every overlap, in units of the picture's mean step between neighbouring
 * pixels.  Blending hides a step but not a disagreement, which shows as a ghosted,
 * softened band; 0 would be tiles that agree exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tessera/blas.h"
#include "tessera/ckpt.h"
#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/plan.h"

/* Mean |I(p) - I(p-1)| across the line at position p along axis (0: columns). */
static double
line_diff(const ts_image *im, int axis, int p)
{
	size_t plane = (size_t)im->w * im->h;
	int n = axis ? im->w : im->h;
	double s = 0;

	for (int c = 0; c < 3; c++)
		for (int i = 0; i < n; i++) {
			size_t a = axis ? (size_t)p * im->w + i : (size_t)i * im->w + p;
			size_t b = axis ? a - (size_t)im->w : a - 1;
			s += fabs((double)im->px[c * plane + a] - im->px[c * plane + b]);
		}
	return s / (3.0 * n);
}

/* The plan hash the job directory names (JOB/plan.ini's "hash = %016x" line); 0 if
 * none. */
static uint64_t
job_hash(const char *job)
{
	char path[4200], line[512];
	unsigned long long h = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/plan.ini", job);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "hash = %llx", &h) == 1)
			break;
	fclose(f);
	return (uint64_t)h;
}

/* Mean |a - b| of neighbouring tiles over their overlaps at level lvl of the job; -1 if
 * a tile cannot be read. */
static double
disagreement(const char *job, const ts_plan *plan, int lvl)
{
	const ts_level *lv = &plan->level[lvl];
	ts_tile_result *t = calloc((size_t)lv->nrows * lv->ncols, sizeof *t);
	char path[4200];
	uint64_t hash;
	double sum = 0;
	size_t n = 0;
	int ok = 1;

	if (!t)
		return -1;
	hash = job_hash(job);
	for (int r = 0; r < lv->nrows && ok; r++)
		for (int c = 0; c < lv->ncols && ok; c++) {
			ts_ckpt_path(job, lvl, r, c, path, sizeof path);
			if (ts_ckpt_read(path, hash, lvl, r, c, lv->tw, lv->th,
			                 &t[r * lv->ncols + c])) {
				fprintf(stderr, "seams: %s\n", ts_errmsg());
				ok = 0;
			}
		}
	for (int r = 0; r < lv->nrows && ok; r++)
		for (int c = 0; c < lv->ncols; c++) {
			const ts_tile_result *a = &t[r * lv->ncols + c];

			for (int dir = 0; dir < 2; dir++) { /* right, below */
				int r2 = r + dir, c2 = c + !dir;
				const ts_tile_result *b;
				int x0, x1, y0, y1;

				if (r2 >= lv->nrows || c2 >= lv->ncols)
					continue;
				b = &t[r2 * lv->ncols + c2];
				x0 = b->x > a->x ? b->x : a->x;
				y0 = b->y > a->y ? b->y : a->y;
				x1 = a->x + a->w < b->x + b->w ? a->x + a->w : b->x + b->w;
				y1 = a->y + a->h < b->y + b->h ? a->y + a->h : b->y + b->h;
				for (int ch = 0; ch < 3; ch++)
					for (int y = y0; y < y1; y++)
						for (int x = x0; x < x1; x++) {
							float pa = a->px[((size_t)ch * a->h + (y - a->y)) * a->w + (x - a->x)];
							float pb = b->px[((size_t)ch * b->h + (y - b->y)) * b->w + (x - b->x)];

							sum += fabs((double)pa - pb);
							n++;
						}
			}
		}
	for (int i = 0; i < lv->nrows * lv->ncols; i++)
		ts_ckpt_result_fini(&t[i]);
	free(t);
	return ok && n ? sum / (double)n : -1;
}

int
main(int argc, char **argv)
{
	ts_image *im;
	ts_plan *plan;
	const ts_level *lv;
	double edge = 0, away = 0, mid = 0;
	int ne = 0, na = 0, nm = 0;

	ts_blas_init(argv); /* may restart the program with better BLAS kernels */
	if (argc < 4) {
		fprintf(stderr, "usage: seams IMAGE TILE OVERLAP [FACTOR [JOB]]\n");
		return 2;
	}
	if (!(im = ts_image_load(argv[1], 0)) ||
	    !(plan = ts_plan_create(im->w, im->h, atoi(argv[2]), atoi(argv[3]),
	                            argc > 4 ? atof(argv[4]) : 2.0))) {
		fprintf(stderr, "seams: %s\n", ts_errmsg());
		return 1;
	}
	lv = &plan->level[plan->nlevels - 1];
	for (int axis = 0; axis < 2; axis++) {
		int nt = axis ? lv->nrows : lv->ncols, len = axis ? lv->h : lv->w;
		int side = axis ? lv->th : lv->tw;
		const int *pos = axis ? lv->ys : lv->xs;
		char *near = calloc((size_t)len + 1, 1);

		if (!near)
			return 1;
		for (int t = 0; t < nt; t++) {
			int edges[2] = { pos[t], pos[t] + side };

			for (int e = 0; e < 2; e++) {
				int p = edges[e];

				if (p <= 12 || p >= len - 12)
					continue; /* the picture's own edge */
				edge += line_diff(im, axis, p);
				ne++;
				for (int d = -12; d <= 12; d++)
					near[p + d] = 1;
			}
			if (t + 1 < nt) { /* the middle of the overlap, where the weights cross */
				int p = (pos[t + 1] + pos[t] + side) / 2;

				mid += line_diff(im, axis, p);
				nm++;
				for (int d = -12; d <= 12; d++)
					if (p + d > 0 && p + d < len)
						near[p + d] = 1;
			}
		}
		for (int p = 1; p < len; p++)
			if (!near[p]) {
				away += line_diff(im, axis, p);
				na++;
			}
		free(near);
	}
	if (!ne || !na) {
		printf("no interior tile edges (a single tile)\n");
		return 0;
	}
	printf("tile edges %d: mean |step| at edges %.5f, at overlap middles %.5f, elsewhere "
	       "%.5f; ratios %.3f and %.3f\n",
	       ne, edge / ne, nm ? mid / nm : 0.0, away / na, (edge / ne) / (away / na),
	       nm ? (mid / nm) / (away / na) : 0.0);
	if (argc > 5) {
		double d = disagreement(argv[5], plan, plan->nlevels - 1);

		if (d < 0)
			return 1;
		printf("tiles disagree in their overlaps by %.5f on average: %.3f steps\n", d,
		       d / (away / na));
	}
	ts_plan_destroy(plan);
	ts_image_destroy(im);
	return 0;
}
