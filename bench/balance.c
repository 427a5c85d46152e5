/* style-balance: how much each style layer pulls on the image, with and without
 * --normalize-style, for the network a configuration names.
 *
 *   style-balance CONTENT STYLE [SIZE] [WEIGHTS]
 *
 * For each default style layer alone (weight 1) it prints the L2 norm of the
 * gradient of its style term at the start image (the content), raw and normalized
 * by 1/mean(T^2), and the spread max/min of each set: the smaller the spread, the
 * better no layer drowns the others.  This is the measurement behind the default
 * of --normalize-style. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/blas.h"
#include "tessera/config.h"
#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/objective.h"
#include "tessera/render.h"

static double
grad_norm(const ts_vgg *net, const ts_image *content, ts_image *style,
          const ts_objective_params *base, int layer_i, int normalize)
{
	ts_objective_params p = *base;
	ts_style_targets *t;
	ts_objective *o;
	float *g = malloc(sizeof(float) * 3 * content->w * content->h);
	double s = 0;

	p.content_layers.n = 0;
	p.style_layers.n = 1;
	p.style_layers.layer[0] = base->style_layers.layer[layer_i];
	p.style_layers.w[0] = 1;
	p.content_weight = 0;
	p.tv_weight = 0;
	p.style_weight = 1;
	p.normalize_style = normalize;
	if (!g || !(t = ts_targets_create(net, &style, (double[]){ 1 }, 1, &p.style_layers,
	                                  p.pool)) ||
	    !(o = ts_objective_create(net, content->h, content->w, &p, t, content->px))) {
		fprintf(stderr, "style-balance: %s\n", ts_errmsg());
		exit(1);
	}
	ts_objective_eval(o, content->px, g, NULL);
	for (int i = 0; i < 3 * content->w * content->h; i++)
		s += (double)g[i] * g[i];
	ts_objective_destroy(o);
	ts_targets_destroy(t);
	free(g);
	return sqrt(s);
}

int
main(int argc, char **argv)
{
	ts_config c;
	ts_objective_params p;
	ts_image *content0, *content, *styles[1];
	ts_vgg *net;
	int size = argc > 3 ? atoi(argv[3]) : 256;
	double lo[2] = { 1e300, 1e300 }, hi[2] = { 0, 0 };

	ts_blas_init(argv); /* may restart the program with better BLAS kernels */
	if (argc < 3) {
		fprintf(stderr, "usage: style-balance CONTENT STYLE [SIZE] [WEIGHTS]\n");
		return 2;
	}
	ts_config_defaults(&c);
	c.content = argv[1];
	c.style[0] = argv[2];
	c.nstyle = 1;
	c.size = size;
	if (argc > 4)
		c.weights = argv[4];
	if (!(content0 = ts_image_load(argv[1], 0))) {
		fprintf(stderr, "style-balance: %s\n", ts_errmsg());
		return 1;
	}
	{
		int w, h;

		ts_render_output_size(&c, content0->w, content0->h, &w, &h);
		content = ts_image_resize(content0, w, h);
	}
	if (!content || ts_render_style_images(&c, size, styles) || !(net = ts_render_network(&c))) {
		fprintf(stderr, "style-balance: %s\n", ts_errmsg());
		return 1;
	}
	ts_objective_params_from_config(&p, &c);
	printf("%-8s %14s %14s\n", "layer", "raw |grad|", "normalized");
	for (int i = 0; i < p.style_layers.n; i++) {
		double r = grad_norm(net, content, styles[0], &p, i, 0);
		double n = grad_norm(net, content, styles[0], &p, i, 1);

		printf("%-8s %14.4g %14.4g\n", ts_vgg_layer_name(p.style_layers.layer[i]), r, n);
		lo[0] = fmin(lo[0], r), hi[0] = fmax(hi[0], r);
		lo[1] = fmin(lo[1], n), hi[1] = fmax(hi[1], n);
	}
	printf("spread max/min: raw %.3g, normalized %.3g\n", hi[0] / lo[0], hi[1] / lo[1]);
	ts_image_destroy(styles[0]);
	ts_image_destroy(content);
	ts_image_destroy(content0);
	ts_vgg_destroy(net);
	return 0;
}
