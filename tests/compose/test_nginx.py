#!/usr/bin/env python3
"""nginx terminating TLS in front of the real stack (issue 8).

compose/gen-tls-cert.sh makes the certificate (and keeps it when run
again); the real `safeshare up` stack runs with SAFESHARE_TRUSTED_PROXIES
= loopback; a real nginx runs compose/nginx/safeshare.conf, changed in
three lines only (the upstream `server gateway:8000;` -> the stack's
gateway, `listen 443 ssl;` / `listen 80;` -> high ports on 127.0.0.1),
inside a temporary main configuration (pid, logs, temp paths in the test's
directory). Through HTTPS, with the certificate verified as the CA and the
client on 127.0.0.5 (so the address nginx forwards is not nginx's own):

- TLS 1.3 and 1.2, another CA refused, HSTS on answers and errors;
- login of a CLI-made user; a 64 MiB multipart upload and a chunked raw
  upload; downloads byte-exact, a Range (206), a share link's URL;
- streaming both ways: an upload whose Content-Length is over the
  gateway's limit gets the gateway's own 413 too_large while its body is
  still unsent, an unfinished chunked upload the gateway's 415 from its
  content check (nginx buffering the request, or speaking HTTP/1.0 to the
  gateway, would wait for the whole body); a download read slowly is
  still in flight at the gateway (nginx buffering the answer would have
  swallowed it);
- request ids: a client's X-Request-Id is replaced by nginx's, which the
  gateway adopts and answers, and which names the request in nginx's
  access log (no path there: link tokens travel in paths);
- the client's address: the gateway's access line and auth's audit line
  name 127.0.0.5 and scheme https; /metrics is refused to it (a planted
  X-Forwarded-For does not help) and served to 127.0.0.1;
- http -> 301 https; the gateway stopped -> 503 service_unavailable in the
  gateway's error shape;
- the nginx service's healthcheck line of compose/docker-compose.yml (curl,
  its URL given this nginx's port) exits 0, and non-zero with the gateway
  stopped. nginx is stopped by its pid.
"""
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
from checks import FAILURES, PASSED, check, expect_error  # noqa: E402
from stack import (Response, Stack, db_env, free_port, multipart,  # noqa: E402
                   pg_drop_schema, stack_args)

CONF = os.path.join(ROOT, "compose", "nginx", "safeshare.conf")
COMPOSE = os.path.join(ROOT, "compose", "docker-compose.yml")
GEN_CERT = os.path.join(ROOT, "compose", "gen-tls-cert.sh")
MIB = 1024 * 1024
CLIENT = "127.0.0.5"          # the client's own address, not nginx's
MAX_UPLOAD = 96 * MIB
BIG = 64 * MIB                # more than every socket buffer on the way
HSTS = "max-age=31536000"
EMAIL, PASSWORD = "ops-nginx@example.com", "tls-front-door-9"


# ---- nginx -------------------------------------------------------------------

