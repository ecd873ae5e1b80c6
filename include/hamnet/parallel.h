/* hamnet/parallel.h - data parallelism over MPI: the context, cross-rank agreement, sharding
 * of the global batch, the bucketed gradient exchange, and test-only fault injection.
 *
 * Every `hamnet` process starts MPI (a plain `hamnet ...` is a one-rank job). The only global
 * state in hamnet is the communicator handle kept here.
 *
 * THE RULE THAT KEEPS JOBS FROM HANGING: every collective call is reached by every rank, in the
 * same order. Anything that can fail on one rank only (opening a file, allocating, a bad value
 * in a rank's share of the data) is followed by hn_mpi_agree before the next collective, so all
 * ranks take the same path. If a rank nevertheless leaves alone (a bug, an unagreed error), it
 * exits through hn_mpi_exit, which aborts the whole job after a short deadline instead of
 * waiting forever in MPI_Finalize while its peers wait in a collective. */
#ifndef HAMNET_PARALLEL_H
#define HAMNET_PARALLEL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "hamnet/config.h" /* hn_exchange_kind */
#include "hamnet/real.h"

#ifdef HN_USE_DOUBLE
#define HN_MPI_REAL MPI_DOUBLE
#else
#define HN_MPI_REAL MPI_FLOAT
#endif

typedef struct {
  MPI_Comm comm;
  int rank;
  int size;
  int thread_level; /* what MPI_Init_thread granted */
} hn_mpi;

/* MPI_Init_thread (asks for MPI_THREAD_FUNNELED: only the main thread calls MPI), sets up
 * logging with the rank, installs MPI_ERRORS_RETURN so MPI failures become statuses, and
 * duplicates the world communicator for hn_mpi_exit's deadline barrier. Before MPI starts it
 * sets OMPI_MCA_coll_libnbc_iallreduce_algorithm=3 (Rabenseifner) unless the environment has
 * a value: Open MPI's default below 4 ranks, a binomial tree, leaves all the summing to one
 * rank (see the exchange below). */
int hn_mpi_init(int *argc, char ***argv, hn_mpi *ctx);
void hn_mpi_finalize(void);

/* Leave MPI at the end of the process and return exit_code (for `return hn_mpi_exit(code)` in
 * main). exit_code 0: MPI_Finalize. Non-zero on a job of several ranks: the ranks meet in a
 * non-blocking barrier on a private communicator, polled until a deadline of
 * HAMNET_EXIT_DEADLINE seconds (default 10; 0 = wait forever). If every rank arrives (they
 * failed together, an agreed error) MPI_Finalize follows; if not, this rank failed alone while
 * others still compute or wait in a collective, and MPI_Abort(exit_code) ends the whole job. */
int hn_mpi_exit(int exit_code);

/* The context set up by hn_mpi_init (rank 0 of 1 before it). */
const hn_mpi *hn_mpi_world(void);

/* The status every rank must agree on: the worst (largest) of the ranks' statuses. Used after
 * any step that can fail on one rank only (opening a file, allocating), so that all ranks take
 * the same path and nobody waits in a collective for a rank that has given up. When the local
 * status is HN_OK but another rank failed, the local message says which rank failed and
 * repeats that rank's message (the first 400 characters), so every rank's output explains the
 * stop. hn_mpi_agree_comm does the same on any communicator of the world's ranks. */
int hn_mpi_agree(int local_status);
int hn_mpi_agree_comm(MPI_Comm comm, int local_status);

/* Check that `len` bytes at `buf` are the same on every rank (a 64-bit hash is compared).
 * On a mismatch every rank returns HN_EMPI with a message naming `what` and the first rank
 * that differs from rank 0 - used at start-up for the config, the data shapes, the build
 * precision and the starting parameters, so that inconsistent ranks fail together instead of
 * hanging or silently diverging later. */
int hn_mpi_check_same(const char *what, const void *buf, size_t len);
int hn_mpi_check_same_comm(MPI_Comm comm, const char *what, const void *buf, size_t len);

/* Print the start-of-run banner on rank 0: version, git hash, precision, ranks x threads,
 * binding, BLAS, MPI thread level. */
void hn_mpi_banner(const char *command, int threads);

/* --- sharding: which samples each rank takes ------------------------------------------------
 * A global batch of B samples is split over the P ranks in contiguous parts of the batch's
 * sample list: rank r takes positions [B r / P, B (r+1) / P). Parts differ by at most one
 * sample, every sample belongs to exactly one rank (a rank may get none when B < P), and the
 * parts in rank order are the batch itself - so the global batch is the same set of samples,
 * in the same order, for every P, and the summed gradient differs only by rounding. */
void hn_shard_range(int64_t size, int rank, int ranks, int64_t *lo, int64_t *hi);

/* Samples in global batch k of an epoch of n samples in batches of B: B, except the last
 * batch, which holds the remainder n - (n_batches - 1) B. */
