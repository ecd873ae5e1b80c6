/* hamnet/real.h - the model's floating-point type, chosen at build time.
 *
 * -DHAMNET_PRECISION=float (default, fast) or double (verification, gradient checks).
 * Everything that holds parameters, activations or gradients uses hn_real; data files stay
 * float32 on disk and are converted when a batch is gathered. */
#ifndef HAMNET_REAL_H
#define HAMNET_REAL_H

#ifdef HN_USE_DOUBLE
typedef double hn_real;
#define HN_REAL_NAME "double"
#define HN_REAL_EPS 2.220446049250313e-16
#else
typedef float hn_real;
#define HN_REAL_NAME "float"
#define HN_REAL_EPS 1.1920928955078125e-07
#endif

#endif
