/* network.c - forward and backward passes of the dense networks (hamnet/model.h).
 *
 * One function per architecture and direction; the layer steps themselves are the kernels
 * (hamnet/kernels.h). States live in the workspace:
 *   stored mode      slot j of `states` holds y_j (and `zstates` z_j), j = 0..N, and `derivs`
 *                    what the backward steps would otherwise recompute (activation derivatives;
 *                    leapfrog: activations), so the backward pass does only useful GEMMs;
 *   reversible mode  a ring of 3 state buffers, a copy of y_0 and, with stride k > 0, exact
 *                    states every k layers (hamiltonian: (y_j, z_j); leapfrog: (y_j, y_{j-1})).
 * Evaluation always uses the ring (no states kept).
 *
 * Two implementations of the passes (hn_workspace_set_kernel):
 *   wide    layer by layer over the whole batch: GEMMs + fused OpenMP passes (step.c). Each
 *           layer's gradient is final as soon as its backward step is done, so the grad-ready
 *           callback fires per layer and the allreduce overlaps the rest of the backward pass.
 *   narrow  for widths the GEMMs are too small for: the batch is cut into tiles of HN_TILE
 *           samples, each thread takes a contiguous range of tiles and carries each tile through
 *           all layers, forward and back (tile.c), while it stays in cache. The same workspace
 *           buffers hold the tiles' states in [n][HN_TILE] blocks (stored mode: all of one
 *           tile's layers together, so its backward pass reads contiguous memory). Thread 0
 *           accumulates into m->grads, every other thread into its own copy of the gradient;
 *           the copies are added in thread order at the end (deterministic for a given thread
 *           count), so with several threads no gradient is final before then: the grad-ready
 *           callback is called once, with 0, at the end. One thread alone (one rank per core):
 *           the callback fires per layer during the backward pass of the last tile.
 * Both give the same results up to rounding (tests/unit/test_narrow.c); probes (diagnostics)
 * always take the wide path. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "hamnet/convnet.h"
#include "hamnet/error.h"
#include "hamnet/kernels.h"
#include "hamnet/mem.h"
#include "hamnet/model.h"

struct hn_workspace {
  hn_layout L;
  int max_batch;
  int reversible;
  int stride;
  int eval_only;      /* made by hn_workspace_create_eval: no states for a backward pass */
  size_t slot;        /* elements per state buffer: padded_batch * width */
  int padded_batch;   /* max_batch rounded up to whole tiles of HN_TILE samples */
  hn_real *states;    /* stored: [N+1] slots; HN_MEM_ACTIVATIONS */
  hn_real *zstates;   /* stored, hamiltonian: [N+1] slots */
  hn_real *derivs;    /* stored: saved derivatives, [2N] slots (hamiltonian) or [N] */
  hn_real *ring;      /* 3 y slots + 3 z slots (reversible and evaluation) */
  hn_real *y0_saved;  /* reversible: exact y_0 */
  int n_ck;           /* reversible with stride: checkpoints at j = 0, k, 2k, ... */
  hn_real *ck_a;      /* y_j */
  hn_real *ck_b;      /* z_j (hamiltonian) or y_{j-1} (leapfrog) */
  hn_real *u_open;    /* dense opening pre-activation, kept for the backward pass */
  hn_real *gy, *gz;   /* adjoints */
  hn_real *logits;    /* [max_batch][C] */
  hn_real *work;      /* HN_STEP_WORK */
  hn_real *A, *dA;    /* antisym operator and its gradient, [n][n] */
  size_t activation_bytes, scratch_bytes;
  hn_kernel_path kernel; /* as requested; `narrow` is the resolved choice */
  int narrow;
  int n_threads;         /* narrow path: per-thread scratch allocated for this many threads */
  struct tile_scratch *thr;
  hn_real *Kt;           /* narrow path: K_j^T of every layer [N][n][n], made at each pass (HN_MEM_PARAMS) */
  hn_real *Wt;           /* narrow path: the classifier's W^T [n][C] (HN_MEM_PARAMS) */
  hn_convnet_ws *conv;   /* convolutional networks: everything else is unused (convnet.c) */
};

/* The narrow path's per-thread scratch: a gradient accumulator and one tile's buffers. */
typedef struct tile_scratch {
  hn_real *grads;          /* [n_params]: this thread's gradient accumulator (HN_MEM_GRADS; NULL for
                            * thread 0, which adds into m->grads) */
  hn_real *acc;            /* where this pass adds its gradients: grads, or (thread 0) the model's
                            * gradient buffer itself (no zeroing, no summing pass for it) */
  hn_real *y, *z, *gy, *gz; /* one tile of states and adjoints, [n][HN_TILE] each */
  hn_real *u_open;         /* dense opening: the tile's pre-activation [n][HN_TILE] */
  hn_real *xt;             /* the tile's inputs [F][HN_TILE] */
  hn_real *logits;         /* [C][HN_TILE] */
  hn_real *work;           /* HN_TILE_WORK(n), and [n][HN_TILE] for the opening's backward */
  double *recon;           /* reversible: per state checkpoint, squared difference and reference */
  double loss_sum;
  int64_t correct;
} tile_scratch;

/* ---------------------------------------------------------------------------------------- */
/* workspace */

static void free_tile_scratch(hn_workspace *ws);

