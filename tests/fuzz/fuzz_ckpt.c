/* fuzz_ckpt.c - libFuzzer harness for the validation of checkpoint files: mutated HDF5 images
 * (seeds: checkpoints of every architecture written by hn_ckpt_write, tests/fuzz/fuzz_seeds.c)
 * go through hn_ckpt_read_info, hn_ckpt_read_spec, hn_ckpt_verify, hn_ckpt_read (model,
 * optimiser, progress, config) and the inspect summaries. Invariants: no crash, no allocation
 * beyond what the file can hold (checked before allocating; run with -malloc_limit_mb); every
 * refusal has a message;
 * hn_ckpt_verify and hn_ckpt_read agree (a file that verifies reads completely); an accepted
 * file has the spec its info promised; no HDF5 object is left open. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "fuzz_common.h"
#include "hamnet/h5guard.h"
#include "hamnet/checkpoint.h"
#include "hamnet/mem.h"

static void run(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init();
  hn_h5_guard_forget(); /* the scratch file is rewritten in place for every input */
  run(data, size);
  FUZZ_CHECK_H5_CLOSED();
  return 0;
}

static void run(const uint8_t *data, size_t size) {
  static FILE *devnull = NULL;
  if (!devnull)
    devnull = fopen("/dev/null", "w");
  const char *path = fuzz_write_file(0, data, size);
  hn_ckpt_info info;
  int status = hn_ckpt_read_info(path, &info);
  fuzz_check_error(status, "hn_ckpt_read_info");
  hn_model_spec spec;
  fuzz_check_error(hn_ckpt_read_spec(path, &spec), "hn_ckpt_read_spec");
  int verified = hn_ckpt_verify(path);
  fuzz_check_error(verified, "hn_ckpt_verify");
  /* the two summaries share their reading; alternate between them */
  if (size & 1)
    fuzz_check_error(hn_ckpt_print_summary(path, devnull), "hn_ckpt_print_summary");
  else
    fuzz_check_error(hn_ckpt_print_summary_json(path, devnull), "hn_ckpt_print_summary_json");
  if (status != HN_OK)
    return;
  FUZZ_CHECK(info.n_params >= 1, "info accepted n_params = %lld", (long long)info.n_params);
  if (info.n_params > (1 << 24)) /* legal (compressed arrays), but not what this harness is for */
    return;
  /* the model alone (what eval reads) */
  hn_model m;
  status = hn_ckpt_read(path, &m, NULL, NULL, NULL);
  fuzz_check_error(status, "hn_ckpt_read (model)");
  if (status == HN_OK) {
    FUZZ_CHECK(m.layout.spec.width == info.spec.width && m.layout.spec.depth == info.spec.depth &&
                   m.layout.n_params == (size_t)info.n_params, "the model read differs from the info");
    hn_model_destroy(&m);
  }
  /* everything (what resuming reads) */
  hn_real *m1 = hn_alloc((size_t)info.n_params, sizeof(hn_real), HN_MEM_OPTIM, "fuzz m1");
  hn_real *m2 = hn_alloc((size_t)info.n_params, sizeof(hn_real), HN_MEM_OPTIM, "fuzz m2");
  hn_ckpt_optimizer opt = {info.has_optimizer ? info.optimizer_kind : "sgd", 0, m1, m2};
  hn_progress prog;
  char *text = NULL;
  status = m1 && m2 ? hn_ckpt_read(path, &m, &opt, &prog, &text) : HN_ENOMEM;
  fuzz_check_error(status, "hn_ckpt_read (all)");
  if (status == HN_OK) {
    FUZZ_CHECK(info.has_optimizer && info.has_progress && info.has_config, "read all without all parts");
    FUZZ_CHECK(prog.n_history == info.n_history, "history rows %d vs %d", prog.n_history, info.n_history);
    FUZZ_CHECK(text != NULL, "no config text");
    hn_model_destroy(&m);
    hn_progress_free(&prog);
    free(text);
  }
  if (verified == HN_OK && info.has_optimizer && info.has_progress && info.has_config)
    FUZZ_CHECK(status == HN_OK, "hn_ckpt_verify accepted a file hn_ckpt_read refuses");
  hn_free(m1);
  hn_free(m2);
}
