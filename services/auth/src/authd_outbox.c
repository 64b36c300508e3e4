/*  authd_outbox -- the relay from mail_outbox to the mailer (Lazy Pirate:
    one request in flight, on timeout drop the connection so nothing stale
    piles up in the pipe, then retry with exponential backoff).        */
#include "authd_outbox.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_util.h"
#include "mailer.pb-c.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BACKOFF_MIN_MS 250
#define S_BACKOFF_MAX_MS 30000
/* Re-read the table now and then even without a kick (jobs written by
   another auth replica, or by a restart's leftovers). */
#define S_IDLE_POLL_MS 5000
#define S_MAX_VARS     16

struct authd_outbox_t {
    cm_db_t *db;
    zsock_t *sock;
    char *endpoint;
    int ack_timeout_ms;
    bool in_flight;
    char job_id[33];
    char req_id[65];
    uint64_t ack_deadline_ms;
    uint64_t next_try_ms;
    int backoff_ms;
    uint64_t sends; /* for wire ids: <queuing request id>.m<sends> */
};

authd_outbox_t *
authd_outbox_new (cm_db_t *db, const char *mailer_endpoint, int ack_timeout_ms)
{
    authd_outbox_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->db = db;
    self->endpoint = strdup (mailer_endpoint);
    self->ack_timeout_ms = ack_timeout_ms > 0 ? ack_timeout_ms : 5000;
    self->backoff_ms = S_BACKOFF_MIN_MS;
    self->sock = cm_sock_client (mailer_endpoint, "mailer");
    if (!self->endpoint || !self->sock) {
        authd_outbox_destroy (&self);
    }
    return self;
}

