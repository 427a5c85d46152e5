/* config_options: the option table, the defaults and the --help text.
 *
 * One table (ts_cfg_options) names every option once: its long name (also its INI
 * key), what kind of value it takes, the ts_config field it sets, and its --help line.
 * The command line (getopt_long) and the INI loader (libinih) in config.c, and the
 * --help text here, are all driven by that table, so they cannot drift apart. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "tessera/config.h"
#include "tessera/error.h"
#include "config_internal.h"

/* The lead may flip this default: it is used by ts_config_defaults and --help. */
#define DEFAULT_NORMALIZE_STYLE 1
/* Seed of the built-in network: every machine builds the same weights from it. */
#define DEFAULT_BUILTIN_SEED 0x7e55e7a2019ULL

#define F(field) offsetof(ts_config, field)

const ts_cfg_option ts_cfg_options[] = {
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
	{ "deep-zoom", K_OUTOPT, F(deep_zoom), "DIR|none",
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
	  "a step that raises the loss (or makes it not finite) is taken back to a quarter "
	  "of its length, up to 8 times (off: torch's fixed steps)", NULL },
	{ "learning-rate", K_DOUBLE, F(learning_rate), "X",
	  "step size (0: L-BFGS 1, Adam 0.02)", NULL },

	{ "Network:", K_GROUP, 0, NULL, NULL, NULL },
	{ "weights", K_STR, F(weights), "builtin|FILE",
	  "VGG-19: builtin, .safetensors, .pth, .caffemodel", "builtin" },
	{ "builtin-width", K_INT, F(builtin_width), "N",
	  "divide builtin channels by N, 1..64", NULL },
	{ "builtin-seed", K_U64, F(builtin_seed), "N", "seed of the built-in weights", NULL },

	{ "Progress and reports:", K_GROUP, 0, NULL, NULL, NULL },
	{ "report", K_OUTOPT, F(report), "FILE.json|none",
	  "write settings and losses of every iteration", "none" },
	{ "sheet", K_OUTOPT, F(sheet), "FILE.png|none",
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

const int ts_cfg_noptions = (int)(sizeof ts_cfg_options / sizeof ts_cfg_options[0]);
_Static_assert(sizeof ts_cfg_options / sizeof ts_cfg_options[0] <= TS_CFG_OPTIONS_MAX,
               "raise TS_CFG_OPTIONS_MAX: ts_config_parse's getopt table has that room");

const char *const ts_cfg_pool_names[2] = { "avg", "max" };
const char *const ts_cfg_pad_names[3] = { "zero", "reflect", "replicate" };
const char *const ts_cfg_optim_names[2] = { "lbfgs", "adam" };
const char *const ts_cfg_lbprec_names[2] = { "single", "half" };
const char *const ts_cfg_gram_names[2] = { "tile", "global" };
const char *const ts_cfg_progress_names[3] = { "auto", "on", "off" };
const char *const ts_cfg_fit_names[3] = { "crop", "pad", "stretch" };

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
format_default(const ts_config *d, const ts_cfg_option *o, char *buf, size_t len)
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
		snprintf(buf, len, "%s", ts_cfg_pool_names[d->pool]);
		break;
	case K_PAD:
		snprintf(buf, len, "%s", ts_cfg_pad_names[d->padding]);
		break;
	case K_OPTIM:
		snprintf(buf, len, "%s", ts_cfg_optim_names[d->optimizer]);
		break;
	case K_LBPREC:
		snprintf(buf, len, "%s", ts_cfg_lbprec_names[d->lbfgs_half]);
		break;
	case K_GRAM:
		snprintf(buf, len, "%s", ts_cfg_gram_names[d->gram_global]);
		break;
	case K_PROGRESS:
		snprintf(buf, len, "%s", ts_cfg_progress_names[d->progress]);
		break;
	case K_FIT:
		snprintf(buf, len, "%s", ts_cfg_fit_names[d->fit]);
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
	for (int i = 0; i < ts_cfg_noptions; i++) {
		const ts_cfg_option *o = &ts_cfg_options[i];
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
