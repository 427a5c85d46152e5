/* optim: L-BFGS and Adam over a float vector (see optim.h).
 *
 * L-BFGS follows the algorithm of torch.optim.LBFGS: first direction -g with step
 * min(1, 1/|g|_1) * lr, then the two-loop recursion over a history of (s, y) pairs
 * (a pair is kept only when y.s > 1e-10; H_diag = y.s / y.y from the newest kept
 * pair), step lr, no line search (torch's line_search_fn=None; fixed steps reach
 * the Rosenbrock minimum from (-1.2, 1) in 97 iterations, see test_optim.c).
 * Where this differs from torch:
 *   - one ts_optim_step is one iteration of torch's inner loop (torch runs up to
 *     max_iter of them per .step()); the caller owns the iteration budget;
 *   - a stop condition found after a move (max |g| <= tol_grad, max |t d| <=
 *     tol_change, |f - f_prev| < tol_change) leaves the moved x in place, returns 0,
 *     and every later step returns 1 without touching x; a stop found before a
 *     move (zero gradient at the start, no descent direction) returns 1 at once;
 *   - tol_grad == 0 and tol_change == 0 disable their tests (torch compares
 *     "<= 0", which fires on an exactly zero gradient or step).
 * Adam is torch.optim.Adam (bias-corrected, eps added after the square root,
 * no weight decay, no amsgrad).
 *
 * Invariants: all buffers are allocated in ts_optim_create; a step allocates
 * nothing.  Dot products and norms are accumulated in double (the history pass: in
 * float over runs of 256 variables, the runs added in double).  The (s, y) history
 * has history + 1 slots: order[k] is the slot of pair k (0 = oldest) and `spare` the
 * free one, which each new pair is written into before y.s decides whether it is
 * kept (so a rejected pair never costs a kept one, nor an extra pass).
 *
 * Reading the history is the optimizer's whole cost, so a step reads it twice: one
 * pass takes every dot product the two-loop recursion needs (the pairs' products with
 * each other are kept, see lbfgs_direction), the recursion then runs on those
 * scalars, and a second pass forms the direction from the pairs.  The plain two-loop
 * form reads it four times (two pairs per pass, one pass per pair and loop).
 * Measured with build/lbfgs-bench on 786432 variables (a 512 x 512 tile), 2 threads:
 * history 100, 45.5 ms a step against 87.8; history 20, 9.7 ms against 17.4.  The passes run on the ts_par
 * threads over blocks of BLOCK variables fixed by n: the partial dot products are
 * summed in block order, so the bits do not depend on the thread count.
 *
 * With history_half the pairs are kept in 16 bits (half.h), each vector divided by a
 * power of two from its largest entry; the passes read them back run by run (RUN
 * variables into a buffer on the stack), and the step that adds a pair takes its
 * products from the same rounded values.  Half the bytes a step reads, not torch's
 * iterates bit for bit. */
#include "tessera/optim.h"

#include "tessera/error.h"
#include "tessera/par.h"

#include "half.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Variables per block of the parallel passes. */
#define BLOCK ((size_t)16384)
/* Variables per run of float sums in the history pass (see hist_item). */
#define RUN ((size_t)256)
/* Partial sums per block: the history pass takes 5 per kept pair and 4 more. */
#define PART(hist) (5 * (size_t)(hist) + 4)

struct ts_optim {
	ts_optim_params p;
	size_t n;    /* variables */
	long evals;  /* calls of fn so far */
	long iter;   /* iterations done (moves) */
	int started; /* L-BFGS: f, g hold the objective at the current x */
	int done;    /* converged: later steps return 1 */
	int failed;  /* fn failed: later steps return -1 */
	double f;    /* objective at the current x */

	float *g; /* [n] gradient at the current x */

	/* L-BFGS */
	float *d;       /* [n] last direction (s = t * d) */
	float *gprev;   /* [n] gradient at the previous x */
	double t;       /* last step length */
	double h_diag;  /* initial inverse Hessian scale */
	float *s;       /* [history + 1, n] steps x_{k+1} - x_k (half: [n], the new one) */
	float *y;       /* [history + 1, n] gradient changes g_{k+1} - g_k (half: [n]) */
	/* history_half: the pairs in 16-bit floats, each vector scaled by a power of two
	 * so that its largest entry is in [2^14, 2^15); s and y above then hold only the
	 * newest pair, rounded the same way, for the products of the step that adds it */
	uint16_t *sh, *yh; /* [history + 1, n] IEEE half bits */
	float *scale;   /* [2 (history + 1)] by slot: what s, y's stored values are multiplied by */
	double dmax;    /* max |d| of the last move (bounds the new s) */
	double *ro;     /* [history + 1] 1 / (y.s), by slot */
	double *al;     /* [history + 1] two-loop coefficients, by slot */
	int *order;     /* [history] slot of pair k, 0 = oldest */
	int spare;      /* the slot not in use */
	double *part;   /* [nblocks * PART(history)] partial sums of the passes */
	double *sum;    /* [PART(history)] the passes' sums over the whole problem */
	int count;      /* pairs held */
	/* dot products of the history, by slot (see lbfgs_direction) */
	double *sy;     /* [(history + 1)^2] sy[a * (history + 1) + b] = s_a . y_b */
	double *yy;     /* [(history + 1)^2] y_a . y_b */
	double *sg, *yg; /* [history + 1] s_a . g, y_a . g at the current x */
	double *coef;   /* [2 (history + 1)] by slot: the direction's weights of y, s */

