/* error.c - the one error path: a per-thread message plus an int status (see hamnet/error.h). */
#include "hamnet/error.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/log.h"

#define HN_ERRMSG_MAX 2048
static _Thread_local char errmsg[HN_ERRMSG_MAX];

int hn_fail(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  va_end(ap);
  return status;
}

int hn_fail_context(int status, const char *fmt, ...) {
  char prefix[HN_ERRMSG_MAX];
  char old[HN_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, errmsg, sizeof old);
  /* Truncation is acceptable here: both halves are already bounded, the result just loses
   * its tail. */
  size_t n = strlen(prefix);
  if (n > sizeof errmsg - 3)
    n = sizeof errmsg - 3;
  memcpy(errmsg, prefix, n);
  errmsg[n] = ':';
  errmsg[n + 1] = ' ';
  size_t room = sizeof errmsg - n - 2;
  size_t m = strnlen(old, room - 1);
  memcpy(errmsg + n + 2, old, m);
  errmsg[n + 2 + m] = '\0';
  return status;
}

const char *hn_errmsg(void) { return errmsg; }

void hn_error_clear(void) { errmsg[0] = '\0'; }

const char *hn_status_name(int status) {
  switch (status) {
  case HN_OK: return "ok";
  case HN_EINVAL: return "invalid argument";
  case HN_EIO: return "I/O error";
  case HN_EFORMAT: return "bad file content";
  case HN_ENOMEM: return "out of memory";
  case HN_ENUMERIC: return "non-finite value";
  case HN_EMPI: return "MPI error";
  case HN_ESTOPPED: return "stopped by signal";
  case HN_EINTERNAL: return "internal error";
  default: return "unknown error";
  }
}

int hn_exit_code(int status) {
  switch (status) {
  case HN_OK: return HN_EXIT_OK;
  case HN_EINVAL: return HN_EXIT_USAGE;
  case HN_ENUMERIC: return HN_EXIT_DIVERGED;
  case HN_ESTOPPED: return HN_EXIT_RESUME;
  default: return HN_EXIT_ERROR;
  }
}

void hn_error_report(int status) {
  const char *msg = errmsg[0] ? errmsg : hn_status_name(status);
  if (hn_log_size() > 1)
    fprintf(stderr, "hamnet: error [rank %d]: %s\n", hn_log_rank(), msg);
  else
    fprintf(stderr, "hamnet: error: %s\n", msg);
  fflush(stderr);
}

void hn_die(const char *file, int line, const char *fmt, ...) {
  char msg[HN_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "hamnet: fatal [rank %d] %s:%d: %s\n", hn_log_rank(), file, line, msg);
  fflush(stderr);
  fflush(stdout);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized && hn_log_size() > 1)
    MPI_Abort(MPI_COMM_WORLD, HN_EXIT_ERROR);
  exit(HN_EXIT_ERROR);
}
