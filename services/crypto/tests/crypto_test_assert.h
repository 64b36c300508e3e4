/*  Asserting helpers the crypto service tests share (svc_crypto,
    svc_crypto_pool, unit_crypto_broker): wait for a crypto endpoint to
    answer, read pool_status, get a file key and its DEK, send a chunk,
    check a reply. Built on crypto_test_client.h; header-only, test code
    only (cmocka).                                                      */
#ifndef CRYPTO_TEST_ASSERT_H
#define CRYPTO_TEST_ASSERT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "cm_testing.h"
#include "cm_util.h"
#include "crypto_test_client.h"
#include "cryptod_keyring.h"
#include "cryptod_stream.h"

static inline void
s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

/* A fresh temp dir (the caller frees it) holding a generated ring at
   <dir>/keys/kek.ring (its path into ring), loaded into *keyring.      */
static inline char *
s_tmp_ring (char ring[700], cryptod_keyring_t **keyring)
{
    char keys[600], id[17];
    char *dir = cm_test_tmpdir ();
    assert_non_null (dir);
    snprintf (keys, sizeof keys, "%s/keys", dir);
    assert_int_equal (mkdir (keys, 0700), 0);
    snprintf (ring, 700, "%s/kek.ring", keys);
    assert_int_equal (cryptod_keyring_generate (ring, id), 0);
    *keyring = cryptod_keyring_load (ring);
    assert_non_null (*keyring);
    return dir;
}

/* Waits for pid to exit by itself; its exit status or -1 (then it is
   stopped).                                                           */
static inline int
s_wait_exit (pid_t pid, int timeout_ms)
{
    uint64_t deadline = cm_mono_ms () + (uint64_t)timeout_ms;
    while (cm_mono_ms () < deadline) {
        int status;
        pid_t r = waitpid (pid, &status, WNOHANG);
        if (r == pid) {
            return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
        }
        s_sleep_ms (10);
    }
    cm_test_stop (pid, 1000);
    return -1;
}

/* Polls HEALTH on endpoint until it answers OK, up to 15 s; fails as
   soon as the child pid exits.                                        */
static inline void
s_wait_health (const char *endpoint, pid_t pid)
{
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__HealthRequest body = SAFESHARE__HEALTH_REQUEST__INIT;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH;
    req.health = &body;
    uint64_t deadline = cm_mono_ms () + 15000;
    while (cm_mono_ms () < deadline) {
        assert_false (cm_test_exited (pid));
        /* A fresh socket per try (linger 0): an unanswered HEALTH sent
           before the bind is dropped with it, not answered later.      */
        zsock_t *probe = cm_sock_client (endpoint, "crypto");
        assert_non_null (probe);
        Safeshare__CryptoReply *reply = NULL;
        char reqbuf[65];
        Safeshare__Meta meta;
        cm_meta_init (&meta, reqbuf, NULL, 200);
        req.meta = &meta;
        cm_status_t st = cm_rpc_call (probe, (ProtobufCMessage *)&req, NULL,
                                      &safeshare__crypto_reply__descriptor, 200,
                                      (ProtobufCMessage **)&reply, NULL);
        req.meta = NULL;
        zsock_destroy (&probe);
        if (st == CM_OK) {
            assert_int_equal (reply->status, SAFESHARE__STATUS__STATUS_OK);
            safeshare__crypto_reply__free_unpacked (reply, NULL);
            return;
        }
    }
    fail_msg ("safeshare-crypto did not answer HEALTH within 15 s");
}

/* The reply is the error status/code, with no blob (never plaintext). */
static inline void
s_expect_error (s_result_t *r, Safeshare__Status status, const char *code)
{
    assert_non_null (r->reply);
    if (r->reply->status != status || !r->reply->error ||
        strcmp (r->reply->error->code, code) != 0) {
        fail_msg ("expected %d/%s, got %d/%s", status, code, r->reply->status,
                  r->reply->error ? r->reply->error->code : "(none)");
    }
    assert_int_equal (zmsg_size (r->blobs), 0);
}

