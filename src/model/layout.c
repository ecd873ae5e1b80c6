/* layout.c - the flat parameter buffer: offsets, creation, initialisation (hamnet/model.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hamnet/convnet.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/model.h"
#include "hamnet/rng.h"

/* RNG stream indices of the blocks that are not layers (layers use index = j). Fixed
 * constants, so the classifier's initial weights do not depend on the depth. */
#define HN_INIT_INDEX_OPENING (UINT64_C(1) << 40)
#define HN_INIT_INDEX_CLASSIFIER ((UINT64_C(1) << 40) + 1)

/* Parameters are capped well below what would overflow size_t arithmetic anywhere. */
#define HN_MAX_PARAMS (UINT64_C(1) << 40)

int hn_layout_init(hn_layout *L, const hn_model_spec *spec) {
  const hn_model_spec *s = spec;
  if (s->arch < 0 || s->arch >= HN_ARCH_COUNT)
    return hn_fail(HN_EINVAL, "unknown architecture %d", (int)s->arch);
  if (s->activation < 0 || s->activation >= HN_ACT_COUNT)
    return hn_fail(HN_EINVAL, "unknown activation %d", (int)s->activation);
  if (s->n_stages < 0 || s->n_stages > HN_MAX_STAGES)
    return hn_fail(HN_EINVAL, "a network has 0 (dense) to %d stages (got %d)", HN_MAX_STAGES, s->n_stages);
  if (s->n_stages > 0) { /* a convolutional network: hamnet/convnet.h */
    hn_model_spec copy = *s; /* spec may live inside *L */
    memset(L, 0, sizeof *L);
    return hn_convnet_layout_init(L, &copy);
  }
  if (s->width < 1 || s->depth < 1 || s->n_features < 1 || s->n_classes < 2)
    return hn_fail(HN_EINVAL, "model needs width >= 1, depth >= 1, n_features >= 1 and n_classes >= 2 "
                   "(got width %d, depth %d, n_features %d, n_classes %d)",
                   s->width, s->depth, s->n_features, s->n_classes);
  if (!(s->final_time > 0) || !isfinite(s->final_time))
    return hn_fail(HN_EINVAL, "[model] final_time must be > 0 (got %g)", s->final_time);
  if (!(s->gamma >= 0) || !isfinite(s->gamma))
    return hn_fail(HN_EINVAL, "[model] gamma must be >= 0 (got %g)", s->gamma);
  if (s->opening == HN_OPEN_PAD && s->width < s->n_features)
    return hn_fail(HN_EINVAL, "[model] opening = pad needs width >= the data's %d features (width is %d); "
                   "raise width or use opening = dense", s->n_features, s->width);
  uint64_t n = (uint64_t)s->width, F = (uint64_t)s->n_features, C = (uint64_t)s->n_classes;
  uint64_t layer = n * n + n;
  uint64_t open = s->opening == HN_OPEN_DENSE ? n * F + n : 0;
  if (layer > HN_MAX_PARAMS || (uint64_t)s->depth > HN_MAX_PARAMS / layer ||
      open + layer * (uint64_t)s->depth + C * n + C > HN_MAX_PARAMS)
    return hn_fail(HN_EINVAL, "model too large: width %d x depth %d", s->width, s->depth);
  L->spec = *s;
  L->h = (hn_real)(s->final_time / s->depth);
  L->off_open_K = 0;
  L->off_open_b = s->opening == HN_OPEN_DENSE ? (size_t)(n * F) : 0;
  L->off_layers = (size_t)open;
  L->layer_size = (size_t)layer;
  L->off_cls_W = (size_t)(open + layer * (uint64_t)s->depth);
  L->off_cls_b = L->off_cls_W + (size_t)(C * n);
  L->n_params = L->off_cls_b + (size_t)C;
  L->n_state = 0;
  return HN_OK;
}

size_t hn_layout_K_offset(const hn_layout *L, int j) {
  if (L->spec.n_stages == 0)
    return L->off_layers + (size_t)j * L->layer_size;
  int jj, s = hn_convnet_stage_of(L, j, &jj);
  return L->conv.off_stage[s] + (size_t)jj * L->conv.layer_size[s];
}

size_t hn_layout_K_count(const hn_layout *L, int j) {
  if (L->spec.n_stages == 0)
    return (size_t)L->spec.width * L->spec.width;
  int jj, s = hn_convnet_stage_of(L, j, &jj);
  return (size_t)9 * L->spec.stage_channels[s] * L->spec.stage_channels[s];
}

size_t hn_layout_b_count(const hn_layout *L, int j) {
  if (L->spec.n_stages == 0)
    return (size_t)L->spec.width;
  int jj;
  return (size_t)L->spec.stage_channels[hn_convnet_stage_of(L, j, &jj)];
}

int hn_model_create(hn_model *m, const hn_model_spec *spec) {
  m->params = m->grads = m->state = NULL;
  HN_TRY(hn_layout_init(&m->layout, spec));
  m->params = hn_alloc(m->layout.n_params, sizeof(hn_real), HN_MEM_PARAMS, "parameters");
  m->grads = hn_alloc(m->layout.n_params, sizeof(hn_real), HN_MEM_GRADS, "gradients");
  if (m->layout.n_state > 0)
    m->state = hn_alloc(m->layout.n_state, sizeof(hn_real), HN_MEM_PARAMS, "normalisation statistics");
  if (!m->params || !m->grads || (m->layout.n_state > 0 && !m->state)) {
    hn_model_destroy(m);
    return HN_ENOMEM;
  }
  return HN_OK;
}

void hn_model_destroy(hn_model *m) {
  hn_free(m->params);
  hn_free(m->grads);
  hn_free(m->state);
  m->params = m->grads = m->state = NULL;
}

static void fill_normal(hn_real *x, size_t count, double stddev, uint64_t seed, uint64_t index) {
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_INIT, 0, index);
  for (size_t i = 0; i < count; i++)
    x[i] = (hn_real)(stddev * hn_rng_normal(&r));
}

void hn_model_init_params(hn_model *m, uint64_t seed, double init_scale) {
  const hn_layout *L = &m->layout;
  if (L->spec.n_stages > 0) {
    hn_convnet_init_params(m, seed, init_scale);
    return;
  }
  const int n = L->spec.width, F = L->spec.n_features, C = L->spec.n_classes;
  for (size_t i = 0; i < L->n_params; i++)
    m->params[i] = 0;
  if (L->spec.opening == HN_OPEN_DENSE)
    fill_normal(m->params + L->off_open_K, (size_t)n * F, 1.0 / sqrt((double)F), seed, HN_INIT_INDEX_OPENING);
  for (int j = 0; j < L->spec.depth; j++)
    fill_normal(hn_layer_K(L, m->params, j), (size_t)n * n, init_scale / sqrt((double)n), seed, (uint64_t)j);
  fill_normal(m->params + L->off_cls_W, (size_t)C * n, 1.0 / sqrt((double)n), seed, HN_INIT_INDEX_CLASSIFIER);
}
