/* convnet.c - forward and backward passes of the convolutional networks (hamnet/convnet.h).
 *
 * One pass, in order: the input is transposed to the channel-major layout of hamnet/conv.h; the
 * opening convolution runs tile by tile, its normalisation and activation on the whole batch;
 * each stage runs tile-major (every thread carries its tiles through all of the stage's layers,
 * conv_step.c), each connective on the whole batch (one 1x1-convolution GEMM, the normalisation,
 * and the activation fused into the pooling); then the classifier. The backward pass goes the
 * other way, each stage tile-major again, with per-thread gradient buffers added in thread order.
 *
 * Where states live (per stage s, tensors [c_s][B][H_s W_s], row stride ld = B H_s W_s):
 *   evaluation, reversible   ya[s] and yb[s], one tensor each, updated in place: (y, z) for
 *                            hamiltonian, the pair (y_j, y_{j-1}) for leapfrog (the two swap
 *                            roles every layer; fin[s] / fin_other[s] say where the last ones
 *                            ended), y for resnet / antisym (evaluation only);
 *                            reversible training also keeps y0[s] (the exact first state, for the
 *                            reconstruction error) and, with a stride, exact states every
 *                            `stride` layers in ck_a[s] / ck_b[s];
 *   stored                   ya[s] slots 0..L: y_j; yb[s] slots 0..L: z_j (hamiltonian); deriv[s]:
 *                            the saved derivatives (hamiltonian 2 per layer, the others 1).
 * The opening keeps its pre-activation (batch: the normalised xhat and 1/std per channel) in
 * open_u, each connective in conn_u[s] (before pooling), for the backward pass. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "hamnet/conv.h"
#include "hamnet/convnet.h"
#include "hamnet/error.h"
#include "hamnet/kernels.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"
#include "kernels/act.h"

enum { MODE_TRAIN = 0, MODE_PROBE = 1, MODE_EVAL = 2 }; /* batch statistics, without update, running */

typedef struct {
  hn_real *work;  /* hn_conv_step_work of the largest tile of any stage (and the opening's im2col) */
  hn_real *grads; /* gradient accumulator: a stage's layer block, or the opening's K_in */
  double *probe;  /* [3 (depth + 1)]: sums of ||y_j||^2, ||z_j||^2, ||g_j||^2 */
  double *recon;  /* [2 max(1, n_ck)]: squared differences and squared references of a stage */
} conv_thread;

struct hn_convnet_ws {
  hn_layout L;
  int max_batch, reversible, stride, eval_only, stored, S;
  size_t slot[HN_MAX_STAGES]; /* elements of one stage tensor at max_batch */
  hn_real *ya[HN_MAX_STAGES], *yb[HN_MAX_STAGES], *deriv[HN_MAX_STAGES], *y0[HN_MAX_STAGES];
  hn_real *ck_a[HN_MAX_STAGES], *ck_b[HN_MAX_STAGES];
  int n_ck[HN_MAX_STAGES];
  hn_real *fin[HN_MAX_STAGES], *fin_other[HN_MAX_STAGES]; /* after a forward pass */
  hn_real *xin;                                           /* the input, [C_in][B H W] */
  hn_real *open_u, *open_istd;
  hn_real *conn_u[HN_MAX_STAGES], *conn_istd[HN_MAX_STAGES];
  hn_real *gy, *gz, *gc; /* adjoints: of the stage states; of a normalised layer */
  hn_real *gap, *logits; /* [c_last][B], [B][C] */
  hn_real *kt, *ka;      /* per layer: flipped kernel; antisym: A_j = K_j - flip(K_j) (kt: flip(A_j)) */
  size_t *kofs;          /* [depth]: offset of layer j's kernel in kt / ka */
  int winograd[HN_MAX_STAGES]; /* stage s computes its products by Winograd (hamnet/conv.h) */
  hn_real *ku;                 /* per layer of a Winograd stage: U then Ut (hn_wino_kernel of K / A, Kt) */
  size_t *kuofs;               /* [depth]: offset of layer j's U in ku */
  size_t ku_bytes;
  hn_real *gsum;         /* antisym: a stage's summed dA */
  int n_threads, max_ck;
  conv_thread *thr;
  size_t activation_bytes, scratch_bytes;
};

/* ---------------------------------------------------------------------------------------- */
/* workspace */

static int hw_of(const hn_layout *L, int s) { return L->conv.H[s] * L->conv.W[s]; }
static int ch_of(const hn_layout *L, int s) { return L->spec.stage_channels[s]; }

void hn_convnet_ws_destroy(hn_convnet_ws *ws) {
  if (!ws)
    return;
  for (int s = 0; s < HN_MAX_STAGES; s++) {
    hn_real *bufs[] = {ws->ya[s], ws->yb[s], ws->deriv[s], ws->y0[s], ws->ck_a[s], ws->ck_b[s], ws->conn_u[s],
                       ws->conn_istd[s]};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
      hn_free(bufs[k]);
  }
  hn_real *bufs[] = {ws->xin, ws->open_u, ws->open_istd, ws->gy, ws->gz, ws->gc, ws->gap, ws->logits, ws->kt, ws->ka,
                     ws->gsum};
  for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
    hn_free(bufs[k]);
  hn_free(ws->kofs);
  hn_free(ws->ku);
  hn_free(ws->kuofs);
  for (int i = 0; ws->thr && i < ws->n_threads; i++) {
    hn_free(ws->thr[i].work);
    hn_free(ws->thr[i].grads);
    hn_free(ws->thr[i].probe);
    hn_free(ws->thr[i].recon);
  }
  hn_free(ws->thr);
  hn_free(ws);
}

/* Samples per tile of stage s for a batch of B on P threads: tiles of about HN_CONV_TILE_COLS map
 * positions, at least one per thread, their number a multiple of P where possible. */
static int tile_samples(int B, int HW, int P) {
  long T = ((long)B * HW + HN_CONV_TILE_COLS - 1) / HN_CONV_TILE_COLS;
  if (T < P)
    T = P;
  T = (T + P - 1) / P * P;
  if (T > B)
    T = B;
  return (int)((B + T - 1) / T);
}

/* Largest tile (map positions) any batch up to max_batch can get: nb HW <= HN_CONV_TILE_COLS + HW. */
static size_t max_cols(const hn_convnet_ws *ws, int s) {
  size_t hw = (size_t)hw_of(&ws->L, s), a = (size_t)ws->max_batch * hw, b = HN_CONV_TILE_COLS + hw;
  return a < b ? a : b;
}

