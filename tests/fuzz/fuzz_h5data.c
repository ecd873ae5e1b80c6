/* fuzz_h5data.c - libFuzzer harness for the validation of data set files: mutated HDF5 images
 * (seeds: files written by hamnet and in h5py's layout, tests/fuzz/fuzz_seeds.c) go through
 * hn_file_format, hn_dataset_probe, hn_dataset_read_labels, hn_dataset_read_rows, hn_dataset_read
 * and hn_dataset_summarize. Invariants: no crash, no unbounded allocation (shapes are checked
 * before allocating); every refusal has a message; whatever is accepted is valid data (finite,
 * labels in range) of the probed shape; no HDF5 object is left open. Reading is skipped when the
 * probed size exceeds 64 MiB, which the readers accept by design (a sparse file may promise more
 * than it stores). */
#include <stdint.h>
#include <string.h>

#include <hdf5.h>

#include "fuzz_common.h"
#include "hamnet/h5guard.h"
#include "hamnet/data.h"
#include "hamnet/mem.h"

#define FUZZ_MAX_BYTES ((int64_t)64 << 20)

static void run(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init();
  hn_h5_guard_forget(); /* the scratch file is rewritten in place for every input */
  run(data, size);
  FUZZ_CHECK_H5_CLOSED();
  return 0;
}

static void run(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file(0, data, size);
  char format[64];
  fuzz_check_error(hn_file_format(path, format, sizeof format), "hn_file_format");
  hn_dataset_info info;
  int status = hn_dataset_probe(path, &info);
  fuzz_check_error(status, "hn_dataset_probe");
  if (status != HN_OK)
    return;
  FUZZ_CHECK(info.n >= 1 && info.n_features >= 1 && info.n_classes >= 1, "probe accepted n %lld F %lld C %d",
             (long long)info.n, (long long)info.n_features, info.n_classes);
  if (info.n * info.n_features > FUZZ_MAX_BYTES / 4 || info.n > FUZZ_MAX_BYTES / 8)
    return;
  int32_t *y = NULL;
  hn_dataset_info li;
  status = hn_dataset_read_labels(path, &li, &y);
  fuzz_check_error(status, "hn_dataset_read_labels");
  if (status == HN_OK) {
    for (int64_t i = 0; i < li.n; i++)
      FUZZ_CHECK(y[i] >= 0 && y[i] < li.n_classes, "label %d of row %lld outside 0..%d", y[i], (long long)i,
                 li.n_classes - 1);
    hn_free(y);
  }
  int64_t rows[3] = {info.n - 1, 0, info.n / 2};
  hn_dataset ds;
  status = hn_dataset_read_rows(path, rows, 3, &ds);
  fuzz_check_error(status, "hn_dataset_read_rows");
  if (status == HN_OK) {
    FUZZ_CHECK(ds.n == 3 && ds.n_features == info.n_features, "read_rows shape");
    FUZZ_CHECK(hn_dataset_validate(&ds, path) == HN_OK, "read_rows returned invalid data: %s", hn_errmsg());
    hn_dataset_free(&ds);
  }
  status = hn_dataset_read(path, &ds);
  fuzz_check_error(status, "hn_dataset_read");
  if (status == HN_OK) {
    FUZZ_CHECK(ds.n == info.n && ds.n_features == info.n_features, "read shape differs from probe");
    FUZZ_CHECK(hn_dataset_validate(&ds, path) == HN_OK, "read returned invalid data: %s", hn_errmsg());
    hn_dataset_free(&ds);
  }
  hn_dataset_summary sum;
  status = hn_dataset_summarize(path, &sum);
  fuzz_check_error(status, "hn_dataset_summarize");
  if (status == HN_OK)
    hn_dataset_summary_free(&sum);
}
