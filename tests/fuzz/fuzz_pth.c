/* fuzz_pth: PyTorch .pth files (torch.save's zip of a pickle and storages) through
 * ts_weights_load, what --weights FILE does: the zip directory through libzip, the
 * restricted unpickler, storage offsets, sizes and strides, chained convolutions. */
#include "fuzz_util.h"
#include "tessera/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_vgg_destroy(ts_weights_load(fuzz_file(data, size)));
	ts_error_clear();
	return 0;
}
