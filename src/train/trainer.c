/* trainer.c - the training loop (see hamnet/train.h "the training loop").
 *
 * One step, one direction:
 *   this rank's slice of the global batch (data) -> forward/backward (model + kernels), each
 *   finished layer handed to the gradient exchange (parallel) -> wait for the exchange ->
 *   regulariser gradient -> per-step reduction of loss / accuracy / flags (all ranks agree on
 *   stop and divergence here) -> optimiser update -> at cadence: validation, checkpoint (io),
 *   progress.
 * Every rank runs the same code on the same global schedule; only rank 0 prints and writes. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hamnet/augment.h"
#include "hamnet/checkpoint.h"
#include "hamnet/data.h"
#include "hamnet/diag.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "hamnet/timer.h"
#include "hamnet/train.h"
#include "train/progress.h"

typedef struct {
  const hn_config *cfg;
  const hn_mpi *mpi;
  char run_dir[HN_PATH_MAX];
  char *config_text;

  /* data */
  hn_dataset_info train_info;
  int64_t n_train;        /* samples used for training (data.fraction subset) */
  int64_t *subset;        /* file rows of the subset, NULL = all rows */
  hn_dataset epoch_data;  /* this rank's rows of the current epoch, in batch order */
  int64_t *batch_start;   /* [n_batches + 1] offsets into epoch_data */
  int64_t *epoch_rows;    /* the file row of each sample of epoch_data (image augmentation's key) */
  int n_batches;
  hn_dataset val;         /* this rank's share of the validation set */
  int64_t n_val;          /* validation samples over all ranks */

  /* model and optimisation */
  hn_model model;
  int have_model;
  hn_workspace *ws;
  hn_optimizer opt;
  int have_opt;
  hn_exchange ex;
  int have_ex;
  int max_local_batch;
  hn_real *xbuf;
  int32_t *ybuf;
  hn_progress prog;

  FILE *steps_log;
  hn_diag *diag;
  double comm_seconds_at_last_diag;
  double recon_since_diag;
  hn_progress_display display;
  double run_t0;
  double max_recon;

  /* parallel performance, reported at the end (report_parallel) */
  double *step_seconds;         /* wall time of every step of this invocation */
  double *step_cpu;             /* process CPU time (all threads) of every step */
  long n_steps_timed, cap_steps_timed;
  long first_timed_step;        /* global step of step_seconds[0] */
  hn_exchange_stats ex_done;    /* exchanges of finished multilevel stages */
  /* HAMNET_BENCH_EXCHANGE_CYCLE=1 (benchmarks only): the steps cycle in blocks through an
   * overlapped, a non-overlapped and no exchange (cycle_mode), so that one run measures all
   * three side by side */
  int exchange_cycle;

  /* stop requests (signals.c) */
  double last_ckpt_seconds; /* wall time of the last checkpoint write (agreed; 0 before the first) */
  int stop_signal;          /* the signal all ranks agreed to stop on */
  int stop_without_ckpt;    /* SIGTERM deadline too close for a checkpoint */
} trainer;

/* ---------------------------------------------------------------------------------------- */
/* multilevel schedule */

int hn_level_depth(const hn_config *cfg, int level) {
  int levels = cfg->train.levels < 1 ? 1 : cfg->train.levels;
  return cfg->model.depth >> (levels - 1 - level);
}

int hn_level_epochs(const hn_config *cfg, int level) {
  int levels = cfg->train.levels < 1 ? 1 : cfg->train.levels;
  int per = cfg->train.epochs / levels;
  return level == levels - 1 ? cfg->train.epochs - per * (levels - 1) : per;
}

static int level_first_epoch(const hn_config *cfg, int level) {
  int e = 0;
  for (int l = 0; l < level; l++)
    e += hn_level_epochs(cfg, l);
  return e;
}

/* ---------------------------------------------------------------------------------------- */
/* data: each rank reads only its own rows */

/* Read this rank's rows of every batch of `epoch` (in batch order; hamnet/parallel.h
 * "sharding"). Collective: every rank calls it, and the status is agreed. */
static int load_epoch(trainer *t, int epoch) {
  hn_epoch_shard sh;
  memset(&sh, 0, sizeof sh);
  int status = hn_fault("oom", -1)
                   ? hn_fail(HN_ENOMEM, "out of memory for the rows of epoch %d on rank %d (injected fault, "
                             "HAMNET_FAULT=oom)", epoch + 1, t->mpi->rank)
                   : hn_shard_epoch(t->cfg->train.seed, epoch, t->n_train, t->cfg->train.batch_size, t->subset,
                                    t->mpi->rank, t->mpi->size, &sh);
  status = hn_mpi_agree(status);
  if (status != HN_OK) {
    hn_epoch_shard_free(&sh);
    return status;
  }
  hn_free(t->batch_start);
  t->batch_start = sh.batch_start;
  t->n_batches = sh.n_batches;
  sh.batch_start = NULL;
  hn_dataset_free(&t->epoch_data); /* before reading the next: never two epochs in memory */
  status = hn_dataset_read_rows_mpi(t->mpi->comm, t->cfg->data.train, sh.rows, sh.count, &t->epoch_data);
  hn_free(t->epoch_rows);
  t->epoch_rows = sh.rows;
  sh.rows = NULL;
  hn_epoch_shard_free(&sh);
  return status;
}

/* Probe the data files and pick the training subset (every rank by itself). */
static int probe_data(trainer *t) {
  const hn_config *cfg = t->cfg;
  HN_TRY(hn_dataset_probe(cfg->data.train, &t->train_info));
  if (t->train_info.n_features > (1 << 24))
    return hn_fail(HN_EFORMAT, "%s: %lld features per sample is more than hamnet's dense networks take",
                   cfg->data.train, (long long)t->train_info.n_features);
  t->n_train = t->train_info.n;
  if (cfg->data.fraction < 1.0) {
    int32_t *labels = NULL;
    hn_dataset_info info;
    HN_TRY(hn_dataset_read_labels(cfg->data.train, &info, &labels));
    int status = hn_data_fraction_subset_stratified(cfg->train.seed, labels, info.n, info.n_classes,
                                                    cfg->data.fraction, &t->subset, &t->n_train);
    hn_free(labels);
    HN_TRY(status);
  }
  if (cfg->data.val[0]) {
    hn_dataset_info vi;
    HN_TRY(hn_dataset_probe(cfg->data.val, &vi));
    if (vi.n_features != t->train_info.n_features)
      return hn_fail(HN_EFORMAT, "validation set %s has %lld features per sample, training set %s has %lld",
                     cfg->data.val, (long long)vi.n_features, cfg->data.train, (long long)t->train_info.n_features);
    if (vi.n_classes > t->train_info.n_classes)
      return hn_fail(HN_EFORMAT, "validation set %s has labels up to %d but the training set %s has %d classes",
                     cfg->data.val, vi.n_classes - 1, cfg->data.train, t->train_info.n_classes);
    t->n_val = vi.n;
  }
  return HN_OK;
}

/* Probe (agreed), then read this rank's share [N r / P, N (r+1) / P) of the validation set
 * (collective, also for an empty share). */
static int load_data(trainer *t) {
  HN_TRY(hn_mpi_agree(probe_data(t)));
  if (!t->cfg->data.val[0])
    return HN_OK;
  int64_t lo, hi;
  hn_shard_range(t->n_val, t->mpi->rank, t->mpi->size, &lo, &hi);
  return hn_dataset_read_range_mpi(t->mpi->comm, t->cfg->data.val, lo, hi - lo, &t->val);
}

