"""Start and drive a real safeshare stack for system tests (stdlib only).

The stack is `safeshare up` on loopback with a fresh data dir and an
ephemeral port. Readiness is the gateway's /readyz answering 200, polled;
a child that dies fails the wait at once. Stopping is SIGTERM, then SIGKILL
after a deadline, and a check that no service of this data dir survived.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid


def pg_schema(base_url):
    """A fresh schema on the test cluster (or drop it): returns the URL
    that selects it, for SAFESHARE_*_DB. Uses psql, which comes with the
    postgresql package the test command installs."""
    name = "ss_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", base_url, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE SCHEMA " + name],
                   check=True,
                   capture_output=True, timeout=30)
    sep = "&" if "?" in base_url else "?"
    return name, "%s%soptions=-csearch_path%%3D%s" % (base_url, sep, name)


def pg_drop_schema(base_url, name):
    subprocess.run(["psql", base_url, "-qc", "DROP SCHEMA IF EXISTS %s CASCADE" % name],
                   capture_output=True, timeout=30)


def stack_args():
    """The command line of a stack test: --bin-dir (the built binaries)
    and --db sqlite|pg (see db_env)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--db", choices=("sqlite", "pg"), default="sqlite",
                    help="pg: auth and storage on the cluster in SAFESHARE_TEST_PG_URL")
    return ap.parse_args()


