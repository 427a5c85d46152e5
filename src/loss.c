/* loss: content, Gram/style and total-variation terms of the objective (see loss.h
 * and DESIGN.md for the exact normalization).
 *
 * Invariants: every function returns the raw (unweighted) term and only ADDS
 * weight * gradient into the caller's buffer; nothing allocates.  Sums over many
 * elements (means over millions of activations) are accumulated in double; the
 * gradients themselves are float, as the buffers they go into. */
#include "tessera/loss.h"

#include <math.h>

#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/par.h"
#include "gram.h"

/* Seconds inside the losses (main thread only, like every caller of ts_par_for). */
static double loss_seconds;

double
ts_loss_seconds(void)
{
	return loss_seconds;
}

/* Element-wise losses run in blocks fixed by the size (at least 32768 elements, at
 * most MAX_BLOCKS), each with its partial sum in double; the partials are added in
 * block order, so the value is the same bits for any thread count. */
#define MAX_BLOCKS 64
#define MIN_BLOCK 32768

static int
elem_blocks(size_t n)
{
	size_t nb = n / MIN_BLOCK;

	return nb < 1 ? 1 : nb > MAX_BLOCKS ? MAX_BLOCKS : (int)nb;
}

struct content_job {
	const float *f, *p;
	float *grad;
	size_t n;
	int nb;
	float scale;
	double part[MAX_BLOCKS];
};

static void
content_item(void *ctx, int b, int thread)
{
	struct content_job *j = ctx;
	size_t i0 = j->n * (size_t)b / (size_t)j->nb, i1 = j->n * (size_t)(b + 1) / (size_t)j->nb;
	const float *f = j->f, *p = j->p;
	float *grad = j->grad;
	double acc[8] = { 0 }, sum = 0.0;
	size_t i = i0;

	(void)thread;
	/* one pass, eight sums in double side by side (so the loop vectorizes), added in a
	 * fixed order after */
	for (; i + 8 <= i1; i += 8) {
		for (int k = 0; k < 8; k++) {
			double d = (double)f[i + k] - (double)p[i + k];

			acc[k] += d * d;
		}
		if (grad)
			for (int k = 0; k < 8; k++)
				grad[i + k] += j->scale * (f[i + k] - p[i + k]);
	}
	for (; i < i1; i++) {
		double d = (double)f[i] - (double)p[i];

		acc[0] += d * d;
		if (grad)
			grad[i] += j->scale * (f[i] - p[i]);
	}
	for (int k = 0; k < 8; k++)
		sum += acc[k];
	j->part[b] = sum;
}

double
ts_loss_content(const float *f, const float *p, size_t n, float weight, float *grad)
{
	struct content_job j;
	double sum = 0.0, t0 = ts_now();

	TS_ASSERT(f && p && n > 0);
	j.f = f;
	j.p = p;
	j.grad = grad;
	j.n = n;
	j.nb = elem_blocks(n);
	/* d/df mean((f - p)^2) = 2 (f - p) / n */
	j.scale = (float)(2.0 * weight / (double)n);
	ts_par_for(j.nb, content_item, &j);
	for (int b = 0; b < j.nb; b++)
		sum += j.part[b];
	loss_seconds += ts_now() - t0;
	return sum / (double)n;
}

/* Two ways to split a Gram g = F F^T over the threads, both fixed by the shape:
 *   - wide channels and short rows (c >= PANEL_MIN_C, hw < PANEL_MAX_HW: relu5_1 of a
 *     512 tile): PANELS row panels of the upper triangle of about equal area, each a
 *     syrk of its diagonal block and a gemm of the block right of it; every entry is
 *     computed once, no partial sums, no workspace;
 *   - otherwise (hw large enough for two blocks of 2048 columns): blocks along hw, a
 *     partial Gram each in the workspace, summed in block order.  Measured faster
 *     than panels wherever it gives two or more blocks (relu3_1 of a 512 tile:
 *     13.8 ms by panels, 10.0 ms by 8 blocks; relu4_1: 11.3 ms, 8.9 ms by 2 blocks).
 *     A block's partial Gram is a syrk, or for narrow maps (relu1_1, relu2_1) the
 *     kernel of gram.c (ts_gram_tiles_use says when), which copies its chunks of
 *     columns to a buffer of the block's own in the workspace. */
#define PANEL_MIN_C 192
#define PANEL_MAX_HW 4096
#define PANELS 8

