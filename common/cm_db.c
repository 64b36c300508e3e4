/*  cm_db -- two backends behind one opaque handle: SQLite (the embedded
    default) and PostgreSQL (libpq). The interface is the one libpq offers
    (text parameters $1.., text results), so the SQLite side adapts to it
    and the PostgreSQL side is a thin wrapper.                           */
#include "cm_db.h"
#include "cm_log.h"
#include "cm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { S_SQLITE, S_PG } s_backend_t;

struct cm_db_t {
    s_backend_t backend;
    sqlite3 *sqlite; /* S_SQLITE */
    PGconn *pg;      /* S_PG */
    char *path;      /* what logs name: file path, or host:port/db (never
                        the password)                                    */
};

struct cm_db_res_t {
    cm_db_status_t status;
    int rows, cols, changes;
    char **cells; /* rows * cols, NULL for SQL NULL */
};

static cm_db_status_t
s_status (int rc)
{
    switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
            return CM_DB_OK;
        case SQLITE_CONSTRAINT:
            return CM_DB_CONSTRAINT;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            return CM_DB_BUSY;
        default:
            return CM_DB_ERROR;
    }
}

static int s_pg_exec_script (cm_db_t *self, const char *sql);

/* Runs one or more statements without parameters. 0 / -1 (logged). */
static int
s_exec_script (cm_db_t *self, const char *sql)
{
    if (self->backend == S_PG) {
        return s_pg_exec_script (self, sql);
    }
    char *err = NULL;
    if (sqlite3_exec (self->sqlite, sql, NULL, NULL, &err) != SQLITE_OK) {
        cm_error (NULL, "sqlite3_exec() failed on %s: %s", self->path, err ? err : "?");
        sqlite3_free (err);
        return -1;
    }
    return 0;
}

static cm_db_t *s_pg_open (const char *url);

