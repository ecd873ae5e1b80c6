/* hamnet/convnet.h - convolutional stable networks (README, The mathematics, "Convolutional variant").
 *
 * THE NETWORK. Input images x [C_in][H][W] (data sets of shape [N, C, H, W]); stages s = 0..S-1
 * of c_s channels and L_s layers (config: [model] stages = 16x4,32x4,64x4, hamnet/spec.h):
 *   opening       y = s(N_0(K_in * x))                  K_in a 3x3 convolution C_in -> c_0
 *   stage s       L_s layers of the architecture's integrator (resnet, antisym, hamiltonian,
 *                 leapfrog; the equations of README, The mathematics) with K_j a 3x3 convolution c_s -> c_s, K_j^T
 *                 its adjoint (the transposed convolution with the same kernel), b_j one bias per
 *                 channel, step h_s = final_time / L_s (every stage is an ODE on [0, final_time]);
 *                 hamiltonian starts every stage with z = 0, leapfrog with y_{-1} = y_0
 *   connective    y_{s+1,0} = pool(s(N_{s+1}(W_s y_{s,L_s})))   W_s a 1x1 convolution c_s -> c_{s+1},
 *                 pool = 2x2 average pooling, stride 2 (an odd last row / column is dropped)
 *   classifier    logits = W g + mu, g = the global average of y_{S-1,L} over the map (per channel)
 * N_k is the normalisation of [model] norm: batch = batch normalisation (N(u) = gamma (u - m) /
 * sqrt(v + eps) + beta per channel, with m, v the mean and (biased) variance of u over the batch
 * and the map while training, the running statistics in evaluation), none = u + b. The layers of
 * the stages have no normalisation: they are the ODE, and a normalisation inside would change
 * the dynamics the integrators are designed for.
 *
 * PARAMETER LAYOUT (one flat buffer, hamnet/model.h; the backward pass finishes it from the end):
 *   opening     K_in [c_0][C_in][3][3]; batch: gamma [c_0], beta [c_0]; none: b [c_0]
 *   stage s     layer j: K_j [c_s][c_s][3][3], b_j [c_s]        (L->conv.off_stage[s], layer_size[s])
 *   conn. s     W_s [c_{s+1}][c_s]; batch: gamma, beta [c_{s+1}]; none: b [c_{s+1}]   (s < S-1)
 *   ...         (stage 0, connective 0, stage 1, ..., stage S-1)
 *   classifier  W [C][c_{S-1}], mu [C]
 * STATE (hn_model.state, L->n_state values; batch normalisation only): per normalised layer
 * (opening, then connectives) the running mean [c] then the running variance [c], updated after
 * every training batch with momentum HN_BN_MOMENTUM (unbiased variance, as PyTorch), initially
 * 0 and 1. Checkpoints store it (format_version 2, hamnet/checkpoint.h).
 * Initialisation (hn_convnet_init_params): K_j ~ N(0, init_scale^2 / (9 c_s)), K_in ~ N(0, 1 /
 * (9 C_in)), W_s ~ N(0, 1 / c_s), W ~ N(0, 1 / c_{S-1}), gamma = 1, all biases 0; block streams
 * (seed, HN_RNG_INIT, index = global layer index for K_j), so layer j does not depend on others.
 *
 * DATA PARALLELISM. The batch statistics are those of the rank's part of the global batch (as
 * PyTorch's DistributedDataParallel without SyncBatchNorm): results depend on the number of ranks
 * through them, as they depend on the batch size; keep at least ~32 samples per rank. Each rank
 * updates its own running statistics; the trainer averages them over the ranks before every
 * validation and checkpoint, so every rank evaluates with, and every checkpoint holds, the same
 * statistics. Everything else is as for dense networks: one flat parameter and gradient buffer,
 * exchanged by the same bucketed allreduce.
 *
 * PASSES. The batch is cut into tiles of whole samples (about HN_CONV_TILE_COLS map positions
 * each, at least one per thread); in each stage every thread carries its tiles through all of
 * the stage's layers, forward and backward (hamnet/conv.h), accumulating the stage's kernel
 * gradients in its own buffer; the buffers are added in thread order when the stage is done, so
 * results are bitwise reproducible for a given batch, configuration and number of threads. The
 * opening, the normalisations, the connectives and the classifier work on the whole batch. The
 * grad-ready callback fires after the classifier, after each stage and each connective, and
 * after the opening. Reversible mode (hamiltonian, leapfrog): only each stage's last states and a
 * copy of its first are kept, and the backward pass recomputes the states (activation memory
 * independent of the depth, as for dense networks); stride > 0 also keeps exact states every
 * `stride` layers of each stage. Stored mode keeps every state and activation derivative.
 *
 * PROBES (diagnostics): y_norm2[j] / z_norm2[j] / g_norm2[j] for the state entering global layer j
 * (the stages' layers numbered 0..depth-1 across stages) and j = depth for the last stage's final
 * state; the final states of the other stages (the connectives' inputs) are not probed. Probe
 * passes use batch statistics but do not update the running statistics. */