/* Blocks of the hw axis for a Gram of f [c, hw]: up to 16, at least 2048 columns each
 * (fewer columns make syrk inefficient). */
static int
gram_blocks(int c, int hw)
{
	int nb = hw / 2048;

	(void)c;
	return nb < 1 ? 1 : nb > 16 ? 16 : nb;
}

/* First column of block b of nb: on a multiple of 16 columns (aligned rows stay
 * aligned), the last block taking what is left. */
static int
gram_block_start(int hw, int nb, int b)
{
	return b >= nb ? hw : (int)((long long)hw * b / nb) & ~15;
}

static int
use_panels(int c, int hw)
{
	return c >= PANEL_MIN_C && hw < PANEL_MAX_HW;
}

/* Floats of one block's partial Gram. */
static size_t
part_floats(int c)
{
	return ts_gram_tiles_use(c) ? ts_gram_tiles_floats(c) : (size_t)c * (size_t)c;
}

/* Items of the style gradient by gram.c's kernel: column blocks of about GRAD_COLS,
 * at most GRAD_ITEMS (each has a packing buffer of its own in the workspace). */
#define GRAD_COLS 4096
#define GRAD_ITEMS 16

static int
grad_items(int hw)
{
	int nb = hw / GRAD_COLS;

	return nb < 1 ? 1 : nb > GRAD_ITEMS ? GRAD_ITEMS : nb;
}

size_t
ts_gram_ws_floats(int c, int hw)
{
	size_t gram, grad;

	/* the Gram's partial sums (and with gram.c's kernel a packing buffer per block);
	 * after the Gram the same floats hold the style gradient's packing buffers */
	if (use_panels(c, hw))
		gram = 1;
	else if (!ts_gram_tiles_use(c))
		gram = (size_t)gram_blocks(c, hw) * part_floats(c);
	else
		gram = (size_t)gram_blocks(c, hw) * (part_floats(c) + ts_gram_pack_floats(c));
	grad = ts_gram_grad_use(c) ? (size_t)grad_items(hw) * ts_gram_pack_floats(c) : 0;
	return gram > grad ? gram : grad;
}

struct gram_job {
	const float *f;
	int c, hw, nb, tiles;
	float *part;  /* hw blocks: the partial Grams */
	float *g;     /* panels: the result */
	float alpha;  /* panels: the scale */
	int row[PANELS + 1];
};

static void
gram_item(void *ctx, int b, int thread)
{
	const struct gram_job *j = ctx;
	int k0 = gram_block_start(j->hw, j->nb, b), k1 = gram_block_start(j->hw, j->nb, b + 1);

	(void)thread;
	if (j->tiles)
		ts_gram_tiles(j->f, (size_t)j->hw, j->c, (size_t)k0, (size_t)k1,
		              j->part + (size_t)b * ts_gram_tiles_floats(j->c),
		              j->part + (size_t)j->nb * ts_gram_tiles_floats(j->c) +
		                      (size_t)b * ts_gram_pack_floats(j->c));
	else
		ts_ssyrk_upper(j->c, k1 - k0, 1.0f, j->f + k0, j->hw, 0.0f,
		               j->part + (size_t)b * j->c * j->c, j->c);
}

static void
panel_item(void *ctx, int b, int thread)
{
	const struct gram_job *j = ctx;
	int r0 = j->row[b], r1 = j->row[b + 1], c = j->c;
	const float *fr = j->f + (size_t)r0 * j->hw;
	float *g = j->g + (size_t)r0 * c;

	(void)thread;
	if (r1 <= r0)
		return;
	ts_ssyrk_upper(r1 - r0, j->hw, j->alpha, fr, j->hw, 0.0f, g + r0, c);
	if (r1 < c)
		ts_sgemm_serial(0, 1, r1 - r0, c - r1, j->hw, j->alpha, fr, j->hw,
		                j->f + (size_t)r1 * j->hw, j->hw, 0.0f, g + r1, c);
}

void
ts_gram(const float *f, int c, int hw, float *g, float *ws)
{
	ts_gram_scaled(f, c, hw, (float)(1.0 / ((double)c * hw)), g, ws);
}

