/* winograd: the Winograd F(4x4, 3x3) and F(2x2, 3x3) convolutions behind ts_conv_op
 * (see conv.h and winograd.h).
 *
 * An op's weights are the kernels transformed once (G g G^T, computed in double) and
 * stored as alpha^2 matrices [oc, ic]; a run goes over the image in super-chunks of
 * tiles, each in three parallel phases: the input transform (items: input channels;
 * the ReLU mask of the input applied on the way), the alpha^2 products (one sgemm
 * each), the output transform (items: output channels; bias and ReLU fused).  Two
 * fusions with a 2x2 pooling: the output transform can pool its rows in pairs and
 * write the pooled map and the pool's bytes instead of its output (ts_wino_run_pool),
 * and the input transform can form a pool's gradient from dy and those bytes instead
 * of reading it (ts_wino_run_pooled).  The work split depends only on the shapes: the
 * bits do not depend on the thread count.
 *
 * Invariants: nothing allocates (transform buffers are on the stack, the super-chunk
 * lives in the caller's workspace); BLAS is reached through blas.h, the pooling
 * rows through pool.h: nothing here calls conv.c. */
#include "winograd.h"

#include <string.h>

#include "tessera/blas.h"
#include "tessera/error.h"
#include "tessera/par.h"
#include "tessera/pool.h"

/* Winograd F(m x m, 3x3), alpha = m + 2 (Lavin & Gray 2016, interpolation points
 * 0, -1, 1, -2, 2 and infinity for m = 4; 0, -1, 1 for m = 2):
 * Y = A^T [(G g G^T) .* (B^T d B)] A for a 3x3 kernel g and an alpha x alpha input
 * tile d; the tile's m x m outputs are the correlation of d with g. */
static const double G2[4][3] = {
	{ 1, 0, 0 }, { 0.5, 0.5, 0.5 }, { 0.5, -0.5, 0.5 }, { 0, 0, 1 },
};
static const double G4[6][3] = {
	{ 1.0 / 4, 0, 0 },
	{ -1.0 / 6, -1.0 / 6, -1.0 / 6 },
	{ -1.0 / 6, 1.0 / 6, -1.0 / 6 },
	{ 1.0 / 24, 1.0 / 12, 1.0 / 6 },
	{ 1.0 / 24, -1.0 / 12, 1.0 / 6 },
	{ 0, 0, 1 },
};

/* The 1-D transforms, written out so the zeros cost nothing, over n tiles at once
 * (separate restrict-qualified arrays, so the loops vectorize without alias checks). */
static void __attribute__((noinline))
bt2(const float *restrict d0, const float *restrict d1, const float *restrict d2,
    const float *restrict d3, float *restrict o0, float *restrict o1, float *restrict o2,
    float *restrict o3, int n)
{
	for (int k = 0; k < n; k++) {
		o0[k] = d0[k] - d2[k];
		o1[k] = d1[k] + d2[k];
		o2[k] = d2[k] - d1[k];
		o3[k] = d1[k] - d3[k];
	}
}

static void __attribute__((noinline))
bt4(const float *restrict d0, const float *restrict d1, const float *restrict d2,
    const float *restrict d3, const float *restrict d4, const float *restrict d5,
    float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
    float *restrict o4, float *restrict o5, int n)
{
	for (int k = 0; k < n; k++) {
		float a = d4[k] - 4.0f * d2[k], b = d3[k] - 4.0f * d1[k];
		float c = d4[k] - d2[k], e = 2.0f * (d3[k] - d1[k]);

		o0[k] = 4.0f * d0[k] - 5.0f * d2[k] + d4[k];
		o1[k] = a + b;
		o2[k] = a - b;
		o3[k] = c + e;
		o4[k] = c - e;
		o5[k] = 4.0f * d1[k] - 5.0f * d3[k] + d5[k];
	}
}

/* dst = src where msk > 0, else 0 (a ReLU's backward pass on the way in). */
static void __attribute__((noinline))
mask_copy(const float *restrict src, const float *restrict msk, float *restrict dst, int n)
{
	for (int q = 0; q < n; q++)
		dst[q] = msk[q] > 0.0f ? src[q] : 0.0f;
}

/* A^T for m = 4: four outputs from six inputs. */
static void __attribute__((noinline))
at4(const float *restrict p0, const float *restrict p1, const float *restrict p2,
    const float *restrict p3, const float *restrict p4, const float *restrict p5,
    float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3, int n)
{
	for (int k = 0; k < n; k++) {
		float s12 = p1[k] + p2[k], d12 = p1[k] - p2[k];
		float s34 = p3[k] + p4[k], d34 = p3[k] - p4[k];

		o0[k] = p0[k] + s12 + s34;
		o1[k] = d12 + 2.0f * d34;
		o2[k] = s12 + 4.0f * s34;
		o3[k] = d12 + 8.0f * d34 + p5[k];
	}
}

