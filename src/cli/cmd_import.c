/* cmd_import.c - `hamnet import csv|idx ...`: convert external data to hamnet's HDF5 format. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"

static const char *CMD = "import";

static void usage(FILE *out) {
  fprintf(out,
          "Usage: hamnet import csv FILE --out OUT.h5 [--label-column K] [--header yes|no|auto]\n"
          "                         [--delimiter C] [--n-classes C] [--text-labels]\n"
          "       hamnet import idx IMAGES LABELS --out OUT.h5\n\n"
          "Convert a data set to hamnet's HDF5 format (/X float32, /y int32, n_classes attribute,\n"
          "fletcher32 checksums). OUT.h5 is written only if the whole input is valid (an existing\n"
          "OUT.h5 is replaced); every error names FILE:LINE and the column.\n\n"
          "csv: one sample per line: numeric feature columns plus one label column.\n"
          "  --out OUT.h5       output file (required)\n"
          "  --label-column K   0-based index of the label column; negative counts from the end\n"
          "                     (default -1, the last column)\n"
          "  --header yes|no|auto\n"
          "                     whether the first line is a header (default auto: it is if one of\n"
          "                     its cells is not a number)\n"
          "  --delimiter C      one character, or comma, semicolon, tab, space (default ','); space\n"
          "                     means runs of blanks\n"
          "  --n-classes C      number of classes (default: largest label + 1); labels must be below\n"
          "  --text-labels      labels are arbitrary text: the distinct values, sorted by byte value,\n"
          "                     become classes 0..C-1 (the mapping is printed). Without it labels must\n"
          "                     be non-negative integers (\"3\" or \"3.0\")\n\n"
          "idx: the MNIST / Fashion-MNIST format, gzipped (.gz) or not. IMAGES: magic 0x00000803\n"
          "  (uint8 N x H x W), LABELS: magic 0x00000801 (uint8 N). Stored as [N, 1, H, W] scaled to\n"
          "  [0, 1]. Example (Debian package dataset-fashion-mnist):\n"
          "    hamnet import idx /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \\\n"
          "                      /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz --out train.h5\n"
          "  --out OUT.h5       output file (required)\n\n"
          "  -h, --help         this text\n");
}

static int parse_delimiter(const char *s, char *out) {
  static const struct {
    const char *name;
    char ch;
  } names[] = {{"comma", ','}, {"semicolon", ';'}, {"tab", '\t'}, {"\\t", '\t'}, {"space", ' '}, {"pipe", '|'}};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
    if (strcmp(s, names[k].name) == 0) {
      *out = names[k].ch;
      return 0;
    }
  if (strlen(s) == 1 && s[0] != '"' && s[0] != '\n' && s[0] != '\r') {
    *out = s[0];
    return 0;
  }
  return -1;
}

static void summary(const char *path, const hn_dataset *ds) {
  int64_t *counts = hn_alloc((size_t)ds->n_classes, sizeof(int64_t), HN_MEM_OTHER, "class counts");
  printf("wrote %s: %lld samples, sample shape [", path, (long long)ds->n);
  for (int k = 0; k < ds->ndim_sample; k++)
    printf("%s%lld", k ? ", " : "", (long long)ds->sample_dims[k]);
  printf("] (%lld features), %d classes", (long long)ds->n_features, ds->n_classes);
  if (counts) {
    hn_dataset_class_counts(ds, counts);
    printf(", per class");
    for (int c = 0; c < ds->n_classes && c < 64; c++)
      printf(" %lld", (long long)counts[c]);
    if (ds->n_classes > 64)
      printf(" ...");
  }
  printf("\n");
  hn_free(counts);
}

int hn_cmd_import(int argc, char **argv) {
  const char *format = NULL, *pos[2] = {NULL, NULL}, *out = NULL, *v = NULL;
  int npos = 0, r;
  int csv_only = 0; /* an option that only csv understands was given */
  hn_csv_options opt;
  hn_csv_options_default(&opt);
  for (int i = 1; i < argc; i++) {
    long num = 0;
    if (hn_cli_is_help(argv[i])) {
      if (hn_log_rank() == 0)
        usage(stdout);
      return HN_EXIT_OK;
    } else if ((r = hn_cli_opt(argc, argv, &i, "--out", &v)) != 0) {
      if (r < 0)
        return hn_cli_usage_error(CMD, "--out needs a file name");
      out = v;
    } else if ((r = hn_cli_opt(argc, argv, &i, "--label-column", &v)) != 0) {
      if (r < 0 || hn_cli_parse_long(v, -1000000, 1000000, &num) != 0)
        return hn_cli_usage_error(CMD, "--label-column needs an integer (negative counts from the end), not '%s'",
                                  r < 0 ? "" : v);
      opt.label_column = (int)num;
      csv_only = 1;
    } else if ((r = hn_cli_opt(argc, argv, &i, "--header", &v)) != 0) {
      if (r > 0 && strcmp(v, "yes") == 0)
        opt.header = HN_CSV_HEADER_YES;
      else if (r > 0 && strcmp(v, "no") == 0)
        opt.header = HN_CSV_HEADER_NO;
      else if (r > 0 && strcmp(v, "auto") == 0)
        opt.header = HN_CSV_HEADER_AUTO;
      else
        return hn_cli_usage_error(CMD, "--header needs yes, no or auto, not '%s'", r < 0 ? "" : v);
      csv_only = 1;
    } else if ((r = hn_cli_opt(argc, argv, &i, "--delimiter", &v)) != 0) {
      if (r < 0 || parse_delimiter(v, &opt.delimiter) != 0)
        return hn_cli_usage_error(CMD, "--delimiter needs one character or comma/semicolon/tab/space/pipe, not '%s'",
                                  r < 0 ? "" : v);
      csv_only = 1;
    } else if ((r = hn_cli_opt(argc, argv, &i, "--n-classes", &v)) != 0) {
      if (r < 0 || hn_cli_parse_long(v, 1, HN_DATA_MAX_CLASSES, &num) != 0)
        return hn_cli_usage_error(CMD, "--n-classes needs a whole number 1..%d, not '%s'", HN_DATA_MAX_CLASSES,
                                  r < 0 ? "" : v);
      opt.n_classes = (int)num;
      csv_only = 1;
    } else if (hn_cli_flag(argv, i, "--text-labels")) {
      opt.text_labels = 1;
      csv_only = 1;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return hn_cli_usage_error(CMD, "unknown option '%s'", argv[i]);
    } else if (!format) {
      format = argv[i];
    } else if (npos < 2) {
      pos[npos++] = argv[i];
    } else {
      return hn_cli_usage_error(CMD, "unexpected argument '%s'", argv[i]);
    }
  }
  if (!format)
    return hn_cli_usage_error(CMD, "missing the input format: csv or idx");
  int is_csv = strcmp(format, "csv") == 0, is_idx = strcmp(format, "idx") == 0;
  if (!is_csv && !is_idx)
    return hn_cli_usage_error(CMD, "unknown input format '%s' (csv or idx)", format);
  if (is_csv && npos != 1)
    return hn_cli_usage_error(CMD, npos == 0 ? "import csv needs the input FILE" : "import csv takes one input FILE");
  if (is_idx && npos != 2)
    return hn_cli_usage_error(CMD, "import idx needs two files: IMAGES LABELS");
  if (is_idx && csv_only)
    return hn_cli_usage_error(CMD, "--label-column, --header, --delimiter, --n-classes and --text-labels are "
                              "options of import csv");
  if (!out)
    return hn_cli_usage_error(CMD, "missing --out OUT.h5");
  if (hn_log_rank() != 0)
    return HN_EXIT_OK;

  hn_dataset ds;
  hn_label_names names = {0, NULL};
  int status = is_csv ? hn_import_csv_names(pos[0], &opt, &ds, &names) : hn_import_idx(pos[0], pos[1], &ds);
  if (status == HN_OK)
    status = hn_dataset_write(out, &ds);
  if (status == HN_OK) {
    summary(out, &ds);
    for (int c = 0; c < names.count; c++)
      printf("  class %d = %s\n", c, names.name[c]);
  }
  hn_label_names_free(&names);
  hn_dataset_free(&ds);
  return status == HN_OK ? HN_EXIT_OK : hn_cli_fail(status);
}
