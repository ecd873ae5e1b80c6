/* hamnet/config.h - the one configuration struct, read from an INI file.
 *
 * A run is described by one INI file (see the .ini files in jobs/ and README "Configuration") plus
 * `--set section.key=value` overrides. Parsing goes through libinih; every key is checked
 * as it is read, so an unknown section or key, a malformed or out-of-range value, or a
 * missing required key fails with a message naming the file, line, key and the allowed
 * values - before anything is trained or written.
 *
 * Every field below is one key; the key's name is the field's name. Defaults are in
 * hn_config_defaults() and in the README's table. */
#ifndef HAMNET_CONFIG_H
#define HAMNET_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hamnet/spec.h"

#define HN_PATH_MAX 1024

typedef enum { HN_OPT_SGD = 0, HN_OPT_ADAM = 1 } hn_optimizer_kind;
typedef enum { HN_SCHED_CONSTANT = 0, HN_SCHED_STEP = 1, HN_SCHED_COSINE = 2 } hn_schedule_kind;
typedef enum { HN_REV_AUTO = 0, HN_REV_ON = 1, HN_REV_OFF = 2 } hn_reversible_mode;
/* [parallel] exchange: the gradient exchange's engine (hamnet/parallel.h) */
typedef enum { HN_EXCHANGE_AUTO = 0, HN_EXCHANGE_SHARED = 1, HN_EXCHANGE_MPI = 2 } hn_exchange_kind;

typedef struct {
  /* [data] */
  struct {
    char train[HN_PATH_MAX]; /* required: training set (HDF5, see README "Data files") */
    char val[HN_PATH_MAX];   /* optional: validation set ("" = none) */
    double fraction;         /* (0, 1]: train on a seeded subset of this fraction */
  } data;

  /* [model] */
  struct {
    hn_arch arch;
    int width;
    int depth;
    double final_time;
    hn_activation activation;
    double gamma;
    hn_opening opening;
    char stages[128];        /* "16x4,32x4,64x4": a convolutional network (hamnet/convnet.h); "" = dense.
                              * Setting it also sets width (largest channel count) and depth (layers) */
    hn_norm norm;            /* convolutional networks: normalisation of the opening and connectives */
  } model;

  /* [train] */
  struct {
    int epochs;
    int batch_size; /* global: split over the ranks */
    hn_optimizer_kind optimizer;
    double lr;
    double momentum;      /* sgd */
    int nesterov;         /* sgd: 0/1 */
    double beta1, beta2;  /* adam */
    double adam_eps;
    hn_schedule_kind lr_schedule;
    int lr_step_epochs;   /* step: multiply lr by lr_step_factor every this many epochs */
    double lr_step_factor;
    double lr_min;        /* cosine: final lr */
    double alpha_t;       /* time smoothness of K_j, b_j */
    double alpha_w;       /* weight decay of opening and classifier */
    int levels;           /* multilevel: train at depth/2^(levels-1) first, doubling */
    uint64_t seed;
    double init_scale;    /* K_j ~ N(0, init_scale^2 / width) */
    hn_reversible_mode reversible;
    double reversible_tol;   /* relative reconstruction error that triggers the fallback */
    int reversible_stride;   /* fallback: keep exact states every this many layers */
    int threads;             /* OpenMP threads per rank; 0 = OMP_NUM_THREADS or all cores */
    hn_kernel_path kernel;   /* pass implementation: auto, narrow (tiles), wide (GEMMs); model.h */
    hn_conv_algorithm conv_algorithm; /* conv nets' 3x3 products: auto, winograd, im2col; spec.h */
    long max_steps;          /* stop after this many steps in total (0 = no limit) */
    int augment_crop;        /* images: random crops of the image zero-padded by this many pixels (0 = off) */
    int augment_flip;        /* images: 0/1: mirror left-right with probability 1/2 (hamnet/augment.h) */
  } train;

  /* [checkpoint] */
  struct {
    int every_epochs; /* 0 = only at the end */
    int every_steps;  /* 0 = off */
    int keep;         /* newest checkpoints kept */
    int best;         /* 0/1: also keep the best-validation checkpoint */
  } checkpoint;

  /* [diagnostics] */
  struct {
    int every_epochs; /* 0 = off */
    int spectra;      /* 0/1: ScaLAPACK spectra per layer */
    double band_low;  /* stability monitor: warn when accumulated amplification leaves */
    double band_high; /* [band_low, band_high] */
    int spectra_distributed_width; /* layers at least this wide: ScaLAPACK over all ranks */
    double max_overhead;           /* diagnostics time / training time allowed (0 = no limit) */
  } diagnostics;

  /* [parallel] */
  struct {
    int bucket_kb; /* gradient allreduce bucket size */
    int overlap;   /* 0/1: start bucket allreduces during the backward pass */
    hn_exchange_kind exchange; /* engine: auto (shared where it can run), shared, mpi */
  } parallel;

  char source[HN_PATH_MAX]; /* the file the config came from ("" for defaults) */
} hn_config;

/* Fill every field with its default (README "Configuration"). data.train stays "". */
void hn_config_defaults(hn_config *cfg);

/* Read an INI file over the current values of *cfg. On error returns HN_EINVAL (or HN_EIO
 * when the file cannot be read) with a message "FILE:LINE: [section] key = value: reason;
 * allowed: ...". Relative data paths are resolved against the config file's folder (and made
 * absolute). A key may appear once per file. On error *cfg is left unchanged. */
int hn_config_load(hn_config *cfg, const char *path);

/* Parse INI text (e.g. the config stored in a checkpoint); `label` names it in messages and
 * becomes cfg->source. Paths are kept exactly as written (text has no folder; the text written
 * by hn_config_to_ini after hn_config_load holds absolute paths). */
int hn_config_load_string(hn_config *cfg, const char *text, const char *label);

/* Apply one "section.key=value" override (the --set option). Relative paths are made absolute
 * against the current directory. Messages start with "--set section.key=value: ". */
int hn_config_set(hn_config *cfg, const char *assignment);

/* Cross-key checks after all sources are read (required keys, ranges that involve two keys:
 * depth divisible by 2^(levels-1), lr_min <= lr, band_low < band_high, reversible = on only for
 * reversible architectures) and every key's own range again (fields may have been set by code).
 * `for_training`: data.train is required. */
int hn_config_validate(const hn_config *cfg, int for_training);

/* The resolved configuration as INI text, every key, in a fixed order (stored in
 * checkpoints, printed by `hamnet train --dry-run`). Caller frees with free(). NULL on OOM. */
char *hn_config_to_ini(const hn_config *cfg);

/* The model part as a spec (n_features / n_classes left 0: they come from the data). */
hn_model_spec hn_config_model_spec(const hn_config *cfg);

/* The value of one key ("train.lr") as it is written in an INI file, into buf[size].
 * HN_EINVAL for an unknown key or a buffer that is too small. */
int hn_config_get(const hn_config *cfg, const char *key, char *buf, size_t size);

/* Number of keys whose values differ between a and b (doubles: bit for bit; `source` is not a
 * key). With `out`, prints one line "[section] key: A -> B" per difference (e.g. on resume). */
int hn_config_diff(const hn_config *a, const hn_config *b, FILE *out);

/* Print every key as a Markdown table (section, key, default, allowed values, meaning) - the
 * README's "Configuration" table is this output. */
void hn_config_print_keys(FILE *out);

const char *hn_optimizer_name(hn_optimizer_kind k);
const char *hn_schedule_name(hn_schedule_kind k);
const char *hn_reversible_name(hn_reversible_mode m);
const char *hn_exchange_kind_name(hn_exchange_kind k);

#endif
