/*  svc_storage -- the real safeshare-storage binary over its socket:
    begin -> append -> commit -> get/list -> read back -> links -> delete,
    pending files invisible, abort, field validation, visibility, the
    name filter, FILE_UPDATE, LINK_LIST / GET / REVOKE, peek and
    signed-in-only redeems, 50 concurrent redeems of a one-time link
    over two processes, garbage-in, the start-up sweep across a
    restart, SIGTERM -> exit 0.
    usage: test_storage_svc PATH/TO/safeshare-storage                    */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_db.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "storage.pb-c.h"
#include "stord_test_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OWNER   "0123456789abcdef0123456789abcdef"
#define TIMEOUT 5000

static struct {
    const char *bin;
    char *tmp;
    char env_data[600];
    char env_ep[700];
    char blobs[700];
    pid_t pid;
    zsock_t *sock;
} g;

/* ---- helpers ---------------------------------------------------------- */

typedef Safeshare__StorageReply reply_t;

static reply_t *
s_call (Safeshare__StorageRequest *rq, zmsg_t **blobs, zmsg_t **blobs_out, int timeout_ms)
{
    return stord_test_call (g.sock, rq, blobs, blobs_out, timeout_ms);
}

static reply_t *
s_health (int timeout_ms)
{
    return stord_test_health (g.sock, timeout_ms);
}

static void
s_start (void)
{
    char *argv[] = {(char *)g.bin, NULL};
    char *env[] = {g.env_data, g.env_ep, "SAFESHARE_LOG_LEVEL=error", NULL};
    g.pid = cm_test_spawn (g.bin, argv, env);
    assert_true (g.pid > 0);
    stord_test_wait_ready (g.sock, g.pid, 15000);
}

static char *
s_begin (const char *name, uint32_t chunk_size)
{
    Safeshare__FileBeginRequest b = SAFESHARE__FILE_BEGIN_REQUEST__INIT;
    b.name = (char *)name;
    b.content_type = "application/pdf";
    b.owner_id = OWNER;
    b.chunk_size = chunk_size;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_BEGIN;
    rq.file_begin = &b;
    reply_t *r = s_call (&rq, NULL, NULL, TIMEOUT);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->body_case, SAFESHARE__STORAGE_REPLY__BODY_FILE_BEGIN);
    assert_true (cm_is_hex_id (r->file_begin->file_id, 32));
    char *id = strdup (r->file_begin->file_id);
    stord_test_free (&r);
    return id;
}

static reply_t *
s_append (const char *id, uint64_t offset, const void *data, size_t len)
{
    return stord_test_append (g.sock, id, offset, data, len, TIMEOUT);
}

static reply_t *
s_commit_ms (const char *id, uint64_t size, uint64_t chunks, uint64_t blob_size,
             int timeout_ms)
{
    static uint8_t dek[60] = {1, 2, 3, 4, 5};
    Safeshare__FileCommitRequest c = SAFESHARE__FILE_COMMIT_REQUEST__INIT;
    c.file_id = (char *)id;
    c.size = size;
    c.sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    c.chunk_count = chunks;
    c.kek_id = "00112233aabbccdd";
    c.wrapped_dek.data = dek;
    c.wrapped_dek.len = sizeof dek;
    c.blob_size = blob_size;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_COMMIT;
    rq.file_commit = &c;
    return s_call (&rq, NULL, NULL, timeout_ms);
}

static reply_t *
s_commit (const char *id, uint64_t size, uint64_t chunks, uint64_t blob_size)
{
    return s_commit_ms (id, size, chunks, blob_size, TIMEOUT);
}

/* The blob of an empty file (docs/format.md): header + one 16-byte tag. */
#define EMPTY_BLOB 64

static void
s_append_empty_blob (const char *id, uint8_t blob[EMPTY_BLOB])
{
    assert_int_equal (cm_random (blob, EMPTY_BLOB), 0);
    reply_t *r = s_append (id, 0, blob, EMPTY_BLOB);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->blob_append->blob_size, EMPTY_BLOB);
    stord_test_free (&r);
}

static reply_t *
s_get (const char *id)
{
    return stord_test_get (g.sock, id, TIMEOUT);
}

