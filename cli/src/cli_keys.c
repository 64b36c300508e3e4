/*  cli_keys -- the local key material under SAFESHARE_KEY_DIR, and the
    KEK commands (list, rotate, retire) that also read the storage DB.  */
#include "cli_keys.h"
#include "cli_store.h"
#include "cm_curve.h"
#include "cm_jwt.h"
#include "cm_log.h"
#include "cm_service.h"
#include "cm_util.h"
#include "cryptod_keyring.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_KEK_FILE  "kek.ring"
#define S_JWT_PRIV  "jwt-es256.pem"
#define S_JWT_PUB   "jwt-es256.pub"
#define S_PATH_SIZE 4096
/* A P-256 PEM is a few hundred bytes; anything this big is not one. */
#define S_PEM_MAX 16384

static int
s_path (char *out, const char *dir, const char *name)
{
    if (snprintf (out, S_PATH_SIZE, "%s/%s", dir, name) >= S_PATH_SIZE) {
        fprintf (stderr, "safeshare: key path too long: %s/%s\n", dir, name);
        return -1;
    }
    return 0;
}

static bool
s_exists (const char *path)
{
    return access (path, F_OK) == 0;
}

/* The key dir holds the KEKs: refuse to add keys to a directory others
   can read, instead of quietly loosening what the operator set up.    */
