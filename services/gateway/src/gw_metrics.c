/*  gw_metrics -- counters, histograms and GET /metrics (see gw_metrics.h). */
#include "gw_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cm_log.h"
#include "crypto.pb-c.h"
#include "mailer.pb-c.h"

/* Room for every gw_route_id_t (the table has ~25); ids past it count
   as "none".                                                          */
#define S_ROUTES 64
/* Status codes 100..599, one slot each; anything else counts as 500. */
#define S_STATUS_MIN 100
#define S_STATUSES   500

static const char *s_methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                  "PATCH", "DELETE", "OPTIONS", "other"};
#define S_METHODS (sizeof s_methods / sizeof s_methods[0])

/* Upper bounds in microseconds; +Inf is implicit (the count). */
static const uint64_t s_http_le_us[] = {5000,     10000,    25000,   50000,   100000,
                                        250000,   500000,   1000000, 2500000, 5000000,
                                        10000000, 30000000, 60000000};
#define S_HTTP_BUCKETS (sizeof s_http_le_us / sizeof s_http_le_us[0])
static const uint64_t s_rpc_le_us[] = {500,     1000,    2500,   5000,   10000,
                                       25000,   50000,   100000, 250000, 500000,
                                       1000000, 2500000, 5000000};
#define S_RPC_BUCKETS (sizeof s_rpc_le_us / sizeof s_rpc_le_us[0])

typedef struct {
    uint64_t buckets[S_HTTP_BUCKETS]; /* not cumulative: summed when shown */
    uint64_t count;
    uint64_t sum_us;
} s_http_hist_t;

typedef struct {
    uint64_t buckets[S_RPC_BUCKETS];
    uint64_t count;
    uint64_t sum_us;
    uint64_t failures;
} s_rpc_hist_t;

struct gw_metrics_t {
    uint64_t requests[S_ROUTES][S_METHODS][S_STATUSES];
    s_http_hist_t latency[S_ROUTES];
    uint64_t bytes_in[S_ROUTES];
    uint64_t bytes_out[S_ROUTES];
    uint64_t uploads, upload_bytes;
    uint64_t downloads[2], download_bytes[2]; /* [0] owner, [1] share link */
    s_rpc_hist_t rpc[GW_SVC_COUNT];
};

static void
s_add (uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add (counter, n, __ATOMIC_RELAXED);
}

static uint64_t
s_get (const uint64_t *counter)
{
    return __atomic_load_n (counter, __ATOMIC_RELAXED);
}

gw_metrics_t *
gw_metrics_new (void)
{
    return calloc (1, sizeof (gw_metrics_t));
}

void
gw_metrics_destroy (gw_metrics_t **self_p)
{
    if (self_p && *self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

uint64_t
gw_metrics_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static size_t
s_method_index (const char *method)
{
    for (size_t i = 0; method && i + 1 < S_METHODS; i++) {
        if (strcmp (method, s_methods[i]) == 0) {
            return i;
        }
    }
    return S_METHODS - 1;
}

void
gw_metrics_http (gw_metrics_t *self, gw_route_id_t route, const char *method, int status,
                 uint64_t duration_us, uint64_t bytes_in, uint64_t bytes_out)
{
    if (self == NULL) {
        return;
    }
    size_t r = (unsigned)route < S_ROUTES && gw_route_name (route) ? (size_t)route : 0;
    if (status < S_STATUS_MIN || status >= S_STATUS_MIN + S_STATUSES) {
        status = 500;
    }
    s_add (&self->requests[r][s_method_index (method)][status - S_STATUS_MIN], 1);
    s_http_hist_t *h = &self->latency[r];
    for (size_t i = 0; i < S_HTTP_BUCKETS; i++) {
        if (duration_us <= s_http_le_us[i]) {
            s_add (&h->buckets[i], 1);
            break;
        }
    }
    s_add (&h->count, 1);
    s_add (&h->sum_us, duration_us);
    s_add (&self->bytes_in[r], bytes_in);
    s_add (&self->bytes_out[r], bytes_out);
}

void
gw_metrics_upload (gw_metrics_t *self, uint64_t bytes)
{
    if (self) {
        s_add (&self->uploads, 1);
        s_add (&self->upload_bytes, bytes);
    }
}

void
gw_metrics_download (gw_metrics_t *self, bool link, uint64_t bytes)
{
    if (self) {
        s_add (&self->downloads[link], 1);
        s_add (&self->download_bytes[link], bytes);
    }
}

void
gw_metrics_rpc (gw_metrics_t *self, gw_svc_t svc, uint64_t duration_us, bool ok)
{
    if (self == NULL || (unsigned)svc >= GW_SVC_COUNT) {
        return;
    }
    s_rpc_hist_t *h = &self->rpc[svc];
    if (!ok) {
        s_add (&h->failures, 1);
        return;
    }
    for (size_t i = 0; i < S_RPC_BUCKETS; i++) {
        if (duration_us <= s_rpc_le_us[i]) {
            s_add (&h->buckets[i], 1);
            break;
        }
    }
    s_add (&h->count, 1);
    s_add (&h->sum_us, duration_us);
}

/* ---- the exposition ---------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} s_buf_t;

static void s_put (s_buf_t *b, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_put (s_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (b->data + b->len, b->cap - b->len, fmt, ap);
    va_end (ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        size_t cap = b->cap * 2 + (size_t)n;
        char *grown = realloc (b->data, cap);
        if (grown == NULL) {
            return; /* out of memory: this line is lost, the rest stands */
        }
        b->data = grown;
        b->cap = cap;
        va_start (ap, fmt);
        vsnprintf (b->data + b->len, b->cap - b->len, fmt, ap);
        va_end (ap);
    }
    b->len += (size_t)n;
}

