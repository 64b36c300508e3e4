/*  cli_keys -- the local key material under SAFESHARE_KEY_DIR.          */
#include "cli_keys.h"
#include "cm_jwt.h"
#include "cm_util.h"
#include "cryptod_keyring.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
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
    s_jwt_t jwt;
    if (s_key_dir (dir) != 0 || s_jwt_check (dir, &jwt) != 0 ||
        s_kek (dir, new_kek, out) != 0 || s_jwt_make (dir, &jwt, out) != 0) {
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
