/* Tests of config: defaults, every kind of command-line option, INI files under the
 * command line, strict numbers, layer lists, blends, print sizes, and that parsing
 * and checking report every problem at once, naming the option, FILE:LINE or file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/config.h"
#include "tessera/error.h"

static char dir[64];
static char content_path[128], style_path[128], style2_path[128];

static void
write_file(const char *path, const char *text)
{
	/* Test input: written whole and closed. */
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ts_config_XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(content_path, sizeof content_path, "%s/photo.png", dir);
	snprintf(style_path, sizeof style_path, "%s/paint.png", dir);
	snprintf(style2_path, sizeof style2_path, "%s/paint2.jpg", dir);
	write_file(content_path, "x");
	write_file(style_path, "x");
	write_file(style2_path, "x");
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ts_config_parse on a NULL-terminated list of arguments (argv[0] added). */
static int
parse_args(ts_config *c, const char *first, ...)
{
	char *argv[128];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)"tessera";
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		assert_true(argc < 127);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	return ts_config_parse(c, argc, argv);
}

static void
assert_msg_has(const char *needle)
{
	if (!strstr(ts_errmsg(), needle))
		fail_msg("message lacks \"%s\": %s", needle, ts_errmsg());
}

static void
test_defaults(void **state)
{
	ts_config c;

	(void)state;
	ts_config_defaults(&c);
	assert_null(c.content);
	assert_null(c.out);
	assert_null(c.weights);
	assert_int_equal(c.nstyle, 0);
	assert_int_equal(c.dpi, 300);
	assert_true(c.content_weight == 1);
	assert_true(c.style_weight == 1);
	assert_true(c.tv_weight == 1e-2);
	assert_int_equal(c.content_layers.n, 1);
	assert_int_equal(c.content_layers.layer[0], ts_vgg_layer_index("relu4_2"));
	assert_int_equal(c.style_layers.n, 5);
	assert_int_equal(c.style_layers.layer[0], ts_vgg_layer_index("relu1_1"));
	assert_int_equal(c.style_layers.layer[4], ts_vgg_layer_index("relu5_1"));
	assert_true(c.style_layers.w[2] == 1);
	assert_true(c.style_scale == 1);
	assert_int_equal(c.pool, TS_POOL_AVG);
	assert_int_equal(c.padding, TS_PAD_ZERO);
	assert_int_equal(c.init, TS_INIT_CONTENT);
	assert_int_equal(c.iterations, 500);
	assert_int_equal(c.optimizer, TS_OPTIM_LBFGS);
	assert_int_equal(c.lbfgs_history, 100);
	assert_int_equal(c.lbfgs_half, 0);
	assert_int_equal(c.gram_global, 0);
	assert_int_equal(c.checkpoint_every, 20);
	assert_int_equal(c.builtin_width, 1);
	assert_true(c.builtin_seed != 0);
	assert_int_equal(c.progress, TS_PROGRESS_AUTO);
	assert_int_equal(c.tile, 512);
	assert_int_equal(c.overlap, 128);
	assert_true(c.level_factor == 2);
	assert_int_equal(c.nlevel_iterations, 0);
	ts_config_fini(&c); /* nothing allocated: must not crash */
	/* parsing nothing gives the defaults and no error */
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, NULL), 0);
	assert_int_equal(c.iterations, 500);
	ts_config_fini(&c);
}

