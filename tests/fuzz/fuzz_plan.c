/* fuzz_plan: the job directory's plan.ini as a resume reads it: the fuzzer's bytes as
 * the old plan text, diffed against a plan of this version and back
 * (ts_config_text_diff, which names what changed when a resume is refused).  The
 * contract is checked: the message is NUL-terminated inside its buffer, and a text
 * against itself has no difference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char plan[] =
	"[plan]\nversion = 1\ncontent = photo.png\ncontent_crc = 1234abcd\n"
	"style0 = paint.png\nstyle0_blend = 1\nwidth = 208\nheight = 139\ntile = 64\n"
	"style_weight = 1\ncontent_layer = relu4_2:1\nstyle_layer = relu1_1:1\n"
	"style_layer = relu2_1:1\nlevel0 = 52x35 iterations 6\nhash = 0123456789abcdef\n";

static void
check(const char *a, const char *b, size_t size)
{
	char *buf = malloc(size + 1);

	if (!buf)
		return;
	buf[size] = 'X'; /* the guard: nothing is written past size */
	ts_config_text_diff(a, b, buf, size);
	if (buf[size] != 'X' || !memchr(buf, '\0', size)) {
		fprintf(stderr, "fuzz_plan: message not terminated inside %zu bytes\n", size);
		abort();
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), same[16];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* a file read whole, as the job reads plan.ini */
	check(text, plan, 512);
	check(plan, text, 512);
	check(text, plan, 7);
	ts_config_text_diff(text, text, same, sizeof same);
	if (same[0]) {
		fprintf(stderr, "fuzz_plan: a text differs from itself: %s\n", same);
		abort();
	}
	free(text);
	return 0;
}
