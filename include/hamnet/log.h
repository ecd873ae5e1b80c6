/* hamnet/log.h - the one logging path.
 *
 * By default only rank 0 prints (hn_log_info / hn_log_warn); hn_log_all prints on every rank
 * with a "[rank r]" prefix. Info goes to stdout (it is the run's progress), warnings and
 * errors to stderr. Every line carries the seconds since hn_log_init. */
#ifndef HAMNET_LOG_H
#define HAMNET_LOG_H

#include <stdio.h>

typedef enum { HN_LOG_QUIET = 0, HN_LOG_WARN = 1, HN_LOG_INFO = 2, HN_LOG_DEBUG = 3 } hn_log_level;

/* Called once by the parallel layer after MPI_Init (rank, size); before that rank 0 of 1. */
void hn_log_init(int rank, int size);
void hn_log_set_level(hn_log_level level);
hn_log_level hn_log_get_level(void);
int hn_log_rank(void);
int hn_log_size(void);

void hn_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hn_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hn_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Every rank prints (prefixed with its rank), at info level. */
void hn_log_all(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seconds since hn_log_init (monotonic clock). */
double hn_log_elapsed(void);

#endif
