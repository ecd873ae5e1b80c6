/* hamnet/mem.h - aligned allocation with a byte counter per category.
 *
 * Every buffer hamnet allocates for parameters, gradients, optimiser state, activations,
 * workspaces and data goes through hn_alloc, so memory figures (the "activation bytes do not
 * grow with depth" claim of reversible mode, `hamnet bench`'s report) come from these
 * counters, not from guesses. Allocation is 64-byte aligned (cache line, AVX-512). */
#ifndef HAMNET_MEM_H
#define HAMNET_MEM_H

#include <stddef.h>

typedef enum {
  HN_MEM_PARAMS = 0,
  HN_MEM_GRADS,
  HN_MEM_OPTIM,
  HN_MEM_ACTIVATIONS, /* states kept between forward and backward */
  HN_MEM_WORKSPACE,   /* scratch of the kernels, reused every layer */
  HN_MEM_DATA,
  HN_MEM_OTHER,
  HN_MEM_NCATEGORIES
} hn_mem_category;

/* Allocate `count * size` bytes (checked for overflow), 64-byte aligned, zero-filled.
 * Returns NULL and stores an hn_fail(HN_ENOMEM, ...) message naming `what` on failure. */
void *hn_alloc(size_t count, size_t size, hn_mem_category cat, const char *what);
/* Free a block from hn_alloc (NULL is fine). */
void hn_free(void *p);

/* Count `bytes` (negative: give back) held outside hn_alloc - memory the process maps itself,
 * such as the gradient exchange's node-shared buffers - in category `cat`. */
void hn_mem_account(hn_mem_category cat, long long bytes);

/* Bytes currently held / the peak since start or the last reset, per category. */
size_t hn_mem_current(hn_mem_category cat);
size_t hn_mem_peak(hn_mem_category cat);
size_t hn_mem_current_total(void);
void hn_mem_reset_peaks(void);
const char *hn_mem_category_name(hn_mem_category cat);

/* Peak resident set size of this process in MiB (getrusage), the operating system's view. */
double hn_mem_peak_rss_mb(void);

#endif
