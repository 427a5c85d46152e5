/* optim_internal: the optimizer's state and the table of functions by which optim.c
 * (the common part: parameters, buffers, blocks and segments, reductions, the step's
 * bookkeeping, checkpoints) drives one kind of optimizer (optim_lbfgs.c,
 * optim_adam.c).  Internal to the library.
 *
 * A kind is one optim_ops, chosen once in ts_optim_create_split (o->ops) from the
 * parameters' kind; nothing outside the kind's file looks at its fields.  A new
 * optimizer is a new file defining its optim_ops, plus its fields in struct ts_optim,
 * its ts_optim_kind (optim.h) and its parameter checks and choice in optim.c
 * (check_params, ops_of).
 *
 * Invariants: every buffer is allocated at creation (the common ones, then the kind's
 * by ops->alloc); a step allocates nothing.  The variables are cut into blocks of at
 * most BLOCK that never straddle a segment, fixed by the segments' lengths alone;
 * partial sums are taken per block and added in block order, then per segment by
 * ts_optim_reduce_sum, so the bits depend neither on the thread count nor on how the
 * segments are spread over processes. */
#ifndef TESSERA_OPTIM_INTERNAL_H
#define TESSERA_OPTIM_INTERNAL_H

#include "tessera/optim.h"

#include <stddef.h>
#include <stdint.h>

/* Variables per block of the parallel passes. */
#define BLOCK ((size_t)16384)
/* Variables per run of float sums in the L-BFGS history pass (see hist_item). */
#define RUN ((size_t)256)
/* Partial sums per block: the L-BFGS history pass takes 5 per kept pair and 4 more
 * (Adam, history 0: 4). */
#define PART(hist) (5 * (size_t)(hist) + 4)

/* What differs between the kinds of optimizer.  Every entry is set; "the kind's
 * buffers" are its fields of struct ts_optim, NULL until alloc. */
typedef struct optim_ops {
	/* Partial sums per block of the kind's passes: the width of o->part, o->sum and
	 * o->segpart, and what ts_optim_sum_width reports. */
	size_t (*width)(const ts_optim_params *p);
	/* Bytes of the kind's buffers for n variables (ts_optim_bytes adds g and the
	 * partial sums). */
	size_t (*bytes)(const ts_optim_params *p, size_t n);
	/* Before anything is allocated (the parameters checked): 0, or -1 with a message
	 * when n variables do not fit the kind's buffers. */
	int (*check)(const ts_optim_params *p, size_t n);
	/* Allocate the kind's buffers and set its state as ts_optim_reset does; o->p,
	 * n, nb, the blocks and segments are set and g, part allocated (NULL when out of
	 * memory: alloc reports it, with the kind's sizes).  0, or -1 with a message; the
	 * caller then destroys o. */
	int (*alloc)(ts_optim *o);
	/* Free the kind's buffers (any of them may be NULL). */
	void (*free)(ts_optim *o);
	/* The kind's part of ts_optim_reset. */
	void (*reset)(ts_optim *o);
	/* One iteration (o neither done nor failed): as ts_optim_step without f_out. */
	int (*step)(ts_optim *o, float *x, ts_objective_fn fn, void *ctx);
	/* After the last step (ts_optim_settle): put back a move the kind would still
	 * have taken back; 1 when x moved, else 0. */
	int (*settle)(ts_optim *o, float *x);
	/* The kind's checkpoint scalars, after the common ones: written into out (NULL:
	 * only counted), their number returned; set_scalars takes them back from in (as
	 * many as scalars counts): 0, or -1 with a message when they do not fit. */
	size_t (*scalars)(const ts_optim *o, double *out);
	int (*set_scalars)(ts_optim *o, const double *in);
	/* The kind's per-variable arrays, after g, in a fixed order: each as (base,
	 * element size) into base, esz; returns their number (room for 2 * (TS_OPTIM_MAX_HISTORY
	 * + 1) + 3: an L-BFGS history up to TS_OPTIM_MAX_HISTORY (checked at creation) takes
	 * 2 + 2 * history).
	 * Depends on the scalars (the pairs in use). */
	int (*seg_arrays)(const ts_optim *o, void **base, size_t *esz);
} optim_ops;

