/*  jwt_forge -- test tool: makes the tokens system tests present to the
    real gateway (the running auth never issues such tokens).

      jwt_forge PRIVATE_PEM ISS AUD SUB ROLE OFFSET TTL [GEN]
          a normal token (cm_jwt_sign: kid header, gen claim, default 0)
          as if issued OFFSET seconds from now, lifetime TTL
      jwt_forge --keygen PRIVATE_PEM PUBLIC_PEM
      jwt_forge --kid PEM
          the kid of a private or public PEM
      jwt_forge --raw PRIVATE_PEM HEADER_JSON PAYLOAD_JSON
          b64url(HEADER_JSON) "." b64url(PAYLOAD_JSON) "." b64url(r||s),
          an ES256 signature over exactly those bytes (no re-serialising),
          so a test can sign any header and claims
      jwt_forge --hs256 SECRET_FILE HEADER_JSON PAYLOAD_JSON
          the same with HMAC-SHA256 keyed with the file's exact bytes (the
          public-key-as-HMAC-secret attack)

    Exit 0 with the token (or kid) on stdout, 1 on failure, 2 on usage. */
#include "cm_jwt.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_FILE 16384

static int
s_usage (void)
{
    fprintf (stderr, "usage: jwt_forge PRIVATE_PEM ISS AUD SUB ROLE OFFSET TTL [GEN]\n"
                     "       jwt_forge --keygen PRIVATE_PEM PUBLIC_PEM\n"
                     "       jwt_forge --kid PEM\n"
                     "       jwt_forge --raw PRIVATE_PEM HEADER_JSON PAYLOAD_JSON\n"
                     "       jwt_forge --hs256 SECRET_FILE HEADER_JSON PAYLOAD_JSON\n");
    return 2;
}

/* Prints input "." b64url(sig). */
static int
s_print_token (const char *input, const unsigned char *sig, size_t sig_len)
{
    char *s = cm_test_b64url (sig, sig_len);
    if (!s) {
        return 1;
    }
    printf ("%s.%s\n", input, s);
    free (s);
    return 0;
}

/* ES256 over input with the private key in pem_path: the JOSE form of
   the signature, r and s as 32 big-endian bytes each (RFC 7518 3.4). */
static int
s_sign_es256 (const char *pem_path, const char *input, unsigned char sig[64])
{
    int rc = -1;
    size_t pem_len = 0;
    char *pem = cm_file_read (pem_path, S_MAX_FILE, &pem_len);
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    ECDSA_SIG *es = NULL;
    if (!pem) {
        fprintf (stderr, "jwt_forge: cannot read %s\n", pem_path);
        goto cleanup;
    }
    bio = BIO_new_mem_buf (pem, (int)pem_len);
    pkey = bio ? PEM_read_bio_PrivateKey (bio, NULL, NULL, NULL) : NULL;
    if (!pkey || !EVP_PKEY_is_a (pkey, "EC")) {
        fprintf (stderr, "jwt_forge: %s is not an EC private key PEM\n", pem_path);
        goto cleanup;
    }
    md = EVP_MD_CTX_new ();
    if (!md || EVP_DigestSignInit (md, NULL, EVP_sha256 (), NULL, pkey) != 1 ||
        EVP_DigestSign (md, NULL, &der_len, (const unsigned char *)input,
                        strlen (input)) != 1 ||
        !(der = OPENSSL_malloc (der_len)) ||
        EVP_DigestSign (md, der, &der_len, (const unsigned char *)input,
                        strlen (input)) != 1) {
        cm_log_openssl (NULL, "EVP_DigestSign() failed");
        goto cleanup;
    }
    const unsigned char *p = der;
    es = d2i_ECDSA_SIG (NULL, &p, (long)der_len);
    if (!es || BN_bn2binpad (ECDSA_SIG_get0_r (es), sig, 32) != 32 ||
        BN_bn2binpad (ECDSA_SIG_get0_s (es), sig + 32, 32) != 32) {
        fprintf (stderr, "jwt_forge: signature does not fit ES256 (not a P-256 key?)\n");
        goto cleanup;
    }
    rc = 0;
cleanup:
    ECDSA_SIG_free (es);
    OPENSSL_free (der);
    EVP_MD_CTX_free (md);
    EVP_PKEY_free (pkey);
    BIO_free (bio);
    cm_secret_free (pem, pem_len);
    return rc;
}

