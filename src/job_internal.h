/* job_internal: the job's state and helpers shared by job.c (tiles, assembly, plan)
 * and job_global.c (levels optimized as one picture).  Internal to the library. */
#ifndef TESSERA_JOB_INTERNAL_H
#define TESSERA_JOB_INTERNAL_H

#include "tessera/content.h"
#include "tessera/coupled.h"
#include "tessera/image.h"
#include "tessera/job.h"

/* Tiled TIFF tile side for assembled levels and the BigTIFF output. */
#define OUT_TILE 256

struct ts_job {
	const ts_config *c;          /* borrowed */
	char dir[4096];              /* job directory */
	int out_w, out_h;            /* output size */
	int content_w, content_h, content_bits; /* the content file (probed) */
	int content_denom;                      /* decoded at 1/denom (JPEG's scaled DCT) */
	int decoded_w, decoded_h;               /* its size so decoded: the fit's pixels */
	ts_fit fit;                  /* the canvas the output is made from (--fit) */
	ts_pyramid *pyr;             /* the canvas's pyramid (not under --plan) */
	ts_plan *plan;
	uint64_t hash;
	ts_vgg *net;
	ts_objective_params op;
	ts_optim_params oo;
	ts_style_targets *targets;   /* of the current level */
	int targets_level;
	ts_stylizer *sty;            /* the last tile's objective and optimizer, reused by
	                              * the next tile of the same size (NULL: none yet) */
};

/* Whether JOB/plan.ini exists (*found) and names this plan's hash (*same). */
void ts_job_dir_plan(const ts_job *j, int *found, int *same);
/* out [3, h, w] = the rectangle (x, y, w, h) of the content canvas at dw x dh. */
int ts_job_content_region(ts_job *j, int dw, int dh, int x, int y, int w, int h,
                          float *out);
/* Region reader over a TIFF (user: a ts_tiff_reader). */
int ts_job_tiff_read(void *user, int x, int y, int w, int h, float *out);
/* The assembled image of a level, JOB/L<k>.tif. */
void ts_job_level_path(const ts_job *j, int level, char *buf, size_t size);

/* Copy the rows [y0, y0 + rows) of a global level from its block files into band
 * [3, rows, w]; cache [bl->n] holds loaded blocks (freed once the band is below them). */
int ts_job_block_band(ts_job *j, int level, const ts_blocks *bl, int y0, int rows,
                      float *band, float **cache);

/* What a global level costs with nranks ranks (for --plan). */
typedef struct ts_job_global_cost {
	int nblocks, side, halo;
	double rank_bytes; /* the largest share: its blocks' objective and optimizer */
	double pixels;     /* pixels a pass runs per evaluation, over all ranks: every
	                    * block's evaluated rectangle, and once more the forward
	                    * pass (counted as half) of all but each rank's last block */
} ts_job_global_cost;
int ts_job_global_plan(const ts_job *j, int level, int nranks, ts_job_global_cost *out);
/* The optimizer parameters with the history a level of `iterations` can fill: what
 * it will hold resident (--plan). */
ts_optim_params ts_job_touched_optim(const ts_job *j, int iterations);

#endif
