/* test_exchange.c - the gradient exchange under MPI (run on 1, 2 and 4 ranks by CTest).
 *
 * Checks, for both engines (node-shared buffers, and MPI_Iallreduce in place and with a receive
 * buffer) and for the shared engine across "nodes" (HAMNET_EXCHANGE_NODE_SIZE): exact averaging
 * for awkward sizes and bucket sizes, with and without overlap; fixed bucket order and the
 * timeline (buckets start during a simulated backward pass and progress while it computes);
 * the choice of engine and its reasons; the benchmark switch that skips the exchange;
 * hn_mpi_agree and hn_mpi_check_same naming the failing rank on every rank.
 *
 * As a tool (scripts/mpi_allreduce_sweep.sh):
 *   test_exchange --sweep [--min BYTES] [--max BYTES] [--reps N] [--bucket-kb K]
 * prints one TSV line per message size: the best and median time of MPI_Allreduce (blocking),
 * of MPI_Iallreduce + MPI_Wait (the MPI engine's call, not in place) and of one whole
 * hn_exchange of that many bytes in buckets of K KiB (--exchange auto|shared|mpi, default
 * auto); rank 0 prints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "hamnet/timer.h"
#include "unit/hn_test.h"

static int rank, size;

/* A value every rank can compute, small integers so that float sums are exact. */
static hn_real value(int r, size_t i) { return (hn_real)((int)((i * 7 + (size_t)r * 13) % 97) - 48); }

/* Burn about `seconds` of CPU (a stand-in for one layer of the backward pass). */
static void compute(double seconds) {
  double t0 = hn_wtime();
  volatile double x = 1.0;
  while (hn_wtime() - t0 < seconds)
    for (int i = 0; i < 1000; i++)
      x = x * 1.0000001 + 1e-9;
}

/* One step: fill, begin, ready per "layer" from the end, finish; check the sums. */
static void check_sums(size_t n, size_t bucket_bytes, int overlap, size_t layer, hn_exchange_kind kind) {
  hn_real *g = hn_alloc(n, sizeof(hn_real), HN_MEM_GRADS, "grads");
  hn_exchange ex;
  CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, bucket_bytes, overlap, kind));
  for (int step = 0; step < 2; step++) {
    for (size_t i = 0; i < n; i++)
      g[i] = value(rank, i + (size_t)step);
    hn_exchange_begin(&ex);
    for (size_t first = n; first > 0;) { /* the backward pass finishes suffixes */
      first = first > layer ? first - layer : 0;
      hn_exchange_ready(&ex, first);
    }
    CHECK_OK(hn_exchange_finish(&ex));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
      double want = 0;
      for (int r = 0; r < size; r++)
        want += value(r, i + (size_t)step);
      if ((double)g[i] != want && bad++ == 0)
        CHECK((double)g[i] == want, "%s engine, n %zu bucket %zu overlap %d: g[%zu] = %g, want %g",
              hn_exchange_kind_name(ex.kind), n, bucket_bytes, overlap, i, (double)g[i], want);
    }
    CHECK(bad == 0, "%s engine, n %zu bucket %zu overlap %d: %zu wrong sums", hn_exchange_kind_name(ex.kind), n,
          bucket_bytes, overlap, bad);
  }
  if (size > 1) {
    CHECK(ex.stats.steps == 2, "steps %ld", ex.stats.steps);
    CHECK(ex.stats.buckets == 2L * ex.n_buckets, "buckets %ld of %d", ex.stats.buckets, ex.n_buckets);
    CHECK(ex.stats.started_early == (overlap ? 2L * ex.n_buckets : 0), "overlap %d: %ld buckets started early", overlap,
          ex.stats.started_early);
  }
  hn_exchange_destroy(&ex);
  hn_free(g);
}

