/*  cm_config -- one table of every known key: its default, its type and
    its bounds. Values come from the defaults, then the file, then the
    environment; derived defaults ("{data}/...") are filled in last so that
    moving SAFESHARE_DATA_DIR moves everything under it.                 */
#include "cm_config.h"
#include "cm_log.h"
#include "cm_util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <sys/stat.h>
#include <openssl/crypto.h>

typedef enum {
    S_STR,      /* any non-empty printable string */
    S_INT,      /* integer within [min, max] */
    S_ENDPOINT, /* ipc://PATH, tcp://HOST:PORT or inproc://NAME */
    S_HOSTPORT, /* HOST:PORT */
    S_DB,       /* sqlite:PATH or postgresql://... */
    S_URL,      /* http(s)://... */
    S_ENUM,     /* one of `choices`, |-separated */
    S_PATH,     /* a filesystem path */
    S_SECRET    /* non-empty printable, up to S_SECRET_MAX; never echoed */
} s_type_t;

/* A SAFESHARE_KEK_RING entry is 81 characters: this holds ~800 KEKs. */
#define S_SECRET_MAX 65536

typedef struct {
    const char *key;
    s_type_t type;
    const char *def; /* "{data}" is replaced by the data dir; NULL: unset */
    long min, max;
    const char *choices;
} s_key_t;

