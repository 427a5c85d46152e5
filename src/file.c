/* file: atomic writes through "<path>.part" (see file.h).
 *
 * Invariants: a .part exists only between ts_file_open (or the caller's own create)
 * and the commit or abort; a failed commit removes it; messages name the real path. */
#include "tessera/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/error.h"

struct ts_file {
	const char *module; /* borrowed, for messages */
	char *path, *part;  /* owned */
	FILE *f;            /* the .part's stream */
};

char *
ts_file_part_name(const char *module, const char *path)
{
	size_t n = strlen(path);
	char *part = malloc(n + sizeof ".part");

	if (!part) {
		ts_error(module, "cannot write \"%s\": out of memory", path);
		return NULL;
	}
	memcpy(part, path, n);
	memcpy(part + n, ".part", sizeof ".part");
	return part;
}

int
ts_file_sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, ret = 0, e = 0;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir) {
		errno = ENOMEM;
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	if (fsync(fd) && errno != EINVAL) { /* some filesystems cannot sync directories */
		e = errno;
		ret = -1;
	}
	close(fd);
	if (ret)
		errno = e;
	return ret;
}

/* rename part over path and sync the folder; part is gone afterwards either way
 * except when only the folder sync failed (then path is the complete new file). */
static int
finish(const char *module, const char *part, const char *path)
{
	if (rename(part, path)) {
		ts_error_errno(module, "cannot write \"%s\": cannot rename \"%s\" over it", path,
		               part);
		unlink(part);
		return -1;
	}
	if (ts_file_sync_dir(path)) {
		ts_error_errno(module, "cannot write \"%s\": cannot sync its directory", path);
		return -1;
	}
	return 0;
}

int
ts_file_commit_part(const char *module, const char *part, const char *path)
{
	int fd;

	if ((fd = open(part, O_WRONLY | O_CLOEXEC)) < 0 || fsync(fd)) {
		ts_error_errno(module, "cannot write \"%s\"", path);
		if (fd >= 0)
			close(fd);
		unlink(part);
		return -1;
	}
	if (close(fd)) {
		ts_error_errno(module, "cannot write \"%s\"", path);
		unlink(part);
		return -1;
	}
	return finish(module, part, path);
}

ts_file *
ts_file_open(const char *module, const char *path)
{
	ts_file *f = calloc(1, sizeof *f);

	if (!f || !(f->path = strdup(path)) || !(f->part = ts_file_part_name(module, path))) {
		ts_error(module, "cannot write \"%s\": out of memory", path);
		goto fail;
	}
	f->module = module;
	if (!(f->f = fopen(f->part, "wb"))) {
		ts_error_errno(module, "cannot write \"%s\"", path);
		goto fail;
	}
	return f;
fail:
	if (f) {
		free(f->part);
		free(f->path);
	}
	free(f);
	return NULL;
}

FILE *
ts_file_stream(const ts_file *f)
{
	return f->f;
}

static void
file_free(ts_file *f)
{
	free(f->part);
	free(f->path);
	free(f);
}

int
ts_file_commit(ts_file *f)
{
	int ret = -1;

	/* ferror: a write the caller did not check (or a buffered one) failed; fflush
	 * then reports the errno of a write it still has to do */
	errno = 0;
	if (fflush(f->f) || ferror(f->f) || fsync(fileno(f->f))) {
		if (!errno)
			errno = EIO;
		ts_error_errno(f->module, "cannot write \"%s\"", f->path);
		fclose(f->f);
		unlink(f->part);
		goto cleanup;
	}
	if (fclose(f->f)) {
		ts_error_errno(f->module, "cannot write \"%s\"", f->path);
		unlink(f->part);
		goto cleanup;
	}
	ret = finish(f->module, f->part, f->path);
cleanup:
	file_free(f);
	return ret;
}

void
ts_file_abort(ts_file *f)
{
	if (!f)
		return;
	fclose(f->f);
	unlink(f->part);
	file_free(f);
}

int
ts_file_write(const char *module, const char *path, const void *data, size_t n)
{
	ts_file *f = ts_file_open(module, path);

	if (!f)
		return -1;
	if (n && fwrite(data, 1, n, f->f) != n) {
		ts_error_errno(module, "cannot write \"%s\"", path);
		ts_file_abort(f);
		return -1;
	}
	return ts_file_commit(f);
}