class Nginx:
    """A real nginx running the compose conf in a temporary directory."""

    def __init__(self, tmp, gateway_port):
        self.tmp = tmp
        self.https_port = free_port()
        self.http_port = free_port()
        self.binary = shutil.which("nginx") or \
            ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
        self.conf = os.path.join(tmp, "nginx.conf")
        self.error_log = os.path.join(tmp, "error.log")
        self.access_log = os.path.join(tmp, "access.log")
        self.proc = None
        with open(CONF) as f:
            text = f.read()
        # Each line we change must be there exactly once: a conf that
        # changes shape fails here rather than being tested half.
        self.subst_ok = True
        for pattern, repl in (
                (r"^(\s*)server gateway:8000;$", r"\g<1>server 127.0.0.1:%d;" % gateway_port),
                (r"^(\s*)listen 443 ssl;$", r"\g<1>listen 127.0.0.1:%d ssl;" % self.https_port),
                (r"^(\s*)listen 80;$", r"\g<1>listen 127.0.0.1:%d;" % self.http_port)):
            text, n = re.subn(pattern, repl, text, flags=re.M)
            self.subst_ok = check(n == 1, "safeshare.conf has `%s` once" % pattern.split(")", 1)[1]
                                  .rstrip("$"), "found %d" % n) and self.subst_ok
        with open(os.path.join(tmp, "safeshare.conf"), "w") as f:
            f.write(text)
        # Inside http {}, as the image's nginx.conf includes conf.d/*.conf,
        # after the http-level defaults of Debian's nginx.conf (the compose
        # image's) that safeshare.conf must override. Relative paths (the
        # conf's tls/...) resolve under this directory.
        temp = "".join("    %s_temp_path %s;\n" % (k, os.path.join(tmp, k))
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        debian = ("    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n"
                  "    ssl_prefer_server_ciphers on;\n    gzip on;\n")
        with open(self.conf, "w") as f:
            f.write("daemon off;\nworker_processes 1;\npid %s;\nerror_log %s info;\n"
                    "events { worker_connections 256; }\n"
                    "http {\n%s%s    include safeshare.conf;\n}\n"
                    % (os.path.join(tmp, "nginx.pid"), self.error_log, temp, debian))

    def argv(self, *extra):
        return [self.binary, "-p", self.tmp + "/", "-e", self.error_log, "-c", self.conf] + \
            list(extra)

    def start(self, timeout=20):
        self.log = open(self.access_log, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited with %d:\n%s" % (
                    self.proc.returncode, self.errors()))
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx not listening within %ds:\n%s" % (timeout, self.errors()))

    def children(self):
        kids = []
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % pid) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        kids.append(int(pid))
            except (OSError, ValueError, IndexError):
                pass
        return kids

    def stop(self, timeout=10):
        """SIGTERM to the master by its pid (SIGKILL after timeout);
        returns its exit code and whether a worker outlived it."""
        if not self.proc:
            return None, False
        workers = self.children()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        left = False
        for pid in workers:
            try:
                os.kill(pid, 0)
            except OSError:
                continue
            left = True
            os.kill(pid, signal.SIGKILL)
        self.log.close()
        return rc, left

    def errors(self):
        return read_text(self.error_log)[-4000:]

    def access(self):
        return read_text(self.access_log)


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


# ---- an HTTPS client from 127.0.0.5 ------------------------------------------

class Client:
    def __init__(self, nginx, cafile, source=CLIENT):
        self.nginx = nginx
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.source = source

    def conn(self, timeout=60, ctx=None, rcvbuf=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.nginx.https_port, timeout=timeout,
                                        context=ctx or self.ctx,
                                        source_address=(self.source, 0))
        if rcvbuf:
            # A small fixed receive buffer (no autotuning): a slow reader
            # holds back the sender after a few hundred KiB, not 32 MiB.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.bind((self.source, 0))
            sock.connect(("127.0.0.1", self.nginx.https_port))
            c.sock = (ctx or self.ctx).wrap_socket(sock, server_hostname="127.0.0.1")
        return c

    def request(self, method, path, body=None, headers=None, token=None, timeout=60):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()


def gateway_line(stack, rid, timeout=0.0):
    """The gateway's access line of request `rid` (its last line for
    that id with status=), polled for up to timeout seconds; None if
    there is none (yet)."""
    deadline = time.monotonic() + timeout
    pat = re.compile(r'^.*\bsvc=gateway req="?%s"? .*\bstatus=\d+.*$' % re.escape(rid), re.M)
    while True:
        found = pat.findall(stack.logs_all())
        if found:
            return found[-1]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def rid_of(r):
    return r.header("X-Request-Id") or ""


def nginx_id(rid):
    return re.fullmatch(r"[0-9a-f]{32}", rid) is not None


# ---- the checks ----------------------------------------------------------------

def compose_healthcheck(nginx):
    """The nginx service's healthcheck of compose/docker-compose.yml (its
    one `test: ["CMD", "curl", ...]` line), pointed at this nginx's HTTPS
    port; None unless that line is there once, with the URL to change."""
    with open(COMPOSE) as f:
        found = re.findall(r'^\s*test: (\["CMD", "curl", .*\])\s*$', f.read(), re.M)
    argv = json.loads(found[0])[1:] if len(found) == 1 else []
    url = "https://127.0.0.1/"
    if [a.startswith(url) for a in argv].count(True) != 1:
        return None
    return [a.replace(url, "https://127.0.0.1:%d/" % nginx.https_port, 1) for a in argv]