static void
s_head (s_buf_t *b, const char *name, const char *type, const char *help)
{
    s_put (b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *
s_route_label (size_t r)
{
    return r == 0 ? "none" : gw_route_name ((gw_route_id_t)r);
}

/* le in seconds from microseconds, shortest exact form. */
static void
s_le (char *buf, size_t len, uint64_t us)
{
    snprintf (buf, len, "%g", (double)us / 1e6);
}

/* One labelled histogram series: cumulative buckets, +Inf, _sum, _count.
   count is read once by the caller: +Inf and _count agree even
   mid-update. */
static void
s_hist_put (s_buf_t *b, const char *metric, const char *label, const char *value,
            const uint64_t *le_us, const uint64_t *buckets, size_t n, uint64_t count,
            const uint64_t *sum_us)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < n; i++) {
        char le[32];
        s_le (le, sizeof le, le_us[i]);
        cum += s_get (&buckets[i]);
        s_put (b, "%s_bucket{%s=\"%s\",le=\"%s\"} %llu\n", metric, label, value, le,
               (unsigned long long)cum);
    }
    if (count < cum) {
        count = cum;
    }
    s_put (b, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", metric, label, value,
           (unsigned long long)count);
    s_put (b, "%s_sum{%s=\"%s\"} %.6f\n", metric, label, value,
           (double)s_get (sum_us) / 1e6);
    s_put (b, "%s_count{%s=\"%s\"} %llu\n", metric, label, value,
           (unsigned long long)count);
}

static void
s_http_series (gw_metrics_t *self, s_buf_t *b)
{
    s_head (b, "safeshare_http_requests_total", "counter",
            "HTTP requests answered, by route, method and status.");
    for (size_t r = 0; r < S_ROUTES; r++) {
        if (r != 0 && gw_route_name ((gw_route_id_t)r) == NULL) {
            continue;
        }
        for (size_t m = 0; m < S_METHODS; m++) {
            for (size_t s = 0; s < S_STATUSES; s++) {
                uint64_t n = s_get (&self->requests[r][m][s]);
                if (n) {
                    s_put (b,
                           "safeshare_http_requests_total{route=\"%s\",method=\"%s\","
                           "status=\"%zu\"} %llu\n",
                           s_route_label (r), s_methods[m], s + S_STATUS_MIN,
                           (unsigned long long)n);
                }
            }
        }
    }
    s_head (b, "safeshare_http_request_duration_seconds", "histogram",
            "Time from the request's headers to the end of its answer, by route.");
    for (size_t r = 0; r < S_ROUTES; r++) {
        const s_http_hist_t *h = &self->latency[r];
        uint64_t count = s_get (&h->count);
        if (count == 0) {
            continue;
        }
        s_hist_put (b, "safeshare_http_request_duration_seconds", "route",
                    s_route_label (r), s_http_le_us, h->buckets, S_HTTP_BUCKETS, count,
                    &h->sum_us);
    }
    s_head (b, "safeshare_http_request_body_bytes_total", "counter",
            "Request body bytes read, by route.");
    for (size_t r = 0; r < S_ROUTES; r++) {
        if (s_get (&self->latency[r].count)) {
            s_put (b, "safeshare_http_request_body_bytes_total{route=\"%s\"} %llu\n",
                   s_route_label (r), (unsigned long long)s_get (&self->bytes_in[r]));
        }
    }
    s_head (b, "safeshare_http_response_body_bytes_total", "counter",
            "Response body bytes written, by route.");
    for (size_t r = 0; r < S_ROUTES; r++) {
        if (s_get (&self->latency[r].count)) {
            s_put (b, "safeshare_http_response_body_bytes_total{route=\"%s\"} %llu\n",
                   s_route_label (r), (unsigned long long)s_get (&self->bytes_out[r]));
        }
    }
}

