/* fuzz_tiff_region: ts_tiff_reader_open on the fuzzer's bytes, then region reads of
 * small rectangles (the corners, the middle, one pixel at the end), the tiled
 * renderer's path through libtiff that never decodes the image whole. */
#include "fuzz_util.h"
#include "tessera/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Side of the largest rectangle read. */
#define SIDE 24

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static float out[3 * SIDE * SIDE];
	ts_tiff_reader *r = ts_tiff_reader_open(fuzz_file(data, size));
	int w, h, bits, rw, rh;

	if (!r) {
		ts_error_clear();
		return 0;
	}
	ts_tiff_reader_size(r, &w, &h, &bits);
	if (w <= 0 || h <= 0 || (bits != 8 && bits != 16)) {
		fprintf(stderr, "fuzz_tiff_region: opened %dx%d bits %d\n", w, h, bits);
		abort();
	}
	rw = w < SIDE ? w : SIDE;
	rh = h < SIDE ? h : SIDE;
	/* a failing read ends the input: the same strips would fail again */
	if (!ts_tiff_reader_region(r, 0, 0, rw, rh, out) &&
	    !ts_tiff_reader_region(r, w - rw, h - rh, rw, rh, out) &&
	    !ts_tiff_reader_region(r, (w - rw) / 2, (h - rh) / 2, rw, rh, out))
		ts_tiff_reader_region(r, w - 1, h - 1, 1, 1, out);
	/* outside the image: refused, never read */
	if (!ts_tiff_reader_region(r, w - rw + 1, 0, rw, rh, out)) {
		fprintf(stderr, "fuzz_tiff_region: read outside %dx%d\n", w, h);
		abort();
	}
	ts_tiff_reader_close(r);
	ts_error_clear();
	return 0;
}
