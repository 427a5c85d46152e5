/* report: the JSON run report, built in memory with cJSON and written atomically.
 *
 * Invariants: the cJSON tree is owned by the report; "settings" is filled once at
 * creation; "iterations" only grows.  A failed allocation in a void setter is
 * remembered and turns the next ts_report_write into an error, so a report never
 * silently lacks a field. */
#include "tessera/report.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/blas.h"
#include "tessera/error.h"
#include "tessera/file.h"

struct ts_report {
	cJSON *root;       /* the whole report (owned) */
	cJSON *iterations; /* array inside root */
	int oom;           /* a setter ran out of memory */
};

static const char *const pool_names[] = { "avg", "max" };
static const char *const pad_names[] = { "zero", "reflect", "replicate" };
static const char *const optim_names[] = { "lbfgs", "adam" };
static const char *const progress_names[] = { "auto", "on", "off" };
static const char *const init_names[] = { "content", "noise", "style", "file" };

/* Name of enum value v in names[n] ("?" if out of range). */
static const char *
enum_name(int v, const char *const *names, int n)
{
	return v >= 0 && v < n ? names[v] : "?";
}

/* A number as JSON text that reads back as the same double: the shortest of %.15g,
 * %.16g, %.17g that round-trips exactly (cJSON's own printer accepts a last-bit
 * difference); a non-finite value as null. */
static cJSON *
num_item(double v)
{
	char buf[32];

	if (!isfinite(v))
		return cJSON_CreateNull();
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return cJSON_CreateRaw(buf);
}

/* o[key] = v (see num_item); the new item, or NULL when out of memory. */
static cJSON *
add_num(cJSON *o, const char *key, double v)
{
	cJSON *n = num_item(v);

	if (!n || !cJSON_AddItemToObject(o, key, n)) {
		cJSON_Delete(n);
		return NULL;
	}
	return n;
}

/* Seeds are 64-bit: a JSON number holds them exactly only up to 2^53. */
static cJSON *
add_u64(cJSON *o, const char *key, uint64_t v)
{
	char buf[24];

	if (v <= (1ULL << 53))
		return add_num(o, key, (double)v);
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	return cJSON_AddStringToObject(o, key, buf);
}

/* {"relu4_2": 1, ...} in the order given. */
static cJSON *
add_layers(cJSON *o, const char *key, const ts_layer_weights *lw)
{
	cJSON *l = cJSON_AddObjectToObject(o, key);

	if (!l)
		return NULL;
	for (int i = 0; i < lw->n; i++)
		if (!add_num(l, ts_vgg_layer_name(lw->layer[i]), lw->w[i]))
			return NULL;
	return l;
}

/* A string field when it is set: 0, or -1 when out of memory. */
static int
add_str(cJSON *o, const char *key, const char *v)
{
	return v && !cJSON_AddStringToObject(o, key, v) ? -1 : 0;
}

