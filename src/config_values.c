/* config_values: the value parsers of the options (see config.c for the invariants:
 * a problem is appended to the error buffer and counted, the target left as it was). */
#include "tessera/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tessera/error.h"
#include "config_internal.h"

const char *const ts_cfg_init_names[3] = { "content", "noise", "style" };

/* Strict integer: the whole string, no blanks, within int. */
int
ts_cfg_parse_int(const char *s, const char *where, int *out, int *nerr)
{
	char *end;
	long v;

	if (!*s) {
		ts_error_add(nerr, NULL, "%s: empty value, expected an integer", where);
		return -1;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (isspace((unsigned char)s[0]) || end == s || *end) {
		ts_error_add(nerr, NULL, "%s: \"%s\" is not an integer", where, s);
		return -1;
	}
	if (errno == ERANGE || v < INT_MIN || v > INT_MAX) {
		ts_error_add(nerr, NULL, "%s: \"%s\" is out of range", where, s);
		return -1;
	}
	*out = (int)v;
	return 0;
}

/* Strict unsigned 64-bit integer (no sign). */
int
ts_cfg_parse_u64(const char *s, const char *where, uint64_t *out, int *nerr)
{
	char *end;
	unsigned long long v;

	if (!*s) {
		ts_error_add(nerr, NULL, "%s: empty value, expected an integer", where);
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end) {
		ts_error_add(nerr, NULL, "%s: \"%s\" is not a non-negative integer", where, s);
		return -1;
	}
	if (errno == ERANGE) {
		ts_error_add(nerr, NULL, "%s: \"%s\" is out of range", where, s);
		return -1;
	}
	*out = (uint64_t)v;
	return 0;
}

/* Strict finite number: the whole string, no NaN or infinity. */
int
ts_cfg_parse_double(const char *s, const char *where, double *out, int *nerr)
{
	char *end;
	double v;

	if (!*s) {
		ts_error_add(nerr, NULL, "%s: empty value, expected a number", where);
		return -1;
	}
	errno = 0;
	v = strtod(s, &end);
	if (isspace((unsigned char)s[0]) || end == s || *end) {
		ts_error_add(nerr, NULL, "%s: \"%s\" is not a number", where, s);
		return -1;
	}
	if (errno == ERANGE) {
		ts_error_add(nerr, NULL, "%s: \"%s\" is out of range", where, s);
		return -1;
	}
	if (!isfinite(v)) {
		ts_error_add(nerr, NULL, "%s: \"%s\" is not a finite number", where, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* true/false/yes/no/on/off/1/0, any case: 1, 0, or -1 when none of them. */
int
ts_cfg_parse_bool(const char *s)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i]))
			return 1;
		if (!strcasecmp(s, no[i]))
			return 0;
	}
	return -1;
}

