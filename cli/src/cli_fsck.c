/*  cli_fsck -- offline consistency check of storage's DB and blobs.     */
#include "cli_fsck.h"
#include "cli_decrypt.h"
#include "cli_keys.h"
#include "cli_store.h"
#include "cm_util.h"
#include "cryptod_keyring.h"
#include "stord_backend.h"
#include "stord_meta.h"

#include <stdlib.h>
#include <string.h>

#define S_CMD "fsck"

typedef struct {
    char (*ids)[STORD_ID_HEX + 1];
    uint64_t *mtimes;
    size_t count, cap;
} s_idlist_t;

typedef struct {
    FILE *out;
    bool repair;
    size_t files;    /* committed files checked */
    size_t problems; /* lines reported */
    size_t removed;  /* repairs done */
    bool failed;     /* a check could not run */
} s_fsck_t;

static int
s_idlist_add (s_idlist_t *list, const char *id, uint64_t mtime)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 64;
        void *ids = realloc (list->ids, cap * sizeof *list->ids);
        if (!ids) {
            return -1;
        }
        list->ids = ids;
        void *mt = realloc (list->mtimes, cap * sizeof *list->mtimes);
        if (!mt) {
            return -1;
        }
        list->mtimes = mt;
        list->cap = cap;
    }
    memcpy (list->ids[list->count], id, STORD_ID_HEX + 1);
    list->mtimes[list->count++] = mtime;
    return 0;
}

static void
s_idlist_free (s_idlist_t *list)
{
    free (list->ids);
    free (list->mtimes);
    memset (list, 0, sizeof *list);
}

/* Scan callbacks only collect: nothing is removed mid-readdir.        */
static int
s_collect_blob (const char *id, uint64_t mtime_s, void *arg)
{
    return s_idlist_add (arg, id, mtime_s);
}

static int
s_collect_row (const char *id, void *arg)
{
    return s_idlist_add (arg, id, 0);
}

/* One committed file: its problem, if any, as one line.               */
static void
s_check_file (s_fsck_t *k, cryptod_keyring_t *ring, stord_backend_t *blobs,
              const stord_file_t *file)
{
    cli_check_info_t info;
    cli_check_t check = cli_decrypt_check (ring, blobs, file, -1, &info);
    k->files++;
    if (check == CLI_CHECK_OK) {
        return;
    }
    k->problems++;
    fprintf (k->out, "file %s: ", file->id);
    switch (check) {
        case CLI_CHECK_OK:
            break;
        case CLI_CHECK_ROW:
            fprintf (k->out, "inconsistent metadata (size, chunk size, chunk count, "
                             "blob size or sha256)\n");
            break;
        case CLI_CHECK_MISSING:
            fprintf (k->out, "missing blob\n");
            break;
        case CLI_CHECK_UNREADABLE:
            fprintf (k->out, "unreadable blob\n");
            break;
        case CLI_CHECK_SIZE:
            fprintf (k->out, "blob size differs from the layout (%llu bytes expected)\n",
                     (unsigned long long)file->blob_size);
            break;
        case CLI_CHECK_NO_KEK:
            fprintf (k->out, "KEK %s is not in the ring\n", file->kek_id);
            break;
        case CLI_CHECK_DEK:
            fprintf (k->out, "wrapped DEK does not authenticate\n");
            break;
        case CLI_CHECK_HEADER:
            fprintf (k->out, "blob header damaged or names another file\n");
            break;
        case CLI_CHECK_CHUNK:
            fprintf (k->out, "chunk %llu does not authenticate\n",
                     (unsigned long long)info.chunk);
            break;
        case CLI_CHECK_CONTENT:
            fprintf (k->out, "%s mismatch\n",
                     info.size != file->size ? "plaintext size" : "sha256");
            break;
        case CLI_CHECK_FAILED:
            fprintf (k->out, "check failed\n");
            k->failed = true;
            break;
    }
}

/* Every committed row, by pages of the list call.                      */
static int
s_check_files (s_fsck_t *k, stord_meta_t *meta, cryptod_keyring_t *ring,
               stord_backend_t *blobs)
{
    char cursor[STORD_CURSOR_MAX + 1] = "";
    do {
        stord_file_t *files = NULL;
        size_t n = 0;
        char next[STORD_CURSOR_MAX + 1];
        if (stord_meta_file_list (meta, NULL, cursor, STORD_LIST_MAX, &files, &n, next) !=
            CM_OK) {
            fprintf (stderr, "safeshare: fsck: cannot list the stored files\n");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            s_check_file (k, ring, blobs, &files[i]);
        }
        free (files);
        memcpy (cursor, next, sizeof cursor);
    } while (cursor[0]);
    return 0;
}

static void
s_removed (s_fsck_t *k, bool ok, const char *what, const char *name)
{
    if (ok) {
        k->removed++;
        fprintf (k->out, "removed %s %s\n", what, name);
    } else {
        k->failed = true;
        fprintf (k->out, "could not remove %s %s\n", what, name);
    }
}

/* Committed-path blobs with no row at all. A pending row means a commit
   may be in flight: that is the pending check's business.             */
