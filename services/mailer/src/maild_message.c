/*  maild_message -- RFC 5322 + MIME composition.                        */
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
    char addr[MAILD_MAX_ADDRESS + 1];
    return maild_message_sender_addr (from, addr, sizeof addr) == 0;
}

int
maild_message_sender_addr (const char *from, char *out, size_t outlen)
{
    if (!from || outlen < MAILD_MAX_ADDRESS + 1) {
        return -1;
    }
    size_t len = strlen (from);
    if (len == 0 || len > 512) {
        return -1;
    }
    const char *lt = strchr (from, '<');
    if (!lt) {
        if (!maild_message_recipient_valid (from)) {
            return -1;
        }
        snprintf (out, outlen, "%s", from);
        return 0;
    }
    /* Display name: printable ASCII words, no specials (no quoting). */
    for (const char *p = from; p < lt; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e || strchr ("()<>[]:;,\\\"@", c)) {
            return -1;
        }
    }
    const char *gt = strchr (lt, '>');
    if (!gt || gt[1] != '\0' || gt - lt - 1 > MAILD_MAX_ADDRESS) {
        return -1;
    }
    memcpy (out, lt + 1, (size_t)(gt - lt - 1));
    out[gt - lt - 1] = '\0';
    return maild_message_recipient_valid (out) ? 0 : -1;
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
s_ascii_printable (const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            return false;
        }
    }
    return true;
}

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 of in[0..len) into out (4 * ceil(len/3) + 1). */
static size_t
s_base64 (char *out, const unsigned char *in, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = s_b64[(v >> 18) & 63];
        out[o++] = s_b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? s_b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? s_b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* Length of the UTF-8 sequence starting with byte c (input is valid). */
static size_t
s_utf8_len (unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

char *
maild_message_subject (const char *subject)
{
    if (!subject) {
        return NULL;
    }
    size_t len = strlen (subject);
    if (len == 0 || len > MAILD_MAX_SUBJECT ||
        !maild_template_utf8_valid (subject, len)) {
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)subject; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return NULL;
        }
    }
    if (s_ascii_printable (subject)) {
        return strdup (subject);
    }
    /* "=?UTF-8?B?" + text + "?=" <= 75: at most 45 input bytes (60 of
       base64) per word; cut only between characters.                  */
    char *out = malloc (len * 4 + 64 * (len / 30 + 2));
    if (!out) {
        return NULL;
    }
    size_t o = 0, i = 0;
    while (i < len) {
        size_t n = 0;
        while (i + n < len && n + s_utf8_len ((unsigned char)subject[i + n]) <= 45) {
            n += s_utf8_len ((unsigned char)subject[i + n]);
        }
        if (o > 0) {
            memcpy (out + o, "\r\n ", 3);
            o += 3;
        }
        memcpy (out + o, "=?UTF-8?B?", 10);
        o += 10;
        o += s_base64 (out + o, (const unsigned char *)subject + i, n);
        memcpy (out + o, "?=", 2);
        o += 2;
        i += n;
    }
    out[o] = '\0';
    return out;
}

/* No CR at all (we add every CR), lines bounded. */
static bool
s_text_valid (const char *body)
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
    return maild_template_utf8_valid (body, strlen (body));
}

/* A growing output buffer; a failed append poisons it (NULL data). */
typedef struct {
    char *data;
    size_t len, cap;
} s_buf_t;

static void
s_put (s_buf_t *b, const char *s, size_t n)
{
    if (!b->data) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *data = malloc (cap);
        if (data) {
            memcpy (data, b->data, b->len);
        }
        cm_secret_free (b->data, b->cap); /* it may hold the link */
        b->data = data;
        b->cap = cap;
        if (!data) {
            return;
        }
    }
    memcpy (b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void
s_puts (s_buf_t *b, const char *s)
{
    s_put (b, s, strlen (s));
}

/* The text with each LF as CRLF (and a final CRLF). */
static void
s_put_crlf (s_buf_t *b, const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr (p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen (p);
        s_put (b, p, n);
        s_puts (b, "\r\n");
        p += n + (nl ? 1 : 0);
    }
}

/* base64 in lines of 76 (RFC 2045), each ending CRLF. */
static void
s_put_base64 (s_buf_t *b, const char *data)
{
    size_t len = strlen (data);
    char line[80];
    for (size_t i = 0; i < len; i += 57) {
        size_t n = len - i < 57 ? len - i : 57;
        size_t w = s_base64 (line, (const unsigned char *)data + i, n);
        s_put (b, line, w);
        s_puts (b, "\r\n");
    }
}

/* ASCII text (printable, TAB, LF) goes as 7bit. */
static bool
s_ascii_printable_lines (const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p > 0x7e) {
            return false;
        }
    }
    return true;
}

