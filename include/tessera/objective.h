/* objective: the style-transfer objective of DESIGN.md for one image (or one tile),
 * its value and its gradient with respect to the image.
 *
 *   total = a * sum_l a_l mean((F_l(x) - F_l(c))^2)
 *         + b * sum_l b_l n_l mean((G_l(x) - T_l)^2)
 *         + g * TV(x) + g_c * TV_chroma(x)
 *
 * n_l is 1, or 1 / mean(T_l^2) with style normalization (each layer then measures a
 * relative error, so no layer drowns the others).  The style targets T_l are global:
 * computed once from the style images (blended) and shared by every tile. */
#ifndef TESSERA_OBJECTIVE_H
#define TESSERA_OBJECTIVE_H

#include "tessera/config.h"
#include "tessera/image.h"
#include "tessera/vgg.h"

/* Gram targets of the style layers, blended over the style images. */
typedef struct ts_style_targets {
	int n;                           /* style layers */
	int layer[TS_VGG_NLAYERS];       /* layer index of each */
	int c[TS_VGG_NLAYERS];           /* channels of each */
	float *gram[TS_VGG_NLAYERS];     /* [c, c] each, views into mem */
	double meansq[TS_VGG_NLAYERS];   /* mean(T_l^2), for normalization */
	float *mem;                      /* owns the Gram matrices */
} ts_style_targets;

/* Targets from nstyle images (each at the size it should be seen at) with blend
 * weights summing to one.  Caller owns. */
ts_style_targets *ts_targets_create(const ts_vgg *net, ts_image *const *styles,
                                    const double *blend, int nstyle,
                                    const ts_layer_weights *layers, ts_pool_mode pool);
/* Empty targets with the shapes of net for these layers (to receive a broadcast). */
ts_style_targets *ts_targets_alloc(const ts_vgg *net, const ts_layer_weights *layers);
/* Floats in all Gram matrices (mem holds exactly this many). */
size_t ts_targets_floats(const ts_style_targets *t);
/* Recompute meansq from the matrices (after receiving them). */
void ts_targets_update(ts_style_targets *t);
void ts_targets_destroy(ts_style_targets *t);

/* The weights of the objective. */
typedef struct ts_objective_params {
	double content_weight, style_weight, tv_weight; /* a, b, g */
	double tv_chroma_weight;                        /* g_c: TV of Cb, Cr alone */
	double color_vars;  /* the stylizer's variables: 0 RGB, > 0 YCbCr with chroma
	                     * scaled by this (colorvar.h); the objective ignores it */
	ts_layer_weights content_layers;                /* a_l */
	ts_layer_weights style_layers;                  /* b_l */
	int normalize_style;                            /* n_l = 1 / mean(T_l^2) */
	ts_pool_mode pool;
} ts_objective_params;

void ts_objective_params_from_config(ts_objective_params *p, const ts_config *c);

/* The parts of one evaluation.  content, style, tv are DESIGN.md's terms with unit
 * layer weights (no a, b, g, no normalization); total is what is optimized. */
typedef struct ts_loss_parts {
	double content, style, tv, total;
	double tv_chroma; /* TV of Cb, Cr (loss.h), 0 when its weight is */
} ts_loss_parts;

typedef struct ts_objective ts_objective;

/* Objective for h x w images.  content [3, h, w] (RGB in [0,1]) gives the content
 * targets (its features are computed here).  Borrows net and targets (they must
 * outlive the objective).  Everything is allocated here; evaluation allocates
 * nothing.  NULL with a message (image too small, network too shallow...). */
ts_objective *ts_objective_create(const ts_vgg *net, int h, int w,
                                  const ts_objective_params *p,
                                  const ts_style_targets *targets, const float *content);
void ts_objective_destroy(ts_objective *o);

/* Point an objective at other targets (same layers and shapes) and another content
 * image of its size, as if it had been created for them: the next tile of the same
 * size reuses the run, its prepared weights and its memory.  0, or -1 with a message
 * (targets of other shapes); the objective is then unchanged. */
int ts_objective_retarget(ts_objective *o, const ts_style_targets *targets,
                          const float *content);

/* The net's prepared weights (ts_vgg_prepare) for every objective of these settings:
 * their floats, and laying them out at mem (NULL: the net's own memory), computed or
 * (compute 0) as another process wrote them there.  A net too shallow for the layers
 * gets none (0 floats; ts_objective_create then says what is wrong).  0 or -1 with a
 * message. */
size_t ts_objective_prepared_floats(const ts_vgg *net, const ts_objective_params *p);
int ts_objective_prepare(ts_vgg *net, const ts_objective_params *p, float *mem, int compute);

/* Bytes ts_objective_create would allocate for these settings (for --plan). */
size_t ts_objective_bytes(const ts_vgg *net, int h, int w, const ts_objective_params *p);

/* Value at x [3, h, w]; grad [3, h, w] (may be NULL: value only, no backward pass).
 * parts (may be NULL) receives the breakdown. */
double ts_objective_eval(ts_objective *o, const float *x, float *grad, ts_loss_parts *parts);

#endif
