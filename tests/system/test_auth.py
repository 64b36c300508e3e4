#!/usr/bin/env python3
"""Issue 3 through the real stack: every auth rule seen from an HTTP client.

One stack (real binaries, loopback, temp data dir, mail drop) on SQLite or,
with --db pg, with auth and storage on a fresh schema of the PostgreSQL
cluster in SAFESHARE_TEST_PG_URL. Short TTLs come from a --config file
(verification links and refresh tokens live 60 s, the gateway caches user
state 1 s); the two expiry checks are set up first and looked at last, so
the minute passes while the other sections run.

Sections: signup rules and verification (single use, expiry, resend
without enumeration); the login answer and the access token's claims;
forged and malformed tokens (each refused with 401 and its code); refresh
rotation and reuse detection; logout and logout-all; the admin API (create,
list, disable, role change, last admin); the CLI disabling a user under a
running gateway (the user-state cache bound); login throttling; JWT signing-key
rotation with the stack up; the audit log and the absence of secrets in it
and in the services' logs.

Forged tokens are signed with the stack's own key (jwt_forge --raw), next
to a positive control signed the same way, so each refusal is caused by the
one defect it names.
"""
import base64
import glob
import hashlib
import hmac
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import traceback
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check, expect_error  # noqa: E402
from stack import Stack, db_env, pg_drop_schema, stack_args  # noqa: E402

ISS, AUD = "safeshare", "safeshare-api"
ACCESS_TTL = 600      # not the default (900): the claims must follow the config
SHORT_TTL = 60        # verification links and refresh tokens (the minimum allowed)
CACHE_TTL = 1         # gateway user-state cache
LOGIN_FIELDS = {"access", "refresh", "token_type", "expires_in", "refresh_expires_in"}

def as_json(r):
    try:
        v = r.json()
        return v if isinstance(v, dict) else {}
    except ValueError:
        return {}


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_decode(token):
    """(header, claims) of a compact JWS, without any verification."""
    try:
        h, p, _ = token.split(".")
        return json.loads(b64u_dec(h)), json.loads(b64u_dec(p))
    except (ValueError, AttributeError):
        return {}, {}


