/* fuzz_csv.c - libFuzzer harness for the CSV importer (hn_import_csv_names).
 * The first byte chooses the options (label column, header mode, delimiter, text labels,
 * n_classes), the rest is the file. Invariants: no crash; every refusal has a message; an
 * accepted file gives a data set that passes hn_dataset_validate (finite values, labels in
 * range), with one class name per class in text-label mode. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "hamnet/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init();
  if (size < 1)
    return 0;
  uint8_t o = data[0];
  hn_csv_options opt;
  hn_csv_options_default(&opt);
  static const int columns[4] = {-1, 0, 1, -2};
  static const char delims[4] = {',', ';', ' ', '\t'};
  opt.label_column = columns[o & 3];
  opt.header = (hn_csv_header)((o >> 2) % 3);
  opt.delimiter = delims[(o >> 4) & 3];
  opt.text_labels = (o >> 6) & 1;
  opt.n_classes = (o >> 7) ? 3 : 0;
  const char *path = fuzz_write_file(0, data + 1, size - 1);
  hn_dataset ds;
  hn_label_names names;
  memset(&names, 0, sizeof names);
  int status = hn_import_csv_names(path, &opt, &ds, &names);
  fuzz_check_error(status, "hn_import_csv_names");
  if (status == HN_OK) {
    FUZZ_CHECK(ds.n >= 1 && ds.n_features >= 1, "empty data set accepted (n %lld, F %lld)", (long long)ds.n,
               (long long)ds.n_features);
    int v = hn_dataset_validate(&ds, path);
    FUZZ_CHECK(v == HN_OK, "an imported data set fails validation: %s", hn_errmsg());
    /* text labels: one name per class (with n_classes given, classes beyond the names stay empty) */
    if (opt.text_labels)
      FUZZ_CHECK(opt.n_classes > 0 ? names.count <= ds.n_classes : names.count == ds.n_classes,
                 "%d names for %d classes", names.count, ds.n_classes);
    hn_dataset_free(&ds);
    hn_label_names_free(&names);
  }
  return 0;
}
