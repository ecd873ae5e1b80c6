/* evaluate.c - sharded evaluation of a checkpoint on a data file (see hamnet/train.h). */
#include <math.h>
#include <string.h>

#include "hamnet/checkpoint.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "hamnet/predictions.h"
#include "hamnet/rng.h"
#include "hamnet/timer.h"
#include "hamnet/train.h"

void hn_eval_options_default(hn_eval_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->seed = 1;
  opt->batch = 1024;
}

typedef struct {
  hn_model model;
  int have_model;
  hn_workspace *ws;
  hn_dataset data;
  hn_real *x;
  float *logits; /* [local n][C] when predictions are wanted */
} eval_state;

static int evaluate_local(const hn_eval_options *opt, eval_state *s, int64_t row0, double *sums) {
  const int F = s->model.layout.spec.n_features, C = s->model.layout.spec.n_classes;
  hn_real *logits = NULL;
  if (opt->predictions) {
    logits = hn_alloc((size_t)opt->batch * C, sizeof(hn_real), HN_MEM_WORKSPACE, "logits");
    if (!logits)
      return HN_ENOMEM;
  }
  for (int64_t i = 0; i < s->data.n; i += opt->batch) {
    int b = (int)(s->data.n - i < opt->batch ? s->data.n - i : opt->batch);
    for (int k = 0; k < b; k++) {
      const float *src = s->data.X + (size_t)(i + k) * F;
      hn_real *dst = s->x + (size_t)k * F;
      if (opt->noise > 0) {
        hn_rng r;
        hn_rng_init(&r, opt->seed, HN_RNG_NOISE, 0, (uint64_t)(row0 + i + k));
        for (int f = 0; f < F; f++)
          dst[f] = (hn_real)(src[f] + opt->noise * hn_rng_normal(&r));
      } else {
        for (int f = 0; f < F; f++)
          dst[f] = (hn_real)src[f];
      }
    }
    hn_batch_stats st;
    int status = hn_model_evaluate(&s->model, s->ws, s->x, s->data.y + i, b, logits, NULL, &st);
    if (status != HN_OK) {
      hn_free(logits);
      return status;
    }
    sums[0] += st.loss_sum;
    sums[1] += (double)st.correct;
    if (logits)
      for (size_t k = 0; k < (size_t)b * C; k++)
        s->logits[(size_t)i * C + k] = (float)logits[k];
  }
  hn_free(logits);
  return HN_OK;
}

/* Every rank by itself: the checkpoint and the data file's shape. */
static int setup_probe(const hn_eval_options *opt, eval_state *s, int64_t *n_total) {
  HN_TRY(hn_ckpt_read(opt->checkpoint, &s->model, NULL, NULL, NULL));
  s->have_model = 1;
  hn_dataset_info info;
  HN_TRY(hn_dataset_probe(opt->data, &info));
  const hn_model_spec *spec = &s->model.layout.spec;
  if (info.n_features != spec->n_features)
    return hn_fail(HN_EFORMAT, "%s has %lld features per sample but the network in %s takes %d", opt->data,
                   (long long)info.n_features, opt->checkpoint, spec->n_features);
  if (info.n_classes > spec->n_classes)
    return hn_fail(HN_EFORMAT, "%s has labels up to %d but the network in %s has %d classes", opt->data,
                   info.n_classes - 1, opt->checkpoint, spec->n_classes);
  *n_total = info.n;
  return HN_OK;
}

/* Collective: agree on the probe, read this rank's rows [N r / P, N (r+1) / P) through MPI-IO
 * (every rank calls the reader, also with an empty share), then the local buffers. */
static int setup(const hn_eval_options *opt, eval_state *s, int64_t *n_total, int64_t *row0) {
  const hn_mpi *mpi = hn_mpi_world();
  HN_TRY(hn_mpi_agree(setup_probe(opt, s, n_total)));
  HN_TRY(hn_mpi_check_same("the network (parameters of the checkpoint)", s->model.params,
                           s->model.layout.n_params * sizeof(hn_real)));
  int64_t lo, hi;
  hn_shard_range(*n_total, mpi->rank, mpi->size, &lo, &hi);
  *row0 = lo;
  HN_TRY(hn_dataset_read_range_mpi(mpi->comm, opt->data, lo, hi - lo, &s->data));
  const hn_model_spec *spec = &s->model.layout.spec;
  HN_TRY(hn_workspace_create_eval(&s->ws, &s->model.layout, opt->batch));
  s->x = hn_alloc((size_t)opt->batch * spec->n_features, sizeof(hn_real), HN_MEM_WORKSPACE, "input batch");
  if (!s->x)
    return HN_ENOMEM;
  if (opt->predictions && s->data.n > 0) {
    s->logits = hn_alloc((size_t)s->data.n * spec->n_classes, sizeof(float), HN_MEM_WORKSPACE, "logits");
    if (!s->logits)
      return HN_ENOMEM;
  }
  return HN_OK;
}