static const s_key_t s_keys[] = {
    {"SAFESHARE_DATA_DIR", S_PATH, "./var", 0, 0, NULL},
    {"SAFESHARE_HTTP_ADDR", S_HOSTPORT, "127.0.0.1:8000", 0, 0, NULL},
    {"SAFESHARE_PUBLIC_URL", S_URL, "http://127.0.0.1:8000", 0, 0, NULL},
    {"SAFESHARE_LOG_LEVEL", S_ENUM, "info", 0, 0, "error|warn|info|debug"},
    {"SAFESHARE_AUTH_DB", S_DB, "sqlite:{data}/auth.db", 0, 0, NULL},
    {"SAFESHARE_STORAGE_DB", S_DB, "sqlite:{data}/storage.db", 0, 0, NULL},
    {"SAFESHARE_MAILER_DB", S_DB, "sqlite:{data}/mailer.db", 0, 0, NULL},
    {"SAFESHARE_STORAGE_BACKEND", S_ENUM, "disk", 0, 0, "disk|s3"},
    /* Unset = the host name (storage checks the form). */
    {"SAFESHARE_STORAGE_INSTANCE", S_STR, NULL, 0, 0, NULL},
    {"SAFESHARE_BLOB_DIR", S_PATH, "{data}/blobs", 0, 0, NULL},
    /* The S3 backend (docs/storage.md); endpoint, bucket and keys are
       required when SAFESHARE_STORAGE_BACKEND=s3 (checked by storage). */
    {"SAFESHARE_S3_ENDPOINT", S_URL, NULL, 0, 0, NULL},
    {"SAFESHARE_S3_BUCKET", S_STR, NULL, 0, 0, NULL},
    {"SAFESHARE_S3_REGION", S_STR, "us-east-1", 0, 0, NULL},
    {"SAFESHARE_S3_ACCESS_KEY", S_STR, NULL, 0, 0, NULL},
    {"SAFESHARE_S3_SECRET_KEY", S_SECRET, NULL, 0, 0, NULL},
    {"SAFESHARE_S3_ADDRESSING", S_ENUM, "path", 0, 0, "path|virtual"},
    /* Keys are PREFIX + 32 hex; the prefix is [a-z0-9/] only. */
    {"SAFESHARE_S3_PREFIX", S_STR, "blobs/", 0, 0, NULL},
    /* Bytes buffered per pending upload; S3 parts are >= 5 MiB. */
    {"SAFESHARE_S3_PART_SIZE", S_INT, "8388608", 5242880, 268435456, NULL},
    /* Uploads buffered at once (each up to a part in memory); more: busy. */
    {"SAFESHARE_S3_MAX_PENDING", S_INT, "32", 1, 1024, NULL},
    /* One S3 operation, retries and back-off included. */
    {"SAFESHARE_S3_TIMEOUT_MS", S_INT, "30000", 1000, 600000, NULL},
    {"SAFESHARE_S3_CONNECT_TIMEOUT_MS", S_INT, "3000", 100, 60000, NULL},
    /* Retries of a 5xx, a timeout or a connection error. */
    {"SAFESHARE_S3_RETRIES", S_INT, "3", 0, 10, NULL},
    {"SAFESHARE_MAIL_DIR", S_PATH, "{data}/mail", 0, 0, NULL},
    {"SAFESHARE_KEY_DIR", S_PATH, "{data}/keys", 0, 0, NULL},
    /* The KEK ring itself, for containers ("<id> <64 hex>;...", the last
       current; cryptod_keyring); when set, $SAFESHARE_KEY_DIR/kek.ring is
       not read. Its shape is checked by crypto and the CLI, which use it. */
    {"SAFESHARE_KEK_RING", S_SECRET, NULL, 0, 0, NULL},
    {"SAFESHARE_AUTH_ENDPOINT", S_ENDPOINT, "ipc://{data}/run/auth.sock", 0, 0, NULL},
    {"SAFESHARE_CRYPTO_ENDPOINT", S_ENDPOINT, "ipc://{data}/run/crypto.sock", 0, 0, NULL},
    {"SAFESHARE_STORAGE_ENDPOINT", S_ENDPOINT, "ipc://{data}/run/storage.sock", 0, 0,
     NULL},
    {"SAFESHARE_MAILER_ENDPOINT", S_ENDPOINT, "ipc://{data}/run/mailer.sock", 0, 0, NULL},
    /* Local worker threads of the crypto broker; 0 = remote workers only. */
    {"SAFESHARE_CRYPTO_WORKERS", S_INT, "2", 0, 64, NULL},
    /* Where the broker takes remote workers (`safeshare-crypto worker
       --connect`); unset = local threads only. */
    {"SAFESHARE_CRYPTO_WORKER_ENDPOINT", S_ENDPOINT, NULL, 0, 0, NULL},
    /* CurveZMQ between services (cm_curve, docs/security.md): this
       process's secret cert (set = CURVE on; cm_curve checks the file,
       its mode and its content), the public certs of the services it
       calls (<name>.key) and those of the clients it accepts.          */
    {"SAFESHARE_CURVE_SECRET_KEY", S_PATH, NULL, 0, 0, NULL},
    {"SAFESHARE_CURVE_PUBLIC_DIR", S_PATH, NULL, 0, 0, NULL},
    {"SAFESHARE_CURVE_ALLOW_DIR", S_PATH, NULL, 0, 0, NULL},
    /* Chunks of one upload or download the gateway has at crypto at once. */
    {"SAFESHARE_CRYPTO_WINDOW", S_INT, "4", 1, 64, NULL},
    {"SAFESHARE_CHUNK_SIZE", S_INT, "1048576", 4096, 16777216, NULL},
    {"SAFESHARE_MAX_UPLOAD_BYTES", S_INT, "10737418240", 0, LONG_MAX, NULL},
    /* Upload extension allow-list, "*" = any (gw_policy: GW_POLICY_DEFAULT
       is the same list, checked by unit_gateway_policy).               */
    {"SAFESHARE_UPLOAD_ALLOWED_TYPES", S_STR,
     "docx,xlsx,pptx,odt,ods,odp,pdf,png,jpg,jpeg,gif,webp,txt,csv,zip,bin", 0, 0, NULL},
    {"SAFESHARE_ACCESS_TTL", S_INT, "900", 30, 86400, NULL},
    {"SAFESHARE_VERIFY_TTL", S_INT, "86400", 60, 2592000, NULL},
    {"SAFESHARE_REFRESH_TTL", S_INT, "1209600", 60, 31536000, NULL},
    {"SAFESHARE_SESSION_TTL", S_INT, "2592000", 60, 31536000, NULL},
    /* 0: the gateway asks auth about the user on every request. */
    {"SAFESHARE_USER_CACHE_TTL", S_INT, "5", 0, 60, NULL},
    {"SAFESHARE_PASSWORD_DENYLIST", S_PATH, NULL, 0, 0, NULL},
    {"SAFESHARE_LINK_MAX_TTL", S_INT, "604800", 60, 31536000, NULL},
    {"SAFESHARE_JWT_ISSUER", S_STR, "safeshare", 0, 0, NULL},
    {"SAFESHARE_JWT_AUDIENCE", S_STR, "safeshare-api", 0, 0, NULL},
    {"SAFESHARE_RPC_TIMEOUT_MS", S_INT, "5000", 100, 600000, NULL},
    {"SAFESHARE_HTTP_THREADS", S_INT, "16", 1, 256, NULL},
    /* The gateway's drain on SIGTERM: in-flight requests get this long. */
    {"SAFESHARE_SHUTDOWN_GRACE_MS", S_INT, "30000", 0, 3600000, NULL},
    /* GET /metrics (gw_access): who may scrape. CIDR list ("none": no
       address); the token, when set, is required as well.             */
    {"SAFESHARE_METRICS_ALLOW", S_STR, "127.0.0.0/8,::1/128", 0, 0, NULL},
    {"SAFESHARE_METRICS_TOKEN", S_SECRET, NULL, 0, 0, NULL},
    /* Peers whose X-Request-Id and X-Forwarded-For are believed ("none"). */
    {"SAFESHARE_TRUSTED_PROXIES", S_STR, "127.0.0.0/8,::1/128", 0, 0, NULL},
    /* Exact origins allowed by CORS, comma-separated; unset = CORS off. */
    {"SAFESHARE_CORS_ORIGINS", S_STR, NULL, 0, 0, NULL},
    {"SAFESHARE_MAIL_FROM", S_STR, "safeshare <no-reply@localhost>", 0, 0, NULL},
    /* The mailer (docs/mail.md). Reply-To: unset = none. */
    {"SAFESHARE_MAIL_REPLY_TO", S_STR, NULL, 0, 0, NULL},
    /* smtp://[user[:pass]@]host[:port][?tls=none]: holds a password, so
       a secret (never echoed); unset = the mail drop.                  */
    {"SAFESHARE_SMTP_URL", S_SECRET, NULL, 0, 0, NULL},
    /* Each SMTP step (connect, greeting, every reply, the transfer). */
    {"SAFESHARE_SMTP_TIMEOUT_MS", S_INT, "10000", 100, 300000, NULL},
    /* CA certificates for the SMTP server's; unset = the system's. */
    {"SAFESHARE_SMTP_CA_FILE", S_PATH, NULL, 0, 0, NULL},
    /* Transient failures are retried until a job is this old (s). */
    {"SAFESHARE_MAIL_MAX_AGE", S_INT, "86400", 60, 2592000, NULL},
    /* Backoff: the first retry after MIN, doubling up to MAX (jittered). */
    {"SAFESHARE_MAIL_RETRY_MIN_MS", S_INT, "5000", 10, 3600000, NULL},
    {"SAFESHARE_MAIL_RETRY_MAX_MS", S_INT, "600000", 10, 86400000, NULL},
    /* A claimed job's lease (s): a dead mailer's job is sent after it. */
    {"SAFESHARE_MAIL_LEASE_S", S_INT, "300", 2, 86400, NULL},
    /* NAME.subject/.txt/.html for every template; unset = built in. */
    {"SAFESHARE_MAIL_TEMPLATE_DIR", S_PATH, NULL, 0, 0, NULL},
};
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])

