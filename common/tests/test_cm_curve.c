/*  cm_curve over real tcp sockets on loopback: zauth with an allow dir
    answers allowed keys and refuses unknown and plain (NULL) clients, a
    key added to the allow dir is let in without a restart, the
    self-check passes with zauth and fails against a CURVE server that
    has no ZAP handler, and the start-up checks of the key files.      */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cm_curve.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_testing.h"

typedef struct {
    char *dir;
    char secret[600]; /* the process's own: keys/svc.key_secret */
    char pub[512];    /* public dir: svc.key */
    char allow[512];  /* allow dir: svc.key (ourselves), gw.key */
    zcert_t *gw;      /* an allowed client's cert */
    zcert_t *stranger;
} s_fixture_t;

/* NAME.key (public) and NAME.key_secret (0600) under dir. */
static void
s_cert_write (zcert_t *cert, const char *dir, const char *name, bool secret)
{
    char path[600];
    snprintf (path, sizeof path, "%s/%s.key", dir, name);
    assert_int_equal (zcert_save_public (cert, path), 0);
    if (secret) {
        snprintf (path, sizeof path, "%s/%s.key_secret", dir, name);
        assert_int_equal (zcert_save_secret (cert, path), 0);
        assert_int_equal (chmod (path, 0600), 0);
    }
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    f->dir = cm_test_tmpdir ();
    char keys[512];
    snprintf (keys, sizeof keys, "%s/keys", f->dir);
    snprintf (f->pub, sizeof f->pub, "%s/public", f->dir);
    snprintf (f->allow, sizeof f->allow, "%s/allow", f->dir);
    snprintf (f->secret, sizeof f->secret, "%s/svc.key_secret", keys);
    assert_int_equal (mkdir (keys, 0700), 0);
    assert_int_equal (mkdir (f->pub, 0755), 0);
    assert_int_equal (mkdir (f->allow, 0755), 0);
    zcert_t *svc = zcert_new ();
    s_cert_write (svc, keys, "svc", true);
    s_cert_write (svc, f->pub, "svc", false);
    s_cert_write (svc, f->allow, "svc", false);
    zcert_destroy (&svc);
    f->gw = zcert_new ();
    s_cert_write (f->gw, f->allow, "gw", false);
    f->stranger = zcert_new ();
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    cm_curve_shutdown ();
    zcert_destroy (&f->gw);
    zcert_destroy (&f->stranger);
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

/* A CURVE server of the fixture's keys, zauth on, on an ephemeral port;
   the endpoint it bound is written to ep.                            */
static zsock_t *
s_server (s_fixture_t *f, char *ep, size_t len)
{
    char err[512] = "";
    assert_int_equal (cm_curve_setup (f->secret, f->pub, f->allow, err, sizeof err), 0);
    assert_true (cm_curve_on ());
    assert_int_equal (cm_curve_serve (err, sizeof err), 0);
    zsock_t *router = cm_sock_server ("tcp://127.0.0.1:*");
    assert_non_null (router);
    char *bound = zsock_last_endpoint (router);
    snprintf (ep, len, "%s", bound);
    zstr_free (&bound);
    return router;
}

/* A DEALER with `cert` (NULL: no CURVE at all) to the fixture server. */
static zsock_t *
s_client (zcert_t *cert, const char *ep)
{
    zsock_t *c = zsock_new (ZMQ_DEALER);
    assert_non_null (c);
    zsock_set_linger (c, 0);
    if (cert) {
        zcert_apply (cert, c);
        zsock_set_curve_serverkey (c, cm_curve_public_txt ());
    }
    return c;
}

/* Sends "ping" from client; the server answers "pong" to whatever
   reaches it within wait_ms. True if the client got "pong". A refused
   client may have no connection left to queue on (a DEALER then blocks
   on send): a send that cannot go out in wait_ms is no answer.      */
static bool
s_ping (zsock_t *router, zsock_t *client, int wait_ms)
{
    zsock_set_sndtimeo (client, wait_ms);
    if (zstr_send (client, "ping") != 0) {
        return false;
    }
    zpoller_t *p = zpoller_new (router, NULL);
    bool got = zpoller_wait (p, wait_ms) == router;
    zpoller_destroy (&p);
    if (!got) {
        return false;
    }
    zmsg_t *in = zmsg_recv (router);
    assert_non_null (in);
    zframe_t *id = zmsg_pop (in);
    char *body = zmsg_popstr (in);
    assert_string_equal (body, "ping");
    zstr_free (&body);
    zmsg_destroy (&in);
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &id);
    zmsg_addstr (out, "pong");
    assert_int_equal (zmsg_send (&out, router), 0);
    zsock_set_rcvtimeo (client, 2000);
    char *reply = zstr_recv (client);
    bool ok = reply && strcmp (reply, "pong") == 0;
    zstr_free (&reply);
    return ok;
}

