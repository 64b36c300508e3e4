/*  stord_test_client -- the storage system tests' side of the socket:
    a StorageRequest sent with fresh meta, its reply checked, and the
    wait until a spawned safeshare-storage answers HEALTH. Failures are
    cmocka assertions.                                                  */
#ifndef STORD_TEST_CLIENT_H
#define STORD_TEST_CLIENT_H

#include "cm_status.h"
#include "storage.pb-c.h"

#include <czmq.h>
#include <sys/types.h>

/* Sends rq (with fresh meta) plus *blobs; the reply (free with
   stord_test_free) and, if blobs_out, its blob frames, or NULL.        */
Safeshare__StorageReply *stord_test_call (zsock_t *sock, Safeshare__StorageRequest *rq,
                                          zmsg_t **blobs, zmsg_t **blobs_out,
                                          int timeout_ms);
void stord_test_free (Safeshare__StorageReply **r);
/* Asserts r came back with status and, when code, that error code.     */
void stord_test_expect (const Safeshare__StorageReply *r, cm_status_t status,
                        const char *code);
/* One BLOB_APPEND of len bytes at offset; the reply as stord_test_call. */
Safeshare__StorageReply *stord_test_append (zsock_t *sock, const char *id,
                                            uint64_t offset, const void *data, size_t len,
                                            int timeout_ms);
/* FILE_GET / FILE_ABORT / FILE_DELETE of id.                           */
Safeshare__StorageReply *stord_test_get (zsock_t *sock, const char *id, int timeout_ms);
Safeshare__StorageReply *stord_test_abort (zsock_t *sock, const char *id, int timeout_ms);
Safeshare__StorageReply *stord_test_delete (zsock_t *sock, const char *id,
                                            int timeout_ms);
void stord_test_sleep_ms (long ms);
Safeshare__StorageReply *stord_test_health (zsock_t *sock, int timeout_ms);
/* Polls HEALTH until the storage at pid answers OK; asserts that it
   does within wait_ms and does not exit before.                        */
void stord_test_wait_ready (zsock_t *sock, pid_t pid, int wait_ms);

#endif
