/*  gw_window -- calls of one transfer in flight at once (see gw_window.h). */
#include "gw_window.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include "cm_log.h"
#include "cm_util.h"

typedef struct {
    char wire[65];        /* the call's Meta.request_id */
    uint64_t deadline_ms; /* cm_mono_ms clock */
    uint64_t tag;
    bool done; /* its reply is here */
    ProtobufCMessage *reply;
    zmsg_t *blobs;
} s_slot_t;

struct gw_window_t {
    gw_rpc_t *rpc;
    gw_svc_t svc;
    char req_id[65];
    const ProtobufCMessageDescriptor *reply_desc;
    unsigned size;
    s_slot_t *slots; /* call number n is in slots[n % size] */
    uint64_t head;   /* oldest call not taken */
    uint64_t tail;   /* next call's number */
    unsigned out;    /* calls sent whose reply has not come */
    unsigned peak;
    uint64_t epoch; /* gw_rpc_epoch when the calls out were sent */
    bool failed;
    cm_status_t fail_rc;
};

/* Frames that may be plaintext are wiped before they are freed. */
static void
s_msg_wipe_destroy (zmsg_t **msg)
{
    if (msg && *msg) {
        for (zframe_t *f = zmsg_first (*msg); f; f = zmsg_next (*msg)) {
            OPENSSL_cleanse (zframe_data (f), zframe_size (f));
        }
        zmsg_destroy (msg);
    }
}

static void
s_slot_clear (s_slot_t *slot)
{
    if (slot->reply) {
        protobuf_c_message_free_unpacked (slot->reply, NULL);
    }
    s_msg_wipe_destroy (&slot->blobs);
    memset (slot, 0, sizeof *slot);
}

gw_window_t *
gw_window_new (gw_rpc_t *rpc, gw_svc_t svc, const char *req_id, unsigned size,
               const ProtobufCMessageDescriptor *reply_desc)
{
    if (rpc == NULL || (unsigned)svc >= GW_SVC_COUNT || size < 1 ||
        size > GW_CRYPTO_WINDOW_MAX || reply_desc == NULL) {
        return NULL;
    }
    gw_window_t *self = calloc (1, sizeof *self);
    if (self == NULL) {
        return NULL;
    }
    self->slots = calloc (size, sizeof *self->slots);
    if (self->slots == NULL) {
        free (self);
        return NULL;
    }
    self->rpc = rpc;
    self->svc = svc;
    snprintf (self->req_id, sizeof self->req_id, "%s", req_id ? req_id : "");
    self->size = size;
    self->reply_desc = reply_desc;
    return self;
}

/* Every call out is lost: the socket is dropped (unless that happened
   already) so that none of their replies can reach a later call.    */
static void
s_fail_all (gw_window_t *self, cm_status_t rc)
{
    if (self->out > 0 && gw_rpc_epoch (self->rpc, self->svc) == self->epoch) {
        gw_rpc_drop (self->rpc, self->svc);
    }
    for (uint64_t n = self->head; n < self->tail; n++) {
        s_slot_clear (&self->slots[n % self->size]);
    }
    self->head = self->tail;
    self->out = 0;
    if (!self->failed) {
        self->failed = true;
        self->fail_rc = rc;
    }
}

