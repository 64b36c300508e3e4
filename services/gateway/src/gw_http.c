/*  gw_http -- answering HTTP requests (see gw_http.h).                  */
#include "gw_http.h"
#include "gw_json.h"

#include "gw_sock.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include "cm_log.h"
#include "cm_util.h"

/* This request's socket, or -1 (logged) when the client is gone. */
static int
s_conn_fd (gw_req_t *req)
{
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    int fd = gw_sock_find (ri->remote_addr, ri->remote_port, ri->server_port);
    if (fd < 0) {
        cm_debug (req->req_id, "gw_sock_find() found no socket: the client is gone");
    }
    return fd;
}

void
gw_conn_shutdown (gw_req_t *req, int how)
{
    int fd = s_conn_fd (req);
    if (fd >= 0) {
        shutdown (fd, how);
    }
}

void
gw_conn_close (gw_req_t *req)
{
    int fd = s_conn_fd (req);
    if (fd < 0) {
        return;
    }
    shutdown (fd, SHUT_WR);
    uint64_t deadline = cm_mono_ms () + GW_DRAIN_MAX_MS;
    size_t drained = 0;
    char buf[4096];
    while (drained < GW_DRAIN_MAX_BYTES) {
        uint64_t now = cm_mono_ms ();
        if (now >= deadline) {
            break;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll (&p, 1, (int)(deadline - now));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc <= 0) {
            break;
        }
        ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            continue;
        }
        if (n <= 0) {
            break; /* the client closed, or the watchdog shut the read side */
        }
        drained += (size_t)n;
    }
    shutdown (fd, SHUT_RDWR);
}

void
gw_body_watch (gw_req_t *req, uint64_t deadline_ms)
{
    if (req->watch_slot >= 0) {
        gw_watchdog_extend (req->watchdog, req->watch_slot, deadline_ms);
    } else if (req->watch_slot == -1) {
        int slot = gw_watchdog_arm (req->watchdog, mg_get_request_info (req->conn),
                                    deadline_ms, req->req_id);
        /* -2: tried and failed (logged there); not retried per piece.   */
        req->watch_slot = slot >= 0 ? slot : -2;
    }
}

bool
gw_body_unwatch (gw_req_t *req)
{
    bool fired = false;
    if (req->watch_slot >= 0) {
        fired = gw_watchdog_disarm (req->watchdog, req->watch_slot);
    }
    req->watch_slot = -1;
    return fired;
}

int
gw_reply_slow (gw_req_t *req)
{
    req->must_close = true;
    return gw_reply_error (req, 408, "request_timeout",
                           "the request body arrived too slowly");
}

void
gw_headers_common (gw_req_t *req)
{
    struct mg_connection *conn = req->conn;
    mg_response_header_add (conn, "X-Request-Id", req->req_id, -1);
    mg_response_header_add (conn, "X-Content-Type-Options", "nosniff", -1);
    mg_response_header_add (conn, "Cache-Control", "no-store", -1);
    if (req->must_close) {
        mg_response_header_add (conn, "Connection", "close", -1);
    }
    if (req->cors_vary) {
        mg_response_header_add (conn, "Vary", "Origin", -1);
    }
    if (req->cors_origin) {
        mg_response_header_add (conn, "Access-Control-Allow-Origin", req->cors_origin,
                                -1);
        mg_response_header_add (conn, "Access-Control-Expose-Headers",
                                "X-Request-Id, Content-Range, Content-Disposition, ETag, "
                                "Retry-After, WWW-Authenticate",
                                -1);
    }
    if (req->cors_origin && req->cors_allow_methods) {
        mg_response_header_add (conn, "Access-Control-Allow-Methods",
                                req->cors_allow_methods, -1);
        mg_response_header_add (conn, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, X-Request-Id, Range, "
                                "If-None-Match, If-Range",
                                -1);
        mg_response_header_add (conn, "Access-Control-Max-Age", "600", -1);
    }
}

/* Sends the answer; body NULL: none, and no Content-Type or
   Content-Length either (204).                                        */
