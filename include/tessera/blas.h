/* blas: OpenBLAS for tessera: the row-major wrappers every kernel calls (ts_sgemm,
 * ts_sgemm_serial, ts_ssyrk_upper; blas.c and par.c are the only files that include
 * cblas.h), and making sure OpenBLAS runs the kernels this CPU can run.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels when the library is
 * loaded, from the CPU's family and model.  A model newer than the library (Debian
 * 12's 0.3.21 on Emerald Rapids, model 0xCF, say) falls back to the oldest x86-64
 * kernels, "Prescott" (SSE3): sgemm runs 3-5x slower and so does every convolution.
 * The choice can only be changed by OPENBLAS_CORETYPE in the environment before the
 * library loads, so ts_blas_init re-executes the program once with it set.
 *
 * Rules: nothing happens when OPENBLAS_CORETYPE is already set (the user's choice), or
 * when OpenBLAS picked kernels of the AVX2 class or better; otherwise the class the
 * CPU supports is chosen (AVX-512 F/CD/BW/DQ/VL: SkylakeX; AVX2 and FMA: Haswell). */
#ifndef TESSERA_BLAS_H
#define TESSERA_BLAS_H

/* CPU feature classes (ts_blas_class, ts_blas_cpu_class). */
enum { TS_BLAS_GENERIC = 0, TS_BLAS_AVX2 = 1, TS_BLAS_AVX512 = 2 };

/* Class of the kernels behind an OpenBLAS core name (openblas_get_corename()):
 * TS_BLAS_AVX512 for SkylakeX, Cooperlake, SapphireRapids; TS_BLAS_AVX2 for Haswell,
 * Zen, Excavator; TS_BLAS_GENERIC for anything else.  Case is ignored. */
int ts_blas_class(const char *corename);
/* Class this CPU supports (cpuid). */
int ts_blas_cpu_class(void);
/* The OPENBLAS_CORETYPE to restart with when OpenBLAS chose `corename` on a CPU of
 * class `cpu_class`, or NULL to leave it alone. */
const char *ts_blas_better_core(const char *corename, int cpu_class);

/* First thing in main, before MPI_Init and before any thread starts: if OpenBLAS chose
 * kernels below what the CPU runs (see above), set OPENBLAS_CORETYPE and execv
 * /proc/self/exe with the same argv (same pid, so mpirun/srun do not notice).  Returns
 * when nothing needs doing, after the restart, or when the restart failed (tessera
 * then runs on the slow kernels; ts_blas_note says why). */
void ts_blas_init(char **argv);
/* The kernels OpenBLAS runs now (openblas_get_corename()). */
const char *ts_blas_core(void);
/* One line on what ts_blas_init did ("OpenBLAS chose Prescott for this CPU; restarted
 * with OPENBLAS_CORETYPE=SkylakeX"), or NULL when it did nothing. */
const char *ts_blas_note(void);

/* Row-major C = alpha * op(A) op(B) + beta * C; op transposes when trans is nonzero.
 * op(A): [m, k], op(B): [k, n], C: [m, n] with leading dimensions lda, ldb, ldc.
 * Runs on ts_par threads, split in blocks of rows of C (or columns, when C has few
 * rows) fixed by the shape, so the result does not depend on the thread count. */
void ts_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Upper triangle of C [n, n] = alpha * A A^T + beta * C for A [n, k] (row-major, lda),
 * on the calling thread (ts_gram spreads blocks of these over the threads). */
void ts_ssyrk_upper(int n, int k, float alpha, const float *a, int lda, float beta, float *c,
                    int ldc);
/* ts_sgemm on the calling thread (for work items that are already spread). */
void ts_sgemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc);

#endif