/* Gather the logits on rank 0 and write the predictions file there. */
static int write_predictions(const hn_eval_options *opt, eval_state *s, int64_t n_total) {
  const hn_mpi *mpi = hn_mpi_world();
  const int C = s->model.layout.spec.n_classes;
  float *all = NULL;
  int32_t *labels = NULL;
  int status = HN_OK;
  if (mpi->rank == 0) {
    all = hn_alloc((size_t)n_total * C, sizeof(float), HN_MEM_WORKSPACE, "all logits");
    labels = hn_alloc((size_t)n_total, sizeof(int32_t), HN_MEM_WORKSPACE, "all labels");
    if (!all || !labels)
      status = HN_ENOMEM;
  }
  status = hn_mpi_agree(status);
  if (status == HN_OK && mpi->size > 1) {
    if ((int64_t)n_total * C > INT32_MAX)
      status = hn_fail(HN_EINVAL, "--predictions with more than 2^31 logits under MPI is not supported");
    int *counts = NULL, *displs = NULL, *lcounts = NULL, *ldispls = NULL;
    if (status == HN_OK && mpi->rank == 0) {
      counts = hn_alloc((size_t)mpi->size, sizeof(int), HN_MEM_OTHER, "counts");
      displs = hn_alloc((size_t)mpi->size, sizeof(int), HN_MEM_OTHER, "displs");
      lcounts = hn_alloc((size_t)mpi->size, sizeof(int), HN_MEM_OTHER, "counts");
      ldispls = hn_alloc((size_t)mpi->size, sizeof(int), HN_MEM_OTHER, "displs");
      for (int r = 0; r < mpi->size; r++) {
        int64_t lo = n_total * r / mpi->size, hi = n_total * (r + 1) / mpi->size;
        counts[r] = (int)((hi - lo) * C);
        displs[r] = (int)(lo * C);
        lcounts[r] = (int)(hi - lo);
        ldispls[r] = (int)lo;
      }
    }
    if (status == HN_OK) {
      MPI_Gatherv(s->logits, (int)(s->data.n * C), MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0, mpi->comm);
      MPI_Gatherv(s->data.y, (int)s->data.n, MPI_INT32_T, labels, lcounts, ldispls, MPI_INT32_T, 0, mpi->comm);
    }
    hn_free(counts), hn_free(displs), hn_free(lcounts), hn_free(ldispls);
  } else if (status == HN_OK) {
    memcpy(all, s->logits, (size_t)n_total * C * sizeof(float));
    memcpy(labels, s->data.y, (size_t)n_total * sizeof(int32_t));
  }
  if (status == HN_OK && mpi->rank == 0)
    status = hn_predictions_write(opt->predictions, n_total, C, all, labels);
  hn_free(all);
  hn_free(labels);
  return hn_mpi_agree(status);
}

int hn_evaluate(const hn_eval_options *opt, hn_eval_result *res) {
  const hn_mpi *mpi = hn_mpi_world();
  eval_state s;
  memset(&s, 0, sizeof s);
  memset(res, 0, sizeof *res);
  double t0 = hn_wtime();
  int64_t n_total = 0, row0 = 0;
  double sums[2] = {0, 0};
  int status = hn_mpi_agree(setup(opt, &s, &n_total, &row0));
  if (status == HN_OK)
    status = hn_mpi_agree(evaluate_local(opt, &s, row0, sums));
  if (status == HN_OK && mpi->size > 1 &&
      MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, mpi->comm) != MPI_SUCCESS)
    status = hn_fail(HN_EMPI, "evaluation reduction failed");
  if (status == HN_OK && opt->predictions)
    status = write_predictions(opt, &s, n_total);
  if (status == HN_OK) {
    res->samples = n_total;
    res->correct = (int64_t)sums[1];
    res->loss = sums[0] / (double)n_total;
    res->accuracy = sums[1] / (double)n_total;
    res->seconds = hn_wtime() - t0;
  }
  hn_workspace_destroy(s.ws);
  if (s.have_model)
    hn_model_destroy(&s.model);
  hn_dataset_free(&s.data);
  hn_free(s.x);
  hn_free(s.logits);
  return status;
}
