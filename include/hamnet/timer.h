/* hamnet/timer.h - wall-clock time and small accumulating timers. */
#ifndef HAMNET_TIMER_H
#define HAMNET_TIMER_H

/* Seconds on a monotonic clock (arbitrary origin). */
double hn_wtime(void);

/* An accumulating stopwatch: hn_timer_start / hn_timer_stop add the elapsed time to total. */
typedef struct {
  double total;   /* seconds accumulated */
  double started; /* hn_wtime() at the last start, < 0 when stopped */
  long count;     /* number of start/stop intervals */
} hn_timer;

void hn_timer_reset(hn_timer *t);
void hn_timer_start(hn_timer *t);
void hn_timer_stop(hn_timer *t);

#endif
