/* log.c - rank-0 logging with elapsed time (see hamnet/log.h). */
#include "hamnet/log.h"

#include <stdarg.h>

#include "hamnet/timer.h"

static int log_rank = 0;
static int log_size = 1;
static hn_log_level log_level = HN_LOG_INFO;
static double log_t0 = -1.0;

void hn_log_init(int rank, int size) {
  log_rank = rank;
  log_size = size;
  if (log_t0 < 0)
    log_t0 = hn_wtime();
}

void hn_log_set_level(hn_log_level level) { log_level = level; }
hn_log_level hn_log_get_level(void) { return log_level; }
int hn_log_rank(void) { return log_rank; }
int hn_log_size(void) { return log_size; }

double hn_log_elapsed(void) {
  if (log_t0 < 0)
    log_t0 = hn_wtime();
  return hn_wtime() - log_t0;
}

static void log_line(FILE *out, const char *tag, int with_rank, const char *fmt, va_list ap) {
  if (with_rank)
    fprintf(out, "[%8.2fs rank %d] %s", hn_log_elapsed(), log_rank, tag);
  else
    fprintf(out, "[%8.2fs] %s", hn_log_elapsed(), tag);
  vfprintf(out, fmt, ap);
  fputc('\n', out);
  fflush(out);
}

void hn_log_info(const char *fmt, ...) {
  if (log_rank != 0 || log_level < HN_LOG_INFO)
    return;
  va_list ap;
  va_start(ap, fmt);
  log_line(stdout, "", 0, fmt, ap);
  va_end(ap);
}

void hn_log_warn(const char *fmt, ...) {
  if (log_rank != 0 || log_level < HN_LOG_WARN)
    return;
  va_list ap;
  va_start(ap, fmt);
  log_line(stderr, "warning: ", 0, fmt, ap);
  va_end(ap);
}

void hn_log_debug(const char *fmt, ...) {
  if (log_level < HN_LOG_DEBUG)
    return;
  va_list ap;
  va_start(ap, fmt);
  log_line(stderr, "debug: ", 1, fmt, ap);
  va_end(ap);
}

void hn_log_all(const char *fmt, ...) {
  if (log_level < HN_LOG_INFO)
    return;
  va_list ap;
  va_start(ap, fmt);
  log_line(stdout, "", 1, fmt, ap);
  va_end(ap);
}
