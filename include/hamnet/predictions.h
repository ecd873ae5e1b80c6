/* hamnet/predictions.h - the file `hamnet eval --predictions OUT.h5` writes.
 *
 *   /pred    int32 [N]       argmax of the logits
 *   /logits  float32 [N, C]  W y_N + mu
 *   /y       int32 [N]       the labels of the data file
 *   root attribute format = "hamnet-predictions"
 * Written atomically (OUT.h5.tmp, then renamed). */
#ifndef HAMNET_PREDICTIONS_H
#define HAMNET_PREDICTIONS_H

#include <stdint.h>

int hn_predictions_write(const char *path, int64_t n, int n_classes, const float *logits, const int32_t *labels);

#endif
