/*  svc_gateway -- the real safeshare-gateway binary over plain HTTP.

    No other service runs: auth and mailer are down (their endpoints are
    never bound), so calls to them must come back 503 in time. Storage and
    crypto are stood in for by a fake peer in this test (two ROUTER
    sockets on their endpoints, see s_fake_*): it records what the gateway
    sends and answers like the real services would, with a fake "cipher"
    (plaintext + 16 tag bytes) -- it tests the gateway's pipeline (chunk
    boundaries, last flags, offsets, SHA-256, commit/abort, download
    headers and integrity failures), not the crypto. The fake never
    answers HEALTH, so /readyz sees every service down.
    Usage: test_gw_service PATH/TO/safeshare-gateway                    */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <czmq.h>
#include <jansson.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_jwt.h"
#include "cm_msg.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "auth.pb-c.h"
#include "crypto.pb-c.h"
#include "storage.pb-c.h"

#define CHUNK      4096
#define MAX_UPLOAD (64 * 1024)
#define OPS_ID     "0123456789abcdef0123456789abcdef"
#define CLIENT_ID  "fedcba9876543210fedcba9876543210"
#define FILE_ID    "00112233445566778899aabbccddeeff"

static const char *s_binary;
static char *s_dir;
static int s_port;
static pid_t s_pid = -1;
static char s_ops_token[CM_JWT_MAX_LEN];
static char s_client_token[CM_JWT_MAX_LEN];
static cm_jwt_signer_t *s_signer;

/* ---- the fake storage + crypto peer ------------------------------------ */

typedef struct {
    pthread_mutex_t lock;
    uint8_t *blob;
    size_t blob_len;
    char begin_name[300];
    char begin_type[128];
    int encrypts;
    size_t enc_len[64];
    bool enc_last[64];
    uint64_t enc_index[64];
    bool committed;
    uint64_t commit_size;
    char commit_sha[65];
    uint64_t commit_chunks;
    uint64_t commit_blob;
    int aborts;
    int deletes;
    int bad_chunk;       /* DECRYPT of this index fails authentication; -1 none */
    int commit_delay_ms; /* FILE_COMMIT lands, its reply comes this late */
    char file_type[128]; /* stored content type served back; "" = begin_type */
    int ids;             /* Meta.request_id of every storage/crypto call */
    char id[128][65];
} s_fake_t;

static s_fake_t s_fake = {.lock = PTHREAD_MUTEX_INITIALIZER, .bad_chunk = -1};
static zactor_t *s_fake_actor;

static void
s_fake_reset (void)
{
    pthread_mutex_lock (&s_fake.lock);
    free (s_fake.blob);
    s_fake.blob = NULL;
    s_fake.blob_len = 0;
    s_fake.encrypts = 0;
    s_fake.committed = false;
    s_fake.aborts = 0;
    s_fake.deletes = 0;
    s_fake.bad_chunk = -1;
    s_fake.commit_delay_ms = 0;
    s_fake.file_type[0] = '\0';
    s_fake.ids = 0;
    s_fake.begin_name[0] = '\0';
    s_fake.begin_type[0] = '\0';
    pthread_mutex_unlock (&s_fake.lock);
}

/* A copy of the fake's record, so assertions never run under its lock
   (a failed assertion would leave it locked and the fake stuck).       */
static s_fake_t
s_fake_snapshot (void)
{
    pthread_mutex_lock (&s_fake.lock);
    s_fake_t copy = s_fake;
    pthread_mutex_unlock (&s_fake.lock);
    return copy;
}

static void
s_fake_file (Safeshare__FileInfo *f, uint8_t *dek)
{
    f->id = FILE_ID;
    f->name = "re\"port\r\n.txt";
    f->content_type = s_fake.file_type[0] ? s_fake.file_type : s_fake.begin_type;
    f->size = s_fake.commit_size;
    f->sha256 = s_fake.commit_sha;
    f->owner_id = OPS_ID;
    f->created_at = 1790000000;
    f->chunk_size = CHUNK;
    f->chunk_count = s_fake.commit_chunks;
    f->kek_id = "k1";
    f->wrapped_dek.data = dek;
    f->wrapped_dek.len = 60;
    f->blob_size = s_fake.commit_blob;
}

static void
s_fake_storage (zsock_t *sock)
{
    cm_call_t call;
    if (cm_call_recv (sock, &safeshare__storage_request__descriptor,
                      &safeshare__storage_reply__descriptor, &call) != 0) {
        return;
    }
    Safeshare__StorageRequest *r = (Safeshare__StorageRequest *)call.request;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    reply.meta = &meta;
    Safeshare__FileBeginReply begin = SAFESHARE__FILE_BEGIN_REPLY__INIT;
    Safeshare__BlobAppendReply append = SAFESHARE__BLOB_APPEND_REPLY__INIT;
    Safeshare__FileCommitReply commit = SAFESHARE__FILE_COMMIT_REPLY__INIT;
    Safeshare__FileAbortReply abort_ = SAFESHARE__FILE_ABORT_REPLY__INIT;
    Safeshare__FileDeleteReply delete_ = SAFESHARE__FILE_DELETE_REPLY__INIT;
    Safeshare__FileGetReply get = SAFESHARE__FILE_GET_REPLY__INIT;
    Safeshare__BlobReadReply read = SAFESHARE__BLOB_READ_REPLY__INIT;
    Safeshare__FileInfo file = SAFESHARE__FILE_INFO__INIT;
    uint8_t dek[60] = {0};
    zmsg_t *out = NULL;
    int delay_ms = 0;
    pthread_mutex_lock (&s_fake.lock);
    if (s_fake.ids < 128) {
        snprintf (s_fake.id[s_fake.ids++], 65, "%s", call.req_id);
    }
    switch (r->body_case) {
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_BEGIN:
            snprintf (s_fake.begin_name, sizeof s_fake.begin_name, "%s",
                      r->file_begin->name);
            snprintf (s_fake.begin_type, sizeof s_fake.begin_type, "%s",
                      r->file_begin->content_type);
            begin.file_id = FILE_ID;
            reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_BEGIN;
            reply.file_begin = &begin;
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_BLOB_APPEND: {
            zframe_t *f = zmsg_first (call.blobs);
            if (r->blob_append->offset != s_fake.blob_len ||
                zmsg_size (call.blobs) != 1) {
                pthread_mutex_unlock (&s_fake.lock);
                cm_call_reply_error (sock, &call, &safeshare__storage_reply__descriptor,
                                     CM_CONFLICT, "offset_mismatch", "offset");
                cm_call_release (&call);
                return;
            }
            s_fake.blob = realloc (s_fake.blob, s_fake.blob_len + zframe_size (f) + 1);
            memcpy (s_fake.blob + s_fake.blob_len, zframe_data (f), zframe_size (f));
            s_fake.blob_len += zframe_size (f);
            append.blob_size = s_fake.blob_len;
            reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_BLOB_APPEND;
            reply.blob_append = &append;
            break;
        }
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_COMMIT:
            s_fake.committed = true;
            s_fake.commit_size = r->file_commit->size;
            snprintf (s_fake.commit_sha, sizeof s_fake.commit_sha, "%s",
                      r->file_commit->sha256);
            s_fake.commit_chunks = r->file_commit->chunk_count;
            s_fake.commit_blob = r->file_commit->blob_size;
            s_fake_file (&file, dek);
            commit.file = &file;
            reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_COMMIT;
            reply.file_commit = &commit;
            delay_ms = s_fake.commit_delay_ms;
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_ABORT:
            if (s_fake.committed) {
                /* As the real storage: a committed file is not aborted. */
                pthread_mutex_unlock (&s_fake.lock);
                cm_call_reply_error (sock, &call, &safeshare__storage_reply__descriptor,
                                     CM_CONFLICT, "file_committed", "use file_delete");
                cm_call_release (&call);
                return;
            }
            s_fake.aborts++;
            reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_ABORT;
            reply.file_abort = &abort_;
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_DELETE:
            if (!s_fake.committed || strcmp (r->file_delete->file_id, FILE_ID) != 0) {
                pthread_mutex_unlock (&s_fake.lock);
                cm_call_reply_error (sock, &call, &safeshare__storage_reply__descriptor,
                                     CM_NOT_FOUND, "file_not_found", "no such file");
                cm_call_release (&call);
                return;
            }
            s_fake.deletes++;
            s_fake.committed = false;
            reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_DELETE;
            reply.file_delete = &delete_;
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_GET:
            if (!s_fake.committed || strcmp (r->file_get->file_id, FILE_ID) != 0) {
                pthread_mutex_unlock (&s_fake.lock);
                cm_call_reply_error (sock, &call, &safeshare__storage_reply__descriptor,
                                     CM_NOT_FOUND, "file_not_found", "no such file");
                cm_call_release (&call);
                return;
            }
            s_fake_file (&file, dek);
            get.file = &file;
            reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_GET;
            reply.file_get = &get;
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_BLOB_READ:
            if (r->blob_read->offset + r->blob_read->length > s_fake.blob_len) {
                pthread_mutex_unlock (&s_fake.lock);
                cm_call_reply_error (sock, &call, &safeshare__storage_reply__descriptor,
                                     CM_INVALID, "invalid_range", "range");
                cm_call_release (&call);
                return;
            }
            out = zmsg_new ();
            zmsg_addmem (out, s_fake.blob + r->blob_read->offset, r->blob_read->length);
            read.offset = r->blob_read->offset;
            reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_BLOB_READ;
            reply.blob_read = &read;
            break;
        default:
            /* HEALTH included: the fake plays "down" for /readyz. */
            pthread_mutex_unlock (&s_fake.lock);
            cm_call_release (&call);
            return;
    }
    pthread_mutex_unlock (&s_fake.lock);
    if (delay_ms > 0) {
        /* The commit has landed; its reply is late (the caller gives up). */
        poll (NULL, 0, delay_ms);
    }
    cm_call_reply (sock, &call, &reply.base, &out);
    cm_call_release (&call);
}

