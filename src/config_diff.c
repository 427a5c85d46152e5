/* config_diff: what differs between two plan texts ("key = value" lines), for the
 * message of a refused resume (ts_config_text_diff, config.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/config.h"

/* --- differences of two "key = value" texts (ts_config_text_diff) --- */

/* The "key = value" lines of a text, one entry per key in order of first appearance,
 * a repeated key's values joined by "," (a plan's content_layer, style_layer). */
typedef struct text_kv {
	char key[64];
	char val[512];
} text_kv;

static int
text_parse(const char *text, text_kv *kv, int max)
{
	int n = 0;

	for (const char *p = text; *p;) {
		const char *eol = strchr(p, '\n'), *eq;
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[600];
		int k;

		snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1),
		         p);
		p += len + (eol != NULL);
		if (!(eq = strstr(line, " = ")) )
			continue;
		line[eq - line] = '\0';
		if (eq - line > 63) /* kept to 63 characters: look it up as kept */
			line[63] = '\0';
		for (k = 0; k < n && strcmp(kv[k].key, line); k++)
			;
		if (k == n) {
			if (n == max)
				continue;
			snprintf(kv[n].key, sizeof kv[n].key, "%.63s", line);
			kv[n++].val[0] = '\0';
		}
		{
			size_t vl = strlen(kv[k].val);

			snprintf(kv[k].val + vl, sizeof kv[k].val - vl, "%s%s", vl ? "," : "",
			         eq + 3);
		}
	}
	return n;
}

/* A number as a user would write it ("0.1" for a plan's 0.10000000000000001). */
static const char *
text_value(const char *v, char *buf, size_t size)
{
	char *end;
	double d = strtod(v, &end);

	if (end != v && !*end && strchr(v, '.')) {
		/* the shortest text that reads back as the same double */
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(buf, size, "%.*g", prec, d);
			if (strtod(buf, NULL) == d)
				break;
		}
	} else
		snprintf(buf, size, "%.511s", v);
	return buf;
}

void
ts_config_text_diff(const char *old, const char *text, char *buf, size_t size)
{
	enum { MAXKV = 96, SHOW = 4 };
	text_kv *a = calloc(2 * MAXKV, sizeof *a), *b = a + MAXKV;
	char v1[512], v2[512];
	size_t n = 0;
	int na, nb, ndiff = 0;

	buf[0] = '\0';
	if (!a)
		return;
	na = text_parse(old, a, MAXKV);
	nb = text_parse(text, b, MAXKV);
	/* keys of the new plan, in its order, then keys only the old one has */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < (pass ? na : nb); i++) {
			const text_kv *now = pass ? NULL : &b[i], *was = pass ? &a[i] : NULL;
			int k;

			if (pass) {
				for (k = 0; k < nb && strcmp(b[k].key, a[i].key); k++)
					;
				if (k < nb)
					continue; /* compared in the first pass */
			} else {
				for (k = 0; k < na && strcmp(a[k].key, b[i].key); k++)
					;
				was = k < na ? &a[k] : NULL;
				if (was && !strcmp(was->val, now->val))
					continue;
			}
			if (++ndiff > SHOW)
				continue;
			if (n < size)
				n += (size_t)snprintf(buf + n, size - n, "%s%s ", ndiff > 1 ? "; " : "",
				                      now ? now->key : was->key);
			if (n < size && was && now)
				n += (size_t)snprintf(buf + n, size - n, "was %s, is now %s",
				                      text_value(was->val, v1, sizeof v1),
				                      text_value(now->val, v2, sizeof v2));
			else if (n < size && now)
				n += (size_t)snprintf(buf + n, size - n, "is new (%s)",
				                      text_value(now->val, v2, sizeof v2));
			else if (n < size)
				n += (size_t)snprintf(buf + n, size - n, "was %s, is now unset",
				                      text_value(was->val, v1, sizeof v1));
		}
	}
	if (ndiff > SHOW && n < size)
		snprintf(buf + n, size - n, "; and %d more", ndiff - SHOW);
	free(a);
}
