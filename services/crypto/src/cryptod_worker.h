/*  cryptod_worker -- a crypto worker: seals and opens chunks with the DEK
    the broker sends (proto/crypto.md, "Back end"). It holds no KEK and
    no state between jobs: any worker can take any chunk of any file.

    Two layers:
    - cryptod_worker_work does one job (checks, AES-256-GCM seal/open);
    - cryptod_worker_actor runs a worker in a thread: a DEALER to the
      broker, READY, jobs in, replies out, heartbeats both ways, and when
      the broker goes silent (or says DISCONNECT) a new socket after a
      backoff of 1 s doubling to 32 s. The broker's local threads and
      `safeshare-crypto worker` processes both run it.                 */
#ifndef CRYPTOD_WORKER_H
#define CRYPTOD_WORKER_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_status.h"
#include "crypto.pb-c.h"
#include "cryptod_backend.h"

/* Does the job `req` on the chunk `in`: checks the request (op, DEK and
   header lengths, header, index, chunk length rules), then seals
   (ENCRYPT) or opens (DECRYPT) into a new buffer *out of *out_len bytes
   (malloc'd, the caller's: a DECRYPT output is plaintext, wipe it).
   CM_OK, or a status with *code (stable snake_case) and no output:
   INVALID bad_work_request / bad_chunk_length, UNPROCESSABLE
   chunk_auth_failed, INTERNAL encrypt_failed / internal_error.        */
cm_status_t cryptod_worker_work (const Safeshare__WorkRequest *req, const uint8_t *in,
                                 size_t in_len, uint8_t **out, size_t *out_len,
                                 const char **code);

/* Arguments of the actor; must outlive it.                            */
typedef struct {
    const char *endpoint; /* the broker's back socket */
    const char *name;     /* READY name, "host:pid:thread" */
    /* The broker's own threads: a fixed identity the broker recognises
       as local, and the chunk frames are the broker's (shared over
       inproc), not wiped here. NULL for a remote worker: a random
       identity per socket, and its copy of a plaintext chunk is wiped. */
    const char *identity;
} cryptod_worker_args_t;

/* OpenSSL's lazy set-up (cipher fetch, DRBG), done once before worker
   threads start so that they do not race it (cryptod_aead.c says why).
   0 / -1 (logged).                                                    */
int cryptod_worker_prepare (void);
/* Worker thread i's READY name: "host:pid:i" (host cut at 64 chars).  */
void cryptod_worker_name (char out[CRYPTOD_WORKER_NAME_MAX + 1], int i);

/* zactor_new (cryptod_worker_actor, &args). On $TERM it finishes the job
   in hand, tells the broker DISCONNECT and returns.                   */
void cryptod_worker_actor (zsock_t *pipe, void *args);

#endif