/* Buckets are contiguous slices from the end, in order, covering the buffer exactly once. */
static void check_buckets(void) {
  size_t n = 10000;
  hn_real *g = hn_alloc(n, sizeof(hn_real), HN_MEM_GRADS, "grads");
  hn_exchange ex;
  CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, 4096, 1, HN_EXCHANGE_AUTO));
  CHECK(ex.bucket_elems == 4096 / sizeof(hn_real), "bucket elems %zu", ex.bucket_elems);
  size_t expect_hi = n, total = 0;
  for (int k = 0; k < ex.n_buckets; k++) {
    size_t lo, hi;
    hn_exchange_bucket_range(&ex, k, &lo, &hi);
    CHECK(hi == expect_hi && lo < hi, "bucket %d = [%zu, %zu)", k, lo, hi);
    total += hi - lo;
    expect_hi = lo;
  }
  CHECK(total == n && expect_hi == 0, "buckets cover %zu of %zu", total, n);
  hn_exchange_destroy(&ex);
  /* clamping: tiny and huge bucket sizes */
  CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, 1, 1, HN_EXCHANGE_AUTO));
  CHECK(ex.bucket_elems * sizeof(hn_real) == 4096, "minimum bucket %zu bytes", ex.bucket_elems * sizeof(hn_real));
  hn_exchange_destroy(&ex);
  hn_free(g);
}

/* Which engine runs, and why: auto takes the shared engine on this machine with several ranks;
 * one rank per "node" or uneven nodes fall back to MPI, and asking for shared there is an
 * error that says why. The shared engine moves the buffer and gives it back with its data. */
static void check_engines(void) {
  size_t n = 3000;
  hn_real *g = hn_alloc(n, sizeof(hn_real), HN_MEM_GRADS, "grads");
  for (size_t i = 0; i < n; i++)
    g[i] = value(rank, i);
  hn_real *before = g;
  hn_exchange ex;
  CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, 4096, 1, HN_EXCHANGE_AUTO));
  CHECK(ex.kind == (size > 1 ? HN_EXCHANGE_SHARED : HN_EXCHANGE_MPI), "auto on %d ranks chose %s (%s)", size,
        hn_exchange_kind_name(ex.kind), ex.engine_note);
  CHECK((g != before) == (size > 1), "the shared engine moves the buffer (%d ranks)", size);
  hn_exchange_destroy(&ex);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += g[i] != value(rank, i);
  CHECK(bad == 0, "%zu values lost moving the buffer into shared memory and back", bad);
  CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, 4096, 1, HN_EXCHANGE_MPI));
  CHECK(ex.kind == HN_EXCHANGE_MPI && ex.shared == NULL, "exchange = mpi: %s", ex.engine_note);
  hn_exchange_destroy(&ex);
  if (size > 1) {
    setenv("HAMNET_EXCHANGE_NODE_SIZE", "1", 1); /* one rank per node */
    CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, 4096, 1, HN_EXCHANGE_AUTO));
    CHECK(ex.kind == HN_EXCHANGE_MPI && strstr(ex.engine_note, "one rank per node"), "auto, 1 per node: %s",
          ex.engine_note);
    hn_exchange_destroy(&ex);
    int st = hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, 4096, 1, HN_EXCHANGE_SHARED);
    CHECK(st == HN_EINVAL && strstr(hn_errmsg(), "exchange = shared") && strstr(hn_errmsg(), "one rank per node"),
          "shared forced, 1 per node: status %d, %s", st, hn_errmsg());
    hn_error_clear();
    if (size > 2) { /* nodes of 3 and 1 (4 ranks) */
      setenv("HAMNET_EXCHANGE_NODE_SIZE", "3", 1);
      CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, 4096, 1, HN_EXCHANGE_AUTO));
      CHECK(ex.kind == HN_EXCHANGE_MPI && strstr(ex.engine_note, "different numbers of ranks"),
            "auto, uneven nodes: %s", ex.engine_note);
      hn_exchange_destroy(&ex);
    }
    unsetenv("HAMNET_EXCHANGE_NODE_SIZE");
  }
  hn_free(g);
}

/* A simulated backward pass: 32 "layers" of compute, each finishing one bucket. Every bucket
 * must start during the pass, and with several ranks the Testsome calls between layers must
 * complete some of them before the pass ends (Open MPI progresses only inside MPI calls). */