static int
s_key_dir (const char *dir)
{
    if (cm_mkdirs (dir, 0700) != 0) {
        fprintf (stderr, "safeshare: cannot create key directory %s: %s\n", dir,
                 strerror (errno));
        return -1;
    }
    struct stat st;
    if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
        fprintf (stderr, "safeshare: key directory %s is not a directory\n", dir);
        return -1;
    }
    if (st.st_mode & 077) {
        fprintf (stderr,
                 "safeshare: key directory %s is accessible by other users (mode %03o); "
                 "run chmod 700 on it\n",
                 dir, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

/* Prints an env ring's new value: the one place a key is printed, on
   purpose (the operator stores it where the containers take their
   secrets from). -1 if it could not be written out completely.        */
static int
s_print_env_ring (const cryptod_keyring_t *ring, FILE *out)
{
    char *value = cryptod_keyring_format_env (ring);
    if (!value) {
        fprintf (stderr, "safeshare: out of memory\n");
        return -1;
    }
    fprintf (out, "SAFESHARE_KEK_RING=%s\n", value);
    cm_secret_free (value, strlen (value) + 1);
    if (fflush (out) != 0 || ferror (out)) {
        fprintf (stderr, "safeshare: cannot write the new SAFESHARE_KEK_RING value\n");
        return -1;
    }
    return 0;
}

/* With SAFESHARE_KEK_RING set there is no ring file to write: a new KEK
   is added to the ring in memory and the whole new value printed.      */
static int
s_kek_env (const char *env_ring, bool new_kek, FILE *out)
{
    if (!new_kek) {
        return 0; /* the ring is the environment's business */
    }
    cryptod_keyring_t *ring = cryptod_keyring_open (NULL, env_ring);
    char id[17] = "";
    int rc = -1;
    if (!ring) {
        fprintf (stderr, "safeshare: SAFESHARE_KEK_RING is not a valid KEK ring (see the "
                         "log line above)\n");
    } else if (cryptod_keyring_add (ring, id) != 0) {
        fprintf (stderr, "safeshare: cannot make a new KEK\n");
    } else {
        fprintf (out,
                 "KEK %s is now current in the ring below (SAFESHARE_KEK_RING is set: "
                 "no kek.ring written)\n"
                 "set it where safeshare-crypto takes its environment and restart it:\n",
                 id);
        rc = s_print_env_ring (ring, out);
    }
    cryptod_keyring_destroy (&ring);
    return rc;
}

static int
s_kek (const char *dir, bool new_kek, FILE *out)
{
    char path[S_PATH_SIZE];
    if (s_path (path, dir, S_KEK_FILE) != 0) {
        return -1;
    }
    if (!new_kek && s_exists (path)) {
        return 0;
    }
    char id[17] = "";
    if (cryptod_keyring_generate (path, id) != 0) {
        fprintf (stderr, "safeshare: cannot add a KEK to %s (see the log line above)\n",
                 path);
        return -1;
    }
    fprintf (out, "KEK %s is now current\n", id);
    return 0;
}

typedef struct {
    char priv[S_PATH_SIZE];
    char pub[S_PATH_SIZE];
    bool have_priv, have_pub;
} s_jwt_t;

/* Looks before anything is written: a half pair fails the whole command
   before a KEK is added.                                              */
static int
s_jwt_check (const char *dir, s_jwt_t *j)
{
    if (s_path (j->priv, dir, S_JWT_PRIV) != 0 || s_path (j->pub, dir, S_JWT_PUB) != 0) {
        return -1;
    }
    j->have_priv = s_exists (j->priv);
    j->have_pub = s_exists (j->pub);
    if (j->have_priv != j->have_pub) {
        fprintf (stderr,
                 "safeshare: %s exists but %s does not; restore it, or remove both to "
                 "make a new pair (this signs out every user)\n",
                 j->have_priv ? j->priv : j->pub, j->have_priv ? j->pub : j->priv);
        return -1;
    }
    return 0;
}

static int
s_jwt_make (const char *dir, const s_jwt_t *j, FILE *out)
{
    if (j->have_priv && j->have_pub) {
        fprintf (out, "JWT signing key %s kept\n", j->priv);
        return 0;
    }
    if (cm_jwt_keygen (j->priv, j->pub) != 0) {
        fprintf (stderr, "safeshare: cannot create the JWT key pair in %s\n", dir);
        return -1;
    }
    fprintf (out, "JWT signing key pair written to %s (public %s)\n", j->priv, j->pub);
    return 0;
}

int
cli_keys_prepare (cm_config_t *config, bool new_kek, FILE *out)
{
    const char *dir = cm_config_get (config, "SAFESHARE_KEY_DIR");
    if (!dir) {
        fprintf (stderr, "safeshare: SAFESHARE_KEY_DIR is not set\n");
        return -1;
    }
    const char *env_ring = cm_config_get (config, "SAFESHARE_KEK_RING");
    s_jwt_t jwt;
    if (s_key_dir (dir) != 0 || s_jwt_check (dir, &jwt) != 0) {
        return -1;
    }
    int rc = env_ring ? s_kek_env (env_ring, new_kek, out) : s_kek (dir, new_kek, out);
    if (rc != 0 || s_jwt_make (dir, &jwt, out) != 0) {
        return -1;
    }
    fflush (out);
    return 0;
}

/* The kid of the key in a PEM file (the private key: a secret, wiped
   after use). 0 / -1 (said on stderr).                                */
static int
s_kid_of_file (const char *path, char kid[CM_JWT_KID_LEN + 1])
{
    size_t len = 0;
    char *pem = cm_file_read (path, S_PEM_MAX, &len);
    if (!pem) {
        fprintf (stderr, "safeshare: cannot read %s: %s\n", path, strerror (errno));
        return -1;
    }
    int rc = cm_jwt_kid ((const unsigned char *)pem, len, kid);
    cm_secret_free (pem, len);
    if (rc != 0) {
        fprintf (stderr, "safeshare: %s is not a P-256 key\n", path);
    }
    return rc;
}

int
cli_keys_rotate_jwt (cm_config_t *config, FILE *out)
{
    const char *dir = cm_config_get (config, "SAFESHARE_KEY_DIR");
    if (!dir) {
        fprintf (stderr, "safeshare: SAFESHARE_KEY_DIR is not set\n");
        return -1;
    }
    /* Never creates the dir: without a key there is nothing to rotate. */
    struct stat st;
    if (stat (dir, &st) != 0) {
        fprintf (stderr,
                 "safeshare: keys rotate-jwt: no key directory %s; run `safeshare keys "
                 "generate` to make the first JWT signing key\n",
                 dir);
        return -1;
    }
    s_jwt_t jwt;
    if (s_key_dir (dir) != 0 || s_jwt_check (dir, &jwt) != 0) {
        return -1;
    }
    if (!jwt.have_priv) {
        fprintf (stderr,
                 "safeshare: keys rotate-jwt: no JWT signing key in %s yet; run "
                 "`safeshare keys generate` to make the first one\n",
                 dir);
        return -1;
    }
    /* The current key must be one: a damaged file is reported, not
       silently replaced (remove both halves and `keys generate`). */
    char old_kid[CM_JWT_KID_LEN + 1], new_kid[CM_JWT_KID_LEN + 1];
    if (s_kid_of_file (jwt.priv, old_kid) != 0) {
        return -1;
    }
    if (cm_jwt_keygen (jwt.priv, jwt.pub) != 0) {
        fprintf (stderr, "safeshare: keys rotate-jwt: cannot write the new pair in %s\n",
                 dir);
        return -1;
    }
    if (s_kid_of_file (jwt.priv, new_kid) != 0) {
        return -1;
    }
    fprintf (out,
             "JWT signing key rotated: old kid %s, new kid %s\n"
             "new pair written to %s (public %s)\n"
             "a running auth signs with it within 5 s; tokens signed with the old key "
             "stay valid until they expire\n",
             old_kid, new_kid, jwt.priv, jwt.pub);
    fflush (out);
    return 0;
}

/* ---- KEK commands: list, rotate, retire ------------------------------ */

/* A running broker checks kek.ring every 2 s: an upload that began this
   long after the ring changed got its DEK from the new ring.           */
#define S_RING_RELOAD_MARGIN_S 10
/* Rotation passes: another pass picks up rows committed under an older
   KEK while one ran (uploads that began before the rotation).         */
#define S_MAX_PASSES 10
/* Tries of one conditional replace while the DB answers busy.          */
#define S_BUSY_TRIES 5
/* No pending row's created_at reaches this (a BIGINT for PostgreSQL). */
#define S_ALL_PENDING ((uint64_t)INT64_MAX)

cryptod_keyring_t *
cli_keys_ring (cm_config_t *config, const char *cmd, bool *from_env)
{
    const char *env_ring = cm_config_get (config, "SAFESHARE_KEK_RING");
    const char *dir = cm_config_get (config, "SAFESHARE_KEY_DIR");
    *from_env = env_ring != NULL;
    cryptod_keyring_t *ring = cryptod_keyring_open (dir, env_ring);
    if (!ring) {
        if (env_ring) {
            fprintf (stderr,
                     "safeshare: %s: SAFESHARE_KEK_RING is not a valid KEK ring (see the "
                     "log line above)\n",
                     cmd);
        } else {
            fprintf (stderr,
                     "safeshare: %s: cannot load the KEK ring %s/%s (see the log line "
                     "above)\n",
                     cmd, dir ? dir : "(no SAFESHARE_KEY_DIR)", S_KEK_FILE);
        }
    }
    return ring;
}

/* stord_meta_kek_counts, said on stderr when it fails. 0 / -1.        */
static int
s_kek_counts (stord_meta_t *meta, const char *cmd, uint64_t pending_before,
              stord_kek_count_t **counts, size_t *n, uint64_t *pending)
{
    if (stord_meta_kek_counts (meta, NULL, pending_before, counts, n, pending) != CM_OK) {
        fprintf (stderr, "safeshare: %s: cannot count the stored DEKs\n", cmd);
        return -1;
    }
    return 0;
}

static uint64_t
s_count_of (const stord_kek_count_t *c, size_t n, const char *kek_id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp (c[i].kek_id, kek_id) == 0) {
            return c[i].count;
        }
    }
    return 0;
}

