/* mpi_context.c - MPI start-up and exit, status agreement, cross-rank checks and the run
 * banner (see hamnet/parallel.h). */
#include "hamnet/parallel.h"

#include <errno.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamnet/build_info.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/timer.h"

#include <cblas.h>

static hn_mpi world = {MPI_COMM_NULL, 0, 1, 0};
static MPI_Comm exit_comm = MPI_COMM_NULL; /* private: hn_mpi_exit's barrier never meets another collective */

#define HN_EXIT_DEADLINE_DEFAULT 10
#define HN_AGREE_MSG 400 /* characters of the failing rank's message passed to the others */

int hn_mpi_init(int *argc, char ***argv, hn_mpi *ctx) {
  int provided = 0;
  /* Open MPI's libnbc runs MPI_Iallreduce below 4 ranks as a binomial tree: one rank receives,
   * sums and sends back every bucket. Rabenseifner's reduce-scatter + allgather shares that work
   * evenly (1 MiB buckets on 2 ranks: 0.14 ms instead of 0.22 ms here); from 4 ranks on it is
   * libnbc's own choice for our buffers. A default only: a value the user set wins, and other
   * MPI libraries ignore the variable. */
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "MPI_Init_thread failed");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  world.comm = MPI_COMM_WORLD;
  MPI_Comm_rank(world.comm, &world.rank);
  MPI_Comm_size(world.comm, &world.size);
  world.thread_level = provided;
  hn_log_init(world.rank, world.size);
  if (world.size > 1 && MPI_Comm_dup(MPI_COMM_WORLD, &exit_comm) != MPI_SUCCESS)
    exit_comm = MPI_COMM_NULL;
  if (ctx)
    *ctx = world;
  return HN_OK;
}

void hn_mpi_finalize(void) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) {
    if (exit_comm != MPI_COMM_NULL)
      MPI_Comm_free(&exit_comm);
    MPI_Finalize();
  }
}

/* HAMNET_EXIT_DEADLINE: seconds 0..86400 (0 = no deadline). */
static double exit_deadline(void) {
  const char *s = getenv("HAMNET_EXIT_DEADLINE");
  if (!s || !*s)
    return HN_EXIT_DEADLINE_DEFAULT;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end != '\0' || !(v >= 0 && v <= 86400)) {
    fprintf(stderr, "hamnet: HAMNET_EXIT_DEADLINE = '%s' is not a number of seconds from 0 to 86400; using %d\n",
            s, HN_EXIT_DEADLINE_DEFAULT);
    return HN_EXIT_DEADLINE_DEFAULT;
  }
  return v;
}

int hn_mpi_exit(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized)
    return exit_code;
  fflush(stdout);
  fflush(stderr);
  if (exit_code != 0 && world.size > 1 && exit_comm != MPI_COMM_NULL) {
    double deadline = exit_deadline();
    MPI_Request req = MPI_REQUEST_NULL;
    int arrived = 0;
    if (MPI_Ibarrier(exit_comm, &req) == MPI_SUCCESS) {
      double t0 = hn_wtime();
      struct timespec nap = {0, 2000000}; /* 2 ms between tests: do not steal the peers' cores */
      while (!arrived && (deadline == 0 || hn_wtime() - t0 < deadline)) {
        if (MPI_Test(&req, &arrived, MPI_STATUS_IGNORE) != MPI_SUCCESS)
          break;
        if (!arrived)
          nanosleep(&nap, NULL);
      }
    }
    if (!arrived) {
      fprintf(stderr, "hamnet: rank %d stopped with exit code %d but the other ranks did not (they are still "
                      "working or blocked waiting for it): aborting the whole job after %.0f s "
                      "(HAMNET_EXIT_DEADLINE)\n", world.rank, exit_code, deadline);
      fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, exit_code);
    }
  }
  hn_mpi_finalize();
  return exit_code;
}

const hn_mpi *hn_mpi_world(void) { return &world; }

int hn_mpi_agree_comm(MPI_Comm comm, int local_status) {
  int size = 1, rank = 0;
  if (comm == MPI_COMM_NULL)
    return local_status;
  MPI_Comm_size(comm, &size);
  if (size <= 1)
    return local_status;
  MPI_Comm_rank(comm, &rank);
  /* (status, rank) pairs: the largest status wins, ties go to the lowest rank. */
  int in[2] = {local_status, -rank}, out[2];
  if (MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MAXLOC, comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "MPI_Allreduce failed while ranks compared their status");
  if (out[0] == HN_OK)
    return HN_OK;
  /* Pass the failing rank's message on, so that every rank's output says what went wrong. */
  int root = -out[1];
  char msg[HN_AGREE_MSG + 1];
  memset(msg, 0, sizeof msg);
  if (rank == root)
    snprintf(msg, sizeof msg, "%s", hn_errmsg());
  if (MPI_Bcast(msg, HN_AGREE_MSG, MPI_CHAR, root, comm) != MPI_SUCCESS)
    msg[0] = '\0';
  if (local_status == HN_OK)
    hn_fail(out[0], "rank %d failed (%s)%s%s", root, hn_status_name(out[0]), msg[0] ? ": " : "; see its message",
            msg);
  return out[0];
}

int hn_mpi_agree(int local_status) { return hn_mpi_agree_comm(world.comm, local_status); }

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

int hn_mpi_check_same_comm(MPI_Comm comm, const char *what, const void *buf, size_t len) {
  int size = 1, rank = 0;
  if (comm == MPI_COMM_NULL)
    return HN_OK;
  MPI_Comm_size(comm, &size);
  if (size <= 1)
    return HN_OK;
  MPI_Comm_rank(comm, &rank);
  uint64_t mine = fnv1a(buf, len) ^ (uint64_t)len, root = mine;
  if (MPI_Bcast(&root, 1, MPI_UINT64_T, 0, comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "MPI_Bcast failed while comparing %s across ranks", what);
  int differs = mine != root ? rank : size, first = size;
  if (MPI_Allreduce(&differs, &first, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "MPI_Allreduce failed while comparing %s across ranks", what);
  if (first < size)
    return hn_fail(HN_EMPI, "%s differs between rank 0 and rank %d: every rank must run the same build "
                   "with the same config, command line and data files", what, first);
  return HN_OK;
}

int hn_mpi_check_same(const char *what, const void *buf, size_t len) {
  return hn_mpi_check_same_comm(world.comm, what, buf, len);
}

/* ---------------------------------------------------------------------------------------- */
/* test-only fault injection */

int hn_fault(const char *point, long step) {
  static int checked = 0, armed = 0, rank_wanted = 0;
  static long step_wanted = 3;
  static char what[32];
  if (!checked) {
    checked = 1;
    const char *p = getenv("HAMNET_FAULT");
    if (p && *p) {
      snprintf(what, sizeof what, "%s", p);
      const char *r = getenv("HAMNET_FAULT_RANK"), *s = getenv("HAMNET_FAULT_STEP");
      rank_wanted = r && *r ? atoi(r) : 0;
      step_wanted = s && *s ? atol(s) : 3;
      armed = 1;
    }
  }
  if (!armed || world.rank != rank_wanted || strcmp(point, what) != 0)
    return 0;
  return step < 0 || step == step_wanted;
}
