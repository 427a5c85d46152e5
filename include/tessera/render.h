/* render: stylizing one picture.  ts_stylize optimizes one image or tile against
 * given targets (a plain function: the tiled scheduler calls it per tile, tests call
 * it without MPI); the helpers turn a configuration into the network, the style
 * images, the output size and the start image; ts_render_single renders a whole
 * picture in one piece. */
#ifndef TESSERA_RENDER_H
#define TESSERA_RENDER_H

#include "tessera/config.h"
#include "tessera/image.h"
#include "tessera/objective.h"
#include "tessera/optim.h"
#include "tessera/plan.h"
#include "tessera/vgg.h"

typedef struct ts_stylize_hooks {
	void *user;
	/* Called once per iteration it = 0..n with the loss of the image after it
	 * iterations and that image x [3, h, w].  Nonzero return aborts (error). */
	int (*iteration)(void *user, int it, const ts_loss_parts *parts, const float *x);
	/* Polled between iterations; nonzero stops early (no error). */
	int (*should_stop)(void *user);
} ts_stylize_hooks;

/* Optimize x [3, h, w] (in: start image, out: result) for `iterations` iterations
 * against content [3, h, w] and targets.  hooks may be NULL.  *final (may be NULL)
 * receives the loss of the result, *done (may be NULL) the iterations made (fewer
 * when L-BFGS converged or should_stop fired).  0, or -1 with a message. */
int ts_stylize(const ts_vgg *net, const ts_style_targets *targets,
               const ts_objective_params *op, const ts_optim_params *oo, int iterations,
               int h, int w, const float *content, float *x,
               const ts_stylize_hooks *hooks, ts_loss_parts *final, int *done);

/* A stylizer keeps the objective (the network run with its prepared weights and
 * activations) and the optimizer of the last problem it solved, so that the next
 * one of the same size (the next tile of a level) reuses them instead of building
 * and first-touching some hundreds of MiB again.  Results are bit-identical to
 * ts_stylize.  Borrows net; op and oo are copied. */
typedef struct ts_stylizer ts_stylizer;

ts_stylizer *ts_stylizer_create(const ts_vgg *net, const ts_objective_params *op,
                                const ts_optim_params *oo);
/* ts_stylize with the held objective and optimizer when h x w matches the last
 * problem (targets may differ in values, not in shapes). */
int ts_stylizer_run(ts_stylizer *s, const ts_style_targets *targets, int iterations,
                    int h, int w, const float *content, float *x,
                    const ts_stylize_hooks *hooks, ts_loss_parts *final, int *done);
/* ts_stylizer_run on the picture with margins m[0..3] (left, top, right, bottom)
 * mirrored around it (resample.h's ts_margin_extend of content and x, in buffers the
 * stylizer holds), x then cut back to h x w.  The hooks see the extended picture.
 * All margins 0: ts_stylizer_run itself. */
int ts_stylizer_run_margins(ts_stylizer *s, const ts_style_targets *targets,
                            int iterations, int h, int w, const int m[4],
                            const float *content, float *x, const ts_stylize_hooks *hooks,
                            ts_loss_parts *final, int *done);
/* Frees the held objective and optimizer (the stylizer stays usable). */
void ts_stylizer_release(ts_stylizer *s);
void ts_stylizer_destroy(ts_stylizer *s);

/* The network the configuration names (builtin or a weight file), with its padding
 * (--padding).  Caller owns; NULL with a message. */
ts_vgg *ts_render_network(const ts_config *c);

/* Output size for content of cw x ch under the configuration (width/height/size/
 * print-size; none given: the content size). */
void ts_render_output_size(const ts_config *c, int cw, int ch, int *w, int *h);

/* The levels of a coarse-to-fine render of w x h, from the smallest (sizes[0]) to
 * w x h itself (sizes[n - 1]): each level is the one above divided by factor, each
 * side rounded as ts_plan_create rounds (to the nearest integer, at least 1), down to
 * the first level whose long side is <= start, or to the last whose sides both stay
 * >= min_side.  start 0, or w, h already <= start: one level, w x h.  Requires
 * w, h >= 1, start >= 0.  The number of levels n (1..TS_MAX_LEVELS), or -1 with a
 * message (a factor <= 1 or too close to 1 to shrink, more than TS_MAX_LEVELS). */
int ts_render_levels(int w, int h, int start, double factor, int min_side,
                     int sizes[TS_MAX_LEVELS][2]);

/* Load the style images and scale each so its long side is style_scale * long_side.
 * out[c->nstyle] receives images the caller destroys.  0 or -1. */
int ts_render_style_images(const ts_config *c, int long_side, ts_image **out);

/* The start image for content (at the output size) per --init.  Caller owns. */
ts_image *ts_render_init_image(const ts_config *c, const ts_image *content,
                               ts_image *const *styles);

/* Optimizer parameters from the configuration. */
void ts_render_optim_params(const ts_config *c, ts_optim_params *p);

/* --margin: px every path optimizes beyond each true border of a level (the content
 * and the start mirrored there, cut off after): the option rounded up to a multiple
 * of 16, the coarsest pooling grid, so that a single piece, the tiles touching a
 * border and a level's blocks under --gram global extend alike. */
int ts_render_margin(const ts_config *c);

/* The margin of a w x h level: ts_render_margin, or 0 when the level's short side is
 * below 4 times it (a coarse level whose margin would be a large share of it: 32 px
 * around seated-nude's 74 x 96 first level left its picture barely stylized, and the
 * next level's L-BFGS crawled from there, measured) */
int ts_render_level_margin(const ts_config *c, int w, int h);

/* The margins, left, top, right, bottom, of the rectangle x, y, w, h of a lw x lh level
 * (the whole level for a single piece and --gram global's blocks, a tile otherwise):
 * the level margin at each side on a border of the level, none inside it (a tile's
 * overlap is blended away), the right and bottom ones grown until the extended
 * rectangle is a multiple of 16 wide and high when it touches those borders.  The
 * network's four poolings then drop no column or row (each drops an odd last one: a
 * 295 px wide level's right border lay 9 px from where the relu4 features stop, its
 * left 16; over builtin seeds 0-3 seated-nude's right frame +15 +-20 became +9 +-12). */
void ts_render_margins(const ts_config *c, int lw, int lh, int x, int y, int w, int h,
                       int m[4]);

/* Render the whole picture in one piece: load, stylize, write c->out (and the
 * report, intermediate images).  stop (may be NULL) is polled between iterations.
 * 0, 1 when stopped early by *stop (the current image is written), -1 on error. */
int ts_render_single(const ts_config *c, volatile int *stop);

/* "<out minus extension>_<iter zero-padded>.<ext>" for --save-every frames. */
void ts_render_frame_path(const char *out, int iter, char *buf, size_t size);

#endif
