/*  cm_jwt -- access tokens: ES256 signing (auth, private key) and strict
    verification (gateway, public keys only).

    Tokens carry a "kid" header (the signing key's id, CM_JWT_KID_LEN hex)
    and a "gen" claim (the user's token generation when issued; the
    gateway refuses a token whose gen is not the user's current one, so
    logout-all and role changes end every older token). A verifier holds
    a set of up to CM_JWT_MAX_KEYS public keys, each with its kid and an
    optional not_after (retired keys stay valid for a grace period),
    replaceable at runtime while other threads verify.

    libjwt 1.10.2 validates nothing itself and is open to algorithm
    confusion (PLATFORM.md), so verification here: parses the JOSE header
    and requires alg == "ES256" and a well-formed kid of the set (not past
    its not_after) before jwt_decode, checks jwt_get_alg() after, then
    requires exp (> now - leeway), nbf and iat (<= now + leeway), iss, aud,
    sub (32 hex), role (client|ops|admin), jti and gen (integer >= 0).  */
#ifndef CM_JWT_H
#define CM_JWT_H

#include <stddef.h>
#include <stdint.h>

#define CM_JWT_LEEWAY_S 30
#define CM_JWT_MAX_LEN  4096
/* A key id: 16 lowercase hex chars, the first 8 bytes of SHA-256 over
   the key's SubjectPublicKeyInfo DER (same for its private key).      */
#define CM_JWT_KID_LEN 16
/* Keys a verifier holds at once (current + retired ones in grace). */
#define CM_JWT_MAX_KEYS 8

typedef struct {
    char sub[33]; /* user id, 32 hex */
    char role[8]; /* "client" | "ops" | "admin" */
    char jti[65];
    char kid[CM_JWT_KID_LEN + 1]; /* the header's kid */
    uint64_t exp;
    uint64_t iat;
    uint64_t gen; /* the user's token generation when issued */
} cm_jwt_claims_t;

typedef struct cm_jwt_signer_t cm_jwt_signer_t;
typedef struct cm_jwt_verifier_t cm_jwt_verifier_t;

/* Generates an ES256 (P-256) key pair: private PEM (0600), public PEM
   (0644), each written atomically (temp file, fsync, rename), so a
   running auth never reads half a key.                                */
int cm_jwt_keygen (const char *private_path, const char *public_path);

/* kid of a PEM key (private or public, P-256 only). 0 / -1.          */
int cm_jwt_kid (const unsigned char *pem, size_t pem_len, char kid[CM_JWT_KID_LEN + 1]);

/* Key loaded once; its kid computed. NULL on failure (logged).        */
cm_jwt_signer_t *cm_jwt_signer_new (const char *private_pem_path, const char *issuer,
                                    const char *audience);
void cm_jwt_signer_destroy (cm_jwt_signer_t **self_p);
const char *cm_jwt_signer_kid (const cm_jwt_signer_t *self);
/* The signing key's public half as an SPKI PEM (NUL-terminated, borrowed). */
const char *cm_jwt_signer_public_pem (const cm_jwt_signer_t *self);
/* Signed compact JWT (caller frees) with header {alg ES256, typ JWT,
   kid} and claims iss, aud, sub, role, gen, iat, nbf, exp = now + ttl_s,
   random jti. NULL on failure.                                         */
char *cm_jwt_sign (cm_jwt_signer_t *self, const char *sub, const char *role, uint64_t gen,
                   uint64_t now_s, unsigned ttl_s);

/* A verifier with no keys yet (every token is refused "unknown_kid"
   until cm_jwt_verifier_set_keys).                                     */
cm_jwt_verifier_t *cm_jwt_verifier_new (const char *issuer, const char *audience);
void cm_jwt_verifier_destroy (cm_jwt_verifier_t **self_p);

typedef struct {
    const char *kid;        /* CM_JWT_KID_LEN hex; must match the key */
    const char *public_pem; /* SPKI PEM, P-256 */
    uint64_t not_after;     /* unix s after which the key is refused; 0 = none */
} cm_jwt_key_t;

/* Replaces the whole key set with keys[0..n) (n <= CM_JWT_MAX_KEYS).
   Every key is checked (P-256, kid matches); on any bad one -1 and the
   set is unchanged. Safe while other threads verify.                   */
int cm_jwt_verifier_set_keys (cm_jwt_verifier_t *self, const cm_jwt_key_t *keys,
                              size_t n);
/* Convenience for tools and tests: the set becomes the one public key
   in a PEM file (kid computed, no not_after). 0 / -1.                  */
int cm_jwt_verifier_load_file (cm_jwt_verifier_t *self, const char *public_pem_path);

/* 0 and *claims filled when valid; -1 otherwise with *reason set to a
   static short string for logs: "malformed", "too_long", "bad_alg",
   "bad_typ", "bad_header", "missing_kid", "unknown_kid" (no key with
   that kid: the caller may refresh its key set and retry),
   "key_expired" (past the key's not_after), "bad_signature",
   "expired", "not_yet_valid", "bad_iss", "bad_aud", "bad_sub",
   "bad_role", "bad_jti", "bad_gen", ... The alg is pinned to ES256
   from the header before any signature check and checked again after.
   Thread-safe (the gateway's workers share one).                       */
int cm_jwt_verify (cm_jwt_verifier_t *self, const char *token, uint64_t now_s,
                   cm_jwt_claims_t *claims, const char **reason);

#endif
