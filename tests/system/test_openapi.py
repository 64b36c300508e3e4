#!/usr/bin/python3
"""Real answers of the real stack against docs/openapi.json (issue 7).

Every operation of the document is called -- successes and the errors
around them -- through `safeshare up`, and every answer is checked
against the document: its status is documented for that operation, its
Content-Type is one the document gives, required headers are there and
match their schemas, a JSON body validates against the response schema
(JSON Schema 2020-12, jsonschema; error bodies against the operation's
own list of codes), a body-less answer has no body. Answers on paths or
methods the API does not have (404/405) must have the error shape.
Then: GET /api/openapi.json serves this same document; the gateway's own
error codes (read from services/gateway/src) and the table of
docs/api.md#error-codes are exactly the document's ErrorCode list; no
operation is left uncalled.

Runs on Debian's /usr/bin/python3, which sees python3-jsonschema
(scripts/install-deps.sh --test); a missing library fails the test.
"""
import glob
import json
import os
import re
import socket
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check, expect_error  # noqa: E402
from stack import Stack, db_env, pg_drop_schema, stack_args  # noqa: E402

try:
    import jsonschema
except ImportError:
    print("FAIL - python3-jsonschema is missing for %s (scripts/install-deps.sh --test)"
          % sys.executable)
    sys.exit(1)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC_PATH = os.path.join(ROOT, "docs", "openapi.json")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class Contract:
    """The document, and the check of one answer against it."""

    def __init__(self, doc):
        self.doc = doc
        self.resolver = jsonschema.RefResolver("", doc)
        self.ops = []  # (METHOD, compiled path regex, template, operation)
        for template, item in doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            for m in METHODS:
                if m in item:
                    self.ops.append((m.upper(), re.compile(rx), template, item[m]))
        self.seen = {}  # operationId -> set of statuses validated
        self.validated = 0

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            _, node = self.resolver.resolve(node["$ref"])
        return node

    def schema_errors(self, schema, value):
        v = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
        return ["%s at /%s" % (e.message[:200], "/".join(str(p) for p in e.absolute_path))
                for e in v.iter_errors(value)]

    def find(self, method, path):
        path = urllib.parse.urlsplit(path).path
        for m, rx, template, op in self.ops:
            if m == method and rx.match(path):
                return template, op
        return None, None

    def validate(self, method, path, r):
        """Problems of answer r to `method path` (a list; empty = conforms)."""
        template, op = self.find(method, path)
        problems = []
        if op is None:
            # Not an operation: a 404/405 in the one error shape.
            if r.status not in (404, 405):
                problems.append("%s %s is no documented operation, yet %d" %
                                (method, path, r.status))
            problems += self._json(r, {"$ref": "#/components/schemas/Error"})
            return problems
        responses = op["responses"]
        resp = responses.get(str(r.status)) or responses.get("%dXX" % (r.status // 100)) \
            or responses.get("default")
        if resp is None:
            return ["%s %s: status %d is not documented (documented: %s)" %
                    (method, template, r.status, ", ".join(sorted(responses)))]
        resp = self.deref(resp)
        for name, h in (resp.get("headers") or {}).items():
            h = self.deref(h)
            value = r.header(name)
            if value is None:
                if h.get("required"):
                    problems.append("header %s missing" % name)
                continue
            problems += ["header %s=%r: %s" % (name, value, e)
                         for e in self.schema_errors(h.get("schema", {}), value)]
        content = resp.get("content")
        ctype = (r.header("Content-Type") or "").split(";")[0].strip().lower()
        if not content:
            if r.body:
                problems.append("a body (%d bytes) where none is documented" % len(r.body))
        else:
            media = None
            for key in content:
                base = key.split(";")[0].strip().lower()
                if base == ctype or base == "*/*" or \
                        (base.endswith("/*") and ctype.startswith(base[:-1])):
                    media = content[key]
                    break
            if media is None:
                problems.append("Content-Type %r is not one of %s" % (ctype, list(content)))
            elif ctype == "application/json" or ctype.endswith("+json"):
                problems += self._json(r, media.get("schema", {}))
        if not problems:
            self.seen.setdefault(op["operationId"], set()).add(r.status)
            self.validated += 1
        return problems

    def _json(self, r, schema):
        try:
            body = json.loads(r.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return ["body is not JSON: %s" % e]
        return self.schema_errors(schema, body)


CONTRACT = [None]


def call(stack, method, path, body=None, what=None, **kw):
    """stack.request, then the answer checked against the document."""
    r = stack.request(method, path, body, **kw)
    problems = CONTRACT[0].validate(method, path, r)
    label = what or "%s %s" % (method, urllib.parse.urlsplit(path).path)
    check(not problems, "%s -> %d conforms" % (label, r.status),
          "; ".join(problems) + " " + repr(r))
    return r


def upload(stack, token, name, data, query=""):
    boundary = "----openapi" + uuid.uuid4().hex
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name))
    body = head.encode() + data + ("\r\n--%s--\r\n" % boundary).encode()
    return call(stack, "POST", "/api/files" + query, body, token=token,
                what="upload %s" % name,
                headers={"Content-Type": "multipart/form-data; boundary=" + boundary})


class Raw:
    """An answer read from a raw socket (for requests http.client will not send)."""

    def __init__(self, data):
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]
                        if ":" in line]
        length = self.header("Content-Length")
        if length is not None:
            self.body = self.body[:int(length)]

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