static void check_overlap(hn_exchange_kind kind) {
  const int layers = 32;
  const size_t layer = 64 * 1024; /* elements: 256 KiB in float */
  const size_t n = layer * layers;
  hn_real *g = hn_alloc(n, sizeof(hn_real), HN_MEM_GRADS, "grads");
  hn_exchange ex;
  CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, layer * sizeof(hn_real), 1, kind));
  CHECK(ex.n_buckets == layers, "%d buckets", ex.n_buckets);
  for (int step = 0; step < 3; step++) {
    for (size_t i = 0; i < n; i++)
      g[i] = value(rank, i);
    MPI_Barrier(MPI_COMM_WORLD);
    hn_exchange_begin(&ex);
    for (int j = layers - 1; j >= 0; j--) {
      compute(0.002);
      hn_exchange_ready(&ex, (size_t)j * layer);
    }
    CHECK_OK(hn_exchange_finish(&ex));
    if (size == 1) /* one rank: no communication, no timeline */
      continue;
    for (int k = 0; k < ex.n_buckets; k++)
      CHECK(ex.t_start[k] >= 0 && ex.t_start[k] <= ex.t_finish && ex.t_done[k] >= ex.t_start[k],
            "bucket %d: started %.4f s, done %.4f s, finish entered %.4f s", k, ex.t_start[k], ex.t_done[k],
            ex.t_finish);
    for (int k = 1; k < ex.n_buckets; k++)
      CHECK(ex.t_start[k] >= ex.t_start[k - 1], "bucket %d started before bucket %d", k, k - 1);
  }
  if (size > 1) {
    CHECK(ex.stats.started_early == 3L * layers, "started early: %ld of %d", ex.stats.started_early, 3 * layers);
    CHECK(ex.stats.done_early >= 1, "%s engine: no bucket completed during the simulated backward pass: no "
          "progress", hn_exchange_kind_name(ex.kind));
    if (rank == 0)
      printf("overlap, %s engine: %ld of %ld buckets complete before finish; waited %.2f ms per step in finish, %.2f ms per "
             "step in the exchange's calls\n", hn_exchange_kind_name(ex.kind), ex.stats.done_early, ex.stats.buckets, 1e3 * ex.stats.wait_seconds / 3,
             1e3 * ex.stats.comm_seconds / 3);
  }
  hn_exchange_destroy(&ex);
  hn_free(g);
}

static void check_skip(void) {
  size_t n = 5000;
  hn_real *g = hn_alloc(n, sizeof(hn_real), HN_MEM_GRADS, "grads");
  setenv("HAMNET_BENCH_SKIP_EXCHANGE", "1", 1);
  hn_exchange ex;
  CHECK_OK(hn_exchange_create(&ex, MPI_COMM_WORLD, &g, n, 4096, 1, HN_EXCHANGE_AUTO));
  unsetenv("HAMNET_BENCH_SKIP_EXCHANGE");
  for (size_t i = 0; i < n; i++)
    g[i] = value(rank, i);
  hn_exchange_begin(&ex);
  hn_exchange_ready(&ex, 0);
  CHECK_OK(hn_exchange_finish(&ex));
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += g[i] != value(rank, i);
  CHECK(bad == 0 && ex.stats.steps == 0, "skip: %zu values changed, %ld steps counted", bad, ex.stats.steps);
  hn_exchange_destroy(&ex);
  hn_free(g);
}

static void check_agreement(void) {
  /* the last rank fails; everybody learns its status and reason */
  int local = rank == size - 1 ? hn_fail(HN_EIO, "cannot open /nowhere/x.h5: marker-%d", rank) : HN_OK;
  int st = hn_mpi_agree(local);
  CHECK(st == HN_EIO, "agreed status %d", st);
  char want[64];
  snprintf(want, sizeof want, "marker-%d", size - 1);
  CHECK(strstr(hn_errmsg(), want) != NULL, "rank %d message lacks the failing rank's reason: %s", rank, hn_errmsg());
  if (size > 1 && rank != size - 1) {
    snprintf(want, sizeof want, "rank %d failed", size - 1);
    CHECK(strstr(hn_errmsg(), want) != NULL, "message does not name the rank: %s", hn_errmsg());
  }
  CHECK(hn_mpi_agree(HN_OK) == HN_OK, "agreement on success");
  /* several failures: the largest status wins */
  st = hn_mpi_agree(rank == 0 ? hn_fail(HN_EINVAL, "a") : rank == size - 1 ? hn_fail(HN_ENOMEM, "b") : HN_OK);
  CHECK(st == (size > 1 ? HN_ENOMEM : HN_EINVAL), "worst status %d", st);
  hn_error_clear();

  int same[3] = {1, 2, 3};
  CHECK_OK(hn_mpi_check_same("the test buffer", same, sizeof same));
  if (rank == size - 1)
    same[2] = 4;
  st = hn_mpi_check_same("the test buffer", same, sizeof same);
  if (size > 1) {
    char who[32];
    snprintf(who, sizeof who, "rank %d", size - 1);
    CHECK(st == HN_EMPI && strstr(hn_errmsg(), "the test buffer") && strstr(hn_errmsg(), who),
          "check_same: status %d, message %s", st, hn_errmsg());
  } else {
    CHECK(st == HN_OK, "one rank always agrees with itself");
  }
  hn_error_clear();
}