	/* Adam */
	float *m; /* [n] first moment */
	float *v; /* [n] second moment */

	/* the blocks of the passes: none straddles a segment (ts_optim_create_split) */
	int nb, nseg;
	size_t *blo, *bhi; /* [nb] variables [blo, bhi) of block b */
	int *bseg;         /* [nb] its segment */
	size_t *segoff, *seglen; /* [nseg] where each segment's variables are */
	double *segpart;   /* [nseg * PART(history)] partial sums by segment */
	ts_optim_reduce red; /* sum and max over the whole problem (sum NULL: this process) */
};

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
#define BAD(...)                                   \
	do {                                       \
		if (bad++)                         \
			ts_error_append(__VA_ARGS__); \
		else                               \
			ts_error("optim", __VA_ARGS__); \
	} while (0)
	if (n == 0)
		BAD("no variables (n = 0)");
	if (p->kind != TS_OPTIM_LBFGS && p->kind != TS_OPTIM_ADAM)
		BAD("unknown optimizer kind %d", (int)p->kind);
	if (!(p->lr > 0.0) || !isfinite(p->lr))
		BAD("learning rate must be > 0 (got %g)", p->lr);
	if (p->kind == TS_OPTIM_LBFGS && p->history < 1)
		BAD("L-BFGS history must be >= 1 (got %d)", p->history);
	if (p->kind == TS_OPTIM_ADAM) {
		if (!(p->beta1 >= 0.0 && p->beta1 < 1.0))
			BAD("Adam beta1 must be in [0, 1) (got %g)", p->beta1);
		if (!(p->beta2 >= 0.0 && p->beta2 < 1.0))
			BAD("Adam beta2 must be in [0, 1) (got %g)", p->beta2);
		if (!(p->eps >= 0.0))
			BAD("Adam eps must be >= 0 (got %g)", p->eps);
	}
	if (!(p->tol_grad >= 0.0))
		BAD("tol_grad must be >= 0 (got %g)", p->tol_grad);
	if (!(p->tol_change >= 0.0))
		BAD("tol_change must be >= 0 (got %g)", p->tol_change);
#undef BAD
	return bad ? -1 : 0;
}

int
ts_optim_sum_width(const ts_optim_params *p)
{
	return (int)PART(p->kind == TS_OPTIM_LBFGS ? p->history : 0);
}

