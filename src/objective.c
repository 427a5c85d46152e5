/* objective: content, Gram style and TV terms over one VGG run (see objective.h).
 *
 * Invariants: a ts_objective owns one ts_vgg_run sized for its image, the content
 * features of each content layer and one [c, c] workspace for the largest style layer;
 * ts_objective_eval allocates nothing. */
#include "tessera/objective.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/loss.h"

struct ts_objective {
	const ts_vgg *net;                  /* borrowed */
	const ts_style_targets *targets;    /* borrowed */
	ts_objective_params p;
	int h, w;
	ts_vgg_run *run;                    /* owned */
	float *content_feat[TS_VGG_NLAYERS]; /* per content layer: [c, fh, fw], owned */
	size_t content_n[TS_VGG_NLAYERS];
	float *gram_ws;                     /* style loss workspace (style_ws_floats) */
};

/* Deepest layer used by either list, and the tap flags. */
static int
tap_layers(const ts_layer_weights *a, const ts_layer_weights *b,
           unsigned char tapped[TS_VGG_NLAYERS])
{
	int last = -1;

	memset(tapped, 0, TS_VGG_NLAYERS);
	for (int i = 0; i < a->n; i++) {
		tapped[a->layer[i]] = 1;
		if (a->layer[i] > last)
			last = a->layer[i];
	}
	for (int i = 0; i < b->n; i++) {
		tapped[b->layer[i]] = 1;
		if (b->layer[i] > last)
			last = b->layer[i];
	}
	return last;
}

static int
layer_channels(const ts_vgg *net, int layer)
{
	int k = ts_vgg_layer_conv(layer);

	return k < net->nconv ? net->out_ch[k] : 0;
}

ts_style_targets *
ts_targets_alloc(const ts_vgg *net, const ts_layer_weights *layers)
{
	ts_style_targets *t = calloc(1, sizeof *t);
	size_t total = 0;

	if (!t) {
		ts_error("objective", "out of memory");
		return NULL;
	}
	t->n = layers->n;
	for (int i = 0; i < layers->n; i++) {
		int c = layer_channels(net, layers->layer[i]);

		if (c <= 0) {
			ts_error("objective", "the network has no layer %s (it has %d convolutions)",
			         ts_vgg_layer_name(layers->layer[i]), net->nconv);
			free(t);
			return NULL;
		}
		t->layer[i] = layers->layer[i];
		t->c[i] = c;
		total += (size_t)c * c;
	}
	t->mem = calloc(total ? total : 1, sizeof(float));
	if (!t->mem) {
		ts_error("objective", "out of memory for style targets");
		free(t);
		return NULL;
	}
	total = 0;
	for (int i = 0; i < t->n; i++) {
		t->gram[i] = t->mem + total;
		total += (size_t)t->c[i] * t->c[i];
	}
	return t;
}

size_t
ts_targets_floats(const ts_style_targets *t)
{
	size_t n = 0;

	for (int i = 0; i < t->n; i++)
		n += (size_t)t->c[i] * t->c[i];
	return n;
}

void
ts_targets_update(ts_style_targets *t)
{
	for (int i = 0; i < t->n; i++) {
		size_t n = (size_t)t->c[i] * t->c[i];
		double s = 0;

		for (size_t j = 0; j < n; j++)
			s += (double)t->gram[i][j] * t->gram[i][j];
		t->meansq[i] = s / (double)n;
	}
}

