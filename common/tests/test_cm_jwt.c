/*  test_cm_jwt -- ES256 signing, key ids, the verifier's key set and
    every rejection the verifier owes us.

    Forged tokens are built here by hand (header and payload JSON, then a
    real signature: ES256 with our or another key through libjwt, or HMAC
    keyed with the public key PEM for algorithm confusion), so each case
    fails for exactly the reason it names.                              */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cm_jwt.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ISS "safeshare"
#define AUD "safeshare-api"
#define SUB "0123456789abcdef0123456789abcdef"
#define NOW ((uint64_t)1800000000)

/* A throwaway P-256 test key (never used outside this file) and its kid,
   computed independently with Python's `cryptography`:
   sha256(public_key.public_bytes(DER, SubjectPublicKeyInfo))[:8].hex() */
static const char s_fixed_priv[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKAHHbtcTRd6eSK4P\n"
    "E4SSiim6aoH3OsR7Tip1nmXtSaOhRANCAATkI2g4mgiLs8HtEiFz32Z15PVcFfE7\n"
    "ZcywrUxgmh/ypCTghRKwc2dw8O6QrIw+FcEW4uPEuu8CTUvavpA9frQq\n"
    "-----END PRIVATE KEY-----\n";
static const char s_fixed_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5CNoOJoIi7PB7RIhc99mdeT1XBXx\n"
    "O2XMsK1MYJof8qQk4IUSsHNncPDukKyMPhXBFuLjxLrvAk1L2r6QPX60Kg==\n"
    "-----END PUBLIC KEY-----\n";
#define FIXED_KID "0838679cf7762ed0"

typedef struct {
    char dir[64];
    char priv[128];
    char pub[128];
    char other_priv[128];
    char other_pub[128];
    char *priv_pem;
    size_t priv_len;
    char *pub_pem;
    size_t pub_len;
    char *other_pem;
    size_t other_len;
    char *other_pub_pem;
    size_t other_pub_len;
    char kid[CM_JWT_KID_LEN + 1];
    char other_kid[CM_JWT_KID_LEN + 1];
    cm_jwt_verifier_t *verifier; /* holds our key only */
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    snprintf (f->dir, sizeof f->dir, "/tmp/safeshare-jwt-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->priv, sizeof f->priv, "%s/jwt.pem", f->dir);
    snprintf (f->pub, sizeof f->pub, "%s/jwt.pub", f->dir);
    snprintf (f->other_priv, sizeof f->other_priv, "%s/other.pem", f->dir);
    snprintf (f->other_pub, sizeof f->other_pub, "%s/other.pub", f->dir);
    assert_int_equal (cm_jwt_keygen (f->priv, f->pub), 0);
    assert_int_equal (cm_jwt_keygen (f->other_priv, f->other_pub), 0);
    f->priv_pem = cm_file_read (f->priv, 16384, &f->priv_len);
    f->pub_pem = cm_file_read (f->pub, 16384, &f->pub_len);
    f->other_pem = cm_file_read (f->other_priv, 16384, &f->other_len);
    f->other_pub_pem = cm_file_read (f->other_pub, 16384, &f->other_pub_len);
    assert_non_null (f->priv_pem);
    assert_non_null (f->pub_pem);
    assert_non_null (f->other_pem);
    assert_non_null (f->other_pub_pem);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)f->pub_pem, f->pub_len, f->kid),
                      0);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)f->other_pub_pem,
                                  f->other_pub_len, f->other_kid),
                      0);
    f->verifier = cm_jwt_verifier_new (ISS, AUD);
    assert_non_null (f->verifier);
    assert_int_equal (cm_jwt_verifier_load_file (f->verifier, f->pub), 0);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    cm_jwt_verifier_destroy (&f->verifier);
    free (f->priv_pem);
    free (f->pub_pem);
    free (f->other_pem);
    free (f->other_pub_pem);
    unlink (f->priv);
    unlink (f->pub);
    unlink (f->other_priv);
    unlink (f->other_pub);
    rmdir (f->dir);
    free (f);
    return 0;
}

/* ---- token forging helpers ------------------------------------------- */

static char *
s_join (const char *input, const char *sig_b64)
{
    assert_non_null (input);
    assert_non_null (sig_b64);
    char *out = malloc (strlen (input) + strlen (sig_b64) + 2);
    assert_non_null (out);
    sprintf (out, "%s.%s", input, sig_b64);
    return out;
}

/* A real ES256 token over arbitrary claims, signed by libjwt with `pem`,
   with a kid header when kid is not NULL. */
static char *
s_es256 (const char *pem, size_t pem_len, const char *kid, const char *claims_json)
{
    jwt_t *jwt = NULL;
    assert_int_equal (jwt_new (&jwt), 0);
    assert_int_equal (jwt_add_grants_json (jwt, claims_json), 0);
    if (kid) {
        assert_int_equal (jwt_add_header (jwt, "kid", kid), 0);
    }
    assert_int_equal (
        jwt_set_alg (jwt, JWT_ALG_ES256, (const unsigned char *)pem, (int)pem_len), 0);
    char *token = jwt_encode_str (jwt);
    assert_non_null (token);
    jwt_free (jwt);
    return token;
}

/* Claims that pass, with one member overridden/removed by the caller. */
static char *
s_claims (const char *drop, const char *set_key, json_t *set_value)
{
    json_t *c = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "iss", ISS,
                           "aud", AUD, "sub", SUB, "role", "client", "jti", "abc123",
                           "gen", (json_int_t)3, "iat", (json_int_t)NOW, "nbf",
                           (json_int_t)NOW, "exp", (json_int_t)(NOW + 900));
    assert_non_null (c);
    if (drop) {
        json_object_del (c, drop);
    }
    if (set_key) {
        json_object_set_new (c, set_key, set_value);
    }
    char *s = json_dumps (c, JSON_COMPACT);
    json_decref (c);
    return s;
}

