/* tile: feathered weights and band blending (see tile.h).
 *
 * Invariants: along each axis the normalized weights of the tiles covering a position
 * sum to one (up to float rounding) and are > 0 inside every tile; a blended pixel is
 * a running weighted mean over the tiles covering it, taken in row-major tile order,
 * so its value depends only on the tiles, not on the band it was computed in. */
#include "tessera/tile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"

/* Raised-cosine ramp at distance d from a tile's edge over an overlap of o pixels. */
static double
ramp(int d, int o)
{
	return 0.5 - 0.5 * cos(M_PI * ((double)d + 0.5) / (double)o);
}

/* Raw weight of tile i (of n, length t, starts pos) at local position d. */
static double
raw_weight(const int *pos, int n, int t, int i, int d)
{
	int ol = i > 0 ? pos[i - 1] + t - pos[i] : 0;
	int orr = i < n - 1 ? pos[i] + t - pos[i + 1] : 0;
	double v = 1.0;

	if (d < ol)
		v *= ramp(d, ol);
	if (t - 1 - d < orr)
		v *= ramp(t - 1 - d, orr);
	return v;
}

/* out [t]: normalized weights of tile i along one axis. */
static void
axis_weights(const int *pos, int n, int t, int i, float *out)
{
	for (int d = 0; d < t; d++) {
		int g = pos[i] + d;
		double sum = 0.0, own = raw_weight(pos, n, t, i, d);

		/* tiles are sorted: the ones covering g are contiguous around i; sum them in
		 * index order so the result does not depend on i */
		int j0 = i, j1 = i;

		while (j0 > 0 && pos[j0 - 1] + t > g)
			j0--;
		while (j1 < n - 1 && pos[j1 + 1] <= g)
			j1++;
		for (int j = j0; j <= j1; j++)
			sum += j == i ? own : raw_weight(pos, n, t, j, g - pos[j]);
		out[d] = (float)(own / sum);
	}
}

void
ts_tile_weights_axis(const ts_level *lv, int axis, int index, float *out)
{
	TS_ASSERT(axis == 0 || axis == 1);
	if (axis == 0) {
		TS_ASSERT(index >= 0 && index < lv->ncols);
		axis_weights(lv->xs, lv->ncols, lv->tw, index, out);
	} else {
		TS_ASSERT(index >= 0 && index < lv->nrows);
		axis_weights(lv->ys, lv->nrows, lv->th, index, out);
	}
}

void
ts_tile_band_rows(const ts_level *lv, int y0, int y1, int *r0, int *r1)
{
	int a = 0, b;

	while (a < lv->nrows && lv->ys[a] + lv->th <= y0)
		a++;
	b = a;
	while (b < lv->nrows && lv->ys[b] < y1)
		b++;
	*r0 = a;
	*r1 = b;
}

int
ts_blend_band(const ts_level *lv, int y0, int y1, ts_tile_get_fn get, void *user,
              float *out)
{
	const int W = lv->w, tw = lv->tw, th = lv->th, bh = y1 - y0;
	const size_t plane = (size_t)bh * W;
	float *wx = NULL;  /* [ncols, tw] column weights */
	float *wy = NULL;  /* [th] weights of the current tile row */
	float *cum = NULL; /* [bh, W] sum of the weights seen so far per pixel */
	int r0, r1, ret = -1;

	TS_ASSERT(0 <= y0 && y0 < y1 && y1 <= lv->h);
	wx = malloc((size_t)lv->ncols * tw * sizeof *wx);
	wy = malloc((size_t)th * sizeof *wy);
	cum = calloc(plane, sizeof *cum);
	if (!wx || !wy || !cum) {
		ts_error("tile", "out of memory blending a band of %dx%d", W, bh);
		goto cleanup;
	}
	for (int c = 0; c < lv->ncols; c++)
		axis_weights(lv->xs, lv->ncols, tw, c, wx + (size_t)c * tw);
	memset(out, 0, 3 * plane * sizeof *out);

	ts_tile_band_rows(lv, y0, y1, &r0, &r1);
	for (int r = r0; r < r1; r++) {
		int ty = lv->ys[r];
		int a = y0 > ty ? y0 : ty, b = y1 < ty + th ? y1 : ty + th; /* rows [a, b) */

		axis_weights(lv->ys, lv->nrows, th, r, wy);
		for (int c = 0; c < lv->ncols; c++) {
			const float *tp = get(user, r, c); /* [3, th, tw] */
			const float *cw = wx + (size_t)c * tw;
			int tx = lv->xs[c];

			if (!tp)
				goto cleanup;
			for (int y = a; y < b; y++) {
				float wyy = wy[y - ty];
				float *cr = cum + (size_t)(y - y0) * W + tx;

				for (int x = 0; x < tw; x++) {
					float w = cw[x] * wyy, q;

					if (!(w > 0.0f))
						continue;
					cr[x] += w;
					q = w / cr[x];
					for (int ch = 0; ch < 3; ch++) {
						float *o = out + ch * plane + (size_t)(y - y0) * W + tx + x;
						float v = tp[((size_t)ch * th + (y - ty)) * tw + x];

						*o += q * (v - *o);
					}
				}
			}
		}
	}
	ret = 0;
cleanup:
	free(wx);
	free(wy);
	free(cum);
	return ret;
}

void
ts_tile_crop(const float *src, int sw, int sh, int x, int y, int w, int h, float *out)
{
	TS_ASSERT(x >= 0 && y >= 0 && w >= 0 && h >= 0 && x + w <= sw && y + h <= sh);
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < h; i++)
			memcpy(out + ((size_t)c * h + i) * w,
			       src + ((size_t)c * sh + y + i) * sw + x, (size_t)w * sizeof *out);
}
