/*  cryptod_job -- a chunk job held by the broker. See cryptod_job.h.    */
#include "cryptod_job.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "cryptod_broker.h"
#include "cryptod_call.h"

size_t
cryptod_job_call_frames (const cm_call_t *call)
{
    return zmsg_size (call->envelope) + 1 + zmsg_size (call->blobs);
}

size_t
cryptod_job_call_cost (const cm_call_t *call)
{
    size_t n = cryptod_job_call_frames (call) * CRYPTOD_FRAME_COST;
    n += protobuf_c_message_get_packed_size (call->request);
    for (zframe_t *f = zmsg_first (call->blobs); f; f = zmsg_next (call->blobs)) {
        n += zframe_size (f);
    }
    return n;
}

cryptod_job_t *
cryptod_job_new (uint64_t id, cm_call_t **call_p, bool encrypt,
                 const uint8_t dek[CRYPTOD_DEK_LEN],
                 const uint8_t header[CRYPTOD_HEADER_LEN], uint64_t index, bool last)
{
    cryptod_job_t *self = calloc (1, sizeof *self);
    if (!self) {
        cryptod_call_free (call_p);
        return NULL;
    }
    self->id = id;
    self->call = *call_p;
    *call_p = NULL;
    self->encrypt = encrypt;
    memcpy (self->dek, dek, CRYPTOD_DEK_LEN);
    memcpy (self->header, header, CRYPTOD_HEADER_LEN);
    self->index = index;
    self->last = last;
    self->cost = cryptod_job_call_cost (self->call);
    return self;
}

void
cryptod_job_destroy (cryptod_job_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    cryptod_job_t *self = *self_p;
    OPENSSL_cleanse (self->dek, sizeof self->dek);
    /* An ENCRYPT chunk is wiped in place: by now the job is answered (or
       given up), so a copy still in flight to a worker can only produce
       a reply that is dropped.                                         */
    cryptod_call_free (&self->call);
    for (int i = 0; i < CRYPTOD_MAX_ATTEMPTS; i++) {
        free (self->sent_to[i]);
    }
    free (self);
    *self_p = NULL;
}

zframe_t *
cryptod_job_blob (cryptod_job_t *self)
{
    return zmsg_first (self->call->blobs);
}

bool
cryptod_job_expired (const cryptod_job_t *self)
{
    return cm_call_expired (self->call);
}

int
cryptod_job_sent (cryptod_job_t *self, const char *worker)
{
    if (self->attempts >= CRYPTOD_MAX_ATTEMPTS) {
        return -1;
    }
    char *copy = strdup (worker);
    if (!copy) {
        return -1;
    }
    self->sent_to[self->attempts++] = copy;
    return 0;
}

void
cryptod_job_unsent (cryptod_job_t *self)
{
    if (self->attempts > 0) {
        self->attempts--;
        free (self->sent_to[self->attempts]);
        self->sent_to[self->attempts] = NULL;
    }
}

bool
cryptod_job_sent_to (const cryptod_job_t *self, const char *worker)
{
    for (int i = 0; i < self->attempts; i++) {
        if (strcmp (self->sent_to[i], worker) == 0) {
            return true;
        }
    }
    return false;
}