def pem_kid(path):
    """kid computed here, independently of the C code: the first 8 bytes of
    SHA-256 over the SubjectPublicKeyInfo DER of a public key PEM."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", text, re.S)
    if not m:
        return None
    der = base64.b64decode("".join(m.group(1).split()))
    return hashlib.sha256(der).hexdigest()[:16]


def cjson(obj):
    return json.dumps(obj, separators=(",", ":"))


def rid(tag):
    """A request id to send as X-Request-Id (and to find in the audit log)."""
    return "ta-%s-%s" % (tag, RUN_ID)


RUN_ID = uuid.uuid4().hex[:8]


class Ctx:
    """What the sections share: the stack, the ids, every secret used (so
    the end can check none leaked), and the request ids of audited calls."""

    def __init__(self, stack, bin_dir, schema_url):
        self.stack = stack
        self.bin_dir = bin_dir
        self.schema_url = schema_url
        self.forge_bin = os.path.join(bin_dir, "jwt_forge")
        self.ids = {}
        self.passwords = set()
        self.tokens = set()        # access, refresh and verification tokens seen
        self.audit = []            # (event, request id, extra expectations) to find
        self.late = {}             # expiry checks set up first, run last

    # --- helpers -----------------------------------------------------
    def keep(self, *tokens):
        for t in tokens:
            if isinstance(t, str) and t:
                self.tokens.add(t)

    def login(self, email, password, what=None, rid_=None):
        """Logs in; returns the answer's dict (empty when not 200)."""
        self.passwords.add(password)
        r = self.stack.login(email, password, rid=rid_)
        body = as_json(r) if r.status == 200 else {}
        if what:
            check(r.status == 200 and body.get("access"), what, repr(r))
        self.keep(body.get("access"), body.get("refresh"))
        return body

    def me(self, token, **kw):
        return self.stack.request("GET", "/api/auth/me", token=token, **kw)

    def forge_raw(self, pem, header, claims):
        """jwt_forge --raw: exactly these JSON bytes, ES256-signed with pem."""
        h = header if isinstance(header, str) else cjson(header)
        c = claims if isinstance(claims, str) else cjson(claims)
        r = subprocess.run([self.forge_bin, "--raw", pem, h, c], capture_output=True,
                           timeout=30)
        if r.returncode != 0:
            check(False, "jwt_forge --raw signs", r.stderr.decode(errors="replace")[:300])
            return "jwt_forge-failed"
        return r.stdout.decode().strip()

    def forge_hs256(self, secret_file, header, claims):
        r = subprocess.run([self.forge_bin, "--hs256", secret_file, cjson(header),
                            cjson(claims)], capture_output=True, timeout=30)
        if r.returncode != 0:
            check(False, "jwt_forge --hs256 signs", r.stderr.decode(errors="replace")[:300])
            return "jwt_forge-failed"
        return r.stdout.decode().strip()

    def forge_kid(self, pem):
        r = subprocess.run([self.forge_bin, "--kid", pem], capture_output=True, timeout=30)
        return r.stdout.decode().strip() if r.returncode == 0 else None

    def claims(self, sub, role="client", gen=0, offset=0, ttl=300, **extra):
        now = int(time.time()) + offset
        c = {"iss": ISS, "aud": AUD, "sub": sub, "role": role, "gen": gen,
             "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + ttl}
        c.update(extra)
        return c

    def key(self):
        return os.path.join(self.stack.key_dir, "jwt-es256.pem")

    def header(self, kid=None, **extra):
        h = {"alg": "ES256", "typ": "JWT", "kid": kid or pem_kid(self.pub())}
        h.update(extra)
        return h

    def pub(self):
        return os.path.join(self.stack.key_dir, "jwt-es256.pub")


# ---- mail drop ------------------------------------------------------------

def mail_links(stack, address):
    """Every verification link mailed to address so far."""
    links = []
    for path in glob.glob(os.path.join(stack.data_dir, "mail", "*.eml")):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        if re.search(r"^To:.*<?%s>?\s*$" % re.escape(address), text, re.M | re.I):
            links += re.findall(r"(https?://\S+/api/auth/verify\?token=[A-Za-z0-9_-]+)", text)
    return links


def wait_new_link(stack, address, known, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [link for link in mail_links(stack, address) if link not in known]
        if new:
            return new[0]
        time.sleep(0.1)
    return None


def link_path(link):
    u = urllib.parse.urlsplit(link)
    return u.path + "?" + u.query


def link_token(link):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["token"][0]


# ---- sections ----------------------------------------------------------------

def setup_late_checks(t):
    """Things that must be a minute old at the end: a verification link and
    a refresh token (both SHORT_TTL)."""
    s = t.stack
    r = s.request("POST", "/api/auth/signup", {"email": "late@example.com",
                                               "password": "late but long password"})
    t.passwords.add("late but long password")
    check(r.status == 201, "signup of the user whose link will expire", repr(r))
    link = wait_new_link(s, "late@example.com", [])
    check(link is not None, "its verification mail arrives")
    t.late["verify_link"] = link
    if link:
        t.keep(link_token(link))
    body = t.login("rexp@example.com", t.ids["rexp_pw"], "login whose refresh will expire")
    t.late["refresh"] = body.get("refresh")
    t.late["refresh_expires_in"] = body.get("refresh_expires_in")
    t.late["at"] = time.monotonic()


def section_signup(t):
    s = t.stack
    pw = "alice has a long password"
    t.passwords.add(pw)
    r = s.request("POST", "/api/auth/signup", {"email": "  Alice@Example.ORG ", "password": pw},
                  rid=rid("signup"))
    u = as_json(r)
    check(r.status == 201 and u.get("email") == "alice@example.org" and
          u.get("role") == "client" and u.get("verified") is False,
          "signup normalises the e-mail (201, client, unverified)", repr(r))
    t.ids["alice"] = u.get("id")
    t.audit.append(("signup", rid("signup"), {"outcome": "ok", "subject": u.get("id")}))
    expect_error(s.request("POST", "/api/auth/signup", {"email": "alice@example.org",
                                                        "password": pw}),
                 409, "email_taken", "signup alice@x after Alice@X")
    expect_error(s.request("POST", "/api/auth/signup", {"email": "ALICE@EXAMPLE.ORG",
                                                        "password": "another long password"}),
                 409, "email_taken", "signup ALICE@X with another password")

    for what, bad, words in (("7 bytes", "Sh0rt!x", "short"),
                             ("129 bytes", "x" * 129, "long"),
                             ("common password (any case)", "PassWord1", "common"),
                             ("common password", "qwertyuiop", "common")):
        r = s.request("POST", "/api/auth/signup", {"email": "weak@example.com", "password": bad})
        ok = expect_error(r, 400, "weak_password", "weak password: " + what)
        msg = (as_json(r).get("error") or {}).get("message", "")
        if ok:
            check(words in msg and bad not in msg,
                  "weak_password message says '%s' and not the password" % words, msg)
    r = s.request("POST", "/api/auth/signup", {"email": "max@example.com",
                                               "password": "y" * 120 + "Z1!q2W3e"})
    check(r.status == 201, "a 128-byte password is accepted", repr(r))
    expect_error(s.request("POST", "/api/auth/signup", {"email": "not-an-email", "password": pw}),
                 400, "invalid_email", "signup with a malformed e-mail")

    # Unverified: the right password is not enough.
    expect_error(s.request("POST", "/api/auth/login", {"email": "alice@example.org",
                                                       "password": pw}),
                 403, "email_not_verified", "unverified user cannot log in")

    first = wait_new_link(s, "alice@example.org", [])
    check(first is not None, "signup mail with a link in the drop")
    if first:
        t.keep(link_token(first))

    # Resend: one answer for every address; a mail only for alice.
    answers = []
    for what, addr, tag in (("unverified", "alice@example.org", rid("resend")),
                            ("unknown", "nobody-%s@example.com" % RUN_ID, None),
                            ("verified", "admin@example.com", None)):
        r = s.request("POST", "/api/auth/verify/resend", {"email": addr}, rid=tag)
        check(r.status == 202, "resend for a %s address -> 202" % what, repr(r))
        answers.append(r.body)
    check(len(set(answers)) == 1 and as_json_bytes(answers[0]).get("status") == "accepted",
          "resend: the same body for unverified, unknown and verified addresses",
          repr(answers))
    expect_error(s.request("POST", "/api/auth/verify/resend", {"email": "bad address"}),
                 400, "invalid_email", "resend for a malformed address")
    second = wait_new_link(s, "alice@example.org", [first] if first else [])
    check(second is not None and second != first, "resend mails a new link")
    if second:
        t.keep(link_token(second))
    # Rate limit: another resend within 60 s is answered alike, mails nothing.
    r = s.request("POST", "/api/auth/verify/resend", {"email": "alice@example.org"})
    check(r.status == 202 and r.body == answers[0], "a second resend within the minute -> 202",
          repr(r))
    time.sleep(3)
    check(len(mail_links(s, "alice@example.org")) == 2,
          "... but no third mail (1 resend a minute)", repr(mail_links(s, "alice@example.org")))
    check(mail_links(s, "nobody-%s@example.com" % RUN_ID) == [] and
          mail_links(s, "admin@example.com") == [],
          "no mail to the unknown or the verified address")

    if first:
        expect_error(s.request("GET", link_path(first)), 400, "invalid_verification_token",
                     "the link replaced by the resend is refused")
    if second:
        r = s.request("GET", link_path(second), rid=rid("verify"))
        check(r.status == 200 and as_json(r).get("verified") is True,
              "the new link verifies the account", repr(r))
        t.audit.append(("verify", rid("verify"), {"subject": t.ids["alice"]}))
        expect_error(s.request("GET", link_path(second)), 400, "invalid_verification_token",
                     "a verification link works once")
    expect_error(s.request("GET", "/api/auth/verify?token=" + "A" * 43), 400,
                 "invalid_verification_token", "unknown verification token")
    body = t.login("alice@example.org", pw, "verified alice logs in", rid_=rid("login-ok"))
    t.audit.append(("login", rid("login-ok"), {"outcome": "ok", "subject": t.ids["alice"],
                                               "actor": t.ids["alice"]}))
    t.ids["alice_pw"] = pw
    t.ids["alice_access"] = body.get("access")


def as_json_bytes(b):
    try:
        v = json.loads(b.decode())
        return v if isinstance(v, dict) else {}
    except ValueError:
        return {}


def section_login_shape(t):
    s = t.stack
    gina = t.ids["gina"]
    r = s.login("gina@example.com", t.ids["gina_pw"])
    body = as_json(r)
    t.keep(body.get("access"), body.get("refresh"))
    check(r.status == 200 and set(body) == LOGIN_FIELDS,
          "login answers exactly access, refresh, token_type, expires_in, refresh_expires_in",
          repr(r))
    check(body.get("token_type") == "Bearer", "token_type is Bearer", repr(body))
    check(body.get("expires_in") == ACCESS_TTL, "expires_in = SAFESHARE_ACCESS_TTL",
          repr(body.get("expires_in")))
    rei = body.get("refresh_expires_in")
    check(isinstance(rei, int) and 0 < rei <= SHORT_TTL,
          "refresh_expires_in = SAFESHARE_REFRESH_TTL (at most)", repr(rei))
    check(isinstance(body.get("refresh"), str) and
          re.fullmatch(r"[A-Za-z0-9_-]{43}", body.get("refresh")) is not None,
          "refresh token: 43 base64url chars", repr(body.get("refresh")))
    access = body.get("access") or ""
    h, c = jwt_decode(access)
    kid = pem_kid(t.pub())
    check(h.get("alg") == "ES256" and h.get("typ") == "JWT", "header alg ES256, typ JWT",
          repr(h))
    check(h.get("kid") == kid and re.fullmatch(r"[0-9a-f]{16}", kid or "") is not None,
          "header kid = SHA-256(SPKI DER of jwt-es256.pub)[:8] in hex", "%r vs %r" % (h, kid))
    check(t.forge_kid(t.pub()) == kid and t.forge_kid(t.key()) == kid,
          "jwt_forge --kid agrees on the public and the private key", repr(kid))
    now = time.time()
    check(c.get("iss") == ISS and c.get("aud") == AUD, "claims iss and aud", repr(c))
    check(c.get("sub") == gina and c.get("role") == "client", "claims sub and role", repr(c))
    check(type(c.get("gen")) is int and c.get("gen") == 0, "claim gen = the user's token_gen (0)",
          repr(c))
    check(all(type(c.get(k)) is int for k in ("iat", "nbf", "exp")) and
          abs(c.get("iat", 0) - now) < 30 and c.get("nbf", 0) <= c.get("iat", 0) + 1,
          "claims iat and nbf are now", repr(c))
    check(isinstance(c.get("exp"), int) and isinstance(c.get("iat"), int) and
          c["exp"] - c["iat"] == ACCESS_TTL, "exp - iat = SAFESHARE_ACCESS_TTL", repr(c))
    check(isinstance(c.get("jti"), str) and re.fullmatch(r"[0-9a-f]{32}", c["jti"]) is not None,
          "claim jti: 32 hex", repr(c.get("jti")))
    body2 = t.login("gina@example.com", t.ids["gina_pw"])
    _, c2 = jwt_decode(body2.get("access") or "")
    check(c2.get("jti") and c2.get("jti") != c.get("jti") and
          body2.get("refresh") != body.get("refresh"),
          "a second login: another jti, another refresh token")
    r = t.me(access)
    check(r.status == 200 and as_json(r).get("id") == gina, "/api/auth/me with it", repr(r))
    t.ids["gina_access"] = access


def section_jwt(t):
    """Each token differs from an accepted one by exactly one defect."""
    s = t.stack
    gina = t.ids["gina"]
    key, pub = t.key(), t.pub()
    kid = pem_kid(pub)
    ok_claims = t.claims(gina)
    good = t.forge_raw(key, t.header(), ok_claims)
    r = t.me(good)
    check(r.status == 200 and as_json(r).get("id") == gina,
          "control: a token forged with the stack's key and correct claims is accepted",
          repr(r))
    r = t.me(t.forge_raw(key, t.header(), t.claims(gina, aud=["other", AUD])))
    check(r.status == 200, "control: aud as an array containing ours is accepted", repr(r))

    def refused(token, what, code="invalid_token", scheme="Bearer "):
        r = s.request("GET", "/api/auth/me",
                      headers={"Authorization": scheme + token} if token is not None else {})
        expect_error(r, 401, code, "JWT: " + what)

    refused(None, "no Authorization header", "missing_token")
    r = s.request("GET", "/api/auth/me", rid=rid("no-token"))
    check((as_json(r).get("error") or {}).get("request_id") == rid("no-token") and
          r.header("X-Request-Id") == rid("no-token"),
          "the error names the X-Request-Id the client sent", repr(r))
    refused(good, "Basic scheme", scheme="Basic ")
    refused(good, "token without scheme", scheme="")
    refused("garbage", "garbage")
    refused(".".join(good.split(".")[:2]), "two parts")
    refused(good + ".AAAA", "four parts")
    hp = b64u(cjson({"alg": "none", "typ": "JWT", "kid": kid}).encode()) + "." + \
        b64u(cjson(ok_claims).encode())
    refused(hp + ".", "alg none, no signature")
    refused(t.forge_raw(key, {"alg": "none", "typ": "JWT", "kid": kid}, ok_claims),
            "alg none with an ES256 signature")
    refused(t.forge_raw(key, {"alg": "None", "typ": "JWT", "kid": kid}, ok_claims),
            "alg None")
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    hs = t.forge_hs256(pub, hs_header, ok_claims)
    with open(pub, "rb") as f:
        pem_bytes = f.read()
    parts = hs.split(".")
    genuine = len(parts) == 3 and hmac.compare_digest(
        hmac.new(pem_bytes, (parts[0] + "." + parts[1]).encode(), hashlib.sha256).digest(),
        b64u_dec(parts[2]))
    check(genuine, "the HS256 token is a real HMAC keyed with jwt-es256.pub's bytes")
    refused(hs, "HS256 keyed with the public key PEM")
    for alg in ("RS256", "ES384", "ES512", "PS256", "EdDSA"):
        refused(t.forge_raw(key, t.header(alg=alg), ok_claims), "alg %s in the header" % alg)
    refused(t.forge_raw(key, t.header(typ="JWS"), ok_claims), "typ JWS")
    refused(t.forge_raw(key, t.header(crit=["exp"]), ok_claims), "crit header")
    refused(t.forge_raw(key, {"alg": "ES256", "typ": "JWT"}, ok_claims), "missing kid")
    refused(t.forge_raw(key, t.header(kid="0123456789abcdef"), ok_claims), "unknown kid")
    refused(t.forge_raw(key, t.header(kid=kid.upper()), ok_claims), "kid in upper case")
    foreign = os.path.join(t.stack.data_dir, "foreign.pem")
    subprocess.run([t.forge_bin, "--keygen", foreign, foreign + ".pub"], capture_output=True,
                   timeout=30)
    refused(t.forge_raw(foreign, t.header(kid=kid), ok_claims), "our kid, a foreign key")
    refused(t.forge_raw(foreign, t.header(kid=pem_kid(foreign + ".pub") or "f" * 16),
                        ok_claims), "a foreign key with its own kid")
    # Tampered payload, original signature.
    h0, p0, sig0 = good.split(".") if good.count(".") == 2 else ("", "", "")
    admin_claims = dict(ok_claims, role="admin")
    refused(h0 + "." + b64u(cjson(admin_claims).encode()) + "." + sig0,
            "payload role -> admin with the original signature")
    sig_bytes = bytearray(b64u_dec(sig0)) if sig0 else bytearray(64)
    sig_bytes[10] ^= 1
    refused(h0 + "." + p0 + "." + b64u(bytes(sig_bytes)), "one signature bit flipped")
    refused(h0 + "." + p0 + "." + b64u(b64u_dec(sig0) + b"\0") if sig0 else "x.y.z",
            "65-byte signature")
    # Time.
    refused(t.forge_raw(key, t.header(), t.claims(gina, offset=-700, ttl=600)),
            "expired 100 s ago", "invalid_token")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, nbf=int(time.time()) + 300)),
            "nbf in the future")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, iat=int(time.time()) + 300)),
            "iat in the future")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, exp=str(ok_claims["exp"]))),
            "exp as a string")
    # Claims.
    refused(t.forge_raw(key, t.header(), dict(ok_claims, iss="someone-else")), "wrong iss")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, aud="other-api")), "wrong aud")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, aud=["a", "b"])),
            "aud array without ours")
    for name in ("sub", "exp", "gen", "iss", "aud", "role", "jti", "iat", "nbf"):
        c = dict(ok_claims)
        del c[name]
        refused(t.forge_raw(key, t.header(), c), "missing %s" % name)
    refused(t.forge_raw(key, t.header(), dict(ok_claims, sub="z" * 32)), "non-hex sub")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, sub=gina.upper())), "upper-case sub")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, role="root")), "role root")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, gen=-1)), "negative gen")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, gen="0")), "gen as a string")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, gen=7)),
            "gen ahead of the user's token_gen", "token_revoked")
    refused(t.forge_raw(key, t.header(), dict(ok_claims, sub=uuid.uuid4().hex)),
            "validly signed, subject does not exist")
    big = dict(ok_claims, pad="A" * 4200)
    refused(t.forge_raw(key, t.header(), big), "oversized token (> 4096 bytes)")
    # Still fine afterwards: nothing above poisoned the gateway's keys.
    check(t.me(good).status == 200, "the control token still works after the forgeries")


