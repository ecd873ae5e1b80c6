/* test_convnet.c - convolutional networks beyond their gradients (test_conv_gradcheck.c):
 *   - batch normalisation's running statistics: updated by training passes only (not by probe
 *     passes nor evaluation), and evaluation uses them: once they have converged to the batch's
 *     statistics, evaluation gives the training pass's loss (up to the unbiased-variance factor);
 *     without normalisation evaluation and training passes agree exactly;
 *   - evaluation on training workspaces of every mode equals evaluation on an evaluation one;
 *   - results do not depend on the number of threads beyond rounding (tiles, thread order);
 *   - the convolution algorithms: auto takes Winograd for the 8x8 and 4x4 stages and im2col for
 *     the 2x2 one; auto, im2col and Winograd give the same loss and gradients up to rounding;
 *   - image augmentation: the documented crop and flip, a pure function of (seed, epoch, row);
 *   - checkpoints: format_version 2 round trip of a convolutional model (parameters, statistics,
 *     spec), and a format_version 1 file written by the previous hamnet (tests/data) read and
 *     evaluated to the loss that build reported. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamnet/augment.h"
#include "hamnet/checkpoint.h"
#include "hamnet/convnet.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/model.h"
#include "hamnet/rng.h"
#include "hamnet/train.h"
#include "hn_test.h"

#ifdef HN_USE_DOUBLE
#define TOL 1e-11
#else
#define TOL 2e-5
#endif

typedef struct {
  hn_model m;
  hn_real *X;
  int32_t *y;
  int B;
} net;

static void make_net(net *p, hn_arch arch, hn_norm norm, int B, uint64_t seed) {
  hn_model_spec spec = {.arch = arch, .activation = HN_ACT_TANH, .n_features = 3 * 8 * 8, .n_classes = 4,
                        .final_time = 2.0, .gamma = 0.05, .n_stages = 3, .image_channels = 3, .image_height = 8,
                        .image_width = 8, .norm = norm, .stage_channels = {4, 6, 8}, .stage_layers = {3, 2, 2}};
  CHECK_OK(hn_model_create(&p->m, &spec));
  hn_model_init_params(&p->m, seed, 1.0);
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_TEST, 2, 0);
  p->B = B;
  p->X = malloc((size_t)B * spec.n_features * sizeof(hn_real));
  p->y = malloc((size_t)B * sizeof(int32_t));
  for (size_t i = 0; i < (size_t)B * spec.n_features; i++)
    p->X[i] = (hn_real)(0.5 + hn_rng_normal(&r));
  for (int i = 0; i < B; i++)
    p->y[i] = (int32_t)hn_rng_below(&r, 4);
}

static void free_net(net *p) {
  hn_model_destroy(&p->m);
  free(p->X);
  free(p->y);
}

static double train_loss(net *p, hn_workspace *ws, hn_probe *probe) {
  hn_batch_stats st;
  memset(p->m.grads, 0, p->m.layout.n_params * sizeof(hn_real));
  CHECK_OK(hn_model_train_batch(&p->m, ws, p->X, p->y, p->B, (hn_real)(1.0 / p->B), NULL, NULL, probe, &st));
  return st.loss_sum / p->B;
}

static double eval_loss(net *p, hn_workspace *ws, hn_real *logits) {
  hn_batch_stats st;
  CHECK_OK(hn_model_evaluate(&p->m, ws, p->X, p->y, p->B, logits, NULL, &st));
  return st.loss_sum / p->B;
}

static int same(const hn_real *a, const hn_real *b, size_t n) { return memcmp(a, b, n * sizeof(hn_real)) == 0; }

static void test_running_statistics(void) {
  net p;
  make_net(&p, HN_ARCH_HAMILTONIAN, HN_NORM_BATCH, 24, 3);
  hn_workspace *ws;
  CHECK_OK(hn_workspace_create(&ws, &p.m.layout, p.B, 1, 0));
  const size_t ns = p.m.layout.n_state;
  CHECK(ns == 2 * (4 + 6 + 8), "state: mean and variance of 3 normalised layers (%zu)", ns);
  hn_real *s0 = malloc(ns * sizeof(hn_real));
  memcpy(s0, p.m.state, ns * sizeof(hn_real));
  eval_loss(&p, ws, NULL);
  CHECK(same(s0, p.m.state, ns), "evaluation does not change the statistics");
  double y2[8] = {0};
  hn_probe probe = {y2, NULL, NULL};
  double probe_loss = train_loss(&p, ws, &probe);
  CHECK(same(s0, p.m.state, ns), "a probe pass does not change the statistics");
  double loss = train_loss(&p, ws, NULL);
  CHECK(!same(s0, p.m.state, ns), "a training pass updates the statistics");
  CHECK_CLOSE(loss, probe_loss, 1e-12);
  /* the running statistics converge to the batch's (momentum 0.1: 0.9^400 ~ 5e-19) */
  for (int k = 0; k < 400; k++)
    train_loss(&p, ws, NULL);
  double ev = eval_loss(&p, ws, NULL);
  /* evaluation uses the unbiased variance: N / (N - 1) with N = 24 * 16 (the last stage's 2x2
   * maps x 24 samples = 96 is the smallest N) shifts the loss by well under 1% */
  CHECK(fabs(ev - loss) <= 1e-2 * fabs(loss), "evaluation with converged statistics %.6g vs training %.6g", ev, loss);
  printf("running statistics: training loss %.6f, evaluation with converged statistics %.6f\n", loss, ev);
  hn_workspace_destroy(ws);
  free(s0);
  free_net(&p);
}

