/*  cm_jwt -- ES256 access tokens: signing (auth) and strict verification
    (gateway, CLI) against a set of public keys named by kid.

    libjwt 1.10.2 checks no claim and trusts the token's own "alg" (an HS256
    token keyed with our public key PEM verifies; a NULL key accepts
    anything), so this file never lets libjwt decide anything on its own:
    the JOSE header is parsed here first and must say ES256 and name a kid
    of our set, libjwt only checks the signature with that one public key,
    and every claim is checked here on the exact payload bytes that the
    signature covers.

    The key set is replaced at runtime (the gateway refetches it from auth)
    while worker threads verify: set_keys validates the new keys outside
    the lock, then swaps them in under a writer lock; verify copies the one
    key it needs under a reader lock and checks the signature unlocked.  */
#include "cm_jwt.h"
#include "cm_role.h"
#include "cm_log.h"
#include "cm_util.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PEM files for a P-256 key are a few hundred bytes. */
#define S_MAX_PEM 16384
/* Our own re-encoding of a P-256 SPKI is 178 bytes. */
#define S_PUB_PEM_MAX 512

struct cm_jwt_signer_t {
    unsigned char *pem; /* private key PEM: a secret, wiped on destroy */
    size_t pem_len;
    char *public_pem;
    char kid[CM_JWT_KID_LEN + 1];
    char *issuer;
    char *audience;
};

/* One verification key, stored by value so verify can copy it out. */
typedef struct {
    char kid[CM_JWT_KID_LEN + 1];
    char pem[S_PUB_PEM_MAX]; /* canonical SPKI PEM, NUL-terminated */
    size_t pem_len;
    uint64_t not_after; /* 0: none */
} s_key_t;

struct cm_jwt_verifier_t {
    char *issuer;
    char *audience;
    pthread_rwlock_t lock; /* guards nkeys and keys */
    size_t nkeys;
    s_key_t keys[CM_JWT_MAX_KEYS];
};

/* ---- keys ------------------------------------------------------------ */

