/* signals.c - stop requests from SIGUSR1 / SIGTERM / SIGINT and the SIGTERM deadline (see
 * hamnet/train.h "signals").
 *
 * The handler only records the signal (the first one wins) and, for SIGTERM, arms a watchdog:
 * alarm(deadline). The orderly path - finish the step, agree with the other ranks, write a
 * checkpoint, MPI_Finalize - happens in the training loop. If it has not ended the process
 * when the alarm fires (a checkpoint too slow for the time left, or a rank blocked in a
 * collective because its peer is gone), the SIGALRM handler writes one line to stderr and
 * _exit(75)s: no checkpoint is half-written in place (writes go to a .tmp file first), so the
 * newest complete checkpoint is what the next run resumes from.
 * Everything the handlers call is async-signal-safe (write, alarm, clock_gettime, _exit). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/train.h"

static volatile sig_atomic_t pending_signal = 0;
static volatile sig_atomic_t term_armed = 0;
static volatile sig_atomic_t signals_seen = 0;
static struct timespec first_time;    /* CLOCK_MONOTONIC at the first stop signal */
static struct timespec term_time;     /* CLOCK_MONOTONIC when the watchdog was armed */
static unsigned term_deadline = HN_TERM_DEADLINE_DEFAULT;
static char alarm_message[256];
static size_t alarm_message_len = 0;

static void on_alarm(int sig) {
  (void)sig;
  if (alarm_message_len > 0) {
    ssize_t w = write(STDERR_FILENO, alarm_message, alarm_message_len);
    (void)w;
  }
  _exit(HN_EXIT_RESUME);
}

static void on_signal(int sig) {
  int saved = errno;
  if (signals_seen < 1000)
    signals_seen++;
  if (!pending_signal) {
    clock_gettime(CLOCK_MONOTONIC, &first_time);
    pending_signal = sig;
  }
  if (sig == SIGTERM && !term_armed && term_deadline > 0) {
    clock_gettime(CLOCK_MONOTONIC, &term_time);
    alarm(term_deadline);
    term_armed = 1;
  }
  errno = saved;
}

/* HAMNET_TERM_DEADLINE: whole seconds 0..86400 (0 = no deadline). */
static unsigned read_deadline(void) {
  const char *s = getenv("HAMNET_TERM_DEADLINE");
  if (!s || !*s)
    return HN_TERM_DEADLINE_DEFAULT;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < 0 || v > 86400) {
    hn_log_warn("HAMNET_TERM_DEADLINE = '%s' is not a whole number of seconds from 0 to 86400; using %d",
                s, HN_TERM_DEADLINE_DEFAULT);
    return HN_TERM_DEADLINE_DEFAULT;
  }
  return (unsigned)v;
}

void hn_signals_install(void) {
  term_deadline = read_deadline();
  int n = snprintf(alarm_message, sizeof alarm_message,
                   "hamnet: rank %d: SIGTERM deadline of %u s (HAMNET_TERM_DEADLINE) expired before the "
                   "orderly stop finished; exiting now without a new checkpoint. The newest complete "
                   "checkpoint in the run folder is kept: run the same command again to resume.\n",
                   hn_log_rank(), term_deadline);
  alarm_message_len = n > 0 && (size_t)n < sizeof alarm_message ? (size_t)n : 0;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  /* No other stop signal may interrupt the handler halfway. */
  sigaddset(&sa.sa_mask, SIGUSR1);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGINT);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  /* A SIGTERM that arrived before the handler was in place (e.g. between MPI start-up and
   * here) was fatal by default; nothing to carry over. */
}

int hn_signals_pending(void) { return (int)pending_signal; }

const char *hn_signal_name(int sig) {
  switch (sig) {
  case SIGUSR1: return "SIGUSR1";
  case SIGTERM: return "SIGTERM";
  case SIGINT: return "SIGINT";
  default: return "a signal";
  }
}

int hn_signals_count(void) { return (int)signals_seen; }

static double seconds_since(const struct timespec *t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t0->tv_sec) + 1e-9 * (double)(now.tv_nsec - t0->tv_nsec);
}

double hn_signals_elapsed(void) { return pending_signal ? seconds_since(&first_time) : 0.0; }

double hn_signals_term_left(void) { return term_armed ? (double)term_deadline - seconds_since(&term_time) : HUGE_VAL; }

int hn_signals_term_deadline(void) { return (int)term_deadline; }
