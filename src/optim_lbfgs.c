/* optim_lbfgs: L-BFGS, one kind of optimizer behind optim_ops (optim_internal.h).
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
 *
 * Invariants: the kind's buffers are allocated by lbfgs_alloc; a step allocates
 * nothing.  Dot products and norms are accumulated in double (the history pass: in
 * float over runs of RUN = 256 variables, the runs added in double).  The (s, y)
 * history has history + 1 slots: order[k] is the slot of pair k (0 = oldest) and
 * `spare` the free one, which each new pair is written into before y.s decides
 * whether it is kept (so a rejected pair never costs a kept one, nor an extra pass).
 *
 * Reading the history is the optimizer's whole cost, so a step reads it twice: one
 * pass takes every dot product the two-loop recursion needs (the pairs' products with
 * each other are kept, see lbfgs_direction), the recursion then runs on those
 * scalars, and a second pass forms the direction from the pairs.  The plain two-loop
 * form reads it four times (two pairs per pass, one pass per pair and loop).
 * Measured with build/lbfgs-bench on 786432 variables (a 512 x 512 tile), 2 threads:
 * history 100, 45.5 ms a step against 87.8; history 20, 9.7 ms against 17.4.  The
 * passes run on the ts_par threads over the blocks of optim.c (BLOCK variables, fixed
 * by the segments): the partial dot products are summed in block order, so the bits
 * do not depend on the thread count.
 *
 * With history_half the pairs are kept in 16 bits (half.h), each vector divided by a
 * power of two from its largest entry; the passes read them back run by run (RUN
 * variables into a buffer on the stack), and the step that adds a pair takes its
 * products from the same rounded values.  Half the bytes a step reads, not torch's
 * iterates bit for bit.
 *
 * Checkpoint scalars, after the common ones: t, h_diag, dmax, count, spare, order
 * [history], then by slot ro, al, sg, yg, coef (2), scale (2; 0 without
 * history_half), then by slot pair sy, yy.  Per-variable arrays, after g: d, gprev,
 * then the s and y of each pair in use, oldest first. */
#include "optim_internal.h"

#include "tessera/error.h"
#include "tessera/par.h"

#include "half.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
		return ts_optim_reduce_max(o, a);
	}
	ts_optim_reduce_sum(o, o->part, 2, 2, s);
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
	ts_optim_reduce_sum(o, o->part, pf, 5 * m + 4, sum);
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
	ts_optim_reduce_sum(o, o->part, pf, 1, &gtd);
	return gtd;
}

/* x += step * d (a move along the last direction, o->t kept) */
static void
move_by(ts_optim *o, float *x, double step)
{
	double t = o->t;

	o->t = step;
	pass(o, PASS_MOVE, x, NULL);
	o->t = t;
}

static int
lbfgs_settle(ts_optim *o, float *x)
{
	float *t;

	if (!o->retreat)
		return 0;
	move_by(o, x, -o->t);
	o->f = o->f_acc;
	t = o->gprev;
	o->gprev = o->g;
	o->g = t;
	o->retreat = 0;
	return 1;
}

/* Whether the point a move reaches may be one to take back (--lbfgs-backtrack, a
 * shortening left): then a loss that is not finite there (+inf from fn) is a rise
 * like any other, taken back, rather than the end of the run. */
enum { MAX_RETREATS = 8 }; /* shortenings of one move */

static int
may_rise(const ts_optim *o)
{
	return o->p.backtrack && o->nretreat < MAX_RETREATS;
}

/* After a move from a point where f was f_prev: a rise to be taken back (backtrack),
 * or the stop tests.  Always 0. */
static int
lbfgs_after_move(ts_optim *o, double f_prev)
{
	if (!(o->f <= f_prev) && may_rise(o)) {
		o->retreat = 1;
		o->nretreat++;
		o->f_acc = f_prev;
		return 0;
	}
	if (o->p.tol_grad > 0.0 &&
	    pass(o, PASS_GMAX, NULL, NULL) <= o->p.tol_grad)
		o->done = 1;
	if (o->p.tol_change > 0.0 &&
	    (o->dmax * o->t <= o->p.tol_change || fabs(o->f - f_prev) < o->p.tol_change))
		o->done = 1;
	return 0;
}

static int
lbfgs_step(ts_optim *o, float *x, ts_objective_fn fn, void *ctx)
{
	double gtd, f_prev;
	float *t;

	if (!o->started) {
		if (ts_optim_evaluate(o, x, fn, ctx, o->g, &o->f))
			return -1;
		o->started = 1;
		if (o->p.tol_grad > 0.0 && pass(o, PASS_GMAX, NULL, NULL) <=
		                                   o->p.tol_grad) {
			o->done = 1;
			return 1;
		}
	}

	if (o->retreat) {
		/* the last move raised f: the same direction from the same point, a quarter
		 * of the length (x += (t/4 - t) d); g of the rejected point is dropped and
		 * gprev still holds the start's, so the next pair is (t/4 d, g' - gprev) */
		double t_new = o->t * 0.25;

		move_by(o, x, t_new - o->t);
		o->t = t_new;
		o->retreat = 0;
		if (ts_optim_evaluate_moved(o, x, fn, ctx, o->g, &o->f, may_rise(o)))
			return -1;
		return lbfgs_after_move(o, o->f_acc);
	}
	o->nretreat = 0;
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
	if (ts_optim_evaluate_moved(o, x, fn, ctx, o->g, &o->f, may_rise(o)))
		return -1;
	return lbfgs_after_move(o, f_prev);
}

static size_t
lbfgs_width(const ts_optim_params *p)
{
	return PART(p->history);
}

