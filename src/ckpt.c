/* ckpt: tile checkpoint files and the job log (see ckpt.h for the file layout).
 *
 * Invariants: a tile file exists under its real name only when it was written whole
 * (temporary "<path>.part", fsync, rename, fsync of the directory); its CRC32 covers
 * every byte before it, and its plan hash ties it to the job that made it.  The
 * encoding is explicit little-endian, independent of the host. */
#include "tessera/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "tessera/error.h"
#include "tessera/file.h"

/* Pixels are converted to little-endian bytes this many floats at a time. */
#define CHUNK 4096

static void
put_u32(unsigned char *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static void
put_u64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static void
put_f64(unsigned char *b, double d)
{
	uint64_t v;

	memcpy(&v, &d, sizeof v);
	put_u64(b, v);
}

static uint32_t
get_u32(const unsigned char *b)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static uint64_t
get_u64(const unsigned char *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static int32_t
get_i32(const unsigned char *b)
{
	uint32_t u = get_u32(b);
	int32_t v;

	memcpy(&v, &u, sizeof v);
	return v;
}

static double
get_f64(const unsigned char *b)
{
	uint64_t v = get_u64(b);
	double d;

	memcpy(&d, &v, sizeof d);
	return d;
}

static void
put_i32(unsigned char *b, int32_t v)
{
	uint32_t u;

	memcpy(&u, &v, sizeof u);
	put_u32(b, u);
}

static void
encode_header(const ts_tile_result *r, unsigned char *b /* [TS_CKPT_HEADER_SIZE] */)
{
	memcpy(b, TS_CKPT_MAGIC, 8);
	put_u32(b + 8, TS_CKPT_VERSION);
	put_u64(b + 12, r->plan_hash);
	put_i32(b + 20, r->level);
	put_i32(b + 24, r->row);
	put_i32(b + 28, r->col);
	put_i32(b + 32, r->x);
	put_i32(b + 36, r->y);
	put_i32(b + 40, r->w);
	put_i32(b + 44, r->h);
	put_i32(b + 48, r->iterations);
	put_f64(b + 52, r->content);
	put_f64(b + 60, r->style);
	put_f64(b + 68, r->tv);
	put_f64(b + 76, r->total);
	put_f64(b + 84, r->seconds);
	put_i32(b + 92, r->rank);
}

static void
decode_header(const unsigned char *b, ts_tile_result *r)
{
	r->plan_hash = get_u64(b + 12);
	r->level = get_i32(b + 20);
	r->row = get_i32(b + 24);
	r->col = get_i32(b + 28);
	r->x = get_i32(b + 32);
	r->y = get_i32(b + 36);
	r->w = get_i32(b + 40);
	r->h = get_i32(b + 44);
	r->iterations = get_i32(b + 48);
	r->content = get_f64(b + 52);
	r->style = get_f64(b + 60);
	r->tv = get_f64(b + 68);
	r->total = get_f64(b + 76);
	r->seconds = get_f64(b + 84);
	r->rank = get_i32(b + 92);
}

int
ts_ckpt_path(const char *job, int level, int row, int col, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/L%d/%d_%d.tile", job, level, row, col);

	if (n < 0 || (size_t)n >= size) {
		ts_error("ckpt", "tile path under \"%s\" is too long", job);
		return -1;
	}
	return 0;
}

/* mkdir one directory; fsync its parent when it was created. */
static int
make_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0777) == 0) {
		if (ts_file_sync_dir(dir)) {
			ts_error_errno("ckpt", "cannot sync the directory holding \"%s\"", dir);
			return -1;
		}
		return 0;
	}
	if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (errno == EEXIST)
		errno = ENOTDIR;
	ts_error_errno("ckpt", "cannot create the directory \"%s\"", dir);
	return -1;
}

int
ts_ckpt_mkdirs(const char *job, int level)
{
	char path[PATH_MAX];
	size_t n = strlen(job);

	if (n + 16 >= sizeof path) {
		ts_error("ckpt", "job directory name \"%s\" is too long", job);
		return -1;
	}
	memcpy(path, job, n + 1);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	/* every prefix ending before a '/', then the whole path (mkdir -p) */
	for (size_t i = 1; i < n; i++) {
		if (path[i] != '/' || path[i - 1] == '/')
			continue;
		path[i] = '\0';
		if (make_dir(path))
			return -1;
		path[i] = '/';
	}
	if (make_dir(path))
		return -1;
	snprintf(path + n, sizeof path - n, "/L%d", level);
	return make_dir(path);
}

