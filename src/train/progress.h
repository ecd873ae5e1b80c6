/* progress.h - what the training loop shows on the terminal (rank 0), private to src/train.
 *
 * On a terminal: a live progress bar for the epoch under way (redrawn at most 10 times a
 * second) and one summary line per epoch. Not on a terminal (batch jobs, pipes): only the
 * summary lines, so job logs stay readable. Under an MPI launcher (mpirun, srun) lines too, since
 * launchers give the ranks a pseudo-terminal; HAMNET_PROGRESS=bar|lines overrides. */
#ifndef HAMNET_TRAIN_PROGRESS_H
#define HAMNET_TRAIN_PROGRESS_H

typedef struct {
  int live;           /* stdout is a terminal and this is rank 0 */
  int epochs;
  int epoch;          /* 0-based epoch under way */
  int steps;          /* steps in the epoch */
  int drawn;          /* a bar is on screen */
  double epoch_t0;
  double last_draw;
  int first_step;
  double seconds_per_epoch; /* smoothed, for the time-left estimate */
  double run_t0;
  int epochs_timed;
} hn_progress_display;

void hn_progress_init(hn_progress_display *d, int epochs);
void hn_progress_epoch_begin(hn_progress_display *d, int epoch, int steps, int first_step);
void hn_progress_step(hn_progress_display *d, int step, double loss, double accuracy);
/* Clear the bar before other output (signal, error). */
void hn_progress_interrupt(hn_progress_display *d);
void hn_progress_epoch_end(hn_progress_display *d, int epoch, int epochs, int depth, double train_loss,
                           double train_acc, double reg, double val_loss, double val_acc, double samples_per_s, double lr,
                           double recon, double seconds);

#endif
