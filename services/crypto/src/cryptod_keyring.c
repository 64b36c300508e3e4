/*  cryptod_keyring -- the KEK ring and DEK wrapping. See cryptod_keyring.h
    and docs/format.md.                                                 */
#include "cryptod_keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "cm_log.h"
#include "cm_util.h"
#include "cryptod_aead.h"

#define WRAP_AAD_PREFIX "safeshare-dek-v1:"
/* "<16 hex> <64 hex>\n" */
#define LINE_LEN (CRYPTOD_KEK_ID_LEN + 1 + 2 * CRYPTOD_KEK_LEN + 1)

typedef struct {
    char id[CRYPTOD_KEK_ID_LEN + 1];
    uint8_t key[CRYPTOD_KEK_LEN];
} s_kek_t;

struct cryptod_keyring_t {
    s_kek_t *keks; /* oldest first; the last is current */
    size_t count;
    size_t cap;
};

/* Reads the ring file into a NUL-terminated buffer (caller wipes and
   frees). Checks on the open descriptor, so what is checked is what is
   read: regular file, no group/other permission bits, size limit.
   *missing is set if the file does not exist.                         */
static char *
s_ring_read (const char *path, size_t *len_out, bool *missing)
{
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    *missing = false;
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            /* The caller decides: generate creates it, load reports it. */
            *missing = true;
            return NULL;
        }
        cm_error (NULL, "open() failed for KEK ring %s: %s", path, strerror (errno));
        return NULL;
    }
    if (fstat (fd, &st) != 0) {
        cm_error (NULL, "fstat() failed for KEK ring %s: %s", path, strerror (errno));
        goto cleanup;
    }
    if (!S_ISREG (st.st_mode)) {
        cm_error (NULL, "KEK ring %s is not a regular file", path);
        goto cleanup;
    }
    if (st.st_mode & 077) {
        cm_error (NULL,
                  "KEK ring %s has mode %03o: refusing a ring that group/other can "
                  "access (chmod 600 it)",
                  path, (unsigned)(st.st_mode & 0777));
        goto cleanup;
    }
    if (st.st_size > CRYPTOD_KEYRING_MAX) {
        cm_error (NULL, "KEK ring %s is larger than %d bytes", path, CRYPTOD_KEYRING_MAX);
        goto cleanup;
    }
    buf = malloc ((size_t)st.st_size + 1);
    if (!buf) {
        goto cleanup;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read (fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            cm_error (NULL, "read() failed for KEK ring %s: %s", path,
                      n < 0 ? strerror (errno) : "short read");
            cm_secret_free (buf, (size_t)st.st_size + 1);
            buf = NULL;
            goto cleanup;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    *len_out = len;
cleanup:
    close (fd);
    return buf;
}

/* One entry "<16 hex id> <64 hex key>" (exactly, n bytes at p) into
   kek. -1 if malformed; nothing of the key is kept on failure.        */
static int
s_entry_parse (const char *p, size_t n, s_kek_t *kek)
{
    char keyhex[2 * CRYPTOD_KEK_LEN + 1];
    if (n != LINE_LEN - 1 || p[CRYPTOD_KEK_ID_LEN] != ' ') {
        return -1;
    }
    memcpy (kek->id, p, CRYPTOD_KEK_ID_LEN);
    kek->id[CRYPTOD_KEK_ID_LEN] = '\0';
    memcpy (keyhex, p + CRYPTOD_KEK_ID_LEN + 1, 2 * CRYPTOD_KEK_LEN);
    keyhex[2 * CRYPTOD_KEK_LEN] = '\0';
    /* Lowercase only, like the ids: one spelling per key.             */
    bool bad = !cm_is_hex_id (kek->id, CRYPTOD_KEK_ID_LEN) ||
               !cm_is_hex_id (keyhex, 2 * CRYPTOD_KEK_LEN) ||
               cm_hex_decode (kek->key, CRYPTOD_KEK_LEN, keyhex) != 0;
    OPENSSL_cleanse (keyhex, sizeof keyhex);
    if (bad) {
        OPENSSL_cleanse (kek, sizeof *kek);
        return -1;
    }
    return 0;
}

static bool
s_blank (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parses ring text: lines of the file format (`env` false) or the
   ';'-separated entries of SAFESHARE_KEK_RING. NULL (logged, naming
   `what` and the line / entry number, never any of the text) on any
   malformed entry, a duplicate id, or no KEK at all.                  */
static cryptod_keyring_t *
s_ring_parse (const char *what, const char *text, size_t len, bool env)
{
    const char sep = env ? ';' : '\n';
    const char *unit = env ? "entry" : "line";
    cryptod_keyring_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    /* Upper bound on the number of entries, to allocate once.         */
    size_t max = 1;
    for (size_t i = 0; i < len; i++) {
        max += text[i] == sep;
    }
    self->keks = calloc (max, sizeof *self->keks);
    if (!self->keks) {
        goto fail;
    }
    self->cap = max;
    size_t number = 0;
    const char *p = text;
    const char *end = text + len;
    while (p < end) {
        const char *stop = memchr (p, sep, (size_t)(end - p));
        size_t n = stop ? (size_t)(stop - p) : (size_t)(end - p);
        const char *next = p + n + 1;
        number++;
        if (env) {
            /* Blanks around an entry are layout, not part of it.       */
            while (n > 0 && s_blank (*p)) {
                p++, n--;
            }
            while (n > 0 && s_blank (p[n - 1])) {
                n--;
            }
        }
        if (n == 0 || (!env && p[0] == '#')) {
            p = next;
            continue;
        }
        s_kek_t *kek = &self->keks[self->count];
        if (s_entry_parse (p, n, kek) != 0) {
            cm_error (NULL, "KEK ring %s %s %zu: expected \"<16 hex id> <64 hex key>\"",
                      what, unit, number);
            goto fail;
        }
        for (size_t i = 0; i < self->count; i++) {
            if (strcmp (self->keks[i].id, kek->id) == 0) {
                cm_error (NULL, "KEK ring %s %s %zu: duplicate KEK id %s", what, unit,
                          number, kek->id);
                goto fail;
            }
        }
        self->count++;
        p = next;
    }
    if (self->count == 0) {
        cm_error (NULL, "KEK ring %s holds no KEK", what);
        goto fail;
    }
    return self;
fail:
    cryptod_keyring_destroy (&self);
    return NULL;
}

cryptod_keyring_t *
cryptod_keyring_parse (const char *text, size_t len, bool env, const char *what)
{
    if (!text) {
        return NULL;
    }
    return s_ring_parse (what ? what : (env ? CRYPTOD_KEYRING_ENV : "(text)"), text, len,
                         env);
}

cryptod_keyring_t *
cryptod_keyring_load (const char *path)
{
    size_t len = 0;
    bool missing;
    if (!path) {
        return NULL;
    }
    char *text = s_ring_read (path, &len, &missing);
    if (!text) {
        if (missing) {
            cm_error (NULL, "no KEK ring at %s", path);
        }
        return NULL;
    }
    cryptod_keyring_t *self = s_ring_parse (path, text, len, false);
    cm_secret_free (text, len + 1);
    return self;
}

void
cryptod_keyring_destroy (cryptod_keyring_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    cryptod_keyring_t *self = *self_p;
    if (self->keks) {
        /* The whole array, including the slot of a half-parsed line.   */
        OPENSSL_cleanse (self->keks, self->cap * sizeof *self->keks);
        free (self->keks);
    }
    free (self);
    *self_p = NULL;
}

int
cryptod_keyring_generate (const char *path, char id_out[17])
{
    int rc = -1;
    cryptod_keyring_t *ring = NULL;
    char *text = NULL;
    size_t text_cap = 0;
    uint8_t key[CRYPTOD_KEK_LEN];
    char id[CRYPTOD_KEK_ID_LEN + 1];
    bool missing = false;
    size_t old_len = 0;

    if (!path || !id_out) {
        return -1;
    }
    char *old = s_ring_read (path, &old_len, &missing);
    if (!old && !missing) {
        return -1;
    }
    if (old) {
        /* Parse to refuse appending to a ring we could not load.       */
        ring = s_ring_parse (path, old, old_len, false);
        if (!ring) {
            goto cleanup;
        }
    }
    /* A fresh id that the ring does not hold yet (a clash is ~2^-64).  */
    do {
        if (cm_random_hex (id, CRYPTOD_KEK_ID_LEN / 2) != 0) {
            goto cleanup;
        }
    } while (ring && cryptod_keyring_has (ring, id));
    if (cm_random (key, sizeof key) != 0) {
        cm_error (NULL, "cm_random() failed generating a KEK");
        goto cleanup;
    }
    text_cap = old_len + 1 + LINE_LEN + 1;
    text = malloc (text_cap);
    if (!text) {
        goto cleanup;
    }
    size_t len = 0;
    if (old_len > 0) {
        memcpy (text, old, old_len);
        len = old_len;
        if (text[len - 1] != '\n') {
            text[len++] = '\n';
        }
    }
    memcpy (text + len, id, CRYPTOD_KEK_ID_LEN);
    len += CRYPTOD_KEK_ID_LEN;
    text[len++] = ' ';
    cm_hex_encode (text + len, key, sizeof key);
    len += 2 * CRYPTOD_KEK_LEN;
    text[len++] = '\n';
    if (cm_file_write_atomic (path, text, len, 0600) != 0) {
        cm_error (NULL, "cm_file_write_atomic() failed for KEK ring %s", path);
        goto cleanup;
    }
    memcpy (id_out, id, sizeof id);
    rc = 0;
cleanup:
    OPENSSL_cleanse (key, sizeof key);
    cm_secret_free (text, text_cap);
    cm_secret_free (old, old ? old_len + 1 : 0);
    cryptod_keyring_destroy (&ring);
    return rc;
}

int
cryptod_keyring_path (const char *key_dir, char *out, size_t outlen)
{
    if (!key_dir || !*key_dir || !out) {
        return -1;
    }
    int n = snprintf (out, outlen, "%s/%s", key_dir, CRYPTOD_KEYRING_FILE);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

cryptod_keyring_t *
cryptod_keyring_open (const char *key_dir, const char *env_ring)
{
    if (env_ring && *env_ring) {
        /* Never the value itself in a log line: only "SAFESHARE_KEK_RING". */
        return s_ring_parse (CRYPTOD_KEYRING_ENV, env_ring, strlen (env_ring), true);
    }
    char path[4096];
    if (cryptod_keyring_path (key_dir, path, sizeof path) != 0) {
        cm_error (NULL, "KEK ring: no key dir, or its path is too long");
        return NULL;
    }
    return cryptod_keyring_load (path);
}

int
cryptod_keyring_retire (const char *path, const char *kek_id)
{
    int rc = -1;
    bool missing = false;
    size_t old_len = 0, len = 0;
    char *text = NULL;
    cryptod_keyring_t *ring = NULL;
    if (!path || !kek_id) {
        return -1;
    }
    char *old = s_ring_read (path, &old_len, &missing);
    if (!old) {
        if (missing) {
            cm_error (NULL, "no KEK ring at %s", path);
        }
        return -1;
    }
    ring = s_ring_parse (path, old, old_len, false);
    if (!ring) {
        goto cleanup;
    }
    if (!cryptod_keyring_has (ring, kek_id)) {
        cm_error (NULL, "KEK ring %s holds no KEK %.16s", path, kek_id);
        goto cleanup;
    }
    if (strcmp (cryptod_keyring_current (ring), kek_id) == 0) {
        cm_error (NULL, "KEK %s is the current KEK of %s: it cannot be retired", kek_id,
                  path);
        goto cleanup;
    }
    /* Line by line, so comments and the order (the last line is the
       current KEK) stay as the operator wrote them. The ring parsed, so
       every line that is not a comment or empty is one entry.         */
    text = malloc (old_len + 1);
    if (!text) {
        goto cleanup;
    }
    const char *p = old;
    const char *end = old + old_len;
    while (p < end) {
        const char *nl = memchr (p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        bool drop = n >= CRYPTOD_KEK_ID_LEN + 1 && p[0] != '#' &&
                    memcmp (p, kek_id, CRYPTOD_KEK_ID_LEN) == 0 &&
                    p[CRYPTOD_KEK_ID_LEN] == ' ';
        if (!drop) {
            memcpy (text + len, p, n);
            len += n;
        }
        p += n;
    }
    if (cm_file_write_atomic (path, text, len, 0600) != 0) {
        cm_error (NULL, "cm_file_write_atomic() failed for KEK ring %s", path);
        goto cleanup;
    }
    rc = 0;
cleanup:
    cm_secret_free (text, old_len + 1);
    cm_secret_free (old, old_len + 1);
    cryptod_keyring_destroy (&ring);
    return rc;
}

int
cryptod_keyring_add (cryptod_keyring_t *self, char id_out[17])
{
    if (!self || !id_out) {
        return -1;
    }
    if (self->count == self->cap) {
        /* Grow by copy: realloc could leave the old keys in freed memory. */
        size_t cap = self->cap ? self->cap * 2 : 4;
        s_kek_t *keks = calloc (cap, sizeof *keks);
        if (!keks) {
            return -1;
        }
        if (self->keks) {
            memcpy (keks, self->keks, self->count * sizeof *keks);
            OPENSSL_cleanse (self->keks, self->cap * sizeof *self->keks);
            free (self->keks);
        }
        self->keks = keks;
        self->cap = cap;
    }
    s_kek_t *kek = &self->keks[self->count];
    do {
        if (cm_random_hex (kek->id, CRYPTOD_KEK_ID_LEN / 2) != 0) {
            return -1;
        }
    } while (cryptod_keyring_has (self, kek->id));
    if (cm_random (kek->key, sizeof kek->key) != 0) {
        cm_error (NULL, "cm_random() failed generating a KEK");
        OPENSSL_cleanse (kek, sizeof *kek);
        return -1;
    }
    self->count++;
    memcpy (id_out, kek->id, CRYPTOD_KEK_ID_LEN + 1);
    return 0;
}

int
cryptod_keyring_remove (cryptod_keyring_t *self, const char *kek_id)
{
    if (!self || !kek_id || self->count == 0) {
        return -1;
    }
    for (size_t i = 0; i + 1 < self->count; i++) {
        if (strcmp (self->keks[i].id, kek_id) == 0) {
            memmove (&self->keks[i], &self->keks[i + 1],
                     (self->count - i - 1) * sizeof *self->keks);
            self->count--;
            OPENSSL_cleanse (&self->keks[self->count], sizeof *self->keks);
            return 0;
        }
    }
    return -1; /* unknown, or the current KEK (the last one) */
}

char *
cryptod_keyring_format_env (const cryptod_keyring_t *self)
{
    if (!self || self->count == 0) {
        return NULL;
    }
    /* "<id> <key>" per KEK, ';' between them, NUL at the end.          */
    size_t cap = self->count * LINE_LEN;
    char *out = malloc (cap);
    if (!out) {
        return NULL;
    }
    size_t len = 0;
    for (size_t i = 0; i < self->count; i++) {
        if (i > 0) {
            out[len++] = ';';
        }
        memcpy (out + len, self->keks[i].id, CRYPTOD_KEK_ID_LEN);
        len += CRYPTOD_KEK_ID_LEN;
        out[len++] = ' ';
        cm_hex_encode (out + len, self->keks[i].key, CRYPTOD_KEK_LEN);
        len += 2 * CRYPTOD_KEK_LEN;
    }
    out[len] = '\0';
    return out;
}

const char *
cryptod_keyring_current (const cryptod_keyring_t *self)
{
    return self && self->count ? self->keks[self->count - 1].id : NULL;
}

size_t
cryptod_keyring_size (const cryptod_keyring_t *self)
{
    return self ? self->count : 0;
}

const char *
cryptod_keyring_id (const cryptod_keyring_t *self, size_t i)
{
    return self && i < self->count ? self->keks[i].id : NULL;
}

static const s_kek_t *
s_find (const cryptod_keyring_t *self, const char *kek_id)
{
    if (!self || !kek_id) {
        return NULL;
    }
    for (size_t i = 0; i < self->count; i++) {
        if (strcmp (self->keks[i].id, kek_id) == 0) {
            return &self->keks[i];
        }
    }
    return NULL;
}

bool
cryptod_keyring_has (const cryptod_keyring_t *self, const char *kek_id)
{
    return s_find (self, kek_id) != NULL;
}

/* AAD = "safeshare-dek-v1:" || file_id_hex: binds a wrapped DEK to its
   file, so a wrapped DEK copied onto another file's row fails.        */
static size_t
s_wrap_aad (char aad[sizeof WRAP_AAD_PREFIX + 32], const char *file_id_hex)
{
    size_t n = sizeof WRAP_AAD_PREFIX - 1;
    memcpy (aad, WRAP_AAD_PREFIX, n);
    memcpy (aad + n, file_id_hex, 32);
    return n + 32;
}

int
cryptod_dek_wrap (const cryptod_keyring_t *self, const char *file_id_hex,
                  const uint8_t dek[32], char kek_id_out[17], uint8_t *wrapped,
                  size_t *wrapped_len)
{
    char aad[sizeof WRAP_AAD_PREFIX + 32];
    if (!self || self->count == 0 || !file_id_hex || !cm_is_hex_id (file_id_hex, 32) ||
        !dek || !kek_id_out || !wrapped || !wrapped_len ||
        *wrapped_len < CRYPTOD_WRAPPED_DEK_LEN) {
        return -1;
    }
    const s_kek_t *kek = &self->keks[self->count - 1];
    size_t aad_len = s_wrap_aad (aad, file_id_hex);
    if (cm_random (wrapped, 12) != 0) {
        return -1;
    }
    if (cryptod_aead_seal (kek->key, wrapped, (const uint8_t *)aad, aad_len, dek, 32,
                           wrapped + 12, wrapped + 44) != 0) {
        cm_log_openssl (NULL, "cryptod_dek_wrap: EVP AES-256-GCM failed");
        return -1;
    }
    memcpy (kek_id_out, kek->id, CRYPTOD_KEK_ID_LEN + 1);
    *wrapped_len = CRYPTOD_WRAPPED_DEK_LEN;
    return 0;
}

int
cryptod_dek_unwrap (const cryptod_keyring_t *self, const char *kek_id,
                    const char *file_id_hex, const uint8_t *wrapped, size_t wrapped_len,
                    uint8_t dek[32])
{
    char aad[sizeof WRAP_AAD_PREFIX + 32];
    if (!dek) {
        return -1;
    }
    const s_kek_t *kek = s_find (self, kek_id);
    if (!kek || !file_id_hex || !cm_is_hex_id (file_id_hex, 32) || !wrapped ||
        wrapped_len != CRYPTOD_WRAPPED_DEK_LEN) {
        OPENSSL_cleanse (dek, 32);
        return -1;
    }
    size_t aad_len = s_wrap_aad (aad, file_id_hex);
    /* cryptod_aead_open wipes dek when the tag does not authenticate.  */
    return cryptod_aead_open (kek->key, wrapped, (const uint8_t *)aad, aad_len,
                              wrapped + 12, 32, dek, wrapped + 44);
}

int
cryptod_dek_rewrap (const cryptod_keyring_t *self, const char *kek_id,
                    const char *file_id_hex, const uint8_t *wrapped, size_t wrapped_len,
                    char new_kek_id[17], uint8_t *new_wrapped, size_t *new_len)
{
    uint8_t dek[32];
    int rc = -1;
    if (cryptod_dek_unwrap (self, kek_id, file_id_hex, wrapped, wrapped_len, dek) == 0) {
        rc = cryptod_dek_wrap (self, file_id_hex, dek, new_kek_id, new_wrapped, new_len);
    }
    OPENSSL_cleanse (dek, sizeof dek);
    return rc;
}