cm_db_t *
cm_db_open (const char *url)
{
    if (!url) {
        cm_error (NULL, "no database URL");
        return NULL;
    }
    if (strncmp (url, "postgresql://", 13) == 0 ||
        strncmp (url, "postgres://", 11) == 0) {
        return s_pg_open (url);
    }
    if (strncmp (url, "sqlite:", 7) != 0 || !url[7]) {
        cm_error (NULL,
                  "unsupported database URL (want sqlite:PATH or postgresql://...)");
        return NULL;
    }
    const char *path = url + 7;
    /* Create the file ourselves so it is 0600 whatever the umask. Only
       when it is missing: close() of any descriptor of the file drops
       every POSIX lock this process holds on it, those of an open SQLite
       connection too -- another process would then think it is alone and
       delete the WAL that connection still writes to.                   */
    int fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
        cm_error (NULL, "open(%s) failed: %s", path, strerror (errno));
        return NULL;
    }
    if (fd >= 0) {
        close (fd);
    }
    cm_db_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->backend = S_SQLITE;
    self->path = strdup (path);
    if (!self->path) {
        goto fail;
    }
    if (sqlite3_open_v2 (path, &self->sqlite,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                         NULL) != SQLITE_OK) {
        cm_error (NULL, "sqlite3_open_v2(%s) failed: %s", path,
                  self->sqlite ? sqlite3_errmsg (self->sqlite) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout (self->sqlite, 5000);
    /* WAL for concurrent readers (CLI beside a running service);
       synchronous=FULL because a committed file or queued mail must
       survive power loss, not just a process crash.                    */
    /* secure_delete: deleted or overwritten cells are zeroed, so a secret
       erased from a row (a mailed link) is not left in a free page.    */
    if (s_exec_script (self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                             "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;") != 0) {
        goto fail;
    }
    return self;
fail:
    cm_db_destroy (&self);
    return NULL;
}

void
cm_db_destroy (cm_db_t **self_p)
{
    if (self_p && *self_p) {
        sqlite3_close_v2 ((*self_p)->sqlite);
        if ((*self_p)->pg) {
            PQfinish ((*self_p)->pg);
        }
        free ((*self_p)->path);
        free (*self_p);
        *self_p = NULL;
    }
}

static cm_db_res_t *
s_res_new (cm_db_status_t status)
{
    cm_db_res_t *res = calloc (1, sizeof *res);
    if (!res) {
        abort (); /* out of memory may abort (STYLE.md) */
    }
    res->status = status;
    return res;
}

static cm_db_res_t *s_pg_query (cm_db_t *self, const char *sql, int nparams,
                                const char *const *params);

cm_db_res_t *
cm_db_query (cm_db_t *self, const char *sql, int nparams, const char *const *params)
{
    if (nparams < 0 || (nparams > 0 && !params)) {
        cm_error (NULL, "cm_db_query() called with %d parameters and no values", nparams);
        return s_res_new (CM_DB_ERROR);
    }
    if (self->backend == S_PG) {
        return s_pg_query (self, sql, nparams, params);
    }
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (self->sqlite, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        cm_error (NULL, "sqlite3_prepare_v2() failed: %s", sqlite3_errmsg (self->sqlite));
        return s_res_new (s_status (rc) == CM_DB_OK ? CM_DB_ERROR : s_status (rc));
    }
    cm_db_res_t *res = s_res_new (CM_DB_OK);
    /* Every parameter in the SQL must be one of $1..$nparams.           */
    int count = sqlite3_bind_parameter_count (stmt);
    for (int i = 1; i <= count; i++) {
        const char *name = sqlite3_bind_parameter_name (stmt, i);
        int n = name && name[0] == '$' ? atoi (name + 1) : 0;
        if (n < 1 || n > nparams) {
            cm_error (NULL, "SQL parameter %s has no value", name ? name : "?");
            res->status = CM_DB_ERROR;
            goto done;
        }
        rc = params[n - 1]
                 ? sqlite3_bind_text (stmt, i, params[n - 1], -1, SQLITE_TRANSIENT)
                 : sqlite3_bind_null (stmt, i);
        if (rc != SQLITE_OK) {
            res->status = CM_DB_ERROR;
            goto done;
        }
    }
    res->cols = sqlite3_column_count (stmt);
    size_t cap = 0;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if ((size_t)(res->rows + 1) * (size_t)res->cols > cap) {
            cap = cap ? cap * 2 : (size_t)res->cols * 8;
            char **cells = realloc (res->cells, cap * sizeof *cells);
            if (!cells) {
                abort ();
            }
            res->cells = cells;
        }
        for (int c = 0; c < res->cols; c++) {
            const unsigned char *v = sqlite3_column_text (stmt, c);
            res->cells[res->rows * res->cols + c] = v ? strdup ((const char *)v) : NULL;
        }
        res->rows++;
    }
    if (rc != SQLITE_DONE) {
        res->status = s_status (rc) == CM_DB_OK ? CM_DB_ERROR : s_status (rc);
        if (res->status != CM_DB_CONSTRAINT) {
            cm_error (NULL, "sqlite3_step() failed: %s", sqlite3_errmsg (self->sqlite));
        }
        goto done;
    }
    res->changes = sqlite3_changes (self->sqlite);
done:
    sqlite3_finalize (stmt);
    return res;
}

cm_db_status_t
cm_db_exec (cm_db_t *self, const char *sql, int nparams, const char *const *params)
{
    cm_db_res_t *res = cm_db_query (self, sql, nparams, params);
    cm_db_status_t status = res->status;
    cm_db_res_free (&res);
    return status;
}

cm_db_status_t
cm_db_res_status (const cm_db_res_t *res)
{
    return res->status;
}

int
cm_db_res_rows (const cm_db_res_t *res)
{
    return res->rows;
}

int
cm_db_res_changes (const cm_db_res_t *res)
{
    return res->changes;
}

const char *
cm_db_res_get (const cm_db_res_t *res, int row, int col)
{
    if (row < 0 || row >= res->rows || col < 0 || col >= res->cols) {
        return NULL;
    }
    return res->cells[row * res->cols + col];
}

void
cm_db_res_free (cm_db_res_t **res_p)
{
    if (res_p && *res_p) {
        cm_db_res_t *res = *res_p;
        for (int i = 0; i < res->rows * res->cols; i++) {
            free (res->cells[i]);
        }
        free (res->cells);
        free (res);
        *res_p = NULL;
    }
}

