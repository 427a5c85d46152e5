/* gram: the partial Gram kernel of gram.h.
 *
 * Why not syrk: for c = 64 or 128 channels and rows of thousands of pixels, OpenBLAS
 * packs both operands (the same matrix twice) and reaches about a third of its sgemm
 * peak.  Rows of f are already contiguous along k, which is the axis the sums run
 * over: a 4x4 tile of (i, j) keeps 16 vector accumulators (16 lanes of k each), 8
 * loads feed 16 FMAs, and the columns are taken in chunks small enough for all c rows
 * to stay in L2 while every tile passes over them.  At the end of a chunk each tile's
 * 16 accumulators are reduced to one vector (a fixed tree) and added to the tile's 16
 * sums.  Measured on one core at 64 x 16384: 114 GFLOP/s against syrk's 62; at
 * 128 x 4096: 120 against 100; at 256 syrk wins.
 *
 * The one copy both kernels make: a chunk's rows go to a buffer PACK_LD floats apart
 * first.  The maps of a tile of 2^k pixels have rows a power of two apart (relu1_1 of
 * a 512 tile: 1 MiB), so every row of a chunk falls on the same L1 and L2 sets and the
 * chunk cannot stay in cache; at 512 the copy made the relu1_1 Gram 20 -> 12 ms and
 * its gradient 56 -> 22 ms (build/loss-bench).
 *
 * Summation order: lanes of 16 columns, the tree, chunks in order; fixed by c, k0, k1. */
#include "gram.h"

#include <string.h>

#include "tessera/error.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Columns per chunk: the chunk's c rows stay in L2 (128 rows: 512 KiB). */
#define KC 1024
/* Up to this many channels the kernel beats syrk (measured, see above). */
#define MAX_C 128
/* Row stride of a packed block: KC columns and one cache line, so that rows of the
 * block fall on different cache sets (see the top of the file). */
#define PACK_LD (KC + 16)
/* Columns of one packed block of the style gradient: 21 panels of 48. */
#define GRAD_W 1008

static int
ntiles(int c)
{
	return (c + 3) / 4;
}

static size_t
tile_index(int nt, int bi, int bj)
{
	/* upper triangle of tiles, row by row */
	return (size_t)bi * nt - (size_t)bi * (bi - 1) / 2 + (size_t)(bj - bi);
}

size_t
ts_gram_pack_floats(int c)
{
	return (size_t)c * PACK_LD;
}

size_t
ts_gram_tiles_floats(int c)
{
	int nt = ntiles(c);

	return (size_t)16 * nt * (nt + 1) / 2;
}

/* lane[r * 4 + q]: where the tree of reduce16 leaves the sum of accumulator r * 4 + q
 * (a-row r, b-row q) in its result vector. */
static const unsigned char lane[16] = { 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15 };

size_t
ts_gram_tile_at(int c, int i, int j)
{
	int nt = ntiles(c);

	TS_ASSERT(i >= 0 && i <= j && j < c);
	return 16 * tile_index(nt, i / 4, j / 4) + lane[(i % 4) * 4 + j % 4];
}

#ifdef __AVX512F__

int
ts_gram_tiles_use(int c)
{
	return c >= 16 && c <= MAX_C;
}

/* The sums of 16 vectors' lanes, in one vector (see lane[] for the order). */
static inline __m512
reduce16(const __m512 s[16])
{
	__m512 h[8], q[4], p[2];

	/* 16 -> 8: halves of pairs, added (each result: 8 lanes of one, 8 of the other) */
	for (int t = 0; t < 8; t++)
		h[t] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * t], s[2 * t + 1], 0x44),
		                     _mm512_shuffle_f32x4(s[2 * t], s[2 * t + 1], 0xEE));
	/* 8 -> 4: 128-bit blocks 0+1 and 2+3 of each half */
	for (int t = 0; t < 4; t++)
		q[t] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * t], h[2 * t + 1], 0x88),
		                     _mm512_shuffle_f32x4(h[2 * t], h[2 * t + 1], 0xDD));
	/* 4 -> 2: within each 128-bit block, lanes 0+2 and 1+3 */
	for (int t = 0; t < 2; t++)
		p[t] = _mm512_add_ps(_mm512_shuffle_ps(q[2 * t], q[2 * t + 1], 0x44),
		                     _mm512_shuffle_ps(q[2 * t], q[2 * t + 1], 0xEE));
	/* 2 -> 1: lanes 0+1 and 2+3 */
	return _mm512_add_ps(_mm512_shuffle_ps(p[0], p[1], 0x88), _mm512_shuffle_ps(p[0], p[1], 0xDD));
}