size_t
ts_optim_bytes(const ts_optim_params *p, size_t n)
{
	size_t hist = p->kind == TS_OPTIM_LBFGS ? (size_t)p->history : 0;
	size_t nblk = (n + BLOCK - 1) / BLOCK + 1, b;

	b = n * sizeof(float); /* g */
	if (p->kind != TS_OPTIM_LBFGS)
		return b + 2 * n * sizeof(float) + PART(0) * nblk * sizeof(double);
	b += 2 * n * sizeof(float); /* d, gprev */
	if (p->history_half)
		b += 2 * n * sizeof(float) + 2 * (hist + 1) * n * sizeof(uint16_t);
	else
		b += 2 * (hist + 1) * n * sizeof(float);
	/* the partial sums and the history's scalars */
	return b + PART(hist) * nblk * sizeof(double) + 6 * (hist + 1) * (hist + 1) * sizeof(double);
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
	size_t hist, n = 0, nblk = 0;

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
	hist = p->kind == TS_OPTIM_LBFGS ? (size_t)p->history : 0;
	if (hist && n > SIZE_MAX / sizeof(float) / (hist + 1)) {
		ts_error("optim", "history of %zu x %zu floats is too large", hist, n);
		goto cleanup;
	}
	if (!(o = calloc(1, sizeof *o))) {
		ts_error("optim", "out of memory");
		goto cleanup;
	}
	o->p = *p;
	o->n = n;
	o->h_diag = 1.0;
	o->nb = (int)nblk;
	o->nseg = nseg;
	if (red)
		o->red = *red;
	o->blo = malloc((nblk + 1) * sizeof *o->blo);
	o->bhi = malloc((nblk + 1) * sizeof *o->bhi);
	o->bseg = malloc((nblk + 1) * sizeof *o->bseg);
	o->segpart = calloc(((size_t)nseg + 1) * PART(hist), sizeof *o->segpart);
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
	o->sum = calloc(PART(hist), sizeof *o->sum);
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
	o->g = calloc(n, sizeof *o->g);
	if (p->kind == TS_OPTIM_LBFGS) {
		o->d = calloc(n, sizeof *o->d);
		o->gprev = calloc(n, sizeof *o->gprev);
		if (p->history_half) {
			o->s = calloc(n, sizeof *o->s);
			o->y = calloc(n, sizeof *o->y);
			o->sh = calloc((hist + 1) * n, sizeof *o->sh);
			o->yh = calloc((hist + 1) * n, sizeof *o->yh);
			o->scale = calloc(2 * (hist + 1), sizeof *o->scale);
			if (!o->sh || !o->yh || !o->scale) {
				ts_error("optim", "out of memory for L-BFGS (%zu variables, "
				         "history %zu)", n, hist);
				goto cleanup;
			}
		} else {
			o->s = calloc((hist + 1) * n, sizeof *o->s);
			o->y = calloc((hist + 1) * n, sizeof *o->y);
		}
		o->ro = calloc(hist + 1, sizeof *o->ro);
		o->al = calloc(hist + 1, sizeof *o->al);
		o->order = calloc(hist, sizeof *o->order);
		o->part = calloc(PART(hist) * (nblk + 1), sizeof *o->part);
		o->sy = calloc((hist + 1) * (hist + 1), sizeof *o->sy);
		o->yy = calloc((hist + 1) * (hist + 1), sizeof *o->yy);
		o->sg = calloc(hist + 1, sizeof *o->sg);
		o->yg = calloc(hist + 1, sizeof *o->yg);
		o->coef = calloc(2 * (hist + 1), sizeof *o->coef);
		if (!o->g || !o->d || !o->gprev || !o->s || !o->y || !o->ro || !o->al ||
		    !o->order || !o->part || !o->sy || !o->yy || !o->sg || !o->yg || !o->coef) {
			ts_error("optim", "out of memory for L-BFGS (%zu variables, history %zu)",
			         n, hist);
			goto cleanup;
		}
	} else {
		o->m = calloc(n, sizeof *o->m);
		o->v = calloc(n, sizeof *o->v);
		o->part = calloc(PART(0) * (nblk + 1), sizeof *o->part);
		if (!o->g || !o->m || !o->v || !o->part) {
			ts_error("optim", "out of memory for Adam (%zu variables)", n);
			goto cleanup;
		}
	}
	ret = o;
	o = NULL;
cleanup:
	ts_optim_destroy(o);
	return ret;
}

void
ts_optim_reset(ts_optim *o)
{
	size_t hist = o->p.kind == TS_OPTIM_LBFGS ? (size_t)o->p.history : 0;

	o->evals = 0;
	o->iter = 0;
	o->started = 0;
	o->done = 0;
	o->failed = 0;
	o->f = 0.0;
	o->t = 0.0;
	o->h_diag = 1.0;
	o->count = 0;
	o->spare = 0;
	/* the vectors are written before they are read, except Adam's moments */
	if (o->p.kind == TS_OPTIM_LBFGS) {
		memset(o->ro, 0, (hist + 1) * sizeof *o->ro);
		memset(o->al, 0, (hist + 1) * sizeof *o->al);
		memset(o->order, 0, hist * sizeof *o->order);
	} else {
		memset(o->m, 0, o->n * sizeof *o->m);
		memset(o->v, 0, o->n * sizeof *o->v);
	}
}

