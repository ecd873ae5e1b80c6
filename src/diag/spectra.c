/* spectra.c - per-layer spectra with ScaLAPACK over BLACS grids (hamnet/diag.h "spectra").
 *
 * Why two kinds of grid: a layer of width 8..128 is far too small to split (ScaLAPACK's
 * communication would dominate), so such layers go whole to one rank each and are computed on
 * that rank's private 1x1 grid - the layers are spread over the ranks instead. A layer of width
 * >= distributed_width has width^3 work worth splitting, so those are computed one after the
 * other on one grid over all ranks, block-cyclically. Every rank holds all parameters (data
 * parallelism), so each rank fills its local blocks straight from its own copy: no scatter.
 * Results are combined with one MPI_Allreduce (each layer's numbers come from exactly one
 * rank, the others contribute zeros).
 *
 * Per matrix: PDGESVD (values only), PDSYEVD on (A + A^T)/2 (it always computes vectors too),
 * PDGEHRD + PDHSEQR for the eigenvalues of A. Workspace sizes are queried once per grid kind and
 * width and kept, since the layers of a network all have the same width.
 *
 * ScaLAPACK 2.2.1 (Debian 12) traps, found by tests/mpi/test_spectra.c and worked around here:
 *  - PDHSEQR on a non-square grid (1x2, 2x1, 1x4) returns wrong eigenvalues, or hangs (1x4),
 *    once n exceeds its PDLAQR1/PDLAQR0 crossover (~220): the eigenvalues are therefore computed
 *    on the largest SQUARE subgrid of the big grid (ranks 0..q*q-1), and broadcast from rank 0.
 *  - PDHSEQR drops a real eigenvalue in the last row when the block size divides n (see
 *    block_size). Every eigenvalue computation is also checked against the trace. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "diag/scalapack.h"
#include "hamnet/diag.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"

/* One BLACS grid with the scratch of the width it last worked on. */
typedef struct {
  int sys;    /* BLACS system handle (Csys2blacs_handle), -1 when none */
  int ctxt;   /* grid context, -1 when this rank is not in the grid */
  int nprow, npcol, myrow, mycol;
  int n, nb, mloc, nloc, lld; /* the width the scratch below is sized for */
  int desc[HN_DLEN];
  double *a, *z, *tau, *work;
  int *iwork;
  int lwork, liwork;
} grid;

struct hn_spectra {
  MPI_Comm comm;
  int rank, size;
  int distributed_width;
  grid local; /* 1x1 on this rank alone */
  grid big;   /* nprow x npcol over ranks 0..nprow*npcol-1: singular values, symmetric part */
  grid sq;    /* q x q, q*q <= nprow*npcol, over ranks 0..q*q-1: eigenvalues (PDHSEQR) */
};

/* ---------------------------------------------------------------------------------------- */
/* BLAS threads: one inside ScaLAPACK. Each process's BLAS calls there are on blocks of at most
 * 32 (or on tiny whole layers), which threads do not speed up; and OpenMP workers spinning
 * between those calls starve the ranks' MPI progress when ranks share cores: tests/mpi/
 * test_spectra on 4 ranks x 2 threads on 2 cores took 238 s instead of 4 s. OpenBLAS's OpenMP
 * build follows omp_get_max_threads() of the calling thread, so that is what is set and then
 * restored. */

static int blas_single_begin(void) {
  int old = omp_get_max_threads();
  omp_set_num_threads(1);
  return old;
}

static void blas_single_end(int old) { omp_set_num_threads(old); }

/* ---------------------------------------------------------------------------------------- */
/* grids */

static void grid_free_scratch(grid *g) {
  hn_free(g->a);
  hn_free(g->z);
  hn_free(g->tau);
  hn_free(g->work);
  hn_free(g->iwork);
  g->a = g->z = g->tau = g->work = NULL;
  g->iwork = NULL;
  g->n = 0;
  g->lwork = g->liwork = 0;
}

