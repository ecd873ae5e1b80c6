/* test_spectra.c - ScaLAPACK spectra (hamnet/diag.h) against LAPACKE, on 1, 2 and 4 ranks.
 *
 * For every BLACS grid that fits the job (1x1, 1x2, 2x1, 2x2, 1x4), for widths below the
 * distributed threshold (each rank computes its own matrices on its 1x1 grid) and above it
 * (block-cyclic over the grid, collective), the singular values (PDGESVD), the eigenvalues of
 * the symmetric part (PDSYEVD) and the eigenvalues of the matrix (PDGEHRD + PDHSEQR) must
 * equal LAPACKE's dgesvd / dsyev / dgeev on the same matrix to 1e-8 relative to the matrix's
 * scale. Then hn_spectra_layers on a whole model must give every rank the same per-layer
 * results, equal to LAPACKE layer by layer. */
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/diag.h"
#include "hamnet/error.h"
#include "hamnet/model.h"
#include "hamnet/parallel.h"
#include "hamnet/rng.h"
#include "unit/hn_test.h"

static const double TOL = 1e-8;
static int rank_, size_;

/* A reproducible matrix: entries N(0, s^2/n) from a simple LCG + Box-Muller (seeded per matrix, the
 * same on every rank). kind 0: general, 1: antisym operator K - K^T - gamma I. */
static void make_matrix(int n, unsigned seed, double s, int kind, double *K, double *A) {
  unsigned long long x = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (int i = 0; i < n * n; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((x >> 11) + 0.5) / 9007199254740992.0;
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = ((x >> 11) + 0.5) / 9007199254740992.0;
    K[i] = s / sqrt((double)n) * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
  }
  for (int r = 0; r < n; r++)
    for (int c = 0; c < n; c++)
      A[r * n + c] = kind == 1 ? K[r * n + c] - K[c * n + r] - (r == c ? 0.01 : 0.0) : K[r * n + c];
}

/* Reference with LAPACKE (row-major). */
static void reference(int n, const double *K, const double *A, double *sv, double *sym, double *wr, double *wi) {
  double *t = malloc((size_t)n * n * sizeof *t), *superb = malloc((size_t)n * sizeof *superb);
  memcpy(t, K, (size_t)n * n * sizeof *t);
  int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', n, n, t, n, sv, NULL, 1, NULL, 1, superb);
  CHECK(info == 0, "dgesvd info %d", info);
  for (int r = 0; r < n; r++)
    for (int c = 0; c < n; c++)
      t[r * n + c] = 0.5 * (A[r * n + c] + A[c * n + r]);
  info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', n, t, n, sym);
  CHECK(info == 0, "dsyev info %d", info);
  memcpy(t, A, (size_t)n * n * sizeof *t);
  info = LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', n, t, n, wr, wi, NULL, 1, NULL, 1);
  CHECK(info == 0, "dgeev info %d", info);
  free(t);
  free(superb);
}

/* Largest distance from an eigenvalue of set 1 to its nearest unused partner in set 2. */
static double eig_distance(int n, const double *wr1, const double *wi1, const double *wr2, const double *wi2) {
  char *used = calloc((size_t)n, 1);
  double worst = 0;
  for (int i = 0; i < n; i++) {
    int best = -1;
    double bd = INFINITY;
    for (int k = 0; k < n; k++) {
      double dd = hypot(wr1[i] - wr2[k], wi1[i] - wi2[k]);
      if (!used[k] && dd < bd) {
        bd = dd;
        best = k;
      }
    }
    if (best >= 0)
      used[best] = 1;
    worst = bd > worst ? bd : worst;
  }
  free(used);
  return worst;
}

static double max_abs_diff(int n, const double *a, const double *b) {
  double m = 0;
  for (int i = 0; i < n; i++)
    m = fabs(a[i] - b[i]) > m ? fabs(a[i] - b[i]) : m;
  return m;
}

