/* sched: the MPI scheduler of the tiled renderer (see sched.h).
 *
 * Protocol per level (tags below):
 *   rank 0 broadcasts {go, level} and then the level's Gram targets (collective);
 *   a worker sends REQ {tile it finished or -1, leaving} and gets REPLY {tile, or -1
 *   for "no more tiles in this level"}; after -1 it waits for the next broadcast.
 *   Rank 0 ends a level when every tile is done and every worker was told -1; then it
 *   assembles the level.  A stop (signal) makes rank 0 hand out nothing more, wait
 *   for the tiles in flight (workers finish or drop them), and broadcast {stop}.
 * Before the levels the ranks of each node share one copy of the prepared convolution
 * weights (share_weights).  Every wait here sleeps between tests (mpi_wait.h) rather
 * than holding a core.
 * Finished tiles are written by whoever rendered them (checkpoints in the shared job
 * directory), and so are their log lines: right after the checkpoint, before the tile
 * is reported, so that a rank killed later leaves no checkpoint without its line.
 * Each line is one write() with O_APPEND (ts_ckpt_log_append): whole lines that never
 * interleave on a local file system and on Lustre and GPFS; NFS does not promise that
 * between clients.  A rank killed between its checkpoint and its line leaves a tile
 * without a line: rank 0 writes it from the checkpoint when it next checks the level's
 * tiles (ts_job_tile_valid, at the level's start), so after any resume every
 * checkpoint has exactly one line. */
#include "tessera/sched.h"

#include <mpi.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/par.h"
#include "tessera/job.h"
#include "tessera/report.h"
#include "tessera/sheet.h"

#include "mpi_wait.h"

enum { TAG_REQ = 11, TAG_REPLY = 12 };

/* REQ payload (doubles): index done (-1: none), leaving, then the result's fields. */
enum {
	R_INDEX, R_LEAVING, R_ITERS, R_CONTENT, R_STYLE, R_TV, R_TOTAL, R_SECONDS, R_RANK,
	R_CONV, R_LOSS, R_OPTIM, R_LAYERS, R_N
};

static int my_rank, n_ranks;
/* Rank 0 failed in a step every rank takes part in (it broadcast the failure): every
 * rank knows, so ts_sched_abort ends them all quietly, rank 0 printing its message
 * once, instead of MPI_Abort and a message from each rank. */
static int failed_together;

/* The prepared convolution weights, one copy per node (share_weights). */
static MPI_Comm node_comm = MPI_COMM_NULL;
static void *shm_base; /* their mapping, or NULL */
static size_t shm_bytes;
static int node_ranks = 1, node_unshared; /* ranks on this node; each has its own copy */

