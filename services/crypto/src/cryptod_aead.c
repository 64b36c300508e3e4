/*  cryptod_aead -- AES-256-GCM over OpenSSL EVP. See cryptod_aead.h.   */
#include "cryptod_aead.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Fetched once for the process: avoids a provider lookup per chunk, and
   OpenSSL 3.0 leaks when several threads make their first implicit
   fetch of the same cipher at once (seen under LeakSanitizer with the
   worker threads). Kept until exit on purpose.                        */
static EVP_CIPHER *s_cipher;
static pthread_once_t s_cipher_once = PTHREAD_ONCE_INIT;

static void
s_cipher_fetch (void)
{
    s_cipher = EVP_CIPHER_fetch (NULL, "AES-256-GCM", NULL);
}

int
cryptod_aead_init (void)
{
    pthread_once (&s_cipher_once, s_cipher_fetch);
    return s_cipher ? 0 : -1;
}

static int
s_gcm (bool enc, const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
       size_t aad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16])
{
    int rc = -1;
    int n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
    /* EVP lengths are int; chunks are at most 16 MiB.                  */
    if (!ctx || len > INT32_MAX || aad_len > INT32_MAX || cryptod_aead_init () != 0) {
        goto cleanup;
    }
    if (EVP_CipherInit_ex (ctx, s_cipher, NULL, NULL, NULL, enc ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_CipherInit_ex (ctx, NULL, NULL, key, nonce, -1) != 1) {
        goto cleanup;
    }
    if (aad_len > 0 && EVP_CipherUpdate (ctx, NULL, &n, aad, (int)aad_len) != 1) {
        goto cleanup;
    }
    if (len > 0 && EVP_CipherUpdate (ctx, out, &n, in, (int)len) != 1) {
        goto cleanup;
    }
    if (!enc && EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1) {
        goto cleanup;
    }
    /* GCM writes nothing in Final; a tag mismatch fails here.          */
    if (EVP_CipherFinal_ex (ctx, out + len, &n) != 1) {
        goto cleanup;
    }
    if (enc && EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
        goto cleanup;
    }
    rc = 0;
cleanup:
    EVP_CIPHER_CTX_free (ctx);
    return rc;
}

int
cryptod_aead_seal (const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                   size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                   uint8_t tag[16])
{
    if (s_gcm (true, key, nonce, aad, aad_len, in, len, out, tag) != 0) {
        OPENSSL_cleanse (out, len);
        return -1;
    }
    return 0;
}

int
cryptod_aead_open (const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                   size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                   const uint8_t tag[16])
{
    uint8_t tag_copy[16];
    memcpy (tag_copy, tag, sizeof tag_copy);
    if (s_gcm (false, key, nonce, aad, aad_len, in, len, out, tag_copy) != 0) {
        OPENSSL_cleanse (out, len);
        return -1;
    }
    return 0;
}
