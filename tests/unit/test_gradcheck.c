/* test_gradcheck.c - hand-written backpropagation against central finite differences.
 *
 * Every architecture x activation x opening x state mode (stored, reversible, reversible with
 * exact-state stride) x pass implementation (the wide layer-by-layer path, and for hamiltonian
 * and leapfrog the narrow tile path), every coordinate of every parameter block (opening, each
 * K_j and b_j, classifier), objective = mean cross-entropy + both regularisers. Tolerance: relative error
 * <= 1e-6 per block (double build; the float build cannot resolve finite differences that
 * finely and skips with CTest's skip code 77).
 * relu: a coordinate whose perturbation moves a pre-activation across relu's kink has no
 * derivative there; such a coordinate shows up as finite differences at eps and eps/10 that
 * disagree, and is skipped (counted, and the count is bounded).
 * The test also corrupts one gradient coordinate and requires the check to catch it, and
 * compares stored and reversible gradients up to depth 256 (<= 1e-8). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/model.h"
#include "hamnet/rng.h"
#include "hamnet/train.h"
#include "hn_test.h"

#ifdef HN_USE_DOUBLE /* the whole check needs double precision; see main */

typedef struct {
  const char *name;
  size_t off, size;
} block;

typedef struct {
  hn_model m;
  hn_workspace *ws;
  hn_real *X;
  int32_t *y;
  int B;
  double alpha_t, alpha_w;
} problem;

static double objective(problem *p) {
  hn_batch_stats st;
  hn_model_evaluate(&p->m, p->ws, p->X, p->y, p->B, NULL, NULL, &st);
  return st.loss_sum / p->B + hn_regularizer(&p->m.layout, p->m.params, NULL, p->alpha_t, p->alpha_w);
}

static void analytic(problem *p) {
  hn_batch_stats st;
  memset(p->m.grads, 0, p->m.layout.n_params * sizeof(hn_real));
  hn_model_train_batch(&p->m, p->ws, p->X, p->y, p->B, (hn_real)(1.0 / p->B), NULL, NULL, NULL, &st);
  hn_regularizer(&p->m.layout, p->m.params, p->m.grads, p->alpha_t, p->alpha_w);
}

static double fd(problem *p, size_t i, double eps) {
  hn_real keep = p->m.params[i];
  p->m.params[i] = keep + eps;
  double fp = objective(p);
  p->m.params[i] = keep - eps;
  double fm = objective(p);
  p->m.params[i] = keep;
  return (fp - fm) / (2 * eps);
}

static int make_blocks(const hn_layout *L, block *b) {
  int nb = 0;
  const size_t n = L->spec.width;
  if (L->spec.opening == HN_OPEN_DENSE) {
    b[nb++] = (block){"open/K", L->off_open_K, n * L->spec.n_features};
    b[nb++] = (block){"open/b", L->off_open_b, n};
  }
  static char names[64][16];
  for (int j = 0; j < L->spec.depth && nb < 60; j++) {
    snprintf(names[2 * j], 16, "K_%d", j);
    snprintf(names[2 * j + 1], 16, "b_%d", j);
    b[nb++] = (block){names[2 * j], L->off_layers + j * L->layer_size, n * n};
    b[nb++] = (block){names[2 * j + 1], L->off_layers + j * L->layer_size + n * n, n};
  }
  b[nb++] = (block){"cls/W", L->off_cls_W, (size_t)L->spec.n_classes * n};
  b[nb++] = (block){"cls/b", L->off_cls_b, (size_t)L->spec.n_classes};
  return nb;
}

/* Worst relative block error; *skipped counts kink coordinates. */
static double check_blocks(problem *p, int relu, int *skipped, int *checked, const char *what, int verbose) {
  block blocks[72];
  int nb = make_blocks(&p->m.layout, blocks);
  double worst = 0;
  for (int k = 0; k < nb; k++) {
    double diff2 = 0, an2 = 0, fd2 = 0;
    for (size_t i = blocks[k].off; i < blocks[k].off + blocks[k].size; i++) {
      double g_fd = fd(p, i, 1e-5);
      if (relu) {
        double g_fd2 = fd(p, i, 1e-6);
        if (fabs(g_fd - g_fd2) > 1e-4 * fmax(1e-3, fabs(g_fd2))) {
          (*skipped)++;
          continue;
        }
      }
      double g = p->m.grads[i];
      diff2 += (g - g_fd) * (g - g_fd);
      an2 += g * g;
      fd2 += g_fd * g_fd;
      (*checked)++;
    }
    double rel = sqrt(diff2) / (fmax(sqrt(an2), sqrt(fd2)) + 1e-12);
    if (verbose && rel > 1e-6)
      fprintf(stderr, "  %s block %s: relative error %.3g (|g| %.3g)\n", what, blocks[k].name, rel, sqrt(an2));
    worst = fmax(worst, rel);
  }
  return worst;
}

