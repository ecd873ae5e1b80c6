/* config.c - the configuration: one key table drives parsing, defaults, validation, the INI
 * writer and the documentation (see hamnet/config.h).
 *
 * Reading goes through libinih (ini_parse_stream with our own line reader). The reader feeds
 * libinih one physical line at a time and counts lines, so the handler always knows the
 * current line number (Debian builds libinih with INI_HANDLER_LINENO 0); it also keeps the raw
 * text of the line, which lets us
 *  - describe syntax errors (lines libinih rejects without calling the handler),
 *  - reject indented lines that libinih would silently glue onto the previous value,
 *  - accept lines longer than libinih's fixed line buffer (INI_MAX_LINE, 200 by default):
 *    such a line reaches libinih truncated, and the handler re-reads the value from the raw
 *    line with libinih's own rules (first '=' or ':', inline comment " ;", trimmed).
 * Values are parsed into a copy of the config, which replaces the caller's only on success. */
#include "hamnet/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "hamnet/error.h"

/* Enum fields are stored through an int pointer. */
_Static_assert(sizeof(hn_arch) == sizeof(int), "enum size");
_Static_assert(sizeof(hn_exchange_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(hn_activation) == sizeof(int), "enum size");
_Static_assert(sizeof(hn_opening) == sizeof(int), "enum size");
_Static_assert(sizeof(hn_optimizer_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(hn_schedule_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(hn_reversible_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(hn_kernel_path) == sizeof(int), "enum size");
_Static_assert(sizeof(hn_norm) == sizeof(int), "enum size");

/* ---------------------------------------------------------------------------------------- */
/* Names                                                                                    */

static const char *const optimizer_names[] = {"sgd", "adam"};
static const char *const schedule_names[] = {"constant", "step", "cosine"};
static const char *const reversible_names[] = {"auto", "on", "off"};
static const char *const exchange_names[] = {"auto", "shared", "mpi"};
#define N_OPTIMIZERS ((int)(sizeof optimizer_names / sizeof optimizer_names[0]))
#define N_SCHEDULES ((int)(sizeof schedule_names / sizeof schedule_names[0]))
#define N_REVERSIBLE ((int)(sizeof reversible_names / sizeof reversible_names[0]))
#define N_EXCHANGE ((int)(sizeof exchange_names / sizeof exchange_names[0]))

const char *hn_optimizer_name(hn_optimizer_kind k) {
  return ((int)k >= 0 && (int)k < N_OPTIMIZERS) ? optimizer_names[k] : "?";
}
const char *hn_schedule_name(hn_schedule_kind k) {
  return ((int)k >= 0 && (int)k < N_SCHEDULES) ? schedule_names[k] : "?";
}
const char *hn_reversible_name(hn_reversible_mode m) {
  return ((int)m >= 0 && (int)m < N_REVERSIBLE) ? reversible_names[m] : "?";
}

const char *hn_exchange_kind_name(hn_exchange_kind k) {
  return ((int)k >= 0 && (int)k < N_EXCHANGE) ? exchange_names[k] : "?";
}

static const char *arch_name_i(int i) { return hn_arch_name((hn_arch)i); }
static const char *activation_name_i(int i) { return hn_activation_name((hn_activation)i); }
static const char *opening_name_i(int i) { return hn_opening_name((hn_opening)i); }
static const char *optimizer_name_i(int i) { return hn_optimizer_name((hn_optimizer_kind)i); }
static const char *schedule_name_i(int i) { return hn_schedule_name((hn_schedule_kind)i); }
static const char *reversible_name_i(int i) { return hn_reversible_name((hn_reversible_mode)i); }
static const char *exchange_name_i(int i) { return hn_exchange_kind_name((hn_exchange_kind)i); }
static const char *kernel_path_name_i(int i) { return hn_kernel_path_name((hn_kernel_path)i); }
static const char *norm_name_i(int i) { return hn_norm_name((hn_norm)i); }
static const char *conv_algorithm_name_i(int i) { return hn_conv_algorithm_name((hn_conv_algorithm)i); }

/* ---------------------------------------------------------------------------------------- */
/* The key table                                                                            */

typedef enum { T_INT, T_LONG, T_U64, T_DOUBLE, T_BOOL, T_ENUM, T_PATH, T_STAGES } key_type;

enum {
  F_MIN_OPEN = 1u << 0, /* double: min itself is not allowed */
  F_MAX_OPEN = 1u << 1, /* double: max itself is not allowed */
  F_REQUIRED = 1u << 2  /* path: required for training */
};

typedef struct {
  const char *section;
  const char *name;
  key_type type;
  size_t offset;
  long long imin, imax; /* T_INT, T_LONG */
  double dmin, dmax;    /* T_DOUBLE (dmax may be INFINITY) */
  unsigned flags;
  const char *(*enum_name)(int); /* T_ENUM */
  int enum_count;
  const char *def; /* default, as it would be written in a file */
  const char *help;
} key_desc;

#define OFF(sec, fld) offsetof(hn_config, sec.fld)
#define K_INT(sec, fld, lo, hi, def, help)                                                                   \
  { #sec, #fld, T_INT, OFF(sec, fld), lo, hi, 0, 0, 0, NULL, 0, def, help }
#define K_LONG(sec, fld, lo, hi, def, help)                                                                  \
  { #sec, #fld, T_LONG, OFF(sec, fld), lo, hi, 0, 0, 0, NULL, 0, def, help }
#define K_U64(sec, fld, def, help)                                                                           \
  { #sec, #fld, T_U64, OFF(sec, fld), 0, 0, 0, 0, 0, NULL, 0, def, help }
#define K_DBL(sec, fld, lo, hi, flags, def, help)                                                            \
  { #sec, #fld, T_DOUBLE, OFF(sec, fld), 0, 0, lo, hi, flags, NULL, 0, def, help }
#define K_BOOL(sec, fld, def, help)                                                                          \
  { #sec, #fld, T_BOOL, OFF(sec, fld), 0, 1, 0, 0, 0, NULL, 0, def, help }
#define K_ENUM(sec, fld, namefn, count, def, help)                                                           \
  { #sec, #fld, T_ENUM, OFF(sec, fld), 0, 0, 0, 0, 0, namefn, count, def, help }
#define K_PATH(sec, fld, flags, def, help)                                                                   \
  { #sec, #fld, T_PATH, OFF(sec, fld), 0, 0, 0, 0, flags, NULL, 0, def, help }
/* [model] stages: a list of CHANNELSxLAYERS (hn_stages_parse); setting it also sets model.width and
 * model.depth, which it determines */
#define K_STAGES(sec, fld, def, help)                                                                        \
  { #sec, #fld, T_STAGES, OFF(sec, fld), 0, 0, 0, 0, 0, NULL, 0, def, help }

/* clang-format off */
static const key_desc keys[] = {
    /* [data] */
    K_PATH(data, train, F_REQUIRED, "", "Training set (HDF5, see \"Data files\"); required for training"),
    K_PATH(data, val, 0, "", "Validation set (HDF5); empty: no validation"),
    K_DBL(data, fraction, 0.0, 1.0, F_MIN_OPEN, "1",
          "Train on a seeded random subset of this fraction of the training set"),

    /* [model] */
    K_ENUM(model, arch, arch_name_i, HN_ARCH_COUNT, "hamiltonian",
          "Layer type (forward Euler resnet / antisym, Verlet hamiltonian, second-order leapfrog)"),
    K_INT(model, width, 1, 65536, "8", "Width n of every layer (number of channels)"),
    K_INT(model, depth, 1, 1000000, "64", "Number of layers N"),
    K_DBL(model, final_time, 0.0, INFINITY, F_MIN_OPEN, "5", "Final time T; the step is h = T / depth"),
    K_ENUM(model, activation, activation_name_i, HN_ACT_COUNT, "tanh", "Activation function"),
    K_DBL(model, gamma, 0.0, INFINITY, 0, "0.01", "Damping of the antisym architecture (K - K^T - gamma I)"),
    K_ENUM(model, opening, opening_name_i, HN_OPEN_COUNT, "pad",
          "Opening layer: pad = [x; 0] (needs width >= features), dense = s(K_in x + b_in); convolutional "
          "networks always open with a 3x3 convolution"),
    K_STAGES(model, stages, "",
             "Convolutional network on images: the stages as CHANNELSxLAYERS at halving resolutions (3x3 "
             "convolutions; 1x1 convolution + 2x2 average pooling between stages; README \"Convolutional "
             "networks\"); sets width (largest channel count) and depth (layers); empty = the dense network"),
    K_ENUM(model, norm, norm_name_i, HN_NORM_COUNT, "batch",
          "Convolutional networks: normalisation of the opening and connective layers (batch normalisation, "
          "or none: a bias)"),

    /* [train] */
    K_INT(train, epochs, 1, INT_MAX, "50", "Number of passes over the training set"),
    K_INT(train, batch_size, 1, INT_MAX, "64", "Global mini-batch size (split over the ranks)"),
    K_ENUM(train, optimizer, optimizer_name_i, N_OPTIMIZERS, "adam", "Optimizer"),
    K_DBL(train, lr, 0.0, INFINITY, F_MIN_OPEN, "0.01", "Learning rate (initial, for schedules)"),
    K_DBL(train, momentum, 0.0, 1.0, F_MAX_OPEN, "0.9", "sgd: momentum"),
    K_BOOL(train, nesterov, "0", "sgd: Nesterov momentum"),
    K_DBL(train, beta1, 0.0, 1.0, F_MAX_OPEN, "0.9", "adam: decay of the first moment"),
    K_DBL(train, beta2, 0.0, 1.0, F_MAX_OPEN, "0.999", "adam: decay of the second moment"),
    K_DBL(train, adam_eps, 0.0, INFINITY, F_MIN_OPEN, "1e-8", "adam: denominator offset"),
    K_ENUM(train, lr_schedule, schedule_name_i, N_SCHEDULES, "constant", "Learning-rate schedule"),
    K_INT(train, lr_step_epochs, 1, INT_MAX, "10",
          "step: multiply lr by lr_step_factor every this many epochs"),
    K_DBL(train, lr_step_factor, 0.0, 1.0, F_MIN_OPEN, "0.5", "step: factor applied to lr"),
    K_DBL(train, lr_min, 0.0, INFINITY, 0, "0", "cosine: final learning rate (at most lr)"),
    K_DBL(train, alpha_t, 0.0, INFINITY, 0, "1e-6",
          "Weight of the time-smoothness penalty on K_j, b_j (alpha_t/(2h) sum ||theta_{j+1}-theta_j||^2); "
          "at the i.i.d. initialisation it starts near alpha_t depth^2 width init_scale^2 / final_time"),
    K_DBL(train, alpha_w, 0.0, INFINITY, 0, "1e-4", "Weight decay of the opening and the classifier"),
    K_INT(train, levels, 1, 30, "1", "Multilevel training: start at depth / 2^(levels-1), double each level"),
    K_U64(train, seed, "1", "Seed of every random stream (initialization, shuffling, subsets)"),
    K_DBL(train, init_scale, 0.0, INFINITY, 0, "1", "Initial weights K_j ~ N(0, init_scale^2 / width)"),
    K_ENUM(train, reversible, reversible_name_i, N_REVERSIBLE, "auto",
          "Backward pass by recomputing states (auto: when the architecture allows it)"),
    K_DBL(train, reversible_tol, 0.0, INFINITY, F_MIN_OPEN, "1e-3",
          "Relative reconstruction error that triggers the stored-state fallback"),
    K_INT(train, reversible_stride, 1, INT_MAX, "16", "Fallback: keep exact states every this many layers"),
    K_INT(train, threads, 0, 65536, "0", "OpenMP threads per rank; 0 = OMP_NUM_THREADS or all cores"),
    K_ENUM(train, kernel, kernel_path_name_i, HN_KERNEL_COUNT, "auto",
          "Pass implementation: narrow = tiles of samples carried through all layers (small widths), "
          "wide = layer by layer with GEMMs; auto: narrow for hamiltonian/leapfrog of width <= 64 "
          "(reversible, or stored with several threads) or <= 16 (stored, one thread)"),
    K_ENUM(train, conv_algorithm, conv_algorithm_name_i, HN_CONV_COUNT, "auto",
          "Convolutional networks: how the 3x3 convolutions are computed - winograd = Winograd F(4x4,3x3) "
          "(4x fewer multiplications), im2col = im2col + GEMM; auto: winograd for maps of at least 4x4 while "
          "the transformed kernels take at most 256 MiB"),
    K_LONG(train, max_steps, 0, LONG_MAX, "0", "Stop after this many optimizer steps in total; 0 = no limit"),
    K_INT(train, augment_crop, 0, 64, "0",
          "Images: train on random crops of each image zero-padded by this many pixels per side (a shift in "
          "each direction, from the stream (seed, epoch, sample)); 0 = off"),
    K_BOOL(train, augment_flip, "0", "Images: mirror each training image left-right with probability 1/2 (from "
           "the same stream)"),

    /* [checkpoint] */
    K_INT(checkpoint, every_epochs, 0, INT_MAX, "1",
          "Checkpoint every this many epochs; 0 = only at the end"),
    K_INT(checkpoint, every_steps, 0, INT_MAX, "0", "Also checkpoint every this many steps; 0 = off"),
    K_INT(checkpoint, keep, 1, INT_MAX, "3", "Number of newest checkpoints kept"),
    K_BOOL(checkpoint, best, "1", "Also keep the checkpoint with the best validation accuracy"),

    /* [diagnostics] */
    K_INT(diagnostics, every_epochs, 0, INT_MAX, "1",
          "Stability diagnostics every this many epochs; 0 = off"),
    K_BOOL(diagnostics, spectra, "1", "Compute per-layer eigenvalue spectra (ScaLAPACK)"),
    K_DBL(diagnostics, band_low, 0.0, INFINITY, F_MIN_OPEN, "1e-3",
          "Warn when the accumulated amplification falls below this"),
    K_DBL(diagnostics, band_high, 0.0, INFINITY, F_MIN_OPEN, "1e3",
          "Warn when the accumulated amplification rises above this"),
    K_INT(diagnostics, spectra_distributed_width, 1, 65536, "256",
          "Layers at least this wide are distributed block-cyclically over all ranks for the spectra; "
          "narrower ones go whole to one rank each"),
    K_DBL(diagnostics, max_overhead, 0.0, 1.0, F_MAX_OPEN, "0.03",
          "Time budget: a pass drops its spectra, or is skipped, when diagnostics would take more than this "
          "fraction of the training time (the first pass always runs); 0 = every pass in full"),

    /* [parallel] */
    K_INT(parallel, bucket_kb, 1, 1048576, "1024", "Gradient allreduce bucket size in KiB"),
    K_BOOL(parallel, overlap, "1", "Start bucket allreduces during the backward pass"),
    K_ENUM(parallel, exchange, exchange_name_i, N_EXCHANGE, "auto",
           "Gradient exchange engine: shared (the ranks of a node sum out of each other's memory; across nodes "
           "MPI_Iallreduce), mpi (MPI_Iallreduce between all ranks), auto (shared where it can run)"),
};
/* clang-format on */
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

static const char *const sections[] = {"data", "model", "train", "checkpoint", "diagnostics", "parallel"};
#define N_SECTIONS ((int)(sizeof sections / sizeof sections[0]))

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                            */

static void *field(hn_config *cfg, const key_desc *k) { return (char *)cfg + k->offset; }
static const void *cfield(const hn_config *cfg, const key_desc *k) { return (const char *)cfg + k->offset; }

/* Bounded string builder: never overflows, remembers truncation. */
typedef struct {
  char *buf;
  size_t size, len;
} sbuf;

static void sb_add(sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *sb, const char *fmt, ...) {
  if (sb->size == 0 || sb->len >= sb->size - 1) {
    sb->len = sb->size ? sb->size - 1 : 0;
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(sb->buf + sb->len, sb->size - sb->len, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  sb->len += (size_t)n;
  if (sb->len >= sb->size)
    sb->len = sb->size - 1;
}

/* Optimal string alignment distance (Levenshtein + adjacent transpositions), ignoring case;
 * capped: strings longer than 63 characters count as far away. */
static int edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 63 || m > 63)
    return 1000;
  int d[64][64];
  for (size_t i = 0; i <= n; i++)
    d[i][0] = (int)i;
  for (size_t j = 0; j <= m; j++)
    d[0][j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    for (size_t j = 1; j <= m; j++) {
      int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
      int cost = ca != cb;
      int best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < best)
        best = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
          tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[n][m];
}

static const char *closest(const char *s, const char *const *cands, int count);

/* Whether the section suggested for `s` is `sec` (then "is a key of [sec]" says nothing new). */
static int guess_is(const char *s, const char *sec) {
  const char *g = closest(s, sections, N_SECTIONS);
  return s[0] && g && strcmp(g, sec) == 0;
}

static int find_section(const char *s) {
  for (int i = 0; i < N_SECTIONS; i++)
    if (strcmp(s, sections[i]) == 0)
      return i;
  return -1;
}

static int find_key(const char *section, const char *name) {
  for (int i = 0; i < N_KEYS; i++)
    if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
      return i;
  return -1;
}

/* Closest of `count` candidates within edit distance 2 (NULL if none). */
static const char *closest(const char *s, const char *const *cands, int count) {
  const char *best = NULL;
  int bestd = 3;
  for (int i = 0; i < count; i++) {
    int d = edit_distance(s, cands[i]);
    if (d < bestd && d < (int)strlen(cands[i])) {
      bestd = d;
      best = cands[i];
    }
  }
  return best;
}

/* "1e+03" -> "1e3", "1e-08" -> "1e-8" (same value, easier to read). */
static void tidy_exponent(char *buf) {
  char *e = strchr(buf, 'e');
  if (!e)
    return;
  char *d = e + 1;
  if (*d == '+')
    memmove(d, d + 1, strlen(d + 1) + 1);
  else if (*d == '-')
    d++;
  while (d[0] == '0' && d[1] != '\0')
    memmove(d, d + 1, strlen(d + 1) + 1);
}

static void fmt_double(double v, char *buf, size_t size) {
  /* The shortest representation that reads back to the same double (at most %.17g). */
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    tidy_exponent(buf);
    if (strtod(buf, NULL) == v)
      return;
  }
  snprintf(buf, size, "%.17g", v);
}

/* The value of a key as it is written in an INI file. */
static void fmt_value(const hn_config *cfg, const key_desc *k, char *buf, size_t size) {
  const void *p = cfield(cfg, k);
  switch (k->type) {
  case T_INT: snprintf(buf, size, "%d", *(const int *)p); break;
  case T_LONG: snprintf(buf, size, "%ld", *(const long *)p); break;
  case T_U64: snprintf(buf, size, "%" PRIu64, *(const uint64_t *)p); break;
  case T_DOUBLE: fmt_double(*(const double *)p, buf, size); break;
  case T_BOOL: snprintf(buf, size, "%d", *(const int *)p); break;
  case T_ENUM: {
    int v = *(const int *)p;
    if (v >= 0 && v < k->enum_count)
      snprintf(buf, size, "%s", k->enum_name(v));
    else
      snprintf(buf, size, "%d", v);
    break;
  }
  case T_STAGES: snprintf(buf, size, "%s", (const char *)p); break;
  case T_PATH: {
    const char *s = (const char *)p;
    size_t n = strnlen(s, HN_PATH_MAX);
    /* A value wrapped in double quotes loses them when read: protect such a path. */
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
      snprintf(buf, size, "\"%.*s\"", (int)n, s);
    else
      snprintf(buf, size, "%.*s", (int)n, s);
    break;
  }
  }
}

static void fmt_range_double(const key_desc *k, sbuf *sb) {
  char lo[40], hi[40];
  fmt_double(k->dmin, lo, sizeof lo);
  fmt_double(k->dmax, hi, sizeof hi);
  if (isinf(k->dmax))
    sb_add(sb, "real number %s %s", (k->flags & F_MIN_OPEN) ? ">" : ">=", lo);
  else
    sb_add(sb, "real number in %c%s, %s%c", (k->flags & F_MIN_OPEN) ? '(' : '[', lo, hi,
           (k->flags & F_MAX_OPEN) ? ')' : ']');
}

/* What a key accepts, e.g. "integer 1..30", "one of: sgd, adam". */
static void describe_allowed(const key_desc *k, char *buf, size_t size) {
  sbuf sb = {buf, size, 0};
  if (size)
    buf[0] = '\0';
  switch (k->type) {
  case T_INT:
  case T_LONG: {
    long long top = k->type == T_INT ? INT_MAX : LONG_MAX;
    if (k->imax >= top)
      sb_add(&sb, "integer >= %lld", k->imin);
    else
      sb_add(&sb, "integer %lld..%lld", k->imin, k->imax);
    break;
  }
  case T_U64: sb_add(&sb, "integer 0..%" PRIu64, UINT64_MAX); break;
  case T_DOUBLE: fmt_range_double(k, &sb); break;
  case T_BOOL: sb_add(&sb, "0/1, true/false, yes/no, on/off"); break;
  case T_ENUM:
    sb_add(&sb, "one of: ");
    for (int i = 0; i < k->enum_count; i++)
      sb_add(&sb, "%s%s", i ? ", " : "", k->enum_name(i));
    break;
  case T_STAGES:
    sb_add(&sb, "comma-separated CHANNELSxLAYERS (channels 1..4096, layers 1..100000, at most %d stages), e.g. "
           "16x4,32x4,64x4; empty: the dense network", HN_MAX_STAGES);
    break;
  case T_PATH:
    sb_add(&sb,
           "path of at most %d characters (relative: to the config file's folder; with --set: to the current "
           "directory)",
           HN_PATH_MAX - 1);
    break;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                   */

static int is_space(char c) { return isspace((unsigned char)c) != 0; }

/* A relative path joined to `base` (NULL or "": kept as written), with "." components and
 * repeated slashes removed (".." is kept: it is not lexical under symlinks). Absolute paths are
 * kept as written. */
static int resolve_path(const char *base, const char *value, char *out, size_t size, char *why,
                        size_t whysize) {
  char tmp[2 * HN_PATH_MAX + 2];
  if (value[0] == '\0') {
    out[0] = '\0';
    return 0;
  }
  if (value[0] == '/' || !base || !base[0]) {
    /* Absolute, or nothing to resolve against: kept exactly as written. */
    size_t n = strlen(value);
    if (n >= size || n >= HN_PATH_MAX) {
      snprintf(why, whysize, "path too long (%zu characters; at most %d)", n, HN_PATH_MAX - 1);
      return -1;
    }
    memcpy(out, value, n + 1);
    return 0;
  }
  snprintf(tmp, sizeof tmp, "%s/%s", base, value);
  /* Normalize in place: drop "." components and empty components. */
  char norm[sizeof tmp];
  size_t o = 0;
  const char *s = tmp;
  int absolute = s[0] == '/';
  if (absolute)
    norm[o++] = '/';
  while (*s) {
    while (*s == '/')
      s++;
    const char *e = s;
    while (*e && *e != '/')
      e++;
    size_t len = (size_t)(e - s);
    if (len == 0)
      break;
    if (!(len == 1 && s[0] == '.')) {
      if (o > 0 && norm[o - 1] != '/')
        norm[o++] = '/';
      memcpy(norm + o, s, len);
      o += len;
    }
    s = e;
  }
  if (o == 0)
    norm[o++] = '.';
  norm[o] = '\0';
  if (o >= size || o >= HN_PATH_MAX) {
    snprintf(why, whysize, "path too long (%zu characters after resolving; at most %d)", o, HN_PATH_MAX - 1);
    return -1;
  }
  memcpy(out, norm, o + 1);
  return 0;
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

static const char *comment_hint(const char *s) {
  return strchr(s, '#') ? " ('#' starts a comment only at the beginning of a line; after a value use ' ;')"
                        : "";
}

/* Check a numeric value against a key's range. */
static int in_range_double(const key_desc *k, double v) {
  if (!isfinite(v))
    return 0;
  if ((k->flags & F_MIN_OPEN) ? !(v > k->dmin) : !(v >= k->dmin))
    return 0;
  if (isinf(k->dmax))
    return 1;
  return (k->flags & F_MAX_OPEN) ? v < k->dmax : v <= k->dmax;
}

/* Parse `s` into the key's field of *cfg. On failure writes the reason to `why` (without the
 * allowed values, which the caller appends) and returns -1. `base`: folder that relative paths
 * are resolved against (NULL: keep them as written). */
static int parse_value(hn_config *cfg, const key_desc *k, const char *s, const char *base, char *why,
                       size_t whysize) {
  char unq[HN_PATH_MAX + 8];
  size_t n = strlen(s);
  /* One pair of surrounding double quotes is removed. */
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
    if (n - 2 >= sizeof unq) {
      snprintf(why, whysize, "value too long (%zu characters)", n - 2);
      return -1;
    }
    memcpy(unq, s + 1, n - 2);
    unq[n - 2] = '\0';
    s = unq;
    n -= 2;
  }
  void *p = field(cfg, k);
  if (k->type != T_PATH && k->type != T_STAGES && n == 0) {
    snprintf(why, whysize, "empty value");
    return -1;
  }
  switch (k->type) {
  case T_INT:
  case T_LONG: {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || is_space(s[0])) {
      snprintf(why, whysize, "not an integer%s", comment_hint(s));
      return -1;
    }
    if (errno == ERANGE || v < k->imin || v > k->imax) {
      snprintf(why, whysize, "out of range");
      return -1;
    }
    if (k->type == T_INT)
      *(int *)p = (int)v;
    else
      *(long *)p = (long)v;
    return 0;
  }
  case T_U64: {
    char *end = NULL;
    errno = 0;
    if (s[0] == '-') {
      snprintf(why, whysize, "out of range");
      return -1;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || is_space(s[0])) {
      snprintf(why, whysize, "not an integer%s", comment_hint(s));
      return -1;
    }
    if (errno == ERANGE || v > UINT64_MAX) {
      snprintf(why, whysize, "out of range");
      return -1;
    }
    *(uint64_t *)p = (uint64_t)v;
    return 0;
  }
  case T_DOUBLE: {
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || is_space(s[0])) {
      snprintf(why, whysize, "not a number%s", comment_hint(s));
      return -1;
    }
    /* Overflow gives +-inf; underflow (ERANGE with a tiny finite result) is accepted. */
    if (!isfinite(v)) {
      snprintf(why, whysize, "not a finite number");
      return -1;
    }
    if (!in_range_double(k, v)) {
      snprintf(why, whysize, "out of range");
      return -1;
    }
    *(double *)p = v;
    return 0;
  }
  case T_BOOL: {
    int v;
    if (parse_bool(s, &v) != 0) {
      snprintf(why, whysize, "not a boolean%s", comment_hint(s));
      return -1;
    }
    *(int *)p = v;
    return 0;
  }
  case T_ENUM: {
    const char *names[64];
    int count = k->enum_count < 64 ? k->enum_count : 64;
    for (int i = 0; i < count; i++) {
      names[i] = k->enum_name(i);
      if (strcmp(s, names[i]) == 0) {
        *(int *)p = i;
        return 0;
      }
    }
    const char *guess = closest(s, names, count);
    if (guess)
      snprintf(why, whysize, "unknown name (did you mean '%s'?)", guess);
    else
      snprintf(why, whysize, "unknown name%s", comment_hint(s));
    return -1;
  }
  case T_PATH: {
    for (const char *c = s; *c; c++) {
      if ((unsigned char)*c < 0x20 || *c == 0x7f) {
        snprintf(why, whysize, "contains a control character");
        return -1;
      }
      if (*c == ';' && (c == s || is_space(c[-1]))) { /* written back as "key = ;...": a comment */
        snprintf(why, whysize, "starts with ';' or contains ' ;', which starts a comment in an INI file");
        return -1;
      }
    }
    if (n > 0 && (is_space(s[0]) || is_space(s[n - 1]))) {
      snprintf(why, whysize, "starts or ends with whitespace");
      return -1;
    }
    if (n >= HN_PATH_MAX) {
      snprintf(why, whysize, "path too long (%zu characters; at most %d)", n, HN_PATH_MAX - 1);
      return -1;
    }
    return resolve_path(base, s, (char *)p, HN_PATH_MAX, why, whysize);
  }
  case T_STAGES: {
    int count, ch[HN_MAX_STAGES], ly[HN_MAX_STAGES];
    if (hn_stages_parse(s, &count, ch, ly, why, whysize) != 0)
      return -1;
    hn_stages_format(count, ch, ly, (char *)p, sizeof cfg->model.stages);
    if (count > 0) { /* the stages determine width and depth */
      int depth = 0, width = 0;
      for (int i = 0; i < count; i++) {
        depth += ly[i];
        width = ch[i] > width ? ch[i] : width;
      }
      if (depth > 1000000) {
        snprintf(why, whysize, "%d layers in all (at most 1000000)", depth);
        return -1;
      }
      cfg->model.depth = depth;
      cfg->model.width = width;
    }
    return 0;
  }
  }
  snprintf(why, whysize, "internal error: bad key type");
  return -1;
}

/* Whether the stored value of a key is allowed (for hn_config_validate). */
static int value_ok(const hn_config *cfg, const key_desc *k, char *why, size_t whysize) {
  const void *p = cfield(cfg, k);
  switch (k->type) {
  case T_INT:
    if (*(const int *)p < k->imin || *(const int *)p > k->imax)
      break;
    return 1;
  case T_LONG:
    if (*(const long *)p < k->imin || *(const long *)p > k->imax)
      break;
    return 1;
  case T_U64: return 1;
  case T_DOUBLE:
    if (!isfinite(*(const double *)p)) {
      snprintf(why, whysize, "not a finite number");
      return 0;
    }
    if (!in_range_double(k, *(const double *)p))
      break;
    return 1;
  case T_BOOL:
    if (*(const int *)p != 0 && *(const int *)p != 1)
      break;
    return 1;
  case T_ENUM:
    if (*(const int *)p < 0 || *(const int *)p >= k->enum_count) {
      snprintf(why, whysize, "unknown value");
      return 0;
    }
    return 1;
  case T_PATH:
    if (memchr(p, '\0', HN_PATH_MAX) == NULL) {
      snprintf(why, whysize, "not terminated within %d characters", HN_PATH_MAX);
      return 0;
    }
    return 1;
  case T_STAGES: {
    int count, ch[HN_MAX_STAGES], ly[HN_MAX_STAGES];
    if (memchr(p, '\0', sizeof cfg->model.stages) == NULL) {
      snprintf(why, whysize, "not terminated");
      return 0;
    }
    return hn_stages_parse((const char *)p, &count, ch, ly, why, whysize) == 0;
  }
  }
  snprintf(why, whysize, "out of range");
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Applying one key = value                                                                 */

/* `s` for a message: at most 200 characters, longer text is cut with "...". */
static const char *shorten(const char *s, char *buf, size_t size) {
  const size_t max = 200;
  if (strlen(s) <= max || size < max + 4)
    return s;
  snprintf(buf, size, "%.*s...", (int)max, s);
  return buf;
}

/* `where`: "FILE:LINE" or "--set ARG". `seen_line`: per-key line of the first assignment in
 * this source (NULL: no duplicate check). Returns HN_OK or HN_EINVAL with the message set. */
static int apply(hn_config *cfg, const char *where, const char *section_in, const char *name,
                 const char *value, const char *base, int *seen_line, int lineno) {
  const char *full_value = value;
  char section[64];
  /* "[ model ]" is accepted: trim the section name. */
  while (is_space(*section_in))
    section_in++;
  snprintf(section, sizeof section, "%s", section_in);
  for (size_t n = strlen(section); n > 0 && is_space(section[n - 1]); n--)
    section[n - 1] = '\0';

  char allowed[512];
  sbuf sb = {allowed, sizeof allowed, 0};
  allowed[0] = '\0';
  char shortval[256];
  value = shorten(value, shortval, sizeof shortval);

  /* A known key name in another section gets a hint. */
  const char *home = NULL;
  for (int i = 0; i < N_KEYS; i++)
    if (strcmp(keys[i].name, name) == 0) {
      home = keys[i].section;
      break;
    }

  int si = find_section(section);
  if (si < 0) {
    for (int i = 0; i < N_SECTIONS; i++)
      sb_add(&sb, "%s[%s]", i ? ", " : "", sections[i]);
    char hint[160] = "";
    if (section[0]) {
      const char *guess = closest(section, sections, N_SECTIONS);
      if (guess)
        snprintf(hint, sizeof hint, " (did you mean [%s]?)", guess);
    }
    char homehint[120] = "";
    if (home && !(guess_is(section, home)))
      snprintf(homehint, sizeof homehint, " ('%s' is a key of [%s])", name, home);
    if (!section[0])
      return hn_fail(HN_EINVAL, "%s: %s = %s: key outside any section%s; allowed sections: %s", where, name,
                     value, homehint, allowed);
    return hn_fail(HN_EINVAL, "%s: [%s] %s = %s: unknown section [%s]%s%s; allowed sections: %s", where,
                   section, name, value, section, hint, homehint, allowed);
  }

  int ki = find_key(section, name);
  if (ki < 0) {
    const char *names[N_KEYS];
    int count = 0;
    for (int i = 0; i < N_KEYS; i++)
      if (strcmp(keys[i].section, section) == 0) {
        sb_add(&sb, "%s%s", count ? ", " : "", keys[i].name);
        names[count++] = keys[i].name;
      }
    const char *guess = closest(name, names, count);
    char hint[160] = "";
    if (guess)
      snprintf(hint, sizeof hint, " (did you mean '%s'?)", guess);
    else if (home)
      snprintf(hint, sizeof hint, " ('%s' is a key of [%s])", name, home);
    return hn_fail(HN_EINVAL, "%s: [%s] %s = %s: unknown key '%s' in [%s]%s; allowed: %s", where, section,
                   name, value, name, section, hint, allowed);
  }

  const key_desc *k = &keys[ki];
  if (seen_line) {
    if (seen_line[ki] > 0)
      return hn_fail(
          HN_EINVAL,
          "%s: [%s] %s = %s: duplicate key (already set on line %d); allowed: each key once per file", where,
          section, name, value, seen_line[ki]);
    seen_line[ki] = lineno;
  }

  char why[256];
  if (parse_value(cfg, k, full_value, base, why, sizeof why) != 0) {
    describe_allowed(k, allowed, sizeof allowed);
    return hn_fail(HN_EINVAL, "%s: [%s] %s = %s: %s; allowed: %s", where, section, name, value, why, allowed);
  }
  return HN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* INI parsing through libinih                                                              */

typedef struct {
  /* input */
  const char *text;
  size_t len, pos;
  const char *label; /* name in messages */
  const char *base;  /* folder for relative paths (NULL: keep) */
  hn_config *cfg;    /* the copy being filled */
  /* current line */
  int lineno;
  const char *line; /* raw text of the current line (no newline) */
  size_t line_len;
  size_t delivered; /* how much of it libinih received */
  /* result */
  int err_line; /* line of the first handler error (0: none) */
  int err_status;
  int seen_line[N_KEYS];
} parse_ctx;

static char *line_reader(char *str, int num, void *stream) {
  parse_ctx *c = stream;
  if (c->pos >= c->len || num < 3)
    return NULL;
  const char *p = c->text + c->pos;
  size_t left = c->len - c->pos;
  const char *nl = memchr(p, '\n', left);
  size_t raw = nl ? (size_t)(nl - p) : left;
  c->pos += raw + (nl ? 1 : 0);
  c->lineno++;
  c->line = p;
  c->line_len = raw;
  /* A line longer than libinih's buffer reaches it truncated (but whole as one line, so line
   * numbers stay right); the handler re-reads the value from c->line. */
  size_t room = (size_t)num - 2;
  size_t k = raw < room ? raw : room;
  c->delivered = k;
  memcpy(str, p, k);
  str[k] = '\n';
  str[k + 1] = '\0';
  return str;
}

/* `s` (n bytes) without surrounding whitespace, into a fresh string. */
static char *dup_trimmed(const char *s, size_t n) {
  while (n > 0 && is_space(*s)) {
    s++;
    n--;
  }
  while (n > 0 && is_space(s[n - 1]))
    n--;
  char *out = malloc(n + 1);
  if (out) {
    memcpy(out, s, n);
    out[n] = '\0';
  }
  return out;
}

/* The value part of a raw "name = value ; comment" line, by libinih's rules. */
static char *value_of_raw_line(const char *line, size_t len) {
  size_t i = 0;
  while (i < len && line[i] != '=' && line[i] != ':')
    i++;
  if (i == len)
    return dup_trimmed("", 0);
  const char *v = line + i + 1;
  size_t n = len - i - 1;
  int was_space = 0;
  for (size_t j = 0; j < n; j++) {
    if (was_space && v[j] == ';') {
      n = j;
      break;
    }
    was_space = is_space(v[j]);
  }
  return dup_trimmed(v, n);
}

static int ini_handler_fn(void *user, const char *section, const char *name, const char *value) {
  parse_ctx *c = user;
  if (c->err_line)
    return 1; /* keep only the first error */
  char where[HN_PATH_MAX + 32];
  snprintf(where, sizeof where, "%s:%d", c->label, c->lineno);

  /* An indented line after a key is glued onto that key's value by libinih (multi-line
   * values): it arrives as the whole stripped line under the previous key's name. */
  if (c->line_len > 0 && is_space(c->line[0])) {
    char *seen = dup_trimmed(c->line, c->delivered);
    int cont = seen && strcmp(seen, value) == 0;
    free(seen);
    if (cont) {
      c->err_line = c->lineno;
      c->err_status = hn_fail(HN_EINVAL,
                              "%s: syntax error: indented line '%s' would continue the value of '%s' "
                              "(multi-line values are not supported); remove the leading whitespace",
                              where, value, name);
      return 0;
    }
  }

  int status;
  if (c->delivered < c->line_len) {
    char *full = value_of_raw_line(c->line, c->line_len);
    if (!full)
      status = hn_fail(HN_ENOMEM, "%s: out of memory reading a long line", where);
    else
      status = apply(c->cfg, where, section, name, full, c->base, c->seen_line, c->lineno);
    free(full);
  } else {
    status = apply(c->cfg, where, section, name, value, c->base, c->seen_line, c->lineno);
  }
  if (status != HN_OK) {
    c->err_line = c->lineno;
    c->err_status = status;
    return 0;
  }
  return 1;
}

/* Explain why libinih rejected line `lineno` of the text. */
static int syntax_error(const parse_ctx *c, int lineno) {
  const char *p = c->text;
  const char *end = c->text + c->len;
  for (int l = 1; l < lineno && p < end; l++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
  while (n > 0 && is_space(*p)) {
    p++;
    n--;
  }
  while (n > 0 && is_space(p[n - 1]))
    n--;
  int shown = n > 120 ? 120 : (int)n;
  const char *dots = n > 120 ? "..." : "";
  if (n > 0 && p[0] == '[') {
    if (memchr(p, ']', n) == NULL)
      return hn_fail(HN_EINVAL, "%s:%d: syntax error: '%.*s%s' has no closing ']'; expected [section]",
                     c->label, lineno, shown, p, dots);
    return hn_fail(HN_EINVAL,
                   "%s:%d: syntax error: section line '%.*s%s' is too long or malformed; expected [section]",
                   c->label, lineno, shown, p, dots);
  }
  int has_sep = memchr(p, '=', n) || memchr(p, ':', n);
  if (has_sep)
    return hn_fail(
        HN_EINVAL,
        "%s:%d: syntax error: '%.*s%s': key name too long or comment before '='; expected key = value",
        c->label, lineno, shown, p, dots);
  return hn_fail(HN_EINVAL,
                 "%s:%d: syntax error: '%.*s%s' is not a [section] header or key = value line "
                 "(comments start with ';' or '#')",
                 c->label, lineno, shown, p, dots);
}

/* Parse `len` bytes of INI text over *cfg (all or nothing). */
static int parse_text(hn_config *cfg, const char *text, size_t len, const char *label, const char *base) {
  if (memchr(text, '\0', len))
    return hn_fail(HN_EINVAL, "%s: contains a NUL byte (not an INI text file?)", label);
  parse_ctx *c = calloc(1, sizeof *c);
  hn_config *tmp = malloc(sizeof *tmp);
  if (!c || !tmp) {
    free(c);
    free(tmp);
    return hn_fail(HN_ENOMEM, "%s: out of memory parsing the configuration", label);
  }
  *tmp = *cfg;
  /* A UTF-8 byte order mark is skipped. */
  if (len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
      (unsigned char)text[2] == 0xBF) {
    text += 3;
    len -= 3;
  }
  c->text = text;
  c->len = len;
  c->label = label;
  c->base = base;
  c->cfg = tmp;

  int ret = ini_parse_stream(line_reader, c, ini_handler_fn, c);
  int status = HN_OK;
  if (ret == -2 || ret == -1) {
    status = hn_fail(ret == -2 ? HN_ENOMEM : HN_EIO, "%s: libinih could not read the text", label);
  } else if (ret > 0) {
    if (c->err_line == ret)
      status = c->err_status; /* the handler's message stands */
    else
      status = syntax_error(c, ret);
  } else if (c->err_line) {
    status = c->err_status; /* defensive: libinih should have reported it */
  }
  if (status == HN_OK)
    *cfg = *tmp;
  free(tmp);
  free(c);
  return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Public API                                                                               */

void hn_config_defaults(hn_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < N_KEYS; i++) {
    char why[256];
    int rc = parse_value(cfg, &keys[i], keys[i].def, NULL, why, sizeof why);
    HN_ASSERT(rc == 0, "bad default [%s] %s = %s: %s", keys[i].section, keys[i].name, keys[i].def, why);
  }
  cfg->source[0] = '\0';
}

static int current_dir(char *buf, size_t size) {
  if (!getcwd(buf, size))
    return hn_fail(HN_EIO, "cannot determine the current directory: %s", strerror(errno));
  return HN_OK;
}

int hn_config_load(hn_config *cfg, const char *path) {
  if (!cfg || !path || !path[0])
    return hn_fail(HN_EINVAL, "hn_config_load: no config file given");
  if (strlen(path) >= HN_PATH_MAX)
    return hn_fail(HN_EINVAL, "config file name too long (at most %d characters): %.80s...", HN_PATH_MAX - 1,
                   path);
  FILE *f = fopen(path, "rb");
  if (!f)
    return hn_fail(HN_EIO, "cannot open config file %s: %s", path, strerror(errno));
  const size_t max_size = (size_t)4 << 20;
  size_t cap = 4096, len = 0;
  char *text = malloc(cap);
  int status = HN_OK;
  while (text) {
    if (len == cap) {
      if (cap >= max_size) {
        status = hn_fail(HN_EINVAL, "config file %s is larger than %zu bytes (not a config file?)", path,
                         max_size);
        break;
      }
      char *bigger = realloc(text, cap * 2);
      if (!bigger) {
        status = hn_fail(HN_ENOMEM, "out of memory reading config file %s", path);
        break;
      }
      text = bigger;
      cap *= 2;
    }
    size_t got = fread(text + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      if (ferror(f))
        status = hn_fail(HN_EIO, "cannot read config file %s: %s", path, strerror(errno));
      break;
    }
  }
  fclose(f);
  if (!text)
    return hn_fail(HN_ENOMEM, "out of memory reading config file %s", path);
  if (status != HN_OK) {
    free(text);
    return status;
  }

  /* Relative paths in the file are relative to the file's folder, made absolute. */
  char base[HN_PATH_MAX];
  char dir[HN_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    dir[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    dir[0] = '\0';
  if (dir[0] == '/') {
    snprintf(base, sizeof base, "%s", dir);
  } else {
    char cwd[HN_PATH_MAX];
    status = current_dir(cwd, sizeof cwd);
    if (status != HN_OK) {
      free(text);
      return status;
    }
    int n = dir[0] ? snprintf(base, sizeof base, "%s/%s", cwd, dir) : snprintf(base, sizeof base, "%s", cwd);
    if (n < 0 || (size_t)n >= sizeof base) {
      free(text);
      return hn_fail(HN_EINVAL, "folder of config file %s is too long to resolve paths against", path);
    }
  }

  status = parse_text(cfg, text, len, path, base);
  free(text);
  if (status == HN_OK)
    snprintf(cfg->source, sizeof cfg->source, "%s", path);
  return status;
}

int hn_config_load_string(hn_config *cfg, const char *text, const char *label) {
  if (!label || !label[0])
    label = "<config text>";
  if (!cfg || !text)
    return hn_fail(HN_EINVAL, "%s: no config text given", label);
  int status = parse_text(cfg, text, strlen(text), label, NULL);
  if (status == HN_OK)
    snprintf(cfg->source, sizeof cfg->source, "%s", label);
  return status;
}

int hn_config_set(hn_config *cfg, const char *assignment) {
  if (!cfg || !assignment)
    return hn_fail(HN_EINVAL, "--set: no assignment given; expected --set section.key=value");
  char where[300], shortarg[256];
  snprintf(where, sizeof where, "--set %s", shorten(assignment, shortarg, sizeof shortarg));
  const char *eq = strchr(assignment, '=');
  const char *dot = strchr(assignment, '.');
  if (!eq || !dot || dot > eq)
    return hn_fail(HN_EINVAL, "%s: expected section.key=value (e.g. --set train.lr=0.01)", where);
  char *section = dup_trimmed(assignment, (size_t)(dot - assignment));
  char *name = dup_trimmed(dot + 1, (size_t)(eq - dot - 1));
  char *value = dup_trimmed(eq + 1, strlen(eq + 1));
  int status = HN_OK;
  if (!section || !name || !value) {
    status = hn_fail(HN_ENOMEM, "%s: out of memory", where);
  } else if (!section[0] || !name[0]) {
    status =
        hn_fail(HN_EINVAL,
                "%s: expected section.key=value with a section and a key (e.g. --set train.lr=0.01)", where);
  } else {
    char cwd[HN_PATH_MAX];
    status = current_dir(cwd, sizeof cwd);
    if (status == HN_OK) {
      hn_config tmp = *cfg;
      status = apply(&tmp, where, section, name, value, cwd, NULL, 0);
      if (status == HN_OK)
        *cfg = tmp;
    }
  }
  free(section);
  free(name);
  free(value);
  return status;
}

int hn_config_validate(const hn_config *cfg, int for_training) {
  const char *src = cfg->source[0] ? cfg->source : "the configuration";
  char why[256], val[HN_PATH_MAX + 8], allowed[512];
  for (int i = 0; i < N_KEYS; i++) {
    const key_desc *k = &keys[i];
    if (!value_ok(cfg, k, why, sizeof why)) {
      fmt_value(cfg, k, val, sizeof val);
      describe_allowed(k, allowed, sizeof allowed);
      return hn_fail(HN_EINVAL, "%s: [%s] %s = %s: %s; allowed: %s", src, k->section, k->name, val, why,
                     allowed);
    }
  }
  if (for_training) {
    for (int i = 0; i < N_KEYS; i++) {
      const key_desc *k = &keys[i];
      if ((k->flags & F_REQUIRED) && ((const char *)cfield(cfg, k))[0] == '\0')
        return hn_fail(HN_EINVAL,
                       "missing required key [%s] %s in %s; set it in the file or with --set %s.%s=PATH",
                       k->section, k->name, src, k->section, k->name);
    }
  }
  if (cfg->model.stages[0]) { /* a convolutional network: the stages determine width and depth */
    int count, ch[HN_MAX_STAGES], ly[HN_MAX_STAGES], layers = 0, widest = 0;
    if (hn_stages_parse(cfg->model.stages, &count, ch, ly, why, sizeof why) != 0)
      return hn_fail(HN_EINVAL, "%s: [model] stages = %s: %s", src, cfg->model.stages, why);
    for (int i = 0; i < count; i++) {
      layers += ly[i];
      widest = ch[i] > widest ? ch[i] : widest;
    }
    if (cfg->model.depth != layers || cfg->model.width != widest)
      return hn_fail(HN_EINVAL,
                     "%s: [model] depth = %d, width = %d: stages = %s has %d layers and at most %d channels; "
                     "allowed: leave width and depth out (stages sets them) or give these values",
                     src, cfg->model.depth, cfg->model.width, cfg->model.stages, layers, widest);
    if (cfg->train.levels != 1)
      return hn_fail(HN_EINVAL,
                     "%s: [train] levels = %d: multilevel training is for dense networks; allowed: levels = 1 "
                     "with [model] stages", src, cfg->train.levels);
  }
  int levels = cfg->train.levels, depth = cfg->model.depth;
  long factor = 1L << (levels - 1);
  if (depth % factor != 0 || depth / factor < 1) {
    int max_levels = 1; /* 1 + the number of times depth halves evenly */
    while (max_levels < 30 && depth % (1L << max_levels) == 0)
      max_levels++;
    return hn_fail(HN_EINVAL,
                   "%s: [train] levels = %d: model.depth = %d must be divisible by 2^(levels-1) = %ld "
                   "(the coarsest level has depth / 2^(levels-1) layers); allowed: levels 1..%d for depth %d",
                   src, levels, depth, factor, max_levels, depth);
  }
  if (cfg->train.lr_min > cfg->train.lr) {
    char a[40], b[40];
    fmt_double(cfg->train.lr_min, a, sizeof a);
    fmt_double(cfg->train.lr, b, sizeof b);
    return hn_fail(HN_EINVAL,
                   "%s: [train] lr_min = %s: larger than train.lr = %s; allowed: 0 <= lr_min <= lr", src, a,
                   b);
  }
  if (!(cfg->diagnostics.band_low < cfg->diagnostics.band_high)) {
    char a[40], b[40];
    fmt_double(cfg->diagnostics.band_low, a, sizeof a);
    fmt_double(cfg->diagnostics.band_high, b, sizeof b);
    return hn_fail(HN_EINVAL,
                   "%s: [diagnostics] band_low = %s: not below diagnostics.band_high = %s; allowed: band_low "
                   "< band_high",
                   src, a, b);
  }
  if (cfg->train.reversible == HN_REV_ON && !hn_arch_is_reversible(cfg->model.arch))
    return hn_fail(HN_EINVAL,
                   "%s: [train] reversible = on: model.arch = %s cannot recompute its states backwards; "
                   "allowed: on only with hamiltonian or leapfrog (use auto or off)",
                   src, hn_arch_name(cfg->model.arch));
  if (cfg->train.kernel == HN_KERNEL_NARROW && !hn_arch_is_reversible(cfg->model.arch))
    return hn_fail(HN_EINVAL,
                   "%s: [train] kernel = narrow: the narrow path runs hamiltonian and leapfrog, not model.arch = %s; "
                   "allowed: auto or wide", src, hn_arch_name(cfg->model.arch));
  return HN_OK;
}

char *hn_config_to_ini(const hn_config *cfg) {
  size_t cap = 4096, len = 0;
  char *out = malloc(cap);
  if (!out)
    return NULL;
  out[0] = '\0';
  const char *prev = NULL;
  char val[HN_PATH_MAX + 8];
  for (int i = 0; i < N_KEYS; i++) {
    const key_desc *k = &keys[i];
    fmt_value(cfg, k, val, sizeof val);
    size_t need = strlen(k->section) + strlen(k->name) + strlen(val) + 16;
    if (len + need >= cap) {
      while (len + need >= cap)
        cap *= 2;
      char *bigger = realloc(out, cap);
      if (!bigger) {
        free(out);
        return NULL;
      }
      out = bigger;
    }
    if (!prev || strcmp(prev, k->section) != 0) {
      len += (size_t)snprintf(out + len, cap - len, "%s[%s]\n", prev ? "\n" : "", k->section);
      prev = k->section;
    }
    len += (size_t)snprintf(out + len, cap - len, "%s = %s\n", k->name, val);
  }
  return out;
}

hn_model_spec hn_config_model_spec(const hn_config *cfg) {
  hn_model_spec s;
  memset(&s, 0, sizeof s);
  s.arch = cfg->model.arch;
  s.activation = cfg->model.activation;
  s.opening = cfg->model.opening;
  s.width = cfg->model.width;
  s.depth = cfg->model.depth;
  s.n_features = 0;
  s.n_classes = 0;
  s.final_time = cfg->model.final_time;
  s.gamma = cfg->model.gamma;
  char why[160];
  if (hn_stages_parse(cfg->model.stages, &s.n_stages, s.stage_channels, s.stage_layers, why, sizeof why) != 0)
    s.n_stages = 0; /* hn_config_validate reports it */
  s.norm = cfg->model.norm;
  return s; /* image_* are left 0 too: they come from the data */
}

int hn_config_get(const hn_config *cfg, const char *key, char *buf, size_t size) {
  const char *dot = key ? strchr(key, '.') : NULL;
  if (!dot)
    return hn_fail(HN_EINVAL, "hn_config_get: '%s': expected section.key", key ? key : "(null)");
  for (int i = 0; i < N_KEYS; i++) {
    const key_desc *k = &keys[i];
    size_t sl = strlen(k->section);
    if ((size_t)(dot - key) == sl && strncmp(key, k->section, sl) == 0 && strcmp(dot + 1, k->name) == 0) {
      char val[HN_PATH_MAX + 8];
      fmt_value(cfg, k, val, sizeof val);
      if (!buf || strlen(val) >= size)
        return hn_fail(HN_EINVAL, "hn_config_get: buffer too small for %s", key);
      memcpy(buf, val, strlen(val) + 1);
      return HN_OK;
    }
  }
  return hn_fail(HN_EINVAL, "hn_config_get: unknown key '%s'", key);
}

int hn_config_diff(const hn_config *a, const hn_config *b, FILE *out) {
  int count = 0;
  char va[HN_PATH_MAX + 8], vb[HN_PATH_MAX + 8];
  for (int i = 0; i < N_KEYS; i++) {
    const key_desc *k = &keys[i];
    fmt_value(a, k, va, sizeof va);
    fmt_value(b, k, vb, sizeof vb);
    int differ;
    if (k->type == T_DOUBLE) /* bitwise-exact, but 0 == -0 is a difference too */
      differ = memcmp(cfield(a, k), cfield(b, k), sizeof(double)) != 0;
    else
      differ = strcmp(va, vb) != 0;
    if (differ) {
      count++;
      if (out)
        fprintf(out, "[%s] %s: %s -> %s\n", k->section, k->name, va, vb);
    }
  }
  return count;
}

void hn_config_print_keys(FILE *out) {
  char allowed[512];
  fprintf(out, "| Section | Key | Default | Allowed | Meaning |\n");
  fprintf(out, "|---|---|---|---|---|\n");
  for (int i = 0; i < N_KEYS; i++) {
    const key_desc *k = &keys[i];
    describe_allowed(k, allowed, sizeof allowed);
    const char *def = k->def;
    if (k->type == T_PATH && !def[0])
      def = (k->flags & F_REQUIRED) ? "(required)" : "(none)";
    fprintf(out, "| `[%s]` | `%s` | `%s` | %s | %s |\n", k->section, k->name, def, allowed, k->help);
  }
}
