/*  gw_policy -- upload allow-list and content sniffing (see gw_policy.h). */
#include "gw_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define S_OCTET "application/octet-stream"

/* The extensions we know the format of. An allowed extension not in
   this table is stored as application/octet-stream with no rule.     */
static const struct {
    const char *ext;
    const char *type;
    gw_sniff_t sniff;
    const char *detail;
    const char *what;
} s_known[] = {
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     GW_SNIFF_OOXML, "word/", "a Word document (OOXML)"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
     GW_SNIFF_OOXML, "xl/", "an Excel workbook (OOXML)"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
     GW_SNIFF_OOXML, "ppt/", "a PowerPoint presentation (OOXML)"},
    {"odt", "application/vnd.oasis.opendocument.text", GW_SNIFF_ODF,
     "application/vnd.oasis.opendocument.text", "an OpenDocument text"},
    {"ods", "application/vnd.oasis.opendocument.spreadsheet", GW_SNIFF_ODF,
     "application/vnd.oasis.opendocument.spreadsheet", "an OpenDocument spreadsheet"},
    {"odp", "application/vnd.oasis.opendocument.presentation", GW_SNIFF_ODF,
     "application/vnd.oasis.opendocument.presentation", "an OpenDocument presentation"},
    {"pdf", "application/pdf", GW_SNIFF_PDF, NULL, "a PDF document"},
    {"png", "image/png", GW_SNIFF_PNG, NULL, "a PNG image"},
    {"jpg", "image/jpeg", GW_SNIFF_JPEG, NULL, "a JPEG image"},
    {"jpeg", "image/jpeg", GW_SNIFF_JPEG, NULL, "a JPEG image"},
    {"gif", "image/gif", GW_SNIFF_GIF, NULL, "a GIF image"},
    {"webp", "image/webp", GW_SNIFF_WEBP, NULL, "a WebP image"},
    {"zip", "application/zip", GW_SNIFF_ZIP, NULL, "a ZIP archive"},
    {"txt", "text/plain", GW_SNIFF_TEXT, NULL, "UTF-8 text without NUL bytes"},
    {"csv", "text/csv", GW_SNIFF_TEXT, NULL, "UTF-8 text without NUL bytes"},
};
#define S_NKNOWN (sizeof s_known / sizeof s_known[0])

static bool
s_ext_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '_' ||
           c == '-';
}

int
gw_policy_parse (gw_policy_t *policy, const char *spec, char *err, size_t errlen)
{
    memset (policy, 0, sizeof *policy);
    const char *p = spec ? spec : "";
    while (*p) {
        const char *end = strchr (p, ',');
        size_t len = end ? (size_t)(end - p) : strlen (p);
        const char *s = p;
        p = end ? end + 1 : p + len;
        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++, len--;
        }
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
            len--;
        }
        if (len > 0 && *s == '.') {
            s++, len--;
        }
        if (len == 0) {
            continue; /* "a,,b" or a trailing comma */
        }
        if (len == 1 && *s == '*') {
            policy->any = true;
            continue;
        }
        char ext[GW_POLICY_EXT_MAX + 1];
        if (len > GW_POLICY_EXT_MAX) {
            snprintf (
                err, errlen,
                "SAFESHARE_UPLOAD_ALLOWED_TYPES: extension '%.*s' is longer than %d",
                (int)(len > 40 ? 40 : len), s, GW_POLICY_EXT_MAX);
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            ext[i] = (char)tolower ((unsigned char)s[i]);
            if (!s_ext_char (ext[i])) {
                snprintf (err, errlen,
                          "SAFESHARE_UPLOAD_ALLOWED_TYPES: '%.*s' is not an extension "
                          "(letters, digits, + _ -) or *",
                          (int)len, s);
                return -1;
            }
        }
        ext[len] = '\0';
        bool seen = false;
        for (size_t i = 0; i < policy->count && !seen; i++) {
            seen = strcmp (policy->ext[i], ext) == 0;
        }
        if (seen) {
            continue;
        }
        if (policy->count == GW_POLICY_TYPES_MAX) {
            snprintf (err, errlen,
                      "SAFESHARE_UPLOAD_ALLOWED_TYPES lists more than %d extensions",
                      GW_POLICY_TYPES_MAX);
            return -1;
        }
        memcpy (policy->ext[policy->count++], ext, len + 1);
    }
    if (!policy->any && policy->count == 0) {
        snprintf (err, errlen, "SAFESHARE_UPLOAD_ALLOWED_TYPES lists no extension");
        return -1;
    }
    return 0;
}