/* One part: its headers, then the body as 7bit or base64. */
static void
s_put_part (s_buf_t *b, const char *type, const char *body, bool force_b64)
{
    bool b64 = force_b64 || !s_ascii_printable_lines (body);
    s_puts (b, "Content-Type: ");
    s_puts (b, type);
    s_puts (b, "; charset=utf-8\r\nContent-Transfer-Encoding: ");
    s_puts (b, b64 ? "base64\r\n\r\n" : "7bit\r\n\r\n");
    if (b64) {
        s_put_base64 (b, body);
    } else {
        s_put_crlf (b, body);
    }
}

char *
maild_message_compose (const maild_message_parts_t *m, size_t *len_out)
{
    char date[40], from_addr[MAILD_MAX_ADDRESS + 1];
    if (!m || maild_message_sender_addr (m->from, from_addr, sizeof from_addr) != 0 ||
        (m->reply_to && *m->reply_to && !maild_message_sender_valid (m->reply_to)) ||
        !maild_message_recipient_valid (m->to) || !cm_is_hex_id (m->job_id, 32) ||
        !m->text || !s_text_valid (m->text) ||
        (m->html && !maild_template_utf8_valid (m->html, strlen (m->html))) ||
        maild_message_date (date, sizeof date, m->date_s) != 0) {
        return NULL;
    }
    char *subject = maild_message_subject (m->subject);
    if (!subject) {
        return NULL;
    }
    char boundary[64];
    snprintf (boundary, sizeof boundary, "=_safeshare_%s", m->job_id);
    /* A 7bit text part that contained the boundary would end the part
       early: such a text goes as base64 (which cannot contain "=_").    */
    bool text_b64 = strstr (m->text, boundary) != NULL;
    const char *domain = strchr (from_addr, '@') + 1;

    s_buf_t b = {.data = malloc (4096), .cap = 4096};
    if (b.data) {
        b.data[0] = '\0';
    }
    char head[2048];
    snprintf (head, sizeof head,
              "From: %s\r\n"
              "%s%s%s"
              "To: %s\r\n",
              m->from, m->reply_to && *m->reply_to ? "Reply-To: " : "",
              m->reply_to && *m->reply_to ? m->reply_to : "",
              m->reply_to && *m->reply_to ? "\r\n" : "", m->to);
    s_puts (&b, head);
    s_puts (&b, "Subject: ");
    s_puts (&b, subject);
    snprintf (head, sizeof head,
              "\r\nDate: %s\r\n"
              "Message-ID: <%s@%s>\r\n"
              "MIME-Version: 1.0\r\n"
              "Auto-Submitted: auto-generated\r\n",
              date, m->job_id, domain);
    s_puts (&b, head);
    if (m->html) {
        s_puts (&b, "Content-Type: multipart/alternative; boundary=\"");
        s_puts (&b, boundary);
        s_puts (&b, "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--");
        s_puts (&b, boundary);
        s_puts (&b, "\r\n");
        s_put_part (&b, "text/plain", m->text, text_b64);
        s_puts (&b, "\r\n--");
        s_puts (&b, boundary);
        s_puts (&b, "\r\n");
        s_put_part (&b, "text/html", m->html, true);
        s_puts (&b, "\r\n--");
        s_puts (&b, boundary);
        s_puts (&b, "--\r\n");
    } else {
        s_put_part (&b, "text/plain", m->text, text_b64);
    }
    free (subject);
    if (!b.data) {
        return NULL;
    }
    *len_out = b.len;
    return b.data;
}
