/*  gw_rpc -- a worker thread's service connections (see gw_rpc.h).      */
#include "gw_rpc.h"
#include "gw_metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "auth.pb-c.h"
#include "crypto.pb-c.h"
#include "mailer.pb-c.h"
#include "storage.pb-c.h"
#include "cm_log.h"
#include "cm_util.h"

#define S_SENT_SLOTS (2 * GW_CRYPTO_WINDOW_MAX)

struct gw_rpc_t {
    const gw_settings_t *settings;
    zsock_t *socks[GW_SVC_COUNT];  /* NULL until first use */
    uint64_t seq;                  /* calls made, for wire ids */
    uint64_t epochs[GW_SVC_COUNT]; /* socket drops, see gw_rpc_epoch */
    gw_metrics_t *metrics;         /* borrowed; NULL: not measured */
    /* gw_rpc_send times by wire seq, for the round trip at gw_rpc_recv:
       a window holds at most GW_CRYPTO_WINDOW_MAX calls out at once.   */
    uint64_t sent_seq[S_SENT_SLOTS];
    uint64_t sent_us[S_SENT_SLOTS];
};

void
gw_rpc_wire_id (char buf[65], const char *req_id, uint64_t seq)
{
    char suffix[24];
    int slen = snprintf (suffix, sizeof suffix, ".%llu", (unsigned long long)seq);
    size_t keep = req_id && cm_is_request_id (req_id) ? strlen (req_id) : 0;
    if (keep > 64 - (size_t)slen) {
        keep = 64 - (size_t)slen;
    }
    memcpy (buf, keep ? req_id : "", keep);
    memcpy (buf + keep, suffix, (size_t)slen + 1);
}

gw_rpc_t *
gw_rpc_new (const gw_settings_t *settings)
{
    gw_rpc_t *self = calloc (1, sizeof *self);
    if (self) {
        self->settings = settings;
    }
    return self;
}

void
gw_rpc_set_metrics (gw_rpc_t *self, gw_metrics_t *metrics)
{
    self->metrics = metrics;
}

/* The seq a wire id ends with (".N"), 0 if none. */
static uint64_t
s_wire_seq (const char *wire)
{
    const char *dot = wire ? strrchr (wire, '.') : NULL;
    return dot ? strtoull (dot + 1, NULL, 10) : 0;
}

void
gw_rpc_destroy (gw_rpc_t **self_p)
{
    if (self_p && *self_p) {
        gw_rpc_t *self = *self_p;
        for (int i = 0; i < GW_SVC_COUNT; i++) {
            zsock_destroy (&self->socks[i]);
        }
        free (self);
        *self_p = NULL;
    }
}

static zsock_t *
s_sock (gw_rpc_t *self, gw_svc_t svc)
{
    if (self->socks[svc] == NULL) {
        self->socks[svc] =
            cm_sock_client (self->settings->endpoints[svc], gw_svc_name (svc));
    }
    return self->socks[svc];
}

/* Lazy Pirate: after a failed call the socket may hold a queued request or
   receive a late reply; a fresh socket starts clean.                   */
static void
s_reset (gw_rpc_t *self, gw_svc_t svc)
{
    zsock_destroy (&self->socks[svc]);
    self->epochs[svc]++;
    /* Every failed call (timeout, transport, a window given up) ends here. */
    gw_metrics_rpc (self->metrics, svc, 0, false);
}

void
gw_rpc_drop (gw_rpc_t *self, gw_svc_t svc)
{
    s_reset (self, svc);
}

uint64_t
gw_rpc_epoch (gw_rpc_t *self, gw_svc_t svc)
{
    return self->epochs[svc];
}

int
gw_rpc_timeout_ms (gw_rpc_t *self)
{
    return self->settings->rpc_timeout_ms;
}

/* Starts the request's Meta afresh with the next wire id, written to
   wire (a request id itself: cm_meta_init keeps it as it is). The
   caller's client address (auth's throttling and audit) is carried
   across cm_meta_init. The caller unhooks meta->request_id before wire
   goes out of scope.                                                  */
static void
s_meta_start (gw_rpc_t *self, Safeshare__Meta *meta, char wire[65], const char *req_id,
              int timeout_ms)
{
    char id[65];
    gw_rpc_wire_id (id, req_id, ++self->seq);
    char *client_addr = meta->client_addr;
    cm_meta_init (meta, wire, id, timeout_ms);
    if (client_addr) {
        meta->client_addr = client_addr;
    }
}

