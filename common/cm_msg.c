/*  cm_msg -- framing, request/reply and zero-copy helpers over czmq.    */
#include "cm_msg.h"
#include "cm_log.h"
#include "cm_util.h"
#include "cm_config.h"
#include "cm_curve.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <libgen.h>
#include <string.h>

static void
s_sock_options (zsock_t *sock, int linger)
{
    zsock_set_maxmsgsize (sock, CM_MAX_MESSAGE);
    zsock_set_rcvhwm (sock, CM_RCVHWM);
    zsock_set_linger (sock, linger);
    /* Never block forever on a full pipe: a send that cannot go out in
       time fails and the caller answers UNAVAILABLE.                   */
    zsock_set_sndtimeo (sock, 1000);
}

zsock_t *
cm_sock_server (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        char dir[4096];
        snprintf (dir, sizeof dir, "%s", endpoint + 6);
        if (cm_mkdirs (dirname (dir), 0700) != 0) {
            cm_error (NULL, "mkdir() for %s failed: %s", endpoint, strerror (errno));
            return NULL;
        }
    }
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    if (!sock) {
        cm_error (NULL, "zsock_new(ROUTER) failed");
        return NULL;
    }
    s_sock_options (sock, 1000);
    if (cm_curve_server_apply (sock) != 0) {
        zsock_destroy (&sock);
        return NULL;
    }
    if (zsock_bind (sock, "%s", endpoint) < 0) {
        cm_error (NULL, "zsock_bind(%s) failed: %s", endpoint,
                  zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        return NULL;
    }
    if (cm_curve_on ()) {
        /* Bound as what (a port chosen by the system, a wildcard).     */
        char *bound = zsock_last_endpoint (sock);
        int rc = cm_curve_self_check (sock, bound ? bound : endpoint, CM_CURVE_CHECK_MS);
        zstr_free (&bound);
        if (rc != 0) {
            zsock_destroy (&sock);
        }
    }
    return sock;
}

zsock_t *
cm_sock_client (const char *endpoint, const char *peer)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock) {
        cm_error (NULL, "zsock_new(DEALER) failed");
        return NULL;
    }
    s_sock_options (sock, 0);
    if (cm_curve_client_apply (sock, peer) != 0) {
        zsock_destroy (&sock);
        return NULL;
    }
    if (zsock_connect (sock, "%s", endpoint) < 0) {
        cm_error (NULL, "zsock_connect(%s) failed: %s", endpoint,
                  zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

zmsg_t *
cm_msg_recv (zsock_t *sock, bool *truncated)
{
    *truncated = false;
    zmsg_t *msg = zmsg_new ();
    size_t frames = 0, bytes = 0;
    bool more = true;
    while (more) {
        zframe_t *frame = zframe_recv (sock);
        if (!frame) {
            zmsg_destroy (&msg);
            return NULL;
        }
        more = zframe_more (frame);
        size_t size = zframe_size (frame);
        if (!*truncated &&
            (frames + 1 > CM_MAX_FRAMES || bytes + size > CM_MAX_MESSAGE)) {
            *truncated = true;
        }
        if (*truncated) {
            zframe_destroy (&frame);
            continue;
        }
        frames++;
        bytes += size;
        zmsg_append (msg, &frame);
    }
    return msg;
}

/* Requests may hold passwords and tokens: what protobuf-c allocates while
   unpacking them is wiped when freed. The size lives in front of each
   block because protobuf-c's free callback is not told it.              */
typedef union {
    size_t size;
    max_align_t align;
} s_wipe_head_t;

static void *
s_wipe_alloc (void *data, size_t size)
{
    (void)data;
    s_wipe_head_t *head = malloc (sizeof *head + size);
    if (!head) {
        return NULL;
    }
    head->size = size;
    return head + 1;
}

static void
s_wipe_free (void *data, void *ptr)
{
    (void)data;
    if (ptr) {
        s_wipe_head_t *head = (s_wipe_head_t *)ptr - 1;
        OPENSSL_cleanse (ptr, head->size);
        free (head);
    }
}

ProtobufCAllocator cm_wipe_allocator = {s_wipe_alloc, s_wipe_free, NULL};

static void
s_frame_wipe_destroy (zframe_t **frame)
{
    if (*frame) {
        OPENSSL_cleanse (zframe_data (*frame), zframe_size (*frame));
        zframe_destroy (frame);
    }
}

void
cm_meta_init (Safeshare__Meta *meta, char reqbuf[65], const char *req_id, int timeout_ms)
{
    safeshare__meta__init (meta);
    meta->version = CM_PROTO_VERSION;
    if (req_id && cm_is_request_id (req_id)) {
        snprintf (reqbuf, 65, "%s", req_id);
    } else if (cm_random_hex (reqbuf, 8) != 0) {
        snprintf (reqbuf, 65, "norandom");
    }
    meta->request_id = reqbuf;
    meta->deadline_ms = timeout_ms > 0 ? cm_now_ms () + (uint64_t)timeout_ms : 0;
}

/* The field with `number` if it has the expected type, else NULL.      */
static const ProtobufCFieldDescriptor *
s_field (const ProtobufCMessageDescriptor *desc, unsigned number, ProtobufCType type)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field (desc, number);
    return f && f->type == type && f->label != PROTOBUF_C_LABEL_REPEATED ? f : NULL;
}

Safeshare__Meta *
cm_msg_meta (const ProtobufCMessage *msg)
{
    const ProtobufCFieldDescriptor *f =
        s_field (msg->descriptor, 1, PROTOBUF_C_TYPE_MESSAGE);
    if (!f || f->descriptor != &safeshare__meta__descriptor) {
        return NULL;
    }
    return *(Safeshare__Meta **)((char *)msg + f->offset);
}

zframe_t *
cm_frame_pack (const ProtobufCMessage *msg)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    zframe_t *frame = zframe_new (NULL, size);
    if (frame && size) {
        protobuf_c_message_pack (msg, zframe_data (frame));
    }
    return frame;
}

