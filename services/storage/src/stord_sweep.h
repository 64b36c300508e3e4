/*  stord_sweep -- collects what a crash or a vanished uploader left
    behind, so that nothing invisible lingers:
      1. pending blobs not written to for max_age_s: blob and pending row
         (a blob without any row goes too);
      2. pending rows older than max_age_s whose blob is gone or stale
         (also drops a committed-path blob a crash left before the row
         was marked committed);
      3. committed-path blobs that have no row at all.
    At a restart (`restarted` = this process's SAFESHARE_STORAGE_INSTANCE)
    every pending upload that instance began goes in 1. and 2. whatever
    its age: its gateway stream failed when the process went away, and
    S3's buffered bytes were in memory. Uploads of other instances
    (replicas on one database) keep the age rule. Committed rows are
    never touched.                                                      */
#ifndef STORD_SWEEP_H
#define STORD_SWEEP_H

#include "stord_backend.h"
#include "stord_meta.h"

#define STORD_SWEEP_AGE_S 3600

typedef struct {
    size_t parts_removed;
    size_t rows_removed;
    size_t orphans_removed;
} stord_sweep_stats_t;

/* 0 / -1 (logged). stats may be NULL.                                   */
int stord_sweep (stord_meta_t *meta, stord_backend_t *backend, uint64_t now_s,
                 uint64_t max_age_s, const char *restarted, stord_sweep_stats_t *stats);

#endif
