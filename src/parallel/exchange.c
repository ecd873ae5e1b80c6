/* exchange.c - bucketed, overlapped gradient allreduce (see hamnet/parallel.h): bucket
 * geometry, the choice of engine, the MPI engine, timing and trace. The node-shared engine is
 * exchange_shared.c.
 *
 * One step: begin -> ready (per finished layer: start every bucket now entirely final, test the
 * ones in flight, copy back the ones complete) -> finish (start the rest, wait, copy back).
 * Buckets are started in a fixed order (0, 1, 2, ... from the end of the buffer) on every rank,
 * which is what MPI requires of collectives on one communicator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "hamnet/timer.h"

#include "exchange_shared.h"

#define HN_BUCKET_MIN_BYTES ((size_t)4 << 10)
#define HN_BUCKET_MAX_BYTES ((size_t)1 << 30) /* also keeps MPI's int counts safe */

int hn_exchange_create(hn_exchange *ex, MPI_Comm comm, hn_real **grads, size_t n, size_t bucket_bytes, int overlap,
                       hn_exchange_kind kind) {
  memset(ex, 0, sizeof *ex);
  ex->comm = comm;
  MPI_Comm_size(comm, &ex->size);
  ex->grads = *grads;
  ex->n = n;
  ex->overlap = overlap;
  const char *skip = getenv("HAMNET_BENCH_SKIP_EXCHANGE");
  ex->skip = skip && *skip && strcmp(skip, "0") != 0;
  const char *trace = getenv("HAMNET_EXCHANGE_TRACE");
  ex->trace = trace && *trace && strcmp(trace, "0") != 0;
  if (bucket_bytes < HN_BUCKET_MIN_BYTES)
    bucket_bytes = HN_BUCKET_MIN_BYTES;
  if (bucket_bytes > HN_BUCKET_MAX_BYTES)
    bucket_bytes = HN_BUCKET_MAX_BYTES;
  ex->bucket_elems = bucket_bytes / sizeof(hn_real);
  ex->n_buckets = n > 0 ? (int)((n + ex->bucket_elems - 1) / ex->bucket_elems) : 0;
  const size_t nb = ex->n_buckets > 0 ? (size_t)ex->n_buckets : 1;
  ex->req = hn_alloc(nb, sizeof(MPI_Request), HN_MEM_OTHER, "allreduce requests");
  ex->done_idx = hn_alloc(nb, sizeof(int), HN_MEM_OTHER, "allreduce completions");
  ex->t_start = hn_alloc(nb, sizeof(double), HN_MEM_OTHER, "bucket start times");
  ex->t_done = hn_alloc(nb, sizeof(double), HN_MEM_OTHER, "bucket completion times");
  if (!ex->req || !ex->done_idx || !ex->t_start || !ex->t_done) {
    hn_exchange_destroy(ex);
    return HN_ENOMEM;
  }
  ex->kind = HN_EXCHANGE_MPI;
  snprintf(ex->engine_note, sizeof ex->engine_note, "one rank: nothing to exchange");
  if (ex->size > 1 && n > 0 && kind != HN_EXCHANGE_MPI) {
    char why[160];
    int status = hn_shared_create(ex, grads, why, sizeof why);
    if (status != HN_OK) {
      hn_exchange_destroy(ex);
      return status;
    }
    if (ex->shared) {
      ex->grads = *grads;
      ex->kind = HN_EXCHANGE_SHARED;
      snprintf(ex->engine_note, sizeof ex->engine_note, "node-shared buffers (%s)", hn_shared_describe(ex));
      return HN_OK;
    }
    if (kind == HN_EXCHANGE_SHARED) {
      hn_exchange_destroy(ex);
      return hn_fail(HN_EINVAL, "[parallel] exchange = shared cannot run here: %s; use exchange = auto or mpi", why);
    }
    snprintf(ex->engine_note, sizeof ex->engine_note, "MPI_Iallreduce (the node-shared engine cannot run: %s)", why);
  } else if (ex->size > 1) {
    snprintf(ex->engine_note, sizeof ex->engine_note, "MPI_Iallreduce%s", n > 0 ? " ([parallel] exchange = mpi)" : "");
  }
  /* In place when libnbc is told to use Rabenseifner for every size (hamnet's default, set in
   * hn_mpi_init): that algorithm then copies nothing. Any other setting: separate buffers, so
   * that libnbc's own choice from 4 ranks is Rabenseifner, not the binomial tree. */
  const char *alg = getenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm");
  const int in_place = alg && strcmp(alg, "3") == 0;
  if (ex->size > 1 && !ex->skip && n > 0 && !in_place) {
    ex->recv = hn_alloc(n, sizeof(hn_real), HN_MEM_GRADS, "allreduce receive buffer");
    if (!ex->recv) {
      hn_exchange_destroy(ex);
      return HN_ENOMEM;
    }
  }
  for (int k = 0; k < ex->n_buckets; k++)
    ex->req[k] = MPI_REQUEST_NULL;
  if (ex->skip && ex->size > 1)
    hn_log_warn("HAMNET_BENCH_SKIP_EXCHANGE is set: gradients are NOT averaged over the ranks (benchmark mode; "
                "the results are meaningless)");
  return HN_OK;
}

