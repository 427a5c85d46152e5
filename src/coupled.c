/* coupled: one level as one picture over blocks (see coupled.h).
 *
 * Invariants: everything is allocated in ts_coupled_create; an evaluation allocates
 * nothing.  Every sum that reaches the value or the gradient is taken in an order
 * fixed by the blocks, never by the processes: partial Grams in 64-bit fixed point
 * (exact, so any order), per-block scalars placed in a slot per block and added in
 * block order, image gradients added per pixel in block order.  A block's own work
 * (forward, backward) does not depend on which process runs it, nor on the sizes
 * its run had before, so the bits do not depend on the process count.
 *
 * Transfers: the pairs (b, o) of blocks where b's evaluated rectangle meets o's
 * owned one, in (b, o) order.  The halo fill sends each from o's owner to b's owner;
 * the gradient goes back along the same pairs, into the same buffer offsets. */
#include "tessera/coupled.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/loss.h"

/* Per-block scalars in the slots: content sums per content layer, then TV (x, y). */
#define NSCAL(c) ((c)->p.content_layers.n + 2)

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

static int
channels(const ts_vgg *net, int layer)
{
	int k = ts_vgg_layer_conv(layer);

	return k < net->nconv ? net->out_ch[k] : 0;
}

/* Deepest layer in use and the tap flags (as objective.c). */
static int
taps(const ts_objective_params *p, unsigned char tapped[TS_VGG_NLAYERS])
{
	int last = -1;

	memset(tapped, 0, TS_VGG_NLAYERS);
	for (int k = 0; k < 2; k++) {
		const ts_layer_weights *lw = k ? &p->style_layers : &p->content_layers;

		for (int i = 0; i < lw->n; i++) {
			tapped[lw->layer[i]] = 1;
			last = lw->layer[i] > last ? lw->layer[i] : last;
		}
	}
	return last;
}

int
ts_coupled_halo(const ts_objective_params *p, int *grid)
{
	unsigned char tapped[TS_VGG_NLAYERS];
	int last = taps(p, tapped), reach = 0, g;

	if (last < 0) {
		*grid = 16;
		return 0;
	}
	/* a 3x3 convolution after k poolings reaches 2^k input pixels further on each
	 * side; a 2x2 pooling only groups (a cell's pixels are its own) */
	for (int i = 0; i <= last; i++)
		if (ts_vgg_layer_kind(i) == TS_LAYER_CONV)
			reach += 1 << ts_vgg_layer_pools(i);
	g = 1 << (ts_vgg_layer_pools(last) + (ts_vgg_layer_kind(last) == TS_LAYER_POOL));
	g = g < 16 ? 16 : g;
	*grid = g;
	return (reach + g - 1) / g * g;
}

/* Block starts along an axis of n pixels: about side each, multiples of grid. */
static int
axis_cut(int n, int side, int grid, int *step)
{
	int k = (n + side - 1) / side, s;

	k = k < 1 ? 1 : k;
	s = ((n + k - 1) / k + grid - 1) / grid * grid;
	*step = s;
	return (n + s - 1) / s;
}

ts_blocks *
ts_blocks_create(int w, int h, int side, int halo, int grid)
{
	ts_blocks *bl = NULL;
	int sx, sy;

	if (w < 1 || h < 1 || side < grid || grid < 1 || halo < 0 || halo % grid) {
		ts_error("coupled", "bad block geometry (%dx%d, side %d, halo %d, grid %d)", w, h,
		         side, halo, grid);
		return NULL;
	}
	if (!(bl = calloc(1, sizeof *bl))) {
		ts_error("coupled", "out of memory");
		return NULL;
	}
	bl->w = w;
	bl->h = h;
	bl->halo = halo;
	bl->ncols = axis_cut(w, side, grid, &sx);
	bl->nrows = axis_cut(h, side, grid, &sy);
	bl->side = sx > sy ? sx : sy;
	bl->n = bl->ncols * bl->nrows;
	if (!(bl->b = calloc((size_t)bl->n, sizeof *bl->b))) {
		ts_error("coupled", "out of memory");
		free(bl);
		return NULL;
	}
	for (int r = 0; r < bl->nrows; r++)
		for (int c = 0; c < bl->ncols; c++) {
			ts_block *b = &bl->b[r * bl->ncols + c];

			b->x = c * sx;
			b->y = r * sy;
			b->w = b->x + sx <= w ? sx : w - b->x;
			b->h = b->y + sy <= h ? sy : h - b->y;
			b->ex = b->x - halo > 0 ? b->x - halo : 0;
			b->ey = b->y - halo > 0 ? b->y - halo : 0;
			b->ew = (b->x + b->w + halo < w ? b->x + b->w + halo : w) - b->ex;
			b->eh = (b->y + b->h + halo < h ? b->y + b->h + halo : h) - b->ey;
		}
	return bl;
}

void
ts_blocks_destroy(ts_blocks *bl)
{
	if (!bl)
		return;
	free(bl->b);
	free(bl);
}

int
ts_blocks_first(const ts_blocks *bl, int rank, int nranks)
{
	return (int)((long long)bl->n * rank / nranks);
}

