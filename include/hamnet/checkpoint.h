/* hamnet/checkpoint.h - HDF5 checkpoints: everything a restart needs, written atomically.
 *
 * SCHEMA (format_version 2; README "Checkpoint files" documents it for h5py users)
 *   root attributes  format = "hamnet-checkpoint" (string), format_version = 2 (int),
 *                    hamnet_version, git_hash, precision ("float"|"double") (strings),
 *                    n_params (int64)
 *   /model           attributes arch, activation, opening (strings), width, depth, n_features,
 *                    n_classes (int), final_time, gamma (double)
 *   /model/K         [depth, width, width]  K[j][out][in]
 *   /model/b         [depth, width]
 *   /model/open/K    [width, n_features]    (dense opening only)
 *   /model/open/b    [width]                (dense opening only)
 *   /model/cls/W     [n_classes, width]
 *   /model/cls/b     [n_classes]
 *   (version 2) /model attribute network = "dense" | "conv"; the datasets above are those of
 *                    dense networks. Convolutional networks (hamnet/convnet.h) have instead the
 *                    /model attributes stages (string, "16x4,32x4,64x4"), norm ("batch" | "none"),
 *                    image_channels, image_height, image_width (int) - width and depth are then
 *                    the largest channel count and the number of layers - and the datasets
 *   /model/params    [n_params]  the flat parameter buffer in the layout of hamnet/convnet.h
 *   /model/state     [n_state]   the running mean and variance of every batch normalisation
 *                                (norm = batch only)
 *   Version 1 files (dense networks, no network attribute) are read as before.
 *   /optimizer       attributes kind ("sgd"|"adam"), step (int64); datasets m1 [n_params] and
 *                    (adam) m2 [n_params] in the flat parameter layout (hamnet/model.h)
 *   /progress        attributes epoch, step_in_epoch, global_step, samples_seen, level,
 *                    best_val_accuracy, best_epoch, lr, recon_stride; optional (float64, 0 when
 *                    absent) epoch_loss_sum, epoch_correct, epoch_count, epoch_reg_sum,
 *                    epoch_recon, epoch_seconds: totals of the epoch under way (hn_progress)
 *   /progress/history [n_epochs, HN_HISTORY_COLS] one row per finished epoch (see below), float64,
 *                    with a string attribute `columns` naming the columns (for h5py users)
 *   /config          attribute text: the resolved INI configuration of the run; text_crc32 (int64):
 *                    zlib's CRC-32 of the text (strings live in HDF5's global heap, which has no
 *                    checksum; files without the attribute are read unchecked)
 * Parameter datasets are stored in the build's precision (float32 or float64), chunked, with
 * HDF5's fletcher32 checksum filter, so that a flipped byte fails the read instead of
 * loading silently. The file uses HDF5's 1.8 format (readable by HDF5 >= 1.8 and h5py), whose
 * superblock and object headers (attributes, shapes) carry checksums too. Strings are
 * variable-length UTF-8 (h5py reads them as str); integers int32 / int64, floats float64.
 * The RNG needs no state: every draw is a function of (seed, epoch, index)
 * and the seed is in the config. */
#ifndef HAMNET_CHECKPOINT_H
#define HAMNET_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hamnet/model.h"

#define HN_CKPT_FORMAT "hamnet-checkpoint"
#define HN_CKPT_FORMAT_VERSION 2

/* Columns of /progress/history, one row per finished epoch. */
enum {
  HN_HIST_EPOCH = 0,
  HN_HIST_TRAIN_LOSS,  /* mean cross-entropy over the epoch (the objective is this + HN_HIST_REG) */
  HN_HIST_TRAIN_ACC,
  HN_HIST_VAL_LOSS,    /* NaN when there is no validation set */
  HN_HIST_VAL_ACC,
  HN_HIST_LR,
  HN_HIST_SECONDS,     /* wall time of the epoch */
  HN_HIST_DEPTH,       /* depth trained at (multilevel) */
  HN_HIST_REG,         /* regulariser R, mean over the epoch's steps */
  HN_HISTORY_COLS
};