static void
s_expect_reject_by (cm_jwt_verifier_t *v, const char *token, uint64_t now,
                    const char *reason_want)
{
    cm_jwt_claims_t claims;
    memset (&claims, 0x5a, sizeof claims);
    cm_jwt_claims_t untouched = claims;
    const char *reason = NULL;
    int rc = cm_jwt_verify (v, token, now, &claims, &reason);
    assert_int_equal (rc, -1);
    assert_non_null (reason);
    assert_string_equal (reason, reason_want);
    /* A refused token hands out no claims. */
    assert_memory_equal (&claims, &untouched, sizeof claims);
}

static void
s_expect_reject (fixture_t *f, const char *token, const char *reason_want)
{
    s_expect_reject_by (f->verifier, token, NOW, reason_want);
}

static void
s_expect_ok_by (cm_jwt_verifier_t *v, const char *token, uint64_t now, const char *kid)
{
    cm_jwt_claims_t claims;
    const char *reason = NULL;
    int rc = cm_jwt_verify (v, token, now, &claims, &reason);
    assert_string_equal (reason, "ok");
    assert_int_equal (rc, 0);
    assert_string_equal (claims.kid, kid);
}

/* The decoded JOSE header of a compact token. */
static json_t *
s_token_header (const char *token)
{
    const char *dot = strchr (token, '.');
    assert_non_null (dot);
    size_t n = (size_t)(dot - token);
    char *b64 = malloc (n + 3);
    assert_non_null (b64);
    memcpy (b64, token, n);
    /* base64url -> base64 with padding, for EVP_DecodeBlock. */
    for (size_t i = 0; i < n; i++) {
        b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
    }
    while (n % 4) {
        b64[n++] = '=';
    }
    b64[n] = '\0';
    unsigned char raw[512];
    assert_true (n / 4 * 3 <= sizeof raw);
    int len = EVP_DecodeBlock (raw, (const unsigned char *)b64, (int)n);
    assert_true (len > 0);
    while (len > 0 && raw[len - 1] == '\0') {
        len--; /* EVP_DecodeBlock counts the padding bytes */
    }
    free (b64);
    json_t *h = json_loadb ((const char *)raw, (size_t)len, 0, NULL);
    assert_non_null (h);
    return h;
}

/* A public key PEM of another kind (P-384, RSA): the verifier must refuse. */
static char *
s_foreign_public_pem (const char *type, const char *param)
{
    EVP_PKEY *pkey = strcmp (type, "RSA") == 0
                         ? EVP_PKEY_Q_keygen (NULL, NULL, "RSA", (size_t)2048)
                         : EVP_PKEY_Q_keygen (NULL, NULL, type, param);
    assert_non_null (pkey);
    BIO *bio = BIO_new (BIO_s_mem ());
    assert_int_equal (PEM_write_bio_PUBKEY (bio, pkey), 1);
    char *data = NULL;
    long len = BIO_get_mem_data (bio, &data);
    char *out = strndup (data, (size_t)len);
    BIO_free (bio);
    EVP_PKEY_free (pkey);
    return out;
}

static void
s_expect_claims_reject (fixture_t *f, const char *drop, const char *key, json_t *value,
                        const char *reason_want)
{
    char *claims = s_claims (drop, key, value);
    char *token = s_es256 (f->priv_pem, f->priv_len, f->kid, claims);
    s_expect_reject (f, token, reason_want);
    free (token);
    free (claims);
}

/* ---- tests ----------------------------------------------------------- */

