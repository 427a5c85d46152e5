/* config: every option of a run, from the command line and from an INI file.
 *
 * One table (`options` below) names every option once: its long name (also its INI
 * key), what kind of value it takes, the ts_config field it sets, and its --help line.
 * The command line (getopt_long), the INI loader (libinih) and the --help text are all
 * driven by that table, so they cannot drift apart.  The value parsers are in
 * config_values.c, the checks of a whole configuration (ts_config_check) in
 * config_check.c.
 *
 * Invariants: parsing never stops at the first problem; each problem is appended to
 * the error buffer (one per line, see error.h) and the function returns -1 at the
 * end.  A bad value leaves the field as it was.  Strings in ts_config are owned by it (strdup),
 * replaced values are freed at once. */
#include "tessera/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "config_internal.h"

/* The lead may flip this default: it is used by ts_config_defaults and --help. */
#define DEFAULT_NORMALIZE_STYLE 1
/* Seed of the built-in network: every machine builds the same weights from it. */
#define DEFAULT_BUILTIN_SEED 0x7e55e7a2019ULL
#define INI_LINE_MAX 65536    /* longest INI line (long paths plus comments) */
#define OPT_VAL_BASE 1000     /* getopt_long val of options[i] is OPT_VAL_BASE + i */

enum kind {
	K_GROUP,    /* not an option: a heading of the --help text */
	K_CONFIG,   /* --config FILE: read before everything else; command line only */
	K_STR,      /* char * field, non-empty */
	K_STYLES,   /* style[] / nstyle from a comma list */
	K_BLEND,    /* style_blend[] / has_blend from a comma list */
	K_INT,      /* int field */
	K_DIM,      /* int field where 0 means "unset": an explicit value must be >= 1 */
	K_DOUBLE,   /* double field, finite */
	K_U64,      /* uint64_t field */
	K_FLAG,     /* int field set to 1 (INI: a boolean) */
	K_QUIET,    /* --quiet: progress = off */
	K_ONOFF,    /* int field from on|off (any boolean spelling) */
	K_POOL,     /* avg|max */
	K_PAD,      /* zero|reflect|replicate */
	K_OPTIM,    /* lbfgs|adam */
	K_LBPREC,   /* single|half */
	K_GRAM,     /* tile|global */
	K_PROGRESS, /* auto|on|off */
	K_FIT,      /* crop|pad|stretch */
	K_INIT,     /* content|noise|style|FILE */
	K_PRINT,    /* WxH(in|cm|mm) into print_w / print_h */
	K_LAYERS,   /* ts_layer_weights field */
	K_INTLIST,  /* level_iterations / nlevel_iterations */
	K_CLIFLAG   /* --help / --version: command line only */
};

typedef struct optdef {
	const char *name;  /* long option and INI key; for K_GROUP, the heading */
	enum kind kind;
	size_t off;        /* offsetof the field in ts_config (unused for some kinds) */
	const char *arg;   /* value shown in --help; NULL for flags */
	const char *help;  /* one line of --help */
	const char *dflt;  /* default shown in --help; NULL: formatted from the defaults */
} optdef;

#define F(field) offsetof(ts_config, field)

