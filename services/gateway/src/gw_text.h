/*  gw_text -- pure text helpers of the gateway: the client's filename made
    safe for display, a content type from the extension, RFC 6266
    Content-Disposition, ISO 8601 times. No I/O, no state.              */
#ifndef GW_TEXT_H
#define GW_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest display name, in bytes (storage accepts 1..255 UTF-8 bytes). */
#define GW_NAME_MAX 255
/* Enough for gw_disposition_build of any GW_NAME_MAX name. */
#define GW_DISPOSITION_MAX (GW_NAME_MAX * 4 + 64)

/* The client's filename reduced to a display name: path prefix (after the
   last '/' or '\') removed, control chars dropped, invalid UTF-8 bytes
   replaced by '_', cut to <= GW_NAME_MAX bytes on a character boundary;
   empty, "." or ".." become "upload.bin". out must hold GW_NAME_MAX + 1.
   in may be NULL (treated as empty). Never a path: display only.       */
void gw_name_clean (const char *in, char out[GW_NAME_MAX + 1]);

/* Content type guessed from the name's extension (small table, case-
   insensitive); "application/octet-stream" when unknown or active
   (html, htm, xhtml, svg, xml, js, ...). Static string.               */
const char *gw_content_type_guess (const char *name);

/* True for types a browser may run script in or render as a document
   (HTML, XHTML, SVG, XML, JavaScript, ...); parameters ignored. Until a
   type policy exists no stored file is labelled with one: they are
   served as application/octet-stream (still attachment, nosniff and a
   CSP sandbox).                                                        */
bool gw_content_type_active (const char *type);

/* Room for gw_multipart_type's output (a boundary is <= 70 chars). */
#define GW_MULTIPART_TYPE_MAX 128

/* A Content-Type for multipart/form-data reduced to the one form civetweb
   parses, `multipart/form-data; boundary=<b>`, wherever the boundary sat
   among the parameters (quoted or not). 1 written to out; 0 multipart/
   form-data without a usable boundary (missing, twice, empty, > 70
   chars, outside RFC 2046's bchars, malformed parameters); -1 not
   multipart/form-data (or ct NULL).                                    */
int gw_multipart_type (const char *ct, char *out, size_t outlen);

/* `attachment; filename="<ascii-safe>"; filename*=UTF-8''<pct-encoded>`
   for a display name (RFC 6266 / RFC 5987). Quotes, backslashes, CR, LF,
   control and non-ASCII bytes never reach the quoted form; the extended
   form percent-encodes everything but RFC 5987 attr-chars. 0 / -1 when
   out is too small.                                                    */
int gw_disposition_build (const char *name, char *out, size_t outlen);

/* A `Range` header against a representation of `size` bytes (RFC 9110
   14.1.2), one range only: `bytes=a-b`, `bytes=a-`, `bytes=-n`. 1: a
   satisfiable range, *first..*last inclusive (b cut to size - 1, a
   suffix longer than the file is the whole file); -1 unsatisfiable (a >=
   size, a zero suffix, or any range of an empty file): answer 416; 0
   ignore it and send the whole file (NULL, another unit, malformed,
   b < a, numbers past 2^63, or more than one range).                 */
int gw_range_parse (const char *header, uint64_t size, uint64_t *first, uint64_t *last);

/* True when an `If-None-Match` header matches etag (quoted, `"..."`):
   `*`, or any entry of the list equal to it or to W/ of it (the weak
   comparison RFC 9110 13.1.2 asks for). False for NULL or malformed. */
bool gw_etag_match_any (const char *header, const char *etag);

/* Unix seconds -> "YYYY-MM-DDTHH:MM:SSZ" (UTC). out: >= 21 bytes.     */
void gw_iso8601 (uint64_t unix_s, char out[32]);

#endif
