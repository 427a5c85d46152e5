/* job_plan: the plan of a job as a user reads it (--plan): levels and grids, blocks
 * of global levels, per-rank peak memory, the prepared weights, rank 0's assembly,
 * and the time from one pass measured on this machine. */
#include <stdio.h>
#include <stdlib.h>

#include "tessera/conv.h"
#include "tessera/par.h"

#include "job_internal.h"

static void
fmt_bytes(double b, char *buf, size_t size)
{
	if (b >= 1024.0 * 1048576.0)
		snprintf(buf, size, "%.2f GiB", b / (1024.0 * 1048576.0));
	else
		snprintf(buf, size, "%.0f MiB", b / 1048576.0);
}

/* Bytes of reading a tw x th rectangle of level k's content (from the pyramid level
 * it picks) and its start (level k - 1's picture upsampled): the larger. */
static double
read_bytes(const ts_job *j, int k, int tw, int th)
{
	const ts_level *lv = &j->plan->level[k], *l0 = &j->plan->level[0];
	int pw, ph;
	double b;

	ts_pyramid_plan_pick(j->fit.w, j->fit.h, l0->w, l0->h, lv->w, lv->h, &pw, &ph);
	b = ts_resample_bytes(pw, ph, lv->w, lv->h, tw, th);
	if (k > 0) {
		const ts_level *lb = &j->plan->level[k - 1];
		double s = ts_resample_bytes(lb->w, lb->h, lv->w, lv->h, tw, th);

		b = s > b ? s : b;
	}
	return b;
}

/* Per-rank peak while rendering a tile of the level: the held objective and
 * optimizer, the tile's buffers, and the content read of the next tile.  With
 * --margin a tile at a border is optimized with its margin: a corner tile's size
 * (both margins when one tile spans the level, and up to 15 px to a multiple of 16),
 * and its two extended copies. */
static double
tile_bytes(const ts_job *j, int k, int iterations)
{
	const ts_level *lv = &j->plan->level[k];
	ts_optim_params oo = ts_job_touched_optim(j, iterations);
	int m = ts_render_level_margin(j->c, lv->w, lv->h);
	int ew = lv->tw + (m ? (lv->ncols == 1 ? 2 * m : m) + 15 : 0); /* 15: to 16s */
	int eh = lv->th + (m ? (lv->nrows == 1 ? 2 * m : m) + 15 : 0);
	size_t n = (size_t)3 * ew * eh;
	double b = (double)ts_objective_bytes(j->net, eh, ew, &j->op);

	b += (double)ts_optim_bytes(&oo, n);
	b += 4.0 * n * 4; /* content, start, gradient, tile file */
	if (m)
		b += 4.0 * n * 2; /* the tile's content and start with their margins */
	return b + read_bytes(j, k, lv->tw, lv->th);
}

