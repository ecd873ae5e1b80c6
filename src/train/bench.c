/* bench.c - `hamnet bench` (hamnet/bench.h): timed training steps, their useful GEMM work,
 * the same GEMMs timed alone (the roofline), memory counters; and the reversible-vs-stored
 * gradient comparison. */
#include "hamnet/bench.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamnet/config.h"
#include "hamnet/error.h"
#include "hamnet/kernels.h"
#include "hamnet/model.h"
#include "hamnet/rng.h"
#include "hamnet/timer.h"
#include "hamnet/train.h"

void hn_bench_options_default(hn_bench_options *o) {
  memset(o, 0, sizeof *o);
  o->arch = HN_ARCH_HAMILTONIAN;
  o->activation = HN_ACT_TANH;
  o->opening = HN_OPEN_PAD;
  o->width = 8;
  o->depth = 256;
  o->batch = 1024;
  o->features = 2;
  o->classes = 5;
  o->final_time = 5;
  o->reversible = 1;
  o->kernel = HN_KERNEL_AUTO;
  o->conv_algorithm = HN_CONV_AUTO;
  o->steps = 10;
  o->warmup = 2;
  o->roofline = 1;
  o->lr = 1e-4;
  o->seed = 1;
  o->image_channels = 1;
  o->image_height = o->image_width = 28;
  o->norm = HN_NORM_BATCH;
}

/* The network's shape: dense, or convolutional with o->stages (validated by check_options). */
static hn_model_spec bench_spec(const hn_bench_options *o) {
  hn_model_spec spec = {.arch = o->arch, .activation = o->activation, .opening = o->opening, .width = o->width,
                        .depth = o->depth, .n_features = o->features, .n_classes = o->classes,
                        .final_time = o->final_time, .gamma = 0.01};
  char why[160];
  if (o->stages[0] && hn_stages_parse(o->stages, &spec.n_stages, spec.stage_channels, spec.stage_layers, why,
                                      sizeof why) == 0 && spec.n_stages > 0) {
    spec.width = spec.depth = 0; /* set by the stages */
    spec.image_channels = o->image_channels;
    spec.image_height = o->image_height;
    spec.image_width = o->image_width;
    spec.n_features = o->image_channels * o->image_height * o->image_width;
    spec.norm = o->norm;
  }
  return spec;
}

/* CPU seconds of the whole process (all threads): with one thread, a measure that other load on
 * the machine disturbs much less than wall-clock time (it still shares caches). */
static double cpu_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------- */
/* setup shared by the benchmark and the comparison */

typedef struct {
  hn_model m;
  hn_real *X;
  int32_t *y;
} bench_problem;

static int problem_create(bench_problem *p, const hn_bench_options *o) {
  memset(p, 0, sizeof *p);
  hn_model_spec spec = bench_spec(o);
  HN_TRY(hn_model_create(&p->m, &spec));
  hn_model_init_params(&p->m, o->seed, 1.0);
  const int F = spec.n_features;
  p->X = hn_alloc((size_t)o->batch * F, sizeof(hn_real), HN_MEM_DATA, "synthetic inputs");
  p->y = hn_alloc((size_t)o->batch, sizeof(int32_t), HN_MEM_DATA, "synthetic labels");
  if (!p->X || !p->y)
    return HN_ENOMEM;
  hn_rng r;
  hn_rng_init(&r, o->seed, HN_RNG_TEST, 0, 0);
  for (size_t i = 0; i < (size_t)o->batch * F; i++)
    p->X[i] = (hn_real)hn_rng_normal(&r);
  for (int i = 0; i < o->batch; i++)
    p->y[i] = (int32_t)hn_rng_below(&r, (uint64_t)o->classes);
  return HN_OK;
}

static void problem_destroy(bench_problem *p) {
  hn_model_destroy(&p->m);
  hn_free(p->X);
  hn_free(p->y);
}

