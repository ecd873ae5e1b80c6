/* checkpoint.c - HDF5 checkpoints: atomic write, validated read, verification, discovery and
 * pruning of ckpt-*.h5 files (see hamnet/checkpoint.h for the schema and the contract).
 *
 * Reading is done in two phases. ck_open checks everything that can be checked without
 * reading an array - format, version, attributes and their ranges, the layout they imply, the
 * presence, type and exact shape of every dataset, and that the file is large enough to hold
 * the arrays its header promises - so that a crafted or corrupted header is refused before
 * anything is allocated. Only then are arrays read (hn_ckpt_read) or streamed through a small
 * buffer (hn_ckpt_verify); fletcher32 failures surface as failed reads and become
 * "checksum mismatch in DATASET of FILE".
 *
 * The model's flat buffer interleaves K_j and b_j per layer while the file stores /model/K as
 * [depth, width, width] and /model/b as [depth, width]: the gather / scatter is done by HDF5
 * itself, with a strided hyperslab selection on the flat buffer as the memory space, so no
 * copy of the parameters is made.
 *
 * Writing builds the whole file in memory (HDF5 core driver, no backing store; the buffer is
 * kept when HDF5 closes the file, through the file image callbacks) and writes those bytes with
 * write(2) to PATH.tmp, then fsync, rename, fsync of the folder. HDF5 itself never writes to
 * the disk: after a failed write HDF5 1.10 cannot close a file (the id stays open and the
 * library crashes at exit), and every disk error (ENOSPC, EIO, EFBIG) becomes a plain errno
 * message here. The price is memory: the size of the file, for the duration of a write.
 * The 1.8 file format (libver V18) is used so that the superblock and the object headers -
 * attributes, shapes, types - carry checksums as well (h5py reads it; HDF5 >= 1.8 reads it). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "hamnet/build_info.h"
#include "hamnet/checkpoint.h"
#include "hamnet/error.h"
#include "hamnet/h5guard.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"
#include "core/h5util.h"

#ifdef HN_USE_DOUBLE
#define CK_MEM_REAL H5T_NATIVE_DOUBLE
#define CK_FILE_REAL H5T_IEEE_F64LE
#else
#define CK_MEM_REAL H5T_NATIVE_FLOAT
#define CK_FILE_REAL H5T_IEEE_F32LE
#endif

/* Plausibility limits of a checkpoint's header (checked before anything is allocated). */
#define CK_MAX_WIDTH (1 << 16)
#define CK_MAX_DEPTH (1 << 20)
#define CK_MAX_FEATURES (1 << 30)
#define CK_MAX_CLASSES (1 << 20)
#define CK_MAX_PARAMS (INT64_C(1) << 40)
#define CK_MAX_HISTORY (1 << 24)

#define CK_CHUNK_BYTES ((hsize_t)1 << 20)        /* target chunk size when writing */
#define CK_STREAM_BYTES ((hsize_t)4 << 20)       /* block size when verifying */
#define CK_MAX_STREAM_CHUNK ((hsize_t)64 << 20)  /* larger chunks are streamed in smaller blocks */

static const char *const history_columns = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,depth,regularizer";

/* ---------------------------------------------------------------------------------------- */
/* Datasets of the schema                                                                    */

/* Dense networks store their parameters per block (K, b, open/K, ...); convolutional ones
 * (format_version 2) the flat buffer as /model/params, in the layout of hamnet/convnet.h, and the
 * normalisation statistics as /model/state. */
enum { DS_K, DS_B, DS_OPEN_K, DS_OPEN_B, DS_CLS_W, DS_CLS_B, DS_M1, DS_M2, DS_HIST, DS_PARAMS, DS_STATE, DS_COUNT };
static const char *const ds_names[DS_COUNT] = {"/model/K",      "/model/b",      "/model/open/K",
                                               "/model/open/b", "/model/cls/W",  "/model/cls/b",
                                               "/optimizer/m1", "/optimizer/m2", "/progress/history",
                                               "/model/params", "/model/state"};

typedef struct {
  const char *path;
  hid_t file, g_model, g_opt, g_prog, g_config;
  hid_t d[DS_COUNT];
  hn_layout L;
  hn_ckpt_info info;
  hn_progress prog; /* scalar fields of /progress (history not read here) */
  uint64_t data_bytes;
} ck_file;

static void ck_init(ck_file *c, const char *path) {
  memset(c, 0, sizeof *c);
  c->path = path;
  c->file = c->g_model = c->g_opt = c->g_prog = c->g_config = H5I_INVALID_HID;
  for (int i = 0; i < DS_COUNT; i++)
    c->d[i] = H5I_INVALID_HID;
}

static void ck_close(ck_file *c) {
  for (int i = 0; i < DS_COUNT; i++)
    hn_h5_close(&c->d[i]);
  hn_h5_close(&c->g_config);
  hn_h5_close(&c->g_prog);
  hn_h5_close(&c->g_opt);
  hn_h5_close(&c->g_model);
  hn_h5_close(&c->file);
}

static void fmt_shape(char *buf, size_t size, int rank, const hsize_t *dims) {
  size_t n = 0;
  n += (size_t)snprintf(buf + n, size - n, "[");
  for (int k = 0; k < rank && n < size; k++)
    n += (size_t)snprintf(buf + n, size - n, "%s%llu", k ? ", " : "", (unsigned long long)dims[k]);
  if (n < size)
    snprintf(buf + n, size - n, "]");
}

/* Whether a dataset's only filters are ones that do not change its size (fletcher32,
 * shuffle); *fletcher = 1 if it has fletcher32. */
static int plain_size(hid_t dset, int *fletcher) {
  *fletcher = 0;
  hid_t dcpl = H5Dget_create_plist(dset);
  if (dcpl < 0)
    return 0;
  int plain = 1;
  int nf = H5Pget_nfilters(dcpl);
  for (int i = 0; i < nf; i++) {
    unsigned flags = 0, config = 0;
    size_t nelem = 0;
    char name[64];
    H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelem, NULL, sizeof name, name, &config);
    if (f == H5Z_FILTER_FLETCHER32)
      *fletcher = 1;
    else if (f != H5Z_FILTER_SHUFFLE)
      plain = 0;
  }
  hn_h5_close(&dcpl);
  return plain;
}

/* Open dataset `idx`, check floating class and the exact shape `want` (rank entries);
 * want[0] == ANY_LEN accepts any length in dimension 0 up to max0, *found0 gets it. */
#define ANY_LEN ((hsize_t)-1)
static int ck_dataset(ck_file *c, int idx, int rank, const hsize_t *want, const char *implied, hsize_t max0,
                      hsize_t *found0) {
  hn_h5_err d;
  const char *name = ds_names[idx];
  int e = hn_h5_exists(c->file, name);
  if (e < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot look up %s%s", c->path, name, hn_h5_detail(&d));
  if (e == 0)
    return hn_fail(HN_EFORMAT, "%s: dataset %s is missing", c->path, name);
  hid_t dset = H5Dopen2(c->file, name, H5P_DEFAULT);
  if (dset < 0)
    return hn_fail(HN_EFORMAT, "%s: %s is not a dataset%s", c->path, name, hn_h5_detail(&d));
  c->d[idx] = dset;
  hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
  int status = HN_OK;
  char tname[32] = "?";
  if (type < 0 || space < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot read the type and shape of %s%s", c->path, name, hn_h5_detail(&d));
    goto out;
  }
  hn_h5_type_name(type, tname, sizeof tname);
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) > 16) {
    status = hn_fail(HN_EFORMAT, "%s: %s has type %s; expected floating point (float32 or float64)", c->path, name,
                     tname);
    goto out;
  }
  if (idx == DS_K || idx == DS_PARAMS)
    snprintf(c->info.param_type, sizeof c->info.param_type, "%.15s", tname);
  int frank = H5Sget_simple_extent_type(space) == H5S_SIMPLE ? H5Sget_simple_extent_ndims(space) : 0;
  hsize_t dims[H5S_MAX_RANK] = {0};
  if (frank > 0 && frank <= H5S_MAX_RANK)
    H5Sget_simple_extent_dims(space, dims, NULL);
  int ok = frank == rank;
  for (int k = 0; ok && k < rank; k++)
    ok = (want[k] == ANY_LEN && k == 0) ? dims[0] <= max0 : dims[k] == want[k];
  if (!ok) {
    char found[160], expect[160];
    fmt_shape(found, sizeof found, frank, dims);
    if (want[0] != ANY_LEN) {
      fmt_shape(expect, sizeof expect, rank, want);
      status = hn_fail(HN_EFORMAT, "%s: %s has shape %s; %s imply %s", c->path, name, found, implied, expect);
    } else if (frank == rank && dims[1] == want[1]) {
      status = hn_fail(HN_EFORMAT, "%s: %s has %llu rows; at most %llu are plausible", c->path, name,
                       (unsigned long long)dims[0], (unsigned long long)max0);
    } else {
      snprintf(expect, sizeof expect, "[N, %llu]", (unsigned long long)want[1]);
      status = hn_fail(HN_EFORMAT, "%s: %s has shape %s; expected %s", c->path, name, found, expect);
    }
    goto out;
  }
  if (found0)
    *found0 = dims[0];
  uint64_t bytes = H5Tget_size(type);
  for (int k = 0; k < rank; k++)
    bytes *= dims[k]; /* bounded: every dimension was checked against the layout */
  int fletcher = 0;
  if (plain_size(dset, &fletcher))
    c->data_bytes += bytes;
  if (!fletcher && bytes > 0)
    c->info.checksummed = 0;
