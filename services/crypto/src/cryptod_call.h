/*  cryptod_call -- how the crypto service lets go of requests and
    replies whose frames may hold plaintext (proto/crypto.md, "Wiping").

    Every path that frees such frames goes through here, so the rule
    lives in one place: ENCRYPT request blobs (plaintext chunks) and
    reply blobs (DECRYPT outputs are plaintext) are wiped with
    OPENSSL_cleanse before the frame is freed -- also when a request is
    refused, expires in the queue, is dropped at a stop, or a send
    fails. DECRYPT request blobs are ciphertext: not ours to wipe (left
    to cm_call_release, which today wipes every blob frame as well).

    What this cannot reach: copies inside libzmq (socket and decoder
    buffers, frames of <= 33 bytes carried inline) and the kernel's.   */
#ifndef CRYPTOD_CALL_H
#define CRYPTOD_CALL_H

#include <czmq.h>
#include <stdbool.h>

#include "cm_msg.h"

/* True if the call's blob frames may hold plaintext: every request but
   DECRYPT (a request whose body is unknown may be a garbled ENCRYPT). */
bool cryptod_call_secret (const cm_call_t *call);

/* Wipes and frees the blob frames if cryptod_call_secret, then
   cm_call_release for the rest.                                       */
void cryptod_call_release (cm_call_t *call);

/* Releases a heap-allocated call (as above) and frees it; nulls *call_p. */
void cryptod_call_free (cm_call_t **call_p);

/* Wipes the frame's bytes, then destroys it; nulls *frame_p. NULL-safe. */
void cryptod_frame_destroy_wiped (zframe_t **frame_p);

/* Wipes the bytes of every frame of msg (may be NULL).                */
void cryptod_msg_wipe (zmsg_t *msg);

/* Wipes every frame, then destroys the message; nulls *msg_p.         */
void cryptod_msg_destroy_wiped (zmsg_t **msg_p);

/* Sends every frame of *msg_p (consumed) as one multipart message. If a
   send fails, the frames not handed to libzmq are wiped and freed (czmq's
   zmsg_send would free them unwiped). 0 / -1 (errno from libzmq).      */
int cryptod_msg_send (zmsg_t **msg_p, zsock_t *sock);

#endif
