/* cmd_bench.c - `hamnet bench` (placeholder until its module lands). */
#include "cli/cli.h"
#include "hamnet/error.h"

int hn_cmd_bench(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return hn_cli_usage_error("bench", "not implemented yet");
}
