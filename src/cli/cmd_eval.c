/* cmd_eval.c - `hamnet eval --checkpoint FILE --data FILE [...]`: loss and accuracy of a
 * checkpoint, sharded over the ranks (each rank reads and evaluates its block of rows). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hamnet/checkpoint.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "hamnet/rng.h"
#include "hamnet/train.h"

static const char *usage =
    "Usage: hamnet eval --checkpoint FILE.h5 --data FILE.h5 [options]\n"
    "\n"
    "Loss (mean cross-entropy) and accuracy of a trained network on a data set.\n"
    "\n"
    "Options:\n"
    "  --checkpoint FILE    a checkpoint written by `hamnet train` (e.g. runs/x/best.h5)\n"
    "  --data FILE          a data set file (README \"Data files\")\n"
    "  --noise SIGMA        perturb every input coordinate by N(0, SIGMA^2) first (robustness)\n"
    "  --seed S             seed of the noise (default 1); the same seed gives the same noise\n"
    "                       whatever the number of ranks\n"
    "  --batch B            samples per forward pass and rank (default 1024)\n"
    "  --predictions OUT.h5 write /pred (int32 [N]), /logits (float32 [N, C]) and /y\n"
    "  --json               print one JSON object {\"loss\", \"accuracy\", \"samples\", ...}\n"
    "  --threads N          OpenMP threads per rank\n"
    "  -h, --help           this text\n"
    "\n"
    "Under mpirun the rows are split over the ranks; the result is the same.\n";

int hn_cmd_eval(int argc, char **argv) {
  hn_eval_options opt;
  hn_eval_options_default(&opt);
  int json = 0;
  const char *value;
  for (int i = 1; i < argc; i++) {
    int m;
    if (hn_cli_is_help(argv[i])) {
      if (hn_log_rank() == 0)
        fputs(usage, stdout);
      return HN_EXIT_OK;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--checkpoint", &value)) != 0) {
      if (m < 0)
        return hn_cli_usage_error("eval", "--checkpoint needs a file");
      opt.checkpoint = value;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--data", &value)) != 0) {
      if (m < 0)
        return hn_cli_usage_error("eval", "--data needs a file");
      opt.data = value;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--predictions", &value)) != 0) {
      if (m < 0)
        return hn_cli_usage_error("eval", "--predictions needs a file name");
      opt.predictions = value;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--noise", &value)) != 0) {
      if (m < 0 || hn_cli_parse_double(value, 0, 1e6, &opt.noise) != 0)
        return hn_cli_usage_error("eval", "--noise needs a standard deviation >= 0");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--seed", &value)) != 0) {
      if (m < 0 || hn_cli_parse_u64(value, &opt.seed) != 0)
        return hn_cli_usage_error("eval", "--seed needs a non-negative integer");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--batch", &value)) != 0) {
      long b;
      if (m < 0 || hn_cli_parse_long(value, 1, 1 << 24, &b) != 0)
        return hn_cli_usage_error("eval", "--batch needs a number from 1 to 16777216");
      opt.batch = (int)b;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--threads", &value)) != 0) {
      long t;
      if (m < 0 || hn_cli_parse_long(value, 1, 4096, &t) != 0)
        return hn_cli_usage_error("eval", "--threads needs a number from 1 to 4096");
      omp_set_num_threads((int)t);
    } else if (hn_cli_flag(argv, i, "--json")) {
      json = 1;
    } else {
      return hn_cli_usage_error("eval", "unknown argument '%s'", argv[i]);
    }
  }
  if (!opt.checkpoint || !opt.data)
    return hn_cli_usage_error("eval", "both --checkpoint and --data are required");
  if (json)
    hn_log_set_level(HN_LOG_WARN); /* stdout holds only the JSON object */
  hn_eval_result res;
  int status = hn_evaluate(&opt, &res);
  if (status != HN_OK)
    return hn_cli_fail(status);
  if (hn_log_rank() == 0) {
    if (json)
      printf("{\"loss\": %.17g, \"accuracy\": %.17g, \"samples\": %lld, \"correct\": %lld, \"noise\": %.17g, "
             "\"seed\": %llu, \"checkpoint\": \"%s\", \"data\": \"%s\", \"ranks\": %d, \"seconds\": %.6f}\n",
             res.loss, res.accuracy, (long long)res.samples, (long long)res.correct, opt.noise,
             (unsigned long long)opt.seed, opt.checkpoint, opt.data, hn_log_size(), res.seconds);
    else
      printf("%s on %s: loss %.6f, accuracy %.2f%% (%lld of %lld)%s\n", opt.checkpoint, opt.data, res.loss,
             100 * res.accuracy, (long long)res.correct, (long long)res.samples, opt.noise > 0 ? " with input noise" : "");
  }
  return HN_EXIT_OK;
}