typedef struct {
  int epoch;              /* epochs completed */
  long step_in_epoch;     /* steps completed within the epoch that is under way (0 at a boundary) */
  long global_step;       /* optimiser steps completed in total */
  int64_t samples_seen;
  int level;              /* multilevel stage, 0 = coarsest */
  double best_val_accuracy;
  int best_epoch;
  double lr;
  int recon_stride;       /* reversible fallback stride in force (0 = pure reversible) */
  /* Running totals of the epoch under way (all 0 at an epoch boundary), so that the history row
   * of an epoch that was interrupted and resumed equals the uninterrupted one: sums over its
   * steps of the cross-entropy (summed over samples), correct predictions, samples and the
   * regulariser; the worst reconstruction error; the wall seconds spent on it so far. Stored as
   * optional /progress attributes epoch_loss_sum, epoch_correct, epoch_count, epoch_reg_sum,
   * epoch_recon, epoch_seconds (float64; 0 when absent). */
  double epoch_loss_sum, epoch_correct, epoch_count, epoch_reg_sum, epoch_recon, epoch_seconds;
  int n_history;          /* rows in history */
  double *history;        /* [n_history][HN_HISTORY_COLS], malloc'ed (free with hn_progress_free) */
} hn_progress;

void hn_progress_free(hn_progress *p);

/* Optimiser state as plain arrays (io does not depend on train/). */
typedef struct {
  const char *kind;   /* "sgd" or "adam" */
  long step;
  hn_real *m1;        /* [n_params] */
  hn_real *m2;        /* [n_params] or NULL */
} hn_ckpt_optimizer;

/* Write a checkpoint of `m` (+ optimiser, progress, config text; each may be NULL) to `path`
 * atomically: the file is written as `path`.tmp, flushed, fsync'ed, renamed over `path`, and
 * the folder fsync'ed. On any failure the .tmp file is removed, an existing `path` is
 * untouched and the message says what failed (e.g. "no space left on device"). Only if the
 * final fsync of the folder fails is `path` already the new file (HN_EIO, the message says
 * so). A missing opt / prog / config_text leaves out /optimizer, /progress, /config.
 * opt->kind "adam" needs m1 and m2, "sgd" m1. Serial HDF5: call it on one rank. The file is
 * built in memory first (HDF5 core driver) and then written with write(2): the write needs
 * about the file's size in memory. */
int hn_ckpt_write(const char *path, const hn_model *m, const hn_ckpt_optimizer *opt, const hn_progress *prog,
                  const char *config_text);

/* Read a checkpoint: checks format, version, schema (every dataset present with the shape
 * the /model attributes imply) and checksums. Creates *m (hn_model_create) with the stored
 * spec and parameters. opt: when not NULL, opt->m1/m2 must point at [n_params] buffers and
 * are filled (opt->step set; HN_EFORMAT if kind differs from opt->kind). prog: when not NULL,
 * filled (history malloc'ed). config_text: when not NULL, *config_text = malloc'ed text.
 * Errors: HN_EIO (cannot open), HN_EFORMAT (not a checkpoint, wrong version, missing or
 * misshapen dataset, checksum failure, implausible sizes - checked before allocating).
 * A part that is asked for (opt, prog, config_text not NULL) but was not written (/optimizer,
 * /progress, /config absent because hn_ckpt_write got NULL) is HN_EFORMAT naming the group.
 * Only the datasets that are read have their checksums verified (the optimiser moments are not
 * read when opt is NULL); hn_ckpt_verify checks everything. On failure nothing is left
 * allocated (*m destroyed, history freed, *config_text NULL). The stored precision may differ
 * from the build's (HDF5 converts float32 <-> float64 on reading). */
int hn_ckpt_read(const char *path, hn_model *m, hn_ckpt_optimizer *opt, hn_progress *prog, char **config_text);

/* Only the stored spec (cheap; for compatibility checks before a resume). */
int hn_ckpt_read_spec(const char *path, hn_model_spec *spec);

