/*  maild_transport -- how a claimed job leaves the mailer: the seam
    between the sender (maild_sender) and a delivery mechanism.

    deliver is called by the sender thread only, one job at a time, and
    says what became of the message:
      MAILD_DELIVERED  the peer took it (SMTP: 250 to the data and to the
                       recipient; drop: the file is durable). Idempotent
                       for the drop (a file already there is DELIVERED);
                       SMTP cannot be (a crash after the server's 250 and
                       before the result is recorded sends it again: the
                       Message-ID is the same, so receivers can tell).
      MAILD_RETRY      transient: connection refused or lost, a timeout,
                       a 4xx, TLS required but not offered, a disk error.
      MAILD_FAILED     permanent: a 5xx for the message or the recipient.
    `err` gets a one-line reason (for the job's last_error and the log;
    never the message, the link or a credential).

    Implementations: maild_drop (one .eml file per job, the embedded
    default) and maild_smtp (libesmtp, SAFESHARE_SMTP_URL).           */
#ifndef MAILD_TRANSPORT_H
#define MAILD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { MAILD_DELIVERED = 0, MAILD_RETRY = 1, MAILD_FAILED = 2 } maild_result_t;

typedef struct maild_transport_t maild_transport_t;

/* What an implementation provides. `impl` is its own object. */
typedef struct {
    const char *name; /* "drop", "smtp": for logs */
    /* job_id: 32 hex; to: the envelope recipient (checked); data/len: the
       whole RFC 5322 message (CRLF); req: an id for logs.              */
    maild_result_t (*deliver) (void *impl, const char *req, const char *job_id,
                               const char *to, const char *data, size_t len, char *err,
                               size_t errlen);
    void (*destroy) (void **impl_p);
    /* Optional, called from another thread than deliver's: a stop is
       coming. A delivery in progress ends soon (MAILD_RETRY) instead of
       waiting out its timeouts, and later ones return MAILD_RETRY at
       once. Must not block.                                          */
    void (*cancel) (void *impl);
} maild_transport_ops_t;

/* Takes ownership of *impl_p (nulled). NULL if ops or *impl_p is NULL. */
maild_transport_t *maild_transport_new (const maild_transport_ops_t *ops, void **impl_p);
void maild_transport_destroy (maild_transport_t **self_p);

const char *maild_transport_name (maild_transport_t *self);
maild_result_t maild_transport_deliver (maild_transport_t *self, const char *req,
                                        const char *job_id, const char *to,
                                        const char *data, size_t len, char *err,
                                        size_t errlen);
/* The stop is coming (ops->cancel; nothing without one): safe from any
   thread while deliver runs on the sender's, and before destroy.     */
void maild_transport_cancel (maild_transport_t *self);

#endif