int hn_convnet_ws_create(hn_convnet_ws **out, const hn_layout *L, int max_batch, int reversible, int stride,
                         int eval_only) {
  *out = NULL;
  const hn_model_spec *sp = &L->spec;
  if (max_batch < 1)
    return hn_fail(HN_EINVAL, "batch size must be >= 1 (got %d)", max_batch);
  if (reversible && !eval_only && !hn_arch_is_reversible(sp->arch))
    return hn_fail(HN_EINVAL, "reversible mode needs arch hamiltonian or leapfrog ([model] arch = %s); "
                   "use [train] reversible = auto or off", hn_arch_name(sp->arch));
  if (stride < 0)
    return hn_fail(HN_EINVAL, "reversible stride must be >= 0 (got %d)", stride);
  for (int s = 0; s < sp->n_stages; s++)
    if ((int64_t)max_batch * hw_of(L, s) > INT32_MAX / 2)
      return hn_fail(HN_EINVAL, "a batch of %d samples of %dx%d maps is too large for one pass (at most %d "
                     "positions per channel); lower the batch size", max_batch, L->conv.H[s], L->conv.W[s],
                     INT32_MAX / 2);
  hn_convnet_ws *ws = hn_alloc(1, sizeof *ws, HN_MEM_OTHER, "convolutional workspace");
  if (!ws)
    return HN_ENOMEM;
  ws->L = *L;
  ws->max_batch = max_batch;
  ws->eval_only = eval_only;
  ws->reversible = eval_only ? 1 : reversible;
  ws->stored = !eval_only && !reversible;
  ws->stride = ws->reversible && !eval_only ? stride : 0;
  ws->S = sp->n_stages;
  const int S = ws->S, ham = sp->arch == HN_ARCH_HAMILTONIAN, leap = sp->arch == HN_ARCH_LEAPFROG;
  const int batch_norm = sp->norm == HN_NORM_BATCH, train = !eval_only;
  int ok = 1;
  size_t act = 0, scratch = 0;
#define HN_CWS_ALLOC(ptr, count, cat, name)                                           \
  do {                                                                                 \
    ptr = hn_alloc((count), sizeof(hn_real), cat, name);                              \
    ok = ok && ptr != NULL;                                                            \
    *((cat) == HN_MEM_ACTIVATIONS ? &act : &scratch) += (size_t)(count) * sizeof(hn_real); \
  } while (0)
  size_t max_slot = 0, max_conn = 0;
  for (int s = 0; s < S; s++) {
    const size_t slot = (size_t)ch_of(L, s) * max_batch * hw_of(L, s);
    const int N = sp->stage_layers[s];
    ws->slot[s] = slot;
    max_slot = slot > max_slot ? slot : max_slot;
    if (ws->stored) {
      HN_CWS_ALLOC(ws->ya[s], (size_t)(N + 1) * slot, HN_MEM_ACTIVATIONS, "stored states y_j");
      if (ham)
        HN_CWS_ALLOC(ws->yb[s], (size_t)(N + 1) * slot, HN_MEM_ACTIVATIONS, "stored states z_j");
      HN_CWS_ALLOC(ws->deriv[s], (size_t)(ham ? 2 * N : N) * slot, HN_MEM_ACTIVATIONS, "stored derivatives");
    } else {
      HN_CWS_ALLOC(ws->ya[s], slot, train ? HN_MEM_ACTIVATIONS : HN_MEM_WORKSPACE, "stage states");
      if (ham || leap)
        HN_CWS_ALLOC(ws->yb[s], slot, train ? HN_MEM_ACTIVATIONS : HN_MEM_WORKSPACE, "stage states");
      if (train) {
        HN_CWS_ALLOC(ws->y0[s], slot, HN_MEM_ACTIVATIONS, "saved first states");
        if (ws->stride > 0) {
          ws->n_ck[s] = (N - 1) / ws->stride + 1;
          HN_CWS_ALLOC(ws->ck_a[s], (size_t)ws->n_ck[s] * slot, HN_MEM_ACTIVATIONS, "state checkpoints");
          HN_CWS_ALLOC(ws->ck_b[s], (size_t)ws->n_ck[s] * slot, HN_MEM_ACTIVATIONS, "state checkpoints");
        }
      }
    }
    ws->max_ck = ws->n_ck[s] > ws->max_ck ? ws->n_ck[s] : ws->max_ck;
    if (s + 1 < S) {
      const size_t conn = (size_t)ch_of(L, s + 1) * max_batch * hw_of(L, s);
      max_conn = conn > max_conn ? conn : max_conn;
      HN_CWS_ALLOC(ws->conn_u[s], conn, train ? HN_MEM_ACTIVATIONS : HN_MEM_WORKSPACE, "connective pre-activation");
      if (batch_norm)
        HN_CWS_ALLOC(ws->conn_istd[s], (size_t)ch_of(L, s + 1), HN_MEM_WORKSPACE, "connective statistics");
    }
  }
  const int c0 = ch_of(L, 0), Cin = sp->image_channels, C = sp->n_classes, last = ch_of(L, S - 1);
  const size_t open = (size_t)c0 * max_batch * hw_of(L, 0);
  HN_CWS_ALLOC(ws->xin, (size_t)Cin * max_batch * hw_of(L, 0), HN_MEM_WORKSPACE, "input maps");
  HN_CWS_ALLOC(ws->open_u, open, train ? HN_MEM_ACTIVATIONS : HN_MEM_WORKSPACE, "opening pre-activation");
  if (batch_norm)
    HN_CWS_ALLOC(ws->open_istd, (size_t)c0, HN_MEM_WORKSPACE, "opening statistics");
  if (train) {
    HN_CWS_ALLOC(ws->gy, max_slot, HN_MEM_WORKSPACE, "adjoint y");
    HN_CWS_ALLOC(ws->gz, max_slot, HN_MEM_WORKSPACE, "adjoint z");
    HN_CWS_ALLOC(ws->gc, max_conn > open ? max_conn : open, HN_MEM_WORKSPACE, "adjoint of a normalised layer");
  }
  HN_CWS_ALLOC(ws->gap, (size_t)last * max_batch, HN_MEM_WORKSPACE, "pooled features");
  HN_CWS_ALLOC(ws->logits, (size_t)C * max_batch, HN_MEM_WORKSPACE, "logits");
  size_t kernels = 0, max_block = (size_t)c0 * Cin * 9, max_work = (size_t)9 * Cin * max_cols(ws, 0);
  ws->kofs = hn_alloc((size_t)sp->depth, sizeof(size_t), HN_MEM_WORKSPACE, "kernel offsets");
  ok = ok && ws->kofs;
  for (int s = 0; s < S && ok; s++) {
    const size_t k9 = (size_t)9 * ch_of(L, s) * ch_of(L, s);
    for (int j = 0; j < sp->stage_layers[s]; j++)
      ws->kofs[L->conv.first_layer[s] + j] = kernels + (size_t)j * k9;
    kernels += (size_t)sp->stage_layers[s] * k9;
    const size_t block = (size_t)sp->stage_layers[s] * L->conv.layer_size[s];
    max_block = block > max_block ? block : max_block;
    const hn_conv_tile biggest = {L->conv.H[s], L->conv.W[s], (int)(max_cols(ws, s) / (size_t)hw_of(L, s))};
    const size_t w = hn_conv_step_work(ch_of(L, s), &biggest);
    max_work = w > max_work ? w : max_work;
  }
  /* copies of parameters, so counted with them (the workspace stays flat in depth) */
  HN_CWS_ALLOC(ws->kt, kernels, HN_MEM_PARAMS, "flipped kernels");
  if (sp->arch == HN_ARCH_ANTISYM) {
    HN_CWS_ALLOC(ws->ka, kernels, HN_MEM_PARAMS, "antisym operator kernels");
    if (train)
      HN_CWS_ALLOC(ws->gsum, max_block, HN_MEM_GRADS, "antisym operator gradients");
  }
  ws->n_threads = omp_get_max_threads();
  ws->thr = hn_alloc((size_t)ws->n_threads, sizeof(conv_thread), HN_MEM_OTHER, "convolution thread scratch");
  ok = ok && ws->thr;
  for (int i = 0; ok && i < ws->n_threads; i++) {
    conv_thread *t = &ws->thr[i];
    HN_CWS_ALLOC(t->work, max_work, HN_MEM_WORKSPACE, "convolution tile scratch");
    if (train)
      HN_CWS_ALLOC(t->grads, max_block, HN_MEM_GRADS, "per-thread gradient accumulator");
    t->probe = hn_alloc(3 * ((size_t)sp->depth + 1), sizeof(double), HN_MEM_WORKSPACE, "probe sums");
    t->recon = hn_alloc(2 * (size_t)(ws->max_ck > 0 ? ws->max_ck : 1), sizeof(double), HN_MEM_WORKSPACE,
                        "reconstruction error sums");
    ok = ok && t->probe && t->recon;
  }
#undef HN_CWS_ALLOC
  ws->activation_bytes = act;
  ws->scratch_bytes = scratch;
  ws->kuofs = hn_alloc((size_t)sp->depth, sizeof(size_t), HN_MEM_WORKSPACE, "transformed kernel offsets");
  if (!ok || !ws->kuofs || hn_convnet_ws_set_algorithm(ws, HN_CONV_AUTO) != HN_OK) {
    hn_convnet_ws_destroy(ws);
    return HN_ENOMEM;
  }
  *out = ws;
  return HN_OK;
}

