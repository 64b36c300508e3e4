/*  bench_crypto -- throughput of a running crypto broker's pool: sends
    ENCRYPT chunk requests through the broker's front socket, a window of
    them outstanding, for a fixed time, and prints MiB/s of plaintext
    sealed. Prints figures, asserts nothing (bench/README.md).

      bench_crypto --endpoint E [--seconds S] [--window W] [--chunk-size B]
                   [--wait-workers K]

    --wait-workers K first polls the broker's pool_status until K remote
    workers are connected (at most 20 s), so a run does not start against
    a pool still forming. One file (KEY_NEW by the broker), then chunks
    0, 1, 2, ... of it, each index sealed once (never a nonce twice), all
    full-size and not last. Every reply is checked: status OK, the
    request id of a request in flight, and a blob of chunk size + 16.

    Last line on stdout (for bench_crypto.py):
      result window=W chunk=B seconds=S chunks=N errors=E mib_s=X
    Exit 0 if every request in the window was answered OK, 1 otherwise. */
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_util.h"
#include "crypto.pb-c.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_WINDOW   64
#define S_RPC_MS       30000
#define S_WAIT_POOL_MS 20000

typedef struct {
    const char *endpoint;
    double seconds;
    int window;
    uint32_t chunk_size;
    int wait_workers;
} s_opts_t;

/* The plaintext chunk, sent zero-copy with every request: libzmq only
   reads it, and it lives until exit, so nothing is freed here.        */
static void
s_keep (void *data, void *hint)
{
}

static int
s_usage (void)
{
    fprintf (stderr, "usage: bench_crypto --endpoint E [--seconds S] [--window W] "
                     "[--chunk-size B] [--wait-workers K]\n");
    return 2;
}

