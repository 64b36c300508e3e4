/*  cryptod_broker -- the crypto service: callers on the front, a pool of
    workers on the back (ZeroMQ Guide ch. 4: a Majordomo-shaped broker,
    Paranoid Pirate heartbeats). proto/crypto.md is the spec.

    front ROUTER (callers)                     back ROUTER, bound twice:
      HEALTH, POOL_STATUS: answered here         inproc://cryptod-back-<instance>
      KEY_NEW: done here (needs the KEK)           (local worker threads)
      ENCRYPT/DECRYPT: checked here, the DEK     SAFESHARE_CRYPTO_WORKER_ENDPOINT
        unwrapped here, then a job for a           (`safeshare-crypto worker`
        worker  -------- REQUEST -------->         processes), when set

    - The KEK ring lives only here (cryptod_ringwatch: reloaded when its
      file changes). Workers get a job's DEK, never a KEK.
    - Idle workers wait in an LRU list (the one free longest gets the
      next job); jobs wait in a bounded FIFO (cryptod_queue) when every
      worker is busy, and a job that finds it full is answered
      UNAVAILABLE crypto_busy. Queued jobs past their deadline are
      dropped, never sent.
    - Heartbeats both ways; a worker silent for 3 intervals is dead: its
      job goes back to the head of the queue and is resent (at most
      CRYPTOD_MAX_ATTEMPTS sends, then UNAVAILABLE crypto_unavailable).
      The first reply wins; a late one is dropped (plaintext wiped).
    - Chunks are never copied: the caller's frame goes to a worker by
      reference and is kept (for a resend) until the job is answered.
    - Stop (SIGTERM or cryptod_broker_stop): queued and new requests are
      answered UNAVAILABLE crypto_stopping, jobs in flight are finished
      (bounded by CRYPTOD_DRAIN_MS), workers are told DISCONNECT.      */
#ifndef CRYPTOD_BROKER_H
#define CRYPTOD_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "cryptod_ringwatch.h"

#define CRYPTOD_MAX_PENDING       1024
#define CRYPTOD_MAX_PENDING_BYTES (256u * 1024u * 1024u)
/* Queue cost of one frame beyond its bytes (zframe_t, zmq_msg_t, the
   allocation): a request of empty frames is not free.                 */
#define CRYPTOD_FRAME_COST 256u
/* Blob frames a request may carry: ENCRYPT/DECRYPT one, others none.  */
#define CRYPTOD_MAX_BLOBS   1
#define CRYPTOD_DRAIN_MS    5000
#define CRYPTOD_MAX_WORKERS 64
/* Workers registered at once (local and remote); READY beyond it is
   answered DISCONNECT.                                                */
#define CRYPTOD_MAX_POOL 1024

typedef struct {
    const char *endpoint;        /* front socket, e.g. ipc://var/run/crypto.sock */
    const char *worker_endpoint; /* remote workers' endpoint; NULL: none */
    cryptod_ringwatch_t *keys;   /* borrowed; only the broker's thread uses it */
    int workers;                 /* local worker threads, 0..64 */
    uint32_t chunk_size;         /* default for KEY_NEW without one */
    size_t max_pending;          /* 0: CRYPTOD_MAX_PENDING */
    size_t max_pending_bytes;    /* 0: CRYPTOD_MAX_PENDING_BYTES */
} cryptod_broker_opts_t;

typedef struct cryptod_broker_t cryptod_broker_t;

/* Binds the front and back sockets and starts the local workers.
   NULL on failure (logged).                                           */
cryptod_broker_t *cryptod_broker_new (const cryptod_broker_opts_t *opts);
/* Stops the local workers (each finishes its job), closes the sockets,
   wipes what is left. NULL-safe; nulls *self_p.                       */
void cryptod_broker_destroy (cryptod_broker_t **self_p);

/* The remote workers' endpoint as bound (a tcp port given as * is
   resolved), or NULL when there is none. Borrowed.                    */
const char *cryptod_broker_worker_endpoint (cryptod_broker_t *self);

/* Runs until SIGINT/SIGTERM (cm_service_stopping) or cryptod_broker_stop,
   then drains as above. 0 on a clean stop, -1 if jobs were still
   unanswered at the drain deadline.                                   */
int cryptod_broker_run (cryptod_broker_t *self);
/* Asks a running broker to stop; safe from any thread.               */
void cryptod_broker_stop (cryptod_broker_t *self);

#endif