static int check_options(const hn_bench_options *o) {
  if (o->stages[0]) {
    int n, ch[HN_MAX_STAGES], ly[HN_MAX_STAGES];
    char why[160];
    if (hn_stages_parse(o->stages, &n, ch, ly, why, sizeof why) != 0 || n < 1)
      return hn_fail(HN_EINVAL, "--stages %s: %s", o->stages, n < 1 ? "no stages" : why);
    if (o->image_channels < 1 || o->image_height < 1 || o->image_width < 1)
      return hn_fail(HN_EINVAL, "--image needs C x H x W >= 1");
  }
  if (o->width < 1 || o->depth < 1 || o->batch < 1 || o->features < 1 || o->classes < 2)
    return hn_fail(HN_EINVAL, "bench needs width, depth, batch, features >= 1 and classes >= 2");
  if (o->steps < 1 || o->warmup < 0 || o->threads < 0)
    return hn_fail(HN_EINVAL, "bench needs steps >= 1, warmup >= 0, threads >= 0");
  if (o->reversible && !hn_arch_is_reversible(o->arch))
    return hn_fail(HN_EINVAL, "--reversible on needs arch hamiltonian or leapfrog (arch is %s)", hn_arch_name(o->arch));
  return HN_OK;
}

static int make_workspace(hn_workspace **ws, const bench_problem *p, const hn_bench_options *o, int reversible) {
  HN_TRY(hn_workspace_create(ws, &p->m.layout, o->batch, reversible, 0));
  int status = hn_workspace_set_kernel(*ws, o->kernel);
  if (status == HN_OK)
    status = hn_workspace_set_conv_algorithm(*ws, o->conv_algorithm);
  if (status != HN_OK) {
    hn_workspace_destroy(*ws);
    *ws = NULL;
  }
  return status;
}

/* ---------------------------------------------------------------------------------------- */
/* useful work and the roofline */

typedef struct {
  hn_gemm_shape s;
  double count; /* calls per training step */
} weighted_shape;

/* The GEMMs of one training step (stored mode with saved derivatives: the useful work). */
static int step_gemms(const hn_bench_options *o, weighted_shape *out) {
  const int B = o->batch, n = o->width, C = o->classes, F = o->features;
  hn_gemm_shape layer[HN_LAYER_GEMMS_MAX];
  int k = 0, nl = hn_layer_gemms(o->arch, B, n, layer);
  for (int i = 0; i < nl; i++)
    out[k++] = (weighted_shape){layer[i], o->depth};
  out[k++] = (weighted_shape){{0, 1, B, C, n, 1, 0}, 1}; /* logits = Y W^T */
  out[k++] = (weighted_shape){{0, 0, B, n, C, 1, 0}, 1}; /* dL/dy_N = dlogits W */
  out[k++] = (weighted_shape){{1, 0, C, n, B, 1, 1}, 1}; /* dW += dlogits^T Y */
  if (o->opening == HN_OPEN_DENSE) {
    out[k++] = (weighted_shape){{0, 1, B, n, F, 1, 0}, 1}; /* U = X K_in^T */
    out[k++] = (weighted_shape){{1, 0, n, F, B, 1, 1}, 1}; /* dK_in += D^T X */
  }
  return k;
}

static double shape_flops(const hn_gemm_shape *s) { return 2.0 * s->m * s->n * s->k; }

static int same_shape(const hn_gemm_shape *a, const hn_gemm_shape *b) {
  return a->transa == b->transa && a->transb == b->transb && a->m == b->m && a->n == b->n && a->k == b->k &&
         a->beta == b->beta;
}

/* Best seconds per call of one GEMM shape on fresh buffers: batches of calls lasting >= 20 ms,
 * the fastest of 5 batches. */
static int time_gemm(const hn_gemm_shape *s, double *seconds, double *cpu_seconds) {
  const size_t asz = (size_t)s->m * s->k, bsz = (size_t)s->k * s->n, csz = (size_t)s->m * s->n;
  hn_real *A = hn_alloc(asz, sizeof(hn_real), HN_MEM_OTHER, "roofline A");
  hn_real *Bm = hn_alloc(bsz, sizeof(hn_real), HN_MEM_OTHER, "roofline B");
  hn_real *Cm = hn_alloc(csz, sizeof(hn_real), HN_MEM_OTHER, "roofline C");
  if (!A || !Bm || !Cm) {
    hn_free(A), hn_free(Bm), hn_free(Cm);
    return HN_ENOMEM;
  }
  hn_rng r;
  hn_rng_init(&r, 99, HN_RNG_TEST, 1, 0);
  for (size_t i = 0; i < asz; i++)
    A[i] = (hn_real)(0.01 * hn_rng_normal(&r));
  for (size_t i = 0; i < bsz; i++)
    Bm[i] = (hn_real)(0.01 * hn_rng_normal(&r));
  const int lda = s->transa ? s->m : s->k, ldb = s->transb ? s->k : s->n;
  double t0 = hn_wtime();
  hn_gemm(s->transa, s->transb, s->m, s->n, s->k, s->alpha, A, lda, Bm, ldb, s->beta, Cm, s->n);
  double once = hn_wtime() - t0;
  long reps = once > 0 ? (long)(0.02 / once) + 1 : 1000;
  double best = INFINITY, best_cpu = INFINITY;
  for (int batch = 0; batch < 5; batch++) {
    t0 = hn_wtime();
    double c0 = cpu_time();
    for (long i = 0; i < reps; i++)
      hn_gemm(s->transa, s->transb, s->m, s->n, s->k, s->alpha, A, lda, Bm, ldb, s->beta, Cm, s->n);
    double t = (hn_wtime() - t0) / (double)reps, c = (cpu_time() - c0) / (double)reps;
    best = t < best ? t : best;
    best_cpu = c < best_cpu ? c : best_cpu;
  }
  hn_free(A), hn_free(Bm), hn_free(Cm);
  *seconds = best;
  *cpu_seconds = best_cpu;
  return HN_OK;
}

