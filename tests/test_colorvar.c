/* test_colorvar: the colour variables (colorvar.h) and the colour-only TV (loss.h's
 * ts_loss_tv_chroma): the map's inverse round trip, its adjoint against the forward
 * map (dot products) and a gradient through it against central differences, the
 * chroma TV against a naive double reference (value, gradient by central
 * differences, luma-blind), and a stylizer run in colour variables: the same loss as
 * pixels at the start, a falling loss, the image handed back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/colorvar.h"
#include "tessera/config.h"
#include "tessera/coupled.h"
#include "tessera/loss.h"
#include "tessera/render.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static float
urand(float lo, float hi)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return lo + (hi - lo) * (float)((x * 0x2545f4914f6cdd1dull) >> 40) / (float)(1 << 24);
}

static void
fill(float *a, size_t n, float lo, float hi)
{
	for (size_t i = 0; i < n; i++)
		a[i] = urand(lo, hi);
}

/* from_image(to_image(v)) == v and back, for several chroma scales; the luma of the
 * variables is BT.601's Y of the image, its chroma Cb / s, Cr / s. */
static void
test_round_trip(void **state)
{
	enum { P = 257 };
	float v[3 * P], x[3 * P], v2[3 * P], x2[3 * P];
	const double scales[] = { 1.0, 0.2, 0.5, 5.0 };

	(void)state;
	for (int k = 0; k < 4; k++) {
		ts_colorvar m;

		ts_colorvar_init(&m, scales[k]);
		fill(x, 3 * P, 0.0f, 1.0f);
		ts_colorvar_from_image(&m, x, v, P);
		ts_colorvar_to_image(&m, v, x2, P);
		for (int i = 0; i < 3 * P; i++)
			assert_true(fabsf(x2[i] - x[i]) <= 2e-6f);
		ts_colorvar_to_image(&m, v, x2, P);
		ts_colorvar_from_image(&m, x2, v2, P);
		for (int i = 0; i < 3 * P; i++)
			assert_true(fabsf(v2[i] - v[i]) <= 4e-6f * (1.0f + (float)(1 / scales[k])));
		for (int p = 0; p < P; p++) {
			double y = 0.299 * x[p] + 0.587 * x[P + p] + 0.114 * x[2 * P + p];
			double cb = -0.168736 * x[p] - 0.331264 * x[P + p] + 0.5 * x[2 * P + p];

			assert_true(fabs(v[p] - y) <= 1e-6);
			assert_true(fabs(v[P + p] - cb / scales[k]) <= 1e-5 / scales[k]);
		}
	}
}

/* <A v, y> == <v, A^T y> */
static void
test_adjoint(void **state)
{
	enum { P = 100 };
	float v[3 * P], y[3 * P], av[3 * P], aty[3 * P];
	ts_colorvar m;
	double l = 0, r = 0, s = 0;

	(void)state;
	ts_colorvar_init(&m, 0.3);
	fill(v, 3 * P, -1.0f, 1.0f);
	fill(y, 3 * P, -1.0f, 1.0f);
	ts_colorvar_to_image(&m, v, av, P);
	ts_colorvar_adjoint(&m, y, aty, P);
	for (int i = 0; i < 3 * P; i++) {
		l += (double)av[i] * y[i];
		r += (double)v[i] * aty[i];
		s += fabs((double)av[i] * y[i]);
	}
	assert_true(fabs(l - r) <= 1e-6 * s);
}

/* The chroma TV of x as a double formula. */
static double
ref_tv_chroma(const double *x, int h, int w)
{
	const double cb[3] = { -0.168736, -0.331264, 0.5 }, cr[3] = { 0.5, -0.418688, -0.081312 };
	size_t pl = (size_t)h * w;
	double sx = 0, sy = 0, t = 0;

	for (int i = 0; i < h; i++)
		for (int j = 0; j < w; j++) {
			size_t a = (size_t)i * w + j;

			for (int dir = 0; dir < 2; dir++) {
				size_t b = dir ? a + w : a + 1;
				double u = 0, v = 0;

				if ((dir && i + 1 >= h) || (!dir && j + 1 >= w))
					continue;
				for (int c = 0; c < 3; c++) {
					double d = x[c * pl + b] - x[c * pl + a];

					u += cb[c] * d;
					v += cr[c] * d;
				}
				*(dir ? &sy : &sx) += u * u + v * v;
			}
		}
	if (w > 1)
		t += sx / (2.0 * h * (w - 1));
	if (h > 1)
		t += sy / (2.0 * (h - 1) * w);
	return t;
}