static void setup(problem *p, hn_arch arch, hn_activation act, hn_opening open, int depth, int width,
                  int reversible, int stride, uint64_t seed, hn_kernel_path path) {
  hn_model_spec spec = {.arch = arch, .activation = act, .opening = open, .width = width, .depth = depth,
                        .n_features = 3, .n_classes = 3, .final_time = 2.0, .gamma = 0.05};
  CHECK_OK(hn_model_create(&p->m, &spec));
  hn_model_init_params(&p->m, seed, 1.0);
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_TEST, 1, 0);
  for (int j = 0; j < depth; j++) { /* non-zero biases so every term is exercised */
    hn_real *b = hn_layer_b(&p->m.layout, p->m.params, j);
    for (int i = 0; i < width; i++)
      b[i] = (hn_real)(0.3 * hn_rng_normal(&r));
  }
  for (size_t i = p->m.layout.off_cls_b; i < p->m.layout.n_params; i++)
    p->m.params[i] = (hn_real)(0.2 * hn_rng_normal(&r));
  p->B = 6;
  p->X = malloc((size_t)p->B * 3 * sizeof(hn_real));
  p->y = malloc((size_t)p->B * sizeof(int32_t));
  for (int i = 0; i < p->B * 3; i++)
    p->X[i] = (hn_real)hn_rng_normal(&r);
  for (int i = 0; i < p->B; i++)
    p->y[i] = (int32_t)hn_rng_below(&r, 3);
  p->alpha_t = 0.1;
  p->alpha_w = 0.05;
  CHECK_OK(hn_workspace_create(&p->ws, &p->m.layout, p->B, reversible, stride));
  CHECK_OK(hn_workspace_set_kernel(p->ws, path));
}

static void teardown(problem *p) {
  hn_workspace_destroy(p->ws);
  hn_model_destroy(&p->m);
  free(p->X);
  free(p->y);
}

static void test_all_combinations(void) {
  int total_checked = 0, total_skipped = 0, combos = 0;
  for (int arch = 0; arch < HN_ARCH_COUNT; arch++)
    for (int act = 0; act < HN_ACT_COUNT; act++)
      for (int open = 0; open < HN_OPEN_COUNT; open++)
        for (int mode = 0; mode < 3; mode++)
          for (int path = HN_KERNEL_NARROW; path <= HN_KERNEL_WIDE; path++) {
            if ((mode > 0 || path == HN_KERNEL_NARROW) && !hn_arch_is_reversible((hn_arch)arch))
              continue;
            problem p;
            setup(&p, (hn_arch)arch, (hn_activation)act, (hn_opening)open, 4, 5, mode > 0, mode == 2 ? 2 : 0,
                  11 + arch, (hn_kernel_path)path);
            analytic(&p);
            char what[96];
            snprintf(what, sizeof what, "%s/%s/%s/%s/%s", hn_arch_name(arch), hn_activation_name(act),
                     hn_opening_name(open), mode == 0 ? "stored" : mode == 1 ? "reversible" : "reversible+stride",
                     hn_kernel_path_name((hn_kernel_path)path));
            int skipped = 0, checked = 0;
            double worst = check_blocks(&p, act == HN_ACT_RELU, &skipped, &checked, what, 1);
            CHECK(worst <= 1e-6, "%s: worst block relative error %.3g", what, worst);
            CHECK(skipped * 20 <= checked, "%s: %d of %d coordinates at relu kinks", what, skipped, checked + skipped);
            printf("gradcheck %-47s worst relative error %.2e (%d coordinates, %d at kinks)\n", what, worst, checked,
                   skipped);
            total_checked += checked;
            total_skipped += skipped;
            combos++;
            teardown(&p);
          }
  printf("gradcheck: %d combinations, %d coordinates checked, %d skipped at relu kinks\n", combos,
         total_checked, total_skipped);
}

/* The check must be able to fail: corrupt one coordinate of dL/dK_1 by 1e-4 relative. */
static void test_corrupted_gradient_is_caught(void) {
  problem p;
  setup(&p, HN_ARCH_HAMILTONIAN, HN_ACT_TANH, HN_OPEN_DENSE, 4, 5, 1, 0, 5, HN_KERNEL_AUTO);
  analytic(&p);
  int skipped = 0, checked = 0;
  double clean = check_blocks(&p, 0, &skipped, &checked, "clean", 0);
  size_t i = p.m.layout.off_layers + p.m.layout.layer_size + 7; /* K_1[1][2] */
  p.m.grads[i] += (hn_real)(1e-4 * (fabs(p.m.grads[i]) + 1e-3));
  double corrupted = check_blocks(&p, 0, &skipped, &checked, "corrupted", 0);
  CHECK(clean <= 1e-6, "clean gradient passes: %g", clean);
  CHECK(corrupted > 1e-6, "corrupted gradient must fail the check: %g", corrupted);
  printf("gradcheck: clean %.2e, one coordinate corrupted by 1e-4 -> %.2e (caught)\n", clean, corrupted);
  teardown(&p);
}

