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
 * nothing.  Dot products and norms are accumulated in double.  The (s, y) history
 * has history + 1 slots: order[k] is the slot of pair k (0 = oldest) and `spare` the
 * free one, which each new pair is written into before y.s decides whether it is
 * kept (so a rejected pair never costs a kept one, nor an extra pass).
 *
 * The two-loop recursion is the optimizer's whole cost (4 * history passes over n
 * floats per step), so each update of the direction is fused with the dot product
 * the next one needs (one pass per pair and loop), and the passes run on the ts_par
 * threads over blocks of BLOCK variables fixed by n: the partial dot products are
 * summed in block order, so the bits do not depend on the thread count. */
#include "tessera/optim.h"

#include "tessera/error.h"
#include "tessera/par.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Variables per block of the parallel passes. */
#define BLOCK ((size_t)16384)

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
	float *s;       /* [history + 1, n] steps x_{k+1} - x_k */
	float *y;       /* [history + 1, n] gradient changes g_{k+1} - g_k */
	double *ro;     /* [history + 1] 1 / (y.s), by slot */
	double *al;     /* [history + 1] two-loop coefficients, by slot */
	int *order;     /* [history] slot of pair k, 0 = oldest */
	int spare;      /* the slot not in use */
	double *part;   /* [nblocks * 2] partial sums of the block-parallel passes */
	int count;      /* pairs held */

	/* Adam */
	float *m; /* [n] first moment */
	float *v; /* [n] second moment */
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

