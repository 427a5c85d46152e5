/* content: the content picture of a job, fitted to the output's shape and kept as a
 * pyramid of tiled TIFFs, so that no rank ever reads more of it than a tile's region.
 *
 * Fit (--fit): an output whose shape differs from the content's meets it on a
 * "canvas" of the output's aspect ratio, in the content's own pixels:
 *   crop     the largest centred rectangle of the content with the output's shape;
 *   pad      the content centred on a larger canvas, the rest white (a print's margin);
 *   stretch  the canvas is the content (each axis scaled alone).
 * A shape within a pixel of the content's is the content itself, whatever the mode.
 *
 * Pyramid: JOB/content/P0.tif is the canvas (the content's bits, 8 or 16), each P<k>
 * the one above shrunk by 2 (sizes rounded up) with the resampler's antialiased cubic
 * (resample.h), 16-bit, down to the last level still at least the smallest render
 * level; JOB/content/pyramid.ini, written last and atomically, names the job's key and
 * the levels.  P0 is made by streaming the input (ts_image_reader: PNG and JPEG by
 * scanline, TIFF by rectangles), each lower level region by region from the one above:
 * memory is a band of 256 canvas rows (plus the input's row buffer), whatever the size.
 * A render level of w x h reads from the smallest P<k> at least w x h: a region of a
 * tile reads at most about twice the tile's side (plus the filter's taps) of it. */
#ifndef TESSERA_CONTENT_H
#define TESSERA_CONTENT_H

#include <stdint.h>

#include "tessera/config.h"
#include "tessera/image.h"

typedef struct ts_fit {
	int w, h;   /* canvas size, in content pixels */
	int ox, oy; /* content pixel of canvas pixel (0, 0): >= 0 crops, < 0 pads */
	int fitted; /* 0: the canvas is the content (same shape, or stretch) */
} ts_fit;

/* The canvas of a cw x ch content for an ow x oh output under mode. */
void ts_fit_geometry(int cw, int ch, int ow, int oh, ts_fit_mode mode, ts_fit *f);

/* What the fit did, in words ("crop 4000x3000 to 3000x3000 at (500, 0)"), for the
 * plan and the log; "" when the canvas is the content. */
void ts_fit_describe(const ts_fit *f, int cw, int ch, ts_fit_mode mode, char *buf,
                     size_t size);

/* The canvas of an in-memory content (a new image; bits kept).  NULL with a message. */
ts_image *ts_fit_image(const ts_image *content, const ts_fit *f);

/* The decoder's own shrinking for a cw x ch content file rendered at ow x oh under
 * mode: the largest of 8, 4, 2 whose decoded size (*sw x *sh) still makes a canvas of
 * at least ow x oh (a JPEG of orientation 1, decoded by libjpeg-turbo's scaled DCT,
 * ts_image_reader_open_scaled); 1 with the size unchanged where the format cannot or
 * the output is too large.  -1 with a message when the file cannot be read. */
int ts_content_decode_scale(const char *path, int cw, int ch, int ow, int oh,
                            ts_fit_mode mode, int *sw, int *sh);

typedef struct ts_pyramid ts_pyramid;

/* Make JOB/content/ for the content file at path, decoded at 1/denom (1, or what
 * ts_content_decode_scale chose; fit is in the decoded pixels), down to min_w x min_h,
 * or reuse it when its pyramid.ini names key.  *reused says which (may be NULL).  0,
 * or -1 with a message naming the file (a corrupt input, a full disk: nothing left
 * under a real name but what was finished). */
int ts_pyramid_build(const char *job_dir, const char *path, int denom, const ts_fit *fit,
                     int min_w, int min_h, const char *key, int *reused);

/* Open JOB/content/ made for key.  NULL with a message when it is missing or was made
 * for another key. */
ts_pyramid *ts_pyramid_open(const char *job_dir, const char *key);
void ts_pyramid_close(ts_pyramid *p);

/* Levels, and the size of level k (0: the canvas). */
int ts_pyramid_levels(const ts_pyramid *p);
void ts_pyramid_size(const ts_pyramid *p, int k, int *w, int *h);
/* The level a dw x dh picture reads from. */
int ts_pyramid_pick(const ts_pyramid *p, int dw, int dh);

/* out [3, h, w] = the rectangle (x, y, w, h) of the canvas resampled to dw x dh, from
 * the level ts_pyramid_pick chooses.  Not thread-safe (one reader a level). */
int ts_pyramid_region(ts_pyramid *p, int dw, int dh, int x, int y, int w, int h,
                      float *out);

/* Bytes the pyramid of a w x h canvas down to min_w x min_h takes on disk, at most
 * (uncompressed samples), and the number of levels. */
double ts_pyramid_disk_bytes(int w, int h, int bits, int min_w, int min_h, int *levels);

/* For a pyramid not made yet (--plan): the size of the level a dw x dh picture reads,
 * and rank 0's peak bytes while making the pyramid of a cw-wide content. */
void ts_pyramid_plan_pick(int w, int h, int min_w, int min_h, int dw, int dh, int *pw,
                          int *ph);
double ts_pyramid_build_bytes(int cw, const ts_fit *f);

#endif