/* Reversible and stored-state gradients agree to 1e-8 up to depth 256, on both paths. */
static void test_reversible_matches_stored(void) {
  const int depths[] = {16, 64, 256};
  for (int arch = HN_ARCH_HAMILTONIAN; arch <= HN_ARCH_LEAPFROG; arch++)
    for (int path = HN_KERNEL_NARROW; path <= HN_KERNEL_WIDE; path++)
      for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
        problem a, b;
        setup(&a, (hn_arch)arch, HN_ACT_TANH, HN_OPEN_PAD, depths[d], 8, 0, 0, 3, (hn_kernel_path)path);
        setup(&b, (hn_arch)arch, HN_ACT_TANH, HN_OPEN_PAD, depths[d], 8, 1, 0, 3, (hn_kernel_path)path);
        /* T = 20 as in the paper's experiments: h = 20 / depth */
        a.m.layout.h = b.m.layout.h = (hn_real)(20.0 / depths[d]);
        analytic(&a);
        analytic(&b);
        double diff = 0, norm = 0;
        for (size_t i = 0; i < a.m.layout.n_params; i++) {
          diff = fmax(diff, fabs((double)a.m.grads[i] - b.m.grads[i]));
          norm = fmax(norm, fabs((double)a.m.grads[i]));
        }
        CHECK(diff / norm <= 1e-8, "%s %s depth %d: reversible vs stored %.3g", hn_arch_name(arch),
              hn_kernel_path_name((hn_kernel_path)path), depths[d], diff / norm);
        printf("reversible vs stored %-11s %-6s depth %4d: max relative difference %.2e\n", hn_arch_name(arch),
               hn_kernel_path_name((hn_kernel_path)path), depths[d], diff / norm);
        teardown(&a);
        teardown(&b);
      }
}

/* The smoothness regulariser of a network deep and wide enough for its threaded pass: the value
 * and gradient against the plain double formula, and the same bits on 1 and 2 threads. */
static void test_regularizer_threaded(void) {
  problem p;
  setup(&p, HN_ARCH_HAMILTONIAN, HN_ACT_TANH, HN_OPEN_DENSE, 16, 96, 0, 0, 5, HN_KERNEL_WIDE); /* 2 blocks */
  const hn_layout *L = &p.m.layout;
  const size_t n = L->n_params, ls = L->layer_size;
  const int N = L->spec.depth;
  CHECK((size_t)N * ls >= ((size_t)1 << 16), "the test network (%zu parameters in layers) is too small for the "
        "threaded pass", (size_t)N * ls);
  const double c = 0.1 / (double)L->h;
  double want = 0;
  double *gwant = calloc(n, sizeof(double));
  for (int j = 0; j + 1 < N; j++)
    for (size_t i = 0; i < ls; i++) {
      const size_t a = L->off_layers + (size_t)j * ls + i;
      const double d = (double)p.m.params[a + ls] - (double)p.m.params[a];
      want += 0.5 * c * d * d;
      gwant[a] -= c * d;
      gwant[a + ls] += c * d;
    }
  double R[2];
  hn_real *g[2];
  for (int t = 0; t < 2; t++) {
    g[t] = calloc(n, sizeof(hn_real));
    omp_set_num_threads(t + 1);
    R[t] = hn_regularizer(L, p.m.params, g[t], 0.1, 0.0);
  }
  omp_set_num_threads(1);
  CHECK(R[0] == R[1] && memcmp(g[0], g[1], n * sizeof(hn_real)) == 0, "regulariser differs between 1 and 2 threads "
        "(%.17g vs %.17g)", R[0], R[1]);
  CHECK(fabs(R[0] - want) <= 1e-12 * fabs(want), "regulariser %.17g, want %.17g", R[0], want);
  double worst = 0;
  for (size_t i = 0; i < n; i++)
    worst = fmax(worst, fabs((double)g[0][i] - gwant[i]) / (fabs(gwant[i]) + 1e-12));
  CHECK(worst <= 1e-9, "regulariser gradient: worst relative difference %.3g from the plain formula", worst);
  free(g[0]);
  free(g[1]);
  free(gwant);
  teardown(&p);
}
#endif

int main(void) {
#ifndef HN_USE_DOUBLE
  printf("test_gradcheck: needs the double build (-DHAMNET_PRECISION=double); skipped\n");
  return 77;
#else
  test_all_combinations();
  test_corrupted_gradient_is_caught();
  test_reversible_matches_stored();
  test_regularizer_threaded();
  return hn_test_finish("test_gradcheck");
#endif
}