static void
test_keygen_files (void **state)
{
    fixture_t *f = *state;
    struct stat st;
    assert_int_equal (stat (f->priv, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    assert_int_equal (stat (f->pub, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0644);
    assert_non_null (strstr (f->priv_pem, "-----BEGIN PRIVATE KEY-----"));
    assert_non_null (strstr (f->pub_pem, "-----BEGIN PUBLIC KEY-----"));
    /* Two key generations give two different keys. */
    assert_string_not_equal (f->priv_pem, f->other_pem);
    /* A verifier refuses a private key file, a signer a public one. */
    cm_jwt_verifier_t *v = cm_jwt_verifier_new (ISS, AUD);
    assert_non_null (v);
    assert_int_equal (cm_jwt_verifier_load_file (v, f->priv), -1);
    assert_int_equal (cm_jwt_verifier_load_file (v, "/nonexistent/jwt.pub"), -1);
    cm_jwt_verifier_destroy (&v);
    assert_null (v);
    cm_jwt_verifier_destroy (&v);
    assert_null (cm_jwt_verifier_new ("", AUD));
    assert_null (cm_jwt_verifier_new (ISS, NULL));
    assert_null (cm_jwt_signer_new (f->pub, ISS, AUD));
    assert_null (cm_jwt_signer_new ("/nonexistent/jwt.pem", ISS, AUD));
}

/* Key rotation writes over both files: new key, same modes, no temp
   files left beside them. */
static void
test_keygen_rotates_atomically (void **state)
{
    fixture_t *f = *state;
    char dir[64];
    snprintf (dir, sizeof dir, "/tmp/safeshare-jwt-rot-XXXXXX");
    assert_non_null (mkdtemp (dir));
    char priv[128], pub[128];
    snprintf (priv, sizeof priv, "%s/jwt-es256.pem", dir);
    snprintf (pub, sizeof pub, "%s/jwt-es256.pub", dir);
    char kid1[CM_JWT_KID_LEN + 1], kid2[CM_JWT_KID_LEN + 1];
    size_t len = 0;
    assert_int_equal (cm_jwt_keygen (priv, pub), 0);
    char *pem = cm_file_read (pub, 16384, &len);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)pem, len, kid1), 0);
    free (pem);
    assert_int_equal (cm_jwt_keygen (priv, pub), 0);
    pem = cm_file_read (priv, 16384, &len);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)pem, len, kid2), 0);
    free (pem);
    assert_string_not_equal (kid1, kid2);
    assert_string_not_equal (kid1, f->kid);
    /* The new public file belongs to the new private file. */
    pem = cm_file_read (pub, 16384, &len);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)pem, len, kid1), 0);
    free (pem);
    assert_string_equal (kid1, kid2);
    struct stat st;
    assert_int_equal (stat (priv, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    assert_int_equal (stat (pub, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0644);
    /* Exactly the two files: no temp file left behind. */
    char cmd[160];
    snprintf (cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 2", dir);
    assert_int_equal (system (cmd), 0);
    /* A directory that does not exist: -1, nothing half-written. */
    assert_int_equal (cm_jwt_keygen ("/nonexistent/a.pem", "/nonexistent/a.pub"), -1);
    unlink (priv);
    unlink (pub);
    assert_int_equal (rmdir (dir), 0);
}

static void
test_kid (void **state)
{
    fixture_t *f = *state;
    char kid_priv[CM_JWT_KID_LEN + 1], kid_pub[CM_JWT_KID_LEN + 1];
    /* Known answer, from an independent implementation. */
    assert_int_equal (
        cm_jwt_kid ((const unsigned char *)s_fixed_priv, strlen (s_fixed_priv), kid_priv),
        0);
    assert_int_equal (
        cm_jwt_kid ((const unsigned char *)s_fixed_pub, strlen (s_fixed_pub), kid_pub),
        0);
    assert_string_equal (kid_priv, FIXED_KID);
    assert_string_equal (kid_pub, FIXED_KID);

    /* Stable, and equal for the private and the public PEM of a pair. */
    assert_int_equal (
        cm_jwt_kid ((const unsigned char *)f->priv_pem, f->priv_len, kid_priv), 0);
    assert_string_equal (kid_priv, f->kid);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)f->pub_pem, f->pub_len, kid_pub),
                      0);
    assert_string_equal (kid_pub, f->kid);
    assert_true (cm_is_hex_id (f->kid, CM_JWT_KID_LEN));
    assert_string_not_equal (f->kid, f->other_kid);

    /* The definition itself: SHA-256 over the SPKI DER, first 8 bytes. */
    BIO *bio = BIO_new_mem_buf (f->pub_pem, (int)f->pub_len);
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY (bio, NULL, NULL, NULL);
    assert_non_null (pkey);
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY (pkey, &der);
    assert_true (der_len > 0);
    char hex[65];
    cm_sha256_hex (hex, der, (size_t)der_len);
    assert_memory_equal (hex, f->kid, CM_JWT_KID_LEN);
    OPENSSL_free (der);
    EVP_PKEY_free (pkey);
    BIO_free (bio);

    /* The signer reports the same kid and its public half. */
    cm_jwt_signer_t *signer = cm_jwt_signer_new (f->priv, ISS, AUD);
    assert_non_null (signer);
    assert_string_equal (cm_jwt_signer_kid (signer), f->kid);
    assert_string_equal (cm_jwt_signer_public_pem (signer), f->pub_pem);
    cm_jwt_signer_destroy (&signer);

    /* Not a P-256 key, or not a key at all. */
    char kid[CM_JWT_KID_LEN + 1];
    char *p384 = s_foreign_public_pem ("EC", "P-384");
    assert_int_equal (cm_jwt_kid ((const unsigned char *)p384, strlen (p384), kid), -1);
    free (p384);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)"garbage", 7, kid), -1);
    assert_int_equal (cm_jwt_kid (NULL, 0, kid), -1);
    /* A PEM cut short is no key. */
    assert_int_equal (cm_jwt_kid ((const unsigned char *)f->pub_pem, f->pub_len / 2, kid),
                      -1);
}

static void
test_sign_verify (void **state)
{
    fixture_t *f = *state;
    cm_jwt_signer_t *signer = cm_jwt_signer_new (f->priv, ISS, AUD);
    assert_non_null (signer);
    char *token = cm_jwt_sign (signer, SUB, "ops", 42, NOW, 900);
    assert_non_null (token);

    /* The header is exactly {alg ES256, typ JWT, kid} with the signer's
       kid, and the signature is JOSE R||S (64 bytes). */
    json_t *header = s_token_header (token);
    assert_int_equal (json_object_size (header), 3);
    assert_string_equal (json_string_value (json_object_get (header, "alg")), "ES256");
    assert_string_equal (json_string_value (json_object_get (header, "typ")), "JWT");
    assert_string_equal (json_string_value (json_object_get (header, "kid")), f->kid);
    json_decref (header);
    const char *dot1 = strchr (token, '.');
    const char *dot2 = strrchr (token, '.');
    assert_true (dot1 && dot2 && dot1 != dot2);
    assert_int_equal (strlen (dot2 + 1), 86);

    cm_jwt_claims_t claims;
    const char *reason = NULL;
    assert_int_equal (cm_jwt_verify (f->verifier, token, NOW, &claims, &reason), 0);
    assert_string_equal (reason, "ok");
    assert_string_equal (claims.sub, SUB);
    assert_string_equal (claims.role, "ops");
    assert_int_equal (claims.exp, NOW + 900);
    assert_int_equal (claims.iat, NOW);
    assert_int_equal (claims.gen, 42);
    assert_string_equal (claims.kid, f->kid);
    assert_int_equal (strlen (claims.jti), 32);

    /* Still valid inside the leeway after exp, refused beyond it. */
    assert_int_equal (cm_jwt_verify (f->verifier, token, NOW + 900 + CM_JWT_LEEWAY_S - 1,
                                     &claims, &reason),
                      0);
    assert_int_equal (
        cm_jwt_verify (f->verifier, token, NOW + 900 + CM_JWT_LEEWAY_S, &claims, &reason),
        -1);
    assert_string_equal (reason, "expired");

    /* Each token has its own jti. */
    char *token2 = cm_jwt_sign (signer, SUB, "ops", 0, NOW, 900);
    cm_jwt_claims_t claims2;
    assert_int_equal (cm_jwt_verify (f->verifier, token2, NOW, &claims2, &reason), 0);
    assert_string_not_equal (claims.jti, claims2.jti);
    assert_int_equal (claims2.gen, 0);

    /* gen round-trips up to the largest JSON integer we emit. */
    char *token3 = cm_jwt_sign (signer, SUB, "admin", (uint64_t)INT64_MAX, NOW, 900);
    assert_non_null (token3);
    assert_int_equal (cm_jwt_verify (f->verifier, token3, NOW, &claims2, &reason), 0);
    assert_int_equal (claims2.gen, (uint64_t)INT64_MAX);
    assert_string_equal (claims2.role, "admin");

    /* The signer refuses what the verifier would refuse. */
    assert_null (cm_jwt_sign (signer, "not-hex", "ops", 0, NOW, 900));
    assert_null (cm_jwt_sign (signer, SUB, "root", 0, NOW, 900));
    assert_null (cm_jwt_sign (signer, SUB, "ops", (uint64_t)INT64_MAX + 1, NOW, 900));
    assert_null (cm_jwt_sign (signer, SUB, "ops", 0, NOW, 0));

    free (token);
    free (token2);
    free (token3);
    cm_jwt_signer_destroy (&signer);
    assert_null (signer);
    cm_jwt_signer_destroy (&signer);
}