void
gw_window_destroy (gw_window_t **self_p)
{
    if (self_p && *self_p) {
        gw_window_t *self = *self_p;
        if (self->out > 0) {
            cm_info (self->req_id, "%u call(s) to %s abandoned: socket dropped",
                     self->out, gw_svc_name (self->svc));
        }
        s_fail_all (self, CM_UNAVAILABLE);
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

unsigned
gw_window_pending (gw_window_t *self)
{
    return (unsigned)(self->tail - self->head);
}

bool
gw_window_full (gw_window_t *self)
{
    return gw_window_pending (self) >= self->size;
}

unsigned
gw_window_peak (gw_window_t *self)
{
    return self->peak;
}

/* Calls out on a socket that has been dropped since are lost. */
static bool
s_lost (gw_window_t *self)
{
    if (!self->failed && self->out > 0 &&
        gw_rpc_epoch (self->rpc, self->svc) != self->epoch) {
        cm_warn (self->req_id, "%u call(s) to %s lost with their socket", self->out,
                 gw_svc_name (self->svc));
        s_fail_all (self, CM_UNAVAILABLE);
    }
    return self->failed;
}

cm_status_t
gw_window_send (gw_window_t *self, ProtobufCMessage *request, zmsg_t **blobs,
                uint64_t tag)
{
    if (s_lost (self)) {
        s_msg_wipe_destroy (blobs);
        return self->fail_rc;
    }
    if (gw_window_full (self)) {
        cm_error (self->req_id, "gw_window_send(%s) failed: window full",
                  gw_svc_name (self->svc));
        s_msg_wipe_destroy (blobs);
        s_fail_all (self, CM_INTERNAL);
        return self->fail_rc;
    }
    if (self->out == 0) {
        self->epoch = gw_rpc_epoch (self->rpc, self->svc);
    }
    s_slot_t *slot = &self->slots[self->tail % self->size];
    cm_status_t rc =
        gw_rpc_send (self->rpc, self->svc, self->req_id, request, blobs, 0, slot->wire);
    if (rc != CM_OK) {
        s_fail_all (self, rc);
        return self->fail_rc;
    }
    slot->deadline_ms = cm_mono_ms () + (uint64_t)gw_rpc_timeout_ms (self->rpc);
    slot->tag = tag;
    slot->done = false;
    self->tail++;
    self->out++;
    if (gw_window_pending (self) > self->peak) {
        self->peak = gw_window_pending (self);
    }
    return CM_OK;
}

/* Files a received reply with its call; a reply of no call out is late
   (its call timed out or was abandoned): dropped.                    */
static void
s_file (gw_window_t *self, ProtobufCMessage *reply, zmsg_t *blobs)
{
    const Safeshare__Meta *meta = cm_msg_meta (reply);
    const char *id = meta && meta->request_id ? meta->request_id : "";
    for (uint64_t n = self->head; n < self->tail; n++) {
        s_slot_t *slot = &self->slots[n % self->size];
        if (!slot->done && strcmp (slot->wire, id) == 0) {
            slot->done = true;
            slot->reply = reply;
            slot->blobs = blobs;
            self->out--;
            return;
        }
    }
    cm_debug (self->req_id, "stale reply from %s for req=%s dropped",
              gw_svc_name (self->svc), id);
    protobuf_c_message_free_unpacked (reply, NULL);
    s_msg_wipe_destroy (&blobs);
}

int
gw_window_next (gw_window_t *self, bool wait, ProtobufCMessage **reply, zmsg_t **blobs,
                uint64_t *tag, cm_status_t *rc)
{
    *reply = NULL;
    *blobs = NULL;
    *tag = 0;
    *rc = CM_OK;
    if (s_lost (self)) {
        *rc = self->fail_rc;
        return -1;
    }
    while (self->head < self->tail) {
        s_slot_t *oldest = &self->slots[self->head % self->size];
        if (oldest->done) {
            *reply = oldest->reply;
            *blobs = oldest->blobs;
            *tag = oldest->tag;
            oldest->reply = NULL;
            oldest->blobs = NULL;
            s_slot_clear (oldest);
            self->head++;
            return 1;
        }
        ProtobufCMessage *in = NULL;
        zmsg_t *frames = NULL;
        cm_status_t recv_rc = CM_OK;
        int got = gw_rpc_recv (self->rpc, self->svc, self->req_id, self->reply_desc,
                               wait ? oldest->deadline_ms : 0, &in, &frames, &recv_rc);
        if (got < 0) {
            s_fail_all (self, recv_rc);
            *rc = self->fail_rc;
            return -1;
        }
        if (got == 0) {
            if (!wait) {
                return 0;
            }
            cm_warn (self->req_id, "call to %s timed out wire=%s (%u call(s) out)",
                     gw_svc_name (self->svc), oldest->wire, self->out);
            s_fail_all (self, CM_UNAVAILABLE);
            *rc = self->fail_rc;
            return -1;
        }
        s_file (self, in, frames);
    }
    return 0;
}