out:
  hn_h5_close(&space);
  hn_h5_close(&type);
  return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Opening and validating                                                                    */

enum { CK_SPEC = 0, CK_SCHEMA = 1 };

static int open_group(ck_file *c, const char *name, hid_t *g, int required) {
  hn_h5_err d;
  int e = hn_h5_exists(c->file, name);
  if (e < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot look up %s%s", c->path, name, hn_h5_detail(&d));
  if (e == 0)
    return required ? hn_fail(HN_EFORMAT, "%s: group %s is missing", c->path, name) : HN_OK;
  *g = H5Gopen2(c->file, name, H5P_DEFAULT);
  if (*g < 0)
    return hn_fail(HN_EFORMAT, "%s: %s is not a group%s", c->path, name, hn_h5_detail(&d));
  return HN_OK;
}

static int read_name_attr(ck_file *c, hid_t loc, const char *where, const char *name, char *buf, size_t size) {
  char *s = NULL;
  int present = 0;
  HN_TRY(hn_h5_read_attr_str(c->path, loc, where, name, &s, &present));
  snprintf(buf, size, "%s", present && s ? s : "");
  free(s);
  return HN_OK;
}

static int read_int_attr(ck_file *c, hid_t loc, const char *where, const char *name, int64_t lo, int64_t hi,
                         int64_t *v) {
  return hn_h5_read_attr_i64(c->path, loc, where, name, lo, hi, v, NULL);
}

static int read_model_spec(ck_file *c) {
  const char *w = "/model";
  hid_t g = c->g_model;
  hn_model_spec *s = &c->info.spec;
  char name[64];
  HN_TRY(read_name_attr(c, g, w, "arch", name, sizeof name));
  hn_arch arch;
  if (hn_arch_parse(name, &arch) != 0)
    return hn_fail(HN_EFORMAT, "%s: attribute arch of /model = '%s' is not one of resnet, antisym, hamiltonian, "
                   "leapfrog", c->path, name);
  HN_TRY(read_name_attr(c, g, w, "activation", name, sizeof name));
  hn_activation act;
  if (hn_activation_parse(name, &act) != 0)
    return hn_fail(HN_EFORMAT, "%s: attribute activation of /model = '%s' is not one of tanh, relu", c->path, name);
  HN_TRY(read_name_attr(c, g, w, "opening", name, sizeof name));
  hn_opening open;
  if (hn_opening_parse(name, &open) != 0)
    return hn_fail(HN_EFORMAT, "%s: attribute opening of /model = '%s' is not one of pad, dense", c->path, name);
  int64_t width, depth, nf, nc;
  HN_TRY(read_int_attr(c, g, w, "width", 1, CK_MAX_WIDTH, &width));
  HN_TRY(read_int_attr(c, g, w, "depth", 1, CK_MAX_DEPTH, &depth));
  HN_TRY(read_int_attr(c, g, w, "n_features", 1, CK_MAX_FEATURES, &nf));
  HN_TRY(read_int_attr(c, g, w, "n_classes", 2, CK_MAX_CLASSES, &nc));
  double T = 0, gamma = 0;
  HN_TRY(hn_h5_read_attr_f64(c->path, g, w, "final_time", &T, NULL));
  HN_TRY(hn_h5_read_attr_f64(c->path, g, w, "gamma", &gamma, NULL));
  *s = (hn_model_spec){.arch = arch,
                       .activation = act,
                       .opening = open,
                       .width = (int)width,
                       .depth = (int)depth,
                       .n_features = (int)nf,
                       .n_classes = (int)nc,
                       .final_time = T,
                       .gamma = gamma};
  /* format_version 2: attribute network = "dense" | "conv" (absent, as in version 1: dense) */
  HN_TRY(read_name_attr(c, g, w, "network", name, sizeof name));
  if (strcmp(name, "conv") == 0) {
    char stages[160], why[160];
    HN_TRY(read_name_attr(c, g, w, "stages", stages, sizeof stages));
    if (hn_stages_parse(stages, &s->n_stages, s->stage_channels, s->stage_layers, why, sizeof why) != 0 ||
        s->n_stages < 1)
      return hn_fail(HN_EFORMAT, "%s: attribute stages of /model = '%s' is not a list of stages (%s)", c->path,
                     stages, s->n_stages < 1 ? "empty" : why);
    HN_TRY(read_name_attr(c, g, w, "norm", name, sizeof name));
    if (hn_norm_parse(name, &s->norm) != 0)
      return hn_fail(HN_EFORMAT, "%s: attribute norm of /model = '%s' is not one of batch, none", c->path, name);
    int64_t ic, ih, iw;
    HN_TRY(read_int_attr(c, g, w, "image_channels", 1, CK_MAX_FEATURES, &ic));
    HN_TRY(read_int_attr(c, g, w, "image_height", 1, CK_MAX_FEATURES, &ih));
    HN_TRY(read_int_attr(c, g, w, "image_width", 1, CK_MAX_FEATURES, &iw));
    s->image_channels = (int)ic;
    s->image_height = (int)ih;
    s->image_width = (int)iw;
  } else if (name[0] && strcmp(name, "dense") != 0) {
    return hn_fail(HN_EFORMAT, "%s: attribute network of /model = '%s' is not dense or conv", c->path, name);
  }
  int status = hn_layout_init(&c->L, s);
  if (status != HN_OK)
    return hn_fail_context(HN_EFORMAT, "%s: the /model attributes describe an impossible model", c->path);
  return HN_OK;
}

static int open_file(ck_file *c, int64_t *file_bytes) {
  hn_h5_err d;
  struct stat st;
  if (stat(c->path, &st) != 0)
    return hn_fail(HN_EIO, "cannot open %s: %s", c->path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return hn_fail(HN_EIO, "%s is a directory, not a checkpoint file", c->path);
  FILE *probe = fopen(c->path, "rb");
  if (!probe)
    return hn_fail(HN_EIO, "cannot open %s: %s", c->path, strerror(errno));
  fclose(probe);
  *file_bytes = (int64_t)st.st_size;
  HN_TRY(hn_h5_check_heaps(c->path)); /* before HDF5 reads its unchecksummed string heap */
  htri_t is = H5Fis_hdf5(c->path);
  if (is == 0)
    return hn_fail(HN_EFORMAT, "%s is not a hamnet checkpoint (not an HDF5 file)", c->path);
  if (is < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot be read as HDF5 (truncated or corrupted file?)%s", c->path,
                   hn_h5_detail(&d));
  hid_t fapl = hn_h5_fapl();
  c->file = H5Fopen(c->path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
  int status = HN_OK;
  if (c->file < 0)
    status = hn_fail(HN_EFORMAT, "%s: cannot open as HDF5 (truncated or corrupted file?)%s", c->path,
                     hn_h5_detail(&d));
  hn_h5_close(&fapl);
  return status;
}

static int read_progress_attrs(ck_file *c) {
  const char *w = "/progress";
  hid_t g = c->g_prog;
  hn_progress *p = &c->prog;
  int64_t v;
  HN_TRY(read_int_attr(c, g, w, "epoch", 0, INT_MAX, &v));
  p->epoch = (int)v;
  HN_TRY(read_int_attr(c, g, w, "step_in_epoch", 0, LONG_MAX, &v));
  p->step_in_epoch = (long)v;
  HN_TRY(read_int_attr(c, g, w, "global_step", 0, LONG_MAX, &v));
  p->global_step = (long)v;
  HN_TRY(read_int_attr(c, g, w, "samples_seen", 0, INT64_MAX, &v));
  p->samples_seen = v;
  HN_TRY(read_int_attr(c, g, w, "level", 0, INT_MAX, &v));
  p->level = (int)v;
  HN_TRY(hn_h5_read_attr_f64(c->path, g, w, "best_val_accuracy", &p->best_val_accuracy, NULL));
  HN_TRY(read_int_attr(c, g, w, "best_epoch", INT_MIN, INT_MAX, &v));
  p->best_epoch = (int)v;
  HN_TRY(hn_h5_read_attr_f64(c->path, g, w, "lr", &p->lr, NULL));
  HN_TRY(read_int_attr(c, g, w, "recon_stride", 0, INT_MAX, &v));
  p->recon_stride = (int)v;
  /* Optional (absent in files of older builds: 0). */
  static const char *const partial[6] = {"epoch_loss_sum", "epoch_correct", "epoch_count",
                                         "epoch_reg_sum",  "epoch_recon",   "epoch_seconds"};
  double *dst[6] = {&p->epoch_loss_sum, &p->epoch_correct, &p->epoch_count,
                    &p->epoch_reg_sum,  &p->epoch_recon,   &p->epoch_seconds};
  for (int i = 0; i < 6; i++) {
    int present = 0;
    *dst[i] = 0;
    HN_TRY(hn_h5_read_attr_f64(c->path, g, w, partial[i], dst[i], &present));
    if (!present)
      *dst[i] = 0;
  }
  return HN_OK;
}

/* Validate a checkpoint up to `level` (CK_SPEC: root and /model attributes; CK_SCHEMA: also
 * every group and dataset, and the size check). Handles stay open in *c (ck_close). */
static int ck_open(ck_file *c, int level) {
  hn_ckpt_info *in = &c->info;
  in->checksummed = 1;
  HN_TRY(open_file(c, &in->file_bytes));
  /* Root attributes. */
  char *fmt = NULL;
  int present = 0;
  int status = hn_h5_read_attr_str(c->path, c->file, "/", "format", &fmt, &present);
  if (status != HN_OK)
    return status; /* names the file and what is wrong with the attribute */
  if (!present)
    return hn_fail(HN_EFORMAT, "%s is not a hamnet checkpoint (it has no format attribute)", c->path);
  if (strcmp(fmt, HN_CKPT_FORMAT) != 0) {
    status = hn_fail(HN_EFORMAT, "%s is not a hamnet checkpoint (format attribute '%.100s')", c->path, fmt);
    free(fmt);
    return status;
  }
  free(fmt);
  int64_t version = 0;
  HN_TRY(read_int_attr(c, c->file, "/", "format_version", INT32_MIN, INT32_MAX, &version));
  if (version > HN_CKPT_FORMAT_VERSION)
    return hn_fail(HN_EFORMAT, "%s: format_version %" PRId64 " is newer than this hamnet supports (%d); "
                   "read it with a newer hamnet", c->path, version, HN_CKPT_FORMAT_VERSION);
  if (version < 1)
    return hn_fail(HN_EFORMAT, "%s: format_version %" PRId64 " is invalid (expected %d)", c->path, version,
                   HN_CKPT_FORMAT_VERSION);
  in->format_version = (int)version;
  HN_TRY(read_int_attr(c, c->file, "/", "n_params", 1, CK_MAX_PARAMS, &in->n_params));
  HN_TRY(read_name_attr(c, c->file, "/", "hamnet_version", in->hamnet_version, sizeof in->hamnet_version));
  HN_TRY(read_name_attr(c, c->file, "/", "git_hash", in->git_hash, sizeof in->git_hash));
  HN_TRY(read_name_attr(c, c->file, "/", "precision", in->precision, sizeof in->precision));
  /* /model attributes and the layout they imply. */
  HN_TRY(open_group(c, "/model", &c->g_model, 1));
  HN_TRY(read_model_spec(c));
  const hn_layout *L = &c->L;
  const hn_model_spec *s = &in->spec;
  if ((uint64_t)in->n_params != (uint64_t)L->n_params)
    return hn_fail(HN_EFORMAT, "%s: attribute n_params = %" PRId64 " does not match the %zu parameters the /model "
                   "attributes imply (%s, width %d, depth %d, %d features, %d classes, opening %s)",
                   c->path, in->n_params, L->n_params, hn_arch_name(s->arch), s->width, s->depth, s->n_features,
                   s->n_classes, hn_opening_name(s->opening));
  if (level == CK_SPEC)
    return HN_OK;

  /* Model datasets. */
  const hsize_t n = (hsize_t)s->width, N = (hsize_t)s->depth, F = (hsize_t)s->n_features,
                C = (hsize_t)s->n_classes, P = (hsize_t)L->n_params;
  const char *by_model = "the /model attributes";
  hsize_t dK[3] = {N, n, n}, db[2] = {N, n}, doK[2] = {n, F}, dob[1] = {n}, dW[2] = {C, n}, dmu[1] = {C};
  if (s->n_stages > 0) { /* convolutional: the flat buffer and the normalisation statistics */
    hsize_t dp[1] = {P}, ds[1] = {(hsize_t)L->n_state};
    HN_TRY(ck_dataset(c, DS_PARAMS, 1, dp, by_model, 0, NULL));
    if (L->n_state > 0)
      HN_TRY(ck_dataset(c, DS_STATE, 1, ds, by_model, 0, NULL));
  } else {
    HN_TRY(ck_dataset(c, DS_K, 3, dK, by_model, 0, NULL));
    HN_TRY(ck_dataset(c, DS_B, 2, db, by_model, 0, NULL));
    if (s->opening == HN_OPEN_DENSE) {
      HN_TRY(ck_dataset(c, DS_OPEN_K, 2, doK, by_model, 0, NULL));
      HN_TRY(ck_dataset(c, DS_OPEN_B, 1, dob, by_model, 0, NULL));
    }
    HN_TRY(ck_dataset(c, DS_CLS_W, 2, dW, by_model, 0, NULL));
    HN_TRY(ck_dataset(c, DS_CLS_B, 1, dmu, by_model, 0, NULL));
  }

  /* Optimiser (optional group). */
  HN_TRY(open_group(c, "/optimizer", &c->g_opt, 0));
  if (c->g_opt >= 0) {
    in->has_optimizer = 1;
    HN_TRY(read_name_attr(c, c->g_opt, "/optimizer", "kind", in->optimizer_kind, sizeof in->optimizer_kind));
    int adam = strcmp(in->optimizer_kind, "adam") == 0;
    if (!adam && strcmp(in->optimizer_kind, "sgd") != 0)
      return hn_fail(HN_EFORMAT, "%s: attribute kind of /optimizer = '%s' is not sgd or adam", c->path,
                     in->optimizer_kind);
    int64_t step = 0;
    HN_TRY(read_int_attr(c, c->g_opt, "/optimizer", "step", 0, LONG_MAX, &step));
    in->optimizer_step = (long)step;
    hsize_t dm[1] = {P};
    HN_TRY(ck_dataset(c, DS_M1, 1, dm, "n_params and the /model attributes", 0, NULL));
    if (adam)
      HN_TRY(ck_dataset(c, DS_M2, 1, dm, "n_params and the /model attributes", 0, NULL));
  }

  /* Progress (optional group). */
  HN_TRY(open_group(c, "/progress", &c->g_prog, 0));
  if (c->g_prog >= 0) {
    in->has_progress = 1;
    HN_TRY(read_progress_attrs(c));
    hsize_t dh[2] = {ANY_LEN, HN_HISTORY_COLS}, rows = 0;
    HN_TRY(ck_dataset(c, DS_HIST, 2, dh, "", CK_MAX_HISTORY, &rows));
    in->n_history = (int)rows;
    c->prog.n_history = (int)rows;
  }

  /* Config (optional group; the attribute is read when asked for). */
  HN_TRY(open_group(c, "/config", &c->g_config, 0));
  if (c->g_config >= 0) {
    hn_h5_err d;
    htri_t e = H5Aexists(c->g_config, "text");
    if (e < 0)
      return hn_fail(HN_EFORMAT, "%s: cannot look up attribute text of /config%s", c->path, hn_h5_detail(&d));
    if (e == 0)
      return hn_fail(HN_EFORMAT, "%s: attribute text of /config is missing", c->path);
    in->has_config = 1;
  }

  /* The arrays the header promises must fit in the file: refuses absurd sizes from a crafted
   * or damaged header before anything is allocated. */
  if (c->data_bytes > (uint64_t)in->file_bytes)
    return hn_fail(HN_EFORMAT, "%s: its datasets need %" PRIu64 " bytes but the file has only %" PRId64
                   " (truncated, or a corrupted header)", c->path, c->data_bytes, in->file_bytes);
  return HN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                   */

static int read_fail(ck_file *c, int idx) {
  hn_h5_err d;
  const char *t = hn_h5_detail(&d);
  if (d.checksum)
    return hn_fail(HN_EFORMAT, "checksum mismatch in %s of %s (the file is corrupted)", ds_names[idx], c->path);
  return hn_fail(HN_EFORMAT, "cannot read %s of %s (truncated or corrupted file?)%s", ds_names[idx], c->path, t);
}

/* A 1-D memory space of `total` elements with the selection start + i*stride + [0, block),
 * i < count. */
static hid_t flat_space(size_t total, size_t start, size_t stride, size_t count, size_t block) {
  hsize_t dim = total;
  hid_t sp = H5Screate_simple(1, &dim, NULL);
  if (sp < 0)
    return sp;
  hsize_t st = start, str = stride > block ? stride : block, cnt = count, blk = block;
  if (H5Sselect_hyperslab(sp, H5S_SELECT_SET, &st, &str, &cnt, &blk) < 0)
    hn_h5_close(&sp);
  return sp;
}

/* Where each model dataset lives in the flat buffer. */
static void model_slab(const hn_layout *L, int idx, size_t *start, size_t *stride, size_t *count, size_t *block) {
  const size_t n = (size_t)L->spec.width, F = (size_t)L->spec.n_features, C = (size_t)L->spec.n_classes;
  *stride = 0;
  *count = 1;
  switch (idx) {
  case DS_K: *start = L->off_layers; *stride = L->layer_size; *count = (size_t)L->spec.depth; *block = n * n; break;
  case DS_B:
    *start = L->off_layers + n * n;
    *stride = L->layer_size;
    *count = (size_t)L->spec.depth;
    *block = n;
    break;
  case DS_OPEN_K: *start = L->off_open_K; *block = n * F; break;
  case DS_OPEN_B: *start = L->off_open_b; *block = n; break;
  case DS_CLS_W: *start = L->off_cls_W; *block = C * n; break;
  case DS_PARAMS: *start = 0; *block = L->n_params; break;
  default: *start = L->off_cls_b; *block = C; break;
  }
}

static int model_io(ck_file *c, int idx, hn_real *params) {
  size_t start, stride, count, block;
  model_slab(&c->L, idx, &start, &stride, &count, &block);
  hid_t ms = flat_space(c->L.n_params, start, stride, count, block);
  int status = HN_OK;
  if (ms < 0)
    status = hn_fail(HN_EINTERNAL, "cannot select %s in the parameter buffer", ds_names[idx]);
  else if (H5Dread(c->d[idx], CK_MEM_REAL, ms, H5S_ALL, H5P_DEFAULT, params) < 0)
    status = read_fail(c, idx);
  hn_h5_close(&ms);
  return status;
}

static int read_history(ck_file *c, double **out) {
  *out = NULL;
  size_t rows = (size_t)c->prog.n_history;
  if (rows == 0)
    return HN_OK;
  double *h = malloc(rows * HN_HISTORY_COLS * sizeof(double));
  if (!h)
    return hn_fail(HN_ENOMEM, "%s: out of memory for %zu history rows", c->path, rows);
  if (H5Dread(c->d[DS_HIST], H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, h) < 0) {
    free(h);
    return read_fail(c, DS_HIST);
  }
  *out = h;
  return HN_OK;
}

/* Variable-length strings live in HDF5's global heap, which carries no checksum: the config
 * text has its own CRC-32 (attribute text_crc32; files without it are read unchecked). */
static int read_config(ck_file *c, char **text) {
  HN_TRY(hn_h5_read_attr_str(c->path, c->g_config, "/config", "text", text, NULL));
  int64_t crc = 0;
  int present = 0;
  int status = hn_h5_read_attr_i64(c->path, c->g_config, "/config", "text_crc32", 0, UINT32_MAX, &crc, &present);
  if (status == HN_OK && present &&
      (uint64_t)crc != (uint64_t)crc32(0L, (const Bytef *)*text, (uInt)strlen(*text)))
    status = hn_fail(HN_EFORMAT, "checksum mismatch in the /config text of %s (the file is corrupted)", c->path);
  if (status != HN_OK) {
    free(*text);
    *text = NULL;
  }
  return status;
}

int hn_ckpt_read(const char *path, hn_model *m, hn_ckpt_optimizer *opt, hn_progress *prog, char **config_text) {
  m->params = m->grads = m->state = NULL;
  if (config_text)
    *config_text = NULL;
  if (prog)
    memset(prog, 0, sizeof *prog);
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  ck_file c;
  ck_init(&c, path);
  int status = ck_open(&c, CK_SCHEMA);
  if (status != HN_OK)
    goto out;
  const hn_ckpt_info *in = &c.info;
  /* Everything that was asked for must be there - checked before allocating. */
  if (opt) {
    if (!in->has_optimizer) {
      status = hn_fail(HN_EFORMAT, "%s has no optimizer state (group /optimizer is missing)", path);
      goto out;
    }
    if (!opt->kind || strcmp(opt->kind, in->optimizer_kind) != 0) {
      status = hn_fail(HN_EFORMAT, "%s holds %s optimizer state, but the run uses %s", path, in->optimizer_kind,
                       opt->kind ? opt->kind : "(none)");
      goto out;
    }
    if (!opt->m1 || (strcmp(in->optimizer_kind, "adam") == 0 && !opt->m2)) {
      status = hn_fail(HN_EINVAL, "reading %s: optimizer buffers not provided", path);
      goto out;
    }
  }
  if (prog && !in->has_progress) {
    status = hn_fail(HN_EFORMAT, "%s has no training progress (group /progress is missing)", path);
    goto out;
  }
  if (config_text && !in->has_config) {
    status = hn_fail(HN_EFORMAT, "%s has no configuration text (group /config is missing)", path);
    goto out;
  }
  if ((status = hn_model_create(m, &in->spec)) != HN_OK) {
    hn_fail_context(status, "reading %s", path);
    goto out;
  }
  static const int model_ds[] = {DS_OPEN_K, DS_OPEN_B, DS_K, DS_B, DS_CLS_W, DS_CLS_B, DS_PARAMS};
  for (size_t i = 0; i < sizeof model_ds / sizeof model_ds[0]; i++)
    if (c.d[model_ds[i]] >= 0 && (status = model_io(&c, model_ds[i], m->params)) != HN_OK)
      goto out;
  if (c.d[DS_STATE] >= 0 && H5Dread(c.d[DS_STATE], CK_MEM_REAL, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->state) < 0) {
    status = read_fail(&c, DS_STATE);
    goto out;
  }
  if (opt) {
    if (H5Dread(c.d[DS_M1], CK_MEM_REAL, H5S_ALL, H5S_ALL, H5P_DEFAULT, opt->m1) < 0) {
      status = read_fail(&c, DS_M1);
      goto out;
    }
    if (c.d[DS_M2] >= 0 && H5Dread(c.d[DS_M2], CK_MEM_REAL, H5S_ALL, H5S_ALL, H5P_DEFAULT, opt->m2) < 0) {
      status = read_fail(&c, DS_M2);
      goto out;
    }
    opt->step = in->optimizer_step;
  }
  if (prog) {
    double *h = NULL;
    if ((status = read_history(&c, &h)) != HN_OK)
      goto out;
    *prog = c.prog;
    prog->history = h;
  }
  if (config_text && (status = read_config(&c, config_text)) != HN_OK)
    goto out;
out:
  ck_close(&c);
  if (status != HN_OK) {
    hn_model_destroy(m);
    if (prog)
      hn_progress_free(prog);
    if (config_text) {
      free(*config_text);
      *config_text = NULL;
    }
  }
  hn_h5_quiet_off(&q);
  return status;
}

int hn_ckpt_read_spec(const char *path, hn_model_spec *spec) {
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  ck_file c;
  ck_init(&c, path);
  int status = ck_open(&c, CK_SPEC);
  if (status == HN_OK)
    *spec = c.info.spec;
  ck_close(&c);
  hn_h5_quiet_off(&q);
  return status;
}

int hn_ckpt_read_info(const char *path, hn_ckpt_info *info) {
  memset(info, 0, sizeof *info);
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  ck_file c;
  ck_init(&c, path);
  int status = ck_open(&c, CK_SCHEMA);
  if (status == HN_OK)
    *info = c.info;
  ck_close(&c);
  hn_h5_quiet_off(&q);
  return status;
}

/* Read a whole dataset block by block (chunk by chunk when it is chunked) into a small
 * buffer: every chunk passes through the filter pipeline, so every checksum is verified. */
static int stream_dataset(ck_file *c, int idx) {
  hn_h5_err d;
  hid_t dset = c->d[idx];
  hid_t fspace = H5Dget_space(dset), dcpl = H5Dget_create_plist(dset), mspace = H5I_INVALID_HID;
  double *buf = NULL;
  int status = HN_OK;
  if (fspace < 0 || dcpl < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot inspect %s%s", c->path, ds_names[idx], hn_h5_detail(&d));
    goto out;
  }
  int rank = H5Sget_simple_extent_ndims(fspace);
  hsize_t dims[H5S_MAX_RANK], block[H5S_MAX_RANK];
  if (rank < 1 || rank > 3 || H5Sget_simple_extent_dims(fspace, dims, NULL) < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot inspect %s", c->path, ds_names[idx]);
    goto out;
  }
  for (int k = 0; k < rank; k++)
    if (dims[k] == 0)
      goto out; /* nothing stored */
  hsize_t elems = 1;
  int chunked = H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, rank, block) == rank;
  if (chunked) {
    for (int k = 0; k < rank; k++) {
      if (block[k] > dims[k])
        block[k] = dims[k];
      elems *= block[k];
    }
  }
  if (!chunked || elems * sizeof(double) > CK_MAX_STREAM_CHUNK) {
    /* Whole trailing dimensions while they fit in CK_STREAM_BYTES, then part of the next. */
    hsize_t prod = 1;
    int k = rank - 1;
    for (; k >= 0; k--) {
      if (prod * dims[k] * sizeof(double) <= CK_STREAM_BYTES) {
        block[k] = dims[k];
        prod *= dims[k];
      } else {
        hsize_t b = CK_STREAM_BYTES / (prod * sizeof(double));
        block[k] = b < 1 ? 1 : b;
        prod *= block[k];
        break;
      }
    }
    for (k--; k >= 0; k--)
      block[k] = 1;
    elems = prod;
  }
  buf = malloc((size_t)elems * sizeof(double));
  if (!buf) {
    status = hn_fail(HN_ENOMEM, "%s: out of memory verifying %s", c->path, ds_names[idx]);
    goto out;
  }
  hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
  for (;;) {
    hsize_t n = 1;
    for (int k = 0; k < rank; k++) {
      count[k] = dims[k] - start[k] < block[k] ? dims[k] - start[k] : block[k];
      n *= count[k];
    }
    hn_h5_close(&mspace);
    mspace = H5Screate_simple(1, &n, NULL);
    if (mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
      status = hn_fail(HN_EINTERNAL, "%s: cannot select a block of %s", c->path, ds_names[idx]);
      goto out;
    }
    if (H5Dread(dset, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, buf) < 0) {
      status = read_fail(c, idx);
      goto out;
    }
    int k = rank - 1;
    for (; k >= 0; k--) {
      start[k] += block[k];
      if (start[k] < dims[k])
        break;
      start[k] = 0;
    }
    if (k < 0)
      break;
  }
out:
  free(buf);
  hn_h5_close(&mspace);
  hn_h5_close(&dcpl);
  hn_h5_close(&fspace);
  return status;
}

int hn_ckpt_verify(const char *path) {
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  ck_file c;
  ck_init(&c, path);
  int status = ck_open(&c, CK_SCHEMA);
  for (int i = 0; status == HN_OK && i < DS_COUNT; i++)
    if (c.d[i] >= 0)
      status = stream_dataset(&c, i);
  if (status == HN_OK && c.info.has_config) {
    char *text = NULL;
    status = read_config(&c, &text);
    free(text);
  }
  ck_close(&c);
  hn_h5_quiet_off(&q);
  return status;
}

void hn_progress_free(hn_progress *p) {
  if (!p)
    return;
  free(p->history);
  p->history = NULL;
  p->n_history = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Fault injection (testing only)                                                            */

enum { FP_CREATE, FP_WRITE, FP_FSYNC, FP_RENAME, FP_DIRSYNC, FP_COUNT };
static const char *const fault_points[FP_COUNT] = {"create", "write", "fsync", "rename", "dirsync"};
static const int fault_errno[FP_COUNT] = {EACCES, ENOSPC, EIO, EIO, EIO};
enum { FA_FAIL, FA_DIE, FA_PAUSE };

typedef struct {
  int action, point;
  double seconds;
  long nth; /* 0: every call */
} fault_item;

#define CK_MAX_FAULTS 8
static char fault_override[256];
static int fault_override_set = 0;
static long write_calls = 0;

void hn_ckpt_set_fault(const char *spec) {
  if (!spec) {
    fault_override_set = 0;
    return;
  }
  snprintf(fault_override, sizeof fault_override, "%s", spec);
  fault_override_set = 1;
}

static int parse_faults(const char *spec, fault_item *items, int *n) {
  *n = 0;
  if (!spec || !*spec)
    return HN_OK;
  char buf[256];
  if (strlen(spec) >= sizeof buf)
    return hn_fail(HN_EINVAL, "HAMNET_FAULT_CKPT is too long");
  snprintf(buf, sizeof buf, "%s", spec);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    fault_item it = {0, -1, 0.0, 0};
    char *at = strchr(tok, '@');
    if (at) {
      *at = '\0';
      char *end;
      it.nth = strtol(at + 1, &end, 10);
      if (*end || it.nth < 1)
        return hn_fail(HN_EINVAL, "HAMNET_FAULT_CKPT: bad call number '@%s' (expected @N with N >= 1)", at + 1);
    }
    char *eq = strchr(tok, '=');
    if (eq) {
      *eq = '\0';
      char *end;
      it.seconds = strtod(eq + 1, &end);
      if (*end || end == eq + 1 || !(it.seconds >= 0) || it.seconds > 86400)
        return hn_fail(HN_EINVAL, "HAMNET_FAULT_CKPT: bad seconds '%s'", eq + 1);
    }
    const char *rest;
    if (strncmp(tok, "fail_", 5) == 0) {
      it.action = FA_FAIL;
      rest = tok + 5;
    } else if (strncmp(tok, "die_", 4) == 0) {
      it.action = FA_DIE;
      rest = tok + 4;
    } else if (strncmp(tok, "pause_", 6) == 0) {
      it.action = FA_PAUSE;
      rest = tok + 6;
    } else {
      return hn_fail(HN_EINVAL, "HAMNET_FAULT_CKPT: '%s' does not start with fail_, die_ or pause_", tok);
    }
    if (strncmp(rest, "before_", 7) == 0)
      rest += 7;
    for (int p = 0; p < FP_COUNT; p++)
      if (strcmp(rest, fault_points[p]) == 0)
        it.point = p;
    if (it.point < 0)
      return hn_fail(HN_EINVAL, "HAMNET_FAULT_CKPT: unknown point '%s' (create, write, fsync, rename, dirsync)", rest);
    if (it.action == FA_PAUSE && !eq)
      return hn_fail(HN_EINVAL, "HAMNET_FAULT_CKPT: pause_%s needs =SECONDS", rest);
    if (*n >= CK_MAX_FAULTS)
      return hn_fail(HN_EINVAL, "HAMNET_FAULT_CKPT: more than %d items", CK_MAX_FAULTS);
    items[(*n)++] = it;
  }
  return HN_OK;
}

typedef struct {
  fault_item items[CK_MAX_FAULTS];
  int n;
  long call;
  const char *spec;
} fault_state;

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)}, rem;
  while (nanosleep(&ts, &rem) != 0 && errno == EINTR)
    ts = rem;
}

