/*  stord_s3 -- the S3 blob backend (see stord_s3.h).                    */
#include "stord_s3.h"
#include "cm_log.h"
#include "cm_util.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_ID_LEN    32
#define S_MIN_PART  (5u * 1024 * 1024)
#define S_MAX_PARTS 10000
/* An XML answer (a list page, an error) larger than this is refused.  */
#define S_TEXT_MAX       (4u * 1024 * 1024)
#define S_ETAG_MAX       128
#define S_UPLOAD_ID_MAX  1024
#define S_KEY_MAX        1024
#define S_URL_MAX        4096
#define S_BACKOFF_MS     100
#define S_BACKOFF_CAP_MS 2000

typedef struct {
    char etag[S_ETAG_MAX];
} s_part_t;

/* One upload in progress: the bytes not yet sent as a part, and the
   multipart upload once the first part was full.                      */
typedef struct {
    bool used;
    char id[S_ID_LEN + 1];
    uint8_t *buf;
    size_t buf_len, buf_cap;
    uint64_t size; /* bytes appended so far */
    uint64_t mtime_s;
    char *upload_id;
    s_part_t *parts;
    size_t nparts, parts_cap;
    /* The last append, so that its repeat (a lost reply) is accepted. */
    bool have_last;
    uint64_t last_offset;
    size_t last_len;
    uint8_t last_sha[SHA256_DIGEST_LENGTH];
} s_pending_t;

typedef struct {
    char *base_url;    /* scheme://host[:port] or scheme://bucket.host[:port] */
    char *bucket_path; /* "/bucket" (path style) or "" (virtual host) */
    char *bucket;
    char *prefix;
    char *userpwd; /* access:secret, wiped at destroy */
    char sigv4[160];
    size_t part_size;
    long timeout_ms, connect_timeout_ms;
    int retries;
    unsigned list_page;
    uint64_t deadline_ms; /* the caller's (unix ms), 0 = none */
    CURL *curl;
    s_pending_t *pending;
    size_t max_pending;
    /* ListMultipartUploads was refused once: warned (once per process). */
    bool uploads_unlisted;
    char errbuf[CURL_ERROR_SIZE];
} s_s3_t;

typedef struct {
    const uint8_t *data;
    size_t len;
} s_seg_t;

/* One HTTP exchange with S3.                                          */
typedef struct {
    const char *method; /* GET PUT POST DELETE HEAD */
    const char *key;    /* object key, NULL: the bucket */
    const char *query;  /* sorted and encoded, without '?'; NULL: none */
    s_seg_t body[2];    /* PUT / POST payload, in up to two pieces */
    size_t nbody;
    const char *content_type;
    bool range;
    uint64_t range_from, range_len;
    uint8_t *out; /* a 2xx body goes here (ranged GET) when set */
    size_t out_cap;
    /* answer */
    long status;
    size_t out_len;
    bool out_overflow;
    char *text; /* any other body, NUL-terminated, up to S_TEXT_MAX */
    size_t text_len, text_cap;
    char etag[S_ETAG_MAX];
    bool have_length;
    uint64_t content_length;
    int64_t last_modified;
    /* upload cursor */
    size_t seg, seg_off;
} s_http_t;

static void
s_http_free (s_http_t *h)
{
    free (h->text);
    h->text = NULL;
    h->text_len = h->text_cap = 0;
}

static bool
s_id_ok (const char *req, const char *id)
{
    if (id && cm_is_hex_id (id, S_ID_LEN)) {
        return true;
    }
    cm_error (req, "stord_s3: refused a blob id that is not 32 hex");
    return false;
}

/* RFC 3986 unreserved stay, everything else %XX (upper case), as SigV4
   canonicalises query values.                                         */
static void
s_uri_encode (char *out, size_t outlen, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outlen; p++) {
        if (isalnum (*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* ---- a small bounded XML reader: S3's answers are flat enough ----- */

/* The content of the first <tag>...</tag> in [p, end): *val, *len;
   returns the position after the closing tag, NULL if none.          */
static const char *
s_xml_find (const char *p, const char *end, const char *tag, const char **val,
            size_t *len)
{
    char open[64], close[64];
    int no = snprintf (open, sizeof open, "<%s>", tag);
    int nc = snprintf (close, sizeof close, "</%s>", tag);
    if (no <= 0 || nc <= 0 || (size_t)nc >= sizeof close || !p || p >= end) {
        return NULL;
    }
    const char *a = memmem (p, (size_t)(end - p), open, (size_t)no);
    if (!a) {
        return NULL;
    }
    a += no;
    const char *b = memmem (a, (size_t)(end - a), close, (size_t)nc);
    if (!b) {
        return NULL;
    }
    *val = a;
    *len = (size_t)(b - a);
    return b + nc;
}

/* Copies an element's text with the five XML entities decoded; -1 if
   it does not fit or holds anything else.                             */
static int
s_xml_text (const char *val, size_t len, char *out, size_t outlen)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (o + 1 >= outlen) {
            return -1;
        }
        if (val[i] != '&') {
            out[o++] = val[i++];
            continue;
        }
        size_t k = 0;
        for (; k < sizeof ents / sizeof ents[0]; k++) {
            size_t el = strlen (ents[k].ent);
            if (len - i >= el && memcmp (val + i, ents[k].ent, el) == 0) {
                out[o++] = ents[k].c;
                i += el;
                break;
            }
        }
        if (k == sizeof ents / sizeof ents[0]) {
            return -1;
        }
    }
    out[o] = '\0';
    return 0;
}

/* The text of <tag> in [p, end) into out; -1 if missing or too long.  */
static int
s_xml_get (const char *p, const char *end, const char *tag, char *out, size_t outlen)
{
    const char *val;
    size_t len;
    if (!s_xml_find (p, end, tag, &val, &len)) {
        return -1;
    }
    return s_xml_text (val, len, out, outlen);
}

/* 2026-11-21T18:44:18.000Z -> unix s (0 when unreadable).             */
static uint64_t
s_iso_time (const char *s)
{
    struct tm tm = {0};
    if (sscanf (s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm (&tm);
    return t > 0 ? (uint64_t)t : 0;
}

/* ---- HTTP ---------------------------------------------------------- */

static size_t
s_on_read (char *dst, size_t size, size_t nmemb, void *arg)
{
    s_http_t *h = arg;
    size_t room = size * nmemb, done = 0;
    while (done < room && h->seg < h->nbody) {
        const s_seg_t *seg = &h->body[h->seg];
        size_t n = seg->len - h->seg_off;
        if (n > room - done) {
            n = room - done;
        }
        memcpy (dst + done, seg->data + h->seg_off, n);
        done += n;
        h->seg_off += n;
        if (h->seg_off == seg->len) {
            h->seg++;
            h->seg_off = 0;
        }
    }
    return done;
}

/* curl rewinds the body to resend it (a redirect, a reused connection
   that closed): only offset 0 is needed.                              */
static int
s_on_seek (void *arg, curl_off_t offset, int origin)
{
    s_http_t *h = arg;
    if (offset != 0 || origin != SEEK_SET) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    h->seg = 0;
    h->seg_off = 0;
    return CURL_SEEKFUNC_OK;
}

typedef struct {
    s_http_t *h;
    CURL *curl;
} s_cb_t;

static size_t
s_on_write (char *data, size_t size, size_t nmemb, void *arg)
{
    s_cb_t *cb = arg;
    s_http_t *h = cb->h;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo (cb->curl, CURLINFO_RESPONSE_CODE, &status);
    if (h->out && status >= 200 && status < 300) {
        if (n > h->out_cap - h->out_len) {
            h->out_overflow = true;
            return 0; /* more than asked: stop the transfer */
        }
        memcpy (h->out + h->out_len, data, n);
        h->out_len += n;
        return n;
    }
    if (n > S_TEXT_MAX - h->text_len) {
        return 0;
    }
    if (h->text_len + n + 1 > h->text_cap) {
        size_t cap = h->text_cap ? h->text_cap : 4096;
        while (cap < h->text_len + n + 1) {
            cap *= 2;
        }
        char *text = realloc (h->text, cap);
        if (!text) {
            return 0;
        }
        h->text = text;
        h->text_cap = cap;
    }
    memcpy (h->text + h->text_len, data, n);
    h->text_len += n;
    h->text[h->text_len] = '\0';
    return n;
}

/* Header value of `line` if it is header `name` (trimmed), else NULL. */
static const char *
s_header_value (const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen (name);
    if (len <= nl || strncasecmp (line, name, nl) != 0 || line[nl] != ':') {
        return NULL;
    }
    const char *v = line + nl + 1;
    const char *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) {
        e--;
    }
    *vlen = (size_t)(e - v);
    return v;
}

static size_t
s_on_header (char *line, size_t size, size_t nmemb, void *arg)
{
    s_http_t *h = arg;
    size_t len = size * nmemb, vlen;
    const char *v;
    if (len >= 5 && memcmp (line, "HTTP/", 5) == 0) {
        /* A new answer (after a 100 Continue): forget the last one's. */
        h->etag[0] = '\0';
        h->have_length = false;
        h->last_modified = 0;
    } else if ((v = s_header_value (line, len, "ETag", &vlen)) != NULL) {
        if (vlen < sizeof h->etag) {
            memcpy (h->etag, v, vlen);
            h->etag[vlen] = '\0';
        }
    } else if ((v = s_header_value (line, len, "Content-Length", &vlen)) != NULL) {
        char num[32];
        if (vlen > 0 && vlen < sizeof num) {
            memcpy (num, v, vlen);
            num[vlen] = '\0';
            char *end;
            errno = 0;
            unsigned long long n = strtoull (num, &end, 10);
            if (!*end && errno == 0 && isdigit ((unsigned char)num[0])) {
                h->content_length = n;
                h->have_length = true;
            }
        }
    } else if ((v = s_header_value (line, len, "Last-Modified", &vlen)) != NULL) {
        char date[64];
        if (vlen < sizeof date) {
            memcpy (date, v, vlen);
            date[vlen] = '\0';
            time_t t = curl_getdate (date, NULL);
            h->last_modified = t > 0 ? (int64_t)t : 0;
        }
    }
    return len;
}

static void
s_payload_sha256 (const s_http_t *h, char hex[65])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    unsigned int mdlen = 0;
    if (!ctx || EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) != 1) {
        abort (); /* out of memory */
    }
    for (size_t i = 0; i < h->nbody; i++) {
        EVP_DigestUpdate (ctx, h->body[i].data, h->body[i].len);
    }
    EVP_DigestFinal_ex (ctx, md, &mdlen);
    EVP_MD_CTX_free (ctx);
    cm_hex_encode (hex, md, sizeof md);
}

