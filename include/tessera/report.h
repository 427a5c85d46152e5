/* report: the JSON run report (--report FILE.json).
 *
 * One JSON object:
 *   "version":    tessera's version (TS_VERSION)
 *   "cwd":        the folder the run was started in (the settings' relative file
 *                 names are relative to it); absent when getcwd fails
 *   "settings":   every config field that has a value, under its field name
 *                 ("style_weight", "content_layers", ...); layers as an object of
 *                 name -> weight in the order given ({"relu4_2": 1}); enums by name
 *                 ("pool": "avg"); seeds as numbers (as decimal strings above 2^53)
 *   "iterations": [{"iteration", "content", "style", "tv", "total", "seconds"}, ...]
 *   plus whatever top-level fields ts_report_set / ts_report_set_str add
 *   ("width", "height", "seconds", ...); a tiled job's report (written by rank 0
 *   after every level) also has "levels" (ts_report_level_add), "ranks" (tiles and
 *   busy seconds per rank), "tiles_rendered", "job_seconds", "plan_hash"; a single
 *   piece's, "piece_levels" (ts_report_piece_level_add: its coarse-to-fine levels;
 *   its iterations then carry their "level").
 * Numbers are written so that they read back as the same double (the shortest of
 * %.15g, %.16g, %.17g that does; a non-finite one as null).  The file is written
 * atomically: FILE.part, fsync, rename. */
#ifndef TESSERA_REPORT_H
#define TESSERA_REPORT_H

#include "tessera/config.h"

typedef struct ts_report ts_report;
struct cJSON;

/* A report holding c's settings (c is only read during the call).  Caller owns;
 * NULL (message) when out of memory. */
ts_report *ts_report_create(const ts_config *c);

/* Set a top-level numeric / string field, replacing one of the same key.  The keys
 * "version", "settings" and "iterations" are the report's own.  Running out of
 * memory here makes ts_report_write fail. */
void ts_report_set(ts_report *r, const char *key, double v);
void ts_report_set_str(ts_report *r, const char *key, const char *v);

/* Append one iteration's losses (DESIGN.md's terms) and the seconds since the start
 * to "iterations".  0, or -1 (message) when out of memory. */
int ts_report_iteration(ts_report *r, int iter, double content, double style, double tv,
                        double total, double seconds);

/* The same with the iteration's coarse-to-fine level, "level" (level < 0: none). */
int ts_report_iteration_at(ts_report *r, int level, int iter, double content,
                           double style, double tv, double total, double seconds);

/* A tiled job's level, for "levels" (the job's report): its size, mode ("tile" or
 * "global"), iterations, the wall seconds it took in this run and where the tiles'
 * time went, and per tile (or block) its rank, iterations, final losses and seconds. */
typedef struct ts_report_tile {
	int row, col, rank, iterations;
	double content, style, tv, total, seconds;
} ts_report_tile;

typedef struct ts_report_level {
	int level, w, h, global, iterations;
	int ntiles, done_before;           /* tiles (blocks); of them finished by an earlier run */
	double seconds;                    /* wall seconds in this run */
	double conv_s, layers_s, loss_s, optim_s, tile_s; /* summed over the tiles */
	const ts_report_tile *tiles;       /* [ntiles_done] rendered in this run */
	int ntiles_done;
} ts_report_level;

/* Add (or replace, by level) a level to "levels" and recompute "ranks" (tiles and busy
 * seconds per rank over all levels) and the totals "job_seconds", "tiles".  0, or -1
 * (message) when out of memory. */
int ts_report_level_add(ts_report *r, const ts_report_level *lv, int nranks);

/* A single piece's coarse-to-fine level, for "piece_levels" (not "levels", which
 * names a tiled job's): its size, the iterations asked
 * and made, the losses of its start and of its result ("first", "final": content,
 * style, tv, total) and its wall seconds. */
typedef struct ts_report_piece_level {
	int level, w, h, iterations, done;
	double first[4], final[4]; /* content, style, tv, total */
	double seconds;
} ts_report_piece_level;

/* Append lv to "piece_levels".  0, or -1 (message) when out of memory. */
int ts_report_piece_level_add(ts_report *r, const ts_report_piece_level *lv);

/* Write the report to path atomically (path.part, fsync, rename); on failure no
 * path.part is left and path is untouched.  0, or -1 with a message naming the file. */
int ts_report_write(const ts_report *r, const char *path);

/* The report's tree as it stands (owned by r, valid until the next call on r):
 * what the contact sheet (sheet.h) is drawn from. */
const struct cJSON *ts_report_json(const ts_report *r);

/* Free the report; NULL does nothing. */
void ts_report_destroy(ts_report *r);

#endif