/* Waits for the first handshake result on client's watch. */
static int
s_handshake (zsock_t *watch)
{
    zsock_set_rcvtimeo (watch, 3000);
    return cm_curve_watch_recv (watch, NULL, 0);
}

/* A client with `cert` (NULL: no CURVE) connected to ep; *event is the
   first handshake result it saw.                                     */
static zsock_t *
s_connect (zcert_t *cert, const char *ep, int *event)
{
    zsock_t *c = s_client (cert, ep);
    zsock_t *watch = cm_curve_watch_new (c, CM_CURVE_WATCH_HANDSHAKE);
    assert_non_null (watch);
    assert_int_equal (zsock_connect (c, "%s", ep), 0);
    *event = s_handshake (watch);
    cm_curve_watch_destroy (c, &watch);
    return c;
}

static void
test_allowed_keys_answered (void **state)
{
    s_fixture_t *f = *state;
    char ep[256];
    zsock_t *router = s_server (f, ep, sizeof ep);
    /* The process's own key (in the allow dir, as a healthcheck is),
       through cm_sock_client with the peer's public key.             */
    zsock_t *own = cm_sock_client (ep, "svc");
    assert_non_null (own);
    assert_true (s_ping (router, own, 3000));
    int event = -1;
    zsock_t *gw = s_connect (f->gw, ep, &event);
    assert_int_equal (event, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    assert_true (s_ping (router, gw, 3000));
    zsock_destroy (&gw);
    zsock_destroy (&own);
    zsock_destroy (&router);
}

static void
test_unknown_and_plain_refused (void **state)
{
    s_fixture_t *f = *state;
    char ep[256];
    zsock_t *router = s_server (f, ep, sizeof ep);
    int event = -1;
    zsock_t *stranger = s_connect (f->stranger, ep, &event);
    assert_int_equal (event, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_false (s_ping (router, stranger, 500));
    zsock_destroy (&stranger);

    /* No CURVE at all: the NULL mechanism does not meet CURVE.        */
    zsock_t *plain = s_connect (NULL, ep, &event);
    assert_true (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                 event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    assert_false (s_ping (router, plain, 500));
    zsock_destroy (&plain);
    zsock_destroy (&router);
}

static void
test_key_added_without_restart (void **state)
{
    s_fixture_t *f = *state;
    char ep[256];
    zsock_t *router = s_server (f, ep, sizeof ep);
    int event = -1;
    zsock_t *c = s_connect (f->stranger, ep, &event);
    assert_int_equal (event, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy (&c);

    /* The operator adds the key; zauth re-reads the dir on its next
       lookup. A new socket (a worker reconnects with one) gets in.   */
    s_cert_write (f->stranger, f->allow, "newcomer", false);
    c = s_connect (f->stranger, ep, &event);
    assert_int_equal (event, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    assert_true (s_ping (router, c, 3000));
    zsock_destroy (&c);

    /* And removing it shuts it out again (count of files changed).    */
    char path[600];
    snprintf (path, sizeof path, "%s/newcomer.key", f->allow);
    assert_int_equal (unlink (path), 0);
    c = s_connect (f->stranger, ep, &event);
    assert_int_equal (event, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy (&c);
    zsock_destroy (&router);
}

static void
test_self_check (void **state)
{
    s_fixture_t *f = *state;
    char ep[256];
    /* With zauth: passes (cm_sock_server ran it; again explicitly).   */
    zsock_t *router = s_server (f, ep, sizeof ep);
    assert_int_equal (cm_curve_self_check (router, ep, CM_CURVE_CHECK_MS), 0);
    /* A wildcard bind is checked through loopback.                    */
    zsock_t *wild = cm_sock_server ("tcp://0.0.0.0:*");
    assert_non_null (wild);
    char *bound = zsock_last_endpoint (wild);
    assert_int_equal (strncmp (bound, "tcp://0.0.0.0:", 14), 0);
    assert_int_equal (cm_curve_self_check (wild, bound, CM_CURVE_CHECK_MS), 0);
    zstr_free (&bound);
    zsock_destroy (&wild);
    zsock_destroy (&router);

    /* Without zauth: cm_sock_server refuses to make a CURVE server, and
       a CURVE server made by hand takes any key: the check fails.     */
    cm_curve_shutdown ();
    char err[512] = "";
    assert_int_equal (cm_curve_setup (f->secret, f->pub, f->allow, err, sizeof err), 0);
    assert_null (cm_sock_server ("tcp://127.0.0.1:*"));
    zsock_t *bare = zsock_new (ZMQ_ROUTER);
    zcert_t *own = zcert_load (f->secret);
    zcert_apply (own, bare);
    zcert_destroy (&own);
    zsock_set_curve_server (bare, 1);
    zsock_set_zap_domain (bare, CM_CURVE_DOMAIN);
    assert_true (zsock_bind (bare, "tcp://127.0.0.1:*") > 0);
    bound = zsock_last_endpoint (bare);
    assert_int_equal (cm_curve_self_check (bare, bound, 1000), -1);
    zstr_free (&bound);
    zsock_destroy (&bare);
}

static void
test_setup_refusals (void **state)
{
    s_fixture_t *f = *state;
    char err[512] = "";
    /* Group-readable secret: refused like ssh, naming the path.       */
    assert_int_equal (chmod (f->secret, 0640), 0);
    assert_int_equal (cm_curve_setup (f->secret, f->pub, f->allow, err, sizeof err), -1);
    assert_non_null (strstr (err, f->secret));
    assert_non_null (strstr (err, "too open"));
    assert_false (cm_curve_on ());
    assert_int_equal (chmod (f->secret, 0604), 0);
    assert_int_equal (cm_curve_setup (f->secret, f->pub, f->allow, err, sizeof err), -1);
    assert_int_equal (chmod (f->secret, 0600), 0);

    /* A public cert where the secret one belongs: no secret key.      */
    char path[600];
    snprintf (path, sizeof path, "%s/svc.key", f->pub);
    char copy[600];
    snprintf (copy, sizeof copy, "%s/pubonly", f->dir);
    zcert_t *pub = zcert_load (path);
    assert_int_equal (zcert_save_public (pub, copy), 0);
    zcert_destroy (&pub);
    assert_int_equal (chmod (copy, 0600), 0);
    assert_int_equal (cm_curve_setup (copy, f->pub, f->allow, err, sizeof err), -1);
    assert_non_null (strstr (err, "no secret key"));

    /* Missing file, not a cert, a bad public dir entry, "*" allow.    */
    snprintf (path, sizeof path, "%s/missing.key_secret", f->dir);
    assert_int_equal (cm_curve_setup (path, NULL, NULL, err, sizeof err), -1);
    assert_non_null (strstr (err, path));
    snprintf (path, sizeof path, "%s/garbage", f->dir);
    FILE *g = fopen (path, "w");
    fputs ("not a certificate\n", g);
    fclose (g);
    chmod (path, 0600);
    assert_int_equal (cm_curve_setup (path, NULL, NULL, err, sizeof err), -1);
    assert_non_null (strstr (err, "not a CURVE certificate"));
    assert_int_equal (cm_curve_setup (f->secret, f->pub, "*", err, sizeof err), -1);
    snprintf (path, sizeof path, "%s/bad.key", f->pub);
    g = fopen (path, "w");
    fputs ("curve\n    nothing = 1\n", g);
    fclose (g);
    assert_int_equal (cm_curve_setup (f->secret, f->pub, f->allow, err, sizeof err), -1);
    assert_non_null (strstr (err, "bad.key"));
    unlink (path);

    /* Requirements: a server needs the allow dir, a caller its peer's key. */
    assert_int_equal (cm_curve_setup (f->secret, f->pub, NULL, err, sizeof err), 0);
    assert_int_equal (cm_curve_require (false, "svc", err, sizeof err), 0);
    assert_int_equal (cm_curve_require (true, NULL, err, sizeof err), -1);
    assert_non_null (strstr (err, "SAFESHARE_CURVE_ALLOW_DIR"));
    assert_int_equal (cm_curve_require (false, "svc mailer", err, sizeof err), -1);
    assert_non_null (strstr (err, "mailer.key"));
    /* Off: nothing required, plain sockets.                           */
    assert_int_equal (cm_curve_setup (NULL, NULL, NULL, err, sizeof err), 0);
    assert_false (cm_curve_on ());
    assert_int_equal (cm_curve_require (true, "mailer", err, sizeof err), 0);
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_WARN);
    zsys_init ();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_allowed_keys_answered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_and_plain_refused, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_key_added_without_restart, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_self_check, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_setup_refusals, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
