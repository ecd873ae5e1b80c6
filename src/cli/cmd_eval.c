/* cmd_eval.c - `hamnet eval` (placeholder until its module lands). */
#include "cli/cli.h"
#include "hamnet/error.h"

int hn_cmd_eval(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return hn_cli_usage_error("eval", "not implemented yet");
}
