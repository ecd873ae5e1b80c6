/* hamnet/augment.h - image augmentation for training: random crops with zero padding and
 * horizontal flips ([train] augment_crop, augment_flip).
 *
 * Sample i (its row in the training file) in epoch e draws from its own counter-based stream
 * (seed, HN_RNG_AUGMENT, e, i) - first the vertical shift dy, then the horizontal shift dx, both
 * uniform in -crop..crop, then the flip (one bit) - so the augmented batch does not depend on the
 * number of ranks or threads, nor on which rank holds the sample, and a resumed run sees the same
 * images as an uninterrupted one. The crop is the window of the image zero-padded by `crop`
 * pixels on every side that is shifted by (dy, dx): out[y][x] = in[y + dy][x + dx], 0 outside;
 * the flip then mirrors each row: out[y][x] <- out[y][W - 1 - x]. Evaluation never augments. */
#ifndef HAMNET_AUGMENT_H
#define HAMNET_AUGMENT_H

#include <stdint.h>

#include "hamnet/real.h"

typedef struct {
  int crop; /* padding in pixels (0: no crops) */
  int flip; /* 0/1 */
} hn_augment;

/* Whether any augmentation is on. */
static inline int hn_augment_active(const hn_augment *a) { return a->crop > 0 || a->flip; }

/* Augment the batch X [B][C][H][W] in place; rows[i] is the file row of sample i. HN_ENOMEM if
 * the scratch image cannot be allocated. */
int hn_augment_batch(const hn_augment *a, uint64_t seed, int epoch, const int64_t *rows, int B, int C, int H, int W,
                     hn_real *X);

#endif
