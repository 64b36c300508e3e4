#!/usr/bin/env python3
"""GET /metrics, CORS and request ids through the real stack (issue 7).

Stack 1 (CORS on for one origin, a metrics token): a scrape parses under a
strict reader of the Prometheus text format 0.0.4 and shows every service
up and crypto's workers; a flow (login, upload, owner download, share link,
anonymous download, a signup whose mail goes out, a 404) then shows as
non-zero counters that match what was sent; no token / a wrong token /
a proxied outside client are refused; a stopped mailer is reported as
up 0 in a 200, not a failed scrape. CORS: allowed and refused origins on
plain requests and preflights. The request id of an upload appears in the
log lines of the gateway, auth, storage and crypto, and a signup's in the
mailer's.

Stack 2 (SAFESHARE_METRICS_ALLOW without loopback, no trusted proxies, no
CORS): /metrics is refused to 127.0.0.1, a client's X-Request-Id is not
adopted, and no CORS header is ever sent.
"""
import http.client
import math
import os
import re
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check, expect_error  # noqa: E402
from stack import Response, Stack, db_env, pg_drop_schema, stack_args  # noqa: E402

TOKEN = "scrape-" + uuid.uuid4().hex
ORIGIN = "https://app.example"
CT = "text/plain; version=0.0.4; charset=utf-8"

# ---- a strict reader of the text exposition format 0.0.4 -------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]Inf|NaN)"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (%s)(?: (-?[0-9]+))?$" % (NAME, VALUE))
LABEL_RE = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"' % LABEL)
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ParseError(Exception):
    pass


def parse_labels(text, lineno):
    labels = {}
    pos = 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        if not m:
            raise ParseError("line %d: bad label set {%s}" % (lineno, text))
        if m.group(1) in labels:
            raise ParseError("line %d: label %s twice" % (lineno, m.group(1)))
        labels[m.group(1)] = m.group(2)
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ParseError("line %d: expected ',' in {%s}" % (lineno, text))
            pos += 1
    return labels


def parse_exposition(text):
    """{family: {"type", "help", "samples": [(name, labels, value)]}}; raises
    ParseError on anything the format does not allow: a sample before its
    TYPE or of another family, TYPE twice or after samples, a duplicate
    series, a bad name/label/value, a missing final newline, histogram
    buckets that are not cumulative or lack +Inf == _count."""
    if not text.endswith("\n"):
        raise ParseError("no newline at the end")
    families = {}
    series = set()
    current = None
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            raise ParseError("line %d: empty line" % lineno)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                if not re.fullmatch(NAME, parts[2]):
                    raise ParseError("line %d: bad metric name %r" % (lineno, parts[2]))
                fam = families.setdefault(parts[2], {"type": None, "help": None,
                                                     "samples": []})
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ParseError("line %d: bad TYPE" % lineno)
                    if fam["type"] is not None or fam["samples"]:
                        raise ParseError("line %d: TYPE of %s twice or late" % (
                            lineno, parts[2]))
                    fam["type"] = parts[3]
                else:
                    if fam["help"] is not None:
                        raise ParseError("line %d: HELP of %s twice" % (lineno, parts[2]))
                    fam["help"] = parts[3] if len(parts) == 4 else ""
                current = parts[2]
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ParseError("line %d: not a sample: %r" % (lineno, line))
        name, labels_text, value = m.group(1), m.group(2), m.group(3)
        labels = parse_labels(labels_text, lineno) if labels_text else {}
        fam_name = name
        if current and families[current]["type"] in ("histogram", "summary"):
            for suffix in ("_bucket", "_sum", "_count"):
                if name == current + suffix:
                    fam_name = current
        if fam_name != current or families[current]["type"] is None:
            raise ParseError("line %d: sample %s outside its family's TYPE" % (lineno, name))
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ParseError("line %d: series %s%s twice" % (lineno, name, labels))
        series.add(key)
        families[current]["samples"].append((name, labels, float(value)))
    for fname, fam in families.items():
        if fam["type"] is None:
            raise ParseError("%s has HELP but no TYPE" % fname)
        if fam["type"] == "histogram":
            check_histogram(fname, fam["samples"])
    return families