static void
test_cli_every_kind(void **state)
{
	ts_config c;
	char out[160], init[160];

	(void)state;
	snprintf(out, sizeof out, "%s/out.tif", dir);
	snprintf(init, sizeof init, "%s/start.png", dir);
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--content", content_path, "--style",
	                            "a.png,b.png", "--style-blend=1,3", "--out", out,
	                            "--height=700", "--dpi", "150", "--content-weight", "2.5",
	                            "--style-weight=1e4", "--tv-weight", "0",
	                            "--content-layers", "relu3_2:0.5", "--style-layers",
	                            "relu1_1,relu2_1:2", "--style-scale", "0.5",
	                            "--original-colors", "--normalize-style", "off", "--pool",
	                            "max", "--padding", "reflect", "--init", init, "--seed", "18446744073709551615",
	                            "--iterations", "0", "--optimizer", "adam",
	                            "--lbfgs-history", "7", "--lbfgs-precision", "half",
	                            "--learning-rate", "0.05",
	                            "--weights", "builtin", "--builtin-width", "8",
	                            "--builtin-seed", "42", "--report", "r.json",
	                            "--save-every", "10", "--progress", "on", "--threads", "3",
	                            "--tile", "256", "--overlap", "64", "--job-dir", "j.job",
	                            "--gram", "global", "--checkpoint-every", "7",
	                            "--plan", "--fresh", "--level-factor", "1.5",
	                            "--level-iterations", "100,50,25", NULL),
	                 0);
	assert_string_equal(c.content, content_path);
	assert_int_equal(c.nstyle, 2);
	assert_string_equal(c.style[0], "a.png");
	assert_string_equal(c.style[1], "b.png");
	assert_int_equal(c.has_blend, 2);
	assert_true(fabs(c.style_blend[0] - 0.25) < 1e-15);
	assert_true(fabs(c.style_blend[1] - 0.75) < 1e-15);
	assert_string_equal(c.out, out);
	assert_int_equal(c.height, 700);
	assert_int_equal(c.width, 0);
	assert_int_equal(c.dpi, 150);
	assert_true(c.content_weight == 2.5);
	assert_true(c.style_weight == 1e4);
	assert_true(c.tv_weight == 0);
	assert_int_equal(c.content_layers.n, 1);
	assert_int_equal(c.content_layers.layer[0], ts_vgg_layer_index("relu3_2"));
	assert_true(c.content_layers.w[0] == 0.5);
	assert_int_equal(c.style_layers.n, 2);
	assert_int_equal(c.style_layers.layer[1], ts_vgg_layer_index("relu2_1"));
	assert_true(c.style_layers.w[0] == 1);
	assert_true(c.style_layers.w[1] == 2);
	assert_true(c.style_scale == 0.5);
	assert_int_equal(c.original_colors, 1);
	assert_int_equal(c.normalize_style, 0);
	assert_int_equal(c.pool, TS_POOL_MAX);
	assert_int_equal(c.padding, TS_PAD_REFLECT);
	assert_int_equal(c.init, TS_INIT_FILE);
	assert_string_equal(c.init_file, init);
	assert_true(c.seed == UINT64_MAX);
	assert_int_equal(c.iterations, 0);
	assert_int_equal(c.optimizer, TS_OPTIM_ADAM);
	assert_int_equal(c.lbfgs_history, 7);
	assert_int_equal(c.lbfgs_half, 1);
	assert_int_equal(c.gram_global, 1);
	assert_int_equal(c.checkpoint_every, 7);
	assert_true(c.learning_rate == 0.05);
	assert_string_equal(c.weights, "builtin");
	assert_int_equal(c.builtin_width, 8);
	assert_true(c.builtin_seed == 42);
	assert_string_equal(c.report, "r.json");
	assert_int_equal(c.save_every, 10);
	assert_int_equal(c.progress, TS_PROGRESS_ON);
	assert_int_equal(c.threads, 3);
	assert_int_equal(c.tile, 256);
	assert_int_equal(c.overlap, 64);
	assert_string_equal(c.job_dir, "j.job");
	assert_int_equal(c.plan_only, 1);
	assert_int_equal(c.fresh, 1);
	assert_true(c.level_factor == 1.5);
	assert_int_equal(c.nlevel_iterations, 3);
	assert_int_equal(c.level_iterations[2], 25);
	assert_int_equal(c.show_help, 0);

	/* a later option wins and frees the earlier value; --init style drops the file;
	 * --quiet turns progress off; --size and --print-size; --help and --version */
	assert_int_equal(parse_args(&c, "--out", "x.png", "--out=y.png", "--init", "style",
	                            "--quiet", "--size", "900", "--print-size", "24x36in",
	                            "--help", "--version", "--width=5", NULL),
	                 0);
	assert_string_equal(c.out, "y.png");
	assert_int_equal(c.init, TS_INIT_STYLE);
	assert_null(c.init_file);
	assert_int_equal(c.progress, TS_PROGRESS_OFF);
	assert_int_equal(c.size, 900);
	assert_int_equal(c.width, 5);
	assert_true(c.print_w == 24 && c.print_h == 36);
	assert_int_equal(c.show_help, 1);
	assert_int_equal(c.show_version, 1);
	/* the styles are kept from the first call; blend weights too */
	assert_int_equal(c.nstyle, 2);
	ts_config_fini(&c);
	assert_null(c.out);
}

