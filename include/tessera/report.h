/* report: the JSON run report (--report FILE.json).
 *
 * One JSON object:
 *   "version":    tessera's version (TS_VERSION)
 *   "settings":   every config field that has a value, under its field name
 *                 ("style_weight", "content_layers", ...); layers as an object of
 *                 name -> weight in the order given ({"relu4_2": 1}); enums by name
 *                 ("pool": "avg"); seeds as numbers (as decimal strings above 2^53)
 *   "iterations": [{"iteration", "content", "style", "tv", "total", "seconds"}, ...]
 *   plus whatever top-level fields ts_report_set / ts_report_set_str add
 *   ("width", "height", "seconds", ...).
 * Numbers are written so that they read back as the same double (the shortest of
 * %.15g, %.16g, %.17g that does; a non-finite one as null).  The file is written
 * atomically: FILE.part, fsync, rename. */
#ifndef TESSERA_REPORT_H
#define TESSERA_REPORT_H

#include "tessera/config.h"

typedef struct ts_report ts_report;

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

/* Write the report to path atomically (path.part, fsync, rename); on failure no
 * path.part is left and path is untouched.  0, or -1 with a message naming the file. */
int ts_report_write(const ts_report *r, const char *path);

/* Free the report; NULL does nothing. */
void ts_report_destroy(ts_report *r);

#endif
