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

double
ts_loss_content(const float *f, const float *p, size_t n, float weight, float *grad)
{
	double sum = 0.0;
	float scale;

	TS_ASSERT(f && p && n > 0);
	for (size_t i = 0; i < n; i++) {
		double d = (double)f[i] - (double)p[i];

		sum += d * d;
	}
	if (grad) {
		/* d/df mean((f - p)^2) = 2 (f - p) / n */
		scale = (float)(2.0 * weight / (double)n);
		for (size_t i = 0; i < n; i++)
			grad[i] += scale * (f[i] - p[i]);
	}
	return sum / (double)n;
}

/* Two ways to split a Gram g = F F^T over the threads, both fixed by the shape:
 *   - wide channels (c >= PANEL_MIN_C): PANELS row panels of the upper triangle of
 *     about equal area, each a syrk of its diagonal block and a gemm of the block
 *     right of it; every entry is computed once, no partial sums, no workspace;
 *   - few channels (the shallow layers, hw large): blocks along hw, a syrk each into
 *     a partial Gram in the workspace, summed in block order. */
#define PANEL_MIN_C 192
#define PANELS 8

/* Blocks of the hw axis for a Gram of f [c, hw] with few channels: up to 16, at least
 * 2048 columns each (fewer columns make syrk inefficient). */
static int
gram_blocks(int c, int hw)
{
	int nb = hw / 2048;

	(void)c;
	return nb < 1 ? 1 : nb > 16 ? 16 : nb;
}

size_t
ts_gram_ws_floats(int c, int hw)
{
	if (c >= PANEL_MIN_C)
		return 1;
	return (size_t)gram_blocks(c, hw) * (size_t)c * (size_t)c;
}

struct gram_job {
	const float *f;
	int c, hw, nb;
	float *part;  /* hw blocks: the partial Grams */
	float *g;     /* panels: the result */
	float alpha;  /* panels: the scale */
	int row[PANELS + 1];
};

static void
gram_item(void *ctx, int b, int thread)
{
	const struct gram_job *j = ctx;
	int k0 = (int)((long long)j->hw * b / j->nb), k1 = (int)((long long)j->hw * (b + 1) / j->nb);

	(void)thread;
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
	struct gram_job j = { f, c, hw, gram_blocks(c, hw), ws, g, 0.0f, { 0 } };
	float scale = (float)(1.0 / ((double)c * hw));
	size_t cc = (size_t)c * c;

	TS_ASSERT(f && g && ws && c > 0 && hw > 0);
	if (c >= PANEL_MIN_C) {
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
			size_t at = (size_t)r * c + q;
			float s = ws[at];

			for (int b = 1; b < j.nb; b++)
				s += ws[b * cc + at];
			g[at] = s * scale;
			g[(size_t)q * c + r] = s * scale;
		}
	}
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
	size_t cc = (size_t)c * (size_t)c;
	double sum = 0.0;
	double dscale = 2.0 / (double)cc;

	TS_ASSERT(f && t && ws && c > 0 && hw > 0);
	ts_gram(f, c, hw, ws, ws + cc); /* ws: [c, c] = G */
	for (size_t i = 0; i < cc; i++) {
		double d = (double)ws[i] - (double)t[i];

		sum += d * d;
	}
	if (!grad)
		return sum / (double)cc;

	/* ws becomes the symmetric part of dL/dG = 2 (G - T) / c^2.  dL/dF =
	 * (dL/dG + dL/dG^T) F / (c hw); symmetrizing makes this exact for any target T
	 * (a blend of Grams is symmetric, a test's random T need not be). */
	for (int i = 0; i < c; i++) {
		float *ri = ws + (size_t)i * c;

		for (int j = i; j < c; j++) {
			float *rj = ws + (size_t)j * c;
			double gij = (double)ri[j] - t[(size_t)i * c + j];
			double gji = (double)rj[i] - t[(size_t)j * c + i];
			float v = (float)(dscale * 0.5 * (gij + gji));

			ri[j] = v;
			rj[i] = v;
		}
	}
	/* grad: [c, hw] += weight * 2 * sym(dL/dG) [c, c] * F [c, hw] / (c hw) */
	ts_sgemm(0, 0, c, hw, c, (float)(2.0 * weight / ((double)c * hw)), ws, c, f, hw, 1.0f,
	         grad, hw);
	return sum / (double)cc;
}

double
ts_loss_tv(const float *x, int h, int w, float weight, float *grad)
{
	size_t plane = (size_t)h * (size_t)w;
	double sum_x = 0.0, sum_y = 0.0, loss = 0.0;

	TS_ASSERT(x && h > 0 && w > 0);
	/* Horizontal differences: 3 * h * (w - 1) of them; none when w == 1. */
	if (w > 1) {
		double nx = 3.0 * h * (w - 1);
		float sx = (float)(2.0 * weight / nx);

		for (int ch = 0; ch < 3; ch++) {
			for (int i = 0; i < h; i++) {
				const float *r = x + ch * plane + (size_t)i * w;
				float *gr = grad ? grad + ch * plane + (size_t)i * w : NULL;

				for (int j = 0; j + 1 < w; j++) {
					float d = r[j + 1] - r[j];

					sum_x += (double)d * d;
					if (gr) {
						gr[j + 1] += sx * d;
						gr[j] -= sx * d;
					}
				}
			}
		}
		loss += sum_x / nx;
	}
	/* Vertical differences: 3 * (h - 1) * w of them; none when h == 1. */
	if (h > 1) {
		double ny = 3.0 * (h - 1) * w;
		float sy = (float)(2.0 * weight / ny);

		for (int ch = 0; ch < 3; ch++) {
			for (int i = 0; i + 1 < h; i++) {
				const float *r0 = x + ch * plane + (size_t)i * w;
				const float *r1 = r0 + w;
				float *g0 = grad ? grad + ch * plane + (size_t)i * w : NULL;

				for (int j = 0; j < w; j++) {
					float d = r1[j] - r0[j];

					sum_y += (double)d * d;
					if (g0) {
						g0[j + w] += sy * d;
						g0[j] -= sy * d;
					}
				}
			}
		}
		loss += sum_y / ny;
	}
	return loss;
}
