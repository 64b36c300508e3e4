/*  cm_jwt -- access tokens: ES256 signing (auth, private key) and strict
    verification (gateway, public key only).

    libjwt 1.10.2 validates nothing itself and is open to algorithm
    confusion (PLATFORM.md), so verification here: parses the JOSE header
    and requires alg == "ES256" before jwt_decode, checks jwt_get_alg()
    after, then requires exp (> now - leeway), nbf/iat (<= now + leeway),
    iss, aud, sub (32 hex) and role (client|ops|admin).                 */
#ifndef CM_JWT_H
#define CM_JWT_H

#include <stddef.h>
#include <stdint.h>

#define CM_JWT_LEEWAY_S 30
#define CM_JWT_MAX_LEN  4096

typedef struct {
    char sub[33]; /* user id, 32 hex */
    char role[8]; /* "client" | "ops" | "admin" */
    char jti[65];
    uint64_t exp;
    uint64_t iat;
} cm_jwt_claims_t;

typedef struct cm_jwt_signer_t cm_jwt_signer_t;
typedef struct cm_jwt_verifier_t cm_jwt_verifier_t;

/* Generates an ES256 (P-256) key pair: private PEM (0600), public PEM (0644). */
int cm_jwt_keygen (const char *private_path, const char *public_path);

/* Key loaded once. NULL on failure (logged). */
cm_jwt_signer_t *cm_jwt_signer_new (const char *private_pem_path, const char *issuer,
                                    const char *audience);
void cm_jwt_signer_destroy (cm_jwt_signer_t **self_p);
/* Signed compact JWT (caller frees) with iss, aud, sub, role, iat, nbf,
   exp = now + ttl_s, random jti. NULL on failure.                      */
char *cm_jwt_sign (cm_jwt_signer_t *self, const char *sub, const char *role,
                   uint64_t now_s, unsigned ttl_s);

cm_jwt_verifier_t *cm_jwt_verifier_new (const char *public_pem_path, const char *issuer,
                                        const char *audience);
void cm_jwt_verifier_destroy (cm_jwt_verifier_t **self_p);
/* 0 and *claims filled when valid; -1 otherwise with *reason set to a
   static short string for logs ("bad_alg", "expired", "bad_signature",
   "bad_iss", ...). Thread-safe (the gateway's workers share one).     */
int cm_jwt_verify (cm_jwt_verifier_t *self, const char *token, uint64_t now_s,
                   cm_jwt_claims_t *claims, const char **reason);

#endif
