/*  gw_intake -- POST /api/files in both forms (see gw_intake.h).        */
#include "gw_intake.h"
#include "gw_json.h"
#include "gw_policy.h"
#include "gw_text.h"
#include "gw_upload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "cm_log.h"
#include "cm_util.h"

/* Non-file multipart fields are read (so they are counted) and ignored. */
#define S_FORM_OTHER_MAX (64 * 1024)
/* Boundary lines and part headers around the fields: what a Content-Length
   may carry beyond max_upload_bytes + S_FORM_OTHER_MAX before the body is
   refused unread. The exact limit is the per-byte count of file bytes.  */
#define S_FORM_FRAMING_MAX (16 * 1024)
/* A raw body is read in pieces of this size (as civetweb's form parser
   does), so the watchdog's deadline moves on as often.               */
#define S_RAW_PIECE GW_POLICY_PREFIX
/* Longest X-File-Name / ?name= before decoding and cleaning.         */
#define S_NAME_IN_MAX 1024

/* Why an upload stopped before its commit. */
typedef enum {
    S_OK = 0,
    S_TOO_LARGE,  /* 413: over SAFESHARE_MAX_UPLOAD_BYTES */
    S_DISALLOWED, /* 415 unsupported_file_type: the extension is not listed */
    S_MISMATCH,   /* 415 content_mismatch: the bytes are not what it says */
    S_NO_NAME,    /* 400 missing_file_name */
    S_PIPELINE,   /* gw_upload failed: see gw_upload_error */
} s_fail_t;

/* One upload as it arrives, whatever the form: the policy decision, the
   prefix held back until it is judged, then the pipeline.            */
typedef struct {
    gw_req_t *req;
    gw_upload_t *upload;
    const char *visibility;
    char name[GW_NAME_MAX + 1];
    gw_policy_rule_t rule;
    uint8_t *prefix; /* GW_POLICY_PREFIX bytes, until begun */
    size_t prefix_len;
    bool opened; /* a file is being taken: its name allowed */
    bool begun;  /* its prefix passed and went to gw_upload */
    s_fail_t fail;
    uint64_t size;       /* file bytes so far */
    uint64_t body_bytes; /* every body byte, for the minimum rate */
    uint64_t start_ms;
    uint64_t deadline_ms; /* the body-read deadline last set */
} s_intake_t;

/* ---- the one pipeline ------------------------------------------------ */

/* Each piece moves the body-read deadline: GW_BODY_GRACE_MS plus the time
   GW_BODY_MIN_RATE allows for the bytes so far.                         */
static void
s_progress (s_intake_t *in, size_t len)
{
    in->body_bytes += len;
    in->req->bytes_in += len;
    in->deadline_ms =
        in->start_ms + GW_BODY_GRACE_MS + in->body_bytes * 1000 / GW_BODY_MIN_RATE;
    gw_body_watch (in->req, in->deadline_ms);
}

static void
s_watch_start (s_intake_t *in)
{
    in->start_ms = cm_mono_ms ();
    in->deadline_ms = in->start_ms + GW_BODY_GRACE_MS;
    gw_body_watch (in->req, in->deadline_ms);
}

/* Whether the body read was cut for being slow. The watchdog acts on a
   tick (and, on a loaded machine, later): a read that failed once the
   deadline had passed is that timeout too, whichever of the cut or the
   parser's own complaint about the short body came first.            */
static bool
s_watch_stop (s_intake_t *in, bool read_failed)
{
    bool fired = gw_body_unwatch (in->req);
    return fired || (read_failed && cm_mono_ms () >= in->deadline_ms);
}

/* The client's name for the file: cleaned, then judged by its
   extension. 0, or -1 with in->fail set.                              */
static int
s_open (s_intake_t *in, const char *raw_name)
{
    if (raw_name == NULL || *raw_name == '\0') {
        in->fail = S_NO_NAME;
        return -1;
    }
    gw_name_clean (raw_name, in->name);
    if (!gw_policy_allow (&in->req->settings->upload_policy, in->name, &in->rule)) {
        cm_info (in->req->req_id, "upload refused: extension '%s' not allowed",
                 in->rule.ext);
        in->fail = S_DISALLOWED;
        return -1;
    }
    in->prefix = malloc (GW_POLICY_PREFIX);
    if (in->prefix == NULL) {
        cm_error (in->req->req_id, "malloc() of the upload prefix failed");
        in->fail = S_PIPELINE; /* gw_upload_error says nothing: 503 below */
        return -1;
    }
    in->opened = true;
    return 0;
}

