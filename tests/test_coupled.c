/* Tests of the coupled level (--gram global) without MPI: one process holds every
 * block.  The coupled objective of a picture in blocks equals the single-piece
 * objective of the whole picture (value and gradient), for average and max pooling
 * and the full style layer set, with zero, reflect and replicate padding; with a halo
 * too narrow it does not; L-BFGS on the
 * blocks follows L-BFGS on the whole picture; a run resized between block sizes gives
 * the bits of a fresh run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/config.h"
#include "tessera/coupled.h"
#include "tessera/error.h"
#include "tessera/objective.h"
#include "tessera/optim.h"
#include "tessera/vgg.h"

#define W 352
#define H 224

/* A smooth picture with edges and texture, seeded; [3, h, w]. */
static void
picture(float *px, int w, int h, unsigned seed)
{
	size_t plane = (size_t)w * h;
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;
			double u = (double)x / w, v = (double)y / h;
			double r;

			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			r = (double)(s >> 11) / 9007199254740992.0;
			px[i] = (float)(0.4 + 0.3 * sin(9 * u + seed) * cos(5 * v) + 0.1 * r);
			px[plane + i] = (float)(hypot(u - 0.5, v - 0.4) < 0.25 ? 0.8 : 0.3 + 0.2 * r);
			px[2 * plane + i] = (float)(0.5 + 0.4 * sin(23 * (u + 0.7 * v)) * (seed & 1 ? 1 : v));
		}
}

typedef struct fixture {
	ts_vgg *net;
	ts_objective_params op;
	ts_style_targets *t;
	float *content, *x;
} fixture;

static int
content_read(void *user, int x, int y, int w, int h, float *out)
{
	const float *c = user;

	for (int k = 0; k < 3; k++)
		for (int i = 0; i < h; i++)
			memcpy(out + ((size_t)k * h + i) * w, c + ((size_t)k * H + y + i) * W + x,
			       (size_t)w * sizeof *out);
	return 0;
}

static void
fixture_init_pad(fixture *f, ts_pool_mode pool, const char *style_layers, ts_pad_mode pad)
{
	ts_image style = { 96, 80, 8, NULL };

	memset(f, 0, sizeof *f);
	f->net = ts_vgg_create_builtin(7, 8);
	assert_non_null(f->net);
	assert_int_equal(ts_vgg_set_padding(f->net, pad), 0);
	memset(&f->op, 0, sizeof f->op);
	f->op.content_weight = 1.0;
	f->op.style_weight = 1.0;
	f->op.tv_weight = 0.01;
	f->op.normalize_style = 1;
	f->op.pool = pool;
	assert_int_equal(ts_config_parse_layers(&f->op.content_layers, "relu4_2", "c"), 0);
	assert_int_equal(ts_config_parse_layers(&f->op.style_layers, style_layers, "s"), 0);
	style.px = malloc((size_t)3 * style.w * style.h * sizeof(float));
	f->content = malloc((size_t)3 * W * H * sizeof(float));
	f->x = malloc((size_t)3 * W * H * sizeof(float));
	assert_non_null(style.px);
	assert_non_null(f->content);
	assert_non_null(f->x);
	picture(style.px, style.w, style.h, 3);
	picture(f->content, W, H, 1);
	picture(f->x, W, H, 2);
	{
		ts_image *st = &style;

		f->t = ts_targets_create(f->net, &st, (double[]){ 1.0 }, 1, &f->op.style_layers,
		                         pool);
	}
	assert_non_null(f->t);
	free(style.px);
}

static void
fixture_init(fixture *f, ts_pool_mode pool, const char *style_layers)
{
	fixture_init_pad(f, pool, style_layers, TS_PAD_ZERO);
}

static void
fixture_fini(fixture *f)
{
	ts_targets_destroy(f->t);
	ts_vgg_destroy(f->net);
	free(f->content);
	free(f->x);
}