#ifndef HAMNET_CONVNET_H
#define HAMNET_CONVNET_H

#include <stddef.h>
#include <stdint.h>

#include "hamnet/model.h"

#define HN_BN_MOMENTUM 0.1
#define HN_BN_EPS 1e-5
/* Target tile size in map positions (samples x H x W) of a thread's unit of work. */
#define HN_CONV_TILE_COLS 1024

/* Offsets of a convolutional network (hn_layout.conv); called by hn_layout_init. Checks the
 * stages, the image shape (C H W = n_features; the map must survive S-1 halvings) and sizes. */
int hn_convnet_layout_init(hn_layout *L, const hn_model_spec *spec);

/* See "Initialisation" above; also resets the running statistics (mean 0, variance 1). */
void hn_convnet_init_params(hn_model *m, uint64_t seed, double init_scale);

/* Stage of global layer j and its index within the stage. */
int hn_convnet_stage_of(const hn_layout *L, int j, int *layer_in_stage);

/* The workspace of the passes (called by hn_workspace_create*; hamnet/model.h). */
typedef struct hn_convnet_ws hn_convnet_ws;
int hn_convnet_ws_create(hn_convnet_ws **ws, const hn_layout *L, int max_batch, int reversible, int stride,
                         int eval_only);
void hn_convnet_ws_destroy(hn_convnet_ws *ws);
size_t hn_convnet_ws_activation_bytes(const hn_convnet_ws *ws);
size_t hn_convnet_ws_scratch_bytes(const hn_convnet_ws *ws);
/* How the stages compute their 3x3 products (hamnet/spec.h; the workspace starts with auto):
 * allocates or frees the per-layer transformed kernels. Results agree up to rounding. */
int hn_convnet_ws_set_algorithm(hn_convnet_ws *ws, hn_conv_algorithm a);
/* 1 when stage s computes by Winograd. */
int hn_convnet_ws_winograd_stage(const hn_convnet_ws *ws, int s);

/* hn_model_train_batch / hn_model_evaluate for convolutional networks (same contracts).
 * Training uses batch statistics and (unless probe is not NULL) updates the running
 * statistics in m->state; evaluation uses the running statistics. */
int hn_convnet_train_batch(hn_model *m, hn_convnet_ws *ws, const hn_real *X, const int32_t *y, int B,
                           hn_real loss_scale, hn_grad_ready_fn ready, void *ready_ctx, hn_probe *probe,
                           hn_batch_stats *stats);
int hn_convnet_evaluate(const hn_model *m, hn_convnet_ws *ws, const hn_real *X, const int32_t *y, int B,
                        hn_real *logits, hn_probe *probe, hn_batch_stats *stats);

/* The regulariser of README, The mathematics, per stage: alpha_t / (2 h_s) sum_j (||K_{j+1} - K_j||^2 +
 * ||b_{j+1} - b_j||^2) within each stage, plus alpha_w / 2 times the squared norms of the
 * opening's and connectives' convolution weights and biases (batch normalisation's gamma and beta
 * are not decayed) and of the classifier. Returns R; adds dR/dtheta to grads when not NULL. */
double hn_convnet_regularizer(const hn_layout *L, const hn_real *params, hn_real *grads, double alpha_t,
                              double alpha_w);

/* sigma_max of layer j's convolution as an operator on the stage's maps (zero padding), by
 * `iters` steps of power iteration on K^T K from a seeded random start; the result is a lower
 * bound that converges to sigma_max (iters ~ 50 gives a few digits). */
double hn_convnet_sigma_max(const hn_layout *L, const hn_real *params, int j, int iters, uint64_t seed);

#endif