/* A pixel as stored: 16-bit fixed point over [0, 1] (clamped; the output is clamped
 * there anyway), rounded to nearest (ties to even, as the image writers round):
 * |stored - v| <= 1/131070 for v in [0, 1]. */
static uint16_t
to_u16(float v)
{
	if (!(v > 0)) /* NaN too */
		return 0;
	if (v >= 1)
		return 65535;
	return (uint16_t)lrintf(v * 65535.0f);
}

/* Header, pixels and CRC to f.  0, or -1 with errno set. */
static int
write_body(FILE *f, const ts_tile_result *r)
{
	unsigned char head[TS_CKPT_HEADER_SIZE], buf[CHUNK * 2], tail[4];
	size_t n = (size_t)3 * r->w * r->h;
	uLong crc = crc32(0L, Z_NULL, 0);

	encode_header(r, head);
	crc = crc32(crc, head, sizeof head);
	if (fwrite(head, 1, sizeof head, f) != sizeof head)
		return -1;
	for (size_t i = 0; i < n; i += CHUNK) {
		size_t m = n - i < CHUNK ? n - i : CHUNK;

		for (size_t k = 0; k < m; k++) {
			uint16_t u = to_u16(r->px[i + k]);

			buf[2 * k] = (unsigned char)u;
			buf[2 * k + 1] = (unsigned char)(u >> 8);
		}
		crc = crc32(crc, buf, (uInt)(2 * m));
		if (fwrite(buf, 1, 2 * m, f) != 2 * m)
			return -1;
	}
	put_u32(tail, (uint32_t)crc);
	if (fwrite(tail, 1, sizeof tail, f) != sizeof tail)
		return -1;
	return 0;
}

/* Write the tile atomically (file.h): a crash leaves no file or the previous one. */
int
ts_ckpt_write(const ts_tile_result *r, const char *path)
{
	ts_file *f;

	TS_ASSERT(r->w > 0 && r->h > 0 && r->px);
	if (!(f = ts_file_open("ckpt", path)))
		return -1;
	if (write_body(ts_file_stream(f), r)) {
		ts_error_errno("ckpt", "cannot write \"%s\"", path);
		ts_file_abort(f);
		return -1;
	}
	return ts_file_commit(f);
}

void
ts_ckpt_result_fini(ts_tile_result *out)
{
	if (!out)
		return;
	free(out->px);
	out->px = NULL;
}

