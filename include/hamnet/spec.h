/* hamnet/spec.h - what a network is: architecture, activation, opening, sizes.
 *
 * The enums and their names are shared by the config parser, the model, checkpoints and the
 * CLI; the string tables here are the only place the names are spelled. */
#ifndef HAMNET_SPEC_H
#define HAMNET_SPEC_H

#include <stddef.h>

typedef enum {
  HN_ARCH_RESNET = 0,      /* y+ = y + h s(K y + b)                  forward Euler */
  HN_ARCH_ANTISYM = 1,     /* y+ = y + h s((K - K^T - gamma I) y + b) forward Euler */
  HN_ARCH_HAMILTONIAN = 2, /* z+ = z - h s(K^T y + b); y+ = y + h s(K z+ + b)  Verlet */
  HN_ARCH_LEAPFROG = 3,    /* y+ = 2y - y- - h^2 K^T s(K y + b)     second order */
  HN_ARCH_COUNT
} hn_arch;

typedef enum { HN_ACT_TANH = 0, HN_ACT_RELU = 1, HN_ACT_COUNT } hn_activation;

typedef enum {
  HN_OPEN_PAD = 0,   /* y0 = [x; 0], needs width >= n_features */
  HN_OPEN_DENSE = 1, /* y0 = s(K_in x + b_in) */
  HN_OPEN_COUNT
} hn_opening;

/* Which implementation runs the passes (hamnet/model.h, hn_workspace_set_kernel): the narrow
 * path carries tiles of samples through all layers, one tile per thread; the wide path goes
 * layer by layer with GEMMs. auto picks by width. */
typedef enum { HN_KERNEL_AUTO = 0, HN_KERNEL_NARROW = 1, HN_KERNEL_WIDE = 2, HN_KERNEL_COUNT } hn_kernel_path;

/* How convolutional networks compute their 3x3 products (hamnet/conv.h): Winograd F(4x4, 3x3)
 * (4x fewer multiplications; transformed kernels kept per layer), or im2col + GEMM. auto:
 * Winograd for the stages whose maps are at least 4x4, while the transformed kernels of all
 * layers take at most HN_WINOGRAD_MAX_KERNEL_BYTES; im2col otherwise. */
typedef enum { HN_CONV_AUTO = 0, HN_CONV_WINOGRAD = 1, HN_CONV_IM2COL = 2, HN_CONV_COUNT } hn_conv_algorithm;
#define HN_WINOGRAD_MAX_KERNEL_BYTES ((size_t)256 << 20)

/* Normalisation of the convolutional opening and connective layers (hamnet/convnet.h):
 * batch normalisation (per-channel batch statistics while training, running statistics in
 * evaluation) or none (a bias per channel instead). */
typedef enum { HN_NORM_BATCH = 0, HN_NORM_NONE = 1, HN_NORM_COUNT } hn_norm;

/* Most stages a convolutional network may have (each halves the resolution). */
#define HN_MAX_STAGES 8

/* The shape of a network. n_features / n_classes (and the image shape) come from the data set.
 * n_stages = 0: the dense network of README, The mathematics. n_stages > 0: the convolutional network of
 * hamnet/convnet.h, whose stage s has stage_channels[s] channels and stage_layers[s] layers;
 * then width is the largest channel count and depth the total number of layers. */
typedef struct {
  hn_arch arch;
  hn_activation activation;
  hn_opening opening;
  int width;         /* n */
  int depth;         /* N layers */
  int n_features;    /* F */
  int n_classes;     /* C */
  double final_time; /* T; step h = T / N */
  double gamma;      /* antisym damping */
  /* convolutional networks only (zero for dense ones) */
  int n_stages;
  int stage_channels[HN_MAX_STAGES];
  int stage_layers[HN_MAX_STAGES];
  int image_channels, image_height, image_width; /* C, H, W of the input; C H W = n_features */
  hn_norm norm;
} hn_model_spec;

const char *hn_arch_name(hn_arch a);
const char *hn_activation_name(hn_activation a);
const char *hn_opening_name(hn_opening o);
const char *hn_kernel_path_name(hn_kernel_path k);
const char *hn_norm_name(hn_norm k);
const char *hn_conv_algorithm_name(hn_conv_algorithm a);
/* Parse a name; return 0 and set *out, or -1 if the name is unknown. */
int hn_arch_parse(const char *s, hn_arch *out);
int hn_activation_parse(const char *s, hn_activation *out);
int hn_opening_parse(const char *s, hn_opening *out);
int hn_kernel_path_parse(const char *s, hn_kernel_path *out);
int hn_norm_parse(const char *s, hn_norm *out);
int hn_conv_algorithm_parse(const char *s, hn_conv_algorithm *out);

/* The stages of a convolutional network as written in the config: a comma-separated list of
 * CHANNELSxLAYERS items, e.g. "16x4,32x4,64x4" (spaces around items allowed; "" = no stages,
 * the dense network). Channels 1..4096, layers 1..100000, at most HN_MAX_STAGES stages.
 * Returns 0 and fills *n, channels[], layers[], or -1 with the reason in why[whysize]. */
int hn_stages_parse(const char *s, int *n, int *channels, int *layers, char *why, size_t whysize);
/* The canonical text of a list of stages ("16x4,32x4,64x4"; "" for none) into buf[size]. */
void hn_stages_format(int n, const int *channels, const int *layers, char *buf, size_t size);

/* Whether an architecture can run its backward pass by recomputing states (reversible). */
int hn_arch_is_reversible(hn_arch a);

#endif
