/*  stord_sweep -- remove what crashes and abandoned uploads left behind. */
#include "stord_sweep.h"
#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

#define S_REQ "sweep"

typedef struct {
    char (*ids)[STORD_ID_HEX + 1];
    uint64_t *mtimes; /* of blobs (the scan's: S3 only knows another
                         process's uploads from its listing)           */
    size_t count, cap;
    uint64_t cutoff; /* collect only blobs older than this (0: all) */
} s_idlist_t;

static int
s_idlist_add (s_idlist_t *list, const char *id, uint64_t mtime_s)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 64;
        void *ids = realloc (list->ids, cap * sizeof *list->ids);
        if (!ids) {
            return -1;
        }
        list->ids = ids;
        void *mtimes = realloc (list->mtimes, cap * sizeof *list->mtimes);
        if (!mtimes) {
            return -1;
        }
        list->mtimes = mtimes;
        list->cap = cap;
    }
    memcpy (list->ids[list->count], id, STORD_ID_HEX + 1);
    list->mtimes[list->count++] = mtime_s;
    return 0;
}

/* Scan callbacks collect first and act after: no deletes mid-readdir. */
static int
s_collect_blob (const char *id, uint64_t mtime_s, void *arg)
{
    s_idlist_t *list = arg;
    if (list->cutoff && mtime_s >= list->cutoff) {
        return 0;
    }
    return s_idlist_add (list, id, mtime_s);
}

static int
s_collect_row (const char *id, void *arg)
{
    return s_idlist_add (arg, id, 0);
}

/* Whether a pending upload may go: this process's own dead one at its
   restart, or anyone's nobody wrote to within max_age_s.               */
static bool
s_dead (const stord_file_t *row, const char *restarted, uint64_t mtime_s, uint64_t cutoff)
{
    if (restarted && strcmp (row->instance, restarted) == 0) {
        return true;
    }
    return mtime_s < cutoff;
}

int
stord_sweep (stord_meta_t *meta, stord_backend_t *backend, uint64_t now_s,
             uint64_t max_age_s, const char *restarted, stord_sweep_stats_t *stats)
{
    if (restarted && !*restarted) {
        restarted = NULL; /* "" is no restart */
    }
    stord_sweep_stats_t local = {0};
    uint64_t cutoff = now_s > max_age_s ? now_s - max_age_s : 0;
    /* At a restart every pending blob is looked at (its row decides);
       else only the old ones.                                          */
    s_idlist_t list = {.cutoff = restarted ? now_s + 1 : cutoff};
    int rc = -1;

    /* 1. Pending blobs: a row of another live process keeps its blob
       until it is old; a blob without a row is nobody's.               */
    if (list.cutoff > 0) {
        if (stord_backend_scan (backend, S_REQ, true, s_collect_blob, &list) != 0) {
            goto cleanup;
        }
        for (size_t i = 0; i < list.count; i++) {
            const char *id = list.ids[i];
            stord_file_t file;
            cm_status_t st = stord_meta_file_get (meta, S_REQ, id, false, &file);
            if (st == CM_INTERNAL ||
                (st == CM_OK && file.state == STORD_STATE_COMMITTED)) {
                continue; /* never touch what a committed row points at */
            }
            if (st == CM_OK && !s_dead (&file, restarted, list.mtimes[i], cutoff)) {
                continue; /* another process's upload, still young */
            }
            if (st == CM_OK &&
                stord_meta_file_delete (meta, S_REQ, id, STORD_STATE_PENDING) == CM_OK) {
                local.rows_removed++;
            }
            if (stord_backend_abort (backend, S_REQ, id) == STORD_OK) {
                local.parts_removed++;
            }
        }
    }

    /* 2. Old pending rows (and, at a restart, this process's own)
       without a live blob.                                              */
    list.count = 0;
    if (cutoff > 0 || restarted) {
        if (stord_meta_pending_before (meta, S_REQ, cutoff, restarted, s_collect_row,
                                       &list) != CM_OK) {
            goto cleanup;
        }
        for (size_t i = 0; i < list.count; i++) {
            const char *id = list.ids[i];
            stord_file_t file;
            if (stord_meta_file_get (meta, S_REQ, id, false, &file) != CM_OK ||
                file.state != STORD_STATE_PENDING) {
                continue;
            }
            uint64_t mtime = 0;
            stord_rc_t st = stord_backend_stat (backend, S_REQ, id, true, NULL, &mtime);
            if (st == STORD_OK && !s_dead (&file, restarted, mtime, cutoff)) {
                continue; /* a slow upload that is still being written */
            }
            if (st != STORD_OK && st != STORD_NOT_FOUND) {
                continue;
            }
            if (stord_backend_abort (backend, S_REQ, id) == STORD_OK) {
                local.parts_removed++;
            }
            if (stord_meta_file_delete (meta, S_REQ, id, STORD_STATE_PENDING) == CM_OK) {
                local.rows_removed++;
            }
        }
    }

    /* 3. Committed-path blobs with no row (a delete or an aborted
       commit that crashed half way). A pending row means a commit may
       be in flight: left for a later sweep, which step 2 serves.      */
    list.count = 0;
    list.cutoff = 0;
    if (stord_backend_scan (backend, S_REQ, false, s_collect_blob, &list) != 0) {
        goto cleanup;
    }
    for (size_t i = 0; i < list.count; i++) {
        const char *id = list.ids[i];
        stord_file_t file;
        cm_status_t st = stord_meta_file_get (meta, S_REQ, id, false, &file);
        if (st == CM_NOT_FOUND && stord_backend_remove (backend, S_REQ, id) == STORD_OK) {
            local.orphans_removed++;
        }
    }
    rc = 0;
cleanup:
    free (list.ids);
    free (list.mtimes);
    if (local.parts_removed || local.rows_removed || local.orphans_removed) {
        cm_info (S_REQ, "swept %zu pending blobs, %zu pending rows, %zu orphan blobs",
                 local.parts_removed, local.rows_removed, local.orphans_removed);
    }
    if (stats) {
        *stats = local;
    }
    return rc;
}