int
ts_ckpt_read(const char *path, uint64_t expected_hash, int level, int row, int col, int w,
             int h, ts_tile_result *out)
{
	unsigned char head[TS_CKPT_HEADER_SIZE], buf[CHUNK * 4], tail[4];
	FILE *f = NULL;
	unsigned version;
	size_t bps; /* bytes a sample: 4 (version 1, f32) or 2 (version 2, u16) */
	struct stat st;
	uLong crc = crc32(0L, Z_NULL, 0);
	long long want;
	size_t n;
	int ret = -1;

	memset(out, 0, sizeof *out);
	/* the tile file: read whole, checked before anything is trusted */
	if (!(f = fopen(path, "rb"))) {
		if (errno == ENOENT) {
			ret = 1;
			goto cleanup;
		}
		ts_error_errno("ckpt", "cannot open \"%s\"", path);
		goto cleanup;
	}
	if (fstat(fileno(f), &st)) {
		ts_error_errno("ckpt", "cannot stat \"%s\"", path);
		goto cleanup;
	}
	if (fread(head, 1, sizeof head, f) != sizeof head) {
		ts_error("ckpt", "\"%s\" is truncated (%lld bytes, shorter than a header)", path,
		         (long long)st.st_size);
		goto cleanup;
	}
	if (memcmp(head, TS_CKPT_MAGIC, 8)) {
		ts_error("ckpt", "\"%s\" is not a tile file (bad magic)", path);
		goto cleanup;
	}
	version = (unsigned)get_u32(head + 8);
	if (version != TS_CKPT_VERSION && version != 1) {
		ts_error("ckpt", "\"%s\" has tile format version %u, expected 1 or %u", path,
		         version, TS_CKPT_VERSION);
		goto cleanup;
	}
	bps = version == 1 ? 4 : 2;
	decode_header(head, out);
	if (out->w <= 0 || out->h <= 0 || out->w > 1 << 20 || out->h > 1 << 20) {
		ts_error("ckpt", "\"%s\" is corrupt (tile size %dx%d)", path, out->w, out->h);
		goto cleanup;
	}
	n = (size_t)3 * out->w * out->h;
	want = TS_CKPT_HEADER_SIZE + (long long)bps * (long long)n + 4;
	if ((long long)st.st_size != want) {
		ts_error("ckpt", "\"%s\" is %s (%lld bytes, expected %lld)", path,
		         (long long)st.st_size < want ? "truncated" : "too long",
		         (long long)st.st_size, want);
		goto cleanup;
	}
	if (!(out->px = malloc(n * sizeof *out->px))) {
		ts_error("ckpt", "out of memory reading \"%s\"", path);
		goto cleanup;
	}
	crc = crc32(crc, head, sizeof head);
	for (size_t i = 0; i < n; i += CHUNK) {
		size_t m = n - i < CHUNK ? n - i : CHUNK;

		if (fread(buf, 1, bps * m, f) != bps * m) {
			ts_error("ckpt", "\"%s\" is truncated", path);
			goto cleanup;
		}
		crc = crc32(crc, buf, (uInt)(bps * m));
		for (size_t k = 0; k < m; k++) {
			uint32_t u;

			if (bps == 2) {
				out->px[i + k] = (float)(buf[2 * k] | buf[2 * k + 1] << 8) / 65535.0f;
				continue;
			}
			u = get_u32(buf + 4 * k);
			memcpy(&out->px[i + k], &u, sizeof u);
		}
	}
	if (fread(tail, 1, sizeof tail, f) != sizeof tail) {
		ts_error("ckpt", "\"%s\" is truncated", path);
		goto cleanup;
	}
	if (get_u32(tail) != (uint32_t)crc) {
		ts_error("ckpt", "\"%s\" is corrupt (CRC mismatch)", path);
		goto cleanup;
	}
	if (out->plan_hash != expected_hash) {
		ts_error("ckpt", "\"%s\" was made by another plan (hash %016llx, expected %016llx)",
		         path, (unsigned long long)out->plan_hash,
		         (unsigned long long)expected_hash);
		ret = -2;
		goto cleanup;
	}
	if (out->level != level || out->row != row || out->col != col || out->w != w ||
	    out->h != h) {
		ts_error("ckpt", "\"%s\" holds tile L%d %d_%d of %dx%d, expected L%d %d_%d of %dx%d",
		         path, out->level, out->row, out->col, out->w, out->h, level, row, col, w, h);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (f)
		fclose(f);
	if (ret)
		ts_ckpt_result_fini(out);
	return ret;
}

int
ts_ckpt_log_append(const char *job, const ts_tile_result *r)
{
	char path[PATH_MAX];
	cJSON *o = NULL;
	char *text = NULL, *line = NULL;
	size_t len;
	ssize_t wr;
	int fd = -1, ret = -1;

	if (snprintf(path, sizeof path, "%s/log.jsonl", job) >= (int)sizeof path) {
		ts_error("ckpt", "log path under \"%s\" is too long", job);
		goto cleanup;
	}
	if (!(o = cJSON_CreateObject()) ||
	    !cJSON_AddNumberToObject(o, "level", r->level) ||
	    !cJSON_AddNumberToObject(o, "row", r->row) ||
	    !cJSON_AddNumberToObject(o, "col", r->col) ||
	    !cJSON_AddNumberToObject(o, "rank", r->rank) ||
	    !cJSON_AddNumberToObject(o, "seconds", r->seconds) ||
	    !cJSON_AddNumberToObject(o, "conv_seconds", r->conv_seconds) ||
	    !cJSON_AddNumberToObject(o, "loss_seconds", r->loss_seconds) ||
	    !cJSON_AddNumberToObject(o, "optim_seconds", r->optim_seconds) ||
	    !cJSON_AddNumberToObject(o, "layers_seconds", r->layers_seconds) ||
	    !cJSON_AddNumberToObject(o, "iterations", r->iterations) ||
	    !cJSON_AddNumberToObject(o, "content", r->content) ||
	    !cJSON_AddNumberToObject(o, "style", r->style) ||
	    !cJSON_AddNumberToObject(o, "tv", r->tv) ||
	    !cJSON_AddNumberToObject(o, "total", r->total) ||
	    !(text = cJSON_PrintUnformatted(o))) {
		ts_error("ckpt", "out of memory formatting a log line");
		goto cleanup;
	}
	len = strlen(text);
	if (!(line = malloc(len + 2))) {
		ts_error("ckpt", "out of memory formatting a log line");
		goto cleanup;
	}
	memcpy(line, text, len);
	line[len++] = '\n';
	line[len] = '\0';
	/* the log: append-only, one whole line per write() so writers never interleave */
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666)) < 0) {
		ts_error_errno("ckpt", "cannot open \"%s\"", path);
		goto cleanup;
	}
	wr = write(fd, line, len);
	if (wr < 0) {
		ts_error_errno("ckpt", "cannot write \"%s\"", path);
		goto cleanup;
	}
	if ((size_t)wr != len) {
		ts_error("ckpt", "cannot write \"%s\": short write (%zd of %zu bytes)", path, wr,
		         len);
		goto cleanup;
	}
	if (fsync(fd)) {
		ts_error_errno("ckpt", "cannot sync \"%s\"", path);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (fd >= 0 && close(fd) && ret == 0) {
		ts_error_errno("ckpt", "cannot close \"%s\"", path);
		ret = -1;
	}
	cJSON_Delete(o);
	cJSON_free(text);
	free(line);
	return ret;
}

