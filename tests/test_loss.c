/* test_loss: every loss term against a naive double implementation of the formula in
 * DESIGN.md (value), and its gradient against central differences of that double
 * implementation; gradients must be ADDED (weighted) to what the buffer held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/loss.h"
#include "tessera/par.h"

/* Deterministic uniform floats in [lo, hi) (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

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

/* Naive double references. */

static double
ref_content(const double *f, const float *p, size_t n)
{
	double s = 0.0;

	for (size_t i = 0; i < n; i++)
		s += (f[i] - p[i]) * (f[i] - p[i]);
	return s / (double)n;
}

static void
ref_gram(const double *f, int c, int hw, double *g)
{
	for (int i = 0; i < c; i++)
		for (int j = 0; j < c; j++) {
			double s = 0.0;

			for (int k = 0; k < hw; k++)
				s += f[(size_t)i * hw + k] * f[(size_t)j * hw + k];
			g[(size_t)i * c + j] = s / ((double)c * hw);
		}
}

static double
ref_style(const double *f, int c, int hw, const float *t, double *gbuf)
{
	double s = 0.0;

	ref_gram(f, c, hw, gbuf);
	for (int i = 0; i < c * c; i++)
		s += (gbuf[i] - t[i]) * (gbuf[i] - t[i]);
	return s / ((double)c * c);
}

static double
ref_tv(const double *x, int h, int w)
{
	double sx = 0.0, sy = 0.0, l = 0.0;

	for (int ch = 0; ch < 3; ch++)
		for (int i = 0; i < h; i++)
			for (int j = 0; j < w; j++) {
				const double *p = x + ((size_t)ch * h + i) * w + j;

				if (j + 1 < w)
					sx += (p[1] - p[0]) * (p[1] - p[0]);
				if (i + 1 < h)
					sy += (p[w] - p[0]) * (p[w] - p[0]);
			}
	if (w > 1)
		l += sx / (3.0 * h * (w - 1));
	if (h > 1)
		l += sy / (3.0 * (h - 1) * w);
	return l;
}

/* Compare an analytic gradient (grad - base, divided by weight) with central
 * differences of a double function of xd (which the callback reads). */
typedef double (*ref_fn)(const double *x, void *ctx);

static void
check_grad(const float *grad, const float *base, float weight, double *xd, size_t n,
           ref_fn fn, void *ctx, double rtol)
{
	const double h = 1e-5;
	double gmax = 0.0, emax = 0.0;

	for (size_t i = 0; i < n; i++) {
		double x0 = xd[i], fp, fm, fd, an;

		xd[i] = x0 + h;
		fp = fn(xd, ctx);
		xd[i] = x0 - h;
		fm = fn(xd, ctx);
		xd[i] = x0;
		fd = (fp - fm) / (2.0 * h);
		an = ((double)grad[i] - base[i]) / weight;
		if (fabs(fd) > gmax)
			gmax = fabs(fd);
		if (fabs(fd - an) > emax)
			emax = fabs(fd - an);
	}
	assert_true(gmax > 0.0);
	assert_true(emax <= rtol * gmax);
}

static double *
to_double(const float *a, size_t n)
{
	double *d = malloc(n * sizeof *d);

	assert_non_null(d);
	for (size_t i = 0; i < n; i++)
		d[i] = a[i];
	return d;
}

/* content */

struct content_ctx {
	const float *p;
	size_t n;
};

static double
content_cb(const double *x, void *ctx)
{
	struct content_ctx *c = ctx;

	return ref_content(x, c->p, c->n);
}

static void
test_content(void **state)
{
	enum { N = 37 };
	float f[N], p[N], grad[N], base[N];
	struct content_ctx ctx = { p, N };
	double *fd, ref, v;

	(void)state;
	fill(f, N, -2.0f, 2.0f);
	fill(p, N, -2.0f, 2.0f);
	fill(base, N, -1.0f, 1.0f);
	memcpy(grad, base, sizeof grad);
	fd = to_double(f, N);
	ref = ref_content(fd, p, N);

	v = ts_loss_content(f, p, N, 0.7f, grad);
	assert_true(fabs(v - ref) <= 1e-12 * ref);
	check_grad(grad, base, 0.7f, fd, N, content_cb, &ctx, 1e-5);
	/* NULL grad: same value; identical inputs: zero loss. */
	assert_true(ts_loss_content(f, p, N, 0.7f, NULL) == v);
	assert_true(ts_loss_content(f, f, N, 1.0f, NULL) == 0.0);
	free(fd);
}