void hn_exchange_stats_add(hn_exchange_stats *into, const hn_exchange_stats *add) {
  into->steps += add->steps;
  into->buckets += add->buckets;
  into->started_early += add->started_early;
  into->done_early += add->done_early;
  into->wait_seconds += add->wait_seconds;
  into->comm_seconds += add->comm_seconds;
  into->work_seconds += add->work_seconds;
}

void hn_exchange_destroy(hn_exchange *ex) {
  hn_shared_destroy(ex);
  hn_free(ex->req);
  hn_free(ex->done_idx);
  hn_free(ex->t_start);
  hn_free(ex->t_done);
  hn_free(ex->recv);
  ex->req = NULL;
  ex->done_idx = NULL;
  ex->t_start = ex->t_done = NULL;
  ex->recv = NULL;
}

static int active(const hn_exchange *ex) { return ex->size > 1 && !ex->skip && ex->n_buckets > 0; }

void hn_exchange_begin(hn_exchange *ex) {
  ex->next = 0;
  ex->pending = 0;
  ex->t_begin = hn_wtime();
  ex->t_finish = 0;
  ex->deferred_status = HN_OK;
  for (int k = 0; k < ex->n_buckets; k++)
    ex->t_start[k] = ex->t_done[k] = -1;
  if (ex->shared)
    hn_shared_begin(ex);
}

void hn_exchange_bucket_range(const hn_exchange *ex, int k, size_t *lo, size_t *hi) {
  size_t top = ex->n - (size_t)k * ex->bucket_elems;
  *hi = top;
  *lo = top > ex->bucket_elems ? top - ex->bucket_elems : 0;
}

static int start_bucket(hn_exchange *ex, int k) {
  size_t lo, hi;
  hn_exchange_bucket_range(ex, k, &lo, &hi);
  ex->t_start[k] = hn_wtime() - ex->t_begin;
  int rc = ex->recv ? MPI_Iallreduce(ex->grads + lo, ex->recv + lo, (int)(hi - lo), HN_MPI_REAL, MPI_SUM, ex->comm,
                                     &ex->req[k])
                    : MPI_Iallreduce(MPI_IN_PLACE, ex->grads + lo, (int)(hi - lo), HN_MPI_REAL, MPI_SUM, ex->comm,
                                     &ex->req[k]);
  if (rc != MPI_SUCCESS) {
    ex->req[k] = MPI_REQUEST_NULL;
    return hn_fail(HN_EMPI, "MPI_Iallreduce of gradient bucket %d failed", k);
  }
  ex->pending++;
  return HN_OK;
}

/* Buckets done_idx[0..count) are complete: copy their sums back into the gradient buffer
 * (separate buffers only). */
static void collect(hn_exchange *ex, int count) {
  double now = hn_wtime() - ex->t_begin;
  for (int i = 0; i < count; i++) {
    int k = ex->done_idx[i];
    size_t lo, hi;
    hn_exchange_bucket_range(ex, k, &lo, &hi);
    if (ex->recv)
      memcpy(ex->grads + lo, ex->recv + lo, (hi - lo) * sizeof(hn_real));
    ex->t_done[k] = now;
  }
  ex->pending -= count;
}

