/* vgg: VGG-19 layer table, weights, and the forward/backward run (see vgg.h).
 *
 * Invariants of a run: every buffer is carved out of one allocation made at creation
 * (layout() both measures and places, so ts_vgg_run_bytes is exact); forward and
 * backward allocate nothing.  A convolution writes straight into its ReLU's buffer
 * (ReLU in place) unless the convolution itself is tapped, in which case its pre-ReLU
 * output is kept and the ReLU copies it.  ReLU outputs double as the masks of the
 * backward pass (y > 0 exactly where the input was > 0), applied by whoever touches
 * the gradient last (the conv's adjoint, a style term's kernel, or the pool above); a
 * convolution's backward needs only its weights; a pool keeps one byte per window
 * (which inputs were > 0, where the maximum was) and its backward reads only that.
 * Where neither a conv nor its ReLU is tapped and a pool follows, the three run as
 * one (pooled_after): the ReLU has no buffer, and backward the conv's adjoint forms
 * the pool's gradient itself.  Only tapped layers have gradient buffers; the backward
 * sweep runs in two ping-pong buffers of the largest layer.  One conv workspace
 * serves every layer.  The net's padding (ts_vgg_set_padding) is given to every op
 * with the net's border taps; the fusions above all stay (conv.h says how). */
#include "tessera/vgg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/loss.h"
#include "tessera/par.h"

static const char *const layer_names[TS_VGG_NLAYERS] = {
	"conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
	"conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
	"conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4",
	"pool3",
	"conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4",
	"pool4",
	"conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4",
	"pool5",
};

/* Full-width output channels of the 16 convolutions. */
static const int vgg19_channels[TS_VGG_NCONV] = {
	64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512,
};

int
ts_vgg_layer_index(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < TS_VGG_NLAYERS; i++)
		if (!strcmp(name, layer_names[i]))
			return i;
	return -1;
}

const char *
ts_vgg_layer_name(int idx)
{
	TS_ASSERT(idx >= 0 && idx < TS_VGG_NLAYERS);
	return layer_names[idx];
}

ts_layer_kind
ts_vgg_layer_kind(int idx)
{
	const char *n = ts_vgg_layer_name(idx);

	return n[0] == 'c' ? TS_LAYER_CONV : n[0] == 'r' ? TS_LAYER_RELU : TS_LAYER_POOL;
}

int
ts_vgg_layer_conv(int idx)
{
	int k = -1;

	TS_ASSERT(idx >= 0 && idx < TS_VGG_NLAYERS);
	for (int i = 0; i <= idx; i++)
		if (ts_vgg_layer_kind(i) == TS_LAYER_CONV)
			k++;
	return k;
}

int
ts_vgg_layer_pools(int idx)
{
	int p = 0;

	TS_ASSERT(idx >= 0 && idx < TS_VGG_NLAYERS);
	for (int i = 0; i < idx; i++)
		if (ts_vgg_layer_kind(i) == TS_LAYER_POOL)
			p++;
	return p;
}

ts_vgg *
ts_vgg_alloc(int nconv, const int *out_ch)
{
	ts_vgg *net = NULL, *ret = NULL;
	size_t total = 0;
	int in = 3;

	if (nconv < 1 || nconv > TS_VGG_NCONV) {
		ts_error("vgg", "%d convolutions (expected 1..%d)", nconv, TS_VGG_NCONV);
		goto cleanup;
	}
	for (int i = 0; i < nconv; i++) {
		if (out_ch[i] < 1 || out_ch[i] > 65536) {
			ts_error("vgg", "convolution %d has %d output channels (expected 1..65536)",
			         i, out_ch[i]);
			goto cleanup;
		}
	}
	if (!(net = calloc(1, sizeof *net))) {
		ts_error("vgg", "out of memory");
		goto cleanup;
	}
	net->nconv = nconv;
	for (int i = 0; i < nconv; i++) {
		net->in_ch[i] = in;
		net->out_ch[i] = out_ch[i];
		total += (size_t)out_ch[i] * in * 9 + (size_t)out_ch[i];
		in = out_ch[i];
	}
	/* mem: per conv, w [out, in, 3, 3] then b [out] */
	if (!(net->mem = calloc(total, sizeof(float)))) {
		ts_error("vgg", "out of memory for %zu weights", total);
		goto cleanup;
	}
	total = 0;
	for (int i = 0; i < nconv; i++) {
		net->w[i] = net->mem + total;
		total += (size_t)net->out_ch[i] * net->in_ch[i] * 9;
		net->b[i] = net->mem + total;
		total += (size_t)net->out_ch[i];
	}
	net->input = TS_INPUT_TORCH;
	net->mean[0] = 0.485f, net->mean[1] = 0.456f, net->mean[2] = 0.406f;
	net->std[0] = 0.229f, net->std[1] = 0.224f, net->std[2] = 0.225f;
	ret = net;
	net = NULL;
cleanup:
	ts_vgg_destroy(net);
	return ret;
}

