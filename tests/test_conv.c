/* test_conv: the 3x3 convolution against a naive reference (odd shapes, bias, several
 * row chunks; zero, reflect and replicate padding), and every backward pass (conv, ReLU, average and max pooling) against
 * central differences of the scalar loss sum(dy * y) computed in double. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/conv.h"
#include "tessera/par.h"

/* Deterministic test data: uniform in [lo, hi). */
static uint64_t rng_state = 12345;

static double
urand(double lo, double hi)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return lo + (hi - lo) * (double)(z >> 11) / 9007199254740992.0;
}

static float *
rand_buf(size_t n, double lo, double hi)
{
	float *p = malloc(n * sizeof *p);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (float)urand(lo, hi);
	return p;
}

/* Where padded index q of a side of n pixels reads under pad, or -1 for a zero:
 * written out here from the definition (PyTorch's "reflect" mirrors without the edge,
 * "replicate" repeats it; a side of one pixel can only be repeated). */
static int
ref_src(int q, int n, ts_pad_mode pad)
{
	if (q >= 0 && q < n)
		return q;
	if (pad == TS_PAD_ZERO)
		return -1;
	if (pad == TS_PAD_REFLECT && n > 1)
		return q < 0 ? -q : 2 * (n - 1) - q;
	return q < 0 ? 0 : n - 1;
}

/* Naive reference: y [oc, h, w] = conv3x3(x [ic, h, w], wt [oc, ic, 3, 3]) + bias, the
 * image padded by pad. */
static void
conv_ref(const float *x, int ic, int h, int w, const float *wt, const float *bias, int oc,
         double *y, ts_pad_mode pad)
{
	for (int o = 0; o < oc; o++)
		for (int i = 0; i < h; i++)
			for (int j = 0; j < w; j++) {
				double s = bias ? bias[o] : 0.0;

				for (int c = 0; c < ic; c++)
					for (int ky = 0; ky < 3; ky++)
						for (int kx = 0; kx < 3; kx++) {
							int yy = ref_src(i + ky - 1, h, pad);
							int xx = ref_src(j + kx - 1, w, pad);

							if (yy < 0 || xx < 0)
								continue;
							s += (double)wt[((size_t)(o * ic + c) * 3 + ky) * 3 + kx] *
							     x[((size_t)c * h + yy) * w + xx];
						}
				y[((size_t)o * h + i) * w + j] = s;
			}
}

/* Naive reference of the input gradient: dx [ic, h, w] for dy [oc, h, w] (each padded
 * position's gradient on the pixel it copies). */
static void
conv_back_ref(const float *dy, int oc, int h, int w, const float *wt, int ic, double *dx,
              ts_pad_mode pad)
{
	memset(dx, 0, (size_t)ic * h * w * sizeof *dx);
	for (int o = 0; o < oc; o++)
		for (int i = 0; i < h; i++)
			for (int j = 0; j < w; j++) {
				double g = dy[((size_t)o * h + i) * w + j];

				for (int c = 0; c < ic; c++)
					for (int ky = 0; ky < 3; ky++)
						for (int kx = 0; kx < 3; kx++) {
							int yy = ref_src(i + ky - 1, h, pad);
							int xx = ref_src(j + kx - 1, w, pad);

							if (yy < 0 || xx < 0)
								continue;
							dx[((size_t)c * h + yy) * w + xx] +=
								g * wt[((size_t)(o * ic + c) * 3 + ky) * 3 + kx];
						}
			}
}

/* max |a - b| / (max |b| + tiny) */
static double
rel_err(const float *a, const double *b, size_t n)
{
	double e = 0, m = 1e-30;

	for (size_t i = 0; i < n; i++) {
		double d = fabs(a[i] - b[i]);

		e = d > e ? d : e;
		m = fabs(b[i]) > m ? fabs(b[i]) : m;
	}
	return e / m;
}

static void
check_forward(int ic, int oc, int h, int w, int with_bias)
{
	size_t nws = ts_conv_ws_floats(ic, oc, h, w);
	float *x = rand_buf((size_t)ic * h * w, -1, 1);
	float *wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5);
	float *b = with_bias ? rand_buf((size_t)oc, -1, 1) : NULL;
	float *y = rand_buf((size_t)oc * h * w, 100, 200); /* garbage: must be overwritten */
	float *ws = rand_buf(nws, 100, 200);
	double *ref = malloc((size_t)oc * h * w * sizeof *ref);

	assert_non_null(ref);
	ts_conv3x3_forward(x, ic, h, w, wt, b, oc, y, ws, nws);
	conv_ref(x, ic, h, w, wt, b, oc, ref, TS_PAD_ZERO);
	assert_true(rel_err(y, ref, (size_t)oc * h * w) < 1e-5);
	free(x);
	free(wt);
	free(b);
	free(y);
	free(ws);
	free(ref);
}

static void
test_forward_small(void **state)
{
	(void)state;
	check_forward(5, 7, 9, 11, 1);
	check_forward(3, 4, 13, 6, 0);
	check_forward(1, 1, 1, 1, 1);
	check_forward(2, 3, 1, 5, 1);
	check_forward(4, 2, 6, 1, 1);
	check_forward(7, 5, 2, 2, 0);
}

