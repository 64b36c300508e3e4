/*  stord_test_client -- requests to safeshare-storage for its tests.   */
#include "stord_test_client.h"
#include "cm_msg.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

Safeshare__StorageReply *
stord_test_call (zsock_t *sock, Safeshare__StorageRequest *rq, zmsg_t **blobs,
                 zmsg_t **blobs_out, int timeout_ms)
{
    char reqbuf[65];
    Safeshare__Meta meta;
    cm_meta_init (&meta, reqbuf, NULL, timeout_ms);
    rq->meta = &meta;
    ProtobufCMessage *reply = NULL;
    cm_status_t st =
        cm_rpc_call (sock, &rq->base, blobs, &safeshare__storage_reply__descriptor,
                     timeout_ms, &reply, blobs_out);
    rq->meta = NULL;
    return st == CM_OK ? (Safeshare__StorageReply *)reply : NULL;
}

Safeshare__StorageReply *
stord_test_append (zsock_t *sock, const char *id, uint64_t offset, const void *data,
                   size_t len, int timeout_ms)
{
    Safeshare__BlobAppendRequest a = SAFESHARE__BLOB_APPEND_REQUEST__INIT;
    a.file_id = (char *)id;
    a.offset = offset;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_BLOB_APPEND;
    rq.blob_append = &a;
    zmsg_t *blobs = zmsg_new ();
    zmsg_addmem (blobs, data, len);
    return stord_test_call (sock, &rq, &blobs, NULL, timeout_ms);
}

Safeshare__StorageReply *
stord_test_get (zsock_t *sock, const char *id, int timeout_ms)
{
    Safeshare__FileGetRequest q = SAFESHARE__FILE_GET_REQUEST__INIT;
    q.file_id = (char *)id;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_GET;
    rq.file_get = &q;
    return stord_test_call (sock, &rq, NULL, NULL, timeout_ms);
}

Safeshare__StorageReply *
stord_test_abort (zsock_t *sock, const char *id, int timeout_ms)
{
    Safeshare__FileAbortRequest q = SAFESHARE__FILE_ABORT_REQUEST__INIT;
    q.file_id = (char *)id;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_ABORT;
    rq.file_abort = &q;
    return stord_test_call (sock, &rq, NULL, NULL, timeout_ms);
}

Safeshare__StorageReply *
stord_test_delete (zsock_t *sock, const char *id, int timeout_ms)
{
    Safeshare__FileDeleteRequest q = SAFESHARE__FILE_DELETE_REQUEST__INIT;
    q.file_id = (char *)id;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_DELETE;
    rq.file_delete = &q;
    return stord_test_call (sock, &rq, NULL, NULL, timeout_ms);
}

void
stord_test_free (Safeshare__StorageReply **r)
{
    if (*r) {
        protobuf_c_message_free_unpacked (&(*r)->base, NULL);
        *r = NULL;
    }
}

void
stord_test_expect (const Safeshare__StorageReply *r, cm_status_t status, const char *code)
{
    assert_non_null (r);
    if (r->status != status) {
        fprintf (stderr, "expected %s, got %s %s\n", cm_status_name (status),
                 cm_status_name (r->status), r->error ? r->error->code : "");
    }
    assert_int_equal (r->status, status);
    if (code) {
        assert_non_null (r->error);
        assert_string_equal (r->error->code, code);
    }
}

void
stord_test_sleep_ms (long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

Safeshare__StorageReply *
stord_test_health (zsock_t *sock, int timeout_ms)
{
    Safeshare__HealthRequest h = SAFESHARE__HEALTH_REQUEST__INIT;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_HEALTH;
    rq.health = &h;
    return stord_test_call (sock, &rq, NULL, NULL, timeout_ms);
}

void
stord_test_wait_ready (zsock_t *sock, pid_t pid, int wait_ms)
{
    /* Ready = answers HEALTH; fail at once if it died.                  */
    uint64_t deadline = cm_mono_ms () + (uint64_t)wait_ms;
    while (true) {
        assert_false (cm_test_exited (pid));
        Safeshare__StorageReply *r = stord_test_health (sock, 250);
        if (r) {
            stord_test_expect (r, CM_OK, NULL);
            stord_test_free (&r);
            return;
        }
        assert_true (cm_mono_ms () < deadline);
        stord_test_sleep_ms (20);
    }
}