/* A mean over many elements keeps double accuracy: 3M equal differences. */
static void
test_content_large(void **state)
{
	size_t n = 3u << 20;
	float *f = malloc(n * sizeof *f), *p = calloc(n, sizeof *p);
	double v;

	(void)state;
	assert_non_null(f);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		f[i] = (i & 1) ? 0.1f : -0.1f;
	v = ts_loss_content(f, p, n, 1.0f, NULL);
	assert_true(fabs(v - (double)0.1f * 0.1f) <= 1e-12);
	free(f);
	free(p);
}

/* gram */

/* One Gram against the double reference; symmetric; the same bits for 1..3 threads
 * (HW large enough for several blocks along hw, or C for several row panels). */
static void
gram_case(int C, int HW)
{
	float *f = malloc((size_t)C * HW * sizeof *f), *g = malloc((size_t)C * C * sizeof *g);
	float *g1 = malloc((size_t)C * C * sizeof *g1);
	float *ws = malloc(ts_gram_ws_floats(C, HW) * sizeof *ws);
	double *gr = malloc((size_t)C * C * sizeof *gr), *fd;

	assert_true(f && g && g1 && ws && gr);
	fill(f, (size_t)C * HW, -1.0f, 3.0f);
	fd = to_double(f, (size_t)C * HW);
	ref_gram(fd, C, HW, gr);
	for (int t = 1; t <= 3; t++) {
		ts_par_set_threads(t);
		ts_gram(f, C, HW, t == 1 ? g1 : g, ws);
		if (t > 1)
			assert_memory_equal(g, g1, (size_t)C * C * sizeof *g);
	}
	ts_par_set_threads(0);
	for (int i = 0; i < C * C; i++)
		assert_true(fabs(g1[i] - gr[i]) <= 1e-5 * (1.0 + fabs(gr[i])));
	for (int i = 0; i < C; i++)
		for (int j = 0; j < C; j++)
			assert_true(g1[i * C + j] == g1[j * C + i]);
	free(fd);
	free(f);
	free(g);
	free(g1);
	free(ws);
	free(gr);
}

static void
test_gram(void **state)
{
	(void)state;
	assert_true(ts_gram_ws_floats(5, 9000) >= 4 * 25); /* really several blocks */
	gram_case(7, 29);
	gram_case(5, 9000);
	gram_case(33, 70001);
	gram_case(200, 300); /* row panels (not multiples of 16 rows) */
	gram_case(512, 64);
	gram_case(192, 4100); /* wide channels, long rows: blocks along hw again */
	/* the kernel of gram.c where it is built in (c from 16 to 128): several blocks,
	 * columns not a multiple of 16, channels not a multiple of 4 */
	gram_case(64, 5000);
	gram_case(20, 4099);
	gram_case(128, 2048);
}

/* style */

struct style_ctx {
	int c, hw;
	const float *t;
	double *gbuf;
};

static double
style_cb(const double *x, void *ctx)
{
	struct style_ctx *s = ctx;

	return ref_style(x, s->c, s->hw, s->t, s->gbuf);
}

static void
style_case(int c, int hw, int symmetric_target)
{
	size_t nf = (size_t)c * hw, cc = (size_t)c * c;
	float *f = malloc(nf * sizeof *f), *grad = malloc(nf * sizeof *grad);
	float *base = malloc(nf * sizeof *base), *t = malloc(cc * sizeof *t);
	float *ws = malloc(ts_loss_style_ws_floats(c, hw) * sizeof *ws);
	float *f2 = malloc(nf * sizeof *f2), *tws = malloc(ts_gram_ws_floats(c, hw) * sizeof *tws);
	double *gbuf = malloc(cc * sizeof *gbuf), *fd, ref, v;
	struct style_ctx ctx = { c, hw, t, gbuf };

	assert_true(f && grad && base && t && ws && f2 && gbuf);
	fill(f, nf, 0.0f, 2.0f); /* post-ReLU-like features */
	fill(base, nf, -1.0f, 1.0f);
	if (symmetric_target) { /* a real target: the Gram of other features */
		fill(f2, nf, 0.0f, 1.5f);
		ts_gram(f2, c, hw, t, tws);
	} else {
		fill(t, cc, 0.0f, 2.0f);
	}
	memcpy(grad, base, nf * sizeof *grad);
	fd = to_double(f, nf);
	ref = ref_style(fd, c, hw, t, gbuf);

	v = ts_loss_style(f, c, hw, t, 2.5f, ws, grad);
	assert_true(fabs(v - ref) <= 1e-5 * ref);
	check_grad(grad, base, 2.5f, fd, nf, style_cb, &ctx, 1e-4);
	assert_true(fabs(ts_loss_style(f, c, hw, t, 2.5f, ws, NULL) - v) <= 1e-12 * v);
	free(fd);
	free(f);
	free(grad);
	free(base);
	free(t);
	free(ws);
	free(f2);
	free(tws);
	free(gbuf);
}