cm_status_t
gw_rpc_call (gw_rpc_t *self, gw_svc_t svc, const char *req_id, ProtobufCMessage *request,
             zmsg_t **blobs, const ProtobufCMessageDescriptor *reply_desc, int timeout_ms,
             ProtobufCMessage **reply, zmsg_t **blobs_out)
{
    *reply = NULL;
    if (blobs_out) {
        *blobs_out = NULL;
    }
    if (timeout_ms <= 0) {
        timeout_ms = self->settings->rpc_timeout_ms;
    }
    Safeshare__Meta *meta = cm_msg_meta (request);
    zsock_t *sock = s_sock (self, svc);
    if (meta == NULL || sock == NULL) {
        zmsg_destroy (blobs);
        cm_error (req_id, "gw_rpc_call(%s) failed: %s", gw_svc_name (svc),
                  meta ? "no socket" : "request has no meta");
        return meta ? CM_UNAVAILABLE : CM_INTERNAL;
    }
    char reqbuf[65];
    s_meta_start (self, meta, reqbuf, req_id, timeout_ms);
    uint64_t start = gw_metrics_now_us ();
    cm_status_t rc =
        cm_rpc_call (sock, request, blobs, reply_desc, timeout_ms, reply, blobs_out);
    if (rc == CM_OK) {
        gw_metrics_rpc (self->metrics, svc, gw_metrics_now_us () - start, true);
    }
    meta->request_id = NULL; /* reqbuf goes out of scope */
    if (rc != CM_OK) {
        cm_warn (req_id, "call to %s failed: %s wire=%s", gw_svc_name (svc),
                 cm_status_name (rc), reqbuf);
        s_reset (self, svc);
    }
    return rc;
}

cm_status_t
gw_rpc_send (gw_rpc_t *self, gw_svc_t svc, const char *req_id, ProtobufCMessage *request,
             zmsg_t **blobs, int timeout_ms, char wire[65])
{
    wire[0] = '\0';
    if (timeout_ms <= 0) {
        timeout_ms = self->settings->rpc_timeout_ms;
    }
    Safeshare__Meta *meta = cm_msg_meta (request);
    zsock_t *sock = meta ? s_sock (self, svc) : NULL;
    if (sock == NULL) {
        zmsg_destroy (blobs);
        cm_error (req_id, "gw_rpc_send(%s) failed: %s", gw_svc_name (svc),
                  meta ? "no socket" : "request has no meta");
        return meta ? CM_UNAVAILABLE : CM_INTERNAL;
    }
    s_meta_start (self, meta, wire, req_id, timeout_ms);
    self->sent_seq[self->seq % S_SENT_SLOTS] = self->seq;
    self->sent_us[self->seq % S_SENT_SLOTS] = gw_metrics_now_us ();
    zframe_t *header = cm_frame_pack (request);
    meta->request_id = NULL; /* wire is the caller's */
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zmsg_append (msg, &header);
    /* The blob frames move on as they are (never copied). */
    zframe_t *f;
    while (blobs && *blobs && (f = zmsg_pop (*blobs))) {
        zmsg_append (msg, &f);
    }
    zmsg_destroy (blobs);
    if (zmsg_send (&msg, sock) != 0) {
        cm_warn (req_id, "zmsg_send() to %s failed: %s wire=%s", gw_svc_name (svc),
                 zmq_strerror (zmq_errno ()), wire);
        zmsg_destroy (&msg);
        s_reset (self, svc);
        return CM_UNAVAILABLE;
    }
    return CM_OK;
}

