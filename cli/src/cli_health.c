/*  cli_health -- `safeshare health SERVICE`.                           */
#include "cli_health.h"
#include "cli_probe.h"
#include "cm_curve.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_util.h"

#include "auth.pb-c.h"
#include "crypto.pb-c.h"
#include "mailer.pb-c.h"
#include "storage.pb-c.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

typedef enum {
    S_GATEWAY = 0,
    S_AUTH,
    S_CRYPTO,
    S_STORAGE,
    S_MAILER,
    S_WORKER,
    S_COUNT
} s_svc_t;

static const struct {
    const char *name;
    const char *key;  /* where its address is configured */
    const char *peer; /* whose server key a CURVE client expects */
} s_svcs[S_COUNT] = {
    {"gateway", "SAFESHARE_HTTP_ADDR", NULL},
    {"auth", "SAFESHARE_AUTH_ENDPOINT", "auth"},
    {"crypto", "SAFESHARE_CRYPTO_ENDPOINT", "crypto"},
    {"storage", "SAFESHARE_STORAGE_ENDPOINT", "storage"},
    {"mailer", "SAFESHARE_MAILER_ENDPOINT", "mailer"},
    /* asks the broker, which knows its workers */
    {"crypto-worker", "SAFESHARE_CRYPTO_ENDPOINT", "crypto"},
};

/* What the socket monitor saw while we waited: it tells "nothing there"
   from "there but silent" from "there but our key was turned away".   */
#define S_SAW_CONNECTED      0x01
#define S_SAW_RETRIED        0x02
#define S_SAW_AUTH_FAILED    0x04
#define S_SAW_HANDSHAKE_FAIL 0x08
#define S_MONITOR_EVENTS                                                                 \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

int
cli_health_service_valid (const char *service)
{
    for (int i = 0; service && i < S_COUNT; i++) {
        if (strcmp (service, s_svcs[i].name) == 0) {
            return 1;
        }
    }
    return 0;
}

static int s_unhealthy (FILE *err, s_svc_t svc, const char *where, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
s_unhealthy (FILE *err, s_svc_t svc, const char *where, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, sizeof why, fmt, ap);
    va_end (ap);
    fprintf (err, "safeshare: health: %s at %s: %s\n", s_svcs[svc].name, where, why);
    return 1;
}

/* ---- gateway -------------------------------------------------------- */

static int
s_gateway (const char *addr, int timeout_ms, FILE *err)
{
    uint64_t start = cm_mono_ms ();
    int status = cli_probe_http (addr, "/healthz", timeout_ms, -1);
    if (status == 200) {
        return 0;
    }
    if (status > 0) {
        return s_unhealthy (err, S_GATEWAY, addr, "GET /healthz answered status %d",
                            status);
    }
    /* cli_probe_http says -1 for every failure; only the clock tells a
       silent listener from a refused (or garbled) connection.          */
    if (cm_mono_ms () - start >= (uint64_t)timeout_ms) {
        return s_unhealthy (err, S_GATEWAY, addr, "timeout: no answer within %d ms",
                            timeout_ms);
    }
    return s_unhealthy (err, S_GATEWAY, addr,
                        "refused: connection refused or closed without an HTTP answer");
}

/* ---- ZeroMQ services ------------------------------------------------ */

/* Reads every queued event of the watch (cm_curve_watch_new) into
   S_SAW_* bits.                                                       */
static int
s_monitor_seen (zsock_t *watch)
{
    int seen = 0;
    while (watch && (zsock_events (watch) & ZMQ_POLLIN)) {
        int event = cm_curve_watch_recv (watch, NULL, 0);
        if (event < 0) {
            continue;
        }
        seen |= event == ZMQ_EVENT_CONNECTED               ? S_SAW_CONNECTED
                : event == ZMQ_EVENT_CONNECT_RETRIED       ? S_SAW_RETRIED
                : event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? S_SAW_AUTH_FAILED
                                                           : S_SAW_HANDSHAKE_FAIL;
    }
    return seen;
}

/* The request for svc: HEALTH in the service's own envelope (field 10
   in all of them), or the broker's POOL_STATUS for crypto-worker.     */
typedef struct {
    Safeshare__Meta meta;
    Safeshare__HealthRequest health;
    Safeshare__PoolStatusRequest pool;
    Safeshare__AuthRequest auth;
    Safeshare__CryptoRequest crypto;
    Safeshare__StorageRequest storage;
    Safeshare__MailRequest mailer;
} s_request_t;

