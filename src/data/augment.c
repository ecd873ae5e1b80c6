/* augment.c - random crops and flips of training images (hamnet/augment.h). */
#include <string.h>

#include "hamnet/augment.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/rng.h"

int hn_augment_batch(const hn_augment *a, uint64_t seed, int epoch, const int64_t *rows, int B, int C, int H, int W,
                     hn_real *X) {
  if (!hn_augment_active(a) || B < 1)
    return HN_OK;
  const size_t img = (size_t)C * H * W;
  hn_real *tmp = hn_alloc(img, sizeof(hn_real), HN_MEM_WORKSPACE, "augmentation scratch image");
  if (!tmp)
    return HN_ENOMEM;
  for (int i = 0; i < B; i++) {
    hn_rng r;
    hn_rng_init(&r, seed, HN_RNG_AUGMENT, (uint64_t)epoch, (uint64_t)rows[i]);
    int dy = 0, dx = 0, flip = 0;
    if (a->crop > 0) {
      dy = (int)hn_rng_below(&r, 2 * (uint64_t)a->crop + 1) - a->crop;
      dx = (int)hn_rng_below(&r, 2 * (uint64_t)a->crop + 1) - a->crop;
    }
    if (a->flip)
      flip = (int)(hn_rng_u32(&r) & 1);
    if (dy == 0 && dx == 0 && !flip)
      continue;
    hn_real *x = X + (size_t)i * img;
    memcpy(tmp, x, img * sizeof(hn_real));
    for (int c = 0; c < C; c++)
      for (int y = 0; y < H; y++) {
        hn_real *out = x + ((size_t)c * H + y) * W;
        const int ys = y + dy;
        if (ys < 0 || ys >= H) {
          memset(out, 0, (size_t)W * sizeof(hn_real));
          continue;
        }
        const hn_real *in = tmp + ((size_t)c * H + ys) * W;
        for (int xo = 0; xo < W; xo++) {
          const int xs = (flip ? W - 1 - xo : xo) + dx;
          out[xo] = xs >= 0 && xs < W ? in[xs] : 0;
        }
      }
  }
  hn_free(tmp);
  return HN_OK;
}
