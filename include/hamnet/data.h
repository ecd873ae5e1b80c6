/* hamnet/data.h - data sets: the HDF5 file format, readers, synthetic generators, importers.
 *
 * FILE FORMAT (HDF5; hamnet writes it, users may write it with h5py):
 *   /X   floating-point, shape [N, F] (feature vectors) or [N, C, H, W] (images). float32 is
 *        the native type; any HDF5 floating type (float64, ...) is accepted and converted to
 *        float32 on reading (values beyond float32's range become +-inf and are then rejected
 *        as non-finite).
 *   /y   integer, shape [N], labels in 0 .. n_classes-1. Any HDF5 integer type is accepted
 *        and converted to int32 (out-of-range values saturate and are rejected as labels).
 *   root attribute `n_classes` (integer, optional): the number of classes. Without it,
 *        n_classes = max label + 1.
 *   hamnet also writes the root string attribute `format` = "hamnet-dataset" and
 *   `format_version` = 1, stores /X as float32 and /y as int32, both chunked (about 1 MiB per
 *   chunk) with HDF5's fletcher32 checksum filter, so that a corrupted chunk is an error
 *   instead of silently wrong data. Files without checksums (h5py's default) read the same.
 *
 *   A minimal h5py writer:
 *       with h5py.File("train.h5", "w") as f:
 *           f["X"] = X.astype("float32")     # [N, F] or [N, C, H, W]
 *           f["y"] = y.astype("int32")       # [N]
 *           f.attrs["n_classes"] = 10
 *
 * LIMITS: N >= 1, every dimension >= 1, N * F * 4 bytes <= HN_DATA_MAX_BYTES (64 GiB),
 * n_classes <= HN_DATA_MAX_CLASSES. Shapes are checked against these limits before anything
 * is allocated, so a crafted or corrupted header cannot make hamnet allocate absurd amounts.
 *
 * ERRORS: every function returns HN_OK or an hn_status and stores a message (hamnet/error.h)
 * that names the file, the dataset and, where it helps, the fix. HDF5's own error printing is
 * silenced inside these functions (and restored afterwards); the innermost HDF5 error text is
 * appended to the message where it adds information. On failure, output structs are left
 * empty (safe to pass to the matching _free function) and no file is left half-written.
 *
 * MEMORY: data buffers come from hn_alloc(..., HN_MEM_DATA, ...), so they show up in hamnet's
 * memory counters; free them with hn_dataset_free / hn_free as documented per function.
 *
 * THREADS: the file functions call HDF5, which is not thread-safe in the usual builds: call them
 * from one thread per process (several ranks may read the same file at the same time).
 *
 * RANDOMNESS: everything random is a pure function of the seed through hn_rng streams
 * (hamnet/rng.h), so results do not depend on the number of threads or ranks. */
#ifndef HAMNET_DATA_H
#define HAMNET_DATA_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#define HN_DATA_MAX_BYTES (64LL << 30) /* cap on N * F * sizeof(float) of one data set */
#define HN_DATA_MAX_CLASSES (1 << 20)  /* cap on n_classes */
#define HN_DATA_FORMAT "hamnet-dataset" /* value of the root attribute `format` */

/* ---------------------------------------------------------------------------------------- */
/* In-memory data set                                                                        */

typedef struct {
  int64_t n;               /* number of samples (rows) */
  int ndim_sample;         /* 1: feature vectors [F]; 3: images [C, H, W] */
  int64_t sample_dims[3];  /* [F, 1, 1] or [C, H, W] */
  int64_t n_features;      /* product of the sample dims: F, or C*H*W */
  int n_classes;           /* labels are in 0 .. n_classes-1 */
  float *X;                /* [n][n_features], row-major (NULL when n == 0) */
  int32_t *y;              /* [n] (NULL when n == 0) */
} hn_dataset;

/* Allocate a zero-filled data set of `n` >= 0 samples of shape `dims` (ndim_sample = 1: dims[0]
 * = F; ndim_sample = 3: dims = {C, H, W}); 0 <= n_classes <= HN_DATA_MAX_CLASSES (0 = not yet
 * known; set it before writing). Every dim must be >= 1 and n * n_features * 4 bytes at most
 * HN_DATA_MAX_BYTES; otherwise HN_EINVAL (bad shape) or HN_ENOMEM (too large / no memory).
 * On failure *ds is zeroed. Free with hn_dataset_free. */
int hn_dataset_alloc(hn_dataset *ds, int64_t n, int ndim_sample, const int64_t *dims, int n_classes);

