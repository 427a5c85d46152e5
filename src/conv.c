/* conv: 3x3 convolution, ReLU, pooling, sgemm wrapper (see conv.h).
 * The only file that includes cblas.h. */
#include "tessera/conv.h"

#include <cblas.h>

void
ts_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
         int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
	            trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
	            beta, c, ldc);
}
