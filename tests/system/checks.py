"""What a system test reports: each check passes or fails by name, and the
run's counts (stdlib only, shared by the test_*.py scripts)."""

FAILURES = []
PASSED = [0]


def check(cond, what, detail=""):
    if cond:
        PASSED[0] += 1
        print("ok   - %s" % what)
    else:
        FAILURES.append(what)
        print("FAIL - %s %s" % (what, detail))
    return bool(cond)


def expect_error(r, status, code, what):
    """r is the gateway's JSON error: this status, this code, a message."""
    ok = r.status == status
    body = {}
    try:
        body = r.json()
    except ValueError:
        ok = False
    err = body.get("error") if isinstance(body, dict) else None
    ok = ok and isinstance(err, dict) and err.get("code") == code \
        and isinstance(err.get("message"), str) and err.get("message") != ""
    return check(ok, "%s -> %d %s" % (what, status, code), repr(r))