static int
owner(const ts_coupled *c, int b)
{
	int r = (int)((long long)b * c->comm.nranks / c->bl->n);

	/* the inverse of ts_blocks_first, made exact */
	while (r > 0 && ts_blocks_first(c->bl, r, c->comm.nranks) > b)
		r--;
	while (r + 1 < c->comm.nranks && ts_blocks_first(c->bl, r + 1, c->comm.nranks) <= b)
		r++;
	return r;
}

/* Owned cells of block b at a layer of `pools` poolings, in the block's feature map:
 * rows [*r0, *r1), columns [*c0, *c1) (lh, lw: that map's size). */
static void
cells(const ts_block *b, int pools, int lh, int lw, int *r0, int *r1, int *c0, int *c1)
{
	int s = 1 << pools;

	*r0 = (b->y - b->ey) / s;
	*c0 = (b->x - b->ex) / s;
	*r1 = (b->y + b->h - b->ey) / s;
	*c1 = (b->x + b->w - b->ex) / s;
	*r1 = *r1 < lh ? *r1 : lh;
	*c1 = *c1 < lw ? *c1 : lw;
}

/* Cells of the whole level at a layer (the N of its Gram and content means). */
static double
level_cells(const ts_blocks *bl, int pools)
{
	return (double)(bl->h >> pools) * (double)(bl->w >> pools);
}

/* Most owned cells any block has at a layer of `pools` poolings (upper bound). */
static size_t
max_cells(const ts_blocks *bl, int pools)
{
	size_t most = 0;

	for (int i = 0; i < bl->n; i++) {
		size_t k = (size_t)((bl->b[i].h >> pools) + 1) * (size_t)((bl->b[i].w >> pools) + 1);

		most = k > most ? k : most;
	}
	return most;
}

/* Copy the owned cells of f [ch, lh, lw] into out [ch, (r1 - r0) * (c1 - c0)]. */
static void
pack_cells(const float *f, int ch, int lh, int lw, int r0, int r1, int c0, int c1, float *out)
{
	size_t n = (size_t)(r1 - r0) * (c1 - c0);

	for (int k = 0; k < ch; k++)
		for (int y = r0; y < r1; y++)
			memcpy(out + k * n + (size_t)(y - r0) * (c1 - c0),
			       f + ((size_t)k * lh + y) * lw + c0, (size_t)(c1 - c0) * sizeof *out);
}

/* Distinct evaluated sizes of blocks [b0, b1) into hs, ws; their count. */
static int
block_sizes(const ts_blocks *bl, int b0, int b1, int *hs, int *ws)
{
	int n = 0;

	for (int b = b0; b < b1; b++) {
		int i;

		for (i = 0; i < n; i++)
			if (hs[i] == bl->b[b].eh && ws[i] == bl->b[b].ew)
				break;
		if (i == n) {
			hs[n] = bl->b[b].eh;
			ws[n] = bl->b[b].ew;
			n++;
		}
	}
	return n;
}

/* The sizes of everything but the run, in floats (create and the plan agree). */
struct sizes {
	size_t ext, cfeat, gfloats, pack, gws;
};

static void
measure(const ts_vgg *net, const ts_objective_params *p, const ts_blocks *bl, int b0,
        int b1, struct sizes *z)
{
	memset(z, 0, sizeof *z);
	for (int b = b0; b < b1; b++) {
		const ts_block *k = &bl->b[b];

		z->ext += (size_t)3 * k->ew * k->eh;
		for (int i = 0; i < p->content_layers.n; i++) {
			int l = p->content_layers.layer[i], s = ts_vgg_layer_pools(l);

			z->cfeat += (size_t)channels(net, l) * ((k->h >> s) + 1) * ((k->w >> s) + 1);
		}
	}
	for (int i = 0; i < p->style_layers.n; i++) {
		int l = p->style_layers.layer[i], ch = channels(net, l);
		size_t cl = max_cells(bl, ts_vgg_layer_pools(l)), ws;

		z->gfloats += (size_t)ch * ch;
		z->pack = (size_t)ch * cl > z->pack ? (size_t)ch * cl : z->pack;
		ws = ts_gram_ws_floats(ch, (int)cl);
		z->gws = ws > z->gws ? ws : z->gws;
	}
	z->pack = z->pack ? z->pack : 1;
}

size_t
ts_coupled_bytes(const ts_vgg *net, const ts_objective_params *p, const ts_blocks *bl,
                 int b0, int b1)
{
	unsigned char tapped[TS_VGG_NLAYERS];
	int hs[64], ws[64], last = taps(p, tapped), n = 0;
	size_t run = 0, halo = 0;
	struct sizes z;

	if (last < 0 || b1 <= b0)
		return 0;
	/* the run: the largest evaluated size (a few distinct ones at the borders) */
	for (int b = b0; b < b1; b += 64) {
		int e = b + 64 < b1 ? b + 64 : b1;
		size_t k;

		n = block_sizes(bl, b, e, hs, ws);
		k = ts_vgg_run_bytes_multi(net, n, hs, ws, last, tapped);
		run = k > run ? k : run;
	}
	measure(net, p, bl, b0, b1, &z);
	for (int b = b0; b < b1; b++)
		halo += (size_t)3 * ((size_t)bl->b[b].ew * bl->b[b].eh - (size_t)bl->b[b].w * bl->b[b].h);
	return run + sizeof(float) * (2 * z.ext + z.cfeat + (size_t)(b1 - b0 + 1) * z.gfloats +
	                              2 * z.pack + z.gws + 2 * halo) +
	       sizeof(int64_t) * z.gfloats + sizeof(double) * (size_t)bl->n * 16;
}

