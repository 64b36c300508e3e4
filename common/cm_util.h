/*  cm_util -- small shared helpers: time, randomness, hex, ids, secrets. */
#ifndef CM_UTIL_H
#define CM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock, unix epoch. */
uint64_t cm_now_ms (void);
uint64_t cm_now_s (void);
/* Monotonic clock for timeouts and heartbeats. */
uint64_t cm_mono_ms (void);

/* CSPRNG (OpenSSL RAND_bytes). 0 / -1. */
int cm_random (void *buf, size_t len);
/* Random id: `nbytes` random bytes as lowercase hex into out (2*nbytes+1). */
int cm_random_hex (char *out, size_t nbytes);
/* URL-safe random token: nbytes random bytes, base64url without padding. */
int cm_random_token (char *out, size_t outlen, size_t nbytes);
/* Length of the unpadded base64url of len bytes (no NUL).              */
#define CM_B64URL_LEN(len) (((len)*4 + 2) / 3)
/* Unpadded base64url (RFC 4648 section 5) of data[0..len) into out, which
   has room for CM_B64URL_LEN (len) + 1; NUL-terminated. Chars written. */
size_t cm_b64url_encode (char *out, const void *data, size_t len);

void cm_hex_encode (char *out, const uint8_t *in, size_t len); /* out: 2*len+1 */
/* Strict lowercase/uppercase hex of exactly 2*outlen chars. 0 / -1. */
int cm_hex_decode (uint8_t *out, size_t outlen, const char *hex);
/* SHA-256 of data as 64 lowercase hex chars + NUL. */
void cm_sha256_hex (char out[65], const void *data, size_t len);

/* True if s is exactly `len` lowercase hex chars (ids are 32). */
bool cm_is_hex_id (const char *s, size_t len);
/* True if s is a usable request id: 1..64 of [A-Za-z0-9._-]. */
bool cm_is_request_id (const char *s);

/* The one e-mail address rule (auth accepts at signup exactly what the
   mailer will send to): 3..254 bytes of printable ASCII without space or
   any of ()<>[]:;,\" , exactly one '@' with text on both sides. No quoted
   local parts, comments or address literals: they are legal in RFC 5322
   but never needed here and each is a header-injection risk.          */
bool cm_email_valid (const char *addr);

/* Wipes then frees (OPENSSL_cleanse). NULL-safe. */
void cm_secret_free (void *p, size_t len);

/* Reads a whole small file (<= max bytes) into a NUL-terminated buffer
   (caller frees). NULL on error or if larger than max.                 */
char *cm_file_read (const char *path, size_t max, size_t *len_out);
/* fsync of a directory, so its new entries survive power loss. 0 / -1. */
int cm_fsync_dir (const char *dir);
/* Writes atomically: tmp file in the same dir, fsync, rename, fsync dir. */
int cm_file_write_atomic (const char *path, const void *data, size_t len, int mode);

#endif
