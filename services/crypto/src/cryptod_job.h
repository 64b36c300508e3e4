/*  cryptod_job -- one chunk job the broker holds until it is answered
    (proto/crypto.md, "Back end").

    A job owns the caller's request (envelope, request id, deadline, the
    chunk frame), the file's DEK (unwrapped by the broker) and the header,
    and remembers which workers it was sent to, so that it can be resent
    after a worker is lost and a reply can be matched to it. The chunk is
    kept as the frame the caller sent (sent to workers by reference, never
    copied). Destroying a job wipes the DEK and, for ENCRYPT, the
    plaintext chunk (cryptod_call).                                     */
#ifndef CRYPTOD_JOB_H
#define CRYPTOD_JOB_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "cm_msg.h"
#include "cryptod_backend.h"
#include "cryptod_stream.h"

typedef struct cryptod_job_t {
    uint64_t id;
    cm_call_t *call; /* the caller's request; its one blob is the chunk */
    bool encrypt;
    uint8_t dek[CRYPTOD_DEK_LEN]; /* secret: wiped on destroy */
    uint8_t header[CRYPTOD_HEADER_LEN];
    uint64_t index;
    bool last;
    size_t cost;                         /* queue cost (crypto.md, Limits) */
    int attempts;                        /* times sent to a worker */
    char *sent_to[CRYPTOD_MAX_ATTEMPTS]; /* those workers (identity hex) */
    void *worker;                        /* the broker's: who holds it now */
    void *queue_handle;                  /* the queue's: where it waits */
} cryptod_job_t;

/* Takes *call_p (nulled) and copies dek and header. NULL on no memory
   (then the call is released, wiped).                                  */
cryptod_job_t *cryptod_job_new (uint64_t id, cm_call_t **call_p, bool encrypt,
                                const uint8_t dek[CRYPTOD_DEK_LEN],
                                const uint8_t header[CRYPTOD_HEADER_LEN], uint64_t index,
                                bool last);
/* Wipes the DEK and the plaintext chunk, frees; nulls *self_p.         */
void cryptod_job_destroy (cryptod_job_t **self_p);

/* The chunk frame (borrowed; never NULL for a job).                    */
zframe_t *cryptod_job_blob (cryptod_job_t *self);
/* True if the caller's deadline has passed.                           */
bool cryptod_job_expired (const cryptod_job_t *self);
/* Records a send to the worker whose identity hex is `worker` (counts an
   attempt). -1 if the job was already sent CRYPTOD_MAX_ATTEMPTS times. */
int cryptod_job_sent (cryptod_job_t *self, const char *worker);
/* Takes back the last cryptod_job_sent (the send failed).              */
void cryptod_job_unsent (cryptod_job_t *self);
/* True if the job was sent to that worker.                            */
bool cryptod_job_sent_to (const cryptod_job_t *self, const char *worker);

/* Queue cost of a request: its blob bytes, its header and
   CRYPTOD_FRAME_COST per frame (envelope included), so requests of
   empty frames cost memory too.                                       */
size_t cryptod_job_call_cost (const cm_call_t *call);
size_t cryptod_job_call_frames (const cm_call_t *call);

#endif