/* Whole picture <-> this process's variables (every block's owned pixels). */
static void
to_blocks(const ts_coupled *c, const ts_blocks *bl, const float *pic, float *v, int back)
{
	for (int b = 0; b < bl->n; b++) {
		const ts_block *k = &bl->b[b];
		float *o = v + ts_coupled_block_offset(c, b);

		for (int ch = 0; ch < 3; ch++)
			for (int y = 0; y < k->h; y++) {
				float *bp = o + ((size_t)ch * k->h + y) * k->w;
				float *pp = (float *)pic + ((size_t)ch * H + k->y + y) * W + k->x;

				if (back)
					memcpy(pp, bp, (size_t)k->w * sizeof *bp);
				else
					memcpy(bp, pp, (size_t)k->w * sizeof *bp);
			}
	}
}

/* Largest error of the coupled value (relative) and gradient (of max |g|) against the
 * whole picture's, with this halo. */
/* of the last compare: the share of pixels off by more than 1e-5 max |g|, and
 * |g_blocks - g_whole| / |g_whole| */
static double far_share, rel_l2;

static void
compare(fixture *f, int halo, int side, double *eval, double *egrad, int *nblocks)
{
	ts_objective *whole = ts_objective_create(f->net, H, W, &f->op, f->t, f->content);
	size_t n = (size_t)3 * W * H;
	float *g = malloc(n * sizeof *g), *gb = malloc(n * sizeof *gb);
	float *v = malloc(n * sizeof *v), *gv = malloc(n * sizeof *gv);
	ts_loss_parts pw, pb;
	int grid;
	ts_blocks *bl;
	ts_coupled *c;
	double fw, fb, gmax = 0, emax = 0;

	ts_coupled_halo(&f->op, &grid);
	bl = ts_blocks_create(W, H, side, halo, grid);
	assert_non_null(whole);
	assert_non_null(bl);
	c = ts_coupled_create(f->net, &f->op, f->t, bl, NULL, content_read, f->content);
	assert_non_null(c);
	assert_int_equal(ts_coupled_vars(c), n);
	*nblocks = bl->n;
	fw = ts_objective_eval(whole, f->x, g, &pw);
	to_blocks(c, bl, f->x, v, 0);
	fb = ts_coupled_eval(c, v, gv, &pb);
	to_blocks(c, bl, gb, gv, 1);
	for (size_t i = 0; i < n; i++) {
		gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
		emax = fabs(g[i] - gb[i]) > emax ? fabs(g[i] - gb[i]) : emax;
	}
	*eval = fabs(fb - fw) / fabs(fw);
	*egrad = emax / gmax;
	far_share = 0;
	{
		double dd = 0, gg = 0;

		for (size_t i = 0; i < n; i++) {
			far_share += fabs(g[i] - gb[i]) > 1e-5 * gmax;
			dd += ((double)g[i] - gb[i]) * ((double)g[i] - gb[i]);
			gg += (double)g[i] * g[i];
		}
		rel_l2 = sqrt(dd / gg);
	}
	far_share /= (double)n;
	/* the parts agree too, when the halo is wide enough */
	if (halo >= ts_coupled_halo(&f->op, &grid)) {
		assert_true(fabs(pb.style - pw.style) <= 1e-5 * fabs(pw.style));
		assert_true(fabs(pb.content - pw.content) <= 1e-5 * fabs(pw.content));
		assert_true(fabs(pb.tv - pw.tv) <= 1e-6 * fabs(pw.tv));
	}
	ts_coupled_destroy(c);
	ts_blocks_destroy(bl);
	ts_objective_destroy(whole);
	free(g);
	free(gb);
	free(v);
	free(gv);
}

static void
exact_pad(ts_pool_mode pool, ts_pad_mode pad)
{
	fixture f;
	int grid, halo, nb;
	double ev, eg;

	fixture_init_pad(&f, pool, "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1", pad);
	halo = ts_coupled_halo(&f.op, &grid);
	assert_true(halo >= 80);
	compare(&f, halo, grid > 64 ? grid : 64, &ev, &eg, &nb);
	print_message("pool %d, padding %d, %d blocks, halo %d: value off by %.2e, gradient by "
	              "%.2e of max (%.4f%% of pixels beyond 1e-5, relative L2 %.2e)\n",
	              (int)pool, (int)pad, nb, halo, ev, eg, 100 * far_share, rel_l2);
	assert_true(nb >= 6);
	assert_true(ev <= 1e-5);
	if (pool == TS_POOL_AVG) {
		assert_true(eg <= 1e-5);
	} else {
		/* max pooling: where two inputs of a window are within rounding of each
		 * other, the whole picture and the block may route the gradient to
		 * different ones (the gradient is discontinuous there); everywhere else
		 * it agrees as with average pooling */
		assert_true(rel_l2 <= 5e-3);
	}
	fixture_fini(&f);
}

