/*  maild_message -- RFC 5322 message composition.                       */
#include "maild_message.h"
#include "maild_template.h"
#include "cm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool
maild_message_recipient_valid (const char *to)
{
    return cm_email_valid (to);
}

bool
maild_message_sender_valid (const char *from)
{
    if (!from) {
        return false;
    }
    size_t len = strlen (from);
    if (len == 0 || len > 512) {
        return false;
    }
    const char *lt = strchr (from, '<');
    if (!lt) {
        return maild_message_recipient_valid (from);
    }
    /* Display name: printable ASCII words, no specials (no quoting). */
    for (const char *p = from; p < lt; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e || strchr ("()<>[]:;,\\\"", c)) {
            return false;
        }
    }
    const char *gt = strchr (lt, '>');
    if (!gt || gt[1] != '\0' || gt - lt - 1 > MAILD_MAX_ADDRESS) {
        return false;
    }
    char addr[MAILD_MAX_ADDRESS + 1];
    memcpy (addr, lt + 1, (size_t)(gt - lt - 1));
    addr[gt - lt - 1] = '\0';
    return maild_message_recipient_valid (addr);
}

int
maild_message_date (char *out, size_t outlen, uint64_t t)
{
    /* Own name tables: strftime's %a/%b follow the locale. */
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r (&tt, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11) {
        return -1;
    }
    int n = snprintf (out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                      days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                      tm.tm_hour, tm.tm_min, tm.tm_sec);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static bool
s_subject_valid (const char *subject)
{
    size_t len = subject ? strlen (subject) : 0;
    if (len == 0 || len > 900) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)subject[i];
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

/* No CR at all (we add every CR), no NUL-less surprises, lines bounded. */
static bool
s_body_valid (const char *body)
{
    size_t line = 0;
    for (const char *p = body; *p; p++) {
        if (*p == '\r') {
            return false;
        }
        line = *p == '\n' ? 0 : line + 1;
        if (line > MAILD_MAX_LINE) {
            return false;
        }
    }
    return true;
}

char *
maild_message_compose (const char *from, const char *to, const char *job_id,
                       const char *subject, const char *body, uint64_t date_s,
                       size_t *len_out)
{
    char date[40];
    if (!maild_message_sender_valid (from) || !maild_message_recipient_valid (to) ||
        !cm_is_hex_id (job_id, 32) || !s_subject_valid (subject) || !body ||
        !s_body_valid (body) || maild_message_date (date, sizeof date, date_s) != 0) {
        return NULL;
    }
    size_t lines = 1;
    for (const char *p = body; *p; p++) {
        lines += *p == '\n';
    }
    char head[2048];
    int hlen = snprintf (head, sizeof head,
                         "From: %s\r\n"
                         "To: %s\r\n"
                         "Subject: %s\r\n"
                         "Date: %s\r\n"
                         "Message-ID: <%s@safeshare>\r\n"
                         "MIME-Version: 1.0\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Transfer-Encoding: 8bit\r\n"
                         "Auto-Submitted: auto-generated\r\n"
                         "\r\n",
                         from, to, subject, date, job_id);
    if (hlen < 0 || (size_t)hlen >= sizeof head) {
        return NULL;
    }
    size_t blen = strlen (body);
    /* Each LF becomes CRLF; a body not ending in LF gets a final CRLF. */
    char *msg = malloc ((size_t)hlen + blen + lines + 2);
    if (!msg) {
        return NULL;
    }
    memcpy (msg, head, (size_t)hlen);
    size_t out = (size_t)hlen;
    for (size_t i = 0; i < blen; i++) {
        if (body[i] == '\n') {
            msg[out++] = '\r';
        }
        msg[out++] = body[i];
    }
    if (blen > 0 && body[blen - 1] != '\n') {
        msg[out++] = '\r';
        msg[out++] = '\n';
    }
    msg[out] = '\0';
    *len_out = out;
    return msg;
}