static int
s_raw (const char *pem_path, const char *header, const char *payload)
{
    char *input = cm_test_jws_input (header, payload);
    unsigned char sig[64];
    int rc = 1;
    if (input && s_sign_es256 (pem_path, input, sig) == 0) {
        rc = s_print_token (input, sig, sizeof sig);
    }
    free (input);
    return rc;
}

static int
s_hs256 (const char *secret_path, const char *header, const char *payload)
{
    size_t key_len = 0;
    char *key = cm_file_read (secret_path, S_MAX_FILE, &key_len);
    if (!key) {
        fprintf (stderr, "jwt_forge: cannot read %s\n", secret_path);
        return 1;
    }
    char *input = cm_test_jws_input (header, payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int rc = 1;
    if (input && HMAC (EVP_sha256 (), key, (int)key_len, (const unsigned char *)input,
                       strlen (input), mac, &mac_len)) {
        rc = s_print_token (input, mac, mac_len);
    } else {
        cm_log_openssl (NULL, "HMAC() failed");
    }
    free (input);
    cm_secret_free (key, key_len);
    return rc;
}

static int
s_kid (const char *path)
{
    size_t len = 0;
    char *pem = cm_file_read (path, S_MAX_FILE, &len);
    if (!pem) {
        fprintf (stderr, "jwt_forge: cannot read %s\n", path);
        return 1;
    }
    char kid[CM_JWT_KID_LEN + 1];
    int rc = cm_jwt_kid ((const unsigned char *)pem, len, kid) == 0 ? 0 : 1;
    cm_secret_free (pem, len);
    if (rc == 0) {
        printf ("%s\n", kid);
    }
    return rc;
}

/* Whole-string decimal integer within [min, max]. */
static bool
s_parse_ll (const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll (s, &end, 10);
    if (!*s || *end || errno || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static int
s_token (char **argv, int argc)
{
    long long offset = 0, ttl = 0, gen = 0;
    if (!s_parse_ll (argv[6], -(1LL << 40), 1LL << 40, &offset) ||
        !s_parse_ll (argv[7], 1, UINT_MAX, &ttl) ||
        (argc == 9 && !s_parse_ll (argv[8], 0, LLONG_MAX, &gen))) {
        fprintf (stderr, "jwt_forge: OFFSET, TTL (>= 1) and GEN (>= 0) are integers\n");
        return 2;
    }
    long long now = (long long)cm_now_s () + offset;
    if (now < 0) {
        fprintf (stderr, "jwt_forge: OFFSET before 1970\n");
        return 2;
    }
    cm_jwt_signer_t *signer = cm_jwt_signer_new (argv[1], argv[2], argv[3]);
    if (!signer) {
        return 1;
    }
    char *token = cm_jwt_sign (signer, argv[4], argv[5], (uint64_t)gen, (uint64_t)now,
                               (unsigned)ttl);
    cm_jwt_signer_destroy (&signer);
    if (!token) {
        return 1;
    }
    printf ("%s\n", token);
    free (token);
    return 0;
}

int
main (int argc, char **argv)
{
    cm_log_init ("jwt_forge", CM_LOG_ERROR);
    if (argc >= 2 && strncmp (argv[1], "--", 2) == 0) {
        if (argc == 4 && strcmp (argv[1], "--keygen") == 0) {
            return cm_jwt_keygen (argv[2], argv[3]) == 0 ? 0 : 1;
        }
        if (argc == 3 && strcmp (argv[1], "--kid") == 0) {
            return s_kid (argv[2]);
        }
        if (argc == 5 && strcmp (argv[1], "--raw") == 0) {
            return s_raw (argv[2], argv[3], argv[4]);
        }
        if (argc == 5 && strcmp (argv[1], "--hs256") == 0) {
            return s_hs256 (argv[2], argv[3], argv[4]);
        }
        return s_usage ();
    }
    if (argc != 8 && argc != 9) {
        return s_usage ();
    }
    return s_token (argv, argc);
}
