/* pool: the elementwise and pooling layers of the network: ReLU and 2x2 stride-2
 * pooling (average or max), with the pool's bytes (ts_pool_forward_idx) that let the
 * backward pass skip the inputs and fuse the ReLU's backward pass.
 *
 * All tensors are single images in planar layout [C, H, W], float32.  Nothing here
 * allocates; work is split per channel over the ts_par threads, so the bits do not
 * depend on the thread count. */
#ifndef TESSERA_POOL_H
#define TESSERA_POOL_H

#include <stddef.h>

typedef enum ts_pool_mode { TS_POOL_AVG = 0, TS_POOL_MAX = 1 } ts_pool_mode;

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
/* ts_pool_forward, also writing idx [c, h/2, w/2]: per output, bit k (the 2x2 window
 * in row-major order) set when input k is > 0, and for max pooling the position of the
 * window's maximum (0..3, the one ts_pool_backward gives the gradient to) in bits 4-5. */
void ts_pool_forward_idx(const float *x, int c, int h, int w, float *y, unsigned char *idx,
                         ts_pool_mode mode);
/* One output row of ts_pool_forward_idx from input rows a and b (ow windows). */
void ts_pool_rows_idx(const float *a, const float *b, int ow, ts_pool_mode mode, float *y,
                      unsigned char *idx);
/* One input row of ts_pool_backward_idx (row 2 i + odd, from the pool's row i of idx
 * and dy): out[0, 2 ow); the one routine behind the pool's and the fused backward. */
void ts_pool_grad_row(const unsigned char *idx, const float *g, int ow, ts_pool_mode mode,
                      int relu, int odd, float *out);
/* ts_pool_backward from idx instead of x; with relu, also the backward pass of a ReLU
 * before the pool (x its output): only inputs > 0 get a gradient.  The same bits as
 * ts_pool_backward followed by the mask. */
void ts_pool_backward_idx(const unsigned char *idx, const float *dy, int c, int h, int w,
                          float *dx, ts_pool_mode mode, int relu);

#endif