int hn_convnet_ws_set_algorithm(hn_convnet_ws *ws, hn_conv_algorithm a) {
  const hn_layout *L = &ws->L;
  if (a < 0 || a >= HN_CONV_COUNT)
    return hn_fail(HN_EINVAL, "unknown convolution algorithm %d", (int)a);
  size_t total = 0; /* elements of the transformed kernels of the Winograd stages */
  for (int s = 0; s < ws->S; s++) {
    const size_t layer = 2 * hn_wino_kernel_size(ch_of(L, s), ch_of(L, s));
    ws->winograd[s] = a == HN_CONV_WINOGRAD || (a == HN_CONV_AUTO && L->conv.H[s] >= 4 && L->conv.W[s] >= 4);
    if (ws->winograd[s])
      for (int j = 0; j < L->spec.stage_layers[s]; j++, total += layer)
        ws->kuofs[L->conv.first_layer[s] + j] = total;
  }
  if (a == HN_CONV_AUTO && total * sizeof(hn_real) > HN_WINOGRAD_MAX_KERNEL_BYTES) {
    hn_log_info("convolutions: im2col + GEMM, not Winograd: the transformed kernels would take %.0f MiB "
           "(more than %.0f; [train] conv_algorithm = winograd uses them anyway)",
           (double)(total * sizeof(hn_real)) / 1048576.0, (double)HN_WINOGRAD_MAX_KERNEL_BYTES / 1048576.0);
    for (int s = 0; s < ws->S; s++)
      ws->winograd[s] = 0;
    total = 0;
  }
  hn_free(ws->ku);
  ws->scratch_bytes -= ws->ku_bytes;
  ws->ku = NULL;
  ws->ku_bytes = 0;
  if (total > 0) {
    ws->ku = hn_alloc(total, sizeof(hn_real), HN_MEM_PARAMS, "Winograd-transformed kernels");
    if (!ws->ku) {
      for (int s = 0; s < ws->S; s++)
        ws->winograd[s] = 0;
      return HN_ENOMEM;
    }
    ws->ku_bytes = total * sizeof(hn_real);
    ws->scratch_bytes += ws->ku_bytes;
  }
  return HN_OK;
}

int hn_convnet_ws_winograd_stage(const hn_convnet_ws *ws, int s) { return s >= 0 && s < ws->S && ws->winograd[s]; }

size_t hn_convnet_ws_activation_bytes(const hn_convnet_ws *ws) { return ws->activation_bytes; }
size_t hn_convnet_ws_scratch_bytes(const hn_convnet_ws *ws) { return ws->scratch_bytes; }

/* ---------------------------------------------------------------------------------------- */
/* helpers */

static int threads_for(const hn_convnet_ws *ws) {
  int P = omp_get_max_threads();
  P = P < ws->n_threads ? P : ws->n_threads;
  return P < 1 ? 1 : P;
}

/* Per-layer kernels of this pass: flip(K_j); antisym: A_j = K_j - flip(K_j) and flip(A_j) = -A_j. */
static void prepare_kernels(const hn_model *m, hn_convnet_ws *ws) {
  const hn_layout *L = &m->layout;
  for (int j = 0; j < L->spec.depth; j++) {
    int jj, s = hn_convnet_stage_of(L, j, &jj);
    const int c = ch_of(L, s);
    const size_t k9 = (size_t)9 * c * c;
    const hn_real *K = m->params + L->conv.off_stage[s] + (size_t)jj * L->conv.layer_size[s];
    hn_real *kt = ws->kt + ws->kofs[j];
    hn_conv3_flip(c, c, K, kt);
    if (L->spec.arch == HN_ARCH_ANTISYM) {
      hn_real *A = ws->ka + ws->kofs[j];
      for (size_t i = 0; i < k9; i++) {
        A[i] = K[i] - kt[i];
        kt[i] = -A[i];
      }
      K = A;
    }
    if (ws->winograd[s]) {
      hn_real *U = ws->ku + ws->kuofs[j];
      hn_wino_kernel(c, c, K, U);
      hn_wino_kernel(c, c, kt, U + hn_wino_kernel_size(c, c));
    }
  }
}

/* The kernels of global layer j (stage s) for the layer steps: K (antisym: A_j) and its flip, and
 * their Winograd transforms where the stage uses them. */
static hn_conv_kernels layer_kernels(const hn_convnet_ws *ws, int s, int j, const hn_real *K) {
  const int c = ch_of(&ws->L, s);
  hn_conv_kernels k = {ws->L.spec.arch == HN_ARCH_ANTISYM ? ws->ka + ws->kofs[j] : K, ws->kt + ws->kofs[j], NULL,
                       NULL};
  if (ws->winograd[s]) {
    k.U = ws->ku + ws->kuofs[j];
    k.Ut = k.U + hn_wino_kernel_size(c, c);
  }
  return k;
}

static void copy_rows(hn_real *dst, const hn_real *src, int rows, int ld, size_t off, int n) {
  for (int r = 0; r < rows; r++)
    memcpy(dst + (size_t)r * ld + off, src + (size_t)r * ld + off, (size_t)n * sizeof(hn_real));
}

static double sum_squares_rows(const hn_real *x, int rows, int ld, size_t off, int n) {
  double s = 0;
  for (int r = 0; r < rows; r++) {
    const hn_real *p = x + (size_t)r * ld + off;
    for (int q = 0; q < n; q++)
      s += (double)p[q] * p[q];
  }
  return s;
}

/* Squared difference of (a, b) from (ea, eb) (eb NULL: b should be 0) and squares of ea, over a
 * tile's rows, added to sums[0], sums[1]; with `restore`, continue from the exact states. */
static void recon_rows(double *sums, hn_real *a, hn_real *b, const hn_real *ea, const hn_real *eb, int rows, int ld,
                       size_t off, int n, int restore) {
  for (int r = 0; r < rows; r++) {
    const size_t o = (size_t)r * ld + off;
    for (int q = 0; q < n; q++) {
      double e = (double)a[o + q] - ea[o + q];
      double f = b ? (double)b[o + q] - (eb ? eb[o + q] : 0) : 0;
      sums[0] += e * e + f * f;
      sums[1] += (double)ea[o + q] * ea[o + q];
    }
  }
  if (restore) {
    copy_rows(a, ea, rows, ld, off, n);
    if (b && eb)
      copy_rows(b, eb, rows, ld, off, n);
  }
}

/* Reconstruction error: RMS difference relative to the RMS of the exact state, absolute where
 * that is below unit scale (as for dense networks, network.c). */
static double relative_error(double diff2, double ref2, size_t count) {
  double rms_diff = sqrt(diff2 / (double)count), rms_ref = sqrt(ref2 / (double)count);
  return rms_diff / (rms_ref > 1 ? rms_ref : 1);
}

