/*  cm_curve -- CurveZMQ between services (docs/security.md, "CurveZMQ
    between services").

    Process-wide and read-only once loaded: SAFESHARE_CURVE_SECRET_KEY set
    turns CURVE on for every socket made through cm_msg (servers: CURVE
    server with our cert, ZAP through czmq's zauth on
    SAFESHARE_CURVE_ALLOW_DIR; clients: our cert plus the server's public
    key, SAFESHARE_CURVE_PUBLIC_DIR/<peer>.key). Unset: CURVE off.

    Without a ZAP handler a CURVE server accepts any client key (libzmq
    4.3 has no ZMQ_ZAP_ENFORCE_DOMAIN): every CURVE server socket is
    checked right after its bind by connecting to itself with a fresh,
    unknown key, which must be refused (cm_curve_self_check).

    Certificates are czmq zcert text files: NAME.key (public, 0644) and
    NAME.key_secret (both keys, 0600; refused when group or others may
    read it, like ssh).                                                   */
#ifndef CM_CURVE_H
#define CM_CURVE_H

#include "cm_config.h"
#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

/* The ZAP domain of every CURVE server socket. */
#define CM_CURVE_DOMAIN "safeshare"
/* How long the self-check waits for the refusal. */
#define CM_CURVE_CHECK_MS 3000
/* Service (key file) names: 1..64 of [a-z0-9-]. */
#define CM_CURVE_NAME_MAX 64

/* Loads the CURVE settings from the three SAFESHARE_CURVE_* keys of
   config (cm_curve_setup). cm_service_init calls it.                   */
int cm_curve_load (cm_config_t *config, char *err, size_t errlen);
/* secret_path NULL: CURVE off (the other two are ignored). Otherwise
   checks, before any socket exists: the secret cert is a regular file
   no one but its owner may read, it is a zcert text file, it holds a secret
   key; each directory given exists; every *.key in public_dir loads.
   0, or -1 with one line in err naming the key and the path. Replaces
   settings loaded before (zauth must not be running).                  */
int cm_curve_setup (const char *secret_path, const char *public_dir,
                    const char *allow_dir, char *err, size_t errlen);
/* True when a secret key is loaded. */
bool cm_curve_on (void);
/* Our public key (Z85, 40 chars), or NULL when off. Borrowed.        */
const char *cm_curve_public_txt (void);

/* Requirements of a process, checked at start so a gap is a config
   error, not a failed request: `serves` needs the allow dir; each name
   in `calls` (space-separated service names) needs a loadable
   PUBLIC_DIR/<name>.key. 0 when off or met; -1 with err.              */
int cm_curve_require (bool serves, const char *calls, char *err, size_t errlen);

/* Starts zauth with the allow dir as its CURVE location (it re-reads the
   dir when it changes). For processes that serve, before any bind; a
   no-op when off or already started. 0 / -1 with err.                 */
int cm_curve_serve (char *err, size_t errlen);
/* Stops zauth and wipes and frees our cert; CURVE is off afterwards.
   Safe to call twice; cm_service_init registers it with atexit.       */
void cm_curve_shutdown (void);

/* Makes sock a CURVE server (our cert, ZAP domain) before its bind.
   0 when off; -1 (logged) if zauth is not running: such a server would
   accept any key.                                                      */
int cm_curve_server_apply (zsock_t *sock);
/* Makes sock a CURVE client of `peer` (its public key read from
   PUBLIC_DIR/<peer>.key now, so a replaced server key is picked up by
   the next socket) before its connect. 0 when off; -1 (logged).       */
int cm_curve_client_apply (zsock_t *sock, const char *peer);

/* The self-check of a bound CURVE server socket: connects to `endpoint`
   (what the socket bound, as zsock_last_endpoint says; a wildcard host
   becomes loopback) with a fresh throw-away key and requires the
   handshake to fail with ZMQ_EVENT_HANDSHAKE_FAILED_AUTH within
   timeout_ms. 0 when it did (or CURVE is off); -1 with one error line
   otherwise.                                                           */
int cm_curve_self_check (zsock_t *server, const char *endpoint, int timeout_ms);

/* ---- handshake watch (libzmq socket monitor) ----------------------- */
/* Every handshake result: succeeded, failed (no detail, protocol, auth). */
#define CM_CURVE_WATCH_HANDSHAKE                                                         \
    (ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |              \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
/* A PAIR socket carrying sock's `events` (ZMQ_EVENT_* bits, usually
   CM_CURVE_WATCH_HANDSHAKE), to poll beside it. Same thread as sock.
   NULL on failure (logged).                                            */
zsock_t *cm_curve_watch_new (zsock_t *sock, int events);
/* Reads one event from watch: returns its ZMQ_EVENT_* number and copies
   the endpoint it concerns into endpoint; -1 on error.                 */
int cm_curve_watch_recv (zsock_t *watch, char *endpoint, size_t len);
/* Stops monitoring sock and destroys *watch. NULL-safe.               */
void cm_curve_watch_destroy (zsock_t *sock, zsock_t **watch_p);

/* True if name is 1..CM_CURVE_NAME_MAX of [a-z0-9-]. */
bool cm_curve_name_valid (const char *name);

#endif
