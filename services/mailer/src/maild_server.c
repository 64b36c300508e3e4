/*  maild_server -- HEALTH and SEND on the mailer's ROUTER socket.        */
#include "maild_server.h"
#include "maild_message.h"
#include "maild_template.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_service.h"
#include "cm_util.h"
#include "mailer.pb-c.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* How often the loop wakes without traffic to notice a stop request
   (the signal also interrupts the poll; this bounds the worst case).  */
#define S_TICK_MS 500

struct maild_server_t {
    maild_transport_t *transport;
    char *from;
    uint64_t started_ms; /* monotonic */
};

maild_server_t *
maild_server_new (maild_transport_t **transport_p, const char *from)
{
    if (!transport_p || !*transport_p || !maild_message_sender_valid (from)) {
        return NULL;
    }
    maild_server_t *self = calloc (1, sizeof *self);
    if (!self || !(self->from = strdup (from))) {
        free (self);
        return NULL;
    }
    self->transport = *transport_p;
    *transport_p = NULL;
    self->started_ms = cm_mono_ms ();
    return self;
}

void
maild_server_destroy (maild_server_t **self_p)
{
    if (self_p && *self_p) {
        maild_server_t *self = *self_p;
        maild_transport_destroy (&self->transport);
        free (self->from);
        free (self);
        *self_p = NULL;
    }
}

static int
s_reply_error (zsock_t *router, cm_call_t *call, cm_status_t status, const char *code,
               const char *message)
{
    cm_info (call->req_id, "request refused status=%s code=%s", cm_status_name (status),
             code);
    return cm_call_reply_error (router, call, &safeshare__mail_reply__descriptor, status,
                                code, message);
}

static int
s_health (maild_server_t *self, zsock_t *router, cm_call_t *call)
{
    Safeshare__HealthReply health = SAFESHARE__HEALTH_REPLY__INIT;
    health.service = "mailer";
    health.version = SAFESHARE_VERSION;
    health.uptime_ms = cm_mono_ms () - self->started_ms;
    Safeshare__MailReply reply = SAFESHARE__MAIL_REPLY__INIT;
    reply.status = CM_OK;
    reply.body_case = SAFESHARE__MAIL_REPLY__BODY_HEALTH;
    reply.health = &health;
    return cm_call_reply (router, call, &reply.base, NULL);
}