void
authd_outbox_destroy (authd_outbox_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    authd_outbox_t *self = *self_p;
    zsock_destroy (&self->sock);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

zsock_t *
authd_outbox_sock (authd_outbox_t *self)
{
    return self->sock;
}

void
authd_outbox_kick (authd_outbox_t *self)
{
    if (!self->in_flight) {
        self->next_try_ms = 0;
    }
}

int
authd_outbox_timeout (authd_outbox_t *self, uint64_t now_ms)
{
    uint64_t due = self->in_flight ? self->ack_deadline_ms : self->next_try_ms;
    if (due <= now_ms) {
        return 0;
    }
    uint64_t wait = due - now_ms;
    return wait > S_IDLE_POLL_MS ? S_IDLE_POLL_MS : (int)wait;
}

/* The job failed for now: try again after the backoff, which grows. */
static void
s_backoff (authd_outbox_t *self, uint64_t now_ms)
{
    self->in_flight = false;
    self->next_try_ms = now_ms + (uint64_t)self->backoff_ms;
    self->backoff_ms *= 2;
    if (self->backoff_ms > S_BACKOFF_MAX_MS) {
        self->backoff_ms = S_BACKOFF_MAX_MS;
    }
}

/* Builds MailSendRequest vars from the stored JSON object. -1 if the row
   is not what we wrote. vars[i] point into `obj`. */
static int
s_vars_from_json (json_t *obj, Safeshare__MailVar *storage, Safeshare__MailVar **vars,
                  size_t *n_out)
{
    if (!json_is_object (obj) || json_object_size (obj) > S_MAX_VARS) {
        return -1;
    }
    size_t n = 0;
    const char *key;
    json_t *value;
    json_object_foreach (obj, key, value)
    {
        if (!json_is_string (value)) {
            return -1;
        }
        safeshare__mail_var__init (&storage[n]);
        storage[n].name = (char *)key;
        storage[n].value = (char *)json_string_value (value);
        vars[n] = &storage[n];
        n++;
    }
    *n_out = n;
    return 0;
}

/* A job the mailer can never take (or a row we cannot read): stop
   retrying it so it does not hold up the queue, and drop its secret. */
static void
s_job_dead (authd_outbox_t *self, const char *job_id, const char *why)
{
    const char *p[] = {job_id, why};
    if (cm_db_exec (self->db,
                    "UPDATE mail_outbox SET vars = NULL, last_error = $2"
                    " WHERE id = $1 AND sent_at IS NULL",
                    2, p) != CM_DB_OK) {
        cm_error (NULL, "UPDATE mail_outbox (dead job=%s) failed", job_id);
    }
    cm_db_scrub (self->db);
    cm_error (NULL, "mail job=%s given up: %s", job_id, why);
}

/* Sends the oldest pending job. */
static void
s_send_next (authd_outbox_t *self, uint64_t now_ms)
{
    cm_db_res_t *res =
        cm_db_query (self->db,
                     "SELECT id, template, recipient, vars, request_id FROM mail_outbox"
                     " WHERE sent_at IS NULL AND last_error IS NULL"
                     " ORDER BY created_ms, id LIMIT 1",
                     0, NULL);
    json_t *obj = NULL;
    zmsg_t *msg = NULL;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "SELECT FROM mail_outbox failed");
        s_backoff (self, now_ms);
        goto cleanup;
    }
    if (cm_db_res_rows (res) == 0) {
        self->next_try_ms = now_ms + S_IDLE_POLL_MS;
        self->backoff_ms = S_BACKOFF_MIN_MS;
        goto cleanup;
    }
    const char *id = cm_db_res_get (res, 0, 0);
    const char *vars_json = cm_db_res_get (res, 0, 3);
    if (!cm_is_hex_id (id, 32)) {
        /* Cannot even name it to the mailer; nothing we wrote looks so. */
        cm_error (NULL, "mail_outbox row with a bad id: skipped");
        self->next_try_ms = now_ms + S_BACKOFF_MAX_MS;
        goto cleanup;
    }
    Safeshare__MailVar var_storage[S_MAX_VARS];
    Safeshare__MailVar *vars[S_MAX_VARS];
    size_t n_vars = 0;
    obj = vars_json ? json_loads (vars_json, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (s_vars_from_json (obj, var_storage, vars, &n_vars) != 0) {
        s_job_dead (self, id, "unreadable vars");
        self->next_try_ms = 0;
        goto cleanup;
    }

    Safeshare__MailSendRequest send = SAFESHARE__MAIL_SEND_REQUEST__INIT;
    send.job_id = (char *)id;
    send.template_ = (char *)cm_db_res_get (res, 0, 1);
    send.to = (char *)cm_db_res_get (res, 0, 2);
    send.n_vars = n_vars;
    send.vars = vars;
    /* The request that queued the job names it in the mailer's log too;
       each send its own id, so a late ack never passes for another's. */
    const char *origin = cm_db_res_get (res, 0, 4);
    char wire[65];
    char suffix[24];
    int slen =
        snprintf (suffix, sizeof suffix, ".m%llu", (unsigned long long)++self->sends);
    int keep = origin && cm_is_request_id (origin) ? (int)strlen (origin) : 0;
    keep = keep > 64 - slen ? 64 - slen : keep;
    snprintf (wire, sizeof wire, "%.*s%s", keep, keep ? origin : "", suffix);
    Safeshare__Meta meta;
    cm_meta_init (&meta, self->req_id, keep ? wire : NULL, self->ack_timeout_ms);
    Safeshare__MailRequest request = SAFESHARE__MAIL_REQUEST__INIT;
    request.meta = &meta;
    request.body_case = SAFESHARE__MAIL_REQUEST__BODY_SEND;
    request.send = &send;

    msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zframe_t *header = cm_frame_pack (&request.base);
    zmsg_append (msg, &header);
    snprintf (self->job_id, sizeof self->job_id, "%s", id);
    if (zmsg_send (&msg, self->sock) != 0) {
        cm_warn (self->req_id, "zmsg_send() to mailer failed: %s",
                 zmq_strerror (zmq_errno ()));
        s_backoff (self, now_ms);
        goto cleanup;
    }
    const char *p[] = {id};
    cm_db_exec (self->db, "UPDATE mail_outbox SET attempts = attempts + 1 WHERE id = $1",
                1, p);
    self->in_flight = true;
    self->ack_deadline_ms = now_ms + (uint64_t)self->ack_timeout_ms;
    cm_debug (self->req_id, "mail job=%s sent to mailer", self->job_id);
cleanup:
    zmsg_destroy (&msg);
    json_decref (obj);
    cm_db_res_free (&res);
}

