/*  svc_crypto: the real safeshare-crypto binary in a temp data dir.
    KEY_NEW, ENCRYPT/DECRYPT over the socket (bytes compared, and the
    ciphertext opened independently with the ring), tampered chunk ->
    UNPROCESSABLE chunk_auth_failed, garbage-in, SIGTERM -> exit 0, a
    missing ring -> exit 2, and the ring from SAFESHARE_KEK_RING.       */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "cm_config.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "crypto_test_assert.h"
#include "crypto_test_client.h"
#include "cryptod_keyring.h"
#include "cryptod_stream.h"

#define FILE_A "0123456789abcdef0123456789abcdef"
#define FILE_B "fedcba9876543210fedcba9876543210"
#define CS     4096u

static const char *s_binary;

typedef struct {
    char *dir;
    char endpoint[600];
    char ring[700];
    pid_t pid;
    zsock_t *dealer;
    cryptod_keyring_t *keyring;
} s_fixture_t;

/* ring_env: a SAFESHARE_KEK_RING=... entry, or NULL.                  */
static pid_t
s_spawn_ring (const char *dir, const char *endpoint, char *ring_env)
{
    char env_data[700], env_ep[700];
    snprintf (env_data, sizeof env_data, "SAFESHARE_DATA_DIR=%s", dir);
    snprintf (env_ep, sizeof env_ep, "SAFESHARE_CRYPTO_ENDPOINT=%s", endpoint);
    char *env[] = {env_data,
                   env_ep,
                   "SAFESHARE_CRYPTO_WORKERS=2",
                   "SAFESHARE_CHUNK_SIZE=4096",
                   "SAFESHARE_LOG_LEVEL=info",
                   ring_env,
                   NULL};
    char *argv[] = {(char *)s_binary, NULL};
    return cm_test_spawn (s_binary, argv, env);
}

static pid_t
s_spawn (const char *dir, const char *endpoint)
{
    return s_spawn_ring (dir, endpoint, NULL);
}

static Safeshare__CryptoRequest s_health_req;
static Safeshare__HealthRequest s_health_body;

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    f->dir = s_tmp_ring (f->ring, &f->keyring);
    snprintf (f->endpoint, sizeof f->endpoint, "ipc://%s/run/crypto.sock", f->dir);
    f->pid = s_spawn (f->dir, f->endpoint);
    assert_true (f->pid > 0);
    s_wait_health (f->endpoint, f->pid);
    f->dealer = cm_sock_client (f->endpoint, "crypto");
    assert_non_null (f->dealer);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    zsock_destroy (&f->dealer);
    if (f->pid > 0) {
        cm_test_stop (f->pid, 5000);
    }
    cryptod_keyring_destroy (&f->keyring);
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

static s_result_t
s_chunk (s_fixture_t *f, bool encrypt, const char *file_id, Safeshare__KeyNewReply *kn,
         uint64_t index, bool last, const void *data, size_t len)
{
    Safeshare__ChunkRequest chunk;
    Safeshare__CryptoRequest req = s_chunk_request (
        &chunk, encrypt, file_id, kn->kek_id, kn->wrapped_dek, kn->header, index, last);
    return s_call (f->dealer, &req, data, len);
}

