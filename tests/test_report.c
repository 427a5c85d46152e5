/* Tests of report: the settings and the iterations come back from the written JSON
 * with full precision, top-level fields replace each other, and a failed write names
 * the file and leaves nothing behind. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/config.h"
#include "tessera/error.h"
#include "tessera/report.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ts_report_XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static cJSON *
read_json(const char *path)
{
	/* Test output: read whole, closed at once. */
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	cJSON *j;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	j = cJSON_Parse(buf);
	free(buf);
	assert_non_null(j);
	return j;
}

static cJSON *
item(const cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v)
		fail_msg("no \"%s\" in the report", key);
	return v;
}

static double
num(const cJSON *o, const char *key)
{
	cJSON *v = item(o, key);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const char *
str(const cJSON *o, const char *key)
{
	cJSON *v = item(o, key);

	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static void
test_settings_and_iterations(void **state)
{
	char *argv[] = { "tessera", "--content", "photo.png", "--style", "a.jpg,b.jpg",
		         "--style-blend", "1,2", "--out", "out.png", "--size", "640",
		         "--content-layers", "relu3_2:0.5", "--style-layers",
		         "relu5_1:0.125,relu1_1", "--pool", "max", "--init", "start.tif",
		         "--seed", "18446744073709551615", "--builtin-seed", "12345",
		         "--style-weight", "0.1", "--level-iterations", "30,20", "--plan",
		         NULL };
	ts_config c;
	ts_report *r;
	char path[160], part[170];
	cJSON *j, *s, *a, *it;
	const double third = 1.0 / 3.0, tiny = 1.2345678901234567e-300;

	(void)state;
	snprintf(path, sizeof path, "%s/run.json", dir);
	snprintf(part, sizeof part, "%s.part", path);
	ts_config_defaults(&c);
	assert_int_equal(ts_config_parse(&c, (int)(sizeof argv / sizeof argv[0]) - 1, argv), 0);
	r = ts_report_create(&c);
	assert_non_null(r);
	ts_config_fini(&c); /* the report keeps its own copy */
	ts_report_set(r, "width", 100);
	ts_report_set(r, "width", 640); /* replaces */
	ts_report_set(r, "height", 480);
	ts_report_set_str(r, "note", "first");
	ts_report_set_str(r, "note", "second");
	for (int i = 0; i < 3; i++)
		assert_int_equal(ts_report_iteration(r, i, third * (i + 1), tiny, 0.1 + 0.2,
		                                     1e10 + third, 0.5 * i),
		                 0);
	assert_int_equal(ts_report_write(r, path), 0);
	assert_int_not_equal(access(part, F_OK), 0);
	ts_report_destroy(r);

	j = read_json(path);
	assert_string_equal(str(j, "version"), TS_VERSION);
	assert_true(num(j, "width") == 640);
	assert_true(num(j, "height") == 480);
	assert_string_equal(str(j, "note"), "second");
	{
		int nwidth = 0;
		cJSON *e;

		cJSON_ArrayForEach(e, j)
			nwidth += !strcmp(e->string, "width");
		assert_int_equal(nwidth, 1);
	}

	s = item(j, "settings");
	assert_string_equal(str(s, "content"), "photo.png");
	a = item(s, "style");
	assert_int_equal(cJSON_GetArraySize(a), 2);
	assert_string_equal(cJSON_GetArrayItem(a, 1)->valuestring, "b.jpg");
	a = item(s, "style_blend");
	assert_true(cJSON_GetArrayItem(a, 0)->valuedouble == 1.0 / 3.0);
	assert_true(cJSON_GetArrayItem(a, 1)->valuedouble == 2.0 / 3.0);
	assert_string_equal(str(s, "out"), "out.png");
	assert_true(num(s, "size") == 640);
	assert_null(cJSON_GetObjectItemCaseSensitive(s, "width")); /* unset: absent */
	assert_null(cJSON_GetObjectItemCaseSensitive(s, "report"));
	assert_true(num(s, "style_weight") == 0.1);
	assert_true(num(s, "tv_weight") == 1e-2);
	a = item(s, "content_layers");
	assert_int_equal(cJSON_GetArraySize(a), 1);
	assert_true(num(a, "relu3_2") == 0.5);
	a = item(s, "style_layers");
	assert_int_equal(cJSON_GetArraySize(a), 2);
	assert_string_equal(cJSON_GetArrayItem(a, 0)->string, "relu5_1"); /* order kept */
	assert_true(cJSON_GetArrayItem(a, 0)->valuedouble == 0.125);
	assert_true(num(a, "relu1_1") == 1);
	assert_string_equal(str(s, "pool"), "max");
	assert_string_equal(str(s, "init"), "file");
	assert_string_equal(str(s, "init_file"), "start.tif");
	assert_string_equal(str(s, "seed"), "18446744073709551615"); /* > 2^53 */
	assert_true(num(s, "builtin_seed") == 12345);
	assert_string_equal(str(s, "weights"), "builtin");
	assert_string_equal(str(s, "optimizer"), "lbfgs");
	assert_string_equal(str(s, "lbfgs_precision"), "single");
	assert_string_equal(str(s, "gram"), "tile");
	assert_true(num(s, "checkpoint_every") == 20);
	assert_true(num(s, "iterations") == 500);
	assert_true(cJSON_IsTrue(item(s, "plan")));
	assert_true(cJSON_IsFalse(item(s, "original_colors")));
	a = item(s, "level_iterations");
	assert_int_equal(cJSON_GetArraySize(a), 2);
	assert_true(cJSON_GetArrayItem(a, 1)->valuedouble == 20);

	a = item(j, "iterations");
	assert_int_equal(cJSON_GetArraySize(a), 3);
	for (int i = 0; i < 3; i++) {
		it = cJSON_GetArrayItem(a, i);
		assert_true(num(it, "iteration") == i);
		assert_true(num(it, "content") == third * (i + 1)); /* bit-exact */
		assert_true(num(it, "style") == tiny);
		assert_true(num(it, "tv") == 0.1 + 0.2);
		assert_true(num(it, "total") == 1e10 + third);
		assert_true(num(it, "seconds") == 0.5 * i);
	}
	cJSON_Delete(j);
}

static void
test_overwrite(void **state)
{
	ts_config c;
	ts_report *r;
	char path[160];
	cJSON *j;

	(void)state;
	snprintf(path, sizeof path, "%s/again.json", dir);
	ts_config_defaults(&c);
	r = ts_report_create(&c);
	assert_non_null(r);
	ts_report_set(r, "seconds", 1);
	assert_int_equal(ts_report_write(r, path), 0);
	ts_report_set(r, "seconds", 2);
	ts_report_set(r, "diverged", NAN);
	assert_int_equal(ts_report_iteration(r, 0, 1, 2, 3, 6, 0), 0);
	assert_int_equal(ts_report_write(r, path), 0);
	ts_report_destroy(r);
	j = read_json(path);
	assert_true(num(j, "seconds") == 2);
	assert_true(cJSON_IsNull(item(j, "diverged"))); /* still valid JSON */
	assert_int_equal(cJSON_GetArraySize(item(j, "iterations")), 1);
	/* defaults: equal blend of no style, empty style list */
	assert_int_equal(cJSON_GetArraySize(item(item(j, "settings"), "style")), 0);
	cJSON_Delete(j);
	ts_config_fini(&c);
	ts_report_destroy(NULL);
}

static void
test_unwritable(void **state)
{
	ts_config c;
	ts_report *r;
	char path[160], part[170];
	struct stat st;

	(void)state;
	ts_config_defaults(&c);
	r = ts_report_create(&c);
	assert_non_null(r);

	/* no such directory: the error names the file, nothing is created */
	snprintf(path, sizeof path, "%s/nodir/run.json", dir);
	snprintf(part, sizeof part, "%s.part", path);
	assert_int_equal(ts_report_write(r, path), -1);
	assert_non_null(strstr(ts_errmsg(), "report: "));
	assert_non_null(strstr(ts_errmsg(), "nodir/run.json"));
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_not_equal(access(part, F_OK), 0);

	/* the path is a directory: the rename fails, the .part is removed */
	snprintf(path, sizeof path, "%s/adir", dir);
	snprintf(part, sizeof part, "%s.part", path);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(ts_report_write(r, path), -1);
	assert_non_null(strstr(ts_errmsg(), "adir"));
	assert_int_not_equal(access(part, F_OK), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	ts_report_destroy(r);
	ts_config_fini(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settings_and_iterations),
		cmocka_unit_test(test_overwrite),
		cmocka_unit_test(test_unwritable),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
