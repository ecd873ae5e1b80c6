/* cli_util.c - argument helpers shared by the subcommands (see cli.h). */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/log.h"

int hn_cli_usage_error(const char *cmd, const char *fmt, ...) {
  if (hn_log_rank() == 0) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hamnet %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'hamnet %s --help'.\n", cmd);
    va_end(ap);
    fflush(stderr);
  }
  return HN_EXIT_USAGE;
}

int hn_cli_fail(int status) {
  hn_error_report(status);
  return hn_exit_code(status);
}

int hn_cli_opt(int argc, char **argv, int *i, const char *name, const char **value) {
  const char *arg = argv[*i];
  size_t len = strlen(name);
  if (strncmp(arg, name, len) != 0)
    return 0;
  if (arg[len] == '=') {
    *value = arg + len + 1;
    return 1;
  }
  if (arg[len] != '\0')
    return 0;
  if (*i + 1 >= argc)
    return -1;
  *i += 1;
  *value = argv[*i];
  return 1;
}

int hn_cli_flag(char **argv, int i, const char *name) { return strcmp(argv[i], name) == 0; }

int hn_cli_is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

int hn_cli_parse_long(const char *s, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

int hn_cli_parse_u64(const char *s, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  if (s[0] == '-')
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end != '\0')
    return -1;
  *out = (uint64_t)v;
  return 0;
}

int hn_cli_parse_double(const char *s, double lo, double hi, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}
