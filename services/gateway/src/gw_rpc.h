/*  gw_rpc -- one civetweb worker thread's connections to the services:
    a DEALER per service, created on first use, owned by that thread
    only (never shared). A call that times out drops and recreates its
    socket (Lazy Pirate), so a late reply or a queued request to a dead
    service never leaks into the next call.                            */
#ifndef GW_RPC_H
#define GW_RPC_H

#include <stdbool.h>
#include <stdint.h>
#include "cm_msg.h"
#include "gw_settings.h"

typedef struct gw_rpc_t gw_rpc_t;

/* Borrows settings (must outlive the object). NULL on failure. */
gw_rpc_t *gw_rpc_new (const gw_settings_t *settings);
void gw_rpc_destroy (gw_rpc_t **self_p);

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
