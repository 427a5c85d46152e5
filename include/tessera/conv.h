/* conv: the numeric kernels of the network: 3x3 convolution (pad 1, stride 1)
 * forward and input-gradient backward as im2col + sgemm over column chunks,
 * ReLU, 2x2 stride-2 pooling (average or max), and a row-major sgemm wrapper.
 *
 * All tensors are single images in planar layout [C, H, W], float32.  Nothing here
 * allocates: the caller passes a workspace of ts_conv_ws_floats() floats, whose size
 * is bounded (columns are processed in chunks), so a large tile does not need a
 * [9*IC, H*W] im2col buffer.  Only conv.c includes cblas.h. */
#ifndef TESSERA_CONV_H
#define TESSERA_CONV_H

#include <stddef.h>

typedef enum ts_pool_mode { TS_POOL_AVG = 0, TS_POOL_MAX = 1 } ts_pool_mode;

/* Floats of workspace that ts_conv3x3_forward/backward need for these shapes. */
size_t ts_conv_ws_floats(int ic, int oc, int h, int w);

/* y = conv3x3(x, wt) + bias.
 * x: [ic, h, w]; wt: [oc, ic, 3, 3]; bias: [oc] (may be NULL); y: [oc, h, w]
 * (overwritten; must not alias x); ws: ws_floats >= ts_conv_ws_floats(). */
void ts_conv3x3_forward(const float *x, int ic, int h, int w, const float *wt,
                        const float *bias, int oc, float *y, float *ws, size_t ws_floats);

/* dx = d(loss)/dx given dy = d(loss)/dy for y = conv3x3(x, wt) + bias.
 * dy: [oc, h, w]; wt: [oc, ic, 3, 3]; dx: [ic, h, w] (overwritten). */
void ts_conv3x3_backward(const float *dy, int oc, int h, int w, const float *wt, int ic,
                         float *dx, float *ws, size_t ws_floats);

/* In place: x = max(x, 0). */
void ts_relu_forward(float *x, size_t n);
/* dy *= (y > 0), where y is the ReLU output (y > 0 exactly where the input was). */
void ts_relu_backward(const float *y, float *dy, size_t n);

/* 2x2 stride 2 pooling, floor mode (an odd last row/column is dropped, as PyTorch).
 * x: [c, h, w]; y: [c, h/2, w/2]. */
void ts_pool_forward(const float *x, int c, int h, int w, float *y, ts_pool_mode mode);
/* dx: [c, h, w] (overwritten; dropped rows/columns get 0); x is the forward input
 * (read only for max pooling: the gradient goes to the first maximum). */
void ts_pool_backward(const float *x, const float *dy, int c, int h, int w, float *dx,
                      ts_pool_mode mode);

/* Threads OpenBLAS uses from now on (n >= 1). */
void ts_conv_set_threads(int n);

/* Row-major C = alpha * op(A) op(B) + beta * C; op transposes when trans is nonzero.
 * op(A): [m, k], op(B): [k, n], C: [m, n] with leading dimensions lda, ldb, ldc. */
void ts_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc);

#endif
