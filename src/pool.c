/* pool: ReLU and 2x2 stride-2 pooling (see pool.h).
 *
 * Invariants: nothing here allocates; items are channels (ts_par_for), each written
 * by one thread, so results are the same bits for every thread count. */
#include "tessera/pool.h"

#include <string.h>

#include "tessera/error.h"
#include "tessera/par.h"

void
ts_relu_forward(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void
ts_relu_backward(const float *y, float *dy, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

struct pool_job {
	const float *x, *dy;
	float *y;
	int h, w;
	ts_pool_mode mode;
};

static void
pool_fwd_item(void *ctx, int k, int thread)
{
	const struct pool_job *j = ctx;
	int h = j->h, w = j->w, oh = h / 2, ow = w / 2;
	const float *xc = j->x + (size_t)k * h * w;
	float *yc = j->y + (size_t)k * oh * ow;

	(void)thread;
	for (int i = 0; i < oh; i++) {
		const float *a = xc + (size_t)2 * i * w, *b = a + w;
		float *yr = yc + (size_t)i * ow;

		if (j->mode == TS_POOL_AVG) {
			for (int q = 0; q < ow; q++)
				yr[q] = 0.25f * ((a[2 * q] + a[2 * q + 1]) + (b[2 * q] + b[2 * q + 1]));
		} else {
			for (int q = 0; q < ow; q++) {
				float p = a[2 * q], u = a[2 * q + 1], r = b[2 * q], t = b[2 * q + 1];
				float m = u > p ? u : p;

				m = r > m ? r : m;
				yr[q] = t > m ? t : m;
			}
		}
	}
}

void
ts_pool_forward(const float *x, int c, int h, int w, float *y, ts_pool_mode mode)
{
	struct pool_job j = { x, NULL, y, h, w, mode };

	ts_par_for(c, pool_fwd_item, &j);
}

static void
pool_bwd_item(void *ctx, int k, int thread)
{
	const struct pool_job *j = ctx;
	int h = j->h, w = j->w, oh = h / 2, ow = w / 2;
	const float *xc = j->mode == TS_POOL_MAX ? j->x + (size_t)k * h * w : NULL;
	const float *dyc = j->dy + (size_t)k * oh * ow;
	float *dxc = j->y + (size_t)k * h * w;

	(void)thread;
	for (int i = 0; i < oh; i++) {
		float *da = dxc + (size_t)2 * i * w, *db = da + w;
		const float *g = dyc + (size_t)i * ow;

		if (j->mode == TS_POOL_AVG) {
			for (int q = 0; q < ow; q++) {
				float v = 0.25f * g[q];

				da[2 * q] = v;
				da[2 * q + 1] = v;
				db[2 * q] = v;
				db[2 * q + 1] = v;
			}
		} else {
			const float *a = xc + (size_t)2 * i * w, *b = a + w;

			for (int q = 0; q < ow; q++) {
				/* the first maximum in row-major order gets it (as PyTorch) */
				float p = a[2 * q], u = a[2 * q + 1], r = b[2 * q], t = b[2 * q + 1];
				float m = p;
				int at = 0;

				if (u > m)
					m = u, at = 1;
				if (r > m)
					m = r, at = 2;
				if (t > m)
					at = 3;
				da[2 * q] = at == 0 ? g[q] : 0.0f;
				da[2 * q + 1] = at == 1 ? g[q] : 0.0f;
				db[2 * q] = at == 2 ? g[q] : 0.0f;
				db[2 * q + 1] = at == 3 ? g[q] : 0.0f;
			}
		}
		if (w & 1) {
			da[w - 1] = 0.0f;
			db[w - 1] = 0.0f;
		}
	}
	if (h & 1)
		memset(dxc + (size_t)(h - 1) * w, 0, (size_t)w * sizeof *dxc);
}

void
ts_pool_backward(const float *x, const float *dy, int c, int h, int w, float *dx,
                 ts_pool_mode mode)
{
	struct pool_job j = { x, dy, dx, h, w, mode };

	TS_ASSERT(mode == TS_POOL_AVG || x);
	ts_par_for(c, pool_bwd_item, &j);
}

/* Pooling that keeps one byte per output: bit k (k = 0..3, the 2x2 window in row-major
 * order) says input k is > 0, and for max pooling bits 4-5 give the position of the
 * window's first maximum (the one ts_pool_backward gives the gradient to).  The
 * backward pass then reads that byte instead of the four inputs, and can do the
 * backward pass of the ReLU before the pool on the way, so that the convolution
 * below reads no mask. */
struct pool_idx_job {
	const float *x, *dy;
	float *out;
	unsigned char *idx;
	const unsigned char *cidx;
	int h, w, relu;
	ts_pool_mode mode;
};

void
ts_pool_rows_idx(const float *a, const float *b, int ow, ts_pool_mode mode, float *y,
                 unsigned char *idx)
{
	for (int q = 0; q < ow; q++) {
		float p = a[2 * q], u = a[2 * q + 1], r = b[2 * q], t = b[2 * q + 1];
		int pos = (p > 0.0f) | (u > 0.0f) << 1 | (r > 0.0f) << 2 | (t > 0.0f) << 3;

		if (mode == TS_POOL_AVG) {
			y[q] = 0.25f * ((p + u) + (r + t));
			idx[q] = (unsigned char)pos;
		} else {
			float m = p;
			int at = 0;

			/* the comparisons of ts_pool_forward and ts_pool_backward */
			if (u > m)
				m = u, at = 1;
			if (r > m)
				m = r, at = 2;
			if (t > m)
				m = t, at = 3;
			y[q] = m;
			idx[q] = (unsigned char)(pos | at << 4);
		}
	}
}

static void
pool_idx_fwd_item(void *ctx, int k, int thread)
{
	const struct pool_idx_job *j = ctx;
	int h = j->h, w = j->w, oh = h / 2, ow = w / 2;
	const float *xc = j->x + (size_t)k * h * w;
	float *yc = j->out + (size_t)k * oh * ow;
	unsigned char *ic = j->idx + (size_t)k * oh * ow;

	(void)thread;
	for (int i = 0; i < oh; i++)
		ts_pool_rows_idx(xc + (size_t)2 * i * w, xc + (size_t)(2 * i + 1) * w, ow, j->mode,
		                 yc + (size_t)i * ow, ic + (size_t)i * ow);
}

void
ts_pool_forward_idx(const float *x, int c, int h, int w, float *y, unsigned char *idx,
                    ts_pool_mode mode)
{
	struct pool_idx_job j = { x, NULL, y, idx, NULL, h, w, 0, mode };

	ts_par_for(c, pool_idx_fwd_item, &j);
}

void
ts_pool_grad_row(const unsigned char *idx, const float *g, int ow, ts_pool_mode mode,
                 int relu, int odd, float *out)
{
	int all = relu ? 0 : 15, pe = odd ? 2 : 0; /* the row's window positions */

	for (int q = 0; q < ow; q++) {
		int on = (idx[q] | all) & 15;
		float v;

		if (mode == TS_POOL_AVG) {
			v = 0.25f * g[q];
		} else {
			on &= 1 << (idx[q] >> 4); /* the maximum only */
			v = g[q];
		}
		out[2 * q] = on >> pe & 1 ? v : 0.0f;
		out[2 * q + 1] = on >> (pe + 1) & 1 ? v : 0.0f;
	}
}

static void
pool_idx_bwd_item(void *ctx, int k, int thread)
{
	const struct pool_idx_job *j = ctx;
	int h = j->h, w = j->w, oh = h / 2, ow = w / 2;
	const unsigned char *ic = j->cidx + (size_t)k * oh * ow;
	const float *dyc = j->dy + (size_t)k * oh * ow;
	float *dxc = j->out + (size_t)k * h * w;

	(void)thread;
	for (int i = 0; i < oh; i++) {
		for (int odd = 0; odd < 2; odd++) {
			float *d = dxc + (size_t)(2 * i + odd) * w;

			ts_pool_grad_row(ic + (size_t)i * ow, dyc + (size_t)i * ow, ow, j->mode, j->relu,
			                 odd, d);
			if (w & 1)
				d[w - 1] = 0.0f;
		}
	}
	if (h & 1)
		memset(dxc + (size_t)(h - 1) * w, 0, (size_t)w * sizeof *dxc);
}

void
ts_pool_backward_idx(const unsigned char *idx, const float *dy, int c, int h, int w,
                     float *dx, ts_pool_mode mode, int relu)
{
	struct pool_idx_job j = { NULL, dy, dx, NULL, idx, h, w, relu, mode };

	ts_par_for(c, pool_idx_bwd_item, &j);
}
