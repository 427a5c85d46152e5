/* direct: the direct 3x3 convolution of conv.c for ops with few channels on one side
 * (ts_conv_op with algo TS_CONV_DIRECT: VGG's first convolution, 3 -> 64, and its
 * adjoint, 64 -> 3).  Internal to the library: callers use ts_conv_op_prepare /
 * ts_conv_op_run. */
#ifndef TESSERA_DIRECT_H
#define TESSERA_DIRECT_H

#include "tessera/conv.h"

/* Whether the vector kernel is built in (AVX-512); without it the op runs plain C
 * loops (correct, not fast) and ts_conv_pick never picks it. */
int ts_direct_fast(void);

/* Workspace floats of ts_direct_run on an h x w image (used with a mask: each item's
 * masked copy of the rows it reads). */
size_t ts_direct_ws_floats(const ts_conv_op *op, int h, int w);

/* y = op(x) (see ts_conv_op_run); op->w is [oc, ic * 9] as for TS_CONV_IM2COL. */
void ts_direct_run(const ts_conv_op *op, const float *x, const float *mask, int h, int w,
                   float *y, int relu, float *ws, size_t ws_floats);

#endif
