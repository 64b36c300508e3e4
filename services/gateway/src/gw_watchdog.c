/*  gw_watchdog -- deadlines on request body reads (see gw_watchdog.h). */
#include "gw_watchdog.h"
#include "gw_sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "cm_log.h"
#include "cm_util.h"

typedef struct {
    bool used;     /* under lock */
    bool fired;    /* under lock */
    char addr[48]; /* as civetweb's remote_addr */
    int remote_port;
    int local_port;
    char req_id[65];
    _Atomic uint64_t deadline_ms;
} s_slot_t;

struct gw_watchdog_t {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool started;
    bool stop; /* under lock */
    int count;
    s_slot_t *slots;
};

static void
s_fire (s_slot_t *slot)
{
    int fd = gw_sock_find (slot->addr, slot->remote_port, slot->local_port);
    if (fd >= 0) {
        /* Read side only: the handler still writes its 408.            */
        shutdown (fd, SHUT_RD);
    }
    slot->fired = true;
    cm_warn (slot->req_id, "request body too slow: read cut peer=%s:%d", slot->addr,
             slot->remote_port);
}

static void *
s_run (void *arg)
{
    gw_watchdog_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stop) {
        uint64_t now = cm_mono_ms ();
        for (int i = 0; i < self->count; i++) {
            s_slot_t *slot = &self->slots[i];
            if (slot->used && !slot->fired && now >= atomic_load (&slot->deadline_ms)) {
                s_fire (slot);
            }
        }
        /* A condvar wait, not a sleep: destroy wakes it at once.        */
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        ts.tv_nsec += GW_WATCHDOG_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait (&self->wake, &self->lock, &ts);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

gw_watchdog_t *
gw_watchdog_new (int slots)
{
    if (slots < 1) {
        return NULL;
    }
    gw_watchdog_t *self = calloc (1, sizeof *self);
    if (self == NULL) {
        return NULL;
    }
    self->count = slots;
    self->slots = calloc ((size_t)slots, sizeof *self->slots);
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    if (self->slots == NULL || pthread_create (&self->thread, NULL, s_run, self) != 0) {
        cm_error (NULL, "gw_watchdog_new() failed: %s",
                  self->slots ? "pthread_create" : "out of memory");
        gw_watchdog_destroy (&self);
        return NULL;
    }
    self->started = true;
    return self;
}

void
gw_watchdog_destroy (gw_watchdog_t **self_p)
{
    if (self_p && *self_p) {
        gw_watchdog_t *self = *self_p;
        if (self->started) {
            pthread_mutex_lock (&self->lock);
            self->stop = true;
            pthread_cond_signal (&self->wake);
            pthread_mutex_unlock (&self->lock);
            pthread_join (self->thread, NULL);
        }
        pthread_cond_destroy (&self->wake);
        pthread_mutex_destroy (&self->lock);
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

int
gw_watchdog_arm (gw_watchdog_t *self, const struct mg_request_info *ri,
                 uint64_t deadline_ms, const char *req_id)
{
    if (self == NULL || ri == NULL || ri->remote_addr[0] == '\0') {
        return -1;
    }
    int found = -1;
    pthread_mutex_lock (&self->lock);
    for (int i = 0; i < self->count; i++) {
        s_slot_t *slot = &self->slots[i];
        if (!slot->used) {
            slot->used = true;
            slot->fired = false;
            snprintf (slot->addr, sizeof slot->addr, "%s", ri->remote_addr);
            slot->remote_port = ri->remote_port;
            slot->local_port = ri->server_port;
            snprintf (slot->req_id, sizeof slot->req_id, "%s", req_id ? req_id : "");
            atomic_store (&slot->deadline_ms, deadline_ms);
            found = i;
            break;
        }
    }
    pthread_mutex_unlock (&self->lock);
    if (found < 0) {
        cm_warn (req_id, "gw_watchdog_arm() failed: no free slot");
    }
    return found;
}

void
gw_watchdog_extend (gw_watchdog_t *self, int slot, uint64_t deadline_ms)
{
    if (self && slot >= 0 && slot < self->count) {
        atomic_store (&self->slots[slot].deadline_ms, deadline_ms);
    }
}

bool
gw_watchdog_disarm (gw_watchdog_t *self, int slot)
{
    if (self == NULL || slot < 0 || slot >= self->count) {
        return false;
    }
    pthread_mutex_lock (&self->lock);
    bool fired = self->slots[slot].fired;
    self->slots[slot].used = false;
    self->slots[slot].fired = false;
    pthread_mutex_unlock (&self->lock);
    return fired;
}
