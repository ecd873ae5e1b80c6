/* hamnet/model.h - a dense stable network: parameter layout, initialisation, forward and
 * backward passes (hand-written, README "The mathematics"), reversible recomputation.
 *
 * ALL parameters live in ONE contiguous buffer (and the gradients in one more of the same
 * layout), so the optimiser, the gradient exchange and the checkpoint each see one flat
 * array. Layout, in the order the backward pass finishes them last-to-first:
 *
 *   [ opening K_in [n][F], b_in [n] ]   (dense opening only)
 *   [ layer 0: K_0 [n][n], b_0 [n] ] ... [ layer N-1: K_{N-1}, b_{N-1} ]
 *   [ classifier W [C][n], mu [C] ]
 *
 * The backward pass completes the classifier first, then layers N-1 ... 0, then the opening,
 * so "everything from offset X to the end is final" is always a contiguous suffix: the
 * gradient exchange starts a bucket as soon as its slice is in that suffix. */
#ifndef HAMNET_MODEL_H
#define HAMNET_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "hamnet/real.h"
#include "hamnet/spec.h"

/* Offsets of a convolutional network (spec.n_stages > 0); hamnet/convnet.h describes the
 * layout. Stage s has maps H[s] x W[s] and step h[s]; its layer j (global index first_layer[s] + j)
 * holds K_j then b_j at off_stage[s] + j * layer_size[s]. Normalised layers (opening, connectives)
 * have gamma at off_*_g and beta at off_*_b (norm = batch), or only a bias at off_*_b (none);
 * state_* are offsets into hn_model.state (running mean [c], then running variance [c]). */
typedef struct {
  int H[HN_MAX_STAGES], W[HN_MAX_STAGES];
  int first_layer[HN_MAX_STAGES + 1]; /* [n_stages] = depth */
  hn_real h[HN_MAX_STAGES];
  size_t off_open_K, off_open_g, off_open_b;
  size_t off_stage[HN_MAX_STAGES], layer_size[HN_MAX_STAGES];
  size_t off_conn_W[HN_MAX_STAGES], off_conn_g[HN_MAX_STAGES], off_conn_b[HN_MAX_STAGES];
  size_t state_open, state_conn[HN_MAX_STAGES];
} hn_conv_layout;

typedef struct {
  hn_model_spec spec;
  hn_real h;          /* final_time / depth (convolutional networks: each stage has its own, conv.h[s]) */
  size_t n_params;
  size_t off_open_K;  /* dense opening: K_in, then b_in; size 0 for pad */
  size_t off_open_b;
  size_t off_layers;  /* layer j starts at off_layers + j * layer_size: K_j then b_j */
  size_t layer_size;  /* n*n + n */
  size_t off_cls_W;
  size_t off_cls_b;
  /* convolutional networks (hamnet/convnet.h); dense: n_state = 0, conv unused, and the dense
   * offsets above: off_open_K / off_open_b are then the convolutional opening's K_in and bias / beta,
   * off_layers the first layer, layer_size 0 (layers differ by stage: use conv) */
  size_t n_state;
  hn_conv_layout conv;
} hn_layout;

/* Check the spec (width, depth, F, C >= 1, T > 0, pad needs width >= F, sizes that do not
 * overflow) and compute the offsets. HN_EINVAL with a message naming the bad value. */
int hn_layout_init(hn_layout *L, const hn_model_spec *spec);

/* Layer j's K and b in the flat buffer, for dense and convolutional networks alike: K at
 * hn_layout_K_offset (hn_layout_K_count values: n*n, or 9 c^2 for a convolution), b right after
 * it (hn_layout_b_count values). hn_layer_K / hn_layer_b below are the dense-only shortcuts. */
size_t hn_layout_K_offset(const hn_layout *L, int j);
size_t hn_layout_K_count(const hn_layout *L, int j);
size_t hn_layout_b_count(const hn_layout *L, int j);