static int
s_check_orphans (s_fsck_t *k, stord_meta_t *meta, stord_backend_t *blobs)
{
    s_idlist_t list = {0};
    int rc = -1;
    if (stord_backend_scan (blobs, NULL, false, s_collect_blob, &list) != 0) {
        fprintf (stderr, "safeshare: fsck: cannot scan the blob directory\n");
        goto cleanup;
    }
    for (size_t i = 0; i < list.count; i++) {
        const char *id = list.ids[i];
        stord_file_t file;
        cm_status_t st = stord_meta_file_get (meta, NULL, id, false, &file);
        if (st != CM_NOT_FOUND) {
            k->failed |= st != CM_OK;
            continue;
        }
        char path[4200];
        stord_backend_where (blobs, id, false, path, sizeof path);
        k->problems++;
        fprintf (k->out, "orphan blob %s\n", path);
        if (k->repair) {
            s_removed (k, stord_backend_remove (blobs, NULL, id) == STORD_OK,
                       "orphan blob", path);
        }
    }
    rc = 0;
cleanup:
    s_idlist_free (&list);
    return rc;
}

/* Partial blobs with no row, idle for the grace period; then pending
   rows older than it whose blob is gone or idle (the storage sweep's
   rules, so a live upload is never touched).                          */
static int
s_check_pending (s_fsck_t *k, stord_meta_t *meta, stord_backend_t *blobs, uint64_t cutoff)
{
    s_idlist_t list = {0};
    int rc = -1;
    if (stord_backend_scan (blobs, NULL, true, s_collect_blob, &list) != 0) {
        fprintf (stderr, "safeshare: fsck: cannot scan the blob directory\n");
        goto cleanup;
    }
    for (size_t i = 0; i < list.count; i++) {
        const char *id = list.ids[i];
        stord_file_t file;
        cm_status_t st = stord_meta_file_get (meta, NULL, id, false, &file);
        if (st != CM_NOT_FOUND || list.mtimes[i] >= cutoff) {
            /* A committed row's leftover part is not removed: abort
               would take the committed blob with it.                  */
            if (st == CM_OK && file.state == STORD_STATE_COMMITTED) {
                k->problems++;
                char path[4200];
                fprintf (k->out, "file %s: leftover partial blob %s\n", id,
                         stord_backend_where (blobs, id, true, path, sizeof path));
            }
            k->failed |= st != CM_OK && st != CM_NOT_FOUND;
            continue;
        }
        char path[4200];
        stord_backend_where (blobs, id, true, path, sizeof path);
        k->problems++;
        fprintf (k->out, "orphan blob %s\n", path);
        if (k->repair) {
            s_removed (k, stord_backend_abort (blobs, NULL, id) == STORD_OK,
                       "orphan blob", path);
        }
    }
    list.count = 0;
    if (stord_meta_pending_before (meta, NULL, cutoff, NULL, s_collect_row, &list) !=
        CM_OK) {
        fprintf (stderr, "safeshare: fsck: cannot list the pending uploads\n");
        goto cleanup;
    }
    for (size_t i = 0; i < list.count; i++) {
        const char *id = list.ids[i];
        uint64_t mtime = 0;
        stord_rc_t st = stord_backend_stat (blobs, NULL, id, true, NULL, &mtime);
        if (st == STORD_OK && mtime >= cutoff) {
            continue; /* a slow upload still being written */
        }
        if (st == STORD_ERROR) {
            k->failed = true;
            continue;
        }
        k->problems++;
        fprintf (k->out, "stale pending upload %s\n", id);
        if (k->repair) {
            stord_rc_t brc = stord_backend_abort (blobs, NULL, id);
            bool ok =
                (brc == STORD_OK || brc == STORD_NOT_FOUND) &&
                stord_meta_file_delete (meta, NULL, id, STORD_STATE_PENDING) == CM_OK;
            s_removed (k, ok, "stale pending upload", id);
        }
    }
    rc = 0;
cleanup:
    s_idlist_free (&list);
    return rc;
}

int
cli_fsck (cm_config_t *config, bool repair, uint64_t grace_s, FILE *out)
{
    int rc = 2;
    bool env = false;
    stord_meta_t *meta = NULL;
    stord_backend_t *blobs = NULL;
    cryptod_keyring_t *ring = cli_keys_ring (config, S_CMD, &env);
    meta = ring ? cli_store_meta (config, S_CMD) : NULL;
    blobs = meta ? cli_store_blobs (config, S_CMD) : NULL;
    if (!blobs) {
        goto cleanup;
    }
    s_fsck_t k = {.out = out, .repair = repair};
    uint64_t now = cm_now_s ();
    uint64_t cutoff = now > grace_s ? now - grace_s : 0;
    if (s_check_files (&k, meta, ring, blobs) != 0 ||
        s_check_orphans (&k, meta, blobs) != 0 ||
        s_check_pending (&k, meta, blobs, cutoff) != 0) {
        k.failed = true;
    }
    fprintf (
        out, "fsck: %zu committed files checked, %zu problems found, %zu removed%s\n",
        k.files, k.problems, k.removed, k.failed ? " (some checks could not run)" : "");
    fflush (out);
    rc = k.problems || k.failed ? 1 : 0;
cleanup:
    stord_backend_destroy (&blobs);
    stord_meta_destroy (&meta);
    cryptod_keyring_destroy (&ring);
    return rc;
}
