/* job_global: a tiled level optimized as one picture over blocks (--gram global).
 *
 * Every process runs the same optimizer on its blocks' pixels (coupled.h): one
 * evaluation of the level objective per step, its sums taken over all blocks, so the
 * processes move as one.  At the end each process writes its blocks' checkpoints
 * (JOB/L<k>/<row>_<col>.tile, the owned rectangle), which the assembly copies into
 * the level image: the blocks do not overlap, nothing is blended.
 *
 * A stop (signal) on any process stops all of them after the same iteration
 * (combined by comm->max_f64); the level then writes nothing and a resume redoes it.
 *
 * Determinism: the start image and the content of a block are read region-exactly
 * from the level below and the content (as tiles are), and the coupled objective's
 * sums do not depend on the process count, so neither does anything written here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/loss.h"
#include "tessera/par.h"
#include "tessera/resample.h"

#include "job_internal.h"

int
ts_job_level_global(const ts_job *j, int level)
{
	const ts_level *lv = &j->plan->level[level];

	return j->c->gram_global && lv->ncols * lv->nrows > 1;
}

ts_blocks *
ts_job_blocks(const ts_job *j, int level)
{
	const ts_level *lv = &j->plan->level[level];
	int grid, halo = ts_coupled_halo(&j->op, &grid);
	int side = j->c->tile / grid * grid;

	return ts_blocks_create(lv->w, lv->h, side < grid ? grid : side, halo, grid);
}

int
ts_job_level_done(ts_job *j, int level)
{
	ts_blocks *bl = ts_job_blocks(j, level);
	int done = 1;

	if (!bl)
		return -1;
	for (int b = 0; b < bl->n && done; b++) {
		ts_tile_result r;
		char path[4400];
		int st;

		ts_ckpt_path(j->dir, level, b / bl->ncols, b % bl->ncols, path, sizeof path);
		st = ts_ckpt_read(path, j->hash, level, b / bl->ncols, b % bl->ncols, bl->b[b].w,
		                  bl->b[b].h, &r);
		if (st == 0) {
			ts_ckpt_result_fini(&r);
			continue;
		}
		if (st < 0) {
			fprintf(stderr, "tessera: %s; the level will be redone\n", ts_errmsg());
			unlink(path);
		}
		done = 0;
	}
	ts_blocks_destroy(bl);
	return done;
}

/* The content resampled to the level, by rectangles of the level. */
typedef struct level_reader {
	ts_job *j;
	const ts_level *lv;
} level_reader;

static int
level_content(void *user, int x, int y, int w, int h, float *out)
{
	level_reader *r = user;

	return ts_resample_region(ts_job_content_read, r->j, r->j->content_w, r->j->content_h,
	                          r->lv->w, r->lv->h, x, y, w, h, out);
}

struct eval_ctx {
	ts_coupled *c;
	ts_loss_parts last;
};

static double
eval_fn(void *ctx, const float *x, float *grad)
{
	struct eval_ctx *e = ctx;

	return ts_coupled_eval(e->c, x, grad, &e->last);
}

/* Whether any process was asked to stop (collective). */
static int
any_stop(const ts_comm *comm, volatile int *stop)
{
	double v = stop && *stop ? 1.0 : 0.0;

	if (comm && comm->nranks > 1)
		comm->max_f64(comm->user, &v, 1);
	return v > 0;
}