/* Judges the held prefix (complete: it is the whole file) and, if it
   passes, begins the upload with it. 0, or -1 with in->fail set.     */
static int
s_begin (s_intake_t *in, bool complete)
{
    if (!gw_policy_sniff (&in->rule, in->prefix, in->prefix_len, complete)) {
        cm_info (in->req->req_id, "upload refused: content does not match .%s",
                 in->rule.ext);
        in->fail = S_MISMATCH;
        return -1;
    }
    in->begun = true;
    if (gw_upload_begin (in->upload, in->name, in->rule.content_type, in->req->claims.sub,
                         in->visibility) != 0 ||
        (in->prefix_len > 0 &&
         gw_upload_write (in->upload, in->prefix, in->prefix_len) != 0)) {
        in->fail = S_PIPELINE;
        return -1;
    }
    OPENSSL_cleanse (in->prefix, in->prefix_len);
    in->prefix_len = 0;
    return 0;
}

/* File bytes in: counted against the limit, held until the prefix is
   full, then streamed. 0, or -1 with in->fail set.                    */
static int
s_write (s_intake_t *in, const void *data, size_t len)
{
    if (in->fail != S_OK || !in->opened) {
        return -1;
    }
    if (in->size + len > in->req->settings->max_upload_bytes) {
        in->fail = S_TOO_LARGE;
        return -1;
    }
    in->size += len;
    const uint8_t *p = data;
    if (!in->begun) {
        size_t n = GW_POLICY_PREFIX - in->prefix_len;
        n = n > len ? len : n;
        memcpy (in->prefix + in->prefix_len, p, n);
        in->prefix_len += n;
        p += n, len -= n;
        /* Full, and (len > 0 or not) more may follow: judged now. */
        if (in->prefix_len == GW_POLICY_PREFIX && s_begin (in, false) != 0) {
            return -1;
        }
    }
    if (len > 0 && gw_upload_write (in->upload, p, len) != 0) {
        in->fail = S_PIPELINE;
        return -1;
    }
    return 0;
}

/* The file's bytes are all in: judge a short file, commit. 0 / -1. */
static int
s_finish (s_intake_t *in)
{
    if (in->fail != S_OK || !in->opened) {
        return -1;
    }
    if (!in->begun && s_begin (in, true) != 0) {
        return -1;
    }
    if (gw_upload_finish (in->upload) != 0) {
        in->fail = S_PIPELINE;
        return -1;
    }
    return 0;
}

static void
s_intake_free (s_intake_t *in)
{
    if (in->prefix) {
        OPENSSL_cleanse (in->prefix, in->prefix_len);
        free (in->prefix);
        in->prefix = NULL;
    }
    gw_upload_destroy (&in->upload); /* FILE_ABORT unless committed */
}

static int
s_reply_pipeline (gw_req_t *req, gw_upload_t *upload)
{
    const char *code = NULL;
    const char *message = NULL;
    cm_status_t status = gw_upload_error (upload, &code, &message);
    if (status == CM_OK) {
        /* Failed before the pipeline said anything: out of memory. */
        return gw_reply_error (req, 503, "service_unavailable", "out of memory");
    }
    int http = status == CM_UNAVAILABLE ? 503 : cm_status_http (status);
    if (status == CM_INTERNAL && code && strcmp (code, "bad_gateway") == 0) {
        http = 502;
    }
    return gw_reply_error (req, http, code ? code : cm_status_code (status), "%s",
                           message ? message : "upload failed");
}

/* "docx, xlsx, ..." of the list, for the refusal message. */
static void
s_allowed_list (const gw_policy_t *policy, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < policy->count && used + 1 < outlen; i++) {
        int n =
            snprintf (out + used, outlen - used, "%s%s", i ? ", " : "", policy->ext[i]);
        if (n < 0 || (size_t)n >= outlen - used) {
            break;
        }
        used += (size_t)n;
    }
}

/* The answer to an upload that did not commit (the pipeline already
   aborted). Every one closes the connection: the body may be unread. */
