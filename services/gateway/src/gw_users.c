/*  gw_users -- the bounded user-state cache (see gw_users.h).           */
#include "gw_users.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define S_ID_MAX 32

typedef struct {
    bool used;
    char id[S_ID_MAX + 1];
    uint64_t fetched_ms;
    gw_user_state_t state;
} s_slot_t;

struct gw_users_t {
    pthread_mutex_t lock;
    s_slot_t *slots;
    size_t n_slots;
    uint64_t ttl_ms;
    uint64_t epoch; /* drops so far */
};

gw_users_t *
gw_users_new (size_t slots, unsigned ttl_s)
{
    if (slots < GW_USERS_WAYS) {
        return NULL;
    }
    gw_users_t *self = calloc (1, sizeof *self);
    if (self == NULL) {
        return NULL;
    }
    self->slots = calloc (slots, sizeof *self->slots);
    if (self->slots == NULL) {
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->n_slots = slots;
    self->ttl_ms = (uint64_t)ttl_s * 1000;
    return self;
}

void
gw_users_destroy (gw_users_t **self_p)
{
    if (self_p && *self_p) {
        gw_users_t *self = *self_p;
        pthread_mutex_destroy (&self->lock);
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

/* FNV-1a: ids are random hex made by auth, not chosen by clients.     */
static size_t
s_home (gw_users_t *self, const char *id)
{
    uint64_t h = 14695981039346656037ULL;
    for (const char *p = id; *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    }
    return (size_t)(h % self->n_slots);
}

/* The slot holding id within its neighbourhood, or NULL. Lock held.   */
static s_slot_t *
s_find (gw_users_t *self, const char *id)
{
    size_t home = s_home (self, id);
    for (size_t i = 0; i < GW_USERS_WAYS; i++) {
        s_slot_t *slot = &self->slots[(home + i) % self->n_slots];
        if (slot->used && strcmp (slot->id, id) == 0) {
            return slot;
        }
    }
    return NULL;
}

bool
gw_users_get (gw_users_t *self, const char *id, uint64_t mono_ms, gw_user_state_t *state)
{
    bool fresh = false;
    pthread_mutex_lock (&self->lock);
    s_slot_t *slot = s_find (self, id);
    if (slot && mono_ms >= slot->fetched_ms &&
        mono_ms - slot->fetched_ms < self->ttl_ms) {
        *state = slot->state;
        fresh = true;
    }
    pthread_mutex_unlock (&self->lock);
    return fresh;
}

uint64_t
gw_users_epoch (gw_users_t *self)
{
    pthread_mutex_lock (&self->lock);
    uint64_t epoch = self->epoch;
    pthread_mutex_unlock (&self->lock);
    return epoch;
}

void
gw_users_put (gw_users_t *self, const char *id, const gw_user_state_t *state,
              uint64_t mono_ms, uint64_t epoch)
{
    if (strlen (id) > S_ID_MAX || self->ttl_ms == 0) {
        return; /* with no TTL nothing would ever be read back */
    }
    pthread_mutex_lock (&self->lock);
    if (epoch != self->epoch) {
        pthread_mutex_unlock (&self->lock);
        return;
    }
    s_slot_t *slot = s_find (self, id);
    if (slot == NULL) {
        /* A free slot of the neighbourhood, else its oldest entry. */
        size_t home = s_home (self, id);
        for (size_t i = 0; i < GW_USERS_WAYS; i++) {
            s_slot_t *s = &self->slots[(home + i) % self->n_slots];
            if (!s->used) {
                slot = s;
                break;
            }
            if (slot == NULL || s->fetched_ms < slot->fetched_ms) {
                slot = s;
            }
        }
        slot->used = true;
        strcpy (slot->id, id);
    }
    slot->fetched_ms = mono_ms;
    slot->state = *state;
    pthread_mutex_unlock (&self->lock);
}

void
gw_users_drop (gw_users_t *self, const char *id)
{
    pthread_mutex_lock (&self->lock);
    s_slot_t *slot = s_find (self, id);
    if (slot) {
        memset (slot, 0, sizeof *slot);
    }
    self->epoch++;
    pthread_mutex_unlock (&self->lock);
}

size_t
gw_users_count (gw_users_t *self)
{
    size_t n = 0;
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0; i < self->n_slots; i++) {
        n += self->slots[i].used ? 1 : 0;
    }
    pthread_mutex_unlock (&self->lock);
    return n;
}
