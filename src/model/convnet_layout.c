/* convnet_layout.c - a convolutional network's parameter layout, initialisation, regulariser and
 * per-layer operator norm (hamnet/convnet.h). The passes are in convnet.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/conv.h"
#include "hamnet/convnet.h"
#include "hamnet/error.h"
#include "hamnet/rng.h"

/* RNG stream indices of the blocks that are not stage layers (layers use their global index, as
 * dense layers do; the opening and classifier indices are those of layout.c). */
#define INIT_INDEX_OPENING (UINT64_C(1) << 40)
#define INIT_INDEX_CLASSIFIER ((UINT64_C(1) << 40) + 1)
#define INIT_INDEX_CONNECTIVE(s) ((UINT64_C(1) << 40) + 2 + (uint64_t)(s))

#define MAX_PARAMS (UINT64_C(1) << 40)

int hn_convnet_layout_init(hn_layout *L, const hn_model_spec *s) {
  const int S = s->n_stages, C = s->n_classes;
  const int Cin = s->image_channels, H = s->image_height, W = s->image_width;
  if (S < 1 || S > HN_MAX_STAGES)
    return hn_fail(HN_EINVAL, "a convolutional network has 1..%d stages (got %d)", HN_MAX_STAGES, S);
  if (C < 2)
    return hn_fail(HN_EINVAL, "model needs n_classes >= 2 (got %d)", C);
  if (!(s->final_time > 0) || !isfinite(s->final_time))
    return hn_fail(HN_EINVAL, "[model] final_time must be > 0 (got %g)", s->final_time);
  if (!(s->gamma >= 0) || !isfinite(s->gamma))
    return hn_fail(HN_EINVAL, "[model] gamma must be >= 0 (got %g)", s->gamma);
  if (s->norm < 0 || s->norm >= HN_NORM_COUNT)
    return hn_fail(HN_EINVAL, "unknown normalisation %d", (int)s->norm);
  if (Cin < 1 || H < 1 || W < 1 || (int64_t)Cin * H * W != s->n_features)
    return hn_fail(HN_EINVAL, "[model] stages = ... (a convolutional network) needs images: data of shape [N, C, H, W] "
                   "(got %d features as C %d x H %d x W %d); use a data set of images or leave stages empty for "
                   "the dense network", s->n_features, Cin, H, W);
  if ((H >> (S - 1)) < 1 || (W >> (S - 1)) < 1)
    return hn_fail(HN_EINVAL, "[model] stages: %d stages halve %dx%d images %d times, to less than one pixel; use "
                   "fewer stages", S, H, W, S - 1);
  int depth = 0, width = 0;
  for (int k = 0; k < S; k++) {
    if (s->stage_channels[k] < 1 || s->stage_layers[k] < 1)
      return hn_fail(HN_EINVAL, "[model] stages: stage %d needs channels >= 1 and layers >= 1 (got %dx%d)", k + 1,
                     s->stage_channels[k], s->stage_layers[k]);
    depth += s->stage_layers[k];
    width = s->stage_channels[k] > width ? s->stage_channels[k] : width;
  }
  if ((s->depth != 0 && s->depth != depth) || (s->width != 0 && s->width != width))
    return hn_fail(HN_EINVAL, "[model] depth = %d and width = %d do not match the stages (%d layers, at most %d "
                   "channels); the stages set them", s->depth, s->width, depth, width);
  hn_conv_layout *c = &L->conv;
  const int batch_norm = s->norm == HN_NORM_BATCH;
  uint64_t off = 0, state = 0;
  /* normalised layer of `ch` channels: gamma, beta (batch) or a bias (none) */
#define HN_NORM_PARAMS(g, b, st, ch)                  \
  do {                                                \
    g = (size_t)off;                                  \
    if (batch_norm) {                                 \
      off += (uint64_t)(ch);                          \
      st = (size_t)state;                             \
      state += 2 * (uint64_t)(ch);                    \
    }                                                 \
    b = (size_t)off;                                  \
    off += (uint64_t)(ch);                            \
  } while (0)
  const uint64_t c0 = (uint64_t)s->stage_channels[0];
  c->off_open_K = 0;
  off = c0 * (uint64_t)Cin * 9;
  HN_NORM_PARAMS(c->off_open_g, c->off_open_b, c->state_open, c0);
  int first = 0;
  for (int k = 0; k < S; k++) {
    const uint64_t ch = (uint64_t)s->stage_channels[k];
    c->H[k] = H >> k;
    c->W[k] = W >> k;
    c->first_layer[k] = first;
    first += s->stage_layers[k];
    c->h[k] = (hn_real)(s->final_time / s->stage_layers[k]);
    c->off_stage[k] = (size_t)off;
    c->layer_size[k] = (size_t)(9 * ch * ch + ch);
    off += (uint64_t)s->stage_layers[k] * (9 * ch * ch + ch);
    if (k + 1 < S) {
      const uint64_t next = (uint64_t)s->stage_channels[k + 1];
      c->off_conn_W[k] = (size_t)off;
      off += next * ch;
      HN_NORM_PARAMS(c->off_conn_g[k], c->off_conn_b[k], c->state_conn[k], next);
    }
    if (off > MAX_PARAMS)
      return hn_fail(HN_EINVAL, "model too large: stage %d", k + 1);
  }
#undef HN_NORM_PARAMS
  c->first_layer[S] = first;
  const uint64_t last = (uint64_t)s->stage_channels[S - 1];
  L->spec = *s;
  L->spec.depth = depth;
  L->spec.width = width;
  L->off_cls_W = (size_t)off;
  L->off_cls_b = (size_t)(off + (uint64_t)C * last);
  L->n_params = L->off_cls_b + (size_t)C;
  L->n_state = (size_t)state;
  L->h = c->h[0];
  L->off_open_K = c->off_open_K;
  L->off_open_b = c->off_open_b;
  L->off_layers = c->off_stage[0];
  L->layer_size = 0; /* layers differ by stage */
  return HN_OK;
}

