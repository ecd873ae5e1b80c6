/* network.c - forward and backward passes of the dense networks (hamnet/model.h).
 *
 * One function per architecture and direction; the layer steps themselves are the kernels
 * (hamnet/kernels.h). States live in the workspace:
 *   stored mode      slot j of `states` holds y_j (and `zstates` z_j), j = 0..N;
 *   reversible mode  a ring of 3 state buffers, a copy of y_0 and, with stride k > 0, exact
 *                    states every k layers (hamiltonian: (y_j, z_j); leapfrog: (y_j, y_{j-1})).
 * Evaluation always uses the ring (no states kept). */
#include <math.h>
#include <string.h>

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
  size_t slot;        /* elements per state buffer: max_batch * width */
  hn_real *states;    /* stored: [N+1] slots; HN_MEM_ACTIVATIONS */
  hn_real *zstates;   /* stored, hamiltonian: [N+1] slots */
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
};

/* ---------------------------------------------------------------------------------------- */
/* workspace */

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
  const int N = L->spec.depth, n = L->spec.width, C = L->spec.n_classes;
  const size_t slot = (size_t)max_batch * n;
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
  if (!ok) {
    hn_workspace_destroy(ws);
    return HN_ENOMEM;
  }
  *out = ws;
  return HN_OK;
}

int hn_workspace_create(hn_workspace **out, const hn_layout *L, int max_batch, int reversible, int stride) {
  return workspace_create(out, L, max_batch, reversible, stride, 0);
}

int hn_workspace_create_eval(hn_workspace **out, const hn_layout *L, int max_batch) {
  return workspace_create(out, L, max_batch, 1, 0, 1);
}

void hn_workspace_destroy(hn_workspace *ws) {
  if (!ws)
    return;
  hn_real *bufs[] = {ws->states, ws->zstates, ws->ring, ws->y0_saved, ws->ck_a, ws->ck_b, ws->u_open,
                     ws->gy, ws->gz, ws->logits, ws->work, ws->A, ws->dA};
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
  hn_step s = {B, L->spec.width, L->spec.activation, L->h};
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
      hn_euler_forward(&st, A, b, cur, next, ws->work);
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
      hn_ham_forward(&st, K, b, y, z, yn, zn, ws->work);
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
      hn_leap_forward(&st, K, b, cur, prev, next, ws->work);
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

static void notify(hn_grad_ready_fn ready, void *ctx, size_t first_final) {
  if (ready)
    ready(ctx, first_final);
}

static void backward_euler(hn_model *m, hn_workspace *ws, int B, hn_grad_ready_fn ready, void *ctx,
                           hn_probe *probe) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width;
  const hn_step st = make_step(L, B);
  for (int j = N - 1; j >= 0; j--) {
    const hn_real *K = hn_layer_K(L, m->params, j), *b = hn_layer_b(L, m->params, j);
    hn_real *dK = hn_layer_K(L, m->grads, j), *db = hn_layer_b(L, m->grads, j);
    if (L->spec.arch == HN_ARCH_ANTISYM) {
      hn_antisym_operator(K, n, (hn_real)L->spec.gamma, ws->A);
      memset(ws->dA, 0, (size_t)n * n * sizeof(hn_real));
      hn_euler_backward(&st, ws->A, b, stored(ws, ws->states, j), ws->gy, ws->dA, db, ws->work);
      for (int r = 0; r < n; r++) /* A = K - K^T - gamma I  =>  dK = dA - dA^T */
        for (int c = 0; c < n; c++)
          dK[r * n + c] += ws->dA[r * n + c] - ws->dA[c * n + r];
    } else {
      hn_euler_backward(&st, K, b, stored(ws, ws->states, j), ws->gy, dK, db, ws->work);
    }
    probe_g(probe, j, ws->gy, (size_t)B * n);
    notify(ready, ctx, L->off_layers + (size_t)j * L->layer_size);
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
  const hn_step st = make_step(L, B);
  memset(ws->gz, 0, cnt * sizeof(hn_real)); /* z_N does not reach the loss */
  int a = N & 1;                            /* ring slot holding state N (reversible) */
  double worst = 0;
  for (int j = N - 1; j >= 0; j--) {
    const hn_real *K = hn_layer_K(L, m->params, j), *b = hn_layer_b(L, m->params, j);
    hn_real *dK = hn_layer_K(L, m->grads, j), *db = hn_layer_b(L, m->grads, j);
    if (!ws->reversible) {
      hn_ham_backward(&st, K, b, stored(ws, ws->states, j + 1), stored(ws, ws->zstates, j + 1),
                      stored(ws, ws->states, j), NULL, 0, ws->gy, ws->gz, dK, db, ws->work);
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
    notify(ready, ctx, L->off_layers + (size_t)j * L->layer_size);
  }
  if (ws->reversible)
    stats->recon_error = worst;
}

static void backward_leapfrog(hn_model *m, hn_workspace *ws, int B, hn_grad_ready_fn ready, void *ctx,
                              hn_probe *probe, hn_batch_stats *stats) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width;
  const size_t cnt = (size_t)B * n;
  const hn_step st = make_step(L, B);
  hn_real *P = ws->gy, *Q = ws->gz;
  memset(Q, 0, cnt * sizeof(hn_real)); /* y_{N-1} reaches the loss only through y_N */
  double worst = 0;
  for (int j = N - 1; j >= 0; j--) {
    const hn_real *K = hn_layer_K(L, m->params, j), *b = hn_layer_b(L, m->params, j);
    hn_real *dK = hn_layer_K(L, m->grads, j), *db = hn_layer_b(L, m->grads, j);
    if (!ws->reversible) {
      hn_leap_backward(&st, K, b, stored(ws, ws->states, j), NULL, NULL, P, Q, dK, db, ws->work);
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
    probe_g(probe, j, P, cnt);
    notify(ready, ctx, L->off_layers + (size_t)j * L->layer_size);
  }
  /* y_{-1} = y_0: both slots of the pair state feed y_0's adjoint */
  for (size_t i = 0; i < cnt; i++)
    P[i] += Q[i];
  if (ws->reversible)
    stats->recon_error = worst;
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
  HN_TRY(check_batch(ws, m, B));
  if (ws->eval_only)
    return hn_fail(HN_EINTERNAL, "hn_model_train_batch needs a training workspace, not an evaluation one");
  const hn_layout *L = &m->layout;
  memset(stats, 0, sizeof *stats);
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
  HN_TRY(check_batch(ws, m, B));
  memset(stats, 0, sizeof *stats);
  const hn_real *yN = forward(m, ws, X, B, 0, probe);
  classifier_forward(&m->layout, m->params, yN, B, y, ws->logits, 0, 0, stats);
  if (logits)
    memcpy(logits, ws->logits, (size_t)B * m->layout.spec.n_classes * sizeof(hn_real));
  return HN_OK;
}