def check_histogram(fname, samples):
    groups = {}
    for name, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == fname + "_bucket":
            if "le" not in labels:
                raise ParseError("%s bucket without le" % fname)
            le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
            g["buckets"].append((le, value))
        elif name == fname + "_sum":
            g["sum"] = value
        elif name == fname + "_count":
            g["count"] = value
        else:
            raise ParseError("%s: stray sample %s" % (fname, name))
    for rest, g in groups.items():
        les = [le for le, _ in g["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les) or not les or les[-1] != math.inf:
            raise ParseError("%s%s: buckets unsorted or no +Inf" % (fname, rest))
        counts = [v for _, v in g["buckets"]]
        if counts != sorted(counts):
            raise ParseError("%s%s: buckets not cumulative" % (fname, rest))
        if g["count"] is None or g["sum"] is None or g["count"] != counts[-1]:
            raise ParseError("%s%s: _count/_sum missing or +Inf != _count" % (fname, rest))


def value(families, name, **labels):
    """The sample's value, or None if that series is absent."""
    fam = name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in families:
            fam = name[:-len(suffix)]
    for n, l, v in families.get(fam, {"samples": []})["samples"]:
        if n == name and l == labels:
            return v
    return None


def parser_self_test():
    """The reader refuses what it must (else it proves nothing)."""
    good = ("# HELP a_total x\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
            "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
            "h_sum 0.3\nh_count 2\n")
    parse_exposition(good)
    bad = [
        good[:-1],                                               # no final newline
        "a_total 1\n",                                           # no TYPE
        "# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n",              # label twice
        "# TYPE a counter\na 1\na 2\n",                          # series twice
        "# TYPE a counter\na{x=1} 1\n",                          # unquoted label
        "# TYPE a counter\na one\n",                             # bad value
        "# TYPE a counter\n\na 1\n",                             # empty line
        "# TYPE a counter\n# TYPE b gauge\na 1\n",               # sample of another family
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",                                  # not cumulative
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",  # count
    ]
    refused = 0
    for text in bad:
        try:
            parse_exposition(text)
        except ParseError:
            refused += 1
    check(refused == len(bad), "the strict parser refuses %d malformed expositions" % len(bad),
          "refused %d" % refused)


# ---- the stacks ----------------------------------------------------------------

def scrape(s, **kw):
    headers = kw.pop("headers", {})
    if kw.pop("token", True):
        headers["Authorization"] = "Bearer " + TOKEN
    return s.request("GET", "/metrics", headers=headers, **kw)


def parsed(r, what):
    check(r.status == 200, "%s: 200" % what, repr(r))
    check(r.header("Content-Type") == CT, "%s: Content-Type %s" % (what, CT),
          repr(r.header("Content-Type")))
    try:
        fams = parse_exposition(r.body.decode("utf-8"))
    except (ParseError, UnicodeDecodeError) as e:
        check(False, "%s: parses as the text format 0.0.4" % what, str(e))
        return {}
    check(True, "%s: parses as the text format 0.0.4 (%d families)" % (what, len(fams)))
    return fams


def read_mail_link(stack, address, timeout=20):
    import glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in glob.glob(os.path.join(stack.data_dir, "mail", "*.eml")):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
            if address in text:
                return True
        time.sleep(0.1)
    return False


def log_lines(stack, svc, rid):
    return [ln for ln in stack.logs_all().splitlines()
            if "svc=%s " % svc in ln and re.search(r'\breq="?%s[." ]' % re.escape(rid), ln)]


def run_main(s):
    parser_self_test()
    fams = parsed(scrape(s), "first scrape")
    for svc in ("auth", "crypto", "storage", "mailer"):
        check(value(fams, "safeshare_service_up", service=svc) == 1,
              "service_up{service=%s} is 1" % svc)
    check(value(fams, "safeshare_crypto_pool_up") == 1, "crypto pool_status answered")
    check(value(fams, "safeshare_crypto_workers_alive") == 2,
          "crypto_workers_alive is 2 (SAFESHARE_CRYPTO_WORKERS default)",
          repr(value(fams, "safeshare_crypto_workers_alive")))
    check(value(fams, "safeshare_crypto_queue_depth") is not None, "crypto_queue_depth present")
    check(value(fams, "safeshare_mail_queue_depth") is not None, "mail_queue_depth present")

    # Access: token missing / wrong; a client outside as a trusted proxy says.
    expect_error(scrape(s, token=False), 401, "missing_token", "/metrics without the token")
    expect_error(scrape(s, token=False, headers={"Authorization": "Bearer " + TOKEN + "x"}),
                 401, "invalid_token", "/metrics with a wrong token")
    expect_error(scrape(s, headers={"X-Forwarded-For": "203.0.113.5"}), 403, "forbidden",
                 "/metrics for an outside client behind the (trusted, loopback) proxy")

    # Two X-Forwarded-For headers: which one the proxy wrote is unknown.
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    try:
        conn.putrequest("GET", "/metrics")
        conn.putheader("Authorization", "Bearer " + TOKEN)
        conn.putheader("X-Forwarded-For", "127.0.0.1")
        conn.putheader("X-Forwarded-For", "127.0.0.1")
        conn.endheaders()
        resp = conn.getresponse()
        r2 = Response(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()
    expect_error(r2, 403, "forbidden", "/metrics with X-Forwarded-For twice")

    # The flow.
    s.add_user("ops@example.com", "ops password 123", "ops")
    r = s.login("ops@example.com", "ops password 123")
    check(r.status == 200, "ops logs in", repr(r))
    ops = r.json().get("access", "")
    data = os.urandom(3 * 1024 * 1024 + 17)
    rid = "metrics-up-" + uuid.uuid4().hex[:8]
    boundary = "----m" + uuid.uuid4().hex
    body = (("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.bin\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode() + data +
            ("\r\n--%s--\r\n" % boundary).encode())
    r = s.request("POST", "/api/files", body=body, token=ops, rid=rid, headers={
        "Content-Type": "multipart/form-data; boundary=" + boundary})
    check(r.status == 201, "upload 201", repr(r))
    check(r.header("X-Request-Id") == rid, "a loopback (trusted) client's X-Request-Id is used")
    fid = r.json().get("id", "") if r.status == 201 else ""
    r = s.request("GET", "/api/files/%s/content" % fid, token=ops)
    check(r.status == 200 and r.body == data, "owner download returns the bytes")
    r = s.request("POST", "/api/files/%s/links" % fid, {"expires_in": 600, "max_downloads": 1},
                  token=ops)
    check(r.status == 201, "link created", repr(r))
    url = r.json().get("url", "") if r.status == 201 else ""
    path = url[url.index("/api/"):] if "/api/" in url else "/api/download/x"
    r = s.request("GET", path)
    check(r.status == 200 and r.body == data, "link download returns the bytes")
    r = s.request("GET", "/no/such/path")
    check(r.status == 404, "unknown path 404")
    mail_rid = "metrics-signup-" + uuid.uuid4().hex[:8]
    r = s.request("POST", "/api/auth/signup",
                  {"email": "cli@example.com", "password": "client password 123"}, rid=mail_rid)
    check(r.status in (201, 202), "signup accepted", repr(r))
    check(read_mail_link(s, "cli@example.com"), "the verification mail went out")

    fams = parsed(scrape(s), "scrape after the flow")
    n = len(data)

    def at_least(name, want, **labels):
        v = value(fams, name, **labels)
        check(v is not None and v >= want, "%s%s >= %s" % (name, labels or "", want), repr(v))

    at_least("safeshare_http_requests_total", 1, route="login", method="POST", status="200")
    at_least("safeshare_http_requests_total", 1, route="files_upload", method="POST",
             status="201")
    at_least("safeshare_http_requests_total", 1, route="file_content", method="GET",
             status="200")
    at_least("safeshare_http_requests_total", 1, route="download", method="GET", status="200")
    at_least("safeshare_http_requests_total", 1, route="none", method="GET", status="404")
    at_least("safeshare_http_requests_total", 1, route="metrics", method="GET", status="401")
    at_least("safeshare_http_request_duration_seconds_count", 1, route="files_upload")
    check((value(fams, "safeshare_http_request_duration_seconds_sum", route="files_upload")
           or 0) > 0, "upload latency sum > 0")
    at_least("safeshare_http_request_body_bytes_total", n, route="files_upload")
    at_least("safeshare_http_response_body_bytes_total", n, route="file_content")
    at_least("safeshare_http_response_body_bytes_total", n, route="download")
    check(value(fams, "safeshare_uploads_total") == 1, "uploads_total is 1")
    check(value(fams, "safeshare_upload_bytes_total") == n, "upload_bytes_total is the size")
    check(value(fams, "safeshare_downloads_total", via="owner") == 1, "owner downloads is 1")
    check(value(fams, "safeshare_downloads_total", via="link") == 1, "link downloads is 1")
    check(value(fams, "safeshare_download_bytes_total", via="owner") == n,
          "owner download bytes is the size")
    check(value(fams, "safeshare_download_bytes_total", via="link") == n,
          "link download bytes is the size")
    for svc in ("auth", "crypto", "storage", "mailer"):
        at_least("safeshare_rpc_duration_seconds_count", 1, service=svc)
    # 3 MiB in 1 MiB chunks: at least 4 encrypts and 4 decrypts per download.
    at_least("safeshare_rpc_duration_seconds_count", 12, service="crypto")
    at_least("safeshare_mail_jobs", 1, state="sent")
    at_least("safeshare_mail_sent_total", 1)

    # The request id in every service the upload touched, and the mailer's.
    for svc in ("gateway", "storage", "crypto"):
        lines = log_lines(s, svc, rid)
        check(lines, "upload's request id in %s's log lines" % svc, "none")
    lines = log_lines(s, "auth", mail_rid)
    check(lines, "signup's request id in auth's log lines", "none")
    deadline = time.monotonic() + 10
    while not log_lines(s, "mailer", mail_rid) and time.monotonic() < deadline:
        time.sleep(0.1)
    check(log_lines(s, "mailer", mail_rid), "signup's request id in the mailer's log lines")

    # CORS (SAFESHARE_CORS_ORIGINS=ORIGIN).
    r = s.request("GET", "/healthz", headers={"Origin": ORIGIN})
    check(r.header("Access-Control-Allow-Origin") == ORIGIN and r.header("Vary") == "Origin",
          "allowed origin: ACAO echoes it, Vary: Origin", repr(r.headers))
    check("X-Request-Id" in (r.header("Access-Control-Expose-Headers") or ""),
          "allowed origin: X-Request-Id exposed")
    r = s.request("GET", "/healthz", headers={"Origin": "https://evil.example"})
    check(r.status == 200 and r.header("Access-Control-Allow-Origin") is None and
          r.header("Vary") == "Origin", "refused origin: no ACAO, still Vary: Origin")
    r = s.request("OPTIONS", "/api/files", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    methods = [m.strip() for m in (r.header("Access-Control-Allow-Methods") or "").split(",")]
    allow_h = (r.header("Access-Control-Allow-Headers") or "").lower()
    check(r.status == 204 and r.header("Access-Control-Allow-Origin") == ORIGIN and
          sorted(methods) == ["GET", "POST"] and "authorization" in allow_h and
          "content-type" in allow_h and r.header("Access-Control-Max-Age") == "600",
          "preflight from the allowed origin: 204 with methods GET, POST and the headers",
          repr((r, r.headers)))
    r = s.request("OPTIONS", "/api/files", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    expect_error(r, 403, "origin_not_allowed", "preflight from another origin")
    check(r.header("Access-Control-Allow-Origin") is None, "refused preflight: no ACAO")
    r = s.request("OPTIONS", "/api/nothing", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    expect_error(r, 404, "not_found", "preflight of an unknown path")

    # A service that does not answer: up 0 in a 200, quickly.
    pid = s.service_pid("safeshare-mailer")
    check(pid is not None, "the mailer's pid is found")
    if pid:
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            fams = parsed(scrape(s), "scrape with the mailer stopped")
            took = time.monotonic() - t0
            check(value(fams, "safeshare_service_up", service="mailer") == 0,
                  "stopped mailer: service_up 0")
            check(value(fams, "safeshare_mail_stats_up") == 0 and
                  value(fams, "safeshare_mail_queue_depth") is None,
                  "stopped mailer: mail_stats_up 0, no queue depth")
            check(value(fams, "safeshare_service_up", service="auth") == 1,
                  "the others still up")
            check(took < 3, "the scrape still answers within 3 s (%.2f s)" % took)
        finally:
            os.kill(pid, signal.SIGCONT)


def run_locked(s):
    expect_error(scrape(s, token=False), 403, "forbidden",
                 "/metrics from 127.0.0.1 when SAFESHARE_METRICS_ALLOW=10.0.0.0/8")
    r = s.request("GET", "/healthz", rid="client-chosen-id")
    got = r.header("X-Request-Id") or ""
    check(r.status == 200 and got != "client-chosen-id" and re.fullmatch(r"[0-9a-f]{16}", got),
          "untrusted client's X-Request-Id is replaced by a generated one", repr(got))
    r = s.request("GET", "/healthz", headers={"Origin": ORIGIN})
    check(r.header("Access-Control-Allow-Origin") is None and r.header("Vary") is None,
          "CORS off by default: no ACAO, no Vary")
    r = s.request("OPTIONS", "/api/files", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    check(r.status == 405 and r.header("Access-Control-Allow-Origin") is None,
          "CORS off: a preflight is a plain 405", repr(r))


def main():
    args = stack_args()
    db = db_env(args.db)
    if db is None:
        return 1
    env, schema, _ = db
    stacks = [
        (Stack(args.bin_dir, env, config={"SAFESHARE_METRICS_TOKEN": TOKEN,
                                          "SAFESHARE_CORS_ORIGINS": ORIGIN}), run_main),
        (Stack(args.bin_dir, env, config={"SAFESHARE_METRICS_ALLOW": "10.0.0.0/8",
                                          "SAFESHARE_TRUSTED_PROXIES": "none"}), run_locked),
    ]
    for s, fn in stacks:
        try:
            s.start()
            fn(s)
        except Exception as e:  # a crash is a failure, with the log
            check(False, "%s ran to the end" % fn.__name__, "%r\n%s" % (e, s.logs()))
        finally:
            rc = s.stop()
            check(rc == 0, "safeshare up exits 0 on SIGTERM", "rc=%r" % rc)
            if FAILURES:
                print(s.logs()[-4000:]) if os.environ.get("SHOW_LOGS") else None
            s.cleanup()
    if schema:
        pg_drop_schema(os.environ["SAFESHARE_TEST_PG_URL"], schema)
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
