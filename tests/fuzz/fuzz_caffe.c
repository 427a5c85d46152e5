/* fuzz_caffe: ts_weights_load_caffe on the fuzzer's bytes (the bounded protobuf
 * wire-format reader: varints, lengths, nesting, V1 and new layers, blob shapes). */
#include "fuzz_util.h"
#include "tessera/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_vgg_destroy(ts_weights_load_caffe(fuzz_file(data, size)));
	ts_error_clear();
	return 0;
}
