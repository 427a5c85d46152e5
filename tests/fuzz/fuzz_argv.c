/* fuzz_argv: ts_config_parse on a command line made of the fuzzer's bytes, split on
 * NULs and newlines into arguments after argv[0] (getopt_long, "--opt=value", every
 * value parser), then ts_config_check on a line that parsed.  A --config FILE in the
 * bytes names a file of this machine: at most a read of it. */
#include <string.h>

#include "fuzz_util.h"
#include "tessera/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longest command line tried: the arguments' bytes. */
#define MAX_BYTES 65536

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, **argv;
	int argc = 1;
	size_t i, start;
	ts_config c;

	if (size > MAX_BYTES)
		return 0;
	/* text: the bytes with every separator a NUL, and a NUL at the end */
	text = malloc(size + 1);
	argv = malloc((size + 3) * sizeof *argv);
	if (!text || !argv)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	argv[0] = "tessera";
	for (i = start = 0; i <= size; i++)
		if (text[i] == '\0' || text[i] == '\n') {
			text[i] = '\0';
			argv[argc++] = text + start;
			start = i + 1;
		}
	argv[argc] = NULL;
	ts_config_defaults(&c);
	if (ts_config_parse(&c, argc, argv) == 0)
		ts_config_check(&c);
	ts_config_fini(&c);
	ts_error_clear();
	free(argv);
	free(text);
	return 0;
}