static int workspace_create(hn_workspace **out, const hn_layout *L, int max_batch, int reversible, int stride,
                            int eval_only) {
  *out = NULL;
  if (max_batch < 1)
    return hn_fail(HN_EINVAL, "batch size must be >= 1 (got %d)", max_batch);
  if (reversible && !eval_only && !hn_arch_is_reversible(L->spec.arch))
    return hn_fail(HN_EINVAL, "reversible mode needs arch hamiltonian or leapfrog ([model] arch = %s); "
                   "use [train] reversible = auto or off", hn_arch_name(L->spec.arch));
  if (stride < 0)
    return hn_fail(HN_EINVAL, "reversible stride must be >= 0 (got %d)", stride);
  hn_workspace *ws = hn_alloc(1, sizeof *ws, HN_MEM_OTHER, "workspace");
  if (!ws)
    return HN_ENOMEM;
  ws->L = *L;
  ws->max_batch = max_batch;
  ws->reversible = reversible;
  ws->stride = reversible ? stride : 0;
  ws->eval_only = eval_only;
  if (L->spec.n_stages > 0) { /* a convolutional network: its own workspace (hamnet/convnet.h) */
    int status = hn_convnet_ws_create(&ws->conv, L, max_batch, reversible, stride, eval_only);
    if (status != HN_OK) {
      hn_free(ws);
      return status;
    }
    ws->activation_bytes = hn_convnet_ws_activation_bytes(ws->conv);
    ws->scratch_bytes = hn_convnet_ws_scratch_bytes(ws->conv);
    *out = ws;
    return HN_OK;
  }
  const int N = L->spec.depth, n = L->spec.width, C = L->spec.n_classes;
  ws->padded_batch = (int)(((long)max_batch + HN_TILE - 1) / HN_TILE * HN_TILE);
  const size_t slot = (size_t)ws->padded_batch * n;
  ws->slot = slot;
  const int ham = L->spec.arch == HN_ARCH_HAMILTONIAN;
  int ok = 1;
  size_t act = 0, scratch = 0;
#define HN_WS_ALLOC(ptr, count, cat, name)                                         \
  do {                                                                              \
    ptr = hn_alloc((count), sizeof(hn_real), cat, name);                           \
    ok = ok && ptr != NULL;                                                         \
    *((cat) == HN_MEM_ACTIVATIONS ? &act : &scratch) += (count) * sizeof(hn_real);  \
  } while (0)
  if (eval_only) {
    /* the ring is all evaluation needs */
  } else if (!reversible) {
    HN_WS_ALLOC(ws->states, (size_t)(N + 1) * slot, HN_MEM_ACTIVATIONS, "stored states y_j");
    if (ham)
      HN_WS_ALLOC(ws->zstates, (size_t)(N + 1) * slot, HN_MEM_ACTIVATIONS, "stored states z_j");
    HN_WS_ALLOC(ws->derivs, (size_t)(ham ? 2 * N : N) * slot, HN_MEM_ACTIVATIONS, "stored activation derivatives");
  } else {
    HN_WS_ALLOC(ws->y0_saved, slot, HN_MEM_ACTIVATIONS, "saved y_0");
    if (ws->stride > 0) {
      ws->n_ck = (N - 1) / ws->stride + 1;
      HN_WS_ALLOC(ws->ck_a, (size_t)ws->n_ck * slot, HN_MEM_ACTIVATIONS, "state checkpoints");
      HN_WS_ALLOC(ws->ck_b, (size_t)ws->n_ck * slot, HN_MEM_ACTIVATIONS, "state checkpoints");
    }
  }
  HN_WS_ALLOC(ws->ring, 6 * slot, HN_MEM_WORKSPACE, "state ring");
  if (L->spec.opening == HN_OPEN_DENSE)
    HN_WS_ALLOC(ws->u_open, slot, HN_MEM_ACTIVATIONS, "opening pre-activation");
  HN_WS_ALLOC(ws->gy, slot, HN_MEM_WORKSPACE, "adjoint y");
  HN_WS_ALLOC(ws->gz, slot, HN_MEM_WORKSPACE, "adjoint z");
  HN_WS_ALLOC(ws->logits, (size_t)max_batch * C, HN_MEM_WORKSPACE, "logits");
  HN_WS_ALLOC(ws->work, HN_STEP_WORK(max_batch, n) + (size_t)max_batch * (L->spec.n_features + 1),
              HN_MEM_WORKSPACE, "kernel scratch");
  if (L->spec.arch == HN_ARCH_ANTISYM) {
    HN_WS_ALLOC(ws->A, (size_t)n * n, HN_MEM_WORKSPACE, "antisym operator");
    HN_WS_ALLOC(ws->dA, (size_t)n * n, HN_MEM_WORKSPACE, "antisym gradient");
  }
#undef HN_WS_ALLOC
  ws->activation_bytes = act;
  ws->scratch_bytes = scratch;
  if (!ok || hn_workspace_set_kernel(ws, HN_KERNEL_AUTO) != HN_OK) {
    hn_workspace_destroy(ws);
    return HN_ENOMEM;
  }
  *out = ws;
  return HN_OK;
}

static void free_tile_scratch(hn_workspace *ws) {
  for (int i = 0; ws->thr && i < ws->n_threads; i++) {
    tile_scratch *t = &ws->thr[i];
    hn_real *bufs[] = {t->grads, t->y, t->z, t->gy, t->gz, t->u_open, t->xt, t->logits, t->work};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
      hn_free(bufs[k]);
    hn_free(t->recon);
  }
  hn_free(ws->thr);
  hn_free(ws->Kt);
  hn_free(ws->Wt);
  ws->thr = NULL;
  ws->Kt = ws->Wt = NULL;
  ws->n_threads = 0;
}

/* Per-thread scratch of the narrow path, for omp_get_max_threads() threads. */
static int alloc_tile_scratch(hn_workspace *ws) {
  const hn_layout *L = &ws->L;
  const size_t n = (size_t)L->spec.width, tile = n * HN_TILE;
  const int P = omp_get_max_threads();
  ws->thr = hn_alloc((size_t)P, sizeof(tile_scratch), HN_MEM_OTHER, "narrow path thread scratch");
  /* copies of parameters, so counted with them (the workspace stays flat in depth) */
  ws->Kt = hn_alloc((size_t)L->spec.depth * n * n, sizeof(hn_real), HN_MEM_PARAMS, "transposed layer weights");
  ws->Wt = hn_alloc(n * L->spec.n_classes, sizeof(hn_real), HN_MEM_PARAMS, "transposed classifier weights");
  if (!ws->thr || !ws->Kt || !ws->Wt) {
    free_tile_scratch(ws);
    return HN_ENOMEM;
  }
  ws->n_threads = P;
  int ok = 1;
  for (int i = 0; i < P && ok; i++) {
    tile_scratch *t = &ws->thr[i];
    if (!ws->eval_only && i > 0) /* thread 0 accumulates into the model's own gradient buffer */
      t->grads = hn_alloc(L->n_params, sizeof(hn_real), HN_MEM_GRADS, "per-thread gradient accumulator");
    t->y = hn_alloc(tile, sizeof(hn_real), HN_MEM_WORKSPACE, "tile states");
    t->z = hn_alloc(tile, sizeof(hn_real), HN_MEM_WORKSPACE, "tile states");
    t->gy = hn_alloc(tile, sizeof(hn_real), HN_MEM_WORKSPACE, "tile adjoints");
    t->gz = hn_alloc(tile, sizeof(hn_real), HN_MEM_WORKSPACE, "tile adjoints");
    t->u_open = hn_alloc(tile, sizeof(hn_real), HN_MEM_WORKSPACE, "tile opening pre-activation");
    t->xt = hn_alloc((size_t)L->spec.n_features * HN_TILE, sizeof(hn_real), HN_MEM_WORKSPACE, "tile inputs");
    t->logits = hn_alloc((size_t)L->spec.n_classes * HN_TILE, sizeof(hn_real), HN_MEM_WORKSPACE, "tile logits");
    t->work = hn_alloc(HN_TILE_WORK(n), sizeof(hn_real), HN_MEM_WORKSPACE, "tile kernel scratch");
    t->recon = hn_alloc(2 * (size_t)(ws->n_ck > 0 ? ws->n_ck : 1), sizeof(double), HN_MEM_WORKSPACE,
                        "reconstruction error sums");
    ok = (t->grads || ws->eval_only || i == 0) && t->y && t->z && t->gy && t->gz && t->u_open && t->xt && t->logits &&
         t->work && t->recon;
  }
  if (!ok) {
    free_tile_scratch(ws);
    return HN_ENOMEM;
  }
  return HN_OK;
}

int hn_workspace_set_conv_algorithm(hn_workspace *ws, hn_conv_algorithm a) {
  if (a < 0 || a >= HN_CONV_COUNT)
    return hn_fail(HN_EINVAL, "unknown convolution algorithm %d", (int)a);
  return ws->conv ? hn_convnet_ws_set_algorithm(ws->conv, a) : HN_OK;
}

unsigned hn_workspace_winograd_stages(const hn_workspace *ws) {
  unsigned bits = 0;
  for (int s = 0; ws->conv && s < ws->L.spec.n_stages; s++)
    bits |= hn_convnet_ws_winograd_stage(ws->conv, s) ? 1u << s : 0u;
  return bits;
}

