#!/usr/bin/env python3
"""Issue 5 through the real stack: storage as a user and an operator see it.

  test_storage.py --bin-dir DIR [--db sqlite|pg] [--backend disk|s3]

`safeshare up` on loopback (SQLite, or with --db pg auth and storage on a
fresh schema of SAFESHARE_TEST_PG_URL), blobs on disk or, with --backend
s3, in the S3 server scripts/s3-test-server.sh starts (moto, which checks
every SigV4 signature), read back with awscli. Every file is generated on
the fly from a seeded pattern (byte o is BASE[o % P], P a prime a little
under 1 MiB, so no chunk-sized shift maps the pattern onto itself): any
range is regenerated to compare, no file is held whole in the test.

1. 200 MiB upload and download: SHA-256 equal; the peak RSS (VmHWM) of
   every service printed, gateway's and storage's bounded far below the
   file size (RSS_BOUND_MIB); the last byte of it as a range, timed.
2. Ranges at chunk boundaries and inside chunks (the chunk size from the
   file's metadata): first and last byte, one whole chunk, across two and
   three chunks, inside one, open-ended, suffix, whole file, an end past
   the size: 206, Content-Range, bytes equal; 416 with `Content-Range:
   bytes */size`; If-None-Match -> 304; the same through a share link.
3. 50 concurrent redeems of a one-time link, each its own connection:
   exactly one 200 with the whole file, 49 x 410 link_exhausted.
5. No plaintext at rest: a file full of a marker string; the marker is in
   no file under the data dir (blobs, DBs, keys, logs), not in pg_dump of
   the schema (pg), in no object awscli gets from the bucket (S3).
7. Delete: the content answers 404, the row and the blob (S3: the
   object, per awscli) are gone.
8. Upload policy: raw bodies (X-File-Name percent-encoded UTF-8, ?name=)
   download back exactly with the RFC 6266 Content-Disposition; a .docx
   built with zipfile is stored with the OOXML type; a .pdf that is text
   and a ZIP .docx without OOXML parts -> 415 content_mismatch, .exe ->
   415 unsupported_file_type, a client -> 403: no row, no blob / object,
   no upload begun in storage's log, GET /api/files unchanged.
9. GET /api/files: ?name= case-insensitive with `%` and `_` literal;
   limit/cursor over three pages, newest first; a "staff" file is absent
   for a client (list, and 404 by id, content, links) and visible to
   ops; PATCH visibility lets the client see and download it.
10. Links: expires_in over SAFESHARE_LINK_MAX_TTL (set to 7200) -> 400;
   expired, revoked, used up -> 410 with their codes; unknown -> 404;
   signed_in_only: 401 anonymous, 200 with a client's token;
   If-None-Match through a one-time link -> 304, then its one 200; the
   listing's states and counts, no token in it nor in storage's DB.
11. Delete of a file with links: its links answer 404 link_not_found
   (docs/api.md), their rows, the file's row and blob are gone.
12. A second stack with SAFESHARE_MAX_UPLOAD_BYTES=1 MiB (same DB kind
   and backend; its own schema / S3 prefix): Content-Length over it ->
   413 too_large before a body byte (raw and multipart), a chunked body
   cut once past it, exactly the limit -> 201; no row or blob left.
4. kill -9 of storage mid-upload (after 5 and 7: it may restart the
   stack): the upload answers a 5xx JSON error; storage comes back --
   restarted by `safeshare up`, or, where `up` instead stops every
   service and exits non-zero, by the test starting the stack again --
   and then: the file is not listed, no pending row, no partial or
   orphan blob (S3: no object, no multipart upload), `safeshare fsck`
   exits 0, every earlier file downloads, uploads work again.
4b. Storage frozen (SIGSTOP) mid-upload, the stack up: 503 JSON error,
   no visible file (what is left is printed: the sweep's business).
6. (S3 only) the S3 server stopped (SIGSTOP) mid-upload: 503 JSON error,
   no visible file; back (SIGCONT): uploads work again. Then the server
   killed: 503 at once (not brought back: moto keeps its state and keys
   in memory only).
Figures (sizes, memory, timings) are printed as plain lines.
"""
import argparse
import base64
import hashlib
import http.client
import io
import json
import os
import select
import signal
import sqlite3
import subprocess
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check, expect_error  # noqa: E402
from stack import (Response, Stack, db_env, free_port, pg_drop_schema,  # noqa: E402
                   pg_schema)

MIB = 1 << 20
BIG = 200 * MIB
DEFAULT_CHUNK = MIB            # SAFESHARE_CHUNK_SIZE is left at its default
PRIME = 1048573                # the pattern's period (prime, under 1 MiB)
# Peak RSS bound for gateway and storage over the 200 MiB transfer. The
# streaming path holds at most SAFESHARE_CRYPTO_WINDOW (4) chunks of 1 MiB
# per direction, plus civetweb's threads and the libraries: measured 22
# MiB (gateway) and 20 MiB (storage; 26 MiB on S3, which buffers an 8 MiB
# part) in a Debug build, 12-17 MiB before the transfer. 64 MiB is about
# three times that, room for allocator slack, and still fails at once if
# a third of the file were ever held.
RSS_BOUND_MIB = 64
# Under AddressSanitizer the RSS also holds shadow memory and the
# quarantine of freed blocks (256 MiB by default: it alone would fill up
# with freed chunk buffers). The test caps the quarantine at 16 MiB for
# its stack; measured then: 53 MiB gateway, 46 MiB storage.
ASAN_QUARANTINE_MIB = 16
RSS_BOUND_ASAN_MIB = 96
KILL_RATE = 4 * MIB            # bytes/s of the upload that storage dies under
KILL_AT = 8 * MIB              # ... kill -9 once this much is sent
KILL_SIZE = 96 * MIB           # ... out of this (never reached: ~24 s at the rate)
S3_KILL_AT = 20 * MIB          # on S3: past the first 8 MiB part, so a multipart exists
S3_STOP_AT = 20 * MIB          # the S3 server is stopped once this much is sent
SERVICES = ("safeshare-gateway", "safeshare-storage", "safeshare-crypto",
            "safeshare-auth", "safeshare-mailer")


def as_json(r):
    try:
        v = r.json()
        return v if isinstance(v, dict) else {}
    except ValueError:
        return {}


def error_shape(body):
    """The gateway's error object if body is {"error": {code, message,
    request_id}} with non-empty strings, else None."""
    try:
        v = json.loads(body)
    except (ValueError, TypeError):
        return None
    err = v.get("error") if isinstance(v, dict) else None
    if not isinstance(err, dict):
        return None
    if all(isinstance(err.get(k), str) and err.get(k) for k in ("code", "message",
                                                                "request_id")):
        return err
    return None


class Pattern:
    """`size` bytes where byte o is base[o % PRIME]; regenerated on demand."""

    def __init__(self, size):
        self.size = size
        base = os.urandom(PRIME)
        self.base2 = base + base
        self._sha = None

    def slice(self, off, n):
        out = bytearray()
        while n > 0:
            i = off % PRIME
            take = min(n, PRIME)
            out += self.base2[i:i + take]
            off += take
            n -= take
        return bytes(out)

    def pieces(self, piece=MIB):
        view = memoryview(self.base2)
        off = 0
        while off < self.size:
            n = min(piece, self.size - off, PRIME)
            i = off % PRIME
            yield view[i:i + n]
            off += n

    def sha256(self):
        if self._sha is None:
            d = hashlib.sha256()
            for p in self.pieces():
                d.update(p)
            self._sha = d.hexdigest()
        return self._sha


def send_or_answer(sock, data, timeout):
    """Sends data unless an answer comes first (as curl does: a server
    that gave up on a body answers, then stops reading it, and a blocking
    send would wait forever). True if all was sent, False on an answer."""
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while len(view):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("send stalled for %d s" % timeout)
        readable, writable, _ = select.select([sock], [sock], [], left)
        if readable:
            return False
        if writable:
            n = sock.send(view[:256 * 1024])
            view = view[n:]
    return True


class Upload(threading.Thread):
    """A multipart POST /api/files streamed from `pieces` (never held
    whole), paced at `rate` bytes/s if given. An answer that comes early
    (the gateway gave up on the upload) stops the sending and is read."""

    def __init__(self, stack, token, name, pieces, size, rate=None, timeout=300):
        super().__init__(daemon=True)
        self.stack, self.token, self.name = stack, token, name
        self.pieces, self.size, self.rate, self.timeout = pieces, size, rate, timeout
        self.sent = 0
        self.status, self.body, self.error, self.elapsed = None, b"", None, None
        self.early = False

    def json(self):
        """The answer's JSON object, or {}."""
        try:
            v = json.loads(self.body)
            return v if isinstance(v, dict) else {}
        except (ValueError, TypeError):
            return {}

    def run(self):
        boundary = "----storage" + uuid.uuid4().hex
        head = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (boundary, self.name)).encode()
        tail = ("\r\n--%s--\r\n" % boundary).encode()
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.port, timeout=self.timeout)
        try:
            conn.putrequest("POST", "/api/files")
            conn.putheader("Authorization", "Bearer " + self.token)
            conn.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
            conn.putheader("Content-Length", str(len(head) + self.size + len(tail)))
            conn.endheaders()
            conn.send(head)
            try:
                for piece in self.pieces:
                    if not send_or_answer(conn.sock, piece, self.timeout):
                        self.early = True
                        break
                    self.sent += len(piece)
                    if self.rate:
                        ahead = self.sent / self.rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
                if not self.early:
                    send_or_answer(conn.sock, tail, self.timeout)
            except OSError as e:
                # The gateway may have answered and closed: read what it said.
                self.error = "send: %r" % e
            r = conn.getresponse()
            self.status, self.body = r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            self.error = (self.error + "; " if self.error else "") + "response: %r" % e
        finally:
            conn.close()
            self.elapsed = time.monotonic() - t0


def upload(stack, token, name, pattern, rate=None):
    """A whole upload of `pattern`; returns the finished Upload."""
    up = Upload(stack, token, name, pattern.pieces(), pattern.size, rate)
    up.run()
    return up


def download(stack, path, token=None, headers=None, timeout=300):
    """GET `path`, the body hashed as it comes (not kept past 8 MiB):
    (status, headers dict lower-case, length, sha256 hex, body or None, s)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        digest, n, kept = hashlib.sha256(), 0, bytearray()
        while True:
            b = r.read(MIB)
            if not b:
                break
            digest.update(b)
            n += len(b)
            if n <= 8 * MIB:
                kept += b
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        return (r.status, hdrs, n, digest.hexdigest(), bytes(kept) if n <= 8 * MIB else None,
                time.monotonic() - t0)
    finally:
        conn.close()


def vm_hwm_mib(pid):
    """Peak resident set (VmHWM) of a process in MiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, TypeError):
        pass
    return None


