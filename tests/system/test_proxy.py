#!/usr/bin/env python3
"""Issue 8: the gateway behind a trusted reverse proxy, through the real stack.

One stack (real binaries on loopback, SQLite or with --db pg auth on a fresh
PostgreSQL schema) whose gateway trusts only 127.0.0.2
(SAFESHARE_TRUSTED_PROXIES=127.0.0.2/32). Loopback is all of 127.0.0.0/8 on
Linux, so a connection from source address 127.0.0.2 is "the proxy" and one
from 127.0.0.1 is an ordinary, untrusted client of the same gateway.

- Through the proxy, two clients named by X-Forwarded-For are throttled
  apart by auth: one runs into 429 too_many_attempts after its 20 free
  failures while the other, and the proxy's own address, still get 401.
- The audit log (auth's audit_log table) records the forwarded address
  (IPv4, IPv6 canonical); login_failures is keyed by it.
- From the untrusted peer a forged X-Forwarded-For (and -Proto, and
  X-Request-Id) is ignored: the audit row has 127.0.0.1, the forged
  address -- even the throttled client's -- is neither throttled nor
  counted.
- A trusted proxy's X-Forwarded-For given twice, malformed, or possibly
  dropped (a request of 64 headers or more): the proxy's address, a
  warning, and /metrics refused; its X-Request-Id twice or possibly
  dropped: a fresh id.
- X-Forwarded-Proto: the gateway's access line says scheme=https only when
  the trusted proxy says so.
"""
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check, expect_error  # noqa: E402
from stack import Response, Stack, db_env, pg_drop_schema, stack_args  # noqa: E402

PROXY = "127.0.0.2"      # the one trusted peer
DIRECT = "127.0.0.1"     # any other client
CLIENT_A = "198.51.100.10"
CLIENT_B = "198.51.100.20"
CLIENT_V6_SENT = "2001:DB8:0:0::42"
CLIENT_V6 = "2001:db8::42"   # as the gateway writes it
FORGED = "203.0.113.66"
ADDR_FREE = 20               # AUTHD_LOGIN_ADDR_FREE
# civetweb's header table holds 64 (MG_MAX_HEADERS): behind these, a
# header is dropped unseen.
PADDING = [("X-Pad-%d" % i, "x") for i in range(64)]
RUN = uuid.uuid4().hex[:8]


def rid(tag):
    return "proxy-%s-%s" % (tag, RUN)


