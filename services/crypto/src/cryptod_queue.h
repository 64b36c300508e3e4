/*  cryptod_queue -- the broker's bounded FIFO of jobs waiting for a worker
    (proto/crypto.md, Limits).

    New jobs join at the tail and are refused when the queue is full
    (count, or bytes as cryptod_job_call_cost counts them; one job always
    fits into an empty queue). A job whose worker was lost goes back to
    the head and is never refused: it was admitted already. A job can be
    taken out from anywhere (a late reply answered it).                  */
#ifndef CRYPTOD_QUEUE_H
#define CRYPTOD_QUEUE_H

#include <stddef.h>

#include "cryptod_job.h"

typedef struct cryptod_queue_t cryptod_queue_t;

cryptod_queue_t *cryptod_queue_new (size_t max_jobs, size_t max_bytes);
/* Destroys the jobs still queued (wiped).                              */
void cryptod_queue_destroy (cryptod_queue_t **self_p);

/* Tail. 0, or -1 if full (the job stays the caller's).                 */
int cryptod_queue_push (cryptod_queue_t *self, cryptod_job_t *job);
/* Head, never refused. 0 / -1 (no memory).                             */
int cryptod_queue_push_front (cryptod_queue_t *self, cryptod_job_t *job);
/* The head job (now the caller's), or NULL.                            */
cryptod_job_t *cryptod_queue_pop (cryptod_queue_t *self);
/* Takes a queued job out (no-op if it is not queued).                  */
void cryptod_queue_remove (cryptod_queue_t *self, cryptod_job_t *job);

/* Iteration, head first: the next call after a cryptod_queue_remove of
   the current job is not allowed (collect, then remove).               */
cryptod_job_t *cryptod_queue_first (cryptod_queue_t *self);
cryptod_job_t *cryptod_queue_next (cryptod_queue_t *self);

size_t cryptod_queue_size (cryptod_queue_t *self);
size_t cryptod_queue_bytes (cryptod_queue_t *self);

#endif