static int grid_init(grid *g, MPI_Comm comm, int nprow, int npcol) {
  memset(g, 0, sizeof *g);
  g->ctxt = -1;
  g->sys = Csys2blacs_handle(comm);
  int ctxt = g->sys;
  /* Cblacs_gridinit replaces its argument (the system handle) by the new context; ranks of
   * comm beyond nprow*npcol get -1. Collective over comm. */
  Cblacs_gridinit(&ctxt, "Row", nprow, npcol);
  g->ctxt = ctxt;
  g->nprow = nprow;
  g->npcol = npcol;
  g->myrow = g->mycol = -1;
  if (g->ctxt >= 0) {
    int pr, pc;
    Cblacs_gridinfo(g->ctxt, &pr, &pc, &g->myrow, &g->mycol);
    if (pr != nprow || pc != npcol || g->myrow < 0)
      return hn_fail(HN_EMPI, "BLACS grid %dx%d came back as %dx%d (row %d)", nprow, npcol, pr, pc, g->myrow);
  }
  return HN_OK;
}

static void grid_exit(grid *g) {
  grid_free_scratch(g);
  if (g->ctxt >= 0)
    Cblacs_gridexit(g->ctxt);
  g->ctxt = -1;
  if (g->sys >= 0)
    Cfree_blacs_system_handle(g->sys);
  g->sys = -1;
}

int hn_spectra_create(hn_spectra **out, MPI_Comm comm, int nprow, int npcol, int distributed_width) {
  *out = NULL;
  int size, rank;
  if (MPI_Comm_size(comm, &size) != MPI_SUCCESS || MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "spectra: cannot query the communicator");
  if (nprow == 0 && npcol == 0) {
    nprow = 1;
    for (int p = 1; p * p <= size; p++)
      if (size % p == 0)
        nprow = p;
    npcol = size / nprow;
  }
  if (nprow < 1 || npcol < 1 || (long)nprow * npcol > size)
    return hn_fail(HN_EINVAL, "spectra: a %dx%d BLACS grid does not fit %d rank%s", nprow, npcol, size,
                   size == 1 ? "" : "s");
  if (distributed_width < 1)
    return hn_fail(HN_EINVAL, "spectra: distributed width must be >= 1 (got %d)", distributed_width);
  hn_spectra *sp = hn_alloc(1, sizeof *sp, HN_MEM_OTHER, "spectra context");
  if (!sp)
    return HN_ENOMEM;
  sp->comm = comm;
  sp->rank = rank;
  sp->size = size;
  sp->distributed_width = distributed_width;
  sp->local.sys = sp->big.sys = sp->sq.sys = -1;
  sp->local.ctxt = sp->big.ctxt = sp->sq.ctxt = -1;
  int pnum, nprocs;
  Cblacs_pinfo(&pnum, &nprocs); /* initialises BLACS (MPI is already up: it is not started again) */
  int status = grid_init(&sp->local, MPI_COMM_SELF, 1, 1);
  if (status == HN_OK)
    status = grid_init(&sp->big, comm, nprow, npcol);
  int q = 1;
  while ((q + 1) * (q + 1) <= nprow * npcol)
    q++;
  if (status == HN_OK && q > 1)
    status = grid_init(&sp->sq, comm, q, q);
  sp->sq.nprow = sp->sq.npcol = q;
  if (status != HN_OK) {
    hn_spectra_destroy(sp);
    return status;
  }
  *out = sp;
  return HN_OK;
}

void hn_spectra_destroy(hn_spectra *sp) {
  if (!sp)
    return;
  grid_exit(&sp->sq);
  grid_exit(&sp->big);
  grid_exit(&sp->local);
  hn_free(sp);
}

void hn_spectra_grid(const hn_spectra *sp, int *nprow, int *npcol) {
  *nprow = sp->big.nprow;
  *npcol = sp->big.npcol;
}

