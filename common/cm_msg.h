/*  cm_msg -- the wire helpers every service and client uses (DESIGN §3).

    A message on a service's ROUTER socket is
        [identity][empty][header][blob]*
    and on a caller's DEALER socket
        [empty][header][blob]*
    The header frame is one protobuf message whose field 1 is `Meta meta`
    (replies: field 2 `Status status`, field 3 `Error error`). Blob frames
    carry bulk bytes and are moved, never copied.                         */
#ifndef CM_MSG_H
#define CM_MSG_H

#include <czmq.h>
#include <protobuf-c/protobuf-c.h>
#include "cm_status.h"

#define CM_PROTO_VERSION 1
/* Header frames larger than this are refused as INVALID. */
#define CM_MAX_HEADER (64 * 1024)
/* A frame larger than this is dropped by libzmq (ZMQ_MAXMSGSIZE, which
   bounds each frame, not the message); cm_msg_recv bounds the whole
   message to this many bytes and CM_MAX_FRAMES frames.                 */
#define CM_MAX_MESSAGE (64 * 1024 * 1024)
#define CM_MAX_FRAMES  16
/* Messages queued per peer before senders see back-pressure. */
#define CM_RCVHWM 64

/* ---- sockets -------------------------------------------------------- */
/* ROUTER bound to endpoint (creates the ipc:// directory if needed),
   ZMQ_MAXMSGSIZE set, linger 1 s. With CURVE on (cm_curve) a CURVE
   server whose refusal of an unknown key is checked after the bind
   (cm_curve_self_check). NULL on failure (logged).                     */
zsock_t *cm_sock_server (const char *endpoint);
/* DEALER connected to endpoint, same options. With CURVE on, a CURVE
   client of the service `peer` ("auth", "crypto", "storage", "mailer":
   its key is SAFESHARE_CURVE_PUBLIC_DIR/<peer>.key); ignored when off.
   NULL on failure (logged).                                            */
zsock_t *cm_sock_client (const char *endpoint, const char *peer);

/* Receives one message frame by frame, keeping at most CM_MAX_FRAMES
   frames and CM_MAX_MESSAGE bytes; the rest of a larger message is read
   and dropped as it comes (never held) and *truncated is set, the kept
   frames (routing envelope first) still returned so it can be answered.
   NULL on a receive error or interrupt.                                */
zmsg_t *cm_msg_recv (zsock_t *sock, bool *truncated);

/* ---- meta ----------------------------------------------------------- */
/* Fills meta with the protocol version, request id (copied into buf of
   65 bytes owned by the caller; generated if req_id is NULL) and a
   deadline timeout_ms from now (0: no deadline).                       */
void cm_meta_init (Safeshare__Meta *meta, char reqbuf[65], const char *req_id,
                   int timeout_ms);
/* Borrowed pointer to field 1 (Meta) of any of our messages, or NULL.  */
Safeshare__Meta *cm_msg_meta (const ProtobufCMessage *msg);

/* ---- caller side (DEALER) ------------------------------------------- */
/* Sends `request` (packed; not consumed) followed by the frames of
   *blobs (consumed, may be NULL), then waits for the reply carrying the
   same request id, dropping stale replies, at most timeout_ms.
   On success returns CM_OK and sets *reply (free with
   protobuf_c_message_free_unpacked) and *blobs_out (the reply's blob
   frames, maybe empty; may be NULL if the caller expects none).
   Transport failure/timeout: CM_UNAVAILABLE; malformed reply: CM_INTERNAL.
   The status inside *reply is the service's answer.                    */
cm_status_t cm_rpc_call (zsock_t *sock, const ProtobufCMessage *request, zmsg_t **blobs,
                         const ProtobufCMessageDescriptor *reply_desc, int timeout_ms,
                         ProtobufCMessage **reply, zmsg_t **blobs_out);

/* ---- service side (ROUTER) ------------------------------------------ */
typedef struct {
    zmsg_t *envelope;          /* [identity][empty], kept for the reply  */
    ProtobufCMessage *request; /* unpacked header (request_desc)         */
    zmsg_t *blobs;             /* remaining frames, owned                */
    char req_id[65];           /* copied from meta, for logs             */
    uint64_t start_ms;         /* cm_mono_ms at receipt; 0: invalid      */
    const char *body;          /* the request body's name, static        */
    uint64_t deadline_ms;
} cm_call_t;

/* Receives one message from a ROUTER socket. Returns 0 with *call filled
   (release with cm_call_release, which wipes the request and any blob
   frames still held: they may be passwords or plaintext). A malformed
   or oversized message (bad envelope,
   oversized/garbled header, missing meta, unknown major version) is
   answered with an INVALID/UNSUPPORTED reply of `reply_desc` shape when
   an envelope exists, logged, and -1 is returned: the caller just loops. */
int cm_call_recv (zsock_t *router, const ProtobufCMessageDescriptor *request_desc,
                  const ProtobufCMessageDescriptor *reply_desc, cm_call_t *call);
void cm_call_release (cm_call_t *call);
/* True if the caller's deadline has passed (the reply would be dropped). */
bool cm_call_expired (const cm_call_t *call);

/* Sends `reply` (its meta is filled from the call: version, request id)
   plus *blobs (consumed, may be NULL) to the call's peer, and logs one
   line with the request id: "<body> status=<S> ms=<N>" (info; debug for
   health, which probes send all the time). The envelope
   stays in the call (released by cm_call_release). 0 / -1.            */
int cm_call_reply (zsock_t *router, cm_call_t *call, ProtobufCMessage *reply,
                   zmsg_t **blobs);
/* Replies with only status + error (any reply shape with the standard
   fields 1..3). code may be NULL for the status default.               */
int cm_call_reply_error (zsock_t *router, cm_call_t *call,
                         const ProtobufCMessageDescriptor *reply_desc, cm_status_t status,
                         const char *code, const char *message);

/* Zero-copy: appends a frame that references `data` (freed by `ffn(data,
   hint)` when libzmq is done with it) to msg -- used where our own buffers
   (e.g. a ciphertext chunk) go out without a copy. The frame is sent with
   cm_msg_send_raw below because czmq 4.2.1 has no zframe_frommem.      */
typedef void (cm_free_fn) (void *data, void *hint);
/* Sends every frame of *msg (consumed) with SNDMORE, then `data` as the
   final zero-copy frame. 0 / -1.                                        */
int cm_msg_send_zc (zsock_t *sock, zmsg_t **msg, void *data, size_t len, cm_free_fn *ffn,
                    void *hint);

/* protobuf-c allocator whose free wipes each block (OPENSSL_cleanse)
   before freeing it: for unpacking messages that carry secrets
   (passwords, tokens, a DEK).                                          */
extern ProtobufCAllocator cm_wipe_allocator;

/* Packs a protobuf message into a new frame. */
zframe_t *cm_frame_pack (const ProtobufCMessage *msg);

#endif
