/* spec.c - names of architectures, activations and openings (see hamnet/spec.h). */
#include "hamnet/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *arch_names[HN_ARCH_COUNT] = {"resnet", "antisym", "hamiltonian", "leapfrog"};
static const char *activation_names[HN_ACT_COUNT] = {"tanh", "relu"};
static const char *opening_names[HN_OPEN_COUNT] = {"pad", "dense"};
static const char *kernel_path_names[HN_KERNEL_COUNT] = {"auto", "narrow", "wide"};
static const char *norm_names[HN_NORM_COUNT] = {"batch", "none"};
static const char *conv_algorithm_names[HN_CONV_COUNT] = {"auto", "winograd", "im2col"};

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

const char *hn_norm_name(hn_norm k) { return (k >= 0 && k < HN_NORM_COUNT) ? norm_names[k] : "?"; }
const char *hn_conv_algorithm_name(hn_conv_algorithm a) {
  return (a >= 0 && a < HN_CONV_COUNT) ? conv_algorithm_names[a] : "?";
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

int hn_norm_parse(const char *s, hn_norm *out) {
  int i = parse_name(s, norm_names, HN_NORM_COUNT);
  if (i < 0)
    return -1;
  *out = (hn_norm)i;
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* stages: "16x4,32x4,64x4" */

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* A decimal integer in [lo, hi] at *p (no sign); advances *p. -1 if there is none or it is out
 * of range. */
static long parse_count(const char **p, long lo, long hi) {
  const char *s = *p;
  if (*s < '0' || *s > '9')
    return -1;
  long v = 0;
  while (*s >= '0' && *s <= '9') {
    if (v > hi)
      return -1;
    v = 10 * v + (*s - '0');
    s++;
  }
  *p = s;
  return v >= lo && v <= hi ? v : -1;
}

int hn_stages_parse(const char *s, int *n, int *channels, int *layers, char *why, size_t whysize) {
  *n = 0;
  const char *p = s;
  while (is_blank(*p))
    p++;
  if (*p == '\0')
    return 0; /* no stages: the dense network */
  for (int k = 0;; k++) {
    while (is_blank(*p))
      p++;
    if (k == HN_MAX_STAGES) {
      snprintf(why, whysize, "more than %d stages", HN_MAX_STAGES);
      return -1;
    }
    long c = parse_count(&p, 1, 4096);
    if (c < 0 || (*p != 'x' && *p != 'X')) {
      snprintf(why, whysize, "stage %d: expected CHANNELSxLAYERS with channels 1..4096 (e.g. 16x4)", k + 1);
      return -1;
    }
    p++;
    long l = parse_count(&p, 1, 100000);
    if (l < 0) {
      snprintf(why, whysize, "stage %d: expected CHANNELSxLAYERS with layers 1..100000 (e.g. 16x4)", k + 1);
      return -1;
    }
    channels[k] = (int)c;
    layers[k] = (int)l;
    while (is_blank(*p))
      p++;
    if (*p == '\0') {
      *n = k + 1;
      return 0;
    }
    if (*p != ',') {
      snprintf(why, whysize, "stage %d: unexpected '%c' (stages are separated by commas)", k + 1, *p);
      return -1;
    }
    p++;
  }
}

void hn_stages_format(int n, const int *channels, const int *layers, char *buf, size_t size) {
  size_t len = 0;
  if (size > 0)
    buf[0] = '\0';
  for (int k = 0; k < n && len < size; k++) {
    int w = snprintf(buf + len, size - len, "%s%dx%d", k ? "," : "", channels[k], layers[k]);
    if (w < 0)
      return;
    len += (size_t)w;
  }
}

int hn_conv_algorithm_parse(const char *s, hn_conv_algorithm *out) {
  int i = parse_name(s, conv_algorithm_names, HN_CONV_COUNT);
  if (i < 0)
    return -1;
  *out = (hn_conv_algorithm)i;
  return 0;
}
