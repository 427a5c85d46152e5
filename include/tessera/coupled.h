/* coupled: a level optimized as ONE picture, cut into blocks (--gram global).
 *
 * The level is cut into blocks that own disjoint rectangles (corners on the grid of
 * the deepest pooling in use, 16 px up to relu5_1).  A block is evaluated on its
 * rectangle plus a halo of real neighbouring pixels (clipped at the level's border,
 * where the network pads with zeros as it does for the whole picture), so its
 * features at the positions it owns are the whole picture's.  One evaluation:
 *
 *   1. the halos are filled from the blocks' owners (comm->exchange);
 *   2. every block's forward pass gives its partial Gram matrices over the positions
 *      it owns, its content and TV sums; the partial Grams are summed exactly (fixed
 *      point, 64-bit integers: the sum does not depend on the order), the scalars
 *      per block in block order, so the value is the same bits for any number of
 *      processes;
 *   3. every block's backward pass injects the gradient of the losses at its own
 *      positions only, against the GLOBAL Grams; a block's image gradient spills
 *      into its halo, and those parts go back to the pixels' owners, who add the
 *      contributions of every block in block order.
 *
 * The result is the objective of the whole level (objective.h's terms over the whole
 * picture), its gradient exact to float rounding.  The blocks a process holds share
 * one network run (resized per block); the last block of the forward phase is the
 * first of the backward phase, so a process with one block runs no forward twice.
 *
 * Without MPI (comm NULL) one process holds every block: tests compare it with the
 * single-piece objective.  sched.c fills the hooks with MPI. */
#ifndef TESSERA_COUPLED_H
#define TESSERA_COUPLED_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/objective.h"
#include "tessera/optim.h"
#include "tessera/resample.h"

/* One block: the rectangle it owns and the one it is evaluated on, in level pixels. */
typedef struct ts_block {
	int x, y, w, h;     /* owned */
	int ex, ey, ew, eh; /* evaluated: owned + halo, clipped to the level */
} ts_block;

typedef struct ts_blocks {
	int w, h;           /* level size */
	int side, halo;     /* owned side (all but the last of a row/column), halo, px */
	int ncols, nrows, n;
	ts_block *b;        /* [n], row-major; owned */
} ts_blocks;

/* The halo these objective settings need: the one-sided reach of the deepest layer
 * in use (the sum over its convolutions of their stride, 70 px for relu5_1) rounded
 * up to the pooling grid (80).  The grid itself (16 up to relu5_1) in *grid. */
int ts_coupled_halo(const ts_objective_params *p, int *grid);

/* Cut a w x h level into blocks of about side x side (rounded to the grid, the same
 * number of blocks as side gives, as equal as the grid allows).  Caller owns.  NULL
 * with a message. */
ts_blocks *ts_blocks_create(int w, int h, int side, int halo, int grid);
void ts_blocks_destroy(ts_blocks *bl);
/* Blocks [ts_blocks_first(r), ts_blocks_first(r + 1)) belong to rank r of nranks. */
int ts_blocks_first(const ts_blocks *bl, int rank, int nranks);

/* What a coupled level needs of the processes (sched.c fills it with MPI).  Every
 * process calls each hook in the same order.  NULL hooks (or nranks 1): one process. */
typedef struct ts_comm {
	void *user;
	int rank, nranks;
	/* v [n] in place: the element-wise sum / maximum over the processes */
	void (*sum_i64)(void *user, int64_t *v, size_t n);
	void (*sum_f64)(void *user, double *v, size_t n);
	void (*max_f64)(void *user, double *v, size_t n);
	/* send scount[r] floats to every rank r (send packed in rank order) and receive
	 * rcount[r] from each (recv packed in rank order); counts to oneself are 0 */
	void (*exchange)(void *user, const float *send, const size_t *scount, float *recv,
	                 const size_t *rcount);
} ts_comm;

typedef struct ts_coupled ts_coupled;

/* The objective of the level bl for the blocks this process holds (comm->rank's share;
 * all of them without comm).  content reads the level's content image (at the level
 * size) by rectangles; it is read here, once, for the content targets.  Borrows net,
 * targets, bl and comm's user (they must outlive it).  Caller owns.  NULL with a
 * message. */
ts_coupled *ts_coupled_create(const ts_vgg *net, const ts_objective_params *p,
                              const ts_style_targets *targets, const ts_blocks *bl,
                              const ts_comm *comm, ts_region_fn content, void *content_user);
void ts_coupled_destroy(ts_coupled *c);

/* This process's blocks [*b0, *b1). */
void ts_coupled_blocks(const ts_coupled *c, int *b0, int *b1);
/* Its variables: the owned pixels of its blocks, [3, h, w] each, in block order;
 * offset of block b's (b0 <= b < b1) in *off, count in the return value. */
size_t ts_coupled_vars(const ts_coupled *c);
size_t ts_coupled_block_offset(const ts_coupled *c, int b);

/* The level objective at x (this process's variables); grad (may be NULL: value
 * only) receives its gradient there.  Every process calls it together and gets the
 * same value and parts.  Allocates nothing. */
double ts_coupled_eval(ts_coupled *c, const float *x, float *grad, ts_loss_parts *parts);

/* The optimizer's reductions for this process's blocks as segments (one per block),
 * for sums of up to kmax values at once (ts_optim_sum_width).  0 or -1 (no memory). */
int ts_coupled_reduce(ts_coupled *c, int kmax, ts_optim_reduce *red);

/* Bytes ts_coupled_create allocates for a process holding blocks [b0, b1) (for
 * --plan: the run, the halos and gradients, content features, partial Grams). */
size_t ts_coupled_bytes(const ts_vgg *net, const ts_objective_params *p,
                        const ts_blocks *bl, int b0, int b1);

/* Floats sent by this process in the last evaluation (halos and gradients). */
size_t ts_coupled_sent_floats(const ts_coupled *c);

#endif
