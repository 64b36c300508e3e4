#!/usr/bin/env python3
"""Issue 4 through the real stack: a crypto pool of remote worker processes
that survives losing workers in the middle of a large transfer.

The stack is `safeshare up` with SAFESHARE_CRYPTO_WORKERS=0 (the broker has
no thread of its own) and SAFESHARE_CRYPTO_WORKER_ENDPOINT on a loopback
tcp port; the test starts and kills the `safeshare-crypto worker --connect`
processes itself, each with its own log file. It sees the pool through the
broker's pool_status request (tests/system/crypto_pool_status.c), where
each worker is named host:pid:thread.

1. No worker connected: an upload fails cleanly (503 within the RPC
   timeout, no file listed, the broker's queue empties), then 3 workers
   connect and the next upload works.
2. A 96 MiB random file, 256 KiB chunks (384 of them), uploaded at a
   throttled pace so the test can act in the middle: the workers are
   frozen (SIGSTOP, under 1.5 s) until the gateway's whole window of chunks
   sits at crypto -- pool_status shows SAFESHARE_CRYPTO_WINDOW jobs busy or
   queued, one of them on the worker to kill -- then that worker is
   kill -9'd with its chunk in hand and the others thawed; a 4th worker is
   started. The upload completes with the exact SHA-256, the broker counts
   a requeued job within the heartbeat bound, the dead worker leaves the
   pool, the 4th worker did chunks of this upload.
3. The download of that file, read at a throttled pace: another worker is
   kill -9'd the same way with a DECRYPT in hand; the bytes are exact.
   A second download: a worker frozen (SIGSTOP) with a chunk in hand, its
   connection open, is dropped after the heartbeat liveness and its chunk
   resent; the bytes are exact; thawed, it rejoins the pool.
4. The surviving workers stop on SIGTERM with exit 0 and leave the pool at
   once (DISCONNECT, not the heartbeat timeout); the stack stops cleanly.
"""
import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check  # noqa: E402
from stack import Download, Stack, Upload, free_port  # noqa: E402

CHUNK = 256 * 1024
BIG = 96 * 1024 * 1024
SMALL = 600 * 1024 + 123          # 3 chunks
RPC_TIMEOUT_MS = 5000             # the default SAFESHARE_RPC_TIMEOUT_MS
RATE = 12 * 1024 * 1024           # bytes/s of the throttled transfers (about 8 s each)
LIVENESS_S = 3                    # CRYPTOD_HEARTBEAT_LIVENESS x 1 s heartbeats
WINDOW = 4                        # SAFESHARE_CRYPTO_WINDOW (the default, said explicitly)


def as_json(r):
    try:
        v = r.json()
        return v if isinstance(v, dict) else {}
    except ValueError:
        return {}


