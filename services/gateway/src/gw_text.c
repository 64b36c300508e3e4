/*  gw_text -- pure text helpers (see gw_text.h).                        */
#include "gw_text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid; sets *cp.
   Rejects overlong forms, surrogates and code points above U+10FFFF.  */
static size_t
s_utf8_seq (const unsigned char *s, size_t avail, unsigned *cp)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, min = 0x80, c &= 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, min = 0x800, c &= 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (avail < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    *cp = c;
    return n;
}

void
gw_name_clean (const char *in, char out[GW_NAME_MAX + 1])
{
    const char *base = in ? in : "";
    /* Only the last path component: the client's name is never a path. */
    for (const char *p = base; *p; p++) {
        if (*p == '/' || *p == '\\') {
            base = p + 1;
        }
    }
    const unsigned char *s = (const unsigned char *)base;
    size_t avail = strlen (base);
    size_t used = 0;
    while (avail > 0) {
        unsigned cp = 0;
        size_t n = s_utf8_seq (s, avail, &cp);
        if (n == 0) {
            /* Invalid byte: shown as '_' so storage always gets UTF-8. */
            if (used + 1 > GW_NAME_MAX) {
                break;
            }
            out[used++] = '_';
            s++, avail--;
            continue;
        }
        bool control = cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
        if (!control) {
            if (used + n > GW_NAME_MAX) {
                break;
            }
            memcpy (out + used, s, n);
            used += n;
        }
        s += n, avail -= n;
    }
    out[used] = '\0';
    if (used == 0 || strcmp (out, ".") == 0 || strcmp (out, "..") == 0) {
        strcpy (out, "upload.bin");
    }
}

static const struct {
    const char *ext;
    const char *type;
} s_types[] = {
    {"txt", "text/plain"},
    {"csv", "text/csv"},
    {"md", "text/markdown"},
    {"json", "application/json"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    /* No html, htm, xhtml, svg, xml, js: active types (see
       gw_content_type_active) fall through to octet-stream.          */
};

/* Media types (lowercase, no parameters) a browser may script or render
   as a document. Anything ending in +xml is caught by suffix.         */
static const char *s_active[] = {
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "text/xsl",
    "application/xslt+xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "text/ecmascript",
    "application/x-shockwave-flash",
    "multipart/x-mixed-replace",
};

const char *
gw_content_type_guess (const char *name)
{
    const char *dot = name ? strrchr (name, '.') : NULL;
    if (dot && dot[1]) {
        for (size_t i = 0; i < sizeof s_types / sizeof s_types[0]; i++) {
            if (strcasecmp (dot + 1, s_types[i].ext) == 0 &&
                !gw_content_type_active (s_types[i].type)) {
                return s_types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

/* Past spaces and tabs (RFC 9110 OWS). */
static const char *
s_skip_ows (const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

bool
gw_content_type_active (const char *type)
{
    if (type == NULL) {
        return false;
    }
    type = s_skip_ows (type);
    size_t len = strcspn (type, "; \t");
    for (size_t i = 0; i < sizeof s_active / sizeof s_active[0]; i++) {
        if (strlen (s_active[i]) == len && strncasecmp (type, s_active[i], len) == 0) {
            return true;
        }
    }
    return len >= 4 && strncasecmp (type + len - 4, "+xml", 4) == 0;
}

/* RFC 2046 bchars: DIGIT / ALPHA / "'()+_,-./:=? " (space not last).  */
static bool
s_bchar (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr ("'()+_,-./:=? ", c) != NULL);
}

/* RFC 9110 token characters (a parameter name or unquoted value).    */
static bool
s_tchar (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr ("!#$%&'*+-.^_`|~", c) != NULL);
}

int
gw_multipart_type (const char *ct, char *out, size_t outlen)
{
    static const char type[] = "multipart/form-data";
    if (ct == NULL) {
        return -1;
    }
    const char *p = s_skip_ows (ct);
    if (strncasecmp (p, type, sizeof type - 1) != 0) {
        return -1;
    }
    p += sizeof type - 1;
    if (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t') {
        return -1;
    }
    char boundary[71];
    size_t blen = 0;
    bool found = false;
    while (true) {
        p = s_skip_ows (p);
        if (*p == '\0') {
            break;
        }
        if (*p++ != ';') {
            return 0;
        }
        p = s_skip_ows (p);
        if (*p == '\0') {
            break; /* a trailing ';' */
        }
        const char *name = p;
        while (s_tchar (*p)) {
            p++;
        }
        size_t nlen = (size_t)(p - name);
        if (nlen == 0 || *p++ != '=') {
            return 0;
        }
        char value[71];
        size_t vlen = 0;
        bool too_long = false;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) {
                    p++;
                }
                if (vlen < sizeof value - 1) {
                    value[vlen++] = *p;
                } else {
                    too_long = true;
                }
                p++;
            }
            if (*p++ != '"') {
                return 0;
            }
        } else {
            while (s_tchar (*p)) {
                if (vlen < sizeof value - 1) {
                    value[vlen++] = *p;
                } else {
                    too_long = true;
                }
                p++;
            }
        }
        value[vlen] = '\0';
        if (nlen == 8 && strncasecmp (name, "boundary", 8) == 0) {
            if (found || too_long || vlen == 0 || value[vlen - 1] == ' ') {
                return 0;
            }
            for (size_t i = 0; i < vlen; i++) {
                if (!s_bchar (value[i])) {
                    return 0;
                }
            }
            memcpy (boundary, value, vlen + 1);
            blen = vlen;
            found = true;
        }
    }
    if (!found) {
        return 0;
    }
    /* Quoted only when it must be (bchars beyond token chars).         */
    bool plain = true;
    for (size_t i = 0; i < blen; i++) {
        plain = plain && s_tchar (boundary[i]);
    }
    int n = snprintf (out, outlen, plain ? "%s; boundary=%s" : "%s; boundary=\"%s\"",
                      type, boundary);
    return n > 0 && (size_t)n < outlen ? 1 : 0;
}

/* RFC 5987 attr-char: sent as is in filename*; all else percent-encoded. */
static bool
s_attr_char (unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c && strchr ("!#$&+-.^_`|~", c) != NULL;
}

int
gw_disposition_build (const char *name, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)(name ? name : "");
    size_t len = strlen ((const char *)s);
    /* Worst case: prefix + len (quoted) + 3*len (encoded) + suffix. */
    static const char prefix[] = "attachment; filename=\"";
    static const char middle[] = "\"; filename*=UTF-8''";
    if (outlen < sizeof prefix + sizeof middle + 4 * len + 1) {
        return -1;
    }
    size_t o = 0;
    memcpy (out + o, prefix, sizeof prefix - 1);
    o += sizeof prefix - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        /* Printable ASCII except the two that could end the quoted string. */
        bool safe = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
        out[o++] = safe ? (char)c : '_';
    }
    memcpy (out + o, middle, sizeof middle - 1);
    o += sizeof middle - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (s_attr_char (c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0x0f];
        }
    }
    out[o] = '\0';
    return 0;
}

