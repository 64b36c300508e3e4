/*  maild_server -- the mailer's request handling on its ROUTER socket:
    HEALTH, SEND and STATS (proto/mailer.proto, spec proto/mailer.md).

    SEND checks every field, renders the template, composes the message
    and stores it in the outbox; the ack (MailSendReply) goes out only
    once the job row is committed, then the sender is kicked. Delivery
    happens on the sender's thread, so the ROUTER never waits for it. */
#ifndef MAILD_SERVER_H
#define MAILD_SERVER_H

#include <czmq.h>
#include "maild_outbox.h"
#include "maild_sender.h"
#include "maild_template.h"

typedef struct maild_server_t maild_server_t;

typedef struct {
    const char *from;           /* checked with maild_message_sender_valid */
    const char *reply_to;       /* NULL / "": none; else checked likewise */
    uint64_t max_age_ms;        /* a job's give-up time after it is stored */
    maild_sender_t *sender;     /* borrowed; NULL: nobody to kick (tests) */
    maild_counters_t *counters; /* borrowed */
} maild_server_config_t;

/* Takes *templates_p and *outbox_p (its own DB connection), nulled.
   NULL on a bad argument.                                             */
maild_server_t *maild_server_new (const maild_server_config_t *config,
                                  maild_templates_t **templates_p,
                                  maild_outbox_t **outbox_p);
void maild_server_destroy (maild_server_t **self_p);

/* Receives and answers one message from `router` (ROUTER). Malformed
   input is answered (or dropped when it has no envelope), never fatal.
   0 when a reply went out (OK or an error status), -1 when none did
   (unreadable, no envelope, past its deadline, send failed).        */
int maild_server_handle (maild_server_t *self, zsock_t *router);

/* Serves `router` until SIGINT/SIGTERM (cm_service_stopping). Work is
   one request at a time, so when the loop sees the signal nothing is in
   flight; queued requests are left to the callers' retries. 0 / -1.  */
int maild_server_run (maild_server_t *self, zsock_t *router);

#endif