/* Free the buffers of a data set and zero it (NULL or an already-freed one is fine). */
void hn_dataset_free(hn_dataset *ds);

/* Check an in-memory data set: n_classes in 1..HN_DATA_MAX_CLASSES, every label in range and
 * every X value finite. `source` names it in the message (a file name, "generated data").
 * Returns HN_EFORMAT naming the first bad sample (index, feature, value). */
int hn_dataset_validate(const hn_dataset *ds, const char *source);

/* Number of samples of each class: counts[c] for c < ds->n_classes (counts must hold
 * n_classes entries). Labels outside the range are not counted. */
void hn_dataset_class_counts(const hn_dataset *ds, int64_t *counts);

/* ---------------------------------------------------------------------------------------- */
/* HDF5 files                                                                                */

/* Write `ds` (validated first with hn_dataset_validate: a bad data set is never written) to
 * `path` in the format above. Writes `path`.tmp and renames it over `path` only when
 * everything succeeded, so `path` is either the complete new file or untouched (an existing
 * file is replaced). Serial HDF5; call it on one rank. */
int hn_dataset_write(const char *path, const hn_dataset *ds);

typedef struct {
  int64_t n;
  int ndim_sample;          /* 1 or 3 */
  int64_t sample_dims[3];   /* as in hn_dataset */
  int64_t n_features;
  int n_classes;            /* from the attribute, or max label + 1 (see hn_dataset_probe) */
  int has_n_classes_attr;   /* 1 if the file has the n_classes attribute */
  int checksummed;          /* 1 if both /X and /y carry the fletcher32 filter */
  char x_type[16];          /* stored type of /X, e.g. "float32", "float64" */
  char y_type[16];          /* stored type of /y, e.g. "int32", "uint8" */
} hn_dataset_info;

/* Shapes and attributes of a data set file, validated: /X floating of rank 2 or 4, /y integer
 * of rank 1, the same N >= 1, every dim >= 1, size within HN_DATA_MAX_BYTES (all checked
 * before any allocation), n_classes attribute (if present) an integer in 1..HN_DATA_MAX_CLASSES.
 * /X's values are never read. When the n_classes attribute is absent, /y is read (4 bytes per
 * sample) to find max label + 1, so that n_classes is the same on every rank whatever rows
 * it later reads; a negative label is then reported here. Errors: HN_EIO (missing file,
 * unreadable), HN_EFORMAT (not HDF5, truncated, missing dataset, wrong type/rank/shape). */
int hn_dataset_probe(const char *path, hn_dataset_info *info);

/* Read the whole file into *ds (allocated here; free with hn_dataset_free). Everything that
 * hn_dataset_probe checks, plus every label in 0..n_classes-1 and every X value finite; the
 * message names the file, the dataset, the first bad index and its value. */
int hn_dataset_read(const char *path, hn_dataset *ds);

/* Read only the samples rows[0..count-1] (row indices into the file, any order, duplicates
 * allowed) into *ds, so that ds->X row i is file row rows[i]; n_classes is the file's (see
 * hn_dataset_probe), so every rank reading its own rows gets the same value. count == 0 gives
 * an empty data set with the file's shape. A row outside 0..N-1 is HN_EINVAL. Validated as
 * hn_dataset_read (messages give file row indices). Reads runs of consecutive rows with
 * hyperslab selections, in blocks, touching only the chunks that hold requested rows. */
int hn_dataset_read_rows(const char *path, const int64_t *rows, int64_t count, hn_dataset *ds);

/* hn_dataset_read_rows for data-parallel jobs: COLLECTIVE over comm - every rank of comm calls
 * it, also a rank with count == 0 - and each rank gets only its own rows (memory ~ its share).
 * The file is opened through HDF5's MPI-IO driver (H5Pset_fapl_mpio on comm): one collective
 * open and close per call, and each rank reads its rows with independent transfers (ranks
 * need different numbers of reads, which collective transfers would not allow). Failures
 * that only one rank can see (a file missing or unreadable there, a different path on another
 * rank, a bad row list, no memory) are agreed on before the open, and the final status is
 * agreed after the close: every rank returns the same status, and a rank whose own step went
 * well gets a message naming the rank that failed and its reason. */
int hn_dataset_read_rows_mpi(MPI_Comm comm, const char *path, const int64_t *rows, int64_t count, hn_dataset *ds);
/* The same for the contiguous rows [first, first + count) (sharded validation / evaluation). */
int hn_dataset_read_range_mpi(MPI_Comm comm, const char *path, int64_t first, int64_t count, hn_dataset *ds);