static void
s_transfer_series (gw_metrics_t *self, s_buf_t *b)
{
    s_head (b, "safeshare_uploads_total", "counter", "Uploads committed.");
    s_put (b, "safeshare_uploads_total %llu\n",
           (unsigned long long)s_get (&self->uploads));
    s_head (b, "safeshare_upload_bytes_total", "counter",
            "File bytes of committed uploads.");
    s_put (b, "safeshare_upload_bytes_total %llu\n",
           (unsigned long long)s_get (&self->upload_bytes));
    static const char *via[2] = {"owner", "link"};
    s_head (b, "safeshare_downloads_total", "counter",
            "Downloads answered 200/206, by way in (owner: /api/files/{id}/content, "
            "link: /api/download/{token}).");
    for (int i = 0; i < 2; i++) {
        s_put (b, "safeshare_downloads_total{via=\"%s\"} %llu\n", via[i],
               (unsigned long long)s_get (&self->downloads[i]));
    }
    s_head (b, "safeshare_download_bytes_total", "counter",
            "File bytes sent by downloads, by way in.");
    for (int i = 0; i < 2; i++) {
        s_put (b, "safeshare_download_bytes_total{via=\"%s\"} %llu\n", via[i],
               (unsigned long long)s_get (&self->download_bytes[i]));
    }
}

static void
s_rpc_series (gw_metrics_t *self, s_buf_t *b)
{
    s_head (b, "safeshare_rpc_duration_seconds", "histogram",
            "Round trip of the gateway's calls to each service.");
    for (int svc = 0; svc < GW_SVC_COUNT; svc++) {
        const s_rpc_hist_t *h = &self->rpc[svc];
        const char *name = gw_svc_name ((gw_svc_t)svc);
        uint64_t count = s_get (&h->count);
        s_hist_put (b, "safeshare_rpc_duration_seconds", "service", name, s_rpc_le_us,
                    h->buckets, S_RPC_BUCKETS, count, &h->sum_us);
    }
    s_head (b, "safeshare_rpc_failures_total", "counter",
            "Calls to each service that timed out or failed in transport (its "
            "socket dropped and made afresh).");
    for (int svc = 0; svc < GW_SVC_COUNT; svc++) {
        s_put (b, "safeshare_rpc_failures_total{service=\"%s\"} %llu\n",
               gw_svc_name ((gw_svc_t)svc),
               (unsigned long long)s_get (&self->rpc[svc].failures));
    }
}