static const optdef options[] = {
	{ "Input and output:", K_GROUP, 0, NULL, NULL, NULL },
	{ "config", K_CONFIG, F(config_path), "FILE",
	  "read options from an INI file", "none" },
	{ "content", K_STR, F(content), "FILE", "content image (PNG, JPEG, TIFF, BigTIFF)",
	  "required" },
	{ "style", K_STYLES, 0, "FILE[,FILE...]", "style image(s), comma separated",
	  "required" },
	{ "style-blend", K_BLEND, 0, "W[,W...]",
	  "one weight per style, normalized to sum 1", "equal" },
	{ "out", K_STR, F(out), "FILE", "output image: .png .jpg .jpeg .tif .tiff .bmp",
	  "required unless --plan" },
	{ "width", K_DIM, F(width), "N", "output width in pixels",
	  "from --height or the content" },
	{ "height", K_DIM, F(height), "N", "output height in pixels",
	  "from --width or the content" },
	{ "size", K_DIM, F(size), "N", "output long side in pixels",
	  "unset" },
	{ "print-size", K_PRINT, 0, "WxH(in|cm|mm)",
	  "print size, e.g. 24x36in, 594x841mm, 59.4x84.1cm", "unset" },
	{ "dpi", K_INT, F(dpi), "N", "dots per inch for --print-size (and the output's "
	  "resolution tags)", NULL },
	{ "fit", K_FIT, F(fit), "crop|pad|stretch",
	  "an output shaped unlike the content: cut to cover, pad, or stretch (centred)", NULL },
	{ "deep-zoom", K_STR, F(deep_zoom), "DIR",
	  "also write Deep Zoom tiles (DIR/NAME.dzi) and an index.html viewer", "none" },

	{ "Objective:", K_GROUP, 0, NULL, NULL, NULL },
	{ "content-weight", K_DOUBLE, F(content_weight), "X", "weight of the content loss",
	  NULL },
	{ "style-weight", K_DOUBLE, F(style_weight), "X", "weight of the style loss", NULL },
	{ "tv-weight", K_DOUBLE, F(tv_weight), "X", "weight of the total variation loss",
	  NULL },
	{ "tv-chroma-weight", K_DOUBLE, F(tv_chroma_weight), "X",
	  "weight of a total variation loss on the colour (Cb, Cr) alone", NULL },
	{ "color-vars", K_DOUBLE, F(color_vars), "X",
	  "optimize luma and chroma (YCbCr) with chroma scaled by X (0: RGB pixels)", NULL },
	{ "content-layers", K_LAYERS, F(content_layers), "L[:W],...",
	  "content layers with optional weights", NULL },
	{ "style-layers", K_LAYERS, F(style_layers), "L[:W],...",
	  "style layers with optional weights", NULL },
	{ "style-scale", K_DOUBLE, F(style_scale), "X",
	  "style long side / output long side, (0, 16]", NULL },
	{ "original-colors", K_FLAG, F(original_colors), NULL,
	  "keep the colours of the content image", NULL },
	{ "normalize-style", K_ONOFF, F(normalize_style), "on|off",
	  "divide each style loss by mean(target^2)", NULL },
	{ "pool", K_POOL, F(pool), "avg|max", "pooling in the network", NULL },
	{ "padding", K_PAD, F(padding), "zero|reflect|replicate",
	  "what the convolutions read outside the picture's borders", NULL },

	{ "Start and optimizer:", K_GROUP, 0, NULL, NULL, NULL },
	{ "init", K_INIT, 0, "content|noise|style|FILE",
	  "starting image (FILE: the render begins at the first level larger than FILE)",
	  NULL },
	{ "seed", K_U64, F(seed), "N", "seed of the noise start", NULL },
	{ "start-size", K_INT, F(start_size), "N",
	  "coarse to fine: one picture starts at a long side <= N and grows by "
	  "--level-factor (0: at full size)", NULL },
	{ "margin", K_INT, F(margin), "N",
	  "px rendered beyond each border, the content mirrored there, and cut off "
	  "(rounded up to 16; 0: none)", NULL },
	{ "iterations", K_INT, F(iterations), "N",
	  "optimizer iterations (0: write the start)", NULL },
	{ "optimizer", K_OPTIM, F(optimizer), "lbfgs|adam", "optimizer", NULL },
	{ "lbfgs-history", K_INT, F(lbfgs_history), "N",
	  "L-BFGS memory (pairs kept), 1..1000", NULL },
	{ "lbfgs-precision", K_LBPREC, F(lbfgs_half), "single|half",
	  "floats of the L-BFGS memory: 32-bit, or 16-bit (half the bytes, less time)", NULL },
	{ "lbfgs-backtrack", K_ONOFF, F(lbfgs_backtrack), "on|off",
	  "a step that raises the loss is taken back to a quarter of its length, up to 8 "
	  "times (off: torch's fixed steps)", NULL },
	{ "learning-rate", K_DOUBLE, F(learning_rate), "X",
	  "step size (0: L-BFGS 1, Adam 0.02)", NULL },

	{ "Network:", K_GROUP, 0, NULL, NULL, NULL },
	{ "weights", K_STR, F(weights), "builtin|FILE",
	  "VGG-19: builtin, .safetensors, .pth, .caffemodel", "builtin" },
	{ "builtin-width", K_INT, F(builtin_width), "N",
	  "divide builtin channels by N, 1..64", NULL },
	{ "builtin-seed", K_U64, F(builtin_seed), "N", "seed of the built-in weights", NULL },

	{ "Progress and reports:", K_GROUP, 0, NULL, NULL, NULL },
	{ "report", K_STR, F(report), "FILE.json",
	  "write settings and losses of every iteration", "none" },
	{ "sheet", K_STR, F(sheet), "FILE.png",
	  "a contact sheet: content, styles, output and the loss curve side by side",
	  "none" },
	{ "save-every", K_INT, F(save_every), "N",
	  "write the image every N iterations (0: never), and each level below the "
	  "output as OUT_level<k>.tif (tiled runs: only those)", NULL },
	{ "progress", K_PROGRESS, F(progress), "auto|on|off",
	  "progress on stderr (auto: a live line on a terminal, else a line every "
	  "--progress-every seconds)", NULL },
	{ "progress-every", K_INT, F(progress_every), "SECONDS",
	  "--progress auto without a terminal (a batch log): a line every SECONDS", NULL },
	{ "quiet", K_QUIET, 0, NULL, "same as --progress off", NULL },
	{ "threads", K_INT, F(threads), "N",
	  "compute threads per rank (0: $OPENBLAS_NUM_THREADS, $OMP_NUM_THREADS, else the "
	  "CPUs the rank may run on)", NULL },

	{ "Tiled rendering:", K_GROUP, 0, NULL, NULL, NULL },
	{ "tile", K_INT, F(tile), "N", "tile side in pixels, >= 64, multiple of 16", NULL },
	{ "checkpoint-every", K_INT, F(checkpoint_every), "N",
	  "global levels: save the optimizer's state every N iterations (0: only when "
	  "stopped)", NULL },
	{ "gram", K_GRAM, F(gram_global), "tile|global",
	  "tiled levels: tiles optimized alone, or the level as one picture over blocks",
	  NULL },
	{ "overlap", K_INT, F(overlap), "N", "border shared by neighbouring tiles, < tile/2",
	  NULL },
	{ "job-dir", K_STR, F(job_dir), "DIR", "checkpoints; run again to resume",
	  "OUT.job" },
	{ "plan", K_FLAG, F(plan_only), NULL, "print the grid, memory, disk and time; run "
	  "nothing", NULL },
	{ "ranks", K_INT, F(plan_ranks), "N", "--plan: plan for N ranks (0: the ranks it runs on)",
	  NULL },
	{ "fresh", K_FLAG, F(fresh), NULL, "discard an existing job directory", NULL },
	{ "level-factor", K_DOUBLE, F(level_factor), "X",
	  "size ratio between pyramid levels, in (1, 8]", NULL },
	{ "level-iterations", K_INTLIST, 0, "N[,N...]",
	  "iterations per level from level 0 (fewer than levels: the last repeats)",
	  "--iterations" },

	{ "Other:", K_GROUP, 0, NULL, NULL, NULL },
	{ "help", K_CLIFLAG, F(show_help), NULL, "print this help and exit", NULL },
	{ "version", K_CLIFLAG, F(show_version), NULL, "print the version and exit", NULL },
};

