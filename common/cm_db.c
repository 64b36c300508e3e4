/*  cm_db -- SQLite backend (the embedded default). The interface is the
    one libpq offers (text parameters $1.., text results), so the
    PostgreSQL backend of issue 3 slots in behind the same calls.        */
#include "cm_db.h"
#include "cm_log.h"
#include "cm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cm_db_t {
    sqlite3 *sqlite;
    char *path;
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

static int
s_exec_script (cm_db_t *self, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec (self->sqlite, sql, NULL, NULL, &err) != SQLITE_OK) {
        cm_error (NULL, "sqlite3_exec() failed on %s: %s", self->path, err ? err : "?");
        sqlite3_free (err);
        return -1;
    }
    return 0;
}

cm_db_t *
cm_db_open (const char *url)
{
    if (strncmp (url, "postgresql://", 13) == 0 ||
        strncmp (url, "postgres://", 11) == 0) {
        cm_error (NULL, "PostgreSQL is not supported by this build yet: use sqlite:PATH");
        return NULL;
    }
    if (strncmp (url, "sqlite:", 7) != 0 || !url[7]) {
        cm_error (NULL, "unsupported database URL (want sqlite:PATH)");
        return NULL;
    }
    const char *path = url + 7;
    /* Create the file ourselves so it is 0600 whatever the umask. */
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        cm_error (NULL, "open(%s) failed: %s", path, strerror (errno));
        return NULL;
    }
    close (fd);
    cm_db_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->path = strdup (path);
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
    if (s_exec_script (self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                             "PRAGMA foreign_keys=ON;") != 0) {
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

cm_db_res_t *
cm_db_query (cm_db_t *self, const char *sql, int nparams, const char *const *params)
{
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
cm_db_begin (cm_db_t *self)
{
    return s_exec_script (self, "BEGIN IMMEDIATE");
}

int
cm_db_commit (cm_db_t *self)
{
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
    if (s_exec_script (
            self, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                  " service TEXT NOT NULL, version INTEGER NOT NULL,"
                  " applied_at BIGINT NOT NULL, PRIMARY KEY (service, version))") != 0) {
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
        cm_db_res_t *res = cm_db_query (
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