/* Index of s in names[n], or -1. */
int
ts_cfg_parse_name(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

/* Replace *dst by a copy of s (the old string is freed). */
int
ts_cfg_set_string(char **dst, const char *s, const char *where, int *nerr)
{
	char *copy;

	if (!*s) {
		ts_error_add(nerr, NULL, "%s: empty value", where);
		return -1;
	}
	if (!(copy = strdup(s))) {
		ts_error_add(nerr, NULL, "%s: out of memory", where);
		return -1;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

/* Split s at commas into at most max pieces of at most len-1 chars each, stored in
 * item[max][len], blanks around each piece removed.  Number of pieces, or -1 (too
 * many or too long, reported).  An empty s gives 0 pieces. */
static int
split_list(const char *s, char *item, int max, size_t len, const char *where, int *nerr)
{
	int n = 0;
	const char *p = s;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p)
		return 0;
	for (;;) {
		const char *q = strchr(p, ',');
		size_t k = q ? (size_t)(q - p) : strlen(p);
		const char *a = p, *b = p + k;

		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (n == max) {
			ts_error_add(nerr, NULL, "%s: more than %d entries", where, max);
			return -1;
		}
		if ((size_t)(b - a) >= len) {
			ts_error_add(nerr, NULL, "%s: entry \"%.*s\" is too long", where, (int)(b - a), a);
			return -1;
		}
		memcpy(item + (size_t)n * len, a, (size_t)(b - a));
		item[(size_t)n * len + (size_t)(b - a)] = '\0';
		n++;
		if (!q)
			break;
		p = q + 1;
	}
	return n;
}

int
ts_cfg_parse_styles(ts_config *c, const char *s, const char *where, int *nerr)
{
	char *copy = NULL, *tok, *save = NULL;
	char *list[TS_MAX_STYLES];
	int n = 0, bad = 0, ret = -1;

	if (!(copy = strdup(s))) {
		ts_error_add(nerr, NULL, "%s: out of memory", where);
		goto cleanup;
	}
	/* Paths keep their blanks; only empty entries are refused. */
	for (char *p = copy;; p = NULL) {
		tok = strtok_r(p, ",", &save);
		if (!tok)
			break;
		if (n == TS_MAX_STYLES) {
			ts_error_add(nerr, NULL, "%s: more than %d styles", where, TS_MAX_STYLES);
			bad = 1;
			break;
		}
		while (isspace((unsigned char)*tok))
			tok++;
		for (size_t k = strlen(tok); k > 0 && isspace((unsigned char)tok[k - 1]); k--)
			tok[k - 1] = '\0';
		if (!*tok) {
			ts_error_add(nerr, NULL, "%s: empty style file name in \"%s\"", where, s);
			bad = 1;
			break;
		}
		list[n++] = tok;
	}
	if (!bad && (n == 0 || strstr(s, ",,") || s[0] == ',' || s[strlen(s) - 1] == ',')) {
		ts_error_add(nerr, NULL, "%s: empty style file name in \"%s\"", where, s);
		bad = 1;
	}
	if (bad)
		goto cleanup;
	for (int i = 0; i < n; i++) {
		char *d = strdup(list[i]);

		if (!d) {
			ts_error_add(nerr, NULL, "%s: out of memory", where);
			goto cleanup;
		}
		list[i] = d;
	}
	for (int i = 0; i < c->nstyle; i++) {
		free(c->style[i]);
		c->style[i] = NULL;
	}
	for (int i = 0; i < n; i++)
		c->style[i] = list[i];
	c->nstyle = n;
	ret = 0;
cleanup:
	free(copy);
	return ret;
}

/* The weights are relative: divided by their sum, or where the sum overflows
 * (1e308,1e308) by the largest first (the same bits as before for every sum that
 * fits, so older plans keep their hash). */
int
ts_cfg_parse_blend(ts_config *c, const char *s, const char *where, int *nerr)
{
	char item[TS_MAX_STYLES][64];
	double w[TS_MAX_STYLES], max = 0, sum = 0;
	int n, bad = 0;

	if ((n = split_list(s, &item[0][0], TS_MAX_STYLES, sizeof item[0], where, nerr)) < 0)
		return -1;
	if (n == 0) {
		ts_error_add(nerr, NULL, "%s: empty list", where);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (ts_cfg_parse_double(item[i], where, &w[i], nerr)) {
			bad = 1;
			continue;
		}
		if (w[i] < 0) {
			ts_error_add(nerr, NULL, "%s: weight \"%s\" is negative", where, item[i]);
			bad = 1;
		}
		if (w[i] > max)
			max = w[i];
	}
	if (bad)
		return -1;
	if (!(max > 0)) {
		ts_error_add(nerr, NULL, "%s: the weights \"%s\" must not all be zero", where, s);
		return -1;
	}
	for (int i = 0; i < n; i++)
		sum += w[i];
	if (!isfinite(sum)) {
		sum = 0;
		for (int i = 0; i < n; i++)
			w[i] /= max;
		for (int i = 0; i < n; i++)
			sum += w[i]; /* in [1, n] */
	}
	for (int i = 0; i < n; i++)
		c->style_blend[i] = w[i] / sum;
	for (int i = n; i < TS_MAX_STYLES; i++)
		c->style_blend[i] = 0;
	c->has_blend = n;
	return 0;
}

int
ts_cfg_parse_intlist(ts_config *c, const char *s, const char *where, int *nerr)
{
	char item[MAX_LEVELS][32];
	int v[MAX_LEVELS], n, bad = 0;

	if ((n = split_list(s, &item[0][0], MAX_LEVELS, sizeof item[0], where, nerr)) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (ts_cfg_parse_int(item[i], where, &v[i], nerr))
			bad = 1;
	if (bad)
		return -1;
	for (int i = 0; i < n; i++)
		c->level_iterations[i] = v[i];
	c->nlevel_iterations = n;
	return 0;
}

/* A plain decimal ("59.4") at *s: its value, *s moved past it; -1 if none. */
static double
plain_decimal(const char **s)
{
	char buf[32], *end;
	size_t k = strspn(*s, "0123456789.");
	double v;

	if (k == 0 || k >= sizeof buf)
		return -1;
	memcpy(buf, *s, k);
	buf[k] = '\0';
	v = strtod(buf, &end);
	if (*end)
		return -1;
	*s += k;
	return v;
}

/* "24x36in", "594x841mm", "59.4x84.1cm": print size in inches. */
int
ts_cfg_parse_print(ts_config *c, const char *s, const char *where, int *nerr)
{
	const char *p = s;
	double w, h, scale;

	if ((w = plain_decimal(&p)) < 0 || (*p != 'x' && *p != 'X'))
		goto bad;
	p++;
	if ((h = plain_decimal(&p)) < 0)
		goto bad;
	if (!strcmp(p, "in"))
		scale = 1;
	else if (!strcmp(p, "cm"))
		scale = 1 / 2.54;
	else if (!strcmp(p, "mm"))
		scale = 1 / 25.4;
	else {
		ts_error_add(nerr, NULL, "%s: unit \"%s\" is not in, cm or mm", where, p);
		return -1;
	}
	if (!(w > 0) || !(h > 0) || !isfinite(w) || !isfinite(h)) {
		ts_error_add(nerr, NULL, "%s: width and height must be positive", where);
		return -1;
	}
	c->print_w = w * scale;
	c->print_h = h * scale;
	return 0;
bad:
	ts_error_add(nerr, NULL, "%s: \"%s\" is not WIDTHxHEIGHT with a unit (e.g. 24x36in, 594x841mm)",
		       where, s);
	return -1;
}

int
ts_cfg_parse_init(ts_config *c, const char *s, const char *where, int *nerr)
{
	int i = ts_cfg_parse_name(s, ts_cfg_init_names, 3);

	if (i >= 0) {
		free(c->init_file);
		c->init_file = NULL;
		c->init = (ts_init_mode)i;
		return 0;
	}
	if (ts_cfg_set_string(&c->init_file, s, where, nerr))
		return -1;
	c->init = TS_INIT_FILE;
	return 0;
}

/* "name[:w],..." into lw; problems are appended and counted.  lw is changed only on
 * success. */
int
ts_cfg_parse_layers(ts_layer_weights *lw, const char *s, const char *opt, int *nerr)
{
	char item[TS_VGG_NLAYERS][48];
	ts_layer_weights out;
	int n, bad = 0, dup_told[TS_VGG_NLAYERS] = { 0 };

	memset(&out, 0, sizeof out);
	if ((n = split_list(s, &item[0][0], TS_VGG_NLAYERS, sizeof item[0], opt, nerr)) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		char *colon = strchr(item[i], ':');
		double w = 1;
		int idx;

		if (colon) {
			*colon = '\0';
			if (ts_cfg_parse_double(colon + 1, opt, &w, nerr)) {
				bad = 1;
				continue;
			}
			if (w < 0) {
				ts_error_add(nerr, NULL, "%s: weight of %s is negative", opt, item[i]);
				bad = 1;
				continue;
			}
		}
		if (!item[i][0]) {
			ts_error_add(nerr, NULL, "%s: empty layer name in \"%s\"", opt, s);
			bad = 1;
			continue;
		}
		if ((idx = ts_vgg_layer_index(item[i])) < 0) {
			ts_error_add(nerr, NULL, "%s: unknown layer \"%s\"", opt, item[i]);
			bad = 1;
			continue;
		}
		for (int j = 0; j < out.n; j++) {
			if (out.layer[j] == idx) {
				/* one problem per layer, however often it repeats */
				int times = 0;

				for (int k = 0; k < n; k++) {
					char name[48];

					snprintf(name, sizeof name, "%.*s", (int)strcspn(item[k], ":"),
					         item[k]);
					times += ts_vgg_layer_index(name) == idx;
				}
				if (!dup_told[idx] && times == 2)
					ts_error_add(nerr, NULL, "%s: layer \"%s\" is given twice", opt, item[i]);
				else if (!dup_told[idx])
					ts_error_add(nerr, NULL, "%s: layer \"%s\" is given %d times", opt,
					               item[i], times);
				dup_told[idx] = 1;
				bad = 1;
				idx = -1;
				break;
			}
		}
		if (idx < 0)
			continue;
		out.layer[out.n] = idx;
		out.w[out.n] = w;
		out.n++;
	}
	if (bad)
		return -1;
	*lw = out;
	return 0;
}