static void
test_aud_array_and_no_typ (void **state)
{
    fixture_t *f = *state;
    /* aud as an array that contains ours is accepted. */
    char *claims = s_claims ("aud", "aud", json_pack ("[s,s]", "other-api", AUD));
    char *token = s_es256 (f->priv_pem, f->priv_len, f->kid, claims);
    cm_jwt_claims_t out;
    const char *reason = NULL;
    assert_int_equal (cm_jwt_verify (f->verifier, token, NOW, &out, &reason), 0);
    free (token);
    free (claims);

    /* An array without ours is not. */
    s_expect_claims_reject (f, "aud", "aud", json_pack ("[s]", "other-api"), "bad_aud");
}

static void
test_reject_alg_none (void **state)
{
    fixture_t *f = *state;
    char *claims = s_claims (NULL, NULL, NULL);
    char hdr[128];
    snprintf (hdr, sizeof hdr, "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
              f->kid);
    char *input = cm_test_jws_input (hdr, claims);
    char *token = s_join (input, "");
    /* An empty signature part is malformed on its own ... */
    s_expect_reject (f, token, "malformed");
    /* ... and with any signature bytes the header decides. */
    char *token2 = s_join (input, "AAAA");
    s_expect_reject (f, token2, "bad_alg");
    /* Case games do not help either. */
    char *input3 = cm_test_jws_input ("{\"alg\":\"es256\",\"typ\":\"JWT\"}", claims);
    char *token3 = s_join (input3, "AAAA");
    s_expect_reject (f, token3, "bad_alg");
    free (token);
    free (token2);
    free (token3);
    free (input);
    free (input3);
    free (claims);
}

static void
test_reject_hs256_public_key (void **state)
{
    fixture_t *f = *state;
    char *claims = s_claims (NULL, "role", json_string ("admin"));
    char hdr[128];
    snprintf (hdr, sizeof hdr, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
              f->kid);
    char *input = cm_test_jws_input (hdr, claims);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    assert_non_null (HMAC (EVP_sha256 (), f->pub_pem, (int)f->pub_len,
                           (const unsigned char *)input, strlen (input), mac, &mac_len));
    char *sig = cm_test_b64url (mac, mac_len);
    char *token = s_join (input, sig);

    /* The attack is real: raw libjwt accepts this forgery with our public
       key, so the check below is what stops it. */
    jwt_t *raw = NULL;
    int raw_rc =
        jwt_decode (&raw, token, (const unsigned char *)f->pub_pem, (int)f->pub_len);
    assert_int_equal (raw_rc, 0);
    jwt_free (raw);

    s_expect_reject (f, token, "bad_alg");
    free (token);
    free (sig);
    free (input);
    free (claims);
}

static void
test_reject_other_algs (void **state)
{
    fixture_t *f = *state;
    char *claims = s_claims (NULL, NULL, NULL);
    /* Take a genuine ES256 signature and relabel the header. */
    char *good = s_es256 (f->priv_pem, f->priv_len, f->kid, claims);
    const char *sig = strrchr (good, '.') + 1;
    const char *headers[] = {"{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"ES384\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"ES512\",\"typ\":\"JWT\"}", "{\"typ\":\"JWT\"}",
                             "{\"alg\":[\"ES256\"]}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *input = cm_test_jws_input (headers[i], claims);
        char *token = s_join (input, sig);
        s_expect_reject (f, token, "bad_alg");
        free (token);
        free (input);
    }
    /* Duplicate alg members (parsers disagree which wins): refused. */
    char *input = cm_test_jws_input ("{\"alg\":\"ES256\",\"alg\":\"HS256\"}", claims);
    char *token = s_join (input, sig);
    s_expect_reject (f, token, "malformed");
    free (token);
    free (input);
    /* A wrong typ or a crit extension: refused. */
    input = cm_test_jws_input ("{\"alg\":\"ES256\",\"typ\":\"JWE\"}", claims);
    token = s_join (input, sig);
    s_expect_reject (f, token, "bad_typ");
    free (token);
    free (input);
    input = cm_test_jws_input ("{\"alg\":\"ES256\",\"crit\":[\"x\"],\"x\":1}", claims);
    token = s_join (input, sig);
    s_expect_reject (f, token, "bad_header");
    free (token);
    free (input);
    free (good);
    free (claims);
}

