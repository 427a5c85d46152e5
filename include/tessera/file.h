/* file: the one way tessera writes a file atomically (tile checkpoints, blobs, images,
 * the report, plan.ini): a temporary "<path>.part" beside the file, fsynced, renamed
 * over path, then the folder fsynced, so that after a crash path is either the old
 * file or the whole new one, and the rename itself is on disk.
 *
 * Two ways in.  For a FILE *: ts_file_open creates the .part and ts_file_stream hands
 * out its stream; ts_file_commit finishes, ts_file_abort gives up.  For a library that
 * opens files by name (libtiff, libpng): write ts_file_part_name(path) yourself, close
 * it, then ts_file_commit_part.  Every failure removes the .part and leaves
 * "module: cannot write \"PATH\": reason" naming the real path (reason is strerror,
 * "No space left on device" for a full disk). */
#ifndef TESSERA_FILE_H
#define TESSERA_FILE_H

#include <stdio.h>

typedef struct ts_file ts_file;

/* Create path's .part for writing ("wb"); module names the caller in messages (a
 * string that outlives the handle).  NULL with a message. */
ts_file *ts_file_open(const char *module, const char *path);
/* The stream to write to (owned by f: do not fclose it). */
FILE *ts_file_stream(const ts_file *f);
/* Flush, fsync and close the stream, rename the .part over path, fsync the folder.
 * f is freed either way.  0, or -1 with the .part removed and a message (a write
 * error the stream saw earlier, e.g. a full disk, is reported here). */
int ts_file_commit(ts_file *f);
/* Close and remove the .part, free f, leave the message as it is; NULL does nothing. */
void ts_file_abort(ts_file *f);

/* "<path>.part" in a new string (caller frees); NULL with "module: ..." message. */
char *ts_file_part_name(const char *module, const char *path);
/* The same commit for a .part written and closed by someone else: fsync part, rename
 * it over path, fsync the folder.  On failure part is removed. */
int ts_file_commit_part(const char *module, const char *part, const char *path);
/* Write n bytes of data to path atomically (open, one write, commit). */
int ts_file_write(const char *module, const char *path, const void *data, size_t n);

/* fsync the folder that holds path (after an entry in it was created or renamed);
 * a filesystem that cannot sync folders (EINVAL) counts as done.  0, or -1 with
 * errno set and no message. */
int ts_file_sync_dir(const char *path);

#endif