def send(stack, src, method, path, body=None, headers=()):
    """One request from source address src; headers is a list of pairs,
    so a header may be given twice."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30,
                                      source_address=(src, 0))
    try:
        conn.putrequest(method, path)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(data)))
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders(data)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def login(stack, src, email, password, headers=()):
    return send(stack, src, "POST", "/api/auth/login", {"email": email, "password": password},
                headers)


class Ctx:
    def __init__(self, stack, schema_url):
        self.stack = stack
        self.schema_url = schema_url
        self.audit = []    # (request id, event, outcome, client_addr) to find
        self.fail_counts = {}  # address -> failures it must have (exact)
        self.not_counted = []  # addresses that must have no login_failures row
        self.lines = []    # (request id, substring of its gateway access line)
        self.n = 0

    def ghost(self):
        """A fresh unknown e-mail: its account count stays at 1, so only
        the address can throttle."""
        self.n += 1
        return "ghost-%d-%s@example.com" % (self.n, RUN)


def section_throttle(t):
    s = t.stack
    xa = [("X-Forwarded-For", "192.0.2.1, " + CLIENT_A), ("X-Forwarded-Proto", "https")]
    for i in range(ADDR_FREE):
        tag = rid("a%d" % i)
        r = login(s, PROXY, t.ghost(), "wrong password", xa + [("X-Request-Id", tag)])
        if r.status != 401:
            expect_error(r, 401, "invalid_credentials", "client A failure #%d" % (i + 1))
            return
        if i == 0:
            t.audit.append((tag, "login", "invalid_credentials", CLIENT_A))
            t.lines.append((tag, "status=401"))
            t.lines.append((tag, "client=%s scheme=https" % CLIENT_A))
    check(True, "client A (X-Forwarded-For %s via the proxy): %d failures answered 401" %
          (CLIENT_A, ADDR_FREE))
    # The next attempt must come within 1 s (whole seconds) of the 20th
    # failure; on a slow machine it may be let through (401) and doubles
    # the wait, so one of the next ones is surely refused.
    extra = 0
    for n in range(4):
        tag = rid("a-over%d" % n)
        r = login(s, PROXY, t.ghost(), "wrong password", xa + [("X-Request-Id", tag)])
        if r.status != 401:
            break
        extra += 1
    expect_error(r, 429, "too_many_attempts",
                 "client A is throttled after %d failures from its address" % ADDR_FREE)
    t.audit.append((tag, "login", "too_many_attempts", CLIENT_A))
    t.fail_counts[CLIENT_A] = ADDR_FREE + extra
    # While A waits: another forwarded client, and the proxy itself.
    tag = rid("b")
    r = login(s, PROXY, t.ghost(), "wrong password",
              [("X-Forwarded-For", CLIENT_B), ("X-Request-Id", tag)])
    expect_error(r, 401, "invalid_credentials",
                 "client B via the same proxy meanwhile is not throttled")
    t.audit.append((tag, "login", "invalid_credentials", CLIENT_B))
    t.fail_counts[CLIENT_B] = 1
    tag = rid("proxy-own")
    r = login(s, PROXY, t.ghost(), "wrong password", [("X-Request-Id", tag)])
    expect_error(r, 401, "invalid_credentials",
                 "the proxy's own request (no X-Forwarded-For) is not throttled")
    t.audit.append((tag, "login", "invalid_credentials", PROXY))
    t.lines.append((tag, "client=%s scheme=http" % PROXY))
    # An untrusted peer naming A in a forged header is judged as itself
    # (A's wait may be over by now: the exact counts in login_failures,
    # checked at the end, say whose attempt this was).
    r = send(s, DIRECT, "POST", "/api/auth/login",
             {"email": t.ghost(), "password": "wrong password"},
             [("X-Forwarded-For", CLIENT_A), ("X-Forwarded-Proto", "https"),
              ("X-Request-Id", rid("forged-a"))])
    expect_error(r, 401, "invalid_credentials",
                 "a direct client forging X-Forwarded-For: %s is not throttled as A" % CLIENT_A)
    got = r.header("X-Request-Id") or ""
    check(got != rid("forged-a") and re.fullmatch(r"[0-9a-f]{16}", got),
          "... and its X-Request-Id is not adopted (fresh id %s)" % got)
    t.audit.append((got, "login", "invalid_credentials", DIRECT))
    t.lines.append((got, "client=%s scheme=http" % DIRECT))


def section_audit_addresses(t):
    s = t.stack
    pw = "proxied user's long password"
    tag = rid("ok")
    r = login(s, PROXY, "user@example.com", pw,
              [("X-Forwarded-For", CLIENT_V6_SENT), ("X-Request-Id", tag)])
    check(r.status == 200 and "access" in r.json(),
          "a login through the proxy from an IPv6 client succeeds", repr(r))
    t.audit.append((tag, "login", "ok", CLIENT_V6))
    t.lines.append((tag, "status=200"))
    t.lines.append((tag, "client=%s scheme=http" % CLIENT_V6))
    # Forged from the untrusted peer: its own address in the audit.
    r = send(s, DIRECT, "POST", "/api/auth/login",
             {"email": "user@example.com", "password": "not it"},
             [("X-Forwarded-For", FORGED), ("X-Forwarded-Proto", "https")])
    expect_error(r, 401, "invalid_credentials", "a wrong password from the direct client")
    got = r.header("X-Request-Id") or ""
    t.audit.append((got, "login", "invalid_credentials", DIRECT))
    t.not_counted.append(FORGED)
    # Unusable forwarding from the trusted proxy: the proxy's address.
    for what, hdrs in (("given twice", [("X-Forwarded-For", CLIENT_B),
                                        ("X-Forwarded-For", CLIENT_B)]),
                       ("with a port", [("X-Forwarded-For", CLIENT_B + ":4711")]),
                       ("not an address", [("X-Forwarded-For", "unknown")])):
        tag = rid("bad-%d" % len(t.audit))
        r = login(s, PROXY, t.ghost(), "wrong password", hdrs + [("X-Request-Id", tag)])
        expect_error(r, 401, "invalid_credentials",
                     "X-Forwarded-For %s from the proxy: answered" % what)
        t.audit.append((tag, "login", "invalid_credentials", PROXY))
        t.lines.append((tag, "is given twice or is not an address"))
    # A proxy that appends its own header after the client's (two headers:
    # refused above) behind 64 padding headers: civetweb keeps 64 and
    # drops the rest unseen, so only the client's forged one is left.
    # Its X-Request-Id likewise: the client's early one is not adopted.
    r = login(s, PROXY, t.ghost(), "wrong password",
              [("X-Request-Id", rid("cut")), ("X-Forwarded-For", FORGED)] + PADDING +
              [("X-Forwarded-For", CLIENT_B), ("X-Request-Id", rid("cut-proxy"))])
    expect_error(r, 401, "invalid_credentials",
                 "X-Forwarded-For behind 64 headers from the proxy: answered")
    got = r.header("X-Request-Id") or ""
    check(re.fullmatch(r"[0-9a-f]{16}", got),
          "... and neither X-Request-Id is adopted (fresh id %s)" % got)
    t.audit.append((got, "login", "invalid_credentials", PROXY))
    t.lines.append((got, "has 64 headers or more"))
    # X-Request-Id twice from the proxy: which copy it wrote is unknown.
    r = login(s, PROXY, t.ghost(), "wrong password",
              [("X-Forwarded-For", CLIENT_B), ("X-Request-Id", rid("twice-a")),
               ("X-Request-Id", rid("twice-b"))])
    expect_error(r, 401, "invalid_credentials", "X-Request-Id twice from the proxy")
    got = r.header("X-Request-Id") or ""
    check(re.fullmatch(r"[0-9a-f]{16}", got),
          "... is not adopted (fresh id %s)" % got)
    t.audit.append((got, "login", "invalid_credentials", CLIENT_B))
    t.fail_counts[CLIENT_B] = t.fail_counts.get(CLIENT_B, 0) + 1
    t.fail_counts[PROXY] = 5   # its own request above and these four
    t.fail_counts[DIRECT] = 2  # the two forged ones


def section_metrics(t):
    """/metrics (SAFESHARE_METRICS_ALLOW: loopback) judges the same address."""
    s = t.stack
    r = send(s, PROXY, "GET", "/metrics", headers=[("X-Forwarded-For", CLIENT_A)])
    expect_error(r, 403, "forbidden", "/metrics for an outside client via the proxy")
    r = send(s, PROXY, "GET", "/metrics", headers=[("X-Forwarded-For", "::1")])
    check(r.status == 200, "/metrics for a loopback client via the proxy: 200", repr(r))
    r = send(s, PROXY, "GET", "/metrics", headers=[("X-Forwarded-For", "127.0.0.1"),
                                                  ("X-Forwarded-For", "127.0.0.1")])
    expect_error(r, 403, "forbidden", "/metrics with X-Forwarded-For twice via the proxy")
    r = send(s, PROXY, "GET", "/metrics", headers=[("X-Forwarded-For", "localhost")])
    expect_error(r, 403, "forbidden", "/metrics with a malformed X-Forwarded-For via the proxy")
    r = send(s, PROXY, "GET", "/metrics", headers=[("X-Forwarded-For", "127.0.0.1")] +
             PADDING + [("X-Forwarded-For", CLIENT_A)])
    expect_error(r, 403, "forbidden", "/metrics via the proxy with the proxy's "
                 "X-Forwarded-For behind 64 headers (dropped by civetweb)")
    r = send(s, DIRECT, "GET", "/metrics", headers=[("X-Forwarded-For", FORGED)])
    check(r.status == 200, "/metrics from the direct loopback client ignores its "
          "X-Forwarded-For: 200", repr(r))


# ---- after the stop: the database and the log -----------------------------------

def query(t, sql, cols):
    if t.schema_url is None:
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(t.stack.data_dir, "auth.db"),
                             uri=True)
        try:
            return [dict(zip(cols, row)) for row in db.execute(sql)]
        finally:
            db.close()
    r = subprocess.run(["psql", t.schema_url, "-v", "ON_ERROR_STOP=1", "-AtX", "-F", "\x1f",
                        "-R", "\x1e", "-c", sql], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("psql: " + r.stderr.decode(errors="replace"))
    # psql ends the last record with a newline, not the separator.
    return [dict(zip(cols, rec.strip("\n").split("\x1f")))
            for rec in r.stdout.decode().split("\x1e") if rec.strip("\n")]


def db_checks(t):
    cols = ("event", "outcome", "client_addr", "request_id")
    rows = query(t, "SELECT event, outcome, client_addr, request_id FROM audit_log", cols)
    for req_id, event, outcome, addr in t.audit:
        # The gateway sends its calls to auth as "<request id>.<n>".
        mine = [r for r in rows if req_id and
                re.fullmatch(re.escape(req_id) + r"(\.[0-9]+)?", r["request_id"] or "")]
        ok = any(r["event"] == event and r["outcome"] == outcome and r["client_addr"] == addr
                 for r in mine)
        check(ok, "audit %s %s of request %s has client_addr %s" % (event, outcome, req_id,
                                                                   addr), repr(mine))
    seen = {r["client_addr"] for r in rows}
    check(FORGED not in seen and "192.0.2.1" not in seen,
          "no audit row names a forged or client-written (non-rightmost) address",
          repr(sorted(seen)))
    cols = ("kind", "subject", "failures")
    fails = {r["subject"]: int(r["failures"]) for r in
             query(t, "SELECT kind, subject, failures FROM login_failures WHERE kind = 'addr'",
                   cols)}
    for addr, n in sorted(t.fail_counts.items()):
        check(fails.get(addr) == n, "login_failures counts %d for address %s" % (n, addr),
              repr(fails))
    for addr in t.not_counted + ["192.0.2.1"]:
        check(addr not in fails, "no login_failures row for %s" % addr, repr(fails))


def log_checks(t):
    lines = [ln for ln in t.stack.logs_all().splitlines() if "svc=gateway " in ln]
    for req_id, want in t.lines:
        mine = [ln for ln in lines if re.search(r'\breq="?%s[ "]' % re.escape(req_id), ln)]
        check(any(want in ln for ln in mine), "gateway log of %s has %r" % (req_id, want),
              repr(mine))
    logs = t.stack.logs_all()
    check("ERROR: AddressSanitizer" not in logs and "runtime error:" not in logs and
          "LeakSanitizer" not in logs, "no sanitizer report in the services' logs")


def run_section(fn, t):
    print("# %s" % fn.__name__)
    try:
        fn(t)
    except Exception:  # a crash is one failure; the other sections still run
        check(False, "%s completed" % fn.__name__, traceback.format_exc())


def main():
    args = stack_args()
    db = db_env(args.db)
    if db is None:
        return 1
    env, schema, url = db
    stack = Stack(args.bin_dir, env, config={"SAFESHARE_TRUSTED_PROXIES": PROXY + "/32"})
    t = Ctx(stack, url)
    try:
        stack.cli("keys", "generate")
        stack.add_user("user@example.com", "proxied user's long password", "client")
        stack.start()
        for fn in (section_throttle, section_audit_addresses, section_metrics):
            run_section(fn, t)
    except Exception:
        check(False, "stack set-up", traceback.format_exc())
    finally:
        rc = stack.stop()
        check(rc == 0, "safeshare up exits 0 on SIGTERM", "rc=%r" % rc)
        run_section(db_checks, t)
        run_section(log_checks, t)
        if FAILURES:
            print("---- stack log (tail) ----\n" + stack.logs())
        stack.cleanup()
        if schema:
            pg_drop_schema(os.environ["SAFESHARE_TEST_PG_URL"], schema)
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    if FAILURES:
        print("failed: " + "; ".join(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