int hn_workspace_set_kernel(hn_workspace *ws, hn_kernel_path path) {
  const hn_model_spec *sp = &ws->L.spec;
  const int reversible_arch = hn_arch_is_reversible(sp->arch);
  if (path < 0 || path >= HN_KERNEL_COUNT)
    return hn_fail(HN_EINVAL, "unknown kernel path %d", (int)path);
  if (ws->conv) { /* convolutional networks have one implementation: the setting does not apply */
    ws->kernel = path;
    return HN_OK;
  }
  if (path == HN_KERNEL_NARROW && !reversible_arch)
    return hn_fail(HN_EINVAL, "[train] kernel = narrow supports arch hamiltonian and leapfrog (arch is %s); "
                   "use kernel = auto or wide", hn_arch_name(sp->arch));
  /* stored mode on one thread: narrow only up to HN_NARROW_MAX_WIDTH_STORED; with threads the
   * wide path's per-layer parallel regions cost more than the tiles' cache misses (hamnet/model.h) */
  const int max_width = ws->reversible || omp_get_max_threads() > 1 ? HN_NARROW_MAX_WIDTH : HN_NARROW_MAX_WIDTH_STORED;
  const int narrow = path == HN_KERNEL_NARROW || (path == HN_KERNEL_AUTO && reversible_arch && sp->width <= max_width);
  free_tile_scratch(ws);
  ws->kernel = path;
  ws->narrow = 0;
  if (narrow) {
    HN_TRY(alloc_tile_scratch(ws));
    ws->narrow = 1;
  }
  return HN_OK;
}

int hn_workspace_narrow(const hn_workspace *ws) { return ws->narrow; }

int hn_workspace_create(hn_workspace **out, const hn_layout *L, int max_batch, int reversible, int stride) {
  return workspace_create(out, L, max_batch, reversible, stride, 0);
}

int hn_workspace_create_eval(hn_workspace **out, const hn_layout *L, int max_batch) {
  return workspace_create(out, L, max_batch, 1, 0, 1);
}

void hn_workspace_destroy(hn_workspace *ws) {
  if (!ws)
    return;
  hn_convnet_ws_destroy(ws->conv);
  free_tile_scratch(ws);
  hn_real *bufs[] = {ws->states, ws->zstates, ws->derivs, ws->ring, ws->y0_saved, ws->ck_a, ws->ck_b,
                     ws->u_open, ws->gy, ws->gz, ws->logits, ws->work, ws->A, ws->dA};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    hn_free(bufs[i]);
  hn_free(ws);
}

int hn_workspace_reversible(const hn_workspace *ws) { return ws->reversible; }
int hn_workspace_stride(const hn_workspace *ws) { return ws->stride; }
size_t hn_workspace_activation_bytes(const hn_workspace *ws) { return ws->activation_bytes; }
size_t hn_workspace_scratch_bytes(const hn_workspace *ws) { return ws->scratch_bytes; }

void hn_antisym_operator(const hn_real *K, int n, hn_real gamma, hn_real *A) {
  for (int r = 0; r < n; r++)
    for (int c = 0; c < n; c++)
      A[r * n + c] = K[r * n + c] - K[c * n + r] - (r == c ? gamma : 0);
}

/* ---------------------------------------------------------------------------------------- */
/* helpers */

static double sum_squares(const hn_real *x, size_t count) {
  double s = 0;
  for (size_t i = 0; i < count; i++)
    s += (double)x[i] * x[i];
  return s;
}

static double diff_squares(const hn_real *a, const hn_real *b, size_t count) {
  double s = 0;
  for (size_t i = 0; i < count; i++) {
    double d = (double)a[i] - b[i];
    s += d * d;
  }
  return s;
}

static void probe_y(hn_probe *p, int j, const hn_real *y, const hn_real *z, size_t count) {
  if (!p)
    return;
  if (p->y_norm2)
    p->y_norm2[j] += sum_squares(y, count);
  if (p->z_norm2 && z)
    p->z_norm2[j] += sum_squares(z, count);
}

static void probe_g(hn_probe *p, int j, const hn_real *g, size_t count) {
  if (p && p->g_norm2)
    p->g_norm2[j] += sum_squares(g, count);
}

static hn_step make_step(const hn_layout *L, int B) {
  hn_step s = {.batch = B, .width = L->spec.width, .act = L->spec.activation, .h = L->h};
  return s;
}

/* y_0 from the input: pad ([x; 0]) or dense (s(K_in x + b_in), pre-activation kept). */
static void opening_forward(const hn_layout *L, const hn_real *params, hn_workspace *ws, const hn_real *X,
                            int B, hn_real *Y0) {
  const int n = L->spec.width, F = L->spec.n_features;
  if (L->spec.opening == HN_OPEN_PAD) {
    for (int i = 0; i < B; i++) {
      memcpy(Y0 + (size_t)i * n, X + (size_t)i * F, (size_t)F * sizeof(hn_real));
      memset(Y0 + (size_t)i * n + F, 0, (size_t)(n - F) * sizeof(hn_real));
    }
    return;
  }
  const hn_real *Kin = params + L->off_open_K, *bin = params + L->off_open_b;
  hn_gemm(0, 1, B, n, F, 1, X, F, Kin, F, 0, ws->u_open, n);
  for (int i = 0; i < B; i++)
    for (int r = 0; r < n; r++) {
      hn_real u = ws->u_open[(size_t)i * n + r] + bin[r];
      ws->u_open[(size_t)i * n + r] = u;
      Y0[(size_t)i * n + r] = hn_act(L->spec.activation, u);
    }
}

static void opening_backward(const hn_layout *L, hn_real *grads, hn_workspace *ws, const hn_real *X, int B,
                             const hn_real *G) {
  if (L->spec.opening != HN_OPEN_DENSE)
    return;
  const int n = L->spec.width, F = L->spec.n_features;
  hn_real *D = ws->work, *dK = grads + L->off_open_K, *db = grads + L->off_open_b;
  for (int i = 0; i < B; i++)
    for (int r = 0; r < n; r++) {
      hn_real d = G[(size_t)i * n + r] * hn_act_deriv(L->spec.activation, ws->u_open[(size_t)i * n + r]);
      D[(size_t)i * n + r] = d;
      db[r] += d;
    }
  hn_gemm(1, 0, n, F, B, 1, D, n, X, F, 1, dK, F);
}

/* logits = Y W^T + mu; loss and accuracy; with `grad`, logits become loss_scale * dL/dlogits. */
static void classifier_forward(const hn_layout *L, const hn_real *params, const hn_real *Y, int B,
                               const int32_t *labels, hn_real *logits, int grad, hn_real loss_scale,
                               hn_batch_stats *stats) {
  const int n = L->spec.width, C = L->spec.n_classes;
  const hn_real *W = params + L->off_cls_W, *mu = params + L->off_cls_b;
  hn_gemm(0, 1, B, C, n, 1, Y, n, W, n, 0, logits, C);
  for (int i = 0; i < B; i++) {
    hn_real *z = logits + (size_t)i * C;
    int best = 0;
    double zmax = -INFINITY;
    for (int c = 0; c < C; c++) {
      z[c] += mu[c];
      if (z[c] > zmax) {
        zmax = z[c];
        best = c;
      }
    }
    if (!labels)
      continue;
    double sum = 0;
    for (int c = 0; c < C; c++)
      sum += exp((double)z[c] - zmax);
    const int label = labels[i];
    stats->loss_sum += zmax + log(sum) - z[label];
    stats->correct += best == label;
    if (grad)
      for (int c = 0; c < C; c++)
        z[c] = (hn_real)(loss_scale * (exp((double)z[c] - zmax) / sum - (c == label)));
  }
  stats->count += B;
}

static void classifier_backward(const hn_layout *L, const hn_real *params, hn_real *grads, const hn_real *Y,
                                int B, const hn_real *dlogits, hn_real *G) {
  const int n = L->spec.width, C = L->spec.n_classes;
  const hn_real *W = params + L->off_cls_W;
  hn_gemm(0, 0, B, n, C, 1, dlogits, C, W, n, 0, G, n);
  hn_gemm(1, 0, C, n, B, 1, dlogits, C, Y, n, 1, grads + L->off_cls_W, n);
  hn_real *dmu = grads + L->off_cls_b;
  for (int i = 0; i < B; i++)
    for (int c = 0; c < C; c++)
      dmu[c] += dlogits[(size_t)i * C + c];
}

