/*  cryptod_ringwatch -- KEK ring reload. See cryptod_ringwatch.h.       */
#include "cryptod_ringwatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cm_log.h"
#include "cm_util.h"

/* What tells us the file changed: a rename (keys rotate writes a temp
   file and renames it) gives a new inode; an edit in place changes the
   size or the times.                                                   */
typedef struct {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
} s_stamp_t;

struct cryptod_ringwatch_t {
    cryptod_keyring_t *ring;
    char *path; /* NULL: env ring, fixed */
    s_stamp_t stamp;
    uint64_t checked_ms;
};

static s_stamp_t
s_stamp (const char *path)
{
    s_stamp_t s;
    memset (&s, 0, sizeof s);
    struct stat st;
    if (stat (path, &st) == 0) {
        s.exists = true;
        s.dev = st.st_dev;
        s.ino = st.st_ino;
        s.size = st.st_size;
        s.mtime = st.st_mtim;
        s.ctime = st.st_ctim;
    }
    return s;
}

static bool
s_stamp_equal (const s_stamp_t *a, const s_stamp_t *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
           a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

cryptod_ringwatch_t *
cryptod_ringwatch_new (const char *key_dir, const char *env_ring)
{
    cryptod_ringwatch_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->checked_ms = cm_mono_ms ();
    if (env_ring && *env_ring) {
        self->ring = cryptod_keyring_open (NULL, env_ring);
    } else {
        char path[4096];
        if (cryptod_keyring_path (key_dir, path, sizeof path) != 0) {
            cm_error (NULL, "KEK ring: no key dir, or its path is too long");
            goto fail;
        }
        self->path = strdup (path);
        if (!self->path) {
            goto fail;
        }
        /* Stamp first: a change racing the load is seen at the next
           check (one spare reload) rather than missed.                 */
        self->stamp = s_stamp (self->path);
        self->ring = cryptod_keyring_load (self->path);
    }
    if (!self->ring) {
        goto fail;
    }
    return self;
fail:
    cryptod_ringwatch_destroy (&self);
    return NULL;
}

void
cryptod_ringwatch_destroy (cryptod_ringwatch_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    cryptod_ringwatch_t *self = *self_p;
    cryptod_keyring_destroy (&self->ring);
    free (self->path);
    free (self);
    *self_p = NULL;
}

const cryptod_keyring_t *
cryptod_ringwatch_ring (cryptod_ringwatch_t *self)
{
    return self->ring;
}

const char *
cryptod_ringwatch_path (cryptod_ringwatch_t *self)
{
    return self->path;
}

int
cryptod_ringwatch_check (cryptod_ringwatch_t *self, uint64_t min_interval_ms)
{
    uint64_t now = cm_mono_ms ();
    if (!self->path || now - self->checked_ms < min_interval_ms) {
        return 0;
    }
    self->checked_ms = now;
    s_stamp_t stamp = s_stamp (self->path);
    if (s_stamp_equal (&stamp, &self->stamp)) {
        return 0;
    }
    /* Remembered either way: a bad file is reported once, not every
       2 s, and tried again when it changes.                           */
    self->stamp = stamp;
    cryptod_keyring_t *ring = cryptod_keyring_load (self->path);
    if (!ring) {
        cm_error (NULL,
                  "KEK ring %s changed but does not load: keeping the ring in use "
                  "(%zu keys, current %s)",
                  self->path, cryptod_keyring_size (self->ring),
                  cryptod_keyring_current (self->ring));
        return -1;
    }
    cm_info (NULL, "KEK ring %s reloaded: %zu keys, current %s", self->path,
             cryptod_keyring_size (ring), cryptod_keyring_current (ring));
    cryptod_keyring_destroy (&self->ring);
    self->ring = ring;
    return 1;
}
