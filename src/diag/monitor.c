/* monitor.c - the stability monitor (hamnet/diag.h "stability monitor", README, The mathematics, "Stability").
 *
 * Pure functions of the per-layer spectra: no MPI, no files, so the unit tests can feed them
 * matrices whose answers are known by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/diag.h"

double hn_monitor_verlet_amplification(double x) {
  if (!(x >= 0))
    return NAN;
  if (x <= 2)
    return 1.0; /* |2 - x^2| <= 2: both roots on the unit circle */
  double a = 0.5 * (x * x - 2.0);
  return a + sqrt(a * a - 1.0);
}

/* log of the Euler amplification of layer j with step c*h: max_i log|1 + c h lambda_i|. */
static double euler_log_amp(const double *re, const double *im, int n, double ch) {
  double worst = -INFINITY;
  for (int i = 0; i < n; i++) {
    double v = log(hypot(1.0 + ch * re[i], ch * im[i]));
    worst = v > worst ? v : worst;
  }
  return worst;
}

/* log G(c) = sum_j log g_j(c h). */
static double euler_log_total(int depth, int width, double ch, const double *re, const double *im) {
  double s = 0;
  for (int j = 0; j < depth; j++)
    s += euler_log_amp(re + (size_t)j * width, im + (size_t)j * width, width, ch);
  return s;
}

void hn_monitor_evaluate(hn_arch arch, int depth, int width, double h, double final_time, double band_low,
                         double band_high, hn_layer_spectrum *ls, const double *eig_re, const double *eig_im,
                         hn_monitor_result *r) {
  memset(r, 0, sizeof *r);
  r->shrink_factor = 1.0;
  r->worst_layer = -1;
  const int euler = arch == HN_ARCH_RESNET || arch == HN_ARCH_ANTISYM;
  const double lo = log(band_low), hi = log(band_high);
  double log_total = 0, worst = -INFINITY, x_max = 0;
  int nonfinite = 0;
  for (int j = 0; j < depth; j++) {
    double lg;
    if (euler) {
      lg = eig_re && eig_im ? euler_log_amp(eig_re + (size_t)j * width, eig_im + (size_t)j * width, width, h) : NAN;
    } else {
      double x = ls[j].h_sv_max;
      lg = log(hn_monitor_verlet_amplification(x));
      if (x >= 2.0)
        r->n_flagged++;
      if (x > x_max)
        x_max = x;
    }
    ls[j].amplification = exp(lg);
    if (!isfinite(lg)) {
      nonfinite = 1;
      continue;
    }
    if (euler && lg > 0)
      r->n_flagged++;
    double key = euler ? lg : ls[j].h_sv_max;
    if (key > worst) {
      worst = key;
      r->worst_layer = j;
    }
    log_total += lg;
  }
  if (nonfinite) {
    r->flags |= HN_DIAG_FLAG_NONFINITE;
    r->amplification = r->log_amp_per_time = r->shrink_factor = NAN;
    return;
  }
  r->amplification = exp(log_total);
  r->log_amp_per_time = log_total / final_time;
  if (log_total > hi)
    r->flags |= HN_DIAG_FLAG_BAND_HIGH;
  if (log_total < lo)
    r->flags |= HN_DIAG_FLAG_BAND_LOW;
  if (!euler && x_max >= 2.0)
    r->flags |= HN_DIAG_FLAG_VERLET;
  if (!r->flags)
    return;
  if (!euler) {
    /* h sigma_max < 2 on every layer is the criterion; inside it the amplification is 1, so it
     * also brings G back into any band that contains 1. */
    r->shrink_factor = (lo <= 0 && 0 <= hi && x_max > 0) ? 2.0 / x_max : NAN;
    return;
  }
  /* Euler: G(c) -> 1 as c -> 0, so when the band holds 1 a small enough c is inside it.
   * Bisect between c = 0 (inside) and c = 1 (outside) for the boundary; G need not be
   * monotone in c, so this is a factor that works, not necessarily the largest. */
  if (!(lo <= 0 && 0 <= hi)) {
    r->shrink_factor = NAN;
    return;
  }
  double in = 0.0, out = 1.0;
  for (int it = 0; it < 60; it++) {
    double c = 0.5 * (in + out);
    double lt = euler_log_total(depth, width, c * h, eig_re, eig_im);
    if (lt >= lo && lt <= hi)
      in = c;
    else
      out = c;
  }
  r->shrink_factor = in > 0 ? in : NAN;
}

