/*  gw_download -- streams a stored file to the client: storage BLOB_READ
    of the header, then per chunk BLOB_READ -> crypto DECRYPT -> mg_write,
    with up to SAFESHARE_CRYPTO_WINDOW chunks read and at crypto ahead of
    the one being written (gw_window), written strictly in index order;
    memory: at most that many chunks, whatever the file size.
    The first chunk is decrypted before any header goes out, so early
    failures are still a JSON error (502 integrity_error when crypto
    says the chunk does not authenticate). A later chunk that fails
    closes the connection short of Content-Length, after every chunk
    before it: unauthenticated plaintext is never sent.
    Headers: Content-Type, Content-Length, Content-Disposition (RFC 6266,
    gw_disposition_build), ETag `"<sha256 of the plaintext>"`,
    Accept-Ranges: bytes. If-None-Match matching the ETag (or `*`): 304,
    nothing read. One `Range` (gw_range_parse): 206 with Content-Range,
    only the chunks it overlaps read and decrypted, the ends cut;
    unsatisfiable: 416 range_not_satisfiable with `Content-Range: bytes
    *` + `/size`; malformed, several ranges, or If-Range not this ETag:
    the whole file (200).                                             */
#ifndef GW_DOWNLOAD_H
#define GW_DOWNLOAD_H

#include "gw_http.h"
#include "storage.pb-c.h"

/* Answers the request with the file's plaintext or an error. Returns the
   HTTP status (for the access log).                                   */
int gw_download_send (gw_req_t *req, const Safeshare__FileInfo *file);

/* The answers gw_download_send gives before reading any byte (502
   integrity_error for metadata it cannot stream, 304, 416), without
   the transfer: returns that HTTP status once answered, or 0 when the
   request wants bytes (200 or 206) and nothing was answered. A share
   link download asks this on a peeked link first, so a 304 or 416
   spends no download.                                                 */
int gw_download_conditional (gw_req_t *req, const Safeshare__FileInfo *file);

#endif
