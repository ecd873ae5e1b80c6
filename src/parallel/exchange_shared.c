/* exchange_shared.c - the node-shared engine of the gradient exchange (see exchange_shared.h
 * for the protocol and hamnet/parallel.h for the exchange as a whole). */
#define _GNU_SOURCE /* memfd_create */
#include "exchange_shared.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"
#include "hamnet/timer.h"

/* The header in front of each rank's gradients; only its owner writes it. */
typedef struct {
  _Atomic long done;
  char pad[64 - sizeof(long)];
  _Atomic long flags[]; /* ready[0 .. nb), then reduced[0 .. nb) */
} seg_header;

enum { ST_READY, ST_INTER, ST_GATHER, ST_DONE }; /* per bucket, after it is published */

#define HN_LIVENESS_SECONDS 0.25 /* how often a waiting rank checks that its node peers live */

struct hn_shared {
  MPI_Comm node;         /* the ranks of this node */
  MPI_Comm inter;        /* this local rank on every node; MPI_COMM_NULL with one node */
  int lr, L;             /* local rank, ranks per node */
  size_t head_bytes, seg_bytes;
  seg_header **head;     /* [L] every node rank's mapping, its header first (ours writable) */
  const hn_real **buf;   /* [L] every node rank's gradients */
  hn_real *mine;         /* = buf[lr], writable */
  int *pid;              /* [L] */
  int *rank_of;          /* [L] world rank of each local rank (messages) */
  hn_real **slot;        /* the caller's gradient pointer (pointed at mine) */
  long seq;              /* step sequence number: the flags' stamp */
  unsigned char *state;  /* [nb] */
  unsigned char *copied; /* [nb * L] slice q of bucket k copied into mine */
  int *n_copied;         /* [nb] */
  int published;         /* buckets [0, published) are final here and flagged ready */
  int first_open;        /* the lowest bucket not yet done */
};

static _Atomic long *ready_flag(const struct hn_shared *s, int q, int k) { return &s->head[q]->flags[k]; }
static _Atomic long *reduced_flag(const struct hn_shared *s, int q, int k, int nb) {
  return &s->head[q]->flags[nb + k];
}

/* Local rank q's slice [*a, *b) of bucket k. */
static void slice(const hn_exchange *ex, int k, int q, size_t *a, size_t *b) {
  size_t lo, hi;
  hn_exchange_bucket_range(ex, k, &lo, &hi);
  const size_t len = hi - lo, L = (size_t)ex->shared->L;
  *a = lo + len * (size_t)q / L;
  *b = lo + len * ((size_t)q + 1) / L;
}

/* mine[a, b) = sum over the node's ranks of their [a, b), in local-rank order (the same sum
 * whichever rank computes it). */
static void sum_slice(struct hn_shared *s, size_t a, size_t b) {
  hn_real *out = s->mine;
  if (s->L == 2) { /* the common case, one pass; a + b == b + a, so the order holds */
    const hn_real *peer = s->buf[1 - s->lr];
    for (size_t i = a; i < b; i++)
      out[i] += peer[i];
    return;
  }
  enum { CHUNK = 512 };
  hn_real acc[CHUNK];
  for (size_t c = a; c < b; c += CHUNK) {
    const size_t m = b - c < CHUNK ? b - c : CHUNK;
    const hn_real *g0 = s->buf[0] + c, *g1 = s->buf[1] + c;
    for (size_t i = 0; i < m; i++)
      acc[i] = g0[i] + g1[i];
    for (int q = 2; q < s->L; q++) {
      const hn_real *g = s->buf[q] + c;
      for (size_t i = 0; i < m; i++)
        acc[i] += g[i];
    }
    memcpy(out + c, acc, m * sizeof(hn_real));
  }
}

static int all_ready(const struct hn_shared *s, int k) {
  for (int q = 0; q < s->L; q++)
    if (q != s->lr && atomic_load_explicit(ready_flag(s, q, k), memory_order_acquire) < s->seq)
      return 0;
  return 1;
}

