/*  maild_smtp -- one libesmtp session per delivery, judged by the reply
    codes of the message and its recipient.                              */
#include <openssl/ssl.h> /* before libesmtp.h: declares smtp_starttls_set_ctx */
#include <openssl/x509v3.h>

#include "maild_smtp.h"
#include "cm_log.h"
#include "cm_util.h"

#include <auth-client.h>
#include <libesmtp.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    maild_smtp_url_t url;
    char hostport[300];
    char *sender;
    long timeout_ms;
    SSL_CTX *tls; /* NULL with tls=none */
    /* The stop (s_cancel, another thread) against a session in progress:
       `live` is our own dup of libesmtp's socket, so shutting it down
       wakes libesmtp's poll at once and can never hit a reused number. */
    pthread_mutex_t lock;
    atomic_bool cancelled;
    int live; /* -1 outside a session; guarded by lock */
} s_smtp_t;

/* ---- URL --------------------------------------------------------------- */

static int
s_hexval (char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes [p, p+n) into a new string; NULL on a bad escape, a
   NUL or a control character.                                         */
static char *
s_decode (const char *p, size_t n)
{
    char *out = malloc (n + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= n || s_hexval (p[i + 1]) < 0 || s_hexval (p[i + 2]) < 0) {
                goto bad;
            }
            c = s_hexval (p[i + 1]) * 16 + s_hexval (p[i + 2]);
            i += 2;
        }
        if (c < 0x20 || c == 0x7f) {
            goto bad;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
bad:
    cm_secret_free (out, n + 1);
    return NULL;
}

void
maild_smtp_url_clear (maild_smtp_url_t *url)
{
    if (!url) {
        return;
    }
    if (url->password) {
        cm_secret_free (url->password, strlen (url->password));
    }
    free (url->user);
    memset (url, 0, sizeof *url);
}

int
maild_smtp_url_parse (const char *url, maild_smtp_url_t *out, char *err, size_t errlen)
{
    memset (out, 0, sizeof *out);
    out->starttls = true;
    snprintf (out->port, sizeof out->port, "587");
    if (!url || strncmp (url, "smtp://", 7) != 0) {
        snprintf (err, errlen, "SAFESHARE_SMTP_URL must start with smtp://");
        return -1;
    }
    const char *p = url + 7;
    const char *end = p + strcspn (p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++) {
        if (*q == '@') {
            at = q; /* the last @: a password may hold one, encoded or not */
        }
    }
    if (at) {
        const char *colon = memchr (p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
        out->user = s_decode (p, ulen);
        out->password =
            colon ? s_decode (colon + 1, (size_t)(at - colon - 1)) : strdup ("");
        if (!out->user || !out->password || !*out->user) {
            snprintf (err, errlen, "SAFESHARE_SMTP_URL: bad user or password encoding");
            goto fail;
        }
        p = at + 1;
    }
    /* HOST[:PORT]: a name or IPv4 address (libesmtp takes "host:port"). */
    const char *colon = memchr (p, ':', (size_t)(end - p));
    const char *hend = colon ? colon : end;
    size_t hlen = (size_t)(hend - p);
    if (hlen == 0 || hlen >= sizeof out->host) {
        snprintf (err, errlen, "SAFESHARE_SMTP_URL: missing or too long host");
        goto fail;
    }
    for (const char *q = p; q < hend; q++) {
        if (!(isalnum ((unsigned char)*q) || *q == '.' || *q == '-' || *q == '_')) {
            snprintf (err, errlen,
                      "SAFESHARE_SMTP_URL: host must be a name or an IPv4 address");
            goto fail;
        }
    }
    memcpy (out->host, p, hlen);
    out->host[hlen] = '\0';
    if (colon) {
        size_t plen = (size_t)(end - colon - 1);
        char *stop = NULL;
        long port = plen > 0 && plen < 6 ? strtol (colon + 1, &stop, 10) : 0;
        if (!stop || stop != end || port < 1 || port > 65535) {
            snprintf (err, errlen, "SAFESHARE_SMTP_URL: port must be 1..65535");
            goto fail;
        }
        snprintf (out->port, sizeof out->port, "%ld", port);
    }
    p = end;
    if (*p == '/') {
        p++; /* an empty path is fine; anything else is not */
    }
    if (*p == '?') {
        if (strcmp (p, "?tls=none") == 0) {
            out->starttls = false;
        } else if (strcmp (p, "?tls=starttls") != 0) {
            snprintf (err, errlen,
                      "SAFESHARE_SMTP_URL: the only option is tls=starttls (default) or "
                      "tls=none");
            goto fail;
        }
    } else if (*p) {
        snprintf (err, errlen, "SAFESHARE_SMTP_URL: unexpected text after the host");
        goto fail;
    }
    return 0;
fail:
    maild_smtp_url_clear (out);
    return -1;
}

/* ---- delivery ---------------------------------------------------------- */

/* Slices of a wait, to notice a stop (s_cancel) soon. */
#define S_SLICE_MS 100

static const char s_stopping[] = "interrupted: the mailer is stopping";

/* libesmtp's connect() is blocking without a timeout: make sure the
   server answers a TCP connect within timeout_ms first. 0 / -1; *ai_p
   gets the server's addresses (to find libesmtp's socket by its peer),
   freed by the caller.                                                */
static int
s_probe (s_smtp_t *self, struct addrinfo **ai_p, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo (self->url.host, self->url.port, &hints, &ai);
    if (gai != 0) {
        snprintf (err, errlen, "resolving %s: %s", self->url.host, gai_strerror (gai));
        return -1;
    }
    *ai_p = ai;
    int rc = -1;
    int saved = 0;
    for (struct addrinfo *a = ai; a && rc != 0; a = a->ai_next) {
        int fd = socket (a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect (fd, a->ai_addr, a->ai_addrlen) == 0) {
            rc = 0;
        } else if (errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int n = 0;
            for (long left = self->timeout_ms; n == 0 && left > 0; left -= S_SLICE_MS) {
                if (atomic_load (&self->cancelled)) {
                    break;
                }
                n = poll (&pfd, 1, left < S_SLICE_MS ? (int)left : S_SLICE_MS);
            }
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (n == 1 && getsockopt (fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
                soerr == 0) {
                rc = 0;
            } else {
                saved = n == 0 ? ETIMEDOUT : soerr ? soerr : errno;
            }
        } else {
            saved = errno;
        }
        close (fd);
    }
    if (rc != 0 && atomic_load (&self->cancelled)) {
        snprintf (err, errlen, "%s", s_stopping);
    } else if (rc != 0) {
        snprintf (err, errlen, "connect %s: %s", self->hostport, strerror (saved));
    }
    return rc;
}

static bool
s_same_peer (const struct sockaddr_storage *peer, const struct addrinfo *a)
{
    if (peer->ss_family == AF_INET && a->ai_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)peer;
        const struct sockaddr_in *q = (const struct sockaddr_in *)a->ai_addr;
        return p->sin_port == q->sin_port && p->sin_addr.s_addr == q->sin_addr.s_addr;
    }
    if (peer->ss_family == AF_INET6 && a->ai_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;
        const struct sockaddr_in6 *q = (const struct sockaddr_in6 *)a->ai_addr;
        return p->sin6_port == q->sin6_port &&
               memcmp (&p->sin6_addr, &q->sin6_addr, sizeof p->sin6_addr) == 0;
    }
    return false;
}

/* libesmtp does not tell its socket: the one descriptor connected to the
   server (the probe's is closed) is found among ours. -1 if none or not
   only one (then a stop waits for the session's timeouts).           */
static int
s_find_session_fd (const struct addrinfo *ai)
{
    DIR *d = opendir ("/proc/self/fd");
    if (!d) {
        return -1;
    }
    int found = -1, count = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        char *end = NULL;
        long fd = strtol (e->d_name, &end, 10);
        if (!*e->d_name || *end || fd < 0 || fd == dirfd (d)) {
            continue;
        }
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int type = 0;
        socklen_t tl = sizeof type;
        if (getsockopt ((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
            type != SOCK_STREAM ||
            getpeername ((int)fd, (struct sockaddr *)&peer, &pl) != 0) {
            continue;
        }
        for (const struct addrinfo *a = ai; a; a = a->ai_next) {
            if (s_same_peer (&peer, a)) {
                found = (int)fd;
                count++;
                break;
            }
        }
    }
    closedir (d);
    return count == 1 ? found : -1;
}

/* State of one session, seen by the callbacks. */
typedef struct {
    s_smtp_t *smtp;
    const struct addrinfo *peer; /* the server's addresses */
    const char *data;
    size_t len;
    bool sent_data;
    bool tls_ok;
    bool tls_missing;
    bool cert_bad;
} s_session_t;

static const char *
s_message_cb (void **ctx, int *len, void *arg)
{
    s_session_t *s = arg;
    (void)ctx;
    if (!len) {
        s->sent_data = false; /* rewind */
        return NULL;
    }
    if (s->sent_data) {
        *len = 0;
        return NULL;
    }
    s->sent_data = true;
    *len = (int)s->len;
    return s->data;
}

static void
s_event_cb (smtp_session_t session, int event, void *arg, ...)
{
    s_session_t *s = arg;
    (void)session;
    switch (event) {
        case SMTP_EV_CONNECT: {
            /* Our own reference to the socket, for s_cancel. */
            int fd = s_find_session_fd (s->peer);
            int dup = fd >= 0 ? fcntl (fd, F_DUPFD_CLOEXEC, 0) : -1;
            pthread_mutex_lock (&s->smtp->lock);
            s->smtp->live = dup;
            if (dup >= 0 && atomic_load (&s->smtp->cancelled)) {
                shutdown (dup, SHUT_RDWR);
            }
            pthread_mutex_unlock (&s->smtp->lock);
            break;
        }
        case SMTP_EV_STARTTLS_OK:
            s->tls_ok = true;
            break;
        case SMTP_EV_EXTNA_STARTTLS:
            s->tls_missing = true;
            break;
        case SMTP_EV_WRONG_PEER_CERTIFICATE: {
            /* libesmtp's own name check knows no IP addresses. OpenSSL has
               checked the name already (X509_VERIFY_PARAM_set1_host/_ip in
               s_tls_new: a mismatch fails the handshake), so this one check
               is answered ok; every other certificate event is refused.   */
            va_list ap;
            va_start (ap, arg);
            int *ok = va_arg (ap, int *);
            va_end (ap);
            if (ok) {
                *ok = 1;
            }
            break;
        }
        case SMTP_EV_INVALID_PEER_CERTIFICATE:
        case SMTP_EV_NO_PEER_CERTIFICATE:
        case SMTP_EV_UNUSABLE_CA_LIST:
            /* Left "not ok": libesmtp then drops the connection. */
            s->cert_bad = true;
            break;
        default:
            break;
    }
}

static int
s_interact (auth_client_request_t request, char **result, int fields, void *arg)
{
    s_smtp_t *self = arg;
    for (int i = 0; i < fields; i++) {
        if (request[i].flags & AUTH_USER) {
            result[i] = self->url.user;
        } else if (request[i].flags & AUTH_PASS) {
            result[i] = self->url.password;
        } else {
            return 0; /* a realm or anything else: we have none */
        }
    }
    return 1;
}

/* A 4xx is transient, a 5xx permanent, except the authentication
   codes (530/534/535/538): those are our configuration, and retrying
   after it is fixed is what the operator wants.                      */
static maild_result_t
s_judge_code (int code)
{
    if (code >= 200 && code < 300) {
        return MAILD_DELIVERED;
    }
    if (code >= 500 && code < 600 && code != 530 && code != 534 && code != 535 &&
        code != 538) {
        return MAILD_FAILED;
    }
    return MAILD_RETRY;
}

/* "550 5.1.1 text" of a status, made printable and short. */
static void
s_status_text (char *out, size_t outlen, const char *what, const smtp_status_t *st)
{
    char text[200] = "";
    if (st && st->text) {
        size_t n = 0;
        for (const char *p = st->text; *p && n + 1 < sizeof text; p++) {
            text[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
        }
        text[n] = '\0';
        while (n > 0 && text[n - 1] == ' ') {
            text[--n] = '\0';
        }
    }
    snprintf (out, outlen, "%s: %d %s", what, st ? st->code : 0, text);
}

static maild_result_t
s_deliver (void *impl, const char *req, const char *job_id, const char *to,
           const char *data, size_t len, char *err, size_t errlen)
{
    s_smtp_t *self = impl;
    maild_result_t result = MAILD_RETRY;
    smtp_session_t session = NULL;
    auth_context_t auth = NULL;
    struct addrinfo *peer = NULL;
    s_session_t state = {.smtp = self, .data = data, .len = len};
    if (len > (size_t)1 << 30) {
        snprintf (err, errlen, "message too large");
        return MAILD_FAILED;
    }
    if (atomic_load (&self->cancelled)) {
        snprintf (err, errlen, "%s", s_stopping);
        return MAILD_RETRY;
    }
    if (s_probe (self, &peer, err, errlen) != 0) {
        goto cleanup;
    }
    state.peer = peer;
    session = smtp_create_session ();
    if (!session) {
        snprintf (err, errlen, "smtp_create_session() failed");
        goto cleanup;
    }
    int which[] = {Timeout_GREETING, Timeout_ENVELOPE, Timeout_DATA, Timeout_TRANSFER,
                   Timeout_DATA2};
    for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
        smtp_set_timeout (session, which[i] | Timeout_OVERRIDE_RFC2822_MINIMUM,
                          self->timeout_ms);
    }
    smtp_message_t message = smtp_add_message (session);
    smtp_recipient_t rcpt = message ? smtp_add_recipient (message, to) : NULL;
    if (!message || !rcpt || !smtp_set_server (session, self->hostport) ||
        !smtp_set_reverse_path (message, self->sender) ||
        !smtp_set_messagecb (message, s_message_cb, &state) ||
        !smtp_set_eventcb (session, s_event_cb, &state)) {
        snprintf (err, errlen, "libesmtp session set-up failed");
        goto cleanup;
    }
    if (self->tls) {
        if (!smtp_starttls_enable (session, Starttls_REQUIRED) ||
            !smtp_starttls_set_ctx (session, self->tls)) {
            snprintf (err, errlen, "libesmtp STARTTLS set-up failed");
            goto cleanup;
        }
    } else {
        smtp_starttls_enable (session, Starttls_DISABLED);
    }
    if (self->url.user) {
        auth = auth_create_context ();
        if (!auth) {
            snprintf (err, errlen, "auth_create_context() failed");
            goto cleanup;
        }
        auth_set_mechanism_flags (auth, AUTH_PLUGIN_PLAIN, 0);
        auth_set_interact_cb (auth, s_interact, self);
        smtp_auth_set_context (session, auth);
    }

    int started = smtp_start_session (session);
    /* libesmtp has closed its socket: ours goes too. */
    pthread_mutex_lock (&self->lock);
    if (self->live >= 0) {
        close (self->live);
        self->live = -1;
    }
    pthread_mutex_unlock (&self->lock);
    const smtp_status_t *mst = smtp_message_transfer_status (message);
    const smtp_status_t *rst = smtp_recipient_status (rcpt);
    const smtp_status_t *fst = smtp_reverse_path_status (message);
    bool done = mst && mst->code >= 200 && mst->code < 300 && rst && rst->code >= 200 &&
                rst->code < 300;
    if (!done && atomic_load (&self->cancelled)) {
        snprintf (err, errlen, "%s", s_stopping);
        result = MAILD_RETRY;
        goto cleanup;
    }
    if (self->tls && !state.tls_ok) {
        /* Whatever start_session said, nothing may have gone in clear:
           libesmtp stops before MAIL FROM when TLS fails; say why.       */
        snprintf (err, errlen, "%s",
                  state.cert_bad ? "STARTTLS: the server certificate was refused"
                  : state.tls_missing
                      ? "STARTTLS required but the server does not offer it"
                      : "STARTTLS required but TLS was not established");
        result = MAILD_RETRY;
        goto cleanup;
    }
    if (done) {
        result = MAILD_DELIVERED;
        cm_info (req, "mail sent by smtp job=%s server=%s reply=%d", job_id,
                 self->hostport, mst->code);
        goto cleanup;
    }
    /* Not delivered: the first refusal in protocol order decides. */
    if (fst && fst->code >= 400) {
        result = s_judge_code (fst->code);
        s_status_text (err, errlen, "MAIL FROM", fst);
    } else if (rst && rst->code >= 400) {
        result = s_judge_code (rst->code);
        s_status_text (err, errlen, "RCPT TO", rst);
    } else if (mst && mst->code >= 400) {
        result = s_judge_code (mst->code);
        s_status_text (err, errlen, "DATA", mst);
    } else {
        char buf[128];
        int e = smtp_errno ();
        snprintf (err, errlen, "session %s: %s", started ? "ended early" : "failed",
                  e ? smtp_strerror (e, buf, sizeof buf) : "no reply (timeout?)");
        result = MAILD_RETRY;
    }
cleanup:
    if (session) {
        smtp_destroy_session (session);
    }
    if (auth) {
        auth_destroy_context (auth);
    }
    if (peer) {
        freeaddrinfo (peer);
    }
    return result;
}

/* From the thread that stops the sender. */
static void
s_cancel (void *impl)
{
    s_smtp_t *self = impl;
    pthread_mutex_lock (&self->lock);
    atomic_store (&self->cancelled, true);
    if (self->live >= 0) {
        shutdown (self->live, SHUT_RDWR);
    }
    pthread_mutex_unlock (&self->lock);
}

static void
s_destroy (void **impl_p)
{
    if (impl_p && *impl_p) {
        s_smtp_t *self = *impl_p;
        maild_smtp_url_clear (&self->url);
        free (self->sender);
        SSL_CTX_free (self->tls);
        pthread_mutex_destroy (&self->lock);
        free (self);
        *impl_p = NULL;
    }
}

static const maild_transport_ops_t s_ops = {
    .name = "smtp",
    .deliver = s_deliver,
    .destroy = s_destroy,
    .cancel = s_cancel,
};

static pthread_once_t s_auth_once = PTHREAD_ONCE_INIT;
static void
s_auth_init (void)
{
    auth_client_init ();
}

/* Verifying TLS context: system CAs (or ca_file), TLS 1.2, and the
   certificate must name the host (IP or DNS) -- checked by OpenSSL.
   Not TLS 1.3: its session tickets come after the handshake, and when
   they are in before libesmtp 1.1 polls, its engine reads them first
   and waits for the reply to an EHLO it has not flushed yet, until the
   timeout (seen on loopback, under load). TLS 1.2 sends its tickets
   inside the handshake.                                              */
static SSL_CTX *
s_tls_new (const char *host, const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new (TLS_client_method ());
    if (!ctx) {
        snprintf (err, errlen, "SSL_CTX_new() failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version (ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version (ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations (ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths (ctx);
    if (ok != 1) {
        snprintf (err, errlen, "cannot load the CA certificates%s%s",
                  ca_file ? " from " : "", ca_file ? ca_file : "");
        SSL_CTX_free (ctx);
        return NULL;
    }
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param (ctx);
    struct in_addr v4;
    ok = inet_pton (AF_INET, host, &v4) == 1
             ? X509_VERIFY_PARAM_set1_ip_asc (param, host)
             : X509_VERIFY_PARAM_set1_host (param, host, 0);
    if (ok != 1) {
        snprintf (err, errlen, "cannot set the TLS host check");
        SSL_CTX_free (ctx);
        return NULL;
    }
    return ctx;
}

maild_transport_t *
maild_smtp_new (const char *url, const char *sender, long timeout_ms, const char *ca_file,
                char *err, size_t errlen)
{
    s_smtp_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->live = -1;
    void *impl = self;
    if (maild_smtp_url_parse (url, &self->url, err, errlen) != 0) {
        goto fail;
    }
    if (!sender || !cm_email_valid (sender) || !(self->sender = strdup (sender))) {
        snprintf (err, errlen, "bad envelope sender");
        goto fail;
    }
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    snprintf (self->hostport, sizeof self->hostport, "%s:%s", self->url.host,
              self->url.port);
    if (self->url.starttls) {
        self->tls = s_tls_new (self->url.host, ca_file, err, errlen);
        if (!self->tls) {
            goto fail;
        }
    }
    pthread_once (&s_auth_once, s_auth_init);
    maild_transport_t *transport = maild_transport_new (&s_ops, &impl);
    if (!transport) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }
    return transport;
fail:
    s_destroy (&impl);
    return NULL;
}
