/* test_vgg: the layer table, the built-in weights (deterministic, He-scaled, portable
 * bits), run validation and memory accounting, the forward pass against a naive
 * double-precision reference, and the input gradient of a whole run against central
 * differences for both input mappings and both pooling modes. */
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/par.h"
#include "tessera/vgg.h"

static uint64_t rng_state = 987654321;

static double
urand(double lo, double hi)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return lo + (hi - lo) * (double)(z >> 11) / 9007199254740992.0;
}

static int
L(const char *name)
{
	int i = ts_vgg_layer_index(name);

	assert_true(i >= 0);
	return i;
}

static void
test_layer_table(void **state)
{
	int nconv = 0, nrelu = 0, npool = 0;

	(void)state;
	for (int i = 0; i < TS_VGG_NLAYERS; i++) {
		const char *n = ts_vgg_layer_name(i);

		assert_int_equal(ts_vgg_layer_index(n), i);
		switch (ts_vgg_layer_kind(i)) {
		case TS_LAYER_CONV:
			assert_int_equal(ts_vgg_layer_conv(i), nconv);
			nconv++;
			assert_memory_equal(n, "conv", 4);
			break;
		case TS_LAYER_RELU:
			assert_int_equal(ts_vgg_layer_conv(i), nconv - 1);
			nrelu++;
			assert_memory_equal(n, "relu", 4);
			break;
		case TS_LAYER_POOL:
			assert_int_equal(ts_vgg_layer_conv(i), nconv - 1);
			npool++;
			assert_memory_equal(n, "pool", 4);
			break;
		}
	}
	assert_int_equal(nconv, 16);
	assert_int_equal(nrelu, 16);
	assert_int_equal(npool, 5);
	assert_int_equal(L("conv1_1"), 0);
	assert_int_equal(L("pool1"), 4);
	assert_int_equal(L("relu4_2"), 22);
	assert_int_equal(L("pool5"), 36);
	assert_int_equal(ts_vgg_layer_conv(L("conv4_2")), 9);
	assert_int_equal(ts_vgg_layer_conv(L("relu4_2")), 9);
	assert_int_equal(ts_vgg_layer_conv(L("pool1")), 1);
	assert_int_equal(ts_vgg_layer_pools(L("relu1_1")), 0);
	assert_int_equal(ts_vgg_layer_pools(L("pool1")), 0);
	assert_int_equal(ts_vgg_layer_pools(L("conv2_1")), 1);
	assert_int_equal(ts_vgg_layer_pools(L("relu5_1")), 4);
	assert_int_equal(ts_vgg_layer_index("relu6_1"), -1);
	assert_int_equal(ts_vgg_layer_index("conv1_"), -1);
	assert_int_equal(ts_vgg_layer_index(""), -1);
}

