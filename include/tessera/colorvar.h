/* colorvar: the optimizer's variables as luma and chroma (a change of variables).
 *
 * The image x [3, h, w] (RGB) is a pointwise linear map of the variables v [3, h, w]:
 *
 *   v = (Y, Cb / s, Cr / s)          (BT.601 YCbCr of x, chroma divided by s)
 *   x = A v,  A = YCbCr->RGB * diag(1, s, s)
 *
 * With s < 1 a step of the optimizer moves the colour s^2 as far as the luma for the
 * same gradient (the gradient in v is A^T dL/dx): a preconditioner that keeps the
 * colour from picking up the high-frequency noise a random network's gradient
 * injects, while the objective (and its parity with PyTorch) is unchanged.  The map
 * is per pixel, so a tile, a block of --gram global or the whole picture see the same
 * variables for the same pixel. */
#ifndef TESSERA_COLORVAR_H
#define TESSERA_COLORVAR_H

#include <stddef.h>

typedef struct ts_colorvar {
	float a[3][3];   /* x = a v (per pixel) */
	float inv[3][3]; /* v = inv x */
} ts_colorvar;

/* The map for chroma scale s > 0. */
void ts_colorvar_init(ts_colorvar *m, double s);

/* x = A v over plane pixels a channel (x and v [3, plane], distinct). */
void ts_colorvar_to_image(const ts_colorvar *m, const float *v, float *x, size_t plane);
/* v = A^-1 x. */
void ts_colorvar_from_image(const ts_colorvar *m, const float *x, float *v, size_t plane);
/* gv = A^T gx: the gradient in the variables from the image's. */
void ts_colorvar_adjoint(const ts_colorvar *m, const float *gx, float *gv, size_t plane);

#endif
