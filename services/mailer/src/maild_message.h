/*  maild_message -- builds one RFC 5322 message (the bytes of a .eml file
    or of an SMTP DATA phase) from checked parts.

    Nothing reaches a header unchecked: the recipient is a plain
    addr-spec of printable ASCII without specials, the sender comes from
    the config and is checked at start, the subject from a compiled-in
    template. maild_message_compose re-checks every part and refuses
    (NULL) rather than write a header a peer could have shaped.        */
#ifndef MAILD_MESSAGE_H
#define MAILD_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1.3 path limit, less the angle brackets. */
#define MAILD_MAX_ADDRESS 254

/* A recipient we accept: 3..254 bytes, exactly one '@' with text on both
   sides, only printable ASCII (so no CR/LF, control chars or spaces) and
   none of the RFC 5322 specials ( ) < > [ ] : ; , \ " .              */
bool maild_message_recipient_valid (const char *to);

/* The From header value (SAFESHARE_MAIL_FROM): "addr" or
   "Display Name <addr>", printable ASCII, <= 512 bytes, where addr
   passes maild_message_recipient_valid and the name has no specials
   that would need quoting.                                           */
bool maild_message_sender_valid (const char *from);

/* "Fri, 21 Nov 2025 13:00:00 +0000" (RFC 5322 §3.3) for unix time t,
   into out (>= 32 bytes), independent of the locale. 0 / -1.         */
int maild_message_date (char *out, size_t outlen, uint64_t t);

/* The whole message, CRLF line endings, headers From, To, Subject, Date,
   Message-ID <job_id@safeshare>, MIME-Version, Content-Type text/plain
   UTF-8, Content-Transfer-Encoding 8bit, Auto-Submitted, a blank line,
   then `body` (LF line endings in, CRLF out; no CR allowed in, lines
   <= 998 bytes). Returns the message (caller frees) and its length in
   *len_out, or NULL if any part fails its check.                     */
char *maild_message_compose (const char *from, const char *to, const char *job_id,
                             const char *subject, const char *body, uint64_t date_s,
                             size_t *len_out);

#endif
