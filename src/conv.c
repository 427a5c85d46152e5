/* conv: 3x3 convolution, ReLU, pooling, sgemm wrapper (see conv.h).
 *
 * Convolution is im2col + sgemm over chunks of whole output rows, so the workspace is
 * cols [9*IC, rows*W] for a bounded number of rows (CHUNK_FLOATS, at least one row),
 * whatever the image size.  The backward pass is the transposed product
 * (dcols = W^T dY, chunk by chunk) followed by col2im accumulation into dx.
 *
 * Invariants: nothing here allocates; im2col and col2im treat the one-pixel zero
 * border apart from the interior so the inner loops are plain copies and sums; the
 * chunking depends only on the shapes, so results are the same bits for every call.
 * The only file that includes cblas.h. */
#include "tessera/conv.h"

#include <cblas.h>
#include <string.h>

#include "tessera/error.h"

/* Chunk size: about CHUNK_FLOATS floats of im2col (2 MiB, so a chunk stays in L2
 * while sgemm packs it; measured best for the 64-channel layers), but at least
 * MIN_COLS output pixels (sgemm loses efficiency on narrow products; measured best for
 * the 512-channel layers) and at least one whole output row.  The workspace is thus
 * bounded by max(CHUNK_FLOATS, 9 * IC * (MIN_COLS + W)) floats. */
#define CHUNK_FLOATS ((size_t)1 << 19)
#define MIN_COLS ((size_t)512)

void
ts_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
         int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
	            trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
	            beta, c, ldc);
}

void
ts_conv_set_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}

/* Output rows per chunk for input channels ic and an h x w image. */
static int
chunk_rows(int ic, int h, int w)
{
	size_t per_row = (size_t)9 * ic * w;
	size_t rows = CHUNK_FLOATS / per_row;
	size_t min_rows = (MIN_COLS + (size_t)w - 1) / (size_t)w;

	if (rows < min_rows)
		rows = min_rows;
	if (rows < 1)
		rows = 1;
	if (rows > (size_t)h)
		rows = (size_t)h;
	return (int)rows;
}

size_t
ts_conv_ws_floats(int ic, int oc, int h, int w)
{
	(void)oc;
	if (ic < 1 || h < 1 || w < 1)
		return 0;
	return (size_t)9 * ic * chunk_rows(ic, h, w) * w;
}

/* One im2col row: dst[j] = src[j + kx - 1], zero outside [0, w). */
static inline void
shift_row(float *dst, const float *src, int w, int kx)
{
	if (kx == 1) {
		memcpy(dst, src, (size_t)w * sizeof *dst);
	} else if (kx == 0) {
		dst[0] = 0.0f;
		memcpy(dst + 1, src, (size_t)(w - 1) * sizeof *dst);
	} else {
		memcpy(dst, src + 1, (size_t)(w - 1) * sizeof *dst);
		dst[w - 1] = 0.0f;
	}
}

/* cols [9*ic, nr*w] (row (c*9 + ky*3 + kx), column r*w + j) = x[c, r0+r+ky-1, j+kx-1]
 * for output rows [r0, r0+nr) of x [ic, h, w], zero outside the image. */
static void
im2col(const float *x, int ic, int h, int w, int r0, int nr, float *cols)
{
	size_t ncol = (size_t)nr * w, hw = (size_t)h * w;

	for (int c = 0; c < ic; c++) {
		const float *xc = x + c * hw;

		for (int ky = 0; ky < 3; ky++) {
			/* output rows r whose source row r0+r+ky-1 lies inside the image */
			int lo = r0 + ky - 1 < 0 ? 1 : 0;
			int hi = h - (r0 + ky - 1) < nr ? h - (r0 + ky - 1) : nr;

			for (int kx = 0; kx < 3; kx++) {
				float *dst = cols + ((size_t)c * 9 + ky * 3 + kx) * ncol;

				if (lo > 0)
					memset(dst, 0, (size_t)lo * w * sizeof *dst);
				for (int r = lo; r < hi; r++)
					shift_row(dst + (size_t)r * w, xc + (size_t)(r0 + r + ky - 1) * w, w,
					          kx);
				if (hi < nr)
					memset(dst + (size_t)hi * w, 0, (size_t)(nr - hi) * w * sizeof *dst);
			}
		}
	}
}

/* d[j] += s0[j+1] + s1[j] + s2[j-1] for 0 <= j < w, terms outside [0, w) omitted:
 * the three kx taps of one (channel, ky) im2col row set land on one dx row. */
