/*  maild_server -- the mailer's request handling on its ROUTER socket:
    HEALTH and SEND (proto/mailer.proto, spec proto/mailer.md).

    SEND checks every field, renders the template, composes the RFC 5322
    message and hands it to the transport; the ack (MailSendReply) goes
    out only once the transport says the message is durable.          */
#ifndef MAILD_SERVER_H
#define MAILD_SERVER_H

#include <czmq.h>
#include "maild_transport.h"

typedef struct maild_server_t maild_server_t;

/* Takes ownership of *transport_p (nulled). `from` (copied) is the From
   header value, already checked with maild_message_sender_valid.
   NULL on a bad argument.                                             */
maild_server_t *maild_server_new (maild_transport_t **transport_p, const char *from);
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
