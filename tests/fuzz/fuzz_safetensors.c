/* fuzz_safetensors: ts_weights_load_safetensors on the fuzzer's bytes (header length,
 * JSON header, dtypes, shapes, data offsets, names, chained convolutions). */
#include "fuzz_util.h"
#include "tessera/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_vgg_destroy(ts_weights_load_safetensors(fuzz_file(data, size)));
	/* by content: what --weights FILE does */
	ts_vgg_destroy(ts_weights_load(fuzz_file(data, size)));
	ts_error_clear();
	return 0;
}