static void
test_equal_blend_without_option(void **state)
{
	ts_config c;

	(void)state;
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--style", "a.png,b.png,c.png,d.png", NULL), 0);
	assert_int_equal(c.nstyle, 4);
	assert_int_equal(c.has_blend, 0);
	for (int i = 0; i < 4; i++)
		assert_true(c.style_blend[i] == 0.25);
	/* blanks around the names are dropped */
	assert_int_equal(parse_args(&c, "--style", " a.png , b.png", NULL), 0);
	assert_int_equal(c.nstyle, 2);
	assert_string_equal(c.style[1], "b.png");
	ts_config_fini(&c);
}

static void
test_ini_then_cli(void **state)
{
	ts_config c;
	char ini[160], text[4096], longpath[400];

	(void)state;
	snprintf(ini, sizeof ini, "%s/job.ini", dir);
	/* a path longer than inih's default line (200) */
	memset(longpath, 'p', sizeof longpath);
	memcpy(longpath, "/tmp/", 5);
	snprintf(longpath + 300, sizeof longpath - 300, ".json");
	snprintf(text, sizeof text,
	         "; a job\n"
	         "content = %s\n"
	         "[input]\n"
	         "style = %s, %s\n"
	         "style_blend = 1,1\n"
	         "\n"
	         "[output]\n"
	         "out = %s/poster.tif   ; inline comment\n"
	         "print-size = 594x841mm\n"
	         "dpi = 100\n"
	         "report = %s\n"
	         "[objective]\n"
	         "style-weight = 500\n"
	         "content_layers = relu4_2:2,conv5_1\n"
	         "original_colors = yes\n"
	         "normalize-style = off\n"
	         "  fresh = TRUE\n"
	         "quiet = on\n"
	         "plan = 0\n"
	         "[tiles]\n"
	         "tile = 384\n"
	         "level-iterations = 300, 150\n"
	         "iterations = 77\n",
	         content_path, style_path, style2_path, dir, longpath);
	write_file(ini, text);

	ts_config_defaults(&c);
	assert_int_equal(ts_config_load_ini(&c, ini), 0);
	assert_string_equal(c.content, content_path);
	assert_int_equal(c.nstyle, 2);
	assert_string_equal(c.style[1], style2_path);
	assert_true(c.style_blend[0] == 0.5);
	assert_true(fabs(c.print_w - 594 / 25.4) < 1e-12);
	assert_true(fabs(c.print_h - 841 / 25.4) < 1e-12);
	assert_int_equal(c.dpi, 100);
	assert_string_equal(c.report, longpath);
	assert_true(c.style_weight == 500);
	assert_int_equal(c.content_layers.n, 2);
	assert_true(c.content_layers.w[0] == 2);
	assert_int_equal(c.content_layers.layer[1], ts_vgg_layer_index("conv5_1"));
	assert_int_equal(c.original_colors, 1);
	assert_int_equal(c.normalize_style, 0);
	assert_int_equal(c.fresh, 1);
	assert_int_equal(c.progress, TS_PROGRESS_OFF);
	assert_int_equal(c.plan_only, 0);
	assert_int_equal(c.tile, 384);
	assert_int_equal(c.nlevel_iterations, 2);
	assert_int_equal(c.level_iterations[1], 150);
	assert_int_equal(c.iterations, 77);
	ts_config_fini(&c);

	/* through --config: the command line wins, whatever its position */
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--tile=256", "--style", style_path, "--config", ini,
	                            "--iterations", "5", NULL),
	                 0);
	assert_string_equal(c.config_path, ini);
	assert_string_equal(c.content, content_path); /* from the file */
	assert_int_equal(c.tile, 256);
	assert_int_equal(c.iterations, 5);
	assert_int_equal(c.nstyle, 1);
	assert_int_equal(c.has_blend, 2); /* from the file: now a mismatch */
	assert_int_equal(ts_config_check(&c), -1);
	assert_msg_has("--style-blend: 2 weights for 1 style");
	ts_config_fini(&c);

	/* "none" turns off an optional output the file asked for; ./none is a path */
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--config", ini, "--report", "none", "--sheet", "none",
	                            "--deep-zoom", "./none", NULL),
	                 0);
	assert_null(c.report);
	assert_null(c.sheet);
	assert_string_equal(c.deep_zoom, "./none");
	assert_int_equal(parse_args(&c, "--deep-zoom", "none", NULL), 0);
	assert_null(c.deep_zoom);
	ts_config_fini(&c);
	unlink(ini);
}