static void
test_reject_other_key (void **state)
{
    fixture_t *f = *state;
    char *claims = s_claims (NULL, NULL, NULL);
    /* Key B's signature under key A's kid: the kid picks A, A refuses. */
    char *token = s_es256 (f->other_pem, f->other_len, f->kid, claims);
    s_expect_reject (f, token, "bad_signature");
    free (token);
    /* Key B under its own kid: not in our set. */
    token = s_es256 (f->other_pem, f->other_len, f->other_kid, claims);
    s_expect_reject (f, token, "unknown_kid");
    free (token);
    free (claims);
}

static void
test_reject_kid_header (void **state)
{
    fixture_t *f = *state;
    char *claims = s_claims (NULL, NULL, NULL);
    /* A genuine signature by our key, without a kid. */
    char *token = s_es256 (f->priv_pem, f->priv_len, NULL, claims);
    s_expect_reject (f, token, "missing_kid");
    free (token);
    /* Well-formed kids that are not ours. */
    token = s_es256 (f->priv_pem, f->priv_len, "0000000000000000", claims);
    s_expect_reject (f, token, "unknown_kid");
    free (token);
    /* Malformed kids: wrong length, upper case, not hex, not a string. */
    const char *bad[] = {"0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF",
                         "0123456789abcdeg", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        token = s_es256 (f->priv_pem, f->priv_len, bad[i], claims);
        s_expect_reject (f, token, "bad_header");
        free (token);
    }
    char *good = s_es256 (f->priv_pem, f->priv_len, f->kid, claims);
    const char *sig = strrchr (good, '.') + 1;
    char *input = cm_test_jws_input ("{\"alg\":\"ES256\",\"kid\":12345}", claims);
    token = s_join (input, sig);
    s_expect_reject (f, token, "bad_header");
    free (token);
    free (input);
    /* A kid of the set, case-shifted: refused, not matched loosely. */
    cm_jwt_verifier_t *fixed = cm_jwt_verifier_new (ISS, AUD);
    cm_jwt_key_t key = {FIXED_KID, s_fixed_pub, 0};
    assert_int_equal (cm_jwt_verifier_set_keys (fixed, &key, 1), 0);
    token = s_es256 (s_fixed_priv, strlen (s_fixed_priv), FIXED_KID, claims);
    s_expect_ok_by (fixed, token, NOW, FIXED_KID);
    free (token);
    token = s_es256 (s_fixed_priv, strlen (s_fixed_priv), "0838679CF7762ED0", claims);
    s_expect_reject_by (fixed, token, NOW, "bad_header");
    free (token);
    cm_jwt_verifier_destroy (&fixed);
    free (good);
    free (claims);

    /* A verifier with no keys yet refuses everything as unknown_kid. */
    cm_jwt_verifier_t *empty = cm_jwt_verifier_new (ISS, AUD);
    cm_jwt_signer_t *signer = cm_jwt_signer_new (f->priv, ISS, AUD);
    token = cm_jwt_sign (signer, SUB, "client", 0, NOW, 900);
    s_expect_reject_by (empty, token, NOW, "unknown_kid");
    free (token);
    cm_jwt_signer_destroy (&signer);
    cm_jwt_verifier_destroy (&empty);
}

static void
test_reject_tampered (void **state)
{
    fixture_t *f = *state;
    char *claims = s_claims (NULL, NULL, NULL);
    char *good = s_es256 (f->priv_pem, f->priv_len, f->kid, claims);
    /* Same header and signature, payload upgraded to admin. */
    char *evil = s_claims (NULL, "role", json_string ("admin"));
    char *evil_b64 = cm_test_b64url (evil, strlen (evil));
    assert_non_null (evil_b64);
    const char *dot1 = strchr (good, '.');
    const char *dot2 = strrchr (good, '.');
    size_t hlen = (size_t)(dot1 - good);
    char *token = malloc (hlen + strlen (evil_b64) + strlen (dot2) + 2);
    assert_non_null (token);
    sprintf (token, "%.*s.%s%s", (int)hlen, good, evil_b64, dot2);
    s_expect_reject (f, token, "bad_signature");

    /* A flipped bit in the signature. */
    char *flipped = strdup (good);
    char *last = flipped + strlen (flipped) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    s_expect_reject (f, flipped, "bad_signature");
    free (flipped);
    free (token);
    free (evil_b64);
    free (evil);
    free (good);
    free (claims);
}