static int
s_send_as (gw_req_t *req, int status, const char *type, const char *body, size_t len)
{
    struct mg_connection *conn = req->conn;
    if (req->responded) {
        /* Headers are out (a stream failed midway): nothing more to say. */
        return req->status;
    }
    mg_response_header_start (conn, status);
    if (body) {
        char length[32];
        snprintf (length, sizeof length, "%zu", len);
        mg_response_header_add (conn, "Content-Type", type, -1);
        mg_response_header_add (conn, "Content-Length", length, -1);
    }
    gw_headers_common (req);
    if (status == 405 && req->allow) {
        mg_response_header_add (conn, "Allow", req->allow, -1);
    }
    if (status == 401 && req->www_authenticate) {
        mg_response_header_add (conn, "WWW-Authenticate", "Bearer", -1);
    }
    if (status == 416 && req->content_range) {
        mg_response_header_add (conn, "Content-Range", req->content_range, -1);
    }
    if ((status == 429 || status == 503) && req->retry_after_s > 0) {
        char retry[16];
        snprintf (retry, sizeof retry, "%u", (unsigned)req->retry_after_s);
        mg_response_header_add (conn, "Retry-After", retry, -1);
    }
    mg_response_header_send (conn);
    req->responded = true;
    req->status = status;
    if (len > 0 && mg_write (conn, body, len) > 0) {
        req->bytes_out += len;
    }
    if (req->must_close) {
        /* civetweb ignores our Connection: close and would sit reading
           the unread body (up to a huge Content-Length) to discard it. */
        gw_conn_close (req);
    }
    return status;
}

static int
s_send (gw_req_t *req, int status, const char *body, size_t len)
{
    return s_send_as (req, status, "application/json", body, len);
}

int
gw_reply_text (gw_req_t *req, int status, const char *content_type, const char *body,
               size_t len)
{
    return s_send_as (req, status, content_type, body, len);
}

int
gw_reply_json (gw_req_t *req, int status, json_t *body)
{
    char *text = body ? json_dumps (body, JSON_COMPACT) : NULL;
    if (text == NULL) {
        cm_error (req->req_id, "json_dumps() failed");
        return gw_reply_error (req, 500, "internal_error",
                               "response could not be encoded");
    }
    size_t len = strlen (text);
    s_send (req, status, text, len);
    /* Login and refresh answers carry tokens. */
    OPENSSL_cleanse (text, len);
    free (text);
    return status;
}

int
gw_reply_empty (gw_req_t *req, int status)
{
    return s_send (req, status, NULL, 0);
}

int
gw_reply_error (gw_req_t *req, int status, const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (message, sizeof message, fmt, ap);
    va_end (ap);
    char *text = gw_json_error (code, message, req->req_id);
    if (text == NULL) {
        /* Out of memory: still answer, with the status alone. */
        return s_send (req, status, "", 0);
    }
    s_send (req, status, text, strlen (text));
    free (text);
    return status;
}

int
gw_reply_service (gw_req_t *req, cm_status_t rc, const ProtobufCMessage *reply)
{
    if (rc != CM_OK || reply == NULL) {
        if (rc == CM_UNAVAILABLE) {
            return gw_reply_error (req, 503, "service_unavailable",
                                   "a backend service did not answer in time");
        }
        return gw_reply_error (req, 502, "bad_gateway",
                               "a backend service answered badly");
    }
    const char *code = NULL;
    const char *message = NULL;
    cm_status_t status = gw_rpc_status (reply, &code, &message);
    int http = cm_status_http (status);
    req->retry_after_s = gw_rpc_retry_after (reply);
    if (status == CM_OK) {
        /* Caller's bug: an OK reply is not an error. */
        http = 500;
    }
    return gw_reply_error (req, http, code ? code : cm_status_code (status), "%s",
                           message ? message : cm_status_name (status));
}

int
gw_header_count (gw_req_t *req, const char *name, const char **first)
{
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    int count = 0;
    if (first) {
        *first = NULL;
    }
    for (int i = 0; i < ri->num_headers && i < MG_MAX_HEADERS; i++) {
        if (ri->http_headers[i].name &&
            strcasecmp (ri->http_headers[i].name, name) == 0) {
            if (first && count == 0) {
                *first = ri->http_headers[i].value;
            }
            count++;
        }
    }
    return count;
}

bool
gw_has_body (gw_req_t *req)
{
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    if (ri->content_length > 0) {
        return true;
    }
    const char *te = mg_get_header (req->conn, "Transfer-Encoding");
    return ri->content_length < 0 && te != NULL;
}