def sanitized(pid):
    """Whether the process runs under AddressSanitizer (its shadow memory
    and quarantine count in its RSS)."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except (OSError, TypeError):
        return False


def file_contains(path, needle, step=16 * MIB):
    """Whether the file holds `needle` (read in overlapping steps)."""
    keep = len(needle) - 1
    prev = b""
    with open(path, "rb") as f:
        while True:
            b = f.read(step)
            if not b:
                return False
            if needle in prev + b:
                return True
            prev = b[-keep:] if keep else b""


def tree_files(top):
    out = []
    for dirpath, _, names in os.walk(top):
        out += [os.path.join(dirpath, n) for n in names]
    return sorted(out)


def not_checked(what):
    """A check the s3rver fallback cannot support: said, not passed."""
    print("NOT CHECKED on s3rver: %s (s3rver 3.7.1 answers ListMultipartUploads "
          "501 NotImplemented)" % what)


class S3Peer:
    """The S3 server of scripts/s3-test-server.sh (moto, which checks every
    SigV4 signature; s3rver, which does not, only where moto is missing:
    said in the output) and awscli's view of its bucket."""

    def __init__(self, root):
        self.script = os.path.join(root, "scripts", "s3-test-server.sh")
        self.dir = tempfile.mkdtemp(prefix="ss-s3-", dir="/tmp")
        self.port = free_port()
        self.env = {}

    def start(self):
        r = subprocess.run([self.script, "start", self.dir, str(self.port)],
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("s3-test-server.sh start failed (%d): %s" % (
                r.returncode, r.stderr.decode(errors="replace")))
        for line in r.stdout.decode().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                self.env[k] = v
        print("S3 server: %s at %s, bucket %s, SigV4 signatures %s" % (
            self.env.get("SAFESHARE_TEST_S3_SERVER"), self.env.get("SAFESHARE_TEST_S3_ENDPOINT"),
            self.env.get("SAFESHARE_TEST_S3_BUCKET"),
            "checked" if self.env.get("SAFESHARE_TEST_S3_SIGNED") == "1"
            else "NOT checked (s3rver: moto is missing)"))

    def stop(self):
        subprocess.run([self.script, "stop", self.dir], capture_output=True, timeout=60)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pid(self):
        try:
            with open(os.path.join(self.dir, "pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stack_env(self):
        e = self.env
        return {"SAFESHARE_STORAGE_BACKEND": "s3",
                "SAFESHARE_S3_ENDPOINT": e["SAFESHARE_TEST_S3_ENDPOINT"],
                "SAFESHARE_S3_BUCKET": e["SAFESHARE_TEST_S3_BUCKET"],
                "SAFESHARE_S3_REGION": e["SAFESHARE_TEST_S3_REGION"],
                "SAFESHARE_S3_ACCESS_KEY": e["SAFESHARE_TEST_S3_ACCESS_KEY"],
                "SAFESHARE_S3_SECRET_KEY": e["SAFESHARE_TEST_S3_SECRET_KEY"]}

    def aws(self, *args, out=None):
        """/usr/bin/aws s3api ARGS against the test server (Debian's awscli:
        the `aws` on PATH may be another build); JSON output parsed."""
        env = dict(os.environ)
        env.update({"AWS_ACCESS_KEY_ID": self.env["SAFESHARE_TEST_S3_ACCESS_KEY"],
                    "AWS_SECRET_ACCESS_KEY": self.env["SAFESHARE_TEST_S3_SECRET_KEY"],
                    "AWS_DEFAULT_REGION": self.env["SAFESHARE_TEST_S3_REGION"],
                    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                    "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": ""})
        argv = ["/usr/bin/aws", "--endpoint-url", self.env["SAFESHARE_TEST_S3_ENDPOINT"],
                "--output", "json", "s3api"] + list(args) + \
            ["--bucket", self.env["SAFESHARE_TEST_S3_BUCKET"]]
        if out:
            argv.append(out)
        r = subprocess.run(argv, env=env, capture_output=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("aws s3api %s failed (%d): %s" % (
                args[0], r.returncode, r.stderr.decode(errors="replace")[-500:]))
        text = r.stdout.decode().strip()
        return json.loads(text) if text else {}

    def objects(self):
        """{key: size} of every object in the bucket (awscli pages itself)."""
        v = self.aws("list-objects-v2")
        return {o["Key"]: o["Size"] for o in v.get("Contents", []) or []}

    def multiparts(self):
        """Keys of the multipart uploads in progress; None on s3rver, which
        has no ListMultipartUploads (501): the callers say NOT CHECKED."""
        if self.env.get("SAFESHARE_TEST_S3_SERVER") == "s3rver":
            return None
        v = self.aws("list-multipart-uploads")
        return [u["Key"] for u in v.get("Uploads", []) or []]

    def partials(self):
        return self.multiparts()

    def key_of(self, fid, keys):
        mine = [k for k in keys if k.endswith(fid)]
        return mine[0] if len(mine) == 1 else None

    def check_no_plaintext(self, ctx, fid, marker):
        objs = self.objects()
        key = self.key_of(fid, objs)
        check(key is not None and objs[key] > 0,
              "awscli lists the file's object %r (%s bytes)" % (key, objs.get(key)),
              repr(sorted(objs)))
        path = os.path.join(self.dir, "object.bin")
        hits, got = [], 0
        for k in sorted(objs):
            self.aws("get-object", "--key", k, out=path)
            got += os.path.getsize(path)
            if file_contains(path, marker):
                hits.append(k)
            if k == key:
                check(os.path.getsize(path) == objs[k] and objs[k] > ctx.marker_size,
                      "awscli get-object of it: %d bytes, larger than the plaintext (%d)"
                      % (objs[k], ctx.marker_size))
            os.unlink(path)
        check(objs and not hits, "the marker is in none of the %d objects (%d bytes) awscli "
              "gets from the bucket" % (len(objs), got), repr(hits))
        blobs = ctx.blob_paths()
        hits = [p for p in blobs if file_contains(p, marker)]
        check(not hits, "nor in any of the %d files under the blob dir" % len(blobs),
              repr(hits))

    def check_no_orphan(self, ctx, killed_id, committed):
        objs = self.objects()
        mp = self.multiparts()
        if mp is None:
            not_checked("no multipart upload left in the bucket after the restart's sweep")
        else:
            check(not mp, "no multipart upload left in the bucket (awscli "
                  "list-multipart-uploads)", repr(mp))
        stray = [k for k in objs if k[-32:] not in committed]
        check(not stray and len(objs) == len(committed),
              "the bucket holds exactly the committed files' objects (%d): no orphan"
              % len(committed), repr(stray))
        check(killed_id is None or not any(k.endswith(killed_id) for k in objs),
              "no object of the killed upload")

    def server_stopped(self, ctx):
        """6: the S3 server stopped (SIGSTOP: it holds its connections and
        answers nothing) mid-upload, then back (SIGCONT); then killed."""
        stack = ctx.stack
        pat = Pattern(KILL_SIZE)
        before = {f.get("id") for f in (ctx.listed() or [])}
        up = Upload(stack, ctx.ops, "s3-stopped.bin", pat.pieces(256 * 1024), pat.size,
                    rate=KILL_RATE, timeout=120)
        up.start()
        while up.is_alive() and up.sent < S3_STOP_AT:
            time.sleep(0.02)
        pid = self.pid()
        os.kill(pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        up.join(timeout=120)
        took = time.monotonic() - t_stop
        err = error_shape(up.body) or {}
        print("S3 server stopped (SIGSTOP) at %d MiB sent: the upload answered %r %r after "
              "%.1f s" % (up.sent // MIB, up.status, err.get("code"), took))
        try:
            check(up.status == 503 and err,
                  "upload with the S3 server stopped -> 503 with the JSON error shape",
                  "status=%r body=%r error=%r" % (up.status, up.body[:300], up.error))
            files = ctx.listed()
            check(files is not None and not any(f.get("name") == "s3-stopped.bin"
                                                for f in files),
                  "... and the file is not in GET /api/files", repr(files))
        finally:
            os.kill(pid, signal.SIGCONT)
        pat2 = Pattern(9 * MIB + 77)
        up2 = upload(stack, ctx.ops, "s3-back.bin", pat2)
        meta = up2.json()
        ok = check(up2.status == 201 and meta.get("sha256") == pat2.sha256(),
                   "the S3 server back (SIGCONT): an upload works again (multipart, 9 MiB)",
                   "status=%r body=%r" % (up2.status, up2.body[:300]))
        if ok:
            status, _, n, dsha, _, _ = download(stack, "/api/files/%s/content" % meta["id"],
                                                token=ctx.ops)
            check(status == 200 and dsha == pat2.sha256(), "... and downloads exactly")
        files = ctx.listed() or []
        check({f.get("id") for f in files} - before == ({meta.get("id")} if ok else set()),
              "GET /api/files gained only that file", repr([f.get("name") for f in files]))
        print("multipart uploads in the bucket after the server came back: %r"
              % self.multiparts())

        # Killed outright (connection refused): a clear 503 at once.
        self.stop()
        t0 = time.monotonic()
        up3 = upload(stack, ctx.ops, "s3-gone.bin", Pattern(12 * MIB))
        err = error_shape(up3.body) or {}
        print("S3 server killed: the upload answered %r %r after %.1f s"
              % (up3.status, err.get("code"), time.monotonic() - t0))
        check(up3.status == 503 and err,
              "upload with the S3 server gone -> 503 with the JSON error shape",
              "status=%r body=%r error=%r" % (up3.status, up3.body[:300], up3.error))
        files = ctx.listed()
        check(files is not None and not any(f.get("name") == "s3-gone.bin" for f in files),
              "... and the file is not in GET /api/files")


class Ctx:
    """What the sections share: stack, tokens, the files made so far."""

    def __init__(self, args, stack, schema_url):
        self.args = args
        self.stack = stack
        self.schema_url = schema_url
        self.ops = None
        self.client = None
        self.client_id = None
        self.linked = None
        self.files = {}    # id -> Pattern of what was uploaded
        self.chunk = DEFAULT_CHUNK
        self.s3 = None
        self.marker_size = 0

    # --- storage's own view ----------------------------------------
    def db_files(self):
        """(id, state) of every row of storage's files table."""
        if self.schema_url:
            r = subprocess.run(["psql", self.schema_url, "-tAF", " ", "-v", "ON_ERROR_STOP=1",
                                "-c", "SELECT id, state FROM files"],
                               capture_output=True, timeout=30)
            if r.returncode != 0:
                raise AssertionError("psql: %s" % r.stderr.decode(errors="replace"))
            return [tuple(ln.split(" ", 1)) for ln in r.stdout.decode().splitlines() if ln]
        path = os.path.join(self.stack.data_dir, "storage.db")
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        try:
            return [tuple(row) for row in db.execute("SELECT id, state FROM files")]
        finally:
            db.close()

    def db_rows(self, sql):
        """Rows of a query on storage's DB, every value as a string."""
        if self.schema_url:
            r = subprocess.run(["psql", self.schema_url, "-tA", "-F", "\x1f", "-v",
                                "ON_ERROR_STOP=1", "-c", sql], capture_output=True, timeout=30)
            if r.returncode != 0:
                raise AssertionError("psql: %s" % r.stderr.decode(errors="replace"))
            return [tuple(ln.split("\x1f")) for ln in r.stdout.decode().splitlines() if ln]
        path = os.path.join(self.stack.data_dir, "storage.db")
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        try:
            return [tuple("" if v is None else str(v) for v in row) for row in db.execute(sql)]
        finally:
            db.close()

    def blob_paths(self):
        return tree_files(os.path.join(self.stack.data_dir, "blobs"))

    def listed(self):
        """Every file GET /api/files shows ops (all pages), or None."""
        out, cursor = [], ""
        for _ in range(100):
            r = self.stack.request("GET", "/api/files?limit=100" +
                                   ("&cursor=" + cursor if cursor else ""), token=self.ops)
            if r.status != 200:
                return None
            body = as_json(r)
            out += body.get("files", [])
            cursor = body.get("next_cursor") or ""
            if not cursor:
                return out
        return None

    def pids(self):
        return {name: self.stack.service_pid(name) for name in SERVICES}


# ---- 1. 200 MiB --------------------------------------------------------
def big_file(ctx):
    stack = ctx.stack
    pids = ctx.pids()
    gw, st = pids["safeshare-gateway"], pids["safeshare-storage"]
    check(gw is not None and st is not None, "gateway and storage processes found",
          repr(pids))
    before = {n: vm_hwm_mib(p) for n, p in pids.items()}
    big = Pattern(BIG)
    t0 = time.monotonic()
    sha = big.sha256()
    print("200 MiB file: %d bytes, SHA-256 %s (hashed in %.1f s)"
          % (BIG, sha, time.monotonic() - t0), flush=True)
    up = upload(stack, ctx.ops, "big-200MiB.bin", big)
    meta = up.json()
    ok = check(up.status == 201 and meta.get("size") == BIG and meta.get("sha256") == sha,
               "200 MiB upload: 201, size and SHA-256 of the plaintext exact",
               "status=%r error=%r body=%r" % (up.status, up.error, up.body[:300]))
    print("upload 200 MiB: %.1f s, %.1f MiB/s" % (up.elapsed, BIG / MIB / up.elapsed))
    after_up = {n: vm_hwm_mib(p) for n, p in pids.items()}
    if not ok:
        return
    fid = meta["id"]
    ctx.files[fid] = big
    status, hdrs, n, dsha, _, took = download(stack, "/api/files/%s/content" % fid,
                                              token=ctx.ops)
    check(status == 200 and n == BIG and dsha == sha and
          hdrs.get("content-length") == str(BIG),
          "200 MiB download: 200, Content-Length and SHA-256 equal to the upload",
          "status=%r len=%d sha=%s" % (status, n, dsha))
    print("download 200 MiB: %.1f s, %.1f MiB/s" % (took, BIG / MIB / took))
    after_down = {n_: vm_hwm_mib(p) for n_, p in pids.items()}
    for name in SERVICES:
        print("peak RSS (VmHWM) %-18s before %6.1f MiB, after upload %6.1f MiB, "
              "after download %6.1f MiB" % (name, before[name] or -1, after_up[name] or -1,
                                            after_down[name] or -1))
    asan = sanitized(gw)
    bound = RSS_BOUND_ASAN_MIB if asan else RSS_BOUND_MIB
    if asan:
        print("services run under AddressSanitizer (quarantine capped at %d MiB): bound %d MiB"
              % (ASAN_QUARANTINE_MIB, bound))
    for name in ("safeshare-gateway", "safeshare-storage"):
        peak = after_down[name]
        check(peak is not None and peak < bound,
              "%s peak RSS %.1f MiB < %d MiB over a 200 MiB upload and download"
              % (name, peak or -1, bound))
    # The last byte of 200 MiB: only the last chunk is read and decrypted.
    status, hdrs, n, _, body, took = download(stack, "/api/files/%s/content" % fid,
                                              token=ctx.ops,
                                              headers={"Range": "bytes=-1"})
    check(status == 206 and body == big.slice(BIG - 1, 1) and
          hdrs.get("content-range") == "bytes %d-%d/%d" % (BIG - 1, BIG - 1, BIG),
          "the last byte of the 200 MiB file as a range: 206, that byte",
          "status=%r cr=%r" % (status, hdrs.get("content-range")))
    print("range bytes=-1 of the 200 MiB file: %.3f s" % took)


# ---- 2. ranges ---------------------------------------------------------
def ranges(ctx):
    stack = ctx.stack
    c = DEFAULT_CHUNK
    size = 3 * c + c // 2 + 7          # three whole chunks and a partial one
    pat = Pattern(size)
    up = upload(stack, ctx.ops, "ranges.bin", pat)
    meta = up.json()
    if not check(up.status == 201 and meta.get("sha256") == pat.sha256(),
                 "upload of the range file (%d bytes)" % size, repr(up.body[:300])):
        return
    fid = meta["id"]
    ctx.files[fid] = pat
    r = stack.request("GET", "/api/files/" + fid, token=ctx.ops)
    cs = as_json(r).get("chunk_size")
    if check(isinstance(cs, int) and cs > 0, "the file's metadata has its chunk_size (%r)" % cs,
             repr(r)):
        c = cs
    else:
        print("  (ranges below use the configured chunk size, %d)" % c)
    ctx.chunk = c
    s = size
    cases = [
        ("first byte", "bytes=0-0", 0, 0),
        ("last byte", "bytes=%d-%d" % (s - 1, s - 1), s - 1, s - 1),
        ("exactly chunk 1", "bytes=%d-%d" % (c, 2 * c - 1), c, 2 * c - 1),
        ("the last byte of chunk 0 and the first of chunk 1", "bytes=%d-%d" % (c - 1, c),
         c - 1, c),
        ("across chunks 1|2, inside both", "bytes=%d-%d" % (2 * c - 1000, 2 * c + 999),
         2 * c - 1000, 2 * c + 999),
        ("across three chunks", "bytes=%d-%d" % (c // 2, 2 * c + c // 2), c // 2,
         2 * c + c // 2),
        ("inside chunk 2", "bytes=%d-%d" % (2 * c + 1000, 2 * c + 5000), 2 * c + 1000,
         2 * c + 5000),
        ("open-ended from a chunk boundary", "bytes=%d-" % (3 * c), 3 * c, s - 1),
        ("open-ended inside chunk 1", "bytes=%d-" % (c + 12345), c + 12345, s - 1),
        ("suffix inside the last chunk", "bytes=-5000", s - 5000, s - 1),
        ("suffix across the last two chunks", "bytes=-%d" % (c // 2 + 100),
         s - (c // 2 + 100), s - 1),
        ("suffix longer than the file", "bytes=-%d" % (s + 10), 0, s - 1),
        ("end past the size", "bytes=%d-%d" % (s - 10, s + 1000), s - 10, s - 1),
        ("whole file", "bytes=0-%d" % (s - 1), 0, s - 1),
        ("whole file, open-ended", "bytes=0-", 0, s - 1),
    ]
    path = "/api/files/%s/content" % fid
    for label, rng, a, b in cases:
        status, hdrs, n, _, body, _ = download(stack, path, token=ctx.ops,
                                               headers={"Range": rng})
        want = pat.slice(a, b - a + 1)
        check(status == 206 and body == want and
              hdrs.get("content-range") == "bytes %d-%d/%d" % (a, b, s) and
              hdrs.get("content-length") == str(b - a + 1),
              "range %s (%s): 206, Content-Range bytes %d-%d/%d, the uploaded bytes"
              % (label, rng, a, b, s),
              "status=%r cr=%r cl=%r len=%d equal=%s" % (
                  status, hdrs.get("content-range"), hdrs.get("content-length"), n,
                  body == want))
    for rng in ("bytes=%d-" % s, "bytes=%d-%d" % (s + 100, s + 200), "bytes=-0"):
        r = stack.request("GET", path, token=ctx.ops, headers={"Range": rng})
        ok = r.header("Content-Range") == "bytes */%d" % s
        expect_error(r, 416, "range_not_satisfiable", "range %s of a %d-byte file" % (rng, s))
        check(ok, "... with Content-Range: bytes */%d" % s, repr(r.header("Content-Range")))
    status, hdrs, n, dsha, _, _ = download(stack, path, token=ctx.ops)
    etag = hdrs.get("etag")
    check(status == 200 and dsha == pat.sha256() and etag == '"%s"' % pat.sha256(),
          "whole download: 200, bytes equal, ETag is the quoted SHA-256", repr(etag))
    r = stack.request("GET", path, token=ctx.ops, headers={"If-None-Match": etag or "x"})
    check(r.status == 304 and r.body == b"" and r.header("ETag") == etag,
          "If-None-Match with the ETag -> 304, no body, the ETag", repr(r))
    r = stack.request("GET", path, token=ctx.ops, headers={"If-None-Match": '"0000"'})
    check(r.status == 200 and r.body == pat.slice(0, s),
          "If-None-Match with another ETag -> 200, the whole file", repr(r)[:100])

    # Through a share link (anonymous): the same bytes, 304 and 416.
    r = stack.request("POST", "/api/files/%s/links" % fid,
                      {"expires_in": 600, "max_downloads": 20}, token=ctx.ops)
    link = as_json(r)
    if not check(r.status == 201 and link.get("token"), "a share link of the range file",
                 repr(r)):
        return
    lpath = "/api/download/" + link["token"]
    for label, rng, a, b in (cases[4], cases[10], cases[0], cases[8]):
        status, hdrs, n, _, body, _ = download(stack, lpath, headers={"Range": rng})
        check(status == 206 and body == pat.slice(a, b - a + 1) and
              hdrs.get("content-range") == "bytes %d-%d/%d" % (a, b, s),
              "through the link, range %s (%s): 206, the uploaded bytes" % (label, rng),
              "status=%r cr=%r len=%d" % (status, hdrs.get("content-range"), n))
    r = stack.request("GET", lpath, headers={"If-None-Match": etag or "x"})
    check(r.status == 304 and r.body == b"", "through the link, If-None-Match -> 304",
          repr(r))
    r = stack.request("GET", lpath, headers={"Range": "bytes=%d-" % s})
    expect_error(r, 416, "range_not_satisfiable", "through the link, range bytes=%d-" % s)
    check(r.header("Content-Range") == "bytes */%d" % s,
          "... with Content-Range: bytes */%d" % s, repr(r.header("Content-Range")))
    status, hdrs, n, dsha, _, _ = download(stack, lpath)
    check(status == 200 and dsha == pat.sha256(), "through the link, the whole file: 200",
          "status=%r" % status)


# ---- 3. 50 concurrent redeems of a one-time link ------------------------
def one_time_race(ctx, n_clients=50):
    stack = ctx.stack
    pat = Pattern(ctx.chunk + 12345)       # two chunks
    up = upload(stack, ctx.ops, "one-time.bin", pat)
    meta = up.json()
    if not check(up.status == 201 and meta.get("id"), "upload of the one-time file",
                 repr(up.body[:300])):
        return
    ctx.files[meta["id"]] = pat
    r = stack.request("POST", "/api/files/%s/links" % meta["id"],
                      {"expires_in": 600, "max_downloads": 1}, token=ctx.ops)
    link = as_json(r)
    if not check(r.status == 201 and link.get("token"), "a one-time link (max_downloads 1)",
                 repr(r)):
        return
    path = "/api/download/" + link["token"]
    barrier = threading.Barrier(n_clients)
    results = [None] * n_clients

    def redeem(i):
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
        try:
            conn.connect()
            barrier.wait(timeout=30)
            conn.request("GET", path)
            r = conn.getresponse()
            results[i] = (r.status, r.read())
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as e:
            results[i] = (None, repr(e).encode())
        finally:
            conn.close()

    threads = [threading.Thread(target=redeem, args=(i,), daemon=True)
               for i in range(n_clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    took = time.monotonic() - t0
    wins = [b for s, b in results if s == 200]
    codes = [(error_shape(b) or {}).get("code") for s, b in results if s == 410]
    others = [(s, b[:120]) for s, b in results if s not in (200, 410)]
    print("%d concurrent redeems of a one-time link: %d x 200, %d x 410, %d other, %.2f s"
          % (n_clients, len(wins), len(codes), len(others), took))
    check(len(wins) == 1 and wins[0] == pat.slice(0, pat.size),
          "exactly one of %d concurrent redeems gets 200 with the whole file" % n_clients,
          "wins=%d others=%r" % (len(wins), others[:3]))
    check(len(codes) == n_clients - 1 and all(c == "link_exhausted" for c in codes),
          "the other %d get 410 link_exhausted" % (n_clients - 1),
          "codes=%r others=%r" % (sorted(set(map(str, codes))), others[:3]))
    expect_error(stack.request("GET", path), 410, "link_exhausted",
                 "a redeem after the race")


# ---- 5. no plaintext at rest --------------------------------------------
def no_plaintext(ctx):
    stack = ctx.stack
    marker = ("SAFESHARE-PLAINTEXT-MARKER-%s" % uuid.uuid4().hex).encode()
    line = marker + b" the quick brown fox, low-entropy text that compresses well\n"
    data = line * ((ctx.chunk * 2 + 100) // len(line) + 1)      # three chunks
    up = Upload(stack, ctx.ops, "report.txt", [data], len(data))
    up.run()
    meta = up.json()
    if not check(up.status == 201 and meta.get("sha256") == hashlib.sha256(data).hexdigest(),
                 "upload of a %d-byte text full of a marker string" % len(data),
                 repr(up.body[:300])):
        return
    fid = meta["id"]
    ctx.marker_size = len(data)
    r = stack.request("GET", "/api/files/%s/content" % fid, token=ctx.ops)
    check(r.status == 200 and marker in r.body,
          "control: the download has the marker (so a search for it can succeed)")
    control = os.path.join(stack.data_dir, "control-marker.txt")
    with open(control, "wb") as f:
        f.write(b"x" * 5000 + marker)
    check(file_contains(control, marker), "control: the search finds the marker in a file")
    os.unlink(control)

    if ctx.s3:
        ctx.s3.check_no_plaintext(ctx, fid, marker)
    else:
        blobs = ctx.blob_paths()
        mine = [p for p in blobs if os.path.basename(p) == fid]
        check(len(mine) == 1 and os.path.getsize(mine[0]) > len(data),
              "the file's blob is on disk, larger than the plaintext (%s bytes)"
              % (os.path.getsize(mine[0]) if mine else None), repr(blobs))
        hits = [p for p in blobs if file_contains(p, marker)]
        check(blobs and not hits, "the marker is in none of the %d files under the blob dir"
              % len(blobs), repr(hits))
    dbs = [p for p in tree_files(stack.data_dir)
           if os.path.basename(p).startswith(("storage.db", "auth.db"))]
    if ctx.schema_url:
        schema = ctx.schema_url.rsplit("%3D", 1)[-1]
        r = subprocess.run(["pg_dump", ctx.schema_url.split("?")[0], "-n", schema],
                           capture_output=True, timeout=60)
        check(r.returncode == 0 and b"CREATE TABLE" in r.stdout and marker not in r.stdout,
              "the marker is not in pg_dump of the schema (%d bytes)" % len(r.stdout),
              r.stderr.decode(errors="replace")[:300])
    else:
        hits = [p for p in dbs if file_contains(p, marker)]
        check(any(p.endswith("storage.db") for p in dbs) and not hits,
              "the marker is in none of the DB files %s"
              % sorted(os.path.basename(p) for p in dbs), repr(hits))
    check(marker.decode() not in stack.logs_all(), "the marker is in no log line")
    every = [p for p in tree_files(stack.data_dir) if os.path.isfile(p)]
    hits = [p for p in every if file_contains(p, marker)]
    check(not hits, "the marker is in none of the %d files under the data dir (%d bytes: "
          "blobs, DBs, keys, mail, logs)" % (len(every), sum(os.path.getsize(p) for p in every)),
          repr(hits))


# ---- 7. delete ------------------------------------------------------------
def delete(ctx):
    """DELETE removes row (and so the wrapped DEK) and blob / object."""
    stack = ctx.stack
    pat = Pattern(ctx.chunk * 2 + 99)
    up = upload(stack, ctx.ops, "to-delete.bin", pat)
    fid = up.json().get("id")
    if not check(up.status == 201 and fid, "upload of a file to delete", repr(up.body[:300])):
        return
    keys = ctx.s3.objects() if ctx.s3 else [os.path.basename(p) for p in ctx.blob_paths()]
    check(any(k.endswith(fid) for k in keys), "control: its blob / object is there")
    r = stack.request("DELETE", "/api/files/" + fid, token=ctx.ops)
    check(r.status in (200, 204), "DELETE /api/files/{id} by its owner -> %d" % r.status,
          repr(r))
    expect_error(stack.request("GET", "/api/files/%s/content" % fid, token=ctx.ops), 404,
                 "file_not_found", "its content after the delete")
    check(fid not in {i for i, _ in ctx.db_files()}, "its row (with the wrapped DEK) is gone")
    keys = ctx.s3.objects() if ctx.s3 else [os.path.basename(p) for p in ctx.blob_paths()]
    check(not any(k.endswith(fid) for k in keys),
          "its %s is gone" % ("object (awscli list-objects-v2)" if ctx.s3 else "blob"),
          repr([k for k in keys if k.endswith(fid)]))


# ---- 4. kill -9 of storage mid-upload -----------------------------------
def storage_killed(ctx):
    stack = ctx.stack
    before_ids = {f.get("id") for f in (ctx.listed() or [])}
    pat = Pattern(KILL_SIZE)
    up = Upload(stack, ctx.ops, "killed-midway.bin", pat.pieces(256 * 1024), pat.size,
                rate=KILL_RATE, timeout=120)
    up.start()
    deadline = time.monotonic() + 30
    kill_at = S3_KILL_AT if ctx.s3 else KILL_AT
    while up.is_alive() and up.sent < kill_at and time.monotonic() < deadline:
        time.sleep(0.02)
    pending = [i for i, s in ctx.db_files() if s == "pending"]
    partial = ctx.s3.partials() if ctx.s3 else \
        [p for p in ctx.blob_paths() if p.endswith(".part")]
    check(up.is_alive() and len(pending) == 1,
          "upload under way (%d MiB sent): storage has its pending row" % (up.sent // MIB),
          "pending=%r alive=%s" % (pending, up.is_alive()))
    if partial is None:
        not_checked("... and a multipart upload in progress before the kill -9")
    else:
        check(len(partial) >= 1, "... and a partial blob / multipart upload in progress",
              repr(partial))
    pids_before = ctx.pids()
    st_pid = pids_before["safeshare-storage"]
    os.kill(st_pid, signal.SIGKILL)
    t_kill = time.monotonic()
    up.join(timeout=90)
    err = error_shape(up.body) or {}
    print("storage kill -9'd at %d MiB sent; the upload answered %r %r after %.1f s (%s)"
          % (kill_at // MIB, up.status, err.get("code"), time.monotonic() - t_kill,
             "stopped sending on the early answer" if up.early else "error=%r" % up.error))
    check(not up.is_alive() and up.status is not None and 500 <= up.status < 600 and err,
          "the upload answers a 5xx with the JSON error shape",
          "status=%r body=%r error=%r" % (up.status, up.body[:300], up.error))
    check(up.sent < pat.size, "... before the whole body was sent (%d of %d MiB)"
          % (up.sent // MIB, pat.size // MIB))

    # Does the supervisor bring storage back, or stop the stack? Wait for
    # either outcome.
    restarted, exited = None, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if stack.proc.poll() is not None:
            exited = stack.proc.returncode
            break
        p = stack.service_pid("safeshare-storage")
        if p and p != st_pid:
            restarted = p
            break
        time.sleep(0.05)
    if restarted:
        now = ctx.pids()
        kept = sorted(n for n in SERVICES if n != "safeshare-storage" and
                      now.get(n) == pids_before.get(n))
        print("`safeshare up` restarted storage %.1f s after the kill (pid %d -> %d); "
              "kept their pids: %s" % (time.monotonic() - t_kill, st_pid, restarted,
                                       ", ".join(kept)))
    elif exited is None:
        check(False, "within 30 s of the kill storage is restarted or `safeshare up` exits",
              repr(ctx.pids()))
        return
    else:
        print("`safeshare up` does not restart a killed service: it stopped the others and "
              "exited %r %.1f s after the kill; the test starts the stack again"
              % (exited, time.monotonic() - t_kill))
        check(exited is not None and exited != 0 and stack.our_processes() == [],
              "... exiting non-zero with no service left running",
              "rc=%r left=%r" % (exited, stack.our_processes()))
        stack.stop()
        t0 = time.monotonic()
        stack.start()
        print("stack ready again %.1f s after `safeshare up`" % (time.monotonic() - t0))
        r = stack.login("ops@example.com", OPS_PW)
        ctx.ops = as_json(r).get("access")
    deadline = time.monotonic() + 30
    while stack.request("GET", "/readyz").status != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    check(stack.request("GET", "/readyz").status == 200, "the stack is ready again")
    files = ctx.listed()
    check(files is not None and not any(f.get("name") == "killed-midway.bin" for f in files)
          and {f.get("id") for f in files} == before_ids,
          "the killed upload is not in GET /api/files, every earlier file still is",
          repr([f.get("name") for f in files or []]))
    rows = ctx.db_files()
    check(not [i for i, s in rows if s == "pending"],
          "no pending row left in storage's DB after the restart (%d rows, all committed)"
          % len(rows), repr([r_ for r_ in rows if r_[1] == "pending"]))
    killed_id = pending[0] if pending else None
    check(killed_id is not None and killed_id not in {i for i, _ in rows},
          "the killed upload's row is gone", repr(killed_id))
    committed = {i for i, s in rows if s == "committed"}
    if ctx.s3:
        ctx.s3.check_no_orphan(ctx, killed_id, committed)
    else:
        blobs = ctx.blob_paths()
        check(sorted(os.path.basename(p) for p in blobs) == sorted(committed),
              "the blob dir holds exactly the committed files' blobs: no partial, no orphan",
              repr([p for p in blobs if os.path.basename(p) not in committed]))
    t0 = time.monotonic()
    r = stack.cli("fsck", check=False)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    print("safeshare fsck: exit %d in %.1f s: %s" % (r.returncode, time.monotonic() - t0,
                                                     out.splitlines()[-1] if out else ""))
    check(r.returncode == 0, "safeshare fsck exits 0", out[-2000:])
    pat2 = Pattern(300 * 1024 + 5)
    up2 = upload(stack, ctx.ops, "after-restart.bin", pat2)
    meta = up2.json()
    ok = check(up2.status == 201 and meta.get("sha256") == pat2.sha256(),
               "an upload after the restart works", repr(up2.body[:300]))
    if ok:
        ctx.files[meta["id"]] = pat2
    for fid, p in list(ctx.files.items()):
        if p.size > 16 * MIB:
            continue
        status, _, n, dsha, _, _ = download(stack, "/api/files/%s/content" % fid,
                                            token=ctx.ops)
        check(status == 200 and dsha == p.sha256(),
              "file %s (%d bytes) downloads exactly after the restart" % (fid[:8], p.size))


def storage_frozen(ctx):
    """4b. Storage alive but answering nothing (SIGSTOP) mid-upload: what
    the gateway answers when it stays up (the supervisor sees no exit)."""
    stack = ctx.stack
    pat = Pattern(KILL_SIZE)
    up = Upload(stack, ctx.ops, "frozen-midway.bin", pat.pieces(256 * 1024), pat.size,
                rate=KILL_RATE, timeout=120)
    up.start()
    deadline = time.monotonic() + 30
    while up.is_alive() and up.sent < KILL_AT and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = stack.service_pid("safeshare-storage")
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        up.join(timeout=90)
    finally:
        os.kill(pid, signal.SIGCONT)
    err = error_shape(up.body) or {}
    print("storage frozen (SIGSTOP) at %d MiB sent: the upload answered %r %r after %.1f s"
          % (up.sent // MIB, up.status, err.get("code"), time.monotonic() - t0))
    check(up.status == 503 and err,
          "upload with storage frozen -> 503 with the JSON error shape",
          "status=%r body=%r error=%r" % (up.status, up.body[:300], up.error))
    files = ctx.listed()
    check(files is not None and not any(f.get("name") == "frozen-midway.bin" for f in files),
          "... and, storage thawed, the file is not in GET /api/files")
    # What is left behind is the sweep's business (stale after an age):
    # printed, not asserted.
    pending = [i for i, st in ctx.db_files() if st == "pending"]
    partial = ctx.s3.partials() if ctx.s3 else \
        [p for p in ctx.blob_paths() if p.endswith(".part")]
    print("after the thaw: %d pending row(s), %s partial blob(s) / multipart upload(s) "
          "(left to the sweep)" % (len(pending), "?" if partial is None else len(partial)))


OPS_PW = "correct horse battery staple"


# ---- 8..12: upload policy, files, links, delete with links, size limit ---
# What the gateway's and storage's own tests check against fake services,
# here through the real stack on this run's database and backend.

CLIENT_PW = "client horse battery staple"
LINK_MAX_TTL = 7200            # SAFESHARE_LINK_MAX_TTL of the stack (default 7 days)
LIMIT_BYTES = MIB              # SAFESHARE_MAX_UPLOAD_BYTES of the size-limit stack
OOXML_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def disposition(name):
    """Content-Disposition as RFC 6266 wants it for `name`: an ASCII
    fallback (printable ASCII but `"` and `\\`, the rest `_`) and
    filename*=UTF-8'' with every byte that is not an RFC 5987 attr-char
    percent-encoded."""
    raw = name.encode("utf-8")
    fallback = "".join(chr(c) if 0x20 <= c < 0x7f and c not in (0x22, 0x5c) else "_"
                       for c in raw)
    attr = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
               b"!#$&+-.^_`|~")
    enc = "".join(chr(c) if c in attr else "%%%02X" % c for c in raw)
    return "attachment; filename=\"%s\"; filename*=UTF-8''%s" % (fallback, enc)


def post_raw(stack, path, data, token=None, headers=None, chunked=False, piece=64 * 1024,
             timeout=60):
    """POST `data` as a raw body (Content-Length, or chunked), stopping the
    sending at an early answer (a refusal closes the connection with the
    body unread). Returns (Response, bytes of the body sent)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=timeout)
    sent = 0
    try:
        conn.putrequest("POST", path)
        if token:
            conn.putheader("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        view = memoryview(data)
        try:
            while sent < len(data):
                n = min(piece, len(data) - sent)
                part = view[sent:sent + n]
                frame = (b"%x\r\n" % n + bytes(part) + b"\r\n") if chunked else part
                if not send_or_answer(conn.sock, frame, timeout):
                    break
                sent += n
            else:
                if chunked:
                    send_or_answer(conn.sock, b"0\r\n\r\n", timeout)
        except OSError:
            pass                       # answered and closed: read what it said
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read()), sent
    finally:
        conn.close()


def multipart_body(name, data, field="file"):
    boundary = "----policy" + uuid.uuid4().hex
    head = ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, field, name))
    return (head.encode() + data + ("\r\n--%s--\r\n" % boundary).encode(),
            "multipart/form-data; boundary=" + boundary)


def docx_bytes(telling=True):
    """A small OOXML package built with zipfile: [Content_Types].xml first
    (as Word writes it), or, telling=False, a ZIP of one text file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        if telling:
            z.writestr("[Content_Types].xml",
                       '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                       '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                       'content-types"><Default Extension="xml" ContentType="application/'
                       'xml"/><Override PartName="/word/document.xml" ContentType="'
                       + OOXML_DOCX.replace("document", "document.main+xml") + '"/></Types>')
            z.writestr("_rels/.rels", "<Relationships/>")
            z.writestr("word/document.xml", "<w:document>%s</w:document>"
                       % ("Quarterly figures " * 200))
        else:
            z.writestr("notes.txt", "just a zip " * 100)
    return buf.getvalue()


def store_state(ctx):
    """What storage holds: (row ids, blob names or object keys, multipart
    uploads or None)."""
    rows = {i for i, _ in ctx.db_files()}
    if ctx.s3:
        return rows, set(ctx.s3.objects()), ctx.s3.multiparts()
    return rows, {os.path.relpath(p, os.path.join(ctx.stack.data_dir, "blobs"))
                  for p in ctx.blob_paths()}, None


def listed_as(ctx, token, name=None):
    """Every file GET /api/files shows `token` (all pages, ?name= if
    given), or None."""
    out, cursor = [], ""
    q = "&name=" + urllib.parse.quote(name, safe="") if name else ""
    for _ in range(100):
        r = ctx.stack.request("GET", "/api/files?limit=200" + q +
                              ("&cursor=" + cursor if cursor else ""), token=token)
        if r.status != 200:
            return None
        body = as_json(r)
        out += body.get("files", [])
        cursor = body.get("next_cursor") or ""
        if not cursor:
            return out
    return None


def check_download(ctx, path, data, name, ctype, what, token=None, headers=None):
    """GET `path`: 200, the exact bytes, Content-Type, Content-Disposition."""
    r = ctx.stack.request("GET", path, token=token, headers=headers)
    cd, ct = r.header("Content-Disposition"), r.header("Content-Type")
    return check(r.status == 200 and r.body == data and ct == ctype and
                 cd == disposition(name) and r.header("Content-Length") == str(len(data)),
                 "%s: 200, the %d bytes, Content-Type %s, Content-Disposition %s"
                 % (what, len(data), ctype, disposition(name)),
                 "status=%r equal=%s ct=%r cd=%r" % (r.status, r.body == data, ct, cd))


def upload_policy(ctx):
    stack = ctx.stack
    # Raw bodies: the name in X-File-Name (percent-encoded UTF-8), or ?name=.
    name = "r\u00e9sum\u00e9 \"Q3\" \u2014 \u00fcber;x.pdf"
    data = b"%PDF-1.7\n" + os.urandom(3 * 4096) + b"\n%%EOF\n"
    r, _ = post_raw(stack, "/api/files", data, token=ctx.ops, headers={
        "Content-Type": "application/octet-stream",
        "X-File-Name": urllib.parse.quote(name, safe="")})
    meta = as_json(r)
    if check(r.status == 201 and meta.get("name") == name and meta.get("size") == len(data)
             and meta.get("content_type") == "application/pdf" and
             meta.get("sha256") == hashlib.sha256(data).hexdigest(),
             "raw upload, X-File-Name percent-encoded UTF-8 -> 201, the name decoded, "
             "application/pdf, size and SHA-256", repr(r)):
        check_download(ctx, "/api/files/%s/content" % meta["id"], data, name,
                       "application/pdf", "... its download", token=ctx.ops)
    name = "Plan 50% \u00e9t\u00e9 & co.csv"
    data = "a;b\n\u00e9t\u00e9;50%\n".encode() * 300
    r, _ = post_raw(stack, "/api/files?name=" + urllib.parse.quote(name, safe=""), data,
                    token=ctx.ops, headers={"Content-Type": "application/octet-stream"})
    meta = as_json(r)
    if check(r.status == 201 and meta.get("name") == name and meta.get("content_type") ==
             "text/csv" and meta.get("sha256") == hashlib.sha256(data).hexdigest(),
             "raw upload, name in ?name= -> 201, text/csv, the name decoded", repr(r)):
        check_download(ctx, "/api/files/%s/content" % meta["id"], data, name, "text/csv",
                       "... its download", token=ctx.ops)
    # The file's own type as Content-Type is a raw body too.
    data = b"%PDF-1.4\n" + b"1 0 obj\n" * 10
    r, _ = post_raw(stack, "/api/files?name=own-type.pdf", data, token=ctx.ops,
                    headers={"Content-Type": "application/pdf"})
    check(r.status == 201 and as_json(r).get("content_type") == "application/pdf",
          "raw upload with Content-Type application/pdf (its own type) -> 201", repr(r))
    r, _ = post_raw(stack, "/api/files", b"hello\n", token=ctx.ops,
                    headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 400, "missing_file_name", "raw upload without X-File-Name or ?name=")

    # A .docx that is a ZIP with [Content_Types].xml (python's zipfile).
    docx = docx_bytes()
    body, ctype = multipart_body("Proposal 2027.docx", docx)
    r, _ = post_raw(stack, "/api/files", body, token=ctx.ops,
                    headers={"Content-Type": ctype})
    meta = as_json(r)
    if check(r.status == 201 and meta.get("content_type") == OOXML_DOCX and
             meta.get("size") == len(docx), "a .docx made with zipfile ([Content_Types].xml "
             "first, %d bytes) -> 201 with the OOXML content type" % len(docx), repr(r)):
        check_download(ctx, "/api/files/%s/content" % meta["id"], docx, "Proposal 2027.docx",
                       OOXML_DOCX, "... its download", token=ctx.ops)

    # Refusals: nothing reaches storage. The bad .pdf is larger than the
    # 8 KiB sample and several chunks, so a check after streaming began
    # would leave a pending row or a partial blob behind.
    before = store_state(ctx)
    listed_before = {f.get("id") for f in listed_as(ctx, ctx.ops) or []}
    begun_before = stack.logs_all().count(" begun (chunk_size=")
    fake = ("not a PDF at all, just text\n" * 100000).encode()[:2 * MIB + 333]
    r, sent = post_raw(stack, "/api/files?name=invoice.pdf", fake, token=ctx.ops,
                       headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 415, "content_mismatch", "raw .pdf whose bytes are text (%d bytes)"
                 % len(fake))
    print("the mismatching .pdf was answered after %d of %d body bytes" % (sent, len(fake)))
    body, ctype = multipart_body("invoice.pdf", fake[:20000])
    r, _ = post_raw(stack, "/api/files", body, token=ctx.ops, headers={"Content-Type": ctype})
    expect_error(r, 415, "content_mismatch", "multipart .pdf whose bytes are text")
    body, ctype = multipart_body("notes.docx", docx_bytes(telling=False))
    r, _ = post_raw(stack, "/api/files", body, token=ctx.ops, headers={"Content-Type": ctype})
    expect_error(r, 415, "content_mismatch", "a .docx that is a ZIP without an OOXML part")
    exe = b"MZ\x90\x00" + os.urandom(50000)
    body, ctype = multipart_body("setup.exe", exe)
    r, _ = post_raw(stack, "/api/files", body, token=ctx.ops, headers={"Content-Type": ctype})
    err = error_shape(r.body) or {}
    expect_error(r, 415, "unsupported_file_type", "multipart setup.exe")
    check("pdf" in err.get("message", ""), "... the message lists what is allowed",
          repr(err.get("message")))
    r, _ = post_raw(stack, "/api/files?name=setup.exe", exe, token=ctx.ops,
                    headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 415, "unsupported_file_type", "raw setup.exe")
    # A client may not upload at all, whatever the file.
    r, _ = post_raw(stack, "/api/files?name=client.txt", b"hello from a client\n",
                    token=ctx.client, headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 403, "forbidden", "a client's raw upload")
    body, ctype = multipart_body("client.txt", b"hello from a client\n")
    r, _ = post_raw(stack, "/api/files", body, token=ctx.client,
                    headers={"Content-Type": ctype})
    expect_error(r, 403, "forbidden", "a client's multipart upload")
    after = store_state(ctx)
    check(after[0] == before[0], "the refused uploads left no row in storage's DB (%d rows)"
          % len(after[0]), repr(after[0] ^ before[0]))
    check(after[1] == before[1], "... no %s (%d)" % (
        "object in the bucket (awscli)" if ctx.s3 else "blob and no partial under the blob dir",
        len(after[1])), repr(after[1] ^ before[1]))
    if ctx.s3 and after[2] is not None:
        check(not after[2], "... no multipart upload in the bucket", repr(after[2]))
    listed_after = {f.get("id") for f in listed_as(ctx, ctx.ops) or []}
    check(listed_after == listed_before, "... and GET /api/files lists the same %d files"
          % len(listed_after), repr(listed_after ^ listed_before))
    begun = stack.logs_all().count(" begun (chunk_size=") - begun_before
    check(begun == 0, "... and storage's log shows no upload begun for them (not even one "
          "aborted later)", "%d begun" % begun)


def small_upload(ctx, name, data, token=None, query=""):
    """A raw upload; returns the file object or {}."""
    r, _ = post_raw(ctx.stack, "/api/files?name=%s%s" % (urllib.parse.quote(name, safe=""),
                                                          query),
                    data, token=token or ctx.ops,
                    headers={"Content-Type": "application/octet-stream"})
    return as_json(r) if r.status == 201 else {}


def files_visibility(ctx):
    stack = ctx.stack
    tag = uuid.uuid4().hex[:8]
    # ?name=: case-insensitive substring, `%` and `_` literal.
    made = {}
    for n in ("Plan 50%%_final %s.txt" % tag, "Plan 50ab_final %s.txt" % tag,
              "v_w %s.txt" % tag, "vxw %s.txt" % tag, "V_W upper %s.txt" % tag):
        meta = small_upload(ctx, n, ("contents of %s\n" % n).encode())
        check(meta.get("id"), "upload of %r for the name filter" % n)
        made[n] = meta.get("id")
    for flt, want in (("50%%_FINAL %s" % tag.upper(), ["Plan 50%%_final %s.txt" % tag]),
                      ("v_w", ["v_w %s.txt" % tag, "V_W upper %s.txt" % tag]),
                      ("50ab_final " + tag, ["Plan 50ab_final %s.txt" % tag])):
        for who, token in (("ops", ctx.ops), ("a client", ctx.client)):
            got = listed_as(ctx, token, flt)
            names = sorted(f.get("name") for f in got or [] if tag in f.get("name", ""))
            others = [f.get("name") for f in got or [] if tag not in f.get("name", "")]
            check(got is not None and names == sorted(want) and not others,
                  "?name=%s as %s: exactly %r" % (urllib.parse.quote(flt, safe=""), who,
                                                   sorted(want)),
                  repr([f.get("name") for f in got or []]))
    r = stack.request("GET", "/api/files?name=" + "x" * 256, token=ctx.ops)
    expect_error(r, 400, "invalid_request", "a name filter of 256 bytes")

    # Paging: 5 files in three batches a second apart (created_at is in
    # seconds), listed 2 at a time: 2 + 2 + 1, newest first.
    metas = []
    for batch in (1, 2, 2):
        if metas:
            time.sleep(1.05)
        for _ in range(batch):
            i = len(metas)
            metas.append(small_upload(ctx, "page-%s-%d.txt" % (tag, i), b"page %d\n" % i))
    check(all(m.get("id") for m in metas), "5 uploads for paging")
    want = [m.get("id") for m in sorted(metas, key=lambda m: (m.get("created_at", ""),
                                                             m.get("id", "")), reverse=True)]
    pages, cursor, bad = [], None, None
    for _ in range(4):
        q = "/api/files?limit=2&name=page-" + tag + ("&cursor=" + cursor if cursor else "")
        r = stack.request("GET", q, token=ctx.ops)
        body = as_json(r)
        if r.status != 200 or not isinstance(body.get("files"), list):
            bad = r
            break
        pages.append([f.get("id") for f in body["files"]])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    check(bad is None and [len(p) for p in pages] == [2, 2, 1] and cursor is None,
          "?limit=2 over 5 files: pages of 2, 2 and 1, next_cursor null on the last",
          repr(bad or [len(p) for p in pages]))
    got = [i for p in pages for i in p]
    check(got == want, "... every file once, newest first (created_at, then id, descending)",
          "got %r want %r" % (got, want))
    ids = [m.get("id") for m in metas]
    check(set(got[:2]) == set(ids[3:]) and set(got[2:4]) == set(ids[1:3]) and
          got[4:] == ids[:1], "... the last batch on page 1, the first upload last",
          repr([(m.get("id"), m.get("created_at")) for m in metas]))
    r = stack.request("GET", "/api/files?limit=2&cursor=not-a-cursor", token=ctx.ops)
    expect_error(r, 400, "invalid_cursor", "a cursor that is not one of ours")

    # Visibility: "staff" files are invisible to clients, 404 as if absent.
    data = b"staff only: salaries\n" * 50
    r, _ = post_raw(stack, "/api/files?visibility=secret&name=x.txt", data, token=ctx.ops,
                    headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 400, "invalid_visibility", "upload with ?visibility=secret")
    sname = "staff-%s.txt" % tag
    meta = small_upload(ctx, sname, data, query="&visibility=staff")
    fid = meta.get("id")
    if not check(fid and meta.get("visibility") == "staff",
                 "upload with ?visibility=staff -> 201, visibility staff", repr(meta)):
        return
    check(fid in {f.get("id") for f in listed_as(ctx, ctx.ops) or []},
          "ops sees the staff file in GET /api/files")
    got = listed_as(ctx, ctx.client)
    check(got is not None and fid not in {f.get("id") for f in got} and
          all(f.get("visibility") == "clients" for f in got),
          "a client's GET /api/files (%d files) has no staff file" % len(got or []))
    got = listed_as(ctx, ctx.client, sname)
    check(got == [], "... nor under ?name= its exact name", repr(got))
    for method, path in (("GET", "/api/files/" + fid), ("GET", "/api/files/%s/content" % fid),
                         ("POST", "/api/files/%s/links" % fid),
                         ("GET", "/api/files/%s/links" % fid)):
        r = stack.request(method, path, {} if method == "POST" else None, token=ctx.client)
        expect_error(r, 404, "file_not_found", "a client: %s %s of the staff file"
                     % (method, path.replace(fid, "{id}")))
    r = stack.request("GET", "/api/files/" + fid, token=ctx.ops)
    check(r.status == 200 and as_json(r).get("visibility") == "staff",
          "ops: GET /api/files/{id} of the staff file -> 200", repr(r))
    check_download(ctx, "/api/files/%s/content" % fid, data, sname, "text/plain",
                   "ops downloads the staff file", token=ctx.ops)
    r = stack.request("PATCH", "/api/files/" + fid, {"visibility": "clients"}, token=ctx.client)
    expect_error(r, 403, "forbidden", "a client's PATCH of visibility")
    r = stack.request("PATCH", "/api/files/" + fid, {"visibility": "everyone"}, token=ctx.ops)
    expect_error(r, 400, "invalid_visibility", "PATCH visibility \"everyone\"")
    r = stack.request("PATCH", "/api/files/" + fid, {"visibility": "clients"}, token=ctx.ops)
    m2 = as_json(r)
    check(r.status == 200 and m2.get("visibility") == "clients" and m2.get("id") == fid and
          m2.get("name") == sname, "ops: PATCH {\"visibility\": \"clients\"} -> 200, the file "
          "now clients", repr(r))
    got = listed_as(ctx, ctx.client, sname)
    check(got is not None and [f.get("id") for f in got] == [fid],
          "the client now sees it in GET /api/files?name=", repr(got))
    r = stack.request("GET", "/api/files/" + fid, token=ctx.client)
    check(r.status == 200 and as_json(r).get("visibility") == "clients",
          "... and by id -> 200", repr(r))
    check_download(ctx, "/api/files/%s/content" % fid, data, sname, "text/plain",
                   "... and downloads it", token=ctx.client)
    r = stack.request("PATCH", "/api/files/" + fid, {"visibility": "staff"}, token=ctx.ops)
    check(r.status == 200 and as_json(r).get("visibility") == "staff", "PATCH back to staff")
    expect_error(stack.request("GET", "/api/files/%s/content" % fid, token=ctx.client), 404,
                 "file_not_found", "... and the client's download is 404 again")


def new_link(ctx, fid, body, token=None, what="a link"):
    r = ctx.stack.request("POST", "/api/files/%s/links" % fid, body, token=token or ctx.ops)
    link = as_json(r)
    ok = check(r.status == 201 and link.get("token") and link.get("id"),
               "%s %s -> 201" % (what, json.dumps(body)), repr(r))
    return link if ok else {}


def link_rules(ctx):
    stack = ctx.stack
    name = "linked \u00e9-%s.txt" % uuid.uuid4().hex[:6]
    data = ("shared through links \u2713\n" * 400).encode()
    meta = small_upload(ctx, name, data)
    fid = meta.get("id")
    if not check(fid, "upload of the linked file"):
        return
    # Made first, checked last: it expires while the others are tested.
    expiring = new_link(ctx, fid, {"expires_in": 1, "max_downloads": 5}, what="expiring")
    t_expiring = time.monotonic()

    r = stack.request("POST", "/api/files/%s/links" % fid,
                      {"expires_in": LINK_MAX_TTL + 1}, token=ctx.ops)
    expect_error(r, 400, "invalid_request",
                 "expires_in %d, over SAFESHARE_LINK_MAX_TTL=%d" % (LINK_MAX_TTL + 1,
                                                                    LINK_MAX_TTL))
    for bad in ({"expires_in": 0}, {"max_downloads": 0}, {"max_downloads": 10001},
                {"signed_in_only": "yes"}):
        expect_error(stack.request("POST", "/api/files/%s/links" % fid, bad, token=ctx.ops),
                     400, "invalid_request", "link %s" % json.dumps(bad))
    longest = new_link(ctx, fid, {"expires_in": LINK_MAX_TTL}, what="expires_in at the maximum")

    def get(link, token=None, headers=None):
        return stack.request("GET", "/api/download/" + link.get("token", "none"),
                             token=token, headers=headers)

    # max_downloads 2: two downloads, then exhausted.
    two = new_link(ctx, fid, {"expires_in": 600, "max_downloads": 2}, what="two downloads")
    for i in (1, 2):
        check_download(ctx, "/api/download/" + two.get("token", ""), data, name, "text/plain",
                       "download %d of 2 through the link" % i)
    expect_error(get(two), 410, "link_exhausted", "the third download of a 2-download link")

    # Revoked.
    rev = new_link(ctx, fid, {"expires_in": 600, "max_downloads": 5}, what="to revoke")
    check(get(rev).status == 200, "the link to revoke works before")
    r = stack.request("DELETE", "/api/links/" + rev.get("id", ""), token=ctx.client)
    expect_error(r, 403, "forbidden", "a client revoking ops' link (the client sees the file)")
    r = stack.request("DELETE", "/api/links/" + rev.get("id", ""), token=ctx.ops)
    li = as_json(r)
    check(r.status == 200 and li.get("state") == "revoked" and li.get("revoked_at"),
          "DELETE /api/links/{id} -> 200, state revoked, revoked_at set", repr(r))
    expect_error(get(rev), 410, "link_revoked", "a download through the revoked link")
    r = stack.request("DELETE", "/api/links/" + rev.get("id", ""), token=ctx.ops)
    check(r.status == 200 and as_json(r).get("revoked_at") == li.get("revoked_at"),
          "revoking again -> 200, revoked_at unchanged", repr(r))
    expect_error(stack.request("DELETE", "/api/links/" + uuid.uuid4().hex, token=ctx.ops),
                 404, "link_not_found", "revoking an unknown link id")

    # Unknown tokens.
    fake = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    expect_error(stack.request("GET", "/api/download/" + fake), 404, "link_not_found",
                 "a well-formed unknown token")
    expect_error(stack.request("GET", "/api/download/not-a-token"), 404, "link_not_found",
                 "a malformed token")

    # signed_in_only.
    sio = new_link(ctx, fid, {"expires_in": 600, "max_downloads": 3, "signed_in_only": True},
                   what="signed-in only")
    r = get(sio)
    expect_error(r, 401, "link_requires_login", "anonymous download of a signed_in_only link")
    check((r.header("WWW-Authenticate") or "").startswith("Bearer"),
          "... with WWW-Authenticate: Bearer", repr(r.header("WWW-Authenticate")))
    expect_error(get(sio, token="not.a.jwt"), 401, "invalid_token",
                 "... with a bad bearer token (never taken as anonymous)")
    check_download(ctx, "/api/download/" + sio.get("token", ""), data, name, "text/plain",
                   "... with a client's token", token=ctx.client)

    # If-None-Match through a one-time link: 304 spends nothing.
    once = new_link(ctx, fid, {"expires_in": 600, "max_downloads": 1}, what="one-time")
    etag = '"%s"' % hashlib.sha256(data).hexdigest()
    r = get(once, headers={"If-None-Match": etag})
    check(r.status == 304 and r.body == b"" and r.header("ETag") == etag,
          "If-None-Match through the one-time link -> 304, no body, the ETag", repr(r))
    r = get(once, headers={"If-None-Match": etag})
    check(r.status == 304, "... twice (a peek spends nothing)", repr(r))
    check_download(ctx, "/api/download/" + once.get("token", ""), data, name, "text/plain",
                   "... then the one download it has")
    expect_error(get(once), 410, "link_exhausted", "... then it is used up")
    expect_error(get(once, headers={"If-None-Match": etag}), 410, "link_exhausted",
                 "... and a conditional request on it is 410 too")

    # A client's own link; what each one's listing shows.
    mine = new_link(ctx, fid, {"expires_in": 600, "max_downloads": 4}, token=ctx.client,
                    what="a client's link")

    wait = 2.2 - (time.monotonic() - t_expiring)
    if wait > 0:
        time.sleep(wait)
    expect_error(get(expiring), 410, "link_expired", "the expires_in=1 link, 2 s later")

    tokens = [l_.get("token") for l_ in (expiring, longest, two, rev, sio, once, mine)
              if l_.get("token")]
    r = stack.request("GET", "/api/files/%s/links" % fid, token=ctx.ops)
    links = as_json(r).get("links")
    if check(r.status == 200 and isinstance(links, list),
             "ops: GET /api/files/{id}/links -> 200", repr(r)):
        by_id = {l_.get("id"): l_ for l_ in links}
        want = [(expiring, "expired", 0, 5), (longest, "active", 0, 1),
                (two, "exhausted", 2, 0), (rev, "revoked", 1, 4), (sio, "active", 1, 2),
                (once, "exhausted", 1, 0), (mine, "active", 0, 4)]
        for link, state, n, left in want:
            got = by_id.get(link.get("id"), {})
            check(got.get("state") == state and got.get("downloads") == n and
                  got.get("downloads_left") == left and got.get("file_id") == fid,
                  "... link %s: state %s, %d download(s), %d left"
                  % (link.get("id", "?")[:8], state, n, left), repr(got))
        check(len(links) == len(want), "... %d links in all" % len(want), repr(len(links)))
        check(by_id.get(sio.get("id"), {}).get("signed_in_only") is True and
              by_id.get(mine.get("id"), {}).get("creator_id") == ctx.client_id,
              "... signed_in_only and creator_id as made")
        check(len(tokens) == 7 and not any(t in r.body.decode(errors="replace")
                                           for t in tokens) and
              not any("token" in l_ for l_ in links),
              "... and no token (nor a \"token\" field) anywhere in the answer")
    r = stack.request("GET", "/api/files/%s/links" % fid, token=ctx.client)
    cl = as_json(r).get("links")
    check(r.status == 200 and isinstance(cl, list) and
          [l_.get("id") for l_ in cl] == [mine.get("id")],
          "a client's GET /api/files/{id}/links shows only the link they made", repr(r))
    rows = ctx.db_rows("SELECT * FROM links WHERE file_id = '%s'" % fid)
    dump = repr(rows)
    check(len(rows) == 7 and not any(t in dump for t in tokens),
          "storage's DB has the 7 links and no token in any column (only its hash)",
          "%d rows" % len(rows))
    ctx.linked = (fid, data, name, [sio, mine, longest])


def delete_with_links(ctx):
    """DELETE of a file that has links: row, blob and links go; its links
    answer 404 link_not_found (docs/api.md: "unknown (or its file
    deleted)")."""
    stack = ctx.stack
    if not getattr(ctx, "linked", None):
        check(False, "the linked file of section 10 exists")
        return
    fid, _, _, live = ctx.linked
    for link in live:
        check(stack.request("GET", "/api/download/" + link.get("token", ""),
                            token=ctx.client).status == 200,
              "control: link %s works before the delete" % link.get("id", "?")[:8])
    state = store_state(ctx)
    check(any(k.endswith(fid) for k in state[1]), "control: its blob / object is there")
    check(ctx.db_rows("SELECT id FROM links WHERE file_id = '%s'" % fid),
          "control: its links are in storage's DB")
    expect_error(stack.request("DELETE", "/api/files/" + fid, token=ctx.client), 403,
                 "forbidden", "a client's DELETE of the file")
    r = stack.request("DELETE", "/api/files/" + fid, token=ctx.ops)
    b = as_json(r)
    check(r.status == 200 and b.get("id") == fid and b.get("deleted") is True and
          b.get("key_destroyed") is True,
          "DELETE by its owner -> 200 {id, deleted: true, key_destroyed: true}", repr(r))
    for link in live:
        expect_error(stack.request("GET", "/api/download/" + link.get("token", "")), 404,
                     "link_not_found", "link %s after the file's delete"
                     % link.get("id", "?")[:8])
    expect_error(stack.request("GET", "/api/files/%s/links" % fid, token=ctx.ops), 404,
                 "file_not_found", "GET /api/files/{id}/links after the delete")
    expect_error(stack.request("DELETE", "/api/links/" + live[0].get("id", ""),
                               token=ctx.ops), 404, "link_not_found",
                 "revoking one of its links after the delete")
    expect_error(stack.request("DELETE", "/api/files/" + fid, token=ctx.ops), 404,
                 "file_not_found", "deleting it again")
    check(not ctx.db_rows("SELECT id FROM links WHERE file_id = '%s'" % fid),
          "its links are gone from storage's DB")
    check(not ctx.db_rows("SELECT id FROM files WHERE id = '%s'" % fid),
          "its row (with the wrapped DEK) is gone")
    state = store_state(ctx)
    check(not any(k.endswith(fid) for k in state[1]), "its %s is gone" % (
        "object" if ctx.s3 else "blob"))


def size_limit(ctx):
    """A second stack, SAFESHARE_MAX_UPLOAD_BYTES=1 MiB, same DB kind and
    backend (its own schema / S3 prefix): 413 too_large before the body
    when Content-Length says so, at the crossing byte when chunked."""
    extra, schema = {}, None
    if ctx.schema_url:
        schema, url = pg_schema(os.environ["SAFESHARE_TEST_PG_URL"])
        extra.update({"SAFESHARE_AUTH_DB": url, "SAFESHARE_STORAGE_DB": url})
    if ctx.s3:
        extra.update(ctx.s3.stack_env())
        # Its own key prefix: its start-up sweep must not see the main
        # stack's objects (they have no row in its DB).
        extra.update({"SAFESHARE_S3_PREFIX": "limited/",
                      "SAFESHARE_STORAGE_INSTANCE": "limited"})
    extra["SAFESHARE_MAX_UPLOAD_BYTES"] = str(LIMIT_BYTES)
    extra["ASAN_OPTIONS"] = ctx.stack.env.get("ASAN_OPTIONS", "")
    st = Stack(ctx.args.bin_dir, extra)
    sub = Ctx(ctx.args, st, extra.get("SAFESHARE_STORAGE_DB"))
    sub.s3 = ctx.s3
    try:
        st.cli("keys", "generate")
        st.add_user("ops@example.com", OPS_PW, "ops")
        st.start()
        sub.ops = as_json(st.login("ops@example.com", OPS_PW)).get("access")
        if not check(sub.ops, "the size-limit stack (%d bytes) is up, ops logs in"
                     % LIMIT_BYTES):
            return
        objects_before = set(ctx.s3.objects()) if ctx.s3 else None
        data = Pattern(LIMIT_BYTES + 1).slice(0, LIMIT_BYTES + 1)
        data = b"%PDF-1.7\n" + data[9:]
        # Content-Length over the limit: answered with no body byte sent
        # (the client waits for the answer after the headers, 10 s at most).
        def announced(path, ctype, length):
            conn = http.client.HTTPConnection("127.0.0.1", st.port, timeout=10)
            t0 = time.monotonic()
            try:
                conn.putrequest("POST", path)
                conn.putheader("Authorization", "Bearer " + sub.ops)
                conn.putheader("Content-Type", ctype)
                conn.putheader("Content-Length", str(length))
                conn.endheaders()
                resp = conn.getresponse()
                r = Response(resp.status, resp.getheaders(), resp.read())
            except (OSError, http.client.HTTPException) as e:
                r = Response(0, [], repr(e).encode())
            finally:
                conn.close()
            print("  answered %d %.3f s after the headers" % (r.status, time.monotonic() - t0))
            return r

        r = announced("/api/files?name=big.pdf", "application/octet-stream", LIMIT_BYTES + 1)
        expect_error(r, 413, "too_large", "raw Content-Length %d (limit + 1), not a body "
                     "byte sent" % (LIMIT_BYTES + 1))
        r = announced("/api/files", "multipart/form-data; boundary=xyz",
                      LIMIT_BYTES + 80 * 1024 + 1)
        expect_error(r, 413, "too_large", "multipart Content-Length over the limit + 80 KiB, "
                     "not a body byte sent")
        body, ctype = multipart_body("big.pdf", data + os.urandom(100 * 1024))
        r, sent = post_raw(st, "/api/files", body, token=sub.ops,
                           headers={"Content-Type": ctype})
        expect_error(r, 413, "too_large", "a whole multipart body of limit + 100 KiB")
        big = Pattern(16 * MIB)
        raw = b"%PDF-1.7\n" + big.slice(9, 16 * MIB - 9)
        r, sent = post_raw(st, "/api/files?name=chunked.pdf", raw, token=sub.ops,
                           headers={"Content-Type": "application/octet-stream"}, chunked=True)
        expect_error(r, 413, "too_large", "chunked body crossing the limit")
        check(LIMIT_BYTES <= sent < len(raw),
              "... cut once past the limit: %d of %d bytes sent" % (sent, len(raw)))
        r, _ = post_raw(st, "/api/files?name=exact.pdf", data[:LIMIT_BYTES], token=sub.ops,
                        headers={"Content-Type": "application/octet-stream"})
        meta = as_json(r)
        check(r.status == 201 and meta.get("size") == LIMIT_BYTES and
              meta.get("sha256") == hashlib.sha256(data[:LIMIT_BYTES]).hexdigest(),
              "exactly the limit (%d bytes) -> 201" % LIMIT_BYTES, repr(r))
        rows = sub.db_files()
        files = listed_as(sub, sub.ops)
        check([i for i, _ in rows] == [meta.get("id")] and
              [f.get("id") for f in files or []] == [meta.get("id")],
              "the refused uploads left no row; only the exact-limit file is listed",
              repr(rows))
        if ctx.s3:
            new = set(ctx.s3.objects()) - objects_before
            mp = ctx.s3.multiparts()
            check(new == {"limited/" + str(meta.get("id"))} and not mp,
                  "... one object in the bucket for it, no multipart upload", repr((new, mp)))
        else:
            blobs = [os.path.basename(p) for p in sub.blob_paths()]
            check(blobs == [meta.get("id")], "... one blob, no partial", repr(blobs))
        # Deleted again: the main stack's orphan checks see the whole bucket.
        r = st.request("DELETE", "/api/files/%s" % meta.get("id"), token=sub.ops)
        left = (set(ctx.s3.objects()) - objects_before) if ctx.s3 else sub.blob_paths()
        check(r.status == 200 and not left, "... deleted, its blob / object is gone",
              repr((r, left)))
    finally:
        rc = st.stop()
        check(rc == 0, "the size-limit stack exits 0 on SIGTERM", "rc=%r" % rc)
        if FAILURES:
            print("---- size-limit stack log (tail) ----\n" + st.logs()[-4000:])
        st.cleanup()
        if schema:
            pg_drop_schema(os.environ["SAFESHARE_TEST_PG_URL"], schema)



def run(ctx):
    stack = ctx.stack
    stack.cli("keys", "generate")
    stack.add_user("ops@example.com", OPS_PW, "ops")
    ctx.client_id = stack.add_user("client@example.com", CLIENT_PW, "client")
    stack.start()
    r = stack.login("ops@example.com", OPS_PW)
    if not check(r.status == 200, "ops logs in", repr(r)):
        return
    ctx.ops = as_json(r)["access"]
    r = stack.login("client@example.com", CLIENT_PW)
    if not check(r.status == 200, "a client logs in", repr(r)):
        return
    ctx.client = as_json(r)["access"]
    sections = [("1. 200 MiB upload and download", big_file),
                ("2. ranges", ranges),
                ("3. one-time link, 50 concurrent redeems", one_time_race),
                ("5. no plaintext at rest", no_plaintext),
                ("7. delete", delete),
                ("8. upload policy", upload_policy),
                ("9. list filter, paging, visibility", files_visibility),
                ("10. share-link rules", link_rules),
                ("11. delete of a file with links", delete_with_links),
                ("12. size limit (a second stack)", size_limit),
                ("4. kill -9 of storage mid-upload", storage_killed),
                ("4b. storage frozen mid-upload", storage_frozen)]
    if ctx.s3:
        sections.append(("6. the S3 server stopped mid-upload", ctx.s3.server_stopped))
    for title, fn in sections:
        print("---- %s" % title, flush=True)
        t0 = time.monotonic()
        try:
            fn(ctx)
        except Exception:  # a crash is a failure with its traceback, never a pass
            traceback.print_exc()
            check(False, "section %r ran to the end" % title)
        print("     (%.1f s)" % (time.monotonic() - t0), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--db", choices=("sqlite", "pg"), default="sqlite")
    ap.add_argument("--backend", choices=("disk", "s3"), default="disk")
    args = ap.parse_args()
    env = db_env(args.db)
    if env is None:
        return 1
    extra, schema, schema_url = env
    extra["SAFESHARE_LINK_MAX_TTL"] = str(LINK_MAX_TTL)
    # Only read by sanitized builds: see ASAN_QUARANTINE_MIB.
    extra["ASAN_OPTIONS"] = ":".join(
        o for o in (os.environ.get("ASAN_OPTIONS", ""),
                    "quarantine_size_mb=%d" % ASAN_QUARANTINE_MIB) if o)
    s3 = None
    t0 = time.monotonic()
    if args.backend == "s3":
        s3 = S3Peer(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
        try:
            s3.start()
        except (AssertionError, OSError, subprocess.SubprocessError) as e:
            s3.cleanup()
            print("FAIL - the S3 test server starts: %s\n0 passed, 1 failed" % e)
            return 1
        extra.update(s3.stack_env())
    stack = Stack(args.bin_dir, extra)
    ctx = Ctx(args, stack, schema_url)
    ctx.s3 = s3
    try:
        run(ctx)
    except Exception:
        traceback.print_exc()
        check(False, "test ran to the end")
    finally:
        rc = stack.stop()
        check(rc == 0, "safeshare up exits 0 on SIGTERM", "rc=%r" % rc)
        check(stack.our_processes() == [], "no service left running after stop")
        if FAILURES:
            print("---- stack log (tail) ----\n" + stack.logs())
        stack.cleanup()
        if s3:
            s3.cleanup()
        if schema:
            pg_drop_schema(os.environ["SAFESHARE_TEST_PG_URL"], schema)
    print("whole run: %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
