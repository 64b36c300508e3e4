/*  maild_transport -- where accepted mail goes: the seam between the
    request handling (maild_server) and delivery.

    Contract of submit: when it returns CM_OK the message is durable --
    it survives a crash or power loss of this host -- and the caller may
    ack the job. It is idempotent by job id: a job it already holds is
    answered CM_OK again (*duplicate = true) and not stored twice.

    Implementations: maild_drop (one .eml file per job in a directory,
    the embedded default). The SMTP transport (issue 6) stores the job in
    its outbox DB in submit and delivers from there with retries, so the
    same ack semantics hold.                                           */
#ifndef MAILD_TRANSPORT_H
#define MAILD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include "cm_status.h"

typedef struct maild_transport_t maild_transport_t;

/* What an implementation provides. `impl` is its own object. */
typedef struct {
    const char *name; /* "drop", "smtp": for logs */
    /* job_id: 32 hex; to: the envelope recipient (checked); data/len: the
       whole RFC 5322 message; req: request id for logs.                */
    cm_status_t (*submit) (void *impl, const char *req, const char *job_id,
                           const char *to, const char *data, size_t len, bool *duplicate);
    void (*destroy) (void **impl_p);
} maild_transport_ops_t;

/* Takes ownership of *impl_p (nulled). NULL if ops or *impl_p is NULL. */
maild_transport_t *maild_transport_new (const maild_transport_ops_t *ops, void **impl_p);
void maild_transport_destroy (maild_transport_t **self_p);

const char *maild_transport_name (maild_transport_t *self);
cm_status_t maild_transport_submit (maild_transport_t *self, const char *req,
                                    const char *job_id, const char *to, const char *data,
                                    size_t len, bool *duplicate);

#endif