/* splitmix64: tessera's own generator (integer arithmetic only). */
static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* An approximately standard normal deviate: the sum of twelve 16-bit uniforms
 * (Irwin-Hall, mean 0, variance 1 - 2^-32, bounded by +-6).  Everything up to the
 * final exact scaling is integer arithmetic, so the bits are the same on every
 * machine, compiler and libm (Box-Muller would depend on log/cos rounding). */
static double
normal12(uint64_t *s)
{
	int64_t sum = 0;

	for (int k = 0; k < 3; k++) {
		uint64_t u = splitmix64(s);

		sum += (int64_t)(u & 0xffff) + (int64_t)((u >> 16) & 0xffff) +
		       (int64_t)((u >> 32) & 0xffff) + (int64_t)(u >> 48);
	}
	/* 12 * 65535 / 2 = 393210; divide by 65536 (exact) */
	return (double)(sum - 393210) / 65536.0;
}

ts_vgg *
ts_vgg_create_builtin(uint64_t seed, int width_div)
{
	int ch[TS_VGG_NCONV];
	ts_vgg *net;

	if (width_div < 1) {
		ts_error("vgg", "width divisor %d (expected >= 1)", width_div);
		return NULL;
	}
	for (int i = 0; i < TS_VGG_NCONV; i++)
		ch[i] = vgg19_channels[i] / width_div > 0 ? vgg19_channels[i] / width_div : 1;
	if (!(net = ts_vgg_alloc(TS_VGG_NCONV, ch)))
		return NULL;
	/* He-normal, std sqrt(2 / (9 * in)): keeps the second moment of ReLU activations
	 * from layer to layer.  Each conv has its own stream (seed, layer), so a narrow
	 * or truncated network does not shift the others; sqrt and the products below
	 * are correctly rounded IEEE operations, so the weights are portable bits.
	 * Biases stay zero. */
	for (int i = 0; i < TS_VGG_NCONV; i++) {
		size_t n = (size_t)net->out_ch[i] * net->in_ch[i] * 9;
		double sd = sqrt(2.0 / (9.0 * net->in_ch[i]));
		uint64_t s = seed ^ 0x7465737365726121ULL; /* "tessera!" */

		s += 0x632be59bd9b4e019ULL * (uint64_t)(i + 1);
		splitmix64(&s);
		for (size_t k = 0; k < n; k++)
			net->w[i][k] = (float)(sd * normal12(&s));
	}
	return net;
}

void
ts_vgg_destroy(ts_vgg *net)
{
	if (!net)
		return;
	free(net->prep_own);
	free(net->border_mem);
	free(net->mem);
	free(net);
}

int
ts_vgg_set_padding(ts_vgg *net, ts_pad_mode pad)
{
	size_t n = 0, off = 0;

	TS_ASSERT(net);
	if (pad != TS_PAD_ZERO && pad != TS_PAD_REFLECT && pad != TS_PAD_REPLICATE) {
		ts_error("vgg", "unknown padding mode %d", (int)pad);
		return -1;
	}
	free(net->border_mem);
	net->border_mem = NULL;
	memset(net->border, 0, sizeof net->border);
	net->pad = TS_PAD_ZERO;
	if (pad == TS_PAD_ZERO)
		return 0;
	for (int i = 0; i < net->nconv; i++)
		n += ts_conv_border_floats(net->in_ch[i], net->out_ch[i]);
	if (!(net->border_mem = malloc(n * sizeof(float)))) {
		ts_error("vgg", "out of memory for the border taps (%.0f MiB)",
		         (double)n * sizeof(float) / 1048576.0);
		return -1;
	}
	for (int i = 0; i < net->nconv; i++) {
		net->border[i] = net->border_mem + off;
		ts_conv_border_prepare(net->w[i], net->in_ch[i], net->out_ch[i], net->border[i]);
		off += ts_conv_border_floats(net->in_ch[i], net->out_ch[i]);
	}
	net->pad = pad;
	return 0;
}