/* Value against the reference; the gradient (added to what the buffer held, times
 * the weight) against central differences of the reference; a change of luma alone
 * (the same value added to R, G, B) costs nothing. */
static void
chroma_case(int h, int w)
{
	size_t n = 3u * (size_t)h * w, pl = (size_t)h * w;
	float *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g), *b = malloc(n * sizeof *b);
	double *xd = malloc(n * sizeof *xd), gmax = 0, emax = 0, v, ref;
	const float wt = 0.7f;

	assert_true(x && g && b && xd);
	fill(x, n, 0.0f, 1.0f);
	fill(b, n, -1.0f, 1.0f);
	memcpy(g, b, n * sizeof *g);
	for (size_t i = 0; i < n; i++)
		xd[i] = x[i];
	ref = ref_tv_chroma(xd, h, w);
	v = ts_loss_tv_chroma(x, h, w, wt, g);
	assert_true(ref > 0);
	assert_true(fabs(v - ref) <= 1e-5 * ref);
	assert_true(ts_loss_tv_chroma(x, h, w, wt, NULL) == v);
	for (size_t i = 0; i < n; i++) {
		double x0 = xd[i], fp, fm, fd, an;

		xd[i] = x0 + 1e-5;
		fp = ref_tv_chroma(xd, h, w);
		xd[i] = x0 - 1e-5;
		fm = ref_tv_chroma(xd, h, w);
		xd[i] = x0;
		fd = (fp - fm) / 2e-5;
		an = ((double)g[i] - b[i]) / wt;
		gmax = fabs(fd) > gmax ? fabs(fd) : gmax;
		emax = fabs(fd - an) > emax ? fabs(fd - an) : emax;
	}
	assert_true(gmax > 0);
	assert_true(emax <= 1e-4 * gmax);
	/* grey: a luma pattern only */
	for (size_t p = 0; p < pl; p++)
		x[pl + p] = x[2 * pl + p] = x[p];
	assert_true(ts_loss_tv_chroma(x, h, w, wt, NULL) < 1e-12);
	free(x);
	free(g);
	free(b);
	free(xd);
}

static void
test_tv_chroma(void **state)
{
	(void)state;
	chroma_case(7, 9);
	chroma_case(1, 12);
	chroma_case(13, 1);
	chroma_case(20, 33);
}

/* A random narrow network and targets for a small problem. */
static void
problem(ts_config *c, ts_objective_params *op, ts_vgg **net, ts_style_targets **t,
        float *content, float *style, int h, int w)
{
	ts_image st = { 0 };

	ts_config_defaults(c);
	c->builtin_width = 16;
	c->iterations = 5;
	ts_objective_params_from_config(op, c);
	*net = ts_render_network(c);
	assert_non_null(*net);
	fill(content, (size_t)3 * h * w, 0.0f, 1.0f);
	fill(style, (size_t)3 * h * w, 0.0f, 1.0f);
	st.w = w;
	st.h = h;
	st.px = style;
	*t = ts_targets_create(*net, (ts_image *[]){ &st }, (double[]){ 1.0 }, 1,
	                       &op->style_layers, op->pool);
	assert_non_null(*t);
}

/* The gradient the stylizer hands the optimizer in colour variables is A^T of the
 * image's: against central differences of the objective along random directions in
 * the variables.  Zero iterations in colour variables give the pixels' loss and the
 * start image back; a few iterations lower the loss and return an image. */