/* Shapes whose im2col would exceed the workspace cap: several row chunks. */
static void
test_chunks(void **state)
{
	int ic = 64, oc = 3, h = 301, w = 97; /* many row chunks, the last one partial */
	size_t full = (size_t)9 * ic * h * w, nws = ts_conv_ws_floats(ic, oc, h, w);
	float *dy, *dx, *wt, *ws;
	double *ref;

	(void)state;
	assert_true(nws * 2 < full); /* at least three chunks */
	assert_true(nws >= (size_t)9 * ic * w); /* at least one row */
	check_forward(ic, oc, h, w, 1);

	dy = rand_buf((size_t)oc * h * w, -1, 1);
	wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5);
	dx = malloc((size_t)ic * h * w * sizeof *dx);
	ws = malloc(nws * sizeof *ws);
	ref = malloc((size_t)ic * h * w * sizeof *ref);
	assert_non_null(dx);
	assert_non_null(ws);
	assert_non_null(ref);
	ts_conv3x3_backward(dy, oc, h, w, wt, ic, dx, ws, nws);
	conv_back_ref(dy, oc, h, w, wt, ic, ref, TS_PAD_ZERO);
	assert_true(rel_err(dx, ref, (size_t)ic * h * w) < 1e-5);
	free(dy);
	free(wt);
	free(dx);
	free(ws);
	free(ref);
}

/* sum(dy * conv(x)) in double. */
static double
conv_loss(const float *x, int ic, int h, int w, const float *wt, const float *b, int oc,
          const float *dy, float *y, float *ws, size_t nws)
{
	double s = 0;

	ts_conv3x3_forward(x, ic, h, w, wt, b, oc, y, ws, nws);
	for (size_t i = 0; i < (size_t)oc * h * w; i++)
		s += (double)dy[i] * y[i];
	return s;
}

static void
check_conv_backward(int ic, int oc, int h, int w)
{
	size_t n = (size_t)ic * h * w, nws = ts_conv_ws_floats(ic, oc, h, w);
	float *x = rand_buf(n, -1, 1), *wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5);
	float *b = rand_buf((size_t)oc, -1, 1), *dy = rand_buf((size_t)oc * h * w, -1, 1);
	float *y = malloc((size_t)oc * h * w * sizeof *y), *dx = rand_buf(n, 5, 6);
	float *ws = malloc(nws * sizeof *ws);
	double *ref;
	const float eps = 0.0625f; /* the loss is linear in x: only rounding matters */

	assert_non_null(y);
	assert_non_null(ws);
	assert_non_null(ref = malloc(n * sizeof *ref));
	ts_conv3x3_backward(dy, oc, h, w, wt, ic, dx, ws, nws);
	for (size_t i = 0; i < n; i++) {
		float keep = x[i];
		double lp, lm;

		x[i] = keep + eps;
		lp = conv_loss(x, ic, h, w, wt, b, oc, dy, y, ws, nws);
		x[i] = keep - eps;
		lm = conv_loss(x, ic, h, w, wt, b, oc, dy, y, ws, nws);
		x[i] = keep;
		ref[i] = (lp - lm) / (2.0 * eps);
	}
	assert_true(rel_err(dx, ref, n) < 1e-3);
	free(x);
	free(wt);
	free(b);
	free(dy);
	free(y);
	free(dx);
	free(ws);
	free(ref);
}

static void
test_conv_backward(void **state)
{
	(void)state;
	check_conv_backward(3, 5, 7, 9);
	check_conv_backward(4, 2, 5, 1);
	check_conv_backward(2, 3, 1, 6);
	check_conv_backward(1, 1, 1, 1);
}

static void
test_relu(void **state)
{
	size_t n = 257;
	float *x = rand_buf(n, -1, 1), *y = malloc(n * sizeof *y), *dy = rand_buf(n, -1, 1);
	float *g = malloc(n * sizeof *g);
	const float eps = 1e-3f;

	(void)state;
	assert_non_null(y);
	assert_non_null(g);
	for (size_t i = 0; i < n; i++) /* keep away from the kink */
		if (fabsf(x[i]) < 0.01f)
			x[i] = 0.5f;
	memcpy(y, x, n * sizeof *y);
	ts_relu_forward(y, n);
	for (size_t i = 0; i < n; i++)
		assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
	memcpy(g, dy, n * sizeof *g);
	ts_relu_backward(y, g, n);
	for (size_t i = 0; i < n; i++) {
		/* d/dx_i sum(dy * relu(x)), central difference */
		double p = x[i] + eps > 0 ? x[i] + eps : 0, m = x[i] - eps > 0 ? x[i] - eps : 0;
		double num = dy[i] * (p - m) / (2.0 * eps);

		assert_true(fabs(g[i] - num) < 1e-3);
	}
	free(x);
	free(y);
	free(dy);
	free(g);
}

/* sum(dy * pool(x)) in double. */
static double
pool_loss(const float *x, int c, int h, int w, const float *dy, float *y, ts_pool_mode mode)
{
	double s = 0;

	ts_pool_forward(x, c, h, w, y, mode);
	for (size_t i = 0; i < (size_t)c * (h / 2) * (w / 2); i++)
		s += (double)dy[i] * y[i];
	return s;
}

