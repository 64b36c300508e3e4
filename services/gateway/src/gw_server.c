/*  gw_server -- civetweb set-up and request dispatch (see gw_server.h).  */
#include "gw_server.h"
#include "gw_api.h"
#include "gw_http.h"
#include "gw_metrics.h"

#include <civetweb.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "cm_log.h"
#include "cm_util.h"

/* civetweb applies this to each wait for data (headers and every
   mg_read), not to a whole request: a byte now and then restarts it.
   Whole body reads are bounded by gw_watchdog (GW_JSON_BODY_DEADLINE_MS,
   GW_BODY_GRACE_MS + GW_BODY_MIN_RATE) and unread bodies by
   gw_conn_close.                                                      */
#define S_REQUEST_TIMEOUT_MS "30000"
/* GET /metrics asks crypto and the mailer: each gets this long.       */
#define S_SCRAPE_TIMEOUT_MS 500

struct gw_server_t {
    gw_settings_t settings;
    gw_keys_t *keys;   /* filled from auth's KEYS on first need */
    gw_users_t *users; /* user state, SAFESHARE_USER_CACHE_TTL */
    gw_watchdog_t *watchdog;
    gw_metrics_t *metrics;
    struct mg_context *ctx;
    /* The drain: requests inside s_handle, and whether new ones are
       turned away. Under lock; idle signalled when in_flight drops to
       0 while draining.                                               */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    bool sync_ready; /* lock and idle initialised */
    int in_flight;
    bool draining;
};

/* A request enters: counted; true if the gateway is draining. */
static bool
s_enter (gw_server_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->in_flight++;
    bool draining = self->draining;
    pthread_mutex_unlock (&self->lock);
    return draining;
}

/* A request leaves (its answer is out); true if draining. */
static bool
s_leave (gw_server_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->in_flight--;
    bool draining = self->draining;
    if (draining && self->in_flight == 0) {
        pthread_cond_broadcast (&self->idle);
    }
    pthread_mutex_unlock (&self->lock);
    return draining;
}

/* Worker threads (type 1) each get their own service sockets. */
static void *
s_init_thread (const struct mg_context *ctx, int thread_type)
{
    if (thread_type != 1) {
        return NULL;
    }
    gw_server_t *self = mg_get_user_data (ctx);
    gw_rpc_t *rpc = gw_rpc_new (&self->settings);
    if (rpc == NULL) {
        cm_error (NULL, "gw_rpc_new() failed for a worker thread");
    } else {
        gw_rpc_set_metrics (rpc, self->metrics);
    }
    return rpc;
}

static void
s_exit_thread (const struct mg_context *ctx, int thread_type, void *thread_pointer)
{
    gw_rpc_t *rpc = thread_pointer;
    gw_rpc_destroy (&rpc);
}

static int
s_log_message (const struct mg_connection *conn, const char *message)
{
    cm_warn (NULL, "civetweb: %s", message);
    return 1;
}

/* GET /metrics: SAFESHARE_METRICS_ALLOW for the client's address (the
   peer, or what a trusted proxy says it saw), then the token if one is
   set. Returns the status sent.                                        */
static int
s_metrics (gw_server_t *self, gw_req_t *req)
{
    req->must_close = gw_has_body (req);
    /* A trusted proxy's unusable X-Forwarded-For (twice, malformed):
       who the client is is unknown, and /metrics is not for unknowns
       -- the proxy's own address must not stand in for it here.      */
    if (req->client.forwarded == GW_FORWARDED_BAD ||
        !gw_cidr_list_has (&self->settings.metrics_allow, req->client.addr)) {
        cm_info (req->req_id, "metrics refused to address %s%s", req->client.addr,
                 req->client.forwarded == GW_FORWARDED_BAD ? " (unusable X-Forwarded-For)"
                                                           : "");
        return gw_reply_error (req, 403, "forbidden",
                               "metrics are not served to this address");
    }
    const char *authorization = mg_get_header (req->conn, "Authorization");
    if (!gw_token_hash_check (&self->settings.metrics_token, authorization)) {
        req->www_authenticate = true;
        return gw_reply_error (req, 401,
                               authorization ? "invalid_token" : "missing_token",
                               "metrics need the configured bearer token");
    }
    return gw_metrics_reply (self->metrics, req, S_SCRAPE_TIMEOUT_MS);
}