static void
test_style_random_target(void **state)
{
	(void)state;
	style_case(6, 11, 0);
	style_case(1, 5, 0);
}

static void
test_style_gram_target(void **state)
{
	(void)state;
	style_case(9, 23, 1);
}

/* The style gradient on shapes the kernels of gram.c take (channels a multiple of 8,
 * columns not a multiple of its panels) and one they do not: against the gradient
 * in double, dL/dF = weight (D + D^T) F / (c hw) with D = 2 (G - T) / c^2, and the
 * same bits for 1..3 threads. */
static void
style_grad_case(int c, int hw)
{
	size_t nf = (size_t)c * hw, cc = (size_t)c * c;
	float *f = malloc(nf * sizeof *f), *g1 = malloc(nf * sizeof *g1), *g = malloc(nf * sizeof *g);
	float *t = malloc(cc * sizeof *t), *ws = malloc(ts_loss_style_ws_floats(c, hw) * sizeof *ws);
	double *gr = malloc(cc * sizeof *gr), *fd, gmax = 0.0, emax = 0.0;
	const float weight = 3.0f;

	assert_true(f && g1 && g && t && ws && gr);
	fill(f, nf, 0.0f, 2.0f);
	fill(t, cc, 0.0f, 1.0f);
	fd = to_double(f, nf);
	ref_gram(fd, c, hw, gr);
	for (int t_ = 1; t_ <= 3; t_++) {
		float *out = t_ == 1 ? g1 : g;

		ts_par_set_threads(t_);
		memset(out, 0, nf * sizeof *out);
		ts_loss_style(f, c, hw, t, weight, ws, out);
		if (t_ > 1)
			assert_memory_equal(g, g1, nf * sizeof *g);
	}
	ts_par_set_threads(0);
	for (int i = 0; i < c; i++) {
		for (int k = 0; k < hw; k++) {
			double s = 0.0;

			for (int j = 0; j < c; j++) {
				double dij = 2.0 * (gr[(size_t)i * c + j] - t[(size_t)i * c + j]) / (double)cc;
				double dji = 2.0 * (gr[(size_t)j * c + i] - t[(size_t)j * c + i]) / (double)cc;

				s += (dij + dji) * fd[(size_t)j * hw + k];
			}
			s *= weight / ((double)c * hw);
			gmax = fabs(s) > gmax ? fabs(s) : gmax;
			emax = fabs(s - g1[(size_t)i * hw + k]) > emax ? fabs(s - g1[(size_t)i * hw + k]) : emax;
		}
	}
	assert_true(gmax > 0.0);
	assert_true(emax <= 1e-5 * gmax);
	free(fd);
	free(f);
	free(g1);
	free(g);
	free(t);
	free(ws);
	free(gr);
}

static void
test_style_grad_shapes(void **state)
{
	(void)state;
	style_grad_case(64, 5003);
	style_grad_case(128, 1000);
	/* many column blocks, each packed in pieces (the last one short); rows a power of
	 * two apart, as in a 512 tile */
	style_grad_case(16, 65573);
	style_grad_case(32, 16384);
	style_grad_case(24, 47);
	style_grad_case(36, 300); /* not a multiple of 8: BLAS */
}

/* tv */

struct tv_ctx {
	int h, w;
};

static double
tv_cb(const double *x, void *ctx)
{
	struct tv_ctx *t = ctx;

	return ref_tv(x, t->h, t->w);
}