static inline hn_real *hn_layer_K(const hn_layout *L, hn_real *buf, int j) {
  return buf + L->off_layers + (size_t)j * L->layer_size;
}
static inline hn_real *hn_layer_b(const hn_layout *L, hn_real *buf, int j) {
  return buf + L->off_layers + (size_t)j * L->layer_size + (size_t)L->spec.width * L->spec.width;
}

typedef struct {
  hn_layout layout;
  hn_real *params; /* [n_params], HN_MEM_PARAMS */
  hn_real *grads;  /* [n_params], HN_MEM_GRADS */
  hn_real *state;  /* [layout.n_state] running statistics of batch normalisation (HN_MEM_PARAMS);
                    * NULL for dense networks. Not a parameter: no gradient, not exchanged */
} hn_model;

int hn_model_create(hn_model *m, const hn_model_spec *spec);
void hn_model_destroy(hn_model *m);

/* README, The mathematics, "Initialisation": K_j ~ N(0, init_scale^2 / n), b_j = 0, W ~ N(0, 1/n), mu = 0,
 * K_in ~ N(0, 1/F), b_in = 0. Each block draws from its own counter-based stream
 * (seed, HN_RNG_INIT, index = j for layer j), so the result does not depend on ranks or
 * threads, and layer j of a depth-N net equals layer j of any other depth with the same seed. */
void hn_model_init_params(hn_model *m, uint64_t seed, double init_scale);

/* --- passes ------------------------------------------------------------------------------ */

/* Activation memory and scratch for batches of up to max_batch samples.
 * reversible = 0: every state y_j (and z_j) is kept for the backward pass, and with them what
 *   the backward steps would otherwise recompute (memory ~ depth, per layer and sample:
 *   hamiltonian 4 n values: y, z and two activation derivatives; leapfrog 2 n: y and s(K y + b);
 *   resnet / antisym 2 n: y and s').
 * reversible = 1: only the last states are kept and the backward pass recomputes the others
 *   by running the integrator backwards (hamiltonian, leapfrog only); stride > 0 also keeps
 *   exact states every `stride` layers and restarts the reconstruction from them (bounded
 *   drift, memory ~ depth/stride). */
typedef struct hn_workspace hn_workspace;
int hn_workspace_create(hn_workspace **ws, const hn_layout *L, int max_batch, int reversible, int stride);
/* A workspace for hn_model_evaluate only (no states kept: memory independent of depth). */
int hn_workspace_create_eval(hn_workspace **ws, const hn_layout *L, int max_batch);
void hn_workspace_destroy(hn_workspace *ws);
/* Which implementation runs the passes (the default is auto):
 *   wide    layer by layer over the batch: GEMMs + fused OpenMP loops; the grad-ready callback
 *           fires as each layer's gradient is done (the allreduce overlaps the backward pass);
 *   narrow  tiles of HN_TILE samples, one thread per tile, each carried through all layers while
 *           it stays in cache (hamiltonian and leapfrog only); per-thread gradient copies added in
 *           thread order at the end, so the grad-ready callback fires once, with 0, at the end
 *           (on one thread: per layer, during the last tile's backward pass);
 *   auto    narrow for hamiltonian / leapfrog up to width HN_NARROW_MAX_WIDTH in reversible mode
 *           (and for evaluation) and in stored mode with more than one OpenMP thread, up to
 *           HN_NARROW_MAX_WIDTH_STORED in stored mode on one thread; wide otherwise.
 * Both give the same results up to rounding; probes always run the wide path. Results are
 * bitwise reproducible for a given path, config, seed and number of OpenMP threads. The narrow
 * path allocates its per-thread scratch for omp_get_max_threads() at this call (and uses at
 * most that many). HN_EINVAL for narrow with resnet / antisym. */
