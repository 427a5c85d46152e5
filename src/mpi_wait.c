/* mpi_wait: MPI waits that sleep instead of polling (see mpi_wait.h). */
#include "mpi_wait.h"

#include <time.h>

/* sleep ts, then double it up to 10 ms */
static void
idle_pause(struct timespec *ts)
{
	nanosleep(ts, NULL);
	if (ts->tv_nsec < 10000000L)
		ts->tv_nsec = ts->tv_nsec * 2 < 10000000L ? ts->tv_nsec * 2 : 10000000L;
}

void
ts_mpi_wait(MPI_Request *rq)
{
	struct timespec ts = { 0, 50000L };
	int done = 0;

	for (;;) {
		MPI_Test(rq, &done, MPI_STATUS_IGNORE);
		if (done)
			return;
		idle_pause(&ts);
	}
}

void
ts_mpi_bcast(void *buf, int count, MPI_Datatype type, int root, MPI_Comm comm)
{
	MPI_Request rq;

	MPI_Ibcast(buf, count, type, root, comm, &rq);
	ts_mpi_wait(&rq);
}

void
ts_mpi_barrier(MPI_Comm comm)
{
	MPI_Request rq;

	MPI_Ibarrier(comm, &rq);
	ts_mpi_wait(&rq);
}

void
ts_mpi_recv(void *buf, int count, MPI_Datatype type, int src, int tag, MPI_Comm comm)
{
	MPI_Request rq;

	MPI_Irecv(buf, count, type, src, tag, comm, &rq);
	ts_mpi_wait(&rq);
}

void
ts_mpi_probe(int tag, MPI_Status *st)
{
	struct timespec ts = { 0, 50000L };
	int flag = 0;

	for (;;) {
		MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, st);
		if (flag)
			return;
		idle_pause(&ts);
	}
}
