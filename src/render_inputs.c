/* render_inputs: what a configuration asks of a render, made concrete: the network,
 * the output size, the style images at their scale, the start image (--init), the
 * optimizer's parameters and the frame names.  Shared by the single-picture render
 * (render.c) and the tiled job (job.c). */
#include "tessera/render.h"
#include "tessera/resample.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/weights.h"

ts_vgg *
ts_render_network(const ts_config *c)
{
	ts_vgg *net;

	if (!c->weights || !strcmp(c->weights, "builtin"))
		net = ts_vgg_create_builtin(c->builtin_seed, c->builtin_width);
	else
		net = ts_weights_load(c->weights);
	if (net && ts_vgg_set_padding(net, c->padding)) {
		ts_vgg_destroy(net);
		return NULL;
	}
	return net;
}

/* floor(n / f + 1/2), at least 1: ts_plan_create's rounding of a level's side */
static int
level_side(int n, double f)
{
	double v = floor((double)n / f + 0.5);

	return v < 1.0 ? 1 : (int)v;
}

int
ts_render_levels(int w, int h, int start, double factor, int min_side,
                 int sizes[TS_MAX_LEVELS][2])
{
	int big[TS_MAX_LEVELS][2], n = 1;

	TS_ASSERT(w >= 1 && h >= 1 && start >= 0);
	if (!isfinite(factor) || factor <= 1.0) {
		ts_error("render", "level factor %g must be greater than 1", factor);
		return -1;
	}
	big[0][0] = w;
	big[0][1] = h;
	while (start > 0 && (big[n - 1][0] > big[n - 1][1] ? big[n - 1][0] : big[n - 1][1]) > start) {
		int nw = level_side(big[n - 1][0], factor), nh = level_side(big[n - 1][1], factor);

		if (nw < min_side || nh < min_side)
			break; /* too small for the network: the level above is the first */
		if ((nw > nh ? nw : nh) >= (big[n - 1][0] > big[n - 1][1] ? big[n - 1][0]
		                                                       : big[n - 1][1])) {
			ts_error("render", "level factor %g is too close to 1: level %dx%d does not "
			         "shrink", factor, big[n - 1][0], big[n - 1][1]);
			return -1;
		}
		if (n == TS_MAX_LEVELS) {
			ts_error("render", "%dx%d from --start-size %d with level factor %g needs more "
			         "than %d levels; use a larger level factor or start size", w, h, start,
			         factor, TS_MAX_LEVELS);
			return -1;
		}
		big[n][0] = nw;
		big[n][1] = nh;
		n++;
	}
	for (int k = 0; k < n; k++) {
		sizes[k][0] = big[n - 1 - k][0];
		sizes[k][1] = big[n - 1 - k][1];
	}
	return n;
}

void
ts_render_output_size(const ts_config *c, int cw, int ch, int *w, int *h)
{
	double ow = 0, oh = 0;

	if (c->print_w > 0 && c->print_h > 0) {
		ow = c->print_w * c->dpi;
		oh = c->print_h * c->dpi;
	} else if (c->width > 0 && c->height > 0) {
		ow = c->width;
		oh = c->height;
	} else if (c->width > 0) {
		ow = c->width;
		oh = (double)ch * c->width / cw;
	} else if (c->height > 0) {
		oh = c->height;
		ow = (double)cw * c->height / ch;
	} else if (c->size > 0) {
		double s = (double)c->size / (cw > ch ? cw : ch);
		ow = cw * s;
		oh = ch * s;
	} else {
		ow = cw;
		oh = ch;
	}
	*w = ow < 1 ? 1 : (int)lround(ow);
	*h = oh < 1 ? 1 : (int)lround(oh);
}