/* FNV-1a 64 of bytes. */
static uint64_t
fnv1a(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static size_t
weight_floats(const ts_vgg *net)
{
	size_t n = 0;

	for (int i = 0; i < net->nconv; i++)
		n += (size_t)net->out_ch[i] * net->in_ch[i] * 9 + (size_t)net->out_ch[i];
	return n;
}

static void
test_builtin(void **state)
{
	ts_vgg *a = ts_vgg_create_builtin(42, 8), *b = ts_vgg_create_builtin(42, 8);
	ts_vgg *c = ts_vgg_create_builtin(43, 8), *d = ts_vgg_create_builtin(1, 1024);
	size_t n;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_non_null(d);
	assert_int_equal(a->nconv, 16);
	assert_int_equal(a->in_ch[0], 3);
	assert_int_equal(a->out_ch[0], 8);
	assert_int_equal(a->out_ch[4], 32);
	assert_int_equal(a->out_ch[15], 64);
	for (int i = 1; i < 16; i++)
		assert_int_equal(a->in_ch[i], a->out_ch[i - 1]);
	for (int i = 0; i < 16; i++)
		assert_int_equal(d->out_ch[i], 1);
	assert_int_equal(a->input, TS_INPUT_TORCH);
	n = weight_floats(a);
	assert_memory_equal(a->mem, b->mem, n * sizeof(float));
	assert_true(memcmp(a->mem, c->mem, n * sizeof(float)) != 0);
	/* the same bits on every machine: a fixed fingerprint of seed 42, width 8 */
	assert_int_equal(fnv1a(a->mem, n * sizeof(float)), 0x3b7bac214cbb1dc3ULL);
	/* He-normal: mean ~0, std ~sqrt(2 / (9 in)), biases zero */
	for (int i = 0; i < 16; i++) {
		size_t m = (size_t)a->out_ch[i] * a->in_ch[i] * 9;
		double s1 = 0, s2 = 0, sd = sqrt(2.0 / (9.0 * a->in_ch[i]));

		for (size_t k = 0; k < m; k++) {
			s1 += a->w[i][k];
			s2 += (double)a->w[i][k] * a->w[i][k];
		}
		s1 /= (double)m;
		s2 = sqrt(s2 / (double)m - s1 * s1);
		assert_true(fabs(s1) < 5.0 * sd / sqrt((double)m));
		assert_true(fabs(s2 / sd - 1.0) < 0.1);
		for (int k = 0; k < a->out_ch[i]; k++)
			assert_true(a->b[i][k] == 0.0f);
	}
	assert_null(ts_vgg_create_builtin(1, 0));
	ts_vgg_destroy(a);
	ts_vgg_destroy(b);
	ts_vgg_destroy(c);
	ts_vgg_destroy(d);
	ts_vgg_destroy(NULL);
}

static void
test_alloc(void **state)
{
	const int ch[3] = { 4, 5, 6 }, bad[2] = { 4, 0 };
	ts_vgg *net = ts_vgg_alloc(3, ch);

	(void)state;
	assert_non_null(net);
	assert_int_equal(net->nconv, 3);
	assert_int_equal(net->in_ch[0], 3);
	assert_int_equal(net->in_ch[2], 5);
	assert_true(net->b[0] == net->w[0] + 4 * 3 * 9);
	assert_true(net->w[1] == net->b[0] + 4);
	assert_true(net->w[2][6 * 5 * 9 - 1] == 0.0f);
	assert_true(fabsf(net->mean[0] - 0.485f) < 1e-7f && fabsf(net->std[2] - 0.225f) < 1e-7f);
	ts_vgg_destroy(net);
	assert_null(ts_vgg_alloc(2, bad));
	assert_non_null(strstr(ts_errmsg(), "vgg:"));
	assert_null(ts_vgg_alloc(0, ch));
	assert_null(ts_vgg_alloc(17, ch));
}

static void
test_validation(void **state)
{
	ts_vgg *net = ts_vgg_create_builtin(1, 16);
	const int ch[3] = { 4, 4, 8 };
	ts_vgg *small = ts_vgg_alloc(3, ch);
	unsigned char tap[TS_VGG_NLAYERS] = { 0 };
	ts_vgg_run *r;

	(void)state;
	assert_non_null(net);
	assert_non_null(small);
	tap[L("relu5_1")] = 1;
	ts_error_clear();
	assert_null(ts_vgg_run_create(net, 10, 10, L("relu5_1"), tap, TS_POOL_AVG));
	assert_string_equal(ts_errmsg(),
	                    "vgg: image 10x10 too small for relu5_1 (needs at least 16x16)");
	assert_null(ts_vgg_run_create(net, 40, 15, L("relu5_1"), tap, TS_POOL_AVG));
	assert_non_null(strstr(ts_errmsg(), "image 15x40 too small"));
	assert_int_equal(ts_vgg_run_bytes(net, 10, 10, L("relu5_1"), tap), 0);
	r = ts_vgg_run_create(net, 16, 17, L("relu5_1"), tap, TS_POOL_AVG);
	assert_non_null(r);
	ts_vgg_run_destroy(r);
	ts_vgg_run_destroy(NULL);
	/* the deepest layer must be tapped, nothing deeper may be */
	assert_null(ts_vgg_run_create(net, 32, 32, L("relu4_1"), tap, TS_POOL_AVG));
	assert_non_null(strstr(ts_errmsg(), "relu5_1"));
	tap[L("relu5_1")] = 0;
	tap[L("relu2_1")] = 1;
	assert_null(ts_vgg_run_create(net, 32, 32, L("relu4_1"), tap, TS_POOL_AVG));
	assert_non_null(strstr(ts_errmsg(), "not tapped"));
	/* too few convolutions for the layer */
	tap[L("relu2_1")] = 0;
	tap[L("relu3_1")] = 1;
	assert_null(ts_vgg_run_create(small, 32, 32, L("relu3_1"), tap, TS_POOL_AVG));
	assert_non_null(strstr(ts_errmsg(), "needs 5 convolutions; the network has 3"));
	tap[L("relu3_1")] = 0;
	tap[L("pool1")] = 1;
	r = ts_vgg_run_create(small, 2, 2, L("pool1"), tap, TS_POOL_MAX);
	assert_non_null(r);
	ts_vgg_run_destroy(r);
	assert_null(ts_vgg_run_create(small, 1, 2, L("pool1"), tap, TS_POOL_MAX));
	ts_vgg_destroy(net);
	ts_vgg_destroy(small);
}

/* A random-ish image [3, h, w] in [0, 1]. */
static float *
make_image(int h, int w)
{
	float *img = malloc((size_t)3 * h * w * sizeof *img);

	assert_non_null(img);
	for (size_t i = 0; i < (size_t)3 * h * w; i++)
		img[i] = (float)urand(0, 1);
	return img;
}

/* ts_vgg_run_bytes against what create really allocates (glibc's counters). */
static void
test_run_bytes(void **state)
{
	ts_vgg *net = ts_vgg_create_builtin(3, 8);
	unsigned char tap[TS_VGG_NLAYERS] = { 0 };
	const char *taps[] = { "relu1_1", "conv2_1", "relu3_1", "relu4_1", "relu4_2" };

	(void)state;
	assert_non_null(net);
	for (int i = 0; i < 5; i++)
		tap[L(taps[i])] = 1;
	for (int k = 0; k < 2; k++) {
		int h = k ? 160 : 97, w = k ? 120 : 203;
		struct mallinfo2 m0 = mallinfo2(), m1;
		size_t want = ts_vgg_run_bytes(net, h, w, L("relu4_2"), tap), got;
		ts_vgg_run *r = ts_vgg_run_create(net, h, w, L("relu4_2"), tap, TS_POOL_MAX);

		assert_non_null(r);
		m1 = mallinfo2();
		got = (m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd);
		assert_true(want > 0);
		/* under a sanitizer malloc is not glibc's and the counters stay put */
		if (got != 0)
			assert_true(fabs((double)got - (double)want) < 0.02 * (double)want);
		else
			print_message("glibc malloc counters unavailable; size not compared\n");
		ts_vgg_run_destroy(r);
	}
	/* more taps, more memory; a deeper last layer, more memory */
	assert_true(ts_vgg_run_bytes(net, 64, 64, L("relu4_2"), tap) >
	            ts_vgg_run_bytes(net, 64, 64, L("relu4_2"), (unsigned char[TS_VGG_NLAYERS]){
	                                 [22] = 1 }));
	ts_vgg_destroy(net);
}

/* Naive double-precision forward of the whole table; returns the output of layer
 * `upto` (malloc'd) and its shape. */
static double *
forward_ref(const ts_vgg *net, const float *img, int h, int w, int upto, ts_pool_mode pool,
            int *oc, int *oh, int *ow)
{
	int c = 3;
	double *x = malloc((size_t)3 * h * w * sizeof *x), *y;

	assert_non_null(x);
	for (int k = 0; k < 3; k++)
		for (size_t i = 0; i < (size_t)h * w; i++) {
			if (net->input == TS_INPUT_TORCH)
				x[k * h * w + i] =
					((double)img[k * h * w + i] - net->mean[k]) / net->std[k];
			else
				x[k * h * w + i] = 255.0 * img[(2 - k) * h * w + i] - net->mean[k];
		}
	for (int l = 0; l <= upto; l++) {
		if (ts_vgg_layer_kind(l) == TS_LAYER_CONV) {
			int ci = ts_vgg_layer_conv(l), o = net->out_ch[ci];

			assert_non_null(y = calloc((size_t)o * h * w, sizeof *y));
			for (int q = 0; q < o; q++)
				for (int i = 0; i < h; i++)
					for (int j = 0; j < w; j++) {
						double s = net->b[ci][q];

						for (int p = 0; p < c; p++)
							for (int ky = 0; ky < 3; ky++)
								for (int kx = 0; kx < 3; kx++) {
									int yy = i + ky - 1, xx = j + kx - 1;

									if (yy < 0 || yy >= h || xx < 0 || xx >= w)
										continue;
									s += (double)net->w[ci][((q * c + p) * 3 + ky) * 3 + kx] *
									     x[((size_t)p * h + yy) * w + xx];
								}
						y[((size_t)q * h + i) * w + j] = s;
					}
			c = o;
		} else if (ts_vgg_layer_kind(l) == TS_LAYER_RELU) {
			assert_non_null(y = malloc((size_t)c * h * w * sizeof *y));
			for (size_t i = 0; i < (size_t)c * h * w; i++)
				y[i] = x[i] > 0 ? x[i] : 0;
		} else {
			int nh = h / 2, nw = w / 2;

			assert_non_null(y = malloc((size_t)c * nh * nw * sizeof *y));
			for (int p = 0; p < c; p++)
				for (int i = 0; i < nh; i++)
					for (int j = 0; j < nw; j++) {
						const double *a = x + ((size_t)p * h + 2 * i) * w + 2 * j;
						double v;

						if (pool == TS_POOL_AVG) {
							v = 0.25 * (a[0] + a[1] + a[w] + a[w + 1]);
						} else {
							v = a[0] > a[1] ? a[0] : a[1];
							v = a[w] > v ? a[w] : v;
							v = a[w + 1] > v ? a[w + 1] : v;
						}
						y[((size_t)p * nh + i) * nw + j] = v;
					}
			h = nh;
			w = nw;
		}
		free(x);
		x = y;
	}
	*oc = c;
	*oh = h;
	*ow = w;
	return x;
}

static void
test_forward_reference(void **state)
{
	ts_vgg *net = ts_vgg_create_builtin(5, 16);
	const char *taps[] = { "conv1_2", "relu1_2", "pool1", "relu2_1", "conv3_1", "relu3_1" };
	int h = 19, w = 22;
	float *img = make_image(h, w);

	(void)state;
	assert_non_null(net);
	for (int i = 0; i < 4; i++)
		net->b[i][0] = 0.125f; /* exercise the bias path */
	for (int mode = 0; mode < 4; mode++) {
		unsigned char tap[TS_VGG_NLAYERS] = { 0 };
		ts_pool_mode pool = mode & 1 ? TS_POOL_MAX : TS_POOL_AVG;
		ts_vgg_run *r;

		net->input = mode & 2 ? TS_INPUT_CAFFE : TS_INPUT_TORCH;
		if (net->input == TS_INPUT_CAFFE) {
			net->mean[0] = 103.939f, net->mean[1] = 116.779f, net->mean[2] = 123.68f;
		} else {
			net->mean[0] = 0.485f, net->mean[1] = 0.456f, net->mean[2] = 0.406f;
		}
		for (int i = 0; i < 6; i++)
			tap[L(taps[i])] = 1;
		assert_non_null(r = ts_vgg_run_create(net, h, w, L("relu3_1"), tap, pool));
		ts_vgg_forward(r, img);
		for (int i = 0; i < 6; i++) {
			int c, fh, fw, rc, rh, rw;
			const float *f = ts_vgg_feature(r, L(taps[i]), &c, &fh, &fw);
			double *ref = forward_ref(net, img, h, w, L(taps[i]), pool, &rc, &rh, &rw);
			double e = 0, m = 1e-30;

			assert_int_equal(c, rc);
			assert_int_equal(fh, rh);
			assert_int_equal(fw, rw);
			for (size_t j = 0; j < (size_t)c * fh * fw; j++) {
				e = fmax(e, fabs(f[j] - ref[j]));
				m = fmax(m, fabs(ref[j]));
			}
			assert_true(e < 1e-4 * m);
			free(ref);
		}
		/* a tapped conv keeps its pre-ReLU output next to the ReLU's */
		{
			int c, fh, fw;
			const float *pre = ts_vgg_feature(r, L("conv3_1"), &c, &fh, &fw);
			const float *post = ts_vgg_feature(r, L("relu3_1"), NULL, NULL, NULL);
			int neg = 0;

			for (size_t j = 0; j < (size_t)c * fh * fw; j++) {
				neg += pre[j] < 0;
				assert_true(post[j] == (pre[j] > 0 ? pre[j] : 0.0f));
			}
			assert_true(neg > 0);
		}
		ts_vgg_run_destroy(r);
	}
	free(img);
	ts_vgg_destroy(net);
}

/* Activations of the built-in network neither vanish nor explode (average pooling). */
static void
test_activation_scale(void **state)
{
	ts_vgg *net = ts_vgg_create_builtin(0, 4);
	const char *taps[] = { "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1" };
	unsigned char tap[TS_VGG_NLAYERS] = { 0 };
	int h = 64, w = 64;
	float *img = make_image(h, w);
	double in2 = 0, in_rms;
	ts_vgg_run *r;

	(void)state;
	assert_non_null(net);
	for (int i = 0; i < 5; i++)
		tap[L(taps[i])] = 1;
	assert_non_null(r = ts_vgg_run_create(net, h, w, L("relu5_1"), tap, TS_POOL_AVG));
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < h * w; i++) {
			double v = (img[k * h * w + i] - net->mean[k]) / net->std[k];

			in2 += v * v;
		}
	in_rms = sqrt(in2 / (3.0 * h * w));
	ts_vgg_forward(r, img);
	for (int i = 0; i < 5; i++) {
		int c, fh, fw;
		const float *f = ts_vgg_feature(r, L(taps[i]), &c, &fh, &fw);
		size_t n = (size_t)c * fh * fw;
		double s = 0, rel;

		for (size_t j = 0; j < n; j++)
			s += (double)f[j] * f[j];
		rel = sqrt(s / (double)n) / in_rms;
		print_message("%s rms / input rms = %.4f\n", taps[i], rel);
		assert_true(rel > 1e-2 && rel < 1e2);
	}
	ts_vgg_run_destroy(r);
	free(img);
	ts_vgg_destroy(net);
}

