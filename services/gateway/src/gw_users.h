/*  gw_users -- the gateway's cache of user state (token generation,
    disabled, role) by user id, so that the access tokens of a user who
    logged out everywhere, was disabled or changed role die within
    SAFESHARE_USER_CACHE_TTL without a USER_GET on every request.
    Bounded: a fixed table of slots; an id lives in one of GW_USERS_WAYS
    slots after its hash, and a full neighbourhood gives up its oldest
    entry, so the table never grows. One mutex; the civetweb workers
    share one object.

    An entry stored from a USER_GET that started before a gw_users_drop
    (this gateway changed some user meanwhile) is not kept: pass the
    gw_users_epoch read before the call to gw_users_put.              */
#ifndef GW_USERS_H
#define GW_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_USERS_SLOTS 4096
#define GW_USERS_WAYS  8

typedef struct gw_users_t gw_users_t;

typedef struct {
    uint64_t token_gen; /* access tokens whose gen differs are revoked */
    bool disabled;
    char role[8]; /* "client" | "ops" | "admin" */
} gw_user_state_t;

/* slots >= GW_USERS_WAYS; ttl_s 0 = nothing is ever fresh (ask auth on
   every request). NULL on failure.                                    */
gw_users_t *gw_users_new (size_t slots, unsigned ttl_s);
void gw_users_destroy (gw_users_t **self_p);

/* True with *state filled when id has an entry fetched less than the
   TTL before mono_ms.                                                 */
bool gw_users_get (gw_users_t *self, const char *id, uint64_t mono_ms,
                   gw_user_state_t *state);

/* The drop counter; read it before asking auth, hand it to put.       */
uint64_t gw_users_epoch (gw_users_t *self);

/* Stores id's state as fetched at mono_ms, unless a drop happened since
   epoch was read (that answer may predate the change). ids are user
   ids (32 hex); a longer one is not stored.                          */
void gw_users_put (gw_users_t *self, const char *id, const gw_user_state_t *state,
                   uint64_t mono_ms, uint64_t epoch);

/* Forgets id: the next request of that user asks auth.                */
void gw_users_drop (gw_users_t *self, const char *id);

/* Entries held, for tests.                                            */
size_t gw_users_count (gw_users_t *self);

#endif