ts_style_targets *
ts_targets_create(const ts_vgg *net, ts_image *const *styles, const double *blend,
                  int nstyle, const ts_layer_weights *layers, ts_pool_mode pool)
{
	ts_style_targets *t = NULL;
	ts_vgg_run *run = NULL;
	float *g = NULL;
	unsigned char tapped[TS_VGG_NLAYERS];
	ts_layer_weights none = { 0 };
	int last;
	size_t cmax = 0;

	if (!(t = ts_targets_alloc(net, layers)))
		goto fail;
	last = tap_layers(layers, &none, tapped);
	if (last < 0) {
		ts_targets_update(t);
		return t;
	}
	for (int s = 0; s < nstyle; s++) {
		const ts_image *im = styles[s];
		size_t need = 0;

		if (!(run = ts_vgg_run_create(net, im->h, im->w, last, tapped, pool)))
			goto fail;
		for (int i = 0; i < t->n; i++) {
			int sh = ts_vgg_layer_pools(t->layer[i]);
			size_t k = (size_t)t->c[i] * t->c[i] +
			           ts_gram_ws_floats(t->c[i], (im->h >> sh) * (im->w >> sh));

			need = k > need ? k : need;
		}
		if (need > cmax) {
			free(g);
			if (!(g = malloc(need * sizeof *g))) {
				ts_error("objective", "out of memory");
				goto fail;
			}
			cmax = need;
		}
		ts_vgg_forward(run, im->px);
		for (int i = 0; i < t->n; i++) {
			int c, fh, fw;
			const float *f = ts_vgg_feature(run, t->layer[i], &c, &fh, &fw);
			size_t n = (size_t)c * c;

			ts_gram(f, c, fh * fw, g, g + n);
			for (size_t j = 0; j < n; j++)
				t->gram[i][j] += (float)blend[s] * g[j];
		}
		ts_vgg_run_destroy(run);
		run = NULL;
	}
	free(g);
	ts_targets_update(t);
	return t;
fail:
	free(g);
	ts_vgg_run_destroy(run);
	ts_targets_destroy(t);
	return NULL;
}

void
ts_targets_destroy(ts_style_targets *t)
{
	if (!t)
		return;
	free(t->mem);
	free(t);
}

void
ts_objective_params_from_config(ts_objective_params *p, const ts_config *c)
{
	memset(p, 0, sizeof *p);
	p->content_weight = c->content_weight;
	p->style_weight = c->style_weight;
	p->tv_weight = c->tv_weight;
	p->tv_chroma_weight = c->tv_chroma_weight;
	p->color_vars = c->color_vars;
	p->content_layers = c->content_layers;
	p->style_layers = c->style_layers;
	p->normalize_style = c->normalize_style;
	p->pool = c->pool;
}

/* Floats of the style-loss workspace for an h x w input (the largest layer's need). */
static size_t
style_ws_floats(const ts_vgg *net, int h, int w, const ts_layer_weights *sl)
{
	size_t most = 1;

	for (int i = 0; i < sl->n; i++) {
		int sh = ts_vgg_layer_pools(sl->layer[i]);
		size_t k = ts_loss_style_ws_floats(layer_channels(net, sl->layer[i]),
		                                   (h >> sh) * (w >> sh));

		most = k > most ? k : most;
	}
	return most;
}

/* Convolutions an objective of these settings runs (0..n-1), or 0 when no layer is
 * listed or the net has too few. */
static int
prepared_convs(const ts_vgg *net, const ts_objective_params *p)
{
	unsigned char tapped[TS_VGG_NLAYERS];
	int last = tap_layers(&p->content_layers, &p->style_layers, tapped);
	int n = last < 0 ? 0 : ts_vgg_layer_conv(last) + 1;

	return n <= net->nconv ? n : 0;
}

size_t
ts_objective_prepared_floats(const ts_vgg *net, const ts_objective_params *p)
{
	int n = prepared_convs(net, p);

	return n ? ts_vgg_prepared_floats(net, n) : 0;
}

int
ts_objective_prepare(ts_vgg *net, const ts_objective_params *p, float *mem, int compute)
{
	int n = prepared_convs(net, p);

	return n ? ts_vgg_prepare(net, n, mem, compute) : 0;
}