/* One attempt; the CURLcode of the transfer (the status in h).        */
static CURLcode
s_perform (s_s3_t *self, s_http_t *h, long timeout_ms)
{
    char url[S_URL_MAX];
    int n =
        snprintf (url, sizeof url, "%s%s/%s%s%s", self->base_url, self->bucket_path,
                  h->key ? h->key : "", h->query ? "?" : "", h->query ? h->query : "");
    if (n <= 0 || (size_t)n >= sizeof url) {
        return CURLE_URL_MALFORMAT;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < h->nbody; i++) {
        total += h->body[i].len;
    }
    char sha[65], hdr_sha[100], hdr_range[80], hdr_type[160];
    s_payload_sha256 (h, sha);
    snprintf (hdr_sha, sizeof hdr_sha, "x-amz-content-sha256: %s", sha);

    CURL *c = self->curl;
    /* reset keeps the connection cache: keep-alive across calls.       */
    curl_easy_reset (c);
    struct curl_slist *hdrs = curl_slist_append (NULL, hdr_sha);
    if (h->range) {
        snprintf (hdr_range, sizeof hdr_range, "Range: bytes=%" PRIu64 "-%" PRIu64,
                  h->range_from, h->range_from + h->range_len - 1);
        hdrs = curl_slist_append (hdrs, hdr_range);
    }
    if (h->content_type) {
        snprintf (hdr_type, sizeof hdr_type, "Content-Type: %s", h->content_type);
        hdrs = curl_slist_append (hdrs, hdr_type);
    }
    s_cb_t cb = {h, c};
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_AWS_SIGV4, self->sigv4);
    curl_easy_setopt (c, CURLOPT_USERPWD, self->userpwd);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT_MS, self->connect_timeout_ms);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, timeout_ms);
    /* Not "Expect:" (curl 7.88 signs that empty header, then drops it:
       403); the body goes out at once instead of after a 1 s wait.     */
    curl_easy_setopt (c, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    curl_easy_setopt (c, CURLOPT_ERRORBUFFER, self->errbuf);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, &cb);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, h);
    if (strcmp (h->method, "PUT") == 0) {
        curl_easy_setopt (c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt (c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)total);
        curl_easy_setopt (c, CURLOPT_READFUNCTION, s_on_read);
        curl_easy_setopt (c, CURLOPT_READDATA, h);
        curl_easy_setopt (c, CURLOPT_SEEKFUNCTION, s_on_seek);
        curl_easy_setopt (c, CURLOPT_SEEKDATA, h);
    } else if (strcmp (h->method, "POST") == 0) {
        /* POST bodies here are small XML in one piece.                  */
        curl_easy_setopt (c, CURLOPT_POST, 1L);
        curl_easy_setopt (c, CURLOPT_POSTFIELDS,
                          h->nbody ? (const char *)h->body[0].data : "");
        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE_LARGE,
                          (curl_off_t)(h->nbody ? h->body[0].len : 0));
    } else if (strcmp (h->method, "HEAD") == 0) {
        curl_easy_setopt (c, CURLOPT_NOBODY, 1L);
    } else if (strcmp (h->method, "GET") != 0) {
        curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, h->method);
    }
    h->status = 0;
    h->out_len = 0;
    h->out_overflow = false;
    h->text_len = 0;
    if (h->text) {
        h->text[0] = '\0';
    }
    h->seg = h->seg_off = 0;
    h->etag[0] = '\0';
    h->have_length = false;
    h->last_modified = 0;
    self->errbuf[0] = '\0';
    CURLcode cc = curl_easy_perform (c);
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &h->status);
    curl_slist_free_all (hdrs);
    return cc;
}

static bool
s_transient (CURLcode cc)
{
    switch (cc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
            return true;
        default:
            return false;
    }
}