int
cm_db_scrub (cm_db_t *self)
{
    if (self->backend == S_PG) {
        return 0; /* see cm_db.h: dead row versions go with VACUUM */
    }
    /* The WAL still holds the page images from before the erase: copy
       the current pages back and truncate the log to nothing.          */
    int busy = 0, logged = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2 (self->sqlite, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                        &logged, &done);
    if (rc != SQLITE_OK) {
        busy = (rc & 0xff) == SQLITE_BUSY;
        cm_log (busy ? CM_LOG_DEBUG : CM_LOG_WARN, NULL,
                "sqlite3_wal_checkpoint_v2(TRUNCATE) on %s: %s", self->path,
                sqlite3_errmsg (self->sqlite));
        return -1;
    }
    return 0;
}

int
cm_db_begin (cm_db_t *self)
{
    if (self->backend == S_PG) {
        /* READ COMMITTED (the server default) is enough for the services'
           writes: each state change is one conditional UPDATE ... WHERE
           <expected state> (or an INSERT guarded by a unique key), and
           PostgreSQL re-checks the WHERE against the newest committed row
           after waiting for a concurrent writer, so two racing requests
           cannot both see "1 row changed". Plain reads in a transaction
           may see newer commits; no decision relies on two reads agreeing. */
        return s_exec_script (self, "BEGIN");
    }
    return s_exec_script (self, "BEGIN IMMEDIATE");
}

static int s_pg_commit (cm_db_t *self);

int
cm_db_commit (cm_db_t *self)
{
    if (self->backend == S_PG) {
        return s_pg_commit (self);
    }
    if (s_exec_script (self, "COMMIT") == 0) {
        return 0;
    }
    /* A failed COMMIT (e.g. SQLITE_BUSY) leaves the transaction open;
       left so, every later BEGIN on this connection would fail too.     */
    if (!sqlite3_get_autocommit (self->sqlite)) {
        s_exec_script (self, "ROLLBACK");
    }
    return -1;
}

int
cm_db_rollback (cm_db_t *self)
{
    return s_exec_script (self, "ROLLBACK");
}