int hn_shared_progress(hn_exchange *ex, int upto) {
  struct hn_shared *s = ex->shared;
  const int nb = ex->n_buckets;
  const double now = hn_wtime() - ex->t_begin;
  for (int k = s->published; k < upto; k++) { /* our data of bucket k is final: say so */
    atomic_store_explicit(ready_flag(s, s->lr, k), s->seq, memory_order_release);
    ex->t_start[k] = now;
  }
  if (upto > s->published) {
    ex->pending += upto - s->published;
    s->published = ex->next = upto;
  }
  for (int k = s->first_open; k < s->published; k++) {
    size_t a, b;
    if (s->state[k] == ST_READY) {
      /* peers flag their buckets in order: if k is not ready everywhere, neither is k + 1 */
      if (!all_ready(s, k))
        break;
      slice(ex, k, s->lr, &a, &b);
      const double t0 = hn_wtime();
      sum_slice(s, a, b);
      ex->stats.work_seconds += hn_wtime() - t0;
      if (s->inter != MPI_COMM_NULL) { /* the same order on every node: k ascending */
        if (MPI_Iallreduce(MPI_IN_PLACE, s->mine + a, (int)(b - a), HN_MPI_REAL, MPI_SUM, s->inter, &ex->req[k]) !=
            MPI_SUCCESS)
          return hn_fail(HN_EMPI, "MPI_Iallreduce of gradient bucket %d across the nodes failed", k);
        s->state[k] = ST_INTER;
      } else {
        atomic_store_explicit(reduced_flag(s, s->lr, k, nb), s->seq, memory_order_release);
        s->state[k] = ST_GATHER;
      }
    }
    if (s->state[k] == ST_INTER) {
      int flag = 0;
      if (MPI_Test(&ex->req[k], &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return hn_fail(HN_EMPI, "the allreduce of gradient bucket %d across the nodes failed (a rank may have died)",
                       k);
      if (!flag)
        continue;
      atomic_store_explicit(reduced_flag(s, s->lr, k, nb), s->seq, memory_order_release);
      s->state[k] = ST_GATHER;
    }
    if (s->state[k] == ST_GATHER) {
      unsigned char *copied = s->copied + (size_t)k * (size_t)s->L;
      for (int q = 0; q < s->L; q++) {
        if (q == s->lr || copied[q] || atomic_load_explicit(reduced_flag(s, q, k, nb), memory_order_acquire) < s->seq)
          continue;
        slice(ex, k, q, &a, &b);
        const double t0 = hn_wtime();
        memcpy(s->mine + a, s->buf[q] + a, (b - a) * sizeof(hn_real));
        ex->stats.work_seconds += hn_wtime() - t0;
        copied[q] = 1;
        s->n_copied[k]++;
      }
      if (s->n_copied[k] == s->L - 1) {
        s->state[k] = ST_DONE;
        ex->t_done[k] = hn_wtime() - ex->t_begin;
        ex->pending--;
      }
    }
  }
  while (s->first_open < s->published && s->state[s->first_open] == ST_DONE)
    s->first_open++;
  return HN_OK;
}

/* A process that has exited is gone (ESRCH) or, until its parent reaps it, a zombie - which
 * kill(pid, 0) still reports as present: /proc/PID/stat's state field tells them apart. */
static int process_alive(int pid) {
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
    return 0;
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 1; /* no /proc: trust kill */
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = '\0';
  const char *close_paren = strrchr(buf, ')'); /* "pid (comm) S ...": comm may hold spaces */
  return !(close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X'));
}

/* Between polls of a wait: give the core away (oversubscribed runs) and, now and then, make
 * sure every node peer still lives - a peer that died would otherwise be waited for forever. */
static int wait_tick(hn_exchange *ex, double *next_check, const char *what) {
  struct hn_shared *s = ex->shared;
  sched_yield();
  const double now = hn_wtime();
  if (now < *next_check)
    return HN_OK;
  *next_check = now + HN_LIVENESS_SECONDS;
  for (int q = 0; q < s->L; q++)
    if (q != s->lr && !process_alive(s->pid[q]))
      return hn_fail(HN_EMPI, "rank %d (process %d on this node) died while rank %d waited for it %s", s->rank_of[q],
                     s->pid[q], s->rank_of[s->lr], what);
  return HN_OK;
}

int hn_shared_finish(hn_exchange *ex) {
  struct hn_shared *s = ex->shared;
  double next_check = hn_wtime() + HN_LIVENESS_SECONDS;
  HN_TRY(hn_shared_progress(ex, ex->n_buckets));
  while (s->first_open < ex->n_buckets) {
    HN_TRY(wait_tick(ex, &next_check, "in the gradient exchange"));
    HN_TRY(hn_shared_progress(ex, ex->n_buckets));
  }
  /* nobody may write into our buffer's next step before the peers have read this one */
  atomic_store_explicit(&s->head[s->lr]->done, s->seq, memory_order_release);
  for (int q = 0; q < s->L; q++)
    while (q != s->lr && atomic_load_explicit(&s->head[q]->done, memory_order_acquire) < s->seq)
      HN_TRY(wait_tick(ex, &next_check, "in the gradient exchange (to finish reading this rank's gradients)"));
  return HN_OK;
}

void hn_shared_abandon(hn_exchange *ex) {
  struct hn_shared *s = ex->shared;
  for (int k = 0; k < ex->n_buckets; k++) {
    atomic_store_explicit(ready_flag(s, s->lr, k), s->seq, memory_order_release);
    atomic_store_explicit(reduced_flag(s, s->lr, k, ex->n_buckets), s->seq, memory_order_release);
  }
  atomic_store_explicit(&s->head[s->lr]->done, s->seq, memory_order_release);
}

const char *hn_shared_describe(const hn_exchange *ex) {
  static char text[96];
  const struct hn_shared *s = ex->shared;
  snprintf(text, sizeof text, "%d ranks per node x %d node%s", s->L, ex->size / s->L, ex->size / s->L > 1 ? "s" : "");
  return text;
}

void hn_shared_begin(hn_exchange *ex) {
  struct hn_shared *s = ex->shared;
  s->seq++;
  s->published = s->first_open = 0;
  memset(s->state, ST_READY, (size_t)ex->n_buckets);
  memset(s->copied, 0, (size_t)ex->n_buckets * (size_t)s->L);
  memset(s->n_copied, 0, (size_t)ex->n_buckets * sizeof(int));
}

static void release(struct hn_shared *s, int with_comms) {
  if (!s)
    return;
  for (int q = 0; s->head && q < s->L; q++)
    if (s->head[q])
      munmap(s->head[q], s->seg_bytes);
  if (with_comms) {
    if (s->inter != MPI_COMM_NULL)
      MPI_Comm_free(&s->inter);
    if (s->node != MPI_COMM_NULL)
      MPI_Comm_free(&s->node);
  }
  free(s->head);
  free(s->buf);
  free(s->pid);
  free(s->rank_of);
  free(s->state);
  free(s->copied);
  free(s->n_copied);
  free(s);
}

/* The node communicator: MPI's view of shared memory, or - HAMNET_EXCHANGE_NODE_SIZE=K, for the
 * tests - "nodes" of K consecutive ranks (still one machine, so the memory is shared, but the
 * exchange then runs its across-node allreduce too). */
static int split_node(MPI_Comm comm, int rank, MPI_Comm *node) {
  const char *fake = getenv("HAMNET_EXCHANGE_NODE_SIZE");
  int k = fake && *fake ? atoi(fake) : 0;
  int rc = k > 0 ? MPI_Comm_split(comm, rank / k, rank, node)
                 : MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, node);
  return rc == MPI_SUCCESS ? HN_OK : hn_fail(HN_EMPI, "splitting the ranks by node failed");
}

int hn_shared_create(hn_exchange *ex, hn_real **grads, char *why, size_t why_len) {
  ex->shared = NULL;
  why[0] = '\0';
  int rank = 0;
  MPI_Comm_rank(ex->comm, &rank);
  MPI_Comm node = MPI_COMM_NULL;
  HN_TRY(split_node(ex->comm, rank, &node));
  int L = 1, lr = 0;
  MPI_Comm_size(node, &L);
  MPI_Comm_rank(node, &lr);
  int range[2] = {L, -L};
  if (MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_INT, MPI_MIN, ex->comm) != MPI_SUCCESS) {
    MPI_Comm_free(&node);
    return hn_fail(HN_EMPI, "agreeing on the ranks per node failed");
  }
  if (range[0] != -range[1] || L < 2) {
    if (L < 2 && range[0] == -range[1])
      snprintf(why, why_len, "one rank per node");
    else
      snprintf(why, why_len, "the nodes hold different numbers of ranks (%d to %d)", range[0], -range[1]);
    MPI_Comm_free(&node);
    return HN_OK;
  }

  struct hn_shared *s = calloc(1, sizeof *s);
  const int nb = ex->n_buckets;
  int ok = s != NULL;
  if (ok) {
    s->node = node;
    s->inter = MPI_COMM_NULL;
    s->L = L;
    s->lr = lr;
    s->head = calloc((size_t)L, sizeof *s->head);
    s->buf = calloc((size_t)L, sizeof *s->buf);
    s->pid = calloc((size_t)L, sizeof *s->pid);
    s->rank_of = calloc((size_t)L, sizeof *s->rank_of);
    s->state = calloc((size_t)nb, 1);
    s->copied = calloc((size_t)nb * (size_t)L, 1);
    s->n_copied = calloc((size_t)nb, sizeof(int));
    ok = s->head && s->buf && s->pid && s->rank_of && s->state && s->copied && s->n_copied;
    const size_t page = 4096;
    s->head_bytes = (sizeof(seg_header) + 2 * (size_t)nb * sizeof(long) + page - 1) / page * page;
    s->seg_bytes = (s->head_bytes + ex->n * sizeof(hn_real) + page - 1) / page * page;
  }
  /* our segment: an anonymous memory file the node peers open through /proc */
  int fd = -1, err = 0;
  if (ok) {
    fd = memfd_create("hamnet-gradients", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)s->seg_bytes) != 0) {
      err = errno;
      ok = 0;
    } else {
      void *p = mmap(NULL, s->seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        s->head[lr] = p;
      } else {
        err = errno;
        ok = 0;
      }
    }
  }
  /* every node rank takes part in the allgather, so a failed allocation is agreed on first */
  int *all = calloc((size_t)L * 3, sizeof(int)), have_all = all != NULL;
  if (MPI_Allreduce(MPI_IN_PLACE, &have_all, 1, MPI_INT, MPI_MIN, node) != MPI_SUCCESS)
    have_all = 0;
  int mine[3] = {(int)getpid(), fd, ok};
  if (!have_all || MPI_Allgather(mine, 3, MPI_INT, all, 3, MPI_INT, node) != MPI_SUCCESS)
    ok = 0;
  for (int q = 0; ok && q < L; q++) {
    ok = all[3 * q + 2];
    s->pid[q] = all[3 * q];
    if (q == lr || !ok)
      continue;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", all[3 * q], all[3 * q + 1]);
    int pfd = open(path, O_RDONLY | O_CLOEXEC);
    void *p = pfd >= 0 ? mmap(NULL, s->seg_bytes, PROT_READ, MAP_SHARED, pfd, 0) : MAP_FAILED;
    if (p == MAP_FAILED) {
      err = errno;
      ok = 0;
    } else {
      s->head[q] = p;
    }
    if (pfd >= 0)
      close(pfd);
  }
  free(all);
  /* every rank decides alike; this is also the barrier after which no peer opens our fd */
  int ok_all = ok;
  if (MPI_Allreduce(MPI_IN_PLACE, &ok_all, 1, MPI_INT, MPI_MIN, ex->comm) != MPI_SUCCESS)
    ok_all = -1;
  if (fd >= 0)
    close(fd);
  if (ok_all == 1) {
    int wr = rank;
    if (MPI_Allgather(&wr, 1, MPI_INT, s->rank_of, 1, MPI_INT, node) != MPI_SUCCESS)
      ok_all = -1;
  }
  int size = 1;
  MPI_Comm_size(ex->comm, &size);
  if (ok_all == 1 && size > L && MPI_Comm_split(ex->comm, lr, rank, &s->inter) != MPI_SUCCESS)
    ok_all = -1;
  if (ok_all != 1) {
    if (s)
      release(s, 1);
    else
      MPI_Comm_free(&node);
    if (ok_all < 0)
      return hn_fail(HN_EMPI, "setting up the node-shared gradient exchange failed in MPI");
    snprintf(why, why_len, "the ranks of a node cannot map each other's memory (%s)",
             err ? strerror(err) : "failed on another rank");
    return HN_OK;
  }
  for (int q = 0; q < L; q++)
    s->buf[q] = (const hn_real *)((const char *)s->head[q] + s->head_bytes);
  s->mine = (hn_real *)((char *)s->head[lr] + s->head_bytes);
  /* the caller's buffer hands over its contents and its place */
  memcpy(s->mine, *grads, ex->n * sizeof(hn_real));
  hn_free(*grads);
  *grads = s->mine;
  s->slot = grads;
  hn_mem_account(HN_MEM_GRADS, (long long)(ex->n * sizeof(hn_real)));
  ex->shared = s;
  return HN_OK;
}

void hn_shared_destroy(hn_exchange *ex) {
  struct hn_shared *s = ex->shared;
  if (!s)
    return;
  /* give the caller a private buffer with the current gradients back */
  hn_real *own = hn_alloc(ex->n, sizeof(hn_real), HN_MEM_GRADS, "gradients");
  if (own)
    memcpy(own, s->mine, ex->n * sizeof(hn_real));
  if (!own)
    hn_log_warn("%s", hn_errmsg());
  *s->slot = own;
  hn_mem_account(HN_MEM_GRADS, -(long long)(ex->n * sizeof(hn_real)));
  release(s, 1);
  ex->shared = NULL;
}