static void
test_reject_claims (void **state)
{
    fixture_t *f = *state;
    s_expect_claims_reject (f, NULL, "exp", json_integer ((json_int_t)NOW - 60),
                            "expired");
    s_expect_claims_reject (f, "exp", NULL, NULL, "missing_exp");
    s_expect_claims_reject (f, NULL, "exp", json_string ("9999999999"), "bad_exp");
    s_expect_claims_reject (f, NULL, "nbf", json_integer ((json_int_t)NOW + 600),
                            "not_yet_valid");
    s_expect_claims_reject (f, NULL, "iat", json_integer ((json_int_t)NOW + 600),
                            "bad_iat");
    s_expect_claims_reject (f, "nbf", NULL, NULL, "missing_nbf");
    s_expect_claims_reject (f, "iat", NULL, NULL, "missing_iat");
    s_expect_claims_reject (f, NULL, "iat", json_string ("1"), "bad_iat");
    s_expect_claims_reject (f, NULL, "iss", json_string ("evil"), "bad_iss");
    s_expect_claims_reject (f, "iss", NULL, NULL, "bad_iss");
    s_expect_claims_reject (f, NULL, "aud", json_string ("other-api"), "bad_aud");
    s_expect_claims_reject (f, "aud", NULL, NULL, "bad_aud");
    s_expect_claims_reject (f, NULL, "sub", json_string ("admin"), "bad_sub");
    s_expect_claims_reject (f, NULL, "sub",
                            json_string ("0123456789ABCDEF0123456789ABCDEF"), "bad_sub");
    s_expect_claims_reject (f, NULL, "sub", json_integer (7), "bad_sub");
    s_expect_claims_reject (f, NULL, "role", json_string ("root"), "bad_role");
    s_expect_claims_reject (f, "role", NULL, NULL, "bad_role");
    s_expect_claims_reject (f, "jti", NULL, NULL, "bad_jti");
    s_expect_claims_reject (f, "gen", NULL, NULL, "bad_gen");
    s_expect_claims_reject (f, NULL, "gen", json_integer (-1), "bad_gen");
    s_expect_claims_reject (f, NULL, "gen", json_string ("3"), "bad_gen");
    s_expect_claims_reject (f, NULL, "gen", json_real (3.0), "bad_gen");
    s_expect_claims_reject (f, NULL, "gen", json_true (), "bad_gen");
    s_expect_claims_reject (f, NULL, "gen", json_null (), "bad_gen");
    /* nbf within the leeway is fine. */
    char *claims = s_claims (NULL, "nbf", json_integer ((json_int_t)NOW + 10));
    char *token = s_es256 (f->priv_pem, f->priv_len, f->kid, claims);
    cm_jwt_claims_t out;
    const char *reason = NULL;
    assert_int_equal (cm_jwt_verify (f->verifier, token, NOW, &out, &reason), 0);
    free (token);
    free (claims);
}

/* Claims near INT64_MAX are compared without overflow (UBSan in CI). */
static void
test_claims_extreme (void **state)
{
    fixture_t *f = *state;
    cm_jwt_claims_t out;
    const char *reason = NULL;
    char *claims = s_claims (NULL, "exp", json_integer ((json_int_t)INT64_MAX));
    char *token = s_es256 (f->priv_pem, f->priv_len, f->kid, claims);
    assert_int_equal (cm_jwt_verify (f->verifier, token, NOW, &out, &reason), 0);
    assert_int_equal (out.exp, (uint64_t)INT64_MAX);
    /* Exact at the end of int64 time: valid inside the leeway, expired
       beyond it, and a clock past int64 (or at u64's end) never wraps. */
    uint64_t end = (uint64_t)INT64_MAX;
    assert_int_equal (
        cm_jwt_verify (f->verifier, token, end + CM_JWT_LEEWAY_S - 1, &out, &reason), 0);
    assert_int_equal (
        cm_jwt_verify (f->verifier, token, end + CM_JWT_LEEWAY_S, &out, &reason), -1);
    assert_string_equal (reason, "expired");
    assert_int_equal (cm_jwt_verify (f->verifier, token, UINT64_MAX, &out, &reason), -1);
    assert_string_equal (reason, "expired");
    free (token);
    free (claims);
    s_expect_claims_reject (f, NULL, "nbf", json_integer ((json_int_t)INT64_MAX),
                            "not_yet_valid");
    s_expect_claims_reject (f, NULL, "iat", json_integer ((json_int_t)INT64_MAX),
                            "bad_iat");
    s_expect_claims_reject (f, NULL, "exp", json_integer (0), "expired");
    /* nbf/iat at the far end are refused whatever the clock says.       */
    claims = s_claims (NULL, "nbf", json_integer ((json_int_t)INT64_MAX));
    token = s_es256 (f->priv_pem, f->priv_len, f->kid, claims);
    assert_int_equal (cm_jwt_verify (f->verifier, token, UINT64_MAX, &out, &reason), -1);
    assert_string_equal (reason, "expired"); /* exp = NOW + 900 is long past */
    assert_int_equal (cm_jwt_verify (f->verifier, token, NOW, &out, &reason), -1);
    assert_string_equal (reason, "not_yet_valid");
    free (token);
    free (claims);
}

static void
test_reject_garbage (void **state)
{
    fixture_t *f = *state;
    s_expect_reject (f, "", "malformed");
    s_expect_reject (f, "garbage", "malformed");
    s_expect_reject (f, "a.b", "malformed");
    s_expect_reject (f, "..", "malformed");
    s_expect_reject (f, "a.b.c.d", "malformed");
    s_expect_reject (f, "!!!!.@@@@.####", "malformed");
    s_expect_reject (f, "e30.e30.e30", "bad_alg"); /* {} header */

    /* Two parts of a real token. */
    cm_jwt_signer_t *signer = cm_jwt_signer_new (f->priv, ISS, AUD);
    char *good = cm_jwt_sign (signer, SUB, "client", 0, NOW, 900);
    *strrchr (good, '.') = '\0';
    s_expect_reject (f, good, "malformed");
    free (good);
    cm_jwt_signer_destroy (&signer);

    /* Oversized. */
    char *big = malloc (CM_JWT_MAX_LEN + 100);
    memset (big, 'A', CM_JWT_MAX_LEN + 99);
    big[CM_JWT_MAX_LEN + 99] = '\0';
    s_expect_reject (f, big, "too_long");
    free (big);

    /* NULL arguments. */
    cm_jwt_claims_t out;
    const char *reason = NULL;
    assert_int_equal (cm_jwt_verify (f->verifier, NULL, NOW, &out, &reason), -1);
    assert_int_equal (cm_jwt_verify (NULL, "a.b.c", NOW, &out, &reason), -1);
}

/* ---- the key set ----------------------------------------------------- */

