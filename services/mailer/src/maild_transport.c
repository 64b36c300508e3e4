/*  maild_transport -- dispatch to the configured delivery mechanism.    */
#include "maild_transport.h"

#include <stdlib.h>

struct maild_transport_t {
    const maild_transport_ops_t *ops;
    void *impl;
};

maild_transport_t *
maild_transport_new (const maild_transport_ops_t *ops, void **impl_p)
{
    if (!ops || !impl_p || !*impl_p || !ops->deliver || !ops->destroy) {
        return NULL;
    }
    maild_transport_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->ops = ops;
    self->impl = *impl_p;
    *impl_p = NULL;
    return self;
}

void
maild_transport_destroy (maild_transport_t **self_p)
{
    if (self_p && *self_p) {
        maild_transport_t *self = *self_p;
        self->ops->destroy (&self->impl);
        free (self);
        *self_p = NULL;
    }
}

const char *
maild_transport_name (maild_transport_t *self)
{
    return self->ops->name;
}

maild_result_t
maild_transport_deliver (maild_transport_t *self, const char *req, const char *job_id,
                         const char *to, const char *data, size_t len, char *err,
                         size_t errlen)
{
    if (errlen) {
        err[0] = '\0';
    }
    return self->ops->deliver (self->impl, req, job_id, to, data, len, err, errlen);
}

void
maild_transport_cancel (maild_transport_t *self)
{
    if (self && self->ops->cancel) {
        self->ops->cancel (self->impl);
    }
}
