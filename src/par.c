/* par: a persistent pool of worker threads (see par.h).
 *
 * One job at a time: ts_par_for publishes (fn, ctx, nitems), bumps the generation and
 * wakes the workers; everyone, the caller included, takes items from an atomic
 * counter; the caller waits until every worker has checked out of this generation.
 * Workers sleep on a condition variable between jobs (no spinning, so a rank sharing
 * a core with another does not steal it). */
#include "tessera/par.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tessera/error.h"

#define MAX_THREADS 256

static struct {
	int nthreads;            /* 0 until first use */
	int nworkers;            /* started worker threads (nthreads - 1) */
	pthread_t th[MAX_THREADS];
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	unsigned long gen;       /* job generation */
	int busy;                /* workers still in the current job */
	int quit;
	ts_par_fn fn;
	void *ctx;
	int nitems;
	atomic_int next;
} P = { .mu = PTHREAD_MUTEX_INITIALIZER,
	.go = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER };

static int
env_threads(const char *name)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return 0;
	v = strtol(s, &end, 10);
	return (*end == '\0' || *end == ',') && v >= 1 && v <= MAX_THREADS ? (int)v : 0;
}

static int
default_threads(void)
{
	int n = env_threads("OPENBLAS_NUM_THREADS");
	cpu_set_t set;

	if (!n)
		n = env_threads("OMP_NUM_THREADS");
	if (!n && sched_getaffinity(0, sizeof set, &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		n = c >= 1 ? (int)c : 1;
	}
	return n > MAX_THREADS ? MAX_THREADS : n;
}

static void
run_items(int thread)
{
	int i;

	while ((i = atomic_fetch_add(&P.next, 1)) < P.nitems)
		P.fn(P.ctx, i, thread);
}

static void *
worker(void *arg)
{
	int id = (int)(long)arg;
	unsigned long seen = 0;

	pthread_mutex_lock(&P.mu);
	for (;;) {
		while (P.gen == seen && !P.quit)
			pthread_cond_wait(&P.go, &P.mu);
		if (P.quit)
			break;
		seen = P.gen;
		pthread_mutex_unlock(&P.mu);
		run_items(id);
		pthread_mutex_lock(&P.mu);
		if (--P.busy == 0)
			pthread_cond_signal(&P.done);
	}
	pthread_mutex_unlock(&P.mu);
	return NULL;
}

static void
stop_workers(void)
{
	pthread_mutex_lock(&P.mu);
	P.quit = 1;
	pthread_cond_broadcast(&P.go);
	pthread_mutex_unlock(&P.mu);
	for (int i = 0; i < P.nworkers; i++)
		pthread_join(P.th[i], NULL);
	P.nworkers = 0;
	P.quit = 0;
}

void
ts_par_set_threads(int n)
{
	if (n < 1)
		n = default_threads();
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	/* every BLAS call runs inside one item, on one thread */
	openblas_set_num_threads(1);
	if (P.nworkers)
		stop_workers();
	P.nthreads = n;
}

int
ts_par_threads(void)
{
	if (!P.nthreads)
		ts_par_set_threads(0);
	return P.nthreads;
}

static void
start_workers(void)
{
	int want = ts_par_threads() - 1;

	while (P.nworkers < want) {
		if (pthread_create(&P.th[P.nworkers], NULL, worker, (void *)(long)(P.nworkers + 1)))
			break; /* fewer threads: the caller does the rest of the items */
		P.nworkers++;
	}
}

void
ts_par_for(int nitems, ts_par_fn fn, void *ctx)
{
	if (nitems <= 0)
		return;
	if (ts_par_threads() == 1 || nitems == 1) {
		for (int i = 0; i < nitems; i++)
			fn(ctx, i, 0);
		return;
	}
	if (P.nworkers < P.nthreads - 1)
		start_workers();
	pthread_mutex_lock(&P.mu);
	P.fn = fn;
	P.ctx = ctx;
	P.nitems = nitems;
	atomic_store(&P.next, 0);
	P.busy = P.nworkers;
	P.gen++;
	pthread_cond_broadcast(&P.go);
	pthread_mutex_unlock(&P.mu);
	run_items(0);
	pthread_mutex_lock(&P.mu);
	while (P.busy > 0)
		pthread_cond_wait(&P.done, &P.mu);
	pthread_mutex_unlock(&P.mu);
}

double
ts_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
