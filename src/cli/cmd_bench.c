/* cmd_bench.c - `hamnet bench`: argument parsing for hamnet/bench.h (the logic lives there). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hamnet/bench.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/real.h"

static const char *usage =
    "Usage: hamnet bench [--arch A] [--width n] [--depth N] [--batch B] [options]\n"
    "\n"
    "Times full training steps (zero gradients, forward, backward, Adam update) on a synthetic\n"
    "batch after warm-up steps, and prints ms/step, samples/s, the useful GEMM work per step as\n"
    "GFLOP/s (forward + backward GEMMs, recomputation not counted: 12 n^2 flops per layer and\n"
    "sample for hamiltonian and leapfrog, 6 n^2 for resnet and antisym, plus the classifier and a\n"
    "dense opening), the roofline (the same GEMM shapes timed alone with CBLAS on this machine)\n"
    "and memory (hamnet's counters per category and the peak RSS). One process, no MPI.\n"
    "\n"
    "Options (defaults in brackets):\n"
    "  --arch A              resnet, antisym, hamiltonian, leapfrog [hamiltonian]\n"
    "  --activation S        tanh, relu [tanh]\n"
    "  --opening O           pad, dense [pad]\n"
    "  --width n --depth N --batch B    [8, 256, 1024]\n"
    "  --features F --classes C         synthetic data shape [2, 5]\n"
    "  --final-time T        [5]\n"
    "  --stages S            a convolutional network (e.g. 16x3,32x3,64x3: CHANNELSxLAYERS per\n"
    "                        stage, README \"Convolutional networks\") on synthetic images;\n"
    "                        width, depth, features and --opening do not apply\n"
    "  --image CxHxW         convolutional: the images' shape [1x28x28]\n"
    "  --norm batch|none     convolutional: normalisation of opening and connectives [batch]\n"
    "  --reversible on|off   recompute states in the backward pass, or store them [on; off\n"
    "                        for resnet / antisym]\n"
    "  --kernel K            auto, narrow, wide: the pass implementation [auto]\n"
    "  --conv-algorithm A    convolutional: auto, winograd, im2col - how the 3x3 convolutions\n"
    "                        are computed ([train] conv_algorithm) [auto]\n"
    "  --steps S             timed steps; the best and the median are reported [10]\n"
    "  --warmup W            untimed steps first [2]\n"
    "  --threads T           OpenMP threads (BLAS follows) [OMP_NUM_THREADS]\n"
    "  --seed S              parameters and data [1]\n"
    "  --no-roofline         skip timing the GEMM shapes alone\n"
    "  --compare-reversible  instead of timing: gradients of one batch in stored and in\n"
    "                        reversible mode, and their difference\n"
    "  --json                print one JSON object\n"
    "  -h, --help            this text\n";

static int parse_int(const char *opt, const char *v, long lo, long hi, int *out) {
  long x;
  if (!v || hn_cli_parse_long(v, lo, hi, &x) != 0)
    return hn_cli_usage_error("bench", "%s needs an integer in [%ld, %ld]", opt, lo, hi);
  *out = (int)x;
  return 0;
}

int hn_cmd_bench(int argc, char **argv) {
  hn_bench_options o;
  hn_bench_options_default(&o);
  int json = 0, compare = 0, reversible_set = 0;
  const char *v;
  for (int i = 1; i < argc; i++) {
    int m, bad = 0;
    if (hn_cli_is_help(argv[i])) {
      if (hn_log_rank() == 0)
        fputs(usage, stdout);
      return HN_EXIT_OK;
    } else if (hn_cli_flag(argv, i, "--json")) {
      json = 1;
    } else if (hn_cli_flag(argv, i, "--no-roofline")) {
      o.roofline = 0;
    } else if (hn_cli_flag(argv, i, "--compare-reversible")) {
      compare = 1;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--arch", &v)) != 0) {
      if (m < 0 || hn_arch_parse(v, &o.arch) != 0)
        return hn_cli_usage_error("bench", "--arch needs resnet, antisym, hamiltonian or leapfrog");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--activation", &v)) != 0) {
      if (m < 0 || hn_activation_parse(v, &o.activation) != 0)
        return hn_cli_usage_error("bench", "--activation needs tanh or relu");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--opening", &v)) != 0) {
      if (m < 0 || hn_opening_parse(v, &o.opening) != 0)
        return hn_cli_usage_error("bench", "--opening needs pad or dense");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--kernel", &v)) != 0) {
      if (m < 0 || hn_kernel_path_parse(v, &o.kernel) != 0)
        return hn_cli_usage_error("bench", "--kernel needs auto, narrow or wide");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--conv-algorithm", &v)) != 0) {
      if (m < 0 || hn_conv_algorithm_parse(v, &o.conv_algorithm) != 0)
        return hn_cli_usage_error("bench", "--conv-algorithm needs auto, winograd or im2col");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--reversible", &v)) != 0) {
      if (m < 0 || (strcmp(v, "on") != 0 && strcmp(v, "off") != 0))
        return hn_cli_usage_error("bench", "--reversible needs on or off");
      o.reversible = strcmp(v, "on") == 0;
      reversible_set = 1;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--stages", &v)) != 0) {
      int n, ch[HN_MAX_STAGES], ly[HN_MAX_STAGES];
      char why[160];
      if (m < 0 || strlen(v) >= sizeof o.stages || hn_stages_parse(v, &n, ch, ly, why, sizeof why) != 0 || n < 1)
        return hn_cli_usage_error("bench", "--stages needs CHANNELSxLAYERS[,...], e.g. 16x3,32x3,64x3");
      hn_stages_format(n, ch, ly, o.stages, sizeof o.stages);
    } else if ((m = hn_cli_opt(argc, argv, &i, "--image", &v)) != 0) {
      char tail;
      if (m < 0 || sscanf(v, "%dx%dx%d%c", &o.image_channels, &o.image_height, &o.image_width, &tail) != 3 ||
          o.image_channels < 1 || o.image_height < 1 || o.image_width < 1 || o.image_channels > 4096 ||
          o.image_height > 65536 || o.image_width > 65536)
        return hn_cli_usage_error("bench", "--image needs CxHxW, e.g. 1x28x28");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--norm", &v)) != 0) {
      if (m < 0 || hn_norm_parse(v, &o.norm) != 0)
        return hn_cli_usage_error("bench", "--norm needs batch or none");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--final-time", &v)) != 0) {
      if (m < 0 || hn_cli_parse_double(v, 1e-300, 1e300, &o.final_time) != 0)
        return hn_cli_usage_error("bench", "--final-time needs a number > 0");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--seed", &v)) != 0) {
      if (m < 0 || hn_cli_parse_u64(v, &o.seed) != 0)
        return hn_cli_usage_error("bench", "--seed needs a non-negative integer");
    } else if ((m = hn_cli_opt(argc, argv, &i, "--width", &v)) != 0) {
      bad = parse_int("--width", m < 0 ? NULL : v, 1, 65536, &o.width);
    } else if ((m = hn_cli_opt(argc, argv, &i, "--depth", &v)) != 0) {
      bad = parse_int("--depth", m < 0 ? NULL : v, 1, 1000000, &o.depth);
    } else if ((m = hn_cli_opt(argc, argv, &i, "--batch", &v)) != 0) {
      bad = parse_int("--batch", m < 0 ? NULL : v, 1, 1 << 24, &o.batch);
    } else if ((m = hn_cli_opt(argc, argv, &i, "--features", &v)) != 0) {
      bad = parse_int("--features", m < 0 ? NULL : v, 1, 1 << 20, &o.features);
    } else if ((m = hn_cli_opt(argc, argv, &i, "--classes", &v)) != 0) {
      bad = parse_int("--classes", m < 0 ? NULL : v, 2, 1 << 20, &o.classes);
    } else if ((m = hn_cli_opt(argc, argv, &i, "--steps", &v)) != 0) {
      bad = parse_int("--steps", m < 0 ? NULL : v, 1, 1000000, &o.steps);
    } else if ((m = hn_cli_opt(argc, argv, &i, "--warmup", &v)) != 0) {
      bad = parse_int("--warmup", m < 0 ? NULL : v, 0, 1000000, &o.warmup);
    } else if ((m = hn_cli_opt(argc, argv, &i, "--threads", &v)) != 0) {
      bad = parse_int("--threads", m < 0 ? NULL : v, 1, 65536, &o.threads);
    } else {
      return hn_cli_usage_error("bench", "unknown option '%s'", argv[i]);
    }
    if (bad)
      return bad;
  }
  if (!reversible_set && !hn_arch_is_reversible(o.arch))
    o.reversible = 0;
  if (!o.stages[0] && o.opening == HN_OPEN_PAD && o.width < o.features)
    return hn_cli_usage_error("bench", "--opening pad needs width >= features (%d < %d)", o.width, o.features);

  if (compare) {
    hn_bench_compare c;
    int status = hn_bench_compare_reversible(&o, &c);
    if (status != HN_OK)
      return hn_cli_fail(status);
    if (hn_log_rank() != 0)
      return HN_EXIT_OK;
    if (json)
      printf("{\"arch\": \"%s\", \"width\": %d, \"depth\": %d, \"batch\": %d, \"final_time\": %g, \"precision\": "
             "\"%s\", \"max_rel_diff\": %.6g, \"norm_rel_diff\": %.6g, \"recon_error\": %.6g, \"grad_norm\": %.6g}\n",
             hn_arch_name(o.arch), o.width, o.depth, o.batch, o.final_time, HN_REAL_NAME, c.max_rel_diff,
             c.norm_rel_diff, c.recon_error, c.grad_norm);
    else
      printf("reversible vs stored gradients (%s, width %d, depth %d, batch %d, T = %g, %s): max |difference| / "
             "max |g| = %.3g, ||difference|| / ||g|| = %.3g; reconstruction error %.3g\n",
             hn_arch_name(o.arch), o.width, o.depth, o.batch, o.final_time, HN_REAL_NAME, c.max_rel_diff,
             c.norm_rel_diff, c.recon_error);
    return HN_EXIT_OK;
  }
  hn_bench_result r;
  int status = hn_bench_run(&o, &r);
  if (status != HN_OK)
    return hn_cli_fail(status);
  if (hn_log_rank() == 0) {
    if (json)
      hn_bench_print_json(stdout, &o, &r);
    else
      hn_bench_print(stdout, &o, &r);
  }
  return HN_EXIT_OK;
}