/* pool_status over admin, answered OK; the caller frees.              */
static inline s_result_t
s_pool_status (zsock_t *admin)
{
    s_result_t r = s_pool_status_call (admin);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_int_equal (r.reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_POOL_STATUS);
    return r;
}

/* Waits (up to timeout_ms) until pool_status shows exactly n workers. */
static inline void
s_wait_pool_size (zsock_t *admin, size_t n, int timeout_ms)
{
    uint64_t deadline = cm_mono_ms () + (uint64_t)timeout_ms;
    while (true) {
        s_result_t r = s_pool_status (admin);
        size_t have = r.reply->pool_status->n_workers;
        s_result_free (&r);
        if (have == n) {
            return;
        }
        if (cm_mono_ms () >= deadline) {
            fail_msg ("the pool has %zu workers, not %zu, after %d ms", have, n,
                      timeout_ms);
        }
        s_sleep_ms (20);
    }
}

/* KEY_NEW for file_id (default chunk size) answered OK, its DEK
   unwrapped with keyring into dek. Returns the KeyNewReply, which
   points into *key (free with s_result_free).                          */
static inline Safeshare__KeyNewReply *
s_key_new_dek (zsock_t *dealer, const cryptod_keyring_t *keyring, const char *file_id,
               s_result_t *key, uint8_t dek[32])
{
    *key = s_key_new_call (dealer, file_id, 0);
    assert_non_null (key->reply);
    assert_int_equal (key->reply->status, SAFESHARE__STATUS__STATUS_OK);
    Safeshare__KeyNewReply *kn = key->reply->key_new;
    assert_non_null (kn);
    assert_int_equal (cryptod_dek_unwrap (keyring, kn->kek_id, file_id,
                                          kn->wrapped_dek.data, kn->wrapped_dek.len, dek),
                      0);
    return kn;
}

/* Sends ENCRYPT / DECRYPT of chunk index of file_id under kn without
   waiting: request id req_id, deadline timeout_ms from now.            */
static inline void
s_send_chunk_within (zsock_t *dealer, const char *file_id, Safeshare__KeyNewReply *kn,
                     bool encrypt, uint64_t index, bool last, const void *data,
                     size_t len, const char *req_id, int timeout_ms)
{
    Safeshare__ChunkRequest chunk;
    Safeshare__CryptoRequest req = s_chunk_request (
        &chunk, encrypt, file_id, kn->kek_id, kn->wrapped_dek, kn->header, index, last);
    char buf[65];
    s_send_request_within (dealer, &req, buf, req_id, data, len, timeout_ms);
}

/* The reply is the right ciphertext of pt as chunk index (opened with
   dek and kn's header).                                               */
static inline void
s_expect_ciphertext (s_result_t *r, const uint8_t dek[32], Safeshare__KeyNewReply *kn,
                     uint64_t index, bool last, const uint8_t *pt, size_t len)
{
    assert_non_null (r->reply);
    if (r->reply->status != SAFESHARE__STATUS__STATUS_OK) {
        fail_msg ("chunk %llu: status %d %s", (unsigned long long)index, r->reply->status,
                  r->reply->error ? r->reply->error->code : "");
    }
    assert_int_equal (r->reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_ENCRYPT);
    assert_int_equal (r->reply->encrypt->index, index);
    assert_int_equal (zmsg_size (r->blobs), 1);
    zframe_t *ct = zmsg_first (r->blobs);
    assert_int_equal (zframe_size (ct), len + CRYPTOD_TAG_LEN);
    uint8_t *back = malloc (len + 1);
    assert_int_equal (cryptod_chunk_open (dek, kn->header.data, index, last,
                                          zframe_data (ct), zframe_size (ct), back),
                      0);
    assert_memory_equal (back, pt, len);
    free (back);
}

#endif
