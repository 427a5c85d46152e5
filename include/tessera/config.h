/* config: every option of a run, from the command line (GNU long options) and from
 * an INI file (--config FILE; keys are the long option names, '-' or '_', in any or no
 * section); the command line wins over the file, the file over the defaults.
 *
 * Parsing and checking report every bad option at once: the message lists each
 * problem, naming the option (or FILE:LINE key) and why. */
#ifndef TESSERA_CONFIG_H
#define TESSERA_CONFIG_H

/* The shortest side of a coarse-to-fine level (--start-size): a 32 px picture leaves
 * 2x2 positions at relu5_1, the deepest default layer, after its four poolings. */
#define TS_RENDER_MIN_SIDE 32

#include <stdint.h>
#include <stdio.h>

#include "tessera/conv.h"
#include "tessera/optim.h"
#include "tessera/vgg.h"

#define TS_MAX_STYLES 16

#ifndef TS_VERSION
#define TS_VERSION "0.1.0"
#endif

typedef struct ts_layer_weights {
	int n;                       /* layers in use */
	int layer[TS_VGG_NLAYERS];   /* layer indices (vgg.h), in the order given */
	double w[TS_VGG_NLAYERS];    /* per-layer weight ("relu4_2:0.5"; default 1) */
} ts_layer_weights;

typedef enum ts_init_mode {
	TS_INIT_CONTENT = 0, TS_INIT_NOISE, TS_INIT_STYLE, TS_INIT_FILE
} ts_init_mode;

/* --fit: how the content meets an output of another shape */
typedef enum ts_fit_mode {
	TS_FIT_CROP = 0, /* scale to cover, cut the excess (centred) */
	TS_FIT_PAD,      /* scale to fit inside, pad the rest (centred, edge colour) */
	TS_FIT_STRETCH   /* scale each axis alone */
} ts_fit_mode;

typedef enum ts_progress_mode {
	TS_PROGRESS_AUTO = 0, /* on when stderr is a terminal */
	TS_PROGRESS_ON,
	TS_PROGRESS_OFF
} ts_progress_mode;

