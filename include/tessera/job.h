/* job: a tiled render on disk, with no knowledge of ranks.
 *
 * A job is the plan (pyramid levels, tile grids), the job directory (plan.ini with the
 * plan's hash, one checkpoint per finished tile, assembled levels, log.jsonl), the
 * network and the per-level style targets.  Rendering one tile and assembling one
 * level are plain functions: the scheduler (sched.c) only decides who does what.
 *
 * Determinism: a tile's result depends only on the configuration, the inputs and the
 * assembled level below (read by region, resampled region-exactly), never on which
 * rank renders it or whether the run was resumed. */
#ifndef TESSERA_JOB_H
#define TESSERA_JOB_H

#include <stdint.h>
#include <stdio.h>

#include "tessera/ckpt.h"
#include "tessera/config.h"
#include "tessera/coupled.h"
#include "tessera/objective.h"
#include "tessera/plan.h"
#include "tessera/render.h"

typedef struct ts_job ts_job;

/* Open the job for configuration c: probe the content, compute the output size and
 * the plan, build the network.  With setup (rank 0 only): create or check the job
 * directory; a directory made by another plan is refused unless c->fresh, which
 * empties it.  Caller owns.  NULL with a message. */
ts_job *ts_job_open(const ts_config *c, int setup);
void ts_job_close(ts_job *j);

const ts_plan *ts_job_plan(const ts_job *j);
uint64_t ts_job_hash(const ts_job *j);
int ts_job_iterations(const ts_job *j, int level);

/* ts_objective_prepared_floats / ts_objective_prepare for the job's network and
 * objective (the scheduler shares them between the ranks of a node). */
size_t ts_job_prepared_floats(const ts_job *j);
int ts_job_prepare_weights(ts_job *j, float *mem, int compute);

/* Print the plan: levels, grids, iterations, per-rank peak memory, time estimate
 * (from a short measured pass on this machine). */
int ts_job_print_plan(ts_job *j, FILE *f, int nranks);

/* The work of a level, in pixels a pass runs (iterations + 1 passes over its tiles'
 * pixels, or a global level's evaluated pixels), for the whole job's ETA. */
double ts_job_level_work(ts_job *j, int level, int nranks);

/* Style targets of a level.  compute: load and scale the styles and compute the
 * Gram matrices (rank 0); otherwise only allocate them (to receive a broadcast).
 * The job owns the result (replacing the previous level's). */
ts_style_targets *ts_job_targets(ts_job *j, int level, int compute);

/* The targets of the last ts_job_targets call (NULL before). */
ts_style_targets *ts_job_current_targets(ts_job *j);

/* 1 when the tile's checkpoint is valid for this plan, 0 when it must be (re)done
 * (a corrupt file is reported on stderr and removed). */
int ts_job_tile_valid(ts_job *j, int level, int index);

/* Render tile index (row-major) of a level with the current targets and write its
 * checkpoint.  stop (may be NULL) is polled between iterations; poll (may be NULL)
 * is called after every iteration (the scheduler serves requests there).  res
 * receives the losses and time (res->px is not kept).  0 done, 1 stopped (nothing
 * written), -1 error. */
int ts_job_render_tile(ts_job *j, int level, int index, int rank, volatile int *stop,
                       void (*poll)(void *), void *poll_user, ts_tile_result *res);

/* Blend the level's tiles (from their checkpoints) into JOB/L<k>.tif, or into the
 * output for the last level.  Holds at most the tile rows that meet one band. */
int ts_job_assemble(ts_job *j, int level);

/* --- levels optimized as one picture (--gram global; job_global.c) --- */

/* Whether level k is optimized as one picture over blocks (--gram global and a level
 * of more than one tile; level 0 is one tile either way). */
int ts_job_level_global(const ts_job *j, int level);
/* The blocks of level k (coupled.h).  Caller owns.  NULL with a message. */
ts_blocks *ts_job_blocks(const ts_job *j, int level);
/* 1 when every block of a global level has a valid checkpoint, 0 when the level must
 * be (re)done (a corrupt file is reported and removed), -1 on error. */
int ts_job_level_done(ts_job *j, int level);
/* Optimize a global level: every process calls it together, with comm (NULL: one
 * process, every block), and the current targets.  stop (may be NULL) is polled
 * between iterations (any process's stop stops all); progress: rank 0 prints a line
 * per iteration (< 0), at most one every `progress` seconds (> 0), or none (0).  At the end each process writes its blocks' checkpoints.  res: the
 * level's losses, iterations and time; res->x, res->y the blocks [x, y) written here,
 * res->w the KiB this process sent a step.  0 done, 1 stopped (nothing written), -1
 * error. */
int ts_job_render_global(ts_job *j, int level, const ts_comm *comm, volatile int *stop,
                         int progress, ts_tile_result *res);

/* Remove a finished global level's saved optimizer states (rank 0, once every
 * process has written its blocks). */
void ts_job_global_cleanup(ts_job *j, int level);

/* Append a finished tile to JOB/log.jsonl. */
int ts_job_log(ts_job *j, const ts_tile_result *res);

#endif