static int
s_send (maild_server_t *self, zsock_t *router, cm_call_t *call,
        const Safeshare__MailSendRequest *req)
{
    int rc = -1;
    maild_var_t *vars = NULL;
    char *body = NULL;
    char *message = NULL;

    if (!cm_is_hex_id (req->job_id, 32)) {
        return s_reply_error (router, call, CM_INVALID, "invalid_job_id",
                              "job_id must be 32 lowercase hex characters");
    }
    if (!maild_message_recipient_valid (req->to)) {
        return s_reply_error (router, call, CM_INVALID, "invalid_recipient",
                              "to must be one plain address (local@domain), at most 254 "
                              "bytes of printable ASCII without spaces or specials");
    }
    if (!maild_template_known (req->template_)) {
        return s_reply_error (router, call, CM_INVALID, "unknown_template",
                              "no such mail template");
    }
    /* Bound the count before allocating anything for it. */
    if (req->n_vars > MAILD_MAX_VARS) {
        return s_reply_error (router, call, CM_INVALID, "invalid_vars",
                              "at most 16 vars");
    }
    vars = calloc (req->n_vars ? req->n_vars : 1, sizeof *vars);
    if (!vars) {
        rc = s_reply_error (router, call, CM_INTERNAL, "internal_error", "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < req->n_vars; i++) {
        if (!req->vars[i]) {
            rc = s_reply_error (router, call, CM_INVALID, "invalid_vars", "empty var");
            goto cleanup;
        }
        vars[i].name = req->vars[i]->name;
        vars[i].value = req->vars[i]->value;
    }
    const char *subject = NULL, *code = NULL;
    char why[160];
    cm_status_t status = maild_template_render (req->template_, vars, req->n_vars,
                                                &subject, &body, &code, why, sizeof why);
    if (status != CM_OK) {
        rc = s_reply_error (router, call, status, code, why);
        goto cleanup;
    }
    size_t len = 0;
    message = maild_message_compose (self->from, req->to, req->job_id, subject, body,
                                     cm_now_s (), &len);
    if (!message) {
        /* Every part was checked above: this is our bug, not the peer's. */
        cm_error (call->req_id, "maild_message_compose() failed job=%s", req->job_id);
        rc = s_reply_error (router, call, CM_INTERNAL, "internal_error",
                            "could not compose the message");
        goto cleanup;
    }
    bool duplicate = false;
    status = maild_transport_submit (self->transport, call->req_id, req->job_id, req->to,
                                     message, len, &duplicate);
    if (status != CM_OK) {
        /* UNAVAILABLE tells the caller to retry later with the same job. */
        rc = s_reply_error (
            router, call, status,
            status == CM_UNAVAILABLE ? "mail_store_failed" : cm_status_code (status),
            "the message could not be stored; retry with the same job_id");
        goto cleanup;
    }
    Safeshare__MailSendReply send = SAFESHARE__MAIL_SEND_REPLY__INIT;
    send.job_id = req->job_id;
    Safeshare__MailReply reply = SAFESHARE__MAIL_REPLY__INIT;
    reply.status = CM_OK;
    reply.body_case = SAFESHARE__MAIL_REPLY__BODY_SEND;
    reply.send = &send;
    rc = cm_call_reply (router, call, &reply.base, NULL);
    cm_debug (call->req_id, "send acked job=%s duplicate=%d", req->job_id, duplicate);

cleanup:
    /* The body holds the link (a bearer token): wipe it. */
    if (body) {
        cm_secret_free (body, strlen (body));
    }
    if (message) {
        cm_secret_free (message, strlen (message));
    }
    free (vars);
    return rc;
}

/* Var values (the link holds a bearer token) are wiped before the
   request's memory goes back to the allocator.                        */
static void
s_wipe_vars (Safeshare__MailSendRequest *send)
{
    for (size_t i = 0; i < send->n_vars; i++) {
        if (send->vars[i] && send->vars[i]->value) {
            OPENSSL_cleanse (send->vars[i]->value, strlen (send->vars[i]->value));
        }
    }
}

int
maild_server_handle (maild_server_t *self, zsock_t *router)
{
    cm_call_t call;
    if (cm_call_recv (router, &safeshare__mail_request__descriptor,
                      &safeshare__mail_reply__descriptor, &call) != 0) {
        return -1; /* answered (or dropped) and logged by cm_call_recv */
    }
    int rc = -1;
    Safeshare__MailRequest *req = (Safeshare__MailRequest *)call.request;
    if (cm_call_expired (&call)) {
        /* The caller gave up already; it will retry with the same job. */
        cm_debug (call.req_id, "request past its deadline dropped");
        goto cleanup;
    }
    if (zmsg_size (call.blobs) != 0) {
        rc = s_reply_error (router, &call, CM_INVALID, "unexpected_blobs",
                            "mailer requests carry no blob frames");
        goto cleanup;
    }
    switch (req->body_case) {
        case SAFESHARE__MAIL_REQUEST__BODY_HEALTH:
            rc = s_health (self, router, &call);
            break;
        case SAFESHARE__MAIL_REQUEST__BODY_SEND:
            rc = req->send ? s_send (self, router, &call, req->send)
                           : s_reply_error (router, &call, CM_INVALID, "missing_body",
                                            "request has no body");
            break;
        default:
            rc = s_reply_error (router, &call, CM_INVALID, "missing_body",
                                "request needs a health or send body");
            break;
    }
cleanup:
    if (req->body_case == SAFESHARE__MAIL_REQUEST__BODY_SEND && req->send) {
        s_wipe_vars (req->send);
    }
    cm_call_release (&call);
    return rc;
}

int
maild_server_run (maild_server_t *self, zsock_t *router)
{
    zpoller_t *poller = zpoller_new (router, NULL);
    if (!poller) {
        cm_error (NULL, "zpoller_new() failed");
        return -1;
    }
    /* czmq must not treat our signal handling as its own: the loop decides. */
    zpoller_set_nonstop (poller, true);
    uint64_t next_tick = cm_mono_ms () + S_TICK_MS;
    while (!cm_service_stopping ()) {
        uint64_t now = cm_mono_ms ();
        if (now >= next_tick) {
            /* Periodic work (the SMTP outbox retries of issue 6) goes here. */
            next_tick = now + S_TICK_MS;
        }
        int timeout = (int)(next_tick - now);
        void *which = zpoller_wait (poller, timeout);
        if (which == router) {
            maild_server_handle (self, router);
        } else if (zpoller_terminated (poller) && zmq_errno () == ETERM) {
            /* EINTR just loops (the stop check above decides); ETERM is final. */
            cm_error (NULL, "zpoller_wait() failed: context terminated");
            break;
        }
    }
    zpoller_destroy (&poller);
    cm_info (NULL, "mailer stopping");
    return 0;
}
