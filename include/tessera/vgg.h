/* vgg: the VGG-19 layer table, the weights, and a forward/backward "run" that keeps
 * one image's activations for the input-gradient pass.
 *
 * Layer table (37 entries, index order): conv1_1 relu1_1 conv1_2 relu1_2 pool1
 * conv2_1 relu2_1 conv2_2 relu2_2 pool2 conv3_1 relu3_1 ... conv3_4 relu3_4 pool3
 * conv4_1 ... relu4_4 pool4 conv5_1 ... relu5_4 pool5.  Only layers up to the
 * deepest one in use are evaluated; no weight gradients are ever computed.
 *
 * Input convention: the image is planar RGB in [0,1]; ts_vgg_forward maps it to what
 * the weights expect (torchvision: (x - mean) / std; Caffe: BGR, 255 * x - mean pixel)
 * and ts_vgg_backward maps the gradient back through that step. */
#ifndef TESSERA_VGG_H
#define TESSERA_VGG_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/conv.h"

#define TS_VGG_NLAYERS 37
#define TS_VGG_NCONV 16

typedef enum ts_layer_kind { TS_LAYER_CONV, TS_LAYER_RELU, TS_LAYER_POOL } ts_layer_kind;
typedef enum ts_input_mode { TS_INPUT_TORCH = 0, TS_INPUT_CAFFE = 1 } ts_input_mode;

/* Index of a layer name ("relu4_2"), or -1 if there is no such layer. */
int ts_vgg_layer_index(const char *name);
/* Name / kind of layer idx (0 <= idx < TS_VGG_NLAYERS). */
const char *ts_vgg_layer_name(int idx);
ts_layer_kind ts_vgg_layer_kind(int idx);
/* Index (0..15) of the convolution that layer idx is or follows (conv4_2 and relu4_2
 * both give 9); for a pool, the conv before it. */
int ts_vgg_layer_conv(int idx);
/* Number of 2x2 poolings before layer idx (the layer's resolution is 1/2^that). */
int ts_vgg_layer_pools(int idx);

typedef struct ts_vgg {
	int nconv;                /* convolutions present (1..16): the file may stop early */
	int in_ch[TS_VGG_NCONV];  /* input channels of conv i (in_ch[0] = 3) */
	int out_ch[TS_VGG_NCONV]; /* output channels of conv i (in_ch[i+1] = out_ch[i]) */
	float *w[TS_VGG_NCONV];   /* [out_ch, in_ch, 3, 3], views into mem */
	float *b[TS_VGG_NCONV];   /* [out_ch], views into mem */
	ts_input_mode input;      /* how an RGB [0,1] image becomes the network input */
	float mean[3];            /* TORCH: ImageNet mean (RGB); CAFFE: mean pixel (BGR, 0-255) */
	float std[3];             /* TORCH: ImageNet std (RGB); unused for CAFFE */
	float *mem;               /* owns all weights */
	/* ts_vgg_prepare: convolutions 0..nprep-1 laid out once for every run of the net
	 * (their ops, forward and adjoint, with the weights at prep_mem) */
	int nprep;
	ts_conv_op prep_fwd[TS_VGG_NCONV], prep_adj[TS_VGG_NCONV];
	float *prep_own;          /* the prepared weights when the net owns them, or NULL */
	/* ts_vgg_set_padding: what every convolution reads outside the image */
	ts_pad_mode pad;          /* ZERO unless set */
	float *border[TS_VGG_NCONV]; /* pad != ZERO: conv i's taps [9, out_ch, in_ch] */
	float *border_mem;        /* owns them */
} ts_vgg;

/* A network of nconv convolutions with these output channels (in_ch chained from 3),
 * weights zeroed, input mode TORCH with ImageNet mean/std.  Caller owns; NULL on
 * error (out of memory, bad channel counts). */
ts_vgg *ts_vgg_alloc(int nconv, const int *out_ch);

/* The built-in network: full VGG-19 shape with channels divided by width_div (1 =
 * 64..512; 8 = 8..64 for tests), weights drawn from tessera's own seeded generator
 * (identical on every machine), He-scaled so activations neither vanish nor explode
 * through the 16 layers with average pooling.  Caller owns. */
ts_vgg *ts_vgg_create_builtin(uint64_t seed, int width_div);

/* Frees everything; NULL does nothing. */
void ts_vgg_destroy(ts_vgg *net);

/* The padding of every convolution of the runs created after the call (conv.h's
 * ts_pad_mode; a net starts with ZERO, as VGG was trained).  Other than ZERO it lays
 * out each convolution's taps for the border operator (as much memory as the
 * weights), after the weights are final.  0, or -1 with a message (out of memory). */
int ts_vgg_set_padding(ts_vgg *net, ts_pad_mode pad);

