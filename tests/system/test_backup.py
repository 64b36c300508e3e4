#!/usr/bin/env python3
"""docs/operations.md, "Backups", "Restore" and "Rotating keys" run as
written, against a real stack (SQLite + disk, `safeshare up`).

The shell blocks are read from the page itself (each follows an HTML
comment naming it) and run with bash; the only changes are the example
paths (/var/lib/safeshare, /backup/safeshare, /root/safeshare-keys and
the example backup stamp), replaced by this test's temporary ones, and a
pause between backup blocks 1 and 2 where the test acts.

1. Stack A: an admin, a client signup (a mail job), files of several
   sizes. While a background thread keeps uploading, the backup blocks
   run: the databases (block 1); then -- between the database copy and
   the blob copy -- one file is uploaded (its blob is copied without its
   row) and one deleted (its row is copied without its blob); then the
   keys and the blobs. One more file is uploaded after the backup. The
   copies are 0600 and the script exits 0.
2. A fresh data dir: the restore block (its `keys list` exits 0), stack B
   started there. The files uploaded before the backup list and download
   byte-exact, with the admin's password and with the access token stack
   A issued (the JWT pair and auth DB came back); the files uploaded
   after the database copy are absent and their blobs swept; the mail
   job is in the restored outbox. The restore check (`safeshare fsck`)
   reports exactly the deleted file as `missing blob`; after the
   documented `DELETE /api/files/ID` it is clean (exit 0). Every file
   uploaded while the databases were copied is either absent or exact.
3. The KEK rotation block on stack B: rotate (new current KEK), an upload
   under the new KEK, list (every DEK under it), retire the old KEK;
   files from before and after download byte-exact, fsck clean.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check, expect_error  # noqa: E402
from stack import Stack, stack_args  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                   "operations.md")
CHUNK = 64 * 1024
ADMIN = ("admin@example.com", "backup admin password")
CLIENT = ("client@example.com", "client password here")


def doc_block(name):
    """The ```sh block right after the HTML comment that names `name`."""
    with open(DOC, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if re.match(r"<!--.*\b%s\s*-->\s*$" % re.escape(name), line.strip()):
            if i + 1 >= len(lines) or lines[i + 1].strip() != "```sh":
                break
            body = []
            for b in lines[i + 2:]:
                if b.strip() == "```":
                    return "\n".join(body) + "\n"
                body.append(b)
    raise AssertionError("docs/operations.md has no ```sh block marked %r" % name)


class Paths:
    """The test's stand-ins for the page's example paths."""

    def __init__(self, root):
        self.root = root
        self.backup_root = os.path.join(root, "backup")
        self.keys_root = os.path.join(root, "keys-backup")

    def apply(self, script, data_dir, backup=None, keys_backup=None):
        subs = []
        if backup:
            subs.append(("/backup/safeshare/20261121T120000Z", backup))
        if keys_backup:
            subs.append(("/root/safeshare-keys/20261121T120000Z", keys_backup))
        subs += [("/var/lib/safeshare", data_dir), ("/backup/safeshare", self.backup_root),
                 ("/root/safeshare-keys", self.keys_root)]
        for old, new in subs:
            script = script.replace(old, new)
        return script