static int roofline(const weighted_shape *w, int count, double *seconds, double *cpu_seconds) {
  double total = 0, total_cpu = 0;
  for (int i = 0; i < count; i++) {
    int seen = 0;
    for (int j = 0; j < i; j++)
      seen = seen || same_shape(&w[i].s, &w[j].s);
    if (seen)
      continue;
    double t, c, calls = 0;
    HN_TRY(time_gemm(&w[i].s, &t, &c));
    for (int j = i; j < count; j++)
      if (same_shape(&w[i].s, &w[j].s))
        calls += w[j].count;
    total += calls * t;
    total_cpu += calls * c;
  }
  *seconds = total;
  *cpu_seconds = total_cpu;
  return HN_OK;
}

/* Useful work of a convolutional network's training step (see hamnet/bench.h). */
static double conv_step_flops(const hn_bench_options *o) {
  hn_model_spec spec = bench_spec(o);
  hn_layout L;
  if (hn_layout_init(&L, &spec) != HN_OK)
    return 0;
  const double B = o->batch;
  const int products = o->arch == HN_ARCH_HAMILTONIAN || o->arch == HN_ARCH_LEAPFROG ? 2 : 1;
  double f = 0;
  for (int s = 0; s < spec.n_stages; s++) {
    const double c = spec.stage_channels[s], hw = (double)L.conv.H[s] * L.conv.W[s];
    f += 3.0 * products * spec.stage_layers[s] * 2 * 9 * c * c * hw; /* forward, dX and dK */
    if (s + 1 < spec.n_stages)
      f += 3.0 * 2 * c * spec.stage_channels[s + 1] * hw;
  }
  f += 2.0 * 2 * 9 * spec.image_channels * spec.stage_channels[0] * (double)L.conv.H[0] * L.conv.W[0]; /* no dX */
  f += 3.0 * 2 * spec.stage_channels[spec.n_stages - 1] * spec.n_classes;
  return B * f;
}

/* The activation bytes hn_workspace_create's contract (model.h) predicts: per state slot
 * (batch rounded up to whole tiles) x width values; stored mode keeps N + 1 states y_j (and z_j)
 * and per layer 2 (hamiltonian) or 1 saved derivative slots; reversible mode one copy of y_0;
 * a dense opening one more slot. */
static size_t predicted_activations(const hn_bench_options *o) {
  const size_t slot = (size_t)((o->batch + HN_TILE - 1) / HN_TILE * HN_TILE) * o->width * sizeof(hn_real);
  const size_t N = (size_t)o->depth;
  const int ham = o->arch == HN_ARCH_HAMILTONIAN;
  size_t slots = o->reversible ? 1 : (ham ? 2 * (N + 1) + 2 * N : (N + 1) + N);
  if (o->opening == HN_OPEN_DENSE)
    slots++;
  return slots * slot;
}