def raw(stack, text):
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as s:
        s.sendall(text.encode())
        data = b""
        while True:
            try:
                piece = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not piece:
                break
            data += piece
    return Raw(data)


def read_verify_link(stack, address, count, timeout=20):
    """The link of the newest of `count` verification mails to address
    (a resend makes older links stop working)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for path in glob.glob(os.path.join(stack.data_dir, "mail", "*.eml")):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
            m = re.search(r"https?://\S+(/api/auth/verify\?token=[A-Za-z0-9_-]+)", text)
            if m and re.search(r"^To:.*%s" % re.escape(address), text, re.M | re.I):
                found.append((os.path.getmtime(path), m.group(1)))
        if len(found) >= count:
            return max(found)[1]
        time.sleep(0.1)
    return None


def run(stack, doc):
    admin_email, admin_pw = "admin@example.com", "admin pass phrase 1"
    stack.cli("keys", "generate")
    stack.add_user(admin_email, admin_pw, "admin")
    stack.start()

    # ---- health, meta ------------------------------------------------------
    call(stack, "GET", "/healthz")
    call(stack, "GET", "/readyz")
    r = call(stack, "GET", "/api/openapi.json")
    check(r.status == 200 and r.json() == doc,
          "GET /api/openapi.json is docs/openapi.json (the binary is up to date)")
    r = call(stack, "GET", "/metrics")
    check(r.status == 200, "GET /metrics from loopback is allowed by default", repr(r))

    # ---- signup, verification, login ---------------------------------------
    cl_email, cl_pw = "client-%s@example.com" % uuid.uuid4().hex[:8], "client pass phrase 1"
    r = call(stack, "POST", "/api/auth/signup", {"email": cl_email, "password": cl_pw})
    check(r.status == 201, "signup 201", repr(r))
    expect_error(call(stack, "POST", "/api/auth/signup", {"email": cl_email, "password": cl_pw}),
                 409, "email_taken", "signup twice")
    expect_error(call(stack, "POST", "/api/auth/signup", {"email": "x@example.com",
                                                          "password": "short"}),
                 400, "weak_password", "signup with a short password")
    expect_error(call(stack, "POST", "/api/auth/signup", {"email": "not-an-address",
                                                          "password": cl_pw}),
                 400, "invalid_email", "signup with a malformed address")
    expect_error(call(stack, "POST", "/api/auth/signup", b"{nope",
                      headers={"Content-Type": "application/json"}),
                 400, "invalid_json", "signup with broken JSON")
    expect_error(call(stack, "POST", "/api/auth/signup", b"a=b",
                      headers={"Content-Type": "application/x-www-form-urlencoded"}),
                 415, "unsupported_media_type", "signup form-encoded")
    expect_error(call(stack, "POST", "/api/auth/login", {"email": cl_email, "password": cl_pw}),
                 403, "email_not_verified", "login before verifying")
    r = call(stack, "POST", "/api/auth/verify/resend", {"email": cl_email})
    check(r.status == 202, "resend 202", repr(r))
    expect_error(call(stack, "POST", "/api/auth/verify/resend", {"email": "nope"}),
                 400, "invalid_email", "resend to a malformed address")
    link = read_verify_link(stack, cl_email, 2)
    check(link is not None, "the verification mail arrived")
    if link is None:
        return
    r = call(stack, "GET", link)
    check(r.status == 200 and r.json().get("verified") is True, "verify 200", repr(r))
    expect_error(call(stack, "GET", link), 400, "invalid_verification_token", "verify twice")
    expect_error(call(stack, "GET", "/api/auth/verify"), 400, "invalid_request",
                 "verify without a token")
    expect_error(call(stack, "POST", "/api/auth/login", {"email": cl_email, "password": "wrong"}),
                 401, "invalid_credentials", "wrong password")
    r = call(stack, "POST", "/api/auth/login", {"email": cl_email, "password": cl_pw})
    client_tokens = r.json()
    client = client_tokens["access"]
    admin = call(stack, "POST", "/api/auth/login",
                 {"email": admin_email, "password": admin_pw}).json()["access"]
    r = call(stack, "GET", "/api/auth/me", token=client)
    check(r.status == 200 and r.json().get("role") == "client", "me 200", repr(r))
    expect_error(call(stack, "GET", "/api/auth/me"), 401, "missing_token", "me without a token")
    expect_error(call(stack, "GET", "/api/auth/me", token="not.a.jwt"), 401, "invalid_token",
                 "me with a garbage token")

    # ---- users (admin) -----------------------------------------------------
    ops_email, ops_pw = "ops@example.com", "ops pass phrase 1"
    r = call(stack, "POST", "/api/users", {"email": ops_email, "password": ops_pw,
                                           "role": "ops"}, token=admin)
    check(r.status == 201 and r.json().get("role") == "ops", "admin creates ops", repr(r))
    expect_error(call(stack, "POST", "/api/users", {"email": ops_email, "password": ops_pw,
                                                    "role": "ops"}, token=admin),
                 409, "email_taken", "the same ops twice")
    expect_error(call(stack, "POST", "/api/users", {"email": "o2@example.com", "password": ops_pw,
                                                    "role": "client"}, token=admin),
                 400, "invalid_role", "create a client through /api/users")
    expect_error(call(stack, "POST", "/api/users", {"email": "o3@example.com", "password": ops_pw,
                                                    "role": "ops"}, token=client),
                 403, "forbidden", "a client creates users")
    spare = call(stack, "POST", "/api/users", {"email": "spare@example.com", "password": ops_pw,
                                               "role": "ops"}, token=admin).json()
    r = call(stack, "GET", "/api/users?limit=1", token=admin)
    check(r.status == 200 and len(r.json()["users"]) == 1 and r.json()["next_cursor"],
          "users page 1 of limit 1 has a next_cursor", repr(r))
    r = call(stack, "GET", "/api/users?limit=1&cursor=" + r.json()["next_cursor"], token=admin)
    check(r.status == 200 and len(r.json()["users"]) == 1, "users page 2", repr(r))
    r = call(stack, "GET", "/api/users?role=admin", token=admin)
    check(r.status == 200 and [u["email"] for u in r.json()["users"]] == [admin_email] and
          r.json()["next_cursor"] is None, "role filter, last page next_cursor null", repr(r))
    r = call(stack, "GET", "/api/users?email=SPARE", token=admin)
    check([u["email"] for u in r.json().get("users", [])] == ["spare@example.com"],
          "email filter ignores case", repr(r))
    for q, code in (("limit=0", "invalid_limit"), ("limit=201", "invalid_limit"),
                    ("cursor=zz", "invalid_cursor"), ("role=root", "invalid_role")):
        expect_error(call(stack, "GET", "/api/users?" + q, token=admin), 400, code,
                     "users ?" + q)
    expect_error(call(stack, "GET", "/api/users", token=client), 403, "forbidden",
                 "a client lists users")
    r = call(stack, "PATCH", "/api/users/" + spare["id"], {"disabled": True}, token=admin)
    check(r.status == 200 and r.json().get("disabled") is True, "disable a user", repr(r))
    expect_error(call(stack, "PATCH", "/api/users/" + spare["id"], {"email": "x"}, token=admin),
                 400, "invalid_request", "PATCH a user's email")
    expect_error(call(stack, "PATCH", "/api/users/" + "0" * 32, {"disabled": True}, token=admin),
                 404, "user_not_found", "PATCH an unknown user")
    admin_id = call(stack, "GET", "/api/auth/me", token=admin).json()["id"]
    expect_error(call(stack, "PATCH", "/api/users/" + admin_id, {"disabled": True}, token=admin),
                 409, "last_admin", "disable the last admin")

    # ---- files ---------------------------------------------------------------
    ops = call(stack, "POST", "/api/auth/login",
               {"email": ops_email, "password": ops_pw}).json()["access"]
    text = ("naïve café report\n" * 500).encode()
    r = upload(stack, ops, "Report A.txt", text)
    check(r.status == 201, "multipart upload 201", repr(r))
    fid = r.json()["id"]
    r = call(stack, "POST", "/api/files?visibility=staff", b"\x00\x01binary", token=ops,
             headers={"Content-Type": "application/octet-stream", "X-File-Name": "staff.bin"},
             what="raw upload")
    check(r.status == 201 and r.json()["visibility"] == "staff", "raw upload 201", repr(r))
    staff_id = r.json()["id"]
    expect_error(upload(stack, client, "c.txt", b"hi"), 403, "forbidden", "client upload")
    expect_error(upload(stack, ops, "x.exe", b"MZ"), 415, "unsupported_file_type", "an .exe")
    expect_error(upload(stack, ops, "x.pdf", b"not a pdf"), 415, "content_mismatch",
                 "a .pdf that is not one")
    expect_error(upload(stack, ops, "x.txt", b"x", "?visibility=world"), 400,
                 "invalid_visibility", "upload with a bad visibility")
    expect_error(call(stack, "POST", "/api/files", b"abc", token=ops,
                      headers={"Content-Type": "application/octet-stream"},
                      what="raw upload without a name"),
                 400, "missing_file_name", "raw upload without a name")
    expect_error(call(stack, "POST", "/api/files", b"{}", token=ops,
                      headers={"Content-Type": "application/json"}, what="JSON upload"),
                 415, "unsupported_media_type", "a JSON upload")

    r = call(stack, "GET", "/api/files?limit=1", token=ops)
    check(r.status == 200 and len(r.json()["files"]) == 1 and r.json()["next_cursor"],
          "files page 1 of limit 1", repr(r))
    first = r.json()["files"][0]["id"]
    r = call(stack, "GET", "/api/files?limit=1&cursor=" + r.json()["next_cursor"], token=ops)
    # Same second: created_at ties, the id decides the order.
    check(r.status == 200 and sorted([first] + [f["id"] for f in r.json()["files"]]) ==
          sorted([fid, staff_id]) and r.json()["next_cursor"] is None,
          "files page 2 holds the other file and is the last", repr(r))
    r = call(stack, "GET", "/api/files?name=report%20a", token=client)
    check([f["id"] for f in r.json().get("files", [])] == [fid], "name filter", repr(r))
    r = call(stack, "GET", "/api/files", token=client)
    check([f["id"] for f in r.json().get("files", [])] == [fid], "a client sees no staff file")
    for q, code in (("limit=0", "invalid_limit"), ("limit=x", "invalid_limit"),
                    ("cursor=zz", "invalid_cursor"), ("name=%01", "invalid_name")):
        expect_error(call(stack, "GET", "/api/files?" + q, token=ops), 400, code, "files ?" + q)
    call(stack, "GET", "/api/files/" + fid, token=client)
    expect_error(call(stack, "GET", "/api/files/" + staff_id, token=client), 404,
                 "file_not_found", "a client reads a staff file")
    r = call(stack, "PATCH", "/api/files/" + fid, {"name": "Report B.txt"}, token=ops)
    check(r.status == 200 and r.json()["name"] == "Report B.txt", "rename", repr(r))
    expect_error(call(stack, "PATCH", "/api/files/" + fid, {"visibility": "all"}, token=ops),
                 400, "invalid_visibility", "PATCH a bad visibility")
    expect_error(call(stack, "PATCH", "/api/files/" + fid, {"name": "x"}, token=client),
                 403, "forbidden", "a client renames")

    r = call(stack, "GET", "/api/files/%s/content" % fid, token=client)
    check(r.status == 200 and r.body == text, "content 200 is the bytes")
    etag = r.header("ETag")
    r = call(stack, "GET", "/api/files/%s/content" % fid, token=client,
             headers={"Range": "bytes=0-9"})
    check(r.status == 206 and r.body == text[:10], "Range 206", repr(r))
    r = call(stack, "GET", "/api/files/%s/content" % fid, token=client,
             headers={"If-None-Match": etag or "x"})
    check(r.status == 304, "If-None-Match 304", repr(r))
    expect_error(call(stack, "GET", "/api/files/%s/content" % fid, token=client,
                      headers={"Range": "bytes=%d-" % (len(text) + 5)}),
                 416, "range_not_satisfiable", "a range past the end")

    # ---- links ---------------------------------------------------------------
    r = call(stack, "POST", "/api/files/%s/links" % fid, {"max_downloads": 1}, token=client)
    check(r.status == 201, "link 201", repr(r))
    one = r.json()
    expect_error(call(stack, "POST", "/api/files/%s/links" % fid, {"expires_in": 0},
                      token=client), 400, "invalid_request", "link with expires_in 0")
    expect_error(call(stack, "POST", "/api/files/%s/links" % staff_id, {}, token=client),
                 404, "file_not_found", "a client links a staff file")
    r = call(stack, "GET", "/api/download/" + one["token"])
    check(r.status == 200 and r.body == text, "anonymous download 200")
    expect_error(call(stack, "GET", "/api/download/" + one["token"]), 410, "link_exhausted",
                 "the one-time link again")
    expect_error(call(stack, "GET", "/api/download/" + "A" * 43), 404, "link_not_found",
                 "an unknown link")
    r = call(stack, "POST", "/api/files/%s/links" % fid,
             {"max_downloads": 3, "signed_in_only": True}, token=ops)
    signed = r.json()
    expect_error(call(stack, "GET", "/api/download/" + signed["token"]), 401,
                 "link_requires_login", "a signed_in_only link anonymously")
    r = call(stack, "GET", "/api/download/" + signed["token"], token=client,
             headers={"Range": "bytes=-5"})
    check(r.status == 206 and r.body == text[-5:], "signed-in ranged download 206", repr(r))
    r = call(stack, "GET", "/api/files/%s/links" % fid, token=ops)
    check(r.status == 200 and len(r.json()["links"]) == 2, "links list (owner sees both)",
          repr(r))
    r = call(stack, "DELETE", "/api/links/" + signed["id"], token=ops)
    check(r.status == 200 and r.json()["state"] == "revoked", "revoke 200", repr(r))
    expect_error(call(stack, "GET", "/api/download/" + signed["token"], token=client), 410,
                 "link_revoked", "a revoked link")
    expect_error(call(stack, "DELETE", "/api/links/" + "0" * 32, token=ops), 404,
                 "link_not_found", "revoke an unknown link")
    # An ops user who neither made the link nor owns the file may not revoke it.
    call(stack, "POST", "/api/users", {"email": "ops2@example.com", "password": ops_pw,
                                       "role": "ops"}, token=admin)
    ops2 = call(stack, "POST", "/api/auth/login",
                {"email": "ops2@example.com", "password": ops_pw}).json()["access"]
    expect_error(call(stack, "DELETE", "/api/links/" + one["id"], token=ops2), 403,
                 "forbidden", "revoke someone else's link")

    # ---- sessions ------------------------------------------------------------
    r = call(stack, "POST", "/api/auth/refresh", {"refresh": client_tokens["refresh"]})
    check(r.status == 200, "refresh 200", repr(r))
    pair = r.json()
    expect_error(call(stack, "POST", "/api/auth/refresh", {"refresh": client_tokens["refresh"]}),
                 401, "refresh_token_reused", "a spent refresh token")
    expect_error(call(stack, "POST", "/api/auth/refresh", {}), 400, "invalid_request",
                 "refresh without a token")
    r = call(stack, "POST", "/api/auth/login", {"email": cl_email, "password": cl_pw})
    r = call(stack, "POST", "/api/auth/logout", {"refresh": r.json()["refresh"]})
    check(r.status == 204 and r.body == b"", "logout 204, no body", repr(r))
    expect_error(call(stack, "POST", "/api/auth/logout", {"refresh": "garbage"}), 401,
                 "invalid_refresh_token", "logout with a garbage token")
    r = call(stack, "POST", "/api/auth/logout-all", token=pair["access"])
    check(r.status == 204, "logout-all 204", repr(r))
    expect_error(call(stack, "GET", "/api/auth/me", token=pair["access"]), 401,
                 "token_revoked", "an access token after logout-all")

    # ---- delete --------------------------------------------------------------
    expect_error(call(stack, "DELETE", "/api/files/" + fid, token=ops2), 403, "forbidden",
                 "ops deletes another's file")
    r = call(stack, "DELETE", "/api/files/" + fid, token=ops)
    check(r.status == 200 and r.json()["deleted"] is True, "delete 200", repr(r))
    expect_error(call(stack, "DELETE", "/api/files/" + fid, token=ops), 404, "file_not_found",
                 "delete twice")

    # ---- no such route, no such method, a malformed request ------------------
    expect_error(call(stack, "GET", "/api/nothing", token=ops), 404, "not_found",
                 "an unknown path")
    r = call(stack, "PUT", "/api/files", b"x", token=ops)
    expect_error(r, 405, "method_not_allowed", "PUT /api/files")
    check(r.header("Allow") == "GET, POST", "405 says Allow: GET, POST", repr(r))
    rid = "openapi-smuggle-" + uuid.uuid4().hex[:8]
    r = raw(stack, "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\n"
                   "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % rid)
    problems = CONTRACT[0].validate("POST", "/api/auth/login", r)
    check(not problems, "Content-Length + chunked -> %d conforms" % r.status,
          "; ".join(problems) + repr(r))
    expect_error(r, 400, "invalid_request", "Content-Length with Transfer-Encoding")
    check(r.json()["error"]["request_id"] == rid and r.header("X-Request-Id") == rid,
          "the error carries the client's request id")
    # The access line is written after the answer went out: wait for it.
    logged = None
    deadline = time.monotonic() + 10
    while logged is None and time.monotonic() < deadline:
        logged = re.search(r'svc=gateway req="?%s"? .*status=400' % re.escape(rid),
                           stack.logs_all())
        if logged is None:
            time.sleep(0.05)
    check(logged is not None,
          "the gateway logged the request id with its status")


def validator_drill():
    """The validator refuses answers that break the document, each way."""
    from stack import Response
    c = CONTRACT[0]
    common = [("X-Request-Id", "abc"), ("X-Content-Type-Options", "nosniff"),
              ("Cache-Control", "no-store"), ("Content-Type", "application/json")]
    user = {"id": "0" * 32, "email": "a@b.c", "role": "client", "verified": True,
            "disabled": False, "created_at": "2026-01-01T00:00:00Z"}

    def refused(method, path, status, headers, body, what):
        r = Response(status, headers, json.dumps(body).encode() if body is not None else b"")
        problems = c.validate(method, path, r)
        check(problems, "the validator refuses %s" % what, "it accepted it")

    def err(code):
        return {"error": {"code": code, "message": "m", "request_id": "abc"}}

    check(not c.validate("GET", "/api/auth/me", Response(200, common, json.dumps(
        user).encode())), "the validator accepts a conforming user")
    refused("GET", "/api/auth/me", 200, common, dict(user, extra=1), "an undocumented field")
    refused("GET", "/api/auth/me", 200, common, dict(user, role="root"), "a role outside the enum")
    refused("GET", "/api/auth/me", 200, common[1:], user, "a missing X-Request-Id")
    refused("GET", "/api/auth/me", 418, common, err("forbidden"), "an undocumented status")
    refused("GET", "/api/auth/me", 401, common, err("invalid_credentials"),
            "a code not listed for this operation and status")
    refused("GET", "/api/auth/me", 401, common, {"error": {"code": "missing_token"}},
            "an error without message and request_id")
    refused("POST", "/api/auth/logout", 204, common, {}, "a body on a 204")
    refused("GET", "/api/nothing", 404, common, {"message": "no"}, "a 404 not in the error shape")


def static_checks(doc):
    """Error code lists: the gateway's source, docs/api.md, the document."""
    codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
    check(len(codes) == len(set(codes)), "ErrorCode has no duplicates")
    src = ""
    for path in glob.glob(os.path.join(ROOT, "services", "gateway", "src", "*.c")):
        with open(path, encoding="utf-8") as f:
            src += f.read()
    emitted = set(re.findall(r'gw_reply_error\s*\([^,]+,\s*[0-9]+,\s*"([a-z_]+)"', src))
    check(len(emitted) >= 25, "read the gateway's error codes from its source (%d)" %
          len(emitted))
    missing = sorted(emitted - set(codes))
    check(not missing, "every code the gateway emits is in ErrorCode", repr(missing))
    with open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8") as f:
        api = f.read()
    m = re.search(r"^## Error codes\n(.*?)(?=^## |\Z)", api, re.M | re.S)
    check(m is not None, "docs/api.md has an 'Error codes' section")
    table = re.findall(r"^\| `([a-z_]+)` \| ([0-9]{3}) \|", m.group(1) if m else "", re.M)
    check([c for c, _ in table] == codes,
          "docs/api.md#error-codes lists exactly ErrorCode, in its order",
          "doc only: %r, api.md only: %r" % (sorted(set(codes) - {c for c, _ in table}),
                                             sorted({c for c, _ in table} - set(codes))))
    # Each code's status in api.md is the status it is documented under.
    status_of = {}
    for item in doc["paths"].values():
        for m_ in METHODS:
            for status, resp in item.get(m_, {}).get("responses", {}).items():
                enum = (resp.get("content", {}).get("application/json", {}).get("schema", {})
                        .get("properties", {}).get("error", {}).get("properties", {})
                        .get("code", {}).get("enum", []))
                for c in enum:
                    status_of.setdefault(c, set()).add(int(status))
    shared = {"InternalError": 500, "BadGateway": 502, "Unavailable": 503}
    for name, resp in doc["components"]["responses"].items():
        enum = resp["content"]["application/json"]["schema"]["properties"]["error"][
            "properties"]["code"]["enum"]
        for c in enum:
            status_of.setdefault(c, set()).add(shared[name])
    # Answered before any operation is found (no route, no such method, a
    # refused CORS preflight): in no operation's list.
    outside = {"not_found", "method_not_allowed", "origin_not_allowed"}
    wrong = [(c, s, sorted(status_of.get(c, ()))) for c, s in table
             if status_of.get(c, set()) != (set() if c in outside else {int(s)})]
    check(not wrong, "every code has one status, the one docs/api.md gives", repr(wrong))


