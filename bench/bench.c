/* tessera-bench: time one forward+backward pass of the objective (built-in VGG-19 up
 * to relu5_1, content relu4_2, style relu1_1..relu5_1, TV) on a size x size image.
 *
 *   tessera-bench [--size N] [--repeat K] [--threads T] [--width-div D]
 *
 * Prints each repetition, the peak resident memory, and as its last line the median
 * seconds of one pass ("median_s 1.234"), which outside checks read. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tessera/blas.h"
#include "tessera/config.h"
#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/loss.h"
#include "tessera/objective.h"
#include "tessera/par.h"
#include "tessera/vgg.h"

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int
parse_int(const char *s, const char *opt, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "tessera-bench: %s: \"%s\" is not an integer in %d..%d\n", opt,
		        s, lo, hi);
		exit(2);
	}
	return (int)v;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "width-div", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int size = 512, repeat = 5, threads = 0, wdiv = 1, o;
	ts_config cfg;
	ts_objective_params p;
	ts_vgg *net = NULL;
	ts_style_targets *t = NULL;
	ts_objective *obj = NULL;
	ts_image *style = NULL;
	float *x = NULL, *g = NULL;
	double *times = NULL, total = 0.0, conv = 0.0, loss = 0.0, layers = 0.0;
	struct rusage ru;
	size_t n;
	double prof0[TS_VGG_NLAYERS][3];

	ts_blas_init(argv); /* may restart the program with better BLAS kernels */
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': size = parse_int(optarg, "--size", 16, 16384); break;
		case 'r': repeat = parse_int(optarg, "--repeat", 1, 1000); break;
		case 't': threads = parse_int(optarg, "--threads", 0, 1024); break;
		case 'd': wdiv = parse_int(optarg, "--width-div", 1, 64); break;
		case 'h':
			printf("usage: tessera-bench [--size N] [--repeat K] [--threads T] "
			       "[--width-div D]\n");
			return 0;
		default:
			fprintf(stderr, "tessera-bench: unknown option (see --help)\n");
			return 2;
		}
	}
	if (threads > 0)
		ts_conv_set_threads(threads);
	ts_config_defaults(&cfg);
	ts_objective_params_from_config(&p, &cfg);
	n = (size_t)3 * size * size;
	x = malloc(n * sizeof *x);
	g = malloc(n * sizeof *g);
	times = malloc((size_t)repeat * sizeof *times);
	style = ts_image_create(size / 2, size / 2);
	if (!x || !g || !times || !style) {
		fprintf(stderr, "tessera-bench: out of memory\n");
		return 1;
	}
	/* Deterministic pictures: smooth waves, different for content and style. */
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < size; i++)
			for (int j = 0; j < size; j++)
				x[((size_t)c * size + i) * size + j] =
				    0.5f + 0.4f * (float)((i * (c + 3) + j * 7) % 97) / 97.0f - 0.2f;
	for (size_t i = 0; i < (size_t)3 * style->w * style->h; i++)
		style->px[i] = (float)(i * 2654435761u % 1000) / 1000.0f;
	if (!(net = ts_vgg_create_builtin(cfg.builtin_seed, wdiv)) ||
	    !(t = ts_targets_create(net, &style, (double[]){ 1.0 }, 1, &p.style_layers,
	                            p.pool)) ||
	    !(obj = ts_objective_create(net, size, size, &p, t, x))) {
		fprintf(stderr, "tessera-bench: %s\n", ts_errmsg());
		return 1;
	}
	ts_objective_eval(obj, x, g, NULL); /* warm-up */
	for (int i = 0; i < TS_VGG_NLAYERS; i++)
		ts_vgg_layer_seconds(i, &prof0[i][0], &prof0[i][1], &prof0[i][2]);
	for (int r = 0; r < repeat; r++) {
		double t0 = now(), c0 = ts_conv_seconds(), l0 = ts_loss_seconds(), f;
		double n0 = ts_vgg_layers_seconds();

		f = ts_objective_eval(obj, x, g, NULL);
		times[r] = now() - t0;
		total += times[r];
		conv += ts_conv_seconds() - c0;
		loss += ts_loss_seconds() - l0;
		layers += ts_vgg_layers_seconds() - n0;
		printf("pass %d: %.4f s (loss %.6g)\n", r + 1, times[r], f);
	}
	/* where a pass goes, layer by layer (the mean over the passes) */
	printf("%-8s %9s %9s %9s   (ms per pass)\n", "layer", "forward", "backward", "losses");
	for (int i = 0; i < TS_VGG_NLAYERS; i++) {
		double v[3];

		ts_vgg_layer_seconds(i, &v[0], &v[1], &v[2]);
		for (int k = 0; k < 3; k++)
			v[k] = 1e3 * (v[k] - prof0[i][k]) / repeat;
		if (v[0] + v[1] + v[2] >= 0.05)
			printf("%-8s %9.1f %9.1f %9.1f\n", ts_vgg_layer_name(i), v[0], v[1], v[2]);
	}
	printf("OpenBLAS kernels: %s%s%s%s\n", ts_blas_core(), ts_blas_note() ? " (" : "",
	       ts_blas_note() ? ts_blas_note() : "", ts_blas_note() ? ")" : "");
	printf("threads %d, of the pass: convolution %.1f%%, other layers (pooling, ReLU) "
	       "%.1f%%, losses (Gram matrices included) %.1f%%, the rest %.1f%%\n",
	       ts_par_threads(), 100.0 * conv / total, 100.0 * layers / total,
	       100.0 * loss / total, 100.0 * (1.0 - (conv + layers + loss) / total));
	printf("mean of a pass: %.1f ms, convolution %.1f ms, other layers %.1f ms, losses "
	       "%.1f ms\n", 1e3 * total / repeat, 1e3 * conv / repeat, 1e3 * layers / repeat,
	       1e3 * loss / repeat);
	qsort(times, (size_t)repeat, sizeof *times, cmp_double);
	getrusage(RUSAGE_SELF, &ru);
	printf("size %d, objective bytes %.1f MiB, peak RSS %.1f MiB\n", size,
	       (double)ts_objective_bytes(net, size, size, &p) / 1048576.0,
	       (double)ru.ru_maxrss / 1024.0);
	printf("median_s %.4f\n", repeat % 2 ? times[repeat / 2]
	                                     : 0.5 * (times[repeat / 2 - 1] + times[repeat / 2]));
	ts_objective_destroy(obj);
	ts_targets_destroy(t);
	ts_vgg_destroy(net);
	ts_image_destroy(style);
	free(x);
	free(g);
	free(times);
	return 0;
}
