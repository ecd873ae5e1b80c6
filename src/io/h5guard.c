/* h5guard.c - raw checks of HDF5 global heap collections before HDF5 reads them (see
 * hamnet/h5guard.h for why).
 *
 * Layout (HDF5 file format spec, "Global Heap"), with L = the superblock's "size of lengths":
 *   collection:  "GCOL" | version 1 | 3 reserved bytes | collection size (L bytes, includes this
 *                header) | objects ...
 *   object:      heap index (2) | reference count (2) | reserved (4) | object size (L) | data,
 *                padded to a multiple of 8. Index 0 is the free space; its size includes its own
 *                header and is not padded. A tail shorter than an object header is free space.
 * HDF5 1.10.8 walks the objects like this (H5HG__cache_heap_deserialize) without checking that
 * an object fits: an object that does not is refused here. */
#include "hamnet/h5guard.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hamnet/error.h"

#define GUARD_BLOCK ((size_t)4 << 20)
#define GUARD_CACHE 16

static const unsigned char gcol_sig[8] = {'G', 'C', 'O', 'L', 1, 0, 0, 0};

typedef struct {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
} file_id;

static file_id passed[GUARD_CACHE];
static int n_passed = 0, next_slot = 0;

static int same_file(const file_id *a, const file_id *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
         a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static uint64_t le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int k = n - 1; k >= 0; k--)
    v = (v << 8) | p[k];
  return v;
}

/* pread exactly n bytes at off: 0, or an errno value (EIO for a short read). */
static int read_at(int fd, void *buf, size_t n, off_t off) {
  unsigned char *p = buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (r == 0)
      return EIO;
    p += r;
    n -= (size_t)r;
    off += r;
  }
  return 0;
}

/* Walk the collection at `off` (its 16-byte header already matched the signature). */
static int check_collection(const char *path, int fd, off_t off, off_t file_size) {
  unsigned char head[16];
  int err = read_at(fd, head, sizeof head, off);
  if (err)
    return hn_fail(HN_EIO, "cannot read %s: %s", path, strerror(err));
  uint64_t size = le(head + 8, 8);
  if (size < 16 || size > (uint64_t)(file_size - off))
    return HN_OK; /* HDF5 refuses a collection that does not fit in the file by itself */
  unsigned char *c = malloc((size_t)size);
  if (!c)
    return hn_fail(HN_ENOMEM, "%s: out of memory checking a global heap collection of %" PRIu64 " bytes", path,
                   size);
  int status = HN_OK;
  if ((err = read_at(fd, c, (size_t)size, off)) != 0) {
    status = hn_fail(HN_EIO, "cannot read %s: %s", path, strerror(err));
    goto out;
  }
  uint64_t p = 16;
  while (p < size) {
    uint64_t left = size - p;
    if (left < 16)
      break; /* a tail too small for an object header: free space */
    unsigned idx = (unsigned)le(c + p, 2);
    uint64_t osize = le(c + p + 8, 8);
    uint64_t need;
    if (idx > 0) {
      if (osize > left - 16) {
        status = hn_fail(HN_EFORMAT, "%s: corrupted HDF5 global heap at byte %lld: object %u claims %" PRIu64
                         " bytes, its collection has %" PRIu64 " left (the file is damaged)", path,
                         (long long)(off + (off_t)p), idx, osize, left - 16);
        goto out;
      }
      need = 16 + ((osize + 7) & ~(uint64_t)7);
      if (need > left)
        need = left; /* padding cut by the end: HDF5 stops there as well */
    } else {
      if (osize < 16 || osize > left) {
        status = hn_fail(HN_EFORMAT, "%s: corrupted HDF5 global heap at byte %lld: free space of %" PRIu64
                         " bytes in a collection with %" PRIu64 " left (the file is damaged)", path,
                         (long long)(off + (off_t)p), osize, left);
        goto out;
      }
      need = osize;
    }
    p += need;
  }
out:
  free(c);
  return status;
}

int hn_h5_check_heaps(const char *path) {
  int fd;
  do
    fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return hn_fail(HN_EIO, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return HN_OK; /* not a regular file: the callers report it */
  }
  file_id id = {st.st_dev, st.st_ino, st.st_size, st.st_mtim};
  for (int i = 0; i < n_passed; i++)
    if (same_file(&passed[i], &id)) {
      close(fd);
      return HN_OK;
    }
  /* superblock at byte 0 with 8-byte lengths, or leave the file to HDF5 */
  static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  unsigned char sb[16];
  if (st.st_size < 16 || read_at(fd, sb, sizeof sb, 0) != 0 || memcmp(sb, sig, 8) != 0 ||
      (sb[8] <= 1 ? sb[14] : sb[10]) != 8) {
    close(fd);
    return HN_OK;
  }
  unsigned char *buf = malloc(GUARD_BLOCK + 8);
  if (!buf) {
    close(fd);
    return hn_fail(HN_ENOMEM, "out of memory checking %s", path);
  }
  int status = HN_OK;
  size_t carry = 0; /* bytes kept from the previous block, so that a signature across blocks is found */
  off_t base = 0;   /* file offset of buf[0] */
  for (off_t off = 0; off < st.st_size && status == HN_OK;) {
    size_t want = (size_t)(st.st_size - off) < GUARD_BLOCK ? (size_t)(st.st_size - off) : GUARD_BLOCK;
    int err = read_at(fd, buf + carry, want, off);
    if (err) {
      status = hn_fail(HN_EIO, "cannot read %s: %s", path, strerror(err));
      break;
    }
    size_t n = carry + want;
    for (size_t i = 0; i + 8 <= n && status == HN_OK; i++)
      if (buf[i] == 'G' && memcmp(buf + i, gcol_sig, 8) == 0)
        status = check_collection(path, fd, base + (off_t)i, st.st_size);
    off += (off_t)want;
    carry = n >= 7 ? 7 : n;
    memmove(buf, buf + n - carry, carry);
    base = off - (off_t)carry;
  }
  free(buf);
  close(fd);
  if (status == HN_OK) {
    passed[next_slot] = id;
    next_slot = (next_slot + 1) % GUARD_CACHE;
    if (n_passed < GUARD_CACHE)
      n_passed++;
  }
  return status;
}

void hn_h5_guard_forget(void) {
  n_passed = 0;
  next_slot = 0;
}
