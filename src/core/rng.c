/* rng.c - Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC11).
 *
 * Key   = (seed low 32 bits, seed high 32 bits XOR a purpose constant)
 * Counter = (draw block, index low, index high, epoch) - so a stream is a pure function of
 * (seed, purpose, epoch, index) and can be started anywhere, on any rank or thread. */
#include "hamnet/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

void hn_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(PHILOX_M0, c0, &hi0);
    uint32_t lo1 = mulhilo(PHILOX_M1, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n1 = lo1;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    uint32_t n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void hn_rng_init(hn_rng *r, uint64_t seed, hn_rng_purpose purpose, uint64_t epoch, uint64_t index) {
  r->key[0] = (uint32_t)seed;
  r->key[1] = (uint32_t)(seed >> 32) ^ ((uint32_t)purpose * 0x85EBCA6Bu);
  r->counter[0] = 0;
  r->counter[1] = (uint32_t)index;
  r->counter[2] = (uint32_t)(index >> 32);
  r->counter[3] = (uint32_t)epoch ^ ((uint32_t)(epoch >> 32) * 0xC2B2AE35u);
  r->available = 0;
}

uint32_t hn_rng_u32(hn_rng *r) {
  if (r->available == 0) {
    hn_philox4x32(r->counter, r->key, r->buffer);
    r->counter[0]++;
    r->available = 4;
  }
  return r->buffer[4 - r->available--];
}

uint64_t hn_rng_u64(hn_rng *r) {
  uint64_t hi = hn_rng_u32(r);
  return (hi << 32) | hn_rng_u32(r);
}

double hn_rng_uniform(hn_rng *r) { return (double)(hn_rng_u64(r) >> 11) * 0x1.0p-53; }

double hn_rng_normal(hn_rng *r) {
  double u1 = hn_rng_uniform(r);
  double u2 = hn_rng_uniform(r);
  if (u1 < 1e-300)
    u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t hn_rng_below(hn_rng *r, uint64_t n) {
  /* Lemire-style rejection on 64 bits: reject the top partial range to stay unbiased. */
  uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
  uint64_t x;
  do {
    x = hn_rng_u64(r);
  } while (x >= limit);
  return x % n;
}
