/* test_narrow.c - the narrow path (tiles carried through all layers, network.c) against the
 * wide path (layer by layer with GEMMs): same loss, accuracy, logits and gradients up to
 * rounding for every reversible architecture x activation x opening x state mode, on batches
 * that fill tiles partly, exactly and several times over; bitwise determinism of both paths for
 * a fixed thread count; the grad-ready callback (per layer on the wide path, once with 0 on the
 * narrow path); the automatic choice and its override. Both precisions. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/kernels.h"
#include "hamnet/model.h"
#include "hamnet/rng.h"
#include "hn_test.h"

#ifdef HN_USE_DOUBLE
#define TOL 1e-10
#else
#define TOL 2e-4
#endif

typedef struct {
  hn_model m;
  hn_real *X;
  int32_t *y;
  int B;
} problem;

static void setup(problem *p, hn_arch arch, hn_activation act, hn_opening open, int width, int depth, int B,
                  uint64_t seed) {
  hn_model_spec spec = {.arch = arch, .activation = act, .opening = open, .width = width, .depth = depth,
                        .n_features = 3, .n_classes = 4, .final_time = 3.0, .gamma = 0.05};
  CHECK_OK(hn_model_create(&p->m, &spec));
  hn_model_init_params(&p->m, seed, 1.0);
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_TEST, 2, 0);
  for (int j = 0; j < depth; j++) { /* non-zero biases so every term is exercised */
    hn_real *b = hn_layer_b(&p->m.layout, p->m.params, j);
    for (int i = 0; i < width; i++)
      b[i] = (hn_real)(0.3 * hn_rng_normal(&r));
  }
  for (size_t i = p->m.layout.off_cls_b; i < p->m.layout.n_params; i++)
    p->m.params[i] = (hn_real)(0.2 * hn_rng_normal(&r));
  p->B = B;
  p->X = malloc((size_t)B * 3 * sizeof(hn_real));
  p->y = malloc((size_t)B * sizeof(int32_t));
  for (int i = 0; i < B * 3; i++)
    p->X[i] = (hn_real)hn_rng_normal(&r);
  for (int i = 0; i < B; i++)
    p->y[i] = (int32_t)hn_rng_below(&r, 4);
}

static void teardown(problem *p) {
  hn_model_destroy(&p->m);
  free(p->X);
  free(p->y);
}

/* What the grad-ready callback was told, and (small models only: `grads` set, n_params <=
 * SNAP_MAX) a copy of the gradient suffix it declared final, to compare with the end result. */
#define SNAP_CALLS 64
#define SNAP_MAX 4096
typedef struct {
  int calls;   /* distinct announcements */
  int repeats; /* calls that repeated the previous value (progress between GEMMs) */
  size_t first[4096];
  const hn_real *grads;
  size_t n_params;
  hn_real snap[SNAP_CALLS][SNAP_MAX];
} ready_log;

static void on_ready(void *ctx, size_t first_final) {
  ready_log *log = ctx;
  if (log->calls > 0 && log->calls <= 4096 && first_final == log->first[log->calls - 1]) {
    log->repeats++;
    return;
  }
  if (log->calls < 4096)
    log->first[log->calls] = first_final;
  if (log->grads && log->calls < SNAP_CALLS && log->n_params <= SNAP_MAX)
    memcpy(log->snap[log->calls], log->grads + first_final, (log->n_params - first_final) * sizeof(hn_real));
  log->calls++;
}

/* Every suffix declared final was: the copies taken then equal the gradients at the end. */
static int ready_suffixes_final(const ready_log *log, const hn_real *g) {
  for (int c = 0; c < log->calls && c < SNAP_CALLS; c++)
    if (memcmp(log->snap[c], g + log->first[c], (log->n_params - log->first[c]) * sizeof(hn_real)) != 0)
      return 0;
  return 1;
}

/* One training pass with the given path; gradients into g (n_params), logits of an evaluation
 * pass into logits (B x C), statistics into st. */