static void
s_sleep_ms (uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep (&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Runs h with retries: OK when S3 answered below 500 (the caller reads
   h->status), UNAVAILABLE when it did not (logged), ERROR for a call
   that cannot work (logged). The back-off sleeps: this backend serves
   one call at a time and the caller waits for it anyway.             */
static stord_rc_t
s_call (s_s3_t *self, const char *req, s_http_t *h)
{
    uint64_t budget = (uint64_t)self->timeout_ms;
    if (self->deadline_ms) {
        /* Answer a little before the caller's deadline (it stops
           waiting then), so it hears storage_unavailable, not silence. */
        uint64_t now = cm_now_ms ();
        uint64_t left =
            self->deadline_ms > now + 300 ? self->deadline_ms - now - 200 : 100;
        budget = left < budget ? left : budget;
    }
    uint64_t deadline = cm_mono_ms () + budget;
    char why[CURL_ERROR_SIZE + 64] = "";
    int attempt = 0;
    for (;; attempt++) {
        uint64_t now = cm_mono_ms ();
        if (now >= deadline) {
            break;
        }
        CURLcode cc = s_perform (self, h, (long)(deadline - now));
        /* 501 NotImplemented is an answer, not an outage: a retry gets
           the same (the caller decides, as for a 4xx).                 */
        if (cc == CURLE_OK && h->status > 0 &&
            ((h->status < 500 && h->status != 429) || h->status == 501)) {
            return STORD_OK;
        }
        if (cc == CURLE_WRITE_ERROR && h->out_overflow) {
            cm_error (req, "S3 %s %s sent more than the %zu bytes asked for", h->method,
                      h->key ? h->key : self->bucket, h->out_cap);
            return STORD_ERROR;
        }
        if (cc != CURLE_OK && !s_transient (cc)) {
            cm_error (req, "curl_easy_perform() failed for S3 %s %s: %s", h->method,
                      h->key ? h->key : self->bucket,
                      self->errbuf[0] ? self->errbuf : curl_easy_strerror (cc));
            return STORD_ERROR;
        }
        if (cc == CURLE_OK) {
            snprintf (why, sizeof why, "HTTP %ld", h->status);
        } else {
            snprintf (why, sizeof why, "%s",
                      self->errbuf[0] ? self->errbuf : curl_easy_strerror (cc));
        }
        if (attempt >= self->retries) {
            attempt++;
            break;
        }
        /* Full jitter over an exponential step, within the deadline.   */
        uint64_t step = (uint64_t)S_BACKOFF_MS << (attempt < 5 ? attempt : 5);
        if (step > S_BACKOFF_CAP_MS) {
            step = S_BACKOFF_CAP_MS;
        }
        uint32_t r = 0;
        cm_random (&r, sizeof r);
        uint64_t wait = step / 2 + r % (step / 2 + 1);
        now = cm_mono_ms ();
        if (now + wait >= deadline) {
            attempt++;
            break;
        }
        s_sleep_ms (wait);
    }
    cm_error (req, "S3 %s %s unavailable after %d attempt(s): %s", h->method,
              h->key ? h->key : self->bucket, attempt, why[0] ? why : "timed out");
    return STORD_UNAVAILABLE;
}

/* The part of key (or prefix) before its first '/': the prefix sent in
   list calls, whose results are then matched exactly. A '/' in a query
   value must be signed as %2F (AWS), which moto 5 gets wrong (403).  */
static void
s_list_prefix (const char *key, char *out, size_t outlen)
{
    snprintf (out, outlen, "%.*s", (int)strcspn (key, "/"), key);
}

/* S3's error code of a failed answer ("" if it sent none).            */
static void
s_error_code (const s_http_t *h, char *code, size_t len)
{
    code[0] = '\0';
    if (h->text && h->text_len) {
        if (s_xml_get (h->text, h->text + h->text_len, "Code", code, len) != 0) {
            code[0] = '\0';
        }
    }
}

/* Logs an unexpected answer once, saying what it means; ERROR.         */
static stord_rc_t
s_refused (s_s3_t *self, const char *req, const s_http_t *h, const char *what)
{
    char code[64];
    s_error_code (h, code, sizeof code);
    const char *hint = "";
    if (strcmp (code, "InvalidAccessKeyId") == 0) {
        hint = ": S3 does not know the access key (SAFESHARE_S3_ACCESS_KEY)";
    } else if (strcmp (code, "SignatureDoesNotMatch") == 0) {
        hint = ": bad signature (SAFESHARE_S3_SECRET_KEY or _REGION)";
    } else if (strcmp (code, "NoSuchBucket") == 0) {
        hint = ": the bucket does not exist (SAFESHARE_S3_BUCKET)";
    } else if (h->status == 403) {
        hint = ": access denied (SAFESHARE_S3_ACCESS_KEY / _SECRET_KEY / the policy)";
    }
    cm_error (req, "S3 %s of %s answered %ld %s%s", what, h->key ? h->key : self->bucket,
              h->status, code[0] ? code : "(no code)", hint);
    return STORD_ERROR;
}

static int
s_key (s_s3_t *self, const char *id, char *out, size_t outlen)
{
    int n = snprintf (out, outlen, "%s%s", self->prefix, id);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* HEAD of the object: OK (size, mtime), NOT_FOUND, or a failure.       */
static stord_rc_t
s_head (s_s3_t *self, const char *req, const char *key, uint64_t *size, uint64_t *mtime)
{
    s_http_t h = {.method = "HEAD", .key = key};
    stord_rc_t rc = s_call (self, req, &h);
    if (rc == STORD_OK) {
        if (h.status == 404) {
            rc = STORD_NOT_FOUND;
        } else if (h.status != 200 || !h.have_length) {
            rc = s_refused (self, req, &h, "HeadObject");
        } else {
            if (size) {
                *size = h.content_length;
            }
            if (mtime) {
                *mtime = h.last_modified > 0 ? (uint64_t)h.last_modified : 0;
            }
        }
    }
    s_http_free (&h);
    return rc;
}

/* ---- pending uploads ----------------------------------------------- */

static s_pending_t *
s_find (s_s3_t *self, const char *id)
{
    for (size_t i = 0; i < self->max_pending; i++) {
        if (self->pending[i].used && strcmp (self->pending[i].id, id) == 0) {
            return &self->pending[i];
        }
    }
    return NULL;
}

static void
s_pending_clear (s_pending_t *p)
{
    free (p->buf);
    free (p->upload_id);
    free (p->parts);
    memset (p, 0, sizeof *p);
}

static stord_rc_t
s_multipart_create (s_s3_t *self, const char *req, s_pending_t *p, const char *key)
{
    /* The object's type: else curl's POST default (a form) sticks.    */
    s_http_t h = {.method = "POST",
                  .key = key,
                  .query = "uploads=",
                  .content_type = "application/octet-stream"};
    stord_rc_t rc = s_call (self, req, &h);
    if (rc == STORD_OK) {
        char upload_id[S_UPLOAD_ID_MAX];
        if (h.status != 200) {
            rc = s_refused (self, req, &h, "CreateMultipartUpload");
        } else if (!h.text ||
                   s_xml_get (h.text, h.text + h.text_len, "UploadId", upload_id,
                              sizeof upload_id) != 0 ||
                   !upload_id[0]) {
            cm_error (req, "S3 CreateMultipartUpload of %s: no UploadId in the answer",
                      key);
            rc = STORD_ERROR;
        } else {
            p->upload_id = strdup (upload_id);
            if (!p->upload_id) {
                rc = STORD_ERROR;
            }
        }
    }
    s_http_free (&h);
    return rc;
}

/* Sends the next part (a + b) of p's multipart upload, creating it on
   the first part; the part's ETag is kept for the completion.         */
static stord_rc_t
s_part_put (s_s3_t *self, const char *req, s_pending_t *p, const uint8_t *a, size_t alen,
            const uint8_t *b, size_t blen)
{
    char key[S_KEY_MAX];
    if (s_key (self, p->id, key, sizeof key) != 0) {
        return STORD_ERROR;
    }
    if (p->nparts >= S_MAX_PARTS) {
        cm_error (req,
                  "stord_s3: upload %s needs more than %d parts; raise "
                  "SAFESHARE_S3_PART_SIZE",
                  p->id, S_MAX_PARTS);
        return STORD_ERROR;
    }
    if (!p->upload_id) {
        stord_rc_t rc = s_multipart_create (self, req, p, key);
        if (rc != STORD_OK) {
            return rc;
        }
    }
    if (p->nparts == p->parts_cap) {
        size_t cap = p->parts_cap ? p->parts_cap * 2 : 16;
        s_part_t *parts = realloc (p->parts, cap * sizeof *parts);
        if (!parts) {
            return STORD_ERROR;
        }
        p->parts = parts;
        p->parts_cap = cap;
    }
    char upload_id[3 * S_UPLOAD_ID_MAX], query[3 * S_UPLOAD_ID_MAX + 64];
    s_uri_encode (upload_id, sizeof upload_id, p->upload_id);
    snprintf (query, sizeof query, "partNumber=%zu&uploadId=%s", p->nparts + 1,
              upload_id);
    s_http_t h = {.method = "PUT", .key = key, .query = query};
    if (alen) {
        h.body[h.nbody++] = (s_seg_t){a, alen};
    }
    if (blen) {
        h.body[h.nbody++] = (s_seg_t){b, blen};
    }
    stord_rc_t rc = s_call (self, req, &h);
    if (rc == STORD_OK) {
        if (h.status == 404) {
            /* NoSuchUpload: someone (a sweep elsewhere) aborted it.    */
            rc = s_refused (self, req, &h, "UploadPart");
        } else if (h.status != 200 || !h.etag[0] || strpbrk (h.etag, "<>&")) {
            rc = s_refused (self, req, &h, "UploadPart");
        } else {
            snprintf (p->parts[p->nparts].etag, S_ETAG_MAX, "%s", h.etag);
            p->nparts++;
        }
    }
    s_http_free (&h);
    return rc;
}

static int
s_buf_reserve (s_pending_t *p, size_t need, size_t max)
{
    if (need <= p->buf_cap) {
        return 0;
    }
    size_t cap = p->buf_cap ? p->buf_cap : 64 * 1024;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > max) {
        cap = max;
    }
    uint8_t *buf = realloc (p->buf, cap);
    if (!buf) {
        return -1;
    }
    p->buf = buf;
    p->buf_cap = cap;
    return 0;
}

/* Adds data to p: whole parts go to S3 as they fill (the first one the
   buffer plus the head of data, the next ones straight from data), the
   rest is buffered. On a failure p is as before (parts sent by this
   call are sent again, under the same numbers, by the retry).         */
static stord_rc_t
s_push (s_s3_t *self, const char *req, s_pending_t *p, const uint8_t *data, size_t len)
{
    size_t part = self->part_size;
    if (p->buf_len + len < part) {
        if (s_buf_reserve (p, p->buf_len + len, part) != 0) {
            return STORD_ERROR;
        }
        memcpy (p->buf + p->buf_len, data, len);
        p->buf_len += len;
        return STORD_OK;
    }
    size_t parts_before = p->nparts;
    size_t pos = part - p->buf_len;
    stord_rc_t rc = s_part_put (self, req, p, p->buf, p->buf_len, data, pos);
    while (rc == STORD_OK && len - pos >= part) {
        rc = s_part_put (self, req, p, data + pos, part, NULL, 0);
        pos += part;
    }
    if (rc != STORD_OK) {
        p->nparts = parts_before;
        return rc;
    }
    p->buf_len = 0;
    if (s_buf_reserve (p, len - pos, part) != 0) {
        p->nparts = parts_before; /* the parts are sent again later */
        return STORD_ERROR;
    }
    memcpy (p->buf, data + pos, len - pos);
    p->buf_len = len - pos;
    return STORD_OK;
}

static void
s_sha256 (const void *data, size_t len, uint8_t md[SHA256_DIGEST_LENGTH])
{
    SHA256 (data, len, md);
}

/* ---- the vtable ---------------------------------------------------- */

static stord_rc_t
s_begin (void *impl, const char *req, const char *id)
{
    s_s3_t *self = impl;
    if (!s_id_ok (req, id)) {
        return STORD_ERROR;
    }
    if (s_find (self, id)) {
        return STORD_EXISTS;
    }
    for (size_t i = 0; i < self->max_pending; i++) {
        s_pending_t *p = &self->pending[i];
        if (!p->used) {
            p->used = true;
            memcpy (p->id, id, S_ID_LEN + 1);
            p->mtime_s = cm_now_s ();
            return STORD_OK;
        }
    }
    cm_warn (req, "stord_s3: %zu uploads in progress already (SAFESHARE_S3_MAX_PENDING)",
             self->max_pending);
    return STORD_BUSY;
}

static stord_rc_t
s_append (void *impl, const char *req, const char *id, uint64_t offset, const void *data,
          size_t len, uint64_t *size_out)
{
    s_s3_t *self = impl;
    if (!s_id_ok (req, id)) {
        return STORD_ERROR;
    }
    s_pending_t *p = s_find (self, id);
    if (!p) {
        return STORD_NOT_FOUND;
    }
    if (offset > (uint64_t)INT64_MAX - len) {
        return STORD_MISMATCH;
    }
    uint8_t md[SHA256_DIGEST_LENGTH];
    if (offset == p->size) {
        stord_rc_t rc = s_push (self, req, p, data, len);
        if (rc != STORD_OK) {
            return rc;
        }
        s_sha256 (data, len, p->last_sha);
        p->have_last = true;
        p->last_offset = offset;
        p->last_len = len;
        p->size += len;
        p->mtime_s = cm_now_s ();
    } else if (p->have_last && offset == p->last_offset && len == p->last_len &&
               offset + len == p->size) {
        /* The bytes may be in S3 already: their digest stands in.      */
        s_sha256 (data, len, md);
        if (CRYPTO_memcmp (md, p->last_sha, sizeof md) != 0) {
            return STORD_MISMATCH;
        }
    } else {
        return STORD_MISMATCH;
    }
    if (size_out) {
        *size_out = p->size;
    }
    return STORD_OK;
}

static stord_rc_t
s_put_object (s_s3_t *self, const char *req, const char *key, const uint8_t *data,
              size_t len)
{
    s_http_t h = {
        .method = "PUT", .key = key, .content_type = "application/octet-stream"};
    if (len) {
        h.body[h.nbody++] = (s_seg_t){data, len};
    }
    stord_rc_t rc = s_call (self, req, &h);
    if (rc == STORD_OK && h.status != 200) {
        rc = s_refused (self, req, &h, "PutObject");
    }
    s_http_free (&h);
    return rc;
}

static stord_rc_t
s_multipart_complete (s_s3_t *self, const char *req, s_pending_t *p, const char *key)
{
    /* <Part><PartNumber>N</PartNumber><ETag>E</ETag></Part> per part.   */
    size_t cap = 128 + p->nparts * (64 + S_ETAG_MAX);
    char *xml = malloc (cap);
    if (!xml) {
        return STORD_ERROR;
    }
    size_t o = (size_t)snprintf (xml, cap, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < p->nparts; i++) {
        o += (size_t)snprintf (xml + o, cap - o,
                               "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>",
                               i + 1, p->parts[i].etag);
    }
    o += (size_t)snprintf (xml + o, cap - o, "</CompleteMultipartUpload>");
    char upload_id[3 * S_UPLOAD_ID_MAX], query[3 * S_UPLOAD_ID_MAX + 16];
    s_uri_encode (upload_id, sizeof upload_id, p->upload_id);
    snprintf (query, sizeof query, "uploadId=%s", upload_id);
    s_http_t h = {.method = "POST",
                  .key = key,
                  .query = query,
                  .content_type = "application/xml",
                  .body = {{(const uint8_t *)xml, o}},
                  .nbody = 1};
    stord_rc_t rc = s_call (self, req, &h);
    if (rc == STORD_OK) {
        if (h.status == 404) {
            rc = STORD_NOT_FOUND; /* NoSuchUpload: completed by an earlier try? */
        } else if (h.status != 200 || !h.text || strstr (h.text, "<Error>")) {
            /* S3 may answer 200 and put the error in the body.         */
            rc = s_refused (self, req, &h, "CompleteMultipartUpload");
        }
    }
    s_http_free (&h);
    free (xml);
    return rc;
}

static stord_rc_t
s_commit (void *impl, const char *req, const char *id, uint64_t size)
{
    s_s3_t *self = impl;
    char key[S_KEY_MAX];
    if (!s_id_ok (req, id) || s_key (self, id, key, sizeof key) != 0) {
        return STORD_ERROR;
    }
    s_pending_t *p = s_find (self, id);
    if (p && p->size != size) {
        return STORD_MISMATCH;
    }
    stord_rc_t rc;
    if (p && !p->upload_id) {
        rc = s_put_object (self, req, key, p->buf, p->buf_len);
    } else if (p) {
        size_t parts_before = p->nparts;
        rc = p->buf_len ? s_part_put (self, req, p, p->buf, p->buf_len, NULL, 0)
                        : STORD_OK;
        if (rc == STORD_OK) {
            rc = s_multipart_complete (self, req, p, key);
        }
        if (rc == STORD_NOT_FOUND) {
            rc = STORD_ERROR; /* decided below by the object itself */
            uint64_t have = 0;
            if (s_head (self, req, key, &have, NULL) == STORD_OK && have == size) {
                rc = STORD_OK;
            } else {
                cm_error (req, "S3 lost the multipart upload of %s", key);
            }
        }
        if (rc != STORD_OK) {
            p->nparts = parts_before;
        }
    } else {
        /* No upload here: an earlier commit may have finished the object
           (its reply or the metadata step failed). S3's PUT/complete is
           durable when answered, so there is nothing to redo.           */
        uint64_t have = 0;
        rc = s_head (self, req, key, &have, NULL);
        if (rc == STORD_OK && have != size) {
            rc = STORD_MISMATCH;
        }
        return rc;
    }
    if (rc == STORD_OK) {
        s_pending_clear (p);
    }
    return rc;
}

static stord_rc_t
s_multipart_abort (s_s3_t *self, const char *req, const char *key, const char *upload_id)
{
    char enc[3 * S_UPLOAD_ID_MAX], query[3 * S_UPLOAD_ID_MAX + 16];
    s_uri_encode (enc, sizeof enc, upload_id);
    snprintf (query, sizeof query, "uploadId=%s", enc);
    s_http_t h = {.method = "DELETE", .key = key, .query = query};
    stord_rc_t rc = s_call (self, req, &h);
    if (rc == STORD_OK && h.status == 404) {
        rc = STORD_NOT_FOUND;
    } else if (rc == STORD_OK && h.status != 204 && h.status != 200) {
        rc = s_refused (self, req, &h, "AbortMultipartUpload");
    }
    s_http_free (&h);
    return rc;
}

/* Called per multipart upload found by s_uploads_list.                 */
typedef int (s_upload_fn) (const char *key, const char *upload_id, uint64_t initiated,
                           void *arg);

/* Whether a failed ListMultipartUploads means "this S3 will not list
   uploads" (not an outage, not bad keys): 501 NotImplemented (S3 APIs
   without the call), 405, or AccessDenied (a policy without
   s3:ListBucketMultipartUploads).                                     */
static bool
s_list_refused (const s_http_t *h)
{
    char code[64];
    s_error_code (h, code, sizeof code);
    return h->status == 501 || h->status == 405 ||
           (h->status == 403 && strcmp (code, "AccessDenied") == 0);
}

/* ListMultipartUploads under prefix, every page. *listed is false when
   S3 refused to list (s_list_refused; warned once per process): the
   uploads a dead process left are not found from here then, only by a
   key that may list them (fsck --repair) or the bucket's lifecycle
   rule (docs/storage.md).                                             */
static stord_rc_t
s_uploads_list (s_s3_t *self, const char *req, const char *prefix, s_upload_fn *fn,
                void *arg, bool *listed)
{
    *listed = true;
    char key_marker[S_KEY_MAX] = "", id_marker[S_UPLOAD_ID_MAX] = "";
    char enc_prefix[3 * S_KEY_MAX], enc_key[3 * S_KEY_MAX], enc_id[3 * S_UPLOAD_ID_MAX];
    char query[12 * S_KEY_MAX], list_prefix[S_KEY_MAX];
    s_list_prefix (prefix, list_prefix, sizeof list_prefix);
    s_uri_encode (enc_prefix, sizeof enc_prefix, list_prefix);
    stord_rc_t rc = STORD_OK;
    for (;;) {
        s_uri_encode (enc_key, sizeof enc_key, key_marker);
        s_uri_encode (enc_id, sizeof enc_id, id_marker);
        /* Sorted by name, as curl signs the query as it is; markers
           only after the first page.                                   */
        if (key_marker[0]) {
            snprintf (
                query, sizeof query,
                "key-marker=%s&max-uploads=%u&prefix=%s&upload-id-marker=%s&uploads=",
                enc_key, self->list_page, enc_prefix, enc_id);
        } else {
            snprintf (query, sizeof query,
                      "max-uploads=%u&prefix=%s&uploads=", self->list_page, enc_prefix);
        }
        s_http_t h = {.method = "GET", .query = query};
        rc = s_call (self, req, &h);
        if (rc == STORD_OK && h.status != 200 && s_list_refused (&h)) {
            if (!self->uploads_unlisted) {
                char code[64];
                s_error_code (&h, code, sizeof code);
                cm_warn (req,
                         "S3 refused ListMultipartUploads (%ld %s): multipart uploads "
                         "left by a stopped storage cannot be found or aborted by "
                         "storage or fsck; give bucket %s a lifecycle rule "
                         "AbortIncompleteMultipartUpload (and the key "
                         "s3:ListBucketMultipartUploads)",
                         h.status, code[0] ? code : "(no code)", self->bucket);
            }
            self->uploads_unlisted = true;
            *listed = false;
            s_http_free (&h);
            break;
        }
        if (rc == STORD_OK && h.status != 200) {
            rc = s_refused (self, req, &h, "ListMultipartUploads");
        }
        if (rc != STORD_OK || !h.text) {
            s_http_free (&h);
            break;
        }
        const char *p = h.text, *end = h.text + h.text_len, *val;
        size_t len;
        const char *next;
        while (rc == STORD_OK && (next = s_xml_find (p, end, "Upload", &val, &len))) {
            char key[S_KEY_MAX], upload_id[S_UPLOAD_ID_MAX], when[64] = "";
            if (s_xml_get (val, val + len, "Key", key, sizeof key) == 0 &&
                s_xml_get (val, val + len, "UploadId", upload_id, sizeof upload_id) ==
                    0) {
                s_xml_get (val, val + len, "Initiated", when, sizeof when);
                if (fn (key, upload_id, s_iso_time (when), arg) != 0) {
                    rc = STORD_ERROR;
                }
            }
            p = next;
        }
        char truncated[16] = "";
        s_xml_get (h.text, end, "IsTruncated", truncated, sizeof truncated);
        bool more = strcmp (truncated, "true") == 0 &&
                    s_xml_get (h.text, end, "NextKeyMarker", key_marker,
                               sizeof key_marker) == 0 &&
                    s_xml_get (h.text, end, "NextUploadIdMarker", id_marker,
                               sizeof id_marker) == 0 &&
                    key_marker[0];
        s_http_free (&h);
        if (rc != STORD_OK || !more) {
            break;
        }
    }
    return rc;
}

typedef struct {
    s_s3_t *self;
    const char *req;
    const char *key;
    size_t aborted;
    stord_rc_t rc;
} s_abort_ctx_t;

static int
s_abort_one (const char *key, const char *upload_id, uint64_t initiated, void *arg)
{
    s_abort_ctx_t *ctx = arg;
    if (strcmp (key, ctx->key) != 0) {
        return 0;
    }
    stord_rc_t rc = s_multipart_abort (ctx->self, ctx->req, key, upload_id);
    if (rc == STORD_OK) {
        ctx->aborted++;
    } else if (rc != STORD_NOT_FOUND) {
        ctx->rc = rc;
        return -1;
    }
    return 0;
}

static stord_rc_t
s_delete_object (s_s3_t *self, const char *req, const char *key)
{
    s_http_t h = {.method = "DELETE", .key = key};
    stord_rc_t rc = s_call (self, req, &h);
    if (rc == STORD_OK && h.status != 204 && h.status != 200) {
        rc = s_refused (self, req, &h, "DeleteObject");
    }
    s_http_free (&h);
    return rc;
}

static stord_rc_t
s_abort (void *impl, const char *req, const char *id)
{
    s_s3_t *self = impl;
    char key[S_KEY_MAX];
    if (!s_id_ok (req, id) || s_key (self, id, key, sizeof key) != 0) {
        return STORD_ERROR;
    }
    bool found = false;
    s_pending_t *p = s_find (self, id);
    if (p) {
        /* The buffer goes whatever S3 says: a multipart upload that
           survives is found again by the list below or the sweep.     */
        found = true;
        stord_rc_t rc =
            p->upload_id ? s_multipart_abort (self, req, key, p->upload_id) : STORD_OK;
        s_pending_clear (p);
        if (rc != STORD_OK && rc != STORD_NOT_FOUND) {
            return rc;
        }
    }
    /* Every multipart upload of the key: ours, and any a previous
       process left when it died.                                      */
    s_abort_ctx_t ctx = {self, req, key, 0, STORD_OK};
    bool listed;
    stord_rc_t rc = s_uploads_list (self, req, key, s_abort_one, &ctx, &listed);
    if (rc != STORD_OK) {
        return ctx.rc != STORD_OK ? ctx.rc : rc;
    }
    found = found || ctx.aborted > 0;
    /* And the object, for an id whose commit never reached the rows.   */
    rc = s_head (self, req, key, NULL, NULL);
    if (rc == STORD_OK) {
        rc = s_delete_object (self, req, key);
        if (rc != STORD_OK) {
            return rc;
        }
        found = true;
    } else if (rc != STORD_NOT_FOUND) {
        return rc;
    }
    return found ? STORD_OK : STORD_NOT_FOUND;
}

static stord_rc_t
s_read (void *impl, const char *req, const char *id, uint64_t offset, void *buf,
        size_t len)
{
    s_s3_t *self = impl;
    char key[S_KEY_MAX];
    if (!s_id_ok (req, id) || s_key (self, id, key, sizeof key) != 0) {
        return STORD_ERROR;
    }
    if (len == 0) {
        return STORD_OK;
    }
    if (offset > (uint64_t)INT64_MAX - len) {
        return STORD_MISMATCH;
    }
    s_http_t h = {.method = "GET",
                  .key = key,
                  .range = true,
                  .range_from = offset,
                  .range_len = len,
                  .out = buf,
                  .out_cap = len};
    stord_rc_t rc = s_call (self, req, &h);
    if (rc == STORD_OK) {
        if (h.status == 404) {
            char code[64];
            s_error_code (&h, code, sizeof code);
            rc = strcmp (code, "NoSuchBucket") == 0
                     ? s_refused (self, req, &h, "GetObject")
                     : STORD_NOT_FOUND;
        } else if (h.status == 416) {
            rc = STORD_MISMATCH; /* starts past the end */
        } else if (h.status == 206 || (h.status == 200 && offset == 0)) {
            /* 206 shorter than asked: the object ends inside the range. */
            rc = h.out_len == len ? STORD_OK : STORD_MISMATCH;
        } else {
            rc = s_refused (self, req, &h, "GetObject");
        }
    }
    s_http_free (&h);
    return rc;
}

static stord_rc_t
s_remove (void *impl, const char *req, const char *id)
{
    s_s3_t *self = impl;
    char key[S_KEY_MAX];
    if (!s_id_ok (req, id) || s_key (self, id, key, sizeof key) != 0) {
        return STORD_ERROR;
    }
    /* DELETE answers 204 for a missing key too: HEAD tells them apart. */
    stord_rc_t rc = s_head (self, req, key, NULL, NULL);
    if (rc != STORD_OK) {
        return rc;
    }
    return s_delete_object (self, req, key);
}

static stord_rc_t
s_stat (void *impl, const char *req, const char *id, bool pending, uint64_t *size,
        uint64_t *mtime_s)
{
    s_s3_t *self = impl;
    char key[S_KEY_MAX];
    if (!s_id_ok (req, id) || s_key (self, id, key, sizeof key) != 0) {
        return STORD_ERROR;
    }
    if (pending) {
        /* Only uploads of this process can grow; another's leftovers
           count as gone (scan lists them for the sweep).               */
        s_pending_t *p = s_find (self, id);
        if (!p) {
            return STORD_NOT_FOUND;
        }
        if (size) {
            *size = p->size;
        }
        if (mtime_s) {
            *mtime_s = p->mtime_s;
        }
        return STORD_OK;
    }
    return s_head (self, req, key, size, mtime_s);
}

/* The id of key if it is <prefix><32 hex>, else false.                 */
static bool
s_key_id (s_s3_t *self, const char *key, char id[S_ID_LEN + 1])
{
    size_t pl = strlen (self->prefix);
    if (strncmp (key, self->prefix, pl) != 0 || strlen (key + pl) != S_ID_LEN ||
        !cm_is_hex_id (key + pl, S_ID_LEN)) {
        return false;
    }
    memcpy (id, key + pl, S_ID_LEN + 1);
    return true;
}

typedef struct {
    s_s3_t *self;
    stord_scan_fn *fn;
    void *arg;
    char last[S_ID_LEN + 1];
} s_scan_ctx_t;

static int
s_scan_upload (const char *key, const char *upload_id, uint64_t initiated, void *arg)
{
    s_scan_ctx_t *ctx = arg;
    char id[S_ID_LEN + 1];
    if (!s_key_id (ctx->self, key, id) || s_find (ctx->self, id) ||
        strcmp (id, ctx->last) == 0) {
        return 0; /* not ours, buffered here (listed already), or a repeat */
    }
    memcpy (ctx->last, id, sizeof id);
    return ctx->fn (id, initiated, ctx->arg);
}

static int
s_scan_pending (s_s3_t *self, const char *req, stord_scan_fn *fn, void *arg)
{
    /* Copied first: fn may end an upload.                              */
    size_t n = 0;
    char (*ids)[S_ID_LEN + 1] = calloc (self->max_pending, sizeof *ids);
    uint64_t *mtimes = calloc (self->max_pending, sizeof *mtimes);
    int rc = -1;
    if (!ids || !mtimes) {
        goto cleanup;
    }
    for (size_t i = 0; i < self->max_pending; i++) {
        if (self->pending[i].used) {
            memcpy (ids[n], self->pending[i].id, S_ID_LEN + 1);
            mtimes[n++] = self->pending[i].mtime_s;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (fn (ids[i], mtimes[i], arg) != 0) {
            goto cleanup;
        }
    }
    /* S3 refusing to list them (warned) leaves this process's only.    */
    s_scan_ctx_t ctx = {self, fn, arg, ""};
    bool listed;
    if (s_uploads_list (self, req, self->prefix, s_scan_upload, &ctx, &listed) !=
        STORD_OK) {
        goto cleanup;
    }
    rc = 0;
cleanup:
    free (ids);
    free (mtimes);
    return rc;
}

static int
s_scan_committed (s_s3_t *self, const char *req, stord_scan_fn *fn, void *arg)
{
    char token[S_KEY_MAX] = "";
    char enc_prefix[3 * S_KEY_MAX], enc_token[3 * S_KEY_MAX], query[8 * S_KEY_MAX];
    char list_prefix[S_KEY_MAX];
    s_list_prefix (self->prefix, list_prefix, sizeof list_prefix);
    s_uri_encode (enc_prefix, sizeof enc_prefix, list_prefix);
    for (;;) {
        s_uri_encode (enc_token, sizeof enc_token, token);
        snprintf (query, sizeof query, "%s%s%slist-type=2&max-keys=%u&prefix=%s",
                  token[0] ? "continuation-token=" : "", enc_token, token[0] ? "&" : "",
                  self->list_page, enc_prefix);
        s_http_t h = {.method = "GET", .query = query};
        stord_rc_t rc = s_call (self, req, &h);
        if (rc == STORD_OK && h.status != 200) {
            rc = s_refused (self, req, &h, "ListObjectsV2");
        }
        if (rc != STORD_OK || !h.text) {
            s_http_free (&h);
            return -1;
        }
        const char *p = h.text, *end = h.text + h.text_len, *val, *next;
        size_t len;
        int frc = 0;
        while (frc == 0 && (next = s_xml_find (p, end, "Contents", &val, &len))) {
            char key[S_KEY_MAX], when[64] = "", id[S_ID_LEN + 1];
            if (s_xml_get (val, val + len, "Key", key, sizeof key) == 0 &&
                s_key_id (self, key, id)) {
                s_xml_get (val, val + len, "LastModified", when, sizeof when);
                frc = fn (id, s_iso_time (when), arg);
            }
            p = next;
        }
        char truncated[16] = "";
        s_xml_get (h.text, end, "IsTruncated", truncated, sizeof truncated);
        bool more =
            strcmp (truncated, "true") == 0 &&
            s_xml_get (h.text, end, "NextContinuationToken", token, sizeof token) == 0 &&
            token[0];
        s_http_free (&h);
        if (frc != 0) {
            return -1;
        }
        if (!more) {
            return 0;
        }
    }
}

static int
s_scan (void *impl, const char *req, bool pending, stord_scan_fn *fn, void *arg)
{
    s_s3_t *self = impl;
    return pending ? s_scan_pending (self, req, fn, arg)
                   : s_scan_committed (self, req, fn, arg);
}

static void
s_destroy (void **impl_p)
{
    if (!impl_p || !*impl_p) {
        return;
    }
    s_s3_t *self = *impl_p;
    if (self->pending) {
        for (size_t i = 0; i < self->max_pending; i++) {
            s_pending_clear (&self->pending[i]);
        }
        free (self->pending);
    }
    if (self->curl) {
        curl_easy_cleanup (self->curl);
    }
    if (self->userpwd) {
        cm_secret_free (self->userpwd, strlen (self->userpwd) + 1);
    }
    free (self->base_url);
    free (self->bucket_path);
    free (self->bucket);
    free (self->prefix);
    free (self);
    *impl_p = NULL;
}

static void
s_deadline (void *impl, uint64_t deadline_ms)
{
    s_s3_t *self = impl;
    self->deadline_ms = deadline_ms;
}

static void
s_where (void *impl, const char *id, bool pending, char *out, size_t outlen)
{
    s_s3_t *self = impl;
    snprintf (out, outlen, "%ss3://%s/%s%s", pending ? "multipart upload of " : "",
              self->bucket, self->prefix, id);
}

static const stord_backend_ops_t s_s3_ops = {
    .name = "s3",
    .begin = s_begin,
    .append = s_append,
    .commit = s_commit,
    .abort = s_abort,
    .read = s_read,
    .remove = s_remove,
    .stat = s_stat,
    .scan = s_scan,
    .destroy = s_destroy,
    .deadline = s_deadline,
    .where = s_where,
};

static bool
s_bucket_ok (const char *b)
{
    size_t n = b ? strlen (b) : 0;
    if (n < 3 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(islower ((unsigned char)b[i]) || isdigit ((unsigned char)b[i]) ||
              b[i] == '.' || b[i] == '-')) {
            return false;
        }
    }
    return true;
}

static bool
s_prefix_ok (const char *p)
{
    for (; *p; p++) {
        if (!(islower ((unsigned char)*p) || isdigit ((unsigned char)*p) || *p == '/')) {
            return false;
        }
    }
    return true;
}

static bool
s_region_ok (const char *r)
{
    size_t n = r ? strlen (r) : 0;
    if (n < 1 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(isalnum ((unsigned char)r[i]) || r[i] == '-')) {
            return false;
        }
    }
    return true;
}

/* scheme://host[:port] with nothing after, split at "://".            */
static int
s_endpoint_split (const char *ep, const char **host)
{
    const char *sep = ep ? strstr (ep, "://") : NULL;
    if (!sep || (strncmp (ep, "http://", 7) != 0 && strncmp (ep, "https://", 8) != 0)) {
        return -1;
    }
    *host = sep + 3;
    if (!**host || strpbrk (*host, "/?#@ ")) {
        return -1;
    }
    return 0;
}

static void s_err (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_err (char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) {
        return;
    }
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, errlen, fmt, ap);
    va_end (ap);
}