ts_optim *
ts_optim_create(const ts_optim_params *p, size_t n)
{
	ts_optim *o = NULL, *ret = NULL;
	size_t hist;

	if (!p) {
		ts_error("optim", "no parameters");
		goto cleanup;
	}
	if (check_params(p, n))
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
	o->g = calloc(n, sizeof *o->g);
	if (p->kind == TS_OPTIM_LBFGS) {
		o->d = calloc(n, sizeof *o->d);
		o->gprev = calloc(n, sizeof *o->gprev);
		o->s = calloc((hist + 1) * n, sizeof *o->s);
		o->y = calloc((hist + 1) * n, sizeof *o->y);
		o->ro = calloc(hist + 1, sizeof *o->ro);
		o->al = calloc(hist + 1, sizeof *o->al);
		o->order = calloc(hist, sizeof *o->order);
		o->part = calloc(2 * ((n + BLOCK - 1) / BLOCK), sizeof *o->part);
		if (!o->g || !o->d || !o->gprev || !o->s || !o->y || !o->ro || !o->al ||
		    !o->order || !o->part) {
			ts_error("optim", "out of memory for L-BFGS (%zu variables, history %zu)",
			         n, hist);
			goto cleanup;
		}
	} else {
		o->m = calloc(n, sizeof *o->m);
		o->v = calloc(n, sizeof *o->v);
		if (!o->g || !o->m || !o->v) {
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
	free(o->ro);
	free(o->al);
	free(o->part);
	free(o->order);
	free(o->m);
	free(o->v);
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

/* One block-parallel pass over the variables (see the top of the file).  Modes:
 *   PAIR:   part = (y.(t d), y.y) with y = g - gprev; stores s = t d and y when
 *           `store` (ys is only known after the pass: the caller undoes nothing,
 *           it stores into the free slot and commits the slot only if ys > 1e-10);
 *   NEG:    d = -g;                                  part = dot(u, d)
 *   AXPY:   d += c * v;                              part = dot(u, d) (u may be NULL)
 *   SCALE:  d *= c;                                  part = dot(u, d)
 *   FIRST:  d = -g;                                  part = (sum |g|, g.d)
 *   MOVE:   x += t d;                                part = max |d|
 *   GMAX:                                            part = max |g|
 * Sums run eight side by side in double (so the loops vectorize) and are added in a
 * fixed order; maxima do not depend on the order. */
enum pass_mode { PASS_PAIR, PASS_NEG, PASS_AXPY, PASS_SCALE, PASS_FIRST, PASS_MOVE, PASS_GMAX };

struct pass_job {
	ts_optim *o;
	enum pass_mode mode;
	float c;
	const float *v, *u;
	float *s, *y; /* PAIR: the slot to fill */
	float *x;     /* MOVE */
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
	size_t lo = (size_t)b * BLOCK, hi = lo + BLOCK < o->n ? lo + BLOCK : o->n;
	float *restrict d = o->d;
	const float *restrict g = o->g, *restrict u = j->u, *restrict v = j->v;
	const float c = j->c;
	const double t = o->t;
	double a[8] = { 0 }, a2[8] = { 0 }, acc = 0.0, acc2 = 0.0;
	float mx[8] = { 0 };

	(void)thread;
	switch (j->mode) {
	case PASS_PAIR: {
		const float *restrict gp = o->gprev;
		float *restrict s = j->s, *restrict y = j->y;

#define PAIR(i, k)                                          \
	do {                                                \
		double yd = (double)g[i] - gp[i];           \
		a[k] += yd * (t * d[i]);                    \
		a2[k] += yd * yd;                           \
		s[i] = (float)(t * d[i]);                   \
		y[i] = g[i] - gp[i];                        \
	} while (0)
		LANES(PAIR);
#undef PAIR
		break;
	}
	case PASS_NEG:
	case PASS_FIRST:
#define NEG(i, k) (d[i] = -g[i])
#define NEG_DOT(i, k)                              \
	do {                                       \
		d[i] = -g[i];                      \
		a[k] += (double)u[i] * d[i];       \
	} while (0)
#define FIRST(i, k)                                \
	do {                                       \
		d[i] = -g[i];                      \
		a[k] += fabs((double)g[i]);        \
		a2[k] += (double)g[i] * d[i];      \
	} while (0)
		if (j->mode == PASS_FIRST)
			LANES(FIRST);
		else if (u)
			LANES(NEG_DOT);
		else
			LANES(NEG);
#undef NEG
#undef NEG_DOT
#undef FIRST
		break;
	case PASS_AXPY:
#define AXPY(i, k) (d[i] += c * v[i])
#define AXPY_DOT(i, k)                             \
	do {                                       \
		d[i] += c * v[i];                  \
		a[k] += (double)u[i] * d[i];       \
	} while (0)
		if (u)
			LANES(AXPY_DOT);
		else
			LANES(AXPY);
#undef AXPY
#undef AXPY_DOT
		break;
	case PASS_SCALE:
#define SCALE(i, k) (d[i] *= c)
#define SCALE_DOT(i, k)                            \
	do {                                       \
		d[i] *= c;                         \
		a[k] += (double)u[i] * d[i];       \
	} while (0)
		if (u)
			LANES(SCALE_DOT);
		else
			LANES(SCALE);
#undef SCALE
#undef SCALE_DOT
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
	}
	if (j->mode == PASS_MOVE || j->mode == PASS_GMAX) {
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
#undef LANES

/* Run one pass; returns the first partial result combined in block order (the second
 * in *second): sums, or for MOVE and GMAX the maximum. */
static double
pass_x(ts_optim *o, enum pass_mode mode, float c, const float *v, const float *u, float *s,
       float *y, float *x, double *second)
{
	struct pass_job j = { o, mode, c, v, u, s, y, x };
	int nb = (int)((o->n + BLOCK - 1) / BLOCK);
	double a = 0.0, a2 = 0.0;

	ts_par_for(nb, pass_item, &j);
	for (int b = 0; b < nb; b++) {
		if (mode == PASS_MOVE || mode == PASS_GMAX) {
			a = o->part[2 * b] > a ? o->part[2 * b] : a;
		} else {
			a += o->part[2 * b];
			a2 += o->part[2 * b + 1];
		}
	}
	if (second)
		*second = a2;
	return a;
}

static double
pass(ts_optim *o, enum pass_mode mode, float c, const float *v, const float *u, float *s,
     float *y, double *second)
{
	return pass_x(o, mode, c, v, u, s, y, NULL, second);
}

/* Add the pair (s, y) = (t * d, g - gprev) to the history when y.s > 1e-10, and
 * turn d into the new direction -H g by the two-loop recursion; returns g.d (the
 * last pass takes it). */
static double
lbfgs_direction(ts_optim *o)
{
	size_t n = o->n;
	int hist = o->p.history, m;
	double ys, yy, acc;
#define S(k) (o->s + (size_t)o->order[k] * n)
#define Y(k) (o->y + (size_t)o->order[k] * n)

	ys = pass(o, PASS_PAIR, 0.0f, NULL, NULL, o->s + (size_t)o->spare * n,
	          o->y + (size_t)o->spare * n, &yy);
	if (ys > 1e-10) {
		int full = o->count == hist, freed = full ? o->order[0] : -1;

		if (full) {
			memmove(o->order, o->order + 1, (size_t)(hist - 1) * sizeof *o->order);
			o->count--;
		}
		o->ro[o->spare] = 1.0 / ys;
		o->order[o->count++] = o->spare;
		/* until the ring is first full, slots are taken in order 0, 1, ... */
		o->spare = full ? freed : o->count;
		o->h_diag = ys / yy;
	}
	m = o->count;

	/* q = -g; newest to oldest: al_k = ro_k s_k.q, q -= al_k y_k (each pass also
	 * takes the dot product of the next pair) */
	acc = pass(o, PASS_NEG, 0.0f, NULL, m ? S(m - 1) : NULL, NULL, NULL, NULL);
	for (int k = m - 1; k >= 0; k--) {
		double a = acc * o->ro[o->order[k]];

		o->al[o->order[k]] = a;
		acc = pass(o, PASS_AXPY, -(float)a, Y(k), k > 0 ? S(k - 1) : NULL, NULL, NULL,
		           NULL);
	}
	/* r = H_diag q; oldest to newest: be_k = ro_k y_k.r, r += (al_k - be_k) s_k */
	acc = pass(o, PASS_SCALE, (float)o->h_diag, NULL, m ? Y(0) : o->g, NULL, NULL, NULL);
	for (int k = 0; k < m; k++) {
		double be = acc * o->ro[o->order[k]];

		acc = pass(o, PASS_AXPY, (float)(o->al[o->order[k]] - be), S(k),
		           k + 1 < m ? Y(k + 1) : o->g, NULL, NULL, NULL);
	}
	return acc;
#undef S
#undef Y
}

static int
lbfgs_step(ts_optim *o, float *x, ts_objective_fn fn, void *ctx)
{
	double gtd, f_prev, dmax;
	float *t;

	if (!o->started) {
		if (evaluate(o, x, fn, ctx, o->g, &o->f))
			return -1;
		o->started = 1;
		if (o->p.tol_grad > 0.0 && pass(o, PASS_GMAX, 0.0f, NULL, NULL, NULL, NULL, NULL) <=
		                                   o->p.tol_grad) {
			o->done = 1;
			return 1;
		}
	}

	if (o->iter == 0) {
		double g1 = pass(o, PASS_FIRST, 0.0f, NULL, NULL, NULL, NULL, &gtd);

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

	dmax = pass_x(o, PASS_MOVE, 0.0f, NULL, NULL, NULL, NULL, x, NULL);
	o->iter++;
	/* the gradient here becomes the previous one: swap the buffers, no copy */
	t = o->gprev;
	o->gprev = o->g;
	o->g = t;
	if (evaluate(o, x, fn, ctx, o->g, &o->f))
		return -1;

	if (o->p.tol_grad > 0.0 &&
	    pass(o, PASS_GMAX, 0.0f, NULL, NULL, NULL, NULL, NULL) <= o->p.tol_grad)
		o->done = 1;
	if (o->p.tol_change > 0.0 &&
	    (dmax * o->t <= o->p.tol_change || fabs(o->f - f_prev) < o->p.tol_change))
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
	if (p->tol_grad > 0.0 && abs_max(o->g, n) <= p->tol_grad) {
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