static void run(problem *p, hn_kernel_path path, int reversible, int stride, hn_real *g, hn_real *logits,
                hn_batch_stats *st, ready_log *log) {
  hn_workspace *ws = NULL;
  CHECK_OK(hn_workspace_create(&ws, &p->m.layout, p->B + 3, reversible, stride));
  CHECK_OK(hn_workspace_set_kernel(ws, path));
  CHECK(hn_workspace_narrow(ws) == (path == HN_KERNEL_NARROW), "path %s in use", hn_kernel_path_name(path));
  memset(p->m.grads, 0, p->m.layout.n_params * sizeof(hn_real));
  if (log)
    log->calls = log->repeats = 0;
  CHECK_OK(hn_model_train_batch(&p->m, ws, p->X, p->y, p->B, (hn_real)(1.0 / p->B), log ? on_ready : NULL, log,
                                NULL, st));
  memcpy(g, p->m.grads, p->m.layout.n_params * sizeof(hn_real));
  hn_batch_stats es;
  CHECK_OK(hn_model_evaluate(&p->m, ws, p->X, p->y, p->B, logits, NULL, &es));
  CHECK(fabs(es.loss_sum - st->loss_sum) <= 1e-4 * fabs(st->loss_sum) && es.correct == st->correct,
        "evaluate and train agree on loss and accuracy");
  hn_workspace_destroy(ws);
}

static double rel_maxdiff(const hn_real *a, const hn_real *b, size_t n) {
  double d = 0, s = 0;
  for (size_t i = 0; i < n; i++) {
    d = fmax(d, fabs((double)a[i] - b[i]));
    s = fmax(s, fabs((double)b[i]));
  }
  return d / (s > 0 ? s : 1);
}

static void test_paths_agree(void) {
  const int shapes[][3] = {{1, 5, 4}, {7, 3, 6}, {HN_TILE, 8, 5}, {HN_TILE + 1, 4, 3}, {3 * HN_TILE - 5, 16, 4},
                           {2 * HN_TILE, 33, 2}};
  int combos = 0;
  for (int arch = HN_ARCH_HAMILTONIAN; arch <= HN_ARCH_LEAPFROG; arch++)
    for (int act = 0; act < HN_ACT_COUNT; act++)
      for (int open = 0; open < HN_OPEN_COUNT; open++)
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
          for (int mode = 0; mode < 3; mode++) {
            const int B = shapes[sh][0], n = shapes[sh][1], N = shapes[sh][2];
            if (open == HN_OPEN_PAD && n < 3)
              continue;
            problem p;
            setup(&p, (hn_arch)arch, (hn_activation)act, (hn_opening)open, n, N, B, 17 + sh);
            const size_t np = p.m.layout.n_params, nl = (size_t)B * 4;
            hn_real *gw = malloc(np * sizeof(hn_real)), *gn = malloc(np * sizeof(hn_real));
            hn_real *lw = malloc(nl * sizeof(hn_real)), *ln = malloc(nl * sizeof(hn_real));
            hn_batch_stats sw, sn;
            run(&p, HN_KERNEL_WIDE, mode > 0, mode == 2 ? 2 : 0, gw, lw, &sw, NULL);
            run(&p, HN_KERNEL_NARROW, mode > 0, mode == 2 ? 2 : 0, gn, ln, &sn, NULL);
            const char *mname = mode == 0 ? "stored" : mode == 1 ? "reversible" : "reversible+stride";
            double dg = rel_maxdiff(gn, gw, np), dl = rel_maxdiff(ln, lw, nl);
            CHECK(dg <= TOL && dl <= TOL, "%s/%s/%s B=%d n=%d N=%d %s: narrow vs wide gradients %.3g, logits %.3g",
                  hn_arch_name(arch), hn_activation_name(act), hn_opening_name(open), B, n, N, mname, dg, dl);
            CHECK(fabs(sn.loss_sum - sw.loss_sum) <= TOL * fabs(sw.loss_sum) && sn.correct == sw.correct &&
                      sn.count == sw.count,
                  "%s B=%d n=%d %s: loss %.17g vs %.17g, correct %lld vs %lld", hn_arch_name(arch), B, n, mname,
                  sn.loss_sum, sw.loss_sum, (long long)sn.correct, (long long)sw.correct);
            CHECK(fabs(sn.recon_error - sw.recon_error) <= 1e-3 + 10 * fabs(sw.recon_error),
                  "%s B=%d n=%d %s: reconstruction error %.3g vs %.3g", hn_arch_name(arch), B, n, mname,
                  sn.recon_error, sw.recon_error);
            free(gw), free(gn), free(lw), free(ln);
            teardown(&p);
            combos++;
          }
  printf("narrow vs wide: %d combinations agree to %.0e\n", combos, TOL);
}

