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
 * The block grid and what crosses between blocks and processes: coupled_halo.c. */
#include "tessera/coupled.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/loss.h"

#include "coupled_internal.h"

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

/* The colour-only TV (loss.h's ts_loss_tv_chroma) of block b's owned pixels, the
 * differences split as block_tv's; nothing when its weight is 0. */
static void
block_tv_chroma(const ts_coupled *c, int b, const float *ext, float *grad, double *sx,
                double *sy)
{
	const ts_blocks *bl = c->bl;
	const ts_block *k = &bl->b[b];
	const float *cb = ts_loss_chroma_cb, *cr = ts_loss_chroma_cr;
	size_t plane = (size_t)k->eh * k->ew;
	double nx = 2.0 * bl->h * (bl->w - 1), ny = 2.0 * (bl->h - 1) * bl->w;
	float ax = bl->w > 1 ? (float)(2.0 * c->p.tv_chroma_weight / nx) : 0.0f;
	float ay = bl->h > 1 ? (float)(2.0 * c->p.tv_chroma_weight / ny) : 0.0f;
	double t[2] = { 0.0, 0.0 };
	int xe = k->x + k->w < bl->w ? k->x + k->w : bl->w - 1;
	int ye = k->y + k->h < bl->h ? k->y + k->h : bl->h - 1;

	*sx = *sy = 0.0;
	if (!(c->p.tv_chroma_weight > 0))
		return;
	for (int y = k->y; y < k->y + k->h; y++) {
		size_t row = (size_t)(y - k->ey) * k->ew;

		for (int dir = 0; dir < 2; dir++) {
			int x1 = dir ? k->x + k->w : xe;
			size_t step = dir ? (size_t)k->ew : 1;
			float s = dir ? ay : ax;

			if (dir && y >= ye)
				continue;
			for (int x = k->x; x < x1; x++) {
				size_t a = row + (size_t)(x - k->ex), q = a + step;
				float d0 = ext[q] - ext[a], d1 = ext[plane + q] - ext[plane + a];
				float d2 = ext[2 * plane + q] - ext[2 * plane + a];
				float u = cb[0] * d0 + cb[1] * d1 + cb[2] * d2;
				float v = cr[0] * d0 + cr[1] * d1 + cr[2] * d2;

				t[dir] += (double)u * u + (double)v * v;
				if (grad)
					for (int ch = 0; ch < 3; ch++) {
						float g = s * (u * cb[ch] + v * cr[ch]);

						grad[ch * plane + q] += g;
						grad[ch * plane + a] -= g;
					}
			}
		}
	}
	*sx = t[0];
	*sy = t[1];
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
	if (ts_coupled_plan_transfers(c))
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
	block_tv_chroma(c, b, extp(c, c->ext, b), NULL, &slot[nc + 2], &slot[nc + 3]);
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
	double lcv = 0.0, cx = 0.0, cy = 0.0;
	double cs[TS_VGG_NLAYERS] = { 0 };
	const ts_blocks *bl = c->bl;

	c->sent = 0;
	c->run_block = -1;
	ts_coupled_fill_halos(c, x);
	memset(c->part_max, 0, sizeof c->part_max);
	memset(c->slots, 0, (size_t)bl->n * ns * sizeof *c->slots);
	for (int b = c->b0; b < c->b1; b++)
		if (block_forward(c, b))
			return NAN;
	global_grams(c);
	/* the per-block scalars: one process writes each slot, the rest add zeros, so
	 * the sum is exact; then in block order */
	ts_coupled_sum_slots(c, c->slots, (size_t)bl->n * ns);
	for (int b = 0; b < bl->n; b++) {
		for (int i = 0; i < nc; i++)
			cs[i] += c->slots[(size_t)b * ns + i];
		tx += c->slots[(size_t)b * ns + nc];
		ty += c->slots[(size_t)b * ns + nc + 1];
		cx += c->slots[(size_t)b * ns + nc + 2];
		cy += c->slots[(size_t)b * ns + nc + 3];
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
	if (bl->w > 1)
		lcv += cx / (2.0 * bl->h * (bl->w - 1));
	if (bl->h > 1)
		lcv += cy / (2.0 * (bl->h - 1) * bl->w);
	if (p->tv_chroma_weight > 0)
		total += p->tv_chroma_weight * lcv;
	if (parts) {
		parts->content = lc;
		parts->style = ls;
		parts->tv = ltv;
		parts->total = total;
		parts->tv_chroma = p->tv_chroma_weight > 0 ? lcv : 0;
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
		block_tv_chroma(c, b, extp(c, c->ext, b), extp(c, c->egrad, b), &d0, &d1);
	}
	ts_coupled_gather_grads(c, grad);
	return isfinite(total) ? total : INFINITY; /* as a single piece's: a rise */
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
	ts_coupled_sum_slots(c, s, need);
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
