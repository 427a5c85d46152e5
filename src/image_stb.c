/* image_stb: PNG, JPEG and BMP through Debian's compiled stb (libstb, -lstb).
 *
 * The caller has already recognized the format by its magic bytes, so stb never sees
 * GIF/PSD/HDR/PNM/PIC data.  The size is read with stbi_info first and checked against
 * the pixel budget before anything is decoded; stb uses int sizes, so images bigger
 * than its own limits fail cleanly with stb's reason.  Flip-on-load is never used.
 * Writers are 8-bit RGB and write through a FILE * opened on the ".part" name. */
#include "image_internal.h"

#include "tessera/error.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

static const char *
reason(void)
{
	const char *r = stbi_failure_reason();

	return r ? r : "corrupt data";
}

/* Width and height from a PNG's IHDR (bytes 16..23), read without stb: stb refuses to
 * even report the size of an image over its own 1 GB limit. */
static int
png_size(FILE *f, long long *w, long long *h)
{
	unsigned char b[24];

	if (fseek(f, 0, SEEK_SET) || fread(b, 1, sizeof b, f) != sizeof b ||
	    memcmp(b + 12, "IHDR", 4))
		return -1;
	*w = (long long)b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
	*h = (long long)b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
	return 0;
}

/* Read width, height and bit depth from the header and check them against the
 * budget (max_pixels <= 0: no budget). */
static int
header(FILE *f, const char *path, enum image_format fmt, long long max_pixels, int *w,
       int *h, int *bits)
{
	long long pw, ph;
	int comp;

	if (fmt == IMAGE_PNG && png_size(f, &pw, &ph) == 0) {
		if (pw == 0 || ph == 0) {
			ts_error("image", "%s: zero-sized image (%lldx%lld)", path, pw, ph);
			return -1;
		}
		if (max_pixels > 0 && pw * ph > max_pixels) {
			ts_error("image", "%s: %lldx%lld pixels exceeds the budget of %lld", path,
			         pw, ph, max_pixels);
			return -1;
		}
	}
	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		return -1;
	}
	if (!stbi_info_from_file(f, w, h, &comp)) {
		ts_error("image", "%s: cannot read the header (%s): corrupt, truncated, "
		         "or too large for stb_image (1 GB)", path, reason());
		return -1;
	}
	if (*w <= 0 || *h <= 0) {
		ts_error("image", "%s: zero-sized image (%dx%d)", path, *w, *h);
		return -1;
	}
	/* w, h > 0 and both fit in int, so the product cannot overflow long long */
	if (max_pixels > 0 && (long long)*w * *h > max_pixels) {
		ts_error("image", "%s: %dx%d pixels exceeds the budget of %lld", path, *w, *h,
		         max_pixels);
		return -1;
	}
	*bits = fmt == IMAGE_PNG && stbi_is_16_bit_from_file(f) ? 16 : 8;
	return 0;
}

int
image_stb_probe(FILE *f, const char *path, enum image_format fmt, int *w, int *h,
                int *bits)
{
	int pw, ph, pb;

	if (header(f, path, fmt, 0, &pw, &ph, &pb))
		return -1;
	if (w)
		*w = pw;
	if (h)
		*h = ph;
	if (bits)
		*bits = pb;
	return 0;
}

ts_image *
image_stb_load(FILE *f, const char *path, enum image_format fmt, long long max_pixels)
{
	void *data = NULL; /* [h, w, 3] interleaved, uint8 or uint16 */
	ts_image *im = NULL;
	int w, h, bits, dw = 0, dh = 0, comp;
	size_t i, n;

	if (header(f, path, fmt, max_pixels, &w, &h, &bits))
		goto cleanup;
	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		goto cleanup;
	}
	/* req_comp 3: stb replicates grey and drops alpha (no premultiplication) */
	if (bits == 16)
		data = stbi_load_from_file_16(f, &dw, &dh, &comp, 3);
	else
		data = stbi_load_from_file(f, &dw, &dh, &comp, 3);
	if (!data) {
		ts_error("image", "%s: cannot decode (%s)", path, reason());
		goto cleanup;
	}
	if (dw != w || dh != h) {
		ts_error("image", "%s: header says %dx%d, decoded %dx%d", path, w, h, dw, dh);
		goto cleanup;
	}
	if (!(im = ts_image_create(w, h)))
		goto cleanup;
	im->bits = bits;
	n = (size_t)w * h;
	if (bits == 16) {
		const uint16_t *s = data;
		for (i = 0; i < n; i++) {
			im->px[i] = s[3 * i] / 65535.0f;
			im->px[n + i] = s[3 * i + 1] / 65535.0f;
			im->px[2 * n + i] = s[3 * i + 2] / 65535.0f;
		}
	} else {
		const uint8_t *s = data;
		for (i = 0; i < n; i++) {
			im->px[i] = s[3 * i] / 255.0f;
			im->px[n + i] = s[3 * i + 1] / 255.0f;
			im->px[2 * n + i] = s[3 * i + 2] / 255.0f;
		}
	}
cleanup:
	stbi_image_free(data);
	return im;
}

/* stb_image_write sink: append to a FILE, remember the first short write. */
struct sink {
	FILE *f;
	int err; /* errno of the first failed write (EIO if it set none), or 0 */
};

static void
sink_write(void *ctx, void *data, int size)
{
	struct sink *s = ctx;

	if (s->err || size <= 0)
		return;
	if (fwrite(data, 1, (size_t)size, s->f) != (size_t)size)
		s->err = errno ? errno : EIO;
}

int
image_stb_write(const ts_image *im, const char *part, const char *path,
                enum image_format fmt)
{
	struct sink s = { NULL, 0 };
	uint8_t *rgb = NULL; /* [h, w, 3] interleaved */
	size_t i, n = (size_t)im->w * im->h;
	int ok, ret = -1;

	/* stb_image_write computes sizes in int */
	if (n > (size_t)INT_MAX / 4) {
		ts_error("image", "cannot write %s: %dx%d is too large for PNG/JPEG/BMP "
		         "(write a .tif)", path, im->w, im->h);
		goto cleanup;
	}
	if (!(rgb = malloc(n * 3))) {
		ts_error("image", "cannot write %s: out of memory", path);
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		rgb[3 * i] = image_to_u8(im->px[i]);
		rgb[3 * i + 1] = image_to_u8(im->px[n + i]);
		rgb[3 * i + 2] = image_to_u8(im->px[2 * n + i]);
	}
	if (!(s.f = fopen(part, "wb"))) {
		ts_error_errno("image", "cannot write %s", path);
		goto cleanup;
	}
	errno = 0;
	if (fmt == IMAGE_PNG)
		ok = stbi_write_png_to_func(sink_write, &s, im->w, im->h, 3, rgb, im->w * 3);
	else if (fmt == IMAGE_JPEG)
		ok = stbi_write_jpg_to_func(sink_write, &s, im->w, im->h, 3, rgb, 95);
	else if (fmt == IMAGE_BMP)
		ok = stbi_write_bmp_to_func(sink_write, &s, im->w, im->h, 3, rgb);
	else
		ok = 0;
	if (!ok) {
		ts_error("image", "cannot write %s: encoder failed", path);
		goto cleanup;
	}
	if (s.err || fflush(s.f)) {
		if (s.err)
			errno = s.err;
		ts_error_errno("image", "cannot write %s", path);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (s.f && fclose(s.f) && ret == 0) {
		ts_error_errno("image", "cannot write %s", path);
		ret = -1;
	}
	if (ret && s.f)
		unlink(part);
	free(rgb);
	return ret;
}
