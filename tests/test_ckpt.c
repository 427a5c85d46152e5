/* Tests of ckpt: exact round trip; a flipped byte, a truncated file, a bad magic, other
 * geometry are corrupt (-1); another plan's file is -2; a missing file is 1; failed
 * writes (missing directory, rename refused, file size limit as a full disk) name the
 * file and leave no .part; mkdirs; log lines parse as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "tessera/ckpt.h"
#include "tessera/error.h"

#define HASH 0x0123456789abcdefULL

static char tmpdir[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ckpt.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
fill_result(ts_tile_result *r, int w, int h)
{
	uint32_t seed = 77;

	memset(r, 0, sizeof *r);
	r->plan_hash = HASH;
	r->level = 2;
	r->row = 1;
	r->col = 3;
	r->x = 384;
	r->y = 128;
	r->w = w;
	r->h = h;
	r->iterations = 250;
	r->content = 1.25;
	r->style = 3.5e-7;
	r->tv = 0.1;
	r->total = 12345.678901234567;
	r->seconds = 42.5;
	r->rank = 7;
	r->px = malloc((size_t)3 * w * h * sizeof *r->px);
	for (size_t i = 0; i < (size_t)3 * w * h; i++) {
		seed = seed * 1664525u + 1013904223u;
		r->px[i] = (float)(seed >> 8) / 16777216.0f - 0.25f;
	}
	r->px[0] = -0.0f;
	r->px[1] = 1e-40f; /* denormal */
}

static int
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static long long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void
write_sample(const char *name, ts_tile_result *r, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", tmpdir, name);
	fill_result(r, 37, 23);
	assert_int_equal(ts_ckpt_write(r, path), 0);
}

/* Write the sample tile only (its pixels are not needed afterwards). */
static void
write_only(const char *name, char *path, size_t size)
{
	ts_tile_result r;

	write_sample(name, &r, path, size);
	free(r.px);
}

static void
flip_byte(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	int c;

	assert_non_null(f);
	fseek(f, off, SEEK_SET);
	c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc(c ^ 0x10, f);
	fclose(f);
}

static void
test_round_trip(void **state)
{
	ts_tile_result r, o;
	char path[512], part[600];

	(void)state;
	write_sample("rt.tile", &r, path, sizeof path);
	snprintf(part, sizeof part, "%s.part", path);
	assert_false(exists(part));
	/* version 2: 16-bit samples, half the bytes of the f32 of version 1 */
	assert_int_equal(file_size(path), TS_CKPT_HEADER_SIZE + 6LL * 37 * 23 + 4);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), 0);
	assert_non_null(o.px);
	assert_true(o.plan_hash == HASH);
	assert_int_equal(o.level, 2);
	assert_int_equal(o.row, 1);
	assert_int_equal(o.col, 3);
	assert_int_equal(o.x, 384);
	assert_int_equal(o.y, 128);
	assert_int_equal(o.w, 37);
	assert_int_equal(o.h, 23);
	assert_int_equal(o.iterations, 250);
	assert_true(o.content == r.content && o.style == r.style && o.tv == r.tv);
	assert_true(o.total == r.total && o.seconds == r.seconds);
	assert_int_equal(o.rank, 7);
	/* the stated round-trip error, and [0, 1] clamping (the samples span -0.25..0.75) */
	{
		int below = 0;

		for (size_t i = 0; i < (size_t)3 * 37 * 23; i++) {
			float v = r.px[i] < 0 ? 0 : r.px[i] > 1 ? 1 : r.px[i];

			below += r.px[i] < 0;
			assert_true(fabsf(o.px[i] - v) <= 1.0f / 131070 + 1e-7f);
			assert_true(o.px[i] >= 0 && o.px[i] <= 1);
			if (r.px[i] < 0)
				assert_true(o.px[i] == 0);
		}
		assert_true(below > 100);
	}
	/* a second write of what was read gives the same bits (stable under re-encoding) */
	{
		ts_tile_result o2;

		o.iterations = r.iterations;
		assert_int_equal(ts_ckpt_write(&o, path), 0);
		assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o2), 0);
		assert_memory_equal(o.px, o2.px, (size_t)3 * 37 * 23 * sizeof(float));
		ts_ckpt_result_fini(&o2);
	}
	/* a version-1 file (f32 samples, from an older tessera) is still read, exactly */
	{
		unsigned char hb[TS_CKPT_HEADER_SIZE], t[4];
		size_t n = (size_t)3 * 37 * 23;
		uLong crc = crc32(0L, Z_NULL, 0);
		char p1[600];
		FILE *f = fopen(path, "rb"), *g;
		ts_tile_result o1;

		snprintf(p1, sizeof p1, "%s.v1", path);
		assert_non_null(f);
		assert_int_equal(fread(hb, 1, sizeof hb, f), sizeof hb);
		fclose(f);
		hb[8] = 1, hb[9] = hb[10] = hb[11] = 0;
		assert_non_null(g = fopen(p1, "wb"));
		crc = crc32(crc, hb, sizeof hb);
		fwrite(hb, 1, sizeof hb, g);
		for (size_t i = 0; i < n; i++) { /* little-endian f32 */
			uint32_t u;
			unsigned char q[4];

			memcpy(&u, &r.px[i], 4);
			for (int k = 0; k < 4; k++)
				q[k] = (unsigned char)(u >> (8 * k));
			crc = crc32(crc, q, 4);
			fwrite(q, 1, 4, g);
		}
		for (int k = 0; k < 4; k++)
			t[k] = (unsigned char)(crc >> (8 * k));
		fwrite(t, 1, 4, g);
		fclose(g);
		assert_int_equal(ts_ckpt_read(p1, HASH, 2, 1, 3, 37, 23, &o1), 0);
		assert_memory_equal(o1.px, r.px, n * sizeof(float));
		ts_ckpt_result_fini(&o1);
		unlink(p1);
	}
	/* the header is little-endian as documented */
	{
		unsigned char b[TS_CKPT_HEADER_SIZE];
		FILE *f = fopen(path, "rb");

		assert_non_null(f);
		assert_int_equal(fread(b, 1, sizeof b, f), sizeof b);
		fclose(f);
		assert_memory_equal(b, "TSTILE01", 8);
		assert_int_equal(b[8], TS_CKPT_VERSION);
		assert_int_equal(b[12], 0xef);
		assert_int_equal(b[19], 0x01);
		assert_int_equal(b[20], 2);  /* level */
		assert_int_equal(b[40], 37); /* w */
		assert_int_equal(b[92], 7);  /* rank */
	}
	ts_ckpt_result_fini(&o);
	assert_null(o.px);
	ts_ckpt_result_fini(&o); /* twice is fine */

	/* rewriting replaces the file */
	r.iterations = 500;
	assert_int_equal(ts_ckpt_write(&r, path), 0);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), 0);
	assert_int_equal(o.iterations, 500);
	ts_ckpt_result_fini(&o);
	free(r.px);
}