/* ---------------------------------------------------------------------------------------- */
/* forward: returns the buffer holding y_N. `train` keeps what the backward pass needs. */

static hn_real *stored(hn_workspace *ws, hn_real *base, int j) { return base + (size_t)j * ws->slot; }
static hn_real *ring_y(hn_workspace *ws, int k) { return ws->ring + (size_t)k * ws->slot; }
static hn_real *ring_z(hn_workspace *ws, int k) { return ws->ring + (size_t)(3 + k) * ws->slot; }
/* stored mode: slot k of the saved derivatives (hamiltonian: 2j and 2j+1 for layer j) */
static hn_real *deriv(hn_workspace *ws, int k) { return ws->derivs + (size_t)k * ws->slot; }

static const hn_real *forward(const hn_model *m, hn_workspace *ws, const hn_real *X, int B, int train,
                              hn_probe *probe) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width;
  const size_t cnt = (size_t)B * n;
  const int keep_all = train && !ws->reversible;
  const int keep_ck = train && ws->reversible;
  const hn_step st = make_step(L, B);
  hn_real *y0 = keep_all ? stored(ws, ws->states, 0) : ring_y(ws, 0);
  opening_forward(L, m->params, ws, X, B, y0);
  if (keep_ck)
    memcpy(ws->y0_saved, y0, cnt * sizeof(hn_real));

  switch (L->spec.arch) {
  case HN_ARCH_RESNET:
  case HN_ARCH_ANTISYM: {
    hn_real *cur = y0;
    probe_y(probe, 0, cur, NULL, cnt);
    for (int j = 0; j < N; j++) {
      const hn_real *K = hn_layer_K(L, m->params, j), *b = hn_layer_b(L, m->params, j);
      const hn_real *A = K;
      if (L->spec.arch == HN_ARCH_ANTISYM) {
        hn_antisym_operator(K, n, (hn_real)L->spec.gamma, ws->A);
        A = ws->A;
      }
      hn_real *next = keep_all ? stored(ws, ws->states, j + 1) : ring_y(ws, (j + 1) & 1);
      hn_euler_forward_save(&st, A, b, cur, next, keep_all ? deriv(ws, j) : NULL, ws->work);
      cur = next;
      probe_y(probe, j + 1, cur, NULL, cnt);
    }
    return cur;
  }
  case HN_ARCH_HAMILTONIAN: {
    hn_real *y = y0;
    hn_real *z = keep_all ? stored(ws, ws->zstates, 0) : ring_z(ws, 0);
    memset(z, 0, cnt * sizeof(hn_real));
    probe_y(probe, 0, y, z, cnt);
    for (int j = 0; j < N; j++) {
      if (keep_ck && ws->stride > 0 && j % ws->stride == 0) {
        memcpy(ws->ck_a + (size_t)(j / ws->stride) * ws->slot, y, cnt * sizeof(hn_real));
        memcpy(ws->ck_b + (size_t)(j / ws->stride) * ws->slot, z, cnt * sizeof(hn_real));
      }
      const hn_real *K = hn_layer_K(L, m->params, j), *b = hn_layer_b(L, m->params, j);
      hn_real *yn = keep_all ? stored(ws, ws->states, j + 1) : ring_y(ws, (j + 1) & 1);
      hn_real *zn = keep_all ? stored(ws, ws->zstates, j + 1) : ring_z(ws, (j + 1) & 1);
      hn_ham_forward_save(&st, K, b, y, z, yn, zn, keep_all ? deriv(ws, 2 * j) : NULL,
                          keep_all ? deriv(ws, 2 * j + 1) : NULL, ws->work);
      y = yn;
      z = zn;
      probe_y(probe, j + 1, y, z, cnt);
    }
    return y;
  }
  case HN_ARCH_LEAPFROG: {
    hn_real *cur = y0, *prev = y0; /* y_{-1} = y_0 */
    probe_y(probe, 0, cur, NULL, cnt);
    for (int j = 0; j < N; j++) {
      if (keep_ck && ws->stride > 0 && j % ws->stride == 0) {
        memcpy(ws->ck_a + (size_t)(j / ws->stride) * ws->slot, cur, cnt * sizeof(hn_real));
        memcpy(ws->ck_b + (size_t)(j / ws->stride) * ws->slot, prev, cnt * sizeof(hn_real));
      }
      const hn_real *K = hn_layer_K(L, m->params, j), *b = hn_layer_b(L, m->params, j);
      hn_real *next = keep_all ? stored(ws, ws->states, j + 1) : ring_y(ws, (j + 1) % 3);
      hn_leap_forward_save(&st, K, b, cur, prev, next, keep_all ? deriv(ws, j) : NULL, ws->work);
      prev = cur;
      cur = next;
      probe_y(probe, j + 1, cur, NULL, cnt);
    }
    return cur;
  }
  default:
    HN_ASSERT(0, "unknown architecture %d", (int)L->spec.arch);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* backward per architecture: on entry ws->gy = dL/dy_N; on exit ws->gy = dL/dy_0. */

/* Where layer j's parameters (K_j, then b_j) begin in the flat buffer. */
static size_t layer_start(const hn_layout *L, int j) { return L->off_layers + (size_t)j * L->layer_size; }

static void notify(hn_grad_ready_fn ready, void *ctx, size_t first_final) {
  if (ready)
    ready(ctx, first_final);
}

/* The grad-ready callback as the backward passes use it: `final_from` is what it was last told,
 * told again between a layer step's GEMMs (hn_step.between) so that communication in flight
 * progresses during the step, not only once per layer. */
typedef struct {
  hn_grad_ready_fn ready;
  void *ctx;
  size_t final_from;
} ready_state;

static void ready_again(void *p) {
  ready_state *r = p;
  r->ready(r->ctx, r->final_from);
}

/* The layer step of a backward pass (the classifier's gradient already announced final). */
static hn_step backward_step(const hn_layout *L, int B, ready_state *r) {
  hn_step s = make_step(L, B);
  r->final_from = L->off_cls_W;
  if (r->ready) {
    s.between = ready_again;
    s.between_ctx = r;
  }
  return s;
}

static void layer_final(ready_state *r, const hn_layout *L, int j) {
  r->final_from = layer_start(L, j);
  notify(r->ready, r->ctx, r->final_from);
}

static void backward_euler(hn_model *m, hn_workspace *ws, int B, hn_grad_ready_fn ready, void *ctx,
                           hn_probe *probe) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width;
  ready_state rs = {ready, ctx, 0};
  const hn_step st = backward_step(L, B, &rs);
  for (int j = N - 1; j >= 0; j--) {
    const hn_real *K = hn_layer_K(L, m->params, j);
    hn_real *dK = hn_layer_K(L, m->grads, j), *db = hn_layer_b(L, m->grads, j);
    if (L->spec.arch == HN_ARCH_ANTISYM) {
      hn_antisym_operator(K, n, (hn_real)L->spec.gamma, ws->A);
      memset(ws->dA, 0, (size_t)n * n * sizeof(hn_real));
      hn_euler_backward_saved(&st, ws->A, stored(ws, ws->states, j), deriv(ws, j), ws->gy, ws->dA, db, ws->work);
      for (int r = 0; r < n; r++) /* A = K - K^T - gamma I  =>  dK = dA - dA^T */
        for (int c = 0; c < n; c++)
          dK[r * n + c] += ws->dA[r * n + c] - ws->dA[c * n + r];
    } else {
      hn_euler_backward_saved(&st, K, stored(ws, ws->states, j), deriv(ws, j), ws->gy, dK, db, ws->work);
    }
    probe_g(probe, j, ws->gy, (size_t)B * n);
    layer_final(&rs, L, j);
  }
}