void
gw_send_continue (gw_req_t *req)
{
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    const char *expect = mg_get_header (req->conn, "Expect");
    if (expect && strcasecmp (expect, "100-continue") == 0 && ri->http_version &&
        strcmp (ri->http_version, "1.1") == 0) {
        mg_printf (req->conn, "HTTP/1.1 100 Continue\r\n\r\n");
    }
}

/* True if the Content-Type header names `type` (parameters ignored). */
static bool
s_content_type_is (gw_req_t *req, const char *type)
{
    const char *ct = mg_get_header (req->conn, "Content-Type");
    size_t n = strlen (type);
    if (ct == NULL || strncasecmp (ct, type, n) != 0) {
        return false;
    }
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* A body buffer may hold a password or a refresh token. */
static void
s_free_wiped (char *buf, size_t len)
{
    OPENSSL_cleanse (buf, len);
    free (buf);
}

int
gw_body_json (gw_req_t *req, json_t **out)
{
    *out = NULL;
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    if (!gw_has_body (req)) {
        *out = json_object ();
        return 0;
    }
    if (ri->content_length > GW_JSON_BODY_MAX) {
        req->must_close = true;
        gw_reply_error (req, 413, "too_large", "request body is larger than %d bytes",
                        GW_JSON_BODY_MAX);
        return -1;
    }
    /* Checked before a byte is read: a form body never reaches a parser. */
    if (!s_content_type_is (req, "application/json")) {
        req->must_close = true;
        gw_reply_error (req, 415, "unsupported_media_type",
                        "request body must be application/json");
        return -1;
    }
    char *buf = malloc (GW_JSON_BODY_MAX + 1);
    if (buf == NULL) {
        req->must_close = true;
        gw_reply_error (req, 503, "service_unavailable", "out of memory");
        return -1;
    }
    gw_body_watch (req, cm_mono_ms () + GW_JSON_BODY_DEADLINE_MS);
    gw_send_continue (req);
    size_t used = 0;
    int n;
    do {
        n = mg_read (req->conn, buf + used, GW_JSON_BODY_MAX + 1 - used);
        used += n > 0 ? (size_t)n : 0;
        req->bytes_in += n > 0 ? (uint64_t)n : 0;
    } while (n > 0 && used <= GW_JSON_BODY_MAX);
    if (gw_body_unwatch (req)) {
        s_free_wiped (buf, used);
        gw_reply_slow (req);
        return -1;
    }
    if (used > GW_JSON_BODY_MAX) {
        req->must_close = true;
        s_free_wiped (buf, used);
        gw_reply_error (req, 413, "too_large", "request body is larger than %d bytes",
                        GW_JSON_BODY_MAX);
        return -1;
    }
    if (n < 0 || (ri->content_length > 0 && used != (size_t)ri->content_length)) {
        req->must_close = true;
        s_free_wiped (buf, used);
        gw_reply_error (req, 400, "invalid_request",
                        n < 0 ? "request body could not be read"
                              : "request body is shorter than its length");
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb (buf, used, JSON_REJECT_DUPLICATES, &jerr);
    s_free_wiped (buf, used);
    OPENSSL_cleanse (&jerr, sizeof jerr); /* may quote the body */
    if (root == NULL || !json_is_object (root)) {
        json_decref (root);
        gw_reply_error (req, 400, "invalid_json", "request body must be a JSON object");
        return -1;
    }
    *out = root;
    return 0;
}

int
gw_query (gw_req_t *req, const char *name, char *buf, size_t buflen)
{
    const char *qs = mg_get_request_info (req->conn)->query_string;
    if (qs == NULL) {
        return 0;
    }
    int n = mg_get_var (qs, strlen (qs), name, buf, buflen);
    if (n == -1) {
        return 0;
    }
    return n < 0 || strlen (buf) != (size_t)n ? -1 : 1;
}

int
gw_reply_owned (gw_req_t *req, int status, json_t *body)
{
    if (body == NULL) {
        return gw_reply_error (req, 502, "bad_gateway",
                               "a backend service answered badly");
    }
    gw_reply_json (req, status, body);
    json_decref (body);
    return status;
}
