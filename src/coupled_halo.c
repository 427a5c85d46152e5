/* coupled_halo: the blocks of a coupled level and what crosses between them (see
 * coupled.h): the block grid and which rank holds which blocks, the transfers (the
 * pairs (b, o) of blocks where b's evaluated rectangle meets o's owned one, in (b, o)
 * order), the halo fill from the owners and the gradients back to them.
 *
 * Invariant: an owned pixel's gradient is the sum of every block's contribution
 * added in block order, whichever process holds which block. */
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"

#include "coupled_internal.h"

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

int
ts_coupled_owner(const ts_coupled *c, int b)
{
	int r = (int)((long long)b * c->comm.nranks / c->bl->n);

	/* the inverse of ts_blocks_first, made exact */
	while (r > 0 && ts_blocks_first(c->bl, r, c->comm.nranks) > b)
		r--;
	while (r + 1 < c->comm.nranks && ts_blocks_first(c->bl, r + 1, c->comm.nranks) <= b)
		r++;
	return r;
}

/* The transfers, and their offsets in the cross-process buffers. */
int
ts_coupled_plan_transfers(ts_coupled *c)
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
				int ob = ts_coupled_owner(c, b), oo = ts_coupled_owner(c, o);
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

/* 1. the evaluated pixels of every local block from the owners of its halo. */
void
ts_coupled_fill_halos(ts_coupled *c, const float *x)
{
	const ts_blocks *bl = c->bl;
	int me = c->comm.rank;

	for (int i = 0; i < c->ntr; i++) {
		const transfer *t = &c->tr[i];
		const ts_block *o = &bl->b[t->o];

		if (ts_coupled_owner(c, t->o) == me && ts_coupled_owner(c, t->b) != me)
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

		if (ts_coupled_owner(c, t->b) != me)
			continue;
		if (ts_coupled_owner(c, t->o) == me) { /* both here: straight across */
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
void
ts_coupled_sum_slots(ts_coupled *c, double *v, size_t n)
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
void
ts_coupled_gather_grads(ts_coupled *c, float *grad)
{
	const ts_blocks *bl = c->bl;
	int me = c->comm.rank;

	/* what our blocks' gradients put on other processes' pixels goes back along the
	 * halo's transfers, into the buffer they came in (rbuf) */
	for (int i = 0; i < c->ntr; i++) {
		const transfer *t = &c->tr[i];
		const ts_block *e = &bl->b[t->b];

		if (ts_coupled_owner(c, t->b) == me && ts_coupled_owner(c, t->o) != me)
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

		if (ts_coupled_owner(c, t->o) != me)
			continue;
		if (ts_coupled_owner(c, t->b) == me) {
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