/* loss = sum over tapped layers of sum(rl * F_l), in double. */
static double
run_loss(ts_vgg_run *r, const float *img, const int *taps, int ntap, float *const *rl)
{
	double s = 0;

	ts_vgg_forward(r, img);
	for (int t = 0; t < ntap; t++) {
		int c, fh, fw;
		const float *f = ts_vgg_feature(r, taps[t], &c, &fh, &fw);

		for (size_t j = 0; j < (size_t)c * fh * fw; j++)
			s += (double)rl[t][j] * f[j];
	}
	return s;
}

/* The backward callback of check_gradient: layer taps[t] adds rl[t]; with
 * apply_relu, at a ReLU it also does the ReLU's backward pass itself, as the style
 * loss's kernel may. */
struct add_ctx {
	const int *taps;
	int ntap;
	float **rl;
	int calls;
	int apply_relu;
};

static int
add_tapped(void *ctx, int layer, const float *feat, int c, int fh, int fw, float *grad,
           int relu)
{
	struct add_ctx *a = ctx;
	size_t n = (size_t)c * fh * fw;

	a->calls++;
	for (int t = 0; t < a->ntap; t++)
		if (a->taps[t] == layer)
			for (size_t j = 0; j < n; j++)
				grad[j] += a->rl[t][j];
	if (!relu || !a->apply_relu)
		return 0;
	for (size_t j = 0; j < n; j++)
		grad[j] = feat[j] > 0.0f ? grad[j] : 0.0f;
	return 1;
}

