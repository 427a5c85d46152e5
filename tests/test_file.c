/* Tests of file: a commit puts the whole content under the real name and leaves no
 * .part; an abort, a refused create, a full file system (simulated by the file size
 * limit: EFBIG for ENOSPC) and a refused rename leave no .part and a message naming
 * the real path; ts_file_commit_part does the same for a file written by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/file.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ts_file_XXXXXX");
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

static int
exists(const char *p)
{
	return access(p, F_OK) == 0;
}

static void
slurp(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void
test_commit(void **state)
{
	char path[128], part[160], buf[64];
	ts_file *f;

	(void)state;
	snprintf(path, sizeof path, "%s/a.txt", dir);
	snprintf(part, sizeof part, "%s.part", path);
	assert_int_equal(ts_file_write("t", path, "old\n", 4), 0);
	f = ts_file_open("t", path);
	assert_non_null(f);
	assert_true(exists(part));
	fputs("new\n", ts_file_stream(f));
	slurp(path, buf, sizeof buf); /* the old file until the commit */
	assert_string_equal(buf, "old\n");
	assert_int_equal(ts_file_commit(f), 0);
	slurp(path, buf, sizeof buf);
	assert_string_equal(buf, "new\n");
	assert_false(exists(part));

	/* abort: the old file stays, the .part goes */
	f = ts_file_open("t", path);
	assert_non_null(f);
	fputs("never", ts_file_stream(f));
	ts_file_abort(f);
	ts_file_abort(NULL);
	slurp(path, buf, sizeof buf);
	assert_string_equal(buf, "new\n");
	assert_false(exists(part));
	assert_int_equal(ts_file_sync_dir(path), 0);
}

static void
test_failures(void **state)
{
	char path[128], part[160], big[20000];
	struct rlimit old, lim;
	void (*oldsig)(int);
	ts_file *f;

	(void)state;
	/* no such folder */
	snprintf(path, sizeof path, "%s/nodir/a.txt", dir);
	assert_null(ts_file_open("t", path));
	assert_non_null(strstr(ts_errmsg(), "t: cannot write \""));
	assert_non_null(strstr(ts_errmsg(), "nodir/a.txt\""));
	assert_non_null(strstr(ts_errmsg(), strerror(ENOENT)));

	/* full: the write or the commit fails, naming the real path */
	snprintf(path, sizeof path, "%s/full.bin", dir);
	snprintf(part, sizeof part, "%s.part", path);
	memset(big, 7, sizeof big);
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 10000;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(ts_file_write("t", path, big, sizeof big), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_non_null(strstr(ts_errmsg(), "full.bin\""));
	assert_null(strstr(ts_errmsg(), ".part"));
	assert_non_null(strstr(ts_errmsg(), strerror(EFBIG)));
	assert_false(exists(part));
	assert_false(exists(path));

	/* the rename is refused (a folder holds the name) */
	snprintf(path, sizeof path, "%s/isdir", dir);
	snprintf(part, sizeof part, "%s.part", path);
	assert_int_equal(mkdir(path, 0700), 0);
	f = ts_file_open("t", path);
	assert_non_null(f);
	assert_int_equal(ts_file_commit(f), -1);
	assert_non_null(strstr(ts_errmsg(), "isdir\""));
	assert_false(exists(part));

	/* commit_part of a missing file, then of one written by name over a folder */
	assert_int_equal(ts_file_commit_part("t", part, path), -1);
	assert_non_null(strstr(ts_errmsg(), "isdir\""));
	fclose(fopen(part, "wb"));
	assert_int_equal(ts_file_commit_part("t", part, path), -1);
	assert_false(exists(part));
}

static void
test_commit_part(void **state)
{
	char path[128], buf[64];
	char *part;
	FILE *f;

	(void)state;
	snprintf(path, sizeof path, "%s/byname.txt", dir);
	part = ts_file_part_name("t", path);
	assert_non_null(part);
	assert_non_null(strstr(part, "byname.txt.part"));
	f = fopen(part, "wb");
	assert_non_null(f);
	fputs("x", f);
	fclose(f);
	assert_int_equal(ts_file_commit_part("t", part, path), 0);
	assert_false(exists(part));
	slurp(path, buf, sizeof buf);
	assert_string_equal(buf, "x");
	free(part);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_commit_part),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