/* An encrypted PEM must fail, never prompt on a terminal. */
static int
s_no_passphrase (char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* True if pkey is an EC key on P-256 (the only curve ES256 allows). */
static bool
s_is_p256 (EVP_PKEY *pkey)
{
    char group[64] = "";
    size_t glen = 0;
    if (!EVP_PKEY_is_a (pkey, "EC")) {
        return false;
    }
    if (EVP_PKEY_get_utf8_string_param (pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                        sizeof group, &glen) != 1) {
        return false;
    }
    return strcmp (group, "prime256v1") == 0 || strcmp (group, "P-256") == 0;
}

/* Parses a PEM key: a public key (SPKI) if want_public, else a private
   key. NULL if it is not one, or not P-256 (OpenSSL's queue cleared: the
   caller logs one line). */
static EVP_PKEY *
s_parse_pem (const void *pem, size_t len, bool want_public)
{
    if (!pem || len == 0 || len > S_MAX_PEM) {
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new_mem_buf (pem, (int)len);
    if (bio) {
        pkey = want_public ? PEM_read_bio_PUBKEY (bio, NULL, s_no_passphrase, NULL)
                           : PEM_read_bio_PrivateKey (bio, NULL, s_no_passphrase, NULL);
    }
    BIO_free (bio);
    ERR_clear_error ();
    if (pkey && !s_is_p256 (pkey)) {
        EVP_PKEY_free (pkey);
        pkey = NULL;
    }
    return pkey;
}

/* kid = hex of the first 8 bytes of SHA-256 over the SPKI DER. */
static int
s_kid_of (EVP_PKEY *pkey, char kid[CM_JWT_KID_LEN + 1])
{
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY (pkey, &der);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int rc = -1;
    if (der_len > 0 &&
        EVP_Digest (der, (size_t)der_len, md, &md_len, EVP_sha256 (), NULL) == 1 &&
        md_len == 32) {
        cm_hex_encode (kid, md, CM_JWT_KID_LEN / 2);
        rc = 0;
    } else {
        cm_log_openssl (NULL, "i2d_PUBKEY()/EVP_Digest() failed for a JWT kid");
    }
    OPENSSL_free (der);
    return rc;
}

/* pkey's public half as an SPKI PEM, malloc'd and NUL-terminated. */
static char *
s_public_pem (EVP_PKEY *pkey, size_t *len_out)
{
    char *out = NULL;
    char *data = NULL;
    BIO *bio = BIO_new (BIO_s_mem ());
    if (!bio || PEM_write_bio_PUBKEY (bio, pkey) != 1) {
        cm_log_openssl (NULL, "PEM_write_bio_PUBKEY() failed");
        goto cleanup;
    }
    long len = BIO_get_mem_data (bio, &data);
    if (len <= 0 || !data) {
        cm_error (NULL, "BIO_get_mem_data() failed for a public key");
        goto cleanup;
    }
    out = malloc ((size_t)len + 1);
    if (out) {
        memcpy (out, data, (size_t)len);
        out[len] = '\0';
        *len_out = (size_t)len;
    }
cleanup:
    BIO_free (bio);
    return out;
}

int
cm_jwt_kid (const unsigned char *pem, size_t pem_len, char kid[CM_JWT_KID_LEN + 1])
{
    if (!kid) {
        return -1;
    }
    EVP_PKEY *pkey = s_parse_pem (pem, pem_len, true);
    if (!pkey) {
        pkey = s_parse_pem (pem, pem_len, false);
    }
    if (!pkey) {
        cm_error (NULL, "cm_jwt_kid(): not a P-256 public or private key PEM");
        return -1;
    }
    int rc = s_kid_of (pkey, kid);
    EVP_PKEY_free (pkey);
    return rc;
}

/* Writes pkey's private or public half as PEM into path, atomically. */
static int
s_write_pem (const char *path, EVP_PKEY *pkey, bool private_key, int mode)
{
    int rc = -1;
    char *data = NULL;
    long len = 0;
    BIO *bio = BIO_new (BIO_s_mem ());
    if (!bio) {
        cm_log_openssl (NULL, "BIO_new() failed");
        return -1;
    }
    int written = private_key
                      ? PEM_write_bio_PrivateKey (bio, pkey, NULL, NULL, 0, NULL, NULL)
                      : PEM_write_bio_PUBKEY (bio, pkey);
    if (written != 1) {
        cm_log_openssl (NULL, "PEM_write_bio() failed");
        goto cleanup;
    }
    len = BIO_get_mem_data (bio, &data);
    if (len <= 0 || !data) {
        cm_error (NULL, "BIO_get_mem_data() failed for %s", path);
        goto cleanup;
    }
    /* temp file in the same dir, fsync, rename, fsync dir: a reader sees
       the old key or the new one, never a torn file. */
    if (cm_file_write_atomic (path, data, (size_t)len, mode) != 0) {
        cm_error (NULL, "cm_file_write_atomic() failed for %s: %s", path,
                  strerror (errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (private_key && data && len > 0) {
        /* The memory BIO held the private key in clear. */
        OPENSSL_cleanse (data, (size_t)len);
    }
    BIO_free (bio);
    return rc;
}

int
cm_jwt_keygen (const char *private_path, const char *public_path)
{
    if (!private_path || !public_path) {
        return -1;
    }
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen (NULL, NULL, "EC", "P-256");
    if (!pkey) {
        cm_log_openssl (NULL, "EVP_PKEY_Q_keygen(EC P-256) failed");
        return -1;
    }
    /* Public first: a crash in between leaves no private key whose public
       half is missing (auth signs with the private file; the public one is
       for tools, so an orphan new public file is harmless). */
    int rc = s_write_pem (public_path, pkey, false, 0644);
    if (rc == 0) {
        rc = s_write_pem (private_path, pkey, true, 0600);
    }
    EVP_PKEY_free (pkey);
    return rc;
}

/* ---- signing --------------------------------------------------------- */

cm_jwt_signer_t *
cm_jwt_signer_new (const char *private_pem_path, const char *issuer, const char *audience)
{
    if (!private_pem_path || !issuer || !*issuer || !audience || !*audience) {
        cm_error (NULL, "cm_jwt_signer_new(): key path, issuer and audience required");
        return NULL;
    }
    cm_jwt_signer_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
    size_t pub_len = 0;
    self->pem =
        (unsigned char *)cm_file_read (private_pem_path, S_MAX_PEM, &self->pem_len);
    if (!self->pem) {
        cm_error (NULL, "cm_file_read() failed: cannot read JWT key %s",
                  private_pem_path);
        goto fail;
    }
    /* Checked now, not at first use inside libjwt. */
    pkey = s_parse_pem (self->pem, self->pem_len, false);
    if (!pkey) {
        cm_error (NULL, "JWT key %s is not an EC P-256 private key PEM (ES256 needs one)",
                  private_pem_path);
        goto fail;
    }
    self->public_pem = s_public_pem (pkey, &pub_len);
    self->issuer = strdup (issuer);
    self->audience = strdup (audience);
    if (!self->public_pem || !self->issuer || !self->audience ||
        s_kid_of (pkey, self->kid) != 0) {
        goto fail;
    }
    EVP_PKEY_free (pkey);
    return self;
fail:
    EVP_PKEY_free (pkey);
    cm_jwt_signer_destroy (&self);
    return NULL;
}

void
cm_jwt_signer_destroy (cm_jwt_signer_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    cm_jwt_signer_t *self = *self_p;
    cm_secret_free (self->pem, self->pem_len);
    free (self->public_pem);
    free (self->issuer);
    free (self->audience);
    free (self);
    *self_p = NULL;
}

const char *
cm_jwt_signer_kid (const cm_jwt_signer_t *self)
{
    return self ? self->kid : NULL;
}

const char *
cm_jwt_signer_public_pem (const cm_jwt_signer_t *self)
{
    return self ? self->public_pem : NULL;
}

static bool
s_role_valid (const char *role)
{
    return cm_role_parse (role) != SAFESHARE__ROLE__ROLE_NONE;
}

char *
cm_jwt_sign (cm_jwt_signer_t *self, const char *sub, const char *role, uint64_t gen,
             uint64_t now_s, unsigned ttl_s)
{
    if (!self || !cm_is_hex_id (sub, 32) || !s_role_valid (role) || ttl_s == 0 ||
        now_s > (uint64_t)1 << 40 || gen > (uint64_t)LONG_MAX) {
        cm_error (NULL, "cm_jwt_sign(): bad arguments");
        return NULL;
    }
    char jti[33];
    if (cm_random_hex (jti, 16) != 0) {
        cm_error (NULL, "cm_random_hex() failed for jti");
        return NULL;
    }
    char *token = NULL;
    jwt_t *jwt = NULL;
    if (jwt_new (&jwt) != 0) {
        cm_error (NULL, "jwt_new() failed");
        return NULL;
    }
    /* libjwt adds alg and typ itself when encoding. */
    if (jwt_add_header (jwt, "kid", self->kid) != 0) {
        cm_error (NULL, "jwt_add_header(kid) failed");
        goto cleanup;
    }
    if (jwt_add_grant (jwt, "iss", self->issuer) != 0 ||
        jwt_add_grant (jwt, "aud", self->audience) != 0 ||
        jwt_add_grant (jwt, "sub", sub) != 0 || jwt_add_grant (jwt, "role", role) != 0 ||
        jwt_add_grant_int (jwt, "gen", (long)gen) != 0 ||
        jwt_add_grant (jwt, "jti", jti) != 0 ||
        jwt_add_grant_int (jwt, "iat", (long)now_s) != 0 ||
        jwt_add_grant_int (jwt, "nbf", (long)now_s) != 0 ||
        jwt_add_grant_int (jwt, "exp", (long)(now_s + ttl_s)) != 0) {
        cm_error (NULL, "jwt_add_grant() failed");
        goto cleanup;
    }
    if (jwt_set_alg (jwt, JWT_ALG_ES256, self->pem, (int)self->pem_len) != 0) {
        cm_error (NULL, "jwt_set_alg(ES256) failed");
        goto cleanup;
    }
    token = jwt_encode_str (jwt);
    if (!token) {
        cm_log_openssl (NULL, "jwt_encode_str() failed");
        goto cleanup;
    }
    if (strlen (token) > CM_JWT_MAX_LEN) {
        /* Only a huge issuer/audience could do this; our verifier would
           refuse the token, so never hand it out. */
        cm_error (NULL, "cm_jwt_sign(): token longer than %d", CM_JWT_MAX_LEN);
        free (token);
        token = NULL;
    }
cleanup:
    /* jwt_free scrubs libjwt's copy of the private key (memset, then free). */
    jwt_free (jwt);
    /* libjwt 1.10 allocates with plain malloc: the caller's free() fits. */
    return token;
}

/* ---- the verifier's key set ------------------------------------------ */

cm_jwt_verifier_t *
cm_jwt_verifier_new (const char *issuer, const char *audience)
{
    if (!issuer || !*issuer || !audience || !*audience) {
        cm_error (NULL, "cm_jwt_verifier_new(): issuer and audience required");
        return NULL;
    }
    cm_jwt_verifier_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    /* Writers first: a steady stream of verifying workers must not hold
       off a key refresh forever (glibc's default prefers readers). */
    pthread_rwlockattr_t attr;
    int err = pthread_rwlockattr_init (&attr);
    if (err == 0) {
        pthread_rwlockattr_setkind_np (&attr,
                                       PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        err = pthread_rwlock_init (&self->lock, &attr);
        pthread_rwlockattr_destroy (&attr);
    }
    if (err != 0) {
        cm_error (NULL, "pthread_rwlock_init() failed: %s", strerror (err));
        free (self);
        return NULL;
    }
    self->issuer = strdup (issuer);
    self->audience = strdup (audience);
    if (!self->issuer || !self->audience) {
        cm_jwt_verifier_destroy (&self);
    }
    return self;
}

void
cm_jwt_verifier_destroy (cm_jwt_verifier_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    cm_jwt_verifier_t *self = *self_p;
    pthread_rwlock_destroy (&self->lock);
    free (self->issuer);
    free (self->audience);
    free (self);
    *self_p = NULL;
}

/* Checks one caller key and stores its canonical form in out. Returns
   NULL or why it was refused (for the one log line). */
static const char *
s_key_prepare (const cm_jwt_key_t *key, s_key_t *out)
{
    if (!key->kid || !cm_is_hex_id (key->kid, CM_JWT_KID_LEN)) {
        return "kid is not 16 lowercase hex";
    }
    if (!key->public_pem) {
        return "no public key";
    }
    size_t len = strnlen (key->public_pem, S_MAX_PEM + 1);
    EVP_PKEY *pkey = s_parse_pem (key->public_pem, len, true);
    if (!pkey) {
        return "not a P-256 public key PEM";
    }
    const char *why = NULL;
    char kid[CM_JWT_KID_LEN + 1];
    char *pem = NULL;
    size_t pem_len = 0;
    if (s_kid_of (pkey, kid) != 0) {
        why = "kid computation failed";
    } else if (strcmp (kid, key->kid) != 0) {
        why = "kid does not match the key";
    } else if (!(pem = s_public_pem (pkey, &pem_len)) || pem_len >= sizeof out->pem) {
        why = "public key re-encoding failed";
    } else {
        memset (out, 0, sizeof *out);
        memcpy (out->kid, kid, sizeof out->kid);
        memcpy (out->pem, pem, pem_len + 1);
        out->pem_len = pem_len;
        out->not_after = key->not_after;
    }
    free (pem);
    EVP_PKEY_free (pkey);
    return why;
}

int
cm_jwt_verifier_set_keys (cm_jwt_verifier_t *self, const cm_jwt_key_t *keys, size_t n)
{
    if (!self || (n > 0 && !keys)) {
        cm_error (NULL, "cm_jwt_verifier_set_keys(): bad arguments");
        return -1;
    }
    if (n > CM_JWT_MAX_KEYS) {
        cm_error (NULL, "cm_jwt_verifier_set_keys(): %zu keys, at most %d", n,
                  CM_JWT_MAX_KEYS);
        return -1;
    }
    /* Everything is checked before the lock: a bad set changes nothing. */
    s_key_t fresh[CM_JWT_MAX_KEYS];
    for (size_t i = 0; i < n; i++) {
        const char *why = s_key_prepare (&keys[i], &fresh[i]);
        for (size_t j = 0; !why && j < i; j++) {
            if (strcmp (fresh[j].kid, fresh[i].kid) == 0) {
                why = "kid given twice";
            }
        }
        if (why) {
            cm_error (NULL, "cm_jwt_verifier_set_keys(): key %zu refused: %s", i, why);
            return -1;
        }
    }
    pthread_rwlock_wrlock (&self->lock);
    if (n > 0) {
        memcpy (self->keys, fresh, n * sizeof fresh[0]);
    }
    self->nkeys = n;
    pthread_rwlock_unlock (&self->lock);
    return 0;
}

int
cm_jwt_verifier_load_file (cm_jwt_verifier_t *self, const char *public_pem_path)
{
    if (!self || !public_pem_path) {
        return -1;
    }
    size_t len = 0;
    char *pem = cm_file_read (public_pem_path, S_MAX_PEM, &len);
    if (!pem) {
        cm_error (NULL, "cm_file_read() failed: cannot read JWT key %s", public_pem_path);
        return -1;
    }
    int rc = -1;
    EVP_PKEY *pkey = s_parse_pem (pem, len, true);
    char kid[CM_JWT_KID_LEN + 1];
    if (!pkey) {
        cm_error (NULL, "JWT key %s is not an EC P-256 public key PEM", public_pem_path);
    } else if (s_kid_of (pkey, kid) == 0) {
        cm_jwt_key_t key = {.kid = kid, .public_pem = pem, .not_after = 0};
        rc = cm_jwt_verifier_set_keys (self, &key, 1);
    }
    EVP_PKEY_free (pkey);
    free (pem);
    return rc;
}

/* ---- verification ---------------------------------------------------- */

static int
s_b64url_value (char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

/* Strict unpadded base64url decode of in[0..len) into out (room for
   len*3/4 bytes). Returns the decoded length or -1. */
static long
s_b64url_decode (unsigned char *out, const char *in, size_t len)
{
    if (len % 4 == 1) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = s_b64url_value (in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* Leftover bits must be zero, or two strings decode the same. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return -1;
    }
    return (long)o;
}

/* Decodes one base64url part and parses it as a JSON object. */
static json_t *
s_part_json (const char *part, size_t len)
{
    unsigned char buf[CM_JWT_MAX_LEN];
    long n = s_b64url_decode (buf, part, len);
    if (n <= 0) {
        return NULL;
    }
    json_t *obj = json_loadb ((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (obj && !json_is_object (obj)) {
        json_decref (obj);
        obj = NULL;
    }
    return obj;
}

/* A NumericDate claim as a non-negative integer; -1 if absent, -2 if not
   an integer (a string "exp" or a float is refused, not coerced). */
static int64_t
s_numeric_date (json_t *payload, const char *name)
{
    json_t *v = json_object_get (payload, name);
    if (!v) {
        return -1;
    }
    if (!json_is_integer (v) || json_integer_value (v) < 0) {
        return -2;
    }
    return (int64_t)json_integer_value (v);
}

static bool
s_aud_matches (json_t *aud, const char *ours)
{
    if (json_is_string (aud)) {
        return strcmp (json_string_value (aud), ours) == 0;
    }
    if (json_is_array (aud)) {
        size_t i;
        json_t *item;
        json_array_foreach (aud, i, item)
        {
            if (json_is_string (item) && strcmp (json_string_value (item), ours) == 0) {
                return true;
            }
        }
    }
    return false;
}

/* Checks the claims of an already signature-checked payload. */
static const char *
s_check_claims (cm_jwt_verifier_t *self, json_t *payload, uint64_t now_s,
                cm_jwt_claims_t *claims)
{
    /* exp/nbf/iat are 0..INT64_MAX (s_numeric_date) and now_s any u64:
       compared unsigned, the leeway added only where it cannot wrap.   */
    const uint64_t leeway = CM_JWT_LEEWAY_S;
    int64_t exp = s_numeric_date (payload, "exp");
    if (exp == -1) {
        return "missing_exp";
    }
    if (exp < 0) {
        return "bad_exp";
    }
    if (now_s >= (uint64_t)exp + leeway) {
        return "expired";
    }
    /* Both required: auth always sets them, so a token without them
       was not made by us (RFC 8725 3.10: accept only what we issue). */
    int64_t nbf = s_numeric_date (payload, "nbf");
    if (nbf == -1) {
        return "missing_nbf";
    }
    if (nbf == -2) {
        return "bad_nbf";
    }
    if ((uint64_t)nbf > leeway && (uint64_t)nbf - leeway > now_s) {
        return "not_yet_valid";
    }
    int64_t iat = s_numeric_date (payload, "iat");
    if (iat == -1) {
        return "missing_iat";
    }
    if (iat == -2 || ((uint64_t)iat > leeway && (uint64_t)iat - leeway > now_s)) {
        return "bad_iat";
    }
    json_t *iss = json_object_get (payload, "iss");
    if (!json_is_string (iss) || strcmp (json_string_value (iss), self->issuer) != 0) {
        return "bad_iss";
    }
    if (!s_aud_matches (json_object_get (payload, "aud"), self->audience)) {
        return "bad_aud";
    }
    json_t *sub = json_object_get (payload, "sub");
    if (!json_is_string (sub) || !cm_is_hex_id (json_string_value (sub), 32)) {
        return "bad_sub";
    }
    json_t *role = json_object_get (payload, "role");
    if (!json_is_string (role) || !s_role_valid (json_string_value (role))) {
        return "bad_role";
    }
    json_t *jti = json_object_get (payload, "jti");
    if (!json_is_string (jti) || json_string_length (jti) == 0 ||
        json_string_length (jti) >= sizeof claims->jti) {
        return "bad_jti";
    }
    /* Required: without it a token would outlive logout-all and role
       changes (the gateway compares it with the user's token_gen). */
    json_t *gen = json_object_get (payload, "gen");
    if (!json_is_integer (gen) || json_integer_value (gen) < 0) {
        return "bad_gen";
    }
    memset (claims, 0, sizeof *claims);
    memcpy (claims->sub, json_string_value (sub), 32);
    snprintf (claims->role, sizeof claims->role, "%s", json_string_value (role));
    memcpy (claims->jti, json_string_value (jti), json_string_length (jti));
    claims->exp = (uint64_t)exp;
    claims->iat = (uint64_t)iat;
    claims->gen = (uint64_t)json_integer_value (gen);
    return NULL;
}

/* The JOSE header: exactly alg ES256, typ absent or JWT, nothing
   critical, a well-formed kid (copied into kid). */
static const char *
s_check_header (json_t *header, char kid[CM_JWT_KID_LEN + 1])
{
    json_t *alg = json_object_get (header, "alg");
    if (!json_is_string (alg) || strcmp (json_string_value (alg), "ES256") != 0) {
        return "bad_alg";
    }
    json_t *typ = json_object_get (header, "typ");
    if (typ && (!json_is_string (typ) || strcmp (json_string_value (typ), "JWT") != 0)) {
        return "bad_typ";
    }
    /* We understand no extension, so a "crit" header must be refused
       (RFC 7515 4.1.11). */
    if (json_object_get (header, "crit")) {
        return "bad_header";
    }
    json_t *k = json_object_get (header, "kid");
    if (!k) {
        return "missing_kid";
    }
    if (!json_is_string (k) || json_string_length (k) != CM_JWT_KID_LEN ||
        !cm_is_hex_id (json_string_value (k), CM_JWT_KID_LEN)) {
        return "bad_header";
    }
    memcpy (kid, json_string_value (k), CM_JWT_KID_LEN + 1);
    return NULL;
}

/* Copies the key named kid out of the set (under the reader lock, so a
   concurrent set_keys never hands us half a key). */
static bool
s_find_key (cm_jwt_verifier_t *self, const char *kid, s_key_t *out)
{
    bool found = false;
    pthread_rwlock_rdlock (&self->lock);
    for (size_t i = 0; i < self->nkeys; i++) {
        if (strcmp (self->keys[i].kid, kid) == 0) {
            *out = self->keys[i];
            found = true;
            break;
        }
    }
    pthread_rwlock_unlock (&self->lock);
    return found;
}

int
cm_jwt_verify (cm_jwt_verifier_t *self, const char *token, uint64_t now_s,
               cm_jwt_claims_t *claims, const char **reason)
{
    const char *why = NULL;
    json_t *header = NULL;
    json_t *payload = NULL;
    jwt_t *jwt = NULL;
    cm_jwt_claims_t out;
    char kid[CM_JWT_KID_LEN + 1];
    s_key_t key;

    if (!self || !token || !claims) {
        why = "malformed";
        goto cleanup;
    }
    size_t len = strnlen (token, CM_JWT_MAX_LEN + 1);
    if (len > CM_JWT_MAX_LEN) {
        why = "too_long";
        goto cleanup;
    }
    /* Exactly three non-empty base64url parts. */
    const char *dot1 = memchr (token, '.', len);
    const char *dot2 =
        dot1 ? memchr (dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || dot1 == token || dot2 == dot1 + 1 || dot2 + 1 == token + len ||
        memchr (dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        why = "malformed";
        goto cleanup;
    }
    header = s_part_json (token, (size_t)(dot1 - token));
    if (!header) {
        why = "malformed";
        goto cleanup;
    }
    why = s_check_header (header, kid);
    if (why) {
        goto cleanup;
    }
    if (!s_find_key (self, kid, &key)) {
        why = "unknown_kid";
        goto cleanup;
    }
    if (key.not_after != 0 && now_s > key.not_after) {
        why = "key_expired";
        goto cleanup;
    }
    /* Only now, with the algorithm pinned and one key chosen, does libjwt
       check the signature. */
    int err = jwt_decode (&jwt, token, (const unsigned char *)key.pem, (int)key.pem_len);
    if (err != 0 || !jwt) {
        why = "bad_signature";
        goto cleanup;
    }
    if (jwt_get_alg (jwt) != JWT_ALG_ES256) {
        why = "bad_alg";
        goto cleanup;
    }
    /* Claims from the exact bytes the signature covered. */
    payload = s_part_json (dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!payload) {
        why = "malformed";
        goto cleanup;
    }
    why = s_check_claims (self, payload, now_s, &out);
    if (!why) {
        memcpy (out.kid, kid, sizeof out.kid);
        *claims = out;
    }
cleanup:
    if (jwt) {
        jwt_free (jwt);
    }
    json_decref (header);
    json_decref (payload);
    if (reason) {
        *reason = why ? why : "ok";
    }
    return why ? -1 : 0;
}
