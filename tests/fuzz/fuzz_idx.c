/* fuzz_idx.c - libFuzzer harness for the IDX (MNIST format) importer (hn_import_idx).
 * Input: 2 bytes (big-endian) = length L of the images file, then L bytes of it, then the labels
 * file. Either may be gzipped. Invariants: no crash; every refusal has a message; an accepted
 * pair gives [N, 1, H, W] images in [0, 1] with valid labels (hn_dataset_validate). */
#include <stdint.h>

#include "fuzz_common.h"
#include "hamnet/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init();
  if (size < 2)
    return 0;
  size_t len = ((size_t)data[0] << 8) | data[1];
  data += 2;
  size -= 2;
  if (len > size)
    len = size;
  const char *images = fuzz_write_file(0, data, len);
  const char *labels = fuzz_write_file(1, data + len, size - len);
  hn_dataset ds;
  int status = hn_import_idx(images, labels, &ds);
  fuzz_check_error(status, "hn_import_idx");
  if (status == HN_OK) {
    FUZZ_CHECK(ds.n >= 1 && ds.ndim_sample == 3 && ds.sample_dims[0] == 1, "unexpected shape");
    FUZZ_CHECK(hn_dataset_validate(&ds, images) == HN_OK, "imported IDX data fails validation: %s", hn_errmsg());
    for (int64_t i = 0; i < ds.n * ds.n_features; i++)
      FUZZ_CHECK(ds.X[i] >= 0.0f && ds.X[i] <= 1.0f, "pixel %lld = %g outside [0, 1]", (long long)i, ds.X[i]);
    hn_dataset_free(&ds);
  }
  return 0;
}
