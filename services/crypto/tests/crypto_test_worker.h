/*  A hand-driven crypto worker for the tests: speaks the back-end
    protocol (proto/crypto.md, "Back end") frame by frame, so a test can
    take a job and go silent, answer late, or send garbage. Header-only,
    test code only.                                                     */
#ifndef CRYPTO_TEST_WORKER_H
#define CRYPTO_TEST_WORKER_H

#include <czmq.h>
#include <string.h>

#include "cm_util.h"
#include "crypto.pb-c.h"
#include "cryptod_backend.h"

/* A DEALER connected to the broker's worker endpoint; READY sent when
   name is not NULL.                                                    */
static inline zsock_t *
s_fake_new (const char *endpoint, const char *name)
{
    zsock_t *w = zsock_new (ZMQ_DEALER);
    if (!w) {
        return NULL;
    }
    zsock_set_linger (w, 0);
    if (zsock_connect (w, "%s", endpoint) != 0) {
        zsock_destroy (&w);
        return NULL;
    }
    if (name) {
        zstr_sendx (w, CRYPTOD_PROTOCOL, CRYPTOD_CMD_READY, name, NULL);
    }
    return w;
}

static inline void
s_fake_cmd (zsock_t *w, const char *cmd)
{
    zstr_sendx (w, CRYPTOD_PROTOCOL, cmd, NULL);
}

/* One message from the broker: cmd ("" on timeout) and what follows. */
typedef struct {
    char cmd[16];
    zmsg_t *rest;
} s_wmsg_t;

static inline void
s_wmsg_free (s_wmsg_t *m)
{
    zmsg_destroy (&m->rest);
    m->cmd[0] = '\0';
}

/* The next message within timeout_ms, HEARTBEATs skipped (and answered
   with ours, so the broker keeps us) when skip_heartbeats.            */
static inline s_wmsg_t
s_fake_recv (zsock_t *w, int timeout_ms, bool skip_heartbeats)
{
    s_wmsg_t m = {"", NULL};
    uint64_t deadline = cm_mono_ms () + (uint64_t)timeout_ms;
    zpoller_t *p = zpoller_new (w, NULL);
    zpoller_set_nonstop (p, true);
    while (true) {
        uint64_t now = cm_mono_ms ();
        if (now >= deadline || zpoller_wait (p, (int)(deadline - now)) != w) {
            break;
        }
        zmsg_t *msg = zmsg_recv (w);
        char *proto = zmsg_popstr (msg);
        char *cmd = zmsg_popstr (msg);
        bool hb = cmd && streq (cmd, CRYPTOD_CMD_HEARTBEAT);
        if (proto && streq (proto, CRYPTOD_PROTOCOL) && cmd && !(hb && skip_heartbeats)) {
            snprintf (m.cmd, sizeof m.cmd, "%s", cmd);
            m.rest = msg;
            msg = NULL;
        } else if (hb) {
            s_fake_cmd (w, CRYPTOD_CMD_HEARTBEAT);
        }
        zstr_free (&proto);
        zstr_free (&cmd);
        zmsg_destroy (&msg);
        if (m.rest) {
            break;
        }
    }
    zpoller_destroy (&p);
    return m;
}

/* A REQUEST taken apart: job id frame, WorkRequest, chunk.            */
typedef struct {
    zframe_t *job_id;
    Safeshare__WorkRequest *req;
    zframe_t *blob;
} s_job_t;

static inline bool
s_job_parse (s_wmsg_t *m, s_job_t *job)
{
    memset (job, 0, sizeof *job);
    if (!streq (m->cmd, CRYPTOD_CMD_REQUEST) || zmsg_size (m->rest) != 3) {
        return false;
    }
    job->job_id = zmsg_pop (m->rest);
    zframe_t *wr = zmsg_pop (m->rest);
    job->blob = zmsg_pop (m->rest);
    job->req = safeshare__work_request__unpack (NULL, zframe_size (wr), zframe_data (wr));
    zframe_destroy (&wr);
    return job->req && zframe_size (job->job_id) == CRYPTOD_JOB_ID_LEN;
}

static inline void
s_job_free (s_job_t *job)
{
    zframe_destroy (&job->job_id);
    zframe_destroy (&job->blob);
    if (job->req) {
        safeshare__work_request__free_unpacked (job->req, NULL);
        job->req = NULL;
    }
}

/* REPLY [job_id][WorkReply][blob?] (blob NULL: none).                  */
static inline void
s_fake_reply (zsock_t *w, zframe_t *job_id, Safeshare__Status status, const char *code,
              uint64_t index, const void *blob, size_t len)
{
    Safeshare__WorkReply reply = SAFESHARE__WORK_REPLY__INIT;
    reply.status = status;
    reply.error_code = (char *)(code ? code : "");
    reply.index = index;
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, CRYPTOD_PROTOCOL);
    zmsg_addstr (msg, CRYPTOD_CMD_REPLY);
    zmsg_addmem (msg, zframe_data (job_id), zframe_size (job_id));
    size_t n = safeshare__work_reply__get_packed_size (&reply);
    uint8_t *buf = malloc (n + 1);
    safeshare__work_reply__pack (&reply, buf);
    zmsg_addmem (msg, buf, n);
    free (buf);
    if (blob) {
        zmsg_addmem (msg, blob, len);
    }
    zmsg_send (&msg, w);
}

#endif