static void
test_ini_errors(void **state)
{
	ts_config c;
	char ini[160], where[512];

	(void)state;
	snprintf(ini, sizeof ini, "%s/bad.ini", dir);
	write_file(ini, "[tessera]\n"
	                "content = a.png\n"
	                "foo = 3\n"
	                "width = 12x\n"
	                "original-colors = maybe\n"
	                "help = true\n"
	                "this line is broken\n"
	                "tile = 128\n");
	ts_config_defaults(&c);
	assert_int_equal(ts_config_load_ini(&c, ini), -1);
	snprintf(where, sizeof where, "config: %s:3: unknown key \"foo\"", ini);
	assert_msg_has(where);
	snprintf(where, sizeof where, "config: %s:4: width: \"12x\" is not an integer", ini);
	assert_msg_has(where);
	snprintf(where, sizeof where, "%s:5: original-colors: \"maybe\" is not a boolean", ini);
	assert_msg_has(where);
	snprintf(where, sizeof where, "%s:6: \"help\" is only a command-line option", ini);
	assert_msg_has(where);
	snprintf(where, sizeof where, "%s:7:", ini);
	assert_msg_has(where);
	/* the rest of the file is still applied; a file it names is relative to its folder */
	assert_int_equal(c.tile, 128);
	snprintf(where, sizeof where, "%s/a.png", dir);
	assert_string_equal(c.content, where);
	ts_config_fini(&c);

	/* errors of the file and of the command line come together */
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--config", ini, "--iterations", "x", NULL), -1);
	assert_msg_has("unknown key \"foo\"");
	assert_msg_has("--iterations: \"x\" is not an integer");
	ts_config_fini(&c);

	/* a missing config file is named */
	ts_config_defaults(&c);
	snprintf(where, sizeof where, "%s/nosuch.ini", dir);
	assert_int_equal(parse_args(&c, "--config", where, NULL), -1);
	assert_msg_has("nosuch.ini");
	ts_config_fini(&c);

	/* not a text file: a NUL byte on line 2, and an endless stream of them (the
	 * fuzzer's --config /dev/full ran forever), refused at once, the file named */
	{
		FILE *f = fopen(ini, "wb");

		assert_non_null(f);
		fputs("[tessera]\ntile = 1", f);
		fputc(0, f);
		fputs("28\n", f);
		assert_int_equal(fclose(f), 0);
	}
	ts_config_defaults(&c);
	assert_int_equal(ts_config_load_ini(&c, ini), -1);
	snprintf(where, sizeof where, "config: \"%s\" is not a text file (a NUL byte on line 2)",
	         ini);
	assert_msg_has(where);
	ts_config_fini(&c);
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--config", "/dev/zero", NULL), -1);
	assert_msg_has("\"/dev/zero\" is not a text file");
	ts_config_fini(&c);
	/* and one larger than 16 MiB (an endless pipe is cut there) */
	{
		FILE *f = fopen(ini, "w");

		assert_non_null(f);
		for (int i = 0; i < (17 << 20) / 32; i++)
			fputs("; a comment of 32 bytes a line.\n", f);
		assert_int_equal(fclose(f), 0);
	}
	ts_config_defaults(&c);
	assert_int_equal(ts_config_load_ini(&c, ini), -1);
	assert_msg_has("is larger than 16 MiB");
	ts_config_fini(&c);
	unlink(ini);
}

static void
test_bad_options_together(void **state)
{
	ts_config c;

	(void)state;
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--width", "12x", "--bogus", "3", "--pool", "min",
	                            "--padding", "mirror",
	                            "--optimizer=sgd", "--lbfgs-precision=double", "--plan=1",
	                            "--gram", "local",
	                            "--progress", "loud",
	                            "--normalize-style", "maybe", "--print-size", "24x36ft",
	                            "stray", "--seed", NULL),
	                 -1);
	assert_msg_has("--width: \"12x\" is not an integer");
	assert_msg_has("unknown option --bogus");
	assert_msg_has("--pool: \"min\" is not avg or max");
	assert_msg_has("--padding: \"mirror\" is not zero, reflect or replicate");
	assert_msg_has("--optimizer: \"sgd\" is not lbfgs or adam");
	assert_msg_has("--lbfgs-precision: \"double\" is not single or half");
	assert_msg_has("--gram: \"local\" is not tile or global");
	assert_msg_has("--plan takes no value");
	assert_msg_has("--progress: \"loud\"");
	assert_msg_has("--normalize-style: \"maybe\"");
	assert_msg_has("--print-size: unit \"ft\"");
	assert_msg_has("unexpected argument \"stray\"");
	assert_msg_has("--seed needs a value");
	/* bad values leave the fields alone */
	assert_int_equal(c.width, 0);
	assert_int_equal(c.pool, TS_POOL_AVG);
	ts_config_fini(&c);
}