/* Floats of conv ci's prepared weights, forward and adjoint, each rounded up to a
 * 64-byte line. */
static size_t
prep_floats(const ts_vgg *net, int ci, int adjoint)
{
	int c = net->in_ch[ci], oc = net->out_ch[ci];
	size_t n = adjoint ? ts_conv_op_weight_floats(oc, c, ts_conv_pick(oc, c))
	                   : ts_conv_op_weight_floats(c, oc, ts_conv_pick(c, oc));

	return (n + 15) / 16 * 16;
}

size_t
ts_vgg_prepared_floats(const ts_vgg *net, int nconv)
{
	size_t n = 0;

	TS_ASSERT(net && nconv >= 0 && nconv <= net->nconv);
	for (int ci = 0; ci < nconv; ci++)
		n += prep_floats(net, ci, 0) + prep_floats(net, ci, 1);
	return n;
}

int
ts_vgg_prepare(ts_vgg *net, int nconv, float *mem, int compute)
{
	size_t off = 0;

	TS_ASSERT(net);
	if (nconv < 1 || nconv > net->nconv) {
		ts_error("vgg", "cannot prepare %d convolutions of a network of %d", nconv,
		         net->nconv);
		return -1;
	}
	if (!mem) {
		size_t n = ts_vgg_prepared_floats(net, nconv);
		float *own = aligned_alloc(64, n * sizeof(float));

		if (!own) {
			ts_error("vgg", "out of memory for the prepared weights (%.0f MiB)",
			         (double)n * sizeof(float) / 1048576.0);
			return -1;
		}
		free(net->prep_own);
		net->prep_own = mem = own;
		compute = 1;
	} else {
		free(net->prep_own);
		net->prep_own = NULL;
	}
	for (int ci = 0; ci < nconv; ci++) {
		int c = net->in_ch[ci], oc = net->out_ch[ci];

		if (compute) {
			ts_conv_op_prepare(&net->prep_fwd[ci], net->w[ci], net->b[ci], c, oc, 0,
			                   TS_CONV_AUTO, mem + off);
			ts_conv_op_prepare(&net->prep_adj[ci], net->w[ci], NULL, c, oc, 1,
			                   TS_CONV_AUTO, mem + off + prep_floats(net, ci, 0));
		} else {
			ts_conv_op_attach(&net->prep_fwd[ci], net->b[ci], c, oc, 0, TS_CONV_AUTO,
			                  mem + off);
			ts_conv_op_attach(&net->prep_adj[ci], NULL, c, oc, 1, TS_CONV_AUTO,
			                  mem + off + prep_floats(net, ci, 0));
		}
		off += prep_floats(net, ci, 0) + prep_floats(net, ci, 1);
	}
	net->nprep = nconv;
	return 0;
}

/* Zeroing of a big layer, split in fixed blocks over the ts_par threads. */
#define ZERO_BLOCK ((size_t)1 << 16)

struct zero_job {
	float *d;
	size_t n;
};

static void
zero_item(void *ctx, int b, int thread)
{
	const struct zero_job *j = ctx;
	size_t lo = (size_t)b * ZERO_BLOCK, hi = lo + ZERO_BLOCK < j->n ? lo + ZERO_BLOCK : j->n;

	(void)thread;
	memset(j->d + lo, 0, (hi - lo) * sizeof *j->d);
}

static void
zero(float *d, size_t n)
{
	struct zero_job j = { d, n };

	ts_par_for((int)((n + ZERO_BLOCK - 1) / ZERO_BLOCK), zero_item, &j);
}

