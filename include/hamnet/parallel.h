/* hamnet/parallel.h - the MPI context: start-up, the run banner, cross-rank agreement.
 *
 * Every `hamnet` process starts MPI (a plain `hamnet ...` is a one-rank job). The only global
 * state in hamnet is the communicator handle kept here. */
#ifndef HAMNET_PARALLEL_H
#define HAMNET_PARALLEL_H

#include <mpi.h>

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
 * logging with the rank, and installs MPI_ERRORS_RETURN so MPI failures become statuses. */
int hn_mpi_init(int *argc, char ***argv, hn_mpi *ctx);
void hn_mpi_finalize(void);
/* The context set up by hn_mpi_init (rank 0 of 1 before it). */
const hn_mpi *hn_mpi_world(void);

/* The status every rank must agree on: the worst (largest) of the ranks' statuses. Used after
 * any step that can fail on one rank only (opening a file, allocating), so that all ranks take
 * the same path and nobody waits in a collective for a rank that has given up. When the local
 * status is HN_OK but another rank failed, the local message says which rank failed. */
int hn_mpi_agree(int local_status);

/* Print the start-of-run banner on rank 0: version, git hash, precision, ranks x threads,
 * binding, BLAS, MPI thread level. */
void hn_mpi_banner(const char *command, int threads);

#endif

/* --- gradient exchange -------------------------------------------------------------------
 * Averages the flat gradient buffer over the ranks in buckets: contiguous slices taken from
 * the END of the buffer (bucket 0 = the last bucket_elems elements: classifier and last
 * layers, which the backward pass finishes first). hn_exchange_ready is the model's
 * grad-ready callback: it starts MPI_Iallreduce on every bucket that lies entirely in the
 * finished suffix, in bucket order (the same on every rank), and tests the outstanding ones
 * so that Open MPI progresses them while the backward pass goes on. hn_exchange_finish starts
 * the rest and waits. Sums: the model already scaled by 1 / global batch, so the sum is the
 * mean. With one rank, or overlap = 0 (everything started in finish), the calls are cheap. */
typedef struct {
  MPI_Comm comm;
  int size;
  hn_real *grads;
  size_t n;
  size_t bucket_elems;
  int n_buckets;
  int next;           /* next bucket to start */
  int overlap;
  MPI_Request *req;
  double wait_seconds; /* accumulated time blocked in hn_exchange_finish */
  double comm_seconds; /* accumulated time inside MPI calls of the exchange */
  long steps;
} hn_exchange;

int hn_exchange_create(hn_exchange *ex, MPI_Comm comm, hn_real *grads, size_t n, size_t bucket_bytes, int overlap);
void hn_exchange_destroy(hn_exchange *ex);
/* Start of a step (before the backward pass). */
void hn_exchange_begin(hn_exchange *ex);
/* hn_grad_ready_fn: grads[first_final .. n) are final on this rank. ctx is the hn_exchange. */
void hn_exchange_ready(void *ctx, size_t first_final);
/* Start what is left, wait for all buckets; HN_EMPI on failure. */
int hn_exchange_finish(hn_exchange *ex);

/* Check that `len` bytes at `buf` are the same on every rank (a 64-bit hash is compared).
 * On a mismatch every rank returns HN_EMPI with a message naming `what` and the first rank
 * that differs from rank 0 - used at start-up for the config, the data shapes and the build
 * precision, so that inconsistent ranks fail together instead of hanging later. */
int hn_mpi_check_same(const char *what, const void *buf, size_t len);