static inline void
add_taps(float *restrict d, const float *restrict s0, const float *restrict s1,
         const float *restrict s2, int w)
{
	if (w == 1) {
		d[0] += s1[0];
		return;
	}
	d[0] += s0[1] + s1[0];
	for (int j = 1; j < w - 1; j++)
		d[j] += s0[j + 1] + s1[j] + s2[j - 1];
	d[w - 1] += s1[w - 1] + s2[w - 2];
}

/* All nine taps at once (the common interior case): one pass over the dx row. */
static inline void
add_taps9(float *restrict d, const float *const s[9], int w)
{
	const float *restrict a0 = s[0], *restrict a1 = s[1], *restrict a2 = s[2];
	const float *restrict b0 = s[3], *restrict b1 = s[4], *restrict b2 = s[5];
	const float *restrict c0 = s[6], *restrict c1 = s[7], *restrict c2 = s[8];

	if (w == 1) {
		d[0] += a1[0] + b1[0] + c1[0];
		return;
	}
	d[0] += a0[1] + a1[0] + b0[1] + b1[0] + c0[1] + c1[0];
	for (int j = 1; j < w - 1; j++)
		d[j] += (a0[j + 1] + a1[j] + a2[j - 1]) + (b0[j + 1] + b1[j] + b2[j - 1]) +
		        (c0[j + 1] + c1[j] + c2[j - 1]);
	d[w - 1] += a1[w - 1] + a2[w - 2] + b1[w - 1] + b2[w - 2] + c1[w - 1] + c2[w - 2];
}

/* dx [ic, h, w] += col2im(cols [9*ic, nr*w]) for output rows [r0, r0+nr): the adjoint
 * of im2col.  Walks dx rows so each dx row is read and written once per chunk. */
static void
col2im(const float *cols, int ic, int h, int w, int r0, int nr, float *dx)
{
	size_t ncol = (size_t)nr * w, hw = (size_t)h * w;
	/* dx rows touched by this chunk: output row r feeds input rows r-1..r+1 */
	int y0 = r0 - 1 < 0 ? 0 : r0 - 1;
	int y1 = r0 + nr + 1 > h ? h : r0 + nr + 1;

	for (int c = 0; c < ic; c++) {
		const float *cc = cols + (size_t)c * 9 * ncol;
		float *dxc = dx + c * hw;

		for (int iy = y0; iy < y1; iy++) {
			const float *s[9];
			int n = 0;

			/* output row r = iy - ky + 1 reads input row iy through tap ky */
			for (int ky = 0; ky < 3; ky++) {
				int r = iy - ky + 1 - r0;

				if (r < 0 || r >= nr)
					continue;
				for (int kx = 0; kx < 3; kx++)
					s[n * 3 + kx] = cc + (size_t)(ky * 3 + kx) * ncol + (size_t)r * w;
				n++;
			}
			if (n == 3) {
				add_taps9(dxc + (size_t)iy * w, s, w);
			} else {
				for (int k = 0; k < n; k++)
					add_taps(dxc + (size_t)iy * w, s[3 * k], s[3 * k + 1],
					         s[3 * k + 2], w);
			}
		}
	}
}

void
ts_conv3x3_forward(const float *x, int ic, int h, int w, const float *wt, const float *bias,
                   int oc, float *y, float *ws, size_t ws_floats)
{
	int nr = chunk_rows(ic, h, w);
	size_t hw = (size_t)h * w;
	int bias_nonzero = 0;

	TS_ASSERT(ic >= 1 && oc >= 1 && h >= 1 && w >= 1);
	TS_ASSERT(ws_floats >= ts_conv_ws_floats(ic, oc, h, w));
	TS_ASSERT(x != y);
	if (bias)
		for (int o = 0; o < oc && !bias_nonzero; o++)
			bias_nonzero = bias[o] != 0.0f;
	for (int r0 = 0; r0 < h; r0 += nr) {
		int rows = r0 + nr <= h ? nr : h - r0;
		size_t off = (size_t)r0 * w, n = (size_t)rows * w;

		/* cols: [9*ic, n] */
		im2col(x, ic, h, w, r0, rows, ws);
		if (bias_nonzero) {
			for (int o = 0; o < oc; o++) {
				float b = bias[o], *yo = y + o * hw + off;

				for (size_t j = 0; j < n; j++)
					yo[j] = b;
			}
		}
		/* y[:, chunk] (ldc = hw) = W [oc, 9*ic] * cols [9*ic, n] (+ bias) */
		ts_sgemm(0, 0, oc, (int)n, 9 * ic, 1.0f, wt, 9 * ic, ws, (int)n,
		         bias_nonzero ? 1.0f : 0.0f, y + off, (int)hw);
	}
}