/* Every field of c that has a value.  0, or -1 when out of memory. */
static int
add_settings(cJSON *s, const ts_config *c)
{
	cJSON *a;
	int bad = 0;

	bad |= add_str(s, "config", c->config_path);
	bad |= add_str(s, "content", c->content);
	if (!(a = cJSON_AddArrayToObject(s, "style")))
		return -1;
	for (int i = 0; i < c->nstyle; i++) {
		cJSON *v = cJSON_CreateString(c->style[i] ? c->style[i] : "");

		if (!v || !cJSON_AddItemToArray(a, v)) {
			cJSON_Delete(v);
			return -1;
		}
	}
	if (!(a = cJSON_AddArrayToObject(s, "style_blend")))
		return -1;
	for (int i = 0; i < c->nstyle; i++) {
		cJSON *v = num_item(c->style_blend[i]);

		if (!v || !cJSON_AddItemToArray(a, v)) {
			cJSON_Delete(v);
			return -1;
		}
	}
	bad |= add_str(s, "out", c->out);
	if (c->width)
		bad |= !add_num(s, "width", c->width);
	if (c->height)
		bad |= !add_num(s, "height", c->height);
	if (c->size)
		bad |= !add_num(s, "size", c->size);
	if (c->print_w > 0 || c->print_h > 0) {
		bad |= !add_num(s, "print_width_in", c->print_w);
		bad |= !add_num(s, "print_height_in", c->print_h);
	}
	bad |= !add_num(s, "dpi", c->dpi);

	bad |= !add_num(s, "content_weight", c->content_weight);
	bad |= !add_num(s, "style_weight", c->style_weight);
	bad |= !add_num(s, "tv_weight", c->tv_weight);
	bad |= !add_num(s, "tv_chroma_weight", c->tv_chroma_weight);
	bad |= !add_num(s, "color_vars", c->color_vars);
	bad |= !add_layers(s, "content_layers", &c->content_layers);
	bad |= !add_layers(s, "style_layers", &c->style_layers);
	bad |= !add_num(s, "style_scale", c->style_scale);
	bad |= !cJSON_AddBoolToObject(s, "original_colors", c->original_colors);
	bad |= !cJSON_AddBoolToObject(s, "normalize_style", c->normalize_style);
	bad |= !cJSON_AddStringToObject(s, "pool", enum_name(c->pool, pool_names, 2));
	bad |= !cJSON_AddStringToObject(s, "padding", enum_name(c->padding, pad_names, 3));

	bad |= !cJSON_AddStringToObject(s, "init", enum_name(c->init, init_names, 4));
	if (c->init == TS_INIT_FILE)
		bad |= add_str(s, "init_file", c->init_file);
	bad |= !add_u64(s, "seed", c->seed);
	bad |= !add_num(s, "start_size", c->start_size);
	bad |= !add_num(s, "margin", c->margin);
	bad |= !add_num(s, "iterations", c->iterations);
	bad |= !cJSON_AddStringToObject(s, "optimizer",
	                                enum_name(c->optimizer, optim_names, 2));
	bad |= !add_num(s, "lbfgs_history", c->lbfgs_history);
	bad |= !cJSON_AddStringToObject(s, "lbfgs_precision", c->lbfgs_half ? "half" : "single");
	bad |= !cJSON_AddBoolToObject(s, "lbfgs_backtrack", c->lbfgs_backtrack);
	bad |= !cJSON_AddStringToObject(s, "gram", c->gram_global ? "global" : "tile");
	bad |= !cJSON_AddNumberToObject(s, "checkpoint_every", c->checkpoint_every);
	bad |= !add_num(s, "learning_rate", c->learning_rate);

	bad |= !cJSON_AddStringToObject(s, "weights", c->weights ? c->weights : "builtin");
	bad |= !add_num(s, "builtin_width", c->builtin_width);
	bad |= !add_u64(s, "builtin_seed", c->builtin_seed);

	bad |= add_str(s, "report", c->report);
	bad |= add_str(s, "sheet", c->sheet);
	bad |= !add_num(s, "save_every", c->save_every);
	bad |= !cJSON_AddStringToObject(s, "progress",
	                                enum_name(c->progress, progress_names, 3));
	bad |= !add_num(s, "threads", c->threads);

	bad |= !add_num(s, "tile", c->tile);
	bad |= !add_num(s, "overlap", c->overlap);
	bad |= add_str(s, "job_dir", c->job_dir);
	bad |= !cJSON_AddBoolToObject(s, "plan", c->plan_only);
	bad |= !cJSON_AddBoolToObject(s, "fresh", c->fresh);
	bad |= !add_num(s, "level_factor", c->level_factor);
	if (c->nlevel_iterations > 0) {
		if (!(a = cJSON_AddArrayToObject(s, "level_iterations")))
			return -1;
		for (int i = 0; i < c->nlevel_iterations; i++) {
			cJSON *v = num_item(c->level_iterations[i]);

			if (!v || !cJSON_AddItemToArray(a, v)) {
				cJSON_Delete(v);
				return -1;
			}
		}
	}
	return bad ? -1 : 0;
}

ts_report *
ts_report_create(const ts_config *c)
{
	ts_report *r = calloc(1, sizeof *r);
	cJSON *settings;

	if (!r)
		goto fail;
	if (!(r->root = cJSON_CreateObject()))
		goto fail;
	if (!cJSON_AddStringToObject(r->root, "version", TS_VERSION))
		goto fail;
	if (!cJSON_AddStringToObject(r->root, "blas_kernels", ts_blas_core()))
		goto fail;
	{
		char cwd[PATH_MAX];

		if (getcwd(cwd, sizeof cwd) && !cJSON_AddStringToObject(r->root, "cwd", cwd))
			goto fail;
	}
	if (!(settings = cJSON_AddObjectToObject(r->root, "settings")))
		goto fail;
	if (add_settings(settings, c))
		goto fail;
	if (!(r->iterations = cJSON_AddArrayToObject(r->root, "iterations")))
		goto fail;
	return r;
fail:
	ts_error("report", "out of memory");
	ts_report_destroy(r);
	return NULL;
}

/* Put item under key at the top level, replacing an older one. */
static void
set_item(ts_report *r, const char *key, cJSON *item)
{
	TS_ASSERT(strcmp(key, "version") && strcmp(key, "settings") &&
	          strcmp(key, "iterations") && strcmp(key, "cwd"));
	if (!item) {
		r->oom = 1;
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(r->root, key)) {
		if (!cJSON_ReplaceItemInObjectCaseSensitive(r->root, key, item)) {
			cJSON_Delete(item);
			r->oom = 1;
		}
	} else if (!cJSON_AddItemToObject(r->root, key, item)) {
		cJSON_Delete(item);
		r->oom = 1;
	}
}