/* ---------------------------------------------------------------------------------------- */
/* model, workspace, optimiser, exchange for the current level */

static int reversible_wanted(const hn_config *cfg) {
  if (cfg->train.reversible == HN_REV_OFF)
    return 0;
  return hn_arch_is_reversible(cfg->model.arch);
}

static void release_level(trainer *t) {
  hn_workspace_destroy(t->ws);
  t->ws = NULL;
  if (t->have_ex) {
    hn_exchange_stats_add(&t->ex_done, &t->ex.stats);
    hn_exchange_destroy(&t->ex);
  }
  t->have_ex = 0;
  if (t->have_opt)
    hn_optimizer_destroy(&t->opt);
  t->have_opt = 0;
}

/* Workspace, optimiser and exchange for t->model (the optimiser's moments are zero). */
static int setup_level(trainer *t) {
  const hn_config *cfg = t->cfg;
  HN_TRY(hn_workspace_create(&t->ws, &t->model.layout, t->max_local_batch, reversible_wanted(cfg),
                             t->prog.recon_stride));
  HN_TRY(hn_workspace_set_kernel(t->ws, cfg->train.kernel));
  HN_TRY(hn_workspace_set_conv_algorithm(t->ws, cfg->train.conv_algorithm));
  HN_TRY(hn_optimizer_create(&t->opt, cfg, t->model.layout.n_params));
  t->have_opt = 1;
  HN_TRY(hn_exchange_create(&t->ex, t->mpi->comm, &t->model.grads, t->model.layout.n_params,
                            (size_t)cfg->parallel.bucket_kb * 1024, cfg->parallel.overlap, cfg->parallel.exchange));
  t->have_ex = 1;
  if (t->mpi->size > 1 && t->prog.level == 0)
    hn_log_info("gradient exchange: %s, %d buckets of %d KiB, overlap %s", t->ex.engine_note, t->ex.n_buckets,
                cfg->parallel.bucket_kb, cfg->parallel.overlap ? "on" : "off");
  return HN_OK;
}

static hn_model_spec model_spec(const trainer *t, int depth) {
  hn_model_spec spec = hn_config_model_spec(t->cfg);
  spec.depth = depth;
  spec.n_features = (int)t->train_info.n_features;
  spec.n_classes = t->train_info.n_classes;
  if (t->train_info.ndim_sample == 3) { /* images: the shape convolutional networks need */
    spec.image_channels = (int)t->train_info.sample_dims[0];
    spec.image_height = (int)t->train_info.sample_dims[1];
    spec.image_width = (int)t->train_info.sample_dims[2];
  }
  return spec;
}

/* Batch normalisation's running statistics (convolutional networks, hamnet/convnet.h): each rank
 * updates its own from its part of the batch; before they are used (validation) or saved
 * (checkpoint) they are averaged over the ranks. Collective. */
static int sync_model_state(trainer *t) {
  const size_t n = t->model.layout.n_state;
  if (n == 0 || t->mpi->size < 2)
    return HN_OK;
  if (MPI_Allreduce(MPI_IN_PLACE, t->model.state, (int)n, HN_MPI_REAL, MPI_SUM, t->mpi->comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "averaging the normalisation statistics over the ranks failed");
  for (size_t i = 0; i < n; i++)
    t->model.state[i] /= (hn_real)t->mpi->size;
  return HN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* checkpoints */

static int params_finite(const hn_real *p, size_t n);

static int write_checkpoint(trainer *t, int also_best) {
  int status = HN_OK;
  /* Never save parameters that overflowed (the step that follows would report divergence, but
   * the checkpoint would already have replaced a good one). The same test on every rank. */
  if (!params_finite(t->model.params, t->model.layout.n_params))
    return hn_fail(HN_ENUMERIC, "training diverged at step %ld: the parameters are no longer finite, so no "
                   "checkpoint is written (the last good checkpoint in %s is kept); lower [train] lr (now %g) or "
                   "init_scale, or use a stable architecture", t->prog.global_step, t->run_dir, t->cfg->train.lr);
  HN_TRY(sync_model_state(t));
  double t_write = hn_wtime();
  if (t->mpi->rank == 0) {
    /* steps.tsv must hold every step the checkpoint covers (a process killed later loses only
     * lines that resuming drops anyway); if it cannot, the checkpoint is not written either. */
    if (t->steps_log && (fflush(t->steps_log) != 0 || (fsync(fileno(t->steps_log)) != 0 && errno != EINVAL)))
      status = hn_fail(HN_EIO, "cannot write %s/steps.tsv: %s; no checkpoint is written (the previous one is "
                       "kept)", t->run_dir, strerror(errno));
  }
  if (t->mpi->rank == 0 && status == HN_OK) {
    char name[64], path[HN_PATH_MAX + 64];
    hn_ckpt_name(t->prog.global_step, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", t->run_dir, name);
    hn_ckpt_optimizer opt = {hn_optimizer_name(t->opt.kind), t->opt.step, t->opt.m1, t->opt.m2};
    double t0 = hn_wtime();
    status = hn_ckpt_write(path, &t->model, &opt, &t->prog, t->config_text);
    if (status == HN_OK) {
      struct stat st;
      double mb = stat(path, &st) == 0 ? (double)st.st_size / 1048576.0 : 0.0;
      hn_log_info("checkpoint %s (%.2f MiB, %.3f s)", path, mb, hn_wtime() - t0);
      status = hn_ckpt_prune(t->run_dir, t->cfg->checkpoint.keep);
      if (also_best && status == HN_OK) {
        snprintf(path, sizeof path, "%s/best.h5", t->run_dir);
        status = hn_ckpt_write(path, &t->model, &opt, &t->prog, t->config_text);
      }
    } else {
      struct stat st;
      if (stat(path, &st) == 0) /* only the fsync of the folder failed: the new file is in place */
        hn_fail_context(status, "writing checkpoint %s (it is in place, but may not survive a crash of the "
                        "machine)", path);
      else
        hn_fail_context(status, "writing checkpoint %s (the previous checkpoint is kept)", path);
    }
  }
  status = hn_mpi_agree(status);
  t->last_ckpt_seconds = hn_wtime() - t_write; /* made the same on every rank by the per-step reduction */
  return status;
}

/* Model-defining settings must match the checkpoint's; the rest may change on resume. */
static int check_resume_config(trainer *t, const char *path, const char *stored_text) {
  hn_config old;
  hn_config_defaults(&old);
  if (hn_config_load_string(&old, stored_text, path) != HN_OK)
    return hn_fail_context(HN_EFORMAT, "config stored in %s", path);
  const hn_config *now = t->cfg;
  char what[512] = "";
#define HN_DIFFERS(cond, name)                                                   \
  do {                                                                           \
    if (cond)                                                                    \
      snprintf(what + strlen(what), sizeof what - strlen(what), " %s", name);    \
  } while (0)
  HN_DIFFERS(old.model.arch != now->model.arch, "model.arch");
  HN_DIFFERS(old.model.width != now->model.width, "model.width");
  HN_DIFFERS(old.model.depth != now->model.depth, "model.depth");
  HN_DIFFERS(old.model.final_time != now->model.final_time, "model.final_time");
  HN_DIFFERS(old.model.activation != now->model.activation, "model.activation");
  HN_DIFFERS(old.model.gamma != now->model.gamma, "model.gamma");
  HN_DIFFERS(old.model.opening != now->model.opening, "model.opening");
  HN_DIFFERS(strcmp(old.model.stages, now->model.stages) != 0, "model.stages");
  HN_DIFFERS(old.model.norm != now->model.norm, "model.norm");
  HN_DIFFERS(old.train.levels != now->train.levels, "train.levels");
  HN_DIFFERS(old.train.seed != now->train.seed, "train.seed");
  HN_DIFFERS(old.train.batch_size != now->train.batch_size, "train.batch_size");
  HN_DIFFERS(old.train.optimizer != now->train.optimizer, "train.optimizer");
  HN_DIFFERS(old.data.fraction != now->data.fraction, "data.fraction");
  HN_DIFFERS(strcmp(old.data.train, now->data.train) != 0, "data.train");
#undef HN_DIFFERS
  if (what[0])
    return hn_fail(HN_EINVAL, "cannot resume from %s: the run was made with different settings of%s. "
                   "Use a new --run-dir for a different network, or restore those settings.", path, what);
  if (t->mpi->rank == 0 && hn_config_diff(&old, now, NULL) > 0) {
    hn_log_info("resuming with changed settings:");
    hn_config_diff(&old, now, stdout);
  }
  return HN_OK;
}

/* Resume from the newest valid checkpoint in run_dir, if any. *resumed = 1 when it did. */
/* Checkpoint files (ckpt-<step>.h5 exactly; never .tmp) in run_dir with a step above `above`.
 * With `quarantine`, each is renamed to NAME.corrupt (kept for inspection, but no longer a
 * checkpoint: pruning would otherwise count it among the newest and delete good ones). */
static int scan_checkpoints(const trainer *t, long long above, int quarantine) {
  DIR *dp = opendir(t->run_dir);
  if (!dp)
    return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dp)) != NULL) {
    const char *name = de->d_name;
    size_t digits = strncmp(name, "ckpt-", 5) == 0 ? strspn(name + 5, "0123456789") : 0;
    if (digits == 0 || digits > 18 || strcmp(name + 5 + digits, ".h5") != 0 || strtoll(name + 5, NULL, 10) <= above)
      continue;
    n++;
    if (quarantine) {
      char from[HN_PATH_MAX + 300], to[HN_PATH_MAX + 310];
      snprintf(from, sizeof from, "%s/%s", t->run_dir, name);
      snprintf(to, sizeof to, "%s.corrupt", from);
      if (rename(from, to) == 0)
        hn_log_warn("renamed the unreadable checkpoint %s to %s (newer than the one resumed from)", from, to);
      else
        hn_log_warn("cannot rename the unreadable checkpoint %s: %s", from, strerror(errno));
    }
  }
  closedir(dp);
  return n;
}