void
ts_conv3x3_backward(const float *dy, int oc, int h, int w, const float *wt, int ic,
                    float *dx, float *ws, size_t ws_floats)
{
	int nr = chunk_rows(ic, h, w);
	size_t hw = (size_t)h * w;

	TS_ASSERT(ic >= 1 && oc >= 1 && h >= 1 && w >= 1);
	TS_ASSERT(ws_floats >= ts_conv_ws_floats(ic, oc, h, w));
	TS_ASSERT(dx != dy);
	memset(dx, 0, (size_t)ic * hw * sizeof *dx);
	for (int r0 = 0; r0 < h; r0 += nr) {
		int rows = r0 + nr <= h ? nr : h - r0;
		size_t off = (size_t)r0 * w, n = (size_t)rows * w;

		/* dcols [9*ic, n] = W^T [9*ic, oc] * dy[:, chunk] [oc, n] (ldb = hw) */
		ts_sgemm(1, 0, 9 * ic, (int)n, oc, 1.0f, wt, 9 * ic, dy + off, (int)hw, 0.0f, ws,
		         (int)n);
		col2im(ws, ic, h, w, r0, rows, dx);
	}
}

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

void
ts_pool_forward(const float *x, int c, int h, int w, float *y, ts_pool_mode mode)
{
	int oh = h / 2, ow = w / 2;

	for (int k = 0; k < c; k++) {
		const float *xc = x + (size_t)k * h * w;
		float *yc = y + (size_t)k * oh * ow;

		for (int i = 0; i < oh; i++) {
			const float *a = xc + (size_t)2 * i * w, *b = a + w;
			float *yr = yc + (size_t)i * ow;

			if (mode == TS_POOL_AVG) {
				for (int j = 0; j < ow; j++)
					yr[j] = 0.25f * ((a[2 * j] + a[2 * j + 1]) + (b[2 * j] + b[2 * j + 1]));
			} else {
				for (int j = 0; j < ow; j++) {
					float p = a[2 * j], q = a[2 * j + 1], r = b[2 * j], s = b[2 * j + 1];
					float m = q > p ? q : p;

					m = r > m ? r : m;
					yr[j] = s > m ? s : m;
				}
			}
		}
	}
}

void
ts_pool_backward(const float *x, const float *dy, int c, int h, int w, float *dx,
                 ts_pool_mode mode)
{
	int oh = h / 2, ow = w / 2;

	TS_ASSERT(mode == TS_POOL_AVG || x);
	for (int k = 0; k < c; k++) {
		const float *xc = mode == TS_POOL_MAX ? x + (size_t)k * h * w : NULL;
		const float *dyc = dy + (size_t)k * oh * ow;
		float *dxc = dx + (size_t)k * h * w;

		for (int i = 0; i < oh; i++) {
			float *da = dxc + (size_t)2 * i * w, *db = da + w;
			const float *g = dyc + (size_t)i * ow;

			if (mode == TS_POOL_AVG) {
				for (int j = 0; j < ow; j++) {
					float v = 0.25f * g[j];

					da[2 * j] = v;
					da[2 * j + 1] = v;
					db[2 * j] = v;
					db[2 * j + 1] = v;
				}
			} else {
				const float *a = xc + (size_t)2 * i * w, *b = a + w;

				for (int j = 0; j < ow; j++) {
					/* the first maximum in row-major order gets it (as PyTorch) */
					float p = a[2 * j], q = a[2 * j + 1], r = b[2 * j], s = b[2 * j + 1];
					float m = p;
					int at = 0;

					if (q > m)
						m = q, at = 1;
					if (r > m)
						m = r, at = 2;
					if (s > m)
						at = 3;
					da[2 * j] = at == 0 ? g[j] : 0.0f;
					da[2 * j + 1] = at == 1 ? g[j] : 0.0f;
					db[2 * j] = at == 2 ? g[j] : 0.0f;
					db[2 * j + 1] = at == 3 ? g[j] : 0.0f;
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
}