/* Reconstruction error: RMS difference relative to the RMS of the exact state, absolute where
 * that state is below unit scale (a batch of all-zero inputs has nothing to be relative to). */
static double relative_error(double diff2, double ref2, size_t count) {
  double rms_diff = sqrt(diff2 / (double)count), rms_ref = sqrt(ref2 / (double)count);
  return rms_diff / (rms_ref > 1 ? rms_ref : 1);
}

static void backward_hamiltonian(hn_model *m, hn_workspace *ws, int B, hn_grad_ready_fn ready, void *ctx,
                                 hn_probe *probe, hn_batch_stats *stats) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width;
  const size_t cnt = (size_t)B * n;
  ready_state rs = {ready, ctx, 0};
  const hn_step st = backward_step(L, B, &rs);
  memset(ws->gz, 0, cnt * sizeof(hn_real)); /* z_N does not reach the loss */
  int a = N & 1;                            /* ring slot holding state N (reversible) */
  double worst = 0;
  for (int j = N - 1; j >= 0; j--) {
    const hn_real *K = hn_layer_K(L, m->params, j), *b = hn_layer_b(L, m->params, j);
    hn_real *dK = hn_layer_K(L, m->grads, j), *db = hn_layer_b(L, m->grads, j);
    if (!ws->reversible) {
      hn_ham_backward_saved(&st, K, stored(ws, ws->states, j), stored(ws, ws->zstates, j + 1), deriv(ws, 2 * j),
                            deriv(ws, 2 * j + 1), ws->gy, ws->gz, dK, db, ws->work);
    } else {
      hn_real *y0 = ring_y(ws, 1 - a), *z0 = ring_z(ws, 1 - a);
      hn_ham_backward(&st, K, b, ring_y(ws, a), ring_z(ws, a), y0, z0, 1, ws->gy, ws->gz, dK, db, ws->work);
      if (ws->stride > 0 && j % ws->stride == 0) {
        /* exact states kept here: measure the drift, then restart from the exact values */
        const hn_real *cy = ws->ck_a + (size_t)(j / ws->stride) * ws->slot;
        const hn_real *cz = ws->ck_b + (size_t)(j / ws->stride) * ws->slot;
        double e = relative_error(diff_squares(y0, cy, cnt) + diff_squares(z0, cz, cnt), sum_squares(cy, cnt), cnt);
        worst = e > worst ? e : worst;
        memcpy(y0, cy, cnt * sizeof(hn_real));
        memcpy(z0, cz, cnt * sizeof(hn_real));
      } else if (j == 0) {
        double e = relative_error(diff_squares(y0, ws->y0_saved, cnt) + sum_squares(z0, cnt),
                                  sum_squares(ws->y0_saved, cnt), cnt);
        worst = e > worst ? e : worst;
      }
      a = 1 - a;
    }
    probe_g(probe, j, ws->gy, cnt);
    layer_final(&rs, L, j);
  }
  if (ws->reversible)
    stats->recon_error = worst;
}

static void backward_leapfrog(hn_model *m, hn_workspace *ws, int B, hn_grad_ready_fn ready, void *ctx,
                              hn_probe *probe, hn_batch_stats *stats) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width;
  const size_t cnt = (size_t)B * n;
  ready_state rs = {ready, ctx, 0};
  const hn_step st = backward_step(L, B, &rs);
  hn_real *P = ws->gy, *Q = ws->gz;
  memset(Q, 0, cnt * sizeof(hn_real)); /* y_{N-1} reaches the loss only through y_N */
  double worst = 0;
  for (int j = N - 1; j >= 0; j--) {
    const hn_real *K = hn_layer_K(L, m->params, j), *b = hn_layer_b(L, m->params, j);
    hn_real *dK = hn_layer_K(L, m->grads, j), *db = hn_layer_b(L, m->grads, j);
    if (!ws->reversible) {
      hn_leap_backward_saved(&st, K, stored(ws, ws->states, j), deriv(ws, j), P, Q, dK, db, ws->work);
    } else {
      /* ring: state k in slot k % 3; computing y_{j-1} overwrites y_{j+2}, no longer needed */
      hn_real *yj = ring_y(ws, j % 3), *yprev = ring_y(ws, (j + 2) % 3);
      hn_leap_backward(&st, K, b, yj, ring_y(ws, (j + 1) % 3), yprev, P, Q, dK, db, ws->work);
      if (ws->stride > 0 && j % ws->stride == 0) {
        const hn_real *cy = ws->ck_a + (size_t)(j / ws->stride) * ws->slot;
        const hn_real *cp = ws->ck_b + (size_t)(j / ws->stride) * ws->slot;
        double e = relative_error(diff_squares(yj, cy, cnt) + diff_squares(yprev, cp, cnt), sum_squares(cy, cnt), cnt);
        worst = e > worst ? e : worst;
        memcpy(yj, cy, cnt * sizeof(hn_real));
        memcpy(yprev, cp, cnt * sizeof(hn_real));
      } else if (j == 0) { /* recomputed y_0 and y_{-1} must both equal y_0 */
        double e = relative_error(diff_squares(yj, ws->y0_saved, cnt) + diff_squares(yprev, ws->y0_saved, cnt),
                                  sum_squares(ws->y0_saved, cnt), cnt);
        worst = e > worst ? e : worst;
      }
    }
    if (probe && probe->g_norm2) {
      /* the adjoint of y_j at fixed velocity: perturbing y_j and y_{j-1} together, P + Q (P
       * alone also holds the velocity adjoint divided by h, which grows with depth) */
      double s = 0;
      for (size_t i = 0; i < cnt; i++)
        s += ((double)P[i] + Q[i]) * ((double)P[i] + Q[i]);
      probe->g_norm2[j] += s;
    }
    layer_final(&rs, L, j);
  }
  /* y_{-1} = y_0: both slots of the pair state feed y_0's adjoint */
  for (size_t i = 0; i < cnt; i++)
    P[i] += Q[i];
  if (ws->reversible)
    stats->recon_error = worst;
}

/* ---------------------------------------------------------------------------------------- */
/* the narrow path: tiles of HN_TILE samples, each carried through all layers by one thread */

#define TILE HN_TILE

/* Tile k's block of a workspace state buffer (tiles are stored one after another, [n][TILE]). */
static hn_real *tile_block(const hn_workspace *ws, hn_real *buf, int k) {
  return buf + (size_t)k * ws->L.spec.width * TILE;
}

/* Stored mode on the narrow path keeps each tile's blocks of all layers together,
 * [tile][slot][n][TILE]: the backward pass then walks one tile's saved states through contiguous
 * memory. State buffers have N + 1 slots, the saved derivatives 2N (hamiltonian) or N. */
static hn_real *saved_state(const hn_workspace *ws, hn_real *buf, int j, int k) {
  return buf + ((size_t)k * (ws->L.spec.depth + 1) + j) * ws->L.spec.width * TILE;
}
static hn_real *saved_deriv(const hn_workspace *ws, int j, int k) {
  const int slots = ws->L.spec.arch == HN_ARCH_HAMILTONIAN ? 2 * ws->L.spec.depth : ws->L.spec.depth;
  return ws->derivs + ((size_t)k * slots + j) * ws->L.spec.width * TILE;
}

