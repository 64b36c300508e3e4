/*  stord_backend -- dispatch to the configured blob backend.            */
#include "stord_backend.h"
#include "stord_disk.h"
#include "stord_s3.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct stord_backend_t {
    const stord_backend_ops_t *ops;
    void *impl;
};

stord_backend_t *
stord_backend_new (const stord_backend_ops_t *ops, void *impl)
{
    if (!ops || !impl) {
        return NULL;
    }
    stord_backend_t *self = calloc (1, sizeof *self);
    if (!self) {
        ops->destroy (&impl);
        return NULL;
    }
    self->ops = ops;
    self->impl = impl;
    return self;
}

void
stord_backend_destroy (stord_backend_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    stord_backend_t *self = *self_p;
    self->ops->destroy (&self->impl);
    free (self);
    *self_p = NULL;
}

const char *
stord_backend_name (stord_backend_t *self)
{
    return self->ops->name;
}

void
stord_backend_set_deadline (stord_backend_t *self, uint64_t deadline_ms)
{
    if (self->ops->deadline) {
        self->ops->deadline (self->impl, deadline_ms);
    }
}

const char *
stord_backend_where (stord_backend_t *self, const char *id, bool pending, char *out,
                     size_t outlen)
{
    if (self->ops->where) {
        self->ops->where (self->impl, id, pending, out, outlen);
    } else {
        snprintf (out, outlen, "blob %s", id);
    }
    return out;
}

stord_rc_t
stord_backend_begin (stord_backend_t *self, const char *req, const char *id)
{
    return self->ops->begin (self->impl, req, id);
}

stord_rc_t
stord_backend_append (stord_backend_t *self, const char *req, const char *id,
                      uint64_t offset, const void *data, size_t len, uint64_t *size_out)
{
    return self->ops->append (self->impl, req, id, offset, data, len, size_out);
}

stord_rc_t
stord_backend_commit (stord_backend_t *self, const char *req, const char *id,
                      uint64_t size)
{
    return self->ops->commit (self->impl, req, id, size);
}

stord_rc_t
stord_backend_abort (stord_backend_t *self, const char *req, const char *id)
{
    return self->ops->abort (self->impl, req, id);
}

stord_rc_t
stord_backend_read (stord_backend_t *self, const char *req, const char *id,
                    uint64_t offset, void *buf, size_t len)
{
    return self->ops->read (self->impl, req, id, offset, buf, len);
}

stord_rc_t
stord_backend_remove (stord_backend_t *self, const char *req, const char *id)
{
    return self->ops->remove (self->impl, req, id);
}

stord_rc_t
stord_backend_stat (stord_backend_t *self, const char *req, const char *id, bool pending,
                    uint64_t *size, uint64_t *mtime_s)
{
    return self->ops->stat (self->impl, req, id, pending, size, mtime_s);
}

int
stord_backend_scan (stord_backend_t *self, const char *req, bool pending,
                    stord_scan_fn *fn, void *arg)
{
    return self->ops->scan (self->impl, req, pending, fn, arg);
}

static stord_backend_t *
s_open_disk (cm_config_t *config, bool create, char *err, size_t errlen)
{
    const char *dir = cm_config_get (config, "SAFESHARE_BLOB_DIR");
    if (!dir) {
        snprintf (err, errlen, "SAFESHARE_BLOB_DIR is not set");
        return NULL;
    }
    struct stat st;
    int rc = create ? 0 : stat (dir, &st);
    if (rc != 0 || (!create && !S_ISDIR (st.st_mode))) {
        snprintf (err, errlen, "no blob directory at %s (SAFESHARE_BLOB_DIR): %s", dir,
                  rc != 0 ? strerror (errno) : "not a directory");
        return NULL;
    }
    stord_backend_t *self = stord_disk_new (dir);
    if (!self) {
        snprintf (err, errlen, "cannot use the blob directory %s (SAFESHARE_BLOB_DIR)",
                  dir);
    }
    return self;
}

static stord_backend_t *
s_open_s3 (cm_config_t *config, char *err, size_t errlen)
{
    const char *addressing = cm_config_get (config, "SAFESHARE_S3_ADDRESSING");
    stord_s3_config_t cfg = {
        .endpoint = cm_config_get (config, "SAFESHARE_S3_ENDPOINT"),
        .bucket = cm_config_get (config, "SAFESHARE_S3_BUCKET"),
        .region = cm_config_get (config, "SAFESHARE_S3_REGION"),
        .access_key = cm_config_get (config, "SAFESHARE_S3_ACCESS_KEY"),
        .secret_key = cm_config_get (config, "SAFESHARE_S3_SECRET_KEY"),
        .virtual_host = addressing && strcmp (addressing, "virtual") == 0,
        .prefix = cm_config_get (config, "SAFESHARE_S3_PREFIX"),
        .part_size = (size_t)cm_config_int (config, "SAFESHARE_S3_PART_SIZE"),
        .max_pending = (size_t)cm_config_int (config, "SAFESHARE_S3_MAX_PENDING"),
        .timeout_ms = cm_config_int (config, "SAFESHARE_S3_TIMEOUT_MS"),
        .connect_timeout_ms = cm_config_int (config, "SAFESHARE_S3_CONNECT_TIMEOUT_MS"),
        .retries = (int)cm_config_int (config, "SAFESHARE_S3_RETRIES"),
    };
    if (!cfg.endpoint || !cfg.bucket) {
        snprintf (err, errlen,
                  "SAFESHARE_STORAGE_BACKEND=s3 needs SAFESHARE_S3_ENDPOINT "
                  "and SAFESHARE_S3_BUCKET");
        return NULL;
    }
    return stord_s3_new (&cfg, err, errlen);
}

stord_backend_t *
stord_backend_open (cm_config_t *config, bool create, char *err, size_t errlen)
{
    const char *name = cm_config_get (config, "SAFESHARE_STORAGE_BACKEND");
    err[0] = '\0';
    if (name && strcmp (name, "disk") == 0) {
        return s_open_disk (config, create, err, errlen);
    }
    if (name && strcmp (name, "s3") == 0) {
        return s_open_s3 (config, err, errlen);
    }
    snprintf (err, errlen, "SAFESHARE_STORAGE_BACKEND=%s is not a backend (disk | s3)",
              name ? name : "");
    return NULL;
}
