/* test_conv_gradcheck.c - the convolutional networks' hand-written backward pass against central
 * finite differences (double build; the float build skips with CTest's skip code 77).
 *
 * Every architecture x state mode (stored; hamiltonian and leapfrog also reversible, and
 * reversible with exact states every layer) x normalisation (batch, none) x activation, on a
 * two-stage network (2-channel 6x5 images, stages 3x2,4x2: a connective with pooling to 3x2 and an
 * odd column dropped; 5 samples in two tiles), every coordinate of every parameter block: the
 * opening's K_in and its gamma / beta (or bias), each K_j and b_j, the connective's W and gamma /
 * beta (or bias), the classifier. Objective = mean cross-entropy with batch statistics + both
 * regularisers. Each combination with each way of computing the 3x3 products: auto (the 6x5 stage
 * by Winograd F(4x4, 3x3), the 3x2 stage by im2col), im2col everywhere, Winograd everywhere.
 * Tolerance: relative error <= 1e-6 per block. relu: coordinates at a kink (finite
 * differences at eps and eps/10 disagree) are skipped and counted, as in test_gradcheck.c.
 * Also: a corrupted gradient coordinate is caught; reversible and stored gradients agree to 1e-8
 * for 2 x 32 layers; the running statistics move with training steps only; 3 x 2051 images (the
 * connective's pooling for images wider than its activation buffer). */
#include <stdlib.h>
#include <string.h>

#include "hamnet/convnet.h"
#include "hamnet/error.h"
#include "hamnet/model.h"
#include "hamnet/rng.h"
#include "hamnet/train.h"
#include "hn_test.h"

#ifdef HN_USE_DOUBLE

typedef struct {
  char name[32];
  size_t off, size;
} block;

typedef struct {
  hn_model m;
  hn_workspace *ws;
  hn_real *X, *g;
  int32_t *y;
  int B;
  double alpha_t, alpha_w;
} problem;

/* Mean cross-entropy with batch statistics (a training pass; its gradient is not used) + R. */
static double objective(problem *p) {
  hn_batch_stats st;
  CHECK_OK(hn_model_train_batch(&p->m, p->ws, p->X, p->y, p->B, (hn_real)(1.0 / p->B), NULL, NULL, NULL, &st));
  return st.loss_sum / p->B + hn_regularizer(&p->m.layout, p->m.params, NULL, p->alpha_t, p->alpha_w);
}

static void analytic(problem *p) {
  hn_batch_stats st;
  memset(p->m.grads, 0, p->m.layout.n_params * sizeof(hn_real));
  CHECK_OK(hn_model_train_batch(&p->m, p->ws, p->X, p->y, p->B, (hn_real)(1.0 / p->B), NULL, NULL, NULL, &st));
  hn_regularizer(&p->m.layout, p->m.params, p->m.grads, p->alpha_t, p->alpha_w);
  memcpy(p->g, p->m.grads, p->m.layout.n_params * sizeof(hn_real));
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
  const hn_model_spec *s = &L->spec;
  const hn_conv_layout *c = &L->conv;
  const int batch = s->norm == HN_NORM_BATCH;
  int nb = 0;
  const size_t c0 = (size_t)s->stage_channels[0];
  b[nb++] = (block){"open/K", c->off_open_K, c0 * s->image_channels * 9};
  if (batch)
    b[nb++] = (block){"open/gamma", c->off_open_g, c0};
  b[nb++] = (block){"open/beta_or_b", c->off_open_b, c0};
  for (int k = 0; k < s->n_stages; k++) {
    const size_t ch = (size_t)s->stage_channels[k];
    for (int j = 0; j < s->stage_layers[k]; j++) {
      size_t off = c->off_stage[k] + (size_t)j * c->layer_size[k];
      b[nb] = (block){"", off, 9 * ch * ch};
      snprintf(b[nb++].name, 32, "stage%d/K_%d", k, j);
      b[nb] = (block){"", off + 9 * ch * ch, ch};
      snprintf(b[nb++].name, 32, "stage%d/b_%d", k, j);
    }
    if (k + 1 < s->n_stages) {
      const size_t next = (size_t)s->stage_channels[k + 1];
      b[nb] = (block){"", c->off_conn_W[k], next * ch};
      snprintf(b[nb++].name, 32, "conn%d/W", k);
      if (batch) {
        b[nb] = (block){"", c->off_conn_g[k], next};
        snprintf(b[nb++].name, 32, "conn%d/gamma", k);
      }
      b[nb] = (block){"", c->off_conn_b[k], next};
      snprintf(b[nb++].name, 32, "conn%d/beta_or_b", k);
    }
  }
  b[nb++] = (block){"cls/W", L->off_cls_W, (size_t)s->n_classes * s->stage_channels[s->n_stages - 1]};
  b[nb++] = (block){"cls/b", L->off_cls_b, (size_t)s->n_classes};
  return nb;
}