/* Apply the faults of `point`: HN_OK, or HN_EIO for an injected failure. */
static int fault_at(const fault_state *f, int point, const char *tmp) {
  for (int i = 0; i < f->n; i++) {
    const fault_item *it = &f->items[i];
    if (it->point != point || (it->nth && it->nth != f->call))
      continue;
    switch (it->action) {
    case FA_DIE:
      fprintf(stderr, "hamnet: HAMNET_FAULT_CKPT: dying before %s of %s (pid %ld)\n", fault_points[point], tmp,
              (long)getpid());
      fflush(stderr);
      raise(SIGKILL);
      break;
    case FA_PAUSE:
      fprintf(stderr, "hamnet: HAMNET_FAULT_CKPT: pausing %g s before %s of %s (pid %ld)\n", it->seconds,
              fault_points[point], tmp, (long)getpid());
      fflush(stderr);
      sleep_seconds(it->seconds);
      break;
    default:
      return hn_fail(HN_EIO, "cannot write checkpoint %s: %s failed: %s (injected by HAMNET_FAULT_CKPT=%s)", tmp,
                     fault_points[point], strerror(fault_errno[point]), f->spec);
    }
  }
  return HN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */

/* Chunk dims of at most CK_CHUNK_BYTES: whole trailing dimensions while they fit, then as
 * much of the next one as fits, 1 for the rest (so K gets [k, n, n] or [1, r, n]). */
static void chunk_dims(int rank, const hsize_t *dims, size_t elem, hsize_t *chunk) {
  hsize_t prod = elem;
  int k = rank - 1;
  for (; k >= 0; k--) {
    hsize_t dk = dims[k] ? dims[k] : 1;
    if (prod * dk <= CK_CHUNK_BYTES) {
      chunk[k] = dk;
      prod *= dk;
    } else {
      hsize_t c = CK_CHUNK_BYTES / prod;
      chunk[k] = c < 1 ? 1 : c;
      break;
    }
  }
  for (k--; k >= 0; k--)
    chunk[k] = 1;
}

/* Create a chunked, fletcher32-checksummed dataset `name` under loc and write it from `buf`
 * through the memory selection `mspace` (H5S_ALL: buf is the whole array). Extendable in
 * dimension 0 when `extendable` (the history may have zero rows). */
static int write_dataset(const char *tmp, hid_t loc, const char *full, const char *name, int rank,
                         const hsize_t *dims, hid_t filetype, hid_t memtype, size_t elem, hid_t mspace,
                         const void *buf, int extendable) {
  hn_h5_err d;
  hsize_t chunk[4], maxdims[4];
  chunk_dims(rank, dims, elem, chunk);
  for (int k = 0; k < rank; k++)
    maxdims[k] = dims[k];
  if (extendable)
    maxdims[0] = H5S_UNLIMITED;
  hid_t space = H5Screate_simple(rank, dims, maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hid_t dset = H5I_INVALID_HID;
  int status = HN_OK;
  int empty = 0;
  for (int k = 0; k < rank; k++)
    empty |= dims[k] == 0;
  if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0 ||
      (dset = H5Dcreate2(loc, name, filetype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
      (!empty && H5Dwrite(dset, memtype, mspace, H5S_ALL, H5P_DEFAULT, buf) < 0))
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: writing %s failed%s", tmp, full, hn_h5_detail(&d));
  if (dset >= 0 && H5Dclose(dset) < 0 && status == HN_OK)
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: writing %s failed%s", tmp, full, hn_h5_detail(&d));
  hn_h5_close(&dcpl);
  hn_h5_close(&space);
  return status;
}

static int write_model_dataset(const char *tmp, hid_t loc, const hn_model *m, int idx, const char *name, int rank,
                               const hsize_t *dims) {
  size_t start, stride, count, block;
  model_slab(&m->layout, idx, &start, &stride, &count, &block);
  hid_t ms = flat_space(m->layout.n_params, start, stride, count, block);
  if (ms < 0)
    return hn_fail(HN_EINTERNAL, "cannot select %s in the parameter buffer", ds_names[idx]);
  int status = write_dataset(tmp, loc, ds_names[idx], name, rank, dims, CK_FILE_REAL, CK_MEM_REAL, sizeof(hn_real),
                             ms, m->params, 0);
  hn_h5_close(&ms);
  return status;
}

/* Attributes stay in the group's object header, which carries a checksum in the 1.8 format,
 * up to this many (HDF5's default moves more than 8 to a "dense" fractal heap whose blocks have
 * no checksum - /model and /progress have more than 8). */
#define CK_MAX_COMPACT_ATTRS 64

static int create_group(const char *tmp, hid_t loc, const char *name, const char *full, hid_t *g) {
  hn_h5_err d;
  hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
  if (gcpl >= 0)
    H5Pset_attr_phase_change(gcpl, CK_MAX_COMPACT_ATTRS, CK_MAX_COMPACT_ATTRS - 8);
  *g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl >= 0 ? gcpl : H5P_DEFAULT, H5P_DEFAULT);
  hn_h5_close(&gcpl);
  if (*g < 0)
    return hn_fail(HN_EIO, "cannot write checkpoint %s: creating %s failed%s", tmp, full, hn_h5_detail(&d));
  return HN_OK;
}

static int close_group(const char *tmp, hid_t *g, const char *full, int status) {
  hn_h5_err d;
  if (*g >= 0 && H5Gclose(*g) < 0 && status == HN_OK)
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: closing %s failed%s", tmp, full, hn_h5_detail(&d));
  *g = H5I_INVALID_HID;
  return status;
}

static int write_model(const char *tmp, hid_t file, const hn_model *m) {
  const hn_model_spec *s = &m->layout.spec;
  const hsize_t n = (hsize_t)s->width, N = (hsize_t)s->depth, F = (hsize_t)s->n_features,
                C = (hsize_t)s->n_classes;
  hid_t g = H5I_INVALID_HID, sub = H5I_INVALID_HID;
  const char *w = "/model";
  int status = create_group(tmp, file, "model", w, &g);
  if (status != HN_OK)
    return status;
  hsize_t dK[3] = {N, n, n}, db[2] = {N, n}, doK[2] = {n, F}, dob[1] = {n}, dW[2] = {C, n}, dmu[1] = {C};
  if ((status = hn_h5_write_attr_str(tmp, g, w, "network", s->n_stages > 0 ? "conv" : "dense")) != HN_OK ||
      (status = hn_h5_write_attr_str(tmp, g, w, "arch", hn_arch_name(s->arch))) != HN_OK ||
      (status = hn_h5_write_attr_str(tmp, g, w, "activation", hn_activation_name(s->activation))) != HN_OK ||
      (status = hn_h5_write_attr_str(tmp, g, w, "opening", hn_opening_name(s->opening))) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "width", H5T_STD_I32LE, s->width)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "depth", H5T_STD_I32LE, s->depth)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "n_features", H5T_STD_I32LE, s->n_features)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "n_classes", H5T_STD_I32LE, s->n_classes)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "final_time", s->final_time)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "gamma", s->gamma)) != HN_OK)
    goto out;
  if (s->n_stages > 0) { /* convolutional (hamnet/convnet.h): spec attributes, the flat buffer, the statistics */
    char stages[160];
    hn_stages_format(s->n_stages, s->stage_channels, s->stage_layers, stages, sizeof stages);
    hsize_t dp[1] = {m->layout.n_params}, ds[1] = {m->layout.n_state};
    if ((status = hn_h5_write_attr_str(tmp, g, w, "stages", stages)) != HN_OK ||
        (status = hn_h5_write_attr_str(tmp, g, w, "norm", hn_norm_name(s->norm))) != HN_OK ||
        (status = hn_h5_write_attr_i64(tmp, g, w, "image_channels", H5T_STD_I32LE, s->image_channels)) != HN_OK ||
        (status = hn_h5_write_attr_i64(tmp, g, w, "image_height", H5T_STD_I32LE, s->image_height)) != HN_OK ||
        (status = hn_h5_write_attr_i64(tmp, g, w, "image_width", H5T_STD_I32LE, s->image_width)) != HN_OK ||
        (status = write_model_dataset(tmp, g, m, DS_PARAMS, "params", 1, dp)) != HN_OK)
      goto out;
    if (m->layout.n_state > 0)
      status = write_dataset(tmp, g, "/model/state", "state", 1, ds, CK_FILE_REAL, CK_MEM_REAL, sizeof(hn_real),
                             H5S_ALL, m->state, 0);
    goto out;
  }
  if ((status = write_model_dataset(tmp, g, m, DS_K, "K", 3, dK)) != HN_OK ||
      (status = write_model_dataset(tmp, g, m, DS_B, "b", 2, db)) != HN_OK)
    goto out;
  if (s->opening == HN_OPEN_DENSE) {
    if ((status = create_group(tmp, g, "open", "/model/open", &sub)) != HN_OK ||
        (status = write_model_dataset(tmp, sub, m, DS_OPEN_K, "K", 2, doK)) != HN_OK ||
        (status = write_model_dataset(tmp, sub, m, DS_OPEN_B, "b", 1, dob)) != HN_OK)
      goto out;
    if ((status = close_group(tmp, &sub, "/model/open", status)) != HN_OK)
      goto out;
  }
  if ((status = create_group(tmp, g, "cls", "/model/cls", &sub)) != HN_OK ||
      (status = write_model_dataset(tmp, sub, m, DS_CLS_W, "W", 2, dW)) != HN_OK ||
      (status = write_model_dataset(tmp, sub, m, DS_CLS_B, "b", 1, dmu)) != HN_OK)
    goto out;