static void
check_pool(int c, int h, int w, ts_pool_mode mode)
{
	size_t n = (size_t)c * h * w, no = (size_t)c * (h / 2) * (w / 2);
	float *x = malloc(n * sizeof *x), *y = malloc(no * sizeof *y);
	float *dy = rand_buf(no, -1, 1), *dx = rand_buf(n, 5, 6);
	const float eps = 1e-3f;

	assert_non_null(x);
	assert_non_null(y);
	/* distinct values at least 0.01 apart (no ties within 2 eps): a shuffled ramp */
	for (size_t i = 0; i < n; i++)
		x[i] = 0.01f * (float)i - 1.0f;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)urand(0, (double)(i + 1));
		float t = x[i];

		x[i] = x[j];
		x[j] = t;
	}
	ts_pool_backward(x, dy, c, h, w, dx, mode);
	for (size_t i = 0; i < n; i++) {
		float keep = x[i];
		double lp, lm, num;

		x[i] = keep + eps;
		lp = pool_loss(x, c, h, w, dy, y, mode);
		x[i] = keep - eps;
		lm = pool_loss(x, c, h, w, dy, y, mode);
		x[i] = keep;
		num = (lp - lm) / (2.0 * eps);
		assert_true(fabs(dx[i] - num) < 2e-3);
	}
	free(x);
	free(y);
	free(dy);
	free(dx);
}

static void
test_pool(void **state)
{
	(void)state;
	check_pool(3, 6, 8, TS_POOL_AVG);
	check_pool(3, 7, 9, TS_POOL_AVG); /* odd: the last row/column is dropped */
	check_pool(3, 6, 8, TS_POOL_MAX);
	check_pool(2, 9, 5, TS_POOL_MAX);
	check_pool(1, 1, 3, TS_POOL_MAX); /* no output at all: all zero */
}

/* Forward values, and ties in max pooling go to the first maximum. */
static void
test_pool_values(void **state)
{
	const float x[2 * 3 * 5] = {
		1, 2, 3, 3, 9,
		4, 0, 3, 3, 9,
		9, 9, 9, 9, 9,
		-1, -2, -3, -4, 0,
		-5, -6, -7, -8, 0,
		0, 0, 0, 0, 0,
	};
	const float dy[2 * 1 * 2] = { 1, 2, 3, 4 };
	float y[4], dx[30];

	(void)state;
	ts_pool_forward(x, 2, 3, 5, y, TS_POOL_AVG);
	assert_true(y[0] == 1.75f && y[1] == 3.0f && y[2] == -3.5f && y[3] == -5.5f);
	ts_pool_forward(x, 2, 3, 5, y, TS_POOL_MAX);
	assert_true(y[0] == 4 && y[1] == 3 && y[2] == -1 && y[3] == -3);
	ts_pool_backward(x, dy, 2, 3, 5, dx, TS_POOL_MAX);
	for (int i = 0; i < 30; i++) {
		float want = i == 5 ? 1 : i == 2 ? 2 : i == 15 ? 3 : i == 17 ? 4 : 0;

		assert_true(dx[i] == want);
	}
	ts_pool_backward(NULL, dy, 2, 3, 5, dx, TS_POOL_AVG);
	assert_true(dx[0] == 0.25f && dx[6] == 0.25f && dx[8] == 0.5f && dx[4] == 0.0f);
	assert_true(dx[10] == 0.0f && dx[29] == 0.0f && dx[22] == 1.0f);
}

/* A Winograd op with its ReLU and the pool after it in one (ts_conv_op_run_pool):
 * the same pooled values and bytes as the op's output pooled by ts_pool_forward_idx;
 * other algorithms say they cannot.  Both modes, odd sizes, both tile sizes. */
static void
test_run_pool(void **state)
{
	static const int shapes[][4] = { { 16, 24, 12, 14 }, { 20, 16, 9, 11 }, { 16, 32, 33, 7 } };
	static const ts_conv_algo algos[] = { TS_CONV_WINO4, TS_CONV_WINO2, TS_CONV_IM2COL };

	(void)state;
	for (size_t a = 0; a < 3; a++) {
		for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
			int ic = shapes[k][0], oc = shapes[k][1], h = shapes[k][2], w = shapes[k][3];
			size_t ny = (size_t)oc * (h / 2) * (w / 2);
			float *x = rand_buf((size_t)ic * h * w, -1, 1);
			float *wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5), *b = rand_buf(oc, -1, 1);
			float *wm = malloc(ts_conv_op_weight_floats(ic, oc, algos[a]) * sizeof(float));
			float *y = malloc((size_t)oc * h * w * sizeof(float));
			float *p1 = malloc((ny + 1) * sizeof(float)), *p2 = malloc((ny + 1) * sizeof(float));
			unsigned char *i1 = malloc(ny + 1), *i2 = malloc(ny + 1);
			ts_conv_op op;
			size_t nws;
			float *ws;

			assert_true(wm && y && p1 && p2 && i1 && i2);
			ts_conv_op_prepare(&op, wt, b, ic, oc, 0, algos[a], wm);
			nws = ts_conv_op_ws_floats(&op, h, w);
			assert_non_null(ws = malloc((nws + 1) * sizeof *ws));
			ts_conv_op_run(&op, x, NULL, h, w, y, 1, ws, nws);
			for (int mode = TS_POOL_AVG; mode <= TS_POOL_MAX; mode++) {
				int done;

				ts_pool_forward_idx(y, oc, h, w, p1, i1, (ts_pool_mode)mode);
				memset(p2, 0xff, ny * sizeof *p2);
				memset(i2, 0xff, ny);
				done = ts_conv_op_run_pool(&op, x, h, w, p2, i2, (ts_pool_mode)mode, ws,
				                           nws);
				assert_int_equal(done, algos[a] != TS_CONV_IM2COL);
				if (done) {
					assert_memory_equal(p1, p2, ny * sizeof *p1);
					assert_memory_equal(i1, i2, ny);
				}
			}
			free(x);
			free(wt);
			free(b);
			free(wm);
			free(y);
			free(p1);
			free(p2);
			free(i1);
			free(i2);
			free(ws);
		}
	}
}