#define NOPTIONS ((int)(sizeof options / sizeof options[0]))

static const char *const pool_names[] = { "avg", "max" };
static const char *const pad_names[] = { "zero", "reflect", "replicate" };
static const char *const optim_names[] = { "lbfgs", "adam" };
static const char *const lbprec_names[] = { "single", "half" };
static const char *const gram_names[] = { "tile", "global" };
static const char *const progress_names[] = { "auto", "on", "off" };
static const char *const fit_names[] = { "crop", "pad", "stretch" };

static int *
field_int(ts_config *c, const optdef *o)
{
	return (int *)((char *)c + o->off);
}

/* Apply the value v of option o to c.  `where` names it in messages ("--width" or
 * "config: FILE:LINE: width").  from_ini: flags take a boolean value. */
static void
set_value(ts_config *c, const optdef *o, const char *v, const char *where, int from_ini,
          int *nerr)
{
	int i, b;
	double d;
	uint64_t u;

	switch (o->kind) {
	case K_GROUP:
	case K_CONFIG: /* read before the rest: see ts_config_parse */
		break;
	case K_STR:
		ts_cfg_set_string((char **)((char *)c + o->off), v, where, nerr);
		break;
	case K_STYLES:
		ts_cfg_parse_styles(c, v, where, nerr);
		break;
	case K_BLEND:
		ts_cfg_parse_blend(c, v, where, nerr);
		break;
	case K_INT:
		if (!ts_cfg_parse_int(v, where, &i, nerr))
			*field_int(c, o) = i;
		break;
	case K_DIM:
		if (ts_cfg_parse_int(v, where, &i, nerr))
			break;
		if (i < 1)
			ts_error_add(nerr, NULL, "%s: %d is not in 1..%d", where, i, MAX_DIM);
		else
			*field_int(c, o) = i;
		break;
	case K_DOUBLE:
		if (!ts_cfg_parse_double(v, where, &d, nerr))
			*(double *)((char *)c + o->off) = d;
		break;
	case K_U64:
		if (!ts_cfg_parse_u64(v, where, &u, nerr))
			*(uint64_t *)((char *)c + o->off) = u;
		break;
	case K_FLAG:
	case K_QUIET:
	case K_CLIFLAG:
		b = 1;
		if (from_ini && (b = ts_cfg_parse_bool(v)) < 0) {
			ts_error_add(nerr, NULL, "%s: \"%s\" is not a boolean (true/false, yes/no, on/off, 1/0)",
				       where, v);
			break;
		}
		if (o->kind == K_QUIET) {
			if (b)
				c->progress = TS_PROGRESS_OFF;
		} else {
			*field_int(c, o) = b;
		}
		break;
	case K_ONOFF:
		if ((b = ts_cfg_parse_bool(v)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not on or off", where, v);
		else
			*field_int(c, o) = b;
		break;
	case K_POOL:
		if ((i = ts_cfg_parse_name(v, pool_names, 2)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not avg or max", where, v);
		else
			c->pool = (ts_pool_mode)i;
		break;
	case K_PAD:
		if ((i = ts_cfg_parse_name(v, pad_names, 3)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not zero, reflect or replicate", where,
			             v);
		else
			c->padding = (ts_pad_mode)i;
		break;
	case K_OPTIM:
		if ((i = ts_cfg_parse_name(v, optim_names, 2)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not lbfgs or adam", where, v);
		else
			c->optimizer = (ts_optim_kind)i;
		break;
	case K_LBPREC:
		if ((i = ts_cfg_parse_name(v, lbprec_names, 2)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not single or half", where, v);
		else
			c->lbfgs_half = i;
		break;
	case K_GRAM:
		if ((i = ts_cfg_parse_name(v, gram_names, 2)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not tile or global", where, v);
		else
			c->gram_global = i;
		break;
	case K_PROGRESS:
		if ((i = ts_cfg_parse_name(v, progress_names, 3)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not auto, on or off", where, v);
		else
			c->progress = (ts_progress_mode)i;
		break;
	case K_FIT:
		if ((i = ts_cfg_parse_name(v, fit_names, 3)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not crop, pad or stretch", where, v);
		else
			c->fit = (ts_fit_mode)i;
		break;
	case K_INIT:
		ts_cfg_parse_init(c, v, where, nerr);
		break;
	case K_PRINT:
		ts_cfg_parse_print(c, v, where, nerr);
		break;
	case K_LAYERS:
		ts_cfg_parse_layers((ts_layer_weights *)((char *)c + o->off), v, where, nerr);
		break;
	case K_INTLIST:
		ts_cfg_parse_intlist(c, v, where, nerr);
		break;
	}
}

void
ts_config_defaults(ts_config *c)
{
	static const char *const style_layers[] = { "relu1_1", "relu2_1", "relu3_1",
		                                    "relu4_1", "relu5_1" };

	memset(c, 0, sizeof *c);
	c->dpi = 300;
	c->content_weight = 1;
	c->style_weight = 1;
	c->tv_weight = 1e-2;
	c->tv_chroma_weight = 3; /* issue 17: bench/quality.sh, README */
	c->content_layers.n = 1;
	c->content_layers.layer[0] = ts_vgg_layer_index("relu4_2");
	c->content_layers.w[0] = 1;
	TS_ASSERT(c->content_layers.layer[0] >= 0);
	c->style_layers.n = 5;
	for (int i = 0; i < 5; i++) {
		c->style_layers.layer[i] = ts_vgg_layer_index(style_layers[i]);
		c->style_layers.w[i] = 1;
		TS_ASSERT(c->style_layers.layer[i] >= 0);
	}
	c->style_scale = 1;
	c->original_colors = 0;
	c->normalize_style = DEFAULT_NORMALIZE_STYLE;
	c->pool = TS_POOL_AVG;
	c->padding = TS_PAD_ZERO;
	c->init = TS_INIT_CONTENT;
	c->seed = 0;
	c->start_size = 128;
	c->lbfgs_backtrack = 1;
	c->margin = 16;
	c->iterations = 500;
	c->optimizer = TS_OPTIM_LBFGS;
	c->lbfgs_history = 100;
	c->lbfgs_half = 0;
	c->learning_rate = 0;
	c->weights = NULL; /* builtin */
	c->builtin_width = 1;
	c->builtin_seed = DEFAULT_BUILTIN_SEED;
	c->progress = TS_PROGRESS_AUTO;
	c->progress_every = 60;
	c->tile = 512;
	c->overlap = 128;
	c->checkpoint_every = 20;
	c->level_factor = 2;
}

/* "relu4_2,relu5_1:0.5" */
static void
format_layers(const ts_layer_weights *lw, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < lw->n && n < len; i++) {
		const char *name = ts_vgg_layer_name(lw->layer[i]);

		if (lw->w[i] == 1)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", name);
		else
			n += (size_t)snprintf(buf + n, len - n, "%s%s:%g", i ? "," : "", name,
			                      lw->w[i]);
	}
	if (!lw->n)
		snprintf(buf, len, "none");
}

/* The default of option o as --help shows it (d: a config holding the defaults). */
static void
format_default(const ts_config *d, const optdef *o, char *buf, size_t len)
{
	const char *p = (const char *)d + o->off;

	if (o->dflt) {
		snprintf(buf, len, "%s", o->dflt);
		return;
	}
	switch (o->kind) {
	case K_INT:
	case K_DIM:
		snprintf(buf, len, "%d", *(const int *)p);
		break;
	case K_DOUBLE:
		snprintf(buf, len, "%g", *(const double *)p);
		break;
	case K_U64:
		snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)p);
		break;
	case K_FLAG:
	case K_ONOFF:
		snprintf(buf, len, "%s", *(const int *)p ? "on" : "off");
		break;
	case K_POOL:
		snprintf(buf, len, "%s", pool_names[d->pool]);
		break;
	case K_PAD:
		snprintf(buf, len, "%s", pad_names[d->padding]);
		break;
	case K_OPTIM:
		snprintf(buf, len, "%s", optim_names[d->optimizer]);
		break;
	case K_LBPREC:
		snprintf(buf, len, "%s", lbprec_names[d->lbfgs_half]);
		break;
	case K_GRAM:
		snprintf(buf, len, "%s", gram_names[d->gram_global]);
		break;
	case K_PROGRESS:
		snprintf(buf, len, "%s", progress_names[d->progress]);
		break;
	case K_FIT:
		snprintf(buf, len, "%s", fit_names[d->fit]);
		break;
	case K_INIT:
		snprintf(buf, len, "%s", ts_cfg_init_names[d->init]);
		break;
	case K_LAYERS:
		format_layers((const ts_layer_weights *)p, buf, len);
		break;
	default:
		buf[0] = '\0';
		break;
	}
}

void
ts_config_usage(FILE *f)
{
	ts_config d;

	ts_config_defaults(&d);
	fprintf(f,
	        "Usage: tessera --content FILE --style FILE[,FILE...] --out FILE [OPTION]...\n"
	        "       mpirun -np N tessera --config FILE.ini [OPTION]...\n"
	        "Neural style transfer (Gatys et al., VGG-19) at poster size, tiled over MPI\n"
	        "ranks.  Options are GNU long options (--opt VALUE or --opt=VALUE); every one\n"
	        "is also an INI key of --config (the command line wins over the file).\n"
	        "A killed tiled run resumes when the same command is run again.\n");
	for (int i = 0; i < NOPTIONS; i++) {
		const optdef *o = &options[i];
		char left[64], def[256];
		int n;

		if (o->kind == K_GROUP) {
			fprintf(f, "\n%s\n", o->name);
			continue;
		}
		n = snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "",
		             o->arg ? o->arg : "");
		format_default(&d, o, def, sizeof def);
		if (n > 28)
			fprintf(f, "  %s\n  %-28s  %s", left, "", o->help);
		else
			fprintf(f, "  %-28s  %s", left, o->help);
		if (def[0] && o->kind != K_CLIFLAG && o->kind != K_QUIET) {
			char tail[300];
			int fits;

			if (!strncmp(def, "required", 8))
				snprintf(tail, sizeof tail, "(%s)", def);
			else
				snprintf(tail, sizeof tail, "(default: %s)", def);
			fits = 32 + strlen(o->help) + 1 + strlen(tail) <= 80;
			fprintf(f, "%s%s", fits ? " " : "\n                                ", tail);
		}
		fputc('\n', f);
	}
	fprintf(f, "\nLayers: conv1_1 relu1_1 conv1_2 relu1_2 pool1 conv2_1 ... relu5_4 pool5,\n"
	           "each of weight 1 unless given as name:weight.\n");
}

/* The option called name ('_' and '-' alike), or NULL. */
static const optdef *
find_option(const char *name)
{
	for (int i = 0; i < NOPTIONS; i++) {
		const char *a = options[i].name, *b = name;

		if (options[i].kind == K_GROUP)
			continue;
		while (*a && *b && (*a == tolower((unsigned char)*b) || (*a == '-' && *b == '_')))
			a++, b++;
		if (!*a && !*b)
			return &options[i];
	}
	return NULL;
}

/* Edit distance of a and b (lower case, '_' as '-', a swap of neighbours one edit), at
 * most 64 characters each. */
static int
edit_distance(const char *a, const char *b)
{
	int la = (int)strlen(a), lb = (int)strlen(b), d[65][65];

	if (la > 64 || lb > 64)
		return 99;
	for (int i = 0; i <= la; i++)
		d[i][0] = i;
	for (int k = 0; k <= lb; k++)
		d[0][k] = k;
	for (int i = 1; i <= la; i++)
		for (int k = 1; k <= lb; k++) {
			int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[k - 1]);
			int sub = d[i - 1][k - 1] + !(ca == cb || (ca == '-' && cb == '_') ||
			                              (ca == '_' && cb == '-'));
			int del = d[i - 1][k] + 1, ins = d[i][k - 1] + 1;

			d[i][k] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
			/* two letters swapped count as one edit ("stlye") */
			if (i > 1 && k > 1 && ca == tolower((unsigned char)b[k - 2]) &&
			    cb == tolower((unsigned char)a[i - 2]) && d[i - 2][k - 2] + 1 < d[i][k])
				d[i][k] = d[i - 2][k - 2] + 1;
		}
	return d[la][lb];
}

/* The option nearest to a misspelled name (within a third of its length, at least 1;
 * 2 from 6 letters on), or NULL. */
static const optdef *
nearest_option(const char *name)
{
	const optdef *best = NULL;
	int bd = 99, len = (int)strlen(name), lim = len / 3 > 1 ? len / 3 : 1;

	for (int i = 0; i < NOPTIONS; i++) {
		int dist;

		if (options[i].kind == K_GROUP)
			continue;
		dist = edit_distance(options[i].name, name);
		if (dist < bd) {
			bd = dist;
			best = &options[i];
		}
	}
	return bd <= lim ? best : NULL;
}

/* neural-style's (Justin Johnson's Lua tool) and its PyTorch port's single-dash options,
 * and tessera's names for them. */
static const struct {
	const char *theirs, *ours;
} neural_style[] = {
	{ "style_image", "--style FILE[,FILE...]" }, { "content_image", "--content FILE" },
	{ "image_size", "--size N (the long side)" }, { "num_iterations", "--iterations N" },
	{ "output_image", "--out FILE" }, { "content_weight", "--content-weight X" },
	{ "style_weight", "--style-weight X" }, { "tv_weight", "--tv-weight X" },
	{ "style_scale", "--style-scale X" }, { "style_blend_weights", "--style-blend W,W..." },
	{ "init", "--init content|noise|style|FILE" }, { "init_image", "--init FILE" },
	{ "optimizer", "--optimizer lbfgs|adam" }, { "learning_rate", "--learning-rate X" },
	{ "lbfgs_num_correction", "--lbfgs-history N" }, { "pooling", "--pool avg|max" },
	{ "original_colors", "--original-colors" }, { "seed", "--seed N" },
	{ "save_iter", "--save-every N" }, { "print_iter", "--progress on" },
	{ "content_layers", "--content-layers L,..." }, { "style_layers", "--style-layers L,..." },
	{ "model_file", "--weights FILE (.safetensors or .caffemodel)" },
	{ "gpu", "nothing: tessera runs on CPUs (--threads N, MPI ranks)" },
	{ "backend", "nothing: tessera runs on CPUs" },
};

/* A single-dash word ("-style_image"): one problem naming the option to use, so that
 * getopt never reads it as a row of one-letter options.  Returns whether arg is one. */
static int
single_dash_word(const char *arg, int *nerr)
{
	const char *name = arg + 1, *eq;
	const optdef *o;
	char word[128];

	if (arg[0] != '-' || arg[1] == '-' || !isalpha((unsigned char)arg[1]) || !arg[2])
		return 0;
	eq = strchr(name, '=');
	snprintf(word, sizeof word, "%.*s", eq ? (int)(eq - name) : (int)strlen(name), name);
	for (size_t i = 0; i < sizeof neural_style / sizeof neural_style[0]; i++)
		if (!strcmp(word, neural_style[i].theirs)) {
			ts_error_add(nerr, NULL, "-%s is neural-style's spelling: tessera's is %s (options "
			             "have two dashes)", word, neural_style[i].ours);
			return 1;
		}
	if ((o = find_option(word)) || (o = nearest_option(word)))
		ts_error_add(nerr, NULL, "-%s: options have two dashes: did you mean --%s?", word,
		             o->name);
	else
		ts_error_add(nerr, NULL, "unknown option -%s (options have two dashes; see --help)",
		             word);
	return 1;
}

typedef struct ini_ctx {
	ts_config *c;
	const char *path;
	FILE *f;
	int lineno;        /* line being read */
	int at_line_start; /* the next read starts a new line */
	int nerr;
} ini_ctx;

/* fgets that counts lines for the handler's messages (inih may read one long line
 * in several calls). */
static char *
ini_read(char *str, int num, void *stream)
{
	ini_ctx *x = stream;
	char *s = fgets(str, num, x->f);
	size_t n;

	if (!s)
		return NULL;
	if (x->at_line_start)
		x->lineno++;
	n = strlen(s);
	x->at_line_start = n > 0 && s[n - 1] == '\n';
	return s;
}

/* A file named in an INI file is relative to the INI file's folder (so that a
 * config and its pictures travel together): value with each relative path of a path
 * key prefixed by that folder, or NULL to keep value as it is.  Caller frees. */
static char *
ini_relative(const char *ini, const optdef *o, const char *value)
{
	static const char *const keys[] = { "content", "style", "out", "weights", "report",
		                            "sheet", "job-dir", "init", "deep-zoom" };
	const char *slash = strrchr(ini, '/');
	size_t dl, n;
	char *out, *q;
	int path_key = 0;

	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		path_key |= !strcmp(o->name, keys[i]);
	if (!path_key || !slash || !*value)
		return NULL;
	if ((!strcmp(o->name, "weights") && !strcmp(value, "builtin")) ||
	    (!strcmp(o->name, "init") && (!strcmp(value, "content") || !strcmp(value, "noise") ||
	                                  !strcmp(value, "style"))) ||
	    ((!strcmp(o->name, "report") || !strcmp(o->name, "sheet")) &&
	     !strcmp(value, "none")))
		return NULL;
	dl = (size_t)(slash - ini) + 1; /* the folder with its '/' */
	n = strlen(value);
	if (!(out = malloc(n + 1 + dl * (n + 1))))
		return NULL;
	q = out;
	/* style: every element of the comma list */
	for (const char *p = value; *p;) {
		const char *e = strcmp(o->name, "style") ? NULL : strchr(p, ',');
		size_t len;

		while (*p == ' ' || *p == '\t') /* spaces after a comma stay where they are */
			*q++ = *p++;
		len = e ? (size_t)(e - p) : strlen(p);
		if (len && p[0] != '/') {
			memcpy(q, ini, dl);
			q += dl;
		}
		memcpy(q, p, len);
		q += len;
		p += len;
		if (e) {
			*q++ = ',';
			p++;
		}
	}
	*q = '\0';
	return out;
}

static int
on_ini_key(void *user, const char *section, const char *name, const char *value)
{
	ini_ctx *x = user;
	const optdef *o = find_option(name);
	char where[512];

	(void)section; /* sections only group keys for the reader */
	if (!o) {
		const optdef *near = nearest_option(name);

		if (near)
			ts_error_add(&x->nerr, NULL, "config: %s:%d: unknown key \"%s\"; did you mean "
			             "\"%s\"?", x->path, x->lineno, name, near->name);
		else
			ts_error_add(&x->nerr, NULL, "config: %s:%d: unknown key \"%s\"", x->path,
			             x->lineno, name);
		return 1;
	}
	if (o->kind == K_CONFIG || o->kind == K_CLIFLAG) {
		ts_error_add(&x->nerr, NULL, "config: %s:%d: \"%s\" is only a command-line option", x->path,
			       x->lineno, name);
		return 1;
	}
	snprintf(where, sizeof where, "config: %s:%d: %s", x->path, x->lineno, name);
	{
		char *v = ini_relative(x->path, o, value);

		set_value(x->c, o, v ? v : value, where, 1, &x->nerr);
		free(v);
	}
	return 1;
}

/* Load path over c, appending problems; the count of problems is added to *nerr. */
static void
load_ini(ts_config *c, const char *path, int *nerr)
{
	ini_ctx x = { c, path, NULL, 0, 1, 0 };
	int saved_stack = ini_use_stack, saved_realloc = ini_allow_realloc;
	int saved_max = ini_max_line, saved_multi = ini_allow_multiline;
	int r;

	/* Read only, closed below; the file is parsed line by line. */
	if (!(x.f = fopen(path, "r"))) {
		ts_error_add(nerr, NULL, "config: cannot open \"%s\": %s", path, strerror(errno));
		return;
	}
	/* Debian's libinih takes these at run time: lines as long as paths need, and
	 * an indented "key = value" is a key, not the continuation of the one above. */
	ini_use_stack = 0;
	ini_allow_realloc = 1;
	ini_max_line = INI_LINE_MAX;
	ini_allow_multiline = 0;
	r = ini_parse_stream(ini_read, &x, on_ini_key, &x);
	ini_use_stack = saved_stack;
	ini_allow_realloc = saved_realloc;
	ini_max_line = saved_max;
	ini_allow_multiline = saved_multi;
	if (ferror(x.f))
		ts_error_add(&x.nerr, NULL, "config: cannot read \"%s\": %s", path, strerror(errno));
	else if (r > 0)
		ts_error_add(&x.nerr, NULL, "config: %s:%d: not a \"key = value\" line or [section]", path,
			       r);
	else if (r < 0)
		ts_error_add(&x.nerr, NULL, "config: %s: out of memory", path);
	fclose(x.f);
	*nerr += x.nerr;
}

int
ts_config_load_ini(ts_config *c, const char *path)
{
	int nerr = 0;

	ts_error_clear();
	load_ini(c, path, &nerr);
	return nerr ? -1 : 0;
}

int
ts_config_parse_layers(ts_layer_weights *lw, const char *s, const char *opt)
{
	int nerr = 0;

	ts_error_clear();
	return ts_cfg_parse_layers(lw, s, opt, &nerr);
}

/* The getopt_long table built from options[]; val of options[i] is OPT_VAL_BASE + i. */
static void
build_longopts(struct option *lo)
{
	int n = 0;

	for (int i = 0; i < NOPTIONS; i++) {
		const optdef *o = &options[i];

		if (o->kind == K_GROUP)
			continue;
		lo[n].name = o->name;
		lo[n].has_arg = o->arg ? required_argument : no_argument;
		lo[n].flag = NULL;
		lo[n].val = OPT_VAL_BASE + i;
		n++;
	}
	memset(&lo[n], 0, sizeof lo[n]);
}

int
ts_config_parse(ts_config *c, int argc, char **argv)
{
	struct option lo[NOPTIONS + 1];
	/* '-': arguments in order (positional ones come back as 1, argv untouched);
	 * ':': a missing value comes back as ':' */
	static const char optstring[] = "-:";
	int nerr = 0, r, given = 0, after_unknown = 0;

	ts_error_clear();
	build_longopts(lo);
	opterr = 0;
	/* single-dash words (neural-style's habits) are reported once each and left out,
	 * with the value after them, so getopt never reads "-style_image" letter by letter */
	{
		int n = 1;

		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "--")) {
				while (i < argc)
					argv[n++] = argv[i++];
				break;
			}
			if (single_dash_word(argv[i], &nerr)) {
				if (!strchr(argv[i], '=') && i + 1 < argc && argv[i + 1][0] != '-')
					i++;
				continue;
			}
			argv[n++] = argv[i];
		}
		argc = n;
	}

	/* Pass 1: only --config, so that the file lies under the command line. */
	optind = 0;
	while ((r = getopt_long(argc, argv, optstring, lo, NULL)) != -1) {
		if (r >= OPT_VAL_BASE && options[r - OPT_VAL_BASE].kind == K_CONFIG)
			given = !ts_cfg_set_string(&c->config_path, optarg, "--config", &nerr);
	}
	if (given)
		load_ini(c, c->config_path, &nerr);

	/* Pass 2: everything else, in order (a later option wins). */
	optind = 0;
	while ((r = getopt_long(argc, argv, optstring, lo, NULL)) != -1) {
		char where[128];
		int unknown = after_unknown;

		after_unknown = 0;
		if (r >= OPT_VAL_BASE && r < OPT_VAL_BASE + NOPTIONS) {
			const optdef *o = &options[r - OPT_VAL_BASE];

			snprintf(where, sizeof where, "--%s", o->name);
			set_value(c, o, optarg ? optarg : "", where, 0, &nerr);
		} else if (r == 1) {
			if (!unknown) /* else the value of the unknown option just reported */
				ts_error_add(&nerr, NULL, "unexpected argument \"%s\"", optarg);
		} else if (r == ':') {
			if (optopt >= OPT_VAL_BASE && optopt < OPT_VAL_BASE + NOPTIONS)
				ts_error_add(&nerr, NULL, "--%s needs a value", options[optopt - OPT_VAL_BASE].name);
			else
				ts_error_add(&nerr, NULL, "%s needs a value", argv[optind - 1]);
		} else if (optopt >= OPT_VAL_BASE && optopt < OPT_VAL_BASE + NOPTIONS) {
			ts_error_add(&nerr, NULL, "--%s takes no value", options[optopt - OPT_VAL_BASE].name);
		} else if (optopt > 0 && optopt < 256) {
			ts_error_add(&nerr, NULL, "unknown option -%c", optopt);
		} else {
			const char *arg = argv[optind - 1];
			const char *eq = strchr(arg, '=');
			char word[128];
			const optdef *near;

			snprintf(word, sizeof word, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
			near = word[0] == '-' && word[1] == '-' ? nearest_option(word + 2) : NULL;
			if (near)
				ts_error_add(&nerr, NULL, "unknown option %s; did you mean --%s?", word,
				             near->name);
			else
				ts_error_add(&nerr, NULL, "unknown option %s", word);
			after_unknown = !eq;
		}
	}
	for (int i = optind; i < argc; i++) /* after "--" */
		ts_error_add(&nerr, NULL, "unexpected argument \"%s\"", argv[i]);

	if (!c->has_blend)
		for (int i = 0; i < c->nstyle; i++)
			c->style_blend[i] = 1.0 / c->nstyle;
	optind = 0;
	return nerr ? -1 : 0;
}

void
ts_config_fini(ts_config *c)
{
	if (!c)
		return;
	free(c->config_path);
	free(c->content);
	for (int i = 0; i < TS_MAX_STYLES; i++)
		free(c->style[i]);
	free(c->out);
	free(c->init_file);
	free(c->weights);
	free(c->report);
	free(c->sheet);
	free(c->deep_zoom);
	free(c->job_dir);
	memset(c, 0, sizeof *c);
}
