/* test_depth_stability.c - the paper's point (issue 3, item 3), as a test.
 *
 * ||dL/dy_0|| / ||dL/dy_N|| at T = 20 for depths 16 .. 1024, every architecture:
 *  - at initialisation, the Hamiltonian and leapfrog networks stay within [0.1, 10] wherever
 *    the step size respects the Verlet bound (depth >= 64 at the default init_scale 1; every
 *    depth at init_scale 0.5); depths 16 and 32 at init_scale 1 (h = 1.25, 0.625 with
 *    sigma_max(K_j) ~ 2) are reported, not asserted;
 *  - training converges at depth 64 and 1024 with the same Adam learning rate (README "Learning
 *    rate and depth"), and the trained ratio does not grow with depth (within 10x from 64 to 1024).
 * ResNet and antisym are measured at the same settings and at init_scale 4 and reported: the
 * comparison is the point. CI-sized: ellipses, width 4, a few epochs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hamnet/checkpoint.h"
#include "hamnet/config.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/parallel.h"
#include "hamnet/train.h"
#include "../unit/hn_test.h"

static char dir[200];

/* ||dL/dy_0|| / ||dL/dy_N|| of `m` on the first `B` validation samples. */
static double gradient_ratio(hn_model *m, const hn_dataset *val, int B) {
  const int F = m->layout.spec.n_features, N = m->layout.spec.depth;
  hn_real *X = malloc((size_t)B * F * sizeof(hn_real));
  for (int i = 0; i < B * F; i++)
    X[i] = (hn_real)val->X[i];
  double *g = calloc((size_t)N + 1, sizeof(double));
  hn_probe probe = {NULL, NULL, g};
  hn_workspace *ws = NULL;
  CHECK_OK(hn_workspace_create(&ws, &m->layout, B, 0, 0));
  hn_batch_stats st;
  memset(m->grads, 0, m->layout.n_params * sizeof(hn_real));
  CHECK_OK(hn_model_train_batch(m, ws, X, val->y, B, (hn_real)(1.0 / B), NULL, NULL, &probe, &st));
  double ratio = sqrt(g[0]) / sqrt(g[N]);
  hn_workspace_destroy(ws);
  free(g);
  free(X);
  return ratio;
}

static void base_config(hn_config *cfg, hn_arch arch, int depth) {
  hn_config_defaults(cfg);
  snprintf(cfg->data.train, sizeof cfg->data.train, "%s/data/train.h5", dir);
  snprintf(cfg->data.val, sizeof cfg->data.val, "%s/data/val.h5", dir);
  cfg->model.arch = arch;
  cfg->model.width = 4;
  cfg->model.depth = depth;
  cfg->model.final_time = 20;
  cfg->train.epochs = 8;
  cfg->train.batch_size = 50;
  cfg->train.lr = 0.01;
  cfg->train.optimizer = HN_OPT_ADAM;
  cfg->checkpoint.every_epochs = 0;
  cfg->diagnostics.every_epochs = 0;
}