def section_refresh(t):
    s = t.stack
    pw = t.ids["bob_pw"]
    a = t.login("bob@example.com", pw, "bob logs in (session A)")
    b = t.login("bob@example.com", pw, "bob logs in again (session B)")
    r = s.request("POST", "/api/auth/refresh", {"refresh": a.get("refresh", "")})
    a1 = as_json(r)
    t.keep(a1.get("access"), a1.get("refresh"))
    check(r.status == 200 and set(a1) == LOGIN_FIELDS and a1.get("token_type") == "Bearer",
          "refresh -> 200 with a new pair (login's shape), no bearer needed", repr(r))
    check(a1.get("refresh") not in (None, a.get("refresh")) and
          a1.get("access") not in (None, a.get("access")), "both tokens are new")
    check(t.me(a.get("access", "")).status == 200,
          "the old access token still works until it expires")
    check(t.me(a1.get("access", "")).status == 200, "the new access token works")
    _, c1 = jwt_decode(a1.get("access", ""))
    check(c1.get("sub") == t.ids["bob"] and c1.get("role") == "client" and
          c1.get("exp", 0) - c1.get("iat", 0) == ACCESS_TTL,
          "refreshed access token: same subject and role, full lifetime", repr(c1))
    r = s.request("POST", "/api/auth/refresh", {"refresh": a1.get("refresh", "")})
    a2 = as_json(r)
    t.keep(a2.get("access"), a2.get("refresh"))
    check(r.status == 200 and a2.get("refresh"), "refresh again with the newest token", repr(r))
    # Reuse of the spent first token: the family dies.
    expect_error(s.request("POST", "/api/auth/refresh", {"refresh": a.get("refresh", "")},
                           rid=rid("reuse")),
                 401, "refresh_token_reused", "reuse of a spent refresh token")
    t.audit.append(("refresh_reuse", rid("reuse"), {"subject": t.ids["bob"]}))
    expect_error(s.request("POST", "/api/auth/refresh", {"refresh": a2.get("refresh", "")}),
                 401, "invalid_refresh_token", "the family's newest token after the reuse")
    r = s.request("POST", "/api/auth/refresh", {"refresh": b.get("refresh", "")})
    bb = as_json(r)
    t.keep(bb.get("access"), bb.get("refresh"))
    check(r.status == 200 and bb.get("access"), "bob's other session is unaffected", repr(r))
    # Malformed.
    for what, body, status, code in (
            ("short token", {"refresh": "abc"}, 401, "invalid_refresh_token"),
            ("44 chars", {"refresh": "A" * 44}, 401, "invalid_refresh_token"),
            ("43 chars, not base64url", {"refresh": "!" * 43}, 401, "invalid_refresh_token"),
            ("unknown 43-char token", {"refresh": b64u(os.urandom(32))}, 401,
             "invalid_refresh_token"),
            ("an access token as refresh token", {"refresh": a1.get("access", "x")[:256]},
             401, "invalid_refresh_token"),
            ("a number", {"refresh": 42}, 400, "invalid_request"),
            ("null", {"refresh": None}, 400, "invalid_request"),
            ("missing field", {}, 400, "invalid_request"),
            ("257 chars", {"refresh": "A" * 257}, 400, "invalid_request")):
        expect_error(s.request("POST", "/api/auth/refresh", body), status, code,
                     "refresh with " + what)
    expect_error(s.request("POST", "/api/auth/refresh", b"{nope",
                           headers={"Content-Type": "application/json"}),
                 400, "invalid_json", "refresh with broken JSON")


