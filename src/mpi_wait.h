/* mpi_wait: waiting on MPI without a busy core.
 *
 * Open MPI's blocking calls poll the network without pause, so a rank that waits (a
 * worker while rank 0 assembles a level, builds the Deep Zoom pyramid or computes the
 * next targets; rank 0 for the last tiles of a level; every rank but 0 through a
 * single-piece render) would hold a core at 100% that the node's working ranks and
 * their threads need.  These start the nonblocking form of the call and test it,
 * sleeping between tests: from 50 us, doubling to 10 ms, so that a short wait costs
 * little latency and a long one at most a test every 10 ms.  Collectives must be the
 * same call on every rank of comm (an MPI_Ibcast does not match an MPI_Bcast). */
#ifndef TESSERA_MPI_WAIT_H
#define TESSERA_MPI_WAIT_H

#include <mpi.h>

/* MPI_Wait on rq */
void ts_mpi_wait(MPI_Request *rq);
/* MPI_Bcast, MPI_Barrier, MPI_Recv (no status), MPI_Probe (any source,
 * MPI_COMM_WORLD) */
void ts_mpi_bcast(void *buf, int count, MPI_Datatype type, int root, MPI_Comm comm);
void ts_mpi_barrier(MPI_Comm comm);
void ts_mpi_recv(void *buf, int count, MPI_Datatype type, int src, int tag, MPI_Comm comm);
void ts_mpi_probe(int tag, MPI_Status *st);

#endif