int hn_workspace_set_kernel(hn_workspace *ws, hn_kernel_path path);
/* The auto thresholds, from `hamnet bench` on both paths (README "Performance"). On the 2-core
 * development machine, one thread: reversible mode, narrow ahead 2.2x at width 8, even at 32-48,
 * 15% behind at 64 - but it runs one parallel region per pass instead of ~14 per layer, which
 * matters with threads (under load the wide path's barriers cost several times its work);
 * stored mode, narrow ahead up to 16 and 20-30% behind from 32 on (the saved states stream
 * through the caches and push K_j, K_j^T and dK_j out, which the tiles reread) - on one thread.
 * With 2 threads the narrow path is ahead in stored mode too (width 32 / 48 / 64, depth 256,
 * batch 512: 16-19 / 31-32 / 53-62 ms against 27 / 52-53 / 68-144 ms). */
#define HN_NARROW_MAX_WIDTH 64
#define HN_NARROW_MAX_WIDTH_STORED 16
int hn_workspace_narrow(const hn_workspace *ws); /* 1 when the narrow path is in use */
/* Convolutional networks: how the 3x3 products are computed (hamnet/spec.h; the default is auto:
 * Winograd F(4x4, 3x3) for maps of at least 4x4). Results agree up to rounding (test_conv,
 * test_conv_gradcheck). No effect on dense networks. */
int hn_workspace_set_conv_algorithm(hn_workspace *ws, hn_conv_algorithm a);
/* Bit s set: stage s of a convolutional network computes its products by Winograd (0 for dense
 * networks). */
unsigned hn_workspace_winograd_stages(const hn_workspace *ws);
int hn_workspace_reversible(const hn_workspace *ws);
int hn_workspace_stride(const hn_workspace *ws);

typedef struct {
  double loss_sum;    /* sum over the batch of the cross-entropy (not averaged) */
  int64_t correct;    /* argmax(logits) == label */
  int64_t count;      /* samples */
  double recon_error; /* reversible mode: RMS of (recomputed - exact) states, relative to the RMS of the
                       * exact state where that is above 1 (absolute below: an all-zero input has no
                       * scale); measured at y_0 (and z_0 / y_{-1}), or the worst exact-state checkpoint
                       * when a stride is in force. 0 in stored mode */
} hn_batch_stats;

/* Optional per-layer probes (NULL pointers are skipped); sums over the batch, accumulated:
 * y_norm2[j] += sum_i ||y_j^(i)||^2, z_norm2 likewise (hamiltonian), g_norm2[j] += sum_i
 * ||dL/dy_j^(i)||^2 for j = 0..depth. */
typedef struct {
  double *y_norm2;
  double *z_norm2;
  double *g_norm2;
} hn_probe;

/* Called during the backward pass each time a suffix of the gradient buffer is final for
 * this batch: grads[first_final .. n_params) will not change any more. Also called again with
 * the value of its last call (nothing new final) between the GEMMs of a layer, so that the
 * callee can let communication in flight progress. */
typedef void (*hn_grad_ready_fn)(void *ctx, size_t first_final);

/* Forward and backward pass over one batch X [B][F] with labels y. ACCUMULATES
 * loss_scale * d(sum of cross-entropies)/d(params) into m->grads (the caller zeroes them and
 * passes loss_scale = 1 / global batch size, so that summing over ranks gives the mean).
 * Regularisers are not included (train/regularizer). B <= the workspace's max_batch. */
int hn_model_train_batch(hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                         hn_real loss_scale, hn_grad_ready_fn ready, void *ready_ctx, hn_probe *probe,
                         hn_batch_stats *stats);

/* Forward pass only; logits [B][C] written when not NULL; y may be NULL (then only logits). */
int hn_model_evaluate(const hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                      hn_real *logits, hn_probe *probe, hn_batch_stats *stats);

/* The antisym operator A = K - K^T - gamma I, written to A [n][n]. */
void hn_antisym_operator(const hn_real *K, int n, hn_real gamma, hn_real *A);

/* Bytes the workspace holds (activations / scratch), from the allocation counters' view. */
size_t hn_workspace_activation_bytes(const hn_workspace *ws);
size_t hn_workspace_scratch_bytes(const hn_workspace *ws);

#endif
