/*  stord_service -- answers StorageRequests (proto/storage.md): checks
    every field, then drives stord_meta (rows, links) and the blob
    backend in the order that keeps a crash harmless (see storage.md).  */
#ifndef STORD_SERVICE_H
#define STORD_SERVICE_H

#include "cm_msg.h"
#include "stord_backend.h"
#include "stord_meta.h"

#define STORD_CHUNK_MIN 4096
#define STORD_CHUNK_MAX (16 * 1024 * 1024)
/* One chunk plus its AES-GCM tag: the largest BLOB_READ.               */
#define STORD_READ_MAX     (STORD_CHUNK_MAX + 16)
#define STORD_LINK_MAX_USE 10000

typedef struct stord_service_t stord_service_t;

/* Takes ownership of *meta_p and *backend_p (nulled). link_max_ttl_s
   bounds LINK_CREATE expires_in.                                        */
stord_service_t *stord_service_new (stord_meta_t **meta_p, stord_backend_t **backend_p,
                                    uint64_t link_max_ttl_s);
void stord_service_destroy (stord_service_t **self_p);

/* Answers one received call on router (the call stays the caller's to
   release).                                                            */
void stord_service_handle (stord_service_t *self, zsock_t *router, cm_call_t *call);

/* Names this process among storage replicas (SAFESHARE_STORAGE_INSTANCE:
   1..64 of [A-Za-z0-9._-]); pending uploads record it. 0 / -1.         */
int stord_service_set_instance (stord_service_t *self, const char *instance);

/* Periodic clean-up (stord_sweep) over this service's parts; restarted:
   the start-up one, which also drops every upload this instance had
   pending.                                                             */
int stord_service_sweep (stord_service_t *self, uint64_t now_s, uint64_t max_age_s,
                         bool restarted);

#endif
