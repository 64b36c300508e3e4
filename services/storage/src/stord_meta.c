/*  stord_meta -- file metadata and share links (see stord_meta.h).     */
#include "stord_meta.h"
#include "cm_db.h"
#include "cm_log.h"
#include "cm_util.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed statement's answer: a locked / busy DB can work on retry
   (CM_UNAVAILABLE), anything else is CM_INTERNAL.                       */
static cm_status_t
s_db_failure (cm_db_status_t st)
{
    return st == CM_DB_BUSY ? CM_UNAVAILABLE : CM_INTERNAL;
}

/* CM_OK, or a failed statement's answer, logged naming `what`.         */
static cm_status_t
s_res_status (const char *req, const cm_db_res_t *res, const char *what)
{
    if (cm_db_res_status (res) == CM_DB_OK) {
        return CM_OK;
    }
    cm_error (req, "cm_db_query(%s) failed", what);
    return s_db_failure (cm_db_res_status (res));
}

static cm_status_t s_select_rows (stord_meta_t *self, const char *req, const char *what,
                                  const char *sql, int nparams, const char *const *params,
                                  size_t elem_size, cm_db_res_t **res, void **arr,
                                  int *rows);

/* Versioned schema; append new versions, never edit a shipped one.
   Common dialect for SQLite and PostgreSQL: TEXT/BIGINT/INTEGER.       */
static const char *const s_migrations[] = {
    "CREATE TABLE files ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " content_type TEXT NOT NULL,"
    " size BIGINT NOT NULL DEFAULT 0,"
    " sha256 TEXT NOT NULL DEFAULT '',"
    " owner_id TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " chunk_size BIGINT NOT NULL,"
    " chunk_count BIGINT NOT NULL DEFAULT 0,"
    " kek_id TEXT NOT NULL DEFAULT '',"
    " wrapped_dek TEXT NOT NULL DEFAULT '',"
    " blob_size BIGINT NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'committed')));"
    "CREATE INDEX files_by_state_time ON files (state, created_at, id);"
    "CREATE TABLE links ("
    " id TEXT PRIMARY KEY,"
    " file_id TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,"
    " token_hash TEXT NOT NULL UNIQUE,"
    " creator_id TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL,"
    " max_downloads BIGINT NOT NULL,"
    " downloads BIGINT NOT NULL DEFAULT 0,"
    " revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX links_by_file ON links (file_id);",
    /* 2: DEKs per KEK (keys list / retire) without a full scan.         */
    "CREATE INDEX files_by_kek ON files (kek_id);",
    /* 3: per-file visibility; links restricted to signed-in users, the
       revocation time (links revoked before this version get their
       creation time: the real one was not kept), listing by file.     */
    "ALTER TABLE files ADD COLUMN visibility TEXT NOT NULL DEFAULT 'clients'"
    " CHECK (visibility IN ('clients', 'staff'));"
    "ALTER TABLE links ADD COLUMN signed_in_only INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE links ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;"
    "UPDATE links SET revoked_at = created_at WHERE revoked <> 0;"
    "CREATE INDEX links_by_file_time ON links (file_id, created_at, id);"
    "DROP INDEX links_by_file;",
    /* 4: which storage process began a pending upload, so a restarting
       one drops its own dead uploads at once and leaves the live ones of
       its replicas to the age rule ('' = before this version).        */
    "ALTER TABLE files ADD COLUMN instance TEXT NOT NULL DEFAULT '';",
};

#define S_FILE_COLS                                                                      \
    "id, name, content_type, size, sha256, owner_id, created_at, chunk_size,"            \
    " chunk_count, kek_id, wrapped_dek, blob_size, state, visibility, instance"

#define S_LINK_COLS                                                                      \
    "id, file_id, creator_id, created_at, expires_at, max_downloads, downloads,"         \
    " signed_in_only, revoked, revoked_at"

struct stord_meta_t {
    cm_db_t *db;
};

stord_meta_t *
stord_meta_new (const char *url)
{
    stord_meta_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->db = cm_db_open (url);
    if (!self->db) {
        goto fail;
    }
    if (cm_db_migrate (self->db, "storage", s_migrations,
                       sizeof s_migrations / sizeof s_migrations[0]) != 0) {
        cm_error (NULL, "cm_db_migrate(storage) failed");
        goto fail;
    }
    return self;
fail:
    stord_meta_destroy (&self);
    return NULL;
}

void
stord_meta_destroy (stord_meta_t **self_p)
{
    if (self_p && *self_p) {
        cm_db_destroy (&(*self_p)->db);
        free (*self_p);
        *self_p = NULL;
    }
}