/* rl[t]: a random upstream gradient (uniform in [-1, 1], from rng_state) of the shape
 * of tapped layer taps[t] of r, allocated here. */
static void
random_upstream(const ts_vgg_run *r, const int *taps, int ntap, float **rl)
{
	for (int t = 0; t < ntap; t++) {
		int c, fh, fw;

		ts_vgg_feature(r, taps[t], &c, &fh, &fw);
		assert_non_null(rl[t] = malloc((size_t)c * fh * fw * sizeof(float)));
		for (size_t j = 0; j < (size_t)c * fh * fw; j++)
			rl[t][j] = (float)urand(-1, 1);
	}
}

static void
check_gradient_pad(ts_input_mode input, ts_pool_mode pool, const char *const *names, int ntap,
                   ts_pad_mode pad)
{
	ts_vgg *net = ts_vgg_create_builtin(11, 8);
	int h = 34, w = 30, taps[8], last = 0;
	unsigned char tap[TS_VGG_NLAYERS] = { 0 };
	float *img = make_image(h, w), *dimg = malloc((size_t)3 * h * w * sizeof *dimg);
	float *rl[8];
	double num2 = 0, err2 = 0, g_rms = 0;
	int kinks = 0;
	ts_vgg_run *r;

	assert_non_null(net);
	assert_non_null(dimg);
	assert_int_equal(ts_vgg_set_padding(net, pad), 0);
	if (input == TS_INPUT_CAFFE) {
		net->input = TS_INPUT_CAFFE;
		net->mean[0] = 103.939f, net->mean[1] = 116.779f, net->mean[2] = 123.68f;
	}
	for (int t = 0; t < ntap; t++) {
		taps[t] = L(names[t]);
		tap[taps[t]] = 1;
		last = taps[t] > last ? taps[t] : last;
	}
	assert_non_null(r = ts_vgg_run_create(net, h, w, last, tap, pool));
	ts_vgg_forward(r, img);
	random_upstream(r, taps, ntap, rl);
	{
		struct add_ctx a = { taps, ntap, rl, 0, 0 };
		float *d2 = malloc((size_t)3 * h * w * sizeof *d2);

		ts_vgg_backward(r, add_tapped, &a, dimg);
		assert_int_equal(a.calls, ntap); /* each tapped layer once */
		/* a tap that does its ReLU's backward pass changes nothing, to the bit */
		assert_non_null(d2);
		a.apply_relu = 1;
		ts_vgg_backward(r, add_tapped, &a, d2);
		assert_memory_equal(d2, dimg, (size_t)3 * h * w * sizeof *d2);
		free(d2);
	}
	for (size_t j = 0; j < (size_t)3 * h * w; j++)
		g_rms += (double)dimg[j] * dimg[j];
	g_rms = sqrt(g_rms / (3.0 * h * w));
	/* The loss is piecewise linear in the image (conv, ReLU, pooling): unless eps
	 * straddles a kink (a ReLU or max-pool switch) the one-sided differences agree
	 * up to rounding, and where it does, the side without the kink is the exact
	 * derivative.  So each pixel is compared with the closest of the central and the
	 * two one-sided differences (a wrong gradient matches none of them). */
	for (int k = 0; k < 20; k++) {
		size_t p = (size_t)urand(0, 3.0 * h * w);
		float keep;

		if (pad != TS_PAD_ZERO && (k & 1)) {
			/* every other pixel within two of a border, where the padding is read */
			static const int near[4] = { 0, 1, -2, -1 };
			int ch = (int)urand(0, 3), e = near[(int)urand(0, 4)], y, x;

			if (k & 2) {
				y = e < 0 ? h + e : e;
				x = (int)urand(0, w);
			} else {
				x = e < 0 ? w + e : e;
				y = (int)urand(0, h);
			}
			p = ((size_t)ch * h + y) * w + x;
		}
		keep = img[p];
		const float eps = 1e-3f;
		double l0, lp, lm, num, dp, dm, e;

		l0 = run_loss(r, img, taps, ntap, rl);
		img[p] = keep + eps;
		lp = run_loss(r, img, taps, ntap, rl);
		img[p] = keep - eps;
		lm = run_loss(r, img, taps, ntap, rl);
		img[p] = keep;
		dp = (lp - l0) / ((double)(keep + eps) - keep);
		dm = (l0 - lm) / (keep - (double)(keep - eps));
		num = (lp - lm) / ((double)(keep + eps) - (double)(keep - eps));
		kinks += fabs(dp - dm) > 0.02 * g_rms;
		e = fmin(fabs(num - dimg[p]), fmin(fabs(dp - dimg[p]), fabs(dm - dimg[p])));
		num2 += num * num;
		err2 += e * e;
	}
	print_message("%s %s padding %d: gradient relative error %.2e (|g| %.3g, %d kinks)\n",
	              input == TS_INPUT_CAFFE ? "caffe" : "torch",
	              pool == TS_POOL_MAX ? "max" : "avg", (int)pad, sqrt(err2 / num2), g_rms,
	              kinks);
	assert_true(num2 > 0);
	assert_true(kinks <= 5);
	assert_true(sqrt(err2 / num2) < 5e-3);
	for (int t = 0; t < ntap; t++)
		free(rl[t]);
	ts_vgg_run_destroy(r);
	free(img);
	free(dimg);
	ts_vgg_destroy(net);
}

