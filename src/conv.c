/* conv: 3x3 convolution and the prepared convolutions (see conv.h).
 *
 * The prepared convolutions (ts_conv_op) that the network runs: Winograd for layers
 * with >= 16 channels in and out (winograd.c), im2col + sgemm over chunks of whole
 * output rows for the rest (conv1_1), so the im2col workspace is cols [9*IC, rows*W]
 * for a bounded number of rows (CHUNK_FLOATS, at least one row), whatever the image
 * size.  The plain ts_conv3x3_forward / backward (im2col, and the transposed product
 * followed by col2im) are the reference the tests hold the ops to.
 *
 * Invariants: nothing here allocates; im2col and col2im treat the one-pixel zero
 * border apart from the interior so the inner loops are plain copies and sums; the
 * chunking depends only on the shapes, so results are the same bits for every call
 * and every thread count.  BLAS is reached through blas.h (ts_sgemm, ts_sgemm_serial),
 * pooling and ReLU through pool.h; winograd.c and direct.c are called from here and
 * call nothing here. */
#include "tessera/conv.h"

#include <string.h>

#include "tessera/error.h"
#include "tessera/par.h"
#include "direct.h"
#include "winograd.h"

/* Chunk size: about CHUNK_FLOATS floats of im2col (2 MiB, so a chunk stays in L2
 * while sgemm packs it; measured best for the 64-channel layers), but at least
 * MIN_COLS output pixels (sgemm loses efficiency on narrow products; measured best for
 * the 512-channel layers) and at least one whole output row.  The workspace is thus
 * bounded by max(CHUNK_FLOATS, 9 * IC * (MIN_COLS + W)) floats. */
#define CHUNK_FLOATS ((size_t)1 << 19)
#define MIN_COLS ((size_t)512)

