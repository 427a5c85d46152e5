/* fuzz_util: what every libFuzzer harness in tests/fuzz/ shares.
 *
 * The project's readers take paths, so the fuzzer's bytes go into one file per process
 * (a memfd, reached as /proc/self/fd/N; a fixed /tmp/tessera-fuzz-<pid> file if memfd
 * is missing) that is rewritten for every input.  Nothing is printed: the readers
 * report into the error buffer, which the harnesses drop. */
#ifndef TESSERA_FUZZ_UTIL_H
#define TESSERA_FUZZ_UTIL_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tessera/error.h"

/* The pixel budget given to every decoder: 4 Mpixel, 48 MB of floats, so that a header
 * promising a huge picture is refused instead of exhausting the fuzzer's memory. */
#define FUZZ_MAX_PIXELS (1LL << 22)

static char fuzz_tmp_path[64];

static inline void
fuzz_unlink_tmp(void)
{
	unlink(fuzz_tmp_path);
}

/* Write data[0..size) to the process's input file; its path, valid until the next
 * call.  Aborts on an I/O error: that is a problem of the harness, not a finding. */
static inline const char *
fuzz_file(const uint8_t *data, size_t size)
{
	static char path[64];
	static int fd = -1;
	size_t done = 0;

	if (fd < 0) {
		fd = memfd_create("tessera-fuzz", 0);
		if (fd >= 0) {
			snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		} else {
			snprintf(path, sizeof path, "/tmp/tessera-fuzz-%ld", (long)getpid());
			fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
			if (fd >= 0) {
				snprintf(fuzz_tmp_path, sizeof fuzz_tmp_path, "%s", path);
				atexit(fuzz_unlink_tmp);
			}
		}
		if (fd < 0) {
			perror("fuzz: cannot create the input file");
			abort();
		}
	}
	if (ftruncate(fd, 0)) {
		perror("fuzz: ftruncate");
		abort();
	}
	while (done < size) {
		ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);

		if (n <= 0) {
			perror("fuzz: cannot write the input file");
			abort();
		}
		done += (size_t)n;
	}
	return path;
}

#endif
