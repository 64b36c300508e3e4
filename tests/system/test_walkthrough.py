#!/usr/bin/env python3
"""The seeds' flow through the real stack (issue 2).

ops user from the CLI; a client signs up, follows the mailed link, logs in;
ops uploads a random multi-MiB file; the client lists it, reads its
metadata, downloads it, makes a one-time link; an anonymous download through
the link returns the same bytes and a second use is refused; ops deletes it.
Around that: no plaintext under the data dir, role and token refusals, and
one JSON error shape with stable codes.
"""
import glob
import hashlib
import os
import re
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check, expect_error  # noqa: E402
from stack import Stack, db_env, pg_drop_schema, stack_args  # noqa: E402

def read_mail(stack, address, timeout=20):
    """The verification link from the mail drop (one .eml per message)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in glob.glob(os.path.join(stack.data_dir, "mail", "*.eml")):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
            if re.search(r"^To:.*%s" % re.escape(address), text, re.M | re.I):
                m = re.search(r"(https?://\S+/api/auth/verify\?token=[A-Za-z0-9_-]+)", text)
                if m:
                    return m.group(1), text
        time.sleep(0.1)
    return None, None


def forge(bin_dir, key, sub, role, offset, ttl, gen=0):
    r = subprocess.run([os.path.join(bin_dir, "jwt_forge"), key, "safeshare", "safeshare-api",
                        sub, role, str(offset), str(ttl), str(gen)], capture_output=True,
                       check=True)
    return r.stdout.decode().strip()


SCHEMA = [None]  # the PostgreSQL schema in --db pg mode


def db_bytes(stack):
    """Everything the databases hold: the SQLite files (and WAL), or a
    data dump of the PostgreSQL schema."""
    if SCHEMA[0]:
        return subprocess.run(["pg_dump", "--data-only", "-n", SCHEMA[0],
                               os.environ["SAFESHARE_TEST_PG_URL"]],
                              capture_output=True, check=True, timeout=60).stdout
    return b"".join(open(p, "rb").read() for p in files_under(stack.data_dir)
                    if p.endswith((".db", ".db-wal")))


def files_under(root):
    for dirpath, _, names in os.walk(root):
        for n in names:
            path = os.path.join(dirpath, n)
            if os.path.isfile(path) and not os.path.islink(path):  # not sockets
                yield path


def main():
    args = stack_args()
    db = db_env(args.db)
    if db is None:
        return 1
    env, schema, _ = db
    SCHEMA[0] = schema
    stack = Stack(args.bin_dir, env)
    try:
        run(stack, args.bin_dir)
    finally:
        rc = stack.stop()
        check(rc == 0, "safeshare up exits 0 on SIGTERM", "rc=%r" % rc)
        check(stack.our_processes() == [], "no service left running after stop")
        if FAILURES:
            print("---- stack log ----\n" + stack.logs())
        stack.cleanup()
        if schema:
            pg_drop_schema(os.environ["SAFESHARE_TEST_PG_URL"], schema)
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


def run(stack, bin_dir):
    ops_email, ops_pw = "ops@example.com", "correct horse battery"
    cl_email, cl_pw = "Client@Example.com", "another good password"

    # Operator set-up with the CLI, before the stack runs.
    stack.cli("keys", "generate")
    r = stack.cli("user", "add", ops_email, "--role", "ops", stdin=(ops_pw + "\n").encode())
    check(b"ops" in r.stdout, "CLI creates the ops user")
    stack.start()
    check(stack.request("GET", "/healthz").status == 200, "/healthz 200")
    ready = stack.request("GET", "/readyz")
    services = ready.json().get("services", {})
    check(ready.status == 200 and all(services.get(s, {}).get("ok") for s in
                                       ("auth", "crypto", "storage", "mailer")),
          "/readyz: every service answered", repr(ready))

    # Signup: 201, no token in the answer, mail in the drop.
    r = stack.request("POST", "/api/auth/signup", {"email": cl_email, "password": cl_pw})
    check(r.status == 201 and r.json().get("verified") is False
          and "token" not in r.body.decode().lower(), "client signs up (201, unverified)",
          repr(r))
    expect_error(stack.request("POST", "/api/auth/signup", {"email": cl_email.upper(),
                                                            "password": cl_pw}),
                 409, "email_taken", "duplicate signup (case-insensitive)")
    expect_error(stack.request("POST", "/api/auth/signup", b"{not json",
                               headers={"Content-Type": "application/json"}),
                 400, "invalid_json", "signup with broken JSON")
    expect_error(stack.request("POST", "/api/auth/login", {"email": cl_email, "password": cl_pw}),
                 403, "email_not_verified", "unverified client cannot log in")

    link, mail = read_mail(stack, cl_email.lower())
    check(link is not None, "verification mail in the mail drop has a link")
    if link is None:
        return
    check(link.startswith(stack.base + "/api/auth/verify?token="),
          "link uses SAFESHARE_PUBLIC_URL")
    path = urllib.parse.urlsplit(link)
    r = stack.request("GET", path.path + "?" + path.query)
    check(r.status == 200, "following the link verifies the account", repr(r))
    expect_error(stack.request("GET", path.path + "?" + path.query),
                 400, "invalid_verification_token", "verification link is single use")
    dump = db_bytes(stack)
    check(len(dump) > 0 and cl_email.lower().encode() in dump,
          "database content readable for the check below")
    check(urllib.parse.parse_qs(path.query)["token"][0].encode() not in dump,
          "verification token not stored in clear in any database")

    # Logins.
    expect_error(stack.request("POST", "/api/auth/login", {"email": cl_email, "password": "wrong"}),
                 401, "invalid_credentials", "wrong password")
    r = stack.request("POST", "/api/auth/login", {"email": cl_email, "password": cl_pw})
    login = r.json() if r.status == 200 else {}
    check(r.status == 200 and login.get("token_type") == "Bearer" and
          isinstance(login.get("access"), str) and isinstance(login.get("refresh"), str) and
          isinstance(login.get("expires_in"), int) and
          isinstance(login.get("refresh_expires_in"), int),
          "client logs in (access and refresh token)", repr(r))
    client = r.json()["access"]
    r = stack.request("POST", "/api/auth/login", {"email": ops_email, "password": ops_pw})
    check(r.status == 200, "ops logs in", repr(r))
    ops = r.json()["access"]
    me = stack.request("GET", "/api/auth/me", token=client).json()
    check(me.get("email") == cl_email.lower() and me.get("role") == "client",
          "/api/auth/me names the client", repr(me))
    ops_id = stack.request("GET", "/api/auth/me", token=ops).json().get("id")

    # Token refusals.
    expect_error(stack.request("GET", "/api/files"), 401, "missing_token", "no token")
    head, payload, sig = client.split(".")
    tampered = head + "." + payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + sig
    expect_error(stack.request("GET", "/api/files", token=tampered), 401, "invalid_token",
                 "tampered token")
    key = os.path.join(stack.data_dir, "keys", "jwt-es256.pem")
    expired = forge(bin_dir, key, me["id"], "client", -7200, 60)
    expect_error(stack.request("GET", "/api/files", token=expired), 401, "invalid_token",
                 "expired token")
    foreign_key = os.path.join(stack.data_dir, "foreign.pem")
    subprocess.run([os.path.join(bin_dir, "jwt_forge"), "--keygen", foreign_key,
                    foreign_key + ".pub"], check=True)
    expect_error(stack.request("GET", "/api/files",
                               token=forge(bin_dir, foreign_key, me["id"], "admin", 0, 300)),
                 401, "invalid_token", "token signed by another key")

    # Upload: ops yes, client no.
    data = os.urandom(3 * 1024 * 1024 + 12345)
    digest = hashlib.sha256(data).hexdigest()
    expect_error(stack.upload(client, "nope.bin", b"client bytes"), 403, "forbidden",
                 "client upload")
    r = stack.upload(ops, "../../etc/report final.bin", data)
    check(r.status == 201, "ops uploads a %d-byte file" % len(data), repr(r))
    if r.status != 201:
        return
    meta = r.json()
    fid = meta["id"]
    check(meta.get("size") == len(data) and meta.get("sha256") == digest,
          "upload answer has size and SHA-256", repr(meta))
    check("/" not in meta.get("name", "/"), "client-supplied path is not kept in the name",
          meta.get("name"))

    # No plaintext anywhere under the data dir.
    samples = [data[o:o + 32] for o in (0, 1024 * 1024 - 16, 2 * 1024 * 1024 + 5, len(data) - 32)]
    leaked = [p for p in files_under(stack.data_dir)
              if any(s in open(p, "rb").read() for s in samples)]
    check(leaked == [], "uploaded bytes appear nowhere in plaintext under the data dir",
          repr(leaked))

    # The client lists, reads metadata, downloads.
    r = stack.request("GET", "/api/files", token=client)
    ids = [f["id"] for f in r.json().get("files", [])] if r.status == 200 else []
    check(fid in ids, "client lists the file", repr(r))
    r = stack.request("GET", "/api/files/" + fid, token=client)
    check(r.status == 200 and r.json().get("sha256") == digest and
          r.json().get("owner_id") == ops_id, "client reads the metadata", repr(r))
    r = stack.request("GET", "/api/files/" + fid + "/content", token=client)
    check(r.status == 200 and r.body == data, "client downloads exactly the uploaded bytes",
          "status=%d len=%d" % (r.status, len(r.body)))
    check(r.header("Content-Length") == str(len(data)) and r.header("ETag") and
          "attachment" in (r.header("Content-Disposition") or ""), "download headers")
    expect_error(stack.request("GET", "/api/files/" + "0" * 32, token=client), 404,
                 "file_not_found", "unknown file id")
    expect_error(stack.request("DELETE", "/api/files/" + fid, token=client), 403, "forbidden",
                 "client delete")

    # One-time link.
    r = stack.request("POST", "/api/files/%s/links" % fid,
                      {"expires_in": 600, "max_downloads": 1}, token=client)
    check(r.status == 201 and r.json().get("token") and r.json().get("url"),
          "client makes a one-time link", repr(r))
    link = r.json()
    check(link["url"] == stack.base + "/api/download/" + link["token"], "link URL")
    r = stack.request("GET", "/api/download/" + link["token"])
    check(r.status == 200 and r.body == data, "anonymous download through the link",
          "status=%d len=%d" % (r.status, len(r.body)))
    expect_error(stack.request("GET", "/api/download/" + link["token"]), 410,
                 "link_exhausted", "second use of the one-time link")
    expect_error(stack.request("GET", "/api/download/" + "A" * 43), 404, "link_not_found",
                 "unknown link")
    expect_error(stack.request("POST", "/api/files/%s/links" % fid,
                               {"expires_in": -5}, token=client),
                 400, "invalid_request", "link with a negative expiry")

    # Delete: gone for everyone.
    r = stack.request("DELETE", "/api/files/" + fid, token=ops)
    check(r.status == 200 and r.json().get("deleted") is True, "ops deletes the file", repr(r))
    expect_error(stack.request("GET", "/api/files/" + fid, token=client), 404,
                 "file_not_found", "deleted file metadata")
    expect_error(stack.request("GET", "/api/files/" + fid + "/content", token=client), 404,
                 "file_not_found", "deleted file content")
    r = stack.request("GET", "/api/files", token=client)
    check(fid not in [f["id"] for f in r.json().get("files", [])], "deleted file not listed")
    blobs = [p for p in files_under(os.path.join(stack.data_dir, "blobs")) if fid in p]
    check(blobs == [], "deleted file's blob removed", repr(blobs))
    expect_error(stack.request("GET", "/api/nothing-here", token=client), 404, "not_found",
                 "unknown route")


if __name__ == "__main__":
    sys.exit(main())
