/* fuzz_ckpt: ts_ckpt_read on the fuzzer's bytes as a tile checkpoint.  Each input is
 * read as it is, and again with its last 4 bytes replaced by the CRC32 of the rest so
 * that the checks after the CRC (plan hash, geometry) are reached too; the expected
 * plan and geometry are the ones the file's own header claims, then a different hash.
 * The contract is checked: on 0 out.px holds the pixels, otherwise it is NULL. */
#include <string.h>

#include <zlib.h>

#include "fuzz_util.h"
#include "tessera/ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
read_one(const char *path, uint64_t hash, const int32_t geo[5])
{
	ts_tile_result out;
	int r = ts_ckpt_read(path, hash, geo[0], geo[1], geo[2], geo[3], geo[4], &out);

	if (r < -2 || r > 1 || (r == 0) != (out.px != NULL)) {
		fprintf(stderr, "fuzz_ckpt: returned %d with px %p\n", r, (void *)out.px);
		abort();
	}
	if (r == 0 && (out.w != geo[3] || out.h != geo[4] || out.plan_hash != hash)) {
		fprintf(stderr, "fuzz_ckpt: accepted %dx%d for %dx%d\n", out.w, out.h, geo[3],
		        geo[4]);
		abort();
	}
	ts_ckpt_result_fini(&out);
	ts_error_clear();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int32_t geo[5] = { 0, 0, 0, 1, 1 }; /* level, row, col, w, h */
	uint64_t hash = 0;
	uint8_t *fixed;

	if (size >= 48) {
		hash = (uint64_t)le32(data + 12) | (uint64_t)le32(data + 16) << 32;
		geo[0] = (int32_t)le32(data + 20);
		geo[1] = (int32_t)le32(data + 24);
		geo[2] = (int32_t)le32(data + 28);
		geo[3] = (int32_t)le32(data + 40);
		geo[4] = (int32_t)le32(data + 44);
	}
	read_one(fuzz_file(data, size), hash, geo);
	if (size < 4)
		return 0;
	if (!(fixed = malloc(size)))
		abort();
	memcpy(fixed, data, size - 4);
	{
		uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), fixed, (uInt)(size - 4));

		fixed[size - 4] = (uint8_t)crc, fixed[size - 3] = (uint8_t)(crc >> 8);
		fixed[size - 2] = (uint8_t)(crc >> 16), fixed[size - 1] = (uint8_t)(crc >> 24);
	}
	read_one(fuzz_file(fixed, size), hash, geo);
	read_one(fuzz_file(fixed, size), hash + 1, geo);
	free(fixed);
	return 0;
}