/* At start: the bucket answers HEAD 200, or one line says why not.    */
static int
s_check_bucket (s_s3_t *self, const char *endpoint, char *err, size_t errlen)
{
    s_http_t h = {.method = "HEAD"};
    stord_rc_t rc = s_call (self, "start", &h);
    int result = -1;
    if (rc == STORD_UNAVAILABLE) {
        s_err (err, errlen, "S3 endpoint %s is unreachable (%s)", endpoint,
               self->errbuf[0] ? self->errbuf : "no answer");
        goto cleanup;
    }
    if (rc != STORD_OK) {
        s_err (err, errlen, "S3 endpoint %s: %s", endpoint,
               self->errbuf[0] ? self->errbuf : "request failed");
        goto cleanup;
    }
    if (h.status == 200) {
        result = 0;
        goto cleanup;
    }
    /* HEAD has no body: a one-key list names S3's error code.         */
    long head_status = h.status;
    s_http_free (&h);
    h = (s_http_t){.method = "GET", .query = "list-type=2&max-keys=1"};
    char code[64] = "";
    if (s_call (self, "start", &h) == STORD_OK) {
        s_error_code (&h, code, sizeof code);
    }
    if (head_status == 404 || strcmp (code, "NoSuchBucket") == 0) {
        s_err (err, errlen, "S3 bucket %s does not exist at %s (SAFESHARE_S3_BUCKET)",
               self->bucket, endpoint);
    } else if (strcmp (code, "InvalidAccessKeyId") == 0) {
        s_err (err, errlen,
               "S3 at %s does not know the access key (InvalidAccessKeyId): check "
               "SAFESHARE_S3_ACCESS_KEY",
               endpoint);
    } else if (strcmp (code, "SignatureDoesNotMatch") == 0) {
        s_err (err, errlen,
               "S3 at %s refused our signature (SignatureDoesNotMatch): check "
               "SAFESHARE_S3_SECRET_KEY and SAFESHARE_S3_REGION",
               endpoint);
    } else if (head_status == 403) {
        s_err (err, errlen,
               "S3 at %s denied access to bucket %s (%s): check the S3 keys and "
               "the bucket policy",
               endpoint, self->bucket, code[0] ? code : "403");
    } else if (head_status == 301 || strcmp (code, "PermanentRedirect") == 0) {
        s_err (err, errlen, "S3 bucket %s is in another region than %s", self->bucket,
               "SAFESHARE_S3_REGION");
    } else {
        s_err (err, errlen, "S3 bucket %s at %s answered HEAD with %ld %s", self->bucket,
               endpoint, head_status, code);
    }
cleanup:
    s_http_free (&h);
    return result;
}