/* ---------------------------------------------------------------------------------------- */
/* one matrix */

/* Square blocks (PDHSEQR needs that, and at least 6 wide). ScaLAPACK 2.2's PDHSEQR never reads
 * out a real eigenvalue in the last row when the block size divides n (its read-out loops skip
 * block borders and stop at n - 1; it returns 0 instead), so the block size never divides n:
 * on a 1x1 grid one block of n + 1, on bigger grids the nearest size in [6, 32] that does not. */
static int block_size(const grid *g, int n) {
  if (g->nprow * g->npcol == 1)
    return n + 1 < 6 ? 6 : n + 1;
  int p = g->nprow > g->npcol ? g->nprow : g->npcol;
  int want = n / p;
  want = want < 6 ? 6 : want > 32 ? 32 : want;
  for (int nb = want; nb >= 6; nb--)
    if (n % nb != 0)
      return nb;
  for (int nb = want + 1;; nb++)
    if (n % nb != 0)
      return nb;
}

static int scalapack_error(const char *routine, int info, int n) {
  if (info < 0)
    return hn_fail(HN_EINTERNAL, "spectra: %s rejected argument %d (info %d) for a %dx%d matrix - a bug in "
                   "hamnet's ScaLAPACK call, please report it", routine, -info, info, n, n);
  return hn_fail(HN_ENUMERIC, "spectra: %s did not converge (info %d) for a %dx%d matrix; are the weights "
                 "finite?", routine, info, n, n);
}

/* Size the grid's scratch for width n: query every driver's workspace once. */
static int grid_prepare(grid *g, int n) {
  if (g->n == n)
    return HN_OK;
  grid_free_scratch(g);
  const int izero = 0, ione = 1, mone = -1;
  int nb = block_size(g, n), info = 0;
  g->nb = nb;
  g->mloc = numroc_(&n, &nb, &g->myrow, &izero, &g->nprow);
  g->nloc = numroc_(&n, &nb, &g->mycol, &izero, &g->npcol);
  g->lld = g->mloc > 1 ? g->mloc : 1;
  descinit_(g->desc, &n, &n, &nb, &nb, &izero, &izero, &g->ctxt, &g->lld, &info);
  if (info != 0)
    return scalapack_error("DESCINIT", info, n);
  size_t loc = (size_t)g->lld * (size_t)(g->nloc > 1 ? g->nloc : 1);
  g->a = hn_alloc(loc, sizeof(double), HN_MEM_OTHER, "spectra matrix");
  g->z = hn_alloc(loc, sizeof(double), HN_MEM_OTHER, "spectra eigenvectors");
  g->tau = hn_alloc((size_t)n + 1, sizeof(double), HN_MEM_OTHER, "spectra tau");
  if (!g->a || !g->z || !g->tau)
    return HN_ENOMEM;
  /* Workspace queries (lwork = -1). Every output of a query gets a real heap array of generous
   * size: PDHSEQR's query (through PDLAQR0/PDLAQR1) writes into more than WORK(1) / IWORK(1) and
   * WR / WI, and scalars there smashed the stack for n above its crossover. */
  const size_t qn = 4 * (size_t)n + 1024;
  double *qw = hn_alloc(qn, sizeof(double), HN_MEM_OTHER, "spectra query");
  double *vals = hn_alloc(2 * (size_t)n, sizeof(double), HN_MEM_OTHER, "spectra query");
  int *qi = hn_alloc(qn, sizeof(int), HN_MEM_OTHER, "spectra query");
  int lwork = 0, liwork = 1;
  const char *what = NULL;
  if (!qw || !vals || !qi) {
    hn_free(qw);
    hn_free(vals);
    hn_free(qi);
    return HN_ENOMEM;
  }
  pdgesvd_("N", "N", &n, &n, g->a, &ione, &ione, g->desc, vals, g->z, &ione, &ione, g->desc, g->z, &ione,
           &ione, g->desc, qw, &mone, &info, 1, 1);
  if (info != 0)
    what = "PDGESVD (workspace query)";
  lwork = (int)qw[0];
  if (!what) {
    pdsyevd_("V", "U", &n, g->a, &ione, &ione, g->desc, vals, g->z, &ione, &ione, g->desc, qw, &mone, qi, &mone,
             &info, 1, 1);
    if (info != 0)
      what = "PDSYEVD (workspace query)";
    lwork = (int)qw[0] > lwork ? (int)qw[0] : lwork;
    liwork = qi[0] > liwork ? qi[0] : liwork;
  }
  if (!what) {
    pdgehrd_(&n, &ione, &n, g->a, &ione, &ione, g->desc, g->tau, qw, &mone, &info);
    if (info != 0)
      what = "PDGEHRD (workspace query)";
    lwork = (int)qw[0] > lwork ? (int)qw[0] : lwork;
  }
  if (!what) {
    pdhseqr_("E", "N", &n, &ione, &n, g->a, g->desc, vals, vals + n, g->z, g->desc, qw, &mone, qi, &mone, &info, 1,
             1);
    if (info != 0)
      what = "PDHSEQR (workspace query)";
    lwork = (int)qw[0] > lwork ? (int)qw[0] : lwork;
    liwork = qi[0] > liwork ? qi[0] : liwork;
  }
  hn_free(qw);
  hn_free(vals);
  hn_free(qi);
  if (what)
    return scalapack_error(what, info, n);
  /* Some ScaLAPACK versions under-report PDGESVD's needs on some grids: leave headroom. */
  g->lwork = lwork + lwork / 2 + 64 * n + 1024;
  g->liwork = liwork + liwork / 2 + 64;
  g->work = hn_alloc((size_t)g->lwork, sizeof(double), HN_MEM_OTHER, "spectra workspace");
  g->iwork = hn_alloc((size_t)g->liwork, sizeof(int), HN_MEM_OTHER, "spectra integer workspace");
  if (!g->work || !g->iwork)
    return HN_ENOMEM;
  g->n = n;
  return HN_OK;
}