static void
exact(ts_pool_mode pool)
{
	exact_pad(pool, TS_PAD_ZERO);
}

/* Reflect and replicate padding: only the picture's true borders are padded by the
 * blocks on them (a block's edge inside the picture is a halo's, beyond the reach of
 * what the block owns, whatever is read there), so the blocks still give the whole
 * picture's value and gradient; and the padding is seen (the value moves). */
static void
test_exact_reflect(void **state)
{
	fixture f;
	ts_objective *o;
	double fz, fr;

	(void)state;
	exact_pad(TS_POOL_AVG, TS_PAD_REFLECT);
	exact_pad(TS_POOL_MAX, TS_PAD_REFLECT);
	exact_pad(TS_POOL_AVG, TS_PAD_REPLICATE);
	fixture_init(&f, TS_POOL_AVG, "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1");
	assert_non_null(o = ts_objective_create(f.net, H, W, &f.op, f.t, f.content));
	fz = ts_objective_eval(o, f.x, NULL, NULL);
	ts_objective_destroy(o);
	assert_int_equal(ts_vgg_set_padding(f.net, TS_PAD_REFLECT), 0);
	assert_non_null(o = ts_objective_create(f.net, H, W, &f.op, f.t, f.content));
	fr = ts_objective_eval(o, f.x, NULL, NULL);
	ts_objective_destroy(o);
	print_message("objective with zero padding %.9g, reflect %.9g\n", fz, fr);
	assert_true(fabs(fr - fz) > 1e-4 * fabs(fz));
	fixture_fini(&f);
}

static void
test_exact_avg(void **state)
{
	(void)state;
	exact(TS_POOL_AVG);
}

static void
test_exact_max(void **state)
{
	(void)state;
	exact(TS_POOL_MAX);
}

/* With relu3_1 the deepest layer the halo is one grid step (16 px: the reach is 10);
 * one step narrower (no halo) the blocks see zeros where their neighbours are, and
 * the value and gradient are off far beyond float rounding. */
static void
test_halo_too_narrow(void **state)
{
	fixture f;
	int grid, halo, nb;
	double ev, eg, ev0, eg0;

	(void)state;
	fixture_init(&f, TS_POOL_AVG, "relu1_1,relu2_1,relu3_1");
	f.op.content_layers.layer[0] = ts_vgg_layer_index("relu3_1");
	halo = ts_coupled_halo(&f.op, &grid);
	assert_int_equal(halo, 16);
	compare(&f, halo, 64, &ev, &eg, &nb);
	compare(&f, halo - grid, 64, &ev0, &eg0, &nb);
	print_message("halo %d: %.2e / %.2e; halo %d: %.2e / %.2e\n", halo, ev, eg, halo - grid,
	              ev0, eg0);
	assert_true(ev <= 1e-5 && eg <= 1e-5);
	assert_true(eg0 > 1e-3);
	fixture_fini(&f);
}

struct whole_ctx {
	ts_objective *o;
	ts_loss_parts last;
};

static double
whole_fn(void *ctx, const float *x, float *g)
{
	struct whole_ctx *w = ctx;

	return ts_objective_eval(w->o, x, g, &w->last);
}

static double
coupled_fn(void *ctx, const float *x, float *g)
{
	return ts_coupled_eval(ctx, x, g, NULL);
}

/* The whole picture's objective with its gradient perturbed by a relative 2e-6
 * (fixed pseudo-random signs): what float rounding alone does to a trajectory. */
static double
noisy_fn(void *ctx, const float *x, float *g)
{
	struct whole_ctx *w = ctx;
	double f = ts_objective_eval(w->o, x, g, &w->last);
	uint64_t s = 88172645463325252ull;

	for (size_t i = 0; i < (size_t)3 * W * H; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		g[i] *= 1.0f + (s & 1 ? 2e-6f : -2e-6f);
	}
	return f;
}