/* DEKs not under the current KEK. */
static uint64_t
s_off_current (const stord_kek_count_t *c, size_t n, const char *current)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += strcmp (c[i].kek_id, current) != 0 ? c[i].count : 0;
    }
    return sum;
}

int
cli_keys_list (cm_config_t *config, FILE *out)
{
    bool env = false;
    int rc = 1;
    stord_meta_t *meta = NULL;
    stord_kek_count_t *counts = NULL;
    size_t n = 0;
    uint64_t pending = 0;
    cryptod_keyring_t *ring = cli_keys_ring (config, "keys list", &env);
    if (!ring) {
        return 1;
    }
    meta = cli_store_meta (config, "keys list");
    if (!meta) {
        goto cleanup;
    }
    if (s_kek_counts (meta, "keys list", S_ALL_PENDING, &counts, &n, &pending) != 0) {
        goto cleanup;
    }
    if (env) {
        fprintf (out, "ring: SAFESHARE_KEK_RING (environment)\n");
    } else {
        fprintf (out, "ring: %s/%s\n", cm_config_get (config, "SAFESHARE_KEY_DIR"),
                 S_KEK_FILE);
    }
    fprintf (out, "%-16s  %-7s  %s\n", "KEK", "CURRENT", "DEKS");
    const char *current = cryptod_keyring_current (ring);
    for (size_t i = 0; i < cryptod_keyring_size (ring); i++) {
        const char *id = cryptod_keyring_id (ring, i);
        fprintf (out, "%-16s  %-7s  %llu\n", id, strcmp (id, current) == 0 ? "yes" : "no",
                 (unsigned long long)s_count_of (counts, n, id));
    }
    /* A DEK under a KEK the ring lacks cannot be unwrapped: say so.    */
    uint64_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cryptod_keyring_has (ring, counts[i].kek_id)) {
            fprintf (out, "%-16s  %-7s  %llu\n", counts[i].kek_id, "MISSING",
                     (unsigned long long)counts[i].count);
            missing += counts[i].count;
        }
    }
    if (pending > 0) {
        fprintf (out,
                 "%llu upload(s) in progress: their DEK is stored when they finish\n",
                 (unsigned long long)pending);
    }
    fflush (out);
    if (missing > 0) {
        fprintf (
            stderr,
            "safeshare: keys list: %llu stored DEK(s) are under a KEK the ring does "
            "not hold (MISSING above): those files cannot be decrypted until the KEK "
            "is put back\n",
            (unsigned long long)missing);
        goto cleanup;
    }
    rc = 0;
