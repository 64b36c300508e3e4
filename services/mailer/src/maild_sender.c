/*  maild_sender -- the outbox drain, one job at a time, on its own thread. */
#include "maild_sender.h"
#include "cm_log.h"
#include "cm_util.h"

#include <czmq.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Longest sleep without a kick or a due job. */
#define S_IDLE_MS 1000
/* Pause after a DB error, or when a due job was not ours to claim. */
#define S_PAUSE_MS 200

typedef struct {
    maild_sender_config_t config;
    char *owner;
    maild_outbox_t *outbox;
    maild_transport_t *transport;
    atomic_bool kicked; /* a KICK is in the pipe: at most one at a time */
    atomic_bool stop;   /* also said by $TERM; this one cannot be lost */
} s_state_t;

/* Our own joinable thread and pipe, not a zactor: czmq's threads are
   detached, so zactor_destroy returns before the thread has ended, and
   its thread-local state (OpenSSL's DRBGs and error queue, libesmtp's
   errno) could still be there when the process exits -- LeakSanitizer
   saw it under load. Joined, the thread has released everything.    */
struct maild_sender_t {
    pthread_t thread;
    zsock_t *pipe;    /* ours; the thread has the other end */
    zsock_t *backend; /* the thread's end, until it takes it */
    s_state_t *state; /* used by the thread until it is joined */
};

uint64_t
maild_sender_backoff (uint64_t min_ms, uint64_t max_ms, long attempts, double rnd)
{
    uint64_t delay = min_ms;
    for (long i = 1; i < attempts && delay < max_ms; i++) {
        delay *= 2;
    }
    if (delay > max_ms) {
        delay = max_ms;
    }
    if (rnd < 0) {
        rnd = 0;
    } else if (rnd > 1) {
        rnd = 1;
    }
    uint64_t out = (uint64_t)((double)delay * (0.5 + rnd / 2));
    return out > 0 ? out : 1;
}

static double
s_random_unit (void)
{
    uint32_t r = 0;
    if (cm_random (&r, sizeof r) != 0) {
        return 1.0;
    }
    return (double)r / (double)UINT32_MAX;
}

static void
s_deliver_one (s_state_t *self, maild_job_t *job)
{
    char err[512] = "";
    maild_result_t result = maild_transport_deliver (
        self->transport, NULL, job->id, job->to, job->message, job->len, err, sizeof err);
    uint64_t now = cm_now_ms ();
    maild_counters_t *c = self->config.counters;
    const char *via = maild_transport_name (self->transport);
    if (result == MAILD_DELIVERED) {
        if (maild_outbox_sent (self->outbox, job->id, self->owner, now) >= 0) {
            atomic_fetch_add (&c->sent, 1);
        }
        cm_info (NULL, "mail delivered job=%s via=%s attempt=%ld", job->id, via,
                 job->attempts);
        return;
    }
    if (result == MAILD_FAILED || now >= job->expires_ms) {
        char why[600];
        snprintf (
            why, sizeof why, "%s%s",
            result == MAILD_FAILED ? "" : "gave up (SAFESHARE_MAIL_MAX_AGE): ", err);
        if (maild_outbox_fail (self->outbox, job->id, self->owner, now, why) == 0) {
            atomic_fetch_add (&c->failed, 1);
        }
        cm_warn (NULL, "mail failed job=%s via=%s attempt=%ld: %s", job->id, via,
                 job->attempts, why);
        return;
    }
    uint64_t delay =
        maild_sender_backoff (self->config.retry_min_ms, self->config.retry_max_ms,
                              job->attempts, s_random_unit ());
    uint64_t next = now + delay;
    if (next > job->expires_ms) {
        next = job->expires_ms; /* one last try at the give-up time */
    }
    if (maild_outbox_retry_later (self->outbox, job->id, self->owner, now, next, err) ==
        0) {
        atomic_fetch_add (&c->retried, 1);
    }
    cm_warn (NULL, "mail delivery failed job=%s via=%s attempt=%ld retry_in_ms=%llu: %s",
             job->id, via, job->attempts, (unsigned long long)(next - now), err);
}