/* Evaluation is the same function whatever workspace runs it; without normalisation it is the
 * training pass's loss. */
static void test_evaluation_paths(void) {
  for (int arch = 0; arch < HN_ARCH_COUNT; arch++)
    for (int norm = 0; norm < HN_NORM_COUNT; norm++) {
      net p;
      make_net(&p, (hn_arch)arch, (hn_norm)norm, 9, 5 + arch);
      const int C = p.m.layout.spec.n_classes;
      hn_real *ref = malloc((size_t)p.B * C * sizeof(hn_real)), *lg = malloc((size_t)p.B * C * sizeof(hn_real));
      hn_workspace *ev;
      CHECK_OK(hn_workspace_create_eval(&ev, &p.m.layout, p.B));
      double e0 = eval_loss(&p, ev, ref);
      for (int rev = 0; rev <= 1; rev++) {
        if (rev && !hn_arch_is_reversible((hn_arch)arch))
          continue;
        hn_workspace *ws;
        CHECK_OK(hn_workspace_create(&ws, &p.m.layout, p.B, rev, rev ? 2 : 0));
        double e1 = eval_loss(&p, ws, lg);
        CHECK(same(ref, lg, (size_t)p.B * C), "%s/%s: evaluation on a %s training workspace", hn_arch_name(arch),
              hn_norm_name(norm), rev ? "reversible" : "stored");
        CHECK(e0 == e1, "same loss");
        if (norm == HN_NORM_NONE) {
          double t = train_loss(&p, ws, NULL);
          CHECK(fabs(t - e0) <= TOL * fmax(1, fabs(e0)), "%s: training pass %.17g vs evaluation %.17g",
                hn_arch_name(arch), t, e0);
          double e2 = eval_loss(&p, ws, lg); /* after a backward pass, the stage buffers are reused */
          CHECK(e2 == e0, "%s: evaluation after a training pass", hn_arch_name(arch));
        }
        hn_workspace_destroy(ws);
      }
      hn_workspace_destroy(ev);
      free(ref);
      free(lg);
      free_net(&p);
    }
}

