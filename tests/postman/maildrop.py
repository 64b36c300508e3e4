#!/usr/bin/env python3
"""A read-only HTTP view of a mail drop, for the Postman collection (test only).

The collection has to follow the verification link that the mailer wrote
into the mail drop (SAFESHARE_MAIL_DIR, one <job_id>.eml per message, or
a Maildir's new/ as the SMTP test server writes it). The gateway has no
way to read mail, on purpose: this small server, started by the test
harness next to the stack (tests/postman/run_newman.py) or by hand next
to `scripts/up.sh`, is the only "mail API" and it is never part of a
deployment. It listens on a loopback address only and answers one
question:

    GET /verification?to=ADDRESS[&wait=SECONDS]

-> 200 {"to", "verify_url", "token", "message_id", "file"} for the newest
message to ADDRESS that carries a /api/auth/verify?token= link (waiting
up to `wait` seconds, default 10, at most 30, for it to arrive), or 404
{"error": {"code": "mail_not_found", ...}}. Anything else is 404/405/400
in the same error shape. Standalone:

    python3 tests/postman/maildrop.py --dir var/mail --listen 127.0.0.1:8025

Python standard library only.
"""
import argparse
import email
import email.policy
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERIFY_RE = re.compile(r"(https?://[^\s\"'<>]+/api/auth/verify\?token=([A-Za-z0-9_-]+))")
MAX_WAIT = 30.0
MAX_MAIL_BYTES = 1 << 20  # a verification mail is a few KiB


def _mail_files(mail_dir):
    """Every message file of the drop: *.eml, and a Maildir's new/ and cur/."""
    out = []
    for sub in ("", "new", "cur"):
        d = os.path.join(mail_dir, sub)
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            path = os.path.join(d, n)
            if sub == "" and not n.endswith(".eml"):
                continue
            if os.path.isfile(path):
                out.append(path)
    return out


def _text_of(msg):
    """The decoded text of every text/* part (transfer encodings undone)."""
    texts = []
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        try:
            texts.append(part.get_content())
        except (LookupError, ValueError):
            continue
    return "\n".join(texts)


def find_verification(mail_dir, address):
    """The newest verification link mailed to address, as a dict, or None."""
    address = address.strip().lower()
    best = None
    for path in _mail_files(mail_dir):
        try:
            st = os.stat(path)
            if st.st_size > MAX_MAIL_BYTES:
                continue
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
        except (OSError, ValueError):
            continue  # being written, or not a message: skip it
        rcpts = [a.addr_spec.lower() for h in msg.get_all("To", [])
                 for a in getattr(h, "addresses", ())]
        if address not in rcpts:
            continue
        m = VERIFY_RE.search(_text_of(msg))
        if not m:
            continue
        if best is None or st.st_mtime_ns > best[0]:
            best = (st.st_mtime_ns, {
                "to": address, "verify_url": m.group(1), "token": m.group(2),
                "message_id": str(msg.get("Message-ID", "")),
                "file": os.path.basename(path)})
    return best[1] if best else None


class _Handler(BaseHTTPRequestHandler):
    server_version = "safeshare-maildrop"
    mail_dir = None

    def log_message(self, fmt, *args):  # one line per request, no addresses or tokens
        sys.stderr.write("maildrop: %s %s\n" % (self.command, self.path.split("?")[0]))

    def _reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, code, message):
        self._reply(status, {"error": {"code": code, "message": message}})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/verification":
            return self._error(404, "not_found", "only GET /verification?to= exists")
        q = urllib.parse.parse_qs(url.query)
        to = q.get("to", [""])[0]
        if not to or len(to) > 320 or "@" not in to:
            return self._error(400, "invalid_request", "to= must be an e-mail address")
        try:
            wait = min(float(q.get("wait", ["10"])[0]), MAX_WAIT)
        except ValueError:
            return self._error(400, "invalid_request", "wait= must be a number of seconds")
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            found = find_verification(self.mail_dir, to)
            if found or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if not found:
            return self._error(404, "mail_not_found",
                               "no verification mail to that address in the mail drop")
        return self._reply(200, found)

    def _refuse(self):
        self._error(405, "method_not_allowed", "read-only: GET /verification only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class MailDrop:
    """The server on a thread: MailDrop(dir).start() -> its base URL."""

    def __init__(self, mail_dir, host="127.0.0.1", port=0):
        if not _loopback(host):
            raise ValueError("maildrop listens on a loopback address only, not %r" % host)
        handler = type("Handler", (_Handler,), {"mail_dir": os.path.abspath(mail_dir)})
        server = ThreadingHTTPServer
        if ":" in host:  # ::1
            server = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self.httpd = server((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)

    def start(self):
        self.thread.start()
        return self.url

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="the mail drop (SAFESHARE_MAIL_DIR) or a Maildir")
    ap.add_argument("--listen", default="127.0.0.1:8025", help="loopback HOST:PORT")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    try:
        drop = MailDrop(args.dir, host.strip("[]") or "127.0.0.1", int(port))
    except (ValueError, OSError) as e:
        print("maildrop: %s" % e, file=sys.stderr)
        return 2
    print("maildrop: serving %s on %s (GET /verification?to=)" % (args.dir, drop.url), flush=True)
    try:
        drop.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