/* Moves every frame of *from (destroyed) to the end of to.              */
static void
s_move_frames (zmsg_t *to, zmsg_t **from)
{
    if (!from || !*from) {
        return;
    }
    zframe_t *f;
    while ((f = zmsg_pop (*from))) {
        zmsg_append (to, &f);
    }
    zmsg_destroy (from);
}

cm_status_t
cm_rpc_call (zsock_t *sock, const ProtobufCMessage *request, zmsg_t **blobs,
             const ProtobufCMessageDescriptor *reply_desc, int timeout_ms,
             ProtobufCMessage **reply, zmsg_t **blobs_out)
{
    *reply = NULL;
    if (blobs_out) {
        *blobs_out = NULL;
    }
    Safeshare__Meta *meta = cm_msg_meta (request);
    const char *req_id = meta && meta->request_id ? meta->request_id : "";
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zframe_t *header = cm_frame_pack (request);
    zmsg_append (msg, &header);
    s_move_frames (msg, blobs);
    if (zmsg_send (&msg, sock) != 0) {
        zmsg_destroy (&msg);
        cm_warn (req_id, "zmsg_send() failed: %s", zmq_strerror (zmq_errno ()));
        return CM_UNAVAILABLE;
    }
    uint64_t deadline = cm_mono_ms () + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    while (true) {
        uint64_t now = cm_mono_ms ();
        if (now >= deadline) {
            cm_warn (req_id, "no reply within %d ms", timeout_ms);
            return CM_UNAVAILABLE;
        }
        zmq_pollitem_t item = {zsock_resolve (sock), 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, (long)(deadline - now));
        if (rc < 0 && zmq_errno () == EINTR) {
            continue;
        }
        if (rc <= 0) {
            continue;
        }
        bool truncated;
        zmsg_t *in = cm_msg_recv (sock, &truncated);
        if (!in) {
            continue;
        }
        if (truncated) {
            cm_error (req_id, "oversized reply (over %d frames or %d bytes) dropped",
                      CM_MAX_FRAMES, CM_MAX_MESSAGE);
            zmsg_destroy (&in);
            return CM_INTERNAL;
        }
        zframe_t *delim = zmsg_pop (in);
        zframe_t *head = zmsg_pop (in);
        ProtobufCMessage *r = NULL;
        if (delim && zframe_size (delim) == 0 && head &&
            zframe_size (head) <= CM_MAX_HEADER) {
            r = protobuf_c_message_unpack (reply_desc, NULL, zframe_size (head),
                                           zframe_data (head));
        }
        zframe_destroy (&delim);
        zframe_destroy (&head);
        Safeshare__Meta *rmeta = r ? cm_msg_meta (r) : NULL;
        if (!r || !rmeta) {
            cm_error (req_id, "malformed reply dropped");
            if (r) {
                protobuf_c_message_free_unpacked (r, NULL);
            }
            zmsg_destroy (&in);
            return CM_INTERNAL;
        }
        if (!rmeta->request_id || strcmp (rmeta->request_id, req_id) != 0) {
            /* A late reply to an earlier call that timed out. */
            cm_debug (req_id, "stale reply for req=%s dropped",
                      rmeta->request_id ? rmeta->request_id : "");
            protobuf_c_message_free_unpacked (r, NULL);
            zmsg_destroy (&in);
            continue;
        }
        *reply = r;
        if (blobs_out) {
            *blobs_out = in;
        } else {
            zmsg_destroy (&in);
        }
        return CM_OK;
    }
}