/* The file name of the checkpoint after `global_step` steps: "ckpt-%010ld.h5". */
void hn_ckpt_name(long global_step, char *buf, size_t size);

/* Newest checkpoint in run_dir that reads back completely (hn_ckpt_read succeeds): newer
 * files that fail are reported with hn_log_warn (naming the file and the reason) and skipped.
 * Files ending in .tmp are never considered. Returns HN_OK with path set, or HN_EIO with
 * path = "" when there is none. */
int hn_ckpt_find_latest(const char *run_dir, char *path, size_t size);

/* Delete all but the newest `keep` ckpt-*.h5 files in run_dir (best.h5 is separate).
 * keep >= 0 (HN_EINVAL otherwise); .tmp files are left alone. HN_EIO if a file cannot be
 * deleted (the others are still tried). */
int hn_ckpt_prune(const char *run_dir, int keep);

/* --- additions: header information, full verification, inspection ------------------------ */

/* What a checkpoint holds, without reading its arrays (hn_ckpt_read_info). */
typedef struct {
  int format_version;
  int64_t n_params;
  char hamnet_version[32];  /* root attributes ("" when absent) */
  char git_hash[64];
  char precision[16];       /* "float" / "double": the precision of the build that wrote it */
  char param_type[16];      /* stored type of /model/K: "float32" / "float64" */
  int checksummed;          /* 1 if every array carries the fletcher32 filter */
  hn_model_spec spec;
  int has_optimizer;
  char optimizer_kind[8];   /* "sgd" / "adam" ("" without /optimizer) */
  long optimizer_step;
  int has_progress;
  int n_history;            /* rows of /progress/history */
  int has_config;
  int64_t file_bytes;
} hn_ckpt_info;

/* Header and schema of a checkpoint: everything hn_ckpt_read checks before it allocates
 * (format, version, attributes, every dataset's presence and shape), no array is read. */
int hn_ckpt_read_info(const char *path, hn_ckpt_info *info);

/* The complete check hn_ckpt_find_latest uses: schema, and every array (parameters, optimiser
 * moments, history) and the config text read back, which verifies every checksum. Streams the
 * arrays in blocks of at most a few MiB: allocates no model. */
int hn_ckpt_verify(const char *path);

/* `hamnet inspect FILE` for checkpoints (root format "hamnet-checkpoint"): verifies the file,
 * then prints the spec, n_params, precision / version / git hash, optimiser kind and step,
 * progress, the last history rows, min / max ||K_j||_F and the config text to `out`.
 * The _json variant prints one JSON object instead (NaN as null). */
int hn_ckpt_print_summary(const char *path, FILE *out);
int hn_ckpt_print_summary_json(const char *path, FILE *out);

/* --- testing only: fault injection in hn_ckpt_write ----------------------------------------
 * A spec is a comma-separated list of items ACTION_[before_]POINT[=SECONDS][@N]:
 *   ACTION  fail   the write fails there as if the system call had failed (HN_EIO, the .tmp
 *                  file removed, `path` untouched; the message says "injected")
 *           die    the process kills itself with SIGKILL there
 *           pause  sleeps SECONDS there (required), after printing to stderr
 *                  "hamnet: HAMNET_FAULT_CKPT: pausing S s before POINT of PATH (pid P)"
 *   POINT   create  right after the .tmp file is created (it is empty)
 *           write   when half of the file's bytes are written (.tmp half written)
 *           fsync   after all bytes are written, before the fsync
 *           rename  after the fsync, before the rename (.tmp complete)
 *           dirsync after the rename, before the folder is fsync'ed (fail: HN_EIO, although
 *                   `path` is already the new file)
 *   @N      only the N-th hn_ckpt_write call of this process (1-based); default every call.
 * Examples: "fail_write", "die_before_rename", "pause_before_rename=30@3".
 * The spec comes from the environment variable HAMNET_FAULT_CKPT, read at every write, unless
 * hn_ckpt_set_fault set one (NULL: back to the environment; "": no faults). A malformed spec
 * makes hn_ckpt_write fail with HN_EINVAL. */
void hn_ckpt_set_fault(const char *spec);

#endif
