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
	int side = j->c->tile / grid * grid, m[4];

	/* --margin: the blocks cover the level and its margins (a multiple of 16, so of
	 * the grid, each, and the whole too): block coordinates are the level's plus m[0] */
	ts_render_margins(j->c, lv->w, lv->h, 0, 0, lv->w, lv->h, m);
	return ts_blocks_create(lv->w + m[0] + m[2], lv->h + m[1] + m[3],
	                        side < grid ? grid : side, halo, grid);
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
	int m; /* block coordinates are the level's plus m (--margin) */
} level_reader;

static int
level_content_inside(void *user, int x, int y, int w, int h, float *out)
{
	level_reader *r = user;

	return ts_job_content_region(r->j, r->lv->w, r->lv->h, x, y, w, h, out);
}

/* a rectangle in block coordinates: in the margin, the level mirrored */
static int
level_content(void *user, int x, int y, int w, int h, float *out)
{
	level_reader *r = user;

	return ts_region_mirrored(level_content_inside, r, r->lv->w, r->lv->h, x - r->m,
	                          y - r->m, w, h, out);
}

/* The level below upsampled to the level, by rectangles of the level. */
typedef struct below_reader {
	ts_tiff_reader *below;
	int bw, bh, w, h;
} below_reader;

static int
below_region(void *user, int x, int y, int w, int h, float *out)
{
	below_reader *r = user;

	return ts_resample_region(ts_job_tiff_read, r->below, r->bw, r->bh, r->w, r->h, x, y,
	                          w, h, out);
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

/* --- the optimizer's state at an iteration (checkpoints) ---
 *
 * Two generations, written in turn: JOB/L<k>/s<row>_<col>.<g> per block (its pixels
 * and its share of the optimizer's vectors) by the block's process, then, once every
 * process has written its blocks, JOB/L<k>/optim.<g> (the optimizer's scalars, the
 * same on every process) by rank 0.  A generation is complete when its optim file
 * and every block file are valid and name the same iteration; a resume takes the
 * newest generation complete on every process, so a crash while one is written, or
 * a corrupt file, falls back to the other. */

typedef struct state_head {
	char magic[8];     /* "TSBLOCK1" or "TSOPTIM1" */
	uint64_t hash;     /* the plan's */
	int32_t level, block, iteration, nblocks;
	uint64_t bytes;    /* of what follows */
} state_head;

static void
state_path(const ts_job *j, int level, const ts_blocks *bl, int b, int gen, char *buf,
           size_t size)
{
	if (b < 0)
		snprintf(buf, size, "%s/L%d/optim.%d", j->dir, level, gen);
	else
		snprintf(buf, size, "%s/L%d/s%d_%d.%d", j->dir, level, b / bl->ncols,
		         b % bl->ncols, gen);
}

/* The sum over the processes of v (collective; alone: v). */
static double
sum_all(const ts_comm *comm, double v)
{
	if (comm && comm->nranks > 1)
		comm->sum_f64(comm->user, &v, 1);
	return v;
}

/* Write generation gen at iteration it (collective).  0, or -1 on every process when
 * any failed (the message on the one that did). */
static int
save_state(ts_job *j, int level, const ts_comm *comm, const ts_blocks *bl, ts_coupled *cp,
           ts_optim *opt, const float *x, int it, int gen, size_t *bytes)
{
	int b0, b1, bad = 0;
	char path[4400];
	size_t most = 1;
	unsigned char *buf = NULL;

	ts_coupled_blocks(cp, &b0, &b1);
	*bytes = 0;
	for (int b = b0; b < b1; b++) {
		size_t k = ts_optim_segment_bytes(opt, b - b0);

		most = k > most ? k : most;
	}
	if (!(buf = malloc(most))) {
		ts_error("job", "out of memory for a checkpoint");
		bad = 1;
	}
	for (int b = b0; b < b1 && !bad; b++) {
		const ts_block *k = &bl->b[b];
		size_t px = (size_t)3 * k->w * k->h * sizeof(float);
		size_t ob = ts_optim_segment_bytes(opt, b - b0);
		state_head h = { "TSBLOCK1", j->hash, level, b, it, bl->n, px + ob };
		const void *parts[3] = { &h, x + ts_coupled_block_offset(cp, b), buf };
		size_t sizes[3] = { sizeof h, px, ob };

		ts_optim_segment_io(opt, b - b0, buf, 0);
		state_path(j, level, bl, b, gen, path, sizeof path);
		if (ts_ckpt_blob_write(path, parts, sizes, 3))
			bad = 1;
		*bytes += sizeof h + px + ob + 4;
	}
	free(buf);
	if (sum_all(comm, bad) > 0)
		return -1;
	if (!comm || comm->nranks <= 1 || comm->rank == 0) {
		size_t ns = ts_optim_scalars(opt, NULL);
		double *sc = malloc(ns * sizeof *sc);
		state_head h = { "TSOPTIM1", j->hash, level, -1, it, bl->n, ns * sizeof *sc };
		const void *parts[2] = { &h, sc };
		size_t sizes[2] = { sizeof h, ns * sizeof *sc };

		if (!sc) {
			ts_error("job", "out of memory for a checkpoint");
			return -1;
		}
		ts_optim_scalars(opt, sc);
		state_path(j, level, bl, -1, gen, path, sizeof path);
		bad = ts_ckpt_blob_write(path, parts, sizes, 2) != 0;
		free(sc);
		*bytes += sizeof h + sizes[1] + 4;
	}
	return sum_all(comm, bad) > 0 ? -1 : 0;
}

/* Read (and with load, restore) generation gen's state of this process's blocks;
 * *it receives its iteration.  0, or -1 when it is missing, corrupt or of another
 * plan (quiet: missing is not an error; corrupt is reported on stderr). */
static int
read_state(ts_job *j, int level, const ts_blocks *bl, ts_coupled *cp, ts_optim *opt,
           float *x, int gen, int load, int *it)
{
	int b0, b1, ret = -1;
	char path[4400];
	void *data = NULL;
	size_t size;
	state_head h;
	int st;

	ts_coupled_blocks(cp, &b0, &b1);
	state_path(j, level, bl, -1, gen, path, sizeof path);
	if ((st = ts_ckpt_blob_read(path, &data, &size)) != 0)
		goto cleanup;
	memcpy(&h, data, size >= sizeof h ? sizeof h : 0);
	if (size < sizeof h || memcmp(h.magic, "TSOPTIM1", 8) || h.hash != j->hash ||
	    h.level != level || h.nblocks != bl->n || h.bytes != size - sizeof h) {
		ts_error("job", "\"%s\" is not a state file of this plan's level %d", path, level);
		st = -1;
		goto cleanup;
	}
	*it = h.iteration;
	if (load && ts_optim_set_scalars(opt, (const double *)((char *)data + sizeof h),
	                                 h.bytes / sizeof(double))) {
		st = -1;
		goto cleanup;
	}
	free(data);
	data = NULL;
	for (int b = b0; b < b1; b++) {
		const ts_block *k = &bl->b[b];
		size_t px = (size_t)3 * k->w * k->h * sizeof(float);

		state_path(j, level, bl, b, gen, path, sizeof path);
		if ((st = ts_ckpt_blob_read(path, &data, &size)) != 0)
			goto cleanup;
		memcpy(&h, data, size >= sizeof h ? sizeof h : 0);
		if (size < sizeof h + px || memcmp(h.magic, "TSBLOCK1", 8) || h.hash != j->hash ||
		    h.level != level || h.block != b || h.iteration != *it ||
		    h.bytes != size - sizeof h ||
		    (load && h.bytes != px + ts_optim_segment_bytes(opt, b - b0))) {
			ts_error("job", "\"%s\" does not belong to the state of iteration %d", path, *it);
			st = -1;
			goto cleanup;
		}
		if (load) {
			memcpy(x + ts_coupled_block_offset(cp, b), (char *)data + sizeof h, px);
			ts_optim_segment_io(opt, b - b0, (char *)data + sizeof h + px, 1);
		}
		free(data);
		data = NULL;
	}
	ret = 0;
cleanup:
	if (ret && st < 0)
		fprintf(stderr, "tessera: %s; an older state is used if there is one\n", ts_errmsg());
	free(data);
	return ret;
}

/* Resume from the newest generation complete on every process (collective).  1 and
 * *it when restored, 0 when there is none. */
static int
load_state(ts_job *j, int level, const ts_comm *comm, const ts_blocks *bl, ts_coupled *cp,
           ts_optim *opt, float *x, int *it, int *gen)
{
	int its[2] = { -1, -1 };
	double okv[2];

	for (int g = 0; g < 2; g++) {
		int i;

		okv[g] = read_state(j, level, bl, cp, opt, x, g, 0, &i) == 0 ? 0.0 : 1.0;
		if (okv[g] == 0.0)
			its[g] = i;
		okv[g] = sum_all(comm, okv[g]); /* processes without it */
	}
	for (int pass = 0; pass < 2; pass++) {
		int g = its[0] >= its[1] ? pass : 1 - pass;

		if (okv[g] > 0 || its[g] < 0)
			continue;
		if (read_state(j, level, bl, cp, opt, x, g, 1, it))
			return -1; /* it was readable a moment ago */
		*gen = g;
		return 1;
	}
	return 0;
}

void
ts_job_global_cleanup(ts_job *j, int level)
{
	ts_blocks *bl = ts_job_blocks(j, level);
	char path[4400];

	if (!bl)
		return;
	for (int g = 0; g < 2; g++)
		for (int b = -1; b < bl->n; b++) {
			state_path(j, level, bl, b, g, path, sizeof path);
			unlink(path);
		}
	ts_blocks_destroy(bl);
}

/* Write the next generation (collective) and say what it cost. */
static int
checkpoint(ts_job *j, int level, const ts_comm *comm, const ts_blocks *bl, ts_coupled *cp,
           ts_optim *opt, const float *x, int it, int *gen, int say)
{
	double t0 = ts_now();
	size_t bytes;

	if (save_state(j, level, comm, bl, cp, opt, x, it, 1 - *gen, &bytes))
		return -1;
	*gen = 1 - *gen;
	if (say)
		fprintf(stderr, "level %d: state of iteration %d saved (rank 0: %.1f MiB in %.2f s)\n",
		        level, it, (double)bytes / 1048576.0, ts_now() - t0);
	return 0;
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
	level_reader lr = { j, lv, ts_render_level_margin(j->c, lv->w, lv->h) };
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
	int restored, gen = 1, saved_it;
	double last_line = 0;

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
	if (ts_ckpt_mkdirs(j->dir, level))
		goto cleanup;
	for (int b = b0; b < b1; b++)
		seg[b - b0] = (size_t)3 * bl->b[b].w * bl->b[b].h;
	if (ts_coupled_reduce(cp, ts_optim_sum_width(&j->oo), &red))
		goto cleanup;
	if (!(opt = ts_optim_create_split(&j->oo, b1 - b0, seg, &red)))
		goto cleanup;
	/* a stopped or killed run left the state of an iteration: go on from there */
	if ((restored = load_state(j, level, comm, bl, cp, opt, x, &it, &gen)) < 0)
		goto cleanup;
	saved_it = restored ? it : -1;
	if (restored && progress && rank == 0)
		fprintf(stderr, "level %d: resumed at iteration %d of %d\n", level, it, iters);
	/* else the start: the level below upsampled over each owned rectangle */
	if (!restored) {
		int bw, bh, bb;

		ts_job_level_path(j, level - 1, path, sizeof path);
		if (!(below = ts_tiff_reader_open(path)))
			goto cleanup;
		ts_tiff_reader_size(below, &bw, &bh, &bb);
		for (int b = b0; b < b1; b++) {
			const ts_block *k = &bl->b[b];
			below_reader br = { below, bw, bh, lv->w, lv->h };

			if (ts_region_mirrored(below_region, &br, lv->w, lv->h, k->x - lr.m,
			                       k->y - lr.m, k->w, k->h,
			                       x + ts_coupled_block_offset(cp, b)))
				goto cleanup;
		}
		ts_tiff_reader_close(below);
		below = NULL;
	}
	e.c = cp;
	while (it < iters) {
		int r;
		double ti = ts_now();

		if (any_stop(comm, stop)) {
			/* the state of this iteration, so that nothing done is lost */
			if (it != saved_it && checkpoint(j, level, comm, bl, cp, opt, x, it, &gen,
			                                 progress && rank == 0))
				goto cleanup;
			break;
		}
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
		if (j->c->checkpoint_every > 0 && it % j->c->checkpoint_every == 0 && it < iters) {
			if (checkpoint(j, level, comm, bl, cp, opt, x, it, &gen, progress && rank == 0))
				goto cleanup;
			saved_it = it;
		}
		if (progress && rank == 0 &&
		    (progress < 0 || it == iters || ts_now() - last_line >= progress)) {
			double el = ts_now() - t0, per = ts_now() - ti;

			last_line = ts_now();
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
	if (ts_optim_settle(opt, x) || j->oo.kind != TS_OPTIM_LBFGS || it == 0)
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

int
ts_job_global_plan(const ts_job *j, int level, int nranks, ts_job_global_cost *out)
{
	ts_blocks *bl = ts_job_blocks(j, level);
	ts_optim_params oo = ts_job_touched_optim(j, ts_job_iterations(j, level));

	memset(out, 0, sizeof *out);
	if (!bl)
		return -1;
	out->nblocks = bl->n;
	out->side = bl->side;
	out->halo = bl->halo;
	for (int r = 0; r < nranks; r++) {
		int b0 = ts_blocks_first(bl, r, nranks), b1 = ts_blocks_first(bl, r + 1, nranks);
		size_t vars = 0;
		double bytes;

		for (int b = b0; b < b1; b++) {
			double px = (double)bl->b[b].ew * bl->b[b].eh;

			vars += (size_t)3 * bl->b[b].w * bl->b[b].h;
			out->pixels += px * (b + 1 < b1 ? 1.5 : 1.0);
		}
		bytes = (double)ts_coupled_bytes(j->net, &j->op, bl, b0, b1) +
		        (double)ts_optim_bytes(&oo, vars ? vars : 1) + 4.0 * vars;
		out->rank_bytes = bytes > out->rank_bytes ? bytes : out->rank_bytes;
	}
	ts_blocks_destroy(bl);
	return 0;
}

ts_optim_params
ts_job_touched_optim(const ts_job *j, int iterations)
{
	ts_optim_params oo = j->oo;

	/* n iterations add at most n pairs, and one slot more is written: the rest of
	 * the history is allocated but never touched (never resident) */
	if (oo.kind == TS_OPTIM_LBFGS && oo.history > iterations + 1)
		oo.history = iterations + 1 > 1 ? iterations + 1 : 1;
	return oo;
}

/* --- assembly: the blocks meeting a band, copied --- */

int
ts_job_block_band(ts_job *j, int level, const ts_blocks *bl, int y0, int rows, float *band,
                  float **cache)
{
	const ts_level *lv = &j->plan->level[level];
	/* block coordinates: the level's plus its left (and top) margin m */
	int w = lv->w, m = ts_render_level_margin(j->c, lv->w, lv->h);

	for (int r = 0; r < bl->nrows; r++) {
		const ts_block *first = &bl->b[r * bl->ncols];
		int fy = first->y - m;

		if (fy + first->h <= y0 || fy >= y0 + rows) {
			for (int c = 0; c < bl->ncols && fy + first->h <= y0; c++) {
				free(cache[r * bl->ncols + c]);
				cache[r * bl->ncols + c] = NULL;
			}
			continue;
		}
		for (int c = 0; c < bl->ncols; c++) {
			int b = r * bl->ncols + c;
			const ts_block *k = &bl->b[b];
			int ky = k->y - m, kx = k->x - m;
			int a0 = ky > y0 ? ky : y0;
			int a1 = ky + k->h < y0 + rows ? ky + k->h : y0 + rows;
			int c0 = kx > 0 ? kx : 0, c1 = kx + k->w < w ? kx + k->w : w;

			if (c1 <= c0)
				continue; /* wholly in the margin */

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
					memcpy(band + ((size_t)ch * rows + (y - y0)) * w + c0,
					       cache[b] + ((size_t)ch * k->h + (y - ky)) * k->w + (c0 - kx),
					       (size_t)(c1 - c0) * sizeof *band);
		}
	}
	return 0;
}