/* One matrix through hn_spectra_matrix, compared with LAPACKE. */
static void check_matrix(hn_spectra *sp, int distributed, int n, unsigned seed, int kind, const char *what) {
  double *K = malloc((size_t)n * n * sizeof *K), *A = malloc((size_t)n * n * sizeof *A);
  double *v = malloc((size_t)8 * n * sizeof *v);
  double *sv = v, *sym = v + n, *wr = v + 2 * n, *wi = v + 3 * n;
  double *rsv = v + 4 * n, *rsym = v + 5 * n, *rwr = v + 6 * n, *rwi = v + 7 * n;
  for (int i = 0; i < 8 * n; i++)
    v[i] = NAN;
  make_matrix(n, seed, 1.5, kind, K, A);
  int status = hn_spectra_matrix(sp, distributed, n, K, A, sv, sym, wr, wi);
  int pr, pc;
  hn_spectra_grid(sp, &pr, &pc);
  int in_grid = !distributed || rank_ < pr * pc;
  CHECK(status == HN_OK, "%s n=%d: status %d: %s", what, n, status, hn_errmsg());
  if (status == HN_OK && in_grid) {
    reference(n, K, A, rsv, rsym, rwr, rwi);
    double scale = rsv[0] > 1 ? rsv[0] : 1;
    double dsv = max_abs_diff(n, sv, rsv), dsym = max_abs_diff(n, sym, rsym);
    double deig = eig_distance(n, wr, wi, rwr, rwi);
    CHECK(dsv <= TOL * scale, "%s n=%d grid %dx%d rank %d: singular values differ from LAPACKE by %.3g", what, n,
          pr, pc, rank_, dsv);
    CHECK(dsym <= TOL * scale, "%s n=%d grid %dx%d rank %d: symmetric eigenvalues differ by %.3g", what, n, pr, pc,
          rank_, dsym);
    CHECK(deig <= TOL * scale, "%s n=%d grid %dx%d rank %d: eigenvalues differ from LAPACKE dgeev by %.3g", what, n,
          pr, pc, rank_, deig);
    if (kind == 1) { /* antisym operator: eigenvalues -gamma +- i omega exactly (normal matrix) */
      double worst = 0;
      for (int i = 0; i < n; i++)
        worst = fabs(wr[i] + 0.01) > worst ? fabs(wr[i] + 0.01) : worst;
      CHECK(worst <= TOL * scale, "%s n=%d: antisym eigenvalues have real parts off -gamma by %.3g", what, n, worst);
      CHECK(fabs(sym[n - 1] + 0.01) <= TOL * scale, "%s n=%d: log norm of the antisym operator %.17g != -gamma",
            what, n, sym[n - 1]);
    }
    if (rank_ == 0)
      printf("  %-12s n=%3d grid %dx%d rank %d: |dsv| %.2e |dsym| %.2e |deig| %.2e\n", what, n, pr, pc, rank_, dsv,
             dsym, deig);
  }
  free(K);
  free(A);
  free(v);
}

/* The whole-model path: every rank gets every layer, equal to LAPACKE. */
static void check_layers(hn_spectra *sp, hn_arch arch, int width, int depth) {
  hn_model_spec spec = {.arch = arch, .activation = HN_ACT_TANH, .opening = HN_OPEN_PAD, .width = width,
                        .depth = depth, .n_features = 2, .n_classes = 2, .final_time = 3.0, .gamma = 0.01};
  hn_model m;
  CHECK_OK(hn_model_create(&m, &spec));
  hn_model_init_params(&m, 7, 1.5);
  hn_layer_spectrum *ls = calloc((size_t)depth, sizeof *ls);
  double *sv = calloc((size_t)depth * width, sizeof *sv), *er = calloc((size_t)depth * width, sizeof *er);
  double *ei = calloc((size_t)depth * width, sizeof *ei);
  CHECK_OK(hn_spectra_layers(sp, &m.layout, m.params, ls, sv, er, ei));
  const int euler = arch == HN_ARCH_RESNET || arch == HN_ARCH_ANTISYM;
  double *K = malloc((size_t)width * width * sizeof *K), *A = malloc((size_t)width * width * sizeof *A);
  double *r = malloc((size_t)4 * width * sizeof *r);
  double worst = 0;
  for (int j = 0; j < depth; j++) {
    const hn_real *Kj = hn_layer_K(&m.layout, m.params, j);
    for (int i = 0; i < width * width; i++)
      K[i] = (double)Kj[i];
    for (int a = 0; a < width; a++)
      for (int b = 0; b < width; b++)
        A[a * width + b] = arch == HN_ARCH_ANTISYM ? K[a * width + b] - K[b * width + a] - (a == b ? 0.01 : 0.0)
                                                   : K[a * width + b];
    reference(width, K, A, r, r + width, r + 2 * width, r + 3 * width);
    double scale = r[0] > 1 ? r[0] : 1;
    double d = fmax(fabs(ls[j].sv_max - r[0]), fabs(ls[j].sv_min - r[width - 1]));
    d = fmax(d, max_abs_diff(width, sv + (size_t)j * width, r));
    CHECK(fabs(ls[j].h_sv_max - 3.0 / depth * r[0]) <= TOL * scale, "layer %d: h_sv_max %.17g", j, ls[j].h_sv_max);
    if (euler) {
      d = fmax(d, fabs(ls[j].log_norm - r[2 * width - 1]));
      d = fmax(d, eig_distance(width, er + (size_t)j * width, ei + (size_t)j * width, r + 2 * width, r + 3 * width));
    } else {
      CHECK(isnan(ls[j].log_norm) && isnan(er[(size_t)j * width]), "layer %d: Verlet architectures have no log norm", j);
    }
    worst = fmax(worst, d / scale);
  }
  CHECK(worst <= TOL, "%s width %d depth %d: per-layer spectra differ from LAPACKE by %.3g (relative)",
        hn_arch_name(arch), width, depth, worst);
  /* every rank must hold the same numbers */
  double local = 0;
  for (int j = 0; j < depth; j++)
    local += ls[j].sv_max * (j + 1) + (euler ? ls[j].log_norm : 0);
  double lo = local, hi = local;
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  CHECK(lo == hi, "ranks disagree on the layer spectra (%.17g vs %.17g)", lo, hi);
  if (rank_ == 0)
    printf("  layers %-11s width %3d depth %2d: worst relative difference %.2e\n", hn_arch_name(arch), width, depth,
           worst);
  free(K);
  free(A);
  free(r);
  free(ls);
  free(sv);
  free(er);
  free(ei);
  hn_model_destroy(&m);
}

