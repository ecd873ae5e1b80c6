/* import_idx.c - IDX (MNIST / Fashion-MNIST) image + label files to a data set (see
 * hn_import_idx in hamnet/data.h). zlib's gzopen/gzread read gzipped and plain files alike. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"

#define IDX_MAGIC_IMAGES 0x00000803u /* uint8, 3 dimensions */
#define IDX_MAGIC_LABELS 0x00000801u /* uint8, 1 dimension */
#define IDX_CHUNK (16u << 20)

typedef struct {
  const char *path;
  gzFile gz;
  int64_t dims[3];
} idx_file;

static void idx_close(idx_file *f) {
  if (f->gz)
    gzclose(f->gz);
  f->gz = NULL;
}

/* Read exactly len bytes; a short read is a truncated file, a zlib error a corrupted one. */
static int idx_read(idx_file *f, void *buf, size_t len, const char *what) {
  unsigned char *p = buf;
  size_t done = 0;
  while (done < len) {
    size_t want = len - done < IDX_CHUNK ? len - done : IDX_CHUNK;
    int got = gzread(f->gz, p + done, (unsigned)want);
    if (got < 0) {
      int err = 0;
      const char *msg = gzerror(f->gz, &err);
      if (err == Z_BUF_ERROR) /* "unexpected end of file": a truncated gzip stream */
        break;
      return hn_fail(HN_EFORMAT, "%s: cannot read %s: %s (corrupted gzip file?)", f->path, what,
                     err == Z_ERRNO ? strerror(errno) : msg);
    }
    if (got == 0)
      break;
    done += (size_t)got;
  }
  if (done < len) {
    int err = 0;
    gzerror(f->gz, &err);
    return hn_fail(HN_EFORMAT, "%s: truncated: expected %zu bytes of %s, only %zu present%s", f->path, len, what, done,
                   err == Z_DATA_ERROR ? " (gzip data corrupted)" : "");
  }
  return HN_OK;
}

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Open `path` and read its header: magic `want` with `ndims` dimensions. */
static int idx_open(idx_file *f, const char *path, uint32_t want, int ndims) {
  memset(f, 0, sizeof *f);
  f->path = path;
  f->gz = gzopen(path, "rb");
  if (!f->gz)
    return hn_fail(HN_EIO, "cannot open %s: %s", path, errno ? strerror(errno) : "out of memory");
  gzbuffer(f->gz, 1u << 20);
  unsigned char head[16];
  int status = idx_read(f, head, 4, "the IDX header");
  if (status != HN_OK)
    return status;
  uint32_t magic = be32(head);
  if (magic != want) {
    const char *kind = want == IDX_MAGIC_IMAGES ? "uint8 images (0x00000803)" : "uint8 labels (0x00000801)";
    if (magic == IDX_MAGIC_IMAGES || magic == IDX_MAGIC_LABELS)
      return hn_fail(HN_EFORMAT, "%s: IDX magic 0x%08x is a %s file, expected %s - images and labels swapped?",
                     path, magic, magic == IDX_MAGIC_IMAGES ? "image" : "label", kind);
    if ((magic >> 16) != 0)
      return hn_fail(HN_EFORMAT, "%s: not an IDX file (magic 0x%08x, expected %s)", path, magic, kind);
    return hn_fail(HN_EFORMAT, "%s: IDX magic 0x%08x: data type 0x%02x with %u dimensions; expected %s", path, magic,
                   (magic >> 8) & 0xffu, magic & 0xffu, kind);
  }
  if ((status = idx_read(f, head, (size_t)ndims * 4, "the IDX dimensions")) != HN_OK)
    return status;
  for (int k = 0; k < ndims; k++) {
    uint32_t d = be32(head + 4 * k);
    if (d == 0 || d > INT32_MAX)
      return hn_fail(HN_EFORMAT, "%s: IDX dimension %d is %u (must be 1..%d)", path, k + 1, d, INT32_MAX);
    f->dims[k] = d;
  }
  return HN_OK;
}