void
ts_gram_scaled(const float *f, int c, int hw, float scale, float *g, float *ws)
{
	struct gram_job j = { f, c, hw, gram_blocks(c, hw), ts_gram_tiles_use(c), ws, g, 0.0f,
		              { 0 } };
	size_t pf = part_floats(c);

	TS_ASSERT(f && g && ws && c > 0 && hw > 0);
	if (use_panels(c, hw)) {
		/* panel k ends where the rows above hold k/PANELS of the triangle's area
		 * (r c - r^2 / 2 = k/PANELS c^2 / 2), on a multiple of 16 rows */
		j.alpha = scale;
		for (int k = 1; k < PANELS; k++) {
			int r = (int)(c * (1.0 - sqrt(1.0 - (double)k / PANELS)) + 8) / 16 * 16;

			j.row[k] = r < j.row[k - 1] ? j.row[k - 1] : r > c ? c : r;
		}
		j.row[PANELS] = c;
		ts_par_for(PANELS, panel_item, &j);
		for (int r = 0; r < c; r++)
			for (int q = r + 1; q < c; q++)
				g[(size_t)q * c + r] = g[(size_t)r * c + q];
		return;
	}
	/* g: [c, c] = f [c, hw] * f^T [hw, c] / (c * hw): upper triangles of the block
	 * products, summed in block order, then mirrored */
	ts_par_for(j.nb, gram_item, &j);
	for (int r = 0; r < c; r++) {
		for (int q = r; q < c; q++) {
			size_t at = j.tiles ? ts_gram_tile_at(c, r, q) : (size_t)r * c + q;
			float s = ws[at];

			for (int b = 1; b < j.nb; b++)
				s += ws[b * pf + at];
			g[(size_t)r * c + q] = s * scale;
			g[(size_t)q * c + r] = s * scale;
		}
	}
}

/* The style gradient grad += alpha * s f by gram.c's kernel, in grad_items(hw) column
 * blocks fixed by the shape, of whole panels of 48 columns; pack: the items' packing
 * buffers. */
struct grad_job {
	const float *s, *f;
	float *grad, *pack;
	int c, hw, nb, relu;
	size_t panels; /* of 48 columns */
	float alpha;
};

static void
grad_item(void *ctx, int b, int thread)
{
	const struct grad_job *j = ctx;
	size_t p0 = 48 * (j->panels * (size_t)b / (size_t)j->nb);
	size_t p1 = 48 * (j->panels * (size_t)(b + 1) / (size_t)j->nb);

	(void)thread;
	ts_gram_grad(j->s, j->f, j->c, (size_t)j->hw, p0, p1 < (size_t)j->hw ? p1 : (size_t)j->hw,
	             j->alpha, j->grad, j->pack + (size_t)b * ts_gram_pack_floats(j->c), j->relu);
}

/* Returns whether the ReLU mask (relu: asked for) was applied too. */
static int
style_grad(const float *s, const float *f, int c, int hw, float alpha, float *grad,
           float *pack, int relu)
{
	struct grad_job j = { s, f, grad, pack, c, hw, grad_items(hw), relu,
		              ((size_t)hw + 47) / 48, alpha };

	if (!ts_gram_grad_use(c)) {
		ts_sgemm(0, 0, c, hw, c, alpha, s, c, f, hw, 1.0f, grad, hw);
		return 0;
	}
	ts_par_for(j.nb, grad_item, &j);
	return relu;
}

size_t
ts_loss_style_ws_floats(int c, int hw)
{
	return (size_t)c * c + ts_gram_ws_floats(c, hw);
}

double
ts_loss_style(const float *f, int c, int hw, const float *t, float weight, float *ws,
              float *grad)
{
	return ts_loss_style_masked(f, c, hw, t, weight, ws, grad, NULL);
}