bool
gw_policy_allow (const gw_policy_t *policy, const char *name, gw_policy_rule_t *rule)
{
    memset (rule, 0, sizeof *rule);
    rule->content_type = S_OCTET;
    rule->sniff = GW_SNIFF_ANY;
    rule->what = "any content";
    const char *dot = name ? strrchr (name, '.') : NULL;
    /* ".profile" has no extension, "a." neither. */
    bool has_ext = dot && dot != name && dot[1] != '\0';
    size_t len = has_ext ? strlen (dot + 1) : 0;
    bool fits = len <= GW_POLICY_EXT_MAX;
    for (size_t i = 0; i < len && i < GW_POLICY_EXT_MAX; i++) {
        rule->ext[i] = (char)tolower ((unsigned char)dot[1 + i]);
    }
    for (size_t i = 0; fits && len > 0 && i < S_NKNOWN; i++) {
        if (strcmp (rule->ext, s_known[i].ext) == 0) {
            rule->content_type = s_known[i].type;
            rule->sniff = s_known[i].sniff;
            rule->detail = s_known[i].detail;
            rule->what = s_known[i].what;
            break;
        }
    }
    if (policy->any) {
        return true;
    }
    for (size_t i = 0; fits && len > 0 && i < policy->count; i++) {
        if (strcmp (rule->ext, policy->ext[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- sniffing ------------------------------------------------------- */

static bool
s_prefix_is (const uint8_t *data, size_t len, const void *magic, size_t n)
{
    return len >= n && memcmp (data, magic, n) == 0;
}

static uint32_t
s_le16 (const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t
s_le32 (const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

#define S_ZIP_LOCAL  "PK\x03\x04"
#define S_ZIP_EMPTY  "PK\x05\x06"
#define S_ZIP_HEADER 30 /* local file header before the name */

/* ODF (OpenDocument 1.2 part 3, 3.3): the first entry is `mimetype`,
   stored uncompressed, its bytes the package's media type.           */
static bool
s_sniff_odf (const uint8_t *data, size_t len, const char *mimetype)
{
    if (!s_prefix_is (data, len, S_ZIP_LOCAL, 4) || len < S_ZIP_HEADER) {
        return false;
    }
    uint32_t method = s_le16 (data + 8);
    uint32_t csize = s_le32 (data + 18);
    uint32_t usize = s_le32 (data + 22);
    uint32_t nlen = s_le16 (data + 26);
    uint32_t elen = s_le16 (data + 28);
    size_t mlen = strlen (mimetype);
    size_t at = S_ZIP_HEADER + (size_t)nlen + elen;
    return method == 0 && nlen == 8 && memcmp (data + S_ZIP_HEADER, "mimetype", 8) == 0 &&
           csize == mlen && usize == mlen && at + mlen <= len &&
           memcmp (data + at, mimetype, mlen) == 0;
}

/* OOXML (ECMA-376 part 2): a ZIP with a `[Content_Types].xml` part.
   Walks the local entries in the prefix (sizes from their headers; an
   entry streamed with a data descriptor or a ZIP64 size gives none, so
   the next header is searched for) and looks for that part, or a part
   under the type's own folder (writers that put the manifest last).  */
static bool
s_sniff_ooxml (const uint8_t *data, size_t len, const char *folder)
{
    static const char manifest[] = "[Content_Types].xml";
    if (!s_prefix_is (data, len, S_ZIP_LOCAL, 4)) {
        return false;
    }
    size_t flen = folder ? strlen (folder) : 0;
    size_t off = 0;
    while (off + S_ZIP_HEADER <= len && memcmp (data + off, S_ZIP_LOCAL, 4) == 0) {
        const uint8_t *h = data + off;
        uint32_t flags = s_le16 (h + 6);
        uint32_t csize = s_le32 (h + 18);
        size_t nlen = s_le16 (h + 26);
        size_t elen = s_le16 (h + 28);
        if (off + S_ZIP_HEADER + nlen > len) {
            return false; /* the name is cut by the end of the prefix */
        }
        const char *name = (const char *)h + S_ZIP_HEADER;
        if ((nlen == sizeof manifest - 1 && memcmp (name, manifest, nlen) == 0) ||
            (flen > 0 && nlen > flen && memcmp (name, folder, flen) == 0)) {
            return true;
        }
        size_t next = off + S_ZIP_HEADER + nlen + elen;
        if ((flags & 0x08) || csize == 0xffffffffu) {
            /* Size unknown here: find the next local header. A false hit
               inside compressed data would have to carry a telling name
               too; a miss only means "no match".                      */
            const uint8_t *p =
                next < len ? memmem (data + next, len - next, S_ZIP_LOCAL, 4) : NULL;
            if (p == NULL) {
                return false;
            }
            next = (size_t)(p - data);
        } else {
            next += csize;
        }
        if (next <= off) {
            return false;
        }
        off = next;
    }
    return false;
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF) and
   no NUL. A sequence cut by the end of an incomplete prefix passes.   */
static bool
s_sniff_text (const uint8_t *s, size_t len, bool complete)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t min, cp;
        /* C0, C1 (overlong leads) and F5..FF never start a sequence. */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2, min = 0x80, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3, min = 0x800, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        size_t k = 1;
        for (; k < n && i + k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (s[i + k] & 0x3f);
            /* Catch overlongs and out-of-range leads as early as the
               second byte, so a cut sequence is judged too.            */
            if (k == 1 && ((n == 3 && c == 0xe0 && s[i + 1] < 0xa0) ||
                           (n == 3 && c == 0xed && s[i + 1] >= 0xa0) ||
                           (n == 4 && c == 0xf0 && s[i + 1] < 0x90) ||
                           (n == 4 && c == 0xf4 && s[i + 1] >= 0x90))) {
                return false;
            }
        }
        if (k < n) {
            return !complete; /* cut by the end of the prefix */
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n;
    }
    return true;
}

bool
gw_policy_sniff (const gw_policy_rule_t *rule, const uint8_t *data, size_t len,
                 bool complete)
{
    switch (rule->sniff) {
        case GW_SNIFF_ANY:
            return true;
        case GW_SNIFF_PDF:
            return s_prefix_is (data, len, "%PDF-", 5);
        case GW_SNIFF_PNG:
            return s_prefix_is (data, len, "\x89PNG\r\n\x1a\n", 8);
        case GW_SNIFF_JPEG:
            return s_prefix_is (data, len, "\xff\xd8\xff", 3);
        case GW_SNIFF_GIF:
            return s_prefix_is (data, len, "GIF87a", 6) ||
                   s_prefix_is (data, len, "GIF89a", 6);
        case GW_SNIFF_WEBP:
            return len >= 12 && memcmp (data, "RIFF", 4) == 0 &&
                   memcmp (data + 8, "WEBP", 4) == 0;
        case GW_SNIFF_ZIP:
            return s_prefix_is (data, len, S_ZIP_LOCAL, 4) ||
                   s_prefix_is (data, len, S_ZIP_EMPTY, 4);
        case GW_SNIFF_OOXML:
            return s_sniff_ooxml (data, len, rule->detail);
        case GW_SNIFF_ODF:
            return rule->detail && s_sniff_odf (data, len, rule->detail);
        case GW_SNIFF_TEXT:
            return s_sniff_text (data, len, complete);
    }
    return false;
}

/* The media type of a Content-Type value equals type (parameters and
   surrounding spaces ignored, case-insensitive).                      */
static bool
s_media_type_is (const char *ct, const char *type)
{
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    size_t n = strlen (type);
    if (strncasecmp (ct, type, n) != 0) {
        return false;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

bool
gw_policy_raw_type_ok (const char *content_type, const gw_policy_rule_t *rule)
{
    if (content_type == NULL) {
        return true;
    }
    const char *p = content_type;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return *p == '\0' || s_media_type_is (p, S_OCTET) ||
           (rule && s_media_type_is (p, rule->content_type));
}

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)tolower ((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int
gw_policy_name_decode (const char *in, char *out, size_t outlen)
{
    size_t used = 0;
    if (in == NULL || outlen == 0) {
        return -1;
    }
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == '%') {
            int hi = s_hex (p[1]);
            int lo = hi >= 0 ? s_hex (p[2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0)) {
                return -1;
            }
            c = (char)(hi << 4 | lo);
            p += 2;
        }
        if (used + 1 >= outlen) {
            return -1;
        }
        out[used++] = c;
    }
    out[used] = '\0';
    return 0;
}