static void
test_corrupt(void **state)
{
	ts_tile_result o;
	char path[512];
	long long size;

	(void)state;
	/* a flipped pixel byte */
	write_only("flip.tile", path, sizeof path);
	flip_byte(path, TS_CKPT_HEADER_SIZE + 100);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), -1);
	assert_null(o.px);
	assert_non_null(strstr(ts_errmsg(), "CRC"));
	assert_non_null(strstr(ts_errmsg(), path));
	/* a flipped byte in the hash is corruption, not another plan */
	write_only("fliphash.tile", path, sizeof path);
	flip_byte(path, 13);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), -1);
	assert_non_null(strstr(ts_errmsg(), "CRC"));
	/* a flipped CRC byte */
	size = file_size(path);
	write_only("flipcrc.tile", path, sizeof path);
	flip_byte(path, (long)size - 1);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), -1);
	assert_non_null(strstr(ts_errmsg(), "CRC"));
	/* truncated by one byte, and to less than a header */
	write_only("trunc.tile", path, sizeof path);
	assert_int_equal(truncate(path, size - 1), 0);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), -1);
	assert_non_null(strstr(ts_errmsg(), "truncated"));
	assert_int_equal(truncate(path, 50), 0);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), -1);
	assert_non_null(strstr(ts_errmsg(), "truncated"));
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), -1);
	/* a bad magic */
	write_only("magic.tile", path, sizeof path);
	flip_byte(path, 0);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), -1);
	assert_non_null(strstr(ts_errmsg(), "magic"));
	/* a sound file for another tile of the same plan */
	write_only("geom.tile", path, sizeof path);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 4, 37, 23, &o), -1);
	assert_non_null(strstr(ts_errmsg(), "expected"));
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 24, &o), -1);
	assert_int_equal(ts_ckpt_read(path, HASH, 1, 1, 3, 37, 23, &o), -1);
	assert_null(o.px);
}

static void
test_other_plan_and_missing(void **state)
{
	ts_tile_result r, o;
	char path[512];

	(void)state;
	write_sample("other.tile", &r, path, sizeof path);
	assert_int_equal(ts_ckpt_read(path, HASH + 1, 2, 1, 3, 37, 23, &o), -2);
	assert_null(o.px);
	assert_non_null(strstr(ts_errmsg(), "another plan"));
	assert_non_null(strstr(ts_errmsg(), path));

	snprintf(path, sizeof path, "%s/none.tile", tmpdir);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), 1);
	assert_null(o.px);
	snprintf(path, sizeof path, "%s/nodir/none.tile", tmpdir);
	assert_int_equal(ts_ckpt_read(path, HASH, 2, 1, 3, 37, 23, &o), 1);
	free(r.px);
}