/* --- blobs: a global level's optimizer state (job_global.c) --- */

int
ts_ckpt_blob_write(const char *path, const void *const *parts, const size_t *sizes, int n)
{
	ts_file *f;
	FILE *s;
	uLong crc = crc32(0L, Z_NULL, 0);
	unsigned char tail[4];

	if (!(f = ts_file_open("ckpt", path)))
		return -1;
	s = ts_file_stream(f);
	for (int i = 0; i < n; i++) {
		const unsigned char *p = parts[i];

		/* zlib's crc32 takes uInt lengths: by chunks */
		for (size_t o = 0; o < sizes[i]; o += (size_t)1 << 30) {
			size_t m = sizes[i] - o < (size_t)1 << 30 ? sizes[i] - o : (size_t)1 << 30;

			crc = crc32(crc, p + o, (uInt)m);
		}
		if (sizes[i] && fwrite(p, 1, sizes[i], s) != sizes[i])
			goto fail;
	}
	put_u32(tail, (uint32_t)crc);
	if (fwrite(tail, 1, sizeof tail, s) != sizeof tail)
		goto fail;
	return ts_file_commit(f);
fail:
	ts_error_errno("ckpt", "cannot write \"%s\"", path);
	ts_file_abort(f);
	return -1;
}

int
ts_ckpt_blob_read(const char *path, void **data, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long len;
	uLong crc = crc32(0L, Z_NULL, 0);
	size_t n;

	*data = NULL;
	*size = 0;
	if (!f) {
		if (errno == ENOENT)
			return 1;
		ts_error_errno("ckpt", "cannot read \"%s\"", path);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 4 || fseek(f, 0, SEEK_SET)) {
		ts_error("ckpt", "\"%s\" is too short to be a state file", path);
		fclose(f);
		return -1;
	}
	n = (size_t)len;
	if (!(buf = malloc(n)) || fread(buf, 1, n, f) != n) {
		ts_error("ckpt", "cannot read \"%s\"", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	for (size_t o = 0; o < n - 4; o += (size_t)1 << 30) {
		size_t m = n - 4 - o < (size_t)1 << 30 ? n - 4 - o : (size_t)1 << 30;

		crc = crc32(crc, buf + o, (uInt)m);
	}
	if (get_u32(buf + n - 4) != (uint32_t)crc) {
		ts_error("ckpt", "\"%s\" is corrupt (CRC mismatch)", path);
		free(buf);
		return -1;
	}
	*data = buf;
	*size = n - 4;
	return 0;
}
