/*  gw_server -- the HTTP front: civetweb configured safely (plain HTTP,
    no document_root, no CORS by default, keep-alive + TCP_NODELAY), a
    ZeroMQ socket set per worker thread (init_thread/exit_thread), and the
    per-request transport checks before a route's handler runs: request
    id, smuggling guard (Content-Length with Transfer-Encoding, or either
    twice), routing, 404/405 in the one error shape, one access-log line
    per request; a gw_watchdog bounds body reads.                      */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "gw_settings.h"

typedef struct gw_server_t gw_server_t;

/* Starts listening (the JWT keys come from auth later, see gw_keys).
   Settings are copied. NULL with a one-line reason in err.            */
gw_server_t *gw_server_new (const gw_settings_t *settings, char *err, size_t errlen);
/* Stops civetweb (finishes in-flight requests), frees everything. */
void gw_server_destroy (gw_server_t **self_p);

/* The port actually bound (useful when SAFESHARE_HTTP_ADDR ends in :0). */
int gw_server_port (gw_server_t *self);

#endif
