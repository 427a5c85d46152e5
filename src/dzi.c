/* dzi: the Deep Zoom pyramid, built while the picture streams in (see dzi.h).
 *
 * Each level keeps the rows of its current tile row as 8-bit RGB (buf); a row that
 * arrives at level l is stored there and, for l > 0, paired with the row before it
 * (pend) into one row of level l - 1, which is pushed down at once, so every level
 * fills in the same top-to-bottom order as the picture.  When a level holds the
 * last row a tile row needs (its 254 rows and the overlap row below), all its tiles
 * are written and the two rows the next tile row shares with it (its top overlap row
 * and first row) move to the front of buf.  Every computation depends on the row
 * alone, never on how the rows were banded, so any banding gives the same bytes.
 *
 * This file includes stb_image_write, an exception to "only image_*.c include stb":
 * ts_image_save makes each file atomic and durable on its own (a .part, two fsyncs
 * and a rename per file), tens of thousands of times for a print, while a tile here
 * needs none of that: the whole tree is published by one rename after one syncfs.
 *
 * Invariants: lv[l].y0 <= lv[l].y <= lv[l].y0 + 256; lv[l].y0 is the first row of
 * tile row lv[l].trow; a failed handle writes nothing more; nothing outside
 * "DIR.part" is touched before ts_dzi_close publishes. */
#include "tessera/dzi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "tessera/error.h"
#include "tessera/file.h"

#define MARKER ".tessera-dzi"
#define ROWS_MAX (TS_DZI_TILE + 2 * TS_DZI_OVERLAP) /* rows of one tile row, 256 */
#define ENV_OSD "TESSERA_OPENSEADRAGON"

struct level {
	int w, h;       /* pixels at this level */
	int cols, rows; /* tiles */
	int y;          /* rows received so far */
	int y0;         /* picture row held in buf's first row */
	int trow;       /* next tile row to write */
	uint8_t *buf;   /* [min(h, 256), w, 3] interleaved: rows y0 .. y - 1 */
	float *pend;    /* [3, w] planar: the even row awaiting its partner (l > 0) */
	int has_pend;   /* pend holds a row */
	float *down;    /* [3, w of level l - 1] planar: the halved row (l > 0) */
};

struct ts_dzi {
	char *dir;         /* the folder to publish, without trailing '/' */
	char *part;        /* dir + ".part", where everything is built */
	char *name;        /* file stem */
	char *path;        /* scratch for file paths in part, sized for any of them */
	size_t path_size;  /* bytes of path */
	char *osd;         /* the OpenSeadragon build folder, NULL if not found */
	int w, h;          /* the picture */
	int nlev;          /* levels 0 .. nlev - 1; nlev - 1 is full size */
	struct level *lv;  /* [nlev] */
	float *in;         /* [3, w] planar: the incoming row, clamped */
	uint8_t *tile;     /* [256, 256, 3] interleaved: the tile being encoded */
	int failed;        /* an error happened: close removes part */
};

/* --- folders --- */

