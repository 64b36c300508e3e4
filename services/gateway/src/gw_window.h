/*  gw_window -- up to `size` calls of one transfer out at once on one
    service's socket of the calling thread (the chunks of an upload or a
    download at crypto, SAFESHARE_CRYPTO_WINDOW), handed back in the
    order they were sent whatever order their replies come in: each
    reply is matched to its call by its wire id (gw_rpc_wire_id), a reply
    that matches no call out (a late one of an earlier call) is dropped.

    Each call has its own deadline (the RPC timeout from its send). When
    the oldest call's deadline passes without its reply, or the socket
    fails, the socket is dropped (gw_rpc_drop) and every call out fails
    with it: the window is then failed for good. Destroying a window with
    calls still out drops the socket too, so that no reply of an
    abandoned transfer can reach a later call on this thread.

    Memory: the replies that came in ahead of an older call wait here
    (at most size - 1 of them); calls are never resent.                 */
#ifndef GW_WINDOW_H
#define GW_WINDOW_H

#include <stdbool.h>
#include <stdint.h>
#include "gw_rpc.h"

typedef struct gw_window_t gw_window_t;

/* Borrows rpc (the calling thread's) and reply_desc; req_id is copied.
   size: 1..GW_CRYPTO_WINDOW_MAX. NULL on bad arguments.               */
gw_window_t *gw_window_new (gw_rpc_t *rpc, gw_svc_t svc, const char *req_id,
                            unsigned size, const ProtobufCMessageDescriptor *reply_desc);
/* Drops the service's socket if calls are still out; wipes the blob
   frames of replies not taken (they may be plaintext).                */
void gw_window_destroy (gw_window_t **self_p);

/* Calls sent and not yet taken with gw_window_next.                   */
unsigned gw_window_pending (gw_window_t *self);
/* True when `size` calls are out: take the oldest before sending more. */
bool gw_window_full (gw_window_t *self);

/* Sends request (its Meta filled as gw_rpc_call does, *blobs consumed)
   with `tag`, a number of the caller's handed back with the reply (say
   the chunk's length). CM_OK; else the window has failed (full window,
   transport error: CM_UNAVAILABLE, every call out lost).              */
cm_status_t gw_window_send (gw_window_t *self, ProtobufCMessage *request, zmsg_t **blobs,
                            uint64_t tag);

/* The oldest call's reply. wait: until it comes or its deadline passes;
   !wait: only if it is already here (replies that arrived are read
   either way). 1: *reply (free with protobuf_c_message_free_unpacked;
   its status is the service's answer, see gw_rpc_status), *blobs
   (maybe empty) and *tag set; 0: no call out, or (!wait) its reply is
   not here yet; -1: the window failed, *rc = CM_UNAVAILABLE (timeout,
   transport) or CM_INTERNAL (malformed reply).                        */
int gw_window_next (gw_window_t *self, bool wait, ProtobufCMessage **reply,
                    zmsg_t **blobs, uint64_t *tag, cm_status_t *rc);

/* The most calls that were out at once (tests, logs).                 */
unsigned gw_window_peak (gw_window_t *self);

#endif