def section_logout(t):
    s = t.stack
    pw = t.ids["carol_pw"]
    a = t.login("carol@example.com", pw, "carol logs in (session A)")
    b = t.login("carol@example.com", pw, "carol logs in (session B)")
    r = s.request("POST", "/api/auth/logout", {"refresh": a.get("refresh", "")},
                  rid=rid("logout"))
    check(r.status == 204 and r.body == b"", "logout -> 204, no body", repr(r))
    t.audit.append(("logout", rid("logout"), {"subject": t.ids["carol"]}))
    expect_error(s.request("POST", "/api/auth/refresh", {"refresh": a.get("refresh", "")}),
                 401, "invalid_refresh_token", "the logged-out session's refresh token")
    r = s.request("POST", "/api/auth/logout", {"refresh": a.get("refresh", "")})
    check(r.status == 204, "logout twice -> 204", repr(r))
    r = s.request("POST", "/api/auth/refresh", {"refresh": b.get("refresh", "")})
    t.keep(as_json(r).get("access"), as_json(r).get("refresh"))
    check(r.status == 200, "carol's other session survives the logout", repr(r))
    expect_error(s.request("POST", "/api/auth/logout", {"refresh": "abc"}), 401,
                 "invalid_refresh_token", "logout with a malformed token")
    expect_error(s.request("POST", "/api/auth/logout", {"refresh": b64u(os.urandom(32))}), 401,
                 "invalid_refresh_token", "logout with an unknown token")
    expect_error(s.request("POST", "/api/auth/logout", {}), 400, "invalid_request",
                 "logout without a token")

    # logout-all.
    pw = t.ids["dave_pw"]
    d1 = t.login("dave@example.com", pw, "dave logs in (session 1)")
    d2 = t.login("dave@example.com", pw, "dave logs in (session 2)")
    _, c = jwt_decode(d1.get("access", ""))
    gen0 = c.get("gen", 0)
    stale = t.forge_raw(t.key(), t.header(), t.claims(t.ids["dave"], gen=gen0))
    check(t.me(stale).status == 200, "control: a forged token with dave's current gen works")
    expect_error(s.request("POST", "/api/auth/logout-all"), 401, "missing_token",
                 "logout-all without a token")
    r = s.request("POST", "/api/auth/logout-all", token=d1.get("access", ""),
                  rid=rid("logout-all"))
    check(r.status == 204 and r.body == b"", "logout-all -> 204", repr(r))
    t.audit.append(("logout_all", rid("logout-all"), {"subject": t.ids["dave"],
                                                      "actor": t.ids["dave"]}))
    expect_error(t.me(d1.get("access", "")), 401, "token_revoked",
                 "the access token that asked logout-all, at once")
    expect_error(t.me(d2.get("access", "")), 401, "token_revoked",
                 "dave's other access token, at once")
    expect_error(t.me(stale), 401, "token_revoked", "JWT: stale gen (validly signed)")
    for n, d in (("1", d1), ("2", d2)):
        expect_error(s.request("POST", "/api/auth/refresh", {"refresh": d.get("refresh", "")}),
                     401, "invalid_refresh_token", "session %s's refresh after logout-all" % n)
    d3 = t.login("dave@example.com", pw, "dave logs in again")
    _, c3 = jwt_decode(d3.get("access", ""))
    check(c3.get("gen") == gen0 + 1, "the new token carries gen + 1", repr(c3))
    check(t.me(d3.get("access", "")).status == 200, "and works")
    r = s.request("POST", "/api/auth/logout-all", {}, token=d3.get("access", ""))
    check(r.status == 204, "logout-all with a {} body -> 204", repr(r))