int
gw_rpc_recv (gw_rpc_t *self, gw_svc_t svc, const char *req_id,
             const ProtobufCMessageDescriptor *reply_desc, uint64_t deadline_ms,
             ProtobufCMessage **reply, zmsg_t **blobs, cm_status_t *rc)
{
    *reply = NULL;
    *blobs = NULL;
    *rc = CM_OK;
    zsock_t *sock = self->socks[svc];
    if (sock == NULL) {
        /* Nothing can be out on a socket that does not exist. */
        *rc = CM_UNAVAILABLE;
        return -1;
    }
    while (true) {
        uint64_t now = cm_mono_ms ();
        long wait = deadline_ms > now ? (long)(deadline_ms - now) : 0;
        zmq_pollitem_t item = {zsock_resolve (sock), 0, ZMQ_POLLIN, 0};
        int n = zmq_poll (&item, 1, wait);
        if (n < 0 && zmq_errno () == EINTR) {
            continue;
        }
        if (n < 0) {
            cm_warn (req_id, "zmq_poll() on %s failed: %s", gw_svc_name (svc),
                     zmq_strerror (zmq_errno ()));
            *rc = CM_UNAVAILABLE;
            break;
        }
        if (n == 0) {
            return 0;
        }
        bool truncated = false;
        zmsg_t *in = cm_msg_recv (sock, &truncated);
        if (in == NULL) {
            continue;
        }
        zframe_t *delim = zmsg_pop (in);
        zframe_t *head = zmsg_pop (in);
        ProtobufCMessage *r = NULL;
        if (!truncated && delim && zframe_size (delim) == 0 && head &&
            zframe_size (head) <= CM_MAX_HEADER) {
            r = protobuf_c_message_unpack (reply_desc, NULL, zframe_size (head),
                                           zframe_data (head));
        }
        zframe_destroy (&delim);
        zframe_destroy (&head);
        if (r == NULL || cm_msg_meta (r) == NULL) {
            cm_error (req_id, "malformed%s reply from %s dropped",
                      truncated ? " (oversized)" : "", gw_svc_name (svc));
            if (r) {
                protobuf_c_message_free_unpacked (r, NULL);
            }
            zmsg_destroy (&in);
            *rc = CM_INTERNAL;
            break;
        }
        uint64_t seq = s_wire_seq (cm_msg_meta (r)->request_id);
        if (seq && self->sent_seq[seq % S_SENT_SLOTS] == seq) {
            gw_metrics_rpc (self->metrics, svc,
                            gw_metrics_now_us () - self->sent_us[seq % S_SENT_SLOTS],
                            true);
            self->sent_seq[seq % S_SENT_SLOTS] = 0; /* a duplicate is not timed twice */
        }
        *reply = r;
        *blobs = in;
        return 1;
    }
    s_reset (self, svc);
    return -1;
}

cm_status_t
gw_rpc_status (const ProtobufCMessage *reply, const char **code, const char **message)
{
    if (code) {
        *code = NULL;
    }
    if (message) {
        *message = NULL;
    }
    const ProtobufCMessageDescriptor *desc = reply->descriptor;
    const ProtobufCFieldDescriptor *fs =
        protobuf_c_message_descriptor_get_field (desc, 2);
    const ProtobufCFieldDescriptor *fe =
        protobuf_c_message_descriptor_get_field (desc, 3);
    if (fs == NULL || fs->type != PROTOBUF_C_TYPE_ENUM) {
        return CM_INTERNAL;
    }
    cm_status_t status = (cm_status_t) * (const int *)((const char *)reply + fs->offset);
    if (fe && fe->type == PROTOBUF_C_TYPE_MESSAGE &&
        fe->descriptor == &safeshare__error__descriptor) {
        const Safeshare__Error *err =
            *(Safeshare__Error *const *)((const char *)reply + fe->offset);
        if (err) {
            if (code && err->code && *err->code) {
                *code = err->code;
            }
            if (message && err->message && *err->message) {
                *message = err->message;
            }
        }
    }
    return status;
}

uint32_t
gw_rpc_retry_after (const ProtobufCMessage *reply)
{
    const ProtobufCFieldDescriptor *fe =
        protobuf_c_message_descriptor_get_field (reply->descriptor, 3);
    if (fe == NULL || fe->type != PROTOBUF_C_TYPE_MESSAGE ||
        fe->descriptor != &safeshare__error__descriptor) {
        return 0;
    }
    const Safeshare__Error *err =
        *(Safeshare__Error *const *)((const char *)reply + fe->offset);
    return err ? err->retry_after_s : 0;
}

