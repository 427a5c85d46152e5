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

/* What a convolution reads outside the image (the one-pixel border of every 3x3
 * convolution of the network, --padding): zeros (VGG's and PyTorch's Conv2d default),
 * the mirror image without the edge (x[-1] = x[1], x[n] = x[n-2]: PyTorch's
 * "reflect"), or the edge pixel repeated (x[-1] = x[0]: "replicate").  A side of one
 * pixel cannot be mirrored; reflect then repeats it (ts_pad_src). */
typedef enum ts_pad_mode { TS_PAD_ZERO = 0, TS_PAD_REFLECT = 1, TS_PAD_REPLICATE = 2 } ts_pad_mode;

/* The index inside [0, n) that padded index q (-1 or n, or inside) reads. */
static inline int
ts_pad_src(int q, int n, ts_pad_mode pad)
{
	if (q >= 0 && q < n)
		return q;
	if (pad == TS_PAD_REFLECT && n >= 2)
		return q < 0 ? 1 : n - 2;
	return q < 0 ? 0 : n - 1;
}

typedef struct ts_conv_op {
	int ic, oc;            /* channels in and out of this op (swapped for an adjoint) */
	ts_conv_algo algo;     /* never AUTO once prepared */
	const float *bias;     /* [oc] or NULL (borrowed); always NULL for an adjoint */
	float *w;              /* IM2COL: [oc, ic*9]; WINO: [alpha^2, oc, ic] (caller's) */
	int adjoint;           /* the input gradient of a convolution (set by prepare) */
	ts_pad_mode pad;       /* ZERO unless ts_conv_op_set_padding */
	const float *border;   /* pad != ZERO: the convolution's taps [9, oc, ic] of the
	                        * forward convolution (ts_conv_border_prepare; borrowed) */
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
/* Padding other than zeros (see ts_pad_mode).  The kernels all pad with zeros; the
 * difference at the image's border is one more operator on the border pixels: the
 * taps that read outside the image, fed the pixels the padding copies (forward), and
 * its transpose, which folds the gradient of the padded positions back onto the
 * pixels they copy (adjoint).  Winograd forward ops read the padding in their input
 * transform instead (so the fused pooling stays).  Both are sgemm products over the
 * border rows and columns, from the taps laid out tap by tap:
 * ts_conv_border_prepare writes border [9, oc, ic] (ts_conv_border_floats floats) for
 * wt [oc, ic, 3, 3]; ts_conv_op_set_padding gives it to the forward op and to the
 * adjoint op of that wt (border is borrowed, must outlive op).  Call it after
 * prepare / attach, which reset op to zero padding. */
size_t ts_conv_border_floats(int ic, int oc);
void ts_conv_border_prepare(const float *wt, int ic, int oc, float *border);
void ts_conv_op_set_padding(ts_conv_op *op, ts_pad_mode pad, const float *border);

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