out:
  status = close_group(tmp, &sub, "/model/cls", status);
  return close_group(tmp, &g, w, status);
}

static int write_optimizer(const char *tmp, hid_t file, const hn_ckpt_optimizer *opt, size_t n_params) {
  const char *w = "/optimizer";
  hid_t g = H5I_INVALID_HID;
  hsize_t dims[1] = {n_params};
  int status = create_group(tmp, file, "optimizer", w, &g);
  if (status != HN_OK)
    return status;
  if ((status = hn_h5_write_attr_str(tmp, g, w, "kind", opt->kind)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "step", H5T_STD_I64LE, opt->step)) != HN_OK ||
      (status = write_dataset(tmp, g, "/optimizer/m1", "m1", 1, dims, CK_FILE_REAL, CK_MEM_REAL, sizeof(hn_real),
                              H5S_ALL, opt->m1, 0)) != HN_OK)
    goto out;
  if (strcmp(opt->kind, "adam") == 0)
    status = write_dataset(tmp, g, "/optimizer/m2", "m2", 1, dims, CK_FILE_REAL, CK_MEM_REAL, sizeof(hn_real),
                           H5S_ALL, opt->m2, 0);
out:
  return close_group(tmp, &g, w, status);
}

static int write_progress(const char *tmp, hid_t file, const hn_progress *p) {
  const char *w = "/progress";
  hid_t g = H5I_INVALID_HID;
  hsize_t dims[2] = {(hsize_t)p->n_history, HN_HISTORY_COLS};
  int status = create_group(tmp, file, "progress", w, &g);
  if (status != HN_OK)
    return status;
  if ((status = hn_h5_write_attr_i64(tmp, g, w, "epoch", H5T_STD_I32LE, p->epoch)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "step_in_epoch", H5T_STD_I64LE, p->step_in_epoch)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "global_step", H5T_STD_I64LE, p->global_step)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "samples_seen", H5T_STD_I64LE, p->samples_seen)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "level", H5T_STD_I32LE, p->level)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "best_val_accuracy", p->best_val_accuracy)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "best_epoch", H5T_STD_I32LE, p->best_epoch)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "lr", p->lr)) != HN_OK ||
      (status = hn_h5_write_attr_i64(tmp, g, w, "recon_stride", H5T_STD_I32LE, p->recon_stride)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "epoch_loss_sum", p->epoch_loss_sum)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "epoch_correct", p->epoch_correct)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "epoch_count", p->epoch_count)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "epoch_reg_sum", p->epoch_reg_sum)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "epoch_recon", p->epoch_recon)) != HN_OK ||
      (status = hn_h5_write_attr_f64(tmp, g, w, "epoch_seconds", p->epoch_seconds)) != HN_OK ||
      (status = write_dataset(tmp, g, "/progress/history", "history", 2, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                              sizeof(double), H5S_ALL, p->history, 1)) != HN_OK)
    goto out;
  /* Column names for h5py users (not needed for reading). */
  hid_t d = H5Dopen2(g, "history", H5P_DEFAULT);
  if (d < 0)
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: reopening /progress/history failed", tmp);
  else
    status = hn_h5_write_attr_str(tmp, d, "/progress/history", "columns", history_columns);
  if (d >= 0 && H5Dclose(d) < 0 && status == HN_OK)
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: closing /progress/history failed", tmp);
out:
  return close_group(tmp, &g, w, status);
}

