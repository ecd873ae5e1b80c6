/* cmd_datagen.c - `hamnet datagen KIND --out DIR ...`: write DIR/train.h5 and DIR/val.h5. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"

static const char *CMD = "datagen";

static void usage(FILE *out) {
  fprintf(out,
          "Usage: hamnet datagen KIND --out DIR [--samples N] [--val-samples N] [--seed S] [--noise X]\n\n"
          "Generate a synthetic two-dimensional data set and write DIR/train.h5 and DIR/val.h5\n"
          "(DIR is created if needed; existing files are replaced).\n\n"
          "KIND:\n"
          "  ellipses    2 classes on concentric ellipses (radius in [0,1) / [1,2), y squeezed by 0.4);\n"
          "              balanced; default 1000 training + 1000 validation samples\n"
          "  swissroll   2 interleaved spirals, 513 + 513 points (fixed size: --samples is refused)\n"
          "  peaks       5 classes = equal-width bands of MATLAB's peaks function on [-3,3]^2;\n"
          "              balanced; default 8000 training + 2000 validation samples\n\n"
          "Options:\n"
          "  --out DIR          output directory (required)\n"
          "  --samples N        training samples (default: the kind's default)\n"
          "  --val-samples N    validation samples (default: the kind's default)\n"
          "  --seed S           random seed, an unsigned 64-bit integer (default 1); the same seed\n"
          "                     gives the same files on any machine, thread or rank count\n"
          "  --noise X          add N(0, X^2) to every coordinate after labelling (default 0)\n"
          "  -h, --help         this text\n\n"
          "Prints one summary line per file. Under mpirun only rank 0 writes.\n");
}

/* mkdir -p */
static int make_dirs(const char *dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
    return hn_fail(HN_EINVAL, "output directory name is too long");
  for (char *p = path + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return hn_fail(HN_EIO, "cannot create directory %s: %s", path, strerror(errno));
      *p = saved;
      if (saved == '\0')
        break;
    }
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return hn_fail(HN_EIO, "%s exists and is not a directory", dir);
  return HN_OK;
}

static void summary(const char *path, const hn_dataset *ds) {
  int64_t counts[16] = {0};
  hn_dataset_class_counts(ds, counts); /* generated sets have at most 5 classes */
  printf("wrote %s: %lld samples, %lld features, %d classes, per class", path, (long long)ds->n,
         (long long)ds->n_features, ds->n_classes);
  for (int c = 0; c < ds->n_classes; c++)
    printf(" %lld", (long long)counts[c]);
  printf("\n");
}

int hn_cmd_datagen(int argc, char **argv) {
  const char *kind = NULL, *out = NULL, *v = NULL;
  long n_train = 0, n_val = 0;
  uint64_t seed = 1;
  double noise = 0.0;
  int r;
  for (int i = 1; i < argc; i++) {
    if (hn_cli_is_help(argv[i])) {
      if (hn_log_rank() == 0)
        usage(stdout);
      return HN_EXIT_OK;
    } else if ((r = hn_cli_opt(argc, argv, &i, "--out", &v)) != 0) {
      if (r < 0)
        return hn_cli_usage_error(CMD, "--out needs a directory");
      out = v;
    } else if ((r = hn_cli_opt(argc, argv, &i, "--samples", &v)) != 0) {
      if (r < 0 || hn_cli_parse_long(v, 1, 100000000L, &n_train) != 0)
        return hn_cli_usage_error(CMD, "--samples needs a whole number 1..100000000, not '%s'", r < 0 ? "" : v);
    } else if ((r = hn_cli_opt(argc, argv, &i, "--val-samples", &v)) != 0) {
      if (r < 0 || hn_cli_parse_long(v, 1, 100000000L, &n_val) != 0)
        return hn_cli_usage_error(CMD, "--val-samples needs a whole number 1..100000000, not '%s'", r < 0 ? "" : v);
    } else if ((r = hn_cli_opt(argc, argv, &i, "--seed", &v)) != 0) {
      if (r < 0 || hn_cli_parse_u64(v, &seed) != 0)
        return hn_cli_usage_error(CMD, "--seed needs an unsigned integer, not '%s'", r < 0 ? "" : v);
    } else if ((r = hn_cli_opt(argc, argv, &i, "--noise", &v)) != 0) {
      if (r < 0 || hn_cli_parse_double(v, 0.0, 1e30, &noise) != 0)
        return hn_cli_usage_error(CMD, "--noise needs a number >= 0, not '%s'", r < 0 ? "" : v);
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return hn_cli_usage_error(CMD, "unknown option '%s'", argv[i]);
    } else if (!kind) {
      kind = argv[i];
    } else {
      return hn_cli_usage_error(CMD, "unexpected argument '%s' (one KIND only)", argv[i]);
    }
  }
  if (!kind)
    return hn_cli_usage_error(CMD, "missing KIND (one of: %s)", hn_datagen_kinds());
  int fixed = hn_datagen_fixed_size(kind);
  if (fixed < 0)
    return hn_cli_usage_error(CMD, "unknown KIND '%s' (one of: %s)", kind, hn_datagen_kinds());
  if (fixed && (n_train > 0 || n_val > 0))
    return hn_cli_usage_error(CMD, "%s has a fixed size (513 training + 513 validation points); drop --samples "
                              "and --val-samples", kind);
  if (!out)
    return hn_cli_usage_error(CMD, "missing --out DIR");
  if (hn_log_rank() != 0)
    return HN_EXIT_OK;

  char train_path[PATH_MAX], val_path[PATH_MAX];
  if (snprintf(train_path, sizeof train_path, "%s/train.h5", out) >= (int)sizeof train_path ||
      snprintf(val_path, sizeof val_path, "%s/val.h5", out) >= (int)sizeof val_path)
    return hn_cli_usage_error(CMD, "--out path is too long");
  hn_dataset train, val;
  int status = make_dirs(out);
  if (status != HN_OK)
    return hn_cli_fail(status);
  status = hn_datagen(kind, n_train, n_val, seed, noise, &train, &val);
  if (status == HN_OK)
    status = hn_dataset_write(train_path, &train);
  if (status == HN_OK)
    status = hn_dataset_write(val_path, &val);
  if (status == HN_OK) {
    summary(train_path, &train);
    summary(val_path, &val);
  }
  hn_dataset_free(&train);
  hn_dataset_free(&val);
  return status == HN_OK ? HN_EXIT_OK : hn_cli_fail(status);
}