/* The normalisation's output before the activation is scale * u + shift, per channel: gamma and
 * beta of batch normalisation applied to xhat, or 1 and 0 (the bias is already in u). Branch-free,
 * so that the loops over u vectorise. */
static inline void norm_affine(int batch_norm, const hn_real *gm, const hn_real *b, int o, hn_real *scale,
                               hn_real *shift) {
  *scale = batch_norm ? gm[o] : 1;
  *shift = batch_norm ? b[o] : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* normalised layers: opening and connectives */

/* u [c][N] holds the layer's linear output. Batch normalisation: u becomes xhat (batch statistics,
 * MODE_TRAIN updates the running ones in rstat; MODE_EVAL normalises with rstat), istd gets 1/std.
 * None: u += b. Afterwards the layer's output before the activation is norm_value(u). */
static void norm_forward(int batch_norm, int c, int N, hn_real *u, hn_real *istd, const hn_real *b, hn_real *rstat,
                         int mode) {
#pragma omp parallel for schedule(static)
  for (int o = 0; o < c; o++) {
    hn_real *x = u + (size_t)o * N;
    if (!batch_norm) {
      const hn_real bo = b[o];
      for (int q = 0; q < N; q++)
        x[q] += bo;
      continue;
    }
    double mean, var;
    if (mode == MODE_EVAL) {
      mean = rstat[o];
      var = rstat[c + o];
    } else { /* two passes in double (no cancellation), vectorised */
      double s = 0, s2 = 0;
#pragma omp simd reduction(+ : s)
      for (int q = 0; q < N; q++)
        s += x[q];
      mean = s / N;
#pragma omp simd reduction(+ : s2)
      for (int q = 0; q < N; q++) {
        double d = x[q] - mean;
        s2 += d * d;
      }
      var = s2 / N;
      if (mode == MODE_TRAIN) {
        rstat[o] = (hn_real)((1 - HN_BN_MOMENTUM) * rstat[o] + HN_BN_MOMENTUM * mean);
        rstat[c + o] = (hn_real)((1 - HN_BN_MOMENTUM) * rstat[c + o] + HN_BN_MOMENTUM * var * N / (N > 1 ? N - 1 : 1));
      }
    }
    const hn_real is = (hn_real)(1.0 / sqrt(var + HN_BN_EPS)), mu = (hn_real)mean;
    istd[o] = is;
#pragma omp simd
    for (int q = 0; q < N; q++)
      x[q] = (x[q] - mu) * is;
  }
}

/* g [c][N]: dL/d(activation output) on entry, dL/du on exit (u as left by norm_forward). Adds
 * the gradients of gamma and beta (batch) or of the bias (none). */
static void norm_backward(int batch_norm, hn_activation act, int c, int N, const hn_real *u, const hn_real *istd,
                          const hn_real *gm, const hn_real *b, hn_real *dgm, hn_real *db, hn_real *g) {
#pragma omp parallel for schedule(static)
  for (int o = 0; o < c; o++) {
    hn_real *d = g + (size_t)o * N;
    const hn_real *x = u + (size_t)o * N;
    hn_real go, bo;
    norm_affine(batch_norm, gm, b, o, &go, &bo);
    if (act == HN_ACT_RELU) { /* through the activation: one vectorised loop per activation */
#pragma omp simd
      for (int q = 0; q < N; q++)
        d[q] = go * x[q] + bo > 0 ? d[q] : 0;
    } else {
#pragma omp simd
      for (int q = 0; q < N; q++) {
        hn_real t = act_tanh(go * x[q] + bo);
        d[q] *= 1 - t * t;
      }
    }
    double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int q = 0; q < N; q++) {
      sg += d[q];
      sgx += (double)d[q] * x[q];
    }
    db[o] += (hn_real)sg;
    if (!batch_norm)
      continue;
    dgm[o] += (hn_real)sgx;
    const hn_real k = go * istd[o], mg = (hn_real)(sg / N), mgx = (hn_real)(sgx / N);
#pragma omp simd
    for (int q = 0; q < N; q++)
      d[q] = k * (d[q] - mg - x[q] * mgx);
  }
}

/* y_0 of stage 0 from the input X [B][C_in][H W]. */
static void opening_forward(const hn_model *m, hn_convnet_ws *ws, const hn_real *X, int B, int mode, hn_real *y0) {
  const hn_layout *L = &m->layout;
  const int Cin = L->spec.image_channels, c0 = ch_of(L, 0), HW = hw_of(L, 0), N = B * HW;
  const int batch_norm = L->spec.norm == HN_NORM_BATCH;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++)
    for (int i = 0; i < Cin; i++)
      memcpy(ws->xin + (size_t)i * N + (size_t)b * HW, X + ((size_t)b * Cin + i) * HW, (size_t)HW * sizeof(hn_real));
  const int P = threads_for(ws), nb = tile_samples(B, HW, P), tiles = (B + nb - 1) / nb;
  const hn_real *K = m->params + L->conv.off_open_K;
#pragma omp parallel num_threads(P)
  {
    const int id = omp_get_thread_num(), np = omp_get_num_threads();
    for (int k = (int)((long)tiles * id / np); k < (int)((long)tiles * (id + 1) / np); k++) {
      const int b0 = k * nb, cnt = B - b0 < nb ? B - b0 : nb;
      const hn_conv_tile t = {L->conv.H[0], L->conv.W[0], cnt};
      hn_conv3_forward(&t, c0, Cin, K, ws->xin + (size_t)b0 * HW, N, 0, ws->open_u + (size_t)b0 * HW, N,
                       ws->thr[id].work);
    }
  }
  norm_forward(batch_norm, c0, N, ws->open_u, ws->open_istd, m->params + L->conv.off_open_b,
               m->state ? m->state + L->conv.state_open : NULL, mode);
  const hn_real *gm = m->params + L->conv.off_open_g, *bt = m->params + L->conv.off_open_b;
  const hn_activation act = L->spec.activation;
#pragma omp parallel for schedule(static)
  for (int o = 0; o < c0; o++) {
    const hn_real *u = ws->open_u + (size_t)o * N;
    hn_real *y = y0 + (size_t)o * N;
    hn_real go, bo;
    norm_affine(batch_norm, gm, bt, o, &go, &bo);
    act_affine(act, N, go, bo, u, y);
  }
}

enum { POOL_BUF = 4096 }; /* connective_forward: activations of this many inputs on the stack */