void
ts_report_set(ts_report *r, const char *key, double v)
{
	set_item(r, key, num_item(v));
}

void
ts_report_set_str(ts_report *r, const char *key, const char *v)
{
	set_item(r, key, cJSON_CreateString(v ? v : ""));
}

int
ts_report_iteration(ts_report *r, int iter, double content, double style, double tv,
                    double total, double seconds)
{
	return ts_report_iteration_at(r, -1, iter, content, style, tv, total, seconds);
}

int
ts_report_iteration_at(ts_report *r, int level, int iter, double content, double style,
                       double tv, double total, double seconds)
{
	cJSON *e = cJSON_CreateObject();
	int ret = -1;

	if (!e || !add_num(e, "iteration", iter) ||
	    (level >= 0 && !add_num(e, "level", level)) ||
	    !add_num(e, "content", content) ||
	    !add_num(e, "style", style) ||
	    !add_num(e, "tv", tv) ||
	    !add_num(e, "total", total) ||
	    !add_num(e, "seconds", seconds))
		goto cleanup;
	if (!cJSON_AddItemToArray(r->iterations, e))
		goto cleanup;
	e = NULL; /* now owned by the array */
	ret = 0;
cleanup:
	if (ret)
		ts_error("report", "out of memory");
	cJSON_Delete(e);
	return ret;
}

/* The object of level k in "levels", or NULL. */
static cJSON *
level_obj(cJSON *levels, int k)
{
	cJSON *it;

	cJSON_ArrayForEach(it, levels)
	{
		cJSON *l = cJSON_GetObjectItem(it, "level");

		if (l && (int)l->valuedouble == k)
			return it;
	}
	return NULL;
}

/* {"content", "style", "tv", "total"} of v[4] under key in o; 0 or -1. */
static int
add_parts(cJSON *o, const char *key, const double *v)
{
	static const char *const names[] = { "content", "style", "tv", "total" };
	cJSON *p = cJSON_AddObjectToObject(o, key);

	if (!p)
		return -1;
	for (int i = 0; i < 4; i++)
		if (!add_num(p, names[i], v[i]))
			return -1;
	return 0;
}

int
ts_report_piece_level_add(ts_report *r, const ts_report_piece_level *lv)
{
	cJSON *levels = cJSON_GetObjectItem(r->root, "piece_levels"), *o = cJSON_CreateObject();

	if (!o || (!levels && !(levels = cJSON_AddArrayToObject(r->root, "piece_levels"))) ||
	    !cJSON_AddItemToArray(levels, o)) {
		cJSON_Delete(o);
		goto oom;
	}
	/* o belongs to levels now */
	if (!add_num(o, "level", lv->level) || !add_num(o, "width", lv->w) ||
	    !add_num(o, "height", lv->h) || !add_num(o, "iterations", lv->iterations) ||
	    !add_num(o, "iterations_done", lv->done) || add_parts(o, "first", lv->first) ||
	    add_parts(o, "final", lv->final) || !add_num(o, "seconds", lv->seconds))
		goto oom;
	return 0;
oom:
	ts_error("report", "out of memory");
	return -1;
}