static int
s_reply_failed (s_intake_t *in)
{
    gw_req_t *req = in->req;
    req->must_close = true;
    char allowed[512];
    switch (in->fail) {
        case S_TOO_LARGE:
            return gw_reply_error (req, 413, "too_large",
                                   "upload is larger than %llu bytes",
                                   (unsigned long long)req->settings->max_upload_bytes);
        case S_DISALLOWED:
            s_allowed_list (&req->settings->upload_policy, allowed, sizeof allowed);
            if (in->rule.ext[0] == '\0') {
                return gw_reply_error (req, 415, "unsupported_file_type",
                                       "files without an extension are not accepted "
                                       "(allowed: %s)",
                                       allowed);
            }
            return gw_reply_error (req, 415, "unsupported_file_type",
                                   ".%s files are not accepted (allowed: %s)",
                                   in->rule.ext, allowed);
        case S_MISMATCH:
            return gw_reply_error (req, 415, "content_mismatch",
                                   "the file's content is not %s, as its .%s name says",
                                   in->rule.what, in->rule.ext);
        case S_NO_NAME:
            return gw_reply_error (req, 400, "missing_file_name",
                                   "the file has no name: send X-File-Name or ?name= "
                                   "(multipart: the part's filename)");
        default:
            return s_reply_pipeline (req, in->upload);
    }
}

static int
s_reply_committed (s_intake_t *in)
{
    const Safeshare__FileInfo *file = gw_upload_file (in->upload);
    in->req->upload_bytes = file->size;
    cm_info (in->req->req_id, "upload committed file=%s bytes=%llu type=%s", file->id,
             (unsigned long long)file->size, in->rule.content_type);
    return gw_reply_owned (in->req, 201, gw_json_file (file));
}

/* ---- multipart/form-data ---------------------------------------------- */

typedef struct {
    s_intake_t *in;
    bool seen_file; /* the first `file` field was found */
    bool in_file;   /* the current field is that one */
    bool other_too_large;
    uint64_t other_bytes;
} s_form_t;

static int
s_form_found (const char *key, const char *filename, char *path, size_t pathlen,
              void *user_data)
{
    s_form_t *form = user_data;
    s_intake_t *in = form->in;
    if (form->in_file && in->fail == S_OK && !in->begun) {
        /* The file field ended within the prefix: it is the whole file. */
        s_begin (in, true);
    }
    form->in_file = false;
    if (in->fail != S_OK || form->other_too_large) {
        return MG_FORM_FIELD_STORAGE_ABORT;
    }
    if (key && strcmp (key, "file") == 0 && !form->seen_file) {
        form->seen_file = true;
        form->in_file = true;
        if (s_open (in, filename) != 0) {
            return MG_FORM_FIELD_STORAGE_ABORT;
        }
    }
    /* GET, never STORE: STORE would write the plaintext to disk. Other
       fields are read only so that their bytes are counted.            */
    return MG_FORM_FIELD_STORAGE_GET;
}

static int
s_form_get (const char *key, const char *value, size_t len, void *user_data)
{
    s_form_t *form = user_data;
    s_intake_t *in = form->in;
    s_progress (in, len);
    if (!form->in_file) {
        form->other_bytes += len;
        if (form->other_bytes > S_FORM_OTHER_MAX) {
            form->other_too_large = true;
            return MG_FORM_FIELD_HANDLE_ABORT;
        }
        return MG_FORM_FIELD_HANDLE_GET;
    }
    if (len > 0 && s_write (in, value, len) != 0) {
        return MG_FORM_FIELD_HANDLE_ABORT;
    }
    return in->fail == S_OK ? MG_FORM_FIELD_HANDLE_GET : MG_FORM_FIELD_HANDLE_ABORT;
}

static int
s_form_store (const char *path, long long file_size, void *user_data)
{
    /* Never used: s_form_found never answers STORE. */
    return MG_FORM_FIELD_HANDLE_ABORT;
}