int main(int argc, char **argv) {
  hn_mpi mpi;
  if (hn_mpi_init(&argc, &argv, &mpi) != HN_OK)
    return 1;
  rank_ = mpi.rank;
  size_ = mpi.size;
  /* the LAPACKE references run on one thread: idle OpenMP workers spinning after them would
   * starve the other ranks' ScaLAPACK when ranks share cores (CTest runs 4 ranks x 2 threads) */
  omp_set_num_threads(1);
  const int grids[][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {1, 4}};
  const int threshold = 48; /* CI-sized: below = 20 (and tiny sizes), above = 64 and 100 */
  for (size_t g = 0; g < sizeof grids / sizeof grids[0]; g++) {
    if (grids[g][0] * grids[g][1] > size_)
      continue;
    hn_spectra *sp = NULL;
    CHECK_OK(hn_spectra_create(&sp, MPI_COMM_WORLD, grids[g][0], grids[g][1], threshold));
    if (!sp)
      continue;
    if (rank_ == 0)
      printf("grid %dx%d on %d rank%s\n", grids[g][0], grids[g][1], size_, size_ == 1 ? "" : "s");
    /* below the threshold: local 1x1 grids, a different matrix on each rank */
    const int small[] = {1, 2, 3, 5, 7, 20};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
      check_matrix(sp, 0, small[i], 100u + 10u * (unsigned)rank_ + (unsigned)i, 0, "local");
      check_matrix(sp, 0, small[i], 200u + 10u * (unsigned)rank_ + (unsigned)i, 1, "local-anti");
    }
    /* above: distributed over the grid */
    check_matrix(sp, 1, 64, 300, 0, "distributed");
    check_matrix(sp, 1, 100, 301, 0, "distributed");
    check_matrix(sp, 1, 64, 302, 1, "dist-anti");
    check_matrix(sp, 1, 100, 303, 1, "dist-anti");
    /* whole models: narrow layers spread over the ranks, wide ones over the grid */
    check_layers(sp, HN_ARCH_RESNET, 12, 9);
    check_layers(sp, HN_ARCH_ANTISYM, 12, 5);
    check_layers(sp, HN_ARCH_HAMILTONIAN, 12, 6);
    check_layers(sp, HN_ARCH_RESNET, 64, 3);
    check_layers(sp, HN_ARCH_LEAPFROG, 64, 2);
    hn_spectra_destroy(sp);
  }
  /* the default threshold (256) with the automatic grid: one matrix above it */
  {
    hn_spectra *sp = NULL;
    CHECK_OK(hn_spectra_create(&sp, MPI_COMM_WORLD, 0, 0, 256));
    if (sp) {
      check_matrix(sp, 1, 260, 400, 0, "default-thr");
      hn_spectra_destroy(sp);
    }
  }
  /* bad grids are errors, not hangs */
  hn_spectra *bad = NULL;
  CHECK(hn_spectra_create(&bad, MPI_COMM_WORLD, size_ + 1, 1, 16) == HN_EINVAL && bad == NULL,
        "a grid larger than the job must be rejected");
  int failed = hn_test_failed;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank_ == 0)
    printf("test_spectra on %d ranks: %d failures over all ranks\n", size_, failed);
  hn_mpi_finalize();
  return failed ? 1 : 0;
}
