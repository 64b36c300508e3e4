/*  authd_outbox -- relays mail jobs from the auth database's mail_outbox
    table to the mailer, one in flight, without ever blocking the loop.

    The owner polls authd_outbox_sock() beside its ROUTER, calls
    authd_outbox_recv() when it is readable and authd_outbox_tick() every
    turn; authd_outbox_timeout() says when the next tick has work. A job is
    marked sent (and its vars, which hold the verification link, erased)
    only when the mailer acked it; until then it is re-sent with backoff,
    across restarts too. The mailer acks idempotently by job id.       */
#ifndef AUTHD_OUTBOX_H
#define AUTHD_OUTBOX_H

#include "cm_db.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct authd_outbox_t authd_outbox_t;

/* db borrowed. ack_timeout_ms: how long to wait for an ack before the
   connection is reset and the job re-sent. NULL on failure (logged). */
authd_outbox_t *authd_outbox_new (cm_db_t *db, const char *mailer_endpoint,
                                  int ack_timeout_ms);
void authd_outbox_destroy (authd_outbox_t **self_p);

/* The DEALER to poll (borrowed; the same object for the outbox's life). */
zsock_t *authd_outbox_sock (authd_outbox_t *self);
/* A job was just committed: look for it at the next tick. */
void authd_outbox_kick (authd_outbox_t *self);
/* Sends the next pending job when due, handles an ack timeout. */
void authd_outbox_tick (authd_outbox_t *self, uint64_t now_ms);
/* Reads one reply from the mailer (the socket was readable). */
void authd_outbox_recv (authd_outbox_t *self, uint64_t now_ms);
/* Milliseconds until tick has something to do (>= 0). */
int authd_outbox_timeout (authd_outbox_t *self, uint64_t now_ms);

#endif
