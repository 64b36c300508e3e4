/*  maild_drop -- one .eml file per delivered job, written durably.      */
#include "maild_drop.h"
#include "cm_config.h"
#include "cm_log.h"
#include "cm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *dir;
} s_drop_t;

/* fsync of an existing path (file or directory). 0 / -1 with errno. */
static int
s_fsync_path (const char *path, int flags)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync (fd);
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

static maild_result_t
s_deliver (void *impl, const char *req, const char *job_id, const char *to,
           const char *data, size_t len, char *err, size_t errlen)
{
    s_drop_t *self = impl;
    (void)to; /* the recipient is in the To header; a drop has no envelope */
    if (!cm_is_hex_id (job_id, 32)) {
        /* The name of the file comes from it: never trust the caller. */
        snprintf (err, errlen, "job id is not 32 hex");
        return MAILD_FAILED;
    }
    char path[4096];
    int n = snprintf (path, sizeof path, "%s/%s.eml", self->dir, job_id);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf (err, errlen, "mail path too long");
        return MAILD_FAILED;
    }
    struct stat st;
    if (lstat (path, &st) == 0) {
        if (!S_ISREG (st.st_mode)) {
            snprintf (err, errlen, "%s exists and is not a regular file", path);
            return MAILD_RETRY;
        }
        /* Delivered before (the result was not recorded: a crash). The
           earlier writer may have died between rename and the directory
           fsync, so make the name durable before saying so.            */
        if (s_fsync_path (path, 0) != 0 || s_fsync_path (self->dir, O_DIRECTORY) != 0) {
            snprintf (err, errlen, "fsync(%s): %s", path, strerror (errno));
            return MAILD_RETRY;
        }
        cm_info (req, "mail already dropped job=%s path=%s", job_id, path);
        return MAILD_DELIVERED;
    }
    if (errno != ENOENT) {
        snprintf (err, errlen, "lstat(%s): %s", path, strerror (errno));
        return MAILD_RETRY;
    }
    if (cm_file_write_atomic (path, data, len, 0600) != 0) {
        /* cm_file_write_atomic logged the failing call; disk full or an
           I/O error may pass: retry with backoff.                        */
        snprintf (err, errlen, "writing %s failed: %s", path, strerror (errno));
        return MAILD_RETRY;
    }
    cm_info (req, "mail dropped job=%s path=%s bytes=%zu", job_id, path, len);
    return MAILD_DELIVERED;
}

static void
s_destroy (void **impl_p)
{
    if (impl_p && *impl_p) {
        s_drop_t *self = *impl_p;
        free (self->dir);
        free (self);
        *impl_p = NULL;
    }
}

static const maild_transport_ops_t s_ops = {
    .name = "drop",
    .deliver = s_deliver,
    .destroy = s_destroy,
};

maild_transport_t *
maild_drop_new (const char *dir, char *err, size_t errlen)
{
    if (!dir || !*dir) {
        snprintf (err, errlen, "SAFESHARE_MAIL_DIR is empty");
        return NULL;
    }
    if (strlen (dir) > 3000) {
        snprintf (err, errlen, "SAFESHARE_MAIL_DIR is too long");
        return NULL;
    }
    if (cm_mkdirs (dir, 0700) != 0) {
        snprintf (err, errlen, "cannot create mail dir %s: %s", dir, strerror (errno));
        return NULL;
    }
    struct stat st;
    if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
        snprintf (err, errlen, "mail dir %s is not a directory", dir);
        return NULL;
    }
    if (access (dir, W_OK | X_OK) != 0) {
        snprintf (err, errlen, "mail dir %s is not writable: %s", dir, strerror (errno));
        return NULL;
    }
    s_drop_t *drop = calloc (1, sizeof *drop);
    if (!drop || !(drop->dir = strdup (dir))) {
        free (drop);
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    /* A trailing slash would only make the logged paths ugly. */
    size_t len = strlen (drop->dir);
    while (len > 1 && drop->dir[len - 1] == '/') {
        drop->dir[--len] = '\0';
    }
    void *impl = drop;
    maild_transport_t *self = maild_transport_new (&s_ops, &impl);
    if (!self) {
        s_destroy (&impl);
        snprintf (err, errlen, "out of memory");
    }
    return self;
}
