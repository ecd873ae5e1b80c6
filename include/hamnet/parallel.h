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
