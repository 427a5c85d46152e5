/* resample: separable cubic resampling of a sw x sh picture to dw x dh, computed for
 * any output rectangle.  Every output pixel depends only on its absolute coordinates
 * and the source, with a fixed order of summation, so a region computes bit for bit
 * what the whole picture would hold there: tiles, ranks and resumed runs agree.
 *
 * Kernel: Keys cubic (a = -0.5), widened by the scale when shrinking (antialiased);
 * pixel centres at (i + 0.5) * sw / dw - 0.5; edges clamp. */
#ifndef TESSERA_RESAMPLE_H
#define TESSERA_RESAMPLE_H

/* Fill out [3, h, w] with the source rectangle (x, y, w, h) (inside the source). */
typedef int (*ts_region_fn)(void *user, int x, int y, int w, int h, float *out);

/* The source rectangle [*sx0, *sx1) x [*sy0, *sy1) that output rectangle
 * (x, y, w, h) of a dw x dh resampling reads. */
void ts_resample_source(int sw, int sh, int dw, int dh, int x, int y, int w, int h,
                        int *sx0, int *sy0, int *sx1, int *sy1);

/* out [3, h, w] = rectangle (x, y, w, h) of the sw x sh source resampled to dw x dh.
 * read is called once, for ts_resample_source's rectangle.  Allocates its workspace
 * (sized by the rectangle).  0, or -1 with a message. */
int ts_resample_region(ts_region_fn read, void *user, int sw, int sh, int dw, int dh,
                       int x, int y, int w, int h, float *out);

/* Bytes of ts_resample_region's workspace for a w x h rectangle of a dw x dh picture
 * made from sw x sh (the source rectangle and the rows filtered), at its largest. */
double ts_resample_bytes(int sw, int sh, int dw, int dh, int w, int h);

/* Convenience: region of an in-memory planar [3, sh, sw] picture. */
int ts_resample_planar(const float *src, int sw, int sh, int dw, int dh, int x, int y,
                       int w, int h, float *out);

/* --- margins (--margin): a picture rendered beyond its true borders ---
 *
 * Outside a w x h picture, pixel i of a row (or column) is pixel ts_mirror_index(i, n)
 * of it: the picture mirrored about each border with the edge repeated (x[-1] = x[0],
 * x[n] = x[n-1]), folded again where a margin is wider than the picture. */

/* i folded into 0..n-1 (n >= 1) */
int ts_mirror_index(int i, int n);

/* dst [3, h + t + b, w + l + r] = src [3, h, w] with margins l, t, r, b mirrored in */
void ts_margin_extend(const float *src, int w, int h, int l, int t, int r, int b,
                      float *dst);

/* dst [3, h, w] = the picture inside src [3, h + t + b, w + l + r] */
void ts_margin_cut(const float *src, int w, int h, int l, int t, int r, int b, float *dst);

/* out [3, h, w] = rectangle (x, y, w, h) of a pw x ph picture read by fn, where the
 * rectangle may reach beyond the picture: outside it, the mirrored pixels.  fn is
 * called once, for the smallest rectangle of the picture holding every pixel needed
 * (the rectangle itself when it is inside).  0, or -1 with a message. */
int ts_region_mirrored(ts_region_fn fn, void *user, int pw, int ph, int x, int y, int w,
                       int h, float *out);

#endif
