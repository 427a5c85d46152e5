/* optim: the part of the optimizers (see optim.h) that does not depend on the kind:
 * defaults and parameter checks, the buffers, blocks and segments of ts_optim_create
 * / _create_split, the reductions over the problem, the step's bookkeeping and the
 * checkpoints.  What a kind does is in its optim_ops (optim_internal.h): L-BFGS in
 * optim_lbfgs.c, Adam in optim_adam.c, chosen once at creation (o->ops).
 *
 * Invariants: all buffers are allocated in ts_optim_create_split (the common ones
 * here, then the kind's by ops->alloc); a step allocates nothing.  The variables are
 * cut into blocks of BLOCK variables fixed by the segments' lengths (none straddles
 * a segment); the kinds' passes take partial sums per block, and ts_optim_reduce_sum
 * adds them in block order, then by segment in the problem's order, so the bits do
 * not depend on the thread count nor on how the segments are spread over processes.
 *
 * Checkpoints: the scalars are the common ones (evals, iter, started, done, failed,
 * f) then the kind's; a segment's per-variable arrays are g then the kind's. */
#include "optim_internal.h"

#include "tessera/error.h"
#include "tessera/par.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void
ts_optim_defaults(ts_optim_params *p, ts_optim_kind kind)
{
	memset(p, 0, sizeof *p);
	p->kind = kind;
	p->history = 100;
	p->beta1 = 0.9;
	p->beta2 = 0.999;
	p->eps = 1e-8;
	if (kind == TS_OPTIM_ADAM) {
		p->lr = 0.02;
		p->tol_grad = 0.0;
		p->tol_change = 0.0;
	} else {
		p->lr = 1.0;
		p->tol_grad = 1e-7;
		p->tol_change = 1e-9;
	}
}

static int
check_params(const ts_optim_params *p, size_t n)
{
	int bad = 0;

	ts_error_clear();
	if (n == 0)
		ts_error_add(&bad, "optim", "no variables (n = 0)");
	if (p->kind != TS_OPTIM_LBFGS && p->kind != TS_OPTIM_ADAM)
		ts_error_add(&bad, "optim", "unknown optimizer kind %d", (int)p->kind);
	if (!(p->lr > 0.0) || !isfinite(p->lr))
		ts_error_add(&bad, "optim", "learning rate must be > 0 (got %g)", p->lr);
	if (p->kind == TS_OPTIM_LBFGS && p->history < 1)
		ts_error_add(&bad, "optim", "L-BFGS history must be >= 1 (got %d)", p->history);
	if (p->kind == TS_OPTIM_LBFGS && p->history > TS_OPTIM_MAX_HISTORY)
		ts_error_add(&bad, "optim", "L-BFGS history must be <= %d (got %d)", TS_OPTIM_MAX_HISTORY, p->history);
	if (p->kind == TS_OPTIM_ADAM) {
		if (!(p->beta1 >= 0.0 && p->beta1 < 1.0))
			ts_error_add(&bad, "optim", "Adam beta1 must be in [0, 1) (got %g)", p->beta1);
		if (!(p->beta2 >= 0.0 && p->beta2 < 1.0))
			ts_error_add(&bad, "optim", "Adam beta2 must be in [0, 1) (got %g)", p->beta2);
		if (!(p->eps >= 0.0))
			ts_error_add(&bad, "optim", "Adam eps must be >= 0 (got %g)", p->eps);
	}
	if (!(p->tol_grad >= 0.0))
		ts_error_add(&bad, "optim", "tol_grad must be >= 0 (got %g)", p->tol_grad);
	if (!(p->tol_change >= 0.0))
		ts_error_add(&bad, "optim", "tol_change must be >= 0 (got %g)", p->tol_change);
	return bad ? -1 : 0;
}

/* The kind's functions.  check_params refuses any other kind; the sizes
 * (ts_optim_bytes, ts_optim_sum_width) count one as Adam. */
static const optim_ops *
ops_of(ts_optim_kind kind)
{
	return kind == TS_OPTIM_LBFGS ? &ts_optim_lbfgs_ops : &ts_optim_adam_ops;
}

int
ts_optim_sum_width(const ts_optim_params *p)
{
	return (int)ops_of(p->kind)->width(p);
}

size_t
ts_optim_bytes(const ts_optim_params *p, size_t n)
{
	const optim_ops *ops = ops_of(p->kind);
	size_t nblk = (n + BLOCK - 1) / BLOCK + 1;

	/* g, the partial sums, then the kind's */
	return n * sizeof(float) + ops->width(p) * nblk * sizeof(double) + ops->bytes(p, n);
}

ts_optim *
ts_optim_create(const ts_optim_params *p, size_t n)
{
	return ts_optim_create_split(p, 1, &n, NULL);
}