static void
test_unknown_option(void **state)
{
	ts_config c;

	(void)state;
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--foo", NULL), -1);
	assert_string_equal(ts_errmsg(), "unknown option --foo");
	assert_int_equal(parse_args(&c, "--foo=3", NULL), -1);
	assert_string_equal(ts_errmsg(), "unknown option --foo");
	assert_int_equal(parse_args(&c, "-z", NULL), -1);
	assert_string_equal(ts_errmsg(), "unknown option -z");
	assert_int_equal(parse_args(&c, "--", "--width", NULL), -1);
	assert_string_equal(ts_errmsg(), "unexpected argument \"--width\"");
	/* a misspelling gets the option meant, and its value no second line */
	assert_int_equal(parse_args(&c, "--stlye", "a.png", NULL), -1);
	assert_string_equal(ts_errmsg(), "unknown option --stlye; did you mean --style?");
	assert_int_equal(parse_args(&c, "--iteratoins=3", NULL), -1);
	assert_string_equal(ts_errmsg(), "unknown option --iteratoins; did you mean --iterations?");
	/* neural-style's single-dash habits: one line each, naming tessera's option */
	assert_int_equal(parse_args(&c, "-style_image", "x.jpg", "-num_iterations", "500", NULL),
	                 -1);
	assert_string_equal(ts_errmsg(),
	                    "-style_image is neural-style's spelling: tessera's is --style "
	                    "FILE[,FILE...] (options have two dashes)\n"
	                    "-num_iterations is neural-style's spelling: tessera's is "
	                    "--iterations N (options have two dashes)");
	assert_int_equal(parse_args(&c, "-widht", "3", NULL), -1);
	assert_string_equal(ts_errmsg(), "-widht: options have two dashes: did you mean --width?");
	ts_config_fini(&c);
}

/* Parse one option with a bad value and look for the expected words. */
static void
expect_bad(const char *opt, const char *value, const char *words)
{
	ts_config c;
	char arg[128];

	ts_config_defaults(&c);
	snprintf(arg, sizeof arg, "--%s=%s", opt, value);
	assert_int_equal(parse_args(&c, arg, NULL), -1);
	snprintf(arg, sizeof arg, "--%s: ", opt);
	assert_msg_has(arg);
	assert_msg_has(words);
	ts_config_fini(&c);
}

static void
test_bad_numbers(void **state)
{
	(void)state;
	expect_bad("iterations", "", "empty value");
	expect_bad("iterations", "12x", "\"12x\" is not an integer");
	expect_bad("iterations", "1.5", "is not an integer");
	expect_bad("iterations", " 3", "is not an integer");
	expect_bad("iterations", "99999999999", "\"99999999999\" is out of range");
	expect_bad("tile", "-9999999999999999999999", "out of range");
	expect_bad("width", "0", "0 is not in 1..1000000");
	expect_bad("size", "-4", "is not in 1..");
	expect_bad("style-weight", "nan", "\"nan\" is not a finite number");
	expect_bad("style-weight", "inf", "not a finite number");
	expect_bad("tv-weight", "1e999", "out of range");
	expect_bad("tv-weight", "1e-3x", "\"1e-3x\" is not a number");
	expect_bad("content-weight", "", "empty value");
	expect_bad("seed", "-1", "not a non-negative integer");
	expect_bad("seed", "18446744073709551616", "out of range");
	expect_bad("level-iterations", "10,x", "\"x\" is not an integer");
	expect_bad("out", "", "empty value");
}