static int write_config(const char *tmp, hid_t file, const char *text) {
  hid_t g = H5I_INVALID_HID;
  int status = create_group(tmp, file, "config", "/config", &g);
  if (status == HN_OK)
    status = hn_h5_write_attr_str(tmp, g, "/config", "text", text);
  if (status == HN_OK)
    status = hn_h5_write_attr_i64(tmp, g, "/config", "text_crc32", H5T_STD_I64LE,
                                  (int64_t)crc32(0L, (const Bytef *)text, (uInt)strlen(text)));
  return close_group(tmp, &g, "/config", status);
}

static int write_root(const char *tmp, hid_t file, const hn_model *m) {
  const char *w = "/";
  HN_TRY(hn_h5_write_attr_str(tmp, file, w, "format", HN_CKPT_FORMAT));
  HN_TRY(hn_h5_write_attr_i64(tmp, file, w, "format_version", H5T_STD_I32LE, HN_CKPT_FORMAT_VERSION));
  HN_TRY(hn_h5_write_attr_str(tmp, file, w, "hamnet_version", HN_VERSION));
  HN_TRY(hn_h5_write_attr_str(tmp, file, w, "git_hash", HN_GIT_HASH));
  HN_TRY(hn_h5_write_attr_str(tmp, file, w, "precision", HN_REAL_NAME));
  return hn_h5_write_attr_i64(tmp, file, w, "n_params", H5T_STD_I64LE, (int64_t)m->layout.n_params);
}