static void
check_gradient(ts_input_mode input, ts_pool_mode pool, const char *const *names, int ntap)
{
	check_gradient_pad(input, pool, names, ntap, TS_PAD_ZERO);
}

static const char *const grad_taps[] = {
	"relu1_1", "conv2_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1",
};

static void
test_gradient_torch_avg(void **state)
{
	(void)state;
	check_gradient(TS_INPUT_TORCH, TS_POOL_AVG, grad_taps, 6);
}

static void
test_gradient_torch_max(void **state)
{
	(void)state;
	check_gradient(TS_INPUT_TORCH, TS_POOL_MAX, grad_taps, 6);
}

static void
test_gradient_caffe_avg(void **state)
{
	(void)state;
	check_gradient(TS_INPUT_CAFFE, TS_POOL_AVG, grad_taps, 6);
}

static void
test_gradient_caffe_max(void **state)
{
	(void)state;
	check_gradient(TS_INPUT_CAFFE, TS_POOL_MAX, grad_taps, 6);
}

/* Reflect and replicate padding (half the pixels checked at the borders), both
 * pooling modes. */
static void
test_gradient_padded(void **state)
{
	(void)state;
	check_gradient_pad(TS_INPUT_TORCH, TS_POOL_AVG, grad_taps, 6, TS_PAD_REFLECT);
	check_gradient_pad(TS_INPUT_TORCH, TS_POOL_MAX, grad_taps, 6, TS_PAD_REFLECT);
	check_gradient_pad(TS_INPUT_CAFFE, TS_POOL_AVG, grad_taps, 6, TS_PAD_REPLICATE);
}

