/* cli.h - shared helpers of the `hamnet` subcommands (private to src/cli).
 *
 * The CLI only parses arguments and wires modules together; anything with logic lives in the
 * library. Each subcommand is one file cmd_NAME.c exporting `int hn_cmd_NAME(argc, argv)`
 * that returns the process exit code (hamnet/error.h). argv[0] is the subcommand's name. */
#ifndef HAMNET_CLI_H
#define HAMNET_CLI_H

#include <stdint.h>

int hn_cmd_train(int argc, char **argv);
int hn_cmd_eval(int argc, char **argv);
int hn_cmd_datagen(int argc, char **argv);
int hn_cmd_import(int argc, char **argv);
int hn_cmd_inspect(int argc, char **argv);
int hn_cmd_bench(int argc, char **argv);

/* Print "hamnet CMD: <message>" and a hint to use --help on stderr (rank 0 only); returns
 * HN_EXIT_USAGE so that `return hn_cli_usage_error(...)` ends the command. */
int hn_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report the stored error (hn_error_report) and return the exit code for `status`. */
int hn_cli_fail(int status);

/* Whether argv[i] is the option `name` ("--name" or "--name=value"). On a match *value points
 * at the value (the next argument, or the text after '='), *i is advanced past it, and 1 is
 * returned; a missing value gives -1. No match: 0. For flags without a value use hn_cli_flag. */
int hn_cli_opt(int argc, char **argv, int *i, const char *name, const char **value);
int hn_cli_flag(char **argv, int i, const char *name);
int hn_cli_is_help(const char *arg);

/* Parse numbers strictly (whole string, in range); return 0 or -1. */
int hn_cli_parse_long(const char *s, long lo, long hi, long *out);
int hn_cli_parse_u64(const char *s, uint64_t *out);
int hn_cli_parse_double(const char *s, double lo, double hi, double *out);

#endif