static void __attribute__((noinline))
at2(const float *restrict p0, const float *restrict p1, const float *restrict p2,
    const float *restrict p3, float *restrict o0, float *restrict o1, int n)
{
	for (int k = 0; k < n; k++) {
		o0[k] = p0[k] + p1[k] + p2[k];
		o1[k] = p1[k] - p2[k] - p3[k];
	}
}

/* The horizontal A^T: out[m*k + s] for tile k, plus the bias. */
static void __attribute__((noinline))
at4_rows(const float *restrict q0, const float *restrict q1, const float *restrict q2,
         const float *restrict q3, const float *restrict q4, const float *restrict q5,
         float *restrict out, float b, int n)
{
	for (int k = 0; k < n; k++) {
		float s12 = q1[k] + q2[k], d12 = q1[k] - q2[k];
		float s34 = q3[k] + q4[k], d34 = q3[k] - q4[k];

		out[4 * k + 0] = q0[k] + s12 + s34 + b;
		out[4 * k + 1] = d12 + 2.0f * d34 + b;
		out[4 * k + 2] = s12 + 4.0f * s34 + b;
		out[4 * k + 3] = d12 + 8.0f * d34 + q5[k] + b;
	}
}

static void __attribute__((noinline))
at2_rows(const float *restrict q0, const float *restrict q1, const float *restrict q2,
         const float *restrict q3, float *restrict out, float b, int n)
{
	for (int k = 0; k < n; k++) {
		out[2 * k + 0] = q0[k] + q1[k] + q2[k] + b;
		out[2 * k + 1] = q1[k] - q2[k] - q3[k] + b;
	}
}

/* Largest number of tiles handled in one pass over a tile row. */
#define SEG 64
/* Super-chunk budget: floats of transformed input plus products held at once (32 MiB:
 * measured best at 512x512 against 4, 8 and 64 MiB), but at least WINO_MIN_TILES
 * tiles, so that the products of the wide layers stay efficient sgemm shapes. */
#define WINO_BUDGET ((size_t)8 << 20)
#define WINO_MIN_TILES ((size_t)256)

int
ts_wino_m(ts_conv_algo algo)
{
	return algo == TS_CONV_WINO4 ? 4 : 2;
}

void
ts_wino_prepare_block(const ts_conv_op *op, int o, int c0, int nc, const double g[9][64])
{
	int a = ts_wino_m(op->algo) + 2, oic = op->ic, ooc = op->oc;
	const double(*G)[3] = op->algo == TS_CONV_WINO4 ? G4 : G2;
	double t[6][3][64];

	for (int i = 0; i < a; i++) /* t = G g */
		for (int x = 0; x < 3; x++)
			for (int c = 0; c < nc; c++)
				t[i][x][c] = G[i][0] * g[x][c] + G[i][1] * g[3 + x][c] + G[i][2] * g[6 + x][c];
	for (int i = 0; i < a; i++) /* u = t G^T */
		for (int q = 0; q < a; q++) {
			float *dst = op->w + ((size_t)(i * a + q) * ooc + o) * oic + c0;

			for (int c = 0; c < nc; c++)
				dst[c] = (float)(t[i][0][c] * G[q][0] + t[i][1][c] * G[q][1] +
				                 t[i][2][c] * G[q][2]);
		}
}

/* Tiles per super-chunk for a Winograd op on an h x w image: as many as fit the
 * budget, at least 1, then evened out over the super-chunks. */
static size_t
wino_chunk(const ts_conv_op *op, int h, int w, size_t *nchunks)
{
	int m = ts_wino_m(op->algo), a = m + 2;
	size_t nt = (size_t)((h + m - 1) / m) * (size_t)((w + m - 1) / m);
	size_t per = (size_t)a * a * (op->ic + op->oc);
	size_t s = WINO_BUDGET / per, n;

	if (s < WINO_MIN_TILES)
		s = WINO_MIN_TILES;
	if (s > nt)
		s = nt;
	n = (nt + s - 1) / s;
	*nchunks = n;
	return (nt + n - 1) / n;
}

size_t
ts_wino_ws_floats(const ts_conv_op *op, int h, int w)
{
	size_t n, s = wino_chunk(op, h, w, &n);
	size_t a = (size_t)ts_wino_m(op->algo) + 2;

	return a * a * (op->ic + op->oc) * s;
}