def section_admin(t):
    s = t.stack
    adm = t.login("admin@example.com", t.ids["admin_pw"], "the CLI-made admin logs in")
    admin = adm.get("access", "")
    _, c = jwt_decode(admin)
    check(c.get("role") == "admin", "admin token has role admin", repr(c))
    gina = t.ids.get("gina_access") or ""

    # Last admin first, while there is only one.
    me_path = "/api/users/%s" % t.ids["admin"]
    expect_error(s.request("PATCH", me_path, {"disabled": True}, token=admin), 409,
                 "last_admin", "the last admin disables itself")
    expect_error(s.request("PATCH", me_path, {"role": "ops"}, token=admin), 409,
                 "last_admin", "the last admin demotes itself")
    check(t.me(admin).status == 200, "the last admin still works")

    # Create.
    ops_pw = "ops made by the admin"
    t.passwords.add(ops_pw)
    r = s.request("POST", "/api/users", {"email": "Ops1@Example.com", "password": ops_pw,
                                         "role": "ops"}, token=admin, rid=rid("user-create"))
    u = as_json(r)
    check(r.status == 201 and set(u) >= {"id", "email", "role", "verified", "disabled",
                                         "created_at"} and
          u.get("email") == "ops1@example.com" and u.get("role") == "ops" and
          u.get("verified") is True and u.get("disabled") is False,
          "POST /api/users creates a verified ops user (201 user object)", repr(r))
    t.ids["ops1"] = u.get("id")
    t.audit.append(("user_create", rid("user-create"), {"actor": t.ids["admin"],
                                                        "subject": u.get("id"),
                                                        "detail": "ops"}))
    ops = t.login("ops1@example.com", ops_pw, "the new ops user logs in").get("access", "")
    r = s.upload(ops, "hello.txt", b"hello from ops1\n")
    check(r.status == 201, "the new ops user uploads a file", repr(r))
    expect_error(s.request("POST", "/api/users", {"email": "x1@example.com", "password": ops_pw,
                                                  "role": "ops"}, token=gina),
                 403, "forbidden", "a client creates a user")
    expect_error(s.request("POST", "/api/users", {"email": "x2@example.com", "password": ops_pw,
                                                  "role": "ops"}, token=ops),
                 403, "forbidden", "an ops user creates a user")
    expect_error(s.request("POST", "/api/users", {"email": "x3@example.com", "password": ops_pw,
                                                  "role": "ops"}),
                 401, "missing_token", "creating a user without a token")
    for what, body, status, code in (
            ("role client", {"email": "x4@example.com", "password": ops_pw, "role": "client"},
             400, "invalid_role"),
            ("role root", {"email": "x5@example.com", "password": ops_pw, "role": "root"},
             400, "invalid_role"),
            ("a malformed e-mail", {"email": "x6", "password": ops_pw, "role": "ops"},
             400, "invalid_email"),
            ("a weak password", {"email": "x7@example.com", "password": "password",
                                 "role": "ops"}, 400, "weak_password"),
            ("a taken e-mail", {"email": "OPS1@example.com", "password": ops_pw, "role": "ops"},
             409, "email_taken")):
        expect_error(s.request("POST", "/api/users", body, token=admin), status, code,
                     "POST /api/users with " + what)
    r = s.request("POST", "/api/users", {"email": "ops2@example.com", "password": ops_pw,
                                         "role": "ops"}, token=admin)
    check(r.status == 201, "a second ops user", repr(r))

    # List: pages of 2, newest first, each user once.
    seen, cursor, pages = [], None, 0
    while pages < 50:
        q = "/api/users?limit=2" + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
        r = s.request("GET", q, token=admin)
        body = as_json(r)
        if not check(r.status == 200 and isinstance(body.get("users"), list) and
                     "next_cursor" in body, "GET %s" % q[:60], repr(r)):
            break
        check(len(body["users"]) <= 2, "a page holds at most limit users")
        seen += body["users"]
        pages += 1
        cursor = body.get("next_cursor")
        if cursor is None:
            break
        check(isinstance(cursor, str) and cursor != "", "next_cursor: a string or null",
              repr(cursor))
    ids = [u.get("id") for u in seen]
    check(len(ids) == len(set(ids)) and len(ids) >= 12, "paging: %d users, none twice" % len(ids),
          repr(ids))
    check(all(seen[i].get("created_at", 0) >= seen[i + 1].get("created_at", 0)
              for i in range(len(seen) - 1)), "newest first")
    check(t.ids["admin"] in ids and t.ids["ops1"] in ids and t.ids.get("alice") in ids,
          "CLI-made, admin-made and signed-up users are all listed")
    r = s.request("GET", "/api/users?limit=200", token=admin)
    check(r.status == 200 and sorted(u["id"] for u in as_json(r).get("users", [])) ==
          sorted(ids) and as_json(r).get("next_cursor") is None,
          "one page of 200 lists the same users, next_cursor null", repr(r))
    r = s.request("GET", "/api/users?role=ops", token=admin)
    got = [u.get("email") for u in as_json(r).get("users", [])]
    check(r.status == 200 and sorted(got) == ["ops1@example.com", "ops2@example.com"],
          "filter role=ops", repr(r))
    r = s.request("GET", "/api/users?email=ALICE", token=admin)
    got = [u.get("email") for u in as_json(r).get("users", [])]
    check(r.status == 200 and got == ["alice@example.org"],
          "filter email=ALICE (substring, any case)", repr(r))
    r = s.request("GET", "/api/users?email=ops&role=ops&limit=1", token=admin)
    b1 = as_json(r)
    check(r.status == 200 and len(b1.get("users", [])) == 1 and b1.get("next_cursor"),
          "filters with paging: first page", repr(r))
    if b1.get("next_cursor"):
        r = s.request("GET", "/api/users?email=ops&role=ops&limit=1&cursor=" +
                      urllib.parse.quote(b1["next_cursor"]), token=admin)
        b2 = as_json(r)
        check(r.status == 200 and len(b2.get("users", [])) == 1 and
              b2["users"][0].get("id") != b1["users"][0].get("id") and
              b2.get("next_cursor") is None, "filters with paging: second and last page",
              repr(r))
    for q, code in (("limit=0", "invalid_limit"), ("limit=201", "invalid_limit"),
                    ("limit=abc", "invalid_limit"), ("cursor=garbage!!", "invalid_cursor"),
                    ("role=root", "invalid_role")):
        expect_error(s.request("GET", "/api/users?" + q, token=admin), 400, code,
                     "GET /api/users?" + q)
    expect_error(s.request("GET", "/api/users", token=gina), 403, "forbidden",
                 "a client lists users")
    expect_error(s.request("GET", "/api/users", token=ops), 403, "forbidden",
                 "an ops user lists users")

    # Disable.
    eve_pw = t.ids["eve_pw"]
    e = t.login("eve@example.com", eve_pw, "eve logs in")
    eve_path = "/api/users/%s" % t.ids["eve"]
    check(t.me(e.get("access", "")).status == 200, "eve's token works before")
    expect_error(s.request("PATCH", eve_path, {"disabled": True}, token=gina), 403, "forbidden",
                 "a client disables a user")
    r = s.request("PATCH", eve_path, {"disabled": True}, token=admin, rid=rid("disable"))
    check(r.status == 200 and as_json(r).get("disabled") is True and
          as_json(r).get("id") == t.ids["eve"], "PATCH disabled:true -> 200 user", repr(r))
    t.audit.append(("user_disable", rid("disable"), {"actor": t.ids["admin"],
                                                     "subject": t.ids["eve"]}))
    deadline, r = time.monotonic() + 3, None
    while time.monotonic() < deadline:
        r = t.me(e.get("access", ""))
        if r.status != 200:
            break
        time.sleep(0.1)
    expect_error(r, 403, "account_disabled", "the disabled user's existing token (within 3 s)")
    expect_error(s.request("GET", "/api/files", token=e.get("access", "")), 403,
                 "account_disabled", "... on another endpoint too")
    expect_error(s.login("eve@example.com", eve_pw), 403, "account_disabled",
                 "the disabled user logs in")
    # Disabling ends every session (issue 3: "Session revoked (logout,
    # logout-all, disable, reuse) => invalid_refresh_token").
    expect_error(s.request("POST", "/api/auth/refresh", {"refresh": e.get("refresh", "")}),
                 401, "invalid_refresh_token", "the disabled user refreshes")
    r = s.request("PATCH", eve_path, {"disabled": False}, token=admin, rid=rid("enable"))
    check(r.status == 200 and as_json(r).get("disabled") is False, "PATCH disabled:false -> 200",
          repr(r))
    t.audit.append(("user_enable", rid("enable"), {"subject": t.ids["eve"]}))
    e2 = t.login("eve@example.com", eve_pw, "the re-enabled user logs in")
    check(t.me(e2.get("access", "")).status == 200, "and her new token works")
    expect_error(t.me(e.get("access", "")), 401, "token_revoked",
                 "her token from before the disable stays revoked")
    expect_error(s.request("POST", "/api/auth/refresh", {"refresh": e.get("refresh", "")}),
                 401, "invalid_refresh_token",
                 "her refresh token from before the disable stays revoked")

    # Role change client -> ops.
    f = t.login("frank@example.com", t.ids["frank_pw"], "frank (client) logs in")
    expect_error(s.upload(f.get("access", ""), "f.txt", b"frank"), 403, "forbidden",
                 "frank cannot upload as a client")
    frank_path = "/api/users/%s" % t.ids["frank"]
    r = s.request("PATCH", frank_path, {"role": "ops"}, token=admin, rid=rid("role"))
    check(r.status == 200 and as_json(r).get("role") == "ops", "PATCH role:ops -> 200", repr(r))
    t.audit.append(("role_change", rid("role"), {"subject": t.ids["frank"],
                                                 "detail": "client->ops"}))
    expect_error(t.me(f.get("access", "")), 401, "token_revoked",
                 "frank's token with the old role")
    f2 = t.login("frank@example.com", t.ids["frank_pw"], "frank logs in again")
    _, c2 = jwt_decode(f2.get("access", ""))
    check(c2.get("role") == "ops", "the new token carries role ops", repr(c2))
    r = s.upload(f2.get("access", ""), "f.txt", b"frank is ops now")
    check(r.status == 201, "frank uploads as ops", repr(r))
    r = s.request("POST", "/api/auth/refresh", {"refresh": f.get("refresh", "")})
    fr = as_json(r)
    t.keep(fr.get("access"), fr.get("refresh"))
    check(r.status == 200 and jwt_decode(fr.get("access", ""))[1].get("role") == "ops",
          "a refresh of the session from before the change gets role ops", repr(r))

    # Bad PATCHes.
    for what, body, code in (("{}", {}, "invalid_request"),
                             ("disabled as a string", {"disabled": "yes"}, "invalid_request"),
                             ("role as a number", {"role": 2}, "invalid_request"),
                             ("an unknown field", {"disabled": False, "colour": "red"},
                              "invalid_request"),
                             ("role root", {"role": "root"}, "invalid_role")):
        expect_error(s.request("PATCH", frank_path, body, token=admin), 400, code,
                     "PATCH with " + what)
    expect_error(s.request("PATCH", "/api/users/" + "0" * 32, {"disabled": True}, token=admin),
                 404, "user_not_found", "PATCH an unknown id")
    expect_error(s.request("PATCH", "/api/users/xyz", {"disabled": True}, token=admin),
                 404, "user_not_found", "PATCH a malformed id")
    expect_error(s.request("PATCH", frank_path, {"disabled": True}, token=ops), 403, "forbidden",
                 "an ops user patches a user")

    # With a second admin the first may step down; then the second is last.
    r = s.request("POST", "/api/users", {"email": "admin2@example.com", "password": ops_pw,
                                         "role": "admin"}, token=admin)
    a2 = as_json(r)
    check(r.status == 201 and a2.get("role") == "admin", "POST /api/users creates an admin",
          repr(r))
    admin2 = t.login("admin2@example.com", ops_pw, "the second admin logs in").get("access", "")
    r = s.request("PATCH", "/api/users/%s" % a2.get("id"), {"disabled": True}, token=admin)
    check(r.status == 200, "an admin disables the other admin", repr(r))
    expect_error(s.request("PATCH", me_path, {"role": "ops"}, token=admin), 409, "last_admin",
                 "the one enabled admin left demotes itself")
    r = s.request("PATCH", "/api/users/%s" % a2.get("id"), {"disabled": False}, token=admin)
    check(r.status == 200, "and enables it again", repr(r))
    t.ids["admin_access"] = admin
    t.ids["admin2_access"] = admin2


