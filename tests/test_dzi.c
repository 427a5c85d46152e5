/* Tests of dzi: for 1x1, 255x3, 3x255, 600x400, 1000x254 and 509x1 the level count,
 * every level's tile count and each tile's JPEG size as the Deep Zoom layout says
 * (computed here from the definition, not from the module); the .dzi's XML; the
 * pixels of the full level and of the halved level below against the picture (so an
 * overlap or a tile placed one pixel off fails); bands of 1 row, all rows and uneven
 * counts give byte-identical trees; a second run replaces the first only at close;
 * abort, missing rows, a full file system (the file size limit: EFBIG), a folder that
 * cannot be made, a user's own folder, bad sizes and names leave no DIR (or the old
 * one untouched) and no DIR.part, with one message naming DIR; the viewer's files are
 * copied from $TESSERA_OPENSEADRAGON (a stand-in made by setup), and their absence is
 * said in index.html. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/dzi.h"
#include "tessera/error.h"
#include "tessera/image.h"

static char tmp[64], osd[128];

/* the group's folder, with a stand-in for OpenSeadragon's build folder in it */
static int
setup(void **state)
{
	char p[256];
	FILE *f;

	(void)state;
	snprintf(tmp, sizeof tmp, "/tmp/ts_dzi_XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	snprintf(osd, sizeof osd, "%s/osd", tmp);
	snprintf(p, sizeof p, "%s/images", osd);
	if (mkdir(osd, 0777) || mkdir(p, 0777))
		return -1;
	snprintf(p, sizeof p, "%s/images/home_rest.png", osd);
	if (!(f = fopen(p, "w")) || fclose(f))
		return -1;
	snprintf(p, sizeof p, "%s/openseadragon.min.js", osd);
	if (!(f = fopen(p, "w")) || fputs("var OpenSeadragon;\n", f) < 0 || fclose(f))
		return -1;
	return setenv("TESSERA_OPENSEADRAGON", osd, 1);
}

static int
rm_entry(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static void
rm_tree(const char *p)
{
	nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
teardown(void **state)
{
	(void)state;
	rm_tree(tmp);
	return 0;
}

static int
exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

static char *
slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (size)
		*size = (size_t)n;
	return buf;
}

/* the test picture: grey (no chroma for JPEG's 4:2:0 to blur), a wave in x and y of
 * a period short enough that a one-pixel shift shows */
static float
wave(int x, int y)
{
	return 0.5f + 0.2f * sinf(x / 5.0f) + 0.2f * cosf(y / 7.0f);
}

/* rows [y0, y0 + n) of the w-wide test picture into band [3, n, w] */
static void
fill(float *band, int w, int y0, int n)
{
	size_t plane = (size_t)n * w;

	for (int y = 0; y < n; y++)
		for (int x = 0; x < w; x++)
			for (int c = 0; c < 3; c++)
				band[c * plane + (size_t)y * w + x] = wave(x, y0 + y);
}

/* Write the test picture to dir/name in bands whose row counts cycle through
 * counts[0..ncounts) (0: all rows at once).  Returns ts_dzi_close's status. */
static int
write_dzi(const char *dir, const char *name, int w, int h, const int *counts, int ncounts)
{
	ts_dzi *z = ts_dzi_open(dir, name, w, h);
	float *band = malloc((size_t)3 * w * h * sizeof *band);
	int y = 0, k = 0;

	assert_non_null(z);
	assert_non_null(band);
	while (y < h) {
		int n = ncounts ? counts[k++ % ncounts] : h;

		if (n > h - y)
			n = h - y;
		fill(band, w, y, n);
		assert_int_equal(ts_dzi_band(z, band, n), 0);
		y += n;
	}
	free(band);
	return ts_dzi_close(z, 0);
}

static int
ceil_shift(int v, int s) /* ceil(v / 2^s) */
{
	return (int)(((long long)v + (1LL << s) - 1) >> s);
}

static int
count_entries(const char *dir)
{
	char cmd[PATH_MAX + 64];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

/* The layout of dir/name for a w x h picture, from the Deep Zoom definition. */
static void
check_layout(const char *dir, const char *name, int w, int h)
{
	char p[PATH_MAX], want[512], *xml;
	int L = 0;

	while ((1 << L) < (w > h ? w : h))
		L++;
	snprintf(p, sizeof p, "%s/%s_files", dir, name);
	assert_int_equal(count_entries(p), L + 1);
	for (int l = 0; l <= L; l++) {
		int lw = ceil_shift(w, L - l), lh = ceil_shift(h, L - l);
		int cols = (lw + 253) / 254, rows = (lh + 253) / 254;

		snprintf(p, sizeof p, "%s/%s_files/%d", dir, name, l);
		assert_int_equal(count_entries(p), cols * rows);
		for (int r = 0; r < rows; r++)
			for (int c = 0; c < cols; c++) {
				/* tile (c, r): [c*254 - (c > 0), min(lw, (c+1)*254 + 1)) */
				int x0 = c * 254 - (c > 0), x1 = (c + 1) * 254 + 1;
				int y0 = r * 254 - (r > 0), y1 = (r + 1) * 254 + 1;
				int tw = 0, th = 0, bits = 0;

				if (x1 > lw)
					x1 = lw;
				if (y1 > lh)
					y1 = lh;
				snprintf(p, sizeof p, "%s/%s_files/%d/%d_%d.jpg", dir, name, l, c, r);
				assert_int_equal(ts_image_probe(p, &tw, &th, &bits), 0);
				assert_int_equal(tw, x1 - x0);
				assert_int_equal(th, y1 - y0);
			}
	}
	if (L == 0) {
		int tw, th;

		snprintf(p, sizeof p, "%s/%s_files/0/0_0.jpg", dir, name);
		assert_int_equal(ts_image_probe(p, &tw, &th, NULL), 0);
		assert_int_equal(tw, 1);
		assert_int_equal(th, 1);
	}
	snprintf(p, sizeof p, "%s/%s.dzi", dir, name);
	xml = slurp(p, NULL);
	snprintf(want, sizeof want, "<Image TileSize=\"254\" Overlap=\"1\" Format=\"jpg\" "
	         "xmlns=\"http://schemas.microsoft.com/deepzoom/2008\"><Size Width=\"%d\" "
	         "Height=\"%d\"/></Image>", w, h);
	assert_non_null(strstr(xml, want));
	assert_true(strncmp(xml, "<?xml", 5) == 0);
	free(xml);
	snprintf(p, sizeof p, "%s/index.html", dir);
	assert_true(exists(p));
	snprintf(p, sizeof p, "%s.part", dir);
	assert_false(exists(p));
}

static void
test_layout(void **state)
{
	static const int sizes[][2] = { { 1, 1 }, { 255, 3 }, { 3, 255 }, { 600, 400 },
		                        { 1000, 254 }, { 509, 1 } };
	char dir[PATH_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		int w = sizes[i][0], h = sizes[i][1];

		snprintf(dir, sizeof dir, "%s/layout%zu", tmp, i);
		assert_int_equal(write_dzi(dir, "poster", w, h, NULL, 0), 0);
		check_layout(dir, "poster", w, h);
	}
}

/* mean |tile - expected| over the tile's pixels, expected(x, y) on level l */
static double
tile_error(const char *dir, int l, int c, int r, double (*expected)(int, int, int), int L)
{
	char p[PATH_MAX + 64];
	ts_image *im;
	double e = 0;
	int x0 = c * 254 - (c > 0), y0 = r * 254 - (r > 0);

	snprintf(p, sizeof p, "%s/poster_files/%d/%d_%d.jpg", dir, l, c, r);
	im = ts_image_load(p, 0);
	assert_non_null(im);
	for (int y = 0; y < im->h; y++)
		for (int x = 0; x < im->w; x++)
			e += fabs(im->px[(size_t)y * im->w + x] - expected(x0 + x, y0 + y, L - l));
	e /= (double)im->w * im->h;
	ts_image_destroy(im);
	return e;
}

static int exp_w, exp_h; /* the full size for expected() */

/* the picture at level L - s: s = 0 the picture; s = 1 its 2x2 box average */
static double
expected(int x, int y, int s)
{
	int x1, y1;

	if (s == 0)
		return wave(x, y);
	x1 = 2 * x + 1 < exp_w ? 2 * x + 1 : 2 * x;
	y1 = 2 * y + 1 < exp_h ? 2 * y + 1 : 2 * y;
	return 0.25 * (wave(2 * x, 2 * y) + wave(x1, 2 * y) + wave(2 * x, y1) + wave(x1, y1));
}

static double
shifted_x(int x, int y, int s)
{
	return expected(x + 1, y, s);
}

static double
shifted_y(int x, int y, int s)
{
	return expected(x, y + 1, s);
}

static void
test_pixels(void **state)
{
	char dir[PATH_MAX];
	const int w = 601, h = 401, L = 10; /* odd: the last column and row average alone */

	(void)state;
	exp_w = w, exp_h = h;
	snprintf(dir, sizeof dir, "%s/pixels", tmp);
	assert_int_equal(write_dzi(dir, "poster", w, h, NULL, 0), 0);
	for (int r = 0; r < 2; r++)
		for (int c = 0; c < 3; c++) {
			double e = tile_error(dir, L, c, r, expected, L);

			/* JPEG at quality 90 on a smooth grey wave: about 0.003 */
			assert_true(e < 0.012);
			/* a tile one pixel off is several times worse */
			if (c > 0)
				assert_true(tile_error(dir, L, c, r, shifted_x, L) > 2 * e + 0.01);
			if (r > 0)
				assert_true(tile_error(dir, L, c, r, shifted_y, L) > 2 * e + 0.01);
		}
	for (int c = 0; c < 2; c++) /* level L - 1: 301 x 201, 2 x 1 tiles */
		assert_true(tile_error(dir, L - 1, c, 0, expected, L) < 0.012);
}

/* every file of tree a is in b with the same bytes, and b has as many entries */
static const char *cmp_a, *cmp_b;
static int cmp_files;

static int
cmp_entry(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	char q[PATH_MAX];
	char *x, *y;
	size_t nx, ny;

	(void)st, (void)ftw;
	if (type != FTW_F)
		return 0;
	snprintf(q, sizeof q, "%s%s", cmp_b, p + strlen(cmp_a));
	x = slurp(p, &nx);
	y = slurp(q, &ny);
	assert_int_equal(nx, ny);
	assert_memory_equal(x, y, nx);
	free(x);
	free(y);
	cmp_files++;
	return 0;
}

static void
same_trees(const char *a, const char *b)
{
	char cmd[2 * PATH_MAX + 64];

	cmp_a = a, cmp_b = b, cmp_files = 0;
	assert_int_equal(nftw(a, cmp_entry, 16, FTW_PHYS), 0);
	assert_true(cmp_files > 3);
	snprintf(cmd, sizeof cmd, "test $(find '%s' | wc -l) -eq $(find '%s' | wc -l)", a, b);
	assert_int_equal(system(cmd), 0);
}

static void
test_banding(void **state)
{
	static const int one[] = { 1 }, odd[] = { 3, 1, 254, 7, 0, 255, 2, 100 };
	static const int sizes[][2] = { { 600, 400 }, { 1000, 254 } };
	char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX];

	(void)state;
	for (int i = 0; i < 2; i++) {
		int w = sizes[i][0], h = sizes[i][1];

		snprintf(a, sizeof a, "%s/band%d_all", tmp, i);
		snprintf(b, sizeof b, "%s/band%d_one", tmp, i);
		snprintf(c, sizeof c, "%s/band%d_odd", tmp, i);
		assert_int_equal(write_dzi(a, "poster", w, h, NULL, 0), 0);
		assert_int_equal(write_dzi(b, "poster", w, h, one, 1), 0);
		assert_int_equal(write_dzi(c, "poster", w, h, odd, 8), 0);
		same_trees(a, b);
		same_trees(a, c);
	}
}

static void
test_abort(void **state)
{
	char dir[PATH_MAX], part[PATH_MAX + 8], p[PATH_MAX + 32];
	float band[3 * 50 * 10];
	ts_dzi *z;

	(void)state;
	snprintf(dir, sizeof dir, "%s/abort", tmp);
	snprintf(part, sizeof part, "%s.part", dir);
	fill(band, 50, 0, 10);

	/* abort part way */
	z = ts_dzi_open(dir, "poster", 50, 30);
	assert_non_null(z);
	assert_true(exists(part));
	assert_false(exists(dir));
	assert_int_equal(ts_dzi_band(z, band, 10), 0);
	assert_int_equal(ts_dzi_close(z, 1), 0);
	assert_false(exists(dir));
	assert_false(exists(part));
	assert_int_equal(ts_dzi_close(NULL, 0), 0);

	/* a close with rows missing is an error and publishes nothing */
	z = ts_dzi_open(dir, "poster", 50, 30);
	assert_non_null(z);
	assert_int_equal(ts_dzi_band(z, band, 10), 0);
	assert_int_equal(ts_dzi_close(z, 0), -1);
	assert_non_null(strstr(ts_errmsg(), dir));
	assert_non_null(strstr(ts_errmsg(), "only 10 of the picture's 30 rows"));
	assert_false(exists(dir));
	assert_false(exists(part));

	/* too many rows fail the handle */
	z = ts_dzi_open(dir, "poster", 50, 5);
	assert_non_null(z);
	assert_int_equal(ts_dzi_band(z, band, 10), -1);
	assert_non_null(strstr(ts_errmsg(), dir));
	assert_int_equal(ts_dzi_band(z, band, 1), -1);
	assert_int_equal(ts_dzi_close(z, 0), -1);
	assert_false(exists(dir));
	assert_false(exists(part));

	/* an earlier run's DIR stays as it was through an aborted run */
	assert_int_equal(write_dzi(dir, "poster", 50, 30, NULL, 0), 0);
	z = ts_dzi_open(dir, "other", 50, 10);
	assert_non_null(z);
	assert_int_equal(ts_dzi_band(z, band, 10), 0);
	assert_int_equal(ts_dzi_close(z, 1), 0);
	check_layout(dir, "poster", 50, 30);
	snprintf(p, sizeof p, "%s/other.dzi", dir);
	assert_false(exists(p));
	assert_false(exists(part));
}

static void
test_replace(void **state)
{
	char dir[PATH_MAX], part[PATH_MAX + 8], p[PATH_MAX + 32];
	float band[3 * 40 * 20];
	ts_dzi *z;

	(void)state;
	snprintf(dir, sizeof dir, "%s/replace/", tmp); /* a trailing '/' is the same folder */
	snprintf(part, sizeof part, "%s/replace.part", tmp);
	assert_int_equal(write_dzi(dir, "first", 300, 200, NULL, 0), 0);
	check_layout(dir, "first", 300, 200);

	z = ts_dzi_open(dir, "second", 40, 20);
	assert_non_null(z);
	fill(band, 40, 0, 20);
	assert_int_equal(ts_dzi_band(z, band, 20), 0);
	check_layout(dir, "first", 300, 200); /* until the close */
	assert_true(exists(part));
	assert_int_equal(ts_dzi_close(z, 0), 0);
	check_layout(dir, "second", 40, 20);
	snprintf(p, sizeof p, "%s/first.dzi", dir);
	assert_false(exists(p));
	snprintf(p, sizeof p, "%s/replace.old", tmp);
	assert_false(exists(p));
	assert_false(exists(part));

	/* a stale DIR.part of a crashed run is cleared; an empty DIR is taken */
	snprintf(dir, sizeof dir, "%s/stale", tmp);
	snprintf(part, sizeof part, "%s.part", dir);
	assert_int_equal(mkdir(dir, 0777), 0);
	assert_int_equal(mkdir(part, 0777), 0);
	snprintf(p, sizeof p, "%s/.tessera-dzi", part);
	fclose(fopen(p, "w"));
	snprintf(p, sizeof p, "%s/junk", part);
	fclose(fopen(p, "w"));
	assert_int_equal(write_dzi(dir, "poster", 20, 20, NULL, 0), 0);
	check_layout(dir, "poster", 20, 20);
	assert_false(exists(part));
}

/* ts_dzi_open fails with one message naming dir and creates nothing */
static void
refused(const char *dir, const char *name, int w, int h, const char *why)
{
	char part[PATH_MAX + 8];

	snprintf(part, sizeof part, "%s.part", dir);
	assert_null(ts_dzi_open(dir, name, w, h));
	assert_non_null(strstr(ts_errmsg(), dir));
	assert_non_null(strstr(ts_errmsg(), why));
	assert_null(strchr(ts_errmsg(), '\n'));
	assert_false(exists(part));
}

static void
test_bad(void **state)
{
	char dir[PATH_MAX], part[PATH_MAX + 8], p[PATH_MAX + 32];
	struct rlimit old, lim;
	void (*oldsig)(int);
	float *band;
	ts_dzi *z;
	int rc = 0;

	(void)state;
	snprintf(dir, sizeof dir, "%s/bad", tmp);
	refused(dir, "poster", 0, 10, "0x10 is not positive");
	refused(dir, "poster", 10, -1, "10x-1 is not positive");
	refused(dir, "a/b", 10, 10, "bad file name");
	refused(dir, "", 10, 10, "bad file name");
	assert_false(exists(dir));
	snprintf(dir, sizeof dir, "%s/missing/bad", tmp);
	refused(dir, "poster", 10, 10, strerror(ENOENT));

	/* a folder of the user's is never replaced */
	snprintf(dir, sizeof dir, "%s/mine", tmp);
	assert_int_equal(mkdir(dir, 0777), 0);
	snprintf(p, sizeof p, "%s/holiday.jpg", dir);
	fclose(fopen(p, "w"));
	refused(dir, "poster", 10, 10, "not a Deep Zoom folder");
	assert_true(exists(p));
	snprintf(dir, sizeof dir, "%s/mine/holiday.jpg", tmp);
	refused(dir, "poster", 10, 10, "is not a folder");

	/* a full file system while tiles are written */
	snprintf(dir, sizeof dir, "%s/full", tmp);
	snprintf(part, sizeof part, "%s.part", dir);
	band = malloc((size_t)3 * 600 * 300 * sizeof *band);
	assert_non_null(band);
	for (size_t i = 0; i < (size_t)3 * 600 * 300; i++) /* noise: big JPEGs */
		band[i] = (float)((i * 2654435761u >> 7) % 256) / 255.0f;
	z = ts_dzi_open(dir, "poster", 600, 300);
	assert_non_null(z);
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = ts_dzi_band(z, band, 300);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(ts_errmsg(), dir));
	assert_non_null(strstr(ts_errmsg(), strerror(EFBIG)));
	assert_non_null(strstr(ts_errmsg(), "poster_files/"));
	assert_int_equal(ts_dzi_close(z, 0), -1);
	assert_false(exists(dir));
	assert_false(exists(part));
	free(band);
}

static void
test_viewer(void **state)
{
	char dir[PATH_MAX], p[PATH_MAX + 32], *page;

	(void)state;
	snprintf(dir, sizeof dir, "%s/viewer", tmp);
	assert_int_equal(write_dzi(dir, "my poster&", 30, 20, NULL, 0), 0);
	check_layout(dir, "my poster&", 30, 20);
	snprintf(p, sizeof p, "%s/openseadragon.min.js", dir);
	page = slurp(p, NULL);
	assert_string_equal(page, "var OpenSeadragon;\n");
	free(page);
	snprintf(p, sizeof p, "%s/images/home_rest.png", dir);
	assert_true(exists(p));
	snprintf(p, sizeof p, "%s/index.html", dir);
	page = slurp(p, NULL);
	assert_non_null(strstr(page, "<script src=\"openseadragon.min.js\">"));
	assert_non_null(strstr(page, "prefixUrl: \"images/\""));
	assert_non_null(strstr(page, "Url: \"my%20poster%26_files/\""));
	assert_non_null(strstr(page, "Width: \"30\", Height: \"20\""));
	assert_null(strstr(page, "not found"));
	free(page);

	/* without the viewer: tiles and .dzi, and a page that says so */
	assert_int_equal(setenv("TESSERA_OPENSEADRAGON", "/nonexistent/openseadragon", 1), 0);
	assert_int_equal(write_dzi(dir, "poster", 30, 20, NULL, 0), 0);
	check_layout(dir, "poster", 30, 20);
	snprintf(p, sizeof p, "%s/openseadragon.min.js", dir);
	assert_false(exists(p));
	snprintf(p, sizeof p, "%s/index.html", dir);
	page = slurp(p, NULL);
	assert_non_null(strstr(page, "was not found"));
	assert_non_null(strstr(page, "TESSERA_OPENSEADRAGON"));
	free(page);
	assert_int_equal(setenv("TESSERA_OPENSEADRAGON", osd, 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),  cmocka_unit_test(test_pixels),
		cmocka_unit_test(test_banding), cmocka_unit_test(test_abort),
		cmocka_unit_test(test_replace), cmocka_unit_test(test_bad),
		cmocka_unit_test(test_viewer),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
