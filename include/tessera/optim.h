/* optim: L-BFGS (the algorithm of torch.optim.LBFGS without line search, as Torch7
 * optim.lbfgs) and Adam over a float vector.  All state is allocated at creation;
 * a step allocates nothing. */
#ifndef TESSERA_OPTIM_H
#define TESSERA_OPTIM_H

#include <stddef.h>

/* Evaluate the objective at x [n]: return f(x) and write its gradient into grad [n].
 * Return NaN to signal an error (the step then fails), +inf where the objective is
 * not finite (L-BFGS with backtrack takes the move back; otherwise the step fails). */
typedef double (*ts_objective_fn)(void *ctx, const float *x, float *grad);

/* The longest L-BFGS history (pairs kept). */
#define TS_OPTIM_MAX_HISTORY 1000

typedef enum ts_optim_kind { TS_OPTIM_LBFGS = 0, TS_OPTIM_ADAM = 1 } ts_optim_kind;

typedef struct ts_optim_params {
	ts_optim_kind kind;
	int history;       /* L-BFGS: correction pairs kept (torch default 100) */
	int history_half;  /* L-BFGS: keep them in 16-bit floats (0: 32-bit, as torch) */
	double lr;         /* L-BFGS: step scale (1); Adam: learning rate */
	double beta1;      /* Adam: 0.9 */
	double beta2;      /* Adam: 0.999 */
	double eps;        /* Adam: 1e-8 */
	double tol_grad;   /* L-BFGS: stop when max |g| <= tol_grad (1e-7; 0: never) */
	double tol_change; /* L-BFGS: stop when |d * t| or |f change| < tol_change (1e-9) */
	int backtrack;     /* L-BFGS: a step that raises f is taken back to a quarter of
	                    * its length, up to 8 times in a row (a non-finite f still
	                    * fails the step; 0, the default: torch's fixed steps) */
} ts_optim_params;

/* Defaults for kind (values in the comments above; Adam lr 0.02 for images in [0,1]). */
void ts_optim_defaults(ts_optim_params *p, ts_optim_kind kind);

typedef struct ts_optim ts_optim;

/* Optimizer for n variables; caller owns.  NULL with a message on bad parameters or
 * no memory. */
ts_optim *ts_optim_create(const ts_optim_params *p, size_t n);
void ts_optim_destroy(ts_optim *o);

/* A problem spread over processes (a coupled level, --gram global): this process's
 * variables are nseg segments (seglen[i] floats each, concatenated in x) of a vector
 * whose other segments other processes hold.  Every sum over the variables is taken
 * per segment and the segments' partial sums are combined by red->sum; maxima by
 * red->max.  Every process steps with the same global scalars, so they move as one
 * optimizer.  red NULL: one process holds every segment (sums in segment order).
 * The optimizer copies *red; its user pointer is borrowed. */
typedef struct ts_optim_reduce {
	void *user;
	/* parts [nseg][k]: this process's segments' sums (in its segment order); out
	 * [k]: the sums over every segment of the problem, combined in an order fixed
	 * by the problem (never by the processes), so the bits do not depend on how the
	 * segments are spread */
	void (*sum)(void *user, const double *parts, int k, double *out);
	/* v [k] in place: the maximum over the processes */
	void (*max)(void *user, double *v, int k);
} ts_optim_reduce;

/* Bytes ts_optim_create allocates for n variables (for --plan). */
size_t ts_optim_bytes(const ts_optim_params *p, size_t n);

/* The most sums a reduction of these settings takes at once. */
int ts_optim_sum_width(const ts_optim_params *p);

ts_optim *ts_optim_create_split(const ts_optim_params *p, int nseg, const size_t *seglen,
                                const ts_optim_reduce *red);
/* Back to the state ts_optim_create left (no history, no moments), keeping the
 * buffers: the next problem of the same size starts exactly as a new optimizer. */
void ts_optim_reset(ts_optim *o);

/* One iteration: updates x in place.  L-BFGS evaluates fn at the start point on its
 * first call and then once per step (at the new x); Adam evaluates once per step at
 * the current x, then moves.  *f_out (may be NULL) receives the last value evaluated.
 * Returns 0, 1 when converged (x unchanged, nothing more to do), -1 when fn failed. */
int ts_optim_step(ts_optim *o, float *x, ts_objective_fn fn, void *ctx, double *f_out);

/* After the last step: when its move raised f and backtrack would have shortened it
 * (ts_optim_params.backtrack), x goes back to where the move started, and the
 * optimizer's f and g to their values there.  1 when x moved back (the caller's
 * record of the objective's parts is then the rejected point's: evaluate again),
 * else 0. */
int ts_optim_settle(ts_optim *o, float *x);

/* Evaluations of fn so far. */
long ts_optim_evals(const ts_optim *o);

/* Checkpoints (of a split problem: every process holds the same scalars, and each
 * segment's share of the per-variable state).  ts_optim_scalars writes the scalars
 * into out (NULL: only counts them) and returns their number; ts_optim_set_scalars
 * takes them back (0, or -1 with a message when they do not fit this optimizer).
 * Then per segment: ts_optim_segment_bytes (depends on the scalars: the history
 * pairs in use) and ts_optim_segment_io, which saves the segment's state into buf
 * (load 0) or restores it (load 1).  Restored, the optimizer continues exactly as
 * the one saved. */
size_t ts_optim_scalars(const ts_optim *o, double *out);
int ts_optim_set_scalars(ts_optim *o, const double *in, size_t n);
size_t ts_optim_segment_bytes(const ts_optim *o, int seg);
void ts_optim_segment_io(ts_optim *o, int seg, void *buf, int load);

/* Wall seconds this process has spent in ts_optim_step outside the objective's
 * evaluations (the optimizer's own vector work): the "optimizer" share of the
 * renderer's time breakdown. */
double ts_optim_seconds(void);

#endif