/* ---------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void blas_info(hn_bench_result *r) {
  r->blas_parallel = -1;
  snprintf(r->blas_config, sizeof r->blas_config, "unknown BLAS");
#ifdef HN_HAVE_OPENBLAS
  r->blas_parallel = openblas_get_parallel();
  snprintf(r->blas_config, sizeof r->blas_config, "%s", openblas_get_config());
#endif
}

int hn_bench_run(const hn_bench_options *o, hn_bench_result *r) {
  memset(r, 0, sizeof *r);
  HN_TRY(check_options(o));
  if (o->threads > 0)
    omp_set_num_threads(o->threads);
  r->threads = omp_get_max_threads();
  blas_info(r);

  bench_problem p;
  hn_workspace *ws = NULL;
  hn_optimizer opt;
  int have_opt = 0;
  double *times = NULL;
  int status = problem_create(&p, o);
  if (status == HN_OK)
    status = make_workspace(&ws, &p, o, o->reversible);
  if (status == HN_OK) {
    hn_config cfg;
    hn_config_defaults(&cfg);
    cfg.train.optimizer = HN_OPT_ADAM;
    status = hn_optimizer_create(&opt, &cfg, p.m.layout.n_params);
    have_opt = status == HN_OK;
  }
  times = calloc(2 * (size_t)o->steps, sizeof(double));
  if (status == HN_OK && !times)
    status = hn_fail(HN_ENOMEM, "out of memory");
  const size_t np = p.m.layout.n_params;
  for (int i = 0; status == HN_OK && i < o->warmup + o->steps; i++) {
    hn_batch_stats st;
    double t0 = hn_wtime(), c0 = cpu_time();
    memset(p.m.grads, 0, np * sizeof(hn_real));
    status = hn_model_train_batch(&p.m, ws, p.X, p.y, o->batch, (hn_real)(1.0 / o->batch), NULL, NULL, NULL, &st);
    hn_optimizer_step(&opt, p.m.params, p.m.grads, o->lr);
    double t = hn_wtime() - t0, c = cpu_time() - c0;
    if (i >= o->warmup) {
      times[i - o->warmup] = t;
      times[o->steps + i - o->warmup] = c;
    }
    if (i == 0)
      r->loss_first = st.loss_sum / o->batch;
    r->loss_last = st.loss_sum / o->batch;
    r->recon_error = st.recon_error;
  }
  if (status == HN_OK) {
    qsort(times, (size_t)o->steps, sizeof(double), cmp_double);
    qsort(times + o->steps, (size_t)o->steps, sizeof(double), cmp_double);
    r->cpu_ms_best = 1e3 * times[o->steps];
    r->ms_best = 1e3 * times[0];
    r->ms_median = 1e3 * times[o->steps / 2];
    r->samples_per_s = o->batch / times[0];
    r->narrow = hn_workspace_narrow(ws);
    r->activation_bytes = hn_workspace_activation_bytes(ws);
    if (o->stages[0]) {
      r->flops_per_step = conv_step_flops(o);
    } else {
      r->predicted_activation_bytes = predicted_activations(o);
      weighted_shape w[HN_LAYER_GEMMS_MAX + 8];
      const int nw = step_gemms(o, w);
      for (int i = 0; i < nw; i++)
        r->flops_per_step += w[i].count * shape_flops(&w[i].s);
    }
    r->gflops = r->flops_per_step / times[0] * 1e-9;
  }
  for (int c = 0; c < HN_MEM_NCATEGORIES; c++)
    r->mem_peak[c] = hn_mem_peak((hn_mem_category)c);
  r->peak_rss_mb = hn_mem_peak_rss_mb();
  free(times);
  if (have_opt)
    hn_optimizer_destroy(&opt);
  hn_workspace_destroy(ws);
  problem_destroy(&p);
  if (status == HN_OK && o->roofline && !o->stages[0]) { /* after the run: not in the memory figures */
    weighted_shape w[HN_LAYER_GEMMS_MAX + 8];
    const int nw = step_gemms(o, w);
    double t, c;
    status = roofline(w, nw, &t, &c);
    if (status == HN_OK) {
      r->roofline_ms = 1e3 * t;
      r->roofline_cpu_ms = 1e3 * c;
      r->roofline_gflops = r->flops_per_step / t * 1e-9;
    }
  }
  return status;
}

/* ---------------------------------------------------------------------------------------- */

static double mib(size_t bytes) { return (double)bytes / 1048576.0; }

static const char *blas_threading(int p) {
  switch (p) {
  case 0: return "sequential";
  case 1: return "pthreads (starts its own threads, which compete with OpenMP's: install the OpenMP build)";
  case 2: return "OpenMP (shares hamnet's threads)";
  default: return "unknown";
  }
}

