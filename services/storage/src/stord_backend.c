/*  stord_backend -- dispatch to the configured blob backend.            */
#include "stord_backend.h"

#include <stdlib.h>

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