static void
s_fake_crypto (zsock_t *sock)
{
    cm_call_t call;
    if (cm_call_recv (sock, &safeshare__crypto_request__descriptor,
                      &safeshare__crypto_reply__descriptor, &call) != 0) {
        return;
    }
    Safeshare__CryptoRequest *r = (Safeshare__CryptoRequest *)call.request;
    Safeshare__CryptoReply reply = SAFESHARE__CRYPTO_REPLY__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    reply.meta = &meta;
    Safeshare__KeyNewReply key = SAFESHARE__KEY_NEW_REPLY__INIT;
    Safeshare__ChunkReply chunk = SAFESHARE__CHUNK_REPLY__INIT;
    uint8_t dek[60] = {0};
    uint8_t header[48];
    memset (header, 'H', sizeof header);
    zmsg_t *out = NULL;
    pthread_mutex_lock (&s_fake.lock);
    if (s_fake.ids < 128) {
        snprintf (s_fake.id[s_fake.ids++], 65, "%s", call.req_id);
    }
    pthread_mutex_unlock (&s_fake.lock);
    switch (r->body_case) {
        case SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW:
            key.kek_id = "k1";
            key.wrapped_dek.data = dek;
            key.wrapped_dek.len = sizeof dek;
            key.header.data = header;
            key.header.len = sizeof header;
            reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_KEY_NEW;
            reply.key_new = &key;
            break;
        case SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT: {
            /* Fake cipher: plaintext followed by 16 'T' tag bytes. */
            zframe_t *f = zmsg_first (call.blobs);
            size_t len = zframe_size (f);
            pthread_mutex_lock (&s_fake.lock);
            if (s_fake.encrypts < 64) {
                s_fake.enc_len[s_fake.encrypts] = len;
                s_fake.enc_last[s_fake.encrypts] = r->encrypt->last;
                s_fake.enc_index[s_fake.encrypts] = r->encrypt->index;
            }
            s_fake.encrypts++;
            pthread_mutex_unlock (&s_fake.lock);
            zframe_t *c = zframe_new (NULL, len + 16);
            memcpy (zframe_data (c), zframe_data (f), len);
            memset (zframe_data (c) + len, 'T', 16);
            out = zmsg_new ();
            zmsg_append (out, &c);
            chunk.index = r->encrypt->index;
            reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_ENCRYPT;
            reply.encrypt = &chunk;
            break;
        }
        case SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT: {
            zframe_t *f = zmsg_first (call.blobs);
            size_t len = zframe_size (f);
            pthread_mutex_lock (&s_fake.lock);
            bool bad = (int64_t)r->decrypt->index == s_fake.bad_chunk;
            pthread_mutex_unlock (&s_fake.lock);
            if (bad || len < 16) {
                cm_call_reply_error (sock, &call, &safeshare__crypto_reply__descriptor,
                                     CM_UNPROCESSABLE, "chunk_auth_failed",
                                     "tag mismatch");
                cm_call_release (&call);
                return;
            }
            out = zmsg_new ();
            zmsg_addmem (out, zframe_data (f), len - 16);
            chunk.index = r->decrypt->index;
            reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_DECRYPT;
            reply.decrypt = &chunk;
            break;
        }
        default:
            cm_call_release (&call);
            return;
    }
    cm_call_reply (sock, &call, &reply.base, &out);
    cm_call_release (&call);
}

static void
s_fake_actor_fn (zsock_t *pipe, void *args)
{
    char **endpoints = args;
    zsock_t *storage = cm_sock_server (endpoints[0]);
    zsock_t *crypto = cm_sock_server (endpoints[1]);
    zsock_signal (pipe, storage && crypto ? 0 : 1);
    zpoller_t *poller = zpoller_new (pipe, storage, crypto, NULL);
    while (true) {
        void *which = zpoller_wait (poller, 1000);
        if (which == pipe || zpoller_terminated (poller)) {
            break;
        }
        if (which == storage) {
            s_fake_storage (storage);
        } else if (which == crypto) {
            s_fake_crypto (crypto);
        }
    }
    zpoller_destroy (&poller);
    zsock_destroy (&storage);
    zsock_destroy (&crypto);
}

/* ---- a raw HTTP client ------------------------------------------------- */

typedef struct {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
    long long content_length;
    bool closed; /* the server closed the connection */
} s_resp_t;

static void
s_resp_free (s_resp_t *r)
{
    free (r->body);
    r->body = NULL;
}