static int
s_multipart (s_intake_t *in, char *ctype)
{
    gw_req_t *req = in->req;
    long long cl = mg_get_request_info (req->conn)->content_length;
    uint64_t cl_max =
        req->settings->max_upload_bytes + S_FORM_OTHER_MAX + S_FORM_FRAMING_MAX;
    if (cl >= 0 && (unsigned long long)cl > cl_max) {
        in->fail = S_TOO_LARGE;
        return s_reply_failed (in);
    }
    s_form_t form = {.in = in};
    s_watch_start (in);
    gw_send_continue (req);
    struct mg_form_data_handler handler = {s_form_found, s_form_get, s_form_store, &form};
    /* civetweb 1.15 finds the boundary only as the first parameter and
       takes the rest of the header as its value: it is handed the
       normalised type for the call (the header's value pointer lives in
       the connection's request info, ours to point elsewhere meanwhile). */
    struct mg_request_info *ri =
        (struct mg_request_info *)mg_get_request_info (req->conn);
    const char *ct_orig = NULL;
    int ct_index = -1;
    for (int i = 0; i < ri->num_headers && i < MG_MAX_HEADERS; i++) {
        if (ri->http_headers[i].name &&
            strcasecmp (ri->http_headers[i].name, "Content-Type") == 0) {
            ct_index = i;
            ct_orig = ri->http_headers[i].value;
            ri->http_headers[i].value = ctype;
            break;
        }
    }
    int fields = mg_handle_form_request (req->conn, &handler);
    if (ct_index >= 0) {
        ri->http_headers[ct_index].value = ct_orig;
    }
    /* A parse error is a malformed body, a client gone mid-body -- or the
       watchdog's cut: s_watch_stop tells the last apart.             */
    bool slow = s_watch_stop (in, fields < 0);
    if (slow) {
        gw_upload_abort (in->upload); /* before the client hears it */
        return gw_reply_slow (req);
    }
    if (in->fail == S_OK && form.other_too_large) {
        in->fail = S_TOO_LARGE;
    }
    if (in->fail != S_OK) {
        gw_upload_abort (in->upload);
        return s_reply_failed (in);
    }
    if (fields < 0) {
        gw_upload_abort (in->upload);
        req->must_close = true;
        return gw_reply_error (req, 400, "invalid_multipart",
                               "the multipart body is malformed or incomplete");
    }
    if (!form.seen_file) {
        return gw_reply_error (req, 400, "missing_file",
                               "the multipart body has no 'file' field");
    }
    if (s_finish (in) != 0) {
        gw_upload_abort (in->upload);
        return s_reply_failed (in);
    }
    return s_reply_committed (in);
}

/* ---- raw body ------------------------------------------------------ */

/* True for the types that are never a file's own: form encodings, JSON
   and every multipart/ (form-data was routed to s_multipart already). */
static bool
s_type_never_raw (const char *ct)
{
    static const char *never[] = {"application/x-www-form-urlencoded",
                                  "application/www-form-urlencoded", "application/json",
                                  "multipart/"};
    while (ct && (*ct == ' ' || *ct == '\t')) {
        ct++;
    }
    for (size_t i = 0; ct && i < sizeof never / sizeof never[0]; i++) {
        if (strncasecmp (ct, never[i], strlen (never[i])) == 0) {
            return true;
        }
    }
    return false;
}

/* The raw upload's name: X-File-Name (percent-decoded) or ?name=. 0 with
   out set (maybe ""), or -1 after answering 400 invalid_file_name.    */
static int
s_raw_name (gw_req_t *req, char out[S_NAME_IN_MAX + 1])
{
    const char *header = NULL;
    int count = gw_header_count (req, "X-File-Name", &header);
    int rc = 0;
    out[0] = '\0';
    if (count > 1) {
        rc = -1;
    } else if (count == 1) {
        rc = gw_policy_name_decode (header, out, S_NAME_IN_MAX + 1);
    } else {
        rc = gw_query (req, "name", out, S_NAME_IN_MAX + 1) < 0 ? -1 : 0;
    }
    if (rc != 0) {
        req->must_close = gw_has_body (req);
        gw_reply_error (req, 400, "invalid_file_name",
                        "X-File-Name must be given once, percent-encoded UTF-8 "
                        "without %%00, at most %d bytes decoded",
                        S_NAME_IN_MAX);
        return -1;
    }
    return 0;
}

