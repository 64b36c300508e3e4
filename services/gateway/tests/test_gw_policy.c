/*  unit_gateway_policy -- the upload allow-list, every sniff rule both
    ways (and on prefixes cut short), raw Content-Types, X-File-Name
    decoding.                                                          */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cm_config.h"
#include "gw_policy.h"

static gw_policy_t s_default;

static int
s_setup (void **state)
{
    char err[256];
    return gw_policy_parse (&s_default, GW_POLICY_DEFAULT, err, sizeof err);
}

/* The rule of name under the default list (which must allow it). */
static gw_policy_rule_t
s_rule (const char *name)
{
    gw_policy_rule_t rule;
    assert_true (gw_policy_allow (&s_default, name, &rule));
    return rule;
}

static bool
s_sniff (const char *name, const void *data, size_t len, bool complete)
{
    gw_policy_rule_t rule = s_rule (name);
    return gw_policy_sniff (&rule, data, len, complete);
}

/* ---- ZIP fixtures ----------------------------------------------------- */

static void
s_put16 (uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void
s_put32 (uint8_t *p, uint32_t v)
{
    s_put16 (p, v), s_put16 (p + 2, v >> 16);
}

/* Appends a local entry (method 0 = stored, 8 = deflated: the bytes are
   taken as they are). flags bit 3: sizes left 0, data descriptor after.
   Returns the new length.                                             */
static size_t
s_zip_entry (uint8_t *buf, size_t off, const char *name, const void *data, size_t len,
             uint32_t method, uint32_t flags, size_t extra)
{
    uint8_t *h = buf + off;
    memset (h, 0, 30);
    memcpy (h, "PK\x03\x04", 4);
    s_put16 (h + 4, 20);
    s_put16 (h + 6, flags);
    s_put16 (h + 8, method);
    if (!(flags & 8)) {
        s_put32 (h + 18, (uint32_t)len);
        s_put32 (h + 22, (uint32_t)len);
    }
    size_t n = strlen (name);
    s_put16 (h + 26, (uint32_t)n);
    s_put16 (h + 28, (uint32_t)extra);
    memcpy (h + 30, name, n);
    memset (h + 30 + n, 0, extra);
    memcpy (h + 30 + n + extra, data, len);
    off += 30 + n + extra + len;
    if (flags & 8) {
        memcpy (buf + off, "PK\x07\x08", 4);
        memset (buf + off + 4, 0, 12);
        off += 16;
    }
    return off;
}

/* The central directory start: what follows the last local entry. */
static size_t
s_zip_end (uint8_t *buf, size_t off)
{
    memcpy (buf + off, "PK\x01\x02", 4);
    memset (buf + off + 4, 0, 42);
    return off + 46;
}

/* ---- the allow-list --------------------------------------------------- */

static void
test_parse (void **state)
{
    gw_policy_t p;
    char err[256];
    assert_int_equal (gw_policy_parse (&p, " .DOCX, pptx ,xlsx,,docx,", err, sizeof err),
                      0);
    assert_false (p.any);
    assert_int_equal (p.count, 3);
    assert_string_equal (p.ext[0], "docx");
    assert_string_equal (p.ext[1], "pptx");
    assert_string_equal (p.ext[2], "xlsx");
    assert_int_equal (gw_policy_parse (&p, "*", err, sizeof err), 0);
    assert_true (p.any);
    assert_int_equal (gw_policy_parse (&p, "pdf,*", err, sizeof err), 0);
    assert_true (p.any);
    assert_int_equal (gw_policy_parse (&p, "tar.gz", err, sizeof err), -1);
    assert_non_null (strstr (err, "tar.gz"));
    assert_int_equal (gw_policy_parse (&p, "", err, sizeof err), -1);
    assert_non_null (strstr (err, "no extension"));
    assert_int_equal (gw_policy_parse (&p, " , ", err, sizeof err), -1);
    assert_int_equal (gw_policy_parse (&p, "a/b", err, sizeof err), -1);
    assert_int_equal (gw_policy_parse (&p, "abcdefghijklmnopq", err, sizeof err), -1);
    assert_non_null (strstr (err, "longer than 16"));
    char many[1024] = "";
    for (int i = 0; i <= GW_POLICY_TYPES_MAX; i++) {
        char one[16];
        snprintf (one, sizeof one, "e%d,", i);
        strcat (many, one);
    }
    assert_int_equal (gw_policy_parse (&p, many, err, sizeof err), -1);
    assert_non_null (strstr (err, "more than"));
    /* cm_config's default is this list. */
    unsetenv ("SAFESHARE_UPLOAD_ALLOWED_TYPES");
    cm_config_t *config = cm_config_load (NULL, err, sizeof err);
    assert_non_null (config);
    assert_string_equal (cm_config_get (config, "SAFESHARE_UPLOAD_ALLOWED_TYPES"),
                         GW_POLICY_DEFAULT);
    cm_config_destroy (&config);
    /* The documented default: office, pdf, images, text, zip, bin. */
    const char *want[] = {"docx", "xlsx", "pptx", "odt",  "ods", "odp", "pdf", "png",
                          "jpg",  "jpeg", "gif",  "webp", "txt", "csv", "zip", "bin"};
    assert_int_equal (s_default.count, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_string_equal (s_default.ext[i], want[i]);
    }
}

static void
test_allow (void **state)
{
    gw_policy_rule_t r;
    assert_true (gw_policy_allow (&s_default, "Report.PDF", &r));
    assert_string_equal (r.ext, "pdf");
    assert_string_equal (r.content_type, "application/pdf");
    assert_int_equal (r.sniff, GW_SNIFF_PDF);
    assert_true (gw_policy_allow (&s_default, "q3.final.xlsx", &r));
    assert_string_equal (
        r.content_type,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert_int_equal (r.sniff, GW_SNIFF_OOXML);
    assert_true (gw_policy_allow (&s_default, "notes.txt", &r));
    assert_string_equal (r.content_type, "text/plain");
    assert_true (gw_policy_allow (&s_default, "blob.bin", &r));
    assert_string_equal (r.content_type, "application/octet-stream");
    assert_int_equal (r.sniff, GW_SNIFF_ANY);
    /* Refused: not listed, active, no extension, hidden file, trailing dot. */
    const char *refused[] = {"page.html", "x.svg", "app.js", "a.exe",   "noext",
                             ".profile",  "a.",    "",       "x.tar.gz"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_false (gw_policy_allow (&s_default, refused[i], &r));
    }
    assert_false (gw_policy_allow (&s_default, "page.HTML", &r));
    assert_string_equal (r.ext, "html"); /* for the message */
    assert_false (gw_policy_allow (&s_default, NULL, &r));

    /* The seeds' list: office only. */
    gw_policy_t office;
    char err[128];
    assert_int_equal (gw_policy_parse (&office, "pptx,docx,xlsx", err, sizeof err), 0);
    assert_true (gw_policy_allow (&office, "deck.pptx", &r));
    assert_false (gw_policy_allow (&office, "notes.txt", &r));
    assert_false (gw_policy_allow (&office, "scan.pdf", &r));

    /* "*": anything, known types keep their rule, others are inert. */
    gw_policy_t any;
    assert_int_equal (gw_policy_parse (&any, "*", err, sizeof err), 0);
    assert_true (gw_policy_allow (&any, "page.html", &r));
    assert_string_equal (r.content_type, "application/octet-stream");
    assert_int_equal (r.sniff, GW_SNIFF_ANY);
    assert_true (gw_policy_allow (&any, "noext", &r));
    assert_string_equal (r.ext, "");
    assert_true (gw_policy_allow (&any, "scan.pdf", &r));
    assert_int_equal (r.sniff, GW_SNIFF_PDF);
    assert_true (gw_policy_allow (&any, "x.averyveryverylongextension", &r));

    /* A listed extension we know nothing of: stored inert, unchecked. */
    gw_policy_t cad;
    assert_int_equal (gw_policy_parse (&cad, "dwg", err, sizeof err), 0);
    assert_true (gw_policy_allow (&cad, "plan.DWG", &r));
    assert_string_equal (r.content_type, "application/octet-stream");
    assert_true (gw_policy_sniff (&r, (const uint8_t *)"\0\1\2", 3, true));
}

/* ---- sniffing --------------------------------------------------------- */

static void
test_sniff_magic (void **state)
{
    static const char pdf[] = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0};
    static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F'};
    static const char gif87[] = "GIF87a\x01\x00";
    static const char gif89[] = "GIF89a\x01\x00";
    static const char webp[] = "RIFF\x24\x00\x00\x00WEBPVP8 ";
    assert_true (s_sniff ("a.pdf", pdf, sizeof pdf - 1, true));
    assert_true (s_sniff ("a.png", png, sizeof png, true));
    assert_true (s_sniff ("a.jpg", jpeg, sizeof jpeg, true));
    assert_true (s_sniff ("a.jpeg", jpeg, sizeof jpeg, false));
    assert_true (s_sniff ("a.gif", gif87, sizeof gif87 - 1, true));
    assert_true (s_sniff ("a.gif", gif89, sizeof gif89 - 1, true));
    assert_true (s_sniff ("a.webp", webp, sizeof webp - 1, true));

    /* The wrong bytes for each. */
    assert_false (s_sniff ("a.pdf", png, sizeof png, true));
    assert_false (s_sniff ("a.pdf", " %PDF-1.7", 9, true));
    assert_false (s_sniff ("a.png", jpeg, sizeof jpeg, true));
    assert_false (s_sniff ("a.jpg", pdf, sizeof pdf - 1, true));
    assert_false (s_sniff ("a.gif", "GIF88a..", 8, true));
    assert_false (s_sniff ("a.webp", "RIFF\x24\x00\x00\x00WAVEfmt ", 16, true));
    assert_false (s_sniff ("a.zip", pdf, sizeof pdf - 1, true));

    /* Cut short: a file shorter than its magic never matches.          */
    assert_false (s_sniff ("a.pdf", "%PDF", 4, true));
    assert_false (s_sniff ("a.png", png, 7, true));
    assert_false (s_sniff ("a.jpg", jpeg, 2, true));
    assert_false (s_sniff ("a.gif", "GIF89", 5, true));
    assert_false (s_sniff ("a.webp", "RIFF\x24\x00\x00\x00WEB", 11, true));
    assert_false (s_sniff ("a.zip", "PK\x03", 3, true));
    assert_false (s_sniff ("a.pdf", "", 0, true)); /* empty */
    assert_false (s_sniff ("a.png", "", 0, true));
}

static void
test_sniff_zip (void **state)
{
    uint8_t buf[256];
    size_t len = s_zip_entry (buf, 0, "a.txt", "hello", 5, 0, 0, 0);
    len = s_zip_end (buf, len);
    assert_true (s_sniff ("a.zip", buf, len, true));
    /* The empty archive: an end-of-central-directory record alone. */
    uint8_t empty[22] = {'P', 'K', 5, 6};
    assert_true (s_sniff ("a.zip", empty, sizeof empty, true));
    /* A plain ZIP is not an office document. */
    assert_false (s_sniff ("a.docx", buf, len, true));
    assert_false (s_sniff ("a.odt", buf, len, true));
    assert_false (s_sniff ("a.docx", empty, sizeof empty, true));
    /* A spanned-archive marker or text is not a ZIP. */
    assert_false (s_sniff ("a.zip", "PK\x07\x08PK\x03\x04", 8, true));
    assert_false (s_sniff ("a.zip", "PKZIP", 5, true));
}

static void
test_sniff_ooxml (void **state)
{
    uint8_t *buf = calloc (1, 3 * GW_POLICY_PREFIX);
    /* Office / LibreOffice / python-docx: the manifest first. */
    size_t len = s_zip_entry (buf, 0, "[Content_Types].xml", "<Types/>", 8, 8, 0, 0);
    len = s_zip_entry (buf, len, "word/document.xml", "<w/>", 4, 8, 0, 0);
    size_t whole = s_zip_end (buf, len);
    assert_true (s_sniff ("a.docx", buf, whole, true));
    assert_true (s_sniff ("a.xlsx", buf, whole, true));
    assert_true (s_sniff ("a.pptx", buf, whole, true));
    assert_true (s_sniff ("a.zip", buf, whole, true)); /* a .zip takes any ZIP */
    assert_false (s_sniff ("a.odt", buf, whole, true));
    /* Cut inside the manifest's name: not enough to tell.             */
    assert_false (s_sniff ("a.docx", buf, 30 + 10, false));
    assert_true (s_sniff ("a.docx", buf, 30 + 19, false));

    /* openpyxl: docProps first, the manifest last -- xl/ tells.        */
    char app[300];
    memset (app, 'x', sizeof app);
    len = s_zip_entry (buf, 0, "docProps/app.xml", app, sizeof app, 8, 0, 0);
    len = s_zip_entry (buf, len, "docProps/core.xml", app, 100, 8, 0, 4);
    len = s_zip_entry (buf, len, "xl/workbook.xml", app, 50, 8, 0, 0);
    len = s_zip_entry (buf, len, "[Content_Types].xml", app, 20, 8, 0, 0);
    whole = s_zip_end (buf, len);
    assert_true (s_sniff ("a.xlsx", buf, whole, true));
    /* ... but an xl/ part does not make it a Word document; the
       manifest (in the prefix here) does, as for any OOXML.            */
    assert_true (s_sniff ("a.docx", buf, whole, true));
    size_t before_manifest = len - (30 + 19 + 20);
    assert_true (s_sniff ("a.xlsx", buf, before_manifest, false));
    assert_false (s_sniff ("a.docx", buf, before_manifest, false));
    assert_false (s_sniff ("a.pptx", buf, before_manifest, false));

    /* The telling entry beyond the examined prefix: no match.          */
    uint8_t *big = malloc (2 * GW_POLICY_PREFIX);
    memset (big, 'b', 2 * GW_POLICY_PREFIX);
    len = s_zip_entry (buf, 0, "media/image1.png", big, GW_POLICY_PREFIX + 100, 0, 0, 0);
    len = s_zip_entry (buf, len, "[Content_Types].xml", "<Types/>", 8, 8, 0, 0);
    assert_true (len > GW_POLICY_PREFIX);
    assert_false (s_sniff ("a.docx", buf, GW_POLICY_PREFIX, false));
    assert_true (s_sniff ("a.docx", buf, len, true)); /* whole: found */
    free (big);

    /* A streamed entry (data descriptor, sizes 0): the next header is
       found by its signature.                                          */
    len = s_zip_entry (buf, 0, "docProps/app.xml", app, 200, 8, 8, 0);
    len = s_zip_entry (buf, len, "[Content_Types].xml", "<Types/>", 8, 8, 8, 0);
    whole = s_zip_end (buf, len);
    assert_true (s_sniff ("a.pptx", buf, whole, true));
    /* ... and with no further header: no match.                        */
    len = s_zip_entry (buf, 0, "docProps/app.xml", app, 200, 8, 8, 0);
    assert_false (s_sniff ("a.pptx", buf, len, true));

    /* A ZIP of unrelated names, and non-ZIP bytes named .docx.         */
    len = s_zip_entry (buf, 0, "readme.txt", "hi", 2, 0, 0, 0);
    len = s_zip_entry (buf, len, "wordy/x.xml", "hi", 2, 0, 0, 0);
    whole = s_zip_end (buf, len);
    assert_false (s_sniff ("a.docx", buf, whole, true));
    assert_false (s_sniff ("a.docx", "%PDF-1.4", 8, true));
    assert_false (s_sniff ("a.xlsx", "PK\x03\x04", 4, true));
    free (buf);
}

static void
test_sniff_odf (void **state)
{
    static const char odt[] = "application/vnd.oasis.opendocument.text";
    uint8_t buf[512];
    size_t len = s_zip_entry (buf, 0, "mimetype", odt, strlen (odt), 0, 0, 0);
    len = s_zip_entry (buf, len, "content.xml", "<x/>", 4, 8, 0, 0);
    size_t whole = s_zip_end (buf, len);
    assert_true (s_sniff ("a.odt", buf, whole, true));
    assert_true (s_sniff ("a.zip", buf, whole, true));
    /* The mimetype must be the extension's own. */
    assert_false (s_sniff ("a.ods", buf, whole, true));
    assert_false (s_sniff ("a.odp", buf, whole, true));
    assert_false (s_sniff ("a.docx", buf, whole, true));
    /* Cut inside the mimetype's bytes: not enough to tell. */
    assert_false (s_sniff ("a.odt", buf, 30 + 8 + 10, false));
    assert_true (s_sniff ("a.odt", buf, 30 + 8 + strlen (odt), false));
    /* An extra field is allowed. */
    len = s_zip_entry (buf, 0, "mimetype", odt, strlen (odt), 0, 0, 9);
    assert_true (s_sniff ("a.odt", buf, len, false));

    static const char ods[] = "application/vnd.oasis.opendocument.spreadsheet";
    static const char odp[] = "application/vnd.oasis.opendocument.presentation";
    len = s_zip_entry (buf, 0, "mimetype", ods, strlen (ods), 0, 0, 0);
    assert_true (s_sniff ("a.ods", buf, len, true));
    len = s_zip_entry (buf, 0, "mimetype", odp, strlen (odp), 0, 0, 0);
    assert_true (s_sniff ("a.odp", buf, len, true));
    assert_false (s_sniff ("a.odt", buf, len, true));

    /* Compressed, not first, another name, a prefix of the type.      */
    len = s_zip_entry (buf, 0, "mimetype", odt, strlen (odt), 8, 0, 0);
    assert_false (s_sniff ("a.odt", buf, len, true));
    len = s_zip_entry (buf, 0, "content.xml", "<x/>", 4, 8, 0, 0);
    len = s_zip_entry (buf, len, "mimetype", odt, strlen (odt), 0, 0, 0);
    assert_false (s_sniff ("a.odt", buf, len, true));
    len = s_zip_entry (buf, 0, "mimetypf", odt, strlen (odt), 0, 0, 0);
    assert_false (s_sniff ("a.odt", buf, len, true));
    len = s_zip_entry (buf, 0, "mimetype", odt, strlen (odt) - 1, 0, 0, 0);
    assert_false (s_sniff ("a.odt", buf, len, true));
}

static void
test_sniff_text (void **state)
{
    static const char ok[] =
        "name,amount\nz\xc3\xbcrich,12\n\xe6\x97\xa5\xf0\x9f\x98\x80\n";
    assert_true (s_sniff ("a.csv", ok, sizeof ok - 1, true));
    assert_true (s_sniff ("a.txt", ok, sizeof ok - 1, true));
    assert_true (s_sniff ("a.txt", "", 0, true));               /* empty text */
    assert_true (s_sniff ("a.txt", "\xef\xbb\xbfhi", 5, true)); /* BOM */
    assert_true (s_sniff ("a.txt", "tab\there\r\n", 10, true)); /* controls */
    assert_false (s_sniff ("a.txt", "a\0b", 3, true));          /* NUL */
    assert_false (s_sniff ("a.csv",
                           "\xff\xfe"
                           "a\0",
                           4, true));                              /* UTF-16 */
    assert_false (s_sniff ("a.txt", "caf\xe9", 4, true));          /* Latin-1 */
    assert_false (s_sniff ("a.txt", "\xc0\xaf", 2, true));         /* overlong / */
    assert_false (s_sniff ("a.txt", "\xe0\x80\xaf", 3, true));     /* overlong */
    assert_false (s_sniff ("a.txt", "\xed\xa0\x80", 3, true));     /* surrogate */
    assert_false (s_sniff ("a.txt", "\xf4\x90\x80\x80", 4, true)); /* > U+10FFFF */
    assert_false (s_sniff ("a.txt", "\xf8\x88\x80\x80\x80", 5, true));
    assert_false (s_sniff ("a.txt", "\x80", 1, true)); /* lone continuation */
    assert_false (s_sniff ("a.txt", "%PDF-\x00", 6, true));

    /* A prefix may end mid-character when more follows; a whole file may
       not.                                                              */
    static const char cut[] = "ab\xf0\x9f\x98"; /* U+1F600 without its last byte */
    assert_true (s_sniff ("a.txt", cut, sizeof cut - 1, false));
    assert_false (s_sniff ("a.txt", cut, sizeof cut - 1, true));
    assert_true (s_sniff ("a.txt", "ab\xe6", 3, false));
    assert_false (s_sniff ("a.txt", "ab\xe6", 3, true));
    /* ... but a cut sequence already wrong is refused either way.       */
    assert_false (s_sniff ("a.txt", "ab\xed\xa0", 4, false));
    assert_false (s_sniff ("a.txt", "ab\xe6x", 4, false));
    assert_false (s_sniff ("a.txt", "ab\xf5", 3, false));
    assert_false (s_sniff ("a.txt", "ab\xc1", 3, false));

    /* A whole prefix of text passes; binary anywhere in it does not.   */
    char *big = malloc (GW_POLICY_PREFIX);
    memset (big, 'a', GW_POLICY_PREFIX);
    assert_true (s_sniff ("a.txt", big, GW_POLICY_PREFIX, false));
    big[GW_POLICY_PREFIX - 1] = '\0';
    assert_false (s_sniff ("a.txt", big, GW_POLICY_PREFIX, false));
    free (big);
}

/* ---- raw uploads ------------------------------------------------------ */

static void
test_raw_type (void **state)
{
    gw_policy_rule_t pdf = s_rule ("a.pdf");
    gw_policy_rule_t txt = s_rule ("a.txt");
    assert_true (gw_policy_raw_type_ok (NULL, &pdf));
    assert_true (gw_policy_raw_type_ok ("", &pdf));
    assert_true (gw_policy_raw_type_ok ("application/octet-stream", &pdf));
    assert_true (gw_policy_raw_type_ok ("Application/Octet-Stream ; x=1", &pdf));
    assert_true (gw_policy_raw_type_ok ("application/pdf", &pdf));
    assert_true (gw_policy_raw_type_ok ("text/plain; charset=utf-8", &txt));
    assert_false (gw_policy_raw_type_ok ("application/pdf", &txt));
    assert_false (gw_policy_raw_type_ok ("application/x-www-form-urlencoded", &pdf));
    assert_false (gw_policy_raw_type_ok ("application/json", &txt));
    assert_false (gw_policy_raw_type_ok ("multipart/form-data; boundary=x", &pdf));
    assert_false (gw_policy_raw_type_ok ("application/octet-streamx", &pdf));
    assert_false (gw_policy_raw_type_ok ("application/pdfx", &pdf));
}

static void
test_name_decode (void **state)
{
    char out[32];
    assert_int_equal (gw_policy_name_decode ("plain.txt", out, sizeof out), 0);
    assert_string_equal (out, "plain.txt");
    assert_int_equal (
        gw_policy_name_decode ("r%C3%A9sum%c3%a9%20v2.pdf", out, sizeof out), 0);
    assert_string_equal (out, "r\xc3\xa9sum\xc3\xa9 v2.pdf");
    assert_int_equal (gw_policy_name_decode ("a+b%2Fc.txt", out, sizeof out), 0);
    assert_string_equal (out, "a+b/c.txt"); /* the '/' is gw_name_clean's to drop */
    assert_int_equal (gw_policy_name_decode ("", out, sizeof out), 0);
    assert_string_equal (out, "");
    assert_int_equal (gw_policy_name_decode ("bad%2", out, sizeof out), -1);
    assert_int_equal (gw_policy_name_decode ("bad%zz", out, sizeof out), -1);
    assert_int_equal (gw_policy_name_decode ("bad%", out, sizeof out), -1);
    assert_int_equal (gw_policy_name_decode ("nul%00.txt", out, sizeof out), -1);
    assert_int_equal (
        gw_policy_name_decode ("0123456789012345678901234567890", out, sizeof out), 0);
    assert_int_equal (
        gw_policy_name_decode ("01234567890123456789012345678901", out, sizeof out), -1);
    assert_int_equal (gw_policy_name_decode (NULL, out, sizeof out), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_parse),       cmocka_unit_test (test_allow),
        cmocka_unit_test (test_sniff_magic), cmocka_unit_test (test_sniff_zip),
        cmocka_unit_test (test_sniff_ooxml), cmocka_unit_test (test_sniff_odf),
        cmocka_unit_test (test_sniff_text),  cmocka_unit_test (test_raw_type),
        cmocka_unit_test (test_name_decode),
    };
    return cmocka_run_group_tests (tests, s_setup, NULL);
}