static void
test_round_trip (void **state)
{
    s_fixture_t *f = *state;
    s_result_t key = s_key_new_call (f->dealer, FILE_A, CS);
    assert_non_null (key.reply);
    assert_int_equal (key.reply->status, SAFESHARE__STATUS__STATUS_OK);
    Safeshare__KeyNewReply *kn = key.reply->key_new;
    assert_non_null (kn);
    assert_string_equal (kn->kek_id, cryptod_keyring_current (f->keyring));
    assert_int_equal (kn->wrapped_dek.len, CRYPTOD_WRAPPED_DEK_LEN);
    uint32_t cs;
    char id[33];
    assert_int_equal (cryptod_header_parse (kn->header.data, kn->header.len, &cs, id), 0);
    assert_int_equal (cs, CS);
    assert_string_equal (id, FILE_A);

    /* A 3-chunk file: 4096 + 4096 + 100 bytes.                         */
    const size_t sizes[] = {CS, CS, 100};
    uint8_t pt[3][CS];
    zframe_t *cts[3];
    uint8_t dek[32];
    assert_int_equal (cryptod_dek_unwrap (f->keyring, kn->kek_id, FILE_A,
                                          kn->wrapped_dek.data, kn->wrapped_dek.len, dek),
                      0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal (cm_random (pt[i], sizes[i]), 0);
        s_result_t r =
            s_chunk (f, true, FILE_A, kn, (uint64_t)i, i == 2, pt[i], sizes[i]);
        assert_non_null (r.reply);
        assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
        assert_int_equal (r.reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_ENCRYPT);
        assert_int_equal (r.reply->encrypt->index, (uint64_t)i);
        assert_int_equal (zmsg_size (r.blobs), 1);
        cts[i] = zmsg_pop (r.blobs);
        assert_int_equal (zframe_size (cts[i]), sizes[i] + CRYPTOD_TAG_LEN);
        /* What a user of docs/format.md would do: open it with the DEK. */
        uint8_t back[CS];
        assert_int_equal (cryptod_chunk_open (dek, kn->header.data, (uint64_t)i, i == 2,
                                              zframe_data (cts[i]), zframe_size (cts[i]),
                                              back),
                          0);
        assert_memory_equal (back, pt[i], sizes[i]);
        s_result_free (&r);
    }
    for (int i = 0; i < 3; i++) {
        s_result_t r = s_chunk (f, false, FILE_A, kn, (uint64_t)i, i == 2,
                                zframe_data (cts[i]), zframe_size (cts[i]));
        assert_non_null (r.reply);
        assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
        assert_int_equal (r.reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_DECRYPT);
        assert_int_equal (r.reply->decrypt->index, (uint64_t)i);
        assert_int_equal (zmsg_size (r.blobs), 1);
        zframe_t *p = zmsg_first (r.blobs);
        assert_int_equal (zframe_size (p), sizes[i]);
        assert_memory_equal (zframe_data (p), pt[i], sizes[i]);
        s_result_free (&r);
    }

    /* Tampered chunk, chunk at the wrong index, chunk 2 opened as not
       last (length check) / chunk 1 opened as last: never plaintext.   */
    uint8_t bad[CS + 16];
    memcpy (bad, zframe_data (cts[1]), CS + 16);
    bad[100] ^= 0x01;
    s_result_t r = s_chunk (f, false, FILE_A, kn, 1, false, bad, CS + 16);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNPROCESSABLE, "chunk_auth_failed");
    s_result_free (&r);
    r = s_chunk (f, false, FILE_A, kn, 0, false, zframe_data (cts[1]), CS + 16);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNPROCESSABLE, "chunk_auth_failed");
    s_result_free (&r);
    r = s_chunk (f, false, FILE_A, kn, 1, true, zframe_data (cts[1]), CS + 16);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNPROCESSABLE, "chunk_auth_failed");
    s_result_free (&r);

    /* The wrapped DEK is bound to its file: another file id whose header
       is otherwise valid fails to unwrap.                              */
    s_result_t key_b = s_key_new_call (f->dealer, FILE_B, CS);
    assert_non_null (key_b.reply);
    assert_int_equal (key_b.reply->status, SAFESHARE__STATUS__STATUS_OK);
    Safeshare__KeyNewReply mixed = *key_b.reply->key_new;
    mixed.wrapped_dek = kn->wrapped_dek;
    mixed.kek_id = kn->kek_id;
    r = s_chunk (f, false, FILE_B, &mixed, 0, false, zframe_data (cts[0]), CS + 16);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNPROCESSABLE, "dek_unwrap_failed");
    s_result_free (&r);
    s_result_free (&key_b);

    for (int i = 0; i < 3; i++) {
        zframe_destroy (&cts[i]);
    }
    s_result_free (&key);
}

/* Sends raw frames [empty][frames...] and returns the reply, if any.  */
static s_result_t
s_raw (s_fixture_t *f, zmsg_t *frames, int timeout_ms)
{
    zmsg_pushmem (frames, NULL, 0);
    zmsg_send (&frames, f->dealer);
    return s_recv_reply (f->dealer, timeout_ms);
}