/* The deepest layer a pool or a conv, single tap. */
static void
test_gradient_other_lasts(void **state)
{
	const char *const a[] = { "pool2" }, *const b[] = { "relu1_2", "conv3_2" };

	(void)state;
	check_gradient(TS_INPUT_TORCH, TS_POOL_MAX, a, 1);
	check_gradient(TS_INPUT_CAFFE, TS_POOL_AVG, b, 2);
}

/* ts_vgg_layers_seconds: grows with a forward and backward pass (pooling layers ran),
 * and with the convolutions' time fits in the pass's wall time. */
/* One run's forward features at taps[] and its input gradient for random upstream
 * gradients rl (fixed by the seed), into feat (concatenated) and dimg. */
static void
run_once(const ts_vgg *net, int h, int w, const int *taps, int ntap, float *feat, float *dimg)
{
	unsigned char tap[TS_VGG_NLAYERS] = { 0 };
	float *rl[8], *img;
	int last = 0;
	size_t at = 0;
	ts_vgg_run *r;

	rng_state = 4242;
	img = make_image(h, w);

	for (int t = 0; t < ntap; t++) {
		tap[taps[t]] = 1;
		last = taps[t] > last ? taps[t] : last;
	}
	assert_non_null(r = ts_vgg_run_create(net, h, w, last, tap, TS_POOL_AVG));
	ts_vgg_forward(r, img);
	for (int t = 0; t < ntap; t++) {
		int c, fh, fw;
		const float *f = ts_vgg_feature(r, taps[t], &c, &fh, &fw);

		memcpy(feat + at, f, (size_t)c * fh * fw * sizeof *f);
		at += (size_t)c * fh * fw;
	}
	random_upstream(r, taps, ntap, rl);
	{
		struct add_ctx a = { taps, ntap, rl, 0, 0 };

		ts_vgg_backward(r, add_tapped, &a, dimg);
	}
	for (int t = 0; t < ntap; t++)
		free(rl[t]);
	free(img);
	ts_vgg_run_destroy(r);
}