/* open(2) + fsync(2) + close(2) of a folder: 0 or an errno value. */
static int fsync_dir(const char *p) {
  int fd;
  do
    fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return errno;
  int rc;
  do
    rc = fsync(fd);
  while (rc != 0 && errno == EINTR);
  int err = rc != 0 ? errno : 0;
  close(fd);
  if (err == EINVAL || err == ENOTSUP) /* file systems that cannot sync folders */
    err = 0;
  return err;
}

static int check_write_args(const char *path, const hn_model *m, const hn_ckpt_optimizer *opt,
                            const hn_progress *prog) {
  if (!path || !*path)
    return hn_fail(HN_EINVAL, "hn_ckpt_write: no path");
  if (!m || !m->params)
    return hn_fail(HN_EINVAL, "writing %s: no model parameters", path);
  if (m->layout.n_state > 0 && !m->state)
    return hn_fail(HN_EINVAL, "writing %s: the model has no normalisation statistics", path);
  if (opt) {
    int adam = opt->kind && strcmp(opt->kind, "adam") == 0;
    if (!opt->kind || (!adam && strcmp(opt->kind, "sgd") != 0))
      return hn_fail(HN_EINVAL, "writing %s: optimizer kind '%s' is not sgd or adam", path,
                     opt->kind ? opt->kind : "(null)");
    if (!opt->m1 || (adam && !opt->m2))
      return hn_fail(HN_EINVAL, "writing %s: the %s optimizer state has no moment buffer", path, opt->kind);
    if (opt->step < 0)
      return hn_fail(HN_EINVAL, "writing %s: negative optimizer step %ld", path, opt->step);
  }
  if (prog && (prog->n_history < 0 || prog->n_history > CK_MAX_HISTORY || (prog->n_history > 0 && !prog->history)))
    return hn_fail(HN_EINVAL, "writing %s: bad progress history (%d rows)", path, prog->n_history);
  if (prog && (prog->epoch < 0 || prog->step_in_epoch < 0 || prog->global_step < 0 || prog->samples_seen < 0 ||
               prog->level < 0 || prog->recon_stride < 0))
    return hn_fail(HN_EINVAL, "writing %s: negative progress counter", path);
  return HN_OK;
}