int
cm_db_migrate (cm_db_t *self, const char *service, const char *const *sql, size_t count)
{
    if (self->backend == S_PG) {
        /* Concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL
           (unique violation in pg_type): serialise it under a lock.     */
        if (s_exec_script (self, "BEGIN") != 0) {
            return -1;
        }
        if (s_exec_script (self, "SELECT pg_advisory_xact_lock (hashtext ("
                                 "'safeshare schema_migrations'))") != 0) {
            cm_db_rollback (self);
            return -1;
        }
    }
    if (s_exec_script (
            self, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                  " service TEXT NOT NULL, version INTEGER NOT NULL,"
                  " applied_at BIGINT NOT NULL, PRIMARY KEY (service, version))") != 0) {
        if (self->backend == S_PG) {
            cm_db_rollback (self);
        }
        return -1;
    }
    if (self->backend == S_PG && cm_db_commit (self) != 0) {
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        char version[24], now[24];
        snprintf (version, sizeof version, "%zu", i + 1);
        snprintf (now, sizeof now, "%llu", (unsigned long long)cm_now_s ());
        const char *p[] = {service, version, now};
        /* Checked inside the transaction: two processes migrating at
           once serialise on BEGIN IMMEDIATE and the second skips.      */
        if (cm_db_begin (self) != 0) {
            return -1;
        }
        cm_db_res_t *res = NULL;
        if (self->backend == S_PG) {
            /* PostgreSQL has no BEGIN IMMEDIATE: a transaction-scoped lock
               keyed on the service makes a second replica wait here; under
               READ COMMITTED its check below then sees the first one's
               commit and skips the version.                            */
            const char *lp[] = {service};
            res =
                cm_db_query (self, "SELECT pg_advisory_xact_lock (hashtext ($1))", 1, lp);
            if (cm_db_res_status (res) != CM_DB_OK) {
                cm_db_res_free (&res);
                cm_db_rollback (self);
                return -1;
            }
            cm_db_res_free (&res);
        }
        res = cm_db_query (
            self, "SELECT 1 FROM schema_migrations WHERE service = $1 AND version = $2",
            2, p);
        bool done = cm_db_res_status (res) == CM_DB_OK && cm_db_res_rows (res) > 0;
        bool failed = cm_db_res_status (res) != CM_DB_OK;
        cm_db_res_free (&res);
        if (!failed && !done) {
            failed =
                s_exec_script (self, sql[i]) != 0 ||
                cm_db_exec (self,
                            "INSERT INTO schema_migrations (service, version, applied_at)"
                            " VALUES ($1, $2, $3)",
                            3, p) != CM_DB_OK;
            if (!failed) {
                cm_info (NULL, "%s schema migrated to version %zu", service, i + 1);
            }
        }
        if (failed) {
            cm_error (NULL, "%s migration %zu failed", service, i + 1);
            cm_db_rollback (self);
            return -1;
        }
        if (cm_db_commit (self) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- PostgreSQL backend (libpq) ---------------------------------------- */

/* NOTICEs (e.g. "relation already exists, skipping") are not errors.    */
static void
s_pg_notice (void *arg, const char *message)
{
    (void)arg;
    cm_debug (NULL, "postgresql: %.*s", (int)strcspn (message, "\n"), message);
}

/* libpq's message for a connection that failed, unless it would repeat
   the password (it does not today; this keeps it so).                  */
static const char *
s_pg_safe_error (PGconn *conn, const char *password)
{
    const char *msg = conn ? PQerrorMessage (conn) : "out of memory";
    if (password && *password && strstr (msg, password)) {
        return "(message withheld: it contains the password)";
    }
    return msg;
}

static cm_db_t *
s_pg_open (const char *url)
{
    cm_db_t *self = NULL;
    PQconninfoOption *opts = NULL;
    char *errmsg = NULL;
    /* Parsed first so that a malformed URL is reported without echoing
       it (libpq's parse errors quote the offending part).              */
    opts = PQconninfoParse (url, &errmsg);
    if (!opts) {
        cm_error (NULL, "PQconninfoParse() failed: malformed PostgreSQL URL");
        PQfreemem (errmsg);
        return NULL;
    }
    const char *host = NULL, *port = NULL, *dbname = NULL, *password = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val) {
            continue;
        }
        if (strcmp (o->keyword, "host") == 0 ||
            (!host && strcmp (o->keyword, "hostaddr") == 0)) {
            host = o->val;
        } else if (strcmp (o->keyword, "port") == 0) {
            port = o->val;
        } else if (strcmp (o->keyword, "dbname") == 0) {
            dbname = o->val;
        } else if (strcmp (o->keyword, "password") == 0) {
            password = o->val;
        }
    }
    char label[300];
    snprintf (label, sizeof label, "postgresql %s:%s/%s", host ? host : "(default)",
              port ? port : "(default)", dbname ? dbname : "(default)");

    self = calloc (1, sizeof *self);
    if (!self || !(self->path = strdup (label))) {
        goto fail;
    }
    self->backend = S_PG;
    /* The URL comes last so anything it sets wins over our defaults.    */
    const char *const keys[] = {"connect_timeout", "client_encoding", "dbname", NULL};
    const char *const vals[] = {"10", "UTF8", url, NULL};
    self->pg = PQconnectdbParams (keys, vals, 1);
    if (!self->pg || PQstatus (self->pg) != CONNECTION_OK) {
        cm_error (NULL, "PQconnectdbParams() failed for %s: %.*s", label,
                  (int)strcspn (s_pg_safe_error (self->pg, password), "\n"),
                  s_pg_safe_error (self->pg, password));
        goto fail;
    }
    PQsetNoticeProcessor (self->pg, s_pg_notice, NULL);
    cm_debug (NULL, "connected to %s", label);
    PQconninfoFree (opts);
    return self;
fail:
    PQconninfoFree (opts);
    cm_db_destroy (&self);
    return NULL;
}

static cm_db_status_t
s_pg_status (const PGresult *r)
{
    const char *state = r ? PQresultErrorField (r, PG_DIAG_SQLSTATE) : NULL;
    if (!state) {
        return CM_DB_ERROR;
    }
    if (strncmp (state, "23", 2) == 0) {
        return CM_DB_CONSTRAINT; /* integrity constraint violation */
    }
    /* serialization_failure, deadlock_detected, lock_not_available */
    if (strcmp (state, "40001") == 0 || strcmp (state, "40P01") == 0 ||
        strcmp (state, "55P03") == 0) {
        return CM_DB_BUSY;
    }
    return CM_DB_ERROR;
}

static void
s_pg_log_error (cm_db_t *self, const char *call, const PGresult *r)
{
    const char *msg = r ? PQresultErrorMessage (r) : "";
    if (!*msg) {
        msg = PQerrorMessage (self->pg);
    }
    cm_error (NULL, "%s failed on %s: %.*s", call, self->path, (int)strcspn (msg, "\n"),
              msg);
}

static int
s_pg_exec_script (cm_db_t *self, const char *sql)
{
    PGresult *r = PQexec (self->pg, sql);
    ExecStatusType st = r ? PQresultStatus (r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        s_pg_log_error (self, "PQexec()", r);
        rc = -1;
    }
    PQclear (r);
    return rc;
}

#define S_PG_MAX_PARAMS 64
#define S_PG_TEXT_OID   25 /* pg_type.oid of text (catalog/pg_type_d.h) */

/* True if sql contains $n not followed by another digit. A match inside a
   string literal only costs the type inference, so a plain scan will do. */
static bool
s_sql_uses_param (const char *sql, int n)
{
    char tag[16];
    int len = snprintf (tag, sizeof tag, "$%d", n);
    for (const char *at = strstr (sql, tag); at; at = strstr (at + 1, tag)) {
        if (at[len] < '0' || at[len] > '9') {
            return true;
        }
    }
    return false;
}

static cm_db_res_t *
s_pg_query (cm_db_t *self, const char *sql, int nparams, const char *const *params)
{
    /* Type 0: the server infers each type from its use, and the text is
       converted as if it were a quoted literal. A value the SQL never
       uses has no use to infer from and PostgreSQL rejects the statement
       (SQLite ignores it): those are sent as text so both agree.        */
    Oid types[S_PG_MAX_PARAMS] = {0};
    if (nparams > S_PG_MAX_PARAMS) {
        cm_error (NULL, "cm_db_query() called with %d parameters (max %d)", nparams,
                  S_PG_MAX_PARAMS);
        return s_res_new (CM_DB_ERROR);
    }
    for (int i = 0; i < nparams; i++) {
        if (!s_sql_uses_param (sql, i + 1)) {
            types[i] = S_PG_TEXT_OID;
        }
    }
    PGresult *r = PQexecParams (self->pg, sql, nparams, types,
                                (const char *const *)params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus (r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        cm_db_res_t *res = s_res_new (s_pg_status (r));
        /* As on SQLite, a constraint is an answer the caller handles.   */
        if (res->status != CM_DB_CONSTRAINT) {
            s_pg_log_error (self, "PQexecParams()", r);
            /* The statement (never the values) says which call it was.  */
            cm_debug (NULL, "failed statement: %.200s", sql);
        }
        PQclear (r);
        return res;
    }
    cm_db_res_t *res = s_res_new (CM_DB_OK);
    res->rows = PQntuples (r);
    res->cols = PQnfields (r);
    res->changes = atoi (PQcmdTuples (r)); /* "" when not applicable */
    if (res->rows > 0 && res->cols > 0) {
        res->cells = calloc ((size_t)res->rows * (size_t)res->cols, sizeof *res->cells);
        if (!res->cells) {
            abort ();
        }
        for (int row = 0; row < res->rows; row++) {
            for (int c = 0; c < res->cols; c++) {
                if (!PQgetisnull (r, row, c)) {
                    char *v = strdup (PQgetvalue (r, row, c));
                    if (!v) {
                        abort ();
                    }
                    res->cells[row * res->cols + c] = v;
                }
            }
        }
    }
    PQclear (r);
    return res;
}

static int
s_pg_commit (cm_db_t *self)
{
    PGresult *r = PQexec (self->pg, "COMMIT");
    int rc = 0;
    if (!r || PQresultStatus (r) != PGRES_COMMAND_OK) {
        s_pg_log_error (self, "PQexec(COMMIT)", r);
        rc = -1;
    } else if (strcmp (PQcmdStatus (r), "ROLLBACK") == 0) {
        /* COMMIT of a transaction in which a statement failed "succeeds"
           as a rollback: the caller's writes are gone, so it failed.    */
        cm_error (NULL, "COMMIT rolled back on %s: a statement in the transaction failed",
                  self->path);
        rc = -1;
    }
    PQclear (r);
    /* A failed COMMIT normally ends the transaction already; make sure,
       so the next BEGIN on this connection works.                       */
    if (PQtransactionStatus (self->pg) != PQTRANS_IDLE) {
        s_pg_exec_script (self, "ROLLBACK");
    }
    return rc;
}
