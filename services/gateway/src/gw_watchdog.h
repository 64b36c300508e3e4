/*  gw_watchdog -- deadlines on request body reads. civetweb's
    request_timeout_ms bounds one wait for data, not a whole read: a
    client trickling a byte every few seconds keeps mg_read (and so a
    worker thread) busy for as long as it likes. A body read is armed
    with a deadline (moved on as bytes arrive, for a minimum rate); a
    thread checks every GW_WATCHDOG_TICK_MS and shuts the read side of
    a late request's socket, so civetweb's blocked read sees EOF and the
    handler answers 408. One slot per worker thread (one request each). */
#ifndef GW_WATCHDOG_H
#define GW_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>
#include <civetweb.h>

#define GW_WATCHDOG_TICK_MS 100

typedef struct gw_watchdog_t gw_watchdog_t;

/* slots: how many requests may be armed at once (the worker count).
   Starts the checking thread. NULL on failure.                         */
gw_watchdog_t *gw_watchdog_new (int slots);
/* Stops the thread; every request must have disarmed.                  */
void gw_watchdog_destroy (gw_watchdog_t **self_p);

/* Arms a deadline (monotonic ms, cm_mono_ms) for the request's socket,
   known by ri's addresses. Returns the slot, or -1 when none is free
   (the read then runs unguarded; logged).                              */
int gw_watchdog_arm (gw_watchdog_t *self, const struct mg_request_info *ri,
                     uint64_t deadline_ms, const char *req_id);
/* Moves an armed deadline (lock-free: called per piece of body).       */
void gw_watchdog_extend (gw_watchdog_t *self, int slot, uint64_t deadline_ms);
/* Frees the slot; after it returns the socket is never touched. True if
   the deadline fired (the socket's read side was shut).                */
bool gw_watchdog_disarm (gw_watchdog_t *self, int slot);

#endif
