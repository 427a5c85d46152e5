/* conv: 3x3 convolution (pad 1, stride 1) forward and input-gradient backward as
 * im2col + sgemm over column chunks, and the prepared convolutions the network runs.
 * ReLU and pooling are in pool.h, the sgemm wrappers in blas.h (both included here,
 * so that a user of conv.h sees the whole family).
 *
 * All tensors are single images in planar layout [C, H, W], float32.  Nothing here
 * allocates: the caller passes a workspace of ts_conv_ws_floats() floats, whose size
 * is bounded (columns are processed in chunks), so a large tile does not need a
 * [9*IC, H*W] im2col buffer.  BLAS is reached through blas.h. */
#ifndef TESSERA_CONV_H
#define TESSERA_CONV_H

#include <stddef.h>

#include "tessera/blas.h"
#include "tessera/pool.h"

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

/* Threads the kernels use from now on (see par.h; n < 1: the default). */
void ts_conv_set_threads(int n);

/* ---- Prepared convolutions: what the network runs --------------------------------
 *
 * A ts_conv_op is one 3x3 convolution (pad 1) with its weights laid out for the
 * algorithm that suits its channel counts:
 *  - TS_CONV_IM2COL: im2col + sgemm on row chunks (for 3-channel input or output
 *    where TS_CONV_DIRECT is not built in);
 *  - TS_CONV_DIRECT: a direct AVX-512 kernel, row by row, for few channels on one
 *    side (VGG's first convolution and its adjoint; direct.c says why);
 *  - TS_CONV_WINO2 / TS_CONV_WINO4: Winograd F(2x2,3x3) / F(4x4,3x3) (Lavin & Gray
 *    2016): the weights are transformed once (in double, rounded to float), input
 *    tiles are transformed to [alpha^2, ic, T] and output tiles come from alpha^2
 *    sgemm products [oc, ic] x [ic, T].  F(4x4) does 4x fewer multiplications than
 *    direct convolution; its float32 error is measured in test_conv and test_parity.
 * An adjoint op computes the input gradient of a convolution: the convolution of dy
 * with the kernel transposed (in <-> out) and rotated by 180 degrees, so backward
 * passes run through the same fast kernels.  Work is split in items fixed by the
 * shapes and spread over the ts_par threads; nothing allocates. */
typedef enum ts_conv_algo {
	TS_CONV_AUTO = 0,
	TS_CONV_IM2COL,
	TS_CONV_WINO2,
	TS_CONV_WINO4,
	TS_CONV_DIRECT,
} ts_conv_algo;

typedef struct ts_conv_op {
	int ic, oc;            /* channels in and out of this op (swapped for an adjoint) */
	ts_conv_algo algo;     /* never AUTO once prepared */
	const float *bias;     /* [oc] or NULL (borrowed); always NULL for an adjoint */
	float *w;              /* IM2COL: [oc, ic*9]; WINO: [alpha^2, oc, ic] (caller's) */
} ts_conv_op;

/* The algorithm AUTO resolves to for these channel counts. */
ts_conv_algo ts_conv_pick(int ic, int oc);
/* Floats of prepared weights for an op with these channels (algo not AUTO). */
size_t ts_conv_op_weight_floats(int ic, int oc, ts_conv_algo algo);
/* Prepare op for the convolution wt [oc, ic, 3, 3] + bias (adjoint = 0) or for its
 * input gradient (adjoint = 1: op->ic = oc, op->oc = ic, no bias).  algo AUTO picks
 * by ts_conv_pick(op->ic, op->oc).  wmem holds ts_conv_op_weight_floats() floats
 * and must outlive op. */
void ts_conv_op_prepare(ts_conv_op *op, const float *wt, const float *bias, int ic, int oc,
                        int adjoint, ts_conv_algo algo, float *wmem);
/* What ts_conv_op_prepare sets in op, without computing the weights: wmem already
 * holds what it wrote for the same arguments (another process's, in shared memory). */
void ts_conv_op_attach(ts_conv_op *op, const float *bias, int ic, int oc, int adjoint,
                       ts_conv_algo algo, float *wmem);
/* Workspace floats op needs for an h x w image with the current thread count. */
size_t ts_conv_op_ws_floats(const ts_conv_op *op, int h, int w);
/* y [op->oc, h, w] = op(x [op->ic, h, w]); with relu, y = max(y, 0).  If mask is not
 * NULL, x is read as x * (mask > 0) (mask has x's shape: a ReLU's output, whose
 * backward pass is thereby fused in).  y must not alias x or mask. */
void ts_conv_op_run(const ts_conv_op *op, const float *x, const float *mask, int h, int w,
                    float *y, int relu, float *ws, size_t ws_floats);
/* The pooling after this conv's ReLU, fused: py [op->oc, h/2, w/2] and pidx are what
 * ts_pool_forward_idx(relu(op(x))) gives; the conv's own output is never written.
 * Returns 0 when op's algorithm cannot (Winograd ops can), 1 when done. */
int ts_conv_op_run_pool(const ts_conv_op *op, const float *x, int h, int w, float *py,
                        unsigned char *pidx, ts_pool_mode mode, float *ws, size_t ws_floats);
/* The gradient a 2x2 pooling passes back, described instead of formed:
 * ts_pool_backward_idx(idx, dy, c, h, w, dx, mode, relu) would give dx [c, h, w]. */
typedef struct ts_pooled_grad {
	const float *dy;          /* [c, h/2, w/2] */
	const unsigned char *idx; /* the pool's bytes (ts_pool_forward_idx) */
	ts_pool_mode mode;
	int relu;
} ts_pooled_grad;
/* y = op(dx) for that dx, which is never written: the op forms it on its way in
 * (Winograd ops: in the input transform), saving the pass that writes dx and the one
 * that reads it back.  Returns 0 when op's algorithm cannot (the caller then forms
 * dx and calls ts_conv_op_run), 1 when done.  The same bits as that. */
int ts_conv_op_run_pooled(const ts_conv_op *op, const ts_pooled_grad *pg, int h, int w,
                          float *y, int relu, float *ws, size_t ws_floats);
/* Wall seconds this process has spent inside ts_conv_op_run (for the share of time
 * outside convolution that the benchmark and the renderer's log report). */
double ts_conv_seconds(void);

#endif
