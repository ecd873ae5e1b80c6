/* exchange_shared.h - private to src/parallel: the node-shared engine of the gradient exchange.
 *
 * The ranks of one node keep their gradient buffers in memory every rank of the node can read
 * (one memfd per rank, mapped read-only by its node peers), so that a bucket is averaged with
 * plain loads and stores instead of MPI messages: for bucket k, local rank r sums slice r of the
 * bucket over the node's ranks, in local-rank order, straight out of their buffers into its
 * own (reduce-scatter), then - several nodes - MPI_Iallreduce's that slice with the ranks of the
 * same local rank on the other nodes, and finally copies the other slices, once their owners
 * have published them, out of their buffers (allgather). Per bucket one rank reads the others'
 * data once; nothing goes through the kernel (Open MPI's shared-memory transport copies every
 * large message with process_vm_readv into a temporary buffer and sums from there).
 *
 * Flags in a header in front of each rank's buffer, written only by their owner and stamped
 * with the exchange's step sequence number, order the work:
 *   ready[k]    = seq: my bucket k is final (the backward pass is done with it)
 *   reduced[k]  = seq: my slice of bucket k holds the sum (node and, with several nodes, global)
 *   done        = seq: I have finished reading the peers' buffers for this step
 * A rank leaves hn_exchange_finish only when every node peer is done, so nobody writes into its
 * buffer (the next step zeroes it) while a peer may still read it. Waiting polls the flags and
 * yields the core (oversubscribed runs) and checks that the peers are alive (a dead peer ends
 * the wait with an error instead of a hang).
 *
 * Used by exchange.c only; the functions take its hn_exchange. */
#ifndef HN_EXCHANGE_SHARED_H
#define HN_EXCHANGE_SHARED_H

#include "hamnet/parallel.h"

/* Collective over ex->comm. Sets up the shared engine when it can (every rank of a node
 * reaches the others' memory, the same number of ranks on every node, at least 2 of them):
 * returns HN_OK with ex->shared set and *grads pointing at this rank's shared buffer (the old
 * contents copied over; the caller's buffer is given back by hn_shared_destroy). When it cannot,
 * returns HN_OK with ex->shared NULL and the reason in why[0..why_len) - every rank decides
 * alike. HN_ENOMEM / HN_EMPI on failures every rank agrees on. */
int hn_shared_create(hn_exchange *ex, hn_real **grads, char *why, size_t why_len);
void hn_shared_destroy(hn_exchange *ex);
/* After a failure on this rank: flag every bucket and the step as done, so that no node peer
 * waits for this rank (the data is garbage; the step's agreement then ends the run). */
void hn_shared_abandon(hn_exchange *ex);
/* "L ranks per node x N nodes" */
const char *hn_shared_describe(const hn_exchange *ex);
/* Start of a step: a new sequence number, every bucket unpublished. */
void hn_shared_begin(hn_exchange *ex);
/* Buckets [0, upto) are final on this rank: publish them and do whatever work is possible. */
int hn_shared_progress(hn_exchange *ex, int upto);
/* Publish every bucket, finish all of them and wait until the node's peers are done reading. */
int hn_shared_finish(hn_exchange *ex);

#endif