struct cm_config_t {
    char *values[S_NKEYS];
};

static int
s_find (const char *key)
{
    for (size_t i = 0; i < S_NKEYS; i++) {
        if (strcmp (s_keys[i].key, key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The old value of a secret key is wiped, not just freed.             */
static void
s_drop (cm_config_t *self, int idx)
{
    char *v = self->values[idx];
    if (v && s_keys[idx].type == S_SECRET) {
        cm_secret_free (v, strlen (v) + 1);
    } else {
        free (v);
    }
    self->values[idx] = NULL;
}

static void
s_set (cm_config_t *self, int idx, const char *value)
{
    s_drop (self, idx);
    self->values[idx] = strdup (value);
}

static void
s_err (char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, errlen, fmt, ap);
    va_end (ap);
}

static bool
s_printable (const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return *v != '\0';
}

static bool
s_valid_port (const char *p)
{
    char *end;
    errno = 0;
    long port = strtol (p, &end, 10);
    return *p && !*end && errno == 0 && port >= 1 && port <= 65535;
}

/* HOST:PORT where HOST is a name, IPv4, or [IPv6]. */
static bool
s_valid_hostport (const char *v)
{
    const char *colon = strrchr (v, ':');
    if (!colon || colon == v || colon - v > 255) {
        return false;
    }
    for (const char *p = v; p < colon; p++) {
        if (!(isalnum ((unsigned char)*p) || strchr (".-[]:*", *p))) {
            return false;
        }
    }
    return s_valid_port (colon + 1);
}

static const char *
s_check (const s_key_t *k, const char *v)
{
    if (k->type == S_SECRET) {
        return s_printable (v) && strlen (v) <= S_SECRET_MAX
                   ? NULL
                   : "must be a non-empty printable value of at most 65536 characters";
    }
    if (!s_printable (v) || strlen (v) > 1024) {
        return "must be a non-empty printable value of at most 1024 characters";
    }
    switch (k->type) {
        case S_STR:
        case S_PATH:
        case S_SECRET:
            return NULL;
        case S_INT: {
            char *end;
            errno = 0;
            long n = strtol (v, &end, 10);
            if (*end || errno || n < k->min || n > k->max) {
                static __thread char msg[128];
                snprintf (msg, sizeof msg, "must be an integer from %ld to %ld", k->min,
                          k->max);
                return msg;
            }
            return NULL;
        }
        case S_ENDPOINT:
            if (strncmp (v, "ipc://", 6) == 0) {
                /* sun_path is 108 bytes: a longer path fails at bind time. */
                return strlen (v + 6) > 0 && strlen (v + 6) < 100
                           ? NULL
                           : "ipc:// path must be 1..99 characters";
            }
            if (strncmp (v, "tcp://", 6) == 0) {
                return s_valid_hostport (v + 6) ? NULL : "tcp:// needs HOST:PORT";
            }
            if (strncmp (v, "inproc://", 9) == 0 && v[9]) {
                return NULL;
            }
            return "must be ipc://PATH, tcp://HOST:PORT or inproc://NAME";
        case S_HOSTPORT:
            return s_valid_hostport (v) ? NULL : "must be HOST:PORT";
        case S_DB:
            if (strncmp (v, "sqlite:", 7) == 0 && v[7]) {
                return NULL;
            }
            if (strncmp (v, "postgresql://", 13) == 0 ||
                strncmp (v, "postgres://", 11) == 0) {
                return NULL;
            }
            return "must be sqlite:PATH or a postgresql:// URL";
        case S_URL:
            if ((strncmp (v, "http://", 7) == 0 && v[7]) ||
                (strncmp (v, "https://", 8) == 0 && v[8])) {
                return v[strlen (v) - 1] == '/' ? "must not end with /" : NULL;
            }
            return "must be an http:// or https:// URL";
        case S_ENUM: {
            size_t n = strlen (v);
            for (const char *c = k->choices; *c;) {
                const char *bar = strchr (c, '|');
                size_t len = bar ? (size_t)(bar - c) : strlen (c);
                if (len == n && strncmp (c, v, n) == 0) {
                    return NULL;
                }
                if (!bar) {
                    break;
                }
                c = bar + 1;
            }
            static __thread char msg[160];
            snprintf (msg, sizeof msg, "must be one of %s", k->choices);
            return msg;
        }
    }
    return "unknown type";
}

static int
s_load_file (cm_config_t *self, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen (file, "r");
    if (!f) {
        s_err (err, errlen, "cannot read config file %s: %s", file, strerror (errno));
        return -1;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    while (fgets (line, sizeof line, f)) {
        lineno++;
        size_t len = strlen (line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            s_err (err, errlen, "%s:%d: line too long", file, lineno);
            rc = -1;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                       line[len - 1] == ' ' || line[len - 1] == '\t')) {
            line[--len] = '\0';
        }
        char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0' || *p == '#') {
            continue;
        }
        char *eq = strchr (p, '=');
        if (!eq) {
            s_err (err, errlen, "%s:%d: expected KEY=value", file, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        int idx = s_find (p);
        if (idx < 0) {
            s_err (err, errlen, "%s:%d: unknown key %s", file, lineno, p);
            rc = -1;
            break;
        }
        s_set (self, idx, eq + 1);
    }
    /* The buffer may have held a secret (SAFESHARE_KEK_RING).          */
    OPENSSL_cleanse (line, sizeof line);
    fclose (f);
    return rc;
}

cm_config_t *
cm_config_load (const char *file, char *err, size_t errlen)
{
    cm_config_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    if (file && s_load_file (self, file, err, errlen) != 0) {
        goto fail;
    }
    for (size_t i = 0; i < S_NKEYS; i++) {
        const char *env = getenv (s_keys[i].key);
        if (env) {
            s_set (self, (int)i, env);
        }
    }
    /* The data dir first: the derived defaults below name it. */
    int data = s_find ("SAFESHARE_DATA_DIR");
    if (!self->values[data]) {
        s_set (self, data, s_keys[data].def);
    }
    const char *dir = self->values[data];
    for (size_t i = 0; i < S_NKEYS; i++) {
        if (self->values[i] || !s_keys[i].def) {
            continue;
        }
        const char *def = s_keys[i].def;
        const char *mark = strstr (def, "{data}");
        if (mark) {
            char buf[2048];
            snprintf (buf, sizeof buf, "%.*s%s%s", (int)(mark - def), def, dir, mark + 6);
            s_set (self, (int)i, buf);
        } else {
            s_set (self, (int)i, def);
        }
    }
    for (size_t i = 0; i < S_NKEYS; i++) {
        const char *why = self->values[i] ? s_check (&s_keys[i], self->values[i]) : NULL;
        if (why) {
            /* A secret's value never reaches an error line or a log.  */
            s_err (err, errlen, "%s=%s: %s", s_keys[i].key,
                   s_keys[i].type == S_SECRET ? "(secret, not shown)" : self->values[i],
                   why);
            goto fail;
        }
    }
    return self;
fail:
    cm_config_destroy (&self);
    return NULL;
}

void
cm_config_destroy (cm_config_t **self_p)
{
    if (self_p && *self_p) {
        for (size_t i = 0; i < S_NKEYS; i++) {
            s_drop (*self_p, (int)i);
        }
        free (*self_p);
        *self_p = NULL;
    }
}

const char *
cm_config_get (cm_config_t *self, const char *key)
{
    int idx = s_find (key);
    return idx >= 0 ? self->values[idx] : NULL;
}

long
cm_config_int (cm_config_t *self, const char *key)
{
    const char *v = cm_config_get (self, key);
    return v ? strtol (v, NULL, 10) : 0;
}

/* fsync of the directory holding `path`, so a new entry in it survives
   power loss (a committed blob or an acked mail must not vanish with the
   directory that was made for it).                                     */
static void
s_fsync_parent (const char *path)
{
    char parent[4096];
    snprintf (parent, sizeof parent, "%s", path);
    cm_fsync_dir (dirname (parent));
}

static int
s_mkdir (const char *path, int mode)
{
    if (mkdir (path, (mode_t)mode) == 0) {
        s_fsync_parent (path);
        return 0;
    }
    return errno == EEXIST ? 0 : -1;
}

int
cm_mkdirs (const char *dir, int mode)
{
    char path[4096];
    if (snprintf (path, sizeof path, "%s", dir) >= (int)sizeof path) {
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (s_mkdir (path, mode) != 0) {
                return -1;
            }
            *p = '/';
        }
    }
    return s_mkdir (path, mode);
}
