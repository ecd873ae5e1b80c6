/* diag.c - placeholder: the diagnostics module is being written (see hamnet/diag.h). */
#include <stdlib.h>

#include "hamnet/diag.h"
#include "hamnet/error.h"

struct hn_diag {
  int unused;
};

int hn_diag_open(hn_diag **d, const char *run_dir, const hn_config *cfg, int resumed) {
  (void)run_dir, (void)cfg, (void)resumed;
  *d = calloc(1, sizeof **d);
  return *d ? HN_OK : HN_ENOMEM;
}

int hn_diag_record(hn_diag *d, hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                   int64_t B_global, const hn_diag_scalars *s) {
  (void)d, (void)m, (void)ws, (void)X, (void)y, (void)B, (void)B_global, (void)s;
  return HN_OK;
}

void hn_diag_close(hn_diag *d) { free(d); }