/* One 4x4 tile over columns [k, ke): rows a[0..3] against rows b[0..3]. */
static inline __m512
tile(const float *const a[4], const float *const b[4], size_t k, size_t ke)
{
	__m512 s[16];

	for (int t = 0; t < 16; t++)
		s[t] = _mm512_setzero_ps();
	for (; k + 16 <= ke; k += 16) {
		__m512 a0 = _mm512_loadu_ps(a[0] + k), a1 = _mm512_loadu_ps(a[1] + k);
		__m512 a2 = _mm512_loadu_ps(a[2] + k), a3 = _mm512_loadu_ps(a[3] + k);

		for (int q = 0; q < 4; q++) {
			__m512 bq = _mm512_loadu_ps(b[q] + k);

			s[q] = _mm512_fmadd_ps(a0, bq, s[q]);
			s[4 + q] = _mm512_fmadd_ps(a1, bq, s[4 + q]);
			s[8 + q] = _mm512_fmadd_ps(a2, bq, s[8 + q]);
			s[12 + q] = _mm512_fmadd_ps(a3, bq, s[12 + q]);
		}
	}
	if (k < ke) { /* the last < 16 columns, the rest of the lanes zero */
		__mmask16 m = (__mmask16)((1u << (ke - k)) - 1u);
		__m512 a0 = _mm512_maskz_loadu_ps(m, a[0] + k), a1 = _mm512_maskz_loadu_ps(m, a[1] + k);
		__m512 a2 = _mm512_maskz_loadu_ps(m, a[2] + k), a3 = _mm512_maskz_loadu_ps(m, a[3] + k);

		for (int q = 0; q < 4; q++) {
			__m512 bq = _mm512_maskz_loadu_ps(m, b[q] + k);

			s[q] = _mm512_fmadd_ps(a0, bq, s[q]);
			s[4 + q] = _mm512_fmadd_ps(a1, bq, s[4 + q]);
			s[8 + q] = _mm512_fmadd_ps(a2, bq, s[8 + q]);
			s[12 + q] = _mm512_fmadd_ps(a3, bq, s[12 + q]);
		}
	}
	return reduce16(s);
}

/* rows of f's chunk, copied to pack (ld PACK_LD) */
static void
pack_rows(const float *f, size_t ld, int c, size_t k0, size_t n, float *pack)
{
	for (int r = 0; r < c; r++)
		memcpy(pack + (size_t)r * PACK_LD, f + (size_t)r * ld + k0, n * sizeof(float));
}

void
ts_gram_tiles(const float *f, size_t ld, int c, size_t k0, size_t k1, float *part, float *pack)
{
	int nt = ntiles(c);

	TS_ASSERT(f && part && pack && c > 0 && c <= MAX_C && k0 <= k1);
	for (size_t kc = k0; kc < k1 || kc == k0; kc += KC) {
		size_t ke = kc + KC < k1 ? kc + KC : k1, n = ke - kc;

		pack_rows(f, ld, c, kc, n, pack);
		for (int bi = 0; bi < nt; bi++) {
			const float *a[4];

			/* rows past c repeat the last one; their sums are never read */
			for (int r = 0; r < 4; r++)
				a[r] = pack + (size_t)(4 * bi + r < c ? 4 * bi + r : c - 1) * PACK_LD;
			for (int bj = bi; bj < nt; bj++) {
				const float *b[4];
				float *out = part + 16 * tile_index(nt, bi, bj);
				__m512 v;

				for (int r = 0; r < 4; r++)
					b[r] = pack + (size_t)(4 * bj + r < c ? 4 * bj + r : c - 1) * PACK_LD;
				v = tile(a, b, 0, n);
				if (kc != k0)
					v = _mm512_add_ps(v, _mm512_loadu_ps(out));
				_mm512_storeu_ps(out, v);
			}
		}
		if (ke >= k1)
			break;
	}
}

int
ts_gram_grad_use(int c)
{
	return c >= 16 && c <= MAX_C && c % 8 == 0;
}

/* dy[8 rows, 48 columns at p] += alpha * s[8 rows, c] f[c, 48 columns at p], f packed
 * (ld PACK_LD), dy with rows ldy apart; m[v]: the lanes of column vector v that exist. */
