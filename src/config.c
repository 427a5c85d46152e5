/* config: every option of a run, from the command line and from an INI file.
 *
 * The option table (ts_cfg_options in config_options.c) names every option once; the
 * command line (getopt_long) and the INI loader (libinih) here are driven by it, as
 * --help is there.  The value parsers are in config_values.c, the checks of a whole
 * configuration (ts_config_check) in config_check.c.
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

#define INI_LINE_MAX 65536    /* longest INI line (long paths plus comments) */
#define INI_BYTES_MAX (16 << 20) /* longest INI file read */
#define OPT_VAL_BASE 1000     /* getopt_long val of ts_cfg_options[i] is OPT_VAL_BASE + i */

static int *
field_int(ts_config *c, const ts_cfg_option *o)
{
	return (int *)((char *)c + o->off);
}

/* Apply the value v of option o to c.  `where` names it in messages ("--width" or
 * "config: FILE:LINE: width").  from_ini: flags take a boolean value. */
static void
set_value(ts_config *c, const ts_cfg_option *o, const char *v, const char *where, int from_ini,
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
	case K_OUTOPT: /* "none" turns off what a config file asked for; ./none is a file */
		if (!strcmp(v, "none")) {
			free(*(char **)((char *)c + o->off));
			*(char **)((char *)c + o->off) = NULL;
		} else {
			ts_cfg_set_string((char **)((char *)c + o->off), v, where, nerr);
		}
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
		if ((i = ts_cfg_parse_name(v, ts_cfg_pool_names, 2)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not avg or max", where, v);
		else
			c->pool = (ts_pool_mode)i;
		break;
	case K_PAD:
		if ((i = ts_cfg_parse_name(v, ts_cfg_pad_names, 3)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not zero, reflect or replicate", where,
			             v);
		else
			c->padding = (ts_pad_mode)i;
		break;
	case K_OPTIM:
		if ((i = ts_cfg_parse_name(v, ts_cfg_optim_names, 2)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not lbfgs or adam", where, v);
		else
			c->optimizer = (ts_optim_kind)i;
		break;
	case K_LBPREC:
		if ((i = ts_cfg_parse_name(v, ts_cfg_lbprec_names, 2)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not single or half", where, v);
		else
			c->lbfgs_half = i;
		break;
	case K_GRAM:
		if ((i = ts_cfg_parse_name(v, ts_cfg_gram_names, 2)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not tile or global", where, v);
		else
			c->gram_global = i;
		break;
	case K_PROGRESS:
		if ((i = ts_cfg_parse_name(v, ts_cfg_progress_names, 3)) < 0)
			ts_error_add(nerr, NULL, "%s: \"%s\" is not auto, on or off", where, v);
		else
			c->progress = (ts_progress_mode)i;
		break;
	case K_FIT:
		if ((i = ts_cfg_parse_name(v, ts_cfg_fit_names, 3)) < 0)
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

/* The option called name ('_' and '-' alike), or NULL. */
static const ts_cfg_option *
find_option(const char *name)
{
	for (int i = 0; i < ts_cfg_noptions; i++) {
		const char *a = ts_cfg_options[i].name, *b = name;

		if (ts_cfg_options[i].kind == K_GROUP)
			continue;
		while (*a && *b && (*a == tolower((unsigned char)*b) || (*a == '-' && *b == '_')))
			a++, b++;
		if (!*a && !*b)
			return &ts_cfg_options[i];
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
static const ts_cfg_option *
nearest_option(const char *name)
{
	const ts_cfg_option *best = NULL;
	int bd = 99, len = (int)strlen(name), lim = len / 3 > 1 ? len / 3 : 1;

	for (int i = 0; i < ts_cfg_noptions; i++) {
		int dist;

		if (ts_cfg_options[i].kind == K_GROUP)
			continue;
		dist = edit_distance(ts_cfg_options[i].name, name);
		if (dist < bd) {
			bd = dist;
			best = &ts_cfg_options[i];
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
	const ts_cfg_option *o;
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
	size_t bytes;      /* read so far */
	int binary;        /* a NUL byte was read: not a text file */
} ini_ctx;

/* fgets that counts lines for the handler's messages (inih may read one long line
 * in several calls).  It ends the stream at a NUL byte (fgets stopped short of num - 1
 * characters with no newline and no end of file: /dev/zero, a binary file) and after
 * INI_BYTES_MAX (an endless pipe), which load_ini then reports. */
static char *
ini_read(char *str, int num, void *stream)
{
	ini_ctx *x = stream;
	char *s = x->bytes <= INI_BYTES_MAX ? fgets(str, num, x->f) : NULL;
	size_t n;

	if (!s)
		return NULL;
	if (x->at_line_start)
		x->lineno++;
	n = strlen(s);
	x->at_line_start = n > 0 && s[n - 1] == '\n';
	if (!x->at_line_start && n + 1 < (size_t)num && !feof(x->f)) {
		x->binary = 1;
		return NULL;
	}
	x->bytes += n;
	return s;
}

/* A file named in an INI file is relative to the INI file's folder (so that a
 * config and its pictures travel together): value with each relative path of a path
 * key prefixed by that folder, or NULL to keep value as it is.  Caller frees. */
static char *
ini_relative(const char *ini, const ts_cfg_option *o, const char *value)
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
	const ts_cfg_option *o = find_option(name);
	char where[512];

	(void)section; /* sections only group keys for the reader */
	if (!o) {
		const ts_cfg_option *near = nearest_option(name);

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
	ini_ctx x = { .c = c, .path = path, .at_line_start = 1 };
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
	else if (x.binary)
		ts_error_add(&x.nerr, NULL, "config: \"%s\" is not a text file (a NUL byte on line %d)",
			       path, x.lineno);
	else if (x.bytes > INI_BYTES_MAX)
		ts_error_add(&x.nerr, NULL, "config: \"%s\" is larger than %d MiB (not a config file?)",
			       path, INI_BYTES_MAX >> 20);
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

/* The getopt_long table built from ts_cfg_options[]; val of ts_cfg_options[i] is OPT_VAL_BASE + i. */
static void
build_longopts(struct option *lo)
{
	int n = 0;

	for (int i = 0; i < ts_cfg_noptions; i++) {
		const ts_cfg_option *o = &ts_cfg_options[i];

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
	struct option lo[TS_CFG_OPTIONS_MAX + 1];
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
		if (r >= OPT_VAL_BASE && ts_cfg_options[r - OPT_VAL_BASE].kind == K_CONFIG)
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
		if (r >= OPT_VAL_BASE && r < OPT_VAL_BASE + ts_cfg_noptions) {
			const ts_cfg_option *o = &ts_cfg_options[r - OPT_VAL_BASE];

			snprintf(where, sizeof where, "--%s", o->name);
			set_value(c, o, optarg ? optarg : "", where, 0, &nerr);
		} else if (r == 1) {
			if (!unknown) /* else the value of the unknown option just reported */
				ts_error_add(&nerr, NULL, "unexpected argument \"%s\"", optarg);
		} else if (r == ':') {
			if (optopt >= OPT_VAL_BASE && optopt < OPT_VAL_BASE + ts_cfg_noptions)
				ts_error_add(&nerr, NULL, "--%s needs a value", ts_cfg_options[optopt - OPT_VAL_BASE].name);
			else
				ts_error_add(&nerr, NULL, "%s needs a value", argv[optind - 1]);
		} else if (optopt >= OPT_VAL_BASE && optopt < OPT_VAL_BASE + ts_cfg_noptions) {
			ts_error_add(&nerr, NULL, "--%s takes no value", ts_cfg_options[optopt - OPT_VAL_BASE].name);
		} else if (optopt > 0 && optopt < 256) {
			ts_error_add(&nerr, NULL, "unknown option -%c", optopt);
		} else {
			const char *arg = argv[optind - 1];
			const char *eq = strchr(arg, '=');
			char word[128];
			const ts_cfg_option *near;

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