void
ts_optim_destroy(ts_optim *o)
{
	if (!o)
		return;
	free(o->g);
	free(o->d);
	free(o->gprev);
	free(o->s);
	free(o->y);
	free(o->sh);
	free(o->yh);
	free(o->scale);
	free(o->ro);
	free(o->al);
	free(o->part);
	free(o->sy);
	free(o->yy);
	free(o->sg);
	free(o->yg);
	free(o->coef);
	free(o->order);
	free(o->m);
	free(o->v);
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

/* Evaluate fn at x into *f and g; -1 (message set) when it returns NaN or inf. */
static int
evaluate(ts_optim *o, const float *x, ts_objective_fn fn, void *ctx, float *g, double *f)
{
	double t0 = ts_now();

	*f = fn(ctx, x, g);
	eval_seconds += ts_now() - t0;
	o->evals++;
	if (!isfinite(*f)) {
		ts_error("optim", "objective returned %g at evaluation %ld", *f, o->evals);
		o->failed = 1;
		return -1;
	}
	return 0;
}

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

/* Block-parallel passes over the variables (see the top of the file).  Sums run
 * eight side by side in double (so the loops vectorize) and are added in a fixed
 * order, block by block; maxima do not depend on the order.  Simple passes:
 *   FIRST:  d = -g;                                  part = (sum |g|, g.d)
 *   MOVE:   x += t d;                                part = max |d|
 *   GMAX:                                            part = max |g|
 *   YMAX:                                            part = max |g - gprev| */
enum pass_mode { PASS_FIRST, PASS_MOVE, PASS_GMAX, PASS_YMAX };

struct pass_job {
	ts_optim *o;
	enum pass_mode mode;
	float *x; /* MOVE */
};

/* for (i = lo; i < hi; i++) BODY(i, k) with k = the lane of i's partial sum */
#define LANES(BODY)                                           \
	do {                                                  \
		size_t i_ = lo;                               \
		for (; i_ + 8 <= hi; i_ += 8)                 \
			for (int k_ = 0; k_ < 8; k_++)        \
				BODY(i_ + (size_t)k_, k_);    \
		for (; i_ < hi; i_++)                         \
			BODY(i_, 0);                          \
	} while (0)

static void
pass_item(void *ctx, int b, int thread)
{
	const struct pass_job *j = ctx;
	ts_optim *o = j->o;
	size_t lo = o->blo[b], hi = o->bhi[b];
	float *restrict d = o->d;
	const float *restrict g = o->g;
	const double t = o->t;
	double a[8] = { 0 }, a2[8] = { 0 }, acc = 0.0, acc2 = 0.0;
	float mx[8] = { 0 };

	(void)thread;
	switch (j->mode) {
	case PASS_FIRST:
#define FIRST(i, k)                                \
	do {                                       \
		d[i] = -g[i];                      \
		a[k] += fabs((double)g[i]);        \
		a2[k] += (double)g[i] * d[i];      \
	} while (0)
		LANES(FIRST);
#undef FIRST
		break;
	case PASS_MOVE: {
		float *restrict x = j->x;

#define MOVE(i, k)                                          \
	do {                                                \
		float ad = fabsf(d[i]);                     \
		x[i] += (float)(t * d[i]);                  \
		mx[k] = ad > mx[k] ? ad : mx[k];            \
	} while (0)
		LANES(MOVE);
#undef MOVE
		break;
	}
	case PASS_GMAX:
#define GMAX(i, k)                                          \
	do {                                                \
		float ag = fabsf(g[i]);                     \
		mx[k] = ag > mx[k] ? ag : mx[k];            \
	} while (0)
		LANES(GMAX);
#undef GMAX
		break;
	case PASS_YMAX: {
		const float *restrict gp = o->gprev;

#define YMAX(i, k)                                          \
	do {                                                \
		float ay = fabsf(g[i] - gp[i]);             \
		mx[k] = ay > mx[k] ? ay : mx[k];            \
	} while (0)
		LANES(YMAX);
#undef YMAX
		break;
	}
	}
	if (j->mode != PASS_FIRST) {
		for (int k = 0; k < 8; k++)
			acc = mx[k] > acc ? mx[k] : acc;
	} else {
		for (int k = 0; k < 8; k++) {
			acc += a[k];
			acc2 += a2[k];
		}
	}
	o->part[2 * b] = acc;
	o->part[2 * b + 1] = acc2;
}

/* out [k] = the sums over the whole problem of the blocks' partial sums part [nb *
 * stride] (k of them at part + b * stride): a segment's blocks in order, then the
 * segments by the reduction hook (or, alone, in order).  So the value depends on the
 * segments only, never on the threads nor on how the segments are spread over
 * processes (the hook sums them in the problem's order). */
static void
reduce_sum(ts_optim *o, const double *part, size_t stride, int k, double *out)
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
static double
reduce_max(ts_optim *o, double v)
{
	if (o->red.max)
		o->red.max(o->red.user, &v, 1);
	return v;
}

/* Run one simple pass; returns the first partial result combined over the problem
 * (the second in *second): sums, or for MOVE, GMAX and YMAX the maximum. */
static double
pass(ts_optim *o, enum pass_mode mode, float *x, double *second)
{
	struct pass_job j = { o, mode, x };
	double a = 0.0, s[2];

	ts_par_for(o->nb, pass_item, &j);
	if (mode != PASS_FIRST) {
		for (int b = 0; b < o->nb; b++)
			a = o->part[2 * b] > a ? o->part[2 * b] : a;
		return reduce_max(o, a);
	}
	reduce_sum(o, o->part, 2, 2, s);
	if (second)
		*second = s[1];
	return s[0];
}

/* dot(u, v) of one block, eight sums side by side in double. */
static double
block_dot(const float *restrict u, const float *restrict v, size_t lo, size_t hi)
{
	double a[8] = { 0 }, acc = 0.0;

#define DOT(i, k) (a[k] += (double)u[i] * v[i])
	LANES(DOT);
#undef DOT
	for (int k = 0; k < 8; k++)
		acc += a[k];
	return acc;
}

/* Variables [r, e) of slot sl's s (which 0) or y (which 1), as floats: a pointer into
 * the float history, or with 16-bit storage the run converted into buf [RUN]. */
static inline const float *
run_of(const ts_optim *o, int which, int sl, size_t r, size_t e, float *restrict buf)
{
	size_t at = (size_t)sl * o->n + r;

	if (o->sh) {
		ts_half_load((which ? o->yh : o->sh) + at, e - r, o->scale[2 * sl + which], buf);
		return buf;
	}
	return (which ? o->y : o->s) + at;
}

/* The history pass of L-BFGS (one per step): writes the new pair s = t d,
 * y = g - gprev into the spare slot and takes, per block, every dot product the
 * two-loop recursion will need: for each kept pair j (order k = 0..m-1) s_j.g, y_j.g,
 * s_new.y_j, s_j.y_new, y_new.y_j; then s_new.g, y_new.g, s_new.y_new, y_new.y_new. */
struct hist_job {
	ts_optim *o;
	int m;
};

static void
hist_item(void *ctx, int b, int thread)
{
	const struct hist_job *j = ctx;
	ts_optim *o = j->o;
	size_t n = o->n, lo = o->blo[b], hi = o->bhi[b];
	float *restrict sn, *restrict yn;
	const float *restrict g = o->g, *restrict gp = o->gprev, *restrict d = o->d;
	double *part = o->part + (size_t)b * PART(o->p.history);

	(void)thread;
	if (o->sh) {
		uint16_t *shn = o->sh + (size_t)o->spare * n, *yhn = o->yh + (size_t)o->spare * n;
		const float ss = o->scale[2 * o->spare], sy = o->scale[2 * o->spare + 1];

		/* the new pair scaled (exactly: powers of two) and rounded to half; sn, yn
		 * get the values the history will give back */
		sn = o->s;
		yn = o->y;
		for (size_t r = lo; r < hi; r += RUN) {
			size_t e = r + RUN < hi ? r + RUN : hi;
			float bs[RUN], by[RUN];

			for (size_t i = r; i < e; i++) {
				bs[i - r] = (float)(o->t * d[i]) / ss;
				by[i - r] = (g[i] - gp[i]) / sy;
			}
			ts_half_store(bs, e - r, shn + r);
			ts_half_store(by, e - r, yhn + r);
			ts_half_load(shn + r, e - r, ss, sn + r);
			ts_half_load(yhn + r, e - r, sy, yn + r);
		}
	} else {
		sn = o->s + (size_t)o->spare * n;
		yn = o->y + (size_t)o->spare * n;
		for (size_t i = lo; i < hi; i++) {
			sn[i] = (float)(o->t * d[i]);
			yn[i] = g[i] - gp[i];
		}
	}
	for (int k = 0; k < j->m; k++) {
		int sl = o->order[k];
		double a[5] = { 0 };

		/* float sums, 16 side by side, over runs of RUN variables (so the loop
		 * vectorizes at full width), each run's sums then added in double: this
		 * pass does 5 products per variable and pair, the most arithmetic of a step */
		for (size_t r = lo; r < hi; r += RUN) {
			size_t e = r + RUN < hi ? r + RUN : hi;
			float v[5][16] = { { 0 } }, bs[RUN], by[RUN];
			const float *restrict sk = run_of(o, 0, sl, r, e, bs);
			const float *restrict yk = run_of(o, 1, sl, r, e, by);
			size_t i = r;

			/* sk, yk: the run's values, sk[0] being variable r */
			for (; i + 16 <= e; i += 16)
				for (int l = 0; l < 16; l++) {
					float s_ = sk[i - r + l], y_ = yk[i - r + l];

					v[0][l] += s_ * g[i + l];
					v[1][l] += y_ * g[i + l];
					v[2][l] += sn[i + l] * y_;
					v[3][l] += s_ * yn[i + l];
					v[4][l] += yn[i + l] * y_;
				}
			for (; i < e; i++) {
				v[0][0] += sk[i - r] * g[i];
				v[1][0] += yk[i - r] * g[i];
				v[2][0] += sn[i] * yk[i - r];
				v[3][0] += sk[i - r] * yn[i];
				v[4][0] += yn[i] * yk[i - r];
			}
			for (int q = 0; q < 5; q++)
				for (int l = 0; l < 16; l++)
					a[q] += v[q][l];
		}
		for (int q = 0; q < 5; q++)
			part[5 * k + q] = a[q];
	}
	part[5 * j->m + 0] = block_dot(sn, g, lo, hi);
	part[5 * j->m + 1] = block_dot(yn, g, lo, hi);
	part[5 * j->m + 2] = block_dot(sn, yn, lo, hi);
	part[5 * j->m + 3] = block_dot(yn, yn, lo, hi);
}

/* The direction from the weights (pass two of a step): d = -h_diag g + sum_k
 * cy_k y_k + cs_k s_k over the kept pairs; part = g.d. */
static void
comb_item(void *ctx, int b, int thread)
{
	const struct hist_job *j = ctx;
	ts_optim *o = j->o;
	size_t lo = o->blo[b], hi = o->bhi[b];
	float *restrict d = o->d;
	const float *restrict g = o->g;
	const float h = (float)o->h_diag;

	(void)thread;
	for (size_t i = lo; i < hi; i++)
		d[i] = -h * g[i];
	for (int k = 0; k < j->m; k++) {
		int sl = o->order[k];
		const float cy = (float)o->coef[2 * sl], cs = (float)o->coef[2 * sl + 1];

		for (size_t r = lo; r < hi; r += RUN) {
			size_t e = r + RUN < hi ? r + RUN : hi;
			float bs[RUN], by[RUN];
			const float *restrict sk = run_of(o, 0, sl, r, e, bs);
			const float *restrict yk = run_of(o, 1, sl, r, e, by);

			for (size_t i = r; i < e; i++)
				d[i] += cy * yk[i - r] + cs * sk[i - r];
		}
	}
	o->part[(size_t)b * PART(o->p.history)] = block_dot(g, d, lo, hi);
}
#undef LANES

/* Add the pair (s, y) = (t * d, g - gprev) to the history when y.s > 1e-10, turn d
 * into the new direction -H g, and return g.d.
 *
 * This is the two-loop recursion of torch's L-BFGS, scalar for scalar, with its dot
 * products taken from one pass over the history instead of one pass per pair and
 * loop (half the memory traffic; the history is what a step reads).  With q_m = -g
 * and the pairs k = m-1..0 (newest first):
 *     al_k = ro_k s_k.q_{k+1},  q_k = q_{k+1} - al_k y_k,
 * so s_k.q_{k+1} = -s_k.g - sum_{j>k} al_j s_k.y_j.  Then r_0 = h_diag q_0 and for
 * k = 0..m-1:  be_k = ro_k y_k.r_k,  r_{k+1} = r_k + (al_k - be_k) s_k,  so
 *     y_k.r_k = h_diag (-y_k.g - sum_j al_j y_k.y_j) + sum_{j<k} (al_j - be_j) y_k.s_j,
 * and the direction is d = r_m = -h_diag g - sum_j h_diag al_j y_j + sum_k (al_k -
 * be_k) s_k.  The products of pairs with each other (sy, yy) are kept from the step
 * that added the newer of the two; those with g (sg, yg) are taken every step. */
static double
lbfgs_direction(ts_optim *o)
{
	int hist = o->p.history, m = o->count, sp = o->spare;
	int nb = o->nb;
	size_t H = (size_t)hist + 1, pf = PART(hist);
	double *sum = o->sum; /* the history pass's sums over the problem */
	double ys, yy, gtd = 0.0;
	struct hist_job j = { o, m };

	if (o->sh) { /* the new pair's scales, from its largest entries */
		o->scale[2 * sp] = ts_half_scale(o->t * o->dmax);
		o->scale[2 * sp + 1] = ts_half_scale(pass(o, PASS_YMAX, NULL, NULL));
	}
	ts_par_for(nb, hist_item, &j);
	reduce_sum(o, o->part, pf, 5 * m + 4, sum);
	for (int k = 0; k < m; k++) {
		int sl = o->order[k];

		o->sg[sl] = sum[5 * k + 0];
		o->yg[sl] = sum[5 * k + 1];
	}
	ys = sum[5 * m + 2];
	yy = sum[5 * m + 3];
	if (ys > 1e-10) {
		int full = o->count == hist, freed = full ? o->order[0] : -1;

		/* the new pair's products with the kept ones, and its own */
		for (int k = 0; k < m; k++) {
			int sl = o->order[k];

			o->sy[sp * H + sl] = sum[5 * k + 2];
			o->sy[sl * H + sp] = sum[5 * k + 3];
			o->yy[sp * H + sl] = o->yy[sl * H + sp] = sum[5 * k + 4];
		}
		o->sy[sp * H + sp] = ys;
		o->yy[sp * H + sp] = yy;
		o->sg[sp] = sum[5 * m + 0];
		o->yg[sp] = sum[5 * m + 1];
		if (full) {
			memmove(o->order, o->order + 1, (size_t)(hist - 1) * sizeof *o->order);
			o->count--;
		}
		o->ro[sp] = 1.0 / ys;
		o->order[o->count++] = sp;
		/* until the ring is first full, slots are taken in order 0, 1, ... */
		o->spare = full ? freed : o->count;
		o->h_diag = ys / yy;
	}
	m = o->count;

	/* first loop, newest to oldest: al_k */
	for (int k = m - 1; k >= 0; k--) {
		int sk = o->order[k];
		double sq = -o->sg[sk];

		for (int i = k + 1; i < m; i++)
			sq -= o->al[o->order[i]] * o->sy[sk * H + o->order[i]];
		o->al[sk] = o->ro[sk] * sq;
	}
	/* second loop, oldest to newest: be_k, and the weights of s_k (al_k - be_k) and
	 * y_k (-h_diag al_k) */
	for (int k = 0; k < m; k++) {
		int yk = o->order[k];
		double yq = -o->yg[yk], yr;

		for (int i = 0; i < m; i++)
			yq -= o->al[o->order[i]] * o->yy[yk * H + o->order[i]];
		yr = o->h_diag * yq;
		for (int i = 0; i < k; i++)
			yr += o->coef[2 * o->order[i] + 1] * o->sy[o->order[i] * H + yk];
		o->coef[2 * yk + 1] = o->al[yk] - o->ro[yk] * yr;
		o->coef[2 * yk] = -o->h_diag * o->al[yk];
	}
	j.m = m;
	ts_par_for(nb, comb_item, &j);
	reduce_sum(o, o->part, pf, 1, &gtd);
	return gtd;
}

static int
lbfgs_step(ts_optim *o, float *x, ts_objective_fn fn, void *ctx)
{
	double gtd, f_prev;
	float *t;

	if (!o->started) {
		if (evaluate(o, x, fn, ctx, o->g, &o->f))
			return -1;
		o->started = 1;
		if (o->p.tol_grad > 0.0 && pass(o, PASS_GMAX, NULL, NULL) <=
		                                   o->p.tol_grad) {
			o->done = 1;
			return 1;
		}
	}

	if (o->iter == 0) {
		double g1 = pass(o, PASS_FIRST, NULL, &gtd);

		o->t = (g1 > 1.0 ? 1.0 / g1 : 1.0) * o->p.lr;
	} else {
		gtd = lbfgs_direction(o);
		o->t = o->p.lr;
	}
	f_prev = o->f;

	/* Not a descent direction (or a vanishing one): nothing more to gain. */
	if (gtd > -o->p.tol_change) {
		o->done = 1;
		return 1;
	}

	o->dmax = pass(o, PASS_MOVE, x, NULL);
	o->iter++;
	/* the gradient here becomes the previous one: swap the buffers, no copy */
	t = o->gprev;
	o->gprev = o->g;
	o->g = t;
	if (evaluate(o, x, fn, ctx, o->g, &o->f))
		return -1;

	if (o->p.tol_grad > 0.0 &&
	    pass(o, PASS_GMAX, NULL, NULL) <= o->p.tol_grad)
		o->done = 1;
	if (o->p.tol_change > 0.0 &&
	    (o->dmax * o->t <= o->p.tol_change || fabs(o->f - f_prev) < o->p.tol_change))
		o->done = 1;
	return 0;
}

static int
adam_step(ts_optim *o, float *x, ts_objective_fn fn, void *ctx)
{
	const ts_optim_params *p = &o->p;
	size_t n = o->n;
	double bc1, bc2, step_size, inv_sqrt_bc2;
	float b1 = (float)p->beta1, b2 = (float)p->beta2;

	if (evaluate(o, x, fn, ctx, o->g, &o->f))
		return -1;
	if (p->tol_grad > 0.0 && reduce_max(o, abs_max(o->g, n)) <= p->tol_grad) {
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
	} else if (o->p.kind == TS_OPTIM_LBFGS) {
		ret = lbfgs_step(o, x, fn, ctx);
	} else {
		ret = adam_step(o, x, fn, ctx);
	}
	if (f_out)
		*f_out = o->f;
	step_seconds += ts_now() - t0;
	return ret;
}

/* --- checkpoints --- */

size_t
ts_optim_scalars(const ts_optim *o, double *out)
{
	size_t k = 0, H = (size_t)o->p.history + 1;

#define PUT(v)                          \
	do {                            \
		if (out)                \
			out[k] = (double)(v); \
		k++;                    \
	} while (0)
	PUT(o->evals);
	PUT(o->iter);
	PUT(o->started);
	PUT(o->done);
	PUT(o->failed);
	PUT(o->f);
	if (o->p.kind == TS_OPTIM_LBFGS) {
		PUT(o->t);
		PUT(o->h_diag);
		PUT(o->dmax);
		PUT(o->count);
		PUT(o->spare);
		for (size_t i = 0; i + 1 < H; i++)
			PUT(o->order[i]);
		for (size_t i = 0; i < H; i++) {
			PUT(o->ro[i]);
			PUT(o->al[i]);
			PUT(o->sg[i]);
			PUT(o->yg[i]);
			PUT(o->coef[2 * i]);
			PUT(o->coef[2 * i + 1]);
			PUT(o->scale ? o->scale[2 * i] : 0);
			PUT(o->scale ? o->scale[2 * i + 1] : 0);
		}
		for (size_t i = 0; i < H * H; i++) {
			PUT(o->sy[i]);
			PUT(o->yy[i]);
		}
	}
#undef PUT
	return k;
}

int
ts_optim_set_scalars(ts_optim *o, const double *in, size_t n)
{
	size_t k = 0, H = (size_t)o->p.history + 1;

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
	if (o->p.kind == TS_OPTIM_LBFGS) {
		o->t = in[k++];
		o->h_diag = in[k++];
		o->dmax = in[k++];
		o->count = (int)in[k++];
		o->spare = (int)in[k++];
		if (o->count < 0 || o->count > o->p.history || o->spare < 0 ||
		    o->spare > o->p.history) {
			ts_error("optim", "a checkpoint with %d pairs (slot %d)", o->count, o->spare);
			return -1;
		}
		for (size_t i = 0; i + 1 < H; i++) {
			o->order[i] = (int)in[k++];
			if (o->order[i] < 0 || o->order[i] > o->p.history) {
				ts_error("optim", "a checkpoint with a bad history slot");
				return -1;
			}
		}
		for (size_t i = 0; i < H; i++) {
			o->ro[i] = in[k++];
			o->al[i] = in[k++];
			o->sg[i] = in[k++];
			o->yg[i] = in[k++];
			o->coef[2 * i] = in[k++];
			o->coef[2 * i + 1] = in[k++];
			if (o->scale) {
				o->scale[2 * i] = (float)in[k];
				o->scale[2 * i + 1] = (float)in[k + 1];
			}
			k += 2;
		}
		for (size_t i = 0; i < H * H; i++) {
			o->sy[i] = in[k++];
			o->yy[i] = in[k++];
		}
	}
	return 0;
}

/* The per-variable arrays of segment seg in a fixed order: each as (base, element
 * size); the history only for the pairs in use (after the scalars are set). */
static int
seg_arrays(const ts_optim *o, void **base, size_t *esz)
{
	int k = 0;

	base[k] = o->g, esz[k++] = sizeof(float);
	if (o->p.kind != TS_OPTIM_LBFGS) {
		base[k] = o->m, esz[k++] = sizeof(float);
		base[k] = o->v, esz[k++] = sizeof(float);
		return k;
	}
	base[k] = o->d, esz[k++] = sizeof(float);
	base[k] = o->gprev, esz[k++] = sizeof(float);
	for (int i = 0; i < o->count; i++) {
		size_t at = (size_t)o->order[i] * o->n;

		if (o->sh) {
			base[k] = o->sh + at, esz[k++] = sizeof(uint16_t);
			base[k] = o->yh + at, esz[k++] = sizeof(uint16_t);
		} else {
			base[k] = o->s + at, esz[k++] = sizeof(float);
			base[k] = o->y + at, esz[k++] = sizeof(float);
		}
	}
	return k;
}

size_t
ts_optim_segment_bytes(const ts_optim *o, int seg)
{
	void *base[2 * 1001 + 4];
	size_t esz[2 * 1001 + 4], b = 0;
	int k = seg_arrays(o, base, esz);

	for (int i = 0; i < k; i++)
		b += esz[i] * o->seglen[seg];
	return b;
}

void
ts_optim_segment_io(ts_optim *o, int seg, void *buf, int load)
{
	void *base[2 * 1001 + 4];
	size_t esz[2 * 1001 + 4];
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