int64_t hn_shard_batch_size(int64_t n, int64_t B, int k);

/* One rank's share of one epoch. */
typedef struct {
  int n_batches;        /* ceil(n / B), the same on every rank */
  int64_t *batch_start; /* [n_batches + 1]: batch k is rows[batch_start[k] .. batch_start[k+1]) */
  int64_t *rows;        /* this rank's file rows, batch after batch (HN_MEM_DATA) */
  int64_t count;        /* batch_start[n_batches]: about n / P */
} hn_epoch_shard;

/* The plan of `rank` for `epoch`: the global permutation hn_data_permutation(seed, epoch, n)
 * (a pure function of its arguments: identical on every rank), cut into global batches of B,
 * each split with hn_shard_range. Sample i of the permutation is file row subset[i] (subset =
 * NULL: row i). Memory: the permutation is n int64 values transiently (8 bytes per sample on
 * every rank, freed before returning); what stays is ~n / P row indices. On failure (HN_ENOMEM,
 * HN_EINVAL for n < 1, B < 1, rank outside 0..ranks-1) *out is empty. */
int hn_shard_epoch(uint64_t seed, int epoch, int64_t n, int64_t B, const int64_t *subset, int rank, int ranks,
                   hn_epoch_shard *out);
void hn_epoch_shard_free(hn_epoch_shard *s);

/* --- gradient exchange -------------------------------------------------------------------
 * Averages the flat gradient buffer over the ranks in buckets: contiguous slices taken from
 * the END of the buffer (bucket 0 = the last bucket_elems elements: classifier and last
 * layers, which the backward pass finishes first). hn_exchange_ready is the model's
 * grad-ready callback: it hands every bucket that lies entirely in the finished suffix to the
 * exchange, in bucket order (the same on every rank), and moves the ones in flight along -
 * after each layer of the backward pass and between the GEMMs within it (the model calls the
 * callback again with an unchanged value there: hn_step.between). hn_exchange_finish hands
 * over the rest and waits. Sums: the model already scaled by 1 / global batch, so the sum is
 * the mean. Two engines, chosen at creation, the same on every rank:
 *
 * HN_EXCHANGE_SHARED (src/parallel/exchange_shared.h): the ranks of a node keep their
 * gradient buffers in memory they can all read, and a bucket is reduced with loads and stores:
 * local rank r sums slice r of the bucket over the node's ranks (in local-rank order), then -
 * with several nodes - MPI_Iallreduce's that slice with the same local rank on every other node
 * (so each node sends one bucket's worth, not one per rank), then copies the other slices from
 * their owners. Per bucket and rank: a (L-1)/L share of the bucket read from the peers twice
 * and nothing through the kernel. Needs the same number L >= 2 of ranks on every node and the
 * peers' memory reachable through /proc (the same permission as Open MPI's single-copy
 * transport). The caller's gradient buffer moves into the shared memory: *grads is replaced
 * at creation and a private copy given back by hn_exchange_destroy, so *grads must come from
 * hn_alloc and must not be freed in between.
 *
 * HN_EXCHANGE_MPI: MPI_Iallreduce per bucket, progressed with MPI_Testsome (Open MPI has no
 * asynchronous progress thread, so a non-blocking collective advances only inside MPI calls).
 * Algorithm: Rabenseifner's reduce-scatter + allgather (about 2 (P-1)/P of a bucket sent and
 * received per rank, 2 log2 P rounds), in place. Open MPI's libnbc chooses its algorithm by
 * itself: a binomial tree (log2 P full-size transfers, all the summing on one rank) below 4
 * ranks, and for in-place calls at any size; Rabenseifner only for separate buffers from 4
 * ranks and 64 KiB up. hn_mpi_init therefore sets OMPI_MCA_coll_libnbc_iallreduce_algorithm=3
 * (Rabenseifner always) unless the user set it, and with that value the exchange runs in
 * place: no receive buffer and no copies. With any other value the exchange uses a receive
 * buffer (one more gradient-sized buffer, HN_MEM_GRADS) and copies each bucket back as it
 * completes, so that libnbc's own choice from 4 ranks is still Rabenseifner. On Open MPI's
 * shared-memory transport every large message is copied by the receiver with
 * process_vm_readv into a temporary buffer and summed from there.
 *
 * HN_EXCHANGE_AUTO: SHARED where it can run, else MPI (ex->engine_note says which and why).
 *
 * overlap = 0 hands every bucket over in hn_exchange_finish (for comparison). With one rank no
 * MPI call is made. HAMNET_BENCH_SKIP_EXCHANGE=1 in the environment (benchmarks only) skips the
 * communication altogether - every rank then steps with its own partial gradient - so that
 * "step time minus the step time without exchange" is the exposed communication; the trainer's
 * HAMNET_BENCH_EXCHANGE_CYCLE=1 sets `overlap` and `skip` per step (cycling through the three
 * modes) so that one run measures them side by side.
 * HAMNET_EXCHANGE_TRACE=1 prints every step's bucket timeline (start and completion times
 * since the step began, and when the backward pass ended) on stderr, one line per rank.
 * HAMNET_EXCHANGE_NODE_SIZE=K (tests) makes the shared engine treat K consecutive ranks as one
 * node, so that one machine exercises its across-node allreduce as well. */
