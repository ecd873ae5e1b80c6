/* cmd_train.c - `hamnet train` (placeholder until its module lands). */
#include "cli/cli.h"
#include "hamnet/error.h"

int hn_cmd_train(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return hn_cli_usage_error("train", "not implemented yet");
}