def main():
    args = stack_args()
    with open(DOC_PATH, encoding="utf-8") as f:
        doc = json.load(f)
    CONTRACT[0] = Contract(doc)
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})
    static_checks(doc)
    validator_drill()
    CONTRACT[0].seen, CONTRACT[0].validated = {}, 0  # the drill counts for nothing
    db = db_env(args.db)
    if db is None:
        return 1
    env, schema, _ = db
    stack = Stack(args.bin_dir, env)
    try:
        run(stack, doc)
    finally:
        rc = stack.stop()
        check(rc == 0, "safeshare up exits 0 on SIGTERM", "rc=%r" % rc)
        if FAILURES:
            print("---- stack log ----\n" + stack.logs())
        stack.cleanup()
        if schema:
            pg_drop_schema(os.environ["SAFESHARE_TEST_PG_URL"], schema)
    ops = sorted(op["operationId"] for _, _, _, op in CONTRACT[0].ops)
    uncalled = [o for o in ops if o not in CONTRACT[0].seen]
    check(not uncalled, "every documented operation was called and conformed (%d)" % len(ops),
          repr(uncalled))
    pairs = sum(len(s) for s in CONTRACT[0].seen.values())
    print("%d answers validated against docs/openapi.json: %d operations, %d (operation, "
          "status) pairs" % (CONTRACT[0].validated, len(CONTRACT[0].seen), pairs))
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
