/* main: the tessera command.  Parses and checks the whole configuration (every bad
 * option reported at once), installs the SIGINT/SIGTERM handlers and runs either the
 * single-picture renderer (the output fits in one tile) or the tiled scheduler.  The
 * only place, with sched.c, that ends the process on an error.
 *
 * Exit status: 0 done; 1 error; 2 bad options; 75 stopped by a signal (resumable:
 * run the same command again).
 *
 * Stop signals: SIGINT, SIGTERM and SIGUSR1.  Under Open MPI 4.1's mpirun, SIGTERM to
 * mpirun itself (what PBS and a batch script's shell pass on) makes mpirun end the
 * ranks (SIGTERM, then SIGKILL a second later) and exit 1 whatever the ranks return:
 * its signal handler sets the status before any rank has exited, so the ranks stop
 * cleanly but 75 cannot reach the caller.  mpirun forwards SIGUSR1 to the ranks and
 * then returns their status, 75: schedulers can send it ahead of the time limit
 * (Slurm: --signal=B:USR1@120; PBS: qsig -s USR1).  SIGTERM to the ranks themselves
 * (srun, Slurm's step signals) stops them with 75 as well. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/blas.h"
#include "tessera/config.h"
#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/render.h"
#include "tessera/sched.h"

#define EXIT_STOPPED 75

static volatile int stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* Print every problem of the error buffer on its own line (see ts_error_print). */
static void
print_errors(int rank, int nranks, const char *msg)
{
	char prefix[32];

	if (nranks > 1)
		snprintf(prefix, sizeof prefix, "tessera[rank %d]", rank);
	else
		snprintf(prefix, sizeof prefix, "tessera");
	ts_error_print(stderr, prefix, msg);
}

/* One tile holds the whole output: no pyramid, no job directory. */
static int
fits_one_tile(const ts_config *c)
{
	int cw, ch, bits, w, h;

	if (ts_image_probe(c->content, &cw, &ch, &bits))
		return -1;
	ts_render_output_size(c, cw, ch, &w, &h);
	return w <= c->tile && h <= c->tile;
}

int
main(int argc, char **argv)
{
	ts_config c;
	struct sigaction sa;
	int rank, nranks, r, single;

	ts_blas_init(argv); /* may restart the program: before MPI and threads */
	ts_sched_init(&argc, &argv, &rank, &nranks);
	ts_config_defaults(&c);
	if (ts_config_parse(&c, argc, argv) || (!c.show_help && !c.show_version &&
	                                        ts_config_check(&c))) {
		if (rank == 0) {
			print_errors(0, 1, ts_errmsg());
			fprintf(stderr, "tessera: see tessera --help\n");
		}
		ts_config_fini(&c);
		ts_sched_finalize();
		return 2;
	}
	if (c.show_help || c.show_version) {
		if (rank == 0 && c.show_help)
			ts_config_usage(stdout);
		else if (rank == 0) {
			printf("tessera %s\nOpenBLAS kernels: %s\n", TS_VERSION, ts_blas_core());
			if (ts_blas_note())
				printf("%s\n", ts_blas_note());
		}
		ts_config_fini(&c);
		ts_sched_finalize();
		return 0;
	}
	if (c.threads > 0)
		ts_conv_set_threads(c.threads);
	if (rank == 0 && ts_blas_note() && (c.progress == TS_PROGRESS_ON ||
	                                    (c.progress == TS_PROGRESS_AUTO && isatty(2))))
		fprintf(stderr, "tessera: %s\n", ts_blas_note());

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL); /* forwarded by mpirun, unlike SIGTERM */

	single = c.plan_only ? 0 : fits_one_tile(&c);
	if (single < 0) {
		if (rank == 0)
			print_errors(0, 1, ts_errmsg());
		ts_config_fini(&c);
		ts_sched_finalize();
		return 1;
	}
	if (single) {
		r = rank == 0 ? ts_render_single(&c, &stop_flag) : 0;
		if (r == 1)
			fprintf(stderr, "tessera: stopped by a signal; wrote the current image to "
			        "%s\n", c.out);
	} else {
		r = ts_sched_run(&c, &stop_flag);
		if (r == 1 && rank == 0)
			fprintf(stderr, "tessera: stopped by a signal; finished tiles are kept: run "
			        "the same command again to resume\n");
	}
	if (r < 0) {
		char msg[2048];

		snprintf(msg, sizeof msg, "%s", ts_errmsg());
		ts_config_fini(&c);
		if (nranks > 1)
			ts_sched_abort(msg, 1);
		print_errors(rank, nranks, msg);
		ts_sched_finalize();
		return 1;
	}
	ts_config_fini(&c);
	ts_sched_finalize();
	return r == 1 ? EXIT_STOPPED : 0;
}