/* Same config, seed and thread count: the same bits, on both paths, for 1 and 2 threads. */
static void test_determinism(void) {
  const int max_threads = omp_get_max_threads();
  for (int threads = 1; threads <= 2; threads++) {
    omp_set_num_threads(threads);
    for (int path = HN_KERNEL_NARROW; path <= HN_KERNEL_WIDE; path++)
      for (int rev = 0; rev <= 1; rev++) {
        problem p;
        setup(&p, HN_ARCH_HAMILTONIAN, HN_ACT_TANH, HN_OPEN_DENSE, 40, 6, 5 * HN_TILE + 3, 99);
        const size_t np = p.m.layout.n_params, nl = (size_t)p.B * 4;
        hn_real *g1 = malloc(np * sizeof(hn_real)), *g2 = malloc(np * sizeof(hn_real));
        hn_real *l1 = malloc(nl * sizeof(hn_real)), *l2 = malloc(nl * sizeof(hn_real));
        hn_batch_stats s1, s2;
        run(&p, (hn_kernel_path)path, rev, 0, g1, l1, &s1, NULL);
        run(&p, (hn_kernel_path)path, rev, 0, g2, l2, &s2, NULL);
        CHECK(memcmp(g1, g2, np * sizeof(hn_real)) == 0 && memcmp(l1, l2, nl * sizeof(hn_real)) == 0 &&
                  s1.loss_sum == s2.loss_sum && s1.recon_error == s2.recon_error,
              "%s path, reversible %d, %d threads: two runs differ", hn_kernel_path_name(path), rev, threads);
        free(g1), free(g2), free(l1), free(l2);
        teardown(&p);
      }
  }
  omp_set_num_threads(max_threads);
}

/* The classifier first, then layer N-1 ... 0, then everything (0)? */
static int ready_per_layer(const ready_log *log, const hn_layout *L) {
  int ok = log->calls == L->spec.depth + 2 && log->first[0] == L->off_cls_W && log->first[log->calls - 1] == 0;
  for (int j = 0; ok && j < L->spec.depth; j++)
    ok = log->first[1 + j] == L->off_layers + (size_t)(L->spec.depth - 1 - j) * L->layer_size;
  return ok;
}

/* Wide path, and the narrow path on one thread (during its last tile): the classifier first,
 * then layer N-1 ... 0, then everything (0); the narrow path on several threads: 0 once. Each
 * time, the suffix declared final is checked against the end result. */