void
authd_outbox_tick (authd_outbox_t *self, uint64_t now_ms)
{
    if (self->in_flight) {
        if (now_ms < self->ack_deadline_ms) {
            return;
        }
        /* No ack: the mailer is down or slow. Drop the connection, which
           discards anything still queued for it, so retries do not pile
           up; the mailer's idempotency covers a job it did get. */
        cm_warn (self->req_id, "no ack from mailer for job=%s; retrying in %d ms",
                 self->job_id, self->backoff_ms);
        if (zsock_disconnect (self->sock, "%s", self->endpoint) == 0 &&
            zsock_connect (self->sock, "%s", self->endpoint) != 0) {
            cm_error (self->req_id, "zsock_connect(%s) failed: %s", self->endpoint,
                      zmq_strerror (zmq_errno ()));
        }
        s_backoff (self, now_ms);
        return;
    }
    if (now_ms >= self->next_try_ms) {
        s_send_next (self, now_ms);
    }
}

static void
s_mark_sent (authd_outbox_t *self, const char *job_id)
{
    char now[24];
    snprintf (now, sizeof now, "%llu", (unsigned long long)cm_now_s ());
    const char *p[] = {job_id, now};
    /* The link carried the verification token: it must not stay at rest. */
    if (cm_db_exec (self->db,
                    "UPDATE mail_outbox SET sent_at = $2, vars = NULL"
                    " WHERE id = $1 AND sent_at IS NULL",
                    2, p) != CM_DB_OK) {
        cm_error (NULL, "UPDATE mail_outbox (sent job=%s) failed", job_id);
    }
    cm_db_scrub (self->db);
}

void
authd_outbox_recv (authd_outbox_t *self, uint64_t now_ms)
{
    zmsg_t *msg = zmsg_recv (self->sock);
    if (!msg) {
        return;
    }
    zframe_t *delim = zmsg_pop (msg);
    zframe_t *head = zmsg_pop (msg);
    Safeshare__MailReply *reply = NULL;
    if (delim && zframe_size (delim) == 0 && head &&
        zframe_size (head) <= CM_MAX_HEADER) {
        reply =
            safeshare__mail_reply__unpack (NULL, zframe_size (head), zframe_data (head));
    }
    zframe_destroy (&delim);
    zframe_destroy (&head);
    zmsg_destroy (&msg);
    if (!reply || !reply->meta || !reply->meta->request_id) {
        cm_warn (NULL, "malformed reply from mailer dropped");
        goto cleanup;
    }
    bool ours = self->in_flight && strcmp (reply->meta->request_id, self->req_id) == 0;
    const char *acked =
        reply->body_case == SAFESHARE__MAIL_REPLY__BODY_SEND && reply->send
            ? reply->send->job_id
            : NULL;
    if (reply->status == SAFESHARE__STATUS__STATUS_OK && acked &&
        cm_is_hex_id (acked, 32)) {
        /* Even a late ack (of a retry we gave up on) is true: the mailer
           has stored that job. */
        s_mark_sent (self, acked);
        cm_info (reply->meta->request_id, "mail job=%s acked by mailer", acked);
        if (ours && strcmp (acked, self->job_id) == 0) {
            self->in_flight = false;
            self->backoff_ms = S_BACKOFF_MIN_MS;
            self->next_try_ms = now_ms; /* next job at once */
        }
        goto cleanup;
    }
    if (!ours) {
        cm_debug (reply->meta->request_id, "stale mailer reply dropped");
        goto cleanup;
    }
    const char *code = reply->error && reply->error->code ? reply->error->code : "";
    switch (reply->status) {
        case SAFESHARE__STATUS__STATUS_UNAVAILABLE:
        case SAFESHARE__STATUS__STATUS_INTERNAL:
        case SAFESHARE__STATUS__STATUS_RATE_LIMITED:
            cm_warn (self->req_id, "mailer refused job=%s for now (%s): retrying",
                     self->job_id, code);
            s_backoff (self, now_ms);
            break;
        case SAFESHARE__STATUS__STATUS_OK:
            /* OK without the job id is a broken peer: retry the job. */
            cm_warn (self->req_id, "mailer ack without job id for job=%s", self->job_id);
            s_backoff (self, now_ms);
            break;
        default:
            /* INVALID and friends: this job will never go; do not let it
               block the ones behind it. */
            s_job_dead (self, self->job_id, code[0] ? code : "rejected_by_mailer");
            self->in_flight = false;
            self->next_try_ms = now_ms;
            break;
    }
cleanup:
    if (reply) {
        safeshare__mail_reply__free_unpacked (reply, NULL);
    }
}