static reply_t *
s_list (uint32_t limit, const char *cursor)
{
    Safeshare__FileListRequest q = SAFESHARE__FILE_LIST_REQUEST__INIT;
    q.limit = limit;
    q.cursor = (char *)cursor;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_LIST;
    rq.file_list = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

static reply_t *
s_read (const char *id, uint64_t offset, uint32_t length, zmsg_t **blobs_out)
{
    Safeshare__BlobReadRequest q = SAFESHARE__BLOB_READ_REQUEST__INIT;
    q.file_id = (char *)id;
    q.offset = offset;
    q.length = length;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_BLOB_READ;
    rq.blob_read = &q;
    return s_call (&rq, NULL, blobs_out, TIMEOUT);
}

static reply_t *
s_delete (const char *id)
{
    return stord_test_delete (g.sock, id, TIMEOUT);
}

static reply_t *
s_abort (const char *id)
{
    return stord_test_abort (g.sock, id, TIMEOUT);
}

static reply_t *
s_link (const char *id, uint64_t expires_in, uint32_t max_downloads)
{
    Safeshare__LinkCreateRequest q = SAFESHARE__LINK_CREATE_REQUEST__INIT;
    q.file_id = (char *)id;
    q.creator_id = OWNER;
    q.expires_in = expires_in;
    q.max_downloads = max_downloads;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_CREATE;
    rq.link_create = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

static reply_t *
s_redeem_as (const char *token, bool signed_in, bool peek)
{
    Safeshare__LinkRedeemRequest q = SAFESHARE__LINK_REDEEM_REQUEST__INIT;
    q.token = (char *)token;
    q.signed_in = signed_in;
    q.peek = peek;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_REDEEM;
    rq.link_redeem = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

static reply_t *
s_redeem (const char *token)
{
    return s_redeem_as (token, false, false);
}

static void
s_blob_path (const char *id, bool pending, char *out, size_t len)
{
    if (pending) {
        snprintf (out, len, "%s/tmp/%s.part", g.blobs, id);
    } else {
        snprintf (out, len, "%s/%.2s/%s", g.blobs, id, id);
    }
}

static bool
s_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}

static bool
s_listed (const char *id)
{
    reply_t *r = s_list (200, "");
    stord_test_expect (r, CM_OK, NULL);
    bool found = false;
    for (size_t i = 0; i < r->file_list->n_files; i++) {
        found |= strcmp (r->file_list->files[i]->id, id) == 0;
    }
    stord_test_free (&r);
    return found;
}

/* ---- tests ------------------------------------------------------------ */

static void
test_health (void **state)
{
    reply_t *r = s_health (TIMEOUT);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->body_case, SAFESHARE__STORAGE_REPLY__BODY_HEALTH);
    assert_string_equal (r->health->service, "storage");
    assert_string_equal (r->health->version, SAFESHARE_VERSION);
    stord_test_free (&r);
}

static void
test_upload_roundtrip (void **state)
{
    /* A blob shaped like the real one: header + two chunks.            */
    enum { HDR = 48, C0 = 4096 + 16, C1 = 100 + 16, TOTAL = HDR + C0 + C1 };
    static uint8_t blob[TOTAL];
    assert_int_equal (cm_random (blob, sizeof blob), 0);
    char *id = s_begin ("Quarterly report \xc3\xbc.pdf", 4096);
    char part[1024], final[1024];
    s_blob_path (id, true, part, sizeof part);
    s_blob_path (id, false, final, sizeof final);
    assert_true (s_exists (part));

    /* Pending: invisible everywhere.                                    */
    reply_t *r = s_get (id);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    assert_false (s_listed (id));
    r = s_link (id, 60, 1);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    r = s_read (id, 0, 1, NULL);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);

    r = s_append (id, 0, blob, HDR);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->blob_append->blob_size, HDR);
    stord_test_free (&r);
    r = s_append (id, HDR, blob + HDR, C0);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->blob_append->blob_size, HDR + C0);
    stord_test_free (&r);
    /* The retry of a lost reply is answered OK; a gap or overlap not.  */
    r = s_append (id, HDR, blob + HDR, C0);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->blob_append->blob_size, HDR + C0);
    stord_test_free (&r);
    r = s_append (id, HDR + C0 + 1, blob + HDR + C0, C1);
    stord_test_expect (r, CM_CONFLICT, "offset_mismatch");
    assert_int_equal (r->body_case, SAFESHARE__STORAGE_REPLY__BODY_BLOB_APPEND);
    assert_int_equal (r->blob_append->blob_size, HDR + C0); /* where to resume */
    stord_test_free (&r);
    r = s_append (id, 10, blob + 10, 5);
    stord_test_expect (r, CM_CONFLICT, "offset_mismatch");
    stord_test_free (&r);
    /* Commit must name the stored size: the layout fits, the bytes are
       not all there yet.                                                */
    r = s_commit (id, 4096 + 100, 2, TOTAL);
    stord_test_expect (r, CM_CONFLICT, "blob_size_mismatch");
    stord_test_free (&r);
    r = s_append (id, HDR + C0, blob + HDR + C0, C1);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->blob_append->blob_size, TOTAL);
    stord_test_free (&r);

    /* The layout arithmetic is checked before the bytes.               */
    r = s_commit (id, 4096 + 100, 2, TOTAL - 1);
    stord_test_expect (r, CM_INVALID, "invalid_blob_size");
    stord_test_free (&r);
    r = s_commit (id, 4096 + 100, 7, TOTAL);
    stord_test_expect (r, CM_INVALID, "invalid_chunk_count");
    stord_test_free (&r);
    assert_false (s_listed (id));
    r = s_commit (id, 4096 + 100, 2, TOTAL);
    stord_test_expect (r, CM_OK, NULL);
    Safeshare__FileInfo *fi = r->file_commit->file;
    assert_string_equal (fi->id, id);
    assert_int_equal (fi->blob_size, TOTAL);
    stord_test_free (&r);
    /* A repeated commit (lost reply) is answered the same.              */
    r = s_commit (id, 4096 + 100, 2, TOTAL);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    assert_false (s_exists (part));
    assert_true (s_exists (final));
    r = s_append (id, TOTAL, "x", 1);
    stord_test_expect (r, CM_CONFLICT, "file_committed");
    stord_test_free (&r);

    /* Get and list show exactly what was committed.                     */
    r = s_get (id);
    stord_test_expect (r, CM_OK, NULL);
    fi = r->file_get->file;
    assert_string_equal (fi->name, "Quarterly report \xc3\xbc.pdf");
    assert_string_equal (fi->content_type, "application/pdf");
    assert_string_equal (fi->owner_id, OWNER);
    assert_int_equal (fi->size, 4196);
    assert_int_equal (fi->chunk_size, 4096);
    assert_int_equal (fi->chunk_count, 2);
    assert_string_equal (fi->kek_id, "00112233aabbccdd");
    assert_int_equal (fi->wrapped_dek.len, 60);
    assert_int_equal (fi->wrapped_dek.data[4], 5);
    assert_string_equal (
        fi->sha256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    assert_true (fi->created_at > 0);
    stord_test_free (&r);
    assert_true (s_listed (id));

    /* Read back in the gateway's pieces: bytes equal.                   */
    static uint8_t back[TOTAL];
    const uint32_t pieces[][2] = {{0, HDR}, {HDR, C0}, {HDR + C0, C1}};
    for (int i = 0; i < 3; i++) {
        zmsg_t *frames = NULL;
        r = s_read (id, pieces[i][0], pieces[i][1], &frames);
        stord_test_expect (r, CM_OK, NULL);
        assert_int_equal (r->blob_read->offset, pieces[i][0]);
        assert_non_null (frames);
        assert_int_equal (zmsg_size (frames), 1);
        zframe_t *fr = zmsg_first (frames);
        assert_int_equal (zframe_size (fr), pieces[i][1]);
        memcpy (back + pieces[i][0], zframe_data (fr), zframe_size (fr));
        zmsg_destroy (&frames);
        stord_test_free (&r);
    }
    assert_memory_equal (back, blob, TOTAL);
    /* The file on disk holds exactly these bytes.                       */
    size_t disk_len = 0;
    char *disk = cm_file_read (final, 1 << 20, &disk_len);
    assert_non_null (disk);
    assert_int_equal (disk_len, TOTAL);
    assert_memory_equal (disk, blob, TOTAL);
    free (disk);
    r = s_read (id, TOTAL - 10, 11, NULL);
    stord_test_expect (r, CM_INVALID, "invalid_range");
    stord_test_free (&r);
    r = s_read (id, 0, 0, NULL);
    stord_test_expect (r, CM_INVALID, "invalid_range");
    stord_test_free (&r);
    r = s_read (id, 0, 16 * 1024 * 1024 + 17, NULL);
    stord_test_expect (r, CM_INVALID, "invalid_range");
    stord_test_free (&r);

    /* Links: one-time, then used up; a multi-use one outlives nothing
       once the file is deleted.                                         */
    r = s_link (id, 3600, 1);
    stord_test_expect (r, CM_OK, NULL);
    char *token = strdup (r->link_create->token);
    assert_int_equal (strlen (token), 43);
    assert_true (cm_is_hex_id (r->link_create->link_id, 32));
    uint64_t now = cm_now_s ();
    assert_true (r->link_create->expires_at >= now + 3599 &&
                 r->link_create->expires_at <= now + 3601);
    stord_test_free (&r);
    r = s_redeem (token);
    stord_test_expect (r, CM_OK, NULL);
    assert_string_equal (r->link_redeem->file->id, id);
    assert_int_equal (r->link_redeem->file->blob_size, TOTAL);
    assert_int_equal (r->link_redeem->downloads_left, 0);
    stord_test_free (&r);
    r = s_redeem (token);
    stord_test_expect (r, CM_GONE, "link_exhausted");
    stord_test_free (&r);
    r = s_link (id, 3600, 5);
    stord_test_expect (r, CM_OK, NULL);
    char *token5 = strdup (r->link_create->token);
    stord_test_free (&r);
    r = s_redeem ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    stord_test_expect (r, CM_NOT_FOUND, "link_not_found");
    stord_test_free (&r);
    r = s_link (id, 0, 1);
    stord_test_expect (r, CM_INVALID, "invalid_expiry");
    stord_test_free (&r);
    r = s_link (id, 604801, 1);
    stord_test_expect (r, CM_INVALID, "invalid_expiry");
    stord_test_free (&r);
    r = s_link (id, 60, 0);
    stord_test_expect (r, CM_INVALID, "invalid_max_downloads");
    stord_test_free (&r);
    r = s_link (id, 60, 10001);
    stord_test_expect (r, CM_INVALID, "invalid_max_downloads");
    stord_test_free (&r);

    /* Delete: row, key and links gone, then the blob.                   */
    r = s_delete (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    assert_false (s_exists (final));
    r = s_get (id);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    r = s_read (id, 0, 1, NULL);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    r = s_redeem (token5);
    stord_test_expect (r, CM_NOT_FOUND, "link_not_found");
    stord_test_free (&r);
    r = s_delete (id);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    assert_false (s_listed (id));
    free (token);
    free (token5);
    free (id);
}

static void
test_abort (void **state)
{
    char *id = s_begin ("draft.docx", 1048576);
    char part[1024];
    s_blob_path (id, true, part, sizeof part);
    reply_t *r = s_append (id, 0, "partial", 7);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    r = s_abort (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    assert_false (s_exists (part));
    r = s_append (id, 7, "more", 4);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    r = s_commit (id, 7, 1, 48 + 7 + 16);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    r = s_abort (id);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    free (id);

    /* A committed file cannot be aborted (that is FILE_DELETE).        */
    id = s_begin ("empty.txt", 4096);
    uint8_t empty[EMPTY_BLOB];
    s_append_empty_blob (id, empty);
    r = s_commit (id, 0, 1, EMPTY_BLOB);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    r = s_abort (id);
    stord_test_expect (r, CM_CONFLICT, "file_committed");
    stord_test_free (&r);
    r = s_delete (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    free (id);
}

/* Storage checks docs/format.md's layout arithmetic: chunk_count is
   max(1, ceil(size / chunk_size)) and blob_size is 48 + size + 16 per
   chunk. An extra empty last chunk (which never decrypts) is refused.  */
static void
test_commit_layout (void **state)
{
    /* size = 1 * chunk_size: one full last chunk.                      */
    enum { CS = 4096, ONE = 48 + CS + 16 };
    static uint8_t blob[ONE + 16];
    assert_int_equal (cm_random (blob, sizeof blob), 0);
    char *id = s_begin ("exact.bin", CS);
    reply_t *r = s_append (id, 0, blob, ONE);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    /* k + 1 chunks for size k * chunk_size, even with a matching blob. */
    r = s_commit (id, CS, 2, ONE + 16);
    stord_test_expect (r, CM_INVALID, "invalid_chunk_count");
    stord_test_free (&r);
    r = s_commit (id, CS, 0, ONE);
    stord_test_expect (r, CM_INVALID, "invalid_chunk_count");
    stord_test_free (&r);
    /* The right count with a blob_size off the layout.                 */
    r = s_commit (id, CS, 1, ONE + 16);
    stord_test_expect (r, CM_INVALID, "invalid_blob_size");
    stord_test_free (&r);
    r = s_commit (id, CS, 1, ONE - 1);
    stord_test_expect (r, CM_INVALID, "invalid_blob_size");
    stord_test_free (&r);
    assert_false (s_listed (id));
    r = s_commit (id, CS, 1, ONE);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->file_commit->file->chunk_count, 1);
    assert_int_equal (r->file_commit->file->blob_size, ONE);
    stord_test_free (&r);
    r = s_delete (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    free (id);

    /* An empty file: one chunk (not zero), blob = header + tag.        */
    id = s_begin ("empty.bin", CS);
    uint8_t empty[EMPTY_BLOB];
    s_append_empty_blob (id, empty);
    r = s_commit (id, 0, 0, 48);
    stord_test_expect (r, CM_INVALID, "invalid_chunk_count");
    stord_test_free (&r);
    r = s_commit (id, 0, 1, 48);
    stord_test_expect (r, CM_INVALID, "invalid_blob_size");
    stord_test_free (&r);
    r = s_commit (id, 0, 1, EMPTY_BLOB);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    r = s_delete (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    free (id);
}

/* FILE_COMMIT while another connection holds the DB's write lock: the
   blob is already in place when the UPDATE fails, so the answer must be
   UNAVAILABLE "storage_busy" and the retry must find that blob and
   finish (it used to answer file_not_found and lose the upload).       */
static void
test_commit_db_busy (void **state)
{
    char *id = s_begin ("busy.bin", 4096);
    uint8_t blob[EMPTY_BLOB];
    s_append_empty_blob (id, blob);
    char part[1024], final[1024], url[700];
    s_blob_path (id, true, part, sizeof part);
    s_blob_path (id, false, final, sizeof final);

    snprintf (url, sizeof url, "sqlite:%s/storage.db", g.tmp);
    cm_db_t *db = cm_db_open (url);
    assert_non_null (db);
    assert_int_equal (cm_db_begin (db), 0); /* BEGIN IMMEDIATE: the write lock */
    /* The service waits out its busy timeout (5 s) before answering.   */
    reply_t *r = s_commit_ms (id, 0, 1, EMPTY_BLOB, 20000);
    stord_test_expect (r, CM_UNAVAILABLE, "storage_busy");
    stord_test_free (&r);
    /* The failure hit after the rename: no .part left, blob in place.  */
    assert_false (s_exists (part));
    assert_true (s_exists (final));
    assert_int_equal (cm_db_rollback (db), 0);
    cm_db_destroy (&db);

    r = s_get (id);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found"); /* still invisible */
    stord_test_free (&r);
    r = s_commit (id, 0, 1, EMPTY_BLOB);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->file_commit->file->blob_size, EMPTY_BLOB);
    stord_test_free (&r);
    /* A retry naming another size is still refused.                    */
    r = s_commit (id, 1, 1, EMPTY_BLOB + 1);
    stord_test_expect (r, CM_CONFLICT, "file_committed");
    stord_test_free (&r);
    zmsg_t *frames = NULL;
    r = s_read (id, 0, EMPTY_BLOB, &frames);
    stord_test_expect (r, CM_OK, NULL);
    assert_non_null (frames);
    assert_int_equal (zframe_size (zmsg_first (frames)), EMPTY_BLOB);
    assert_memory_equal (zframe_data (zmsg_first (frames)), blob, EMPTY_BLOB);
    zmsg_destroy (&frames);
    stord_test_free (&r);
    assert_true (s_listed (id));
    r = s_delete (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    free (id);
}

static void
s_begin_expect (const char *name, const char *ct, const char *owner, uint32_t chunk,
                const char *code)
{
    Safeshare__FileBeginRequest b = SAFESHARE__FILE_BEGIN_REQUEST__INIT;
    b.name = (char *)name;
    b.content_type = (char *)ct;
    b.owner_id = (char *)owner;
    b.chunk_size = chunk;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_BEGIN;
    rq.file_begin = &b;
    reply_t *r = s_call (&rq, NULL, NULL, TIMEOUT);
    stord_test_expect (r, CM_INVALID, code);
    stord_test_free (&r);
}

static void
test_validation (void **state)
{
    char long_name[300];
    memset (long_name, 'a', 256);
    long_name[256] = '\0';
    const char *ct = "application/pdf";
    s_begin_expect ("", ct, OWNER, 4096, "invalid_name");
    s_begin_expect (long_name, ct, OWNER, 4096, "invalid_name");
    s_begin_expect ("a\nb.pdf", ct, OWNER, 4096, "invalid_name");
    s_begin_expect ("a\x7f.pdf", ct, OWNER, 4096, "invalid_name");
    s_begin_expect ("a\xc2\x85.pdf", ct, OWNER, 4096, "invalid_name"); /* U+0085 */
    s_begin_expect ("bad \xff utf8", ct, OWNER, 4096, "invalid_name");
    s_begin_expect ("overlong \xc0\xaf", ct, OWNER, 4096, "invalid_name");
    s_begin_expect ("surrogate \xed\xa0\x80", ct, OWNER, 4096, "invalid_name");
    s_begin_expect ("cut \xe2\x82", ct, OWNER, 4096, "invalid_name");
    long_name[255] = '\0';
    s_begin_expect (long_name, "text", OWNER, 4096, "invalid_content_type");
    s_begin_expect ("a.pdf", "text/plain; charset=utf-8", OWNER, 4096,
                    "invalid_content_type");
    s_begin_expect ("a.pdf", "/plain", OWNER, 4096, "invalid_content_type");
    s_begin_expect ("a.pdf", ct, "0123456789ABCDEF0123456789ABCDEF", 4096,
                    "invalid_owner_id");
    s_begin_expect ("a.pdf", ct, "", 4096, "invalid_owner_id");
    s_begin_expect ("a.pdf", ct, OWNER, 4095, "invalid_chunk_size");
    s_begin_expect ("a.pdf", ct, OWNER, 16 * 1024 * 1024 + 1, "invalid_chunk_size");
    /* 255 bytes of name (with a multi-byte character) is fine.          */
    memset (long_name, 'b', 253);
    memcpy (long_name + 253, "\xc3\xbc", 3);
    char *id = s_begin (long_name, 16 * 1024 * 1024);
    reply_t *r = s_abort (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    free (id);

    r = s_get ("../../etc/passwd");
    stord_test_expect (r, CM_INVALID, "invalid_file_id");
    stord_test_free (&r);
    r = s_list (201, "");
    stord_test_expect (r, CM_INVALID, "invalid_limit");
    stord_test_free (&r);
    r = s_list (0, "not-a-cursor");
    stord_test_expect (r, CM_INVALID, "invalid_cursor");
    stord_test_free (&r);
    r = s_redeem ("has space");
    stord_test_expect (r, CM_INVALID, "invalid_token");
    stord_test_free (&r);
    r = s_redeem ("");
    stord_test_expect (r, CM_INVALID, "invalid_token");
    stord_test_free (&r);
}

static void
test_list_paging (void **state)
{
    char *ids[5];
    for (int i = 0; i < 5; i++) {
        ids[i] = s_begin ("page.bin", 4096);
        uint8_t empty[EMPTY_BLOB];
        s_append_empty_blob (ids[i], empty);
        reply_t *r = s_commit (ids[i], 0, 1, EMPTY_BLOB);
        stord_test_expect (r, CM_OK, NULL);
        stord_test_free (&r);
    }
    char cursor[128] = "";
    int seen = 0, pages = 0;
    do {
        reply_t *r = s_list (2, cursor);
        stord_test_expect (r, CM_OK, NULL);
        assert_true (r->file_list->n_files <= 2);
        seen += (int)r->file_list->n_files;
        snprintf (cursor, sizeof cursor, "%s", r->file_list->next_cursor);
        pages++;
        stord_test_free (&r);
    } while (cursor[0] && pages < 10);
    assert_int_equal (seen, 5);
    assert_int_equal (pages, 3);
    reply_t *r = s_list (0, ""); /* 0 -> default 50 */
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->file_list->n_files, 5);
    assert_string_equal (r->file_list->next_cursor, "");
    stord_test_free (&r);
    for (int i = 0; i < 5; i++) {
        r = s_delete (ids[i]);
        stord_test_expect (r, CM_OK, NULL);
        stord_test_free (&r);
        free (ids[i]);
    }
}

/* Raw frames from a second DEALER; returns the reply or NULL.           */
static reply_t *
s_raw (zsock_t *raw, zmsg_t **msg, bool expect_reply)
{
    assert_int_equal (zmsg_send (msg, raw), 0);
    zsock_set_rcvtimeo (raw, expect_reply ? TIMEOUT : 300);
    zmsg_t *in = zmsg_recv (raw);
    if (!in) {
        return NULL;
    }
    zframe_t *delim = zmsg_pop (in);
    zframe_t *head = zmsg_pop (in);
    assert_non_null (delim);
    assert_int_equal (zframe_size (delim), 0);
    assert_non_null (head);
    reply_t *r =
        (reply_t *)protobuf_c_message_unpack (&safeshare__storage_reply__descriptor, NULL,
                                              zframe_size (head), zframe_data (head));
    zframe_destroy (&delim);
    zframe_destroy (&head);
    zmsg_destroy (&in);
    return r;
}

static zmsg_t *
s_packed (Safeshare__StorageRequest *rq, uint32_t version, int nblobs)
{
    char reqbuf[65];
    Safeshare__Meta meta;
    cm_meta_init (&meta, reqbuf, NULL, TIMEOUT);
    meta.version = version;
    rq->meta = &meta;
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zframe_t *head = cm_frame_pack (&rq->base);
    zmsg_append (msg, &head);
    for (int i = 0; i < nblobs; i++) {
        zmsg_addmem (msg, "blob", 4);
    }
    rq->meta = NULL;
    return msg;
}

static void
test_garbage_in (void **state)
{
    zsock_t *raw = zsock_new (ZMQ_DEALER);
    assert_non_null (raw);
    zsock_set_linger (raw, 0);
    assert_int_equal (
        zsock_connect (raw, "%s", g.env_ep + strlen ("SAFESHARE_STORAGE_ENDPOINT=")), 0);
    uint8_t junk[512];
    reply_t *r;

    /* Random bytes as the header. */
    for (int i = 0; i < 20; i++) {
        assert_int_equal (cm_random (junk, sizeof junk), 0);
        zmsg_t *m = zmsg_new ();
        zmsg_addmem (m, NULL, 0);
        zmsg_addmem (m, junk, (size_t)(junk[0] + 1));
        r = s_raw (raw, &m, false);
        if (r) { /* random bytes may happen to parse; never OK though */
            assert_int_not_equal (r->status, CM_OK);
            stord_test_free (&r);
        }
    }
    /* No header frame at all; no delimiter (dropped, no reply).         */
    zmsg_t *m = zmsg_new ();
    zmsg_addmem (m, NULL, 0);
    r = s_raw (raw, &m, true);
    stord_test_expect (r, CM_INVALID, NULL);
    stord_test_free (&r);
    m = zmsg_new ();
    zmsg_addmem (m, "no-delimiter", 12);
    r = s_raw (raw, &m, false);
    assert_null (r);
    /* Oversized header. */
    m = zmsg_new ();
    zmsg_addmem (m, NULL, 0);
    uint8_t *big = calloc (1, CM_MAX_HEADER + 1);
    zmsg_addmem (m, big, CM_MAX_HEADER + 1);
    free (big);
    r = s_raw (raw, &m, true);
    stord_test_expect (r, CM_INVALID, NULL);
    stord_test_free (&r);

    Safeshare__HealthRequest h = SAFESHARE__HEALTH_REQUEST__INIT;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_HEALTH;
    rq.health = &h;
    /* Wrong protocol version. */
    m = s_packed (&rq, 99, 0);
    r = s_raw (raw, &m, true);
    stord_test_expect (r, CM_UNSUPPORTED, NULL);
    stord_test_free (&r);
    /* Blob where none belongs. */
    m = s_packed (&rq, CM_PROTO_VERSION, 1);
    r = s_raw (raw, &m, true);
    stord_test_expect (r, CM_INVALID, "invalid_blob_count");
    stord_test_free (&r);
    /* Missing body. */
    Safeshare__StorageRequest empty = SAFESHARE__STORAGE_REQUEST__INIT;
    m = s_packed (&empty, CM_PROTO_VERSION, 0);
    r = s_raw (raw, &m, true);
    stord_test_expect (r, CM_INVALID, "missing_body");
    stord_test_free (&r);
    /* Append with zero or two blobs. */
    char *id = s_begin ("g.bin", 4096);
    Safeshare__BlobAppendRequest a = SAFESHARE__BLOB_APPEND_REQUEST__INIT;
    a.file_id = id;
    Safeshare__StorageRequest arq = SAFESHARE__STORAGE_REQUEST__INIT;
    arq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_BLOB_APPEND;
    arq.blob_append = &a;
    for (int n = 0; n <= 2; n += 2) {
        m = s_packed (&arq, CM_PROTO_VERSION, n);
        r = s_raw (raw, &m, true);
        stord_test_expect (r, CM_INVALID, "invalid_blob_count");
        stord_test_free (&r);
    }
    /* Oversized fields. */
    char huge[5000];
    memset (huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    a.file_id = huge;
    m = s_packed (&arq, CM_PROTO_VERSION, 1);
    r = s_raw (raw, &m, true);
    stord_test_expect (r, CM_INVALID, "invalid_file_id");
    stord_test_free (&r);
    r = s_redeem (huge);
    stord_test_expect (r, CM_INVALID, "invalid_token");
    stord_test_free (&r);
    s_begin_expect (huge, "a/b", OWNER, 4096, "invalid_name");
    s_begin_expect ("a", huge, OWNER, 4096, "invalid_content_type");
    r = s_list (10, huge);
    stord_test_expect (r, CM_INVALID, "invalid_cursor");
    stord_test_free (&r);
    r = s_abort (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    free (id);
    zsock_destroy (&raw);

    /* Still healthy. */
    r = s_health (TIMEOUT);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    assert_false (cm_test_exited (g.pid));
}

/* Stop (exit 0), plant what a crash leaves, restart: the sweep removes
   the orphans and keeps committed files.                               */
static void
test_restart_sweeps (void **state)
{
    char *kept = s_begin ("kept.bin", 4096);
    uint8_t kept_blob[EMPTY_BLOB];
    s_append_empty_blob (kept, kept_blob);
    reply_t *r = s_commit (kept, 0, 1, EMPTY_BLOB);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    /* A pending upload left unfinished for two hours.                   */
    char *stale = s_begin ("stale.bin", 4096);
    assert_int_equal (cm_test_stop (g.pid, 10000), 0);
    g.pid = 0;

    char stale_part[1024], orphan[1024], dir[1024], orphan_id[33];
    s_blob_path (stale, true, stale_part, sizeof stale_part);
    struct timespec old[2] = {{time (NULL) - 7200, 0}, {time (NULL) - 7200, 0}};
    assert_int_equal (utimensat (AT_FDCWD, stale_part, old, 0), 0);
    assert_int_equal (cm_random_hex (orphan_id, 16), 0);
    snprintf (dir, sizeof dir, "%s/%.2s", g.blobs, orphan_id);
    mkdir (dir, 0700);
    s_blob_path (orphan_id, false, orphan, sizeof orphan);
    assert_int_equal (cm_file_write_atomic (orphan, "orphan", 6, 0600), 0);

    s_start ();
    assert_false (s_exists (orphan));
    assert_false (s_exists (stale_part));
    r = s_append (stale, 0, "late", 4);
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    zmsg_t *frames = NULL;
    r = s_read (kept, 0, EMPTY_BLOB, &frames);
    stord_test_expect (r, CM_OK, NULL);
    assert_memory_equal (zframe_data (zmsg_first (frames)), kept_blob, EMPTY_BLOB);
    zmsg_destroy (&frames);
    stord_test_free (&r);
    free (kept);
    free (stale);
}

/* A committed empty file named name with that visibility ("" = the
   default); its id (caller frees).                                     */
static char *
s_file_named (const char *name, const char *visibility)
{
    Safeshare__FileBeginRequest b = SAFESHARE__FILE_BEGIN_REQUEST__INIT;
    b.name = (char *)name;
    b.content_type = "text/plain";
    b.owner_id = OWNER;
    b.chunk_size = 4096;
    b.visibility = (char *)visibility;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_BEGIN;
    rq.file_begin = &b;
    reply_t *r = s_call (&rq, NULL, NULL, TIMEOUT);
    stord_test_expect (r, CM_OK, NULL);
    char *id = strdup (r->file_begin->file_id);
    stord_test_free (&r);
    uint8_t blob[EMPTY_BLOB];
    s_append_empty_blob (id, blob);
    r = s_commit (id, 0, 1, EMPTY_BLOB);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    return id;
}

static reply_t *
s_find (const char *name, bool clients_only)
{
    Safeshare__FileListRequest q = SAFESHARE__FILE_LIST_REQUEST__INIT;
    q.limit = 200;
    q.name = (char *)name;
    q.clients_only = clients_only;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_LIST;
    rq.file_list = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

static reply_t *
s_update (const char *id, const char *name, const char *visibility)
{
    Safeshare__FileUpdateRequest q = SAFESHARE__FILE_UPDATE_REQUEST__INIT;
    q.file_id = (char *)id;
    q.name = (char *)name;
    q.visibility = (char *)visibility;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_UPDATE;
    rq.file_update = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

static reply_t *
s_link_ex (const char *id, const char *creator, uint32_t max_downloads,
           bool signed_in_only)
{
    Safeshare__LinkCreateRequest q = SAFESHARE__LINK_CREATE_REQUEST__INIT;
    q.file_id = (char *)id;
    q.creator_id = (char *)creator;
    q.expires_in = 600;
    q.max_downloads = max_downloads;
    q.signed_in_only = signed_in_only;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_CREATE;
    rq.link_create = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

static reply_t *
s_link_list (const char *file_id, const char *creator)
{
    Safeshare__LinkListRequest q = SAFESHARE__LINK_LIST_REQUEST__INIT;
    q.file_id = (char *)file_id;
    q.creator_id = (char *)creator;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_LIST;
    rq.link_list = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

static reply_t *
s_link_get (const char *link_id)
{
    Safeshare__LinkGetRequest q = SAFESHARE__LINK_GET_REQUEST__INIT;
    q.link_id = (char *)link_id;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_GET;
    rq.link_get = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

static reply_t *
s_link_revoke (const char *link_id)
{
    Safeshare__LinkRevokeRequest q = SAFESHARE__LINK_REVOKE_REQUEST__INIT;
    q.link_id = (char *)link_id;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_REVOKE;
    rq.link_revoke = &q;
    return s_call (&rq, NULL, NULL, TIMEOUT);
}

#define OTHER "fedcba9876543210fedcba9876543210"

/* The new requests over the wire: visibility, the name filter,
   FILE_UPDATE, LINK_LIST / GET / REVOKE, a signed-in-only link, peek. */
static void
test_files_and_links (void **state)
{
    char *staff = s_file_named ("Plan 50%_final.pptx", "staff");
    char *open = s_file_named ("plan_b.txt", "");
    reply_t *r = s_get (staff);
    stord_test_expect (r, CM_OK, NULL);
    assert_string_equal (r->file_get->file->visibility, "staff");
    stord_test_free (&r);
    r = s_get (open);
    stord_test_expect (r, CM_OK, NULL);
    assert_string_equal (r->file_get->file->visibility, "clients");
    stord_test_free (&r);

    /* Filter: case-insensitive, % and _ literal; clients_only.         */
    r = s_find ("PLAN", false);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->file_list->n_files, 2);
    stord_test_free (&r);
    r = s_find ("50%_", false);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->file_list->n_files, 1);
    assert_string_equal (r->file_list->files[0]->id, staff);
    stord_test_free (&r);
    r = s_find ("n_", false); /* "_" literal: "plan_b", not "Plan 5" */
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->file_list->n_files, 1);
    assert_string_equal (r->file_list->files[0]->id, open);
    stord_test_free (&r);
    r = s_find ("plan", true);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->file_list->n_files, 1);
    assert_string_equal (r->file_list->files[0]->id, open);
    stord_test_free (&r);
    r = s_find ("a\x01", false);
    stord_test_expect (r, CM_INVALID, "invalid_name");
    stord_test_free (&r);

    /* FILE_UPDATE.                                                     */
    r = s_update (staff, "", "clients");
    stord_test_expect (r, CM_OK, NULL);
    assert_string_equal (r->file_update->file->visibility, "clients");
    assert_string_equal (r->file_update->file->name, "Plan 50%_final.pptx");
    stord_test_free (&r);
    r = s_update (staff, "Plan final.pptx", "staff");
    stord_test_expect (r, CM_OK, NULL);
    assert_string_equal (r->file_update->file->visibility, "staff");
    assert_string_equal (r->file_update->file->name, "Plan final.pptx");
    stord_test_free (&r);
    r = s_update (staff, "", "public");
    stord_test_expect (r, CM_INVALID, "invalid_visibility");
    stord_test_free (&r);
    r = s_update (staff, "bad\nname", "");
    stord_test_expect (r, CM_INVALID, "invalid_name");
    stord_test_free (&r);
    r = s_update ("ffffffffffffffffffffffffffffffff", "x", "");
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);
    r = s_update ("nope", "x", "");
    stord_test_expect (r, CM_INVALID, "invalid_file_id");
    stord_test_free (&r);
    Safeshare__FileBeginRequest b = SAFESHARE__FILE_BEGIN_REQUEST__INIT;
    b.name = "x";
    b.content_type = "text/plain";
    b.owner_id = OWNER;
    b.chunk_size = 4096;
    b.visibility = "everyone";
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_BEGIN;
    rq.file_begin = &b;
    r = s_call (&rq, NULL, NULL, TIMEOUT);
    stord_test_expect (r, CM_INVALID, "invalid_visibility");
    stord_test_free (&r);

    /* Links: two by OWNER, one signed-in only by OTHER.                */
    r = s_link_ex (open, OWNER, 3, false);
    stord_test_expect (r, CM_OK, NULL);
    char *a = strdup (r->link_create->link_id);
    char *token_a = strdup (r->link_create->token);
    stord_test_free (&r);
    r = s_link_ex (open, OTHER, 2, true);
    stord_test_expect (r, CM_OK, NULL);
    char *c = strdup (r->link_create->link_id);
    char *token_c = strdup (r->link_create->token);
    stord_test_free (&r);
    r = s_link_list (open, "");
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->link_list->n_links, 2);
    for (size_t i = 0; i < 2; i++) {
        Safeshare__LinkInfo *l = r->link_list->links[i];
        assert_string_equal (l->file_id, open);
        assert_string_equal (l->state, "active");
        assert_int_equal (l->revoked_at, 0);
        assert_int_equal (l->expires_at, l->created_at + 600);
    }
    stord_test_free (&r);
    r = s_link_list (open, OTHER);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->link_list->n_links, 1);
    assert_string_equal (r->link_list->links[0]->id, c);
    assert_true (r->link_list->links[0]->signed_in_only);
    assert_int_equal (r->link_list->links[0]->max_downloads, 2);
    stord_test_free (&r);
    r = s_link_list (open, "bad");
    stord_test_expect (r, CM_INVALID, "invalid_creator_id");
    stord_test_free (&r);
    r = s_link_list ("ffffffffffffffffffffffffffffffff", "");
    stord_test_expect (r, CM_NOT_FOUND, "file_not_found");
    stord_test_free (&r);

    /* Peek spends nothing; the signed-in-only link wants sign-in.      */
    r = s_redeem_as (token_a, false, true);
    stord_test_expect (r, CM_OK, NULL);
    assert_string_equal (r->link_redeem->file->id, open);
    assert_int_equal (r->link_redeem->downloads_left, 3);
    assert_string_equal (r->link_redeem->link->id, a);
    stord_test_free (&r);
    r = s_redeem_as (token_c, false, false);
    stord_test_expect (r, CM_UNAUTHENTICATED, "link_requires_login");
    stord_test_free (&r);
    r = s_redeem_as (token_c, false, true);
    stord_test_expect (r, CM_UNAUTHENTICATED, "link_requires_login");
    stord_test_free (&r);
    r = s_redeem_as (token_c, true, false);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->link_redeem->downloads_left, 1);
    assert_int_equal (r->link_redeem->link->downloads, 1);
    stord_test_free (&r);
    r = s_link_get (c);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->link_get->link->downloads, 1);
    assert_string_equal (r->link_get->link->creator_id, OTHER);
    assert_string_equal (r->link_get->file->id, open);
    assert_string_equal (r->link_get->file->owner_id, OWNER);
    stord_test_free (&r);

    /* Revoke: idempotent, then the link answers link_revoked.          */
    r = s_link_revoke (a);
    stord_test_expect (r, CM_OK, NULL);
    assert_string_equal (r->link_revoke->link->state, "revoked");
    uint64_t at = r->link_revoke->link->revoked_at;
    assert_true (at > 0);
    stord_test_free (&r);
    r = s_link_revoke (a);
    stord_test_expect (r, CM_OK, NULL);
    assert_string_equal (r->link_revoke->link->state, "revoked");
    assert_int_equal (r->link_revoke->link->revoked_at, at);
    stord_test_free (&r);
    r = s_redeem_as (token_a, false, true);
    stord_test_expect (r, CM_GONE, "link_revoked");
    stord_test_free (&r);
    r = s_redeem (token_a);
    stord_test_expect (r, CM_GONE, "link_revoked");
    stord_test_free (&r);
    r = s_link_revoke ("ffffffffffffffffffffffffffffffff");
    stord_test_expect (r, CM_NOT_FOUND, "link_not_found");
    stord_test_free (&r);
    r = s_link_revoke ("xyz");
    stord_test_expect (r, CM_INVALID, "invalid_link_id");
    stord_test_free (&r);
    r = s_link_get ("ffffffffffffffffffffffffffffffff");
    stord_test_expect (r, CM_NOT_FOUND, "link_not_found");
    stord_test_free (&r);

    /* Deleting the file takes its links.                               */
    r = s_delete (open);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    r = s_link_get (c);
    stord_test_expect (r, CM_NOT_FOUND, "link_not_found");
    stord_test_free (&r);
    r = s_delete (staff);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    free (a), free (c), free (token_a), free (token_c), free (staff), free (open);
}

/* ---- 50 concurrent redeems of a one-time link ------------------------- */

enum { S_RACERS = 50 };

typedef struct {
    const char *endpoint;
    const char *token;
    pthread_barrier_t *gate;
    int status; /* cm_status_t of the reply, -1 no reply */
    char code[48];
} s_racer_t;

/* One client with its own socket: connect, wait at the gate, redeem.  */
static void *
s_racer (void *arg)
{
    s_racer_t *me = arg;
    me->status = -1;
    zsock_t *sock = cm_sock_client (me->endpoint, "storage");
    Safeshare__LinkRedeemRequest q = SAFESHARE__LINK_REDEEM_REQUEST__INIT;
    q.token = (char *)me->token;
    Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
    rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_REDEEM;
    rq.link_redeem = &q;
    char reqbuf[65];
    Safeshare__Meta meta;
    cm_meta_init (&meta, reqbuf, NULL, 20000);
    rq.meta = &meta;
    pthread_barrier_wait (me->gate);
    ProtobufCMessage *reply = NULL;
    if (sock && cm_rpc_call (sock, &rq.base, NULL, &safeshare__storage_reply__descriptor,
                             20000, &reply, NULL) == CM_OK) {
        reply_t *r = (reply_t *)reply;
        me->status = (int)r->status;
        snprintf (me->code, sizeof me->code, "%s", r->error ? r->error->code : "");
        protobuf_c_message_free_unpacked (reply, NULL);
    }
    zsock_destroy (&sock);
    return NULL;
}

/* Two storage processes answering from one database, 25 clients on
   each (own sockets, own threads), all let go at once: exactly one
   redeem wins, the other 49 are link_exhausted, and the database
   counts one download.                                                */
static void
test_redeem_race (void **state)
{
    char env_ep2[700];
    snprintf (env_ep2, sizeof env_ep2,
              "SAFESHARE_STORAGE_ENDPOINT=ipc://%s/run/storage-2.sock", g.tmp);
    char *argv[] = {(char *)g.bin, NULL};
    char *env[] = {g.env_data, env_ep2, "SAFESHARE_LOG_LEVEL=error", NULL};
    pid_t second = cm_test_spawn (g.bin, argv, env);
    assert_true (second > 0);
    const char *ep[2] = {g.env_ep + strlen ("SAFESHARE_STORAGE_ENDPOINT="),
                         env_ep2 + strlen ("SAFESHARE_STORAGE_ENDPOINT=")};
    /* Ready = the second one answers HEALTH.                            */
    zsock_t *probe = cm_sock_client (ep[1], "storage");
    assert_non_null (probe);
    uint64_t deadline = cm_mono_ms () + 15000;
    for (bool up = false; !up;) {
        assert_false (cm_test_exited (second));
        assert_true (cm_mono_ms () < deadline);
        Safeshare__HealthRequest h = SAFESHARE__HEALTH_REQUEST__INIT;
        Safeshare__StorageRequest rq = SAFESHARE__STORAGE_REQUEST__INIT;
        rq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_HEALTH;
        rq.health = &h;
        char reqbuf[65];
        Safeshare__Meta meta;
        cm_meta_init (&meta, reqbuf, NULL, 250);
        rq.meta = &meta;
        ProtobufCMessage *reply = NULL;
        if (cm_rpc_call (probe, &rq.base, NULL, &safeshare__storage_reply__descriptor,
                         250, &reply, NULL) == CM_OK) {
            protobuf_c_message_free_unpacked (reply, NULL);
            up = true;
        } else {
            zsock_destroy (&probe); /* Lazy Pirate: a fresh socket */
            probe = cm_sock_client (ep[1], "storage");
            stord_test_sleep_ms (20);
        }
    }
    zsock_destroy (&probe);

    char *id = s_file_named ("race.bin", "");
    reply_t *r = s_link_ex (id, OWNER, 1, false);
    stord_test_expect (r, CM_OK, NULL);
    char *link_id = strdup (r->link_create->link_id);
    char *token = strdup (r->link_create->token);
    stord_test_free (&r);

    pthread_barrier_t gate;
    assert_int_equal (pthread_barrier_init (&gate, NULL, S_RACERS), 0);
    s_racer_t racers[S_RACERS];
    pthread_t threads[S_RACERS];
    for (int i = 0; i < S_RACERS; i++) {
        racers[i] = (s_racer_t){.endpoint = ep[i % 2], .token = token, .gate = &gate};
        assert_int_equal (pthread_create (&threads[i], NULL, s_racer, &racers[i]), 0);
    }
    int won = 0, exhausted = 0;
    for (int i = 0; i < S_RACERS; i++) {
        pthread_join (threads[i], NULL);
        if (racers[i].status == CM_OK) {
            won++;
        } else if (racers[i].status == CM_GONE &&
                   strcmp (racers[i].code, "link_exhausted") == 0) {
            exhausted++;
        } else {
            fprintf (stderr, "racer %d: status %d %s\n", i, racers[i].status,
                     racers[i].code);
        }
    }
    pthread_barrier_destroy (&gate);
    assert_int_equal (cm_test_stop (second, 10000), 0);
    fprintf (stderr,
             "# %d concurrent redeems over 2 storage processes: %d won, %d "
             "link_exhausted\n",
             S_RACERS, won, exhausted);
    assert_int_equal (won, 1);
    assert_int_equal (exhausted, S_RACERS - 1);
    r = s_link_get (link_id);
    stord_test_expect (r, CM_OK, NULL);
    assert_int_equal (r->link_get->link->downloads, 1);
    assert_string_equal (r->link_get->link->state, "exhausted");
    stord_test_free (&r);
    r = s_delete (id);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    free (id), free (link_id), free (token);
}

static void
test_sigterm_exits_zero (void **state)
{
    assert_int_equal (cm_test_stop (g.pid, 10000), 0);
    g.pid = 0;
}

static int
group_setup (void **state)
{
    g.tmp = cm_test_tmpdir ();
    if (!g.tmp) {
        return -1;
    }
    snprintf (g.env_data, sizeof g.env_data, "SAFESHARE_DATA_DIR=%s", g.tmp);
    snprintf (g.env_ep, sizeof g.env_ep,
              "SAFESHARE_STORAGE_ENDPOINT=ipc://%s/run/storage.sock", g.tmp);
    snprintf (g.blobs, sizeof g.blobs, "%s/blobs", g.tmp);
    g.sock =
        cm_sock_client (g.env_ep + strlen ("SAFESHARE_STORAGE_ENDPOINT="), "storage");
    if (!g.sock) {
        return -1;
    }
    s_start ();
    return 0;
}

static int
group_teardown (void **state)
{
    if (g.pid > 0) {
        cm_test_stop (g.pid, 5000);
    }
    zsock_destroy (&g.sock);
    cm_test_rmrf (g.tmp);
    free (g.tmp);
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s PATH/TO/safeshare-storage\n", argv[0]);
        return 2;
    }
    g.bin = argv[1];
    cm_log_init ("test", CM_LOG_ERROR);
    zsys_init ();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_health),
        cmocka_unit_test (test_upload_roundtrip),
        cmocka_unit_test (test_abort),
        cmocka_unit_test (test_commit_layout),
        cmocka_unit_test (test_commit_db_busy),
        cmocka_unit_test (test_validation),
        cmocka_unit_test (test_list_paging),
        cmocka_unit_test (test_files_and_links),
        cmocka_unit_test (test_redeem_race),
        cmocka_unit_test (test_garbage_in),
        cmocka_unit_test (test_restart_sweeps),
        cmocka_unit_test (test_sigterm_exits_zero),
    };
    return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
