/* test_core.c - errors, memory counters, the counter-based RNG. */
#include <stdint.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/rng.h"
#include "hn_test.h"

static void test_errors(void) {
  int s = hn_fail(HN_EIO, "cannot open %s", "x.h5");
  CHECK(s == HN_EIO, "status passed through");
  CHECK(strcmp(hn_errmsg(), "cannot open x.h5") == 0, "message '%s'", hn_errmsg());
  hn_fail_context(s, "loading config %s", "a.ini");
  CHECK(strcmp(hn_errmsg(), "loading config a.ini: cannot open x.h5") == 0, "context '%s'", hn_errmsg());
  CHECK(hn_exit_code(HN_EINVAL) == HN_EXIT_USAGE, "usage exit code");
  CHECK(hn_exit_code(HN_ESTOPPED) == HN_EXIT_RESUME, "resume exit code");
}

static void test_memory(void) {
  size_t before = hn_mem_current(HN_MEM_WORKSPACE);
  double *p = hn_alloc(1000, sizeof(double), HN_MEM_WORKSPACE, "test");
  CHECK(p != NULL, "alloc");
  CHECK(((uintptr_t)p % 64) == 0, "64-byte aligned");
  CHECK(p[999] == 0.0, "zero-filled");
  CHECK(hn_mem_current(HN_MEM_WORKSPACE) == before + 8000, "counter grew by 8000");
  CHECK(hn_mem_peak(HN_MEM_WORKSPACE) >= before + 8000, "peak");
  hn_free(p);
  CHECK(hn_mem_current(HN_MEM_WORKSPACE) == before, "counter back");
  void *q = hn_alloc(SIZE_MAX / 2, 4, HN_MEM_DATA, "huge");
  CHECK(q == NULL, "overflowing allocation refused");
  CHECK(strstr(hn_errmsg(), "huge") != NULL, "message names the buffer: %s", hn_errmsg());
}

static void test_rng(void) {
  /* Philox4x32-10 known-answer test (Random123 kat_vectors: counter 0, key 0). */
  uint32_t ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0}, out[4];
  hn_philox4x32(ctr, key, out);
  CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u,
        "philox kat 0: %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
  uint32_t ctr2[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
  uint32_t key2[2] = {0xffffffffu, 0xffffffffu};
  hn_philox4x32(ctr2, key2, out);
  CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u && out[3] == 0x6d5451fdu,
        "philox kat 1: %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);

  /* Streams are pure functions of their keys. */
  hn_rng a, b;
  hn_rng_init(&a, 42, HN_RNG_INIT, 3, 7);
  hn_rng_init(&b, 42, HN_RNG_INIT, 3, 7);
  int same = 1;
  for (int i = 0; i < 100; i++)
    same &= hn_rng_u32(&a) == hn_rng_u32(&b);
  CHECK(same, "same key, same stream");
  hn_rng_init(&b, 42, HN_RNG_INIT, 3, 8);
  hn_rng_init(&a, 42, HN_RNG_INIT, 3, 7);
  CHECK(hn_rng_u64(&a) != hn_rng_u64(&b), "different index, different stream");

  /* Moments of uniform and normal draws. */
  hn_rng r;
  hn_rng_init(&r, 1, HN_RNG_TEST, 0, 0);
  double su = 0, sn = 0, sn2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; i++) {
    double u = hn_rng_uniform(&r);
    CHECK(u >= 0.0 && u < 1.0, "uniform in [0,1): %g", u);
    su += u;
    double z = hn_rng_normal(&r);
    sn += z;
    sn2 += z * z;
  }
  CHECK(fabs(su / n - 0.5) < 0.005, "uniform mean %g", su / n);
  CHECK(fabs(sn / n) < 0.01, "normal mean %g", sn / n);
  CHECK(fabs(sn2 / n - 1.0) < 0.02, "normal variance %g", sn2 / n);
  int counts[5] = {0};
  for (int i = 0; i < 50000; i++)
    counts[hn_rng_below(&r, 5)]++;
  for (int k = 0; k < 5; k++)
    CHECK(fabs(counts[k] / 50000.0 - 0.2) < 0.01, "below(5) bucket %d: %d", k, counts[k]);
}

int main(void) {
  test_errors();
  test_memory();
  test_rng();
  return hn_test_finish("test_core");
}