/* A: our key, B: the other one; tokens signed by each. */
typedef struct {
    cm_jwt_verifier_t *v;
    char *token_a;
    char *token_b;
} keyset_t;

static void
s_keyset_init (fixture_t *f, keyset_t *ks)
{
    ks->v = cm_jwt_verifier_new (ISS, AUD);
    assert_non_null (ks->v);
    cm_jwt_signer_t *a = cm_jwt_signer_new (f->priv, ISS, AUD);
    cm_jwt_signer_t *b = cm_jwt_signer_new (f->other_priv, ISS, AUD);
    assert_non_null (a);
    assert_non_null (b);
    ks->token_a = cm_jwt_sign (a, SUB, "client", 1, NOW, 900);
    ks->token_b = cm_jwt_sign (b, SUB, "client", 1, NOW, 900);
    assert_non_null (ks->token_a);
    assert_non_null (ks->token_b);
    cm_jwt_signer_destroy (&a);
    cm_jwt_signer_destroy (&b);
}

static void
s_keyset_fini (keyset_t *ks)
{
    cm_jwt_verifier_destroy (&ks->v);
    free (ks->token_a);
    free (ks->token_b);
}

static void
test_key_set_two_keys (void **state)
{
    fixture_t *f = *state;
    keyset_t ks;
    s_keyset_init (f, &ks);
    cm_jwt_key_t keys[2] = {{f->kid, f->pub_pem, 0}, {f->other_kid, f->other_pub_pem, 0}};
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, keys, 2), 0);
    s_expect_ok_by (ks.v, ks.token_a, NOW, f->kid);
    s_expect_ok_by (ks.v, ks.token_b, NOW, f->other_kid);

    /* Replaced by B alone: A is now unknown. */
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, keys + 1, 1), 0);
    s_expect_reject_by (ks.v, ks.token_a, NOW, "unknown_kid");
    s_expect_ok_by (ks.v, ks.token_b, NOW, f->other_kid);

    /* Emptied: nothing verifies. */
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, NULL, 0), 0);
    s_expect_reject_by (ks.v, ks.token_b, NOW, "unknown_kid");
    s_keyset_fini (&ks);
}

/* A retired key past its not_after is refused while the current key of
   the same set still verifies; at not_after exactly it still counts. */
static void
test_key_set_not_after (void **state)
{
    fixture_t *f = *state;
    keyset_t ks;
    s_keyset_init (f, &ks);
    cm_jwt_key_t keys[2] = {{f->other_kid, f->other_pub_pem, 0},
                            {f->kid, f->pub_pem, NOW + 60}};
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, keys, 2), 0);
    s_expect_ok_by (ks.v, ks.token_a, NOW + 60, f->kid);
    s_expect_reject_by (ks.v, ks.token_a, NOW + 61, "key_expired");
    s_expect_ok_by (ks.v, ks.token_b, NOW + 61, f->other_kid);

    keys[1].not_after = NOW - 1;
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, keys, 2), 0);
    s_expect_reject_by (ks.v, ks.token_a, NOW, "key_expired");
    s_expect_ok_by (ks.v, ks.token_b, NOW, f->other_kid);
    s_keyset_fini (&ks);
}

/* Every refusal leaves the previous set in place. */
static void
test_key_set_refusals (void **state)
{
    fixture_t *f = *state;
    keyset_t ks;
    s_keyset_init (f, &ks);
    cm_jwt_key_t good = {f->kid, f->pub_pem, 0};
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, &good, 1), 0);

    /* Extra P-256 keys C0..C8, none of them A or B. */
    char kids[CM_JWT_MAX_KEYS + 1][CM_JWT_KID_LEN + 1];
    char *pems[CM_JWT_MAX_KEYS + 1];
    for (size_t i = 0; i < CM_JWT_MAX_KEYS + 1; i++) {
        pems[i] = s_foreign_public_pem ("EC", "P-256");
        assert_int_equal (
            cm_jwt_kid ((const unsigned char *)pems[i], strlen (pems[i]), kids[i]), 0);
    }
    char *p384 = s_foreign_public_pem ("EC", "P-384");
    char *rsa = s_foreign_public_pem ("RSA", NULL);
    char p384_kid[CM_JWT_KID_LEN + 1];
    assert_int_equal (cm_jwt_kid ((const unsigned char *)p384, strlen (p384), p384_kid),
                      -1);
    snprintf (p384_kid, sizeof p384_kid, "0123456789abcdef");
    const cm_jwt_key_t bad[] = {
        {f->kid, f->other_pub_pem, 0},        /* kid of A, key B */
        {p384_kid, p384, 0},                  /* not P-256 */
        {p384_kid, rsa, 0},                   /* not EC */
        {f->other_kid, f->other_pem, 0},      /* a private key */
        {f->other_kid, "garbage", 0},         /* not a PEM */
        {f->other_kid, NULL, 0},              /* no PEM */
        {NULL, f->other_pub_pem, 0},          /* no kid */
        {"0123", f->other_pub_pem, 0},        /* short kid */
        {"0838679CF7762ED0", s_fixed_pub, 0}, /* kid not lowercase */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* Alone, and second after a good key that must not sneak in. */
        assert_int_equal (cm_jwt_verifier_set_keys (ks.v, &bad[i], 1), -1);
        cm_jwt_key_t pair[2] = {{kids[0], pems[0], 0}, bad[i]};
        assert_int_equal (cm_jwt_verifier_set_keys (ks.v, pair, 2), -1);
        s_expect_ok_by (ks.v, ks.token_a, NOW, f->kid);
        s_expect_reject_by (ks.v, ks.token_b, NOW, "unknown_kid");
    }
    /* The same kid twice. */
    cm_jwt_key_t twice[2] = {{f->other_kid, f->other_pub_pem, 0},
                             {f->other_kid, f->other_pub_pem, 0}};
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, twice, 2), -1);
    /* Too many keys (each one fine and distinct). */
    cm_jwt_key_t many[CM_JWT_MAX_KEYS + 1];
    for (size_t i = 0; i < CM_JWT_MAX_KEYS + 1; i++) {
        many[i] = (cm_jwt_key_t){kids[i], pems[i], 0};
    }
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, many, CM_JWT_MAX_KEYS + 1), -1);
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, NULL, 1), -1);
    assert_int_equal (cm_jwt_verifier_set_keys (NULL, &good, 1), -1);
    s_expect_ok_by (ks.v, ks.token_a, NOW, f->kid);
    s_expect_reject_by (ks.v, ks.token_b, NOW, "unknown_kid");

    /* CM_JWT_MAX_KEYS distinct keys is allowed, and all of them count. */
    many[CM_JWT_MAX_KEYS - 2] = (cm_jwt_key_t){f->other_kid, f->other_pub_pem, 0};
    many[CM_JWT_MAX_KEYS - 1] = good;
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, many, CM_JWT_MAX_KEYS), 0);
    s_expect_ok_by (ks.v, ks.token_a, NOW, f->kid);
    s_expect_ok_by (ks.v, ks.token_b, NOW, f->other_kid);
    for (size_t i = 0; i < CM_JWT_MAX_KEYS + 1; i++) {
        free (pems[i]);
    }
    free (p384);
    free (rsa);
    s_keyset_fini (&ks);
}

