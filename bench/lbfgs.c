/* lbfgs-bench: the optimizer's own time per L-BFGS step, evaluations excluded.
 *
 *   build/lbfgs-bench [HISTORY [STEPS [N [HALF]]]]   (defaults 100, 150, 786432 = 3 x 512^2, 0)
 *
 * The objective is an ill-conditioned quadratic (curvatures from 1 to 1e4), so the
 * history fills and stays full; what is timed is ts_optim_seconds(), the step's vector
 * work (history passes, the move), which grows with HISTORY x N.  HALF 1 keeps the
 * history in 16-bit floats (--lbfgs-precision half). */
#include <stdio.h>
#include <stdlib.h>

#include "tessera/blas.h"
#include "tessera/optim.h"
#include "tessera/par.h"

struct quad {
	size_t n;
};

static double
curvature(size_t i)
{
	double u = (double)((i * 7919u) % 1000u) / 1000.0;

	return 1.0 + 1e4 * u * u;
}

static double
quad_fn(void *ctx, const float *x, float *g)
{
	const struct quad *q = ctx;
	double f = 0.0;

	for (size_t i = 0; i < q->n; i++) {
		double d = x[i] - 0.5 * (double)(i % 7) / 7.0, w = curvature(i);

		f += d * d * w;
		g[i] = (float)(2.0 * d * w);
	}
	return f;
}

int
main(int argc, char **argv)
{
	int history = argc > 1 ? atoi(argv[1]) : 100, steps = argc > 2 ? atoi(argv[2]) : 150;
	struct quad q = { argc > 3 ? (size_t)atoll(argv[3]) : (size_t)786432 };
	int half = argc > 4 ? atoi(argv[4]) : 0;
	ts_optim_params p;
	ts_optim *o;
	float *x;
	double f = 0.0, s0;

	ts_blas_init(argv); /* may restart the program with better BLAS kernels */
	if (history < 1 || steps < 1 || q.n < 1 || (half != 0 && half != 1)) {
		fprintf(stderr, "usage: lbfgs-bench [HISTORY [STEPS [N [HALF 0|1]]]]\n");
		return 2;
	}
	ts_par_set_threads(0);
	ts_optim_defaults(&p, TS_OPTIM_LBFGS);
	p.history = history;
	p.history_half = half;
	p.tol_grad = 0.0;
	p.tol_change = 0.0;
	if (!(o = ts_optim_create(&p, q.n)) || !(x = calloc(q.n, sizeof *x))) {
		fprintf(stderr, "lbfgs-bench: out of memory\n");
		return 1;
	}
	s0 = ts_optim_seconds();
	for (int k = 0; k < steps; k++)
		if (ts_optim_step(o, x, quad_fn, &q, &f) != 0)
			break;
	printf("threads %d, n %zu, history %d (%s floats), %ld evaluations, f %.6g\n",
	       ts_par_threads(), q.n, history, half ? "16-bit" : "32-bit", ts_optim_evals(o), f);
	printf("optimizer_ms_per_step %.2f\n", (ts_optim_seconds() - s0) / steps * 1e3);
	ts_optim_destroy(o);
	free(x);
	return 0;
}