void
ts_sched_init(int *argc, char ***argv, int *rank, int *nranks)
{
	MPI_Init(argc, argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
	MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
	*rank = my_rank;
	*nranks = n_ranks;
}

void
ts_sched_finalize(void)
{
	if (shm_base)
		munmap(shm_base, shm_bytes);
	if (node_comm != MPI_COMM_NULL)
		MPI_Comm_free(&node_comm);
	if (n_ranks > 1)
		ts_mpi_barrier(MPI_COMM_WORLD); /* the others wait here for rank 0's last writes */
	MPI_Finalize();
}

/* The name of a job's shared weights: from the plan and the job directory (as the
 * options name it), so that the next start of the same job finds and removes what a
 * run killed at the wrong moment left (see share_weights). */
static void
shm_name(const ts_job *job, const ts_config *c, char *name, size_t size)
{
	const char *dir = c->job_dir ? c->job_dir : c->out ? c->out : "";
	uint64_t h = 1469598103934665603ULL ^ ts_job_hash(job); /* FNV-1a */

	for (const char *p = dir; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	snprintf(name, size, "/tessera-weights-%016llx", (unsigned long long)h);
}

/* Lay out the network's prepared weights (400 MB at full width: more than a 512
 * tile's activations) once per node: the node's first rank computes them into a POSIX
 * shared memory object, the others map it read-only once it is written.  The space
 * is reserved first (posix_fallocate), so a full /dev/shm is a refusal here and not a
 * SIGBUS later.  Nothing is left in /dev/shm when a rank dies: the name is unlinked
 * the moment the object is made, and the others open it through the first rank's
 * descriptor (/proc/PID/fd/N), which the first rank holds until they have; a kill in
 * the microseconds between making and unlinking leaves a name that the next start of
 * the same job removes first (shm_name).  (Not MPI_Win_allocate_shared: Open MPI 4.1's
 * leaves the other ranks waiting forever when the leader's segment cannot be made.)
 * Alone on its node, or where the memory cannot be had, a rank makes its own.
 * Collective over the world; 0 or -1 with a message. */
static int
share_weights(ts_job *job, const ts_config *c)
{
	size_t n = ts_job_prepared_floats(job), bytes = n * sizeof(float);
	int node_rank = 0, ok = 1, all_ok = 0, fd = -1;
	char name[64] = "", peer[64] = "";
	void *p = MAP_FAILED;

	if (node_comm == MPI_COMM_NULL)
		MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
		                    &node_comm);
	MPI_Comm_size(node_comm, &node_ranks);
	MPI_Comm_rank(node_comm, &node_rank);
	if (node_ranks == 1 || n == 0)
		return ts_job_prepare_weights(job, NULL, 1);
	if (node_rank == 0) {
		int e = 0;

		shm_name(job, c, name, sizeof name);
		shm_unlink(name); /* left by a run of this job killed while making it */
		if ((fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600)) < 0)
			e = errno;
		else
			shm_unlink(name); /* from here on nothing named is left behind */
		if (!e && (e = posix_fallocate(fd, 0, (off_t)bytes)) == 0 &&
		    (p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
			e = errno;
		if (e) {
			ok = 0;
			fprintf(stderr, "tessera[rank %d]: shared memory %s for the prepared "
			        "weights (%.0f MiB): %s; each rank of the node makes its own\n",
			        my_rank, name, (double)bytes / 1048576.0, strerror(e));
		} else if (ts_job_prepare_weights(job, p, 1)) {
			ok = -1;
		}
		snprintf(peer, sizeof peer, "/proc/%ld/fd/%d", (long)getpid(), fd);
	}
	/* the leader has written them (or failed): the others may map them */
	ts_mpi_bcast(&ok, 1, MPI_INT, 0, node_comm);
	ts_mpi_bcast(peer, sizeof peer, MPI_CHAR, 0, node_comm);
	if (ok == 1 && node_rank != 0) {
		if ((fd = open(peer, O_RDONLY | O_CLOEXEC)) < 0 ||
		    (p = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
			ok = 0;
	}
	if (fd >= 0 && node_rank != 0)
		close(fd);
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, node_comm);
	if (fd >= 0 && node_rank == 0)
		close(fd); /* every peer has its own descriptor or mapping now */
	if (all_ok == 1) {
		shm_base = p;
		shm_bytes = bytes;
		return node_rank == 0 ? 0 : ts_job_prepare_weights(job, p, 0);
	}
	if (p != MAP_FAILED)
		munmap(p, bytes);
	if (all_ok < 0) {
		if (node_rank != 0)
			ts_error("sched", "the first rank of this node failed to prepare the "
			         "convolution weights");
		return -1;
	}
	node_unshared = 1;
	return ts_job_prepare_weights(job, NULL, 1);
}

/* --- the coupled level's collectives (coupled.h's ts_comm) over MPI_COMM_WORLD --- */

#define CHUNK ((size_t)1 << 28) /* elements per MPI call (counts are int) */

static void
comm_sum_i64(void *user, int64_t *v, size_t n)
{
	(void)user;
	for (size_t o = 0; o < n; o += CHUNK)
		MPI_Allreduce(MPI_IN_PLACE, v + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_INT64_T,
		              MPI_SUM, MPI_COMM_WORLD);
}

static void
comm_sum_f64(void *user, double *v, size_t n)
{
	(void)user;
	for (size_t o = 0; o < n; o += CHUNK)
		MPI_Allreduce(MPI_IN_PLACE, v + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_DOUBLE,
		              MPI_SUM, MPI_COMM_WORLD);
}

static void
comm_max_f64(void *user, double *v, size_t n)
{
	(void)user;
	for (size_t o = 0; o < n; o += CHUNK)
		MPI_Allreduce(MPI_IN_PLACE, v + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_DOUBLE,
		              MPI_MAX, MPI_COMM_WORLD);
}

/* Alltoallv of floats; counts and offsets per rank fit an int (a block's halo is a
 * few MB). */
static void
comm_exchange(void *user, const float *send, const size_t *scount, float *recv,
              const size_t *rcount)
{
	int *sc = user, *sd = sc + n_ranks, *rc = sd + n_ranks, *rd = rc + n_ranks;
	size_t so = 0, ro = 0;

	for (int r = 0; r < n_ranks; r++) {
		TS_ASSERT(so + scount[r] <= INT32_MAX && ro + rcount[r] <= INT32_MAX);
		sc[r] = (int)scount[r];
		sd[r] = (int)so;
		rc[r] = (int)rcount[r];
		rd[r] = (int)ro;
		so += scount[r];
		ro += rcount[r];
	}
	MPI_Alltoallv(send, sc, sd, MPI_FLOAT, recv, rc, rd, MPI_FLOAT, MPI_COMM_WORLD);
}

/* A global level (--gram global): every rank optimizes its blocks together; rank 0
 * then logs a line per block (after a barrier: every block file exists).  0, 1
 * stopped, -1 error (the caller aborts). */
typedef struct level_state level_state;
static void report_global(level_state *s, int level, const ts_tile_result *res,
                          const ts_blocks *bl, double seconds);

static int
run_global_level(ts_job *job, int level, volatile int *stop, int progress, level_state *s)
{
	int *counts = calloc(4 * (size_t)n_ranks, sizeof *counts), r;
	ts_comm comm = { counts, my_rank, n_ranks, comm_sum_i64, comm_sum_f64, comm_max_f64,
		         comm_exchange };
	ts_tile_result res;
	double t0 = ts_now();

	if (!counts) {
		ts_error("sched", "out of memory for the exchange counts");
		return -1;
	}
	r = ts_job_render_global(job, level, &comm, stop, progress, &res);
	free(counts);
	if (r)
		return r;
	ts_mpi_barrier(MPI_COMM_WORLD);
	if (my_rank == 0) {
		ts_blocks *bl = ts_job_blocks(job, level);

		ts_job_global_cleanup(job, level); /* every block file is written */

		if (!bl)
			return -1;
		for (int b = 0; b < bl->n; b++) {
			ts_tile_result l = res;

			l.row = b / bl->ncols;
			l.col = b % bl->ncols;
			for (l.rank = 0; l.rank + 1 < n_ranks &&
			                 ts_blocks_first(bl, l.rank + 1, n_ranks) <= b;)
				l.rank++;
			if (ts_job_log(job, &l))
				ts_error_print(stderr, "tessera", ts_errmsg());
		}
		if (progress)
			fprintf(stderr, "level %d: %d blocks (halo %d px) on %d rank%s, %d iterations "
			        "in %.1f s; rank 0 sent %d KiB a step\n", level, bl->n, bl->halo,
			        n_ranks, n_ranks == 1 ? "" : "s", res.iterations, ts_now() - t0, res.w);
		report_global(s, level, &res, bl, ts_now() - t0);
		ts_blocks_destroy(bl);
	}
	return 0;
}

void
ts_sched_abort(const char *msg, int code)
{
	char prefix[32];

	if (failed_together) {
		if (my_rank == 0)
			ts_error_print(stderr, "tessera", msg);
		fflush(stderr);
		ts_sched_finalize();
		exit(code);
	}
	snprintf(prefix, sizeof prefix, "tessera[rank %d]", my_rank);
	ts_error_print(stderr, prefix, msg);
	fflush(stderr);
	if (n_ranks > 1)
		MPI_Abort(MPI_COMM_WORLD, code);
	MPI_Finalize();
	exit(code);
}

/* Rank 0's view of one level. */
struct level_state {
	ts_job *job;
	int level, ntiles;
	int *queue, nqueue, qhead;   /* tiles to hand out, in order */
	int done;                    /* tiles finished (valid checkpoints) */
	int *idle;                   /* [n_ranks]: worker told "no more tiles" */
	int nidle;
	int *busy;                   /* [n_ranks]: tile index in flight, -1 */
	volatile int *stop;
	int failed;
	int progress, tty;
	int batch;                   /* --progress auto in a batch log: a line every */
	double every, last;          /* `every` seconds at most (last: when) */
	double t0;
	int done_at_start;
	/* the whole job's ETA: work in pixel-passes (ts_job_level_work), done this run */
	double run_t0, run_work;     /* since the run started, work finished */
	double tile_work;            /* one tile of this level */
	double later_work;           /* the levels after this one */
	/* --report in a tiled run (rank 0): the tiles rendered in this level */
	const ts_config *cfg;
	ts_report *report;
	ts_report_tile *rtiles;
	int nrtiles, rtiles_cap;
	double tile_s, conv_s;       /* summed over the tiles rendered this run: all, */
	double loss_s, optim_s;      /* in convolutions, losses, the optimizer, */
	double layers_s;             /* the network's other layers */
};

static void
fmt_eta(double v, char *buf, size_t size)
{
	long t = (long)(v + 0.5);

	if (!(v >= 0) || !isfinite(v))
		snprintf(buf, size, "?");
	else if (t >= 3600)
		snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else
		snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
}

/* The progress line; in a batch log at most one every s->every seconds unless force
 * (a level's first and last line). */
static void
print_progress(level_state *s, int force)
{
	double now = ts_now(), el = now - s->t0;
	int made = s->done - s->done_at_start;
	double rate = el > 0 ? made / el : 0;
	double jrate = now > s->run_t0 && s->run_work > 0 ? s->run_work / (now - s->run_t0) : 0;
	char eta[32] = "?", jeta[32] = "?";

	if (!s->progress || (s->batch && !force && now - s->last < s->every))
		return;
	s->last = now;
	if (rate > 0)
		fmt_eta((s->ntiles - s->done) / rate, eta, sizeof eta);
	if (jrate > 0)
		fmt_eta(((s->ntiles - s->done) * s->tile_work + s->later_work) / jrate, jeta,
		        sizeof jeta);
	fprintf(stderr, "%slevel %d: %d/%d tiles  %.3f tiles/s  ETA %s, job %s%s",
	        s->tty ? "\r" : "", s->level, s->done, s->ntiles, rate, eta, jeta,
	        s->tty ? "\033[K" : "\n");
	fflush(stderr);
}

/* A finished tile's result as a REQ payload, and back: the one place that knows the
 * fields that travel (pixels stay in the tile file). */
static void
pack_result(const ts_tile_result *r, int index, int rank, int leaving, double *m)
{
	memset(m, 0, R_N * sizeof *m);
	m[R_INDEX] = index;
	m[R_LEAVING] = leaving;
	if (!r)
		return;
	m[R_ITERS] = r->iterations;
	m[R_CONTENT] = r->content;
	m[R_STYLE] = r->style;
	m[R_TV] = r->tv;
	m[R_TOTAL] = r->total;
	m[R_SECONDS] = r->seconds;
	m[R_RANK] = rank;
	m[R_CONV] = r->conv_seconds;
	m[R_LOSS] = r->loss_seconds;
	m[R_OPTIM] = r->optim_seconds;
	m[R_LAYERS] = r->layers_seconds;
}

static void
unpack_result(const double *m, int level, const ts_level *lv, ts_tile_result *r)
{
	int idx = (int)m[R_INDEX];

	memset(r, 0, sizeof *r);
	r->level = level;
	r->row = idx / lv->ncols;
	r->col = idx % lv->ncols;
	r->iterations = (int)m[R_ITERS];
	r->content = m[R_CONTENT];
	r->style = m[R_STYLE];
	r->tv = m[R_TV];
	r->total = m[R_TOTAL];
	r->seconds = m[R_SECONDS];
	r->rank = (int)m[R_RANK];
	r->conv_seconds = m[R_CONV];
	r->loss_seconds = m[R_LOSS];
	r->optim_seconds = m[R_OPTIM];
	r->layers_seconds = m[R_LAYERS];
}

static void
count_result(level_state *s, const double *m)
{
	ts_tile_result r;

	unpack_result(m, s->level, &ts_job_plan(s->job)->level[s->level], &r);
	if (s->report) {
		if (s->nrtiles == s->rtiles_cap) {
			int cap = s->rtiles_cap ? 2 * s->rtiles_cap : 64;
			ts_report_tile *t = realloc(s->rtiles, (size_t)cap * sizeof *t);

			if (t) {
				s->rtiles = t;
				s->rtiles_cap = cap;
			}
		}
		if (s->nrtiles < s->rtiles_cap)
			s->rtiles[s->nrtiles++] = (ts_report_tile){ r.row, r.col, r.rank, r.iterations,
				                                    r.content, r.style, r.tv, r.total,
				                                    r.seconds };
	}
	s->tile_s += r.seconds;
	s->conv_s += r.conv_seconds;
	s->loss_s += r.loss_seconds;
	s->optim_s += r.optim_seconds;
	s->layers_s += r.layers_seconds;
	s->done++; /* its renderer logged it (log_tile) */
	s->run_work += s->tile_work;
	print_progress(s, s->done == s->ntiles);
}

/* A tile just rendered (its checkpoint written) gets its log line from its renderer,
 * before it is reported: see the header. */
static void
log_tile(ts_job *job, const ts_tile_result *res)
{
	if (ts_job_log(job, res))
		ts_error_print(stderr, "tessera", ts_errmsg());
}

/* Rank 0: the level just run into the job's report, which is written (atomically)
 * after every level.  A failure to write is said and the render goes on. */
static void
report_level(level_state *s, int level, int global, double seconds, int ntiles,
             int done_before)
{
	const ts_level *lv = &ts_job_plan(s->job)->level[level];
	ts_report_level rl = { level, lv->w, lv->h, global, ts_job_iterations(s->job, level),
		               ntiles, done_before, seconds, s->conv_s, s->layers_s, s->loss_s,
		               s->optim_s, s->tile_s, s->rtiles, s->nrtiles };
	const ts_config *c = s->cfg;

	if (!s->report)
		return;
	if (ts_report_level_add(s->report, &rl, n_ranks) ||
	    (c->report && ts_report_write(s->report, c->report)))
		ts_error_print(stderr, "tessera", ts_errmsg());
	s->nrtiles = 0;
}

/* Rank 0: a global level into the report, a line per block (the level's losses and
 * time: the blocks are one problem). */
static void
report_global(level_state *s, int level, const ts_tile_result *res, const ts_blocks *bl,
              double seconds)
{
	if (!s->report)
		return;
	free(s->rtiles);
	s->rtiles = calloc((size_t)bl->n, sizeof *s->rtiles);
	s->rtiles_cap = s->rtiles ? bl->n : 0;
	s->nrtiles = 0;
	for (int b = 0; b < s->rtiles_cap; b++) {
		int rk = 0;

		while (rk + 1 < n_ranks && ts_blocks_first(bl, rk + 1, n_ranks) <= b)
			rk++;
		s->rtiles[s->nrtiles++] = (ts_report_tile){ b / bl->ncols, b % bl->ncols, rk,
			                                    res->iterations, res->content, res->style,
			                                    res->tv, res->total, res->seconds };
	}
	s->tile_s = res->seconds;
	s->conv_s = res->conv_seconds;
	s->loss_s = res->loss_seconds;
	s->optim_s = res->optim_seconds;
	s->layers_s = res->layers_seconds;
	report_level(s, level, 1, seconds, bl->n, 0);
}

/* Answer one request (rank 0). */
static void
serve_one(level_state *s, int src)
{
	double m[R_N];
	int reply = -1;

	MPI_Recv(m, R_N, MPI_DOUBLE, src, TAG_REQ, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	if (m[R_INDEX] >= 0)
		count_result(s, m);
	if (s->busy[src] >= 0 && m[R_INDEX] < 0) {
		/* the tile was dropped (worker stopping): put it back */
		s->queue[--s->qhead] = s->busy[src];
	}
	s->busy[src] = -1;
	if (!(m[R_LEAVING] > 0) && !(s->stop && *s->stop) && s->qhead < s->nqueue)
		reply = s->queue[s->qhead++];
	if (reply < 0) {
		if (!s->idle[src]) {
			s->idle[src] = 1;
			s->nidle++;
		}
	} else {
		s->busy[src] = reply;
	}
	MPI_Send(&reply, 1, MPI_INT, src, TAG_REPLY, MPI_COMM_WORLD);
}

/* Answer every pending request without blocking (called between iterations). */
static void
serve_pending(void *user)
{
	level_state *s = user;
	int flag;
	MPI_Status st;

	for (;;) {
		MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQ, MPI_COMM_WORLD, &flag, &st);
		if (!flag)
			return;
		serve_one(s, st.MPI_SOURCE);
	}
}

/* Rank 0: run one level to its end.  0 ok, 1 stopped, -1 error. */
static int
coordinate_level(level_state *s)
{
	int ret = 0;

	while (s->done < s->ntiles || s->nidle < n_ranks - 1) {
		int stopping = s->stop && *s->stop;

		if (!stopping && !s->failed && s->qhead < s->nqueue) {
			ts_tile_result res;
			int idx = s->queue[s->qhead++], r;

			r = ts_job_render_tile(s->job, s->level, idx, 0, s->stop,
			                       n_ranks > 1 ? serve_pending : NULL, s, &res);
			if (r < 0) {
				s->failed = 1;
				return -1;
			}
			if (r == 1) {
				s->queue[--s->qhead] = idx;
				continue;
			}
			{
				double m[R_N];

				log_tile(s->job, &res);
				pack_result(&res, idx, 0, 0, m);
				count_result(s, m);
			}
			continue;
		}
		if (n_ranks == 1 || s->nidle == n_ranks - 1) {
			/* nobody left to wait for */
			if (stopping || s->qhead >= s->nqueue)
				break;
			continue;
		}
		{
			MPI_Status st;

			ts_mpi_probe(TAG_REQ, &st);
			serve_one(s, st.MPI_SOURCE);
		}
	}
	if (s->done < s->ntiles)
		ret = 1;
	return ret;
}

/* Worker: ask for tiles of the level until told there are none.  0, or -1 on error
 * (the caller aborts). */
static int
work_level(ts_job *job, int level, volatile int *stop)
{
	double m[R_N];
	int reply;

	pack_result(NULL, -1, my_rank, stop && *stop, m);
	for (;;) {
		ts_tile_result res;
		int r;

		MPI_Send(m, R_N, MPI_DOUBLE, 0, TAG_REQ, MPI_COMM_WORLD);
		ts_mpi_recv(&reply, 1, MPI_INT, 0, TAG_REPLY, MPI_COMM_WORLD);
		if (reply < 0)
			return 0;
		r = ts_job_render_tile(job, level, reply, my_rank, stop, NULL, NULL, &res);
		if (r < 0)
			return -1;
		if (r == 1) {
			pack_result(NULL, -1, my_rank, 1, m); /* dropped: leaving */
		} else {
			log_tile(job, &res);
			pack_result(&res, reply, my_rank, stop && *stop, m);
		}
	}
}

int
ts_sched_run(const ts_config *c, volatile int *stop)
{
	ts_job *job = NULL;
	int ok = 1, ret = -1, nlevels, stopped = 0;
	level_state s;

	memset(&s, 0, sizeof s);
	/* Rank 0 sets up the job directory first; the others open it after. */
	if (my_rank == 0 && !(job = ts_job_open(c, !c->plan_only)))
		ok = 0;
	ts_mpi_bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (!ok) {
		failed_together = 1; /* rank 0's message is in its buffer */
		return -1;
	}
	if (my_rank != 0 && !(job = ts_job_open(c, 0)))
		return -1;
	if (c->plan_only) {
		if (my_rank == 0)
			ts_job_print_plan(job, stdout, c->plan_ranks > 0 ? c->plan_ranks : n_ranks);
		ts_job_close(job);
		return 0;
	}
	if (share_weights(job, c))
		goto cleanup;
	if (my_rank == 0 && c->progress != TS_PROGRESS_OFF && node_ranks > 1)
		fprintf(stderr, node_unshared ? "prepared weights: %.0f MiB in each of the %d ranks "
		                                "of this node (no shared memory)\n"
		                              : "prepared weights: %.0f MiB, one copy for the %d "
		                                "ranks of this node\n",
		        (double)ts_job_prepared_floats(job) * sizeof(float) / 1048576.0, node_ranks);
	nlevels = ts_job_plan(job)->nlevels;
	s.job = job;
	s.stop = stop;
	s.tty = isatty(fileno(stderr));
	s.progress = c->progress == TS_PROGRESS_ON || c->progress == TS_PROGRESS_AUTO;
	s.batch = c->progress == TS_PROGRESS_AUTO && !s.tty;
	s.every = c->progress_every;
	s.run_t0 = ts_now();
	s.cfg = c;
	/* the job's report: settings, plan, levels, ranks (the contact sheet's source) */
	if (my_rank == 0 && (c->report || c->sheet)) {
		const ts_plan *p = ts_job_plan(job);

		if (!(s.report = ts_report_create(c)))
			goto cleanup;
		ts_report_set(s.report, "width", p->w);
		ts_report_set(s.report, "height", p->h);
		ts_report_set(s.report, "levels_in_plan", p->nlevels);
		ts_report_set(s.report, "nranks", n_ranks);
		{
			char h[32];

			snprintf(h, sizeof h, "%016llx", (unsigned long long)ts_job_hash(job));
			ts_report_set_str(s.report, "plan_hash", h);
		}
	}
	if (my_rank == 0) {
		s.idle = calloc((size_t)n_ranks, sizeof *s.idle);
		s.busy = malloc((size_t)n_ranks * sizeof *s.busy);
		if (!s.idle || !s.busy) {
			ts_error("sched", "out of memory for the scheduler's tables");
			goto cleanup;
		}
	}
	for (int level = 0; level < nlevels; level++) {
		int hdr[2] = { 1, level };
		ts_style_targets *t;

		if (my_rank == 0) {
			const ts_level *lv = &ts_job_plan(job)->level[level];

			/* which tiles are still to do (valid checkpoints are kept) */
			s.level = level;
			s.ntiles = lv->ncols * lv->nrows;
			free(s.queue);
			s.queue = malloc((size_t)s.ntiles * sizeof *s.queue);
			if (!s.queue) {
				ts_error("sched", "out of memory for the tile queue");
				hdr[0] = -1;
			}
			s.nqueue = s.qhead = s.done = 0;
			if (ts_job_level_global(job, level)) {
				/* one problem: all of it is done, or all is to do */
				int d = ts_job_level_done(job, level);

				if (d < 0)
					hdr[0] = -1;
				s.nqueue = d == 0;
			}
			for (int i = 0; s.queue && i < s.ntiles && !ts_job_level_global(job, level);
			     i++) {
				if (ts_job_tile_valid(job, level, i))
					s.done++;
				else
					s.queue[s.nqueue++] = i;
			}
			s.done_at_start = s.done;
			if ((stop && *stop) || stopped) /* a global level stops every rank */
				hdr[0] = 0;
			if (hdr[0] == 1 && !ts_job_targets(job, level, s.nqueue > 0))
				hdr[0] = -1;
			if (hdr[0] == 1 && s.nqueue == 0)
				hdr[0] = 2; /* nothing to render: skip the targets */
		}
		ts_mpi_bcast(hdr, 2, MPI_INT, 0, MPI_COMM_WORLD);
		if (hdr[0] == 0) {
			ret = 1;
			goto cleanup;
		}
		if (hdr[0] < 0) {
			failed_together = 1; /* rank 0's message is in its buffer */
			goto cleanup;
		}
		if (hdr[0] == 1) {
			if (my_rank != 0 && !ts_job_targets(job, level, 0))
				goto cleanup;
			t = ts_job_current_targets(job);
			ts_mpi_bcast(t->mem, (int)ts_targets_floats(t), MPI_FLOAT, 0, MPI_COMM_WORLD);
			if (my_rank != 0)
				ts_targets_update(t);
			if (ts_job_level_global(job, level)) {
				int r = run_global_level(job, level, stop,
				                         !s.progress ? 0 : s.batch ? (int)s.every : -1, &s);

				if (r < 0)
					goto cleanup;
				if (r == 1) {
					stopped = 1;
					continue; /* rank 0's next broadcast says stop */
				}
				s.run_work += ts_job_level_work(job, level, n_ranks);
			} else if (my_rank == 0) {
				int r;

				for (int i = 0; i < n_ranks; i++) {
					s.idle[i] = 0;
					s.busy[i] = -1;
				}
				s.nidle = 0;
				s.t0 = ts_now();
				s.tile_s = s.conv_s = s.loss_s = s.optim_s = s.layers_s = 0.0;
				s.last = 0;
				s.tile_work = ts_job_level_work(job, level, n_ranks) /
				              (s.ntiles > 0 ? s.ntiles : 1);
				s.later_work = 0;
				for (int k = level + 1; k < nlevels; k++)
					s.later_work += ts_job_level_work(job, k, n_ranks);
				print_progress(&s, 1);
				r = coordinate_level(&s);
				if (s.progress && s.tty)
					fputc('\n', stderr);
				if (s.progress && s.done > s.done_at_start) {
					double el = ts_now() - s.t0;
					double pct = s.tile_s > 0 ? 100.0 / s.tile_s : 0.0;

					fprintf(stderr,
					        "level %d: %d tiles in %.1f s (%.3f tiles/s); of the tiles' "
					        "time: convolution %.1f%%, other layers (pooling, ReLU) "
					        "%.1f%%, losses %.1f%%, optimizer %.1f%%, the rest (set-up, "
					        "IO) %.1f%%\n",
					        level, s.done - s.done_at_start, el,
					        (s.done - s.done_at_start) / el, pct * s.conv_s,
					        pct * s.layers_s, pct * s.loss_s, pct * s.optim_s,
					        pct * (s.tile_s - s.conv_s - s.layers_s - s.loss_s -
					               s.optim_s));
				}
				if (r < 0)
					goto cleanup; /* workers are aborted by the caller */
				if (r == 0)
					report_level(&s, level, 0, ts_now() - s.t0, s.ntiles, s.done_at_start);
				if (r == 1) {
					stopped = 1;
					if (s.run_work == 0 && s.progress)
						fprintf(stderr, "tessera: stopped before any tile of this run "
						        "finished (level %d's tiles had run %.0f s): a time "
						        "limit must leave more than one tile's time\n", level,
						        ts_now() - s.t0);
					continue; /* the next broadcast says stop */
				}
			} else if (work_level(job, level, stop)) {
				goto cleanup;
			}
		}
		if (my_rank == 0 && !stopped && ts_job_assemble(job, level))
			goto cleanup;
	}
	/* stopped during the last level: every worker is idle and done */
	ret = stopped ? 1 : 0;
	if (ret == 0 && my_rank == 0 && s.progress && c->out) {
		struct stat st;
		const ts_plan *p = ts_job_plan(job);

		if (stat(c->out, &st) == 0)
			fprintf(stderr, "wrote %s (%dx%d, %.1f MiB) in %.0f s\n", c->out, p->w, p->h,
			        (double)st.st_size / 1048576.0, ts_now() - s.run_t0);
	}
	if (ret == 0 && my_rank == 0 && c->sheet && s.report) {
		if (ts_sheet_write(ts_report_json(s.report), c->sheet))
			ret = -1;
		else if (s.progress)
			fprintf(stderr, "wrote %s (the contact sheet)\n", c->sheet);
	}
cleanup:
	ts_report_destroy(s.report);
	free(s.rtiles);
	free(s.queue);
	free(s.idle);
	free(s.busy);
	ts_job_close(job);
	return ret;
}