int hn_convnet_stage_of(const hn_layout *L, int j, int *layer_in_stage) {
  int s = 0;
  while (s + 1 < L->spec.n_stages && j >= L->conv.first_layer[s + 1])
    s++;
  *layer_in_stage = j - L->conv.first_layer[s];
  return s;
}

static void fill_normal(hn_real *x, size_t count, double stddev, uint64_t seed, uint64_t index) {
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_INIT, 0, index);
  for (size_t i = 0; i < count; i++)
    x[i] = (hn_real)(stddev * hn_rng_normal(&r));
}

static void fill(hn_real *x, size_t count, hn_real v) {
  for (size_t i = 0; i < count; i++)
    x[i] = v;
}

void hn_convnet_init_params(hn_model *m, uint64_t seed, double init_scale) {
  const hn_layout *L = &m->layout;
  const hn_model_spec *s = &L->spec;
  const hn_conv_layout *c = &L->conv;
  const int S = s->n_stages, batch_norm = s->norm == HN_NORM_BATCH;
  memset(m->params, 0, L->n_params * sizeof(hn_real));
  const int c0 = s->stage_channels[0], Cin = s->image_channels;
  fill_normal(m->params + c->off_open_K, (size_t)c0 * Cin * 9, 1.0 / sqrt(9.0 * Cin), seed, INIT_INDEX_OPENING);
  if (batch_norm)
    fill(m->params + c->off_open_g, (size_t)c0, 1);
  for (int k = 0; k < S; k++) {
    const int ch = s->stage_channels[k];
    for (int j = 0; j < s->stage_layers[k]; j++)
      fill_normal(m->params + c->off_stage[k] + (size_t)j * c->layer_size[k], (size_t)9 * ch * ch,
                  init_scale / sqrt(9.0 * ch), seed, (uint64_t)(c->first_layer[k] + j));
    if (k + 1 < S) {
      const int next = s->stage_channels[k + 1];
      fill_normal(m->params + c->off_conn_W[k], (size_t)next * ch, 1.0 / sqrt((double)ch), seed,
                  INIT_INDEX_CONNECTIVE(k));
      if (batch_norm)
        fill(m->params + c->off_conn_g[k], (size_t)next, 1);
    }
  }
  const int last = s->stage_channels[S - 1];
  fill_normal(m->params + L->off_cls_W, (size_t)s->n_classes * last, 1.0 / sqrt((double)last), seed,
              INIT_INDEX_CLASSIFIER);
  if (m->state) { /* running mean 0, running variance 1 */
    fill(m->state + c->state_open, (size_t)c0, 0);
    fill(m->state + c->state_open + c0, (size_t)c0, 1);
    for (int k = 0; k + 1 < S; k++) {
      const int next = s->stage_channels[k + 1];
      fill(m->state + c->state_conn[k], (size_t)next, 0);
      fill(m->state + c->state_conn[k] + next, (size_t)next, 1);
    }
  }
}

