/* hamnet/bench.h - `hamnet bench`: how fast a training step runs, against the machine's limit.
 *
 * hn_bench_run builds a network (hn_model_init_params with the seed), a synthetic batch
 * (inputs N(0, 1), uniform labels; stream HN_RNG_TEST) and an Adam optimiser, and times full
 * training steps - zero the gradients, forward + backward (hn_model_train_batch, no
 * regulariser, no MPI), optimiser update - after warm-up steps. It reports:
 *   ms per step (best and median) and samples per second;
 *   achieved GFLOP/s = useful GEMM work per step / best time. The useful work is the GEMMs of
 *     the forward pass and of the backward pass proper (recomputation not counted), 2 m n k
 *     each: per layer and sample 6 n^2 (resnet, antisym: one product forward, two backward)
 *     or 12 n^2 (hamiltonian, leapfrog: two forward, four backward; hn_layer_gemms lists them),
 *     plus the classifier (6 n C) and a dense opening (4 n F);
 *   the roofline: the same GEMM shapes timed alone with CBLAS on this machine and thread count
 *     (each distinct shape best-of-several, weighted by how often a step uses it), as GFLOP/s
 *     and the fraction of it the step reaches;
 *   memory: hamnet's allocation counters per category (peaks) and the process's peak RSS.
 * Convolutional networks (stages set): synthetic images [image_channels, image_height,
 * image_width]; the useful work is the convolutions' (2 * 9 c_in c_out H W per product and sample:
 * per layer 1 product forward and 2 backward for resnet / antisym, 2 and 4 for hamiltonian and
 * leapfrog), the opening's, the connectives' and the classifier's; no roofline (its GEMMs are
 * per tile and shaped by the tiling) and no predicted activation bytes.
 * Timings are wall-clock and sensitive to other load on the machine. */
#ifndef HAMNET_BENCH_H
#define HAMNET_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hamnet/mem.h"
#include "hamnet/spec.h"

typedef struct {
  hn_arch arch;
  hn_activation activation;
  hn_opening opening;
  int width, depth, batch;
  int features, classes;  /* synthetic data: F inputs, C classes */
  double final_time;
  int reversible;          /* 0 = stored states, 1 = reversible recomputation */
  hn_kernel_path kernel;
  hn_conv_algorithm conv_algorithm; /* convolutional networks: the 3x3 products (auto) */
  int steps, warmup;
  int threads;             /* OpenMP threads; 0 = OpenMP's default */
  int roofline;            /* 0: skip timing the GEMM shapes alone */
  double lr;
  uint64_t seed;
  char stages[128];        /* "" (dense) or the stages of a convolutional network (hamnet/spec.h) */
  int image_channels, image_height, image_width; /* convolutional: the synthetic images' shape */
  hn_norm norm;
} hn_bench_options;

typedef struct {
  double ms_best, ms_median;
  double cpu_ms_best;         /* process CPU time of the fastest step (all threads) */
  double samples_per_s;
  double flops_per_step;      /* useful GEMM work */
  double gflops;              /* flops_per_step / best time */
  double roofline_ms;         /* the step's GEMMs alone */
  double roofline_gflops;     /* flops_per_step / roofline_ms (0 when not measured) */
  double roofline_cpu_ms;     /* the same in process CPU time */
  double loss_first, loss_last;
  double recon_error;         /* reversible: last step's reconstruction error */
  size_t mem_peak[HN_MEM_NCATEGORIES];
  size_t activation_bytes;    /* the workspace's states kept between passes (counter) */
  size_t predicted_activation_bytes; /* from the formula in model.h (hn_workspace_create) */
  double peak_rss_mb;
  int threads;
  int narrow;                 /* the narrow path ran */
  int blas_parallel;          /* openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP; -1 unknown */
  char blas_config[160];
} hn_bench_result;

void hn_bench_options_default(hn_bench_options *o);
int hn_bench_run(const hn_bench_options *o, hn_bench_result *r);
/* A human-readable report, or one JSON object (keys include ms_per_step, samples_per_s, gflops,
 * roofline_gflops, peak_rss_mb, and the memory counters in MiB). */
void hn_bench_print(FILE *out, const hn_bench_options *o, const hn_bench_result *r);
void hn_bench_print_json(FILE *out, const hn_bench_options *o, const hn_bench_result *r);

/* Reversible against stored-state gradients on one batch of the same network (o->reversible is
 * ignored): max |g_rev - g_stored| / max |g_stored| over all parameters, and the relative
 * 2-norm of the difference; recon_error as reported by the reversible pass. */
typedef struct {
  double max_rel_diff, norm_rel_diff;
  double recon_error;
  double grad_norm;
} hn_bench_compare;
int hn_bench_compare_reversible(const hn_bench_options *o, hn_bench_compare *c);

#endif