/* The name of the oneof field set in msg ("none" if none): every
   request envelope has one oneof, its body.                          */
static const char *
s_body_name (const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)((const char *)msg + f->quantifier_offset) == f->id) {
            return f->name;
        }
    }
    return "none";
}

int
cm_call_recv (zsock_t *router, const ProtobufCMessageDescriptor *request_desc,
              const ProtobufCMessageDescriptor *reply_desc, cm_call_t *call)
{
    memset (call, 0, sizeof *call);
    bool truncated;
    zmsg_t *msg = cm_msg_recv (router, &truncated);
    if (!msg) {
        return -1;
    }
    /* Envelope: routing frames up to and including the empty delimiter
       (several when a broker sits in between).                          */
    call->envelope = zmsg_new ();
    bool delimited = false;
    for (int i = 0; i < 8 && zmsg_size (msg) > 0; i++) {
        zframe_t *f = zmsg_pop (msg);
        bool empty = zframe_size (f) == 0;
        zmsg_append (call->envelope, &f);
        if (empty) {
            delimited = true;
            break;
        }
    }
    if (!delimited) {
        cm_warn (NULL, "message without an envelope delimiter dropped");
        zmsg_destroy (&msg);
        cm_call_release (call);
        return -1;
    }
    zframe_t *head = zmsg_pop (msg);
    call->blobs = msg;
    if (truncated) {
        s_frame_wipe_destroy (&head);
        cm_warn (NULL, "oversized message (over %d frames or %d bytes) dropped",
                 CM_MAX_FRAMES, CM_MAX_MESSAGE);
        cm_call_reply_error (router, call, reply_desc, CM_INVALID, "message_too_large",
                             "message over the frame or byte limit");
        cm_call_release (call);
        return -1;
    }
    if (!head || zframe_size (head) > CM_MAX_HEADER) {
        s_frame_wipe_destroy (&head);
        cm_warn (NULL, "missing or oversized header frame");
        cm_call_reply_error (router, call, reply_desc, CM_INVALID, "malformed_header",
                             "missing or oversized header frame");
        cm_call_release (call);
        return -1;
    }
    call->request = protobuf_c_message_unpack (request_desc, &cm_wipe_allocator,
                                               zframe_size (head), zframe_data (head));
    s_frame_wipe_destroy (&head);
    Safeshare__Meta *meta = call->request ? cm_msg_meta (call->request) : NULL;
    const char *why = NULL, *code = NULL;
    cm_status_t status = CM_INVALID;
    if (!call->request) {
        code = "malformed_header", why = "header frame is not a valid message";
    } else if (!meta) {
        code = "missing_meta", why = "header has no meta";
    } else if (!cm_is_request_id (meta->request_id)) {
        code = "invalid_request_id", why = "request id must be 1..64 of [A-Za-z0-9._-]";
    } else if (meta->version != CM_PROTO_VERSION) {
        status = CM_UNSUPPORTED;
        code = "unsupported_version", why = "unsupported protocol version";
        cm_error (meta->request_id, "peer speaks protocol version %u, we speak %d",
                  meta->version, CM_PROTO_VERSION);
    }
    if (why) {
        if (meta && cm_is_request_id (meta->request_id)) {
            snprintf (call->req_id, sizeof call->req_id, "%s", meta->request_id);
        }
        cm_warn (call->req_id, "bad request: %s", why);
        cm_call_reply_error (router, call, reply_desc, status, code, why);
        cm_call_release (call);
        return -1;
    }
    snprintf (call->req_id, sizeof call->req_id, "%s", meta->request_id);
    call->deadline_ms = meta->deadline_ms;
    call->start_ms = cm_mono_ms ();
    call->body = s_body_name (call->request);
    return 0;
}

