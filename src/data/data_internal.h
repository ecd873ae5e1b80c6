/* data_internal.h - helpers shared by the files of src/data (not part of the public API). */
#ifndef HAMNET_DATA_INTERNAL_H
#define HAMNET_DATA_INTERNAL_H

#include <stdint.h>

#include "hamnet/data.h"

/* Check labels (0..n_classes-1) and finiteness of X for `count` samples. Sample i of the block
 * is reported as row rows[i] (rows != NULL) or base + i. `n_classes_from_attr` only changes
 * the wording of the message. Returns HN_OK or HN_EFORMAT with a message naming `source`,
 * /X or /y, the row, the element and the value. */
int hn_data_check_block(const char *source, const float *X, const int32_t *y, int64_t count,
                        int ndim_sample, const int64_t *sample_dims, int64_t n_features,
                        int n_classes, int n_classes_from_attr, const int64_t *rows, int64_t base);

/* Validate a shape and compute n_features: ndim 1 or 3, dims >= 1, n >= 0, n * F * 4 bytes
 * <= HN_DATA_MAX_BYTES (overflow-safe). `where` starts the message ("FILE: /X"). Returns
 * HN_OK, bad_status (bad dims) or HN_ENOMEM (too large). */
int hn_data_check_shape(const char *where, int64_t n, int ndim_sample, const int64_t *dims, int64_t *n_features,
                        int bad_status);

#endif
