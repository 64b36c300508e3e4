/*  gw_http -- one HTTP request as the handlers see it (gw_req_t) and the
    ways to answer it: JSON bodies, the one error shape, the headers every
    response carries (X-Request-Id, nosniff, no-store), bounded JSON body
    reads with mg_read (never civetweb's form parser: CVE-2025-9648).   */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <civetweb.h>
#include <jansson.h>
#include <stdbool.h>
#include "cm_jwt.h"
#include "cm_status.h"
#include "gw_keys.h"
#include "gw_route.h"
#include "gw_rpc.h"
#include "gw_settings.h"
#include "gw_users.h"
#include "gw_watchdog.h"

typedef struct {
    struct mg_connection *conn;
    const gw_settings_t *settings;
    gw_keys_t *keys;   /* the token verifier, shared */
    gw_users_t *users; /* user-state cache, shared */
    gw_rpc_t *rpc;     /* this worker thread's sockets */
    gw_watchdog_t *watchdog;
    gw_route_t route;
    char req_id[65];
    /* The client as judged once per request (gw_server, gw_client_resolve):
       behind a trusted proxy its X-Forwarded-For/-Proto, else the TCP
       peer. The socket itself is still found by the TCP peer.         */
    gw_client_t client;
    cm_jwt_claims_t claims; /* valid when authed */
    bool authed;
    bool must_close;           /* body not (fully) read: answer, then close */
    bool responded;            /* headers went out */
    int status;                /* HTTP status sent, for the access log */
    const char *allow;         /* Allow header on 405 */
    bool www_authenticate;     /* WWW-Authenticate: Bearer on 401 */
    uint32_t retry_after_s;    /* Retry-After on 429/503 when > 0 */
    const char *content_range; /* Content-Range on 416 (its unsatisfied-range form) */
    int watch_slot;            /* gw_watchdog slot while a body read is armed, else -1 */
    /* For gw_metrics: body bytes read and written, file bytes committed. */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t upload_bytes;
    /* CORS (gw_server): the allowed Origin to echo (NULL: none), whether
       the answer varies by Origin (CORS configured), and on a preflight
       the methods to allow.                                           */
    const char *cors_origin;
    bool cors_vary;
    const char *cors_allow_methods;
} gw_req_t;

/* Sends status + body (borrowed) as compact JSON with the common headers.
   Returns status.                                                      */
int gw_reply_json (gw_req_t *req, int status, json_t *body);

/* gw_reply_json of a body built from a service's reply, then freed;
   NULL (its strings were not valid UTF-8, or no memory): 502
   bad_gateway. Returns the status sent.                                */
int gw_reply_owned (gw_req_t *req, int status, json_t *body);

/* Sends status + body (borrowed, len bytes) as content_type with the
   common headers (GET /metrics). Returns status.                     */
int gw_reply_text (gw_req_t *req, int status, const char *content_type, const char *body,
                   size_t len);

/* A status without a body (204): no Content-Type, no Content-Length
   (RFC 9110 forbids it on 204), the common headers. Returns status.  */
int gw_reply_empty (gw_req_t *req, int status);

/* The one error shape: {"error": {"code", "message", "request_id"}}.
   Returns status.                                                      */
int gw_reply_error (gw_req_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* Answers a service's non-OK reply (or a transport failure rc): HTTP from
   cm_status_http, code from the reply's Error.code (fallback
   cm_status_code), Retry-After from Error.retry_after_s; timeouts
   become 503 service_unavailable.                                     */
int gw_reply_service (gw_req_t *req, cm_status_t rc, const ProtobufCMessage *reply);

/* Adds the headers every response carries (after mg_response_header_start). */
void gw_headers_common (gw_req_t *req);

/* Reads a JSON object body of at most GW_JSON_BODY_MAX bytes within
   GW_JSON_BODY_DEADLINE_MS (the raw bytes are wiped once parsed: they
   may hold a password or refresh token). An empty body gives an empty
   object. 0 with
   *out set; -1 after answering the error (413 too_large, 415
   unsupported_media_type, 400 invalid_json, 408 request_timeout).      */
int gw_body_json (gw_req_t *req, json_t **out);

/* Answers `Expect: 100-continue` before the body is read.             */
void gw_send_continue (gw_req_t *req);

/* A JSON body (<= 16 KiB) must arrive whole within this.               */
#define GW_JSON_BODY_DEADLINE_MS 10000
/* Any other body: this long for the first bytes, then at least
   GW_BODY_MIN_RATE bytes/s on average (about 32 kbit/s) -- a slow but
   real client passes, a trickle does not hold a worker. A constant
   until the configuration grows a key for it.                         */
#define GW_BODY_GRACE_MS 10000
#define GW_BODY_MIN_RATE 4096
/* After an error answer with an unread body: read and drop at most this
   much for at most this long (so a small body in flight does not turn
   the close into a reset that eats the answer), then close.           */
#define GW_DRAIN_MAX_BYTES (64 * 1024)
#define GW_DRAIN_MAX_MS    1000

/* shutdown(2) of this request's socket (SHUT_RDWR: cut a response
   short). civetweb 1.15 has no call to drop a server connection from a
   handler, so the socket is found by its addresses (gw_sock).         */
void gw_conn_shutdown (gw_req_t *req, int how);

/* Ends a connection whose body was not read, after its answer went out:
   SHUT_WR (the client gets the answer and EOF), a bounded drain
   (GW_DRAIN_MAX_*), then SHUT_RDWR so that civetweb's own discard of the
   unread body -- up to any Content-Length, a wait of up to
   request_timeout_ms per byte -- sees EOF at once instead of holding
   the worker.                                                         */
void gw_conn_close (gw_req_t *req);

/* Body-read deadline of this request (see gw_watchdog): gw_body_watch
   arms it (once; later calls move it), gw_body_unwatch disarms and
   says whether it fired.                                              */
void gw_body_watch (gw_req_t *req, uint64_t deadline_ms);
bool gw_body_unwatch (gw_req_t *req);

/* 408 request_timeout, closing the connection.                        */
int gw_reply_slow (gw_req_t *req);

/* How many times header `name` came (civetweb keeps every copy, while
   mg_get_header gives the first); *first (if given) the first's value,
   NULL if none.                                                        */
int gw_header_count (gw_req_t *req, const char *name, const char **first);

/* True if the request has a body to read (Content-Length > 0 or chunked). */
bool gw_has_body (gw_req_t *req);

/* Query parameter `name` into buf: 1 found, 0 absent, -1 too long or
   holding a NUL.                                                       */
int gw_query (gw_req_t *req, const char *name, char *buf, size_t buflen);

#endif