/* --- Winograd ops: per super-chunk of tiles, three parallel phases: input transform
 * (items: input channels), alpha^2 products (items: alpha^2 points), output transform
 * (items: output channels). */

struct wino_job {
	const ts_conv_op *op;
	const float *x, *mask;
	const ts_pooled_grad *pg; /* or the input is the pooling's gradient, formed here */
	float *py;                /* or relu(y) pooled is written instead of y: */
	unsigned char *pidx;      /* with the pool's bytes */
	ts_pool_mode pmode;
	int h, w, m, a, tw, relu;
	size_t t0, t1;        /* tiles [t0, t1) of this super-chunk (row-major) */
	float *v, *p;         /* v: [a*a, ic, T]; p: [a*a, oc, T]; T = t1 - t0 */
	float *y;
};

/* The run of tiles of one tile row that starts at tile t of the super-chunk: tile
 * row ty, first column tx0, n <= SEG tiles. */
static void
segment(const struct wino_job *j, size_t t, int *ty, int *tx0, int *n)
{
	size_t e;

	*ty = (int)(t / (size_t)j->tw);
	*tx0 = (int)(t % (size_t)j->tw);
	e = t + (size_t)(j->tw - *tx0 < SEG ? j->tw - *tx0 : SEG);
	*n = (int)((e < j->t1 ? e : j->t1) - t);
}

/* dst[q] for q in [qa, qb) = column x0 + q of row iy of channel c of the gradient a
 * 2x2 pooling passes back (ts_pool_backward_idx, formed on the fly from dy and the
 * bytes of the pool, in the same arithmetic): windows of 16 at a time, the even and
 * odd columns of each computed apart and interleaved. */
static void
pooled_row(const ts_pooled_grad *pg, int c, int h, int w, int iy, int x0, int qa, int qb,
           float *dst)
{
	int oh = h / 2, ow = w / 2, xa = x0 + qa, xb = x0 + qb;
	int k0 = xa / 2, k1 = (xb + 1) / 2 < ow ? (xb + 1) / 2 : ow;
	const float *g;
	const unsigned char *id;
	float tmp[SEG * 4 + 48];

	if (iy >= 2 * oh) { /* the odd last row: no window */
		memset(dst + qa, 0, (size_t)(qb - qa) * sizeof *dst);
		return;
	}
	g = pg->dy + ((size_t)c * oh + iy / 2) * ow;
	id = pg->idx + ((size_t)c * oh + iy / 2) * ow;
	/* tmp[2 (k - k0) + e] = column 2 k + e */
	if (k1 > k0)
		ts_pool_grad_row(id + k0, g + k0, k1 - k0, pg->mode, pg->relu, iy & 1, tmp);
	for (int x = 2 * k1; x < xb; x++) /* the odd last column */
		tmp[x - 2 * k0] = 0.0f;
	memcpy(dst + qa, tmp + (xa - 2 * k0), (size_t)(qb - qa) * sizeof *dst);
}

