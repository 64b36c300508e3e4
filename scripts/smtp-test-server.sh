#!/usr/bin/env bash
# A real SMTP server for the mail tests: Debian's aiosmtpd (python3-aiosmtpd,
# run with /usr/bin/python3, which sees Debian's packages), storing every
# accepted message in the Maildir DIR/new.
#
#   smtp-test-server.sh PORT MAILDIR [--tls CERT KEY] [--auth USER:PASS]
#                       [--reject ADDR]... [--tempfail ADDR]...
#
# --tls: offers STARTTLS and requires it before MAIL (and before AUTH).
# --auth: requires AUTH (PLAIN/LOGIN) with these credentials.
# --reject ADDR: RCPT TO ADDR answers 550 (a permanent failure);
# --tempfail ADDR: 451 (transient).
# Runs in the foreground (exec: its pid is this script's); prints "ready"
# once listening, then "cmd AUTH|MAIL|DATA tls=0|1" per such command (the
# verb only). Callers poll for the 220 banner and stop it by pid.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,14p "$0" >&2; exit 2; }
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
exec $PY -u -c '
import asyncio, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from aiosmtpd.handlers import Mailbox

port, maildir, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
tls = auth = None
reject, tempfail = set(), set()
i = 0
while i < len(args):
    if args[i] == "--tls":
        tls = (args[i + 1], args[i + 2]); i += 3
    elif args[i] == "--auth":
        auth = args[i + 1].split(":", 1); i += 2
    elif args[i] == "--reject":
        reject.add(args[i + 1].lower()); i += 2
    elif args[i] == "--tempfail":
        tempfail.add(args[i + 1].lower()); i += 2
    else:
        sys.exit("unknown option " + args[i])


class Handler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in reject:
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        if address.lower() in tempfail:
            return "451 4.3.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, data):
    # handled=False on failure, or the client hangs (PLATFORM.md).
    ok = (auth is not None and isinstance(data, LoginPassword) and
          data.login.decode() == auth[0] and data.password.decode() == auth[1])
    return AuthResult(success=ok, handled=False if not ok else None)


ctx = None
if tls:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls[0], tls[1])
handler = Handler(maildir)


class LoggingSMTP(SMTP):
    """Prints "cmd VERB tls=0|1" for the commands that matter (never their
    arguments: no addresses, no credentials), so a test can tell that
    nothing but EHLO/STARTTLS went over a connection in clear."""

    async def _log(self, verb):
        print("cmd %s tls=%d" % (verb, 1 if self._tls_protocol else 0), flush=True)

    async def smtp_AUTH(self, arg):
        await self._log("AUTH")
        return await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg):
        await self._log("MAIL")
        return await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg):
        await self._log("DATA")
        return await super().smtp_DATA(arg)


def factory():
    return LoggingSMTP(handler, hostname="smtp.test", tls_context=ctx,
                require_starttls=bool(ctx), authenticator=authenticator if auth else None,
                auth_required=bool(auth), auth_require_tls=bool(ctx))


async def main():
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
' "$@"