/* A Winograd op run on a pool's gradient it forms itself gives the same bits as the
 * gradient formed by ts_pool_backward_idx and then run; ops of other algorithms say
 * they cannot.  Both pooling modes, with and without the ReLU, odd sizes. */
static void
test_run_pooled(void **state)
{
	static const int shapes[][4] = { { 24, 16, 12, 14 }, { 16, 20, 9, 11 }, { 32, 16, 33, 7 } };
	static const ts_conv_algo algos[] = { TS_CONV_WINO4, TS_CONV_WINO2, TS_CONV_IM2COL };

	(void)state;
	for (size_t a = 0; a < 3; a++) {
		for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
			int ic = shapes[k][0], oc = shapes[k][1], h = shapes[k][2], w = shapes[k][3];
			size_t nin = (size_t)oc * h * w, nout = (size_t)ic * h * w;
			size_t ny = (size_t)oc * (h / 2) * (w / 2);
			float *x = rand_buf(nin, -1, 1), *pooled = malloc((ny + 1) * sizeof(float));
			float *dy = rand_buf(ny + 1, -1, 1), *dx = malloc(nin * sizeof(float));
			float *wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5);
			float *wm = malloc(ts_conv_op_weight_floats(oc, ic, algos[a]) * sizeof(float));
			float *y1 = malloc(nout * sizeof(float)), *y2 = malloc(nout * sizeof(float));
			unsigned char *idx = malloc(ny + 1);
			ts_conv_op op;
			size_t nws;
			float *ws;

			assert_true(pooled && dx && wm && y1 && y2 && idx);
			ts_conv_op_prepare(&op, wt, NULL, ic, oc, 1, algos[a], wm); /* oc -> ic */
			nws = ts_conv_op_ws_floats(&op, h, w);
			assert_non_null(ws = malloc((nws + 1) * sizeof *ws));
			for (int mode = TS_POOL_AVG; mode <= TS_POOL_MAX; mode++) {
				ts_pool_forward_idx(x, oc, h, w, pooled, idx, (ts_pool_mode)mode);
				for (int relu = 0; relu < 2; relu++) {
					ts_pooled_grad pg = { dy, idx, (ts_pool_mode)mode, relu };
					int done;

					ts_pool_backward_idx(idx, dy, oc, h, w, dx, (ts_pool_mode)mode, relu);
					ts_conv_op_run(&op, dx, NULL, h, w, y1, 0, ws, nws);
					done = ts_conv_op_run_pooled(&op, &pg, h, w, y2, 0, ws, nws);
					assert_int_equal(done, algos[a] != TS_CONV_IM2COL);
					if (done)
						assert_memory_equal(y1, y2, nout * sizeof *y1);
				}
			}
			free(x);
			free(pooled);
			free(dy);
			free(dx);
			free(wt);
			free(wm);
			free(y1);
			free(y2);
			free(idx);
			free(ws);
		}
	}
}

/* An op whose workspace was sized with 1 thread, run with 3: the im2col and direct
 * ops then take their items one by one, with the same bits. */
static void
test_ws_fewer_threads(void **state)
{
	static const ts_conv_algo algos[] = { TS_CONV_IM2COL, TS_CONV_DIRECT };
	int ic = 3, oc = 20, h = 21, w = 37;
	size_t nin = (size_t)oc * h * w, nout = (size_t)ic * h * w;

	(void)state;
	for (size_t a = 0; a < 2; a++) {
		float *x = rand_buf(nin, -1, 1), *mask = rand_buf(nin, -1, 1);
		float *wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5);
		float *wm = malloc(ts_conv_op_weight_floats(oc, ic, algos[a]) * sizeof *wm);
		float *y1 = malloc(nout * sizeof *y1), *y3 = malloc(nout * sizeof *y3), *ws;
		ts_conv_op op;
		size_t nws;

		assert_true(wm && y1 && y3);
		ts_par_set_threads(1);
		ts_conv_op_prepare(&op, wt, NULL, ic, oc, 1, algos[a], wm); /* adjoint: 20 -> 3 */
		nws = ts_conv_op_ws_floats(&op, h, w);
		assert_non_null(ws = malloc((nws + 1) * sizeof *ws));
		ts_conv_op_run(&op, x, mask, h, w, y1, 0, ws, nws);
		ts_par_set_threads(3);
		ts_conv_op_run(&op, x, mask, h, w, y3, 0, ws, nws);
		assert_memory_equal(y1, y3, nout * sizeof *y1);
		free(x);
		free(mask);
		free(wt);
		free(wm);
		free(y1);
		free(y3);
		free(ws);
	}
	ts_par_set_threads(0);
}

/* Pooling by index: the same bits as ts_pool_forward and ts_pool_backward (then the
 * ReLU mask, with relu), both modes, on values with many ties, zeros and negatives,
 * odd sizes included. */
