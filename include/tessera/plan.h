/* plan: the pyramid of levels and the tile grid of each level.
 *
 * The last level is the output (W x H).  Each lower level is the one above divided by
 * the level factor f (each side rounded to the nearest integer, at least 1), down to
 * level 0, the first level whose sides both fit in one tile (<= T).  Level 0 is
 * rendered as a single tile covering it; if W, H <= T there is only that level.
 *
 * Grid along an axis of length N: if N <= T, one tile of length N at 0; otherwise
 * n = ceil((N - O) / (T - O)) tiles of length T at x_i = floor(i (N - T) / (n - 1) + 1/2)
 * (exact integer arithmetic): the first starts at 0, the last ends at N, and every
 * overlap between neighbours is at least O.  Every tile of a column has the same
 * width, every tile of a row the same height.
 *
 * The plan hash (64-bit FNV-1a) names a job: the caller builds a canonical text of
 * everything that decides the pixels (config, identity of the input files, level sizes)
 * and hashes it; tile checkpoints carry the hash. */
#ifndef TESSERA_PLAN_H
#define TESSERA_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TS_MAX_LEVELS 32

typedef struct ts_level {
	int w, h;         /* level size, pixels */
	int ncols, nrows; /* tile grid */
	int tw, th;       /* width of every tile (min(w, T)), height of every tile (min(h, T)) */
	int *xs;          /* [ncols] tile left edges, increasing; xs[0] = 0, xs[ncols-1] + tw = w */
	int *ys;          /* [nrows] tile top edges, increasing; ys[0] = 0, ys[nrows-1] + th = h */
} ts_level;

typedef struct ts_plan {
	int w, h;         /* output size (the last level) */
	int tile;         /* T: tile side */
	int overlap;      /* O: minimum overlap between neighbouring tiles */
	double factor;    /* f: size ratio between consecutive levels (> 1) */
	int nlevels;      /* >= 1; level[nlevels - 1] is the output */
	ts_level level[TS_MAX_LEVELS]; /* level[0] fits in one tile; xs/ys owned by the plan */
} ts_plan;

/* Plan an output of w x h with tile side tile, overlap overlap and level factor factor.
 * Requires w, h >= 1, tile >= 1, 0 <= overlap < tile, factor > 1 (finite), and at most
 * TS_MAX_LEVELS levels.  Caller owns (ts_plan_destroy).  NULL with a message naming the
 * bad value. */
ts_plan *ts_plan_create(int w, int h, int tile, int overlap, double factor);
/* Free the plan and its grids; NULL does nothing. */
void ts_plan_destroy(ts_plan *p);

/* Number of tiles of a level (ncols * nrows). */
int ts_plan_ntiles(const ts_plan *p, int level);
/* Tiles of every level together. */
int ts_plan_total_tiles(const ts_plan *p);

/* Rectangle of tile (row, col) of a level, in that level's pixels.  Any of the out
 * pointers may be NULL.  row, col must be inside the grid (asserted). */
void ts_plan_tile_rect(const ts_plan *p, int level, int row, int col, int *x, int *y,
                       int *w, int *h);

/* Smallest overlap between neighbouring tiles of a level along x and y (the tile side
 * when the axis has a single tile). */
void ts_plan_min_overlap(const ts_plan *p, int level, int *ox, int *oy);

/* 64-bit FNV-1a of the NUL-terminated text. */
uint64_t ts_plan_hash(const char *text);

/* Append the line "key = value\n" (value printf-formatted) to the text buf of size
 * bytes, whose current length is *len (updated).  Numbers in a plan text should be
 * written exactly ("%d", "%.17g").  0, or -1 with a message when it does not fit (buf
 * then keeps its previous content). */
int ts_plan_text_add(char *buf, size_t size, size_t *len, const char *key,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Print the plan: per level the size, grid, tile size, minimum overlaps and number of
 * tiles, and the total. */
void ts_plan_print(const ts_plan *p, FILE *f);

#endif
