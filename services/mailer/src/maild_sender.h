/*  maild_sender -- the thread that drains the outbox (its own, so the
    ROUTER never waits for SMTP): claim a due job (a lease), hand it
    to the transport, record the result; transient failures are retried
    with exponential backoff and jitter until the job's give-up time,
    permanent ones are recorded as failed and never retried by itself.

    It wakes when kicked (a job was just stored), when the next job falls
    due, and at least every second (jobs re-queued by an operator or
    left by a dead mailer whose lease ran out).                        */
#ifndef MAILD_SENDER_H
#define MAILD_SENDER_H

#include "maild_outbox.h"
#include "maild_transport.h"

#include <stdatomic.h>
#include <stdint.h>

/* Process counters since start (STATS), shared by server and sender. */
typedef struct {
    _Atomic uint64_t queued;  /* new jobs accepted */
    _Atomic uint64_t sent;    /* delivered */
    _Atomic uint64_t failed;  /* given up (5xx, or too old) */
    _Atomic uint64_t retried; /* transient failures scheduled again */
} maild_counters_t;

typedef struct {
    const char *owner;          /* lease owner name, unique per process */
    uint64_t lease_ms;          /* how long a claim holds a job */
    uint64_t retry_min_ms;      /* first backoff; doubles per attempt */
    uint64_t retry_max_ms;      /* backoff cap */
    maild_counters_t *counters; /* borrowed, outlives the sender */
} maild_sender_config_t;

typedef struct maild_sender_t maild_sender_t;

/* Takes *outbox_p (its own DB connection) and *transport_p (both
   nulled) and starts the thread. NULL on failure (logged).            */
maild_sender_t *maild_sender_new (const maild_sender_config_t *config,
                                  maild_outbox_t **outbox_p,
                                  maild_transport_t **transport_p);
/* Stops the thread and joins it (everything it held is freed when this
   returns): a delivery in progress is cut short (maild_transport_cancel:
   the job is retried later, as after any transient failure) and its
   result recorded first. Call from the thread that made the sender.  */
void maild_sender_destroy (maild_sender_t **self_p);

/* A job was just stored: look at once. */
void maild_sender_kick (maild_sender_t *self);

/* The backoff before attempt n+1 after n failed attempts (n >= 1):
   min(max, min * 2^(n-1)) scaled by a random factor in [0.5, 1]
   (`rnd` in [0, 1]: jitter, so retries of many jobs do not come in
   waves).                                                             */
uint64_t maild_sender_backoff (uint64_t min_ms, uint64_t max_ms, long attempts,
                               double rnd);

#endif