/* Global (row, col) of local (li, lj), block-cyclic with source process 0. */
static int global_index(int l, int nb, int me, int procs) { return ((l / nb) * procs + me) * nb + l % nb; }

/* The local blocks of M (row-major n x n); mode 0: M, 1: (M + M^T)/2. */
static void fill_local(grid *g, const double *M, int n, int symmetrize) {
  for (int lj = 0; lj < g->nloc; lj++) {
    int gj = global_index(lj, g->nb, g->mycol, g->npcol);
    for (int li = 0; li < g->mloc; li++) {
      int gi = global_index(li, g->nb, g->myrow, g->nprow);
      double v = symmetrize ? 0.5 * (M[(size_t)gi * n + gj] + M[(size_t)gj * n + gi]) : M[(size_t)gi * n + gj];
      g->a[(size_t)lj * g->lld + li] = v;
    }
  }
}

static int all_finite(const double *M, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (!isfinite(M[i]))
      return 0;
  return 1;
}

/* Singular values of K and eigenvalues of (A + A^T)/2 on grid g (ranks outside g: nothing). */
static int grid_svd_sym(grid *g, int n, const double *K, const double *A, double *sv, double *sym) {
  if (g->ctxt < 0)
    return HN_OK;
  HN_TRY(grid_prepare(g, n));
  const int ione = 1;
  int info = 0;
  fill_local(g, K, n, 0);
  pdgesvd_("N", "N", &n, &n, g->a, &ione, &ione, g->desc, sv, g->z, &ione, &ione, g->desc, g->z, &ione, &ione,
           g->desc, g->work, &g->lwork, &info, 1, 1);
  if (info != 0)
    return scalapack_error("PDGESVD", info, n);
  if (sym) {
    fill_local(g, A, n, 1);
    pdsyevd_("V", "U", &n, g->a, &ione, &ione, g->desc, sym, g->z, &ione, &ione, g->desc, g->work, &g->lwork,
             g->iwork, &g->liwork, &info, 1, 1);
    if (info != 0)
      return scalapack_error("PDSYEVD", info, n);
  }
  return HN_OK;
}

