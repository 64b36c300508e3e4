/*  maild_smtp -- the SMTP transport (libesmtp), SAFESHARE_SMTP_URL:

      smtp://[USER[:PASS]@]HOST[:PORT][?tls=starttls|none]

    PORT defaults to 587 (submission). STARTTLS is required unless the
    URL says tls=none (then TLS is never used: plaintext, explicitly);
    the server's certificate is verified against the system CAs (or
    SAFESHARE_SMTP_CA_FILE) and must name HOST. USER and PASS are
    percent-decoded; with a user the session authenticates (PLAIN/LOGIN,
    only after STARTTLS unless tls=none). The credentials are secrets:
    never logged, wiped on destroy.

    Every step has a timeout (timeout_ms): the connect (probed first,
    libesmtp's own connect has none), the greeting and each reply, the
    data transfer. A session is judged by the message's and the
    recipient's reply codes, never by smtp_start_session's return alone
    (PLATFORM.md: it reports success when required TLS failed).      */
#ifndef MAILD_SMTP_H
#define MAILD_SMTP_H

#include "maild_transport.h"

#include <stdbool.h>
#include <stddef.h>

/* The parts of an SMTP URL (maild_smtp_url_parse). */
typedef struct {
    char host[256];
    char port[6];
    char *user;     /* NULL: no AUTH */
    char *password; /* secret */
    bool starttls;  /* false only for ?tls=none */
} maild_smtp_url_t;

/* 0 with *out filled (clear it with maild_smtp_url_clear), or -1 with a
   reason in err that never contains the password.                    */
int maild_smtp_url_parse (const char *url, maild_smtp_url_t *out, char *err,
                          size_t errlen);
void maild_smtp_url_clear (maild_smtp_url_t *url);

/* url: SAFESHARE_SMTP_URL; sender: the envelope sender (an addr-spec);
   timeout_ms: each step; ca_file: NULL for the system CAs. NULL with a
   reason in err (never the password).                                */
maild_transport_t *maild_smtp_new (const char *url, const char *sender, long timeout_ms,
                                   const char *ca_file, char *err, size_t errlen);

/* How many reply waits one delivery may take at most (for the lease:
   SAFESHARE_MAIL_LEASE_S must cover MAILD_SMTP_STEPS x the timeout).  */
#define MAILD_SMTP_STEPS 16

#endif