static void
test_stylizer_colour(void **state)
{
	enum { H = 32, W = 40 };
	size_t n = (size_t)3 * H * W;
	float *content = malloc(n * sizeof(float)), *style = malloc(n * sizeof(float));
	float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
	float *gx = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
	float *gv = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
	ts_config c;
	ts_objective_params op;
	ts_optim_params oo;
	ts_vgg *net;
	ts_style_targets *t;
	ts_objective *obj;
	ts_colorvar m;
	ts_loss_parts p0, p1, p5;
	float gmax = 0;
	int done;

	(void)state;
	problem(&c, &op, &net, &t, content, style, H, W);
	op.tv_chroma_weight = 0.5;
	obj = ts_objective_create(net, H, W, &op, t, content);
	assert_non_null(obj);
	ts_colorvar_init(&m, 0.25);
	fill(x, n, 0.1f, 0.9f);
	ts_objective_eval(obj, x, gx, NULL);
	ts_colorvar_from_image(&m, x, v, (size_t)H * W);
	ts_colorvar_adjoint(&m, gx, gv, (size_t)H * W);
	for (int k = 0; k < 3; k++) {
		double an = 0, fp, fm, e = 1e-3;

		/* a random direction, half of it along the gradient (so the derivative is
		 * well above the float noise of the objective) */
		fill(d, n, -1.0f, 1.0f);
		for (size_t i = 0; i < n; i++)
			gmax = fabsf(gv[i]) > gmax ? fabsf(gv[i]) : gmax;
		for (size_t i = 0; i < n; i++)
			d[i] = 0.5f * d[i] + 0.5f * gv[i] / gmax;
		for (size_t i = 0; i < n; i++) {
			an += (double)gv[i] * d[i];
			y[i] = v[i] + (float)e * d[i];
		}
		ts_colorvar_to_image(&m, y, gx, (size_t)H * W);
		fp = ts_objective_eval(obj, gx, NULL, NULL);
		for (size_t i = 0; i < n; i++)
			y[i] = v[i] - (float)e * d[i];
		ts_colorvar_to_image(&m, y, gx, (size_t)H * W);
		fm = ts_objective_eval(obj, gx, NULL, NULL);
		assert_true(fabs((fp - fm) / (2 * e) - an) <= 5e-3 * fabs(an));
	}
	ts_objective_destroy(obj);

	op.color_vars = 0.25;
	ts_render_optim_params(&c, &oo);
	memcpy(y, content, n * sizeof(float));
	assert_int_equal(ts_stylize(net, t, &op, &oo, 0, H, W, content, y, NULL, &p1, &done), 0);
	for (size_t i = 0; i < n; i++)
		assert_true(fabsf(y[i] - content[i]) <= 2e-6f);
	op.color_vars = 0;
	memcpy(x, content, n * sizeof(float));
	assert_int_equal(ts_stylize(net, t, &op, &oo, 0, H, W, content, x, NULL, &p0, &done), 0);
	assert_true(fabs(p0.total - p1.total) <= 1e-4 * p0.total);
	op.color_vars = 0.25;
	assert_int_equal(ts_stylize(net, t, &op, &oo, 5, H, W, content, y, NULL, &p5, &done), 0);
	assert_true(done > 0);
	assert_true(p5.total < p1.total);
	assert_true(p5.tv_chroma > 0);
	/* the image, not the variables: close to the start's range */
	for (size_t i = 0; i < n; i++)
		assert_true(y[i] > -1.0f && y[i] < 2.0f);
	ts_targets_destroy(t);
	ts_vgg_destroy(net);
	ts_config_fini(&c);
	free(content);
	free(style);
	free(x);
	free(y);
	free(gx);
	free(v);
	free(gv);
	free(d);
}

/* --gram global: the chroma TV summed over blocks (each the differences starting on
 * its pixels) is the whole picture's, value and gradient, and its part is reported. */
enum { CW = 200, CH = 150 };

static int
read_picture(void *user, int x, int y, int w, int h, float *out)
{
	const float *c = user;

	for (int k = 0; k < 3; k++)
		for (int i = 0; i < h; i++)
			memcpy(out + ((size_t)k * h + i) * w, c + ((size_t)k * CH + y + i) * CW + x,
			       (size_t)w * sizeof *out);
	return 0;
}

