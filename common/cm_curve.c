/*  cm_curve -- CurveZMQ settings, zauth and the start-up self-check. See
    cm_curve.h.                                                          */
#include "cm_curve.h"
#include "cm_log.h"
#include "cm_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

/* Written once at start (before any thread), read-only afterwards.     */
static struct {
    zcert_t *cert; /* ours, with the secret key; NULL: CURVE off */
    char *public_dir;
    char *allow_dir;
    zactor_t *auth; /* zauth, in processes that serve */
} s_curve;

bool
cm_curve_name_valid (const char *name)
{
    size_t n = name ? strlen (name) : 0;
    if (n == 0 || n > CM_CURVE_NAME_MAX) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            return false;
        }
    }
    return true;
}

/* Z85 text of a 32-byte key into key; false unless exactly that.      */
static bool
s_z85_key (const char *txt, byte key[32])
{
    return txt && strlen (txt) == 40 && zmq_z85_decode (key, txt) != NULL;
}

/* A zcert text file (czmq's format: /curve/public-key, and for a secret
   cert /curve/secret-key) read like zcert_load reads it, but through a
   buffer of ours that is wiped (it may hold the secret key), and without
   zconfig_load, which leaks its file handle on a syntax error (czmq
   4.2.1). NULL if it is not a certificate.                             */
static zcert_t *
s_cert_load (const char *path)
{
    size_t len = 0;
    char *text = cm_file_read (path, 64 * 1024, &len);
    if (!text) {
        return NULL;
    }
    zcert_t *cert = NULL;
    byte pub[32] = {0}, sec[32] = {0};
    zconfig_t *root = zconfig_str_load (text);
    if (root && s_z85_key (zconfig_get (root, "/curve/public-key", NULL), pub)) {
        const char *secret_txt = zconfig_get (root, "/curve/secret-key", NULL);
        if (!secret_txt || s_z85_key (secret_txt, sec)) {
            cert = zcert_new_from (pub, sec);
        }
    }
    if (root) {
        /* The tree holds a copy of the secret key's text.              */
        zconfig_t *item = zconfig_locate (root, "/curve/secret-key");
        char *value = item ? zconfig_value (item) : NULL;
        if (value) {
            OPENSSL_cleanse (value, strlen (value));
        }
        zconfig_destroy (&root);
    }
    OPENSSL_cleanse (sec, sizeof sec);
    cm_secret_free (text, len + 1);
    return cert;
}

/* A public-only cert has an all-zero secret key.                      */
static bool
s_has_secret (zcert_t *cert)
{
    const byte *k = zcert_secret_key (cert);
    byte any = 0;
    for (int i = 0; i < 32; i++) {
        any |= k[i];
    }
    return any != 0;
}

/* Our cert holds the secret key: wiped before czmq frees it.          */
static void
s_cert_wipe_destroy (zcert_t **cert)
{
    if (*cert) {
        OPENSSL_cleanse ((void *)zcert_secret_key (*cert), 32);
        const char *txt = zcert_secret_txt (*cert);
        OPENSSL_cleanse ((void *)txt, strlen (txt));
        zcert_destroy (cert);
    }
}

static int
s_dir_check (const char *key, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat (dir, &st) != 0) {
        snprintf (err, errlen, "%s=%s: %s", key, dir, strerror (errno));
        return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
        snprintf (err, errlen, "%s=%s: not a directory", key, dir);
        return -1;
    }
    return 0;
}

static bool
s_ends_with (const char *s, const char *suffix)
{
    size_t n = strlen (s), m = strlen (suffix);
    return n >= m && strcmp (s + n - m, suffix) == 0;
}

/* Every NAME.key in dir must be a certificate: a typo
   shows at start, not as a refused call hours later.                  */
