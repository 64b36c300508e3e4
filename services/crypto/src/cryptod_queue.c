/*  cryptod_queue -- bounded job FIFO. See cryptod_queue.h.              */
#include "cryptod_queue.h"

#include <stdlib.h>

struct cryptod_queue_t {
    zlistx_t *jobs; /* cryptod_job_t *, head first */
    size_t max_jobs;
    size_t max_bytes;
    size_t bytes; /* the cost of every queued job */
};

cryptod_queue_t *
cryptod_queue_new (size_t max_jobs, size_t max_bytes)
{
    cryptod_queue_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->jobs = zlistx_new ();
    if (!self->jobs) {
        free (self);
        return NULL;
    }
    self->max_jobs = max_jobs;
    self->max_bytes = max_bytes;
    return self;
}

void
cryptod_queue_destroy (cryptod_queue_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    cryptod_queue_t *self = *self_p;
    cryptod_job_t *job;
    while ((job = cryptod_queue_pop (self))) {
        cryptod_job_destroy (&job);
    }
    zlistx_destroy (&self->jobs);
    free (self);
    *self_p = NULL;
}

int
cryptod_queue_push (cryptod_queue_t *self, cryptod_job_t *job)
{
    size_t n = zlistx_size (self->jobs);
    if (n >= self->max_jobs || (n > 0 && self->bytes + job->cost > self->max_bytes)) {
        return -1;
    }
    job->queue_handle = zlistx_add_end (self->jobs, job);
    if (!job->queue_handle) {
        return -1;
    }
    self->bytes += job->cost;
    return 0;
}

int
cryptod_queue_push_front (cryptod_queue_t *self, cryptod_job_t *job)
{
    job->queue_handle = zlistx_add_start (self->jobs, job);
    if (!job->queue_handle) {
        return -1;
    }
    self->bytes += job->cost;
    return 0;
}

cryptod_job_t *
cryptod_queue_pop (cryptod_queue_t *self)
{
    cryptod_job_t *job = zlistx_first (self->jobs);
    if (job) {
        cryptod_queue_remove (self, job);
    }
    return job;
}

void
cryptod_queue_remove (cryptod_queue_t *self, cryptod_job_t *job)
{
    if (job->queue_handle) {
        zlistx_detach (self->jobs, job->queue_handle);
        job->queue_handle = NULL;
        self->bytes -= job->cost;
    }
}

cryptod_job_t *
cryptod_queue_first (cryptod_queue_t *self)
{
    return zlistx_first (self->jobs);
}

cryptod_job_t *
cryptod_queue_next (cryptod_queue_t *self)
{
    return zlistx_next (self->jobs);
}

size_t
cryptod_queue_size (cryptod_queue_t *self)
{
    return zlistx_size (self->jobs);
}

size_t
cryptod_queue_bytes (cryptod_queue_t *self)
{
    return self->bytes;
}
