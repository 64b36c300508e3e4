/*  gw_policy -- what may be uploaded: the extension allow-list
    (SAFESHARE_UPLOAD_ALLOWED_TYPES), the content type each allowed
    extension is stored with, and the sniff rule its first bytes must
    pass before anything is stored. Pure: no I/O, no state beyond the
    parsed list, so every rule is unit-tested without a server.

    Why GW_POLICY_PREFIX (8 KiB) is enough: the magic numbers checked
    are at most 12 bytes at offset 0; an ODF package must start with its
    uncompressed `mimetype` entry (30 + 8 + at most ~80 bytes); OOXML
    writers put `[Content_Types].xml` first (Office, LibreOffice,
    python-docx) or start with a few small parts whose names already
    show the type (openpyxl: docProps/..., then xl/...), all within the
    first few hundred bytes. Text is judged on that sample (a file that
    turns binary after 8 KiB passes: the check is "the claimed type is
    plausible", not a scan), and 8 KiB is also one civetweb form piece. */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes buffered and examined before an upload is begun. */
#define GW_POLICY_PREFIX (8 * 1024)
/* Longest extension in the list, and how many entries it may have. */
#define GW_POLICY_EXT_MAX   16
#define GW_POLICY_TYPES_MAX 64
/* SAFESHARE_UPLOAD_ALLOWED_TYPES when unset (docs/configuration.md). */
#define GW_POLICY_DEFAULT                                                                \
    "docx,xlsx,pptx,odt,ods,odp,pdf,png,jpg,jpeg,gif,webp,txt,csv,zip,bin"

/* What the first bytes must be. */
typedef enum {
    GW_SNIFF_ANY = 0, /* no rule: an extension with no known format */
    GW_SNIFF_PDF,     /* %PDF- */
    GW_SNIFF_PNG,     /* \x89PNG\r\n\x1a\n */
    GW_SNIFF_JPEG,    /* FF D8 FF */
    GW_SNIFF_GIF,     /* GIF87a / GIF89a */
    GW_SNIFF_WEBP,    /* RIFF....WEBP */
    GW_SNIFF_ZIP,     /* PK\3\4 (a local entry) or PK\5\6 (an empty archive) */
    GW_SNIFF_OOXML,   /* ZIP whose first entries name [Content_Types].xml or the
                         type's own part folder (word/, xl/, ppt/) */
    GW_SNIFF_ODF,     /* ZIP whose first entry is `mimetype`, stored, holding
                         the type's media type */
    GW_SNIFF_TEXT,    /* valid UTF-8 without NUL */
} gw_sniff_t;

/* One allowed extension: what is stored and what is checked. */
typedef struct {
    char ext[GW_POLICY_EXT_MAX + 1]; /* lowercase, no dot; "" for a name without
                                        one (a longer one is cut: refused anyway) */
    const char *content_type;        /* stored as FileInfo.content_type */
    gw_sniff_t sniff;
    const char *detail; /* ODF: its mimetype; OOXML: its part folder; else NULL */
    const char *what;   /* for messages: "a PDF document" */
} gw_policy_rule_t;

/* The parsed allow-list (a value: copied into the settings, shared
   read-only by every worker).                                         */
typedef struct {
    bool any; /* "*": every extension, known ones still sniffed */
    size_t count;
    char ext[GW_POLICY_TYPES_MAX][GW_POLICY_EXT_MAX + 1];
} gw_policy_t;

/* Parses "ext,ext,..." (case-insensitive, spaces and leading dots
   ignored, "*" alone or among them allows any extension). Entries are
   1..GW_POLICY_EXT_MAX of [a-z0-9+_-]; unknown extensions are allowed
   and stored as application/octet-stream with no content rule. 0, or -1
   with a one-line reason in err (empty list, bad entry, too many).    */
int gw_policy_parse (gw_policy_t *policy, const char *spec, char *err, size_t errlen);

/* The rule for a (cleaned) file name, by its extension (after the last
   '.', case-insensitive; none when the name has no '.' or ends in one or
   starts with its only one). True with *rule set when allowed; false
   when the list refuses it (*rule then says what the extension would be,
   for the message).                                                   */
bool gw_policy_allow (const gw_policy_t *policy, const char *name,
                      gw_policy_rule_t *rule);

/* Do the first bytes fit the rule? data/len: the start of the file;
   complete: it is the whole file (else more follows, and len should be
   GW_POLICY_PREFIX or all there was). A structure cut by the end of an
   incomplete prefix (a UTF-8 sequence, a ZIP entry still to come) is
   judged on what is there: a text prefix may end mid-character; a
   ZIP whose telling entry lies beyond the prefix does not match.       */
bool gw_policy_sniff (const gw_policy_rule_t *rule, const uint8_t *data, size_t len,
                      bool complete);

/* A raw upload's Content-Type: true when absent/empty,
   application/octet-stream or the rule's own type (case-insensitive,
   parameters ignored).                                                */
bool gw_policy_raw_type_ok (const char *content_type, const gw_policy_rule_t *rule);

/* Percent-decodes an X-File-Name value (RFC 3986 %XX, UTF-8 expected;
   '+' is kept as is). 0, or -1 on a malformed escape, an encoded NUL or
   an output longer than outlen - 1.                                   */
int gw_policy_name_decode (const char *in, char *out, size_t outlen);

#endif
