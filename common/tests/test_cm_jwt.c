/*  test_cm_jwt -- ES256 signing and every rejection the verifier owes us.

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
#include "cm_util.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ISS "safeshare"
#define AUD "safeshare-api"
#define SUB "0123456789abcdef0123456789abcdef"
#define NOW ((uint64_t)1800000000)

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
    cm_jwt_verifier_t *verifier;
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
    assert_non_null (f->priv_pem);
    assert_non_null (f->pub_pem);
    assert_non_null (f->other_pem);
    f->verifier = cm_jwt_verifier_new (f->pub, ISS, AUD);
    assert_non_null (f->verifier);
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
s_b64url (const void *data, size_t len)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *in = data;
    char *out = malloc (len * 4 / 3 + 4);
    assert_non_null (out);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tbl[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out[o++] = tbl[(acc << (6 - bits)) & 63];
    }
    out[o] = '\0';
    return out;
}

/* "b64(header).b64(payload)" */
static char *
s_signing_input (const char *header, const char *payload)
{
    char *h = s_b64url (header, strlen (header));
    char *p = s_b64url (payload, strlen (payload));
    char *out = malloc (strlen (h) + strlen (p) + 2);
    assert_non_null (out);
    sprintf (out, "%s.%s", h, p);
    free (h);
    free (p);
    return out;
}

static char *
s_join (const char *input, const char *sig_b64)
{
    char *out = malloc (strlen (input) + strlen (sig_b64) + 2);
    assert_non_null (out);
    sprintf (out, "%s.%s", input, sig_b64);
    return out;
}