int
ts_report_level_add(ts_report *r, const ts_report_level *lv, int nranks)
{
	cJSON *levels = cJSON_GetObjectItem(r->root, "levels"), *o = NULL, *tiles, *ranks;
	double *busy = NULL, total_s = 0;
	int *count = NULL, ntiles = 0, bad = 0;

	if (!levels && !(levels = cJSON_AddArrayToObject(r->root, "levels")))
		goto oom;
	if (!(o = cJSON_CreateObject()))
		goto oom;
	bad |= !cJSON_AddNumberToObject(o, "level", lv->level);
	bad |= !cJSON_AddNumberToObject(o, "width", lv->w);
	bad |= !cJSON_AddNumberToObject(o, "height", lv->h);
	bad |= !cJSON_AddStringToObject(o, "gram", lv->global ? "global" : "tile");
	bad |= !cJSON_AddNumberToObject(o, "iterations", lv->iterations);
	bad |= !cJSON_AddNumberToObject(o, lv->global ? "blocks" : "tiles", lv->ntiles);
	bad |= !cJSON_AddNumberToObject(o, "done_before", lv->done_before);
	bad |= !cJSON_AddNumberToObject(o, "seconds", lv->seconds);
	bad |= !cJSON_AddNumberToObject(o, "conv_seconds", lv->conv_s);
	bad |= !cJSON_AddNumberToObject(o, "layers_seconds", lv->layers_s);
	bad |= !cJSON_AddNumberToObject(o, "loss_seconds", lv->loss_s);
	bad |= !cJSON_AddNumberToObject(o, "optim_seconds", lv->optim_s);
	bad |= !cJSON_AddNumberToObject(o, "tile_seconds", lv->tile_s);
	if (bad || !(tiles = cJSON_AddArrayToObject(o, lv->global ? "block_list" : "tile_list")))
		goto oom;
	for (int i = 0; i < lv->ntiles_done; i++) {
		const ts_report_tile *t = &lv->tiles[i];
		cJSON *e = cJSON_CreateObject();

		if (!e || !cJSON_AddItemToArray(tiles, e))
			goto oom;
		bad |= !cJSON_AddNumberToObject(e, "row", t->row);
		bad |= !cJSON_AddNumberToObject(e, "col", t->col);
		bad |= !cJSON_AddNumberToObject(e, "rank", t->rank);
		bad |= !cJSON_AddNumberToObject(e, "iterations", t->iterations);
		bad |= !cJSON_AddNumberToObject(e, "content", t->content);
		bad |= !cJSON_AddNumberToObject(e, "style", t->style);
		bad |= !cJSON_AddNumberToObject(e, "tv", t->tv);
		bad |= !cJSON_AddNumberToObject(e, "total", t->total);
		bad |= !cJSON_AddNumberToObject(e, "seconds", t->seconds);
		if (bad)
			goto oom;
	}
	{
		cJSON *old = level_obj(levels, lv->level);

		if (old)
			cJSON_ReplaceItemViaPointer(levels, old, o);
		else if (!cJSON_AddItemToArray(levels, o))
			goto oom;
		o = NULL;
	}
	/* per rank over every level: tiles rendered in this run and their busy seconds */
	busy = calloc((size_t)nranks, sizeof *busy);
	count = calloc((size_t)nranks, sizeof *count);
	if (!busy || !count)
		goto oom;
	{
		cJSON *l;

		cJSON_ArrayForEach(l, levels)
		{
			int global = !strcmp(cJSON_GetObjectItem(l, "gram")->valuestring, "global");
			cJSON *list = cJSON_GetObjectItem(l, global ? "block_list" : "tile_list"), *e;

			total_s += cJSON_GetObjectItem(l, "seconds")->valuedouble;
			cJSON_ArrayForEach(e, list)
			{
				int rk = (int)cJSON_GetObjectItem(e, "rank")->valuedouble;

				if (rk < 0 || rk >= nranks)
					continue;
				count[rk]++;
				ntiles++;
				/* a block's seconds are its level's, shared by all ranks */
				if (!global)
					busy[rk] += cJSON_GetObjectItem(e, "seconds")->valuedouble;
			}
			if (global)
				for (int k = 0; k < nranks; k++)
					busy[k] += cJSON_GetObjectItem(l, "seconds")->valuedouble;
		}
	}
	cJSON_DeleteItemFromObject(r->root, "ranks");
	if (!(ranks = cJSON_AddArrayToObject(r->root, "ranks")))
		goto oom;
	for (int k = 0; k < nranks; k++) {
		cJSON *e = cJSON_CreateObject();

		if (!e || !cJSON_AddItemToArray(ranks, e) || !cJSON_AddNumberToObject(e, "rank", k) ||
		    !cJSON_AddNumberToObject(e, "tiles", count[k]) ||
		    !cJSON_AddNumberToObject(e, "busy_seconds", busy[k]))
			goto oom;
	}
	ts_report_set(r, "job_seconds", total_s);
	ts_report_set(r, "tiles_rendered", ntiles);
	free(busy);
	free(count);
	return 0;
oom:
	cJSON_Delete(o);
	free(busy);
	free(count);
	r->oom = 1;
	ts_error("report", "out of memory");
	return -1;
}

int
ts_report_write(const ts_report *r, const char *path)
{
	char *text = NULL;
	ts_file *f = NULL;
	size_t len;
	int ret = -1;

	if (r->oom) {
		ts_error("report", "out of memory while building \"%s\"", path);
		goto cleanup;
	}
	if (!(text = cJSON_Print(r->root))) {
		ts_error("report", "out of memory while printing \"%s\"", path);
		goto cleanup;
	}
	len = strlen(text);
	/* atomically (file.h): path is either the old file or the whole new one */
	if (!(f = ts_file_open("report", path)))
		goto cleanup;
	if (fwrite(text, 1, len, ts_file_stream(f)) != len ||
	    fputc('\n', ts_file_stream(f)) == EOF) {
		ts_error_errno("report", "cannot write \"%s\"", path);
		goto cleanup;
	}
	ret = ts_file_commit(f);
	f = NULL;
cleanup:
	ts_file_abort(f);
	cJSON_free(text);
	return ret;
}

const struct cJSON *
ts_report_json(const ts_report *r)
{
	return r->root;
}

void
ts_report_destroy(ts_report *r)
{
	if (!r)
		return;
	cJSON_Delete(r->root);
	free(r);
}