class Pool:
    """The test's worker processes and the broker's view of them."""

    def __init__(self, stack, bin_dir, endpoint):
        self.stack = stack
        self.bin_dir = bin_dir
        self.endpoint = endpoint
        self.front = "ipc://%s/run/crypto.sock" % stack.data_dir
        self.workers = {}   # label -> (Popen, log path)
        self.last_error = ""

    def start(self, label):
        log_path = os.path.join(self.stack.data_dir, "worker-%s.log" % label)
        log = open(log_path, "wb")
        p = subprocess.Popen([os.path.join(self.bin_dir, "safeshare-crypto"), "worker",
                              "--connect", self.endpoint, "--threads", "1"],
                             env=self.stack.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.workers[label] = (p, log_path)
        return p

    def proc(self, label):
        return self.workers[label][0]

    def log(self, label):
        try:
            with open(self.workers[label][1], "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def status(self, timeout_ms=3000, quiet=False):
        """pool_status as a dict, or None (printed why unless quiet)."""
        r = subprocess.run([os.path.join(self.bin_dir, "crypto_pool_status"), self.front,
                            str(timeout_ms)], capture_output=True, timeout=30)
        if r.returncode != 0:
            self.last_error = "crypto_pool_status: rc=%d %s" % (
                r.returncode, r.stderr.decode(errors="replace").strip())
            if not quiet:
                print("  " + self.last_error, flush=True)
            return None
        return json.loads(r.stdout)

    def entry(self, status, label):
        """This worker's WorkerStatus (name host:pid:thread), or None."""
        pid = str(self.proc(label).pid)
        for w in (status or {}).get("workers", []):
            parts = w.get("name", "").rsplit(":", 2)
            if len(parts) == 3 and parts[1] == pid:
                return w
        return None

    def wait(self, pred, timeout):
        """Polls pool_status until pred(status) holds; returns the last status."""
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status(quiet=True)
            if st is not None and pred(st):
                return st, True
            time.sleep(0.05)
        if st is None:
            print("  " + self.last_error, flush=True)
        return st, False

    def kill_holding_job(self, label, others):
        """kill -9 of worker `label` with a job of the transfer under way in
        its hands. Every worker of the pool (label and `others`) is frozen
        (SIGSTOP) for at most 1.5 s, well within the heartbeat liveness:
        each job the broker hands out then stays with its worker, so
        pool_status shows exactly what the gateway has at crypto -- busy
        workers plus queued jobs = the gateway's window -- and that `label`
        holds one of them. Then kill -9 of `label`, SIGCONT of the others.
        Returns a dict: held, outstanding (busy + queued at the kill),
        requeued (the count before the kill), t_kill (monotonic)."""
        p = self.proc(label)
        frozen = [p] + [self.proc(o) for o in others]
        for q in frozen:
            os.kill(q.pid, signal.SIGSTOP)

        def outstanding(s):
            return sum(1 for w in s.get("workers", []) if w.get("busy")) + \
                s.get("queue_depth", 0)

        def settled(s):
            return (self.entry(s, label) or {}).get("busy") is True and \
                outstanding(s) >= WINDOW

        st, _ = self.wait(settled, 1.5)
        held = (self.entry(st, label) or {}).get("busy") is True
        requeued = (st or {}).get("requeued_total", 0)
        os.kill(p.pid, signal.SIGKILL)
        t_kill = time.monotonic()
        for q in frozen[1:]:
            os.kill(q.pid, signal.SIGCONT)
        p.wait()
        return {"held": held, "outstanding": outstanding(st) if st else None,
                "requeued": requeued, "t_kill": t_kill}

    def requeued_after(self, k):
        """Seconds from the kill until the broker counted the job requeued;
        None if it did not within the heartbeat bound + 5 s."""
        _, ok = self.wait(lambda s: s.get("requeued_total", 0) > k["requeued"], LIVENESS_S + 5)
        return (time.monotonic() - k["t_kill"]) if ok else None

    def stop_all(self):
        for p, _ in self.workers.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def listed_ids(stack, token):
    r = stack.request("GET", "/api/files?limit=100", token=token)
    return [f.get("id") for f in as_json(r).get("files", [])] if r.status == 200 else None


def blob_files(stack):
    """Files under the blob directory (storage's blobs and temp files)."""
    out = []
    for dirpath, _, names in os.walk(os.path.join(stack.data_dir, "blobs")):
        out += [os.path.join(dirpath, n) for n in names]
    return sorted(out)


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.1)
    return pred()


def ring_keks(stack):
    """The raw KEKs of the stack's ring file (lines "<id> <64 hex>")."""
    keks = []
    with open(os.path.join(stack.key_dir, "kek.ring")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#") and len(parts[1]) == 64:
                keks.append(bytes.fromhex(parts[1]))
    return keks


def memory_holds(pid, needles, region_max=256 << 20):
    """Whether any of the byte strings is in the process's readable memory
    (root reads /proc/PID/mem); None if it cannot be read at all. Regions
    over region_max (a sanitizer's shadow reservations) are skipped."""
    step, overlap = 16 << 20, max(len(n) for n in needles)
    read_any = False
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read().splitlines()
        with open("/proc/%d/mem" % pid, "rb", 0) as mem:
            for line in maps:
                fields = line.split()
                if not fields[1].startswith("r") or line.endswith(("[vvar]", "[vsyscall]")):
                    continue
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if hi - lo > region_max:
                    continue
                pos = lo
                while pos < hi:
                    try:
                        mem.seek(pos)
                        data = mem.read(min(step + overlap, hi - pos))
                    except (OSError, ValueError, OverflowError):
                        break
                    read_any = True
                    if any(n in data for n in needles):
                        return True
                    pos += step
    except OSError:
        return None
    return False if read_any else None


def broker_pid(stack):
    """The crypto broker `safeshare up` started (not a worker process)."""
    for pid in stack.our_processes():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"safeshare-crypto" and b"worker" not in argv:
            return pid
    return None


def remote_names(st):
    return sorted(w.get("name", "") for w in (st or {}).get("workers", []) if not w.get("local"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    endpoint = "tcp://127.0.0.1:%d" % free_port()
    stack = Stack(bin_dir, {
        "SAFESHARE_CRYPTO_WORKERS": "0",
        "SAFESHARE_CRYPTO_WORKER_ENDPOINT": endpoint,
        "SAFESHARE_CHUNK_SIZE": str(CHUNK),
        "SAFESHARE_RPC_TIMEOUT_MS": str(RPC_TIMEOUT_MS),
        "SAFESHARE_CRYPTO_WINDOW": str(WINDOW),
    })
    pool = Pool(stack, bin_dir, endpoint)
    try:
        run(stack, pool)
    except Exception:  # a crash is a failure with its traceback, never a pass
        import traceback
        traceback.print_exc()
        check(False, "test ran to the end")
    finally:
        pool.stop_all()
        rc = stack.stop()
        check(rc == 0, "safeshare up exits 0 on SIGTERM", "rc=%r" % rc)
        check(stack.our_processes() == [], "no service or worker left running after stop")
        if FAILURES:
            print("---- stack log ----\n" + stack.logs())
            for label in pool.workers:
                print("---- worker %s log ----\n%s" % (label, pool.log(label)[-4000:]))
        stack.cleanup()
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


def run(stack, pool):
    ops_email, ops_pw = "ops@example.com", "correct horse battery"
    stack.cli("keys", "generate")
    stack.add_user(ops_email, ops_pw, "ops")
    stack.start()
    r = stack.login(ops_email, ops_pw)
    if not check(r.status == 200, "ops logs in", repr(r)):
        return
    ops = r.json()["access"]

    # ---- 1. no worker connected --------------------------------------
    st = pool.status()
    check(st is not None and st.get("workers") == [] and st.get("queue_depth") == 0,
          "pool_status with no worker: no worker (no local thread), empty queue", repr(st))
    small = os.urandom(SMALL)
    t0 = time.monotonic()
    r = stack.upload(ops, "nobody-home.bin", small)
    took = time.monotonic() - t0
    err = as_json(r).get("error") or {}
    check(r.status == 503 and err.get("code") in ("service_unavailable", "crypto_unavailable")
          and err.get("message"), "upload with no worker connected -> 503 %s" % err.get("code"),
          repr(r))
    check(took <= RPC_TIMEOUT_MS / 1000.0 + 2.0,
          "... answered within the RPC timeout (%.1f s, timeout %.1f s)"
          % (took, RPC_TIMEOUT_MS / 1000.0))
    check(listed_ids(stack, ops) == [], "... and no file is listed in GET /api/files")
    check(wait_for(lambda: blob_files(stack) == [], 3),
          "... and no blob or temp file is left in the blob directory", repr(blob_files(stack)))
    st, ok = pool.wait(lambda s: s.get("queue_depth") == 0 and s.get("queue_bytes") == 0, 3)
    check(ok, "... and the broker's queue is empty again (expired chunks dropped)", repr(st))

    for label in ("w1", "w2", "w3"):
        pool.start(label)
    st, ok = pool.wait(lambda s: all(pool.entry(s, lb) for lb in ("w1", "w2", "w3")), 15)
    check(ok and len(remote_names(st)) == 3 and all(not w.get("local") for w in st["workers"]),
          "3 worker processes connect (pool_status lists them, none local)", repr(st))
    r = stack.upload(ops, "small.bin", small)
    meta = as_json(r)
    small_id = meta.get("id")
    check(r.status == 201 and meta.get("size") == len(small) and
          meta.get("sha256") == hashlib.sha256(small).hexdigest(),
          "the next upload works once workers are connected", repr(r))
    if r.status == 201:
        d = stack.request("GET", "/api/files/%s/content" % meta["id"], token=ops)
        check(d.status == 200 and d.body == small, "... and downloads byte for byte",
              "status=%d len=%d" % (d.status, len(d.body)))
    ids = listed_ids(stack, ops)
    check(r.status == 201 and ids == [small_id], "GET /api/files lists only that file",
          repr(ids))

    # ---- 2. large upload, one worker kill -9'd, a 4th one joins -------
    big = os.urandom(BIG)
    big_sha = hashlib.sha256(big).hexdigest()
    up = Upload(stack, ops, "big.bin", big, RATE, CHUNK // 2)
    up.start()
    while up.is_alive() and up.done < BIG * 0.3:
        time.sleep(0.02)
    check(up.is_alive() and up.done < BIG, "upload under way when the first kill comes",
          "sent=%d" % up.done)
    w1_name = (pool.entry(pool.status(), "w1") or {}).get("name")
    k = pool.kill_holding_job("w1", ("w2", "w3"))
    check(k["held"], "w1 was handed a chunk of the upload (busy in pool_status), then kill -9")
    check(k["outstanding"] == WINDOW,
          "the upload had %r chunks at crypto at once (SAFESHARE_CRYPTO_WINDOW=%d)"
          % (k["outstanding"], WINDOW))
    pool.start("w4")
    resent = pool.requeued_after(k)
    check(resent is not None and resent <= LIVENESS_S + 1.5,
          "the broker requeued its chunk %s after the kill (bound: heartbeat liveness %d s)"
          % ("%.1f s" % resent if resent is not None else "never", LIVENESS_S))
    up.join(timeout=180)
    check(not up.is_alive() and up.error is None, "upload finished",
          "error=%r sent=%d" % (up.error, up.done))
    meta = {}
    try:
        meta = json.loads(up.body) if up.body else {}
    except ValueError:
        pass
    check(up.status == 201 and meta.get("size") == BIG and meta.get("sha256") == big_sha,
          "96 MiB upload with a worker kill -9'd mid-way: 201, size and SHA-256 exact "
          "(%.1f s)" % (up.elapsed or 0), "status=%r body=%r" % (up.status, up.body[:300]))
    st = pool.status()
    w4 = pool.entry(st, "w4")
    check(w4 is not None and w4.get("jobs_done", 0) > 0,
          "w4, started after the upload began, took chunks of it (jobs_done %r)"
          % ((w4 or {}).get("jobs_done")), repr(st))
    st, ok = pool.wait(lambda s: w1_name not in remote_names(s), LIVENESS_S * 3)
    check(w1_name is not None and ok and len(remote_names(st)) == 3,
          "the kill -9'd worker left the pool (%s), 3 remain" % w1_name, repr(st))
    check("connect" in pool.log("w4").lower(),
          "w4's log has its connect line", repr(pool.log("w4")[-500:]))
    # The KEK lives only in the broker: the workers that did chunks of this
    # upload never held it. The broker's memory is the control that the
    # scan finds a KEK where there is one.
    keks = ring_keks(stack)
    check(len(keks) == 1 and memory_holds(broker_pid(stack) or -1, keks) is True,
          "the KEK is found in the broker's memory (control for the scan below)")
    check(all(memory_holds(pool.proc(lb).pid, keks) is False for lb in ("w3", "w4")),
          "the KEK is nowhere in the memory of the worker processes that did the chunks")

    fid = meta.get("id")
    if up.status != 201 or not fid:
        return
    r = stack.request("GET", "/api/files/" + fid, token=ops)
    check(r.status == 200 and as_json(r).get("sha256") == big_sha,
          "metadata of the big file has its SHA-256", repr(r))

    # ---- 3. download, another worker kill -9'd -----------------------
    down = Download(stack, ops, fid, RATE, CHUNK // 2)
    down.start()
    while down.is_alive() and down.done < BIG * 0.3:
        time.sleep(0.02)
    check(down.is_alive() and down.done < BIG, "download under way when the second kill comes",
          "got=%d" % down.done)
    w2_name = (pool.entry(pool.status(), "w2") or {}).get("name")
    k = pool.kill_holding_job("w2", ("w3", "w4"))
    check(k["held"], "w2 was handed a chunk of the download (busy in pool_status), then kill -9")
    check(k["outstanding"] == WINDOW,
          "the download had %r chunks at crypto at once (SAFESHARE_CRYPTO_WINDOW=%d)"
          % (k["outstanding"], WINDOW))
    resent = pool.requeued_after(k)
    check(resent is not None and resent <= LIVENESS_S + 1.5,
          "the broker requeued its chunk %s after the kill (bound: heartbeat liveness %d s)"
          % ("%.1f s" % resent if resent is not None else "never", LIVENESS_S))
    down.join(timeout=180)
    check(not down.is_alive() and down.error is None and down.status == 200 and
          down.done == BIG and down.digest.hexdigest() == big_sha,
          "96 MiB download with a worker kill -9'd mid-way: 200, bytes exact (%.1f s)"
          % (down.elapsed or 0),
          "status=%r got=%d error=%r" % (down.status, down.done, down.error))
    st, ok = pool.wait(lambda s: w2_name not in remote_names(s), LIVENESS_S * 3)
    check(w2_name is not None and ok and len(remote_names(st)) == 2,
          "the second kill -9'd worker left the pool (%s), 2 remain" % w2_name, repr(st))

    # ---- 3b. a worker that goes silent with its connection open --------
    # (a frozen or cut-off host: no FIN/RST, only the heartbeats stop)
    down = Download(stack, ops, fid, RATE, CHUNK // 2)
    down.start()
    while down.is_alive() and down.done < BIG * 0.3:
        time.sleep(0.02)
    w3_name = (pool.entry(pool.status(), "w3") or {}).get("name")
    w3 = pool.proc("w3")
    os.kill(w3.pid, signal.SIGSTOP)
    t_freeze = time.monotonic()
    st, held = pool.wait(lambda s: (pool.entry(s, "w3") or {}).get("busy") is True, 2.5)
    requeued_before = (st or {}).get("requeued_total", 0)
    check(held, "w3 was handed a chunk of a second download, and is frozen (SIGSTOP)")
    st, gone = pool.wait(lambda s: w3_name not in remote_names(s), LIVENESS_S + 3)
    silent_for = time.monotonic() - t_freeze
    check(w3_name is not None and gone and w3.poll() is None,
          "the broker dropped the silent worker after %.1f s (heartbeat liveness %d s), "
          "its connection still open" % (silent_for, LIVENESS_S), repr(st))
    down.join(timeout=180)
    check(not down.is_alive() and down.error is None and down.status == 200 and
          down.done == BIG and down.digest.hexdigest() == big_sha,
          "... and the download completed with the exact bytes on the one worker left "
          "(%.1f s)" % (down.elapsed or 0),
          "status=%r got=%d error=%r" % (down.status, down.done, down.error))
    st = pool.status()
    check(st is not None and st.get("requeued_total", 0) > requeued_before,
          "the broker resent the silent worker's chunk (requeued_total %r -> %r)"
          % (requeued_before, (st or {}).get("requeued_total")))
    os.kill(w3.pid, signal.SIGCONT)
    st, back = pool.wait(lambda s: pool.entry(s, "w3") is not None, 10)
    check(back and len(remote_names(st)) == 2,
          "w3 thawed (SIGCONT) rejoins the pool by itself", repr(st))

    # ---- 3c. KEK rotation and offline decryption, stack running -------
    def ring_ids():
        with open(os.path.join(stack.key_dir, "kek.ring")) as f:
            return [ln.split()[0] for ln in f if ln.strip() and not ln.startswith("#")]

    def content_ok(file_id, want_sha, what):
        r = stack.request("GET", "/api/files/%s/content" % file_id, token=ops, timeout=180)
        check(r.status == 200 and hashlib.sha256(r.body).hexdigest() == want_sha,
              what, "status=%r len=%d" % (r.status, len(r.body or b"")))

    out = os.path.join(stack.data_dir, "offline-copy.bin")
    r = stack.cli("decrypt", "--file", fid, "--out", out, check=False)
    with open(out, "rb") if r.returncode == 0 else open(os.devnull, "rb") as f:
        offline = hashlib.sha256(f.read()).hexdigest()
    check(r.returncode == 0 and offline == big_sha and
          (os.stat(out).st_mode & 0o777) == 0o600,
          "safeshare decrypt (offline, from DB + blob + ring) equals the 96 MiB upload, 0600",
          r.stderr.decode(errors="replace"))
    def blob_digests():
        out = {}
        for path in blob_files(stack):
            with open(path, "rb") as f:
                out[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
        return out

    old_ids = ring_ids()
    blobs_before = blob_digests()
    r = stack.cli("keys", "rotate", check=False)
    new_ids = ring_ids()
    check(blobs_before and blob_digests() == blobs_before,
          "... rotate rewrote no blob (every blob's SHA-256 unchanged)")
    check(r.returncode == 0 and len(new_ids) == len(old_ids) + 1 and new_ids[:-1] == old_ids,
          "safeshare keys rotate with the stack up: a new current KEK, every DEK rewrapped",
          r.stderr.decode(errors="replace"))
    time.sleep(3)  # the broker checks its ring file every 2 s
    content_ok(fid, big_sha, "... the 96 MiB file still downloads byte for byte after rotate")
    content_ok(small_id, hashlib.sha256(small).hexdigest(), "... and so does the small one")
    r = stack.cli("keys", "retire", new_ids[-1], check=False)
    check(r.returncode != 0 and ring_ids() == new_ids,
          "safeshare keys retire refuses the current KEK (ring unchanged)")
    r = stack.cli("keys", "retire", old_ids[-1], check=False)
    check(r.returncode == 0 and ring_ids() == [i for i in new_ids if i != old_ids[-1]],
          "safeshare keys retire of the old KEK, no DEK left under it: removed from the ring",
          r.stderr.decode(errors="replace"))
    time.sleep(3)
    content_ok(fid, big_sha, "... and after the old KEK is gone the file still downloads exactly")
    os.unlink(out)

    # ---- 4. SIGTERM: the workers leave cleanly -----------------------
    for label in ("w3", "w4"):
        p = pool.proc(label)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "%s exits 0 on SIGTERM" % label, "rc=%r" % rc)
    # DISCONNECT, not the heartbeat timeout: gone well before LIVENESS_S.
    st, ok = pool.wait(lambda s: remote_names(s) == [], LIVENESS_S - 1.5)
    check(ok, "the pool is empty at once after they said DISCONNECT", repr(st))
    ids = listed_ids(stack, ops)
    check(ids is not None and sorted(ids) == sorted([small_id, fid]),
          "GET /api/files lists the two uploads, nothing else", repr(ids))
    blobs = [os.path.basename(p) for p in blob_files(stack)]
    check(sorted(blobs) == sorted([small_id, fid]),
          "the blob directory holds their two blobs, nothing else", repr(blobs))


if __name__ == "__main__":
    sys.exit(main())
