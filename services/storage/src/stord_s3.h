/*  stord_s3 -- the S3 blob backend (docs/storage.md).

    Objects are `<prefix><32 hex id>` in one bucket, reached path-style
    (endpoint/bucket/key) or virtual-host style (bucket.endpoint/key),
    signed with SigV4 by libcurl (x-amz-content-sha256 = SHA-256 of the
    bytes sent; query strings built already sorted). One CURL handle,
    reused (keep-alive); the backend serves one call at a time.

    Pending uploads live in this process: appended bytes are buffered up
    to part_size; the first full part starts a multipart upload, each
    further full part is sent as it fills. commit = PutObject for a blob
    smaller than a part, else the last part + CompleteMultipartUpload.
    At most max_pending uploads are buffered at once (begin answers
    STORD_BUSY beyond), so memory stays under max_pending * part_size.
    A restart loses the buffered bytes: the multipart uploads it leaves
    are listed by scan(pending) and removed by abort.

    5xx answers, timeouts and connection errors are retried with
    exponential back-off and jitter, all within timeout_ms per call;
    still failing: STORD_UNAVAILABLE. 4xx answers are logged with S3's
    error code (bad credentials, missing bucket) and are STORD_ERROR.  */
#ifndef STORD_S3_H
#define STORD_S3_H

#include "stord_backend.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *endpoint;   /* http(s)://host[:port], no path            */
    const char *bucket;     /* 3..63 of [a-z0-9.-]                        */
    const char *region;     /* e.g. us-east-1                             */
    const char *access_key; /* key id                                     */
    const char *secret_key; /* copied, wiped at destroy, never logged     */
    bool virtual_host;      /* bucket.host instead of host/bucket         */
    const char *prefix;     /* "" or [a-z0-9/]* (keys need no encoding)  */
    size_t part_size;       /* >= 5 MiB                                   */
    size_t max_pending;     /* uploads buffered at once, >= 1             */
    long timeout_ms;        /* one call, retries and back-off included    */
    long connect_timeout_ms;
    int retries;        /* after the first attempt                    */
    unsigned list_page; /* keys per list request; 0 = 1000 (tests: few) */
} stord_s3_config_t;

/* Checks the configuration and the bucket (HEAD; on a refusal a list
   call names S3's error code). NULL with one clear line in err (never
   the secret): bad credentials, no such bucket, endpoint unreachable. */
stord_backend_t *stord_s3_new (const stord_s3_config_t *cfg, char *err, size_t errlen);

#endif
