/*  cryptod_aead -- one AES-256-GCM operation (96-bit nonce, 128-bit tag)
    over OpenSSL EVP, shared by the blob format and the DEK wrapping.
    Internal to cryptod_core.                                           */
#ifndef CRYPTOD_AEAD_H
#define CRYPTOD_AEAD_H

#include <stddef.h>
#include <stdint.h>

/* Fetches the cipher once (also done lazily by seal/open); call before
   starting threads. 0 / -1.                                           */
int cryptod_aead_init (void);

/* out gets len bytes of ciphertext, tag the 16-byte tag. 0 / -1. */
int cryptod_aead_seal (const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                       size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                       uint8_t tag[16]);
/* out gets len bytes of plaintext if the tag authenticates; -1 otherwise
   (out is then wiped).                                                */
int cryptod_aead_open (const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                       size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                       const uint8_t tag[16]);

#endif
