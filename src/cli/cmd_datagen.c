/* cmd_datagen.c - `hamnet datagen` (placeholder until its module lands). */
#include "cli/cli.h"
#include "hamnet/error.h"

int hn_cmd_datagen(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return hn_cli_usage_error("datagen", "not implemented yet");
}
