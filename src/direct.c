/* direct: the direct 3x3 convolution behind TS_CONV_DIRECT (see direct.h).
 *
 * Why: im2col + sgemm suits neither of VGG's 3-channel convolutions.  Forward
 * (3 -> 64) multiplies [64, 27] by [27, n], a K too short for sgemm to pay for its
 * packing; the adjoint (64 -> 3) copies every input value 9 times into a [576, n]
 * matrix to multiply it by [3, 576].  The direct kernel reads each input row from L1
 * for all its taps: a block of OB outputs x S strips of 16 pixels of one row keeps
 * OB * S accumulators in registers (OB 8 x S 2 for many outputs, OB <= 4 x S 4 for
 * few), and for every (input channel, tap) loads S shifted vectors (the zero padding
 * and the image's right edge by lane masks, the ReLU mask of the input by a compare)
 * and does OB * S multiply-adds with broadcast weights.
 *
 * Summation order: per output value, bias first, then input channels in order, taps
 * ky, kx in order; rows outside the image are skipped.  It depends on nothing but the
 * shapes, and items are bands of whole rows, so the bits do not depend on the thread
 * count. */
#include "direct.h"

#include "tessera/error.h"
#include "tessera/par.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Rows per item. */
#define BAND 8

struct direct_job {
	const ts_conv_op *op;
	const float *x, *mask;
	float *y, *ws;
	int h, w, relu;
};

/* Where block() reads input row sy of channel c: p + c * cstride + (sy - row0) * w
 * (the input itself, or an item's masked copy of the rows it needs). */
struct src {
	const float *p;
	size_t cstride;
	int row0;
};

#ifdef __AVX512F__

int
ts_direct_fast(void)
{
	return 1;
}

#define MAX_OB 8
#define MAX_S 4

/* Lanes of the strip at column xs that are pixels of the row, and of those the ones
 * whose tap kx reads inside the row (the rest read the zero padding). */
static inline void
edge_masks(int xs, int w, __mmask16 m[3])
{
	int n = w - xs;
	unsigned valid = n <= 0 ? 0u : n >= 16 ? 0xFFFFu : (1u << n) - 1u;

	m[0] = (__mmask16)(xs == 0 ? valid & ~1u : valid);
	m[1] = (__mmask16)valid;
	/* tap 2 of lane l reads column xs + l + 1: inside while l < n - 1 */
	m[2] = (__mmask16)(n - 1 <= 0 ? 0u : n - 1 >= 16 ? valid : valid & ((1u << (n - 1)) - 1u));
}

/* Outputs [o0, o0 + OB) of row yy, strips x0 + 16 s for s < S. */
static inline __attribute__((always_inline)) void
block(const struct direct_job *j, const struct src *in, int yy, int x0, int o0, const int OB,
      const int S)
{
	const ts_conv_op *op = j->op;
	const int ic = op->ic, h = j->h, w = j->w, ic9 = 9 * ic;
	const float *wt = op->w + (size_t)o0 * ic9;
	const size_t hw = (size_t)h * w;
	const __m512 zero = _mm512_setzero_ps();
	__m512 acc[MAX_OB][MAX_S];
	__mmask16 em[MAX_S][3];

#pragma GCC unroll 4
	for (int s = 0; s < S; s++)
		edge_masks(x0 + 16 * s, w, em[s]);
#pragma GCC unroll 8
	for (int o = 0; o < OB; o++) {
		__m512 b = op->bias ? _mm512_set1_ps(op->bias[o0 + o]) : zero;

#pragma GCC unroll 4
		for (int s = 0; s < S; s++)
			acc[o][s] = b;
	}
	for (int c = 0; c < ic; c++) {
		for (int ky = 0; ky < 3; ky++) {
			int sy = yy + ky - 1;
			const float *row;

			if (sy < 0 || sy >= h)
				continue;
			row = in->p + (size_t)c * in->cstride + (size_t)(sy - in->row0) * w + x0 - 1;
#pragma GCC unroll 3
			for (int kx = 0; kx < 3; kx++) {
				const float *wk = wt + c * 9 + ky * 3 + kx;
				__m512 v[MAX_S];

#pragma GCC unroll 4
				for (int s = 0; s < S; s++)
					v[s] = _mm512_maskz_loadu_ps(em[s][kx], row + 16 * s + kx);
#pragma GCC unroll 8
				for (int o = 0; o < OB; o++) {
					__m512 b = _mm512_set1_ps(wk[(size_t)o * ic9]);

#pragma GCC unroll 4
					for (int s = 0; s < S; s++)
						acc[o][s] = _mm512_fmadd_ps(b, v[s], acc[o][s]);
				}
			}
		}
	}
#pragma GCC unroll 8
	for (int o = 0; o < OB; o++) {
		float *out = j->y + (size_t)(o0 + o) * hw + (size_t)yy * w + x0;

#pragma GCC unroll 4
		for (int s = 0; s < S; s++) {
			__m512 r = j->relu ? _mm512_max_ps(acc[o][s], zero) : acc[o][s];

			_mm512_mask_storeu_ps(out + 16 * s, em[s][1], r);
		}
	}
}

