/*  crypto_pool_status -- test tool: asks a running crypto broker for its
    pool_status (proto/crypto.md) and prints it as one JSON line, so system
    tests and the crypto benchmark can see which workers took work.

      crypto_pool_status ENDPOINT [TIMEOUT_MS]

    ENDPOINT is the broker's front socket (SAFESHARE_CRYPTO_ENDPOINT),
    TIMEOUT_MS the wait for the reply (default 3000). Prints
      {"queue_depth":N,"queue_bytes":N,"requeued_total":N,"late_replies_total":N,
       "workers":[{"name":S,"local":B,"jobs_done":N,"busy":B,"idle_ms":N},...]}
    Exit 0 with that on stdout; 1 (reason on stderr) when there is no
    reply, or the reply is not OK or has no pool_status body; 2 on usage. */
#include "cm_log.h"
#include "cm_msg.h"
#include "crypto.pb-c.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static json_t *
s_status_json (const Safeshare__PoolStatusReply *ps)
{
    json_t *workers = json_array ();
    for (size_t i = 0; i < ps->n_workers; i++) {
        const Safeshare__WorkerStatus *w = ps->workers[i];
        json_array_append_new (
            workers,
            json_pack ("{s:s, s:b, s:I, s:b, s:I}", "name", w->name ? w->name : "",
                       "local", (int)w->local, "jobs_done", (json_int_t)w->jobs_done,
                       "busy", (int)w->busy, "idle_ms", (json_int_t)w->idle_ms));
    }
    return json_pack ("{s:I, s:I, s:I, s:I, s:o}", "queue_depth",
                      (json_int_t)ps->queue_depth, "queue_bytes",
                      (json_int_t)ps->queue_bytes, "requeued_total",
                      (json_int_t)ps->requeued_total, "late_replies_total",
                      (json_int_t)ps->late_replies_total, "workers", workers);
}

int
main (int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf (stderr, "usage: crypto_pool_status ENDPOINT [TIMEOUT_MS]\n");
        return 2;
    }
    int timeout_ms = 3000;
    if (argc == 3) {
        char *end = NULL;
        errno = 0;
        long v = strtol (argv[2], &end, 10);
        if (errno || !end || *end || v < 1 || v > 600000) {
            fprintf (stderr, "crypto_pool_status: bad TIMEOUT_MS %s\n", argv[2]);
            return 2;
        }
        timeout_ms = (int)v;
    }
    cm_log_init ("crypto_pool_status", CM_LOG_WARN);
    zsys_init ();
    zsys_set_linger (0);
    int rc = 1;
    ProtobufCMessage *reply = NULL;
    zsock_t *sock = cm_sock_client (argv[1], "crypto");
    if (!sock) {
        fprintf (stderr, "crypto_pool_status: cannot connect to %s\n", argv[1]);
        goto cleanup;
    }
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    char reqbuf[65];
    cm_meta_init (&meta, reqbuf, NULL, timeout_ms);
    Safeshare__PoolStatusRequest body = SAFESHARE__POOL_STATUS_REQUEST__INIT;
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    req.meta = &meta;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_POOL_STATUS;
    req.pool_status = &body;
    cm_status_t st =
        cm_rpc_call (sock, (ProtobufCMessage *)&req, NULL,
                     &safeshare__crypto_reply__descriptor, timeout_ms, &reply, NULL);
    if (st != CM_OK) {
        fprintf (stderr, "crypto_pool_status: no reply from %s within %d ms\n", argv[1],
                 timeout_ms);
        goto cleanup;
    }
    const Safeshare__CryptoReply *r = (const Safeshare__CryptoReply *)reply;
    if (r->status != SAFESHARE__STATUS__STATUS_OK ||
        r->body_case != SAFESHARE__CRYPTO_REPLY__BODY_POOL_STATUS || !r->pool_status) {
        fprintf (stderr, "crypto_pool_status: reply status %d code %s, body %d\n",
                 (int)r->status, r->error && r->error->code ? r->error->code : "-",
                 (int)r->body_case);
        goto cleanup;
    }
    json_t *out = s_status_json (r->pool_status);
    char *text = json_dumps (out, JSON_COMPACT);
    json_decref (out);
    if (!text) {
        goto cleanup;
    }
    printf ("%s\n", text);
    free (text);
    rc = 0;
cleanup:
    if (reply) {
        protobuf_c_message_free_unpacked (reply, NULL);
    }
    zsock_destroy (&sock);
    return rc;
}
