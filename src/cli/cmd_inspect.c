/* cmd_inspect.c - `hamnet inspect` (placeholder until its module lands). */
#include "cli/cli.h"
#include "hamnet/error.h"

int hn_cmd_inspect(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return hn_cli_usage_error("inspect", "not implemented yet");
}
