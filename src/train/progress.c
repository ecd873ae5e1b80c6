/* progress.c - progress bar and per-epoch summary lines (see progress.h). */
#include "train/progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamnet/log.h"
#include "hamnet/timer.h"

/* Whether a live bar makes sense: rank 0, info level, stdout a terminal - and not started by an
 * MPI launcher, which hands the ranks a pseudo-terminal even when its own output goes to a batch
 * log. HAMNET_PROGRESS=bar or =lines overrides the guess. */
static int want_live_bar(void) {
  if (hn_log_rank() != 0 || hn_log_get_level() < HN_LOG_INFO)
    return 0;
  const char *force = getenv("HAMNET_PROGRESS");
  if (force && strcmp(force, "bar") == 0)
    return 1;
  if (force && strcmp(force, "lines") == 0)
    return 0;
  const char *launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
  for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
    if (getenv(launcher_vars[i]))
      return 0;
  return isatty(STDOUT_FILENO);
}

void hn_progress_init(hn_progress_display *d, int epochs) {
  memset(d, 0, sizeof *d);
  d->live = want_live_bar();
  d->epochs = epochs;
  d->run_t0 = hn_wtime();
}

void hn_progress_epoch_begin(hn_progress_display *d, int epoch, int steps, int first_step) {
  d->epoch = epoch;
  d->steps = steps;
  d->first_step = first_step;
  d->epoch_t0 = hn_wtime();
  d->last_draw = 0;
}

void hn_progress_step(hn_progress_display *d, int step, double loss, double accuracy) {
  if (!d->live)
    return;
  double now = hn_wtime();
  if (now - d->last_draw < 0.1 && step < d->steps)
    return;
  d->last_draw = now;
  const int width = 30;
  int filled = d->steps > 0 ? (int)((double)step / d->steps * width) : width;
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '.';
  bar[width] = '\0';
  double rate = (step - d->first_step) / fmax(now - d->epoch_t0, 1e-9);
  double left = rate > 0 ? (d->steps - step) / rate : 0;
  printf("\r  epoch %d/%d [%s] %d/%d  loss %.4f  acc %.2f%%  %.0f s left in epoch   ", d->epoch + 1, d->epochs,
         bar, step, d->steps, loss, 100 * accuracy, left);
  fflush(stdout);
  d->drawn = 1;
}

void hn_progress_interrupt(hn_progress_display *d) {
  if (d->drawn) {
    printf("\r%*s\r", 110, "");
    fflush(stdout);
    d->drawn = 0;
  }
}

static void format_duration(double s, char *buf, size_t size) {
  if (!(s >= 0) || !isfinite(s))
    snprintf(buf, size, "?");
  else if (s < 60)
    snprintf(buf, size, "%.0fs", s);
  else if (s < 3600)
    snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
  else
    snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

void hn_progress_epoch_end(hn_progress_display *d, int epoch, int epochs, int depth, double train_loss,
                           double train_acc, double reg, double val_loss, double val_acc, double samples_per_s, double lr,
                           double recon, double seconds) {
  hn_progress_interrupt(d);
  /* exponential smoothing of the epoch time: multilevel epochs get longer as depth doubles */
  d->seconds_per_epoch = d->epochs_timed == 0 ? seconds : 0.5 * d->seconds_per_epoch + 0.5 * seconds;
  d->epochs_timed++;
  char left[32], val[64] = "", rec[32] = "", regs[32] = "";
  format_duration(d->seconds_per_epoch * (epochs - epoch), left, sizeof left);
  if (!isnan(val_acc))
    snprintf(val, sizeof val, " | val loss %.4f acc %6.2f%%", val_loss, 100 * val_acc);
  if (reg > 0)
    snprintf(regs, sizeof regs, " (+R %.3g)", reg);
  if (recon > 0)
    snprintf(rec, sizeof rec, " | recon %.1e", recon);
  hn_log_info("epoch %*d/%d depth %d | train loss %.4f%s acc %6.2f%%%s | %.0f samples/s | lr %.3g%s | %.2fs, %s left",
              epochs >= 100 ? 3 : 2, epoch, epochs, depth, train_loss, regs, 100 * train_acc, val, samples_per_s, lr, rec,
              seconds, left);
}
