/* Parity with PyTorch: tessera's objective on the fixtures of tools/make_fixtures.py
 * (a narrow VGG-19 in safetensors, two style images blended 0.3/0.7, a perturbed
 * content image) gives the loss terms, the style targets and the image gradient that
 * PyTorch computed in float64, to 1e-4 relative, for every case of expected.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/objective.h"
#include "tessera/weights.h"

#define FIX "tests/fixtures/"
#define TOL 1e-4

static char *
slurp(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

static float *
read_f32(const char *name, size_t n)
{
	char path[256];
	long len;
	float *v;

	snprintf(path, sizeof path, FIX "%s", name);
	v = (float *)slurp(path, &len);
	assert_int_equal((size_t)len, n * sizeof(float)); /* little-endian host assumed */
	return v;
}

static void
layers_from(cJSON *obj, ts_layer_weights *lw)
{
	cJSON *it;

	memset(lw, 0, sizeof *lw);
	cJSON_ArrayForEach(it, obj) {
		int idx = ts_vgg_layer_index(it->string);

		assert_true(idx >= 0);
		lw->layer[lw->n] = idx;
		lw->w[lw->n++] = it->valuedouble;
	}
}

static void
check_close(const char *what, double got, double want)
{
	double rel = fabs(got - want) / (fabs(want) > 1e-30 ? fabs(want) : 1e-30);

	if (rel > TOL)
		fail_msg("%s: %.10g, PyTorch %.10g (relative error %.2g)", what, got, want, rel);
}

static void
test_cases(void **state)
{
	cJSON *root, *cases, *cs, *styles;
	ts_vgg *net;
	ts_image *content, *st[2];
	double blend[2];
	float *x;
	char *text;
	int w, h, ncases = 0;

	(void)state;
	text = slurp(FIX "expected.json", NULL);
	root = cJSON_Parse(text);
	free(text);
	assert_non_null(root);
	net = ts_weights_load(FIX "narrow_vgg.safetensors");
	if (!net)
		fail_msg("%s", ts_errmsg());
	content = ts_image_load(FIX "content.png", 0);
	assert_non_null(content);
	w = content->w;
	h = content->h;
	styles = cJSON_GetObjectItem(root, "style_images");
	assert_int_equal(cJSON_GetArraySize(styles), 2);
	for (int i = 0; i < 2; i++) {
		cJSON *s = cJSON_GetArrayItem(styles, i);
		char path[256];

		snprintf(path, sizeof path, FIX "%s", cJSON_GetObjectItem(s, "file")->valuestring);
		st[i] = ts_image_load(path, 0);
		assert_non_null(st[i]);
		blend[i] = cJSON_GetObjectItem(s, "blend")->valuedouble;
	}
	x = read_f32("init.f32", (size_t)3 * w * h);
	cases = cJSON_GetObjectItem(root, "cases");
	cJSON_ArrayForEach(cs, cases) {
		ts_objective_params p;
		ts_style_targets *t;
		ts_objective *obj;
		ts_loss_parts parts;
		float *g = malloc(sizeof(float) * 3 * w * h), *gref, *tref;
		const char *pool = cJSON_GetObjectItem(cs, "pool")->valuestring;
		double num = 0, den = 0;
		char what[128];
		size_t off = 0;

		memset(&p, 0, sizeof p);
		layers_from(cJSON_GetObjectItem(cs, "content_layers"), &p.content_layers);
		layers_from(cJSON_GetObjectItem(cs, "style_layers"), &p.style_layers);
		p.content_weight = cJSON_GetObjectItem(cs, "alpha")->valuedouble;
		p.style_weight = cJSON_GetObjectItem(cs, "beta")->valuedouble;
		p.tv_weight = cJSON_GetObjectItem(cs, "gamma")->valuedouble;
		p.normalize_style = cJSON_IsTrue(cJSON_GetObjectItem(cs, "normalize_style"));
		p.pool = !strcmp(pool, "max") ? TS_POOL_MAX : TS_POOL_AVG;
		t = ts_targets_create(net, st, blend, 2, &p.style_layers, p.pool);
		assert_non_null(t);
		/* the style targets themselves (the fixture's layer order) */
		tref = read_f32(cJSON_GetObjectItem(cs, "targets_file")->valuestring,
		                ts_targets_floats(t));
		for (int l = 0; l < t->n; l++) {
			double e = 0, r = 0;
			size_t n = (size_t)t->c[l] * t->c[l];

			for (size_t i = 0; i < n; i++) {
				e += pow(t->gram[l][i] - tref[off + i], 2);
				r += pow(tref[off + i], 2);
			}
			off += n;
			if (sqrt(e / r) > TOL)
				fail_msg("case %s: Gram target of %s off by %.2g", cs->string,
				         ts_vgg_layer_name(t->layer[l]), sqrt(e / r));
		}
		obj = ts_objective_create(net, h, w, &p, t, content->px);
		if (!obj)
			fail_msg("%s", ts_errmsg());
		ts_objective_eval(obj, x, g, &parts);
		snprintf(what, sizeof what, "case %s content", cs->string);
		check_close(what, parts.content, cJSON_GetObjectItem(cs, "content")->valuedouble);
		snprintf(what, sizeof what, "case %s style", cs->string);
		check_close(what, parts.style, cJSON_GetObjectItem(cs, "style")->valuedouble);
		snprintf(what, sizeof what, "case %s tv", cs->string);
		check_close(what, parts.tv, cJSON_GetObjectItem(cs, "tv")->valuedouble);
		snprintf(what, sizeof what, "case %s total", cs->string);
		check_close(what, parts.total, cJSON_GetObjectItem(cs, "total")->valuedouble);
		gref = read_f32(cJSON_GetObjectItem(cs, "grad_file")->valuestring, (size_t)3 * w * h);
		for (int i = 0; i < 3 * w * h; i++) {
			num += pow((double)g[i] - gref[i], 2);
			den += pow((double)gref[i], 2);
		}
		print_message("case %-10s total %.9g  gradient error %.2g\n", cs->string,
		              parts.total, sqrt(num / den));
		if (sqrt(num / den) > TOL)
			fail_msg("case %s: gradient relative error %.2g", cs->string, sqrt(num / den));
		free(g);
		free(gref);
		free(tref);
		ts_objective_destroy(obj);
		ts_targets_destroy(t);
		ncases++;
	}
	assert_true(ncases >= 3);
	free(x);
	for (int i = 0; i < 2; i++)
		ts_image_destroy(st[i]);
	ts_image_destroy(content);
	ts_vgg_destroy(net);
	cJSON_Delete(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
