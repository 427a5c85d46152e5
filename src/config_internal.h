/* config_internal.h: what the parts of the option handling share: the option table,
 * the defaults and --help (config_options.c), the command line and INI (config.c), the
 * value parsers (config_values.c) and ts_config_check (config_check.c).  Internal to
 * the library. */
#ifndef TESSERA_CONFIG_INTERNAL_H
#define TESSERA_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/config.h"

#define MAX_DIM 1000000       /* largest output side in pixels */
#define MAX_LEVELS 16         /* entries of level_iterations */

#define TS_CFG_OPTIONS_MAX 96  /* room in ts_config_parse's getopt table */

/* What kind of value an option takes: the field it sets, how it is parsed, how
 * --help shows its default. */
enum ts_cfg_kind {
	K_GROUP,    /* not an option: a heading of the --help text */
	K_CONFIG,   /* --config FILE: read before everything else; command line only */
	K_STR,      /* char * field, non-empty */
	K_OUTOPT,   /* char * field of an optional output: a path, or none (off) */
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

/* One entry of the option table. */
typedef struct ts_cfg_option {
	const char *name;  /* long option and INI key; for K_GROUP, the heading */
	enum ts_cfg_kind kind;
	size_t off;        /* offsetof the field in ts_config (unused for some kinds) */
	const char *arg;   /* value shown in --help; NULL for flags */
	const char *help;  /* one line of --help */
	const char *dflt;  /* default shown in --help; NULL: formatted from the defaults */
} ts_cfg_option;

/* The option table (config_options.c): every option once, with K_GROUP headings,
 * in the order --help prints them; ts_cfg_noptions entries. */
extern const ts_cfg_option ts_cfg_options[];
extern const int ts_cfg_noptions;

/* The spellings of the enumerated values, in their enum's order. */
extern const char *const ts_cfg_pool_names[2];
extern const char *const ts_cfg_pad_names[3];
extern const char *const ts_cfg_optim_names[2];
extern const char *const ts_cfg_lbprec_names[2];
extern const char *const ts_cfg_gram_names[2];
extern const char *const ts_cfg_progress_names[3];
extern const char *const ts_cfg_fit_names[3];

/* The --init modes other than a file, by ts_init_mode. */
extern const char *const ts_cfg_init_names[3];

/* Value parsers (config_values.c).  `where` names the option or INI line in
 * messages; those that take nerr return 0, or -1 after ts_error_add, leaving the
 * target as it was; ts_cfg_parse_bool gives 1, 0 or -1 (not a boolean),
 * ts_cfg_parse_name the index in names[n] or -1. */
int ts_cfg_parse_int(const char *s, const char *where, int *out, int *nerr);
int ts_cfg_parse_u64(const char *s, const char *where, uint64_t *out, int *nerr);
int ts_cfg_parse_double(const char *s, const char *where, double *out, int *nerr);
int ts_cfg_parse_bool(const char *s);
int ts_cfg_parse_name(const char *s, const char *const *names, int n);
int ts_cfg_set_string(char **dst, const char *s, const char *where, int *nerr);
int ts_cfg_parse_styles(ts_config *c, const char *s, const char *where, int *nerr);
int ts_cfg_parse_blend(ts_config *c, const char *s, const char *where, int *nerr);
int ts_cfg_parse_intlist(ts_config *c, const char *s, const char *where, int *nerr);
int ts_cfg_parse_print(ts_config *c, const char *s, const char *where, int *nerr);
int ts_cfg_parse_init(ts_config *c, const char *s, const char *where, int *nerr);
int ts_cfg_parse_layers(ts_layer_weights *lw, const char *s, const char *opt, int *nerr);

#endif