static void
test_garbage_in (void **state)
{
    s_fixture_t *f = *state;
    s_result_t r;
    s_result_t key = s_key_new_call (f->dealer, FILE_A, CS);
    assert_int_equal (key.reply->status, SAFESHARE__STATUS__STATUS_OK);
    Safeshare__KeyNewReply *kn = key.reply->key_new;
    uint8_t chunk[CS + 32];
    memset (chunk, 7, sizeof chunk);

    /* Random bytes as the header.                                       */
    for (int i = 0; i < 20; i++) {
        uint8_t junk[97];
        assert_int_equal (cm_random (junk, sizeof junk), 0);
        zmsg_t *m = zmsg_new ();
        zmsg_addmem (m, junk, (size_t)(i + 1) * 4);
        r = s_raw (f, m, 2000);
        /* Either answered INVALID or (if the bytes happen to parse with
           no meta) still INVALID: never OK, never silence.              */
        assert_non_null (r.reply);
        assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_INVALID);
        s_result_free (&r);
    }
    /* No header frame at all, and an oversized header.                  */
    r = s_raw (f, zmsg_new (), 2000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "malformed_header");
    s_result_free (&r);
    zmsg_t *m = zmsg_new ();
    uint8_t *big = calloc (1, CM_MAX_HEADER + 1);
    zmsg_addmem (m, big, CM_MAX_HEADER + 1);
    free (big);
    r = s_raw (f, m, 2000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "malformed_header");
    s_result_free (&r);
    /* A message without the empty delimiter is dropped (no envelope to
       answer): the service carries on.                                 */
    m = zmsg_new ();
    zmsg_addstr (m, "no delimiter");
    zmsg_send (&m, f->dealer);

    /* Wrong protocol version.                                           */
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.version = 99;
    meta.request_id = "wrong-version";
    req.meta = &meta;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH;
    req.health = &s_health_body;
    m = zmsg_new ();
    zframe_t *head = cm_frame_pack ((ProtobufCMessage *)&req);
    zmsg_append (m, &head);
    r = s_raw (f, m, 2000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNSUPPORTED, "unsupported_version");
    s_result_free (&r);

    /* HEALTH with two blob frames: no request carries more than one;
       the broker refuses it before anything else (queue included).     */
    meta.version = CM_PROTO_VERSION;
    meta.request_id = "health-two-blobs";
    m = zmsg_new ();
    head = cm_frame_pack ((ProtobufCMessage *)&req);
    zmsg_append (m, &head);
    zmsg_addmem (m, NULL, 0);
    zmsg_addmem (m, NULL, 0);
    r = s_raw (f, m, 2000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_blob_count");
    s_result_free (&r);

    /* Missing body.                                                     */
    Safeshare__CryptoRequest empty = SAFESHARE__CRYPTO_REQUEST__INIT;
    r = s_call (f->dealer, &empty, NULL, 0);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "missing_body");
    s_result_free (&r);

    /* KEY_NEW field checks.                                             */
    r = s_key_new_call (f->dealer, "not-hex", CS);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_file_id");
    s_result_free (&r);
    r = s_key_new_call (f->dealer, "0123456789ABCDEF0123456789ABCDEF", CS);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_file_id");
    s_result_free (&r);
    r = s_key_new_call (f->dealer, FILE_A, 100);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_chunk_size");
    s_result_free (&r);
    {
        Safeshare__CryptoRequest kreq = SAFESHARE__CRYPTO_REQUEST__INIT;
        Safeshare__KeyNewRequest kbody = SAFESHARE__KEY_NEW_REQUEST__INIT;
        kbody.file_id = FILE_A;
        kreq.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW;
        kreq.key_new = &kbody;
        r = s_call (f->dealer, &kreq, "x", 1);
        s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_blob_count");
        s_result_free (&r);
    }
    /* Oversized file id (a 10 KB string).                               */
    char *long_id = malloc (10001);
    memset (long_id, 'a', 10000);
    long_id[10000] = '\0';
    r = s_key_new_call (f->dealer, long_id, CS);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_file_id");
    s_result_free (&r);

    /* ChunkRequest field checks, each answered with its own code.       */
    r = s_chunk (f, true, long_id, kn, 0, true, chunk, 10);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_file_id");
    s_result_free (&r);
    free (long_id);
    Safeshare__KeyNewReply alt = *kn;
    alt.kek_id = "xyz";
    r = s_chunk (f, true, FILE_A, &alt, 0, true, chunk, 10);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_kek_id");
    s_result_free (&r);
    alt = *kn;
    alt.kek_id = "0000000000000000";
    r = s_chunk (f, true, FILE_A, &alt, 0, true, chunk, 10);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_NOT_FOUND, "kek_not_found");
    s_result_free (&r);
    alt = *kn;
    alt.wrapped_dek.len = 59;
    r = s_chunk (f, true, FILE_A, &alt, 0, true, chunk, 10);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_wrapped_dek");
    s_result_free (&r);
    uint8_t wrapped[60];
    memcpy (wrapped, kn->wrapped_dek.data, 60);
    wrapped[30] ^= 1;
    alt = *kn;
    alt.wrapped_dek.data = wrapped;
    r = s_chunk (f, true, FILE_A, &alt, 0, true, chunk, 10);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNPROCESSABLE, "dek_unwrap_failed");
    s_result_free (&r);
    alt = *kn;
    alt.header.len = 47;
    r = s_chunk (f, true, FILE_A, &alt, 0, true, chunk, 10);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_header");
    s_result_free (&r);
    r = s_chunk (f, true, FILE_B, kn, 0, true, chunk, 10);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "header_file_mismatch");
    s_result_free (&r);
    r = s_chunk (f, true, FILE_A, kn, 0xFFFFFFFFull, true, chunk, 10);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_index");
    s_result_free (&r);
    /* Wrong blob counts: none, two.                                     */
    r = s_chunk (f, true, FILE_A, kn, 0, true, NULL, 0);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_blob_count");
    s_result_free (&r);
    {
        Safeshare__ChunkRequest c;
        Safeshare__CryptoRequest two = s_chunk_request (
            &c, true, FILE_A, kn->kek_id, kn->wrapped_dek, kn->header, 0, true);
        Safeshare__Meta m2;
        char buf[65];
        cm_meta_init (&m2, buf, "two-blobs", 5000);
        two.meta = &m2;
        zmsg_t *tm = zmsg_new ();
        zframe_t *th = cm_frame_pack ((ProtobufCMessage *)&two);
        zmsg_append (tm, &th);
        zmsg_addmem (tm, chunk, 10);
        zmsg_addmem (tm, chunk, 10);
        r = s_raw (f, tm, 5000);
        s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_blob_count");
        s_result_free (&r);
    }
    /* Chunk lengths: too big, short non-last, empty non-first last,
       decrypt shorter than a tag.                                       */
    r = s_chunk (f, true, FILE_A, kn, 0, true, chunk, CS + 1);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_chunk_length");
    s_result_free (&r);
    r = s_chunk (f, true, FILE_A, kn, 0, false, chunk, CS - 1);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_chunk_length");
    s_result_free (&r);
    r = s_chunk (f, true, FILE_A, kn, 3, true, chunk, 0);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_chunk_length");
    s_result_free (&r);
    r = s_chunk (f, false, FILE_A, kn, 0, true, chunk, 15);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_chunk_length");
    s_result_free (&r);
    r = s_chunk (f, false, FILE_A, kn, 0, true, chunk, CS + 17);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_chunk_length");
    s_result_free (&r);
    /* An empty file is valid: one empty last chunk, 16 bytes back.      */
    r = s_chunk (f, true, FILE_A, kn, 0, true, "", 0);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_int_equal (zframe_size (zmsg_first (r.blobs)), 16);
    zframe_t *empty_ct = zmsg_pop (r.blobs);
    s_result_free (&r);
    r = s_chunk (f, false, FILE_A, kn, 0, true, zframe_data (empty_ct), 16);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_int_equal (zframe_size (zmsg_first (r.blobs)), 0);
    s_result_free (&r);
    zframe_destroy (&empty_ct);

    /* After all that, HEALTH still answers OK with the right fields.    */
    r = s_call (f->dealer, &s_health_req, NULL, 0);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_string_equal (r.reply->health->service, "crypto");
    assert_string_equal (r.reply->health->version, SAFESHARE_VERSION);
    assert_true (r.reply->health->uptime_ms > 0);
    s_result_free (&r);
    s_result_free (&key);

    /* SIGTERM -> exit 0.                                                */
    assert_int_equal (cm_test_stop (f->pid, 5000), 0);
    f->pid = -1;
}

