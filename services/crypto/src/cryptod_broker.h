/*  cryptod_broker -- the crypto service's load-balancing broker
    (ZeroMQ Guide ch. 3/4 LRU broker, growing into Majordomo/Paranoid
    Pirate: heartbeats and remote workers are a later issue).

    front ROUTER (callers)  --request-->  broker  --request-->  back ROUTER
                                                                 (inproc; workers'
                                                                  DEALERs, READY first)
    - HEALTH is answered by the broker itself.
    - Other requests go to the least recently used idle worker, header
      re-packed (small) and blob frames moved, never copied; when every
      worker is busy they wait in a bounded FIFO (count, and bytes with a
      fixed cost per frame so empty frames count), and a request that
      finds it full is answered UNAVAILABLE "crypto_busy". A request
      with more than one blob frame is refused INVALID "bad_blob_count"
      before it is queued.
    - Every request or reply it lets go of goes through cryptod_call
      (plaintext frames wiped).
    - Replies from workers go back to the caller unchanged (the reply's
      blob frame is the worker's buffer, zero-copy).
    - Stop (SIGTERM or cryptod_broker_stop): queued and newly arriving
      requests are answered UNAVAILABLE "crypto_stopping" (callers retry
      elsewhere at once instead of timing out), in-flight ones are
      finished (bounded by CRYPTOD_DRAIN_MS), then run returns.         */
#ifndef CRYPTOD_BROKER_H
#define CRYPTOD_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "cryptod_keyring.h"

#define CRYPTOD_MAX_PENDING       1024
#define CRYPTOD_MAX_PENDING_BYTES (256u * 1024u * 1024u)
/* Queue cost of one frame beyond its bytes (zframe_t, zmq_msg_t, the
   allocation): a request of empty frames is not free.                 */
#define CRYPTOD_FRAME_COST 256u
/* Blob frames a request may carry: ENCRYPT/DECRYPT one, others none.  */
#define CRYPTOD_MAX_BLOBS   1
#define CRYPTOD_DRAIN_MS    5000
#define CRYPTOD_MAX_WORKERS 64

typedef struct {
    const char *endpoint;             /* front socket, e.g. ipc://var/run/crypto.sock */
    const cryptod_keyring_t *keyring; /* borrowed, must outlive the broker */
    int workers;                      /* local worker threads, 0..64 (0: tests) */
    uint32_t chunk_size;              /* default for KEY_NEW without one */
    size_t max_pending;               /* 0: CRYPTOD_MAX_PENDING */
    size_t max_pending_bytes;         /* 0: CRYPTOD_MAX_PENDING_BYTES */
} cryptod_broker_opts_t;

typedef struct cryptod_broker_t cryptod_broker_t;

/* Binds the front and back sockets and starts the local workers.
   NULL on failure (logged).                                           */
cryptod_broker_t *cryptod_broker_new (const cryptod_broker_opts_t *opts);
/* Stops the workers (each finishes its request), closes the sockets. */
void cryptod_broker_destroy (cryptod_broker_t **self_p);

/* Runs until SIGINT/SIGTERM (cm_service_stopping) or cryptod_broker_stop,
   then drains as above. 0 on a clean stop, -1 if in-flight requests
   were still unanswered at the drain deadline.                        */
int cryptod_broker_run (cryptod_broker_t *self);
/* Asks a running broker to stop; safe from any thread.               */
void cryptod_broker_stop (cryptod_broker_t *self);

#endif