/* The core driver's memory, through HDF5's file image callbacks: allocated and grown as
 * usual, but when the file is closed the buffer is kept (like H5LT's DONT_RELEASE flag)
 * instead of freed - it then holds exactly the closed file's bytes, and no copy is needed. */
typedef struct {
  unsigned char *ptr;
  size_t size;
  int kept;
} ck_image;

static void *img_malloc(size_t size, H5FD_file_image_op_t op, void *udata) {
  ck_image *im = udata;
  (void)op;
  im->ptr = malloc(size);
  im->size = im->ptr ? size : 0;
  return im->ptr;
}
static void *img_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *udata) {
  (void)op;
  (void)udata;
  return memcpy(dest, src, size);
}
static void *img_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *udata) {
  ck_image *im = udata;
  (void)op;
  void *p = realloc(ptr, size);
  if (p) {
    im->ptr = p;
    im->size = size;
  }
  return p;
}
static herr_t img_free(void *ptr, H5FD_file_image_op_t op, void *udata) {
  ck_image *im = udata;
  if (ptr && ptr == im->ptr && op == H5FD_FILE_IMAGE_OP_FILE_CLOSE) {
    im->kept = 1;
    return 0;
  }
  if (ptr == im->ptr) {
    im->ptr = NULL;
    im->size = 0;
  }
  free(ptr);
  return 0;
}
static void *img_udata_copy(void *udata) { return udata; }
static herr_t img_udata_free(void *udata) {
  (void)udata;
  return 0;
}

/* Length of the HDF5 file in a closed image: the "end of file address" of its version 2
 * superblock (written by libver V18: signature, 4 one-byte fields, base address, extension
 * address, end of file address, ...; little-endian, 8-byte offsets). 0 if it is not that. */
static size_t image_length(const ck_image *im) {
  static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (!im->ptr || im->size < 48 || memcmp(im->ptr, sig, 8) != 0 || im->ptr[8] != 2 || im->ptr[9] != 8)
    return 0;
  uint64_t eof = 0;
  for (int k = 7; k >= 0; k--)
    eof = (eof << 8) | im->ptr[28 + k];
  return eof >= 48 && eof <= im->size ? (size_t)eof : 0;
}

/* Build the whole file in memory (HDF5's core driver, no backing store, 1.8 file format, whose
 * superblock and object headers carry checksums) and hand back its bytes (malloc'ed). HDF5
 * never touches the disk: a failed write(2) can then never leave HDF5 with a file it cannot
 * close (HDF5 1.10 crashes at exit after a failed H5Fclose). */
static int build_image(const char *tmp, const hn_model *m, const hn_ckpt_optimizer *opt, const hn_progress *prog,
                       const char *config_text, unsigned char **image, size_t *size) {
  hn_h5_err d;
  *image = NULL;
  *size = 0;
  /* Grow the image in steps of about its final size, so it is (re)allocated only once or twice. */
  size_t arrays = 1 + (opt ? 1 : 0) + (opt && opt->m2 && strcmp(opt->kind, "adam") == 0 ? 1 : 0);
  size_t estimate = arrays * m->layout.n_params * sizeof(hn_real) + (size_t)(prog ? prog->n_history : 0) * 64 +
                    (config_text ? strlen(config_text) : 0) + ((size_t)256 << 10);
  estimate += estimate / 16; /* chunk checksums, chunk indexes, object headers */
  size_t increment = ((estimate >> 20) + 1) << 20;
  ck_image im = {NULL, 0, 0};
  H5FD_file_image_callbacks_t cb = {img_malloc,     img_memcpy,     img_realloc, img_free,
                                    img_udata_copy, img_udata_free, &im};
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_fapl_core(fapl, increment, 0) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
      H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 || H5Pset_file_image_callbacks(fapl, &cb) < 0) {
    hn_h5_close(&fapl);
    return hn_fail(HN_EIO, "cannot write checkpoint %s: HDF5 setup failed%s", tmp, hn_h5_detail(&d));
  }
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  hn_h5_close(&fapl);
  if (file < 0) {
    free(im.ptr);
    return hn_fail(HN_EIO, "cannot write checkpoint %s: creating the HDF5 image failed%s", tmp, hn_h5_detail(&d));
  }
  int status = HN_OK;
  if ((status = write_root(tmp, file, m)) == HN_OK && (status = write_model(tmp, file, m)) == HN_OK &&
      (!opt || (status = write_optimizer(tmp, file, opt, m->layout.n_params)) == HN_OK) &&
      (!prog || (status = write_progress(tmp, file, prog)) == HN_OK) && config_text)
    status = write_config(tmp, file, config_text);
  if (H5Fclose(file) < 0 && status == HN_OK)
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: closing the HDF5 image failed%s", tmp, hn_h5_detail(&d));
  size_t n = status == HN_OK && im.kept ? image_length(&im) : 0;
  if (status == HN_OK && n == 0)
    status = hn_fail(HN_EINTERNAL, "cannot write checkpoint %s: the HDF5 image is not as expected", tmp);
  if (status != HN_OK) {
    free(im.ptr);
    return status;
  }
  *image = im.ptr;
  *size = n;
  return HN_OK;
}