ts_optim *
ts_optim_create_split(const ts_optim_params *p, int nseg, const size_t *seglen,
                      const ts_optim_reduce *red)
{
	ts_optim *o = NULL, *ret = NULL;
	const optim_ops *ops;
	size_t width, n = 0, nblk = 0;

	for (int i = 0; i < nseg; i++) {
		n += seglen[i];
		nblk += (seglen[i] + BLOCK - 1) / BLOCK;
	}
	/* a process of a split problem may hold no variables (more processes than
	 * segments): it only takes part in the sums */
	if (nseg < (red ? 0 : 1) || nblk > INT32_MAX) {
		ts_error("optim", "bad segments (%d)", nseg);
		goto cleanup;
	}
	for (int i = 0; i < nseg; i++)
		if (!seglen[i]) {
			ts_error("optim", "segment %d has no variables", i);
			goto cleanup;
		}

	if (!p) {
		ts_error("optim", "no parameters");
		goto cleanup;
	}
	if (check_params(p, n ? n : (red ? 1 : 0)))
		goto cleanup;
	ops = ops_of(p->kind);
	width = ops->width(p);
	if (ops->check(p, n))
		goto cleanup;
	if (!(o = calloc(1, sizeof *o))) {
		ts_error("optim", "out of memory");
		goto cleanup;
	}
	o->p = *p;
	o->ops = ops;
	o->n = n;
	o->nb = (int)nblk;
	o->nseg = nseg;
	if (red)
		o->red = *red;
	o->blo = malloc((nblk + 1) * sizeof *o->blo);
	o->bhi = malloc((nblk + 1) * sizeof *o->bhi);
	o->bseg = malloc((nblk + 1) * sizeof *o->bseg);
	o->segpart = calloc(((size_t)nseg + 1) * width, sizeof *o->segpart);
	o->segoff = calloc((size_t)nseg + 1, sizeof *o->segoff);
	o->seglen = calloc((size_t)nseg + 1, sizeof *o->seglen);
	if (!o->segoff || !o->seglen) {
		ts_error("optim", "out of memory");
		goto cleanup;
	}
	for (int i = 0; i < nseg; i++) {
		o->segoff[i] = i ? o->segoff[i - 1] + seglen[i - 1] : 0;
		o->seglen[i] = seglen[i];
	}
	o->sum = calloc(width, sizeof *o->sum);
	if (!o->blo || !o->bhi || !o->bseg || !o->segpart || !o->sum) {
		ts_error("optim", "out of memory");
		goto cleanup;
	}
	for (int i = 0, b = 0; i < nseg; i++) {
		size_t at = 0;

		for (int k = 0; k < i; k++)
			at += seglen[k];
		for (size_t lo = 0; lo < seglen[i]; lo += BLOCK, b++) {
			o->blo[b] = at + lo;
			o->bhi[b] = at + (lo + BLOCK < seglen[i] ? lo + BLOCK : seglen[i]);
			o->bseg[b] = i;
		}
	}
	/* g and part may be NULL here: ops->alloc reports it with the kind's sizes */
	o->g = calloc(n, sizeof *o->g);
	o->part = calloc(width * (nblk + 1), sizeof *o->part);
	if (ops->alloc(o))
		goto cleanup;
	ret = o;
	o = NULL;
cleanup:
	ts_optim_destroy(o);
	return ret;
}

void
ts_optim_reset(ts_optim *o)
{
	o->evals = 0;
	o->iter = 0;
	o->started = 0;
	o->done = 0;
	o->failed = 0;
	o->f = 0.0;
	o->ops->reset(o);
}

void
ts_optim_destroy(ts_optim *o)
{
	if (!o)
		return;
	o->ops->free(o);
	free(o->g);
	free(o->part);
	free(o->blo);
	free(o->bhi);
	free(o->bseg);
	free(o->segpart);
	free(o->segoff);
	free(o->seglen);
	free(o->sum);
	free(o);
}

long
ts_optim_evals(const ts_optim *o)
{
	return o ? o->evals : 0;
}

/* Seconds in ts_optim_step, and of them inside evaluations (main thread only). */
static double step_seconds, eval_seconds;

double
ts_optim_seconds(void)
{
	return step_seconds - eval_seconds;
}

int
ts_optim_evaluate(ts_optim *o, const float *x, ts_objective_fn fn, void *ctx, float *g,
                  double *f)
{
	return ts_optim_evaluate_moved(o, x, fn, ctx, g, f, 0);
}

int
ts_optim_evaluate_moved(ts_optim *o, const float *x, ts_objective_fn fn, void *ctx,
                        float *g, double *f, int may_rise)
{
	double t0 = ts_now();

	*f = fn(ctx, x, g);
	eval_seconds += ts_now() - t0;
	o->evals++;
	if (may_rise && *f == INFINITY)
		return 0;
	if (!isfinite(*f)) {
		ts_error("optim", "objective returned %g at evaluation %ld", *f, o->evals);
		o->failed = 1;
		return -1;
	}
	return 0;
}