size_t
ts_objective_bytes(const ts_vgg *net, int h, int w, const ts_objective_params *p)
{
	unsigned char tapped[TS_VGG_NLAYERS];
	int last = tap_layers(&p->content_layers, &p->style_layers, tapped);
	size_t n;
	size_t ws = style_ws_floats(net, h, w, &p->style_layers);

	if (last < 0)
		return 0;
	n = ts_vgg_run_bytes(net, h, w, last, tapped);
	for (int i = 0; i < p->content_layers.n; i++) {
		int l = p->content_layers.layer[i];
		int sh = ts_vgg_layer_pools(l);
		n += (size_t)layer_channels(net, l) * (size_t)(h >> sh) * (size_t)(w >> sh) *
		     sizeof(float);
	}
	return n + ws * sizeof(float) + sizeof(ts_objective);
}

ts_objective *
ts_objective_create(const ts_vgg *net, int h, int w, const ts_objective_params *p,
                    const ts_style_targets *targets, const float *content)
{
	ts_objective *o = calloc(1, sizeof *o);
	unsigned char tapped[TS_VGG_NLAYERS];
	int last;

	if (!o) {
		ts_error("objective", "out of memory");
		return NULL;
	}
	o->net = net;
	o->targets = targets;
	o->p = *p;
	o->h = h;
	o->w = w;
	last = tap_layers(&p->content_layers, &p->style_layers, tapped);
	if (last < 0) {
		ts_error("objective", "no content or style layer in use");
		goto fail;
	}
	if (p->style_layers.n && (!targets || targets->n != p->style_layers.n)) {
		ts_error("objective", "style targets do not match the style layers");
		goto fail;
	}
	if (!(o->run = ts_vgg_run_create(net, h, w, last, tapped, p->pool)))
		goto fail;
	if (!(o->gram_ws = malloc(style_ws_floats(net, h, w, &p->style_layers) *
	                          sizeof(float)))) {
		ts_error("objective", "out of memory");
		goto fail;
	}
	for (int i = 0; i < p->content_layers.n; i++) {
		int l = p->content_layers.layer[i], sh = ts_vgg_layer_pools(l);

		o->content_n[i] = (size_t)layer_channels(net, l) * (size_t)(h >> sh) * (size_t)(w >> sh);
		if (!(o->content_feat[i] = malloc(o->content_n[i] * sizeof(float)))) {
			ts_error("objective", "out of memory");
			goto fail;
		}
	}
	if (ts_objective_retarget(o, targets, content))
		goto fail;
	return o;
fail:
	ts_objective_destroy(o);
	return NULL;
}

int
ts_objective_retarget(ts_objective *o, const ts_style_targets *targets, const float *content)
{
	const ts_objective_params *p = &o->p;

	if (p->style_layers.n && (!targets || targets->n != p->style_layers.n)) {
		ts_error("objective", "style targets do not match the style layers");
		return -1;
	}
	for (int i = 0; i < p->style_layers.n; i++) {
		if (targets->layer[i] != p->style_layers.layer[i] ||
		    targets->c[i] != layer_channels(o->net, p->style_layers.layer[i])) {
			ts_error("objective", "style targets do not match the style layers");
			return -1;
		}
	}
	o->targets = targets;
	if (!p->content_layers.n)
		return 0;
	TS_ASSERT(content);
	ts_vgg_forward(o->run, content);
	for (int i = 0; i < p->content_layers.n; i++) {
		int c, fh, fw;
		const float *f = ts_vgg_feature(o->run, p->content_layers.layer[i], &c, &fh, &fw);

		TS_ASSERT((size_t)c * fh * fw == o->content_n[i]);
		memcpy(o->content_feat[i], f, o->content_n[i] * sizeof(float));
	}
	return 0;
}

void
ts_objective_destroy(ts_objective *o)
{
	if (!o)
		return;
	ts_vgg_run_destroy(o->run);
	for (int i = 0; i < TS_VGG_NLAYERS; i++)
		free(o->content_feat[i]);
	free(o->gram_ws);
	free(o);
}