stord_backend_t *
stord_s3_new (const stord_s3_config_t *cfg, char *err, size_t errlen)
{
    const char *host = NULL;
    if (!cfg || s_endpoint_split (cfg->endpoint, &host) != 0) {
        s_err (err, errlen, "SAFESHARE_S3_ENDPOINT must be http(s)://host[:port]");
        return NULL;
    }
    if (!s_bucket_ok (cfg->bucket)) {
        s_err (err, errlen, "SAFESHARE_S3_BUCKET must be 3..63 of [a-z0-9.-]");
        return NULL;
    }
    if (!s_region_ok (cfg->region)) {
        s_err (err, errlen, "SAFESHARE_S3_REGION must be like us-east-1");
        return NULL;
    }
    if (!cfg->access_key || !*cfg->access_key || strchr (cfg->access_key, ':') ||
        !cfg->secret_key || !*cfg->secret_key) {
        s_err (err, errlen,
               "SAFESHARE_S3_ACCESS_KEY and SAFESHARE_S3_SECRET_KEY are "
               "required (the key id without ':')");
        return NULL;
    }
    const char *prefix = cfg->prefix ? cfg->prefix : "";
    if (!s_prefix_ok (prefix) || strlen (prefix) > 512) {
        s_err (err, errlen, "SAFESHARE_S3_PREFIX must be [a-z0-9/] only");
        return NULL;
    }
    if (cfg->part_size < S_MIN_PART || cfg->max_pending < 1 || cfg->timeout_ms < 1 ||
        cfg->connect_timeout_ms < 1 || cfg->retries < 0) {
        s_err (err, errlen,
               "S3 part size (>= 5 MiB), max pending (>= 1), timeouts and "
               "retries must be set");
        return NULL;
    }
    s_s3_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    size_t scheme_len = (size_t)(host - cfg->endpoint);
    int n;
    if (cfg->virtual_host) {
        n = asprintf (&self->base_url, "%.*s%s.%s", (int)scheme_len, cfg->endpoint,
                      cfg->bucket, host);
        self->bucket_path = strdup ("");
    } else {
        n = asprintf (&self->base_url, "%s", cfg->endpoint);
        n = n < 0 ? n : asprintf (&self->bucket_path, "/%s", cfg->bucket);
    }
    if (n < 0) {
        self->base_url = NULL;
        goto fail;
    }
    self->bucket = strdup (cfg->bucket);
    self->prefix = strdup (prefix);
    if (asprintf (&self->userpwd, "%s:%s", cfg->access_key, cfg->secret_key) < 0) {
        self->userpwd = NULL;
    }
    snprintf (self->sigv4, sizeof self->sigv4, "aws:amz:%s:s3", cfg->region);
    self->part_size = cfg->part_size;
    self->timeout_ms = cfg->timeout_ms;
    self->connect_timeout_ms = cfg->connect_timeout_ms;
    self->retries = cfg->retries;
    self->list_page = cfg->list_page ? cfg->list_page : 1000;
    self->max_pending = cfg->max_pending;
    self->pending = calloc (cfg->max_pending, sizeof *self->pending);
    self->curl = curl_easy_init ();
    if (!self->bucket_path || !self->bucket || !self->prefix || !self->userpwd ||
        !self->pending || !self->curl) {
        s_err (err, errlen, "stord_s3: out of memory");
        goto fail;
    }
    if (s_check_bucket (self, cfg->endpoint, err, errlen) != 0) {
        goto fail;
    }
    return stord_backend_new (&s_s3_ops, self);
fail:
    s_destroy ((void **)&self);
    return NULL;
}