struct ts_vgg_run {
	const ts_vgg *net;              /* borrowed */
	int h, w, last;                 /* image size; deepest layer evaluated */
	ts_pool_mode pool;
	unsigned char tapped[TS_VGG_NLAYERS];
	int c[TS_VGG_NLAYERS];          /* output shape of each layer: [c, lh, lw] */
	int lh[TS_VGG_NLAYERS], lw[TS_VGG_NLAYERS];
	float *in;                      /* [3, h, w] network input (after the mapping) */
	float *out[TS_VGG_NLAYERS];     /* [c, lh, lw] output of each layer (an untapped
	                                 * conv shares its ReLU's buffer) */
	unsigned char *pidx[TS_VGG_NLAYERS]; /* a pool's [c, lh, lw] bytes of what its inputs
	                                      * were (ts_pool_forward_idx) */
	float *g0, *g1;                 /* ping-pong [largest layer] for the sweep */
	ts_conv_op fwd[TS_VGG_NCONV];   /* each convolution, prepared for its algorithm */
	ts_conv_op adj[TS_VGG_NCONV];   /* and its input gradient */
	float *fwd_w[TS_VGG_NCONV], *adj_w[TS_VGG_NCONV]; /* their weights */
	float *ws;                      /* [ws_floats] conv workspace */
	size_t ws_floats;
	float *mem;                     /* owns every buffer above */
	size_t cap;                     /* floats at mem (the largest size it was made for) */
};

static size_t
layer_size(const ts_vgg_run *r, int i)
{
	return (size_t)r->c[i] * r->lh[i] * r->lw[i];
}

/* Whether conv i, its ReLU and a pool after it can run as one (ts_conv_op_run_pool):
 * neither the conv nor the ReLU tapped, so the ReLU's output is read by nobody but
 * the pool (backward, the pool's bytes stand for it). */
static int
pooled_after(const ts_vgg_run *r, int i)
{
	return i + 2 <= r->last && ts_vgg_layer_kind(i + 1) == TS_LAYER_RELU &&
	       ts_vgg_layer_kind(i + 2) == TS_LAYER_POOL && !r->tapped[i] && !r->tapped[i + 1] &&
	       r->lh[i] >= 2 && r->lw[i] >= 2;
}

/* Whether r runs on its net's prepared weights (ts_vgg_prepare covers its convs). */
static int
run_shares(const ts_vgg_run *r)
{
	return r->net->nprep > ts_vgg_layer_conv(r->last);
}

/* Fill the shapes of r (net, h, w, last, tapped set) and place its buffers in mem, or
 * only measure when mem is NULL.  Returns the floats needed. */
static size_t
layout(ts_vgg_run *r, float *mem)
{
	size_t off = 0, maxn = (size_t)3 * r->h * r->w, ws = 0;
	int c = 3, h = r->h, w = r->w, wino = 0; /* wino: the last conv is Winograd */
	int shared = run_shares(r) ? r->net->nprep : 0;

	/* every buffer starts on a 64-byte line (mem is aligned so), so rows of a
	 * width that is a multiple of 16 are aligned for the vector kernels */
#define TAKE(ptr, n)                                     \
	do {                                             \
		(ptr) = mem ? mem + off : NULL;           \
		off += ((n) + 15) / 16 * 16;             \
	} while (0)
	/* the weights first: their place does not depend on the size, so a run resized
	 * (ts_vgg_run_resize) keeps its prepared convolutions where they are */
	for (int i = 0, ci = 0, cc = 3; i <= r->last; i++) {
		if (ts_vgg_layer_kind(i) != TS_LAYER_CONV)
			continue;
		ci = ts_vgg_layer_conv(i);
		if (ci >= shared) {
			int oc = r->net->out_ch[ci];

			TAKE(r->fwd_w[ci], ts_conv_op_weight_floats(cc, oc, ts_conv_pick(cc, oc)));
			TAKE(r->adj_w[ci], ts_conv_op_weight_floats(oc, cc, ts_conv_pick(oc, cc)));
		}
		cc = r->net->out_ch[ci];
	}
	TAKE(r->in, (size_t)3 * h * w);
	for (int i = 0; i <= r->last; i++) {
		ts_layer_kind k = ts_vgg_layer_kind(i);
		size_t n;

		if (k == TS_LAYER_CONV) {
			int ci = ts_vgg_layer_conv(i), oc = r->net->out_ch[ci];
			ts_conv_op f = { c, oc, ts_conv_pick(c, oc), NULL, NULL, 0, r->net->pad, NULL };
			ts_conv_op b = { oc, c, ts_conv_pick(oc, c), NULL, NULL, 1, r->net->pad, NULL };
			size_t need_f = ts_conv_op_ws_floats(&f, h, w);
			size_t need_b = ts_conv_op_ws_floats(&b, h, w);

			ws = need_f > ws ? need_f : ws;
			ws = need_b > ws ? need_b : ws;
			wino = f.algo == TS_CONV_WINO4 || f.algo == TS_CONV_WINO2;
			c = oc;
		} else if (k == TS_LAYER_POOL) {
			h /= 2;
			w /= 2;
		}
		r->c[i] = c;
		r->lh[i] = h;
		r->lw[i] = w;
		n = (size_t)c * h * w;
		if (n > maxn)
			maxn = n;
		r->out[i] = NULL;
		/* an untapped conv (never the last: that one is tapped) writes into its
		 * ReLU's buffer, the ReLU then runs in place; a ReLU whose conv, ReLU and
		 * pool run as one (pooled_after) has no buffer at all */
		if (!(k == TS_LAYER_CONV && !r->tapped[i]) &&
		    !(k == TS_LAYER_RELU && wino && pooled_after(r, i - 1)))
			TAKE(r->out[i], n);
		if (k == TS_LAYER_RELU && !r->tapped[i - 1])
			r->out[i - 1] = r->out[i];
		if (k == TS_LAYER_POOL) { /* bytes */
			float *p;

			TAKE(p, (n + 3) / 4);
			r->pidx[i] = (unsigned char *)p;
		}
	}
	TAKE(r->g0, maxn);
	TAKE(r->g1, maxn);
	TAKE(r->ws, ws);
	r->ws_floats = ws;
#undef TAKE
	return off;
}

