/* test_shard.c - sharding of the global batch and the collective MPI-IO reader (run on 1, 2
 * and 4 ranks by CTest).
 *
 * Checks: for many (n, B, P), also when neither n nor B is divisible by P and when B < P, the
 * ranks' parts of every global batch, concatenated in rank order, are exactly the one-rank
 * batch (so the global batch is the same set of samples for any P); the real world's ranks
 * agree with that plan; hn_dataset_read_rows_mpi / hn_dataset_read_range_mpi give each rank
 * exactly its rows (also an empty share) with data memory ~ data / P; a rank-dependent path
 * or row list fails on every rank with a message naming the rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "unit/hn_test.h"

static int rank, size;

/* Every (n, B, P): concatenating the ranks' parts of batch k gives the P = 1 batch k. */
static void check_plans(void) {
  const int64_t ns[] = {1, 7, 100, 101, 1000, 1023};
  const int64_t Bs[] = {1, 3, 10, 64, 100, 2000};
  const int64_t subset[] = {5, 9, 11, 20, 21, 40, 41}; /* used with n = 7 */
  for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
    for (size_t b = 0; b < sizeof Bs / sizeof Bs[0]; b++)
      for (int P = 1; P <= 7; P++) {
        const int64_t n = ns[a], B = Bs[b];
        const int64_t *sub = n == 7 ? subset : NULL;
        hn_epoch_shard one, part;
        CHECK_OK(hn_shard_epoch(11, 2, n, B, sub, 0, 1, &one));
        CHECK(one.n_batches == (int)((n + B - 1) / B) && one.count == n, "n %lld B %lld: %d batches, %lld rows",
              (long long)n, (long long)B, one.n_batches, (long long)one.count);
        int64_t *pos = calloc((size_t)one.n_batches, sizeof(int64_t)); /* next row of each batch */
        int64_t total = 0, max_part = 0;
        int ok = 1;
        for (int r = 0; r < P; r++) {
          CHECK_OK(hn_shard_epoch(11, 2, n, B, sub, r, P, &part));
          CHECK(part.n_batches == one.n_batches, "batches differ between ranks");
          for (int k = 0; k < part.n_batches && ok; k++) {
            int64_t len = part.batch_start[k + 1] - part.batch_start[k];
            max_part = len > max_part ? len : max_part;
            for (int64_t i = 0; i < len && ok; i++)
              ok = part.rows[part.batch_start[k] + i] == one.rows[one.batch_start[k] + pos[k] + i];
            pos[k] += len;
          }
          total += part.count;
          hn_epoch_shard_free(&part);
        }
        for (int k = 0; k < one.n_batches; k++)
          ok = ok && pos[k] == hn_shard_batch_size(n, B, k) && pos[k] == one.batch_start[k + 1] - one.batch_start[k];
        CHECK(ok && total == n, "n %lld B %lld P %d: the ranks' parts are not the one-rank batches", (long long)n,
              (long long)B, P);
        CHECK(max_part <= (B + P - 1) / P, "n %lld B %lld P %d: a part of %lld exceeds ceil(B/P)", (long long)n,
              (long long)B, P, (long long)max_part);
        if (sub) /* every subset row appears once */
          for (int64_t i = 0; i < n; i++) {
            int seen = 0;
            for (int64_t j = 0; j < n; j++)
              seen += one.rows[j] == subset[i];
            CHECK(seen == 1, "subset row %lld seen %d times", (long long)subset[i], seen);
          }
        free(pos);
        hn_epoch_shard_free(&one);
      }
  /* the permutation depends on the epoch and the seed, not on anything else */
  hn_epoch_shard e1, e2;
  CHECK_OK(hn_shard_epoch(11, 1, 1000, 100, NULL, 0, 1, &e1));
  CHECK_OK(hn_shard_epoch(11, 2, 1000, 100, NULL, 0, 1, &e2));
  CHECK(memcmp(e1.rows, e2.rows, 1000 * sizeof(int64_t)) != 0, "epochs 1 and 2 have the same order");
  hn_epoch_shard_free(&e1);
  hn_epoch_shard_free(&e2);
  CHECK(hn_shard_epoch(1, 0, 0, 10, NULL, 0, 1, &e1) == HN_EINVAL, "n = 0 accepted");
  CHECK(hn_shard_epoch(1, 0, 10, 10, NULL, 2, 2, &e1) == HN_EINVAL, "rank 2 of 2 accepted");
  hn_error_clear();
}

/* The real ranks: gather each rank's rows of every batch and compare with the one-rank plan. */
static void check_world_plan(void) {
  const int64_t n = 1001, B = 97;
  hn_epoch_shard mine, one;
  CHECK_OK(hn_shard_epoch(3, 5, n, B, NULL, rank, size, &mine));
  CHECK_OK(hn_shard_epoch(3, 5, n, B, NULL, 0, 1, &one));
  for (int k = 0; k < one.n_batches; k++) {
    int len = (int)(mine.batch_start[k + 1] - mine.batch_start[k]);
    int *counts = calloc((size_t)size, sizeof(int)), *displs = calloc((size_t)size, sizeof(int));
    int64_t *all = calloc((size_t)B, sizeof(int64_t));
    MPI_Allgather(&len, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = 1; r < size; r++)
      displs[r] = displs[r - 1] + counts[r - 1];
    MPI_Allgatherv(mine.rows + mine.batch_start[k], len, MPI_INT64_T, all, counts, displs, MPI_INT64_T,
                   MPI_COMM_WORLD);
    int64_t blen = one.batch_start[k + 1] - one.batch_start[k];
    CHECK(displs[size - 1] + counts[size - 1] == blen &&
              memcmp(all, one.rows + one.batch_start[k], (size_t)blen * sizeof(int64_t)) == 0,
          "batch %d on %d ranks differs from the one-rank batch", k, size);
    free(counts);
    free(displs);
    free(all);
  }
  hn_epoch_shard_free(&mine);
  hn_epoch_shard_free(&one);
}