static int
s_raw (s_intake_t *in, const char *ctype)
{
    gw_req_t *req = in->req;
    if (s_type_never_raw (ctype)) {
        req->must_close = gw_has_body (req);
        return gw_reply_error (req, 415, "unsupported_media_type",
                               "uploads are multipart/form-data with a 'file' field, "
                               "or the file itself as application/octet-stream");
    }
    char raw_name[S_NAME_IN_MAX + 1];
    if (s_raw_name (req, raw_name) != 0) {
        return req->status;
    }
    if (s_open (in, raw_name) != 0) {
        return s_reply_failed (in);
    }
    if (!gw_policy_raw_type_ok (ctype, &in->rule)) {
        req->must_close = gw_has_body (req);
        return gw_reply_error (req, 415, "unsupported_media_type",
                               "Content-Type must be application/octet-stream or %s "
                               "for a .%s file",
                               in->rule.content_type, in->rule.ext);
    }
    long long cl = mg_get_request_info (req->conn)->content_length;
    if (cl >= 0 && (unsigned long long)cl > req->settings->max_upload_bytes) {
        in->fail = S_TOO_LARGE;
        return s_reply_failed (in);
    }
    uint8_t *buf = malloc (S_RAW_PIECE);
    if (buf == NULL) {
        req->must_close = true;
        return gw_reply_error (req, 503, "service_unavailable", "out of memory");
    }
    s_watch_start (in);
    gw_send_continue (req);
    int n = 0;
    uint64_t got = 0;
    if (gw_has_body (req)) {
        while ((n = mg_read (req->conn, buf, S_RAW_PIECE)) > 0) {
            got += (uint64_t)n;
            s_progress (in, (size_t)n);
            if (s_write (in, buf, (size_t)n) != 0) {
                break;
            }
        }
    }
    OPENSSL_cleanse (buf, S_RAW_PIECE);
    free (buf);
    bool short_body = n < 0 || (cl > 0 && got < (unsigned long long)cl);
    bool slow = s_watch_stop (in, short_body && in->fail == S_OK);
    if (slow) {
        gw_upload_abort (in->upload);
        return gw_reply_slow (req);
    }
    if (in->fail == S_OK && short_body) {
        gw_upload_abort (in->upload);
        req->must_close = true;
        return gw_reply_error (req, 400, "invalid_request",
                               n < 0 ? "request body could not be read"
                                     : "request body is shorter than its length");
    }
    if (s_finish (in) != 0) {
        gw_upload_abort (in->upload);
        return s_reply_failed (in);
    }
    return s_reply_committed (in);
}

/* ---- the route -------------------------------------------------------- */

int
gw_intake_handle (gw_req_t *req)
{
    bool staff = req->authed && (strcmp (req->claims.role, "ops") == 0 ||
                                 strcmp (req->claims.role, "admin") == 0);
    if (!staff) {
        req->must_close = gw_has_body (req);
        return gw_reply_error (req, 403, "forbidden", "your role may not upload files");
    }
    char vis[16];
    int found = gw_query (req, "visibility", vis, sizeof vis);
    if (found < 0 ||
        (found > 0 && strcmp (vis, "clients") != 0 && strcmp (vis, "staff") != 0)) {
        req->must_close = gw_has_body (req);
        return gw_reply_error (req, 400, "invalid_visibility",
                               "query parameter 'visibility' must be clients or staff");
    }
    const char *ctype_in = mg_get_header (req->conn, "Content-Type");
    char ctype[GW_MULTIPART_TYPE_MAX];
    int multipart = gw_multipart_type (ctype_in, ctype, sizeof ctype);
    if (multipart == 0) {
        req->must_close = gw_has_body (req);
        return gw_reply_error (req, 400, "invalid_multipart",
                               "the multipart Content-Type has no usable boundary");
    }
    bool to_staff = found > 0 && strcmp (vis, "staff") == 0;
    s_intake_t in = {.req = req, .visibility = to_staff ? "staff" : "clients"};
    in.upload = gw_upload_new (req->rpc, req->req_id, req->settings->chunk_size,
                               req->settings->crypto_window);
    if (in.upload == NULL) {
        req->must_close = true;
        return gw_reply_error (req, 503, "service_unavailable", "out of memory");
    }
    int status = multipart > 0 ? s_multipart (&in, ctype) : s_raw (&in, ctype_in);
    s_intake_free (&in);
    return status;
}
