/* hamnet/rng.h - counter-based random numbers (Philox4x32-10).
 *
 * Every random number hamnet draws is a pure function of (seed, purpose, epoch, index, draw):
 * initialising K_j uses index = j, shuffling epoch e uses epoch = e, noise on sample i uses
 * index = i. No generator state is carried between samples, so results do not depend on how
 * samples are spread over ranks and threads, and a restart needs no RNG state beyond the
 * (epoch, step) counters. */
#ifndef HAMNET_RNG_H
#define HAMNET_RNG_H

#include <stdint.h>

typedef enum {
  HN_RNG_INIT = 1,     /* parameter initialisation; index = parameter block */
  HN_RNG_SHUFFLE = 2,  /* epoch permutation; epoch = epoch */
  HN_RNG_DATAGEN = 3,  /* synthetic data sets; index = sample */
  HN_RNG_NOISE = 4,    /* input noise (eval --noise, datagen --noise); index = sample */
  HN_RNG_AUGMENT = 5,  /* image augmentation; epoch, index = sample */
  HN_RNG_FRACTION = 6, /* data.fraction subset selection */
  HN_RNG_TEST = 7      /* tests and benchmarks */
} hn_rng_purpose;

/* The raw generator: 4 x 32 random bits for one counter value under one key. */
void hn_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* A stream of draws for one (seed, purpose, epoch, index); draws are numbered 0, 1, 2, ... */
typedef struct {
  uint32_t key[2];
  uint32_t counter[4];
  uint32_t buffer[4];
  int available; /* unread words left in buffer */
} hn_rng;

void hn_rng_init(hn_rng *r, uint64_t seed, hn_rng_purpose purpose, uint64_t epoch, uint64_t index);
uint32_t hn_rng_u32(hn_rng *r);
uint64_t hn_rng_u64(hn_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double hn_rng_uniform(hn_rng *r);
/* Standard normal (Box-Muller on two uniforms). */
double hn_rng_normal(hn_rng *r);
/* Uniform integer in [0, n), unbiased (n > 0). */
uint64_t hn_rng_below(hn_rng *r, uint64_t n);

#endif