/* Resume from the newest valid checkpoint in run_dir, if any. *resumed = 1 when it did. A run
 * folder whose checkpoints all fail to read back is an error, not a fresh start: the cause may
 * be passing (a file system hiccup), and starting over would prune them. */
static int try_resume(trainer *t, int *resumed) {
  char path[HN_PATH_MAX];
  *resumed = 0;
  if (hn_ckpt_find_latest(t->run_dir, path, sizeof path) != HN_OK) {
    int present = scan_checkpoints(t, -1, 0);
    if (present > 0)
      return hn_fail(HN_EFORMAT, "%s holds %d checkpoint file%s but none reads back completely (see the warnings "
                     "above); nothing was changed. To start over, move them away or choose another --run-dir",
                     t->run_dir, present, present == 1 ? "" : "s");
    hn_error_clear();
    return HN_OK;
  }
  hn_model_spec spec;
  HN_TRY(hn_ckpt_read_spec(path, &spec));
  char *stored_text = NULL;
  hn_model probe;
  int status = hn_ckpt_read(path, &probe, NULL, NULL, &stored_text);
  if (status != HN_OK)
    return status;
  hn_model_destroy(&probe);
  status = check_resume_config(t, path, stored_text ? stored_text : "");
  free(stored_text);
  HN_TRY(status);
  /* read again, now with optimiser state and progress, into the real objects */
  HN_TRY(hn_ckpt_read(path, &t->model, NULL, &t->prog, NULL));
  t->have_model = 1;
  int level = t->prog.level;
  if (level < 0 || level >= t->cfg->train.levels || spec.depth != hn_level_depth(t->cfg, level))
    return hn_fail(HN_EFORMAT, "%s: depth %d at multilevel stage %d does not fit levels = %d, depth = %d",
                   path, spec.depth, level, t->cfg->train.levels, t->cfg->model.depth);
  if (spec.n_features != t->train_info.n_features || spec.n_classes != t->train_info.n_classes)
    return hn_fail(HN_EFORMAT, "%s was trained on %d features / %d classes, %s has %lld / %d", path,
                   spec.n_features, spec.n_classes, t->cfg->data.train, (long long)t->train_info.n_features,
                   t->train_info.n_classes);
  HN_TRY(setup_level(t));
  hn_ckpt_optimizer opt = {hn_optimizer_name(t->opt.kind), 0, t->opt.m1, t->opt.m2};
  hn_model again;
  hn_progress prog_again;
  memset(&prog_again, 0, sizeof prog_again);
  status = hn_ckpt_read(path, &again, &opt, &prog_again, NULL);
  if (status == HN_OK) {
    hn_model_destroy(&again);
    t->opt.step = opt.step;
  }
  hn_progress_free(&prog_again);
  HN_TRY(status);
  hn_log_info("resuming from %s: epoch %d, step %ld of the epoch, %ld steps, depth %d", path, t->prog.epoch,
              t->prog.step_in_epoch, t->prog.global_step, spec.depth);
  *resumed = 1;
  return HN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* run folder and per-step log */

static int make_dirs(const char *path) {
  char tmp[HN_PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
      return hn_fail(HN_EIO, "cannot create folder %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
    return hn_fail(HN_EIO, "cannot create run folder %s: %s", tmp, strerror(errno));
  if (access(tmp, W_OK) != 0)
    return hn_fail(HN_EIO, "run folder %s is not writable: %s (choose another --run-dir)", tmp, strerror(errno));
  return HN_OK;
}

/* steps.tsv: one line per optimiser step. On resume, lines after the checkpoint's step are
 * dropped (they belong to work that was lost), so the file always matches the parameters. */
static int open_steps_log(trainer *t) {
  if (t->mpi->rank != 0)
    return HN_OK;
  char path[HN_PATH_MAX + 32], tmp_path[HN_PATH_MAX + 40];
  snprintf(path, sizeof path, "%s/steps.tsv", t->run_dir);
  snprintf(tmp_path, sizeof tmp_path, "%s.tmp", path);
  FILE *old = fopen(path, "r");
  FILE *out = fopen(tmp_path, "w");
  if (!out) {
    if (old)
      fclose(old);
    return hn_fail(HN_EIO, "cannot write %s: %s", tmp_path, strerror(errno));
  }
  fprintf(out, "step\tepoch\tstep_in_epoch\tdepth\tloss\taccuracy\tlr\trecon_error\n");
  if (old) {
    char line[512];
    while (fgets(line, sizeof line, old)) {
      long step = strtol(line, NULL, 10);
      if (step >= 1 && step <= t->prog.global_step)
        fputs(line, out);
    }
    fclose(old);
  }
  if (fclose(out) != 0 || rename(tmp_path, path) != 0)
    return hn_fail(HN_EIO, "cannot write %s: %s", path, strerror(errno));
  t->steps_log = fopen(path, "a");
  if (!t->steps_log)
    return hn_fail(HN_EIO, "cannot append to %s: %s", path, strerror(errno));
  return HN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* one step and one epoch */

static void to_real(const float *src, hn_real *dst, size_t count) {
  for (size_t i = 0; i < count; i++)
    dst[i] = (hn_real)src[i];
}

static int grads_finite(const hn_real *g, size_t n) {
  hn_real acc = 0;
  for (size_t i = 0; i < n; i++)
    acc += g[i] * 0; /* NaN and Inf survive multiplication by 0, finite values give 0 */
  return acc == 0;
}

static int params_finite(const hn_real *p, size_t n) { return grads_finite(p, n); }

typedef struct {
  double loss_sum, correct, count, reg_sum; /* summed over the epoch's steps */
  double recon;
  int steps;
} epoch_totals;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Process CPU time in seconds (every thread of this rank). */
static double cpu_seconds(void) {
  struct timespec ts;
  return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0 ? (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec : 0.0;
}

/* Keep the wall and CPU time of every step of this invocation (the parallel report at the end;
 * on a shared machine the CPU time is the steadier figure: it leaves out time descheduled). */
static void record_step_time(trainer *t, double seconds, double cpu) {
  if (t->n_steps_timed == t->cap_steps_timed) {
    long cap = t->cap_steps_timed ? 2 * t->cap_steps_timed : 1024;
    double *p = realloc(t->step_seconds, (size_t)cap * sizeof(double));
    double *q = p ? realloc(t->step_cpu, (size_t)cap * sizeof(double)) : NULL;
    if (p)
      t->step_seconds = p;
    if (!q)
      return; /* a missing timing is not worth stopping the run */
    t->step_cpu = q;
    t->cap_steps_timed = cap;
  }
  if (t->n_steps_timed == 0)
    t->first_timed_step = t->prog.global_step; /* record_step_time follows the step's increment */
  t->step_seconds[t->n_steps_timed] = seconds;
  t->step_cpu[t->n_steps_timed++] = cpu;
}

/* Median of v[first..n) (v is reordered). */
static double median_from(double *v, long first, long n) {
  if (n - first < 1)
    return NAN;
  qsort(v + first, (size_t)(n - first), sizeof(double), cmp_double);
  return v[first + (n - first) / 2];
}

/* With several ranks, one line per epoch: the time spent waiting for the gradient exchange. */
static void log_epoch_exchange(const trainer *t, int epoch, const hn_exchange_stats *at_start, double seconds) {
  const hn_exchange_stats *now = &t->ex.stats;
  long steps = now->steps - at_start->steps, buckets = now->buckets - at_start->buckets;
  if (t->mpi->size < 2 || steps < 1 || buckets < 1)
    return;
  double wait = now->wait_seconds - at_start->wait_seconds;
  hn_log_info("epoch %d: waited %.3f s for the gradient exchange (%.1f%% of the epoch, %.2f ms per step); "
              "%.0f%% of the buckets were complete before the backward pass ended", epoch + 1, wait,
              100.0 * wait / (seconds > 0 ? seconds : 1e-9), 1e3 * wait / (double)steps,
              100.0 * (double)(now->done_early - at_start->done_early) / (double)buckets);
}

/* HAMNET_BENCH_EXCHANGE_CYCLE: global step `step` runs exchange mode 0 (overlapped), 1 (not
 * overlapped) or 2 (none), in blocks of CYCLE_BLOCK steps per mode. The first step of a block is
 * not counted: it pays for what the previous mode left behind (measured with blocks of one step:
 * the step after an overlapped one was ~15 ms slower on the wide workload, whatever its own mode,
 * which made the mode after it look slow). */
#define CYCLE_BLOCK 3
static int cycle_mode(long step) { return (int)((step / CYCLE_BLOCK) % 3); }
static int cycle_counted(long step) { return step % CYCLE_BLOCK != 0; }

/* The median step of each exchange mode (steps first..n of this invocation, the slowest
 * rank's) and the exposed communication with and without overlap - the three modes interleaved
 * in short blocks, so that drifts of the machine hit all three alike. Collective. */
static int report_exchange_cycle(trainer *t, long first, long n) {
  double med[3] = {0, 0, 0};
  long count[3] = {0, 0, 0};
  double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
  if (!v)
    return hn_fail(HN_ENOMEM, "exchange cycle report: out of memory");
  for (int mode = 0; mode < 3; mode++) {
    long m = 0;
    for (long i = first; i < n; i++)
      if (cycle_counted(t->first_timed_step + i) && cycle_mode(t->first_timed_step + i) == mode)
        v[m++] = t->step_seconds[i];
    count[mode] = m;
    med[mode] = m > 0 ? median_from(v, 0, m) : NAN;
  }
  free(v);
  if (MPI_Allreduce(MPI_IN_PLACE, med, 3, MPI_DOUBLE, MPI_MAX, t->mpi->comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "reduction of the exchange cycle's step times failed");
  hn_log_info("exchange cycle (HAMNET_BENCH_EXCHANGE_CYCLE, medians of %ld / %ld / %ld steps, blocks of %d, the "
              "first of each left out): overlapped %.2f ms, not overlapped %.2f ms, no exchange %.2f ms per step; "
              "exposed communication %.2f ms with overlap, %.2f ms without",
              count[0], count[1], count[2], CYCLE_BLOCK, 1e3 * med[0], 1e3 * med[1], 1e3 * med[2],
              1e3 * (med[0] - med[2]), 1e3 * (med[1] - med[2]));
  return HN_OK;
}

/* End of a run (collective): step time, exchange statistics and per-rank data memory. */
static int report_parallel(trainer *t) {
  hn_exchange_stats x = t->ex_done;
  if (t->have_ex)
    hn_exchange_stats_add(&x, &t->ex.stats);
  /* the worst rank's memory: what a node must hold per rank */
  double mem[3] = {(double)hn_mem_peak(HN_MEM_DATA), (double)hn_mem_peak(HN_MEM_GRADS), hn_mem_peak_rss_mb()};
  if (t->mpi->size > 1 && MPI_Allreduce(MPI_IN_PLACE, mem, 3, MPI_DOUBLE, MPI_MAX, t->mpi->comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "reduction of the memory figures failed");
  const double data_mb = (double)t->n_train * (double)t->train_info.n_features * sizeof(float) / 1048576.0;
  hn_log_info("data: at most %.1f MiB of data buffers per rank (peak; the training set is %.1f MiB over %d rank%s), "
              "peak resident set %.0f MiB", mem[0] / 1048576.0, data_mb, t->mpi->size, t->mpi->size == 1 ? "" : "s",
              mem[2]);
  long n = t->n_steps_timed;
  if (n < 1)
    return HN_OK;
  /* the first step of a run pays for first touches of every buffer: leave it out when there are more */
  long first = n > 1 ? 1 : 0;
  if (t->exchange_cycle) /* before the medians below reorder step_seconds */
    HN_TRY(report_exchange_cycle(t, first, n));
  double mean = 0;
  for (long i = first; i < n; i++)
    mean += t->step_seconds[i] / (double)(n - first);
  /* medians: the wall time, and the CPU time of the slowest rank (ranks wait for it) */
  double med[2] = {median_from(t->step_seconds, first, n), median_from(t->step_cpu, first, n)};
  if (t->mpi->size > 1 && MPI_Allreduce(MPI_IN_PLACE, med, 2, MPI_DOUBLE, MPI_MAX, t->mpi->comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "reduction of the step times failed");
  const double median = med[0];
  if (t->mpi->size < 2 || x.steps < 1 || x.buckets < 1) {
    hn_log_info("steps: %ld, median %.2f ms, mean %.2f ms (first step left out), CPU time per step %.2f ms", n,
                1e3 * median, 1e3 * mean, 1e3 * med[1]);
    return HN_OK;
  }
  char work[64] = ""; /* the shared engine's own sums and copies (the MPI engine's happen inside MPI) */
  if (t->ex.kind == HN_EXCHANGE_SHARED)
    snprintf(work, sizeof work, " (%.2f ms summing and copying)", 1e3 * x.work_seconds / (double)x.steps);
  hn_log_info("steps: %ld, median %.2f ms, mean %.2f ms (first step left out), CPU time per step %.2f ms | "
              "gradient exchange: %d bucket%s of "
              "%zu KiB, %s engine, overlap %s: waited %.2f ms per step (%.1f%% of the mean step), %.2f ms per step in "
              "the exchange's calls%s; "
              "buckets started during the backward pass %.0f%%, complete before it ended %.0f%%",
              n, 1e3 * median, 1e3 * mean, 1e3 * med[1], t->ex.n_buckets, t->ex.n_buckets == 1 ? "" : "s",
              t->ex.bucket_elems * sizeof(hn_real) / 1024, hn_exchange_kind_name(t->ex.kind),
              t->ex.overlap ? "on" : "off", 1e3 * x.wait_seconds / (double)x.steps,
              100.0 * x.wait_seconds / (double)x.steps / (mean > 0 ? mean : 1e-9), 1e3 * x.comm_seconds / (double)x.steps,
              work, 100.0 * (double)x.started_early / (double)x.buckets,
              100.0 * (double)x.done_early / (double)x.buckets);
  return HN_OK;
}

/* Every rank must start from the same parameters at the same step: a resume on one rank that
 * found another checkpoint (a run folder on a node-local disk, say) would otherwise train on
 * silently, then hang when the step counts part. */
static int check_same_start(trainer *t) {
  int64_t where[4] = {t->prog.global_step, t->prog.epoch, t->prog.step_in_epoch, t->prog.level};
  HN_TRY(hn_mpi_check_same("the starting step (the checkpoint resumed from)", where, sizeof where));
  return hn_mpi_check_same("the starting parameters", t->model.params, t->model.layout.n_params * sizeof(hn_real));
}

/* One optimiser step on batch k. Returns HN_ESTOPPED / HN_ENUMERIC as agreed by all ranks. */
static int train_step(trainer *t, int epoch, int k, epoch_totals *tot) {
  const hn_config *cfg = t->cfg;
  const size_t np = t->model.layout.n_params;
  const int64_t lo = t->batch_start[k], hi = t->batch_start[k + 1];
  const int Bl = (int)(hi - lo);
  const int64_t n = t->n_train, B = cfg->train.batch_size;
  const int64_t Bglobal = ((int64_t)k + 1) * B <= n ? B : n - (int64_t)k * B;
  const int F = (int)t->train_info.n_features;

  const long step = t->prog.global_step + 1; /* for fault injection (hamnet/parallel.h) */
  const double t_step = hn_wtime(), c_step = cpu_seconds();

  memset(t->model.grads, 0, np * sizeof(hn_real));
  if (t->exchange_cycle) { /* the same mode on every rank: it follows the global step */
    t->ex.overlap = cycle_mode(step) == 0;
    t->ex.skip = cycle_mode(step) == 2;
  }
  if (hn_fault("nan", step)) /* the backward pass accumulates onto it */
    t->model.grads[np - 1] = (hn_real)NAN;
  hn_exchange_begin(&t->ex);
  hn_batch_stats st;
  memset(&st, 0, sizeof st);
  /* A local failure must not skip the collectives below (the other ranks wait in them): it
   * travels in flags[3] and is agreed after the reduction. */
  int status = HN_OK;
  if (Bl > 0) {
    to_real(t->epoch_data.X + (size_t)lo * F, t->xbuf, (size_t)Bl * F);
    memcpy(t->ybuf, t->epoch_data.y + lo, (size_t)Bl * sizeof(int32_t));
    const hn_augment aug = {cfg->train.augment_crop, cfg->train.augment_flip};
    if (hn_augment_active(&aug)) /* images (checked at start-up), keyed by the samples' file rows */
      status = hn_augment_batch(&aug, cfg->train.seed, epoch, t->epoch_rows + lo, Bl,
                                (int)t->train_info.sample_dims[0], (int)t->train_info.sample_dims[1],
                                (int)t->train_info.sample_dims[2], t->xbuf);
    if (status == HN_OK)
      status = hn_fault("error", step)
                   ? hn_fail(HN_EINTERNAL, "forward/backward pass failed at step %ld on rank %d (injected fault, "
                             "HAMNET_FAULT=error)", step, t->mpi->rank)
                   : hn_model_train_batch(&t->model, t->ws, t->xbuf, t->ybuf, Bl, (hn_real)(1.0 / (double)Bglobal),
                                          hn_exchange_ready, &t->ex, NULL, &st);
  }
  if (hn_fault("exit", step)) {
    fprintf(stderr, "hamnet: rank %d: dying at step %ld (injected fault, HAMNET_FAULT=exit)\n", t->mpi->rank, step);
    _exit(HN_EXIT_ERROR);
  }
  int xstatus = hn_exchange_finish(&t->ex);
  if (xstatus != HN_OK) /* a peer died or MPI failed: no further collective could complete; the job ends
                         * through hn_mpi_exit (its deadline aborts the ranks that still wait) */
    return xstatus;
  double R = hn_regularizer(&t->model.layout, t->model.params, t->model.grads, cfg->train.alpha_t, cfg->train.alpha_w);

  /* per-step agreement: sums of loss/accuracy, and the worst of the flags. A stop signal on
   * any rank stops all of them after this step; flags[4] is minus the least time left before a
   * SIGTERM deadline (-inf: none), flags[5] the duration of the last checkpoint write. */
  double sums[3] = {st.loss_sum, (double)st.correct, (double)st.count};
  double flags[6] = {st.recon_error, (double)hn_signals_pending(),
                     (!isfinite(st.loss_sum) || !grads_finite(t->model.grads, np)) ? 1.0 : 0.0,
                     status != HN_OK ? 1.0 : 0.0, -hn_signals_term_left(), t->last_ckpt_seconds};
  if (t->mpi->size > 1) {
    if (MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, t->mpi->comm) != MPI_SUCCESS ||
        MPI_Allreduce(MPI_IN_PLACE, flags, 6, MPI_DOUBLE, MPI_MAX, t->mpi->comm) != MPI_SUCCESS)
      return hn_fail(HN_EMPI, "per-step reduction failed (a rank may have died)");
  }
  if (flags[3] != 0) { /* every rank is here: agree on the failure and pass its message on */
    int agreed = hn_mpi_agree(status);
    return agreed != HN_OK ? agreed : hn_fail(HN_EMPI, "step %ld failed on another rank", step);
  }
  double loss = sums[0] / sums[2] + R;
  if (flags[2] != 0 || !isfinite(loss))
    return hn_fail(HN_ENUMERIC, "training diverged at epoch %d, step %d: the loss or a gradient is not finite "
                   "(loss %g). The last good checkpoint in %s is kept; lower [train] lr (now %g) or init_scale, "
                   "or use a stable architecture", epoch + 1, k + 1, loss, t->run_dir, cfg->train.lr);

  /* Multilevel: the schedule restarts at every level, each level being trained like a run of
   * its own epochs (a schedule spanning all levels would leave the final, finest level - the
   * one that matters - only the tail of the learning rate). */
  const int level_start = level_first_epoch(cfg, t->prog.level);
  double lr = hn_lr_at(cfg, epoch - level_start + (double)k / t->n_batches, hn_level_epochs(cfg, t->prog.level));
  t->prog.lr = lr;
  hn_optimizer_step(&t->opt, t->model.params, t->model.grads, lr);
  t->prog.step_in_epoch = k + 1;
  t->prog.global_step++;
  t->prog.samples_seen += Bglobal;

  tot->loss_sum += sums[0];
  tot->correct += sums[1];
  tot->count += sums[2];
  tot->reg_sum += R;
  tot->recon = fmax(tot->recon, flags[0]);
  tot->steps++;
  /* the epoch's totals so far travel with the checkpoint (exact history rows after a resume) */
  t->prog.epoch_loss_sum = tot->loss_sum;
  t->prog.epoch_correct = tot->correct;
  t->prog.epoch_count = tot->count;
  t->prog.epoch_reg_sum = tot->reg_sum;
  t->prog.epoch_recon = tot->recon;
  t->max_recon = fmax(t->max_recon, flags[0]);
  t->recon_since_diag = fmax(t->recon_since_diag, flags[0]);
  if (t->steps_log)
    fprintf(t->steps_log, "%ld\t%d\t%d\t%d\t%.17g\t%.17g\t%.17g\t%.3g\n", t->prog.global_step, epoch + 1, k + 1,
            t->model.layout.spec.depth, loss, sums[1] / sums[2], lr, flags[0]);
  record_step_time(t, hn_wtime() - t_step, cpu_seconds() - c_step);

  /* reversible drift above tolerance: keep exact states every `stride` layers from now on */
  if (flags[0] > cfg->train.reversible_tol && hn_workspace_reversible(t->ws) && hn_workspace_stride(t->ws) == 0) {
    hn_log_warn("reversible reconstruction error %.3g exceeds reversible_tol = %g: keeping exact states every "
                "%d layers from now on (memory grows by depth/%d states)", flags[0], cfg->train.reversible_tol,
                cfg->train.reversible_stride, cfg->train.reversible_stride);
    hn_workspace_destroy(t->ws);
    t->ws = NULL;
    t->prog.recon_stride = cfg->train.reversible_stride;
    HN_TRY(hn_workspace_create(&t->ws, &t->model.layout, t->max_local_batch, 1, t->prog.recon_stride));
    HN_TRY(hn_workspace_set_kernel(t->ws, cfg->train.kernel));
    HN_TRY(hn_workspace_set_conv_algorithm(t->ws, cfg->train.conv_algorithm));
  }
  if (flags[1] != 0) {
    /* Stop after this step. Under a SIGTERM deadline, write the checkpoint only if the last
     * write took less than half the time left (every rank sees the same numbers). */
    double left = -flags[4];
    t->stop_signal = (int)flags[1];
    t->last_ckpt_seconds = flags[5];
    t->stop_without_ckpt = isfinite(left) && 2.0 * flags[5] >= left;
    return HN_ESTOPPED;
  }
  return HN_OK;
}

/* Loss and accuracy on this rank's validation rows, summed over the ranks. */
static int validate(trainer *t, double *loss, double *acc) {
  const int F = (int)t->train_info.n_features;
  HN_TRY(sync_model_state(t));
  double sums[2] = {0, 0};
  int status = HN_OK;
  for (int64_t i = 0; i < t->val.n && status == HN_OK; i += t->max_local_batch) {
    int b = (int)(t->val.n - i < t->max_local_batch ? t->val.n - i : t->max_local_batch);
    to_real(t->val.X + (size_t)i * F, t->xbuf, (size_t)b * F);
    hn_batch_stats st;
    status = hn_model_evaluate(&t->model, t->ws, t->xbuf, t->val.y + i, b, NULL, NULL, &st);
    sums[0] += st.loss_sum;
    sums[1] += (double)st.correct;
  }
  HN_TRY(hn_mpi_agree(status)); /* before the collective below */
  if (t->mpi->size > 1 && MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, t->mpi->comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "validation reduction failed");
  *loss = sums[0] / (double)t->n_val;
  *acc = sums[1] / (double)t->n_val;
  return HN_OK;
}

static void add_history(trainer *t, const double *row) {
  double *h = realloc(t->prog.history, (size_t)(t->prog.n_history + 1) * HN_HISTORY_COLS * sizeof(double));
  HN_ASSERT(h != NULL, "out of memory growing the training history");
  memcpy(h + (size_t)t->prog.n_history * HN_HISTORY_COLS, row, HN_HISTORY_COLS * sizeof(double));
  t->prog.history = h;
  t->prog.n_history++;
}

/* Diagnostics pass on a fixed probe batch: the first rows of this rank's validation share (or
 * of the epoch's training rows without validation set). */
static int diagnostics_pass(trainer *t, const hn_diag_scalars *s) {
  const int F = (int)t->train_info.n_features;
  const hn_dataset *src = t->val.n > 0 || t->n_val > 0 ? &t->val : &t->epoch_data;
  int b = (int)(src->n < t->max_local_batch ? src->n : t->max_local_batch);
  if (b > 0) {
    to_real(src->X, t->xbuf, (size_t)b * F);
    memcpy(t->ybuf, src->y, (size_t)b * sizeof(int32_t));
  }
  int64_t b_global = b;
  if (t->mpi->size > 1 &&
      MPI_Allreduce(MPI_IN_PLACE, &b_global, 1, MPI_INT64_T, MPI_SUM, t->mpi->comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "diagnostics: reduction of the probe batch size failed");
  return hn_diag_record(t->diag, &t->model, t->ws, t->xbuf, t->ybuf, b, b_global, s);
}

static int run_epoch(trainer *t, int epoch, hn_train_result *res) {
  const hn_config *cfg = t->cfg;
  HN_TRY(hn_mpi_agree(load_epoch(t, epoch)));
  epoch_totals tot;
  memset(&tot, 0, sizeof tot);
  int first = (int)t->prog.step_in_epoch;
  if (first > 0) { /* resumed inside the epoch: carry on with its totals */
    tot.loss_sum = t->prog.epoch_loss_sum;
    tot.correct = t->prog.epoch_correct;
    tot.count = t->prog.epoch_count;
    tot.reg_sum = t->prog.epoch_reg_sum;
    tot.recon = t->prog.epoch_recon;
    tot.steps = first;
  }
  double t0 = hn_wtime() - (first > 0 ? t->prog.epoch_seconds : 0.0);
  const hn_exchange_stats ex0 = t->ex.stats;
  hn_progress_epoch_begin(&t->display, epoch, t->n_batches, first);
  for (int k = first; k < t->n_batches; k++) {
    int status = train_step(t, epoch, k, &tot);
    t->prog.epoch_seconds = hn_wtime() - t0;
    if (status == HN_ESTOPPED) {
      hn_progress_interrupt(&t->display);
      if (t->stop_without_ckpt) {
        hn_log_warn("stop requested by %s after step %ld, but the SIGTERM deadline (%d s, "
                    "HAMNET_TERM_DEADLINE) leaves too little time for a checkpoint (the last one took %.2f s): "
                    "stopping without one; the newest checkpoint in %s is kept", hn_signal_name(t->stop_signal),
                    t->prog.global_step, hn_signals_term_deadline(), t->last_ckpt_seconds, t->run_dir);
        return HN_ESTOPPED;
      }
      hn_log_info("stop requested by %s (received %.3f s ago on this rank): writing a checkpoint after step %ld",
                  hn_signal_name(t->stop_signal), hn_signals_elapsed(), t->prog.global_step);
      HN_TRY(write_checkpoint(t, 0));
      if (hn_signals_count() > 1)
        hn_log_info("%d further stop signals arrived and were ignored (the first one is being handled)",
                    hn_signals_count() - 1);
      return HN_ESTOPPED;
    }
    HN_TRY(status);
    hn_progress_step(&t->display, k + 1, tot.loss_sum / tot.count, tot.correct / tot.count);
    if (cfg->checkpoint.every_steps > 0 && t->prog.global_step % cfg->checkpoint.every_steps == 0 &&
        k + 1 < t->n_batches)
      HN_TRY(write_checkpoint(t, 0));
    if (cfg->train.max_steps > 0 && t->prog.global_step >= cfg->train.max_steps && k + 1 < t->n_batches) {
      hn_progress_interrupt(&t->display);
      hn_log_info("reached [train] max_steps = %ld inside epoch %d", cfg->train.max_steps, epoch + 1);
      HN_TRY(write_checkpoint(t, 0));
      return HN_ESTOPPED;
    }
  }
  double seconds = hn_wtime() - t0;
  double train_loss = tot.count > 0 ? tot.loss_sum / tot.count : NAN;
  double reg = tot.steps > 0 ? tot.reg_sum / tot.steps : 0;
  double train_acc = tot.count > 0 ? tot.correct / tot.count : NAN;
  double val_loss = NAN, val_acc = NAN;
  if (t->n_val > 0)
    HN_TRY(validate(t, &val_loss, &val_acc));
  t->prog.epoch = epoch + 1;
  t->prog.step_in_epoch = 0;
  t->prog.epoch_loss_sum = t->prog.epoch_correct = t->prog.epoch_count = 0;
  t->prog.epoch_reg_sum = t->prog.epoch_recon = t->prog.epoch_seconds = 0;
  double row[HN_HISTORY_COLS] = {epoch + 1, train_loss, train_acc, val_loss, val_acc, t->prog.lr, seconds,
                                 t->model.layout.spec.depth, reg};
  add_history(t, row);
  int best = 0;
  if (t->n_val > 0 && val_acc > t->prog.best_val_accuracy) {
    t->prog.best_val_accuracy = val_acc;
    t->prog.best_epoch = epoch + 1;
    best = cfg->checkpoint.best;
  }
  double samples_per_s = tot.count / (seconds > 0 ? seconds : 1e-9);
  hn_progress_epoch_end(&t->display, epoch + 1, cfg->train.epochs, t->model.layout.spec.depth, train_loss, train_acc,
                        reg, val_loss, val_acc, samples_per_s, t->prog.lr, tot.recon, seconds);
  log_epoch_exchange(t, epoch, &ex0, seconds);
  if (t->steps_log)
    fflush(t->steps_log);
  if (t->diag && (epoch + 1) % cfg->diagnostics.every_epochs == 0) {
    hn_diag_scalars ds = {epoch + 1, t->prog.global_step, train_loss, train_acc, val_loss, val_acc, t->prog.lr,
                          samples_per_s, t->ex.stats.comm_seconds - t->comm_seconds_at_last_diag, t->recon_since_diag,
                          seconds};
    HN_TRY(diagnostics_pass(t, &ds));
    t->comm_seconds_at_last_diag = t->ex.stats.comm_seconds;
    t->recon_since_diag = 0;
  }
  res->train_loss = train_loss;
  res->train_accuracy = train_acc;
  res->val_loss = val_loss;
  res->val_accuracy = val_acc;
  res->epochs_done = epoch + 1;
  int last = epoch + 1 == cfg->train.epochs;
  int level_end = epoch + 1 == level_first_epoch(cfg, t->prog.level) + hn_level_epochs(cfg, t->prog.level);
  int stop = cfg->train.max_steps > 0 && t->prog.global_step >= cfg->train.max_steps && !last;
  if (last || level_end || best || stop ||
      (cfg->checkpoint.every_epochs > 0 && (epoch + 1) % cfg->checkpoint.every_epochs == 0))
    HN_TRY(write_checkpoint(t, best));
  if (stop) {
    hn_log_info("reached [train] max_steps = %ld at the end of epoch %d", cfg->train.max_steps, epoch + 1);
    return HN_ESTOPPED;
  }
  return HN_OK;
}

/* Move from multilevel stage `level` to the next: prolong to twice the depth. */
static int next_level(trainer *t) {
  hn_model fine;
  int depth = hn_level_depth(t->cfg, t->prog.level + 1);
  hn_model_spec spec = model_spec(t, depth);
  HN_TRY(hn_model_create(&fine, &spec));
  int status = hn_multilevel_prolong(&t->model, &fine);
  if (status != HN_OK) {
    hn_model_destroy(&fine);
    return status;
  }
  release_level(t);
  hn_model_destroy(&t->model);
  t->model = fine;
  t->prog.level++;
  t->prog.recon_stride = 0;
  t->comm_seconds_at_last_diag = 0; /* the new exchange counts from zero */
  hn_log_info("multilevel: prolonged to depth %d (h = %.4g), stage %d of %d", depth, (double)t->model.layout.h,
              t->prog.level + 1, t->cfg->train.levels);
  return setup_level(t);
}

/* ---------------------------------------------------------------------------------------- */

static void trainer_free(trainer *t) {
  release_level(t);
  free(t->step_seconds);
  free(t->step_cpu);
  if (t->have_model)
    hn_model_destroy(&t->model);
  hn_dataset_free(&t->epoch_data);
  hn_dataset_free(&t->val);
  hn_free(t->subset);
  hn_free(t->batch_start);
  hn_free(t->epoch_rows);
  hn_free(t->xbuf);
  hn_free(t->ybuf);
  hn_progress_free(&t->prog);
  free(t->config_text);
  if (t->steps_log)
    fclose(t->steps_log);
  hn_diag_close(t->diag);
}

static int train_body(trainer *t, hn_train_result *res) {
  const hn_config *cfg = t->cfg;
  HN_TRY(hn_config_validate(cfg, 1));
  if (cfg->train.reversible == HN_REV_ON && !hn_arch_is_reversible(cfg->model.arch))
    return hn_fail(HN_EINVAL, "[train] reversible = on needs arch hamiltonian or leapfrog (arch is %s); "
                   "use reversible = auto", hn_arch_name(cfg->model.arch));
  t->config_text = hn_config_to_ini(cfg);
  if (!t->config_text)
    return hn_fail(HN_ENOMEM, "out of memory writing the config text");
  HN_TRY(hn_mpi_check_same("the configuration", t->config_text, strlen(t->config_text)));
  HN_TRY(hn_mpi_check_same("the build precision", HN_REAL_NAME, sizeof HN_REAL_NAME));
  /* data first: a run that cannot start leaves no run folder behind */
  HN_TRY(hn_mpi_agree(load_data(t)));
  HN_TRY(hn_mpi_agree(t->mpi->rank == 0 ? make_dirs(t->run_dir) : HN_OK));
  {
    int64_t shape[4] = {t->train_info.n, t->train_info.n_features, t->train_info.n_classes, t->n_val};
    HN_TRY(hn_mpi_check_same("the data set shape (samples, features, classes)", shape, sizeof shape));
  }
  if ((cfg->train.augment_crop > 0 || cfg->train.augment_flip) && t->train_info.ndim_sample != 3)
    return hn_fail(HN_EINVAL, "[train] augment_crop / augment_flip need images (a data set of shape [N, C, H, W]); "
                   "%s holds vectors of %lld features", cfg->data.train, (long long)t->train_info.n_features);
  if (cfg->train.batch_size > t->n_train && t->mpi->rank == 0)
    hn_log_warn("[train] batch_size = %d is larger than the %lld training samples: one batch per epoch",
                cfg->train.batch_size, (long long)t->n_train);
  int64_t B = cfg->train.batch_size < t->n_train ? cfg->train.batch_size : t->n_train;
  t->max_local_batch = (int)((B + t->mpi->size - 1) / t->mpi->size);
  if (t->max_local_batch < 1)
    t->max_local_batch = 1;
  const int F = (int)t->train_info.n_features;
  t->xbuf = hn_alloc((size_t)t->max_local_batch * F, sizeof(hn_real), HN_MEM_WORKSPACE, "batch input");
  t->ybuf = hn_alloc((size_t)t->max_local_batch, sizeof(int32_t), HN_MEM_WORKSPACE, "batch labels");
  if (!t->xbuf || !t->ybuf)
    return HN_ENOMEM;

  int resumed = 0;
  HN_TRY(hn_mpi_agree(try_resume(t, &resumed)));
  if (resumed && t->mpi->rank == 0) /* every rank is done reading the folder */
    scan_checkpoints(t, t->prog.global_step, 1);
  if (!resumed) {
    hn_model_spec spec = model_spec(t, hn_level_depth(cfg, 0));
    int status = hn_model_create(&t->model, &spec);
    if (status == HN_OK) {
      t->have_model = 1;
      hn_model_init_params(&t->model, cfg->train.seed, cfg->train.init_scale);
      t->prog.best_val_accuracy = -1;
      status = setup_level(t);
    }
    HN_TRY(hn_mpi_agree(status));
  }
  HN_TRY(check_same_start(t));
  const char *cycle = getenv("HAMNET_BENCH_EXCHANGE_CYCLE");
  int cycle_on = t->mpi->size > 1 && cycle && *cycle && strcmp(cycle, "0") != 0;
  if (t->mpi->size > 1 && MPI_Allreduce(MPI_IN_PLACE, &cycle_on, 1, MPI_INT, MPI_MAX, t->mpi->comm) != MPI_SUCCESS)
    return hn_fail(HN_EMPI, "agreeing on HAMNET_BENCH_EXCHANGE_CYCLE failed");
  t->exchange_cycle = cycle_on;
  if (cycle_on)
    hn_log_warn("HAMNET_BENCH_EXCHANGE_CYCLE is set: steps cycle through an overlapped, a non-overlapped and no "
                "gradient exchange (benchmark mode; the results are meaningless)");
  HN_TRY(hn_mpi_agree(open_steps_log(t)));
  if (cfg->diagnostics.every_epochs > 0) {
    HN_TRY(hn_mpi_agree(hn_diag_open(&t->diag, t->run_dir, cfg, resumed)));
    if (resumed) /* records written after this checkpoint are dropped */
      hn_diag_set_resume_step(t->diag, t->prog.global_step);
  }

  const hn_layout *L = &t->model.layout;
  /* the shape: width and opening for a dense network, stages and image for a convolutional one */
  char shape[320];
  if (L->spec.n_stages > 0) {
    char stages[128];
    hn_stages_format(L->spec.n_stages, L->spec.stage_channels, L->spec.stage_layers, stages, sizeof stages);
    const unsigned wino = hn_workspace_winograd_stages(t->ws), all = (1u << L->spec.n_stages) - 1;
    snprintf(shape, sizeof shape, "convolutional stages %s on %dx%dx%d images, norm %s, %s convolutions", stages,
             L->spec.image_channels, L->spec.image_height, L->spec.image_width, hn_norm_name(L->spec.norm),
             wino == all ? "Winograd" : wino == 0 ? "im2col" : "Winograd (im2col for maps < 4x4)");
  } else {
    snprintf(shape, sizeof shape, "opening %s, width %d", hn_opening_name(L->spec.opening), L->spec.width);
  }
  hn_log_info("model: %s, %s, %s, depth %d%s, T = %g (h = %.4g), %zu parameters; data: %lld "
              "training samples%s, %lld validation, %d features, %d classes; batch %d over %d rank%s; %s mode",
              hn_arch_name(L->spec.arch), hn_activation_name(L->spec.activation), shape,
              L->spec.depth, cfg->train.levels > 1 ? " (multilevel stage 1)" : "",
              L->spec.final_time, (double)L->h, L->n_params, (long long)t->n_train,
              cfg->data.fraction < 1 ? " (data.fraction subset)" : "", (long long)t->n_val,
              L->spec.n_features, L->spec.n_classes, cfg->train.batch_size, t->mpi->size,
              t->mpi->size == 1 ? "" : "s", hn_workspace_reversible(t->ws) ? "reversible" : "stored-state");

  hn_progress_init(&t->display, cfg->train.epochs);
  while (t->prog.epoch < cfg->train.epochs) {
    int level_end = level_first_epoch(cfg, t->prog.level) + hn_level_epochs(cfg, t->prog.level);
    if (t->prog.epoch >= level_end && t->prog.level + 1 < cfg->train.levels) {
      HN_TRY(hn_mpi_agree(next_level(t)));
      continue;
    }
    int status = run_epoch(t, t->prog.epoch, res);
    if (status == HN_ESTOPPED) /* agreed by all ranks: the report's collective is safe */
      report_parallel(t);
    HN_TRY(status);
    res->steps = t->prog.global_step;
  }
  hn_diag_report(t->diag);
  return report_parallel(t);
}

int hn_train(const hn_config *cfg, const char *run_dir, hn_train_result *result) {
  trainer t;
  memset(&t, 0, sizeof t);
  memset(result, 0, sizeof *result);
  result->val_loss = result->val_accuracy = NAN;
  t.cfg = cfg;
  t.mpi = hn_mpi_world();
  snprintf(t.run_dir, sizeof t.run_dir, "%s", run_dir);
  t.run_t0 = hn_wtime();
  hn_signals_install();
  int status = train_body(&t, result);
  result->seconds = hn_wtime() - t.run_t0;
  result->steps = t.prog.global_step;
  result->max_recon_error = t.max_recon;
  if (t.prog.n_history > 0) {
    const double *last = t.prog.history + (size_t)(t.prog.n_history - 1) * HN_HISTORY_COLS;
    result->epochs_done = (int)last[HN_HIST_EPOCH];
    result->train_loss = last[HN_HIST_TRAIN_LOSS];
    result->train_accuracy = last[HN_HIST_TRAIN_ACC];
    result->val_loss = last[HN_HIST_VAL_LOSS];
    result->val_accuracy = last[HN_HIST_VAL_ACC];
  }
  trainer_free(&t);
  return status;
}