static int
s_connect_to (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (connect (fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close (fd);
        return -1;
    }
    return fd;
}

static int
s_connect (void)
{
    return s_connect_to (s_port);
}

/* Reads one response from fd (headers, then Content-Length bytes or to
   EOF), waiting at most timeout_ms. 0 / -1.                          */
static int
s_read_response (int fd, s_resp_t *r, int timeout_ms)
{
    memset (r, 0, sizeof *r);
    r->content_length = -1;
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc (cap);
    uint64_t deadline = cm_mono_ms () + (uint64_t)timeout_ms;
    char *body_start = NULL;
    while (true) {
        if (body_start && r->content_length >= 0 &&
            (size_t)(used - (size_t)(body_start - buf)) >= (size_t)r->content_length) {
            break;
        }
        uint64_t now = cm_mono_ms ();
        if (now >= deadline) {
            break;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll (&p, 1, (int)(deadline - now)) <= 0) {
            break;
        }
        if (used + 4096 > cap) {
            size_t off = body_start ? (size_t)(body_start - buf) : 0;
            cap *= 2;
            buf = realloc (buf, cap);
            body_start = body_start ? buf + off : NULL;
        }
        ssize_t n = recv (fd, buf + used, cap - used - 1, 0);
        if (n <= 0) {
            r->closed = true;
            break;
        }
        used += (size_t)n;
        buf[used] = '\0';
        if (!body_start) {
            char *end = strstr (buf, "\r\n\r\n");
            /* Skip interim 100 Continue responses. */
            while (end && strncmp (buf, "HTTP/1.1 100", 12) == 0) {
                size_t skip = (size_t)(end + 4 - buf);
                memmove (buf, buf + skip, used - skip + 1);
                used -= skip;
                end = strstr (buf, "\r\n\r\n");
            }
            if (end) {
                body_start = end + 4;
                size_t hl = (size_t)(end - buf);
                memcpy (r->head, buf, hl < sizeof r->head - 1 ? hl : sizeof r->head - 1);
                sscanf (buf, "HTTP/1.%*d %d", &r->status);
                char *cl = strcasestr (r->head, "\r\nContent-Length:");
                if (cl) {
                    r->content_length = atoll (cl + 17);
                }
            }
        }
    }
    if (body_start) {
        r->body_len = used - (size_t)(body_start - buf);
        r->body = malloc (r->body_len + 1);
        memcpy (r->body, body_start, r->body_len);
        r->body[r->body_len] = '\0';
    }
    free (buf);
    return body_start ? 0 : -1;
}

/* One request on a fresh connection. */
static int
s_http (const void *req, size_t len, s_resp_t *r, int timeout_ms)
{
    int fd = s_connect ();
    if (fd < 0) {
        memset (r, 0, sizeof *r);
        return -1;
    }
    send (fd, req, len, MSG_NOSIGNAL);
    int rc = s_read_response (fd, r, timeout_ms);
    close (fd);
    return rc;
}

static int
s_get (const char *path, const char *token, s_resp_t *r)
{
    char req[8192];
    int n = snprintf (req, sizeof req,
                      "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%sConnection: close\r\n\r\n",
                      path, token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "");
    return s_http (req, (size_t)n, r, 10000);
}

/* POST with extra header lines (each ending in CRLF, may be ""). */
static int
s_post_ex (const char *path, const char *token, const char *ctype, const char *extra,
           const void *body, size_t len, s_resp_t *r)
{
    char head[8192];
    int n = snprintf (head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: x\r\n%s%s%sContent-Type: %s\r\n"
                      "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      path, token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "", ctype, extra, len);
    char *req = malloc ((size_t)n + len);
    memcpy (req, head, (size_t)n);
    memcpy (req + n, body, len);
    int rc = s_http (req, (size_t)n + len, r, 10000);
    free (req);
    return rc;
}

static int
s_post (const char *path, const char *token, const char *ctype, const void *body,
        size_t len, s_resp_t *r)
{
    return s_post_ex (path, token, ctype, "", body, len, r);
}

/* The JSON error code of a response, "" if none. */
static const char *
s_code (s_resp_t *r, char *buf, size_t len)
{
    buf[0] = '\0';
    json_error_t err;
    json_t *root = r->body ? json_loads (r->body, 0, &err) : NULL;
    const char *code =
        json_string_value (json_object_get (json_object_get (root, "error"), "code"));
    snprintf (buf, len, "%s", code ? code : "");
    json_decref (root);
    return buf;
}

static void
s_assert_error (s_resp_t *r, int status, const char *code)
{
    char buf[64];
    if (r->status != status || strcmp (s_code (r, buf, sizeof buf), code) != 0) {
        fprintf (stderr, "expected %d %s, got %d: %s\n%s\n", status, code, r->status,
                 r->body ? r->body : "(no body)", r->head);
    }
    assert_int_equal (r->status, status);
    assert_string_equal (s_code (r, buf, sizeof buf), code);
    assert_non_null (strcasestr (r->head, "Content-Type: application/json"));
    assert_non_null (strcasestr (r->head, "X-Content-Type-Options: nosniff"));
    assert_non_null (strcasestr (r->head, "Cache-Control: no-store"));
    assert_non_null (strcasestr (r->head, "X-Request-Id: "));
}

static void
s_assert_alive (void)
{
    s_resp_t r;
    assert_int_equal (s_get ("/healthz", NULL, &r), 0);
    assert_int_equal (r.status, 200);
    s_resp_free (&r);
}

/* ---- set-up ------------------------------------------------------------- */

static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind (fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname (fd, (struct sockaddr *)&a, &len) != 0) {
        close (fd);
        return -1;
    }
    close (fd);
    return ntohs (a.sin_port);
}

static char s_env[16][700];
static char s_storage_ep[600], s_crypto_ep[600];

/* Starts a gateway on port with `threads` workers; ready when it accepts
   connections (never a fixed sleep). The pid, or -1.                   */
static pid_t
s_spawn (int port, int threads)
{
    int i = 0;
    snprintf (s_env[i++], 700, "SAFESHARE_DATA_DIR=%s", s_dir);
    snprintf (s_env[i++], 700, "SAFESHARE_HTTP_ADDR=127.0.0.1:%d", port);
    snprintf (s_env[i++], 700, "SAFESHARE_HTTP_THREADS=%d", threads);
    snprintf (s_env[i++], 700, "SAFESHARE_RPC_TIMEOUT_MS=1000");
    snprintf (s_env[i++], 700, "SAFESHARE_CHUNK_SIZE=%d", CHUNK);
    snprintf (s_env[i++], 700, "SAFESHARE_MAX_UPLOAD_BYTES=%d", MAX_UPLOAD);
    snprintf (s_env[i++], 700, "SAFESHARE_STORAGE_ENDPOINT=%s", s_storage_ep);
    snprintf (s_env[i++], 700, "SAFESHARE_CRYPTO_ENDPOINT=%s", s_crypto_ep);
    snprintf (s_env[i++], 700, "SAFESHARE_PUBLIC_URL=http://files.example");
    char *env[17];
    for (int k = 0; k < i; k++) {
        env[k] = s_env[k];
    }
    env[i] = NULL;
    char *argv[] = {(char *)s_binary, NULL};
    pid_t pid = cm_test_spawn (s_binary, argv, env);
    if (pid < 0) {
        return -1;
    }
    uint64_t deadline = cm_mono_ms () + 10000;
    while (cm_mono_ms () < deadline) {
        if (cm_test_exited (pid)) {
            fprintf (stderr, "gateway exited during start-up\n");
            return -1;
        }
        int fd = s_connect_to (port);
        if (fd >= 0) {
            close (fd);
            return pid;
        }
        struct pollfd none;
        poll (&none, 0, 20);
    }
    cm_test_stop (pid, 5000);
    return -1;
}

static int
s_setup (void **state)
{
    s_dir = cm_test_tmpdir ();
    if (!s_dir) {
        return -1;
    }
    char keys[512], priv[600], pub[600];
    snprintf (keys, sizeof keys, "%s/keys", s_dir);
    mkdir (keys, 0700);
    snprintf (priv, sizeof priv, "%s/jwt-es256.pem", keys);
    snprintf (pub, sizeof pub, "%s/jwt-es256.pub", keys);
    if (cm_jwt_keygen (priv, pub) != 0) {
        return -1;
    }
    s_signer = cm_jwt_signer_new (priv, "safeshare", "safeshare-api");
    char *t = s_signer ? cm_jwt_sign (s_signer, OPS_ID, "ops", cm_now_s (), 600) : NULL;
    char *c =
        s_signer ? cm_jwt_sign (s_signer, CLIENT_ID, "client", cm_now_s (), 600) : NULL;
    if (!t || !c) {
        return -1;
    }
    snprintf (s_ops_token, sizeof s_ops_token, "%s", t);
    snprintf (s_client_token, sizeof s_client_token, "%s", c);
    free (t);
    free (c);

    snprintf (s_storage_ep, sizeof s_storage_ep, "ipc://%s/run/storage.sock", s_dir);
    snprintf (s_crypto_ep, sizeof s_crypto_ep, "ipc://%s/run/crypto.sock", s_dir);
    static char *endpoints[2] = {s_storage_ep, s_crypto_ep};
    s_fake_actor = zactor_new (s_fake_actor_fn, endpoints);

    s_port = s_free_port ();
    s_pid = s_spawn (s_port, 4);
    return s_pid > 0 ? 0 : -1;
}

static int
s_teardown (void **state)
{
    if (s_pid > 0) {
        cm_test_stop (s_pid, 5000);
    }
    zactor_destroy (&s_fake_actor);
    cm_jwt_signer_destroy (&s_signer);
    if (s_dir) {
        cm_test_rmrf (s_dir);
        free (s_dir);
    }
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_healthz (void **state)
{
    s_resp_t r;
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: probe-42\r\n"
                       "Connection: close\r\n\r\n";
    assert_int_equal (s_http (req, sizeof req - 1, &r, 5000), 0);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.body, "{\"status\":\"ok\"}");
    assert_non_null (strstr (r.head, "X-Request-Id: probe-42"));
    assert_non_null (strcasestr (r.head, "Cache-Control: no-store"));
    /* A request id that is not ours to echo is replaced. */
    const char bad[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a b<c>\r\n"
                       "Connection: close\r\n\r\n";
    s_resp_free (&r);
    assert_int_equal (s_http (bad, sizeof bad - 1, &r, 5000), 0);
    assert_null (strstr (r.head, "a b<c>"));
    assert_non_null (strstr (r.head, "X-Request-Id: "));
    /* No CORS unless configured. */
    assert_null (strcasestr (r.head, "Access-Control-Allow-Origin"));
    s_resp_free (&r);
}

static void
test_readyz_down (void **state)
{
    s_resp_t r;
    uint64_t start = cm_mono_ms ();
    assert_int_equal (s_get ("/readyz", NULL, &r), 0);
    uint64_t took = cm_mono_ms () - start;
    assert_int_equal (r.status, 503);
    assert_true (took < 3000); /* asked in parallel, 1 s each */
    json_error_t err;
    json_t *root = json_loads (r.body, 0, &err);
    assert_non_null (root);
    assert_string_equal (json_string_value (json_object_get (root, "status")),
                         "unavailable");
    const char *names[] = {"auth", "crypto", "storage", "mailer"};
    for (int i = 0; i < 4; i++) {
        json_t *svc = json_object_get (json_object_get (root, "services"), names[i]);
        assert_non_null (svc);
        assert_true (json_is_false (json_object_get (svc, "ok")));
    }
    json_decref (root);
    s_resp_free (&r);
}

static char *
s_b64url (const char *in)
{
    size_t len = strlen (in);
    char *out = malloc (len * 2 + 8);
    EVP_EncodeBlock ((unsigned char *)out, (const unsigned char *)in, (int)len);
    size_t k = 0;
    for (size_t i = 0; out[i]; i++) {
        if (out[i] == '=') {
            break;
        }
        out[k++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    out[k] = '\0';
    return out;
}

static void
test_tokens (void **state)
{
    s_resp_t r;
    assert_int_equal (s_get ("/api/files", NULL, &r), 0);
    s_assert_error (&r, 401, "missing_token");
    assert_non_null (strcasestr (r.head, "WWW-Authenticate: Bearer"));
    s_resp_free (&r);

    assert_int_equal (s_get ("/api/files", "not.a.token", &r), 0);
    s_assert_error (&r, 401, "invalid_token");
    assert_non_null (strcasestr (r.head, "WWW-Authenticate: Bearer"));
    s_resp_free (&r);

    /* Tampered payload: one character of the middle part changed. */
    char tampered[CM_JWT_MAX_LEN];
    snprintf (tampered, sizeof tampered, "%s", s_ops_token);
    char *dot = strchr (tampered, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    assert_int_equal (s_get ("/api/files", tampered, &r), 0);
    s_assert_error (&r, 401, "invalid_token");
    s_resp_free (&r);

    /* Expired, properly signed. */
    char *expired = cm_jwt_sign (s_signer, OPS_ID, "ops", cm_now_s () - 7200, 60);
    assert_non_null (expired);
    assert_int_equal (s_get ("/api/files", expired, &r), 0);
    s_assert_error (&r, 401, "invalid_token");
    free (expired);
    s_resp_free (&r);

    /* alg none with our claims and no signature. */
    char payload[512];
    snprintf (payload, sizeof payload,
              "{\"iss\":\"safeshare\",\"aud\":\"safeshare-api\",\"sub\":\"%s\","
              "\"role\":\"admin\",\"jti\":\"x\",\"iat\":%llu,\"exp\":%llu}",
              OPS_ID, (unsigned long long)cm_now_s (),
              (unsigned long long)cm_now_s () + 600);
    char *h64 = s_b64url ("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char *p64 = s_b64url (payload);
    char none[2048];
    snprintf (none, sizeof none, "%s.%s.", h64, p64);
    free (h64);
    free (p64);
    assert_int_equal (s_get ("/api/files", none, &r), 0);
    s_assert_error (&r, 401, "invalid_token");
    s_resp_free (&r);
}

static void
test_routing_errors (void **state)
{
    s_resp_t r;
    assert_int_equal (s_get ("/nope", NULL, &r), 0);
    s_assert_error (&r, 404, "not_found");
    s_resp_free (&r);
    assert_int_equal (s_get ("/index.html", NULL, &r), 0); /* no document_root */
    s_assert_error (&r, 404, "not_found");
    s_resp_free (&r);
    const char put[] = "PUT /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n";
    assert_int_equal (s_http (put, sizeof put - 1, &r, 5000), 0);
    s_assert_error (&r, 405, "method_not_allowed");
    assert_non_null (strstr (r.head, "Allow: GET, POST"));
    s_resp_free (&r);
    /* A malformed file id is a 404 file_not_found (after auth). */
    assert_int_equal (s_get ("/api/files/../../etc", s_client_token, &r), 0);
    assert_true (r.status == 404);
    s_resp_free (&r);
    assert_int_equal (s_get ("/api/files/XYZ", s_client_token, &r), 0);
    s_assert_error (&r, 404, "file_not_found");
    s_resp_free (&r);
    assert_int_equal (s_get ("/api/download/bad.token", NULL, &r), 0);
    s_assert_error (&r, 404, "link_not_found");
    s_resp_free (&r);
}

static void
test_smuggling (void **state)
{
    s_resp_t r;
    const char req[] = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\nContent-Length: 4\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_int_equal (s_http (req, sizeof req - 1, &r, 5000), 0);
    s_assert_error (&r, 400, "invalid_request");
    s_resp_free (&r);
    /* The same header twice (civetweb would frame by the first one),
       even with equal values or another case: 400, then the close.     */
    const char *twice[] = {
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\ncontent-length: 2\r\n\r\n{}",
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\n{}\r\n0\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n"
        "\r\nhello",
    };
    for (size_t i = 0; i < sizeof twice / sizeof twice[0]; i++) {
        int fd = s_connect ();
        assert_true (fd >= 0);
        send (fd, twice[i], strlen (twice[i]), MSG_NOSIGNAL);
        assert_int_equal (s_read_response (fd, &r, 5000), 0);
        s_assert_error (&r, 400, "invalid_request");
        s_resp_free (&r);
        struct pollfd p = {fd, POLLIN, 0};
        char byte;
        assert_int_equal (poll (&p, 1, 3000), 1);
        assert_true (recv (fd, &byte, 1, 0) <= 0);
        close (fd);
    }
    s_assert_alive ();
}

/* CVE-2025-9648: a urlencoded body with a NUL pins civetweb's form parser.
   Every POST route must answer 4xx without parsing it, and stay up.   */
static void
test_cve_nul_urlencoded (void **state)
{
    static const char body[] = "a=1&b=\0\0&c=%00";
    const char *paths[] = {"/api/auth/signup", "/api/auth/login", "/api/files",
                           "/api/files/" FILE_ID "/links"};
    const char *tokens[] = {NULL, s_ops_token, s_client_token};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++) {
            s_resp_t r;
            uint64_t start = cm_mono_ms ();
            assert_int_equal (s_post (paths[p], tokens[t],
                                      "application/x-www-form-urlencoded", body,
                                      sizeof body - 1, &r),
                              0);
            assert_true (r.status >= 400 && r.status < 500);
            assert_true (cm_mono_ms () - start < 3000);
            s_resp_free (&r);
        }
    }
    s_assert_alive ();
}

static void
test_limits (void **state)
{
    s_resp_t r;
    /* Upload: Content-Length over the limit -> 413 before any body byte. */
    char req[4096];
    int n =
        snprintf (req, sizeof req,
                  "POST /api/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: multipart/form-data; boundary=B\r\n"
                  "Content-Length: %d\r\n\r\n",
                  s_ops_token, MAX_UPLOAD + 200 * 1000);
    uint64_t start = cm_mono_ms ();
    int fd = s_connect ();
    send (fd, req, (size_t)n, MSG_NOSIGNAL);
    assert_int_equal (s_read_response (fd, &r, 5000), 0);
    s_assert_error (&r, 413, "too_large");
    assert_true (cm_mono_ms () - start < 2000);
    s_resp_free (&r);
    /* The unread body is not waited for: the server closes at once. */
    char byte;
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal (poll (&p, 1, 2000), 1);
    assert_int_equal (recv (fd, &byte, 1, 0), 0);
    close (fd);

    /* JSON routes: bodies over 16 KiB. */
    n = snprintf (req, sizeof req,
                  "POST /api/auth/login HTTP/1.1\r\nHost: x\r\n"
                  "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{");
    assert_int_equal (s_http (req, (size_t)n, &r, 5000), 0);
    s_assert_error (&r, 413, "too_large");
    s_resp_free (&r);

    /* Bad JSON, missing fields. */
    assert_int_equal (
        s_post ("/api/auth/login", NULL, "application/json", "{\"a\":", 5, &r), 0);
    s_assert_error (&r, 400, "invalid_json");
    s_resp_free (&r);
    assert_int_equal (s_post ("/api/auth/login", NULL, "application/json", "[1]", 3, &r),
                      0);
    s_assert_error (&r, 400, "invalid_json");
    s_resp_free (&r);
    const char *nopw = "{\"email\":\"a@b.c\"}";
    assert_int_equal (
        s_post ("/api/auth/login", NULL, "application/json", nopw, strlen (nopw), &r), 0);
    s_assert_error (&r, 400, "invalid_request");
    assert_non_null (strstr (r.body, "password"));
    s_resp_free (&r);
    const char *neg = "{\"expires_in\": -5}";
    assert_int_equal (s_post ("/api/files/" FILE_ID "/links", s_client_token,
                              "application/json", neg, strlen (neg), &r),
                      0);
    s_assert_error (&r, 400, "invalid_request");
    assert_non_null (strstr (r.body, "expires_in"));
    s_resp_free (&r);
    s_assert_alive ();
}

static void
test_roles (void **state)
{
    s_resp_t r;
    const char *mp =
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
        "\r\nhello\r\n--B--\r\n";
    assert_int_equal (s_post ("/api/files", s_client_token,
                              "multipart/form-data; boundary=B", mp, strlen (mp), &r),
                      0);
    s_assert_error (&r, 403, "forbidden");
    s_resp_free (&r);
    const char del[] = "DELETE /api/files/" FILE_ID " HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer ";
    char req[4096];
    int n = snprintf (req, sizeof req, "%s%s\r\nConnection: close\r\n\r\n", del,
                      s_client_token);
    assert_int_equal (s_http (req, (size_t)n, &r, 5000), 0);
    s_assert_error (&r, 403, "forbidden");
    s_resp_free (&r);
    /* Uploads must be multipart. */
    assert_int_equal (
        s_post ("/api/files", s_ops_token, "application/octet-stream", "x", 1, &r), 0);
    s_assert_error (&r, 415, "unsupported_media_type");
    s_resp_free (&r);
}

static void
test_service_down (void **state)
{
    s_resp_t r;
    const char *login = "{\"email\":\"a@b.example\",\"password\":\"correct horse\"}";
    uint64_t start = cm_mono_ms ();
    assert_int_equal (
        s_post ("/api/auth/login", NULL, "application/json", login, strlen (login), &r),
        0);
    s_assert_error (&r, 503, "service_unavailable");
    assert_true (cm_mono_ms () - start < 3000); /* RPC timeout is 1 s */
    s_resp_free (&r);
    assert_int_equal (s_get ("/api/auth/me", s_ops_token, &r), 0);
    s_assert_error (&r, 503, "service_unavailable");
    s_resp_free (&r);
    s_assert_alive ();
}

/* Builds a multipart body with one `file` part of len bytes. */
static char *
s_multipart (const char *filename, const uint8_t *data, size_t len, size_t *out_len)
{
    char head[512];
    int h =
        snprintf (head, sizeof head,
                  "--XbOuNdArY\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n"
                  "ignored\r\n--XbOuNdArY\r\nContent-Disposition: form-data; "
                  "name=\"file\"; filename=\"%s\"\r\nContent-Type: "
                  "application/octet-stream\r\n\r\n",
                  filename);
    const char tail[] = "\r\n--XbOuNdArY--\r\n";
    char *body = malloc ((size_t)h + len + sizeof tail);
    memcpy (body, head, (size_t)h);
    memcpy (body + h, data, len);
    memcpy (body + h + len, tail, sizeof tail - 1);
    *out_len = (size_t)h + len + sizeof tail - 1;
    return body;
}

/* Uploads size patterned bytes named filename, with that Content-Type
   and extra header lines.                                              */
static void
s_upload_as (const char *filename, const char *ctype, const char *extra, size_t size,
             s_resp_t *r, uint8_t **data_out)
{
    s_fake_reset ();
    uint8_t *data = malloc (size + 1);
    for (size_t i = 0; i < size; i++) {
        data[i] = (uint8_t)(i * 7 + 3);
    }
    size_t len;
    char *body = s_multipart (filename, data, size, &len);
    assert_int_equal (s_post_ex ("/api/files", s_ops_token, ctype, extra, body, len, r),
                      0);
    free (body);
    if (data_out) {
        *data_out = data;
    } else {
        free (data);
    }
}

static void
s_upload (size_t size, s_resp_t *r, uint8_t **data_out)
{
    s_upload_as ("C:\\tmp\\dir/report.txt", "multipart/form-data; boundary=XbOuNdArY", "",
                 size, r, data_out);
}

static void
test_upload_pipeline (void **state)
{
    /* Sizes around the chunk boundary: last flags and lengths must fit. */
    size_t sizes[] = {10000, 2 * CHUNK, 0, 1};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t size = sizes[s];
        s_resp_t r;
        uint8_t *data;
        s_upload (size, &r, &data);
        if (r.status != 201) {
            fprintf (stderr, "upload %zu: %d %s\n", size, r.status, r.body);
        }
        assert_int_equal (r.status, 201);
        s_fake_t fake = s_fake_snapshot ();
        assert_string_equal (fake.begin_name, "report.txt");
        assert_string_equal (fake.begin_type, "text/plain");
        size_t chunks = size == 0 ? 1 : (size + CHUNK - 1) / CHUNK;
        assert_int_equal (fake.encrypts, chunks);
        for (size_t i = 0; i < chunks; i++) {
            size_t expect = i + 1 < chunks ? CHUNK : size - i * CHUNK;
            assert_int_equal (fake.enc_index[i], i);
            assert_int_equal (fake.enc_len[i], expect);
            assert_int_equal (fake.enc_last[i], i + 1 == chunks);
        }
        assert_true (fake.committed);
        assert_int_equal (fake.commit_size, size);
        assert_int_equal (fake.commit_chunks, chunks);
        assert_int_equal (fake.commit_blob, 48 + size + 16 * chunks);
        assert_int_equal (fake.blob_len, 48 + size + 16 * chunks);
        uint8_t digest[32];
        char hex[65];
        SHA256 (data, size, digest);
        cm_hex_encode (hex, digest, 32);
        assert_string_equal (fake.commit_sha, hex);
        /* The stored plaintext of chunk 1 sits where docs/format.md says. */
        if (chunks > 1) {
            assert_memory_equal (fake.blob + 48 + (CHUNK + 16), data + CHUNK,
                                 size - CHUNK < CHUNK ? size - CHUNK : CHUNK);
        }
        assert_int_equal (fake.aborts, 0);
        json_error_t err;
        json_t *root = json_loads (r.body, 0, &err);
        assert_non_null (root);
        assert_string_equal (json_string_value (json_object_get (root, "id")), FILE_ID);
        assert_null (json_object_get (root, "wrapped_dek"));
        json_decref (root);
        free (data);
        s_resp_free (&r);
    }
}

static void
test_upload_errors (void **state)
{
    s_resp_t r;
    /* No `file` field. */
    const char *mp =
        "--XbOuNdArY\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n"
        "x\r\n--XbOuNdArY--\r\n";
    assert_int_equal (s_post ("/api/files", s_ops_token,
                              "multipart/form-data; boundary=XbOuNdArY", mp, strlen (mp),
                              &r),
                      0);
    s_assert_error (&r, 400, "missing_file");
    s_resp_free (&r);

    /* Client goes away mid-body: FILE_ABORT, nothing committed. */
    s_fake_reset ();
    uint8_t data[3 * CHUNK];
    memset (data, 'z', sizeof data);
    size_t len;
    char *body = s_multipart ("cut.bin", data, sizeof data, &len);
    char head[4096];
    int n =
        snprintf (head, sizeof head,
                  "POST /api/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: multipart/form-data; boundary=XbOuNdArY\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  s_ops_token, len);
    int fd = s_connect ();
    assert_true (fd >= 0);
    send (fd, head, (size_t)n, MSG_NOSIGNAL);
    send (fd, body, len - 100, MSG_NOSIGNAL); /* past the first chunks, not the end */
    struct pollfd none;
    poll (&none, 0, 300);
    close (fd);
    free (body);
    uint64_t deadline = cm_mono_ms () + 5000;
    int aborts = 0;
    bool committed = false;
    while (cm_mono_ms () < deadline) {
        pthread_mutex_lock (&s_fake.lock);
        aborts = s_fake.aborts;
        committed = s_fake.committed;
        pthread_mutex_unlock (&s_fake.lock);
        if (aborts) {
            break;
        }
        poll (&none, 0, 20);
    }
    assert_int_equal (aborts, 1);
    assert_false (committed);

    /* Chunked body over the limit: counted as it arrives -> 413 + abort. */
    s_fake_reset ();
    size_t big = MAX_UPLOAD + CHUNK;
    uint8_t *bigdata = calloc (1, big);
    body = s_multipart ("big.bin", bigdata, big, &len);
    n = snprintf (head, sizeof head,
                  "POST /api/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: multipart/form-data; boundary=XbOuNdArY\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
                  s_ops_token, len);
    fd = s_connect ();
    send (fd, head, (size_t)n, MSG_NOSIGNAL);
    send (fd, body, len, MSG_NOSIGNAL);
    send (fd, "\r\n0\r\n\r\n", 7, MSG_NOSIGNAL);
    assert_int_equal (s_read_response (fd, &r, 10000), 0);
    close (fd);
    s_assert_error (&r, 413, "too_large");
    s_resp_free (&r);
    free (body);
    free (bigdata);
    s_fake_t fake = s_fake_snapshot ();
    assert_int_equal (fake.aborts, 1);
    assert_false (fake.committed);
    s_assert_alive ();
}

static void
test_download (void **state)
{
    s_resp_t r;
    uint8_t *data;
    size_t size = 3 * CHUNK + 100;
    s_upload (size, &r, &data);
    assert_int_equal (r.status, 201);
    s_resp_free (&r);

    assert_int_equal (s_get ("/api/files/" FILE_ID "/content", s_client_token, &r), 0);
    assert_int_equal (r.status, 200);
    assert_int_equal (r.content_length, size);
    assert_int_equal (r.body_len, size);
    assert_memory_equal (r.body, data, size);
    assert_non_null (strcasestr (r.head, "Content-Type: text/plain"));
    assert_non_null (strstr (r.head,
                             "Content-Disposition: attachment; filename=\"re_port.txt\"; "
                             "filename*=UTF-8''re%22port.txt"));
    char etag[100];
    s_fake_t fake = s_fake_snapshot ();
    snprintf (etag, sizeof etag, "ETag: \"%s\"", fake.commit_sha);
    assert_non_null (strstr (r.head, etag));
    assert_non_null (
        strstr (r.head, "Content-Security-Policy: sandbox; default-src 'none'"));
    assert_non_null (strcasestr (r.head, "X-Content-Type-Options: nosniff"));
    s_resp_free (&r);

    /* First chunk fails authentication: a JSON error, no plaintext. */
    pthread_mutex_lock (&s_fake.lock);
    s_fake.bad_chunk = 0;
    pthread_mutex_unlock (&s_fake.lock);
    assert_int_equal (s_get ("/api/files/" FILE_ID "/content", s_client_token, &r), 0);
    s_assert_error (&r, 502, "integrity_error");
    s_resp_free (&r);

    /* A later chunk fails: the connection is cut short of Content-Length,
       and the bad chunk's bytes never arrive.                           */
    pthread_mutex_lock (&s_fake.lock);
    s_fake.bad_chunk = 2;
    pthread_mutex_unlock (&s_fake.lock);
    const char req[] = "GET /api/files/" FILE_ID "/content HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer ";
    char full[4096];
    int n = snprintf (full, sizeof full, "%s%s\r\n\r\n", req,
                      s_client_token); /* keep-alive */
    int fd = s_connect ();
    send (fd, full, (size_t)n, MSG_NOSIGNAL);
    assert_int_equal (s_read_response (fd, &r, 5000), 0);
    close (fd);
    assert_int_equal (r.status, 200);
    assert_true (r.closed);
    assert_int_equal (r.body_len, 2 * CHUNK);
    s_resp_free (&r);
    pthread_mutex_lock (&s_fake.lock);
    s_fake.bad_chunk = -1;
    pthread_mutex_unlock (&s_fake.lock);
    free (data);
    s_assert_alive ();
}

static void
test_keepalive (void **state)
{
    /* Two requests on one connection, answered in order. */
    int fd = s_connect ();
    assert_true (fd >= 0);
    const char one[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const char two[] = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    send (fd, one, sizeof one - 1, MSG_NOSIGNAL);
    s_resp_t r;
    assert_int_equal (s_read_response (fd, &r, 5000), 0);
    assert_int_equal (r.status, 200);
    assert_false (r.closed);
    s_resp_free (&r);
    send (fd, two, sizeof two - 1, MSG_NOSIGNAL);
    assert_int_equal (s_read_response (fd, &r, 5000), 0);
    assert_int_equal (r.status, 404);
    s_resp_free (&r);
    close (fd);
}

/* ---- review fixes ------------------------------------------------------- */

/* Item 1: error answers on unread bodies (401 on an unauthenticated upload
   with a huge Content-Length) must not keep the worker reading that body:
   with 2 workers, one client trickling and one holding its socket,
   /healthz still answers in time.                                      */
static void
test_unread_body_dos (void **state)
{
    int port = s_free_port ();
    pid_t pid = s_spawn (port, 2);
    assert_true (pid > 0);
    const char head[] = "POST /api/files HTTP/1.1\r\nHost: x\r\n"
                        "Content-Type: multipart/form-data; boundary=BoUnDaRy\r\n"
                        "Content-Length: 1000000000\r\n\r\n--BoUnDaRy\r\n";
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = s_connect_to (port);
        assert_true (fds[i] >= 0);
        send (fds[i], head, sizeof head - 1, MSG_NOSIGNAL);
    }
    for (int i = 0; i < 2; i++) {
        s_resp_t r;
        assert_int_equal (s_read_response (fds[i], &r, 3000), 0);
        s_assert_error (&r, 401, "missing_token");
        s_resp_free (&r);
    }
    /* fds[0] trickles a byte every 100 ms, fds[1] just holds.          */
    int h = s_connect_to (port);
    assert_true (h >= 0);
    const char health[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send (h, health, sizeof health - 1, MSG_NOSIGNAL);
    uint64_t start = cm_mono_ms ();
    char buf[4096];
    size_t used = 0;
    bool ok = false;
    while (!ok && cm_mono_ms () - start < 4000) {
        send (fds[0], "x", 1, MSG_NOSIGNAL);
        struct pollfd p = {h, POLLIN, 0};
        if (poll (&p, 1, 100) > 0) {
            ssize_t n = recv (h, buf + used, sizeof buf - 1 - used, 0);
            if (n <= 0) {
                break;
            }
            used += (size_t)n;
            buf[used] = '\0';
            ok = strstr (buf, "HTTP/1.1 200") && strstr (buf, "{\"status\":\"ok\"}");
        }
    }
    uint64_t took = cm_mono_ms () - start;
    if (!ok || took >= 2000) {
        fprintf (stderr, "healthz ok=%d after %llu ms\n", ok, (unsigned long long)took);
    }
    assert_true (ok);
    assert_true (took < 2000);
    close (h);
    /* The holder's connection is closed by the server, not left open.  */
    struct pollfd p = {fds[1], POLLIN, 0};
    assert_int_equal (poll (&p, 1, 3000), 1);
    char byte;
    assert_true (recv (fds[1], &byte, 1, 0) <= 0);
    close (fds[0]);
    close (fds[1]);
    assert_int_equal (cm_test_stop (pid, 10000), 0);
}

/* Item 1: a body that trickles in (JSON or upload) is cut at its deadline
   with 408 request_timeout; the begun upload is aborted.              */
static void
test_slow_body (void **state)
{
    s_fake_reset ();
    char head[4096];
    int fds[2];
    int n = snprintf (head, sizeof head,
                      "POST /api/auth/login HTTP/1.1\r\nHost: x\r\n"
                      "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{");
    fds[0] = s_connect ();
    send (fds[0], head, (size_t)n, MSG_NOSIGNAL);
    n = snprintf (head, sizeof head,
                  "POST /api/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: multipart/form-data; boundary=XbOuNdArY\r\n"
                  "Content-Length: 60000\r\n\r\n--XbOuNdArY\r\nContent-Disposition: "
                  "form-data; name=\"file\"; filename=\"slow.bin\"\r\n\r\n",
                  s_ops_token);
    fds[1] = s_connect ();
    send (fds[1], head, (size_t)n, MSG_NOSIGNAL);
    uint64_t start = cm_mono_ms ();
    uint64_t took[2] = {0, 0};
    while ((!took[0] || !took[1]) && cm_mono_ms () - start < 20000) {
        struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
        poll (p, 2, 500);
        for (int i = 0; i < 2; i++) {
            if (!took[i] && (p[i].revents & POLLIN)) {
                took[i] = cm_mono_ms () - start;
            } else if (!took[i]) {
                send (fds[i], " ", 1, MSG_NOSIGNAL);
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        s_resp_t r;
        assert_int_equal (s_read_response (fds[i], &r, 2000), 0);
        s_assert_error (&r, 408, "request_timeout");
        s_resp_free (&r);
        close (fds[i]);
        fprintf (stderr, "slow body %d cut after %llu ms\n", i,
                 (unsigned long long)took[i]);
        assert_true (took[i] >= 9000 && took[i] < 14000);
    }
    s_fake_t fake = s_fake_snapshot ();
    assert_int_equal (fake.aborts, 1);
    assert_false (fake.committed);
    s_assert_alive ();
}

/* Item 3: FILE_COMMIT lands but its reply is late: the client hears 503,
   the gateway's FILE_ABORT is refused (file_committed) and it deletes the
   file, so nothing the client was told failed stays visible.          */
static void
test_commit_reply_lost (void **state)
{
    s_fake_reset ();
    pthread_mutex_lock (&s_fake.lock);
    s_fake.commit_delay_ms = 1500;
    pthread_mutex_unlock (&s_fake.lock);
    uint8_t data[3000];
    memset (data, 'c', sizeof data);
    size_t len;
    char *body = s_multipart ("late.txt", data, sizeof data, &len);
    s_resp_t r;
    assert_int_equal (s_post ("/api/files", s_ops_token,
                              "multipart/form-data; boundary=XbOuNdArY", body, len, &r),
                      0);
    free (body);
    s_assert_error (&r, 503, "service_unavailable");
    s_resp_free (&r);
    pthread_mutex_lock (&s_fake.lock);
    s_fake.commit_delay_ms = 0;
    pthread_mutex_unlock (&s_fake.lock);
    s_fake_t fake = s_fake_snapshot ();
    assert_int_equal (fake.deletes, 1);
    assert_false (fake.committed);
    assert_int_equal (s_get ("/api/files/" FILE_ID, s_client_token, &r), 0);
    s_assert_error (&r, 404, "file_not_found");
    s_resp_free (&r);
}

/* Item 4: active types are never stored nor served as such.           */
static void
test_active_types (void **state)
{
    const char *names[] = {"page.html", "PAGE.HTM", "x.svg",
                           "feed.xml",  "app.js",   "doc.xhtml"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        s_resp_t r;
        s_upload_as (names[i], "multipart/form-data; boundary=XbOuNdArY", "", 10, &r,
                     NULL);
        assert_int_equal (r.status, 201);
        s_resp_free (&r);
        s_fake_t fake = s_fake_snapshot ();
        assert_string_equal (fake.begin_type, "application/octet-stream");
    }
    /* One stored before the rule (or by another writer) is served inert. */
    pthread_mutex_lock (&s_fake.lock);
    snprintf (s_fake.file_type, sizeof s_fake.file_type, "text/html; charset=utf-8");
    pthread_mutex_unlock (&s_fake.lock);
    s_resp_t r;
    assert_int_equal (s_get ("/api/files/" FILE_ID "/content", s_client_token, &r), 0);
    assert_int_equal (r.status, 200);
    assert_non_null (strcasestr (r.head, "Content-Type: application/octet-stream"));
    assert_null (strcasestr (r.head, "text/html"));
    assert_non_null (strstr (r.head, "Content-Disposition: attachment;"));
    assert_non_null (strcasestr (r.head, "X-Content-Type-Options: nosniff"));
    assert_non_null (strstr (r.head, "Content-Security-Policy: sandbox"));
    s_resp_free (&r);
    pthread_mutex_lock (&s_fake.lock);
    s_fake.file_type[0] = '\0';
    pthread_mutex_unlock (&s_fake.lock);
}

/* Item 5: exactly SAFESHARE_MAX_UPLOAD_BYTES with a Content-Length is
   taken; one byte more is not.                                         */
static void
test_upload_max (void **state)
{
    s_resp_t r;
    s_upload (MAX_UPLOAD, &r, NULL);
    if (r.status != 201) {
        fprintf (stderr, "max upload: %d %s\n", r.status, r.body);
    }
    assert_int_equal (r.status, 201);
    s_resp_free (&r);
    s_fake_t fake = s_fake_snapshot ();
    assert_true (fake.committed);
    assert_int_equal (fake.commit_size, MAX_UPLOAD);

    s_upload (MAX_UPLOAD + 1, &r, NULL);
    s_assert_error (&r, 413, "too_large");
    s_resp_free (&r);
    fake = s_fake_snapshot ();
    assert_false (fake.committed);
    assert_int_equal (fake.aborts, 1);
    s_assert_alive ();
}

/* Item 6: every call on the wire has its own id, prefixed by the HTTP
   request id; the client still sees its plain X-Request-Id.           */
static void
s_check_wire_ids (const char *req_id, size_t min_calls)
{
    s_fake_t fake = s_fake_snapshot ();
    assert_true ((size_t)fake.ids >= min_calls);
    size_t keep = strlen (req_id) > 50 ? 50 : strlen (req_id);
    for (int i = 0; i < fake.ids; i++) {
        assert_true (strlen (fake.id[i]) <= 64);
        assert_true (cm_is_request_id (fake.id[i]));
        assert_memory_equal (fake.id[i], req_id, keep);
        assert_non_null (strchr (fake.id[i], '.'));
        for (int k = 0; k < i; k++) {
            assert_string_not_equal (fake.id[i], fake.id[k]);
        }
    }
}

static void
test_wire_ids (void **state)
{
    s_resp_t r;
    s_upload_as ("w.txt", "multipart/form-data; boundary=XbOuNdArY",
                 "X-Request-Id: wire-probe\r\n", 2 * CHUNK + 5, &r, NULL);
    assert_int_equal (r.status, 201);
    assert_non_null (strstr (r.head, "X-Request-Id: wire-probe\r\n"));
    s_resp_free (&r);
    /* begin, key, header append, 3 x (encrypt + append), commit        */
    s_check_wire_ids ("wire-probe.", 10);

    char id[65];
    memset (id, 'a', 64);
    id[64] = '\0';
    char extra[100];
    snprintf (extra, sizeof extra, "X-Request-Id: %s\r\n", id);
    s_upload_as ("w.txt", "multipart/form-data; boundary=XbOuNdArY", extra, 10, &r, NULL);
    assert_int_equal (r.status, 201);
    char want[100];
    snprintf (want, sizeof want, "X-Request-Id: %s\r\n", id);
    assert_non_null (strstr (r.head, want));
    s_resp_free (&r);
    s_check_wire_ids (id, 5);
}

/* Item 7: the boundary is found wherever it is among the parameters. */
static void
test_multipart_params (void **state)
{
    const char *types[] = {
        "multipart/form-data; charset=utf-8; boundary=XbOuNdArY",
        "multipart/form-data; boundary=\"XbOuNdArY\"",
        "multipart/form-data; boundary=XbOuNdArY; charset=utf-8",
        "Multipart/Form-Data ; Charset=\"a;b\" ;BOUNDARY=XbOuNdArY",
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        s_resp_t r;
        uint8_t *data;
        s_upload_as ("p.bin", types[i], "", CHUNK + 7, &r, &data);
        if (r.status != 201) {
            fprintf (stderr, "%s: %d %s\n", types[i], r.status, r.body);
        }
        assert_int_equal (r.status, 201);
        s_resp_free (&r);
        s_fake_t fake = s_fake_snapshot ();
        assert_int_equal (fake.commit_size, CHUNK + 7);
        assert_memory_equal (fake.blob + 48, data, CHUNK);
        free (data);
    }
    /* A boundary that has to be quoted reaches civetweb quoted.         */
    s_fake_reset ();
    uint8_t data[100];
    memset (data, 'q', sizeof data);
    size_t len;
    char *body = s_multipart ("q.bin", data, sizeof data, &len);
    for (char *p = body; (p = memmem (p, len - (size_t)(p - body), "XbOuNdArY", 9));) {
        memcpy (p, "Xb Ou(N)d", 9);
    }
    s_resp_t r;
    assert_int_equal (s_post ("/api/files", s_ops_token,
                              "multipart/form-data; charset=x; boundary=\"Xb Ou(N)d\"",
                              body, len, &r),
                      0);
    free (body);
    assert_int_equal (r.status, 201);
    s_resp_free (&r);
    s_fake_t fake = s_fake_snapshot ();
    assert_int_equal (fake.commit_size, sizeof data);

    s_upload_as ("p.bin", "multipart/form-data; charset=utf-8", "", 10, &r, NULL);
    s_assert_error (&r, 400, "invalid_multipart");
    s_resp_free (&r);
    s_assert_alive ();
}

/* ---- a fake auth for /api/auth/verify/resend ---------------------------- */

/* Answers RESEND as auth does: invalid_email for what is no address,
   else OK (mail or not is auth's business). Remembers what it got. */
static char s_resend_seen[8][300];
static int s_resend_count;
static pthread_mutex_t s_resend_lock = PTHREAD_MUTEX_INITIALIZER;

static void
s_fake_auth_fn (zsock_t *pipe, void *args)
{
    zsock_t *auth = cm_sock_server ((const char *)args);
    zsock_signal (pipe, auth ? 0 : 1);
    zpoller_t *poller = zpoller_new (pipe, auth, NULL);
    while (auth) {
        void *which = zpoller_wait (poller, 1000);
        if (which == pipe || zpoller_terminated (poller)) {
            break;
        }
        if (which != auth) {
            continue;
        }
        cm_call_t call;
        if (cm_call_recv (auth, &safeshare__auth_request__descriptor,
                          &safeshare__auth_reply__descriptor, &call) != 0) {
            continue;
        }
        Safeshare__AuthRequest *r = (Safeshare__AuthRequest *)call.request;
        if (r->body_case == SAFESHARE__AUTH_REQUEST__BODY_HEALTH) {
            /* Up: lets the test wait for the gateway to see it (readyz). */
            Safeshare__AuthReply reply = SAFESHARE__AUTH_REPLY__INIT;
            Safeshare__Meta meta = SAFESHARE__META__INIT;
            Safeshare__HealthReply health = SAFESHARE__HEALTH_REPLY__INIT;
            health.service = "auth";
            health.version = "fake";
            reply.meta = &meta;
            reply.body_case = SAFESHARE__AUTH_REPLY__BODY_HEALTH;
            reply.health = &health;
            cm_call_reply (auth, &call, &reply.base, NULL);
        } else if (r->body_case == SAFESHARE__AUTH_REQUEST__BODY_LOGIN) {
            /* Throttled as auth does it: RATE_LIMITED with the wait. */
            Safeshare__AuthReply reply = SAFESHARE__AUTH_REPLY__INIT;
            Safeshare__Meta meta = SAFESHARE__META__INIT;
            Safeshare__Error err = SAFESHARE__ERROR__INIT;
            reply.meta = &meta;
            reply.status = SAFESHARE__STATUS__STATUS_RATE_LIMITED;
            err.code = "too_many_attempts";
            err.message = "too many failed logins";
            err.retry_after_s = 42;
            reply.error = &err;
            cm_call_reply (auth, &call, &reply.base, NULL);
        } else if (r->body_case != SAFESHARE__AUTH_REQUEST__BODY_RESEND) {
            cm_call_reply_error (auth, &call, &safeshare__auth_reply__descriptor,
                                 CM_UNAVAILABLE, "fake", "only RESEND here");
        } else {
            pthread_mutex_lock (&s_resend_lock);
            if (s_resend_count < 8) {
                snprintf (s_resend_seen[s_resend_count++], 300, "%s", r->resend->email);
            }
            pthread_mutex_unlock (&s_resend_lock);
            if (strchr (r->resend->email, '@') == NULL) {
                cm_call_reply_error (auth, &call, &safeshare__auth_reply__descriptor,
                                     CM_INVALID, "invalid_email",
                                     "not a valid e-mail address");
            } else {
                Safeshare__AuthReply reply = SAFESHARE__AUTH_REPLY__INIT;
                Safeshare__Meta meta = SAFESHARE__META__INIT;
                Safeshare__ResendReply resend = SAFESHARE__RESEND_REPLY__INIT;
                reply.meta = &meta;
                reply.body_case = SAFESHARE__AUTH_REPLY__BODY_RESEND;
                reply.resend = &resend;
                cm_call_reply (auth, &call, &reply.base, NULL);
            }
        }
        cm_call_release (&call);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&auth);
}

/* Waits (at most 10 s) until the gateway's /readyz reports the fake
   auth up: its sockets reconnect on their own schedule, which a loaded
   machine can stretch past one RPC timeout.                            */
static void
s_wait_auth_up (void)
{
    for (int i = 0; i < 100; i++) {
        s_resp_t r;
        assert_int_equal (s_get ("/readyz", NULL, &r), 0);
        json_t *root = r.body ? json_loads (r.body, 0, NULL) : NULL;
        json_t *ok = json_object_get (
            json_object_get (json_object_get (root, "services"), "auth"), "ok");
        bool up = json_is_true (ok);
        json_decref (root);
        s_resp_free (&r);
        if (up) {
            return;
        }
        usleep (100 * 1000);
    }
    fail_msg ("the gateway never saw the fake auth up");
}

static int
s_resend_post (const char *body, s_resp_t *r)
{
    return s_post ("/api/auth/verify/resend", NULL, "application/json", body,
                   strlen (body), r);
}

static void
test_verify_resend (void **state)
{
    char ep[600];
    snprintf (ep, sizeof ep, "ipc://%s/run/auth.sock", s_dir);
    zactor_t *fake_auth = zactor_new (s_fake_auth_fn, ep);
    assert_non_null (fake_auth);
    s_wait_auth_up ();
    s_resend_count = 0;

    /* 202, the same body whatever auth did; the address passed on as is. */
    s_resp_t r;
    assert_int_equal (s_resend_post ("{\"email\":\" Someone@Example.org\"}", &r), 0);
    assert_int_equal (r.status, 202);
    assert_string_equal (r.body, "{\"status\":\"accepted\"}");
    assert_non_null (strcasestr (r.head, "Content-Type: application/json"));
    s_resp_free (&r);
    pthread_mutex_lock (&s_resend_lock);
    int seen = s_resend_count;
    char first[300];
    snprintf (first, sizeof first, "%s", s_resend_seen[0]);
    pthread_mutex_unlock (&s_resend_lock);
    assert_int_equal (seen, 1);
    assert_string_equal (first, " Someone@Example.org");

    /* What auth calls no address: 400 invalid_email. */
    assert_int_equal (s_resend_post ("{\"email\":\"not-an-address\"}", &r), 0);
    s_assert_error (&r, 400, "invalid_email");
    s_resp_free (&r);
    /* Empty or absurdly long: the gateway says so without asking. */
    assert_int_equal (s_resend_post ("{\"email\":\"\"}", &r), 0);
    s_assert_error (&r, 400, "invalid_email");
    s_resp_free (&r);
    char big[1200 + 32];
    memset (big, 0, sizeof big);
    strcpy (big, "{\"email\":\"");
    memset (big + strlen (big), 'a', 1100);
    strcat (big, "@x.org\"}");
    assert_int_equal (s_resend_post (big, &r), 0);
    s_assert_error (&r, 400, "invalid_email");
    s_resp_free (&r);
    pthread_mutex_lock (&s_resend_lock);
    seen = s_resend_count;
    pthread_mutex_unlock (&s_resend_lock);
    assert_int_equal (seen, 2);

    /* Not a string, missing, not JSON, wrong method. */
    assert_int_equal (s_resend_post ("{\"email\":5}", &r), 0);
    s_assert_error (&r, 400, "invalid_request");
    s_resp_free (&r);
    assert_int_equal (s_resend_post ("{}", &r), 0);
    s_assert_error (&r, 400, "invalid_request");
    s_resp_free (&r);
    assert_int_equal (s_resend_post ("{\"email\":", &r), 0);
    s_assert_error (&r, 400, "invalid_json");
    s_resp_free (&r);
    assert_int_equal (s_get ("/api/auth/verify/resend", NULL, &r), 0);
    s_assert_error (&r, 405, "method_not_allowed");
    s_resp_free (&r);

    zactor_destroy (&fake_auth);
    s_assert_alive ();
}

/* A throttled login: 429, Retry-After from Error.retry_after_s, the
   JSON error code; other errors carry no Retry-After. */
static void
test_login_rate_limited (void **state)
{
    char ep[600];
    snprintf (ep, sizeof ep, "ipc://%s/run/auth.sock", s_dir);
    zactor_t *fake_auth = zactor_new (s_fake_auth_fn, ep);
    assert_non_null (fake_auth);
    s_wait_auth_up ();
    const char *login = "{\"email\":\"a@example.org\",\"password\":\"whatever12\"}";
    s_resp_t r;
    assert_int_equal (
        s_post ("/api/auth/login", NULL, "application/json", login, strlen (login), &r),
        0);
    s_assert_error (&r, 429, "too_many_attempts");
    assert_non_null (strcasestr (r.head, "\r\nRetry-After: 42\r\n"));
    s_resp_free (&r);
    /* A 400 from auth (same fake, RESEND) has none. */
    assert_int_equal (s_resend_post ("{\"email\":\"not-an-address\"}", &r), 0);
    s_assert_error (&r, 400, "invalid_email");
    assert_null (strcasestr (r.head, "Retry-After"));
    s_resp_free (&r);
    zactor_destroy (&fake_auth);
    s_assert_alive ();
}

static void
test_sigterm (void **state)
{
    assert_int_equal (cm_test_stop (s_pid, 10000), 0);
    s_pid = -1;
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        fprintf (stderr, "usage: %s PATH/TO/safeshare-gateway\n", argv[0]);
        return 2;
    }
    s_binary = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_healthz),       cmocka_unit_test (test_readyz_down),
        cmocka_unit_test (test_tokens),        cmocka_unit_test (test_routing_errors),
        cmocka_unit_test (test_smuggling),     cmocka_unit_test (test_cve_nul_urlencoded),
        cmocka_unit_test (test_limits),        cmocka_unit_test (test_roles),
        cmocka_unit_test (test_service_down),  cmocka_unit_test (test_upload_pipeline),
        cmocka_unit_test (test_upload_errors), cmocka_unit_test (test_download),
        cmocka_unit_test (test_keepalive),     cmocka_unit_test (test_unread_body_dos),
        cmocka_unit_test (test_slow_body),     cmocka_unit_test (test_commit_reply_lost),
        cmocka_unit_test (test_active_types),  cmocka_unit_test (test_upload_max),
        cmocka_unit_test (test_wire_ids),      cmocka_unit_test (test_multipart_params),
        cmocka_unit_test (test_verify_resend), cmocka_unit_test (test_login_rate_limited),
        cmocka_unit_test (test_sigterm),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
