/* spec.c - names of architectures, activations and openings (see hamnet/spec.h). */
#include "hamnet/spec.h"

#include <string.h>

static const char *arch_names[HN_ARCH_COUNT] = {"resnet", "antisym", "hamiltonian", "leapfrog"};
static const char *activation_names[HN_ACT_COUNT] = {"tanh", "relu"};
static const char *opening_names[HN_OPEN_COUNT] = {"pad", "dense"};
static const char *kernel_path_names[HN_KERNEL_COUNT] = {"auto", "narrow", "wide"};

static int parse_name(const char *s, const char **names, int count) {
  for (int i = 0; i < count; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return -1;
}

const char *hn_arch_name(hn_arch a) { return (a >= 0 && a < HN_ARCH_COUNT) ? arch_names[a] : "?"; }
const char *hn_activation_name(hn_activation a) {
  return (a >= 0 && a < HN_ACT_COUNT) ? activation_names[a] : "?";
}
const char *hn_opening_name(hn_opening o) { return (o >= 0 && o < HN_OPEN_COUNT) ? opening_names[o] : "?"; }
const char *hn_kernel_path_name(hn_kernel_path k) {
  return (k >= 0 && k < HN_KERNEL_COUNT) ? kernel_path_names[k] : "?";
}

int hn_arch_parse(const char *s, hn_arch *out) {
  int i = parse_name(s, arch_names, HN_ARCH_COUNT);
  if (i < 0)
    return -1;
  *out = (hn_arch)i;
  return 0;
}
int hn_activation_parse(const char *s, hn_activation *out) {
  int i = parse_name(s, activation_names, HN_ACT_COUNT);
  if (i < 0)
    return -1;
  *out = (hn_activation)i;
  return 0;
}
int hn_opening_parse(const char *s, hn_opening *out) {
  int i = parse_name(s, opening_names, HN_OPEN_COUNT);
  if (i < 0)
    return -1;
  *out = (hn_opening)i;
  return 0;
}

int hn_kernel_path_parse(const char *s, hn_kernel_path *out) {
  int i = parse_name(s, kernel_path_names, HN_KERNEL_COUNT);
  if (i < 0)
    return -1;
  *out = (hn_kernel_path)i;
  return 0;
}

int hn_arch_is_reversible(hn_arch a) { return a == HN_ARCH_HAMILTONIAN || a == HN_ARCH_LEAPFROG; }