/* Decimal digits at *p into *out, *p moved past them. -1 when there are
   none or the value passes 2^63 - 1.                                  */
static int
s_parse_u63 (const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') {
        return -1;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (INT64_MAX - (uint64_t)(*s - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = v;
    return 0;
}

int
gw_range_parse (const char *header, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (header == NULL) {
        return 0;
    }
    const char *s = s_skip_ows (header);
    if (strncasecmp (s, "bytes", 5) != 0) {
        return 0;
    }
    s = s_skip_ows (s + 5);
    if (*s != '=') {
        return 0;
    }
    s = s_skip_ows (s + 1);
    uint64_t a = 0, b = 0;
    bool suffix = *s == '-';
    bool open = false;
    if (suffix) {
        s++;
        if (s_parse_u63 (&s, &b) != 0) {
            return 0;
        }
    } else {
        if (s_parse_u63 (&s, &a) != 0 || *s != '-') {
            return 0;
        }
        s++;
        open = *s < '0' || *s > '9';
        if (!open && s_parse_u63 (&s, &b) != 0) {
            return 0;
        }
    }
    /* Anything else (a second range included) and the header is ignored:
       RFC 9110 lets a server send the whole file rather than parts.    */
    if (*s_skip_ows (s) != '\0') {
        return 0;
    }
    if (!suffix && !open && b < a) {
        return 0;
    }
    if (suffix) {
        if (b == 0 || size == 0) {
            return -1;
        }
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (a >= size) {
        return -1;
    }
    *first = a;
    *last = open || b >= size ? size - 1 : b;
    return 1;
}

bool
gw_etag_match_any (const char *header, const char *etag)
{
    if (header == NULL || etag == NULL) {
        return false;
    }
    size_t elen = strlen (etag);
    const char *s = s_skip_ows (header);
    if (*s == '*') {
        return *s_skip_ows (s + 1) == '\0';
    }
    while (*s) {
        if (strncmp (s, "W/", 2) == 0) {
            s += 2;
        }
        if (*s != '"') {
            return false;
        }
        const char *end = strchr (s + 1, '"');
        if (end == NULL) {
            return false;
        }
        size_t len = (size_t)(end + 1 - s);
        if (len == elen && memcmp (s, etag, elen) == 0) {
            return true;
        }
        s = s_skip_ows (end + 1);
        if (*s == ',') {
            s = s_skip_ows (s + 1);
        } else if (*s != '\0') {
            return false;
        }
    }
    return false;
}

void
gw_iso8601 (uint64_t unix_s, char out[32])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (gmtime_r (&t, &tm) == NULL ||
        strftime (out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        strcpy (out, "1970-01-01T00:00:00Z");
    }
}