void
ts_conv_set_threads(int n)
{
	ts_par_set_threads(n);
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

/* im2col of x * (mask > 0); tmp holds w floats (one masked source row). */
static void
im2col_masked(const float *x, const float *mask, int ic, int h, int w, int r0, int nr,
              float *cols, float *tmp)
{
	size_t ncol = (size_t)nr * w, hw = (size_t)h * w;

	for (int c = 0; c < ic; c++) {
		for (int ky = 0; ky < 3; ky++) {
			int lo = r0 + ky - 1 < 0 ? 1 : 0;
			int hi = h - (r0 + ky - 1) < nr ? h - (r0 + ky - 1) : nr;
			float *dst = cols + ((size_t)c * 9 + ky * 3) * ncol;

			for (int kx = 0; kx < 3; kx++) {
				if (lo > 0)
					memset(dst + kx * ncol, 0, (size_t)lo * w * sizeof *dst);
				if (hi < nr)
					memset(dst + kx * ncol + (size_t)hi * w, 0,
					       (size_t)(nr - hi) * w * sizeof *dst);
			}
			for (int r = lo; r < hi; r++) {
				size_t at = c * hw + (size_t)(r0 + r + ky - 1) * w;

				for (int q = 0; q < w; q++)
					tmp[q] = mask[at + q] > 0.0f ? x[at + q] : 0.0f;
				for (int kx = 0; kx < 3; kx++)
					shift_row(dst + kx * ncol + (size_t)r * w, tmp, w, kx);
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

/* ---- Prepared convolutions (ts_conv_op) ------------------------------------------ */

ts_conv_algo
ts_conv_pick(int ic, int oc)
{
	if (ic >= 16 && oc >= 16)
		return TS_CONV_WINO4;
	return ts_direct_fast() ? TS_CONV_DIRECT : TS_CONV_IM2COL;
}

size_t
ts_conv_op_weight_floats(int ic, int oc, ts_conv_algo algo)
{
	size_t a;

	if (algo == TS_CONV_AUTO)
		algo = ts_conv_pick(ic, oc);
	if (algo == TS_CONV_IM2COL || algo == TS_CONV_DIRECT)
		return (size_t)oc * ic * 9;
	a = (size_t)ts_wino_m(algo) + 2;
	return a * a * oc * ic;
}

struct prep_job {
	ts_conv_op *op;
	const float *wt;
	int ic, adjoint; /* the original convolution's input channels */
};

/* Prepare the weights into op channel o from every op input channel, 64 at a time
 * (the loops over c vectorize; the transform is computed in double). */
static void
prep_item(void *ctx, int o, int thread)
{
	const struct prep_job *j = ctx;
	ts_conv_op *op = j->op;
	int oic = op->ic;
	double g[9][64];

	(void)thread;
	for (int c0 = 0; c0 < oic; c0 += 64) {
		int nc = oic - c0 < 64 ? oic - c0 : 64;

		/* g[tap][c]: the op's kernel from op channel c0 + c to op channel o; an
		 * adjoint reads the original kernel transposed and rotated by 180 degrees */
		for (int c = 0; c < nc; c++)
			for (int k = 0; k < 9; k++)
				g[k][c] = j->adjoint ? j->wt[((size_t)(c0 + c) * j->ic + o) * 9 + (8 - k)]
				                     : j->wt[((size_t)o * j->ic + c0 + c) * 9 + k];
		if (op->algo == TS_CONV_IM2COL || op->algo == TS_CONV_DIRECT) {
			for (int c = 0; c < nc; c++)
				for (int k = 0; k < 9; k++)
					op->w[((size_t)o * oic + c0 + c) * 9 + k] = (float)g[k][c];
		} else {
			ts_wino_prepare_block(op, o, c0, nc, g);
		}
	}
}

void
ts_conv_op_attach(ts_conv_op *op, const float *bias, int ic, int oc, int adjoint,
                  ts_conv_algo algo, float *wmem)
{
	int oic = adjoint ? oc : ic, ooc = adjoint ? ic : oc; /* the op's channels */

	TS_ASSERT(op && wmem && ic >= 1 && oc >= 1);
	if (algo == TS_CONV_AUTO)
		algo = ts_conv_pick(oic, ooc);
	op->ic = oic;
	op->oc = ooc;
	op->algo = algo;
	op->bias = adjoint ? NULL : bias;
	op->w = wmem;
	op->adjoint = adjoint != 0;
	op->pad = TS_PAD_ZERO;
	op->border = NULL;
}

size_t
ts_conv_border_floats(int ic, int oc)
{
	return (size_t)9 * ic * oc;
}

void
ts_conv_border_prepare(const float *wt, int ic, int oc, float *border)
{
	size_t tap = (size_t)oc * ic;

	/* border[t][o][c] = wt[o][c][t]: one [oc, ic] matrix per tap */
	for (int o = 0; o < oc; o++)
		for (int c = 0; c < ic; c++)
			for (int t = 0; t < 9; t++)
				border[t * tap + (size_t)o * ic + c] = wt[((size_t)o * ic + c) * 9 + t];
}

void
ts_conv_op_set_padding(ts_conv_op *op, ts_pad_mode pad, const float *border)
{
	TS_ASSERT(op && (pad == TS_PAD_ZERO || border));
	TS_ASSERT(pad == TS_PAD_ZERO || pad == TS_PAD_REFLECT || pad == TS_PAD_REPLICATE);
	op->pad = pad;
	op->border = pad == TS_PAD_ZERO ? NULL : border;
}

/* Floats of the border operator's workspace: a gathered border row or column of the
 * input, [op->ic, L], and the product, [op->oc, L], L the longer side. */
static size_t
border_ws_floats(const ts_conv_op *op, int h, int w)
{
	size_t l = (size_t)(h > w ? h : w);

	return op->pad == TS_PAD_ZERO ? 0 : (size_t)(op->ic + op->oc) * l;
}

/* Whether op runs its padding as the border operator (all but Winograd forward ops,
 * whose input transform reads the padding itself). */
static int
border_op(const ts_conv_op *op)
{
	return op->pad != TS_PAD_ZERO &&
	       (op->adjoint || (op->algo != TS_CONV_WINO4 && op->algo != TS_CONV_WINO2));
}

/* y [oc, h, w] += what padding op->pad adds to the zero-padded convolution of x
 * [ic, h, w]: for each output pixel of the border, the taps that read outside the
 * image, fed ts_pad_src's pixels.  The rows' pass takes every tap of output rows 0
 * (ky = 0) and h - 1 (ky = 2), the corners' too; the columns' pass takes those of
 * columns 0 (kx = 0) and w - 1 (kx = 2) whose row is inside.  border: [9, oc, ic]. */
static void
border_forward(const ts_conv_op *op, const float *x, int h, int w, float *y, float *ws)
{
	int ic = op->ic, oc = op->oc;
	size_t hw = (size_t)h * w, tap = (size_t)oc * ic, l = (size_t)(h > w ? h : w);
	float *xs = ws, *t = ws + (size_t)ic * l; /* [ic, l], [oc, l] */

	for (int side = 0; side < 2; side++) {
		int i = side ? h - 1 : 0, ky = side ? 2 : 0;
		int sy = ts_pad_src(side ? h : -1, h, op->pad);

		for (int kx = 0; kx < 3; kx++) {
			for (int c = 0; c < ic; c++) {
				const float *row = x + c * hw + (size_t)sy * w;

				for (int q = 0; q < w; q++)
					xs[(size_t)c * w + q] = row[ts_pad_src(q + kx - 1, w, op->pad)];
			}
			/* y[:, i, :] (ldc hw) += border[ky, kx] [oc, ic] xs [ic, w] */
			ts_sgemm(0, 0, oc, w, ic, 1.0f, op->border + (ky * 3 + kx) * tap, ic, xs, w,
			         1.0f, y + (size_t)i * w, (int)hw);
		}
	}
	for (int side = 0; side < 2; side++) {
		int q = side ? w - 1 : 0, kx = side ? 2 : 0;
		int sx = ts_pad_src(side ? w : -1, w, op->pad);

		for (int ky = 0; ky < 3; ky++) {
			for (int c = 0; c < ic; c++)
				for (int i = 0; i < h; i++) {
					int r = i + ky - 1;

					xs[(size_t)c * h + i] = r >= 0 && r < h ? x[c * hw + (size_t)r * w + sx]
					                                        : 0.0f;
				}
			ts_sgemm(0, 0, oc, h, ic, 1.0f, op->border + (ky * 3 + kx) * tap, ic, xs, h,
			         ky ? 1.0f : 0.0f, t, h);
		}
		for (int o = 0; o < oc; o++)
			for (int i = 0; i < h; i++)
				y[o * hw + (size_t)i * w + q] += t[(size_t)o * h + i];
	}
}

/* What the adjoint reads at pixel (i, j) of channel c of its input: x, masked (x *
 * (mask > 0)), or the gradient a pooling passes back (pg, never formed). */
static float
adj_in(const float *x, const float *mask, const ts_pooled_grad *pg, int c, int h, int w,
       int i, int j)
{
	size_t at = ((size_t)c * h + i) * w + j;

	if (pg) {
		int oh = h / 2, ow = w / 2;
		size_t k;
		float two[2];

		if (i >= 2 * oh || j >= 2 * ow)
			return 0.0f; /* the odd last row or column: no window */
		k = ((size_t)c * oh + i / 2) * ow + j / 2;
		ts_pool_grad_row(pg->idx + k, pg->dy + k, 1, pg->mode, pg->relu, i & 1, two);
		return two[j & 1];
	}
	if (mask)
		return mask[at] > 0.0f ? x[at] : 0.0f;
	return x[at];
}

/* Row i of the adjoint's input, channel c, into dst [w]. */
static void
adj_in_row(const float *x, const float *mask, const ts_pooled_grad *pg, int c, int h, int w,
           int i, float *dst)
{
	size_t at = ((size_t)c * h + i) * w;

	if (pg) {
		int oh = h / 2, ow = w / 2;
		size_t k = ((size_t)c * oh + i / 2) * ow;

		memset(dst, 0, (size_t)w * sizeof *dst);
		if (i < 2 * oh)
			ts_pool_grad_row(pg->idx + k, pg->dy + k, ow, pg->mode, pg->relu, i & 1, dst);
	} else if (mask) {
		for (int q = 0; q < w; q++)
			dst[q] = mask[at + q] > 0.0f ? x[at + q] : 0.0f;
	} else {
		memcpy(dst, x + at, (size_t)w * sizeof *dst);
	}
}

/* dx [op->oc, h, w] += the transpose of border_forward for the forward convolution
 * whose input gradient op is, applied to its input dy [op->ic, h, w] (as adj_in reads
 * it): each border tap's product lands on the pixel the padding copied. */
static void
border_adjoint(const ts_conv_op *op, const float *dy, const float *mask,
               const ts_pooled_grad *pg, int h, int w, float *dx, float *ws)
{
	int no = op->ic, nc = op->oc; /* the forward convolution's out and in channels */
	size_t hw = (size_t)h * w, tap = (size_t)no * nc, l = (size_t)(h > w ? h : w);
	float *d = ws, *g = ws + (size_t)no * l; /* [no, l], [nc, l] */

	for (int side = 0; side < 2; side++) {
		int i = side ? h - 1 : 0, ky = side ? 2 : 0;
		int sy = ts_pad_src(side ? h : -1, h, op->pad);

		for (int o = 0; o < no; o++)
			adj_in_row(dy, mask, pg, o, h, w, i, d + (size_t)o * w);
		for (int kx = 0; kx < 3; kx++) {
			/* g [nc, w] = border[ky, kx]^T [nc, no] d [no, w] */
			ts_sgemm(1, 0, nc, w, no, 1.0f, op->border + (ky * 3 + kx) * tap, nc, d, w, 0.0f,
			         g, w);
			for (int c = 0; c < nc; c++) {
				float *row = dx + c * hw + (size_t)sy * w;

				for (int q = 0; q < w; q++)
					row[ts_pad_src(q + kx - 1, w, op->pad)] += g[(size_t)c * w + q];
			}
		}
	}
	for (int side = 0; side < 2; side++) {
		int q = side ? w - 1 : 0, kx = side ? 2 : 0;
		int sx = ts_pad_src(side ? w : -1, w, op->pad);

		for (int o = 0; o < no; o++)
			for (int i = 0; i < h; i++)
				d[(size_t)o * h + i] = adj_in(dy, mask, pg, o, h, w, i, q);
		for (int ky = 0; ky < 3; ky++) {
			ts_sgemm(1, 0, nc, h, no, 1.0f, op->border + (ky * 3 + kx) * tap, nc, d, h, 0.0f,
			         g, h);
			for (int c = 0; c < nc; c++)
				for (int i = 0; i < h; i++) {
					int r = i + ky - 1;

					if (r >= 0 && r < h)
						dx[c * hw + (size_t)r * w + sx] += g[(size_t)c * h + i];
				}
		}
	}
}

/* After op's zero-padded kernel wrote y (without its ReLU): the border operator, then
 * the ReLU. */
static void
finish_border(const ts_conv_op *op, const float *x, const float *mask,
              const ts_pooled_grad *pg, int h, int w, float *y, int relu, float *ws)
{
	size_t hw = (size_t)h * w;

	if (op->adjoint)
		border_adjoint(op, x, mask, pg, h, w, y, ws);
	else
		border_forward(op, x, h, w, y, ws);
	if (relu)
		for (int o = 0; o < op->oc; o++)
			ts_relu_forward(y + o * hw, hw);
}

void
ts_conv_op_prepare(ts_conv_op *op, const float *wt, const float *bias, int ic, int oc,
                   int adjoint, ts_conv_algo algo, float *wmem)
{
	struct prep_job j = { op, wt, ic, adjoint };

	TS_ASSERT(op && wt);
	ts_conv_op_attach(op, bias, ic, oc, adjoint, algo, wmem);
	ts_par_for(op->oc, prep_item, &j);
}

static size_t
kernel_ws_floats(const ts_conv_op *op, int h, int w)
{
	if (op->algo == TS_CONV_IM2COL) {
		return (size_t)ts_par_threads() * (ts_conv_ws_floats(op->ic, op->oc, h, w) + w);
	}
	if (op->algo == TS_CONV_DIRECT)
		return ts_direct_ws_floats(op, h, w);
	return ts_wino_ws_floats(op, h, w);
}

size_t
ts_conv_op_ws_floats(const ts_conv_op *op, int h, int w)
{
	size_t k = kernel_ws_floats(op, h, w);
	size_t b = border_op(op) ? border_ws_floats(op, h, w) : 0;

	/* the border operator runs after the kernel, in the same workspace */
	return k > b ? k : b;
}

/* --- im2col ops: items are row chunks, each with its own slice of the workspace. */

struct i2c_job {
	const ts_conv_op *op;
	const float *x, *mask;
	int h, w, nr, relu;
	float *y, *ws;
	size_t slice;
};

static void
i2c_item(void *ctx, int item, int thread)
{
	const struct i2c_job *j = ctx;
	const ts_conv_op *op = j->op;
	int r0 = item * j->nr, rows = r0 + j->nr <= j->h ? j->nr : j->h - r0;
	size_t hw = (size_t)j->h * j->w, off = (size_t)r0 * j->w, n = (size_t)rows * j->w;
	float *cols = j->ws + (size_t)thread * j->slice;

	if (j->mask)
		im2col_masked(j->x, j->mask, op->ic, j->h, j->w, r0, rows, cols,
		              cols + (size_t)9 * op->ic * n);
	else
		im2col(j->x, op->ic, j->h, j->w, r0, rows, cols);
	if (op->bias) {
		for (int o = 0; o < op->oc; o++) {
			float b = op->bias[o], *yo = j->y + o * hw + off;

			for (size_t q = 0; q < n; q++)
				yo[q] = b;
		}
	}
	ts_sgemm_serial(0, 0, op->oc, (int)n, 9 * op->ic, 1.0f, op->w, 9 * op->ic, cols, (int)n,
	                op->bias ? 1.0f : 0.0f, j->y + off, (int)hw);
	if (j->relu)
		for (int o = 0; o < op->oc; o++)
			ts_relu_forward(j->y + o * hw + off, n);
}

static double conv_seconds;

double
ts_conv_seconds(void)
{
	return conv_seconds;
}

static void run_op(const ts_conv_op *op, const float *x, const float *mask, int h, int w,
                   float *y, int relu, float *ws, size_t ws_floats);

void
ts_conv_op_run(const ts_conv_op *op, const float *x, const float *mask, int h, int w,
               float *y, int relu, float *ws, size_t ws_floats)
{
	double t0 = ts_now();

	if (border_op(op)) {
		TS_ASSERT(ws_floats >= border_ws_floats(op, h, w));
		run_op(op, x, mask, h, w, y, 0, ws, ws_floats);
		finish_border(op, x, mask, NULL, h, w, y, relu, ws);
	} else {
		run_op(op, x, mask, h, w, y, relu, ws, ws_floats);
	}
	conv_seconds += ts_now() - t0;
}

int
ts_conv_op_run_pool(const ts_conv_op *op, const float *x, int h, int w, float *py,
                    unsigned char *pidx, ts_pool_mode mode, float *ws, size_t ws_floats)
{
	double t0;

	TS_ASSERT(op && x && py && pidx && ws && h >= 2 && w >= 2);
	if ((op->algo != TS_CONV_WINO4 && op->algo != TS_CONV_WINO2) || border_op(op))
		return 0;
	t0 = ts_now();
	ts_wino_run_pool(op, x, h, w, py, pidx, mode, ws, ws_floats);
	conv_seconds += ts_now() - t0;
	return 1;
}

int
ts_conv_op_run_pooled(const ts_conv_op *op, const ts_pooled_grad *pg, int h, int w,
                      float *y, int relu, float *ws, size_t ws_floats)
{
	double t0;

	TS_ASSERT(op && pg && pg->dy && pg->idx && y && ws && h >= 1 && w >= 1);
	if (op->algo != TS_CONV_WINO4 && op->algo != TS_CONV_WINO2)
		return 0;
	t0 = ts_now();
	if (border_op(op)) {
		TS_ASSERT(ws_floats >= border_ws_floats(op, h, w));
		ts_wino_run_pooled(op, pg, h, w, y, 0, ws, ws_floats);
		finish_border(op, NULL, NULL, pg, h, w, y, relu, ws);
	} else {
		ts_wino_run_pooled(op, pg, h, w, y, relu, ws, ws_floats);
	}
	conv_seconds += ts_now() - t0;
	return 1;
}

static void
run_op(const ts_conv_op *op, const float *x, const float *mask, int h, int w, float *y,
       int relu, float *ws, size_t ws_floats)
{
	TS_ASSERT(op && x && y && ws && h >= 1 && w >= 1);
	TS_ASSERT(x != y && mask != y);
	if (op->algo == TS_CONV_IM2COL) {
		struct i2c_job j = { op, x, mask, h, w, chunk_rows(op->ic, h, w), relu, y, ws,
			             ts_conv_ws_floats(op->ic, op->oc, h, w) + w };
		int items = (h + j.nr - 1) / j.nr;

		TS_ASSERT(ws_floats >= j.slice);
		if ((size_t)ts_par_threads() * j.slice > ws_floats) {
			/* a workspace sized for fewer threads: run the items one by one */
			for (int i = 0; i < items; i++)
				i2c_item(&j, i, 0);
			return;
		}
		ts_par_for(items, i2c_item, &j);
	} else if (op->algo == TS_CONV_DIRECT) {
		ts_direct_run(op, x, mask, h, w, y, relu, ws, ws_floats);
	} else {
		ts_wino_run(op, x, mask, h, w, y, relu, ws, ws_floats);
	}
}
