/* par: tessera's own worker threads, for the numeric kernels.
 *
 * OpenBLAS is kept single-threaded (ts_par_init says so once); parallelism comes from
 * splitting work into items whose boundaries depend only on the shapes involved, and
 * handing the items to a small persistent pool.  Each item is computed the same way
 * whichever thread takes it, so results are the same bits for any thread count, and a
 * tile rendered by a rank with 1 thread equals the same tile rendered with 16.
 *
 * Only the thread that calls ts_par_for (the main thread) may call it; items must not
 * call it again. */
#ifndef TESSERA_PAR_H
#define TESSERA_PAR_H

/* fn(ctx, item, thread) for item in [0, nitems), thread in [0, ts_par_threads()). */
typedef void (*ts_par_fn)(void *ctx, int item, int thread);

/* Threads used from now on; n < 1 picks the default: OPENBLAS_NUM_THREADS, else
 * OMP_NUM_THREADS, else the CPUs this process may run on (its affinity mask, which
 * is what mpirun/srun binding leaves it). */
void ts_par_set_threads(int n);
/* Threads in use (>= 1). */
int ts_par_threads(void);
/* Run fn over every item, on up to ts_par_threads() threads; returns when all are done. */
void ts_par_for(int nitems, ts_par_fn fn, void *ctx);

/* Seconds on the monotonic clock (for timing the work; only differences mean
 * anything). */
double ts_now(void);

#endif
