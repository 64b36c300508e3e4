/*  cm_db -- the services' database layer: SQLite or PostgreSQL (libpq)
    behind the same calls, chosen by the URL.

    SQL is written once for both: parameters are $1, $2, ... and every
    parameter and result is text (like PQexecParams), NULL for SQL NULL.
    Keep to the common dialect (TEXT/INTEGER/BIGINT, no AUTOINCREMENT,
    ON CONFLICT DO NOTHING, RETURNING).                                  */
#ifndef CM_DB_H
#define CM_DB_H

#include <stddef.h>

typedef struct cm_db_t cm_db_t;
typedef struct cm_db_res_t cm_db_res_t;

typedef enum {
    CM_DB_OK = 0,
    CM_DB_CONSTRAINT = 1, /* unique / foreign key violation */
    CM_DB_BUSY = 2,       /* locked / serialization failure: retry */
    CM_DB_ERROR = 3
} cm_db_status_t;

/* url: "sqlite:PATH" (creates the file 0600, WAL, busy timeout, foreign
   keys on) or a libpq URL "postgresql://USER:PASS@HOST:PORT/DB?..." (or
   "postgres://"; connect_timeout 10 s unless the URL sets one). NULL on
   failure, logged with host/port/db only, never the password.
   A value in params that the SQL never references is ignored on both.  */
cm_db_t *cm_db_open (const char *url);
void cm_db_destroy (cm_db_t **self_p);

/* Versioned migrations: sql[i] is version i+1; each runs once, in a
   transaction, recorded in schema_migrations(service, version); replicas
   migrating at once serialise (BEGIN IMMEDIATE / pg_advisory_xact_lock
   on the service name). sql[i] may hold several statements.  0/-1.     */
int cm_db_migrate (cm_db_t *self, const char *service, const char *const *sql,
                   size_t count);

/* Runs one statement. Always returns a result (check its status).       */
cm_db_res_t *cm_db_query (cm_db_t *self, const char *sql, int nparams,
                          const char *const *params);
/* Convenience: status of a statement whose rows are not needed.         */
cm_db_status_t cm_db_exec (cm_db_t *self, const char *sql, int nparams,
                           const char *const *params);

cm_db_status_t cm_db_res_status (const cm_db_res_t *res);
int cm_db_res_rows (const cm_db_res_t *res);
/* Rows changed by INSERT/UPDATE/DELETE. */
int cm_db_res_changes (const cm_db_res_t *res);
/* Borrowed text of (row, col), NULL for SQL NULL or out of range.       */
const char *cm_db_res_get (const cm_db_res_t *res, int row, int col);
void cm_db_res_free (cm_db_res_t **res_p);

/* After a secret was erased from a row: make the old bytes unreadable
   from the database files as far as the backend allows. SQLite zeroes
   deleted cells (secure_delete, always on) and here checkpoints and
   truncates the WAL, which still holds old page images (-1 if a reader
   kept it busy; the next scrub or checkpoint finishes the job).
   PostgreSQL: no-op; old row versions stay until VACUUM reclaims them. */
int cm_db_scrub (cm_db_t *self);

/* Transactions (BEGIN IMMEDIATE on SQLite, BEGIN at READ COMMITTED on
   PostgreSQL). 0 / -1. A commit that fails rolls the transaction back,
   so the connection stays usable. On PostgreSQL a failed statement
   (even CM_DB_CONSTRAINT) aborts the whole transaction: its commit then
   answers -1; SQLite keeps the other statements. Portable callers roll
   back after any failed statement in a transaction.                     */
int cm_db_begin (cm_db_t *self);
int cm_db_commit (cm_db_t *self);
int cm_db_rollback (cm_db_t *self);

#endif