/* The losses of one evaluation, by list position (summed in list order after). */
struct eval_ctx {
	ts_objective *o;
	double content[TS_VGG_NLAYERS], style[TS_VGG_NLAYERS];
};

/* The content and style losses of one layer; grad (NULL: values only) receives
 * their weighted gradients on top of what it holds. */
static int
layer_losses(void *ctx, int layer, const float *f, int c, int fh, int fw, float *grad,
             int relu)
{
	struct eval_ctx *e = ctx;
	ts_objective *o = e->o;
	const ts_objective_params *p = &o->p;
	int last = -1, masked = 0;

	/* the layer's last loss (a style term, after the content terms) may do the ReLU's
	 * backward pass on its way */
	for (int i = 0; i < p->style_layers.n; i++)
		if (p->style_layers.layer[i] == layer)
			last = i;

	for (int i = 0; i < p->content_layers.n; i++) {
		double wt = p->content_weight * p->content_layers.w[i];

		if (p->content_layers.layer[i] == layer)
			e->content[i] = ts_loss_content(f, o->content_feat[i], o->content_n[i],
			                                (float)wt, grad);
	}
	for (int i = 0; i < p->style_layers.n; i++) {
		double wt = p->style_weight * p->style_layers.w[i];

		if (p->style_layers.layer[i] != layer)
			continue;
		if (p->normalize_style)
			wt /= o->targets->meansq[i] > 0 ? o->targets->meansq[i] : 1.0;
		masked = relu && grad && i == last;
		e->style[i] = ts_loss_style_masked(f, c, fh * fw, o->targets->gram[i], (float)wt,
		                                   o->gram_ws, grad, &masked);
	}
	return masked;
}

double
ts_objective_eval(ts_objective *o, const float *x, float *grad, ts_loss_parts *parts)
{
	const ts_objective_params *p = &o->p;
	struct eval_ctx e;
	double lc = 0, ls = 0, ltv, lcv = 0, total = 0;

	e.o = o;
	ts_vgg_forward(o->run, x);
	if (grad) {
		/* the losses run inside the backward sweep, each adding its gradient to the
		 * layer's as the sweep passes it */
		ts_vgg_backward(o->run, layer_losses, &e, grad);
	} else {
		unsigned char seen[TS_VGG_NLAYERS] = { 0 };

		for (int k = 0; k < 2; k++) {
			const ts_layer_weights *lw = k ? &p->style_layers : &p->content_layers;

			for (int i = 0; i < lw->n; i++) {
				int l = lw->layer[i], c, fh, fw;
				const float *f;

				if (seen[l]++)
					continue;
				f = ts_vgg_feature(o->run, l, &c, &fh, &fw);
				layer_losses(&e, l, f, c, fh, fw, NULL, 0);
			}
		}
	}
	for (int i = 0; i < p->content_layers.n; i++) {
		lc += e.content[i];
		total += p->content_weight * p->content_layers.w[i] * e.content[i];
	}
	for (int i = 0; i < p->style_layers.n; i++) {
		double wt = p->style_weight * p->style_layers.w[i];

		if (p->normalize_style)
			wt /= o->targets->meansq[i] > 0 ? o->targets->meansq[i] : 1.0;
		ls += e.style[i];
		total += wt * e.style[i];
	}
	ltv = ts_loss_tv(x, o->h, o->w, (float)p->tv_weight, grad);
	total += p->tv_weight * ltv;
	if (p->tv_chroma_weight > 0) {
		lcv = ts_loss_tv_chroma(x, o->h, o->w, (float)p->tv_chroma_weight, grad);
		total += p->tv_chroma_weight * lcv;
	}
	if (parts) {
		parts->content = lc;
		parts->style = ls;
		parts->tv = ltv;
		parts->total = total;
		parts->tv_chroma = lcv;
	}
	return total;
}