/* Prepared weights (the layout each convolution's algorithm runs from: Winograd
 * transforms, forward and adjoint) are by default made by every run for itself.  At
 * 64..512 channels they are 400 MB up to conv5_1, more than the activations of a
 * 512 tile, so a process that creates several runs, or the ranks of one node, make
 * them once instead: ts_vgg_prepare lays out convolutions 0..nconv-1 at mem (NULL:
 * the net allocates it), computing them when compute is set; with compute 0 mem must
 * already hold what a ts_vgg_prepare with compute set wrote (another process of the
 * node, through shared memory).  Runs created after it that need no deeper
 * convolution use those weights (the same bits as their own).  mem, when given, must
 * hold ts_vgg_prepared_floats(net, nconv) floats, be 64-byte aligned and outlive the
 * net; the weights must not change after.  Call it before creating runs: a second
 * call frees what the first allocated, under the runs that use it.  0, or -1 with a
 * message (out of memory, nconv out of range). */
size_t ts_vgg_prepared_floats(const ts_vgg *net, int nconv);
int ts_vgg_prepare(ts_vgg *net, int nconv, float *mem, int compute);

/* One image's activations and workspace for forward + input-gradient backward at a
 * fixed size.  All buffers are allocated at creation; forward/backward allocate
 * nothing. */
typedef struct ts_vgg_run ts_vgg_run;

/* Prepare a run of net on h x w images through layers 0..last (inclusive).  tapped
 * [TS_VGG_NLAYERS] flags the layers whose features a loss reads (and whose gradient
 * it sets); at least the last layer must be tapped.  Borrows net (must outlive the
 * run).  Fails (NULL, message) when the net has too few convolutions for `last` or
 * the image is too small for the poolings before `last`. */
ts_vgg_run *ts_vgg_run_create(const ts_vgg *net, int h, int w, int last,
                              const unsigned char *tapped, ts_pool_mode pool);
void ts_vgg_run_destroy(ts_vgg_run *r);

/* A run that can be resized to any of nsizes image sizes hs[i] x ws[i] (the blocks of
 * a coupled level, whose sizes differ at the picture's borders): its memory is that
 * of the largest, and it starts at the first.  A run's results never depend on the
 * sizes it had before.  NULL with a message as ts_vgg_run_create. */
ts_vgg_run *ts_vgg_run_create_multi(const ts_vgg *net, int nsizes, const int *hs,
                                    const int *ws, int last, const unsigned char *tapped,
                                    ts_pool_mode pool);
/* Bytes of such a run (for --plan). */
size_t ts_vgg_run_bytes_multi(const ts_vgg *net, int nsizes, const int *hs, const int *ws,
                              int last, const unsigned char *tapped);
/* Take images of h x w from now on (the activations are then undefined until the
 * next forward).  0, or -1 with a message when the run's memory is too small for it
 * or the size too small for its layers. */
int ts_vgg_run_resize(ts_vgg_run *r, int h, int w);

/* Bytes a run of these settings would allocate (for --plan), without allocating: with
 * the net's prepared weights (ts_vgg_prepare) the run's own exclude them. */
size_t ts_vgg_run_bytes(const ts_vgg *net, int h, int w, int last,
                        const unsigned char *tapped);

/* Forward pass of img [3, h, w] (RGB in [0,1]). */
void ts_vgg_forward(ts_vgg_run *r, const float *img);

/* Wall seconds this process has spent in ts_vgg_forward / ts_vgg_backward outside the
 * convolutions and the losses run from the taps: the network's other layers (pooling,
 * ReLU copies and masks, the input mapping).  Main thread only. */
double ts_vgg_layers_seconds(void);
/* Wall seconds this process has spent on one layer: its forward pass, its backward
 * pass (the layer's own gradient: a conv's adjoint, a pool's or ReLU's backward), and
 * the losses tapped at it (run from the backward sweep).  Main thread only; for the
 * benchmark's profile. */
void ts_vgg_layer_seconds(int layer, double *fwd, double *bwd, double *tap);

/* Features of a tapped layer after ts_vgg_forward: [c, fh, fw]. */
const float *ts_vgg_feature(const ts_vgg_run *r, int layer, int *c, int *fh, int *fw);

/* What the backward sweep calls at each tapped layer, deepest first: feat [c, fh, fw]
 * are the layer's features from the forward pass, grad [c, fh, fw] holds d loss /
 * d feat of everything above the layer (zeros at the deepest one), and the callback
 * adds the gradient of its own losses of that layer into grad.  relu: the layer is a
 * ReLU (feat its output), whose backward pass comes next; the callback may do it
 * itself on the way (grad = 0 where feat <= 0, after adding its own) and return 1, so
 * that the sweep skips it.  Otherwise it returns 0. */
typedef int (*ts_vgg_tap_fn)(void *ctx, int layer, const float *feat, int c, int fh,
                             int fw, float *grad, int relu);

/* Back-propagate to the image, collecting the tapped layers' gradients from tap on
 * the way (so they cost no buffers of their own and no extra pass): dimg [3, h, w] is
 * overwritten with d(loss)/d(img) (img being RGB in [0,1]).  Needs the preceding
 * forward. */
void ts_vgg_backward(ts_vgg_run *r, ts_vgg_tap_fn tap, void *ctx, float *dimg);

#endif