/* Connective s: y_{s+1,0} = pool(s(N(W_s y))) from y = the last state of stage s. */
static void connective_forward(const hn_model *m, hn_convnet_ws *ws, int s, int B, int mode, const hn_real *y,
                               hn_real *out) {
  const hn_layout *L = &m->layout;
  const int c = ch_of(L, s), cn = ch_of(L, s + 1), H = L->conv.H[s], W = L->conv.W[s], N = B * H * W;
  const int H2 = L->conv.H[s + 1], W2 = L->conv.W[s + 1], N2 = B * H2 * W2;
  const int batch_norm = L->spec.norm == HN_NORM_BATCH;
  hn_real *u = ws->conn_u[s];
  hn_gemm(0, 0, cn, N, c, 1, m->params + L->conv.off_conn_W[s], c, y, N, 0, u, N);
  norm_forward(batch_norm, cn, N, u, ws->conn_istd[s], m->params + L->conv.off_conn_b[s],
               m->state ? m->state + L->conv.state_conn[s] : NULL, mode);
  const hn_real *gm = m->params + L->conv.off_conn_g[s], *bt = m->params + L->conv.off_conn_b[s];
  const hn_activation act = L->spec.activation;
#pragma omp parallel for collapse(2) schedule(static)
  for (int o = 0; o < cn; o++)
    for (int b = 0; b < B; b++) {
      hn_real go, bo;
      norm_affine(batch_norm, gm, bt, o, &go, &bo);
      const hn_real *ui = u + (size_t)o * N + (size_t)b * H * W;
      hn_real *po = out + (size_t)o * N2 + (size_t)b * H2 * W2;
      if (2 * W > POOL_BUF) { /* images wider than the buffer (unheard of): the scalar way */
        for (int y2 = 0; y2 < H2; y2++) {
          const hn_real *r0 = ui + (size_t)(2 * y2) * W, *r1 = r0 + W;
          for (int x = 0; x < W2; x++)
            po[(size_t)y2 * W2 + x] =
                (hn_real)0.25 * (act_value(act, go * r0[2 * x] + bo) + act_value(act, go * r0[2 * x + 1] + bo) +
                                 act_value(act, go * r1[2 * x] + bo) + act_value(act, go * r1[2 * x + 1] + bo));
        }
        continue;
      }
      /* The activations first, over blocks of whole row pairs (contiguous: one simd loop, so
       * tanh runs as libmvec's vector variant), then the pooling from the block. Inside the
       * strided pooling loop the activation stayed scalar: libm's tanhf per element took a
       * seventh of a 16-32-64 Hamiltonian net's training step. */
      hn_real a[POOL_BUF];
      const int rows = POOL_BUF / (2 * W); /* row pairs per block */
      for (int y0 = 0; y0 < H2; y0 += rows) {
        const int rb = H2 - y0 < rows ? H2 - y0 : rows;
        act_affine(act, 2 * rb * W, go, bo, ui + (size_t)(2 * y0) * W, a);
        for (int y2 = y0; y2 < y0 + rb; y2++) {
          const hn_real *r0 = a + (size_t)(2 * (y2 - y0)) * W, *r1 = r0 + W;
          hn_real *pr = po + (size_t)y2 * W2;
#pragma omp simd
          for (int x = 0; x < W2; x++)
            pr[x] = (hn_real)0.25 * (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]);
        }
      }
    }
}

/* Backward of connective s: ws->gy = dL/dy_{s+1,0} on entry, dL/dy_{s,L} on exit; y as in the
 * forward pass. */
static void connective_backward(hn_model *m, hn_convnet_ws *ws, int s, int B, const hn_real *y) {
  const hn_layout *L = &m->layout;
  const int c = ch_of(L, s), cn = ch_of(L, s + 1), H = L->conv.H[s], W = L->conv.W[s], N = B * H * W;
  const int H2 = L->conv.H[s + 1], W2 = L->conv.W[s + 1], N2 = B * H2 * W2;
  const int batch_norm = L->spec.norm == HN_NORM_BATCH;
  hn_real *g = ws->gc;
  /* unpooling: each input position of a pooled 2x2 block gets a quarter (the dropped odd row /
   * column nothing) */
#pragma omp parallel for collapse(2) schedule(static)
  for (int o = 0; o < cn; o++)
    for (int b = 0; b < B; b++) {
      hn_real *gi = g + (size_t)o * N + (size_t)b * H * W;
      const hn_real *go = ws->gy + (size_t)o * N2 + (size_t)b * H2 * W2;
      memset(gi, 0, (size_t)H * W * sizeof(hn_real));
      for (int y2 = 0; y2 < H2; y2++)
        for (int x2 = 0; x2 < W2; x2++) {
          hn_real v = (hn_real)0.25 * go[y2 * W2 + x2];
          hn_real *p = gi + (size_t)(2 * y2) * W + 2 * x2;
          p[0] = p[1] = p[W] = p[W + 1] = v;
        }
    }
  norm_backward(batch_norm, L->spec.activation, cn, N, ws->conn_u[s], ws->conn_istd[s],
                m->params + L->conv.off_conn_g[s], m->params + L->conv.off_conn_b[s], m->grads + L->conv.off_conn_g[s],
                m->grads + L->conv.off_conn_b[s], g);
  hn_gemm(0, 1, cn, c, N, 1, g, N, y, N, 1, m->grads + L->conv.off_conn_W[s], c); /* dW += du y^T */
  hn_gemm(1, 0, c, N, cn, 1, m->params + L->conv.off_conn_W[s], c, g, N, 0, ws->gy, N);
}