/* Workers verify while another thread swaps the set: a key in every set
   always verifies; a key in some sets gives ok or unknown_kid, never a
   torn-key failure. */
#define S_WORKERS  4
#define S_ROUNDS   300  /* set_keys calls, at least */
#define S_VERIFIES 2000 /* verifications of A, at least */

typedef struct {
    keyset_t *ks;
    const char *kid_a;
    atomic_int *stop;
    atomic_int ok_a, ok_b, unknown_b, wrong;
} race_t;

static void *
s_verify_loop (void *arg)
{
    race_t *r = arg;
    while (!atomic_load (r->stop)) {
        cm_jwt_claims_t c;
        const char *why = NULL;
        if (cm_jwt_verify (r->ks->v, r->ks->token_a, NOW, &c, &why) == 0 &&
            strcmp (c.kid, r->kid_a) == 0 && c.gen == 1) {
            atomic_fetch_add (&r->ok_a, 1);
        } else {
            atomic_fetch_add (&r->wrong, 1);
        }
        if (cm_jwt_verify (r->ks->v, r->ks->token_b, NOW, &c, &why) == 0) {
            atomic_fetch_add (&r->ok_b, 1);
        } else if (strcmp (why, "unknown_kid") == 0) {
            atomic_fetch_add (&r->unknown_b, 1);
        } else {
            atomic_fetch_add (&r->wrong, 1);
        }
    }
    return NULL;
}

static void
test_key_set_concurrent (void **state)
{
    fixture_t *f = *state;
    keyset_t ks;
    s_keyset_init (f, &ks);
    cm_jwt_key_t both[2] = {{f->other_kid, f->other_pub_pem, 0}, {f->kid, f->pub_pem, 0}};
    cm_jwt_key_t only_a[1] = {{f->kid, f->pub_pem, 0}};
    assert_int_equal (cm_jwt_verifier_set_keys (ks.v, only_a, 1), 0);

    atomic_int stop = 0;
    race_t r = {.ks = &ks, .kid_a = f->kid, .stop = &stop};
    pthread_t th[S_WORKERS];
    for (int i = 0; i < S_WORKERS; i++) {
        assert_int_equal (pthread_create (&th[i], NULL, s_verify_loop, &r), 0);
    }
    int set_failures = 0;
    for (int i = 0;
         i < S_ROUNDS || atomic_load (&r.ok_a) + atomic_load (&r.wrong) < S_VERIFIES;
         i++) {
        /* A moves between slots 0 and 1; B comes and goes. */
        if (cm_jwt_verifier_set_keys (ks.v, i % 2 ? both : only_a, i % 2 ? 2 : 1) != 0) {
            set_failures++;
        }
    }
    atomic_store (&stop, 1);
    for (int i = 0; i < S_WORKERS; i++) {
        pthread_join (th[i], NULL);
    }
    assert_int_equal (set_failures, 0);
    assert_int_equal (atomic_load (&r.wrong), 0);
    assert_true (atomic_load (&r.ok_a) > 0);
    assert_int_equal (atomic_load (&r.ok_a),
                      atomic_load (&r.ok_b) + atomic_load (&r.unknown_b));
    s_keyset_fini (&ks);
}

int
main (void)
{
    cm_log_init ("test_cm_jwt", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_keygen_files),
        cmocka_unit_test (test_keygen_rotates_atomically),
        cmocka_unit_test (test_kid),
        cmocka_unit_test (test_sign_verify),
        cmocka_unit_test (test_aud_array_and_no_typ),
        cmocka_unit_test (test_reject_alg_none),
        cmocka_unit_test (test_reject_hs256_public_key),
        cmocka_unit_test (test_reject_other_algs),
        cmocka_unit_test (test_reject_other_key),
        cmocka_unit_test (test_reject_kid_header),
        cmocka_unit_test (test_reject_tampered),
        cmocka_unit_test (test_reject_claims),
        cmocka_unit_test (test_claims_extreme),
        cmocka_unit_test (test_reject_garbage),
        cmocka_unit_test (test_key_set_two_keys),
        cmocka_unit_test (test_key_set_not_after),
        cmocka_unit_test (test_key_set_refusals),
        cmocka_unit_test (test_key_set_concurrent),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