/* Indices of the (up to) k layers with the largest key, largest first. */
static int top_layers(int depth, const hn_layer_spectrum *ls, int euler, int *idx, int k) {
  int count = 0;
  for (int j = 0; j < depth; j++) {
    double key = euler ? ls[j].amplification : ls[j].h_sv_max;
    if (!(key == key))
      continue;
    if (euler ? !(key > 1.0) : !(key >= 2.0))
      continue;
    int pos = count < k ? count++ : k;
    if (pos == k) { /* full: replace the smallest if this one is larger */
      double last = euler ? ls[idx[k - 1]].amplification : ls[idx[k - 1]].h_sv_max;
      if (!(key > last))
        continue;
      pos = k - 1;
    }
    idx[pos] = j;
    while (pos > 0) { /* keep sorted, largest first */
      double prev = euler ? ls[idx[pos - 1]].amplification : ls[idx[pos - 1]].h_sv_max;
      if (!(key > prev))
        break;
      int t = idx[pos - 1];
      idx[pos - 1] = idx[pos];
      idx[pos] = t;
      pos--;
    }
  }
  return count;
}

void hn_monitor_message(hn_arch arch, int depth, const hn_layer_spectrum *ls, const hn_monitor_result *r,
                        double band_low, double band_high, char *buf, size_t size) {
  buf[0] = '\0';
  if (!r->flags || size == 0)
    return;
  const int euler = arch == HN_ARCH_RESNET || arch == HN_ARCH_ANTISYM;
  size_t len = 0;
#define HN_APPEND(...)                                              \
  do {                                                              \
    if (len < size) {                                               \
      int w_ = snprintf(buf + len, size - len, __VA_ARGS__);        \
      len += w_ > 0 ? (size_t)w_ : 0;                               \
    }                                                               \
  } while (0)
  if (r->flags & HN_DIAG_FLAG_NONFINITE) {
    HN_APPEND("stability monitor: the layer spectra are not finite (the weights diverged); lower [train] lr "
              "or init_scale");
    return;
  }
  HN_APPEND("stability monitor (%s, frozen coefficients, sigma' <= 1):", hn_arch_name(arch));
  if (r->flags & HN_DIAG_FLAG_VERLET)
    HN_APPEND(" %d of %d layers violate the Verlet bound h*sigma_max(K_j) < 2", r->n_flagged, depth);
  if (r->flags & (HN_DIAG_FLAG_BAND_HIGH | HN_DIAG_FLAG_BAND_LOW))
    HN_APPEND("%s accumulated amplification %.3g is %s [band_low, band_high] = [%g, %g]",
              (r->flags & HN_DIAG_FLAG_VERLET) ? ";" : "", r->amplification,
              (r->flags & HN_DIAG_FLAG_BAND_HIGH) ? "above" : "below", band_low, band_high);
  int idx[8];
  int k = top_layers(depth, ls, euler, idx, 8);
  if (k > 0) {
    HN_APPEND("; %s layers:", euler ? "most amplifying" : "worst");
    for (int i = 0; i < k; i++)
      HN_APPEND(" %d (%s %.4g)", idx[i], euler ? "|1+h*lambda|" : "h*sigma_max",
                euler ? ls[idx[i]].amplification : ls[idx[i]].h_sv_max);
    if (euler && r->n_flagged > k)
      HN_APPEND(" and %d more with amplification > 1", r->n_flagged - k);
  } else if (euler && (r->flags & HN_DIAG_FLAG_BAND_LOW)) {
    HN_APPEND("; every layer damps (amplification < 1): the features and gradients vanish");
  }
  if (r->shrink_factor == r->shrink_factor && r->shrink_factor < 1.0) {
    if (r->flags & HN_DIAG_FLAG_VERLET)
      HN_APPEND("; h (T/depth) or the weights must shrink by a factor of more than %.3g", 1.0 / r->shrink_factor);
    else
      HN_APPEND("; shrinking h (T/depth) or the weights by a factor of %.3g brings it back into the band",
                1.0 / r->shrink_factor);
  } else if (band_low <= 1.0 && 1.0 <= band_high) {
    HN_APPEND("; no factor for h or the weights was found that fixes this");
  } else {
    HN_APPEND("; no uniform shrink of h or the weights fixes this (the band does not contain 1)");
  }
#undef HN_APPEND
}