/* The transfers, and their offsets in the cross-process buffers. */
static int
plan_transfers(ts_coupled *c)
{
	const ts_blocks *bl = c->bl;
	int nr = c->comm.nranks, me = c->comm.rank, n = 0, pass;
	size_t *soff = NULL, *roff = NULL, stot = 0, rtot = 0;

	c->scount = calloc((size_t)nr, sizeof *c->scount);
	c->rcount = calloc((size_t)nr, sizeof *c->rcount);
	soff = calloc((size_t)nr, sizeof *soff);
	roff = calloc((size_t)nr, sizeof *roff);
	if (!c->scount || !c->rcount || !soff || !roff)
		goto oom;
	for (pass = 0; pass < 2; pass++) {
		n = 0;
		for (int b = 0; b < bl->n; b++) {
			const ts_block *e = &bl->b[b];

			for (int o = 0; o < bl->n; o++) {
				const ts_block *k = &bl->b[o];
				int x0 = e->ex > k->x ? e->ex : k->x, y0 = e->ey > k->y ? e->ey : k->y;
				int x1 = e->ex + e->ew < k->x + k->w ? e->ex + e->ew : k->x + k->w;
				int y1 = e->ey + e->eh < k->y + k->h ? e->ey + e->eh : k->y + k->h;
				int ob = owner(c, b), oo = owner(c, o);
				size_t fl;

				if (x1 <= x0 || y1 <= y0)
					continue;
				if (ob != me && oo != me) /* neither end is here */
					continue;
				fl = (size_t)3 * (x1 - x0) * (y1 - y0);
				if (pass == 1) {
					transfer *t = &c->tr[n];

					t->b = b;
					t->o = o;
					t->x = x0;
					t->y = y0;
					t->w = x1 - x0;
					t->h = y1 - y0;
					t->off = 0;
					if (oo == me && ob != me) { /* we send the halo */
						t->off = soff[ob];
						soff[ob] += fl;
					} else if (ob == me && oo != me) {
						t->off = roff[oo];
						roff[oo] += fl;
					}
				} else if (oo == me && ob != me) {
					c->scount[ob] += fl;
				} else if (ob == me && oo != me) {
					c->rcount[oo] += fl;
				}
				n++;
			}
		}
		if (pass == 0) {
			if (!(c->tr = calloc((size_t)(n ? n : 1), sizeof *c->tr)))
				goto oom;
			/* offsets start where each rank's part of the buffer does */
			for (int r = 0; r < nr; r++) {
				soff[r] = stot;
				roff[r] = rtot;
				stot += c->scount[r];
				rtot += c->rcount[r];
			}
		}
	}
	c->ntr = n;
	c->sbuf = malloc((stot ? stot : 1) * sizeof *c->sbuf);
	c->rbuf = malloc((rtot ? rtot : 1) * sizeof *c->rbuf);
	free(soff);
	free(roff);
	if (!c->sbuf || !c->rbuf) {
		ts_error("coupled", "out of memory for the halo buffers");
		return -1;
	}
	return 0;
oom:
	free(soff);
	free(roff);
	ts_error("coupled", "out of memory");
	return -1;
}

/* Copy rectangle (x, y, w, h) of level pixels between a planar [3, sh, sw] picture at
 * (sx, sy) of the level and a packed [3, h, w] buffer: to_pack 1 packs, 0 unpacks;
 * add: unpack by adding. */
static void
rect_copy(float *pic, int sx, int sy, int sw, int sh, int x, int y, int w, int h,
          float *packed, int to_pack, int add)
{
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < h; i++) {
			float *row = pic + ((size_t)k * sh + (y - sy + i)) * sw + (x - sx);
			float *p = packed + ((size_t)k * h + i) * w;

			if (to_pack)
				memcpy(p, row, (size_t)w * sizeof *p);
			else if (!add)
				memcpy(row, p, (size_t)w * sizeof *p);
			else
				for (int j = 0; j < w; j++)
					row[j] += p[j];
		}
}

/* The owned pixels of local block b within x, as a picture [3, h, w]. */
static float *
owned(const ts_coupled *c, const float *x, int b)
{
	return (float *)x + c->var_off[b - c->b0];
}

static float *
extp(const ts_coupled *c, float *buf, int b)
{
	return buf + c->ext_off[b - c->b0];
}

