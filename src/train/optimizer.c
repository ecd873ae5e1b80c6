/* optimizer.c - SGD (momentum, Nesterov) and Adam over the flat parameter buffer.
 *
 * One loop over n_params each, OpenMP-threaded: the moments have the parameters' layout, so
 * there is nothing per-tensor here. Weight decay is not applied here: it is part of the
 * objective (train/regularizer.c, alpha_w), as in README "The mathematics". */
#include <math.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/train.h"

int hn_optimizer_create(hn_optimizer *opt, const hn_config *cfg, size_t n_params) {
  memset(opt, 0, sizeof *opt);
  opt->kind = cfg->train.optimizer;
  opt->momentum = cfg->train.momentum;
  opt->nesterov = cfg->train.nesterov;
  opt->beta1 = cfg->train.beta1;
  opt->beta2 = cfg->train.beta2;
  opt->eps = cfg->train.adam_eps;
  opt->n = n_params;
  opt->m1 = hn_alloc(n_params, sizeof(hn_real), HN_MEM_OPTIM, "optimizer first moment");
  if (!opt->m1)
    return HN_ENOMEM;
  if (opt->kind == HN_OPT_ADAM) {
    opt->m2 = hn_alloc(n_params, sizeof(hn_real), HN_MEM_OPTIM, "optimizer second moment");
    if (!opt->m2) {
      hn_optimizer_destroy(opt);
      return HN_ENOMEM;
    }
  }
  return HN_OK;
}

void hn_optimizer_destroy(hn_optimizer *opt) {
  hn_free(opt->m1);
  hn_free(opt->m2);
  opt->m1 = opt->m2 = NULL;
}

void hn_optimizer_reset(hn_optimizer *opt) {
  memset(opt->m1, 0, opt->n * sizeof(hn_real));
  if (opt->m2)
    memset(opt->m2, 0, opt->n * sizeof(hn_real));
  opt->step = 0;
}

/* sqrt in the model's precision: with sqrt() a float build would do the update in double, and
 * CMake compiles this file with -fno-math-errno (b >= 0, sqrt never fails) so that the loop
 * vectorises - the errno branch keeps it scalar. */
static inline hn_real real_sqrt(hn_real x) {
#ifdef HN_USE_DOUBLE
  return sqrt(x);
#else
  return sqrtf(x);
#endif
}

void hn_optimizer_step(hn_optimizer *opt, hn_real *params, const hn_real *grads, double lr) {
  const long n = (long)opt->n;
  hn_real *m1 = opt->m1, *m2 = opt->m2;
  opt->step++;
  if (opt->kind == HN_OPT_SGD) {
    const hn_real mu = (hn_real)opt->momentum, a = (hn_real)lr;
    const int nesterov = opt->nesterov;
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (long i = 0; i < n; i++) {
      hn_real v = mu * m1[i] + grads[i];
      m1[i] = v;
      params[i] -= a * (nesterov ? grads[i] + mu * v : v);
    }
    return;
  }
  const double b1 = opt->beta1, b2 = opt->beta2;
  const hn_real c1 = (hn_real)(1 - b1), c2 = (hn_real)(1 - b2);
  const hn_real fb1 = (hn_real)b1, fb2 = (hn_real)b2;
  /* bias corrections folded into the step size and epsilon */
  const double bc1 = 1 - pow(b1, (double)opt->step), bc2 = 1 - pow(b2, (double)opt->step);
  const hn_real step = (hn_real)(lr * sqrt(bc2) / bc1), eps = (hn_real)(opt->eps * sqrt(bc2));
#pragma omp parallel for simd if (n > 65536) schedule(static)
  for (long i = 0; i < n; i++) {
    hn_real g = grads[i];
    hn_real a = fb1 * m1[i] + c1 * g;
    hn_real b = fb2 * m2[i] + c2 * g * g;
    m1[i] = a;
    m2[i] = b;
    params[i] -= step * a / (real_sqrt(b) + eps);
  }
}

double hn_lr_at(const hn_config *cfg, double epoch, int epochs) {
  const double lr = cfg->train.lr;
  switch (cfg->train.lr_schedule) {
  case HN_SCHED_STEP: {
    int k = cfg->train.lr_step_epochs > 0 ? (int)(epoch / cfg->train.lr_step_epochs) : 0;
    return lr * pow(cfg->train.lr_step_factor, k);
  }
  case HN_SCHED_COSINE: {
    double t = epochs > 0 ? fmin(1.0, epoch / epochs) : 1.0;
    return cfg->train.lr_min + 0.5 * (lr - cfg->train.lr_min) * (1 + cos(M_PI * t));
  }
  case HN_SCHED_CONSTANT:
  default:
    return lr;
  }
}