/* crypto's pool_status, or NULL (logged by gw_rpc). Free the reply. */
static Safeshare__CryptoReply *
s_pool_status (gw_req_t *req, int timeout_ms)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__PoolStatusRequest body = SAFESHARE__POOL_STATUS_REQUEST__INIT;
    Safeshare__CryptoRequest r = SAFESHARE__CRYPTO_REQUEST__INIT;
    r.meta = &meta;
    r.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_POOL_STATUS;
    r.pool_status = &body;
    ProtobufCMessage *reply = NULL;
    cm_status_t rc =
        gw_rpc_call (req->rpc, GW_SVC_CRYPTO, req->req_id, &r.base, NULL,
                     &safeshare__crypto_reply__descriptor, timeout_ms, &reply, NULL);
    Safeshare__CryptoReply *cr = (Safeshare__CryptoReply *)reply;
    if (rc == CM_OK && (cr->status != SAFESHARE__STATUS__STATUS_OK ||
                        cr->body_case != SAFESHARE__CRYPTO_REPLY__BODY_POOL_STATUS ||
                        !cr->pool_status)) {
        cm_warn (req->req_id, "pool_status of crypto refused: status=%d",
                 (int)cr->status);
        rc = CM_INTERNAL;
    }
    if (rc != CM_OK) {
        if (reply) {
            protobuf_c_message_free_unpacked (reply, NULL);
        }
        return NULL;
    }
    return cr;
}

/* The mailer's STATS, as s_pool_status. */
static Safeshare__MailReply *
s_mail_stats (gw_req_t *req, int timeout_ms)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__MailStatsRequest body = SAFESHARE__MAIL_STATS_REQUEST__INIT;
    Safeshare__MailRequest r = SAFESHARE__MAIL_REQUEST__INIT;
    r.meta = &meta;
    r.body_case = SAFESHARE__MAIL_REQUEST__BODY_STATS;
    r.stats = &body;
    ProtobufCMessage *reply = NULL;
    cm_status_t rc =
        gw_rpc_call (req->rpc, GW_SVC_MAILER, req->req_id, &r.base, NULL,
                     &safeshare__mail_reply__descriptor, timeout_ms, &reply, NULL);
    Safeshare__MailReply *mr = (Safeshare__MailReply *)reply;
    if (rc == CM_OK &&
        (mr->status != SAFESHARE__STATUS__STATUS_OK ||
         mr->body_case != SAFESHARE__MAIL_REPLY__BODY_STATS || !mr->stats)) {
        cm_warn (req->req_id, "STATS of the mailer refused: status=%d", (int)mr->status);
        rc = CM_INTERNAL;
    }
    if (rc != CM_OK) {
        if (reply) {
            protobuf_c_message_free_unpacked (reply, NULL);
        }
        return NULL;
    }
    return mr;
}

