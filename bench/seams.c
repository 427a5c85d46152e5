/* seams: how visible the tile borders of a tiled render are.
 *
 *   seams IMAGE TILE OVERLAP [FACTOR]
 *
 * Rebuilds the tile grid tessera used for an IMAGE of that size (the last pyramid
 * level) and compares the mean absolute difference between neighbouring pixels
 * across every tile edge (the columns x-1|x at each tile's left and right edge, the
 * same for rows) and across the middle of every overlap (where the blend weights
 * cross) with the same measure over every other line of the picture (more than 12
 * pixels from those).  A ratio near 1 means the borders do not stand out; run it on
 * a single-pass render of the same picture for the baseline of the same positions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

int
main(int argc, char **argv)
{
	ts_image *im;
	ts_plan *plan;
	const ts_level *lv;
	double edge = 0, away = 0, mid = 0;
	int ne = 0, na = 0, nm = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: seams IMAGE TILE OVERLAP [FACTOR]\n");
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
	ts_plan_destroy(plan);
	ts_image_destroy(im);
	return 0;
}