static const ProtobufCMessage *
s_request (s_request_t *r, s_svc_t svc)
{
    *r = (s_request_t){.meta = SAFESHARE__META__INIT,
                       .health = SAFESHARE__HEALTH_REQUEST__INIT,
                       .pool = SAFESHARE__POOL_STATUS_REQUEST__INIT,
                       .auth = SAFESHARE__AUTH_REQUEST__INIT,
                       .crypto = SAFESHARE__CRYPTO_REQUEST__INIT,
                       .storage = SAFESHARE__STORAGE_REQUEST__INIT,
                       .mailer = SAFESHARE__MAIL_REQUEST__INIT};
    switch (svc) {
        case S_AUTH:
            r->auth.meta = &r->meta;
            r->auth.body_case = SAFESHARE__AUTH_REQUEST__BODY_HEALTH;
            r->auth.health = &r->health;
            return &r->auth.base;
        case S_CRYPTO:
            r->crypto.meta = &r->meta;
            r->crypto.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH;
            r->crypto.health = &r->health;
            return &r->crypto.base;
        case S_WORKER:
            r->crypto.meta = &r->meta;
            r->crypto.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_POOL_STATUS;
            r->crypto.pool_status = &r->pool;
            return &r->crypto.base;
        case S_STORAGE:
            r->storage.meta = &r->meta;
            r->storage.body_case = SAFESHARE__STORAGE_REQUEST__BODY_HEALTH;
            r->storage.health = &r->health;
            return &r->storage.base;
        case S_MAILER:
            r->mailer.meta = &r->meta;
            r->mailer.body_case = SAFESHARE__MAIL_REQUEST__BODY_HEALTH;
            r->mailer.health = &r->health;
            return &r->mailer.base;
        default:
            return NULL;
    }
}

static const ProtobufCMessageDescriptor *
s_reply_desc (s_svc_t svc)
{
    switch (svc) {
        case S_AUTH:
            return &safeshare__auth_reply__descriptor;
        case S_STORAGE:
            return &safeshare__storage_reply__descriptor;
        case S_MAILER:
            return &safeshare__mail_reply__descriptor;
        default:
            return &safeshare__crypto_reply__descriptor;
    }
}

/* The standard fields of a reply of svc's shape, and its HEALTH body
   (NULL when the body is another one).                                */
static void
s_reply_fields (s_svc_t svc, const ProtobufCMessage *reply, cm_status_t *status,
                const Safeshare__Error **error, const Safeshare__HealthReply **health)
{
    const Safeshare__AuthReply *a = (const void *)reply;
    const Safeshare__CryptoReply *c = (const void *)reply;
    const Safeshare__StorageReply *s = (const void *)reply;
    const Safeshare__MailReply *m = (const void *)reply;
    switch (svc) {
        case S_AUTH:
            *status = a->status, *error = a->error;
            *health =
                a->body_case == SAFESHARE__AUTH_REPLY__BODY_HEALTH ? a->health : NULL;
            break;
        case S_STORAGE:
            *status = s->status, *error = s->error;
            *health =
                s->body_case == SAFESHARE__STORAGE_REPLY__BODY_HEALTH ? s->health : NULL;
            break;
        case S_MAILER:
            *status = m->status, *error = m->error;
            *health =
                m->body_case == SAFESHARE__MAIL_REPLY__BODY_HEALTH ? m->health : NULL;
            break;
        default:
            *status = c->status, *error = c->error;
            *health =
                c->body_case == SAFESHARE__CRYPTO_REPLY__BODY_HEALTH ? c->health : NULL;
            break;
    }
}

/* crypto-worker: a remote worker of this host is in the broker's pool.
   Workers name themselves "host:pid:thread" (cryptod_worker_name, the
   host name cut to 63 bytes the same way); the broker's own threads
   (local) would match on a shared host, and do not count.             */
static int
s_worker_check (const Safeshare__CryptoReply *r, const char *endpoint, FILE *err)
{
    if (r->body_case != SAFESHARE__CRYPTO_REPLY__BODY_POOL_STATUS || !r->pool_status) {
        return s_unhealthy (err, S_WORKER, endpoint,
                            "status: the broker's reply has no pool status");
    }
    char host[64] = "localhost";
    if (gethostname (host, sizeof host) != 0) {
        snprintf (host, sizeof host, "localhost");
    }
    host[sizeof host - 1] = '\0';
    size_t hl = strlen (host);
    const Safeshare__PoolStatusReply *ps = r->pool_status;
    size_t remote = 0;
    for (size_t i = 0; i < ps->n_workers; i++) {
        const Safeshare__WorkerStatus *w = ps->workers[i];
        if (!w || w->local || !w->name) {
            continue;
        }
        remote++;
        if (strncmp (w->name, host, hl) == 0 && w->name[hl] == ':') {
            return 0;
        }
    }
    return s_unhealthy (err, S_WORKER, endpoint,
                        "no worker of host %s is connected to the broker (%zu remote "
                        "worker(s) of other hosts)",
                        host, remote);
}

