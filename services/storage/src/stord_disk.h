/*  stord_disk -- the disk blob backend.

    Layout under the blob dir (paths come from file ids only):
      tmp/<id>.part          pending blob, grown by appends
      <id[0:2]>/<id>         committed blob (fsynced, renamed into place,
                             the shard and tmp/ fsynced, and the blob dir
                             too when the shard was created by this commit)
    Files are 0600, directories 0700.                                    */
#ifndef STORD_DISK_H
#define STORD_DISK_H

#include "stord_backend.h"

/* Creates dir and dir/tmp if missing. NULL on failure (logged).        */
stord_backend_t *stord_disk_new (const char *dir);

#endif