static void
tv_case(int h, int w)
{
	size_t n = 3u * (size_t)h * w;
	float *x = malloc(n * sizeof *x), *grad = malloc(n * sizeof *grad);
	float *base = malloc(n * sizeof *base);
	struct tv_ctx ctx = { h, w };
	double *xd, ref, v;

	assert_true(x && grad && base);
	fill(x, n, 0.0f, 1.0f);
	fill(base, n, -1.0f, 1.0f);
	memcpy(grad, base, n * sizeof *grad);
	xd = to_double(x, n);
	ref = ref_tv(xd, h, w);

	v = ts_loss_tv(x, h, w, 0.3f, grad);
	assert_true(fabs(v - ref) <= 1e-6 * ref);
	check_grad(grad, base, 0.3f, xd, n, tv_cb, &ctx, 1e-5);
	assert_true(ts_loss_tv(x, h, w, 0.3f, NULL) == v);
	free(xd);
	free(x);
	free(grad);
	free(base);
}

/* ts_loss_style_masked: with the ReLU asked for, the gradient is ts_loss_style's with
 * the mask of f applied, to the bit, whether the kernel did it (few channels, AVX-512)
 * or left it to the caller (it says which); without the ask, nothing is masked. */
static void
masked_case(int c, int hw)
{
	size_t nf = (size_t)c * hw, cc = (size_t)c * c;
	float *f = malloc(nf * sizeof *f), *g1 = malloc(nf * sizeof *g1);
	float *g2 = malloc(nf * sizeof *g2), *t = malloc(cc * sizeof *t);
	float *ws = malloc(ts_loss_style_ws_floats(c, hw) * sizeof *ws);
	double v1, v2;
	int relu = 1, zeros = 0;

	assert_true(f && g1 && g2 && t && ws);
	fill(f, nf, -1.0f, 2.0f);
	for (size_t i = 0; i < nf; i++) /* a ReLU's output: a third of it zero */
		f[i] = f[i] > 0.0f ? f[i] : 0.0f;
	fill(t, cc, 0.0f, 2.0f);
	fill(g1, nf, -1.0f, 1.0f);
	memcpy(g2, g1, nf * sizeof *g1);
	v1 = ts_loss_style(f, c, hw, t, 1.5f, ws, g1);
	v2 = ts_loss_style_masked(f, c, hw, t, 1.5f, ws, g2, &relu);
	assert_true(v1 == v2);
	for (size_t i = 0; i < nf; i++) {
		zeros += f[i] <= 0.0f;
		if (!relu || f[i] > 0.0f)
			assert_true(g2[i] == g1[i]);
		else
			assert_true(g2[i] == 0.0f);
	}
	assert_true(zeros > (int)(nf / 5));
#ifdef __AVX512F__
	if (c <= 128 && c % 8 == 0) /* the kernel's range (gram.c) */
		assert_int_equal(relu, 1);
#endif
	relu = 0;
	memcpy(g2, g1, nf * sizeof *g1);
	ts_loss_style_masked(f, c, hw, t, 1.5f, ws, g2, &relu);
	assert_int_equal(relu, 0);
	free(f);
	free(g1);
	free(g2);
	free(t);
	free(ws);
}

static void
test_style_masked(void **state)
{
	(void)state;
	masked_case(64, 5000); /* gram.c's kernel where built in */
	masked_case(24, 777);
	masked_case(256, 300); /* sgemm: the caller masks */
}

static void
test_tv(void **state)
{
	float x[3], grad[3] = { 1.0f, 2.0f, 3.0f };

	(void)state;
	tv_case(5, 7);
	tv_case(1, 9); /* no vertical term */
	tv_case(8, 1); /* no horizontal term */
	/* One pixel: no differences at all, gradient untouched. */
	fill(x, 3, 0.0f, 1.0f);
	assert_true(ts_loss_tv(x, 1, 1, 1.0f, grad) == 0.0);
	assert_true(grad[0] == 1.0f && grad[1] == 2.0f && grad[2] == 3.0f);
}

/* A constant image has zero TV; a horizontal ramp of slope s has s^2 in one term. */
static void
test_tv_known_values(void **state)
{
	enum { H = 4, W = 6 };
	float x[3 * H * W];

	(void)state;
	for (int i = 0; i < 3 * H * W; i++)
		x[i] = 0.25f;
	assert_true(ts_loss_tv(x, H, W, 1.0f, NULL) == 0.0);
	for (int i = 0; i < 3 * H * W; i++)
		x[i] = 0.125f * (float)(i % W);
	assert_true(fabs(ts_loss_tv(x, H, W, 1.0f, NULL) - 0.125 * 0.125) <= 1e-12);
}