/* The checks of ts_vgg_run_create; 0 or -1 with a message. */
static int
check_run(const ts_vgg *net, int h, int w, int last, const unsigned char *tapped)
{
	int pools, need;

	if (!net || !tapped) {
		ts_error("vgg", "no network or no tapped layers");
		return -1;
	}
	if (last < 0 || last >= TS_VGG_NLAYERS) {
		ts_error("vgg", "deepest layer %d out of range (0..%d)", last, TS_VGG_NLAYERS - 1);
		return -1;
	}
	for (int i = last + 1; i < TS_VGG_NLAYERS; i++) {
		if (tapped[i]) {
			ts_error("vgg", "layer %s is tapped but deeper than %s", layer_names[i],
			         layer_names[last]);
			return -1;
		}
	}
	if (!tapped[last]) {
		ts_error("vgg", "the deepest layer %s is not tapped", layer_names[last]);
		return -1;
	}
	if (ts_vgg_layer_conv(last) >= net->nconv) {
		ts_error("vgg", "layer %s needs %d convolutions; the network has %d",
		         layer_names[last], ts_vgg_layer_conv(last) + 1, net->nconv);
		return -1;
	}
	for (int i = 0; i < net->nconv; i++) {
		if (net->in_ch[i] != (i ? net->out_ch[i - 1] : 3) || net->out_ch[i] < 1) {
			ts_error("vgg", "convolution %d has %d input channels after %d outputs", i,
			         net->in_ch[i], i ? net->out_ch[i - 1] : 3);
			return -1;
		}
	}
	pools = ts_vgg_layer_pools(last) + (ts_vgg_layer_kind(last) == TS_LAYER_POOL);
	need = 1 << pools;
	if (h < need || w < need) {
		ts_error("vgg", "image %dx%d too small for %s (needs at least %dx%d)", w, h,
		         layer_names[last], need, need);
		return -1;
	}
	return 0;
}

size_t
ts_vgg_run_bytes(const ts_vgg *net, int h, int w, int last, const unsigned char *tapped)
{
	ts_vgg_run r;

	if (check_run(net, h, w, last, tapped))
		return 0;
	memset(&r, 0, sizeof r);
	r.net = net;
	r.h = h;
	r.w = w;
	r.last = last;
	memcpy(r.tapped, tapped, TS_VGG_NLAYERS);
	return layout(&r, NULL) * sizeof(float) + sizeof r;
}

size_t
ts_vgg_run_bytes_multi(const ts_vgg *net, int n, const int *h, const int *w, int last,
                       const unsigned char *tapped)
{
	size_t most = 0;

	for (int i = 0; i < n; i++) {
		size_t b = ts_vgg_run_bytes(net, h[i], w[i], last, tapped);

		if (!b)
			return 0;
		most = b > most ? b : most;
	}
	return most;
}

