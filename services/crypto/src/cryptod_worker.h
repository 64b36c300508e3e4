/*  cryptod_worker -- does the crypto work: KEY_NEW, ENCRYPT, DECRYPT.

    Two layers:
    - cryptod_worker_t handles one request (validation, DEK unwrap, seal or
      open, reply) on any socket whose messages are [envelope][header]
      [blob]*: stateless between requests, so any worker can take any
      chunk of any file.
    - cryptod_worker_actor is the zactor that runs one in a thread: a
      DEALER connected to the broker's back socket, READY first, then
      requests in, replies out (proto/crypto.md, "Back end").         */
#ifndef CRYPTOD_WORKER_H
#define CRYPTOD_WORKER_H

#include <czmq.h>
#include <stdint.h>

#include "cm_msg.h"
#include "cryptod_keyring.h"

/* Back-end commands: a worker message of exactly one frame after the
   worker's identity is a command; anything else is a reply.           */
#define CRYPTOD_WORKER_READY "READY"

typedef struct cryptod_worker_t cryptod_worker_t;

/* keyring is borrowed (read-only, shared) and must outlive the worker.
   default_chunk_size is used for KEY_NEW requests with chunk_size 0.  */
cryptod_worker_t *cryptod_worker_new (const cryptod_keyring_t *keyring,
                                      uint32_t default_chunk_size);
void cryptod_worker_destroy (cryptod_worker_t **self_p);

/* Handles one received CryptoRequest (KEY_NEW, ENCRYPT or DECRYPT) and
   answers it on sock. Returns 0 if a reply was sent, -1 if none was (the
   deadline had passed, or the send failed). The caller then releases
   the call with cryptod_call_release (which wipes an ENCRYPT request's
   plaintext, whatever the outcome).                                   */
int cryptod_worker_handle (cryptod_worker_t *self, zsock_t *sock, cm_call_t *call);

/* Arguments of the actor; must outlive it.                            */
typedef struct {
    const char *endpoint; /* the broker's back socket */
    const cryptod_keyring_t *keyring;
    uint32_t default_chunk_size;
} cryptod_worker_args_t;

/* zactor_new (cryptod_worker_actor, &args). Stops on $TERM after the
   request in hand is answered.                                        */
void cryptod_worker_actor (zsock_t *pipe, void *args);

#endif