/* 1. the evaluated pixels of every local block from the owners of its halo. */
static void
fill_halos(ts_coupled *c, const float *x)
{
	const ts_blocks *bl = c->bl;
	int me = c->comm.rank;

	for (int i = 0; i < c->ntr; i++) {
		const transfer *t = &c->tr[i];
		const ts_block *o = &bl->b[t->o];

		if (owner(c, t->o) == me && owner(c, t->b) != me)
			rect_copy(owned(c, x, t->o), o->x, o->y, o->w, o->h, t->x, t->y, t->w, t->h,
			          c->sbuf + t->off, 1, 0);
	}
	if (c->comm.nranks > 1) {
		c->comm.exchange(c->comm.user, c->sbuf, c->scount, c->rbuf, c->rcount);
		for (int r = 0; r < c->comm.nranks; r++)
			c->sent += c->scount[r];
	}
	for (int i = 0; i < c->ntr; i++) {
		const transfer *t = &c->tr[i];
		const ts_block *e = &bl->b[t->b], *o = &bl->b[t->o];

		if (owner(c, t->b) != me)
			continue;
		if (owner(c, t->o) == me) { /* both here: straight across */
			for (int k = 0; k < 3; k++)
				for (int y = 0; y < t->h; y++)
					memcpy(extp(c, c->ext, t->b) +
					               ((size_t)k * e->eh + t->y - e->ey + y) * e->ew +
					               (t->x - e->ex),
					       owned(c, x, t->o) + ((size_t)k * o->h + t->y - o->y + y) * o->w +
					               (t->x - o->x),
					       (size_t)t->w * sizeof(float));
		} else {
			rect_copy(extp(c, c->ext, t->b), e->ex, e->ey, e->ew, e->eh, t->x, t->y, t->w,
			          t->h, c->rbuf + t->off, 0, 0);
		}
	}
}

/* v [n] summed over the processes.  One writes each entry, the others add zeros, so
 * the sum is exact; alone, + 0.0 gives the same bits (a -0.0 becomes +0.0 there too). */