/* ---------------------------------------------------------------------------------------- */
/* regulariser */

/* alpha/2 ||x||^2 over [off, off + count); gradient added. */
static double decay(const hn_real *p, hn_real *g, size_t off, size_t count, double alpha) {
  double r = 0;
  for (size_t i = off; i < off + count; i++) {
    r += (double)p[i] * p[i];
    if (g)
      g[i] += (hn_real)(alpha * p[i]);
  }
  return 0.5 * alpha * r;
}

double hn_convnet_regularizer(const hn_layout *L, const hn_real *params, hn_real *grads, double alpha_t,
                              double alpha_w) {
  const hn_model_spec *s = &L->spec;
  const hn_conv_layout *c = &L->conv;
  const int S = s->n_stages, batch_norm = s->norm == HN_NORM_BATCH;
  double R = 0;
  if (alpha_t > 0)
    for (int k = 0; k < S; k++) {
      const double w = alpha_t / c->h[k]; /* alpha_t / (2 h) ||d||^2: gradient alpha_t / h d */
      const size_t ls = c->layer_size[k];
      for (int j = 0; j + 1 < s->stage_layers[k]; j++) {
        const hn_real *a = params + c->off_stage[k] + (size_t)j * ls, *b = a + ls;
        hn_real *ga = grads ? grads + c->off_stage[k] + (size_t)j * ls : NULL, *gb = ga ? ga + ls : NULL;
        double d2 = 0;
        for (size_t i = 0; i < ls; i++) {
          double d = (double)b[i] - a[i];
          d2 += d * d;
          if (grads) {
            ga[i] -= (hn_real)(w * d);
            gb[i] += (hn_real)(w * d);
          }
        }
        R += 0.5 * w * d2;
      }
    }
  if (alpha_w > 0) {
    const int c0 = s->stage_channels[0];
    R += decay(params, grads, c->off_open_K, (size_t)c0 * s->image_channels * 9, alpha_w);
    if (!batch_norm)
      R += decay(params, grads, c->off_open_b, (size_t)c0, alpha_w);
    for (int k = 0; k + 1 < S; k++) {
      const int next = s->stage_channels[k + 1];
      R += decay(params, grads, c->off_conn_W[k], (size_t)next * s->stage_channels[k], alpha_w);
      if (!batch_norm)
        R += decay(params, grads, c->off_conn_b[k], (size_t)next, alpha_w);
    }
    R += decay(params, grads, L->off_cls_W, L->n_params - L->off_cls_W, alpha_w);
  }
  return R;
}

/* ---------------------------------------------------------------------------------------- */
/* operator norm of a layer's convolution */

static double norm2(const hn_real *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += (double)x[i] * x[i];
  return sqrt(s);
}

double hn_convnet_sigma_max(const hn_layout *L, const hn_real *params, int j, int iters, uint64_t seed) {
  int jj;
  const int s = hn_convnet_stage_of(L, j, &jj);
  const int ch = L->spec.stage_channels[s];
  const hn_conv_tile t = {L->conv.H[s], L->conv.W[s], 1};
  const int n = hn_conv_cols(&t);
  const size_t nk = (size_t)9 * ch * ch, nx = (size_t)ch * n;
  const hn_real *K = params + hn_layout_K_offset(L, j);
  hn_real *buf = malloc((nk + 2 * nx + (size_t)9 * ch * n) * sizeof(hn_real));
  if (!buf)
    return NAN;
  hn_real *Kt = buf, *x = Kt + nk, *y = x + nx, *col = y + nx;
  hn_conv3_flip(ch, ch, K, Kt);
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_TEST, 0, (uint64_t)j);
  for (size_t i = 0; i < nx; i++)
    x[i] = (hn_real)hn_rng_normal(&r);
  double sigma = 0, nx0 = norm2(x, nx);
  for (size_t i = 0; i < nx; i++)
    x[i] = (hn_real)(x[i] / nx0);
  for (int it = 0; it < iters; it++) { /* x <- K^T K x / ||K^T K x||; sigma = ||K x|| */
    hn_conv3_forward(&t, ch, ch, K, x, n, 0, y, n, col);
    sigma = norm2(y, nx);
    hn_conv3_forward(&t, ch, ch, Kt, y, n, 0, x, n, col);
    double nrm = norm2(x, nx);
    if (!(nrm > 0) || !isfinite(nrm))
      break;
    for (size_t i = 0; i < nx; i++)
      x[i] = (hn_real)(x[i] / nrm);
  }
  free(buf);
  return sigma;
}
