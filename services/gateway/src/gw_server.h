/*  gw_server -- the HTTP front: civetweb configured safely (plain HTTP,
    no document_root, no CORS by default, keep-alive + TCP_NODELAY), a
    ZeroMQ socket set per worker thread (init_thread/exit_thread), and the
    per-request transport checks before a route's handler runs: request
    id, the client's address and scheme (gw_client_resolve), smuggling
    guard (Content-Length with Transfer-Encoding, or either twice),
    routing, 404/405 in the one error shape, one access-log line per
    request; a gw_watchdog bounds body reads.
    Stopping is a drain: gw_server_drain_begin turns new requests away
    (503 shutting_down, Connection: close) while the ones in flight run
    on; gw_server_drain_wait waits for them; gw_server_destroy stops
    civetweb, which cuts whatever still runs (mg_stop fails every open
    connection's reads and writes at once).                            */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdint.h>
#include "gw_settings.h"

typedef struct gw_server_t gw_server_t;

/* Starts listening (the JWT keys come from auth later, see gw_keys).
   Settings are copied. NULL with a one-line reason in err.            */
gw_server_t *gw_server_new (const gw_settings_t *settings, char *err, size_t errlen);
/* Stops civetweb -- requests still in flight are cut: drain first --
   and frees everything.                                               */
void gw_server_destroy (gw_server_t **self_p);

/* From now on every new request (/readyz and /healthz too) is answered
   503 shutting_down with Connection: close, and a connection whose
   request ends is closed after its answer. Returns how many requests
   are in flight. Idempotent.                                          */
int gw_server_drain_begin (gw_server_t *self);

/* Waits until no request is in flight or deadline_ms (cm_mono_ms)
   passes. Returns how many are still in flight (0: drained).          */
int gw_server_drain_wait (gw_server_t *self, uint64_t deadline_ms);

/* The port actually bound (useful when SAFESHARE_HTTP_ADDR ends in :0). */
int gw_server_port (gw_server_t *self);

#endif