ts_vgg_run *
ts_vgg_run_create(const ts_vgg *net, int h, int w, int last, const unsigned char *tapped,
                  ts_pool_mode pool)
{
	return ts_vgg_run_create_multi(net, 1, &h, &w, last, tapped, pool);
}

int
ts_vgg_run_resize(ts_vgg_run *r, int h, int w)
{
	ts_vgg_run t;

	if (h == r->h && w == r->w)
		return 0;
	if (check_run(r->net, h, w, r->last, r->tapped))
		return -1;
	t = *r;
	t.h = h;
	t.w = w;
	if (layout(&t, NULL) > r->cap) {
		ts_error("vgg", "a run made for smaller images cannot take %dx%d", w, h);
		return -1;
	}
	r->h = h;
	r->w = w;
	layout(r, r->mem);
	return 0;
}

ts_vgg_run *
ts_vgg_run_create_multi(const ts_vgg *net, int nsizes, const int *hs, const int *ws,
                        int last, const unsigned char *tapped, ts_pool_mode pool)
{
	ts_vgg_run *r = NULL, *ret = NULL;
	size_t n = 0;
	int h = 0, w = 0;

	if (nsizes < 1) {
		ts_error("vgg", "a run needs at least one image size");
		goto cleanup;
	}
	for (int i = 0; i < nsizes; i++)
		if (check_run(net, hs[i], ws[i], last, tapped))
			goto cleanup;
	if (pool != TS_POOL_AVG && pool != TS_POOL_MAX) {
		ts_error("vgg", "unknown pooling mode %d", (int)pool);
		goto cleanup;
	}
	if (!(r = calloc(1, sizeof *r))) {
		ts_error("vgg", "out of memory");
		goto cleanup;
	}
	r->net = net;
	r->last = last;
	r->pool = pool;
	memcpy(r->tapped, tapped, TS_VGG_NLAYERS);
	/* room for the largest of the sizes; it starts at the first */
	for (int i = nsizes - 1; i >= 0; i--) {
		size_t k;

		r->h = hs[i];
		r->w = ws[i];
		if ((k = layout(r, NULL)) >= n) {
			n = k;
			h = hs[i];
			w = ws[i];
		}
	}
	r->h = h = hs[0];
	r->w = w = ws[0];
	r->cap = n;
	if (!(r->mem = aligned_alloc(64, n * sizeof(float)))) {
		ts_error("vgg", "out of memory for the activations of a %dx%d image (%.0f MiB)", w,
		         h, (double)n * sizeof(float) / 1048576.0);
		goto cleanup;
	}
	layout(r, r->mem);
	for (int ci = 0; ci <= ts_vgg_layer_conv(last); ci++) {
		if (run_shares(r)) {
			r->fwd[ci] = net->prep_fwd[ci];
			r->adj[ci] = net->prep_adj[ci];
		} else {
			ts_conv_op_prepare(&r->fwd[ci], net->w[ci], net->b[ci], net->in_ch[ci],
			                   net->out_ch[ci], 0, TS_CONV_AUTO, r->fwd_w[ci]);
			ts_conv_op_prepare(&r->adj[ci], net->w[ci], NULL, net->in_ch[ci],
			                   net->out_ch[ci], 1, TS_CONV_AUTO, r->adj_w[ci]);
		}
		ts_conv_op_set_padding(&r->fwd[ci], net->pad, net->border[ci]);
		ts_conv_op_set_padding(&r->adj[ci], net->pad, net->border[ci]);
	}
	ret = r;
	r = NULL;
cleanup:
	ts_vgg_run_destroy(r);
	return ret;
}

void
ts_vgg_run_destroy(ts_vgg_run *r)
{
	if (!r)
		return;
	free(r->mem);
	free(r);
}

/* Seconds in forward/backward, and in the convolutions and losses they ran. */
static double net_seconds, net_inner_seconds;
/* per layer: forward, backward (the layer's own gradient), the taps' losses */
static double layer_fwd[TS_VGG_NLAYERS], layer_bwd[TS_VGG_NLAYERS], layer_tap[TS_VGG_NLAYERS];

