/* loss-bench: the style losses of one pass, layer by layer, with cold caches.
 *
 *   build/loss-bench [SIZE [REPEAT [COLD [MASK]]]]     (defaults 512, 5, 1, 0)
 *
 * For the five style layers of VGG-19 at a SIZE x SIZE tile (relu1_1 [64, SIZE^2] ...
 * relu5_1 [512, (SIZE/16)^2]) it times the Gram alone (ts_gram) and the whole style
 * term with its gradient (ts_loss_style: Gram, loss, dL/dG, grad += dL/dF), each
 * after a sweep over a buffer larger than the last-level cache, as in a pass, where
 * a layer's features were written long before its loss reads them.  Prints the
 * median milliseconds and GFLOP/s of each (the Gram counted as c^2 hw, the gradient
 * as 2 c^2 hw), and the fastest call of each (the machine's noise only slows calls
 * down).  COLD 0 leaves the caches as the previous call left them; MASK 1 has the
 * style term apply the ReLU's mask to its gradient, as in a pass (ts_loss_style_masked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/blas.h"
#include "tessera/loss.h"
#include "tessera/par.h"

#define FLUSH_BYTES ((size_t)512 << 20)

static volatile float sink;

static void
flush(float *buf)
{
	size_t n = FLUSH_BYTES / sizeof(float);
	float s = 0.0f;

	for (size_t i = 0; i < n; i += 16) {
		buf[i] += 1.0f;
		s += buf[i];
	}
	sink = s;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static float *
alloc_floats(size_t n)
{
	float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);

	if (!p) {
		fprintf(stderr, "loss-bench: out of memory\n");
		exit(1);
	}
	return p;
}

int
main(int argc, char **argv)
{
	int size = argc > 1 ? atoi(argv[1]) : 512, repeat = argc > 2 ? atoi(argv[2]) : 5;
	int cold = argc > 3 ? atoi(argv[3]) : 1, mask = argc > 4 ? atoi(argv[4]) : 0;
	static const int chans[5] = { 64, 128, 256, 512, 512 };
	static const char *names[5] = { "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1" };
	float *fl = alloc_floats(FLUSH_BYTES / sizeof(float));
	double tg_all = 0.0, ts_all = 0.0;

	ts_blas_init(argv); /* may restart the program with better BLAS kernels */
	if (size < 16 || repeat < 1 || repeat > 100) {
		fprintf(stderr, "usage: loss-bench [SIZE >= 16 [REPEAT 1..100 [COLD 0|1 [MASK 0|1]]]]\n");
		return 2;
	}
	ts_par_set_threads(0);
	memset(fl, 0, FLUSH_BYTES);
	if (cold)
		printf("size %d, threads %d, cold caches (%zu MiB swept before each call)\n", size,
		       ts_par_threads(), FLUSH_BYTES >> 20);
	else
		printf("size %d, threads %d, warm caches\n", size, ts_par_threads());
	for (int l = 0; l < 5; l++) {
		int c = chans[l], side = size >> l, hw = side * side;
		size_t n = (size_t)c * hw, cc = (size_t)c * c;
		float *f = alloc_floats(n), *grad = alloc_floats(n), *t = alloc_floats(cc);
		float *g = alloc_floats(cc), *ws = alloc_floats(ts_loss_style_ws_floats(c, hw));
		double tg[100], ts[100], fl_g = (double)c * c * hw * 1e-9;

		srand(1 + l);
		for (size_t i = 0; i < n; i++) /* ReLU features: about half zeros */
			f[i] = rand() % 2 ? (float)rand() / RAND_MAX : 0.0f;
		memset(grad, 0, n * sizeof(float));
		ts_gram(f, c, hw, t, ws);
		for (size_t i = 0; i < cc; i++)
			t[i] *= 0.5f;
		for (int r = 0; r < repeat; r++) {
			double t0;
			int relu;

			if (cold)
				flush(fl);
			t0 = ts_now();
			ts_gram(f, c, hw, g, ws);
			tg[r] = ts_now() - t0;
			if (cold)
				flush(fl);
			relu = mask != 0;
			t0 = ts_now();
			ts_loss_style_masked(f, c, hw, t, 1.0f, ws, grad, &relu);
			ts[r] = ts_now() - t0;
		}
		qsort(tg, (size_t)repeat, sizeof(double), cmp);
		qsort(ts, (size_t)repeat, sizeof(double), cmp);
		tg_all += tg[repeat / 2];
		ts_all += ts[repeat / 2];
		printf("%-8s [%3d, %6d]: gram %7.2f ms (%5.1f GFLOP/s); style term %7.2f ms, "
		       "gradient part %7.2f ms (%5.1f GFLOP/s); fastest: gram %.2f, style term "
		       "%.2f\n",
		       names[l], c, hw, 1e3 * tg[repeat / 2], fl_g / tg[repeat / 2],
		       1e3 * ts[repeat / 2], 1e3 * (ts[repeat / 2] - tg[repeat / 2]),
		       2.0 * fl_g / (ts[repeat / 2] - tg[repeat / 2]), 1e3 * tg[0], 1e3 * ts[0]);
		free(f);
		free(grad);
		free(t);
		free(g);
		free(ws);
	}
	printf("all five: gram %.2f ms, style terms %.2f ms\n", 1e3 * tg_all, 1e3 * ts_all);
	free(fl);
	return 0;
}
