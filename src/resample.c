/* resample: region-exact separable cubic resampling (see resample.h).
 *
 * Invariant: the value of output pixel (i, j) is a function of (i, j), the sizes and
 * the source alone: weights are computed from absolute coordinates, the horizontal
 * pass runs per source row, the vertical pass sums taps in increasing source order. */
#include "tessera/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"

static double
cubic(double x)
{
	const double a = -0.5;

	x = fabs(x);
	if (x < 1)
		return ((a + 2) * x - (a + 3)) * x * x + 1;
	if (x < 2)
		return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
	return 0;
}

/* Taps of output index i along an axis of ratio s = src/dst: first source index
 * (unclamped) and count. */
static void
taps(int i, double s, int *first, int *count)
{
	double support = 2.0 * (s > 1 ? s : 1);
	double centre = (i + 0.5) * s - 0.5;

	*first = (int)floor(centre - support) + 1;
	*count = (int)floor(centre + support) - *first + 1;
}

/* Normalized weights of output index i; w[count]. */
static void
weights(int i, double s, int first, int count, float *w)
{
	double scale = s > 1 ? s : 1;
	double centre = (i + 0.5) * s - 0.5, sum = 0;
	double tmp[512];

	TS_ASSERT(count <= 512);
	for (int k = 0; k < count; k++) {
		tmp[k] = cubic((first + k - centre) / scale);
		sum += tmp[k];
	}
	for (int k = 0; k < count; k++)
		w[k] = (float)(tmp[k] / sum);
}

static int
clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void
ts_resample_source(int sw, int sh, int dw, int dh, int x, int y, int w, int h,
                   int *sx0, int *sy0, int *sx1, int *sy1)
{
	double sx = (double)sw / dw, sy = (double)sh / dh;
	int f, n;

	taps(x, sx, &f, &n);
	*sx0 = clampi(f, 0, sw - 1);
	taps(x + w - 1, sx, &f, &n);
	*sx1 = clampi(f + n - 1, 0, sw - 1) + 1;
	taps(y, sy, &f, &n);
	*sy0 = clampi(f, 0, sh - 1);
	taps(y + h - 1, sy, &f, &n);
	*sy1 = clampi(f + n - 1, 0, sh - 1) + 1;
}

int
ts_resample_region(ts_region_fn read, void *user, int sw, int sh, int dw, int dh,
                   int x, int y, int w, int h, float *out)
{
	double sx = (double)sw / dw, sy = (double)sh / dh;
	int sx0, sy0, sx1, sy1, rw, rh, maxn, f, n;
	float *src = NULL, *tmp = NULL, *wt = NULL;
	int ret = -1;

	TS_ASSERT(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= dw && y + h <= dh);
	ts_resample_source(sw, sh, dw, dh, x, y, w, h, &sx0, &sy0, &sx1, &sy1);
	rw = sx1 - sx0;
	rh = sy1 - sy0;
	taps(0, sx > sy ? sx : sy, &f, &n);
	maxn = n + 2;
	src = malloc((size_t)3 * rw * rh * sizeof *src);
	tmp = malloc((size_t)3 * rh * w * sizeof *tmp); /* [3, rh, w]: rows filtered */
	wt = malloc((size_t)maxn * sizeof *wt);
	if (!src || !tmp || !wt) {
		ts_error("resample", "out of memory for a %dx%d region", rw, rh);
		goto cleanup;
	}
	if (read(user, sx0, sy0, rw, rh, src))
		goto cleanup;
	/* horizontal: tmp[c][r][j] for output columns x + j */
	for (int j = 0; j < w; j++) {
		taps(x + j, sx, &f, &n);
		TS_ASSERT(n <= maxn);
		weights(x + j, sx, f, n, wt);
		for (int c = 0; c < 3; c++) {
			for (int r = 0; r < rh; r++) {
				const float *row = src + ((size_t)c * rh + r) * rw;
				float acc = 0;

				for (int k = 0; k < n; k++)
					acc += wt[k] * row[clampi(f + k, 0, sw - 1) - sx0];
				tmp[((size_t)c * rh + r) * w + j] = acc;
			}
		}
	}
	/* vertical */
	for (int i = 0; i < h; i++) {
		taps(y + i, sy, &f, &n);
		TS_ASSERT(n <= maxn);
		weights(y + i, sy, f, n, wt);
		for (int c = 0; c < 3; c++) {
			float *o = out + ((size_t)c * h + i) * w;

			for (int j = 0; j < w; j++)
				o[j] = 0;
			for (int k = 0; k < n; k++) {
				const float *t = tmp +
				    ((size_t)c * rh + (clampi(f + k, 0, sh - 1) - sy0)) * w;

				for (int j = 0; j < w; j++)
					o[j] += wt[k] * t[j];
			}
		}
	}
	ret = 0;
cleanup:
	free(src);
	free(tmp);
	free(wt);
	return ret;
}