void
gw_rpc_health_all (gw_rpc_t *self, const char *req_id, int timeout_ms,
                   bool ok[GW_SVC_COUNT], uint64_t latency_ms[GW_SVC_COUNT])
{
    /* Each protocol has its own envelope type; HEALTH is field 10 in all. */
    Safeshare__HealthRequest health = SAFESHARE__HEALTH_REQUEST__INIT;
    Safeshare__Meta metas[GW_SVC_COUNT];
    char reqbufs[GW_SVC_COUNT][65];
    Safeshare__AuthRequest auth = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__CryptoRequest crypto = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__StorageRequest storage = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__MailRequest mailer = SAFESHARE__MAIL_REQUEST__INIT;
    auth.body_case = SAFESHARE__AUTH_REQUEST__BODY_HEALTH, auth.health = &health;
    crypto.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH, crypto.health = &health;
    storage.body_case = SAFESHARE__STORAGE_REQUEST__BODY_HEALTH, storage.health = &health;
    mailer.body_case = SAFESHARE__MAIL_REQUEST__BODY_HEALTH, mailer.health = &health;
    auth.meta = &metas[GW_SVC_AUTH];
    crypto.meta = &metas[GW_SVC_CRYPTO];
    storage.meta = &metas[GW_SVC_STORAGE];
    mailer.meta = &metas[GW_SVC_MAILER];
    const ProtobufCMessage *requests[GW_SVC_COUNT] = {&auth.base, &crypto.base,
                                                      &storage.base, &mailer.base};
    const ProtobufCMessageDescriptor *reply_descs[GW_SVC_COUNT] = {
        &safeshare__auth_reply__descriptor, &safeshare__crypto_reply__descriptor,
        &safeshare__storage_reply__descriptor, &safeshare__mail_reply__descriptor};

    uint64_t start = cm_mono_ms ();
    bool pending[GW_SVC_COUNT] = {false};
    for (int i = 0; i < GW_SVC_COUNT; i++) {
        ok[i] = false;
        latency_ms[i] = 0;
        char wire[65];
        gw_rpc_wire_id (wire, req_id, ++self->seq);
        cm_meta_init (&metas[i], reqbufs[i], wire, timeout_ms);
        zsock_t *sock = s_sock (self, (gw_svc_t)i);
        zframe_t *header = sock ? cm_frame_pack (requests[i]) : NULL;
        zmsg_t *msg = header ? zmsg_new () : NULL;
        if (msg == NULL) {
            zframe_destroy (&header);
            continue;
        }
        zmsg_addmem (msg, NULL, 0);
        zmsg_append (msg, &header);
        if (zmsg_send (&msg, sock) != 0) {
            zmsg_destroy (&msg);
            continue;
        }
        pending[i] = true;
    }
    uint64_t deadline = start + (uint64_t)timeout_ms;
    while (true) {
        zmq_pollitem_t items[GW_SVC_COUNT];
        int map[GW_SVC_COUNT];
        int n = 0;
        for (int i = 0; i < GW_SVC_COUNT; i++) {
            if (pending[i]) {
                items[n] =
                    (zmq_pollitem_t){zsock_resolve (self->socks[i]), 0, ZMQ_POLLIN, 0};
                map[n++] = i;
            }
        }
        uint64_t now = cm_mono_ms ();
        if (n == 0 || now >= deadline) {
            break;
        }
        int rc = zmq_poll (items, n, (long)(deadline - now));
        if (rc < 0 && zmq_errno () != EINTR) {
            break;
        }
        for (int k = 0; rc > 0 && k < n; k++) {
            if (!(items[k].revents & ZMQ_POLLIN)) {
                continue;
            }
            int i = map[k];
            zmsg_t *in = zmsg_recv (self->socks[i]);
            zframe_t *delim = in ? zmsg_pop (in) : NULL;
            zframe_t *head = in ? zmsg_pop (in) : NULL;
            ProtobufCMessage *r = NULL;
            if (delim && zframe_size (delim) == 0 && head &&
                zframe_size (head) <= CM_MAX_HEADER) {
                r = protobuf_c_message_unpack (reply_descs[i], NULL, zframe_size (head),
                                               zframe_data (head));
            }
            Safeshare__Meta *rmeta = r ? cm_msg_meta (r) : NULL;
            if (rmeta && rmeta->request_id &&
                strcmp (rmeta->request_id, reqbufs[i]) == 0) {
                ok[i] = gw_rpc_status (r, NULL, NULL) == CM_OK;
                latency_ms[i] = cm_mono_ms () - start;
                pending[i] = false;
            }
            if (r) {
                protobuf_c_message_free_unpacked (r, NULL);
            }
            zframe_destroy (&delim);
            zframe_destroy (&head);
            zmsg_destroy (&in);
        }
    }
    for (int i = 0; i < GW_SVC_COUNT; i++) {
        if (!ok[i]) {
            latency_ms[i] = cm_mono_ms () - start;
            cm_warn (req_id, "health of %s failed", gw_svc_name ((gw_svc_t)i));
            s_reset (self, (gw_svc_t)i);
        }
    }
}