/* Content and TV split into blocks (here many): the same bits, value and gradient,
 * for 1, 2 and 3 threads; the gradient equals a plain serial sweep's. */
static void
test_blocks_thread_invariant(void **state)
{
	enum { H = 301, W = 517 };
	size_t n = (size_t)3 * H * W;
	float *x = malloc(n * sizeof *x), *p = malloc(n * sizeof *p);
	float *g1 = malloc(n * sizeof *g1), *g = malloc(n * sizeof *g);
	float *gs = calloc(n, sizeof *gs);
	double v1 = 0, u1 = 0;

	(void)state;
	assert_true(x && p && g1 && g && gs);
	fill(x, n, 0.0f, 1.0f);
	fill(p, n, 0.0f, 1.0f);
	for (int t = 1; t <= 3; t++) {
		float *gt = t == 1 ? g1 : g;
		double v, u;

		ts_par_set_threads(t);
		memset(gt, 0, n * sizeof *gt);
		v = ts_loss_tv(x, H, W, 0.5f, gt);
		u = ts_loss_content(x, p, n, 2.0f, gt);
		if (t == 1) {
			v1 = v;
			u1 = u;
		} else {
			assert_true(v == v1 && u == u1);
			assert_memory_equal(g, g1, n * sizeof *g);
		}
	}
	ts_par_set_threads(0);
	/* the serial sweep: every difference adds to both of its pixels */
	{
		float sx = (float)(2.0 * 0.5 / (3.0 * H * (W - 1)));
		float sy = (float)(2.0 * 0.5 / (3.0 * (H - 1) * W));
		float sc = (float)(2.0 * 2.0 / (double)n);

		for (int c = 0; c < 3; c++)
			for (int i = 0; i < H; i++)
				for (int j = 0; j + 1 < W; j++) {
					size_t a = ((size_t)c * H + i) * W + j;
					float d = x[a + 1] - x[a];

					gs[a + 1] += sx * d;
					gs[a] -= sx * d;
				}
		for (int c = 0; c < 3; c++)
			for (int i = 0; i + 1 < H; i++)
				for (int j = 0; j < W; j++) {
					size_t a = ((size_t)c * H + i) * W + j;
					float d = x[a + W] - x[a];

					gs[a + W] += sy * d;
					gs[a] -= sy * d;
				}
		for (size_t i = 0; i < n; i++)
			gs[i] += sc * (x[i] - p[i]);
		assert_memory_equal(gs, g1, n * sizeof *gs);
	}
	free(x);
	free(p);
	free(g1);
	free(g);
	free(gs);
}

/* ts_loss_seconds grows with every loss call, by no more than the call's wall time. */
static void
test_seconds_counted(void **state)
{
	enum { C = 64, HW = 64 * 64 };
	float *f = malloc(sizeof(float) * C * HW), *g = calloc((size_t)C * HW, sizeof(float));
	float *t = calloc((size_t)C * C, sizeof(float));
	float *ws = malloc(sizeof(float) * ts_loss_style_ws_floats(C, HW));
	double s0, w0, ds, dw;

	(void)state;
	assert_true(f && g && t && ws);
	for (int i = 0; i < C * HW; i++)
		f[i] = (float)(i % 13) / 13.0f;
	s0 = ts_loss_seconds();
	w0 = ts_now();
	for (int r = 0; r < 4; r++) {
		ts_loss_style(f, C, HW, t, 1.0f, ws, g);
		ts_loss_content(f, g, (size_t)C * HW, 1.0f, g);
		ts_loss_tv(f, 64, 64, 1.0f, g);
	}
	dw = ts_now() - w0;
	ds = ts_loss_seconds() - s0;
	assert_true(ds > 0.0);
	assert_true(ds <= dw);
	free(f);
	free(g);
	free(t);
	free(ws);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content),
		cmocka_unit_test(test_content_large),
		cmocka_unit_test(test_gram),
		cmocka_unit_test(test_style_random_target),
		cmocka_unit_test(test_style_gram_target),
		cmocka_unit_test(test_style_grad_shapes),
		cmocka_unit_test(test_style_masked),
		cmocka_unit_test(test_tv),
		cmocka_unit_test(test_tv_known_values),
		cmocka_unit_test(test_blocks_thread_invariant),
		cmocka_unit_test(test_seconds_counted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
