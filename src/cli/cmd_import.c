/* cmd_import.c - `hamnet import` (placeholder until its module lands). */
#include "cli/cli.h"
#include "hamnet/error.h"

int hn_cmd_import(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return hn_cli_usage_error("import", "not implemented yet");
}