def run_healthcheck(nginx, healthy, what):
    """Runs the compose healthcheck as Docker would (in nginx's place)."""
    argv = compose_healthcheck(nginx)
    if not check(argv is not None, "docker-compose.yml has nginx's curl healthcheck once"):
        return
    r = subprocess.run(argv, capture_output=True, timeout=30)
    check((r.returncode == 0) == healthy, "%s: `%s` exits %s" % (
        what, " ".join(argv), "0" if healthy else "non-zero"),
        "exit %d %s" % (r.returncode, r.stderr.decode(errors="replace")))


def cert_script(tmp):
    """Returns the CA file the client trusts, or None."""
    tls = os.path.join(tmp, "tls")
    r = subprocess.run([GEN_CERT, tls, "localhost"], capture_output=True, timeout=60)
    crt, key = os.path.join(tls, "safeshare.crt"), os.path.join(tls, "safeshare.key")
    if not check(r.returncode == 0 and os.path.isfile(crt) and os.path.isfile(key),
                 "gen-tls-cert.sh writes safeshare.crt and safeshare.key", r.stderr):
        return None
    check(os.stat(key).st_mode & 0o777 == 0o600, "the key is 0600",
          oct(os.stat(key).st_mode))
    check(os.stat(crt).st_mode & 0o777 == 0o644, "the certificate is 0644",
          oct(os.stat(crt).st_mode))
    before = open(crt, "rb").read() + open(key, "rb").read()
    r = subprocess.run([GEN_CERT, tls, "localhost"], capture_output=True, timeout=60)
    after = open(crt, "rb").read() + open(key, "rb").read()
    check(r.returncode == 0 and before == after, "run again: both files kept as they were",
          r.stderr)
    text = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-ext", "subjectAltName"],
                          capture_output=True, timeout=30).stdout.decode()
    check("DNS:localhost" in text and "IP Address:127.0.0.1" in text,
          "SAN holds localhost and 127.0.0.1", text)
    # Another CA, for the refusal check: --force makes a fresh pair.
    other = os.path.join(tmp, "other")
    subprocess.run([GEN_CERT, other], capture_output=True, timeout=60)
    r = subprocess.run([GEN_CERT, "--force", other], capture_output=True, timeout=60)
    check(r.returncode == 0 and open(os.path.join(other, "safeshare.crt"), "rb").read() !=
          open(crt, "rb").read(), "--force writes a new certificate", r.stderr)
    return crt


def tls_checks(cl, tmp):
    c = cl.conn()
    try:
        c.request("GET", "/healthz")
        r = c.getresponse()
        body = r.read()
        version = c.sock.version()
    finally:
        c.close()
    check(r.status == 200 and body.strip().startswith(b"{"),
          "GET /healthz over HTTPS, the certificate verified -> 200", repr(body[:200]))
    check(version == "TLSv1.3", "TLS 1.3 by default", version)
    check(r.getheader("Strict-Transport-Security") == HSTS, "HSTS on the answer",
          repr(r.getheader("Strict-Transport-Security")))
    ctx12 = ssl.create_default_context(cafile=os.path.join(tmp, "tls", "safeshare.crt"))
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    c = cl.conn(ctx=ctx12)
    try:
        c.request("GET", "/healthz")
        st = c.getresponse().status
        version = c.sock.version()
    finally:
        c.close()
    check(st == 200 and version == "TLSv1.2", "TLS 1.2 works too", version)
    wrong = ssl.create_default_context(cafile=os.path.join(tmp, "other", "safeshare.crt"))
    try:
        c = cl.conn(ctx=wrong)
        c.request("GET", "/healthz")
        c.getresponse()
        refused = False
    except ssl.SSLCertVerificationError:
        refused = True
    check(refused, "a client trusting another CA refuses the connection")


def redirect_checks(nginx):
    for method, path in (("GET", "/healthz?x=1"), ("POST", "/api/auth/login")):
        c = http.client.HTTPConnection("127.0.0.1", nginx.http_port, timeout=10,
                                       source_address=(CLIENT, 0))
        try:
            c.request(method, path, body=b"{}" if method == "POST" else None,
                      headers={"Host": "files.example"})
            r = c.getresponse()
            r.read()
        finally:
            c.close()
        check(r.status == 301 and r.getheader("Location") == "https://files.example" + path,
              "http %s %s -> 301 to https://files.example%s" % (method, path, path),
              "%d %r" % (r.status, r.getheader("Location")))
        check(r.getheader("X-Request-Id") is None,
              "http %s %s never reached the gateway" % (method, path))


