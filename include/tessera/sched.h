/* sched: who renders what.  Rank 0 plans, computes each level's style targets and
 * broadcasts them, keeps the queue of tiles still to do (workers ask for the next one,
 * so fast and slow nodes balance), renders tiles itself between answering requests,
 * logs finished tiles and assembles each level.  With one rank it does everything.
 * The only module that includes mpi.h. */
#ifndef TESSERA_SCHED_H
#define TESSERA_SCHED_H

#include "tessera/config.h"

/* Initialize MPI (a plain start without a launcher is one rank). */
void ts_sched_init(int *argc, char ***argv, int *rank, int *nranks);
void ts_sched_finalize(void);
/* Print "tessera[rank N]: message" and abort every rank. */
void ts_sched_abort(const char *msg, int code) __attribute__((noreturn));

/* Run the configured job to the end (or to a stop).  stop is set by SIGINT/SIGTERM.
 * Returns 0 when the output is written, 1 when stopped (resumable), -1 on error (the
 * message is in the error buffer of the rank that failed; the caller aborts). */
int ts_sched_run(const ts_config *c, volatile int *stop);

#endif