static void
test_layer_lists(void **state)
{
	ts_layer_weights lw;

	(void)state;
	memset(&lw, 0, sizeof lw);
	assert_int_equal(ts_config_parse_layers(&lw, "relu1_1:0.25, pool2 ,conv5_4:3e-1",
	                                        "--style-layers"),
	                 0);
	assert_int_equal(lw.n, 3);
	assert_int_equal(lw.layer[0], ts_vgg_layer_index("relu1_1"));
	assert_int_equal(lw.layer[1], ts_vgg_layer_index("pool2"));
	assert_int_equal(lw.layer[2], ts_vgg_layer_index("conv5_4"));
	assert_true(lw.w[0] == 0.25);
	assert_true(lw.w[1] == 1);
	assert_true(lw.w[2] == 0.3);
	assert_int_equal(ts_config_parse_layers(&lw, "", "--content-layers"), 0);
	assert_int_equal(lw.n, 0);

	/* every problem of the list at once; lw unchanged */
	lw.n = 1;
	assert_int_equal(ts_config_parse_layers(&lw, "relu9_9,relu1_1,relu2_1:x,relu1_1,"
	                                        "relu3_1:-1,,relu4_1:",
	                                        "--style-layers"),
	                 -1);
	assert_int_equal(lw.n, 1);
	assert_msg_has("--style-layers: unknown layer \"relu9_9\"");
	assert_msg_has("\"x\" is not a number");
	assert_msg_has("layer \"relu1_1\" is given twice");
	assert_msg_has("weight of relu3_1 is negative");
	assert_msg_has("empty layer name");
	assert_msg_has("empty value, expected a number");

	/* a layer repeated three times (with and without weights) is one problem */
	assert_int_equal(ts_config_parse_layers(&lw, "relu1_1,relu1_1:2,relu2_1,relu1_1",
	                                        "--style-layers"),
	                 -1);
	assert_string_equal(ts_errmsg(), "--style-layers: layer \"relu1_1\" is given 3 times");
	/* problems are joined one per line, never by "; " (a message may hold one) */
	assert_int_equal(ts_config_parse_layers(&lw, "relu9_9,relu1_1,relu1_1",
	                                        "--style-layers"),
	                 -1);
	assert_string_equal(ts_errmsg(), "--style-layers: unknown layer \"relu9_9\"\n"
	                                 "--style-layers: layer \"relu1_1\" is given twice");
}

static void
test_blend(void **state)
{
	ts_config c;

	(void)state;
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--style-blend", "0,0", NULL), -1);
	assert_msg_has("--style-blend: the weights \"0,0\" must not all be zero");
	assert_int_equal(parse_args(&c, "--style-blend", "1,-1", NULL), -1);
	assert_msg_has("--style-blend: weight \"-1\" is negative");
	assert_int_equal(parse_args(&c, "--style-blend", "2,0,6", NULL), 0);
	assert_true(c.style_blend[0] == 0.25 && c.style_blend[1] == 0 &&
	            c.style_blend[2] == 0.75);
	/* weights whose sum overflows are still relative weights */
	assert_int_equal(parse_args(&c, "--style-blend", "1e308,1e308,0", NULL), 0);
	assert_true(c.style_blend[0] == 0.5 && c.style_blend[1] == 0.5 &&
	            c.style_blend[2] == 0);
	assert_int_equal(parse_args(&c, "--style-blend", "1.7e308,1e308,1e-300", NULL), 0);
	assert_true(c.style_blend[0] > 0.62 && c.style_blend[0] < 0.63 &&
	            c.style_blend[2] == 0);
	assert_int_equal(parse_args(&c, "--style-blend", "2,0,6", NULL), 0);

	/* count mismatch: found by the check, with the counts */
	assert_int_equal(parse_args(&c, "--content", content_path, "--style", style_path,
	                            "--plan", NULL),
	                 0);
	assert_int_equal(ts_config_check(&c), -1);
	assert_msg_has("--style-blend: 3 weights for 1 style");
	assert_int_equal(parse_args(&c, "--style-blend", "5", NULL), 0);
	assert_true(c.style_blend[0] == 1);
	assert_int_equal(ts_config_check(&c), 0);
	ts_config_fini(&c);
}

/* What changed between two plans, key by key, numbers as a user writes them. */
static void
test_text_diff(void **state)
{
	const char *old = "[plan]\nversion = 1\nstyle_weight = 1\ntv_weight = 0.01\n"
	                  "style_layer = relu1_1:1\nstyle_layer = relu2_1:1\nseed = 0\n";
	char buf[512];

	(void)state;
	ts_config_text_diff(old, old, buf, sizeof buf);
	assert_string_equal(buf, "");
	ts_config_text_diff(old, "[plan]\nversion = 1\nstyle_weight = 2\n"
	                    "tv_weight = 0.10000000000000001\nstyle_layer = relu1_1:1\n"
	                    "seed = 0\ngram = global\n", buf, sizeof buf);
	assert_string_equal(buf, "style_weight was 1, is now 2; tv_weight was 0.01, is now 0.1; "
	                         "style_layer was relu1_1:1,relu2_1:1, is now relu1_1:1; "
	                         "gram is new (global)");
	ts_config_text_diff("a = 1\nb = 1\nc = 1\nd = 1\ne = 1\nf = 1\n", "a = 2\nb = 2\n"
	                    "c = 2\nd = 2\ne = 2\n", buf, sizeof buf);
	assert_string_equal(buf, "a was 1, is now 2; b was 1, is now 2; c was 1, is now 2; "
	                         "d was 1, is now 2; and 2 more");
}