/* 10 L-BFGS iterations of the level in blocks against the same in one piece, from the
 * same start.  L-BFGS without a line search amplifies rounding (its first pair comes
 * from a step of 1/|g|_1), so beside the whole picture a third run takes the whole
 * picture's gradient perturbed at the level of float rounding: the blocks must stay
 * within 1e-4 (or 4 times the perturbed run's deviation so far: how much rounding is
 * amplified depends on the CPU's kernels, 5e-5 by iteration 1 on some) for the first
 * five iterations and, over all ten, their largest deviation so far no more than 4
 * times the perturbed run's (or 1e-4). */
static void
test_lbfgs_follows_whole(void **state)
{
	fixture f;
	int grid, halo;
	size_t n = (size_t)3 * W * H;
	ts_optim_params oo;
	ts_optim *ow, *ob, *on;
	ts_blocks *bl;
	ts_coupled *c;
	ts_optim_reduce red;
	struct whole_ctx wc;
	float *v = malloc(n * sizeof *v), *xn = malloc(n * sizeof *xn);
	size_t *seg;

	(void)state;
	fixture_init(&f, TS_POOL_AVG, "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1");
	halo = ts_coupled_halo(&f.op, &grid);
	bl = ts_blocks_create(W, H, 128, halo, grid);
	assert_non_null(bl);
	c = ts_coupled_create(f.net, &f.op, f.t, bl, NULL, content_read, f.content);
	assert_non_null(c);
	wc.o = ts_objective_create(f.net, H, W, &f.op, f.t, f.content);
	assert_non_null(wc.o);
	ts_optim_defaults(&oo, TS_OPTIM_LBFGS);
	oo.history = 5;
	seg = malloc((size_t)bl->n * sizeof *seg);
	for (int b = 0; b < bl->n; b++)
		seg[b] = (size_t)3 * bl->b[b].w * bl->b[b].h;
	assert_int_equal(ts_coupled_reduce(c, ts_optim_sum_width(&oo), &red), 0);
	ow = ts_optim_create(&oo, n);
	on = ts_optim_create(&oo, n);
	ob = ts_optim_create_split(&oo, bl->n, seg, &red);
	assert_non_null(ow);
	assert_non_null(on);
	assert_non_null(ob);
	memcpy(f.x, f.content, n * sizeof *f.x); /* the renderer's start */
	memcpy(xn, f.content, n * sizeof *xn);
	to_blocks(c, bl, f.x, v, 0);
	for (int it = 0; it < 10; it++) {
		double fw, fb, fn, eb, en;
		static double maxb, maxn;

		assert_int_equal(ts_optim_step(ow, f.x, whole_fn, &wc, &fw), 0);
		assert_int_equal(ts_optim_step(on, xn, noisy_fn, &wc, &fn), 0);
		assert_int_equal(ts_optim_step(ob, v, coupled_fn, c, &fb), 0);
		eb = fabs(fb - fw) / fw;
		en = fabs(fn - fw) / fw;
		print_message("iteration %d: whole %.9g blocks %.9g (%.1e), perturbed whole "
		              "%.1e\n", it, fw, fb, eb, en);
		maxb = eb > maxb ? eb : maxb;
		maxn = en > maxn ? en : maxn;
		if (it < 5)
			assert_true(eb <= 1e-4 || eb <= 4 * maxn);
		/* the largest deviation so far, against the perturbed run's */
		assert_true(maxb <= 4 * maxn || maxb <= 1e-4);
	}
	ts_optim_destroy(ow);
	ts_optim_destroy(on);
	ts_optim_destroy(ob);
	ts_objective_destroy(wc.o);
	ts_coupled_destroy(c);
	ts_blocks_destroy(bl);
	free(seg);
	free(v);
	free(xn);
	fixture_fini(&f);
}

static int
seed_tap(void *ctx, int layer, const float *f, int c, int fh, int fw, float *grad, int relu)
{
	(void)ctx, (void)layer, (void)relu;
	for (size_t i = 0; i < (size_t)c * fh * fw; i++)
		grad[i] += 0.01f * f[i];
	return 0;
}