def db_env(db):
    """What --db asks for: ({}, None, None) for "sqlite"; for "pg" the env
    that puts auth and storage on a fresh schema of SAFESHARE_TEST_PG_URL,
    the schema and its URL. None, said as a failure, when that variable is
    not set: a PostgreSQL run never passes without a server."""
    if db != "pg":
        return {}, None, None
    base = os.environ.get("SAFESHARE_TEST_PG_URL")
    if not base:
        print("FAIL - SAFESHARE_TEST_PG_URL is not set: run scripts/test.sh, which "
              "starts a PostgreSQL cluster\n0 passed, 1 failed")
        return None
    schema, url = pg_schema(base)
    print("auth and storage on PostgreSQL, schema %s" % schema)
    return {"SAFESHARE_AUTH_DB": url, "SAFESHARE_STORAGE_DB": url}, schema, url


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Stack:
    """extra_env: SAFESHARE_* variables for every process; config: keys
    written to a `--config FILE` that `safeshare up` (and so every
    service) and every CLI call get, the way an operator sets them."""

    def __init__(self, bin_dir, extra_env=None, config=None):
        self.bin_dir = os.path.abspath(bin_dir)
        # Short path: ipc:// socket paths must stay under 100 characters.
        self.data_dir = tempfile.mkdtemp(prefix="ss-", dir="/tmp")
        self.key_dir = os.path.join(self.data_dir, "keys")
        self.config_path = None
        if config:
            self.config_path = os.path.join(self.data_dir, "safeshare.conf")
            with open(self.config_path, "w") as f:
                f.write("# system test overrides\n")
                for k, v in config.items():
                    f.write("%s=%s\n" % (k, v))
        # Where request() reaches the gateway (a subclass may move it).
        self.host = "127.0.0.1"
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("SAFESHARE_"):
                del self.env[k]
        self.env.update({
            "SAFESHARE_DATA_DIR": self.data_dir,
            "SAFESHARE_HTTP_ADDR": "127.0.0.1:%d" % self.port,
            "SAFESHARE_PUBLIC_URL": self.base,
            "SAFESHARE_LOG_LEVEL": "info",
        })
        self.env.update(extra_env or {})
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "stack.log")

    def _safeshare(self):
        argv = [os.path.join(self.bin_dir, "safeshare")]
        if self.config_path:
            argv += ["--config", self.config_path]
        return argv

    def cli(self, *args, stdin=None, check=True):
        r = subprocess.run(self._safeshare() + list(args),
                           input=stdin, env=self.env, capture_output=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("safeshare %s failed (%d): %s" % (
                " ".join(args), r.returncode, r.stderr.decode(errors="replace")))
        return r

    def start(self, timeout=60):
        # Appended: a test that restarts the stack keeps the first run's log.
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._safeshare() + ["up"],
                                     env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("safeshare up exited with %d:\n%s" % (
                    self.proc.returncode, self.logs()))
            try:
                if self.request("GET", "/readyz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("stack not ready within %ds:\n%s" % (timeout, self.logs()))

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-20000:]
        except OSError:
            return ""

    def logs_all(self):
        """The whole log of `safeshare up` and every service it ran."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def our_processes(self):
        """PIDs of processes whose environment names our data dir."""
        mark = ("SAFESHARE_DATA_DIR=%s" % self.data_dir).encode()
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if mark in f.read().split(b"\0"):
                        pids.append(int(pid))
            except OSError:
                pass
        return pids

    def service_pid(self, binary):
        """The PID of the process of this stack running `binary` (e.g.
        "safeshare-storage"; worker processes excluded), or None."""
        for pid in self.our_processes():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if os.path.basename(argv[0]).decode(errors="replace") == binary and \
                    b"worker" not in argv:
                return pid
        return None

    def stop(self, timeout=20):
        """SIGTERM `safeshare up`; returns its exit code (SIGKILL after timeout)."""
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        for pid in self.our_processes():
            os.kill(pid, signal.SIGKILL)
        self.log.close()
        return rc

    def cleanup(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def add_user(self, email, password, role):
        """`safeshare user add` (the operator's way in, e.g. the first
        admin); returns the new user's id."""
        r = self.cli("user", "add", email, "--role", role, stdin=(password + "\n").encode())
        m = re.search(r"\(id ([0-9a-f]{32})\)", r.stdout.decode(errors="replace"))
        if not m:
            raise AssertionError("safeshare user add printed no id: %r" % r.stdout)
        return m.group(1)

    def login(self, email, password, rid=None):
        return self.request("POST", "/api/auth/login", {"email": email, "password": password},
                            rid=rid)

    def request(self, method, path, body=None, headers=None, token=None, timeout=30,
                rid=None):
        """rid: sent as X-Request-Id (the gateway adopts a well-formed one)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if rid:
            h["X-Request-Id"] = rid
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def upload(self, token, name, data, field="file"):
        ctype, head, tail = multipart(name, field)
        return self.request("POST", "/api/files", body=head + data + tail, token=token,
                            headers={"Content-Type": ctype})


def multipart(name, field="file"):
    """A one-file multipart/form-data body around the file's bytes:
    (Content-Type, the bytes before them, the bytes after them)."""
    boundary = "----safeshare" + uuid.uuid4().hex
    head = ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, field, name))
    return ("multipart/form-data; boundary=" + boundary, head.encode(),
            ("\r\n--%s--\r\n" % boundary).encode())


class Paced(threading.Thread):
    """A transfer through the stack's gateway at `rate` bytes/s, in steps
    of `step` bytes, in a thread of its own: `done` counts the file bytes
    moved so far; once it ends, status, error (a transport error), elapsed
    (s) and req_id (the answer's X-Request-Id)."""

    def __init__(self, stack, token, rate, step):
        super().__init__(daemon=True)
        self.stack, self.token, self.rate, self.step = stack, token, rate, step
        self.done = 0
        self.status, self.error, self.elapsed, self.req_id = None, None, None, None

    def _pace(self, t0):
        ahead = self.done / self.rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)

    def run(self):
        t0 = time.monotonic()
        conn = http.client.HTTPConnection(self.stack.host, self.stack.port, timeout=120)
        try:
            self._transfer(conn, t0)
        except (OSError, http.client.HTTPException) as e:
            self.error = repr(e)
        finally:
            conn.close()
            self.elapsed = time.monotonic() - t0


class Upload(Paced):
    """POST /api/files of `data` (one multipart body) sent at the pace;
    `body` is the answer's."""

    def __init__(self, stack, token, name, data, rate, step):
        super().__init__(stack, token, rate, step)
        self.name, self.data = name, data
        self.body = b""

    def _transfer(self, conn, t0):
        ctype, head, tail = multipart(self.name)
        conn.putrequest("POST", "/api/files")
        conn.putheader("Authorization", "Bearer " + self.token)
        conn.putheader("Content-Type", ctype)
        conn.putheader("Content-Length", str(len(head) + len(self.data) + len(tail)))
        conn.endheaders()
        conn.send(head)
        view = memoryview(self.data)
        while self.done < len(self.data):
            piece = view[self.done:self.done + self.step]
            conn.send(piece)
            self.done += len(piece)
            self._pace(t0)
        conn.send(tail)
        r = conn.getresponse()
        self.status, self.req_id, self.body = r.status, r.getheader("X-Request-Id"), r.read()


class Download(Paced):
    """GET of a file's content read at the pace, hashed as it comes
    (`digest`, SHA-256)."""

    def __init__(self, stack, token, fid, rate, step):
        super().__init__(stack, token, rate, step)
        self.fid = fid
        self.digest = hashlib.sha256()

    def _transfer(self, conn, t0):
        conn.request("GET", "/api/files/%s/content" % self.fid,
                     headers={"Authorization": "Bearer " + self.token})
        r = conn.getresponse()
        self.status, self.req_id = r.status, r.getheader("X-Request-Id")
        while True:
            b = r.read(self.step)
            if not b:
                break
            self.digest.update(b)
            self.done += len(b)
            self._pace(t0)