/* One row: strips in groups of S (the last group's missing strips have empty masks),
 * outputs in blocks of 8 and a last block of what is left. */
#define ROW_CASE(OB, S)                                                  \
	case OB:                                                         \
		for (int x0 = 0; x0 < w; x0 += 16 * (S))                 \
			block(j, in, yy, x0, o0, OB, S);                 \
		break

static void
row(const struct direct_job *j, const struct src *in, int yy)
{
	const int oc = j->op->oc, w = j->w;

	for (int o0 = 0; o0 < oc; o0 += MAX_OB) {
		switch (oc - o0 < MAX_OB ? oc - o0 : MAX_OB) {
		ROW_CASE(1, 4);
		ROW_CASE(2, 4);
		ROW_CASE(3, 4);
		ROW_CASE(4, 4);
		ROW_CASE(5, 2);
		ROW_CASE(6, 2);
		ROW_CASE(7, 2);
		ROW_CASE(8, 2);
		}
	}
}

#else /* no AVX-512: plain loops, in the same order */

int
ts_direct_fast(void)
{
	return 0;
}

static void
row(const struct direct_job *j, const struct src *unused, int yy)
{
	const ts_conv_op *op = j->op;
	const int ic = op->ic, h = j->h, w = j->w;
	const size_t hw = (size_t)h * w;

	(void)unused; /* reads x and the mask itself */
	for (int o = 0; o < op->oc; o++) {
		float *out = j->y + (size_t)o * hw + (size_t)yy * w;
		const float *wt = op->w + (size_t)o * 9 * ic;

		for (int x = 0; x < w; x++)
			out[x] = op->bias ? op->bias[o] : 0.0f;
		for (int c = 0; c < ic; c++)
			for (int ky = 0; ky < 3; ky++) {
				int sy = yy + ky - 1;
				const float *in, *m;

				if (sy < 0 || sy >= h)
					continue;
				in = j->x + (size_t)c * hw + (size_t)sy * w;
				m = j->mask ? j->mask + (size_t)c * hw + (size_t)sy * w : NULL;
				for (int kx = 0; kx < 3; kx++) {
					float wk = wt[c * 9 + ky * 3 + kx];

					for (int x = 0; x < w; x++) {
						int sx = x + kx - 1;
						float v = sx < 0 || sx >= w || (m && !(m[sx] > 0.0f)) ? 0.0f
						                                                     : in[sx];

						out[x] = v * wk + out[x];
					}
				}
			}
		if (j->relu)
			for (int x = 0; x < w; x++)
				out[x] = out[x] > 0.0f ? out[x] : 0.0f;
	}
}

#endif

size_t
ts_direct_ws_floats(const ts_conv_op *op, int h, int w)
{
	(void)h;
	return (size_t)ts_par_threads() * (size_t)op->ic * (BAND + 2) * (size_t)w;
}

static void
band_item(void *ctx, int item, int thread)
{
	const struct direct_job *j = ctx;
	int h = j->h, w = j->w, y0 = item * BAND, y1 = y0 + BAND < h ? y0 + BAND : h;
	struct src in = { j->x, (size_t)h * w, 0 };

	if (j->mask && ts_direct_fast()) {
		/* the rows the band reads, masked once: [ic, BAND + 2, w] from row y0 - 1 */
		int r0 = y0 > 0 ? y0 - 1 : 0, r1 = y1 < h ? y1 + 1 : h;
		float *pm = j->ws + (size_t)thread * j->op->ic * (BAND + 2) * w;

		for (int c = 0; c < j->op->ic; c++) {
			size_t at = (size_t)c * h * w + (size_t)r0 * w, n = (size_t)(r1 - r0) * w;
			const float *xs = j->x + at, *ms = j->mask + at;
			float *d = pm + (size_t)c * (BAND + 2) * w + (size_t)(r0 - (y0 - 1)) * w;

			for (size_t q = 0; q < n; q++)
				d[q] = ms[q] > 0.0f ? xs[q] : 0.0f;
		}
		in.p = pm;
		in.cstride = (size_t)(BAND + 2) * w;
		in.row0 = y0 - 1;
	}
	for (int yy = y0; yy < y1; yy++)
		row(j, &in, yy);
}

void
ts_direct_run(const ts_conv_op *op, const float *x, const float *mask, int h, int w,
              float *y, int relu, float *ws, size_t ws_floats)
{
	struct direct_job j = { op, x, mask, y, ws, h, w, relu };
	size_t slice = (size_t)op->ic * (BAND + 2) * w; /* one thread's masked rows */
	int items = (h + BAND - 1) / BAND;

	TS_ASSERT(op && op->algo == TS_CONV_DIRECT && x && y && h >= 1 && w >= 1);
	if (mask && ts_direct_fast() && ws_floats < (size_t)ts_par_threads() * slice) {
		/* a workspace sized for fewer threads: the items one by one */
		TS_ASSERT(ws && ws_floats >= slice);
		for (int i = 0; i < items; i++)
			band_item(&j, i, 0);
		return;
	}
	ts_par_for(items, band_item, &j);
}