static void
test_pool_index(void **state)
{
	static const int sizes[][3] = { { 3, 8, 10 }, { 2, 7, 9 }, { 5, 1, 6 }, { 4, 33, 17 } };

	(void)state;
	for (int mode = TS_POOL_AVG; mode <= TS_POOL_MAX; mode++) {
		for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
			int c = sizes[k][0], h = sizes[k][1], w = sizes[k][2];
			size_t nx = (size_t)c * h * w, ny = (size_t)c * (h / 2) * (w / 2);
			float *x = malloc(nx * sizeof *x), *y1 = malloc((ny + 1) * sizeof *y1);
			float *y2 = malloc((ny + 1) * sizeof *y2), *dy = rand_buf(ny + 1, -1, 1);
			float *dx1 = malloc(nx * sizeof *dx1), *dx2 = malloc(nx * sizeof *dx2);
			unsigned char *idx = malloc(ny + 1);
			int seen[4] = { 0 };

			assert_true(x && y1 && y2 && dx1 && dx2 && idx);
			for (size_t i = 0; i < nx; i++) /* -1, -0.5, 0, 0.5, 1: ties everywhere */
				x[i] = 0.5f * (float)((int)urand(0, 5) - 2);
			ts_pool_forward(x, c, h, w, y1, (ts_pool_mode)mode);
			ts_pool_forward_idx(x, c, h, w, y2, idx, (ts_pool_mode)mode);
			assert_memory_equal(y1, y2, ny * sizeof *y1);
			for (size_t i = 0; i < ny; i++)
				seen[idx[i] >> 4]++;
			for (int relu = 0; relu < 2; relu++) {
				ts_pool_backward(x, dy, c, h, w, dx1, (ts_pool_mode)mode);
				if (relu)
					ts_relu_backward(x, dx1, nx);
				for (size_t i = 0; i < nx; i++)
					dx2[i] = 123.0f;
				ts_pool_backward_idx(idx, dy, c, h, w, dx2, (ts_pool_mode)mode, relu);
				assert_memory_equal(dx1, dx2, nx * sizeof *dx1);
			}
			if (mode == TS_POOL_MAX && ny >= 64) /* maxima in every position */
				for (int v = 0; v < 4; v++)
					assert_true(seen[v] > 0);
			free(x);
			free(y1);
			free(y2);
			free(dy);
			free(dx1);
			free(dx2);
			free(idx);
		}
	}
}

/* One prepared op with padding pad, run on x (masked when mask is given), checked
 * against the naive references: forward (with bias, ReLU) or adjoint (the input
 * gradient).  Returns the relative error; y receives the op's output. */
static double
check_op_pad(ts_conv_algo algo, int adjoint, int ic, int oc, int h, int w, int relu,
             int masked, float *yout, ts_pad_mode pad)
{
	int oic = adjoint ? oc : ic, ooc = adjoint ? ic : oc; /* op channels */
	size_t nin = (size_t)oic * h * w, nout = (size_t)ooc * h * w;
	float *x = rand_buf(nin, -1, 1), *mask = masked ? rand_buf(nin, -1, 1) : NULL;
	float *wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5), *b = rand_buf((size_t)oc, -1, 1);
	float *y = rand_buf(nout, 100, 200), *wm, *ws, *xm = malloc(nin * sizeof *xm);
	float *border = malloc(ts_conv_border_floats(ic, oc) * sizeof *border);
	double *ref = malloc(nout * sizeof *ref), e;
	ts_conv_op op;
	size_t nws;

	assert_non_null(ref);
	assert_non_null(xm);
	assert_non_null(border);
	assert_non_null(wm = malloc(ts_conv_op_weight_floats(oic, ooc, algo) * sizeof *wm));
	ts_conv_op_prepare(&op, wt, b, ic, oc, adjoint, algo, wm);
	ts_conv_border_prepare(wt, ic, oc, border);
	ts_conv_op_set_padding(&op, pad, border);
	assert_int_equal(op.ic, oic);
	assert_int_equal(op.oc, ooc);
	assert_int_equal(op.algo, algo == TS_CONV_AUTO ? ts_conv_pick(oic, ooc) : algo);
	nws = ts_conv_op_ws_floats(&op, h, w);
	ws = rand_buf(nws, 100, 200);
	ts_conv_op_run(&op, x, mask, h, w, y, relu, ws, nws);
	for (size_t i = 0; i < nin; i++)
		xm[i] = mask && !(mask[i] > 0) ? 0.0f : x[i];
	if (adjoint)
		conv_back_ref(xm, oic, h, w, wt, ooc, ref, pad);
	else
		conv_ref(xm, ic, h, w, wt, b, oc, ref, pad);
	if (relu)
		for (size_t i = 0; i < nout; i++)
			ref[i] = ref[i] > 0 ? ref[i] : 0;
	e = rel_err(y, ref, nout);
	if (yout)
		memcpy(yout, y, nout * sizeof *y);
	free(x);
	free(mask);
	free(wt);
	free(b);
	free(y);
	free(wm);
	free(ws);
	free(xm);
	free(ref);
	free(border);
	return e;
}

static double
check_op(ts_conv_algo algo, int adjoint, int ic, int oc, int h, int w, int relu,
         int masked, float *yout)
{
	return check_op_pad(algo, adjoint, ic, oc, h, w, relu, masked, yout, TS_PAD_ZERO);
}

/* Every algorithm, both directions, with ReLU and mask fused, on shapes that are and
 * are not multiples of the Winograd tile, down to 1x1. */