/* A run resized between sizes gives the bits of a fresh run of each size. */
static void
test_resized_run_same_bits(void **state)
{
	ts_vgg *net = ts_vgg_create_builtin(3, 8);
	unsigned char tapped[TS_VGG_NLAYERS] = { 0 };
	int hs[3] = { 48, 80, 64 }, ws[3] = { 64, 48, 96 }, last = ts_vgg_layer_index("relu4_1");
	ts_vgg_run *multi;
	float *img = malloc((size_t)3 * 96 * 96 * sizeof *img);
	float *g1 = malloc((size_t)3 * 96 * 96 * sizeof *g1);
	float *g2 = malloc((size_t)3 * 96 * 96 * sizeof *g2);

	(void)state;
	tapped[ts_vgg_layer_index("relu2_1")] = 1;
	tapped[last] = 1;
	multi = ts_vgg_run_create_multi(net, 3, hs, ws, last, tapped, TS_POOL_AVG);
	assert_non_null(multi);
	for (int rep = 0; rep < 2; rep++)
		for (int i = 0; i < 3; i++) {
			ts_vgg_run *fresh = ts_vgg_run_create(net, hs[i], ws[i], last, tapped,
			                                      TS_POOL_AVG);
			int c, fh, fw, c2, fh2, fw2;
			const float *a, *b;

			assert_non_null(fresh);
			picture(img, ws[i], hs[i], (unsigned)i);
			assert_int_equal(ts_vgg_run_resize(multi, hs[i], ws[i]), 0);
			ts_vgg_forward(multi, img);
			ts_vgg_forward(fresh, img);
			a = ts_vgg_feature(multi, last, &c, &fh, &fw);
			b = ts_vgg_feature(fresh, last, &c2, &fh2, &fw2);
			assert_int_equal(fh, fh2);
			assert_int_equal(fw, fw2);
			assert_memory_equal(a, b, (size_t)c * fh * fw * sizeof *a);
			ts_vgg_backward(multi, seed_tap, NULL, g1);
			ts_vgg_backward(fresh, seed_tap, NULL, g2);
			assert_memory_equal(g1, g2, (size_t)3 * hs[i] * ws[i] * sizeof *g1);
			ts_vgg_run_destroy(fresh);
		}
	/* a size larger than every one it was made for is refused */
	assert_int_equal(ts_vgg_run_resize(multi, 96, 96), -1);
	assert_non_null(strstr(ts_errmsg(), "96x96"));
	ts_vgg_run_destroy(multi);
	ts_vgg_destroy(net);
	free(img);
	free(g1);
	free(g2);
}

/* Block geometry: corners on the grid, rectangles tile the level, halos clipped. */
static void
test_blocks_geometry(void **state)
{
	ts_blocks *bl = ts_blocks_create(1030, 517, 512, 80, 16);
	long long area = 0;

	(void)state;
	assert_non_null(bl);
	assert_int_equal(bl->ncols, 3);
	assert_int_equal(bl->nrows, 2);
	for (int i = 0; i < bl->n; i++) {
		const ts_block *b = &bl->b[i];

		assert_int_equal(b->x % 16, 0);
		assert_int_equal(b->y % 16, 0);
		assert_int_equal(b->ex % 16, 0);
		assert_int_equal(b->ey % 16, 0);
		assert_true(b->w > 0 && b->h > 0);
		assert_true(b->ex >= 0 && b->ex + b->ew <= 1030 && b->ey + b->eh <= 517);
		assert_true(b->x - b->ex == (b->x < 80 ? b->x : 80));
		area += (long long)b->w * b->h;
	}
	assert_int_equal(area, 1030LL * 517);
	for (int r = 0; r < 5; r++)
		assert_true(ts_blocks_first(bl, r, 5) <= ts_blocks_first(bl, r + 1, 5));
	assert_int_equal(ts_blocks_first(bl, 5, 5), bl->n);
	ts_blocks_destroy(bl);
	assert_null(ts_blocks_create(100, 100, 64, 70, 16)); /* halo off the grid */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocks_geometry),
		cmocka_unit_test(test_resized_run_same_bits),
		cmocka_unit_test(test_exact_avg),
		cmocka_unit_test(test_exact_max),
		cmocka_unit_test(test_exact_reflect),
		cmocka_unit_test(test_halo_too_narrow),
		cmocka_unit_test(test_lbfgs_follows_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