def section_cli(t):
    """The operator's CLI on the database of the running stack: the gateway
    learns of a change it did not make within SAFESHARE_USER_CACHE_TTL."""
    s = t.stack
    h = t.login("hank@example.com", t.ids["hank_pw"], "hank logs in")
    check(t.me(h.get("access", "")).status == 200, "hank's token works (and is cached)")
    r = s.cli("user", "list", "--email", "HANK", check=False)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0 and "hank@example.com" in out and t.ids["hank"] in out and
          "gina@example.com" not in out, "safeshare user list --email HANK", repr(out))
    r = s.cli("user", "disable", "hank@example.com", check=False)
    check(r.returncode == 0, "safeshare user disable (stack up)", repr(r.stderr))
    started, r = time.monotonic(), None
    while time.monotonic() - started < 3:
        r = t.me(h.get("access", ""))
        if r.status != 200:
            break
        time.sleep(0.1)
    expect_error(r, 403, "account_disabled",
                 "a CLI-disabled user's token, within SAFESHARE_USER_CACHE_TTL (%.1f s)" %
                 (time.monotonic() - started))
    expect_error(s.request("POST", "/api/auth/refresh", {"refresh": h.get("refresh", "")}),
                 401, "invalid_refresh_token", "its refresh token")
    r = s.cli("user", "disable", "nobody@example.com", check=False)
    check(r.returncode == 1 and b"user_not_found" in r.stderr,
          "safeshare user disable of an unknown address: exit 1, user_not_found",
          repr((r.returncode, r.stderr)))
    r = s.cli("user", "enable", "hank@example.com", check=False)
    check(r.returncode == 0, "safeshare user enable", repr(r.stderr))
    check(t.login("hank@example.com", t.ids["hank_pw"]).get("access"),
          "hank logs in again after the CLI enabled him")
    t.audit.append(("user_disable", None, {"actor": "cli", "subject": t.ids["hank"],
                                           "client_addr": ""}))