static void
test_write_failures(void **state)
{
	ts_tile_result r;
	char path[512], part[600];
	struct rlimit old, lim;
	void (*oldsig)(int);

	(void)state;
	fill_result(&r, 64, 64);
	/* a directory that does not exist */
	snprintf(path, sizeof path, "%s/missing/x.tile", tmpdir);
	assert_int_equal(ts_ckpt_write(&r, path), -1);
	assert_non_null(strstr(ts_errmsg(), "missing/x.tile\""));

	/* the rename is refused (a directory holds the name): the .part goes away */
	snprintf(path, sizeof path, "%s/isdir.tile", tmpdir);
	snprintf(part, sizeof part, "%s.part", path);
	assert_int_equal(mkdir(path, 0777), 0);
	assert_int_equal(ts_ckpt_write(&r, path), -1);
	assert_non_null(strstr(ts_errmsg(), "isdir.tile"));
	assert_false(exists(part));

	/* a full disk, simulated by the file size limit (EFBIG instead of ENOSPC) */
	snprintf(path, sizeof path, "%s/full.tile", tmpdir);
	snprintf(part, sizeof part, "%s.part", path);
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 10000;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(ts_ckpt_write(&r, path), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_non_null(strstr(ts_errmsg(), "full.tile\""));
	assert_non_null(strstr(ts_errmsg(), strerror(EFBIG)));
	assert_false(exists(part));
	assert_false(exists(path));
	free(r.px);
}

static void
test_mkdirs_and_path(void **state)
{
	char job[512], path[700], small[16];
	FILE *f;

	(void)state;
	snprintf(job, sizeof job, "%s/a/b/c.job/", tmpdir);
	assert_int_equal(ts_ckpt_mkdirs(job, 3), 0);
	snprintf(path, sizeof path, "%s/a/b/c.job/L3", tmpdir);
	assert_true(exists(path));
	assert_int_equal(ts_ckpt_mkdirs(job, 3), 0); /* again: fine */
	assert_int_equal(ts_ckpt_mkdirs(job, 0), 0);

	snprintf(job, sizeof job, "%s/a/b/c.job", tmpdir);
	assert_int_equal(ts_ckpt_path(job, 3, 12, 5, path, sizeof path), 0);
	assert_non_null(strstr(path, "/a/b/c.job/L3/12_5.tile"));
	assert_int_equal(ts_ckpt_path(job, 3, 12, 5, small, sizeof small), -1);

	/* a file in the way */
	snprintf(path, sizeof path, "%s/plainfile", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(ts_ckpt_mkdirs(path, 0), -1);
	assert_non_null(strstr(ts_errmsg(), "plainfile"));
}

static void
test_log(void **state)
{
	ts_tile_result r;
	char job[512], path[600], line[1024];
	FILE *f;
	int n = 0;

	(void)state;
	snprintf(job, sizeof job, "%s/logjob", tmpdir);
	assert_int_equal(ts_ckpt_mkdirs(job, 0), 0);
	fill_result(&r, 2, 2);
	for (int i = 0; i < 3; i++) {
		r.col = i;
		r.seconds = 1.5 * i;
		r.conv_seconds = 1.0 * i;
		r.loss_seconds = 0.25 * i;
		r.optim_seconds = 0.125 * i;
		r.layers_seconds = 0.0625 * i;
		assert_int_equal(ts_ckpt_log_append(job, &r), 0);
	}
	snprintf(path, sizeof path, "%s/log.jsonl", job);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof line, f)) {
		cJSON *o = cJSON_Parse(line);
		const char *keys[] = { "level", "row", "col", "rank", "seconds", "conv_seconds",
		                       "loss_seconds", "optim_seconds", "layers_seconds",
		                       "iterations", "content",
		                       "style", "tv", "total" };

		assert_non_null(o);
		assert_non_null(strchr(line, '\n'));
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
			assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, keys[k])));
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "col")->valueint, n);
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "level")->valueint, 2);
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "rank")->valueint, 7);
		assert_true(cJSON_GetObjectItemCaseSensitive(o, "seconds")->valuedouble == 1.5 * n);
		assert_true(cJSON_GetObjectItemCaseSensitive(o, "loss_seconds")->valuedouble ==
		            0.25 * n);
		assert_true(cJSON_GetObjectItemCaseSensitive(o, "optim_seconds")->valuedouble ==
		            0.125 * n);
		assert_true(cJSON_GetObjectItemCaseSensitive(o, "layers_seconds")->valuedouble ==
		            0.0625 * n);
		assert_true(cJSON_GetObjectItemCaseSensitive(o, "total")->valuedouble == r.total);
		cJSON_Delete(o);
		n++;
	}
	fclose(f);
	assert_int_equal(n, 3);

	/* a job directory that does not exist */
	snprintf(job, sizeof job, "%s/nojob", tmpdir);
	assert_int_equal(ts_ckpt_log_append(job, &r), -1);
	assert_non_null(strstr(ts_errmsg(), "nojob/log.jsonl"));
	free(r.px);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_other_plan_and_missing),
		cmocka_unit_test(test_write_failures),
		cmocka_unit_test(test_mkdirs_and_path),
		cmocka_unit_test(test_log),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