cleanup:
    free (counts);
    stord_meta_destroy (&meta);
    cryptod_keyring_destroy (&ring);
    return rc;
}

typedef struct {
    uint64_t total;                   /* DEKs off the current KEK when rewrap began */
    uint64_t rewrapped;               /* replaced by us */
    uint64_t skipped;                 /* deleted or changed by someone else meanwhile */
    char (*failed)[STORD_ID_HEX + 1]; /* files whose DEK would not unwrap */
    size_t nfailed, capfailed;
    bool interrupted;
} s_rewrap_t;

static bool
s_failed_before (const s_rewrap_t *r, const char *id)
{
    for (size_t i = 0; i < r->nfailed; i++) {
        if (strcmp (r->failed[i], id) == 0) {
            return true;
        }
    }
    return false;
}

static void
s_fail_row (s_rewrap_t *r, const stord_wrapped_t *row, const cryptod_keyring_t *ring)
{
    fprintf (stderr, "safeshare: keys rotate: file %s: cannot unwrap its DEK (%s)\n",
             row->id,
             cryptod_keyring_has (ring, row->kek_id)
                 ? "the wrapped DEK does not authenticate: damaged"
                 : "its KEK is not in the ring");
    if (r->nfailed == r->capfailed) {
        size_t cap = r->capfailed ? r->capfailed * 2 : 16;
        void *p = realloc (r->failed, cap * sizeof *r->failed);
        if (!p) {
            return; /* only costs a repeated message in a later pass */
        }
        r->failed = p;
        r->capfailed = cap;
    }
    memcpy (r->failed[r->nfailed++], row->id, STORD_ID_HEX + 1);
}