static const hn_real *layer_Kt(const hn_workspace *ws, int j) {
  return ws->Kt + (size_t)j * ws->L.spec.width * ws->L.spec.width;
}

/* K_j^T of every layer and W^T, for the tile kernels (read-only during the pass). */
static void make_transposes(const hn_model *m, hn_workspace *ws) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width, C = L->spec.n_classes;
#pragma omp parallel for if ((long)N * n * n > 65536) schedule(static)
  for (int j = 0; j < N; j++) {
    const hn_real *K = hn_layer_K(L, m->params, j);
    hn_real *Kt = ws->Kt + (size_t)j * n * n;
    for (int r = 0; r < n; r++)
      for (int c = 0; c < n; c++)
        Kt[(size_t)c * n + r] = K[(size_t)r * n + c];
  }
  const hn_real *W = m->params + L->off_cls_W;
  for (int c = 0; c < C; c++)
    for (int r = 0; r < n; r++)
      ws->Wt[(size_t)r * C + c] = W[(size_t)c * n + r];
}

static void copy_tile(hn_real *dst, const hn_real *src, int rows) {
  memcpy(dst, src, (size_t)rows * TILE * sizeof(hn_real));
}

/* The tile's inputs xt [F][TILE] (zero for unused samples) and y_0. */
static void tile_opening(const hn_layout *L, const hn_real *params, const hn_real *X, int first, int valid,
                         tile_scratch *t, hn_real *y) {
  const int n = L->spec.width, F = L->spec.n_features;
  for (int f = 0; f < F; f++)
    for (int s = 0; s < TILE; s++)
      t->xt[f * TILE + s] = s < valid ? X[(size_t)(first + s) * F + f] : 0;
  if (L->spec.opening == HN_OPEN_PAD) {
    copy_tile(y, t->xt, F);
    memset(y + (size_t)F * TILE, 0, (size_t)(n - F) * TILE * sizeof(hn_real));
    return;
  }
  const hn_real *Kin = params + L->off_open_K, *bin = params + L->off_open_b;
  hn_tile_matmul(n, F, Kin, F, t->xt, t->u_open, 0);
  for (int r = 0; r < n; r++)
    for (int s = 0; s < TILE; s++) {
      hn_real u = t->u_open[r * TILE + s] + bin[r];
      t->u_open[r * TILE + s] = u;
      y[r * TILE + s] = hn_act(L->spec.activation, u);
    }
}

static void tile_opening_backward(const hn_layout *L, hn_real *grads, tile_scratch *t, const hn_real *gy) {
  if (L->spec.opening != HN_OPEN_DENSE)
    return;
  const int n = L->spec.width, F = L->spec.n_features;
  hn_real *d = t->work;
  for (int i = 0; i < n * TILE; i++)
    d[i] = gy[i] * hn_act_deriv(L->spec.activation, t->u_open[i]);
  hn_tile_outer(n, F, 1, d, t->xt, grads + L->off_open_K, F, grads + L->off_open_b, t->work + (size_t)n * TILE);
}

/* Logits of the tile (t->logits [C][TILE]); loss and accuracy of its `valid` samples. With
 * `grads`: the logits become loss_scale * dL/dlogits (zero for unused samples), the
 * classifier's gradient is added to grads and gy = dL/dy_N. */
static void tile_classifier(const hn_layout *L, const hn_real *params, const hn_real *Wt, hn_real *grads,
                            const hn_real *y, int valid, const int32_t *labels, hn_real loss_scale, tile_scratch *t,
                            hn_real *gy) {
  const int n = L->spec.width, C = L->spec.n_classes;
  const hn_real *W = params + L->off_cls_W, *mu = params + L->off_cls_b;
  hn_real *z = t->logits;
  hn_tile_matmul(C, n, W, n, y, z, 0);
  for (int c = 0; c < C; c++)
    for (int s = 0; s < TILE; s++)
      z[c * TILE + s] += mu[c];
  for (int s = 0; s < TILE; s++) {
    if (s >= valid) {
      if (grads)
        for (int c = 0; c < C; c++)
          z[c * TILE + s] = 0;
      continue;
    }
    int best = 0;
    double zmax = -INFINITY;
    for (int c = 0; c < C; c++)
      if (z[c * TILE + s] > zmax) {
        zmax = z[c * TILE + s];
        best = c;
      }
    if (!labels)
      continue;
    double sum = 0;
    for (int c = 0; c < C; c++)
      sum += exp((double)z[c * TILE + s] - zmax);
    const int label = labels[s];
    t->loss_sum += zmax + log(sum) - z[label * TILE + s];
    t->correct += best == label;
    if (grads)
      for (int c = 0; c < C; c++)
        z[c * TILE + s] = (hn_real)(loss_scale * (exp((double)z[c * TILE + s] - zmax) / sum - (c == label)));
  }
  if (!grads)
    return;
  hn_tile_matmul(n, C, Wt, C, z, gy, 0); /* gy = W^T dlogits */
  hn_tile_outer(C, n, 1, z, y, grads + L->off_cls_W, n, grads + L->off_cls_b, t->work);
}

/* Reversible mode, state checkpoint `slot`: add the squared difference of the recomputed pair
 * (a, b) from the exact one (ea, eb; eb NULL: b should be zero) and the squares of ea to the
 * thread's sums; with `restore`, continue from the exact states. */
static void tile_recon(tile_scratch *t, int slot, hn_real *a, hn_real *b, const hn_real *ea, const hn_real *eb,
                       int rows, int restore) {
  double d = 0, r = 0;
  for (int i = 0; i < rows * TILE; i++) {
    double e = (double)a[i] - ea[i], f = (double)b[i] - (eb ? eb[i] : 0);
    d += e * e + f * f;
    r += (double)ea[i] * ea[i];
  }
  t->recon[2 * slot] += d;
  t->recon[2 * slot + 1] += r;
  if (restore) {
    copy_tile(a, ea, rows);
    if (eb)
      copy_tile(b, eb, rows);
  }
}

/* Forward through all layers for tile k. Returns the buffer that holds y_N; *other holds z_N
 * (hamiltonian) or y_{N-1} (leapfrog). `train`: keep what the backward pass needs - stored
 * states and derivatives, or the reversible checkpoints and y_0. */
