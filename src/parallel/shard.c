/* shard.c - which samples of each global batch a rank takes (see hamnet/parallel.h
 * "sharding"). Pure functions of (seed, epoch, n, B, rank, P): no communication. */
#include <string.h>

#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"

void hn_shard_range(int64_t size, int rank, int ranks, int64_t *lo, int64_t *hi) {
  *lo = size * rank / ranks;
  *hi = size * (rank + 1) / ranks;
}

int64_t hn_shard_batch_size(int64_t n, int64_t B, int k) {
  int64_t first = (int64_t)k * B;
  return first + B <= n ? B : n - first;
}

void hn_epoch_shard_free(hn_epoch_shard *s) {
  if (!s)
    return;
  hn_free(s->batch_start);
  hn_free(s->rows);
  memset(s, 0, sizeof *s);
}

int hn_shard_epoch(uint64_t seed, int epoch, int64_t n, int64_t B, const int64_t *subset, int rank, int ranks,
                   hn_epoch_shard *out) {
  memset(out, 0, sizeof *out);
  if (n < 1 || B < 1 || ranks < 1 || rank < 0 || rank >= ranks)
    return hn_fail(HN_EINVAL, "sharding: bad arguments (samples %lld, batch %lld, rank %d of %d)", (long long)n,
                   (long long)B, rank, ranks);
  const int64_t nb = (n + B - 1) / B;
  if (nb > INT32_MAX)
    return hn_fail(HN_EINVAL, "sharding: %lld batches per epoch is too many (raise [train] batch_size)",
                   (long long)nb);
  out->n_batches = (int)nb;
  /* Each batch gives this rank at most ceil(size / P) <= size / P + 1 samples. */
  const int64_t cap = n / ranks + nb + 1;
  int64_t *perm = hn_alloc((size_t)n, sizeof(int64_t), HN_MEM_DATA, "epoch permutation");
  out->batch_start = perm ? hn_alloc((size_t)nb + 1, sizeof(int64_t), HN_MEM_DATA, "batch offsets") : NULL;
  out->rows = out->batch_start ? hn_alloc((size_t)cap, sizeof(int64_t), HN_MEM_DATA, "epoch rows") : NULL;
  if (!out->rows) {
    hn_free(perm);
    hn_epoch_shard_free(out);
    return HN_ENOMEM;
  }
  hn_data_permutation(seed, (uint64_t)epoch, n, perm);
  int64_t count = 0;
  for (int k = 0; k < out->n_batches; k++) {
    int64_t first = (int64_t)k * B, lo, hi;
    hn_shard_range(hn_shard_batch_size(n, B, k), rank, ranks, &lo, &hi);
    out->batch_start[k] = count;
    for (int64_t i = lo; i < hi; i++) {
      int64_t s = perm[first + i];
      out->rows[count++] = subset ? subset[s] : s;
    }
  }
  out->batch_start[out->n_batches] = count;
  out->count = count;
  hn_free(perm);
  return HN_OK;
}