static void
s_pause (unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    /* A signal ends the pause early: the loop then sees it.            */
    nanosleep (&ts, NULL);
}

/* One row: unwrap + wrap (cryptod_dek_rewrap), then the conditional
   replace. 0 done / skipped / failed-and-recorded, -1 the DB failed.  */
static int
s_rewrap_row (stord_meta_t *meta, const cryptod_keyring_t *ring,
              const stord_wrapped_t *row, s_rewrap_t *r)
{
    uint8_t wrapped[CRYPTOD_WRAPPED_DEK_LEN];
    size_t wlen = sizeof wrapped;
    char kek_id[17];
    if (s_failed_before (r, row->id)) {
        return 0;
    }
    if (cryptod_dek_rewrap (ring, row->kek_id, row->id, row->wrapped_dek,
                            row->wrapped_dek_len, kek_id, wrapped, &wlen) != 0) {
        s_fail_row (r, row, ring);
        return 0;
    }
    cm_status_t st = CM_UNAVAILABLE;
    for (int t = 0; t < S_BUSY_TRIES && st == CM_UNAVAILABLE; t++) {
        st = stord_meta_rewrap_replace (meta, NULL, row, kek_id, wrapped, wlen);
    }
    if (st == CM_OK) {
        r->rewrapped++;
    } else if (st == CM_CONFLICT) {
        r->skipped++;
    } else {
        fprintf (stderr, "safeshare: keys rotate: the storage database failed (%s)\n",
                 cm_status_name (st));
        return -1;
    }
    return 0;
}

/* Every DEK not under the current KEK, in passes over the table by id,
   `batch` rows at a time. 0, or -1 (said on stderr; r->interrupted
   when it was a signal).                                              */
static int
s_rewrap_all (stord_meta_t *meta, const cryptod_keyring_t *ring, unsigned batch,
              unsigned pause_ms, FILE *out, s_rewrap_t *r)
{
    const char *current = cryptod_keyring_current (ring);
    for (int pass = 0; pass < S_MAX_PASSES; pass++) {
        char after[STORD_ID_HEX + 1] = "";
        uint64_t before = r->rewrapped + r->skipped;
        for (;;) {
            stord_wrapped_t *rows = NULL;
            size_t count = 0;
            if (stord_meta_rewrap_batch (meta, NULL, current, after, batch, &rows,
                                         &count) != CM_OK) {
                fprintf (stderr, "safeshare: keys rotate: cannot read the stored DEKs\n");
                return -1;
            }
            if (count == 0) {
                break;
            }
            for (size_t i = 0; i < count; i++) {
                /* Between rows: each replace is one statement, so every
                   row is old or new whatever stops us.                */
                if (cm_service_stopping ()) {
                    r->interrupted = true;
                    free (rows);
                    return -1;
                }
                memcpy (after, rows[i].id, sizeof after);
                if (s_rewrap_row (meta, ring, &rows[i], r) != 0) {
                    free (rows);
                    return -1;
                }
            }
            free (rows);
            fprintf (out, "rewrapped %llu of %llu DEKs\n",
                     (unsigned long long)r->rewrapped, (unsigned long long)r->total);
            fflush (out);
            if (pause_ms > 0 && !cm_service_stopping ()) {
                s_pause (pause_ms);
            }
        }
        if (r->rewrapped + r->skipped == before) {
            break; /* a pass that found nothing new to do */
        }
    }
    return 0;
}