static int
rm_entry(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

/* Remove the tree at path (absent: nothing to do).  0, or -1 with errno set. */
static int
rm_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -1;
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* May path be replaced by a tree of ours?  1: absent; 0: a folder that is empty or
 * holds the marker; -1 with a message naming dir otherwise. */
static int
replaceable(const char *dir, const char *path)
{
	struct stat st;
	struct dirent *e;
	char *m = NULL;
	DIR *d;
	int ret = -1, empty = 1;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 1;
		ts_error_errno("dzi", "cannot write \"%s\": cannot look at \"%s\"", dir, path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		ts_error("dzi", "cannot write \"%s\": %s%s%s exists and is not a folder", dir,
		         path == dir ? "" : "\"", path == dir ? "it" : path,
		         path == dir ? "" : "\"");
		return -1;
	}
	if (asprintf(&m, "%s/%s", path, MARKER) < 0) {
		ts_error("dzi", "cannot write \"%s\": out of memory", dir);
		return -1;
	}
	if (access(m, F_OK) == 0) {
		ret = 0;
		goto cleanup;
	}
	if (!(d = opendir(path))) {
		ts_error_errno("dzi", "cannot write \"%s\": cannot read \"%s\"", dir, path);
		goto cleanup;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = 0;
	closedir(d);
	if (empty)
		ret = 0;
	else
		ts_error("dzi", "cannot write \"%s\": %s%s%s exists and is not a Deep Zoom "
		         "folder of tessera's (no %s in it): remove it or name another folder",
		         dir, path == dir ? "" : "\"", path == dir ? "it" : path,
		         path == dir ? "" : "\"", MARKER);
cleanup:
	free(m);
	return ret;
}

/* z->path = part/fmt...; returns z->path */
static const char *
in_part(ts_dzi *z, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *
in_part(ts_dzi *z, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(z->path, z->path_size, "%s/", z->part);

	va_start(ap, fmt);
	vsnprintf(z->path + n, z->path_size - (size_t)n, fmt, ap);
	va_end(ap);
	return z->path;
}

/* the part of z->path after "DIR.part/", for messages */
static const char *
rel(const ts_dzi *z)
{
	return z->path + strlen(z->part) + 1;
}

static int
make_dir(ts_dzi *z, const char *p)
{
	if (mkdir(p, 0777) == 0)
		return 0;
	ts_error_errno("dzi", "cannot create \"%s\": cannot make %s", z->dir,
	               p == z->part ? z->part : rel(z));
	return -1;
}

/* --- files --- */

/* stb_image_write sink: append to a FILE, remember the first failed write */
struct sink {
	FILE *f;
	int err; /* errno of the first failed write (EIO if it set none), or 0 */
};

static void
sink_write(void *ctx, void *data, int size)
{
	struct sink *s = ctx;

	if (s->err || size <= 0)
		return;
	if (fwrite(data, 1, (size_t)size, s->f) != (size_t)size)
		s->err = errno ? errno : EIO;
}

/* Finish a file written to z->path: close f, report the first error naming dir. */
static int
close_file(ts_dzi *z, FILE *f, int err)
{
	errno = 0;
	if (fflush(f) && !err)
		err = errno ? errno : EIO;
	if (ferror(f) && !err)
		err = EIO;
	if (fclose(f) && !err)
		err = errno ? errno : EIO;
	if (!err)
		return 0;
	errno = err;
	ts_error_errno("dzi", "cannot write \"%s\": %s", z->dir, rel(z));
	return -1;
}

/* Write n bytes to z->path (a new file in part). */
static int
put_file(ts_dzi *z, const void *data, size_t n)
{
	FILE *f = fopen(z->path, "wb");

	if (!f) {
		ts_error_errno("dzi", "cannot write \"%s\": %s", z->dir, rel(z));
		return -1;
	}
	errno = 0;
	return close_file(z, f, n && fwrite(data, 1, n, f) != n ? (errno ? errno : EIO) : 0);
}

/* Copy the file src to z->path. */
static int
copy_file(ts_dzi *z, const char *src)
{
	char buf[1 << 16];
	FILE *in = fopen(src, "rb"), *out = NULL;
	size_t n;
	int err = 0;

	if (!in) {
		ts_error_errno("dzi", "cannot write \"%s\": cannot read \"%s\"", z->dir, src);
		return -1;
	}
	if (!(out = fopen(z->path, "wb"))) {
		ts_error_errno("dzi", "cannot write \"%s\": %s", z->dir, rel(z));
		fclose(in);
		return -1;
	}
	while (!err && (n = fread(buf, 1, sizeof buf, in)) > 0) {
		errno = 0;
		if (fwrite(buf, 1, n, out) != n)
			err = errno ? errno : EIO;
	}
	if (!err && ferror(in)) {
		fclose(in);
		fclose(out);
		errno = EIO;
		ts_error_errno("dzi", "cannot write \"%s\": cannot read \"%s\"", z->dir, src);
		return -1;
	}
	fclose(in);
	return close_file(z, out, err);
}

/* --- the pyramid --- */

static uint8_t
to_u8(float v)
{
	if (!(v > 0.0f)) /* also NaN */
		return 0;
	if (v >= 1.0f)
		return 255;
	return (uint8_t)(v * 255.0f + 0.5f);
}

static int
tile_end(int t, int n) /* one past the last pixel of tile t along a side of n */
{
	long long e = (long long)(t + 1) * TS_DZI_TILE + TS_DZI_OVERLAP;

	return e < n ? (int)e : n;
}

static int
tile_start(int t)
{
	return t * TS_DZI_TILE - (t > 0 ? TS_DZI_OVERLAP : 0);
}

/* Write every tile of level l's tile row v->trow (all its rows are in buf). */
static int
write_tile_row(ts_dzi *z, int l)
{
	struct level *v = &z->lv[l];
	int th = tile_end(v->trow, v->h) - v->y0;

	TS_ASSERT(v->y0 == tile_start(v->trow) && th > 0 && th <= ROWS_MAX);
	for (int c = 0; c < v->cols; c++) {
		int x0 = tile_start(c), tw = tile_end(c, v->w) - x0;
		struct sink s = { NULL, 0 };
		int ok;

		for (int y = 0; y < th; y++)
			memcpy(z->tile + (size_t)y * tw * 3,
			       v->buf + ((size_t)y * v->w + x0) * 3, (size_t)tw * 3);
		in_part(z, "%s_files/%d/%d_%d.jpg", z->name, l, c, v->trow);
		if (!(s.f = fopen(z->path, "wb"))) {
			ts_error_errno("dzi", "cannot write \"%s\": %s", z->dir, rel(z));
			return -1;
		}
		errno = 0;
		ok = stbi_write_jpg_to_func(sink_write, &s, tw, th, 3, z->tile,
		                            TS_DZI_QUALITY);
		if (close_file(z, s.f, s.err))
			return -1;
		if (!ok) {
			ts_error("dzi", "cannot write \"%s\": %s: JPEG encoder failed", z->dir,
			         rel(z));
			return -1;
		}
	}
	return 0;
}

/* out [3, (w + 1) / 2] planar = 2x2 box average of rows a and b [3, w] (b NULL: a
 * alone, the odd last row); an odd last column is averaged with itself. */
static void
halve(float *out, const float *a, const float *b, int w)
{
	int hw = (w + 1) / 2;

	if (!b)
		b = a;
	for (int ch = 0; ch < 3; ch++) {
		const float *pa = a + (size_t)ch * w, *pb = b + (size_t)ch * w;
		float *po = out + (size_t)ch * hw;

		for (int x = 0; x < hw; x++) {
			int x0 = 2 * x, x1 = x0 + 1 < w ? x0 + 1 : x0;

			po[x] = 0.25f * ((pa[x0] + pa[x1]) + (pb[x0] + pb[x1]));
		}
	}
}

/* Append one row (planar [3, w], clamped) to level l and everything it completes. */
static int
push_row(ts_dzi *z, int l, const float *row)
{
	struct level *v = &z->lv[l];
	uint8_t *dst = v->buf + (size_t)(v->y - v->y0) * v->w * 3;
	size_t n = (size_t)v->w;

	TS_ASSERT(v->y < v->h && v->y - v->y0 < ROWS_MAX);
	for (size_t x = 0; x < n; x++) {
		dst[3 * x] = to_u8(row[x]);
		dst[3 * x + 1] = to_u8(row[n + x]);
		dst[3 * x + 2] = to_u8(row[2 * n + x]);
	}
	v->y++;
	if (l > 0) {
		if (v->has_pend) {
			halve(v->down, v->pend, row, v->w);
			v->has_pend = 0;
			if (push_row(z, l - 1, v->down))
				return -1;
		} else if (v->y == v->h) {
			halve(v->down, row, NULL, v->w);
			if (push_row(z, l - 1, v->down))
				return -1;
		} else {
			memcpy(v->pend, row, 3 * n * sizeof *row);
			v->has_pend = 1;
		}
	}
	while (v->trow < v->rows && v->y >= tile_end(v->trow, v->h)) {
		int ny0;

		if (write_tile_row(z, l))
			return -1;
		if (++v->trow == v->rows)
			break;
		/* the next tile row starts at its overlap row: keep the rows from there */
		ny0 = tile_start(v->trow);
		memmove(v->buf, v->buf + (size_t)(ny0 - v->y0) * n * 3,
		        (size_t)(v->y - ny0) * n * 3);
		v->y0 = ny0;
	}
	return 0;
}

/* --- the viewer --- */

/* The OpenSeadragon build folder: $TESSERA_OPENSEADRAGON, else the compiled-in one,
 * if it holds openseadragon.min.js and images/.  Caller frees; NULL if not found. */
static char *
find_osd(void)
{
	const char *cand[2] = { getenv(ENV_OSD), NULL };
	char *p = NULL;
	struct stat st;

#ifdef TS_OPENSEADRAGON_DIR
	cand[1] = TS_OPENSEADRAGON_DIR;
#endif
	for (int i = 0; i < 2; i++) {
		int ok;

		if (!cand[i] || !*cand[i])
			continue;
		if (asprintf(&p, "%s/images", cand[i]) < 0)
			return NULL;
		ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
		free(p);
		if (asprintf(&p, "%s/openseadragon.min.js", cand[i]) < 0)
			return NULL;
		ok = ok && access(p, R_OK) == 0;
		free(p);
		if (ok)
			return strdup(cand[i]);
		if (i == 0) /* a wrong variable is no reason to take another copy silently */
			return NULL;
	}
	return NULL;
}

/* Copy openseadragon.min.js and images/ from z->osd into part. */
static int
copy_viewer(ts_dzi *z)
{
	struct dirent *e;
	char *src = NULL;
	DIR *d = NULL;
	int ret = -1;

	if (asprintf(&src, "%s/openseadragon.min.js", z->osd) < 0)
		goto oom;
	in_part(z, "openseadragon.min.js");
	if (copy_file(z, src))
		goto cleanup;
	free(src);
	if (asprintf(&src, "%s/images", z->osd) < 0) {
		src = NULL;
		goto oom;
	}
	if (make_dir(z, in_part(z, "images")))
		goto cleanup;
	if (!(d = opendir(src))) {
		ts_error_errno("dzi", "cannot write \"%s\": cannot read \"%s\"", z->dir, src);
		goto cleanup;
	}
	while ((e = readdir(d))) {
		char *f;
		size_t n = strlen(e->d_name);
		int bad;

		if (n < 5 || strcmp(e->d_name + n - 4, ".png"))
			continue;
		if (asprintf(&f, "%s/%s", src, e->d_name) < 0)
			goto oom;
		in_part(z, "images/%s", e->d_name);
		bad = copy_file(z, f);
		free(f);
		if (bad)
			goto cleanup;
	}
	ret = 0;
	goto cleanup;
oom:
	ts_error("dzi", "cannot write \"%s\": out of memory", z->dir);
cleanup:
	if (d)
		closedir(d);
	free(src);
	return ret;
}

/* s with every byte outside [A-Za-z0-9._~-] as %XX: safe in a URL, in HTML and in a
 * JavaScript string.  Caller frees. */
static char *
url_escape(const char *s)
{
	char *o = malloc(3 * strlen(s) + 1), *p = o;

	if (!o)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '~' || c == '-')
			*p++ = (char)c;
		else
			p += sprintf(p, "%%%02X", c);
	}
	*p = '\0';
	return o;
}

static int
write_index(ts_dzi *z)
{
	char *url = url_escape(z->name), *page = NULL;
	int n, ret = -1;

	if (!url)
		goto oom;
	if (z->osd)
		n = asprintf(&page,
		    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
		    "<title>%s (%dx%d)</title>\n"
		    "<style>html, body { margin: 0; height: 100%%; background: #202020; }\n"
		    "#view { width: 100%%; height: 100%%; }</style>\n"
		    "</head><body><div id=\"view\"></div>\n"
		    "<script src=\"openseadragon.min.js\"></script>\n<script>\n"
		    "/* %s.dzi's content, inline: a browser refuses to fetch it from file:// */\n"
		    "OpenSeadragon({ id: \"view\", prefixUrl: \"images/\", showNavigator: true,\n"
		    "  tileSources: { Image: { xmlns: \"http://schemas.microsoft.com/deepzoom/2008\",\n"
		    "    Url: \"%s_files/\", Format: \"jpg\", Overlap: \"%d\", TileSize: \"%d\",\n"
		    "    Size: { Width: \"%d\", Height: \"%d\" } } } });\n"
		    "</script></body></html>\n",
		    url, z->w, z->h, url, url, TS_DZI_OVERLAP, TS_DZI_TILE, z->w, z->h);
	else
		n = asprintf(&page,
		    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
		    "<title>%s (%dx%d)</title></head><body>\n"
		    "<p>The viewer script (OpenSeadragon's openseadragon.min.js) was not found "
		    "when tessera wrote this folder, so this page cannot show the picture.</p>\n"
		    "<p>The tiles are complete: <a href=\"%s.dzi\">%s.dzi</a> opens in any Deep "
		    "Zoom viewer.  To get this page, install OpenSeadragon (tools/deps.sh does, "
		    "through npm) or set %s to its build/openseadragon folder, and run "
		    "tessera again.</p>\n</body></html>\n",
		    url, z->w, z->h, url, url, ENV_OSD);
	if (n < 0) {
		page = NULL;
		goto oom;
	}
	in_part(z, "index.html");
	if (put_file(z, page, (size_t)n))
		goto cleanup;
	ret = z->osd ? copy_viewer(z) : 0;
	goto cleanup;
oom:
	ts_error("dzi", "cannot write \"%s\": out of memory", z->dir);
cleanup:
	free(page);
	free(url);
	return ret;
}

/* --- the handle --- */

static void
dzi_free(ts_dzi *z)
{
	if (z->lv)
		for (int l = 0; l < z->nlev; l++) {
			free(z->lv[l].buf);
			free(z->lv[l].pend);
			free(z->lv[l].down);
		}
	free(z->lv);
	free(z->in);
	free(z->tile);
	free(z->osd);
	free(z->path);
	free(z->name);
	free(z->part);
	free(z->dir);
	free(z);
}

ts_dzi *
ts_dzi_open(const char *dir, const char *name, int w, int h)
{
	ts_dzi *z = NULL;
	size_t n;
	int made = 0, r;

	if (!dir || !*dir) {
		ts_error("dzi", "no folder given for the Deep Zoom output");
		return NULL;
	}
	if (w <= 0 || h <= 0) {
		ts_error("dzi", "cannot create \"%s\": the picture's size %dx%d is not positive",
		         dir, w, h);
		return NULL;
	}
	if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
		ts_error("dzi", "cannot create \"%s\": bad file name \"%s\"", dir,
		         name ? name : "(null)");
		return NULL;
	}
	if (!(z = calloc(1, sizeof *z)) || !(z->dir = strdup(dir)))
		goto oom;
	for (n = strlen(z->dir); n > 1 && z->dir[n - 1] == '/'; n--)
		z->dir[n - 1] = '\0';
	if (asprintf(&z->part, "%s.part", z->dir) < 0) {
		z->part = NULL;
		goto oom;
	}
	if (!(z->name = strdup(name)))
		goto oom;
	/* room for "/NAME_files/L/C_R.jpg" and "/images/" + a file name (NAME_MAX) */
	z->path_size = strlen(z->part) + strlen(name) + 512;
	if (!(z->path = malloc(z->path_size)))
		goto oom;
	z->w = w, z->h = h;
	while ((1LL << z->nlev) < (w > h ? w : h)) /* nlev = L = ceil(log2(max(w, h))) */
		z->nlev++;
	z->nlev++;
	if (!(z->lv = calloc((size_t)z->nlev, sizeof *z->lv)) ||
	    !(z->in = malloc((size_t)w * 3 * sizeof *z->in)) ||
	    !(z->tile = malloc((size_t)ROWS_MAX * ROWS_MAX * 3)))
		goto oom;
	for (int l = z->nlev - 1; l >= 0; l--) {
		struct level *v = &z->lv[l];

		v->w = l == z->nlev - 1 ? w : (z->lv[l + 1].w + 1) / 2;
		v->h = l == z->nlev - 1 ? h : (z->lv[l + 1].h + 1) / 2;
		v->cols = (v->w + TS_DZI_TILE - 1) / TS_DZI_TILE;
		v->rows = (v->h + TS_DZI_TILE - 1) / TS_DZI_TILE;
		if (!(v->buf = malloc((size_t)(v->h < ROWS_MAX ? v->h : ROWS_MAX) * v->w * 3)))
			goto oom;
		if (l > 0 && (!(v->pend = malloc((size_t)v->w * 3 * sizeof *v->pend)) ||
		              !(v->down = malloc((size_t)(v->w + 1) / 2 * 3 * sizeof *v->down))))
			goto oom;
	}
	TS_ASSERT(z->lv[0].w == 1 && z->lv[0].h == 1);

	if (replaceable(z->dir, z->dir) < 0 || (r = replaceable(z->dir, z->part)) < 0)
		goto fail;
	if (r == 0 && rm_tree(z->part)) {
		ts_error_errno("dzi", "cannot create \"%s\": cannot remove the stale \"%s\"",
		               z->dir, z->part);
		goto fail;
	}
	if (make_dir(z, z->part))
		goto fail;
	made = 1;
	in_part(z, MARKER);
	if (put_file(z, "", 0) || make_dir(z, in_part(z, "%s_files", z->name)))
		goto fail;
	for (int l = 0; l < z->nlev; l++)
		if (make_dir(z, in_part(z, "%s_files/%d", z->name, l)))
			goto fail;
	if (!(z->osd = find_osd()))
		fprintf(stderr, "tessera: warning: OpenSeadragon not found (set %s to its "
		        "build/openseadragon folder): %s/index.html will not show the picture, "
		        "the tiles are written\n", ENV_OSD, z->dir);
	return z;
oom:
	ts_error("dzi", "cannot create \"%s\": out of memory for a %dx%d pyramid", dir, w, h);
fail:
	if (z) {
		if (made)
			rm_tree(z->part);
		dzi_free(z);
	}
	return NULL;
}