static void
test_ops(void **state)
{
	static const int shapes[][4] = {
		{ 5, 7, 9, 11 }, { 16, 8, 8, 8 }, { 3, 4, 13, 6 }, { 8, 3, 1, 1 },
		{ 6, 5, 2, 3 },  { 4, 9, 17, 5 }, { 32, 16, 7, 70 }, { 2, 2, 1, 9 },
		/* the direct kernel's blocks: outputs 8 + 8 + 5, rows of one strip exactly,
		 * of one pixel past a strip, of several groups of strips */
		{ 3, 21, 5, 33 }, { 3, 13, 4, 16 }, { 3, 5, 3, 17 }, { 3, 64, 6, 100 },
	};
	static const ts_conv_algo algos[] = { TS_CONV_IM2COL, TS_CONV_WINO2, TS_CONV_WINO4,
		                              TS_CONV_DIRECT, TS_CONV_AUTO };

	(void)state;
	for (size_t a = 0; a < sizeof algos / sizeof *algos; a++)
		for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
			for (int adj = 0; adj < 2; adj++) {
				const int *s = shapes[k];
				double tol = 1e-5; /* max error over max |y| */

				double e0 = check_op(algos[a], adj, s[0], s[1], s[2], s[3], 0, 0, NULL);
				double e1 = check_op(algos[a], adj, s[0], s[1], s[2], s[3], !adj, adj, NULL);

				if (e0 >= tol || e1 >= tol)
					print_error("algo %d adjoint %d shape %dx%d %dx%d: errors %g %g\n",
					            (int)algos[a], adj, s[0], s[1], s[2], s[3], e0, e1);
				assert_true(e0 < tol && e1 < tol);
			}
}

/* Results are the same bits for 1, 2 and 3 threads (several super-chunks and row
 * chunks, so the items really are spread), and for the sgemm used by the losses. */
static void
test_threads_same_bits(void **state)
{
	static const ts_conv_algo algos[] = { TS_CONV_IM2COL, TS_CONV_WINO2, TS_CONV_WINO4 };
	int ic = 24, oc = 40, h = 123, w = 301;
	size_t n = (size_t)oc * h * w;
	float *y1 = malloc(n * sizeof *y1), *y = malloc(n * sizeof *y);

	(void)state;
	assert_non_null(y1);
	assert_non_null(y);
	for (size_t a = 0; a < 3; a++) {
		for (int t = 1; t <= 3; t++) {
			ts_par_set_threads(t);
			assert_int_equal(ts_par_threads(), t);
			rng_state = 777;
			assert_true(check_op(algos[a], 0, ic, oc, h, w, 1, 0, t == 1 ? y1 : y) <
			            1e-5);
			if (t > 1)
				assert_memory_equal(y, y1, n * sizeof *y);
		}
	}
	{
		int m = 70, k = 300, nn = 5000;
		float *a = rand_buf((size_t)m * k, -1, 1), *b = rand_buf((size_t)k * nn, -1, 1);
		float *c1 = malloc((size_t)m * nn * sizeof *c1), *c = malloc((size_t)m * nn * sizeof *c);
		float *g1 = malloc((size_t)m * m * sizeof *g1), *g = malloc((size_t)m * m * sizeof *g);

		assert_non_null(c1);
		assert_non_null(c);
		assert_non_null(g1);
		assert_non_null(g);
		for (int t = 1; t <= 3; t++) {
			ts_par_set_threads(t);
			ts_sgemm(0, 0, m, nn, k, 1.0f, a, k, b, nn, 0.0f, t == 1 ? c1 : c, nn);
			ts_sgemm(0, 1, m, m, nn, 1.0f, b, nn, b, nn, 0.0f, t == 1 ? g1 : g, m);
			if (t > 1) {
				assert_memory_equal(c, c1, (size_t)m * nn * sizeof *c);
				assert_memory_equal(g, g1, (size_t)m * m * sizeof *g);
			}
		}
		free(a);
		free(b);
		free(c1);
		free(c);
		free(g1);
		free(g);
	}
	/* the direct kernel: VGG's first convolution (ReLU fused) and its adjoint (mask
	 * fused), on 1, 2 and 3 threads */
	for (int adj = 0; adj < 2; adj++) {
		size_t nd = (size_t)(adj ? 3 : oc) * h * w;

		for (int t = 1; t <= 3; t++) {
			ts_par_set_threads(t);
			rng_state = 778;
			assert_true(check_op(TS_CONV_DIRECT, adj, 3, oc, h, w, !adj, adj,
			                     t == 1 ? y1 : y) < 1e-5);
			if (t > 1)
				assert_memory_equal(y, y1, nd * sizeof *y);
		}
	}
	ts_par_set_threads(0);
	free(y1);
	free(y);
}

/* Reflect and replicate padding: every algorithm, both directions (the adjoint folds
 * the padded positions' gradient onto the pixels they copy), with the ReLU or the
 * mask fused, against the naive references that pad explicitly; sides of 1, 2 and 3
 * pixels (reflect falls back to repeating a one-pixel side), Winograd tiles cut by
 * the border. */
static void
test_pad_ops(void **state)
{
	static const int shapes[][4] = {
		{ 5, 7, 9, 11 }, { 16, 8, 8, 8 },  { 3, 4, 13, 6 }, { 8, 3, 1, 1 },  { 6, 5, 2, 3 },
		{ 4, 9, 17, 5 }, { 32, 16, 7, 70 }, { 2, 2, 1, 9 }, { 3, 21, 5, 33 }, { 3, 5, 3, 17 },
		{ 20, 24, 2, 2 }, { 3, 64, 6, 100 },
	};
	static const ts_conv_algo algos[] = { TS_CONV_IM2COL, TS_CONV_WINO2, TS_CONV_WINO4,
		                              TS_CONV_DIRECT, TS_CONV_AUTO };

	(void)state;
	for (int pad = TS_PAD_REFLECT; pad <= TS_PAD_REPLICATE; pad++)
		for (size_t a = 0; a < sizeof algos / sizeof *algos; a++)
			for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
				for (int adj = 0; adj < 2; adj++) {
					const int *s = shapes[k];
					double e0 = check_op_pad(algos[a], adj, s[0], s[1], s[2], s[3], 0, 0,
					                         NULL, (ts_pad_mode)pad);
					double e1 = check_op_pad(algos[a], adj, s[0], s[1], s[2], s[3], !adj,
					                         adj, NULL, (ts_pad_mode)pad);

					if (e0 >= 1e-5 || e1 >= 1e-5)
						print_error("pad %d algo %d adjoint %d shape %dx%d %dx%d: "
						            "errors %g %g\n",
						            pad, (int)algos[a], adj, s[0], s[1], s[2], s[3], e0, e1);
					assert_true(e0 < 1e-5 && e1 < 1e-5);
				}
}

