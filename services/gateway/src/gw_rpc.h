/*  gw_rpc -- one civetweb worker thread's connections to the services:
    a DEALER per service, created on first use, owned by that thread
    only (never shared). A call that times out drops and recreates its
    socket (Lazy Pirate), so a late reply or a queued request to a dead
    service never leaks into the next call. Calls are one at a time
    (gw_rpc_call) or several out at once (gw_rpc_send / gw_rpc_recv,
    driven by gw_window), each with its own wire id.                   */
#ifndef GW_RPC_H
#define GW_RPC_H

#include <stdbool.h>
#include <stdint.h>
#include "cm_msg.h"
#include "gw_settings.h"

typedef struct gw_rpc_t gw_rpc_t;
typedef struct gw_metrics_t gw_metrics_t;

/* Borrows settings (must outlive the object). NULL on failure. */
gw_rpc_t *gw_rpc_new (const gw_settings_t *settings);
void gw_rpc_destroy (gw_rpc_t **self_p);

/* Round trips of gw_rpc_call and of gw_rpc_send..recv pairs go to
   metrics (borrowed, shared by every thread; NULL: none).             */
void gw_rpc_set_metrics (gw_rpc_t *self, gw_metrics_t *metrics);

/* Calls svc: fills request's Meta (field 1 must point at a Meta struct)
   with a wire id (see gw_rpc_wire_id) and a deadline timeout_ms from now
   (<= 0: the configured SAFESHARE_RPC_TIMEOUT_MS), keeping the caller's
   Meta.client_addr (borrowed; NULL = ""), sends it plus *blobs (consumed, may be NULL)
   and waits for the reply. As cm_rpc_call: CM_OK with *reply (free with
   protobuf_c_message_free_unpacked) and *blobs_out (may be NULL when no
   frames are expected, else always set, maybe empty); CM_UNAVAILABLE on
   timeout / transport failure; CM_INTERNAL on a malformed reply.
   The service's own answer is gw_rpc_status (*reply).                 */
cm_status_t gw_rpc_call (gw_rpc_t *self, gw_svc_t svc, const char *req_id,
                         ProtobufCMessage *request, zmsg_t **blobs,
                         const ProtobufCMessageDescriptor *reply_desc, int timeout_ms,
                         ProtobufCMessage **reply, zmsg_t **blobs_out);

/* ---- several calls out at once (gw_window) --------------------------
   gw_rpc_call's socket is shared: while calls sent with gw_rpc_send are
   out on svc, make no gw_rpc_call on svc (it would drop their replies
   as stale). Every drop of svc's socket (a timeout, a transport error,
   gw_rpc_drop) bumps gw_rpc_epoch (svc): calls sent before it are lost. */

/* Sends request like gw_rpc_call (Meta filled, *blobs consumed) without
   waiting; its wire id is copied to wire. CM_OK, or CM_UNAVAILABLE
   (socket dropped) / CM_INTERNAL (no meta).                           */
cm_status_t gw_rpc_send (gw_rpc_t *self, gw_svc_t svc, const char *req_id,
                         ProtobufCMessage *request, zmsg_t **blobs, int timeout_ms,
                         char wire[65]);

/* Receives the next reply on svc's socket, waiting until deadline_ms
   (cm_mono_ms clock; a past deadline takes only what already arrived).
   1: *reply (free with protobuf_c_message_free_unpacked; the caller
   matches its Meta.request_id) and *blobs (maybe empty) set; 0: nothing
   by the deadline (the socket is kept: the caller decides); -1: a
   transport error or malformed reply, *rc says which, socket dropped. */
int gw_rpc_recv (gw_rpc_t *self, gw_svc_t svc, const char *req_id,
                 const ProtobufCMessageDescriptor *reply_desc, uint64_t deadline_ms,
                 ProtobufCMessage **reply, zmsg_t **blobs, cm_status_t *rc);

/* Drops svc's socket (Lazy Pirate: whatever is still out on it can then
   never be read by a later call); the next call makes a fresh one.    */
void gw_rpc_drop (gw_rpc_t *self, gw_svc_t svc);

/* How many times svc's socket was dropped on this thread.             */
uint64_t gw_rpc_epoch (gw_rpc_t *self, gw_svc_t svc);

/* SAFESHARE_RPC_TIMEOUT_MS: a call's timeout when it names none.      */
int gw_rpc_timeout_ms (gw_rpc_t *self);

/* The Meta.request_id of one call: req_id cut so that the whole fits 64
   chars, "." and seq in decimal -- unique per call on a thread's
   sockets (a late reply never pairs with a later call), still starting
   with the HTTP request id that the services log. buf: 65 bytes.      */
void gw_rpc_wire_id (char buf[65], const char *req_id, uint64_t seq);

/* Status (field 2) and error code/message (field 3) of any reply; code
   and message are borrowed from reply, NULL when absent.              */
cm_status_t gw_rpc_status (const ProtobufCMessage *reply, const char **code,
                           const char **message);
/* Error.retry_after_s of any reply (0 when absent): the wait a
   RATE_LIMITED answer asks for, sent as HTTP Retry-After.             */
uint32_t gw_rpc_retry_after (const ProtobufCMessage *reply);

/* HEALTH to every service at once, waiting at most timeout_ms overall.
   ok[i] / latency_ms[i] per gw_svc_t.                                  */
void gw_rpc_health_all (gw_rpc_t *self, const char *req_id, int timeout_ms,
                        bool ok[GW_SVC_COUNT], uint64_t latency_ms[GW_SVC_COUNT]);

#endif