int
cli_keys_rotate (cm_config_t *config, bool resume, unsigned batch, unsigned pause_ms,
                 FILE *out)
{
    bool env = false;
    int rc = 1;
    stord_meta_t *meta = NULL;
    stord_kek_count_t *counts = NULL;
    size_t n = 0;
    uint64_t pending = 0;
    s_rewrap_t r = {0};
    char path[S_PATH_SIZE] = "";
    cryptod_keyring_t *ring = cli_keys_ring (config, "keys rotate", &env);
    if (!ring) {
        return 1;
    }
    /* The DB first: no new KEK when there is nowhere to rewrap.        */
    meta = cli_store_meta (config, "keys rotate");
    if (!meta) {
        goto cleanup;
    }
    if (!resume && env) {
        char id[17];
        if (cryptod_keyring_add (ring, id) != 0) {
            fprintf (stderr, "safeshare: keys rotate: cannot make a new KEK\n");
            goto cleanup;
        }
        /* Out before any DEK is rewrapped: they will need this value. */
        fprintf (out,
                 "KEK %s is now current in the ring below (SAFESHARE_KEK_RING is set: "
                 "no kek.ring written)\n"
                 "keep this value: the rewrapped DEKs need it; set it where "
                 "safeshare-crypto takes its environment and restart it (until then it "
                 "cannot open files rewrapped below):\n",
                 id);
        if (s_print_env_ring (ring, out) != 0) {
            goto cleanup;
        }
    } else if (!resume) {
        const char *dir = cm_config_get (config, "SAFESHARE_KEY_DIR");
        char id[17] = "";
        if (s_key_dir (dir) != 0 || s_path (path, dir, S_KEK_FILE) != 0) {
            goto cleanup;
        }
        if (cryptod_keyring_generate (path, id) != 0) {
            fprintf (stderr,
                     "safeshare: keys rotate: cannot add a KEK to %s (see the log line "
                     "above)\n",
                     path);
            goto cleanup;
        }
        cryptod_keyring_destroy (&ring);
        ring = cryptod_keyring_load (path);
        if (!ring || strcmp (cryptod_keyring_current (ring), id) != 0) {
            fprintf (stderr,
                     "safeshare: keys rotate: %s changed under us; run `safeshare "
                     "keys rotate --resume`\n",
                     path);
            goto cleanup;
        }
        fprintf (out,
                 "KEK %s is now current (a running safeshare-crypto loads %s within "
                 "seconds)\n",
                 id, path);
    }
    const char *current = cryptod_keyring_current (ring);
    if (s_kek_counts (meta, "keys rotate", S_ALL_PENDING, &counts, &n, &pending) != 0) {
        goto cleanup;
    }
    r.total = s_off_current (counts, n, current);
    free (counts);
    counts = NULL;
    fprintf (out, "rewrapping %llu DEKs to KEK %s\n", (unsigned long long)r.total,
             current);
    fflush (out);
    if (s_rewrap_all (meta, ring, batch, pause_ms, out, &r) != 0) {
        if (r.interrupted) {
            fprintf (stderr,
                     "safeshare: keys rotate: interrupted after %llu DEKs; every stored "
                     "DEK is under its old KEK or under %s: run `safeshare keys rotate "
                     "--resume` to finish\n",
                     (unsigned long long)r.rewrapped, current);
        }
        goto cleanup;
    }
    /* SQLite: the old wrapped DEKs out of the WAL too.                 */
    stord_meta_scrub (meta);
    if (s_kek_counts (meta, "keys rotate", S_ALL_PENDING, &counts, &n, &pending) != 0) {
        goto cleanup;
    }
    uint64_t left = s_off_current (counts, n, current);
    fprintf (out, "done: %llu rewrapped, %llu skipped (deleted or changed meanwhile)\n",
             (unsigned long long)r.rewrapped, (unsigned long long)r.skipped);
    if (pending > 0) {
        fprintf (out,
                 "%llu upload(s) in progress may still store a DEK under an older KEK: "
                 "`safeshare keys list` shows it, `keys rotate --resume` rewraps it\n",
                 (unsigned long long)pending);
    }
    if (left > 0) {
        fprintf (stderr,
                 "safeshare: keys rotate: %llu DEK(s) are still under other KEKs (%zu "
                 "could not be unwrapped, listed above)\n",
                 (unsigned long long)left, r.nfailed);
        goto cleanup;
    }
    fprintf (out, "every stored DEK is under KEK %s\n", current);
    rc = 0;
cleanup:
    fflush (out);
    free (counts);
    free (r.failed);
    stord_meta_destroy (&meta);
    cryptod_keyring_destroy (&ring);
    return rc;
}

