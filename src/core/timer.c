/* timer.c - monotonic wall clock and accumulating stopwatches (see hamnet/timer.h). */
#include "hamnet/timer.h"

#include <time.h>

double hn_wtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void hn_timer_reset(hn_timer *t) {
  t->total = 0.0;
  t->started = -1.0;
  t->count = 0;
}

void hn_timer_start(hn_timer *t) { t->started = hn_wtime(); }

void hn_timer_stop(hn_timer *t) {
  if (t->started >= 0.0) {
    t->total += hn_wtime() - t->started;
    t->count++;
    t->started = -1.0;
  }
}
