/*  maild_drop -- the mail-drop transport: each delivered job becomes one
    file $MAIL_DIR/<job_id>.eml (0600), written atomically (tmp + fsync +
    rename + fsync dir). The embedded default, used when no SMTP server
    is configured; an operator or a test reads the files. Jobs reach it
    through the outbox like SMTP jobs do (maild_transport.h).          */
#ifndef MAILD_DROP_H
#define MAILD_DROP_H

#include <stddef.h>
#include "maild_transport.h"

/* Creates `dir` 0700 if missing and checks it is a writable directory.
   Returns the transport, or NULL with a one-line reason in err.      */
maild_transport_t *maild_drop_new (const char *dir, char *err, size_t errlen);

#endif