int
cli_keys_retire (cm_config_t *config, const char *kek_id, FILE *out)
{
    bool env = false;
    int rc = 1;
    stord_meta_t *meta = NULL;
    stord_kek_count_t *counts = NULL;
    size_t n = 0;
    uint64_t pending = 0;
    char path[S_PATH_SIZE] = "";
    cryptod_keyring_t *ring = cli_keys_ring (config, "keys retire", &env);
    if (!ring) {
        return 1;
    }
    if (!cryptod_keyring_has (ring, kek_id)) {
        fprintf (stderr,
                 "safeshare: keys retire: KEK %s is not in the ring (see `keys "
                 "list`)\n",
                 kek_id);
        goto cleanup;
    }
    if (strcmp (cryptod_keyring_current (ring), kek_id) == 0) {
        fprintf (stderr,
                 "safeshare: keys retire: KEK %s is the current KEK: `safeshare keys "
                 "rotate` makes a new one first\n",
                 kek_id);
        goto cleanup;
    }
    /* Uploads that began before the ring last changed may hold a DEK
       under this KEK that storage has not seen yet (the gateway keeps it
       until FILE_COMMIT). With an env ring we cannot know when the
       broker got the new ring: every pending upload counts.           */
    uint64_t pending_before = S_ALL_PENDING;
    if (!env) {
        const char *dir = cm_config_get (config, "SAFESHARE_KEY_DIR");
        struct stat st;
        if (s_path (path, dir, S_KEK_FILE) != 0 || stat (path, &st) != 0) {
            fprintf (stderr, "safeshare: keys retire: cannot stat %s\n", path);
            goto cleanup;
        }
        pending_before = (uint64_t)st.st_mtime + S_RING_RELOAD_MARGIN_S;
    }
    meta = cli_store_meta (config, "keys retire");
    if (!meta) {
        goto cleanup;
    }
    if (s_kek_counts (meta, "keys retire", pending_before, &counts, &n, &pending) != 0) {
        goto cleanup;
    }
    uint64_t used = s_count_of (counts, n, kek_id);
    if (used > 0) {
        fprintf (stderr,
                 "safeshare: keys retire: KEK %s still wraps %llu stored DEK(s): run "
                 "`safeshare keys rotate --resume` first\n",
                 kek_id, (unsigned long long)used);
        goto cleanup;
    }
    if (pending > 0) {
        fprintf (stderr,
                 "safeshare: keys retire: %llu upload(s) in progress began before the "
                 "ring last changed and may still store a DEK under KEK %s: retry when "
                 "they have finished (an abandoned one is swept after an hour), then "
                 "`keys rotate --resume` if `keys list` shows DEKs under it\n",
                 (unsigned long long)pending, kek_id);
        goto cleanup;
    }
    if (env) {
        if (cryptod_keyring_remove (ring, kek_id) != 0) {
            goto cleanup;
        }
        fprintf (out,
                 "KEK %s retired from the ring below (SAFESHARE_KEK_RING is set: no "
                 "kek.ring written); set it and restart safeshare-crypto:\n",
                 kek_id);
        if (s_print_env_ring (ring, out) != 0) {
            goto cleanup;
        }
    } else {
        if (cryptod_keyring_retire (path, kek_id) != 0) {
            fprintf (
                stderr,
                "safeshare: keys retire: cannot rewrite %s (see the log line above)\n",
                path);
            goto cleanup;
        }
        fprintf (out, "KEK %s retired: %zu KEK(s) left in %s, current %s\n", kek_id,
                 cryptod_keyring_size (ring) - 1, path, cryptod_keyring_current (ring));
    }
    rc = 0;
cleanup:
    fflush (out);
    free (counts);
    stord_meta_destroy (&meta);
    cryptod_keyring_destroy (&ring);
    return rc;
}

