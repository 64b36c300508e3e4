/*  gw_text -- pure text helpers of the gateway: the client's filename made
    safe for display, a content type from the extension, RFC 6266
    Content-Disposition, ISO 8601 times. No I/O, no state.              */
#ifndef GW_TEXT_H
#define GW_TEXT_H

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
   insensitive); "application/octet-stream" when unknown. Static string. */
const char *gw_content_type_guess (const char *name);

/* `attachment; filename="<ascii-safe>"; filename*=UTF-8''<pct-encoded>`
   for a display name (RFC 6266 / RFC 5987). Quotes, backslashes, CR, LF,
   control and non-ASCII bytes never reach the quoted form; the extended
   form percent-encodes everything but RFC 5987 attr-chars. 0 / -1 when
   out is too small.                                                    */
int gw_disposition_build (const char *name, char *out, size_t outlen);

/* Unix seconds -> "YYYY-MM-DDTHH:MM:SSZ" (UTC). out: >= 21 bytes.     */
void gw_iso8601 (uint64_t unix_s, char out[32]);

#endif