typedef struct planar_src {
	const float *px;
	int w, h;
} planar_src;

static int
planar_read(void *user, int x, int y, int w, int h, float *out)
{
	const planar_src *s = user;

	for (int c = 0; c < 3; c++)
		for (int i = 0; i < h; i++)
			memcpy(out + ((size_t)c * h + i) * w,
			       s->px + ((size_t)c * s->h + y + i) * s->w + x, (size_t)w * sizeof(float));
	return 0;
}

int
ts_resample_planar(const float *src, int sw, int sh, int dw, int dh, int x, int y, int w,
                   int h, float *out)
{
	planar_src s = { src, sw, sh };

	return ts_resample_region(planar_read, &s, sw, sh, dw, dh, x, y, w, h, out);
}

double
ts_resample_bytes(int sw, int sh, int dw, int dh, int w, int h)
{
	int sx0, sy0, sx1, sy1, x, y;

	if (w > dw)
		w = dw;
	if (h > dh)
		h = dh;
	/* a rectangle in the middle: no edge clamps its source */
	x = (dw - w) / 2, y = (dh - h) / 2;
	ts_resample_source(sw, sh, dw, dh, x, y, w, h, &sx0, &sy0, &sx1, &sy1);
	return 12.0 * ((double)(sx1 - sx0) * (sy1 - sy0) + (double)(sy1 - sy0) * w);
}

/* --- margins --- */

int
ts_mirror_index(int i, int n)
{
	i %= 2 * n;
	if (i < 0)
		i += 2 * n;
	return i < n ? i : 2 * n - 1 - i;
}

void
ts_margin_extend(const float *src, int w, int h, int l, int t, int r, int b, float *dst)
{
	int ew = w + l + r, eh = h + t + b;

	for (int c = 0; c < 3; c++)
		for (int y = 0; y < eh; y++) {
			const float *row = src + ((size_t)c * h + ts_mirror_index(y - t, h)) * w;
			float *out = dst + ((size_t)c * eh + y) * ew;

			for (int x = 0; x < l; x++)
				out[x] = row[ts_mirror_index(x - l, w)];
			memcpy(out + l, row, (size_t)w * sizeof *out);
			for (int x = l + w; x < ew; x++)
				out[x] = row[ts_mirror_index(x - l, w)];
		}
}

void
ts_margin_cut(const float *src, int w, int h, int l, int t, int r, int b, float *dst)
{
	int ew = w + l + r, eh = h + t + b;

	for (int c = 0; c < 3; c++)
		for (int y = 0; y < h; y++)
			memcpy(dst + ((size_t)c * h + y) * w,
			       src + ((size_t)c * eh + y + t) * ew + l, (size_t)w * sizeof *dst);
}

/* the smallest range of 0..n-1 holding ts_mirror_index(i, n) for i in [a, a + len) */
static void
mirror_range(int a, int len, int n, int *lo, int *hi)
{
	*lo = n, *hi = -1;
	if (len >= 2 * n) {
		*lo = 0, *hi = n - 1;
		return;
	}
	for (int i = a; i < a + len; i++) {
		int s = ts_mirror_index(i, n);

		*lo = s < *lo ? s : *lo;
		*hi = s > *hi ? s : *hi;
	}
}

int
ts_region_mirrored(ts_region_fn fn, void *user, int pw, int ph, int x, int y, int w, int h,
                   float *out)
{
	int x0, x1, y0, y1, sw, sh;
	float *src;

	if (x >= 0 && y >= 0 && x + w <= pw && y + h <= ph)
		return fn(user, x, y, w, h, out);
	mirror_range(x, w, pw, &x0, &x1);
	mirror_range(y, h, ph, &y0, &y1);
	sw = x1 - x0 + 1, sh = y1 - y0 + 1;
	if (!(src = malloc((size_t)3 * sw * sh * sizeof *src))) {
		ts_error("resample", "out of memory for a %dx%d region", sw, sh);
		return -1;
	}
	if (fn(user, x0, y0, sw, sh, src)) {
		free(src);
		return -1;
	}
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < h; i++) {
			const float *row = src + ((size_t)c * sh + ts_mirror_index(y + i, ph) - y0) * sw;
			float *o = out + ((size_t)c * h + i) * w;

			for (int j = 0; j < w; j++)
				o[j] = row[ts_mirror_index(x + j, pw) - x0];
		}
	free(src);
	return 0;
}
