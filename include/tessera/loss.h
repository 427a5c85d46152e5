/* loss: the terms of the objective (DESIGN.md), each returning its raw (unweighted)
 * value and adding weight * d(term)/d(input) into a gradient buffer.
 *
 *   content  mean((F - P)^2)                       over all C*H*W elements
 *   Gram     G = F F^T / (C * H * W)                F: [C, H*W]
 *   style    mean((G - T)^2)                        over all C*C elements
 *   TV       mean((x[i,j+1]-x[i,j])^2) + mean((x[i+1,j]-x[i,j])^2)   per channel
 *            differences, each mean over all 3*H*(W-1) resp. 3*(H-1)*W of them
 *
 * Nothing here allocates: the caller passes workspaces. */
#ifndef TESSERA_LOSS_H
#define TESSERA_LOSS_H

#include <stddef.h>

/* f, p: [n].  grad (may be NULL): grad += weight * d/df. */
double ts_loss_content(const float *f, const float *p, size_t n, float weight, float *grad);

/* Workspace floats of ts_gram for f: [c, hw]. */
size_t ts_gram_ws_floats(int c, int hw);
/* g = F F^T / (c * hw); f: [c, hw], g: [c, c].  The work is split in items fixed by
 * the shape, so the bits do not depend on the thread count: for many channels, row
 * panels of the upper triangle (syrk + gemm each, no workspace); for few, blocks
 * along hw (syrk per block, partial Grams in ws summed in block order). */
void ts_gram(const float *f, int c, int hw, float *g, float *ws);
/* ts_gram with g = scale * F F^T (scale 1: the raw sums, a block's partial Gram). */
void ts_gram_scaled(const float *f, int c, int hw, float scale, float *g, float *ws);

/* Workspace floats of ts_loss_style for f: [c, hw]. */
size_t ts_loss_style_ws_floats(int c, int hw);
/* Style term against target t [c, c].  ws: ts_loss_style_ws_floats() floats (holds G,
 * then dL/dG, and the Gram's partial sums).
 * grad (may be NULL): [c, hw], grad += weight * d/df. */
double ts_loss_style(const float *f, int c, int hw, const float *t, float weight,
                     float *ws, float *grad);
/* ts_loss_style, and where its gradient kernel can do it on the way (few channels,
 * AVX-512), the backward pass of the ReLU whose output f is: grad = 0 where f <= 0.
 * relu: 1 on entry asks for it; on return 1 if it was done, 0 if the caller still has
 * to apply the mask. */
double ts_loss_style_masked(const float *f, int c, int hw, const float *t, float weight,
                            float *ws, float *grad, int *relu);

/* Total variation of x [3, h, w].  grad (may be NULL): grad += weight * d/dx. */
double ts_loss_tv(const float *x, int h, int w, float weight, float *grad);

/* Total variation of the colour of x [3, h, w] alone: the same means of squared
 * neighbour differences as ts_loss_tv over the two chroma channels Cb, Cr of BT.601
 * (ts_loss_chroma_cb, _cr: their rows of the RGB -> YCbCr matrix), not over R, G, B.
 * A luma step costs nothing.  grad (may be NULL): grad += weight * d/dx. */
double ts_loss_tv_chroma(const float *x, int h, int w, float weight, float *grad);
extern const float ts_loss_chroma_cb[3], ts_loss_chroma_cr[3];

/* Wall seconds this process has spent inside the three loss functions above (Gram
 * matrices and their gradients included): the "losses" share of the renderer's and
 * the benchmark's time breakdown. */
double ts_loss_seconds(void);

#endif
