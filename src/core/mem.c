/* mem.c - 64-byte aligned allocation with per-category byte counters (see hamnet/mem.h).
 *
 * Each block carries a 64-byte header in front of the returned pointer holding its size and
 * category, so hn_free can keep the counters right without the caller passing them back. */
#include "hamnet/mem.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "hamnet/error.h"

#define HN_ALIGN 64

typedef struct {
  size_t bytes;
  int category;
  uint32_t magic;
} block_header;

#define HN_BLOCK_MAGIC 0x484e4d45u /* "HNME" */

static atomic_size_t current_bytes[HN_MEM_NCATEGORIES];
static atomic_size_t peak_bytes[HN_MEM_NCATEGORIES];

static void raise_peak(int cat, size_t now) {
  size_t old = atomic_load(&peak_bytes[cat]);
  while (now > old && !atomic_compare_exchange_weak(&peak_bytes[cat], &old, now)) {
  }
}

void *hn_alloc(size_t count, size_t size, hn_mem_category cat, const char *what) {
  if (cat < 0 || cat >= HN_MEM_NCATEGORIES)
    cat = HN_MEM_OTHER;
  if (size != 0 && count > (SIZE_MAX - 2 * HN_ALIGN) / size) {
    hn_fail(HN_ENOMEM, "allocation of %zu x %zu bytes for %s overflows", count, size,
            what ? what : "a buffer");
    return NULL;
  }
  size_t bytes = count * size;
  void *raw = NULL;
  if (posix_memalign(&raw, HN_ALIGN, bytes + HN_ALIGN) != 0 || !raw) {
    hn_fail(HN_ENOMEM, "out of memory allocating %.1f MiB for %s (reduce batch_size/width/depth "
            "or use more ranks)", (double)bytes / 1048576.0, what ? what : "a buffer");
    return NULL;
  }
  memset(raw, 0, bytes + HN_ALIGN);
  block_header *h = raw;
  h->bytes = bytes;
  h->category = (int)cat;
  h->magic = HN_BLOCK_MAGIC;
  size_t now = atomic_fetch_add(&current_bytes[cat], bytes) + bytes;
  raise_peak((int)cat, now);
  return (char *)raw + HN_ALIGN;
}

void hn_free(void *p) {
  if (!p)
    return;
  block_header *h = (block_header *)((char *)p - HN_ALIGN);
  HN_ASSERT(h->magic == HN_BLOCK_MAGIC, "hn_free of a pointer not from hn_alloc (or freed twice)");
  h->magic = 0;
  atomic_fetch_sub(&current_bytes[h->category], h->bytes);
  free(h);
}

void hn_mem_account(hn_mem_category cat, long long bytes) {
  if (cat < 0 || cat >= HN_MEM_NCATEGORIES)
    cat = HN_MEM_OTHER;
  if (bytes >= 0)
    raise_peak((int)cat, atomic_fetch_add(&current_bytes[cat], (size_t)bytes) + (size_t)bytes);
  else
    atomic_fetch_sub(&current_bytes[cat], (size_t)-bytes);
}

size_t hn_mem_current(hn_mem_category cat) { return atomic_load(&current_bytes[cat]); }
size_t hn_mem_peak(hn_mem_category cat) { return atomic_load(&peak_bytes[cat]); }

size_t hn_mem_current_total(void) {
  size_t total = 0;
  for (int c = 0; c < HN_MEM_NCATEGORIES; c++)
    total += atomic_load(&current_bytes[c]);
  return total;
}

void hn_mem_reset_peaks(void) {
  for (int c = 0; c < HN_MEM_NCATEGORIES; c++)
    atomic_store(&peak_bytes[c], atomic_load(&current_bytes[c]));
}

const char *hn_mem_category_name(hn_mem_category cat) {
  static const char *names[HN_MEM_NCATEGORIES] = {"params", "grads", "optimizer", "activations",
                                                  "workspace", "data", "other"};
  return (cat >= 0 && cat < HN_MEM_NCATEGORIES) ? names[cat] : "?";
}

double hn_mem_peak_rss_mb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1.0;
  return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}