void
cm_call_release (cm_call_t *call)
{
    zmsg_destroy (&call->envelope);
    if (call->blobs) {
        zframe_t *f;
        while ((f = zmsg_pop (call->blobs))) {
            s_frame_wipe_destroy (&f);
        }
        zmsg_destroy (&call->blobs);
    }
    if (call->request) {
        protobuf_c_message_free_unpacked (call->request, &cm_wipe_allocator);
        call->request = NULL;
    }
}

bool
cm_call_expired (const cm_call_t *call)
{
    return call->deadline_ms != 0 && cm_now_ms () > call->deadline_ms;
}

int
cm_call_reply (zsock_t *router, cm_call_t *call, ProtobufCMessage *reply, zmsg_t **blobs)
{
    if (!call->envelope) {
        zmsg_destroy (blobs);
        return -1; /* already answered */
    }
    const ProtobufCFieldDescriptor *f =
        s_field (reply->descriptor, 1, PROTOBUF_C_TYPE_MESSAGE);
    Safeshare__Meta meta;
    safeshare__meta__init (&meta);
    meta.version = CM_PROTO_VERSION;
    meta.request_id = call->req_id;
    Safeshare__Meta **slot = f ? (Safeshare__Meta **)((char *)reply + f->offset) : NULL;
    Safeshare__Meta *saved = slot ? *slot : NULL;
    if (slot) {
        *slot = &meta;
    }
    zframe_t *head = cm_frame_pack (reply);
    if (slot) {
        *slot = saved;
    }
    if (call->start_ms) {
        /* One line per request, in every service: its id is how a
           request is followed from the gateway through the services. */
        const ProtobufCFieldDescriptor *fs =
            s_field (reply->descriptor, 2, PROTOBUF_C_TYPE_ENUM);
        cm_status_t status =
            fs ? (cm_status_t) * (const int *)((const char *)reply + fs->offset) : CM_OK;
        cm_log (strcmp (call->body, "health") == 0 ? CM_LOG_DEBUG : CM_LOG_INFO,
                call->req_id, "%s status=%s ms=%llu", call->body, cm_status_name (status),
                (unsigned long long)(cm_mono_ms () - call->start_ms));
    }
    zmsg_t *msg = call->envelope;
    call->envelope = NULL;
    zmsg_append (msg, &head);
    s_move_frames (msg, blobs);
    if (zmsg_send (&msg, router) != 0) {
        zmsg_destroy (&msg);
        cm_warn (call->req_id, "zmsg_send() of reply failed: %s",
                 zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

int
cm_call_reply_error (zsock_t *router, cm_call_t *call,
                     const ProtobufCMessageDescriptor *reply_desc, cm_status_t status,
                     const char *code, const char *message)
{
    const ProtobufCFieldDescriptor *fs = s_field (reply_desc, 2, PROTOBUF_C_TYPE_ENUM);
    const ProtobufCFieldDescriptor *fe = s_field (reply_desc, 3, PROTOBUF_C_TYPE_MESSAGE);
    if (!fs || !fe || fe->descriptor != &safeshare__error__descriptor) {
        cm_error (call->req_id, "%s has no status/error fields", reply_desc->name);
        return -1;
    }
    ProtobufCMessage *reply = calloc (1, reply_desc->sizeof_message);
    if (!reply) {
        return -1;
    }
    protobuf_c_message_init (reply_desc, reply);
    Safeshare__Error error;
    safeshare__error__init (&error);
    error.code = (char *)(code ? code : cm_status_code (status));
    error.message = (char *)(message ? message : "");
    *(int *)((char *)reply + fs->offset) = (int)status;
    *(Safeshare__Error **)((char *)reply + fe->offset) = &error;
    int rc = cm_call_reply (router, call, reply, NULL);
    free (reply);
    return rc;
}

int
cm_msg_send_zc (zsock_t *sock, zmsg_t **msg, void *data, size_t len, cm_free_fn *ffn,
                void *hint)
{
    void *handle = zsock_resolve (sock);
    if (msg && *msg) {
        zframe_t *f;
        while ((f = zmsg_pop (*msg))) {
            if (zframe_send (&f, sock, ZFRAME_MORE) != 0) {
                zframe_destroy (&f);
                zmsg_destroy (msg);
                ffn (data, hint);
                return -1;
            }
        }
        zmsg_destroy (msg);
    }
    zmq_msg_t zm;
    if (zmq_msg_init_data (&zm, data, len, ffn, hint) != 0) {
        ffn (data, hint);
        return -1;
    }
    if (zmq_msg_send (&zm, handle, 0) < 0) {
        zmq_msg_close (&zm); /* calls ffn */
        return -1;
    }
    return 0;
}