void hn_exchange_ready(void *ctx, size_t first_final) {
  hn_exchange *ex = ctx;
  if (!active(ex) || !ex->overlap)
    return;
  double t0 = hn_wtime();
  if (ex->shared) {
    int upto = ex->next;
    for (size_t lo, hi; upto < ex->n_buckets; upto++) {
      hn_exchange_bucket_range(ex, upto, &lo, &hi);
      if (lo < first_final)
        break;
    }
    if (ex->deferred_status == HN_OK)
      ex->deferred_status = hn_shared_progress(ex, upto);
    ex->stats.comm_seconds += hn_wtime() - t0;
    return;
  }
  while (ex->next < ex->n_buckets) {
    size_t lo, hi;
    hn_exchange_bucket_range(ex, ex->next, &lo, &hi);
    if (lo < first_final)
      break;
    if (start_bucket(ex, ex->next) != HN_OK)
      break; /* the bucket is started again, and the failure reported, by hn_exchange_finish */
    ex->next++;
  }
  if (ex->pending > 0) { /* let Open MPI progress what is in flight */
    int count = 0;
    if (MPI_Testsome(ex->next, ex->req, &count, ex->done_idx, MPI_STATUSES_IGNORE) == MPI_SUCCESS &&
        count != MPI_UNDEFINED)
      collect(ex, count);
  }
  ex->stats.comm_seconds += hn_wtime() - t0;
}

/* HAMNET_EXCHANGE_TRACE=1: this step's timeline on stderr, one line per rank and step. */
static void print_trace(const hn_exchange *ex, double wait) {
  char line[4096];
  int rank = 0, len;
  MPI_Comm_rank(ex->comm, &rank);
  len = snprintf(line, sizeof line, "exchange trace rank %d step %ld: finish entered %.2f ms, waited %.2f ms; "
                 "bucket start/done ms:", rank, ex->stats.steps, 1e3 * ex->t_finish, 1e3 * wait);
  for (int k = 0; k < ex->n_buckets && len > 0 && (size_t)len < sizeof line - 32; k++)
    len += snprintf(line + len, sizeof line - (size_t)len, " %d:%.1f/%.1f", k, 1e3 * ex->t_start[k], 1e3 * ex->t_done[k]);
  fprintf(stderr, "%s\n", line);
}

int hn_exchange_finish(hn_exchange *ex) {
  if (!active(ex))
    return HN_OK;
  double t0 = hn_wtime();
  ex->t_finish = t0 - ex->t_begin;
  int early_started = ex->next, early_done = ex->next - ex->pending;
  int status = ex->deferred_status;
  if (ex->shared) {
    if (status == HN_OK)
      status = hn_shared_finish(ex);
    if (status != HN_OK) { /* let no peer wait for this rank */
      hn_shared_abandon(ex);
      ex->pending = 0;
    }
  }
  while (!ex->shared && ex->next < ex->n_buckets && status == HN_OK)
    status = start_bucket(ex, ex->next++);
  while (ex->pending > 0 && status == HN_OK) {
    int count = 0;
    if (MPI_Waitsome(ex->n_buckets, ex->req, &count, ex->done_idx, MPI_STATUSES_IGNORE) != MPI_SUCCESS ||
        count == MPI_UNDEFINED) {
      status = hn_fail(HN_EMPI, "waiting for the gradient allreduce failed (a rank may have died)");
      break;
    }
    collect(ex, count);
  }
  if (status != HN_OK) /* the job is ending (freeing a collective's request is not allowed) */
    ex->pending = 0;
  double dt = hn_wtime() - t0;
  ex->stats.wait_seconds += dt;
  ex->stats.comm_seconds += dt;
  ex->stats.steps++;
  ex->stats.buckets += ex->n_buckets;
  ex->stats.started_early += early_started;
  ex->stats.done_early += early_done;
  if (ex->trace)
    print_trace(ex, dt);
  return status;
}
