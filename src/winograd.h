/* winograd: Winograd F(4x4, 3x3) and F(2x2, 3x3) for the prepared convolutions of
 * conv.c (ts_conv_op with algo TS_CONV_WINO4 or TS_CONV_WINO2).  Internal to the
 * library: callers use ts_conv_op_prepare / ts_conv_op_run. */
#ifndef TESSERA_WINOGRAD_H
#define TESSERA_WINOGRAD_H

#include <stddef.h>

#include "tessera/conv.h"

/* Output tile side m of a Winograd algorithm (alpha = m + 2). */
int ts_wino_m(ts_conv_algo algo);

/* Transform the kernels g[tap][c] (tap = ky * 3 + kx) from op input channels
 * [c0, c0 + nc), nc <= 64, to op output channel o into op->w ([alpha^2, oc, ic]). */
void ts_wino_prepare_block(const ts_conv_op *op, int o, int c0, int nc,
                           const double g[9][64]);

/* Workspace floats of ts_wino_run on an h x w image. */
size_t ts_wino_ws_floats(const ts_conv_op *op, int h, int w);

/* y = op(x) (see ts_conv_op_run). */
void ts_wino_run(const ts_conv_op *op, const float *x, const float *mask, int h, int w,
                 float *y, int relu, float *ws, size_t ws_floats);
/* y = relu(op(x)) pooled (see ts_conv_op_run_pool). */
void ts_wino_run_pool(const ts_conv_op *op, const float *x, int h, int w, float *py,
                      unsigned char *pidx, ts_pool_mode mode, float *ws, size_t ws_floats);
/* The same on the gradient a pooling passes back (see ts_conv_op_run_pooled). */
void ts_wino_run_pooled(const ts_conv_op *op, const ts_pooled_grad *pg, int h, int w,
                        float *y, int relu, float *ws, size_t ws_floats);

#endif