double
ts_vgg_layers_seconds(void)
{
	return net_seconds - net_inner_seconds;
}

void
ts_vgg_layer_seconds(int layer, double *fwd, double *bwd, double *tap)
{
	TS_ASSERT(layer >= 0 && layer < TS_VGG_NLAYERS);
	if (fwd)
		*fwd = layer_fwd[layer];
	if (bwd)
		*bwd = layer_bwd[layer];
	if (tap)
		*tap = layer_tap[layer];
}

void
ts_vgg_forward(ts_vgg_run *r, const float *img)
{
	double t0 = ts_now(), c0 = ts_conv_seconds();
	const ts_vgg *net = r->net;
	size_t hw = (size_t)r->h * r->w;
	const float *x = r->in;
	int c = 3, h = r->h, w = r->w;

	/* img [3, h, w] RGB in [0,1] -> in [3, h, w] as the weights expect */
	for (int k = 0; k < 3; k++) {
		float *dst = r->in + k * hw;

		if (net->input == TS_INPUT_TORCH) {
			const float *src = img + k * hw;
			float m = net->mean[k], s = 1.0f / net->std[k];

			for (size_t i = 0; i < hw; i++)
				dst[i] = (src[i] - m) * s;
		} else {
			const float *src = img + (2 - k) * hw; /* net channel 0 = B */
			float m = net->mean[k];

			for (size_t i = 0; i < hw; i++)
				dst[i] = 255.0f * src[i] - m;
		}
	}
	for (int i = 0; i <= r->last; i++) {
		ts_layer_kind k = ts_vgg_layer_kind(i);
		double tl = ts_now();

		if (k == TS_LAYER_CONV) {
			int ci = ts_vgg_layer_conv(i);

			c = net->out_ch[ci];
			if (pooled_after(r, i) &&
			    ts_conv_op_run_pool(&r->fwd[ci], x, h, w, r->out[i + 2], r->pidx[i + 2],
			                        r->pool, r->ws, r->ws_floats)) {
				/* conv, ReLU and pool in one: nothing reads the ReLU's output */
				h /= 2;
				w /= 2;
				x = r->out[i + 2];
				layer_fwd[i] += ts_now() - tl;
				i += 2;
				continue;
			}
			/* an untapped conv writes its ReLU's output directly (ReLU fused) */
			TS_ASSERT(r->out[i]); /* layout gave no buffer only where the above runs */
			ts_conv_op_run(&r->fwd[ci], x, NULL, h, w, r->out[i], !r->tapped[i], r->ws,
			               r->ws_floats);
		} else if (k == TS_LAYER_RELU) {
			size_t n = layer_size(r, i);

			if (r->out[i] == r->out[i - 1]) {
				/* done by the conv */
			} else { /* the conv is tapped: keep its output, copy while rectifying */
				const float *src = r->out[i - 1];
				float *dst = r->out[i];

				for (size_t j = 0; j < n; j++)
					dst[j] = src[j] > 0.0f ? src[j] : 0.0f;
			}
		} else {
			ts_pool_forward_idx(x, c, h, w, r->out[i], r->pidx[i], r->pool);
			h /= 2;
			w /= 2;
		}
		x = r->out[i];
		layer_fwd[i] += ts_now() - tl;
	}
	net_seconds += ts_now() - t0;
	net_inner_seconds += ts_conv_seconds() - c0;
}

const float *
ts_vgg_feature(const ts_vgg_run *r, int layer, int *c, int *fh, int *fw)
{
	TS_ASSERT(layer >= 0 && layer <= r->last && r->tapped[layer]);
	if (c)
		*c = r->c[layer];
	if (fh)
		*fh = r->lh[layer];
	if (fw)
		*fw = r->lw[layer];
	return r->out[layer];
}