double
ts_loss_style_masked(const float *f, int c, int hw, const float *t, float weight, float *ws,
                     float *grad, int *relu)
{
	size_t cc = (size_t)c * (size_t)c;
	double sum = 0.0, t0 = ts_now();
	double dscale = 2.0 / (double)cc;
	int done = 0;

	TS_ASSERT(f && t && ws && c > 0 && hw > 0);
	ts_gram(f, c, hw, ws, ws + cc); /* ws: [c, c] = G */
	for (size_t i = 0; i < cc; i++) {
		double d = (double)ws[i] - (double)t[i];

		sum += d * d;
	}
	if (grad) {
		/* ws becomes the symmetric part of dL/dG = 2 (G - T) / c^2.  dL/dF =
		 * (dL/dG + dL/dG^T) F / (c hw); symmetrizing makes this exact for any target
		 * T (a blend of Grams is symmetric, a test's random T need not be).  By
		 * 16 x 16 blocks, so the transposed reads stay in cache. */
		for (int i0 = 0; i0 < c; i0 += 16) {
			for (int j0 = i0; j0 < c; j0 += 16) {
				int i1 = i0 + 16 < c ? i0 + 16 : c, j1 = j0 + 16 < c ? j0 + 16 : c;

				for (int i = i0; i < i1; i++) {
					float *ri = ws + (size_t)i * c;
					const float *ti = t + (size_t)i * c;

					for (int j = j0 > i ? j0 : i; j < j1; j++) {
						float *rj = ws + (size_t)j * c;
						double gij = (double)ri[j] - ti[j];
						double gji = (double)rj[i] - t[(size_t)j * c + i];
						float v = (float)(dscale * 0.5 * (gij + gji));

						ri[j] = v;
						rj[i] = v;
					}
				}
			}
		}
		/* grad: [c, hw] += weight * 2 * sym(dL/dG) [c, c] * F [c, hw] / (c hw) */
		done = style_grad(ws, f, c, hw, (float)(2.0 * weight / ((double)c * hw)), grad,
		                  ws + cc, relu && *relu);
	}
	if (relu)
		*relu = done;
	loss_seconds += ts_now() - t0;
	return sum / (double)cc;
}

/* TV in blocks of whole rows of one channel.  Each item writes the gradient of its own
 * rows only, gathering per pixel what the four differences touching it add, in the
 * order a plain sweep would add them (horizontal left then right, vertical above then
 * below), so the gradient is the same bits as the serial sweep's. */
struct tv_job {
	const float *x;
	float *grad;
	int h, w, rows; /* rows per block */
	int nb;         /* blocks per channel */
	float sx, sy;
	double part_x[3 * MAX_BLOCKS], part_y[3 * MAX_BLOCKS];
};

/* The gradient of one pixel, the terms added in the serial sweep's order. */
static inline float
tv_pixel(const float *r, int q, int w, float v, float sx, float sy, int left, int right,
         int up, int down)
{
	if (left)
		v += sx * (r[q] - r[q - 1]);
	if (right)
		v -= sx * (r[q + 1] - r[q]);
	if (up)
		v += sy * (r[q] - r[q - w]);
	if (down)
		v -= sy * (r[q + w] - r[q]);
	return v;
}

static void
tv_item(void *ctx, int item, int thread)
{
	struct tv_job *j = ctx;
	int ch = item / j->nb, b = item % j->nb, w = j->w, h = j->h;
	int i0 = b * j->rows, i1 = i0 + j->rows < h ? i0 + j->rows : h;
	size_t plane = (size_t)h * (size_t)w;
	double ax[8] = { 0 }, ay[8] = { 0 }, sum_x = 0.0, sum_y = 0.0;

	(void)thread;
	for (int i = i0; i < i1; i++) {
		const float *r = j->x + ch * plane + (size_t)i * w;
		int q;

		/* the sums eight side by side in double (the loops vectorize) */
		for (q = 0; q + 8 < w; q += 8)
			for (int k = 0; k < 8; k++) {
				double d = (double)(r[q + k + 1] - r[q + k]);

				ax[k] += d * d;
			}
		for (; q + 1 < w; q++) {
			double d = (double)(r[q + 1] - r[q]);

			ax[0] += d * d;
		}
		if (i + 1 < h) {
			for (q = 0; q + 8 <= w; q += 8)
				for (int k = 0; k < 8; k++) {
					double d = (double)(r[q + k + w] - r[q + k]);

					ay[k] += d * d;
				}
			for (; q < w; q++) {
				double d = (double)(r[q + w] - r[q]);

				ay[0] += d * d;
			}
		}
		if (!j->grad)
			continue;
		{
			float *g = j->grad + ch * plane + (size_t)i * w;
			int up = i > 0, down = i + 1 < h;

			g[0] = tv_pixel(r, 0, w, g[0], j->sx, j->sy, 0, w > 1, up, down);
			if (up && down)
				for (q = 1; q + 1 < w; q++)
					g[q] = tv_pixel(r, q, w, g[q], j->sx, j->sy, 1, 1, 1, 1);
			else
				for (q = 1; q + 1 < w; q++)
					g[q] = tv_pixel(r, q, w, g[q], j->sx, j->sy, 1, 1, up, down);
			if (w > 1)
				g[w - 1] = tv_pixel(r, w - 1, w, g[w - 1], j->sx, j->sy, 1, 0, up, down);
		}
	}
	for (int k = 0; k < 8; k++) {
		sum_x += ax[k];
		sum_y += ay[k];
	}
	j->part_x[item] = sum_x;
	j->part_y[item] = sum_y;
}

