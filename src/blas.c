/* blas: the BLAS wrappers (ts_sgemm and friends) and OpenBLAS's kernel choice checked
 * against the CPU (see blas.h).
 *
 * ts_sgemm splits C in blocks fixed by the shape and spreads them over the ts_par
 * threads (OpenBLAS itself runs one thread), so the bits do not depend on the thread
 * count; the serial wrappers are plain cblas calls. */
#include "tessera/blas.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tessera/par.h"

/* Set in the restarted process: the core OpenBLAS chose before the restart. */
#define REEXEC_ENV "TESSERA_BLAS_RESTARTED"

static char note[256];

int
ts_blas_class(const char *corename)
{
	static const char *const avx512[] = { "skylakex", "cooperlake", "sapphirerapids" };
	static const char *const avx2[] = { "haswell", "zen", "excavator" };

	if (!corename)
		return TS_BLAS_GENERIC;
	for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++)
		if (!strcasecmp(corename, avx512[i]))
			return TS_BLAS_AVX512;
	for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++)
		if (!strcasecmp(corename, avx2[i]))
			return TS_BLAS_AVX2;
	return TS_BLAS_GENERIC;
}

int
ts_blas_cpu_class(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
	    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vl"))
		return TS_BLAS_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return TS_BLAS_AVX2;
#endif
	return TS_BLAS_GENERIC;
}

const char *
ts_blas_better_core(const char *corename, int cpu_class)
{
	/* OpenBLAS recognised the CPU (an AVX2 choice on an AVX-512 CPU may be deliberate,
	 * as for some AMD models): leave it */
	if (ts_blas_class(corename) != TS_BLAS_GENERIC)
		return NULL;
	switch (cpu_class) {
	case TS_BLAS_AVX512:
		return "SkylakeX";
	case TS_BLAS_AVX2:
		return "Haswell";
	default:
		return NULL;
	}
}

const char *
ts_blas_core(void)
{
	return openblas_get_corename();
}

const char *
ts_blas_note(void)
{
	return note[0] ? note : NULL;
}

void
ts_blas_init(char **argv)
{
	const char *before = getenv(REEXEC_ENV);
	const char *want;
	char was[48];

	if (before) {
		/* the restarted process */
		snprintf(was, sizeof was, "%s", before);
		unsetenv(REEXEC_ENV);
		if (ts_blas_class(ts_blas_core()) == TS_BLAS_GENERIC)
			snprintf(note, sizeof note, "OpenBLAS chose %s kernels for this CPU and "
			         "ignored OPENBLAS_CORETYPE=%s: BLAS runs slowly", was,
			         getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "?");
		else
			snprintf(note, sizeof note, "OpenBLAS chose %s kernels for this CPU; "
			         "restarted with OPENBLAS_CORETYPE=%s", was, ts_blas_core());
		return;
	}
	if (getenv("OPENBLAS_CORETYPE") || !argv || !argv[0])
		return;
	if (!(want = ts_blas_better_core(ts_blas_core(), ts_blas_cpu_class())))
		return;
	snprintf(was, sizeof was, "%s", ts_blas_core());
	if (setenv("OPENBLAS_CORETYPE", want, 1) || setenv(REEXEC_ENV, was, 1))
		return;
	fflush(NULL);
	execv("/proc/self/exe", argv);
	/* still here: run on the kernels OpenBLAS chose */
	snprintf(note, sizeof note, "OpenBLAS chose %s kernels for this CPU and the restart "
	         "with OPENBLAS_CORETYPE=%s failed (%s): BLAS runs slowly", was, want,
	         strerror(errno));
	unsetenv("OPENBLAS_CORETYPE");
	unsetenv(REEXEC_ENV);
}

/* ---- The wrappers ---------------------------------------------------------------- */

struct gemm_job {
	int ta, tb, m, n, k, lda, ldb, ldc, rb, cb, ncb;
	float alpha, beta;
	const float *a, *b;
	float *c;
};

static void
gemm_item(void *ctx, int item, int thread)
{
	const struct gemm_job *g = ctx;
	int r0 = item / g->ncb * g->rb, c0 = item % g->ncb * g->cb;
	int m = g->m - r0 < g->rb ? g->m - r0 : g->rb, n = g->n - c0 < g->cb ? g->n - c0 : g->cb;
	const float *a = g->a + (g->ta ? (size_t)r0 : (size_t)r0 * g->lda);
	const float *b = g->b + (g->tb ? (size_t)c0 * g->ldb : (size_t)c0);

	(void)thread;
	cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
	            g->tb ? CblasTrans : CblasNoTrans, m, n, g->k, g->alpha, a, g->lda, b,
	            g->ldb, g->beta, g->c + (size_t)r0 * g->ldc + c0, g->ldc);
}

static int
round_up(int v, int q)
{
	return (v + q - 1) / q * q;
}

/* Blocks fixed by the shape: rows in blocks of at most GEMM_ROWS, then columns cut so
 * that there are about GEMM_ITEMS blocks, none narrower than GEMM_MIN_COLS.  Measured
 * on the style gradients (2 threads): 512 x 1024 x 512 at 285 GFLOP/s in 8 blocks of
 * 256 x 256, against 218 in 16 row blocks of 32; 512 x 4096 x 512 at 309 against 214. */
#define GEMM_ROWS 256
#define GEMM_ITEMS 8
#define GEMM_MIN_COLS 256

void
ts_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
         int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	struct gemm_job g = { trans_a, trans_b, m, n, k, lda, ldb, ldc, 0, 0, 0, alpha, beta,
		              a, b, c };
	int nrb;

	(void)ts_par_threads(); /* keeps OpenBLAS itself single-threaded */
	nrb = (m + GEMM_ROWS - 1) / GEMM_ROWS;
	g.rb = round_up((m + nrb - 1) / nrb, 16);
	nrb = (m + g.rb - 1) / g.rb;
	g.ncb = GEMM_ITEMS / nrb < 1 ? 1 : GEMM_ITEMS / nrb;
	g.cb = round_up((n + g.ncb - 1) / g.ncb, 64);
	g.cb = g.cb < GEMM_MIN_COLS ? GEMM_MIN_COLS : g.cb;
	g.ncb = (n + g.cb - 1) / g.cb;
	ts_par_for(nrb * g.ncb, gemm_item, &g);
}

void
ts_sgemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
	            trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
	            ldc);
}

void
ts_ssyrk_upper(int n, int k, float alpha, const float *a, int lda, float beta, float *c,
               int ldc)
{
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, alpha, a, lda, beta, c, ldc);
}