static void
test_print_size(void **state)
{
	ts_config c;

	(void)state;
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--print-size", "24x36in", NULL), 0);
	assert_true(c.print_w == 24 && c.print_h == 36);
	assert_int_equal(parse_args(&c, "--print-size", "594x841mm", NULL), 0);
	assert_true(fabs(c.print_w - 23.385826771653543) < 1e-12);
	assert_true(fabs(c.print_h - 33.110236220472441) < 1e-12);
	assert_int_equal(parse_args(&c, "--print-size", "59.4X84.1cm", NULL), 0);
	assert_true(fabs(c.print_w - 23.385826771653543) < 1e-12);
	assert_true(fabs(c.print_h - 33.110236220472441) < 1e-12);
	assert_int_equal(parse_args(&c, "--print-size", "24x36", NULL), -1);
	assert_msg_has("unit \"\" is not in, cm or mm");
	assert_int_equal(parse_args(&c, "--print-size", "24in", NULL), -1);
	assert_msg_has("\"24in\" is not WIDTHxHEIGHT");
	assert_int_equal(parse_args(&c, "--print-size", "0x10in", NULL), -1);
	assert_msg_has("must be positive");
	assert_int_equal(parse_args(&c, "--print-size", "-2x10in", NULL), -1);
	assert_msg_has("is not WIDTHxHEIGHT");
	ts_config_fini(&c);
}

static void
test_check_good_and_files(void **state)
{
	ts_config c;
	char out[160], miss[160], weights[160], init[160];

	(void)state;
	snprintf(out, sizeof out, "%s/out.png", dir);
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--content", content_path, "--style", style_path,
	                            "--out", out, NULL),
	                 0);
	assert_int_equal(ts_config_check(&c), 0);
	assert_string_equal(ts_errmsg(), "");

	/* missing files, each named, with the option */
	snprintf(miss, sizeof miss, "%s/nosuch.png", dir);
	snprintf(weights, sizeof weights, "%s/nope.safetensors", dir);
	snprintf(init, sizeof init, "%s/start.tif", dir);
	assert_int_equal(parse_args(&c, "--content", miss, "--style",
	                            "nosuch_style.jpg,nosuch2.jpg", "--weights", weights,
	                            "--init", init, NULL),
	                 0);
	assert_int_equal(ts_config_check(&c), -1);
	assert_msg_has("--content: cannot read");
	assert_msg_has(miss);
	assert_msg_has("--style: cannot read \"nosuch_style.jpg\"");
	assert_msg_has("nosuch2.jpg");
	assert_msg_has("--weights: cannot read");
	assert_msg_has("nope.safetensors");
	assert_msg_has("--init: cannot read");
	assert_msg_has("start.tif");
	/* a directory is not a readable image */
	assert_int_equal(parse_args(&c, "--content", dir, "--style", style_path, "--init",
	                            "noise", "--weights", "builtin", NULL),
	                 0);
	assert_int_equal(ts_config_check(&c), -1);
	assert_msg_has("is a directory");
	ts_config_fini(&c);

	/* required options; --plan needs no --out */
	ts_config_defaults(&c);
	assert_int_equal(ts_config_check(&c), -1);
	assert_msg_has("--content is required");
	assert_msg_has("--style is required");
	assert_msg_has("--out is required");
	assert_int_equal(parse_args(&c, "--content", content_path, "--style", style_path,
	                            "--plan", NULL),
	                 0);
	assert_int_equal(ts_config_check(&c), 0);
	ts_config_fini(&c);
}