static void
sum_slots(ts_coupled *c, double *v, size_t n)
{
	if (c->comm.nranks > 1) {
		c->comm.sum_f64(c->comm.user, v, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		v[i] += 0.0;
}

/* 3b. every owned pixel's gradient: the contributions of every block, in block
 * order (the transfers are in that order). */
static void
gather_grads(ts_coupled *c, float *grad)
{
	const ts_blocks *bl = c->bl;
	int me = c->comm.rank;

	/* what our blocks' gradients put on other processes' pixels goes back along the
	 * halo's transfers, into the buffer they came in (rbuf) */
	for (int i = 0; i < c->ntr; i++) {
		const transfer *t = &c->tr[i];
		const ts_block *e = &bl->b[t->b];

		if (owner(c, t->b) == me && owner(c, t->o) != me)
			rect_copy(extp(c, c->egrad, t->b), e->ex, e->ey, e->ew, e->eh, t->x, t->y,
			          t->w, t->h, c->rbuf + t->off, 1, 0);
	}
	if (c->comm.nranks > 1) {
		c->comm.exchange(c->comm.user, c->rbuf, c->rcount, c->sbuf, c->scount);
		for (int r = 0; r < c->comm.nranks; r++)
			c->sent += c->rcount[r];
	}
	memset(grad, 0, c->nvars * sizeof *grad);
	for (int i = 0; i < c->ntr; i++) {
		const transfer *t = &c->tr[i];
		const ts_block *e = &bl->b[t->b], *o = &bl->b[t->o];

		if (owner(c, t->o) != me)
			continue;
		if (owner(c, t->b) == me) {
			for (int k = 0; k < 3; k++)
				for (int y = 0; y < t->h; y++) {
					const float *src = extp(c, c->egrad, t->b) +
					                   ((size_t)k * e->eh + t->y - e->ey + y) * e->ew +
					                   (t->x - e->ex);
					float *dst = owned(c, grad, t->o) +
					             ((size_t)k * o->h + t->y - o->y + y) * o->w + (t->x - o->x);

					for (int j = 0; j < t->w; j++)
						dst[j] += src[j];
				}
		} else {
			rect_copy(owned(c, grad, t->o), o->x, o->y, o->w, o->h, t->x, t->y, t->w, t->h,
			          c->sbuf + t->off, 0, 1);
		}
	}
}

/* TV of block b's owned pixels: the differences whose first pixel it owns (and whose
 * second is inside the level).  grad (may be NULL): the block's evaluated gradient. */
static void
block_tv(const ts_coupled *c, int b, const float *ext, float *grad, double *sx, double *sy)
{
	const ts_blocks *bl = c->bl;
	const ts_block *k = &bl->b[b];
	double nx = 3.0 * bl->h * (bl->w - 1), ny = 3.0 * (bl->h - 1) * bl->w;
	float ax = bl->w > 1 ? (float)(2.0 * c->p.tv_weight / nx) : 0.0f;
	float ay = bl->h > 1 ? (float)(2.0 * c->p.tv_weight / ny) : 0.0f;
	double tx = 0.0, ty = 0.0;
	int xe = k->x + k->w < bl->w ? k->x + k->w : bl->w - 1; /* last first pixel + 1 */
	int ye = k->y + k->h < bl->h ? k->y + k->h : bl->h - 1;

	for (int ch = 0; ch < 3; ch++)
		for (int y = k->y; y < k->y + k->h; y++) {
			/* r[x], g[x]: level column x of this row (x >= k->ex) */
			size_t at = ((size_t)ch * k->eh + (y - k->ey)) * k->ew;
			const float *r = ext + at;
			float *g = grad ? grad + at : NULL;

			for (int x = k->x - k->ex; x < xe - k->ex; x++) {
				float d = r[x + 1] - r[x];

				tx += (double)d * d;
				if (g) {
					g[x] -= ax * d;
					g[x + 1] += ax * d;
				}
			}
			if (y >= ye)
				continue;
			for (int x = k->x - k->ex; x < k->x + k->w - k->ex; x++) {
				float d = r[x + k->ew] - r[x];

				ty += (double)d * d;
				if (g) {
					g[x] -= ay * d;
					g[x + k->ew] += ay * d;
				}
			}
		}
	*sx = tx;
	*sy = ty;
}

ts_coupled *
ts_coupled_create(const ts_vgg *net, const ts_objective_params *p,
                  const ts_style_targets *targets, const ts_blocks *bl, const ts_comm *comm,
                  ts_region_fn content, void *content_user)
{
	ts_coupled *c = calloc(1, sizeof *c);
	int hs[64], ws[64], n, nc = p->content_layers.n;
	struct sizes z;
	size_t off = 0, coff = 0;

	if (!c) {
		ts_error("coupled", "out of memory");
		return NULL;
	}
	c->net = net;
	c->p = *p;
	c->t = targets;
	c->bl = bl;
	c->run_block = -1;
	if (comm && comm->nranks > 1)
		c->comm = *comm;
	else
		c->comm.nranks = 1;
	c->b0 = ts_blocks_first(bl, c->comm.rank, c->comm.nranks);
	c->b1 = ts_blocks_first(bl, c->comm.rank + 1, c->comm.nranks);
	c->nloc = c->b1 - c->b0;
	if ((c->last = taps(p, c->tapped)) < 0) {
		ts_error("coupled", "no content or style layer in use");
		goto fail;
	}
	if (p->style_layers.n && (!targets || targets->n != p->style_layers.n)) {
		ts_error("coupled", "style targets do not match the style layers");
		goto fail;
	}
	/* one run for every local block: the largest of their (few) distinct sizes (a
	 * process with no block, more processes than blocks, only takes part in the
	 * sums) */
	n = 0;
	for (int b = c->b0; b < c->b1 && n < 60; b++) {
		int i;

		for (i = 0; i < n; i++)
			if (hs[i] == bl->b[b].eh && ws[i] == bl->b[b].ew)
				break;
		if (i == n) {
			hs[n] = bl->b[b].eh;
			ws[n] = bl->b[b].ew;
			n++;
		}
	}
	if (n && !(c->run = ts_vgg_run_create_multi(net, n, hs, ws, c->last, c->tapped, p->pool)))
		goto fail;
	measure(net, p, bl, c->b0, c->b1, &z);
	c->var_off = malloc(((size_t)c->nloc + 1) * sizeof *c->var_off);
	c->ext_off = malloc(((size_t)c->nloc + 1) * sizeof *c->ext_off);
	c->cfeat_off = malloc(((size_t)c->nloc + 1) * (nc ? nc : 1) * sizeof *c->cfeat_off);
	c->ext = malloc((z.ext + 1) * sizeof *c->ext);
	c->egrad = malloc((z.ext + 1) * sizeof *c->egrad);
	c->cfeat = malloc((z.cfeat ? z.cfeat : 1) * sizeof *c->cfeat);
	c->gfloats = z.gfloats;
	c->gpart = malloc(((size_t)c->nloc * z.gfloats + 1) * sizeof *c->gpart);
	c->gacc = malloc((z.gfloats + 1) * sizeof *c->gacc);
	c->gS = malloc((z.gfloats + 1) * sizeof *c->gS);
	c->pack = malloc(z.pack * sizeof *c->pack);
	c->prod = malloc(z.pack * sizeof *c->prod);
	c->gws_floats = z.gws ? z.gws : 1;
	c->gws = malloc(c->gws_floats * sizeof *c->gws);
	c->slots = calloc((size_t)bl->n * NSCAL(c), sizeof *c->slots);
	if (!c->var_off || !c->ext_off || !c->cfeat_off || !c->ext || !c->egrad || !c->cfeat ||
	    !c->gpart || !c->gacc || !c->gS || !c->pack || !c->prod || !c->gws || !c->slots) {
		ts_error("coupled", "out of memory for the blocks of a %dx%d level", bl->w, bl->h);
		goto fail;
	}
	for (int i = 0, g = 0; i < p->style_layers.n; i++) {
		int ch = channels(net, p->style_layers.layer[i]);

		c->gofs[i] = (size_t)g;
		g += ch * ch;
	}
	for (int b = c->b0; b < c->b1; b++) {
		const ts_block *k = &bl->b[b];

		c->var_off[b - c->b0] = c->nvars;
		c->ext_off[b - c->b0] = off;
		c->nvars += (size_t)3 * k->w * k->h;
		off += (size_t)3 * k->ew * k->eh;
	}
	if (plan_transfers(c))
		goto fail;
	/* the content targets: each block's content features at the cells it owns */
	for (int b = c->b0; b < c->b1 && nc; b++) {
		const ts_block *k = &bl->b[b];
		float *e = extp(c, c->ext, b);

		if (content(content_user, k->ex, k->ey, k->ew, k->eh, e))
			goto fail;
		if (ts_vgg_run_resize(c->run, k->eh, k->ew))
			goto fail;
		ts_vgg_forward(c->run, e);
		for (int i = 0; i < nc; i++) {
			int l = p->content_layers.layer[i], ch, fh, fw, r0, r1, c0, c1;
			const float *f = ts_vgg_feature(c->run, l, &ch, &fh, &fw);

			cells(k, ts_vgg_layer_pools(l), fh, fw, &r0, &r1, &c0, &c1);
			c->cfeat_off[(b - c->b0) * nc + i] = coff;
			pack_cells(f, ch, fh, fw, r0, r1, c0, c1, c->cfeat + coff);
			coff += (size_t)ch * (r1 - r0) * (c1 - c0);
		}
	}
	TS_ASSERT(coff <= z.cfeat);
	return c;
fail:
	ts_coupled_destroy(c);
	return NULL;
}

void
ts_coupled_destroy(ts_coupled *c)
{
	if (!c)
		return;
	ts_vgg_run_destroy(c->run);
	free(c->var_off);
	free(c->ext_off);
	free(c->cfeat_off);
	free(c->ext);
	free(c->egrad);
	free(c->cfeat);
	free(c->gpart);
	free(c->gacc);
	free(c->gS);
	free(c->pack);
	free(c->prod);
	free(c->gws);
	free(c->slots);
	free(c->rslots);
	free(c->tr);
	free(c->sbuf);
	free(c->rbuf);
	free(c->scount);
	free(c->rcount);
	free(c);
}

void
ts_coupled_blocks(const ts_coupled *c, int *b0, int *b1)
{
	*b0 = c->b0;
	*b1 = c->b1;
}

size_t
ts_coupled_vars(const ts_coupled *c)
{
	return c->nvars;
}

size_t
ts_coupled_block_offset(const ts_coupled *c, int b)
{
	TS_ASSERT(b >= c->b0 && b < c->b1);
	return c->var_off[b - c->b0];
}

size_t
ts_coupled_sent_floats(const ts_coupled *c)
{
	return c->sent;
}

static double
style_weight(const ts_coupled *c, int i)
{
	double wt = c->p.style_weight * c->p.style_layers.w[i];

	if (c->p.normalize_style)
		wt /= c->t->meansq[i] > 0 ? c->t->meansq[i] : 1.0;
	return wt;
}

/* Put block b in the run (a forward pass unless it is there already). */
static int
load_block(ts_coupled *c, int b)
{
	const ts_block *k = &c->bl->b[b];

	if (c->run_block == b)
		return 0;
	if (ts_vgg_run_resize(c->run, k->eh, k->ew))
		return -1;
	ts_vgg_forward(c->run, extp(c, c->ext, b));
	c->run_block = b;
	return 0;
}

/* 2. forward phase of block b: its partial Grams (into gpart) and scalars. */
static int
block_forward(ts_coupled *c, int b)
{
	const ts_objective_params *p = &c->p;
	const ts_block *k = &c->bl->b[b];
	double *slot = c->slots + (size_t)b * NSCAL(c);
	int nc = p->content_layers.n;

	if (load_block(c, b))
		return -1;
	for (int i = 0; i < p->style_layers.n; i++) {
		int l = p->style_layers.layer[i], ch, fh, fw, r0, r1, c0, c1;
		const float *f = ts_vgg_feature(c->run, l, &ch, &fh, &fw);
		float *g = c->gpart + (size_t)(b - c->b0) * c->gfloats + c->gofs[i];
		size_t nn = (size_t)ch * ch;

		cells(k, ts_vgg_layer_pools(l), fh, fw, &r0, &r1, &c0, &c1);
		if (r1 <= r0 || c1 <= c0) {
			memset(g, 0, nn * sizeof *g);
			continue;
		}
		pack_cells(f, ch, fh, fw, r0, r1, c0, c1, c->pack);
		ts_gram_scaled(c->pack, ch, (r1 - r0) * (c1 - c0), 1.0f, g, c->gws);
		for (size_t j = 0; j < nn; j++) {
			double v = fabs((double)g[j]);

			c->part_max[i] = v > c->part_max[i] ? v : c->part_max[i];
		}
	}
	for (int i = 0; i < nc; i++) {
		int l = p->content_layers.layer[i], ch, fh, fw, r0, r1, c0, c1;
		const float *f = ts_vgg_feature(c->run, l, &ch, &fh, &fw);
		const float *t = c->cfeat + c->cfeat_off[(b - c->b0) * nc + i];
		double s = 0.0;

		cells(k, ts_vgg_layer_pools(l), fh, fw, &r0, &r1, &c0, &c1);
		for (int q = 0; q < ch; q++)
			for (int y = r0; y < r1; y++) {
				const float *row = f + ((size_t)q * fh + y) * fw;

				for (int x = c0; x < c1; x++, t++) {
					double d = (double)row[x] - (double)*t;

					s += d * d;
				}
			}
		slot[i] = s;
	}
	block_tv(c, b, extp(c, c->ext, b), NULL, &slot[nc], &slot[nc + 1]);
	return 0;
}

/* The global Grams from the partial ones: sum_b in 64-bit fixed point, the exponent
 * from the largest partial entry anywhere (so no sum can overflow), then the style
 * losses and sym dL/dG = (G - T + (G - T)^T) / c^2 (as loss.c). */
static void
global_grams(ts_coupled *c)
{
	const ts_objective_params *p = &c->p;
	int ns = p->style_layers.n, ex[TS_VGG_NLAYERS];

	if (!ns)
		return;
	if (c->comm.nranks > 1)
		c->comm.max_f64(c->comm.user, c->part_max, (size_t)ns);
	memset(c->gacc, 0, c->gfloats * sizeof *c->gacc);
	for (int i = 0; i < ns; i++) {
		int ch = c->t->c[i], e;
		size_t nn = (size_t)ch * ch;
		/* every partial below 2^62 / blocks: their sum fits */
		double lim = ldexp(1.0, 62) / c->bl->n;

		e = c->part_max[i] > 0 ? (int)floor(log2(lim / c->part_max[i])) : 0;
		e = e > 1000 ? 1000 : e;
		ex[i] = e;
		for (int b = 0; b < c->nloc; b++) {
			const float *g = c->gpart + (size_t)b * c->gfloats + c->gofs[i];
			int64_t *a = c->gacc + c->gofs[i];

			for (size_t j = 0; j < nn; j++)
				a[j] += (int64_t)llrint(ldexp((double)g[j], e));
		}
	}
	if (c->comm.nranks > 1)
		c->comm.sum_i64(c->comm.user, c->gacc, c->gfloats);
	for (int i = 0; i < ns; i++) {
		int l = p->style_layers.layer[i], ch = c->t->c[i], e = ex[i];
		double norm = (double)ch * level_cells(c->bl, ts_vgg_layer_pools(l));
		double dscale = 2.0 / ((double)ch * ch), sum = 0.0;
		const int64_t *a = c->gacc + c->gofs[i];
		const float *t = c->t->gram[i];
		float *s = c->gS + c->gofs[i];
		size_t nn = (size_t)ch * ch;

		for (size_t j = 0; j < nn; j++) {
			float g = (float)(ldexp((double)a[j], -e) / norm);
			double d = (double)g - (double)t[j];

			s[j] = g;
			sum += d * d;
		}
		c->lstyle[i] = sum / (double)nn;
		/* s: G -> sym dL/dG */
		for (int q = 0; q < ch; q++)
			for (int r = q; r < ch; r++) {
				double gqr = (double)s[(size_t)q * ch + r] - t[(size_t)q * ch + r];
				double grq = (double)s[(size_t)r * ch + q] - t[(size_t)r * ch + q];
				float v = (float)(dscale * 0.5 * (gqr + grq));

				s[(size_t)q * ch + r] = v;
				s[(size_t)r * ch + q] = v;
			}
	}
}

/* 3a. the gradient of the losses at the owned cells of the block in the run. */
struct tap_ctx {
	ts_coupled *c;
	int b;
};

static int
tap(void *ctx, int layer, const float *f, int ch, int fh, int fw, float *grad, int relu)
{
	struct tap_ctx *tc = ctx;
	ts_coupled *c = tc->c;
	const ts_objective_params *p = &c->p;
	const ts_block *k = &c->bl->b[tc->b];
	int nc = p->content_layers.n, r0, r1, c0, c1, pools = ts_vgg_layer_pools(layer);
	double ncell = level_cells(c->bl, pools);
	size_t cw, n;

	(void)relu;
	cells(k, pools, fh, fw, &r0, &r1, &c0, &c1);
	if (r1 <= r0 || c1 <= c0)
		return 0;
	cw = (size_t)(c1 - c0);
	n = (size_t)(r1 - r0) * cw;
	for (int i = 0; i < nc; i++) {
		const float *t;
		float sc;

		if (p->content_layers.layer[i] != layer)
			continue;
		t = c->cfeat + c->cfeat_off[(tc->b - c->b0) * nc + i];
		sc = (float)(2.0 * p->content_weight * p->content_layers.w[i] / ((double)ch * ncell));
		for (int q = 0; q < ch; q++)
			for (int y = r0; y < r1; y++) {
				const float *row = f + ((size_t)q * fh + y) * fw;
				float *g = grad + ((size_t)q * fh + y) * fw;

				for (int x = c0; x < c1; x++, t++)
					g[x] += sc * (row[x] - *t);
			}
	}
	for (int i = 0; i < p->style_layers.n; i++) {
		float alpha;

		if (p->style_layers.layer[i] != layer)
			continue;
		/* grad [:, owned] += weight * 2 sym(dL/dG) F / (c N) */
		alpha = (float)(2.0 * style_weight(c, i) / ((double)ch * ncell));
		pack_cells(f, ch, fh, fw, r0, r1, c0, c1, c->pack);
		ts_sgemm(0, 0, ch, (int)n, ch, alpha, c->gS + c->gofs[i], ch, c->pack, (int)n, 0.0f,
		         c->prod, (int)n);
		for (int q = 0; q < ch; q++)
			for (int y = r0; y < r1; y++) {
				const float *src = c->prod + (size_t)q * n + (size_t)(y - r0) * cw;
				float *g = grad + ((size_t)q * fh + y) * fw + c0;

				for (size_t x = 0; x < cw; x++)
					g[x] += src[x];
			}
	}
	return 0;
}

double
ts_coupled_eval(ts_coupled *c, const float *x, float *grad, ts_loss_parts *parts)
{
	const ts_objective_params *p = &c->p;
	int nc = p->content_layers.n, ns = NSCAL(c);
	double lc = 0.0, ls = 0.0, ltv = 0.0, total = 0.0, tx = 0.0, ty = 0.0;
	double cs[TS_VGG_NLAYERS] = { 0 };
	const ts_blocks *bl = c->bl;

	c->sent = 0;
	c->run_block = -1;
	fill_halos(c, x);
	memset(c->part_max, 0, sizeof c->part_max);
	memset(c->slots, 0, (size_t)bl->n * ns * sizeof *c->slots);
	for (int b = c->b0; b < c->b1; b++)
		if (block_forward(c, b))
			return NAN;
	global_grams(c);
	/* the per-block scalars: one process writes each slot, the rest add zeros, so
	 * the sum is exact; then in block order */
	sum_slots(c, c->slots, (size_t)bl->n * ns);
	for (int b = 0; b < bl->n; b++) {
		for (int i = 0; i < nc; i++)
			cs[i] += c->slots[(size_t)b * ns + i];
		tx += c->slots[(size_t)b * ns + nc];
		ty += c->slots[(size_t)b * ns + nc + 1];
	}
	for (int i = 0; i < nc; i++) {
		int l = p->content_layers.layer[i];
		double v = cs[i] / ((double)channels(c->net, l) *
		                    level_cells(bl, ts_vgg_layer_pools(l)));

		lc += v;
		total += p->content_weight * p->content_layers.w[i] * v;
	}
	for (int i = 0; i < p->style_layers.n; i++) {
		ls += c->lstyle[i];
		total += style_weight(c, i) * c->lstyle[i];
	}
	if (bl->w > 1)
		ltv += tx / (3.0 * bl->h * (bl->w - 1));
	if (bl->h > 1)
		ltv += ty / (3.0 * (bl->h - 1) * bl->w);
	total += p->tv_weight * ltv;
	if (parts) {
		parts->content = lc;
		parts->style = ls;
		parts->tv = ltv;
		parts->total = total;
	}
	if (!grad)
		return total;
	/* backward, last block first: it is still in the run */
	for (int b = c->b1 - 1; b >= c->b0; b--) {
		struct tap_ctx tc = { c, b };
		double d0, d1;

		if (load_block(c, b))
			return NAN;
		ts_vgg_backward(c->run, tap, &tc, extp(c, c->egrad, b));
		block_tv(c, b, extp(c, c->ext, b), extp(c, c->egrad, b), &d0, &d1);
	}
	gather_grads(c, grad);
	return total;
}

/* The optimizer's sums: this process's segments (= blocks) into their slots, the
 * other slots zero, summed over the processes, then added in block order. */
static void
red_sum(void *user, const double *parts, int k, double *out)
{
	ts_coupled *c = user;
	size_t n = (size_t)c->bl->n, need = n * (size_t)k;
	double *s = c->rslots;

	TS_ASSERT(k <= c->rk);
	memset(s, 0, need * sizeof *s);
	memcpy(s + (size_t)c->b0 * k, parts, (size_t)c->nloc * k * sizeof *s);
	sum_slots(c, s, need);
	for (int q = 0; q < k; q++) {
		double acc = s[q];

		for (size_t b = 1; b < n; b++)
			acc += s[b * k + q];
		out[q] = acc;
	}
}

static void
red_max(void *user, double *v, int k)
{
	ts_coupled *c = user;

	if (c->comm.nranks > 1)
		c->comm.max_f64(c->comm.user, v, (size_t)k);
}

int
ts_coupled_reduce(ts_coupled *c, int kmax, ts_optim_reduce *red)
{
	free(c->rslots);
	c->rk = kmax;
	if (!(c->rslots = malloc((size_t)c->bl->n * kmax * sizeof *c->rslots))) {
		ts_error("coupled", "out of memory");
		return -1;
	}
	red->user = c;
	red->sum = red_sum;
	red->max = red_max;
	return 0;
}