static int
s_public_dir_check (const char *dir, char *err, size_t errlen)
{
    if (s_dir_check ("SAFESHARE_CURVE_PUBLIC_DIR", dir, err, errlen) != 0) {
        return -1;
    }
    DIR *d = opendir (dir);
    if (!d) {
        snprintf (err, errlen, "SAFESHARE_CURVE_PUBLIC_DIR=%s: opendir() failed: %s", dir,
                  strerror (errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir (d))) {
        if (e->d_name[0] == '.' || !s_ends_with (e->d_name, ".key")) {
            continue;
        }
        char path[4096];
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        zcert_t *cert = s_cert_load (path);
        if (!cert) {
            snprintf (err, errlen,
                      "SAFESHARE_CURVE_PUBLIC_DIR=%s: %s is not a CURVE certificate", dir,
                      e->d_name);
            rc = -1;
        }
        s_cert_wipe_destroy (&cert);
    }
    closedir (d);
    return rc;
}

static int
s_secret_load (const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat (path, &st) != 0) {
        snprintf (err, errlen, "SAFESHARE_CURVE_SECRET_KEY=%s: %s", path,
                  strerror (errno));
        return -1;
    }
    if (!S_ISREG (st.st_mode)) {
        snprintf (err, errlen, "SAFESHARE_CURVE_SECRET_KEY=%s: not a regular file", path);
        return -1;
    }
    /* Like ssh: a private key others may read is refused, not used.    */
    if (st.st_mode & 077) {
        snprintf (
            err, errlen,
            "SAFESHARE_CURVE_SECRET_KEY=%s: permissions %04o are too open (the secret "
            "key must not be accessible by group or others: chmod 600 %s)",
            path, (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    zcert_t *cert = s_cert_load (path);
    if (!cert) {
        snprintf (err, errlen, "SAFESHARE_CURVE_SECRET_KEY=%s: not a CURVE certificate",
                  path);
        return -1;
    }
    if (!s_has_secret (cert)) {
        snprintf (
            err, errlen,
            "SAFESHARE_CURVE_SECRET_KEY=%s: holds no secret key (a public NAME.key? "
            "use NAME.key_secret)",
            path);
        zcert_destroy (&cert);
        return -1;
    }
    s_curve.cert = cert;
    return 0;
}

static void
s_clear (void)
{
    s_cert_wipe_destroy (&s_curve.cert);
    free (s_curve.public_dir);
    free (s_curve.allow_dir);
    s_curve.public_dir = NULL;
    s_curve.allow_dir = NULL;
}

int
cm_curve_setup (const char *secret_path, const char *public_dir, const char *allow_dir,
                char *err, size_t errlen)
{
    if (s_curve.auth) {
        snprintf (err, errlen, "CURVE settings cannot change while zauth runs");
        return -1;
    }
    s_clear ();
    if (!secret_path || !*secret_path) {
        return 0;
    }
    if (!zsys_has_curve ()) {
        snprintf (
            err, errlen,
            "SAFESHARE_CURVE_SECRET_KEY is set but this libzmq has no CURVE support");
        return -1;
    }
    if (s_secret_load (secret_path, err, errlen) != 0) {
        goto fail;
    }
    if (public_dir && *public_dir) {
        if (s_public_dir_check (public_dir, err, errlen) != 0) {
            goto fail;
        }
        s_curve.public_dir = strdup (public_dir);
    }
    if (allow_dir && *allow_dir) {
        /* zauth reads "*" as "allow any key".                          */
        if (strcmp (allow_dir, CURVE_ALLOW_ANY) == 0) {
            snprintf (err, errlen, "SAFESHARE_CURVE_ALLOW_DIR=*: must be a directory");
            goto fail;
        }
        if (s_dir_check ("SAFESHARE_CURVE_ALLOW_DIR", allow_dir, err, errlen) != 0) {
            goto fail;
        }
        s_curve.allow_dir = strdup (allow_dir);
    }
    return 0;
fail:
    s_clear ();
    return -1;
}

int
cm_curve_load (cm_config_t *config, char *err, size_t errlen)
{
    return cm_curve_setup (cm_config_get (config, "SAFESHARE_CURVE_SECRET_KEY"),
                           cm_config_get (config, "SAFESHARE_CURVE_PUBLIC_DIR"),
                           cm_config_get (config, "SAFESHARE_CURVE_ALLOW_DIR"), err,
                           errlen);
}

bool
cm_curve_on (void)
{
    return s_curve.cert != NULL;
}

const char *
cm_curve_public_txt (void)
{
    return s_curve.cert ? zcert_public_txt (s_curve.cert) : NULL;
}

/* PUBLIC_DIR/<peer>.key, loaded. NULL with a reason in err.            */
static zcert_t *
s_peer_cert (const char *peer, char *err, size_t errlen)
{
    if (!cm_curve_name_valid (peer)) {
        snprintf (err, errlen, "CURVE peer name %.80s is not 1..64 of [a-z0-9-]",
                  peer ? peer : "(none)");
        return NULL;
    }
    if (!s_curve.public_dir) {
        snprintf (err, errlen,
                  "SAFESHARE_CURVE_PUBLIC_DIR is not set (needed for the key of %s)",
                  peer);
        return NULL;
    }
    char path[4096];
    snprintf (path, sizeof path, "%s/%s.key", s_curve.public_dir, peer);
    if (access (path, R_OK) != 0) {
        snprintf (err, errlen, "SAFESHARE_CURVE_PUBLIC_DIR=%s: %s.key: %s",
                  s_curve.public_dir, peer, strerror (errno));
        return NULL;
    }
    zcert_t *cert = s_cert_load (path);
    if (!cert) {
        snprintf (err, errlen,
                  "SAFESHARE_CURVE_PUBLIC_DIR=%s: %s.key is not a CURVE certificate",
                  s_curve.public_dir, peer);
    }
    return cert;
}

int
cm_curve_require (bool serves, const char *calls, char *err, size_t errlen)
{
    if (!cm_curve_on ()) {
        return 0;
    }
    if (serves && !s_curve.allow_dir) {
        snprintf (err, errlen,
                  "SAFESHARE_CURVE_ALLOW_DIR is not set (CURVE is on and this process "
                  "serves)");
        return -1;
    }
    char list[512];
    snprintf (list, sizeof list, "%s", calls ? calls : "");
    char *save = NULL;
    for (char *name = strtok_r (list, " ", &save); name;
         name = strtok_r (NULL, " ", &save)) {
        zcert_t *cert = s_peer_cert (name, err, errlen);
        if (!cert) {
            return -1;
        }
        zcert_destroy (&cert);
    }
    return 0;
}

int
cm_curve_serve (char *err, size_t errlen)
{
    if (!cm_curve_on () || s_curve.auth) {
        return 0;
    }
    if (!s_curve.allow_dir) {
        snprintf (err, errlen, "SAFESHARE_CURVE_ALLOW_DIR is not set (CURVE is on)");
        return -1;
    }
    s_curve.auth = zactor_new (zauth, NULL);
    if (!s_curve.auth) {
        snprintf (err, errlen, "zactor_new(zauth) failed");
        return -1;
    }
    /* zauth answers each command with a signal once it is in force.    */
    if (zstr_sendx (s_curve.auth, "CURVE", s_curve.allow_dir, NULL) != 0 ||
        zsock_wait (s_curve.auth) != 0) {
        snprintf (err, errlen, "zauth CURVE %s failed", s_curve.allow_dir);
        zactor_destroy (&s_curve.auth);
        return -1;
    }
    return 0;
}

void
cm_curve_shutdown (void)
{
    zactor_destroy (&s_curve.auth);
    s_clear ();
}

int
cm_curve_server_apply (zsock_t *sock)
{
    if (!cm_curve_on ()) {
        return 0;
    }
    if (!s_curve.auth) {
        cm_error (NULL, "CURVE server socket refused: zauth is not running (it would "
                        "accept any client key)");
        return -1;
    }
    zcert_apply (s_curve.cert, sock);
    zsock_set_curve_server (sock, 1);
    zsock_set_zap_domain (sock, CM_CURVE_DOMAIN);
    return 0;
}

int
cm_curve_client_apply (zsock_t *sock, const char *peer)
{
    if (!cm_curve_on ()) {
        return 0;
    }
    char err[512];
    zcert_t *server = s_peer_cert (peer, err, sizeof err);
    if (!server) {
        cm_error (NULL, "CURVE client for %s not set up: %s", peer ? peer : "(none)",
                  err);
        return -1;
    }
    zcert_apply (s_curve.cert, sock);
    zsock_set_curve_serverkey (sock, zcert_public_txt (server));
    zcert_destroy (&server);
    return 0;
}

/* ---- handshake watch ------------------------------------------------ */

zsock_t *
cm_curve_watch_new (zsock_t *sock, int events)
{
    static atomic_uint s_watches;
    char ep[64];
    snprintf (ep, sizeof ep, "inproc://cm-curve-watch-%d-%u", (int)getpid (),
              atomic_fetch_add (&s_watches, 1));
    if (zmq_socket_monitor (zsock_resolve (sock), ep, events) != 0) {
        cm_error (NULL, "zmq_socket_monitor() failed: %s", zmq_strerror (zmq_errno ()));
        return NULL;
    }
    zsock_t *watch = zsock_new (ZMQ_PAIR);
    if (!watch || zsock_connect (watch, "%s", ep) != 0) {
        cm_error (NULL, "zsock_connect(%s) failed", ep);
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
        zsock_destroy (&watch);
        return NULL;
    }
    return watch;
}

int
cm_curve_watch_recv (zsock_t *watch, char *endpoint, size_t len)
{
    /* libzmq's monitor message: [uint16 event, uint32 value][endpoint]. */
    zmsg_t *msg = zmsg_recv (watch);
    if (!msg) {
        return -1;
    }
    zframe_t *head = zmsg_first (msg);
    zframe_t *addr = zmsg_next (msg);
    int event = -1;
    if (head && zframe_size (head) == 6) {
        uint16_t e;
        memcpy (&e, zframe_data (head), sizeof e);
        event = e;
    }
    if (endpoint && len) {
        size_t n = addr ? zframe_size (addr) : 0;
        if (n >= len) {
            n = len - 1;
        }
        if (n) {
            memcpy (endpoint, zframe_data (addr), n);
        }
        endpoint[n] = '\0';
    }
    zmsg_destroy (&msg);
    return event;
}

void
cm_curve_watch_destroy (zsock_t *sock, zsock_t **watch_p)
{
    if (watch_p && *watch_p) {
        if (sock) {
            zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
        }
        zsock_destroy (watch_p);
    }
}

/* ---- self-check ----------------------------------------------------- */

/* Where to connect to reach what `bound` names: a wildcard host is this
   host's loopback. 0 / -1.                                             */
static int
s_self_endpoint (const char *bound, char *out, size_t len, bool *ipv6)
{
    *ipv6 = false;
    int n;
    if (strncmp (bound, "tcp://0.0.0.0:", 14) == 0) {
        n = snprintf (out, len, "tcp://127.0.0.1:%s", bound + 14);
    } else if (strncmp (bound, "tcp://[::]:", 11) == 0) {
        *ipv6 = true;
        n = snprintf (out, len, "tcp://[::1]:%s", bound + 11);
    } else {
        *ipv6 = strncmp (bound, "tcp://[", 7) == 0;
        n = snprintf (out, len, "%s", bound);
    }
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static const char *
s_event_name (int event)
{
    switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            return "the handshake succeeded";
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            return "the handshake failed (protocol)";
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            return "the handshake failed (no detail)";
        default:
            return "no handshake result";
    }
}

int
cm_curve_self_check (zsock_t *server, const char *endpoint, int timeout_ms)
{
    (void)server;
    if (!cm_curve_on ()) {
        return 0;
    }
    char target[1100];
    bool ipv6 = false;
    if (!endpoint || s_self_endpoint (endpoint, target, sizeof target, &ipv6) != 0) {
        cm_error (NULL, "CURVE self-check: bad endpoint %.200s",
                  endpoint ? endpoint : "(none)");
        return -1;
    }
    int rc = -1, last = -1;
    zcert_t *stranger = zcert_new ();
    zsock_t *client = zsock_new (ZMQ_DEALER);
    zsock_t *watch = NULL;
    if (!stranger || !client) {
        cm_error (NULL, "CURVE self-check on %s: zcert_new() or zsock_new() failed",
                  target);
        goto cleanup;
    }
    zsock_set_linger (client, 0);
    zsock_set_ipv6 (client, ipv6 ? 1 : 0);
    zcert_apply (stranger, client);
    zsock_set_curve_serverkey (client, zcert_public_txt (s_curve.cert));
    watch = cm_curve_watch_new (client, CM_CURVE_WATCH_HANDSHAKE);
    if (!watch) {
        goto cleanup;
    }
    zsock_set_rcvtimeo (watch, 100);
    if (zsock_connect (client, "%s", target) != 0) {
        cm_error (NULL, "CURVE self-check: zsock_connect(%s) failed: %s", target,
                  zmq_strerror (zmq_errno ()));
        goto cleanup;
    }
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline && !zsys_interrupted) {
        int event = cm_curve_watch_recv (watch, NULL, 0);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            rc = 0;
            break;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            last = event;
            break;
        }
        if (event > 0) {
            last = event;
        }
    }
    if (rc != 0) {
        /* The one line an operator needs: this server takes any key.   */
        cm_error (NULL,
                  "CURVE self-check failed on %s: an unknown client key was not refused "
                  "(%s within %d ms; is ZAP/zauth running?)",
                  endpoint, s_event_name (last), timeout_ms);
    } else {
        cm_debug (NULL, "CURVE self-check on %s: an unknown key is refused", endpoint);
    }
cleanup:
    cm_curve_watch_destroy (client, &watch);
    zsock_destroy (&client);
    zcert_destroy (&stranger);
    return rc;
}