void hn_bench_print(FILE *out, const hn_bench_options *o, const hn_bench_result *r) {
  if (o->stages[0])
    fprintf(out, "hamnet bench: %s, %s, convolutional: stages %s on %dx%dx%d images, norm %s, batch %d; %s mode; "
            "%d thread%s; %s\n", hn_arch_name(o->arch), hn_activation_name(o->activation), o->stages, o->image_channels,
            o->image_height, o->image_width, hn_norm_name(o->norm), o->batch, o->reversible ? "reversible" : "stored",
            r->threads, r->threads == 1 ? "" : "s", HN_REAL_NAME);
  else
    fprintf(out, "hamnet bench: %s, %s, width %d, depth %d, batch %d; %s mode, %s path; %d thread%s; %s\n",
            hn_arch_name(o->arch), hn_activation_name(o->activation), o->width, o->depth, o->batch,
            o->reversible ? "reversible" : "stored", r->narrow ? "narrow" : "wide", r->threads,
            r->threads == 1 ? "" : "s", HN_REAL_NAME);
  fprintf(out, "  BLAS: %s; threading: %s\n", r->blas_config, blas_threading(r->blas_parallel));
  fprintf(out, "  step (zero grads + forward + backward + adam): %.3f ms best, %.3f ms median of %d (after %d warm-up)\n",
          r->ms_best, r->ms_median, o->steps, o->warmup);
  fprintf(out, "  throughput: %.0f samples/s\n", r->samples_per_s);
  fprintf(out, "  useful %s work: %.4g GFLOP per step (recomputation not counted) -> %.1f GFLOP/s\n",
          o->stages[0] ? "convolution" : "GEMM", r->flops_per_step * 1e-9, r->gflops);
  if (o->stages[0])
    fprintf(out, "  in CPU time (all threads; robust to other load with one thread): step %.3f ms -> %.0f samples/s "
            "per CPU second\n", r->cpu_ms_best, r->cpu_ms_best > 0 ? 1e3 * o->batch / r->cpu_ms_best : 0.0);
  if (r->roofline_gflops > 0)
    fprintf(out, "  roofline: the same GEMMs alone take %.3f ms -> %.1f GFLOP/s; the step reaches %.0f%% of it\n"
                 "  in CPU time (all threads; robust to other load with one thread): step %.3f ms, GEMMs alone "
                 "%.3f ms -> %.0f%%\n",
            r->roofline_ms, r->roofline_gflops, 100 * r->gflops / r->roofline_gflops, r->cpu_ms_best,
            r->roofline_cpu_ms, 100 * r->roofline_cpu_ms / r->cpu_ms_best);
  fprintf(out, "  memory (peak MiB): parameters %.1f, gradients %.1f, optimizer %.1f, activations %.1f "
               "(predicted %.1f), workspace %.1f, data %.1f, other %.1f; peak RSS %.1f\n",
          mib(r->mem_peak[HN_MEM_PARAMS]), mib(r->mem_peak[HN_MEM_GRADS]), mib(r->mem_peak[HN_MEM_OPTIM]),
          mib(r->mem_peak[HN_MEM_ACTIVATIONS]), mib(r->predicted_activation_bytes),
          mib(r->mem_peak[HN_MEM_WORKSPACE]), mib(r->mem_peak[HN_MEM_DATA]), mib(r->mem_peak[HN_MEM_OTHER]),
          r->peak_rss_mb);
  fprintf(out, "  loss %.6g -> %.6g%s", r->loss_first, r->loss_last, o->reversible ? "" : "\n");
  if (o->reversible)
    fprintf(out, "; reconstruction error %.3g\n", r->recon_error);
}