/* A CORS preflight (OPTIONS with Origin and Access-Control-Request-
   Method, CORS configured): 204 with the path's methods for an allowed
   origin (the browser then judges the method), 403 for another, 404
   for an unknown path. Returns the status sent.                        */
static int
s_preflight (gw_req_t *req, const char *path)
{
    req->must_close = gw_has_body (req);
    if (req->cors_origin == NULL) {
        return gw_reply_error (req, 403, "origin_not_allowed",
                               "this origin is not allowed (SAFESHARE_CORS_ORIGINS)");
    }
    if (gw_route_match ("OPTIONS", path, &req->route) != GW_MATCH_BAD_METHOD) {
        return gw_reply_error (req, 404, "not_found", "no such endpoint");
    }
    req->cors_allow_methods = req->route.allow;
    return gw_reply_empty (req, 204);
}

static int
s_handle (struct mg_connection *conn, void *cbdata)
{
    gw_server_t *self = cbdata;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    uint64_t start = cm_mono_ms ();
    uint64_t start_us = gw_metrics_now_us ();
    gw_req_t req;
    memset (&req, 0, sizeof req);
    req.conn = conn;
    req.settings = &self->settings;
    req.keys = self->keys;
    req.users = self->users;
    req.rpc = mg_get_thread_pointer (conn);
    req.watchdog = self->watchdog;
    req.watch_slot = -1;
    /* civetweb keeps the first MG_MAX_HEADERS headers and drops the rest
       unseen: a proxy that appends its own after the client's may have
       lost them there (or a second copy), so they count as unknown.    */
    bool cut = ri->num_headers >= MG_MAX_HEADERS;
    /* A client's own id is believed only from a trusted proxy, and only
       given once (which copy the proxy wrote is unknown): anyone else
       could plant ids that collide with another's in the logs.        */
    const char *client_id = NULL;
    if (!cut && gw_header_count (&req, "X-Request-Id", &client_id) == 1 &&
        cm_is_request_id (client_id) &&
        gw_cidr_list_has (&self->settings.trusted_proxies, ri->remote_addr)) {
        snprintf (req.req_id, sizeof req.req_id, "%s", client_id);
    } else if (cm_random_hex (req.req_id, 8) != 0) {
        snprintf (req.req_id, sizeof req.req_id, "norandom");
    }
    /* Who the client is, once: auth (throttling, audit), /metrics and
       the access line all judge the same address and scheme.         */
    const char *xff = NULL;
    const char *xfp = NULL;
    int xff_count = gw_header_count (&req, "X-Forwarded-For", &xff);
    int xfp_count = gw_header_count (&req, "X-Forwarded-Proto", &xfp);
    gw_client_resolve (&req.client, &self->settings.trusted_proxies, ri->remote_addr,
                       ri->is_ssl != 0, xff, cut ? -1 : xff_count, xfp,
                       cut ? -1 : xfp_count);
    if (req.client.forwarded == GW_FORWARDED_BAD) {
        if (cut) {
            cm_warn (req.req_id,
                     "request from trusted proxy %s has %d headers or more (the rest "
                     "are dropped): its X-Forwarded-For is unknown, the request is "
                     "judged as the proxy's",
                     req.client.addr, MG_MAX_HEADERS);
        } else {
            cm_warn (req.req_id,
                     "X-Forwarded-For from trusted proxy %s is given twice or is not an "
                     "address: the request is judged as the proxy's",
                     req.client.addr);
        }
    }
    bool draining = s_enter (self);
    const char *origin = mg_get_header (conn, "Origin");
    if (self->settings.cors_origins.count > 0) {
        req.cors_vary = true;
        req.cors_origin = gw_origins_find (&self->settings.cors_origins, origin);
    }

    const char *method = ri->request_method ? ri->request_method : "";
    const char *path = ri->local_uri_raw ? ri->local_uri_raw : ri->local_uri;
    const char *cl = mg_get_header (conn, "Content-Length");
    const char *te = mg_get_header (conn, "Transfer-Encoding");
    int status;
    gw_match_t match = GW_MATCH_NOT_FOUND;
    if (draining) {
        /* New work goes elsewhere; /readyz too says so, for the proxy.
           Close: an unread body must not be discarded by civetweb,
           and the client's next request belongs on another instance. */
        req.must_close = true;
        status = gw_reply_error (&req, 503, "shutting_down",
                                 "the gateway is shutting down; send the request again");
    } else if (gw_header_count (&req, "Content-Length", NULL) > 1 ||
               gw_header_count (&req, "Transfer-Encoding", NULL) > 1) {
        /* civetweb frames the body by the first one; a proxy in front
           may use another: the same smuggling as CL + TE.             */
        req.must_close = true;
        status = gw_reply_error (&req, 400, "invalid_request",
                                 "Content-Length or Transfer-Encoding given twice");
    } else if (cl && te) {
        /* Two framings for one body is how requests get smuggled. */
        req.must_close = true;
        status = gw_reply_error (&req, 400, "invalid_request",
                                 "Content-Length and Transfer-Encoding together");
    } else if (te && strcasecmp (te, "chunked") != 0) {
        req.must_close = true;
        status = gw_reply_error (&req, 400, "invalid_request",
                                 "only chunked Transfer-Encoding is accepted");
    } else if (req.rpc == NULL) {
        req.must_close = true;
        status = gw_reply_error (&req, 503, "service_unavailable", "worker not ready");
    } else if (req.cors_vary && origin && strcmp (method, "OPTIONS") == 0 &&
               mg_get_header (conn, "Access-Control-Request-Method")) {
        status = s_preflight (&req, path);
    } else {
        match = gw_route_match (method, path, &req.route);
        if (match == GW_MATCH_NOT_FOUND) {
            req.must_close = gw_has_body (&req);
            status = gw_reply_error (&req, 404, "not_found", "no such endpoint");
        } else if (match == GW_MATCH_BAD_METHOD) {
            req.must_close = gw_has_body (&req);
            req.allow = req.route.allow;
            status = gw_reply_error (&req, 405, "method_not_allowed",
                                     "method not allowed here; see the Allow header");
        } else if (req.route.id == GW_ROUTE_METRICS) {
            status = s_metrics (self, &req);
        } else {
            status = gw_api_handle (&req);
        }
    }
    /* Never leave a deadline armed past the handler: civetweb closes
       (and may reuse) the socket after we return.                     */
    gw_body_unwatch (&req);
    /* Never the path: download tokens travel in it. */
    cm_info (req.req_id, "%s %s status=%d ms=%llu client=%s scheme=%s", method,
             match == GW_MATCH_OK ? req.route.name : "-", status,
             (unsigned long long)(cm_mono_ms () - start), req.client.addr,
             req.client.scheme);
    status = status > 0 ? status : 500;
    gw_route_id_t route = match == GW_MATCH_OK ? req.route.id : GW_ROUTE_NONE;
    gw_metrics_http (self->metrics, route, method, status,
                     gw_metrics_now_us () - start_us, req.bytes_in, req.bytes_out);
    if (route == GW_ROUTE_FILES_UPLOAD && status == 201) {
        gw_metrics_upload (self->metrics, req.upload_bytes);
    }
    if ((route == GW_ROUTE_FILE_CONTENT || route == GW_ROUTE_DOWNLOAD) &&
        (status == 200 || status == 206)) {
        gw_metrics_download (self->metrics, route == GW_ROUTE_DOWNLOAD, req.bytes_out);
    }
    if (s_leave (self)) {
        /* Draining: the connection ends after this answer instead of
           waiting for a next request (it would only get a 503).      */
        mg_disable_connection_keep_alive (conn);
    }
    return status > 0 ? status : 500;
}