/* A real ES256 token over arbitrary claims, signed by libjwt with `pem`. */
static char *
s_es256 (const char *pem, size_t pem_len, const char *claims_json)
{
    jwt_t *jwt = NULL;
    assert_int_equal (jwt_new (&jwt), 0);
    assert_int_equal (jwt_add_grants_json (jwt, claims_json), 0);
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
    json_t *c =
        json_pack ("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "iss", ISS, "aud", AUD,
                   "sub", SUB, "role", "client", "jti", "abc123", "iat", (json_int_t)NOW,
                   "nbf", (json_int_t)NOW, "exp", (json_int_t)(NOW + 900));
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
s_expect_reject (fixture_t *f, const char *token, const char *reason_want)
{
    cm_jwt_claims_t claims;
    memset (&claims, 0x5a, sizeof claims);
    const char *reason = NULL;
    int rc = cm_jwt_verify (f->verifier, token, NOW, &claims, &reason);
    assert_int_equal (rc, -1);
    assert_non_null (reason);
    assert_string_equal (reason, reason_want);
}

static void
s_expect_claims_reject (fixture_t *f, const char *drop, const char *key, json_t *value,
                        const char *reason_want)
{
    char *claims = s_claims (drop, key, value);
    char *token = s_es256 (f->priv_pem, f->priv_len, claims);
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
    assert_null (cm_jwt_verifier_new (f->priv, ISS, AUD));
    assert_null (cm_jwt_signer_new (f->pub, ISS, AUD));
    assert_null (cm_jwt_signer_new ("/nonexistent/jwt.pem", ISS, AUD));
}

static void
test_sign_verify (void **state)
{
    fixture_t *f = *state;
    cm_jwt_signer_t *signer = cm_jwt_signer_new (f->priv, ISS, AUD);
    assert_non_null (signer);
    char *token = cm_jwt_sign (signer, SUB, "ops", NOW, 900);
    assert_non_null (token);

    /* The header says ES256 and the signature is JOSE R||S (64 bytes). */
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
    char *token2 = cm_jwt_sign (signer, SUB, "ops", NOW, 900);
    cm_jwt_claims_t claims2;
    assert_int_equal (cm_jwt_verify (f->verifier, token2, NOW, &claims2, &reason), 0);
    assert_string_not_equal (claims.jti, claims2.jti);

    /* The signer refuses what the verifier would refuse. */
    assert_null (cm_jwt_sign (signer, "not-hex", "ops", NOW, 900));
    assert_null (cm_jwt_sign (signer, SUB, "root", NOW, 900));

    free (token);
    free (token2);
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
    char *token = s_es256 (f->priv_pem, f->priv_len, claims);
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
    char *input = s_signing_input ("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims);
    char *token = s_join (input, "");
    /* An empty signature part is malformed on its own ... */
    s_expect_reject (f, token, "malformed");
    /* ... and with any signature bytes the header decides. */
    char *token2 = s_join (input, "AAAA");
    s_expect_reject (f, token2, "bad_alg");
    /* Case games do not help either. */
    char *input3 = s_signing_input ("{\"alg\":\"es256\",\"typ\":\"JWT\"}", claims);
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
    char *input = s_signing_input ("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    assert_non_null (HMAC (EVP_sha256 (), f->pub_pem, (int)f->pub_len,
                           (const unsigned char *)input, strlen (input), mac, &mac_len));
    char *sig = s_b64url (mac, mac_len);
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
    char *good = s_es256 (f->priv_pem, f->priv_len, claims);
    const char *sig = strrchr (good, '.') + 1;
    const char *headers[] = {"{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"ES384\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"ES512\",\"typ\":\"JWT\"}", "{\"typ\":\"JWT\"}",
                             "{\"alg\":[\"ES256\"]}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *input = s_signing_input (headers[i], claims);
        char *token = s_join (input, sig);
        s_expect_reject (f, token, "bad_alg");
        free (token);
        free (input);
    }
    /* Duplicate alg members (parsers disagree which wins): refused. */
    char *input = s_signing_input ("{\"alg\":\"ES256\",\"alg\":\"HS256\"}", claims);
    char *token = s_join (input, sig);
    s_expect_reject (f, token, "malformed");
    free (token);
    free (input);
    /* A wrong typ or a crit extension: refused. */
    input = s_signing_input ("{\"alg\":\"ES256\",\"typ\":\"JWE\"}", claims);
    token = s_join (input, sig);
    s_expect_reject (f, token, "bad_typ");
    free (token);
    free (input);
    input = s_signing_input ("{\"alg\":\"ES256\",\"crit\":[\"x\"],\"x\":1}", claims);
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
    char *token = s_es256 (f->other_pem, f->other_len, claims);
    s_expect_reject (f, token, "bad_signature");
    free (token);
    free (claims);
}

static void
test_reject_tampered (void **state)
{
    fixture_t *f = *state;
    char *claims = s_claims (NULL, NULL, NULL);
    char *good = s_es256 (f->priv_pem, f->priv_len, claims);
    /* Same header and signature, payload upgraded to admin. */
    char *evil = s_claims (NULL, "role", json_string ("admin"));
    char *evil_b64 = s_b64url (evil, strlen (evil));
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
    /* nbf within the leeway is fine. */
    char *claims = s_claims (NULL, "nbf", json_integer ((json_int_t)NOW + 10));
    char *token = s_es256 (f->priv_pem, f->priv_len, claims);
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
    char *token = s_es256 (f->priv_pem, f->priv_len, claims);
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
    token = s_es256 (f->priv_pem, f->priv_len, claims);
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
    char *good = cm_jwt_sign (signer, SUB, "client", NOW, 900);
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

int
main (void)
{
    cm_log_init ("test_cm_jwt", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_keygen_files),
        cmocka_unit_test (test_sign_verify),
        cmocka_unit_test (test_aud_array_and_no_typ),
        cmocka_unit_test (test_reject_alg_none),
        cmocka_unit_test (test_reject_hs256_public_key),
        cmocka_unit_test (test_reject_other_algs),
        cmocka_unit_test (test_reject_other_key),
        cmocka_unit_test (test_reject_tampered),
        cmocka_unit_test (test_reject_claims),
        cmocka_unit_test (test_claims_extreme),
        cmocka_unit_test (test_reject_garbage),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