void hn_bench_print_json(FILE *out, const hn_bench_options *o, const hn_bench_result *r) {
  /* a convolutional network's width and depth come from its stages, not from --width / --depth */
  int width = o->width, depth = o->depth;
  if (o->stages[0]) {
    int n = 0, ch[HN_MAX_STAGES], ly[HN_MAX_STAGES];
    char why[128];
    if (hn_stages_parse(o->stages, &n, ch, ly, why, sizeof why) == 0) {
      width = depth = 0;
      for (int s = 0; s < n; s++) {
        width = ch[s] > width ? ch[s] : width;
        depth += ly[s];
      }
    }
  }
  fprintf(out,
          "{\"stages\": \"%s\", \"image\": [%d, %d, %d], \"cpu_samples_per_s\": %.6g, "
          "\"arch\": \"%s\", \"activation\": \"%s\", \"width\": %d, \"depth\": %d, \"batch\": %d, "
          "\"reversible\": %s, \"kernel\": \"%s\", \"conv_algorithm\": \"%s\", \"tile\": %d, \"threads\": %d, \"precision\": \"%s\", \"steps\": %d, "
          "\"ms_per_step\": %.6g, \"ms_median\": %.6g, \"samples_per_s\": %.6g, \"flops_per_step\": %.6g, "
          "\"gflops\": %.6g, \"roofline_gflops\": %.6g, \"roofline_ms\": %.6g, \"cpu_ms_per_step\": %.6g, "
          "\"roofline_cpu_ms\": %.6g, \"peak_rss_mb\": %.6g, "
          "\"mem_peak_mb\": {\"params\": %.6g, \"grads\": %.6g, \"optim\": %.6g, \"activations\": %.6g, "
          "\"workspace\": %.6g, \"data\": %.6g, \"other\": %.6g}, \"activation_bytes\": %zu, "
          "\"predicted_activation_bytes\": %zu, \"loss_first\": %.9g, \"loss_last\": %.9g, \"recon_error\": %.6g, "
          "\"blas_parallel\": %d, \"blas_config\": \"%s\"}\n",
          o->stages, o->image_channels, o->image_height, o->image_width,
          r->cpu_ms_best > 0 ? 1e3 * o->batch / r->cpu_ms_best : 0.0,
          hn_arch_name(o->arch), hn_activation_name(o->activation), width, depth, o->batch,
          o->reversible ? "true" : "false", r->narrow ? "narrow" : "wide", hn_conv_algorithm_name(o->conv_algorithm), HN_TILE, r->threads, HN_REAL_NAME, o->steps,
          r->ms_best, r->ms_median, r->samples_per_s, r->flops_per_step, r->gflops, r->roofline_gflops,
          r->roofline_ms, r->cpu_ms_best, r->roofline_cpu_ms, r->peak_rss_mb, mib(r->mem_peak[HN_MEM_PARAMS]), mib(r->mem_peak[HN_MEM_GRADS]),
          mib(r->mem_peak[HN_MEM_OPTIM]), mib(r->mem_peak[HN_MEM_ACTIVATIONS]), mib(r->mem_peak[HN_MEM_WORKSPACE]),
          mib(r->mem_peak[HN_MEM_DATA]), mib(r->mem_peak[HN_MEM_OTHER]), r->activation_bytes,
          r->predicted_activation_bytes, r->loss_first, r->loss_last, r->recon_error, r->blas_parallel,
          r->blas_config);
}

/* ---------------------------------------------------------------------------------------- */

int hn_bench_compare_reversible(const hn_bench_options *o, hn_bench_compare *c) {
  memset(c, 0, sizeof *c);
  hn_bench_options oo = *o;
  oo.reversible = 1;
  HN_TRY(check_options(&oo));
  if (o->threads > 0)
    omp_set_num_threads(o->threads);
  bench_problem p;
  hn_workspace *ws = NULL;
  hn_real *stored = NULL;
  int status = problem_create(&p, o);
  const size_t np = p.m.layout.n_params;
  if (status == HN_OK) {
    stored = hn_alloc(np, sizeof(hn_real), HN_MEM_OTHER, "stored-mode gradient");
    status = stored ? HN_OK : HN_ENOMEM;
  }
  for (int rev = 0; rev <= 1 && status == HN_OK; rev++) {
    hn_batch_stats st;
    status = make_workspace(&ws, &p, o, rev);
    if (status != HN_OK)
      break;
    memset(p.m.grads, 0, np * sizeof(hn_real));
    status = hn_model_train_batch(&p.m, ws, p.X, p.y, o->batch, (hn_real)(1.0 / o->batch), NULL, NULL, NULL, &st);
    hn_workspace_destroy(ws);
    ws = NULL;
    if (rev == 0)
      memcpy(stored, p.m.grads, np * sizeof(hn_real));
    else
      c->recon_error = st.recon_error;
  }
  if (status == HN_OK) {
    double maxd = 0, maxg = 0, d2 = 0, g2 = 0;
    for (size_t i = 0; i < np; i++) {
      double d = (double)p.m.grads[i] - stored[i];
      maxd = fmax(maxd, fabs(d));
      maxg = fmax(maxg, fabs((double)stored[i]));
      d2 += d * d;
      g2 += (double)stored[i] * stored[i];
    }
    c->max_rel_diff = maxg > 0 ? maxd / maxg : maxd;
    c->norm_rel_diff = g2 > 0 ? sqrt(d2 / g2) : sqrt(d2);
    c->grad_norm = sqrt(g2);
  }
  hn_free(stored);
  problem_destroy(&p);
  return status;
}