/* ---------------------------------------------------------------------------------------- */
/* the sweep tool */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One timed call of `method` (0 MPI_Allreduce, 1 MPI_Iallreduce + Wait, 2 hn_exchange) on count
 * elements; the slowest rank's time. */
static double time_once(int method, hn_real *a, hn_real **bp, int count, size_t bucket_kb, hn_exchange_kind kind) {
  hn_exchange ex;
  if (method == 2 && hn_exchange_create(&ex, MPI_COMM_WORLD, bp, (size_t)count, bucket_kb * 1024, 0, kind) != HN_OK)
    return NAN;
  hn_real *b = *bp;
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  if (method == 0) {
    MPI_Allreduce(a, b, count, HN_MPI_REAL, MPI_SUM, MPI_COMM_WORLD);
  } else if (method == 1) {
    MPI_Request req;
    MPI_Iallreduce(a, b, count, HN_MPI_REAL, MPI_SUM, MPI_COMM_WORLD, &req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
  } else { /* the buffer is final from the start: every bucket handed over at once */
    hn_exchange_begin(&ex);
    hn_exchange_ready(&ex, 0);
    hn_exchange_finish(&ex);
  }
  double t = MPI_Wtime() - t0;
  if (method == 2)
    hn_exchange_destroy(&ex);
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return t;
}

/* Repetitions are the outer loop, so that a burst of load from other processes spoils one
 * repetition of many sizes rather than every repetition of one size; best and median per size. */
static int sweep(size_t min_bytes, size_t max_bytes, int reps, size_t bucket_kb, hn_exchange_kind kind) {
  size_t max_n = max_bytes / sizeof(hn_real);
  int n_sizes = 0;
  for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= 2)
    n_sizes++;
  hn_real *a = hn_alloc(max_n, sizeof(hn_real), HN_MEM_GRADS, "send");
  hn_real *b = hn_alloc(max_n, sizeof(hn_real), HN_MEM_GRADS, "recv");
  double *t = malloc((size_t)3 * (size_t)n_sizes * (size_t)reps * sizeof(double));
  if (!a || !b || !t || n_sizes == 0)
    return 1;
  for (size_t i = 0; i < max_n; i++)
    a[i] = value(rank, i);
  for (int m = 0; m < 3; m++) /* warm-up: every path once at the largest size */
    time_once(m, a, &b, (int)max_n, bucket_kb, kind);
  for (int r = 0; r < reps; r++) {
    size_t bytes = min_bytes;
    for (int k = 0; k < n_sizes; k++, bytes *= 2)
      for (int m = 0; m < 3; m++)
        t[((size_t)m * n_sizes + (size_t)k) * (size_t)reps + (size_t)r] =
            time_once(m, a, &b, (int)(bytes / sizeof(hn_real)), bucket_kb, kind);
  }
  if (rank == 0) {
    printf("# MPI allreduce sweep: %d ranks, %s (%zu bytes per element), %d repetitions (max over ranks, then "
           "best/median; sizes interleaved within each repetition); exchange engine %s\n", size, HN_REAL_NAME,
           sizeof(hn_real), reps, hn_exchange_kind_name(kind));
    printf("bytes\tallreduce_best_s\tallreduce_median_s\tiallreduce_best_s\tiallreduce_median_s\t"
           "exchange_best_s\texchange_median_s\n");
    size_t bytes = min_bytes;
    for (int k = 0; k < n_sizes; k++, bytes *= 2) {
      printf("%zu", bytes);
      for (int m = 0; m < 3; m++) {
        double *v = t + ((size_t)m * n_sizes + (size_t)k) * (size_t)reps;
        qsort(v, (size_t)reps, sizeof(double), cmp_double);
        printf("\t%.9f\t%.9f", v[0], v[reps / 2]);
      }
      printf("\n");
    }
    fflush(stdout);
  }
  free(t);
  hn_free(a);
  hn_free(b);
  return 0;
}