/* How long to sleep when nothing could be claimed. */
static int
s_idle_wait (s_state_t *self)
{
    uint64_t due = 0;
    int rc = maild_outbox_next_due (self->outbox, &due);
    if (rc < 0) {
        return S_PAUSE_MS * 5;
    }
    if (rc == 0) {
        return S_IDLE_MS;
    }
    uint64_t now = cm_now_ms ();
    if (due <= now) {
        return S_PAUSE_MS; /* due but taken by another sender: look again */
    }
    return due - now > S_IDLE_MS ? S_IDLE_MS : (int)(due - now);
}

static void
s_run (zsock_t *pipe, s_state_t *self)
{
    zpoller_t *poller = zpoller_new (pipe, NULL);
    if (!poller) {
        cm_error (NULL, "zpoller_new() failed: mail sender not running");
    }
    /* Our stop is $TERM on the pipe, not czmq's interrupt flag. */
    if (poller) {
        zpoller_set_nonstop (poller, true);
    }
    bool stop = !poller;
    while (!stop && !atomic_load (&self->stop)) {
        maild_job_t job;
        int claimed = maild_outbox_claim (self->outbox, self->owner, cm_now_ms (),
                                          self->config.lease_ms, &job);
        int wait = 0;
        if (claimed == 1) {
            cm_debug (NULL, "mail claimed job=%s attempt=%ld", job.id, job.attempts);
            s_deliver_one (self, &job);
            maild_job_clear (&job);
        } else {
            wait = claimed == 0 ? s_idle_wait (self) : S_PAUSE_MS * 5;
        }
        if (zpoller_wait (poller, wait) == pipe) {
            char *cmd = zstr_recv (pipe);
            stop = !cmd || streq (cmd, "$TERM");
            if (cmd && streq (cmd, "KICK")) {
                atomic_store (&self->kicked, false);
            }
            zstr_free (&cmd);
        }
    }
    zpoller_destroy (&poller);
}

static void *
s_thread (void *arg)
{
    maild_sender_t *sender = arg;
    s_run (sender->backend, sender->state);
    zsock_destroy (&sender->backend);
    /* Now rather than in the thread-exit destructor: the same, earlier. */
    OPENSSL_thread_stop ();
    return NULL;
}

maild_sender_t *
maild_sender_new (const maild_sender_config_t *config, maild_outbox_t **outbox_p,
                  maild_transport_t **transport_p)
{
    maild_sender_t *self = calloc (1, sizeof *self);
    s_state_t *state = calloc (1, sizeof *state);
    if (!self || !state || !config->owner || !(state->owner = strdup (config->owner))) {
        free (self);
        free (state);
        return NULL;
    }
    state->config = *config;
    state->config.owner = state->owner;
    state->outbox = *outbox_p;
    state->transport = *transport_p;
    *outbox_p = NULL;
    *transport_p = NULL;
    self->state = state;
    self->pipe = zsys_create_pipe (&self->backend);
    int rc = self->pipe ? pthread_create (&self->thread, NULL, s_thread, self) : -1;
    if (rc != 0) {
        cm_error (NULL, "%s failed: mail sender",
                  self->pipe ? "pthread_create()" : "zsys_create_pipe()");
        zsock_destroy (&self->backend);
        zsock_destroy (&self->pipe);
        maild_outbox_destroy (&state->outbox);
        maild_transport_destroy (&state->transport);
        free (state->owner);
        free (state);
        free (self);
        return NULL;
    }
    return self;
}

void
maild_sender_destroy (maild_sender_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    maild_sender_t *self = *self_p;
    /* A delivery in progress is cut short (retried by the next run),
       then the thread ends after recording it: the wait is bounded by
       one DB call, not by the SMTP timeouts.                         */
    atomic_store (&self->state->stop, true);
    maild_transport_cancel (self->state->transport);
    zsock_set_sndtimeo (self->pipe, 0);
    if (zstr_send (self->pipe, "$TERM") != 0) {
        cm_error (NULL, "zstr_send($TERM) failed: %s", zmq_strerror (zmq_errno ()));
    }
    pthread_join (self->thread, NULL);
    zsock_destroy (&self->pipe);
    maild_outbox_destroy (&self->state->outbox);
    maild_transport_destroy (&self->state->transport);
    free (self->state->owner);
    free (self->state);
    free (self);
    *self_p = NULL;
}

void
maild_sender_kick (maild_sender_t *self)
{
    /* One kick in the pipe is enough however many jobs came in. */
    if (!atomic_exchange (&self->state->kicked, true)) {
        zstr_send (self->pipe, "KICK");
    }
}
