/* coupled_internal: the state of a coupled level, shared by coupled.c (the objective)
 * and coupled_halo.c (the blocks, and the pixels and gradients that cross between
 * them and between processes).  Internal to the library. */
#ifndef TESSERA_COUPLED_INTERNAL_H
#define TESSERA_COUPLED_INTERNAL_H

#include "tessera/coupled.h"

/* Per-block scalars in the slots: content sums per content layer, then TV (x, y). */
#define NSCAL(c) ((c)->p.content_layers.n + 4) /* content layers, TV x, y, chroma TV x, y */

typedef struct transfer {
	int b, o;           /* evaluated block, owning block */
	int x, y, w, h;     /* the rectangle, level pixels */
	size_t off;         /* offset in the send or receive buffer (cross-process), or 0 */
} transfer;

struct ts_coupled {
	const ts_vgg *net;
	ts_objective_params p;
	const ts_style_targets *t;
	const ts_blocks *bl;
	ts_comm comm;
	int b0, b1, nloc;            /* this process's blocks */
	int last;
	unsigned char tapped[TS_VGG_NLAYERS];
	ts_vgg_run *run;
	int run_block;               /* the block whose activations the run holds, or -1 */

	size_t nvars;
	size_t *var_off;             /* [nloc] offset of a block's owned pixels in x */
	size_t *ext_off;             /* [nloc] offset of its evaluated pixels in ext */
	float *ext;                  /* evaluated pixels of every local block */
	float *egrad;                /* their image gradients (same layout) */

	float *cfeat;                /* content targets: per local block, per content
	                              * layer, [c, owned cells] */
	size_t *cfeat_off;           /* [nloc * ncontent] */

	/* style: per style layer */
	size_t gofs[TS_VGG_NLAYERS]; /* offset of its [c, c] in the per-block arrays */
	size_t gfloats;              /* floats of one block's partial Grams (all layers) */
	float *gpart;                /* [nloc * gfloats] partial Grams of the local blocks */
	int64_t *gacc;               /* [gfloats] their fixed-point sum */
	float *gS;                   /* [gfloats] sym dL/dG of the global Grams */
	double lstyle[TS_VGG_NLAYERS];
	float *pack, *prod;          /* [cmax * cells max] owned features packed, S * them */
	float *gws;                  /* ts_gram workspace */
	size_t gws_floats;

	double *slots;               /* [bl->n * NSCAL] per-block scalars */
	double *rslots;              /* [bl->n * rk] the optimizer's sums per block */
	int rk;
	double part_max[TS_VGG_NLAYERS];

	transfer *tr;                /* [ntr] */
	int ntr;
	float *sbuf, *rbuf;          /* cross-process halo send / receive */
	size_t *scount, *rcount;     /* [nranks] floats */
	size_t sent;                 /* floats sent in the last evaluation */
};

/* The owned pixels of local block b within x, as a picture [3, h, w]. */
static inline float *
owned(const ts_coupled *c, const float *x, int b)
{
	return (float *)x + c->var_off[b - c->b0];
}

static inline float *
extp(const ts_coupled *c, float *buf, int b)
{
	return buf + c->ext_off[b - c->b0];
}

/* The rank that holds block b. */
int ts_coupled_owner(const ts_coupled *c, int b);
/* The transfers of this process and their buffers.  0, or -1 (no memory). */
int ts_coupled_plan_transfers(ts_coupled *c);
/* 1. every local block's evaluated pixels, its halo from the owners (collective). */
void ts_coupled_fill_halos(ts_coupled *c, const float *x);
/* 3b. the gradient of every owned pixel: every block's contribution, in block order
 * (collective). */
void ts_coupled_gather_grads(ts_coupled *c, float *grad);
/* v [n] summed over the processes, exactly (one writer per entry; collective). */
void ts_coupled_sum_slots(ts_coupled *c, double *v, size_t n);

#endif
