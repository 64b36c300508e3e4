/*  gw_keys -- the access-token verifier and its key set, which comes from
    auth's KEYS answer (never from a file), so that a signing-key rotation
    reaches every gateway without a restart. One object shared by every
    civetweb worker. The verifier starts empty; its set is fetched on
    first need (synchronously, from the asking worker), again when older
    than GW_KEYS_MAX_AGE_MS, and when a token names a kid the set lacks
    (cm_jwt's "unknown_kid": refetch, then verify once more). One fetch
    runs at a time; a fetch for an unknown kid, or after a failed one,
    waits GW_KEYS_RETRY_MS after the previous attempt, across all
    threads, so forged kids cannot hammer auth. The fetch itself (the
    RPC) is the caller's callback: this class knows no sockets.       */
#ifndef GW_KEYS_H
#define GW_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include "cm_jwt.h"
#include "cm_status.h"

#define GW_KEYS_MAX_AGE_MS 60000
#define GW_KEYS_RETRY_MS   1000

typedef struct gw_keys_t gw_keys_t;

/* Asks auth for its key set and hands the answer to gw_keys_install.
   0 if it did; -1 when auth was unreachable or answered badly (the
   callback logs why).                                                 */
typedef int (gw_keys_fetch_fn) (gw_keys_t *keys, void *arg);

/* A monotonic clock in ms (cm_mono_ms; tests pass their own).        */
typedef uint64_t (gw_keys_clock_fn) (void);

/* An empty verifier for tokens of issuer/audience; clock NULL means
   cm_mono_ms. NULL on failure.                                        */
gw_keys_t *gw_keys_new (const char *issuer, const char *audience,
                        gw_keys_clock_fn *clock);
void gw_keys_destroy (gw_keys_t **self_p);

/* Replaces the whole set with keys[0..n), 1 <= n; only the first
   CM_JWT_MAX_KEYS are kept (auth lists the newest first). Meant for a
   fetch callback. 0, or -1 (the set unchanged; the caller logs) when n
   is 0 or a key is unusable.                                         */
int gw_keys_install (gw_keys_t *self, const cm_jwt_key_t *keys, size_t n);

/* Verifies token, fetching keys through fetch(self, arg) as described
   above; now_s is the unix time the claims are checked against. The
   retry interval runs from the end of the previous attempt (a fetch
   that waits out an RPC timeout does not leave the door open). CM_OK
   with *claims filled; CM_UNAUTHENTICATED with *reason (cm_jwt's static
   string); or CM_UNAVAILABLE when no key set could be had (auth
   unreachable and none fetched yet), *reason "no_keys".             */
cm_status_t gw_keys_verify (gw_keys_t *self, const char *token, uint64_t now_s,
                            gw_keys_fetch_fn *fetch, void *arg, cm_jwt_claims_t *claims,
                            const char **reason);

/* Fetch attempts so far (successful or not), for tests and logs.      */
uint64_t gw_keys_fetches (gw_keys_t *self);

#endif