typedef struct ts_config {
	/* inputs and output (strings owned by the config) */
	char *config_path;             /* --config */
	char *content;                 /* --content FILE (required) */
	char *style[TS_MAX_STYLES];    /* --style F[,F...] (required) */
	int nstyle;
	double style_blend[TS_MAX_STYLES]; /* --style-blend w,w (normalized to sum 1) */
	int has_blend;                 /* weights given explicitly (their count; 0: equal) */
	char *out;                     /* --out FILE (required unless --plan) */
	int width, height;             /* --width / --height (0: from the other / content) */
	int size;                      /* --size N: long side (0: unset) */
	double print_w, print_h;       /* --print-size WxH[in|cm|mm], in inches (0: unset) */
	int dpi;                       /* --dpi N (300) */
	ts_fit_mode fit;               /* --fit crop|pad|stretch (crop) */
	char *deep_zoom;               /* --deep-zoom DIR: Deep Zoom tiles + viewer (NULL) */

	/* objective */
	double content_weight;         /* --content-weight (a; 1) */
	double style_weight;           /* --style-weight (b; 1e3) */
	double tv_weight;              /* --tv-weight (g; 1e-3) */
	double tv_chroma_weight;       /* --tv-chroma-weight (TV of Cb, Cr alone; 3) */
	double color_vars;             /* --color-vars X: YCbCr variables, chroma x X (0: RGB) */
	ts_layer_weights content_layers; /* --content-layers (relu4_2) */
	ts_layer_weights style_layers;   /* --style-layers (relu1_1,relu2_1,relu3_1,relu4_1,relu5_1) */
	double style_scale;            /* --style-scale (1): style long side = scale * output long side */
	int original_colors;           /* --original-colors (0) */
	int normalize_style;           /* --normalize-style on|off */
	ts_pool_mode pool;             /* --pool avg|max (avg) */
	ts_pad_mode padding;           /* --padding zero|reflect|replicate (zero) */

	/* start and optimizer */
	ts_init_mode init;             /* --init content|noise|style|FILE */
	char *init_file;               /* when init == TS_INIT_FILE */
	uint64_t seed;                 /* --seed (0) */
	int start_size;                /* --start-size N (128): a single piece's first level's
	                                * long side at most N (0: one level, full size) */
	int margin;                    /* --margin N (16): px rendered beyond each border of
	                                * a level, the content mirrored, cut off after it */
	int iterations;                /* --iterations N (500; 0: evaluate and write the start) */
	ts_optim_kind optimizer;       /* --optimizer lbfgs|adam */
	int lbfgs_history;             /* --lbfgs-history (100) */
	int lbfgs_half;                /* --lbfgs-precision half (0: single) */
	int lbfgs_backtrack;           /* --lbfgs-backtrack on|off (on): shorten a step
	                                * that raises the loss */
	int gram_global;               /* --gram global (1) or tile (0) */
	int checkpoint_every;          /* --checkpoint-every N (20; 0: only at a stop) */
	double learning_rate;          /* --learning-rate (L-BFGS 1, Adam 0.02; 0: default) */

	/* network */
	char *weights;                 /* --weights builtin|FILE ("builtin") */
	int builtin_width;             /* --builtin-width N: divide builtin channels (1) */
	uint64_t builtin_seed;         /* --builtin-seed (a fixed constant) */

	/* outputs of the run */
	char *report;                  /* --report FILE.json (NULL) */
	char *sheet;                   /* --sheet FILE.png: the contact sheet (NULL) */
	int save_every;                /* --save-every N (0: never) */
	ts_progress_mode progress;     /* --progress auto|on|off, --quiet = off */
	int progress_every;            /* --progress-every SECONDS (60): auto in a batch log */
	int threads;                   /* --threads N: BLAS threads (0: library default) */

	/* tiled renderer */
	int tile;                      /* --tile N (512) */
	int overlap;                   /* --overlap N (128) */
	char *job_dir;                 /* --job-dir DIR (NULL: "<out>.job") */
	int plan_only;                 /* --plan */
	int plan_ranks;                /* --ranks N: the plan for N ranks (0: this job's) */
	int fresh;                     /* --fresh: discard an existing job directory */
	double level_factor;           /* --level-factor X (2) */
	int level_iterations[16];      /* --level-iterations n0,n1,... (0 entries: --iterations) */
	int nlevel_iterations;

	int show_help, show_version;   /* --help, --version */
} ts_config;

/* Fill defaults (no strings allocated). */
void ts_config_defaults(ts_config *c);

/* Parse argv (GNU long options, "--opt value" and "--opt=value"); a --config file is
 * read first and the command line applied over it.  Positional arguments are errors.
 * Without --style-blend, style_blend is set to equal weights.  Values are checked for
 * syntax here (numbers, names, lists; an explicit 0 for --width/--height/--size);
 * ranges, files and combinations of options are ts_config_check's.
 * Returns 0, or -1 with every problem in the message. */
int ts_config_parse(ts_config *c, int argc, char **argv);

/* Apply one INI file over c (keys as long option names).  -1 with "FILE:LINE". */
int ts_config_load_ini(ts_config *c, const char *path);

/* Check the whole configuration (required options, ranges, files readable) and
 * report every problem at once.  0 or -1. */
int ts_config_check(const ts_config *c);

/* Parse "name[:w],name[:w]" into lw.  -1 with a message naming opt. */
int ts_config_parse_layers(ts_layer_weights *lw, const char *s, const char *opt);

/* Print --help text to f. */
void ts_config_usage(FILE *f);

/* The keys whose values differ between two texts of "key = value" lines (a plan.ini
 * and the plan of a new run): "style_weight was 1, is now 2; ..." for the first four
 * keys and "; and N more", into buf [size] ("" when none differ).  Lines without
 * " = " are ignored; a repeated key's values are compared as one list. */
void ts_config_text_diff(const char *old, const char *text, char *buf, size_t size);

/* Free owned strings; the struct may be reused after ts_config_defaults. */
void ts_config_fini(ts_config *c);

#endif