/* Strict unsigned decimal (DB rows are outside input too).             */
static int
s_parse_u64 (const char *s, uint64_t *out)
{
    if (!s || !*s || strlen (s) > 20) {
        return -1;
    }
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int
s_copy (char *out, size_t outlen, const char *s)
{
    if (!s || strlen (s) >= outlen) {
        return -1;
    }
    memcpy (out, s, strlen (s) + 1);
    return 0;
}

/* One row of S_FILE_COLS into *file; -1 if the row is not well formed. */
static int
s_row_to_file (const cm_db_res_t *res, int row, stord_file_t *file)
{
    memset (file, 0, sizeof *file);
    uint64_t chunk_size = 0;
    const char *dek = cm_db_res_get (res, row, 10);
    const char *state = cm_db_res_get (res, row, 12);
    if (s_copy (file->id, sizeof file->id, cm_db_res_get (res, row, 0)) != 0 ||
        s_copy (file->name, sizeof file->name, cm_db_res_get (res, row, 1)) != 0 ||
        s_copy (file->content_type, sizeof file->content_type,
                cm_db_res_get (res, row, 2)) != 0 ||
        s_parse_u64 (cm_db_res_get (res, row, 3), &file->size) != 0 ||
        s_copy (file->sha256, sizeof file->sha256, cm_db_res_get (res, row, 4)) != 0 ||
        s_copy (file->owner_id, sizeof file->owner_id, cm_db_res_get (res, row, 5)) !=
            0 ||
        s_parse_u64 (cm_db_res_get (res, row, 6), &file->created_at) != 0 ||
        s_parse_u64 (cm_db_res_get (res, row, 7), &chunk_size) != 0 ||
        chunk_size > UINT32_MAX ||
        s_parse_u64 (cm_db_res_get (res, row, 8), &file->chunk_count) != 0 ||
        s_copy (file->kek_id, sizeof file->kek_id, cm_db_res_get (res, row, 9)) != 0 ||
        !dek || strlen (dek) % 2 != 0 || strlen (dek) / 2 > sizeof file->wrapped_dek ||
        s_parse_u64 (cm_db_res_get (res, row, 11), &file->blob_size) != 0 || !state ||
        s_copy (file->visibility, sizeof file->visibility,
                cm_db_res_get (res, row, 13)) != 0 ||
        !stord_visibility_valid (file->visibility) ||
        s_copy (file->instance, sizeof file->instance, cm_db_res_get (res, row, 14)) !=
            0) {
        return -1;
    }
    file->chunk_size = (uint32_t)chunk_size;
    file->wrapped_dek_len = strlen (dek) / 2;
    if (file->wrapped_dek_len > 0 &&
        cm_hex_decode (file->wrapped_dek, file->wrapped_dek_len, dek) != 0) {
        return -1;
    }
    if (strcmp (state, "pending") == 0) {
        file->state = STORD_STATE_PENDING;
    } else if (strcmp (state, "committed") == 0) {
        file->state = STORD_STATE_COMMITTED;
    } else {
        return -1;
    }
    return 0;
}

bool
stord_visibility_valid (const char *s)
{
    return s && (strcmp (s, "clients") == 0 || strcmp (s, "staff") == 0);
}

static const char *
s_state_name (stord_state_t state)
{
    return state == STORD_STATE_COMMITTED ? "committed" : "pending";
}

cm_status_t
stord_meta_file_insert (stord_meta_t *self, const char *req, const stord_file_t *file)
{
    char chunk_size[16], created_at[24];
    snprintf (chunk_size, sizeof chunk_size, "%u", file->chunk_size);
    snprintf (created_at, sizeof created_at, "%llu",
              (unsigned long long)file->created_at);
    const char *vis = file->visibility[0] ? file->visibility : "clients";
    if (!stord_visibility_valid (vis)) {
        return CM_INVALID;
    }
    const char *p[] = {
        file->id,   file->name, file->content_type, file->owner_id, chunk_size,
        created_at, vis,        file->instance};
    cm_db_status_t st =
        cm_db_exec (self->db,
                    "INSERT INTO files (id, name, content_type, owner_id,"
                    " chunk_size, created_at, state, visibility, instance)"
                    " VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
                    8, p);
    if (st == CM_DB_CONSTRAINT) {
        return CM_CONFLICT;
    }
    if (st != CM_DB_OK) {
        cm_error (req, "cm_db_exec(INSERT files) failed");
        return s_db_failure (st);
    }
    return CM_OK;
}

cm_status_t
stord_meta_file_get (stord_meta_t *self, const char *req, const char *id,
                     bool committed_only, stord_file_t *file)
{
    const char *p[] = {id};
    cm_db_res_t *res =
        cm_db_query (self->db,
                     committed_only ? "SELECT " S_FILE_COLS
                                      " FROM files WHERE id = $1 AND state = 'committed'"
                                    : "SELECT " S_FILE_COLS " FROM files WHERE id = $1",
                     1, p);
    cm_status_t status = s_res_status (req, res, "SELECT files");
    if (status == CM_OK && cm_db_res_rows (res) == 0) {
        status = CM_NOT_FOUND;
    } else if (status == CM_OK && s_row_to_file (res, 0, file) != 0) {
        cm_error (req, "files row %s is malformed", id);
        status = CM_INTERNAL;
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_file_commit (stord_meta_t *self, const char *req, const stord_file_t *file,
                        uint64_t now_s)
{
    char size[24], chunk_count[24], blob_size[24], now[24];
    char dek[2 * STORD_WRAPPED_DEK_MAX + 1];
    if (file->wrapped_dek_len > STORD_WRAPPED_DEK_MAX) {
        return CM_INVALID;
    }
    snprintf (size, sizeof size, "%llu", (unsigned long long)file->size);
    snprintf (chunk_count, sizeof chunk_count, "%llu",
              (unsigned long long)file->chunk_count);
    snprintf (blob_size, sizeof blob_size, "%llu", (unsigned long long)file->blob_size);
    snprintf (now, sizeof now, "%llu", (unsigned long long)now_s);
    cm_hex_encode (dek, file->wrapped_dek, file->wrapped_dek_len);
    const char *p[] = {file->id,     size, file->sha256, chunk_count,
                       file->kek_id, dek,  blob_size,    now};
    cm_db_res_t *res =
        cm_db_query (self->db,
                     "UPDATE files SET size = $2, sha256 = $3, chunk_count = $4,"
                     " kek_id = $5, wrapped_dek = $6, blob_size = $7, created_at = $8,"
                     " state = 'committed' WHERE id = $1 AND state = 'pending'",
                     8, p);
    cm_status_t status = s_res_status (req, res, "UPDATE files commit");
    if (status == CM_OK && cm_db_res_changes (res) == 0) {
        status = CM_NOT_FOUND;
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_file_update (stord_meta_t *self, const char *req, const char *id,
                        const char *name, const char *visibility, stord_file_t *file)
{
    if (visibility && *visibility && !stord_visibility_valid (visibility)) {
        return CM_INVALID;
    }
    const char *p[] = {id, name ? name : "", visibility ? visibility : ""};
    cm_db_res_t *res =
        cm_db_query (self->db,
                     "UPDATE files SET name = CASE WHEN $2 = '' THEN name ELSE $2 END,"
                     " visibility = CASE WHEN $3 = '' THEN visibility ELSE $3 END"
                     " WHERE id = $1 AND state = 'committed' RETURNING " S_FILE_COLS,
                     3, p);
    cm_status_t status = s_res_status (req, res, "UPDATE files update");
    if (status == CM_OK && cm_db_res_rows (res) == 0) {
        status = CM_NOT_FOUND;
    } else if (status == CM_OK && s_row_to_file (res, 0, file) != 0) {
        cm_error (req, "files row %s is malformed", id);
        status = CM_INTERNAL;
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_file_delete (stord_meta_t *self, const char *req, const char *id,
                        stord_state_t state)
{
    const char *p[] = {id, s_state_name (state)};
    if (cm_db_begin (self->db) != 0) {
        cm_error (req, "cm_db_begin() failed");
        return CM_INTERNAL;
    }
    /* Links first (they point at the row), then the row: with it goes
       the only wrapped copy of the file's data key.                    */
    cm_status_t status = CM_OK;
    cm_db_res_t *res = NULL;
    if (cm_db_exec (self->db,
                    "DELETE FROM links WHERE file_id IN"
                    " (SELECT id FROM files WHERE id = $1 AND state = $2)",
                    2, p) != CM_DB_OK) {
        cm_error (req, "cm_db_exec(DELETE links) failed");
        status = CM_INTERNAL;
        goto cleanup;
    }
    res = cm_db_query (self->db, "DELETE FROM files WHERE id = $1 AND state = $2", 2, p);
    status = s_res_status (req, res, "DELETE files");
    if (status == CM_OK && cm_db_res_changes (res) == 0) {
        status = CM_NOT_FOUND;
    }
cleanup:
    cm_db_res_free (&res);
    if (status == CM_OK) {
        if (cm_db_commit (self->db) != 0) {
            cm_error (req, "cm_db_commit() failed");
            cm_db_rollback (self->db);
            status = CM_INTERNAL;
        }
    } else {
        cm_db_rollback (self->db);
    }
    if (status == CM_OK) {
        /* The zeroed cell is in the main file; the WAL still holds the
           page with the wrapped DEK until checkpointed and truncated.  */
        stord_meta_scrub (self);
    }
    return status;
}

int
stord_meta_scrub (stord_meta_t *self)
{
    return cm_db_scrub (self->db);
}

/* "<created_at>.<id>" -> parts; -1 if malformed.                        */
static int
s_cursor_parse (const char *cursor, char time_out[24], char id_out[STORD_ID_HEX + 1])
{
    const char *dot = strchr (cursor, '.');
    size_t tlen = dot ? (size_t)(dot - cursor) : 0;
    uint64_t t;
    if (!dot || tlen == 0 || tlen > 19 || strlen (dot + 1) != STORD_ID_HEX ||
        !cm_is_hex_id (dot + 1, STORD_ID_HEX)) {
        return -1;
    }
    memcpy (time_out, cursor, tlen);
    time_out[tlen] = '\0';
    if (s_parse_u64 (time_out, &t) != 0 || t > (uint64_t)INT64_MAX) {
        return -1;
    }
    memcpy (id_out, dot + 1, STORD_ID_HEX + 1);
    return 0;
}

cm_status_t
stord_meta_file_list (stord_meta_t *self, const char *req, const char *cursor,
                      uint32_t limit, stord_file_t **files, size_t *count,
                      char next_cursor[STORD_CURSOR_MAX + 1])
{
    return stord_meta_file_find (self, req, NULL, cursor, limit, files, count,
                                 next_cursor);
}

/* '%' + needle with %, _ and \ escaped by \ + '%': a LIKE pattern that
   matches needle as a substring. out: 2 * STORD_NAME_MAX + 3 bytes.   */
static int
s_like_pattern (const char *needle, char *out, size_t outlen)
{
    size_t n = 0;
    if (strlen (needle) > STORD_NAME_MAX || outlen < 2 * STORD_NAME_MAX + 3) {
        return -1;
    }
    out[n++] = '%';
    for (const char *c = needle; *c; c++) {
        if (*c == '%' || *c == '_' || *c == '\\') {
            out[n++] = '\\';
        }
        out[n++] = *c;
    }
    out[n++] = '%';
    out[n] = '\0';
    return 0;
}

cm_status_t
stord_meta_file_find (stord_meta_t *self, const char *req, const stord_filter_t *filter,
                      const char *cursor, uint32_t limit, stord_file_t **files,
                      size_t *count, char next_cursor[STORD_CURSOR_MAX + 1])
{
    *files = NULL;
    *count = 0;
    next_cursor[0] = '\0';
    if (limit < 1 || limit > STORD_LIST_MAX) {
        return CM_INVALID;
    }
    char t[24], id[STORD_ID_HEX + 1], lim[16], like[2 * STORD_NAME_MAX + 3];
    char sql[600];
    const char *p[4];
    int np = 0;
    /* One more than asked tells whether there is a next page.         */
    snprintf (lim, sizeof lim, "%u", limit + 1);
    int len = snprintf (
        sql, sizeof sql, "SELECT " S_FILE_COLS " FROM files WHERE state = 'committed'%s",
        filter && filter->clients_only ? " AND visibility = 'clients'" : "");
    if (filter && filter->name && *filter->name) {
        if (s_like_pattern (filter->name, like, sizeof like) != 0) {
            return CM_INVALID;
        }
        p[np++] = like;
        /* lower() on both sides: SQLite's LIKE folds ASCII, PostgreSQL's
           folds nothing, so neither LIKE's own folding is relied on.    */
        len += snprintf (sql + len, sizeof sql - (size_t)len,
                         " AND lower(name) LIKE lower($%d) ESCAPE '\\'", np);
    }
    if (cursor && *cursor) {
        if (s_cursor_parse (cursor, t, id) != 0) {
            return CM_INVALID;
        }
        p[np++] = t;
        p[np++] = id;
        len += snprintf (sql + len, sizeof sql - (size_t)len,
                         " AND (created_at < $%d OR (created_at = $%d AND id < $%d))",
                         np - 1, np - 1, np);
    }
    p[np++] = lim;
    snprintf (sql + len, sizeof sql - (size_t)len,
              " ORDER BY created_at DESC, id DESC LIMIT $%d", np);
    cm_db_res_t *res = cm_db_query (self->db, sql, np, p);
    cm_status_t status = s_res_status (req, res, "SELECT files list");
    if (status != CM_OK) {
        goto cleanup;
    }
    int rows = cm_db_res_rows (res);
    size_t n = rows > (int)limit ? limit : (size_t)rows;
    if (n > 0) {
        *files = calloc (n, sizeof **files);
        if (!*files) {
            status = CM_INTERNAL;
            goto cleanup;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (s_row_to_file (res, (int)i, &(*files)[i]) != 0) {
            cm_error (req, "files row %zu of a listing is malformed", i);
            free (*files);
            *files = NULL;
            status = CM_INTERNAL;
            goto cleanup;
        }
    }
    *count = n;
    if (rows > (int)limit) {
        const stord_file_t *last = &(*files)[n - 1];
        snprintf (next_cursor, STORD_CURSOR_MAX + 1, "%llu.%s",
                  (unsigned long long)last->created_at, last->id);
    }
cleanup:
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_pending_before (stord_meta_t *self, const char *req, uint64_t cutoff_s,
                           const char *instance, int (*fn) (const char *id, void *arg),
                           void *arg)
{
    char cutoff[24];
    snprintf (cutoff, sizeof cutoff, "%llu", (unsigned long long)cutoff_s);
    const char *p[] = {cutoff, instance};
    cm_db_res_t *res =
        instance && *instance
            ? cm_db_query (self->db,
                           "SELECT id FROM files WHERE state = 'pending'"
                           " AND (created_at < $1 OR instance = $2)",
                           2, p)
            : cm_db_query (
                  self->db,
                  "SELECT id FROM files WHERE state = 'pending' AND created_at < $1", 1,
                  p);
    cm_status_t status = CM_OK;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (req, "cm_db_query(SELECT pending files) failed");
        status = CM_INTERNAL;
    }
    for (int i = 0; status == CM_OK && i < cm_db_res_rows (res); i++) {
        const char *id = cm_db_res_get (res, i, 0);
        if (id && cm_is_hex_id (id, STORD_ID_HEX) && fn (id, arg) != 0) {
            break;
        }
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_link_create (stord_meta_t *self, const char *req, const char *file_id,
                        const char *creator_id, uint64_t now_s, uint64_t expires_in,
                        uint32_t max_downloads, bool signed_in_only,
                        char link_id[STORD_ID_HEX + 1], char token[STORD_TOKEN_MAX + 1],
                        uint64_t *expires_at)
{
    char hash[65], now[24], exp[24], maxd[16];
    if (cm_random_hex (link_id, STORD_ID_HEX / 2) != 0 ||
        cm_random_token (token, STORD_TOKEN_MAX + 1, 32) != 0) {
        cm_error (req, "cm_random_token() failed");
        return CM_INTERNAL;
    }
    cm_sha256_hex (hash, token, strlen (token));
    *expires_at = now_s + expires_in;
    snprintf (now, sizeof now, "%llu", (unsigned long long)now_s);
    snprintf (exp, sizeof exp, "%llu", (unsigned long long)*expires_at);
    snprintf (maxd, sizeof maxd, "%u", max_downloads);
    const char *p[] = {link_id, file_id, hash, creator_id,
                       now,     exp,     maxd, signed_in_only ? "1" : "0"};
    /* One statement: the file is committed at the moment of insert.
       The casts type the SELECT list for PostgreSQL (no target typing). */
    cm_db_res_t *res = cm_db_query (
        self->db,
        "INSERT INTO links (id, file_id, token_hash, creator_id, created_at, expires_at,"
        " max_downloads, downloads, revoked, signed_in_only, revoked_at)"
        " SELECT $1, $2, $3, $4, CAST($5 AS BIGINT), CAST($6 AS BIGINT),"
        " CAST($7 AS BIGINT), 0, 0, CAST($8 AS INTEGER), 0 WHERE EXISTS"
        " (SELECT 1 FROM files WHERE id = $2 AND state = 'committed')",
        8, p);
    cm_status_t status = s_res_status (req, res, "INSERT links");
    if (status == CM_OK && cm_db_res_changes (res) == 0) {
        status = CM_NOT_FOUND;
    }
    cm_db_res_free (&res);
    OPENSSL_cleanse (hash, sizeof hash);
    if (status != CM_OK) {
        OPENSSL_cleanse (token, STORD_TOKEN_MAX + 1);
    }
    return status;
}

/* One row of S_LINK_COLS into *link; -1 if the row is not well formed. */
static int
s_row_to_link (const cm_db_res_t *res, int row, stord_link_t *link)
{
    memset (link, 0, sizeof *link);
    uint64_t maxd, downloads, signed_in_only, revoked;
    if (s_copy (link->id, sizeof link->id, cm_db_res_get (res, row, 0)) != 0 ||
        s_copy (link->file_id, sizeof link->file_id, cm_db_res_get (res, row, 1)) != 0 ||
        s_copy (link->creator_id, sizeof link->creator_id, cm_db_res_get (res, row, 2)) !=
            0 ||
        s_parse_u64 (cm_db_res_get (res, row, 3), &link->created_at) != 0 ||
        s_parse_u64 (cm_db_res_get (res, row, 4), &link->expires_at) != 0 ||
        s_parse_u64 (cm_db_res_get (res, row, 5), &maxd) != 0 || maxd > UINT32_MAX ||
        s_parse_u64 (cm_db_res_get (res, row, 6), &downloads) != 0 ||
        downloads > UINT32_MAX ||
        s_parse_u64 (cm_db_res_get (res, row, 7), &signed_in_only) != 0 ||
        s_parse_u64 (cm_db_res_get (res, row, 8), &revoked) != 0 ||
        s_parse_u64 (cm_db_res_get (res, row, 9), &link->revoked_at) != 0) {
        return -1;
    }
    link->max_downloads = (uint32_t)maxd;
    link->downloads = (uint32_t)downloads;
    link->signed_in_only = signed_in_only != 0;
    link->revoked = revoked != 0;
    return 0;
}

const char *
stord_link_state (const stord_link_t *link, uint64_t now_s)
{
    if (link->revoked) {
        return "revoked";
    }
    if (link->expires_at <= now_s) {
        return "expired";
    }
    if (link->downloads >= link->max_downloads) {
        return "exhausted";
    }
    return "active";
}

/* The answer a redeem of this link gets now, in storage.md's order;
   CM_OK when it may be redeemed.                                       */
static cm_status_t
s_link_verdict (const stord_link_t *link, bool file_committed, bool signed_in,
                uint64_t now_s, const char **code)
{
    *code = NULL;
    if (!file_committed) {
        return *code = "link_not_found", CM_NOT_FOUND;
    }
    if (link->signed_in_only && !signed_in) {
        return *code = "link_requires_login", CM_UNAUTHENTICATED;
    }
    const char *state = stord_link_state (link, now_s);
    if (strcmp (state, "revoked") == 0) {
        return *code = "link_revoked", CM_GONE;
    }
    if (strcmp (state, "expired") == 0) {
        return *code = "link_expired", CM_GONE;
    }
    if (strcmp (state, "exhausted") == 0) {
        return *code = "link_exhausted", CM_GONE;
    }
    return CM_OK;
}

/* The link of token hash with its verdict (s_link_verdict). Sets *code. */
static cm_status_t
s_link_check (stord_meta_t *self, const char *req, const char *hash, uint64_t now_s,
              bool signed_in, stord_link_t *link, const char **code)
{
    const char *p[] = {hash};
    cm_db_res_t *res = cm_db_query (
        self->db,
        "SELECT " S_LINK_COLS ", (SELECT state FROM files WHERE files.id = links.file_id)"
        " FROM links WHERE token_hash = $1",
        1, p);
    cm_status_t status = s_res_status (req, res, "SELECT links by token");
    const char *state = cm_db_res_get (res, 0, 10);
    if (status != CM_OK) {
        *code = status == CM_UNAVAILABLE ? "storage_busy" : "storage_error";
    } else if (cm_db_res_rows (res) == 0) {
        status = CM_NOT_FOUND, *code = "link_not_found";
    } else if (s_row_to_link (res, 0, link) != 0) {
        cm_error (req, "links row is malformed");
        status = CM_INTERNAL, *code = "storage_error";
    } else {
        status = s_link_verdict (link, state && strcmp (state, "committed") == 0,
                                 signed_in, now_s, code);
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_link_redeem (stord_meta_t *self, const char *req, const char *token,
                        uint64_t now_s, const stord_redeem_t *how, stord_file_t *file,
                        stord_link_t *link, uint32_t *downloads_left, const char **code)
{
    char hash[65], now[24];
    cm_sha256_hex (hash, token, strlen (token));
    snprintf (now, sizeof now, "%llu", (unsigned long long)now_s);
    const char *p[] = {hash, now, how->signed_in ? "1" : "0"};
    cm_status_t status = CM_INTERNAL;
    *code = "storage_error";
    cm_db_res_t *res = NULL;
    if (how->peek) {
        status = s_link_check (self, req, hash, now_s, how->signed_in, link, code);
        if (status != CM_OK) {
            goto cleanup;
        }
    } else {
        /* The one atomic step: only a row that is still redeemable by
           this caller changes, so N concurrent redeems of a one-time
           link change it once. Every condition of s_link_verdict is in
           the WHERE: nothing is read first and written after.          */
        for (int attempt = 0; attempt < 3; attempt++) {
            cm_db_res_free (&res);
            res = cm_db_query (
                self->db,
                "UPDATE links SET downloads = downloads + 1"
                " WHERE token_hash = $1 AND revoked = 0 AND expires_at > $2"
                " AND downloads < max_downloads"
                " AND (signed_in_only = 0 OR CAST($3 AS INTEGER) = 1) AND file_id IN"
                " (SELECT id FROM files WHERE state = 'committed')"
                " RETURNING " S_LINK_COLS,
                3, p);
            if (cm_db_res_status (res) != CM_DB_BUSY) {
                break;
            }
        }
        status = s_res_status (req, res, "UPDATE links redeem");
        if (status != CM_OK) {
            *code = status == CM_UNAVAILABLE ? "storage_busy" : "storage_error";
            goto cleanup;
        }
        if (cm_db_res_rows (res) == 0) {
            /* Refused: say why. Nothing makes a refused link valid
               again, so a verdict of OK here cannot be a fact.         */
            status = s_link_check (self, req, hash, now_s, how->signed_in, link, code);
            if (status == CM_OK) {
                cm_error (req, "link refused a redeem but checks as valid");
                status = CM_INTERNAL, *code = "storage_error";
            }
            goto cleanup;
        }
        if (s_row_to_link (res, 0, link) != 0 ||
            !cm_is_hex_id (link->file_id, STORD_ID_HEX)) {
            cm_error (req, "links row is malformed");
            status = CM_INTERNAL;
            goto cleanup;
        }
    }
    status = stord_meta_file_get (self, req, link->file_id, true, file);
    if (status == CM_NOT_FOUND) {
        *code = "link_not_found"; /* deleted after our UPDATE */
    } else if (status == CM_OK) {
        *code = NULL;
        *downloads_left = link->downloads < link->max_downloads
                              ? link->max_downloads - link->downloads
                              : 0;
    } else {
        *code = status == CM_UNAVAILABLE ? "storage_busy" : "storage_error";
    }
cleanup:
    cm_db_res_free (&res);
    OPENSSL_cleanse (hash, sizeof hash);
    return status;
}

cm_status_t
stord_meta_link_get (stord_meta_t *self, const char *req, const char *link_id,
                     stord_link_t *link)
{
    const char *p[] = {link_id};
    cm_db_res_t *res =
        cm_db_query (self->db, "SELECT " S_LINK_COLS " FROM links WHERE id = $1", 1, p);
    cm_status_t status = s_res_status (req, res, "SELECT links");
    if (status == CM_OK && cm_db_res_rows (res) == 0) {
        status = CM_NOT_FOUND;
    } else if (status == CM_OK && s_row_to_link (res, 0, link) != 0) {
        cm_error (req, "links row %s is malformed", link_id);
        status = CM_INTERNAL;
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_link_list (stord_meta_t *self, const char *req, const char *file_id,
                      const char *creator_id, stord_link_t **links, size_t *count)
{
    *links = NULL;
    *count = 0;
    stord_file_t file;
    cm_status_t status = stord_meta_file_get (self, req, file_id, true, &file);
    if (status != CM_OK) {
        return status;
    }
    char lim[16];
    snprintf (lim, sizeof lim, "%d", STORD_LINK_LIST_MAX);
    const char *p[] = {file_id, creator_id ? creator_id : "", lim};
    cm_db_res_t *res = NULL;
    void *arr = NULL;
    int rows = 0;
    status = s_select_rows (self, req, "SELECT links list",
                            "SELECT " S_LINK_COLS " FROM links WHERE file_id = $1"
                            " AND ($2 = '' OR creator_id = $2)"
                            " ORDER BY created_at DESC, id DESC LIMIT $3",
                            3, p, sizeof **links, &res, &arr, &rows);
    *links = arr;
    for (int i = 0; status == CM_OK && i < rows; i++) {
        if (s_row_to_link (res, i, &(*links)[i]) != 0) {
            cm_error (req, "links row %d of a listing is malformed", i);
            status = CM_INTERNAL;
        }
    }
    if (status == CM_OK) {
        *count = (size_t)rows;
    } else {
        free (*links);
        *links = NULL;
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_link_revoke (stord_meta_t *self, const char *req, const char *link_id,
                        uint64_t now_s, stord_link_t *link)
{
    char now[24];
    snprintf (now, sizeof now, "%llu", (unsigned long long)now_s);
    const char *p[] = {link_id, now};
    /* Only a live link changes: a second revoke keeps the first time.  */
    cm_db_res_t *res = cm_db_query (
        self->db,
        "UPDATE links SET revoked = 1, revoked_at = $2 WHERE id = $1 AND revoked = 0", 2,
        p);
    cm_status_t status = s_res_status (req, res, "UPDATE links revoke");
    cm_db_res_free (&res);
    if (status != CM_OK) {
        return status;
    }
    stord_link_t mine;
    return stord_meta_link_get (self, req, link_id, link ? link : &mine);
}

/* Runs a SELECT and makes a zeroed array of its *rows rows of
   elem_size bytes each for the caller to fill: *arr (caller frees) is
   NULL when there are none. *res is the caller's to free either way.   */
static cm_status_t
s_select_rows (stord_meta_t *self, const char *req, const char *what, const char *sql,
               int nparams, const char *const *params, size_t elem_size,
               cm_db_res_t **res, void **arr, int *rows)
{
    *arr = NULL;
    *rows = 0;
    *res = cm_db_query (self->db, sql, nparams, params);
    cm_status_t status = s_res_status (req, *res, what);
    if (status != CM_OK) {
        return status;
    }
    int n = cm_db_res_rows (*res);
    if (n > 0) {
        *arr = calloc ((size_t)n, elem_size);
        if (!*arr) {
            return CM_INTERNAL;
        }
    }
    *rows = n;
    return CM_OK;
}

cm_status_t
stord_meta_kek_counts (stord_meta_t *self, const char *req, uint64_t pending_before_s,
                       stord_kek_count_t **counts, size_t *n, uint64_t *pending_no_dek)
{
    *counts = NULL;
    *n = 0;
    *pending_no_dek = 0;
    char before[24];
    snprintf (before, sizeof before, "%llu", (unsigned long long)pending_before_s);
    const char *p[] = {before};
    cm_db_res_t *res = NULL;
    void *arr = NULL;
    int rows = 0;
    /* One statement, so a row that commits meanwhile is counted once:
       either still pending without a DEK, or under its KEK.           */
    cm_status_t status = s_select_rows (
        self, req, "SELECT files kek counts",
        "SELECT kek_id, COUNT(*) FROM files WHERE kek_id <> ''"
        " OR (state = 'pending' AND created_at < $1) GROUP BY kek_id ORDER BY kek_id",
        1, p, sizeof **counts, &res, &arr, &rows);
    *counts = arr;
    for (int i = 0; status == CM_OK && i < rows; i++) {
        /* GROUP BY gives at most one '' row, so *n stays below rows.   */
        stord_kek_count_t *c = &(*counts)[*n];
        const char *kek = cm_db_res_get (res, i, 0);
        uint64_t count = 0;
        if (!kek || s_parse_u64 (cm_db_res_get (res, i, 1), &count) != 0 ||
            (*kek != '\0' && s_copy (c->kek_id, sizeof c->kek_id, kek) != 0)) {
            cm_error (req, "files kek count row %d is malformed", i);
            status = CM_INTERNAL;
        } else if (*kek == '\0') {
            *pending_no_dek = count;
        } else {
            c->count = count;
            (*n)++;
        }
    }
    if (status != CM_OK || *n == 0) {
        free (*counts);
        *counts = NULL;
        *n = status == CM_OK ? *n : 0;
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_rewrap_batch (stord_meta_t *self, const char *req, const char *current,
                         const char *after, uint32_t limit, stord_wrapped_t **rows,
                         size_t *count)
{
    *rows = NULL;
    *count = 0;
    if (!current || !after || limit < 1 || limit > STORD_REWRAP_MAX) {
        return CM_INVALID;
    }
    char lim[16];
    snprintf (lim, sizeof lim, "%u", limit);
    const char *p[] = {current, after, lim};
    cm_db_res_t *res = NULL;
    void *arr = NULL;
    int n = 0;
    cm_status_t status =
        s_select_rows (self, req, "SELECT files rewrap batch",
                       "SELECT id, kek_id, wrapped_dek FROM files WHERE kek_id <> ''"
                       " AND kek_id <> $1 AND id > $2 ORDER BY id LIMIT $3",
                       3, p, sizeof **rows, &res, &arr, &n);
    *rows = arr;
    for (int i = 0; status == CM_OK && i < n; i++) {
        stord_wrapped_t *w = &(*rows)[i];
        const char *dek = cm_db_res_get (res, i, 2);
        size_t hexlen = dek ? strlen (dek) : 0;
        if (s_copy (w->id, sizeof w->id, cm_db_res_get (res, i, 0)) != 0 ||
            !cm_is_hex_id (w->id, STORD_ID_HEX) ||
            s_copy (w->kek_id, sizeof w->kek_id, cm_db_res_get (res, i, 1)) != 0 ||
            hexlen == 0 || hexlen % 2 != 0 || hexlen / 2 > sizeof w->wrapped_dek ||
            cm_hex_decode (w->wrapped_dek, hexlen / 2, dek) != 0) {
            cm_error (req, "files row %d of a rewrap batch is malformed", i);
            status = CM_INTERNAL;
        } else {
            w->wrapped_dek_len = hexlen / 2;
        }
    }
    if (status == CM_OK) {
        *count = (size_t)n;
    } else {
        free (*rows);
        *rows = NULL;
    }
    cm_db_res_free (&res);
    return status;
}

cm_status_t
stord_meta_rewrap_replace (stord_meta_t *self, const char *req,
                           const stord_wrapped_t *old, const char *new_kek_id,
                           const uint8_t *new_wrapped, size_t new_len)
{
    char old_hex[2 * STORD_WRAPPED_DEK_MAX + 1], new_hex[2 * STORD_WRAPPED_DEK_MAX + 1];
    if (!old || !new_kek_id || !*new_kek_id || strlen (new_kek_id) > STORD_KEK_ID_MAX ||
        !new_wrapped || new_len < 1 || new_len > STORD_WRAPPED_DEK_MAX ||
        old->wrapped_dek_len < 1 || old->wrapped_dek_len > STORD_WRAPPED_DEK_MAX) {
        return CM_INVALID;
    }
    cm_hex_encode (old_hex, old->wrapped_dek, old->wrapped_dek_len);
    cm_hex_encode (new_hex, new_wrapped, new_len);
    const char *p[] = {old->id, new_kek_id, new_hex, old->kek_id, old_hex};
    cm_db_res_t *res = cm_db_query (self->db,
                                    "UPDATE files SET kek_id = $2, wrapped_dek = $3"
                                    " WHERE id = $1 AND kek_id = $4 AND wrapped_dek = $5",
                                    5, p);
    cm_status_t status = s_res_status (req, res, "UPDATE files rewrap");
    if (status == CM_OK && cm_db_res_changes (res) == 0) {
        status = CM_CONFLICT;
    }
    cm_db_res_free (&res);
    return status;
}