/* A segment's blocks in order, then the segments by the reduction hook (or, alone, in
 * order).  So the value depends on the segments only, never on the threads nor on how
 * the segments are spread over processes (the hook sums them in the problem's order). */
void
ts_optim_reduce_sum(ts_optim *o, const double *part, size_t stride, int k, double *out)
{
	double *sp = o->segpart;

	for (int b = 0; b < o->nb; b++) {
		double *seg = sp + (size_t)o->bseg[b] * k;
		const double *pb = part + (size_t)b * stride;

		if (b == 0 || o->bseg[b] != o->bseg[b - 1])
			memcpy(seg, pb, (size_t)k * sizeof *seg);
		else
			for (int q = 0; q < k; q++)
				seg[q] += pb[q];
	}
	if (o->red.sum) {
		o->red.sum(o->red.user, sp, k, out);
		return;
	}
	memcpy(out, sp, (size_t)k * sizeof *out);
	for (int i = 1; i < o->nseg; i++)
		for (int q = 0; q < k; q++)
			out[q] += sp[(size_t)i * k + q];
}

/* The maximum of v over the processes of the problem. */
double
ts_optim_reduce_max(ts_optim *o, double v)
{
	if (o->red.max)
		o->red.max(o->red.user, &v, 1);
	return v;
}

int
ts_optim_step(ts_optim *o, float *x, ts_objective_fn fn, void *ctx, double *f_out)
{
	int ret;
	double t0 = ts_now();

	TS_ASSERT(o && x && fn);
	if (o->failed) {
		ts_error("optim", "step after a failed evaluation");
		return -1;
	}
	if (o->done) {
		ret = 1;
	} else {
		ret = o->ops->step(o, x, fn, ctx);
	}
	if (f_out)
		*f_out = o->f;
	step_seconds += ts_now() - t0;
	return ret;
}

int
ts_optim_settle(ts_optim *o, float *x)
{
	return o->ops->settle(o, x);
}

/* --- checkpoints --- */

size_t
ts_optim_scalars(const ts_optim *o, double *out)
{
	size_t k = 0;

#define PUT(v) ts_optim_put(out, &k, (double)(v))
	PUT(o->evals);
	PUT(o->iter);
	PUT(o->started);
	PUT(o->done);
	PUT(o->failed);
	PUT(o->f);
#undef PUT
	/* then the kind's, in its order */
	return k + o->ops->scalars(o, out ? out + k : NULL);
}

int
ts_optim_set_scalars(ts_optim *o, const double *in, size_t n)
{
	size_t k = 0;

	if (n != ts_optim_scalars(o, NULL)) {
		ts_error("optim", "a checkpoint of %zu values for an optimizer of %zu", n,
		         ts_optim_scalars(o, NULL));
		return -1;
	}
	o->evals = (long)in[k++];
	o->iter = (long)in[k++];
	o->started = (int)in[k++];
	o->done = (int)in[k++];
	o->failed = (int)in[k++];
	o->f = in[k++];
	return o->ops->set_scalars(o, in + k);
}

/* The per-variable arrays of segment seg in a fixed order: each as (base, element
 * size); g, then the kind's (after the scalars are set: the history pairs in use). */
static int
seg_arrays(const ts_optim *o, void **base, size_t *esz)
{
	int k = 0;

	base[k] = o->g, esz[k++] = sizeof(float);
	return k + o->ops->seg_arrays(o, base + k, esz + k);
}

size_t
ts_optim_segment_bytes(const ts_optim *o, int seg)
{
	void *base[2 * (TS_OPTIM_MAX_HISTORY + 1) + 4];
	size_t esz[2 * (TS_OPTIM_MAX_HISTORY + 1) + 4], b = 0;
	int k = seg_arrays(o, base, esz);

	for (int i = 0; i < k; i++)
		b += esz[i] * o->seglen[seg];
	return b;
}

void
ts_optim_segment_io(ts_optim *o, int seg, void *buf, int load)
{
	void *base[2 * (TS_OPTIM_MAX_HISTORY + 1) + 4];
	size_t esz[2 * (TS_OPTIM_MAX_HISTORY + 1) + 4];
	int k = seg_arrays(o, base, esz);
	char *p = buf;

	TS_ASSERT(seg >= 0 && seg < o->nseg);
	for (int i = 0; i < k; i++) {
		char *a = (char *)base[i] + esz[i] * o->segoff[seg];
		size_t nb = esz[i] * o->seglen[seg];

		if (load)
			memcpy(a, p, nb);
		else
			memcpy(p, a, nb);
		p += nb;
	}
}