def shell_env(bin_dir):
    """The operator's shell: `safeshare` on PATH, no SAFESHARE_* set (each
    block says what it needs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFESHARE_")}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def run_sh(script, env, timeout=120):
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True,
                          timeout=timeout)


def out(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def login(stack, who):
    r = stack.login(*who)
    if r.status != 200:
        raise AssertionError("login %s: %r" % (who[0], r))
    return r.json()["access"]


def upload(stack, token, name, data):
    r = stack.upload(token, name, data)
    if r.status != 201:
        return None
    return r.json().get("id")


def download(stack, token, fid):
    return stack.request("GET", "/api/files/%s/content" % fid, token=token, timeout=60)


def listed_ids(stack, token):
    r = stack.request("GET", "/api/files?limit=100", token=token)
    ids, page = [], r.json() if r.status == 200 else {}
    ids += [f["id"] for f in page.get("files", [])]
    while page.get("next_cursor"):
        r = stack.request("GET", "/api/files?limit=100&cursor=" + urllib.parse.quote(page["next_cursor"], safe=""),
                          token=token)
        page = r.json() if r.status == 200 else {}
        ids += [f["id"] for f in page.get("files", [])]
    return ids


def exact(stack, token, fid, data):
    got = download(stack, token, fid)
    return got.status == 200 and got.body == data


def blob_path(data_dir, fid):
    return os.path.join(data_dir, "blobs", fid[:2], fid)


class Uploader(threading.Thread):
    """Uploads small files until stopped; records (start, end, id, data),
    and in `errors` any that failed (a transport error or no 201)."""

    def __init__(self, stack, token):
        super().__init__(daemon=True)
        self.stack, self.token = stack, token
        self.stop = threading.Event()
        self.done = []
        self.errors = []

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            data = os.urandom(CHUNK * (n % 5) + 777 * n)
            t0 = time.monotonic()
            try:
                fid = upload(self.stack, self.token, "bg-%d.bin" % n, data)
            except OSError as e:
                self.errors.append(repr(e))
                continue
            if not fid:
                self.errors.append("upload bg-%d.bin was not answered 201" % n)
                continue
            self.done.append((t0, time.monotonic(), fid, data))


def main():
    args = stack_args()
    bin_dir = os.path.abspath(args.bin_dir)
    if not shutil.which("sqlite3"):
        print("FAIL - the sqlite3 shell the page's backup uses is not installed (Debian "
              "package sqlite3)\n0 passed, 1 failed")
        return 1
    root = tempfile.mkdtemp(prefix="ss-bk-", dir="/tmp")
    paths = Paths(root)
    env = shell_env(bin_dir)
    a = Stack(bin_dir, {"SAFESHARE_CHUNK_SIZE": str(CHUNK)})
    b = None
    try:
        backup, keys_backup, files = phase_backup(a, paths, env)
        check(a.stop() == 0, "stack A stops cleanly")
        b = Stack(bin_dir, {"SAFESHARE_CHUNK_SIZE": str(CHUNK)})
        if backup:
            phase_restore(b, paths, env, backup, keys_backup, files)
    finally:
        for s in (a, b):
            if s is None:
                continue
            s.stop()
            check(s.our_processes() == [], "no service of %s left running" % s.data_dir)
            if FAILURES:
                print("---- stack log %s ----\n%s" % (s.data_dir, s.logs()))
            s.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


def phase_backup(a, paths, env):
    """Returns (backup dir, keys backup dir, files) where files holds what
    the restore must find: id -> bytes, and the sets of ids that must be
    gone or may be either."""
    a.cli("keys", "generate")
    a.add_user(ADMIN[0], ADMIN[1], "admin")
    a.start()
    r = a.request("POST", "/api/auth/signup", {"email": CLIENT[0], "password": CLIENT[1]})
    check(r.status == 201, "a client signs up (a mail job in the outbox)", repr(r))
    admin = login(a, ADMIN)
    kept = {}
    for name, size in (("one-chunk.bin", 1000), ("exact.bin", 3 * CHUNK),
                       ("big.bin", 40 * CHUNK + 12345), ("empty.txt", 0)):
        data = os.urandom(size)
        fid = upload(a, admin, name, data)
        check(fid is not None, "upload %s (%d bytes) before the backup" % (name, size))
        if fid:
            kept[fid] = data
    victim_data = os.urandom(5 * CHUNK + 1)
    victim = upload(a, admin, "deleted-during-backup.bin", victim_data)
    check(victim is not None, "upload of the file to be deleted during the backup")

    # The backup, as one script (blocks 1, 2, 3), paused after block 1.
    script = "\n".join([
        doc_block("backup-dbs"),
        'echo "BACKUP=$BACKUP"; echo "KEYS_BACKUP=$KEYS_BACKUP"; echo MID; read -r _',
        doc_block("backup-keys"),
        doc_block("backup-blobs"),
        "echo END"])
    script = paths.apply(script, a.data_dir)
    bg = Uploader(a, admin)
    bg.start()
    time.sleep(0.3)          # the background uploads are under way
    t_script = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", script], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    vars_, line = {}, b""
    while True:
        line = proc.stdout.readline()
        if not line or line.strip() == b"MID":
            break
        k, _, v = line.decode().strip().partition("=")
        vars_[k] = v
    t_dbs_done = time.monotonic()
    check(line.strip() == b"MID", "backup block 1 (the databases) ran",
          proc.stderr.read().decode(errors="replace") if not line else "")
    # Between the database copy and the blob copy.
    between_data = os.urandom(2 * CHUNK + 5)
    between = upload(a, admin, "between.bin", between_data)
    check(between is not None, "upload between the database copy and the blob copy")
    r = a.request("DELETE", "/api/files/" + victim, token=admin)
    check(r.status == 200, "delete between the database copy and the blob copy", repr(r))
    bg.stop.set()
    bg.join(timeout=60)
    try:
        stdout, stderr = proc.communicate(b"\n", timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    check(proc.returncode == 0 and b"END" in stdout,
          "backup blocks 2 and 3 (keys, blobs) ran, the script exits 0",
          "rc=%r stderr=%r" % (proc.returncode, stderr[-2000:]))
    after = upload(a, admin, "after.bin", os.urandom(999))
    check(after is not None, "upload after the backup")
    check(bg.errors == [], "background uploads all answered 201 while the backup ran",
          repr(bg.errors[:3]))

    backup, keys_backup = vars_.get("BACKUP"), vars_.get("KEYS_BACKUP")
    if not backup or not os.path.isdir(backup):
        check(False, "the backup script printed its directories", repr(vars_))
        return None, None, None
    want = ["storage.db", "auth.db", "mailer.db", "blobs.tar"]
    check(sorted(os.listdir(backup)) == sorted(want), "backup dir holds %s" % want,
          repr(os.listdir(backup)))
    check(os.listdir(keys_backup) == ["keys.tar"], "keys backup holds keys.tar apart",
          repr(os.listdir(keys_backup)))
    modes = {p: os.stat(p).st_mode & 0o777 for p in
             [os.path.join(backup, w) for w in want] + [os.path.join(keys_backup, "keys.tar"),
                                                      backup, keys_backup]}
    check(all(m & 0o077 == 0 for m in modes.values()),
          "every backup file and dir is private (umask 077)",
          repr({k: oct(v) for k, v in modes.items()}))
    r = subprocess.run(["sqlite3", os.path.join(backup, "storage.db"),
                        "PRAGMA integrity_check"], capture_output=True, timeout=60)
    check(r.stdout.strip() == b"ok", "the copied storage DB passes integrity_check",
          out(r))
    r = subprocess.run(["tar", "-tf", os.path.join(backup, "blobs.tar")],
                       capture_output=True, timeout=60)
    members = r.stdout.decode().split()
    check(not any(m.startswith("./tmp") for m in members), "blobs.tar leaves out tmp/",
          repr([m for m in members if "tmp" in m][:3]))
    check("./%s/%s" % (between[:2], between) in members,
          "blobs.tar holds the blob uploaded after the database copy (an orphan)")
    check("./%s/%s" % (victim[:2], victim) not in members,
          "blobs.tar lacks the blob deleted after the database copy")

    # Background uploads: done before the script started -> must come
    # back; started after the databases were copied -> must not.
    may = {}
    for t0, t1, fid, data in bg.done:
        if t1 < t_script:
            kept[fid] = data
        elif t0 > t_dbs_done:
            pass            # started after the copy: treated as gone below
        else:
            may[fid] = data
    gone = {between, after} | {fid for t0, _, fid, _ in bg.done if t0 > t_dbs_done}
    print("  %d background uploads: %d before the backup, %d during the database copy, "
          "%d after it" % (len(bg.done), sum(1 for d in bg.done if d[1] < t_script),
                           len(may), len(gone) - 2), flush=True)
    return backup, keys_backup, {"kept": kept, "may": may, "gone": gone,
                                 "victim": victim, "admin_token": admin}


def phase_restore(b, paths, env, backup, keys_backup, files):
    script = paths.apply(doc_block("restore"), b.data_dir, backup, keys_backup)
    r = run_sh(script, env)
    check(r.returncode == 0, "the restore block runs (its `keys list` exits 0)", out(r))
    check(re.search(r"\byes\b", r.stdout.decode()) is not None and
          b"MISSING" not in r.stdout, "keys list after the restore: a current KEK, none "
          "missing", out(r))
    orphans = [fid for fid in files["gone"] if os.path.exists(blob_path(b.data_dir, fid))]
    check(len(orphans) >= 1, "the restored blob dir holds orphan blobs before the start",
          repr(orphans))
    b.start()
    # The restored blob dir may hold more orphans (uploads that ran while
    # the databases were copied): at least these went.
    m = re.search(r"swept \d+ pending blobs, \d+ pending rows, (\d+) orphan blobs",
                  b.logs_all())
    check(m and int(m.group(1)) >= len(orphans),
          "storage's start-up sweep removed the orphan blobs (%s)" % (
              m.group(0) if m else "no sweep line"))

    admin = login(b, ADMIN)
    ids = listed_ids(b, admin)
    bad = [fid for fid, data in files["kept"].items()
           if fid not in ids or not exact(b, admin, fid, data)]
    check(files["kept"] and not bad, "all %d files uploaded before the backup are back, "
          "byte-exact" % len(files["kept"]), "not: %r" % bad)
    bad = [fid for fid in files["gone"]
           if fid in ids or os.path.exists(blob_path(b.data_dir, fid))]
    check(not bad, "all %d files uploaded after the database copy are absent, no blob "
          "left" % len(files["gone"]), "present: %r" % bad)
    back = [fid for fid in files["may"] if fid in ids]
    bad = [fid for fid in back if not exact(b, admin, fid, files["may"][fid])]
    check(not bad, "%d of %d uploads made during the database copy came back, each "
          "byte-exact" % (len(back), len(files["may"])), "not exact: %r" % bad)
    r = b.request("GET", "/api/files/%s/content" % next(iter(files["kept"])),
                  token=files["admin_token"])
    check(r.status == 200, "an access token stack A issued before the backup still works",
          repr(r))
    r = b.cli("mail", "list")
    check(CLIENT[0] in r.stdout.decode(), "the signup's mail job is in the restored outbox",
          out(r))

    # The restore check: only the file deleted during the backup shows.
    check_sh = paths.apply(doc_block("restore-check"), b.data_dir)
    r = run_sh(check_sh, env, timeout=300)
    lines = [ln for ln in r.stdout.decode().splitlines() if not ln.startswith("fsck:")]
    victim = files["victim"]
    check(r.returncode == 1 and lines == ["file %s: missing blob" % victim],
          "fsck after the restore: exactly the file deleted during the backup is a "
          "missing blob", out(r))
    r = b.request("DELETE", "/api/files/" + victim, token=admin)
    check(r.status == 200 and r.json().get("deleted") is True,
          "DELETE /api/files/ID of that file works without its blob", repr(r))
    r = run_sh(check_sh, env, timeout=300)
    check(r.returncode == 0 and b" 0 problems found" in r.stdout,
          "fsck after the restore and that delete: clean (exit 0)", out(r))

    rotate(b, paths, env, admin, files)


def kek_table(stack):
    """`keys list` rows: [(id, current, deks)]."""
    r = stack.cli("keys", "list", check=False)
    rows = re.findall(r"^([0-9a-f]{16})\s+(yes|no)\s+(\d+)\s*$", r.stdout.decode(), re.M)
    return r, [(k, c == "yes", int(n)) for k, c, n in rows]


def rotate(b, paths, env, admin, files):
    _, before = kek_table(b)
    old = [k for k, cur, _ in before if cur]
    check(len(old) == 1, "one current KEK before the rotation", repr(before))
    if not old:
        return
    old = old[0]
    steps = [ln.split("#")[0].strip() for ln in doc_block("kek-rotate").splitlines()]
    steps = [s for s in steps if s]
    check(len(steps) == 3 and steps[-1].endswith("OLD_ID"),
          "the rotation block is rotate, list, retire OLD_ID", repr(steps))
    if len(steps) != 3:
        return
    r = run_sh(paths.apply("SAFESHARE_DATA_DIR=/var/lib/safeshare " + steps[0], b.data_dir),
               env)
    check(r.returncode == 0 and b"every stored DEK is under KEK" in r.stdout,
          "keys rotate: a new KEK, every DEK rewrapped", out(r))
    _, mid = kek_table(b)
    new = [k for k, cur, _ in mid if cur]
    check(new and new[0] != old, "a new current KEK", repr(mid))
    time.sleep(2.5)   # the broker reloads the ring file within 2 s
    new_data = os.urandom(7 * CHUNK + 3)
    new_id = upload(b, admin, "after-rotation.bin", new_data)
    check(new_id is not None, "upload after the rotation")
    r = run_sh(paths.apply("SAFESHARE_DATA_DIR=/var/lib/safeshare " + steps[1], b.data_dir),
               env)
    rows = re.findall(r"^([0-9a-f]{16})\s+(yes|no)\s+(\d+)\s*$", r.stdout.decode(), re.M)
    total = sum(int(n) for _, _, n in rows)
    check(r.returncode == 0 and ("%s" % old, "no", "0") in rows and
          any(k == new[0] and c == "yes" and int(n) == total for k, c, n in rows),
          "keys list: every DEK under the new KEK, none under the old", out(r))
    retire = steps[2].replace("OLD_ID", old)
    r = run_sh(paths.apply("SAFESHARE_DATA_DIR=/var/lib/safeshare " + retire, b.data_dir),
               env)
    check(r.returncode == 0 and ("KEK %s retired" % old).encode() in r.stdout,
          "keys retire OLD_ID", out(r))
    with open(os.path.join(b.data_dir, "keys", "kek.ring")) as f:
        ring = f.read()
    check(old not in ring and new[0] in ring, "the old KEK is gone from the ring file")
    time.sleep(2.5)
    every = list(files["kept"].items()) + [(new_id, new_data)]
    bad = [fid for fid, data in every if not exact(b, admin, fid, data)]
    check(not bad, "after rotate and retire, the %d old files and the new one download "
          "byte-exact" % (len(every) - 1), "not: %r" % bad)
    r = run_sh(paths.apply(doc_block("restore-check"), b.data_dir), env, timeout=300)
    check(r.returncode == 0, "fsck after the rotation: clean", out(r))
    expect_error(b.request("GET", "/api/files/%s/content" % files["victim"], token=admin),
                 404, "file_not_found", "the deleted file stays deleted")


if __name__ == "__main__":
    sys.exit(main())