void
ts_vgg_backward(ts_vgg_run *r, ts_vgg_tap_fn tap, void *ctx, float *dimg)
{
	double t0 = ts_now(), c0 = ts_conv_seconds(), l0 = ts_loss_seconds();
	const ts_vgg *net = r->net;
	float *cur = r->g0, *other = r->g1, *t;
	const float *mask = NULL; /* a ReLU output whose mask the next conv applies */
	int premasked = 0;        /* the gradient is masked by the ReLU below already */
	ts_pooled_grad pend;      /* a pool's gradient the conv below forms itself */
	int pending = 0;
	size_t hw = (size_t)r->h * r->w;

	/* cur: d loss / d out[i] for the layer i being passed; the losses of a tapped
	 * layer add theirs when the sweep reaches it (nothing above the deepest) */
	zero(cur, layer_size(r, r->last));
	for (int i = r->last; i >= 0; i--) {
		ts_layer_kind k = ts_vgg_layer_kind(i);
		int ic = i > 0 ? r->c[i - 1] : 3;
		int ih = i > 0 ? r->lh[i - 1] : r->h, iw = i > 0 ? r->lw[i - 1] : r->w;
		size_t n = layer_size(r, i);
		double tl = ts_now(), tt;

		if (k == TS_LAYER_RELU) {
			const float *y = r->out[i];
			/* premasked: the pool above did the backward pass (the ReLU is not
			 * tapped); else the tap may do it */
			int done = premasked ||
			           (r->tapped[i] && tap(ctx, i, y, r->c[i], r->lh[i], r->lw[i], cur, 1));

			tt = ts_now();
			layer_tap[i] += tt - tl;
			premasked = 0;
			if (done) /* the pool or the tap did the ReLU's backward pass */
				;
			else if (r->tapped[i - 1])
				ts_relu_backward(y, cur, n); /* the conv's own gradient adds after */
			else
				mask = y; /* fused into the conv's backward */
			layer_bwd[i] += ts_now() - tt;
			continue;
		}
		if (r->tapped[i])
			tap(ctx, i, r->out[i], r->c[i], r->lh[i], r->lw[i], cur, 0);
		tt = ts_now();
		layer_tap[i] += tt - tl;
		if (k == TS_LAYER_CONV) {
			int ci = ts_vgg_layer_conv(i);

			if (pending) {
				/* cur: the pool's dy; the conv forms the pool's gradient on its
				 * way in, or else it is formed here first */
				pending = 0;
				if (!ts_conv_op_run_pooled(&r->adj[ci], &pend, ih, iw, other, 0, r->ws,
				                           r->ws_floats)) {
					ts_pool_backward_idx(pend.idx, pend.dy, r->c[i], ih, iw, other,
					                     pend.mode, pend.relu);
					t = cur;
					cur = other;
					other = t;
					ts_conv_op_run(&r->adj[ci], cur, NULL, ih, iw, other, 0, r->ws,
					               r->ws_floats);
				}
			} else {
				ts_conv_op_run(&r->adj[ci], cur, mask, ih, iw, other, 0, r->ws,
				               r->ws_floats);
			}
			mask = NULL;
		} else {
			/* a pool always follows a ReLU; the pool does that ReLU's backward pass
			 * too unless the ReLU is tapped (its losses add their gradient first).
			 * When the conv before that ReLU is not tapped either, nothing needs
			 * the pool's gradient itself: the conv's adjoint forms it */
			premasked = !r->tapped[i - 1];
			if (premasked && ts_vgg_layer_kind(i - 2) == TS_LAYER_CONV && !r->tapped[i - 2]) {
				pend.dy = cur;
				pend.idx = r->pidx[i];
				pend.mode = r->pool;
				pend.relu = 1;
				pending = 1;
				layer_bwd[i] += ts_now() - tt;
				continue; /* cur keeps dy */
			}
			ts_pool_backward_idx(r->pidx[i], cur, ic, ih, iw, other, r->pool, premasked);
		}
		t = cur;
		cur = other;
		other = t;
		layer_bwd[i] += ts_now() - tt;
	}
	/* cur: d loss / d in [3, h, w] -> d loss / d img through the input mapping */
	for (int k = 0; k < 3; k++) {
		float *dst = dimg + k * hw;

		if (net->input == TS_INPUT_TORCH) {
			const float *src = cur + k * hw;
			float s = 1.0f / net->std[k];

			for (size_t i = 0; i < hw; i++)
				dst[i] = src[i] * s;
		} else {
			const float *src = cur + (2 - k) * hw;

			for (size_t i = 0; i < hw; i++)
				dst[i] = 255.0f * src[i];
		}
	}
	net_seconds += ts_now() - t0;
	net_inner_seconds += ts_conv_seconds() - c0 + ts_loss_seconds() - l0;
}
