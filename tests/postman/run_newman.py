#!/usr/bin/env python3
"""Runs the Postman collection with newman against a real stack (ctest: system_postman).

Starts `safeshare up` on loopback (tests/system/stack.py), makes the first
admin with `safeshare user add` (the operator's way in), serves the stack's
mail drop read-only to the collection (maildrop.py: the test harness, never
the gateway, reads the verification mail), runs newman (npm newman, pinned
in package.json + package-lock.json, installed by `npm ci` in this
directory: scripts/install-deps.sh --test does it) with its CLI and JSON
reporters, and prints a plain `N passed, N failed` line from the JSON
report: N = newman's assertions, plus a failure for every script or
request error, for every request that ran without an assertion, and for
requests of the collection that did not run.
"""
import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))
from stack import Stack, db_env, pg_drop_schema  # noqa: E402
from maildrop import MailDrop  # noqa: E402

COLLECTION = os.path.join(HERE, "safeshare.postman_collection.json")
ENVIRONMENT = os.path.join(HERE, "safeshare.postman_environment.json")
ADMIN_EMAIL = "admin@example.com"


def fail_early(msg):
    print("FAIL - %s\n0 passed, 1 failed" % msg, flush=True)
    return 1


def collection_requests(items):
    n = 0
    for it in items:
        n += collection_requests(it["item"]) if "item" in it else 1
    return n


def newman_version(newman):
    try:
        r = subprocess.run([newman, "--version"], capture_output=True, timeout=60)
    except OSError:
        return None
    return r.stdout.decode(errors="replace").strip() if r.returncode == 0 else None


def summarize(report, expected_requests):
    """(passed, failed, lines) from newman's JSON report."""
    run = report["run"]
    stats = run["stats"]
    lines = []
    a_total = stats["assertions"]["total"]
    a_failed = stats["assertions"]["failed"]
    failed = a_failed
    for f in run.get("failures", []):
        err = f.get("error", {})
        src = f.get("source", {}).get("name", "?")
        if err.get("name") == "AssertionError":
            lines.append("FAIL - %s: %s: %s" % (src, err.get("test", "?"), err.get("message", "")))
        else:  # a script that threw, a request that got no answer
            failed += 1
            lines.append("FAIL - %s: %s: %s" % (src, err.get("name", "error"),
                                               err.get("message", "")))
    executions = run.get("executions", [])
    for ex in executions:
        if not ex.get("assertions"):
            failed += 1
            lines.append("FAIL - %s: ran without an assertion" % ex["item"]["name"])
    if len(executions) != expected_requests:
        failed += 1
        lines.append("FAIL - %d of the collection's %d requests ran" % (
            len(executions), expected_requests))
    lines.insert(0, "newman: %d requests, %d assertions (%d failed), %d script errors" % (
        stats["requests"]["total"], a_total, a_failed,
        stats["testScripts"]["failed"] + stats["prerequestScripts"]["failed"]))
    return a_total - a_failed, failed, lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--db", choices=("sqlite", "pg"), default="sqlite")
    ap.add_argument("--newman", default=os.path.join(HERE, "node_modules", ".bin", "newman"))
    args = ap.parse_args()

    version = newman_version(args.newman)
    if not version or not version.startswith("6."):
        return fail_early("newman 6 not found at %s (got %r): run `npm ci` in tests/postman "
                          "(scripts/install-deps.sh --test does)" % (args.newman, version))
    with open(COLLECTION) as f:
        expected = collection_requests(json.load(f)["item"])

    db = db_env(args.db)
    if db is None:
        return 1
    env, schema, _ = db
    stack = Stack(args.bin_dir, env)
    drop = None
    rc_up = None
    passed, failed, lines = 0, 0, []
    work = tempfile.mkdtemp(prefix="ss-newman-")
    try:
        stack.start()
        admin_password = secrets.token_urlsafe(18)
        stack.add_user(ADMIN_EMAIL, admin_password, "admin")
        drop = MailDrop(os.path.join(stack.data_dir, "mail"))
        drop_url = drop.start()
        report_path = os.path.join(work, "newman.json")
        print("newman %s against %s (mail drop view %s)" % (version, stack.base, drop_url),
              flush=True)
        cmd = [args.newman, "run", COLLECTION, "-e", ENVIRONMENT,
               "--env-var", "baseUrl=" + stack.base,
               "--env-var", "mailDropUrl=" + drop_url,
               "--env-var", "adminEmail=" + ADMIN_EMAIL,
               "--env-var", "adminPassword=" + admin_password,
               "--working-dir", HERE,
               "--timeout-request", "30000",
               "--reporters", "cli,json", "--reporter-json-export", report_path,
               "--color", "off", "--disable-unicode"]
        r = subprocess.run(cmd, timeout=240)
        try:
            with open(report_path) as f:
                passed, failed, lines = summarize(json.load(f), expected)
        except (OSError, ValueError, KeyError) as e:
            failed, lines = 1, ["FAIL - no usable newman JSON report: %r" % (e,)]
        if r.returncode != 0 and failed == 0:
            failed, lines = 1, lines + ["FAIL - newman exited %d" % r.returncode]
    except Exception as e:  # the stack did not come up, a timeout: a failure, said
        failed += 1
        lines.append("FAIL - %s: %s" % (type(e).__name__, e))
    finally:
        if drop:
            drop.stop()
        rc_up = stack.stop()
        if rc_up != 0:
            failed += 1
            lines.append("FAIL - safeshare up exited %r on SIGTERM" % rc_up)
        if failed:
            print("---- stack log (tail)\n%s" % stack.logs()[-6000:])
        stack.cleanup()
        if schema:
            pg_drop_schema(os.environ["SAFESHARE_TEST_PG_URL"], schema)
        for n in os.listdir(work):
            os.unlink(os.path.join(work, n))
        os.rmdir(work)
    print("\n".join(lines))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