static hn_real *tile_forward(const hn_model *m, hn_workspace *ws, tile_scratch *t, int k, const hn_real *X, int B,
                             int train, hn_real **other) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width, first = k * TILE;
  const int valid = B - first < TILE ? B - first : TILE;
  const hn_step st = {.batch = TILE, .width = n, .act = L->spec.activation, .h = L->h};
  const int keep = train && !ws->reversible, ck = train && ws->reversible, stride = ws->stride;
  hn_real *y = t->y, *z = t->z;
  tile_opening(L, m->params, X, first, valid, t, y);
  if (ck)
    copy_tile(tile_block(ws, ws->y0_saved, k), y, n);
  if (keep) { /* stored: each step reads slot j of the tile's saved states and writes slot j + 1 */
    hn_real *ys = ws->states, *zs = ws->zstates;
    copy_tile(saved_state(ws, ys, 0, k), y, n);
    if (L->spec.arch == HN_ARCH_HAMILTONIAN) {
      memset(saved_state(ws, zs, 0, k), 0, (size_t)n * TILE * sizeof(hn_real));
      for (int j = 0; j < N; j++)
        hn_ham_tile_forward(&st, hn_layer_K(L, m->params, j), layer_Kt(ws, j), hn_layer_b(L, m->params, j),
                            saved_state(ws, ys, j, k), saved_state(ws, zs, j, k), saved_state(ws, ys, j + 1, k),
                            saved_state(ws, zs, j + 1, k), saved_deriv(ws, 2 * j, k), saved_deriv(ws, 2 * j + 1, k),
                            t->work);
      *other = saved_state(ws, zs, N, k);
      return saved_state(ws, ys, N, k);
    }
    for (int j = 0; j < N; j++) /* leapfrog: y_{-1} = y_0 */
      hn_leap_tile_forward(&st, hn_layer_K(L, m->params, j), layer_Kt(ws, j), hn_layer_b(L, m->params, j),
                           saved_state(ws, ys, j, k), saved_state(ws, ys, j > 0 ? j - 1 : 0, k),
                           saved_state(ws, ys, j + 1, k), saved_deriv(ws, j, k), t->work);
    *other = saved_state(ws, ys, N - 1, k);
    return saved_state(ws, ys, N, k);
  }
  if (L->spec.arch == HN_ARCH_HAMILTONIAN) {
    memset(z, 0, (size_t)n * TILE * sizeof(hn_real));
    for (int j = 0; j < N; j++) {
      if (ck && stride > 0 && j % stride == 0) {
        copy_tile(tile_block(ws, ws->ck_a + (size_t)(j / stride) * ws->slot, k), y, n);
        copy_tile(tile_block(ws, ws->ck_b + (size_t)(j / stride) * ws->slot, k), z, n);
      }
      hn_ham_tile_forward(&st, hn_layer_K(L, m->params, j), layer_Kt(ws, j), hn_layer_b(L, m->params, j), y, z, y, z,
                          NULL, NULL, t->work);
    }
    *other = z;
    return y;
  }
  /* leapfrog: cur = y_j, prev = y_{j-1}; each step writes y_{j+1} over y_{j-1} */
  hn_real *cur = y, *prev = z;
  copy_tile(prev, cur, n); /* y_{-1} = y_0 */
  for (int j = 0; j < N; j++) {
    if (ck && stride > 0 && j % stride == 0) {
      copy_tile(tile_block(ws, ws->ck_a + (size_t)(j / stride) * ws->slot, k), cur, n);
      copy_tile(tile_block(ws, ws->ck_b + (size_t)(j / stride) * ws->slot, k), prev, n);
    }
    hn_leap_tile_forward(&st, hn_layer_K(L, m->params, j), layer_Kt(ws, j), hn_layer_b(L, m->params, j), cur, prev,
                         prev, NULL, t->work);
    hn_real *tmp = cur;
    cur = prev;
    prev = tmp;
  }
  *other = prev;
  return cur;
}

/* Backward through all layers for tile k, from t->gy = dL/dy_N (t->gz zeroed here); yN and
 * other as returned by tile_forward. Gradients go to the thread's accumulator; on exit t->gy
 * holds dL/dy_0 (leapfrog: both slots of the pair state added). `ready` (NULL: none) is told
 * after each layer that its gradient is final: the caller passes it only for the last tile of
 * a pass whose one thread accumulates straight into m->grads. */
static void tile_backward(const hn_model *m, hn_workspace *ws, tile_scratch *t, int k, hn_real *yN, hn_real *other,
                          hn_grad_ready_fn ready, void *ready_ctx) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width, stride = ws->stride;
  const hn_step st = {.batch = TILE, .width = n, .act = L->spec.activation, .h = L->h};
  const int keep = !ws->reversible;
  hn_real *g = t->acc, *gy = t->gy, *gz = t->gz;
  memset(gz, 0, (size_t)n * TILE * sizeof(hn_real));
  if (L->spec.arch == HN_ARCH_HAMILTONIAN) {
    hn_real *y = yN, *z = other;
    for (int j = N - 1; j >= 0; j--) {
      const hn_real *K = hn_layer_K(L, m->params, j);
      hn_real *dK = hn_layer_K(L, g, j), *db = hn_layer_b(L, g, j);
      if (keep) {
        hn_ham_tile_backward_saved(&st, K, layer_Kt(ws, j), saved_state(ws, ws->states, j, k),
                                   saved_state(ws, ws->zstates, j + 1, k), saved_deriv(ws, 2 * j, k),
                                   saved_deriv(ws, 2 * j + 1, k), gy, gz, dK, db, t->work);
        notify(ready, ready_ctx, layer_start(L, j));
        continue;
      }
      hn_ham_tile_backward(&st, K, layer_Kt(ws, j), hn_layer_b(L, m->params, j), y, z, gy, gz, dK, db, t->work);
      notify(ready, ready_ctx, layer_start(L, j));
      if (stride > 0 && j % stride == 0)
        tile_recon(t, j / stride, y, z, tile_block(ws, ws->ck_a + (size_t)(j / stride) * ws->slot, k),
                   tile_block(ws, ws->ck_b + (size_t)(j / stride) * ws->slot, k), n, 1);
      else if (j == 0)
        tile_recon(t, 0, y, z, tile_block(ws, ws->y0_saved, k), NULL, n, 0);
    }
    return;
  }
  /* leapfrog: adjoints (P, Q) = (gy, gz); reversible: cur = y_{j+1}, prev = y_j, and each step
   * writes y_{j-1} over y_{j+1} */
  hn_real *cur = yN, *prev = other;
  for (int j = N - 1; j >= 0; j--) {
    const hn_real *K = hn_layer_K(L, m->params, j);
    hn_real *dK = hn_layer_K(L, g, j), *db = hn_layer_b(L, g, j);
    if (keep) {
      hn_leap_tile_backward_saved(&st, K, layer_Kt(ws, j), saved_state(ws, ws->states, j, k), saved_deriv(ws, j, k),
                                  gy, gz, dK, db, t->work);
      notify(ready, ready_ctx, layer_start(L, j));
      continue;
    }
    hn_leap_tile_backward(&st, K, layer_Kt(ws, j), hn_layer_b(L, m->params, j), prev, cur, gy, gz, dK, db, t->work);
    notify(ready, ready_ctx, layer_start(L, j));
    if (stride > 0 && j % stride == 0)
      tile_recon(t, j / stride, prev, cur, tile_block(ws, ws->ck_a + (size_t)(j / stride) * ws->slot, k),
                 tile_block(ws, ws->ck_b + (size_t)(j / stride) * ws->slot, k), n, 1);
    else if (j == 0)
      tile_recon(t, 0, prev, cur, tile_block(ws, ws->y0_saved, k), tile_block(ws, ws->y0_saved, k), n, 0);
    hn_real *tmp = cur;
    cur = prev;
    prev = tmp;
  }
  for (int i = 0; i < n * TILE; i++) /* y_{-1} = y_0 */
    gy[i] += gz[i];
}

/* Threads for `tiles` tiles: OpenMP's current count, at most the workspace's and the tiles'. */
static int narrow_threads(const hn_workspace *ws, int tiles) {
  int P = omp_get_max_threads();
  P = P < ws->n_threads ? P : ws->n_threads;
  P = P < tiles ? P : tiles;
  return P < 1 ? 1 : P;
}

/* Forward (and with `train` backward) pass of the narrow path: thread i of P takes tiles
 * [tiles i / P, tiles (i+1) / P). Returns the number of threads that ran. With one thread the
 * gradients accumulate straight into m->grads, so each layer's is final once the last tile has
 * passed it: `ready` is then called per layer during the last tile's backward pass (the
 * allreduce of the first buckets overlaps the rest of that tile); with several threads the
 * copies are only added up at the end (narrow_train), and `ready` is not called here. */
