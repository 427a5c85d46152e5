/* optim_adam: Adam, one kind of optimizer behind optim_ops (optim_internal.h).
 *
 * Adam is torch.optim.Adam (bias-corrected, eps added after the square root, no
 * weight decay, no amsgrad).  A step evaluates at the current x, then moves; with
 * tol_grad > 0 a gradient with max |g| <= tol_grad stops it before the move.
 *
 * Invariants: the moments m, v [n] are allocated by adam_alloc and zeroed by
 * adam_reset; a step allocates nothing.  The update is elementwise (in float, the
 * scale factors in double), so the bits depend neither on threads nor on segments;
 * the only reduction is the maximum of |g|.  No checkpoint scalars of its own;
 * per-variable arrays, after g: m, v. */
#include "optim_internal.h"

#include "tessera/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double
abs_max(const float *a, size_t n)
{
	double m = 0.0;

	for (size_t i = 0; i < n; i++) {
		double v = fabs((double)a[i]);

		if (v > m)
			m = v;
	}
	return m;
}

static int
adam_step(ts_optim *o, float *x, ts_objective_fn fn, void *ctx)
{
	const ts_optim_params *p = &o->p;
	size_t n = o->n;
	double bc1, bc2, step_size, inv_sqrt_bc2;
	float b1 = (float)p->beta1, b2 = (float)p->beta2;

	if (ts_optim_evaluate(o, x, fn, ctx, o->g, &o->f))
		return -1;
	if (p->tol_grad > 0.0 && ts_optim_reduce_max(o, abs_max(o->g, n)) <= p->tol_grad) {
		o->done = 1;
		return 1;
	}
	o->iter++;
	bc1 = 1.0 - pow(p->beta1, (double)o->iter);
	bc2 = 1.0 - pow(p->beta2, (double)o->iter);
	step_size = p->lr / bc1;
	inv_sqrt_bc2 = 1.0 / sqrt(bc2);
	for (size_t i = 0; i < n; i++) {
		float gi = o->g[i];
		double denom;

		o->m[i] = b1 * o->m[i] + (1.0f - b1) * gi;
		o->v[i] = b2 * o->v[i] + (1.0f - b2) * gi * gi;
		denom = sqrt((double)o->v[i]) * inv_sqrt_bc2 + p->eps;
		x[i] -= (float)(step_size * o->m[i] / denom);
	}
	return 0;
}

static size_t
adam_width(const ts_optim_params *p)
{
	return PART(0);
}

static size_t
adam_bytes(const ts_optim_params *p, size_t n)
{
	return 2 * n * sizeof(float); /* m, v */
}

static int
adam_check(const ts_optim_params *p, size_t n)
{
	return 0;
}

static void
adam_reset(ts_optim *o)
{
	memset(o->m, 0, o->n * sizeof *o->m);
	memset(o->v, 0, o->n * sizeof *o->v);
}

static int
adam_alloc(ts_optim *o)
{
	o->m = calloc(o->n, sizeof *o->m);
	o->v = calloc(o->n, sizeof *o->v);
	/* g and part are the common part's, reported here with the kind */
	if (!o->g || !o->m || !o->v || !o->part) {
		ts_error("optim", "out of memory for Adam (%zu variables)", o->n);
		return -1;
	}
	return 0;
}

static void
adam_free(ts_optim *o)
{
	free(o->m);
	free(o->v);
}

static size_t
adam_scalars(const ts_optim *o, double *out)
{
	return 0;
}

static int
adam_set_scalars(ts_optim *o, const double *in)
{
	return 0;
}

static int
adam_seg_arrays(const ts_optim *o, void **base, size_t *esz)
{
	int k = 0;

	base[k] = o->m, esz[k++] = sizeof(float);
	base[k] = o->v, esz[k++] = sizeof(float);
	return k;
}

/* Adam takes every step it makes: nothing to put back */
static int
adam_settle(ts_optim *o, float *x)
{
	(void)o, (void)x;
	return 0;
}

const optim_ops ts_optim_adam_ops = {
	.width = adam_width,
	.bytes = adam_bytes,
	.check = adam_check,
	.alloc = adam_alloc,
	.free = adam_free,
	.reset = adam_reset,
	.step = adam_step,
	.settle = adam_settle,
	.scalars = adam_scalars,
	.set_scalars = adam_set_scalars,
	.seg_arrays = adam_seg_arrays,
};