/* 1 and 2 threads: the same gradients up to rounding (the tiles and the order of the sums change). */
static void test_threads(void) {
  net p;
  make_net(&p, HN_ARCH_HAMILTONIAN, HN_NORM_BATCH, 16, 9);
  const size_t np = p.m.layout.n_params;
  hn_real *g1 = malloc(np * sizeof(hn_real));
  const int keep = omp_get_max_threads();
  double loss[2];
  for (int k = 0; k < 2; k++) {
    omp_set_num_threads(k == 0 ? 1 : 2);
    hn_workspace *ws;
    CHECK_OK(hn_workspace_create(&ws, &p.m.layout, p.B, 1, 0));
    hn_probe probe = {NULL, NULL, NULL}; /* no statistics update: both passes see the same model */
    loss[k] = train_loss(&p, ws, &probe);
    if (k == 0)
      memcpy(g1, p.m.grads, np * sizeof(hn_real));
    hn_workspace_destroy(ws);
  }
  omp_set_num_threads(keep);
  double d = 0, s = 0;
  for (size_t i = 0; i < np; i++) {
    d = fmax(d, fabs((double)g1[i] - p.m.grads[i]));
    s = fmax(s, fabs((double)g1[i]));
  }
  CHECK(d <= 100 * TOL * s, "1 vs 2 threads: gradients differ by %.3g (max %.3g)", d, s);
  CHECK_CLOSE(loss[0], loss[1], 10 * TOL);
  printf("threads: 1 vs 2 threads, max gradient difference %.2e relative\n", d / s);
  free(g1);
  free_net(&p);
}

static void test_augmentation(void) {
  const int B = 3, C = 2, H = 4, W = 5;
  const size_t img = (size_t)C * H * W;
  hn_real X[3 * 2 * 4 * 5], Y[3 * 2 * 4 * 5];
  for (size_t i = 0; i < (size_t)B * img; i++)
    X[i] = (hn_real)(1 + i);
  const int64_t rows[3] = {7, 100, 3};
  hn_augment a = {2, 1};
  memcpy(Y, X, sizeof X);
  CHECK_OK(hn_augment_batch(&a, 11, 4, rows, B, C, H, W, Y));
  int changed = 0;
  for (int i = 0; i < B; i++) { /* the documented draws: dy, dx in -2..2, then one bit */
    hn_rng r;
    hn_rng_init(&r, 11, HN_RNG_AUGMENT, 4, (uint64_t)rows[i]);
    int dy = (int)hn_rng_below(&r, 5) - 2, dx = (int)hn_rng_below(&r, 5) - 2, flip = (int)(hn_rng_u32(&r) & 1);
    changed += dy != 0 || dx != 0 || flip;
    for (int c = 0; c < C; c++)
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
          int xs = (flip ? W - 1 - x : x) + dx, ys = y + dy;
          hn_real want = xs >= 0 && xs < W && ys >= 0 && ys < H ? X[i * img + ((size_t)c * H + ys) * W + xs] : 0;
          CHECK(Y[i * img + ((size_t)c * H + y) * W + x] == want, "sample %d c %d (%d, %d)", i, c, y, x);
        }
  }
  CHECK(changed > 0, "some sample is augmented");
  /* a sample's augmentation depends on (seed, epoch, row) only: alone, or elsewhere in a batch */
  hn_real one[2 * 4 * 5];
  memcpy(one, X + 1 * img, img * sizeof(hn_real));
  CHECK_OK(hn_augment_batch(&a, 11, 4, &rows[1], 1, C, H, W, one));
  CHECK(memcmp(one, Y + img, img * sizeof(hn_real)) == 0, "independent of the batch");
  memcpy(one, X + 1 * img, img * sizeof(hn_real));
  int differs = 0;
  for (int e = 5; e < 12 && !differs; e++) {
    hn_real two[2 * 4 * 5];
    memcpy(two, one, sizeof two);
    CHECK_OK(hn_augment_batch(&a, 11, e, &rows[1], 1, C, H, W, two));
    differs = memcmp(two, Y + img, img * sizeof(hn_real)) != 0;
  }
  CHECK(differs, "another epoch draws other crops");
  hn_augment off = {0, 0};
  memcpy(Y, X, sizeof X);
  CHECK_OK(hn_augment_batch(&off, 11, 4, rows, B, C, H, W, Y));
  CHECK(memcmp(X, Y, sizeof X) == 0, "off: unchanged");
}