def section_throttle(t):
    s = t.stack
    pw = t.ids["thr_pw"]
    ghost = "Ghost-%s@Example.com" % RUN_ID
    expect_error(s.login(ghost, "wrong password 0", rid=rid("login-ghost")), 401,
                 "invalid_credentials", "login with an unknown address")
    t.audit.append(("login", rid("login-ghost"), {"outcome": "invalid_credentials",
                                                  "subject": ghost.lower()}))
    for i in range(5):
        tag = rid("login-bad") if i == 0 else None
        t.passwords.add("wrong password %d" % i)
        expect_error(s.login("thr@example.com", "wrong password %d" % i, rid=tag), 401,
                     "invalid_credentials", "wrong password #%d" % (i + 1))
    t.audit.append(("login", rid("login-bad"), {"outcome": "invalid_credentials",
                                                "subject": t.ids["thr"]}))
    # The 6th attempt must come within 1 s of the 5th failure (the first
    # wait is 2^0 s). On a loaded machine it may come later and be let
    # through (401); then each further failure doubles the wait, so one of
    # the next attempts is refused. Only a 429 within 4 tries passes.
    for n in range(6, 10):
        t.passwords.add("wrong password %d" % n)
        r = s.login("thr@example.com", "wrong password %d" % n)
        if r.status != 401:
            break
    ok = expect_error(r, 429, "too_many_attempts", "attempt #%d after 5 failures" % n)
    ra = r.header("Retry-After")
    check(ra is not None and ra.isdigit() and 1 <= int(ra) <= 900,
          "429 carries Retry-After: N seconds", repr(ra))
    wait = int(ra) if ra and ra.isdigit() else 1
    # A wrong password after the wait is let through and counted, which
    # doubles the next wait (>= 2 s): long enough that the right password
    # sent at once is surely inside it, however slow this machine is.
    time.sleep(wait + 0.3)
    t.passwords.add("wrong password after the wait")
    expect_error(s.login("thr@example.com", "wrong password after the wait"), 401,
                 "invalid_credentials", "a wrong password after the wait is checked again")
    r = s.login("thr@example.com", pw)
    expect_error(r, 429, "too_many_attempts", "the right password during the (doubled) wait")
    ra = r.header("Retry-After")
    check(ra is not None and ra.isdigit() and int(ra) >= 2,
          "... whose Retry-After grew to >= 2 s", repr(ra))
    time.sleep((int(ra) if ra and ra.isdigit() else 2) + 0.3)
    body = t.login("thr@example.com", pw)
    check(ok and body.get("access"), "after Retry-After the right password logs in (200)")


def section_rotation(t):
    s = t.stack
    old_kid = pem_kid(t.pub())
    old_key = os.path.join(s.data_dir, "old-jwt.pem")
    shutil.copyfile(t.key(), old_key)
    before = t.login("gina@example.com", t.ids["gina_pw"], "a login before the rotation")
    r = s.cli("keys", "rotate-jwt", check=False)
    out = r.stdout.decode(errors="replace")
    new_kid = pem_kid(t.pub())
    check(r.returncode == 0 and new_kid and new_kid != old_kid and new_kid in out,
          "safeshare keys rotate-jwt (stack up) prints the new kid",
          "rc=%d out=%r err=%r" % (r.returncode, out, r.stderr.decode(errors="replace")))
    check(os.stat(t.key()).st_mode & 0o077 == 0, "the new private key is 0600")
    got, deadline, after = None, time.monotonic() + 12, {}
    while time.monotonic() < deadline:
        after = t.login("gina@example.com", t.ids["gina_pw"])
        got = jwt_decode(after.get("access", ""))[0].get("kid")
        if got == new_kid:
            break
        time.sleep(0.5)
    check(got == new_kid, "within ~10 s new logins are signed with the new kid",
          "%r vs %r" % (got, new_kid))
    r = t.me(after.get("access", ""))
    check(r.status == 200, "a token with the new kid works (gateway not restarted)", repr(r))
    r = t.me(before.get("access", ""))
    check(r.status == 200, "a token from before the rotation still works (grace)", repr(r))
    gina = t.ids["gina"]
    r = t.me(t.forge_raw(old_key, t.header(kid=old_kid), t.claims(gina)))
    check(r.status == 200, "a token signed now with the retired key is in its grace", repr(r))
    r = t.me(t.forge_raw(t.key(), t.header(kid=new_kid), t.claims(gina)))
    check(r.status == 200, "a token forged with the new key works", repr(r))
    expect_error(t.me(t.forge_raw(old_key, t.header(kid=new_kid), t.claims(gina))), 401,
                 "invalid_token", "the retired key under the new kid")
    t.audit.append(("jwt_key_rotated", None, {}))


