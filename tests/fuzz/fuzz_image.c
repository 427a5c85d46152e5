/* fuzz_image: ts_image_probe and ts_image_load on the fuzzer's bytes, for every format
 * the readers know by magic (PNG through libpng, JPEG through libjpeg-turbo with EXIF
 * through libexif, BMP through stb_image after its completeness check, TIFF/BigTIFF
 * through libtiff), under a pixel budget of FUZZ_MAX_PIXELS.  What probe and load say
 * of one file must agree: a probed size is the loaded size. */
#include "fuzz_util.h"
#include "tessera/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(data, size);
	int w = 0, h = 0, bits = 0, probed;
	ts_image *im;

	probed = ts_image_probe(path, &w, &h, &bits) == 0;
	im = ts_image_load(path, FUZZ_MAX_PIXELS);
	if (im) {
		if (im->w <= 0 || im->h <= 0 || (long long)im->w * im->h > FUZZ_MAX_PIXELS ||
		    (im->bits != 8 && im->bits != 16)) {
			fprintf(stderr, "fuzz_image: loaded %dx%d bits %d\n", im->w, im->h,
			        im->bits);
			abort();
		}
		if (!probed || w != im->w || h != im->h) {
			fprintf(stderr, "fuzz_image: probe %s %dx%d, load %dx%d\n",
			        probed ? "gave" : "failed", w, h, im->w, im->h);
			abort();
		}
	}
	ts_image_destroy(im);
	ts_error_clear();
	return 0;
}