gw_server_t *
gw_server_new (const gw_settings_t *settings, char *err, size_t errlen)
{
    gw_server_t *self = calloc (1, sizeof *self);
    if (self == NULL) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->settings = *settings;
    if (pthread_mutex_init (&self->lock, NULL) != 0) {
        snprintf (err, errlen, "pthread_mutex_init() failed");
        free (self);
        return NULL;
    }
    /* The drain's deadline is monotonic: so is the condvar's clock. */
    pthread_condattr_t attr;
    int rc = pthread_condattr_init (&attr);
    if (rc == 0) {
        rc = pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
        rc = rc == 0 ? pthread_cond_init (&self->idle, &attr) : rc;
        pthread_condattr_destroy (&attr);
    }
    if (rc != 0) {
        snprintf (err, errlen, "pthread_cond_init() failed: %s", strerror (rc));
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    self->sync_ready = true;
    /* No key yet: the first authenticated request asks auth (gw_keys),
       so the gateway starts whether or not auth is up.                */
    self->keys = gw_keys_new (settings->jwt_issuer, settings->jwt_audience, NULL);
    self->users = gw_users_new (GW_USERS_SLOTS, settings->user_cache_ttl_s);
    if (self->keys == NULL || self->users == NULL) {
        snprintf (err, errlen, "cannot create the token verifier or the user cache");
        gw_server_destroy (&self);
        return NULL;
    }
    /* One slot per worker: each runs one request at a time.            */
    self->watchdog = gw_watchdog_new (settings->http_threads);
    self->metrics = gw_metrics_new ();
    if (self->watchdog == NULL || self->metrics == NULL) {
        snprintf (err, errlen, "cannot start the request watchdog");
        gw_server_destroy (&self);
        return NULL;
    }
    char threads[16];
    snprintf (threads, sizeof threads, "%d", settings->http_threads);
    const char *options[] = {"listening_ports", self->settings.http_addr, "num_threads",
                             threads, "request_timeout_ms", S_REQUEST_TIMEOUT_MS,
                             "enable_keep_alive", "yes", "tcp_nodelay", "1",
                             /* CORS is configuration, not civetweb's default "*". */
                             "access_control_allow_origin", "",
                             /* No document_root: no file serving, CGI or listings. */
                             NULL};
    struct mg_callbacks callbacks;
    memset (&callbacks, 0, sizeof callbacks);
    callbacks.init_thread = s_init_thread;
    callbacks.exit_thread = s_exit_thread;
    callbacks.log_message = s_log_message;
    struct mg_init_data init = {&callbacks, self, options};
    char text[256] = "";
    unsigned code = 0;
    struct mg_error_data error = {&code, text, sizeof text};
    self->ctx = mg_start2 (&init, &error);
    if (self->ctx == NULL) {
        snprintf (err, errlen, "cannot listen on %s: %s", settings->http_addr,
                  *text ? text : "mg_start failed");
        gw_server_destroy (&self);
        return NULL;
    }
    /* Every path comes to one dispatcher: the route table is gw_route.c. */
    mg_set_request_handler (self->ctx, "/", s_handle, self);
    return self;
}

void
gw_server_destroy (gw_server_t **self_p)
{
    if (self_p && *self_p) {
        gw_server_t *self = *self_p;
        if (self->ctx) {
            mg_stop (self->ctx);
        }
        gw_watchdog_destroy (&self->watchdog);
        gw_metrics_destroy (&self->metrics);
        gw_users_destroy (&self->users);
        gw_keys_destroy (&self->keys);
        if (self->sync_ready) {
            pthread_cond_destroy (&self->idle);
            pthread_mutex_destroy (&self->lock);
        }
        free (self);
        *self_p = NULL;
    }
}

int
gw_server_drain_begin (gw_server_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->draining = true;
    int n = self->in_flight;
    pthread_mutex_unlock (&self->lock);
    return n;
}

int
gw_server_drain_wait (gw_server_t *self, uint64_t deadline_ms)
{
    pthread_mutex_lock (&self->lock);
    while (self->in_flight > 0) {
        uint64_t now = cm_mono_ms ();
        if (now >= deadline_ms) {
            break;
        }
        uint64_t wait = deadline_ms - now;
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(wait / 1000);
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = pthread_cond_timedwait (&self->idle, &self->lock, &ts);
        if (rc != 0 && rc != ETIMEDOUT) {
            cm_error (NULL, "pthread_cond_timedwait() failed: %s", strerror (rc));
            break;
        }
    }
    int n = self->in_flight;
    pthread_mutex_unlock (&self->lock);
    return n;
}

int
gw_server_port (gw_server_t *self)
{
    struct mg_server_port ports[4];
    int n = mg_get_server_ports (self->ctx, 4, ports);
    return n > 0 ? ports[0].port : -1;
}