/* Worst relative block error; *skipped counts kink coordinates. */
static double check_blocks(problem *p, int relu, int *skipped, int *checked, const char *what, int verbose) {
  block blocks[256];
  int nb = make_blocks(&p->m.layout, blocks);
  size_t covered = 0;
  double worst = 0;
  for (int k = 0; k < nb; k++) {
    double diff2 = 0, an2 = 0, fd2 = 0;
    covered += blocks[k].size;
    for (size_t i = blocks[k].off; i < blocks[k].off + blocks[k].size; i++) {
      double g_fd = fd(p, i, 1e-5);
      if (relu) {
        double g_fd2 = fd(p, i, 1e-6);
        if (fabs(g_fd - g_fd2) > 1e-4 * fmax(1e-3, fabs(g_fd2))) {
          (*skipped)++;
          continue;
        }
      }
      double g = p->g[i];
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
  CHECK(covered == p->m.layout.n_params, "%s: the blocks cover %zu of %zu parameters", what, covered,
        p->m.layout.n_params);
  return worst;
}

static void setup_image(problem *p, hn_arch arch, hn_activation act, hn_norm norm, const int *channels,
                        const int *layers, int reversible, int stride, uint64_t seed, double T, int H, int W) {
  hn_model_spec spec = {.arch = arch, .activation = act, .opening = HN_OPEN_PAD, .n_features = 2 * H * W,
                        .n_classes = 3, .final_time = T, .gamma = 0.05, .n_stages = 2, .image_channels = 2,
                        .image_height = H, .image_width = W, .norm = norm};
  for (int k = 0; k < 2; k++) {
    spec.stage_channels[k] = channels[k];
    spec.stage_layers[k] = layers[k];
  }
  CHECK_OK(hn_model_create(&p->m, &spec));
  hn_model_init_params(&p->m, seed, 1.0);
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_TEST, 1, 0);
  /* non-zero biases and gamma != 1 so that every term is exercised */
  const hn_layout *L = &p->m.layout;
  block blocks[256];
  int nb = make_blocks(L, blocks);
  for (int k = 0; k < nb; k++)
    if (strstr(blocks[k].name, "/b") || strstr(blocks[k].name, "gamma"))
      for (size_t i = blocks[k].off; i < blocks[k].off + blocks[k].size; i++)
        p->m.params[i] += (hn_real)(0.3 * hn_rng_normal(&r));
  p->B = 5;
  const size_t F = (size_t)spec.n_features;
  p->X = malloc((size_t)p->B * F * sizeof(hn_real));
  p->y = malloc((size_t)p->B * sizeof(int32_t));
  p->g = malloc(L->n_params * sizeof(hn_real));
  for (size_t i = 0; i < (size_t)p->B * F; i++)
    p->X[i] = (hn_real)hn_rng_normal(&r);
  for (int i = 0; i < p->B; i++)
    p->y[i] = (int32_t)hn_rng_below(&r, 3);
  p->alpha_t = 0.1;
  p->alpha_w = 0.05;
  CHECK_OK(hn_workspace_create(&p->ws, L, p->B, reversible, stride));
}

/* The standard problem: 2-channel 6x5 images. */
static void setup(problem *p, hn_arch arch, hn_activation act, hn_norm norm, const int *channels,
                  const int *layers, int reversible, int stride, uint64_t seed, double T) {
  setup_image(p, arch, act, norm, channels, layers, reversible, stride, seed, T, 6, 5);
}

static void teardown(problem *p) {
  hn_workspace_destroy(p->ws);
  hn_model_destroy(&p->m);
  free(p->X);
  free(p->y);
  free(p->g);
}

static const int small_ch[2] = {3, 4}, small_l[2] = {2, 2};

static void test_all_combinations(hn_conv_algorithm algo) {
  int total_checked = 0, total_skipped = 0, combos = 0;
  for (int arch = 0; arch < HN_ARCH_COUNT; arch++)
    for (int norm = 0; norm < HN_NORM_COUNT; norm++)
      for (int act = 0; act < HN_ACT_COUNT; act++)
        for (int mode = 0; mode < 3; mode++) {
          if (mode > 0 && !hn_arch_is_reversible((hn_arch)arch))
            continue;
          problem p;
          setup(&p, (hn_arch)arch, (hn_activation)act, (hn_norm)norm, small_ch, small_l, mode > 0, mode == 2 ? 1 : 0,
                21 + arch, 1.5);
          CHECK_OK(hn_workspace_set_conv_algorithm(p.ws, algo));
          analytic(&p);
          char what[96];
          snprintf(what, sizeof what, "%s/%s/%s/%s/%s", hn_arch_name((hn_arch)arch), hn_norm_name((hn_norm)norm),
                   hn_activation_name((hn_activation)act),
                   mode == 0 ? "stored" : mode == 1 ? "reversible" : "reversible+stride", hn_conv_algorithm_name(algo));
          int skipped = 0, checked = 0;
          double worst = check_blocks(&p, act == HN_ACT_RELU, &skipped, &checked, what, 1);
          CHECK(worst <= 1e-6, "%s: worst block relative error %.3g", what, worst);
          CHECK(skipped * 20 <= checked, "%s: %d of %d coordinates at relu kinks", what, skipped, checked + skipped);
          printf("conv gradcheck %-40s worst relative error %.2e (%d coordinates, %d at kinks)\n", what, worst,
                 checked, skipped);
          total_checked += checked;
          total_skipped += skipped;
          combos++;
          teardown(&p);
        }
  printf("conv gradcheck (%s): %d combinations, %d coordinates checked, %d skipped at relu kinks\n",
         hn_conv_algorithm_name(algo), combos, total_checked, total_skipped);
}

/* Images wider than the connective's activation buffer (2 W > 4096 values) are pooled the
 * scalar way (convnet.c, connective_forward): 3 x 2051 images, pooled to 1 x 1025. tanh only:
 * with 12k pixels per image nearly every relu coordinate sits next to some kink (the pooling
 * code is the same for both activations). */
static void test_wide_images(void) {
  const int ch[2] = {1, 2}, layers[2] = {1, 1};
  problem p;
  setup_image(&p, HN_ARCH_HAMILTONIAN, HN_ACT_TANH, HN_NORM_BATCH, ch, layers, 0, 0, 9, 1.0, 3, 2051);
  analytic(&p);
  int skipped = 0, checked = 0;
  double worst = check_blocks(&p, 0, &skipped, &checked, "3x2051 images", 1);
  CHECK(worst <= 1e-6, "3x2051 images: worst block relative error %.3g", worst);
  printf("conv gradcheck %-40s worst relative error %.2e (%d coordinates)\n", "hamiltonian/batch/tanh, 3x2051 images",
         worst, checked);
  teardown(&p);
}

/* The check must be able to fail: one coordinate of the opening's K and one of a connective's
 * gamma corrupted by 1e-4 relative. */
static void test_corrupted_gradient_is_caught(void) {
  problem p;
  setup(&p, HN_ARCH_HAMILTONIAN, HN_ACT_TANH, HN_NORM_BATCH, small_ch, small_l, 1, 0, 5, 1.5);
  analytic(&p);
  int skipped = 0, checked = 0;
  double clean = check_blocks(&p, 0, &skipped, &checked, "clean", 0);
  const size_t where[2] = {p.m.layout.conv.off_open_K + 5, p.m.layout.conv.off_conn_g[0] + 1};
  for (int k = 0; k < 2; k++) {
    hn_real keep = p.g[where[k]];
    p.g[where[k]] += (hn_real)(1e-4 * (fabs(keep) + 1e-3));
    double corrupted = check_blocks(&p, 0, &skipped, &checked, "corrupted", 0);
    CHECK(corrupted > 1e-6, "corrupted gradient %d must fail the check: %g", k, corrupted);
    printf("conv gradcheck: clean %.2e, one coordinate corrupted by 1e-4 -> %.2e (caught)\n", clean, corrupted);
    p.g[where[k]] = keep;
  }
  CHECK(clean <= 1e-6, "clean gradient passes: %g", clean);
  teardown(&p);
}

/* Reversible and stored-state gradients agree to 1e-8 for 2 x 32 layers. */
static void test_reversible_matches_stored(void) {
  const int ch[2] = {3, 4}, layers[2] = {32, 32};
  for (int arch = HN_ARCH_HAMILTONIAN; arch <= HN_ARCH_LEAPFROG; arch++) {
    problem a, b;
    setup(&a, (hn_arch)arch, HN_ACT_TANH, HN_NORM_BATCH, ch, layers, 0, 0, 3, 5.0);
    setup(&b, (hn_arch)arch, HN_ACT_TANH, HN_NORM_BATCH, ch, layers, 1, 0, 3, 5.0);
    analytic(&a);
    analytic(&b);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.m.layout.n_params; i++) {
      diff = fmax(diff, fabs((double)a.g[i] - b.g[i]));
      norm = fmax(norm, fabs((double)a.g[i]));
    }
    CHECK(diff / norm <= 1e-8, "%s: reversible vs stored %.3g", hn_arch_name((hn_arch)arch), diff / norm);
    printf("conv reversible vs stored %-11s 2 x 32 layers: max relative difference %.2e\n",
           hn_arch_name((hn_arch)arch), diff / norm);
    teardown(&a);
    teardown(&b);
  }
}

#endif

int main(void) {
#ifndef HN_USE_DOUBLE
  printf("test_conv_gradcheck: needs the double build (-DHAMNET_PRECISION=double); skipped\n");
  return 77;
#else
  test_all_combinations(HN_CONV_AUTO);   /* 6x5 maps by Winograd, then 3x2 by im2col */
  test_all_combinations(HN_CONV_IM2COL); /* every product by im2col */
  test_all_combinations(HN_CONV_WINOGRAD); /* every product by Winograd, 3x2 maps too */
  test_wide_images();
  test_corrupted_gradient_is_caught();
  test_reversible_matches_stored();
  return hn_test_finish("test_conv_gradcheck");
#endif
}
