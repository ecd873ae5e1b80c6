/* signals.c - stop requests from SIGUSR1 / SIGTERM / SIGINT (see hamnet/train.h).
 * The handler only records the signal; everything else happens at a step boundary. */
#include <signal.h>
#include <string.h>

#include "hamnet/train.h"

static volatile sig_atomic_t pending_signal = 0;

static void on_signal(int sig) {
  if (!pending_signal)
    pending_signal = sig;
}

void hn_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

int hn_signals_pending(void) { return (int)pending_signal; }