int
ts_dzi_band(ts_dzi *z, const float *band, int rows)
{
	struct level *top = &z->lv[z->nlev - 1];
	size_t n = (size_t)z->w, plane = (size_t)rows * n;

	if (z->failed) {
		ts_error("dzi", "cannot write \"%s\": an earlier error stopped it", z->dir);
		return -1;
	}
	if (rows < 0 || rows > z->h - top->y) {
		ts_error("dzi", "cannot write \"%s\": %d rows after row %d of %d", z->dir, rows,
		         top->y, z->h);
		z->failed = 1;
		return -1;
	}
	for (int y = 0; y < rows; y++) {
		for (int ch = 0; ch < 3; ch++) {
			const float *s = band + ch * plane + (size_t)y * n;
			float *d = z->in + ch * n;

			for (size_t x = 0; x < n; x++)
				d[x] = s[x] > 0.0f ? (s[x] < 1.0f ? s[x] : 1.0f) : 0.0f;
		}
		if (push_row(z, z->nlev - 1, z->in)) {
			z->failed = 1;
			return -1;
		}
	}
	return 0;
}

/* Make part durable and publish it as dir (see dzi.h).  After a failure part is
 * still there for the caller to remove (and dir is as it was, except when only the
 * final sync of the parent folder failed: then dir is already the new tree). */