static void
wino_in_item(void *ctx, int c, int thread)
{
	const struct wino_job *j = ctx;
	int m = j->m, a = j->a, ic = j->op->ic;
	size_t hw = (size_t)j->h * j->w, T = j->t1 - j->t0;
	const float *xc = j->x ? j->x + c * hw : NULL, *mc = j->mask ? j->mask + c * hw : NULL;
	float rb[6][SEG * 4 + 8], vb[6][SEG * 4 + 8], ph[6][4][SEG + 1];
	/* a forward op reads its padding here; an adjoint's is conv.c's border operator */
	ts_pad_mode pad = j->op->adjoint ? TS_PAD_ZERO : j->op->pad;
	int n;

	(void)thread;
	for (size_t t = j->t0; t < j->t1; t += (size_t)n) {
		int ty, tx0, len, x0;
		size_t k0 = t - j->t0;
		float *o[6];

		segment(j, t, &ty, &tx0, &n);
		len = n * m + 2;
		x0 = tx0 * m - 1;

		/* the a input rows of this tile row, zero outside the image (or the
		 * forward op's padding on the rows and columns -1 and h, w: what is further
		 * out feeds only outputs outside the image); columns up to (n + 1) * m >= len
		 * so the phase split below needs no bounds */
		{
			int full = (n + 1) * m;
			int qa = x0 < 0 ? -x0 : 0;                     /* first column inside */
			int qb = j->w - x0 < full ? j->w - x0 : full;  /* one past the last */

			for (int r = 0; r < a; r++) {
				int iy = ty * m - 1 + r;
				float *dst = rb[r];
				const float *src, *msk;

				if (pad && (iy == -1 || iy == j->h))
					iy = ts_pad_src(iy, j->h, pad);
				if (iy < 0 || iy >= j->h) {
					memset(dst, 0, (size_t)full * sizeof *dst);
					continue;
				}
				for (int q = 0; q < qa; q++)
					dst[q] = 0.0f;
				for (int q = qb; q < full; q++)
					dst[q] = 0.0f;
				if (j->pg) {
					pooled_row(j->pg, c, j->h, j->w, iy, x0, qa, qb, dst);
					continue;
				}
				src = xc + (size_t)iy * j->w + x0;
				if (mc) {
					msk = mc + (size_t)iy * j->w + x0;
					mask_copy(src + qa, msk + qa, dst + qa, qb - qa);
				} else {
					memcpy(dst + qa, src + qa, (size_t)(qb - qa) * sizeof *dst);
				}
				if (pad) {
					if (qa > 0) /* column -1 */
						dst[qa - 1] = src[-x0 + ts_pad_src(-1, j->w, pad)];
					if (qb < full) /* column w */
						dst[qb] = src[-x0 + ts_pad_src(j->w, j->w, pad)];
				}
			}
			len = full;
		}
		/* vertical: vb[i] = sum_r BT[i][r] rb[r] over the whole row */
		if (m == 4)
			bt4(rb[0], rb[1], rb[2], rb[3], rb[4], rb[5], vb[0], vb[1], vb[2], vb[3],
			    vb[4], vb[5], len);
		else
			bt2(rb[0], rb[1], rb[2], rb[3], vb[0], vb[1], vb[2], vb[3], len);
		/* horizontal, per tile: split each vb row into its m phases (plus one tile
		 * of spill for the taps m and m+1), then transform phase vectors */
		for (int i = 0; i < a; i++) {
			if (m == 4) {
				for (int k = 0; k <= n; k++) {
					ph[i][0][k] = vb[i][4 * k + 0];
					ph[i][1][k] = vb[i][4 * k + 1];
					ph[i][2][k] = vb[i][4 * k + 2];
					ph[i][3][k] = vb[i][4 * k + 3];
				}
			} else {
				for (int k = 0; k <= n; k++) {
					ph[i][0][k] = vb[i][2 * k + 0];
					ph[i][1][k] = vb[i][2 * k + 1];
				}
			}
			for (int jj = 0; jj < a; jj++)
				o[jj] = j->v + ((size_t)(i * a + jj) * ic + c) * T + k0;
			if (m == 4)
				bt4(ph[i][0], ph[i][1], ph[i][2], ph[i][3], ph[i][0] + 1, ph[i][1] + 1,
				    o[0], o[1], o[2], o[3], o[4], o[5], n);
			else
				bt2(ph[i][0], ph[i][1], ph[i][0] + 1, ph[i][1] + 1, o[0], o[1], o[2], o[3],
				    n);
		}
	}
}

static void
wino_gemm_item(void *ctx, int xi, int thread)
{
	const struct wino_job *j = ctx;
	const ts_conv_op *op = j->op;
	int T = (int)(j->t1 - j->t0);

	(void)thread;
	ts_sgemm_serial(0, 0, op->oc, T, op->ic, 1.0f, op->w + (size_t)xi * op->oc * op->ic,
	                op->ic, j->v + (size_t)xi * op->ic * T, T, 0.0f,
	                j->p + (size_t)xi * op->oc * T, T);
}

