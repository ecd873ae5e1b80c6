/* exchange.c - bucketed, overlapped gradient allreduce (see hamnet/parallel.h). */
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "hamnet/timer.h"

int hn_exchange_create(hn_exchange *ex, MPI_Comm comm, hn_real *grads, size_t n, size_t bucket_bytes, int overlap) {
  memset(ex, 0, sizeof *ex);
  ex->comm = comm;
  MPI_Comm_size(comm, &ex->size);
  ex->grads = grads;
  ex->n = n;
  ex->overlap = overlap;
  size_t be = bucket_bytes / sizeof(hn_real);
  if (be < 1024)
    be = 1024;
  /* MPI counts are int */
  if (be > (size_t)1 << 28)
    be = (size_t)1 << 28;
  ex->bucket_elems = be;
  ex->n_buckets = (int)((n + be - 1) / be);
  ex->req = hn_alloc((size_t)ex->n_buckets, sizeof(MPI_Request), HN_MEM_OTHER, "allreduce requests");
  if (!ex->req)
    return HN_ENOMEM;
  for (int k = 0; k < ex->n_buckets; k++)
    ex->req[k] = MPI_REQUEST_NULL;
  return HN_OK;
}

void hn_exchange_destroy(hn_exchange *ex) {
  hn_free(ex->req);
  ex->req = NULL;
}

void hn_exchange_begin(hn_exchange *ex) { ex->next = 0; }

/* Bucket k covers [lo, hi) counted from the end of the buffer. */
static void bucket_range(const hn_exchange *ex, int k, size_t *lo, size_t *hi) {
  size_t top = ex->n - (size_t)k * ex->bucket_elems;
  *hi = top;
  *lo = top > ex->bucket_elems ? top - ex->bucket_elems : 0;
}

static int start_bucket(hn_exchange *ex, int k) {
  size_t lo, hi;
  bucket_range(ex, k, &lo, &hi);
  int rc = MPI_Iallreduce(MPI_IN_PLACE, ex->grads + lo, (int)(hi - lo), HN_MPI_REAL, MPI_SUM, ex->comm, &ex->req[k]);
  return rc == MPI_SUCCESS ? HN_OK : hn_fail(HN_EMPI, "MPI_Iallreduce of gradient bucket %d failed", k);
}

void hn_exchange_ready(void *ctx, size_t first_final) {
  hn_exchange *ex = ctx;
  if (ex->size <= 1 || !ex->overlap)
    return;
  double t0 = hn_wtime();
  while (ex->next < ex->n_buckets) {
    size_t lo, hi;
    bucket_range(ex, ex->next, &lo, &hi);
    if (lo < first_final)
      break;
    if (start_bucket(ex, ex->next) != HN_OK)
      break; /* reported again by hn_exchange_finish */
    ex->next++;
  }
  if (ex->next > 0) { /* let Open MPI progress what is in flight */
    int done = 0;
    MPI_Testall(ex->next, ex->req, &done, MPI_STATUSES_IGNORE);
  }
  ex->comm_seconds += hn_wtime() - t0;
}

int hn_exchange_finish(hn_exchange *ex) {
  if (ex->size <= 1)
    return HN_OK;
  double t0 = hn_wtime();
  int status = HN_OK;
  while (ex->next < ex->n_buckets && status == HN_OK)
    status = start_bucket(ex, ex->next++);
  if (MPI_Waitall(ex->n_buckets, ex->req, MPI_STATUSES_IGNORE) != MPI_SUCCESS && status == HN_OK)
    status = hn_fail(HN_EMPI, "waiting for the gradient allreduce failed (a rank may have died)");
  double dt = hn_wtime() - t0;
  ex->wait_seconds += dt;
  ex->comm_seconds += dt;
  ex->steps++;
  return status;
}