static inline void
grad_panel(const float *s, const float *f, int c, size_t p, const __mmask16 m[3],
           __m512 alpha, float *dy, size_t ldy, const float *frows, int relu)
{
	__m512 acc[8][3];

#pragma GCC unroll 8
	for (int r = 0; r < 8; r++)
#pragma GCC unroll 3
		for (int v = 0; v < 3; v++)
			acc[r][v] = _mm512_setzero_ps();
	for (int j = 0; j < c; j++) {
		const float *fj = f + (size_t)j * PACK_LD + p;
		__m512 f0 = _mm512_maskz_loadu_ps(m[0], fj), f1 = _mm512_maskz_loadu_ps(m[1], fj + 16);
		__m512 f2 = _mm512_maskz_loadu_ps(m[2], fj + 32);

		/* the next panel of the packed block, from L2 */
		_mm_prefetch((const char *)(fj + 48), _MM_HINT_T0);
		_mm_prefetch((const char *)(fj + 48 + 16), _MM_HINT_T0);
		_mm_prefetch((const char *)(fj + 48 + 32), _MM_HINT_T0);
#pragma GCC unroll 8
		for (int r = 0; r < 8; r++) {
			__m512 b = _mm512_set1_ps(s[(size_t)r * c + j]);

			acc[r][0] = _mm512_fmadd_ps(b, f0, acc[r][0]);
			acc[r][1] = _mm512_fmadd_ps(b, f1, acc[r][1]);
			acc[r][2] = _mm512_fmadd_ps(b, f2, acc[r][2]);
		}
	}
#pragma GCC unroll 8
	for (int r = 0; r < 8; r++) {
		float *d = dy + (size_t)r * ldy + p;

		_mm_prefetch((const char *)(d + 2 * 48), _MM_HINT_T0);
		_mm_prefetch((const char *)(d + 2 * 48 + 16), _MM_HINT_T0);
		_mm_prefetch((const char *)(d + 2 * 48 + 32), _MM_HINT_T0);
#pragma GCC unroll 3
		for (int v = 0; v < 3; v++) {
			__m512 old = _mm512_maskz_loadu_ps(m[v], d + 16 * v);
			__m512 sum = _mm512_fmadd_ps(alpha, acc[r][v], old);

			if (relu) { /* the ReLU's mask: f itself, row r of the block */
				const float *fr = frows + (size_t)r * PACK_LD + p + 16 * v;
				__mmask16 pos = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m[v], fr),
				                                   _mm512_setzero_ps(), _CMP_GT_OQ);

				sum = _mm512_maskz_mov_ps(pos, sum);
			}
			_mm512_mask_storeu_ps(d + 16 * v, m[v], sum);
		}
	}
}

void
ts_gram_grad(const float *s, const float *f, int c, size_t ld, size_t p0, size_t p1,
             float alpha, float *dy, float *pack, int relu)
{
	__m512 a = _mm512_set1_ps(alpha);

	TS_ASSERT(s && f && dy && pack && ts_gram_grad_use(c) && p0 <= p1);
	for (size_t q0 = p0; q0 < p1; q0 += GRAD_W) {
		size_t n = p1 - q0 < GRAD_W ? p1 - q0 : GRAD_W;

		pack_rows(f, ld, c, q0, n, pack);
		for (int i = 0; i < c; i += 8) {
			for (size_t p = 0; p < n; p += 48) {
				__mmask16 m[3];

				for (int v = 0; v < 3; v++) {
					size_t q = p + 16 * (size_t)v, left = q < n ? n - q : 0;

					m[v] = left >= 16 ? (__mmask16)0xFFFF
					                  : (__mmask16)((1u << left) - 1u);
				}
				if (relu)
					grad_panel(s + (size_t)i * c, pack, c, p, m, a,
					           dy + (size_t)i * ld + q0, ld,
					           pack + (size_t)i * PACK_LD, 1);
				else
					grad_panel(s + (size_t)i * c, pack, c, p, m, a,
					           dy + (size_t)i * ld + q0, ld, NULL, 0);
			}
		}
	}
}

#else /* no AVX-512: ts_gram keeps to syrk, the style gradient to sgemm */

int
ts_gram_tiles_use(int c)
{
	return 0;
}

void
ts_gram_tiles(const float *f, size_t ld, int c, size_t k0, size_t k1, float *part, float *pack)
{
	TS_ASSERT(!"ts_gram_tiles without AVX-512");
}

int
ts_gram_grad_use(int c)
{
	return 0;
}

void
ts_gram_grad(const float *s, const float *f, int c, size_t ld, size_t p0, size_t p1,
             float alpha, float *dy, float *pack, int relu)
{
	TS_ASSERT(!"ts_gram_grad without AVX-512");
}

#endif