static void test_grad_ready(void) {
  const int threads_before = omp_get_max_threads();
  for (int arch = HN_ARCH_HAMILTONIAN; arch <= HN_ARCH_LEAPFROG; arch++)
    for (int mode = 0; mode < 3; mode++) {
      const char *mname = mode == 0 ? "stored" : mode == 1 ? "reversible" : "reversible+stride";
      problem p;
      setup(&p, (hn_arch)arch, HN_ACT_TANH, HN_OPEN_DENSE, 6, 5, 3 * HN_TILE + 7, 3);
      const hn_layout *L = &p.m.layout;
      const size_t np = L->n_params;
      hn_real *g = malloc(np * sizeof(hn_real)), *l = malloc((size_t)p.B * 4 * sizeof(hn_real));
      hn_batch_stats st;
      ready_log *log = calloc(1, sizeof *log);
      log->grads = p.m.grads;
      log->n_params = np;
      CHECK(np <= SNAP_MAX, "test model small enough for the snapshots (%zu parameters)", np);
      run(&p, HN_KERNEL_WIDE, mode > 0, mode == 2 ? 2 : 0, g, l, &st, log);
      CHECK(ready_per_layer(log, L) && ready_suffixes_final(log, g) && log->repeats > 0,
            "%s %s, wide path: grad-ready per layer, last to first, then 0, each suffix final (%d calls, "
            "%d repeated between GEMMs)", hn_arch_name(arch), mname, log->calls, log->repeats);
      omp_set_num_threads(1);
      run(&p, HN_KERNEL_NARROW, mode > 0, mode == 2 ? 2 : 0, g, l, &st, log);
      CHECK(ready_per_layer(log, L) && ready_suffixes_final(log, g),
            "%s %s, narrow path, 1 thread: grad-ready per layer during the last tile, each suffix final (%d calls)",
            hn_arch_name(arch), mname, log->calls);
      omp_set_num_threads(2);
      run(&p, HN_KERNEL_NARROW, mode > 0, mode == 2 ? 2 : 0, g, l, &st, log);
      CHECK(log->calls == 1 && log->first[0] == 0 && ready_suffixes_final(log, g),
            "%s %s, narrow path, 2 threads: grad-ready once, with 0 (%d calls)", hn_arch_name(arch), mname, log->calls);
      omp_set_num_threads(threads_before);
      free(g), free(l), free(log);
      teardown(&p);
    }
}

static void test_choice(void) {
  const int threads_before = omp_get_max_threads();
  for (int threads = 1; threads <= 2; threads++) {
    omp_set_num_threads(threads);
    for (int arch = 0; arch < HN_ARCH_COUNT; arch++)
      for (int width = 4; width <= 256; width *= 2) {
        const int rev = hn_arch_is_reversible((hn_arch)arch) && width % 8 == 0; /* both modes */
        problem p;
        setup(&p, (hn_arch)arch, HN_ACT_TANH, HN_OPEN_DENSE, width, 2, 8, 1);
        hn_workspace *ws = NULL;
        CHECK_OK(hn_workspace_create(&ws, &p.m.layout, 8, rev, 0));
        /* stored mode on one thread: only up to the smaller width (hamnet/model.h) */
        const int expect = hn_arch_is_reversible((hn_arch)arch) &&
                           width <= (rev || threads > 1 ? HN_NARROW_MAX_WIDTH : HN_NARROW_MAX_WIDTH_STORED);
        CHECK(hn_workspace_narrow(ws) == expect, "auto, %d thread(s): %s width %d, %s mode takes the %s path", threads,
              hn_arch_name(arch), width, rev ? "reversible" : "stored", expect ? "narrow" : "wide");
        CHECK_OK(hn_workspace_set_kernel(ws, HN_KERNEL_WIDE));
        CHECK(!hn_workspace_narrow(ws), "wide on request");
        int status = hn_workspace_set_kernel(ws, HN_KERNEL_NARROW);
        if (hn_arch_is_reversible((hn_arch)arch))
          CHECK(status == HN_OK && hn_workspace_narrow(ws), "narrow on request for %s", hn_arch_name(arch));
        else
          CHECK(status == HN_EINVAL && strstr(hn_errmsg(), "narrow") != NULL, "narrow refused for %s", hn_arch_name(arch));
        hn_error_clear();
        hn_workspace_destroy(ws);
        teardown(&p);
      }
  }
  omp_set_num_threads(threads_before);
}

int main(void) {
  test_paths_agree();
  test_determinism();
  test_grad_ready();
  test_choice();
  return hn_test_finish("test_narrow");
}