/* The adjoint is the transpose of the forward, whatever the padding: for a forward op
 * F (no bias) and the adjoint op A of the same kernels, <F x, y> = <x, A y> in double
 * for random x, y, to float rounding; and the zero-padded pair differs from the
 * reflect pair (the test sees the border). */
static void
test_pad_dot(void **state)
{
	static const int shapes[][4] = { { 3, 64, 12, 19 }, { 24, 16, 9, 9 }, { 16, 32, 2, 5 },
		                         { 5, 3, 1, 4 } };
	static const ts_conv_algo algos[] = { TS_CONV_IM2COL, TS_CONV_WINO2, TS_CONV_WINO4,
		                              TS_CONV_DIRECT };

	(void)state;
	for (size_t a = 0; a < sizeof algos / sizeof *algos; a++)
		for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
			int ic = shapes[k][0], oc = shapes[k][1], h = shapes[k][2], w = shapes[k][3];
			size_t nx = (size_t)ic * h * w, ny = (size_t)oc * h * w;
			float *x = rand_buf(nx, -1, 1), *y = rand_buf(ny, -1, 1);
			float *wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5);
			float *fx = malloc(ny * sizeof *fx), *ay = malloc(nx * sizeof *ay);
			float *border = malloc(ts_conv_border_floats(ic, oc) * sizeof *border);
			float *wf = malloc(ts_conv_op_weight_floats(ic, oc, algos[a]) * sizeof *wf);
			float *wa = malloc(ts_conv_op_weight_floats(oc, ic, algos[a]) * sizeof *wa);
			float *fx0 = malloc(ny * sizeof *fx0);
			double lhs[3], rhs[3], scale = 0, moved = 0;
			ts_conv_op f, b;

			assert_true(fx && fx0 && ay && border && wf && wa);
			ts_conv_border_prepare(wt, ic, oc, border);
			ts_conv_op_prepare(&f, wt, NULL, ic, oc, 0, algos[a], wf);
			ts_conv_op_prepare(&b, wt, NULL, ic, oc, 1, algos[a], wa);
			for (int pad = TS_PAD_ZERO; pad <= TS_PAD_REPLICATE; pad++) {
				size_t nws;
				float *ws;

				ts_conv_op_set_padding(&f, (ts_pad_mode)pad, border);
				ts_conv_op_set_padding(&b, (ts_pad_mode)pad, border);
				nws = ts_conv_op_ws_floats(&f, h, w);
				nws = ts_conv_op_ws_floats(&b, h, w) > nws ? ts_conv_op_ws_floats(&b, h, w)
				                                          : nws;
				assert_non_null(ws = malloc(nws * sizeof *ws));
				ts_conv_op_run(&f, x, NULL, h, w, fx, 0, ws, nws);
				ts_conv_op_run(&b, y, NULL, h, w, ay, 0, ws, nws);
				lhs[pad] = rhs[pad] = 0;
				for (size_t i = 0; i < ny; i++)
					lhs[pad] += (double)fx[i] * y[i];
				for (size_t i = 0; i < nx; i++)
					rhs[pad] += (double)x[i] * ay[i];
				for (size_t i = 0; i < ny; i++) {
					if (pad == TS_PAD_ZERO)
						scale += fabs((double)fx[i] * y[i]);
					else if (pad == TS_PAD_REFLECT)
						moved = fmax(moved, fabs(fx[i] - fx0[i]));
				}
				if (pad == TS_PAD_ZERO)
					memcpy(fx0, fx, ny * sizeof *fx);
				free(ws);
			}
			for (int pad = 0; pad < 3; pad++)
				assert_true(fabs(lhs[pad] - rhs[pad]) < 1e-5 * scale);
			/* the padding changes the border's outputs by far more than rounding */
			assert_true(moved > 0.05);
			free(fx0);
			free(x);
			free(y);
			free(wt);
			free(fx);
			free(ay);
			free(border);
			free(wf);
			free(wa);
		}
}

/* With reflect padding the fused Winograd paths still give the bits of the unfused
 * ones: conv + ReLU + pool (forward, the padding in the input transform) against the
 * op's output pooled, and the adjoint on a pool's gradient it forms (the border
 * operator forms its rows and columns too) against the gradient formed first. */
