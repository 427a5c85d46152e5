/* ckpt: one finished tile on disk, and the job log.
 *
 * JOB/L<k>/<row>_<col>.tile, little-endian, written to "<path>.part", fsynced, renamed
 * and the directory fsynced, so a crash leaves either no file or a whole one:
 *
 *     offset  size  field
 *          0     8  magic "TSTILE01"
 *          8     4  u32 header version (TS_CKPT_VERSION)
 *         12     8  u64 plan hash
 *         20    28  i32 level, row, col, x, y, w, h   (rectangle in the level's pixels)
 *         48     4  i32 iterations done
 *         52    40  f64 content, style, tv, total (losses), seconds (render time)
 *         92     4  i32 rank that rendered it
 *         96   6wh  u16 pixels [3, h, w], planar RGB: round(clamp(v, 0, 1) * 65535)
 *     96+6wh     4  u32 CRC32 (zlib) of every preceding byte
 *
 * Version 2 stores 16-bit samples (half of version 1's f32, which is still read): the
 * round trip moves a pixel by at most 1/131070, 1/257 of an 8-bit output step, and
 * clamps to [0, 1] (the assembly clamps there too).  Every consumer of a tile (the
 * assembly, the next level) reads it from its file, so a run, a resumed run and any
 * rank count still see the same bits.
 *
 * JOB/log.jsonl: one JSON object per finished tile and line, appended with a single
 * write() and fsynced:
 *     {"level":..,"row":..,"col":..,"rank":..,"seconds":..,"conv_seconds":..,
 *      "loss_seconds":..,"optim_seconds":..,"layers_seconds":..,"iterations":..,"content":..,"style":..,"tv":..,"total":..} */
#ifndef TESSERA_CKPT_H
#define TESSERA_CKPT_H

#include <stddef.h>
#include <stdint.h>

#define TS_CKPT_MAGIC "TSTILE01"
#define TS_CKPT_VERSION 2u
#define TS_CKPT_HEADER_SIZE 96

typedef struct ts_tile_result {
	uint64_t plan_hash;
	int level, row, col;
	int x, y, w, h;                  /* rectangle in the level's pixels */
	int iterations;
	double content, style, tv, total; /* final losses */
	double seconds;                  /* render time */
	double conv_seconds;             /* of which inside convolutions, */
	double loss_seconds;             /* inside the losses (Gram matrices included) */
	double optim_seconds;            /* in the optimizer's own work, */
	double layers_seconds;           /* and in the network's other layers (pooling,
	                                  * ReLU; these four: log only, not in the tile
	                                  * file) */
	int rank;
	float *px;                       /* [3, h, w]; owned by whoever filled the struct */
} ts_tile_result;

/* "JOB/L<level>/<row>_<col>.tile" into buf.  0, or -1 with a message if it does not fit. */
int ts_ckpt_path(const char *job, int level, int row, int col, char *buf, size_t size);

/* Create JOB (with its parents, like mkdir -p) and JOB/L<level>, fsyncing the parent of
 * each directory made.  Existing directories are fine.  0, or -1 naming the directory. */
int ts_ckpt_mkdirs(const char *job, int level);

/* Write r (r->px [3, r->h, r->w], borrowed) atomically to path.  On any failure
 * (including a full disk) "<path>.part" is removed and the message names the file.
 * 0 or -1. */
int ts_ckpt_write(const ts_tile_result *r, const char *path);

/* Read and check the tile file at path against the expected plan hash and geometry
 * (level, row, col, w, h).  out is always initialized; on 0 out->px [3, h, w] is
 * allocated for the caller (free with ts_ckpt_result_fini), otherwise out->px is NULL.
 * Returns  0 valid;
 *          1 missing (no message);
 *         -1 unreadable or corrupt (bad magic or version, wrong size, CRC mismatch,
 *            other geometry), message names the file;
 *         -2 a whole file made by another plan (hash differs), message names the file. */
int ts_ckpt_read(const char *path, uint64_t expected_hash, int level, int row, int col,
                 int w, int h, ts_tile_result *out);

/* Free out->px and set it to NULL (the rest is kept). */
void ts_ckpt_result_fini(ts_tile_result *out);

/* Append r's log line to JOB/log.jsonl (created if needed).  r->px is not used.
 * 0, or -1 naming the file. */
int ts_ckpt_log_append(const char *job, const ts_tile_result *r);

/* A file of parts[0..n-1] (sizes[i] bytes each) and a CRC32, written atomically (as
 * ts_ckpt_write).  0, or -1 naming the file. */
int ts_ckpt_blob_write(const char *path, const void *const *parts, const size_t *sizes, int n);
/* Read such a file: *data (the caller frees) holds its *size bytes without the CRC.
 * 0; 1 missing (no message); -1 unreadable or corrupt (message names the file). */
int ts_ckpt_blob_read(const char *path, void **data, size_t *size);

#endif