/* Eigenvalues of A on grid g (a square grid: see the top of this file). */
static int grid_eig(grid *g, int n, const double *A, double *eig_re, double *eig_im) {
  if (g->ctxt < 0)
    return HN_OK;
  HN_TRY(grid_prepare(g, n));
  const int ione = 1;
  int info = 0;
  fill_local(g, A, n, 0);
  pdgehrd_(&n, &ione, &n, g->a, &ione, &ione, g->desc, g->tau, g->work, &g->lwork, &info);
  if (info != 0)
    return scalapack_error("PDGEHRD", info, n);
  /* PDGEHRD leaves its Householder vectors below the subdiagonal; PDHSEQR wants H itself. */
  for (int lj = 0; lj < g->nloc; lj++) {
    int gj = global_index(lj, g->nb, g->mycol, g->npcol);
    for (int li = 0; li < g->mloc; li++)
      if (global_index(li, g->nb, g->myrow, g->nprow) > gj + 1)
        g->a[(size_t)lj * g->lld + li] = 0.0;
  }
  pdhseqr_("E", "N", &n, &ione, &n, g->a, g->desc, eig_re, eig_im, g->z, g->desc, g->work, &g->lwork, g->iwork,
           &g->liwork, &info, 1, 1);
  if (info != 0)
    return scalapack_error("PDHSEQR", info, n);
  /* guard against read-out bugs like the one block_size avoids: the eigenvalues must sum to
   * the trace (rounding ~ n eps max|lambda|) */
  double trace = 0, sum = 0, scale = 1;
  for (int i = 0; i < n; i++) {
    trace += A[(size_t)i * n + i];
    sum += eig_re[i];
    double a = hypot(eig_re[i], eig_im[i]);
    scale = a > scale ? a : scale;
  }
  if (fabs(trace - sum) > 1e-9 * n * scale)
    return hn_fail(HN_EINTERNAL, "spectra: PDHSEQR's eigenvalues of a %dx%d matrix sum to %.17g, its trace is "
                   "%.17g (a ScaLAPACK read-out bug; block size %d)", n, n, sum, trace, g->nb);
  return HN_OK;
}

static int check_input(int n, const double *K, const double *A, int need_A) {
  if (n < 1)
    return hn_fail(HN_EINVAL, "spectra: matrix size must be >= 1 (got %d)", n);
  if (need_A && !A)
    return hn_fail(HN_EINVAL, "spectra: the operator A is needed for the symmetric part / eigenvalues");
  /* ScaLAPACK would iterate forever or fail obscurely on NaN; every rank sees the same input. */
  if (!all_finite(K, (size_t)n * n) || (need_A && !all_finite(A, (size_t)n * n)))
    return hn_fail(HN_ENUMERIC, "spectra: a %dx%d layer matrix has non-finite entries (the weights diverged)", n, n);
  return HN_OK;
}

