/* cmd_inspect.c - `hamnet inspect FILE [--json]`: summarise any hamnet file.
 *
 * The file's kind comes from its root attribute `format`; each kind has one function here:
 *   "hamnet-checkpoint"   inspect_checkpoint   (to be written with the checkpoint module)
 *   "hamnet-diagnostics"  inspect_diagnostics  (hn_diag_print_summary)
 *   absent or "hamnet-dataset"  inspect_dataset (files written by h5py have no `format`)
 * Each returns the command's exit code and prints on stdout (one JSON object with --json). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hamnet/checkpoint.h"
#include "hamnet/data.h"
#include "hamnet/diag.h"
#include "hamnet/error.h"
#include "hamnet/log.h"

static const char *CMD = "inspect";

static void usage(FILE *out) {
  fprintf(out,
          "Usage: hamnet inspect FILE [--json]\n\n"
          "Summarise a hamnet file; its kind is read from the root attribute `format`:\n"
          "  data set (format \"hamnet-dataset\" or none, e.g. written by h5py): samples, sample shape,\n"
          "      classes and per-class counts, min/max/mean of X, whether checksummed. Reads the whole\n"
          "      file (in blocks) and validates it like training does: labels in range, X finite.\n"
          "  checkpoint (\"hamnet-checkpoint\"): not yet implemented.\n"
          "  diagnostics (\"hamnet-diagnostics\", RUN_DIR/diagnostics.h5): network, records, the newest\n"
          "      record's losses, ||y_j|| and ||dL/dy_j|| ranges and max/min, spectra, the stability\n"
          "      monitor's amplification and flags, and the cost of the diagnostics passes.\n\n"
          "Options:\n"
          "  --json       print one JSON object instead of text\n"
          "  -h, --help   this text\n");
}

/* A JSON string literal (quotes included). */
static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      if (*p < 0x20)
        fprintf(out, "\\u%04x", *p);
      else
        fputc(*p, out);
    }
  }
  fputc('"', out);
}

static int inspect_dataset(const char *path, const char *format, int json) {
  hn_dataset_summary s;
  int status = hn_dataset_summarize(path, &s);
  if (status != HN_OK)
    return hn_cli_fail(status);
  const hn_dataset_info *in = &s.info;
  if (json) {
    printf("{\"file\": ");
    json_string(stdout, path);
    printf(", \"kind\": \"dataset\", \"format\": ");
    json_string(stdout, format[0] ? format : "");
    printf(", \"samples\": %lld, \"sample_shape\": [", (long long)in->n);
    for (int k = 0; k < in->ndim_sample; k++)
      printf("%s%lld", k ? ", " : "", (long long)in->sample_dims[k]);
    printf("], \"n_features\": %lld, \"n_classes\": %d, \"n_classes_attribute\": %s, \"class_counts\": [",
           (long long)in->n_features, in->n_classes, in->has_n_classes_attr ? "true" : "false");
    for (int c = 0; c < in->n_classes; c++)
      printf("%s%lld", c ? ", " : "", (long long)s.class_counts[c]);
    printf("], \"x_type\": \"%s\", \"y_type\": \"%s\", \"x_min\": %.9g, \"x_max\": %.9g, \"x_mean\": %.9g, "
           "\"checksummed\": %s}\n",
           in->x_type, in->y_type, s.x_min, s.x_max, s.x_mean, in->checksummed ? "true" : "false");
  } else {
    printf("file        %s\n", path);
    printf("kind        data set%s%s%s\n", format[0] ? " (format " : " (no format attribute)", format,
           format[0] ? ")" : "");
    printf("samples     %lld\n", (long long)in->n);
    printf("sample      [");
    for (int k = 0; k < in->ndim_sample; k++)
      printf("%s%lld", k ? ", " : "", (long long)in->sample_dims[k]);
    printf("] = %lld features\n", (long long)in->n_features);
    printf("classes     %d (%s)\n", in->n_classes,
           in->has_n_classes_attr ? "n_classes attribute" : "largest label + 1; no n_classes attribute");
    printf("per class  ");
    for (int c = 0; c < in->n_classes && c < 100; c++)
      printf(" %d:%lld", c, (long long)s.class_counts[c]);
    printf("%s\n", in->n_classes > 100 ? " ..." : "");
    printf("X           %s, min %.6g, max %.6g, mean %.6g\n", in->x_type, s.x_min, s.x_max, s.x_mean);
    printf("y           %s\n", in->y_type);
    printf("checksums   %s\n", in->checksummed ? "fletcher32 on /X and /y" : "none");
  }
  hn_dataset_summary_free(&s);
  return HN_EXIT_OK;
}

/* Checkpoint files (format "hamnet-checkpoint"): summary / JSON from src/io/ckpt_summary.c. */
static int inspect_checkpoint(const char *path, int json) {
  /* hn_ckpt_print_summary verifies the whole file (every checksum) before printing. */
  int status = json ? hn_ckpt_print_summary_json(path, stdout) : hn_ckpt_print_summary(path, stdout);
  if (status != HN_OK)
    return hn_cli_fail(status);
  return HN_EXIT_OK;
}

/* Diagnostics files (format "hamnet-diagnostics"): summary from src/diag/diag_read.c. */
static int inspect_diagnostics(const char *path, int json) {
  int status = hn_diag_print_summary(path, json, stdout);
  if (status != HN_OK)
    return hn_cli_fail(status);
  return HN_EXIT_OK;
}

int hn_cmd_inspect(int argc, char **argv) {
  const char *path = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (hn_cli_is_help(argv[i])) {
      if (hn_log_rank() == 0)
        usage(stdout);
      return HN_EXIT_OK;
    } else if (hn_cli_flag(argv, i, "--json")) {
      json = 1;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return hn_cli_usage_error(CMD, "unknown option '%s'", argv[i]);
    } else if (!path) {
      path = argv[i];
    } else {
      return hn_cli_usage_error(CMD, "unexpected argument '%s' (one FILE only)", argv[i]);
    }
  }
  if (!path)
    return hn_cli_usage_error(CMD, "missing FILE");
  if (hn_log_rank() != 0)
    return HN_EXIT_OK;
  char format[128];
  int status = hn_file_format(path, format, sizeof format);
  if (status != HN_OK)
    return hn_cli_fail(status);
  if (strcmp(format, "hamnet-checkpoint") == 0)
    return inspect_checkpoint(path, json);
  if (strcmp(format, "hamnet-diagnostics") == 0)
    return inspect_diagnostics(path, json);
  if (format[0] == '\0' || strcmp(format, HN_DATA_FORMAT) == 0)
    return inspect_dataset(path, format, json);
  return hn_cli_fail(hn_fail(HN_EFORMAT, "%s: unknown format '%s' (hamnet knows %s, hamnet-checkpoint and "
                                         "hamnet-diagnostics)", path, format, HN_DATA_FORMAT));
}