static int idx_expect_end(idx_file *f, const char *what) {
  unsigned char extra;
  int got = gzread(f->gz, &extra, 1);
  if (got > 0)
    return hn_fail(HN_EFORMAT, "%s: unexpected data after the %s (the header's dimensions do not match the file "
                   "size)", f->path, what);
  if (got < 0) {
    int err = 0;
    return hn_fail(HN_EFORMAT, "%s: %s (corrupted gzip file?)", f->path, gzerror(f->gz, &err));
  }
  return HN_OK;
}

/* Before allocating for what a header promises: can the file hold `payload` bytes after its
 * header? A plain file needs them all; a gzipped one at least payload / 1032 bytes (deflate's
 * largest compression ratio), so a crafted 30-byte header cannot make us allocate gigabytes. */
static int idx_plausible(const idx_file *f, double payload, int header) {
  struct stat st;
  if (stat(f->path, &st) != 0)
    return HN_OK; /* the reads will report it */
  double have = (double)st.st_size - header;
  if (gzdirect(f->gz) ? payload > have : payload > 1032.0 * (double)st.st_size + 65536.0)
    return hn_fail(HN_EFORMAT, "%s: truncated: its header promises %.0f bytes of data, but the %s has only %lld "
                   "bytes", f->path, payload, gzdirect(f->gz) ? "file" : "gzipped file", (long long)st.st_size);
  return HN_OK;
}

int hn_import_idx(const char *images, const char *labels, hn_dataset *out) {
  memset(out, 0, sizeof *out);
  idx_file fi, fl;
  memset(&fl, 0, sizeof fl);
  unsigned char *buf = NULL;
  int status = idx_open(&fi, images, IDX_MAGIC_IMAGES, 3);
  if (status == HN_OK)
    status = idx_open(&fl, labels, IDX_MAGIC_LABELS, 1);
  if (status != HN_OK)
    goto done;
  const int64_t n = fi.dims[0];
  if (fl.dims[0] != n) {
    status = hn_fail(HN_EFORMAT, "%s has %lld images but %s has %lld labels (they must match)", images,
                     (long long)n, labels, (long long)fl.dims[0]);
    goto done;
  }
  /* (sizes beyond HN_DATA_MAX_BYTES are refused by hn_dataset_alloc below, with their own message) */
  double pixels = (double)n * (double)fi.dims[1] * (double)fi.dims[2];
  if (pixels * sizeof(float) <= (double)HN_DATA_MAX_BYTES &&
      ((status = idx_plausible(&fi, pixels, 16)) != HN_OK || (status = idx_plausible(&fl, (double)n, 8)) != HN_OK))
    goto done;
  int64_t dims[3] = {1, fi.dims[1], fi.dims[2]};
  if ((status = hn_dataset_alloc(out, n, 3, dims, 0)) != HN_OK) {
    hn_fail_context(status, "%s", images);
    goto done;
  }
  const int64_t F = out->n_features;
  const int64_t total = n * F;
  int64_t chunk = total < (int64_t)IDX_CHUNK ? total : (int64_t)IDX_CHUNK;
  buf = hn_alloc((size_t)chunk, 1, HN_MEM_DATA, "IDX read buffer");
  if (!buf) {
    status = HN_ENOMEM;
    goto done;
  }
  for (int64_t off = 0; off < total; off += chunk) {
    int64_t m = total - off < chunk ? total - off : chunk;
    if ((status = idx_read(&fi, buf, (size_t)m, "the pixel data")) != HN_OK)
      goto done;
    for (int64_t k = 0; k < m; k++)
      out->X[off + k] = (float)buf[k] / 255.0f;
  }
  if ((status = idx_expect_end(&fi, "pixel data")) != HN_OK)
    goto done;
  int max = 0;
  for (int64_t off = 0; off < n; off += chunk) {
    int64_t m = n - off < chunk ? n - off : chunk;
    if ((status = idx_read(&fl, buf, (size_t)m, "the labels")) != HN_OK)
      goto done;
    for (int64_t k = 0; k < m; k++) {
      out->y[off + k] = buf[k];
      max = buf[k] > max ? buf[k] : max;
    }
  }
  if ((status = idx_expect_end(&fl, "labels")) != HN_OK)
    goto done;
  out->n_classes = max + 1; /* uint8 labels: at most 256 classes */
done:
  hn_free(buf);
  idx_close(&fi);
  idx_close(&fl);
  if (status != HN_OK)
    hn_dataset_free(out);
  return status;
}
