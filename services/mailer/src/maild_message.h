/*  maild_message -- builds one RFC 5322 / MIME message (the bytes of a
    .eml file or of an SMTP DATA phase) from checked parts.

    Nothing reaches a header unchecked: the recipient is a plain
    addr-spec of printable ASCII without specials, the sender and
    Reply-To come from the config and are checked at start, the subject
    from a template (UTF-8 becomes RFC 2047 encoded words). The text
    part goes as 7bit when it is ASCII (so the link stays greppable in a
    drop file), else base64; the HTML part always as base64. Every line
    is CRLF-terminated and shorter than 998 bytes. compose re-checks
    every part and refuses (NULL) rather than write a header a peer
    could have shaped.                                                 */
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

/* A From or Reply-To value (SAFESHARE_MAIL_FROM, _REPLY_TO): "addr" or
   "Display Name <addr>", printable ASCII, <= 512 bytes, where addr
   passes maild_message_recipient_valid and the name has no specials
   that would need quoting.                                           */
bool maild_message_sender_valid (const char *from);

/* The addr-spec of a valid sender value into out (>= 255 bytes). 0/-1. */
int maild_message_sender_addr (const char *from, char *out, size_t outlen);

/* "Fri, 21 Nov 2025 13:00:00 +0000" (RFC 5322 §3.3) for unix time t,
   into out (>= 32 bytes), independent of the locale. 0 / -1.         */
int maild_message_date (char *out, size_t outlen, uint64_t t);

/* The Subject header value: the subject itself when it is printable
   ASCII, else RFC 2047 "=?UTF-8?B?...?=" words (each <= 75 bytes, cut
   at character boundaries) folded with CRLF SP. Caller frees; NULL if
   the subject is not valid UTF-8 without control characters.         */
char *maild_message_subject (const char *subject);

typedef struct {
    const char *from;     /* checked sender value */
    const char *reply_to; /* NULL or "": none */
    const char *to;
    const char *job_id;  /* 32 hex: Message-ID <job_id@from-domain> */
    const char *subject; /* UTF-8, one line */
    const char *text;    /* UTF-8, LF line endings, no CR */
    const char *html;    /* UTF-8; NULL: a text/plain message only */
    uint64_t date_s;
} maild_message_parts_t;

/* The whole message: From, [Reply-To], To, Subject, Date, Message-ID,
   MIME-Version, Content-Type multipart/alternative (boundary
   "=_safeshare_<job_id>") or text/plain, Auto-Submitted, a blank line,
   the parts. Returns the message (caller frees; it holds the link: wipe
   it) and its length in *len_out, or NULL if a part fails its check. */
char *maild_message_compose (const maild_message_parts_t *parts, size_t *len_out);

#endif
