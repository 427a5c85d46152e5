/* tile: feathered blending of overlapping tiles into a level image.
 *
 * Weights are separable.  Along one axis, a tile's raw weight at its local position t
 * is the product of a ramp over its overlap with each neighbour: towards a neighbour
 * whose overlap is o pixels, the o pixels at that side weigh
 *     r(d) = 0.5 - 0.5 cos(pi (d + 0.5) / o),   d = distance from the tile's edge,
 * (never 0: every pixel of a tile counts), the interior weighs 1, and the edges of the
 * picture are not ramped.  The raw weights are then divided by the sum of the raw
 * weights of every tile covering that position, so along each axis the weights of the
 * tiles covering a pixel sum to one (also where three tiles overlap).  The 2-D weight
 * is wx * wy.
 *
 * Blending is a running weighted mean in a fixed order (tiles by row, then column):
 *     cum += w_i;  acc += (w_i / cum) (v_i - acc)
 * so it is exact when the tiles agree: if every tile is the crop of one image, the
 * blend is that image bit for bit.  It depends only on the tiles, never on the band
 * boundaries chosen by the caller or on which rank made a tile. */
#ifndef TESSERA_TILE_H
#define TESSERA_TILE_H

#include "tessera/plan.h"

/* Normalized 1-D weights of tile index (column for axis 0, row for axis 1) of a level:
 * out [tw] for axis 0, [th] for axis 1, indexed by the position inside the tile. */
void ts_tile_weights_axis(const ts_level *lv, int axis, int index, float *out);

/* Return tile (row, col) of the level, [3, th, tw] planar, valid at least until the
 * next call; NULL with a message in the error buffer on failure. */
typedef const float *(*ts_tile_get_fn)(void *user, int row, int col);

/* Tile rows [*r0, *r1) that meet the output rows [y0, y1) of a level. */
void ts_tile_band_rows(const ts_level *lv, int y0, int y1, int *r0, int *r1);

/* Blend the output rows [y0, y1) (0 <= y0 < y1 <= lv->h) of a level into
 * out [3, y1 - y0, lv->w].  get is called once for every tile that meets the band, in
 * row-major order (rows from ts_tile_band_rows, all columns), so the caller only needs
 * to hold the tile rows of ts_tile_band_rows.  Allocates a workspace of O(band + one
 * row of tile weights).  0, or -1 (get failed or out of memory) with a message. */
int ts_blend_band(const ts_level *lv, int y0, int y1, ts_tile_get_fn get, void *user,
                  float *out);

/* Copy the rectangle (x, y, w, h) of the planar picture src [3, sh, sw] into
 * out [3, h, w]; the rectangle must lie inside src (asserted).  Tiles need no extra
 * margin: they already overlap. */
void ts_tile_crop(const float *src, int sw, int sh, int x, int y, int w, int h, float *out);

#endif