int main(int argc, char **argv) {
  if (hn_mpi_init(&argc, &argv, NULL) != HN_OK)
    return 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc > 1 && strcmp(argv[1], "--sweep") == 0) {
    size_t lo = 8, hi = (size_t)64 << 20, kb = 1024;
    int reps = 20;
    hn_exchange_kind kind = HN_EXCHANGE_AUTO;
    for (int i = 2; i + 1 < argc; i += 2) {
      if (strcmp(argv[i], "--min") == 0)
        lo = (size_t)atoll(argv[i + 1]);
      else if (strcmp(argv[i], "--max") == 0)
        hi = (size_t)atoll(argv[i + 1]);
      else if (strcmp(argv[i], "--reps") == 0)
        reps = atoi(argv[i + 1]);
      else if (strcmp(argv[i], "--bucket-kb") == 0)
        kb = (size_t)atoll(argv[i + 1]);
      else if (strcmp(argv[i], "--exchange") == 0)
        kind = strcmp(argv[i + 1], "mpi") == 0 ? HN_EXCHANGE_MPI
               : strcmp(argv[i + 1], "shared") == 0 ? HN_EXCHANGE_SHARED : HN_EXCHANGE_AUTO;
    }
    if (lo < sizeof(hn_real))
      lo = sizeof(hn_real);
    int rc = sweep(lo, hi, reps < 1 ? 1 : reps, kb, kind);
    hn_mpi_finalize();
    return rc;
  }

  check_buckets();
  check_engines();
  const size_t sizes[] = {1, 1023, 1024, 1025, 100003};
  const size_t buckets[] = {4096, 8192, 1 << 20};
  /* the shared engine (auto), on one node and - 4 ranks - on two "nodes" of 2 */
  for (int nodes = 1; nodes <= (size == 4 ? 2 : 1); nodes++) {
    if (nodes == 2)
      setenv("HAMNET_EXCHANGE_NODE_SIZE", "2", 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      for (size_t j = 0; j < sizeof buckets / sizeof buckets[0]; j++)
        for (int overlap = 0; overlap <= 1; overlap++)
          check_sums(sizes[i], buckets[j], overlap, 777, HN_EXCHANGE_AUTO);
    check_overlap(HN_EXCHANGE_AUTO);
    unsetenv("HAMNET_EXCHANGE_NODE_SIZE");
  }
  /* the MPI engine: in place (hamnet's default algorithm, set by hn_mpi_init) and with a
   * receive buffer */
  const char *algs[] = {"3", "0"};
  for (int a = 0; a < 2; a++) {
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", algs[a], 1);
    hn_real *one = hn_alloc(1, sizeof(hn_real), HN_MEM_GRADS, "probe");
    hn_exchange probe;
    CHECK_OK(hn_exchange_create(&probe, MPI_COMM_WORLD, &one, 1, 4096, 1, HN_EXCHANGE_MPI));
    CHECK((probe.recv != NULL) == (size > 1 && a == 1), "algorithm %s: receive buffer %p", algs[a],
          (void *)probe.recv);
    hn_exchange_destroy(&probe);
    hn_free(one);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      for (size_t j = 0; j < sizeof buckets / sizeof buckets[0]; j++)
        for (int overlap = 0; overlap <= 1; overlap++)
          check_sums(sizes[i], buckets[j], overlap, 777, HN_EXCHANGE_MPI);
  }
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 1);
  check_overlap(HN_EXCHANGE_MPI);
  check_skip();
  check_agreement();

  int failed = hn_test_failed;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    printf("test_exchange: %d ranks, %d checks, %d failed (all ranks)\n", size, hn_test_checked, failed);
  hn_mpi_finalize();
  return failed ? 1 : 0;
}
