/* main: the tessera command.  Parses and checks the whole configuration (every bad
 * option reported at once), installs the SIGINT/SIGTERM handlers and runs the
 * renderer.  The only place, with sched.c, that ends the process on an error. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/config.h"
#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/render.h"

static volatile sig_atomic_t stop_flag;
static volatile int stop_seen;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
	stop_seen = 1;
}

/* Print every "; "-joined problem of the error buffer on its own line. */
static void
print_errors(const char *msg)
{
	const char *p = msg;

	while (p && *p) {
		const char *q = strstr(p, "; ");
		int len = q ? (int)(q - p) : (int)strlen(p);

		fprintf(stderr, "tessera: %.*s\n", len, p);
		p = q ? q + 2 : NULL;
	}
}

int
main(int argc, char **argv)
{
	ts_config c;
	struct sigaction sa;
	int r;

	ts_config_defaults(&c);
	if (ts_config_parse(&c, argc, argv)) {
		print_errors(ts_errmsg());
		fprintf(stderr, "tessera: see tessera --help\n");
		ts_config_fini(&c);
		return 2;
	}
	if (c.show_help) {
		ts_config_usage(stdout);
		ts_config_fini(&c);
		return 0;
	}
	if (c.show_version) {
		printf("tessera %s\n", TS_VERSION);
		ts_config_fini(&c);
		return 0;
	}
	if (ts_config_check(&c)) {
		print_errors(ts_errmsg());
		ts_config_fini(&c);
		return 2;
	}
	if (c.threads > 0)
		ts_conv_set_threads(c.threads);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = ts_render_single(&c, &stop_seen);
	if (r < 0) {
		print_errors(ts_errmsg());
		ts_config_fini(&c);
		return 1;
	}
	if (r == 1)
		fprintf(stderr, "tessera: stopped by a signal; wrote the current image to %s\n",
		        c.out);
	ts_config_fini(&c);
	return r == 1 ? 130 : 0;
}
