/* mpi_context.c - MPI start-up, status agreement and the run banner (see hamnet/parallel.h). */
#include "hamnet/parallel.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/build_info.h"
#include "hamnet/error.h"
#include "hamnet/log.h"

#include <cblas.h>

static hn_mpi world = {MPI_COMM_NULL, 0, 1, 0};

int hn_mpi_init(int *argc, char ***argv, hn_mpi *ctx) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "MPI_Init_thread failed");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  world.comm = MPI_COMM_WORLD;
  MPI_Comm_rank(world.comm, &world.rank);
  MPI_Comm_size(world.comm, &world.size);
  world.thread_level = provided;
  hn_log_init(world.rank, world.size);
  if (ctx)
    *ctx = world;
  return HN_OK;
}

void hn_mpi_finalize(void) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized)
    MPI_Finalize();
}

const hn_mpi *hn_mpi_world(void) { return &world; }

int hn_mpi_agree(int local_status) {
  if (world.size <= 1 || world.comm == MPI_COMM_NULL)
    return local_status;
  /* (status, rank) pairs: the largest status wins, ties go to the lowest rank. */
  int in[2] = {local_status, -world.rank}, out[2];
  if (MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MAXLOC, world.comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "MPI_Allreduce failed while ranks compared their status");
  if (out[0] != HN_OK && local_status == HN_OK)
    hn_fail(out[0], "rank %d failed (%s); see its message", -out[1], hn_status_name(out[0]));
  return out[0];
}

static const char *thread_level_name(int level) {
  switch (level) {
  case MPI_THREAD_SINGLE: return "single";
  case MPI_THREAD_FUNNELED: return "funneled";
  case MPI_THREAD_SERIALIZED: return "serialized";
  case MPI_THREAD_MULTIPLE: return "multiple";
  default: return "?";
  }
}

static const char *blas_config(void) {
#ifdef HN_HAVE_OPENBLAS
  return openblas_get_config();
#else
  return "not OpenBLAS";
#endif
}

void hn_mpi_banner(const char *command, int threads) {
  if (world.rank != 0)
    return;
  const char *bind = getenv("OMP_PROC_BIND");
  const char *places = getenv("OMP_PLACES");
  char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi_version, &len);
  char *nl = strchr(mpi_version, ',');
  if (nl)
    *nl = '\0';
  hn_log_info("hamnet %s (%s) %s | precision %s | %d rank%s x %d thread%s | OMP_PROC_BIND=%s "
              "OMP_PLACES=%s | BLAS %s (%s) | %s, thread level %s%s",
              HN_VERSION, HN_GIT_HASH, command, HN_REAL_NAME, world.size, world.size == 1 ? "" : "s",
              threads, threads == 1 ? "" : "s", bind ? bind : "unset", places ? places : "unset",
              HN_BLAS_VENDOR, blas_config(), mpi_version, thread_level_name(world.thread_level),
              world.thread_level < MPI_THREAD_FUNNELED ? " (WARNING: below funneled)" : "");
}

static uint64_t fnv1a(const void *buf, size_t len) {
  const unsigned char *p = buf;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

int hn_mpi_check_same(const char *what, const void *buf, size_t len) {
  if (world.size <= 1)
    return HN_OK;
  uint64_t mine = fnv1a(buf, len), root = mine;
  if (MPI_Bcast(&root, 1, MPI_UINT64_T, 0, world.comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "MPI_Bcast failed while comparing %s across ranks", what);
  int differs = mine != root ? world.rank : world.size, first = world.size;
  if (MPI_Allreduce(&differs, &first, 1, MPI_INT, MPI_MIN, world.comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "MPI_Allreduce failed while comparing %s across ranks", what);
  if (first < world.size)
    return hn_fail(HN_EMPI, "%s differs between rank 0 and rank %d: every rank must run the same build "
                   "with the same config and data files", what, first);
  return HN_OK;
}
