/*  stord_disk -- the disk blob backend (see stord_disk.h for the layout). */
#include "stord_disk.h"
#include "cm_config.h"
#include "cm_log.h"
#include "cm_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORD_ID_LEN 32
/* Bytes compared per step when checking a repeated append.             */
#define S_CMP_BUF (64 * 1024)

typedef struct {
    char *dir;
    char *tmp_dir;
} s_disk_t;

static int
s_pending_path (s_disk_t *self, const char *id, char *out, size_t outlen)
{
    int n = snprintf (out, outlen, "%s/%s.part", self->tmp_dir, id);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static int
s_shard_path (s_disk_t *self, const char *id, char *out, size_t outlen)
{
    int n = snprintf (out, outlen, "%s/%.2s", self->dir, id);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static int
s_committed_path (s_disk_t *self, const char *id, char *out, size_t outlen)
{
    int n = snprintf (out, outlen, "%s/%.2s/%s", self->dir, id, id);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* Ids become paths: refuse anything but 32 lowercase hex (the service
   validated already; this is the backend's own guard).                */
static bool
s_id_ok (const char *req, const char *id)
{
    if (id && cm_is_hex_id (id, STORD_ID_LEN)) {
        return true;
    }
    cm_error (req, "stord_disk: refused a blob id that is not 32 hex");
    return false;
}

static int
s_fsync_dir (const char *req, const char *dir)
{
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        cm_error (req, "open(%s) failed: %s", dir, strerror (errno));
        return -1;
    }
    int rc = fsync (fd);
    if (rc != 0) {
        cm_error (req, "fsync(%s) failed: %s", dir, strerror (errno));
    }
    close (fd);
    return rc == 0 ? 0 : -1;
}

static int
s_pwrite_all (int fd, const uint8_t *data, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pwrite (fd, data, len, (off_t)offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

/* 0 on success, 1 at end of file before len bytes, -1 on error.        */
static int
s_pread_all (int fd, uint8_t *buf, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pread (fd, buf, len, (off_t)offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            return 1;
        }
        buf += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static stord_rc_t
s_begin (void *impl, const char *req, const char *id)
{
    s_disk_t *self = impl;
    char path[PATH_MAX];
    if (!s_id_ok (req, id) || s_pending_path (self, id, path, sizeof path) != 0) {
        return STORD_ERROR;
    }
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            return STORD_EXISTS;
        }
        cm_error (req, "open(%s) failed: %s", path, strerror (errno));
        return STORD_ERROR;
    }
    close (fd);
    return STORD_OK;
}

/* A retry of the last append (same offset, same bytes) is OK: the caller
   may have lost our reply. Compared in pieces to keep memory bounded.  */
static stord_rc_t
s_same_bytes (int fd, const char *req, const uint8_t *data, size_t len, uint64_t offset)
{
    uint8_t *buf = malloc (S_CMP_BUF);
    if (!buf) {
        return STORD_ERROR;
    }
    stord_rc_t rc = STORD_OK;
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < S_CMP_BUF ? len - done : S_CMP_BUF;
        int r = s_pread_all (fd, buf, n, offset + done);
        if (r < 0) {
            cm_error (req, "pread() failed: %s", strerror (errno));
            rc = STORD_ERROR;
            break;
        }
        if (r > 0 || memcmp (buf, data + done, n) != 0) {
            rc = STORD_MISMATCH;
            break;
        }
        done += n;
    }
    free (buf);
    return rc;
}

/* open(2) with the backend's answer: NOT_FOUND for a missing file, an
   ERROR logged once for anything else.                                 */
static stord_rc_t
s_open (const char *req, const char *path, int flags, int *fd)
{
    *fd = open (path, flags | O_CLOEXEC);
    if (*fd >= 0) {
        return STORD_OK;
    }
    if (errno == ENOENT) {
        return STORD_NOT_FOUND;
    }
    cm_error (req, "open(%s) failed: %s", path, strerror (errno));
    return STORD_ERROR;
}

static stord_rc_t
s_append (void *impl, const char *req, const char *id, uint64_t offset, const void *data,
          size_t len, uint64_t *size_out)
{
    s_disk_t *self = impl;
    char path[PATH_MAX];
    if (!s_id_ok (req, id) || s_pending_path (self, id, path, sizeof path) != 0) {
        return STORD_ERROR;
    }
    if (offset > (uint64_t)INT64_MAX - len) {
        return STORD_MISMATCH;
    }
    int fd;
    stord_rc_t opened = s_open (req, path, O_RDWR, &fd);
    if (opened != STORD_OK) {
        return opened;
    }
    stord_rc_t rc = STORD_OK;
    struct stat st;
    if (fstat (fd, &st) != 0) {
        cm_error (req, "fstat(%s) failed: %s", path, strerror (errno));
        rc = STORD_ERROR;
        goto cleanup;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (offset == size) {
        if (s_pwrite_all (fd, data, len, offset) != 0) {
            cm_error (req, "pwrite(%s) failed: %s", path, strerror (errno));
            /* Leave the blob as it was so the caller can retry.        */
            if (ftruncate (fd, (off_t)size) != 0) {
                cm_error (req, "ftruncate(%s) failed: %s", path, strerror (errno));
            }
            rc = STORD_ERROR;
            goto cleanup;
        }
        size += len;
    } else if (offset < size && offset + len == size && len > 0) {
        rc = s_same_bytes (fd, req, data, len, offset);
        if (rc != STORD_OK) {
            goto cleanup;
        }
    } else {
        rc = STORD_MISMATCH;
        goto cleanup;
    }
    if (size_out) {
        *size_out = size;
    }
cleanup:
    close (fd);
    return rc;
}

/* fsync of an open file, logged.                                      */
static int
s_fsync_fd (const char *req, int fd, const char *path)
{
    if (fsync (fd) != 0) {
        cm_error (req, "fsync(%s) failed: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

/* The .part is gone but the committed blob is there: an earlier commit
   renamed it and then failed (a directory fsync, or the caller's DB
   UPDATE). Same size: make every step durable again (we cannot know
   which one failed, nor whether that attempt created the shard) and
   answer OK, so a retried FILE_COMMIT can finish the metadata.          */
static stord_rc_t
s_commit_again (s_disk_t *self, const char *req, const char *final, const char *shard,
                uint64_t size)
{
    int fd;
    stord_rc_t opened = s_open (req, final, O_RDONLY, &fd);
    if (opened != STORD_OK) {
        return opened;
    }
    stord_rc_t rc = STORD_ERROR;
    struct stat st;
    if (fstat (fd, &st) != 0) {
        cm_error (req, "fstat(%s) failed: %s", final, strerror (errno));
        goto cleanup;
    }
    if ((uint64_t)st.st_size != size) {
        rc = STORD_MISMATCH;
        goto cleanup;
    }
    if (s_fsync_fd (req, fd, final) != 0 || s_fsync_dir (req, shard) != 0 ||
        s_fsync_dir (req, self->dir) != 0 || s_fsync_dir (req, self->tmp_dir) != 0) {
        goto cleanup;
    }
    rc = STORD_OK;
cleanup:
    close (fd);
    return rc;
}

static stord_rc_t
s_commit (void *impl, const char *req, const char *id, uint64_t size)
{
    s_disk_t *self = impl;
    char part[PATH_MAX], shard[PATH_MAX], final[PATH_MAX];
    if (!s_id_ok (req, id) || s_pending_path (self, id, part, sizeof part) != 0 ||
        s_shard_path (self, id, shard, sizeof shard) != 0 ||
        s_committed_path (self, id, final, sizeof final) != 0) {
        return STORD_ERROR;
    }
    int fd = open (part, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return s_commit_again (self, req, final, shard, size);
        }
        cm_error (req, "open(%s) failed: %s", part, strerror (errno));
        return STORD_ERROR;
    }
    stord_rc_t rc = STORD_ERROR;
    struct stat st;
    if (fstat (fd, &st) != 0) {
        cm_error (req, "fstat(%s) failed: %s", part, strerror (errno));
        goto cleanup;
    }
    if ((uint64_t)st.st_size != size) {
        rc = STORD_MISMATCH;
        goto cleanup;
    }
    /* Data durable before the name points at it; then the names.       */
    if (s_fsync_fd (req, fd, part) != 0) {
        goto cleanup;
    }
    if (mkdir (shard, 0700) == 0) {
        /* A new shard's own entry lives in the blob dir: without this
           fsync a power loss can drop blobs/<xx>/ and with it a blob
           whose row says committed.                                    */
        if (s_fsync_dir (req, self->dir) != 0) {
            /* Remove it so the retry creates (and fsyncs) it again.    */
            rmdir (shard);
            goto cleanup;
        }
    } else if (errno != EEXIST) {
        cm_error (req, "mkdir(%s) failed: %s", shard, strerror (errno));
        goto cleanup;
    }
    if (rename (part, final) != 0) {
        cm_error (req, "rename(%s) failed: %s", part, strerror (errno));
        goto cleanup;
    }
    if (s_fsync_dir (req, shard) != 0 || s_fsync_dir (req, self->tmp_dir) != 0) {
        goto cleanup;
    }
    rc = STORD_OK;
cleanup:
    close (fd);
    return rc;
}

/* unlink; 1 if removed, 0 if it was not there, -1 on error.            */
static int
s_unlink (const char *req, const char *path)
{
    if (unlink (path) == 0) {
        return 1;
    }
    if (errno == ENOENT) {
        return 0;
    }
    cm_error (req, "unlink(%s) failed: %s", path, strerror (errno));
    return -1;
}

static stord_rc_t
s_abort (void *impl, const char *req, const char *id)
{
    s_disk_t *self = impl;
    char part[PATH_MAX], final[PATH_MAX];
    if (!s_id_ok (req, id) || s_pending_path (self, id, part, sizeof part) != 0 ||
        s_committed_path (self, id, final, sizeof final) != 0) {
        return STORD_ERROR;
    }
    int a = s_unlink (req, part);
    int b = s_unlink (req, final);
    if (a < 0 || b < 0) {
        return STORD_ERROR;
    }
    return a + b > 0 ? STORD_OK : STORD_NOT_FOUND;
}

static stord_rc_t
s_read (void *impl, const char *req, const char *id, uint64_t offset, void *buf,
        size_t len)
{
    s_disk_t *self = impl;
    char path[PATH_MAX];
    if (!s_id_ok (req, id) || s_committed_path (self, id, path, sizeof path) != 0) {
        return STORD_ERROR;
    }
    if (offset > (uint64_t)INT64_MAX - len) {
        return STORD_MISMATCH;
    }
    int fd;
    stord_rc_t opened = s_open (req, path, O_RDONLY, &fd);
    if (opened != STORD_OK) {
        return opened;
    }
    stord_rc_t rc = STORD_OK;
    int r = s_pread_all (fd, buf, len, offset);
    if (r < 0) {
        cm_error (req, "pread(%s) failed: %s", path, strerror (errno));
        rc = STORD_ERROR;
    } else if (r > 0) {
        rc = STORD_MISMATCH; /* shorter than asked: the caller decides */
    }
    close (fd);
    return rc;
}

static stord_rc_t
s_remove (void *impl, const char *req, const char *id)
{
    s_disk_t *self = impl;
    char path[PATH_MAX];
    if (!s_id_ok (req, id) || s_committed_path (self, id, path, sizeof path) != 0) {
        return STORD_ERROR;
    }
    int r = s_unlink (req, path);
    return r < 0 ? STORD_ERROR : r == 0 ? STORD_NOT_FOUND : STORD_OK;
}

static stord_rc_t
s_stat (void *impl, const char *req, const char *id, bool pending, uint64_t *size,
        uint64_t *mtime_s)
{
    s_disk_t *self = impl;
    char path[PATH_MAX];
    if (!s_id_ok (req, id)) {
        return STORD_ERROR;
    }
    int n = pending ? s_pending_path (self, id, path, sizeof path)
                    : s_committed_path (self, id, path, sizeof path);
    if (n != 0) {
        return STORD_ERROR;
    }
    struct stat st;
    if (stat (path, &st) != 0) {
        if (errno == ENOENT) {
            return STORD_NOT_FOUND;
        }
        cm_error (req, "stat(%s) failed: %s", path, strerror (errno));
        return STORD_ERROR;
    }
    if (size) {
        *size = (uint64_t)st.st_size;
    }
    if (mtime_s) {
        *mtime_s = st.st_mtim.tv_sec > 0 ? (uint64_t)st.st_mtim.tv_sec : 0;
    }
    return STORD_OK;
}

/* Visits regular files of dir named <32 hex><suffix> (and, when prefix
   is set, starting with it). Anything else is left alone.              */
static int
s_scan_dir (const char *req, const char *dir, const char *prefix, const char *suffix,
            stord_scan_fn *fn, void *arg)
{
    DIR *d = opendir (dir);
    if (!d) {
        if (errno == ENOENT) {
            return 0;
        }
        cm_error (req, "opendir(%s) failed: %s", dir, strerror (errno));
        return -1;
    }
    int rc = 0;
    size_t slen = strlen (suffix);
    struct dirent *e;
    while ((e = readdir (d)) != NULL) {
        char id[STORD_ID_LEN + 1];
        if (strlen (e->d_name) != STORD_ID_LEN + slen ||
            strcmp (e->d_name + STORD_ID_LEN, suffix) != 0) {
            continue;
        }
        memcpy (id, e->d_name, STORD_ID_LEN);
        id[STORD_ID_LEN] = '\0';
        if (!cm_is_hex_id (id, STORD_ID_LEN) ||
            (prefix && strncmp (id, prefix, 2) != 0)) {
            continue;
        }
        struct stat st;
        if (fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG (st.st_mode)) {
            continue;
        }
        uint64_t mtime = st.st_mtim.tv_sec > 0 ? (uint64_t)st.st_mtim.tv_sec : 0;
        if (fn (id, mtime, arg) != 0) {
            rc = -1;
            break;
        }
    }
    closedir (d);
    return rc;
}

static bool
s_is_shard_name (const char *name)
{
    return strlen (name) == 2 && cm_is_hex_id (name, 2);
}

static int
s_scan (void *impl, const char *req, bool pending, stord_scan_fn *fn, void *arg)
{
    s_disk_t *self = impl;
    if (pending) {
        return s_scan_dir (req, self->tmp_dir, NULL, ".part", fn, arg);
    }
    DIR *d = opendir (self->dir);
    if (!d) {
        cm_error (req, "opendir(%s) failed: %s", self->dir, strerror (errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir (d)) != NULL) {
        char shard[PATH_MAX];
        if (!s_is_shard_name (e->d_name) ||
            s_shard_path (self, e->d_name, shard, sizeof shard) != 0) {
            continue;
        }
        rc = s_scan_dir (req, shard, e->d_name, "", fn, arg);
    }
    closedir (d);
    return rc;
}

static void
s_destroy (void **impl_p)
{
    if (!impl_p || !*impl_p) {
        return;
    }
    s_disk_t *self = *impl_p;
    free (self->dir);
    free (self->tmp_dir);
    free (self);
    *impl_p = NULL;
}

static void
s_where (void *impl, const char *id, bool pending, char *out, size_t outlen)
{
    if ((pending ? s_pending_path : s_committed_path) (impl, id, out, outlen) != 0) {
        snprintf (out, outlen, "%s", id);
    }
}

static const stord_backend_ops_t s_disk_ops = {
    .name = "disk",
    .begin = s_begin,
    .append = s_append,
    .commit = s_commit,
    .abort = s_abort,
    .read = s_read,
    .remove = s_remove,
    .stat = s_stat,
    .scan = s_scan,
    .destroy = s_destroy,
    .where = s_where,
};

stord_backend_t *
stord_disk_new (const char *dir)
{
    if (!dir || !*dir) {
        cm_error (NULL, "stord_disk_new: empty blob dir");
        return NULL;
    }
    s_disk_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->dir = strdup (dir);
    if (!self->dir || asprintf (&self->tmp_dir, "%s/tmp", dir) < 0) {
        self->tmp_dir = NULL;
        goto fail;
    }
    if (strlen (self->tmp_dir) + STORD_ID_LEN + 8 >= PATH_MAX) {
        cm_error (NULL, "stord_disk_new: blob dir path too long");
        goto fail;
    }
    if (cm_mkdirs (self->tmp_dir, 0700) != 0) {
        cm_error (NULL, "cm_mkdirs(%s) failed: %s", self->tmp_dir, strerror (errno));
        goto fail;
    }
    return stord_backend_new (&s_disk_ops, self);
fail:
    s_destroy ((void **)&self);
    return NULL;
}