int
ts_job_render_global(ts_job *j, int level, const ts_comm *comm, volatile int *stop,
                     int progress, ts_tile_result *res)
{
	const ts_level *lv = &j->plan->level[level];
	int iters = ts_job_iterations(j, level), ret = -1, b0, b1, it = 0;
	level_reader lr = { j, lv };
	ts_blocks *bl = NULL;
	ts_coupled *cp = NULL;
	ts_optim *opt = NULL;
	ts_tiff_reader *below = NULL;
	size_t *seg = NULL;
	float *x = NULL;
	struct eval_ctx e;
	ts_optim_reduce red;
	char path[4400];
	double t0 = ts_now(), c0 = ts_conv_seconds(), l0 = ts_loss_seconds();
	double o0 = ts_optim_seconds(), n0 = ts_vgg_layers_seconds(), f = 0, sent = 0;
	int rank = comm && comm->nranks > 1 ? comm->rank : 0;

	memset(&e, 0, sizeof e);
	TS_ASSERT(j->targets && j->targets_level == level && level > 0);
	/* the tiles' stylizer is not needed here (the plan counts the two apart) */
	ts_stylizer_release(j->sty);
	if (!(bl = ts_job_blocks(j, level)))
		goto cleanup;
	if (!(cp = ts_coupled_create(j->net, &j->op, j->targets, bl, comm, level_content, &lr)))
		goto cleanup;
	ts_coupled_blocks(cp, &b0, &b1);
	x = malloc((ts_coupled_vars(cp) + 1) * sizeof *x);
	seg = malloc(((size_t)(b1 - b0) + 1) * sizeof *seg);
	if (!x || !seg) {
		ts_error("job", "out of memory for level %d's blocks", level);
		goto cleanup;
	}
	/* the start: the level below upsampled over each owned rectangle */
	ts_job_level_path(j, level - 1, path, sizeof path);
	if (!(below = ts_tiff_reader_open(path)))
		goto cleanup;
	{
		int bw, bh, bb;

		ts_tiff_reader_size(below, &bw, &bh, &bb);
		for (int b = b0; b < b1; b++) {
			const ts_block *k = &bl->b[b];

			seg[b - b0] = (size_t)3 * k->w * k->h;
			if (ts_resample_region(ts_job_tiff_read, below, bw, bh, lv->w, lv->h, k->x, k->y,
			                       k->w, k->h, x + ts_coupled_block_offset(cp, b)))
				goto cleanup;
		}
	}
	ts_tiff_reader_close(below);
	below = NULL;
	if (ts_coupled_reduce(cp, ts_optim_sum_width(&j->oo), &red))
		goto cleanup;
	if (!(opt = ts_optim_create_split(&j->oo, b1 - b0, seg, &red)))
		goto cleanup;
	e.c = cp;
	while (it < iters) {
		int r;
		double ti = ts_now();

		if (any_stop(comm, stop))
			break;
		r = ts_optim_step(opt, x, eval_fn, &e, &f);
		if (r < 0) {
			ts_error("job", "level %d: the objective is not finite at iteration %d", level,
			         it + 1);
			goto cleanup;
		}
		if (r == 1)
			break;
		it++;
		sent += (double)ts_coupled_sent_floats(cp);
		if (progress && rank == 0) {
			double el = ts_now() - t0, per = ts_now() - ti;

			fprintf(stderr, "level %d: iteration %d/%d  loss %.6g  %.2f s/iteration  ETA "
			        "%.0f s\n", level, it, iters, f, per,
			        (iters - it) * (el / it));
		}
	}
	if (it < iters && stop && any_stop(comm, stop)) {
		ret = 1; /* stopped: a resume redoes the level */
		goto cleanup;
	}
	/* the loss at the result (L-BFGS evaluated it last; Adam moved after) */
	if (j->oo.kind != TS_OPTIM_LBFGS || it == 0)
		f = ts_coupled_eval(cp, x, NULL, &e.last);
	if (ts_ckpt_mkdirs(j->dir, level))
		goto cleanup;
	memset(res, 0, sizeof *res);
	res->plan_hash = j->hash;
	res->level = level;
	res->iterations = it;
	res->content = e.last.content;
	res->style = e.last.style;
	res->tv = e.last.tv;
	res->total = e.last.total;
	res->rank = rank;
	res->seconds = ts_now() - t0;
	res->conv_seconds = ts_conv_seconds() - c0;
	res->loss_seconds = ts_loss_seconds() - l0;
	res->optim_seconds = ts_optim_seconds() - o0;
	res->layers_seconds = ts_vgg_layers_seconds() - n0;
	for (int b = b0; b < b1; b++) {
		const ts_block *k = &bl->b[b];
		ts_tile_result r = *res;

		r.row = b / bl->ncols;
		r.col = b % bl->ncols;
		r.x = k->x;
		r.y = k->y;
		r.w = k->w;
		r.h = k->h;
		r.px = x + ts_coupled_block_offset(cp, b);
		ts_ckpt_path(j->dir, level, r.row, r.col, path, sizeof path);
		if (ts_ckpt_write(&r, path))
			goto cleanup;
	}
	res->x = b0; /* the blocks this process wrote: [x, y) */
	res->y = b1;
	res->w = (int)(sent / (it > 0 ? it : 1) * sizeof(float) / 1024); /* KiB a step */
	ret = 0;
cleanup:
	ts_tiff_reader_close(below);
	ts_optim_destroy(opt);
	ts_coupled_destroy(cp);
	ts_blocks_destroy(bl);
	free(seg);
	free(x);
	(void)f;
	return ret;
}

/* --- assembly: the blocks meeting a band, copied --- */

int
ts_job_block_band(ts_job *j, int level, const ts_blocks *bl, int y0, int rows, float *band,
                  float **cache)
{
	int w = bl->w;

	for (int r = 0; r < bl->nrows; r++) {
		const ts_block *first = &bl->b[r * bl->ncols];

		if (first->y + first->h <= y0 || first->y >= y0 + rows) {
			for (int c = 0; c < bl->ncols && first->y + first->h <= y0; c++) {
				free(cache[r * bl->ncols + c]);
				cache[r * bl->ncols + c] = NULL;
			}
			continue;
		}
		for (int c = 0; c < bl->ncols; c++) {
			int b = r * bl->ncols + c;
			const ts_block *k = &bl->b[b];
			int a0 = k->y > y0 ? k->y : y0;
			int a1 = k->y + k->h < y0 + rows ? k->y + k->h : y0 + rows;

			if (!cache[b]) {
				ts_tile_result t;
				char path[4400];

				ts_ckpt_path(j->dir, level, r, c, path, sizeof path);
				if (ts_ckpt_read(path, j->hash, level, r, c, k->w, k->h, &t)) {
					if (!ts_errmsg()[0])
						ts_error("job", "block file \"%s\" is missing", path);
					return -1;
				}
				cache[b] = t.px;
			}
			for (int ch = 0; ch < 3; ch++)
				for (int y = a0; y < a1; y++)
					memcpy(band + ((size_t)ch * rows + (y - y0)) * w + k->x,
					       cache[b] + ((size_t)ch * k->h + (y - k->y)) * k->w,
					       (size_t)k->w * sizeof *band);
		}
	}
	return 0;
}
