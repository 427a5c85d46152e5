/* fuzz_ini: ts_config_load_ini on the fuzzer's bytes (libinih, every option's value
 * parser), then the whole-config check on whatever was accepted. */
#include "fuzz_util.h"
#include "tessera/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_config c;

	ts_config_defaults(&c);
	if (ts_config_load_ini(&c, fuzz_file(data, size)) == 0)
		ts_config_check(&c);
	ts_config_fini(&c);
	ts_error_clear();
	return 0;
}