static int
s_parse_long (const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol (text, &end, 10);
    if (errno || !end || end == text || *end || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

static int
s_parse (int argc, char **argv, s_opts_t *o)
{
    *o = (s_opts_t){NULL, 5.0, 8, 1048576, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        if (!v) {
            return -1;
        }
        if (strcmp (a, "--endpoint") == 0) {
            o->endpoint = v;
        } else if (strcmp (a, "--seconds") == 0 && s_parse_long (v, 1, 3600, &n) == 0) {
            o->seconds = (double)n;
        } else if (strcmp (a, "--window") == 0 &&
                   s_parse_long (v, 1, S_MAX_WINDOW, &n) == 0) {
            o->window = (int)n;
        } else if (strcmp (a, "--chunk-size") == 0 &&
                   s_parse_long (v, 4096, 16777216, &n) == 0) {
            o->chunk_size = (uint32_t)n;
        } else if (strcmp (a, "--wait-workers") == 0 &&
                   s_parse_long (v, 0, 64, &n) == 0) {
            o->wait_workers = (int)n;
        } else {
            return -1;
        }
        i++;
    }
    return o->endpoint ? 0 : -1;
}

/* One request/reply on the broker's front socket. The reply is the
   caller's (protobuf_c_message_free_unpacked) when status is OK.       */
static Safeshare__CryptoReply *
s_call (zsock_t *sock, Safeshare__CryptoRequest *req, const char *what)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    char reqbuf[65];
    cm_meta_init (&meta, reqbuf, NULL, S_RPC_MS);
    req->meta = &meta;
    ProtobufCMessage *reply = NULL;
    cm_status_t st =
        cm_rpc_call (sock, (ProtobufCMessage *)req, NULL,
                     &safeshare__crypto_reply__descriptor, S_RPC_MS, &reply, NULL);
    req->meta = NULL;
    if (st != CM_OK) {
        fprintf (stderr, "bench_crypto: %s: no reply within %d ms\n", what, S_RPC_MS);
        return NULL;
    }
    Safeshare__CryptoReply *r = (Safeshare__CryptoReply *)reply;
    if (r->status != SAFESHARE__STATUS__STATUS_OK) {
        fprintf (stderr, "bench_crypto: %s: status %d %s\n", what, (int)r->status,
                 r->error && r->error->code ? r->error->code : "");
        protobuf_c_message_free_unpacked (reply, NULL);
        return NULL;
    }
    return r;
}

static int
s_wait_workers (zsock_t *sock, int want)
{
    uint64_t deadline = cm_mono_ms () + S_WAIT_POOL_MS;
    int have = -1;
    while (cm_mono_ms () < deadline) {
        Safeshare__PoolStatusRequest body = SAFESHARE__POOL_STATUS_REQUEST__INIT;
        Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
        req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_POOL_STATUS;
        req.pool_status = &body;
        Safeshare__CryptoReply *r = s_call (sock, &req, "pool_status");
        if (!r) {
            return -1;
        }
        have = 0;
        if (r->body_case == SAFESHARE__CRYPTO_REPLY__BODY_POOL_STATUS && r->pool_status) {
            for (size_t i = 0; i < r->pool_status->n_workers; i++) {
                have += !r->pool_status->workers[i]->local;
            }
        }
        protobuf_c_message_free_unpacked ((ProtobufCMessage *)r, NULL);
        if (have >= want) {
            return 0;
        }
        zclock_sleep (100);
    }
    fprintf (stderr, "bench_crypto: %d of %d remote workers after %d ms\n", have, want,
             S_WAIT_POOL_MS);
    return -1;
}

typedef struct {
    zsock_t *sock;
    const s_opts_t *o;
    Safeshare__KeyNewReply *key;
    char file_id[33];
    uint8_t *plain;
    uint64_t next_index;
    /* In flight: request ids "c<index>", so a reply names its chunk.  */
    uint64_t inflight[S_MAX_WINDOW];
    int n_inflight;
    uint64_t done;
    uint64_t errors;
} s_bench_t;

static int
s_send_chunk (s_bench_t *b)
{
    Safeshare__ChunkRequest chunk = SAFESHARE__CHUNK_REQUEST__INIT;
    chunk.file_id = b->file_id;
    chunk.kek_id = b->key->kek_id;
    chunk.wrapped_dek = b->key->wrapped_dek;
    chunk.header = b->key->header;
    chunk.index = b->next_index;
    chunk.last = false;
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    char id[32];
    char reqbuf[65];
    snprintf (id, sizeof id, "c%llu", (unsigned long long)b->next_index);
    cm_meta_init (&meta, reqbuf, id, S_RPC_MS);
    req.meta = &meta;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT;
    req.encrypt = &chunk;
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zframe_t *head = cm_frame_pack ((ProtobufCMessage *)&req);
    zmsg_append (msg, &head);
    if (cm_msg_send_zc (b->sock, &msg, b->plain, b->o->chunk_size, s_keep, NULL) != 0) {
        fprintf (stderr, "bench_crypto: send failed: %s\n", zmq_strerror (zmq_errno ()));
        return -1;
    }
    b->inflight[b->n_inflight++] = b->next_index++;
    return 0;
}

/* Receives one reply (at most timeout_ms) and accounts for it. -1 when
   none came in time.                                                   */
static int
s_recv_chunk (s_bench_t *b, int timeout_ms)
{
    zpoller_t *p = zpoller_new (b->sock, NULL);
    zpoller_set_nonstop (p, true);
    void *ready = zpoller_wait (p, timeout_ms);
    zpoller_destroy (&p);
    if (ready != b->sock) {
        return -1;
    }
    zmsg_t *msg = zmsg_recv (b->sock);
    if (!msg) {
        return -1;
    }
    zframe_t *delim = zmsg_pop (msg);
    zframe_t *head = zmsg_pop (msg);
    zframe_t *blob = zmsg_pop (msg);
    Safeshare__CryptoReply *r = NULL;
    if (delim && zframe_size (delim) == 0 && head) {
        r = safeshare__crypto_reply__unpack (NULL, zframe_size (head),
                                             zframe_data (head));
    }
    unsigned long long index = 0;
    int slot = -1;
    if (r && r->meta && r->meta->request_id &&
        sscanf (r->meta->request_id, "c%llu", &index) == 1) {
        for (int i = 0; i < b->n_inflight; i++) {
            if (b->inflight[i] == index) {
                slot = i;
            }
        }
    }
    if (slot < 0) {
        /* Not one of ours (a late duplicate would be a broker bug).   */
        fprintf (stderr, "bench_crypto: reply for no chunk in flight (%s)\n",
                 r && r->meta && r->meta->request_id ? r->meta->request_id : "?");
        b->errors++;
    } else {
        b->inflight[slot] = b->inflight[--b->n_inflight];
        if (r->status == SAFESHARE__STATUS__STATUS_OK && blob &&
            zframe_size (blob) == (size_t)b->o->chunk_size + 16 && zmsg_size (msg) == 0) {
            b->done++;
        } else {
            fprintf (stderr, "bench_crypto: chunk %llu: status %d %s, %zu blob bytes\n",
                     index, (int)r->status,
                     r->error && r->error->code ? r->error->code : "",
                     blob ? zframe_size (blob) : 0);
            b->errors++;
        }
    }
    if (r) {
        safeshare__crypto_reply__free_unpacked (r, NULL);
    }
    zframe_destroy (&delim);
    zframe_destroy (&head);
    zframe_destroy (&blob);
    zmsg_destroy (&msg);
    return 0;
}

static int
s_key_new (s_bench_t *b)
{
    if (cm_random_hex (b->file_id, 16) != 0) {
        return -1;
    }
    Safeshare__KeyNewRequest kn = SAFESHARE__KEY_NEW_REQUEST__INIT;
    kn.file_id = b->file_id;
    kn.chunk_size = b->o->chunk_size;
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW;
    req.key_new = &kn;
    Safeshare__CryptoReply *r = s_call (b->sock, &req, "key_new");
    if (!r) {
        return -1;
    }
    if (r->body_case != SAFESHARE__CRYPTO_REPLY__BODY_KEY_NEW || !r->key_new) {
        fprintf (stderr, "bench_crypto: key_new reply has no key\n");
        protobuf_c_message_free_unpacked ((ProtobufCMessage *)r, NULL);
        return -1;
    }
    /* Keep the key_new body; the reply around it goes.                */
    b->key = r->key_new;
    r->key_new = NULL;
    r->body_case = SAFESHARE__CRYPTO_REPLY__BODY__NOT_SET;
    protobuf_c_message_free_unpacked ((ProtobufCMessage *)r, NULL);
    return 0;
}

int
main (int argc, char **argv)
{
    s_opts_t o;
    if (s_parse (argc, argv, &o) != 0) {
        return s_usage ();
    }
    cm_log_init ("bench_crypto", CM_LOG_WARN);
    zsys_init ();
    zsys_set_linger (0);
    int rc = 1;
    s_bench_t b = {.o = &o};
    b.sock = cm_sock_client (o.endpoint, "crypto");
    b.plain = malloc (o.chunk_size);
    if (!b.sock || !b.plain || RAND_bytes (b.plain, (int)o.chunk_size) != 1) {
        fprintf (stderr, "bench_crypto: cannot set up (endpoint %s)\n", o.endpoint);
        goto cleanup;
    }
    if (o.wait_workers > 0 && s_wait_workers (b.sock, o.wait_workers) != 0) {
        goto cleanup;
    }
    if (s_key_new (&b) != 0) {
        goto cleanup;
    }
    uint64_t t0 = cm_mono_ms ();
    uint64_t end = t0 + (uint64_t)(o.seconds * 1000.0);
    bool timed_out = false;
    while (true) {
        while (cm_mono_ms () < end && b.n_inflight < o.window) {
            if (s_send_chunk (&b) != 0) {
                goto cleanup;
            }
        }
        if (b.n_inflight == 0) {
            break;
        }
        if (s_recv_chunk (&b, S_RPC_MS) != 0) {
            timed_out = true;
            break;
        }
    }
    uint64_t t1 = cm_mono_ms ();
    /* Throughput counts every chunk answered by the time the last one
       came back, over that whole time (the window drains at the end).  */
    double secs = (double)(t1 - t0) / 1000.0;
    double mib = (double)b.done * (double)o.chunk_size / (1024.0 * 1024.0);
    printf ("result window=%d chunk=%u seconds=%.2f chunks=%llu errors=%llu mib_s=%.1f\n",
            o.window, o.chunk_size, secs, (unsigned long long)b.done,
            (unsigned long long)b.errors, secs > 0 ? mib / secs : 0.0);
    if (timed_out) {
        fprintf (stderr, "bench_crypto: %d chunks unanswered after %d ms\n", b.n_inflight,
                 S_RPC_MS);
    }
    rc = (!timed_out && b.errors == 0) ? 0 : 1;
cleanup:
    if (b.key) {
        safeshare__key_new_reply__free_unpacked (b.key, NULL);
    }
    zsock_destroy (&b.sock);
    free (b.plain);
    return rc;
}