/* Weights prepared once in the net (ts_vgg_prepare: the net's own memory, or memory
 * another process filled, read without computing) give runs the same bits as their
 * own, and the runs' memory shrinks by exactly the prepared weights; a run deeper
 * than what is prepared makes its own. */
static void
test_prepared(void **state)
{
	const char *names[] = { "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2" };
	int taps[5], h = 40, w = 36, nconv = ts_vgg_layer_conv(L("relu4_2")) + 1;
	unsigned char tap[TS_VGG_NLAYERS] = { 0 };
	size_t nf = 0, own_bytes, np;
	float *feat[4], *dimg[4], *copy;
	ts_vgg *net[4];

	(void)state;
	for (int t = 0; t < 5; t++) {
		taps[t] = L(names[t]);
		tap[taps[t]] = 1;
	}
	for (int k = 0; k < 4; k++)
		assert_non_null(net[k] = ts_vgg_create_builtin(11, 8));
	own_bytes = ts_vgg_run_bytes(net[0], h, w, taps[4], tap);
	for (int t = 0; t < 5; t++) {
		int c = net[0]->out_ch[ts_vgg_layer_conv(taps[t])], sh = ts_vgg_layer_pools(taps[t]);

		nf += (size_t)c * (h >> sh) * (w >> sh);
	}
	for (int k = 0; k < 4; k++) {
		assert_non_null(feat[k] = malloc(nf * sizeof(float)));
		assert_non_null(dimg[k] = malloc((size_t)3 * h * w * sizeof(float)));
	}
	/* 0: the run's own; 1: the net's; 2: another's memory, attached; 3: too shallow */
	assert_int_equal(ts_vgg_prepare(net[1], nconv, NULL, 1), 0);
	np = ts_vgg_prepared_floats(net[1], nconv);
	assert_true(np > 0);
	assert_int_equal(ts_vgg_run_bytes(net[1], h, w, taps[4], tap), own_bytes - np * sizeof(float));
	assert_non_null(copy = aligned_alloc(64, np * sizeof(float)));
	memcpy(copy, net[1]->prep_own, np * sizeof(float));
	assert_int_equal(ts_vgg_prepare(net[2], nconv, copy, 0), 0);
	assert_null(net[2]->prep_own);
	assert_int_equal(ts_vgg_prepare(net[3], nconv - 1, NULL, 1), 0);
	assert_int_equal(ts_vgg_run_bytes(net[3], h, w, taps[4], tap), own_bytes);
	for (int k = 0; k < 4; k++)
		run_once(net[k], h, w, taps, 5, feat[k], dimg[k]);
	for (int k = 1; k < 4; k++) {
		assert_memory_equal(feat[k], feat[0], nf * sizeof(float));
		assert_memory_equal(dimg[k], dimg[0], (size_t)3 * h * w * sizeof(float));
	}
	/* the gradient is not all zeros (so equal bits say something) */
	{
		double s = 0;

		for (size_t j = 0; j < (size_t)3 * h * w; j++)
			s += fabs(dimg[0][j]);
		assert_true(s > 0);
	}
	/* out of range */
	assert_int_equal(ts_vgg_prepare(net[1], 0, NULL, 1), -1);
	assert_non_null(strstr(ts_errmsg(), "prepare 0 convolutions"));
	assert_int_equal(ts_vgg_prepare(net[1], net[1]->nconv + 1, NULL, 1), -1);
	for (int k = 0; k < 4; k++) {
		free(feat[k]);
		free(dimg[k]);
		ts_vgg_destroy(net[k]);
	}
	free(copy);
}

