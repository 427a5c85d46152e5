/* config_internal.h: what the parts of the option handling share (config.c: the
 * option table, command line, INI, --help; config_values.c: the value parsers;
 * config_check.c: ts_config_check).  Internal to the library. */
#ifndef TESSERA_CONFIG_INTERNAL_H
#define TESSERA_CONFIG_INTERNAL_H

#include <stdint.h>

#include "tessera/config.h"

#define MAX_DIM 1000000       /* largest output side in pixels */
#define MAX_LEVELS 16         /* entries of level_iterations */

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