static void test_checkpoint_v2(void) {
  net p;
  make_net(&p, HN_ARCH_LEAPFROG, HN_NORM_BATCH, 8, 13);
  hn_workspace *ws;
  CHECK_OK(hn_workspace_create(&ws, &p.m.layout, p.B, 1, 0));
  train_loss(&p, ws, NULL); /* statistics away from 0 / 1 */
  char path[] = "/tmp/hn_test_convnet_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp");
  close(fd);
  CHECK_OK(hn_ckpt_write(path, &p.m, NULL, NULL, "[model]\nstages = 4x3,6x2,8x2\n"));
  hn_ckpt_info info;
  CHECK_OK(hn_ckpt_read_info(path, &info));
  CHECK(info.format_version == 2, "format_version %d", info.format_version);
  CHECK(info.spec.n_stages == 3 && info.spec.stage_channels[2] == 8 && info.spec.stage_layers[0] == 3 &&
            info.spec.image_height == 8 && info.spec.norm == HN_NORM_BATCH && info.spec.depth == 7 &&
            info.spec.width == 8,
        "spec read back");
  CHECK_OK(hn_ckpt_verify(path));
  hn_model r;
  CHECK_OK(hn_ckpt_read(path, &r, NULL, NULL, NULL));
  CHECK(r.layout.n_params == p.m.layout.n_params && same(r.params, p.m.params, r.layout.n_params),
        "parameters read back");
  CHECK(r.layout.n_state == p.m.layout.n_state && same(r.state, p.m.state, r.layout.n_state), "statistics read back");
  double a = eval_loss(&p, ws, NULL);
  net q = p;
  q.m = r;
  double b = eval_loss(&q, ws, NULL);
  CHECK(a == b, "the read model evaluates the same: %.17g vs %.17g", a, b);
  hn_model_destroy(&r);
  unlink(path);
  hn_workspace_destroy(ws);
  free_net(&p);
}

/* tests/data/ckpt_v1_hamiltonian.h5: written by hamnet 0.1.0 (git 8c8ad70, format_version 1) after 2
 * epochs on `hamnet datagen ellipses --samples 200 --val-samples 100` (seed 1); that build's
 * `hamnet eval` gave loss 0.5989757816903768, 70 of 100 on the validation set. */
static void test_checkpoint_v1(void) {
  const char *src = getenv("HN_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/ckpt_v1_hamiltonian.h5", src ? src : "../..");
  if (access(path, R_OK) != 0) {
    CHECK(0, "fixture %s missing", path);
    return;
  }
  hn_ckpt_info info;
  CHECK_OK(hn_ckpt_read_info(path, &info));
  CHECK(info.format_version == 1 && info.spec.n_stages == 0 && info.spec.arch == HN_ARCH_HAMILTONIAN,
        "a version 1 dense checkpoint (version %d)", info.format_version);
  CHECK_OK(hn_ckpt_verify(path));
  hn_model m;
  hn_real *m1 = NULL, *m2 = NULL;
  CHECK_OK(hn_ckpt_read_spec(path, &info.spec));
  m1 = calloc((size_t)info.n_params, sizeof(hn_real));
  m2 = calloc((size_t)info.n_params, sizeof(hn_real));
  hn_ckpt_optimizer opt = {"adam", 0, m1, m2};
  hn_progress prog;
  char *text = NULL;
  CHECK_OK(hn_ckpt_read(path, &m, &opt, &prog, &text));
  CHECK(opt.step == 8 && prog.epoch == 2 && prog.n_history == 2 && text && strstr(text, "[model]"),
        "optimizer, progress and config of version 1 read");
  CHECK(m.state == NULL && m.layout.n_state == 0, "dense: no statistics");
  hn_dataset tr, va;
  CHECK_OK(hn_datagen("ellipses", 200, 100, 1, 0, &tr, &va));
  hn_real *X = malloc((size_t)va.n * va.n_features * sizeof(hn_real));
  for (size_t i = 0; i < (size_t)va.n * va.n_features; i++)
    X[i] = (hn_real)va.X[i];
  hn_workspace *ws;
  CHECK_OK(hn_workspace_create_eval(&ws, &m.layout, (int)va.n));
  hn_batch_stats st;
  CHECK_OK(hn_model_evaluate(&m, ws, X, va.y, (int)va.n, NULL, NULL, &st));
  CHECK(st.correct == 70, "70 of 100 correct, as the version 1 build (%lld)", (long long)st.correct);
  CHECK_CLOSE(st.loss_sum / va.n, 0.5989757816903768, 1e-5);
  printf("format_version 1 checkpoint: loss %.10f, %lld of 100 (the writing build: 0.5989757817, 70)\n",
         st.loss_sum / va.n, (long long)st.correct);
  hn_workspace_destroy(ws);
  free(X);
  hn_dataset_free(&tr);
  hn_dataset_free(&va);
  hn_model_destroy(&m);
  hn_progress_free(&prog);
  free(text);
  free(m1);
  free(m2);
}