static void
test_missing_ring (void **state)
{
    (void)state;
    char *dir = cm_test_tmpdir ();
    char endpoint[600];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/run/crypto.sock", dir);
    pid_t pid = s_spawn (dir, endpoint);
    assert_true (pid > 0);
    assert_int_equal (s_wait_exit (pid, 10000), 2);

    /* A ring that group/other can read is refused too.                  */
    char keys[600], ring[700], id[17];
    snprintf (keys, sizeof keys, "%s/keys", dir);
    assert_int_equal (mkdir (keys, 0700), 0);
    snprintf (ring, sizeof ring, "%s/kek.ring", keys);
    assert_int_equal (cryptod_keyring_generate (ring, id), 0);
    assert_int_equal (chmod (ring, 0644), 0);
    pid = s_spawn (dir, endpoint);
    assert_true (pid > 0);
    assert_int_equal (s_wait_exit (pid, 10000), 2);
    cm_test_rmrf (dir);
    free (dir);
}

/* SAFESHARE_KEK_RING instead of a file (none in the data dir): KEY_NEW
   wraps with its last entry, and a chunk round-trips. A bad value is
   refused at the start (exit 2).                                      */
static void
test_env_ring (void **state)
{
    (void)state;
    s_fixture_t f;
    memset (&f, 0, sizeof f);
    f.dir = cm_test_tmpdir ();
    snprintf (f.endpoint, sizeof f.endpoint, "ipc://%s/run/crypto.sock", f.dir);
    char ring[] = "SAFESHARE_KEK_RING=0123456789abcdef "
                  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f;"
                  "fedcba9876543210 "
                  "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
    f.pid = s_spawn_ring (f.dir, f.endpoint, ring);
    assert_true (f.pid > 0);
    s_wait_health (f.endpoint, f.pid);
    f.dealer = cm_sock_client (f.endpoint, "crypto");
    s_result_t key = s_key_new_call (f.dealer, FILE_A, CS);
    assert_non_null (key.reply);
    assert_int_equal (key.reply->status, SAFESHARE__STATUS__STATUS_OK);
    Safeshare__KeyNewReply *kn = key.reply->key_new;
    assert_string_equal (kn->kek_id, "fedcba9876543210");
    uint8_t pt[100];
    memset (pt, 0x2a, sizeof pt);
    s_result_t r = s_chunk (&f, true, FILE_A, kn, 0, true, pt, sizeof pt);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    zframe_t *ct = zmsg_pop (r.blobs);
    s_result_free (&r);
    r = s_chunk (&f, false, FILE_A, kn, 0, true, zframe_data (ct), zframe_size (ct));
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_memory_equal (zframe_data (zmsg_first (r.blobs)), pt, sizeof pt);
    s_result_free (&r);
    zframe_destroy (&ct);
    s_result_free (&key);
    zsock_destroy (&f.dealer);
    assert_int_equal (cm_test_stop (f.pid, 5000), 0);

    char bad[] = "SAFESHARE_KEK_RING=0123456789abcdef 00";
    pid_t pid = s_spawn_ring (f.dir, f.endpoint, bad);
    assert_true (pid > 0);
    assert_int_equal (s_wait_exit (pid, 10000), 2);
    cm_test_rmrf (f.dir);
    free (f.dir);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s PATH/TO/safeshare-crypto\n", argv[0]);
        return 2;
    }
    s_binary = argv[1];
    cm_log_init ("test", CM_LOG_WARN);
    safeshare__health_request__init (&s_health_body);
    safeshare__crypto_request__init (&s_health_req);
    s_health_req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH;
    s_health_req.health = &s_health_body;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_garbage_in, s_setup, s_teardown),
        cmocka_unit_test (test_missing_ring),
        cmocka_unit_test (test_env_ring),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