def late_checks(t):
    s = t.stack
    left = t.late.get("at", time.monotonic()) + SHORT_TTL + 3 - time.monotonic()
    if left > 0:
        print("waiting %.0f s for the 60-second tokens to expire" % left)
        time.sleep(left)
    link = t.late.get("verify_link")
    if link:
        for n in ("", " (again)"):
            expect_error(s.request("GET", link_path(link)), 410, "verification_token_expired",
                         "a verification link past SAFESHARE_VERIFY_TTL%s" % n)
        expect_error(s.login("late@example.com", "late but long password"), 403,
                     "email_not_verified", "its user is still unverified")
    check(mail_links(s, "nobody-%s@example.com" % RUN_ID) == [] and
          mail_links(s, "admin@example.com") == [] and
          len(mail_links(s, "alice@example.org")) == 2,
          "a minute later still no mail to the unknown or verified address, none extra")
    check(isinstance(t.late.get("refresh_expires_in"), int) and
          0 < t.late["refresh_expires_in"] <= SHORT_TTL,
          "refresh_expires_in follows SAFESHARE_REFRESH_TTL", repr(t.late))
    expect_error(s.request("POST", "/api/auth/refresh", {"refresh": t.late.get("refresh") or ""}),
                 401, "refresh_token_expired", "a refresh token past SAFESHARE_REFRESH_TTL")


# ---- audit and secrets ---------------------------------------------------------

AUDIT_COLS = ("event", "outcome", "actor", "subject", "client_addr", "request_id", "detail")


def audit_rows(t):
    """Every audit_log row as a dict, or None when it cannot be read here."""
    sel = "SELECT %s FROM audit_log ORDER BY at_ms" % ", ".join(AUDIT_COLS)
    if t.schema_url is None:
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(t.stack.data_dir, "auth.db"),
                             uri=True)
        try:
            return [dict(zip(AUDIT_COLS, row)) for row in db.execute(sel)]
        finally:
            db.close()
    if shutil.which("psql") is None:
        return None
    r = subprocess.run(["psql", t.schema_url, "-v", "ON_ERROR_STOP=1", "-AtX", "-F", "\x1f",
                        "-R", "\x1e", "-c", sel], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("psql: " + r.stderr.decode(errors="replace"))
    text = r.stdout.decode()
    return [dict(zip(AUDIT_COLS, rec.split("\x1f"))) for rec in text.split("\x1e")
            if rec.strip("\n")]


def audit_dump_text(t):
    if t.schema_url is None:
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(t.stack.data_dir, "auth.db"),
                             uri=True)
        try:
            return "\n".join(repr(row) for row in db.execute("SELECT * FROM audit_log"))
        finally:
            db.close()
    r = subprocess.run(["psql", t.schema_url, "-AtX", "-c", "SELECT * FROM audit_log"],
                       capture_output=True, timeout=60)
    return r.stdout.decode(errors="replace")


def audit_checks(t):
    try:
        rows = audit_rows(t)
    except (sqlite3.Error, AssertionError) as e:
        check(False, "audit_log readable", repr(e))
        return
    if rows is None:
        print("NOTE - psql is not installed: the audit_log checks on PostgreSQL are NOT run "
              "(they run in the SQLite variant)")
        return
    check(len(rows) > 0, "audit_log has rows (%d)" % len(rows))
    for event, req_id, want in t.audit:
        # The gateway sends each of its calls as "<request id>.<n>".
        cands = [r for r in rows if r["event"] == event and
                 (req_id is None or re.fullmatch(re.escape(req_id) + r"(\.[0-9]+)?",
                                                 r["request_id"] or ""))]
        if req_id is not None:
            cands = [r for r in cands if r["client_addr"] == "127.0.0.1"]
        ok = any(all(r.get(k) == v for k, v in want.items()) for r in cands)
        check(ok, "audit row %s%s" % (event, " (request id %s, client 127.0.0.1)" % req_id
                                      if req_id else " %r" % want),
              "want %r; rows of that event: %r" % (
                  want, [r for r in rows if r["event"] == event][:5]))
    fails = [r for r in rows if r["event"] == "login" and r["outcome"] == "invalid_credentials"]
    check(len(fails) >= 5, "each failed login is audited (%d)" % len(fails))
    text = audit_dump_text(t)
    leaks = [sec for sec in sorted(t.passwords | t.tokens) if sec and sec in text]
    check(leaks == [], "no password or token in audit_log", repr([x[:12] for x in leaks]))


def secrets_in_logs(t):
    logs = t.stack.logs_all()
    check("ERROR: AddressSanitizer" not in logs and "runtime error:" not in logs and
          "LeakSanitizer" not in logs, "no sanitizer report in the services' logs")
    check("audit" in logs, "the services' logs are there to search (%d bytes)" % len(logs))
    leaks = [sec for sec in sorted(t.passwords | t.tokens) if sec and sec in logs]
    # Signatures alone too: a log that cut a token would still leak this.
    sigs = [tok.split(".")[2] for tok in t.tokens if tok.count(".") == 2]
    leaks += [sig for sig in sigs if len(sig) > 40 and sig in logs]
    check(leaks == [], "no password or token in the services' logs (%d secrets checked)" %
          (len(t.passwords) + len(t.tokens)), repr([x[:12] for x in leaks]))


# ---- main -----------------------------------------------------------------------

def run_section(fn, t):
    print("# %s" % fn.__name__)
    try:
        fn(t)
    except Exception:  # a crash is one failure; the other sections still run
        check(False, "%s completed" % fn.__name__, traceback.format_exc())


def bootstrap(t):
    """Operator set-up before the stack runs: keys and users from the CLI,
    so every section has its own account (verified clients here; the
    signup section makes its own through the API)."""
    s = t.stack
    s.cli("keys", "generate")
    for name, role in (("admin", "admin"), ("rexp", "client"), ("gina", "client"),
                       ("bob", "client"), ("carol", "client"), ("dave", "client"),
                       ("eve", "client"), ("frank", "client"), ("thr", "client"),
                       ("hank", "client")):
        pw = "%s's long password %s" % (name, RUN_ID)
        t.ids[name] = s.add_user("%s@example.com" % name, pw, role)
        t.ids[name + "_pw"] = pw
        t.passwords.add(pw)


def main():
    args = stack_args()
    db = db_env(args.db)
    if db is None:
        return 1
    env, schema, url = db
    config = {"SAFESHARE_ACCESS_TTL": ACCESS_TTL, "SAFESHARE_VERIFY_TTL": SHORT_TTL,
              "SAFESHARE_REFRESH_TTL": SHORT_TTL, "SAFESHARE_USER_CACHE_TTL": CACHE_TTL}
    stack = Stack(args.bin_dir, env, config=config)
    t = Ctx(stack, args.bin_dir, url)
    try:
        bootstrap(t)
        stack.start()
        for fn in (setup_late_checks, section_signup, section_login_shape, section_jwt,
                   section_refresh, section_logout, section_admin, section_cli,
                   section_throttle,
                   section_rotation, late_checks):
            run_section(fn, t)
    except Exception:
        check(False, "stack set-up", traceback.format_exc())
    finally:
        rc = stack.stop()
        check(rc == 0, "safeshare up exits 0 on SIGTERM", "rc=%r" % rc)
        check(stack.our_processes() == [], "no service left running after stop")
        run_section(audit_checks, t)
        run_section(secrets_in_logs, t)
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
