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

/* g = F F^T / (c * hw); f: [c, hw], g: [c, c]. */
void ts_gram(const float *f, int c, int hw, float *g);

/* Style term against target t [c, c].  ws: [c, c] workspace (holds G, then dL/dG).
 * grad (may be NULL): [c, hw], grad += weight * d/df. */
double ts_loss_style(const float *f, int c, int hw, const float *t, float weight,
                     float *ws, float *grad);

/* Total variation of x [3, h, w].  grad (may be NULL): grad += weight * d/dx. */
double ts_loss_tv(const float *x, int h, int w, float weight, float *grad);

#endif
