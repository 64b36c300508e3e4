/*  cryptod_backend -- the broker <-> worker protocol (proto/crypto.md,
    "Back end"), shared by cryptod_broker and cryptod_worker.

    Every message is ["SSW1"][command][...]:
      W->B  READY name | HEARTBEAT | REPLY job_id WorkReply [blob] | DISCONNECT
      B->W  REQUEST job_id WorkRequest blob | HEARTBEAT | DISCONNECT
    (on the broker's ROUTER the worker's identity frame comes first).

    What lives here: the names and timings, the checks both sides apply
    to a chunk (so a worker re-checks what the broker checked: it hears
    the network), and the two sends whose frames need care -- a
    WorkRequest carries a DEK (its frame is our own buffer, wiped when
    libzmq lets go of it) and the chunk goes out by reference, never
    copied (zframe_send with ZFRAME_REUSE: libzmq's refcounted
    zmq_msg_copy).                                                       */
#ifndef CRYPTOD_BACKEND_H
#define CRYPTOD_BACKEND_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "crypto.pb-c.h"

#define CRYPTOD_PROTOCOL       "SSW1"
#define CRYPTOD_CMD_READY      "READY"
#define CRYPTOD_CMD_HEARTBEAT  "HEARTBEAT"
#define CRYPTOD_CMD_REPLY      "REPLY"
#define CRYPTOD_CMD_REQUEST    "REQUEST"
#define CRYPTOD_CMD_DISCONNECT "DISCONNECT"

/* Each side sends something at least this often; a peer silent for
   LIVENESS intervals is dead.                                         */
#define CRYPTOD_HEARTBEAT_MS       1000
#define CRYPTOD_HEARTBEAT_LIVENESS 3
/* A job is sent to at most this many workers; when the last one is lost
   too, the caller gets UNAVAILABLE crypto_unavailable.                */
#define CRYPTOD_MAX_ATTEMPTS 3
/* Worker reconnect backoff: 1 s doubling to 32 s.                     */
#define CRYPTOD_RECONNECT_MIN_MS 1000
#define CRYPTOD_RECONNECT_MAX_MS 32000
/* READY's name: "host:pid:thread", printable ASCII without spaces.    */
#define CRYPTOD_WORKER_NAME_MAX 128
#define CRYPTOD_JOB_ID_LEN      8
/* Worker-side error code for a request whose caller deadline passed
   before it was started: the broker drops the job without a reply.    */
#define CRYPTOD_DEADLINE_PASSED "deadline_passed"

/* True if name is 1..128 printable ASCII characters, no space.        */
bool cryptod_backend_name_valid (const char *name, size_t len);

/* Length rules of docs/format.md for a chunk of len bytes (ciphertext
   with its tag when !encrypt) under chunk_size. NULL if good, else
   "bad_chunk_length" and *why.                                        */
const char *cryptod_backend_chunk_check (bool encrypt, size_t len, uint32_t chunk_size,
                                         uint64_t index, bool last, const char **why);

/* Sends ["SSW1"][cmd] (to identity first when not NULL: the broker's
   ROUTER), never blocking: 0 / -1 (errno from libzmq).                 */
int cryptod_backend_send_cmd (zsock_t *sock, zframe_t *identity, const char *cmd);
/* W->B ["SSW1"]["READY"][name].                                        */
int cryptod_backend_send_ready (zsock_t *sock, const char *name);

/* B->W [identity]["SSW1"]["REQUEST"][job_id][WorkRequest][blob], never
   blocking. The WorkRequest is packed into a buffer of our own that is
   wiped when libzmq frees it (it holds the DEK); blob is sent by
   reference and stays the caller's (resends need it). 0 / -1.          */
int cryptod_backend_send_request (zsock_t *sock, zframe_t *identity, uint64_t job_id,
                                  const Safeshare__WorkRequest *req, zframe_t *blob);

/* W->B ["SSW1"]["REPLY"][job_id][WorkReply] then the blob if `out` (a
   malloc'd buffer handed to libzmq without a copy and freed -- wiped
   first when `secret` -- whatever happens). 0 / -1.                    */
int cryptod_backend_send_reply (zsock_t *sock, const uint8_t job_id[CRYPTOD_JOB_ID_LEN],
                                const Safeshare__WorkReply *reply, uint8_t *out,
                                size_t out_len, bool secret);

/* Job ids on the wire: 8 bytes, big endian.                           */
void cryptod_backend_job_id_put (uint8_t out[CRYPTOD_JOB_ID_LEN], uint64_t id);
uint64_t cryptod_backend_job_id_get (const uint8_t in[CRYPTOD_JOB_ID_LEN]);

/* A libzmq free callback (zmq_msg_init_data) for a malloc'd buffer of
   (size_t)(uintptr_t)hint bytes: wipes it, then frees it.             */
void cryptod_backend_free_secret (void *data, void *hint);

#endif