def request_ids(cl, stack, nginx):
    r = cl.request("POST", "/api/auth/login", {"email": EMAIL, "password": PASSWORD},
                   headers={"X-Request-Id": "planted-by-client"})
    rid = rid_of(r)
    check(r.status == 200 and nginx_id(rid),
          "login through nginx -> 200, X-Request-Id is nginx's 32-hex id, not the client's",
          "%r %r" % (r, rid))
    line = gateway_line(stack, rid, timeout=5)
    check(line is not None, "the gateway adopted nginx's id (its access line has req=%s)" % rid)
    check("planted-by-client" not in stack.logs_all() and
          "planted-by-client" not in nginx.access(), "the client's id is in no log")
    access = [ln for ln in nginx.access().splitlines() if "req=%s" % rid in ln]
    check(len(access) == 1 and "addr=%s" % CLIENT in access[0] and "status=200" in access[0],
          "nginx's access line names the same id and the client's address", repr(access))
    # What the gateway made of the client (the forwarded address, https).
    check(line is not None and "client=%s" % CLIENT in line and "scheme=https" in line,
          "gateway access line: client=%s scheme=https (X-Forwarded-For/-Proto adopted)"
          % CLIENT, repr(line))
    audit = [ln for ln in stack.logs_all().splitlines()
             if re.search(r'svc=auth req="?%s\.\d+"? ' % rid, ln) and "audit event=login" in ln]
    check(len(audit) == 1 and "addr=%s " % CLIENT in audit[0],
          "auth's audit line of that login names addr=%s" % CLIENT, repr(audit))
    return r.json().get("access")


def metrics_address(cl, stack):
    r = cl.request("GET", "/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    expect_error(r, 403, "forbidden",
                 "/metrics from %s through nginx (planted X-Forwarded-For: 127.0.0.1)" % CLIENT)
    rid = rid_of(r)
    check(re.search(r'svc=gateway req="?%s"? msg="metrics refused to address %s\b'
                    % (re.escape(rid), re.escape(CLIENT)),
                    stack.logs_all()) is not None,
          "the gateway logs the refusal for the address nginx forwarded (%s)" % CLIENT)
    check(r.header("Strict-Transport-Security") == HSTS, "HSTS on an error answer too")
    local = Client(cl.nginx, None, source="127.0.0.1")
    local.ctx = cl.ctx
    r = local.request("GET", "/metrics")
    check(r.status == 200 and b"safeshare_http_requests_total" in r.body,
          "/metrics from 127.0.0.1 through nginx -> 200", repr(r))


