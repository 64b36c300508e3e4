/*  cm_config -- the shared configuration (DESIGN §10).

    Sources, later wins: compiled defaults <- optional file (--config FILE,
    lines `SAFESHARE_NAME=value`, `#` comments) <- SAFESHARE_* environment.
    Every known key is validated (type, range, endpoint shape) by
    cm_config_load before any service binds a socket; an unknown key in the
    file or a bad value is one clear error line and a non-zero exit.

    Defaults that depend on the data dir (DBs, endpoints, paths) are derived
    after the data dir is known, so SAFESHARE_DATA_DIR=/x moves them all.   */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cm_config_t cm_config_t;

/* Loads defaults, then `file` (may be NULL), then the environment.
   On error returns NULL and writes a one-line reason into err.          */
cm_config_t *cm_config_load (const char *file, char *err, size_t errlen);
void cm_config_destroy (cm_config_t **self_p);

/* Borrowed; NULL if the key is unknown or unset (optional keys).        */
const char *cm_config_get (cm_config_t *self, const char *key);
/* Integer keys (validated at load, so never fails for a known int key). */
long cm_config_int (cm_config_t *self, const char *key);

/* Known keys (the full list is the table in cm_config.c, documented in
   docs/configuration.md):
     SAFESHARE_DATA_DIR            ./var
     SAFESHARE_HTTP_ADDR           127.0.0.1:8000
     SAFESHARE_PUBLIC_URL          http://127.0.0.1:8000
     SAFESHARE_LOG_LEVEL           info
     SAFESHARE_AUTH_DB             sqlite:$DATA_DIR/auth.db
     SAFESHARE_STORAGE_DB          sqlite:$DATA_DIR/storage.db
     SAFESHARE_MAILER_DB           sqlite:$DATA_DIR/mailer.db
     SAFESHARE_STORAGE_BACKEND     disk       (disk | s3)
     SAFESHARE_BLOB_DIR            $DATA_DIR/blobs
     SAFESHARE_S3_*                the S3 backend (docs/storage.md)
     SAFESHARE_MAIL_DIR            $DATA_DIR/mail
     SAFESHARE_KEY_DIR             $DATA_DIR/keys   (kek.ring, jwt-es256.pem, jwt-es256.pub)
     SAFESHARE_AUTH_ENDPOINT       ipc://$DATA_DIR/run/auth.sock   (also _CRYPTO_, _STORAGE_, _MAILER_)
     SAFESHARE_KEK_RING            unset      KEKs inline (a secret, never echoed); replaces kek.ring
     SAFESHARE_CRYPTO_WORKERS      2          local worker threads (0..64)
     SAFESHARE_CRYPTO_WORKER_ENDPOINT unset   where remote crypto workers connect
     SAFESHARE_CURVE_SECRET_KEY    unset      this process's CURVE cert; set = CURVE on
     SAFESHARE_CURVE_PUBLIC_DIR    unset      <service>.key of the services it calls
     SAFESHARE_CURVE_ALLOW_DIR     unset      *.key of the clients its servers accept
     SAFESHARE_CRYPTO_WINDOW       4          gateway: chunks in flight per transfer (1..64)
     SAFESHARE_CHUNK_SIZE          1048576    (4096..16777216)
     SAFESHARE_MAX_UPLOAD_BYTES    10737418240
     SAFESHARE_ACCESS_TTL          900        access JWT lifetime, seconds
     SAFESHARE_VERIFY_TTL          86400      e-mail verification token lifetime
     SAFESHARE_REFRESH_TTL         1209600    refresh token lifetime (60..31536000)
     SAFESHARE_SESSION_TTL         2592000    session lifetime from login (60..31536000)
     SAFESHARE_USER_CACHE_TTL      5          gateway user-state cache, s (0..60)
     SAFESHARE_LINK_MAX_TTL        604800     longest share link expiry
     SAFESHARE_JWT_ISSUER          safeshare
     SAFESHARE_JWT_AUDIENCE        safeshare-api
     SAFESHARE_RPC_TIMEOUT_MS      5000       gateway -> service call timeout
     SAFESHARE_HTTP_THREADS        16
     SAFESHARE_MAIL_FROM           safeshare <no-reply@localhost>
     SAFESHARE_MAIL_REPLY_TO, SAFESHARE_SMTP_*, SAFESHARE_MAIL_*   the mailer
                                   (docs/mail.md)                      */

/* Makes `dir` (and parents) with `mode` if missing, fsyncing the parent
   of each directory it creates. 0 / -1.                                */
int cm_mkdirs (const char *dir, int mode);

#endif
