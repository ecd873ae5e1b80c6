/* hamnet/error.h - the one error path.
 *
 * Library functions return an int status: HN_OK (0) or one of the hn_status codes below.
 * The function that detects the error stores a human-readable message with hn_fail() (the
 * message names the file / key / value and the fix); callers either pass the status up
 * unchanged (HN_TRY) or add context in front (hn_fail_context). The CLI prints the message
 * once, with the rank, and maps the status to an exit code.
 *
 * Internal invariants that cannot be recovered from use HN_ASSERT, which reports file:line
 * and rank and ends the whole MPI job (MPI_Abort) - never a silent exit, never a hang. */
#ifndef HAMNET_ERROR_H
#define HAMNET_ERROR_H

typedef enum {
  HN_OK = 0,
  HN_EINVAL = 1,     /* bad argument, bad config value, bad usage */
  HN_EIO = 2,        /* file cannot be opened / read / written */
  HN_EFORMAT = 3,    /* file readable but its content is wrong (shape, type, checksum, range) */
  HN_ENOMEM = 4,     /* allocation failed or would overflow */
  HN_ENUMERIC = 5,   /* non-finite loss / gradient / data */
  HN_EMPI = 6,       /* MPI failure or ranks disagree */
  HN_ESTOPPED = 7,   /* a signal asked us to stop; state was saved (resume me) */
  HN_EINTERNAL = 8
} hn_status;

/* Exit codes of the `hamnet` command (documented in README.md). */
enum {
  HN_EXIT_OK = 0,
  HN_EXIT_ERROR = 1,      /* any error: message on stderr */
  HN_EXIT_USAGE = 2,      /* bad command line or config: nothing was trained or written */
  HN_EXIT_DIVERGED = 3,   /* non-finite loss/gradient; last good checkpoint kept */
  HN_EXIT_RESUME = 75     /* stopped cleanly by a signal after checkpointing: resume me (EX_TEMPFAIL) */
};

/* Store a printf-style message for the current thread and return `status` (so that
 * `return hn_fail(HN_EIO, "cannot open %s: %s", path, strerror(errno));` reads naturally). */
int hn_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the stored message with context ("reading data/train.h5: ...") and return status. */
int hn_fail_context(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message stored by the last hn_fail on this thread ("" if none). */
const char *hn_errmsg(void);

/* Forget the stored message (used by code that handles an error itself). */
void hn_error_clear(void);

/* Short name of a status ("I/O error", ...). */
const char *hn_status_name(int status);

/* Map a status to the command's exit code. */
int hn_exit_code(int status);

/* Print "hamnet: error [rank r]: <message>" to stderr (every rank may call it). */
void hn_error_report(int status);

/* Report file:line and the message on stderr and end the job (MPI_Abort when MPI is up with
 * more than one rank, exit otherwise). For broken invariants only. */
_Noreturn void hn_die(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define HN_TRY(expr)                        \
  do {                                      \
    int hn_try_status_ = (expr);            \
    if (hn_try_status_ != HN_OK)            \
      return hn_try_status_;                \
  } while (0)

#define HN_ASSERT(cond, ...)                                  \
  do {                                                        \
    if (!(cond))                                              \
      hn_die(__FILE__, __LINE__, __VA_ARGS__);                \
  } while (0)

#endif