def transfers(cl, stack, token):
    data = os.urandom(BIG)
    digest = hashlib.sha256(data).hexdigest()
    ctype, before, after = multipart("big.bin")
    body = before + data + after
    t0 = time.monotonic()
    r = cl.request("POST", "/api/files", body=body, token=token,
                   headers={"Content-Type": ctype}, timeout=300)
    took = time.monotonic() - t0
    f = r.json() if r.status == 201 else {}
    check(r.status == 201 and f.get("size") == BIG and f.get("sha256") == digest,
          "64 MiB multipart upload through nginx -> 201, size and sha256 match (%.1f s)" % took,
          repr(r))
    fid = f.get("id")
    if not fid:
        return

    r = cl.request("GET", "/api/files/%s/content" % fid, token=token, timeout=300)
    check(r.status == 200 and r.body == data, "download through nginx: the same 64 MiB",
          "%d, %d bytes" % (r.status, len(r.body)))
    lo, hi = 3 * MIB - 7, 5 * MIB + 11
    r = cl.request("GET", "/api/files/%s/content" % fid, token=token,
                   headers={"Range": "bytes=%d-%d" % (lo, hi)})
    check(r.status == 206 and r.body == data[lo:hi + 1] and
          r.header("Content-Range") == "bytes %d-%d/%d" % (lo, hi, BIG),
          "Range through nginx -> 206, Content-Range and the exact bytes",
          "%d %r %d bytes" % (r.status, r.header("Content-Range"), len(r.body)))

    # Streaming answer: read a little, stop; the gateway must still be
    # writing (a buffering nginx would have taken all 64 MiB and let the
    # gateway finish at once).
    c = cl.conn(timeout=120, rcvbuf=128 * 1024)
    try:
        c.request("GET", "/api/files/%s/content" % fid,
                  headers={"Authorization": "Bearer " + token})
        resp = c.getresponse()
        rid = resp.getheader("X-Request-Id") or ""
        head = resp.read(256 * 1024)
        time.sleep(2.5)
        early = gateway_line(stack, rid)
        rest = resp.read()
    finally:
        c.close()
    check(resp.status == 200 and early is None,
          "a download read slowly is still in flight at the gateway after 2.5 s "
          "(proxy_buffering off)", repr(early))
    check(head + rest == data, "... and arrives whole once read")
    line = gateway_line(stack, rid, timeout=10)
    check(line is not None and "status=200" in line, "... then the gateway logs it done",
          repr(line))

    # A chunked raw upload: HTTP/1.1 to the gateway keeps it streamed.
    small = os.urandom(5 * MIB + 123)
    c = cl.conn(timeout=120)
    try:
        c.request("POST", "/api/files", body=(small[i:i + 100000]
                                              for i in range(0, len(small), 100000)),
                  headers={"Authorization": "Bearer " + token,
                           "Content-Type": "application/octet-stream",
                           "X-File-Name": "chunked.bin"}, encode_chunked=True)
        resp = c.getresponse()
        r = Response(resp.status, resp.getheaders(), resp.read())
    finally:
        c.close()
    f2 = r.json() if r.status == 201 else {}
    check(r.status == 201 and f2.get("size") == len(small) and
          f2.get("sha256") == hashlib.sha256(small).hexdigest(),
          "chunked raw upload through nginx -> 201, size and sha256 match", repr(r))

    # A share link: its URL (from SAFESHARE_PUBLIC_URL = nginx) works
    # anonymously, and its token is in no log of nginx's.
    r = cl.request("POST", "/api/files/%s/links" % fid, {"max_downloads": 1}, token=token)
    link = r.json() if r.status == 201 else {}
    url = link.get("url", "")
    prefix = "https://127.0.0.1:%d" % cl.nginx.https_port
    check(r.status == 201 and url.startswith(prefix + "/"),
          "a share link's url points at nginx", repr(r))
    if url.startswith(prefix + "/"):
        r = cl.request("GET", url[len(prefix):], timeout=300)
        check(r.status == 200 and r.body == data, "the link's download through nginx: 64 MiB",
              "%d, %d bytes" % (r.status, len(r.body)))
        check(link["token"] not in cl.nginx.access() and link["token"] not in cl.nginx.errors(),
              "the link token is in neither of nginx's logs")