/* Backward of the opening: ws->gy = dL/dy_0 of stage 0. */
static void opening_backward(hn_model *m, hn_convnet_ws *ws, int B) {
  const hn_layout *L = &m->layout;
  const int Cin = L->spec.image_channels, c0 = ch_of(L, 0), HW = hw_of(L, 0), N = B * HW;
  const int batch_norm = L->spec.norm == HN_NORM_BATCH;
  memcpy(ws->gc, ws->gy, (size_t)c0 * N * sizeof(hn_real));
  norm_backward(batch_norm, L->spec.activation, c0, N, ws->open_u, ws->open_istd, m->params + L->conv.off_open_g,
                m->params + L->conv.off_open_b, m->grads + L->conv.off_open_g, m->grads + L->conv.off_open_b, ws->gc);
  const int P = threads_for(ws), nb = tile_samples(B, HW, P), tiles = (B + nb - 1) / nb;
  const size_t nk = (size_t)c0 * Cin * 9;
  int used = 1;
#pragma omp parallel num_threads(P)
  {
    const int id = omp_get_thread_num(), np = omp_get_num_threads();
    if (id == 0)
      used = np;
    conv_thread *t = &ws->thr[id];
    memset(t->grads, 0, nk * sizeof(hn_real));
    for (int k = (int)((long)tiles * id / np); k < (int)((long)tiles * (id + 1) / np); k++) {
      const int b0 = k * nb, cnt = B - b0 < nb ? B - b0 : nb;
      const hn_conv_tile tl = {L->conv.H[0], L->conv.W[0], cnt};
      hn_im2col3(&tl, Cin, ws->xin + (size_t)b0 * HW, N, t->work);
      hn_conv3_grad(&tl, c0, Cin, 1, ws->gc + (size_t)b0 * HW, N, t->work, t->grads);
    }
  }
  hn_real *dK = m->grads + L->conv.off_open_K;
  for (size_t i = 0; i < nk; i++) {
    hn_real s = 0;
    for (int id = 0; id < used; id++)
      s += ws->thr[id].grads[i];
    dK[i] += s;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* stages */

/* Buffers of a stage's state j (stored mode slots). */
static hn_real *slot_at(const hn_convnet_ws *ws, hn_real *base, int s, int j) { return base + (size_t)j * ws->slot[s]; }

/* Forward through stage s, whose first state is in ws->ya[s] (slot 0). */
static void stage_forward(const hn_model *m, hn_convnet_ws *ws, int s, int B, int train, hn_probe *probe) {
  const hn_layout *L = &m->layout;
  const hn_model_spec *sp = &L->spec;
  const int c = ch_of(L, s), HW = hw_of(L, s), ld = B * HW, NL = sp->stage_layers[s], first = L->conv.first_layer[s];
  const int stride = ws->stride, keep_ck = train && ws->reversible && stride > 0, keep_y0 = train && ws->reversible;
  const hn_arch arch = sp->arch;
  const size_t k9 = (size_t)9 * c * c;
  const int P = threads_for(ws), nb = tile_samples(B, HW, P), tiles = (B + nb - 1) / nb;
  const int last_stage = s + 1 == sp->n_stages;
#pragma omp parallel num_threads(P)
  {
    const int id = omp_get_thread_num(), np = omp_get_num_threads();
    conv_thread *t = &ws->thr[id];
    for (int k = (int)((long)tiles * id / np); k < (int)((long)tiles * (id + 1) / np); k++) {
      const int b0 = k * nb, cnt = B - b0 < nb ? B - b0 : nb, n = cnt * HW;
      const size_t off = (size_t)b0 * HW;
      const hn_conv_step st = {{L->conv.H[s], L->conv.W[s], cnt}, c, sp->activation, L->conv.h[s],
                               arch == HN_ARCH_ANTISYM ? (hn_real)sp->gamma : 0};
      hn_real *ya = ws->ya[s] + off, *yb = ws->yb[s] ? ws->yb[s] + off : NULL;
      if (keep_y0)
        copy_rows(ws->y0[s], ws->ya[s], c, ld, off, n);
      if (arch == HN_ARCH_HAMILTONIAN)
        for (int r = 0; r < c; r++)
          memset(yb + (size_t)r * ld, 0, (size_t)n * sizeof(hn_real));
      else if (arch == HN_ARCH_LEAPFROG && !ws->stored)
        copy_rows(ws->yb[s], ws->ya[s], c, ld, off, n); /* y_{-1} = y_0 */
      hn_real *cur = ya, *prev = yb; /* leapfrog in place: y_j, y_{j-1} */
      for (int j = 0; j < NL; j++) {
        const hn_real *K = m->params + L->conv.off_stage[s] + (size_t)j * L->conv.layer_size[s], *b = K + k9;
        const hn_conv_kernels kk = layer_kernels(ws, s, first + j, K);
        hn_real *y = ws->stored ? slot_at(ws, ws->ya[s], s, j) + off : (arch == HN_ARCH_LEAPFROG ? cur : ya);
        if (probe && probe->y_norm2)
          t->probe[first + j] += sum_squares_rows(y, c, ld, 0, n);
        if (keep_ck && j % stride == 0) {
          const size_t ck = (size_t)(j / stride) * ws->slot[s] + off;
          copy_rows(ws->ck_a[s] + ck - off, y - off, c, ld, off, n);
          copy_rows(ws->ck_b[s] + ck - off, (arch == HN_ARCH_LEAPFROG ? prev : yb) - off, c, ld, off, n);
        }
        switch (arch) {
        case HN_ARCH_RESNET:
        case HN_ARCH_ANTISYM: {
          if (ws->stored)
            hn_conv_euler_forward(&st, &kk, b, y, slot_at(ws, ws->ya[s], s, j + 1) + off,
                                  slot_at(ws, ws->deriv[s], s, j) + off, ld, t->work);
          else
            hn_conv_euler_forward(&st, &kk, b, y, y, NULL, ld, t->work);
          break;
        }
        case HN_ARCH_HAMILTONIAN: {
          hn_real *z = ws->stored ? slot_at(ws, ws->yb[s], s, j) + off : yb;
          if (probe && probe->z_norm2)
            t->probe[(size_t)sp->depth + 1 + first + j] += sum_squares_rows(z, c, ld, 0, n);
          if (ws->stored)
            hn_conv_ham_forward(&st, &kk, b, y, z, slot_at(ws, ws->ya[s], s, j + 1) + off,
                                slot_at(ws, ws->yb[s], s, j + 1) + off, slot_at(ws, ws->deriv[s], s, 2 * j) + off,
                                slot_at(ws, ws->deriv[s], s, 2 * j + 1) + off, ld, t->work);
          else
            hn_conv_ham_forward(&st, &kk, b, y, z, y, z, NULL, NULL, ld, t->work);
          break;
        }
        case HN_ARCH_LEAPFROG:
          if (ws->stored) {
            const hn_real *yp = slot_at(ws, ws->ya[s], s, j > 0 ? j - 1 : 0) + off;
            hn_conv_leap_forward(&st, &kk, b, y, yp, slot_at(ws, ws->ya[s], s, j + 1) + off,
                                 slot_at(ws, ws->deriv[s], s, j) + off, ld, t->work);
          } else {
            hn_conv_leap_forward(&st, &kk, b, cur, prev, prev, NULL, ld, t->work);
            hn_real *tmp = cur;
            cur = prev;
            prev = tmp;
          }
          break;
        default: break;
        }
      }
      if (probe && last_stage) { /* the final state, j = depth */
        const hn_real *y = ws->stored ? slot_at(ws, ws->ya[s], s, NL) + off : (arch == HN_ARCH_LEAPFROG ? cur : ya);
        if (probe->y_norm2)
          t->probe[sp->depth] += sum_squares_rows(y, c, ld, 0, n);
        if (probe->z_norm2 && arch == HN_ARCH_HAMILTONIAN)
          t->probe[2 * (size_t)sp->depth + 1] +=
              sum_squares_rows(ws->stored ? slot_at(ws, ws->yb[s], s, NL) + off : yb, c, ld, 0, n);
      }
    }
  }
  /* where the last states are */
  if (ws->stored) {
    ws->fin[s] = slot_at(ws, ws->ya[s], s, NL);
    ws->fin_other[s] = arch == HN_ARCH_HAMILTONIAN ? slot_at(ws, ws->yb[s], s, NL) : NULL;
  } else if (arch == HN_ARCH_LEAPFROG) {
    ws->fin[s] = NL % 2 == 0 ? ws->ya[s] : ws->yb[s]; /* the pair swaps roles every layer */
    ws->fin_other[s] = NL % 2 == 0 ? ws->yb[s] : ws->ya[s];
  } else {
    ws->fin[s] = ws->ya[s];
    ws->fin_other[s] = ws->yb[s];
  }
}

/* Backward through stage s: ws->gy = dL/dy_{s,L} on entry, dL/dy_{s,0} on exit. Adds the stage's
 * gradients to m->grads; returns the worst reconstruction error (reversible). */
static double stage_backward(hn_model *m, hn_convnet_ws *ws, int s, int B, hn_probe *probe) {
  const hn_layout *L = &m->layout;
  const hn_model_spec *sp = &L->spec;
  const int c = ch_of(L, s), HW = hw_of(L, s), ld = B * HW, NL = sp->stage_layers[s], first = L->conv.first_layer[s];
  const int stride = ws->stride, rev = ws->reversible;
  const hn_arch arch = sp->arch;
  const size_t k9 = (size_t)9 * c * c, ls = L->conv.layer_size[s], block = (size_t)NL * ls;
  const int n_ck = stride > 0 ? ws->n_ck[s] : 1;
  const int P = threads_for(ws), nb = tile_samples(B, HW, P), tiles = (B + nb - 1) / nb;
  for (int r = 0; r < c; r++)
    memset(ws->gz + (size_t)r * ld, 0, (size_t)ld * sizeof(hn_real)); /* z_L (y_{L-1}) does not reach the loss */
  int used = 1;
#pragma omp parallel num_threads(P)
  {
    const int id = omp_get_thread_num(), np = omp_get_num_threads();
    if (id == 0)
      used = np;
    conv_thread *t = &ws->thr[id];
    memset(t->grads, 0, block * sizeof(hn_real));
    memset(t->recon, 0, 2 * (size_t)n_ck * sizeof(double));
    for (int k = (int)((long)tiles * id / np); k < (int)((long)tiles * (id + 1) / np); k++) {
      const int b0 = k * nb, cnt = B - b0 < nb ? B - b0 : nb, n = cnt * HW;
      const size_t off = (size_t)b0 * HW;
      const hn_conv_step st = {{L->conv.H[s], L->conv.W[s], cnt}, c, sp->activation, L->conv.h[s],
                               arch == HN_ARCH_ANTISYM ? (hn_real)sp->gamma : 0};
      hn_real *gy = ws->gy + off, *gz = ws->gz + off;
      hn_real *ya = ws->fin[s] + off, *yb = ws->fin_other[s] ? ws->fin_other[s] + off : NULL;
      hn_real *cur = ya, *prev = yb; /* leapfrog, reversible: y_{j+1}, y_j */
      for (int j = NL - 1; j >= 0; j--) {
        const hn_real *K = m->params + L->conv.off_stage[s] + (size_t)j * ls, *b = K + k9;
        const hn_conv_kernels kk = layer_kernels(ws, s, first + j, K);
        hn_real *dK = t->grads + (size_t)j * ls, *db = dK + k9;
        switch (arch) {
        case HN_ARCH_RESNET:
        case HN_ARCH_ANTISYM:
          hn_conv_euler_backward_saved(&st, &kk, slot_at(ws, ws->ya[s], s, j) + off,
                                       slot_at(ws, ws->deriv[s], s, j) + off, gy, dK, db, ld, t->work);
          break;
        case HN_ARCH_HAMILTONIAN:
          if (!rev) {
            hn_conv_ham_backward_saved(&st, &kk, slot_at(ws, ws->ya[s], s, j) + off,
                                       slot_at(ws, ws->yb[s], s, j + 1) + off, slot_at(ws, ws->deriv[s], s, 2 * j) + off,
                                       slot_at(ws, ws->deriv[s], s, 2 * j + 1) + off, gy, gz, dK, db, ld, t->work);
            break;
          }
          hn_conv_ham_backward(&st, &kk, b, ya, yb, gy, gz, dK, db, ld, t->work);
          if (stride > 0 && j % stride == 0) {
            const size_t ck = (size_t)(j / stride) * ws->slot[s];
            recon_rows(t->recon + 2 * (j / stride), ws->fin[s], ws->fin_other[s], ws->ck_a[s] + ck,
                       ws->ck_b[s] + ck, c, ld, off, n, 1);
          } else if (j == 0) {
            recon_rows(t->recon, ws->fin[s], ws->fin_other[s], ws->y0[s], NULL, c, ld, off, n, 0);
          }
          break;
        case HN_ARCH_LEAPFROG:
          if (!rev) {
            hn_conv_leap_backward_saved(&st, &kk, slot_at(ws, ws->ya[s], s, j) + off,
                                        slot_at(ws, ws->deriv[s], s, j) + off, gy, gz, dK, db, ld, t->work);
            break;
          }
          hn_conv_leap_backward(&st, &kk, b, prev, cur, gy, gz, dK, db, ld, t->work);
          {
            hn_real *base_prev = prev - off, *base_cur = cur - off; /* y_j, y_{j-1} */
            if (stride > 0 && j % stride == 0) {
              const size_t ck = (size_t)(j / stride) * ws->slot[s];
              recon_rows(t->recon + 2 * (j / stride), base_prev, base_cur, ws->ck_a[s] + ck, ws->ck_b[s] + ck, c,
                         ld, off, n, 1);
            } else if (j == 0) {
              recon_rows(t->recon, base_prev, base_cur, ws->y0[s], ws->y0[s], c, ld, off, n, 0);
            }
          }
          {
            hn_real *tmp = cur;
            cur = prev;
            prev = tmp;
          }
          break;
        default: break;
        }
        if (probe && probe->g_norm2)
          t->probe[2 * ((size_t)sp->depth + 1) + first + j] += sum_squares_rows(gy, c, ld, 0, n);
      }
      if (arch == HN_ARCH_LEAPFROG) /* y_{-1} = y_0 */
        for (int r = 0; r < c; r++) {
          hn_real *a = gy + (size_t)r * ld;
          const hn_real *q = gz + (size_t)r * ld;
          for (int i = 0; i < n; i++)
            a[i] += q[i];
        }
    }
  }
  /* the threads' gradients, added in thread order: the same bits for the same thread count */
  const long nblock = (long)block;
  hn_real *g = arch == HN_ARCH_ANTISYM ? ws->gsum : m->grads + L->conv.off_stage[s];
  const conv_thread *thr = ws->thr;
#pragma omp parallel for if (nblock > 65536) schedule(static)
  for (long i = 0; i < nblock; i++) {
    hn_real v = 0;
    for (int id = 0; id < used; id++)
      v += thr[id].grads[i];
    if (arch == HN_ARCH_ANTISYM)
      g[i] = v;
    else
      g[i] += v;
  }
  if (arch == HN_ARCH_ANTISYM) /* A = K - flip(K): dK = dA - flip(dA) */
    for (int j = 0; j < NL; j++) {
      const hn_real *dA = ws->gsum + (size_t)j * ls;
      hn_real *dK = m->grads + L->conv.off_stage[s] + (size_t)j * ls;
      for (int o = 0; o < c; o++)
        for (int i = 0; i < c; i++)
          for (int q = 0; q < 9; q++)
            dK[((size_t)o * c + i) * 9 + q] += dA[((size_t)o * c + i) * 9 + q] - dA[((size_t)i * c + o) * 9 + (8 - q)];
      for (int o = 0; o < c; o++)
        dK[k9 + o] += dA[k9 + o];
    }
  if (!rev)
    return 0;
  double worst = 0;
  for (int ck = 0; ck < n_ck; ck++) {
    double d = 0, r = 0;
    for (int id = 0; id < used; id++) {
      d += thr[id].recon[2 * ck];
      r += thr[id].recon[2 * ck + 1];
    }
    double e = relative_error(d, r, (size_t)c * ld);
    worst = e > worst ? e : worst;
  }
  return worst;
}

/* ---------------------------------------------------------------------------------------- */
/* classifier: global average pooling + dense */

/* logits = W g + mu; loss and accuracy; with `grad`, logits become loss_scale dL/dlogits. */
static void classifier_forward(const hn_model *m, hn_convnet_ws *ws, int B, const int32_t *labels, int grad,
                               hn_real loss_scale, hn_batch_stats *stats) {
  const hn_layout *L = &m->layout;
  const int S = L->spec.n_stages, c = ch_of(L, S - 1), HW = hw_of(L, S - 1), C = L->spec.n_classes;
  const hn_real *y = ws->fin[S - 1];
  const size_t ld = (size_t)B * HW;
  for (int o = 0; o < c; o++)
    for (int b = 0; b < B; b++) {
      const hn_real *p = y + (size_t)o * ld + (size_t)b * HW;
      hn_real s = 0;
      for (int q = 0; q < HW; q++)
        s += p[q];
      ws->gap[(size_t)o * B + b] = s / HW;
    }
  const hn_real *W = m->params + L->off_cls_W, *mu = m->params + L->off_cls_b;
  hn_gemm(1, 1, B, C, c, 1, ws->gap, B, W, c, 0, ws->logits, C);
  for (int i = 0; i < B; i++) {
    hn_real *z = ws->logits + (size_t)i * C;
    int best = 0;
    double zmax = -INFINITY;
    for (int k = 0; k < C; k++) {
      z[k] += mu[k];
      if (z[k] > zmax) {
        zmax = z[k];
        best = k;
      }
    }
    if (!labels)
      continue;
    double sum = 0;
    for (int k = 0; k < C; k++)
      sum += exp((double)z[k] - zmax);
    const int label = labels[i];
    stats->loss_sum += zmax + log(sum) - z[label];
    stats->correct += best == label;
    if (grad)
      for (int k = 0; k < C; k++)
        z[k] = (hn_real)(loss_scale * (exp((double)z[k] - zmax) / sum - (k == label)));
  }
  stats->count += B;
}

/* ws->gy = dL/dy of the last stage's final state, from the logits' gradient. */
static void classifier_backward(hn_model *m, hn_convnet_ws *ws, int B) {
  const hn_layout *L = &m->layout;
  const int S = L->spec.n_stages, c = ch_of(L, S - 1), HW = hw_of(L, S - 1), C = L->spec.n_classes;
  const hn_real *W = m->params + L->off_cls_W;
  hn_gemm(1, 1, C, c, B, 1, ws->logits, C, ws->gap, B, 1, m->grads + L->off_cls_W, c); /* dW += dz^T g^T */
  hn_real *dmu = m->grads + L->off_cls_b;
  for (int i = 0; i < B; i++)
    for (int k = 0; k < C; k++)
      dmu[k] += ws->logits[(size_t)i * C + k];
  hn_gemm(1, 1, c, B, C, 1, W, c, ws->logits, C, 0, ws->gap, B); /* dg = W^T dz^T, [c][B] */
  const size_t ld = (size_t)B * HW;
  for (int o = 0; o < c; o++)
    for (int b = 0; b < B; b++) {
      const hn_real v = ws->gap[(size_t)o * B + b] / HW;
      hn_real *p = ws->gy + (size_t)o * ld + (size_t)b * HW;
      for (int q = 0; q < HW; q++)
        p[q] = v;
    }
}

/* ---------------------------------------------------------------------------------------- */

static int check_batch(const hn_convnet_ws *ws, const hn_model *m, int B) {
  if (B < 1 || B > ws->max_batch)
    return hn_fail(HN_EINVAL, "batch of %d samples does not fit the workspace (max %d)", B, ws->max_batch);
  if (ws->L.n_params != m->layout.n_params || ws->L.spec.depth != m->layout.spec.depth ||
      ws->L.spec.n_stages != m->layout.spec.n_stages || ws->L.spec.arch != m->layout.spec.arch)
    return hn_fail(HN_EINTERNAL, "workspace was made for a different model");
  if (m->layout.n_state > 0 && !m->state)
    return hn_fail(HN_EINTERNAL, "the model has no normalisation statistics buffer");
  return HN_OK;
}

static void clear_probe(hn_convnet_ws *ws, int depth) {
  for (int i = 0; i < ws->n_threads; i++)
    memset(ws->thr[i].probe, 0, 3 * ((size_t)depth + 1) * sizeof(double));
}

/* Add the threads' probe sums (in thread order) to the caller's arrays. */
static void collect_probe(const hn_convnet_ws *ws, int depth, hn_probe *probe) {
  double *dst[3] = {probe->y_norm2, probe->z_norm2, probe->g_norm2};
  for (int k = 0; k < 3; k++) {
    if (!dst[k])
      continue;
    for (int j = 0; j <= depth; j++) {
      double s = 0;
      for (int i = 0; i < ws->n_threads; i++)
        s += ws->thr[i].probe[(size_t)k * (depth + 1) + j];
      dst[k][j] += s;
    }
  }
}

/* The whole forward pass; the final state is in ws->fin[S-1]. */
static void forward(const hn_model *m, hn_convnet_ws *ws, const hn_real *X, int B, int mode, int train,
                    hn_probe *probe) {
  const hn_layout *L = &m->layout;
  const int S = L->spec.n_stages;
  prepare_kernels(m, ws);
  opening_forward(m, ws, X, B, mode, ws->ya[0]);
  for (int s = 0; s < S; s++) {
    stage_forward(m, ws, s, B, train, probe);
    if (s + 1 < S)
      connective_forward(m, ws, s, B, mode, ws->fin[s], ws->ya[s + 1]);
  }
}

static void notify(hn_grad_ready_fn ready, void *ctx, size_t first_final) {
  if (ready)
    ready(ctx, first_final);
}

int hn_convnet_train_batch(hn_model *m, hn_convnet_ws *ws, const hn_real *X, const int32_t *y, int B,
                           hn_real loss_scale, hn_grad_ready_fn ready, void *ready_ctx, hn_probe *probe,
                           hn_batch_stats *stats) {
  HN_TRY(check_batch(ws, m, B));
  if (ws->eval_only)
    return hn_fail(HN_EINTERNAL, "hn_model_train_batch needs a training workspace, not an evaluation one");
  const hn_layout *L = &m->layout;
  const int S = L->spec.n_stages, depth = L->spec.depth;
  memset(stats, 0, sizeof *stats);
  if (probe)
    clear_probe(ws, depth);
  forward(m, ws, X, B, probe ? MODE_PROBE : MODE_TRAIN, 1, probe);
  classifier_forward(m, ws, B, y, 1, loss_scale, stats);
  classifier_backward(m, ws, B);
  if (probe && probe->g_norm2) {
    const int c = ch_of(L, S - 1);
    ws->thr[0].probe[2 * ((size_t)depth + 1) + depth] += sum_squares_rows(ws->gy, c, B * hw_of(L, S - 1), 0,
                                                                        B * hw_of(L, S - 1));
  }
  notify(ready, ready_ctx, L->off_cls_W);
  double worst = 0;
  for (int s = S - 1; s >= 0; s--) {
    double e = stage_backward(m, ws, s, B, probe);
    worst = e > worst ? e : worst;
    notify(ready, ready_ctx, L->conv.off_stage[s]);
    if (s > 0) {
      connective_backward(m, ws, s - 1, B, ws->fin[s - 1]);
      notify(ready, ready_ctx, L->conv.off_conn_W[s - 1]);
    }
  }
  opening_backward(m, ws, B);
  notify(ready, ready_ctx, 0);
  if (ws->reversible)
    stats->recon_error = worst;
  if (probe)
    collect_probe(ws, depth, probe);
  return HN_OK;
}

int hn_convnet_evaluate(const hn_model *m, hn_convnet_ws *ws, const hn_real *X, const int32_t *y, int B,
                        hn_real *logits, hn_probe *probe, hn_batch_stats *stats) {
  HN_TRY(check_batch(ws, m, B));
  memset(stats, 0, sizeof *stats);
  const int depth = m->layout.spec.depth;
  if (probe)
    clear_probe(ws, depth);
  /* evaluation never keeps states: a training workspace evaluates like an evaluation one, in the
   * first tensor of each stage's buffers */
  const int stored = ws->stored, stride = ws->stride, reversible = ws->reversible;
  ws->stored = 0;
  ws->stride = 0;
  ws->reversible = 1;
  hn_real *yb_keep[HN_MAX_STAGES];
  for (int s = 0; s < ws->S; s++) {
    yb_keep[s] = ws->yb[s];
    if (stored && m->layout.spec.arch == HN_ARCH_LEAPFROG)
      ws->yb[s] = ws->ya[s] + ws->slot[s]; /* stored leapfrog keeps no z slots: use slot 1 of y */
  }
  forward(m, ws, X, B, MODE_EVAL, 0, probe);
  for (int s = 0; s < ws->S; s++)
    ws->yb[s] = yb_keep[s];
  ws->stored = stored;
  ws->stride = stride;
  ws->reversible = reversible;
  classifier_forward(m, ws, B, y, 0, 0, stats);
  if (logits)
    memcpy(logits, ws->logits, (size_t)B * m->layout.spec.n_classes * sizeof(hn_real));
  if (probe)
    collect_probe(ws, depth, probe);
  return HN_OK;
}