/* write(2) all of buf; 0 or an errno value. */
static int write_all(int fd, const unsigned char *buf, size_t size) {
  while (size > 0) {
    size_t piece = size < ((size_t)1 << 30) ? size : ((size_t)1 << 30);
    ssize_t w = write(fd, buf, piece);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (w == 0)
      return EIO;
    buf += w;
    size -= (size_t)w;
  }
  return 0;
}

int hn_ckpt_write(const char *path, const hn_model *m, const hn_ckpt_optimizer *opt, const hn_progress *prog,
                  const char *config_text) {
  HN_TRY(check_write_args(path, m, opt, prog));
  fault_state f;
  f.call = ++write_calls;
  f.spec = fault_override_set ? fault_override : getenv("HAMNET_FAULT_CKPT");
  if (!f.spec)
    f.spec = "";
  HN_TRY(parse_faults(f.spec, f.items, &f.n));
  size_t len = strlen(path);
  char *tmp = malloc(len + 5);
  if (!tmp)
    return hn_fail(HN_ENOMEM, "out of memory writing %s", path);
  memcpy(tmp, path, len);
  memcpy(tmp + len, ".tmp", 5);
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  unsigned char *image = NULL;
  size_t size = 0;
  int status = HN_OK, created = 0, renamed = 0, fd = -1, err;
  char *dir = NULL;
  if ((status = build_image(tmp, m, opt, prog, config_text, &image, &size)) != HN_OK)
    goto out;
  do
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    status = hn_fail(HN_EIO, "cannot create %s: %s (does its directory exist and is it writable?)", tmp,
                     strerror(errno));
    goto out;
  }
  created = 1;
  size_t half = size / 2;
  if ((status = fault_at(&f, FP_CREATE, tmp)) != HN_OK)
    goto out;
  if ((err = write_all(fd, image, half)) == 0 && (status = fault_at(&f, FP_WRITE, tmp)) == HN_OK)
    err = write_all(fd, image + half, size - half);
  if (status != HN_OK)
    goto out;
  if (err) {
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: %s", tmp, strerror(err));
    goto out;
  }
  free(image);
  image = NULL;
  if ((status = fault_at(&f, FP_FSYNC, tmp)) != HN_OK)
    goto out;
  int rc;
  do
    rc = fsync(fd);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: fsync failed: %s", tmp, strerror(errno));
    goto out;
  }
  rc = close(fd);
  fd = -1;
  if (rc != 0 && errno != EINTR) {
    status = hn_fail(HN_EIO, "cannot write checkpoint %s: close failed: %s", tmp, strerror(errno));
    goto out;
  }
  if ((status = fault_at(&f, FP_RENAME, tmp)) != HN_OK)
    goto out;
  if (rename(tmp, path) != 0) {
    status = hn_fail(HN_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    goto out;
  }
  renamed = 1;
  /* Make the rename itself durable: fsync the folder. */
  if ((status = fault_at(&f, FP_DIRSYNC, path)) != HN_OK)
    goto out;
  dir = strdup(path);
  if (!dir) {
    status = hn_fail(HN_ENOMEM, "out of memory writing %s", path);
    goto out;
  }
  char *slash = strrchr(dir, '/');
  const char *dname = ".";
  if (slash == dir)
    dname = "/";
  else if (slash) {
    *slash = '\0';
    dname = dir;
  }
  if ((err = fsync_dir(dname)) != 0)
    status = hn_fail(HN_EIO, "checkpoint %s was written and renamed into place, but fsync of its folder %s "
                     "failed: %s", path, dname, strerror(err));
out:
  if (fd >= 0)
    close(fd);
  if (status != HN_OK && created && !renamed)
    unlink(tmp);
  free(dir);
  free(image);
  free(tmp);
  hn_h5_quiet_off(&q);
  return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Names, discovery, pruning                                                                 */

void hn_ckpt_name(long global_step, char *buf, size_t size) {
  if (size > 0)
    snprintf(buf, size, "ckpt-%010ld.h5", global_step);
}

typedef struct {
  long long step;
  char *name;
} ck_entry;

/* "ckpt-<digits>.h5" exactly (so never a .tmp file); *step = the number. */
static int parse_ckpt_name(const char *name, long long *step) {
  if (strncmp(name, "ckpt-", 5) != 0)
    return 0;
  const char *p = name + 5;
  size_t digits = strspn(p, "0123456789");
  if (digits == 0 || digits > 18 || strcmp(p + digits, ".h5") != 0)
    return 0;
  *step = strtoll(p, NULL, 10);
  return 1;
}

static int cmp_entry_desc(const void *a, const void *b) {
  const ck_entry *x = a, *y = b;
  if (x->step != y->step)
    return x->step < y->step ? 1 : -1;
  return -strcmp(x->name, y->name);
}

static void free_entries(ck_entry *e, int n) {
  for (int i = 0; i < n; i++)
    free(e[i].name);
  free(e);
}

/* The ckpt-*.h5 files of `dir`, newest (largest step) first. */
static int list_checkpoints(const char *dir, ck_entry **out, int *count) {
  *out = NULL;
  *count = 0;
  DIR *dp = opendir(dir);
  if (!dp)
    return hn_fail(HN_EIO, "cannot open run directory %s: %s", dir, strerror(errno));
  ck_entry *e = NULL;
  int n = 0, cap = 0, status = HN_OK;
  struct dirent *de;
  while ((de = readdir(dp)) != NULL) {
    long long step;
    if (!parse_ckpt_name(de->d_name, &step))
      continue;
    if (n == cap) {
      int ncap = cap ? 2 * cap : 16;
      ck_entry *ne = realloc(e, (size_t)ncap * sizeof *ne);
      if (!ne) {
        status = hn_fail(HN_ENOMEM, "out of memory listing %s", dir);
        break;
      }
      e = ne;
      cap = ncap;
    }
    e[n].step = step;
    e[n].name = strdup(de->d_name);
    if (!e[n].name) {
      status = hn_fail(HN_ENOMEM, "out of memory listing %s", dir);
      break;
    }
    n++;
  }
  closedir(dp);
  if (status != HN_OK) {
    free_entries(e, n);
    return status;
  }
  if (n > 1)
    qsort(e, (size_t)n, sizeof *e, cmp_entry_desc);
  *out = e;
  *count = n;
  return HN_OK;
}

static char *join_path(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p)
    return NULL;
  memcpy(p, dir, a);
  size_t k = a;
  if (a > 0 && dir[a - 1] != '/')
    p[k++] = '/';
  memcpy(p + k, name, b + 1);
  return p;
}

int hn_ckpt_find_latest(const char *run_dir, char *path, size_t size) {
  if (size > 0)
    path[0] = '\0';
  ck_entry *e;
  int n;
  HN_TRY(list_checkpoints(run_dir, &e, &n));
  int skipped = 0;
  for (int i = 0; i < n; i++) {
    char *full = join_path(run_dir, e[i].name);
    if (!full) {
      free_entries(e, n);
      return hn_fail(HN_ENOMEM, "out of memory searching %s", run_dir);
    }
    int status = hn_ckpt_verify(full);
    if (status == HN_OK) {
      int fits = strlen(full) < size;
      if (fits)
        memcpy(path, full, strlen(full) + 1);
      free(full);
      free_entries(e, n);
      if (!fits)
        return hn_fail(HN_EINVAL, "checkpoint path in %s is longer than %zu bytes", run_dir, size);
      hn_error_clear();
      return HN_OK;
    }
    hn_log_warn("skipping corrupt checkpoint %s: %s", full, hn_errmsg());
    skipped++;
    free(full);
  }
  free_entries(e, n);
  if (skipped)
    return hn_fail(HN_EIO, "no readable checkpoint in %s (%d corrupt one%s skipped)", run_dir, skipped,
                   skipped == 1 ? "" : "s");
  return hn_fail(HN_EIO, "no checkpoint in %s", run_dir);
}

int hn_ckpt_prune(const char *run_dir, int keep) {
  if (keep < 0)
    return hn_fail(HN_EINVAL, "hn_ckpt_prune: keep = %d must be >= 0", keep);
  ck_entry *e;
  int n;
  HN_TRY(list_checkpoints(run_dir, &e, &n));
  int status = HN_OK;
  for (int i = keep; i < n; i++) {
    char *full = join_path(run_dir, e[i].name);
    if (!full) {
      status = hn_fail(HN_ENOMEM, "out of memory pruning %s", run_dir);
      break;
    }
    if (unlink(full) != 0 && errno != ENOENT && status == HN_OK)
      status = hn_fail(HN_EIO, "cannot delete old checkpoint %s: %s", full, strerror(errno));
    free(full);
  }
  free_entries(e, n);
  return status;
}