static void
s_service_series (gw_req_t *req, s_buf_t *b, int timeout_ms)
{
    bool ok[GW_SVC_COUNT];
    uint64_t latency[GW_SVC_COUNT];
    gw_rpc_health_all (req->rpc, req->req_id, timeout_ms, ok, latency);
    s_head (b, "safeshare_service_up", "gauge",
            "1 if the service answered HEALTH at this scrape, else 0.");
    for (int i = 0; i < GW_SVC_COUNT; i++) {
        s_put (b, "safeshare_service_up{service=\"%s\"} %d\n", gw_svc_name ((gw_svc_t)i),
               ok[i] ? 1 : 0);
    }
    s_head (b, "safeshare_service_health_seconds", "gauge",
            "How long the service took to answer HEALTH at this scrape (the timeout "
            "when it did not).");
    for (int i = 0; i < GW_SVC_COUNT; i++) {
        s_put (b, "safeshare_service_health_seconds{service=\"%s\"} %.3f\n",
               gw_svc_name ((gw_svc_t)i), (double)latency[i] / 1e3);
    }

    /* Asked only when up: a dead service would cost a timeout each.   */
    Safeshare__CryptoReply *cr =
        ok[GW_SVC_CRYPTO] ? s_pool_status (req, timeout_ms) : NULL;
    s_head (b, "safeshare_crypto_pool_up", "gauge",
            "1 if crypto answered pool_status at this scrape; the crypto_* gauges "
            "below are absent when 0.");
    s_put (b, "safeshare_crypto_pool_up %d\n", cr ? 1 : 0);
    if (cr) {
        const Safeshare__PoolStatusReply *ps = cr->pool_status;
        size_t busy = 0;
        for (size_t i = 0; i < ps->n_workers; i++) {
            busy += ps->workers[i] && ps->workers[i]->busy;
        }
        s_head (b, "safeshare_crypto_queue_depth", "gauge",
                "Crypto jobs waiting for a worker.");
        s_put (b, "safeshare_crypto_queue_depth %llu\n",
               (unsigned long long)ps->queue_depth);
        s_head (b, "safeshare_crypto_queue_bytes", "gauge",
                "Queue cost of the waiting crypto jobs.");
        s_put (b, "safeshare_crypto_queue_bytes %llu\n",
               (unsigned long long)ps->queue_bytes);
        s_head (b, "safeshare_crypto_workers_alive", "gauge",
                "Crypto workers the broker holds (local threads and remote).");
        s_put (b, "safeshare_crypto_workers_alive %zu\n", ps->n_workers);
        s_head (b, "safeshare_crypto_workers_busy", "gauge",
                "Crypto workers holding a job now.");
        s_put (b, "safeshare_crypto_workers_busy %zu\n", busy);
        s_head (b, "safeshare_crypto_requeued_total", "counter",
                "Crypto jobs put back after losing their worker (since crypto started).");
        s_put (b, "safeshare_crypto_requeued_total %llu\n",
               (unsigned long long)ps->requeued_total);
        protobuf_c_message_free_unpacked (&cr->base, NULL);
    }

    Safeshare__MailReply *mr = ok[GW_SVC_MAILER] ? s_mail_stats (req, timeout_ms) : NULL;
    s_head (b, "safeshare_mail_stats_up", "gauge",
            "1 if the mailer answered STATS at this scrape; the mail_* series below "
            "are absent when 0.");
    s_put (b, "safeshare_mail_stats_up %d\n", mr ? 1 : 0);
    if (mr) {
        const Safeshare__MailStatsReply *st = mr->stats;
        s_head (b, "safeshare_mail_queue_depth", "gauge",
                "Mails waiting for a first or next attempt.");
        s_put (b, "safeshare_mail_queue_depth %llu\n", (unsigned long long)st->pending);
        s_head (b, "safeshare_mail_jobs", "gauge", "Mail outbox rows by state.");
        s_put (b, "safeshare_mail_jobs{state=\"pending\"} %llu\n",
               (unsigned long long)st->pending);
        s_put (b, "safeshare_mail_jobs{state=\"sending\"} %llu\n",
               (unsigned long long)st->sending);
        s_put (b, "safeshare_mail_jobs{state=\"sent\"} %llu\n",
               (unsigned long long)st->sent);
        s_put (b, "safeshare_mail_jobs{state=\"failed\"} %llu\n",
               (unsigned long long)st->failed);
        s_head (b, "safeshare_mail_sent_total", "counter",
                "Mails delivered (since the mailer started).");
        s_put (b, "safeshare_mail_sent_total %llu\n", (unsigned long long)st->sent_total);
        s_head (b, "safeshare_mail_failed_total", "counter",
                "Mails given up on (since the mailer started).");
        s_put (b, "safeshare_mail_failed_total %llu\n",
               (unsigned long long)st->failed_total);
        s_head (b, "safeshare_mail_retried_total", "counter",
                "Transient mail failures scheduled again (since the mailer started).");
        s_put (b, "safeshare_mail_retried_total %llu\n",
               (unsigned long long)st->retried_total);
        protobuf_c_message_free_unpacked (&mr->base, NULL);
    }
}

int
gw_metrics_reply (gw_metrics_t *self, gw_req_t *req, int timeout_ms)
{
    s_buf_t b = {malloc (64 * 1024), 0, 64 * 1024};
    if (b.data == NULL) {
        return gw_reply_error (req, 503, "service_unavailable", "out of memory");
    }
    b.data[0] = '\0';
    /* The services first: the gateway's own series then include the
       calls this scrape made.                                         */
    s_buf_t svc = {malloc (8 * 1024), 0, 8 * 1024};
    if (svc.data == NULL) {
        free (b.data);
        return gw_reply_error (req, 503, "service_unavailable", "out of memory");
    }
    svc.data[0] = '\0';
    s_service_series (req, &svc, timeout_ms);
    s_http_series (self, &b);
    s_transfer_series (self, &b);
    s_rpc_series (self, &b);
    s_put (&b, "%s", svc.data);
    free (svc.data);
    int status = gw_reply_text (req, 200, "text/plain; version=0.0.4; charset=utf-8",
                                b.data, b.len);
    free (b.data);
    return status;
}
