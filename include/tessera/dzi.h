/* dzi: Deep Zoom output (--deep-zoom DIR), written while the final image streams out.
 *
 * The picture arrives as bands of rows, top to bottom, in any row counts; every level
 * of the pyramid is built on the way and each tile row is written as JPEG the moment
 * its last row (and the overlap row below it) is in.  The result, in DIR:
 *   NAME.dzi                      <Image TileSize="254" Overlap="1" Format="jpg" ...>
 *   NAME_files/LEVEL/COL_ROW.jpg  levels 0..L, L = ceil(log2(max(w, h))); level L is
 *                                 the full size, each level below is ceil(half) of the
 *                                 one above (2x2 box average of the float samples; at
 *                                 an odd right or bottom edge the last pixel is
 *                                 averaged with itself), down to 1x1.  Tile (c, r)
 *                                 covers x in [c*254 - (c > 0), min(w, (c+1)*254 + 1)),
 *                                 y likewise: one overlap pixel on each interior side,
 *                                 as OpenSeadragon's DZI reader expects.  JPEG quality
 *                                 90, 4:2:0 (stb_image_write).
 *   index.html                    an OpenSeadragon page for NAME; the descriptor is
 *                                 inline, so it works from file:// as well as http.
 *   openseadragon.min.js, images/ copied from $TESSERA_OPENSEADRAGON, else from the
 *                                 folder the Makefile compiled in (TS_OPENSEADRAGON_DIR,
 *                                 filled by tools/deps.sh through npm).  When neither
 *                                 holds openseadragon.min.js the tiles and .dzi are
 *                                 still written; index.html says that the viewer is
 *                                 missing and ts_dzi_open prints a one-line warning.
 *   .tessera-dzi                  marks the folder as this module's output.
 *
 * Publication is atomic: everything is built in "DIR.part" and becomes DIR only at
 * ts_dzi_close, after a syncfs of the tree; an existing DIR from an earlier run is
 * swapped out at that moment (renameat2 RENAME_EXCHANGE; where the file system lacks
 * it, two renames) and then removed.  An existing DIR (or stale DIR.part) is replaced
 * only when it is empty or holds .tessera-dzi, never a folder of the user's.
 *
 * Memory is bounded by the width alone, never the height: per level of width w_l, a
 * tile row's pixels as 8-bit RGB (at most 256 rows: 254 + the overlap row on each
 * side) plus two float rows (the row waiting for its partner in the 2x2 average, and
 * the halved row going down); summed over the levels (sum w_l < 2w + L) that is below
 * 1600 * w + 200 KiB bytes: about 55 MiB for a 36000-pixel-wide print.
 *
 * Not thread-safe per handle; separate handles are independent. */
#ifndef TESSERA_DZI_H
#define TESSERA_DZI_H

#define TS_DZI_TILE 254   /* tile side without the overlap */
#define TS_DZI_OVERLAP 1  /* overlap pixels on each interior side */
#define TS_DZI_QUALITY 90 /* JPEG quality */

typedef struct ts_dzi ts_dzi;

/* Start a Deep Zoom folder dir for a w x h picture; name is the file stem ("poster":
 * dir/poster.dzi, dir/poster_files/; no '/').  Creates "dir.part" (a stale one from a
 * crashed run is removed first) and every level's folder.  Caller owns the handle and
 * must pass it to ts_dzi_close.  NULL with "dzi: ..." naming dir (w or h <= 0, a bad
 * name, dir not replaceable, cannot create, out of memory). */
ts_dzi *ts_dzi_open(const char *dir, const char *name, int w, int h);

/* The next rows [y, y + rows) of the picture, y being the rows given so far; band is
 * planar [3, rows, w] RGB in [0,1] (clamped; borrowed).  rows may be anything from 0
 * to the rows still missing.  Tiles whose rows are all in are written before it
 * returns.  0, or -1 with a message naming dir (the handle is then failed: further
 * bands fail, ts_dzi_close removes the .part tree). */
int ts_dzi_band(ts_dzi *z, const float *band, int rows);

/* Finish: with abort 0 and every row given, write NAME.dzi, index.html and the viewer
 * files, make the tree durable and publish it as dir.  With abort 1, after an earlier
 * error or with rows missing, remove "dir.part" instead (dir from an earlier run is
 * left as it was).  Frees z in every case; NULL does nothing and returns 0.  0, or -1
 * with a message naming dir (for abort 1: 0 unless the removal failed). */
int ts_dzi_close(ts_dzi *z, int abort);

#endif