static size_t
lbfgs_bytes(const ts_optim_params *p, size_t n)
{
	size_t hist = (size_t)p->history, b;

	b = 2 * n * sizeof(float); /* d, gprev */
	if (p->history_half)
		b += 2 * n * sizeof(float) + 2 * (hist + 1) * n * sizeof(uint16_t);
	else
		b += 2 * (hist + 1) * n * sizeof(float);
	/* the history's scalars */
	return b + 6 * (hist + 1) * (hist + 1) * sizeof(double);
}

static int
lbfgs_check(const ts_optim_params *p, size_t n)
{
	size_t hist = (size_t)p->history;

	if (hist && n > SIZE_MAX / sizeof(float) / (hist + 1)) {
		ts_error("optim", "history of %zu x %zu floats is too large", hist, n);
		return -1;
	}
	return 0;
}

static void
lbfgs_reset(ts_optim *o)
{
	size_t hist = (size_t)o->p.history;

	o->t = 0.0;
	o->h_diag = 1.0;
	o->retreat = o->nretreat = 0;
	o->f_acc = 0.0;
	o->count = 0;
	o->spare = 0;
	/* the vectors are written before they are read */
	memset(o->ro, 0, (hist + 1) * sizeof *o->ro);
	memset(o->al, 0, (hist + 1) * sizeof *o->al);
	memset(o->order, 0, hist * sizeof *o->order);
}

static int
lbfgs_alloc(ts_optim *o)
{
	size_t hist = (size_t)o->p.history, n = o->n;

	o->h_diag = 1.0;
	o->d = calloc(n, sizeof *o->d);
	o->gprev = calloc(n, sizeof *o->gprev);
	if (o->p.history_half) {
		o->s = calloc(n, sizeof *o->s);
		o->y = calloc(n, sizeof *o->y);
		o->sh = calloc((hist + 1) * n, sizeof *o->sh);
		o->yh = calloc((hist + 1) * n, sizeof *o->yh);
		o->scale = calloc(2 * (hist + 1), sizeof *o->scale);
		if (!o->sh || !o->yh || !o->scale) {
			ts_error("optim", "out of memory for L-BFGS (%zu variables, "
			         "history %zu)", n, hist);
			return -1;
		}
	} else {
		o->s = calloc((hist + 1) * n, sizeof *o->s);
		o->y = calloc((hist + 1) * n, sizeof *o->y);
	}
	o->ro = calloc(hist + 1, sizeof *o->ro);
	o->al = calloc(hist + 1, sizeof *o->al);
	o->order = calloc(hist, sizeof *o->order);
	o->sy = calloc((hist + 1) * (hist + 1), sizeof *o->sy);
	o->yy = calloc((hist + 1) * (hist + 1), sizeof *o->yy);
	o->sg = calloc(hist + 1, sizeof *o->sg);
	o->yg = calloc(hist + 1, sizeof *o->yg);
	o->coef = calloc(2 * (hist + 1), sizeof *o->coef);
	/* g and part are the common part's, reported here with the history's size */
	if (!o->g || !o->d || !o->gprev || !o->s || !o->y || !o->ro || !o->al ||
	    !o->order || !o->part || !o->sy || !o->yy || !o->sg || !o->yg || !o->coef) {
		ts_error("optim", "out of memory for L-BFGS (%zu variables, history %zu)",
		         n, hist);
		return -1;
	}
	return 0;
}

static void
lbfgs_free(ts_optim *o)
{
	free(o->d);
	free(o->gprev);
	free(o->s);
	free(o->y);
	free(o->sh);
	free(o->yh);
	free(o->scale);
	free(o->ro);
	free(o->al);
	free(o->sy);
	free(o->yy);
	free(o->sg);
	free(o->yg);
	free(o->coef);
	free(o->order);
}

static size_t
lbfgs_scalars(const ts_optim *o, double *out)
{
	size_t k = 0, H = (size_t)o->p.history + 1;

#define PUT(v) ts_optim_put(out, &k, (double)(v))
	PUT(o->t);
	PUT(o->h_diag);
	PUT(o->dmax);
	PUT(o->count);
	PUT(o->spare);
	if (o->p.backtrack) { /* only with it: checkpoints without it keep their layout */
		PUT(o->retreat);
		PUT(o->nretreat);
		PUT(o->f_acc);
	}
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
#undef PUT
	return k;
}

static int
lbfgs_set_scalars(ts_optim *o, const double *in)
{
	size_t k = 0, H = (size_t)o->p.history + 1;

	o->t = in[k++];
	o->h_diag = in[k++];
	o->dmax = in[k++];
	o->count = (int)in[k++];
	o->spare = (int)in[k++];
	if (o->p.backtrack) {
		o->retreat = (int)in[k++] != 0;
		o->nretreat = (int)in[k++];
		o->f_acc = in[k++];
		if (o->nretreat < 0 || o->nretreat > MAX_RETREATS) {
			ts_error("optim", "a checkpoint with %d shortened moves", o->nretreat);
			return -1;
		}
	}
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
	return 0;
}

static int
lbfgs_seg_arrays(const ts_optim *o, void **base, size_t *esz)
{
	int k = 0;

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

const optim_ops ts_optim_lbfgs_ops = {
	.width = lbfgs_width,
	.bytes = lbfgs_bytes,
	.check = lbfgs_check,
	.alloc = lbfgs_alloc,
	.free = lbfgs_free,
	.reset = lbfgs_reset,
	.step = lbfgs_step,
	.settle = lbfgs_settle,
	.scalars = lbfgs_scalars,
	.set_scalars = lbfgs_set_scalars,
	.seg_arrays = lbfgs_seg_arrays,
};
