/* fuzz_common.h - shared helpers of hamnet's libFuzzer harnesses (tests/fuzz/fuzz_*.c).
 *
 * The readers under test take file names, so each input is written to a per-process scratch
 * file (under $TMPDIR, default /tmp) and read back through the real code path: open, stat,
 * HDF5's own I/O. FUZZ_CHECK is an invariant of the code under test: when it fails the harness
 * aborts, which libFuzzer reports as a crash with the input that caused it. */
#ifndef HN_FUZZ_COMMON_H
#define HN_FUZZ_COMMON_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamnet/error.h"
#include "hamnet/log.h"

#define FUZZ_CHECK(cond, ...)                                               \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "FUZZ INVARIANT %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                         \
      fputc('\n', stderr);                                                  \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* Path of scratch file number `k` of this process (k < 4). */
static inline const char *fuzz_path(int k) {
  static char paths[4][512];
  if (!paths[k][0]) {
    const char *dir = getenv("TMPDIR");
    snprintf(paths[k], sizeof paths[k], "%s/hn_fuzz_%ld_%d.bin", dir && *dir ? dir : "/tmp", (long)getpid(), k);
  }
  return paths[k];
}

static inline void fuzz_cleanup(void) {
  for (int k = 0; k < 4; k++)
    unlink(fuzz_path(k));
}

/* Write `size` bytes to scratch file k (replacing it) and return its path. */
static inline const char *fuzz_write_file(int k, const uint8_t *data, size_t size) {
  const char *p = fuzz_path(k);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    perror(p);
    abort();
  }
  while (size > 0) {
    ssize_t w = write(fd, data, size);
    if (w <= 0) {
      perror(p);
      abort();
    }
    data += w;
    size -= (size_t)w;
  }
  close(fd);
  return p;
}

/* Once per process: quiet logs, scratch files removed at exit. */
static inline void fuzz_init(void) {
  static int done = 0;
  if (done)
    return;
  done = 1;
  hn_log_set_level(HN_LOG_QUIET);
  atexit(fuzz_cleanup);
}

/* Every HDF5 object hamnet opened must be closed again (on success and on every error path). */
#define FUZZ_CHECK_H5_CLOSED()                                                                       \
  do {                                                                                               \
    ssize_t open_ = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);                                      \
    FUZZ_CHECK(open_ == 0, "%zd HDF5 objects left open", open_);                                     \
  } while (0)

/* An error must come with a message (the CLI prints it). */
static inline void fuzz_check_error(int status, const char *what) {
  FUZZ_CHECK(status >= HN_OK && status <= HN_EINTERNAL, "%s returned %d", what, status);
  if (status != HN_OK)
    FUZZ_CHECK(hn_errmsg()[0] != '\0', "%s failed (%s) without a message", what, hn_status_name(status));
  hn_error_clear();
}

#endif