static int spectra_matrix(hn_spectra *sp, int distributed, int n, const double *K, const double *A, double *sv,
                          double *sym, double *eig_re, double *eig_im) {
  HN_TRY(check_input(n, K, A, sym || eig_re));
  if (!distributed) {
    HN_TRY(grid_svd_sym(&sp->local, n, K, A, sv, sym));
    return eig_re ? grid_eig(&sp->local, n, A, eig_re, eig_im) : HN_OK;
  }
  int status = grid_svd_sym(&sp->big, n, K, A, sv, sym);
  if (!eig_re)
    return status;
  /* every rank of the big grid takes part in the broadcast below, failed or not */
  /* q = 1: rank 0's own 1x1 grid (no grid over a subset of the ranks needed) */
  grid *ge = sp->sq.nprow == 1 ? (sp->rank == 0 ? &sp->local : NULL) : &sp->sq;
  int sq_status = status == HN_OK && ge ? grid_eig(ge, n, A, eig_re, eig_im) : HN_OK;
  if (sp->size == 1)
    return status != HN_OK ? status : sq_status;
  double *buf = hn_alloc(2 * (size_t)n + 1, sizeof(double), HN_MEM_OTHER, "spectra broadcast");
  if (!buf)
    return hn_fail(HN_ENOMEM, "out of memory (spectra broadcast; the job may hang)");
  if (sp->rank == 0) {
    buf[0] = sq_status;
    memcpy(buf + 1, eig_re, (size_t)n * sizeof(double));
    memcpy(buf + 1 + n, eig_im, (size_t)n * sizeof(double));
  }
  int mpi = MPI_Bcast(buf, 2 * n + 1, MPI_DOUBLE, 0, sp->comm);
  if (mpi == MPI_SUCCESS && sp->rank != 0) {
    memcpy(eig_re, buf + 1, (size_t)n * sizeof(double));
    memcpy(eig_im, buf + 1 + n, (size_t)n * sizeof(double));
    if (buf[0] != HN_OK && sq_status == HN_OK)
      sq_status = hn_fail((int)buf[0], "spectra: the eigenvalue computation failed on rank 0");
  }
  hn_free(buf);
  if (mpi != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "spectra: broadcast of the eigenvalues failed");
  return status != HN_OK ? status : sq_status;
}

int hn_spectra_matrix(hn_spectra *sp, int distributed, int n, const double *K, const double *A, double *sv,
                      double *sym, double *eig_re, double *eig_im) {
  int threads = blas_single_begin();
  int status = spectra_matrix(sp, distributed, n, K, A, sv, sym, eig_re, eig_im);
  blas_single_end(threads);
  return status;
}

/* ---------------------------------------------------------------------------------------- */
/* every layer */

/* The worst status over the ranks of comm (local failures must not leave others waiting). */
static int agree(hn_spectra *sp, int status) {
  if (sp->size == 1)
    return status;
  int in[2] = {status, -sp->rank}, out[2];
  if (MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MAXLOC, sp->comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "spectra: status reduction failed");
  if (out[0] != HN_OK && status == HN_OK)
    hn_fail(out[0], "spectra failed on rank %d (%s); see its message", -out[1], hn_status_name(out[0]));
  return out[0];
}

enum { Q_SVMAX, Q_SVMIN, Q_LOGNORM, Q_EIGRE, Q_EIGABS, Q_COUNT };