static int
s_service (s_svc_t svc, const char *endpoint, int timeout_ms, FILE *err)
{
    int rc = 1;
    ProtobufCMessage *reply = NULL;
    zsock_t *pair = NULL;
    zsock_t *sock = cm_sock_client (endpoint, s_svcs[svc].peer);
    if (!sock) {
        /* cm_sock_client logged the cause (a bad endpoint or key). */
        rc = s_unhealthy (err, svc, endpoint, "cannot open a client socket");
        goto cleanup;
    }
    pair = cm_curve_watch_new (sock, S_MONITOR_EVENTS);
    s_request_t req;
    const ProtobufCMessage *msg = s_request (&req, svc);
    char reqbuf[65];
    cm_meta_init (&req.meta, reqbuf, NULL, timeout_ms);
    cm_status_t st =
        cm_rpc_call (sock, msg, NULL, s_reply_desc (svc), timeout_ms, &reply, NULL);
    if (st == CM_INTERNAL) {
        rc = s_unhealthy (err, svc, endpoint, "status: malformed reply");
        goto cleanup;
    }
    if (st != CM_OK) {
        int seen = s_monitor_seen (pair);
        if (seen & S_SAW_AUTH_FAILED) {
            rc = s_unhealthy (err, svc, endpoint,
                              "refused: the CURVE handshake was refused (is this "
                              "key in the service's allow dir?)");
        } else if (seen & S_SAW_HANDSHAKE_FAIL) {
            rc = s_unhealthy (err, svc, endpoint,
                              "refused: the handshake failed (CURVE on one side only, "
                              "or the wrong server key?)");
        } else if ((seen & S_SAW_RETRIED) && !(seen & S_SAW_CONNECTED)) {
            rc = s_unhealthy (err, svc, endpoint, "refused: cannot connect");
        } else {
            rc = s_unhealthy (err, svc, endpoint, "timeout: no reply within %d ms",
                              timeout_ms);
        }
        goto cleanup;
    }
    cm_status_t status;
    const Safeshare__Error *error;
    const Safeshare__HealthReply *health;
    s_reply_fields (svc, reply, &status, &error, &health);
    if (status != CM_OK) {
        rc = s_unhealthy (
            err, svc, endpoint, "status %s (%.64s)", cm_status_name (status),
            error && error->code && error->code[0] ? error->code
                                                   : cm_status_code (status));
        goto cleanup;
    }
    if (svc == S_WORKER) {
        rc = s_worker_check ((const Safeshare__CryptoReply *)reply, endpoint, err);
        goto cleanup;
    }
    /* Every HEALTH is field 10, so another service at this endpoint
       would answer OK too: its name tells a crossed endpoint.         */
    const char *who = health && health->service ? health->service : "";
    if (strcmp (who, s_svcs[svc].name) != 0) {
        rc = s_unhealthy (err, svc, endpoint, "status: %.64s answered, not %s",
                          who[0] ? who : "something", s_svcs[svc].name);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (reply) {
        protobuf_c_message_free_unpacked (reply, NULL);
    }
    cm_curve_watch_destroy (sock, &pair);
    zsock_destroy (&sock);
    return rc;
}

int
cli_health (cm_config_t *config, const char *service, int timeout_ms, FILE *err)
{
    s_svc_t svc = S_COUNT;
    for (int i = 0; service && i < S_COUNT; i++) {
        if (strcmp (service, s_svcs[i].name) == 0) {
            svc = (s_svc_t)i;
        }
    }
    if (svc == S_COUNT) {
        fprintf (err, "safeshare: health: unknown service %.64s\n",
                 service ? service : "");
        return 1;
    }
    if (timeout_ms < 1) {
        timeout_ms = CLI_HEALTH_TIMEOUT_DEFAULT;
    }
    const char *where = cm_config_get (config, s_svcs[svc].key);
    if (!where || !where[0]) {
        return s_unhealthy (err, svc, "?", "%s is not set", s_svcs[svc].key);
    }
    if (svc == S_GATEWAY) {
        return s_gateway (where, timeout_ms, err);
    }
    /* Quiet: the one line below says what went wrong; the RPC layer's
       own warnings (no reply within ...) would repeat it.             */
    cm_log_level_t level = cm_log_get_level ();
    cm_log_set_level (CM_LOG_ERROR);
    int rc = s_service (svc, where, timeout_ms, err);
    cm_log_set_level (level);
    return rc;
}
