/*  gw_keys -- the verifier and its key set from auth (see gw_keys.h).    */
#include "gw_keys.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "cm_util.h"

struct gw_keys_t {
    cm_jwt_verifier_t *verifier;
    gw_keys_clock_fn *clock;
    pthread_mutex_t fetch_lock; /* held for a whole fetch: one at a time */
    pthread_mutex_t lock;       /* guards the fields below */
    bool have_keys;
    uint64_t generation; /* sets installed so far */
    uint64_t fetched_ms; /* clock when the last set was installed */
    uint64_t attempt_ms; /* clock when the last fetch attempt ended */
    uint64_t attempts;
};

typedef struct {
    bool have_keys;
    uint64_t generation;
    uint64_t fetched_ms;
    uint64_t attempt_ms;
    uint64_t attempts;
} s_state_t;

gw_keys_t *
gw_keys_new (const char *issuer, const char *audience, gw_keys_clock_fn *clock)
{
    gw_keys_t *self = calloc (1, sizeof *self);
    if (self == NULL) {
        return NULL;
    }
    self->clock = clock ? clock : cm_mono_ms;
    pthread_mutex_init (&self->fetch_lock, NULL);
    pthread_mutex_init (&self->lock, NULL);
    self->verifier = cm_jwt_verifier_new (issuer, audience);
    if (self->verifier == NULL) {
        gw_keys_destroy (&self);
    }
    return self;
}

void
gw_keys_destroy (gw_keys_t **self_p)
{
    if (self_p && *self_p) {
        gw_keys_t *self = *self_p;
        cm_jwt_verifier_destroy (&self->verifier);
        pthread_mutex_destroy (&self->fetch_lock);
        pthread_mutex_destroy (&self->lock);
        free (self);
        *self_p = NULL;
    }
}

static s_state_t
s_state (gw_keys_t *self)
{
    pthread_mutex_lock (&self->lock);
    s_state_t state = {self->have_keys, self->generation, self->fetched_ms,
                       self->attempt_ms, self->attempts};
    pthread_mutex_unlock (&self->lock);
    return state;
}

/* Milliseconds from then to now; 0 if another thread's clock reading
   was later than ours.                                                */
static uint64_t
s_since (uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

/* True if a fetch may start now: never tried, or the last attempt was
   at least GW_KEYS_RETRY_MS ago.                                      */
static bool
s_may_retry (const s_state_t *state, uint64_t mono_ms)
{
    return state->attempts == 0 ||
           s_since (mono_ms, state->attempt_ms) >= GW_KEYS_RETRY_MS;
}

int
gw_keys_install (gw_keys_t *self, const cm_jwt_key_t *keys, size_t n)
{
    if (n == 0) {
        return -1;
    }
    if (n > CM_JWT_MAX_KEYS) {
        n = CM_JWT_MAX_KEYS;
    }
    if (cm_jwt_verifier_set_keys (self->verifier, keys, n) != 0) {
        return -1;
    }
    pthread_mutex_lock (&self->lock);
    self->have_keys = true;
    self->generation++;
    pthread_mutex_unlock (&self->lock);
    return 0;
}

/* One fetch; fetch_lock held by the caller. 0 if a set was installed. */
static int
s_fetch (gw_keys_t *self, gw_keys_fetch_fn *fetch, void *arg)
{
    pthread_mutex_lock (&self->lock);
    uint64_t before = self->generation;
    self->attempts++;
    pthread_mutex_unlock (&self->lock);
    int rc = fetch (self, arg);
    uint64_t end = self->clock ();
    pthread_mutex_lock (&self->lock);
    bool installed = rc == 0 && self->generation != before;
    self->attempt_ms = end;
    if (installed) {
        self->fetched_ms = end;
    }
    pthread_mutex_unlock (&self->lock);
    return installed ? 0 : -1;
}

cm_status_t
gw_keys_verify (gw_keys_t *self, const char *token, uint64_t now_s,
                gw_keys_fetch_fn *fetch, void *arg, cm_jwt_claims_t *claims,
                const char **reason)
{
    *reason = "unknown";
    uint64_t mono_ms = self->clock ();
    s_state_t state = s_state (self);
    if (!state.have_keys) {
        /* First need: every worker waits for the one fetch. */
        pthread_mutex_lock (&self->fetch_lock);
        state = s_state (self);
        if (!state.have_keys && s_may_retry (&state, mono_ms)) {
            s_fetch (self, fetch, arg);
        }
        pthread_mutex_unlock (&self->fetch_lock);
        state = s_state (self);
        if (!state.have_keys) {
            *reason = "no_keys";
            return CM_UNAVAILABLE;
        }
    } else if (s_since (mono_ms, state.fetched_ms) >= GW_KEYS_MAX_AGE_MS &&
               s_may_retry (&state, mono_ms)) {
        /* Refresh by age: whoever takes the lock fetches; the others go
           on with the set they have (a failure keeps it, logged).     */
        if (pthread_mutex_trylock (&self->fetch_lock) == 0) {
            state = s_state (self);
            if (s_since (mono_ms, state.fetched_ms) >= GW_KEYS_MAX_AGE_MS &&
                s_may_retry (&state, mono_ms)) {
                s_fetch (self, fetch, arg);
            }
            pthread_mutex_unlock (&self->fetch_lock);
        }
    }
    uint64_t seen = s_state (self).generation;
    if (cm_jwt_verify (self->verifier, token, now_s, claims, reason) == 0) {
        return CM_OK;
    }
    if (strcmp (*reason, "unknown_kid") != 0) {
        return CM_UNAUTHENTICATED;
    }
    /* A kid we lack: maybe a rotation. Refetch unless another thread
       installed a set since our try, or the last attempt was too recent;
       then one more try either way.                                   */
    pthread_mutex_lock (&self->fetch_lock);
    state = s_state (self);
    if (state.generation == seen && s_may_retry (&state, mono_ms)) {
        s_fetch (self, fetch, arg);
    }
    pthread_mutex_unlock (&self->fetch_lock);
    if (cm_jwt_verify (self->verifier, token, now_s, claims, reason) == 0) {
        return CM_OK;
    }
    return CM_UNAUTHENTICATED;
}

uint64_t
gw_keys_fetches (gw_keys_t *self)
{
    return s_state (self).attempts;
}