static void check_reader(const char *dir) {
  char path[512], other[512];
  snprintf(path, sizeof path, "%s/shard_data.h5", dir);
  const int64_t N = 20000, F = 64;
  const int64_t dims[1] = {F};
  hn_dataset full;
  CHECK_OK(hn_dataset_alloc(&full, N, 1, dims, 10));
  for (int64_t i = 0; i < N; i++) {
    full.y[i] = (int32_t)(i % 10);
    for (int64_t f = 0; f < F; f++)
      full.X[i * F + f] = (float)(i * 0.001 + f);
  }
  int st = rank == 0 ? hn_dataset_write(path, &full) : HN_OK;
  CHECK_OK(hn_mpi_agree(st));

  /* an epoch's shard, in batch order (unsorted rows, the training path) */
  hn_epoch_shard sh;
  CHECK_OK(hn_shard_epoch(9, 0, N, 512, NULL, rank, size, &sh));
  hn_mem_reset_peaks();
  size_t before = hn_mem_current(HN_MEM_DATA);
  hn_dataset ds;
  CHECK_OK(hn_dataset_read_rows_mpi(MPI_COMM_WORLD, path, sh.rows, sh.count, &ds));
  size_t peak = hn_mem_peak(HN_MEM_DATA) - before;
  CHECK(ds.n == sh.count, "read %lld rows, wanted %lld", (long long)ds.n, (long long)sh.count);
  int64_t bad = 0;
  for (int64_t i = 0; i < ds.n; i++) {
    int64_t r = sh.rows[i];
    bad += ds.y[i] != full.y[r] || memcmp(ds.X + i * F, full.X + r * F, (size_t)F * sizeof(float)) != 0;
  }
  CHECK(bad == 0, "%lld rows differ from the file", (long long)bad);
  /* memory: this rank's share, plus the reader's fixed 4 MiB row window and its index lists */
  double share = (double)sh.count * (double)F * sizeof(float), all = (double)N * (double)F * sizeof(float);
  double limit = share * 1.02 + (4 << 20) + 40.0 * (double)sh.count + 65536;
  CHECK((double)peak <= limit, "rank %d: peak data memory %.0f bytes for a share of %.0f of %.0f bytes (limit %.0f)",
        rank, (double)peak, share, all, limit);
  if (rank == 0)
    printf("reader: %d ranks, share %.2f MiB of %.2f MiB, peak data memory while reading %.2f MiB on rank 0\n", size,
           share / 1048576, all / 1048576, (double)peak / 1048576);
  hn_dataset_free(&ds);
  hn_epoch_shard_free(&sh);

  /* contiguous shares, with an empty one on the last rank (collective: it must still call) */
  int64_t lo, hi;
  hn_shard_range(N, rank, size, &lo, &hi);
  if (size > 1 && rank == size - 1)
    lo = hi;
  CHECK_OK(hn_dataset_read_range_mpi(MPI_COMM_WORLD, path, lo, hi - lo, &ds));
  CHECK(ds.n == hi - lo && ds.n_features == F && ds.n_classes == 10, "range read: %lld rows", (long long)ds.n);
  bad = 0;
  for (int64_t i = 0; i < ds.n; i++)
    bad += ds.X[i * F + 1] != full.X[(lo + i) * F + 1] || ds.y[i] != full.y[lo + i];
  CHECK(bad == 0, "range read: %lld rows differ", (long long)bad);
  hn_dataset_free(&ds);

  /* failures seen by one rank only end on every rank, with its reason */
  int64_t row = rank == size - 1 ? N + 5 : 0;
  st = hn_dataset_read_rows_mpi(MPI_COMM_WORLD, path, &row, 1, &ds);
  CHECK(st == HN_EINVAL && strstr(hn_errmsg(), "outside"), "bad row on one rank: status %d, %s", st, hn_errmsg());
  CHECK(ds.n == 0, "data left after a failure");
  snprintf(other, sizeof other, "%s/%s", dir, rank == size - 1 ? "missing.h5" : "shard_data.h5");
  st = hn_dataset_read_range_mpi(MPI_COMM_WORLD, other, 0, 1, &ds);
  if (size > 1)
    CHECK(st == HN_EMPI && strstr(hn_errmsg(), "data file name"), "different paths: status %d, %s", st, hn_errmsg());
  else
    CHECK(st == HN_EIO, "missing file: status %d, %s", st, hn_errmsg());
  hn_error_clear();
  hn_dataset_free(&full);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0)
    unlink(path);
}

int main(int argc, char **argv) {
  if (hn_mpi_init(&argc, &argv, NULL) != HN_OK)
    return 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char dir[256] = "";
  if (rank == 0) {
    snprintf(dir, sizeof dir, "%s/hn_shard_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
      dir[0] = '\0';
  }
  MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (!dir[0])
    return 1;
  check_plans();
  check_world_plan();
  check_reader(dir);
  if (rank == 0)
    rmdir(dir);
  int failed = hn_test_failed;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    printf("test_shard: %d ranks, %d checks, %d failed (all ranks)\n", size, hn_test_checked, failed);
  hn_mpi_finalize();
  return failed ? 1 : 0;
}