static void
test_layers_seconds(void **state)
{
	ts_vgg *net = ts_vgg_create_builtin(11, 8);
	int h = 64, w = 48, tl = L("relu3_1"), c, fh, fw;
	unsigned char tap[TS_VGG_NLAYERS] = { 0 };
	float *img = make_image(h, w), *dimg = malloc((size_t)3 * h * w * sizeof *dimg), *rl[1];
	double t0, c0, n0, wall, conv, layers;
	ts_vgg_run *r;

	(void)state;
	assert_non_null(net);
	assert_non_null(dimg);
	tap[tl] = 1;
	assert_non_null(r = ts_vgg_run_create(net, h, w, tl, tap, TS_POOL_MAX));
	t0 = ts_now();
	c0 = ts_conv_seconds();
	n0 = ts_vgg_layers_seconds();
	ts_vgg_forward(r, img);
	ts_vgg_feature(r, tl, &c, &fh, &fw);
	assert_non_null(rl[0] = calloc((size_t)c * fh * fw, sizeof(float)));
	{
		int taps[1] = { tl };
		struct add_ctx a = { taps, 1, rl, 0, 0 };

		ts_vgg_backward(r, add_tapped, &a, dimg);
	}
	wall = ts_now() - t0;
	conv = ts_conv_seconds() - c0;
	layers = ts_vgg_layers_seconds() - n0;
	assert_true(layers > 0.0);
	assert_true(conv > 0.0);
	assert_true(conv + layers <= wall);
	free(rl[0]);
	ts_vgg_run_destroy(r);
	free(img);
	free(dimg);
	ts_vgg_destroy(net);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layer_table),
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_alloc),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_run_bytes),
		cmocka_unit_test(test_prepared),
		cmocka_unit_test(test_forward_reference),
		cmocka_unit_test(test_activation_scale),
		cmocka_unit_test(test_gradient_torch_avg),
		cmocka_unit_test(test_gradient_torch_max),
		cmocka_unit_test(test_gradient_caffe_avg),
		cmocka_unit_test(test_gradient_caffe_max),
		cmocka_unit_test(test_gradient_other_lasts),
		cmocka_unit_test(test_gradient_padded),
		cmocka_unit_test(test_layers_seconds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