static void test_conv_algorithms(void) {
  net p;
  make_net(&p, HN_ARCH_HAMILTONIAN, HN_NORM_BATCH, 16, 11);
  const size_t np = p.m.layout.n_params;
  hn_real *g[HN_CONV_COUNT];
  double loss[HN_CONV_COUNT];
  const unsigned expect[HN_CONV_COUNT] = {3u, 7u, 0u}; /* auto: 8x8, 4x4 maps; winograd: all; im2col: none */
  for (int a = 0; a < HN_CONV_COUNT; a++) {
    hn_workspace *ws;
    CHECK_OK(hn_workspace_create(&ws, &p.m.layout, p.B, 0, 0));
    CHECK_OK(hn_workspace_set_conv_algorithm(ws, (hn_conv_algorithm)a));
    CHECK(hn_workspace_winograd_stages(ws) == expect[a], "%s: Winograd stages 0x%x, expected 0x%x",
          hn_conv_algorithm_name((hn_conv_algorithm)a), hn_workspace_winograd_stages(ws), expect[a]);
    hn_probe probe = {NULL, NULL, NULL};
    loss[a] = train_loss(&p, ws, &probe);
    g[a] = malloc(np * sizeof(hn_real));
    memcpy(g[a], p.m.grads, np * sizeof(hn_real));
    hn_workspace_destroy(ws);
  }
  for (int a = HN_CONV_AUTO; a <= HN_CONV_WINOGRAD; a++) {
    double d = 0, s = 0;
    for (size_t i = 0; i < np; i++) {
      d = fmax(d, fabs((double)g[a][i] - g[HN_CONV_IM2COL][i]));
      s = fmax(s, fabs((double)g[HN_CONV_IM2COL][i]));
    }
    CHECK(d <= 100 * TOL * s, "%s vs im2col: gradients differ by %.3g (max %.3g)",
          hn_conv_algorithm_name((hn_conv_algorithm)a), d, s);
    CHECK_CLOSE(loss[a], loss[HN_CONV_IM2COL], 10 * TOL);
    printf("conv algorithms: %s vs im2col, loss %.9g vs %.9g, max gradient difference %.2e relative\n",
           hn_conv_algorithm_name((hn_conv_algorithm)a), loss[a], loss[HN_CONV_IM2COL], d / s);
  }
  for (int a = 0; a < HN_CONV_COUNT; a++)
    free(g[a]);
  free_net(&p);
}

int main(void) {
  test_running_statistics();
  test_conv_algorithms();
  test_evaluation_paths();
  test_threads();
  test_augmentation();
  test_checkpoint_v2();
  test_checkpoint_v1();
  return hn_test_finish("test_convnet");
}