static void
test_check_ranges_together(void **state)
{
	ts_config c;
	char out[160];

	(void)state;
	snprintf(out, sizeof out, "%s/nodir/out.xyz", dir);
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--content", content_path, "--style", style_path,
	                            "--out", out, "--width", "2000000", "--size", "100",
	                            "--style-weight", "-1", "--iterations", "-3",
	                            "--save-every", "-1", "--lbfgs-history", "0", "--tile",
	                            "100", "--overlap", "60", "--level-factor", "1",
	                            "--threads", "-2", "--style-scale", "17",
	                            "--builtin-width", "65", "--content-layers", "",
	                            "--style-layers", "", "--level-iterations", "3,-1",
	                            "--learning-rate", "-0.1", "--progress-every", "0",
	                            "--checkpoint-every", "-1", NULL),
	                 0);
	assert_int_equal(ts_config_check(&c), -1);
	assert_msg_has("--progress-every: 0 is not a positive number of seconds");
	assert_msg_has("--checkpoint-every: -1 is negative");
	assert_msg_has("nodir\" does not exist");
	assert_msg_has("out.xyz\" has an unknown extension");
	assert_msg_has("--width: 2000000 is not in 1..1000000");
	assert_msg_has("--size excludes --width and --height");
	assert_msg_has("--style-weight: -1 is negative");
	assert_msg_has("--iterations: -3 is negative");
	assert_msg_has("--save-every: -1 is negative");
	assert_msg_has("--lbfgs-history: 0 is not in 1..1000");
	assert_msg_has("--tile: 100 is not a multiple of 16");
	assert_msg_has("--overlap: 60 is not in 0..49");
	assert_msg_has("--level-factor: 1 is not in (1, 8]");
	assert_msg_has("--threads: -2 is negative");
	assert_msg_has("--style-scale: 17 is not in (0, 16]");
	assert_msg_has("--builtin-width: 65 is not in 1..64");
	assert_msg_has("no layers");
	assert_msg_has("--level-iterations: -1 is negative");
	assert_msg_has("--learning-rate: -0.1 is negative");
	ts_config_fini(&c);

	/* print size: dpi needed, excludes the pixel sizes; the extension is any case */
	snprintf(out, sizeof out, "%s/poster.TIFF", dir);
	ts_config_defaults(&c);
	assert_int_equal(parse_args(&c, "--content", content_path, "--style", style_path,
	                            "--out", out, "--print-size", "24x36in", "--dpi", "0",
	                            "--height", "10", NULL),
	                 0);
	assert_int_equal(ts_config_check(&c), -1);
	assert_msg_has("--print-size needs --dpi > 0");
	assert_msg_has("--print-size excludes --width, --height and --size");
	assert_true(strstr(ts_errmsg(), "extension") == NULL);
	assert_int_equal(parse_args(&c, "--dpi", "300", NULL), 0);
	c.height = 0;
	assert_int_equal(ts_config_check(&c), 0);
	ts_config_fini(&c);
}

static void
test_usage_lists_every_option(void **state)
{
	static const char *const names[] = {
		"--config FILE", "--content FILE", "--style FILE", "--style-blend", "--out FILE",
		"--width N", "--height N", "--size N", "--print-size", "--dpi N",
		"--content-weight", "--style-weight", "--tv-weight", "--content-layers",
		"--style-layers", "--style-scale", "--original-colors", "--normalize-style",
		"--pool", "--padding zero|reflect|replicate", "--init", "--seed", "--start-size N",
		"--iterations", "--optimizer", "--lbfgs-history",
		"--lbfgs-precision single|half",
		"--learning-rate", "--weights", "--builtin-width", "--builtin-seed", "--report",
		"--save-every", "--progress", "--quiet", "--threads", "--tile N", "--overlap",
		"--job-dir", "--plan", "--fresh", "--level-factor", "--level-iterations",
		"--gram tile|global", "--checkpoint-every N", "--progress-every SECONDS",
		"--help", "--version", "(default: 512)", "(default: relu4_2)", "(default: 0.01)"
	};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	ts_config_usage(f);
	assert_int_equal(fclose(f), 0);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strstr(text, names[i]))
			fail_msg("--help lacks \"%s\"", names[i]);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_cli_every_kind),
		cmocka_unit_test(test_equal_blend_without_option),
		cmocka_unit_test(test_ini_then_cli),
		cmocka_unit_test(test_ini_errors),
		cmocka_unit_test(test_bad_options_together),
		cmocka_unit_test(test_unknown_option),
		cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_layer_lists),
		cmocka_unit_test(test_blend),
		cmocka_unit_test(test_text_diff),
		cmocka_unit_test(test_print_size),
		cmocka_unit_test(test_check_good_and_files),
		cmocka_unit_test(test_check_ranges_together),
		cmocka_unit_test(test_usage_lists_every_option),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