static int narrow_pass(hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *labels, int B, int train,
                       hn_real loss_scale, hn_grad_ready_fn ready, void *ready_ctx) {
  const hn_layout *L = &m->layout;
  const int tiles = (B + TILE - 1) / TILE, C = L->spec.n_classes;
  const int n_recon = ws->n_ck > 0 ? ws->n_ck : 1;
  int used = 1;
  make_transposes(m, ws);
#pragma omp parallel num_threads(narrow_threads(ws, tiles))
  {
    const int id = omp_get_thread_num(), P = omp_get_num_threads();
    if (id == 0)
      used = P;
    tile_scratch *t = &ws->thr[id];
    if (train) {
      /* thread 0 accumulates straight into m->grads, the others into zeroed copies that
       * narrow_train adds in thread order: the same bits as summing zeroed copies of all of them
       * into the zeroed m->grads (0 + g0 = g0), without zeroing and reading one copy per step */
      t->acc = id == 0 ? m->grads : t->grads;
      if (t->acc == t->grads)
        memset(t->grads, 0, L->n_params * sizeof(hn_real));
      memset(t->recon, 0, 2 * (size_t)n_recon * sizeof(double));
    }
    t->loss_sum = 0;
    t->correct = 0;
    const int k_end = (int)((long)tiles * (id + 1) / P);
    for (int k = (int)((long)tiles * id / P); k < k_end; k++) {
      const int first = k * TILE, valid = B - first < TILE ? B - first : TILE;
      const int final_tile = train && P == 1 && k == k_end - 1;
      hn_real *other = NULL;
      hn_real *yN = tile_forward(m, ws, t, k, X, B, train, &other);
      tile_classifier(L, m->params, ws->Wt, train ? t->acc : NULL, yN, valid, labels ? labels + first : NULL,
                      loss_scale, t, t->gy);
      if (final_tile)
        notify(ready, ready_ctx, L->off_cls_W);
      if (train) {
        tile_backward(m, ws, t, k, yN, other, final_tile ? ready : NULL, ready_ctx);
        tile_opening_backward(L, t->acc, t, t->gy);
      } else {
        for (int s = 0; s < valid; s++)
          for (int c = 0; c < C; c++)
            ws->logits[(size_t)(first + s) * C + c] = t->logits[c * TILE + s];
      }
    }
  }
  return used;
}

static void narrow_train(hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *labels, int B,
                         hn_real loss_scale, hn_grad_ready_fn ready, void *ready_ctx, hn_batch_stats *stats) {
  const hn_layout *L = &m->layout;
  const int P = narrow_pass(m, ws, X, labels, B, 1, loss_scale, ready, ready_ctx);
  /* the other threads' gradients added to thread 0's, in thread order: the same bits for the
   * same thread count */
  const long np = (long)L->n_params;
  hn_real *g = m->grads;
  const tile_scratch *thr = ws->thr;
  if (P > 1) {
#pragma omp parallel for if (np > 65536) schedule(static)
    for (long i = 0; i < np; i++) {
      hn_real s = g[i];
      for (int id = 1; id < P; id++)
        s += thr[id].grads[i];
      g[i] = s;
    }
  }
  for (int id = 0; id < P; id++) {
    stats->loss_sum += thr[id].loss_sum;
    stats->correct += thr[id].correct;
  }
  stats->count += B;
  if (ws->reversible) {
    double worst = 0;
    for (int c = 0; c < (ws->n_ck > 0 ? ws->n_ck : 1); c++) {
      double d = 0, r = 0;
      for (int id = 0; id < P; id++) {
        d += thr[id].recon[2 * c];
        r += thr[id].recon[2 * c + 1];
      }
      double e = relative_error(d, r, (size_t)B * L->spec.width);
      worst = e > worst ? e : worst;
    }
    stats->recon_error = worst;
  }
}

static void narrow_evaluate(const hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *labels, int B,
                            hn_batch_stats *stats) {
  const int P = narrow_pass((hn_model *)m, ws, X, labels, B, 0, 0, NULL, NULL);
  for (int id = 0; id < P; id++) {
    stats->loss_sum += ws->thr[id].loss_sum;
    stats->correct += ws->thr[id].correct;
  }
  stats->count += B;
}

/* ---------------------------------------------------------------------------------------- */

static int check_batch(const hn_workspace *ws, const hn_model *m, int B) {
  if (B < 1 || B > ws->max_batch)
    return hn_fail(HN_EINVAL, "batch of %d samples does not fit the workspace (max %d)", B, ws->max_batch);
  if (ws->L.n_params != m->layout.n_params || ws->L.spec.depth != m->layout.spec.depth ||
      ws->L.spec.width != m->layout.spec.width || ws->L.spec.arch != m->layout.spec.arch)
    return hn_fail(HN_EINTERNAL, "workspace was made for a different model");
  return HN_OK;
}

int hn_model_train_batch(hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                         hn_real loss_scale, hn_grad_ready_fn ready, void *ready_ctx, hn_probe *probe,
                         hn_batch_stats *stats) {
  if (ws->conv)
    return hn_convnet_train_batch(m, ws->conv, X, y, B, loss_scale, ready, ready_ctx, probe, stats);
  HN_TRY(check_batch(ws, m, B));
  if (ws->eval_only)
    return hn_fail(HN_EINTERNAL, "hn_model_train_batch needs a training workspace, not an evaluation one");
  const hn_layout *L = &m->layout;
  memset(stats, 0, sizeof *stats);
  if (ws->narrow && !probe) {
    narrow_train(m, ws, X, y, B, loss_scale, ready, ready_ctx, stats);
    notify(ready, ready_ctx, 0);
    return HN_OK;
  }
  const hn_real *yN = forward(m, ws, X, B, 1, probe);
  classifier_forward(L, m->params, yN, B, y, ws->logits, 1, loss_scale, stats);
  classifier_backward(L, m->params, m->grads, yN, B, ws->logits, ws->gy);
  probe_g(probe, L->spec.depth, ws->gy, (size_t)B * L->spec.width);
  notify(ready, ready_ctx, L->off_cls_W);
  switch (L->spec.arch) {
  case HN_ARCH_RESNET:
  case HN_ARCH_ANTISYM: backward_euler(m, ws, B, ready, ready_ctx, probe); break;
  case HN_ARCH_HAMILTONIAN: backward_hamiltonian(m, ws, B, ready, ready_ctx, probe, stats); break;
  case HN_ARCH_LEAPFROG: backward_leapfrog(m, ws, B, ready, ready_ctx, probe, stats); break;
  default: HN_ASSERT(0, "unknown architecture");
  }
  opening_backward(L, m->grads, ws, X, B, ws->gy);
  notify(ready, ready_ctx, 0);
  return HN_OK;
}

int hn_model_evaluate(const hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                      hn_real *logits, hn_probe *probe, hn_batch_stats *stats) {
  if (ws->conv)
    return hn_convnet_evaluate(m, ws->conv, X, y, B, logits, probe, stats);
  HN_TRY(check_batch(ws, m, B));
  memset(stats, 0, sizeof *stats);
  if (ws->narrow && !probe) {
    narrow_evaluate(m, ws, X, y, B, stats);
  } else {
    const hn_real *yN = forward(m, ws, X, B, 0, probe);
    classifier_forward(&m->layout, m->params, yN, B, y, ws->logits, 0, 0, stats);
  }
  if (logits)
    memcpy(logits, ws->logits, (size_t)B * m->layout.spec.n_classes * sizeof(hn_real));
  return HN_OK;
}
