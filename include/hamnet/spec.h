/* hamnet/spec.h - what a network is: architecture, activation, opening, sizes.
 *
 * The enums and their names are shared by the config parser, the model, checkpoints and the
 * CLI; the string tables here are the only place the names are spelled. */
#ifndef HAMNET_SPEC_H
#define HAMNET_SPEC_H

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

/* The shape of a dense network. n_features / n_classes come from the data set. */
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
} hn_model_spec;

const char *hn_arch_name(hn_arch a);
const char *hn_activation_name(hn_activation a);
const char *hn_opening_name(hn_opening o);
const char *hn_kernel_path_name(hn_kernel_path k);
/* Parse a name; return 0 and set *out, or -1 if the name is unknown. */
int hn_arch_parse(const char *s, hn_arch *out);
int hn_activation_parse(const char *s, hn_activation *out);
int hn_opening_parse(const char *s, hn_opening *out);
int hn_kernel_path_parse(const char *s, hn_kernel_path *out);

/* Whether an architecture can run its backward pass by recomputing states (reversible). */
int hn_arch_is_reversible(hn_arch a);

#endif