static void
wino_out_item(void *ctx, int o, int thread)
{
	const struct wino_job *j = ctx;
	int m = j->m, a = j->a, oc = j->op->oc;
	size_t hw = (size_t)j->h * j->w, T = j->t1 - j->t0;
	float b = j->op->bias ? j->op->bias[o] : 0.0f;
	float vt[4][6][SEG], row[4][SEG * 4];
	float *yo = j->y ? j->y + o * hw : NULL;
	int n;

	(void)thread;
	for (size_t t = j->t0; t < j->t1; t += (size_t)n) {
		int ty, tx0, ncopy;
		size_t k0 = t - j->t0;

		segment(j, t, &ty, &tx0, &n);
		ncopy = j->w - tx0 * m < n * m ? j->w - tx0 * m : n * m;

		/* vertical: vt[r][jj] = sum_i AT[r][i] P[i][jj] */
		for (int jj = 0; jj < a; jj++) {
			const float *pp[6];

			for (int i = 0; i < a; i++)
				pp[i] = j->p + ((size_t)(i * a + jj) * oc + o) * T + k0;
			if (m == 4)
				at4(pp[0], pp[1], pp[2], pp[3], pp[4], pp[5], vt[0][jj], vt[1][jj],
				    vt[2][jj], vt[3][jj], n);
			else
				at2(pp[0], pp[1], pp[2], pp[3], vt[0][jj], vt[1][jj], n);
		}
		/* horizontal: row[r][k*m + s] = sum_jj AT[s][jj] vt[r][jj][k] (+ bias) */
		for (int r = 0; r < m; r++) {
			float *out = row[r];
			int iy = ty * m + r;

			if (iy >= j->h)
				break;
			if (m == 4)
				at4_rows(vt[r][0], vt[r][1], vt[r][2], vt[r][3], vt[r][4], vt[r][5], out, b,
				         n);
			else
				at2_rows(vt[r][0], vt[r][1], vt[r][2], vt[r][3], out, b, n);
			if (j->relu)
				ts_relu_forward(out, (size_t)ncopy);
			if (!j->py)
				memcpy(yo + (size_t)iy * j->w + (size_t)tx0 * m, out,
				       (size_t)ncopy * sizeof *out);
		}
		if (j->py) { /* the tile row's rows in pairs: its windows (m is even) */
			int oh = j->h / 2, ow = j->w / 2;

			for (int r = 0; r + 1 < m && (ty * m + r) / 2 < oh; r += 2) {
				size_t at = ((size_t)o * oh + (size_t)(ty * m + r) / 2) * ow +
				            (size_t)tx0 * m / 2;

				ts_pool_rows_idx(row[r], row[r + 1], ncopy / 2, j->pmode, j->py + at,
				                 j->pidx + at);
			}
		}
	}
}

struct pool_out {
	float *py;
	unsigned char *pidx;
	ts_pool_mode mode;
};

static void run(const ts_conv_op *op, const float *x, const float *mask,
                const ts_pooled_grad *pg, const struct pool_out *po, int h, int w, float *y,
                int relu, float *ws, size_t ws_floats);

void
ts_wino_run(const ts_conv_op *op, const float *x, const float *mask, int h, int w, float *y,
            int relu, float *ws, size_t ws_floats)
{
	run(op, x, mask, NULL, NULL, h, w, y, relu, ws, ws_floats);
}

void
ts_wino_run_pool(const ts_conv_op *op, const float *x, int h, int w, float *py,
                 unsigned char *pidx, ts_pool_mode mode, float *ws, size_t ws_floats)
{
	struct pool_out po = { py, pidx, mode };

	run(op, x, NULL, NULL, &po, h, w, NULL, 1, ws, ws_floats);
}

void
ts_wino_run_pooled(const ts_conv_op *op, const ts_pooled_grad *pg, int h, int w, float *y,
                   int relu, float *ws, size_t ws_floats)
{
	run(op, NULL, NULL, pg, NULL, h, w, y, relu, ws, ws_floats);
}

static void
run(const ts_conv_op *op, const float *x, const float *mask, const ts_pooled_grad *pg,
    const struct pool_out *po, int h, int w, float *y, int relu, float *ws, size_t ws_floats)
{
	struct wino_job j;
	size_t nch, s = wino_chunk(op, h, w, &nch);
	size_t nt = (size_t)((h + ts_wino_m(op->algo) - 1) / ts_wino_m(op->algo)) *
	            (size_t)((w + ts_wino_m(op->algo) - 1) / ts_wino_m(op->algo));

	TS_ASSERT(ws_floats >= ts_wino_ws_floats(op, h, w));
	memset(&j, 0, sizeof j);
	j.op = op;
	j.x = x;
	j.mask = mask;
	j.pg = pg;
	if (po) {
		j.py = po->py;
		j.pidx = po->pidx;
		j.pmode = po->mode;
	}
	j.h = h;
	j.w = w;
	j.m = ts_wino_m(op->algo);
	j.a = j.m + 2;
	j.tw = (w + j.m - 1) / j.m;
	j.relu = relu;
	j.y = y;
	for (size_t t0 = 0; t0 < nt; t0 += s) {
		size_t T;

		j.t0 = t0;
		j.t1 = t0 + s < nt ? t0 + s : nt;
		T = j.t1 - j.t0;
		j.v = ws;
		j.p = ws + (size_t)j.a * j.a * op->ic * T;
		ts_par_for(op->ic, wino_in_item, &j);
		ts_par_for(j.a * j.a, wino_gemm_item, &j);
		ts_par_for(op->oc, wino_out_item, &j);
	}
}