int hn_spectra_layers(hn_spectra *sp, const hn_layout *L, const hn_real *params, hn_layer_spectrum *out,
                      double *sv_all, double *eig_re_all, double *eig_im_all) {
  const int N = L->spec.depth, n = L->spec.width;
  const int euler = L->spec.arch == HN_ARCH_RESNET || L->spec.arch == HN_ARCH_ANTISYM;
  const int distributed = n >= sp->distributed_width && sp->size > 1;
  const size_t nn = (size_t)n * n;
  /* reduction buffer: Q_COUNT summary values + n singular values + 2n eigenvalues per layer */
  const size_t per = Q_COUNT + 3 * (size_t)n;
  double *red = hn_alloc((size_t)N * per, sizeof(double), HN_MEM_OTHER, "spectra results");
  double *K = hn_alloc(nn, sizeof(double), HN_MEM_OTHER, "spectra layer copy");
  double *A = hn_alloc(nn, sizeof(double), HN_MEM_OTHER, "spectra operator");
  double *sym = hn_alloc((size_t)n, sizeof(double), HN_MEM_OTHER, "spectra symmetric eigenvalues");
  int status = (red && K && A && sym) ? HN_OK : HN_ENOMEM;
  const int threads = blas_single_begin();
  for (int j = 0; j < N && status == HN_OK; j++) {
    int mine;
    if (distributed)
      mine = sp->big.ctxt >= 0 && sp->big.myrow == 0 && sp->big.mycol == 0; /* reports the results */
    else
      mine = j % sp->size == sp->rank;
    if (!distributed && !mine)
      continue;
    const hn_real *Kj = hn_layer_K(L, (hn_real *)params, j);
    for (size_t i = 0; i < nn; i++)
      K[i] = (double)Kj[i];
    if (L->spec.arch == HN_ARCH_ANTISYM) {
      for (int r = 0; r < n; r++) /* A = K - K^T - gamma I, formed in double */
        for (int c = 0; c < n; c++)
          A[(size_t)r * n + c] = K[(size_t)r * n + c] - K[(size_t)c * n + r] - (r == c ? L->spec.gamma : 0.0);
    } else {
      memcpy(A, K, nn * sizeof(double));
    }
    double *row = red + (size_t)j * per, *sv = row + Q_COUNT, *wr = sv + n, *wi = wr + n;
    status = spectra_matrix(sp, distributed, n, K, A, sv, euler ? sym : NULL, euler ? wr : NULL, euler ? wi : NULL);
    if (distributed) /* the next layer is collective again: stop together */
      status = agree(sp, status);
    if (status != HN_OK)
      break;
    if (!mine) { /* a distributed layer on a rank that does not report: contribute zeros */
      memset(row, 0, per * sizeof(double));
      continue;
    }
    row[Q_SVMAX] = sv[0];
    row[Q_SVMIN] = sv[n - 1];
    if (euler) {
      double remax = -INFINITY, absmax = 0;
      for (int i = 0; i < n; i++) {
        remax = wr[i] > remax ? wr[i] : remax;
        double a = hypot(wr[i], wi[i]);
        absmax = a > absmax ? a : absmax;
      }
      row[Q_LOGNORM] = sym[n - 1];
      row[Q_EIGRE] = remax;
      row[Q_EIGABS] = absmax;
    } else {
      row[Q_LOGNORM] = row[Q_EIGRE] = row[Q_EIGABS] = NAN;
      for (int i = 0; i < 2 * n; i++)
        wr[i] = NAN;
    }
  }
  blas_single_end(threads);
  hn_free(K);
  hn_free(A);
  hn_free(sym);
  status = agree(sp, status);
  if (status == HN_OK && sp->size > 1 &&
      MPI_Allreduce(MPI_IN_PLACE, red, (int)((size_t)N * per), MPI_DOUBLE, MPI_SUM, sp->comm) != MPI_SUCCESS)
    status = hn_fail(HN_EMPI, "spectra: reduction of the per-layer results failed");
  if (status == HN_OK) {
    const double h = (double)L->spec.final_time / N;
    for (int j = 0; j < N; j++) {
      const double *row = red + (size_t)j * per;
      hn_layer_spectrum *o = &out[j];
      o->sv_max = row[Q_SVMAX];
      o->sv_min = row[Q_SVMIN];
      o->log_norm = row[Q_LOGNORM];
      o->eig_re_max = row[Q_EIGRE];
      o->eig_abs_max = row[Q_EIGABS];
      o->h_sv_max = h * o->sv_max;
      o->amplification = NAN; /* the monitor fills it in */
      if (sv_all)
        memcpy(sv_all + (size_t)j * n, row + Q_COUNT, (size_t)n * sizeof(double));
      if (eig_re_all)
        memcpy(eig_re_all + (size_t)j * n, row + Q_COUNT + n, (size_t)n * sizeof(double));
      if (eig_im_all)
        memcpy(eig_im_all + (size_t)j * n, row + Q_COUNT + 2 * (size_t)n, (size_t)n * sizeof(double));
    }
  }
  hn_free(red);
  return status;
}