static void
test_pad_fused(void **state)
{
	static const int shapes[][4] = { { 16, 24, 12, 14 }, { 20, 16, 9, 11 }, { 16, 32, 3, 2 } };
	static const ts_conv_algo algos[] = { TS_CONV_WINO4, TS_CONV_WINO2 };

	(void)state;
	for (size_t a = 0; a < 2; a++)
		for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
			int ic = shapes[k][0], oc = shapes[k][1], h = shapes[k][2], w = shapes[k][3];
			size_t ny = (size_t)oc * (h / 2) * (w / 2), nx = (size_t)ic * h * w;
			size_t no = (size_t)oc * h * w, nws;
			float *x = rand_buf(nx, -1, 1), *wt = rand_buf((size_t)oc * ic * 9, -0.5, 0.5);
			float *b = rand_buf(oc, -1, 1), *y = malloc(no * sizeof(float));
			float *border = malloc(ts_conv_border_floats(ic, oc) * sizeof(float));
			float *wf = malloc(ts_conv_op_weight_floats(ic, oc, algos[a]) * sizeof(float));
			float *wa = malloc(ts_conv_op_weight_floats(oc, ic, algos[a]) * sizeof(float));
			float *p1 = malloc((ny + 1) * sizeof(float)), *p2 = malloc((ny + 1) * sizeof(float));
			float *dy = rand_buf(ny + 1, -1, 1), *dx = malloc(no * sizeof(float));
			float *g1 = malloc(nx * sizeof(float)), *g2 = malloc(nx * sizeof(float)), *ws;
			unsigned char *i1 = malloc(ny + 1), *i2 = malloc(ny + 1);
			ts_conv_op f, bk;

			assert_true(y && border && wf && wa && p1 && p2 && dx && g1 && g2 && i1 && i2);
			ts_conv_border_prepare(wt, ic, oc, border);
			ts_conv_op_prepare(&f, wt, b, ic, oc, 0, algos[a], wf);
			ts_conv_op_prepare(&bk, wt, NULL, ic, oc, 1, algos[a], wa);
			ts_conv_op_set_padding(&f, TS_PAD_REFLECT, border);
			ts_conv_op_set_padding(&bk, TS_PAD_REFLECT, border);
			nws = ts_conv_op_ws_floats(&f, h, w) > ts_conv_op_ws_floats(&bk, h, w)
			              ? ts_conv_op_ws_floats(&f, h, w)
			              : ts_conv_op_ws_floats(&bk, h, w);
			assert_non_null(ws = malloc(nws * sizeof *ws));
			ts_conv_op_run(&f, x, NULL, h, w, y, 1, ws, nws);
			for (int mode = TS_POOL_AVG; mode <= TS_POOL_MAX; mode++) {
				ts_pooled_grad pg = { dy, i1, (ts_pool_mode)mode, 1 };

				ts_pool_forward_idx(y, oc, h, w, p1, i1, (ts_pool_mode)mode);
				assert_int_equal(ts_conv_op_run_pool(&f, x, h, w, p2, i2, (ts_pool_mode)mode,
				                                     ws, nws),
				                 1);
				assert_memory_equal(p1, p2, ny * sizeof *p1);
				assert_memory_equal(i1, i2, ny);
				ts_pool_backward_idx(i1, dy, oc, h, w, dx, (ts_pool_mode)mode, 1);
				ts_conv_op_run(&bk, dx, NULL, h, w, g1, 0, ws, nws);
				assert_int_equal(ts_conv_op_run_pooled(&bk, &pg, h, w, g2, 0, ws, nws), 1);
				assert_memory_equal(g1, g2, nx * sizeof *g1);
			}
			free(x);
			free(wt);
			free(b);
			free(y);
			free(border);
			free(wf);
			free(wa);
			free(p1);
			free(p2);
			free(dy);
			free(dx);
			free(g1);
			free(g2);
			free(i1);
			free(i2);
			free(ws);
		}
}

/* Reflect padding: the same bits on 1, 2 and 3 threads (the border operator's
 * products are ts_sgemm's, split by the shape). */
static void
test_pad_threads(void **state)
{
	static const ts_conv_algo algos[] = { TS_CONV_WINO4, TS_CONV_DIRECT, TS_CONV_IM2COL };
	int ic = 24, oc = 40, h = 61, w = 133;
	size_t n = (size_t)oc * h * w;
	float *y1 = malloc(n * sizeof *y1), *y = malloc(n * sizeof *y);

	(void)state;
	assert_true(y1 && y);
	for (size_t a = 0; a < 3; a++)
		for (int adj = 0; adj < 2; adj++) {
			int c = algos[a] == TS_CONV_DIRECT ? 3 : ic;
			size_t nd = (size_t)(adj ? c : oc) * h * w;

			for (int t = 1; t <= 3; t++) {
				ts_par_set_threads(t);
				rng_state = 779;
				assert_true(check_op_pad(algos[a], adj, c, oc, h, w, !adj, adj,
				                         t == 1 ? y1 : y, TS_PAD_REFLECT) < 1e-5);
				if (t > 1)
					assert_memory_equal(y, y1, nd * sizeof *y);
			}
		}
	ts_par_set_threads(0);
	free(y1);
	free(y);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forward_small), cmocka_unit_test(test_chunks),
		cmocka_unit_test(test_conv_backward), cmocka_unit_test(test_relu),
		cmocka_unit_test(test_pool),          cmocka_unit_test(test_pool_values),
		cmocka_unit_test(test_pool_index),    cmocka_unit_test(test_ws_fewer_threads),
		cmocka_unit_test(test_run_pooled),    cmocka_unit_test(test_run_pool),
		cmocka_unit_test(test_ops),           cmocka_unit_test(test_threads_same_bits),
		cmocka_unit_test(test_pad_ops),       cmocka_unit_test(test_pad_dot),
		cmocka_unit_test(test_pad_fused),     cmocka_unit_test(test_pad_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