/* Read only the labels: *y = hn_alloc'ed [info->n] array (free with hn_free), validated to be
 * in 0..info->n_classes-1; *info as from hn_dataset_probe. For stratified subsets and class
 * statistics without loading X. */
int hn_dataset_read_labels(const char *path, hn_dataset_info *info, int32_t **y);

/* Statistics of a whole file, computed by streaming it in blocks of at most 64 MiB (for
 * `hamnet inspect`); the file is validated as in hn_dataset_read. class_counts is an
 * hn_alloc'ed [info.n_classes] array: free with hn_dataset_summary_free. */
typedef struct {
  hn_dataset_info info;
  int64_t *class_counts;
  double x_min, x_max, x_mean; /* over every value of /X */
} hn_dataset_summary;
int hn_dataset_summarize(const char *path, hn_dataset_summary *s);
void hn_dataset_summary_free(hn_dataset_summary *s);

/* The value of the root string attribute `format` of any HDF5 file (fixed or variable length,
 * as h5py writes it) into buf (size bytes, truncated if longer); "" if the attribute is absent.
 * HN_EIO / HN_EFORMAT for a missing, non-HDF5 or unreadable file. Used by `hamnet inspect` to
 * tell data sets, checkpoints ("hamnet-checkpoint") and diagnostics ("hamnet-diagnostics")
 * apart. */
int hn_file_format(const char *path, char *buf, size_t size);

/* ---------------------------------------------------------------------------------------- */
/* Shuffling and subsets                                                                     */

/* perm[0..n-1] = a permutation of 0..n-1 (Fisher-Yates on the stream (seed, HN_RNG_SHUFFLE,
 * epoch, 0)). A pure function of (seed, epoch, n): identical on every rank and thread count.
 * n <= 0 writes nothing. */
void hn_data_permutation(uint64_t seed, uint64_t epoch, int64_t n, int64_t *perm);

/* A seeded random subset of 0..n-1 of size round(fraction * n) clamped to 1..n, returned
 * sorted ascending in *rows (hn_alloc'ed; free with hn_free), *count its size. Not stratified
 * (it sees no labels): partial Fisher-Yates on (seed, HN_RNG_FRACTION, 0, 0); fraction = 1
 * gives 0..n-1 without drawing. The same on every rank. HN_EINVAL unless 0 < fraction <= 1
 * and n >= 1. For a class-balanced subset use hn_data_fraction_subset_stratified. */
int hn_data_fraction_subset(uint64_t seed, int64_t n, double fraction, int64_t **rows, int64_t *count);

/* Stratified version: from each class c (labels y[0..n-1] in 0..n_classes-1) take
 * round(fraction * n_c) samples, at least 1 of a non-empty class, chosen by partial
 * Fisher-Yates on (seed, HN_RNG_FRACTION, 0, 1 + c); rows sorted ascending, hn_alloc'ed. */
int hn_data_fraction_subset_stratified(uint64_t seed, const int32_t *y, int64_t n, int n_classes,
                                       double fraction, int64_t **rows, int64_t *count);

/* ---------------------------------------------------------------------------------------- */
/* Synthetic data sets                                                                       */

/* Generate a training and a validation set of `kind`:
 *   "ellipses"  2 features, 2 classes (concentric): class 0 radius r ~ U[0,1), class 1
 *               r ~ U[1,2), angle a ~ U[0,2pi), point (r cos a, 0.4 r sin a). Sample i has
 *               class i % 2 (exactly balanced; for odd n class 0 has one more).
 *               Default 1000 training + 1000 validation samples.
 *   "swissroll" 2 features, 2 classes, fixed size: a = linspace(0, 4pi, 513); class 0
 *               r = linspace(0, 1, 513), class 1 r = linspace(0.2, 1.2, 513); point
 *               (r cos a, r sin a). The 1026 points listed class 0 then class 1 go alternately
 *               to training (even positions) and validation (odd): 513 + 513 (training 257
 *               of class 0 and 256 of class 1, validation the other way round). n_train or
 *               n_val > 0 is HN_EINVAL (the size is fixed by construction).
 *   "peaks"     2 features, 5 classes: MATLAB's peaks function on [-3,3]^2,
 *               z = 3(1-x)^2 e^{-x^2-(y+1)^2} - 10(x/5 - x^3 - y^5) e^{-x^2-y^2}
 *                   - e^{-(x+1)^2-y^2}/3,
 *               its range [z_min, z_max] (over a 1001 x 1001 grid) cut into 5 equal-width bands
 *               = classes. Sample i has class i % 5 (balanced) and is the first uniform
 *               point of its stream whose band is that class - the same distribution as
 *               "draw uniform points, keep each until its class has its share", but
 *               independent of threads. Default 8000 training + 2000 validation samples.
 * n_train / n_val <= 0 mean the defaults (at most 100,000,000 each). Sample i of split s
 * (0 = training, 1 = validation) uses the stream (seed, HN_RNG_DATAGEN, s, i), so training and
 * validation differ. noise >= 0: after labelling, every coordinate gets N(0, noise^2) from
 * (seed, HN_RNG_NOISE, s, i); labels are not changed. Values are computed in double and
 * stored as float. *train and *val are allocated here (free with hn_dataset_free); on
 * failure both are empty. HN_EINVAL for an unknown kind or bad argument. */