extern const optim_ops ts_optim_lbfgs_ops, ts_optim_adam_ops;

struct ts_optim {
	ts_optim_params p;
	const optim_ops *ops; /* the kind's functions, from p.kind */
	size_t n;    /* variables */
	long evals;  /* calls of fn so far */
	long iter;   /* iterations done (moves) */
	int started; /* L-BFGS: f, g hold the objective at the current x */
	int done;    /* converged: later steps return 1 */
	int failed;  /* fn failed: later steps return -1 */
	double f;    /* objective at the current x */

	float *g; /* [n] gradient at the current x */

	/* L-BFGS (optim_lbfgs.c) */
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
	int retreat;    /* backtrack: the last move raised f; the next step shortens it */
	int nretreat;   /* moves of the current step shortened so far */
	double f_acc;   /* backtrack: f at the point the last move started from */
	double *ro;     /* [history + 1] 1 / (y.s), by slot */
	double *al;     /* [history + 1] two-loop coefficients, by slot */
	int *order;     /* [history] slot of pair k, 0 = oldest */
	int spare;      /* the slot not in use */
	int count;      /* pairs held */
	/* dot products of the history, by slot (see lbfgs_direction) */
	double *sy;     /* [(history + 1)^2] sy[a * (history + 1) + b] = s_a . y_b */
	double *yy;     /* [(history + 1)^2] y_a . y_b */
	double *sg, *yg; /* [history + 1] s_a . g, y_a . g at the current x */
	double *coef;   /* [2 (history + 1)] by slot: the direction's weights of y, s */

	/* Adam (optim_adam.c) */
	float *m; /* [n] first moment */
	float *v; /* [n] second moment */

	/* the blocks of the passes: none straddles a segment (ts_optim_create_split) */
	int nb, nseg;
	size_t *blo, *bhi; /* [nb] variables [blo, bhi) of block b */
	int *bseg;         /* [nb] its segment */
	size_t *segoff, *seglen; /* [nseg] where each segment's variables are */
	double *part;      /* [nb + 1, width] the passes' partial sums by block (width:
	                    * ops->width) */
	double *segpart;   /* [nseg + 1, width] partial sums by segment */
	double *sum;       /* [ops->width] the passes' sums over the whole problem */
	ts_optim_reduce red; /* sum and max over the whole problem (sum NULL: this process) */
};

/* Evaluate fn at x into *f and g (counted in o->evals and outside ts_optim_seconds);
 * -1 (message set, o->failed) when it returns NaN or inf. */
int ts_optim_evaluate(ts_optim *o, const float *x, ts_objective_fn fn, void *ctx,
                      float *g, double *f);
/* The same at a point a move reached: with may_rise, +inf (the objective not finite
 * there) is a value like any other, a rise for the caller to take back (0); NaN (fn
 * failed) still fails. */
int ts_optim_evaluate_moved(ts_optim *o, const float *x, ts_objective_fn fn, void *ctx,
                            float *g, double *f, int may_rise);

/* out [k] = the sums over the whole problem of the blocks' partial sums part [nb *
 * stride] (k of them at part + b * stride, k <= ops->width). */
void ts_optim_reduce_sum(ts_optim *o, const double *part, size_t stride, int k,
                         double *out);

/* The maximum of v over the processes of the problem. */
double ts_optim_reduce_max(ts_optim *o, double v);

/* Checkpoint scalars: out[*k] = v when out is given (NULL: only count), then *k++. */
static inline void
ts_optim_put(double *out, size_t *k, double v)
{
	if (out)
		out[*k] = v;
	(*k)++;
}

#endif