typedef struct {
  long steps;           /* hn_exchange_finish calls */
  long buckets;         /* buckets exchanged */
  long started_early;   /* ... of which started before hn_exchange_finish (during the backward pass) */
  long done_early;      /* ... of which were complete before hn_exchange_finish */
  double wait_seconds;  /* blocked in hn_exchange_finish: the exposed communication */
  double comm_seconds;  /* inside the exchange's calls (MPI, or the shared engine's sums and copies), ready included */
  double work_seconds;  /* shared engine: of comm_seconds, summing and copying (the rest: polling, waiting) */
} hn_exchange_stats;

/* *into += add, field by field. */
void hn_exchange_stats_add(hn_exchange_stats *into, const hn_exchange_stats *add);

struct hn_shared; /* the shared engine's state (exchange_shared.c) */

typedef struct {
  MPI_Comm comm;
  int size;
  hn_real *grads;
  hn_real *recv;       /* MPI engine: receive buffer [n] (HN_MEM_GRADS); NULL: in place, one rank or skip */
  size_t n;
  size_t bucket_elems;
  int n_buckets;
  int next;            /* next bucket to start */
  int pending;         /* buckets started and not yet complete */
  int overlap;
  int skip;            /* HAMNET_BENCH_SKIP_EXCHANGE */
  int trace;           /* HAMNET_EXCHANGE_TRACE: print each step's timeline on stderr */
  hn_exchange_kind kind;      /* the engine in use: SHARED or MPI (MPI also for one rank) */
  char engine_note[256];      /* which engine and why, for the run's log */
  struct hn_shared *shared;   /* SHARED engine state, else NULL */
  int deferred_status;        /* a failure inside hn_exchange_ready (a callback), returned by finish */
  MPI_Request *req;    /* [n_buckets] (MPI engine) */
  int *done_idx;       /* [n_buckets] scratch for MPI_Testsome / MPI_Waitsome */
  /* this step's timeline, seconds since hn_exchange_begin (for tests and benchmarks) */
  double t_begin;
  double *t_start;     /* [n_buckets] when bucket k was started */
  double *t_done;      /* [n_buckets] when bucket k was first seen complete */
  double t_finish;     /* when hn_exchange_finish was entered */
  hn_exchange_stats stats;
} hn_exchange;

/* Collective over comm. bucket_bytes is rounded to whole elements and clamped to [4 KiB,
 * 1 GiB]. *grads: the n gradients (from hn_alloc); the SHARED engine replaces the pointer (see
 * above). kind: the engine wanted; SHARED where it cannot run is HN_EINVAL naming the reason.
 * HN_ENOMEM, HN_EMPI. */
int hn_exchange_create(hn_exchange *ex, MPI_Comm comm, hn_real **grads, size_t n, size_t bucket_bytes, int overlap,
                       hn_exchange_kind kind);
/* Not collective. Gives *grads a private buffer back (SHARED engine). */
void hn_exchange_destroy(hn_exchange *ex);
/* Start of a step (before the forward pass). */
void hn_exchange_begin(hn_exchange *ex);
/* hn_grad_ready_fn: grads[first_final .. n) are final on this rank. ctx is the hn_exchange. */
void hn_exchange_ready(void *ctx, size_t first_final);
/* Start what is left, wait for all buckets; HN_EMPI on failure (a rank died or MPI failed).
 * Every rank must call it once per step, also a rank whose backward pass failed. */
int hn_exchange_finish(hn_exchange *ex);
/* Bucket k's slice [*lo, *hi) of the buffer. */
void hn_exchange_bucket_range(const hn_exchange *ex, int k, size_t *lo, size_t *hi);

/* --- test-only fault injection -------------------------------------------------------------
 * HAMNET_FAULT=POINT and HAMNET_FAULT_RANK=R (default 0) make rank R fail at POINT, so that
 * the tests can prove that an error on one rank ends the whole job with a message instead of a
 * hang. HAMNET_FAULT_STEP=S (default 3) picks the global step for the per-step points. Points:
 *   data   the collective data reader on rank R reports the file unreadable (as if only the
 *          other ranks could see it)
 *   oom    allocating rank R's share of an epoch fails
 *   nan    rank R's local gradient gets a NaN at step S (the step must report divergence)
 *   error  rank R's forward/backward pass fails at step S (an error no collective expected)
 *   exit   rank R dies (_exit(1)) at step S without a word to its peers
 * hn_fault returns 1 when this rank should fail at `point` (step < 0: any step). Unset, it
 * costs one getenv on the first call. */
int hn_fault(const char *point, long step);

#endif
