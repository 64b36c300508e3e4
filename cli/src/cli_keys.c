/*  cli_keys -- the local key material under SAFESHARE_KEY_DIR.          */
#include "cli_keys.h"
#include "cm_jwt.h"
#include "cryptod_keyring.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_KEK_FILE  "kek.ring"
#define S_JWT_PRIV  "jwt-es256.pem"
#define S_JWT_PUB   "jwt-es256.pub"
#define S_PATH_SIZE 4096

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