static void
test_coupled_chroma(void **state)
{
	size_t n = (size_t)3 * CW * CH;
	float *content = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
	float *g = malloc(n * sizeof(float)), *gb = malloc(n * sizeof(float));
	float *v = malloc(n * sizeof(float)), *gv = malloc(n * sizeof(float));
	ts_image st = { 64, 64, 8, NULL };
	ts_objective_params op;
	ts_vgg *net = ts_vgg_create_builtin(7, 16);
	ts_style_targets *t;
	ts_objective *whole;
	ts_blocks *bl;
	ts_coupled *c;
	ts_loss_parts pw, pb;
	double fw, fb = NAN, gmax = 0, emax = 0;
	int grid, halo;

	(void)state;
	assert_non_null(net);
	memset(&op, 0, sizeof op);
	op.content_weight = 1.0;
	op.style_weight = 1.0;
	op.tv_weight = 0.01;
	op.tv_chroma_weight = 3.0;
	op.normalize_style = 1;
	assert_int_equal(ts_config_parse_layers(&op.content_layers, "relu2_1", "c"), 0);
	assert_int_equal(ts_config_parse_layers(&op.style_layers, "relu1_1,relu2_1", "s"), 0);
	st.px = malloc((size_t)3 * 64 * 64 * sizeof(float));
	fill(st.px, (size_t)3 * 64 * 64, 0.0f, 1.0f);
	fill(content, n, 0.0f, 1.0f);
	fill(x, n, 0.0f, 1.0f);
	t = ts_targets_create(net, (ts_image *[]){ &st }, (double[]){ 1.0 }, 1, &op.style_layers,
	                      op.pool);
	assert_non_null(t);
	whole = ts_objective_create(net, CH, CW, &op, t, content);
	assert_non_null(whole);
	halo = ts_coupled_halo(&op, &grid);
	bl = ts_blocks_create(CW, CH, 64, halo, grid);
	assert_non_null(bl);
	assert_true(bl->n > 1);
	c = ts_coupled_create(net, &op, t, bl, NULL, read_picture, content);
	assert_non_null(c);
	fw = ts_objective_eval(whole, x, g, &pw);
	for (int pass = 0; pass < 2; pass++)
		for (int b = 0; b < bl->n; b++) {
			const ts_block *k = &bl->b[b];
			size_t off = ts_coupled_block_offset(c, b);

			for (int ch = 0; ch < 3; ch++)
				for (int y = 0; y < k->h; y++) {
					float *bp = (pass ? gv : v) + off + ((size_t)ch * k->h + y) * k->w;
					float *pp = (pass ? gb : x) + ((size_t)ch * CH + k->y + y) * CW + k->x;

					if (pass)
						memcpy(pp, bp, (size_t)k->w * sizeof *bp);
					else
						memcpy(bp, pp, (size_t)k->w * sizeof *bp);
				}
			if (!pass && b == bl->n - 1)
				fb = ts_coupled_eval(c, v, gv, &pb);
		}
	for (size_t i = 0; i < n; i++) {
		gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
		emax = fabs(g[i] - gb[i]) > emax ? fabs(g[i] - gb[i]) : emax;
	}
	assert_true(pw.tv_chroma > 0);
	assert_true(fabs(pb.tv_chroma - pw.tv_chroma) <= 1e-9 * pw.tv_chroma);
	/* the chroma term is a visible part of the total */
	assert_true(op.tv_chroma_weight * pw.tv_chroma > 0.01 * fw);
	assert_true(fabs(fb - fw) <= 1e-5 * fabs(fw));
	assert_true(emax <= 1e-4 * gmax);
	ts_coupled_destroy(c);
	ts_blocks_destroy(bl);
	ts_objective_destroy(whole);
	ts_targets_destroy(t);
	ts_vgg_destroy(net);
	free(st.px);
	free(content);
	free(x);
	free(g);
	free(gb);
	free(v);
	free(gv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_adjoint),
		cmocka_unit_test(test_tv_chroma),
		cmocka_unit_test(test_stylizer_colour),
		cmocka_unit_test(test_coupled_chroma),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