double
ts_loss_tv(const float *x, int h, int w, float weight, float *grad)
{
	struct tv_job j;
	double sum_x = 0.0, sum_y = 0.0, loss = 0.0, t0 = ts_now();
	double nx = 3.0 * h * (w - 1), ny = 3.0 * (h - 1) * w;

	TS_ASSERT(x && h > 0 && w > 0);
	j.x = x;
	j.grad = grad;
	j.h = h;
	j.w = w;
	/* rows per block from the wanted block count; the count then follows from the
	 * rows (fewer when h is not a multiple) */
	j.nb = elem_blocks((size_t)h * w);
	j.rows = (h + j.nb - 1) / j.nb;
	j.nb = (h + j.rows - 1) / j.rows;
	/* no differences along an axis of length 1: that term is 0 */
	j.sx = w > 1 ? (float)(2.0 * weight / nx) : 0.0f;
	j.sy = h > 1 ? (float)(2.0 * weight / ny) : 0.0f;
	ts_par_for(3 * j.nb, tv_item, &j);
	for (int k = 0; k < 3 * j.nb; k++) {
		sum_x += j.part_x[k];
		sum_y += j.part_y[k];
	}
	if (w > 1)
		loss += sum_x / nx;
	if (h > 1)
		loss += sum_y / ny;
	loss_seconds += ts_now() - t0;
	return loss;
}

/* BT.601 chroma of RGB (scale-free: the JPEG matrix's rows, offsets dropped). */
const float ts_loss_chroma_cb[3] = { -0.168736f, -0.331264f, 0.5f };
const float ts_loss_chroma_cr[3] = { 0.5f, -0.418688f, -0.081312f };

/* One difference d = x(b) - x(a) of the three planes at offsets a, b: adds u^2 + v^2
 * (u, v its Cb, Cr) to *sum and s * d(u^2 + v^2)/dx to the gradient. */
static inline void
chroma_diff(const float *x, float *g, size_t plane, size_t a, size_t b, float s,
            double *sum)
{
	const float *cb = ts_loss_chroma_cb, *cr = ts_loss_chroma_cr;
	float d0 = x[b] - x[a], d1 = x[plane + b] - x[plane + a];
	float d2 = x[2 * plane + b] - x[2 * plane + a];
	float u = cb[0] * d0 + cb[1] * d1 + cb[2] * d2;
	float v = cr[0] * d0 + cr[1] * d1 + cr[2] * d2;

	*sum += (double)u * u + (double)v * v;
	if (g) {
		for (int ch = 0; ch < 3; ch++) {
			float t = s * (u * cb[ch] + v * cr[ch]);

			g[ch * plane + b] += t;
			g[ch * plane + a] -= t;
		}
	}
}

double
ts_loss_tv_chroma(const float *x, int h, int w, float weight, float *grad)
{
	size_t plane = (size_t)h * (size_t)w;
	double nx = 2.0 * h * (w - 1), ny = 2.0 * (h - 1) * w, sx = 0, sy = 0, loss = 0;
	double t0 = ts_now();
	/* d/dd mean(u^2 + v^2) = 2 (u cb + v cr) / n */
	float ax = w > 1 ? (float)(2.0 * weight / nx) : 0.0f;
	float ay = h > 1 ? (float)(2.0 * weight / ny) : 0.0f;

	TS_ASSERT(x && h > 0 && w > 0);
	/* serial, in a fixed order: the same bits for any thread count (a few flops a
	 * pixel against the network's thousands) */
	for (int i = 0; i < h; i++) {
		size_t r = (size_t)i * w;

		for (int q = 0; q + 1 < w; q++)
			chroma_diff(x, grad, plane, r + q, r + q + 1, ax, &sx);
		if (i + 1 < h)
			for (int q = 0; q < w; q++)
				chroma_diff(x, grad, plane, r + q, r + q + w, ay, &sy);
	}
	if (w > 1)
		loss += sx / nx;
	if (h > 1)
		loss += sy / ny;
	loss_seconds += ts_now() - t0;
	return loss;
}