int
ts_job_print_plan(ts_job *j, FILE *f, int nranks)
{
	const ts_plan *p = j->plan;
	double weights = 0, peak = 0, assembly = 0, fixed, pass_s, total_s = 0, prepared;
	double disk = 0, setup, pyr;
	int pyr_levels;
	int side = p->tile < 256 ? p->tile : 256;
	ts_objective *obj = NULL;
	float *x = NULL, *g = NULL;
	char b1[32], b2[32], b3[32], b4[32], fit[256];

	for (int i = 0; i < j->net->nconv; i++)
		weights += 4.0 * (j->net->out_ch[i] * (double)j->net->in_ch[i] * 9 + j->net->out_ch[i]);
	if (j->c->padding != TS_PAD_ZERO) /* --padding: each rank's border taps, as many */
		for (int i = 0; i < j->net->nconv; i++)
			weights += 4.0 * (double)ts_conv_border_floats(j->net->in_ch[i],
			                                               j->net->out_ch[i]);
	fixed = weights;
	fprintf(f, "tessera plan: %s -> %dx%d (%s)\n", j->c->content, p->w, p->h,
	        j->c->out ? j->c->out : "no output");
	{
		int found, same;

		ts_job_dir_plan(j, &found, &same);
		fprintf(f, "job directory %s (%s), plan hash %016llx, %d rank%s\n", j->dir,
		        !found ? "new" : j->c->fresh ? "exists: --fresh discards it"
		        : same ? "exists: a run resumes it"
		        : "made by another plan: a run refuses it without --fresh",
		        (unsigned long long)j->hash, nranks, nranks == 1 ? "" : "s");
	}
	ts_plan_print(p, f);
	ts_fit_describe(&j->fit, j->decoded_w, j->decoded_h, j->c->fit, fit, sizeof fit);
	fprintf(f, "content %dx%d", j->content_w, j->content_h);
	if (j->content_denom > 1)
		fprintf(f, ", decoded at 1/%d (%dx%d: libjpeg's scaled DCT, still above the "
		        "output)", j->content_denom, j->decoded_w, j->decoded_h);
	fprintf(f, "%s%s\n", fit[0] ? "; --fit " : "", fit);
	pyr = ts_pyramid_disk_bytes(j->fit.w, j->fit.h, j->content_bits == 16 ? 16 : 8,
	                            p->level[0].w, p->level[0].h, &pyr_levels);
	setup = ts_pyramid_build_bytes(j->decoded_w, &j->fit);
	if (j->c->nlevel_iterations > 0 && j->c->nlevel_iterations < p->nlevels)
		fprintf(f, "--level-iterations gives %d value%s for %d levels: the last repeats "
		        "for levels %d..%d\n", j->c->nlevel_iterations,
		        j->c->nlevel_iterations == 1 ? "" : "s", p->nlevels, j->c->nlevel_iterations,
		        p->nlevels - 1);
	/* the prepared weights as a run has them: apart from the ranks' own memory */
	if (!j->net->nprep && ts_job_prepare_weights(j, NULL, 1))
		return -1;
	prepared = 4.0 * ts_job_prepared_floats(j);
	/* measure one pass here, scale by pixels */
	if (!ts_job_targets(j, 0, 1))
		return -1;
	x = calloc((size_t)3 * side * side, sizeof *x);
	g = malloc((size_t)3 * side * side * sizeof *g);
	if (!x || !g || !(obj = ts_objective_create(j->net, side, side, &j->op, j->targets, x))) {
		free(x);
		free(g);
		return -1;
	}
	{
		double t0 = ts_now();

		ts_objective_eval(obj, x, g, NULL);
		ts_objective_eval(obj, x, g, NULL);
		pass_s = (ts_now() - t0) / 2;
	}
	ts_objective_destroy(obj);
	free(x);
	free(g);
	for (int k = 0; k < p->nlevels; k++) {
		const ts_level *lv = &p->level[k];
		int nt = lv->ncols * lv->nrows, it = ts_job_iterations(j, k);
		double tb = tile_bytes(j, k, it);
		double s = nt * (it + 1.0) * pass_s * ((double)lv->tw * lv->th) / ((double)side * side);
		/* assembly on rank 0: the tile rows meeting one band, and the band */
		double ab = 3.0 * 4 * lv->tw * lv->th * lv->ncols * (1 + (OUT_TILE + lv->th - 1) / lv->th) +
		            3.0 * 4 * lv->w * OUT_TILE * 2;
		/* the disk: tile (or block) files of 16-bit samples, kept for a resume; the
		 * assembled level (16-bit, at most uncompressed) */
		double db = 6.0 * lv->w * lv->h + 6.0 * lv->tw * lv->th * nt;

		if (k == p->nlevels - 1) {
			/* the output, its reduced levels (1/3 more) and its colours' band */
			ab += 4.0 / 3 * 3.0 * 4 * lv->w * OUT_TILE / 2;
			if (j->c->original_colors)
				ab += 3.0 * 4 * lv->w * OUT_TILE + read_bytes(j, k, lv->w, OUT_TILE);
			db = 6.0 * lv->tw * lv->th * nt;
		}

		if (ts_job_level_global(j, k)) {
			ts_job_global_cost g;

			if (ts_job_global_plan(j, k, nranks, &g))
				return -1;
			tb = g.rank_bytes + read_bytes(j, k, g.side + 2 * g.halo, g.side + 2 * g.halo);
			/* blocks, and two generations of the iteration state */
			db = 6.0 * lv->w * lv->h * 2 + 2.0 * (4.0 * 3 * lv->w * lv->h +
			     (double)ts_optim_bytes(&j->oo, (size_t)3 * lv->w * lv->h));
			s = (it + 1.0) * pass_s * g.pixels / ((double)side * side);
			fmt_bytes(tb + fixed, b1, sizeof b1);
			fprintf(f, "  level %d: %d iterations, one picture in %d blocks of %d px (halo "
			        "%d px: %.2f pixels evaluated a pixel), rank peak %s, %.1f CPU-min\n",
			        k, it, g.nblocks, g.side, g.halo, g.pixels / ((double)lv->w * lv->h), b1,
			        s / 60);
		} else {
			fmt_bytes(tb + fixed, b1, sizeof b1);
			fprintf(f, "  level %d: %d iterations per tile, %d tile%s, rank peak %s, %.1f "
			        "CPU-min\n", k, it, nt, nt == 1 ? "" : "s", b1, s / 60);
		}
		disk += db;
		if (tb > peak)
			peak = tb;
		if (ab > assembly)
			assembly = ab;
		total_s += s;
	}
	fmt_bytes(peak + fixed, b1, sizeof b1);
	fmt_bytes(assembly + fixed, b2, sizeof b2);
	fmt_bytes(weights, b3, sizeof b3);
	fmt_bytes(prepared, b4, sizeof b4);
	fprintf(f, "memory: per-rank peak %s (network %s), plus the prepared convolutions %s "
	        "once per node (its ranks share them); rank 0 assembly peak %s\n", b1, b3, b4, b2);
	fmt_bytes(setup + fixed, b1, sizeof b1);
	fmt_bytes(pyr, b2, sizeof b2);
	fmt_bytes(disk + pyr, b3, sizeof b3);
	fprintf(f, "content pyramid: %d level%s, made once by rank 0 at the start (peak %s; a "
	        "BMP, interlaced PNG or rotated JPEG is decoded whole: 12 bytes a pixel); "
	        "disk: the job directory at most %s (the pyramid %s), before compression\n",
	        pyr_levels, pyr_levels == 1 ? "" : "s", b1, b3, b2);
	fprintf(f, "time: one %dx%d pass takes %.3f s here; about %.1f min of compute in all, "
	        "%.1f min (%.2f h) on %d rank%s at this machine's speed (plus assembly)\n", side,
	        side, pass_s, total_s / 60, total_s / 60 / nranks, total_s / 3600 / nranks, nranks,
	        nranks == 1 ? "" : "s");
	return 0;
}

double
ts_job_level_work(ts_job *j, int level, int nranks)
{
	const ts_level *lv = &j->plan->level[level];
	double it = ts_job_iterations(j, level) + 1.0;

	if (ts_job_level_global(j, level)) {
		ts_job_global_cost g;

		if (ts_job_global_plan(j, level, nranks, &g) == 0)
			return it * g.pixels;
	}
	return it * lv->ncols * lv->nrows * (double)lv->tw * lv->th;
}