int
ts_render_style_images(const ts_config *c, int long_side, ts_image **out)
{
	int i;

	for (i = 0; i < c->nstyle; i++)
		out[i] = NULL;
	for (i = 0; i < c->nstyle; i++) {
		ts_image *im = ts_image_load(c->style[i], 0);
		double s;
		int w, h;

		if (!im)
			goto fail;
		s = c->style_scale * long_side / (double)(im->w > im->h ? im->w : im->h);
		w = (int)lround(im->w * s);
		h = (int)lround(im->h * s);
		if (w < 1)
			w = 1;
		if (h < 1)
			h = 1;
		if (w != im->w || h != im->h) {
			out[i] = ts_image_resize(im, w, h);
			ts_image_destroy(im);
			if (!out[i])
				goto fail;
		} else {
			out[i] = im;
		}
	}
	return 0;
fail:
	for (int j = 0; j < c->nstyle; j++) {
		ts_image_destroy(out[j]);
		out[j] = NULL;
	}
	return -1;
}

/* splitmix64: the noise of --init noise, identical on every machine. */
static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

ts_image *
ts_render_init_image(const ts_config *c, const ts_image *content, ts_image *const *styles)
{
	ts_image *im = NULL, *src = NULL;
	size_t n = (size_t)3 * content->w * content->h;

	switch (c->init) {
	case TS_INIT_CONTENT:
		if (!(im = ts_image_crop(content, 0, 0, content->w, content->h)))
			return NULL;
		break;
	case TS_INIT_NOISE: {
		uint64_t s = c->seed;

		if (!(im = ts_image_create(content->w, content->h)))
			return NULL;
		for (size_t i = 0; i < n; i++)
			im->px[i] = (float)((splitmix64(&s) >> 40) * (1.0 / 16777216.0));
		break;
	}
	case TS_INIT_STYLE:
		im = ts_image_resize(styles[0], content->w, content->h);
		break;
	case TS_INIT_FILE:
		if (!(src = ts_image_load(c->init_file, 0)))
			return NULL;
		if (src->w == content->w && src->h == content->h) {
			im = src;
			src = NULL;
		} else if ((im = ts_image_create(content->w, content->h)) &&
		           ts_resample_planar(src->px, src->w, src->h, im->w, im->h, 0, 0, im->w,
		                              im->h, im->px)) {
			/* resampled exactly as a level is upsampled to the next, so a render
			 * from a lower level's image compares with a tiled level directly */
			ts_image_destroy(im);
			im = NULL;
		}
		break;
	}
	ts_image_destroy(src);
	return im;
}

void
ts_render_optim_params(const ts_config *c, ts_optim_params *p)
{
	ts_optim_defaults(p, c->optimizer);
	if (c->optimizer == TS_OPTIM_LBFGS) {
		p->history = c->lbfgs_history;
		p->history_half = c->lbfgs_half;
		p->backtrack = c->lbfgs_backtrack;
	}
	if (c->learning_rate > 0)
		p->lr = c->learning_rate;
}

int
ts_render_margin(const ts_config *c)
{
	return (c->margin + 15) / 16 * 16;
}

int
ts_render_level_margin(const ts_config *c, int w, int h)
{
	int m = ts_render_margin(c);

	return (w < h ? w : h) >= 4 * m ? m : 0;
}

void
ts_render_margins(const ts_config *c, int lw, int lh, int x, int y, int w, int h, int m[4])
{
	int e = ts_render_level_margin(c, lw, lh);

	m[0] = x == 0 ? e : 0;
	m[1] = y == 0 ? e : 0;
	m[2] = e && x + w == lw ? e + (16 - (m[0] + w + e) % 16) % 16 : 0;
	m[3] = e && y + h == lh ? e + (16 - (m[1] + h + e) % 16) % 16 : 0;
}

void
ts_render_frame_path(const char *out, int iter, char *buf, size_t size)
{
	const char *slash = strrchr(out, '/');
	const char *dot = strrchr(out, '.');

	if (!dot || (slash && dot < slash))
		snprintf(buf, size, "%s_%05d", out, iter);
	else
		snprintf(buf, size, "%.*s_%05d%s", (int)(dot - out), out, iter, dot);
}