/* ---- keys service-gen ------------------------------------------------ */

/* czmq's zcert text format (ZPL), which zcert_load and zauth read. Our
   own writer rather than zcert_save_secret: that one narrows the
   process umask around a plain fopen, so a file that already exists
   (--force) keeps its old mode.                                       */
static int
s_cert_text (char *buf, size_t len, const char *name, zcert_t *cert, bool secret)
{
    int n = snprintf (
        buf, len,
        "#   ****  Generated by safeshare keys service-gen  ****\n"
        "#   ZeroMQ CURVE %s Certificate of the safeshare service \"%s\"\n"
        "#   %s\n"
        "metadata\n"
        "    name = \"%s\"\n"
        "curve\n"
        "    public-key = \"%s\"\n"
        "%s%s%s",
        secret ? "**Secret**" : "Public", name,
        secret ? "DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions."
               : "Give this file to the services that accept or call this one.",
        name, zcert_public_txt (cert), secret ? "    secret-key = \"" : "",
        secret ? zcert_secret_txt (cert) : "", secret ? "\"\n" : "");
    return n > 0 && (size_t)n < len ? n : -1;
}

int
cli_keys_service_gen (cm_config_t *config, const char *name, const char *dir, bool force,
                      FILE *out)
{
    char def[S_PATH_SIZE], pub[S_PATH_SIZE], sec[S_PATH_SIZE], file[S_PATH_SIZE];
    char text[1024];
    int rc = 1;
    zcert_t *cert = NULL;
    if (!cm_curve_name_valid (name)) {
        fprintf (stderr, "safeshare: keys service-gen: NAME must be 1..%d of [a-z0-9-]\n",
                 CM_CURVE_NAME_MAX);
        return 1;
    }
    if (!dir) {
        if (s_path (def, cm_config_get (config, "SAFESHARE_KEY_DIR"), "curve") != 0) {
            return 1;
        }
        dir = def;
    }
    snprintf (file, sizeof file, "%s.key", name);
    if (s_path (pub, dir, file) != 0) {
        return 1;
    }
    snprintf (file, sizeof file, "%s.key_secret", name);
    if (s_path (sec, dir, file) != 0) {
        return 1;
    }
    if (cm_mkdirs (dir, 0700) != 0) {
        fprintf (stderr, "safeshare: cannot create key directory %s: %s\n", dir,
                 strerror (errno));
        return 1;
    }
    if (!force && (s_exists (pub) || s_exists (sec))) {
        fprintf (stderr,
                 "safeshare: %s already exists: a service's key is not replaced "
                 "(--force replaces it)\n",
                 s_exists (sec) ? sec : pub);
        return 1;
    }
    cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "safeshare: zcert_new() failed\n");
        return 1;
    }
    int n = s_cert_text (text, sizeof text, name, cert, true);
    if (n < 0 || cm_file_write_atomic (sec, text, (size_t)n, 0600) != 0) {
        fprintf (stderr, "safeshare: cannot write %s (see the log above)\n", sec);
        goto cleanup;
    }
    n = s_cert_text (text, sizeof text, name, cert, false);
    if (n < 0 || cm_file_write_atomic (pub, text, (size_t)n, 0644) != 0) {
        fprintf (stderr, "safeshare: cannot write %s (see the log above)\n", pub);
        goto cleanup;
    }
    fprintf (out, "%s\n", zcert_public_txt (cert));
    rc = fflush (out) == 0 ? 0 : 1;
cleanup:
    OPENSSL_cleanse (text, sizeof text);
    if (cert) {
        OPENSSL_cleanse ((void *)zcert_secret_key (cert), 32);
        OPENSSL_cleanse ((void *)zcert_secret_txt (cert), 40);
        zcert_destroy (&cert);
    }
    return rc;
}