static int
publish(ts_dzi *z)
{
	char *old = NULL; /* where the earlier run's tree ends up, removed at the end */
	int fd, r, ret = -1;

	if ((fd = open(z->part, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		ts_error_errno("dzi", "cannot write \"%s\": cannot open \"%s\"", z->dir, z->part);
		return -1;
	}
	r = syncfs(fd); /* one sync for the whole tree instead of one per tile */
	close(fd);
	if (r) {
		ts_error_errno("dzi", "cannot write \"%s\": cannot sync \"%s\"", z->dir, z->part);
		return -1;
	}
	if ((r = replaceable(z->dir, z->dir)) < 0)
		return -1;
	if (r == 1) {
		if (rename(z->part, z->dir)) {
			ts_error_errno("dzi", "cannot write \"%s\": cannot rename \"%s\" to it",
			               z->dir, z->part);
			return -1;
		}
	} else {
		if (!(old = malloc(strlen(z->dir) + sizeof ".part"))) {
			ts_error("dzi", "cannot write \"%s\": out of memory", z->dir);
			return -1;
		}
		if (renameat2(AT_FDCWD, z->part, AT_FDCWD, z->dir, RENAME_EXCHANGE) == 0) {
			strcpy(old, z->part); /* the two trees swapped names */
		} else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
			/* no atomic exchange on this file system: for a moment there is no dir */
			sprintf(old, "%s.old", z->dir);
			if (rm_tree(old) || rename(z->dir, old)) {
				ts_error_errno("dzi", "cannot write \"%s\": cannot move it to \"%s\"",
				               z->dir, old);
				goto cleanup;
			}
			if (rename(z->part, z->dir)) {
				ts_error_errno("dzi", "cannot write \"%s\": cannot rename \"%s\" to it",
				               z->dir, z->part);
				rename(old, z->dir);
				goto cleanup;
			}
		} else {
			ts_error_errno("dzi", "cannot write \"%s\": cannot replace it with \"%s\"",
			               z->dir, z->part);
			goto cleanup;
		}
	}
	if (ts_file_sync_dir(z->dir)) {
		ts_error_errno("dzi", "cannot write \"%s\": cannot sync its parent folder",
		               z->dir);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (ret == 0 && old)
		rm_tree(old); /* the earlier run's tree: a failure here only leaves litter */
	free(old);
	return ret;
}

int
ts_dzi_close(ts_dzi *z, int discard)
{
	struct level *top;
	int ret = -1;

	if (!z)
		return 0;
	top = &z->lv[z->nlev - 1];
	if (discard) {
		ret = 0;
		goto remove;
	}
	if (z->failed)
		goto remove;
	if (top->y < z->h) {
		ts_error("dzi", "cannot write \"%s\": only %d of the picture's %d rows were "
		         "given", z->dir, top->y, z->h);
		goto remove;
	}
	for (int l = 0; l < z->nlev; l++)
		TS_ASSERT(z->lv[l].y == z->lv[l].h && z->lv[l].trow == z->lv[l].rows);
	{
		char *xml = NULL;
		int n = asprintf(&xml,
		    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		    "<Image TileSize=\"%d\" Overlap=\"%d\" Format=\"jpg\" "
		    "xmlns=\"http://schemas.microsoft.com/deepzoom/2008\">"
		    "<Size Width=\"%d\" Height=\"%d\"/></Image>\n",
		    TS_DZI_TILE, TS_DZI_OVERLAP, z->w, z->h);

		if (n < 0) {
			ts_error("dzi", "cannot write \"%s\": out of memory", z->dir);
			goto remove;
		}
		in_part(z, "%s.dzi", z->name);
		n = put_file(z, xml, (size_t)n);
		free(xml);
		if (n)
			goto remove;
	}
	if (write_index(z) || publish(z))
		goto remove;
	ret = 0;
	goto cleanup;
remove:
	if (rm_tree(z->part) && ret == 0) {
		ts_error_errno("dzi", "cannot remove \"%s\"", z->part);
		ret = -1;
	}
cleanup:
	dzi_free(z);
	return ret;
}
