/*  maild_server -- HEALTH, SEND and STATS on the mailer's ROUTER socket. */
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
    maild_templates_t *templates;
    maild_outbox_t *outbox;
    char *from;
    char *reply_to;
    uint64_t max_age_ms;
    maild_sender_t *sender;
    maild_counters_t *counters;
    uint64_t started_ms; /* monotonic */
};

maild_server_t *
maild_server_new (const maild_server_config_t *config, maild_templates_t **templates_p,
                  maild_outbox_t **outbox_p)
{
    if (!config || !templates_p || !*templates_p || !outbox_p || !*outbox_p ||
        !config->counters || !maild_message_sender_valid (config->from) ||
        (config->reply_to && *config->reply_to &&
         !maild_message_sender_valid (config->reply_to))) {
        return NULL;
    }
    maild_server_t *self = calloc (1, sizeof *self);
    if (!self || !(self->from = strdup (config->from)) ||
        (config->reply_to && *config->reply_to &&
         !(self->reply_to = strdup (config->reply_to)))) {
        if (self) {
            free (self->from);
        }
        free (self);
        return NULL;
    }
    self->templates = *templates_p;
    self->outbox = *outbox_p;
    *templates_p = NULL;
    *outbox_p = NULL;
    self->max_age_ms = config->max_age_ms;
    self->sender = config->sender;
    self->counters = config->counters;
    self->started_ms = cm_mono_ms ();
    return self;
}

void
maild_server_destroy (maild_server_t **self_p)
{
    if (self_p && *self_p) {
        maild_server_t *self = *self_p;
        maild_templates_destroy (&self->templates);
        maild_outbox_destroy (&self->outbox);
        free (self->from);
        free (self->reply_to);
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
s_stats (maild_server_t *self, zsock_t *router, cm_call_t *call)
{
    uint64_t counts[4];
    if (maild_outbox_counts (self->outbox, counts) != 0) {
        return s_reply_error (router, call, CM_UNAVAILABLE, "mail_store_failed",
                              "the outbox could not be read");
    }
    Safeshare__MailStatsReply stats = SAFESHARE__MAIL_STATS_REPLY__INIT;
    stats.pending = counts[0];
    stats.sending = counts[1];
    stats.sent = counts[2];
    stats.failed = counts[3];
    stats.queued_total = atomic_load (&self->counters->queued);
    stats.sent_total = atomic_load (&self->counters->sent);
    stats.failed_total = atomic_load (&self->counters->failed);
    stats.retried_total = atomic_load (&self->counters->retried);
    Safeshare__MailReply reply = SAFESHARE__MAIL_REPLY__INIT;
    reply.status = CM_OK;
    reply.body_case = SAFESHARE__MAIL_REPLY__BODY_STATS;
    reply.stats = &stats;
    return cm_call_reply (router, call, &reply.base, NULL);
}

static int
s_send (maild_server_t *self, zsock_t *router, cm_call_t *call,
        const Safeshare__MailSendRequest *req)
{
    int rc = -1;
    maild_var_t *vars = NULL;
    maild_rendered_t rendered = {0};
    char *message = NULL;
    size_t len = 0;

    if (!cm_is_hex_id (req->job_id, 32)) {
        return s_reply_error (router, call, CM_INVALID, "invalid_job_id",
                              "job_id must be 32 lowercase hex characters");
    }
    if (!maild_message_recipient_valid (req->to)) {
        return s_reply_error (router, call, CM_INVALID, "invalid_recipient",
                              "to must be one plain address (local@domain), at most 254 "
                              "bytes of printable ASCII without spaces or specials");
    }
    if (!maild_templates_known (self->templates, req->template_)) {
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
    const char *code = NULL;
    char why[160];
    cm_status_t status =
        maild_templates_render (self->templates, req->template_, vars, req->n_vars,
                                &rendered, &code, why, sizeof why);
    if (status != CM_OK) {
        rc = s_reply_error (router, call, status, code, why);
        goto cleanup;
    }
    maild_message_parts_t parts = {
        .from = self->from,
        .reply_to = self->reply_to,
        .to = req->to,
        .job_id = req->job_id,
        .subject = rendered.subject,
        .text = rendered.text,
        .html = rendered.html,
        .date_s = cm_now_s (),
    };
    message = maild_message_compose (&parts, &len);
    if (!message) {
        /* Every part was checked above: this is our bug, not the peer's. */
        cm_error (call->req_id, "maild_message_compose() failed job=%s", req->job_id);
        rc = s_reply_error (router, call, CM_INTERNAL, "internal_error",
                            "could not compose the message");
        goto cleanup;
    }
    bool duplicate = false;
    status = maild_outbox_enqueue (self->outbox, call->req_id, req->job_id,
                                   req->template_, req->to, message, cm_now_ms (),
                                   self->max_age_ms, &duplicate);
    if (status != CM_OK) {
        /* UNAVAILABLE tells the caller to retry later with the same job. */
        rc = s_reply_error (router, call, status, "mail_store_failed",
                            "the job could not be stored; retry with the same job_id");
        goto cleanup;
    }
    Safeshare__MailSendReply send = SAFESHARE__MAIL_SEND_REPLY__INIT;
    send.job_id = req->job_id;
    Safeshare__MailReply reply = SAFESHARE__MAIL_REPLY__INIT;
    reply.status = CM_OK;
    reply.body_case = SAFESHARE__MAIL_REPLY__BODY_SEND;
    reply.send = &send;
    rc = cm_call_reply (router, call, &reply.base, NULL);
    if (duplicate) {
        cm_info (call->req_id, "mail job=%s already queued: acked again", req->job_id);
    } else {
        atomic_fetch_add (&self->counters->queued, 1);
        cm_info (call->req_id, "mail queued job=%s template=%s bytes=%zu", req->job_id,
                 req->template_, len);
        if (self->sender) {
            maild_sender_kick (self->sender);
        }
    }

cleanup:
    /* The parts hold the link (a bearer token): wipe them. */
    maild_rendered_clear (&rendered);
    if (message) {
        cm_secret_free (message, len);
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
        case SAFESHARE__MAIL_REQUEST__BODY_STATS:
            rc = s_stats (self, router, &call);
            break;
        default:
            rc = s_reply_error (router, &call, CM_INVALID, "missing_body",
                                "request needs a health, send or stats body");
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
            next_tick = now + S_TICK_MS; /* delivery is the sender's thread */
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