def partial_request(cl, head, body_part, timeout=10):
    """Sends the request head and a first part of its body over HTTPS,
    holds the rest back, and reads what comes: (status line, the JSON
    error code, seconds until the answer)."""
    sock = socket.socket()
    sock.settimeout(timeout + 5)
    sock.bind((CLIENT, 0))
    sock.connect(("127.0.0.1", cl.nginx.https_port))
    s = cl.ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    got = b""
    t0 = time.monotonic()
    try:
        s.sendall(head.encode() + body_part)
        try:
            while not got.rstrip().endswith(b"}"):
                piece = s.recv(65536)
                if not piece:
                    break
                got += piece
        except (socket.timeout, OSError):
            pass
    finally:
        s.close()
    took = time.monotonic() - t0
    status, _, rest = got.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    try:
        code = json.loads(body.decode())["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    return status.decode(errors="replace"), code, took, got


def uploads_not_buffered(cl, token):
    """The gateway answers uploads while nginx still streams them: a
    buffering nginx would wait for the whole body (and one with a limit
    of its own would answer an HTML 413 instead of the gateway's)."""
    common = ("POST /api/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              "Authorization: Bearer %s\r\nContent-Type: application/octet-stream\r\n"
              % token)
    # Content-Length over SAFESHARE_MAX_UPLOAD_BYTES, 1 MiB of it sent.
    total = MAX_UPLOAD + 1
    status, code, took, got = partial_request(
        cl, common + "X-File-Name: huge.bin\r\nContent-Length: %d\r\n\r\n" % total,
        os.urandom(MIB))
    check(status.startswith("HTTP/1.1 413") and code == "too_large" and took < 10,
          "upload over the gateway's limit: its 413 too_large arrives with %d MiB of the "
          "body unsent (%.1f s)" % ((total - MIB) // MIB, took), repr(got[:300]))
    # Chunked, not a PDF though named one, the first 64 KiB sent and no
    # end: the content check (first 8 KiB) answers. HTTP/1.0 to the
    # gateway would make nginx wait for the last chunk.
    status, code, took, got = partial_request(
        cl, common + "X-File-Name: fake.pdf\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"%x\r\n" % (64 * 1024) + b"not a pdf " * 6553 + b"123456" + b"\r\n")
    check(status.startswith("HTTP/1.1 415") and code == "content_mismatch" and took < 10,
          "chunked upload, unfinished: the gateway's 415 content_mismatch arrives "
          "(%.1f s)" % took, repr(got[:300]))


def gateway_down(cl, stack):
    rc = stack.stop()
    check(rc == 0, "safeshare up exits 0 on SIGTERM", "rc=%r" % rc)
    r = cl.request("GET", "/healthz")
    rid = rid_of(r)
    expect_error(r, 503, "service_unavailable", "gateway stopped: GET /healthz via nginx")
    run_healthcheck(cl.nginx, False, "nginx's compose healthcheck, the gateway stopped")
    body = {}
    try:
        body = r.json()
    except ValueError:
        pass
    check(nginx_id(rid) and body.get("error", {}).get("request_id") == rid and
          r.header("Strict-Transport-Security") == HSTS,
          "... with request_id = X-Request-Id and HSTS", repr(r.headers))


def main():
    args = stack_args()
    db = db_env(args.db)
    if db is None:
        return 1
    env, schema, _ = db
    tmp = tempfile.mkdtemp(prefix="ss-nginx-", dir="/tmp")
    # nginx's workers (nobody, when started as root) read under here.
    os.chmod(tmp, 0o755)
    stack = nginx = None
    stopped = [False]
    try:
        cafile = cert_script(tmp)
        stack = Stack(args.bin_dir, env, config={
            "SAFESHARE_TRUSTED_PROXIES": "127.0.0.0/8,::1/128",
            "SAFESHARE_METRICS_ALLOW": "127.0.0.1/32",
            "SAFESHARE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        })
        nginx = Nginx(tmp, stack.port)
        # The links' base: what users reach, nginx.
        stack.env["SAFESHARE_PUBLIC_URL"] = "https://127.0.0.1:%d" % nginx.https_port
        if nginx.binary is None:
            check(False, "nginx is installed (scripts/install-deps.sh --test: nginx-light)")
        elif cafile and nginx.subst_ok:
            t = subprocess.run(nginx.argv("-t"), capture_output=True, timeout=30)
            out = t.stderr.decode(errors="replace")
            check(t.returncode == 0 and "[warn]" not in out and "[emerg]" not in out,
                  "nginx -t accepts the conf without a warning", out)
            stack.start()
            stack.add_user(EMAIL, PASSWORD, "ops")
            nginx.start()
            cl = Client(nginx, cafile)
            tls_checks(cl, tmp)
            run_healthcheck(nginx, True, "nginx's compose healthcheck, the gateway up")
            redirect_checks(nginx)
            token = request_ids(cl, stack, nginx)
            metrics_address(cl, stack)
            if check(bool(token), "a token to upload with"):
                uploads_not_buffered(cl, token)
                transfers(cl, stack, token)
            gateway_down(cl, stack)
            stopped[0] = True
    except Exception as e:  # a crash is a failure, with the logs
        check(False, "the test ran to the end", "%r\n%s\n%s" % (
            e, stack.logs() if stack else "", nginx.errors() if nginx else ""))
    finally:
        if nginx and nginx.proc:
            rc, left = nginx.stop()
            check(rc == 0 and not left, "nginx stopped by its pid: exit 0, no worker left",
                  "rc=%r left=%r\n%s" % (rc, left, nginx.errors()))
        if stack:
            if not stopped[0]:
                stack.stop()
            if FAILURES and os.environ.get("SHOW_LOGS"):
                print(stack.logs()[-6000:])
            stack.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    if schema:
        pg_drop_schema(os.environ["SAFESHARE_TEST_PG_URL"], schema)
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