int hn_datagen(const char *kind, int64_t n_train, int64_t n_val, uint64_t seed, double noise,
               hn_dataset *train, hn_dataset *val);

/* "ellipses, swissroll, peaks" - for help texts and messages. */
const char *hn_datagen_kinds(void);

/* Whether `kind` has a fixed size (swissroll): then n_train / n_val must be <= 0. -1 if the
 * kind is unknown. */
int hn_datagen_fixed_size(const char *kind);

/* ---------------------------------------------------------------------------------------- */
/* Importers                                                                                 */

typedef enum { HN_CSV_HEADER_AUTO = 0, HN_CSV_HEADER_YES = 1, HN_CSV_HEADER_NO = 2 } hn_csv_header;

typedef struct {
  int label_column;     /* 0-based index of the label column; negative counts from the end
                           (-1 = last, the default) */
  hn_csv_header header; /* AUTO: the first line is a header iff one of its cells is not a
                           number (in text-label mode only the feature cells are looked at) */
  char delimiter;       /* ',' by default; ' ' means runs of blanks (spaces/tabs) */
  int n_classes;        /* > 0: labels must be below it and it is stored; 0: max label + 1 */
  int text_labels;      /* 0: labels must be non-negative integers ("3" or "3.0").
                           1: labels are arbitrary text; the distinct values, sorted by
                           byte value (strcmp), become classes 0..C-1 */
} hn_csv_options;

/* The defaults above (label column -1, header auto, ',', n_classes 0, integer labels). */
void hn_csv_options_default(hn_csv_options *opt);

/* Class names from text-label mode: name[c] is class c. Free with hn_label_names_free. */
typedef struct {
  int count;
  char **name;
} hn_label_names;
void hn_label_names_free(hn_label_names *names);

/* Read a CSV file: one sample per line, the label column plus F >= 1 numeric feature columns,
 * into *out ([N, F], allocated here). Cells may be surrounded by blanks and may be quoted
 * ("..." with "" for a quote). Blank lines are skipped, "\r\n" line ends and a UTF-8 BOM are
 * accepted. Every problem is HN_EFORMAT with "FILE:LINE: column K: reason" (K 1-based): a
 * line with a different number of columns than the first, an empty or non-numeric cell,
 * a non-finite value (or one beyond float32's range), a bad label, no data rows.
 * HN_EINVAL for a label column outside the file's columns or bad options, HN_EIO if the file
 * cannot be read. */
int hn_import_csv(const char *path, const hn_csv_options *opt, hn_dataset *out);

/* hn_import_csv that also returns the class names in text-label mode (names->count = 0
 * otherwise; names may be NULL). */
int hn_import_csv_names(const char *path, const hn_csv_options *opt, hn_dataset *out,
                        hn_label_names *names);

/* Read an IDX pair (the MNIST / Fashion-MNIST format), gzipped or not (zlib detects it):
 * `images` has magic 0x00000803 (uint8, dims N, H, W), `labels` magic 0x00000801 (uint8, N).
 * Images become [N, 1, H, W] float32 scaled to [0, 1] (pixel / 255), labels int32,
 * n_classes = max label + 1. Checks (HN_EFORMAT, naming the file): magic, dimensions >= 1 and
 * within HN_DATA_MAX_BYTES, truncated data, trailing bytes, image / label count mismatch.
 * (uint8 labels cannot exceed 255, so n_classes <= 256.) HN_EIO if a file cannot be opened. */
int hn_import_idx(const char *images, const char *labels, hn_dataset *out);

#endif