int main(int argc, char **argv) {
  CHECK_OK(hn_mpi_init(&argc, &argv, NULL));
  hn_log_set_level(HN_LOG_WARN);
  snprintf(dir, sizeof dir, "/tmp/hamnet-depth-XXXXXX");
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  char path[512];
  hn_dataset train, val;
  CHECK_OK(hn_datagen("ellipses", 0, 0, 1, 0.0, &train, &val));
  snprintf(path, sizeof path, "%s/data", dir);
  mkdir(path, 0777);
  snprintf(path, sizeof path, "%s/data/train.h5", dir);
  CHECK_OK(hn_dataset_write(path, &train));
  snprintf(path, sizeof path, "%s/data/val.h5", dir);
  CHECK_OK(hn_dataset_write(path, &val));

  /* --- at initialisation: every architecture, depths 16..1024, init_scale 1 (the default) and
   * 0.5, three seeds each; the worst ratio over the seeds (furthest from 1) is shown. */
  const int depths[] = {16, 32, 64, 256, 1024};
  const int nd = sizeof depths / sizeof depths[0];
  const double scales[] = {1.0, 0.5};
  for (int si = 0; si < 2; si++) {
    printf("\n||dL/dy_0|| / ||dL/dy_N|| at initialisation, T = 20, width 4, init_scale %g, worst of 3 seeds:\n",
           scales[si]);
    printf("%-12s", "arch");
    for (int d = 0; d < nd; d++)
      printf(" %10d", depths[d]);
    printf("\n");
    for (int arch = 0; arch < HN_ARCH_COUNT; arch++) {
      printf("%-12s", hn_arch_name(arch));
      for (int d = 0; d < nd; d++) {
        double worst = 1;
        for (uint64_t seed = 1; seed <= 3; seed++) {
          hn_config cfg;
          base_config(&cfg, (hn_arch)arch, depths[d]);
          hn_model_spec spec = hn_config_model_spec(&cfg);
          spec.n_features = 2;
          spec.n_classes = 2;
          hn_model m;
          CHECK_OK(hn_model_create(&m, &spec));
          hn_model_init_params(&m, seed, scales[si]);
          double r = gradient_ratio(&m, &val, 100);
          if (fabs(log(r)) > fabs(log(worst)))
            worst = r;
          hn_model_destroy(&m);
        }
        printf(" %10.3g", worst);
        /* The claim: stable architectures keep the ratio in [0.1, 10]. At init_scale 1 the
         * depths 16 and 32 (h = 1.25, 0.625) violate or touch the Verlet bound h sigma_max(K_j)
         * < 2 (sigma_max ~ 2 at this scale): there the ratio is reported, not asserted. */
        int asserted = hn_arch_is_reversible((hn_arch)arch) && (scales[si] < 1 || depths[d] >= 64);
        if (asserted)
          CHECK(worst >= 0.1 && worst <= 10, "%s depth %d init_scale %g at init: ratio %g outside [0.1, 10]",
                hn_arch_name(arch), depths[d], scales[si], worst);
      }
      printf("\n");
    }
  }

  /* --- after training: the same ratio on the trained network, and convergence at depth 1024 */
  printf("\nafter training (8 epochs of ellipses, adam, lr 0.01 at every depth, init_scale 1):\n");
  const int train_depths[] = {64, 1024};
  double trained_ratio[HN_ARCH_COUNT][2] = {{0}};
  for (int arch = 0; arch < HN_ARCH_COUNT; arch++)
    for (int d = 0; d < 2; d++) {
      hn_config cfg;
      base_config(&cfg, (hn_arch)arch, train_depths[d]);
      char run[400];
      snprintf(run, sizeof run, "%s/run-%s-%d", dir, hn_arch_name(arch), train_depths[d]);
      hn_train_result res;
      int status = hn_train(&cfg, run, &res);
      double r = NAN;
      if (status == HN_OK) {
        hn_model m;
        snprintf(path, sizeof path, "%.400s/best.h5", run);
        CHECK_OK(hn_ckpt_read(path, &m, NULL, NULL, NULL));
        r = gradient_ratio(&m, &val, 100);
        hn_model_destroy(&m);
      }
      printf("%-12s depth %5d: %-12s val accuracy %6.2f%%  ratio %.3g\n", hn_arch_name(arch), train_depths[d],
             status == HN_OK ? "finished" : hn_status_name(status), 100 * res.val_accuracy, r);
      if (hn_arch_is_reversible((hn_arch)arch)) {
        CHECK(status == HN_OK, "%s depth %d: training failed: %s", hn_arch_name(arch), train_depths[d], hn_errmsg());
        CHECK(res.val_accuracy >= 0.9, "%s depth %d: val accuracy %.3f < 0.9", hn_arch_name(arch), train_depths[d],
              res.val_accuracy);
        trained_ratio[arch][d] = r;
      }
      hn_error_clear();
    }
  /* A trained network stretches the neighbourhood of its decision boundary on purpose, so the
   * trained ratio is a property of the data set as much as of the architecture (README, "The
   * paper's point"). What must not happen is growth with depth: the ratio at depth 1024 stays
   * within a factor 10 of the ratio at depth 64. */
  for (int arch = HN_ARCH_HAMILTONIAN; arch <= HN_ARCH_LEAPFROG; arch++) {
    double q = trained_ratio[arch][1] / trained_ratio[arch][0];
    printf("%-12s trained ratio depth 1024 / depth 64 = %.3g\n", hn_arch_name(arch), q);
    CHECK(q >= 0.1 && q <= 10, "%s: trained ratio changes by %g from depth 64 to 1024", hn_arch_name(arch), q);
  }

  printf("\nat init_scale 4 (depth 256, at initialisation, seed 1):\n");
  for (int arch = HN_ARCH_RESNET; arch <= HN_ARCH_LEAPFROG; arch++) {
    hn_config cfg;
    base_config(&cfg, (hn_arch)arch, 256);
    hn_model_spec spec = hn_config_model_spec(&cfg);
    spec.n_features = 2;
    spec.n_classes = 2;
    hn_model m;
    CHECK_OK(hn_model_create(&m, &spec));
    hn_model_init_params(&m, 1, 4.0);
    printf("%-12s ratio %.4g\n", hn_arch_name(arch), gradient_ratio(&m, &val, 100));
    hn_model_destroy(&m);
  }
  hn_dataset_free(&train);
  hn_dataset_free(&val);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0, "cleanup");
  int failed = hn_test_finish("test_depth_stability");
  hn_mpi_finalize();
  return failed;
}
